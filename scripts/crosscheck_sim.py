"""Cross-check the analytical model (perfmodel.predict) against the simulator (perfmodel.simulate).

Grid (issue 5): Zipf alphas 0.6-1.4 x table sizes 0.5x-20x the L2, and the shared traces
(the seed paper's table: 500,000 x 128 fp32, pooling 150, batch 2048), each under a grid of
kernel configurations (variants, prefetch, pinned fractions and methods, bounds checks).
Criteria: L2 hit rate within 2 percentage points, time within 15%. Prints every point, a
summary, and the points where the two disagree most, with the figures that say why; writes
everything to out/crosscheck_sim.json.

    .venv/bin/python scripts/crosscheck_sim.py [--gpu a100-80gb] [--quick] [--unified-l2]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import perfmodel
from perfmodel import IndexDistribution, KernelConfig, Table, Workload
from perfmodel.sim import SimParams, simulate_detailed

ROOT = Path(__file__).resolve().parent.parent
TRACES = ROOT / "perfmodel" / "data" / "traces"

KERNELS: dict[str, KernelConfig] = {
    "pytorch-baseline": KernelConfig(),
    "pytorch-optmt-rpf2": KernelConfig(bounds_check="none", register_cap=42, prefetch_distance=2),
    "warp-p0": KernelConfig(variant="warp"),
    "warp-p4": KernelConfig(variant="warp", prefetch_distance=4, bounds_check="separate"),
    "warp-b128-p2-apw0.1": KernelConfig(variant="warp", block_size=128, prefetch_distance=2, pinned_row_fraction=0.1),
    "warp-p2-evict0.05": KernelConfig(variant="warp", prefetch_distance=2, pinned_row_fraction=0.05,
                                      pin_method="evict-last-prefetch"),
}
QUICK = ("pytorch-baseline", "warp-p4", "warp-b128-p2-apw0.1")


def workloads(gpu: perfmodel.GPUSpec, quick: bool) -> dict[str, Workload]:
    out: dict[str, Workload] = {}
    for trace in ("reuse_low_500K.txt", "reuse_medium_500K.txt"):
        t = Table(rows=500_000, dim=128, pooling=150, indices=IndexDistribution(kind="trace", path=str(TRACES / trace)))
        out[trace.removesuffix(".txt")] = Workload(batch_size=2048, tables=(t,))
    alphas = (0.6, 1.0, 1.4) if quick else (0.6, 0.8, 1.0, 1.2, 1.4)
    sizes = (0.5, 5.0) if quick else (0.5, 2.0, 5.0, 20.0)
    for a in alphas:
        for x in sizes:
            rows = int(x * gpu.l2_size_bytes / 512)
            t = Table(rows=rows, dim=128, pooling=50, indices=IndexDistribution(kind="zipf", alpha=a))
            out[f"zipf{a:.1f}-{x:g}xL2"] = Workload(batch_size=2048, tables=(t,))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gpu", default="a100-80gb")
    ap.add_argument("--quick", action="store_true", help="a smaller grid (3 configurations, 8 workloads)")
    ap.add_argument("--unified-l2", action="store_true", help="simulate one unified L2 (no near/far duplication)")
    ap.add_argument("--out", default=str(ROOT / "out" / "crosscheck_sim.json"))
    args = ap.parse_args()
    gpu = perfmodel.get_gpu(args.gpu)
    params = SimParams(partitions=not args.unified_l2)
    names = QUICK if args.quick else tuple(KERNELS)
    rows: list[dict[str, Any]] = []
    t_start = time.perf_counter()
    print(f"{'workload':24s} {'kernel':22s} {'hit model':>9s} {'hit sim':>8s} {'d pts':>6s} "
          f"{'model us':>9s} {'sim us':>8s} {'gap':>7s}  bound model/sim")
    for wname, w in workloads(gpu, args.quick).items():
        for kname in names:
            k = KERNELS[kname]
            p = perfmodel.predict(w, k, gpu)
            s = simulate_detailed(w, k, gpu, params=params)
            st = s.tables[0]
            mt = p.breakdown["tables"][0]
            row = {
                "workload": wname, "kernel": kname, "model_hit": p.l2_hit_rate, "sim_hit": s.prediction.l2_hit_rate,
                "hit_diff_pts": 100 * (p.l2_hit_rate - s.prediction.l2_hit_rate),
                "model_time_s": p.time_s, "sim_time_s": s.prediction.time_s,
                "time_gap": p.time_s / s.prediction.time_s - 1.0,
                "model_bound": p.bound, "sim_bound": st.bound,
                "model_iteration_s": mt.get("iteration_s"), "sim_iteration_s": st.iteration_s,
                "sim_l1": st.l1_hit_rate, "sim_near": st.l2_near_hit_rate, "sim_far": st.l2_far_hit_rate,
                "sim_index_l1": st.index_l1_hit_rate, "sim_lat_mean_cycles": st.latency_cycles_mean,
                "sim_lat_p50_cycles": st.latency_cycles_p50, "sim_lat_p90_cycles": st.latency_cycles_p90,
                "model_l1": mt.get("l1_hit_rate"), "model_l2_merged": mt.get("l2_merged_rate"),
                "sim_rows_l1_whole": st.row_l1_whole_rate, "sim_rows_l1_partial": st.row_l1_partial_rate,
                "sim_rows_l1_fill_wait": st.row_l1_fill_wait_rate, "sim_l2_fill_wait": st.l2_fill_wait_rate,
                "sim_dram_util": st.dram_utilization, "sim_l2_util": st.l2_utilization,
                "sim_waves": st.waves, "sim_sm_imbalance": st.sm_finish_imbalance,
                "sampled_fraction": st.sampled_fraction, "sim_wall_s": st.wall_s,
            }
            rows.append(row)
            print(f"{wname:24s} {kname:22s} {row['model_hit']:9.3f} {row['sim_hit']:8.3f} {row['hit_diff_pts']:+6.1f} "
                  f"{p.time_s * 1e6:9.1f} {s.prediction.time_s * 1e6:8.1f} {row['time_gap']:+7.1%}  "
                  f"{p.bound}/{st.bound}", flush=True)
    n = len(rows)
    hit_ok = sum(abs(r["hit_diff_pts"]) <= 2.0 for r in rows)
    time_ok = sum(abs(r["time_gap"]) <= 0.15 for r in rows)
    print(f"\n{n} points in {time.perf_counter() - t_start:.0f} s ({'unified L2' if args.unified_l2 else 'near/far L2'})")
    print(f"  L2 hit rate within 2 points: {hit_ok}/{n}; max |diff| {max(abs(r['hit_diff_pts']) for r in rows):.1f} "
          f"points; mean {sum(r['hit_diff_pts'] for r in rows) / n:+.1f} (model - simulator)")
    print(f"  time within 15%: {time_ok}/{n}; max |gap| {max(abs(r['time_gap']) for r in rows):.1%}; "
          f"mean {sum(r['time_gap'] for r in rows) / n:+.1%} (model / simulator - 1)")
    print("\nwhere they disagree most (time):")
    for r in sorted(rows, key=lambda r: -abs(r["time_gap"]))[:8]:
        print(f"  {r['workload']:24s} {r['kernel']:22s} gap {r['time_gap']:+.1%}; hit model {r['model_hit']:.3f} sim "
              f"{r['sim_hit']:.3f} (L1 {r['sim_l1']:.3f}, near {r['sim_near']:.3f}, far {r['sim_far']:.3f}); "
              f"index L1 hits {r['sim_index_l1']:.3f}; row latency {r['sim_lat_mean_cycles']:.0f} cycles "
              f"(p50 {r['sim_lat_p50_cycles']:.0f}, p90 {r['sim_lat_p90_cycles']:.0f}); "
              f"DRAM util {r['sim_dram_util']:.2f}, L2 util {r['sim_l2_util']:.2f}; bound {r['model_bound']}/{r['sim_bound']}")
        print(f"  {'':24s} {'':22s} L1 model {r['model_l1']:.3f} sim {r['sim_l1']:.3f} (sectors; rows all in L1 "
              f"{r['sim_rows_l1_whole']:.3f}, in part {r['sim_rows_l1_partial']:.3f}, all in L1 but waiting on a fill "
              f"{r['sim_rows_l1_fill_wait']:.3f}); L2 hits on a line still coming from DRAM: model "
              f"{r['model_l2_merged']:.3f} sim {r['sim_l2_fill_wait']:.3f}")
    print("where they disagree most (hit rate):")
    for r in sorted(rows, key=lambda r: -abs(r["hit_diff_pts"]))[:8]:
        print(f"  {r['workload']:24s} {r['kernel']:22s} model {r['model_hit']:.3f} sim {r['sim_hit']:.3f} "
              f"({r['hit_diff_pts']:+.1f} pts); sim far-partition hits {r['sim_far']:.3f}, L1 {r['sim_l1']:.3f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"gpu": gpu.id, "unified_l2": args.unified_l2, "points": rows}, indent=1))
    print(f"\nwritten: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
