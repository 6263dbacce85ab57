"""One command on a GPU: smoke test, microbenchmarks, calibration, a verified-then-timed sweep,
accuracy reports, all within a budget (``recperf validate run-all``, which
``scripts/gpu_validate.sh`` runs and packs into one archive).

Phases, in order, each with its share of the budget (:func:`validation._lease.plan_phases`;
time a phase leaves unused passes to the next):

1. ``smoke`` (at most 60 s): the device query, every kernel variant compiled and verified
   once on a small table, one configuration timed, one access-policy window set and reset;
2. ``micro``: the microbenchmarks (quick mode when their share is short);
3. ``calibrate``: the spec fitted to them;
4. ``sweep``: PyTorch's kernel as shipped, then a seeded shuffle of the grid, interleaved
   over (variant, pinning) so every variant and both pin methods are measured early;
5. ``report`` and ``report-calibrated``: the accuracy reports.

The run folder holds ``env.json``, ``smoke.json``, ``micro.jsonl``, ``<gpu>-calibrated.toml``,
``calibration.json``, ``workload.toml`` with the trace it names under ``traces/``,
``measurements.jsonl`` (and ``.failures.jsonl``), ``report{,-calibrated}.{json,md,png}`` and
``summary.json`` (what ran, how long, each failed phase's error). Phases are independent: one
failing is recorded and the rest still run. Re-running into the same folder resumes the sweep.
"""

from __future__ import annotations

import contextlib
import json
import random
import shutil
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import perfmodel
from perfmodel import KernelConfig

__all__ = ["DEFAULT_GRID", "PIN_OPTIONS", "default_workload_toml", "interleave", "run_all", "run_smoke",
           "sweep_configs", "variants"]

#: the sweep's design space around PyTorch's kernel: the seed paper's knobs (FACTS.md section 1)
DEFAULT_GRID: dict[str, list[Any]] = {
    "block_size": [128, 256, 512],
    "register_cap": [0, 32, 42],
    "prefetch_distance": [0, 2, 4],
    "bounds_check": ["inline", "separate"],
}
#: pinning options of the sweep: none, and the seed paper's 12% of the rows by both methods
PIN_OPTIONS: tuple[dict[str, Any], ...] = (
    {"pinned_row_fraction": 0.0},
    {"pinned_row_fraction": 0.12, "pin_method": "evict-last-prefetch"},
    {"pinned_row_fraction": 0.12, "pin_method": "access-policy-window"},
)
#: the smoke phase's table: small enough to verify in well under a second
SMOKE_WORKLOAD = {"batch_size": 512, "tables": [{"rows": 100000, "dim": 128, "dtype": "float32", "pooling": 20,
                                                 "indices": {"kind": "zipf", "alpha": 1.05}}]}
TRACE = "reuse_low_500K.txt"


def variants() -> list[str]:
    """Kernel variants the model knows and the GPU launcher can run (new ones join by themselves)."""
    from kernels import launchable_variants
    from perfmodel import VARIANTS

    launchable = launchable_variants()
    return [v for v in VARIANTS if v in launchable]


def interleave(configs: Sequence[KernelConfig]) -> list[KernelConfig]:
    """Round-robin over the (variant, pin method or none) strata, in each stratum's order."""
    strata: dict[tuple[str, str], list[KernelConfig]] = {}
    for k in configs:
        strata.setdefault((k.variant, k.pin_method if k.pinned_row_fraction > 0 else "none"), []).append(k)
    out: list[KernelConfig] = []
    queues = list(strata.values())
    while any(queues):
        for q in queues:
            if q:
                out.append(q.pop(0))
    return out


def sweep_configs(grid: Mapping[str, Sequence[Any]] = DEFAULT_GRID, *, seed: int = 0,
                  variant_names: Sequence[str] | None = None) -> list[KernelConfig]:
    """The sweep's order: PyTorch's kernel as shipped, then every valid grid point of each
    variant and pin option, shuffled (seeded) and interleaved (:func:`interleave`)."""
    from validation.runners import kernel_grid

    configs: list[KernelConfig] = []
    for v in variant_names or variants():
        for pin in PIN_OPTIONS:
            configs += kernel_grid({**{k: list(vals) for k, vals in grid.items()}, "variant": [v],
                                    **{k: [val] for k, val in pin.items()}})
    random.Random(seed).shuffle(configs)
    first = KernelConfig()
    return [first, *(k for k in interleave(configs) if k != first)]


def default_workload_toml(trace_path: str = f"traces/{TRACE}") -> str:
    """The seed paper's harness, one table call: 500,000 x 128 fp32, 2048 bags x 150, reuse_low."""
    return (
        "# The seed paper's harness (FACTS.md section 1), one table: reuse_low trace\n"
        "batch_size = 2048\n[[tables]]\nrows = 500000\ndim = 128\ndtype = \"float32\"\npooling = 150\ncount = 1\n"
        f"[tables.indices]\nkind = \"trace\"\npath = {json.dumps(trace_path)}\n"
    )


def _toml_scalar(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return json.dumps(str(v))


def stage_workload(run_dir: Path, workload: str | None) -> Path:
    """Write the sweep's workload into the run folder, its traces copied under ``traces/``, so
    the run (and its archive) replays anywhere; returns the workload file."""
    from validation.published import data_dir
    from validation.runners._live import workload_mapping

    out = run_dir / "workload.toml"
    traces = run_dir / "traces"
    if workload is None:
        traces.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(data_dir() / "traces" / TRACE, traces / TRACE)
        out.write_text(default_workload_toml(), encoding="utf-8")
        return out
    doc = workload_mapping(perfmodel.load_workload(workload))
    lines = [f"# staged from {workload}", f"batch_size = {doc['batch_size']}"]
    for t in doc["tables"]:
        lines.append("[[tables]]")
        lines += [f"{k} = {_toml_scalar(v)}" for k, v in t.items() if k != "indices"]
        idx = dict(t["indices"])
        if idx.get("path"):
            src = Path(idx["path"])
            traces.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, traces / src.name)
            idx["path"] = f"traces/{src.name}"
        lines.append("[tables.indices]")
        lines += [f"{k} = {_toml_scalar(v)}" for k, v in idx.items()]
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def _write_json(path: Path, payload: Any) -> None:
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")


def _smoke_configs(variant: str) -> list[KernelConfig]:
    """A variant as shipped, and with a register cap, the separate check and a prefetch ring
    where the variant takes them."""
    out = [KernelConfig(variant=variant)]
    with contextlib.suppress(perfmodel.InputError):  # a variant without these knobs: as shipped only
        out.append(KernelConfig(variant=variant, register_cap=42, bounds_check="separate", prefetch_distance=2))
    return out


def run_smoke(backend: Any, *, out: Path, deadline: float, gpu: str) -> dict[str, Any]:
    """The smoke phase: toolchain, every variant compiled and verified once, one timed
    configuration, one access-policy window set and reset. Raises on the first failure."""
    from kernels import toolchain_problems
    from validation.runners import LiveRunner

    result: dict[str, Any] = {"checks": []}

    def check(name: str, ok: bool, detail: Any) -> None:
        result["checks"].append({"check": name, "ok": ok, "detail": detail})
        _write_json(out, result)
        if not ok:
            raise RuntimeError(f"{name}: {detail}")

    problems = toolchain_problems(driver_version=backend.driver_version(), runtime_version=backend.runtime_version(),
                                  nvrtc_version=backend.nvrtc_version())
    check("toolchain", not problems, problems or f"NVRTC {backend.nvrtc_version()}, driver {backend.driver_version()}")
    w = perfmodel.workload_from_mapping(SMOKE_WORKLOAD, out.parent, "smoke workload")
    runner = LiveRunner(gpu=gpu, repeats=5, warmup=1, max_warmup=20, backend=backend)
    for v in variants():
        for k in _smoke_configs(v):
            if time.monotonic() > deadline:
                raise TimeoutError("the smoke phase ran out of its time before every variant was verified")
            ok, err, msg = runner.verify(w, k)
            check(f"verify {k.to_dict()}", ok, f"max |error| {err:.3g}; {msg}")
    timed = runner.measure(w, KernelConfig())
    check("time PyTorch's kernel", bool(timed.get("verified")),
          {k: timed.get(k) for k in ("time_s", "error", "stage", "clocks")})
    limit_before = backend.persisting_l2_limit()
    apw = KernelConfig(variant="warp", pinned_row_fraction=0.12, pin_method="access-policy-window")
    pinned = runner.measure(w, apw)
    limit_after = backend.persisting_l2_limit()
    check("access-policy window set and reset", bool(pinned.get("verified")) and limit_after == limit_before,
          {"time_s": pinned.get("time_s"), "error": pinned.get("error"), "persisting_limit_before": limit_before,
           "persisting_limit_after": limit_after})
    return {"checks": len(result["checks"]), "time_s": timed.get("time_s"), "apw_time_s": pinned.get("time_s")}


def run_all(out_dir: str | Path, *, gpu: str | None = None, budget_s: float = 420.0,
            workload: str | None = None, backend: Any = None, seed: int = 0,
            grid: Mapping[str, Sequence[Any]] = DEFAULT_GRID,
            log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run every phase into ``out_dir`` within ``budget_s`` seconds; returns the summary
    (``errors`` names each failed phase). ``grid``: the sweep's knobs besides variant and
    pinning. ``log`` receives one line as each phase starts and ends."""
    from validation._calibrate import calibrate, persisting_l2_effect, read_micro_results
    from validation._lease import LeaseError, plan_phases
    from validation._report import accuracy_report, render_markdown, render_scatter
    from validation.backends import CupyBackend
    from validation.micro import run_microbenchmarks
    from validation.runners import LiveRunner

    t0 = time.monotonic()
    try:
        plan = plan_phases(budget_s)
    except LeaseError as exc:
        raise perfmodel.InputError(str(exc)) from None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {"out": str(out), "budget_s": budget_s, "plan_s": plan, "phases": {}, "errors": {}}
    ends: dict[str, float] = {}
    acc = t0
    for name in ("smoke", "micro", "sweep"):
        acc += plan[name]
        ends[name] = acc

    def say(message: str) -> None:
        if log is not None:
            log(f"[{time.monotonic() - t0:6.1f} s] {message}")

    def phase(name: str, fn: Callable[[], Any]) -> Any:
        start = time.monotonic()
        say(f"{name}: start" + (f" (planned {plan[name]:g} s)" if name in plan else ""))
        try:
            result = fn()
            summary["phases"][name] = {"status": "ok", "seconds": round(time.monotonic() - start, 1), "result": result}
            say(f"{name}: ok in {time.monotonic() - start:.1f} s")
            return result
        except Exception as exc:  # one phase failing must not lose the others
            summary["errors"][name] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            summary["phases"][name] = {"status": "failed", "seconds": round(time.monotonic() - start, 1),
                                       "traceback": traceback.format_exc(limit=8)}
            say(f"{name}: FAILED after {time.monotonic() - start:.1f} s: {summary['errors'][name][:200]}")
            return None
        finally:
            _write_json(out / "summary.json", summary)

    be = backend if backend is not None else CupyBackend(0)
    env = be.environment()
    _write_json(out / "env.json", env)
    gpu_id = gpu or be.gpu_id()
    if gpu_id is None:
        raise perfmodel.InputError(f"cannot tell which recperf GPU {be.name!r} is; pass --gpu "
                                   f"(one of {', '.join(perfmodel.gpu_ids())})")
    spec = perfmodel.get_gpu(gpu_id)
    summary.update(gpu=spec.id, device=env.get("device_name"), uuid=env.get("device_uuid"))

    phase("smoke", lambda: run_smoke(be, out=out / "smoke.json", deadline=ends["smoke"], gpu=spec.id))

    micro_file = out / "micro.jsonl"
    micro_s = max(0.0, ends["micro"] - time.monotonic())
    phase("micro", lambda: run_microbenchmarks(micro_file, gpu=spec.id, quick=micro_s < 150, budget_s=micro_s,
                                               backend=be))

    cal_file = out / f"{spec.id}-calibrated.toml"

    def do_calibrate() -> dict[str, Any]:
        result = calibrate(spec, read_micro_results(micro_file))
        result.write_spec(cal_file, source_files=[micro_file.name])
        payload = {**result.to_dict(points=True), "spec_file": cal_file.name,
                   "persisting_l2": persisting_l2_effect(micro_file)}
        _write_json(out / "calibration.json", payload)
        return {k: payload[k] for k in ("params", "success", "spec_file")}

    calibrated = phase("calibrate", do_calibrate)

    meas_file = out / "measurements.jsonl"

    def do_sweep() -> dict[str, Any]:
        wl_path = stage_workload(out, workload)
        w = perfmodel.load_workload(wl_path)
        runner = LiveRunner(gpu=spec.id, repeats=10, warmup=2, backend=be, seed=seed)
        result: dict[str, Any] = runner.sweep(w, sweep_configs(grid, seed=seed), out=meas_file, workload_path=wl_path,
                                              deadline=ends["sweep"])
        _write_json(out / "sweep.json", result)
        if result["stopped_by_error"] or not result["measured"] + result["skipped_done"]:
            raise RuntimeError(f"measured {result['measured']} configurations, {result['failed']} failed "
                               f"({result['failures_by_stage']}; see {meas_file.name}.failures.jsonl)"
                               + (f"; stopped by {result['stopped_by_error']}" if result["stopped_by_error"] else ""))
        return result

    phase("sweep", do_sweep)

    def do_report(name: str, gpu_spec: Any) -> dict[str, Any]:
        rep = accuracy_report(meas_file, gpu=gpu_spec)
        png = render_scatter(rep, out / f"{name}.png")
        (out / f"{name}.md").write_text(render_markdown(rep, plot=png.name), encoding="utf-8")
        payload = rep.to_dict()
        _write_json(out / f"{name}.json", payload)
        return {k: payload[k] for k in ("n", "mape", "spearman", "kendall", "top1_regret")}

    phase("report", lambda: do_report("report", None))
    if calibrated:
        phase("report-calibrated", lambda: do_report("report-calibrated", str(cal_file)))
    summary["seconds"] = round(time.monotonic() - t0, 1)
    _write_json(out / "summary.json", summary)
    return summary
