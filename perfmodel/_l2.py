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

- independent references (uniform, Zipf): Che's approximation over the unpinned rows
  (:mod:`perfmodel._che`): an access hits when its row was accessed within the
  characteristic time T, sum_i (1 - (1 - q'_i)^T) = C, from a cold start: the access at
  time t looks back min(t, T). Rows are described by rank bins (:mod:`perfmodel._popularity`:
  the hottest ranks one by one, geometric bins after, within 1e-4 points of the per-row
  sums), so the cost is the same for 10^3 and 10^12 rows; pinned rows are a prefix of ranks.
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
the interleaved order, :func:`perfmodel._lru.merged_hit_counts`), and for independent
references with probability 1 - (1 - q' m)^G (m the row's miss share). A hot row that stays resident
misses once, so its later hits are fast. :meth:`Residency.hits` returns both counts: hits that save DRAM bytes,
and hits that also save latency.

Precomputed per table and batch size (independent of the kernel configuration), then
interpolated for each configuration: a grid over pinned rows k and capacity C (and G for
traces). Grids are computed lazily, one pinned-row value at a time (a configuration needs
two), cached in memory, and for traces on disk (:mod:`perfmodel._disk_cache`). A trace is
never held whole: the call's head and the file's per-row counts (:mod:`perfmodel._traces`).
The SM's own L1 is estimated in :mod:`perfmodel._l1`.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from perfmodel import _disk_cache
from perfmodel._che import call_hits, expected_distinct
from perfmodel._config import Table
from perfmodel._indices import bag_lengths, table_call
from perfmodel._lru import count_below, merged_hit_counts, stack_distances
from perfmodel._physics import bracket as _bracket
from perfmodel._physics import bracket_scalar as _bracket_scalar
from perfmodel._popularity import Popularity, popularity
from perfmodel._traces import trace_counts

__all__ = ["Residency", "clear_cache", "residency"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: pinned-row grid, as fractions of the table's rows
PIN_GRID = np.array([0.0, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.125, 0.15, 0.2, 0.3, 0.45, 0.65, 0.85, 1.0])
#: bags-in-flight grid for traces
G_GRID = np.array([1, 64, 256, 1024, 4096])
_N_CAP = 56


@dataclass
class Residency:
    """Kernel-independent residency data of one table call; see :meth:`hits`."""

    table: Table
    batch_size: int
    accesses: int
    distinct_rows: int
    #: accesses to the k hottest rows, for k on PIN_GRID x rows (counted for traces, expected
    #: for independent references)
    pinned_access_counts: FloatArray
    #: capacity grid (rows), log-spaced from 1 to the distinct rows of the call
    capacities: FloatArray
    #: unpinned hit counts [pin, G, capacity] (NaN = not yet computed)
    grid: FloatArray
    #: of those, hits under a miss (reuse within G accesses), same shape
    inflight: FloatArray
    #: independent references: the rows' popularity by rank
    _pop: Popularity | None = field(default=None, repr=False)
    #: traces: the rank (0 hottest) of each access of the call
    _call_rank: IntArray | None = field(default=None, repr=False)
    _order_cache: dict[int, tuple[IntArray, IntArray, IntArray]] = field(default_factory=dict, repr=False)
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
        return self._call_rank is not None

    def _refresh(self, cells: list[tuple[int, int]] | None = None) -> None:
        """Note which grid cells exist, and mirror the grids as lists for one-configuration
        lookups (all cells, or only ``cells``, the ones just computed)."""
        done = ~np.isnan(self.grid[:, :, 0])
        self._complete = bool(done.all())
        self._missing = ~done.ravel()  # by cell pin * len(G_GRID) + G
        if cells is None:
            self._done = {(int(a), int(b)) for a, b in zip(*np.nonzero(done), strict=True)}
            self._grid_list = self.grid.tolist()
            self._inflight_list = self.inflight.tolist()
        else:
            for p, g in cells:
                self._done.add((p, g))
                self._grid_list[p][g] = self.grid[p, g].tolist()
                self._inflight_list[p][g] = self.inflight[p, g].tolist()
        self._flat = np.stack([self.grid.ravel(), self.inflight.ravel()])
        self._pinned_list: list[float] = self.pinned_access_counts.tolist()

    def pinned_rows_grid(self) -> FloatArray:
        out: FloatArray = self._kgrid
        return out

    def pinned_accesses(self, pinned_rows: Any) -> Any:
        """Accesses of the call that go to the ``pinned_rows`` hottest rows (interpolated between grid points)."""
        return np.interp(pinned_rows, self._kgrid, self.pinned_access_counts)

    # ---- lazy grid cells ------------------------------------------------------------------
    def _interleaved(self, g: int) -> tuple[IntArray, IntArray, IntArray]:
        """The call's accesses in the order the L2 sees them with ``g`` bags in flight: (rows,
        their ranks, the stable by-row order of those rows)."""
        got = self._order_cache.get(g)
        if got is not None:
            return got
        assert self._call_rank is not None
        call = table_call(self.table, self.batch_size)
        lengths = call.lengths
        bag = np.repeat(np.arange(self.batch_size, dtype=np.int64), lengths)
        pos = np.arange(call.indices.size, dtype=np.int64) - np.repeat(call.offsets, lengths)
        order = np.lexsort((bag, pos, bag // g))  # group, then lookup position, then bag
        stream = call.indices[order]
        out = (stream, self._call_rank[order], np.argsort(stream, kind="stable"))
        self._order_cache[g] = out
        return out

    def _trace_cells(self, p: int, g: int, caps: IntArray) -> None:
        """Exact LRU of the interleaved stream without the pinned rows: grid cell (p, g)."""
        k = int(self._kgrid[p])
        window = int(G_GRID[g])
        stream, rank, by_row = self._interleaved(window)
        keep = rank >= k
        kept = stream[keep]
        dist = stack_distances(kept)
        self.grid[p, g, :] = count_below(dist, caps)
        # the kept stream's by-row order is the full one's, filtered, in kept positions
        kept_pos = np.cumsum(keep) - 1
        by_row_kept = kept_pos[by_row[keep[by_row]]]
        self.inflight[p, g, :] = merged_hit_counts(kept, dist, caps, window, by_row_kept)

    def _irm_cells(self, p: int) -> None:
        """Che over the unpinned ranks: grid cells (p, every G)."""
        assert self._pop is not None
        k = int(self._kgrid[p])
        rest = self.accesses - float(self.pinned_access_counts[p])
        got = call_hits(self._pop.atoms(k), rest, self.capacities, G_GRID.astype(np.float64))
        self.grid[p, :, :] = got.hits[None, :]
        self.inflight[p, :, :] = got.merged

    def _ensure_cells(self, pin_idx: IntArray, g_idx: IntArray) -> None:
        n_g = len(G_GRID)
        flat = np.unique(np.asarray(pin_idx).ravel() * n_g + np.asarray(g_idx).ravel())
        missing = flat[np.isnan(self.grid.reshape(-1, self.grid.shape[-1])[flat, 0])]
        if missing.size == 0:
            return
        # independent references: one Che solve gives a pinned-row value's every G; traces:
        # one exact LRU pass per cell, only the cells asked for
        with self._lock:
            caps = np.maximum(np.round(self.capacities).astype(np.int64), 1)
            new: list[tuple[int, int]] = []
            for f in missing.tolist():
                p, g = divmod(int(f), n_g)
                if not np.isnan(self.grid[p, g, 0]):
                    continue
                if self._pop is not None:
                    self._irm_cells(p)
                    new.extend((p, gg) for gg in range(n_g))
                else:
                    self._trace_cells(p, g, caps)
                    new.append((p, g))
            self._refresh(new)
            self._save()

    def _save(self) -> None:
        if self._key:
            _disk_cache.save(self._key, np.stack([self.grid, self.inflight]))

    # ---- evaluation ------------------------------------------------------------------
    def hits(self, pinned_rows: Any, capacity_rows: Any, bags_in_flight: Any) -> Any:
        """Expected row-load hits of one call (pinned hits included), vectorized."""
        return self.hit_counts(pinned_rows, capacity_rows, bags_in_flight)[0]

    def hit_counts(self, pinned_rows: Any, capacity_rows: Any, bags_in_flight: Any, *,
                   log_bags_in_flight: Any = None) -> tuple[Any, Any]:
        """(hits, hits that also save latency) of one call, pinned hits included, vectorized.

        Args:
            pinned_rows: k, rows pinned (already capped by the persisting maximum).
            capacity_rows: C, L2 capacity left to the other rows, in rows.
            bags_in_flight: G, bags whose lookups interleave.
            log_bags_in_flight: log(max(G, 1)) when the caller has it (arrays only).
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
            gi, gw = _bracket(_LOG_G, np.log(np.maximum(g, 1.0)) if log_bags_in_flight is None
                              else np.broadcast_to(log_bags_in_flight, g.shape))
        if not self._complete:
            if scalar:
                if not {(pi, gi), (pi, gi + 1), (pi + 1, gi), (pi + 1, gi + 1)} <= self._done:
                    self._ensure_cells(np.array([pi, pi, pi + 1, pi + 1]), np.array([gi, gi + 1, gi, gi + 1]))
            else:
                n_g = len(G_GRID)
                cells = (pi * n_g + gi)[None, :] + np.array([0, 1, n_g, n_g + 1])[:, None]
                if self._missing[cells].any():
                    flat = np.unique(cells)
                    self._ensure_cells(flat // n_g, flat % n_g)
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
        # the eight (pin, G, capacity) corners of each configuration, gathered at once from both
        # grids: trilinear in (k, log G, log C)
        n_g, n_c = self.grid.shape[1], self.grid.shape[2]
        base = (pi * n_g + gi) * n_c + ci
        offsets = (_CORNERS_P * n_g * n_c + _CORNERS_G * n_c + _CORNERS_C)[:, None]
        vals = np.take(self._flat, base[None, :] + offsets, axis=1)  # (2, 8, configs): hits, hits under a miss
        weights = (np.where(_CORNERS_P[:, None] == 1, pw, 1.0 - pw) * np.where(_CORNERS_G[:, None] == 1, gw, 1.0 - gw)
                   * np.where(_CORNERS_C[:, None] == 1, cw, 1.0 - cw))  # (8, configs)
        hits, merged = np.einsum("ijk,jk->ik", vals, weights)
        pinned = self.pinned_accesses(k)
        return hits + pinned, hits - merged + pinned


#: the corners of a (pin, G, capacity) cell, as offsets (0 or 1) along each axis
_CORNERS_P, _CORNERS_G, _CORNERS_C = (np.array(v) for v in zip(*[(a, b, c) for a in (0, 1) for b in (0, 1)
                                                                  for c in (0, 1)], strict=True))


_LOG_G = np.log(G_GRID.astype(np.float64))
_LOG_G_LIST = _LOG_G.tolist()


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
    kgrid = np.floor(PIN_GRID * table.rows)
    pop = popularity(table)
    if pop is not None:
        n = int(bag_lengths(table, batch_size).sum())
        caps = _capacity_grid(min(table.rows, n))  # up to the most rows a call can touch
        grid = np.full((len(PIN_GRID), len(G_GRID), len(caps)), np.nan)
        return Residency(table=table, batch_size=batch_size, accesses=n,
                         distinct_rows=round(expected_distinct(pop.atoms(), n)),
                         pinned_access_counts=n * pop.prefix_mass(kgrid), capacities=caps, grid=grid,
                         inflight=grid.copy(), _pop=pop)
    assert table.indices.path is not None
    call = table_call(table, batch_size)
    idx = call.indices
    rank = trace_counts(table.indices.path, table.indices.table).rank_of(idx, table.rows)
    per_rank = np.bincount(rank)  # ranks are dense (0 .. rows read - 1): accesses of each
    pinned = np.concatenate([[0], np.cumsum(per_rank)])[np.minimum(kgrid, per_rank.size).astype(np.int64)]
    pinned = pinned.astype(np.float64)
    distinct = int(np.count_nonzero(per_rank))
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
                     _call_rank=rank, _key=key)
