"""Exact LRU: stack distances and hit counts of a fully associative LRU cache.

Notation: n accesses ``keys[0..n)``; the stack distance of access t is the number of
distinct other keys accessed since the previous access to ``keys[t]`` (-1 for a first
access). A fully associative LRU cache holding C keys hits access t iff
``0 <= distance[t] < C`` (Mattson et al. 1970, the inclusion property of stack
algorithms), so one pass gives the exact hit count of every capacity at once.

Unlike Che's approximation this needs no independence assumption, which real traces break
(FACTS.md section 4). numba does the O(n log n) pass; it is imported lazily, inside the
functions, so importing :mod:`perfmodel` never loads it; the compiled code is cached on
disk (``cache=True``).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from perfmodel._errors import InputError

__all__ = ["count_below", "lru_hit_counts", "lru_hit_rates", "merged_hit_counts", "stack_distances"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


def _as_keys(keys: npt.ArrayLike) -> IntArray:
    arr = np.asarray(keys)
    if arr.ndim != 1:
        raise InputError(f"`keys` must be a 1-D array, but got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise InputError(f"`keys` must hold integers, but got dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.int64)


def _dense(keys: IntArray) -> tuple[IntArray, int]:
    """Keys renumbered 0..k-1 (k distinct keys); kept as they are when they already are ids
    below 4 n + 4096 (the kernel's per-key array then costs no more than the stream's)."""
    if keys.size == 0:
        return keys, 0
    lo, hi = int(keys.min()), int(keys.max())
    if lo >= 0 and hi < 4 * keys.size + 4096:
        return keys, hi + 1
    uniq, inv = np.unique(keys, return_inverse=True)
    return np.ascontiguousarray(inv, dtype=np.int64), int(uniq.size)


def stack_distances(keys: npt.ArrayLike) -> IntArray:
    """LRU stack distance of every access; -1 for a key's first access.

    Args:
        keys: 1-D integer array of accessed keys (any int64 values).

    Returns:
        int64 array of the same length: the number of distinct other keys accessed since
        the previous access to the same key, or -1 where there is none.
    """
    k = _as_keys(keys)
    if k.size == 0:
        return np.empty(0, dtype=np.int64)
    from perfmodel._lru_jit import stack_distances_dense

    dense, n_keys = _dense(k)
    out: IntArray = stack_distances_dense(dense, n_keys)
    return out


def count_below(values: IntArray, capacities: IntArray) -> IntArray:
    """``#{v in values : 0 <= v < C}`` for each capacity C (any order), without sorting the
    values: each value's bucket among the sorted capacities, a histogram, a running sum."""
    caps = np.asarray(capacities, dtype=np.int64)
    order = np.argsort(caps, kind="stable")
    sorted_caps = caps[order]
    v = values[values >= 0]
    # v < C for the capacities after the first cap exceeding v: bucket = #caps <= v
    hist = np.bincount(np.searchsorted(sorted_caps, v, side="right"), minlength=sorted_caps.size + 1)
    out = np.empty(caps.size, dtype=np.int64)
    out[order] = np.cumsum(hist)[: sorted_caps.size]
    return out


def _hits_from_distances(dist: IntArray, caps: IntArray) -> IntArray:
    return count_below(dist, caps)  # hits(C) = #{d : 0 <= d < C}


def _as_capacities(capacities: npt.ArrayLike) -> IntArray:
    caps = np.asarray(capacities)
    if caps.size and not np.issubdtype(caps.dtype, np.integer):
        f = np.asarray(caps, dtype=np.float64)
        if not np.all(f == np.floor(f)):
            raise InputError(f"`capacities` must be whole numbers of keys, but got {caps!r}")
    c = np.asarray(caps, dtype=np.int64)
    if c.size and int(c.min()) < 0:
        raise InputError(f"`capacities >= 0` must hold, but got min {int(c.min())}")
    return c


def lru_hit_counts(keys: npt.ArrayLike, capacities: npt.ArrayLike) -> IntArray:
    """Exact hit counts of a fully associative LRU cache, one per capacity (in keys).

    An access hits iff its stack distance ``d`` satisfies ``0 <= d < capacity``. The cache
    starts empty. Returns an int64 array shaped like ``capacities``.
    """
    caps = _as_capacities(capacities)
    dist = stack_distances(keys)
    return _hits_from_distances(dist, caps.ravel()).reshape(caps.shape)


def lru_hit_rates(keys: npt.ArrayLike, capacities: npt.ArrayLike) -> FloatArray:
    """:func:`lru_hit_counts` divided by the number of accesses (0 for an empty stream)."""
    k = _as_keys(keys)
    hits = lru_hit_counts(k, capacities)
    return hits.astype(np.float64) / max(1, k.size)


def merged_hit_counts(keys: npt.ArrayLike, distances: npt.ArrayLike, capacities: npt.ArrayLike,
                      window: int, by_key: IntArray | None = None) -> IntArray:
    """Hits under a miss of an exact LRU, one count per capacity: hits that come fewer than
    ``window`` accesses after the latest miss of their key (its data still on the way).

    At capacity C access t misses when its stack distance d_t is -1 (first touch) or >= C.
    A hit t is under a miss iff one of its key's accesses in the ``window`` before it missed,
    i.e. iff C <= M_t, the largest distance among those accesses (a first touch counting as
    infinite). So with D_t = max(d_t, M_t) the count is #{0 <= d_t < C} - #{0 <= D_t < C}:
    one pass for every capacity at once.

    Args:
        keys: the stream, 1-D integers.
        distances: its :func:`stack_distances`.
        capacities: LRU capacities (keys).
        window: accesses within which a hit waits for its key's miss.
        by_key: ``np.argsort(keys, kind="stable")`` when the caller has it (a subsequence
            of a stream keeps the stream's order, so it can be filtered, not sorted again).
    """
    k = _as_keys(keys)
    d = np.asarray(distances, dtype=np.int64)
    caps = np.atleast_1d(_as_capacities(capacities))
    if k.size == 0:
        return np.zeros(caps.size, dtype=np.int64)
    from perfmodel._lru_jit import window_max_before

    order = np.argsort(k, kind="stable") if by_key is None else by_key  # by key, stream order within a key
    ks = k[order]
    new_group = np.empty(ks.size, dtype=np.bool_)
    new_group[0] = True
    np.not_equal(ks[1:], ks[:-1], out=new_group[1:])
    inf = np.iinfo(np.int64).max  # beyond every capacity: a first touch always misses
    d_sorted = d[order]
    m = window_max_before(order.astype(np.int64), np.where(d_sorted < 0, inf, d_sorted), new_group, int(window))
    hit = d_sorted >= 0
    a = count_below(d_sorted[hit], caps)
    b = count_below(np.maximum(d_sorted[hit], m[hit]), caps)
    out: IntArray = (a - b).astype(np.int64)
    return out
