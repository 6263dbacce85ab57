"""The GPU side's pure parts (chains, spoiler, grids, reference, replay, timing statistics),
the CUDA sources compiled offline, and — when a GPU is present — the real runs."""

from __future__ import annotations

import itertools
import json
import shutil
import statistics
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import perfmodel
from validation.backends import (
    INSTRUMENT_SOURCE,
    device_clocks_khz,
    gpu_available,
    match_gpu_id,
    nvml_snapshot,
)
from validation.micro import (
    CHASE_SLOT_BYTES,
    QUICK_CHASE_MAX_STEPS,
    chase_footprints,
    chase_max_bytes,
    chase_next_slots,
    chase_order,
    chase_steps,
    l2_footprints,
    spoiler_shared_mem_bytes,
)
from validation.micro import _sources as sources
from validation.observers import summarize, time_with_events, warmup_settled
from validation.runners import ReplayRunner, kernel_grid, read_kernel_list, reference_embedding_bag
from validation.runners._live import workload_mapping

needs_gpu = pytest.mark.skipif(not gpu_available(), reason="no usable CUDA GPU through CuPy on this machine")


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 5000), st.integers(0, 10))
def test_chase_chain_is_one_cycle_through_every_slot(n: int, seed: int) -> None:
    nxt = chase_next_slots(n, seed)
    seen, i = set(), 0
    for _ in range(n):
        seen.add(i)
        i = int(nxt[i])
    assert i == 0 and len(seen) == n, f"n={n} seed={seed}"


def test_chase_plan() -> None:
    fps = chase_footprints(64 << 20)
    assert fps[0] == 4096 and fps[-1] == 64 << 20 and all(f % CHASE_SLOT_BYTES == 0 for f in fps)
    assert all(b > a for a, b in itertools.pairwise(fps))
    # quick mode (factor 1.6) reaches the DRAM end of the curve on every GPU, L2 up to 64 MiB
    for l2 in [perfmodel.get_gpu(g).l2_size_bytes for g in perfmodel.gpu_ids()] + [64 << 20]:
        quick = chase_order(chase_footprints(chase_max_bytes(l2), factor=1.6))
        assert quick[1] == max(quick) >= 4 * l2 and quick[0] == min(quick) <= 16 << 10, (l2, quick[:3])
        assert sorted(quick) == chase_footprints(chase_max_bytes(l2), factor=1.6)
    assert chase_steps(1 << 22, max_steps=QUICK_CHASE_MAX_STEPS) == QUICK_CHASE_MAX_STEPS
    assert chase_steps(10) == 1 << 16 and chase_steps(10**9) == 1 << 20 and chase_steps(40_000) % 16 == 0
    with pytest.raises(perfmodel.InputError, match="factor > 1"):
        chase_footprints(1 << 20, factor=1.0)
    l2 = l2_footprints(50 << 20)
    assert l2[0] >= 3 * (512 << 10) and l2[-1] > 50 << 20 and all(f % (512 << 10) == 0 for f in l2)


@pytest.mark.parametrize("gpu_id", perfmodel.gpu_ids())
@pytest.mark.parametrize("blocks", [1, 2, 4])
def test_spoiler_leaves_room_for_exactly_k_blocks(gpu_id: str, blocks: int) -> None:
    gpu = perfmodel.get_gpu(gpu_id)
    smem = spoiler_shared_mem_bytes(gpu, blocks)
    for b in (32, 128, 256, 512):
        if b * blocks > gpu.max_threads_per_sm:
            continue
        occ = perfmodel.occupancy(gpu, block_size=b, registers_per_thread=16, shared_mem_bytes=smem)
        assert occ.active_blocks_per_sm == blocks, (gpu_id, blocks, b, smem, occ)


def test_match_gpu_id_from_device_names() -> None:
    assert match_gpu_id("NVIDIA H100 80GB HBM3") == "h100-sxm"
    assert match_gpu_id("NVIDIA H20") == "h20" and match_gpu_id("NVIDIA H200") == "h200"
    assert match_gpu_id("NVIDIA H100 PCIe") == "h100-pcie"
    assert match_gpu_id("NVIDIA H200") == "h200"
    assert match_gpu_id("NVIDIA A100-SXM4-80GB") == "a100-80gb"
    assert match_gpu_id("NVIDIA A100-SXM4-40GB") == "a100-40gb"
    assert match_gpu_id("NVIDIA A100-PCIE", memory_bytes=80 * 1024**3) == "a100-80gb"
    assert match_gpu_id("NVIDIA GeForce RTX 4090") is None


def test_timing_summary() -> None:
    t = summarize([3.0, 1.0, 2.0, 100.0])
    assert t.median_s == 2.5 and t.min_s == 1.0 and t.max_s == 100.0
    assert t.stdev_s == pytest.approx(statistics.stdev([3.0, 1.0, 2.0, 100.0]))
    with pytest.raises(perfmodel.InputError):
        summarize([])
    assert warmup_settled([1.0, 1.019], 0.02) and not warmup_settled([1.0, 1.03], 0.02)
    assert not warmup_settled([1.0], 0.02) and warmup_settled([5.0, 1.0, 0.99], 0.02)


class _DriftingTimer:
    """Events whose elapsed times fall 10% a call, then hold: clocks ramping up under load."""

    def __init__(self, settle_after: int) -> None:
        self.settle_after, self.calls, self.log = settle_after, 0, []

    def current_stream(self) -> str:
        return "s"

    def event(self) -> list[float]:
        return [0.0]

    def record(self, event: list[float], stream: object) -> None:
        self.log.append("record")
        event[0] = float(self.calls)

    def wait_event(self, event: object) -> None:
        self.log.append("wait")

    def elapsed_s(self, start: list[float], stop: list[float]) -> float:
        return 1e-4 * 0.9 ** min(self.calls - 1, self.settle_after)


def test_warm_up_runs_until_two_medians_agree_within_two_percent() -> None:
    timer = _DriftingTimer(settle_after=23)

    def run(i: int) -> None:
        timer.calls += 1

    t = time_with_events(run, device=timer, repeats=5, warmup=2, warmup_round=5, settle_rel=0.02)
    assert t.warmup_settled and t.warmup_calls == 2 + 5 * 6  # rounds of 5 until the medians hold
    assert t.median_s == pytest.approx(1e-4 * 0.9**23) and t.iqr_over_median == 0.0
    assert all(abs(b - a) > 0.02 * a for a, b in itertools.pairwise(t.warmup_medians_s[:-1]))
    capped = time_with_events(lambda i: None, device=_DriftingTimer(10**6), repeats=3, warmup=0, max_warmup=20)
    assert not capped.warmup_settled or capped.warmup_calls <= 20
    with pytest.raises(perfmodel.InputError, match="settle_rel"):
        time_with_events(run, device=timer, repeats=1, settle_rel=0.0)


def test_device_clocks_from_cuda_12_and_cuda_13_properties() -> None:
    attrs = {"ClockRate": 1980000, "MemoryClockRate": 2619000}
    # CUDA 12's cudaDeviceProp has the clocks; CUDA 13's has neither field: the attributes answer
    assert device_clocks_khz({"clockRate": 1410000, "memoryClockRate": 1593000}, attrs) == {
        "sm_clock_khz_max": 1410000, "memory_clock_khz_max": 1593000}
    assert device_clocks_khz({"name": b"NVIDIA H200"}, attrs) == {
        "sm_clock_khz_max": 1980000, "memory_clock_khz_max": 2619000}
    assert device_clocks_khz({"clockRate": 0}, {}) == {"sm_clock_khz_max": 0, "memory_clock_khz_max": 0}


def test_nvml_snapshot_reads_clocks_power_and_reasons() -> None:
    import types

    class NotSupported(Exception):
        pass

    def temperature(handle: object, sensor: int) -> int:
        raise NotSupported

    nvml = types.SimpleNamespace(
        NVML_CLOCK_SM=1, NVML_CLOCK_MEM=2, NVML_TEMPERATURE_GPU=0,
        nvmlDeviceGetClockInfo=lambda h, c: {1: 1755, 2: 2619}[c],
        nvmlDeviceGetMaxClockInfo=lambda h, c: {1: 1980, 2: 2619}[c],
        nvmlDeviceGetEnforcedPowerLimit=lambda h: 700000, nvmlDeviceGetPowerUsage=lambda h: 412345,
        nvmlDeviceGetTemperature=temperature, nvmlDeviceGetCurrentClocksEventReasons=lambda h: 4)
    snap = nvml_snapshot(nvml, "handle")
    assert snap == {"source": "nvml", "sm_clock_mhz": 1755, "memory_clock_mhz": 2619, "sm_clock_max_mhz": 1980,
                    "memory_clock_max_mhz": 2619, "power_limit_w": 700.0, "power_draw_w": pytest.approx(412.345),
                    "clock_event_reasons": 4}


def test_reference_embedding_bag_against_a_plain_loop() -> None:
    rng = np.random.default_rng(0)
    w = rng.standard_normal((50, 8)).astype(np.float32)
    lengths = np.array([3, 0, 5, 1, 0, 7])
    idx = rng.integers(0, 50, lengths.sum())
    off = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    got = reference_embedding_bag(w, idx, off)
    for b, (o, n) in enumerate(zip(off, lengths, strict=True)):
        np.testing.assert_allclose(got[b], w[idx[o:o + n]].astype(np.float64).sum(axis=0), rtol=1e-12, atol=0)
    with pytest.raises(IndexError, match="position 2"):
        reference_embedding_bag(w, np.array([1, 2, 50]), np.array([0]))


def test_kernel_grid_skips_invalid_points_and_samples_reproducibly() -> None:
    grid: dict[str, list[object]] = {"block_size": [128, 256], "register_cap": [0, 16, 40], "variant": ["pytorch", "warp"]}
    configs = kernel_grid(grid)
    assert len(configs) == 2 * 2 * 2  # register_cap 16 is below ptxas's minimum: not a point
    assert kernel_grid(grid, sample=3, seed=1) == kernel_grid(grid, sample=3, seed=1)
    with pytest.raises(perfmodel.InputError, match="unknown keys"):
        kernel_grid({"blocksize": [1]})


def test_read_kernel_list_from_jsonl_and_folder(tmp_path: Path) -> None:
    f = tmp_path / "k.jsonl"
    f.write_text('{"block_size": 128}\n{"kernel": {"variant": "warp"}, "time_s": 1}\n')
    assert [k.block_size for k in read_kernel_list(f)] == [128, 256]
    d = tmp_path / "ks"
    d.mkdir()
    (d / "a.toml").write_text("prefetch_distance = 2\n")
    assert read_kernel_list(d)[0].prefetch_distance == 2


def test_replay_answers_recorded_configurations(tmp_path: Path) -> None:
    w = perfmodel.Workload(batch_size=64, tables=(perfmodel.Table(rows=1000, dim=16, pooling=4),))
    f = tmp_path / "m.jsonl"
    recs = [{"gpu": "h100-sxm", "workload": workload_mapping(w), "kernel": {"block_size": 128}, "time_s": t,
             "note": "synthetic replay file"} for t in (1e-4, 3e-4, 2e-4)]
    recs.append({**recs[0], "kernel": {"block_size": 256}, "time_s": 5e-4, "warm_cache": True})
    f.write_text("".join(json.dumps(r) + "\n" for r in recs))
    rp = ReplayRunner(f)
    assert rp.time_s(w, perfmodel.KernelConfig(block_size=128), "h100-sxm") == pytest.approx(2e-4)
    assert rp.time_s(w, perfmodel.KernelConfig(block_size=256), "h100-sxm") is None  # warm-cache only
    assert rp.time_s(w, perfmodel.KernelConfig(block_size=128), "a100-80gb") is None
    assert rp.kernels(w, "h100-sxm") == [perfmodel.KernelConfig(block_size=128)]


@pytest.mark.parametrize("name", ["CHASE", "STREAM_READ", "L2_READ", "INSTRUMENTS"])
def test_microbenchmark_sources_compile_for_sm80_and_sm90(name: str, tmp_path: Path) -> None:
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc not found: cannot compile the CUDA sources offline")
    src = tmp_path / f"{name}.cu"
    src.write_text(INSTRUMENT_SOURCE if name == "INSTRUMENTS" else getattr(sources, name))
    for arch in ("sm_80", "sm_90"):
        out = subprocess.run([nvcc, f"-arch={arch}", "-cubin", "-o", str(tmp_path / f"{name}.{arch}.cubin"), str(src)],
                             capture_output=True, text=True, check=False)
        assert out.returncode == 0, f"{name} for {arch}: {out.stderr}"


@needs_gpu
@pytest.mark.gpu
def test_micro_quick_run_on_the_gpu(tmp_path: Path) -> None:
    from validation import read_micro_results
    from validation.backends import CupyBackend
    from validation.micro import run_microbenchmarks

    out = tmp_path / "micro.jsonl"
    be = CupyBackend(0)
    summary = run_microbenchmarks(out, quick=True, kinds=["pointer-chase", "stream-read"], budget_s=60, backend=be)
    data = read_micro_results(out)
    assert summary["points"]["pointer-chase"] == len(data.pointer_chase) > 5
    small = [c for f, c in data.pointer_chase if f <= 16 << 10]
    big = [c for f, c in data.pointer_chase if f >= 4 * be.l2_size_bytes]  # run second (chase_order)
    assert small and big and max(small) < min(big), (small, big)  # L1 hits beat DRAM
    bw = [b for _, _, b in data.stream_read]
    assert bw[-1] > bw[0]  # more occupancy, more bandwidth


def test_persisting_effect_pairs_with_and_without_window(tmp_path: Path) -> None:
    from validation._calibrate import persisting_l2_effect

    f = tmp_path / "micro.jsonl"
    rows = [{"benchmark": "env", "env": {}},
            {"benchmark": "persisting-l2", "hot_bytes": 1 << 20, "window": False, "bandwidth_bytes_per_s": 2e12},
            {"benchmark": "persisting-l2", "hot_bytes": 1 << 20, "window": True, "bandwidth_bytes_per_s": 5e12},
            {"benchmark": "persisting-l2", "skipped": "MIG"}]
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (row,) = persisting_l2_effect(f)
    assert row["speedup"] == pytest.approx(2.5) and row["hot_bytes"] == 1 << 20


class _NoGpuBackend:
    """A backend with an environment but no device: every GPU phase fails, and says why."""

    name = "NVIDIA H100 80GB HBM3"

    def environment(self) -> dict[str, object]:
        return {"device_name": self.name, "device_uuid": "GPU-test"}

    def gpu_id(self) -> str:
        return "h100-sxm"


def test_run_all_records_each_failing_phase_and_keeps_going(tmp_path: Path) -> None:
    from validation.run_all import run_all

    summary = run_all(tmp_path / "run", budget_s=100, backend=_NoGpuBackend(),
                      grid={"block_size": [128], "register_cap": [0], "prefetch_distance": [0], "bounds_check": ["inline"]})
    assert summary["gpu"] == "h100-sxm" and summary["uuid"] == "GPU-test"
    assert set(summary["errors"]) == {"smoke", "micro", "calibrate", "sweep", "report"}, summary["errors"]
    from validation.run_all import variants

    failed = 1 + len(variants()) * 3  # PyTorch's kernel, then each variant x 3 pinnings
    assert f"measured 0 configurations, {failed} failed" in summary["errors"]["sweep"]
    written = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert written["errors"] == summary["errors"] and written["plan_s"]["smoke"] <= 60
    assert json.loads((tmp_path / "run" / "env.json").read_text())["device_uuid"] == "GPU-test"
    w = perfmodel.load_workload(tmp_path / "run" / "workload.toml")  # staged with its trace, to replay anywhere
    assert w.batch_size == 2048 and w.tables[0].rows == 500000 and w.tables[0].pooling == 150
    assert w.tables[0].indices.path == str((tmp_path / "run" / "traces" / "reuse_low_500K.txt").resolve())
    with pytest.raises(perfmodel.InputError, match="budget-s >= 80"):
        run_all(tmp_path / "run2", budget_s=60, backend=_NoGpuBackend())


def test_run_all_end_to_end_on_the_recording_device_then_replayed_from_its_archive(tmp_path: Path) -> None:
    """Every phase but the microbenchmarks (the stand-in has no clock to chase) runs on the CPU
    stand-in; the run is packed as gpu_validate.sh packs it and reported from the archive. The
    times are the stand-in's, not measurements: only the path is checked."""
    import datetime as dt

    from kernels import cpu_compiler
    from validation import accuracy_report
    from validation._lease import pack_run
    from validation.run_all import _smoke_configs, run_all, variants

    if cpu_compiler() is None:
        pytest.skip("the recording device runs the CUDA sources on the CPU: needs g++")
    from _recording_device import RecordingDevice, timed_regions

    wl = tmp_path / "w.toml"
    wl.write_text('batch_size = 32\n[[tables]]\nrows = 2000\ndim = 32\npooling = 4\n'
                  '[tables.indices]\nkind = "zipf"\nalpha = 1.1\n')
    dev = RecordingDevice()
    run = tmp_path / "run"
    lines: list[str] = []
    summary = run_all(run, budget_s=400, workload=str(wl), backend=dev, log=lines.append,
                      grid={"block_size": [256], "register_cap": [0], "prefetch_distance": [0, 2],
                            "bounds_check": ["separate"]})
    assert set(summary["errors"]) == {"micro", "calibrate"}, summary["errors"]
    assert summary["phases"]["smoke"]["status"] == "ok" and summary["phases"]["report"]["status"] == "ok"
    smoke = json.loads((run / "smoke.json").read_text())
    # toolchain, each variant's configurations verified, one timed, one access-policy window
    verified = sum(len(_smoke_configs(v)) for v in variants())
    assert [c["ok"] for c in smoke["checks"]] == [True] * (1 + verified + 1 + 1) and verified >= 2 * 2
    # PyTorch's kernel, then each variant x 3 pinnings x 2 prefetch distances (the replicas that fix
    # their own prefetch: 1)
    measured = 1 + sum(3 * (1 if v in perfmodel.FIXED_PREFETCH_VARIANTS else 2) for v in variants())
    assert summary["phases"]["sweep"]["result"]["measured"] == measured
    assert any("sweep: ok" in line for line in lines) and timed_regions(dev.log)
    archive = pack_run(run, tmp_path, gpu=summary["gpu"], when=dt.datetime(2026, 3, 4, tzinfo=dt.timezone.utc))
    rep = accuracy_report(archive)
    not_modelled = sum(3 for v in variants() if v not in perfmodel.MODELLED_VARIANTS)
    assert rep.not_modelled == not_modelled and rep.metrics.n == measured - not_modelled and rep.archive is not None and rep.archive["gpu"] == "h100-sxm"
    assert all(r.raw["env"]["device_uuid"] == "GPU-recording-stand-in" for r in rep.records)


def test_sweep_order_reaches_every_variant_and_pin_method_early() -> None:
    from validation.run_all import PIN_OPTIONS, interleave, sweep_configs, variants

    configs = sweep_configs(seed=3)
    assert configs[0] == perfmodel.KernelConfig() and len(set(configs)) == len(configs)
    strata = {(k.variant, k.pin_method if k.pinned_row_fraction else "none") for k in configs}
    assert len(strata) == len(variants()) * len(PIN_OPTIONS)
    head = configs[1:1 + len(strata)]
    assert {(k.variant, k.pin_method if k.pinned_row_fraction else "none") for k in head} == strata
    assert sweep_configs(seed=3) == configs and sweep_configs(seed=4) != configs
    assert {k.pin_method for k in configs if k.pinned_row_fraction} == {"evict-last-prefetch", "access-policy-window"}
    a, b = perfmodel.KernelConfig(block_size=128), perfmodel.KernelConfig(variant="warp")
    assert interleave([a, perfmodel.KernelConfig(block_size=512), b]) == [a, b, perfmodel.KernelConfig(block_size=512)]


# ---- the CuPy glue on a stand-in CuPy (tests/_fake_cupy.py): what the first GPU run goes through ----


@pytest.fixture
def fake_cupy(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    pytest.importorskip("cuda.bindings.runtime", reason="the stand-in keeps cuda-bindings' own types (compile extra)")
    from kernels import cpu_compiler

    if cpu_compiler() is None:
        pytest.skip("the stand-in runs the CUDA sources on the CPU: needs g++")
    from _fake_cupy import install

    return install(monkeypatch)


def test_backend_environment_on_a_cuda_13_device(fake_cupy: dict[str, list[Any]]) -> None:
    from validation.backends import CupyBackend

    be = CupyBackend(0)
    env = be.environment()
    assert env["device_name"] == "NVIDIA H200" and env["gpu_id"] == "h200" and env["compute_capability"] == "9.0"
    assert env["device_uuid"] == "GPU-00010203-0405-0607-0809-0a0b0c0d0e0f"
    # CUDA 13's properties have no clockRate/memoryClockRate: the attributes answer
    assert (env["sm_clock_khz_max"], env["memory_clock_khz_max"]) == (1980000, 2619000)
    assert (env["driver_version"], env["cuda_runtime_version"], env["nvrtc_version"]) == (13000, 13000, "13.0")
    assert env["l2_size_bytes"] == 60 << 20 and env["persisting_l2_max_bytes"] == 45 << 20
    assert "numpy" in env["software"] and env["recperf_source"]["kernel_source_hash"]
    assert env["clocks"]["source"] in {"nvml", "unavailable"}
    json.dumps(env)  # every record carries it
    be.flush_l2()
    be.hold(be.current_stream(), 1e-4)
    assert fake_cupy["launches"] == ["recperf_flush_read", "recperf_hold"]
    assert be._flush_buf.nbytes == 2 * (60 << 20)  # a read of twice the L2
    assert be.max_active_blocks(be.compile_kernel(sources.STREAM_READ, "stream_read"), 256, 0) == 2


def test_embedding_bag_gpu_through_the_cupy_glue(fake_cupy: dict[str, list[Any]]) -> None:
    import kernels

    rng = np.random.default_rng(4)
    w = rng.standard_normal((300, 40)).astype(np.float32)
    idx = rng.integers(0, 300, 500)
    off = np.arange(0, 500, 25)
    for k in (perfmodel.KernelConfig(), perfmodel.KernelConfig(variant="warp", bounds_check="separate"),
              perfmodel.KernelConfig(pinned_row_fraction=0.2, pin_method="evict-last-prefetch"),
              perfmodel.KernelConfig(variant="warp", pinned_row_fraction=0.2, pin_method="access-policy-window")):
        got = kernels.embedding_bag_gpu(k, w, idx, off)
        np.testing.assert_allclose(got, kernels.embedding_bag_cpu(k, w, idx, off), rtol=1e-6, atol=1e-6)
    calls = [name for name, _ in fake_cupy["runtime"]]
    # the window: limit read, set-aside, window set, then window cleared, lines reset, limit restored
    assert calls == ["cudaDeviceGetLimit", "cudaDeviceSetLimit", "cudaStreamSetAttribute", "cudaStreamSetAttribute",
                     "cudaCtxResetPersistingL2Cache", "cudaDeviceSetLimit"]
    window = fake_cupy["runtime"][2][1][2].accessPolicyWindow
    assert window.num_bytes == 60 * 40 * 4 and window.hitRatio == 1.0
    with pytest.raises(IndexError, match="position 3"):
        kernels.embedding_bag_gpu(perfmodel.KernelConfig(bounds_check="separate"), w, np.array([1, 2, 3, 300]),
                                  np.array([0]))


def test_live_runner_and_micro_through_the_cupy_glue(fake_cupy: dict[str, list[Any]], tmp_path: Path) -> None:
    from validation.backends import CupyBackend
    from validation.micro._bench import run_l2_read, run_persisting_l2, run_pointer_chase, run_stream_read
    from validation.runners import LiveRunner

    be = CupyBackend(0)
    w = perfmodel.Workload(batch_size=16, tables=(perfmodel.Table(rows=400, dim=32, pooling=3, count=2),))
    runner = LiveRunner(repeats=3, warmup=1, backend=be, hold_s=0.0)
    for k in (perfmodel.KernelConfig(bounds_check="separate", pinned_row_fraction=0.1, pin_method="evict-last-prefetch"),
              perfmodel.KernelConfig(variant="warp", pinned_row_fraction=0.1, pin_method="access-policy-window")):
        fields = runner.measure(w, k)
        assert fields["verified"] is True and fields["time_s"] > 0, fields
        assert fields["table_timings"][0]["warmup_calls"] >= 1
    records: list[dict[str, Any]] = []
    spec = perfmodel.get_gpu("h200")
    run_pointer_chase(be, [4096, 65536], gpu_id="h200", emit=records.append, max_steps=1 << 16)
    run_stream_read(be, spec, [64, 128], gpu_id="h200", emit=records.append, buffer_bytes=1 << 20, repeats=2)
    run_l2_read(be, [1 << 20, 3 << 20], gpu_id="h200", emit=records.append, repeats=2, bytes_per_run=4 << 20)
    run_persisting_l2(be, gpu_id="h200", emit=records.append, repeats=2)
    kinds = [r["benchmark"] for r in records]
    assert kinds.count("pointer-chase") == 2 and kinds.count("stream-read") == 2 and kinds.count("l2-read") == 2
    assert kinds.count("persisting-l2") == 10  # 5 hot sizes, with and without the window
    assert all(r["driver_blocks_per_sm"] == 2 for r in records if r["benchmark"] == "stream-read")


def test_calibration_drops_points_a_failed_run_recorded_as_zero() -> None:
    from validation import MicroData, calibrate

    gpu = perfmodel.get_gpu("h100-sxm")
    good = tuple((b, 2, 2e12 * (1 - np.exp(-b / 200))) for b in range(64, 1025, 128))
    res = calibrate(gpu, MicroData(stream_read=(*good, (96, 2, 0.0), (160, 2, float("nan")))))
    assert res.residuals["stream-read"]["n"] == len(good) and res.residuals["stream-read"]["dropped"] == 2
    assert np.isfinite(res.params["dram_bandwidth_bytes_per_s"])
    with pytest.raises(perfmodel.InputError, match="finite and > 0"):
        calibrate(gpu, MicroData(pointer_chase=((4096, 0.0), (8192, 0.0))))
