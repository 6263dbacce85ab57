"""L2 residency of one table call: the hit rate of its row loads, with pinned hot rows.

Notation: B bags, L lookups per bag, n = B L row accesses per call, E rows, R row bytes,
k pinned rows (the hottest first), C capacity in rows left to the other rows, G bags in
flight at once, q_i access probability of row i.

What a call sees (CONTRACT.md): it starts from an L2 holding only its pinned rows; pinned
rows always hit; every other row competes for the capacity left after the pinned bytes,
C = kappa (L2 - k R') / R', where R' is the bytes of the 32-byte sectors a row covers and
kappa the effective-capacity fraction of the L2 (``l2_capacity_fraction``, calibrated on
the pointer chase; it folds in the near/far partitions' duplication of lines).

Two estimators of the unpinned hit count, both from a cold start:

- independent references (uniform, Zipf): Che's approximation over the unpinned rows,
  an access hits when its row was accessed within the characteristic time T,
  sum_i (1 - exp(-q'_i T)) = C, from a cold start: the access at time t looks back
  min(t, T), so row i's expected hits are q' T - (1 - e^{-q'T}) + q' (n' - T)(1 - e^{-q'T})
  (all its n' q'_i - (1 - exp(-n' q'_i)) reuses when T >= n'). Rows are grouped into rank bins (exact for the hottest
  1,024, log-spaced after), which keeps tables of 10^7 rows cheap.
- traces: exact LRU stack distances of the call's stream with the pinned rows taken out
  (real traces have temporal locality that Che misses by tens of points, FACTS.md 4).

Order of touches. Warps do not read a bag's rows one bag after another: the G bags in
flight advance together, so the L2 sees, for each group of G consecutive bags, the first
lookup of every bag, then the second, and so on (iteration-major within a group). For
traces the stack distances are computed on that interleaved order for G in a small grid
(1 ... 4096 bags) and interpolated in log G, because interleaving lengthens reuse
distances (on reuse_medium at 8 MB, 70.7% hits bag by bag vs 40.6% with 2,048 bags in
flight). Independent references do not depend on the order.

Hits under a miss. An access whose row is still on its way from DRAM (requested by another
warp moments before) is merged into that miss: it moves no DRAM bytes but waits as long as a
miss. A hit counts as such when fewer than G accesses (one lookup step of the bags in
flight) separate it from the latest miss of its row: exactly so for traces (per capacity, in
the interleaved order), and for independent references with probability 1 - exp(-q' G m)
(Poisson arrivals of the row's misses, m its miss share). A hot row that stays resident
misses once, so its later hits are fast. :meth:`Residency.hits` returns both counts: hits that save DRAM bytes,
and hits that also save latency.

Precomputed per table and batch size (independent of the kernel configuration), then
interpolated for each configuration: a grid over pinned rows k and capacity C (and G for
traces). Trace grids are computed lazily, cell by cell, and cached in memory and on disk
(:mod:`perfmodel._disk_cache`). The SM's own L1 is estimated in :mod:`perfmodel._l1`.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from perfmodel import _disk_cache
from perfmodel._config import Table
from perfmodel._indices import hot_rows, row_probabilities, table_call
from perfmodel._physics import bracket as _bracket
from perfmodel._physics import bracket_scalar as _bracket_scalar

__all__ = ["Residency", "clear_cache", "rank_bin_edges", "residency"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: pinned-row grid, as fractions of the table's rows
PIN_GRID = np.array([0.0, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.125, 0.15, 0.2, 0.3, 0.45, 0.65, 0.85, 1.0])
#: bags-in-flight grid for traces
G_GRID = np.array([1, 64, 256, 1024, 4096])
_N_CAP = 56
_EXACT_RANKS = 1024


@dataclass
class Residency:
    """Kernel-independent residency data of one table call; see :meth:`hits`."""

    table: Table
    batch_size: int
    accesses: int
    distinct_rows: int
    #: accesses to the k hottest rows, for k on PIN_GRID x rows (exact pinned-hit counts)
    pinned_access_counts: IntArray
    #: capacity grid (rows), log-spaced from 1 to the distinct rows of the call
    capacities: FloatArray
    #: unpinned hit counts [pin, G, capacity] (NaN = not yet computed, traces only)
    grid: FloatArray
    #: of those, hits under a miss (reuse within G accesses), same shape
    inflight: FloatArray
    _hot_rank: IntArray | None = field(default=None, repr=False)
    _order_cache: dict[int, IntArray] = field(default_factory=dict, repr=False)
    _key: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self._log_caps = np.log(self.capacities)
        self._kgrid = np.floor(PIN_GRID * self.table.rows)
        self._log_caps_list: list[float] = self._log_caps.tolist()
        self._kgrid_list: list[float] = self._kgrid.tolist()
        self._refresh()

    @property
    def is_trace(self) -> bool:
        return self._hot_rank is not None

    def _refresh(self) -> None:
        """Note which grid cells exist, and mirror the grids as lists for one-configuration lookups."""
        done = ~np.isnan(self.grid[:, :, 0])
        self._complete = bool(done.all())
        self._done = {(int(a), int(b)) for a, b in zip(*np.nonzero(done), strict=True)}
        self._grid_list = self.grid.tolist()
        self._inflight_list = self.inflight.tolist()
        self._pinned_list: list[float] = self.pinned_access_counts.astype(np.float64).tolist()

    def pinned_rows_grid(self) -> FloatArray:
        out: FloatArray = self._kgrid
        return out

    def pinned_accesses(self, pinned_rows: Any) -> Any:
        """Accesses of the call that go to the ``pinned_rows`` hottest rows (interpolated between grid points)."""
        return np.interp(pinned_rows, self._kgrid, self.pinned_access_counts)

    # ---- traces: lazy grid cells -----------------------------------------------------
    def _interleaved(self, g: int) -> IntArray:
        got = self._order_cache.get(g)
        if got is not None:
            return got
        call = table_call(self.table, self.batch_size)
        idx = call.indices
        b = self.batch_size
        lengths = call.lengths
        bag = np.repeat(np.arange(b, dtype=np.int64), lengths)
        pos = np.arange(idx.size, dtype=np.int64) - np.repeat(call.offsets, lengths)
        order = np.lexsort((bag, pos, bag // g))  # group, then lookup position, then bag
        out = np.ascontiguousarray(idx[order])
        self._order_cache[g] = out
        return out

    def _ensure_cells(self, pin_idx: IntArray, g_idx: IntArray) -> None:
        n_g = len(G_GRID)
        flat = np.unique(np.asarray(pin_idx).ravel() * n_g + np.asarray(g_idx).ravel())
        missing = flat[np.isnan(self.grid.reshape(-1, self.grid.shape[-1])[flat, 0])]
        if missing.size == 0:
            return
        # a pinned-row value is computed for every G at once: configurations that share a pinned
        # fraction differ in block size and occupancy, so they will ask for the other G cells
        need = {(int(f) // n_g, g) for f in missing for g in range(n_g)}
        from perfmodel._lru import stack_distances

        with self._lock:
            assert self._hot_rank is not None
            caps = np.maximum(np.round(self.capacities).astype(np.int64), 1)
            for p, g in sorted(need):
                if not np.isnan(self.grid[p, g, 0]):
                    continue
                k = int(self.pinned_rows_grid()[p])
                window = int(G_GRID[g])
                stream = self._interleaved(window)
                kept = stream[self._hot_rank[stream] >= k]
                dist = stack_distances(kept)
                reused = dist >= 0
                self.grid[p, g, :] = np.searchsorted(np.sort(dist[reused]), caps, side="left")
                self.inflight[p, g, :] = _merged_hits(kept, dist, caps, window)
            self._refresh()
            self._save()

    def _save(self) -> None:
        if self._key:
            _disk_cache.save(self._key, np.stack([self.grid, self.inflight]))

    # ---- evaluation ------------------------------------------------------------------
    def hits(self, pinned_rows: Any, capacity_rows: Any, bags_in_flight: Any) -> Any:
        """Expected row-load hits of one call (pinned hits included), vectorized."""
        return self.hit_counts(pinned_rows, capacity_rows, bags_in_flight)[0]

    def hit_counts(self, pinned_rows: Any, capacity_rows: Any, bags_in_flight: Any) -> tuple[Any, Any]:
        """(hits, hits that also save latency) of one call, pinned hits included, vectorized.

        Args:
            pinned_rows: k, rows pinned (already capped by the persisting maximum).
            capacity_rows: C, L2 capacity left to the other rows, in rows.
            bags_in_flight: G, bags whose lookups interleave.
        """
        scalar = all(isinstance(v, (int, float)) for v in (pinned_rows, capacity_rows, bags_in_flight))
        if scalar:  # one configuration: plain floats, no array overhead (same arithmetic)
            k: Any = float(pinned_rows)
            pi: Any
            pw: Any
            ci: Any
            cw: Any
            gi: Any
            gw: Any
            pi, pw = _bracket_scalar(self._kgrid_list, k)
            ci, cw = _bracket_scalar(self._log_caps_list, math.log(max(float(capacity_rows), 1.0)))
            gi, gw = _bracket_scalar(_LOG_G_LIST, math.log(max(float(bags_in_flight), 1.0)))
        else:
            k, c, g = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in
                                            (pinned_rows, capacity_rows, bags_in_flight)))
            pi, pw = _bracket(self._kgrid, k)
            ci, cw = _bracket(self._log_caps, np.log(np.maximum(c, 1.0)))
            gi, gw = _bracket(_LOG_G, np.log(np.maximum(g, 1.0)))
        if self.is_trace and not self._complete and not (
            scalar and {(pi, gi), (pi, gi + 1), (pi + 1, gi), (pi + 1, gi + 1)} <= self._done
        ):
            self._ensure_cells(np.atleast_1d(np.stack([pi, pi, pi + 1, pi + 1])),
                               np.atleast_1d(np.stack([gi, gi + 1, gi, gi + 1])))
        # the four (pin, G) corners, each linear in log capacity
        if scalar:
            hits_s = merged_s = 0.0
            for p_, wp in ((pi, 1.0 - pw), (pi + 1, pw)):
                for g_, wg in ((gi, 1.0 - gw), (gi + 1, gw)):
                    row, irow = self._grid_list[p_][g_], self._inflight_list[p_][g_]
                    hits_s += wp * wg * (row[ci] + (row[ci + 1] - row[ci]) * cw)
                    merged_s += wp * wg * (irow[ci] + (irow[ci + 1] - irow[ci]) * cw)
            kp, kw = _bracket_scalar(self._kgrid_list, k)
            pinned_s = self._pinned_list[kp] + (self._pinned_list[kp + 1] - self._pinned_list[kp]) * kw
            return hits_s + pinned_s, hits_s - merged_s + pinned_s
        hits: Any = 0.0
        merged: Any = 0.0
        for dp, wp in ((0, 1.0 - pw), (1, pw)):
            for dg, wg in ((0, 1.0 - gw), (1, gw)):
                for grid, is_hits in ((self.grid, True), (self.inflight, False)):
                    lo = grid[pi + dp, gi + dg, ci]
                    v = wp * wg * (lo + (grid[pi + dp, gi + dg, ci + 1] - lo) * cw)
                    if is_hits:
                        hits = hits + v
                    else:
                        merged = merged + v
        pinned = self.pinned_accesses(k)
        return hits + pinned, hits - merged + pinned


_LOG_G = np.log(G_GRID.astype(np.float64))
_LOG_G_LIST = _LOG_G.tolist()


def rank_bin_edges(rows: int, extra: IntArray | None = None) -> IntArray:
    """Edges of the rank bins Che's approximation sums over: every rank of the hottest 1,024
    rows, log-spaced after (768 points), plus ``extra`` edges; keeps tables of 10^7 rows cheap."""
    parts = [np.arange(0, min(_EXACT_RANKS, rows) + 1), np.geomspace(max(_EXACT_RANKS, 1), rows, 768).astype(np.int64),
             np.array([rows], dtype=np.int64)]
    if extra is not None:
        parts.append(np.asarray(extra, dtype=np.int64))
    edges: IntArray = np.unique(np.concatenate(parts))
    out: IntArray = edges[(edges >= 0) & (edges <= rows)]
    return out


def _che_grid(table: Table, n: int, capacities: FloatArray) -> tuple[FloatArray, FloatArray, IntArray, int]:
    """Che hit counts on the (pin, capacity) grid for an independent-reference table."""
    q = row_probabilities(table)
    assert q is not None
    rows = table.rows
    kgrid = np.floor(PIN_GRID * rows).astype(np.int64)
    edges = rank_bin_edges(rows, kgrid)  # every pinned-grid point an edge
    csum = np.concatenate([[0.0], np.cumsum(q)])
    mass = csum[edges[1:]] - csum[edges[:-1]]  # probability of each bin
    count = (edges[1:] - edges[:-1]).astype(np.float64)
    qbin = mass / np.maximum(count, 1.0)  # per-row probability (mean over the bin)
    grid = np.zeros((len(kgrid), len(G_GRID), len(capacities)))
    inflight = np.zeros_like(grid)
    pinned_counts = np.zeros(len(kgrid), dtype=np.int64)
    for pi, k in enumerate(kgrid):
        keep = edges[:-1] >= k
        qk, mk = qbin[keep], count[keep]
        qmass = float((qk * mk).sum())
        pinned_counts[pi] = round(n * (1.0 - qmass))
        if qmass <= 0:
            continue
        qn = qk / qmass  # probabilities within the unpinned stream
        nn = n * qmass  # unpinned accesses in the call
        # expected accesses beyond each row's first (compulsory-miss) access
        first = 1.0 - np.exp(-nn * qn)
        reuse = nn * qn - first
        # Che's characteristic time T(C): occupancy(T) = sum m (1 - exp(-q T)) is increasing in
        # T, so tabulate it on a log grid and invert by interpolation
        tgrid = np.geomspace(1e-3 / qn.max(), 1e3 / qn.min(), 600)
        occ = (mk[None, :] * -np.expm1(-np.outer(tgrid, qn))).sum(axis=1)
        caps = np.minimum(capacities, mk.sum() * (1 - 1e-12))
        t_of_c = np.minimum(np.exp(np.interp(caps, occ, np.log(tgrid))), nn)
        # from a cold start the access at time t looks back min(t, T): row i hits
        # q T - (1 - e^{-qT}) + q (n - T)(1 - e^{-qT}) times (every reuse when T >= n)
        e = -np.expm1(-np.outer(t_of_c, qn))  # (capacity, bin)
        row_hits = qn[None, :] * t_of_c[:, None] - e + qn[None, :] * (nn - t_of_c)[:, None] * e
        row_hits[capacities >= mk.sum(), :] = reuse
        row_hits = np.clip(row_hits, 0.0, reuse[None, :])
        h = row_hits / np.maximum(reuse, 1e-300)[None, :]  # hit share of the row's reuses
        grid[pi, :, :] = (row_hits * mk[None, :]).sum(axis=1)[None, :]
        # a hit within G accesses of its row's latest miss waits for that miss (hit under a
        # miss). A row's misses come at the rate q' m per access, m its miss share (first
        # touch + missed reuses over its accesses), so a hit has a miss among the G accesses
        # before it with probability 1 - exp(-q' G m) (Poisson): a hot resident row misses
        # once and its hits are fast; a row that keeps missing has its close reuses merged.
        acc = np.maximum(nn * qn, 1e-300)
        m = np.minimum((first[None, :] + (1.0 - h) * reuse[None, :]) / acc[None, :], 1.0)  # (capacity, bin)
        close = -np.expm1(-G_GRID.astype(np.float64)[:, None, None] * (qn * m)[None, :, :])  # (G, capacity, bin)
        inflight[pi, :, :] = (close * h[None, :, :] * (mk * reuse)[None, None, :]).sum(axis=2)
    distinct_all = float((count * (1.0 - np.exp(-n * qbin))).sum())
    return grid, inflight, pinned_counts, round(distinct_all)


_RESIDENCY: dict[tuple[Table, int], Residency] = {}
_RES_LOCK = threading.Lock()


def _capacity_grid(distinct: int) -> FloatArray:
    top = max(float(distinct), 2.0) * 1.01
    return np.unique(np.geomspace(1.0, top, _N_CAP))


def clear_cache() -> None:
    """Forget every table's residency data held in memory (the disk cache stays)."""
    with _RES_LOCK:
        _RESIDENCY.clear()


def residency(table: Table, batch_size: int) -> Residency:
    """The residency data of ``table`` called with ``batch_size`` bags (cached)."""
    key = (table, batch_size)
    got = _RESIDENCY.get(key)
    if got is not None:
        return got
    with _RES_LOCK:
        got = _RESIDENCY.get(key)
        if got is not None:
            return got
        res = _build(table, batch_size)
        _RESIDENCY[key] = res
        return res


def _build(table: Table, batch_size: int) -> Residency:
    if table.indices.kind != "trace":
        from perfmodel._indices import bag_lengths

        n = int(bag_lengths(table, batch_size).sum())
        caps = _capacity_grid(min(table.rows, n))  # up to the most rows a call can touch
        grid, inflight, pinned, distinct = _che_grid(table, n, caps)
        return Residency(table=table, batch_size=batch_size, accesses=n, distinct_rows=distinct,
                         pinned_access_counts=pinned, capacities=caps, grid=grid, inflight=inflight)
    call = table_call(table, batch_size)
    idx = call.indices
    hot = hot_rows(table)
    rank = np.empty(table.rows, dtype=np.int64)
    rank[hot] = np.arange(table.rows, dtype=np.int64)
    ranks_in_call = np.sort(rank[idx])
    kgrid = np.floor(PIN_GRID * table.rows).astype(np.int64)
    pinned = np.searchsorted(ranks_in_call, kgrid, side="left").astype(np.int64)
    distinct = int(np.unique(idx).size)
    caps = _capacity_grid(distinct)
    key = _disk_cache.trace_key(table, (
        _disk_cache.CACHE_VERSION, table.rows, table.pooling, table.pooling_mean, table.pooling_dist,
        table.indices.seed, batch_size, PIN_GRID.tolist(), G_GRID.tolist(), _N_CAP))
    grid = np.full((len(PIN_GRID), len(G_GRID), len(caps)), np.nan)
    inflight = grid.copy()
    cached = _disk_cache.load(key, (2, *grid.shape))
    if cached is not None:
        grid, inflight = cached[0].copy(), cached[1].copy()
    return Residency(table=table, batch_size=batch_size, accesses=int(idx.size), distinct_rows=distinct,
                     pinned_access_counts=pinned, capacities=caps, grid=grid, inflight=inflight,
                     _hot_rank=rank, _key=key)


def _merged_hits(stream: IntArray, dist: IntArray, caps: IntArray, window: int) -> FloatArray:
    """Hits under a miss of an exact LRU, for each capacity: hits that come fewer than
    ``window`` accesses after the latest miss of their row (its data still on the way).

    Each row's accesses are taken in stream order; at capacity C an access misses when its
    stack distance is -1 (first touch) or at least C. A hot row that stays resident misses
    once, so only the accesses of its first window wait; a row that keeps missing has most
    of its close reuses merged.
    """
    order = np.argsort(stream, kind="stable")  # by row, stream order within a row
    d = dist[order]
    pos = order.astype(np.int64)
    ar = np.arange(d.size, dtype=np.int64)
    out = np.zeros(caps.size)
    for i, c in enumerate(caps):
        miss = (d < 0) | (d >= c)
        # each row's run starts with a miss (its first touch), so the running maximum of miss
        # indices stays within the row
        last = np.maximum.accumulate(np.where(miss, ar, 0))
        out[i] = np.count_nonzero(~miss & (pos - pos[last] < window))
    return out
