#!/usr/bin/env python3
"""The figures of docs/pipeline.md's findings table, from ``perfmodel.pipeline``.

Each section answers one row of the table ("What the model says, against the seed papers")
as the seed papers asked it (DeepRecSys, the IISWC'20 characterization, StreamRec, MP-Rec),
on the A100-80GB with both embedding kernels (``pt``: PyTorch's one ``EmbeddingBag``
launch per table; ``tbe``: FBGEMM's structure, one table-batched launch for every table)
and on the Cascade Lake (xeon-8280) and Sapphire Rapids (xeon-8480) sockets. fp32 unless a
row says otherwise.

    .venv/bin/python scripts/pipeline_findings.py [--quick] [--json]

``--quick``: RMC1-RMC3 only and no H100 column (the stream row).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from perfmodel import pipeline as pp

DEEPRECSYS = ("rmc1", "rmc2", "rmc3", "ncf", "wnd", "mt-wnd", "din", "dien")
GPU, H100, CPU, SPR = "a100-80gb", "h100-sxm", "xeon-8280", "xeon-8480"
KERNELS = {"pt": "pytorch", "tbe": "tbe"}
SHARE_BATCHES = (1, 16, 256, 1024)
SWEEP_BATCHES = (1, 4, 16, 64, 256, 1024, 4096)
#: DeepRecSys' tail target and the batch sizes of docs/pipeline.md's `pipeline-sweep --latency-target-ms 25`
TAIL_TARGET_S, TAIL_BATCHES, TAIL_STREAMS = 0.025, (16, 64, 256, 1024), (1, 2, 3, 4)
ROUTE_SIZES = (1, 4, 16, 64, 256, 1024)
REPS = ("table", "dhe", "hybrid", "int8", "fp16")


def _run(model: str, device: str, batch: int, kernel: str = "pt", **kw: Any) -> pp.PipelineResult:
    return pp.run_pipeline(model, device, batch, embedding_kernel=KERNELS[kernel], **kw)


def _us(t: float) -> str:
    return f"{t * 1e6:,.0f}"


def _pct(x: float) -> str:
    return f"{x:.0%}"


def embedding_share(models: Sequence[str]) -> dict[str, Any]:
    """Share of the embedding stage in one batch of 256 (RMC1/RMC2 embedding-, RMC3 MLP-dominated)."""
    return {m: {"cpu_8280": _run(m, CPU, 256).embedding_share,
                **{f"a100_{k}": _run(m, GPU, 256, k).embedding_share for k in KERNELS}} for m in models}


def share_vs_batch(models: Sequence[str]) -> dict[str, Any]:
    """Embedding share at batch 1, 16, 256, 1024 (DeepRecSys measured it rising on CPUs); on the A100
    also with the inputs already on the device (no host->device copies, as DeepRecSys' CPUs have none)."""
    out: dict[str, Any] = {}
    for m in models:
        out[m] = {"cpu_8280": [_run(m, CPU, b).embedding_share for b in SHARE_BATCHES],
                  **{f"a100_{k}": [_run(m, GPU, b, k).embedding_share for b in SHARE_BATCHES] for k in KERNELS},
                  **{f"a100_{k}_on_device": [_run(m, GPU, b, k, transfers=False).embedding_share for b in SHARE_BATCHES]
                     for k in KERNELS}}
    return out


def batch_1(models: Sequence[str]) -> dict[str, Any]:
    """Latency at batch 1: the best CPU against the A100 (DeepRecSys: CPUs win small queries)."""
    out: dict[str, Any] = {}
    for m in models:
        cpus = {c: _run(m, c, 1).time_s for c in pp.cpu_ids()}
        best = min(cpus, key=lambda c: cpus[c])
        out[m] = {"best_cpu": best, "best_cpu_s": cpus[best], **{f"a100_{k}_s": _run(m, GPU, 1, k).time_s for k in KERNELS}}
    return out


def batch_1024(models: Sequence[str]) -> dict[str, Any]:
    """Latency at batch 1024, A100 (one and four streams) against the 8280 and the 8480."""
    out: dict[str, Any] = {}
    for m in models:
        row: dict[str, Any] = {"cpu_8280_s": _run(m, CPU, 1024).time_s, "cpu_8480_s": _run(m, SPR, 1024).time_s}
        for k in KERNELS:
            one = _run(m, GPU, 1024, k)
            row[f"a100_{k}_s"] = one.time_s
            row[f"a100_{k}_4s_s"] = _run(m, GPU, 1024, k, streams=4).time_s
            row[f"a100_{k}_transfer_share"] = one.stages.get("transfer", 0.0) / one.time_s
        out[m] = row
    return out


def crossovers(models: Sequence[str]) -> dict[str, Any]:
    """Smallest swept batch from which the A100 (one stream) beats each CPU at every larger batch."""
    out: dict[str, Any] = {}
    for m in models:
        cpu_rows = pp.sweep_batch(m, [CPU, SPR], SWEEP_BATCHES)
        row = {}
        for k, ek in KERNELS.items():
            rows = pp.sweep_batch(m, [GPU], SWEEP_BATCHES, embedding_kernel=ek) + cpu_rows
            for c in (CPU, SPR):
                row[f"{k}_vs_{c[-4:]}"] = pp.crossover_of(rows, GPU, c)
        out[m] = row
    return out


def _best(configs: Sequence[dict[str, Any]], kind: str, mode: str | None = None) -> dict[str, Any] | None:
    """The configuration of device ``kind`` (and CPU ``mode``) that serves the most samples/s within the target."""
    ok = [c for c in configs if c["device_kind"] == kind and mode in (None, c["mode"]) and c["meets_target"]]
    return max(ok, key=lambda c: (c["throughput_samples_per_s"], -c["batch_size"])) if ok else None


def _brief(c: dict[str, Any] | None) -> dict[str, Any] | None:
    if c is None:
        return None
    return {"device": c["device"], "mode": c["mode"], "batch_size": c["batch_size"],
            "samples_per_s": c["throughput_samples_per_s"], "bound": c["bound"]}


def latency_bounded(models: Sequence[str]) -> dict[str, Any]:
    """DeepRecSys' question: most samples/s under p99 <= 25 ms (its query sizes), A100 1-4 streams
    and the 8280 in both CPU modes; and each query size routed to its fastest device (4 streams)."""
    out: dict[str, Any] = {}
    for m in models:
        row: dict[str, Any] = {}
        for k, ek in KERNELS.items():
            lb = pp.latency_bounded_throughput(m, [GPU, CPU], latency_target_s=TAIL_TARGET_S, batch_sizes=TAIL_BATCHES,
                                               streams=TAIL_STREAMS, embedding_kernel=ek)
            cfg = lb["configs"]
            row[f"{k}_best"] = _brief(lb["best"] if lb["best"] and lb["best"]["meets_target"] else None)
            row[f"{k}_best_gpu"] = _brief(_best(cfg, "gpu"))
            if k == "pt":  # the CPU configurations do not depend on the GPU's embedding kernel
                for mode in pp.CPU_MODES:
                    row[f"cpu_{mode}"] = _brief(_best(cfg, "cpu", mode))
                for mode, key in (("core-per-query", "cpu_core_per_query_by_batch"), ("socket", "cpu_socket_by_batch")):
                    row[key] = {c["batch_size"]: c["throughput_samples_per_s"] for c in cfg
                                if c["device"] == CPU and c["mode"] == mode}
            sweep = pp.sweep_batch(m, [GPU, CPU], ROUTE_SIZES, streams=4, embedding_kernel=ek)
            by = {(r["device"], r["batch_size"]): r["time_s"] for r in sweep}
            row[f"{k}_route"] = {b: GPU if by[(GPU, b)] < by[(CPU, b)] else CPU for b in ROUTE_SIZES}
        out[m] = row
    return out


def streams(models: Sequence[str], gpus: Sequence[str]) -> dict[str, Any]:
    """Batch 256, four streams against one (StreamRec: up to -27.8% latency)."""
    out: dict[str, Any] = {}
    for m in models:
        row: dict[str, Any] = {}
        for g in gpus:
            for k in KERNELS:
                one, four = _run(m, g, 256, k), _run(m, g, 256, k, streams=4)
                row[f"{g}_{k}"] = {"one_s": one.time_s, "four_s": four.time_s, "change": four.time_s / one.time_s - 1,
                                   "streams_used": four.streams_used}
        out[m] = row
    return out


def pipelining(models: Sequence[str]) -> dict[str, Any]:
    """Batch 1024 on the A100: steady-state throughput over batch / latency (copies overlap compute)."""
    out: dict[str, Any] = {}
    for m in models:
        row = {}
        for k in KERNELS:
            r = _run(m, GPU, 1024, k)
            row[k] = {"gain": r.throughput_samples_per_s / (r.batch_size / r.time_s), "time_s": r.time_s,
                      "transfer_s": r.stages.get("transfer", 0.0)}
        out[m] = row
    return out


def representations() -> dict[str, Any]:
    """Criteo Kaggle at batch 1024: each representation for every table, memory and latency."""
    out: dict[str, Any] = {}
    for rep in REPS:
        cpu = _run("criteo-kaggle", CPU, 1024, representations=rep)
        out[rep] = {"table_gb": cpu.memory["table_bytes"] / 1e9, "cpu_8280_s": cpu.time_s,
                    **{f"a100_{k}_s": _run("criteo-kaggle", GPU, 1024, k, representations=rep).time_s for k in KERNELS}}
    return out


def choice() -> dict[str, Any]:
    """MP-Rec's question: a representation per table under 0.5 GB and 2 ms, Criteo Kaggle batch 1024,
    fp16 matrix products (the choice needs per-table costs: PyTorch's per-table kernel)."""
    out: dict[str, Any] = {}
    for dev in (GPU, CPU):
        c = pp.choose_representations("criteo-kaggle", dev, 1024, memory_budget_bytes=0.5e9, latency_target_s=2e-3,
                                      dtype="fp16")
        out[dev] = {"counts": {r: n for r, n in c["counts"].items() if n}, "embedding_gb": c["embedding_bytes"] / 1e9,
                    "time_s": c["time_s"], "feasible": c["feasible"]}
    return out


def collect(quick: bool) -> dict[str, Any]:
    models = DEEPRECSYS[:3] if quick else DEEPRECSYS
    return {
        "embedding_share_b256": embedding_share(models),
        "share_vs_batch": share_vs_batch(models),
        "batch_1": batch_1(models),
        "batch_1024": batch_1024(models),
        "crossover": crossovers(models),
        "latency_bounded_p99_25ms": latency_bounded(DEEPRECSYS[:3]),
        "streams_b256": streams(models, (GPU,) if quick else (GPU, H100)),
        "pipelining_b1024": pipelining(models),
        "criteo_kaggle_representations_b1024": representations(),
        "representation_choice_0.5gb_2ms_fp16": choice(),
    }


def _section(title: str, header: Sequence[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    return "\n".join([f"\n== {title}", fmt.format(*header), *(fmt.format(*r) for r in rows)])


def render(d: dict[str, Any]) -> str:
    out = [f"perfmodel.pipeline findings (A100 = {GPU}; pt = PyTorch per-table launches, tbe = one table-batched launch)"]
    s = d["embedding_share_b256"]
    out.append(_section("embedding share, batch 256", ["model", "8280", "A100 pt", "A100 tbe"],
                        [[m, _pct(v["cpu_8280"]), _pct(v["a100_pt"]), _pct(v["a100_tbe"])] for m, v in s.items()]))
    s = d["share_vs_batch"]
    keys = ("cpu_8280", "a100_pt", "a100_tbe", "a100_pt_on_device", "a100_tbe_on_device")
    out.append(_section(f"embedding share (%) vs batch {'/'.join(map(str, SHARE_BATCHES))} (dev: inputs on the device)",
                        ["model", "8280", "A100 pt", "A100 tbe", "A100 pt dev", "A100 tbe dev"],
                        [[m, *(" ".join(f"{x * 100:.0f}" for x in v[k]) for k in keys)] for m, v in s.items()]))
    s = d["batch_1"]
    out.append(_section("batch 1 latency, us", ["model", "best CPU", "CPU us", "A100 pt", "A100 tbe"],
                        [[m, v["best_cpu"], _us(v["best_cpu_s"]), _us(v["a100_pt_s"]), _us(v["a100_tbe_s"])]
                         for m, v in s.items()]))
    s = d["batch_1024"]
    out.append(_section("batch 1024 latency, us (4s: four streams; xfer: copies' share of the one-stream batch)",
                        ["model", "8280", "8480", "pt", "pt 4s", "pt xfer", "tbe", "tbe 4s", "tbe xfer"],
                        [[m, _us(v["cpu_8280_s"]), _us(v["cpu_8480_s"]), _us(v["a100_pt_s"]), _us(v["a100_pt_4s_s"]),
                          _pct(v["a100_pt_transfer_share"]), _us(v["a100_tbe_s"]), _us(v["a100_tbe_4s_s"]),
                          _pct(v["a100_tbe_transfer_share"])] for m, v in s.items()]))
    s = d["crossover"]
    out.append(_section(f"crossover: A100 (one stream) faster from batch (sweep {','.join(map(str, SWEEP_BATCHES))})",
                        ["model", "pt vs 8280", "pt vs 8480", "tbe vs 8280", "tbe vs 8480"],
                        [[m, *(str(v[c]) if v[c] is not None else "never" for c in
                               ("pt_vs_8280", "pt_vs_8480", "tbe_vs_8280", "tbe_vs_8480"))] for m, v in s.items()]))

    def cfg(c: dict[str, Any] | None) -> str:
        if c is None:
            return "none"
        dev = "A100" if c["device"] == GPU else c["device"][-4:]
        return f"{dev} {c['mode']} b{c['batch_size']} {c['samples_per_s'] / 1e3:,.0f}k"

    s = d["latency_bounded_p99_25ms"]
    out.append(_section("p99 <= 25 ms, DeepRecSys query sizes (samples/s): 8280 modes, best overall",
                        ["model", "8280 core-per-query", "8280 socket", "A100 best (pt)", "best (pt)", "best (tbe)"],
                        [[m, cfg(v["cpu_core-per-query"]), cfg(v["cpu_socket"]), cfg(v["pt_best_gpu"]), cfg(v["pt_best"]),
                          cfg(v["tbe_best"])]
                         for m, v in s.items()]))
    out.append(_section("8280 samples/s by batch under p99 <= 25 ms (k; 0 = cannot meet)",
                        ["model", "mode", *map(str, TAIL_BATCHES)],
                        [[m, mode, *(f"{v[key][b] / 1e3:,.0f}" for b in TAIL_BATCHES)] for m, v in s.items()
                         for mode, key in (("core-per-query", "cpu_core_per_query_by_batch"), ("socket", "cpu_socket_by_batch"))]))
    out.append(_section(f"routing by query size {','.join(map(str, ROUTE_SIZES))} (A100 4 streams or 8280)",
                        ["model", "pt", "tbe"],
                        [[m, *(" ".join("G" if v[f"{k}_route"][b] == GPU else "C" for b in ROUTE_SIZES) for k in KERNELS)]
                         for m, v in s.items()]))
    s = d["streams_b256"]
    gpus = sorted({key.rsplit("_", 1)[0] for v in s.values() for key in v}, key=[GPU, H100].index)
    out.append(_section("batch 256, four streams vs one (us -> us, change)",
                        ["model", *(f"{'A100' if g == GPU else 'H100'} {k}" for g in gpus for k in KERNELS)],
                        [[m, *(f"{_us(v[f'{g}_{k}']['one_s'])}->{_us(v[f'{g}_{k}']['four_s'])} "
                               f"{v[f'{g}_{k}']['change']:+.0%}" for g in gpus for k in KERNELS)] for m, v in s.items()]))
    s = d["pipelining_b1024"]
    out.append(_section("batch 1024, A100: steady-state throughput / (batch / latency); copies' us",
                        ["model", "pt", "pt copies", "tbe", "tbe copies"],
                        [[m, *(x for k in KERNELS for x in (f"{v[k]['gain']:.2f}", _us(v[k]["transfer_s"])))]
                         for m, v in s.items()]))
    s = d["criteo_kaggle_representations_b1024"]
    fp32 = s["table"]["table_gb"]
    out.append(_section("Criteo Kaggle, batch 1024, every table one representation",
                        ["repr", "GB", "x fp32", "A100 pt us", "A100 tbe us", "8280 us"],
                        [[r, f"{v['table_gb']:.3f}", f"{v['table_gb'] / fp32:.3f}", _us(v["a100_pt_s"]),
                          _us(v["a100_tbe_s"]), _us(v["cpu_8280_s"])] for r, v in s.items()]))
    s = d["representation_choice_0.5gb_2ms_fp16"]
    out.append(_section("representation choice, Criteo Kaggle batch 1024, <= 0.5 GB and 2 ms, fp16 (pt)",
                        ["device", "tables", "GB", "us", "feasible"],
                        [[dev, " + ".join(f"{n} {r}" for r, n in v["counts"].items()), f"{v['embedding_gb']:.3f}",
                          _us(v["time_s"]), str(v["feasible"])] for dev, v in s.items()]))
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="RMC1-RMC3 only, no H100 column")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    d = collect(args.quick)
    print(json.dumps(d) if args.json else render(d))


if __name__ == "__main__":
    main()
