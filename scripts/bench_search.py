#!/usr/bin/env python3
"""Benchmark the design-space search against the exhaustive grid (issue 6's "done when").

For each workload (the seed paper's, an RMC2-like one, a Criteo-Kaggle-like one; TOMLs in
``search/data/``), the exhaustive grid through ``perfmodel.predict_batch`` gives the model's
optimum; then TPE and random search run ``--trials`` trials for each of ``--seeds`` seeds
(in-memory studies) and the table prints each sampler's gap to the optimum (best found /
optimum - 1): median and worst over the seeds. Both samplers start from the same known-good
points (PyTorch's kernel as shipped and the seed paper's combination); ``TPE, cold`` is TPE
without them.

    .venv/bin/python scripts/bench_search.py [--gpu a100-80gb] [--trials 100] [--seeds 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = {
    "seed (12x500K x128, reuse_medium)": ROOT / "search" / "data" / "seed_reuse_medium.toml",
    "RMC2-like (32x500K x64, reuse_low)": ROOT / "search" / "data" / "rmc2_like.toml",
    "Criteo-Kaggle-like (26 tables, x16)": ROOT / "search" / "data" / "criteo_kaggle_like.toml",
}
RUNS = (("TPE", "tpe", True), ("TPE, cold", "tpe", False), ("random", "random", True))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gpu", default="a100-80gb")
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--workloads", nargs="*", default=None, help="workload TOML files (default: the three shipped)")
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = ap.parse_args(argv)

    import optuna

    import perfmodel
    import search

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    gpu = perfmodel.get_gpu(args.gpu)
    workloads = {Path(p).stem: Path(p) for p in args.workloads} if args.workloads else WORKLOADS
    rows: list[dict[str, Any]] = []
    for label, path in workloads.items():
        wl = perfmodel.load_workload(path)
        t0 = time.perf_counter()
        ex = search.exhaustive(wl, gpu)
        ex_s = time.perf_counter() - t0
        row: dict[str, Any] = {"workload": label, "grid": ex.n_evaluated, "exhaustive_s": ex_s,
                               "optimum_s": ex.best_time_s, "baseline_s": ex.baseline_time_s, "speedup": ex.speedup,
                               "best_config": ex.best_config.to_dict()}
        for name, sampler, warm in RUNS:
            gaps = []
            t1 = time.perf_counter()
            for seed in range(args.seeds):
                r = search.optimize(wl, gpu, n_trials=args.trials, seed=seed, storage=":memory:", study_name="bench",
                                    sampler=sampler, enqueue_known_good=warm)
                gaps.append(r.best_time_s / ex.best_time_s - 1)
            row[name] = {"median_gap": statistics.median(gaps), "max_gap": max(gaps), "gaps": gaps,
                         "within_2pct": sum(g <= 0.02 for g in gaps),
                         "seconds_per_search": (time.perf_counter() - t1) / args.seeds}
        rows.append(row)
        print(f"done: {label} ({ex.n_evaluated} configurations, exhaustive {ex_s:.1f} s)", file=sys.stderr)

    head = ["workload", "grid", "baseline (µs)", "optimum (µs)", "speedup"]
    head += [f"{n} gap median / worst (runs within 2%)" for n, _, _ in RUNS]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(" --- " for _ in head) + "|"]
    for row in rows:
        cells = [row["workload"], f"{row['grid']:,}", f"{row['baseline_s'] * 1e6:.1f}", f"{row['optimum_s'] * 1e6:.1f}",
                 f"{row['speedup']:.2f}x"]
        cells += [f"{row[n]['median_gap']:.2%} / {row[n]['max_gap']:.2%} ({row[n]['within_2pct']}/{args.seeds})"
                  for n, _, _ in RUNS]
        lines.append("| " + " | ".join(cells) + " |")
    print(f"GPU {gpu.id}; {args.trials} trials per search; {args.seeds} seeds; gap = best found / exhaustive optimum - 1")
    print("\n".join(lines))
    pooled = statistics.median(g for row in rows for g in row["TPE"]["gaps"])
    print(f"TPE median gap over all {len(rows) * args.seeds} runs: {pooled:.2%}")
    ok = all(row["TPE"]["median_gap"] <= 0.02 for row in rows)
    print(f"TPE within 2% of the exhaustive optimum (median over seeds) on every workload: {'yes' if ok else 'no'}")
    if args.json:
        Path(args.json).write_text(json.dumps({"gpu": gpu.id, "trials": args.trials, "seeds": args.seeds, "rows": rows},
                                              indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
