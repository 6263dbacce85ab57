#!/usr/bin/env python3
"""Sweep Optuna TPE settings on the search benchmark (issue 6): how often each lands within 2%.

For each TPE setting (one per ``--setting``, or the built-in list), runs ``--seeds`` seeds of
a ``--trials``-trial TPE search (in-memory study, the known-good points enqueued, as
``recperf search --sampler tpe`` does; the setting's sampler object is passed to
``search.optimize``) on each benchmark workload of ``scripts/bench_search.py`` and prints
how many runs end within 2% of the exhaustive optimum and the median gap. A setting is a
comma-separated list of ``key=value``: ``ask_batch`` (trials per round, see
``search.optimize``) and any ``optuna.samplers.TPESampler`` keyword (``n_startup_trials``,
``n_ei_candidates``, ``multivariate``, ``constant_liar``, ...).

    .venv/bin/python scripts/sweep_tpe.py --seeds 20 [--setting ask_batch=2,n_startup_trials=5 ...] [--json out.json]

This is the measurement behind docs/search.md's "TPE settings tried" (about 45 s per setting
for 20 seeds x 3 workloads on one core of the development VM).
"""

from __future__ import annotations

import argparse
import ast
import json
import statistics
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_search import WORKLOADS

if TYPE_CHECKING:
    from perfmodel import GPUSpec, Workload
    from search import SearchSpace

#: the shipped default first, then single changes and a few combinations
DEFAULT_SETTINGS = (
    "",
    "ask_batch=1",
    "ask_batch=2",
    "ask_batch=4",
    "ask_batch=16",
    "ask_batch=32",
    "n_startup_trials=5",
    "n_startup_trials=30",
    "n_ei_candidates=128",
    "multivariate=False",
    "constant_liar=False",
    "ask_batch=2,n_startup_trials=5,n_ei_candidates=128",
)


def parse_setting(text: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"setting item must be key=value, but got {item!r}")
        try:
            out[key.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            raise SystemExit(f"setting value must be a Python literal, but got {value!r} for {key!r}") from None
    return out


def run_setting(text: str, workloads: Mapping[str, Workload], optima: Mapping[str, float], gpu: GPUSpec, *,
                seeds: int, trials: int, space: SearchSpace | None = None) -> dict[str, Any]:
    """Search each workload with the TPE setting ``text`` for ``seeds`` seeds; gaps to ``optima``."""
    import search

    opts = parse_setting(text)
    ask_batch = int(opts.pop("ask_batch", search.DEFAULT_ASK_BATCH))
    t0 = time.perf_counter()
    row: dict[str, Any] = {"setting": text or "(shipped default)", "ask_batch": ask_batch, "tpe": opts}
    for label, wl in workloads.items():
        gaps = []
        for s in range(seeds):
            sampler = search.make_sampler("tpe", s, tpe_options=opts)  # the shipped keywords, overridden by opts
            r = search.optimize(wl, gpu, n_trials=trials, storage=":memory:", study_name="sweep", sampler=sampler,
                                ask_batch=ask_batch, space=space)
            gaps.append(r.best_time_s / optima[label] - 1)
        row[label] = {"within_2pct": sum(g <= 0.02 for g in gaps), "median_gap": statistics.median(gaps),
                      "gaps": gaps}
    row["seconds"] = time.perf_counter() - t0
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gpu", default="a100-80gb")
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--setting", action="append", default=None, help="key=value,... (repeatable; default: a built-in list)")
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = ap.parse_args(argv)

    import optuna

    import perfmodel
    import search

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    gpu = perfmodel.get_gpu(args.gpu)
    workloads = {label: perfmodel.load_workload(path) for label, path in WORKLOADS.items()}
    optima = {label: search.exhaustive(wl, gpu).best_time_s for label, wl in workloads.items()}
    rows = []
    for text in args.setting if args.setting is not None else DEFAULT_SETTINGS:
        row = run_setting(text, workloads, optima, gpu, seeds=args.seeds, trials=args.trials)
        rows.append(row)
        cells = "  ".join(f"{r['within_2pct']:2d}/{args.seeds} ({r['median_gap']:6.2%})"
                          for r in (row[label] for label in workloads))
        print(f"{row['setting']:<55} {cells}", flush=True)
    print(f"columns: runs within 2% of the exhaustive optimum (median gap) for {', '.join(workloads)}; "
          f"{args.trials} trials, {args.seeds} seeds, GPU {gpu.id}")
    if args.json:
        Path(args.json).write_text(json.dumps({"gpu": gpu.id, "trials": args.trials, "seeds": args.seeds, "rows": rows},
                                              indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
