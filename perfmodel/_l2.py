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
  h_i = 1 - exp(-q'_i T) with sum_i (1 - exp(-q'_i T)) = C, and a cold-start correction:
  row i's first access in the call always misses, so its expected hits are
  (n' q'_i - (1 - exp(-n' q'_i))) h_i. Rows are grouped into rank bins (exact for the hottest
  4,096, log-spaced after), which keeps tables of 10^7 rows cheap.
- traces: exact LRU stack distances of the call's stream with the pinned rows taken out
  (real traces have temporal locality that Che misses by tens of points, FACTS.md 4).

Order of touches. Warps do not read a bag's rows one bag after another: the G bags in
flight advance together, so the L2 sees, for each group of G consecutive bags, the first
lookup of every bag, then the second, and so on (iteration-major within a group). For
traces the stack distances are computed on that interleaved order for G in a small grid
(1 ... 4096 bags) and interpolated in log G, because interleaving lengthens reuse
distances (on reuse_medium at 8 MB, 70.7% hits bag by bag vs 40.6% with 2,048 bags in
flight). Independent references do not depend on the order.

Precomputed per table and batch size (independent of the kernel configuration), then
interpolated for each configuration: a grid over pinned rows k and capacity C (and G for
traces). Trace grids are computed lazily, cell by cell, and cached in memory and on disk.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from perfmodel._config import Table
from perfmodel._indices import hot_rows, load_trace, row_probabilities, table_call

__all__ = ["Residency", "residency", "sector_footprint_bytes"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: pinned-row grid, as fractions of the table's rows
PIN_GRID = np.array([0.0, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.125, 0.15, 0.2, 0.3, 0.45, 0.65, 0.85, 1.0])
#: bags-in-flight grid for traces
G_GRID = np.array([1, 64, 256, 1024, 4096])
_N_CAP = 56
_EXACT_RANKS = 4096
_CACHE_VERSION = "1"


def sector_footprint_bytes(row_bytes: int, sector_bytes: int = 32) -> float:
    """Mean bytes of the sectors a row of ``row_bytes`` covers, over its possible alignments.

    Rows start at multiples of gcd(R, 32) within a sector; a row then spans
    (R + 32 - gcd(R, 32)) / 32 sectors on average (R / 32 when R is a multiple of 32).
    """
    g = int(np.gcd(row_bytes, sector_bytes))
    return float(row_bytes + sector_bytes - g)


def _cache_dir() -> Path | None:
    root = os.environ.get("RECPERF_CACHE_DIR")
    base = Path(root) if root else Path.home() / ".cache" / "recperf"
    try:
        (base / "residency").mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return base / "residency"


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
    #: unpinned hit counts: [pin, capacity] for Che, [pin, G, capacity] for traces (NaN = not yet computed)
    grid: FloatArray
    _hot_rank: IntArray | None = field(default=None, repr=False)
    _order_cache: dict[int, IntArray] = field(default_factory=dict, repr=False)
    _key: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def is_trace(self) -> bool:
        return self.grid.ndim == 3

    def pinned_rows_grid(self) -> FloatArray:
        out: FloatArray = np.floor(PIN_GRID * self.table.rows)
        return out

    def pinned_accesses(self, pinned_rows: npt.ArrayLike) -> FloatArray:
        """Accesses of the call that go to the ``pinned_rows`` hottest rows (interpolated between grid points)."""
        out: FloatArray = np.interp(
            np.asarray(pinned_rows, dtype=np.float64), self.pinned_rows_grid(), self.pinned_access_counts
        )
        return out

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
        need = {(int(p), int(g)) for p, g in zip(pin_idx.ravel(), g_idx.ravel(), strict=True)}
        need = {c for c in need if np.isnan(self.grid[c[0], c[1], 0])}
        if not need:
            return
        from perfmodel._lru import lru_hit_counts

        with self._lock:
            assert self._hot_rank is not None
            caps = np.maximum(np.round(self.capacities).astype(np.int64), 1)
            for p, g in sorted(need):
                if not np.isnan(self.grid[p, g, 0]):
                    continue
                k = int(self.pinned_rows_grid()[p])
                stream = self._interleaved(int(G_GRID[g]))
                kept = stream[self._hot_rank[stream] >= k]
                self.grid[p, g, :] = lru_hit_counts(kept, caps).astype(np.float64)
            self._save()

    def _save(self) -> None:
        d = _cache_dir()
        if d is None or not self._key:
            return
        tmp = d / f"{self._key}.{os.getpid()}.tmp.npy"
        try:
            np.save(tmp, self.grid)
            os.replace(tmp, d / f"{self._key}.npy")
        except OSError:
            pass

    # ---- evaluation ------------------------------------------------------------------
    def hits(self, pinned_rows: npt.ArrayLike, capacity_rows: npt.ArrayLike, bags_in_flight: npt.ArrayLike) -> FloatArray:
        """Expected row-load hits of one call (pinned hits included), vectorized.

        Args:
            pinned_rows: k, rows pinned (already capped by the persisting maximum).
            capacity_rows: C, L2 capacity left to the other rows, in rows.
            bags_in_flight: G, bags whose lookups interleave (ignored for Che).
        """
        k = np.asarray(pinned_rows, dtype=np.float64)
        c = np.asarray(capacity_rows, dtype=np.float64)
        g = np.asarray(bags_in_flight, dtype=np.float64)
        k, c, g = np.broadcast_arrays(k, c, g)
        kgrid = self.pinned_rows_grid()
        pi = np.clip(np.searchsorted(kgrid, k, side="right") - 1, 0, len(kgrid) - 2)
        pw = np.clip((k - kgrid[pi]) / np.maximum(kgrid[pi + 1] - kgrid[pi], 1e-12), 0.0, 1.0)
        lc = np.log(np.maximum(c, 1.0))
        lcaps = np.log(self.capacities)
        ci = np.clip(np.searchsorted(lcaps, lc, side="right") - 1, 0, len(lcaps) - 2)
        cw = np.clip((lc - lcaps[ci]) / np.maximum(lcaps[ci + 1] - lcaps[ci], 1e-12), 0.0, 1.0)
        if self.is_trace:
            lg = np.log(np.maximum(g, 1.0))
            lgg = np.log(G_GRID.astype(np.float64))
            gi = np.clip(np.searchsorted(lgg, lg, side="right") - 1, 0, len(lgg) - 2)
            gw = np.clip((lg - lgg[gi]) / (lgg[gi + 1] - lgg[gi]), 0.0, 1.0)
            pis = np.stack([pi, pi + 1])
            gis = np.stack([gi, gi + 1])
            self._ensure_cells(np.repeat(pis, 2, axis=0), np.tile(gis, (2, 1)))
            out = np.zeros_like(c)
            for dp, wp in ((0, 1.0 - pw), (1, pw)):
                for dg, wg in ((0, 1.0 - gw), (1, gw)):
                    cells = self.grid[pi + dp, gi + dg]  # (..., capacity)
                    lo = np.take_along_axis(cells, ci[..., None], axis=-1)[..., 0]
                    hi = np.take_along_axis(cells, ci[..., None] + 1, axis=-1)[..., 0]
                    out = out + wp * wg * (lo + (hi - lo) * cw)
            unpinned = out
        else:
            g00 = self.grid[pi, ci]
            g01 = self.grid[pi, ci + 1]
            g10 = self.grid[pi + 1, ci]
            g11 = self.grid[pi + 1, ci + 1]
            unpinned = (1 - pw) * (g00 + (g01 - g00) * cw) + pw * (g10 + (g11 - g10) * cw)
        # beyond the grid's largest capacity every reuse hits
        return unpinned + self.pinned_accesses(k)


def _che_grid(table: Table, n: int, capacities: FloatArray) -> tuple[FloatArray, IntArray, int]:
    """Che hit counts on the (pin, capacity) grid for an independent-reference table."""
    q = row_probabilities(table)
    assert q is not None
    rows = table.rows
    kgrid = np.floor(PIN_GRID * rows).astype(np.int64)
    # rank-bin edges: exact hottest ranks, log-spaced after, every pinned-grid point an edge
    edges = np.unique(np.concatenate([
        np.arange(0, min(_EXACT_RANKS, rows) + 1),
        np.unique(np.geomspace(max(_EXACT_RANKS, 1), rows, 1024).astype(np.int64)),
        kgrid, [rows],
    ]))
    edges = edges[(edges >= 0) & (edges <= rows)]
    csum = np.concatenate([[0.0], np.cumsum(q)])
    mass = csum[edges[1:]] - csum[edges[:-1]]  # probability of each bin
    count = (edges[1:] - edges[:-1]).astype(np.float64)
    qbin = mass / np.maximum(count, 1.0)  # per-row probability (mean over the bin)
    grid = np.zeros((len(kgrid), len(capacities)))
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
        for ci, cap in enumerate(capacities):
            if cap >= mk.sum():
                grid[pi, ci] = float((mk * reuse).sum())
                continue
            lo, hi = 0.0, 1.0
            while float((mk * (1 - np.exp(-qn * hi))).sum()) < cap:
                hi *= 2.0
                if hi > 1e18:
                    break
            for _ in range(60):
                mid = 0.5 * (lo + hi)
                if float((mk * (1 - np.exp(-qn * mid))).sum()) < cap:
                    lo = mid
                else:
                    hi = mid
            h = 1.0 - np.exp(-qn * 0.5 * (lo + hi))
            grid[pi, ci] = float((mk * reuse * h).sum())
    distinct_all = float((count * (1.0 - np.exp(-n * qbin))).sum())
    return grid, pinned_counts, round(distinct_all)


_RESIDENCY: dict[tuple[Table, int], Residency] = {}
_RES_LOCK = threading.Lock()


def _capacity_grid(distinct: int) -> FloatArray:
    top = max(float(distinct), 2.0) * 1.01
    return np.unique(np.geomspace(1.0, top, _N_CAP))


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
        grid, pinned, distinct = _che_grid(table, n, caps)
        return Residency(table=table, batch_size=batch_size, accesses=n, distinct_rows=distinct,
                         pinned_access_counts=pinned, capacities=caps, grid=grid)
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
    assert table.indices.path is not None
    trace = load_trace(table.indices.path, table.indices.table)
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(trace).tobytes())
    h.update(repr((_CACHE_VERSION, table.rows, table.pooling, table.pooling_mean, table.pooling_dist,
                   table.indices.seed, batch_size, PIN_GRID.tolist(), G_GRID.tolist(), _N_CAP)).encode())
    key = h.hexdigest()[:32]
    grid = np.full((len(PIN_GRID), len(G_GRID), len(caps)), np.nan)
    d = _cache_dir()
    if d is not None and (d / f"{key}.npy").is_file():
        try:
            cached = np.load(d / f"{key}.npy")
            if cached.shape == grid.shape:
                grid = cached
        except (OSError, ValueError):
            pass
    return Residency(table=table, batch_size=batch_size, accesses=int(idx.size), distinct_rows=distinct,
                     pinned_access_counts=pinned, capacities=caps, grid=grid, _hot_rank=rank, _key=key)
