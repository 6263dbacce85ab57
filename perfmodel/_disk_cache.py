"""The on-disk cache of trace-derived grids (L2 residency, :mod:`perfmodel._l2`; L1 hit
shares, :mod:`perfmodel._l1`): NumPy files under ``$RECPERF_CACHE_DIR/residency``, else
``~/.cache/recperf/residency``.

A grid computed from a trace is keyed by the trace's content and every input that shaped
it, so a stale file is never read; files are written atomically (a temporary file, then a
rename), so concurrent processes share the folder safely. A folder that cannot be created
turns the cache off (everything is recomputed), never an error.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from perfmodel._config import Table
from perfmodel._traces import trace_digest

__all__ = ["CACHE_VERSION", "cache_dir", "clear", "load", "save", "trace_key"]

#: bump to invalidate every file written before (a change in what the grids hold)
CACHE_VERSION = "3"


def cache_dir() -> Path | None:
    """The cache folder (created if needed), or None when it cannot be created."""
    root = os.environ.get("RECPERF_CACHE_DIR")
    base = Path(root) if root else Path.home() / ".cache" / "recperf"
    try:
        (base / "residency").mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return base / "residency"


def trace_key(table: Table, parts: tuple[Any, ...]) -> str:
    """Key of a grid computed from ``table``'s trace: a hash of the trace file's bytes (read in
    chunks) and of ``parts`` (every other input of the computation, with :data:`CACHE_VERSION`)."""
    assert table.indices.path is not None
    h = hashlib.sha256()
    h.update(trace_digest(table.indices.path, table.indices.table).encode())
    h.update(repr(parts).encode())
    return h.hexdigest()[:32]


def load(name: str, shape: tuple[int, ...]) -> npt.NDArray[np.float64] | None:
    """The array stored as ``name``, or None when there is none, it cannot be read, or its
    shape is not ``shape``."""
    d = cache_dir()
    if d is None or not (d / f"{name}.npy").is_file():
        return None
    try:
        got: npt.NDArray[np.float64] = np.load(d / f"{name}.npy")
    except (OSError, ValueError):
        return None
    return got if got.shape == shape else None


def save(name: str, array: npt.NDArray[Any]) -> None:
    """Store ``array`` as ``name`` (atomically; silently skipped when the folder is not writable)."""
    d = cache_dir()
    if d is None or not name:
        return
    tmp = d / f"{name}.{os.getpid()}.tmp.npy"
    try:
        np.save(tmp, array)
        os.replace(tmp, d / f"{name}.npy")
    except OSError:
        pass


def clear() -> int:
    """Delete every stored grid; returns how many files were removed."""
    d = cache_dir()
    if d is None:
        return 0
    n = 0
    for f in d.glob("*.npy"):
        try:
            f.unlink()
            n += 1
        except OSError:
            pass
    return n
