"""Ranking a study's trials: feasibility, distinct configurations fastest first, the Pareto front."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from perfmodel import KernelConfig, Workload
from search._codec import trial_config
from search._evaluate import l2_bytes_set_aside
from search._space import SearchSpace

if TYPE_CHECKING:
    import optuna

__all__ = ["RankedConfig", "completed_trials", "feasible_mask", "is_feasible", "pareto_front", "ranked_trials"]


@dataclass(frozen=True, kw_only=True)
class RankedConfig:
    """One configuration of a ranking: its time at the search's fidelity, its model time and
    its L2 set-aside; ``trial_number`` is the study trial it comes from (-1: none)."""

    config: KernelConfig
    time_s: float
    model_time_s: float
    l2_bytes: float
    trial_number: int

    def to_dict(self) -> dict[str, Any]:
        return {"config": self.config.to_dict(), "time_s": self.time_s, "model_time_s": self.model_time_s,
                "l2_bytes": self.l2_bytes, "trial_number": self.trial_number}


def completed_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The study's COMPLETE trials."""
    from optuna.trial import TrialState

    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def is_feasible(trial: optuna.trial.FrozenTrial) -> bool:
    """Whether a completed trial satisfies its constraints and has a finite time."""
    return (all(v <= 0.0 for v in trial.constraints.values()) and trial.values is not None
            and math.isfinite(trial.values[0]))


def feasible_mask(trials: Sequence[optuna.trial.FrozenTrial]) -> np.ndarray[Any, Any]:
    """:func:`is_feasible` of each trial, as a boolean array."""
    return np.array([is_feasible(t) for t in trials], dtype=bool)


def ranked_trials(study: optuna.Study, space: SearchSpace, workload: Workload) -> list[RankedConfig]:
    """Distinct feasible configurations of the study's completed trials, fastest first
    (ties: less L2 set aside, then the earlier trial)."""
    best: dict[KernelConfig, RankedConfig] = {}
    for t in completed_trials(study):
        if not is_feasible(t):
            continue
        cfg = trial_config(space, t)
        time_s = float(t.values[0])
        prev = best.get(cfg)
        if prev is None or time_s < prev.time_s:
            l2 = float(l2_bytes_set_aside(workload, [cfg])[0])
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
