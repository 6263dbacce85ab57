"""Capacity first: a workload larger than the device memory gets one error naming the sizes."""

from __future__ import annotations

import pytest

import perfmodel
from perfmodel._capacity import GPU_MEMORY_USABLE_FRACTION, check_device_fit, device_fit

H200 = perfmodel.get_gpu("h200")


def _workload(rows: int, dim: int = 128, dtype: str = "float32", count: int = 1) -> perfmodel.Workload:
    return perfmodel.Workload(batch_size=4096, tables=(perfmodel.Table(
        rows=rows, dim=dim, dtype=dtype, pooling=40, count=count, indices=perfmodel.IndexDistribution(kind="zipf")),))


def test_a_trillion_rows_do_not_fit_and_the_message_names_the_sizes() -> None:
    w = _workload(10**12)
    fit = device_fit(w, H200)
    assert fit.table_bytes == 10**12 * 512 and not fit.fits
    with pytest.raises(perfmodel.InputError) as err:
        check_device_fit(w, H200)
    msg = str(err.value)
    assert "\n" not in msg
    assert "512,000.0 GB" in msg and "1,000,000,000,000 rows x 512 B" in msg and "h200" in msg
    assert f"{H200.dram_size_bytes * GPU_MEMORY_USABLE_FRACTION / 1e9:,.1f} GB usable" in msg


def test_the_boundary_counts_every_copy() -> None:
    usable = int(H200.dram_size_bytes * GPU_MEMORY_USABLE_FRACTION)
    # the call's inputs and output are on the device too: 4096 x 40 int64 indices, 4097 int64
    # offsets, 4096 pooled rows of 64 B (32 fp16 columns = 64 B a row)
    io = 4096 * 40 * 8 + 4097 * 8 + 4096 * 64
    assert device_fit(_workload(1, dim=32, dtype="float16"), H200).io_bytes == io
    rows = (usable - io) // 64
    assert device_fit(_workload(rows, dim=32, dtype="float16"), H200).fits
    assert not device_fit(_workload(rows + 1, dim=32, dtype="float16"), H200).fits
    assert not device_fit(_workload((usable - 2 * io) // 128 + 1, dim=32, dtype="float16", count=2), H200).fits
    assert device_fit(_workload((usable - 2 * io) // 128, dim=32, dtype="float16", count=2), H200).fits
    assert check_device_fit(_workload(10**9, dim=32, dtype="float16"), H200).fits  # 64 GB on a 141 GB GPU
