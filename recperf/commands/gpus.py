"""``recperf gpus``: the GPU catalogue."""

from __future__ import annotations

import argparse
from typing import Any

from recperf._common import add_json_flag, emit, format_table


def register(sub: Any) -> None:
    p = sub.add_parser("gpus", help="list the built-in GPUs and their key numbers")
    p.add_argument("--sources", action="store_true", help="show where every number comes from")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import perfmodel

    specs = [perfmodel.get_gpu(i) for i in perfmodel.gpu_ids()]
    payload = {
        "gpus": [
            {**g.to_dict(), "sources": dict(g.sources), "estimates": dict(g.estimates)} for g in specs
        ]
    }

    def text() -> str:
        rows = [
            [
                g.id,
                g.name,
                f"{g.compute_capability_major}.{g.compute_capability_minor}",
                g.sm_count,
                f"{g.sm_clock_hz / 1e6:.0f}",
                f"{g.l2_size_bytes / 2**20:.0f}",
                f"{g.persisting_l2_max_bytes / 2**20:.0f}",
                f"{g.dram_bandwidth_bytes_per_s / 1e9:.0f}",
                f"{g.dram_latency_cycles:.0f}",
                len(g.estimates),
            ]
            for g in specs
        ]
        out = format_table(
            ["id", "name", "cc", "SMs", "MHz", "L2 MiB", "persist MiB", "DRAM GB/s", "DRAM lat cyc", "estimates"], rows
        )
        if args.sources:
            for g in specs:
                out += f"\n\n{g.id}:"
                for k, v in g.to_dict().items():
                    if k in ("id", "name"):
                        continue
                    est = f"  [ESTIMATE: {g.estimates[k]}]" if k in g.estimates else ""
                    out += f"\n  {k} = {v}: {g.source(k)}{est}"
        else:
            out += "\n\n(`--sources` shows where each number comes from; `estimates` counts numbers with no public measurement)"
        return out

    return emit(args, payload, text)
