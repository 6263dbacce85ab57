"""Kernel profiles: what the compiled lookup loop does per lookup, read from NVIDIA's disassembly.

The model predicts the code the compiler produced, not the source's intent. A profile holds,
for one configuration's lookup kernel (variant, register cap, prefetch, bounds check, dtypes,
architecture), figures per lookup (one row of one bag, per warp) in the steady-state loop:

- ``row_loads_in_flight``: row loads issued and not yet waited for, per warp (from the
  instructions' scoreboards where the disassembly carries the control bits, else from register
  dependencies), across the loop's back edge;
- ``instructions_per_lookup``: instructions by class (``integer``, ``fp32``, ``fp16``,
  ``conversion``, ``memory``, ``shuffle``, ``control``, ``uniform``, ``other``), spill code
  included, out-of-line failure paths excluded; per-bag work of an enclosing loop that loads
  the indices for many lookups (``tbe``) is spread over those lookups, and a validation loop
  over the bag's indices (``pytorch-current``) counts once per index;
- ``global_loads_per_lookup``: ``index`` (the index array), ``row`` (table rows) and ``other``;
- ``local_ops_per_lookup``: local-memory (spill) loads and stores;
- ``index_on_row_chain``: whether a row's address waits on an index load of the same iteration
  (the per-row latency is then index load + row load);
- ``chain``: the dependency chain from an index load to the accumulation, as (opcode, latency
  class) pairs.

``kernels`` computes profiles (``kernels.kernel_profile``); the shipped resource table holds
one per configuration it holds; perfmodel only reads them (``perfmodel.kernel_profile``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from perfmodel._errors import InputError

__all__ = ["INSTRUCTION_CLASSES", "LOAD_KINDS", "PROFILE_SOURCES", "KernelProfile"]

#: instruction classes of ``instructions_per_lookup``
INSTRUCTION_CLASSES = ("integer", "fp32", "fp16", "conversion", "memory", "shuffle", "control", "uniform", "other")
LOAD_KINDS = ("index", "row", "other")
#: ``table``: the shipped table; ``compiled``: compiled now; ``cache``: compiled earlier, cached
PROFILE_SOURCES = ("table", "compiled", "cache")
#: latency classes a chain step may have
LATENCY_CLASSES = ("global", "local", "shuffle", *INSTRUCTION_CLASSES)


def _frozen_counts(name: str, value: Mapping[str, Any], keys: tuple[str, ...]) -> Mapping[str, float]:
    if not isinstance(value, Mapping):
        raise InputError(f"`{name}` must be a mapping, but got {type(value).__name__}")
    unknown = set(value) - set(keys)
    if unknown:
        raise InputError(f"`{name}` keys must be among {', '.join(keys)}, but got {sorted(unknown)}")
    out = {}
    for k in keys:
        v = value.get(k, 0.0)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise InputError(f"`{name}[{k!r}] >= 0` (a finite number) must hold, but got {v!r}")
        out[k] = float(v)
    return MappingProxyType(out)


@dataclass(frozen=True, kw_only=True, eq=False)
class KernelProfile:
    """Per-lookup figures of a compiled lookup kernel's steady-state loop (module docstring)."""

    row_loads_in_flight: int
    instructions_per_lookup: Mapping[str, float]
    global_loads_per_lookup: Mapping[str, float]
    local_ops_per_lookup: float = 0.0
    index_on_row_chain: bool = True
    chain: tuple[tuple[str, str], ...] = ()
    #: lookups one pass of the hot loop handles (the compiler's unrolling)
    lookups_per_iteration: int = 1
    #: ``scoreboard`` (the control bits) or ``registers`` (register dependencies)
    in_flight_method: str = "scoreboard"
    source: str = "table"
    compiler: str = ""
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        v = self.row_loads_in_flight
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise InputError(f"`row_loads_in_flight >= 1` (an integer) must hold, but got {v!r}")
        object.__setattr__(self, "instructions_per_lookup",
                           _frozen_counts("instructions_per_lookup", self.instructions_per_lookup, INSTRUCTION_CLASSES))
        object.__setattr__(self, "global_loads_per_lookup",
                           _frozen_counts("global_loads_per_lookup", self.global_loads_per_lookup, LOAD_KINDS))
        lo = self.local_ops_per_lookup
        if isinstance(lo, bool) or not isinstance(lo, (int, float)) or not math.isfinite(lo) or lo < 0:
            raise InputError(f"`local_ops_per_lookup >= 0` must hold, but got {lo!r}")
        object.__setattr__(self, "local_ops_per_lookup", float(lo))
        chain = tuple((str(op), str(cls)) for op, cls in self.chain)
        bad = [c for _op, c in chain if c not in LATENCY_CLASSES]
        if bad:
            raise InputError(f"chain latency classes must be among {', '.join(LATENCY_CLASSES)}, but got {bad}")
        object.__setattr__(self, "chain", chain)
        if self.source not in PROFILE_SOURCES:
            raise InputError(f"unknown profile source {self.source!r}; valid choices: {', '.join(PROFILE_SOURCES)}")
        if self.in_flight_method not in ("scoreboard", "registers"):
            raise InputError(f"`in_flight_method` must be 'scoreboard' or 'registers', but got {self.in_flight_method!r}")
        object.__setattr__(self, "meta", MappingProxyType(dict(self.meta)))

    @property
    def total_instructions_per_lookup(self) -> float:
        return float(sum(self.instructions_per_lookup.values()))

    def _key(self) -> tuple[Any, ...]:
        return (self.row_loads_in_flight, tuple(self.instructions_per_lookup.items()),
                tuple(self.global_loads_per_lookup.items()), self.local_ops_per_lookup, self.index_on_row_chain,
                self.chain, self.lookups_per_iteration, self.in_flight_method, self.source, self.compiler)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, KernelProfile) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def figures(self) -> dict[str, Any]:
        """The figures alone (what the shipped table stores; no source or compiler)."""
        return {
            "row_loads_in_flight": self.row_loads_in_flight,
            "instructions_per_lookup": {k: round(v, 4) for k, v in self.instructions_per_lookup.items()},
            "global_loads_per_lookup": {k: round(v, 4) for k, v in self.global_loads_per_lookup.items()},
            "local_ops_per_lookup": round(self.local_ops_per_lookup, 4),
            "index_on_row_chain": self.index_on_row_chain,
            "chain": [list(c) for c in self.chain],
            "lookups_per_iteration": self.lookups_per_iteration,
            "in_flight_method": self.in_flight_method,
        }

    def to_dict(self) -> dict[str, Any]:
        """CONTRACT.md v2's ``profile`` object."""
        return {**self.figures(), "instructions_per_lookup_total": round(self.total_instructions_per_lookup, 4),
                "source": self.source, "compiler": self.compiler}

    @staticmethod
    def from_figures(doc: Mapping[str, Any], *, source: str, compiler: str) -> KernelProfile:
        """Inverse of :meth:`figures`."""
        return KernelProfile(
            row_loads_in_flight=int(doc["row_loads_in_flight"]),
            instructions_per_lookup=dict(doc["instructions_per_lookup"]),
            global_loads_per_lookup=dict(doc["global_loads_per_lookup"]),
            local_ops_per_lookup=float(doc["local_ops_per_lookup"]),
            index_on_row_chain=bool(doc["index_on_row_chain"]),
            chain=tuple((str(a), str(b)) for a, b in doc["chain"]),
            lookups_per_iteration=int(doc.get("lookups_per_iteration", 1)),
            in_flight_method=str(doc.get("in_flight_method", "scoreboard")),
            source=source,
            compiler=compiler,
        )
