"""The one-command GPU run without a GPU: scripts/gpu_validate.sh's error paths and plan, and the
pure parts it calls (validation/_lease.py: nvidia-smi, the extra, the budget, the archive)."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from perfmodel import KernelConfig
from validation import _lease
from validation._lease import (
    LeaseError,
    archive_name,
    choose_extra,
    cupy_cuda_major,
    extract_archive,
    pack_run,
    parse_smi_cuda_version,
    plan_phases,
    read_manifest,
)

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "gpu_validate.sh"
WHEN = dt.datetime(2026, 11, 20, 10, 15, 0, tzinfo=dt.timezone.utc)
#: the header nvidia-smi printed on the lent H200 (driver 580, FACTS/KINDS) and an older CUDA 12 one
SMI_580 = ("+-----------------------------------------------------------------------------------------+\n"
           "| NVIDIA-SMI 580.159.03             Driver Version: 580.159.03     CUDA Version: 13.0     |\n")
SMI_550 = "| NVIDIA-SMI 550.54.15              Driver Version: 550.54.15      CUDA Version: 12.4     |\n"


def test_cuda_version_from_nvidia_smi() -> None:
    assert parse_smi_cuda_version(SMI_580) == (13, 0)
    assert parse_smi_cuda_version(SMI_550) == (12, 4)
    assert parse_smi_cuda_version("No devices were found") is None


@pytest.mark.parametrize(("driver", "system", "extra", "reuse"), [
    ((12, 4), None, "gpu-cuda12", False),
    ((13, 0), None, "gpu-cuda13", False),
    ((13, 1), "cupy-cuda13x", "gpu-cuda13", True),  # the lent H200's image
    ((13, 0), "cupy-cuda12x", "gpu-cuda12", True),  # a CUDA 12 build runs on a CUDA 13 driver
    ((12, 8), "cupy-cuda13x", "gpu-cuda12", False),  # too new for the driver: isolated environment
    ((12, 8), "cupy", "gpu-cuda12", False),  # a source build: unknown major
])
def test_the_extra_follows_the_driver_and_reuses_a_fitting_system_cupy(driver: tuple[int, int], system: str | None,
                                                                       extra: str, reuse: bool) -> None:
    plan = choose_extra(driver, system)
    assert (plan["extra"], plan["reuse_system_cupy"]) == (extra, reuse), plan


def test_old_drivers_and_cupy_names() -> None:
    with pytest.raises(LeaseError, match=r"CUDA 11\.8"):
        choose_extra((11, 8))
    assert cupy_cuda_major("cupy-cuda12x") == 12 and cupy_cuda_major("cupy_cuda13x") == 13
    assert cupy_cuda_major("cupy") is None and cupy_cuda_major("cupy-rocm-5-0") is None


@pytest.mark.parametrize("budget", [80, 100, 233.5, 420, 600, 3600])
def test_the_phases_fit_the_budget(budget: float) -> None:
    plan = plan_phases(budget)
    assert sum(plan.values()) <= budget + 0.5  # rounding to 0.1 s per phase
    assert 0 < plan["smoke"] <= 60 and plan["micro"] > 0 and plan["sweep"] > plan["micro"]
    assert plan["calibrate"] + plan["report"] + plan["pack"] == sum(_lease.TAIL_S.values())
    if budget == 420:
        assert plan["smoke"] == 60 and plan["sweep"] > 180


def test_too_small_a_budget_is_refused() -> None:
    with pytest.raises(LeaseError, match="budget-s >= 80"):
        plan_phases(79)
    with pytest.raises(LeaseError):
        plan_phases(float("nan"))


def _run_dir(tmp_path: Path) -> Path:
    run = tmp_path / "gpu-validate-20261120T101500Z"
    (run / "traces").mkdir(parents=True)
    (run / "env.json").write_text(json.dumps({"gpu_id": "h200", "device_name": "NVIDIA H200", "driver_version": 13000}))
    (run / "summary.json").write_text(json.dumps({"errors": {"micro": "RuntimeError: x"}}))
    (run / "measurements.jsonl").write_text('{"gpu": "h200"}\n')
    (run / "traces" / "t.txt").write_text("1\n2\n")
    return run


def test_pack_is_reproducible_and_the_manifest_checks_every_file(tmp_path: Path) -> None:
    run = _run_dir(tmp_path)
    a = pack_run(run, tmp_path / "a", gpu="h200", when=WHEN, manifest={"phases_failed": ["micro"]})
    b = pack_run(run, tmp_path / "b", gpu="h200", when=WHEN, manifest={"phases_failed": ["micro"]})
    assert a.name == "gpu-validate-h200-20261120T101500Z.tar.gz" and a.read_bytes() == b.read_bytes()
    doc = read_manifest(a)
    assert doc["format"] == _lease.ARCHIVE_FORMAT and doc["gpu"] == "h200" and doc["synthetic"] is False
    assert set(doc["files"]) == {"env.json", "summary.json", "measurements.jsonl", "traces/t.txt"}
    assert doc["phases_failed"] == ["micro"]
    with tarfile.open(a) as tar:
        assert {m.name.split("/")[0] for m in tar} == {"gpu-validate-h200-20261120T101500Z"}
    root, manifest = extract_archive(a, tmp_path / "cache")
    assert (root / "traces" / "t.txt").read_text() == "1\n2\n" and manifest == doc
    assert extract_archive(a, tmp_path / "cache")[0] == root  # unpacked once per content
    assert archive_name("NVIDIA H200", WHEN, synthetic=True) == "gpu-validate-synthetic-nvidia-h200-20261120T101500Z"


def _tar(path: Path, members: dict[str, bytes], *, link: str | None = None) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if link:
            info = tarfile.TarInfo(link)
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(info)
    return path


@pytest.mark.parametrize(("members", "link", "message"), [
    ({"run/../../evil": b"x", "run/manifest.json": b"{}"}, None, "unsafe member"),
    ({"/abs": b"x"}, None, "unsafe member"),
    ({"run/manifest.json": b"{}"}, "run/link", "not a regular file"),
    ({"a/manifest.json": b"{}", "b/x": b"y"}, None, "one folder"),
    ({"run/x": b"y"}, None, "no run/manifest.json"),
    ({"run/manifest.json": b'{"format": "other"}'}, None, "manifest format"),
])
def test_unsafe_or_foreign_archives_are_refused(tmp_path: Path, members: dict[str, bytes], link: str | None,
                                                message: str) -> None:
    with pytest.raises(LeaseError, match=message):
        read_manifest(_tar(tmp_path / "a.tar.gz", members, link=link))


def test_a_tampered_archive_is_refused(tmp_path: Path) -> None:
    a = pack_run(_run_dir(tmp_path), tmp_path, gpu="h200", when=WHEN)
    with tarfile.open(a) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]
    members[next(k for k in members if k.endswith("measurements.jsonl"))] = b'{"gpu": "a100-80gb"}\n'
    with pytest.raises(LeaseError, match=r"measurements\.jsonl is missing or differs"):
        read_manifest(_tar(tmp_path / "t.tar.gz", members))
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"junk")
    with pytest.raises(LeaseError, match="not a readable"):
        read_manifest(junk)


def _lease_cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "validation" / "_lease.py"), *args], input=stdin,
                          capture_output=True, text=True, check=False)


def test_the_lease_module_runs_on_a_bare_python(tmp_path: Path) -> None:
    # -I: isolated, so nothing but the standard library is importable besides the file itself
    out = subprocess.run([sys.executable, "-I", str(ROOT / "validation" / "_lease.py"), "plan", "-", "420"],
                         input=SMI_550, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    plan = json.loads(out.stdout)
    assert plan["extra"] == "gpu-cuda12" and plan["driver_cuda"] == "12.4" and plan["phases"]["smoke"] == 60
    packed = _lease_cli("pack", str(_run_dir(tmp_path)), str(tmp_path / "out"), "20261120T101500Z")
    assert packed.returncode == 0 and json.loads(packed.stdout)["archive"].endswith(
        "out/gpu-validate-h200-20261120T101500Z.tar.gz")


@pytest.mark.parametrize(("args", "stdin", "message"), [
    (["plan", "-", "420"], "No devices were found", "names no CUDA version"),
    (["plan", "-", "soon"], SMI_550, "must be a number"),
    (["plan", "-", "30"], SMI_550, "budget-s >= 80"),
    (["plan", "-", "420"], "| CUDA Version: 11.4 |", "CUDA 11.4"),
    (["pack", "/nonexistent", "out", "20261120T101500Z"], "", "does not exist"),
    (["frobnicate"], "", "valid choices: plan, pack"),
])
def test_lease_cli_errors_are_one_line_and_exit_2(args: list[str], stdin: str, message: str) -> None:
    out = _lease_cli(*args, stdin=stdin)
    assert out.returncode == 2 and out.stdout == "" and message in out.stderr
    assert out.stderr.startswith("error:") and len(out.stderr.strip().splitlines()) == 1


# ---- the script itself --------------------------------------------------------------------------


def _path_without_nvidia_smi(extra: Path | None = None) -> str:
    dirs = [d for d in os.environ.get("PATH", "").split(os.pathsep) if d and not (Path(d) / "nvidia-smi").exists()]
    return os.pathsep.join(([str(extra)] if extra else []) + dirs)


def _script(*args: str, path: str, cwd: Path = ROOT) -> tuple[subprocess.CompletedProcess[str], float]:
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"} | {"PATH": path}
    start = time.monotonic()
    out = subprocess.run(["bash", str(SCRIPT), *args], cwd=cwd, env=env, capture_output=True, text=True,
                         timeout=120, check=False)
    return out, time.monotonic() - start


def _fake_smi(tmp_path: Path, body: str, status: int = 0) -> Path:
    d = tmp_path / "bin"
    d.mkdir(exist_ok=True)
    exe = d / "nvidia-smi"
    exe.write_text(f"#!/bin/sh\ncat <<'EOF'\n{body}EOF\nexit {status}\n")
    exe.chmod(0o755)
    return d


def test_without_a_gpu_the_script_stops_at_once_with_one_error_line(tmp_path: Path) -> None:
    if shutil.which("bash") is None:
        pytest.skip("bash not found")
    out, seconds = _script("--out", str(tmp_path / "out"), path=_path_without_nvidia_smi())
    assert out.returncode == 2 and seconds < 30, (out.returncode, seconds)
    assert out.stderr.startswith("error:") and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "nvidia-smi" in out.stderr and "Traceback" not in out.stderr + out.stdout
    assert not (tmp_path / "out").exists()  # nothing was made, nothing installed


@pytest.mark.parametrize(("smi", "status", "args", "message"), [
    ("No devices were found\n", 6, [], "nvidia-smi finds no usable GPU: No devices were found"),
    ("| CUDA Version: 11.8 |\n", 0, [], "CUDA 11.8"),
    (SMI_550, 0, ["--budget-s", "20"], "budget-s >= 80"),
    (SMI_550, 0, ["--budget-s"], "--budget-s needs a number"),
    (SMI_550, 0, ["--frob"], "unknown option '--frob'"),
])
def test_script_errors_are_one_line_and_exit_2(tmp_path: Path, smi: str, status: int, args: list[str],
                                                message: str) -> None:
    out, seconds = _script("--out", str(tmp_path / "out"), *args, path=_path_without_nvidia_smi(
        _fake_smi(tmp_path, smi, status)))
    assert out.returncode == 2 and seconds < 30
    assert out.stderr.startswith("error:") and len(out.stderr.strip().splitlines()) == 1 and message in out.stderr, \
        out.stderr


@pytest.mark.parametrize(("smi", "extra"), [(SMI_550, "gpu-cuda12"), (SMI_580, "gpu-cuda13")])
def test_script_plan_picks_the_extra_from_the_driver(tmp_path: Path, smi: str, extra: str) -> None:
    py = tmp_path / "pybin"
    py.mkdir()
    (py / "python3").symlink_to(sys.executable)  # this interpreter: no system CuPy here
    out, _ = _script("--plan-only", "--budget-s", "300", "--out", str(tmp_path / "out"),
                     path=_path_without_nvidia_smi(_fake_smi(tmp_path, smi)).replace(
                         str(tmp_path / "bin"), f"{tmp_path / 'bin'}{os.pathsep}{py}"))
    assert out.returncode == 0, out.stderr
    plan = json.loads(out.stdout.strip().splitlines()[-1])
    assert plan["extra"] == extra and plan["env"] == f"{tmp_path / 'out'}/gpu-env-{extra}"
    assert sum(plan["phases"].values()) <= 300.5 and not (tmp_path / "out").exists()


def test_script_reuses_a_system_cupy_and_installs_nothing(tmp_path: Path) -> None:
    """A system Python that already has a CuPy wheel (here: this interpreter, a stand-in CuPy
    package and its distribution record on PYTHONPATH) gets the environment without pip: the
    Python itself with the checkout on its path. With no GPU the preflight then stops it."""
    pytest.importorskip("cuda.bindings.runtime", reason="the environment check imports cuda-bindings")
    stub = tmp_path / "site"
    (stub / "cupy").mkdir(parents=True)
    (stub / "cupy" / "__init__.py").write_text('"""a stand-in: no device."""\n')
    info = stub / "cupy_cuda13x-14.2.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: cupy-cuda13x\nVersion: 14.2.0\n")
    py = tmp_path / "pybin"
    py.mkdir()
    (py / "python3").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')  # this environment's Python
    (py / "python3").chmod(0o755)
    path = _path_without_nvidia_smi(_fake_smi(tmp_path, SMI_580)).replace(
        str(tmp_path / "bin"), f"{tmp_path / 'bin'}{os.pathsep}{py}")
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"} | {
        "PATH": path, "PYTHONPATH": str(stub), "PIP_NO_INDEX": "1"}
    out = subprocess.run(["bash", str(SCRIPT), "--out", str(tmp_path / "out")], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 2 and out.stderr.startswith("error:") and len(out.stderr.strip().splitlines()) == 1
    assert "CuPy finds none" in out.stderr, out.stderr
    wrapper = tmp_path / "out" / "gpu-env-gpu-cuda13-system" / "bin" / "python"
    assert str(ROOT) in wrapper.read_text() and "exec" in wrapper.read_text()
    # the Python itself (its site.getsitepackages(), where cuda-pathfinder finds NVRTC), not a venv on top
    probe = subprocess.run([str(wrapper), "-c", "import site, sys, kernels; print(sys.prefix); print(kernels.__file__)"],
                           capture_output=True, text=True, check=True, env=env).stdout.split()
    assert probe == [sys.prefix, str(ROOT / "kernels" / "__init__.py")]
    (log,) = (tmp_path / "out").glob("gpu-validate-*/install.log")
    assert "nothing installed" in log.read_text()


@pytest.mark.slow
def test_the_whole_script_on_a_stand_in_gpu(tmp_path: Path) -> None:
    """scripts/gpu_validate.sh end to end, every phase's real code, on the stand-in CuPy
    (tests/_fake_cupy.py, loaded into each Python the script starts through sitecustomize): the
    CUDA sources run on the CPU, so the times are CPU times, and the microbenchmarks record
    nothing real (calibration may or may not fit them). Checks that the exit status, the one line
    per failed phase and the manifest agree, the archive printed last, and its replay."""
    pytest.importorskip("cuda.bindings.runtime", reason="the stand-in keeps cuda-bindings' own types")
    from kernels import cpu_compiler

    if cpu_compiler() is None:
        pytest.skip("the stand-in runs the CUDA sources on the CPU: needs g++")
    site = tmp_path / "site"
    info = site / "cupy_cuda13x-14.2.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: cupy-cuda13x\nVersion: 14.2.0\n")
    (site / "sitecustomize.py").write_text(
        f"import sys\nsys.path.insert(0, {str(ROOT / 'tests')!r})\nimport pytest\nfrom _fake_cupy import install\n"
        "install(pytest.MonkeyPatch())\n")
    py = tmp_path / "pybin"
    py.mkdir()
    (py / "python3").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (py / "python3").chmod(0o755)
    path = _path_without_nvidia_smi(_fake_smi(tmp_path, SMI_580)).replace(
        str(tmp_path / "bin"), f"{tmp_path / 'bin'}{os.pathsep}{py}")
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"} | {
        "PATH": path, "PYTHONPATH": str(site), "PIP_NO_INDEX": "1"}
    out = subprocess.run(["bash", str(SCRIPT), "--out", str(tmp_path / "out"), "--budget-s", "160"], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=900, check=False)
    # the stand-in's microbenchmarks time CPU code: whether calibration can fit them depends on this
    # machine, so the check is that the exit status, the failure lines and the manifest agree
    assert out.returncode in (0, 1), (out.returncode, out.stderr[-2000:])
    failed = out.stderr.strip().splitlines()
    assert all(line.startswith("phase ") and " failed" in line for line in failed), out.stderr[-2000:]
    assert (out.returncode == 1) == bool(failed)
    archive = Path(out.stdout.strip().splitlines()[-1])
    assert archive.parent == tmp_path / "out" and archive.name.startswith("gpu-validate-h200-") and archive.is_file()
    manifest = read_manifest(archive)
    assert manifest["gpu"] == "h200" and manifest["synthetic"] is False
    assert sorted(manifest["phases_failed"]) == sorted(line.split()[1] for line in failed)
    assert not {"smoke", "sweep", "report"} & set(manifest["phases_failed"]), manifest["phases_failed"]
    assert {"env.json", "smoke.json", "micro.jsonl", "measurements.jsonl", "summary.json", "nvidia-smi.txt",
            "workload.toml", "traces/reuse_low_500K.txt"} <= set(manifest["files"])
    from validation import accuracy_report

    rep = accuracy_report(archive)
    assert rep.metrics.n >= 1 and rep.records[0].kernel == KernelConfig()  # PyTorch's kernel first


def test_preflight_without_a_gpu_exits_2_with_one_line() -> None:
    from kernels import gpu_available

    if gpu_available()[0]:
        pytest.skip("a GPU is present: preflight would pass")
    out = subprocess.run([sys.executable, "-m", "recperf", "validate", "preflight", "--json"], capture_output=True,
                         text=True, check=False)
    assert out.returncode == 2 and out.stdout == "" and out.stderr.startswith("error:")
    assert len(out.stderr.strip().splitlines()) == 1 and "GPU" in out.stderr
