"""The trace-driven simulator behind :func:`perfmodel.simulate` (docs/simulator.md).

Importing this package loads no numba: the compiled kernels (``_l2jit``, ``_desjit``) are
imported inside the functions that run them.
"""

from __future__ import annotations

from perfmodel.sim._cache import POLICIES, CacheSimResult, cache_sim, read_trace
from perfmodel.sim._timing import SimParams, SimResult, TableSim, simulate, simulate_detailed

__all__ = [
    "POLICIES",
    "CacheSimResult",
    "SimParams",
    "SimResult",
    "TableSim",
    "cache_sim",
    "read_trace",
    "simulate",
    "simulate_detailed",
]
