"""Launch the lookup kernels on a GPU through CuPy (``RawModule``, compiled by NVRTC).

CuPy validates nothing about raw-kernel arguments, so :class:`EmbeddingBagLauncher` checks
dtypes, shapes and contiguity itself and passes every scalar as an explicit NumPy type. The
launch sequence of one lookup is:

1. ``bounds_check="separate"``: the validation pass (``recperf_check_indices``); the first bad
   position is read back and raised as IndexError before the lookup runs.
2. pinning, when ``pinned_row_fraction > 0``:
   ``evict-last-prefetch``: the seed artifact's pass (``recperf_pin_rows_evict_last``) over the
   hot rows; ``access-policy-window``: the table is stored frequency-ordered (see
   :func:`kernels.frequency_remap`), ``recperf_remap_indices`` rewrites the indices, and a
   persisting access-policy window over the hot range is set on the stream from the host with
   cuda-python (``cudaStreamSetAttribute``) after reserving the set-aside
   (``cudaDeviceSetLimit(cudaLimitPersistingL2CacheSize)``); both are reset afterwards
   (window of 0 bytes, ``cudaCtxResetPersistingL2Cache``, previous limit).
3. the lookup kernel.

``bounds_check="inline"`` is a device-side assert, as in PyTorch: an out-of-range index stops
the kernel and leaves the CUDA context unusable (the error surfaces as IndexError).
CuPy and cuda-python are imported inside the functions (no GPU library at package import).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from kernels._compile import KERNEL_DIR, SOURCES, CompileKey, compile_key
from kernels._launch import (
    check_lookup_args,
    first_out_of_range,
    index_error,
    launch_geometry,
    pinned_row_count,
    vec_bytes_for,
)
from perfmodel import InputError, KernelConfig

__all__ = ["EmbeddingBagLauncher", "embedding_bag_gpu", "gpu_available", "persisting_l2_window"]

_AUX_BLOCK = 256
#: a null device pointer as a kernel argument (8 bytes, like a pointer)
_NULL = np.uint64(0)


def _or_null(a: Any | None) -> Any:
    return _NULL if a is None else a


def gpu_available() -> tuple[bool, str]:
    """(True, device name) where CuPy can use GPU 0, else (False, the reason)."""
    try:
        import cupy

        attrs = cupy.cuda.Device(0).attributes
        name = cupy.cuda.runtime.getDeviceProperties(0)["name"]
        return bool(attrs), name.decode() if isinstance(name, bytes) else str(name)
    except Exception as exc:  # no cupy, no driver, no device
        return False, f"no usable CUDA GPU ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"


def _check_rt(result: Any, what: str) -> Any:
    from cuda.bindings import runtime as cudart

    err = result[0] if isinstance(result, tuple) else result
    if err != cudart.cudaError_t.cudaSuccess:
        raise RuntimeError(f"{what} failed: {err}")
    return result[1] if isinstance(result, tuple) and len(result) > 1 else None


@contextlib.contextmanager
def persisting_l2_window(
    stream_ptr: int, base_ptr: int, num_bytes: int, *, set_aside_bytes: int, hit_ratio: float = 1.0
) -> Iterator[None]:
    """Reserve ``set_aside_bytes`` of persisting L2 and set an access-policy window (hits
    persisting, misses streaming) over ``[base_ptr, base_ptr + num_bytes)`` on the stream; on exit
    clear the window, reset the persisting lines and restore the previous set-aside."""
    from cuda.bindings import runtime as cudart

    if num_bytes < 0 or set_aside_bytes < 0 or not 0.0 <= hit_ratio <= 1.0:
        raise InputError(
            f"`num_bytes >= 0, set_aside_bytes >= 0, 0 <= hit_ratio <= 1` must hold, but got "
            f"({num_bytes}, {set_aside_bytes}, {hit_ratio})"
        )
    limit = cudart.cudaLimit.cudaLimitPersistingL2CacheSize
    previous = _check_rt(cudart.cudaDeviceGetLimit(limit), "cudaDeviceGetLimit")
    stream = cudart.cudaStream_t(stream_ptr)

    def set_window(ptr: int, size: int) -> None:
        value = cudart.cudaStreamAttrValue()
        value.accessPolicyWindow.base_ptr = ptr
        value.accessPolicyWindow.num_bytes = size
        value.accessPolicyWindow.hitRatio = hit_ratio if size else 0.0
        value.accessPolicyWindow.hitProp = cudart.cudaAccessProperty.cudaAccessPropertyPersisting
        value.accessPolicyWindow.missProp = cudart.cudaAccessProperty.cudaAccessPropertyStreaming
        _check_rt(
            cudart.cudaStreamSetAttribute(stream, cudart.cudaStreamAttributeAccessPolicyWindow, value),
            "cudaStreamSetAttribute(accessPolicyWindow)",
        )

    _check_rt(cudart.cudaDeviceSetLimit(limit, set_aside_bytes), "cudaDeviceSetLimit(persisting L2)")
    try:
        set_window(base_ptr, num_bytes)
        yield
    finally:
        set_window(0, 0)
        _check_rt(cudart.cudaCtxResetPersistingL2Cache(), "cudaCtxResetPersistingL2Cache")
        _check_rt(cudart.cudaDeviceSetLimit(limit, int(previous or 0)), "cudaDeviceSetLimit(restore)")


class EmbeddingBagLauncher:
    """One kernel configuration compiled for the current GPU, for one dtype, index dtype and dim.

    ``launcher(weight, indices, offsets, mode=..., per_sample_weights=...)`` runs the launch
    sequence on ``stream`` (CuPy's current stream by default) and returns the output array.
    """

    def __init__(self, kernel: KernelConfig, *, dim: int, dtype: str = "float32", index_dtype: str = "int64") -> None:
        import cupy as cp

        if not isinstance(kernel, KernelConfig):
            raise InputError(f"`kernel` must be a perfmodel.KernelConfig, but got {type(kernel).__name__}")
        self.kernel = kernel
        self.dim = int(dim)
        self.dtype = dtype
        self.index_dtype = index_dtype
        itemsize = 2 if dtype == "float16" else 4
        self.vec_bytes = vec_bytes_for(self.dim, itemsize)
        self.key: CompileKey = compile_key(kernel, dtype=dtype, index_dtype=index_dtype, vec_bytes=self.vec_bytes)
        options = ("-std=c++17", f"-I{KERNEL_DIR}", *self.key.defines())
        self._lookup_module = cp.RawModule(code=self.key.source.read_text(), options=options)
        self._lookup = self._lookup_module.get_function(self.key.entry)
        self._aux_module = cp.RawModule(code=(KERNEL_DIR / SOURCES["aux"]).read_text(), options=options)
        self._check = self._aux_module.get_function("recperf_check_indices")
        self._pin = self._aux_module.get_function("recperf_pin_rows_evict_last")
        self._remap = self._aux_module.get_function("recperf_remap_indices")
        dev = cp.cuda.Device()
        self.sm_count = int(dev.attributes["MultiProcessorCount"])
        self.max_threads_per_sm = int(dev.attributes["MaxThreadsPerMultiProcessor"])
        props = cp.cuda.runtime.getDeviceProperties(dev.id)
        self.persisting_l2_max_bytes = int(props.get("persistingL2CacheMaxSize", 0))

    # ---- the passes ----------------------------------------------------------------------
    def _aux_grid(self, n: int) -> int:
        return max(1, min((n + _AUX_BLOCK - 1) // _AUX_BLOCK, self.sm_count * 8))

    def check_indices(self, indices: Any, num_rows: int, stream: Any = None) -> int | None:
        """The validation pass: first out-of-range position, or None (synchronizes)."""
        import cupy as cp

        first = cp.full((1,), np.iinfo(np.uint64).max, dtype=cp.uint64)
        n = int(indices.shape[0])
        if n:
            self._check((self._aux_grid(n),), (_AUX_BLOCK,), (indices, np.int64(n), np.int64(num_rows), first),
                        stream=stream)
        value = int(first.get(stream=stream)[0])
        return None if value == int(np.iinfo(np.uint64).max) else value

    def pin_rows(self, weight: Any, hot_rows: Any | None, num_hot: int, stream: Any = None) -> None:
        """The evict-last pinning pass over ``num_hot`` rows (``hot_rows`` ids, or rows 0..num_hot-1)."""
        if num_hot <= 0:
            return
        row_bytes = np.int64(weight.shape[1] * weight.dtype.itemsize)
        lines = num_hot * ((int(row_bytes) + 127) // 128)
        self._pin((self._aux_grid(lines),), (_AUX_BLOCK,), (weight, _or_null(hot_rows), np.int64(num_hot), row_bytes),
                  stream=stream)

    def remap_indices(self, indices: Any, row_map: Any, num_rows: int, stream: Any = None) -> Any:
        import cupy as cp

        out = cp.empty_like(indices)
        n = int(indices.shape[0])
        if n:
            self._remap((self._aux_grid(n),), (_AUX_BLOCK,),
                        (indices, out, np.int64(n), row_map, np.int64(num_rows)), stream=stream)
        return out

    def lookup(self, weight: Any, indices: Any, offsets: Any, *, mode: str = "sum",
               per_sample_weights: Any | None = None, stream: Any = None, side_outputs: bool = False) -> Any:
        """The lookup kernel alone (after checking every argument). ``side_outputs=True`` returns
        ``(output, offset2bag, bag_size)`` (the ``pytorch`` variant's; None for ``warp``)."""
        import cupy as cp

        args = check_lookup_args(weight, indices, offsets, mode, per_sample_weights, xp=cp)
        if (args.dtype, args.index_dtype, args.dim) != (self.dtype, self.index_dtype, self.dim):
            raise InputError(
                f"this launcher is compiled for (dtype, index dtype, dim) = ({self.dtype}, {self.index_dtype}, "
                f"{self.dim}), but got ({args.dtype}, {args.index_dtype}, {args.dim})"
            )
        if weight.data.ptr % self.vec_bytes:
            raise InputError(f"`weight` must be aligned to {self.vec_bytes} bytes, but its address is not")
        B, N, D, E = args.num_bags, args.num_indices, args.dim, args.num_rows
        out = cp.zeros((B, D), dtype=weight.dtype)
        offset2bag = bag_size = None
        if B == 0:
            return (out, offset2bag, bag_size) if side_outputs else out
        geo = launch_geometry(self.kernel, B, sm_count=self.sm_count, max_threads_per_sm=self.max_threads_per_sm)
        psw = args.per_sample_weights
        i_t = np.int32 if self.index_dtype == "int32" else np.int64
        l2_distance = np.int32(self.kernel.prefetch_distance if self.key.l2_hint else 0)
        if self.kernel.variant == "pytorch":
            offset2bag = cp.zeros((N,), dtype=args.indices.dtype)
            bag_size = cp.zeros((B,), dtype=args.indices.dtype)
            self._lookup(geo.grid, geo.block, (
                args.indices, args.offsets, weight, out, offset2bag, np.int64(N), np.int64(B), np.int64(D),
                np.int64(D), np.int64(1), np.int32(args.mode), bag_size, _or_null(psw), np.int64(1), i_t(-1), np.int64(E),
                l2_distance,
            ), stream=stream)
        else:
            self._lookup(geo.grid, geo.block, (
                args.indices, args.offsets, weight, out, np.int64(N), np.int64(B), np.int64(D), np.int32(args.mode),
                _or_null(psw), np.int64(E), l2_distance,
            ), stream=stream)
        return (out, offset2bag, bag_size) if side_outputs else out

    def __call__(self, weight: Any, indices: Any, offsets: Any, *, mode: str = "sum",
                 per_sample_weights: Any | None = None, hot_rows: Any | None = None, stream: Any = None) -> Any:
        """The whole launch sequence for a table stored as given. For ``access-policy-window``
        pass the table already frequency-ordered and ``hot_rows`` = the row map (original ->
        stored row); for ``evict-last-prefetch`` pass ``hot_rows`` = row ids hottest first."""
        import cupy as cp

        E = int(weight.shape[0])
        stream = stream or cp.cuda.get_current_stream()
        if self.kernel.bounds_check == "separate":
            bad = self.check_indices(indices, E, stream)
            if bad is not None:
                raise index_error(cp.asnumpy(indices), bad, E)
        row_bytes = int(weight.shape[1]) * weight.dtype.itemsize
        pinned = pinned_row_count(self.kernel, E, row_bytes, self.persisting_l2_max_bytes or None)
        if not pinned:
            return self.lookup(weight, indices, offsets, mode=mode, per_sample_weights=per_sample_weights,
                               stream=stream)
        if hot_rows is None:
            raise InputError("pinned_row_fraction > 0 needs `hot_rows` (row ids hottest first, or the row map)")
        if self.kernel.pin_method == "evict-last-prefetch":
            self.pin_rows(weight, hot_rows, pinned, stream)
            return self.lookup(weight, indices, offsets, mode=mode, per_sample_weights=per_sample_weights,
                               stream=stream)
        remapped = self.remap_indices(indices, hot_rows, E, stream)
        with persisting_l2_window(stream.ptr, weight.data.ptr, pinned * row_bytes, set_aside_bytes=pinned * row_bytes):
            out = self.lookup(weight, remapped, offsets, mode=mode, per_sample_weights=per_sample_weights,
                              stream=stream)
            stream.synchronize()
        return out


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
    import cupy as cp

    from kernels._launch import frequency_remap, hot_rows

    w = cp.ascontiguousarray(cp.asarray(weight))
    idx = cp.asarray(indices)
    offs = cp.asarray(offsets)
    psw = None if per_sample_weights is None else cp.asarray(per_sample_weights)
    args = check_lookup_args(w, idx, offs, mode, psw, xp=cp)
    launcher = EmbeddingBagLauncher(kernel, dim=args.dim, dtype=args.dtype, index_dtype=args.index_dtype)
    if kernel.bounds_check != "separate":
        bad = first_out_of_range(args.indices, args.num_rows)
        if bad is not None:
            raise index_error(cp.asnumpy(args.indices), bad, args.num_rows)
    hot = None
    if kernel.pinned_row_fraction > 0:
        host_idx = cp.asnumpy(args.indices)
        if kernel.pin_method == "access-policy-window":
            order, row_map = frequency_remap(host_idx, args.num_rows)
            w = cp.ascontiguousarray(w[cp.asarray(order)])
            hot = cp.asarray(row_map.astype(host_idx.dtype))
        else:
            hot = cp.asarray(hot_rows(host_idx, args.num_rows).astype(host_idx.dtype))
    out = launcher(w, args.indices, args.offsets, mode=mode, per_sample_weights=args.per_sample_weights, hot_rows=hot)
    cp.cuda.get_current_stream().synchronize()
    return np.asarray(cp.asnumpy(out))
