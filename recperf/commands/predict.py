"""``recperf predict``: the analytical model's prediction for a workload, kernel and GPU."""

from __future__ import annotations

import argparse
from typing import Any

from recperf._common import add_gpu_arg, add_json_flag, emit


def register(sub: Any) -> None:
    p = sub.add_parser("predict", help="predict the embedding-stage time (analytical model)")
    add_gpu_arg(p)
    p.add_argument("--workload", required=True, help="workload TOML file")
    p.add_argument("--kernel", help="kernel configuration TOML file (default: PyTorch's kernel as shipped)")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import perfmodel

    gpu = perfmodel.get_gpu(args.gpu)
    workload = perfmodel.load_workload(args.workload)
    kernel = perfmodel.load_kernel_config(args.kernel) if args.kernel else perfmodel.KernelConfig()
    p = perfmodel.predict(workload, kernel, gpu)
    return emit(args, p.to_dict(), p.explain)
