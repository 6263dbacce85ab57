"""Numba kernels behind :mod:`perfmodel._lru` (imported lazily: this module imports numba).

Kept in its own module so that ``cache=True`` can key the compiled code on this file, and
so that importing :mod:`perfmodel` never loads numba.
"""

from __future__ import annotations

import numba
import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]


@numba.njit(cache=True, nogil=True)  # type: ignore[misc]
def stack_distances_dense(keys: IntArray, n_keys: int) -> IntArray:  # pragma: no cover - compiled
    """Stack distances of ``keys`` (dense ids in ``[0, n_keys)``); -1 for first accesses.

    A Fenwick tree over access times marks, for every key, the time of its latest access.
    The distance of access ``t`` to a key last seen at ``p`` is the number of marks in
    ``(p, t)``: the distinct other keys touched in between. O(n log n).
    """
    n = keys.shape[0]
    last = np.full(n_keys, -1, dtype=np.int64)
    tree = np.zeros(n + 1, dtype=np.int64)  # Fenwick tree, 1-based positions
    out = np.empty(n, dtype=np.int64)
    for t in range(n):
        k = keys[t]
        p = last[k]
        if p < 0:
            out[t] = -1
        else:
            # marks in (p, t) = prefix(t) - prefix(p + 1); position q is index q + 1
            s = 0
            i = t  # prefix over positions 0..t-1
            while i > 0:
                s += tree[i]
                i -= i & (-i)
            i = p + 1  # prefix over positions 0..p
            while i > 0:
                s -= tree[i]
                i -= i & (-i)
            out[t] = s
            i = p + 1  # unmark p
            while i <= n:
                tree[i] -= 1
                i += i & (-i)
        i = t + 1  # mark t
        while i <= n:
            tree[i] += 1
            i += i & (-i)
        last[k] = t
    return out


@numba.njit(cache=True, nogil=True)  # type: ignore[misc]
def window_max_before(pos: IntArray, value: IntArray, new_group: npt.NDArray[np.bool_],
                      window: int) -> IntArray:  # pragma: no cover - compiled
    """For each element i of a sequence cut into groups (``new_group[i]`` starts one, ``pos``
    ascending within a group): the largest ``value[j]`` over the earlier j of its group with
    ``pos[i] - pos[j] < window``, or -1 when there is none. A monotonic deque, O(n)."""
    n = pos.shape[0]
    out = np.empty(n, dtype=np.int64)
    dq = np.empty(n, dtype=np.int64)  # indices, values decreasing from head to tail
    head = 0
    tail = 0
    for i in range(n):
        if new_group[i]:
            head = 0
            tail = 0
        while head < tail and pos[i] - pos[dq[head]] >= window:
            head += 1
        out[i] = value[dq[head]] if head < tail else -1
        while head < tail and value[dq[tail - 1]] <= value[i]:
            tail -= 1
        dq[tail] = i
        tail += 1
    return out
