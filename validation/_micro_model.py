"""The model's microbenchmark predictions, behind one small interface.

By default these are ``perfmodel.micro_stream_read``, ``micro_pointer_chase`` and
``micro_l2_read`` (CONTRACT.md ``micro`` kinds). Calibration and the published comparison
take a :class:`MicroModel`, so tests can check them against a known stand-in as well.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import perfmodel
from perfmodel import GPUSpec

__all__ = ["MicroModel", "perfmodel_micro_model"]


@dataclass(frozen=True, kw_only=True)
class MicroModel:
    """Three functions of a GPU spec: stream-read and L2-read bandwidth (B/s), chase latency (cycles)."""

    stream_read: Callable[[GPUSpec, int, int], float]  # (gpu, block_size, blocks_per_sm) -> B/s
    pointer_chase: Callable[[GPUSpec, int], float]  # (gpu, footprint_bytes) -> cycles
    l2_read: Callable[[GPUSpec, int], float]  # (gpu, footprint_bytes) -> B/s


def perfmodel_micro_model() -> MicroModel:
    """The project's model: ``perfmodel.micro_stream_read``, ``micro_pointer_chase``, ``micro_l2_read``."""
    return MicroModel(
        stream_read=lambda g, b, k: perfmodel.micro_stream_read(g, block_size=b, blocks_per_sm=k),
        pointer_chase=lambda g, f: perfmodel.micro_pointer_chase(g, footprint_bytes=f),
        l2_read=lambda g, f: perfmodel.micro_l2_read(g, footprint_bytes=f),
    )
