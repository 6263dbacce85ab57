"""``search.plan``: the best kernel configuration for each table, against one shared configuration.

The stage launches one lookup kernel per table call and each call sees an L2 that holds none
of that table's rows but the pinned ones (docs/formats.md), so the stage time is the sum of the
table calls' times and each table can take its own configuration. One grid walk
(:mod:`search._grid`) predicts every configuration for each *group* of identical tables
(equal but for ``count``) and keeps each group's best, the best configuration for all tables
together (the same walk's weighted sum), and, per group, the fastest configuration of each L2
set-aside. The plan is exact at model fidelity: no configuration of the grid is faster for
any table. With two objectives the plan's Pareto front is built from the per-table fronts:
for each L2 budget (the set-aside is the largest table's pinned bytes, as tables run one
after another), every table takes its fastest configuration within the budget.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import perfmodel
from perfmodel import GPUSpec, InputError, KernelConfig, Plan, Table, Workload
from search._coerce import as_gpu, as_workload
from search._evaluate import l2_bytes_set_aside, parse_objectives
from search._grid import GridColumn, Ranked, walk_grid
from search._space import SearchSpace, build_space, check_space

__all__ = ["PlanPoint", "PlanResult", "TablePlan", "plan"]


@dataclass(frozen=True, kw_only=True)
class TablePlan:
    """One ``[[tables]]`` entry of the workload in a plan; times are the entry's (``count`` calls)."""

    index: int
    #: the group of identical tables the entry belongs to
    group: int
    table: Table
    config: KernelConfig
    time_s: float
    single_config_time_s: float
    baseline_time_s: float
    #: L2 bytes the entry's configuration sets aside for pinned rows
    l2_bytes: float

    def to_dict(self) -> dict[str, Any]:
        t = self.table
        return {"index": self.index, "group": self.group, "rows": t.rows, "dim": t.dim, "dtype": t.dtype,
                "count": t.count, "kernel": self.config.to_dict(), "time_s": self.time_s,
                "single_config_time_s": self.single_config_time_s, "baseline_time_s": self.baseline_time_s,
                "l2_bytes": self.l2_bytes}


@dataclass(frozen=True, kw_only=True)
class PlanPoint:
    """A point of the plan's (time, L2 set-aside) Pareto front."""

    plan: Plan
    time_s: float
    l2_bytes: float

    def to_dict(self) -> dict[str, Any]:
        return {"time_s": self.time_s, "l2_bytes": self.l2_bytes, "plan": [k.to_dict() for k in self.plan]}


@dataclass(frozen=True, kw_only=True)
class PlanResult:
    """What :func:`plan` found: the plan, and its stage time against one shared configuration
    and against PyTorch's kernel as shipped (all predicted as :func:`perfmodel.predict` does
    a plan, so ``perfmodel.predict(workload, result.plan, gpu).time_s == plan_time_s``)."""

    plan: Plan
    plan_time_s: float
    single_config: KernelConfig
    single_config_time_s: float
    baseline_time_s: float
    tables: tuple[TablePlan, ...]
    n_groups: int
    grid_size: int
    n_evaluated: int
    objectives: tuple[str, ...]
    #: with objectives time,l2-bytes: the plan's Pareto front, fastest first
    pareto: tuple[PlanPoint, ...]
    gpu_id: str
    space: SearchSpace
    elapsed_s: float

    @property
    def speedup(self) -> float:
        """Baseline time over plan time."""
        return self.baseline_time_s / self.plan_time_s if self.plan_time_s > 0 else math.nan

    def comments(self) -> list[str]:
        """A line per table entry for the plan file."""
        out = []
        for e in self.tables:
            t = e.table
            out.append(f"table {e.index}: {t.rows:,} rows x {t.dim} {t.dtype}, pooling {t.mean_pooling:g}, "
                       f"x{t.count}: {e.time_s * 1e6:.2f} us with this kernel (one shared configuration "
                       f"{e.single_config_time_s * 1e6:.2f} us, PyTorch's {e.baseline_time_s * 1e6:.2f} us)")
        return out

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write the plan file (docs/formats.md, "Plan") with a comment per table."""
        return self.plan.write(path, self.comments())

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "plan_time_s": self.plan_time_s,
            "single_config_time_s": self.single_config_time_s,
            "baseline_time_s": self.baseline_time_s,
            "speedup": self.speedup,
            "speedup_over_single_config": (self.single_config_time_s / self.plan_time_s
                                           if self.plan_time_s > 0 else math.nan),
            "plan": [k.to_dict() for k in self.plan],
            "single_config": self.single_config.to_dict(),
            "tables": [e.to_dict() for e in self.tables],
            "n_groups": self.n_groups,
            "grid_size": self.grid_size,
            "n_evaluated": self.n_evaluated,
            "objectives": list(self.objectives),
            "gpu": self.gpu_id,
            "elapsed_s": self.elapsed_s,
        }
        if len(self.objectives) > 1:
            out["pareto"] = [p.to_dict() for p in self.pareto]
        return out


def _groups(workload: Workload) -> tuple[list[Table], list[int], list[int]]:
    """Distinct tables (count 1), each entry's group, and each group's number of table calls."""
    tables: list[Table] = []
    of_entry = []
    calls: list[int] = []
    for t in workload.tables:
        one = dataclasses.replace(t, count=1)
        if one not in tables:
            tables.append(one)
            calls.append(0)
        g = tables.index(one)
        of_entry.append(g)
        calls[g] += t.count
    return tables, of_entry, calls


def _plan_front(per_group: Sequence[Sequence[Ranked]], calls: Sequence[int],
                of_entry: Sequence[int]) -> list[PlanPoint]:
    """The plan's (time, L2) front: per L2 budget, each group's fastest configuration within it."""
    budgets = sorted({r.l2_bytes for rs in per_group for r in rs})
    points: list[tuple[float, float, tuple[KernelConfig, ...]]] = []
    for b in budgets:
        chosen = []
        for rs in per_group:
            within = [r for r in rs if r.l2_bytes <= b]
            if not within:
                break
            chosen.append(min(within, key=lambda r: (r.time_s, r.l2_bytes, r.index)))
        else:
            time_s = sum(n * r.time_s for n, r in zip(calls, chosen, strict=True))
            l2 = max(r.l2_bytes for r in chosen)
            points.append((time_s, l2, tuple(chosen[g].config for g in of_entry)))
    front: list[PlanPoint] = []
    lowest = math.inf
    for time_s, l2, ks in sorted(points, key=lambda p: (p[0], p[1])):
        if l2 < lowest:
            front.append(PlanPoint(plan=Plan(ks), time_s=time_s, l2_bytes=l2))
            lowest = l2
    return front


def plan(
    workload: Workload | str | os.PathLike[str],
    gpu: GPUSpec | str,
    *,
    space: SearchSpace | None = None,
    objectives: str | Sequence[str] = ("time",),
    allow_no_bounds_check: bool = False,
    progress: bool = False,
) -> PlanResult:
    """The best configuration for each table of ``workload`` (exact at model fidelity).

    Args:
        workload: a :class:`perfmodel.Workload` or a workload TOML file.
        gpu: a :class:`perfmodel.GPUSpec` or a GPU id.
        space: the search space (default :func:`search.build_space` of the workload and GPU).
        objectives: ``"time"``, or ``"time,l2-bytes"`` for the plan's Pareto front too.
        allow_no_bounds_check: with the default space, also search ``bounds_check = "none"``.
        progress: a tqdm bar on stderr.

    Returns:
        The plan (one configuration per ``[[tables]]`` entry, identical tables alike), its
        predicted stage time, and those of the best single configuration and of the baseline.
    """
    t0 = time.perf_counter()
    wl, _ = as_workload(workload)
    g = as_gpu(gpu)
    objs = parse_objectives(objectives)
    sp = space if space is not None else build_space(wl, g, allow_no_bounds_check=allow_no_bounds_check)
    check_space(sp, wl, g)
    tables, of_entry, calls = _groups(wl)
    columns = [GridColumn(workload=Workload(batch_size=wl.batch_size, tables=(t,)), weight=float(n))
               for t, n in zip(tables, calls, strict=True)]
    outcome = walk_grid(sp, g, columns, prune=True, top_k=1, progress=progress)
    if len(outcome.column_best) != len(columns) or not outcome.top:
        raise InputError(f"no configuration of the grid is feasible for every table on gpu {g.id!r}")
    chosen = Plan(tuple(outcome.column_best[gi].config for gi in of_entry))
    single = outcome.top[0].config
    pred = perfmodel.predict(wl, chosen, g)
    single_pred = perfmodel.predict(wl, Plan.uniform(single, len(wl.tables)), g)
    base_pred = perfmodel.predict(wl, Plan.uniform(KernelConfig(), len(wl.tables)), g)
    entries = []
    for i, (t, k) in enumerate(zip(wl.tables, chosen, strict=True)):
        row = pred.breakdown["tables"][i]
        entries.append(TablePlan(
            index=i, group=of_entry[i], table=t, config=k, time_s=float(row["time_s"]),
            single_config_time_s=float(single_pred.breakdown["tables"][i]["time_s"]),
            baseline_time_s=float(base_pred.breakdown["tables"][i]["time_s"]),
            l2_bytes=float(l2_bytes_set_aside(Workload(batch_size=wl.batch_size, tables=(t,)), [k])[0]),
        ))
    front = _plan_front(outcome.column_fastest_by_l2, calls, of_entry) if len(objs) > 1 else []
    return PlanResult(
        plan=chosen,
        plan_time_s=pred.time_s,
        single_config=single,
        single_config_time_s=single_pred.time_s,
        baseline_time_s=base_pred.time_s,
        tables=tuple(entries),
        n_groups=len(tables),
        grid_size=outcome.grid_size,
        n_evaluated=outcome.n_evaluated,
        objectives=objs,
        pareto=tuple(front),
        gpu_id=g.id,
        space=sp,
        elapsed_s=time.perf_counter() - t0,
    )
