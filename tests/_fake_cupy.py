"""A stand-in for the parts of CuPy (and of cuda-bindings' runtime) that recperf calls, so the
real glue (``kernels.CupyDevice``, ``validation.backends.CupyBackend``, the launcher, the
runner) runs in CI with no GPU.

Arrays are NumPy memory; a ``RawModule`` kernel of the lookup (or one of its passes) runs on
the CPU from the same CUDA source (``tests/_recording_device.run_on_cpu``), other kernels (the
flush, the hold, the microbenchmarks) do nothing; events read ``time.perf_counter``. The device
answers as a CUDA 13 build does (``getDeviceProperties`` without ``clockRate``). The runtime
stand-in keeps cuda-bindings' own types (so the access-policy window's fields are the real
ones) and answers the calls with success, recording them.
"""

from __future__ import annotations

import sys
import time
import types
from typing import Any

import numpy as np
import pytest
from _recording_device import _SOURCES, run_on_cpu, shim_key

H200_PROPS = {"name": b"NVIDIA H200", "uuid": bytes(range(16)), "totalGlobalMem": 150 * 2**30, "major": 9, "minor": 0,
              "multiProcessorCount": 132, "maxThreadsPerMultiProcessor": 2048, "l2CacheSize": 60 * 2**20,
              "persistingL2CacheMaxSize": 45 * 2**20, "accessPolicyMaxWindowSize": 128 * 2**20,
              "sharedMemPerMultiprocessor": 233472}
H200_ATTRIBUTES = {"ClockRate": 1980000, "MemoryClockRate": 2619000, "MultiProcessorCount": 132,
                   "MaxThreadsPerMultiProcessor": 2048}


class FakeCupyArray(np.ndarray):
    """A CuPy array on NumPy memory: ``.get()`` and ``.data.ptr`` as CuPy has them."""

    def get(self, stream: Any = None) -> np.ndarray:
        return np.array(self.view(np.ndarray), copy=True)

    def set(self, host: np.ndarray) -> None:
        self.view(np.ndarray)[...] = host

    @property
    def data(self) -> Any:  # type: ignore[override]
        return types.SimpleNamespace(ptr=self.ctypes.data)


def _dev(a: Any) -> FakeCupyArray:
    return np.array(a, copy=True, order="C").view(FakeCupyArray)


class FakeRawKernel:
    def __init__(self, name: str, options: tuple[str, ...], launches: list[str]) -> None:
        self.name, self.key, self.launches = name, shim_key(options), launches
        self.kernel = types.SimpleNamespace(ptr=1)
        self.max_dynamic_shared_size_bytes = 0

    def __call__(self, grid: tuple[int, ...], block: tuple[int, ...], args: tuple[Any, ...], *, shared_mem: int = 0,
                 stream: Any = None) -> None:
        self.launches.append(self.name)
        for a in args:
            assert isinstance(a, (FakeCupyArray, np.generic)), f"{self.name}: argument {type(a)}"
        if self.name in _SOURCES:
            run_on_cpu(self.name, self.key, grid, block, args)


class FakeStream:
    ptr = 0

    def __init__(self, non_blocking: bool = False) -> None:
        self.non_blocking = non_blocking

    def synchronize(self) -> None:
        pass

    def __enter__(self) -> FakeStream:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class FakeEvent:
    t = 0.0

    def record(self, stream: Any = None) -> None:
        self.t = time.perf_counter()

    def synchronize(self) -> None:
        pass


def install(monkeypatch: pytest.MonkeyPatch, *, nvrtc: tuple[int, int] = (13, 0)) -> dict[str, list[Any]]:
    """Put the stand-in in ``sys.modules`` (``cupy`` and friends; ``kernels._gpu._cudart``);
    returns the recorded kernel launches and runtime calls."""
    record: dict[str, list[Any]] = {"launches": [], "runtime": []}
    stream = FakeStream()

    class Device:
        def __init__(self, i: int = 0) -> None:
            self.id = i
            self.attributes = dict(H200_ATTRIBUTES)

        def use(self) -> None:
            pass

        def synchronize(self) -> None:
            pass

    class RawModule:
        def __init__(self, code: str, options: tuple[str, ...] = ()) -> None:
            self.options = tuple(options)

        def get_function(self, name: str) -> FakeRawKernel:
            return FakeRawKernel(name, self.options, record["launches"])

    runtime = types.SimpleNamespace(getDeviceProperties=lambda i: dict(H200_PROPS), driverGetVersion=lambda: 13000,
                                    runtimeGetVersion=lambda: 13000)
    nvrtc_mod = types.ModuleType("cupy.cuda.nvrtc")
    nvrtc_mod.getVersion = lambda: nvrtc  # type: ignore[attr-defined]
    cuda = types.ModuleType("cupy.cuda")
    cuda.Device = Device  # type: ignore[attr-defined]
    cuda.runtime = runtime  # type: ignore[attr-defined]
    cuda.nvrtc = nvrtc_mod  # type: ignore[attr-defined]
    cuda.driver = types.SimpleNamespace(occupancyMaxActiveBlocksPerMultiprocessor=lambda p, b, s: 2)  # type: ignore[attr-defined]
    cuda.get_current_stream = lambda: stream  # type: ignore[attr-defined]
    cuda.Event = FakeEvent  # type: ignore[attr-defined]
    cuda.Stream = FakeStream  # type: ignore[attr-defined]
    cuda.get_elapsed_time = lambda a, b: (b.t - a.t) * 1e3  # type: ignore[attr-defined]
    cupy = types.ModuleType("cupy")
    cupy.cuda = cuda  # type: ignore[attr-defined]
    cupy.ndarray = FakeCupyArray  # type: ignore[attr-defined]
    cupy.RawModule = RawModule  # type: ignore[attr-defined]
    cupy.asarray = lambda a: a if isinstance(a, FakeCupyArray) else _dev(a)  # type: ignore[attr-defined]
    cupy.ascontiguousarray = (lambda a: a if isinstance(a, FakeCupyArray) and a.flags.c_contiguous  # type: ignore[attr-defined]
                              else _dev(a))
    cupy.empty = lambda shape, dtype: _dev(np.empty(shape, dtype))  # type: ignore[attr-defined]
    cupy.zeros = lambda shape, dtype: _dev(np.zeros(shape, dtype))  # type: ignore[attr-defined]
    cupy.full = lambda shape, value, dtype: _dev(np.full(shape, value, dtype))  # type: ignore[attr-defined]
    cupy.ones = lambda shape, dtype: _dev(np.ones(shape, dtype))  # type: ignore[attr-defined]
    for t in ("uint64", "int64", "float64", "float32"):
        setattr(cupy, t, getattr(np, t))
    cupy.__version__ = "14.2.0-stand-in"  # type: ignore[attr-defined]
    for name, mod in (("cupy", cupy), ("cupy.cuda", cuda), ("cupy.cuda.nvrtc", nvrtc_mod)):
        monkeypatch.setitem(sys.modules, name, mod)

    from cuda.bindings import runtime as real

    def call(name: str, *result: Any) -> Any:
        def f(*args: Any) -> Any:
            record["runtime"].append((name, args))
            return (real.cudaError_t.cudaSuccess, *result)
        return f

    cudart = types.SimpleNamespace(
        cudaError_t=real.cudaError_t, cudaLimit=real.cudaLimit, cudaStreamAttrValue=real.cudaStreamAttrValue,
        cudaAccessProperty=real.cudaAccessProperty, cudaStream_t=real.cudaStream_t,
        cudaStreamAttributeAccessPolicyWindow=real.cudaStreamAttributeAccessPolicyWindow,
        cudaDeviceGetLimit=call("cudaDeviceGetLimit", 0), cudaDeviceSetLimit=call("cudaDeviceSetLimit"),
        cudaStreamSetAttribute=call("cudaStreamSetAttribute"),
        cudaCtxResetPersistingL2Cache=call("cudaCtxResetPersistingL2Cache"))
    import kernels._gpu

    monkeypatch.setattr(kernels._gpu, "_cudart", lambda: cudart)
    return record
