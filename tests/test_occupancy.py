"""Occupancy: exact against NVIDIA's cuda_occupancy.h over the full grid, plus worked examples."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import numpy as np
import pytest

import perfmodel

SMEM_KIB = [0, 1, 8, 48, 100]


def _variant(base: perfmodel.GPUSpec, cc: tuple[int, int]) -> perfmodel.GPUSpec:
    """The catalogue GPU for 8.0/9.0; for 8.6/8.9 a GPU with that generation's SM limits
    (CUDA guide: 1536 threads, 100 KiB shared memory per SM, 16 / 24 blocks)."""
    if cc in ((8, 0), (9, 0)):
        return base
    return dataclasses.replace(
        base,
        id=f"test-cc{cc[0]}{cc[1]}",
        compute_capability_major=cc[0],
        compute_capability_minor=cc[1],
        max_threads_per_sm=1536,
        max_blocks_per_sm=16 if cc == (8, 6) else 24,
        shared_mem_per_sm_bytes=102400,
        shared_mem_per_block_optin_bytes=101376,
    )


GPUS = {
    (8, 0): lambda: perfmodel.get_gpu("a100-80gb"),
    (8, 6): lambda: _variant(perfmodel.get_gpu("a100-80gb"), (8, 6)),
    (8, 9): lambda: _variant(perfmodel.get_gpu("a100-80gb"), (8, 9)),
    (9, 0): lambda: perfmodel.get_gpu("h100-sxm"),
}


@pytest.mark.parametrize("cc", list(GPUS))
def test_full_grid_matches_cuda_occupancy_h(cc: tuple[int, int], occupancy_oracle: Path) -> None:
    gpu = GPUS[cc]()
    smem = [k * 1024 for k in SMEM_KIB] + [gpu.shared_mem_per_block_optin_bytes]
    b, r, s = np.meshgrid(np.arange(32, 1025, 32), np.arange(1, 256), np.array(smem), indexing="ij")
    b, r, s = b.ravel(), r.ravel(), s.ravel()
    head = f"{cc[0]} {cc[1]} {gpu.max_threads_per_sm} {gpu.shared_mem_per_sm_bytes} {gpu.shared_mem_per_block_optin_bytes}"
    stdin = "".join(f"{head} {bb} {rr} {ss}\n" for bb, rr, ss in zip(b, r, s, strict=True))
    out = subprocess.run([str(occupancy_oracle)], input=stdin, capture_output=True, text=True, check=True).stdout
    ref = np.array([[int(x) for x in line.split()] for line in out.splitlines()])
    assert len(ref) == len(b)
    ours = perfmodel.blocks_per_sm(gpu, b, r, s)
    valid = ref[:, 0] >= 0
    mismatch = valid & (
        (ours["active"] != ref[:, 0]) | (ours["registers"] != ref[:, 1]) | (ours["shared_memory"] != ref[:, 2])
        | (ours["warps"] != ref[:, 3]) | (ours["blocks"] != ref[:, 4])
    )
    bad = [(int(b[i]), int(r[i]), int(s[i]), int(ours["active"][i]), int(ref[i, 0])) for i in np.flatnonzero(mismatch)[:5]]
    print(f"cc {cc[0]}.{cc[1]}: compared {int(valid.sum())} launches with cuda_occupancy.h, {int(mismatch.sum())} mismatches")
    assert not bad, f"(block, regs, smem, ours, nvidia) mismatches on cc {cc}: {bad}"
    assert valid.sum() >= 0.99 * len(b)
    # the scalar API agrees with the vectorized one (spot check over the same grid)
    for i in range(0, len(b), 997):
        kw = {"block_size": int(b[i]), "registers_per_thread": int(r[i]), "shared_mem_bytes": int(s[i])}
        if s[i] > gpu.shared_mem_per_block_optin_bytes:  # cannot launch: NVIDIA says 0 blocks, we refuse it
            assert ref[i, 0] == 0
            with pytest.raises(ValueError, match="shared_mem_bytes"):
                perfmodel.occupancy(gpu, **kw)
        else:
            assert perfmodel.occupancy(gpu, **kw).active_blocks_per_sm == ref[i, 0], kw


@pytest.mark.parametrize(
    ("regs", "blocks"), [(32, 8), (33, 6), (40, 6), (41, 5), (48, 5), (49, 4), (54, 4), (56, 4)]
)
def test_a100_256_threads_register_steps(regs: int, blocks: int) -> None:
    """FACTS.md section 3: A100, 256 threads: 32 regs -> 8 blocks; 33-40 -> 6; 41-48 -> 5; 49-56 -> 4."""
    o = perfmodel.occupancy(perfmodel.get_gpu("a100-80gb"), block_size=256, registers_per_thread=regs)
    assert o.active_blocks_per_sm == blocks
    assert o.active_warps_per_sm == 8 * blocks
    assert o.occupancy == pytest.approx(8 * blocks / 64)


def test_limiter_names_the_resource() -> None:
    gpu = perfmodel.get_gpu("a100-80gb")
    assert perfmodel.occupancy(gpu, block_size=256, registers_per_thread=54).limiter == "registers"
    assert perfmodel.occupancy(gpu, block_size=1024, registers_per_thread=16).limiter == "warps"
    assert perfmodel.occupancy(gpu, block_size=32, registers_per_thread=16).limiter == "blocks"
    o = perfmodel.occupancy(gpu, block_size=128, registers_per_thread=16, shared_mem_bytes=100 * 1024)
    assert o.limiter == "shared_memory" and o.active_blocks_per_sm == 1


def test_unlaunchable_is_zero_blocks() -> None:
    o = perfmodel.occupancy(perfmodel.get_gpu("a100-80gb"), block_size=1024, registers_per_thread=255)
    assert o.active_blocks_per_sm == 0 and o.occupancy == 0.0 and o.limiter == "registers"


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"block_size": 0, "registers_per_thread": 32}, "1 <= block_size <= 1024"),
        ({"block_size": 2048, "registers_per_thread": 32}, "block_size=2048"),
        ({"block_size": 256, "registers_per_thread": 300}, "registers_per_thread <= 255"),
        ({"block_size": 256, "registers_per_thread": 32, "shared_mem_bytes": -1}, "0 <= shared_mem_bytes"),
        ({"block_size": 256.0, "registers_per_thread": 32}, "must be an integer"),
    ],
)
def test_bad_arguments_raise_value_error_with_rule(kw: dict[str, object], needle: str) -> None:
    with pytest.raises(ValueError, match=needle.replace("(", r"\(")):
        perfmodel.occupancy(perfmodel.get_gpu("a100-80gb"), **kw)  # type: ignore[arg-type]
