"""Harness semantics: a kernel-time prediction "kernel only" or "as the source timed it".

A published kernel time is whatever its source's timed region held: the GPU work, and often host
work around it (the MICRO'24 artifact records its start event on an idle stream, launches, waits
with ``cudaStreamSynchronize`` and only then records the stop event). The model predicts the GPU
work; this module adds the rest, term by term, from the ledger's ``timed_region`` and the costs in
``validation/data/published/harness.toml``.

Notation (per table call):

- ``T_k``: the model's kernel time, ``Prediction.time_s - Prediction.pin_time_s`` (the lookup
  kernel and any check pass in the same stream; it includes the model's own per-launch gap);
- ``T_p``: the model's separate pinning pass, ``Prediction.pin_time_s``;
- ``c_x``: the cost of host term ``x`` (``harness.toml``).

``as timed = T_k + [pin-pass in the region] T_p + sum over the region's host terms x of c_x``,
and ``kernel only = T_k``.

Why here and not in ``perfmodel``: the host terms describe how one measurement was taken, not
the GPU or the kernel; the model's contract (CONTRACT.md) is the stage's GPU time. The layer
needs only the model's public ``Prediction`` fields.

The module also maps "which calls were timed" onto the model's single-call workload: a source that
averages calls 1..143 of a run that walks through a trace (each call reading the next window of
indices) is predicted as the mean over a few of those windows (:class:`TimedCalls`).
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

import perfmodel
from perfmodel import InputError, check_int

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = [
    "COST_STATUSES",
    "HOST_TERMS",
    "MODEL_TERMS",
    "HarnessCost",
    "NotModelled",
    "TimedCalls",
    "TimedPrediction",
    "TimedRegion",
    "as_timed",
    "call_workload",
    "harness_costs",
    "read_trace",
]

#: terms the model itself predicts
MODEL_TERMS = ("kernel", "pin-pass")
#: host terms, each with a cost in harness.toml
HOST_TERMS = ("launch-from-idle", "host-sync-before-stop", "host-dispatch", "events-after-flush")
COST_STATUSES = ("estimate", "calibrated", "sourced", "unknown")

IntArray = npt.NDArray[np.int64]


class NotModelled(Exception):
    """A prediction that cannot be made yet; ``str(exc)`` says why."""


@dataclass(frozen=True, kw_only=True)
class TimedRegion:
    """What a source's timed region contains (``MODEL_TERMS`` and ``HOST_TERMS``)."""

    contains: tuple[str, ...] = ("kernel",)
    #: the source's lines that show it
    quote: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        known = MODEL_TERMS + HOST_TERMS
        for term in self.contains:
            if term not in known:
                raise InputError(f"unknown timed-region term {term!r}; valid terms: {', '.join(known)}")
        if "kernel" not in self.contains:
            raise InputError(f"a timed region holds the kernel, but got contains={list(self.contains)}")
        if len(set(self.contains)) != len(self.contains):
            raise InputError(f"timed-region terms must not repeat, but got contains={list(self.contains)}")

    @classmethod
    def from_mapping(cls, doc: Mapping[str, Any], origin: str) -> TimedRegion:
        unknown = sorted(set(doc) - {"contains", "quote"})
        if unknown:
            raise InputError(f"{origin}: unknown timed_region keys {unknown}; valid keys: contains, quote")
        contains = doc.get("contains", ["kernel"])
        quote = doc.get("quote", [])
        if not isinstance(contains, list) or not all(isinstance(t, str) for t in contains):
            raise InputError(f"{origin}: timed_region.contains must be a list of strings, but got {contains!r}")
        if not isinstance(quote, list) or not all(isinstance(q, str) for q in quote):
            raise InputError(f"{origin}: timed_region.quote must be a list of strings, but got {quote!r}")
        try:
            return cls(contains=tuple(contains), quote=tuple(quote))
        except InputError as exc:
            raise InputError(f"{origin}: {exc}") from None

    @property
    def host_terms(self) -> tuple[str, ...]:
        return tuple(t for t in self.contains if t in HOST_TERMS)


@dataclass(frozen=True, kw_only=True)
class HarnessCost:
    """The cost of one host term: seconds, how it is known, and on what basis."""

    term: str
    value_s: float | None
    status: str
    basis: str

    def to_dict(self) -> dict[str, Any]:
        return {"term": self.term, "value_s": self.value_s, "status": self.status, "basis": self.basis}


def default_costs_path() -> Path:
    return Path(__file__).resolve().parent / "data" / "published" / "harness.toml"


def harness_costs(path: str | os.PathLike[str] | None = None) -> dict[str, HarnessCost]:
    """The host-term costs of ``harness.toml`` (default: the shipped file)."""
    p = Path(path) if path is not None else default_costs_path()
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read harness costs {str(p)!r}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"harness costs {str(p)!r} are not valid TOML: {exc}") from None
    out: dict[str, HarnessCost] = {}
    for term, entry in doc.get("costs", {}).items():
        where = f"{p.name} [costs.{term}]"
        if term not in HOST_TERMS:
            raise InputError(f"{where}: unknown host term; valid terms: {', '.join(HOST_TERMS)}")
        status = entry.get("status")
        if status not in COST_STATUSES:
            raise InputError(f"{where}: status must be one of {', '.join(COST_STATUSES)}, but got {status!r}")
        value = entry.get("value_s")
        if status == "unknown":
            if value is not None:
                raise InputError(f"{where}: an unknown cost has no value_s, but got {value!r}")
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
            raise InputError(f"{where}: `0 <= value_s < 1` (seconds) must hold, but got value_s={value!r}")
        basis = entry.get("basis", "")
        if not isinstance(basis, str) or not basis:
            raise InputError(f"{where}: every cost names its basis (a source or the data it was fitted on)")
        out[term] = HarnessCost(term=term, value_s=None if value is None else float(value), status=status, basis=basis)
    return out


@dataclass(frozen=True, kw_only=True)
class TimedPrediction:
    """A prediction split into the terms of a timed region (seconds per table call)."""

    kernel_s: float
    pin_s: float
    #: every term of the region with its seconds (``kernel`` and ``pin-pass`` from the model)
    terms: dict[str, float] = field(default_factory=dict)

    @property
    def as_timed_s(self) -> float:
        return float(sum(self.terms.values()))

    @property
    def harness_s(self) -> float:
        return float(sum(v for k, v in self.terms.items() if k in HOST_TERMS))


def as_timed(time_s: float, pin_time_s: float, region: TimedRegion,
             costs: Mapping[str, HarnessCost]) -> TimedPrediction:
    """The model's stage time (``time_s`` with ``pin_time_s`` of it) as ``region`` timed it.

    Raises:
        NotModelled: a host term of the region has no cost (absent, or status ``unknown``).
    """
    kernel_s = float(time_s) - float(pin_time_s)
    terms = {"kernel": kernel_s}
    if "pin-pass" in region.contains:
        terms["pin-pass"] = float(pin_time_s)
    for term in region.host_terms:
        cost = costs.get(term)
        if cost is None or cost.value_s is None:
            raise NotModelled(f"the timed region holds {term!r}, which has no cost yet (harness.toml)")
        terms[term] = cost.value_s
    return TimedPrediction(kernel_s=kernel_s, pin_s=float(pin_time_s), terms=terms)


# ---- which calls were timed ---------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class TimedCalls:
    """The calls of a run that a figure averages: ``count`` calls from the 0-based ``first``.

    Call ``c`` of a run that walks through a trace reads indices ``[c n, (c + 1) n)`` of it
    (wrapping), ``n`` the indices of one call: one stream shared by all of the run's calls, as the
    MICRO'24 artifact's ``load_emb.py`` consumes its trace.
    """

    first: int
    count: int

    def __post_init__(self) -> None:
        check_int(self.first, "calls.first", min_val=0)
        check_int(self.count, "calls.count", min_val=1)

    def sample(self, n: int) -> tuple[int, ...]:
        """``n`` calls spread evenly over the timed ones, first and last included (``n = 1``: the first)."""
        if n < 1:
            raise InputError(f"`windows >= 1` must hold, but got windows={n}")
        n = min(n, self.count)
        if n == 1:
            return (self.first,)
        return tuple(self.first + round(i * (self.count - 1) / (n - 1)) for i in range(n))


def _cache_dir() -> Path:
    root = os.environ.get("RECPERF_CACHE_DIR")
    base = (Path(root) if root else Path.home() / ".cache" / "recperf") / "published"
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError:
        base = Path(tempfile.gettempdir()) / f"recperf-published-{os.getuid() if hasattr(os, 'getuid') else 0}"
        base.mkdir(parents=True, exist_ok=True)
    return base


def read_trace(path: str | os.PathLike[str]) -> IntArray:
    """A trace file's indices: text (one decimal index per line) or a 1-D ``.npy`` array."""
    p = Path(path)
    try:
        if p.suffix == ".npy":
            return np.asarray(np.load(p, allow_pickle=False), dtype=np.int64)
        return np.array(p.read_bytes().split(), dtype=np.int64)
    except OSError as exc:
        raise InputError(f"cannot read trace {str(p)!r}: {exc.strerror}") from None
    except ValueError:
        raise InputError(f"trace {str(p)!r}: every line must be one decimal integer index") from None


def cached_trace(indices: IntArray, tag: str) -> Path:
    """``indices`` as a ``.npy`` trace in the cache folder, named by its content (written once)."""
    data = np.ascontiguousarray(indices, dtype=np.int64)
    digest = hashlib.sha256(data.tobytes()).hexdigest()[:24]
    path = _cache_dir() / f"{tag}-{digest}.npy"
    if not path.is_file():
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npy")
        np.save(tmp, data)
        os.replace(tmp, path)
    return path


def _indices_per_call(table: perfmodel.Table, batch_size: int) -> int:
    if table.pooling is None:
        raise NotModelled("timed calls over a trace need a fixed pooling (lookups per bag)")
    return batch_size * table.pooling


def call_workload(workload: perfmodel.Workload, call: int) -> perfmodel.Workload:
    """``workload`` whose single call is call ``call`` of the run: every trace table is rotated by
    ``call`` calls' worth of indices (the whole trace is kept, so its hottest rows stay the same)."""
    if call == 0:
        return workload
    tables: list[perfmodel.Table] = []
    for t in workload.tables:
        if t.indices.kind != "trace" or t.indices.path is None:
            tables.append(t)
            continue
        trace = read_trace(t.indices.path)
        shift = (call * _indices_per_call(t, workload.batch_size)) % trace.size
        path = cached_trace(np.roll(trace, -shift), "window")
        tables.append(replace(t, indices=replace(t.indices, path=str(path))))
    return replace(workload, tables=tuple(tables))


def has_trace(workload: perfmodel.Workload) -> bool:
    return any(t.indices.kind == "trace" for t in workload.tables)


def mean_prediction(workload: perfmodel.Workload, kernel: perfmodel.KernelConfig, gpu: perfmodel.GPUSpec,
                    calls: Sequence[int]) -> tuple[float, float]:
    """Mean ``(time_s, pin_time_s)`` of the model over the given calls of the run."""
    times, pins = [], []
    for c in calls:
        p = perfmodel.predict(call_workload(workload, c), kernel, gpu)
        times.append(p.time_s)
        pins.append(p.pin_time_s)
    return float(np.mean(times)), float(np.mean(pins))
