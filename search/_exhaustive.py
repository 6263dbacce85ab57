"""The whole grid through :func:`perfmodel.predict_batch`: the ground truth of the model
fidelity, against which the sampled search is judged."""

from __future__ import annotations

import heapq
import math
import os
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from perfmodel import GPUSpec, InputError, KernelConfig, Workload, check_int
from search._evaluate import evaluate_model
from search._optimize import RankedConfig, _as_gpu, _as_workload, pareto_front
from search._space import SearchSpace, build_space, check_space

__all__ = ["ExhaustiveResult", "exhaustive"]

DEFAULT_CHUNK = 32768


@dataclass(frozen=True, kw_only=True)
class ExhaustiveResult:
    """The grid's best configuration by predicted time, and its ``top`` (best first)."""

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

    def to_dict(self) -> dict[str, Any]:
        return {
            "best_config": self.best_config.to_dict(),
            "best_time_s": self.best_time_s,
            "baseline_time_s": self.baseline_time_s,
            "speedup": self.speedup,
            "n_evaluated": self.n_evaluated,
            "n_infeasible": self.n_infeasible,
            "gpu": self.gpu_id,
            "top": [r.to_dict() for r in self.top],
            "pareto": [r.to_dict() for r in self.pareto],
            "elapsed_s": self.elapsed_s,
        }


def exhaustive(
    workload: Workload | str | os.PathLike[str],
    gpu: GPUSpec | str,
    *,
    space: SearchSpace | None = None,
    allow_no_bounds_check: bool = False,
    top_k: int = 10,
    chunk_size: int = DEFAULT_CHUNK,
    progress: bool = False,
) -> ExhaustiveResult:
    """Predict every configuration of the grid, ``chunk_size`` per ``predict_batch`` call."""
    t0 = time.perf_counter()
    wl, _ = _as_workload(workload)
    g = _as_gpu(gpu)
    check_int(top_k, "top_k", min_val=1)
    sp = space if space is not None else build_space(wl, g, allow_no_bounds_check=allow_no_bounds_check)
    check_space(sp, wl, g)
    total = sp.grid_size
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, desc="grid", unit="config", unit_scale=True, file=sys.stderr, dynamic_ncols=True)
    heap: list[tuple[float, float, int, KernelConfig]] = []  # max-heap by (-time) of the best top_k
    # Pareto candidates per distinct L2 set-aside: the fastest configuration of each
    fastest_by_l2: dict[float, tuple[float, int, KernelConfig]] = {}
    n = 0
    n_infeasible = 0
    try:
        for chunk in sp.grid_chunks(chunk_size):
            ev = evaluate_model(wl, g, chunk)
            feasible = ev.feasible
            n_infeasible += int((~feasible).sum())
            times = ev.time_s
            idx = np.flatnonzero(feasible)
            if idx.size:
                k = min(top_k, idx.size)
                best_idx = idx[np.argpartition(times[idx], k - 1)[:k]]
                for i in best_idx:
                    item = (-float(times[i]), -float(ev.l2_bytes[i]), -(n + int(i)), chunk[int(i)])
                    if len(heap) < top_k:
                        heapq.heappush(heap, item)
                    elif item[:3] > heap[0][:3]:
                        heapq.heapreplace(heap, item)
                for l2 in np.unique(ev.l2_bytes[idx]):
                    sel = idx[ev.l2_bytes[idx] == l2]
                    j = int(sel[np.argmin(times[sel])])
                    prev = fastest_by_l2.get(float(l2))
                    if prev is None or float(times[j]) < prev[0]:
                        fastest_by_l2[float(l2)] = (float(times[j]), n + j, chunk[j])
            n += len(chunk)
            if bar is not None:
                bar.update(len(chunk))
    finally:
        if bar is not None:
            bar.close()
    if not heap:
        raise InputError(f"no configuration of the grid ({n} evaluated) is feasible on gpu {g.id!r}")
    top = [
        RankedConfig(config=c, time_s=-nt, model_time_s=-nt, l2_bytes=-nl2, trial_number=-ni)
        for nt, nl2, ni, c in sorted(heap, reverse=True)
    ]
    front = pareto_front(
        [RankedConfig(config=c, time_s=t, model_time_s=t, l2_bytes=l2, trial_number=i)
         for l2, (t, i, c) in fastest_by_l2.items()]
    )
    base = float(evaluate_model(wl, g, [KernelConfig()]).time_s[0])
    best = top[0]
    return ExhaustiveResult(
        best_config=best.config,
        best_time_s=best.time_s,
        baseline_time_s=base,
        speedup=base / best.time_s if best.time_s > 0 and math.isfinite(base) else math.nan,
        n_evaluated=n,
        n_infeasible=n_infeasible,
        gpu_id=g.id,
        top=tuple(top),
        pareto=tuple(front),
        space=sp,
        elapsed_s=time.perf_counter() - t0,
    )
