"""perfmodel._kernel: the kernel facts and costs the model and the simulator share (one place
for each), checked on hand-worked cases and across the two fidelities."""

from __future__ import annotations

import math

import pytest

import kernels
import perfmodel
from perfmodel import IndexDistribution, InputError, KernelConfig, Table, Workload
from perfmodel._kernel import (
    KERNEL_LAUNCH_GAP_S,
    bounds_check_pass_bytes,
    evict_last_pass_bytes,
    expected_row_map_bytes,
    kernel_facts,
    lookup_io_bytes,
    pass_time_s,
    pinned_row_count,
    pinned_rows,
    remap_pass_bytes,
    streaming_bandwidth,
    work_mapping,
)
from perfmodel.sim import simulate_detailed

GPU = perfmodel.get_gpu("a100-80gb")


@pytest.mark.parametrize(("dim", "itemsize", "expected"), [
    (128, 4, 16),  # 512 B: float4 per lane
    (36, 4, 16),  # 144 B = 9 x 16
    (6, 4, 8),  # 24 B: 16 does not divide, 8 does
    (13, 4, 4),  # 52 B: only the element
    (13, 2, 2),  # 26 B of fp16: only the element
    (36, 2, 8),  # 72 B: 8 divides, 16 does not
])
def test_vector_width_is_the_widest_aligned_vector(dim: int, itemsize: int, expected: int) -> None:
    assert perfmodel.vector_bytes(dim, itemsize) == expected
    assert kernels.vec_bytes_for(dim, itemsize) == expected  # the launcher uses the same function


def test_vector_width_rejects_bad_input() -> None:
    with pytest.raises(InputError, match="dim >= 1"):
        perfmodel.vector_bytes(0, 4)
    with pytest.raises(InputError, match="itemsize in"):
        perfmodel.vector_bytes(8, 8)


def test_work_mapping_of_both_variants() -> None:
    # pytorch, dim 200 fp32: a unit per 32-column chunk, ceil(200 / 32) = 7 units of 32 x 4 = 128 B
    pt = work_mapping("pytorch", 200, "float32")
    assert (pt.units_per_bag, pt.passes_per_unit, pt.unit_bytes, pt.pass_bytes) == (7, 1, 128, 128)
    # warp, dim 200 fp32 = 800 B: 16-B vectors (800 = 50 x 16), 32 x 16 = 512 B per pass, 2 passes
    wp = work_mapping("warp", 200, "float32")
    assert (wp.units_per_bag, wp.passes_per_unit, wp.unit_bytes, wp.pass_bytes) == (1, 2, 800, 512)


def test_facts_come_from_the_compiled_kernels_profile() -> None:
    """The model's per-lookup facts are the profile's (shipped table, nvrtc SASS), not 1 + p."""
    from perfmodel._resources import kernel_profile

    for k in (KernelConfig(prefetch_distance=3), KernelConfig(bounds_check="separate"),
              KernelConfig(variant="micro24-combined", register_cap=42), KernelConfig(variant="pytorch-current")):
        f = kernel_facts(k, GPU.arch)
        prof = kernel_profile(k, GPU.arch)
        assert prof is not None
        assert f.row_loads_in_flight == prof.row_loads_in_flight
        assert f.lookups_per_iteration == max(1, prof.lookups_per_iteration)
        assert f.instructions_per_lookup == prof.total_instructions_per_lookup > 0
        assert f.index_on_row_chain == prof.index_on_row_chain
        assert f.local_ops_per_lookup == prof.local_ops_per_lookup
        # a warp waits ceil(u / k) times per pass of u lookups with k loads in flight
        u, kk = f.lookups_per_iteration, max(f.row_loads_in_flight, 1)
        assert f.memory_rounds_per_lookup == pytest.approx(math.ceil(u / kk) / u)
        assert "shipped table" in f.profile_source
    # the fixed ring keeps p + 1 loads in flight (issue 9), the artifact's pair kernel 2
    assert kernel_facts(KernelConfig(prefetch_distance=3), GPU.arch).row_loads_in_flight == 4
    assert kernel_facts(KernelConfig(variant="micro24-combined", register_cap=42), GPU.arch).row_loads_in_flight == 2
    # pytorch-current's inline check is its validation loop over the bag's indices
    assert kernel_facts(KernelConfig(variant="pytorch-current"), GPU.arch).validation_loop
    assert not kernel_facts(KernelConfig(variant="pytorch-current", bounds_check="separate"), GPU.arch).validation_loop
    regs, spill, src = perfmodel.kernel_registers(KernelConfig(prefetch_distance=3), GPU)
    ring = kernel_facts(KernelConfig(prefetch_distance=3), GPU.arch)
    assert (regs, spill, src) == (ring.registers, ring.spill_bytes, ring.registers_source)


def test_a_configuration_without_a_profile_is_refused_not_guessed() -> None:
    previous = perfmodel.set_profile_provider(None)
    try:
        with pytest.raises(InputError, match="no kernel profile"):
            kernel_facts(KernelConfig(register_cap=33), GPU.arch)  # no cap of the table's list
    finally:
        perfmodel.set_profile_provider(previous)


def test_pinned_rows_are_the_hottest_capped_by_the_persisting_maximum() -> None:
    # A100: 31,457,280 B persisting maximum; 512-B rows -> at most 61,440 rows
    assert GPU.persisting_l2_max_bytes == 31_457_280
    assert pinned_row_count(0.5, 1_000_000, 512, GPU) == 61_440
    assert pinned_row_count(0.01, 1_000_000, 512, GPU) == 10_000
    # a 100-B row covers 100 + 32 - gcd(100, 32) = 128 B of sectors: 31,457,280 / 128 = 245,760
    assert pinned_row_count(1.0, 1_000_000, 100, GPU) == 245_760
    t = Table(rows=1000, dim=128, pooling=1, indices=IndexDistribution(kind="zipf", alpha=1.2))
    rows = pinned_rows(t, KernelConfig(pinned_row_fraction=0.01), GPU)
    assert rows.size == 10
    assert len(set(rows.tolist())) == 10


def test_pass_bytes_hand_worked() -> None:
    # 2,048 bags x 150 lookups = 307,200 int64 indices = 2,457,600 B read by the check
    assert bounds_check_pass_bytes(307_200) == 2_457_600
    # the remap reads and writes them (4,915,200 B) and gathers the row_map sectors given
    assert remap_pass_bytes(307_200, 1_000 * 32) == 4_915_200 + 32_000
    # 1,000 rows of 512 B pinned by evict-last prefetches: 512,000 B
    assert evict_last_pass_bytes(1_000, 512) == 512_000
    # every row touched: all ceil(1,000 / 4) = 250 sectors; none: no sector
    assert expected_row_map_bytes(1.0, 1_000) == 250 * 32
    assert expected_row_map_bytes(0.0, 1_000) == 0.0
    # pytorch writes 2,048 outputs of 512 B and 2,048 bag sizes, and reads 2,048 offsets
    assert lookup_io_bytes("pytorch", 2048, 512) == 2048 * (8 + 512 + 8)
    assert lookup_io_bytes("warp", 2048, 512) == 2048 * (8 + 512)
    bw = streaming_bandwidth(GPU)
    assert 0.5 * GPU.dram_bandwidth_bytes_per_s < bw < GPU.dram_bandwidth_bytes_per_s
    assert pass_time_s(2_457_600, bw) == pytest.approx(2e-6 + 2_457_600 / bw)


def test_both_fidelities_charge_the_same_evict_last_pass() -> None:
    w = Workload(batch_size=64, tables=(Table(rows=100_000, dim=32, pooling=10,
                                              indices=IndexDistribution(kind="zipf", alpha=1.1)),))
    k = KernelConfig(variant="warp", pinned_row_fraction=0.05, pin_method="evict-last-prefetch",
                     bounds_check="separate")
    model = perfmodel.predict(w, k, GPU)
    sim = simulate_detailed(w, k, GPU)
    # 5,000 pinned rows of 128 B = 640,000 B, streamed once
    expected = KERNEL_LAUNCH_GAP_S + 640_000 / streaming_bandwidth(GPU)
    assert model.pin_time_s == pytest.approx(expected, rel=1e-12)
    assert sim.prediction.pin_time_s == pytest.approx(expected, rel=1e-12)
    # the separate check: 640 int64 indices read once
    assert sim.tables[0].check_time_s == pytest.approx(KERNEL_LAUNCH_GAP_S + 640 * 8 / streaming_bandwidth(GPU))
