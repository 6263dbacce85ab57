"""The samplers a search can use: names, and the Optuna samplers behind them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from perfmodel import InputError

if TYPE_CHECKING:
    import optuna

__all__ = ["DEFAULT_STARTUP_TRIALS", "SAMPLERS", "check_sampler", "make_sampler", "sampler_method"]

#: ``auto``: the exhaustive grid when it fits the time budget, else TPE; ``grid``: the grid
#: whatever it costs; ``tpe`` and ``random``: Optuna's samplers
SAMPLERS = ("auto", "grid", "tpe", "random")
#: Random trials before TPE models the space (Optuna's default is 10).
DEFAULT_STARTUP_TRIALS = 10


def make_sampler(kind: str, seed: int | None = None, *, n_startup_trials: int = DEFAULT_STARTUP_TRIALS,
                 tpe_options: Mapping[str, Any] | None = None) -> optuna.samplers.BaseSampler:
    """The Optuna sampler a search uses for ``kind`` (``"tpe"`` or ``"random"``).

    Args:
        kind: ``"tpe"`` (multivariate TPE with a constant liar, as ``search.optimize`` runs
            it) or ``"random"``.
        seed: the sampler's seed (None: not reproducible).
        n_startup_trials: random trials before TPE models the space.
        tpe_options: further ``optuna.samplers.TPESampler`` keywords, overriding these.

    Returns:
        A new sampler.
    """
    import optuna

    if kind == "tpe":
        kw: dict[str, Any] = {"seed": seed, "multivariate": True, "n_startup_trials": n_startup_trials,
                              "constant_liar": True, **(tpe_options or {})}
        return optuna.samplers.TPESampler(**kw)
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise InputError(f"unknown sampler {kind!r}; valid choices: tpe, random")


def check_sampler(sampler: object) -> str | optuna.samplers.BaseSampler:
    """``sampler`` if it is a name of :data:`SAMPLERS` or an Optuna sampler; else :class:`InputError`."""
    import optuna

    if isinstance(sampler, optuna.samplers.BaseSampler):
        return sampler
    if isinstance(sampler, str) and sampler in SAMPLERS:
        return sampler
    raise InputError(f"unknown sampler {sampler!r}; valid choices: {', '.join(SAMPLERS)}, or an "
                     "optuna.samplers.BaseSampler")


def sampler_method(sampler: optuna.samplers.BaseSampler) -> str:
    """How a result names the method of a sampler: ``tpe``, ``random``, or the class name."""
    import optuna

    if isinstance(sampler, optuna.samplers.TPESampler):
        return "tpe"
    if isinstance(sampler, optuna.samplers.RandomSampler):
        return "random"
    return type(sampler).__name__
