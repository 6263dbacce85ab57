"""One command on a GPU: microbenchmarks, calibration, a verified-then-timed sweep, reports.

``recperf validate run-all --out DIR`` (or ``scripts/gpu_validate.sh DIR``) writes, within
the budget (default 540 s, for a 10-minute slot):

- ``env.json``: the device, UUID, driver, CUDA and library versions, clocks;
- ``micro.jsonl``: microbenchmark results (:mod:`validation.micro`);
- ``<gpu>-calibrated.toml`` and ``calibration.json``: the fitted spec and its residuals;
- ``workload.toml`` and ``measurements.jsonl``: the sweep (CONTRACT.md measurement format);
- ``report.{json,md,png}`` (catalogue spec) and ``report-calibrated.{json,md,png}``;
- ``summary.json``: what ran, how long, and any phase that failed (phases are independent).

Re-running into the same folder resumes the sweep (records already there are skipped).
"""

from __future__ import annotations

import json
import random
import time
import traceback
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_GRID", "default_workload_toml", "run_all"]

#: the sweep's design space: the seed paper's knobs (FACTS.md section 1) around PyTorch's kernel
DEFAULT_GRID: dict[str, list[Any]] = {
    "variant": ["pytorch", "warp"],
    "block_size": [128, 256, 512],
    "register_cap": [0, 32, 42],
    "prefetch_distance": [0, 2, 4],
    "bounds_check": ["inline", "separate"],
    "pinned_row_fraction": [0.0, 0.12],
    "pin_method": ["evict-last-prefetch"],
}


def default_workload_toml() -> str:
    """The seed paper's harness, one table call: 500,000 x 128 fp32, 2048 bags x 150, reuse_low."""
    from validation.published import data_dir

    trace = (data_dir() / "traces" / "reuse_low_500K.txt").resolve()
    return (
        "# The seed paper's harness (FACTS.md section 1), one table: reuse_low trace\n"
        "batch_size = 2048\n[[tables]]\nrows = 500000\ndim = 128\ndtype = \"float32\"\npooling = 150\ncount = 1\n"
        f"[tables.indices]\nkind = \"trace\"\npath = {json.dumps(str(trace))}\n"
    )


def _write_json(path: Path, payload: Any) -> None:
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")


def run_all(out_dir: str | Path, *, gpu: str | None = None, budget_s: float = 540.0,
            workload: str | None = None, backend: Any = None) -> dict[str, Any]:
    """Run every phase into ``out_dir`` within ``budget_s`` seconds; returns the summary."""
    import perfmodel
    from validation._calibrate import calibrate, persisting_l2_effect, read_micro_results
    from validation._report import accuracy_report, render_markdown, render_scatter
    from validation.backends import CupyBackend
    from validation.micro import run_microbenchmarks
    from validation.runners import LiveRunner, kernel_grid

    t0 = time.monotonic()
    deadline = t0 + budget_s
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {"out": str(out), "budget_s": budget_s, "phases": {}, "errors": {}}

    def phase(name: str, fn: Any) -> Any:
        start = time.monotonic()
        try:
            result = fn()
            summary["phases"][name] = {"seconds": round(time.monotonic() - start, 1), "result": result}
            return result
        except Exception as exc:  # one phase failing must not lose the others
            summary["errors"][name] = f"{type(exc).__name__}: {exc}"
            summary["phases"][name] = {"seconds": round(time.monotonic() - start, 1),
                                       "traceback": traceback.format_exc(limit=5)}
            return None
        finally:
            _write_json(out / "summary.json", summary)

    be = backend or CupyBackend(0)
    env = be.environment()
    _write_json(out / "env.json", env)
    gpu_id = gpu or be.gpu_id()
    if gpu_id is None:
        raise perfmodel.InputError(f"cannot tell which recperf GPU {be.name!r} is; pass --gpu")
    spec = perfmodel.get_gpu(gpu_id)
    summary.update(gpu=spec.id, device=env.get("device_name"), uuid=env.get("device_uuid"))

    micro_file = out / "micro.jsonl"
    phase("micro", lambda: run_microbenchmarks(micro_file, gpu=spec.id, quick=budget_s < 400,
                                               budget_s=0.4 * budget_s, backend=be))

    cal_file = out / f"{spec.id}-calibrated.toml"

    def do_calibrate() -> dict[str, Any]:
        result = calibrate(spec, read_micro_results(micro_file))
        result.write_spec(cal_file, source_files=[str(micro_file)])
        payload = {**result.to_dict(points=True), "spec_file": str(cal_file),
                   "persisting_l2": persisting_l2_effect(micro_file)}
        _write_json(out / "calibration.json", payload)
        return {k: payload[k] for k in ("params", "success", "spec_file", "persisting_l2")}

    calibrated = phase("calibrate", do_calibrate)

    wl_path = Path(workload) if workload else out / "workload.toml"
    if not workload:
        wl_path.write_text(default_workload_toml(), encoding="utf-8")
    meas_file = out / "measurements.jsonl"

    def do_sweep() -> dict[str, Any]:
        w = perfmodel.load_workload(wl_path)
        configs = kernel_grid(DEFAULT_GRID)
        random.Random(0).shuffle(configs)
        configs.insert(0, perfmodel.KernelConfig())  # PyTorch's kernel as shipped first
        runner = LiveRunner(gpu=spec.id, repeats=10, warmup=2, backend=be)
        return runner.sweep(w, configs, out=meas_file, workload_path=wl_path, deadline=deadline - 45)

    phase("sweep", do_sweep)

    def do_report(name: str, gpu_spec: Any) -> dict[str, Any]:
        rep = accuracy_report(meas_file, gpu=gpu_spec)
        png = render_scatter(rep, out / f"{name}.png")
        (out / f"{name}.md").write_text(render_markdown(rep, plot=png.name), encoding="utf-8")
        payload = rep.to_dict()
        _write_json(out / f"{name}.json", payload)
        return {k: payload[k] for k in ("n", "mape", "spearman", "kendall", "top1_regret")}

    if meas_file.is_file():
        phase("report", lambda: do_report("report", None))
        if calibrated:
            phase("report-calibrated", lambda: do_report("report-calibrated", str(cal_file)))
    summary["seconds"] = round(time.monotonic() - t0, 1)
    _write_json(out / "summary.json", summary)
    return summary
