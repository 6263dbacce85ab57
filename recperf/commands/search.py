"""``recperf search``: the kernel configuration to deploy, against PyTorch's kernel as shipped.

By default the exact optimum of the model (the whole grid, when it fits ``--budget-s``; TPE
otherwise), kept in an Optuna study; ``--per-table`` a configuration per table (a plan file);
``--fidelity sim|gpu`` spends ``--budget-evals`` expensive evaluations on what the model
ranks; ``--exhaustive`` the whole unpruned grid, with no study (the ground truth).
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
from pathlib import Path
from typing import Any

from recperf._common import (
    add_gpu_arg,
    add_json_flag,
    emit,
    format_table,
    integer,
    number,
    refuse_overwrite,
    storage_file,
    workload_files,
)


def register(sub: Any) -> None:
    p = sub.add_parser(
        "search",
        help="search kernel configurations (exact grid or Optuna) for a workload and GPU",
        description="Search embedding-bag kernel configurations for a workload on a GPU: the whole grid when it fits "
        "--budget-s (exact at model fidelity), else an Optuna TPE study; --per-table gives each table its own "
        "configuration; report the best against PyTorch's kernel.",
    )
    add_gpu_arg(p)
    p.add_argument("--workload", required=True, help="workload TOML file")
    p.add_argument("--sampler", default="auto", choices=["auto", "grid", "tpe", "random"],
                   help="auto (default): walk the whole grid when its estimated time fits --budget-s, else TPE; "
                        "grid: walk it whatever it costs; tpe, random: Optuna's samplers")
    p.add_argument("--budget-s", type=number, default=60.0,
                   help="seconds --sampler auto may spend on the grid (estimated from the measured prediction rate; "
                        "default 60)")
    p.add_argument("--trials", type=integer, default=100,
                   help="trials to run now with a sampler (added to the study's earlier ones; not used by the grid)")
    p.add_argument("--seed", type=integer, default=0, help="sampler seed (reproducible runs)")
    p.add_argument("--storage", default=None,
                   help="Optuna storage URL (sqlite:///..., postgresql://...), ':memory:', or a file path "
                        "(.db: SQLite, else a journal file); default: an SQLite file under OUT/studies")
    p.add_argument("--study-name", default=None, help="study name (default: from the workload, GPU and space)")
    p.add_argument("--exhaustive", action="store_true",
                   help="predict the whole grid, no pruning, no study (the ground truth)")
    p.add_argument("--per-table", action="store_true",
                   help="the best configuration for each table: writes a plan file (see --plan-out)")
    p.add_argument("--plan-out", default=None,
                   help="with --per-table: the plan file to write (default OUT/plans/<workload>-<gpu>.toml)")
    p.add_argument("--objectives", default="time", help="'time' (default) or 'time,l2-bytes' (Pareto front)")
    p.add_argument("--fidelity", default="model", choices=["model", "sim", "gpu"],
                   help="model: predicted times; sim, gpu: spend --budget-evals simulator runs or GPU timings on "
                        "the configurations the model ranks best and near them")
    p.add_argument("--budget-evals", type=integer, default=30,
                   help="with --fidelity sim or gpu: expensive evaluations to spend now (default 30)")
    p.add_argument("--measurements", default=None,
                   help="with --fidelity gpu: replay measured times from this JSON-lines file instead of a live GPU")
    p.add_argument("--top-k", type=integer, default=10, help="configurations in the top table")
    p.add_argument("--workers", type=integer, default=1, help="local worker processes sharing the study (sampled trials)")
    p.add_argument("--ask-batch", type=integer, default=8, help="trials asked and predicted per batch")
    p.add_argument("--space", default=None,
                   help="search space TOML (keys: variants, block_sizes, register_caps, prefetch_distances, "
                        "prefetch_kinds, pinned_row_fractions, pin_methods, bounds_checks; lists); default: the GPU's")
    p.add_argument("--allow-no-bounds-check", action="store_true",
                   help="also search bounds_check = none (no index check: unsafe on bad input)")
    p.add_argument("--out", default="out", help="output folder for studies, plans and reports (default: out)")
    p.add_argument("--no-report", action="store_true", help="do not write the Markdown report")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import perfmodel
    import search
    from perfmodel import InputError

    gpu = perfmodel.get_gpu(args.gpu)
    workload = perfmodel.load_workload(args.workload)
    # the storage is written (and read), the plan written: neither may be an input file
    refuse_overwrite({"--storage": storage_file(args.storage), "--plan-out": args.plan_out},
                     {"--gpu": args.gpu, "--workload": args.workload, **workload_files(workload), "--space": args.space,
                      "--measurements": args.measurements})
    stem = Path(args.workload).stem
    progress = not args.no_progress
    space = search.load_space(args.space) if args.space else None
    if space is not None and args.allow_no_bounds_check:
        raise InputError("give bounds_checks in the --space file or --allow-no-bounds-check, not both")
    if args.exhaustive and args.per_table:
        raise InputError("give --exhaustive or --per-table, not both")
    if args.per_table:
        if args.fidelity != "model":
            raise InputError(f"--per-table plans at fidelity model, but got --fidelity {args.fidelity}")
        return _per_table(args, workload, gpu, stem, space, progress)
    if args.exhaustive:
        return _exhaustive(args, workload, gpu, stem, space, progress)

    measure: search.Measure | None = None
    if args.fidelity == "gpu" and args.measurements is None:
        # live measurements: search takes the measuring function, validation provides it (the
        # two packages meet here; neither imports the other)
        from validation import measure_configs

        measure = measure_configs
    result = search.optimize(
        workload, gpu, n_trials=args.trials, seed=args.seed, storage=args.storage, fidelity=args.fidelity,
        study_name=args.study_name or None, objectives=args.objectives, space=space,
        allow_no_bounds_check=args.allow_no_bounds_check, sampler=args.sampler, budget_s=args.budget_s,
        budget_evals=args.budget_evals, top_k=args.top_k, workers=args.workers, ask_batch=args.ask_batch,
        out_dir=args.out, measurements=args.measurements, progress=progress, workload_name=stem, measure=measure,
    )
    report = None
    if not args.no_report:
        command = "recperf " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["search"] else None
        report = search.write_report(result, Path(args.out) / "search" / _safe(result.study_name), workload, command)
    payload = {**result.to_dict(), "report": str(report) if report else None}

    def text() -> str:
        fid = {"model": "predicted", "sim": "simulated", "gpu": "measured"}[result.fidelity]
        header, rows = search.top_table_rows(result.top, result.baseline_time_s)
        runs = (f"{result.n_trials_run} trials written from the grid" if result.method == "exhaustive"
                else f"{result.n_trials_run} run now")
        out = [
            f"method {result.method}: {result.method_reason}",
            f"study {result.study_name} ({result.storage}): {result.n_trials_completed} completed trials "
            f"({result.n_infeasible} infeasible), {runs}",
            f"  baseline (PyTorch as shipped): {result.baseline_time_s * 1e6:.2f} µs  "
            f"{search.format_config(result.baseline_config)}",
            f"  best:                          {result.best_time_s * 1e6:.2f} µs  "
            f"{search.format_config(result.best_config)}",
            f"  {fid} speedup over the baseline: {result.speedup:.2f}x",
            "",
            f"top {len(result.top)} ({fid} time):",
            format_table(header, rows),
        ]
        if result.pareto:
            h2, r2 = search.top_table_rows(result.pareto, result.baseline_time_s)
            out += ["", "Pareto front (time, L2 set aside):", format_table(h2, r2)]
        fs = result.fidelity_study
        if fs is not None:
            rho = "n/a" if math.isnan(fs.spearman) else f"{fs.spearman:.3f}"
            out += ["", f"{len(fs.points)} configurations evaluated at fidelity {fs.fidelity} ({fs.n_new} now); "
                        f"Spearman rank correlation of model and {fs.fidelity} times: {rho}",
                    format_table(*search.fidelity_rows(fs))]
        if report:
            out += ["", f"report: {report}"]
        return "\n".join(out)

    return emit(args, payload, text)


def _exhaustive(args: argparse.Namespace, workload: Any, gpu: Any, stem: str, space: Any, progress: bool) -> int:
    import search

    ex = search.exhaustive(workload, gpu, space=space, allow_no_bounds_check=args.allow_no_bounds_check,
                           top_k=args.top_k, progress=progress)
    report = None
    if not args.no_report:
        report = search.write_exhaustive_report(ex, Path(args.out) / "search" / f"exhaustive-{stem}-{gpu.id}")
    payload = {**ex.to_dict(), "method": "exhaustive", "report": str(report) if report else None}

    def text() -> str:
        header, rows = search.top_table_rows(ex.top, ex.baseline_time_s)
        return "\n".join([
            f"exhaustive grid on {gpu.id}: {ex.n_evaluated} configurations ({ex.n_infeasible} infeasible) "
            f"in {ex.elapsed_s:.1f} s",
            f"  baseline (PyTorch as shipped): {ex.baseline_time_s * 1e6:.2f} µs",
            f"  best:                          {ex.best_time_s * 1e6:.2f} µs  {search.format_config(ex.best_config)}",
            f"  predicted speedup: {ex.speedup:.2f}x",
            "",
            format_table(header, rows),
            *([f"\nreport: {report}"] if report else []),
        ])

    return emit(args, payload, text)


def _per_table(args: argparse.Namespace, workload: Any, gpu: Any, stem: str, space: Any, progress: bool) -> int:
    import search

    res = search.plan(workload, gpu, space=space, objectives=args.objectives,
                      allow_no_bounds_check=args.allow_no_bounds_check, progress=progress)
    path = Path(args.plan_out) if args.plan_out else Path(args.out) / "plans" / f"{_safe(stem)}-{gpu.id}.toml"
    res.write(path)
    report = None
    if not args.no_report:
        report = search.write_plan_report(res, Path(args.out) / "search" / f"plan-{_safe(stem)}-{gpu.id}", str(path))
    payload = {**res.to_dict(), "plan_path": str(path), "report": str(report) if report else None}

    def text() -> str:
        header = ["table", "rows", "dim", "pooling", "count", "plan (µs)", "one config (µs)", "PyTorch (µs)",
                  "configuration"]
        rows = [[e.index, f"{e.table.rows:,}", e.table.dim, f"{e.table.mean_pooling:g}", e.table.count,
                 f"{e.time_s * 1e6:.2f}", f"{e.single_config_time_s * 1e6:.2f}", f"{e.baseline_time_s * 1e6:.2f}",
                 search.format_config(e.config)] for e in res.tables]
        out = [
            f"per-table plan on {gpu.id}: the grid ({res.grid_size:,} configurations, {res.n_evaluated:,} predicted "
            f"after leaving out dominated register caps) for {res.n_groups} groups of identical tables in "
            f"{res.elapsed_s:.1f} s",
            f"  plan (a configuration per table): {res.plan_time_s * 1e6:.2f} µs  ({res.speedup:.2f}x over PyTorch)",
            f"  best single configuration:        {res.single_config_time_s * 1e6:.2f} µs  "
            f"{search.format_config(res.single_config)}",
            f"  PyTorch as shipped:               {res.baseline_time_s * 1e6:.2f} µs",
            "",
            format_table(header, rows),
            "",
            f"plan: {path}  (recperf predict --gpu {gpu.id} --workload {args.workload} --plan {path})",
        ]
        if res.pareto:
            out += ["", "Pareto front of plans (time, L2 set aside):",
                    format_table(["time (µs)", "L2 set aside (MiB)"],
                                 [[f"{p.time_s * 1e6:.2f}", f"{p.l2_bytes / 2**20:.1f}"] for p in res.pareto])]
        if report:
            out += [f"report: {report}"]
        return "\n".join(out)

    return emit(args, payload, text)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
