"""Capacity first: does a workload fit in the device memory the kernel runs from, and does
the index stream the model draws fit in host memory?

The embedding-stage model (``predict``, ``simulate``) times lookup kernels that read their
tables from the GPU's own memory (CONTRACT.md). A workload whose tables need more than the
usable device memory cannot run that way; it is answered before any residency work with one
:class:`~perfmodel.InputError` that names the sizes, so no table size, however large,
reaches an allocation (a 10^12-row table gets this line, not NumPy's "Unable to allocate").
The kernel's inputs and output live in device memory too: each table copy's indices
(``INDEX_BYTES`` each, as PyTorch passes them), its ``batch + 1`` offsets and its pooled
output (``batch`` rows of ``row_bytes``) are counted with the tables. The whole-model
pipeline (``perfmodel.pipeline``) has the other answer for tables: it places the tables
that do not fit in host memory, read over the host link (``device+host-mapped``).

Host memory: the model and the simulator draw one call's index stream per table
(:func:`perfmodel.table_call`: lengths, offsets and indices, 8-byte integers, plus the
sampler's temporaries); :func:`check_host_fit` refuses a call whose arrays would not fit in
the host memory available now, before the first allocation, instead of NumPy's
``Unable to allocate`` (or the kernel's OOM killer) mid-run.

Sizes are Python integers (no overflow at any row count).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from perfmodel._config import Table, Workload
from perfmodel._errors import InputError
from perfmodel._gpu import GPUSpec

__all__ = ["GPU_MEMORY_USABLE_FRACTION", "DeviceFit", "call_host_bytes", "check_device_fit", "check_host_fit",
           "device_fit", "host_available_bytes"]

#: bytes of one offset (int64)
OFFSET_BYTES = 8

#: share of a GPU's memory a program may fill (the CUDA context, the allocator's slack:
#: an estimate, the value perfmodel.pipeline's memory plan uses)
GPU_MEMORY_USABLE_FRACTION = 0.95


@dataclass(frozen=True)
class DeviceFit:
    """The bytes a workload's tables need against the device memory they may use."""

    table_bytes: int
    usable_bytes: int
    device_bytes: int
    #: the kernels' indices, offsets and pooled outputs (every table copy)
    io_bytes: int = 0

    @property
    def fits(self) -> bool:
        return self.table_bytes + self.io_bytes <= self.usable_bytes


def _io_bytes(t: Table, batch: int) -> int:
    # imported here: perfmodel._kernel imports perfmodel._indices, which imports this module
    from perfmodel._kernel import INDEX_BYTES

    lookups = math.ceil(batch * t.mean_pooling)
    return (lookups * INDEX_BYTES + (batch + 1) * OFFSET_BYTES + batch * int(t.row_bytes)) * int(t.count)


def device_fit(workload: Workload, gpu: GPUSpec) -> DeviceFit:
    """Bytes of every table (``count`` copies each) and of its call's inputs and output against
    the GPU's usable memory (pure)."""
    need = sum(int(t.rows) * int(t.row_bytes) * int(t.count) for t in workload.tables)
    io = sum(_io_bytes(t, workload.batch_size) for t in workload.tables)
    return DeviceFit(table_bytes=need, usable_bytes=int(gpu.dram_size_bytes * GPU_MEMORY_USABLE_FRACTION),
                     device_bytes=int(gpu.dram_size_bytes), io_bytes=io)


def _gb(nbytes: int) -> str:
    return f"{nbytes / 1e9:,.1f} GB"


def check_device_fit(workload: Workload, gpu: GPUSpec) -> DeviceFit:
    """:func:`device_fit`, raising :class:`InputError` (one line naming the sizes) when the
    tables do not fit."""
    fit = device_fit(workload, gpu)
    if fit.fits:
        return fit
    if fit.table_bytes <= fit.usable_bytes:  # the tables fit; their inputs and outputs do not
        raise InputError(
            f"`table bytes + indices, offsets and outputs <= usable device memory` must hold, but batch "
            f"{workload.batch_size:,} needs {_gb(fit.io_bytes)} of indices, offsets and pooled outputs on top of "
            f"{_gb(fit.table_bytes)} of tables, and {gpu.id} has {_gb(fit.usable_bytes)} usable "
            f"({GPU_MEMORY_USABLE_FRACTION:.0%} of {_gb(fit.device_bytes)}); split the batch"
        )
    biggest = max(workload.tables, key=lambda t: t.rows * t.row_bytes * t.count)
    raise InputError(
        f"`table bytes <= usable device memory` must hold, but the workload's tables need {_gb(fit.table_bytes)} "
        f"(largest: {biggest.count} x {biggest.rows:,} rows x {biggest.row_bytes} B) and {gpu.id} has "
        f"{_gb(fit.usable_bytes)} usable ({GPU_MEMORY_USABLE_FRACTION:.0%} of {_gb(fit.device_bytes)}); "
        "shard or shrink the tables, or use `recperf pipeline`, which places tables that do not fit host-mapped"
    )


#: bytes the model's host arrays take per bag (lengths, their cumulative sum, offsets: int64)
#: and per lookup (indices, and the sampler's draws and ranks: about three int64/float64
#: arrays of that length at once), for :func:`call_host_bytes`
HOST_BYTES_PER_BAG = 3 * 8
HOST_BYTES_PER_LOOKUP = 4 * 8


def call_host_bytes(table: Table, batch_size: int) -> int:
    """Host bytes of one call's index stream of ``table`` (an estimate, see the constants)."""
    return batch_size * HOST_BYTES_PER_BAG + math.ceil(batch_size * table.mean_pooling) * HOST_BYTES_PER_LOOKUP


def host_available_bytes() -> int:
    """Host memory available to a new allocation now (Linux ``MemAvailable``; elsewhere the
    physical memory)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (OSError, ValueError, AttributeError):
        return 1 << 62  # unknown: no rule


def check_host_fit(table: Table, batch_size: int) -> int:
    """Raise :class:`InputError` when one call's index stream of ``table`` would not fit in the
    host memory available now; returns its bytes."""
    need = call_host_bytes(table, batch_size)
    have = host_available_bytes()
    if need > have:
        raise InputError(
            f"`host bytes of one call's index stream <= available host memory` must hold, but batch {batch_size:,} x "
            f"{table.mean_pooling:g} lookups per bag needs about {_gb(need)} and {_gb(have)} is available; "
            "give a smaller batch"
        )
    return need
