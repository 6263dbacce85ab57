"""What a launch of the lookup kernels needs, with no GPU: argument checks, launch geometry,
vector width, the frequency-ordered remap. Shared by the CPU runner and the CuPy launcher.

Notation: B bags, N indices, E table rows, D embedding dim.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from perfmodel import PYTORCH_GRID_BLOCKS, InputError, KernelConfig
from perfmodel import vector_bytes as vec_bytes_for

__all__ = [
    "MICRO24_PIN_BLOCK",
    "MICRO24_PIN_ENTRY",
    "MODES",
    "PYTORCH_GRID",
    "LaunchGeometry",
    "LookupArgs",
    "frequency_remap",
    "hot_rows",
    "launch_geometry",
    "pinned_row_count",
    "tbe_vecs_for",
    "vec_bytes_for",
]

#: PyTorch 2.1 launches EmbeddingBag_updateOutputKernel_sum_mean on a fixed grid of 1024 blocks
#: (the model's figure; ``vec_bytes_for`` is :func:`perfmodel.vector_bytes`, the one vector width)
PYTORCH_GRID = PYTORCH_GRID_BLOCKS
MODES = {"sum": 0, "mean": 1}
_FLOAT_DTYPES = {"float32": np.dtype(np.float32), "float16": np.dtype(np.float16)}
_INDEX_DTYPES = {"int64": np.dtype(np.int64), "int32": np.dtype(np.int32)}
#: the artifact's pinning launch (opt_designs/combined/EmbeddingBag.cu: block_2 = dim3(2, 128), grid 1024)
#: and its entry point (kernels/embedding_bag_micro24.cu)
MICRO24_PIN_BLOCK = (2, 128)
MICRO24_PIN_ENTRY = "recperf_micro24_pin_L2"
#: variants launched as PyTorch's EmbeddingBag_updateOutputKernel_sum_mean (side outputs too)
PYTORCH_LAUNCH = ("pytorch", "pytorch-current", "micro24-combined")
#: FBGEMM caps a TBE grid at 64 blocks per SM (fbgemm_gpu/include/fbgemm_gpu/utils/cuda_utilities.cuh,
#: MAX_THREAD_BLOCKS_FACTOR = 64, BlockCapPolicy::Always; commit 71d6f8b2)
TBE_BLOCKS_PER_SM_CAP = 64
#: FBGEMM's TBE reads rows in 4-element vectors (Vec4T), 32 lanes x 4 = 128 elements per vector step
TBE_VEC_WIDTH = 4


@dataclass(frozen=True, kw_only=True)
class LaunchGeometry:
    grid: tuple[int, int, int]
    block: tuple[int, int, int]


def launch_geometry(
    kernel: KernelConfig, num_bags: int, *, sm_count: int = 108, max_threads_per_sm: int = 2048
) -> LaunchGeometry:
    """Grid and block of ``kernel``'s lookup launch.

    ``pytorch``, ``pytorch-current``, ``micro24-combined``: block (32, block_size / 32), fixed
    grid of 1024 blocks (PyTorch 2.1; the artifact keeps PyTorch's launch).
    ``warp``: 1-D blocks of block_size threads (block_size / 32 bags each), grid sized to the
    GPU: enough blocks for every bag, at most as many as the GPU holds at full thread
    occupancy (sm_count x max_threads_per_sm / block_size); the kernel grid-strides over bags.
    ``tbe``: block (32, block_size / 32) (FBGEMM's dim3(kThreadGroupSize, kForwardMaxThreads /
    kThreadGroupSize), one bag per warp), grid = ceil(bags / warps per block) capped at 64
    blocks per SM as FBGEMM caps it; the kernel grid-strides over bags.
    """
    if num_bags < 0:
        raise InputError(f"`num_bags >= 0` must hold, but got num_bags={num_bags}")
    if sm_count < 1 or max_threads_per_sm < kernel.block_size:
        raise InputError(
            f"`sm_count >= 1 and max_threads_per_sm >= block_size` must hold, but got "
            f"(sm_count={sm_count}, max_threads_per_sm={max_threads_per_sm}, block_size={kernel.block_size})"
        )
    if kernel.variant in PYTORCH_LAUNCH:
        return LaunchGeometry(grid=(PYTORCH_GRID, 1, 1), block=(32, kernel.block_size // 32, 1))
    warps = kernel.block_size // 32
    if kernel.variant == "tbe":
        grid = max(1, min(math.ceil(num_bags / warps), TBE_BLOCKS_PER_SM_CAP * sm_count))
        return LaunchGeometry(grid=(grid, 1, 1), block=(32, warps, 1))
    resident = sm_count * (max_threads_per_sm // kernel.block_size)
    grid = max(1, min(math.ceil(num_bags / warps), resident))
    return LaunchGeometry(grid=(grid, 1, 1), block=(kernel.block_size, 1, 1))


def tbe_vecs_for(dim: int) -> int:
    """FBGEMM's kMaxVecsPerThread for a row of ``dim`` elements: the smallest v with dim <= 128 v
    (rows are read in 4-element vectors by 32 lanes); the row must be a multiple of 4 elements."""
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1 or dim % TBE_VEC_WIDTH:
        raise InputError(f"`dim` a positive multiple of {TBE_VEC_WIDTH} must hold for variant 'tbe' (FBGEMM's "
                         f"rule), but got dim={dim}")
    vecs = math.ceil(dim / (32 * TBE_VEC_WIDTH))
    if vecs > 16:
        raise InputError(f"`dim <= 2048` must hold for variant 'tbe', but got dim={dim}")
    return vecs


def pinned_row_count(kernel: KernelConfig, rows: int, row_bytes: int, persisting_max_bytes: int | None) -> int:
    """Rows pinned: the hottest ``pinned_row_fraction`` of the table, at most the persisting-L2
    maximum in bytes (CONTRACT.md)."""
    n = math.floor(kernel.pinned_row_fraction * rows)
    if persisting_max_bytes is not None:
        n = min(n, persisting_max_bytes // max(1, row_bytes))
    return max(0, min(n, rows))


def hot_rows(indices: np.ndarray, rows: int) -> np.ndarray:
    """Row ids ordered hottest first (by count in ``indices``; ties by row id); out-of-range
    indices are ignored."""
    idx = np.asarray(indices).astype(np.int64, copy=False)
    valid = idx[(idx >= 0) & (idx < rows)]
    counts = np.bincount(valid, minlength=rows)
    return np.argsort(-counts, kind="stable").astype(np.int64)


def frequency_remap(indices: np.ndarray, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """(order, row_map): the table stored as ``weight[order]`` (hottest row first) and
    ``row_map[original row] = stored row``, so the access-policy window covers one range."""
    order = hot_rows(indices, rows)
    row_map = np.empty(rows, np.int64)
    row_map[order] = np.arange(rows, dtype=np.int64)
    return order, row_map


@dataclass(frozen=True, kw_only=True)
class LookupArgs:
    """Checked, normalized arguments of one lookup (arrays of the array module given)."""

    weight: Any
    indices: Any
    offsets: Any
    per_sample_weights: Any | None
    mode: int
    dtype: str
    index_dtype: str
    num_rows: int
    dim: int
    num_bags: int
    num_indices: int


def check_lookup_args(
    weight: Any,
    indices: Any,
    offsets: Any,
    mode: str,
    per_sample_weights: Any | None,
    xp: Any = np,
    to_host: Callable[[Any], np.ndarray] | None = None,
) -> LookupArgs:
    """Check dtypes, shapes and contiguity as the kernels need them (torch.nn.functional.embedding_bag
    rules, include_last_offset=False); ``xp`` is numpy or cupy. Offsets are cast to the index
    dtype; nothing else is converted silently.

    The offsets' values (first, last, non-decreasing) are checked on the host: device arrays
    need ``to_host`` (one explicit copy of the offsets; no implicit device-to-host transfer).
    """
    if mode not in MODES:
        raise InputError(f"unknown mode {mode!r}; valid choices: {', '.join(MODES)} (max is not implemented)")
    if getattr(weight, "ndim", None) != 2:
        raise InputError(f"`weight` must be a 2-D array (rows, dim), but got shape {getattr(weight, 'shape', None)}")
    dtype = next((n for n, d in _FLOAT_DTYPES.items() if weight.dtype == d), None)
    if dtype is None:
        raise InputError(f"`weight` dtype must be float32 or float16, but got {weight.dtype}")
    if not weight.flags.c_contiguous:
        raise InputError("`weight` must be C-contiguous (rows stored one after another), but it is not")
    if weight.shape[0] < 1 or weight.shape[1] < 1:
        raise InputError(f"`weight` needs at least one row and one column, but got shape {tuple(weight.shape)}")
    if getattr(indices, "ndim", None) != 1 or getattr(offsets, "ndim", None) != 1:
        raise InputError(
            "`indices` and `offsets` must be 1-D arrays, but got shapes "
            f"{getattr(indices, 'shape', None)} and {getattr(offsets, 'shape', None)}"
        )
    index_dtype = next((n for n, d in _INDEX_DTYPES.items() if indices.dtype == d), None)
    if index_dtype is None:
        raise InputError(f"`indices` dtype must be int64 or int32, but got {indices.dtype}")
    if offsets.dtype.kind not in "iu":
        raise InputError(f"`offsets` must be an integer array, but got dtype {offsets.dtype}")
    indices = xp.ascontiguousarray(indices)
    offsets = xp.ascontiguousarray(offsets.astype(indices.dtype, copy=False))
    n, b = int(indices.shape[0]), int(offsets.shape[0])
    if b > 0:
        host = np.asarray(offsets if to_host is None else to_host(offsets))
        first, last = int(host[0]), int(host[-1])
        if first != 0:
            raise InputError(f"`offsets[0] == 0` must hold (include_last_offset=False), but got offsets[0]={first}")
        if last > n:
            raise InputError(f"`offsets[-1] <= len(indices)` must hold, but got offsets[-1]={last}, len(indices)={n}")
        if b > 1 and bool((host[1:] < host[:-1]).any()):
            raise InputError("`offsets` must be non-decreasing, but it decreases somewhere")
    if per_sample_weights is not None:
        if mode != "sum":
            raise InputError(f"per_sample_weights need mode='sum' (as torch), but got mode={mode!r}")
        if getattr(per_sample_weights, "shape", None) != (n,):
            raise InputError(
                f"`per_sample_weights` must have shape ({n},) like indices, but got {getattr(per_sample_weights, 'shape', None)}"
            )
        if per_sample_weights.dtype != weight.dtype:
            raise InputError(
                f"`per_sample_weights` dtype must equal weight's ({weight.dtype}), but got {per_sample_weights.dtype}"
            )
        per_sample_weights = xp.ascontiguousarray(per_sample_weights)
    return LookupArgs(
        weight=weight,
        indices=indices,
        offsets=offsets,
        per_sample_weights=per_sample_weights,
        mode=MODES[mode],
        dtype=dtype,
        index_dtype=index_dtype,
        num_rows=int(weight.shape[0]),
        dim=int(weight.shape[1]),
        num_bags=b,
        num_indices=n,
    )


def first_out_of_range(indices: Any, num_rows: int) -> int | None:
    """Position of the first index outside [0, num_rows), or None (numpy or cupy arrays)."""
    bad = (indices < 0) | (indices >= num_rows)
    if not bool(bad.any()):
        return None
    return int(bad.argmax())


def index_error(indices: Any, position: int, num_rows: int) -> IndexError:
    value = int(indices[position])
    return IndexError(
        f"index {value} at position {position} is out of range for a table of {num_rows} rows "
        f"(`0 <= index < {num_rows}` must hold)"
    )
