"""Input coercion shared by the search entry points: workloads and GPUs given as objects,
ids or file paths, and the integer-argument rule."""

from __future__ import annotations

import os
from pathlib import Path

import perfmodel
from perfmodel import GPUSpec, InputError, Workload

__all__ = ["as_gpu", "as_workload", "check_int"]


def as_workload(workload: Workload | str | os.PathLike[str]) -> tuple[Workload, str | None]:
    """``workload`` as a :class:`Workload`, with the file's stem when it came from a file."""
    if isinstance(workload, Workload):
        return workload, None
    return perfmodel.load_workload(workload), Path(workload).stem


def as_gpu(gpu: GPUSpec | str) -> GPUSpec:
    """``gpu`` as a :class:`GPUSpec` (an id or a spec file path is looked up)."""
    return gpu if isinstance(gpu, GPUSpec) else perfmodel.get_gpu(gpu)


def check_int(name: str, value: object, low: int = 1) -> int:
    """``value`` if it is an int (not a bool) ``>= low``; else :class:`InputError` naming the rule."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InputError(f"`{name} >= {low}` must hold, but got {name}={value!r}")
    return value
