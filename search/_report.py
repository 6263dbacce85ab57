"""Search reports: a Markdown file with PNG plots (optimization history, parameter
importances, predicted time against each parameter, the Pareto front).

As in Optuna's ``visualization`` package, each plot is a pure ``_get_*_info()`` function
that returns the data (tested) and a renderer that draws it with matplotlib (not
pixel-tested).
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from perfmodel import KernelConfig, Workload
from search._codec import trial_config
from search._evaluate import l2_bytes_set_aside
from search._ranking import RankedConfig, is_feasible, ranked_trials
from search._space import PARAM_NAMES, SearchSpace

if TYPE_CHECKING:
    import optuna

    from search._exhaustive import ExhaustiveResult
    from search._multifidelity import FidelityResult
    from search._optimize import SearchResult
    from search._plan import PlanResult

__all__ = ["format_config", "top_table_rows", "write_exhaustive_report", "write_plan_report", "write_report"]


# ---- data ------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class HistoryInfo:
    numbers: tuple[int, ...]
    #: first objective (time); inf for infeasible trials
    values: tuple[float, ...]
    feasible: tuple[bool, ...]
    #: best feasible time so far after each trial (inf before the first feasible one)
    best_so_far: tuple[float, ...]


def _get_history_info(study: optuna.Study) -> HistoryInfo:
    from optuna.trial import TrialState

    trials = sorted(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), key=lambda t: t.number)
    best = math.inf
    numbers, values, feasible, best_so_far = [], [], [], []
    for t in trials:
        ok = is_feasible(t)
        v = float(t.values[0]) if ok else math.inf
        if ok:
            best = min(best, v)
        numbers.append(t.number)
        values.append(v)
        feasible.append(ok)
        best_so_far.append(best)
    return HistoryInfo(numbers=tuple(numbers), values=tuple(values), feasible=tuple(feasible),
                       best_so_far=tuple(best_so_far))


def _feasible_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    from optuna.trial import TrialState

    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if is_feasible(t)]


def _get_importance_info(study: optuna.Study) -> dict[str, float]:
    """Importance of each sampled parameter for the predicted time (feasible trials only;
    Optuna's default evaluator). Empty when there are too few trials to say."""
    import optuna

    trials = _feasible_trials(study)
    if len(trials) < 4:
        return {}
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    tmp = optuna.create_study(directions=["minimize"] * len(study.directions))
    tmp.add_trials(trials)
    try:
        with warnings.catch_warnings():  # PedAnova's reminder that it rewards low targets: we minimize
            warnings.simplefilter("ignore", UserWarning)
            imp = optuna.importance.get_param_importances(tmp, target=lambda t: float(t.values[0]))
    except (ValueError, RuntimeError, ZeroDivisionError):
        return {}
    return {k: float(v) for k, v in imp.items()}


@dataclass(frozen=True, kw_only=True)
class ParamEffectInfo:
    name: str
    #: the parameter's value of each feasible trial (register caps as caps, 0 = none)
    x: tuple[Any, ...]
    time_s: tuple[float, ...]
    categorical: bool


def _get_param_effect_info(study: optuna.Study, space: SearchSpace) -> list[ParamEffectInfo]:
    trials = _feasible_trials(study)
    configs = [trial_config(space, t) for t in trials]
    times = tuple(float(t.values[0]) for t in trials)
    out = []
    for name, values in space.items():
        if len(values) < 2:
            continue
        out.append(ParamEffectInfo(name=name, x=tuple(getattr(c, name) for c in configs), time_s=times,
                                   categorical=isinstance(values[0], str)))
    return out


@dataclass(frozen=True, kw_only=True)
class ParetoInfo:
    time_s: tuple[float, ...]
    l2_bytes: tuple[float, ...]
    front_time_s: tuple[float, ...]
    front_l2_bytes: tuple[float, ...]


def _get_pareto_info(ranked: Sequence[RankedConfig], front: Sequence[RankedConfig]) -> ParetoInfo:
    return ParetoInfo(
        time_s=tuple(r.time_s for r in ranked), l2_bytes=tuple(r.l2_bytes for r in ranked),
        front_time_s=tuple(r.time_s for r in front), front_l2_bytes=tuple(r.l2_bytes for r in front),
    )


# ---- renderers -------------------------------------------------------------------------------


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _render_history(info: HistoryInfo, path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    ok = np.array(info.feasible, dtype=bool)
    n = np.array(info.numbers)
    v = np.array(info.values)
    ax.scatter(n[ok], v[ok] * 1e6, s=8, alpha=0.5, label="trial")
    best = np.array(info.best_so_far)
    finite = np.isfinite(best)
    ax.step(n[finite], best[finite] * 1e6, where="post", color="C3", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel("predicted time (µs)")
    ax.set_title("Optimization history")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _render_importances(info: dict[str, float], path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    names = list(info)[::-1]
    ax.barh(names, [info[k] for k in names], color="C0")
    ax.set_xlabel("importance for predicted time")
    ax.set_title("Parameter importances")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _render_param_effects(infos: Sequence[ParamEffectInfo], path: Path) -> None:
    plt = _plt()
    cols = 3
    rows = max(1, math.ceil(len(infos) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
    for ax, info in zip(axes.flat, infos, strict=False):
        t = np.array(info.time_s) * 1e6
        if info.categorical:
            labels = sorted(set(info.x))
            pos = np.array([labels.index(x) for x in info.x])
            ax.scatter(pos, t, s=8, alpha=0.5)
            ax.set_xticks(range(len(labels)), labels, fontsize=7)
        else:
            ax.scatter(np.array(info.x, dtype=float), t, s=8, alpha=0.5)
        ax.set_xlabel(info.name + (" (0 = no cap)" if info.name == "register_cap" else ""))
        ax.set_ylabel("time (µs)")
    for ax in list(axes.flat)[len(infos):]:
        ax.set_visible(False)
    fig.suptitle("Predicted time against each parameter (feasible trials)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _render_pareto(info: ParetoInfo, path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter(np.array(info.l2_bytes) / 2**20, np.array(info.time_s) * 1e6, s=8, alpha=0.4, label="configurations")
    ax.step(np.array(info.front_l2_bytes) / 2**20, np.array(info.front_time_s) * 1e6, where="post", color="C3",
            marker="o", label="Pareto front")
    ax.set_xlabel("L2 set aside for pinned rows (MiB)")
    ax.set_ylabel("predicted time (µs)")
    ax.set_title("Time against L2 set aside")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---- Markdown --------------------------------------------------------------------------------


def format_config(c: KernelConfig) -> str:
    """A one-line description of a configuration."""
    parts = [c.variant, f"block {c.block_size}", f"regs {'no cap' if c.register_cap == 0 else c.register_cap}",
             f"prefetch {c.prefetch_distance}" + (f" ({c.prefetch_kind})" if c.prefetch_distance else "")]
    parts.append(f"pin {c.pinned_row_fraction:g} ({c.pin_method})" if c.pinned_row_fraction > 0 else "no pinning")
    parts.append(f"bounds check {c.bounds_check}")
    return ", ".join(parts)


def top_table_rows(ranked: Sequence[RankedConfig], baseline_time_s: float) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a top-k table (rank, time, speedup, L2 set aside, each field)."""
    header = ["#", "time (µs)", "speedup", "L2 set aside (MiB)", *PARAM_NAMES]
    rows = []
    for i, r in enumerate(ranked, 1):
        cfg = r.config.to_dict()
        rows.append([str(i), f"{r.time_s * 1e6:.2f}", f"{baseline_time_s / r.time_s:.3f}",
                     f"{r.l2_bytes / 2**20:.1f}", *(_cell(cfg[n]) for n in PARAM_NAMES)])
    return header, rows


def _cell(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def write_report(result: SearchResult, out_dir: str | os.PathLike[str] | None = None,
                 workload: Workload | None = None, command: str | None = None) -> Path:
    """Write ``report.md`` and its PNG plots to ``out_dir`` (default ``out/search/<study>``)."""
    folder = Path(out_dir) if out_dir is not None else Path("out") / "search" / result.study_name
    folder.mkdir(parents=True, exist_ok=True)
    study = result.study
    plots: list[tuple[str, str]] = []
    if result.method != "exhaustive":  # a sampler's exploration; a grid walk has none to show
        history = _get_history_info(study)
        _render_history(history, folder / "history.png")
        plots.append(("Optimization history", "history.png"))
        importances = _get_importance_info(study)
        if importances:
            _render_importances(importances, folder / "importances.png")
            plots.append(("Parameter importances", "importances.png"))
        effects = _get_param_effect_info(study, result.space)
        if effects:
            _render_param_effects(effects, folder / "params.png")
            plots.append(("Predicted time against each parameter", "params.png"))
    if len(result.objectives) > 1 and workload is not None:
        ranked = ranked_trials(study, result.space, workload)
        _render_pareto(_get_pareto_info(ranked, result.pareto), folder / "pareto.png")
        plots.append(("Pareto front: time against L2 set aside", "pareto.png"))

    b, best = result.baseline_config, result.best_config
    fid = {"model": "predicted (model)", "sim": "simulated", "gpu": "measured"}[result.fidelity]
    lines = [
        f"# Kernel search: {result.study_name}",
        "",
        f"GPU `{result.gpu_id}`; objectives {', '.join(result.objectives)}; fidelity `{result.fidelity}`; "
        f"{result.n_trials_completed} completed trials in the study ({result.n_infeasible} infeasible); "
        f"storage `{result.storage}`.",
        "",
        f"Method: `{result.method}`: {result.method_reason}.",
        "",
        "## Best configuration against the PyTorch baseline",
        "",
        _md_table(["", "time (µs)", "configuration"], [
            ["baseline (PyTorch as shipped)", f"{result.baseline_time_s * 1e6:.2f}", format_config(b)],
            ["best", f"{result.best_time_s * 1e6:.2f}", format_config(best)],
        ]),
        "",
        f"**{fid.capitalize()} speedup: {result.speedup:.2f}x.**",
        "",
        f"## Top {len(result.top)}",
        "",
        _md_table(*top_table_rows(result.top, result.baseline_time_s)),
        "",
    ]
    if result.pareto:
        lines += ["## Pareto front (time, L2 set aside)", "",
                  _md_table(*top_table_rows(result.pareto, result.baseline_time_s)), ""]
    if result.fidelity_study is not None:
        lines += fidelity_lines(result.fidelity_study)
    if plots:
        lines += ["## Plots", ""]
    for title, name in plots:
        lines += [f"### {title}", "", f"![{title}]({name})", ""]
    if command:
        lines += ["## Reproduce or continue", "", "```", command, "```", ""]
    (folder / "report.md").write_text("\n".join(lines), encoding="utf-8")
    return folder / "report.md"


def write_exhaustive_report(result: ExhaustiveResult, out_dir: str | os.PathLike[str]) -> Path:
    """Write ``report.md`` (best, top-k, Pareto front of the whole grid) to ``out_dir``."""
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        f"# Exhaustive grid on `{result.gpu_id}`",
        "",
        f"{result.n_evaluated} configurations predicted ({result.n_infeasible} infeasible) in {result.elapsed_s:.1f} s.",
        "",
        f"Best: {format_config(result.best_config)}: {result.best_time_s * 1e6:.2f} µs against the baseline's "
        f"{result.baseline_time_s * 1e6:.2f} µs (**{result.speedup:.2f}x**).",
        "",
        f"## Top {len(result.top)}",
        "",
        _md_table(*top_table_rows(result.top, result.baseline_time_s)),
        "",
        "## Pareto front (time, L2 set aside)",
        "",
        _md_table(*top_table_rows(result.pareto, result.baseline_time_s)),
        "",
    ]
    if result.pareto:
        _render_pareto(_get_pareto_info(result.pareto, result.pareto), folder / "pareto.png")
        lines += ["![Pareto front](pareto.png)", ""]
    (folder / "report.md").write_text("\n".join(lines), encoding="utf-8")
    return folder / "report.md"


def l2_of(workload: Workload, config: KernelConfig) -> float:
    return float(l2_bytes_set_aside(workload, [config])[0])


def fidelity_rows(fs: FidelityResult) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the expensive evaluations: model and expensive time and rank of each."""
    header = ["trial", "origin", f"{fs.fidelity} time (µs)", "model time (µs)", f"{fs.fidelity} rank", "model rank",
              "configuration"]
    rows = [[str(p.trial_number), p.origin, f"{p.time_s * 1e6:.2f}" if math.isfinite(p.time_s) else "-",
             f"{p.model_time_s * 1e6:.2f}" if math.isfinite(p.model_time_s) else "-",
             str(p.fidelity_rank or "-"), str(p.model_rank or "-"), format_config(p.config)] for p in fs.points]
    return header, rows


def fidelity_lines(fs: FidelityResult) -> list[str]:
    """The report section on an expensive study."""
    rho = "n/a (fewer than 3 points with times)" if math.isnan(fs.spearman) else f"{fs.spearman:.3f}"
    return [
        f"## Model against the {fs.fidelity} fidelity",
        "",
        f"{len(fs.points)} configurations evaluated at fidelity `{fs.fidelity}` (study `{fs.study_name}`; "
        f"{fs.n_new} this run): first the model's best, then the configuration the model ranks fastest "
        f"near the best found so far. Spearman rank correlation of model and {fs.fidelity} times over them: "
        f"**{rho}** (1: the model orders them as the {fs.fidelity} fidelity does).",
        "",
        _md_table(*fidelity_rows(fs)),
        "",
    ]


def write_plan_report(result: PlanResult, out_dir: str | os.PathLike[str], plan_path: str | None = None) -> Path:
    """Write ``report.md`` for a per-table plan (each table's configuration and times)."""
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    header = ["table", "rows", "dim", "pooling", "count", "plan (µs)", "one config (µs)", "PyTorch (µs)",
              "configuration"]
    rows = [[str(e.index), f"{e.table.rows:,}", str(e.table.dim), f"{e.table.mean_pooling:g}", str(e.table.count),
             f"{e.time_s * 1e6:.2f}", f"{e.single_config_time_s * 1e6:.2f}", f"{e.baseline_time_s * 1e6:.2f}",
             format_config(e.config)] for e in result.tables]
    lines = [
        f"# Per-table plan on `{result.gpu_id}`",
        "",
        f"The grid ({result.grid_size:,} configurations; {result.n_evaluated:,} predicted per group of identical "
        f"tables after leaving out dominated register caps) walked for {result.n_groups} groups of identical tables "
        f"in {result.elapsed_s:.1f} s.",
        "",
        _md_table(["", "stage time (µs)", "speedup over PyTorch"], [
            ["plan (a configuration per table)", f"{result.plan_time_s * 1e6:.2f}", f"{result.speedup:.2f}x"],
            ["best single configuration", f"{result.single_config_time_s * 1e6:.2f}",
             f"{result.baseline_time_s / result.single_config_time_s:.2f}x"],
            ["PyTorch as shipped", f"{result.baseline_time_s * 1e6:.2f}", "1.00x"],
        ]),
        "",
        f"Best single configuration: {format_config(result.single_config)}.",
        "",
        "## Tables",
        "",
        _md_table(header, rows),
        "",
    ]
    if result.pareto:
        lines += ["## Pareto front of plans (time, L2 set aside)", "",
                  _md_table(["time (µs)", "L2 set aside (MiB)"],
                            [[f"{p.time_s * 1e6:.2f}", f"{p.l2_bytes / 2**20:.1f}"] for p in result.pareto]), ""]
    if plan_path:
        lines += [f"Plan file: `{plan_path}` (`recperf predict --workload W --plan {plan_path}` reproduces the plan's "
                  "time).", ""]
    (folder / "report.md").write_text("\n".join(lines), encoding="utf-8")
    return folder / "report.md"
