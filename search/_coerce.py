"""Input coercion shared by the search entry points: workloads and GPUs given as objects,
ids or file paths (integer arguments go through :func:`perfmodel.check_int`)."""

from __future__ import annotations

import os
from pathlib import Path

import perfmodel
from perfmodel import GPUSpec, Workload

__all__ = ["as_gpu", "as_workload"]


def as_workload(workload: Workload | str | os.PathLike[str]) -> tuple[Workload, str | None]:
    """``workload`` as a :class:`Workload`, with the file's stem when it came from a file."""
    if isinstance(workload, Workload):
        return workload, None
    return perfmodel.load_workload(workload), Path(workload).stem


def as_gpu(gpu: GPUSpec | str) -> GPUSpec:
    """``gpu`` as a :class:`GPUSpec` (an id or a spec file path is looked up)."""
    return gpu if isinstance(gpu, GPUSpec) else perfmodel.get_gpu(gpu)
