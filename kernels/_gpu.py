"""Launch the lookup kernels on a GPU through CuPy (``RawModule``, compiled by NVRTC).

Prepare once, launch many. :meth:`EmbeddingBagLauncher.prepare` checks every argument (dtypes,
shapes, contiguity, alignment, the offsets' values), allocates every buffer a call writes (the
output, the pytorch variant's side outputs, the validation pass's result, the remapped
indices) and builds the call's launch list; :meth:`PreparedLookup.enqueue` then only launches
kernels, so a timer can put it alone between two events. The launch list of one lookup:

1. ``bounds_check="separate"``: the validation pass (``recperf_check_indices``), which records
   the first bad position on the device; :meth:`PreparedLookup.bad_position` reads it back
   (after the call, or after a timed region's stop event) and :meth:`PreparedLookup.run`
   raises it as IndexError;
2. pinning, when ``pinned_row_fraction > 0``:
   ``evict-last-prefetch``: the seed artifact's pass (``recperf_pin_rows_evict_last``) over the
   hot rows; ``access-policy-window``: the table is stored frequency-ordered (see
   :func:`kernels.frequency_remap`) and ``recperf_remap_indices`` rewrites the indices; the
   persisting window over the hot range is a stream attribute, set from the host around the
   calls (:meth:`PreparedLookup.window`: ``cudaDeviceSetLimit(cudaLimitPersistingL2CacheSize)``
   and ``cudaStreamSetAttribute`` through cuda-python, reset afterwards);
3. the lookup kernel, whose arguments each variant builds (:data:`LOOKUP_ARGS`).

Every device operation goes through a device object (:class:`CupyDevice` here; a recording
stand-in in the tests), so what happens between a timer's events can be checked.
``bounds_check="inline"`` is a device-side assert, as in PyTorch: an out-of-range index stops
the kernel and leaves the CUDA context unusable. CuPy and cuda-python are imported inside the
methods (no GPU library at package import).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from kernels._compile import KERNEL_DIR, SOURCES, CompileKey, compile_key
from kernels._launch import (
    MICRO24_PIN_BLOCK,
    MICRO24_PIN_ENTRY,
    PYTORCH_GRID,
    LookupArgs,
    check_lookup_args,
    first_out_of_range,
    index_error,
    launch_geometry,
    pinned_row_count,
    tbe_vecs_for,
    vec_bytes_for,
)
from perfmodel import InputError, KernelConfig

__all__ = [
    "LOOKUP_ARGS",
    "MAXNREG_MIN_NVRTC",
    "CupyDevice",
    "EmbeddingBagLauncher",
    "KernelLaunch",
    "PreparedLookup",
    "embedding_bag_gpu",
    "gpu_available",
    "nvrtc_problem",
    "persisting_l2_window",
    "toolchain_problems",
]

_AUX_BLOCK = 256
#: a null device pointer as a kernel argument (8 bytes, like a pointer)
_NULL = np.uint64(0)
_NO_BAD = int(np.iinfo(np.uint64).max)
_AUX_ENTRIES = ("recperf_check_indices", "recperf_pin_rows_evict_last", "recperf_remap_indices")
_AUX_DEFINES = ("-DRECPERF_DTYPE_F16=", "-DRECPERF_INDEX_I32=")
#: the oldest NVRTC that accepts ``__maxnreg__``, which the register cap compiles to (FACTS.md
#: section 6: NVRTC 12.3 rejects it, 12.4 accepts it)
MAXNREG_MIN_NVRTC = (12, 4)


def gpu_available() -> tuple[bool, str]:
    """(True, device name) where CuPy can use GPU 0, else (False, the reason)."""
    try:
        import cupy

        attrs = cupy.cuda.Device(0).attributes
        name = cupy.cuda.runtime.getDeviceProperties(0)["name"]
        return bool(attrs), name.decode() if isinstance(name, bytes) else str(name)
    except Exception as exc:  # no cupy, no driver, no device
        return False, f"no usable CUDA GPU ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"


# ---- versions: pure checks ------------------------------------------------------------------


def _major_minor(version: int) -> tuple[int, int]:
    """CUDA's integer version (12040) as (12, 4)."""
    return version // 1000, (version % 1000) // 10


def nvrtc_problem(kernel: KernelConfig, nvrtc_version: Sequence[int]) -> str | None:
    """Why this NVRTC cannot compile ``kernel`` (None when it can): a register cap is
    ``__maxnreg__``, which needs NVRTC 12.4 or newer."""
    have = (int(nvrtc_version[0]), int(nvrtc_version[1]))
    if kernel.register_cap and have < MAXNREG_MIN_NVRTC:
        return (f"register_cap={kernel.register_cap} compiles to __maxnreg__, which needs NVRTC "
                f"{MAXNREG_MIN_NVRTC[0]}.{MAXNREG_MIN_NVRTC[1]} or newer, but CuPy compiles with NVRTC {have[0]}.{have[1]}")
    return None


def toolchain_problems(*, driver_version: int, runtime_version: int, nvrtc_version: Sequence[int]) -> list[str]:
    """What stops this CuPy build from running our kernels on this driver (empty when nothing).

    ``driver_version``/``runtime_version`` as CUDA reports them (12040 = 12.4; driver 0 = none);
    ``nvrtc_version`` the (major, minor) CuPy loaded. A CUDA 13 NVRTC's cubins need a CUDA 13
    driver (FACTS.md section 5), and CuPy's runtime must not be newer than the driver's major.
    """
    problems: list[str] = []
    if driver_version <= 0:
        return ["no CUDA driver answers (cudaDriverGetVersion gives 0): install the NVIDIA driver"]
    drv = _major_minor(driver_version)
    rt = _major_minor(runtime_version)
    nv = (int(nvrtc_version[0]), int(nvrtc_version[1]))
    if rt[0] > drv[0]:
        problems.append(f"CuPy is built for CUDA {rt[0]}.{rt[1]} but the driver supports CUDA {drv[0]}.{drv[1]}: "
                        f"install recperf[gpu-cuda{drv[0]}] (cupy-cuda{drv[0]}x)")
    if nv[0] > drv[0]:
        problems.append(f"CuPy compiles with NVRTC {nv[0]}.{nv[1]} but the driver supports CUDA {drv[0]}.{drv[1]}, "
                        f"so the compiled kernels would not load: use an environment without NVRTC {nv[0]} "
                        f"(the compile extra pins nvidia-cuda-nvrtc 13.5) and with recperf[gpu-cuda{drv[0]}]")
    if nv[0] < 12:
        problems.append(f"CuPy compiles with NVRTC {nv[0]}.{nv[1]}; the kernels need NVRTC 12 or newer")
    return problems


# ---- the device ------------------------------------------------------------------------------


class CupyDevice:
    """The device operations of one CUDA GPU through CuPy (cuda-python for the persisting-L2
    controls): every allocation, copy, compilation, launch, stream attribute and event that the
    launcher and the timing make goes through one of these methods.

    Creating it imports CuPy and makes ``device`` current.
    """

    def __init__(self, device: int = 0) -> None:
        import cupy

        self.cp: Any = cupy
        self.device_id = int(device)
        self.device: Any = cupy.cuda.Device(self.device_id)
        self.device.use()
        self.props: dict[str, Any] = dict(cupy.cuda.runtime.getDeviceProperties(self.device_id))
        self.attributes: dict[str, int] = dict(self.device.attributes)

    # ---- facts -----------------------------------------------------------------------------
    @property
    def xp(self) -> Any:
        """The array module of this device's arrays (CuPy)."""
        return self.cp

    @property
    def sm_count(self) -> int:
        return int(self.props["multiProcessorCount"])

    @property
    def max_threads_per_sm(self) -> int:
        return int(self.props["maxThreadsPerMultiProcessor"])

    @property
    def l2_size_bytes(self) -> int:
        return int(self.props.get("l2CacheSize", 0))

    @property
    def persisting_l2_max_bytes(self) -> int:
        return int(self.props.get("persistingL2CacheMaxSize", 0))

    def nvrtc_version(self) -> tuple[int, int]:
        """(major, minor) of the NVRTC CuPy compiles with."""
        from cupy.cuda import nvrtc

        major, minor = nvrtc.getVersion()
        return int(major), int(minor)

    def driver_version(self) -> int:
        return int(self.cp.cuda.runtime.driverGetVersion())

    def runtime_version(self) -> int:
        return int(self.cp.cuda.runtime.runtimeGetVersion())

    # ---- memory ------------------------------------------------------------------------------
    def upload(self, host: np.ndarray) -> Any:
        """A device copy of a host array (synchronous)."""
        return self.cp.asarray(np.ascontiguousarray(host))

    def to_host(self, array: Any, stream: Any = None) -> np.ndarray:
        """A host copy of a device array; waits for the stream's work before it."""
        return np.asarray(array.get(stream=stream))

    def empty(self, shape: tuple[int, ...], dtype: Any) -> Any:
        return self.cp.empty(shape, dtype=dtype)

    def zeros(self, shape: tuple[int, ...], dtype: Any) -> Any:
        return self.cp.zeros(shape, dtype=dtype)

    def full(self, shape: tuple[int, ...], value: Any, dtype: Any) -> Any:
        return self.cp.full(shape, value, dtype=dtype)

    def padded(self, array: Any, extra: int) -> Any:
        """A new 1-D device array: ``array`` followed by ``extra`` zeros (a device-to-device copy)."""
        out = self.cp.zeros((int(array.shape[0]) + extra,), array.dtype)
        out[: array.shape[0]] = array
        return out

    def take_rows(self, array: Any, order: Any) -> Any:
        """``array[order]`` as a new contiguous array (the frequency-ordered table)."""
        return self.cp.ascontiguousarray(array[order])

    def pointer(self, array: Any) -> int:
        return int(array.data.ptr)

    # ---- kernels -------------------------------------------------------------------------------
    def compile(self, code: str, options: Sequence[str], names: Sequence[str]) -> dict[str, Any]:
        """Compile ``code`` with NVRTC (through CuPy) and return its entries ``names``; a failure
        raises here (CuPy's CompileException), not at the first launch."""
        module = self.cp.RawModule(code=code, options=tuple(options))
        return {n: module.get_function(n) for n in names}

    def launch(self, function: Any, grid: tuple[int, ...], block: tuple[int, ...], args: tuple[Any, ...], *,
               stream: Any = None, shared_mem: int = 0) -> None:
        """Launch after checking what CuPy does not: contiguous arrays, scalars as NumPy types."""
        for i, a in enumerate(args):
            if isinstance(a, self.cp.ndarray):
                if not a.flags.c_contiguous:
                    raise InputError(f"kernel argument {i} must be C-contiguous, but it is not")
            elif not isinstance(a, np.generic):
                raise InputError(f"kernel argument {i} must be a CuPy array or a NumPy scalar, but got {type(a).__name__}")
        if shared_mem > 48 * 1024:
            function.max_dynamic_shared_size_bytes = int(shared_mem)
        function(tuple(grid), tuple(block), tuple(args), shared_mem=int(shared_mem), stream=stream)

    # ---- streams and events ----------------------------------------------------------------
    def current_stream(self) -> Any:
        return self.cp.cuda.get_current_stream()

    def new_stream(self) -> Any:
        """A created stream (not the legacy default stream: the access-policy window is set on
        it), ordered after work on the default stream, such as the uploads."""
        return self.cp.cuda.Stream()

    def synchronize(self, stream: Any = None) -> None:
        (stream or self.current_stream()).synchronize()

    def event(self) -> Any:
        return self.cp.cuda.Event()

    def record(self, event: Any, stream: Any = None) -> None:
        event.record(stream or self.current_stream())

    def wait_event(self, event: Any) -> None:
        event.synchronize()

    def elapsed_s(self, start: Any, stop: Any) -> float:
        return float(self.cp.cuda.get_elapsed_time(start, stop)) / 1e3

    # ---- the persisting L2 (cuda-python) --------------------------------------------------
    def persisting_l2_limit(self) -> int:
        rt = _cudart()
        return int(_check_rt(rt.cudaDeviceGetLimit(rt.cudaLimit.cudaLimitPersistingL2CacheSize), "cudaDeviceGetLimit"))

    def set_persisting_l2_limit(self, nbytes: int) -> None:
        rt = _cudart()
        _check_rt(rt.cudaDeviceSetLimit(rt.cudaLimit.cudaLimitPersistingL2CacheSize, int(nbytes)),
                  "cudaDeviceSetLimit(persisting L2)")

    def set_access_policy_window(self, stream: Any, base_ptr: int, num_bytes: int, hit_ratio: float) -> None:
        """Mark ``[base_ptr, base_ptr + num_bytes)`` persisting (misses streaming) for ``stream``;
        ``num_bytes = 0`` clears the window."""
        rt = _cudart()
        value = rt.cudaStreamAttrValue()
        value.accessPolicyWindow.base_ptr = int(base_ptr)
        value.accessPolicyWindow.num_bytes = int(num_bytes)
        value.accessPolicyWindow.hitRatio = float(hit_ratio) if num_bytes else 0.0
        value.accessPolicyWindow.hitProp = rt.cudaAccessProperty.cudaAccessPropertyPersisting
        value.accessPolicyWindow.missProp = rt.cudaAccessProperty.cudaAccessPropertyStreaming
        attr = getattr(rt, "cudaStreamAttributeAccessPolicyWindow", None)
        if attr is None:  # cuda-bindings that only name the launch attribute
            attr = rt.cudaLaunchAttributeID.cudaLaunchAttributeAccessPolicyWindow
        _check_rt(rt.cudaStreamSetAttribute(rt.cudaStream_t(int(stream.ptr)), attr, value),
                  "cudaStreamSetAttribute(accessPolicyWindow)")

    def reset_persisting_l2(self) -> None:
        """Return every persisting line to normal (``cudaCtxResetPersistingL2Cache``)."""
        _check_rt(_cudart().cudaCtxResetPersistingL2Cache(), "cudaCtxResetPersistingL2Cache")


def _cudart() -> Any:
    from cuda.bindings import runtime

    return runtime


def _check_rt(result: Any, what: str) -> Any:
    err = result[0] if isinstance(result, tuple) else result
    code = int(err.value) if hasattr(err, "value") else int(err)
    if code != 0:
        raise RuntimeError(f"{what} failed: {err}")
    return result[1] if isinstance(result, tuple) and len(result) > 1 else None


@contextlib.contextmanager
def persisting_l2_window(device: Any, stream: Any, base_ptr: int, num_bytes: int, *, set_aside_bytes: int,
                         hit_ratio: float = 1.0) -> Iterator[None]:
    """Reserve ``set_aside_bytes`` of persisting L2 and set an access-policy window (hits
    persisting, misses streaming) over ``[base_ptr, base_ptr + num_bytes)`` on ``stream``; on
    exit clear the window, reset the persisting lines and restore the previous set-aside.
    Host calls only: nothing is enqueued on the stream."""
    if num_bytes < 0 or set_aside_bytes < 0 or not 0.0 <= hit_ratio <= 1.0:
        raise InputError(
            f"`num_bytes >= 0, set_aside_bytes >= 0, 0 <= hit_ratio <= 1` must hold, but got "
            f"({num_bytes}, {set_aside_bytes}, {hit_ratio})"
        )
    previous = device.persisting_l2_limit()
    device.set_persisting_l2_limit(set_aside_bytes)
    try:
        device.set_access_policy_window(stream, base_ptr, num_bytes, hit_ratio)
        yield
    finally:
        device.set_access_policy_window(stream, 0, 0, 0.0)
        device.reset_persisting_l2()
        device.set_persisting_l2_limit(previous)


# ---- one prepared call ------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class KernelLaunch:
    """One kernel launch of a prepared call: its entry name, function, geometry and arguments."""

    name: str
    function: Any
    grid: tuple[int, int, int]
    block: tuple[int, int, int]
    args: tuple[Any, ...]


@dataclass(frozen=True, kw_only=True)
class LookupBuffers:
    """What the lookup kernel of one prepared call reads and writes (device arrays, scalars)."""

    args: LookupArgs
    indices: Any
    weight: Any
    output: Any
    offset2bag: Any | None
    bag_size: Any | None
    l2_distance: np.int32
    index_scalar: type[np.integer[Any]]


def _or_null(a: Any | None) -> Any:
    return _NULL if a is None else a


def _pytorch_args(b: LookupBuffers) -> tuple[Any, ...]:
    a = b.args
    return (b.indices, a.offsets, b.weight, b.output, b.offset2bag, np.int64(a.num_indices), np.int64(a.num_bags),
            np.int64(a.dim), np.int64(a.dim), np.int64(1), np.int32(a.mode), b.bag_size,
            _or_null(a.per_sample_weights), np.int64(1), b.index_scalar(-1), np.int64(a.num_rows), b.l2_distance)


def _warp_args(b: LookupBuffers) -> tuple[Any, ...]:
    a = b.args
    return (b.indices, a.offsets, b.weight, b.output, np.int64(a.num_indices), np.int64(a.num_bags), np.int64(a.dim),
            np.int32(a.mode), _or_null(a.per_sample_weights), np.int64(a.num_rows), b.l2_distance)


def _tbe_args(b: LookupBuffers) -> tuple[Any, ...]:
    a = b.args
    return (b.indices, a.offsets, b.weight, b.output, np.int64(a.num_indices), np.int64(a.num_bags), np.int64(a.dim),
            np.int32(a.mode), _or_null(a.per_sample_weights), np.int64(a.num_rows))


#: variant -> the lookup kernel's argument tuple, in its signature's order (kernels/*.cu).
#: micro24-combined has PyTorch's signature; its index array is one element longer (a zero the
#: artifact's pair loads read past a bag's end, kernels/embedding_bag_micro24.cu) and it pins
#: with the artifact's own pass (:data:`MICRO24_PIN_ENTRY`)
LOOKUP_ARGS: dict[str, Callable[[LookupBuffers], tuple[Any, ...]]] = {
    "pytorch": _pytorch_args, "warp": _warp_args, "pytorch-current": _pytorch_args, "tbe": _tbe_args,
    "micro24-combined": _pytorch_args}
#: variants whose kernel also writes PyTorch's side outputs offset2bag and bag_size
SIDE_OUTPUT_VARIANTS = frozenset({"pytorch", "pytorch-current", "micro24-combined"})
#: variants that read one index past the last lookup (the launcher appends a zero)
PADDED_INDEX_VARIANTS = frozenset({"micro24-combined"})


def launchable_variants() -> tuple[str, ...]:
    """Kernel variants the GPU launcher can run (those with an argument builder in ``LOOKUP_ARGS``)."""
    return tuple(LOOKUP_ARGS)


class PreparedLookup:
    """One lookup call with its arguments checked and its buffers allocated: :meth:`enqueue`
    only launches kernels, as often as asked, into the same buffers."""

    def __init__(self, *, device: Any, launches: Sequence[KernelLaunch], output: Any,
                 side_outputs: tuple[Any, Any] | None, first_bad: Any | None, indices: Any, num_rows: int,
                 window: tuple[int, int] | None) -> None:
        self.device = device
        self.launches = tuple(launches)
        self.output = output
        #: (offset2bag, bag_size) for the pytorch variant, else None
        self.side_outputs = side_outputs
        self._first_bad = first_bad
        self._indices = indices
        self._num_rows = num_rows
        #: (base pointer, bytes) of the access-policy window, or None
        self.window_range = window

    def enqueue(self, stream: Any = None) -> None:
        """Launch the call's kernels on ``stream``; nothing else (no check, allocation or copy)."""
        for k in self.launches:
            self.device.launch(k.function, k.grid, k.block, k.args, stream=stream)

    def window(self, stream: Any) -> contextlib.AbstractContextManager[None]:
        """The persisting access-policy window this call needs (a no-op for other pin methods);
        set it around the calls, outside any timed region."""
        if self.window_range is None:
            return contextlib.nullcontext()
        base, size = self.window_range
        return persisting_l2_window(self.device, stream, base, size, set_aside_bytes=size)

    def bad_position(self, stream: Any = None) -> int | None:
        """The validation pass's first out-of-range position over every call so far, or None
        (always None without a separate check). Copies one value to the host: call it after
        the calls (and after a timed region's stop event)."""
        if self._first_bad is None:
            return None
        value = int(self.device.to_host(self._first_bad, stream)[0])
        return None if value == _NO_BAD else value

    def raise_if_bad(self, stream: Any = None) -> None:
        """IndexError naming the first bad position, if the validation pass found one."""
        bad = self.bad_position(stream)
        if bad is not None:
            raise index_error(self.device.to_host(self._indices, stream), bad, self._num_rows)

    def run(self, stream: Any = None) -> Any:
        """One call, whole, with the host in the loop: the validation pass alone first, whose
        verdict is read back (IndexError, and no lookup reads out of bounds), then the rest
        inside the window; the output. (:meth:`enqueue` instead runs the whole sequence with
        no host round trip, for timing calls whose indices are known to be valid.) Without
        ``stream``, a created one (the window is never set on the legacy default stream)."""
        stream = stream or self.device.new_stream()
        rest = self.launches
        if self._first_bad is not None and rest and rest[0].name == "recperf_check_indices":
            k = rest[0]
            self.device.launch(k.function, k.grid, k.block, k.args, stream=stream)
            self.raise_if_bad(stream)
            rest = rest[1:]
        with self.window(stream):
            for k in rest:
                self.device.launch(k.function, k.grid, k.block, k.args, stream=stream)
            self.device.synchronize(stream)
        return self.output


class EmbeddingBagLauncher:
    """One kernel configuration compiled for the current GPU, for one dtype, index dtype and dim.

    ``launcher.prepare(weight, indices, offsets, ...)`` checks and allocates once and returns a
    :class:`PreparedLookup`; ``launcher(weight, indices, offsets, ...)`` is one whole call.
    Compilation happens here; a compile error raises CuPy's ``CompileException`` (not a
    RuntimeError), and a configuration this NVRTC cannot build raises RuntimeError first.
    """

    def __init__(self, kernel: KernelConfig, *, dim: int, dtype: str = "float32", index_dtype: str = "int64",
                 device: Any = None) -> None:
        if not isinstance(kernel, KernelConfig):
            raise InputError(f"`kernel` must be a perfmodel.KernelConfig, but got {type(kernel).__name__}")
        if kernel.variant not in LOOKUP_ARGS:
            raise InputError(f"no GPU launcher for variant {kernel.variant!r}; valid choices: {', '.join(LOOKUP_ARGS)}")
        self.device: Any = device if device is not None else CupyDevice()
        self.kernel = kernel
        self.dim = int(dim)
        self.dtype = dtype
        self.index_dtype = index_dtype
        itemsize = 2 if dtype == "float16" else 4
        self.vec_bytes = vec_bytes_for(self.dim, itemsize)
        self.key: CompileKey = compile_key(kernel, dtype=dtype, index_dtype=index_dtype, vec_bytes=self.vec_bytes,
                                           tbe_vecs=tbe_vecs_for(self.dim) if kernel.variant == "tbe" else 1)
        problem = nvrtc_problem(kernel, self.device.nvrtc_version())
        if problem is not None:
            raise RuntimeError(problem)
        options = ("-std=c++17", f"-I{KERNEL_DIR}", *self.key.defines())
        micro24 = kernel.variant == "micro24-combined"
        module = self.device.compile(self.key.source.read_text(), options,
                                     [self.key.entry, *([MICRO24_PIN_ENTRY] if micro24 else [])])
        self._lookup = module[self.key.entry]
        #: the artifact's pinning pass (micro24-combined only)
        self._micro24_pin = module.get(MICRO24_PIN_ENTRY)
        # the passes depend on the element and index types only: one module for every configuration
        aux_options = options[:2] + tuple(d for d in self.key.defines() if d.startswith(_AUX_DEFINES))
        self._aux = self.device.compile((KERNEL_DIR / SOURCES["aux"]).read_text(), aux_options, _AUX_ENTRIES)
        self.sm_count = int(self.device.sm_count)
        self.max_threads_per_sm = int(self.device.max_threads_per_sm)
        self.persisting_l2_max_bytes = int(self.device.persisting_l2_max_bytes)

    def _aux_grid(self, n: int) -> tuple[int, int, int]:
        return (max(1, min((n + _AUX_BLOCK - 1) // _AUX_BLOCK, self.sm_count * 8)), 1, 1)

    def prepare(self, weight: Any, indices: Any, offsets: Any, *, mode: str = "sum",
                per_sample_weights: Any | None = None, hot_rows: Any | None = None) -> PreparedLookup:
        """Check the arguments and allocate every buffer of one call, once.

        For ``access-policy-window`` pass the table already frequency-ordered and ``hot_rows`` =
        the row map (original -> stored row); for ``evict-last-prefetch`` pass ``hot_rows`` =
        row ids hottest first (see :func:`kernels.frequency_remap`, :func:`kernels._launch.hot_rows`).
        """
        dev = self.device
        args = check_lookup_args(weight, indices, offsets, mode, per_sample_weights, xp=dev.xp, to_host=dev.to_host)
        if (args.dtype, args.index_dtype, args.dim) != (self.dtype, self.index_dtype, self.dim):
            raise InputError(
                f"this launcher is compiled for (dtype, index dtype, dim) = ({self.dtype}, {self.index_dtype}, "
                f"{self.dim}), but got ({args.dtype}, {args.index_dtype}, {args.dim})"
            )
        if dev.pointer(weight) % self.vec_bytes:
            raise InputError(f"`weight` must be aligned to {self.vec_bytes} bytes, but its address is not")
        B, N, D, E = args.num_bags, args.num_indices, args.dim, args.num_rows
        row_bytes = D * int(weight.dtype.itemsize)
        launches: list[KernelLaunch] = []
        first_bad = None
        if self.kernel.bounds_check == "separate":
            first_bad = dev.full((1,), _NO_BAD, np.uint64)
            if N:
                launches.append(KernelLaunch(name="recperf_check_indices", function=self._aux["recperf_check_indices"],
                                             grid=self._aux_grid(N), block=(_AUX_BLOCK, 1, 1),
                                             args=(args.indices, np.int64(N), np.int64(E), first_bad)))
        pinned = pinned_row_count(self.kernel, E, row_bytes, self.persisting_l2_max_bytes or None)
        lookup_indices = args.indices
        window = None
        if pinned:
            if hot_rows is None:
                raise InputError("pinned_row_fraction > 0 needs `hot_rows` (row ids hottest first, or the row map)")
            if getattr(hot_rows, "dtype", None) != args.indices.dtype or getattr(hot_rows, "ndim", None) != 1:
                raise InputError(f"`hot_rows` must be a 1-D array of the indices' dtype ({args.indices.dtype}), "
                                 f"but got {getattr(hot_rows, 'dtype', None)}")
            if self.kernel.pin_method == "evict-last-prefetch":
                if int(hot_rows.shape[0]) < pinned:
                    raise InputError(f"`hot_rows` must list at least the {pinned} pinned rows, but holds "
                                     f"{int(hot_rows.shape[0])}")
                if self._micro24_pin is not None:  # the artifact's own pass and launch
                    launches.append(KernelLaunch(name=MICRO24_PIN_ENTRY, function=self._micro24_pin,
                                                 grid=(PYTORCH_GRID, 1, 1), block=(*MICRO24_PIN_BLOCK, 1),
                                                 args=(weight, np.int64(D), np.int64(D), hot_rows, np.int64(pinned))))
                else:
                    lines = pinned * ((row_bytes + 127) // 128)
                    launches.append(KernelLaunch(name="recperf_pin_rows_evict_last",
                                                 function=self._aux["recperf_pin_rows_evict_last"],
                                                 grid=self._aux_grid(lines), block=(_AUX_BLOCK, 1, 1),
                                                 args=(weight, hot_rows, np.int64(pinned), np.int64(row_bytes))))
            else:
                if int(hot_rows.shape[0]) != E:
                    raise InputError(f"access-policy-window needs the row map of all {E} rows as `hot_rows`, "
                                     f"but got {int(hot_rows.shape[0])} entries")
                padded = self.kernel.variant in PADDED_INDEX_VARIANTS
                lookup_indices = (dev.zeros if padded else dev.empty)((N + padded,), args.indices.dtype)
                if N:
                    launches.append(KernelLaunch(name="recperf_remap_indices", function=self._aux["recperf_remap_indices"],
                                                 grid=self._aux_grid(N), block=(_AUX_BLOCK, 1, 1),
                                                 args=(args.indices, lookup_indices, np.int64(N), hot_rows, np.int64(E))))
                window = (dev.pointer(weight), pinned * row_bytes)
        if self.kernel.variant in PADDED_INDEX_VARIANTS and lookup_indices is args.indices:
            lookup_indices = dev.padded(args.indices, 1)
        output = dev.zeros((B, D), weight.dtype)
        side = None
        if self.kernel.variant in SIDE_OUTPUT_VARIANTS:
            side = (dev.zeros((N,), args.indices.dtype), dev.zeros((B,), args.indices.dtype))
        if B:
            geo = launch_geometry(self.kernel, B, sm_count=self.sm_count, max_threads_per_sm=self.max_threads_per_sm)
            buffers = LookupBuffers(
                args=args, indices=lookup_indices, weight=weight, output=output,
                offset2bag=side[0] if side else None, bag_size=side[1] if side else None,
                l2_distance=np.int32(self.kernel.prefetch_distance if self.key.l2_hint else 0),
                index_scalar=np.int32 if self.index_dtype == "int32" else np.int64,
            )
            launches.append(KernelLaunch(name=self.key.entry, function=self._lookup, grid=geo.grid, block=geo.block,
                                         args=LOOKUP_ARGS[self.kernel.variant](buffers)))
        return PreparedLookup(device=dev, launches=launches, output=output, side_outputs=side, first_bad=first_bad,
                              indices=args.indices, num_rows=E, window=window)

    def __call__(self, weight: Any, indices: Any, offsets: Any, *, mode: str = "sum",
                 per_sample_weights: Any | None = None, hot_rows: Any | None = None, stream: Any = None) -> Any:
        """One whole call (see :meth:`prepare` for ``hot_rows``): the output array."""
        prepared = self.prepare(weight, indices, offsets, mode=mode, per_sample_weights=per_sample_weights,
                                hot_rows=hot_rows)
        return prepared.run(stream)


def embedding_bag_gpu(
    kernel: KernelConfig,
    weight: Any,
    indices: Any,
    offsets: Any,
    mode: str = "sum",
    per_sample_weights: Any | None = None,
) -> np.ndarray:
    """:func:`kernels.embedding_bag_cpu` on the GPU: same arguments (NumPy or CuPy arrays), same
    semantics, result as a NumPy array. Out-of-range indices raise IndexError naming the first bad
    position before any lookup runs (the validation pass for ``separate``, a CuPy check otherwise,
    so the device assert never fires here)."""
    from kernels._launch import frequency_remap
    from kernels._launch import hot_rows as hot_row_ids

    dev = CupyDevice()
    cp = dev.cp
    w = cp.ascontiguousarray(cp.asarray(weight))
    idx = cp.asarray(indices)
    offs = cp.asarray(offsets)
    psw = None if per_sample_weights is None else cp.asarray(per_sample_weights)
    args = check_lookup_args(w, idx, offs, mode, psw, xp=cp, to_host=dev.to_host)
    launcher = EmbeddingBagLauncher(kernel, dim=args.dim, dtype=args.dtype, index_dtype=args.index_dtype, device=dev)
    host_idx = dev.to_host(args.indices)
    if kernel.bounds_check != "separate":
        bad = first_out_of_range(host_idx, args.num_rows)
        if bad is not None:
            raise index_error(host_idx, bad, args.num_rows)
    hot = None
    if kernel.pinned_row_fraction > 0:
        if kernel.pin_method == "access-policy-window":
            order, row_map = frequency_remap(host_idx, args.num_rows)
            w = dev.take_rows(w, dev.upload(order))
            hot = dev.upload(row_map.astype(host_idx.dtype))
        else:
            hot = dev.upload(hot_row_ids(host_idx, args.num_rows).astype(host_idx.dtype))
    stream = dev.new_stream()
    out = launcher(w, args.indices, args.offsets, mode=mode, per_sample_weights=args.per_sample_weights, hot_rows=hot,
                   stream=stream)
    return dev.to_host(out, stream)
