"""Design-space search over embedding-bag kernel configurations (Optuna).

The space is data (:class:`SearchSpace`, :func:`build_space`). At model fidelity the answer
is exact when the grid fits the time budget (:func:`optimize` with ``sampler="auto"``, the
default, walks it through :func:`perfmodel.predict_batch`), else sampled by TPE; at ``sim``
or ``gpu`` fidelity the model's ranking seeds a study that spends a budget of expensive
evaluations. :func:`plan` gives each table its own configuration. Studies persist in SQLite,
any Optuna storage URL, or a journal file.

    import search
    r = search.optimize(workload, gpu)          # r.best_config, r.best_time_s, r.method, r.study
    p = search.plan(workload, gpu)              # p.plan (a perfmodel.Plan), p.plan_time_s
"""

from __future__ import annotations

from search._codec import CapLevelCodec, trial_config
from search._evaluate import FIDELITIES, OBJECTIVES, Evaluation, Measure, evaluate_model, l2_bytes_set_aside
from search._exhaustive import ExhaustiveResult, exhaustive
from search._multifidelity import FidelityPoint, FidelityResult, ModelGuidedSampler, run_fidelity_study
from search._optimize import DEFAULT_BUDGET_EVALS, DEFAULT_BUDGET_S, SearchResult, optimize
from search._plan import PlanResult, TablePlan, plan
from search._ranking import RankedConfig, pareto_front, ranked_trials
from search._report import (
    fidelity_rows,
    format_config,
    top_table_rows,
    write_exhaustive_report,
    write_plan_report,
    write_report,
)
from search._samplers import SAMPLERS, make_sampler
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
from search._study import default_study_name, known_good_configs
from search._trials import DEFAULT_ASK_BATCH, run_trials

__all__ = [
    "DEFAULT_ASK_BATCH",
    "DEFAULT_BUDGET_EVALS",
    "DEFAULT_BUDGET_S",
    "FIDELITIES",
    "OBJECTIVES",
    "REGISTER_CAP_CHOICES",
    "SAMPLERS",
    "CapLevelCodec",
    "Evaluation",
    "ExhaustiveResult",
    "FidelityPoint",
    "FidelityResult",
    "Measure",
    "ModelGuidedSampler",
    "PlanResult",
    "RankedConfig",
    "SearchResult",
    "SearchSpace",
    "StorageSpec",
    "TablePlan",
    "build_space",
    "check_space",
    "default_study_name",
    "evaluate_model",
    "exhaustive",
    "fidelity_rows",
    "format_config",
    "known_good_configs",
    "l2_bytes_set_aside",
    "load_space",
    "make_sampler",
    "max_pinned_row_fraction",
    "optimize",
    "pareto_front",
    "plan",
    "ranked_trials",
    "resolve_storage",
    "run_fidelity_study",
    "run_trials",
    "space_from_mapping",
    "study_top_k",
    "top_table_rows",
    "trial_config",
    "write_exhaustive_report",
    "write_plan_report",
    "write_report",
]
