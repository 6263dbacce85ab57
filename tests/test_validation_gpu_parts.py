"""The GPU side's pure parts (chains, spoiler, grids, reference, replay, timing statistics),
the CUDA sources compiled offline, and — when a GPU is present — the real runs."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import perfmodel
from validation.backends import gpu_available, match_gpu_id
from validation.micro import (
    CHASE_SLOT_BYTES,
    chase_footprints,
    chase_next_slots,
    chase_steps,
    l2_footprints,
    spoiler_shared_mem_bytes,
)
from validation.micro import _sources as sources
from validation.observers import summarize
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
    assert fps[0] == 4096 and fps[-1] <= 64 << 20 and all(f % CHASE_SLOT_BYTES == 0 for f in fps)
    assert all(b > a for a, b in itertools.pairwise(fps))
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
    assert match_gpu_id("NVIDIA H100 PCIe") == "h100-pcie"
    assert match_gpu_id("NVIDIA H200") == "h200"
    assert match_gpu_id("NVIDIA A100-SXM4-80GB") == "a100-80gb"
    assert match_gpu_id("NVIDIA A100-SXM4-40GB") == "a100-40gb"
    assert match_gpu_id("NVIDIA A100-PCIE", memory_bytes=80 * 1024**3) == "a100-80gb"
    assert match_gpu_id("NVIDIA GeForce RTX 4090") is None


def test_timing_summary() -> None:
    t = summarize([3.0, 1.0, 2.0, 100.0])
    assert t.median_s == 2.5 and t.min_s == 1.0 and t.max_s == 100.0
    with pytest.raises(perfmodel.InputError):
        summarize([])


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


@pytest.mark.parametrize("name", ["CHASE", "STREAM_READ", "L2_READ"])
def test_microbenchmark_sources_compile_for_sm80_and_sm90(name: str, tmp_path: Path) -> None:
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc not found: cannot compile the CUDA sources offline")
    src = tmp_path / f"{name}.cu"
    src.write_text(getattr(sources, name))
    for arch in ("sm_80", "sm_90"):
        out = subprocess.run([nvcc, f"-arch={arch}", "-cubin", "-o", str(tmp_path / f"{name}.{arch}.cubin"), str(src)],
                             capture_output=True, text=True, check=False)
        assert out.returncode == 0, f"{name} for {arch}: {out.stderr}"


@needs_gpu
@pytest.mark.gpu
def test_micro_quick_run_on_the_gpu(tmp_path: Path) -> None:
    from validation import read_micro_results
    from validation.micro import run_microbenchmarks

    out = tmp_path / "micro.jsonl"
    summary = run_microbenchmarks(out, quick=True, kinds=["pointer-chase", "stream-read"], budget_s=60)
    data = read_micro_results(out)
    assert summary["points"]["pointer-chase"] == len(data.pointer_chase) > 5
    small = [c for f, c in data.pointer_chase if f <= 16 << 10]
    big = [c for f, c in data.pointer_chase if f >= 200 << 20]
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

    summary = run_all(tmp_path / "run", budget_s=60, backend=_NoGpuBackend())
    assert summary["gpu"] == "h100-sxm" and summary["uuid"] == "GPU-test"
    assert {"micro", "calibrate", "sweep"} <= set(summary["errors"]), summary["errors"]
    written = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert written["errors"] == summary["errors"]
    assert json.loads((tmp_path / "run" / "env.json").read_text())["device_uuid"] == "GPU-test"
    w = perfmodel.load_workload(tmp_path / "run" / "workload.toml")
    assert w.batch_size == 2048 and w.tables[0].rows == 500000 and w.tables[0].pooling == 150
