"""GPU specifications: the frozen :class:`GPUSpec` type, the built-in catalogue and spec files.

A spec file is TOML. Two top-level strings, ``id`` and ``name``; then one table per field
under ``[spec]``, each ``{ value = ..., source = "..." }``. A value with no public
measurement carries ``estimate = "basis of the estimate"`` as well, so that it is never
mistaken for a measurement and can be replaced by calibration (``recperf`` validation).

Units are SI and in the field names (``_bytes``, ``_hz``, ``_bytes_per_s``); latencies are
in SM clock cycles (``_cycles``), as the pointer-chase microbenchmarks measure them, and
:meth:`GPUSpec.latency_s` converts them at the spec's clock.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache, lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from perfmodel._errors import InputError, check_float, check_int, choices_text
from perfmodel._files import parse_toml, read_toml

if sys.version_info >= (3, 11):
    pass
else:  # pragma: no cover - exercised on Python 3.10 only
    pass

__all__ = ["SUPPORTED_COMPUTE_CAPABILITIES", "GPUSpec", "get_gpu", "gpu_ids", "load_gpu_spec"]

#: Compute capabilities whose occupancy rules :func:`perfmodel.occupancy` implements.
SUPPORTED_COMPUTE_CAPABILITIES = ((8, 0), (8, 6), (8, 9), (9, 0))


@dataclass(frozen=True, kw_only=True)
class GPUSpec:
    """One GPU's numbers, everything the model needs, each with its source.

    All sizes in bytes, clocks in Hz, bandwidths in bytes per second, latencies in SM
    clock cycles (unloaded, single-warp pointer chase).
    """

    id: str
    name: str
    compute_capability_major: int
    compute_capability_minor: int
    sm_count: int
    sm_clock_hz: float
    warp_size: int
    max_threads_per_block: int
    max_threads_per_sm: int
    max_blocks_per_sm: int
    registers_per_sm: int
    registers_per_block: int
    max_registers_per_thread: int
    register_allocation_unit: int
    sub_partitions_per_sm: int
    shared_mem_per_sm_bytes: int
    shared_mem_per_block_bytes: int
    shared_mem_per_block_optin_bytes: int
    reserved_shared_mem_per_block_bytes: int
    shared_mem_allocation_unit_bytes: int
    l1_cache_and_shared_mem_per_sm_bytes: int
    l2_size_bytes: int
    l2_partitions: int
    l2_line_bytes: int
    l2_sector_bytes: int
    persisting_l2_max_bytes: int
    dram_size_bytes: int
    dram_bandwidth_bytes_per_s: float
    l2_bandwidth_bytes_per_s: float
    l1_latency_cycles: float
    l2_near_latency_cycles: float
    l2_far_latency_cycles: float
    dram_latency_cycles: float
    #: field name -> where the number comes from (not part of equality or hashing).
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False, repr=False)
    #: field name -> basis of an estimate, for numbers with no public measurement.
    estimates: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False, repr=False)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            rule = _RULES.get(f.name)
            if rule is None:
                continue
            value = getattr(self, f.name)
            _check_number(f.name, value, *rule)
        cc = (self.compute_capability_major, self.compute_capability_minor)
        if cc not in SUPPORTED_COMPUTE_CAPABILITIES:
            raise InputError(
                f"compute capability must be one of {', '.join(f'{a}.{b}' for a, b in SUPPORTED_COMPUTE_CAPABILITIES)}, "
                f"but got {cc[0]}.{cc[1]} (gpu {self.id!r})"
            )
        _require(self.warp_size == 32, f"`warp_size == 32` must hold, but got warp_size={self.warp_size}")
        _require(
            self.max_threads_per_block <= self.max_threads_per_sm,
            "`max_threads_per_block <= max_threads_per_sm` must hold, but got "
            f"({self.max_threads_per_block}, {self.max_threads_per_sm})",
        )
        _require(
            self.shared_mem_per_block_bytes <= self.shared_mem_per_block_optin_bytes <= self.shared_mem_per_sm_bytes,
            "`shared_mem_per_block_bytes <= shared_mem_per_block_optin_bytes <= shared_mem_per_sm_bytes` must "
            f"hold, but got ({self.shared_mem_per_block_bytes}, {self.shared_mem_per_block_optin_bytes}, "
            f"{self.shared_mem_per_sm_bytes})",
        )
        _require(
            self.persisting_l2_max_bytes <= self.l2_size_bytes,
            "`persisting_l2_max_bytes <= l2_size_bytes` must hold, but got "
            f"({self.persisting_l2_max_bytes}, {self.l2_size_bytes})",
        )
        _require(
            self.l2_line_bytes % self.l2_sector_bytes == 0,
            f"`l2_line_bytes` must be a multiple of `l2_sector_bytes`, but got ({self.l2_line_bytes}, {self.l2_sector_bytes})",
        )
        _require(
            self.l1_latency_cycles < self.l2_near_latency_cycles <= self.l2_far_latency_cycles,
            "`l1_latency_cycles < l2_near_latency_cycles <= l2_far_latency_cycles` must hold, but got "
            f"({self.l1_latency_cycles}, {self.l2_near_latency_cycles}, {self.l2_far_latency_cycles})",
        )
        _require(
            self.l2_near_latency_cycles < self.dram_latency_cycles,
            "`l2_near_latency_cycles < dram_latency_cycles` must hold, but got "
            f"({self.l2_near_latency_cycles}, {self.dram_latency_cycles})",
        )

    # ---- derived quantities -------------------------------------------------------------
    @property
    def compute_capability(self) -> tuple[int, int]:
        return (self.compute_capability_major, self.compute_capability_minor)

    @property
    def max_warps_per_sm(self) -> int:
        return self.max_threads_per_sm // self.warp_size

    @property
    def arch(self) -> str:
        """The nvcc/NVRTC architecture name, e.g. ``sm_80``."""
        return f"sm_{self.compute_capability_major}{self.compute_capability_minor}"

    def latency_s(self, cycles: float) -> float:
        """Convert SM clock cycles to seconds at this GPU's clock."""
        return cycles / self.sm_clock_hz

    def source(self, name: str) -> str:
        """Where the value of field ``name`` comes from ('' if not recorded)."""
        return self.sources.get(name, "")

    def to_dict(self) -> dict[str, Any]:
        """Plain values of every field (sources and estimates left out)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("sources", "estimates")}


# kind, lowest and highest allowed value; the highest are far past any GPU (a thousand times
# or more a current part's), there so that a typo or a 1e308 is refused with its field's name
# instead of overflowing the model's arithmetic
_RULES: dict[str, tuple[str, float, float]] = {
    "compute_capability_major": ("int", 1, 99),
    "compute_capability_minor": ("int", 0, 9),
    "sm_count": ("int", 1, 10_000),
    "sm_clock_hz": ("float", 1e6, 1e11),
    "warp_size": ("int", 1, 1024),
    "max_threads_per_block": ("int", 32, 1 << 20),
    "max_threads_per_sm": ("int", 32, 1 << 20),
    "max_blocks_per_sm": ("int", 1, 1 << 12),
    "registers_per_sm": ("int", 1, 1 << 24),
    "registers_per_block": ("int", 1, 1 << 24),
    "max_registers_per_thread": ("int", 1, 1 << 12),
    "register_allocation_unit": ("int", 1, 1 << 16),
    "sub_partitions_per_sm": ("int", 1, 64),
    "shared_mem_per_sm_bytes": ("int", 1, 1 << 30),
    "shared_mem_per_block_bytes": ("int", 1, 1 << 30),
    "shared_mem_per_block_optin_bytes": ("int", 1, 1 << 30),
    "reserved_shared_mem_per_block_bytes": ("int", 0, 1 << 30),
    "shared_mem_allocation_unit_bytes": ("int", 1, 1 << 20),
    "l1_cache_and_shared_mem_per_sm_bytes": ("int", 1, 1 << 30),
    "l2_size_bytes": ("int", 1, 1 << 40),
    "l2_partitions": ("int", 1, 1024),
    "l2_line_bytes": ("int", 1, 1 << 16),
    "l2_sector_bytes": ("int", 1, 1 << 16),
    "persisting_l2_max_bytes": ("int", 0, 1 << 40),
    "dram_size_bytes": ("int", 1, 1 << 50),
    "dram_bandwidth_bytes_per_s": ("float", 1e9, 1e16),
    "l2_bandwidth_bytes_per_s": ("float", 1e9, 1e17),
    "l1_latency_cycles": ("float", 1, 1e6),
    "l2_near_latency_cycles": ("float", 1, 1e6),
    "l2_far_latency_cycles": ("float", 1, 1e6),
    "dram_latency_cycles": ("float", 1, 1e6),
}

#: The fields a spec file's ``[spec]`` table must give.
SPEC_FIELDS: tuple[str, ...] = tuple(_RULES)


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise InputError(message)


def _check_number(name: str, value: Any, kind: str, low: float, high: float) -> None:
    check_float(value, name, min_val=low, max_val=high)
    if kind == "int":
        check_int(value, name)


def _parse_spec(doc: Mapping[str, Any], origin: str) -> GPUSpec:
    """Build a GPUSpec from a parsed spec file, checking every field."""
    for key in ("id", "name"):
        if not isinstance(doc.get(key), str) or not doc[key]:
            raise InputError(f"{origin}: top-level `{key}` must be a non-empty string, but got {doc.get(key)!r}")
    extra_top = sorted(set(doc) - {"id", "name", "spec", "notes"})
    if extra_top:
        raise InputError(f"{origin}: unknown top-level keys {extra_top}; allowed: id, name, notes, [spec]")
    spec = doc.get("spec")
    if not isinstance(spec, Mapping):
        raise InputError(f"{origin}: a `[spec]` table is required")
    missing = [f for f in SPEC_FIELDS if f not in spec]
    if missing:
        raise InputError(f"{origin}: [spec] is missing fields {missing}")
    unknown = sorted(set(spec) - set(SPEC_FIELDS))
    if unknown:
        raise InputError(f"{origin}: [spec] has unknown fields {unknown}; valid fields: {', '.join(SPEC_FIELDS)}")
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    estimates: dict[str, str] = {}
    for name in SPEC_FIELDS:
        entry = spec[name]
        if not isinstance(entry, Mapping) or "value" not in entry:
            raise InputError(f"{origin}: [spec].{name} must be a table {{ value = ..., source = \"...\" }}, but got {entry!r}")
        bad_keys = sorted(set(entry) - {"value", "source", "estimate"})
        if bad_keys:
            raise InputError(f"{origin}: [spec].{name} has unknown keys {bad_keys}; allowed: value, source, estimate")
        src = entry.get("source")
        if not isinstance(src, str) or not src.strip():
            raise InputError(f"{origin}: [spec].{name} must name its `source` (a non-empty string), but got {src!r}")
        value = entry["value"]
        kind = _RULES[name][0]
        if kind == "float" and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        try:
            _check_number(name, value, *_RULES[name])
        except InputError as exc:
            raise InputError(f"{origin}: {exc}") from None
        values[name] = value
        sources[name] = src
        if "estimate" in entry:
            basis = entry["estimate"]
            if not isinstance(basis, str) or not basis.strip():
                raise InputError(f"{origin}: [spec].{name}.estimate must state its basis, but got {basis!r}")
            estimates[name] = basis
    try:
        return GPUSpec(id=doc["id"], name=doc["name"], sources=sources, estimates=estimates, **values)
    except InputError as exc:
        raise InputError(f"{origin}: {exc}") from None


def load_gpu_spec(path: str | os.PathLike[str]) -> GPUSpec:
    """Load and validate a GPU spec file (TOML; see the module docstring)."""
    p = Path(path)
    return _parse_spec(read_toml(p, "GPU spec"), f"GPU spec file {str(p)!r}")


@cache
def _catalogue() -> dict[str, GPUSpec]:
    out: dict[str, GPUSpec] = {}
    for entry in sorted(resources.files("perfmodel").joinpath("gpus").iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            doc = parse_toml(entry.read_text(encoding="utf-8"), f"built-in GPU spec {entry.name!r}")
            spec = _parse_spec(doc, f"built-in GPU spec {entry.name!r}")
            out[spec.id] = spec
    return out


def gpu_ids() -> list[str]:
    """Ids of the built-in GPUs."""
    return sorted(_catalogue())


def get_gpu(gpu: str | os.PathLike[str] | GPUSpec) -> GPUSpec:
    """A GPU by built-in id (``a100-80gb``), by spec-file path, or a GPUSpec passed through."""
    if isinstance(gpu, GPUSpec):
        return gpu
    cat = _catalogue()
    key = os.fspath(gpu)
    if key in cat:
        return cat[key]
    if key.endswith(".toml") or os.sep in key or os.path.isfile(key):
        return _load_cached(os.path.abspath(key), _mtime(key))
    raise InputError(f"unknown GPU {key!r}; valid choices: {choices_text(list(cat))}, or a path to a GPU spec file (.toml)")


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return -1.0


@lru_cache(maxsize=64)
def _load_cached(path: str, mtime: float) -> GPUSpec:
    return load_gpu_spec(path)
