"""Calibration: fit the GPU spec's latency and bandwidth parameters to microbenchmark curves.

The fit goes through the model itself: for trial parameter values the spec is rebuilt
(``dataclasses.replace``) and the model's microbenchmark predictions
(:class:`validation._micro_model.MicroModel`) are compared with the measurements.
``scipy.optimize.least_squares`` with a soft-L1 loss on the relative errors
(predicted / measured - 1), each weighted by 1/(the curve's points), so the objective is
close to the sum of the curves' mean absolute relative errors (the MAPE reported) and every
curve counts the same; a fit that does not lower it keeps the starting values.

Parameters, and the data that fits them:

- pointer-chase latency curve -> ``l1_latency_cycles``, ``l2_near_latency_cycles``,
  ``l2_far_latency_cycles``, ``dram_latency_cycles``; searched as
  l1 = e^q0, near = l1 + e^q1, far = near + e^q2, dram = near + e^q3, so every trial
  keeps the spec's ordering rules (l1 < near <= far, near < dram);
- stream-read curve -> ``dram_bandwidth_bytes_per_s``;
- L2-read curve -> ``l2_bandwidth_bytes_per_s``.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from perfmodel import GPUSpec, InputError
from validation._micro_model import MicroModel, perfmodel_micro_model

__all__ = ["CalibrationResult", "MicroData", "calibrate", "persisting_l2_effect", "read_micro_results", "spec_toml"]

LATENCY_FIELDS = ("l1_latency_cycles", "l2_near_latency_cycles", "l2_far_latency_cycles", "dram_latency_cycles")


@dataclass(frozen=True, kw_only=True)
class MicroData:
    """Microbenchmark curves of one GPU (any of them may be empty)."""

    #: (footprint_bytes, latency_cycles)
    pointer_chase: tuple[tuple[int, float], ...] = ()
    #: (block_size, blocks_per_sm, bandwidth_bytes_per_s)
    stream_read: tuple[tuple[int, int, float], ...] = ()
    #: (footprint_bytes, bandwidth_bytes_per_s)
    l2_read: tuple[tuple[int, float], ...] = ()

    def merged(self, other: MicroData) -> MicroData:
        return MicroData(
            pointer_chase=self.pointer_chase + other.pointer_chase,
            stream_read=self.stream_read + other.stream_read,
            l2_read=self.l2_read + other.l2_read,
        )

    def __bool__(self) -> bool:
        return bool(self.pointer_chase or self.stream_read or self.l2_read)


def read_micro_results(path: str | os.PathLike[str]) -> MicroData:
    """Read a microbenchmark results file (JSON lines written by :mod:`validation.micro`).

    Records: ``{"benchmark": "pointer-chase", "footprint_bytes", "latency_cycles"}``,
    ``{"benchmark": "stream-read", "block_size", "blocks_per_sm", "bandwidth_bytes_per_s"}``,
    ``{"benchmark": "l2-read", "footprint_bytes", "bandwidth_bytes_per_s"}``; other
    benchmarks (``persisting-l2``) and the ``env`` record are skipped here.
    """
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InputError(f"cannot read microbenchmark results {str(p)!r}: {exc.strerror}") from None
    chase: list[tuple[int, float]] = []
    stream: list[tuple[int, int, float]] = []
    l2: list[tuple[int, float]] = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
            kind = r.get("benchmark")
            if kind == "pointer-chase":
                chase.append((int(r["footprint_bytes"]), float(r["latency_cycles"])))
            elif kind == "stream-read":
                stream.append((int(r["block_size"]), int(r["blocks_per_sm"]), float(r["bandwidth_bytes_per_s"])))
            elif kind == "l2-read":
                l2.append((int(r["footprint_bytes"]), float(r["bandwidth_bytes_per_s"])))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InputError(f"{p}:{lineno}: not a microbenchmark record ({type(exc).__name__}: {exc})") from None
    return MicroData(pointer_chase=tuple(chase), stream_read=tuple(stream), l2_read=tuple(l2))


def persisting_l2_effect(path: str | os.PathLike[str]) -> list[dict[str, float]]:
    """Per hot-buffer size: re-read bandwidth without and with the persisting window, and their ratio."""
    rows: dict[int, dict[str, float]] = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(r, dict) or r.get("benchmark") != "persisting-l2" or "hot_bytes" not in r:
            continue
        row = rows.setdefault(int(r["hot_bytes"]), {"hot_bytes": float(r["hot_bytes"])})
        row["with_window_bytes_per_s" if r.get("window") else "without_window_bytes_per_s"] = float(
            r["bandwidth_bytes_per_s"])
    out = []
    for _, row in sorted(rows.items()):
        if "with_window_bytes_per_s" in row and "without_window_bytes_per_s" in row:
            row["speedup"] = row["with_window_bytes_per_s"] / row["without_window_bytes_per_s"]
        out.append(row)
    return out


@dataclass(frozen=True, kw_only=True)
class CalibrationResult:
    """The calibrated spec, the fitted values before and after, and the residuals per curve."""

    base: GPUSpec
    spec: GPUSpec
    initial: Mapping[str, float]
    params: Mapping[str, float]
    #: curve -> {"n", "mape_before", "mape_after", "max_after", "points": [[x, measured, before, after], ...]}
    residuals: Mapping[str, Mapping[str, Any]]
    success: bool
    message: str
    nfev: int
    date: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d"))

    def to_dict(self, points: bool = False) -> dict[str, Any]:
        res = {k: {kk: vv for kk, vv in v.items() if points or kk != "points"} for k, v in self.residuals.items()}
        return {"gpu": self.base.id, "calibrated_id": self.spec.id, "initial": dict(self.initial),
                "params": dict(self.params), "residuals": res, "success": self.success,
                "message": self.message, "nfev": self.nfev}

    def write_spec(self, path: str | os.PathLike[str], *, source_files: Sequence[str]) -> Path:
        """Write the calibrated spec file (same format as ``perfmodel/gpus/*.toml``)."""
        files = ", ".join(str(f) for f in source_files) or "microbenchmarks"
        fit_note = "; ".join(f"{k}: MAPE {v['mape_before']:.1%} -> {v['mape_after']:.1%} over {v['n']} points"
                             for k, v in self.residuals.items())
        sources = {name: f"calibrated: {files}, {self.date} (was {self.initial[name]:.6g}; {fit_note})"
                   for name in self.params}
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(spec_toml(self.spec, sources=sources, fitted=set(self.params),
                                 notes=f"Calibrated from {self.base.id} with recperf validate calibrate on {self.date}. "
                                       f"Residuals: {fit_note}."), encoding="utf-8")
        return out


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    return json.dumps(str(v), ensure_ascii=False)


def spec_toml(spec: GPUSpec, *, sources: Mapping[str, str] | None = None, fitted: set[str] | None = None,
              notes: str = "") -> str:
    """A GPU spec file: base sources kept, ``sources`` override, fitted fields lose their estimate mark."""
    lines = [f"id = {_toml_value(spec.id)}", f"name = {_toml_value(spec.name)}"]
    if notes:
        lines.append(f"notes = {_toml_value(notes)}")
    lines += ["", "[spec]"]
    for name, value in spec.to_dict().items():
        if name in ("id", "name"):
            continue
        src = (sources or {}).get(name) or spec.source(name) or "not recorded"
        entry = f"value = {_toml_value(value)}, source = {_toml_value(src)}"
        est = spec.estimates.get(name)
        if est and name not in (fitted or set()):
            entry += f", estimate = {_toml_value(est)}"
        lines.append(f"{name} = {{ {entry} }}")
    return "\n".join(lines) + "\n"


# ---- the fit -----------------------------------------------------------------------------------


def _encode(spec: GPUSpec, fields: Sequence[str]) -> npt.NDArray[np.float64]:
    q: list[float] = []
    if "l1_latency_cycles" in fields:
        l1, near, far, dram = (getattr(spec, f) for f in LATENCY_FIELDS)
        q += [math.log(l1), math.log(near - l1), math.log(max(far - near, 1.0)), math.log(dram - near)]
    for f in ("dram_bandwidth_bytes_per_s", "l2_bandwidth_bytes_per_s"):
        if f in fields:
            q.append(math.log(getattr(spec, f)))
    return np.array(q, dtype=np.float64)


def _decode(q: npt.NDArray[np.float64], fields: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    i = 0
    if "l1_latency_cycles" in fields:
        l1 = math.exp(q[0])
        near = l1 + math.exp(q[1])
        out.update(l1_latency_cycles=l1, l2_near_latency_cycles=near, l2_far_latency_cycles=near + math.exp(q[2]),
                   dram_latency_cycles=near + math.exp(q[3]))
        i = 4
    for f in ("dram_bandwidth_bytes_per_s", "l2_bandwidth_bytes_per_s"):
        if f in fields:
            out[f] = math.exp(q[i])
            i += 1
    return out


def _curves(data: MicroData, model: MicroModel) -> dict[str, tuple[list[float], npt.NDArray[np.float64], Callable[[GPUSpec], list[float]]]]:
    """curve name -> (x values, measured values, spec -> predicted values)."""
    curves: dict[str, tuple[list[float], npt.NDArray[np.float64], Callable[[GPUSpec], list[float]]]] = {}
    if data.pointer_chase:
        pts = data.pointer_chase
        curves["pointer-chase"] = ([float(f) for f, _ in pts], np.array([c for _, c in pts]),
                                   lambda s: [model.pointer_chase(s, f) for f, _ in pts])
    if data.stream_read:
        spts = data.stream_read
        curves["stream-read"] = ([float(b) for b, _, _ in spts], np.array([bw for _, _, bw in spts]),
                                 lambda s: [model.stream_read(s, b, k) for b, k, _ in spts])
    if data.l2_read:
        lpts = data.l2_read
        curves["l2-read"] = ([float(f) for f, _ in lpts], np.array([bw for _, bw in lpts]),
                             lambda s: [model.l2_read(s, f) for f, _ in lpts])
    return curves


def _usable(data: MicroData) -> tuple[MicroData, dict[str, int]]:
    """The points whose measured value is finite and positive (a failed run can record 0), and
    how many of each curve were dropped."""
    def ok(v: float) -> bool:
        return math.isfinite(v) and v > 0

    kept = MicroData(pointer_chase=tuple(p for p in data.pointer_chase if ok(p[1])),
                     stream_read=tuple(p for p in data.stream_read if ok(p[2])),
                     l2_read=tuple(p for p in data.l2_read if ok(p[1])))
    dropped = {"pointer-chase": len(data.pointer_chase) - len(kept.pointer_chase),
               "stream-read": len(data.stream_read) - len(kept.stream_read),
               "l2-read": len(data.l2_read) - len(kept.l2_read)}
    return kept, {k: v for k, v in dropped.items() if v}


def calibrate(
    base: GPUSpec,
    data: MicroData,
    *,
    model: MicroModel | None = None,
    fields: Sequence[str] | None = None,
    max_nfev: int = 300,
) -> CalibrationResult:
    """Fit the spec's latencies (pointer chase) and bandwidths (stream, L2 read) to ``data``.

    ``fields`` limits what is fitted (default: whatever the data can inform).
    """
    from scipy.optimize import least_squares

    if not data:
        raise InputError("calibration needs at least one microbenchmark curve, but got none")
    data, dropped = _usable(data)
    if not data:
        raise InputError(f"calibration needs measured values that are finite and > 0, but none is ({dropped} points "
                         "dropped): the microbenchmark run failed")
    model = model or perfmodel_micro_model()
    if fields is None:
        chosen: list[str] = []
        if data.pointer_chase:
            chosen += LATENCY_FIELDS
        if data.stream_read:
            chosen.append("dram_bandwidth_bytes_per_s")
        if data.l2_read:
            chosen.append("l2_bandwidth_bytes_per_s")
        fields = chosen
    else:
        unknown = sorted(set(fields) - {*LATENCY_FIELDS, "dram_bandwidth_bytes_per_s", "l2_bandwidth_bytes_per_s"})
        if unknown:
            raise InputError(f"can only fit latencies and bandwidths, but got {unknown}")
        if any(f in fields for f in LATENCY_FIELDS):
            fields = [*LATENCY_FIELDS, *(f for f in fields if f not in LATENCY_FIELDS)]
    curves = _curves(data, model)
    weights = {k: 1.0 / len(v[0]) for k, v in curves.items()}
    f_scale = 0.002 * min(weights.values())

    def spec_at(q: npt.NDArray[np.float64]) -> GPUSpec:
        return dataclasses.replace(base, **_decode(q, fields))

    def residuals(q: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        s = spec_at(q)
        parts = []
        for k, (_, meas, pred) in curves.items():
            p = np.asarray(pred(s), dtype=np.float64)
            parts.append(weights[k] * (p / meas - 1.0))
        return np.concatenate(parts)

    def objective(q: npt.NDArray[np.float64]) -> float:
        """The sum over curves of the mean |relative error| (what soft-L1 approaches)."""
        return float(np.sum(np.abs(residuals(q))))

    q0 = _encode(base, fields)
    initial = {f: float(getattr(base, f)) for f in fields}
    if q0.size:
        fit = least_squares(residuals, q0, method="trf", diff_step=1e-3, x_scale=1.0, max_nfev=max_nfev,
                            loss="soft_l1", f_scale=f_scale,
                            bounds=(q0 - math.log(8.0), q0 + math.log(8.0)))
        q, success, message, nfev = fit.x, bool(fit.success), str(fit.message), int(fit.nfev)
        if objective(q) > objective(q0):
            q, message = q0, "the fit did not improve on the starting spec; kept it"
    else:
        q, success, message, nfev = q0, True, "nothing to fit", 0
    spec = dataclasses.replace(base, id=f"{base.id}-calibrated", **_decode(q, fields))
    report: dict[str, dict[str, Any]] = {}
    for k, (xs, meas, pred) in curves.items():
        before = np.asarray(pred(base), dtype=np.float64)
        after = np.asarray(pred(spec), dtype=np.float64)
        eb, ea = np.abs(before - meas) / meas, np.abs(after - meas) / meas
        report[k] = {"n": len(xs), "dropped": dropped.get(k, 0), "mape_before": float(eb.mean()), "mape_after": float(ea.mean()),
                     "max_after": float(ea.max()),
                     "points": [[x, float(m), float(b), float(a)] for x, m, b, a in zip(xs, meas, before, after, strict=True)]}
    return CalibrationResult(base=base, spec=spec, initial=initial, params=_decode(q, fields), residuals=report,
                             success=success, message=message, nfev=nfev)
