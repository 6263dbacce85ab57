"""Compiler resource usage of the embedding-bag lookup kernels, from the shipped table.

Registers per thread drive occupancy, so they must come from NVIDIA's compiler, not from a
guess. ``kernels`` compiles the CUDA sources offline (NVRTC from PyPI, or nvcc) and
``scripts/build_resource_table.py`` records the figures of every configuration the search
space can produce in ``perfmodel/data/resources/`` with one pinned NVRTC release, so a
machine with no compiler gets the same exact figures. ``perfmodel`` only reads that table; it
never imports ``kernels``.

Table keys (what changes the compiled lookup kernel):

- ``variant``, ``register_cap`` (0 = no cap);
- prefetch: ``pd0`` (none), ``ring<d>`` (``prefetch_kind="register"``: a ring of d rows in
  registers, d a compile-time constant) or ``l2hint`` (``prefetch_kind="l2-hint"``: the hint
  distance is a kernel argument, so one kernel serves every distance);
- ``bounds_check``: ``inline`` or ``unchecked`` (``separate`` and ``none`` compile the same
  lookup kernel; ``separate`` adds a validation pass, a different kernel);
- table ``dtype`` (float32/float16) and index dtype (int64/int32).

Not keys: block size (caps are per kernel, ``__maxnreg__``), pooling mode and per-sample
weights (runtime arguments, as in PyTorch), the pinning method (``evict-last-prefetch`` is a
separate pass; ``access-policy-window`` remaps indices in a separate pass), and the ``warp``
variant's vector width (the table holds the widest, 16-byte loads, which every dim that is a
multiple of 16 bytes uses).

Format 2 (issue 9) adds a kernel profile per entry (:class:`perfmodel.KernelProfile`: row
loads in flight, instructions and global loads per lookup, spill operations, the index-to-row
chain, read from the disassembly of the same cubin): ``profiles`` lists the distinct profiles
and each entry's sixth column is its profile's position. The ``tbe`` variant is tabled for
rows of up to 128 elements (one 4-element vector per lane, FBGEMM's kMaxVecsPerThread = 1).

Register caps: 0 (none), every occupancy step 24, 32, ..., 128, the seed paper's 42, and 255,
each compiled and stored: a cap above the uncapped kernel's count still changes ptxas's
allocation (on sm_90 a warp kernel uses 48 registers uncapped and 62 under a cap of 255), so no
cap is inferred from another; a cap outside the list returns None.
"""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from perfmodel._config import DTYPES, KernelConfig
from perfmodel._errors import InputError, check_int, choices_text
from perfmodel._profile import KernelProfile

__all__ = [
    "INDEX_DTYPES",
    "RESOURCE_TABLE_PATH",
    "ResourceTable",
    "ResourceUsage",
    "check_arch",
    "kernel_profile",
    "kernel_resources",
    "load_resource_table",
    "resource_key",
]

#: the shipped table (gzip-compressed JSON), built by scripts/build_resource_table.py
RESOURCE_TABLE_PATH = Path(__file__).resolve().parent / "data" / "resources" / "resource_table.json.gz"
INDEX_DTYPES = ("int64", "int32")
_ARCH_RE = re.compile(r"^sm_[0-9]{2,3}a?$")
#: the figures each table entry holds, in this order
COLUMNS = ("registers", "spill_store_bytes", "spill_load_bytes", "stack_bytes", "shared_mem_bytes")


@dataclass(frozen=True, kw_only=True)
class ResourceUsage:
    """What the compiler reports for one kernel: per thread, except shared memory (per block)."""

    registers: int
    spill_store_bytes: int = 0
    spill_load_bytes: int = 0
    #: per-thread stack frame (local memory: spill slots and local arrays), bytes
    stack_bytes: int = 0
    #: static shared memory per block, bytes
    shared_mem_bytes: int = 0
    #: compiler name and version the figures come from, e.g. "nvrtc 13.5 (nvidia-cuda-nvrtc 13.5.37)"
    compiler: str = ""
    #: where the figures come from: "table", "compiled" or "cache"
    source: str = "table"

    def __post_init__(self) -> None:
        for name in COLUMNS:
            object.__setattr__(self, name, check_int(getattr(self, name), name, min_val=0))
        check_int(self.registers, "registers", min_val=1, max_val=255)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_arch(arch: str) -> str:
    """``arch`` if it names an architecture like ``sm_80``, else InputError."""
    if not isinstance(arch, str) or not _ARCH_RE.match(arch):
        raise InputError(f"an architecture name like 'sm_80' or 'sm_90' is required, but got arch={arch!r}")
    return arch


def _check_dtypes(dtype: str, index_dtype: str) -> None:
    if dtype not in DTYPES:
        raise InputError(f"unknown dtype {dtype!r}; valid choices: {choices_text(list(DTYPES))}")
    if index_dtype not in INDEX_DTYPES:
        raise InputError(f"unknown index dtype {index_dtype!r}; valid choices: {choices_text(INDEX_DTYPES)}")


def resource_key(kernel: KernelConfig, *, dtype: str = "float32", index_dtype: str = "int64") -> str:
    """The table key of ``kernel``'s lookup kernel (see the module docstring for what is a key)."""
    _check_dtypes(dtype, index_dtype)
    pd = kernel.prefetch_distance
    if pd == 0:
        prefetch = "pd0"
    elif kernel.prefetch_kind == "register":
        prefetch = f"ring{pd}"
    else:  # the hint distance is a kernel argument: one kernel for every distance
        prefetch = "l2hint"
    bounds = "inline" if kernel.bounds_check == "inline" else "unchecked"
    return f"{kernel.variant}/cap{kernel.register_cap}/{prefetch}/{bounds}/{dtype}/{index_dtype}"


@dataclass(frozen=True, kw_only=True)
class ResourceTable:
    """The shipped table: figures per architecture and key, from one pinned compiler."""

    compiler: str
    entries: dict[str, dict[str, tuple[int, ...]]]
    register_caps: tuple[int, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)
    #: distinct profile figures (format 2); an entry's sixth column indexes this list
    profiles: tuple[dict[str, Any], ...] = ()

    @property
    def archs(self) -> tuple[str, ...]:
        return tuple(sorted(self.entries))

    def __len__(self) -> int:
        return sum(len(v) for v in self.entries.values())

    def lookup(
        self, kernel: KernelConfig, arch: str, *, dtype: str = "float32", index_dtype: str = "int64"
    ) -> ResourceUsage | None:
        """The figures for ``kernel`` on ``arch``, or None if the table does not hold them."""
        row = self._row(kernel, arch, dtype, index_dtype)
        if row is None:
            return None
        return ResourceUsage(**dict(zip(COLUMNS, row[: len(COLUMNS)], strict=True)), compiler=self.compiler,
                             source="table")

    def profile(
        self, kernel: KernelConfig, arch: str, *, dtype: str = "float32", index_dtype: str = "int64"
    ) -> KernelProfile | None:
        """The kernel profile for ``kernel`` on ``arch``, or None if the table does not hold it."""
        row = self._row(kernel, arch, dtype, index_dtype)
        if row is None or len(row) <= len(COLUMNS) or row[len(COLUMNS)] < 0:
            return None
        return _profile_at(self, row[len(COLUMNS)])

    def _row(self, kernel: KernelConfig, arch: str, dtype: str, index_dtype: str) -> tuple[int, ...] | None:
        per_arch = self.entries.get(check_arch(arch))
        if per_arch is None:
            return None
        return per_arch.get(resource_key(kernel, dtype=dtype, index_dtype=index_dtype))


@lru_cache(maxsize=4096)
def _profile_cached(table_id: int, position: int, compiler: str, figures_json: str) -> KernelProfile:
    return KernelProfile.from_figures(json.loads(figures_json), source="table", compiler=compiler)


def _profile_at(table: ResourceTable, position: int) -> KernelProfile:
    return _profile_cached(id(table), position, table.compiler,
                           json.dumps(table.profiles[position], sort_keys=True))


def table_from_document(doc: dict[str, Any]) -> ResourceTable:
    """Build a ResourceTable from the parsed table file (format 1, or 2 with profiles)."""
    if doc.get("format") not in (1, 2):
        raise InputError(f"resource table format 1 or 2 is required, but got format={doc.get('format')!r}")
    if list(doc.get("columns", [])) != list(COLUMNS):
        raise InputError(f"resource table columns must be {list(COLUMNS)}, but got {doc.get('columns')!r}")
    entries = {
        arch: {key: tuple(int(v) for v in row) for key, row in rows.items()}
        for arch, rows in doc["entries"].items()
    }
    meta = {k: v for k, v in doc.items() if k not in ("entries", "columns", "format", "profiles")}
    return ResourceTable(
        compiler=str(doc["compiler"]),
        entries=entries,
        register_caps=tuple(int(c) for c in doc.get("register_caps", ())),
        meta=meta,
        profiles=tuple(dict(p) for p in doc.get("profiles", ())),
    )


@lru_cache(maxsize=4)
def load_resource_table(path: str | None = None) -> ResourceTable:
    """Load the shipped table (or the table at ``path``); cached."""
    p = Path(path) if path is not None else RESOURCE_TABLE_PATH
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read resource table {str(p)!r}: {exc.strerror}") from None
    text = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    return table_from_document(json.loads(text))


@lru_cache(maxsize=65536)
def kernel_resources(
    kernel: KernelConfig, arch: str, *, dtype: str = "float32", index_dtype: str = "int64"
) -> ResourceUsage | None:
    """Registers, spills, stack and static shared memory of ``kernel``'s lookup kernel on ``arch``.

    From the shipped table (one pinned NVRTC release, recorded in ``compiler``); None where the
    table does not hold the configuration (an architecture other than sm_80/sm_90, or a register
    cap outside 0, 24, 32, ..., 128, 42, 255). Cached: cheap enough for a search's hot path.
    """
    table = _checked_table(kernel, arch, dtype, index_dtype)
    return None if table is None else table.lookup(kernel, arch, dtype=dtype, index_dtype=index_dtype)


@lru_cache(maxsize=65536)
def kernel_profile(
    kernel: KernelConfig, arch: str, *, dtype: str = "float32", index_dtype: str = "int64"
) -> KernelProfile | None:
    """The compiled lookup loop's profile for ``kernel`` on ``arch`` from the shipped table (one
    pinned NVRTC release; ``profile.compiler`` names it), or None where the table does not hold
    the configuration (then ``kernels.kernel_profile`` compiles it where a compiler is installed).
    """
    table = _checked_table(kernel, arch, dtype, index_dtype)
    return None if table is None else table.profile(kernel, arch, dtype=dtype, index_dtype=index_dtype)


def _checked_table(kernel: Any, arch: str, dtype: str, index_dtype: str) -> ResourceTable | None:
    """The shipped table (None where it is not installed), after the lookups' argument rules."""
    if not isinstance(kernel, KernelConfig):
        raise InputError(f"`kernel` must be a KernelConfig, but got {type(kernel).__name__}")
    check_arch(arch)
    _check_dtypes(dtype, index_dtype)
    return load_resource_table() if RESOURCE_TABLE_PATH.is_file() else None
