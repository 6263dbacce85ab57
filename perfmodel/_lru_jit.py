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
