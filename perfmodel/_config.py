"""Workloads and kernel configurations: frozen, keyword-only, validated; and their TOML files.

The file formats, keys, defaults and meanings are CONTRACT.md's. Absent kernel keys take the
values of PyTorch's kernel as shipped (the baseline a search reports speedups against).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from perfmodel._errors import InputError, check_float, check_int, choices_text
from perfmodel._files import check_input_file, read_toml

__all__ = [
    "BOUNDS_CHECKS",
    "DTYPES",
    "FIXED_PREFETCH_VARIANTS",
    "INDEX_KINDS",
    "MODELLED_VARIANTS",
    "PIN_METHODS",
    "POOLING_DISTS",
    "PREFETCH_KINDS",
    "TUNABLE_VARIANTS",
    "VARIANTS",
    "IndexDistribution",
    "KernelConfig",
    "Table",
    "Workload",
    "check_modelled",
    "kernel_config_from_mapping",
    "load_kernel_config",
    "load_workload",
    "workload_from_mapping",
]

VARIANTS = ("pytorch", "warp", "micro24-combined", "tbe", "pytorch-current")
#: variants the model and the simulator predict: all, from their compiled kernels' profiles
MODELLED_VARIANTS = VARIANTS
#: variants whose structure fixes how rows are fetched (their own pair loads, FBGEMM's shuffle
#: loop, PyTorch's kernel as shipped): they take no other prefetch
FIXED_PREFETCH_VARIANTS = ("micro24-combined", "tbe", "pytorch-current")
#: variants whose prefetch is a free parameter (the search space's product over prefetch
#: distances applies to these; the replicas are predicted but not tuned by the search yet)
TUNABLE_VARIANTS = tuple(v for v in MODELLED_VARIANTS if v not in FIXED_PREFETCH_VARIANTS)
PIN_METHODS = ("access-policy-window", "evict-last-prefetch")
BOUNDS_CHECKS = ("inline", "separate", "none")
PREFETCH_KINDS = ("register", "l2-hint")
DTYPES = {"float32": 4, "float16": 2}
INDEX_KINDS = ("uniform", "zipf", "trace")
POOLING_DISTS = ("fixed", "uniform", "poisson")
#: smallest per-kernel register cap ptxas accepts (FACTS.md section 5)
MIN_REGISTER_CAP = 24
MAX_PREFETCH_DISTANCE = 16
#: the largest table dim (columns per row) a workload may have
MAX_DIM = 65536


def _set_int(obj: Any, attr: str, name: str, min_val: int, max_val: int | None = None) -> None:
    """Check a frozen dataclass's integer field and store it as a Python int."""
    object.__setattr__(obj, attr, check_int(getattr(obj, attr), name, min_val=min_val, max_val=max_val))


def _choice(name: str, value: Any, choices: Sequence[str]) -> str:
    if value not in choices:
        raise InputError(f"unknown {name} {value!r}; valid choices: {choices_text(list(choices))}")
    return str(value)


@dataclass(frozen=True, kw_only=True)
class KernelConfig:
    """An embedding-bag kernel configuration (CONTRACT.md, kernel configuration file).

    ``register_cap=0`` means no cap. Defaults are PyTorch's kernel as shipped.
    """

    variant: str = "pytorch"
    block_size: int = 256
    register_cap: int = 0
    prefetch_distance: int = 0
    pinned_row_fraction: float = 0.0
    pin_method: str = "access-policy-window"
    bounds_check: str = "inline"
    #: how prefetched rows are held: ``register`` (a register ring) or ``l2-hint``
    #: (``prefetch.global.L2`` hints, no registers)
    prefetch_kind: str = "register"
    #: what the vectorized model reads of a configuration, set once per object by
    #: ``__post_init__`` (not a field: no key of the file format): the compile code (the
    #: fields that change the compiled kernel, numbered one-to-one by a mixed radix over their
    #: validated ranges, so a batch groups configurations by sorting integers instead of
    #: hashing fields), the compile key, block size and pinned fraction
    _model_row: ClassVar[tuple[int, tuple[Any, ...], int, float]]

    def __post_init__(self) -> None:
        _choice("variant", self.variant, VARIANTS)
        _set_int(self, "block_size", "block_size", 32, 1024)
        if self.block_size % 32:
            raise InputError(f"`block_size` must be a multiple of 32, but got block_size={self.block_size}")
        _set_int(self, "register_cap", "register_cap", 0, 255)
        if 0 < self.register_cap < MIN_REGISTER_CAP:
            raise InputError(
                f"`register_cap == 0 or {MIN_REGISTER_CAP} <= register_cap <= 255` must hold (ptxas accepts no "
                f"smaller cap), but got register_cap={self.register_cap}"
            )
        _set_int(self, "prefetch_distance", "prefetch_distance", 0, MAX_PREFETCH_DISTANCE)
        if self.variant in FIXED_PREFETCH_VARIANTS and self.prefetch_distance:
            raise InputError(
                f"`prefetch_distance == 0` must hold for variant {self.variant!r} (its own structure fixes how rows "
                f"are fetched), but got prefetch_distance={self.prefetch_distance}"
            )
        object.__setattr__(
            self, "pinned_row_fraction", check_float(self.pinned_row_fraction, "pinned_row_fraction", min_val=0.0, max_val=1.0)
        )
        _choice("pin_method", self.pin_method, PIN_METHODS)
        _choice("bounds_check", self.bounds_check, BOUNDS_CHECKS)
        _choice("prefetch_kind", self.prefetch_kind, PREFETCH_KINDS)
        object.__setattr__(self, "_model_row", self._compile_row())

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> KernelConfig:
        return dataclasses.replace(self, **changes)

    def _compile_row(self) -> tuple[int, tuple[Any, ...], int, float]:
        """(compile code, compile key, block size, pinned fraction): see ``_model_row``."""
        key = (self.variant, self.register_cap, self.prefetch_distance, self.prefetch_kind, self.bounds_check,
               self.pin_method)
        code = PIN_METHODS.index(self.pin_method)
        code = code * len(BOUNDS_CHECKS) + BOUNDS_CHECKS.index(self.bounds_check)
        code = code * len(PREFETCH_KINDS) + PREFETCH_KINDS.index(self.prefetch_kind)
        code = code * (MAX_PREFETCH_DISTANCE + 1) + self.prefetch_distance
        code = code * 256 + self.register_cap
        code = code * len(VARIANTS) + VARIANTS.index(self.variant)
        return code, key, self.block_size, self.pinned_row_fraction


def check_modelled(kernel: KernelConfig) -> KernelConfig:
    """``kernel`` if the model and the simulator cover its variant, else InputError naming them."""
    if kernel.variant not in MODELLED_VARIANTS:
        raise InputError(
            f"variant {kernel.variant!r} runs (kernels.embedding_bag_cpu/gpu) and has a compiled profile "
            f"(recperf resources), but the model does not predict it yet; predicted variants: "
            f"{choices_text(list(MODELLED_VARIANTS))}"
        )
    return kernel


@dataclass(frozen=True, kw_only=True)
class IndexDistribution:
    """How a table's lookups pick rows: ``uniform``, ``zipf`` (``alpha``) or a ``trace`` file."""

    kind: str = "uniform"
    alpha: float = 1.05
    #: trace file (absolute after loading a workload file); text one index per line, or .npy
    path: str | None = None
    #: seed for sampled distributions (uniform/zipf) where a sample is needed
    seed: int = 0
    #: for Meta ``dlrm_datasets`` files (.pt): which table of the file to read
    table: int = 0

    def __post_init__(self) -> None:
        _choice("indices.kind", self.kind, INDEX_KINDS)
        object.__setattr__(self, "alpha", check_float(self.alpha, "indices.alpha", min_val=0.0, max_val=10.0, min_open=True))
        _set_int(self, "seed", "indices.seed", 0)
        _set_int(self, "table", "indices.table", 0)
        if self.kind == "trace":
            if not isinstance(self.path, str) or not self.path:
                raise InputError("indices.kind = \"trace\" needs `indices.path`, a trace file, but got none")
        elif self.path is not None:
            raise InputError(f"`indices.path` is only for kind = \"trace\", but got kind={self.kind!r}")


@dataclass(frozen=True, kw_only=True)
class Table:
    """``count`` identical embedding tables of ``rows`` x ``dim`` of ``dtype``."""

    rows: int
    dim: int
    dtype: str = "float32"
    #: fixed lookups per bag; or ``pooling_mean`` with ``pooling_dist``
    pooling: int | None = None
    pooling_mean: float | None = None
    pooling_dist: str = "fixed"
    count: int = 1
    indices: IndexDistribution = field(default_factory=IndexDistribution)

    def __post_init__(self) -> None:
        _set_int(self, "rows", "rows", 1)
        _set_int(self, "dim", "dim", 1, MAX_DIM)
        _choice("dtype", self.dtype, list(DTYPES))
        _set_int(self, "count", "count", 1)
        _choice("pooling_dist", self.pooling_dist, POOLING_DISTS)
        if self.pooling is None and self.pooling_mean is None:
            raise InputError("a table needs `pooling` (lookups per bag) or `pooling_mean`, but got neither")
        if self.pooling is not None and self.pooling_mean is not None:
            raise InputError(
                f"give `pooling` or `pooling_mean`, not both, but got pooling={self.pooling}, pooling_mean={self.pooling_mean}"
            )
        if self.pooling is not None:
            _set_int(self, "pooling", "pooling", 1)
            if self.pooling_dist != "fixed":
                raise InputError(f"`pooling` is fixed; use `pooling_mean` with pooling_dist={self.pooling_dist!r}")
        else:
            object.__setattr__(self, "pooling_mean", check_float(self.pooling_mean, "pooling_mean", min_val=0.0, min_open=True))
        if not isinstance(self.indices, IndexDistribution):
            raise InputError(f"`indices` must be an IndexDistribution, but got {self.indices!r}")

    @property
    def row_bytes(self) -> int:
        return self.dim * DTYPES[self.dtype]

    @property
    def mean_pooling(self) -> float:
        """Mean lookups per bag."""
        return float(self.pooling) if self.pooling is not None else float(self.pooling_mean or 0.0)

    @property
    def table_bytes(self) -> int:
        return self.rows * self.row_bytes


@dataclass(frozen=True, kw_only=True)
class Workload:
    """The embedding stage: ``batch_size`` bags per kernel call over ``tables``."""

    batch_size: int
    tables: tuple[Table, ...]

    def __post_init__(self) -> None:
        _set_int(self, "batch_size", "batch_size", 1)
        tables = tuple(self.tables)
        if not tables:
            raise InputError("a workload needs at least one table ([[tables]]), but got none")
        for t in tables:
            if not isinstance(t, Table):
                raise InputError(f"`tables` must hold Table objects, but got {t!r}")
        object.__setattr__(self, "tables", tables)

    @property
    def table_calls(self) -> int:
        """Lookup kernel launches per call of the stage (one per table)."""
        return sum(t.count for t in self.tables)


# ---- files ---------------------------------------------------------------------------

_KERNEL_KEYS = {f.name for f in dataclasses.fields(KernelConfig)}
_TABLE_KEYS = {f.name for f in dataclasses.fields(Table)}
_INDEX_KEYS = {f.name for f in dataclasses.fields(IndexDistribution)}


def kernel_config_from_mapping(doc: Mapping[str, Any], origin: str = "kernel config") -> KernelConfig:
    unknown = sorted(set(doc) - _KERNEL_KEYS)
    if unknown:
        raise InputError(f"{origin}: unknown keys {unknown}; valid keys: {', '.join(sorted(_KERNEL_KEYS))}")
    try:
        return KernelConfig(**dict(doc))
    except InputError as exc:
        raise InputError(f"{origin}: {exc}") from None


def load_kernel_config(path: str | os.PathLike[str]) -> KernelConfig:
    """Load a kernel configuration TOML file (CONTRACT.md)."""
    return kernel_config_from_mapping(read_toml(path, "kernel config"), f"kernel config {str(path)!r}")


def workload_from_mapping(doc: Mapping[str, Any], base_dir: str | os.PathLike[str] = ".", origin: str = "workload") -> Workload:
    """Build a Workload from a parsed file; trace paths resolve against ``base_dir``."""
    unknown = sorted(set(doc) - {"batch_size", "tables", "name", "description"})
    if unknown:
        raise InputError(f"{origin}: unknown top-level keys {unknown}; valid: batch_size, tables, name, description")
    if "batch_size" not in doc:
        raise InputError(f"{origin}: `batch_size` is required")
    raw_tables = doc.get("tables")
    if not isinstance(raw_tables, list) or not raw_tables:
        raise InputError(f"{origin}: at least one [[tables]] entry is required")
    tables = []
    for i, t in enumerate(raw_tables):
        where = f"{origin}: tables[{i}]"
        if not isinstance(t, Mapping):
            raise InputError(f"{where} must be a table, but got {t!r}")
        unknown = sorted(set(t) - _TABLE_KEYS)
        if unknown:
            raise InputError(f"{where}: unknown keys {unknown}; valid keys: {', '.join(sorted(_TABLE_KEYS))}")
        kw = dict(t)
        idx = kw.pop("indices", {"kind": "uniform"})
        if not isinstance(idx, Mapping):
            raise InputError(f"{where}.indices must be a table, but got {idx!r}")
        bad = sorted(set(idx) - _INDEX_KEYS)
        if bad:
            raise InputError(f"{where}.indices: unknown keys {bad}; valid keys: {', '.join(sorted(_INDEX_KEYS))}")
        idx = dict(idx)
        if idx.get("kind") == "trace" and isinstance(idx.get("path"), str):
            trace = Path(idx["path"])
            if not trace.is_absolute():
                trace = Path(base_dir) / trace
            idx["path"] = str(trace.resolve())
            try:
                check_input_file(trace, "trace")
            except InputError as exc:
                raise InputError(f"{where}.indices.path: {exc}") from None
        try:
            tables.append(Table(indices=IndexDistribution(**idx), **kw))
        except InputError as exc:
            raise InputError(f"{where}: {exc}") from None
        except TypeError as exc:
            raise InputError(f"{where}: {exc}") from None
    try:
        return Workload(batch_size=doc["batch_size"], tables=tuple(tables))
    except InputError as exc:
        raise InputError(f"{origin}: {exc}") from None


def load_workload(path: str | os.PathLike[str]) -> Workload:
    """Load a workload TOML file (CONTRACT.md); trace paths are relative to the file."""
    doc = read_toml(path, "workload")
    return workload_from_mapping(doc, Path(path).resolve().parent, f"workload {str(path)!r}")
