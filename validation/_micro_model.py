"""The model's microbenchmark predictions, behind one small interface.

By default these are ``perfmodel.micro_stream_read``, ``micro_pointer_chase`` and
``micro_l2_read`` (CONTRACT.md ``micro`` kinds). Calibration and the published comparison
take a :class:`MicroModel`, so tests can check them against a known stand-in as well.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import perfmodel
from perfmodel import GPUSpec

__all__ = ["MicroModel", "perfmodel_micro_model"]


@dataclass(frozen=True, kw_only=True)
class MicroModel:
    """Three functions of a GPU spec: stream-read and L2-read bandwidth (B/s), chase latency (cycles)."""

    stream_read: Callable[[GPUSpec, int, int], float]  # (gpu, block_size, blocks_per_sm) -> B/s
    pointer_chase: Callable[[GPUSpec, int], float]  # (gpu, footprint_bytes) -> cycles
    l2_read: Callable[[GPUSpec, int], float]  # (gpu, footprint_bytes) -> B/s


def _value(result: Any, *names: str) -> float:
    """A float, or the first of ``names`` found on a result object or mapping."""
    if isinstance(result, (int, float)):
        return float(result)
    for n in names:
        if isinstance(result, dict) and n in result:
            return float(result[n])
        if hasattr(result, n):
            return float(getattr(result, n))
    raise TypeError(f"cannot read {names} from the model's result {result!r}")


def perfmodel_micro_model() -> MicroModel:
    """The project's model (``perfmodel.micro_*``); a clear error if this build lacks them."""
    missing = [n for n in ("micro_stream_read", "micro_pointer_chase", "micro_l2_read") if not hasattr(perfmodel, n)]
    if missing:
        raise RuntimeError(f"perfmodel lacks {', '.join(missing)}: the microbenchmark model is not available")
    stream: Any = perfmodel.micro_stream_read  # type: ignore[attr-defined]
    chase: Any = perfmodel.micro_pointer_chase  # type: ignore[attr-defined]
    l2: Any = perfmodel.micro_l2_read  # type: ignore[attr-defined]
    return MicroModel(
        stream_read=lambda g, b, k: _value(stream(g, block_size=b, blocks_per_sm=k), "bandwidth_bytes_per_s"),
        pointer_chase=lambda g, f: _value(chase(g, footprint_bytes=f), "latency_cycles"),
        l2_read=lambda g, f: _value(l2(g, footprint_bytes=f), "bandwidth_bytes_per_s"),
    )
