"""The SM's own L1: the share of a table call's row loads served by the L1 of the SM that
issues them (:func:`l1_hit_grid`), which the analytical model takes off the L2's hits.

Notation as in :mod:`perfmodel._l2`: B bags, n row accesses per call, q_i access
probability of row i; bpb consecutive bags per block, g bags in flight per SM.

Independent references (uniform, Zipf): Che's approximation with a cold start over a busy
SM's references (:mod:`perfmodel._che`), on the same rank bins as the L2's
(:mod:`perfmodel._popularity`): no per-row arrays.
Traces: the streams of a few SMs replayed through an exact LRU (:mod:`perfmodel._lru`),
kept on disk (:mod:`perfmodel._disk_cache`).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from perfmodel import _disk_cache
from perfmodel._che import hit_fractions
from perfmodel._config import Table
from perfmodel._indices import bag_lengths, table_call
from perfmodel._popularity import popularity

__all__ = ["L1_BPB_GRID", "L1_G_GRID", "clear_cache", "l1_hit_grid"]

FloatArray = npt.NDArray[np.float64]


def clear_cache() -> None:
    """Forget the L1 grids held in memory (the disk cache stays)."""
    _L1_CACHE.clear()


#: grids of the L1 estimate: bags per block (consecutive bags one block holds) and bags in
#: flight per SM
L1_BPB_GRID = np.array([1.0, 2.0, 4.0, 8.0, 16.0, 32.0])
L1_G_GRID = np.array([1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0])
#: SMs whose streams are replayed for a trace (evenly spread), averaged
_L1_SAMPLE_SMS = 4

_L1_CACHE: dict[tuple[Table, int, int, int], FloatArray] = {}


def _trace_l1_fraction(table: Table, batch_size: int, sm_count: int, capacity_rows: float, bpb: int,
                       g_sm: int) -> float:
    """Exact LRU hits of the streams of a few SMs: SM s holds the blocks s, s + S, s + 2S, ...,
    each ``bpb`` consecutive bags; ``g_sm`` of its bags are in flight at once and advance
    together (lookup-major within each group, as for the L2)."""
    from perfmodel._lru import stack_distances

    call = table_call(table, batch_size)
    lengths = call.lengths
    bag_of = np.arange(batch_size, dtype=np.int64)
    hits = total = 0
    for s in np.unique(np.linspace(0, sm_count - 1, _L1_SAMPLE_SMS).astype(np.int64)):
        bags = bag_of[(bag_of // bpb) % sm_count == s]
        if bags.size == 0:
            continue
        lens = lengths[bags]
        starts = call.offsets[bags]
        slot = np.repeat(np.arange(bags.size, dtype=np.int64), lens)
        pos = np.arange(int(lens.sum()), dtype=np.int64) - np.repeat(np.cumsum(lens) - lens, lens)
        order = np.lexsort((slot, pos, slot // g_sm))
        stream = call.indices[(np.repeat(starts, lens) + pos)[order]]
        d = stack_distances(stream)
        hits += int(((d >= 0) & (d < capacity_rows)).sum())
        total += stream.size
    return hits / total if total else 0.0


def l1_hit_grid(table: Table, batch_size: int, sm_count: int, capacity_rows: float) -> FloatArray:
    """Share of a call's row loads that hit in the L1 of the SM that issues them, on the grid
    ``L1_BPB_GRID`` x ``L1_G_GRID`` (interpolate in log of both).

    Global loads are cached in the SM's L1 (sm_70 and later), so a row that one SM read
    recently is served there; the L1 is taken as an LRU of ``capacity_rows`` rows. Blocks go
    to the SMs in turn, so an SM sees runs of ``bpb`` consecutive bags from far apart in the
    call, ``n / min(sm_count, blocks)`` row accesses in all (``blocks = ceil(batch / bpb)``:
    a small batch leaves SMs idle).

    - independent references (uniform, Zipf): order does not matter; Che's approximation
      with a cold start over a busy SM's references (the same value along the bags-in-flight
      axis);
    - traces: the order matters (a trace's neighbouring bags share rows), so the streams of
      a few SMs are replayed through an exact LRU for each grid point.

    The simulator models the L1 set by set and checks this (scripts/crosscheck_sim.py).
    """
    key = (table, batch_size, sm_count, int(capacity_rows))
    got = _L1_CACHE.get(key)
    if got is not None:
        return got
    pop = popularity(table)
    if pop is not None:
        # the call's blocks of bpb bags go to min(sm_count, blocks) SMs: a small batch or a
        # large block leaves SMs idle, and each busy SM's L1 sees that much more of the stream
        n_all = float(bag_lengths(table, batch_size).sum())
        busy = [min(sm_count, math.ceil(batch_size / float(bpb))) for bpb in L1_BPB_GRID]
        counts = sorted(set(busy))
        by_busy = dict(zip(counts, hit_fractions(pop.atoms(), [n_all / s for s in counts], capacity_rows).tolist(),
                           strict=True))  # one Che solve: T depends on the capacity only
        grid = np.repeat(np.array([by_busy[s] for s in busy])[:, None], L1_G_GRID.size, axis=1)
    else:  # replayed once per trace, batch, SM count and capacity; kept on disk like the L2 grids
        name = "l1-" + _disk_cache.trace_key(table, (
            "l1", _disk_cache.CACHE_VERSION, table.rows, table.pooling, table.pooling_mean, table.pooling_dist,
            table.indices.seed, batch_size, sm_count, int(capacity_rows), L1_BPB_GRID.tolist(), L1_G_GRID.tolist(),
            _L1_SAMPLE_SMS))
        loaded = _disk_cache.load(name, (L1_BPB_GRID.size, L1_G_GRID.size))
        if loaded is not None:
            grid = loaded
        else:
            grid = np.array([[_trace_l1_fraction(table, batch_size, sm_count, capacity_rows, int(b), int(g))
                              for g in L1_G_GRID] for b in L1_BPB_GRID])
            _disk_cache.save(name, grid)
    grid.setflags(write=False)
    if len(_L1_CACHE) > 1024:
        _L1_CACHE.clear()
    _L1_CACHE[key] = grid
    return grid
