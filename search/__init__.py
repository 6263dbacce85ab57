"""Design-space search over embedding-bag kernel configurations (Optuna).

The space is data (:class:`SearchSpace`, :func:`build_space`); the objective is the model's
:func:`perfmodel.predict_batch` (re-ranked by the simulator or by measurements at higher
fidelity); studies persist in SQLite, any Optuna storage URL, or a journal file.

    import search
    r = search.optimize(workload, gpu, n_trials=100, seed=0, storage=None, fidelity="model")
    r.best_config, r.best_time_s, r.baseline_time_s, r.speedup, r.study
"""

from __future__ import annotations

from search._codec import CapLevelCodec, trial_config
from search._evaluate import FIDELITIES, OBJECTIVES, Evaluation, Measure, evaluate_model, l2_bytes_set_aside
from search._exhaustive import ExhaustiveResult, exhaustive
from search._optimize import SAMPLERS, RankedConfig, SearchResult, known_good_configs, optimize
from search._report import format_config, top_table_rows, write_exhaustive_report, write_report
from search._space import (
    REGISTER_CAP_CHOICES,
    SearchSpace,
    build_space,
    check_space,
    load_space,
    max_pinned_row_fraction,
    space_from_mapping,
)
from search._storage import StorageSpec, resolve_storage
from search._studies import study_top_k

__all__ = [
    "FIDELITIES",
    "OBJECTIVES",
    "REGISTER_CAP_CHOICES",
    "SAMPLERS",
    "CapLevelCodec",
    "Evaluation",
    "ExhaustiveResult",
    "Measure",
    "RankedConfig",
    "SearchResult",
    "SearchSpace",
    "StorageSpec",
    "build_space",
    "check_space",
    "evaluate_model",
    "exhaustive",
    "format_config",
    "known_good_configs",
    "l2_bytes_set_aside",
    "load_space",
    "max_pinned_row_fraction",
    "optimize",
    "resolve_storage",
    "space_from_mapping",
    "study_top_k",
    "top_table_rows",
    "trial_config",
    "write_exhaustive_report",
    "write_report",
]
