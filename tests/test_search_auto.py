"""``sampler="auto"``: the grid when it fits the budget (exact, written into the study), TPE
when it does not; forced samplers; an Optuna sampler object."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

import perfmodel
import search
from perfmodel import IndexDistribution, KernelConfig, Table, Workload

GPU = perfmodel.get_gpu("a100-80gb")
WL = Workload(batch_size=1024, tables=(
    Table(rows=200_000, dim=64, pooling=20, indices=IndexDistribution(kind="zipf", alpha=1.05)),
    Table(rows=40_000, dim=16, pooling=1, count=2, indices=IndexDistribution(kind="uniform")),
))
# 2 x 4 x 4 x 3 x (1 + 2 x 2) x 2 = 960 configurations
SPACE = search.SearchSpace(block_sizes=(128, 256, 512, 1024), register_caps=(0, 32, 40, 64),
                           prefetch_distances=(0, 2, 8), pinned_row_fractions=(0.0, 0.005, 0.01))


def test_auto_walks_the_grid_and_writes_it_into_the_study(tmp_path: Path) -> None:
    db = str(tmp_path / "a.db")
    r = search.optimize(WL, GPU, storage=db, study_name="a", space=SPACE, top_k=4)
    ex = search.exhaustive(WL, GPU, space=SPACE)
    assert r.method == "exhaustive" and "walked the whole grid" in r.method_reason
    assert (r.best_config, r.best_time_s) == (ex.best_config, ex.best_time_s)
    assert r.grid["grid_size"] == SPACE.grid_size == 960 and r.grid["n_evaluated"] < 960
    # the study holds the top 4 and the baseline as completed trials, and the grid size
    study = optuna.load_study(study_name="a", storage=f"sqlite:///{db}")
    assert study.user_attrs["grid_size"] == 960
    trials = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    configs = [search.trial_config(SPACE, t) for t in trials]
    assert KernelConfig() in configs and len(trials) == 5 == r.n_trials_completed
    assert sorted(t.values[0] for t in trials if t.user_attrs["grid_role"] != "baseline") == pytest.approx(
        [x.time_s for x in ex.top[:4]])
    assert study.best_trial.values[0] == ex.best_time_s
    # continuing: the walk is on record, nothing is evaluated again
    again = search.optimize(WL, GPU, storage=db, study_name="a", space=SPACE, top_k=4)
    assert again.method == "exhaustive" and "earlier run" in again.method_reason
    assert again.n_trials_completed == 5 and again.best_config == r.best_config
    # and TPE continues the same study from the grid's points
    tpe = search.optimize(WL, GPU, storage=db, study_name="a", space=SPACE, sampler="tpe", n_trials=6)
    assert tpe.method == "tpe" and tpe.n_trials_completed == 11 and tpe.best_time_s == ex.best_time_s


def test_auto_samples_with_tpe_when_the_grid_does_not_fit_the_budget() -> None:
    r = search.optimize(WL, GPU, storage=":memory:", space=SPACE, budget_s=1e-6, n_trials=12, seed=1)
    assert r.method == "tpe" and "budget" in r.method_reason and "not exact" in r.method_reason
    assert r.n_trials_completed == 12 and not r.grid
    forced = search.optimize(WL, GPU, storage=":memory:", space=SPACE, budget_s=1e-6, sampler="grid")
    assert forced.method == "exhaustive" and "--sampler grid" in forced.method_reason


def test_an_optuna_sampler_object_runs_the_study() -> None:
    smp = search.make_sampler("tpe", seed=3, tpe_options={"n_ei_candidates": 8})
    r = search.optimize(WL, GPU, storage=":memory:", space=SPACE, sampler=smp, n_trials=14)
    assert r.method == "tpe" and r.n_trials_completed == 14
    assert r.study.sampler is not smp  # the study keeps its own; the object sampled the trials
    r2 = search.optimize(WL, GPU, storage=":memory:", space=SPACE, sampler=optuna.samplers.RandomSampler(seed=0),
                         n_trials=5)
    assert r2.method == "random"
    with pytest.raises(ValueError, match="one process"):
        search.optimize(WL, GPU, storage=":memory:", space=SPACE, sampler=smp, workers=2)
    with pytest.raises(ValueError, match="valid choices"):
        search.optimize(WL, GPU, storage=":memory:", space=SPACE, sampler="cmaes")


def test_optimize_takes_keywords_only_after_workload_and_gpu() -> None:
    with pytest.raises(TypeError):
        search.optimize(WL, GPU, 10)  # type: ignore[misc]


def test_cli_default_is_the_exact_grid_and_says_so(tmp_path: Path) -> None:
    w = tmp_path / "w.toml"
    w.write_text('batch_size = 512\n[[tables]]\nrows = 100000\ndim = 32\npooling = 8\n')
    s = tmp_path / "s.toml"
    s.write_text("block_sizes = [128, 512]\nregister_caps = [0, 32, 48]\nprefetch_distances = [0, 4]\n")
    out = subprocess.run([sys.executable, "-m", "recperf", "search", "--gpu", "a100-80gb", "--workload", str(w),
                          "--space", str(s), "--out", str(tmp_path / "out")], capture_output=True, text=True,
                         timeout=600, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("method exhaustive: walked the whole grid")
    assert "grid" in out.stderr  # the walk's progress bar
    js = subprocess.run([sys.executable, "-m", "recperf", "search", "--gpu", "a100-80gb", "--workload", str(w),
                         "--space", str(s), "--out", str(tmp_path / "out"), "--json", "--no-progress"],
                        capture_output=True, text=True, timeout=600, check=False)
    r = json.loads(js.stdout)
    assert r["method"] == "exhaustive" and r["method_reason"] and r["grid"]["grid_size"] == 2 * 2 * 3 * 2 * 2


def test_the_budget_check_allows_a_slow_first_chunk_twice_the_budget() -> None:
    from search._grid import GridOverBudget, GridProgress
    from search._optimize import _GridBudget

    check = _GridBudget(budget_s=10.0)

    def progress(chunks: int) -> GridProgress:  # 1,000 predicted in 1 s, 16,000 to predict: a 16 s walk
        return GridProgress(evaluated=1000, planned=16_000, elapsed_s=1.0, chunks=chunks)

    check(progress(1))  # 16 s < 2 x 10 s: the first chunk's rate is not trusted yet
    assert check.estimate_s == pytest.approx(16.0)
    with pytest.raises(GridOverBudget, match="16,000 predictions at 1,000/s"):
        check(progress(2))
