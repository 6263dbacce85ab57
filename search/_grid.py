"""The exhaustive grid through :func:`perfmodel.predict_batch`, with dominated register caps pruned.

A walk predicts configurations in chunks and keeps, by the weighted sum of its columns (a
column is a workload whose predicted times count with a weight: the whole workload once, or
each group of identical tables times its multiplicity for a per-table plan), the ``top_k``
best, the fastest configuration of each L2 set-aside (the Pareto front's candidates), and
per column the best configuration and the fastest of each of that column's set-asides. Ties
go to the configuration that comes first in the grid's order, so the answer does not depend
on the order of the walk.

Pruning (``prune=True``). A register cap changes the model's time only through the compiled
kernel's facts (:func:`perfmodel.kernel_facts`): its registers (hence the resident blocks per
SM), the instructions one lookup iteration issues, the dependent chain, the row loads in
flight and the L2-hint distance. Take a *group*: the configurations that share variant,
block size, prefetch distance and kind and bounds check, and differ in cap, pinned fraction
and pinning method. Two caps of a group whose kernels have the same resident blocks and the
same facts but the instruction count, for every dtype of the workload and both pinning
methods, see the same memory system and chain at every pinned fraction; the model's time
never falls as the instruction count grows (its warp-scheduler queue is increasing in the
issue time per iteration). So a cap is left out when another cap of its group has the same
blocks and facts and no more instructions (fewer for some dtype, or the same everywhere and
an earlier place in the grid: then the two predict the same times). The left-out
configurations are never faster than a kept one with the same pinned fraction and method
(hence the same L2 set-aside): the optimum, each column's optimum and the Pareto front are
unchanged, and the walk knows how many configurations it will predict before it starts.
``tests/test_search_grid.py`` checks this against the full grid, and checks the premise
itself (every left-out configuration is at least as slow as its dominator, at every pinned
fraction, in every column) on workloads that mix dtypes, distributions and sizes: a change to
the model that made time depend on another kernel fact, or on the instruction count the other
way, fails there. The top k of a pruned walk lists kept configurations only.
"""

from __future__ import annotations

import itertools
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

import perfmodel
from perfmodel import GPUSpec, InputError, KernelConfig, Workload, check_int
from search._evaluate import evaluate_model, l2_bytes_set_aside
from search._space import SearchSpace

__all__ = ["DEFAULT_CHUNK", "GridColumn", "GridOutcome", "GridOverBudget", "GridProgress", "walk_grid"]

DEFAULT_CHUNK = 32768
#: the first chunk of a walk: enough for a stable rate, small enough to decide within seconds
FIRST_CHUNK = 4096
_NEW = object.__new__


def fast_config(variant: str, block_size: int, register_cap: int, prefetch_distance: int, prefetch_kind: str,
                pinned_row_fraction: float, pin_method: str, bounds_check: str) -> KernelConfig:
    """A :class:`KernelConfig` built without re-running its per-field checks.

    Only for values taken from a :class:`SearchSpace`, whose ``__post_init__`` has checked
    each value through ``KernelConfig`` (every rule of ``KernelConfig`` is per field, so any
    combination of checked values is valid). About 2.5x faster than the constructor, which
    matters when a grid builds a million configurations.
    """
    c = _NEW(KernelConfig)
    c.__dict__.update(variant=variant, block_size=block_size, register_cap=register_cap,
                      prefetch_distance=prefetch_distance, pinned_row_fraction=pinned_row_fraction,
                      pin_method=pin_method, bounds_check=bounds_check, prefetch_kind=prefetch_kind)
    return c


@dataclass(frozen=True, kw_only=True)
class GridColumn:
    """A workload whose predicted times count ``weight`` times in the walk's total."""

    workload: Workload
    weight: float = 1.0


@dataclass(frozen=True, kw_only=True)
class GridProgress:
    """Where a walk stands, passed to its ``check`` after every chunk."""

    evaluated: int
    #: configurations the walk will predict in all (pruning is decided before it starts)
    planned: int
    #: seconds spent predicting so far (from the first chunk on)
    elapsed_s: float
    #: chunks predicted so far
    chunks: int


class GridOverBudget(Exception):
    """Raised by a walk's ``check`` to stop it (e.g. when it would overrun a time budget); the
    walk then returns what it kept so far, the message in ``extra["stopped"]``."""


@dataclass(frozen=True, kw_only=True)
class Ranked:
    """A configuration of the walk with its (weighted total) time, L2 set-aside and grid index."""

    config: KernelConfig
    time_s: float
    l2_bytes: float
    index: int


@dataclass(frozen=True, kw_only=True)
class GridOutcome:
    """What a walk kept (see the module docstring)."""

    grid_size: int
    n_evaluated: int
    n_infeasible: int
    #: best ``top_k`` by total time (ties: less L2, then the earlier grid index)
    top: tuple[Ranked, ...]
    #: per distinct L2 set-aside, the fastest configuration by total time
    fastest_by_l2: tuple[Ranked, ...]
    #: per column, its best configuration (time = that column's unweighted time)
    column_best: tuple[Ranked, ...]
    #: per column, the fastest configuration of each of that column's L2 set-asides
    column_fastest_by_l2: tuple[tuple[Ranked, ...], ...]
    elapsed_s: float
    pruned: bool
    #: ``caps`` (cap slots: groups x caps), ``caps_kept``, ``stopped`` (the check's message, or
    #: None), ``kept`` (the kept (variant, block size, prefetch distance, prefetch kind, bounds
    #: check, register cap) builds of a pruned walk, else None)
    extra: dict[str, Any] = field(default_factory=dict)


class _Keeper:
    """Running best-by-key bookkeeping over chunks (numpy per chunk, a few Python objects kept)."""

    def __init__(self, top_k: int) -> None:
        self.top_k = top_k
        self.top: list[tuple[float, float, int, KernelConfig]] = []
        self.by_l2: dict[float, tuple[float, int, KernelConfig]] = {}

    def add(self, times: npt.NDArray[np.float64], l2: npt.NDArray[np.float64], index: npt.NDArray[np.int64],
            configs: Sequence[KernelConfig], top: bool) -> None:
        ok = np.flatnonzero(np.isfinite(times))
        if not ok.size:
            return
        t, b, ix = times[ok], l2[ok], index[ok]
        if top:
            k = min(self.top_k, ok.size)
            part = np.argpartition(t, k - 1)[:k] if ok.size > k else np.arange(ok.size)
            # everything tied with the k-th time competes on (l2, index) too
            cut = t[part].max()
            sel = np.flatnonzero(t <= cut)
            order = np.lexsort((ix[sel], b[sel], t[sel]))[: self.top_k]
            cand = [(float(t[j]), float(b[j]), int(ix[j]), configs[int(ok[j])]) for j in sel[order]]
            self.top = sorted(self.top + cand, key=lambda r: r[:3])[: self.top_k]
        # the fastest per distinct set-aside (ties: the earlier index)
        order = np.lexsort((ix, t, b))
        b_sorted = b[order]
        first = np.flatnonzero(np.r_[True, b_sorted[1:] != b_sorted[:-1]])
        for j in order[first]:
            key = float(b[j])
            item = (float(t[j]), int(ix[j]), configs[int(ok[j])])
            prev = self.by_l2.get(key)
            if prev is None or item[:2] < prev[:2]:
                self.by_l2[key] = item

    def best(self) -> Ranked | None:
        if not self.by_l2:
            return None
        l2, (t, i, c) = min(self.by_l2.items(), key=lambda kv: (kv[1][0], kv[0], kv[1][1]))
        return Ranked(config=c, time_s=t, l2_bytes=l2, index=i)

    def ranked_top(self) -> tuple[Ranked, ...]:
        return tuple(Ranked(config=c, time_s=t, l2_bytes=b, index=i) for t, b, i, c in self.top)

    def ranked_by_l2(self) -> tuple[Ranked, ...]:
        return tuple(Ranked(config=c, time_s=t, l2_bytes=b, index=i)
                     for b, (t, i, c) in sorted(self.by_l2.items(), key=lambda kv: (kv[1][0], kv[0])))


class _Grid:
    """The grid's axes in the order of :meth:`SearchSpace.grid_chunks` and their mixed-radix index."""

    def __init__(self, space: SearchSpace) -> None:
        self.variants = space.variants
        self.blocks = space.block_sizes
        self.caps = space.register_caps
        self.prefetch = [(d, k) for d in space.prefetch_distances
                         for k in (space.prefetch_kinds[:1] if d == 0 else space.prefetch_kinds)]
        self.pins = [(f, m) for f in space.pinned_row_fractions
                     for m in (space.pin_methods[:1] if f == 0.0 else space.pin_methods)]
        self.checks = space.bounds_checks
        self.size = (len(self.variants) * len(self.blocks) * len(self.caps) * len(self.prefetch) * len(self.pins)
                     * len(self.checks))
        #: cap groups: (variant, block size, prefetch pair, bounds check)
        self.n_groups = len(self.variants) * len(self.blocks) * len(self.prefetch) * len(self.checks)

    def config(self, i0: int, i1: int, i2: int, i3: int, i4: int, i5: int) -> KernelConfig:
        d, k = self.prefetch[i3]
        f, m = self.pins[i4]
        return fast_config(self.variants[i0], self.blocks[i1], self.caps[i2], d, k, f, m, self.checks[i5])


def _chunks(axes: npt.NDArray[np.int64], grid: _Grid,
            size: int) -> Iterator[tuple[npt.NDArray[np.int64], list[KernelConfig], npt.NDArray[np.int64]]]:
    """(grid indices, configurations, axis indices) of the rows of ``axes`` (n x 6), ``size`` at a time."""
    n = (len(grid.variants), len(grid.blocks), len(grid.caps), len(grid.prefetch), len(grid.pins), len(grid.checks))
    radix = np.array([int(np.prod(n[i + 1:])) for i in range(6)], dtype=np.int64)
    values = [np.array(v, dtype=object) for v in (grid.variants, grid.blocks, grid.caps,
                                                 [d for d, _ in grid.prefetch], [k for _, k in grid.prefetch],
                                                 [f for f, _ in grid.pins], [m for _, m in grid.pins], grid.checks)]
    columns = (0, 1, 2, 3, 3, 4, 4, 5)  # the axis each KernelConfig field is read from
    lo = 0
    while lo < len(axes):
        # a small first chunk: a budget check sees the rate early
        step = min(size, FIRST_CHUNK) if lo == 0 else size
        a = axes[lo:lo + step].astype(np.int64)
        lo += step
        fields = [values[j][a[:, c]].tolist() for j, c in enumerate(columns)]
        yield a @ radix, [fast_config(*t) for t in zip(*fields, strict=True)], a


def _product(*ranges: Sequence[int]) -> npt.NDArray[np.int64]:
    """Every combination of the index ranges, last fastest (rows of an n x len(ranges) array)."""
    mesh = np.meshgrid(*[np.asarray(r, dtype=np.int64) for r in ranges], indexing="ij")
    return np.stack([m.reshape(-1) for m in mesh], axis=1)


#: the kernel facts a cap must share with another for one to dominate the other (the
#: registers enter as resident blocks, the instruction count is compared, the rest does not
#: enter the model's time)
_SAME_FACTS = ("row_loads_in_flight", "lookups_per_iteration", "index_on_row_chain", "local_on_chain",
               "validation_loop", "l2_hint_distance")


def _cap_facts(grid: _Grid, gpu: GPUSpec, dtypes: Sequence[str], space: SearchSpace) -> tuple[
        npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Per (variant, block, prefetch, check, cap) and per (pin method, dtype): the resident
    blocks, an id of the facts that must match, and the instructions per iteration."""
    n_s = len(dtypes) * len(space.pin_methods)
    shape = (len(grid.variants), len(grid.blocks), len(grid.prefetch), len(grid.checks), len(grid.caps), n_s)
    blocks = np.zeros(shape, dtype=np.int64)
    same = np.zeros(shape, dtype=np.int64)
    instr = np.zeros(shape, dtype=np.float64)
    ids: dict[tuple[Any, ...], int] = {}
    memo: dict[tuple[int, int], int] = {}
    for i0, i3, i5, i2 in itertools.product(range(len(grid.variants)), range(len(grid.prefetch)),
                                            range(len(grid.checks)), range(len(grid.caps))):
        d, k = grid.prefetch[i3]
        s = 0
        for m in space.pin_methods:  # the facts do not depend on the block size (caps are per kernel)
            c = fast_config(grid.variants[i0], grid.blocks[0], grid.caps[i2], d, k, 0.0, m, grid.checks[i5])
            for dt in dtypes:
                f = perfmodel.kernel_facts(c, gpu.arch, dt)
                same[i0, :, i3, i5, i2, s] = ids.setdefault(tuple(getattr(f, n) for n in _SAME_FACTS), len(ids))
                instr[i0, :, i3, i5, i2, s] = f.instructions_per_iteration
                for i1, b in enumerate(grid.blocks):
                    got = memo.get((b, f.registers))
                    if got is None:
                        try:
                            got = int(perfmodel.occupancy(gpu, block_size=b, registers_per_thread=f.registers)
                                      .active_blocks_per_sm)
                        except ValueError:  # cannot be resident
                            got = 0
                        memo[(b, f.registers)] = got
                    blocks[i0, i1, i3, i5, i2, s] = got
                s += 1
    return blocks, same, instr


def _kept_caps(blocks: npt.NDArray[np.int64], same: npt.NDArray[np.int64],
               instr: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    """Which caps of each group no other cap of the group dominates (module docstring);
    each array is groups x caps x (pin methods * dtypes)."""
    n = blocks.shape[1]
    # [g, o, c]: cap o against cap c of group g
    alike = (np.all(blocks[:, :, None, :] == blocks[:, None, :, :], axis=-1)
             & np.all(same[:, :, None, :] == same[:, None, :, :], axis=-1))
    le = np.all(instr[:, :, None, :] <= instr[:, None, :, :], axis=-1)
    lt = np.any(instr[:, :, None, :] < instr[:, None, :, :], axis=-1)
    earlier = np.triu(np.ones((n, n), dtype=bool), k=1)  # o < c
    dominated = alike & le & (lt | earlier)
    kept: npt.NDArray[np.bool_] = ~np.any(dominated, axis=1)
    return kept


def walk_grid(
    space: SearchSpace,
    gpu: GPUSpec,
    columns: Sequence[GridColumn],
    *,
    prune: bool = True,
    top_k: int = 10,
    chunk_size: int = DEFAULT_CHUNK,
    progress: bool = False,
    check: Callable[[GridProgress], None] | None = None,
) -> GridOutcome:
    """Predict the grid of ``space`` for each column and keep the best (module docstring).

    Args:
        space: the search space (its grid: :meth:`SearchSpace.grid_chunks`'s order and size).
        gpu: the GPU.
        columns: the workloads whose weighted times sum to the walk's total.
        prune: leave out register caps another cap dominates (module docstring).
        top_k: how many of the best configurations to keep.
        chunk_size: configurations per :func:`perfmodel.predict_batch` call.
        progress: a tqdm bar on stderr.
        check: called after every chunk; it may raise :class:`GridOverBudget` to stop the walk.

    Returns:
        The kept configurations; ``n_evaluated`` counts what was predicted. A walk its
        ``check`` stopped holds what it kept so far and ``extra["stopped"]``.
    """
    if not columns:
        raise InputError("a grid walk needs at least one workload column, but got none")
    check_int(top_k, "top_k", min_val=1)
    check_int(chunk_size, "chunk_size", min_val=1)
    t0 = time.perf_counter()
    grid = _Grid(space)
    ncol = len(columns)
    weights = np.array([c.weight for c in columns], dtype=np.float64)
    fractions = [f for f, _ in grid.pins]
    pinned = [KernelConfig(pinned_row_fraction=f) for f in fractions]
    l2_col = np.array([l2_bytes_set_aside(c.workload, pinned) for c in columns], dtype=np.float64)
    l2_tot = l2_col.max(axis=0)
    total_keeper = _Keeper(top_k)
    col_keepers = [_Keeper(1) for _ in columns]
    bar = None
    kept_builds: frozenset[tuple[Any, ...]] | None = None
    n_caps = grid.n_groups * len(grid.caps)
    pin_axis = np.arange(len(grid.pins), dtype=np.int64)
    if prune and len(grid.caps) > 1:
        dtypes = sorted({t.dtype for c in columns for t in c.workload.tables})
        flat = (grid.n_groups, len(grid.caps), -1)
        blocks, same, instr = _cap_facts(grid, gpu, dtypes, space)
        keep = _kept_caps(blocks.reshape(flat), same.reshape(flat), instr.reshape(flat)).reshape(blocks.shape[:5])
        kept = np.argwhere(keep)  # rows (variant, block, prefetch, check, cap)
        kept_builds = frozenset((grid.variants[a], grid.blocks[b], *grid.prefetch[p], grid.checks[c], grid.caps[r])
                                for a, b, p, c, r in kept.tolist())
        items = np.empty((len(kept) * len(pin_axis), 6), dtype=np.int64)
        for j, col in enumerate((0, 1, 4, 2)):  # variant, block, cap, prefetch
            items[:, j] = np.repeat(kept[:, col], len(pin_axis))
        items[:, 4] = np.tile(pin_axis, len(kept))
        items[:, 5] = np.repeat(kept[:, 3], len(pin_axis))
        n_kept = len(kept)
    else:
        prune = False
        items = _product(range(len(grid.variants)), range(len(grid.blocks)), range(len(grid.caps)),
                         range(len(grid.prefetch)), range(len(grid.pins)), range(len(grid.checks)))
        n_kept = n_caps
    state: dict[str, Any] = {"evaluated": 0, "infeasible": 0, "chunks": 0}
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(items), desc="grid", unit="config", unit_scale=True, file=sys.stderr,
                   dynamic_ncols=True)
    stopped = None
    try:
        t_predict = time.perf_counter()
        for index, configs, axes in _chunks(items, grid, chunk_size):
            pin_idx = axes[:, 4]
            cols = np.empty((ncol, len(configs)), dtype=np.float64)
            for j, c in enumerate(columns):
                cols[j] = evaluate_model(c.workload, gpu, configs).time_s
            total = weights @ cols if ncol > 1 else cols[0] * weights[0]
            total = np.where(np.all(np.isfinite(cols), axis=0), total, np.inf)
            total_keeper.add(total, l2_tot[pin_idx], index, configs, top=True)
            for j in range(ncol):
                col_keepers[j].add(cols[j], l2_col[j][pin_idx], index, configs, top=False)
            state["infeasible"] += int((~np.isfinite(total)).sum())
            state["evaluated"] += len(configs)
            state["chunks"] += 1
            if bar is not None:
                bar.update(len(configs))
            if check is not None:
                check(GridProgress(evaluated=state["evaluated"], planned=len(items),
                                   elapsed_s=time.perf_counter() - t_predict, chunks=state["chunks"]))
    except GridOverBudget as exc:
        stopped = str(exc)
    finally:
        if bar is not None:
            bar.close()
    col_best = [k.best() for k in col_keepers]
    if stopped is None and (total_keeper.best() is None or any(b is None for b in col_best)):
        raise InputError(f"no configuration of the grid ({state['evaluated']} evaluated) is feasible on gpu {gpu.id!r}"
                         + (" for every table" if ncol > 1 else ""))
    return GridOutcome(
        grid_size=grid.size,
        n_evaluated=state["evaluated"],
        n_infeasible=state["infeasible"],
        top=total_keeper.ranked_top(),
        fastest_by_l2=total_keeper.ranked_by_l2(),
        column_best=tuple(b for b in col_best if b is not None),
        column_fastest_by_l2=tuple(k.ranked_by_l2() for k in col_keepers),
        elapsed_s=time.perf_counter() - t0,
        pruned=prune,
        extra={"caps": n_caps, "caps_kept": n_kept, "stopped": stopped, "kept": kept_builds},
    )
