"""Measurement files: JSON lines, one timed run per line (CONTRACT.md): writing them.

The format and its one reader (:func:`perfmodel.read_measurements`, records of
:class:`perfmodel.MeasurementRecord`) are perfmodel's, re-exported here. Hardware runs add the environment (``env``:
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
from pathlib import Path
from typing import Any

import perfmodel
from perfmodel import InputError, MeasurementRecord, read_measurements, workload_ref

__all__ = [
    "MeasurementRecord",
    "append_record",
    "done_keys",
    "read_measurements",
    "record_key",
    "workload_ref",
    "write_records",
]


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
