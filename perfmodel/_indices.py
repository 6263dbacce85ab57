"""Index streams of a table call, traces, and per-row access frequencies.

Notation: B bags per call (batch size), L lookups per bag (pooling), E rows of the table.

A table call reads the indices of its B bags, bag after bag (CONTRACT.md):

- ``trace``: bags take consecutive runs of L indices of the file, wrapping around at its
  end; a call uses the first B bags. Formats: text (one decimal index per line), NumPy
  ``.npy`` (1-D integers) and Meta ``dlrm_datasets`` ``.pt`` files (a tuple of
  ``indices, offsets, lengths`` tensors; ``lengths`` is tables x batch), loaded with
  ``torch.load(weights_only=True)`` when torch is installed.
- ``uniform`` / ``zipf``: independent draws from the distribution, seeded from the
  distribution's ``seed`` and the table's shape, so every run sees the same stream. Zipf
  ranks (rank 1 hottest, probability proportional to rank^-alpha) are spread over row ids
  by a seeded permutation, as hashed ids are in production tables.

Variable pooling (``pooling_mean`` with ``pooling_dist``) draws bag lengths the same way.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from perfmodel._config import Table
from perfmodel._errors import InputError

__all__ = ["TableCall", "hot_rows", "load_trace", "row_probabilities", "table_call", "zipf_rank_to_row"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


def _stable_seed(*parts: object) -> int:
    h = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(h, "little")


@lru_cache(maxsize=16)
def _load_trace_cached(path: str, mtime: float, table: int) -> IntArray:
    if path.endswith(".npy"):
        arr = np.load(path, allow_pickle=False)
        if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
            raise InputError(f"trace {path!r}: a .npy trace must be a 1-D integer array, but got {arr.dtype} {arr.shape}")
        out: IntArray = arr.astype(np.int64)
    elif path.endswith(".pt"):
        out = _load_dlrm_dataset(path, table)
    else:
        try:
            with open(path, "rb") as f:
                data = f.read()
            out = np.array(data.split(), dtype=np.int64)
        except ValueError:
            raise InputError(f"trace {path!r}: every line must be one decimal integer index") from None
    if out.size == 0:
        raise InputError(f"trace {path!r} holds no indices")
    if out.min() < 0:
        pos = int(np.argmax(out < 0))
        raise InputError(f"trace {path!r}: indices must be >= 0, but position {pos} holds {int(out[pos])}")
    out.setflags(write=False)
    return out


def _load_dlrm_dataset(path: str, table: int) -> IntArray:
    try:
        import torch
    except ImportError:
        raise InputError(f"trace {path!r}: reading Meta dlrm_datasets .pt files needs torch (pip install torch)") from None
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if not (isinstance(obj, (tuple, list)) and len(obj) == 3):
        raise InputError(f"trace {path!r}: expected a tuple (indices, offsets, lengths), but got {type(obj).__name__}")
    indices, _offsets, lengths = (np.asarray(x.numpy() if hasattr(x, "numpy") else x) for x in obj)
    lengths = lengths.reshape(lengths.shape[0], -1) if lengths.ndim > 1 else lengths.reshape(1, -1)
    if not 0 <= table < lengths.shape[0]:
        raise InputError(f"`0 <= indices.table < {lengths.shape[0]}` must hold for {path!r}, but got table={table}")
    per_table = lengths.sum(axis=1).astype(np.int64)
    start = int(per_table[:table].sum())
    return np.asarray(indices[start : start + int(per_table[table])], dtype=np.int64)


def load_trace(path: str | os.PathLike[str], table: int = 0) -> IntArray:
    """The indices of a trace file (read-only array; cached by path and modification time)."""
    p = os.path.abspath(os.fspath(path))
    try:
        mtime = os.stat(p).st_mtime
    except OSError as exc:
        raise InputError(f"cannot read trace {p!r}: {exc.strerror}") from None
    return _load_trace_cached(p, mtime, table)


@dataclass(frozen=True)
class TableCall:
    """The lookups of one table call: ``indices`` and PyTorch-style ``offsets`` (start of each bag)."""

    indices: IntArray
    offsets: IntArray

    @property
    def lengths(self) -> IntArray:
        return np.diff(np.append(self.offsets, len(self.indices))).astype(np.int64)


def bag_lengths(table: Table, batch_size: int) -> IntArray:
    if table.pooling is not None:
        return np.full(batch_size, table.pooling, dtype=np.int64)
    mean = table.mean_pooling
    rng = np.random.default_rng(_stable_seed("pooling", table.indices.seed, table.rows, table.dim, mean, table.pooling_dist))
    if table.pooling_dist == "poisson":
        return rng.poisson(mean, batch_size).astype(np.int64)
    if table.pooling_dist == "uniform":
        return rng.integers(0, round(2 * mean) + 1, batch_size).astype(np.int64)
    return np.full(batch_size, round(mean), dtype=np.int64)  # pragma: no cover - 'fixed' uses pooling


def zipf_rank_to_row(ranks: IntArray, rows: int, seed: int) -> IntArray:
    """Row id of each 0-based Zipf rank: a seeded affine bijection ``(a * rank + b) mod E``.

    It spreads hot rows over the table as hashed ids are spread, at no memory cost.
    """
    a = 2654435761 % rows or 1  # Knuth's multiplicative constant (a prime)
    while np.gcd(a, rows) != 1:
        a += 1
    b = _stable_seed("zipf-offset", seed, rows) % rows
    return ((np.asarray(ranks, dtype=np.int64) * a + b) % rows).astype(np.int64)


@lru_cache(maxsize=64)
def _zipf_rank_probabilities(rows: int, alpha: float) -> FloatArray:
    w = np.arange(1, rows + 1, dtype=np.float64) ** (-alpha)
    w /= w.sum()
    w.setflags(write=False)
    return w


def row_probabilities(table: Table) -> FloatArray | None:
    """Per-row access probabilities q_i for independent-reference distributions.

    Uniform: 1/E each; Zipf: rank^-alpha normalized, hottest first (rank order, not row
    ids). ``None`` for traces (their rows are not independent draws; see
    :mod:`perfmodel._l2`).
    """
    kind = table.indices.kind
    if kind == "uniform":
        return np.full(table.rows, 1.0 / table.rows)
    if kind == "zipf":
        return _zipf_rank_probabilities(table.rows, table.indices.alpha)
    return None


@lru_cache(maxsize=32)
def table_call(table: Table, batch_size: int) -> TableCall:
    """The index stream of one call of ``table`` with ``batch_size`` bags (cached, read-only)."""
    lengths = bag_lengths(table, batch_size)
    n = int(lengths.sum())
    kind = table.indices.kind
    if kind == "trace":
        assert table.indices.path is not None
        trace = load_trace(table.indices.path, table.indices.table)
        idx = trace[np.arange(n, dtype=np.int64) % len(trace)]
    elif kind == "uniform":
        rng = np.random.default_rng(_stable_seed("uniform", table.indices.seed, table.rows, batch_size, n))
        idx = rng.integers(0, table.rows, n, dtype=np.int64)
    else:
        rng = np.random.default_rng(_stable_seed("zipf", table.indices.seed, table.rows, table.indices.alpha, n))
        cdf = np.cumsum(_zipf_rank_probabilities(table.rows, table.indices.alpha))
        ranks = np.minimum(np.searchsorted(cdf, rng.random(n)), table.rows - 1)
        idx = zipf_rank_to_row(ranks, table.rows, table.indices.seed)
    if idx.size and int(idx.max()) >= table.rows:
        pos = int(np.argmax(idx >= table.rows))
        raise InputError(
            f"trace {table.indices.path!r}: indices must be < rows={table.rows}, but position "
            f"{pos % max(1, len(idx))} holds {int(idx[pos])}"
        )
    idx = np.ascontiguousarray(idx, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    idx.setflags(write=False)
    offsets.setflags(write=False)
    return TableCall(idx, offsets)


@lru_cache(maxsize=32)
def hot_rows(table: Table) -> IntArray:
    """Row ids, hottest first, as the seed paper ranks them for pinning.

    Traces: by access count over the whole trace file (ties by row id), rows never
    accessed last; Zipf: by rank; uniform: row order (every row is equally hot).
    """
    kind = table.indices.kind
    if kind == "trace":
        assert table.indices.path is not None
        trace = load_trace(table.indices.path, table.indices.table)
        counts = np.bincount(trace, minlength=table.rows)[: table.rows]
        order = np.lexsort((np.arange(table.rows), -counts)).astype(np.int64)
    elif kind == "zipf":
        order = zipf_rank_to_row(np.arange(table.rows, dtype=np.int64), table.rows, table.indices.seed)
    else:
        order = np.arange(table.rows, dtype=np.int64)
    order.setflags(write=False)
    return order
