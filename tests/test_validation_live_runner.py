"""The live runner with no GPU: a recording device (tests/_recording_device.py) stands in for
CuPy. It logs every device call in order and runs the launches with the same CUDA source
compiled for the CPU, after checking each argument against the kernel's parameter list. The
runner, the launcher (kernels._gpu), the timing (validation.observers) and the records are the
real code paths; only the device is a stand-in.

What is proved here: between the two events of every timed call there are kernel launches of
the lookup only; argument checks, allocations and device-to-host copies all fall outside;
verification runs the very launcher and buffers that are timed, before timing; the bounds
check's result is read after the stop event; compile and launch failures are recorded per
configuration and never stop the sweep (except a CUDA error that ruins the context)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import kernels
import perfmodel
from perfmodel import KernelConfig
from validation import read_measurements
from validation.runners import LiveRunner

if kernels.cpu_compiler() is None:
    pytest.skip("the recording device runs the CUDA sources on the CPU: needs a host C++ compiler (g++)",
                allow_module_level=True)

from _recording_device import LOOKUP_KERNELS, RecordingDevice, timed_regions

WORKLOAD = ('batch_size = 48\n[[tables]]\nrows = 3000\ndim = 32\npooling = 6\ncount = 3\n'
            '[tables.indices]\nkind = "zipf"\nalpha = 1.1\n')
CONFIGS = {
    "pytorch-inline": KernelConfig(),
    "warp-separate-window": KernelConfig(variant="warp", bounds_check="separate", pinned_row_fraction=0.1,
                                         pin_method="access-policy-window"),
    "pytorch-evict-last-ring": KernelConfig(bounds_check="separate", pinned_row_fraction=0.1,
                                            pin_method="evict-last-prefetch", prefetch_distance=2, register_cap=42),
    "warp-l2-hint": KernelConfig(variant="warp", prefetch_distance=4, prefetch_kind="l2-hint", bounds_check="none"),
    # the artifact's kernel: its index array one longer, its own pinning pass
    "micro24-evict-last": KernelConfig(variant="micro24-combined", register_cap=42, pinned_row_fraction=0.1,
                                       pin_method="evict-last-prefetch"),
    "micro24-separate-window": KernelConfig(variant="micro24-combined", bounds_check="separate",
                                            pinned_row_fraction=0.1, pin_method="access-policy-window"),
}


def _workload(tmp_path: Path) -> perfmodel.Workload:
    (tmp_path / "w.toml").write_text(WORKLOAD)
    return perfmodel.load_workload(tmp_path / "w.toml")


@pytest.mark.parametrize("warm_cache", [False, True])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_only_kernel_launches_fall_between_the_timing_events(name: str, warm_cache: bool, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import kernels._gpu as gpu

    kernel = CONFIGS[name]
    dev = RecordingDevice()
    real_check = gpu.check_lookup_args

    def logged_check(*args: Any, **kw: Any) -> Any:
        dev.log.append(("check-args", ""))
        return real_check(*args, **kw)

    monkeypatch.setattr(gpu, "check_lookup_args", logged_check)
    runner = LiveRunner(repeats=7, warmup=2, warm_cache=warm_cache, rotations=3, backend=dev)
    fields = runner.measure(_workload(tmp_path), kernel)
    assert fields["verified"] is True, fields
    log = dev.log
    regions = timed_regions(log)
    (timing,) = fields["table_timings"]  # the workload's 3 tables are one distinct table
    assert len(regions) == timing["warmup_calls"] + 7 and timing["warmup_settled"]

    # 1. only the call's kernel launches, the same sequence every time
    calls = {tuple(e) for r in regions for e in r}
    assert all(kind == "launch" and what in LOOKUP_KERNELS for kind, what in calls), calls - {
        e for e in calls if e[0] == "launch" and e[1] in LOOKUP_KERNELS}
    micro24 = kernel.variant == "micro24-combined"
    evict_pass = "recperf_micro24_pin_L2" if micro24 else "recperf_pin_rows_evict_last"
    want = (["recperf_check_indices"] if kernel.bounds_check == "separate" else []) + (
        [evict_pass] if kernel.pin_method == "evict-last-prefetch" and kernel.pinned_row_fraction
        else ["recperf_remap_indices"] if kernel.pinned_row_fraction else []) + [kernels.compile_key(kernel).entry]
    assert all([w for _, w in r] == want for r in regions)

    # 2. argument checks, allocations, uploads, compiles and copies to the host are outside
    first_start = log.index(("record", "start"))
    last_stop = len(log) - 1 - log[::-1].index(("record", "stop"))
    outside = log[:first_start] + log[last_stop:]
    rotations = 1 if warm_cache else 3
    assert sum(e[0] == "check-args" for e in log) == rotations == sum(e[0] == "check-args" for e in outside)
    for kind in ("alloc", "compile", "h2d"):
        assert all(e[0] != kind for r in regions for e in r) and any(e[0] == kind for e in log[:first_start]), kind
    assert not [e for e in log if e[0] == "implicit-d2h"], "a value was pulled off the device without to_host"

    # 3. verification before timing, by the very launcher and buffers that are timed
    verify_copies = [e for e in log[:first_start] if e[0] == "d2h"]
    assert len(verify_copies) >= rotations  # each prepared call's output, compared with NumPy
    lookups = [(n, a) for n, a in dev.launches if n == want[-1]]
    if micro24:  # the pair loads read one index past the last lookup: a zero the launcher appended
        assert all(a[0].shape[0] == int(a[5]) + 1 and a[0].view(np.ndarray)[-1] == 0 for _, a in lookups)
    n_verify = rotations
    verify_out = {id(a[3]) for _, a in lookups[:n_verify]}
    timed_out = {id(a[3]) for _, a in lookups[n_verify:]}
    assert timed_out == verify_out and len(verify_out) == rotations
    assert {id(a[0]) for _, a in lookups[:n_verify]} == {id(a[0]) for _, a in lookups[n_verify:]}

    # 4. before each call, outside the events: the flush (unless warm), the hold, and for
    # evict-last pinning the persisting lines' reset; the index buffers rotate (unless warm)
    starts = [i for i, e in enumerate(log) if e == ("record", "start")]
    stops = [i for i, e in enumerate(log) if e == ("record", "stop")]
    gaps = [log[stop + 1:start] for stop, start in zip(stops, starts[1:], strict=False)]
    gaps.append(log[first_start - 3:first_start])
    evict = kernel.pinned_row_fraction > 0 and kernel.pin_method == "evict-last-prefetch"
    for gap in gaps:
        assert gap[-1] == ("launch", "recperf_hold")
        assert (("launch", "recperf_flush_read") in gap) is (not warm_cache)
        assert (("reset-persisting", "") in gap) is evict or gap is gaps[-1]
    first_args = [id(a[0]) for n, a in lookups[n_verify:]]  # the indices the lookup reads
    assert len(set(first_args)) == rotations and first_args[:rotations] == first_args[rotations:2 * rotations]

    # 5. the window: set once before the first call, cleared after the last
    windows = [e for e in log if e[0] == "window"]
    if kernel.pinned_row_fraction and kernel.pin_method == "access-policy-window":
        assert windows[0][1] != "0" and windows[-1] == ("window", "0")
        assert log.index(windows[-2]) < first_start < last_stop < len(log) - 1 - log[::-1].index(("window", "0"))
    else:
        assert windows == []

    # 6. the bounds check's result is read after the stop event
    if kernel.bounds_check == "separate":
        assert [e for e in log[last_stop:] if e[0] == "d2h"], "no read-back of the validation pass after timing"
    assert fields["time_s"] == pytest.approx(3 * len(want) * dev.seconds_per_launch)
    assert fields["rotations"] == rotations and fields["clocks"]["before"]["source"] == "stand-in"


def test_verify_then_time_append_and_resume(tmp_path: Path) -> None:
    w = _workload(tmp_path)
    dev = RecordingDevice(corrupt={"recperf_embedding_bag_warp"})
    configs = [KernelConfig(block_size=128), KernelConfig(variant="warp", prefetch_distance=2),
               KernelConfig(pinned_row_fraction=0.1, pin_method="evict-last-prefetch")]
    runner = LiveRunner(repeats=5, warmup=1, backend=dev)
    out = tmp_path / "runs" / "m.jsonl"
    s = runner.sweep(w, configs, out=out, workload_path=tmp_path / "w.toml", note="synthetic: CPU stand-in timings")
    assert (s["measured"], s["failed"], s["skipped_done"]) == (2, 1, 0) and s["failures_by_stage"] == {"verify": 1}
    recs = read_measurements(out)
    assert [r.kernel for r in recs] == [configs[0], configs[2]]
    assert recs[0].raw["workload"] == "../w.toml" and recs[0].workload == w
    assert recs[0].raw["verified"] is True and recs[0].raw["env"]["device_uuid"] == "GPU-recording-stand-in"
    fail = json.loads((tmp_path / "runs" / "m.jsonl.failures.jsonl").read_text())
    assert fail["verified"] is False and fail["stage"] == "verify" and "differs from NumPy" in fail["error"]
    # the broken kernel was never timed: as many timed calls as the two good configurations had
    timed = sum(t["warmup_calls"] + 5 for r in recs for t in r.raw["table_timings"])
    assert len(timed_regions(dev.log)) == timed
    s2 = runner.sweep(w, configs, out=out, workload_path=tmp_path / "w.toml")
    assert (s2["measured"], s2["skipped_done"], s2["failed"]) == (0, 2, 1)
    assert len(read_measurements(out)) == 2


def test_compile_errors_and_an_old_nvrtc_are_recorded_per_configuration(tmp_path: Path) -> None:
    w = _workload(tmp_path)
    dev = RecordingDevice(nvrtc=(12, 3), compile_error_on="-DRECPERF_PREFETCH_DISTANCE=4")
    configs = [KernelConfig(register_cap=42), KernelConfig(prefetch_distance=4), KernelConfig(block_size=512)]
    out = tmp_path / "m.jsonl"
    s = LiveRunner(repeats=3, warmup=0, backend=dev).sweep(w, configs, out=out)
    assert (s["measured"], s["failed"]) == (1, 2) and s["failures_by_stage"] == {"compile": 2}
    fails = [json.loads(line) for line in (tmp_path / "m.jsonl.failures.jsonl").read_text().splitlines()]
    assert "needs NVRTC 12.4 or newer" in fails[0]["error"] and "12.3" in fails[0]["error"]
    assert "_CompileException" in fails[1]["error"]  # not a RuntimeError, still recorded
    # the capped configuration was refused before any compilation: the failing one stopped at
    # its lookup module, the good one compiled the lookup and the passes
    assert sum(e[0] == "compile" for e in dev.log) == 1 + 2


def test_a_cuda_error_that_ruins_the_context_stops_the_sweep(tmp_path: Path) -> None:
    dev = RecordingDevice(fail_message="CUDARuntimeError: cudaErrorIllegalAddress: an illegal memory access")
    s = LiveRunner(repeats=3, warmup=0, backend=dev).sweep(
        _workload(tmp_path), [KernelConfig(), KernelConfig(block_size=128)], out=tmp_path / "m.jsonl")
    assert s["failed"] == 1 and s["failures_by_stage"] == {"launch": 1} and "IllegalAddress" in s["stopped_by_error"]
    assert not (tmp_path / "m.jsonl").exists()


def test_measure_configs_for_the_search_gpu_fidelity(tmp_path: Path) -> None:
    from validation import measure_configs

    w = perfmodel.Workload(batch_size=32, tables=(perfmodel.Table(rows=500, dim=16, pooling=3),))
    runner = LiveRunner(repeats=3, warmup=0, backend=RecordingDevice(corrupt={"recperf_embedding_bag_warp"}))
    out = tmp_path / "m.jsonl"
    times = measure_configs(w, [KernelConfig(block_size=128), KernelConfig(variant="warp")], "h100-sxm", out=out,
                            runner=runner)
    assert times[0] == pytest.approx(1e-4) and times[1] == float("inf")
    assert len(read_measurements(out)) == 1
    with pytest.raises(perfmodel.InputError, match="targets 'a100-80gb'"):
        measure_configs(w, [KernelConfig()], "a100-80gb", out=None, runner=runner)
