"""How a search space's configurations become Optuna parameters, and back.

Every field but the register cap is encoded as :meth:`SearchSpace.distributions` says
(ordered numbers as stepped int/float distributions, the rest categorical). The register cap
is sampled as the **occupancy level** it buys, not as the cap itself.

Why. A cap acts on performance through the registers ptxas then allocates, i.e. through the
occupancy it reaches (and the spill code it costs). Which cap reaches which occupancy
depends on the kernel build: the warp variant with no prefetch needs 45 registers with the
inline check and 54 without, with a 2-row prefetch 48 and 40 (the shipped compiler table,
sm_80), so "cap 40" means "one level up" for one build and "no change" for another. Sampled
as caps, the good cap moves with every other parameter and TPE has to learn each pair; sampled
as levels, "raise occupancy one level" keeps its meaning across builds. On the three
benchmark workloads (scripts/bench_search.py) this took plain TPE's median gap to the
exhaustive optimum from 1.1% / 4.4% / 7.8% to 0.0% / 2.8% / 7.1% (10 seeds, sequential
trials; docs/search.md).

The levels of one build (variant, block size, prefetch distance and kind, bounds check, pin
method, for the workload's dominant table dtype and the GPU's architecture): walk the caps
from none (level 0) through the loosest to the tightest and keep each cap that raises the
resident warps per SM above every looser cap kept (registers from
:func:`perfmodel.kernel_registers`, occupancy from :func:`perfmodel.occupancy`). A cap that
reaches no new occupancy only adds spill code, so the sampled configurations leave it out;
the grid walk keeps every cap that another does not provably dominate (:mod:`search._grid`),
so this is an encoding for the sampler, not a pruning (on the benchmark workloads the best
configuration the levels can reach is within 0.03% of the grid's optimum). The sampled parameter
``register_cap_level`` runs over ``0 .. K - 1``, K the most levels any block size can have
on this GPU; a level past a build's tightest takes its tightest.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import perfmodel
from perfmodel import GPUSpec, InputError, KernelConfig, Workload
from search._space import SearchSpace, suggest_params

if TYPE_CHECKING:
    import optuna

__all__ = ["CapLevelCodec", "dominant_dtype", "trial_config"]

#: the parameter that replaces ``register_cap_rank`` in the occupancy-level encoding
LEVEL_PARAM = "register_cap_level"
#: user attribute holding each trial's decoded configuration (any encoding can read it back)
CONFIG_ATTR = "config"


def dominant_dtype(workload: Workload) -> str:
    """The dtype of the tables that move the most row bytes per call (they set the time)."""
    moved: dict[str, float] = {}
    for t in workload.tables:
        moved[t.dtype] = moved.get(t.dtype, 0.0) + t.count * t.row_bytes * t.mean_pooling
    return max(sorted(moved), key=lambda d: moved[d])


class CapLevelCodec:
    """Encode ``space``'s configurations for Optuna with the cap as an occupancy level.

    Args:
        space: the search space (its other fields are encoded as ``space.distributions()``).
        gpu: the GPU whose architecture and occupancy rules define the levels.
        dtype: the table dtype whose compiled kernels define the registers.
    """

    name = "occupancy-level"

    def __init__(self, space: SearchSpace, gpu: GPUSpec, dtype: str = "float32") -> None:
        self.space = space
        self.gpu = gpu
        self.dtype = dtype
        self._warps = lru_cache(maxsize=None)(self._warps_uncached)
        self._levels = lru_cache(maxsize=None)(self._levels_uncached)
        self._loosest_first = tuple(sorted(space.register_caps, key=lambda c: (c != 0, -c)))
        self._dists = self._distributions(self._max_levels() if len(space.register_caps) > 1 else 1)

    @classmethod
    def for_workload(cls, space: SearchSpace, gpu: GPUSpec, workload: Workload) -> CapLevelCodec:
        """The codec whose levels come from ``workload``'s dominant table dtype."""
        return cls(space, gpu, dominant_dtype(workload))

    # ---- levels ----------------------------------------------------------------------
    def _warps_uncached(self, block_size: int, registers: int) -> int:
        try:
            return int(perfmodel.occupancy(self.gpu, block_size=block_size, registers_per_thread=registers)
                       .active_warps_per_sm)
        except ValueError:  # the block cannot be resident at all
            return 0

    def _max_levels(self) -> int:
        """An upper bound on any build's levels: distinct occupancies the caps give, plus none."""
        caps = [c for c in self._loosest_first if c != 0]
        most = 1
        for b in self.space.block_sizes:
            most = max(most, len({self._warps(b, c) for c in caps}) + (0 in self._loosest_first))
        return most

    def _config_warps(self, config: KernelConfig) -> int:
        return self._warps(config.block_size, perfmodel.kernel_registers(config, self.gpu, self.dtype)[0])

    def _levels_uncached(self, variant: str, block_size: int, prefetch_distance: int, prefetch_kind: str,
                         bounds_check: str, pin_method: str) -> tuple[tuple[int, int], ...]:
        """(cap, resident warps per SM) of each level, loosest first."""
        build = KernelConfig(variant=variant, block_size=block_size, prefetch_distance=prefetch_distance,
                             prefetch_kind=prefetch_kind, bounds_check=bounds_check, pin_method=pin_method)
        out: list[tuple[int, int]] = []
        for cap in self._loosest_first:
            warps = self._config_warps(build.replace(register_cap=cap))
            if not out or warps > out[-1][1]:
                out.append((cap, warps))
        return tuple(out)

    def _build_levels(self, config: KernelConfig) -> tuple[tuple[int, int], ...]:
        return self._levels(config.variant, config.block_size, config.prefetch_distance, config.prefetch_kind,
                            config.bounds_check, config.pin_method)

    def levels(self, config: KernelConfig) -> tuple[int, ...]:
        """The caps of ``config``'s build that each reach a new occupancy, loosest first."""
        return tuple(cap for cap, _ in self._build_levels(config))

    def _level_of(self, config: KernelConfig) -> int:
        """The level with ``config``'s occupancy (its cap projected to the loosest cap with it)."""
        lv = self._build_levels(config)
        want = self._config_warps(config)
        return next((i for i, (_, warps) in enumerate(lv) if warps >= want), len(lv) - 1)

    # ---- Optuna ----------------------------------------------------------------------
    def _distributions(self, n_levels: int) -> dict[str, optuna.distributions.BaseDistribution]:
        import optuna

        out: dict[str, optuna.distributions.BaseDistribution] = {}
        for name, dist in self.space.distributions().items():
            if name == "register_cap_rank":
                out[LEVEL_PARAM] = optuna.distributions.IntDistribution(0, n_levels - 1)
            else:
                out[name] = dist
        return out

    def distributions(self) -> dict[str, optuna.distributions.BaseDistribution]:
        """The Optuna distribution of each sampled parameter (a copy)."""
        return dict(self._dists)

    def config_from_params(self, params: Mapping[str, Any]) -> KernelConfig:
        if LEVEL_PARAM not in params:
            return self.space.config_from_params(params)
        rest = {k: v for k, v in params.items() if k != LEVEL_PARAM}
        rest["register_cap_rank"] = 0  # any cap: replaced below
        base = self.space.config_from_params(rest)
        lv = self.levels(base)
        return base.replace(register_cap=lv[min(int(params[LEVEL_PARAM]), len(lv) - 1)])

    def params_from_config(self, config: KernelConfig) -> dict[str, Any]:
        """Trial parameters of ``config`` (its cap projected to its occupancy level)."""
        params = self.space.params_from_config(config)
        if "register_cap_rank" in params:
            del params["register_cap_rank"]
            params[LEVEL_PARAM] = self._level_of(config)
        return params

    def suggest(self, trial: optuna.trial.BaseTrial) -> KernelConfig:
        """Sample every parameter on ``trial``, record the configuration, and return it."""
        cfg = self.config_from_params(suggest_params(trial, self._dists))
        trial.set_user_attr(CONFIG_ATTR, cfg.to_dict())
        return cfg


def trial_config(space: SearchSpace, trial: optuna.trial.FrozenTrial) -> KernelConfig:
    """A trial's configuration: the recorded one, else decoded from its parameters (studies
    written before configurations were recorded sample the cap as ``register_cap_rank``)."""
    doc = trial.user_attrs.get(CONFIG_ATTR)
    if isinstance(doc, Mapping):
        try:
            return KernelConfig(**doc)
        except (TypeError, ValueError) as exc:
            raise InputError(f"trial {trial.number} records an invalid configuration {dict(doc)}: {exc}") from None
    return space.config_from_params(trial.params)
