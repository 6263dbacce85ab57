"""How validation talks to the GPU: CuPy (and cuda-python for the L2 access-policy window).

Every GPU library is imported inside the functions that need it, never at import time.
"""

from __future__ import annotations

from validation.backends._cupy import (
    CupyBackend,
    cuda_python_runtime,
    gpu_available,
    match_gpu_id,
    software_versions,
)

__all__ = ["CupyBackend", "cuda_python_runtime", "gpu_available", "match_gpu_id", "software_versions"]
