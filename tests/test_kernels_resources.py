"""Compiler resource figures: the shipped table, the compile driver, the `resources` command.

Oracles: the compiler itself (the pinned NVRTC release must reproduce the table; nvcc 13.0's
figures for the PyTorch replica are in FACTS.md section 1), and golden ptxas reports.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import pytest

import kernels
import perfmodel
from kernels import _compile
from perfmodel import KernelConfig
from perfmodel._resources import (
    COLUMNS,
    RESOURCE_TABLE_PATH,
    ResourceTable,
    ResourceUsage,
    load_resource_table,
    resource_key,
)


def _nvrtc_version() -> str | None:
    try:
        from cuda.bindings import nvrtc  # noqa: F401

        return metadata.version("nvidia-cuda-nvrtc")
    except Exception:
        return None


NVRTC = _nvrtc_version()
needs_pinned_nvrtc = pytest.mark.skipif(
    NVRTC != _compile.PINNED_NVRTC,
    reason=f"needs nvidia-cuda-nvrtc=={_compile.PINNED_NVRTC} (recperf[compile]); installed: {NVRTC}",
)
needs_nvcc = pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not on PATH")

#: the register caps the search space produces (scripts/build_resource_table.py)
CAPS = (0, 24, 32, 40, 42, 48, 56, 64, 72, 80, 88, 96, 104, 112, 120, 128, 255)


@pytest.fixture(scope="module")
def table() -> ResourceTable:
    if not RESOURCE_TABLE_PATH.is_file():
        pytest.fail(f"the shipped resource table {RESOURCE_TABLE_PATH} is missing")
    return load_resource_table()


# ---- the type and the lookup rule ------------------------------------------------------------


def test_resource_usage_rejects_impossible_figures() -> None:
    with pytest.raises(perfmodel.InputError, match="registers"):
        ResourceUsage(registers=0)
    with pytest.raises(perfmodel.InputError, match="spill_store_bytes"):
        ResourceUsage(registers=32, spill_store_bytes=-4)


def test_resource_key_merges_what_compiles_the_same_kernel() -> None:
    base = KernelConfig()
    assert resource_key(base) == "pytorch/cap0/pd0/inline/float32/int64"
    # separate and none compile the same lookup kernel; the prefetch kind is moot at distance 0
    assert resource_key(base.replace(bounds_check="separate")) == resource_key(base.replace(bounds_check="none"))
    assert resource_key(base.replace(prefetch_kind="l2-hint")) == resource_key(base)
    # block size, pinning and the pinned fraction are not compile keys
    assert resource_key(base.replace(block_size=512, pinned_row_fraction=0.2, pin_method="evict-last-prefetch")) == (
        resource_key(base)
    )
    with pytest.raises(perfmodel.InputError, match="valid choices"):
        resource_key(base, dtype="bfloat16")


def test_lookup_returns_only_what_the_compiler_reported() -> None:
    t = ResourceTable(
        compiler="test",
        entries={"sm_80": {
            resource_key(KernelConfig()): (54, 0, 0, 0, 0),
            resource_key(KernelConfig(register_cap=42)): (42, 72, 192, 40, 0),
        }},
    )
    assert t.lookup(KernelConfig(register_cap=42), "sm_80") == ResourceUsage(
        registers=42, spill_store_bytes=72, spill_load_bytes=192, stack_bytes=40, compiler="test")
    assert t.lookup(KernelConfig(register_cap=42, block_size=1024), "sm_80") is not None
    assert t.lookup(KernelConfig(register_cap=64), "sm_80") is None  # never inferred from another cap
    assert t.lookup(KernelConfig(), "sm_86") is None


# ---- the shipped table -------------------------------------------------------------------------


def test_shipped_table_covers_the_whole_search_space(table: ResourceTable) -> None:
    missing = []
    for arch in ("sm_80", "sm_90"):
        for variant in ("pytorch", "warp", "micro24-combined", "tbe", "pytorch-current"):
            for cap in CAPS:
                for pd in range(17) if variant in ("pytorch", "warp") else (0,):
                    for kind in ("register", "l2-hint"):
                        for bounds in ("inline", "separate", "none"):
                            k = KernelConfig(variant=variant, register_cap=cap, prefetch_distance=pd,
                                             prefetch_kind=kind, bounds_check=bounds)
                            for dtype in ("float32", "float16"):
                                if table.lookup(k, arch, dtype=dtype, index_dtype="int64") is None:
                                    missing.append((arch, dtype, k))
    assert not missing, f"{len(missing)} configurations missing, e.g. {missing[:3]}"
    # the table's space: int64 indices (what the model reads); int32 kernels compile on demand
    assert table.meta["index_dtypes"] == ["int64"] and table.meta["complete"] is True
    assert table.meta["nvrtc_package"] == f"nvidia-cuda-nvrtc=={_compile.PINNED_NVRTC}"
    assert table.compiler.startswith("nvrtc ")


def test_shipped_table_was_built_from_the_current_sources(table: ResourceTable) -> None:
    assert table.meta["source_hash"] == kernels.source_hash(), (
        "kernels/*.cu changed since the table was built: run scripts/build_resource_table.py"
    )


def test_shipped_table_figures_are_consistent(table: ResourceTable) -> None:
    for arch, rows in table.entries.items():
        for key, row in rows.items():
            regs, spill_st, spill_ld, stack, _smem = row[: len(COLUMNS)]
            cap = int(key.split("/")[1][3:])
            assert 0 < regs <= 255, (arch, key, row)
            if cap:
                assert regs <= cap, (arch, key, row)
            if spill_st or spill_ld:
                assert stack > 0, (arch, key, row)
    assert set(table.archs) >= {"sm_80", "sm_90"}
    assert len(COLUMNS) == 5
    for arch in ("sm_80", "sm_90"):  # every listed cap is stored explicitly
        for cap in CAPS:
            assert resource_key(KernelConfig(register_cap=cap)) in table.entries[arch], (arch, cap)


def test_pytorch_replica_needs_the_registers_of_the_original(table: ResourceTable) -> None:
    """FACTS.md section 1: the in-loop assert costs registers (nvcc 13.0: 54 with it, 48 without)."""
    inline = perfmodel.kernel_resources(KernelConfig(), "sm_80")
    unchecked = perfmodel.kernel_resources(KernelConfig(bounds_check="separate"), "sm_80")
    capped = perfmodel.kernel_resources(KernelConfig(register_cap=42), "sm_80")
    assert inline is not None and unchecked is not None and capped is not None
    assert inline.registers >= 49  # 50% theoretical occupancy at 256 threads on an A100
    assert unchecked.registers < inline.registers
    assert capped.registers <= 42 and capped.spill_store_bytes > 0 and capped.spill_load_bytes > 0


def test_kernel_resources_is_cheap_enough_for_a_search_hot_path(table: ResourceTable) -> None:
    configs = [KernelConfig(variant=v, register_cap=c, prefetch_distance=p)
               for v in ("pytorch", "warp") for c in (0, 32, 42, 64) for p in range(17)]
    perfmodel.kernel_resources(configs[0], "sm_80")
    t0 = time.perf_counter()
    for _ in range(20):
        for k in configs:
            assert perfmodel.kernel_resources(k, "sm_80") is not None
    per_call = (time.perf_counter() - t0) / (20 * len(configs))
    assert per_call < 50e-6, f"{per_call * 1e6:.1f} us per call"


def test_kernel_resources_checks_its_inputs() -> None:
    with pytest.raises(perfmodel.InputError, match="sm_80"):
        perfmodel.kernel_resources(KernelConfig(), "ampere")
    with pytest.raises(perfmodel.InputError, match="valid choices"):
        perfmodel.kernel_resources(KernelConfig(), "sm_80", index_dtype="int16")
    assert perfmodel.kernel_resources(KernelConfig(), "sm_75") is None


# ---- the compile driver ---------------------------------------------------------------------------

GOLDEN_LOG = """\
ptxas info    : 14 bytes gmem
ptxas info    : Function properties for $__internal_0_$__cuda_sm20_div_s64
ptxas         .     32 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Compiling entry function 'recperf_embedding_bag_pytorch_cap42' for 'sm_80'
ptxas info    : Function properties for recperf_embedding_bag_pytorch_cap42
ptxas         .     40 bytes stack frame, 72 bytes spill stores, 192 bytes spill loads
ptxas info    : Used 42 registers, used 0 barriers, 40 bytes cumulative stack size, 480 bytes cmem[0]
ptxas info    : Compiling entry function 'k2' for 'sm_90'
ptxas info    : Function properties for k2
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 24 registers, 1024 bytes smem, 368 bytes cmem[0]
"""


def test_parse_ptxas_log_golden() -> None:
    got = kernels.parse_ptxas_log(GOLDEN_LOG)
    assert got == {
        "recperf_embedding_bag_pytorch_cap42": {"registers": 42, "spill_store_bytes": 72, "spill_load_bytes": 192,
                                                "stack_bytes": 40, "shared_mem_bytes": 0},
        "k2": {"registers": 24, "spill_store_bytes": 0, "spill_load_bytes": 0, "stack_bytes": 0,
               "shared_mem_bytes": 1024},
    }


@needs_pinned_nvrtc
def test_pinned_nvrtc_reproduces_the_shipped_table(table: ResourceTable) -> None:
    samples = [
        ("sm_80", KernelConfig(), "float32"),
        ("sm_80", KernelConfig(register_cap=42), "float32"),
        ("sm_80", KernelConfig(variant="warp", register_cap=32, prefetch_distance=4), "float32"),
        ("sm_90", KernelConfig(variant="warp", prefetch_distance=7, prefetch_kind="l2-hint", bounds_check="none"),
         "float16"),
        ("sm_90", KernelConfig(prefetch_distance=16, register_cap=24, bounds_check="separate"), "float16"),
    ]
    for arch, k, dtype in samples:
        want = table.lookup(k, arch, dtype=dtype)
        got = kernels.resource_usage(k, arch, dtype=dtype, compiler="nvrtc", use_cache=False)
        assert want is not None
        assert (got.registers, got.spill_store_bytes, got.spill_load_bytes, got.stack_bytes, got.shared_mem_bytes) == (
            want.registers, want.spill_store_bytes, want.spill_load_bytes, want.stack_bytes, want.shared_mem_bytes
        ), (arch, dtype, k)
        assert got.compiler == table.compiler


@needs_pinned_nvrtc
@pytest.mark.slow
def test_pinned_nvrtc_reproduces_random_table_rows(table: ResourceTable) -> None:
    """Fresh random configurations, every cap of each: identical to the shipped figures."""
    import random

    rng = random.Random()
    for _ in range(6):
        arch, variant = rng.choice(["sm_80", "sm_90"]), rng.choice(["pytorch", "warp"])
        pd, kind = rng.randint(0, 16), rng.choice(["register", "l2-hint"])
        bounds, dtype = rng.choice(["inline", "separate", "none"]), rng.choice(["float32", "float16"])
        k = KernelConfig(variant=variant, prefetch_distance=pd, prefetch_kind=kind, bounds_check=bounds)
        figs = _compile.compile_figures(kernels.compile_key(k, dtype=dtype), arch, _compile.NvrtcCompiler(), caps=CAPS)
        for cap, f in figs.items():
            want = table.lookup(k.replace(register_cap=cap), arch, dtype=dtype)
            assert want is not None and [f[c] for c in COLUMNS] == [getattr(want, c) for c in COLUMNS], (
                arch, dtype, k, cap, f, want)


@needs_pinned_nvrtc
def test_a_cap_above_the_uncapped_count_can_still_change_the_allocation() -> None:
    """Why the table stores every cap: on sm_90 ptxas allocates differently under any cap."""
    key = kernels.compile_key(KernelConfig(variant="warp", prefetch_distance=5, bounds_check="separate"))
    figs = _compile.compile_figures(key, "sm_90", _compile.NvrtcCompiler(), caps=[0, 255])
    assert figs[255]["registers"] != figs[0]["registers"], figs
    single = kernels.resource_usage(KernelConfig(variant="warp", prefetch_distance=5, bounds_check="separate",
                                                 register_cap=255), "sm_90", compiler="nvrtc", use_cache=False)
    assert single.registers == figs[255]["registers"]  # one program per cap list = separate programs


@needs_pinned_nvrtc
def test_cubin_records_agree_with_the_ptxas_report() -> None:
    key = kernels.compile_key(KernelConfig(register_cap=40, prefetch_distance=3))
    res = _compile.NvrtcCompiler().compile(key.source, key.defines(), "sm_90")
    from_cubin = kernels.parse_cubin(res.cubin)[key.entry]
    from_log = kernels.parse_ptxas_log(res.log)[key.entry]
    assert from_cubin["registers"] == from_log["registers"] <= 40
    assert from_cubin["stack_bytes"] == from_log["stack_bytes"]


@needs_nvcc
def test_nvcc_figures_carry_their_version() -> None:
    got = kernels.resource_usage(KernelConfig(), "sm_80", compiler="nvcc", use_cache=False)
    assert got.compiler.startswith("nvcc ") and got.source == "compiled"
    assert got.registers >= 49


def test_without_a_compiler_the_shipped_table_answers(monkeypatch: pytest.MonkeyPatch, table: ResourceTable) -> None:
    monkeypatch.setattr(_compile, "available_compiler", lambda: None)
    for k in (KernelConfig(), KernelConfig(register_cap=42), KernelConfig(variant="warp", prefetch_distance=5)):
        got = kernels.resource_usage(k, "sm_80")
        assert got == table.lookup(k, "sm_80")
        assert got.source == "table" and got.compiler == table.compiler


def test_compile_results_are_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if kernels.available_compiler() is None:
        pytest.skip("no CUDA compiler (NVRTC or nvcc) installed")
    monkeypatch.setenv("RECPERF_CACHE_DIR", str(tmp_path))
    k = KernelConfig(variant="warp", bounds_check="none")
    first = kernels.resource_usage(k, "sm_80")
    second = kernels.resource_usage(k, "sm_80")
    assert first.source == "compiled" and second.source == "cache"
    assert first.to_dict() | {"source": ""} == second.to_dict() | {"source": ""}


# ---- the command -------------------------------------------------------------------------------------


def _recperf(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "recperf", *args], capture_output=True, text=True, check=False)


def test_resources_command_json(tmp_path: Path) -> None:
    k = tmp_path / "k.toml"
    k.write_text('variant = "pytorch"\nblock_size = 256\nbounds_check = "inline"\nregister_cap = 42\n')
    out = _recperf("resources", "--arch", "sm_80", "--kernel", str(k), "--compiler", "table", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    for field in ("registers", "spill_store_bytes", "spill_load_bytes", "shared_mem_bytes", "compiler"):
        assert field in doc
    assert doc["registers"] <= 42 and doc["spill_store_bytes"] > 0 and doc["source"] == "table"


def test_resources_command_text_and_occupancy() -> None:
    out = _recperf("resources", "--gpu", "a100-80gb", "--compiler", "table")
    assert out.returncode == 0, out.stderr
    assert "registers per thread" in out.stdout and "occupancy on a100-80gb" in out.stdout


def test_resources_command_rejects_bad_input(tmp_path: Path) -> None:
    out = _recperf("resources", "--arch", "volta", "--compiler", "table", "--json")
    assert out.returncode == 2 and out.stderr.startswith("error:") and out.stdout == ""
    out = _recperf("resources", "--arch", "sm_80", "--compiler", "clang")
    assert out.returncode == 2 and "valid choices" in out.stderr
