"""``search.optimize``: the best kernel configuration for a workload on a GPU, in an Optuna study.

At model fidelity the answer is exact when it can be: ``sampler="auto"`` walks the whole
grid (:mod:`search._grid`, dominated register caps left out) when the time it would take,
estimated from the rate ``predict_batch`` achieves on the first chunks, fits ``budget_s``;
otherwise it runs TPE. The grid's best configurations (the top k, the Pareto front with two
objectives) and the baseline are written into the study as completed trials, with the grid
size as a study attribute, so reports, ``optuna-dashboard`` and continuation see them like
any trial. At ``sim`` or ``gpu`` fidelity the model's ranking then seeds an expensive study
(:mod:`search._multifidelity`) that spends ``budget_evals`` evaluations.
"""

from __future__ import annotations

import functools
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from perfmodel import GPUSpec, InputError, KernelConfig, Workload, check_float, check_int
from search._codec import CapLevelCodec, trial_config
from search._coerce import as_gpu, as_workload
from search._evaluate import (
    FIDELITIES,
    Measure,
    evaluate_model,
    l2_bytes_set_aside,
    measure_times,
    parse_objectives,
    read_measurements,
    replay_times,
    simulate_times,
)
from search._grid import GridColumn, GridOutcome, GridOverBudget, GridProgress, walk_grid
from search._multifidelity import FidelityResult, evaluation_of, run_fidelity_study
from search._ranking import RankedConfig, completed_trials, is_feasible, pareto_front, ranked_trials
from search._samplers import DEFAULT_STARTUP_TRIALS, check_sampler, make_sampler, sampler_method
from search._space import SearchSpace, build_space, check_space
from search._storage import StorageSpec, resolve_storage
from search._study import check_study_matches, default_study_name, known_good_configs, open_study
from search._trials import DEFAULT_ASK_BATCH, add_config_trials, fail_orphans, run_trials, run_workers

if TYPE_CHECKING:
    import optuna

__all__ = ["DEFAULT_BUDGET_EVALS", "DEFAULT_BUDGET_S", "SearchResult", "optimize"]

#: seconds ``sampler="auto"`` may spend on the grid (the estimate from the measured rate)
DEFAULT_BUDGET_S = 60.0
#: expensive evaluations (simulator runs, GPU timings) a ``sim`` or ``gpu`` search spends
DEFAULT_BUDGET_EVALS = 30
#: the study attribute that records a finished grid walk
GRID_ATTR = "grid_walk"
#: user attribute of trials written from the grid
SOURCE_ATTR = "source"


@dataclass(frozen=True, kw_only=True)
class SearchResult:
    """What :func:`optimize` found.

    ``best_time_s``, ``baseline_time_s`` and ``speedup`` are at the search's fidelity;
    ``top`` ranks distinct feasible configurations (best first). ``method`` says how the
    model-fidelity answer was found (``exhaustive``, ``tpe``, ``random``, or a sampler's
    class name) and ``method_reason`` why; ``fidelity_study`` holds the expensive
    evaluations at ``sim`` or ``gpu`` fidelity.
    """

    best_config: KernelConfig
    best_time_s: float
    baseline_config: KernelConfig
    baseline_time_s: float
    speedup: float
    n_trials_completed: int
    n_trials_run: int
    n_infeasible: int
    study_name: str
    storage: str
    objectives: tuple[str, ...]
    fidelity: str
    gpu_id: str
    top: tuple[RankedConfig, ...]
    #: the Pareto front (time, L2 bytes), fastest first; empty with one objective
    pareto: tuple[RankedConfig, ...]
    space: SearchSpace
    study: optuna.Study = field(repr=False, compare=False)
    elapsed_s: float = 0.0
    method: str = "tpe"
    method_reason: str = ""
    #: the grid's size and what the walk predicted (``method == "exhaustive"``), else empty
    grid: dict[str, Any] = field(default_factory=dict)
    fidelity_study: FidelityResult | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "best_config": self.best_config.to_dict(),
            "best_time_s": self.best_time_s,
            "baseline_config": self.baseline_config.to_dict(),
            "baseline_time_s": self.baseline_time_s,
            "speedup": self.speedup,
            "method": self.method,
            "method_reason": self.method_reason,
            "n_trials_completed": self.n_trials_completed,
            "n_trials_run": self.n_trials_run,
            "n_infeasible": self.n_infeasible,
            "study_name": self.study_name,
            "storage": self.storage,
            "objectives": list(self.objectives),
            "fidelity": self.fidelity,
            "gpu": self.gpu_id,
            "top": [r.to_dict() for r in self.top],
            "elapsed_s": self.elapsed_s,
        }
        if self.grid:
            out["grid"] = dict(self.grid)
        if len(self.objectives) > 1:
            out["pareto"] = [r.to_dict() for r in self.pareto]
        if self.fidelity_study is not None:
            out["fidelity_study"] = self.fidelity_study.to_dict()
        return out


class _GridBudget:
    """A walk's ``check``: stop when the walk's estimated time (configurations to predict /
    measured rate) exceeds ``budget_s``. The model's set-up (its first call per table) is
    paid whichever way the search goes, so it is not counted.

    The walk knows how many configurations it will predict (pruning is decided before it
    starts). The first chunk also pays the model's per-build set-up
    (registers, loop instructions of every compiled kernel it meets for the first time), so
    its rate is low: after it, the walk stops only if the estimate is over twice the budget;
    from the second chunk on, as soon as it is over the budget.
    """

    def __init__(self, budget_s: float) -> None:
        self.budget_s = budget_s
        self.rate = math.nan
        self.estimate_s = math.nan

    def __call__(self, p: GridProgress) -> None:
        self.rate = p.evaluated / max(p.elapsed_s, 1e-9)
        self.estimate_s = p.elapsed_s + (p.planned - p.evaluated) / self.rate
        if self.estimate_s > self.budget_s * (2.0 if p.chunks < 2 else 1.0):
            raise GridOverBudget(f"about {self.estimate_s:.0f} s ({p.planned:,} predictions at {self.rate:,.0f}/s)")


def _grid_trials(outcome: GridOutcome, baseline: KernelConfig, baseline_time: float, top_k: int,
                 n_objectives: int, workload: Workload,
                 space: SearchSpace) -> list[tuple[KernelConfig, list[float], dict[str, Any]]]:
    """The walk's top k, its Pareto front (two objectives) and the baseline (when the space
    holds it) as trials to write."""
    items: dict[KernelConfig, tuple[list[float], dict[str, Any]]] = {}
    entries = [(r, f"top {i}") for i, r in enumerate(outcome.top[:top_k], 1)]
    if n_objectives > 1:
        entries += [(r, "pareto") for r in outcome.fastest_by_l2]
    for r, role in entries:
        if r.config not in items:
            vals = [r.time_s, r.l2_bytes][:n_objectives]
            items[r.config] = (vals, {SOURCE_ATTR: "grid", "grid_role": role, "grid_index": r.index})
    if baseline not in items and space.contains(baseline):
        vals = [baseline_time, float(l2_bytes_set_aside(workload, [baseline])[0])][:n_objectives]
        items[baseline] = (vals, {SOURCE_ATTR: "grid", "grid_role": "baseline"})
    return [(c, v, a) for c, (v, a) in items.items()]


def optimize(
    workload: Workload | str | os.PathLike[str],
    gpu: GPUSpec | str,
    *,
    n_trials: int = 100,
    seed: int | None = 0,
    storage: str | os.PathLike[str] | None = None,
    fidelity: str = "model",
    study_name: str | None = None,
    objectives: str | Sequence[str] = ("time",),
    space: SearchSpace | None = None,
    allow_no_bounds_check: bool = False,
    sampler: str | optuna.samplers.BaseSampler = "auto",
    budget_s: float = DEFAULT_BUDGET_S,
    budget_evals: int = DEFAULT_BUDGET_EVALS,
    n_startup_trials: int = DEFAULT_STARTUP_TRIALS,
    enqueue_known_good: bool = True,
    top_k: int = 10,
    workers: int = 1,
    ask_batch: int = DEFAULT_ASK_BATCH,
    out_dir: str | os.PathLike[str] = "out",
    measurements: str | os.PathLike[str] | None = None,
    progress: bool = False,
    workload_name: str | None = None,
    measure: Measure | None = None,
) -> SearchResult:
    """Search kernel configurations for ``workload`` on ``gpu`` in an Optuna study.

    Args:
        workload: a :class:`perfmodel.Workload` or a workload TOML file.
        gpu: a :class:`perfmodel.GPUSpec` or a GPU id.
        n_trials: trials to run now with a sampler (``tpe``, ``random``, an Optuna sampler,
            or ``auto`` when the grid does not fit); the study's earlier trials stay and count
            in ``n_trials_completed``. Not used when the grid is walked.
        seed: the sampler's seed (worker ``i`` uses ``seed + i``); None: not reproducible.
        storage: None (an SQLite file under ``out_dir/studies``), an Optuna storage URL,
            ``":memory:"``, or a file path (SQLite for ``.db``, else a journal file).
        fidelity: ``model`` (:func:`perfmodel.predict_batch`), ``sim`` (then
            :func:`perfmodel.simulate` on ``budget_evals`` configurations the model ranks)
            or ``gpu`` (measured on this machine's GPU, or replayed from ``measurements``).
        study_name: the study's name (default
            ``<workload_name or file stem>-<gpu>-<objectives>-<fingerprint of the inputs>``).
        objectives: ``"time"`` or ``"time,l2-bytes"`` (then ``pareto`` lists the front and
            ``best_config`` is its fastest point).
        space: the search space (default :func:`search.build_space` of the workload and GPU).
        allow_no_bounds_check: with the default space, also search ``bounds_check = "none"``.
        sampler: ``"auto"`` (the grid when its estimated time fits ``budget_s``, else TPE),
            ``"grid"`` (the grid whatever it costs), ``"tpe"``, ``"random"``, or an
            ``optuna.samplers.BaseSampler`` (one process only; ``seed`` is then its own).
        budget_s: seconds ``"auto"`` may spend walking the grid (its estimated time: the
            configurations to predict over the rate measured on the first chunks; the model's
            set-up, paid whichever way, is not counted).
        budget_evals: expensive evaluations a ``sim`` or ``gpu`` search spends now.
        n_startup_trials: TPE's random trials before it models the space.
        enqueue_known_good: start a new study from PyTorch's kernel and the seed paper's
            combination (:func:`search.known_good_configs`).
        top_k: how many configurations ``top`` lists (and the grid writes as trials).
        workers: local processes sharing the study for sampled trials (needs a shareable
            storage: a journal file, SQLite file or server).
        ask_batch: trials asked and predicted per batch.
        out_dir: where the default storage lives (``out_dir/studies``).
        measurements: with ``fidelity="gpu"``, a JSON-lines file of measured runs to replay
            (docs/formats.md) instead of a live GPU.
        progress: tqdm progress bars on stderr.
        workload_name: the stem of the default study name when ``workload`` is an object.
        measure: with ``fidelity="gpu"`` and no ``measurements``, the function that measures
            configurations on this machine's GPU (``measure(workload, configs, gpu) -> times``;
            ``validation.measure_configs`` is one, and ``recperf search --fidelity gpu``
            passes it: search does not import validation).

    Returns:
        The best configuration against PyTorch's kernel as shipped, the top, the study, and
        how the answer was found.
    """
    t0 = time.perf_counter()
    wl, stem = as_workload(workload)
    g = as_gpu(gpu)
    objs = parse_objectives(objectives)
    if fidelity not in FIDELITIES:
        raise InputError(f"unknown fidelity {fidelity!r}; valid choices: {', '.join(FIDELITIES)}")
    check_int(n_trials, "n_trials", min_val=0)
    check_int(workers, "workers", min_val=1)
    check_int(ask_batch, "ask_batch", min_val=1)
    check_int(top_k, "top_k", min_val=1)
    check_int(n_startup_trials, "n_startup_trials", min_val=0)
    check_int(budget_evals, "budget_evals", min_val=1)
    if seed is not None:  # worker i samples with seed + i; Optuna's samplers take seeds below 2**32
        check_int(seed, "seed", min_val=0, max_val=2**32 - workers)
    check_float(budget_s, "budget_s", min_val=0.0, min_open=True)
    chosen = check_sampler(sampler)
    if not isinstance(chosen, str) and workers > 1:
        raise InputError(f"an Optuna sampler object runs in one process, but got workers={workers}; give a sampler "
                         "name to use several workers")
    sp = space if space is not None else build_space(wl, g, allow_no_bounds_check=allow_no_bounds_check)
    check_space(sp, wl, g)
    name = study_name or default_study_name(wl, g, sp, objs, workload_name or stem)
    spec = resolve_storage(storage, name, out_dir)
    if workers > 1 and not spec.shareable:
        raise InputError(f"`--workers {workers}` needs a storage several processes can share, but got {spec.url!r}")
    study = open_study(spec, name, len(objs))
    check_study_matches(study, wl, g, sp, objs)
    fail_orphans(study)
    codec = CapLevelCodec.for_workload(sp, g, wl)
    baseline = KernelConfig()
    baseline_model = float(evaluate_model(wl, g, [baseline]).time_s[0])  # pays the model's set-up

    # ---- the model fidelity: the grid, or a sampler -------------------------------------
    grid: dict[str, Any] = {}
    n_run = 0
    warm: list[KernelConfig] = []
    if chosen in ("auto", "grid"):
        method, reason, grid, n_run, warm = _grid_stage(study, codec, wl, g, sp, objs, top_k,
                                                        budget_s if chosen == "auto" else None, progress,
                                                        baseline_model)
    else:
        method = sampler_method(chosen) if not isinstance(chosen, str) else chosen
        reason = f"sampler {method!r} asked for: {n_trials} trials sampled (not exact)"
    if method != "exhaustive":
        run_with = "tpe" if isinstance(chosen, str) and chosen in ("auto", "grid") else chosen
        _run_sampled(study, spec, name, wl, g, sp, codec, objs, n_trials, run_with, seed, n_startup_trials,
                     ask_batch, workers, progress, enqueue_known_good, warm)
        n_run = n_trials

    completed = completed_trials(study)
    n_infeasible = sum(1 for t in completed if not is_feasible(t))
    ranked = ranked_trials(study, sp, wl)
    if not ranked:
        raise InputError(
            f"no feasible configuration in study {name!r} yet ({len(completed)} completed trials): run more trials"
        )
    pareto = pareto_front(ranked) if len(objs) > 1 else []
    top = ranked[:top_k]
    baseline_time = baseline_model
    fid_result = None
    if fidelity != "model":
        top, baseline_time, pareto, fid_result = _expensive(
            fidelity, spec, name, wl, g, sp, objs, ranked, budget_evals, measurements, measure, seed, top_k, progress)
    best = pareto[0] if pareto else top[0]
    return SearchResult(
        best_config=best.config,
        best_time_s=best.time_s,
        baseline_config=baseline,
        baseline_time_s=baseline_time,
        speedup=baseline_time / best.time_s if best.time_s > 0 else math.nan,
        n_trials_completed=len(completed),
        n_trials_run=n_run,
        n_infeasible=n_infeasible,
        study_name=name,
        storage=spec.describe(),
        objectives=objs,
        fidelity=fidelity,
        gpu_id=g.id,
        top=tuple(top),
        pareto=tuple(pareto),
        space=sp,
        study=study,
        elapsed_s=time.perf_counter() - t0,
        method=method,
        method_reason=reason,
        grid=grid,
        fidelity_study=fid_result,
    )


def _grid_stage(
    study: optuna.Study, codec: CapLevelCodec, wl: Workload, g: GPUSpec, sp: SearchSpace, objs: tuple[str, ...],
    top_k: int, budget_s: float | None, progress: bool, baseline_time: float,
) -> tuple[str, str, dict[str, Any], int, list[KernelConfig]]:
    """The grid walk into ``study`` (or the walk on record): method, reason, grid attributes,
    trials written, and, when the walk ran over ``budget_s``, the best it predicted (TPE's start)."""
    recorded = study.user_attrs.get(GRID_ATTR)
    if isinstance(recorded, dict) and recorded.get("top_k", 0) >= top_k:
        return "exhaustive", (f"the study holds the grid walk of an earlier run ({recorded.get('grid_size', 0):,} "
                              f"configurations, {recorded.get('n_evaluated', 0):,} predicted): the exact optimum of "
                              "the model, nothing left to evaluate"), dict(recorded), 0, []
    outcome, reason = _walk(wl, g, sp, top_k, budget_s, progress)
    if outcome.extra.get("stopped") is not None:
        return "tpe", reason, {}, 0, [r.config for r in outcome.top[:5]]
    baseline = KernelConfig()
    items = _grid_trials(outcome, baseline, baseline_time, top_k, len(objs), wl, sp)
    present = {trial_config(sp, t) for t in completed_trials(study) if t.user_attrs.get(SOURCE_ATTR) == "grid"}
    new = [it for it in items if it[0] not in present]
    add_config_trials(study, codec, new)
    grid = {"grid_size": outcome.grid_size, "n_evaluated": outcome.n_evaluated, "n_infeasible": outcome.n_infeasible,
            "pruned": outcome.pruned, "walk_s": round(outcome.elapsed_s, 3), "top_k": top_k}
    study.set_user_attr(GRID_ATTR, grid)
    study.set_user_attr("grid_size", outcome.grid_size)
    return "exhaustive", reason, grid, len(new), []


def _walk(wl: Workload, g: GPUSpec, sp: SearchSpace, top_k: int, budget_s: float | None,
          progress: bool) -> tuple[GridOutcome, str]:
    """Walk the grid (pruned), within ``budget_s`` when given; the outcome and the reason text."""
    size = sp.grid_size
    check = _GridBudget(budget_s) if budget_s is not None else None
    outcome = walk_grid(sp, g, [GridColumn(workload=wl)], prune=True, top_k=max(top_k, 5), progress=progress,
                        check=check)
    pruned = (f" ({outcome.n_evaluated:,} predicted after leaving out dominated register caps)"
              if outcome.pruned else "")
    if outcome.extra.get("stopped") is not None:
        assert check is not None
        return outcome, (f"walking the grid of {size:,} configurations would take {outcome.extra['stopped']}, over "
                         f"the --budget-s {budget_s:g} s budget: TPE sampled instead (not exact), starting from the "
                         f"best of the {outcome.n_evaluated:,} configurations predicted before stopping")
    rate = outcome.n_evaluated / max(outcome.elapsed_s, 1e-9)
    why = f"within the --budget-s {budget_s:g} s budget" if budget_s is not None else "as asked (--sampler grid)"
    return outcome, (f"walked the whole grid, {why}: {size:,} configurations{pruned} in {outcome.elapsed_s:.1f} s "
                     f"({rate:,.0f}/s); the exact optimum of the model")


def _run_sampled(study: optuna.Study, spec: StorageSpec, name: str, wl: Workload, g: GPUSpec, sp: SearchSpace,
                 codec: CapLevelCodec, objs: tuple[str, ...], n_trials: int, sampler: str | optuna.samplers.BaseSampler,
                 seed: int | None, n_startup_trials: int, ask_batch: int, workers: int, progress: bool,
                 enqueue_known_good: bool, warm: Sequence[KernelConfig]) -> None:
    """Run ``n_trials`` sampled trials (one process or ``workers``); a new study starts from
    the known-good points and ``warm``."""
    seeds: tuple[KernelConfig, ...] = ()
    if not study.get_trials(deepcopy=False):
        start = (known_good_configs(sp) if enqueue_known_good else []) + list(warm)
        seeds = tuple(dict.fromkeys(start))
    elif warm:
        seeds = tuple(warm)
    bar = _progress_bar(n_trials, progress)
    try:
        if workers == 1:
            smp = sampler if not isinstance(sampler, str) else make_sampler(sampler, seed,
                                                                          n_startup_trials=n_startup_trials)
            run_trials(study, codec, functools.partial(evaluate_model, wl, g), len(objs), n_trials, ask_batch, smp,
                       seeds, bar.update if bar else None)
        else:
            assert isinstance(sampler, str)
            run_workers(spec, name, wl, g, sp, len(objs), n_trials, sampler, seed, n_startup_trials, ask_batch,
                        workers, study, bar, seeds)
    finally:
        if bar is not None:
            bar.close()


def _progress_bar(total: int, enabled: bool, desc: str = "trials") -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="trial", file=sys.stderr, dynamic_ncols=True)


def _expensive(
    fidelity: str, spec: StorageSpec, name: str, wl: Workload, g: GPUSpec, sp: SearchSpace,
    objs: tuple[str, ...], ranked: list[RankedConfig], budget_evals: int,
    measurements: str | os.PathLike[str] | None, measure: Measure | None, seed: int | None, top_k: int,
    progress: bool,
) -> tuple[list[RankedConfig], float, list[RankedConfig], FidelityResult]:
    """Spend ``budget_evals`` evaluations at ``fidelity`` on the model's ranking (:mod:`search._multifidelity`)."""
    baseline = KernelConfig()
    missing = "no time at this fidelity (rejected, or no recorded measurement)"

    def times_of(configs: list[KernelConfig]) -> list[float | None]:
        if fidelity == "sim":
            return list(simulate_times(wl, g, configs))
        if measurements is not None:
            return replay_times(measurements, g, wl, configs)
        return list(measure_times(wl, g, configs, measure))

    def evaluate(configs: list[KernelConfig]) -> Any:
        return evaluation_of(times_of(configs), l2_bytes_set_aside(wl, configs), missing)

    def model_times(configs: list[KernelConfig]) -> npt.NDArray[np.float64]:
        return evaluate_model(wl, g, configs).time_s

    allowed = None
    if fidelity == "gpu" and measurements is not None:  # only what was measured can be replayed
        recorded = read_measurements(measurements, g, wl)
        allowed = {sp.canonical(c) for c in recorded if sp.contains(c)}
        if not allowed:
            raise InputError(f"fidelity 'gpu' replays {os.fspath(measurements)!r}, but none of its {len(recorded)} "
                             "configurations is in the search space")
    study = open_study(spec, f"{name}-{fidelity}", len(objs))
    check_study_matches(study, wl, g, sp, objs)
    study.set_user_attr("fidelity", fidelity)
    study.set_user_attr("model_study", name)
    fail_orphans(study)
    base = study.user_attrs.get("baseline_time_s")
    if not isinstance(base, (int, float)) or not math.isfinite(base):
        got = times_of([baseline])[0]
        if got is None or not math.isfinite(got):
            raise InputError(
                f"fidelity {fidelity!r} has no time for the baseline configuration {baseline.to_dict()} "
                f"on gpu {g.id!r}: it is needed for the speedup"
            )
        base = float(got)
        study.set_user_attr("baseline_time_s", base)
    bar = _progress_bar(budget_evals, progress, desc=f"{fidelity} evaluations")
    try:
        result = run_fidelity_study(study, sp, fidelity, evaluate, model_times, budget_evals=budget_evals,
                                    warm_start=[r.config for r in ranked], n_objectives=len(objs),
                                    allowed=allowed, seed=seed, on_told=bar.update if bar else None)
    finally:
        if bar is not None:
            bar.close()
    pts = [p for p in result.points if math.isfinite(p.time_s)]
    if not pts:
        raise InputError(f"fidelity {fidelity!r} gave no time for any of the {len(result.points)} configurations "
                         "it evaluated")
    new = sorted((RankedConfig(config=p.config, time_s=p.time_s, model_time_s=p.model_time_s,
                               l2_bytes=float(l2_bytes_set_aside(wl, [p.config])[0]), trial_number=p.trial_number)
                  for p in pts), key=lambda r: (r.time_s, r.l2_bytes, r.trial_number))
    front = pareto_front(new) if len(objs) > 1 else []
    return new[:top_k], float(base), front, result
