"""Microbenchmarks on a real GPU: pointer chase, stream read, L2 read, persisting L2.

The CUDA sources are in :mod:`validation.micro._sources`, the pure planning (chains,
footprints, the shared-memory spoiler) in :mod:`validation.micro._plan`, the GPU runs and
the results-file format in :mod:`validation.micro._bench`.
"""

from __future__ import annotations

from validation.micro._bench import KINDS, run_microbenchmarks
from validation.micro._plan import (
    CHASE_SLOT_BYTES,
    QUICK_CHASE_MAX_STEPS,
    chase_footprints,
    chase_max_bytes,
    chase_next_slots,
    chase_order,
    chase_steps,
    l2_footprints,
    spoiler_shared_mem_bytes,
)

__all__ = [
    "CHASE_SLOT_BYTES",
    "KINDS",
    "QUICK_CHASE_MAX_STEPS",
    "chase_footprints",
    "chase_max_bytes",
    "chase_next_slots",
    "chase_order",
    "chase_steps",
    "l2_footprints",
    "run_microbenchmarks",
    "spoiler_shared_mem_bytes",
]
