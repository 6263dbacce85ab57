"""The pure parts of the microbenchmarks: chains, footprints, the spoiler size, results records."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from perfmodel import GPUSpec, InputError

__all__ = [
    "CHASE_MIN_MAX_BYTES",
    "CHASE_SLOT_BYTES",
    "QUICK_CHASE_MAX_STEPS",
    "chase_footprints",
    "chase_max_bytes",
    "chase_next_slots",
    "chase_order",
    "chase_steps",
    "l2_footprints",
    "spoiler_shared_mem_bytes",
]

#: one pointer every 64 bytes (as the published chase): a slot is 8 int64
CHASE_SLOT_BYTES = 64


def chase_next_slots(n_slots: int, seed: int = 0) -> npt.NDArray[np.int64]:
    """``next[i]``: the slot after slot ``i`` in one random cycle through all ``n_slots`` slots."""
    if n_slots < 2:
        raise InputError(f"`n_slots >= 2` must hold, but got n_slots={n_slots}")
    order = np.random.default_rng(seed).permutation(n_slots).astype(np.int64)
    nxt = np.empty(n_slots, dtype=np.int64)
    nxt[order] = np.roll(order, -1)
    return nxt


def chase_steps(n_slots: int, *, min_steps: int = 1 << 16, max_steps: int = 1 << 20) -> int:
    """Timed steps: at least two laps of small chains, capped for huge ones; a multiple of 16."""
    steps = min(max(2 * n_slots, min_steps), max_steps)
    return int(math.ceil(steps / 16) * 16)


def chase_footprints(max_bytes: int, *, min_bytes: int = 4 << 10, factor: float = 1.25) -> list[int]:
    """Geometric footprints (multiples of the slot size) from ``min_bytes`` to ``max_bytes``,
    both ends included, whatever the factor."""
    if not (CHASE_SLOT_BYTES * 2 <= min_bytes <= max_bytes) or factor <= 1:
        raise InputError(f"`128 <= min_bytes <= max_bytes and factor > 1` must hold, but got "
                         f"(min_bytes={min_bytes}, max_bytes={max_bytes}, factor={factor})")
    out: list[int] = []
    f = float(min_bytes)
    while f <= max_bytes:
        b = int(f) // CHASE_SLOT_BYTES * CHASE_SLOT_BYTES
        if not out or b > out[-1]:
            out.append(b)
        f *= factor
    last = max_bytes // CHASE_SLOT_BYTES * CHASE_SLOT_BYTES
    if last > out[-1]:
        out.append(last)
    return out


#: the largest chase footprint is at least this, and at least 4x the L2 (well into DRAM latency)
CHASE_MIN_MAX_BYTES = 256 << 20
#: quick mode's cap on timed steps: a DRAM-bound chase of 2^18 steps takes ~0.2 s
QUICK_CHASE_MAX_STEPS = 1 << 18


def chase_max_bytes(l2_size_bytes: int) -> int:
    """The largest footprint of a chase sweep: ``max(4 x L2, 256 MiB)``."""
    return max(4 * int(l2_size_bytes), CHASE_MIN_MAX_BYTES)


def chase_order(footprints: list[int]) -> list[int]:
    """Run order of a chase sweep: the smallest (L1), the largest (DRAM), then the rest in
    increasing order, so a deadline cuts the middle of the curve, never its two ends."""
    if len(footprints) <= 2:
        return list(footprints)
    fps = sorted(footprints)
    return [fps[0], fps[-1], *fps[1:-1]]


def l2_footprints(l2_size_bytes: int, *, quick: bool = False) -> list[int]:
    """Footprints in whole 512 KiB chunks: dense around the L2 size, out to 16x beyond it."""
    chunk = 512 << 10
    points = np.geomspace(3 * chunk, 16 * l2_size_bytes, 14 if quick else 36)
    out = sorted({max(1, round(p / chunk)) * chunk for p in points})
    return [int(x) for x in out]


def spoiler_shared_mem_bytes(gpu: GPUSpec, blocks_per_sm: int) -> int:
    """Dynamic shared memory per block that leaves room for exactly ``blocks_per_sm`` blocks.

    Each block takes its dynamic shared memory plus the reserved 1 KiB, rounded up to the
    allocation unit; the answer is the largest such size that fits ``blocks_per_sm`` times.
    """
    if not 1 <= blocks_per_sm <= gpu.max_blocks_per_sm:
        raise InputError(f"`1 <= blocks_per_sm <= {gpu.max_blocks_per_sm}` must hold, but got {blocks_per_sm}")
    unit = gpu.shared_mem_allocation_unit_bytes
    per_block = gpu.shared_mem_per_sm_bytes // blocks_per_sm // unit * unit
    smem = min(per_block - gpu.reserved_shared_mem_per_block_bytes, gpu.shared_mem_per_block_optin_bytes)
    if smem < 0:
        raise InputError(f"{gpu.id}: no shared memory size gives {blocks_per_sm} blocks per SM")
    return int(smem)


def result_record(benchmark: str, gpu: str | None, **fields: Any) -> dict[str, Any]:
    """One line of a microbenchmark results file (see :mod:`validation.micro`)."""
    return {"benchmark": benchmark, "gpu": gpu, **fields}
