"""The CuPy launcher on a real GPU: verified against the NumPy reference (and
torch.nn.functional.embedding_bag where torch is installed). Skipped, with the reason, where no
GPU is usable. Without a GPU: the argument checks, the version checks, and the launcher on the
recording device (tests/_recording_device.py), whose launches run the same CUDA sources on the
CPU after checking every argument against the kernel's parameter list in the .cu file.
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


def test_nvrtc_and_toolchain_checks() -> None:
    assert kernels.nvrtc_problem(KernelConfig(register_cap=42), (12, 3)) is not None
    assert kernels.nvrtc_problem(KernelConfig(register_cap=42), (12, 4)) is None
    assert kernels.nvrtc_problem(KernelConfig(), (12, 0)) is None
    ok = kernels.toolchain_problems(driver_version=12040, runtime_version=12090, nvrtc_version=(12, 9))
    assert ok == []  # a newer minor than the driver's is fine within a major
    assert kernels.toolchain_problems(driver_version=13000, runtime_version=12090, nvrtc_version=(12, 9)) == []
    (nvrtc13,) = kernels.toolchain_problems(driver_version=12080, runtime_version=12090, nvrtc_version=(13, 5))
    assert "NVRTC 13.5" in nvrtc13 and "gpu-cuda12" in nvrtc13 and "13.5" in nvrtc13
    both = kernels.toolchain_problems(driver_version=12080, runtime_version=13000, nvrtc_version=(13, 0))
    assert len(both) == 2 and "cupy-cuda12x" in both[0]
    assert "no CUDA driver" in kernels.toolchain_problems(driver_version=0, runtime_version=12090,
                                                          nvrtc_version=(12, 9))[0]


def _stand_in() -> type:
    if kernels.cpu_compiler() is None:
        pytest.skip("the recording device runs the CUDA sources on the CPU: needs g++")
    from _recording_device import RecordingDevice

    return RecordingDevice


@pytest.mark.parametrize("variant", ["pytorch", "warp"])
@pytest.mark.parametrize(("dtype", "index_dtype"), [("float32", "int64"), ("float16", "int32")])
@pytest.mark.parametrize("extra", [{}, {"prefetch_distance": 3}, {"prefetch_distance": 2, "prefetch_kind": "l2-hint"},
                                   {"bounds_check": "separate", "pinned_row_fraction": 0.2,
                                    "pin_method": "evict-last-prefetch"},
                                   {"bounds_check": "none", "pinned_row_fraction": 0.2,
                                    "pin_method": "access-policy-window"}])
def test_launcher_arguments_match_the_kernel_signatures(variant: str, dtype: str, index_dtype: str,
                                                        extra: dict[str, object]) -> None:
    from kernels._launch import frequency_remap, hot_rows

    device = _stand_in()()
    rng = np.random.default_rng(3)
    case = random_case(rng, dtype=dtype, index_dtype=index_dtype, dim=36, weighted=True)
    k = KernelConfig(variant=variant, **extra)  # type: ignore[arg-type]
    want = kernels.embedding_bag_cpu(k, **case)
    launcher = kernels.EmbeddingBagLauncher(k, dim=36, dtype=dtype, index_dtype=index_dtype, device=device)
    w, idx = case["weight"], case["indices"]
    hot = None
    if k.pinned_row_fraction:
        if k.pin_method == "access-policy-window":
            order, row_map = frequency_remap(idx, w.shape[0])
            w, hot = w[order], row_map.astype(idx.dtype)
        else:
            hot = hot_rows(idx, w.shape[0]).astype(idx.dtype)
    prepared = launcher.prepare(device.upload(w), device.upload(idx), device.upload(case["offsets"]),
                                per_sample_weights=device.upload(case["per_sample_weights"]),
                                hot_rows=None if hot is None else device.upload(hot))
    for _ in range(2):  # the same buffers, called again, give the same answer
        got = device.to_host(prepared.run())
        np.testing.assert_array_equal(got, want)
    if variant == "pytorch":
        cpu = kernels.run_cpu(k, **case)
        np.testing.assert_array_equal(device.to_host(prepared.side_outputs[1]), cpu.bag_size)
    assert not [e for e in device.log if e[0] == "implicit-d2h"]


def test_prepare_refuses_bad_arguments_before_any_launch() -> None:
    device = _stand_in()()
    launcher = kernels.EmbeddingBagLauncher(KernelConfig(bounds_check="separate"), dim=8, device=device)
    w = device.upload(np.zeros((10, 8), np.float32))
    with pytest.raises(InputError, match="compiled for"):
        launcher.prepare(device.upload(np.zeros((10, 4), np.float32)), device.upload(np.array([1])),
                         device.upload(np.array([0])))
    with pytest.raises(InputError, match="offsets\\[0\\] == 0"):
        launcher.prepare(w, device.upload(np.array([1, 2])), device.upload(np.array([1])))
    with pytest.raises(InputError, match="hot_rows"):
        kernels.EmbeddingBagLauncher(KernelConfig(pinned_row_fraction=0.5), dim=8, device=device).prepare(
            w, device.upload(np.array([1, 2])), device.upload(np.array([0])))
    prepared = launcher.prepare(w, device.upload(np.array([1, 10, 3])), device.upload(np.array([0])))
    with pytest.raises(IndexError, match="index 10 at position 1"):
        prepared.run()
    assert [e for e in device.log if e[0] == "launch"] == [("launch", "recperf_check_indices")]  # no lookup ran
    k = KernelConfig()
    object.__setattr__(k, "variant", "not-a-variant")  # past the config's own check, as a new variant would be
    with pytest.raises(InputError, match="no GPU launcher for variant 'not-a-variant'"):
        kernels.EmbeddingBagLauncher(k, dim=8, device=device)


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
@pytest.mark.parametrize("variant", ["tbe", "pytorch-current", "micro24-combined"])
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_gpu_replicas_match_the_reference(variant: str, dtype: str) -> None:
    rng = np.random.default_rng()
    for index_dtype in ("int64", "int32"):
        for dim in (128, 36):  # tbe: a multiple of 4
            for mode, weighted in (("sum", False), ("sum", True), ("mean", False)):
                for bounds in ("inline", "separate"):
                    case = random_case(rng, dtype=dtype, index_dtype=index_dtype, dim=dim, weighted=weighted)
                    k = KernelConfig(variant=variant, block_size=256, bounds_check=bounds,
                                     register_cap=int(rng.choice([0, 42])),
                                     pin_method="evict-last-prefetch")
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


@needs_gpu
@pytest.mark.gpu
def test_gpu_prepared_call_repeats_into_the_same_buffers_and_the_window_resets() -> None:
    dev = kernels.CupyDevice()
    rng = np.random.default_rng(9)
    case = random_case(rng, dtype="float32", index_dtype="int64", dim=128, weighted=False)
    from kernels._launch import frequency_remap

    k = KernelConfig(variant="warp", bounds_check="separate", pinned_row_fraction=0.2, pin_method="access-policy-window")
    order, row_map = frequency_remap(case["indices"], case["weight"].shape[0])
    launcher = kernels.EmbeddingBagLauncher(k, dim=128, device=dev)
    prepared = launcher.prepare(dev.upload(case["weight"][order]), dev.upload(case["indices"]),
                                dev.upload(case["offsets"]), hot_rows=dev.upload(row_map))
    limit = dev.persisting_l2_limit()
    stream = dev.new_stream()  # the window is set on a created stream, never the legacy default one
    with prepared.window(stream):
        for _ in range(3):
            prepared.enqueue(stream)
        dev.synchronize(stream)
    assert prepared.bad_position(stream) is None and dev.persisting_l2_limit() == limit
    assert_matches(dev.to_host(prepared.output, stream), case, "sum", k)
