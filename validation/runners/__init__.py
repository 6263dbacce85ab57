"""Runners: *live* (verify on the GPU against NumPy, then time; append JSON lines) and
*replay* (answer from recorded measurement files, with no GPU)."""

from __future__ import annotations

from validation.runners._grid import kernel_grid, read_kernel_list
from validation.runners._live import LiveRunner, measure_configs, reference_embedding_bag, table_inputs
from validation.runners._replay import ReplayRunner

__all__ = [
    "LiveRunner",
    "ReplayRunner",
    "kernel_grid",
    "measure_configs",
    "read_kernel_list",
    "reference_embedding_bag",
    "table_inputs",
]
