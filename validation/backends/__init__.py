"""How validation talks to the GPU: CuPy (and cuda-python for the L2 access-policy window).

Every GPU library is imported inside the functions that need it, never at import time.
"""

from __future__ import annotations

from validation.backends._cupy import (
    INSTRUMENT_SOURCE,
    CupyBackend,
    device_clocks_khz,
    gpu_available,
    match_gpu_id,
    nvml_snapshot,
    software_versions,
)

__all__ = [
    "INSTRUMENT_SOURCE",
    "CupyBackend",
    "device_clocks_khz",
    "gpu_available",
    "match_gpu_id",
    "nvml_snapshot",
    "software_versions",
]
