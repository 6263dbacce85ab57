"""The ledger of published kernel-level measurements, and the model's error on each.

One TOML file per independent source in ``validation/data/published/`` (its README.md gives the
format): a ``[source]`` table (provenance, GPU, clock, kernel, workload, timed region), its
``[[points]]`` (one measured time each, with the quoted lines, the ``variant`` + configuration and
the workload that reproduce it, the role ``calibration`` or ``check``) and its ``[[ratios]]``
(before/after pairs measured within the source).

:func:`compare_ledger` predicts every point on each of its GPUs as its source timed it
(:mod:`validation._harness`). A point the model cannot predict yet (a kernel variant it does not
know, a GPU outside the catalogue, a trace that is not available, a host term without a cost) is
reported with its status and reason instead, and with the prediction of its declared ``stand_in``
configuration where it has one (for information: a stand-in never counts as a prediction).
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

import perfmodel
from perfmodel import InputError, check_int, check_modelled
from validation._harness import (
    HarnessCost,
    IntArray,
    NotModelled,
    TimedCalls,
    TimedPrediction,
    TimedRegion,
    as_timed,
    cached_trace,
    harness_costs,
    has_trace,
    mean_prediction,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = [
    "DECLARED_STATUSES",
    "ROLES",
    "Ledger",
    "LedgerComparison",
    "LedgerPoint",
    "LedgerRatio",
    "LedgerSource",
    "PointResult",
    "RatioResult",
    "compare_ledger",
    "ledger_dir",
    "load_ledger",
    "power_law_floor",
]

ROLES = ("calibration", "check")
#: statuses a ledger point can declare (why it cannot be reproduced as published)
DECLARED_STATUSES = ("unavailable", "under-specified")
#: files of the folder that are not sources
_NOT_SOURCES = ("gpu-benches.toml", "harness.toml")
_GENERATORS = ("power-law-floor",)


def ledger_dir() -> Path:
    return Path(__file__).resolve().parent / "data" / "published"


@dataclass(frozen=True, kw_only=True)
class LedgerSource:
    """One independent source: where its numbers are, and what it ran and timed."""

    id: str
    title: str
    url: str
    file: str
    repository: str = ""
    commit: str = ""
    files: tuple[str, ...] = ()
    gpu: str = ""
    clock: str = ""
    kernel: str = ""
    workload: str = ""
    timed_region: TimedRegion = field(default_factory=TimedRegion)

    def citation(self) -> str:
        where = f"{self.repository}@{self.commit[:12]}" if self.repository and self.commit else self.url
        return f"{self.title} ({where})"


@dataclass(frozen=True, kw_only=True)
class LedgerPoint:
    """One published kernel time and what reproduces it."""

    name: str
    source: LedgerSource
    role: str
    gpus: tuple[str, ...]
    measured_s: float
    quote: tuple[str, ...]
    kernel: Mapping[str, Any]
    workload: Mapping[str, Any]
    timed_region: TimedRegion
    statistic: str = ""
    min_s: float | None = None
    max_s: float | None = None
    assumptions: tuple[str, ...] = ()
    stand_in: Mapping[str, Any] | None = None
    calls: TimedCalls | None = None
    status: str | None = None
    reason: str = ""

    @property
    def source_id(self) -> str:
        return self.source.id


@dataclass(frozen=True, kw_only=True)
class LedgerRatio:
    """A before/after pair measured within one source: ``numerator / denominator``."""

    name: str
    source: LedgerSource
    numerator: LedgerPoint
    denominator: LedgerPoint

    @property
    def source_id(self) -> str:
        return self.source.id

    @property
    def measured(self) -> float:
        return self.numerator.measured_s / self.denominator.measured_s


@dataclass(frozen=True)
class Ledger:
    sources: tuple[LedgerSource, ...]
    points: tuple[LedgerPoint, ...]
    ratios: tuple[LedgerRatio, ...]


# ---- loading ------------------------------------------------------------------------------


def _strs(doc: Mapping[str, Any], key: str, where: str, *, required: bool = False) -> tuple[str, ...]:
    v = doc.get(key, [])
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not all(isinstance(s, str) and s for s in v):
        raise InputError(f"{where}: `{key}` must be a list of non-empty strings, but got {v!r}")
    if required and not v:
        raise InputError(f"{where}: `{key}` must not be empty (every point quotes its source)")
    return tuple(v)


def _str(doc: Mapping[str, Any], key: str, where: str, *, required: bool = False) -> str:
    v = doc.get(key, "")
    if not isinstance(v, str) or (required and not v):
        raise InputError(f"{where}: `{key}` must be a non-empty string, but got {v!r}")
    return v


def _seconds(doc: Mapping[str, Any], key: str, where: str, *, required: bool = False) -> float | None:
    v = doc.get(key)
    if v is None and not required:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not (0.0 < float(v) < 10.0):
        raise InputError(f"{where}: `0 < {key} < 10` (seconds) must hold, but got {key}={v!r}")
    return float(v)


_SOURCE_KEYS = {"id", "title", "url", "repository", "commit", "files", "data_file", "gpu", "clock", "kernel",
                "workload", "timed_region"}
_POINT_KEYS = {"name", "role", "gpus", "measured_s", "min_s", "max_s", "statistic", "quote", "assumptions",
               "kernel", "workload", "calls", "stand_in", "status", "reason", "timed_region"}
_RATIO_KEYS = {"name", "numerator", "denominator"}


def _source(doc: Mapping[str, Any], path: Path) -> LedgerSource:
    where = f"{path.name} [source]"
    unknown = sorted(set(doc) - _SOURCE_KEYS)
    if unknown:
        raise InputError(f"{where}: unknown keys {unknown}; valid keys: {', '.join(sorted(_SOURCE_KEYS))}")
    url, repo = _str(doc, "url", where), _str(doc, "repository", where)
    if not (url or repo):
        raise InputError(f"{where}: a source names its url or repository, but got neither")
    region = TimedRegion.from_mapping(doc.get("timed_region", {}), where)
    return LedgerSource(
        id=_str(doc, "id", where, required=True), title=_str(doc, "title", where, required=True), url=url,
        file=path.name, repository=repo, commit=_str(doc, "commit", where), files=_strs(doc, "files", where),
        gpu=_str(doc, "gpu", where, required=True), clock=_str(doc, "clock", where, required=True),
        kernel=_str(doc, "kernel", where), workload=_str(doc, "workload", where), timed_region=region,
    )


def _point(doc: Mapping[str, Any], source: LedgerSource, index: int) -> LedgerPoint:
    name = doc.get("name")
    where = f"{source.file} point {index + 1}" + (f" ({name!r})" if isinstance(name, str) else "")
    unknown = sorted(set(doc) - _POINT_KEYS)
    if unknown:
        raise InputError(f"{where}: unknown keys {unknown}; valid keys: {', '.join(sorted(_POINT_KEYS))}")
    role = doc.get("role")
    if role not in ROLES:
        raise InputError(f"{where}: `role` must be one of {', '.join(ROLES)}, but got {role!r}")
    status = doc.get("status")
    if status is not None and status not in DECLARED_STATUSES:
        raise InputError(f"{where}: `status` must be one of {', '.join(DECLARED_STATUSES)}, but got {status!r}")
    if status is not None and not doc.get("reason"):
        raise InputError(f"{where}: a point that declares status {status!r} says why (`reason`)")
    gpus = _strs(doc, "gpus", where, required=True)
    for key in ("kernel", "workload"):
        if not isinstance(doc.get(key), dict):
            raise InputError(f"{where}: `{key}` must be a table (the configuration that reproduces the point)")
    stand_in = doc.get("stand_in")
    if stand_in is not None and not isinstance(stand_in, dict):
        raise InputError(f"{where}: `stand_in` must be a kernel table, but got {stand_in!r}")
    calls = doc.get("calls")
    if calls is not None:
        if not isinstance(calls, dict) or set(calls) != {"first", "count"}:
            raise InputError(f"{where}: `calls` must be {{ first = N, count = M }}, but got {calls!r}")
        calls = TimedCalls(first=calls["first"], count=calls["count"])
    region = (TimedRegion.from_mapping(doc["timed_region"], where) if "timed_region" in doc
              else source.timed_region)
    measured = _seconds(doc, "measured_s", where, required=True)
    assert measured is not None
    return LedgerPoint(
        name=_str(doc, "name", where, required=True), source=source, role=role, gpus=gpus, measured_s=measured,
        quote=_strs(doc, "quote", where, required=True), kernel=dict(doc["kernel"]),
        workload=dict(doc["workload"]), timed_region=region, statistic=_str(doc, "statistic", where),
        min_s=_seconds(doc, "min_s", where), max_s=_seconds(doc, "max_s", where),
        assumptions=_strs(doc, "assumptions", where), stand_in=None if stand_in is None else dict(stand_in),
        calls=calls, status=status, reason=_str(doc, "reason", where),
    )


def load_ledger(directory: str | os.PathLike[str] | None = None) -> Ledger:
    """Every source file of the ledger folder (default: the shipped ``validation/data/published``)."""
    d = Path(directory) if directory is not None else ledger_dir()
    files = sorted(p for p in d.glob("*.toml") if p.name not in _NOT_SOURCES)
    sources: list[LedgerSource] = []
    points: list[LedgerPoint] = []
    ratios: list[LedgerRatio] = []
    for path in files:
        try:
            doc = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise InputError(f"ledger file {str(path)!r} is not valid TOML: {exc}") from None
        if not isinstance(doc.get("source"), dict):
            raise InputError(f"ledger file {path.name}: needs a [source] table")
        unknown = sorted(set(doc) - {"source", "points", "ratios"})
        if unknown:
            raise InputError(f"ledger file {path.name}: unknown tables {unknown}; valid: source, points, ratios")
        src = _source(doc["source"], path)
        if any(s.id == src.id for s in sources):
            raise InputError(f"ledger file {path.name}: source id {src.id!r} is already used by another file")
        sources.append(src)
        mine = [_point(p, src, i) for i, p in enumerate(doc.get("points", []))]
        by_name: dict[str, LedgerPoint] = {}
        for p in mine:
            if p.name in by_name:
                raise InputError(f"ledger file {path.name}: point name {p.name!r} is used twice")
            by_name[p.name] = p
        points += mine
        for i, r in enumerate(doc.get("ratios", [])):
            where = f"{path.name} ratio {i + 1}"
            unknown = sorted(set(r) - _RATIO_KEYS)
            if unknown:
                raise InputError(f"{where}: unknown keys {unknown}; valid keys: {', '.join(sorted(_RATIO_KEYS))}")
            ends = []
            for key in ("numerator", "denominator"):
                target = r.get(key)
                if target not in by_name:
                    raise InputError(f"{where}: `{key}` must name a point of the same source, but got {target!r}")
                ends.append(by_name[target])
            if ends[0] is ends[1]:
                raise InputError(f"{where}: numerator and denominator must differ")
            ratios.append(LedgerRatio(name=_str(r, "name", where, required=True), source=src,
                                      numerator=ends[0], denominator=ends[1]))
    return Ledger(sources=tuple(sources), points=tuple(points), ratios=tuple(ratios))


# ---- the workload a point ran -----------------------------------------------------------------


def power_law_floor(rows: int, n: int, *, low: int = 1, alpha: float = 1.05, seed: int = 0) -> IntArray:
    """``n`` ids drawn as NVIDIA recsys-examples' ``dataset_generator.PowerLaw(low, rows, alpha)``:
    the floor of the inverse CDF of a continuous power law ``x^-alpha`` on ``[low, rows)``, values
    at or above ``rows`` set to ``rows - 1`` (numpy's generator, seeded, instead of torch's)."""
    if not (0 < low < rows) or alpha <= 0.0 or alpha == 1.0 or n < 1:
        raise InputError(f"power-law-floor needs 0 < low < rows, alpha > 0 (not 1) and n >= 1, but got "
                         f"low={low}, rows={rows}, alpha={alpha}, n={n}")
    g = 1.0 - alpha
    x = np.random.default_rng(seed).random(n)
    y = np.power(x * (float(rows) ** g - float(low) ** g) + float(low) ** g, 1.0 / g)
    y[y >= rows] = rows - 1
    out: IntArray = np.floor(y).astype(np.int64)
    return out


def _resolve_generated(doc: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The workload mapping with ``kind = "generated"`` tables replaced by traces in the cache."""
    out = dict(doc)
    tables = []
    for t in doc.get("tables", []):
        idx = t.get("indices", {}) if isinstance(t, dict) else {}
        if not (isinstance(idx, dict) and idx.get("kind") == "generated"):
            tables.append(t)
            continue
        gen = idx.get("generator")
        if gen not in _GENERATORS:
            raise InputError(f"{where}: unknown index generator {gen!r}; valid generators: {', '.join(_GENERATORS)}")
        if not isinstance(t.get("pooling"), int):
            raise InputError(f"{where}: a generated index stream needs a fixed `pooling`")
        n = int(doc["batch_size"]) * int(t["pooling"])
        ids = power_law_floor(int(t["rows"]), n, low=int(idx.get("low", 1)), alpha=float(idx.get("alpha", 1.05)),
                              seed=int(idx.get("seed", 0)))
        tables.append({**t, "indices": {"kind": "trace", "path": str(cached_trace(ids, gen))}})
    out["tables"] = tables
    return out


def point_workload(point: LedgerPoint) -> perfmodel.Workload:
    """The workload a point ran; trace paths are relative to the perfmodel package's data folder."""
    where = f"{point.source.file} point {point.name!r}"
    base = Path(perfmodel.__file__).resolve().parent / "data"
    for t in point.workload.get("tables", []):
        idx = t.get("indices", {}) if isinstance(t, dict) else {}
        if isinstance(idx, dict) and idx.get("kind") == "trace" and not (base / str(idx.get("path"))).is_file():
            raise NotModelled(f"trace {idx.get('path')!r} is not shipped (perfmodel/data)")
    return perfmodel.workload_from_mapping(_resolve_generated(point.workload, where), base, where)


# ---- comparison ---------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class _Outcome:
    """What the comparison says about one entry on one GPU: a prediction, or why there is none."""

    gpu: str
    status: str
    reason: str = ""

    def _values(self) -> tuple[float | None, float]:  # (predicted, measured)
        raise NotImplementedError

    @property
    def ok(self) -> bool:
        return self.status == "ok" and self._values()[0] is not None

    @property
    def error(self) -> float:
        """|predicted / measured - 1|; NaN without a prediction."""
        predicted, measured = self._values()
        return math.nan if predicted is None else abs(predicted / measured - 1.0)


@dataclass(frozen=True, kw_only=True)
class PointResult(_Outcome):
    """A ledger point on one GPU: the model's prediction as the source timed it, or why there is none."""

    point: LedgerPoint
    predicted: TimedPrediction | None = None
    calls: tuple[int, ...] = ()
    stand_in: TimedPrediction | None = None

    def _values(self) -> tuple[float | None, float]:
        return (None if self.predicted is None else self.predicted.as_timed_s), self.point.measured_s

    def to_dict(self) -> dict[str, Any]:
        p = self.point
        out: dict[str, Any] = {
            "name": p.name, "gpu": self.gpu, "kind": "kernel-time", "metric": "time_s", "source_id": p.source_id,
            "source": p.source.citation(), "role": p.role, "status": self.status, "measured": p.measured_s,
            "timed_region": list(p.timed_region.contains), "n": 1,
        }
        if self.predicted is not None:
            out.update(predicted=self.predicted.as_timed_s, predicted_kernel_only=self.predicted.kernel_s,
                       harness_s=self.predicted.harness_s, terms=dict(self.predicted.terms),
                       error=self.error, max_error=self.error)
        if self.calls:
            out["calls_predicted"] = list(self.calls)
        if self.reason:
            out["reason"] = self.reason
        if self.stand_in is not None:
            out["stand_in"] = {"kernel": dict(p.stand_in or {}), "predicted": self.stand_in.as_timed_s,
                               "error": abs(self.stand_in.as_timed_s / p.measured_s - 1.0)}
        if p.assumptions:
            out["assumptions"] = list(p.assumptions)
        return out


@dataclass(frozen=True, kw_only=True)
class RatioResult(_Outcome):
    """A before/after ratio on one GPU, measured and predicted (as timed)."""

    ratio: LedgerRatio
    predicted: float | None = None

    def _values(self) -> tuple[float | None, float]:
        return self.predicted, self.ratio.measured

    def to_dict(self) -> dict[str, Any]:
        r = self.ratio
        out: dict[str, Any] = {"name": r.name, "source_id": r.source_id, "gpu": self.gpu, "kind": "ratio",
                               "status": self.status, "measured": r.measured, "numerator": r.numerator.name,
                               "denominator": r.denominator.name}
        if self.predicted is not None:
            out.update(predicted=self.predicted, error=self.error)
        if self.reason:
            out["reason"] = self.reason
        return out


@dataclass(frozen=True)
class LedgerComparison:
    points: tuple[PointResult, ...]
    ratios: tuple[RatioResult, ...]
    costs: Mapping[str, HarnessCost]
    windows: int


def _predict(point: LedgerPoint, kernel: perfmodel.KernelConfig, gpu: perfmodel.GPUSpec, windows: int,
             costs: Mapping[str, HarnessCost]) -> tuple[TimedPrediction, tuple[int, ...]]:
    workload = point_workload(point)
    calls: tuple[int, ...] = (0,)
    if point.calls is not None and has_trace(workload):
        calls = point.calls.sample(windows)
    time_s, pin_s = mean_prediction(workload, kernel, gpu, calls)
    return as_timed(time_s, pin_s, point.timed_region, costs), (calls if point.calls is not None else ())


def _stand_in(point: LedgerPoint, gpu: perfmodel.GPUSpec, windows: int,
              costs: Mapping[str, HarnessCost]) -> TimedPrediction | None:
    if point.stand_in is None:
        return None
    kernel = perfmodel.kernel_config_from_mapping(point.stand_in, f"{point.source.file} {point.name!r} stand_in")
    try:
        return _predict(point, kernel, gpu, windows, costs)[0]
    except NotModelled:
        return None


def _compare_point(point: LedgerPoint, gpu_id: str, gpus: Mapping[str, Any], windows: int,
                   costs: Mapping[str, HarnessCost]) -> PointResult:
    if point.status is not None:
        return PointResult(point=point, gpu=gpu_id, status=point.status, reason=point.reason)
    try:
        spec = gpus.get(gpu_id) or perfmodel.get_gpu(gpu_id)
    except InputError as exc:
        return PointResult(point=point, gpu=gpu_id, status="unavailable", reason=str(exc))
    try:
        kernel = check_modelled(perfmodel.kernel_config_from_mapping(point.kernel, f"{point.name!r} kernel"))
    except InputError as exc:  # e.g. a variant the model does not predict yet
        return PointResult(point=point, gpu=gpu_id, status="not-modelled", reason=str(exc),
                           stand_in=_stand_in(point, spec, windows, costs))
    try:
        predicted, calls = _predict(point, kernel, spec, windows, costs)
    except NotModelled as exc:
        return PointResult(point=point, gpu=gpu_id, status="not-modelled", reason=str(exc),
                           stand_in=_stand_in(point, spec, windows, costs))
    return PointResult(point=point, gpu=gpu_id, status="ok", predicted=predicted, calls=calls)


def compare_ledger(
    ledger: Ledger | None = None,
    *,
    gpus: Mapping[str, Any] | None = None,
    windows: int = 4,
    costs: Mapping[str, HarnessCost] | None = None,
    sources: Sequence[str] | None = None,
) -> LedgerComparison:
    """Every ledger point on each of its GPUs, and every ratio, as their sources timed them.

    Args:
        ledger: the ledger (default: the shipped one).
        gpus: GPU id -> spec to use instead of the catalogue's (e.g. a calibrated spec).
        windows: for a point averaged over many calls of a run through a trace, how many of those
            calls to predict (spread evenly; 1 = the first timed call only).
        costs: host-term costs (default: the shipped ``harness.toml``).
        sources: only these source ids.
    """
    check_int(windows, "windows", min_val=1)
    led = ledger if ledger is not None else load_ledger()
    if sources is not None:
        known = {s.id for s in led.sources}
        bad = sorted(set(sources) - known)
        if bad:
            raise InputError(f"unknown ledger source {bad[0]!r}; valid sources: {', '.join(sorted(known))}")
        led = replace(led, points=tuple(p for p in led.points if p.source_id in sources),
                      ratios=tuple(r for r in led.ratios if r.source_id in sources))
    cost_map = costs if costs is not None else harness_costs()
    overrides = gpus or {}
    results: dict[tuple[str, str, str], PointResult] = {}
    for p in led.points:
        for g in p.gpus:
            results[(p.source_id, p.name, g)] = _compare_point(p, g, overrides, windows, cost_map)
    ratios: list[RatioResult] = []
    for r in led.ratios:
        for g in r.numerator.gpus:
            num = results.get((r.source_id, r.numerator.name, g))
            den = results.get((r.source_id, r.denominator.name, g))
            if num is None or den is None:
                ratios.append(RatioResult(ratio=r, gpu=g, status="unavailable",
                                          reason=f"the two points do not share GPU {g!r}"))
            elif num.ok and den.ok:
                assert num.predicted is not None and den.predicted is not None
                ratios.append(RatioResult(ratio=r, gpu=g, status="ok",
                                          predicted=num.predicted.as_timed_s / den.predicted.as_timed_s))
            else:
                bad_end = num if not num.ok else den
                ratios.append(RatioResult(ratio=r, gpu=g, status=bad_end.status,
                                          reason=f"{bad_end.point.name!r}: {bad_end.reason}"))
    return LedgerComparison(points=tuple(results.values()), ratios=tuple(ratios), costs=cost_map, windows=windows)
