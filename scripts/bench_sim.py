"""Speed of the trace-driven simulator: wall time and events per second of `perfmodel.simulate`.

Runs a few workloads (the seed paper's reuse_medium trace table; a Zipf table five times the
L2) under two kernel configurations, best of ``--repeats`` after one untimed run (numba
compile and caches), and prints one line per point and the total. Compare two versions by
running this script from each checkout in one session (timings on a shared VM move).

    .venv/bin/python scripts/bench_sim.py [--gpu a100-80gb] [--repeats 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import perfmodel
from perfmodel import IndexDistribution, KernelConfig, Table, Workload
from perfmodel.sim import simulate_detailed

TRACES = Path(perfmodel.__file__).resolve().parent / "data" / "traces"


def cases(gpu: perfmodel.GPUSpec) -> dict[str, Workload]:
    trace = Table(rows=500_000, dim=128, pooling=150,
                  indices=IndexDistribution(kind="trace", path=str(TRACES / "reuse_medium_500K.txt")))
    zipf = Table(rows=int(5 * gpu.l2_size_bytes / 512), dim=128, pooling=50, indices=IndexDistribution(kind="zipf"))
    return {"reuse_medium": Workload(batch_size=2048, tables=(trace,)),
            "zipf1.05-5xL2": Workload(batch_size=2048, tables=(zipf,))}


KERNELS = {"pytorch": KernelConfig(), "warp-p4": KernelConfig(variant="warp", prefetch_distance=4)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gpu", default="a100-80gb")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = ap.parse_args()
    gpu = perfmodel.get_gpu(args.gpu)
    rows = []
    for wname, w in cases(gpu).items():
        for kname, k in KERNELS.items():
            simulate_detailed(w, k, gpu)  # compile, trace and residency caches
            best = float("inf")
            events = 0
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                r = simulate_detailed(w, k, gpu)
                best = min(best, time.perf_counter() - t0)
                events = sum(t.events for t in r.tables)
            rows.append({"workload": wname, "kernel": k.variant if kname == "pytorch" else kname, "wall_s": best,
                         "events": events, "events_per_s": events / best})
            print(f"{wname:16s} {kname:8s} {best:7.3f} s  {events / best / 1e6:6.2f} M events/s", flush=True)
    total = sum(r["wall_s"] for r in rows)
    print(f"total {total:.3f} s")
    if args.json:
        print(json.dumps({"points": rows, "total_wall_s": total}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
