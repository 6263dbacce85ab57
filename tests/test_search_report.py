"""Report data functions (pure, tested on hand-made studies) and the report writer."""

from __future__ import annotations

import math
from pathlib import Path

import optuna
import pytest
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution

import perfmodel
from perfmodel import KernelConfig
from search import RankedConfig, SearchResult, SearchSpace, pareto_front
from search._report import (
    _get_history_info,
    _get_importance_info,
    _get_param_effect_info,
    _get_pareto_info,
    format_config,
    top_table_rows,
    write_report,
)

SPACE = SearchSpace(block_sizes=(128, 256, 512), register_caps=(0, 40), prefetch_distances=(0, 2),
                    pinned_row_fractions=(0.0,), bounds_checks=("inline",), variants=("pytorch",),
                    pin_methods=("access-policy-window",))


def _study(values: list[tuple[int, int, int, float, bool]]) -> optuna.Study:
    """Trials of (block_size, register_cap_rank, prefetch_distance, time_s, feasible)."""
    dists: dict[str, BaseDistribution] = {"block_size": IntDistribution(128, 512, step=128), "register_cap_rank": IntDistribution(0, 1),
             "prefetch_distance": IntDistribution(0, 2, step=2)}
    study = optuna.create_study()
    for b, r, d, t, ok in values:
        study.add_trial(optuna.trial.create_trial(
            params={"block_size": b, "register_cap_rank": r, "prefetch_distance": d}, distributions=dists,
            value=t if ok else math.inf, system_attrs={"constraints:runs": 0.0 if ok else 1.0}))
    return study


def test_history_info_best_so_far_skips_infeasible() -> None:
    study = _study([(128, 0, 0, 5.0, True), (256, 1, 2, 1.0, False), (512, 0, 2, 3.0, True), (256, 0, 0, 4.0, True)])
    h = _get_history_info(study)
    assert h.numbers == (0, 1, 2, 3)
    assert h.feasible == (True, False, True, True)
    assert h.values[1] == math.inf
    assert h.best_so_far == (5.0, 5.0, 3.0, 3.0)


def test_param_effect_info_maps_ranks_to_caps() -> None:
    study = _study([(128, 0, 0, 5.0, True), (256, 1, 2, 2.0, True), (512, 0, 2, 3.0, False)])
    infos = {i.name: i for i in _get_param_effect_info(study, SPACE)}
    assert set(infos) == {"block_size", "register_cap", "prefetch_distance"}  # fixed fields left out
    assert infos["register_cap"].x == (40, 0)  # rank 0 is the tightest cap, the last rank no cap
    assert infos["block_size"].time_s == (5.0, 2.0)


def test_importance_info_names_sampled_params() -> None:
    study = _study([(b, r, d, b / 128 + 0.01 * r + 0.001 * d, True)
                    for b in (128, 256, 512) for r in (0, 1) for d in (0, 2)])
    imp = _get_importance_info(study)
    assert set(imp) == {"block_size", "register_cap_rank", "prefetch_distance"}
    assert max(imp, key=lambda k: imp[k]) == "block_size"
    assert _get_importance_info(_study([(128, 0, 0, 1.0, True)])) == {}


def _rc(t: float, l2: float, n: int) -> RankedConfig:
    return RankedConfig(config=KernelConfig(block_size=64 * (n + 1)), time_s=t, model_time_s=t, l2_bytes=l2,
                        trial_number=n)


def test_pareto_front_and_info() -> None:
    pts = [_rc(1.0, 30.0, 0), _rc(2.0, 10.0, 1), _rc(1.5, 40.0, 2), _rc(3.0, 0.0, 3), _rc(2.5, 10.0, 4)]
    front = pareto_front(pts)
    assert [p.trial_number for p in front] == [0, 1, 3]
    info = _get_pareto_info(pts, front)
    assert info.front_time_s == (1.0, 2.0, 3.0) and info.front_l2_bytes == (30.0, 10.0, 0.0)
    assert len(info.time_s) == 5


def test_top_table_rows_and_config_text() -> None:
    header, rows = top_table_rows([_rc(0.5e-3, 2**20, 0)], baseline_time_s=1e-3)
    assert header[:4] == ["#", "time (µs)", "speedup", "L2 set aside (MiB)"]
    assert rows[0][:4] == ["1", "500.00", "2.000", "1.0"]
    assert format_config(KernelConfig()) == "pytorch, block 256, regs no cap, prefetch 0, no pinning, bounds check inline"


def test_write_report_files(tmp_path: Path) -> None:
    study = _study([(b, r, d, b / 128 + r + d, True) for b in (128, 256, 512) for r in (0, 1) for d in (0, 2)])
    ranked = [_rc(1.0, 0.0, 0), _rc(2.0, 0.0, 1)]
    result = SearchResult(
        best_config=ranked[0].config, best_time_s=1.0, baseline_config=KernelConfig(), baseline_time_s=2.5,
        speedup=2.5, n_trials_completed=12, n_trials_run=12, n_infeasible=0, study_name="s", storage=":memory:",
        objectives=("time",), fidelity="model", gpu_id="a100-80gb", top=tuple(ranked), pareto=(), space=SPACE,
        study=study,
    )
    path = write_report(result, tmp_path / "rep", perfmodel.Workload(
        batch_size=1, tables=(perfmodel.Table(rows=10, dim=4, pooling=1),)), command="recperf search ...")
    text = path.read_text()
    assert "2.50x" in text and "![Optimization history](history.png)" in text and "recperf search ..." in text
    for png in ("history.png", "importances.png", "params.png"):
        assert (tmp_path / "rep" / png).stat().st_size > 1000


@pytest.mark.parametrize("bad", ["time,time", "l2-bytes", "time,l2-bytes,energy", ""])
def test_objectives_rule(bad: str) -> None:
    from search._evaluate import parse_objectives

    with pytest.raises(ValueError, match="objective"):
        parse_objectives(bad)


def test_categorical_distribution_for_uneven_values() -> None:
    space = SearchSpace(block_sizes=(64, 128, 512))
    d = space.distributions()
    assert isinstance(d["block_size"], CategoricalDistribution)
    assert isinstance(d["register_cap_rank"], IntDistribution)
