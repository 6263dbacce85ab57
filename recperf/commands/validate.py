"""``recperf validate``: accuracy reports, published-data comparison, calibration, GPU runs.

- ``report``: the model's predictions against a measurement file (JSON lines): ``n``,
  ``mape``, ``spearman``, ``kendall``, ``top1_regret``; optional scatter PNG and Markdown.
- ``published``: the model against published data: the microbenchmark curves (MAPE) and the
  ledger of kernel times, each predicted as its source timed it (the fidelity table).
- ``calibrate``: fit the GPU spec's latencies and bandwidths to microbenchmark curves
  (recorded ones from a GPU run or its archive, or the published files) and write a spec file
  ``--gpu`` accepts.
- ``micro``: run the microbenchmarks on this machine's GPU (CuPy).
- ``sweep``: verify, then time kernel configurations on this machine's GPU; appends records.
- ``preflight``: is there a GPU, and do this CuPy, its NVRTC and the driver go together?
- ``run-all``: smoke test, microbenchmarks, calibration, a sweep and the reports in one command.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from recperf._common import (
    add_json_flag,
    emit,
    fail,
    format_table,
    integer,
    number,
    refuse_overwrite,
    storage_file,
    workload_files,
)


def register(sub: Any) -> None:
    p = sub.add_parser("validate", help="validate the model: accuracy reports, published data, calibration, GPU runs")
    vsub = p.add_subparsers(dest="validate_command", metavar="SUBCOMMAND")

    r = vsub.add_parser("report", help="predictions vs a measurement file: MAPE, Spearman, Kendall, top-1 regret")
    r.add_argument("--measurements", required=True,
                   help="measurement file (JSON lines, CONTRACT.md format) or a hardware-run archive (.tar.gz)")
    r.add_argument("--gpu-spec", default=None,
                   help="GPU id or spec file (e.g. a calibrated one) to predict every record with, instead of its own gpu")
    r.add_argument("--plot", default=None, help="write a predicted-vs-measured scatter PNG here (e.g. out/report.png)")
    r.add_argument("--markdown", default=None, help="write a Markdown report here (e.g. out/report.md)")
    add_json_flag(r)
    r.set_defaults(func=run_report)

    pub = vsub.add_parser("published", help="the model against published measurements: microbenchmark curves "
                                            "and the ledger of kernel times (fidelity table)")
    pub.add_argument("--kind", action="append", choices=["stream-read", "pointer-chase", "l2-read", "kernel-time"],
                     help="only datasets of this kind (repeatable; kernel-time = the ledger)")
    pub.add_argument("--source", action="append", default=None, metavar="ID",
                     help="only this ledger source (repeatable), e.g. micro24-artifact")
    pub.add_argument("--gpu-spec", action="append", default=[], metavar="ID=SPEC",
                     help="use this spec file for the datasets of GPU ID (e.g. a100-80gb=out/cal.toml); repeatable")
    pub.add_argument("--windows", type=integer, default=4, metavar="N",
                     help="for a kernel time averaged over many calls of a run through a trace, predict N of "
                          "those calls spread evenly (default 4; 1 = the first timed call)")
    pub.add_argument("--points", action="store_true", help="include every curve point (x, measured, predicted) in --json")
    add_json_flag(pub)
    pub.set_defaults(func=run_published)

    c = vsub.add_parser("calibrate", help="fit the spec's latencies and bandwidths to microbenchmark curves")
    c.add_argument("--gpu", default=None, help="GPU id or spec file to start from (default with --archive: the archive's GPU)")
    c.add_argument("--archive", default=None, help="a hardware-run archive (.tar.gz): its microbenchmarks and GPU id")
    c.add_argument("--micro", default=None, help="microbenchmark results (JSON lines from `validate micro`)")
    c.add_argument("--latency", default=None, help="a gpu-benches latency_*.txt file (pointer chase)")
    c.add_argument("--stream", default=None, help="a gpu-benches stream_*.txt file (read column, 2 blocks/SM)")
    c.add_argument("--l2", default=None, help="a gpu-benches l2-cache_*.txt file")
    c.add_argument("--published", action="store_true",
                   help="use the shipped published files for --gpu (e.g. a100-80gb: latency, stream, l2-cache)")
    c.add_argument("--out", default=None, help="write the calibrated spec file here (default out/<gpu>-calibrated.toml)")
    c.add_argument("--points", action="store_true", help="include every point's residual in --json")
    add_json_flag(c)
    c.set_defaults(func=run_calibrate)

    m = vsub.add_parser("micro", help="run the microbenchmarks on this machine's GPU (needs CuPy and a GPU)")
    m.add_argument("--gpu", default=None, help="GPU id of this device (default: matched from the device name)")
    m.add_argument("--out", required=True, help="results file (JSON lines; appended)")
    m.add_argument("--quick", action="store_true", help="fewer points (about a minute)")
    m.add_argument("--kind", action="append",
                   choices=["pointer-chase", "stream-read", "l2-read", "persisting-l2"], help="only these (repeatable)")
    add_json_flag(m)
    m.set_defaults(func=run_micro)

    s = vsub.add_parser("sweep", help="verify then time kernel configurations on this machine's GPU (appends records)")
    s.add_argument("--workload", required=True, help="workload TOML file")
    s.add_argument("--kernels", default=None, help="kernel configs: a JSON-lines file, or a folder of .toml files")
    s.add_argument("--grid", default=None, help="a JSON object of lists, e.g. '{\"block_size\": [128, 256]}'")
    s.add_argument("--sample", type=integer, default=0, help="take N random configurations of the grid (seeded)")
    s.add_argument("--study-storage", default=None, help="a search study's storage (URL or file), for --top")
    s.add_argument("--study-name", default=None, help="the search study's name, for --top")
    s.add_argument("--top", type=integer, default=0, help="measure the study's K best distinct configurations")
    s.add_argument("--seed", type=integer, default=0)
    s.add_argument("--gpu", default=None, help="GPU id recorded in the records (default: matched from the device)")
    s.add_argument("--out", required=True, help="measurement file (JSON lines); a re-run skips records already there")
    s.add_argument("--repeats", type=integer, default=20, help="timed repetitions per configuration (median reported)")
    s.add_argument("--warmup", type=integer, default=3)
    s.add_argument("--warm-cache", action="store_true",
                   help="no L2 flush between repetitions and one index buffer (no rotation)")
    add_json_flag(s)
    s.set_defaults(func=run_sweep)

    f = vsub.add_parser("preflight", help="is a GPU usable here: device, driver, CuPy, NVRTC (exit 2 if not)")
    add_json_flag(f)
    f.set_defaults(func=run_preflight)

    a = vsub.add_parser("run-all", help="one command on a GPU: smoke test, microbenchmarks, calibration, sweep, reports")
    a.add_argument("--out", required=True, help="folder for every result")
    a.add_argument("--gpu", default=None, help="GPU id of this device (default: matched from the device name)")
    a.add_argument("--budget-s", type=number, default=420.0, help="wall-clock budget in seconds (default 420)")
    a.add_argument("--workload", default=None, help="workload for the sweep (default: the seed paper's reuse_low table)")
    add_json_flag(a)
    a.set_defaults(func=run_all)

    def no_sub(args: argparse.Namespace) -> int:
        p.print_help()
        return 2

    p.set_defaults(func=no_sub)


def _f(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4f}"


def run_report(args: argparse.Namespace) -> int:
    from validation import accuracy_report, render_markdown, render_scatter

    outputs = {"--plot": args.plot, "--markdown": args.markdown}
    refuse_overwrite(outputs, {"--measurements": args.measurements, "--gpu-spec": args.gpu_spec})
    rep = accuracy_report(args.measurements, gpu=args.gpu_spec)
    # the workload files the records name (and their traces) are inputs too
    refuse_overwrite(outputs, {f"--measurements line {r.line}'s {k}": v for r in rep.records
                               for k, v in {"workload": r.workload_ref, **workload_files(r.workload, "workload")}.items()})
    payload = rep.to_dict()
    if args.plot:
        payload["plot"] = str(render_scatter(rep, args.plot))
    if args.markdown:
        md = Path(args.markdown)
        md.parent.mkdir(parents=True, exist_ok=True)
        plot_rel = None
        if args.plot:
            try:
                plot_rel = str(Path(args.plot).resolve().relative_to(md.resolve().parent))
            except ValueError:
                plot_rel = str(Path(args.plot).resolve())
        md.write_text(render_markdown(rep, plot=plot_rel), encoding="utf-8")
        payload["markdown"] = str(md)
    m = rep.metrics

    def text() -> str:
        lines = [f"{rep.source}: {m.n} records" + (" (SYNTHETIC data: not a measurement)" if rep.synthetic else "")]
        if rep.pooled:  # per GPU first; the pooled figures mix GPUs' ranks and say so
            rows = [[g.gpu, g.metrics.n, f"{g.metrics.mape:.2%}", _f(g.metrics.spearman), _f(g.metrics.kendall),
                     f"{g.metrics.top1_regret:.2%}"] for g in rep.per_gpu]
            lines += [format_table(["gpu", "n", "mape", "spearman", "kendall", "top1 regret"], rows),
                      f"  pooled over {len(rep.per_gpu)} GPUs (ranks mix GPUs, not a per-GPU figure): MAPE "
                      f"{m.mape:.2%}, Spearman {_f(m.spearman)}, Kendall tau-b {_f(m.kendall)}, top-1 regret "
                      f"{m.top1_regret:.2%}"]
        else:
            lines += [
                f"  MAPE          {m.mape:.2%}",
                f"  Spearman      {_f(m.spearman)}",
                f"  Kendall tau-b {_f(m.kendall)}",
                f"  top-1 regret  {m.top1_regret:.2%}  (predicted best: line {rep.records[m.predicted_best_index].line})",
            ]
        if len(rep.groups) > 1:
            rows = [[g.gpu, Path(g.workload).name, g.metrics.n, f"{g.metrics.mape:.2%}", _f(g.metrics.spearman),
                     _f(g.metrics.kendall), f"{g.metrics.top1_regret:.2%}"] for g in rep.groups]
            lines += ["", format_table(["gpu", "workload", "n", "mape", "spearman", "kendall", "top1 regret"], rows)]
        for k in ("plot", "markdown"):
            if k in payload:
                lines.append(f"{k}: {payload[k]}")
        return "\n".join(lines)

    return emit(args, payload, text)


def _spec_overrides(items: list[str]) -> dict[str, Any]:
    import perfmodel

    out: dict[str, Any] = {}
    for item in items:
        gpu_id, sep, spec = item.partition("=")
        if not sep or not gpu_id or not spec:
            raise perfmodel.InputError(f"--gpu-spec must be ID=SPEC (e.g. a100-80gb=out/cal.toml), but got {item!r}")
        if gpu_id not in perfmodel.gpu_ids():
            raise perfmodel.InputError(f"--gpu-spec ID=SPEC: ID must be a GPU id of the catalogue whose published data "
                                       f"the spec replaces ({', '.join(perfmodel.gpu_ids())}), but got {gpu_id!r}")
        out[gpu_id] = perfmodel.get_gpu(spec)
    return out


def _us(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 1e6:,.1f}"


def run_published(args: argparse.Namespace) -> int:
    from validation.published import compare_ledger, compare_published, published_datasets

    gpus = _spec_overrides(args.gpu_spec)
    kinds = args.kind
    curves = compare_published(published_datasets(kinds), gpus=gpus) if kinds is None or set(kinds) - {"kernel-time"} \
        else []
    ledger = compare_ledger(gpus=gpus, windows=args.windows, sources=args.source) \
        if kinds is None or "kernel-time" in kinds else None
    points = [r for r in ledger.points if r.ok] if ledger else []
    ratios = [r for r in ledger.ratios if r.ok] if ledger else []
    pending = ([r.to_dict() for r in ledger.points if not r.ok] + [r.to_dict() for r in ledger.ratios if not r.ok]
               if ledger else [])
    payload: dict[str, Any] = {
        "datasets": [r.to_dict(points=args.points) for r in curves] + [r.to_dict() for r in points],
        "ratios": [r.to_dict() for r in ratios],
        "pending": pending,
    }
    if ledger:
        payload["windows"] = ledger.windows
        payload["harness"] = {k: c.to_dict() for k, c in ledger.costs.items()}

    def text() -> str:
        out: list[str] = []
        if curves:
            rows = [[r.dataset.name, r.dataset.gpu, r.dataset.metric, len(r.dataset.measured), f"{r.error:.1%}",
                     f"{r.max_error:.1%}"] for r in curves]
            out += ["The model against published microbenchmark curves (error = MAPE over the dataset's points)",
                    format_table(["dataset", "gpu", "metric", "n", "error", "max error"], rows)]
        if ledger is None:
            return "\n".join(out)
        rows = [[r.point.name, r.point.source_id, r.gpu, r.point.role, _us(r.point.measured_s),
                 _us(r.predicted.as_timed_s if r.predicted else None), f"{r.error:.1%}",
                 _us(r.predicted.harness_s if r.predicted else None)] for r in points]
        checks = [r.error for r in points if r.point.role == "check"]
        out += ["", "Kernel times as their sources timed them (validation/data/published; us per table call; "
                    "error = |predicted / measured - 1|; harness = host terms in the timed region)",
                format_table(["point", "source", "gpu", "role", "measured", "predicted", "error", "harness"], rows)
                if rows else "(no kernel time the model can predict yet)"]
        if checks:
            out.append(f"check points: {len(checks)}, mean error {sum(checks) / len(checks):.1%}, "
                       f"max error {max(checks):.1%}")
        if ratios:
            out += ["", "Before/after ratios measured within one source",
                    format_table(["ratio", "source", "gpu", "measured", "predicted", "error"],
                                 [[r.ratio.name, r.ratio.source_id, r.gpu, f"{r.ratio.measured:.3f}",
                                   f"{r.predicted:.3f}", f"{r.error:.1%}"] for r in ratios])]
        waiting = [r for r in ledger.points if not r.ok]
        if waiting:
            rows = [[r.point.name, r.point.source_id, r.gpu, r.status, _us(r.point.measured_s),
                     _us(r.stand_in.as_timed_s) if r.stand_in else "-",
                     f"{abs(r.stand_in.as_timed_s / r.point.measured_s - 1):.1%}" if r.stand_in else "-"]
                    for r in waiting]
            out += ["", "Not predicted yet (stand-in: the nearest configuration the model knows, for information "
                        "only; --json gives each reason)",
                    format_table(["point", "source", "gpu", "status", "measured", "stand-in", "stand-in error"], rows)]
            reasons = sorted({f"{r.status}: {r.reason}" for r in waiting})
            out += [f"  - {x}" for x in reasons]
        bad_ratios = [r for r in ledger.ratios if not r.ok]
        if bad_ratios:
            out.append(f"ratios not predicted yet: {len(bad_ratios)} (see --json 'pending')")
        return "\n".join(out)

    return emit(args, payload, text)


def run_calibrate(args: argparse.Namespace) -> int:
    import perfmodel
    from validation import MicroData, calibrate, open_run_archive, read_micro_results
    from validation.published import data_dir, parse_l2, parse_latency, parse_stream

    run = open_run_archive(args.archive) if args.archive else None
    gpu = args.gpu or (run.gpu if run is not None else None)
    if gpu is None:
        raise perfmodel.InputError("calibrate needs --gpu, or --archive whose manifest names a recperf GPU"
                                   + (f" (this one names none: device {run.manifest.get('device_name')!r})" if run else ""))
    base = perfmodel.get_gpu(gpu)
    out = Path(args.out or f"out/{base.id}-calibrated.toml")
    refuse_overwrite({"--out": out}, {"--gpu": gpu, "--archive": args.archive, "--micro": args.micro,
                                      "--latency": args.latency, "--stream": args.stream, "--l2": args.l2})
    data = MicroData()
    sources: list[str] = []
    if run is not None:
        data = data.merged(read_micro_results(run.file("micro.jsonl")))
        sources.append(f"{args.archive}:micro.jsonl")
    if args.micro:
        data = data.merged(read_micro_results(args.micro))
        sources.append(args.micro)
    files = {"latency": args.latency, "stream": args.stream, "l2": args.l2}
    if args.published:
        stem = {"a100-40gb": "a100_40", "a100-80gb": "a100_80", "h100-pcie": "h100_pcie"}.get(base.id)
        if stem is None:
            raise perfmodel.InputError(
                f"--published needs a GPU with shipped gpu-benches files (a100-40gb, a100-80gb, h100-pcie), but got {base.id!r}")
        bench = data_dir() / "gpu-benches"
        for key, prefix in (("latency", "latency"), ("stream", "stream"), ("l2", "l2-cache")):
            f = bench / f"{prefix}_{stem}.txt"
            if files[key] is None and f.is_file():
                files[key] = str(f)
    if files["latency"]:
        data = data.merged(MicroData(pointer_chase=tuple(parse_latency(files["latency"]))))
    if files["stream"]:
        data = data.merged(MicroData(stream_read=tuple((b, 2, bw) for b, bw in parse_stream(files["stream"]))))
    if files["l2"]:
        data = data.merged(MicroData(l2_read=tuple(parse_l2(files["l2"]))))
    sources += [f for f in files.values() if f]
    if not sources:
        raise perfmodel.InputError("calibrate needs data: --archive A.tar.gz, --micro FILE, --latency/--stream/--l2 "
                                   "FILES, or --published")
    result = calibrate(base, data)
    result.write_spec(out, source_files=sources)
    payload = {**result.to_dict(points=args.points), "spec_file": str(out), "data": sources}
    if run is not None:
        payload["archive"] = run.summary()
        payload["synthetic"] = run.synthetic

    def text() -> str:
        rows = [[k, f"{result.initial[k]:.4g}", f"{v:.4g}"] for k, v in result.params.items()]
        res = [[k, v["n"], f"{v['mape_before']:.1%}", f"{v['mape_after']:.1%}", f"{v['max_after']:.1%}"]
               for k, v in result.residuals.items()]
        return "\n".join([
            f"Calibrated {base.id} from {', '.join(sources)}"
            + (" (SYNTHETIC data: the fit exercises the path, it calibrates nothing)" if run and run.synthetic else ""),
            format_table(["parameter", "before", "after"], rows), "",
            format_table(["data", "n", "MAPE before", "MAPE after", "max after"], res), "",
            f"spec file: {out} (use it as --gpu {out})",
        ])

    return emit(args, payload, text)


def _require_gpu() -> None:
    from kernels import gpu_available

    ok, why = gpu_available()
    if not ok:
        fail(f"this command runs on a GPU, but CuPy finds none here: {why}; install the extra of the driver's CUDA "
             "major (pip install -e '.[gpu-cuda12]' or '.[gpu-cuda13]'), or replay recorded files with `validate report`")


def run_preflight(args: argparse.Namespace) -> int:
    from kernels import toolchain_problems
    from validation.backends import CupyBackend

    _require_gpu()
    be = CupyBackend(0)
    nvrtc = be.nvrtc_version()
    problems = toolchain_problems(driver_version=be.driver_version(), runtime_version=be.runtime_version(),
                                  nvrtc_version=nvrtc)
    if problems:
        fail("no usable CUDA here: " + "; ".join(problems))
    payload = {"device_name": be.name, "gpu_id": be.gpu_id(), "driver_version": be.driver_version(),
               "cuda_runtime_version": be.runtime_version(), "nvrtc_version": f"{nvrtc[0]}.{nvrtc[1]}",
               "l2_size_bytes": be.l2_size_bytes, "persisting_l2_max_bytes": be.persisting_l2_max_bytes}
    return emit(args, payload, lambda: "\n".join(f"{k}: {v}" for k, v in payload.items()))


def run_micro(args: argparse.Namespace) -> int:
    from validation.micro import run_microbenchmarks

    refuse_overwrite({"--out": args.out}, {"--gpu": args.gpu})
    _require_gpu()
    summary = run_microbenchmarks(args.out, gpu=args.gpu, quick=args.quick, kinds=args.kind)
    return emit(args, summary, lambda: json.dumps(summary, indent=2))


def run_sweep(args: argparse.Namespace) -> int:
    import perfmodel
    from search import study_top_k
    from validation.runners import LiveRunner, kernel_grid, read_kernel_list

    workload = perfmodel.load_workload(args.workload)
    refuse_overwrite({"--out": args.out}, {"--workload": args.workload, **workload_files(workload), "--kernels": args.kernels,
                                           "--study-storage": storage_file(args.study_storage), "--gpu": args.gpu})
    if args.kernels:
        configs = read_kernel_list(args.kernels)
    elif args.grid:
        try:
            grid = json.loads(args.grid)
        except json.JSONDecodeError as exc:
            raise perfmodel.InputError(f"--grid must be a JSON object of lists, but got {args.grid!r} ({exc.msg})") from None
        configs = kernel_grid(grid, sample=args.sample, seed=args.seed)
    elif args.top:
        if not (args.study_storage and args.study_name):
            raise perfmodel.InputError("--top K needs --study-storage and --study-name")
        configs = study_top_k(args.study_storage, args.study_name, args.top)
    else:
        raise perfmodel.InputError("sweep needs --kernels FILE|DIR, --grid JSON, or --top K with a study")
    _require_gpu()
    runner = LiveRunner(gpu=args.gpu, repeats=args.repeats, warmup=args.warmup, warm_cache=args.warm_cache)
    summary = runner.sweep(workload, configs, out=args.out, workload_path=args.workload)
    return emit(args, summary, lambda: json.dumps(summary, indent=2))


def run_all(args: argparse.Namespace) -> int:
    import sys

    from validation.run_all import run_all as run

    _require_gpu()
    summary = run(args.out, gpu=args.gpu, budget_s=args.budget_s, workload=args.workload,
                  log=None if args.json else (lambda line: print(line, flush=True)))

    def text() -> str:
        rows = [[name, p.get("status"), p.get("seconds"), summary["plan_s"].get(name, "")]
                for name, p in summary["phases"].items()]
        return f"GPU run of {summary.get('device')} ({summary.get('gpu')}) in {summary['out']}\n" + format_table(
            ["phase", "status", "seconds", "planned s"], rows)

    emit(args, summary, text)
    for name, err in summary["errors"].items():
        print(f"phase {name} failed: {' '.join(err.split())}", file=sys.stderr)
    return 1 if summary["errors"] else 0
