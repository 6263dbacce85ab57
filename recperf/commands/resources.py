"""``recperf resources``: registers, spills and shared memory of a lookup kernel, from the compiler,
and its profile (row loads in flight, instructions and loads per lookup) from the disassembly.

Compiles the kernel's CUDA source offline (NVRTC from PyPI, or nvcc; no GPU needed), reads the
cubin and the ptxas report, and disassembles it (cuobjdump); with no compiler, or ``--compiler
table``, answers from the table shipped in perfmodel (built with one pinned NVRTC release).
``--sass`` prints the disassembly of the lookup kernel (it needs a compiler: the table holds
the figures, not the text).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from recperf._common import add_json_flag, emit, fail


def register(sub: Any) -> None:
    p = sub.add_parser("resources", help="registers/spills of a kernel configuration, from NVIDIA's compiler")
    p.add_argument("--arch", help="target architecture, e.g. sm_80 or sm_90 (or give --gpu)")
    p.add_argument("--gpu", help="GPU id or spec file: its architecture, and the occupancy at the block size")
    p.add_argument("--kernel", help="kernel configuration file (.toml); default: PyTorch's kernel as shipped")
    p.add_argument("--dtype", default="float32", help="table dtype: float32 or float16")
    p.add_argument("--index-dtype", default="int64", help="index dtype: int64 or int32")
    p.add_argument(
        "--compiler",
        default="auto",
        help="auto (NVRTC if installed, else nvcc, else the shipped table), nvrtc, nvcc or table",
    )
    p.add_argument("--sass", action="store_true",
                   help="print the lookup kernel's disassembly (cuobjdump -sass); needs a CUDA compiler")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import kernels
    import perfmodel

    gpu = perfmodel.get_gpu(args.gpu) if args.gpu else None
    arch = args.arch or (gpu.arch if gpu is not None else None)
    if arch is None:
        fail("give --arch (e.g. sm_80) or --gpu")
    kernel = perfmodel.load_kernel_config(args.kernel) if args.kernel else perfmodel.KernelConfig()
    if args.compiler not in kernels.COMPILERS:
        fail(f"unknown compiler {args.compiler!r}; valid choices: {', '.join(kernels.COMPILERS)}")
    if args.sass:
        try:
            sass, version = kernels.kernel_sass(kernel, arch, dtype=args.dtype, index_dtype=args.index_dtype,
                                                compiler=args.compiler)
        except RuntimeError as exc:  # no compiler or disassembler, or a failed compile
            fail(str(exc).splitlines()[0])
        if args.json:
            return emit(args, {"arch": arch, "kernel": kernel.to_dict(), "compiler": version, "sass": sass}, "")
        sys.stdout.write(sass)
        return 0
    try:
        usage = kernels.resource_usage(
            kernel, arch, dtype=args.dtype, index_dtype=args.index_dtype, compiler=args.compiler
        )
        profile = kernels.kernel_profile(kernel, arch, dtype=args.dtype, index_dtype=args.index_dtype,
                                         compiler=args.compiler)
    except RuntimeError as exc:  # a compiler that is missing or failed
        fail(str(exc).splitlines()[0])
    table = perfmodel.kernel_resources(kernel, arch, dtype=args.dtype, index_dtype=args.index_dtype)
    payload: dict[str, Any] = {
        "arch": arch,
        "dtype": args.dtype,
        "index_dtype": args.index_dtype,
        "kernel": kernel.to_dict(),
        **usage.to_dict(),
        "table": table.to_dict() if table is not None else None,
        "profile": profile.to_dict(),
    }
    occ = None
    if gpu is not None:
        occ = perfmodel.occupancy(gpu, block_size=kernel.block_size, registers_per_thread=usage.registers,
                                  shared_mem_bytes=0, static_shared_mem_bytes=usage.shared_mem_bytes)
        payload["gpu"] = gpu.id
        payload["occupancy"] = occ.occupancy
        payload["active_warps_per_sm"] = occ.active_warps_per_sm

    def text() -> str:
        lines = [
            f"{kernel.variant} kernel on {arch} ({args.dtype} table, {args.index_dtype} indices), "
            f"register cap {kernel.register_cap or 'none'}, prefetch {kernel.prefetch_distance}"
            f"{' (' + kernel.prefetch_kind + ')' if kernel.prefetch_distance else ''}, bounds check {kernel.bounds_check}",
            f"  registers per thread: {usage.registers}",
            f"  spill stores / loads: {usage.spill_store_bytes} B / {usage.spill_load_bytes} B",
            f"  stack frame:          {usage.stack_bytes} B",
            f"  static shared memory: {usage.shared_mem_bytes} B",
            f"  compiler:             {usage.compiler} ({usage.source})",
            f"  row loads in flight:  {profile.row_loads_in_flight} per warp ({profile.in_flight_method}; "
            f"profile {profile.source})",
            "  per lookup:           " + f"{profile.total_instructions_per_lookup:.1f} instructions ("
            + ", ".join(f"{k} {v:.1f}" for k, v in profile.instructions_per_lookup.items() if v) + "); loads "
            + ", ".join(f"{k} {v:.3g}" for k, v in profile.global_loads_per_lookup.items())
            + f"; spill ops {profile.local_ops_per_lookup:.2f}",
            f"  index load on the row's chain: {'yes' if profile.index_on_row_chain else 'no'}; chain: "
            + " -> ".join(f"{op} ({cls})" for op, cls in profile.chain),
        ]
        if table is not None and usage.source != "table":
            same = (table.registers, table.spill_store_bytes, table.spill_load_bytes) == (
                usage.registers, usage.spill_store_bytes, usage.spill_load_bytes)
            lines.append(f"  shipped table:        {table.registers} registers, {table.spill_store_bytes}/"
                         f"{table.spill_load_bytes} B spills ({table.compiler}){'' if same else '  <- differs'}")
        if occ is not None and gpu is not None:
            lines.append(f"  occupancy on {gpu.id} at {kernel.block_size} threads: {occ.occupancy:.1%} "
                         f"({occ.active_warps_per_sm} warps/SM)")
        return "\n".join(lines)

    return emit(args, payload, text)
