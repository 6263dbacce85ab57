"""``recperf predict``: the analytical model's prediction for a workload, kernel (or plan) and GPU."""

from __future__ import annotations

import argparse
from typing import Any

from recperf._common import add_gpu_arg, add_json_flag, emit


def register(sub: Any) -> None:
    p = sub.add_parser("predict", help="predict the embedding-stage time (analytical model)")
    add_gpu_arg(p)
    p.add_argument("--workload", required=True, help="workload TOML file")
    p.add_argument("--kernel", help="kernel configuration TOML file (default: PyTorch's kernel as shipped)")
    p.add_argument("--plan", help="plan TOML file: a kernel configuration per table (from recperf search --per-table)")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import perfmodel

    gpu = perfmodel.get_gpu(args.gpu)
    workload = perfmodel.load_workload(args.workload)
    if args.plan and args.kernel:
        raise perfmodel.InputError("give --kernel or --plan, not both")
    if args.plan:
        plan = perfmodel.load_plan(args.plan)
        plan.check_workload(workload)
        p = perfmodel.predict(workload, plan, gpu)

        def text() -> str:
            lines = [p.explain()]
            for row in p.breakdown["tables"]:
                k = perfmodel.KernelConfig(**row["kernel"])
                lines.append(f"  table {row['index']} kernel: {k.variant} block {k.block_size}, register cap "
                             f"{k.register_cap or 'none'}, prefetch {k.prefetch_distance} ({k.prefetch_kind}), pinned "
                             f"{k.pinned_row_fraction:g} ({k.pin_method}), bounds check {k.bounds_check}; "
                             f"{row['registers']} registers, {row['warps_per_sm']} warps per SM")
            return "\n".join(lines)

        return emit(args, p.to_dict(), text)
    kernel = perfmodel.load_kernel_config(args.kernel) if args.kernel else perfmodel.KernelConfig()
    perfmodel.check_modelled(kernel)
    p = perfmodel.predict(workload, kernel, gpu)
    return emit(args, p.to_dict(), p.explain)
