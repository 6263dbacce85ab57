"""Throughput of the cache model behind `recperf cache-sim` (issue 5's speed figure).

Measures, on one core, line accesses per second of the set-associative sectored L2 model
(16 ways, 40 MiB, LRU/SRRIP/random) and of the exact fully associative LRU (stack
distances), on the shared reuse_medium trace repeated 20 times (8.6 M accesses) with
128-byte rows (one line per access) and with 512-byte rows (four lines per access).
Compilation is excluded (one warm-up call); each figure is the fastest of ``--best-of`` runs
(CPU time of this process). The CLI's end-to-end time, start-up and text parsing included,
is measured separately. Target (issue #17): the set-associative LRU at 40 M line accesses/s.

    .venv/bin/python scripts/bench_cache_sim.py [--repeat 20] [--best-of 3]
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
TRACE = ROOT / "perfmodel" / "data" / "traces" / "reuse_medium_500K.txt"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=20, help="times the trace is repeated (default 20)")
    ap.add_argument("--best-of", type=int, default=3, help="runs per figure, the fastest reported (default 3: the "
                    "VM is shared, and a run slowed by a neighbour says nothing of the code)")
    args = ap.parse_args()
    from perfmodel._lru import lru_hit_counts
    from perfmodel.sim import cache_sim

    ids = np.loadtxt(TRACE, dtype=np.int64)
    big = np.tile(ids, args.repeat)
    cache_sim(big[:1000], row_bytes=128, capacity_bytes=40 << 20, ways=16)  # compile / load
    print(f"trace: {TRACE.name} x {args.repeat} = {big.size:,} row accesses; one core; compile excluded")
    for row_bytes in (128, 512):
        for policy in ("lru", "srrip", "random"):
            cache_sim(big[:1000], row_bytes=row_bytes, capacity_bytes=40 << 20, ways=16, policy=policy)
            dt = math.inf
            for _ in range(args.best_of):
                t0 = time.process_time()
                r = cache_sim(big, row_bytes=row_bytes, capacity_bytes=40 << 20, ways=16, policy=policy)
                dt = min(dt, time.process_time() - t0)
            assert r.line_accesses is not None
            print(f"  set-associative 16-way 40 MiB {policy:6s} rows {row_bytes:3d} B: "
                  f"{r.line_accesses / dt / 1e6:6.1f} M line accesses/s  ({r.accesses / dt / 1e6:5.1f} M rows/s, "
                  f"hit rate {r.hit_rate:.4f})")
    lru_hit_counts(big[:1000], [1])
    t0 = time.process_time()
    lru_hit_counts(big, [81920])
    dt = time.process_time() - t0
    print(f"  fully associative LRU (stack distances):   {big.size / dt / 1e6:6.1f} M accesses/s")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "big.txt")
        np.savetxt(path, big, fmt="%d")
        recperf = str(Path(sys.executable).with_name("recperf"))
        cmd = [recperf, "cache-sim", "--trace", path, "--row-bytes", "128", "--capacity-bytes", str(40 << 20),
               "--ways", "16", "--json"]
        subprocess.run(cmd, check=True, capture_output=True)  # warm the OS file cache
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        dt = time.perf_counter() - t0
        print(f"  recperf cache-sim end to end (process start-up, parsing {os.path.getsize(path) / 1e6:.0f} MB of text, "
              f"simulation): {dt:.2f} s = {big.size / dt / 1e6:.1f} M accesses/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
