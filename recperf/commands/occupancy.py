"""``recperf occupancy``: theoretical occupancy as cuda_occupancy.h computes it."""

from __future__ import annotations

import argparse
from typing import Any

from recperf._common import add_gpu_arg, add_json_flag, emit, integer


def register(sub: Any) -> None:
    p = sub.add_parser("occupancy", help="theoretical occupancy of a launch (exact, as cuda_occupancy.h)")
    add_gpu_arg(p)
    p.add_argument("--block-size", type=integer, required=True, help="threads per block")
    p.add_argument("--registers", type=integer, required=True, help="registers per thread")
    p.add_argument("--smem-bytes", type=integer, default=0, help="dynamic shared memory per block (bytes)")
    p.add_argument("--static-smem-bytes", type=integer, default=0, help="static shared memory per block (bytes)")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import perfmodel

    gpu = perfmodel.get_gpu(args.gpu)
    o = perfmodel.occupancy(
        gpu,
        block_size=args.block_size,
        registers_per_thread=args.registers,
        shared_mem_bytes=args.smem_bytes,
        static_shared_mem_bytes=args.static_smem_bytes,
    )
    payload = {"gpu": gpu.id, "block_size": args.block_size, "registers": args.registers,
               "smem_bytes": args.smem_bytes, **o.to_dict()}

    def text() -> str:
        limits = ", ".join(f"{k} {v}" for k, v in o.block_limits.items())
        return (
            f"{gpu.name} (cc {gpu.compute_capability_major}.{gpu.compute_capability_minor}), block {args.block_size} "
            f"threads, {args.registers} registers/thread, {args.smem_bytes} B dynamic shared memory\n"
            f"  active blocks per SM: {o.active_blocks_per_sm}\n"
            f"  active warps per SM:  {o.active_warps_per_sm} of {gpu.max_warps_per_sm}\n"
            f"  occupancy:            {o.occupancy:.1%}\n"
            f"  limited by:           {', '.join(o.limiters) or 'nothing'}\n"
            f"  blocks allowed by:    {limits}"
        )

    return emit(args, payload, text)
