"""The whole grid through :func:`perfmodel.predict_batch`: the ground truth of the model
fidelity, against which the sampled search is judged."""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from typing import Any

from perfmodel import GPUSpec, KernelConfig, Workload, check_int
from search._coerce import as_gpu, as_workload
from search._evaluate import evaluate_model
from search._grid import DEFAULT_CHUNK, GridColumn, GridOutcome, Ranked, walk_grid
from search._ranking import RankedConfig, pareto_front
from search._space import SearchSpace, build_space, check_space

__all__ = ["ExhaustiveResult", "exhaustive", "ranked_from_grid"]


@dataclass(frozen=True, kw_only=True)
class ExhaustiveResult:
    """The grid's best configuration by predicted time, and its ``top`` (best first).

    ``n_evaluated`` counts the configurations predicted: the whole grid (``grid_size``), or
    fewer when ``pruned`` (dominated register caps left out; :mod:`search._grid`).
    """

    best_config: KernelConfig
    best_time_s: float
    baseline_time_s: float
    speedup: float
    n_evaluated: int
    n_infeasible: int
    gpu_id: str
    top: tuple[RankedConfig, ...]
    #: the (time, L2 bytes) Pareto front of the whole grid, fastest first
    pareto: tuple[RankedConfig, ...]
    space: SearchSpace
    elapsed_s: float
    grid_size: int = 0
    pruned: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "best_config": self.best_config.to_dict(),
            "best_time_s": self.best_time_s,
            "baseline_time_s": self.baseline_time_s,
            "speedup": self.speedup,
            "n_evaluated": self.n_evaluated,
            "grid_size": self.grid_size,
            "pruned": self.pruned,
            "n_infeasible": self.n_infeasible,
            "gpu": self.gpu_id,
            "top": [r.to_dict() for r in self.top],
            "pareto": [r.to_dict() for r in self.pareto],
            "elapsed_s": self.elapsed_s,
        }


def ranked_from_grid(items: tuple[Ranked, ...]) -> list[RankedConfig]:
    """A grid walk's kept configurations as a ranking (not trials: ``trial_number`` -1)."""
    return [RankedConfig(config=r.config, time_s=r.time_s, model_time_s=r.time_s, l2_bytes=r.l2_bytes,
                         trial_number=-1) for r in items]


def exhaustive_result(outcome: GridOutcome, baseline_time_s: float, gpu: GPUSpec, space: SearchSpace,
                      elapsed_s: float) -> ExhaustiveResult:
    """An :class:`ExhaustiveResult` from a one-column walk and the baseline's predicted time."""
    top = ranked_from_grid(outcome.top)
    best = top[0]
    return ExhaustiveResult(
        best_config=best.config,
        best_time_s=best.time_s,
        baseline_time_s=baseline_time_s,
        speedup=baseline_time_s / best.time_s if best.time_s > 0 and math.isfinite(baseline_time_s) else math.nan,
        n_evaluated=outcome.n_evaluated,
        n_infeasible=outcome.n_infeasible,
        gpu_id=gpu.id,
        top=tuple(top),
        pareto=tuple(pareto_front(ranked_from_grid(outcome.fastest_by_l2))),
        space=space,
        elapsed_s=elapsed_s,
        grid_size=outcome.grid_size,
        pruned=outcome.pruned,
    )


def exhaustive(
    workload: Workload | str | os.PathLike[str],
    gpu: GPUSpec | str,
    *,
    space: SearchSpace | None = None,
    allow_no_bounds_check: bool = False,
    top_k: int = 10,
    chunk_size: int = DEFAULT_CHUNK,
    prune: bool = False,
    progress: bool = False,
) -> ExhaustiveResult:
    """Predict every configuration of the grid, ``chunk_size`` per ``predict_batch`` call.

    Args:
        workload: a :class:`perfmodel.Workload` or a workload TOML file.
        gpu: a :class:`perfmodel.GPUSpec` or a GPU id.
        space: the search space (default: :func:`search.build_space` of the workload and GPU).
        allow_no_bounds_check: with the default space, also walk ``bounds_check = "none"``.
        top_k: how many of the best configurations to return.
        chunk_size: configurations per ``predict_batch`` call.
        prune: leave out register caps that another cap of the same build dominates (the
            optimum and the Pareto front are unchanged; :mod:`search._grid`). Off by default:
            this function is the ground truth the pruned walk is checked against.
        progress: a tqdm bar on stderr.

    Returns:
        The best configuration, the top ``top_k``, the Pareto front, and the baseline.
    """
    t0 = time.perf_counter()
    wl, _ = as_workload(workload)
    g = as_gpu(gpu)
    check_int(top_k, "top_k", min_val=1)
    sp = space if space is not None else build_space(wl, g, allow_no_bounds_check=allow_no_bounds_check)
    check_space(sp, wl, g)
    base = float(evaluate_model(wl, g, [KernelConfig()]).time_s[0])
    outcome = walk_grid(sp, g, [GridColumn(workload=wl)], prune=prune, top_k=top_k, chunk_size=chunk_size,
                        progress=progress)
    return exhaustive_result(outcome, base, g, sp, time.perf_counter() - t0)
