"""Index streams of a table call, and the hottest rows of a table.

Notation: B bags per call (batch size), L lookups per bag (pooling), E rows of the table,
n = B L accesses of a call, k rows asked for.

Nothing here costs O(E): a call's stream costs O(n), the k hottest rows O(k) (plus, for a
trace, O(distinct rows of the file), counted in chunks by :mod:`perfmodel._traces`).

A table call reads the indices of its B bags, bag after bag (CONTRACT.md):

- ``trace``: bags take consecutive runs of L indices of the file, wrapping around at its
  end; a call uses the first B bags, read from the file's head only. Formats: text (one
  decimal index per line), NumPy ``.npy`` (1-D integers) and Meta ``dlrm_datasets`` ``.pt``
  files (a tuple of ``indices, offsets, lengths`` tensors; ``lengths`` is tables x batch),
  read with torch when it is installed (:mod:`perfmodel._traces`).
- ``uniform`` / ``zipf``: independent draws from the distribution, seeded from the
  distribution's ``seed`` and the table's shape, so every run sees the same stream. Zipf
  ranks (rank 1 hottest, probability proportional to rank^-alpha) are drawn by
  :meth:`perfmodel._popularity.ZipfPopularity.sample_ranks` (no per-row table) and spread
  over row ids by a seeded affine bijection, as hashed ids are in production tables.

Variable pooling (``pooling_mean`` with ``pooling_dist``) draws bag lengths the same way.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from perfmodel._capacity import check_host_fit
from perfmodel._config import Table
from perfmodel._errors import InputError
from perfmodel._popularity import ZipfPopularity, popularity
from perfmodel._traces import iter_trace_chunks, trace_counts, trace_head

__all__ = ["TableCall", "bag_lengths", "hot_rows", "load_trace", "table_call", "zipf_rank_to_row"]

IntArray = npt.NDArray[np.int64]


def _stable_seed(*parts: object) -> int:
    h = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(h, "little")


def load_trace(path: str | os.PathLike[str], table: int = 0) -> IntArray:
    """Every index of a trace file, read-only (the whole file in memory: for tests and small
    traces; the model itself reads only a call's head and counts rows in chunks)."""
    out = np.concatenate(list(iter_trace_chunks(path, table)))
    out.setflags(write=False)
    return out


@dataclass(frozen=True)
class TableCall:
    """The lookups of one table call: ``indices`` and PyTorch-style ``offsets`` (start of each bag)."""

    indices: IntArray
    offsets: IntArray

    @property
    def lengths(self) -> IntArray:
        return np.diff(np.append(self.offsets, len(self.indices))).astype(np.int64)


def bag_lengths(table: Table, batch_size: int) -> IntArray:
    check_host_fit(table, batch_size)  # the first of a call's O(batch) and O(lookups) arrays
    if table.pooling is not None:
        return np.full(batch_size, table.pooling, dtype=np.int64)
    mean = table.mean_pooling
    rng = np.random.default_rng(_stable_seed("pooling", table.indices.seed, table.rows, table.dim, mean, table.pooling_dist))
    if table.pooling_dist == "poisson":
        return rng.poisson(mean, batch_size).astype(np.int64)
    if table.pooling_dist == "uniform":
        return rng.integers(0, round(2 * mean) + 1, batch_size).astype(np.int64)
    return np.full(batch_size, round(mean), dtype=np.int64)  # pragma: no cover - 'fixed' uses pooling


def zipf_rank_to_row(ranks: npt.ArrayLike, rows: int, seed: int) -> IntArray:
    """Row id of each 0-based Zipf rank: a seeded affine bijection ``(a * rank + b) mod E``.

    It spreads hot rows over the table as hashed ids are spread, at no memory cost. The
    product is reduced exactly for any E below 2^63 (by doubling when a * E could overflow
    64 bits).
    """
    a = 2654435761 % rows or 1  # Knuth's multiplicative constant (a prime)
    while math.gcd(a, rows) != 1:
        a += 1
    b = _stable_seed("zipf-offset", seed, rows) % rows
    r = np.asarray(ranks, dtype=np.int64)
    if a * (rows - 1) + b < 2**63:
        return ((r * a + b) % rows).astype(np.int64)
    e = np.uint64(rows)
    acc = np.full(r.shape, np.uint64(b))
    term = r.astype(np.uint64) % e
    while a:  # a * r mod E = sum of the set bits of a times r 2^j mod E (all below 2^64)
        if a & 1:
            acc = (acc + term) % e
        term = (term * np.uint64(2)) % e
        a >>= 1
    return acc.astype(np.int64)


@lru_cache(maxsize=32)
def table_call(table: Table, batch_size: int) -> TableCall:
    """The index stream of one call of ``table`` with ``batch_size`` bags (cached, read-only)."""
    lengths = bag_lengths(table, batch_size)
    n = int(lengths.sum())
    kind = table.indices.kind
    if kind == "trace":
        assert table.indices.path is not None
        idx = trace_head(table.indices.path, n, table.indices.table)
    elif kind == "uniform":
        rng = np.random.default_rng(_stable_seed("uniform", table.indices.seed, table.rows, batch_size, n))
        idx = rng.integers(0, table.rows, n, dtype=np.int64)
    else:
        rng = np.random.default_rng(_stable_seed("zipf", table.indices.seed, table.rows, table.indices.alpha, n))
        pop = popularity(table)
        assert isinstance(pop, ZipfPopularity)
        idx = zipf_rank_to_row(pop.sample_ranks(rng, n), table.rows, table.indices.seed)
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


def hot_rows(table: Table, k: int | None = None) -> IntArray:
    """Ids of the ``k`` hottest rows (all rows when ``k`` is None), hottest first, as the seed
    paper ranks them for pinning; O(k) work (a trace adds its distinct rows, counted once).

    Traces: by access count over the whole trace file (ties by row id), rows never accessed
    last, by id; Zipf: by rank; uniform: row order (every row is equally hot).
    """
    k = table.rows if k is None else max(0, min(int(k), table.rows))
    kind = table.indices.kind
    if kind == "trace":
        assert table.indices.path is not None
        order = trace_counts(table.indices.path, table.indices.table).hottest(k, table.rows)
    elif kind == "zipf":
        order = zipf_rank_to_row(np.arange(k, dtype=np.int64), table.rows, table.indices.seed)
    else:
        order = np.arange(k, dtype=np.int64)
    order = np.ascontiguousarray(order, dtype=np.int64)
    order.setflags(write=False)
    return order
