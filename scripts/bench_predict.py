#!/usr/bin/env python3
"""Throughput of perfmodel.predict_batch and latency of a single perfmodel.predict, on the seed
workload (12 x 500,000 x 128 fp32, pooling 150, batch 2048, reuse_medium trace), A100-80GB.

The workload's residency grids are computed once (cached); the figures are for the model's
per-configuration work. Two batches: a list of 288 configurations repeated 20 times (a
search's repeats), and a grid of 1,440 distinct configurations (variant x block size x
register cap x prefetch distance, as issue #17's acceptance check times it), the best of 3
(list) or 5 (grid) calls after a first call on other configurations: on a shared VM a call
is often descheduled for a few ms, which says nothing of the code. Single predict is timed on
configurations predict_batch never saw. Targets (issue #17, this 2-core VM): predict_batch
at least 1 M distinct configurations/s; a single fresh predict at most 50 us median.

    .venv/bin/python scripts/bench_predict.py
"""

from __future__ import annotations

import time
from importlib import resources
from pathlib import Path

import numpy as np

import perfmodel

TRACE = Path(str(resources.files("perfmodel").joinpath("data/traces/reuse_medium_500K.txt")))


def _best_rate(w: perfmodel.Workload, configs: list[perfmodel.KernelConfig], gpu: perfmodel.GPUSpec,
               calls: int) -> float:
    """Configurations per second of the fastest of ``calls`` predict_batch calls."""
    best = float("inf")
    for _ in range(calls):
        t0 = time.perf_counter()
        perfmodel.predict_batch(w, configs, gpu)
        best = min(best, time.perf_counter() - t0)
    return len(configs) / best


def main() -> None:
    w = perfmodel.Workload(batch_size=2048, tables=(perfmodel.Table(
        rows=500_000, dim=128, pooling=150, count=12,
        indices=perfmodel.IndexDistribution(kind="trace", path=str(TRACE))),))
    gpu = perfmodel.get_gpu("a100-80gb")
    K = perfmodel.KernelConfig
    configs = [K(variant=v, block_size=b, register_cap=r, prefetch_distance=p, pinned_row_fraction=f)
               for v in ["pytorch", "warp"] for b in [128, 256, 512] for r in [0, 32, 40, 48]
               for p in [0, 2, 4, 8] for f in [0.0, 0.05, 0.1]] * 20
    t0 = time.perf_counter()
    perfmodel.predict_batch(w, configs[:100], gpu)
    print(f"first call (residency grids, compiler table): {time.perf_counter() - t0:.2f} s")
    rate = _best_rate(w, configs, gpu, 3)
    grid = [K(variant=v, block_size=b, register_cap=c, prefetch_distance=p)
            for v in ("pytorch", "warp") for b in range(64, 1025, 64) for c in (0, 32, 40, 48, 64) for p in range(9)]
    rate_grid = _best_rate(w, grid, gpu, 5)
    fresh = [K(variant=v, block_size=b, register_cap=r, prefetch_distance=p, pinned_row_fraction=f)
             for v, b, r, p, f in zip(["pytorch", "warp"] * 100, [96, 160, 224, 288, 352] * 40, [0, 56, 64, 72] * 50,
                                      [1, 3, 5, 7] * 50, np.linspace(0.011, 0.097, 200), strict=True)]
    singles = []
    for c in fresh:
        t0 = time.perf_counter()
        perfmodel.predict(w, c, gpu)
        singles.append(time.perf_counter() - t0)
    print(f"predict_batch: {len(configs):,} configurations (288 distinct, repeated), {rate:,.0f} configurations/s")
    print(f"predict_batch: {len(grid):,} distinct configurations (grid), {rate_grid:,.0f} configurations/s "
          f"(target >= 1,000,000)")
    print(f"predict (single, fresh configurations): median {np.median(singles) * 1e6:.0f} us, "
          f"p90 {np.percentile(singles, 90) * 1e6:.0f} us (target <= 50 us)")


if __name__ == "__main__":
    main()
