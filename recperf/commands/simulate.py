"""``recperf simulate`` (the trace-driven simulator) and ``recperf cache-sim`` (its cache model alone)."""

from __future__ import annotations

import argparse
from typing import Any

from recperf._common import add_gpu_arg, add_json_flag, emit, integer


def register(sub: Any) -> None:
    p = sub.add_parser(
        "simulate",
        help="simulate the embedding stage: access stream -> L1/L2 model -> discrete-event timing (same fields as predict)",
    )
    add_gpu_arg(p)
    p.add_argument("--workload", required=True, help="workload TOML file")
    p.add_argument("--kernel", help="kernel configuration TOML file (default: PyTorch's kernel as shipped)")
    p.add_argument("--policy", default="lru", help="L2 replacement policy: lru, srrip or random (default lru)")
    p.add_argument(
        "--max-line-requests", type=integer, default=None,
        help="sampling budget per table call in L2 line requests (default 2e7; 0 = never sample)",
    )
    add_json_flag(p)
    p.set_defaults(func=run_simulate)

    c = sub.add_parser(
        "cache-sim",
        help="replay a trace of row ids through a cache (--ways 0: exact fully associative LRU)",
    )
    c.add_argument("--trace", required=True, help="trace file: one row id per line (or .npy)")
    c.add_argument("--row-bytes", type=integer, required=True, help="bytes per row (e.g. 512 for 128 fp32)")
    c.add_argument("--capacity-bytes", type=integer, required=True, help="cache capacity in bytes")
    c.add_argument("--ways", type=integer, required=True,
                   help="0: fully associative LRU over rows; W > 0: W-way L2 model (128-B lines, 32-B sectors)")
    c.add_argument("--policy", default="lru", help="replacement policy for --ways > 0: lru, srrip, random")
    c.add_argument("--line-bytes", type=integer, default=128, help="line size for --ways > 0 (default 128)")
    c.add_argument("--sector-bytes", type=integer, default=32, help="sector size for --ways > 0 (default 32)")
    add_json_flag(c)
    c.set_defaults(func=run_cache_sim)


def run_cache_sim(args: argparse.Namespace) -> int:
    from perfmodel.sim import cache_sim, read_trace

    rows = read_trace(args.trace)
    r = cache_sim(rows, row_bytes=args.row_bytes, capacity_bytes=args.capacity_bytes, ways=args.ways,
                  line_bytes=args.line_bytes, sector_bytes=args.sector_bytes, policy=args.policy)
    payload = {"trace": args.trace, **r.to_dict()}

    def text() -> str:
        if r.ways == 0:
            geo = f"fully associative LRU, {r.capacity_rows} rows of {r.row_bytes} B"
            unit = "row"
        else:
            geo = f"{r.ways}-way {r.policy.upper()}, {r.sets} sets x {r.ways} ways of {args.line_bytes}-B lines"
            unit = "sector"
        return (f"{geo} ({r.capacity_bytes} B)\n  accesses: {r.accesses}\n"
                f"  hit rate: {r.hit_rate:.6f} ({unit}s; row hit rate {r.row_hit_rate:.6f})")

    return emit(args, payload, text)


def run_simulate(args: argparse.Namespace) -> int:
    import perfmodel
    from perfmodel.sim import simulate_detailed

    gpu = perfmodel.get_gpu(args.gpu)
    workload = perfmodel.load_workload(args.workload)
    kernel = perfmodel.load_kernel_config(args.kernel) if args.kernel else perfmodel.KernelConfig()
    perfmodel.check_modelled(kernel)
    kw: dict[str, Any] = {"policy": args.policy}
    if args.max_line_requests is not None:
        kw["max_line_requests"] = args.max_line_requests
    result = simulate_detailed(workload, kernel, gpu, **kw)
    p = result.prediction
    payload = {
        "gpu": gpu.id,
        "time_s": p.time_s,
        "pin_time_s": p.pin_time_s,
        "occupancy": p.occupancy,
        "l2_hit_rate": p.l2_hit_rate,
        "dram_bytes": p.dram_bytes,
        "bound": p.bound,
        "breakdown": dict(p.breakdown),
        "simulation": result.details(),
    }
    return emit(args, payload, p.explain)
