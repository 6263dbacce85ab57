"""``recperf search``: the kernel configuration to deploy, found with an Optuna study (or the
whole grid with ``--exhaustive``), against PyTorch's kernel as shipped."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from recperf._common import add_gpu_arg, add_json_flag, emit, format_table


def register(sub: Any) -> None:
    p = sub.add_parser(
        "search",
        help="search kernel configurations (Optuna) for a workload and GPU",
        description="Search embedding-bag kernel configurations for a workload on a GPU with an Optuna study "
        "(TPE by default), or predict the whole grid with --exhaustive; report the best against PyTorch's kernel.",
    )
    add_gpu_arg(p)
    p.add_argument("--workload", required=True, help="workload TOML file")
    p.add_argument("--trials", type=int, default=100, help="trials to run now (added to the study's earlier ones)")
    p.add_argument("--seed", type=int, default=0, help="sampler seed (reproducible runs)")
    p.add_argument("--storage", default=None,
                   help="Optuna storage URL (sqlite:///..., postgresql://...), ':memory:', or a file path "
                        "(.db: SQLite, else a journal file); default: an SQLite file under OUT/studies")
    p.add_argument("--study-name", default=None, help="study name (default: from the workload, GPU and space)")
    p.add_argument("--exhaustive", action="store_true", help="predict the whole grid instead (ground truth)")
    p.add_argument("--objectives", default="time", help="'time' (default) or 'time,l2-bytes' (Pareto front)")
    p.add_argument("--fidelity", default="model", choices=["model", "sim", "gpu"],
                   help="model: predicted times; sim: re-rank the top k with the simulator; gpu: with measurements")
    p.add_argument("--measurements", default=None,
                   help="with --fidelity gpu: replay measured times from this JSON-lines file instead of a live GPU")
    p.add_argument("--top-k", type=int, default=10, help="configurations in the top table (and re-ranked)")
    p.add_argument("--workers", type=int, default=1, help="local worker processes sharing the study")
    p.add_argument("--sampler", default="tpe", choices=["tpe", "random"], help="Optuna sampler")
    p.add_argument("--ask-batch", type=int, default=8, help="trials asked and predicted per batch")
    p.add_argument("--space", default=None,
                   help="search space TOML (keys: variants, block_sizes, register_caps, prefetch_distances, "
                        "prefetch_kinds, pinned_row_fractions, pin_methods, bounds_checks; lists); default: the GPU's")
    p.add_argument("--allow-no-bounds-check", action="store_true",
                   help="also search bounds_check = none (no index check: unsafe on bad input)")
    p.add_argument("--out", default="out", help="output folder for studies and reports (default: out)")
    p.add_argument("--no-report", action="store_true", help="do not write the Markdown report")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import perfmodel
    import search
    from search import format_config, top_table_rows

    gpu = perfmodel.get_gpu(args.gpu)
    workload = perfmodel.load_workload(args.workload)
    stem = Path(args.workload).stem
    progress = not args.no_progress
    space = search.load_space(args.space) if args.space else None
    if space is not None and args.allow_no_bounds_check:
        from perfmodel import InputError

        raise InputError("give bounds_checks in the --space file or --allow-no-bounds-check, not both")
    if args.exhaustive:
        ex = search.exhaustive(workload, gpu, space=space, allow_no_bounds_check=args.allow_no_bounds_check,
                               top_k=args.top_k, progress=progress)
        report = None
        if not args.no_report:
            report = search.write_exhaustive_report(ex, Path(args.out) / "search" / f"exhaustive-{stem}-{gpu.id}")
        payload = {**ex.to_dict(), "report": str(report) if report else None}

        def ex_text() -> str:
            header, rows = top_table_rows(ex.top, ex.baseline_time_s)
            return "\n".join([
                f"exhaustive grid on {gpu.id}: {ex.n_evaluated} configurations ({ex.n_infeasible} infeasible) "
                f"in {ex.elapsed_s:.1f} s",
                f"  baseline (PyTorch as shipped): {ex.baseline_time_s * 1e6:.2f} µs",
                f"  best:                          {ex.best_time_s * 1e6:.2f} µs  {format_config(ex.best_config)}",
                f"  predicted speedup: {ex.speedup:.2f}x",
                "",
                format_table(header, rows),
                *([f"\nreport: {report}"] if report else []),
            ])

        return emit(args, payload, ex_text)

    measure: search.Measure | None = None
    if args.fidelity == "gpu" and args.measurements is None:
        # live measurements: search takes the measuring function, validation provides it (the
        # two packages meet here; neither imports the other)
        from validation import measure_configs

        measure = measure_configs
    result = search.optimize(
        workload, gpu, n_trials=args.trials, seed=args.seed, storage=args.storage, fidelity=args.fidelity,
        study_name=args.study_name or None, objectives=args.objectives, space=space,
        allow_no_bounds_check=args.allow_no_bounds_check,
        sampler=args.sampler, top_k=args.top_k, workers=args.workers, ask_batch=args.ask_batch, out_dir=args.out,
        measurements=args.measurements, progress=progress, workload_name=stem,
        measure=measure,
    )
    report = None
    if not args.no_report:
        command = "recperf " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["search"] else None
        report = search.write_report(result, Path(args.out) / "search" / _safe(result.study_name), workload, command)
    payload = {**result.to_dict(), "report": str(report) if report else None}

    def text() -> str:
        fid = {"model": "predicted", "sim": "simulated", "gpu": "measured"}[result.fidelity]
        header, rows = top_table_rows(result.top, result.baseline_time_s)
        out = [
            f"study {result.study_name} ({result.storage}): {result.n_trials_completed} completed trials "
            f"({result.n_infeasible} infeasible), {result.n_trials_run} run now",
            f"  baseline (PyTorch as shipped): {result.baseline_time_s * 1e6:.2f} µs  {format_config(result.baseline_config)}",
            f"  best:                          {result.best_time_s * 1e6:.2f} µs  {format_config(result.best_config)}",
            f"  {fid} speedup over the baseline: {result.speedup:.2f}x",
            "",
            f"top {len(result.top)} ({fid} time):",
            format_table(header, rows),
        ]
        if result.pareto:
            h2, r2 = top_table_rows(result.pareto, result.baseline_time_s)
            out += ["", "Pareto front (time, L2 set aside):", format_table(h2, r2)]
        if report:
            out += ["", f"report: {report}"]
        return "\n".join(out)

    return emit(args, payload, text)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)

