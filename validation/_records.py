"""Measurement files: JSON lines, one timed run per line (CONTRACT.md).

Each record has at least ``{"gpu": id, "workload": path-or-inline-table, "kernel": {kernel
config keys}, "time_s": float}``. A ``workload`` path is relative to the measurement file
(or absolute); an inline table has the keys of the workload TOML file, and its trace paths
are relative to the measurement file too. Hardware runs add the environment (``env``:
device, UUID, driver, CUDA and library versions, clocks), the repetitions (``times_s``),
the verification result (``verified``, ``max_abs_error``), ``warm_cache`` and ``timestamp``.
Synthetic files say so in a ``note`` field of every record.

Writers append one line at a time and flush it to disk, so a crash loses nothing, and a
re-run skips the records whose :func:`record_key` is already in the file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import perfmodel
from perfmodel import InputError, KernelConfig, Workload

__all__ = [
    "MeasurementRecord",
    "append_record",
    "done_keys",
    "read_measurements",
    "record_key",
    "workload_ref",
    "write_records",
]

_REQUIRED = ("gpu", "workload", "kernel", "time_s")


@dataclass(frozen=True, kw_only=True)
class MeasurementRecord:
    """One timed run, parsed and resolved."""

    gpu: str
    workload: Workload
    #: what identifies the workload: the resolved file path, or the inline table as canonical JSON
    workload_ref: str
    kernel: KernelConfig
    time_s: float
    #: 1-based line number in the measurement file
    line: int
    #: the record as read, every field included
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)


def workload_ref(workload: Any, base_dir: str | os.PathLike[str]) -> str:
    """The key of a record's ``workload`` field: a resolved path, or canonical JSON."""
    if isinstance(workload, str):
        p = Path(workload)
        if not p.is_absolute():
            p = Path(base_dir) / p
        return str(p.resolve())
    return json.dumps(workload, sort_keys=True, separators=(",", ":"))


def record_key(record: Mapping[str, Any], base_dir: str | os.PathLike[str] = ".") -> str:
    """What makes two records the same run: gpu, workload, full kernel config, warm/cold cache."""
    kernel = record.get("kernel", {})
    try:
        kernel_doc = perfmodel.kernel_config_from_mapping(kernel).to_dict() if isinstance(kernel, Mapping) else kernel
    except InputError:
        kernel_doc = kernel
    return json.dumps(
        [record.get("gpu"), workload_ref(record.get("workload"), base_dir), kernel_doc, bool(record.get("warm_cache", False))],
        sort_keys=True,
        separators=(",", ":"),
    )


def _load_workload(value: Any, base_dir: Path, where: str) -> Workload:
    if isinstance(value, str):
        p = Path(value)
        if not p.is_absolute():
            p = base_dir / p
        if not p.is_file():
            raise InputError(f"{where}: workload file {str(p)!r} does not exist (paths are relative to the measurement file)")
        return perfmodel.load_workload(p)
    if isinstance(value, Mapping):
        return perfmodel.workload_from_mapping(value, base_dir, f"{where}: inline workload")
    raise InputError(f"{where}: `workload` must be a path or an inline table, but got {value!r}")


def read_measurements(path: str | os.PathLike[str]) -> list[MeasurementRecord]:
    """Parse a measurement file; every problem names the file and line."""
    p = Path(path)
    text = perfmodel.read_text(p, "measurement")
    base_dir = p.resolve().parent
    workloads: dict[str, Workload] = {}
    out: list[MeasurementRecord] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{p}:{lineno}"
        doc = perfmodel.parse_json(line, f"{where}: each line")
        if not isinstance(doc, dict):
            raise InputError(f"{where}: each line must be one JSON object, but got {type(doc).__name__}")
        missing = [k for k in _REQUIRED if k not in doc]
        if missing:
            raise InputError(f"{where}: a measurement record needs {', '.join(_REQUIRED)}, but {missing} are missing")
        if not isinstance(doc["gpu"], str) or not doc["gpu"]:
            raise InputError(f"{where}: `gpu` must be a GPU id or spec path, but got {doc['gpu']!r}")
        t = doc["time_s"]
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not (t > 0 and t < float("inf")):
            raise InputError(f"{where}: `time_s > 0` must hold, but got time_s={t!r}")
        if not isinstance(doc["kernel"], Mapping):
            raise InputError(f"{where}: `kernel` must be a table of kernel config keys, but got {doc['kernel']!r}")
        ref = workload_ref(doc["workload"], base_dir)
        if ref not in workloads:
            workloads[ref] = _load_workload(doc["workload"], base_dir, where)
        kernel = perfmodel.kernel_config_from_mapping(doc["kernel"], f"{where}: kernel")
        out.append(
            MeasurementRecord(
                gpu=doc["gpu"], workload=workloads[ref], workload_ref=ref, kernel=kernel,
                time_s=float(t), line=lineno, raw=doc,
            )
        )
    if not out:
        raise InputError(f"measurement file {str(p)!r} holds no records")
    return out


def done_keys(path: str | os.PathLike[str]) -> set[str]:
    """Keys of the records already in a (possibly partly written) measurement file."""
    p = Path(path)
    if not p.is_file():
        return set()
    keys: set[str] = set()
    base_dir = p.resolve().parent
    for line in p.read_text(encoding="utf-8").splitlines():
        try:
            doc = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a crash
        if isinstance(doc, dict):
            keys.add(record_key(doc, base_dir))
    return keys


def append_record(path: str | os.PathLike[str], record: Mapping[str, Any]) -> None:
    """Append one record as a JSON line and flush it to disk."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(dict(record), sort_keys=False)
    with p.open("a", encoding="utf-8") as f:
        # a crash may have left a half line: start on a fresh one
        if f.tell() > 0:
            with p.open("rb") as r:
                r.seek(-1, os.SEEK_END)
                if r.read(1) != b"\n":
                    f.write("\n")
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


def write_records(path: str | os.PathLike[str], records: Iterable[Mapping[str, Any]]) -> None:
    """Write a whole measurement file (replacing it)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("".join(json.dumps(dict(r)) + "\n" for r in records), encoding="utf-8")
