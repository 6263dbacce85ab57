"""MP-Rec's choices: a representation per table, and a platform per query size.

Representation per table (exact). Notation: table i, representation r, t_ir the time of
table i's embedding ops under r (alone, from the same graph the pipeline runs), b_ir its
bytes, T0 the pipeline's latency with every table a ``table``. The latency of a choice is
taken as T0 + sum_i (t_ir - t_i,table) (exact where the embedding ops run one after another,
as on a CPU or on one stream; the pipeline then runs the choice and its own latency is the
one reported). The choice solves the multiple-choice knapsack

    minimize   sum_ir t_ir x_ir                       (objective "latency")
    or maximize sum_ir w_i q_r x_ir, then the latency  (objective "quality", weights q_r)
    subject to sum_r x_ir = 1, sum_ir b_ir x_ir <= memory budget,
               T0 + sum_ir (t_ir - t_i,table) x_ir <= latency target,  x binary,

as an integer linear program (scipy's HiGHS MILP: exact). w_i is table i's share of the
lookups. If the pipeline's latency of the optimum misses the target (streams overlap, host
launches), the target of the program is lowered by the miss and it is solved again.

Platform per query size (MP-Rec's routing): each query size goes to the device (with its
representations) whose latency for that size is lowest; over a query-size distribution
this gives each device's share of the queries and the mean latency.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from perfmodel._config import KernelConfig
from perfmodel._errors import InputError, check_float
from perfmodel._gpu import GPUSpec
from perfmodel.pipeline._pipeline import PipelineResult, resolve_device, run_pipeline, table_instances
from perfmodel.pipeline._representations import REPRESENTATIONS, DHEConfig, representation_bytes
from perfmodel.pipeline._specs import CPUSpec, ModelSpec, get_model

__all__ = ["brute_force_choice", "choose_representations", "route_queries", "solve_choice"]

_MAX_REFINES = 6


def solve_choice(times: Sequence[Sequence[float]], nbytes: Sequence[Sequence[float]], *, memory_budget: float,
                 time_budget: float | None = None, quality: Sequence[Sequence[float]] | None = None) -> list[int] | None:
    """The exact multiple-choice knapsack: one option per item, ``nbytes`` within ``memory_budget``,
    ``times`` within ``time_budget``; the least total time, or with ``quality`` the most quality,
    then the least time. Returns the option per item, or None when nothing is feasible."""
    from scipy.optimize import Bounds, LinearConstraint, milp

    n = len(times)
    if n == 0:
        return []
    sizes = [len(t) for t in times]
    nv = sum(sizes)
    starts = np.cumsum([0, *sizes[:-1]])
    t = np.concatenate([np.asarray(x, dtype=float) for x in times])
    b = np.concatenate([np.asarray(x, dtype=float) for x in nbytes])
    one = np.zeros((n, nv))
    for i, (s, k) in enumerate(zip(starts, sizes, strict=True)):
        one[i, s:s + k] = 1.0
    t_scale = max(float(np.max(np.abs(t))), 1e-300)
    b_scale = max(float(np.max(np.abs(b))), 1.0)
    rows = [one, (b / b_scale)[None, :]]
    lo: list[Any] = [np.ones(n), [-np.inf]]
    hi: list[Any] = [np.ones(n), [memory_budget / b_scale]]
    if time_budget is not None:
        rows.append((t / t_scale)[None, :])
        lo.append([-np.inf])
        hi.append([time_budget / t_scale])

    def solve(c: np.ndarray, extra: list[tuple[np.ndarray, float]]) -> np.ndarray | None:
        a = np.vstack(rows + [e[0][None, :] for e in extra])
        lb = np.concatenate([*(np.asarray(x, dtype=float) for x in lo), np.full(len(extra), -np.inf)])
        ub = np.concatenate([*(np.asarray(x, dtype=float) for x in hi), np.array([e[1] for e in extra], dtype=float)])
        res = milp(c, constraints=LinearConstraint(a, lb, ub), integrality=np.ones(nv), bounds=Bounds(0, 1),
                   options={"mip_rel_gap": 0.0})
        return None if res.x is None or not res.success else np.round(res.x)

    extra: list[tuple[np.ndarray, float]] = []
    if quality is not None:
        q = np.concatenate([np.asarray(x, dtype=float) for x in quality])
        x = solve(-q, [])
        if x is None:
            return None
        best_q = float(q @ x)
        extra.append((-q, -best_q + 1e-9 * max(1.0, abs(best_q))))
    x = solve(t / t_scale, extra)
    if x is None:
        return None
    return [int(np.argmax(x[s:s + k])) for s, k in zip(starts, sizes, strict=True)]


def brute_force_choice(times: Sequence[Sequence[float]], nbytes: Sequence[Sequence[float]], *, memory_budget: float,
                       time_budget: float | None = None,
                       quality: Sequence[Sequence[float]] | None = None) -> list[int] | None:
    """:func:`solve_choice` by enumeration (small instances; the test oracle)."""
    best: tuple[float, float] | None = None
    pick: list[int] | None = None
    for combo in itertools.product(*(range(len(t)) for t in times)):
        bsum = sum(nbytes[i][j] for i, j in enumerate(combo))
        tsum = sum(times[i][j] for i, j in enumerate(combo))
        if bsum > memory_budget * (1 + 1e-12) or (time_budget is not None and tsum > time_budget * (1 + 1e-12)):
            continue
        qsum = sum(quality[i][j] for i, j in enumerate(combo)) if quality is not None else 0.0
        key = (-qsum, tsum)
        if best is None or key < best:
            best, pick = key, list(combo)
    return pick


def _per_table(result: PipelineResult) -> dict[str, float]:
    out: dict[str, float] = {}
    for op in result.ops:
        if op.table:
            out[op.table] = out.get(op.table, 0.0) + op.time_s
    return out


def choose_representations(model: str | os.PathLike[str] | ModelSpec, device: str | GPUSpec | CPUSpec, batch_size: int, *,
                           memory_budget_bytes: float, latency_target_s: float | None = None,
                           quality: Mapping[str, float] | None = None, prefer_hybrid: bool = False,
                           candidates: Sequence[str] = REPRESENTATIONS, dhe: DHEConfig | None = None, streams: int = 1,
                           dtype: str = "fp32", kernel: KernelConfig | None = None,
                           kernels: Mapping[str, KernelConfig] | None = None, transfers: bool = True,
                           cpu_mode: str = "socket") -> dict[str, Any]:
    """A representation per table under a memory budget (and a latency target), exactly.

    ``quality``: weights per representation to maximize (lookup-weighted) before the latency;
    ``prefer_hybrid`` is ``quality={"hybrid": 1}``. Infeasible settings are a result
    (``feasible`` False with the reason), not an error. ``result`` in the returned mapping is
    the pipeline run of the chosen representations (its ``time_s`` is ``time_s`` here).
    """
    m = get_model(model)
    dev = resolve_device(device)
    memory_budget_bytes = check_float(memory_budget_bytes, "memory_budget_bytes", min_val=0.0)
    dhe = dhe or DHEConfig()
    cands = list(dict.fromkeys(candidates))
    for c in cands:
        if c not in REPRESENTATIONS:
            raise InputError(f"unknown representation {c!r}; valid choices: {', '.join(REPRESENTATIONS)}")
    if "table" not in cands:
        cands.insert(0, "table")
    if prefer_hybrid:
        quality = {"hybrid": 1.0, **(quality or {})}
    run_kw: dict[str, Any] = dict(streams=streams, dtype=dtype, kernel=kernel, kernels=kernels, dhe=dhe,
                                  transfers=transfers, cpu_mode=cpu_mode)
    inst = table_instances(m)
    keys = [k for k, _ in inst]
    # per-table costs of every candidate, from the graph the pipeline runs (one run per candidate)
    runs = {r: run_pipeline(m, dev, batch_size, representations=r, throughput=False, **run_kw) for r in cands}
    per = {r: _per_table(runs[r]) for r in cands}
    from perfmodel.pipeline._costs import MATMUL_DTYPES

    esize = MATMUL_DTYPES[dtype]
    times = [[per[r].get(k, 0.0) for r in cands] for k in keys]
    nbytes = [[float(representation_bytes(r, f.table.rows, f.table.dim, f.table.row_bytes // f.table.dim, dhe, esize))
               for r in cands] for _, f in inst]
    lookups = np.array([f.table.mean_pooling * f.sequence for _, f in inst])
    w = lookups / lookups.sum()
    qual = [[w[i] * (quality or {}).get(r, 0.0) for r in cands] for i in range(len(inst))] if quality else None
    t0 = runs["table"].time_s
    base_emb = sum(times[i][0] for i in range(len(keys)))
    reason = ""
    budget = None if latency_target_s is None else latency_target_s - t0 + base_emb
    pick = solve_choice(times, nbytes, memory_budget=memory_budget_bytes, time_budget=budget, quality=qual)
    iterations = 1
    if pick is None:
        mem_only = solve_choice(times, nbytes, memory_budget=memory_budget_bytes)
        if mem_only is None:
            reason = "memory budget below the smallest footprint of the candidate representations"
            pick = [int(np.argmin(nb)) for nb in nbytes]
        else:
            pick = mem_only
    choice = {k: cands[j] for k, j in zip(keys, pick, strict=True)}
    res = run_pipeline(m, dev, batch_size, representations=choice, **run_kw)
    surrogate = t0 + sum(times[i][j] - times[i][0] for i, j in enumerate(pick))
    while (not reason and budget is not None and latency_target_s is not None and res.time_s > latency_target_s
           and iterations < _MAX_REFINES):
        budget -= res.time_s - latency_target_s + 1e-12
        nxt = solve_choice(times, nbytes, memory_budget=memory_budget_bytes, time_budget=budget, quality=qual)
        iterations += 1
        if nxt is None:
            break
        pick = nxt
        choice = {k: cands[j] for k, j in zip(keys, pick, strict=True)}
        res = run_pipeline(m, dev, batch_size, representations=choice, **run_kw)
        surrogate = t0 + sum(times[i][j] - times[i][0] for i, j in enumerate(pick))
    if not reason and latency_target_s is not None and res.time_s > latency_target_s:
        reason = f"latency {res.time_s:.3g} s exceeds the target {latency_target_s:.3g} s"
    emb_bytes = sum(nbytes[i][j] for i, j in enumerate(pick))
    return {
        "model": m.id, "device": dev.id, "batch_size": batch_size, "dtype": dtype, "representations": choice,
        "counts": {r: sum(1 for v in choice.values() if v == r) for r in REPRESENTATIONS},
        "embedding_bytes": emb_bytes, "memory_budget_bytes": memory_budget_bytes, "time_s": res.time_s,
        "embedding_time_s": res.embedding_time_s, "surrogate_time_s": surrogate, "latency_target_s": latency_target_s,
        "objective": "quality" if quality else "latency", "quality_weights": dict(quality or {}), "candidates": cands,
        "method": "integer linear program (scipy HiGHS MILP)", "solves": iterations, "feasible": not reason,
        "reason": reason, "result": res,
    }


def route_queries(model: str | os.PathLike[str] | ModelSpec, devices: Sequence[str], sizes: Sequence[int],
                  weights: Sequence[float] | None = None, *,
                  representations: Mapping[str, str | Mapping[str, str]] | str | None = None, dtype: str = "fp32",
                  streams: int = 1) -> dict[str, Any]:
    """Each query size to the device with the lowest latency for it (MP-Rec's routing).

    ``representations``: one setting for all devices, or per device id.
    """
    if not devices:
        raise InputError("route_queries needs at least one device")
    ws = [1.0] * len(sizes) if weights is None else [float(x) for x in weights]
    if len(ws) != len(sizes) or any(x < 0 for x in ws) or sum(ws) <= 0:
        raise InputError(f"`weights` must be {len(sizes)} non-negative numbers with a positive sum, but got {weights!r}")
    total = sum(ws)
    rows = []
    share: dict[str, float] = {}
    mean = 0.0
    for size, wt in zip(sizes, ws, strict=True):
        lat = {}
        for d in devices:
            dev = resolve_device(d)
            reps = representations.get(dev.id) if isinstance(representations, Mapping) else representations
            lat[dev.id] = run_pipeline(model, dev, size, streams=streams, dtype=dtype, representations=reps,
                                       throughput=False).time_s
        best = min(lat, key=lambda k: (lat[k], k))
        rows.append({"query_size": size, "weight": wt / total, "device": best, "time_s": lat[best], "by_device": lat})
        share[best] = share.get(best, 0.0) + wt / total
        mean += wt / total * lat[best]
    switches = [rows[i]["query_size"] for i in range(1, len(rows)) if rows[i]["device"] != rows[i - 1]["device"]]
    return {"rows": rows, "share": share, "mean_time_s": mean, "switch_sizes": switches}
