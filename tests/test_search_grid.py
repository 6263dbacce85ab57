"""The grid walk (search._grid): exact against brute force, and its pruning of dominated
register caps leaves the optimum, every table's optimum and the Pareto front unchanged.

The pruning rests on a premise about the model (module docstring of search._grid): of two caps
of one build whose kernels have the same resident blocks and the same facts but the instruction
count, the one with fewer instructions is never slower, at any pinned fraction, in any table.
The premise test checks it directly: every configuration a pruned walk leaves out is at least
as slow as a kept configuration of the same build, pinned fraction and pinning method, in every
column (each table of the workload).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytest

import perfmodel
from perfmodel import IndexDistribution, KernelConfig, Table, Workload
from search import REGISTER_CAP_CHOICES, SearchSpace
from search._grid import GridColumn, GridOverBudget, GridProgress, fast_config, walk_grid

GPU = perfmodel.get_gpu("a100-80gb")

#: every register cap (the pruning acts on them), a few of everything else: 4,800 configurations
SPACE = SearchSpace(block_sizes=(64, 256, 640, 1024), register_caps=REGISTER_CAP_CHOICES,
                    prefetch_distances=(0, 1, 3, 8), pinned_row_fractions=(0.0, 0.005, 0.01))

MIXED = Workload(batch_size=1024, tables=(
    Table(rows=300_000, dim=64, pooling=20, indices=IndexDistribution(kind="zipf", alpha=1.05)),
    Table(rows=50_000, dim=16, dtype="float16", pooling=1, count=3, indices=IndexDistribution(kind="uniform")),
    Table(rows=2_000_000, dim=128, pooling=40, indices=IndexDistribution(kind="zipf", alpha=1.2, seed=3)),
))
WORKLOADS = {
    "mixed dtypes and sizes": MIXED,
    "one large uniform table": Workload(batch_size=4096, tables=(
        Table(rows=2_000_000, dim=32, pooling=8, indices=IndexDistribution(kind="uniform")),)),
}


def _columns(wl: Workload) -> list[GridColumn]:
    return [GridColumn(workload=Workload(batch_size=wl.batch_size, tables=(t,)), weight=1.0) for t in wl.tables]


def _all_configs(space: SearchSpace) -> list[KernelConfig]:
    return [c for chunk in space.grid_chunks() for c in chunk]


def _l2(wl: Workload, c: KernelConfig) -> float:
    return float(max(math.floor(c.pinned_row_fraction * t.rows + 1e-9) * t.row_bytes for t in wl.tables))


def _times(columns: Sequence[GridColumn], configs: list[KernelConfig]) -> np.ndarray:
    """Brute force: predict_batch of every configuration for each column (inf where it cannot run)."""
    out = np.array([perfmodel.predict_batch(c.workload, configs, GPU) for c in columns])
    return np.where(np.isfinite(out) & (out > 0), out, np.inf)


def test_fast_config_is_the_same_object_as_the_constructor_builds() -> None:
    for c in _all_configs(SPACE)[::97]:
        fast = fast_config(c.variant, c.block_size, c.register_cap, c.prefetch_distance, c.prefetch_kind,
                           c.pinned_row_fraction, c.pin_method, c.bounds_check)
        assert fast == c and hash(fast) == hash(c) and repr(fast) == repr(c)
        assert KernelConfig(**fast.to_dict()) == fast


@pytest.mark.parametrize("name", list(WORKLOADS))
def test_unpruned_walk_is_brute_force(name: str) -> None:
    wl = WORKLOADS[name]
    configs = _all_configs(SPACE)
    total = perfmodel.predict_batch(wl, configs, GPU)
    total = np.where(np.isfinite(total), total, np.inf)
    walk = walk_grid(SPACE, GPU, [GridColumn(workload=wl)], prune=False, top_k=5, chunk_size=1000)
    assert walk.n_evaluated == walk.grid_size == len(configs) == SPACE.grid_size == 4800
    order = np.lexsort((np.arange(len(configs)), [_l2(wl, c) for c in configs], total))
    assert [r.config for r in walk.top] == [configs[i] for i in order[:5]]
    assert walk.top[0].time_s == pytest.approx(float(total.min()), rel=1e-12)
    # the fastest configuration of each L2 set-aside
    brute: dict[float, float] = {}
    for c, t in zip(configs, total, strict=True):
        brute[_l2(wl, c)] = min(brute.get(_l2(wl, c), math.inf), float(t))
    assert {r.l2_bytes: r.time_s for r in walk.fastest_by_l2} == pytest.approx(brute, rel=1e-12)


@pytest.mark.parametrize("name", list(WORKLOADS))
def test_pruned_walk_keeps_every_optimum(name: str) -> None:
    wl = WORKLOADS[name]
    cols = _columns(wl)
    full = walk_grid(SPACE, GPU, cols, prune=False, top_k=1)
    pruned = walk_grid(SPACE, GPU, cols, prune=True, top_k=1)
    assert pruned.pruned and pruned.n_evaluated < full.n_evaluated
    # the best configuration for all tables, for each table, and the Pareto candidates: identical
    assert (pruned.top[0].config, pruned.top[0].time_s) == (full.top[0].config, full.top[0].time_s)
    assert [(r.config, r.time_s) for r in pruned.column_best] == [(r.config, r.time_s) for r in full.column_best]
    assert [(r.l2_bytes, r.time_s, r.config) for r in pruned.fastest_by_l2] == [
        (r.l2_bytes, r.time_s, r.config) for r in full.fastest_by_l2]
    for a, b in zip(pruned.column_fastest_by_l2, full.column_fastest_by_l2, strict=True):
        assert [(r.l2_bytes, r.time_s) for r in a] == [(r.l2_bytes, r.time_s) for r in b]


@pytest.mark.parametrize("name", list(WORKLOADS))
def test_premise_every_left_out_config_has_a_kept_one_no_slower_in_every_table(name: str) -> None:
    wl = WORKLOADS[name]
    cols = _columns(wl)
    walk = walk_grid(SPACE, GPU, cols, prune=True, top_k=1)
    kept = walk.extra["kept"]
    assert kept and len(kept) < walk.extra["caps"]
    configs = _all_configs(SPACE)
    times = _times(cols, configs)
    index = {c: i for i, c in enumerate(configs)}

    def build(c: KernelConfig) -> tuple[object, ...]:
        return (c.variant, c.block_size, c.prefetch_distance, c.prefetch_kind, c.bounds_check, c.register_cap)

    left_out = [c for c in configs if build(c) not in kept]
    assert left_out
    for c in left_out:
        rivals = [c.replace(register_cap=cap) for cap in SPACE.register_caps
                  if build(c.replace(register_cap=cap)) in kept]
        t = times[:, index[c]]
        assert any(np.all(times[:, index[r]] <= t) for r in rivals), (
            f"{c} was left out, but no kept cap of its build is as fast in every table: "
            f"{[(r.register_cap, times[:, index[r]].tolist()) for r in rivals]} against {t.tolist()}")


def test_a_check_stops_the_walk_with_what_it_kept() -> None:
    def stop(p: GridProgress) -> None:
        assert p.planned < SPACE.grid_size and p.chunks == 1
        raise GridOverBudget(f"stopped after {p.evaluated}")

    walk = walk_grid(SPACE, GPU, [GridColumn(workload=MIXED)], prune=True, top_k=3, chunk_size=500, check=stop)
    assert walk.extra["stopped"] == "stopped after 500" and walk.n_evaluated == 500
    assert len(walk.top) == 3


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="top_k"):
        walk_grid(SPACE, GPU, [GridColumn(workload=MIXED)], top_k=0)
    with pytest.raises(ValueError, match="column"):
        walk_grid(SPACE, GPU, [])
