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


def test_hybrid_is_the_full_table_plus_a_dhe() -> None:
    # MP-Rec's hybrid: the whole table and a DHE, concatenated: more memory than a table (it was a D/2 table
    # plus a D/2 decoder, less memory than the table, before)
    dhe = DHEConfig()
    big = 10_131_227  # Kaggle's largest table
    table = pp.representation_bytes("table", big, 16, 4, dhe)
    assert pp.representation_bytes("hybrid", big, 16, 4, dhe) == table + dhe.weight_bytes(16, 4)
    assert pp.representation_bytes("dhe", big, 16, 4, dhe) * 200 < table
    assert pp.output_dim("hybrid", 16) == 32 and pp.output_dim("table", 16) == 16


def test_quantized_rows_follow_fbgemm_layouts() -> None:
    # FBGEMM src/QuantUtils.cc, fused 8-bit row-wise: output_columns = input_columns + 2 * sizeof(float)
    # (an fp32 scale and an fp32 bias after the row's uint8 values); fp16 rows: 2 bytes per element
    dhe = DHEConfig()
    assert pp.INT8_SCALE_BIAS_BYTES == 8
    assert pp.row_bytes("int8", 16, 4) == 24 and pp.row_bytes("int8", 128, 4) == 136
    assert pp.row_bytes("fp16", 16, 4) == 32
    assert pp.representation_bytes("int8", 1000, 128, 4, dhe) == 1000 * 136
    # int8 cuts memory ~4x where rows are wide, less where the 8-byte scale and bias weigh (dim 16: 24 / 64)
    assert pp.representation_bytes("int8", 1000, 128, 4, dhe) / pp.representation_bytes("table", 1000, 128, 4, dhe) < 0.27
    assert pp.representation_bytes("int8", 1000, 16, 4, dhe) / pp.representation_bytes("table", 1000, 16, 4, dhe) == 0.375
    with pytest.raises(perfmodel.InputError, match="valid choices"):
        pp.row_bytes("int4", 16, 4)


def test_every_representation_has_an_accuracy_proxy() -> None:
    assert set(pp.ACCURACY_PROXY) == set(pp.REPRESENTATIONS)
    assert pp.ACCURACY_PROXY["hybrid"].startswith("higher than table")


def test_pipeline_memory_counts_the_representations_bytes() -> None:
    m = pp.get_model("criteo-kaggle")
    mem = {r: pp.run_pipeline(m, "xeon-8480", 64, representations=r).memory["table_bytes"] for r in pp.REPRESENTATIONS}
    assert mem["hybrid"] > mem["table"] > mem["fp16"] > mem["int8"] > mem["dhe"]
    assert mem["table"] == m.table_bytes
    assert mem["int8"] == sum(f.table.rows * f.table.count * (f.table.dim + 8) for f in m.features)


def test_dhe_trades_memory_for_compute_in_the_pipeline() -> None:
    table = pp.run_pipeline("criteo-kaggle", "xeon-8480", 64)
    dhe = pp.run_pipeline("criteo-kaggle", "xeon-8480", 64, representations="dhe")
    hybrid = pp.run_pipeline("criteo-kaggle", "xeon-8480", 64, representations="hybrid")
    assert dhe.embedding_time_s > 5 * table.embedding_time_s
    assert hybrid.time_s > dhe.time_s > table.time_s  # hybrid pays the table and the decoder
    assert dhe.memory["table_bytes"] < table.memory["table_bytes"] / 20  # 26 decoders of 2.6 MB vs 2.16 GB


def test_tensor_core_tiles_have_their_own_efficiency() -> None:
    # SIMT: a 64 x 64 tile already runs at full rate (t_sat 64); tensor cores need 128 (t_sat 128) and reach
    # their own large-GEMM efficiency (0.8, not SIMT's 0.9)
    lc = pp.launch_costs()
    simt = GPUCosts(A100, "fp32")
    assert not simt.tensor_cores
    assert simt.tile_rate(64) == simt.tile_rate(128) == pytest.approx(19.5e12 / 108 * lc.gemm_efficiency)
    for dtype in ("tf32", "fp16"):
        c = GPUCosts(A100, dtype)
        assert c.tensor_cores
        assert c.tile_rate(64) == pytest.approx(0.5 * c.tile_rate(128))
        assert c.tile_rate(256) == c.tile_rate(128) == pytest.approx(c.peak / 108 * lc.tensor_core_gemm_efficiency)
        big = c.gemm(8192, 8192, 8192)
        eff = 2 * 8192**3 / (big.time_s - lc.kernel_fixed_s) / c.peak
        assert 0.7 * lc.tensor_core_gemm_efficiency < eff <= lc.tensor_core_gemm_efficiency


def test_cpu_small_products_follow_the_blis_micro_kernel() -> None:
    # one thread, one 32 x 12 register tile (BLIS's AVX-512 SGEMM micro-kernel): K steps of 24 vector FMAs on two
    # FMA units, then 24 vector stores at one per cycle (Skylake-SP): (12 K + 24) cycles, at gemm_efficiency
    cpu = pp.get_cpu("xeon-8280")
    c = CPUCosts(cpu, threads=1)
    assert (c.mr, c.nr) == (32, 12)
    for k in (1, 16, 256):
        t = c.gemm(32, 12, k, overhead=False).time_s
        compute = (12 * k + 24) / cpu.clock_hz / cpu.gemm_efficiency
        assert t >= compute * (1 - 1e-12)
        assert c.micro_tiles(32, 12) == 1 and c.tile_cycles(k) == 12 * k + 24
    # tile quantization: 33 rows need two tiles of rows
    assert c.micro_tiles(33, 12) == 2
    # Sapphire Rapids stores two vectors per cycle: a shorter epilogue
    assert CPUCosts(pp.get_cpu("xeon-8480")).tile_cycles(16) == 12 * 16 + 12
    fields = {f for f in pp.CPUSpec.__dataclass_fields__}
    assert not {"l1d_bytes_per_core", "l2_bytes_per_core"} & fields  # loaded and never used before: removed


def test_one_core_per_query_shares_the_socket() -> None:
    cpu = pp.get_cpu("xeon-8280")
    t = pp.get_model("rmc1").features[0].table
    alone = CPUCosts(cpu, threads=1).gather(t, 64)
    shared = CPUCosts(cpu, threads=1, concurrent_cores=cpu.cores).gather(t, 64)
    assert shared.time_s > alone.time_s  # 28 cores share the socket's random-access bandwidth
    socket = CPUCosts(cpu).gather(t, 64)
    assert socket.time_s < alone.time_s


def test_choose_representations_under_a_budget() -> None:
    m = pp.get_model("criteo-kaggle")
    full = m.table_bytes
    r = pp.choose_representations(m, "xeon-8280", 128, memory_budget_bytes=full / 4)
    assert r["feasible"] and r["embedding_bytes"] <= full / 4
    assert r["time_s"] == r["result"].time_s
    tight = pp.choose_representations(m, "xeon-8280", 128, memory_budget_bytes=1e6)
    assert not tight["feasible"] and "budget" in tight["reason"]
    slow = pp.choose_representations(m, "xeon-8280", 128, memory_budget_bytes=full, latency_target_s=1e-9)
    assert not slow["feasible"] and "latency" in slow["reason"]
    assert math.isfinite(slow["time_s"])
