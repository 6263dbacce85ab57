"""Plots of a pipeline run and of a batch sweep (Optuna's split: pure ``get_*_info`` + renderer).

``get_pipeline_plot_info`` and ``get_sweep_plot_info`` return plain data (tested); the
``plot_*`` functions draw it with matplotlib's Agg backend into a PNG (imported only there).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from perfmodel.pipeline._pipeline import PipelineResult, crossover_of
from perfmodel.pipeline._schedule import COPY_ENGINES

__all__ = ["get_pipeline_plot_info", "get_sweep_plot_info", "plot_pipeline", "plot_sweep"]

_ENGINE_LABELS = {v: k for k, v in COPY_ENGINES.items()}


def get_pipeline_plot_info(result: PipelineResult) -> dict[str, Any]:
    """The stage stack (seconds per stage, largest first) and each stream's timeline of ops."""
    sch = result.schedule
    lanes: dict[str, list[dict[str, Any]]] = {}
    if sch is not None:
        for i, op in enumerate(result.ops):
            s = sch.streams[i]
            lane = _ENGINE_LABELS.get(s, f"stream {s}") if result.device_kind == "gpu" else "cpu"
            if sch.end_s[i] > sch.start_s[i]:
                lanes.setdefault(lane, []).append({"name": op.name, "stage": op.stage, "start_s": sch.start_s[i],
                                                   "end_s": sch.end_s[i]})
    order = sorted(lanes, key=lambda k: (k in ("h2d", "d2h"), k))
    return {
        "title": f"{result.model} on {result.device}, batch {result.batch_size}, {result.dtype}, "
                 f"{result.streams_used} of {result.streams_requested} streams",
        "time_s": result.time_s,
        "stages": sorted(result.stages.items(), key=lambda kv: -kv[1]),
        "lanes": [(k, lanes[k]) for k in order],
    }


def get_sweep_plot_info(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Latency and throughput against batch size per device, and each GPU-CPU crossover."""
    devices: dict[str, dict[str, Any]] = {}
    for r in sorted(rows, key=lambda r: (r["device"], r["batch_size"])):
        d = devices.setdefault(r["device"], {"kind": r["device_kind"], "batch_size": [], "time_s": [],
                                             "throughput_samples_per_s": []})
        d["batch_size"].append(r["batch_size"])
        d["time_s"].append(r["time_s"])
        d["throughput_samples_per_s"].append(r["throughput_samples_per_s"])
    cross = [{"gpu": g, "cpu": c, "batch_size": crossover_of(rows, g, c)}
             for g in devices if devices[g]["kind"] == "gpu" for c in devices if devices[c]["kind"] == "cpu"]
    return {"devices": devices, "crossovers": cross}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_pipeline(result: PipelineResult, path: str | os.PathLike[str]) -> str:
    """Draw the stage stack and the stream timeline of ``result`` into the PNG ``path``."""
    info = get_pipeline_plot_info(result)
    plt = _pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.5), gridspec_kw={"width_ratios": [1, 4]})
    stages = [s for s, _ in info["stages"]]
    colors = {s: plt.get_cmap("tab10")(i % 10) for i, s in enumerate(stages)}
    bottom = 0.0
    for s, v in info["stages"]:
        ax1.bar([0], [v * 1e6], bottom=[bottom], color=colors[s], label=s)
        bottom += v * 1e6
    ax1.set_xticks([])
    ax1.set_ylabel("us per batch")
    ax1.set_title("stages")
    ax1.legend(fontsize=7, loc="upper right")
    for y, (_, items) in enumerate(info["lanes"]):
        for it in items:
            ax2.barh(y, (it["end_s"] - it["start_s"]) * 1e6, left=it["start_s"] * 1e6, color=colors.get(it["stage"], "grey"),
                     edgecolor="black", linewidth=0.3)
    ax2.set_yticks(range(len(info["lanes"])))
    ax2.set_yticklabels([lane for lane, _ in info["lanes"]])
    ax2.invert_yaxis()
    ax2.set_xlabel("us")
    ax2.set_title("timeline")
    fig.suptitle(info["title"])
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def plot_sweep(rows: Sequence[Mapping[str, Any]], path: str | os.PathLike[str], title: str = "") -> str:
    """Draw latency and throughput against batch size per device, crossovers marked, into ``path``."""
    info = get_sweep_plot_info(rows)
    plt = _pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for dev, d in info["devices"].items():
        style = "-o" if d["kind"] == "gpu" else "--s"
        ax1.plot(d["batch_size"], [t * 1e3 for t in d["time_s"]], style, label=dev, markersize=4)
        ax2.plot(d["batch_size"], d["throughput_samples_per_s"], style, label=dev, markersize=4)
    for c in info["crossovers"]:
        if c["batch_size"] is not None:
            for ax in (ax1, ax2):
                ax.axvline(c["batch_size"], color="grey", linestyle=":", linewidth=1)
            ax1.annotate(f"{c['gpu']} < {c['cpu']}\nfrom {c['batch_size']}", (c["batch_size"], ax1.get_ylim()[1]),
                         fontsize=7, va="top")
    for ax, label in ((ax1, "latency per batch (ms)"), (ax2, "throughput (samples/s)")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("batch size")
        ax.set_ylabel(label)
        ax.grid(True, which="both", linewidth=0.3)
    ax1.legend(fontsize=8)
    fig.suptitle(title or "latency and throughput against batch size")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)
