"""The Optuna study: batched ask/tell over :func:`perfmodel.predict_batch`, persistent and
distributed storages, constraints for infeasible points, and higher-fidelity re-ranking.

Each process asks a small batch of trials (sampling each right after its ask, so the
constant liar sees the points in flight), evaluates the batch in one ``predict_batch`` call
and tells the results one by one: trials reach the storage as they complete, and a killed
search loses at most the batch in flight. Those trials stay ``RUNNING`` in the storage;
the next search on the same study marks them ``FAIL`` when the process that asked them
(recorded as the trial's ``worker`` attribute, ``host:pid``) is gone.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

import perfmodel
from perfmodel import GPUSpec, InputError, KernelConfig, Workload, check_int
from search._codec import CapLevelCodec, trial_config
from search._evaluate import (
    FIDELITIES,
    Measure,
    evaluate_model,
    l2_bytes_set_aside,
    measure_times,
    parse_objectives,
    replay_times,
    simulate_times,
)
from search._space import SearchSpace, build_space, check_space
from search._storage import StorageSpec, is_dead_local_worker, resolve_storage, worker_tag

if TYPE_CHECKING:
    import optuna

__all__ = [
    "SAMPLERS",
    "RankedConfig",
    "SearchResult",
    "default_study_name",
    "known_good_configs",
    "optimize",
]

SAMPLERS = ("tpe", "random")
#: Trials asked, evaluated in one predict_batch call, and told per round.
DEFAULT_ASK_BATCH = 8
#: Random trials before TPE models the space (Optuna's default is 10).
DEFAULT_STARTUP_TRIALS = 10
_FEASIBILITY_KEY = "runs"


@dataclass(frozen=True, kw_only=True)
class RankedConfig:
    """One configuration of a ranking: its model time, fidelity time and L2 set-aside."""

    config: KernelConfig
    time_s: float
    model_time_s: float
    l2_bytes: float
    trial_number: int

    def to_dict(self) -> dict[str, Any]:
        return {"config": self.config.to_dict(), "time_s": self.time_s, "model_time_s": self.model_time_s,
                "l2_bytes": self.l2_bytes, "trial_number": self.trial_number}


@dataclass(frozen=True, kw_only=True)
class SearchResult:
    """What :func:`optimize` found. ``best_time_s``, ``baseline_time_s`` and ``speedup`` are at
    the search's fidelity; ``top`` ranks distinct feasible configurations (best first)."""

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

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "best_config": self.best_config.to_dict(),
            "best_time_s": self.best_time_s,
            "baseline_config": self.baseline_config.to_dict(),
            "baseline_time_s": self.baseline_time_s,
            "speedup": self.speedup,
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
        if len(self.objectives) > 1:
            out["pareto"] = [r.to_dict() for r in self.pareto]
        return out


# ---- study identity ------------------------------------------------------------------------


def _fingerprint(workload: Workload, gpu: GPUSpec, space: SearchSpace, objectives: Sequence[str]) -> str:
    doc = {
        "workload": dataclasses.asdict(workload),
        "gpu": gpu.to_dict(),
        "space": space.to_dict(),
        "objectives": list(objectives),
        "encoding": CapLevelCodec.name,  # the parameters' meaning (search._codec)
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:12]


def default_study_name(
    workload: Workload, gpu: GPUSpec, space: SearchSpace, objectives: Sequence[str], stem: str | None = None
) -> str:
    """``<workload stem>-<gpu>-<fingerprint>``: the same inputs name the same study."""
    return f"{stem or 'workload'}-{gpu.id}-{'-'.join(objectives)}-{_fingerprint(workload, gpu, space, objectives)}"


def known_good_configs(space: SearchSpace) -> list[KernelConfig]:
    """Starting points enqueued in a new study (projected into ``space``): PyTorch's kernel
    as shipped (the baseline), and the seed paper's combination (register cap 42, prefetch
    two rows ahead into registers, the hottest rows pinned with evict-last prefetches up to
    the persisting limit; FACTS.md section 1)."""
    top_fraction = space.pinned_row_fractions[-1]
    paper = KernelConfig(register_cap=42, prefetch_distance=2, pinned_row_fraction=top_fraction,
                         pin_method="evict-last-prefetch")
    out: list[KernelConfig] = []
    for c in (KernelConfig(), paper):
        p = space.project(c)
        if p not in out:
            out.append(p)
    return out


# ---- sampling and evaluation ---------------------------------------------------------------


def make_sampler(kind: str, seed: int | None, n_objectives: int, n_startup_trials: int = DEFAULT_STARTUP_TRIALS,
                 tpe_options: Mapping[str, Any] | None = None) -> optuna.samplers.BaseSampler:
    """The study's sampler. ``tpe_options`` override the TPE keywords (scripts/sweep_tpe.py)."""
    import optuna

    if kind == "tpe":
        kw: dict[str, Any] = {"seed": seed, "multivariate": True, "n_startup_trials": n_startup_trials,
                              "constant_liar": True, **(tpe_options or {})}
        return optuna.samplers.TPESampler(**kw)
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise InputError(f"unknown sampler {kind!r}; valid choices: {', '.join(SAMPLERS)}")


def _run_trials(
    study: optuna.Study,
    codec: CapLevelCodec,
    workload: Workload,
    gpu: GPUSpec,
    objectives: Sequence[str],
    n_trials: int,
    ask_batch: int,
    sampler: optuna.samplers.BaseSampler,
    enqueue: Sequence[KernelConfig] = (),
    on_told: Callable[[int], None] | None = None,
) -> None:
    """Run ``n_trials`` trials of ``study`` in batches of ``ask_batch``.

    The sampler works on an in-memory mirror of the study: before each batch, the trials
    that other processes completed are copied in from ``study``'s storage; after it, the
    batch's finished trials are written to the storage, one transaction each. Sampling
    then costs what it costs in memory (Optuna's RDB storage reads every trial on each
    ``suggest``), the storage never holds a half-written trial, and a killed process loses
    only the batch in flight.
    """
    import optuna

    tag = worker_tag()
    mirror = optuna.create_study(directions=study.directions, sampler=sampler)
    known: set[int] = set()

    def sync() -> None:
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
            if t._trial_id not in known:
                known.add(t._trial_id)
                if t.user_attrs.get("worker") != tag:  # ours are in the mirror already
                    mirror.add_trial(t)

    sync()
    for c in enqueue:
        mirror.enqueue_trial(codec.params_from_config(c))
    done = 0
    while done < n_trials:
        k = min(ask_batch, n_trials - done)
        trials = []
        configs = []
        for _ in range(k):  # sample each right after its ask: the constant liar sees the batch so far
            trials.append(mirror.ask())
            configs.append(codec.suggest(trials[-1]))
        ev = evaluate_model(workload, gpu, configs)
        for i, t in enumerate(trials):
            reason = ev.infeasible[i]
            t.set_user_attr("worker", tag)
            t.set_constraint(_FEASIBILITY_KEY, 0.0 if not reason else 1.0)
            if reason:
                t.set_user_attr("infeasible", reason)
            values = [float(ev.time_s[i])]
            if len(objectives) > 1:
                values.append(float(ev.l2_bytes[i]))
            frozen = mirror.tell(t, values)
            study.add_trial(frozen)
        done += k
        if on_told is not None:
            on_told(k)
        if done < n_trials:
            sync()


@dataclass(frozen=True, kw_only=True)
class _WorkerJob:
    storage: StorageSpec
    study_name: str
    workload: Workload
    gpu: GPUSpec
    space: SearchSpace
    objectives: tuple[str, ...]
    n_trials: int
    sampler: str
    seed: int | None
    n_startup_trials: int
    ask_batch: int
    enqueue: tuple[KernelConfig, ...] = ()


def _worker_main(job: _WorkerJob) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=job.study_name, storage=job.storage.open())
    sampler = make_sampler(job.sampler, job.seed, len(job.objectives), job.n_startup_trials)
    codec = CapLevelCodec.for_workload(job.space, job.gpu, job.workload)
    _run_trials(study, codec, job.workload, job.gpu, job.objectives, job.n_trials, job.ask_batch, sampler,
                job.enqueue)


#: A RUNNING trial with no ``worker`` attribute this old is an orphan: a live process sets
#: the attribute right after asking, within milliseconds.
ORPHAN_AGE_S = 10.0


def _fail_orphans(study: optuna.Study) -> int:
    """Mark FAIL the RUNNING trials of dead processes (a killed search's batch in flight):
    those whose ``worker`` is a process of this host that is gone, and those with no
    ``worker`` (killed between ask and tag) older than :data:`ORPHAN_AGE_S`."""
    import datetime

    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    n = 0
    now = datetime.datetime.now()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        tag = t.user_attrs.get("worker")
        if isinstance(tag, str):
            orphan = is_dead_local_worker(tag)
        else:
            start = t.datetime_start
            orphan = start is not None and (now - start).total_seconds() > ORPHAN_AGE_S
        if orphan:
            try:
                study.tell(t.number, state=TrialState.FAIL)
                n += 1
            except (UpdateFinishedTrialError, ValueError):  # finished meanwhile by its process
                pass
    return n


# ---- ranking -----------------------------------------------------------------------------------


def _completed(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    from optuna.trial import TrialState

    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def _is_feasible(t: optuna.trial.FrozenTrial) -> bool:
    return all(v <= 0.0 for v in t.constraints.values()) and t.values is not None and math.isfinite(t.values[0])


def ranked_trials(study: optuna.Study, space: SearchSpace, workload: Workload) -> list[RankedConfig]:
    """Distinct feasible configurations of the study's completed trials, fastest first
    (ties: less L2 set aside, then the earlier trial)."""
    best: dict[KernelConfig, RankedConfig] = {}
    for t in _completed(study):
        if not _is_feasible(t):
            continue
        cfg = trial_config(space, t)
        time_s = float(t.values[0])
        l2 = float(l2_bytes_set_aside(workload, [cfg])[0])
        prev = best.get(cfg)
        if prev is None or time_s < prev.time_s:
            best[cfg] = RankedConfig(config=cfg, time_s=time_s, model_time_s=time_s, l2_bytes=l2, trial_number=t.number)
    return sorted(best.values(), key=lambda r: (r.time_s, r.l2_bytes, r.trial_number))


def pareto_front(ranked: Sequence[RankedConfig]) -> list[RankedConfig]:
    """Points no other point beats on both time and L2 bytes, fastest first."""
    front: list[RankedConfig] = []
    lowest_l2 = math.inf
    for r in sorted(ranked, key=lambda r: (r.time_s, r.l2_bytes, r.trial_number)):
        if r.l2_bytes < lowest_l2:
            front.append(r)
            lowest_l2 = r.l2_bytes
    return front


# ---- the entry point ------------------------------------------------------------------------


def _as_workload(workload: Workload | str | os.PathLike[str]) -> tuple[Workload, str | None]:
    if isinstance(workload, Workload):
        return workload, None
    return perfmodel.load_workload(workload), Path(workload).stem


def _as_gpu(gpu: GPUSpec | str) -> GPUSpec:
    return gpu if isinstance(gpu, GPUSpec) else perfmodel.get_gpu(gpu)


def optimize(
    workload: Workload | str | os.PathLike[str],
    gpu: GPUSpec | str,
    n_trials: int = 100,
    seed: int | None = 0,
    storage: str | os.PathLike[str] | None = None,
    fidelity: str = "model",
    *,
    study_name: str | None = None,
    objectives: str | Sequence[str] = ("time",),
    space: SearchSpace | None = None,
    allow_no_bounds_check: bool = False,
    sampler: str = "tpe",
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
    """Search kernel configurations for ``workload`` on ``gpu`` with an Optuna study.

    Runs ``n_trials`` more trials (``n_trials_completed`` counts the whole study, earlier
    runs included). ``storage``: None (an SQLite file under ``out_dir/studies``), an Optuna
    storage URL, ``":memory:"``, or a file path (SQLite for ``.db``, else a journal file).
    ``workers`` local processes share the study (a journal file, SQLite file or server
    storage). ``fidelity``: ``model`` ranks by :func:`perfmodel.predict_batch`; ``sim``
    re-ranks the ``top_k`` with :func:`perfmodel.simulate`; ``gpu`` with measured times,
    replayed from ``measurements`` (measurement JSON lines, docs/formats.md) or measured live
    by ``measure(workload, configs, gpu) -> times`` (``validation.measure_configs`` is one;
    ``recperf search --fidelity gpu`` passes it).
    With objectives ``time,l2-bytes`` the result's ``pareto`` lists the front and
    ``best_config`` is its fastest point. The default study name is
    ``<workload_name or file stem>-<gpu>-<objectives>-<fingerprint of the inputs>``.
    """
    import optuna

    t0 = time.perf_counter()
    wl, stem = _as_workload(workload)
    g = _as_gpu(gpu)
    objs = parse_objectives(objectives)
    if fidelity not in FIDELITIES:
        raise InputError(f"unknown fidelity {fidelity!r}; valid choices: {', '.join(FIDELITIES)}")
    check_int(n_trials, "n_trials", min_val=0)
    check_int(workers, "workers", min_val=1)
    check_int(ask_batch, "ask_batch", min_val=1)
    check_int(top_k, "top_k", min_val=1)
    check_int(n_startup_trials, "n_startup_trials", min_val=0)
    if seed is not None:
        check_int(seed, "seed", min_val=0)
    if sampler not in SAMPLERS:
        raise InputError(f"unknown sampler {sampler!r}; valid choices: {', '.join(SAMPLERS)}")
    sp = space if space is not None else build_space(wl, g, allow_no_bounds_check=allow_no_bounds_check)
    check_space(sp, wl, g)
    name = study_name or default_study_name(wl, g, sp, objs, workload_name or stem)
    spec = resolve_storage(storage, name, out_dir)
    if workers > 1 and not spec.shareable:
        raise InputError(f"`--workers {workers}` needs a storage several processes can share, but got {spec.url!r}")

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    opened = spec.open()
    study = optuna.create_study(
        storage=opened, study_name=name, directions=["minimize"] * len(objs),
        sampler=make_sampler(sampler, seed, len(objs), n_startup_trials), load_if_exists=True,
    )
    _check_study_matches(study, wl, g, sp, objs)
    _fail_orphans(study)
    # a new study starts from the known-good points (the first worker runs them)
    seeds = tuple(known_good_configs(sp)) if enqueue_known_good and not study.get_trials(deepcopy=False) else ()

    bar = _progress_bar(n_trials, progress)
    try:
        if workers == 1:
            _run_trials(study, CapLevelCodec.for_workload(sp, g, wl), wl, g, objs, n_trials, ask_batch,
                        make_sampler(sampler, seed, len(objs), n_startup_trials), seeds, bar.update if bar else None)
        else:
            _run_workers(spec, name, wl, g, sp, objs, n_trials, sampler, seed, n_startup_trials, ask_batch, workers,
                         study, bar, seeds)
    finally:
        if bar is not None:
            bar.close()

    completed = _completed(study)
    n_infeasible = sum(1 for t in completed if not _is_feasible(t))
    ranked = ranked_trials(study, sp, wl)
    if not ranked:
        raise InputError(
            f"no feasible configuration in study {name!r} yet ({len(completed)} completed trials): run more trials"
        )
    baseline = KernelConfig()
    base_model = evaluate_model(wl, g, [baseline])
    baseline_time = float(base_model.time_s[0])
    pareto = pareto_front(ranked) if len(objs) > 1 else []
    top = ranked[:top_k]
    if fidelity != "model":
        candidates = list(dict.fromkeys([r.config for r in top] + [r.config for r in pareto[:top_k]]))
        top, baseline_time, pareto = _rerank(fidelity, wl, g, candidates, ranked, pareto, measurements, top_k,
                                             measure)
    if not top:
        raise InputError(f"fidelity {fidelity!r} gave no time for any of the top {top_k} configurations")
    best = pareto[0] if pareto else top[0]
    return SearchResult(
        best_config=best.config,
        best_time_s=best.time_s,
        baseline_config=baseline,
        baseline_time_s=baseline_time,
        speedup=baseline_time / best.time_s if best.time_s > 0 else math.nan,
        n_trials_completed=len(completed),
        n_trials_run=n_trials,
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
    )


def _check_study_matches(study: optuna.Study, wl: Workload, g: GPUSpec, sp: SearchSpace, objs: Sequence[str]) -> None:
    fp = _fingerprint(wl, g, sp, objs)
    attrs = study.user_attrs
    if "recperf_fingerprint" not in attrs:
        study.set_user_attr("recperf_fingerprint", fp)
        study.set_user_attr("gpu", g.id)
        study.set_user_attr("objectives", list(objs))
        study.set_user_attr("space", sp.to_dict())
        return
    if attrs["recperf_fingerprint"] != fp:
        raise InputError(
            f"study {study.study_name!r} was created for another workload, GPU, search space or objectives "
            f"(gpu {attrs.get('gpu')!r}, objectives {attrs.get('objectives')!r}); it must match to continue it, "
            f"so choose another --study-name"
        )


def _progress_bar(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc="trials", unit="trial", file=sys.stderr, dynamic_ncols=True)


def _run_workers(
    spec: StorageSpec, name: str, wl: Workload, g: GPUSpec, sp: SearchSpace, objs: tuple[str, ...], n_trials: int,
    sampler: str, seed: int | None, n_startup_trials: int, ask_batch: int, workers: int, study: optuna.Study,
    bar: Any, seeds: tuple[KernelConfig, ...],
) -> None:
    from optuna.trial import TrialState

    ctx = multiprocessing.get_context("spawn")
    shares = [n_trials // workers + (1 if i < n_trials % workers else 0) for i in range(workers)]
    procs = []
    for i, share in enumerate(shares):
        if share == 0:
            continue
        job = _WorkerJob(storage=spec, study_name=name, workload=wl, gpu=g, space=sp, objectives=objs, n_trials=share,
                         sampler=sampler, seed=None if seed is None else seed + i, n_startup_trials=n_startup_trials,
                         ask_batch=ask_batch, enqueue=seeds if i == 0 else ())
        p = ctx.Process(target=_worker_main, args=(job,), name=f"recperf-search-worker-{i}")
        p.start()
        procs.append(p)
    start = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    shown = 0
    try:
        while any(p.is_alive() for p in procs):
            time.sleep(0.5)
            if bar is not None:
                now = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))) - start
                bar.update(max(0, min(n_trials, now) - shown))
                shown = max(shown, min(n_trials, now))
    finally:
        for p in procs:
            p.join()
    bad = [p.exitcode for p in procs if p.exitcode != 0]
    if bad:
        raise RuntimeError(f"{len(bad)} of {len(procs)} search workers failed (exit codes {bad})")
    if bar is not None:
        bar.update(n_trials - shown)


def _rerank(
    fidelity: str, wl: Workload, g: GPUSpec, candidates: list[KernelConfig], ranked: list[RankedConfig],
    pareto: list[RankedConfig], measurements: str | os.PathLike[str] | None, top_k: int, measure: Measure | None,
) -> tuple[list[RankedConfig], float, list[RankedConfig]]:
    baseline = KernelConfig()
    configs = [*candidates, baseline]
    times: list[float | None]
    if fidelity == "sim":
        times = list(simulate_times(wl, g, configs))
    elif measurements is not None:
        times = replay_times(measurements, g, configs)
    else:
        times = list(measure_times(wl, g, configs, measure))
    base_t = times[-1]
    if base_t is None or not math.isfinite(base_t):
        raise InputError(
            f"fidelity {fidelity!r} has no time for the baseline configuration {baseline.to_dict()} "
            f"on gpu {g.id!r}: it is needed for the speedup"
        )
    by_cfg = {r.config: r for r in ranked}
    new = []
    for c, t in zip(candidates, times[:-1], strict=True):
        if t is None or not math.isfinite(t):
            continue
        r = by_cfg[c]
        new.append(dataclasses.replace(r, time_s=float(t)))
    new.sort(key=lambda r: (r.time_s, r.l2_bytes, r.trial_number))
    front = pareto_front(new) if pareto else []
    return new[:top_k], float(base_t), front


def feasible_mask(trials: Sequence[optuna.trial.FrozenTrial]) -> np.ndarray[Any, Any]:
    return np.array([_is_feasible(t) for t in trials], dtype=bool)
