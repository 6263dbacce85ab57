"""Capacity first: does a workload's tables fit in the device memory the kernel reads them from?

The embedding-stage model (``predict``, ``simulate``) times lookup kernels that read their
tables from the GPU's own memory (CONTRACT.md). A workload whose tables need more than the
usable device memory cannot run that way; it is answered before any residency work with one
:class:`~perfmodel.InputError` that names the sizes, so no table size, however large,
reaches an allocation (a 10^12-row table gets this line, not NumPy's "Unable to allocate").
The whole-model pipeline (``perfmodel.pipeline``) has the other answer: it places the tables
that do not fit in host memory, read over the host link (``device+host-mapped``).

Sizes are Python integers (no overflow at any row count).
"""

from __future__ import annotations

from dataclasses import dataclass

from perfmodel._config import Workload
from perfmodel._errors import InputError
from perfmodel._gpu import GPUSpec

__all__ = ["GPU_MEMORY_USABLE_FRACTION", "DeviceFit", "check_device_fit", "device_fit"]

#: share of a GPU's memory a program may fill (the CUDA context, the allocator's slack:
#: an estimate, the value perfmodel.pipeline's memory plan uses)
GPU_MEMORY_USABLE_FRACTION = 0.95


@dataclass(frozen=True)
class DeviceFit:
    """The bytes a workload's tables need against the device memory they may use."""

    table_bytes: int
    usable_bytes: int
    device_bytes: int

    @property
    def fits(self) -> bool:
        return self.table_bytes <= self.usable_bytes


def device_fit(workload: Workload, gpu: GPUSpec) -> DeviceFit:
    """Bytes of every table (``count`` copies each) against the GPU's usable memory (pure)."""
    need = sum(int(t.rows) * int(t.row_bytes) * int(t.count) for t in workload.tables)
    return DeviceFit(table_bytes=need, usable_bytes=int(gpu.dram_size_bytes * GPU_MEMORY_USABLE_FRACTION),
                     device_bytes=int(gpu.dram_size_bytes))


def _gb(nbytes: int) -> str:
    return f"{nbytes / 1e9:,.1f} GB"


def check_device_fit(workload: Workload, gpu: GPUSpec) -> DeviceFit:
    """:func:`device_fit`, raising :class:`InputError` (one line naming the sizes) when the
    tables do not fit."""
    fit = device_fit(workload, gpu)
    if fit.fits:
        return fit
    biggest = max(workload.tables, key=lambda t: t.rows * t.row_bytes * t.count)
    raise InputError(
        f"`table bytes <= usable device memory` must hold, but the workload's tables need {_gb(fit.table_bytes)} "
        f"(largest: {biggest.count} x {biggest.rows:,} rows x {biggest.row_bytes} B) and {gpu.id} has "
        f"{_gb(fit.usable_bytes)} usable ({GPU_MEMORY_USABLE_FRACTION:.0%} of {_gb(fit.device_bytes)}); "
        "shard or shrink the tables, or use `recperf pipeline`, which places tables that do not fit host-mapped"
    )
