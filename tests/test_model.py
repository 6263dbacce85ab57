"""perfmodel.predict / predict_batch: physics properties, oracles and the seed paper's ordering."""

from __future__ import annotations

import dataclasses
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import perfmodel
from perfmodel._indices import table_call
from perfmodel._kernel import launch_blocks_per_sm
from perfmodel._l1 import L1_BPB_GRID, l1_hit_grid
from perfmodel._l2 import residency
from perfmodel._lru import lru_hit_counts, merged_hit_counts, stack_distances

TRACES = Path(str(resources.files("perfmodel").joinpath("data/traces")))
A100 = perfmodel.get_gpu("a100-80gb")


def _table(kind: str = "zipf", rows: int = 200_000, dim: int = 64, pooling: int = 20, alpha: float = 1.05,
           count: int = 1) -> perfmodel.Table:
    idx = perfmodel.IndexDistribution(kind=kind, alpha=alpha) if kind != "trace" else perfmodel.IndexDistribution(
        kind="trace", path=str(TRACES / "reuse_medium_500K.txt"))
    return perfmodel.Table(rows=rows, dim=dim, pooling=pooling, count=count, indices=idx)


def _workload(batch: int = 512, **kw: object) -> perfmodel.Workload:
    return perfmodel.Workload(batch_size=batch, tables=(_table(**kw),))  # type: ignore[arg-type]


kernel_st = st.builds(
    perfmodel.KernelConfig,
    variant=st.sampled_from(["pytorch", "warp"]),
    block_size=st.sampled_from([64, 128, 256, 512, 1024]),
    register_cap=st.sampled_from([0, 32, 40, 48, 64]),
    prefetch_distance=st.integers(0, 16),
    pinned_row_fraction=st.floats(0.0, 0.2),
    pin_method=st.sampled_from(["access-policy-window", "evict-last-prefetch"]),
    bounds_check=st.sampled_from(["inline", "separate", "none"]),
)
gpu_st = st.sampled_from(["a100-40gb", "a100-80gb", "h100-sxm", "h200"])

def _launches(kernel: perfmodel.KernelConfig, gpu: perfmodel.GPUSpec = A100) -> bool:
    """At least one block of the kernel fits on an SM (predict refuses the others)."""
    try:
        launch_blocks_per_sm(kernel, gpu)
    except perfmodel.InputError:
        return False
    return True


launchable_st = kernel_st.filter(_launches)
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(kernel=kernel_st, gpu_id=gpu_st, alpha=st.floats(0.6, 1.4))
def test_time_finite_positive_and_above_the_dram_bound(kernel: perfmodel.KernelConfig, gpu_id: str, alpha: float) -> None:
    gpu = perfmodel.get_gpu(gpu_id)
    wl = _workload(alpha=alpha)
    if not _launches(kernel, gpu):  # too many registers for the block: predict refuses it,
        with pytest.raises(perfmodel.InputError, match="resident blocks per SM >= 1"):
            perfmodel.predict(wl, kernel, gpu)
        assert perfmodel.predict_batch(wl, [kernel], gpu)[0] == float("inf")  # the batch (search): infeasible
        return
    p = perfmodel.predict(wl, kernel, gpu)
    assert np.isfinite(p.time_s) and p.time_s > 0
    assert 0 <= p.pin_time_s < p.time_s
    assert p.time_s >= p.dram_bytes / gpu.dram_bandwidth_bytes_per_s, (p.time_s, p.dram_bytes)
    assert 0.0 <= p.l2_hit_rate <= 1.0


@SETTINGS
@given(kernel=launchable_st, which=st.sampled_from(["batch", "pooling", "dim"]))
def test_more_work_is_never_faster(kernel: perfmodel.KernelConfig, which: str) -> None:
    small = {"batch": 256, "pooling": 10, "dim": 64}
    big = dict(small)
    big[which] *= 2
    t_small = perfmodel.predict(_workload(small["batch"], pooling=small["pooling"], dim=small["dim"]), kernel, A100).time_s
    t_big = perfmodel.predict(_workload(big["batch"], pooling=big["pooling"], dim=big["dim"]), kernel, A100).time_s
    # a call that fits in one round costs about the same with twice the bags, and its SMs then
    # reuse more rows in their L1s and the L2 (these calls are tiny: 24 row loads per SM at
    # batch 256, so the cold start weighs): never more than a few percent faster
    assert t_big >= t_small * 0.95, (which, t_small, t_big)


@SETTINGS
@given(kernel=launchable_st, f1=st.floats(0.0, 0.12), f2=st.floats(0.0, 0.12))
def test_more_pinned_rows_never_lower_the_hit_rate(kernel: perfmodel.KernelConfig, f1: float, f2: float) -> None:
    lo, hi = sorted((f1, f2))
    w = _workload(alpha=1.1)
    h_lo = perfmodel.predict(w, kernel.replace(pinned_row_fraction=lo), A100).l2_hit_rate
    h_hi = perfmodel.predict(w, kernel.replace(pinned_row_fraction=hi), A100).l2_hit_rate
    assert h_hi >= h_lo - 1e-9


def test_batch_equals_single_and_is_deterministic() -> None:
    w = _workload(kind="trace", rows=500_000, dim=128, pooling=150, batch=256)
    ks = [perfmodel.KernelConfig(variant=v, block_size=b, register_cap=r, prefetch_distance=p, pinned_row_fraction=f)
          for v in ("pytorch", "warp") for b in (128, 512) for r in (0, 40) for p in (0, 3) for f in (0.0, 0.07)]
    batch = perfmodel.predict_batch(w, ks, A100)
    single = np.array([perfmodel.predict(w, k, A100).time_s for k in ks])
    np.testing.assert_allclose(batch, single, rtol=1e-12)
    np.testing.assert_array_equal(batch, perfmodel.predict_batch(w, ks, A100))


def test_che_matches_exact_lru_on_an_independent_stream() -> None:
    """For independent references Che (with the cold-start correction) is the right model:
    compare with exact LRU on the sampled stream of the same table call."""
    t = _table(kind="zipf", rows=300_000, dim=128, pooling=40, alpha=1.0)
    res = residency(t, 1024)
    stream = table_call(t, 1024).indices
    for cap in (2_000, 20_000, 60_000):
        exact = lru_hit_counts(stream, [cap])[0] / stream.size
        che = float(res.hits(0, cap, 1)) / res.accesses
        assert abs(che - exact) < 0.01, (cap, che, exact)


def test_trace_residency_is_exact_lru_at_grid_points() -> None:
    t = _table(kind="trace", rows=500_000, dim=128, pooling=150)
    res = residency(t, 2048)
    stream = table_call(t, 2048).indices
    cap = round(res.capacities[30])
    exact = lru_hit_counts(stream, [cap])[0]  # bag-major order, no pinning: grid point (k=0, G=1)
    assert float(res.hits(0, res.capacities[30], 1)) == pytest.approx(exact, rel=1e-9)


@pytest.mark.parametrize("alpha", [0.8, 1.0, 1.3])
def test_l1_estimate_matches_exact_lru_of_one_sms_independent_stream(alpha: float) -> None:
    """The per-SM L1 share of an independent-reference table (Che, cold start) against an
    exact LRU of the same capacity replaying one SM's share of a sampled call."""
    t = _table(kind="zipf", rows=100_000, dim=128, pooling=50, alpha=alpha)
    sms, cap = 108, 384  # A100: 192 KiB of L1 over 512-B rows
    est = float(l1_hit_grid(t, 2048, sms, cap)[0, 0])
    idx = table_call(t, 2048).indices.reshape(2048, 50)
    exact = []
    for sm in range(0, sms, 27):  # bags of SM `sm`, one block of one bag each, bag after bag
        stream = idx[np.arange(sm, 2048, sms)].ravel()
        exact.append(lru_hit_counts(stream, [cap])[0] / stream.size)
    assert abs(est - float(np.mean(exact))) < 0.03, (alpha, est, exact)


@pytest.mark.parametrize("bpb", [1, 8, 32])
def test_l1_estimate_counts_only_the_busy_sms_of_a_small_batch(bpb: int) -> None:
    """64 bags in blocks of ``bpb`` consecutive bags occupy only ceil(64 / bpb) of 108 SMs; each
    busy SM's L1 sees its blocks' whole stream (Che, cold start) - against an exact LRU of
    those streams. Spread over all 108 SMs instead, the estimate would be far lower."""
    t = _table(kind="zipf", rows=100_000, dim=128, pooling=200, alpha=1.0)
    sms, cap, batch = 108, 384, 64
    est = float(l1_hit_grid(t, batch, sms, cap)[list(L1_BPB_GRID).index(float(bpb)), 0])
    idx = table_call(t, batch).indices.reshape(batch, 200)
    exact = [lru_hit_counts(idx[b0:b0 + bpb].ravel(), [cap])[0] / idx[b0:b0 + bpb].size for b0 in range(0, batch, bpb)]
    assert abs(est - float(np.mean(exact))) < 0.03, (bpb, est, exact)
    spread = float(l1_hit_grid(t, batch, 1_000_000, cap)[0, 0])  # one bag per SM at most
    if bpb > 1:
        assert est > spread + 0.05


def test_trace_l1_grid_is_exact_lru_of_the_sms_streams() -> None:
    t = _table(kind="trace", rows=500_000, dim=128, pooling=150)
    grid = l1_hit_grid(t, 2048, 108, 384)
    idx = table_call(t, 2048).indices.reshape(2048, 150)
    hits = total = 0
    for sm in np.unique(np.linspace(0, 107, 4).astype(int)):  # bags per block 1, one bag in flight
        stream = idx[np.arange(sm, 2048, 108)].ravel()
        hits += lru_hit_counts(stream, [384])[0]
        total += stream.size
    assert float(grid[0, 0]) == pytest.approx(hits / total, rel=1e-12)
    assert float(grid[-1, 0]) > float(grid[0, 0])  # a trace's neighbouring bags share rows


def test_hits_under_a_miss_need_a_recent_miss_of_the_row() -> None:
    """Row 7 misses at 0, is hit at 1 and 2 while in flight (window 3), then at 10 when it has
    arrived; row 9 is touched once (the exact count: tests/test_lru.py)."""
    stream = np.array([7, 7, 7, 9, 5, 5, 5, 5, 5, 5, 7], dtype=np.int64)
    merged = merged_hit_counts(stream, stack_distances(stream), np.array([1, 10]), window=3)
    # capacity 10: hits of 7 at 1, 2 merged (its miss at 0); 7 at 10 fast; 5's hits at 5, 6
    # merged (its miss at 4), the rest fast
    assert merged[1] == 4
    # capacity 1: 7's reuse at 10 (distance 2) misses; 7 at 1, 2 and 5 at 5, 6 still merged
    assert merged[0] == 4
    # independent references: a hot resident row's hits are fast, so few hits are merged
    res = residency(_table(kind="zipf", rows=50_000, pooling=50, alpha=1.4), 2048)
    hits, fast = res.hit_counts(0.0, 20_000.0, 1024.0)
    assert fast > 0.9 * hits, (hits, fast)


@pytest.mark.parametrize(
    ("kw", "needle"),
    [({"block_size": 48}, "multiple of 32"), ({"prefetch_distance": -1}, "prefetch_distance"),
     ({"pin_method": "magic"}, "valid choices")],
)
def test_invalid_kernel_raises_value_error(kw: dict[str, object], needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        perfmodel.KernelConfig(**kw)  # type: ignore[arg-type]


def test_wrong_argument_types_are_refused() -> None:
    with pytest.raises(ValueError, match="Workload"):
        perfmodel.predict("w.toml", perfmodel.KernelConfig(), A100)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown GPU"):
        perfmodel.predict(_workload(), perfmodel.KernelConfig(), "v100")


def test_explain_names_the_parts() -> None:
    p = perfmodel.predict(_workload(), perfmodel.KernelConfig(register_cap=42, prefetch_distance=2), A100)
    text = p.explain()
    for word in ("bound by", "registers", "occupancy", "hit"):
        assert word in text


def test_register_cap_raises_occupancy_of_the_baseline() -> None:
    """FACTS.md 1: the replica needs >= 49 registers (50% at 256 threads); cap 42 gives 62.5%."""
    w = _workload()
    base = perfmodel.predict(w, perfmodel.KernelConfig(), A100)
    capped = perfmodel.predict(w, perfmodel.KernelConfig(register_cap=42), A100)
    assert base.breakdown["registers"] >= 49 and base.occupancy == 0.5
    assert capped.breakdown["registers"] <= 42 and capped.occupancy == 0.625


SEED_DESIGNS = {
    "baseline": {},
    "regcap42": {"register_cap": 42},
    "prefetch2": {"prefetch_distance": 2},
    "pin12%": {"pinned_row_fraction": 0.12, "pin_method": "evict-last-prefetch"},
    "combined": {"register_cap": 42, "prefetch_distance": 2, "pinned_row_fraction": 0.12,
                 "pin_method": "evict-last-prefetch"},
}


@pytest.mark.parametrize("indices", ["reuse_medium_500K.txt", "reuse_low_500K.txt", "uniform"])
def test_seed_paper_ordering(indices: str) -> None:
    """Jain et al. (MICRO 2024) on A100, lookup kernel timed as the paper did: each technique
    helps, the combination is best, and the combined speedup is in the paper's range (<~2x+)."""
    dist = (perfmodel.IndexDistribution(kind="uniform") if indices == "uniform"
            else perfmodel.IndexDistribution(kind="trace", path=str(TRACES / indices)))
    w = perfmodel.Workload(batch_size=2048, tables=(perfmodel.Table(rows=500_000, dim=128, pooling=150, count=12,
                                                                    indices=dist),))
    base = perfmodel.KernelConfig(variant="pytorch", block_size=256, bounds_check="inline")
    t = {}
    for name, d in SEED_DESIGNS.items():
        p = perfmodel.predict(w, dataclasses.replace(base, **d), A100)
        t[name] = p.time_s - p.pin_time_s
    for k in ("regcap42", "prefetch2"):
        assert t[k] < t["baseline"], t
    if indices != "uniform":  # pinning a uniform table's "hot" rows cannot help much, but never hurts
        assert t["pin12%"] < t["baseline"], t
    assert t["combined"] <= min(t["regcap42"], t["prefetch2"], t["pin12%"]), t
    assert 1.2 < t["baseline"] / t["combined"] < 3.0, t


@pytest.mark.parametrize("kind", ["zipf", "trace", "uniform"])
def test_access_policy_window_remap_pass_tracks_the_exact_count(kind: str) -> None:
    """The access-policy window's table is stored hottest row first, so every call first
    rewrites its indices (kernels' recperf_remap_indices): the model's pass time rests on an
    estimate of the row_map sectors touched; the simulator counts them exactly."""
    w = _workload(batch=1024, kind=kind, rows=500_000, pooling=40)
    apw = perfmodel.KernelConfig(variant="warp", pinned_row_fraction=0.05, pin_method="access-policy-window")
    p = perfmodel.predict(w, apw, A100)
    s = perfmodel.simulate(w, apw, A100)
    assert p.pin_time_s > 2 * 1024 * 40 * 8 / A100.dram_bandwidth_bytes_per_s  # at least the indices, twice
    assert p.pin_time_s == pytest.approx(s.pin_time_s, rel=0.15), (p.pin_time_s, s.pin_time_s)
    none = perfmodel.predict(w, dataclasses.replace(apw, pinned_row_fraction=0.0), A100)
    assert none.pin_time_s == 0.0


def test_compile_codes_number_compile_keys_one_to_one() -> None:
    """predict_batch groups configurations by KernelConfig._model_row's integer code: equal
    codes must mean equal compile keys (extremes of every field's range)."""
    seen: dict[int, tuple[object, ...]] = {}
    codes: dict[tuple[object, ...], int] = {}
    for v in perfmodel.VARIANTS:
        fixed = v in perfmodel.FIXED_PREFETCH_VARIANTS  # the replicas take no prefetch distance
        for cap in (0, perfmodel.MIN_REGISTER_CAP, 255):
            for pd in (0,) if fixed else (0, perfmodel.MAX_PREFETCH_DISTANCE):
                for kind in perfmodel.PREFETCH_KINDS:
                    for check in perfmodel.BOUNDS_CHECKS:
                        for pin in perfmodel.PIN_METHODS:
                            k = perfmodel.KernelConfig(variant=v, register_cap=cap, prefetch_distance=pd,
                                                       prefetch_kind=kind, bounds_check=check, pin_method=pin)
                            code, key, _, _ = k._model_row
                            assert seen.setdefault(code, key) == key
                            assert codes.setdefault(key, code) == code
    n_tunable = len(perfmodel.VARIANTS) - len(perfmodel.FIXED_PREFETCH_VARIANTS)
    assert len(seen) == len(codes) == (2 * n_tunable + len(perfmodel.FIXED_PREFETCH_VARIANTS)) * 3 * 2 * 3 * 2



def _chain_per_lookup(variant: str, pooling: int) -> float:
    """Seconds per lookup of one warp's one bag (batch 1) on an H100 SXM, the launch gap removed."""
    from perfmodel._kernel import KERNEL_LAUNCH_GAP_S

    w = perfmodel.Workload(batch_size=1, tables=(perfmodel.Table(rows=1_000_000, dim=32, pooling=pooling),))
    return (perfmodel.predict(w, perfmodel.KernelConfig(variant=variant), "h100-sxm").time_s - KERNEL_LAUNCH_GAP_S) / pooling


@pytest.mark.parametrize("variant", ["pytorch", "pytorch-current"])
def test_a_unit_waits_for_its_offsets_before_its_first_index(variant: str) -> None:
    """A unit loads its bag's offsets (begin, end) before any index, once per unit: a bag of one
    lookup pays that fetch (from the L2, where the call's indices are) on top of what a lookup
    of a long bag costs (without the offsets load both were the same per lookup)."""
    g = perfmodel.get_gpu("h100-sxm")
    assert _chain_per_lookup(variant, 1) > _chain_per_lookup(variant, 32) + 0.9 * g.latency_s(g.l2_near_latency_cycles)


def test_a_short_bag_still_waits_for_a_whole_index_line_in_the_validation_loop() -> None:
    """pytorch-current's validation loop reads the bag's indices a 128-byte line at a time: a bag
    of 4 lookups waits for a whole line, not a quarter of one, so per lookup it costs more than a
    bag of 16, which fills its line (the plain kernel, no validation loop, differs by the offsets
    load only)."""
    current = _chain_per_lookup("pytorch-current", 4) - _chain_per_lookup("pytorch-current", 16)
    plain = _chain_per_lookup("pytorch", 4) - _chain_per_lookup("pytorch", 16)
    assert current > plain * 1.5
