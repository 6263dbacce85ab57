"""A recording stand-in for the GPU device (``kernels.CupyDevice`` / ``validation.backends.CupyBackend``).

Every operation is appended, in order, to ``device.log`` as ``(kind, detail)``: ``h2d``,
``d2h``, ``alloc``, ``compile``, ``launch`` (detail: the kernel's entry name), ``record``
(``start``/``stop``, the timer's two events in creation order), ``wait``, ``sync``, ``clocks``,
the persisting-L2 calls, and ``implicit-d2h`` whenever host code pulls a value out of a
device array without going through ``to_host`` (what CuPy would do silently with a
synchronizing copy).

Kernels run on the CPU: a launch calls the same CUDA source compiled for the host
(``kernels._cpu``'s shim library, one per compile key) with the launch's own arguments, after
checking each argument against the kernel's parameter list parsed from the ``.cu`` source
(pointer, 8-byte integer, 4-byte int, index type), as CuPy would pass them byte for byte.
"""

from __future__ import annotations

import ctypes
import re
import types
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kernels._compile import KERNEL_DIR
from kernels._cpu import _library, _ShimKey

#: lookup entries and passes: the only kernels a timed region may launch
LOOKUP_KERNELS = {"recperf_embedding_bag_pytorch", "recperf_embedding_bag_warp", "recperf_embedding_bag_micro24",
                  "recperf_embedding_bag_tbe",
                  "recperf_check_indices", "recperf_pin_rows_evict_last", "recperf_remap_indices", "recperf_micro24_pin_L2"}
_SOURCES = {"recperf_embedding_bag_pytorch": "embedding_bag_pytorch.cu", "recperf_embedding_bag_warp": "embedding_bag_warp.cu",
            "recperf_embedding_bag_micro24": "embedding_bag_micro24.cu", "recperf_embedding_bag_tbe": "embedding_bag_tbe.cu", "recperf_micro24_pin_L2": "embedding_bag_micro24.cu",
            "recperf_check_indices": "embedding_bag_aux.cu", "recperf_pin_rows_evict_last": "embedding_bag_aux.cu",
            "recperf_remap_indices": "embedding_bag_aux.cu"}


def kernel_parameters(entry: str) -> list[str]:
    """The parameter types of ``entry`` as its ``.cu`` source declares them."""
    text = (KERNEL_DIR / _SOURCES[entry]).read_text().replace("\\\n", " ")
    m = re.search(re.escape(entry) + r"(?:##SUFFIX)?\s*\(", text)
    assert m, f"{entry} not found in its source"
    depth, i = 1, m.end()
    while depth:
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        i += 1
    params = text[m.end():i - 1].split(",")
    out = []
    for prm in params:
        words = prm.replace("__restrict__", "").replace("const", "").split()
        ptr = "*" in prm
        base = " ".join(w.strip("*") for w in words[:-1] if w.strip("*")) or words[0].strip("*")
        out.append(("ptr:" if ptr else "") + base)
    return out


class FakeDeviceArray(np.ndarray):
    """A device array: NumPy memory, but pulling a value to the host is logged as implicit."""

    log: list[tuple[str, str]] | None = None

    def __array_finalize__(self, obj: Any) -> None:
        self.log = getattr(obj, "log", None)

    def _implicit(self, what: str) -> None:
        if self.log is not None:
            self.log.append(("implicit-d2h", what))

    def __int__(self) -> int:
        self._implicit("int")
        return int(self.view(np.ndarray))

    def __float__(self) -> float:
        self._implicit("float")
        return float(self.view(np.ndarray))

    def __bool__(self) -> bool:
        self._implicit("bool")
        return bool(self.view(np.ndarray))

    def __index__(self) -> int:
        self._implicit("index")
        return int(self.view(np.ndarray))

    def item(self, *args: Any) -> Any:
        self._implicit("item")
        return self.view(np.ndarray).item(*args)

    def tolist(self) -> Any:
        self._implicit("tolist")
        return self.view(np.ndarray).tolist()

    def __getitem__(self, key: Any) -> Any:
        out = super().__getitem__(key)
        if not isinstance(out, np.ndarray):
            self._implicit("element")
        return out

    def __array_wrap__(self, arr: Any, context: Any = None, return_scalar: bool = False) -> Any:
        # keep reductions (any(), max()) on the device, as 0-d arrays: converting one is logged
        return np.asarray(arr).view(FakeDeviceArray).__setlog__(self.log)

    def __setlog__(self, log: Any) -> FakeDeviceArray:
        self.log = log
        return self


@dataclass
class FakeFunction:
    name: str
    key: _ShimKey
    index_dtype: np.dtype[Any]
    scalar_dtype: np.dtype[Any]


@dataclass
class FakeEvent:
    name: str
    launches_at_record: int = 0


@dataclass
class RecordingDevice:
    """The device and backend interface on the CPU, recording every call in order."""

    nvrtc: tuple[int, int] = (12, 9)
    sm_count: int = 4
    max_threads_per_sm: int = 2048
    l2_size_bytes: int = 1 << 20
    persisting_l2_max_bytes: int = 768 << 10
    name: str = "NVIDIA H100 80GB HBM3"
    #: entry names whose output is corrupted (a broken kernel, to be caught by verification)
    corrupt: set[str] = field(default_factory=set)
    #: raise this message from every launch after the first ``fail_after`` launches (None: never)
    fail_message: str | None = None
    fail_after: int = 0
    #: compile options (a define like "-DRECPERF_REGISTER_CAP=42") that make compile raise
    compile_error_on: str | None = None
    log: list[tuple[str, str]] = field(default_factory=list)
    launches: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)
    persisting_limit: int = 0
    seconds_per_launch: float = 1e-4

    def __post_init__(self) -> None:
        self.xp = types.SimpleNamespace(ascontiguousarray=self._contiguous, ndarray=FakeDeviceArray)
        self._events = 0

    # ---- facts ---------------------------------------------------------------------------------
    def nvrtc_version(self) -> tuple[int, int]:
        return self.nvrtc

    def driver_version(self) -> int:
        return 12040

    def runtime_version(self) -> int:
        return 12090

    def gpu_id(self) -> str:
        return "h100-sxm"

    def environment(self) -> dict[str, Any]:
        return {"device_name": self.name, "device_uuid": "GPU-recording-stand-in", "gpu_id": "h100-sxm",
                "note": "test stand-in: the CUDA sources run on the CPU"}

    def clocks(self) -> dict[str, Any]:
        self.log.append(("clocks", ""))
        return {"source": "stand-in", "sm_clock_mhz": 1980}

    # ---- memory --------------------------------------------------------------------------------
    def _device(self, a: np.ndarray) -> FakeDeviceArray:
        out = np.array(a, copy=True, order="C").view(FakeDeviceArray)
        out.log = self.log
        return out

    def _contiguous(self, a: Any) -> Any:
        if isinstance(a, FakeDeviceArray) and a.flags.c_contiguous:
            return a
        self.log.append(("alloc", "contiguous copy"))
        return self._device(np.asarray(a.view(np.ndarray) if isinstance(a, np.ndarray) else a))

    def upload(self, host: np.ndarray) -> FakeDeviceArray:
        self.log.append(("h2d", str(host.shape)))
        return self._device(np.asarray(host))

    def to_host(self, array: Any, stream: Any = None) -> np.ndarray:
        self.log.append(("d2h", str(array.shape)))
        return np.array(array.view(np.ndarray), copy=True)

    def empty(self, shape: tuple[int, ...], dtype: Any) -> FakeDeviceArray:
        self.log.append(("alloc", str(shape)))
        return self._device(np.full(shape, 0x5A, dtype=np.uint8).view(dtype) if np.dtype(dtype).itemsize == 1
                            else np.zeros(shape, dtype) + np.array(7, dtype=dtype))

    def zeros(self, shape: tuple[int, ...], dtype: Any) -> FakeDeviceArray:
        self.log.append(("alloc", str(shape)))
        return self._device(np.zeros(shape, dtype))

    def full(self, shape: tuple[int, ...], value: Any, dtype: Any) -> FakeDeviceArray:
        self.log.append(("alloc", str(shape)))
        return self._device(np.full(shape, value, dtype))

    def padded(self, array: Any, extra: int) -> FakeDeviceArray:
        self.log.append(("alloc", f"padded +{extra}"))
        return self._device(np.concatenate([array.view(np.ndarray), np.zeros(extra, array.dtype)]))

    def take_rows(self, array: Any, order: Any) -> FakeDeviceArray:
        self.log.append(("alloc", "take_rows"))
        return self._device(array.view(np.ndarray)[order.view(np.ndarray)])

    def pointer(self, array: Any) -> int:
        return int(array.ctypes.data)

    # ---- kernels -----------------------------------------------------------------------------------
    def compile(self, code: str, options: Sequence[str], names: Sequence[str]) -> dict[str, Any]:
        self.log.append(("compile", ",".join(names)))
        if self.compile_error_on and self.compile_error_on in options:
            raise _CompileException(f"nvrtc: error: invalid option in {self.compile_error_on}")
        key = shim_key(options)
        idx = np.dtype(np.int32 if key.index_dtype == "int32" else np.int64)
        sca = np.dtype(np.float16 if key.dtype == "float16" else np.float32)
        return {n: FakeFunction(n, key, idx, sca) for n in names}

    def _check_args(self, fn: FakeFunction, args: tuple[Any, ...]) -> None:
        if fn.name not in _SOURCES:
            return  # the instruments (flush, hold) are not lookup kernels
        params = kernel_parameters(fn.name)
        assert len(params) == len(args), f"{fn.name}: {len(args)} arguments for {len(params)} parameters {params}"
        scalar_of = {"recperf_i64": np.int64, "long long": np.int64, "int": np.int32,
                     "index_t": fn.index_dtype.type}
        for i, (prm, a) in enumerate(zip(params, args, strict=True)):
            if prm.startswith("ptr:"):
                if isinstance(a, np.uint64) and int(a) == 0:
                    continue  # a null pointer, 8 bytes
                assert isinstance(a, FakeDeviceArray), f"{fn.name} argument {i} ({prm}) must be a device array: {type(a)}"
                assert a.flags.c_contiguous, f"{fn.name} argument {i} is not contiguous"
                want = {"ptr:index_t": fn.index_dtype, "ptr:scalar_t": fn.scalar_dtype,
                        "ptr:recperf_u64": np.dtype(np.uint64)}.get(prm)
                assert want is None or a.dtype == want, f"{fn.name} argument {i} ({prm}): dtype {a.dtype}, want {want}"
            else:
                assert isinstance(a, scalar_of[prm]), f"{fn.name} argument {i} ({prm}) must be {scalar_of[prm]}: {type(a)}"

    def launch(self, function: Any, grid: tuple[int, ...], block: tuple[int, ...], args: tuple[Any, ...], *,
               stream: Any = None, shared_mem: int = 0) -> None:
        self.log.append(("launch", function.name))
        self.launches.append((function.name, args))
        if self.fail_message is not None and len(self.launches) > self.fail_after:
            raise RuntimeError(self.fail_message)
        self._check_args(function, args)
        if function.name not in _SOURCES:
            return
        run_on_cpu(function.name, function.key, grid, block, args)
        if function.name in self.corrupt:
            out = args[3].view(np.ndarray)
            out += 1.0

    # ---- streams and events -----------------------------------------------------------------
    def current_stream(self) -> str:
        return "stream"

    def new_stream(self) -> str:
        self.log.append(("new-stream", ""))
        return "stream"

    def synchronize(self, stream: Any = None) -> None:
        self.log.append(("sync", ""))

    def event(self) -> FakeEvent:
        self._events += 1
        return FakeEvent("start" if self._events % 2 else "stop")

    def record(self, event: FakeEvent, stream: Any = None) -> None:
        self.log.append(("record", event.name))
        event.launches_at_record = sum(1 for k, n in self.log if k == "launch" and n in LOOKUP_KERNELS)

    def wait_event(self, event: FakeEvent) -> None:
        self.log.append(("wait", event.name))

    def elapsed_s(self, start: FakeEvent, stop: FakeEvent) -> float:
        return self.seconds_per_launch * (stop.launches_at_record - start.launches_at_record)

    # ---- the persisting L2, the flush, the hold --------------------------------------------
    def persisting_l2_limit(self) -> int:
        return self.persisting_limit

    def set_persisting_l2_limit(self, nbytes: int) -> None:
        self.log.append(("set-persisting-limit", str(nbytes)))
        self.persisting_limit = int(nbytes)

    def set_access_policy_window(self, stream: Any, base_ptr: int, num_bytes: int, hit_ratio: float) -> None:
        self.log.append(("window", str(num_bytes)))

    def reset_persisting_l2(self) -> None:
        self.log.append(("reset-persisting", ""))

    def flush_l2(self, stream: Any = None) -> None:
        self.launch(FakeFunction("recperf_flush_read", _ShimKey(dtype="float32", index_dtype="int64", ring_distance=0,
                                                                l2_hint=False, bounds_inline=True, vec_bytes=16),
                                 np.dtype(np.int64), np.dtype(np.float32)), (1,), (1,), ())

    def hold(self, stream: Any, seconds: float) -> None:
        self.launch(FakeFunction("recperf_hold", _ShimKey(dtype="float32", index_dtype="int64", ring_distance=0,
                                                          l2_hint=False, bounds_inline=True, vec_bytes=16),
                                 np.dtype(np.int64), np.dtype(np.float32)), (1,), (1,), (np.int64(seconds * 1e9),))


def shim_key(options: Sequence[str]) -> _ShimKey:
    """The CPU shim's build key for a compilation's ``-D`` options."""
    d = dict(o[2:].split("=", 1) for o in options if o.startswith("-D") and "=" in o)
    return _ShimKey(dtype="float16" if d.get("RECPERF_DTYPE_F16") == "1" else "float32",
                    index_dtype="int32" if d.get("RECPERF_INDEX_I32") == "1" else "int64",
                    ring_distance=int(d.get("RECPERF_PREFETCH_DISTANCE", 0)),
                    l2_hint=d.get("RECPERF_PREFETCH_L2HINT") == "1",
                    bounds_inline=d.get("RECPERF_BOUNDS_INLINE", "1") == "1",
                    vec_bytes=int(d.get("RECPERF_VEC_BYTES", 16)), preloop=d.get("RECPERF_BOUNDS_PRELOOP") == "1",
                    tbe_vecs=int(d.get("RECPERF_TBE_MAX_VECS", 1)))


def run_on_cpu(name: str, key: _ShimKey, grid: Sequence[int], block: Sequence[int], args: Sequence[Any]) -> None:
    """One launch of a lookup kernel or pass, run by the CPU shim with the launch's arguments
    (arrays by address, a null pointer as np.uint64(0), scalars by value)."""
    lib = _library(key)
    c = [None if isinstance(a, np.uint64) and int(a) == 0 and not isinstance(a, np.ndarray)
         else (a.ctypes.data if isinstance(a, np.ndarray) else int(a)) for a in args]
    first_bad, failed = ctypes.c_longlong(-1), ctypes.c_char_p()
    if name == "recperf_embedding_bag_pytorch":
        status = lib.recperf_cpu_pytorch(grid[0], block[0], block[1], *c, ctypes.byref(first_bad), ctypes.byref(failed))
    elif name == "recperf_embedding_bag_micro24":
        status = lib.recperf_cpu_micro24(grid[0], block[0], block[1], *c, ctypes.byref(first_bad), ctypes.byref(failed))
    elif name == "recperf_embedding_bag_tbe":
        status = lib.recperf_cpu_tbe(grid[0], block[0], block[1], *c, ctypes.byref(first_bad), ctypes.byref(failed))
    elif name == "recperf_micro24_pin_L2":
        status = lib.recperf_cpu_micro24_pin(grid[0], block[0], block[1], *c)
    elif name == "recperf_embedding_bag_warp":
        status = lib.recperf_cpu_warp(grid[0], block[0], *c, ctypes.byref(first_bad), ctypes.byref(failed))
    elif name == "recperf_check_indices":
        status = lib.recperf_cpu_check_indices(grid[0], block[0], *c)
    elif name == "recperf_remap_indices":
        status = lib.recperf_cpu_remap_indices(grid[0], block[0], *c)
    elif name == "recperf_pin_rows_evict_last":
        status = lib.recperf_cpu_pin_rows(grid[0], block[0], *c)
    else:
        raise AssertionError(f"no CPU version of kernel {name!r}")
    if status or first_bad.value >= 0:
        raise RuntimeError("CUDARuntimeError: cudaErrorAssert: device-side assert triggered")


class _CompileException(Exception):
    """Like CuPy's CompileException: an Exception, not a RuntimeError."""


def timed_regions(log: Sequence[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    """The entries strictly between each start and stop record."""
    regions: list[list[tuple[str, str]]] = []
    current: list[tuple[str, str]] | None = None
    for entry in log:
        if entry == ("record", "start"):
            assert current is None, "a start event inside a timed region"
            current = []
        elif entry == ("record", "stop"):
            assert current is not None, "a stop event without a start"
            regions.append(current)
            current = None
        elif current is not None:
            current.append(entry)
    assert current is None, "a timed region never stopped"
    return regions


def source_path(entry: str) -> Path:
    return KERNEL_DIR / _SOURCES[entry]
