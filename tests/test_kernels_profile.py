"""Kernel profiles from the compiled code: the prefetch ring survives compilation, the replicas
compile as published, the shipped profiles answer without a compiler, `recperf resources`.

Oracles: NVIDIA's compiler and disassembler (NVRTC and cuobjdump from PyPI, the pinned releases
the table is built with), FACTS.md sections 1 and 6 (figures of the artifact's kernel), and an
independent register-liveness count of row loads in flight (tests/test_kernels_sass.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

import kernels
import perfmodel
from kernels import _compile, _profile
from kernels._compile import CompileKey, NvrtcCompiler
from kernels._sass import analyze_function, parse_sass
from perfmodel import KernelConfig
from perfmodel._resources import RESOURCE_TABLE_PATH, ResourceTable, load_resource_table

FIXTURE_RING = Path(__file__).parent / "fixtures" / "embedding_bag_pytorch_ring_before.cu"


def _nvrtc() -> str | None:
    try:
        from cuda.bindings import nvrtc  # noqa: F401

        return metadata.version("nvidia-cuda-nvrtc")
    except Exception:
        return None


needs_tools = pytest.mark.skipif(
    _nvrtc() is None or kernels.cuobjdump_path() is None,
    reason="needs NVRTC and cuobjdump (pip install recperf[compile]: nvidia-cuda-nvrtc, nvidia-cuda-cuobjdump)",
)
needs_pinned = pytest.mark.skipif(
    _nvrtc() != _compile.PINNED_NVRTC or kernels.cuobjdump_path() is None,
    reason=f"needs nvidia-cuda-nvrtc=={_compile.PINNED_NVRTC} and cuobjdump (recperf[compile])",
)


def _in_flight(source: Path, key: CompileKey, arch: str) -> int:
    res = NvrtcCompiler().compile(source, key.defines(), arch)
    funcs = parse_sass(kernels.disassemble(res.cubin, key.entry))
    return analyze_function(funcs[key.entry]).row_loads_in_flight


@needs_tools
def test_the_ring_as_it_was_compiles_to_one_row_load_in_flight() -> None:
    key = CompileKey(variant="pytorch", ring_distance=2, bounds_inline=False)
    assert _in_flight(FIXTURE_RING, key, "sm_80") == 1


@needs_tools
@pytest.mark.parametrize("variant", ["pytorch", "warp"])
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
@pytest.mark.parametrize("p", [2, 8])
def test_the_fixed_ring_keeps_at_least_p_row_loads_in_flight(variant: str, arch: str, p: int) -> None:
    key = CompileKey(variant=variant, ring_distance=p, bounds_inline=False)
    assert _in_flight(key.source, key, arch) >= p


@needs_tools
@pytest.mark.slow
@pytest.mark.parametrize("variant", ["pytorch", "warp"])
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_the_fixed_ring_for_every_p_from_1_to_8(variant: str, arch: str) -> None:
    got = {p: _in_flight(KERNEL_SOURCE[variant], CompileKey(variant=variant, ring_distance=p, bounds_inline=False),
                         arch) for p in range(1, 9)}
    assert all(n >= p for p, n in got.items()), got


KERNEL_SOURCE = {v: _compile.KERNEL_DIR / _compile.SOURCES[v] for v in _compile.SOURCES}


@needs_tools
def test_micro24_combined_compiles_as_facts_say() -> None:
    """FACTS.md sections 1 and 6: the artifact's kernel at -maxrregcount 42 (nvcc 13.0, sm_80) has
    42 registers, spills (84/120 B there; figures move between compilers), about 32 SASS
    instructions per lookup, and two row loads in flight (pairs)."""
    k = KernelConfig(variant="micro24-combined", register_cap=42)
    usage = kernels.resource_usage(k, "sm_80", compiler="nvrtc", use_cache=False)
    prof = kernels.kernel_profile(k, "sm_80", compiler="nvrtc", use_cache=False)
    assert usage.registers == 42 and usage.spill_store_bytes > 0 and usage.spill_load_bytes > 0
    assert prof.row_loads_in_flight == 2
    assert 28 <= prof.total_instructions_per_lookup <= 36
    assert prof.local_ops_per_lookup > 0 and prof.source == "compiled"


@needs_tools
def test_pytorch_current_is_a_different_loop_from_the_2_1_kernel() -> None:
    """PyTorch's kernel after PR #167834 (validation loop, then the loop without the assert) is
    not the 2.1 kernel with the check removed: other registers and another main loop."""
    cur = kernels.kernel_profile(KernelConfig(variant="pytorch-current"), "sm_80", compiler="nvrtc", use_cache=False)
    old = kernels.kernel_profile(KernelConfig(), "sm_80", compiler="nvrtc", use_cache=False)
    sep = kernels.kernel_profile(KernelConfig(bounds_check="separate"), "sm_80", compiler="nvrtc", use_cache=False)
    assert old.row_loads_in_flight == 1  # the in-loop assert serializes the loads
    assert cur.row_loads_in_flight > old.row_loads_in_flight
    assert cur.global_loads_per_lookup["index"] == pytest.approx(sep.global_loads_per_lookup["index"] + 1)
    assert cur != sep


@needs_tools
def test_tbe_profiles_for_both_table_dtypes() -> None:
    for dtype in ("float32", "float16"):
        prof = kernels.kernel_profile(KernelConfig(variant="tbe"), "sm_90", dtype=dtype, compiler="nvrtc",
                                      use_cache=False)
        assert prof.global_loads_per_lookup["index"] == pytest.approx(1 / 32)
        assert prof.instructions_per_lookup["shuffle"] > 0 and not prof.index_on_row_chain


# ---- the shipped table -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def table() -> ResourceTable:
    if not RESOURCE_TABLE_PATH.is_file():
        pytest.fail(f"the shipped resource table {RESOURCE_TABLE_PATH} is missing")
    return load_resource_table()


def test_the_table_ships_a_profile_for_every_entry(table: ResourceTable) -> None:
    missing = [(a, k) for a, rows in table.entries.items() for k, row in rows.items() if len(row) < 6 or row[5] < 0]
    assert not missing, f"{len(missing)} entries without a profile, e.g. {missing[:3]}"
    assert table.meta.get("disassembler", "").startswith("cuobjdump")


def test_the_table_answers_the_replicas_and_the_ring(table: ResourceTable) -> None:
    for arch in ("sm_80", "sm_90"):
        for variant in ("pytorch", "warp"):
            for p in (1, 2, 4, 8):
                prof = perfmodel.kernel_profile(KernelConfig(variant=variant, prefetch_distance=p,
                                                             bounds_check="separate"), arch)
                assert prof is not None and prof.source == "table"
                assert prof.row_loads_in_flight >= p, (arch, variant, p)
        for variant in ("micro24-combined", "tbe", "pytorch-current"):
            for dtype in ("float32", "float16"):
                assert perfmodel.kernel_profile(KernelConfig(variant=variant), arch, dtype=dtype) is not None


@needs_pinned
def test_pinned_tools_reproduce_shipped_profiles(table: ResourceTable) -> None:
    samples = [("sm_80", KernelConfig(prefetch_distance=3, bounds_check="separate"), "float32"),
               ("sm_90", KernelConfig(variant="warp", register_cap=40, prefetch_distance=5), "float16"),
               ("sm_80", KernelConfig(variant="micro24-combined", register_cap=42), "float32"),
               ("sm_90", KernelConfig(variant="tbe", bounds_check="none"), "float16")]
    for arch, k, dtype in samples:
        want = table.profile(k, arch, dtype=dtype)
        got = kernels.kernel_profile(k, arch, dtype=dtype, compiler="nvrtc", use_cache=False)
        assert want is not None and want.figures() == got.figures(), (arch, k, dtype)


# ---- the command ---------------------------------------------------------------------------------


def _recperf(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "recperf", *args], capture_output=True, text=True, check=False,
                          env=env)


def _kernel_file(tmp_path: Path, **kw: object) -> str:
    path = tmp_path / f"k{len(list(tmp_path.iterdir()))}.toml"
    path.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in kw.items()))
    return str(path)


def test_resources_json_has_the_profile_from_the_table(tmp_path: Path) -> None:
    k = _kernel_file(tmp_path, variant="pytorch", prefetch_distance=4, bounds_check="separate")
    out = _recperf("resources", "--arch", "sm_80", "--kernel", k, "--compiler", "table", "--json")
    assert out.returncode == 0, out.stderr
    prof = json.loads(out.stdout)["profile"]
    for field in ("row_loads_in_flight", "instructions_per_lookup", "global_loads_per_lookup",
                  "local_ops_per_lookup", "index_on_row_chain", "chain", "source", "compiler"):
        assert field in prof
    assert prof["source"] == "table" and prof["row_loads_in_flight"] >= 4
    assert set(prof["global_loads_per_lookup"]) == {"index", "row", "other"}


def _no_compiler_env(tmp_path: Path) -> dict[str, str]:
    """An environment where neither nvcc, NVRTC nor cuobjdump can be found."""
    shim = tmp_path / "site"
    shim.mkdir()
    # a sitecustomize that makes `cuda.bindings` and the nvidia packages unimportable
    (shim / "sitecustomize.py").write_text(
        "import sys\n"
        "class _Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'cuda' or name.startswith(('cuda.', 'nvidia')):\n"
        "            raise ImportError('hidden for the test')\n"
        "        return None\n"
        "sys.meta_path.insert(0, _Block())\n"
    )
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable)
    env["PYTHONPATH"] = f"{shim}{os.pathsep}{env.get('PYTHONPATH', '')}"
    env["RECPERF_CACHE_DIR"] = str(tmp_path / "cache")
    return env


def test_without_any_compiler_the_table_answers_and_sass_says_why(tmp_path: Path) -> None:
    env = _no_compiler_env(tmp_path)
    k = _kernel_file(tmp_path, variant="tbe", block_size=256)
    out = _recperf("resources", "--arch", "sm_90", "--kernel", k, "--json", env=env)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["source"] == "table" and doc["profile"]["source"] == "table"
    out = _recperf("resources", "--arch", "sm_80", "--kernel", k, "--sass", env=env)
    assert out.returncode == 2 and out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "compiler" in lines[0]


@needs_tools
def test_resources_sass_prints_the_lookup_kernel(tmp_path: Path) -> None:
    k = _kernel_file(tmp_path, variant="pytorch", prefetch_distance=4, bounds_check="separate")
    out = _recperf("resources", "--arch", "sm_80", "--kernel", k, "--compiler", "nvrtc", "--sass")
    assert out.returncode == 0, out.stderr
    assert "recperf_embedding_bag_pytorch" in out.stdout and "LDG.E" in out.stdout
    funcs = parse_sass(out.stdout)
    assert list(funcs) == ["recperf_embedding_bag_pytorch"]
    assert analyze_function(funcs["recperf_embedding_bag_pytorch"]).row_loads_in_flight >= 4


def test_a_configuration_outside_the_table_needs_a_compiler(tmp_path: Path) -> None:
    k = _kernel_file(tmp_path, variant="pytorch", register_cap=50)
    out = _recperf("resources", "--arch", "sm_80", "--kernel", k, "--compiler", "table", "--json")
    assert out.returncode == 2 and out.stderr.startswith("error:") and "no entry" in out.stderr


def test_predict_models_the_replica_from_its_profile(tmp_path: Path) -> None:
    """The artifact's combined kernel is predicted (issue 9 phase 2) and the prediction names its
    profile: two row loads in flight (the pair loads), from the shipped table."""
    k = _kernel_file(tmp_path, variant="micro24-combined", register_cap=42)
    w = Path(__file__).resolve().parent.parent / "search" / "data" / "seed_reuse_medium.toml"
    out = _recperf("predict", "--gpu", "a100-80gb", "--workload", str(w), "--kernel", k, "--json")
    assert out.returncode == 0, out.stderr
    prof = json.loads(out.stdout)["breakdown"]["profile"]
    assert prof["row_loads_in_flight"] == 2 and prof["source"].startswith("shipped table")


def test_profile_type_checks_its_figures() -> None:
    with pytest.raises(perfmodel.InputError, match="row_loads_in_flight"):
        perfmodel.KernelProfile(row_loads_in_flight=0, instructions_per_lookup={}, global_loads_per_lookup={})
    with pytest.raises(perfmodel.InputError, match="keys"):
        perfmodel.KernelProfile(row_loads_in_flight=1, instructions_per_lookup={"alu": 3.0},
                                global_loads_per_lookup={})
    p = perfmodel.KernelProfile(row_loads_in_flight=2, instructions_per_lookup={"integer": 10, "fp32": 1},
                                global_loads_per_lookup={"index": 1, "row": 1})
    assert p.total_instructions_per_lookup == 11.0 and p.to_dict()["global_loads_per_lookup"]["other"] == 0.0
    back = perfmodel.KernelProfile.from_figures(p.figures(), source="table", compiler="")
    assert back.figures() == p.figures() and back.source == "table"
    assert _profile.TBE_LOOKUPS_PER_GROUP == 32


def test_compiled_profiles_are_cached_and_an_unreadable_entry_is_rebuilt(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from kernels._compile import cache_file, compile_key, resolve_compiler
    from kernels._profile import cuobjdump_path, kernel_profile

    comp = resolve_compiler("auto")
    if comp is None or cuobjdump_path() is None:
        pytest.skip("no CUDA compiler with a disassembler installed")
    monkeypatch.setenv("RECPERF_CACHE_DIR", str(tmp_path))
    k = KernelConfig(variant="warp", bounds_check="none")
    first = kernel_profile(k, "sm_80")
    second = kernel_profile(k, "sm_80")
    assert first.source == "compiled" and second.source == "cache"
    assert first.figures() == second.figures()
    path = cache_file("profiles", comp.version, "sm_80", compile_key(k))
    path.write_text("{not json")
    third = kernel_profile(k, "sm_80")
    assert third.source == "compiled" and third.figures() == first.figures()
    assert kernels.resource_usage(k, "sm_80").source == "compiled"  # its own kind of entry, not the profile's
