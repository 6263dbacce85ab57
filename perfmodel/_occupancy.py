"""Theoretical occupancy, exactly as NVIDIA's ``cuda_occupancy.h`` computes it.

Notation: B threads per block, R registers per thread, S dynamic shared memory per block
(bytes), W = ceil(B / warp_size) warps per block.

The rules, for compute capability 8.x and 9.0 (``cudaOccMaxActiveBlocksPerMultiprocessor``):

- registers: a warp is given ``ceil(R * 32 / 256) * 256`` registers; each of the 4 SM
  sub-partitions holds ``floor(65536 / 4 / that)`` warps, so the SM holds
  ``floor(4 * that_per_sub / W)`` blocks; a block whose warps, rounded up to a multiple
  of 4, need more than 64K registers cannot launch;
- warps: ``floor(max_warps_per_sm / W)``; 0 if ``B > max_threads_per_block``;
- blocks: the architecture's resident-block limit;
- shared memory: ``S + static + 1 KiB reserved`` rounded up to 128 B per block, against
  the SM's shared memory at the default carveout (all of it); 0 if it exceeds the opt-in
  per-block maximum (the kernel is taken as opted in to the largest dynamic size);
- barriers (9.0 only): two per resident-block slot, one used per block.

One implementation, vectorized with NumPy; :func:`occupancy` is its scalar face.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt

from perfmodel._errors import InputError, check_int
from perfmodel._gpu import GPUSpec

__all__ = ["Occupancy", "blocks_per_sm", "occupancy"]

_INT_MAX = 2**31 - 1
_LIMITERS = ("registers", "shared_memory", "warps", "blocks", "barriers")

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, kw_only=True)
class Occupancy:
    """Theoretical occupancy of one kernel launch configuration on one SM."""

    active_blocks_per_sm: int
    active_warps_per_sm: int
    occupancy: float
    #: the resource that sets the limit (first of registers, shared_memory, warps, blocks, barriers)
    limiter: str
    #: every resource whose limit equals the result
    limiters: tuple[str, ...]
    #: blocks per SM each resource alone would allow
    block_limits: dict[str, int]
    registers_per_block: int
    shared_mem_per_block_bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "active_blocks_per_sm": self.active_blocks_per_sm,
            "active_warps_per_sm": self.active_warps_per_sm,
            "occupancy": self.occupancy,
            "limiter": self.limiter,
            "limiters": list(self.limiters),
            "block_limits": dict(self.block_limits),
            "allocated_registers_per_block": self.registers_per_block,
            "allocated_shared_mem_per_block_bytes": self.shared_mem_per_block_bytes,
        }


def _round_up(x: IntArray, unit: int) -> IntArray:
    return ((x + unit - 1) // unit) * unit


def _align_up_shmem_config(size: IntArray, gpu: GPUSpec) -> IntArray:
    """``cudaOccAlignUpShmemSizeVoltaPlus``: the SM's shared-memory carveout sizes (KiB)."""
    major, minor = gpu.compute_capability
    if major == 9:
        steps = [0, 8, 16, 32, 64, 100, 132, 164, 196, 228]
    elif major == 8 and minor in (0, 7):
        steps = [0, 8, 16, 32, 64, 100, 132, 164]
    else:  # 8.6, 8.9
        steps = [0, 8, 16, 32, 64, 100]
    edges = np.array(steps, dtype=np.int64) * 1024
    idx = np.searchsorted(edges, size, side="left")
    # sizes beyond the largest step are invalid in the header; they never reach here
    # because the per-block limit check rejects them first.
    return np.asarray(edges[np.minimum(idx, len(edges) - 1)], dtype=np.int64)


def blocks_per_sm(
    gpu: GPUSpec,
    block_size: npt.ArrayLike,
    registers_per_thread: npt.ArrayLike,
    shared_mem_bytes: npt.ArrayLike = 0,
    static_shared_mem_bytes: npt.ArrayLike = 0,
) -> dict[str, IntArray]:
    """Per-resource block limits and the result, vectorized over broadcastable inputs.

    Returns a dict with keys ``active`` and one per limiter (``registers``,
    ``shared_memory``, ``warps``, ``blocks``, ``barriers``), plus ``registers_per_block``
    and ``shared_mem_per_block_bytes`` (allocated). Out-of-range launches give 0 blocks.
    """
    b = np.asarray(block_size, dtype=np.int64)
    r = np.asarray(registers_per_thread, dtype=np.int64)
    s = np.asarray(shared_mem_bytes, dtype=np.int64)
    st = np.asarray(static_shared_mem_bytes, dtype=np.int64)
    b, r, s, st = np.broadcast_arrays(b, r, s, st)
    ws = gpu.warp_size
    warps = (b + ws - 1) // ws

    # registers (cudaOccMaxBlocksPerSMRegsLimit, partitioned global caching off on 8.x/9.x)
    regs_per_warp = _round_up(r * ws, gpu.register_allocation_unit)
    regs_per_cta = regs_per_warp * warps
    regs_assumed = regs_per_warp * _round_up(warps, gpu.sub_partitions_per_sm)
    max_regs_rule = 256  # cudaOccRegAllocationMaxPerThread for CC >= 7
    too_many = (gpu.registers_per_block < regs_assumed) | (gpu.registers_per_block < regs_per_cta) | (r > max_regs_rule)
    per_sub = gpu.registers_per_sm // gpu.sub_partitions_per_sm
    safe_rpw = np.maximum(regs_per_warp, 1)
    reg_blocks = (per_sub // safe_rpw) * gpu.sub_partitions_per_sm // np.maximum(warps, 1)
    reg_blocks = np.where(regs_per_warp > 0, reg_blocks, _INT_MAX)
    reg_blocks = np.where(too_many, 0, reg_blocks)

    # warps
    warp_blocks = np.where(b > gpu.max_threads_per_block, 0, gpu.max_warps_per_sm // np.maximum(warps, 1))

    # resident blocks
    blk_blocks = np.full_like(b, gpu.max_blocks_per_sm)

    # shared memory (cudaOccMaxBlocksPerSMSmemLimit with FUNC_SHMEM_LIMIT_OPTIN and
    # maxDynamicSharedSizeBytes = sharedMemPerBlockOptin)
    reserved = gpu.reserved_shared_mem_per_block_bytes
    static_total = st + reserved
    allocated = _round_up(static_total + s, gpu.shared_mem_allocation_unit_bytes)
    max_usage = static_total + gpu.shared_mem_per_block_optin_bytes
    per_block_limit = np.where(
        max_usage > gpu.shared_mem_per_block_bytes, gpu.shared_mem_per_block_optin_bytes, gpu.shared_mem_per_block_bytes
    ) + reserved
    exceeded = (s > gpu.shared_mem_per_block_optin_bytes) | (allocated > per_block_limit)
    preference = int(_align_up_shmem_config(np.array([gpu.shared_mem_per_sm_bytes], dtype=np.int64), gpu)[0])
    sm_smem = np.where(preference >= allocated, preference, _align_up_shmem_config(allocated, gpu))
    smem_blocks = np.where(allocated > 0, sm_smem // np.maximum(allocated, 1), _INT_MAX)
    smem_blocks = np.where(exceeded, 0, smem_blocks)

    active = np.minimum(np.minimum(reg_blocks, smem_blocks), np.minimum(warp_blocks, blk_blocks))
    if gpu.compute_capability_major >= 9:
        bar_blocks = np.full_like(b, 2 * gpu.max_blocks_per_sm)  # one barrier per block
        active = np.minimum(active, bar_blocks)
    else:
        bar_blocks = np.full_like(b, _INT_MAX)
    return {
        "active": active,
        "registers": reg_blocks,
        "shared_memory": smem_blocks,
        "warps": warp_blocks,
        "blocks": blk_blocks,
        "barriers": bar_blocks,
        "registers_per_block": regs_per_cta,
        "shared_mem_per_block_bytes": allocated,
    }


def occupancy(
    gpu: GPUSpec,
    *,
    block_size: int,
    registers_per_thread: int,
    shared_mem_bytes: int = 0,
    static_shared_mem_bytes: int = 0,
) -> Occupancy:
    """Theoretical occupancy of a kernel on one SM of ``gpu``.

    Args:
        gpu: the GPU.
        block_size: threads per block (1 to the GPU's maximum).
        registers_per_thread: registers per thread as the compiler reports them (0-255).
        shared_mem_bytes: dynamic shared memory per block; the kernel counts as opted in
            to the GPU's largest dynamic shared memory per block.
        static_shared_mem_bytes: the kernel's static shared memory (at most the default
            per-block size; dynamic plus static at most the opt-in maximum).

    Raises:
        ValueError: an argument outside its domain (the message states the rule).
    """
    b = check_int(block_size, "block_size", min_val=1, max_val=gpu.max_threads_per_block)
    r = check_int(registers_per_thread, "registers_per_thread", min_val=0, max_val=gpu.max_registers_per_thread)
    s = check_int(shared_mem_bytes, "shared_mem_bytes", min_val=0, max_val=gpu.shared_mem_per_block_optin_bytes)
    # static shared memory is capped at the default per-block size (48 KiB: only dynamic
    # shared memory may opt in to more, CUDA C++ Programming Guide, "Shared Memory")
    st = check_int(static_shared_mem_bytes, "static_shared_mem_bytes", min_val=0, max_val=gpu.shared_mem_per_block_bytes)
    if s + st > gpu.shared_mem_per_block_optin_bytes:  # a launch CUDA refuses (invalid argument)
        raise InputError(
            f"`shared_mem_bytes + static_shared_mem_bytes <= {gpu.shared_mem_per_block_optin_bytes}` (the largest "
            f"shared memory a block of {gpu.id} may have) must hold, but got {s} + {st} = {s + st}"
        )
    return _occupancy_cached(gpu, b, r, s, st)


@lru_cache(maxsize=65536)
def _occupancy_cached(gpu: GPUSpec, b: int, r: int, s: int, st: int) -> Occupancy:
    lim = blocks_per_sm(gpu, b, r, s, st)
    active = int(lim["active"])
    limits = {k: int(lim[k]) for k in _LIMITERS}
    limiters = tuple(k for k in _LIMITERS if limits[k] == active)
    warps = active * ((b + gpu.warp_size - 1) // gpu.warp_size)
    return Occupancy(
        active_blocks_per_sm=active,
        active_warps_per_sm=warps,
        occupancy=warps / gpu.max_warps_per_sm,
        limiter=limiters[0] if limiters else "none",
        limiters=limiters,
        block_limits={k: v for k, v in limits.items() if v != _INT_MAX},
        registers_per_block=int(lim["registers_per_block"]),
        shared_mem_per_block_bytes=int(lim["shared_mem_per_block_bytes"]),
    )
