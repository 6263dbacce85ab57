"""The live runner's logic with no GPU: the real CUDA source runs on the CPU
(``kernels.embedding_bag_cpu``) in place of the GPU launch, NumPy stands in for CuPy, and a
recorded timer stands in for CUDA events. Verify-then-time, records, resume and failures
are the runner's own code paths."""

from __future__ import annotations

import json
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import kernels
import perfmodel
from perfmodel import KernelConfig
from validation import read_measurements
from validation.observers import TimingResult, summarize
from validation.runners import LiveRunner

if kernels.cpu_compiler() is None:
    pytest.skip("kernels.embedding_bag_cpu needs a host C++ compiler (g++ or $CXX)", allow_module_level=True)

WORKLOAD = ('batch_size = 64\n[[tables]]\nrows = 3000\ndim = 32\npooling = 6\ncount = 3\n'
            '[tables.indices]\nkind = "zipf"\nalpha = 1.1\n')


class _NumpyBackend:
    cp = types.SimpleNamespace(asarray=np.asarray, ascontiguousarray=np.ascontiguousarray,
                               asnumpy=np.asarray)
    name = "NVIDIA H100 80GB HBM3"

    def __init__(self) -> None:
        self.flushes = 0

    def environment(self) -> dict[str, Any]:
        return {"device_name": self.name, "device_uuid": "GPU-cpu-stand-in", "note": "test stand-in"}

    def gpu_id(self) -> str:
        return "h100-sxm"

    def flush_l2(self) -> None:
        self.flushes += 1

    def reset_persisting_l2(self) -> None:
        pass


class _CpuKernels:
    """kernels' GPU API, backed by the same CUDA source compiled for the host."""

    frequency_remap = staticmethod(kernels.frequency_remap)

    def __init__(self, wrong_for: int | None = None) -> None:
        self.wrong_for = wrong_for

    def embedding_bag_gpu(self, kernel: KernelConfig, weight: Any, indices: Any, offsets: Any, mode: str = "sum") -> Any:
        out = kernels.embedding_bag_cpu(kernel, weight, indices, offsets, mode=mode)
        if kernel.block_size == self.wrong_for:
            out = out + 1.0  # a broken kernel: must be caught before timing
        return out

    def EmbeddingBagLauncher(self, kernel: KernelConfig, *, dim: int, dtype: str, index_dtype: str) -> Callable[..., Any]:
        def launch(weight: Any, indices: Any, offsets: Any, *, mode: str, hot_rows: Any = None) -> Any:
            return kernels.embedding_bag_cpu(kernel, weight, indices, offsets, mode=mode)

        return launch


def _timer(calls: list[int]) -> Callable[..., TimingResult]:
    def timer(run: Callable[[int], None], *, repeats: int, warmup: int, before_each: Callable[[int], None]) -> TimingResult:
        for i in range(warmup + repeats):
            before_each(i)
            run(i)
        calls.append(repeats)
        return summarize([1e-4 * (1 + 0.01 * i) for i in range(repeats)])

    return timer


def test_verify_then_time_append_and_resume(tmp_path: Path) -> None:
    (tmp_path / "w.toml").write_text(WORKLOAD)
    w = perfmodel.load_workload(tmp_path / "w.toml")
    configs = [KernelConfig(block_size=128), KernelConfig(variant="warp", prefetch_distance=2),
               KernelConfig(block_size=64), KernelConfig(pinned_row_fraction=0.1, pin_method="evict-last-prefetch")]
    calls: list[int] = []
    be = _NumpyBackend()
    runner = LiveRunner(repeats=5, warmup=1, backend=be, kernels_api=_CpuKernels(wrong_for=64), timer=_timer(calls))
    out = tmp_path / "runs" / "m.jsonl"
    s = runner.sweep(w, configs, out=out, workload_path=tmp_path / "w.toml", note="synthetic: CPU stand-in timings")
    assert (s["measured"], s["failed_verification"], s["skipped_done"]) == (3, 1, 0)
    assert calls == [5, 5, 5]  # the wrong kernel was never timed
    assert be.flushes == 3 * 6  # an L2 flush before every warm-up and timed call
    recs = read_measurements(out)
    assert [r.kernel for r in recs] == [configs[0], configs[1], configs[3]]
    median = float(np.median([1e-4 * (1 + 0.01 * i) for i in range(5)]))
    assert recs[0].time_s == pytest.approx(3 * median)  # count = 3 identical tables
    assert recs[0].raw["workload"] == "../w.toml" and recs[0].workload == w
    assert recs[0].raw["verified"] is True and recs[0].raw["env"]["device_uuid"] == "GPU-cpu-stand-in"
    fail = json.loads((tmp_path / "runs" / "m.jsonl.failures.jsonl").read_text())
    assert fail["verified"] is False and "differs from NumPy" in fail["error"]
    # a re-run skips what is done and retries nothing measured
    s2 = runner.sweep(w, configs, out=out, workload_path=tmp_path / "w.toml")
    assert (s2["measured"], s2["skipped_done"], s2["failed_verification"]) == (0, 3, 1)
    assert len(read_measurements(out)) == 3


def test_measure_configs_for_the_search_gpu_fidelity(tmp_path: Path) -> None:
    from validation import measure_configs

    w = perfmodel.Workload(batch_size=32, tables=(perfmodel.Table(rows=500, dim=16, pooling=3),))
    calls: list[int] = []
    runner = LiveRunner(repeats=3, warmup=0, backend=_NumpyBackend(), kernels_api=_CpuKernels(wrong_for=64),
                        timer=_timer(calls))
    out = tmp_path / "m.jsonl"
    times = measure_configs(w, [KernelConfig(block_size=128), KernelConfig(block_size=64)], "h100-sxm", out=out,
                            runner=runner)
    assert times[0] == pytest.approx(1.01e-4) and times[1] == float("inf")
    assert len(read_measurements(out)) == 1
    with pytest.raises(perfmodel.InputError, match="targets 'a100-80gb'"):
        measure_configs(w, [KernelConfig()], "a100-80gb", out=None, runner=runner)
