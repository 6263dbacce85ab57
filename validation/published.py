"""Published reference measurements: the microbenchmark curves, their parsers, and the ledger.

Two kinds of published data are compared with the model. The microbenchmark curves
(``validation/data/published/gpu-benches.toml``) are parsed here. The kernel-level ledger (one
TOML file per source in the same folder) lives in :mod:`validation._ledger`, with the harness
semantics in :mod:`validation._harness`; this module re-exports its public names.

The files are the measurement outputs of GitHub ``te42kyfo/gpu-benches`` shipped in
``perfmodel/data/gpu-benches/`` (see the README there for provenance; only the
measurements are shipped, none of that repository's GPL-3 code). Units, checked against
the benchmarks' print statements:

- ``latency_*``: columns ``iterations, SM clock MHz, footprint kB, total ms, cycles per
  access``. "kB" is KiB (the benchmark prints bytes / 1024, truncated to an integer); the
  footprint is the chain's span: one 8-byte pointer every 64 bytes. The fourth column is
  the whole run's time in milliseconds (it equals ns per access only while iterations =
  1,000,000); :func:`parse_latency` returns the last column, cycles per access.
- ``stream_*``: ``block size, threads, occupancy %, |, GB/s:``, then GB/s (1e9 B/s) for
  init, **read**, scale, triad and two stencils; at 2 blocks per SM.
- ``l2-cache_*``: ``per-block data kB, footprint kB, time ms, spread %, effective GB/s``,
  then four profiler columns (zero in the shipped file); kB is KiB, GB/s is 1e9 B/s.

The parsers need only the standard library (and ``perfmodel``'s error type); the fitting
script ``scripts/fit_micro.py`` reads the files through them.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from validation._ledger import (
    Ledger,
    LedgerComparison,
    LedgerPoint,
    LedgerRatio,
    PointResult,
    RatioResult,
    compare_ledger,
    load_ledger,
)

if TYPE_CHECKING:
    from validation._micro_model import MicroModel

__all__ = [
    "KIB",
    "Ledger",
    "LedgerComparison",
    "LedgerPoint",
    "LedgerRatio",
    "PointResult",
    "PublishedComparison",
    "PublishedDataset",
    "RatioResult",
    "compare_ledger",
    "compare_published",
    "load_ledger",
    "parse_l2",
    "parse_latency",
    "parse_stream",
    "predict_dataset",
    "published_datasets",
]

#: the gpu-benches "kB" (bytes / 1024)
KIB = 1024
_GB = 1e9


def _lines(path: str | os.PathLike[str]) -> list[tuple[int, str]]:
    from perfmodel import read_text

    text = read_text(path, "measurement")
    return [(i + 1, line) for i, line in enumerate(text.splitlines()) if line.strip()]


def _bad(path: str | os.PathLike[str], lineno: int, what: str, line: str) -> Exception:
    from perfmodel import InputError

    return InputError(f"{os.fspath(path)}:{lineno}: {what}, but got {line.strip()!r}")


def _measured(path: str | os.PathLike[str], lineno: int, line: str, row: tuple[int, float]) -> tuple[int, float]:
    """A parsed row whose size is a positive integer and whose measured value is a finite
    number > 0 (a negative latency or bandwidth is not a measurement); else an error naming the line."""
    size, value = row
    if size <= 0 or not (math.isfinite(value) and value > 0):
        raise _bad(path, lineno, "a row's size must be > 0 and its measured value finite and > 0", line)
    return row


def parse_stream(path: str | os.PathLike[str]) -> list[tuple[int, float]]:
    """``(block_size, read_bytes_per_s)`` rows of a gpu-benches ``stream_*`` file.

    The read column is the second bandwidth after ``GB/s:`` (init, read, ...), at 2 blocks
    per SM (the benchmark's shared-memory spoiler).
    """
    out: list[tuple[int, float]] = []
    for lineno, line in _lines(path):
        if "GB/s:" not in line:
            continue  # the header
        head, _, tail = line.partition("GB/s:")
        fields, values = head.replace("|", " ").split(), tail.split()
        if not fields or len(values) < 2:
            raise _bad(path, lineno, "a stream row needs a block size and at least two bandwidths", line)
        try:
            row = (int(fields[0]), float(values[1]) * _GB)
        except ValueError:
            raise _bad(path, lineno, "a stream row starts with an integer block size", line) from None
        out.append(_measured(path, lineno, line, row))
    if not out:
        from perfmodel import InputError

        raise InputError(f"{os.fspath(path)}: no stream rows (lines with 'GB/s:') found")
    return out


def parse_latency(path: str | os.PathLike[str]) -> list[tuple[int, float]]:
    """``(footprint_bytes, cycles_per_access)`` rows of a gpu-benches ``latency_*`` file.

    ``footprint_bytes`` is the printed KiB figure times 1024 (the print truncates, so it is
    up to 1023 bytes short). Header lines (``clock: ...``) are skipped.
    """
    out: list[tuple[int, float]] = []
    for lineno, line in _lines(path):
        parts = line.split()
        if not parts[0].lstrip("-").isdigit():
            continue  # "clock: ..." header
        if len(parts) != 5:
            raise _bad(path, lineno, "a latency row has 5 columns (iterations, MHz, kB, ms, cycles)", line)
        try:
            row = (int(parts[2]) * KIB, float(parts[4]))
        except ValueError:
            raise _bad(path, lineno, "a latency row has an integer kB column and a number of cycles", line) from None
        out.append(_measured(path, lineno, line, row))
    if not out:
        from perfmodel import InputError

        raise InputError(f"{os.fspath(path)}: no latency rows found")
    return out


def parse_l2(path: str | os.PathLike[str]) -> list[tuple[int, float]]:
    """``(footprint_bytes, bytes_per_s)`` rows of a gpu-benches ``l2-cache_*`` file.

    The footprint is the second "kB" column (KiB), the bandwidth the first "GB/s" column.
    """
    out: list[tuple[int, float]] = []
    for lineno, line in _lines(path):
        if "GB/s" not in line or "kB" not in line:
            continue  # the header
        parts = line.split()
        try:
            kb = [int(parts[i - 1]) for i, tok in enumerate(parts) if tok == "kB"]
            gbs = [float(parts[i - 1]) for i, tok in enumerate(parts) if tok == "GB/s"]
        except ValueError:
            raise _bad(path, lineno, "an l2-cache row has numbers before its 'kB' and 'GB/s' units", line) from None
        if len(kb) < 2 or not gbs:
            raise _bad(path, lineno, "an l2-cache row has two 'kB' columns and a 'GB/s' column", line)
        out.append(_measured(path, lineno, line, (kb[1] * KIB, gbs[0] * _GB)))
    if not out:
        from perfmodel import InputError

        raise InputError(f"{os.fspath(path)}: no l2-cache rows found")
    return out


# ---- the published datasets and the model's error on each ----------------------------------


@dataclass(frozen=True, kw_only=True)
class PublishedDataset:
    """One published microbenchmark curve, with its provenance.

    ``kind``: ``stream-read`` (x = block size), ``pointer-chase`` (x = footprint bytes,
    values in cycles) or ``l2-read`` (x = footprint bytes, values in B/s). Kernel times are
    the ledger's (:func:`load_ledger`).
    """

    name: str
    kind: str
    gpu: str
    metric: str
    x: tuple[float, ...]
    measured: tuple[float, ...]
    source: str
    file: str = ""
    blocks_per_sm: int = 2


@dataclass(frozen=True, kw_only=True)
class PublishedComparison:
    """The model's predictions on one dataset, and its error (MAPE as a fraction)."""

    dataset: PublishedDataset
    predicted: tuple[float, ...]
    error: float
    max_error: float

    def to_dict(self, points: bool = False) -> dict[str, Any]:
        d = self.dataset
        out: dict[str, Any] = {
            "name": d.name, "gpu": d.gpu, "metric": d.metric, "error": self.error, "max_error": self.max_error,
            "n": len(d.measured), "kind": d.kind, "source": d.source,
        }
        if d.file:
            out["file"] = d.file
        if points:
            out["points"] = [
                {"x": x, "measured": m, "predicted": p} for x, m, p in zip(d.x, d.measured, self.predicted, strict=True)
            ]
        return out


_METRICS = {
    "stream-read": "bandwidth_bytes_per_s",
    "pointer-chase": "latency_cycles",
    "l2-read": "bandwidth_bytes_per_s",
}
#: the curve kinds and the ledger's kind
KINDS = (*_METRICS, "kernel-time")


def data_dir() -> Path:
    """``perfmodel/data`` (traces, gpu-benches) of the installed package."""
    import perfmodel

    return Path(perfmodel.__file__).resolve().parent / "data"


def manifest_path() -> Path:
    return Path(__file__).resolve().parent / "data" / "published" / "gpu-benches.toml"


def published_datasets(kinds: Sequence[str] | None = None) -> list[PublishedDataset]:
    """The shipped microbenchmark curves (``validation/data/published/gpu-benches.toml``), parsed.

    ``kinds`` filters by kind; ``kernel-time`` selects none of them (kernel times are the ledger's).
    """
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib

    doc = tomllib.loads(manifest_path().read_text(encoding="utf-8"))
    base = data_dir()
    out: list[PublishedDataset] = []
    for entry in doc["datasets"]:
        kind = entry["kind"]
        if kinds is not None and kind not in kinds:
            continue
        common = {"name": entry["name"], "kind": kind, "gpu": entry["gpu"], "metric": _METRICS[kind],
                  "source": entry["source"]}
        path = base / entry["file"]
        rows: list[tuple[int, float]]
        if kind == "stream-read":
            rows = parse_stream(path)
        elif kind == "pointer-chase":
            rows = parse_latency(path)
        else:
            rows = parse_l2(path)
        out.append(PublishedDataset(
            **common, file=str(Path("perfmodel/data") / entry["file"]),
            x=tuple(float(r[0]) for r in rows), measured=tuple(r[1] for r in rows),
            blocks_per_sm=int(entry.get("blocks_per_sm", 2)),
        ))
    return out


def predict_dataset(dataset: PublishedDataset, gpu: Any, model: MicroModel | None = None) -> tuple[float, ...]:
    """The model's values at the dataset's points on ``gpu`` (a GPUSpec)."""
    from validation._micro_model import perfmodel_micro_model

    m = model or perfmodel_micro_model()
    if dataset.kind == "stream-read":
        return tuple(m.stream_read(gpu, int(x), dataset.blocks_per_sm) for x in dataset.x)
    if dataset.kind == "pointer-chase":
        return tuple(m.pointer_chase(gpu, int(x)) for x in dataset.x)
    return tuple(m.l2_read(gpu, int(x)) for x in dataset.x)


def compare_published(
    datasets: Sequence[PublishedDataset] | None = None,
    *,
    gpus: Mapping[str, Any] | None = None,
    model: MicroModel | None = None,
) -> list[PublishedComparison]:
    """The model's error on each microbenchmark curve; ``gpus`` maps a GPU id to a spec to use."""
    import perfmodel

    out = []
    for d in datasets if datasets is not None else published_datasets():
        spec = (gpus or {}).get(d.gpu) or perfmodel.get_gpu(d.gpu)
        pred = predict_dataset(d, spec, model)
        meas = np.asarray(d.measured, dtype=np.float64)
        err = np.abs(np.asarray(pred) - meas) / meas
        out.append(PublishedComparison(dataset=d, predicted=pred, error=float(err.mean()), max_error=float(err.max())))
    return out
