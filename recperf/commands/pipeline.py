"""``recperf models``, ``recperf cpus``, ``recperf pipeline`` and ``recperf pipeline-sweep``:
whole-inference latency of recommendation models on GPUs and CPUs (perfmodel.pipeline)."""

from __future__ import annotations

import argparse
from typing import Any

from recperf._common import add_json_flag, emit, format_table


def register(sub: Any) -> None:
    p = sub.add_parser("models", help="list the model zoo (built-in recommendation models)")
    add_json_flag(p)
    p.set_defaults(func=run_models)

    p = sub.add_parser("cpus", help="list the CPU platforms of the pipeline model")
    p.add_argument("--sources", action="store_true", help="show where every number comes from")
    add_json_flag(p)
    p.set_defaults(func=run_cpus)

    p = sub.add_parser("pipeline", help="end-to-end inference latency of a model on a GPU or CPU, stage by stage")
    _model_args(p)
    p.add_argument("--device", required=True, help="GPU id (`recperf gpus`) or CPU id (`recperf cpus`), or a spec file")
    p.add_argument("--batch-size", type=int, required=True, help="samples per inference call")
    p.add_argument("--streams", type=int, default=1, help="at most this many CUDA streams (GPU; default 1, as PyTorch)")
    emb = p.add_mutually_exclusive_group()
    emb.add_argument("--embedding-config", metavar="K.toml",
                     help="embedding kernel configuration (CONTRACT.md format); reports the speedup over the baseline")
    emb.add_argument("--seed-config", action="store_true",
                     help="the seed paper's combined configuration (register cap 42, prefetch 2, 12%% pinned by "
                          "evict-last prefetch); reports the speedup over the baseline")
    emb.add_argument("--searched", action="store_true",
                     help="search each table's kernel configuration (issue 6's `search`, model fidelity); "
                          "reports the speedup over the baseline")
    p.add_argument("--search-trials", type=int, default=60, help="trials per distinct table with --searched (default 60)")
    p.add_argument("--representation", default=None,
                   help="embedding representation for all tables: table, dhe or hybrid (default table)")
    p.add_argument("--memory-budget-gb", type=float, default=None,
                   help="choose a representation per table under this embedding memory budget (GB)")
    p.add_argument("--latency-target-ms", type=float, default=None,
                   help="with --memory-budget-gb: a latency target (ms); with --prefer-hybrid, upgrade tables to hybrid within it")
    p.add_argument("--prefer-hybrid", action="store_true", help="with --memory-budget-gb: use hybrid where budget and target allow")
    p.add_argument("--inputs-on-device", action="store_true",
                   help="leave out the host<->device copies (inputs already on the GPU, as kernel harnesses run)")
    p.add_argument("--ops", action="store_true", help="include every operator's timing and stream in the output")
    add_json_flag(p)
    p.set_defaults(func=run_pipeline)

    p = sub.add_parser("pipeline-sweep", help="latency and throughput against batch size on GPUs and CPUs, and the crossover")
    _model_args(p)
    p.add_argument("--devices", default="a100-80gb,h100-sxm,xeon-8280,xeon-8480", help="comma-separated device ids")
    p.add_argument("--batch-sizes", default="1,2,4,8,16,32,64,128,256,512,1024,2048,4096", help="comma-separated")
    p.add_argument("--streams", type=int, default=1)
    add_json_flag(p)
    p.set_defaults(func=run_sweep)


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="model id (`recperf models`) or a model .toml file")
    p.add_argument("--dtype", default="fp32", help="matrix-product dtype: fp32 (default, no tensor cores), tf32, fp16, bf16")


def run_models(args: argparse.Namespace) -> int:
    from perfmodel import pipeline as pp

    models = [pp.get_model(i) for i in pp.model_ids()]
    payload = {"models": [m.to_dict() for m in models]}

    def text() -> str:
        rows = [[m.id, m.arch, m.table_calls, f"{m.table_bytes / 1e9:.2f}", "-".join(map(str, m.bottom_mlp)) or "-",
                 "-".join(map(str, m.top_mlp)), m.interaction if m.arch == "dlrm" else m.arch] for m in models]
        return format_table(["id", "arch", "tables", "table GB", "bottom", "top", "interaction"], rows)

    return emit(args, payload, text)


def run_cpus(args: argparse.Namespace) -> int:
    from perfmodel import pipeline as pp

    cpus = [pp.get_cpu(i) for i in pp.cpu_ids()]
    payload = {"cpus": [{**c.to_dict(), "sources": dict(c.sources), "estimates": dict(c.estimates)} for c in cpus]}

    def text() -> str:
        rows = [[c.id, c.name, c.cores, f"{c.clock_hz / 1e9:.2f}", f"{c.peak_flops_per_s / 1e12:.2f}",
                 f"{c.llc_bytes / 2**20:.1f}", f"{c.dram_bandwidth_bytes_per_s / 1e9:.0f}", len(c.estimates)] for c in cpus]
        out = format_table(["id", "name", "cores", "GHz", "FP32 TFLOPS", "LLC MiB", "DDR GB/s", "estimates"], rows)
        if args.sources:
            for c in cpus:
                out += f"\n\n{c.id}:"
                for k in c.sources:
                    est = f"  [ESTIMATE: {c.estimates[k]}]" if k in c.estimates else ""
                    out += f"\n  {k} = {getattr(c, k)}: {c.sources[k]}{est}"
        return out

    return emit(args, payload, text)


def _searched_kernels(model: Any, gpu: str, batch: int, trials: int) -> dict[str, Any]:
    import perfmodel
    import search

    out: dict[str, Any] = {}
    seen: dict[tuple[Any, int], Any] = {}
    for f in model.features:
        t = f.table
        single = perfmodel.Table(rows=t.rows, dim=t.dim, dtype=t.dtype, pooling=t.pooling, pooling_mean=t.pooling_mean,
                                 pooling_dist=t.pooling_dist, count=1, indices=t.indices)
        key = (single, batch * f.sequence)
        if key not in seen:
            wl = perfmodel.Workload(batch_size=batch * f.sequence, tables=(single,))
            seen[key] = search.optimize(wl, gpu, n_trials=trials, seed=0, storage=":memory:").best_config
        out[f.name] = seen[key]
    return out


def run_pipeline(args: argparse.Namespace) -> int:
    import perfmodel
    from perfmodel import pipeline as pp

    model = pp.get_model(args.model)
    dev = pp.resolve_device(args.device)
    is_gpu = isinstance(dev, perfmodel.GPUSpec)
    reps: Any = args.representation
    choice: dict[str, Any] | None = None
    if args.memory_budget_gb is not None:
        choice = pp.choose_representations(
            model, args.device, args.batch_size, memory_budget_bytes=args.memory_budget_gb * 1e9,
            latency_target_s=None if args.latency_target_ms is None else args.latency_target_ms / 1e3,
            prefer_hybrid=args.prefer_hybrid, streams=args.streams)
        reps = choice["representations"]
    base = pp.run_pipeline(model, dev, args.batch_size, streams=args.streams, dtype=args.dtype, representations=reps,
                           transfers=not args.inputs_on_device)
    result = base
    compare: dict[str, Any] | None = None
    if is_gpu and (args.embedding_config or args.seed_config or args.searched):
        kernel, kernels, label = None, None, ""
        if args.embedding_config:
            kernel, label = perfmodel.load_kernel_config(args.embedding_config), args.embedding_config
        elif args.seed_config:
            kernel, label = pp.SEED_COMBINED_KERNEL, "seed-combined"
        else:
            kernels, label = _searched_kernels(model, dev.id, args.batch_size, args.search_trials), "searched"
        result = pp.run_pipeline(model, dev, args.batch_size, streams=args.streams, dtype=args.dtype, kernel=kernel,
                                 kernels=kernels, representations=reps, transfers=not args.inputs_on_device)
        compare = {
            "config": label,
            "kernels": {k: v.to_dict() for k, v in (kernels or {}).items()} or (kernel.to_dict() if kernel else None),
            "baseline_time_s": base.time_s, "baseline_embedding_time_s": base.embedding_time_s,
            "embedding_speedup": base.embedding_time_s / result.embedding_time_s if result.embedding_time_s else None,
            "end_to_end_speedup": base.time_s / result.time_s,
        }
    payload = result.to_dict(with_ops=args.ops)
    if compare:
        payload["compare"] = compare
    if choice:
        payload["representation_choice"] = choice
    # latency and throughput against the stream count (GPU)
    if is_gpu and args.streams > 1:
        curve = []
        for k in range(1, args.streams + 1):
            r = result if k == args.streams else pp.run_pipeline(model, dev, args.batch_size, streams=k, dtype=args.dtype,
                                                                 representations=reps, transfers=not args.inputs_on_device)
            curve.append({"streams": k, "time_s": r.time_s, "throughput_samples_per_s": r.throughput_samples_per_s,
                          "streams_used": r.streams_used})
        payload["by_streams"] = curve
        payload["best_streams"] = min(curve, key=lambda c: (c["time_s"], c["streams"]))["streams"]

    def text() -> str:
        lines = [
            f"{result.model} on {result.device} ({result.device_kind}), batch {result.batch_size}, {result.dtype}: "
            f"{result.time_s * 1e6:,.1f} us per batch, {result.throughput_samples_per_s:,.0f} samples/s",
            f"embedding stage {result.embedding_time_s * 1e6:,.1f} us = {result.embedding_share:.1%} of the time; "
            f"streams used {result.streams_used} of {result.streams_requested}, {result.sync_points} sync points",
        ]
        rows = [[k, f"{v * 1e6:,.1f}", f"{v / result.time_s:.1%}"] for k, v in sorted(result.stages.items(), key=lambda x: -x[1])]
        lines.append(format_table(["stage", "us", "share"], rows))
        mem = result.memory
        lines.append(f"memory: tables {mem['table_bytes'] / 1e9:.2f} GB, dense {mem['dense_weight_bytes'] / 1e6:.1f} MB, "
                     f"capacity {mem['capacity_bytes'] / 1e9:.0f} GB, placement {mem['placement']}"
                     + (f" ({len(mem['host_tables'])} tables host-mapped)" if mem["host_tables"] else ""))
        if compare:
            lines.append(f"with {compare['config']}: embedding x{compare['embedding_speedup']:.2f}, end to end "
                         f"x{compare['end_to_end_speedup']:.2f} (baseline {compare['baseline_time_s'] * 1e6:,.1f} us)")
        if "by_streams" in payload:
            lines.append("streams: " + ", ".join(f"{c['streams']}: {c['time_s'] * 1e6:,.1f} us" for c in payload["by_streams"])
                         + f"; best {payload['best_streams']}")
        if choice:
            lines.append(f"representations: {choice['counts']} ({choice['embedding_bytes'] / 1e9:.2f} GB), "
                         f"feasible {choice['feasible']} {choice['reason']}")
        return "\n".join(lines)

    return emit(args, payload, text)


def run_sweep(args: argparse.Namespace) -> int:
    from perfmodel import InputError
    from perfmodel import pipeline as pp

    devices = [d.strip() for d in args.devices.split(",") if d.strip()]
    try:
        batches = [int(b) for b in args.batch_sizes.split(",") if b.strip()]
    except ValueError:
        raise InputError(f"`--batch-sizes` must be comma-separated integers, but got {args.batch_sizes!r}") from None
    rows = pp.sweep_batch(args.model, devices, batches, streams=args.streams, dtype=args.dtype)
    kinds = {r["device"]: r["device_kind"] for r in rows}
    cross = []
    for g in [d for d, k in kinds.items() if k == "gpu"]:
        for c in [d for d, k in kinds.items() if k == "cpu"]:
            cross.append({"gpu": g, "cpu": c, "gpu_faster_from_batch": _crossover(rows, g, c)})
    payload = {"model": pp.get_model(args.model).id, "rows": rows, "crossover": cross}

    def text() -> str:
        by = {(r["device"], r["batch_size"]): r for r in rows}
        header = ["batch", *[f"{d} us" for d in kinds]]
        table = [[b, *[f"{by[(d, b)]['time_s'] * 1e6:,.1f}" for d in kinds]] for b in batches]
        out = format_table(header, table)
        for c in cross:
            out += f"\n{c['gpu']} beats {c['cpu']} from batch {c['gpu_faster_from_batch']}"
        return out

    return emit(args, payload, text)


def _crossover(rows: list[dict[str, Any]], gpu: str, cpu: str) -> int | None:
    g = {r["batch_size"]: r["time_s"] for r in rows if r["device"] == gpu}
    c = {r["batch_size"]: r["time_s"] for r in rows if r["device"] == cpu}
    cross = None
    for b in sorted(g, reverse=True):
        if g[b] < c[b]:
            cross = b
        else:
            break
    return cross
