"""The CuPy launcher on a real GPU: verified against the NumPy reference (and
torch.nn.functional.embedding_bag where torch is installed). Skipped, with the reason, where no
GPU is usable; the launcher's pure parts (argument checks, geometry) are tested on the CPU in
test_kernels_cpu.py, and here without a GPU where they need none.
"""

from __future__ import annotations

import numpy as np
import pytest
from _kernels_reference import assert_matches, random_case

import kernels
from perfmodel import InputError, KernelConfig

GPU_OK, GPU_WHY = kernels.gpu_available()
needs_gpu = pytest.mark.skipif(not GPU_OK, reason=GPU_WHY)


def test_argument_checks_need_no_gpu() -> None:
    from kernels._launch import check_lookup_args

    w = np.zeros((8, 4), np.float32)
    with pytest.raises(InputError, match="C-contiguous"):
        check_lookup_args(np.asfortranarray(np.zeros((8, 4), np.float32)), np.array([0]), np.array([0]), "sum", None)
    with pytest.raises(InputError, match="shape"):
        check_lookup_args(w, np.array([0, 1]), np.array([0]), "sum", np.ones(3, np.float32))
    with pytest.raises(InputError, match="dtype must equal"):
        check_lookup_args(w, np.array([0, 1]), np.array([0]), "sum", np.ones(2, np.float16))
    a = check_lookup_args(w, np.array([0, 1], np.int32), np.array([0, 1], np.int64), "mean", None)
    assert a.offsets.dtype == np.int32 and a.mode == 1 and (a.num_rows, a.dim, a.num_bags) == (8, 4, 2)


@needs_gpu
@pytest.mark.gpu
@pytest.mark.parametrize("variant", ["pytorch", "warp"])
@pytest.mark.parametrize(("pd", "kind"), [(0, "register"), (3, "register"), (16, "register"), (4, "l2-hint")])
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_gpu_matches_the_reference(variant: str, pd: int, kind: str, dtype: str) -> None:
    rng = np.random.default_rng()
    for index_dtype in ("int64", "int32"):
        for dim in (128, 36, 13):
            for mode, weighted in (("sum", False), ("sum", True), ("mean", False)):
                case = random_case(rng, dtype=dtype, index_dtype=index_dtype, dim=dim, weighted=weighted)
                k = KernelConfig(variant=variant, prefetch_distance=pd, prefetch_kind=kind, block_size=256,
                                 register_cap=int(rng.choice([0, 32, 42])))
                got = kernels.embedding_bag_gpu(k, mode=mode, **case)
                assert_matches(got, case, mode, (k, dtype, index_dtype, dim, mode, weighted))


@needs_gpu
@pytest.mark.gpu
@pytest.mark.parametrize("pin_method", ["access-policy-window", "evict-last-prefetch"])
def test_gpu_pinning_and_separate_check(pin_method: str) -> None:
    rng = np.random.default_rng(7)
    case = random_case(rng, dtype="float32", index_dtype="int64", dim=128, weighted=False)
    k = KernelConfig(variant="warp", pinned_row_fraction=0.2, pin_method=pin_method, bounds_check="separate")
    assert_matches(kernels.embedding_bag_gpu(k, **case), case, "sum", k)
    bad = case["indices"].copy()
    if len(bad) > 2:
        bad[2] = case["weight"].shape[0]
        with pytest.raises(IndexError, match="position 2"):
            kernels.embedding_bag_gpu(k, case["weight"], bad, case["offsets"])


@needs_gpu
@pytest.mark.gpu
def test_gpu_matches_torch_where_installed() -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA device")
    rng = np.random.default_rng(8)
    case = random_case(rng, dtype="float32", index_dtype="int64", dim=64, weighted=True)
    want = torch.nn.functional.embedding_bag(
        torch.from_numpy(case["indices"]).cuda(), torch.from_numpy(case["weight"]).cuda(),
        torch.from_numpy(case["offsets"]).cuda(), mode="sum",
        per_sample_weights=torch.from_numpy(case["per_sample_weights"]).cuda(),
    ).cpu().numpy()
    for variant in ("pytorch", "warp"):
        got = kernels.embedding_bag_gpu(KernelConfig(variant=variant), mode="sum", **case)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
