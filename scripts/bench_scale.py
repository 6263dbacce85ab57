#!/usr/bin/env python3
"""Cost of the model against the table's rows (issue #17): predict's time and memory for
1e5, 1e7 and 1e9 rows (Zipf 1.05 and uniform), simulate of a 1e9-row table, and
`recperf pipeline` of every zoo model.

Each figure comes from a fresh process (as a user meets it: the first predict of a table
builds its residency), run under an address-space limit (``--limit-gb``, default 6) so an
O(rows) model fails fast instead of swapping the machine. Workload: batch 4096, one table of
32 fp16 columns, pooling 40, on the H200, PyTorch's kernel as shipped.

    .venv/bin/python scripts/bench_scale.py [--no-simulate] [--no-pipeline] [--limit-gb 6]

Targets (this 2-core VM): predict of 1e9 Zipf rows under 50 ms and 100 MB more memory, and
within 3x of 1e5 rows; simulate of 1e9 rows under 30 s; each pipeline under 1 s of work.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_PROBE = r"""
import json, os, resource, sys, tempfile, time
limit = int(float(sys.argv[4]) * (1 << 30))
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
t_import = time.perf_counter()
import perfmodel as pm
t_import = time.perf_counter() - t_import
rows, kind, what = int(sys.argv[1]), sys.argv[2], sys.argv[3]
w = pm.Workload(batch_size=4096, tables=(pm.Table(rows=rows, dim=32, dtype="float16", pooling=40,
                indices=pm.IndexDistribution(kind=kind, alpha=1.05)),))
g = pm.get_gpu("h200"); k = pm.KernelConfig()
pm.predict(pm.Workload(batch_size=1, tables=(pm.Table(rows=1, dim=32, dtype="float16", pooling=1),)), k, g)  # load the shipped tables
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
p = pm.predict(w, k, g) if what == "predict" else pm.simulate(w, k, g)
t1 = time.perf_counter()
if what == "predict":
    t2 = time.perf_counter(); pm.predict(w, k.replace(block_size=512), g); t_again = time.perf_counter() - t2
else:
    t_again = float("nan")
rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"s": t1 - t0, "again_s": t_again, "mb": (rss1 - rss0) / 1024, "peak_mb": rss1 / 1024,
                  "import_s": t_import, "time_s": p.time_s, "hit": p.l2_hit_rate}))
"""


def _probe(rows: int, kind: str, what: str, limit_gb: float, timeout: float) -> dict[str, float] | str:
    t0 = time.perf_counter()
    try:
        out = subprocess.run([sys.executable, "-c", _PROBE, str(rows), kind, what, str(limit_gb)], check=False,
                             capture_output=True,
                             text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return f"over {timeout:.0f} s"
    if out.returncode:
        tail = (out.stderr.strip().splitlines() or ["?"])[-1]
        return f"failed after {time.perf_counter() - t0:.0f} s: {tail[:90]}"
    got: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return got


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit-gb", type=float, default=6.0, help="address-space limit of each probe (default 6)")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per probe (default 300)")
    ap.add_argument("--no-simulate", action="store_true", help="skip simulate of 1e9 rows")
    ap.add_argument("--no-pipeline", action="store_true", help="skip recperf pipeline of the zoo models")
    args = ap.parse_args()
    print(f"predict, first call in a fresh process (residency built), h200, batch 4096 x pooling 40, "
          f"32 fp16 columns; limit {args.limit_gb:g} GB of address space")
    print(f"{'indices':>10s} {'rows':>6s} {'predict':>10s} {'again':>9s} {'+memory':>9s} {'peak':>8s} "
          f"{'L2 hit':>7s} {'time_s':>10s}")
    first: dict[tuple[str, int], float] = {}
    for kind in ("zipf", "uniform"):
        for rows in (10**5, 10**7, 10**9):
            r = _probe(rows, kind, "predict", args.limit_gb, args.timeout)
            label = f"{kind} 1.05" if kind == "zipf" else kind
            if isinstance(r, str):
                print(f"{label:>10s} {rows:6.0e} {r}")
                continue
            first[(kind, rows)] = r["s"]
            print(f"{label:>10s} {rows:6.0e} {r['s'] * 1e3:8.1f} ms {r['again_s'] * 1e6:6.0f} us "
                  f"{r['mb']:+6.0f} MB {r['peak_mb']:5.0f} MB {r['hit']:7.2%} {r['time_s'] * 1e6:7.1f} us")
    for kind in ("zipf", "uniform"):
        a, b = first.get((kind, 10**5)), first.get((kind, 10**9))
        if a and b:
            print(f"  {kind}: 1e9 rows / 1e5 rows = {b / a:.2f}x in time (target <= 3x)")
    if not args.no_simulate:
        r = _probe(10**9, "zipf", "simulate", args.limit_gb, args.timeout)
        if isinstance(r, str):
            print(f"simulate, zipf 1.05, 1e9 rows: {r}")
        else:
            print(f"simulate, zipf 1.05, 1e9 rows: {r['s']:.1f} s, {r['mb']:+.0f} MB "
                  f"(L2 hit {r['hit']:.2%}, {r['time_s'] * 1e6:.1f} us; target under 30 s)")
    if not args.no_pipeline:
        recperf = str(Path(sys.executable).with_name("recperf"))
        models = [m["id"] for m in json.loads(subprocess.run([recperf, "models", "--json"], capture_output=True,
                                                                 text=True, check=True).stdout)["models"]]
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import perfmodel.pipeline"], check=True)
        start = time.perf_counter() - t0
        print(f"recperf pipeline --device h100-sxm --batch-size 2048 --json, one process each "
              f"(python -c 'import perfmodel.pipeline' alone: {start:.2f} s)")
        for m in models:
            t0 = time.perf_counter()
            out = subprocess.run([recperf, "pipeline", "--model", m, "--device", "h100-sxm", "--batch-size", "2048",
                                  "--json"], check=False, capture_output=True, text=True, timeout=args.timeout,
                                 env={**os.environ, "PYTHONPATH": str(ROOT)})
            dt = time.perf_counter() - t0
            status = "ok" if out.returncode == 0 else f"exit {out.returncode}"
            print(f"  {m:18s} {dt:6.2f} s  ({status}; target: under 1 s of work + start-up, acceptance 3 s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
