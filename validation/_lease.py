"""The one-command GPU run's pure parts, in Python's standard library only.

``scripts/gpu_validate.sh`` runs this file with the machine's bare ``python3`` before any
environment exists (``python3 validation/_lease.py plan ...``), and again at the end to pack
the run (``... pack ...``); the package imports it as :mod:`validation._lease`. It holds:

- reading ``nvidia-smi``: the driver's CUDA version (its header line) and the GPUs;
- the install plan: the extra for the driver's CUDA major (``gpu-cuda12`` or ``gpu-cuda13``),
  and whether a CuPy already on the system can be reused;
- the budget: how the seconds left are split over the phases;
- the archive: its name, packing a run folder into one ``.tar.gz`` with a manifest (files,
  sizes, SHA-256, GPU, whether the data are synthetic), and safe extraction.

Errors a user can fix raise :class:`LeaseError`; the command line prints them as one
``error:`` line and exits 2.
"""

from __future__ import annotations

import datetime as _dt
import gzip
import hashlib
import io
import json
import os
import re
import sys
import tarfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "ARCHIVE_FORMAT",
    "SMOKE_S",
    "LeaseError",
    "archive_name",
    "choose_extra",
    "cupy_cuda_major",
    "extract_archive",
    "pack_run",
    "parse_smi_cuda_version",
    "plan_phases",
    "read_manifest",
    "slug",
]

#: the manifest's ``format`` field of a run archive
ARCHIVE_FORMAT = "recperf-gpu-validate/1"
#: the smoke phase's share of the budget is at most this many seconds
SMOKE_S = 60.0
#: seconds kept for the phases after the sweep: calibration, the two reports, packing
TAIL_S = {"calibrate": 15.0, "report": 30.0, "pack": 5.0}
#: the least budget worth running: the tail plus a minimal smoke, micro and sweep
MIN_BUDGET_S = sum(TAIL_S.values()) + 30.0
#: CUDA majors with a GPU extra in pyproject.toml
EXTRAS = {12: "gpu-cuda12", 13: "gpu-cuda13"}
#: the largest archive a reader unpacks (a run archive is a few MB)
MAX_ARCHIVE_BYTES = 512 << 20


class LeaseError(Exception):
    """A problem the user can fix (no GPU, an unusable driver, a bad argument)."""


# ---- nvidia-smi -------------------------------------------------------------------------------

_SMI_CUDA = re.compile(r"CUDA Version:\s*(\d+)\.(\d+)")


def parse_smi_cuda_version(text: str) -> tuple[int, int] | None:
    """The highest CUDA version the driver supports, from ``nvidia-smi``'s header
    (``| NVIDIA-SMI 580.159.03   Driver Version: 580.159.03   CUDA Version: 13.0 |``)."""
    m = _SMI_CUDA.search(text)
    return (int(m.group(1)), int(m.group(2))) if m else None


def cupy_cuda_major(dist_name: str) -> int | None:
    """The CUDA major a CuPy wheel is built for, from its distribution name (``cupy-cuda12x``
    -> 12); None for a source build (``cupy``) or another name."""
    m = re.fullmatch(r"cupy-cuda(\d\d)x", dist_name.strip().lower().replace("_", "-"))
    return int(m.group(1)) if m else None


def choose_extra(driver_cuda: tuple[int, int], system_cupy: str | None = None) -> dict[str, Any]:
    """What to install for a driver that supports CUDA ``driver_cuda``.

    ``system_cupy`` is the distribution name of a CuPy the system Python already has (or None).
    It is reused when it is a wheel for a CUDA major the driver runs (the driver runs any older
    major too); then the environment sees the system packages and installs only what is
    missing. Returns ``{"extra", "cuda_major", "reuse_system_cupy", "reason"}``.
    """
    major, minor = driver_cuda
    if major < min(EXTRAS):
        raise LeaseError(f"the driver supports CUDA {major}.{minor}, but the GPU extras need a CUDA 12 or 13 driver "
                         f"(R525 or newer); update the NVIDIA driver")
    pick = max(m for m in EXTRAS if m <= major)
    cupy_major = cupy_cuda_major(system_cupy) if system_cupy else None
    if cupy_major is not None and cupy_major in EXTRAS and cupy_major <= major:
        return {"extra": EXTRAS[cupy_major], "cuda_major": cupy_major, "reuse_system_cupy": True,
                "reason": f"the system's {system_cupy} runs on this CUDA {major}.{minor} driver: reused"}
    why = f"driver CUDA {major}.{minor}"
    if system_cupy:
        why += f"; the system's {system_cupy} is not reused (" + (
            "a source build of unknown CUDA major" if cupy_major is None else
            f"built for CUDA {cupy_major}, newer than the driver") + "): an isolated environment"
    return {"extra": EXTRAS[pick], "cuda_major": pick, "reuse_system_cupy": False, "reason": why}


def system_cupy() -> str | None:
    """The distribution name of a CuPy installed for this Python, or None (no import: cheap)."""
    from importlib import metadata

    for dist in metadata.distributions():
        name = str(dist.name or "").lower().replace("_", "-")
        if name == "cupy" or name.startswith("cupy-cuda"):
            return name
    return None


# ---- the budget ---------------------------------------------------------------------------------


def plan_phases(budget_s: float) -> dict[str, float]:
    """Seconds for each phase of a run with ``budget_s`` left: the smoke phase at most
    :data:`SMOKE_S` (a fifth of what the measuring phases get), the microbenchmarks 35% and the
    sweep 65% of the rest; calibration, reports and packing keep :data:`TAIL_S`."""
    if not budget_s >= MIN_BUDGET_S:
        raise LeaseError(f"`--budget-s >= {MIN_BUDGET_S:g}` must hold (time left for the phases), but got {budget_s:g}")
    measuring = budget_s - sum(TAIL_S.values())
    smoke = min(SMOKE_S, 0.2 * measuring)
    rest = measuring - smoke
    plan = {"smoke": smoke, "micro": 0.35 * rest, "sweep": 0.65 * rest, **TAIL_S}
    return {k: round(v, 1) for k, v in plan.items()}


# ---- the archive ---------------------------------------------------------------------------------


def slug(text: str) -> str:
    """A file-name-safe lower-case form (letters, digits, dashes)."""
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return s or "unknown"


def archive_name(gpu: str, when: _dt.datetime, *, synthetic: bool = False) -> str:
    """``gpu-validate-<gpu>-<UTC date and time>``, with ``synthetic-`` before the GPU for
    synthetic data."""
    stamp = when.astimezone(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"gpu-validate-{'synthetic-' if synthetic else ''}{slug(gpu)}-{stamp}"


def _files(run_dir: Path) -> list[Path]:
    return sorted(p for p in run_dir.rglob("*") if p.is_file() and not p.is_symlink())


def pack_run(run_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str], *, gpu: str, when: _dt.datetime,
             synthetic: bool = False, manifest: Mapping[str, Any] | None = None) -> Path:
    """Pack every file of ``run_dir`` into ``out_dir/<archive_name>.tar.gz`` under one folder of
    that name, with ``manifest.json`` (format, GPU, date, ``synthetic``, each file's size and
    SHA-256, plus ``manifest``'s fields). The same inputs give the same bytes."""
    src = Path(run_dir)
    if not src.is_dir():
        raise LeaseError(f"run folder {str(src)!r} does not exist")
    name = archive_name(gpu, when, synthetic=synthetic)
    files = [p for p in _files(src) if p.name != "manifest.json"]
    entries = {p.relative_to(src).as_posix(): p.read_bytes() for p in files}
    doc: dict[str, Any] = {"format": ARCHIVE_FORMAT, "name": name, "gpu": gpu, "synthetic": bool(synthetic),
                           "created": when.astimezone(_dt.timezone.utc).isoformat(timespec="seconds"),
                           **dict(manifest or {})}
    doc["files"] = {k: {"bytes": len(v), "sha256": hashlib.sha256(v).hexdigest()} for k, v in entries.items()}
    entries["manifest.json"] = (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()
    out = Path(out_dir) / f"{name}.tar.gz"
    out.parent.mkdir(parents=True, exist_ok=True)
    mtime = int(when.timestamp())
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=mtime) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rel in sorted(entries):
            data = entries[rel]
            info = tarfile.TarInfo(f"{name}/{rel}")
            info.size, info.mtime, info.mode = len(data), mtime, 0o644
            tar.addfile(info, io.BytesIO(data))
    tmp = out.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(buf.getvalue())
    tmp.replace(out)
    return out


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of a run archive, checked: ``format``, one top folder, every listed file
    present with its size and SHA-256."""
    top, members = _members(Path(path))
    raw = members.get("manifest.json")
    if raw is None:
        raise LeaseError(f"{path}: not a run archive (no {top}/manifest.json)")
    try:
        doc = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise LeaseError(f"{path}: manifest.json is not JSON ({exc.msg})") from None
    if not isinstance(doc, dict) or doc.get("format") != ARCHIVE_FORMAT:
        raise LeaseError(f"{path}: manifest format must be {ARCHIVE_FORMAT!r}, but got "
                         f"{doc.get('format') if isinstance(doc, dict) else doc!r}")
    for rel, meta in dict(doc.get("files", {})).items():
        data = members.get(rel)
        if data is None or len(data) != meta.get("bytes") or hashlib.sha256(data).hexdigest() != meta.get("sha256"):
            raise LeaseError(f"{path}: {rel} is missing or differs from the manifest's size and SHA-256")
    return doc


def _members(path: Path) -> tuple[str, dict[str, bytes]]:
    """(top folder, {relative path: bytes}) of a run archive; refuses anything but regular
    files and folders under one top folder (no links, no absolute or ``..`` paths)."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise LeaseError(f"cannot read archive {str(path)!r}: {exc.strerror}") from None
    if size > MAX_ARCHIVE_BYTES:
        raise LeaseError(f"archive {str(path)!r} is {size} bytes; a run archive is at most {MAX_ARCHIVE_BYTES}")
    out: dict[str, bytes] = {}
    tops: set[str] = set()
    total = 0
    try:
        with tarfile.open(path, mode="r:gz") as tar:
            for m in tar:
                parts = Path(m.name).parts
                if m.name.startswith("/") or ".." in parts or not parts:
                    raise LeaseError(f"{path}: unsafe member name {m.name!r}")
                if m.isdir():
                    tops.add(parts[0])
                    continue
                if not m.isfile():
                    raise LeaseError(f"{path}: member {m.name!r} is not a regular file")
                if len(parts) < 2:
                    raise LeaseError(f"{path}: member {m.name!r} is not inside the archive's folder")
                total += m.size
                if total > 4 * MAX_ARCHIVE_BYTES:
                    raise LeaseError(f"{path}: unpacks to more than {4 * MAX_ARCHIVE_BYTES} bytes")
                f = tar.extractfile(m)
                tops.add(parts[0])
                out["/".join(parts[1:])] = f.read() if f is not None else b""
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise LeaseError(f"{path}: not a readable .tar.gz archive ({type(exc).__name__}: {exc})") from None
    if len(tops) != 1:
        raise LeaseError(f"{path}: a run archive holds one folder, but got {sorted(tops) or 'none'}")
    return tops.pop(), out


def extract_archive(path: str | os.PathLike[str], cache_root: str | os.PathLike[str]) -> tuple[Path, dict[str, Any]]:
    """Unpack a run archive (checked with :func:`read_manifest`) under ``cache_root``, in a folder
    named by the archive's SHA-256, once; returns (the run folder, the manifest)."""
    p = Path(path)
    manifest = read_manifest(p)
    digest = hashlib.sha256(p.read_bytes()).hexdigest()[:20]
    top, members = _members(p)
    dest = Path(cache_root) / "archives" / digest / top
    done = dest / ".complete"
    if not done.is_file():
        for rel, data in members.items():
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        done.write_text(digest + "\n")
    return dest, manifest


# ---- the command line (run by scripts/gpu_validate.sh with a bare python3) ---------------------


def _cmd_plan(args: Sequence[str]) -> dict[str, Any]:
    """``plan SMI_OUTPUT_FILE|- BUDGET_S``: the extra, whether a system CuPy is reused, the phases."""
    if len(args) != 2:
        raise LeaseError("usage: _lease.py plan NVIDIA_SMI_OUTPUT_FILE|- BUDGET_S")
    try:
        text = sys.stdin.read() if args[0] == "-" else Path(args[0]).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise LeaseError(f"cannot read nvidia-smi's output {args[0]!r}: {exc.strerror}") from None
    cuda = parse_smi_cuda_version(text)
    if cuda is None:
        raise LeaseError("nvidia-smi names no CUDA version: the NVIDIA driver is not usable here")
    try:
        budget = float(args[1])
    except ValueError:
        raise LeaseError(f"`--budget-s` must be a number of seconds, but got {args[1]!r}") from None
    plan = choose_extra(cuda, system_cupy())
    return {**plan, "driver_cuda": f"{cuda[0]}.{cuda[1]}", "phases": plan_phases(budget)}


def _read_json(path: Path) -> dict[str, Any]:
    """A JSON object from a file, or {} when it is missing or unreadable (a phase that failed)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _cmd_pack(args: Sequence[str]) -> dict[str, Any]:
    """``pack RUN_DIR OUT_DIR STAMP``: the archive of a run (GPU id from the run's env.json)."""
    if len(args) != 3:
        raise LeaseError("usage: _lease.py pack RUN_DIR OUT_DIR UTC_STAMP (YYYYmmddTHHMMSSZ)")
    run = Path(args[0])
    when = _dt.datetime.strptime(args[2], "%Y%m%dT%H%M%SZ").replace(tzinfo=_dt.timezone.utc)
    env, summary = _read_json(run / "env.json"), _read_json(run / "summary.json")
    gpu = str(env.get("gpu_id") or env.get("device_name") or "unknown-gpu")
    extra = {"device_name": env.get("device_name"), "device_uuid": env.get("device_uuid"),
             "driver_version": env.get("driver_version"), "cuda_runtime_version": env.get("cuda_runtime_version"),
             "nvrtc_version": env.get("nvrtc_version"), "phases_failed": sorted(summary.get("errors", {}))}
    out = pack_run(run, args[1], gpu=gpu, when=when, manifest=extra)
    return {"archive": str(out)}


def main(argv: Sequence[str] | None = None) -> int:
    """``plan`` or ``pack``; prints one JSON object, or one ``error:`` line and exits 2."""
    args = list(sys.argv[1:] if argv is None else argv)
    commands = {"plan": _cmd_plan, "pack": _cmd_pack}
    try:
        if not args or args[0] not in commands:
            raise LeaseError(f"a subcommand is required; valid choices: {', '.join(commands)}")
        result = commands[args[0]](args[1:])
    except LeaseError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
