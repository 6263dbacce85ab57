"""CPU-executed correctness: the CUDA sources, compiled with g++ through kernels/cpu_shim.h and
run thread by thread, against an independent NumPy reference of
torch.nn.functional.embedding_bag (include_last_offset=False), on fresh random inputs.

The default suite runs a representative subset (every variant, mode, dtype, index type and
prefetch kind at least once); the full matrix (variant x mode x dtype x index type x prefetch
distance 0/1/3/16 x prefetch kind) is marked slow. Each configuration is one g++ build, cached.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from _kernels_reference import assert_matches, random_case

import kernels
from kernels._launch import frequency_remap, launch_geometry, pinned_row_count, vec_bytes_for
from perfmodel import InputError, KernelConfig

pytestmark = pytest.mark.skipif(kernels.cpu_compiler() is None, reason="the CPU runner needs g++ (or $CXX)")

VARIANTS = ("pytorch", "warp", "micro24-combined", "tbe", "pytorch-current")
#: variants that take a prefetch setting (the replicas fix their own)
PREFETCH_VARIANTS = ("pytorch", "warp")
MODES = ("sum", "mean")


def _dim_for(variant: str, dim: int) -> int:
    """tbe reads rows in 4-element vectors (FBGEMM's rule: dim a multiple of 4)."""
    return -(-dim // 4) * 4 if variant == "tbe" else dim


def run_matrix(configs: list[tuple[str, str, int, str, str]], dims: tuple[int, ...], seed: int) -> int:
    """For each (dtype, index dtype, prefetch distance, kind, bounds) and dim: every variant,
    mode and weighting on a fresh random case."""
    rng = np.random.default_rng(seed)
    checked = 0
    for dtype, index_dtype, pd, kind, bounds in configs:
        for dim in dims:
            for variant in VARIANTS if pd == 0 else PREFETCH_VARIANTS:
                for mode in MODES:
                    for weighted in (False, True) if mode == "sum" else (False,):
                        k = KernelConfig(variant=variant, block_size=int(rng.choice([64, 128, 256])),
                                         prefetch_distance=pd, prefetch_kind=kind, bounds_check=bounds)
                        case = random_case(rng, dtype=dtype, index_dtype=index_dtype, dim=_dim_for(variant, dim),
                                           weighted=weighted)
                        got = kernels.embedding_bag_cpu(k, mode=mode, **case)
                        assert_matches(got, case, mode, (k, dtype, index_dtype, dim, mode, weighted))
                        checked += 1
    return checked


#: covers every dtype, index dtype, prefetch distance sample, kind and bounds check at least once
DEFAULT_CONFIGS = [
    ("float32", "int64", 0, "register", "inline"),
    ("float16", "int32", 0, "register", "separate"),
    ("float16", "int32", 1, "register", "separate"),
    ("float32", "int32", 3, "l2-hint", "none"),
    ("float16", "int64", 16, "register", "inline"),
    ("float32", "int64", 3, "register", "inline"),
]


def test_cpu_runs_match_the_reference_on_a_representative_subset() -> None:
    # dim 36: 16-byte vectors for fp32, 8-byte for fp16; dim 13: not a multiple of any vector width
    assert run_matrix(DEFAULT_CONFIGS, dims=(36, 13), seed=np.random.SeedSequence().entropy % 2**32) > 0


@pytest.mark.slow
@pytest.mark.parametrize(("dtype", "index_dtype"), list(itertools.product(("float32", "float16"), ("int64", "int32"))))
def test_cpu_runs_match_the_reference_on_the_full_matrix(dtype: str, index_dtype: str) -> None:
    configs = [(dtype, index_dtype, 0, "register", "inline")] + [
        (dtype, index_dtype, pd, kind, "inline") for pd in (1, 3, 16) for kind in ("register", "l2-hint")
    ] + [(dtype, index_dtype, pd, "register", bounds) for pd in (0, 3) for bounds in ("separate", "none")]
    assert run_matrix(configs, dims=(64, 6, 13), seed=np.random.SeedSequence().entropy % 2**32) > 0


# ---- edge cases ------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_edge_cases_zero_bags_all_empty_and_one_long_last_bag(variant: str) -> None:
    rng = np.random.default_rng(1)
    weight = rng.standard_normal((50, 8)).astype(np.float32)
    k = KernelConfig(variant=variant, prefetch_distance=3 if variant in PREFETCH_VARIANTS else 0)
    out = kernels.embedding_bag_cpu(k, weight, np.zeros(0, np.int64), np.zeros(0, np.int64))
    assert out.shape == (0, 8)
    out = kernels.embedding_bag_cpu(k, weight, np.zeros(0, np.int64), np.zeros(4, np.int64), mode="mean")
    assert out.shape == (4, 8) and not out.any()
    idx = rng.integers(0, 50, 200).astype(np.int64)  # the last bag takes everything after its offset
    offsets = np.array([0, 0, 5], np.int64)
    case = {"weight": weight, "indices": idx, "offsets": offsets, "per_sample_weights": None}
    assert_matches(kernels.embedding_bag_cpu(k, weight, idx, offsets), case, "sum", variant)


@pytest.mark.parametrize(("variant", "pd"), [(v, pd) for v in VARIANTS for pd in ((0, 3) if v in PREFETCH_VARIANTS
                                                                                  else (0,))])
@pytest.mark.parametrize("bounds", ["inline", "separate", "none"])
def test_out_of_range_indices_raise_index_error_naming_the_first(variant: str, bounds: str, pd: int) -> None:
    rng = np.random.default_rng(2)
    weight = rng.standard_normal((10, 8)).astype(np.float32)
    idx = rng.integers(0, 10, 40).astype(np.int64)
    idx[23] = 10  # bag 2
    idx[31] = -1  # bag 3 (negative: never read either)
    idx[37] = 1000
    offsets = np.array([0, 10, 20, 30], np.int64)
    k = KernelConfig(variant=variant, bounds_check=bounds, prefetch_distance=pd)
    with pytest.raises(IndexError, match=r"index 10 at position 23 .* 10 rows"):
        kernels.embedding_bag_cpu(k, weight, idx, offsets)
    idx[23] = 3
    with pytest.raises(IndexError, match=r"index -1 at position 31"):
        kernels.embedding_bag_cpu(k, weight, idx, offsets)


def test_pytorch_side_outputs_offset2bag_and_bag_size() -> None:
    rng = np.random.default_rng(3)
    weight = rng.standard_normal((30, 40)).astype(np.float32)  # 40 columns: two chunks of 32
    offsets = np.array([0, 3, 3, 9], np.int64)
    idx = rng.integers(0, 30, 12).astype(np.int64)
    res = kernels.run_cpu(KernelConfig(prefetch_distance=2), weight, idx, offsets)
    assert res.offset2bag is not None and res.bag_size is not None
    assert res.offset2bag.tolist() == [0, 0, 0, 2, 2, 2, 2, 2, 2, 3, 3, 3]
    assert res.bag_size.tolist() == [3, 0, 6, 3]


@pytest.mark.parametrize("pin_method", ["access-policy-window", "evict-last-prefetch"])
def test_pinning_passes_leave_the_result_unchanged(pin_method: str) -> None:
    rng = np.random.default_rng(4)
    case = random_case(rng, dtype="float32", index_dtype="int64", dim=16, weighted=True)
    for variant in VARIANTS:
        if variant == "tbe" and case["weight"].shape[1] % 4:
            continue
        k = KernelConfig(variant=variant, pinned_row_fraction=0.25, pin_method=pin_method, bounds_check="separate")
        res = kernels.run_cpu(k, mode="sum", **case)
        assert res.pinned_rows == int(0.25 * case["weight"].shape[0])
        assert_matches(res.output, case, "sum", (variant, pin_method))


@pytest.mark.parametrize(("variant", "pd"), [("pytorch", 0), ("pytorch", 1), ("pytorch", 4), ("micro24-combined", 0),
                                          ("pytorch-current", 0)])
def test_padding_rows_are_left_out_at_use(variant: str, pd: int) -> None:
    """torch's padding_idx: the row counts neither in the sum nor in the bag size (mean); the
    ring applies the select when a slot is used, not when it is loaded."""
    rng = np.random.default_rng(6)
    for dtype, index_dtype in (("float32", "int64"), ("float16", "int32")):
        case = random_case(rng, dtype=dtype, index_dtype=index_dtype, dim=12, weighted=False)
        if len(case["indices"]) < 4:
            continue
        pad = int(case["indices"][3])
        k = KernelConfig(variant=variant, prefetch_distance=pd)
        for mode in MODES:
            res = kernels.run_cpu(k, mode=mode, padding_idx=pad, **case)
            assert_matches(res.output, case, mode, (variant, pd, dtype, mode), padding_idx=pad)
            assert res.bag_size is not None
            offs, idx = case["offsets"], case["indices"]
            ends = [*offs[1:].tolist(), len(idx)]
            want = [int((idx[a:b] != pad).sum()) for a, b in zip(offs.tolist(), ends, strict=True)]
            assert res.bag_size.tolist() == want


def test_padding_idx_is_checked() -> None:
    w = np.zeros((4, 8), np.float32)
    idx, offs = np.array([0, 1], np.int64), np.array([0], np.int64)
    with pytest.raises(InputError, match="padding_idx"):
        kernels.embedding_bag_cpu(KernelConfig(variant="warp"), w, idx, offs, padding_idx=1)
    with pytest.raises(InputError, match="padding_idx"):
        kernels.embedding_bag_cpu(KernelConfig(), w, idx, offs, padding_idx=4)
    assert kernels.embedding_bag_cpu(KernelConfig(), w, idx, offs, padding_idx=-4).shape == (1, 8)


def test_tbe_needs_rows_of_whole_vectors() -> None:
    w = np.zeros((4, 6), np.float32)
    with pytest.raises(InputError, match="multiple of 4"):
        kernels.embedding_bag_cpu(KernelConfig(variant="tbe"), w, np.array([0], np.int64), np.array([0], np.int64))
    assert kernels.tbe_vecs_for(128) == 1 and kernels.tbe_vecs_for(132) == 2 and kernels.tbe_vecs_for(4) == 1


def test_replicas_take_no_other_prefetch() -> None:
    for variant in ("micro24-combined", "tbe", "pytorch-current"):
        with pytest.raises(InputError, match="prefetch_distance == 0"):
            KernelConfig(variant=variant, prefetch_distance=2)


def test_arguments_are_checked() -> None:
    w = np.zeros((4, 3), np.float32)
    idx = np.array([0, 1], np.int64)
    k = KernelConfig()
    with pytest.raises(InputError, match="float32 or float16"):
        kernels.embedding_bag_cpu(k, w.astype(np.float64), idx, np.array([0]))
    with pytest.raises(InputError, match="2-D"):
        kernels.embedding_bag_cpu(k, w[0], idx, np.array([0]))
    with pytest.raises(InputError, match=r"offsets\[0\] == 0"):
        kernels.embedding_bag_cpu(k, w, idx, np.array([1]))
    with pytest.raises(InputError, match="non-decreasing"):
        kernels.embedding_bag_cpu(k, w, idx, np.array([0, 2, 1]))
    with pytest.raises(InputError, match="mode='sum'"):
        kernels.embedding_bag_cpu(k, w, idx, np.array([0]), mode="mean", per_sample_weights=np.ones(2, np.float32))
    with pytest.raises(InputError, match="valid choices"):
        kernels.embedding_bag_cpu(k, w, idx, np.array([0]), mode="max")
    with pytest.raises(InputError, match="int64 or int32"):
        kernels.embedding_bag_cpu(k, w, idx.astype(np.int16), np.array([0]))


# ---- pure launch parts (shared with the GPU launcher) ---------------------------------------------


def test_launch_geometry() -> None:
    g = launch_geometry(KernelConfig(block_size=256), 2048)
    assert g.grid == (1024, 1, 1) and g.block == (32, 8, 1)  # PyTorch 2.1: block (32, 8), grid 1024
    g = launch_geometry(KernelConfig(variant="warp", block_size=128), 2048, sm_count=108)
    assert g.grid == (512, 1, 1) and g.block == (128, 1, 1)  # one warp per bag
    g = launch_geometry(KernelConfig(variant="warp", block_size=128), 10**6, sm_count=108)
    assert g.grid == (108 * 16, 1, 1)  # sized to the GPU: 16 blocks of 128 fill 2048 threads
    with pytest.raises(InputError):
        launch_geometry(KernelConfig(variant="warp", block_size=1024), 5, max_threads_per_sm=512)
    for variant in ("micro24-combined", "pytorch-current"):  # PyTorch's launch, as the artifact keeps it
        g = launch_geometry(KernelConfig(variant=variant), 2048)
        assert g.grid == (1024, 1, 1) and g.block == (32, 8, 1)
    g = launch_geometry(KernelConfig(variant="tbe", block_size=512), 2048, sm_count=108)
    assert g.grid == (128, 1, 1) and g.block == (32, 16, 1)  # FBGEMM: dim3(32, 512 / 32), one bag per warp
    g = launch_geometry(KernelConfig(variant="tbe", block_size=256), 10**7, sm_count=108)
    assert g.grid == (64 * 108, 1, 1)  # FBGEMM caps the grid at 64 blocks per SM


def test_vector_width_keeps_every_row_aligned() -> None:
    assert vec_bytes_for(128, 4) == 16 and vec_bytes_for(36, 4) == 16 and vec_bytes_for(6, 4) == 8
    assert vec_bytes_for(13, 4) == 4 and vec_bytes_for(13, 2) == 2 and vec_bytes_for(36, 2) == 8
    for dim in range(1, 70):
        for itemsize in (2, 4):
            v = vec_bytes_for(dim, itemsize)
            assert (dim * itemsize) % v == 0 and v >= itemsize


def test_frequency_remap_is_a_permutation_hottest_first() -> None:
    rng = np.random.default_rng(5)
    idx = rng.zipf(1.3, 5000) % 200
    order, row_map = frequency_remap(idx, 200)
    assert sorted(order.tolist()) == list(range(200))
    assert (row_map[order] == np.arange(200)).all()
    counts = np.bincount(idx, minlength=200)[order]
    assert (np.diff(counts) <= 0).all()


def test_pinned_rows_respect_the_persisting_limit() -> None:
    k = KernelConfig(pinned_row_fraction=0.12)
    assert pinned_row_count(k, 500_000, 512, None) == 60_000
    assert pinned_row_count(k, 500_000, 512, 31_457_280) == 60_000  # 30.7 MB fits: 30 MiB holds 61,440 rows
    assert pinned_row_count(k.replace(pinned_row_fraction=0.5), 500_000, 512, 31_457_280) == 61_440
