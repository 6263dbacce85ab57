"""Run the CUDA kernel sources on the CPU: g++ builds them through kernels/cpu_shim.h (one
shared library per configuration, cached), ctypes calls a launch that runs every block and
thread sequentially. Used for CPU-executed correctness tests in CI (no GPU needed).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from kernels._compile import KERNEL_DIR, cache_dir
from kernels._launch import (
    MICRO24_PIN_BLOCK,
    PYTORCH_GRID,
    PYTORCH_LAUNCH,
    check_lookup_args,
    first_out_of_range,
    frequency_remap,
    hot_rows,
    index_error,
    launch_geometry,
    pinned_row_count,
    tbe_vecs_for,
    vec_bytes_for,
)
from perfmodel import InputError, KernelConfig

__all__ = ["CpuResult", "cpu_compiler", "embedding_bag_cpu", "run_cpu"]

#: GPU shape used for the warp variant's grid on the CPU (an A100: 108 SMs, 2048 threads each)
_CPU_SM_COUNT = 108



def cpu_compiler() -> str | None:
    """The host C++ compiler used for the CPU runner ($CXX, else g++), or None if absent."""
    cxx = os.environ.get("CXX", "g++")
    return shutil.which(cxx)


@dataclass(frozen=True, kw_only=True)
class _ShimKey:
    dtype: str
    index_dtype: str
    ring_distance: int
    l2_hint: bool
    bounds_inline: bool
    vec_bytes: int
    #: pytorch-current's in-kernel validation loop (RECPERF_BOUNDS_PRELOOP)
    preloop: bool = False
    tbe_vecs: int = 1

    def defines(self) -> list[str]:
        return [
            f"-DRECPERF_DTYPE_F16={int(self.dtype == 'float16')}",
            f"-DRECPERF_INDEX_I32={int(self.index_dtype == 'int32')}",
            f"-DRECPERF_PREFETCH_DISTANCE={self.ring_distance}",
            f"-DRECPERF_PREFETCH_L2HINT={int(self.l2_hint)}",
            f"-DRECPERF_BOUNDS_INLINE={int(self.bounds_inline)}",
            f"-DRECPERF_VEC_BYTES={self.vec_bytes}",
            f"-DRECPERF_BOUNDS_PRELOOP={int(self.preloop)}",
            f"-DRECPERF_TBE_MAX_VECS={self.tbe_vecs}",
        ]


def _shim_sources_hash(cxx: str) -> str:
    h = hashlib.sha256(cxx.encode())
    for p in sorted(KERNEL_DIR.glob("*.cu")) + sorted(KERNEL_DIR.glob("*.cuh")) + [
        KERNEL_DIR / "cpu_shim.h",
        KERNEL_DIR / "cpu_shim.cpp",
    ]:
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()


@lru_cache(maxsize=64)
def _library(key: _ShimKey) -> ctypes.CDLL:
    cxx = cpu_compiler()
    if cxx is None:
        raise RuntimeError("the CPU runner needs a C++ compiler (g++, or $CXX); none is on PATH")
    flags = ["-O1", "-std=c++17", "-shared", "-fPIC", "-w", f"-I{KERNEL_DIR}", *key.defines()]
    digest = hashlib.sha256((_shim_sources_hash(cxx) + " ".join(flags)).encode()).hexdigest()[:24]
    lib = cache_dir() / "cpu" / f"recperf_shim_{digest}.so"
    if not lib.is_file():
        lib.parent.mkdir(parents=True, exist_ok=True)
        tmp = lib.with_suffix(f".{os.getpid()}.tmp.so")
        cmd = [cxx, *flags, str(KERNEL_DIR / "cpu_shim.cpp"), "-o", str(tmp)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode:
            raise RuntimeError(f"building the CPU runner failed ({' '.join(cmd)}):\n{proc.stderr[-4000:]}")
        tmp.replace(lib)
    dll = ctypes.CDLL(str(lib))
    p, i64, u32, i32 = ctypes.c_void_p, ctypes.c_longlong, ctypes.c_uint, ctypes.c_int
    dll.recperf_cpu_pytorch.argtypes = [u32, u32, u32, p, p, p, p, p, i64, i64, i64, i64, i64, i32, p, p, i64, i64,
                                        i64, i32, p, p]
    dll.recperf_cpu_warp.argtypes = [u32, u32, p, p, p, p, i64, i64, i64, i32, p, i64, i32, p, p]
    dll.recperf_cpu_micro24.argtypes = dll.recperf_cpu_pytorch.argtypes
    dll.recperf_cpu_tbe.argtypes = [u32, u32, u32, p, p, p, p, i64, i64, i64, i32, p, i64, p, p]
    dll.recperf_cpu_micro24_pin.argtypes = [u32, u32, u32, p, i64, i64, p, i64]
    dll.recperf_cpu_check_indices.argtypes = [u32, u32, p, i64, i64, p]
    dll.recperf_cpu_remap_indices.argtypes = [u32, u32, p, p, i64, p, i64]
    dll.recperf_cpu_pin_rows.argtypes = [u32, u32, p, p, i64, i64]
    for f in ("recperf_cpu_pytorch", "recperf_cpu_warp", "recperf_cpu_micro24", "recperf_cpu_tbe",
              "recperf_cpu_micro24_pin", "recperf_cpu_check_indices", "recperf_cpu_remap_indices",
              "recperf_cpu_pin_rows"):
        getattr(dll, f).restype = i32
    return dll


def _ptr(a: np.ndarray | None) -> int | None:
    return None if a is None else int(a.ctypes.data)


@dataclass(frozen=True, kw_only=True)
class CpuResult:
    """Output of one CPU-executed lookup; ``offset2bag``/``bag_size`` only for the variants with
    PyTorch's launch (``pytorch``, ``pytorch-current``, ``micro24-combined``)."""

    output: np.ndarray
    offset2bag: np.ndarray | None = None
    bag_size: np.ndarray | None = None
    #: rows pinned (prefetched with evict_last, or made contiguous for the window); 0 if none
    pinned_rows: int = 0


_AUX_GRID, _AUX_BLOCK = 64, 256
#: variants with PyTorch's padding_idx semantics
PADDING_VARIANTS = PYTORCH_LAUNCH


def run_cpu(
    kernel: KernelConfig,
    weight: Any,
    indices: Any,
    offsets: Any,
    mode: str = "sum",
    per_sample_weights: Any | None = None,
    *,
    persisting_max_bytes: int | None = None,
    padding_idx: int | None = None,
) -> CpuResult:
    """Run ``kernel``'s launch sequence (validation pass, pinning pass or index remap, lookup) on
    the CPU from the CUDA sources; see :func:`embedding_bag_cpu`."""
    if not isinstance(kernel, KernelConfig):
        raise InputError(f"`kernel` must be a perfmodel.KernelConfig, but got {type(kernel).__name__}")
    args = check_lookup_args(
        np.asarray(weight), np.asarray(indices), np.asarray(offsets), mode,
        None if per_sample_weights is None else np.asarray(per_sample_weights),
    )
    w, idx, offs = args.weight, args.indices, args.offsets
    pad = _padding_index(kernel, padding_idx, args.num_rows)
    key = _ShimKey(
        dtype=args.dtype,
        index_dtype=args.index_dtype,
        ring_distance=kernel.prefetch_distance if kernel.prefetch_kind == "register" else 0,
        l2_hint=kernel.prefetch_distance > 0 and kernel.prefetch_kind == "l2-hint",
        bounds_inline=kernel.bounds_check == "inline",
        vec_bytes=vec_bytes_for(args.dim, w.dtype.itemsize),
        preloop=kernel.variant == "pytorch-current" and kernel.bounds_check == "inline",
        tbe_vecs=tbe_vecs_for(args.dim) if kernel.variant == "tbe" else 1,
    )
    lib = _library(key)
    E, D, B, N = args.num_rows, args.dim, args.num_bags, args.num_indices

    if kernel.bounds_check == "separate":
        first = np.array([np.iinfo(np.uint64).max], np.uint64)
        lib.recperf_cpu_check_indices(_AUX_GRID, _AUX_BLOCK, _ptr(idx), N, E, _ptr(first))
        if int(first[0]) != int(np.iinfo(np.uint64).max):
            raise index_error(idx, int(first[0]), E)
    elif kernel.bounds_check == "none":
        # no check in the kernel: it would read out of bounds, so the runner refuses the input
        bad = first_out_of_range(idx, E)
        if bad is not None:
            raise index_error(idx, bad, E)

    pinned = pinned_row_count(kernel, E, D * w.dtype.itemsize, persisting_max_bytes)
    if pinned and kernel.pin_method == "access-policy-window":
        order, row_map = frequency_remap(idx, E)
        w = np.ascontiguousarray(w[order])
        remapped = np.empty_like(idx)
        row_map = np.ascontiguousarray(row_map.astype(idx.dtype))  # kept alive across the call
        lib.recperf_cpu_remap_indices(_AUX_GRID, _AUX_BLOCK, _ptr(idx), _ptr(remapped), N, _ptr(row_map), E)
        idx = remapped
    elif pinned:
        hot = np.ascontiguousarray(hot_rows(idx, E)[:pinned].astype(idx.dtype))
        if kernel.variant == "micro24-combined":  # the artifact's own pass
            lib.recperf_cpu_micro24_pin(PYTORCH_GRID, *MICRO24_PIN_BLOCK, _ptr(w), D, D, _ptr(hot), pinned)
        else:
            lib.recperf_cpu_pin_rows(_AUX_GRID, _AUX_BLOCK, _ptr(w), _ptr(hot), pinned, D * w.dtype.itemsize)

    out = np.zeros((B, D), w.dtype)
    first_bad = ctypes.c_longlong(-1)
    failed = ctypes.c_char_p()
    psw = args.per_sample_weights
    geo = launch_geometry(kernel, B, sm_count=_CPU_SM_COUNT)
    offset2bag = bag_size = None
    l2_distance = kernel.prefetch_distance if key.l2_hint else 0
    if B == 0:
        return CpuResult(output=out)
    if kernel.variant in PYTORCH_LAUNCH:
        offset2bag = np.zeros(N, idx.dtype)
        bag_size = np.zeros(B, idx.dtype)
        launch = lib.recperf_cpu_micro24 if kernel.variant == "micro24-combined" else lib.recperf_cpu_pytorch
        if kernel.variant == "micro24-combined":
            # the artifact reads one index past a bag's end (see embedding_bag_micro24.cu)
            idx = np.ascontiguousarray(np.concatenate([idx, np.zeros(1, idx.dtype)]))
        status = launch(
            geo.grid[0], geo.block[0], geo.block[1], _ptr(idx), _ptr(offs), _ptr(w), _ptr(out), _ptr(offset2bag),
            N, B, D, D, 1, args.mode, _ptr(bag_size), _ptr(psw), 1, pad, E, l2_distance,
            ctypes.byref(first_bad), ctypes.byref(failed),
        )
    elif kernel.variant == "tbe":
        status = lib.recperf_cpu_tbe(
            geo.grid[0], geo.block[0], geo.block[1], _ptr(idx), _ptr(offs), _ptr(w), _ptr(out), N, B, D, args.mode,
            _ptr(psw), E, ctypes.byref(first_bad), ctypes.byref(failed),
        )
    else:
        status = lib.recperf_cpu_warp(
            geo.grid[0], geo.block[0], _ptr(idx), _ptr(offs), _ptr(w), _ptr(out), N, B, D, args.mode, _ptr(psw), E,
            l2_distance, ctypes.byref(first_bad), ctypes.byref(failed),
        )
    if first_bad.value >= 0:
        raise index_error(args.indices, first_bad.value, E)
    if status:
        cond = failed.value.decode() if failed.value else "?"
        raise RuntimeError(f"a device-side assert failed in the {kernel.variant} kernel: {cond}")
    return CpuResult(output=out, offset2bag=offset2bag, bag_size=bag_size, pinned_rows=pinned)


def _padding_index(kernel: KernelConfig, padding_idx: int | None, rows: int) -> int:
    """The kernel argument for ``padding_idx`` (-1: none), checked as torch checks it."""
    if padding_idx is None:
        return -1
    if kernel.variant not in PADDING_VARIANTS:
        raise InputError(f"padding_idx needs a variant with PyTorch's padding semantics "
                         f"({', '.join(PADDING_VARIANTS)}), but got variant={kernel.variant!r}")
    if isinstance(padding_idx, bool) or not isinstance(padding_idx, int) or not -rows <= padding_idx < rows:
        raise InputError(f"`-rows <= padding_idx < rows` must hold, but got padding_idx={padding_idx!r} for {rows} rows")
    return padding_idx % rows


def embedding_bag_cpu(
    kernel: KernelConfig,
    weight: Any,
    indices: Any,
    offsets: Any,
    mode: str = "sum",
    per_sample_weights: Any | None = None,
    *,
    padding_idx: int | None = None,
) -> np.ndarray:
    """``torch.nn.functional.embedding_bag`` (include_last_offset=False) computed by running the
    CUDA source of ``kernel``'s variant on the CPU, every block and thread of its launch.

    ``weight``: (rows, dim) float32 or float16 (fp32 accumulation, output in weight's dtype);
    ``indices``: 1-D int64 or int32; ``offsets``: 1-D bag starts (``offsets[0] == 0``);
    ``mode``: ``sum`` or ``mean`` (an empty bag gives zeros); ``per_sample_weights``: with
    ``sum``, one per index; ``padding_idx`` (the variants with PyTorch's launch): rows of that
    index are left out of the sum and of the bag size (as torch). Out-of-range indices raise
    IndexError naming the first bad position, and nothing is read out of bounds: ``inline``
    checks in the kernel (before each read), ``separate`` runs the validation pass, ``none`` is
    checked by the runner. ``tbe`` needs ``dim`` a multiple of 4 (FBGEMM's rule).
    """
    return run_cpu(kernel, weight, indices, offsets, mode, per_sample_weights, padding_idx=padding_idx).output
