"""Spending a budget of expensive evaluations (the simulator, a GPU) on what the model ranks.

An Optuna study at the expensive fidelity (its own study, ``<model study>-<fidelity>``, in
the same storage) starts from the model's best configurations (:data:`DEFAULT_N_WARM`),
enqueued in the model's order, and then samples next to the best configuration the expensive
fidelity has found so far with :class:`ModelGuidedSampler`: of the untried grid
configurations one field away from it, the one the model predicts fastest. It stops when ``budget_evals`` evaluations are spent. Every evaluated point
keeps its model time beside its expensive one, and the result gives the Spearman rank
correlation of the two over all of them: how far the model can be trusted on this workload.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import optuna

from perfmodel import KernelConfig
from search._codec import trial_config
from search._evaluate import Evaluation
from search._ranking import completed_trials, is_feasible
from search._space import SearchSpace
from search._trials import Evaluator, run_trials

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution
    from optuna.trial import FrozenTrial

__all__ = ["DEFAULT_N_WARM", "FidelityPoint", "FidelityResult", "ModelGuidedSampler", "run_fidelity_study",
           "spearman"]

#: how many of the model's best configurations an expensive study evaluates first
DEFAULT_N_WARM = 5

#: user attribute: how an expensive trial was chosen
ORIGIN_ATTR = "origin"
MODEL_TOP = "model top"
NEAR_BEST = "near best"


class ModelGuidedSampler(optuna.samplers.BaseSampler):
    """Sample, next to the best point found so far, the configuration the model ranks fastest.

    Each new trial takes, among the untried grid configurations one field away from the best
    completed trial (:meth:`SearchSpace.neighbours`; in ``allowed`` when given), the one
    with the lowest model time; when the best has no untried neighbour left, the next best
    point's, and so on; then two fields away, up to ``fields``. Ties go to the seeded random
    generator; with no completed trial, or nothing left at all, parameters are sampled at
    random. One field at a time keeps the search where the expensive fidelity found good
    times, and the model only orders the few moves from there: on the simulator benchmark's
    second workload, where the model ranks the simulator's 1% region 56th to 62nd, two-field
    moves from the three best points took 55 evaluations to reach it and one-field moves from
    the best 15 (docs/search.md).

    Args:
        space: the search space; trials use its exact encoding (:meth:`SearchSpace.distributions`).
        model_times: the model's time of each configuration of a batch (inf: infeasible).
        fields: how many fields a neighbour may change, at most.
        allowed: the only configurations it may propose (e.g. those with recorded measurements).
        seed: seed of the tie-breaks and of the random fallback.
    """

    def __init__(self, space: SearchSpace, model_times: Callable[[list[KernelConfig]], npt.NDArray[np.float64]], *,
                 fields: int = 2, allowed: set[KernelConfig] | None = None, seed: int | None = None) -> None:
        self._space = space
        self._model_times = model_times
        self._fields = fields
        self._allowed = allowed
        self._rng = random.Random(seed)
        self._fallback = optuna.samplers.RandomSampler(seed=seed)

    def reseed_rng(self) -> None:
        self._rng.seed()
        self._fallback.reseed_rng()

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self._space.distributions()

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if not search_space:
            return {}
        choice = self.propose(study)
        return {} if choice is None else self._space.params_from_config(choice)

    def propose(self, study: optuna.Study) -> KernelConfig | None:
        """The configuration the next trial should take (None: nothing near; sample at random)."""
        tried = set()
        for t in study.get_trials(deepcopy=False):
            if t.params or t.user_attrs:
                try:
                    tried.add(self._space.canonical(trial_config(self._space, t)))
                except (KeyError, ValueError):  # a trial still being sampled: no parameters yet
                    continue
        done = [t for t in completed_trials(study) if is_feasible(t)]
        done.sort(key=lambda t: (float(t.values[0]), t.number))
        best = [self._space.canonical(trial_config(self._space, t)) for t in done]
        pool: set[KernelConfig] = set()
        for fields in range(1, self._fields + 1):
            for c in best:
                pool = self._space.neighbours(c, fields=fields) - tried
                if self._allowed is not None:
                    pool &= self._allowed
                if pool:
                    break
            if pool:
                break
        if not pool and self._allowed is not None:
            pool = set(self._allowed) - tried  # nothing near: the rest of what may be evaluated
        if not pool:
            return None
        cands = sorted(pool, key=lambda c: tuple(str(v) for v in c.to_dict().values()))
        times = self._model_times(cands)
        fastest = float(np.min(times))
        if not math.isfinite(fastest):
            return self._rng.choice(cands)
        return self._rng.choice([c for c, t in zip(cands, times, strict=True) if t == fastest])

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self._fallback.sample_independent(study, trial, param_name, param_distribution)


@dataclass(frozen=True, kw_only=True)
class FidelityPoint:
    """One expensive evaluation, beside the model's prediction of the same configuration.

    Ranks run from 1 (fastest) over the points with a finite expensive time (0 for others).
    """

    config: KernelConfig
    time_s: float
    model_time_s: float
    trial_number: int
    origin: str
    model_rank: int
    fidelity_rank: int

    def to_dict(self) -> dict[str, Any]:
        return {"config": self.config.to_dict(), "time_s": self.time_s, "model_time_s": self.model_time_s,
                "trial_number": self.trial_number, "origin": self.origin, "model_rank": self.model_rank,
                "fidelity_rank": self.fidelity_rank}


@dataclass(frozen=True, kw_only=True)
class FidelityResult:
    """The expensive study: every evaluated point in trial order, and the rank agreement."""

    fidelity: str
    study_name: str
    points: tuple[FidelityPoint, ...]
    #: Spearman's rank correlation of model and expensive times over the points (nan: < 3 points)
    spearman: float
    #: evaluations this run spent (the study may hold earlier ones)
    n_new: int

    def to_dict(self) -> dict[str, Any]:
        return {"fidelity": self.fidelity, "study_name": self.study_name, "n_evaluations": len(self.points),
                "n_new": self.n_new, "spearman": self.spearman, "points": [p.to_dict() for p in self.points]}


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rank correlation (average ranks for ties); nan with fewer than 3 pairs or a constant side."""
    if len(a) < 3 or len(set(a)) < 2 or len(set(b)) < 2:
        return math.nan
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def _ranks(values: Sequence[float]) -> list[int]:
    order = sorted(range(len(values)), key=lambda i: (values[i], i))
    out = [0] * len(values)
    for r, i in enumerate(order, 1):
        out[i] = r
    return out


def run_fidelity_study(
    study: optuna.Study,
    space: SearchSpace,
    fidelity: str,
    evaluate: Evaluator,
    model_times: Callable[[list[KernelConfig]], npt.NDArray[np.float64]],
    *,
    budget_evals: int,
    warm_start: Sequence[KernelConfig],
    n_warm: int = DEFAULT_N_WARM,
    n_objectives: int = 1,
    sampler: optuna.samplers.BaseSampler | None = None,
    allowed: set[KernelConfig] | None = None,
    seed: int | None = 0,
    on_told: Callable[[int], None] | None = None,
) -> FidelityResult:
    """Spend ``budget_evals`` evaluations of ``study`` at the expensive fidelity.

    Args:
        study: the study that holds the expensive evaluations (continued if it has some).
        space: the search space (its exact encoding is the trials' parameters).
        fidelity: the fidelity's name (``sim`` or ``gpu``), for the result.
        evaluate: the expensive objective values of a batch (one configuration per call here).
        model_times: the model's times of a batch.
        budget_evals: evaluations to spend now.
        warm_start: the model's ranking, best first: the first ``n_warm`` of them not in the
            study yet are evaluated first, in order.
        n_warm: how many of ``warm_start`` to evaluate before sampling near the best.
        n_objectives: 1 (time) or 2 (time, L2 set aside).
        sampler: the sampler after the warm start (default :class:`ModelGuidedSampler`).
        allowed: the only configurations that may be evaluated (None: the whole space); the
            budget is cut to those (or to the space's) not evaluated yet.
        seed: the default sampler's seed.
        on_told: called with 1 after every evaluation (a progress bar).

    Returns:
        Every point the study holds, with model and expensive ranks and their Spearman correlation.
    """
    if sampler is None:
        sampler = ModelGuidedSampler(space, model_times, allowed=allowed, seed=seed)
    already = {space.canonical(trial_config(space, t)) for t in completed_trials(study)}
    # never more than what is left to evaluate
    left = len(allowed - already) if allowed is not None else space.grid_size - len(already)
    budget_evals = min(budget_evals, max(left, 0))
    warm = []
    for c in warm_start:
        c = space.canonical(c)
        if c not in already and c not in warm and (allowed is None or c in allowed):
            warm.append(c)
    warm = warm[:min(n_warm, budget_evals)]
    if warm:
        run_trials(study, space, evaluate, n_objectives, len(warm), 1, sampler, warm, on_told,
                   user_attrs={ORIGIN_ATTR: MODEL_TOP})
    rest = budget_evals - len(warm)
    if rest > 0:
        run_trials(study, space, evaluate, n_objectives, rest, 1, sampler, (), on_told,
                   user_attrs={ORIGIN_ATTR: NEAR_BEST})
    return fidelity_result(study, space, fidelity, model_times, n_new=budget_evals)


def fidelity_result(study: optuna.Study, space: SearchSpace, fidelity: str,
                    model_times: Callable[[list[KernelConfig]], npt.NDArray[np.float64]],
                    n_new: int = 0) -> FidelityResult:
    """The points of an expensive study with their model times, ranks and Spearman correlation."""
    trials = sorted(completed_trials(study), key=lambda t: t.number)
    configs = [trial_config(space, t) for t in trials]
    model = [float(x) for x in model_times(configs)] if configs else []
    times = [float(t.values[0]) if is_feasible(t) else math.inf for t in trials]
    ok = [i for i, t in enumerate(times) if math.isfinite(t) and math.isfinite(model[i])]
    m_rank = dict(zip(ok, _ranks([model[i] for i in ok]), strict=True))
    f_rank = dict(zip(ok, _ranks([times[i] for i in ok]), strict=True))
    points = tuple(
        FidelityPoint(config=c, time_s=times[i], model_time_s=model[i], trial_number=t.number,
                      origin=str(t.user_attrs.get(ORIGIN_ATTR, "")), model_rank=m_rank.get(i, 0),
                      fidelity_rank=f_rank.get(i, 0))
        for i, (t, c) in enumerate(zip(trials, configs, strict=True))
    )
    rho = spearman([model[i] for i in ok], [times[i] for i in ok])
    return FidelityResult(fidelity=fidelity, study_name=study.study_name, points=points, spearman=rho, n_new=n_new)


def evaluation_of(times: Sequence[float | None], l2_bytes: npt.NDArray[np.float64], missing: str) -> Evaluation:
    """An :class:`Evaluation` from expensive times (None or non-finite: infeasible, ``missing`` the reason)."""
    reasons = tuple("" if t is not None and math.isfinite(t) and t > 0 else missing for t in times)
    arr = np.array([t if r == "" else math.inf for t, r in zip(times, reasons, strict=True)], dtype=np.float64)
    return Evaluation(time_s=arr, l2_bytes=l2_bytes, infeasible=reasons)
