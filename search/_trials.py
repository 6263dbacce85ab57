"""The trial loop: batched ask/tell against any evaluator, local worker processes sharing one
study, trials left RUNNING by killed processes, and configurations written as finished trials.

Each process asks a small batch of trials (sampling each right after its ask, so the
constant liar sees the points in flight), evaluates the batch in one call and tells the
results one by one: trials reach the storage as they complete, and a killed search loses at
most the batch in flight. Those trials stay ``RUNNING`` in the storage; the next search on
the same study marks them ``FAIL`` when the process that asked them (recorded as the trial's
``worker`` attribute, ``host:pid``) is gone.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import multiprocessing
import signal
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from perfmodel import GPUSpec, KernelConfig, Workload
from search._codec import CONFIG_ATTR, CapLevelCodec
from search._evaluate import Evaluation, evaluate_model
from search._samplers import make_sampler
from search._space import SearchSpace
from search._storage import StorageSpec, is_dead_local_worker, worker_tag

if TYPE_CHECKING:
    import optuna

__all__ = [
    "DEFAULT_ASK_BATCH",
    "FEASIBILITY_KEY",
    "ORPHAN_AGE_S",
    "Codec",
    "add_config_trials",
    "fail_orphans",
    "run_trials",
    "run_workers",
]

#: Trials asked, evaluated in one call, and told per round.
DEFAULT_ASK_BATCH = 8
#: the constraint every trial records: 0 feasible, 1 not (Optuna's ``constraints`` convention)
FEASIBILITY_KEY = "runs"
#: A RUNNING trial with no ``worker`` attribute this old is an orphan: a live process sets
#: the attribute right after asking, within milliseconds.
ORPHAN_AGE_S = 10.0


class Codec(Protocol):
    """How configurations become trial parameters and back (:class:`search.CapLevelCodec`,
    or :class:`search.SearchSpace` itself for its exact, cap-as-rank encoding)."""

    def distributions(self) -> dict[str, optuna.distributions.BaseDistribution]: ...

    def params_from_config(self, config: KernelConfig) -> dict[str, Any]: ...

    def suggest(self, trial: optuna.trial.BaseTrial) -> KernelConfig: ...


Evaluator = Callable[[list[KernelConfig]], Evaluation]


def run_trials(
    study: optuna.Study,
    codec: Codec,
    evaluate: Evaluator,
    n_objectives: int,
    n_trials: int,
    ask_batch: int,
    sampler: optuna.samplers.BaseSampler,
    enqueue: Sequence[KernelConfig] = (),
    on_told: Callable[[int], None] | None = None,
    user_attrs: Mapping[str, Any] | None = None,
) -> None:
    """Run ``n_trials`` trials of ``study`` in batches of ``ask_batch``.

    The sampler works on an in-memory mirror of the study: before each batch, the trials
    that other processes completed are copied in from ``study``'s storage; after it, the
    batch's finished trials are written to the storage, one transaction each. Sampling
    then costs what it costs in memory (Optuna's RDB storage reads every trial on each
    ``suggest``), the storage never holds a half-written trial, and a killed process loses
    only the batch in flight.

    Args:
        study: the study in its storage.
        codec: the parameters' encoding.
        evaluate: the objective values of a batch of configurations.
        n_objectives: 1 (time) or 2 (time, L2 bytes set aside).
        n_trials: trials to run.
        ask_batch: trials per evaluation call.
        sampler: the sampler (it works on the mirror).
        enqueue: configurations the first trials take (``enqueue_trial``).
        on_told: called with the number of trials told after each batch.
        user_attrs: attributes set on every trial this call runs.
    """
    import optuna

    tag = worker_tag()
    mirror = optuna.create_study(directions=study.directions, sampler=sampler)
    known: set[int] = set()

    def sync(first: bool = False) -> None:
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
            if t._trial_id not in known:
                known.add(t._trial_id)
                # after the first sync, this process's new trials are this call's: in the mirror already
                if first or t.user_attrs.get("worker") != tag:
                    mirror.add_trial(t)

    sync(first=True)
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
        ev = evaluate(configs)
        for i, t in enumerate(trials):
            reason = ev.infeasible[i]
            t.set_user_attr("worker", tag)
            t.set_user_attr(CONFIG_ATTR, configs[i].to_dict())
            for key, value in (user_attrs or {}).items():
                t.set_user_attr(key, value)
            t.set_constraint(FEASIBILITY_KEY, 0.0 if not reason else 1.0)
            if reason:
                t.set_user_attr("infeasible", reason)
            values = [float(ev.time_s[i])]
            if n_objectives > 1:
                values.append(float(ev.l2_bytes[i]))
            frozen = mirror.tell(t, values)
            study.add_trial(frozen)
        done += k
        if on_told is not None:
            on_told(k)
        if done < n_trials:
            sync()


def add_config_trials(study: optuna.Study, codec: Codec,
                      items: Sequence[tuple[KernelConfig, Sequence[float], Mapping[str, Any]]]) -> None:
    """Write each (configuration, objective values, user attributes) as a COMPLETE trial."""
    import math

    import optuna

    dists = codec.distributions()
    for config, values, attrs in items:
        ok = all(math.isfinite(v) for v in values[:1])
        study.add_trial(optuna.trial.create_trial(
            params=codec.params_from_config(config), distributions=dists, values=[float(v) for v in values],
            user_attrs={CONFIG_ATTR: config.to_dict(), **attrs}, constraints={FEASIBILITY_KEY: 0.0 if ok else 1.0},
        ))


@dataclass(frozen=True, kw_only=True)
class _WorkerJob:
    storage: StorageSpec
    study_name: str
    workload: Workload
    gpu: GPUSpec
    space: SearchSpace
    n_objectives: int
    n_trials: int
    sampler: str
    seed: int | None
    n_startup_trials: int
    ask_batch: int
    enqueue: tuple[KernelConfig, ...] = ()


def _stop(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _worker_main(job: _WorkerJob) -> None:
    """A worker process. It was started with SIGINT ignored (a Ctrl-C at the terminal reaches
    the whole process group: the parent decides, and stops the workers with SIGTERM); SIGTERM
    stops it between two Python steps, so a trial is written whole or not at all, and it
    exits 130 with no traceback."""
    signal.signal(signal.SIGTERM, _stop)
    try:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.load_study(study_name=job.study_name, storage=job.storage.open())
        sampler = make_sampler(job.sampler, job.seed, n_startup_trials=job.n_startup_trials)
        codec = CapLevelCodec.for_workload(job.space, job.gpu, job.workload)
        run_trials(study, codec, functools.partial(evaluate_model, job.workload, job.gpu), job.n_objectives,
                   job.n_trials, job.ask_batch, sampler, job.enqueue)
    except KeyboardInterrupt:
        raise SystemExit(130) from None


#: seconds a stopped worker gets to finish its current step before it is killed
WORKER_STOP_S = 10.0


def run_workers(
    spec: StorageSpec, name: str, workload: Workload, gpu: GPUSpec, space: SearchSpace, n_objectives: int,
    n_trials: int, sampler: str, seed: int | None, n_startup_trials: int, ask_batch: int, workers: int,
    study: optuna.Study, bar: Any, enqueue: tuple[KernelConfig, ...],
) -> None:
    """Run ``n_trials`` model-fidelity trials in ``workers`` spawned processes on one study.

    Worker ``i`` samples with ``seed + i`` and runs its share of the trials; the first one
    takes the ``enqueue`` configurations. ``bar`` (a tqdm bar or None) follows the study.
    """
    from optuna.trial import TrialState

    ctx = multiprocessing.get_context("spawn")
    shares = [n_trials // workers + (1 if i < n_trials % workers else 0) for i in range(workers)]
    procs = []
    try:
        # the workers start with SIGINT ignored (inherited): a Ctrl-C stops them through this process
        with _sigint_ignored():
            for i, share in enumerate(shares):
                if share == 0:
                    continue
                job = _WorkerJob(storage=spec, study_name=name, workload=workload, gpu=gpu, space=space,
                                 n_objectives=n_objectives, n_trials=share, sampler=sampler,
                                 seed=None if seed is None else seed + i, n_startup_trials=n_startup_trials,
                                 ask_batch=ask_batch, enqueue=enqueue if i == 0 else ())
                p = ctx.Process(target=_worker_main, args=(job,), name=f"recperf-search-worker-{i}")
                p.start()
                procs.append(p)
        start = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        shown = 0
        while any(p.is_alive() for p in procs):
            time.sleep(0.5)
            if bar is not None:
                now = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))) - start
                bar.update(max(0, min(n_trials, now) - shown))
                shown = max(shown, min(n_trials, now))
    except BaseException:  # Ctrl-C (or any error) here: stop the workers, keep what they wrote
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(WORKER_STOP_S)
            if p.is_alive():
                p.kill()
                p.join()
        raise
    for p in procs:
        p.join()
    bad = [p.exitcode for p in procs if p.exitcode != 0]
    if bad:
        raise RuntimeError(f"{len(bad)} of {len(procs)} search workers failed (exit codes {bad})")
    if bar is not None:
        bar.update(n_trials - shown)


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """SIGINT ignored while the workers start (main thread only), so they inherit it."""
    try:
        old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def fail_orphans(study: optuna.Study) -> int:
    """Mark FAIL the RUNNING trials of dead processes (a killed search's batch in flight):
    those whose ``worker`` is a process of this host that is gone, and those with no
    ``worker`` (killed between ask and tag) older than :data:`ORPHAN_AGE_S`."""
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
