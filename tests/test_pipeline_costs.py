"""Operator cost models: roofline bounds, monotonicity, cache hit rates, representations."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import perfmodel
from perfmodel import pipeline as pp
from perfmodel.pipeline import CPUCosts, DHEConfig, GPUCosts

A100 = perfmodel.get_gpu("a100-80gb")
dims = st.integers(min_value=1, max_value=4096)


@settings(max_examples=200, deadline=None)
@given(dims, dims, dims)
def test_gpu_gemm_never_beats_the_roofline(m: int, n: int, k: int) -> None:
    c = GPUCosts(A100)
    g = c.gemm(m, n, k)
    assert g.time_s >= 2.0 * m * n * k / c.peak
    assert g.time_s >= 4.0 * (m * k + k * n + m * n) / A100.dram_bandwidth_bytes_per_s
    assert 0 < g.sm_util <= 1 and 0 <= g.dram_util <= 1


@settings(max_examples=200, deadline=None)
@given(dims, dims, dims, st.sampled_from(["m", "n", "k"]))
def test_gpu_gemm_more_work_never_faster(m: int, n: int, k: int, which: str) -> None:
    c = GPUCosts(A100)
    big = {"m": (2 * m, n, k), "n": (m, 2 * n, k), "k": (m, n, 2 * k)}[which]
    assert c.gemm(*big).time_s >= c.gemm(m, n, k).time_s * (1 - 1e-12)


@settings(max_examples=100, deadline=None)
@given(dims, dims, dims, st.sampled_from(pp.cpu_ids()))
def test_cpu_gemm_bounds_and_monotone(m: int, n: int, k: int, cpu: str) -> None:
    spec = pp.get_cpu(cpu)
    c = CPUCosts(spec)
    t = c.gemm(m, n, k).time_s
    assert t >= 2.0 * m * n * k / spec.peak_flops_per_s
    assert c.gemm(2 * m, n, k).time_s >= t * (1 - 1e-12)


def test_large_gemm_efficiency_and_small_batch_underfill() -> None:
    c = GPUCosts(A100)
    big = c.gemm(8192, 8192, 8192)
    eff = 2 * 8192**3 / big.time_s / 19.5e12
    assert 0.8 <= eff <= 0.9  # gemm_efficiency 0.9 and full waves
    tiny = c.gemm(1, 256, 256)
    assert 2 * 256 * 256 / tiny.time_s / 19.5e12 < 0.01  # a batch-1 layer uses a sliver of the GPU
    assert tiny.sm_util < 0.2


def test_tensor_core_dtypes_are_faster_for_large_products() -> None:
    fp32 = GPUCosts(A100, "fp32").gemm(4096, 4096, 4096).time_s
    tf32 = GPUCosts(A100, "tf32").gemm(4096, 4096, 4096).time_s
    fp16 = GPUCosts(A100, "fp16").gemm(4096, 4096, 4096).time_s
    assert fp16 < tf32 < fp32


def test_cache_hit_rate_uniform_zipf_trace() -> None:
    uni = perfmodel.Table(rows=1000, dim=16, pooling=1)
    assert pp.cache_hit_rate(uni, 250) == pytest.approx(0.25)
    z = perfmodel.Table(rows=1_000_000, dim=16, pooling=1, indices=perfmodel.IndexDistribution(kind="zipf", alpha=1.05))
    rates = [pp.cache_hit_rate(z, c) for c in (0, 10, 1000, 100_000, 1_000_000)]
    assert rates[0] == 0 and rates[-1] == pytest.approx(1.0)
    assert all(a < b for a, b in itertools.pairwise(rates))
    assert rates[2] > 0.4  # 0.1% of the rows take a large share under zipf 1.05
    seed = pp.get_model("seed").features[0].table
    # perfmodel/data/README.md: the top 60,000 rows of reuse_medium get 87.7% of accesses
    assert pp.cache_hit_rate(seed, 60_000) == pytest.approx(0.877, abs=0.001)


def test_cpu_gather_more_lookups_never_faster_and_dram_bound_at_large_batch() -> None:
    cpu = pp.get_cpu("xeon-8280")
    c = CPUCosts(cpu, table_calls=8)
    t = pp.get_model("rmc1").features[0].table
    times = [c.gather(t, b).time_s for b in (1, 16, 256, 4096)]
    assert all(a <= b for a, b in itertools.pairwise(times))
    # 4096 bags x 80 lookups x 128 B from 4M-row tables: at most the random-access DRAM rate
    nbytes = 4096 * 80 * 128
    assert times[-1] >= nbytes * (1 - 0.01) / (cpu.dram_bandwidth_bytes_per_s * cpu.random_access_efficiency)


def test_dhe_memory_and_compute_for_kaggle_setting() -> None:
    dhe = DHEConfig()  # FACTS.md: k = 1024, decoder 1024-512-256-16
    assert dhe.layers(16) == [(1024, 512), (512, 256), (256, 16)]
    weights = 1024 * 512 + 512 + 512 * 256 + 256 + 256 * 16 + 16
    assert dhe.weight_bytes(16) == weights * 4 + 2 * 1024 * 8
    assert dhe.flops_per_lookup(16) == 2 * (1024 * 512 + 512 * 256 + 256 * 16)
    big = 10_131_227  # Kaggle's largest table
    assert pp.representation_bytes("table", big, 16, 4, dhe) > 200 * pp.representation_bytes("dhe", big, 16, 4, dhe)
    hybrid = pp.representation_bytes("hybrid", big, 16, 4, dhe)
    assert pp.representation_bytes("dhe", big, 16, 4, dhe) < hybrid < pp.representation_bytes("table", big, 16, 4, dhe)


def test_dhe_trades_memory_for_compute_in_the_pipeline() -> None:
    table = pp.run_pipeline("criteo-kaggle", "xeon-8480", 64)
    dhe = pp.run_pipeline("criteo-kaggle", "xeon-8480", 64, representations="dhe")
    assert dhe.embedding_time_s > 5 * table.embedding_time_s
    assert dhe.memory["table_bytes"] < table.memory["table_bytes"] / 20  # 26 decoders of 2.6 MB vs 2.16 GB


def test_choose_representations_under_a_budget() -> None:
    m = pp.get_model("criteo-kaggle")
    full = m.table_bytes
    r = pp.choose_representations(m, "xeon-8280", 128, memory_budget_bytes=full / 4)
    assert r["feasible"] and r["embedding_bytes"] <= full / 4
    assert 0 < r["counts"]["dhe"] < 26
    # the big tables go first: every DHE table is larger than every table kept
    rows = {k: f.table.rows for k, f in pp.table_instances(m)}
    dhe_rows = [rows[k] for k, v in r["representations"].items() if v == "dhe"]
    kept = [rows[k] for k, v in r["representations"].items() if v == "table"]
    assert min(dhe_rows) >= max(kept)
    tight = pp.choose_representations(m, "xeon-8280", 128, memory_budget_bytes=1e6)
    assert not tight["feasible"] and "budget" in tight["reason"]
    slow = pp.choose_representations(m, "xeon-8280", 128, memory_budget_bytes=full, latency_target_s=1e-9)
    assert not slow["feasible"] and "latency" in slow["reason"]
    assert math.isfinite(slow["time_s"])
