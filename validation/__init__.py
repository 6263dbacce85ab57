"""Hardware and published-data validation of the performance model.

The layout follows Kernel Tuner's split (STYLE.md):

- :mod:`validation.backends`: how to talk to the GPU (CuPy, cuda-python; imported lazily),
  the device's environment record, the L2 flush;
- :mod:`validation.observers`: what to measure (CUDA-event timing, warm-up, medians);
- :mod:`validation.runners`: *live* (verify against NumPy, then time; append JSON lines) and
  *replay* (answer from recorded measurement files, with no GPU);
- :mod:`validation.micro`: the microbenchmarks (pointer chase, stream read, L2 read,
  persisting L2) and their results file;
- calibration (:func:`calibrate`), accuracy reports (:func:`accuracy_report`) and the
  published-data comparison (:mod:`validation.published`).

Nothing here imports a GPU library at import time.
"""

from __future__ import annotations

from validation._archive import RunArchive, open_run_archive
from validation._calibrate import CalibrationResult, MicroData, calibrate, read_micro_results, spec_toml
from validation._metrics import (
    AccuracyMetrics,
    accuracy_metrics,
    average_ranks,
    kendall_tau_b,
    mape,
    spearman,
    top1_regret,
)
from validation._micro_model import MicroModel, perfmodel_micro_model
from validation._records import (
    MeasurementRecord,
    append_record,
    done_keys,
    read_measurements,
    record_key,
    write_records,
)
from validation._report import (
    AccuracyReport,
    GroupReport,
    ScatterInfo,
    accuracy_report,
    predict_records,
    render_markdown,
    render_scatter,
    scatter_info,
)
from validation.published import (
    Ledger,
    LedgerComparison,
    LedgerPoint,
    LedgerRatio,
    PointResult,
    PublishedComparison,
    PublishedDataset,
    RatioResult,
    compare_ledger,
    compare_published,
    load_ledger,
    parse_l2,
    parse_latency,
    parse_stream,
    published_datasets,
)
from validation.runners import LiveRunner, ReplayRunner, measure_configs

__all__ = [
    "AccuracyMetrics",
    "AccuracyReport",
    "CalibrationResult",
    "GroupReport",
    "Ledger",
    "LedgerComparison",
    "LedgerPoint",
    "LedgerRatio",
    "LiveRunner",
    "MeasurementRecord",
    "MicroData",
    "MicroModel",
    "PointResult",
    "PublishedComparison",
    "PublishedDataset",
    "RatioResult",
    "ReplayRunner",
    "RunArchive",
    "ScatterInfo",
    "accuracy_metrics",
    "accuracy_report",
    "append_record",
    "average_ranks",
    "calibrate",
    "compare_ledger",
    "compare_published",
    "done_keys",
    "kendall_tau_b",
    "load_ledger",
    "mape",
    "measure_configs",
    "open_run_archive",
    "parse_l2",
    "parse_latency",
    "parse_stream",
    "perfmodel_micro_model",
    "predict_records",
    "published_datasets",
    "read_measurements",
    "read_micro_results",
    "record_key",
    "render_markdown",
    "render_scatter",
    "scatter_info",
    "spearman",
    "spec_toml",
    "top1_regret",
    "write_records",
]
