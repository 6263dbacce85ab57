"""Measurement files: JSON lines, one timed run per line (docs/formats.md), read into records.

Each record has at least ``{"gpu": id, "workload": path-or-inline-table, "kernel": {kernel
config keys}, "time_s": float}``. A ``workload`` path is relative to the measurement file
(or absolute); an inline table has the keys of the workload TOML file, and its trace paths
are relative to the measurement file too. The one reader of the format: validation's
reports and replay runner and search's ``gpu`` fidelity all read records through
:func:`read_measurements` (validation writes them).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from perfmodel._config import (
    KernelConfig,
    Workload,
    kernel_config_from_mapping,
    load_workload,
    workload_from_mapping,
)
from perfmodel._errors import InputError
from perfmodel._files import parse_json, read_text

__all__ = ["MeasurementRecord", "read_measurements", "workload_ref"]

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


def _load_workload(value: Any, base_dir: Path, where: str) -> Workload:
    if isinstance(value, str):
        p = Path(value)
        if not p.is_absolute():
            p = base_dir / p
        if not p.is_file():
            raise InputError(f"{where}: workload file {str(p)!r} does not exist (paths are relative to the measurement file)")
        return load_workload(p)
    if isinstance(value, Mapping):
        return workload_from_mapping(value, base_dir, f"{where}: inline workload")
    raise InputError(f"{where}: `workload` must be a path or an inline table, but got {value!r}")


def read_measurements(path: str | os.PathLike[str]) -> list[MeasurementRecord]:
    """Parse a measurement file; every problem names the file and line."""
    p = Path(path)
    text = read_text(p, "measurement")
    base_dir = p.resolve().parent
    workloads: dict[str, Workload] = {}
    out: list[MeasurementRecord] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{p}:{lineno}"
        doc = parse_json(line, f"{where}: each line")
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
        kernel = kernel_config_from_mapping(doc["kernel"], f"{where}: kernel")
        out.append(
            MeasurementRecord(
                gpu=doc["gpu"], workload=workloads[ref], workload_ref=ref, kernel=kernel,
                time_s=float(t), line=lineno, raw=doc,
            )
        )
    if not out:
        raise InputError(f"measurement file {str(p)!r} holds no records")
    return out
