"""The search space over embedding-bag kernel configurations, as data.

A :class:`SearchSpace` lists the values each :class:`perfmodel.KernelConfig` field may take.
All parameters are discrete, so the same space is both what Optuna samples from (one
``suggest_*`` call per parameter, always all of them: no conditional parameters) and the
grid that ``--exhaustive`` walks. :func:`build_space` bounds the space by what the GPU
allows: block sizes up to ``max_threads_per_block``, pinned-row fractions up to the largest
fraction whose pinned bytes fit the GPU's persisting-L2 maximum for the largest table.

Register caps are ``0`` (no cap) and 24..128 in steps of 8 (:data:`REGISTER_CAP_CHOICES`):
24 is the smallest cap ptxas accepts (FACTS.md section 5), and registers are allocated per
warp in units of 256, i.e. 8 per thread, so steps of 8 reach every occupancy level a cap can
give (the seed paper's cap of 42 gives the occupancy of 48; its spills differ).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from perfmodel import (
    BOUNDS_CHECKS,
    PIN_METHODS,
    PREFETCH_KINDS,
    TUNABLE_VARIANTS,
    GPUSpec,
    InputError,
    KernelConfig,
    Workload,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

if TYPE_CHECKING:
    import optuna

__all__ = [
    "BLOCK_SIZE_STEP",
    "MAX_PINNED_FRACTION_POINTS",
    "MIN_BLOCK_SIZE",
    "PREFETCH_DISTANCES",
    "REGISTER_CAP_CHOICES",
    "SearchSpace",
    "build_space",
    "check_space",
    "load_space",
    "max_pinned_row_fraction",
    "pinned_fraction_grid",
    "space_from_mapping",
]

#: Register caps searched: 0 (no cap) and 24..128 step 8. One constant that the kernels'
#: resource table (issue 3) mirrors so that every searched point has compiler figures.
REGISTER_CAP_CHOICES: tuple[int, ...] = (0, *range(24, 129, 8))
#: Prefetch distances searched (rows loaded ahead), 0 = none.
PREFETCH_DISTANCES: tuple[int, ...] = tuple(range(17))
#: Smallest block size searched and the step (one warp).
MIN_BLOCK_SIZE = 64
BLOCK_SIZE_STEP = 32
#: Pinned-row fraction grids are the largest "nice" step giving at least this many points.
MIN_PINNED_FRACTION_POINTS = 12
#: ... and never more than this many.
MAX_PINNED_FRACTION_POINTS = 101
_NICE_STEPS = (0.05, 0.02, 0.01, 0.005, 0.002, 0.001, 0.0005, 0.0002, 0.0001)

#: Field order of a configuration in a grid and in reports.
PARAM_NAMES: tuple[str, ...] = (
    "variant",
    "block_size",
    "register_cap",
    "prefetch_distance",
    "prefetch_kind",
    "pinned_row_fraction",
    "pin_method",
    "bounds_check",
)


def max_pinned_row_fraction(workload: Workload, gpu: GPUSpec) -> float:
    """The largest pinned-row fraction whose pinned bytes fit ``persisting_l2_max_bytes``.

    Pinning applies per table call to that table's hottest rows, so the largest table
    (in bytes) bounds the fraction: ``floor(f * rows) * row_bytes <= persisting_l2_max_bytes``.
    """
    largest = max(workload.tables, key=lambda t: t.table_bytes)
    fits_rows = gpu.persisting_l2_max_bytes // largest.row_bytes
    return min(1.0, fits_rows / largest.rows)


def pinned_fraction_grid(upper: float) -> tuple[float, ...]:
    """Fractions 0, s, 2s, ... <= ``upper`` with the largest nice step s giving >= 12 points."""
    if not 0.0 <= upper <= 1.0:
        raise InputError(f"`0 <= upper <= 1` must hold, but got upper={upper!r}")
    if upper == 0.0:
        return (0.0,)
    step = _NICE_STEPS[-1]
    for s in _NICE_STEPS:
        if math.floor(upper / s + 1e-9) + 1 >= MIN_PINNED_FRACTION_POINTS:
            step = s
            break
    n = min(math.floor(upper / step + 1e-9), MAX_PINNED_FRACTION_POINTS - 1)
    return tuple(round(k * step, 10) for k in range(n + 1))


def _is_progression(values: Sequence[int]) -> int | None:
    """The common step of an increasing arithmetic progression of >= 2 ints, else None."""
    if len(values) < 2:
        return None
    step = values[1] - values[0]
    if step <= 0 or any(b - a != step for a, b in itertools.pairwise(values)):
        return None
    return step


@dataclass(frozen=True, kw_only=True)
class SearchSpace:
    """The values each kernel-configuration field may take (all discrete).

    A field with one value is fixed: it is not sampled. ``pin_method`` only matters when
    ``pinned_row_fraction > 0`` and ``prefetch_kind`` only when ``prefetch_distance > 0``;
    the exhaustive grid leaves out the duplicates this gives, the sampler samples them all.
    """

    variants: tuple[str, ...] = TUNABLE_VARIANTS
    block_sizes: tuple[int, ...] = tuple(range(MIN_BLOCK_SIZE, 1025, BLOCK_SIZE_STEP))
    register_caps: tuple[int, ...] = REGISTER_CAP_CHOICES
    prefetch_distances: tuple[int, ...] = PREFETCH_DISTANCES
    prefetch_kinds: tuple[str, ...] = ("register",)
    pinned_row_fractions: tuple[float, ...] = (0.0,)
    pin_methods: tuple[str, ...] = PIN_METHODS
    bounds_checks: tuple[str, ...] = ("inline", "separate")

    def __post_init__(self) -> None:
        for name in self.fields():
            values = tuple(getattr(self, name))
            if not values:
                raise InputError(f"search space field `{name}` needs at least one value, but got none")
            if len(set(values)) != len(values):
                raise InputError(f"search space field `{name}` must not repeat values, but got {list(values)}")
            object.__setattr__(self, name, values)
        _subset("variants", self.variants, TUNABLE_VARIANTS)
        _subset("prefetch_kinds", self.prefetch_kinds, PREFETCH_KINDS)
        _subset("pin_methods", self.pin_methods, PIN_METHODS)
        _subset("bounds_checks", self.bounds_checks, BOUNDS_CHECKS)
        for name in ("block_sizes", "register_caps", "prefetch_distances", "pinned_row_fractions"):
            values = getattr(self, name)
            if list(values) != sorted(values):
                raise InputError(f"search space field `{name}` must be increasing, but got {list(values)}")
        object.__setattr__(self, "pinned_row_fractions", tuple(float(f) for f in self.pinned_row_fractions))
        # Every value must make a valid KernelConfig (its __post_init__ states the rule).
        for name, values in self.items():
            for v in values:
                KernelConfig(**{name: v})

    # ---- views -----------------------------------------------------------------------
    @staticmethod
    def fields() -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(SearchSpace))

    def items(self) -> Iterator[tuple[str, tuple[Any, ...]]]:
        """(KernelConfig field name, values) in :data:`PARAM_NAMES` order."""
        for param, field_name in zip(PARAM_NAMES, self.fields(), strict=True):
            yield param, getattr(self, field_name)

    def values(self, param: str) -> tuple[Any, ...]:
        """The values of one parameter (a KernelConfig field name)."""
        for name, values in self.items():
            if name == param:
                return values
        raise InputError(f"unknown search parameter {param!r}; valid choices: {', '.join(PARAM_NAMES)}")

    def to_dict(self) -> dict[str, list[Any]]:
        return {name: list(values) for name, values in self.items()}

    @property
    def grid_size(self) -> int:
        """Distinct configurations in the exhaustive grid (duplicates left out)."""
        n = len(self.variants) * len(self.block_sizes) * len(self.register_caps) * len(self.bounds_checks)
        n_pf = sum(1 if d == 0 else len(self.prefetch_kinds) for d in self.prefetch_distances)
        n_pin = sum(1 if f == 0.0 else len(self.pin_methods) for f in self.pinned_row_fractions)
        return n * n_pf * n_pin

    # ---- grid ------------------------------------------------------------------------
    def _prefetch_pairs(self) -> list[tuple[int, str]]:
        return [(d, k) for d in self.prefetch_distances for k in (self.prefetch_kinds[:1] if d == 0 else self.prefetch_kinds)]

    def _pin_pairs(self) -> list[tuple[float, str]]:
        return [(f, m) for f in self.pinned_row_fractions for m in (self.pin_methods[:1] if f == 0.0 else self.pin_methods)]

    def grid_chunks(self, chunk_size: int = 65536) -> Iterator[list[KernelConfig]]:
        """The exhaustive grid in chunks of at most ``chunk_size`` configurations."""
        if chunk_size < 1:
            raise InputError(f"`chunk_size >= 1` must hold, but got chunk_size={chunk_size}")
        product = itertools.product(
            self.variants, self.block_sizes, self.register_caps, self._prefetch_pairs(), self._pin_pairs(),
            self.bounds_checks,
        )
        while True:
            chunk = [
                KernelConfig(variant=v, block_size=b, register_cap=r, prefetch_distance=d, prefetch_kind=k,
                             pinned_row_fraction=f, pin_method=m, bounds_check=c)
                for v, b, r, (d, k), (f, m), c in itertools.islice(product, chunk_size)
            ]
            if not chunk:
                return
            yield chunk

    def contains(self, config: KernelConfig) -> bool:
        """Whether every field of ``config`` is one of this space's values."""
        return all(getattr(config, name) in values for name, values in self.items())

    def canonical(self, config: KernelConfig) -> KernelConfig:
        """``config`` as the grid holds it: the first pin method when nothing is pinned, the
        first prefetch kind when nothing is prefetched (the other values are the same kernel)."""
        changes: dict[str, Any] = {}
        if config.pinned_row_fraction == 0.0 and config.pin_method != self.pin_methods[0]:
            changes["pin_method"] = self.pin_methods[0]
        if config.prefetch_distance == 0 and config.prefetch_kind != self.prefetch_kinds[0]:
            changes["prefetch_kind"] = self.prefetch_kinds[0]
        return config.replace(**changes) if changes else config

    def neighbours(self, config: KernelConfig, steps: int = 2, fields: int = 2) -> set[KernelConfig]:
        """The grid's configurations that change at most ``fields`` fields of ``config``: an
        ordered field (block size, register cap, pinned fraction) by at most ``steps``
        positions, any other field (variant, prefetch distance, kinds, methods, check) to any
        of its values. ``config`` itself is left out; all are :meth:`canonical`."""
        moves: list[list[tuple[str, Any]]] = []
        for name, values in self.items():
            v = getattr(config, name)
            if len(values) < 2:
                continue
            if name in ("block_size", "register_cap", "pinned_row_fraction") and v in values:
                i = values.index(v)
                opts = [values[j] for j in range(max(0, i - steps), min(len(values), i + steps + 1)) if j != i]
            else:
                opts = [x for x in values if x != v]
            moves.append([(name, x) for x in opts])
        out: set[KernelConfig] = set()
        for n in range(1, fields + 1):
            for combo in itertools.combinations(moves, n):
                for change in itertools.product(*combo):
                    out.add(self.canonical(config.replace(**dict(change))))
        out.discard(self.canonical(config))
        return out

    # ---- Optuna ----------------------------------------------------------------------
    def distributions(self) -> dict[str, optuna.distributions.BaseDistribution]:
        """The Optuna distribution of each sampled parameter (fixed fields left out).

        Evenly spaced numbers become ``IntDistribution``/``FloatDistribution`` with a step,
        so that TPE sees their order; anything else is categorical. The prefetch distance is
        categorical: 0 and 1 and more are different code (no prefetch, a ring of d rows in
        registers) and each row ahead costs registers, so time jumps between neighbouring
        distances and an ordered kernel smears a good distance into bad neighbours (on the
        Criteo-like benchmark workload the median gap to the optimum fell from 6.4% to 0%
        over 12 seeds; scripts/bench_search.py). Register caps are
        sampled as ``register_cap_rank``, the cap's rank from tightest to none, because no
        cap (0) behaves like the loosest cap; the trial's ``register_cap`` user attribute and
        its configuration hold the cap itself.
        """
        import optuna

        out: dict[str, optuna.distributions.BaseDistribution] = {}
        for name, values in self.items():
            if len(values) == 1:
                continue
            if name == "register_cap":
                out["register_cap_rank"] = optuna.distributions.IntDistribution(0, len(values) - 1)
            elif name == "prefetch_distance":
                out[name] = optuna.distributions.CategoricalDistribution(values)
            elif name == "pinned_row_fraction":
                step = _float_step(values)
                if step is None:
                    out[name] = optuna.distributions.CategoricalDistribution(values)
                else:
                    out[name] = optuna.distributions.FloatDistribution(values[0], values[-1], step=step)
            elif isinstance(values[0], int):
                istep = _is_progression(values)
                if istep is None:
                    out[name] = optuna.distributions.CategoricalDistribution(values)
                else:
                    out[name] = optuna.distributions.IntDistribution(values[0], values[-1], step=istep)
            else:
                out[name] = optuna.distributions.CategoricalDistribution(values)
        return out

    def _caps_by_rank(self) -> tuple[int, ...]:
        """Register caps from tightest to none (0 last)."""
        return tuple(sorted(self.register_caps, key=lambda c: (c == 0, c)))

    def config_from_params(self, params: Mapping[str, Any]) -> KernelConfig:
        """The kernel configuration of a trial's parameters (fixed fields filled in)."""
        kw: dict[str, Any] = {}
        for name, values in self.items():
            if len(values) == 1:
                kw[name] = values[0]
            elif name == "register_cap":
                kw[name] = self._caps_by_rank()[int(params["register_cap_rank"])]
            elif name == "pinned_row_fraction":
                # snap to the grid value (float steps accumulate rounding error)
                x = float(params[name])
                kw[name] = min(values, key=lambda v: abs(v - x))
            else:
                kw[name] = params[name]
        return KernelConfig(**kw)

    def params_from_config(self, config: KernelConfig) -> dict[str, Any]:
        """The trial parameters of a configuration in this space (for ``enqueue_trial``)."""
        if not self.contains(config):
            outside = {n: getattr(config, n) for n, v in self.items() if getattr(config, n) not in v}
            raise InputError(f"configuration must lie in the search space, but these fields do not: {outside}")
        out: dict[str, Any] = {}
        for name, values in self.items():
            if len(values) == 1:
                continue
            if name == "register_cap":
                out["register_cap_rank"] = self._caps_by_rank().index(config.register_cap)
            else:
                out[name] = getattr(config, name)
        return out

    def suggest(self, trial: optuna.trial.BaseTrial) -> KernelConfig:
        """Sample every parameter on ``trial`` and return its configuration."""
        return self.config_from_params(suggest_params(trial, self.distributions()))

    def project(self, config: KernelConfig) -> KernelConfig:
        """The nearest configuration of this space (each field to its nearest value)."""
        kw: dict[str, Any] = {}
        for name, values in self.items():
            v = getattr(config, name)
            if v in values:
                kw[name] = v
            elif isinstance(v, (int, float)) and not isinstance(v, bool):
                kw[name] = min(values, key=lambda x: (abs(x - v), x))
            else:
                kw[name] = values[0]
        return KernelConfig(**kw)


def suggest_params(
    trial: optuna.trial.BaseTrial, distributions: Mapping[str, optuna.distributions.BaseDistribution]
) -> dict[str, Any]:
    """Sample each distribution on ``trial`` with the matching ``suggest_*`` call."""
    import optuna

    params: dict[str, Any] = {}
    for name, dist in distributions.items():
        if isinstance(dist, optuna.distributions.IntDistribution):
            params[name] = trial.suggest_int(name, dist.low, dist.high, step=dist.step)
        elif isinstance(dist, optuna.distributions.FloatDistribution):
            params[name] = trial.suggest_float(name, dist.low, dist.high, step=dist.step)
        else:
            assert isinstance(dist, optuna.distributions.CategoricalDistribution)
            params[name] = trial.suggest_categorical(name, dist.choices)
    return params


def _float_step(values: Sequence[float]) -> float | None:
    if len(values) < 2:
        return None
    step = values[1] - values[0]
    if step <= 0:
        return None
    ok = all(abs(v - (values[0] + i * step)) <= 1e-9 for i, v in enumerate(values))
    return round(step, 10) if ok else None


def _subset(name: str, values: Sequence[str], allowed: Sequence[str]) -> None:
    bad = [v for v in values if v not in allowed]
    if bad:
        raise InputError(f"unknown {name} {bad}; valid choices: {', '.join(allowed)}")


def build_space(
    workload: Workload,
    gpu: GPUSpec,
    *,
    allow_no_bounds_check: bool = False,
    prefetch_kinds: Sequence[str] = ("register",),
    block_size_step: int = BLOCK_SIZE_STEP,
) -> SearchSpace:
    """The default search space for ``workload`` on ``gpu``.

    Block sizes ``64..max_threads_per_block`` in steps of ``block_size_step`` (a multiple
    of 32); register caps :data:`REGISTER_CAP_CHOICES`; prefetch distances 0..16; pinned
    fractions on :func:`pinned_fraction_grid` up to :func:`max_pinned_row_fraction`; both
    pinning methods; bounds checks ``inline`` and ``separate``, plus ``none`` only with
    ``allow_no_bounds_check`` (a kernel with no check reads out of bounds on bad input).
    """
    if block_size_step < 32 or block_size_step % 32:
        raise InputError(f"`block_size_step` must be a positive multiple of 32, but got block_size_step={block_size_step}")
    top = gpu.max_threads_per_block
    block_sizes = tuple(range(MIN_BLOCK_SIZE, top + 1, block_size_step))
    if not block_sizes:
        raise InputError(f"`max_threads_per_block >= {MIN_BLOCK_SIZE}` must hold, but got {top} (gpu {gpu.id!r})")
    checks = ("inline", "separate", "none") if allow_no_bounds_check else ("inline", "separate")
    return SearchSpace(
        block_sizes=block_sizes,
        prefetch_kinds=tuple(prefetch_kinds),
        pinned_row_fractions=pinned_fraction_grid(max_pinned_row_fraction(workload, gpu)),
        bounds_checks=checks,
    )


def space_from_mapping(doc: Mapping[str, Any], origin: str = "search space") -> SearchSpace:
    """A :class:`SearchSpace` from a parsed file: keys are its field names, values lists."""
    fields = SearchSpace.fields()
    unknown = sorted(set(doc) - set(fields))
    if unknown:
        raise InputError(f"{origin}: unknown keys {unknown}; valid keys: {', '.join(fields)}")
    kw: dict[str, Any] = {}
    for k, v in doc.items():
        if not isinstance(v, list):
            raise InputError(f"{origin}: `{k}` must be a list of values, but got {v!r}")
        kw[k] = tuple(v)
    try:
        return SearchSpace(**kw)
    except InputError as exc:
        raise InputError(f"{origin}: {exc}") from None


def load_space(path: str | os.PathLike[str]) -> SearchSpace:
    """Load a search space TOML file (keys: :class:`SearchSpace` field names; absent keys
    take the class defaults, not :func:`build_space`'s GPU-derived ones)."""
    p = Path(path)
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read search space file {str(p)!r}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"search space file {str(p)!r} is not valid TOML: {exc}") from None
    return space_from_mapping(doc, f"search space {str(p)!r}")


def check_space(space: SearchSpace, workload: Workload, gpu: GPUSpec) -> None:
    """Raise :class:`InputError` where ``space`` exceeds what ``gpu`` allows for ``workload``."""
    if space.block_sizes[-1] > gpu.max_threads_per_block:
        raise InputError(
            f"`block_size <= max_threads_per_block` must hold, but got block_size={space.block_sizes[-1]} "
            f"(gpu {gpu.id!r} allows {gpu.max_threads_per_block})"
        )
    top = max_pinned_row_fraction(workload, gpu)
    if space.pinned_row_fractions[-1] > top + 1e-12:
        raise InputError(
            f"pinned bytes must fit the persisting-L2 maximum ({gpu.persisting_l2_max_bytes} B on {gpu.id!r}), so "
            f"`pinned_row_fraction <= {top:.6g}` must hold for this workload's largest table, but got "
            f"{space.pinned_row_fractions[-1]:g}"
        )


def grid_arrays(space: SearchSpace, configs: Sequence[KernelConfig]) -> dict[str, np.ndarray[Any, Any]]:
    """Column arrays of ``configs`` (one per field), for reports and plots."""
    return {name: np.array([getattr(c, name) for c in configs]) for name, _ in space.items()}
