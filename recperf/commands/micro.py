"""``recperf micro``: the model's predictions of the published microbenchmarks."""

from __future__ import annotations

import argparse
from typing import Any

from recperf._common import add_gpu_arg, add_json_flag, emit, fail, integer

KINDS = ("stream-read", "pointer-chase", "l2-read")


def register(sub: Any) -> None:
    p = sub.add_parser("micro", help="predict a microbenchmark (stream-read, pointer-chase, l2-read)")
    add_gpu_arg(p)
    p.add_argument("--kind", required=True, choices=KINDS, help="which microbenchmark")
    p.add_argument("--block-size", type=integer, help="stream-read: threads per block")
    p.add_argument("--blocks-per-sm", type=integer, default=2, help="stream-read: resident blocks per SM (default 2)")
    p.add_argument("--footprint-bytes", type=integer, help="pointer-chase, l2-read: bytes the benchmark cycles over")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import perfmodel

    gpu = perfmodel.get_gpu(args.gpu)
    if args.kind == "stream-read":
        if args.block_size is None:
            fail("--kind stream-read needs --block-size")
        bw = perfmodel.micro_stream_read(gpu, block_size=args.block_size, blocks_per_sm=args.blocks_per_sm)
        payload = {"gpu": gpu.id, "kind": args.kind, "block_size": args.block_size,
                   "blocks_per_sm": args.blocks_per_sm, "bandwidth_bytes_per_s": bw}
        text = f"{gpu.id} stream-read, block {args.block_size} x {args.blocks_per_sm} per SM: {bw / 1e9:,.1f} GB/s"
    else:
        if args.footprint_bytes is None:
            fail(f"--kind {args.kind} needs --footprint-bytes")
        if args.kind == "pointer-chase":
            cyc = perfmodel.micro_pointer_chase(gpu, footprint_bytes=args.footprint_bytes)
            payload = {"gpu": gpu.id, "kind": args.kind, "footprint_bytes": args.footprint_bytes,
                       "latency_cycles": cyc, "latency_s": gpu.latency_s(cyc)}
            text = (f"{gpu.id} pointer-chase over {args.footprint_bytes / 1024:,.0f} KiB: {cyc:.1f} cycles "
                    f"({gpu.latency_s(cyc) * 1e9:.1f} ns)")
        else:
            bw = perfmodel.micro_l2_read(gpu, footprint_bytes=args.footprint_bytes)
            payload = {"gpu": gpu.id, "kind": args.kind, "footprint_bytes": args.footprint_bytes,
                       "bandwidth_bytes_per_s": bw}
            text = f"{gpu.id} l2-read over {args.footprint_bytes / 1024:,.0f} KiB: {bw / 1e9:,.1f} GB/s"
    return emit(args, payload, text)
