"""Accuracy report: the model's predictions against a measurement file.

Records are grouped by (GPU, workload) and each group is predicted with one
``perfmodel.predict_batch`` call; the metrics (:mod:`validation._metrics`) are over all
records in file order, and per group as well. The plot follows Optuna's split: a pure
:func:`scatter_info` that returns data (tested), and :func:`render_scatter` that draws it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

import perfmodel
from perfmodel import GPUSpec, KernelConfig, Workload
from validation._archive import is_archive, open_run_archive
from validation._metrics import AccuracyMetrics, accuracy_metrics
from validation._records import MeasurementRecord, read_measurements

__all__ = [
    "AccuracyReport",
    "GroupReport",
    "ScatterInfo",
    "accuracy_report",
    "predict_records",
    "render_markdown",
    "render_scatter",
    "scatter_info",
]

#: (workload, kernels, gpu) -> predicted seconds, one per kernel
Predictor = Callable[[Workload, Sequence[KernelConfig], GPUSpec], npt.NDArray[np.float64]]


def default_predictor() -> Predictor:
    """:func:`perfmodel.predict_batch`."""
    def run_batch(w: Workload, ks: Sequence[KernelConfig], g: GPUSpec) -> npt.NDArray[np.float64]:
        return np.asarray(perfmodel.predict_batch(w, list(ks), g), dtype=np.float64)

    return run_batch


def predict_records(
    records: Sequence[MeasurementRecord],
    *,
    gpu: str | os.PathLike[str] | GPUSpec | None = None,
    predictor: Predictor | None = None,
) -> npt.NDArray[np.float64]:
    """Predicted ``time_s`` of each record, in order; ``gpu`` overrides every record's GPU."""
    predict = predictor or default_predictor()
    override = perfmodel.get_gpu(gpu) if gpu is not None else None
    groups: dict[tuple[str, str], list[int]] = {}
    for i, r in enumerate(records):
        groups.setdefault((r.gpu, r.workload_ref), []).append(i)
    out = np.empty(len(records), dtype=np.float64)
    for (gpu_id, _), idx in groups.items():
        spec = override or perfmodel.get_gpu(gpu_id)
        times = predict(records[idx[0]].workload, [records[i].kernel for i in idx], spec)
        out[idx] = times
    return out


@dataclass(frozen=True, kw_only=True)
class GroupReport:
    """Metrics of the records of one (GPU, workload)."""

    gpu: str
    workload: str
    metrics: AccuracyMetrics


@dataclass(frozen=True, kw_only=True)
class AccuracyReport:
    """Predictions against measurements for one measurement file."""

    source: str
    gpu_override: str | None
    records: tuple[MeasurementRecord, ...]
    predicted_s: npt.NDArray[np.float64]
    measured_s: npt.NDArray[np.float64]
    #: over every record; with records of several GPUs a pooled figure (ranks and the
    #: best record mix GPUs): read :attr:`per_gpu` then
    metrics: AccuracyMetrics
    groups: tuple[GroupReport, ...]
    synthetic: bool
    #: the run archive the records came from (its manifest's summary), or None
    archive: dict[str, Any] | None = None
    #: records of kernel variants the model does not cover (perfmodel.MODELLED_VARIANTS), left out
    not_modelled: int = 0
    #: metrics of each GPU's records (workload ``"*"``: all of that GPU's workloads)
    per_gpu: tuple[GroupReport, ...] = ()

    @property
    def pooled(self) -> bool:
        """Whether :attr:`metrics` pools records of more than one GPU."""
        return len(self.per_gpu) > 1

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.metrics.to_dict(),
            "pooled_over_gpus": [g.gpu for g in self.per_gpu] if self.pooled else None,
            "per_gpu": [{"gpu": g.gpu, **g.metrics.to_dict()} for g in self.per_gpu],
            "source": self.source,
            "gpu_override": self.gpu_override,
            "synthetic": self.synthetic,
            "archive": self.archive,
            "not_modelled": self.not_modelled,
            "groups": [
                {"gpu": g.gpu, "workload": g.workload, **g.metrics.to_dict()} for g in self.groups
            ],
        }


def accuracy_report(
    measurements: str | os.PathLike[str] | Sequence[MeasurementRecord],
    *,
    gpu: str | os.PathLike[str] | GPUSpec | None = None,
    predictor: Predictor | None = None,
) -> AccuracyReport:
    """Read (or take) records, predict them, and compute the metrics overall and per group.

    ``measurements`` may be a JSON-lines file or a hardware-run archive (``.tar.gz``, its
    ``measurements.jsonl``); an archive marked synthetic makes the report synthetic.
    """
    archive = None
    if isinstance(measurements, (str, os.PathLike)) and is_archive(measurements):
        run = open_run_archive(measurements)
        archive = run.summary()
        records = read_measurements(run.file("measurements.jsonl"))
        source = os.fspath(measurements)
    elif isinstance(measurements, (str, os.PathLike)):
        records = read_measurements(measurements)
        source = os.fspath(measurements)
    else:
        records = list(measurements)
        source = "<records>"
    # measured kernels the model does not cover yet are kept out of the metrics, and counted
    not_modelled = sum(r.kernel.variant not in perfmodel.MODELLED_VARIANTS for r in records)
    records = [r for r in records if r.kernel.variant in perfmodel.MODELLED_VARIANTS]
    pred = predict_records(records, gpu=gpu, predictor=predictor)
    meas = np.array([r.time_s for r in records], dtype=np.float64)
    groups: dict[tuple[str, str], list[int]] = {}
    for i, r in enumerate(records):
        groups.setdefault((r.gpu, r.workload_ref), []).append(i)
    group_reports = tuple(
        GroupReport(gpu=g, workload=_short_ref(w), metrics=accuracy_metrics(pred[idx], meas[idx]))
        for (g, w), idx in groups.items()
    )
    by_gpu: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        by_gpu.setdefault(r.gpu, []).append(i)
    per_gpu = tuple(GroupReport(gpu=g, workload="*", metrics=accuracy_metrics(pred[idx], meas[idx]))
                    for g, idx in by_gpu.items())
    override = None
    if gpu is not None:
        override = gpu.id if isinstance(gpu, GPUSpec) else os.fspath(gpu)
    synthetic = any("synthetic" in str(r.raw.get("note", "")).lower() for r in records)
    synthetic = synthetic or bool(archive and archive.get("synthetic"))
    return AccuracyReport(
        source=source, gpu_override=override, records=tuple(records), predicted_s=pred, measured_s=meas,
        metrics=accuracy_metrics(pred, meas), groups=group_reports, synthetic=synthetic, archive=archive,
        not_modelled=not_modelled, per_gpu=per_gpu,
    )


def _short_ref(ref: str) -> str:
    if ref.startswith("{"):
        return "inline:" + ref[:60] + ("..." if len(ref) > 60 else "")
    return ref


# ---- plot: data, then rendering -------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ScatterInfo:
    """What the scatter plot shows: one series per (GPU, workload), in milliseconds."""

    series: tuple[tuple[str, tuple[float, ...], tuple[float, ...]], ...]  # label, measured ms, predicted ms
    lo_ms: float
    hi_ms: float
    title: str
    predicted_best: tuple[float, float]  # (measured ms, predicted ms) of the predicted-best record
    measured_best: tuple[float, float]


def scatter_info(report: AccuracyReport) -> ScatterInfo:
    """The plot's data: series per group, the y = x range, the two best points."""
    groups: dict[tuple[str, str], list[int]] = {}
    for i, r in enumerate(report.records):
        groups.setdefault((r.gpu, r.workload_ref), []).append(i)
    series = []
    for (g, w), idx in groups.items():
        name = Path(w).stem if not w.startswith("{") else "inline workload"
        series.append((f"{g} / {name}", tuple(float(report.measured_s[i]) * 1e3 for i in idx),
                       tuple(float(report.predicted_s[i]) * 1e3 for i in idx)))
    both = np.concatenate([report.measured_s, report.predicted_s]) * 1e3
    positive = both[both > 0]
    lo = float(positive.min()) if positive.size else 1e-3
    hi = float(both.max()) if both.size else 1.0
    m = report.metrics
    title = (f"pooled over {len(report.per_gpu)} GPUs: " if report.pooled else "") + (f"n={m.n}  MAPE={m.mape:.1%}  Spearman={_fmt(m.spearman)}  Kendall={_fmt(m.kendall)}  "
             f"top-1 regret={m.top1_regret:.1%}")
    pb, mb = m.predicted_best_index, m.measured_best_index
    return ScatterInfo(
        series=tuple(series), lo_ms=lo / 1.1, hi_ms=hi * 1.1, title=title,
        predicted_best=(float(report.measured_s[pb]) * 1e3, float(report.predicted_s[pb]) * 1e3),
        measured_best=(float(report.measured_s[mb]) * 1e3, float(report.predicted_s[mb]) * 1e3),
    )


def _fmt(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:.3f}"


def render_scatter(report: AccuracyReport, path: str | os.PathLike[str]) -> Path:
    """Draw predicted vs measured (log-log, y = x and +-20% lines) to a PNG file."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    info = scatter_info(report)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6.4, 5.6), dpi=120)
    try:
        for label, meas, pred in info.series:
            ax.scatter(meas, pred, s=14, alpha=0.75, label=label)
        xs = np.geomspace(info.lo_ms, info.hi_ms, 50)
        ax.plot(xs, xs, "k-", lw=0.8, label="predicted = measured")
        ax.plot(xs, xs * 1.2, "k:", lw=0.6, label="±20%")
        ax.plot(xs, xs / 1.2, "k:", lw=0.6)
        ax.scatter(*info.measured_best, marker="*", s=160, facecolors="none", edgecolors="green", label="measured best")
        ax.scatter(*info.predicted_best, marker="o", s=120, facecolors="none", edgecolors="red", label="predicted best")
        ax.set_xscale("log")
        ax.set_yscale("log")
        from matplotlib.ticker import NullFormatter

        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xlim(info.lo_ms, info.hi_ms)
        ax.set_ylim(info.lo_ms, info.hi_ms)
        ax.set_xlabel("measured time per call (ms)")
        ax.set_ylabel("predicted time per call (ms)")
        ax.set_title(info.title, fontsize=8)
        ax.legend(fontsize=7, loc="upper left")
        ax.grid(True, which="both", alpha=0.2)
        fig.tight_layout()
        fig.savefig(out)
    finally:
        plt.close(fig)
    return out


def render_markdown(report: AccuracyReport, *, plot: str | None = None, worst: int = 10) -> str:
    """A Markdown summary: metrics, per-group metrics, the largest errors."""
    m = report.metrics
    lines = [
        f"# Accuracy report: {Path(report.source).name}",
        "",
        f"Source: `{report.source}`" + ("  (synthetic data)" if report.synthetic else ""),
        f"GPU spec: {report.gpu_override or 'each record’s own'}",
        "",
        "| GPU | records | MAPE | Spearman | Kendall tau-b | top-1 regret |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for g in report.per_gpu or (GroupReport(gpu="all", workload="*", metrics=m),):
        gm = g.metrics
        lines.append(f"| {g.gpu} | {gm.n} | {gm.mape:.2%} | {_fmt(gm.spearman)} | {_fmt(gm.kendall)} | "
                     f"{gm.top1_regret:.2%} |")
    if report.pooled:
        lines.append(f"| pooled over {len(report.per_gpu)} GPUs (ranks mix GPUs: not a per-GPU figure) | {m.n} | "
                     f"{m.mape:.2%} | {_fmt(m.spearman)} | {_fmt(m.kendall)} | {m.top1_regret:.2%} |")
    lines.append("")
    if len(report.groups) > 1:
        lines += ["## Per GPU and workload", "", "| GPU | workload | n | MAPE | Spearman | Kendall | top-1 regret |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for g in report.groups:
            gm = g.metrics
            lines.append(f"| {g.gpu} | `{Path(g.workload).name}` | {gm.n} | {gm.mape:.2%} | {_fmt(gm.spearman)} | "
                         f"{_fmt(gm.kendall)} | {gm.top1_regret:.2%} |")
        lines.append("")
    err = np.abs(report.predicted_s - report.measured_s) / report.measured_s
    order = np.argsort(-err, kind="stable")[:worst]
    lines += [f"## Largest errors (top {len(order)})", "", "| line | GPU | kernel | measured ms | predicted ms | error |",
              "| --- | --- | --- | --- | --- | --- |"]
    for i in order:
        r = report.records[int(i)]
        k = r.kernel
        desc = (f"{k.variant} b{k.block_size} r{k.register_cap} p{k.prefetch_distance} pin{k.pinned_row_fraction:g} "
                f"{k.bounds_check}")
        lines.append(f"| {r.line} | {r.gpu} | {desc} | {r.time_s * 1e3:.4f} | {report.predicted_s[int(i)] * 1e3:.4f} | "
                     f"{err[int(i)]:.1%} |")
    if plot:
        lines += ["", f"![predicted vs measured]({plot})"]
    return "\n".join(lines) + "\n"
