"""``recperf models``, ``recperf cpus``, ``recperf pipeline`` and ``recperf pipeline-sweep``:
whole-inference latency of recommendation models on GPUs and CPUs (perfmodel.pipeline)."""

from __future__ import annotations

import argparse
from typing import Any

from recperf._common import add_json_flag, emit, format_table, integer, number, refuse_overwrite


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
    p.add_argument("--batch-size", type=integer, required=True, help="samples per inference call")
    p.add_argument("--streams", type=integer, default=1, help="at most this many CUDA streams (GPU; default 1, as PyTorch; at most 32, the driver's work queues)")
    emb = p.add_mutually_exclusive_group()
    emb.add_argument("--embedding-config", metavar="K.toml",
                     help="embedding kernel configuration (the kernel file format of docs/formats.md); reports the speedup over the baseline")
    emb.add_argument("--seed-config", action="store_true",
                     help="the seed paper's combined configuration (register cap 42, prefetch 2, 12%% pinned by "
                          "evict-last prefetch); reports the speedup over the baseline")
    emb.add_argument("--searched", action="store_true",
                     help="search each table's kernel configuration (`recperf search` on the model, per table); "
                          "reports the speedup over the baseline")
    p.add_argument("--search-trials", type=integer, default=60, help="trials per distinct table with --searched (default 60)")
    p.add_argument("--embedding-kernel", default="pytorch",
                   help="pytorch: one EmbeddingBag launch per table (default); tbe: one table-batched launch for all "
                        "tables (FBGEMM's structure)")
    p.add_argument("--representation", default=None,
                   help="embedding representation for all tables (default table): table, dhe (deep hash embedding), "
                        "hybrid (table + DHE, concatenated), int8 (row-wise quantized, FBGEMM layout), fp16")
    p.add_argument("--memory-budget-gb", type=number, default=None,
                   help="choose a representation per table under this embedding memory budget (GB), exactly (an ILP)")
    p.add_argument("--latency-target-ms", type=number, default=None,
                   help="with --memory-budget-gb: the chosen representations must also meet this latency (ms)")
    p.add_argument("--prefer-hybrid", action="store_true",
                   help="with --memory-budget-gb: maximize the lookups served by hybrid tables, then minimize latency")
    p.add_argument("--cpu-mode", default="socket",
                   help="CPU: socket (each operator on all cores, default) or core-per-query (DeepRecSys: one core per "
                        "batch, every core serving one)")
    p.add_argument("--inputs-on-device", action="store_true",
                   help="leave out the host<->device copies (inputs already on the GPU, as kernel harnesses run)")
    p.add_argument("--ops", action="store_true", help="include every operator's timing and stream in the output")
    p.add_argument("--plot", metavar="P.png", default=None, help="draw the stage stack and the stream timeline into P.png")
    add_json_flag(p)
    p.set_defaults(func=run_pipeline)

    p = sub.add_parser("pipeline-sweep", help="latency and throughput against batch size on GPUs and CPUs, and the crossover")
    _model_args(p)
    p.add_argument("--devices", default="a100-80gb,h100-sxm,xeon-8280,xeon-8480", help="comma-separated device ids")
    p.add_argument("--batch-sizes", default="1,2,4,8,16,32,64,128,256,512,1024,2048,4096", help="comma-separated")
    p.add_argument("--streams", type=integer, default=1, help="at most this many CUDA streams (GPU; at most 32)")
    p.add_argument("--embedding-kernel", default="pytorch",
                   help="pytorch (one launch per table, default) or tbe (one table-batched launch)")
    p.add_argument("--latency-target-ms", type=number, default=None,
                   help="also find the latency-bounded throughput: the best batch size, device and streams (GPU) or "
                        "mode (CPU) whose tail latency meets this target under Poisson arrivals")
    p.add_argument("--percentile", type=number, default=99.0, help="tail percentile for --latency-target-ms (default 99)")
    p.add_argument("--query-sizes", default=None,
                   help="query-size distribution for --latency-target-ms and the per-size routing: normal:MEAN:SD, "
                        "lognormal:MU:SIGMA, fixed:N or list:N1,N2,... (default normal:165:16, DeepRecSys' setting)")
    p.add_argument("--plot", metavar="P.png", default=None,
                   help="draw latency and throughput against batch size per device, crossovers marked, into P.png")
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

    refuse_overwrite({"--plot": args.plot}, {"--model": args.model, "--device": args.device,
                                             "--embedding-config": args.embedding_config})
    pp.check_streams(args.streams)  # before any loop over the stream counts
    model = pp.get_model(args.model)
    dev = pp.resolve_device(args.device)
    is_gpu = isinstance(dev, perfmodel.GPUSpec)
    common: dict[str, Any] = dict(streams=args.streams, dtype=args.dtype, transfers=not args.inputs_on_device,
                                  cpu_mode=args.cpu_mode)
    kernel, kernels, label = None, None, ""
    if is_gpu and args.embedding_config:
        kernel, label = perfmodel.load_kernel_config(args.embedding_config), args.embedding_config
    elif is_gpu and args.seed_config:
        kernel, label = pp.SEED_COMBINED_KERNEL, "seed-combined"
    elif is_gpu and args.searched:
        kernels, label = _searched_kernels(model, dev.id, args.batch_size, args.search_trials), "searched"
    reps: Any = args.representation
    choice: dict[str, Any] | None = None
    if args.memory_budget_gb is not None:
        if args.embedding_kernel != "pytorch":
            raise perfmodel.InputError("--memory-budget-gb chooses per table and needs per-table embedding costs: "
                                       "use --embedding-kernel pytorch")
        # the choice runs the pipeline it reports: its result is the top-level one (one set of numbers)
        choice = pp.choose_representations(
            model, dev, args.batch_size, memory_budget_bytes=args.memory_budget_gb * 1e9,
            latency_target_s=None if args.latency_target_ms is None else args.latency_target_ms / 1e3,
            prefer_hybrid=args.prefer_hybrid, kernel=kernel, kernels=kernels, **common)
        reps = choice["representations"]
        result = choice.pop("result")
    else:
        result = pp.run_pipeline(model, dev, args.batch_size, kernel=kernel, kernels=kernels, representations=reps,
                                 embedding_kernel=args.embedding_kernel, **common)
    compare: dict[str, Any] | None = None
    if label:
        base = pp.run_pipeline(model, dev, args.batch_size, representations=reps, embedding_kernel=args.embedding_kernel,
                               **common)
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
    if not is_gpu:
        other = "core-per-query" if args.cpu_mode == "socket" else "socket"
        alt = pp.run_pipeline(model, dev, args.batch_size, representations=reps, **{**common, "cpu_mode": other})
        payload["cpu_modes"] = {m: {"time_s": r.time_s, "throughput_samples_per_s": r.throughput_samples_per_s}
                                for m, r in ((args.cpu_mode, result), (other, alt))}
    # latency and throughput against the stream count (GPU): measured, more streams may be slower
    if is_gpu and args.streams > 1:
        curve = []
        settled = None  # a run that left a stream unused: every larger count schedules the same
        for k in range(1, args.streams + 1):
            r = settled or (result if k == args.streams else pp.run_pipeline(
                model, dev, args.batch_size, kernel=kernel, kernels=kernels, representations=reps,
                embedding_kernel=args.embedding_kernel, **{**common, "streams": k}))
            if r.streams_used < k:
                settled = r
            curve.append({"streams": k, "time_s": r.time_s, "throughput_samples_per_s": r.throughput_samples_per_s,
                          "streams_used": r.streams_used})
        payload["by_streams"] = curve
        payload["best_streams"] = min(curve, key=lambda c: (c["time_s"], c["streams"]))["streams"]
    if args.plot:
        payload["plot"] = pp.plot_pipeline(result, args.plot)

    def text() -> str:
        lines = [
            f"{result.model} on {result.device} ({result.device_kind}), batch {result.batch_size}, {result.dtype}: "
            f"{result.time_s * 1e6:,.1f} us per batch; steady state {result.throughput_samples_per_s:,.0f} samples/s "
            f"(batch / latency: {result.batch_size / result.time_s:,.0f})",
            f"embedding stage {result.embedding_time_s * 1e6:,.1f} us = {result.embedding_share:.1%} of the time; "
            f"streams used {result.streams_used} of {result.streams_requested}, {result.sync_points} sync points",
        ]
        rows = [[k, f"{v * 1e6:,.1f}", f"{v / result.time_s:.1%}"] for k, v in sorted(result.stages.items(), key=lambda x: -x[1])]
        lines.append(format_table(["stage", "us", "share"], rows))
        mem = result.memory
        lines.append(f"memory: tables {mem['table_bytes'] / 1e9:.3f} GB, dense {mem['dense_weight_bytes'] / 1e6:.1f} MB, "
                     f"capacity {mem['capacity_bytes'] / 1e9:.0f} GB, placement {mem['placement']}"
                     + (f" ({len(mem['host_tables'])} tables host-mapped)" if mem["host_tables"] else ""))
        if compare:
            lines.append(f"with {compare['config']}: embedding x{compare['embedding_speedup']:.2f}, end to end "
                         f"x{compare['end_to_end_speedup']:.2f} (baseline {compare['baseline_time_s'] * 1e6:,.1f} us)")
        if "cpu_modes" in payload:
            lines.append("cpu modes: " + ", ".join(f"{m} {v['time_s'] * 1e6:,.1f} us, {v['throughput_samples_per_s']:,.0f}/s"
                                                   for m, v in payload["cpu_modes"].items()))
        if "by_streams" in payload:
            lines.append("streams: " + ", ".join(f"{c['streams']}: {c['time_s'] * 1e6:,.1f} us" for c in payload["by_streams"])
                         + f"; best {payload['best_streams']}")
        if choice:
            lines.append(f"representations: {choice['counts']} ({choice['embedding_bytes'] / 1e9:.3f} GB), "
                         f"feasible {choice['feasible']} {choice['reason']}")
        if args.plot:
            lines.append(f"plot: {payload['plot']}")
        return "\n".join(lines)

    return emit(args, payload, text)


def _int_list(name: str, text: str) -> list[int]:
    from perfmodel import InputError

    try:
        return [int(b) for b in text.split(",") if b.strip()]
    except ValueError:
        raise InputError(f"`{name}` must be comma-separated integers, but got {text!r}") from None


def run_sweep(args: argparse.Namespace) -> int:
    from perfmodel import pipeline as pp

    devices = [d.strip() for d in args.devices.split(",") if d.strip()]
    refuse_overwrite({"--plot": args.plot}, {"--model": args.model, **{f"--devices {d}": d for d in devices}})
    pp.check_streams(args.streams)
    batches = _int_list("--batch-sizes", args.batch_sizes)
    rows = pp.sweep_batch(args.model, devices, batches, streams=args.streams, dtype=args.dtype,
                          embedding_kernel=args.embedding_kernel)
    info = pp.get_sweep_plot_info(rows)
    cross = [{"gpu": c["gpu"], "cpu": c["cpu"], "gpu_faster_from_batch": c["batch_size"]} for c in info["crossovers"]]
    model_id = pp.get_model(args.model).id
    payload: dict[str, Any] = {"model": model_id, "rows": rows, "crossover": cross}
    if args.query_sizes is not None or args.latency_target_ms is not None:
        qs = pp.parse_query_sizes(args.query_sizes or "normal:165:16")
        # each swept batch size routed to its fastest device, weighted by the queries of that size range
        import numpy as np

        sample = qs.sample(20000, np.random.default_rng(0))
        import itertools

        edges = [0, *[(a + b) / 2 for a, b in itertools.pairwise(batches)], np.inf]
        weights = [float(np.mean((sample > lo) & (sample <= hi))) for lo, hi in itertools.pairwise(edges)]
        by = {(r["device"], r["batch_size"]): r["time_s"] for r in rows}
        kinds = {r["device"]: r["device_kind"] for r in rows}
        routing = []
        for b, w in zip(batches, weights, strict=True):
            lat = {d: by[(d, b)] for d in kinds}
            best = min(lat, key=lambda d: (lat[d], d))
            routing.append({"query_size": b, "weight": w, "device": best, "time_s": lat[best]})
        payload["routing"] = {"query_sizes": qs.describe(), "rows": routing,
                              "share": {d: sum(r["weight"] for r in routing if r["device"] == d) for d in kinds},
                              "mean_time_s": sum(r["weight"] * r["time_s"] for r in routing)}
    if args.latency_target_ms is not None:
        payload["latency_bounded"] = pp.latency_bounded_throughput(
            args.model, devices, latency_target_s=args.latency_target_ms / 1e3,
            query_sizes=args.query_sizes or "normal:165:16", percentile=args.percentile, batch_sizes=batches,
            streams=list(range(1, args.streams + 1)), dtype=args.dtype, embedding_kernel=args.embedding_kernel)
    if args.plot:
        payload["plot"] = pp.plot_sweep(rows, args.plot, title=f"{model_id}: latency and throughput against batch size")

    def text() -> str:
        by = {(r["device"], r["batch_size"]): r for r in rows}
        kinds = list(info["devices"])
        header = ["batch", *[f"{d} us" for d in kinds], *[f"{d} /s" for d in kinds]]
        table = [[b, *[f"{by[(d, b)]['time_s'] * 1e6:,.1f}" for d in kinds],
                  *[f"{by[(d, b)]['throughput_samples_per_s']:,.0f}" for d in kinds]] for b in batches]
        out = format_table(header, table)
        for c in cross:
            out += f"\n{c['gpu']} beats {c['cpu']} from batch {c['gpu_faster_from_batch']}"
        if "routing" in payload:
            rt = payload["routing"]
            out += (f"\nrouting of {rt['query_sizes']} by query size: "
                    + ", ".join(f"{d} {s:.0%}" for d, s in rt["share"].items() if s > 0)
                    + f"; mean latency {rt['mean_time_s'] * 1e6:,.1f} us")
        if "latency_bounded" in payload:
            lb = payload["latency_bounded"]
            best = lb["best"]
            out += (f"\nlatency-bounded throughput (p{lb['percentile']:g} <= {lb['latency_target_s'] * 1e3:g} ms, "
                    f"queries {lb['query_sizes']}): ")
            if best and best["meets_target"]:
                out += (f"best {best['device']} {best['mode']} batch {best['batch_size']}: "
                        f"{best['throughput_samples_per_s']:,.0f} samples/s ({best['queries_per_s']:,.0f} queries/s)")
            else:
                out += "no configuration meets the target"
        if args.plot:
            out += f"\nplot: {payload['plot']}"
        return out

    return emit(args, payload, text)
