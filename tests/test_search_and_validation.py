"""Where search and validation meet, with neither importing the other (the CLI joins them):
``search.study_top_k`` gives a sweep a study's best configurations, and the ``gpu``
fidelity takes its measuring function (``validation.measure_configs``) as ``measure``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
import pytest

import perfmodel
import search


def test_study_top_k_reads_the_best_distinct_configurations(tmp_path: Path) -> None:
    w = perfmodel.Workload(batch_size=64, tables=(perfmodel.Table(rows=1000, dim=16, pooling=4),))
    space = search.build_space(w, perfmodel.get_gpu("h100-sxm"))
    url = f"sqlite:///{tmp_path / 's.db'}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="t", storage=url, sampler=optuna.samplers.RandomSampler(seed=0))
    study.set_user_attr("space", space.to_dict())
    scores: dict[perfmodel.KernelConfig, float] = {}

    def objective(trial: Any) -> float:
        c = space.suggest(trial)
        scores[c] = c.block_size + c.prefetch_distance  # a known ranking
        return float(scores[c])

    study.optimize(objective, n_trials=12)
    top = search.study_top_k(url, "t", 3)
    want = sorted(scores, key=lambda c: scores[c])[:3]
    assert [scores[c] for c in top] == [scores[c] for c in want]
    with pytest.raises(perfmodel.InputError, match="no study named"):
        search.study_top_k(url, "nope", 3)


def test_gpu_fidelity_measures_with_the_function_it_is_given() -> None:
    w = perfmodel.Workload(batch_size=256, tables=(perfmodel.Table(
        rows=20_000, dim=32, pooling=8, indices=perfmodel.IndexDistribution(kind="zipf", alpha=1.1)),))
    gpu = perfmodel.get_gpu("a100-80gb")
    space = search.SearchSpace(variants=("warp",), block_sizes=(128, 256), register_caps=(0,),
                               prefetch_distances=(0, 2, 4), prefetch_kinds=("register",),
                               pinned_row_fractions=(0.0,), pin_methods=("access-policy-window",),
                               bounds_checks=("inline",))
    asked: list[list[perfmodel.KernelConfig]] = []

    def measure(wl: perfmodel.Workload, configs: list[perfmodel.KernelConfig], g: perfmodel.GPUSpec) -> Sequence[float]:
        assert wl == w and g == gpu
        asked.append(list(configs))
        # a known "measurement": the larger the prefetch distance, the slower (the model disagrees)
        return [1e-3 * (1 + c.prefetch_distance) + (1e-6 if c.block_size == 256 else 0.0) for c in configs]

    r = search.optimize(w, gpu, n_trials=12, seed=0, storage=":memory:", space=space, fidelity="gpu", top_k=3,
                        measure=measure, enqueue_known_good=False)
    assert asked[0] == [perfmodel.KernelConfig()]  # the baseline first, for the speedup
    assert all(len(call) == 1 for call in asked[1:])  # then one measured configuration per trial
    evaluated = [call[0] for call in asked[1:]]
    # the budget (30 by default) is cut to the 6 configurations the space holds, each measured once
    assert len(evaluated) == len(set(evaluated)) == space.grid_size == 6
    assert r.fidelity == "gpu" and r.best_config == perfmodel.KernelConfig(variant="warp", block_size=128)
    assert r.baseline_time_s == pytest.approx(1e-3 + 1e-6) and r.best_time_s == pytest.approx(1e-3)
    assert [t.time_s for t in r.top] == sorted(t.time_s for t in r.top) and len(r.top) == 3
    assert r.fidelity_study is not None and len(r.fidelity_study.points) == 6
    with pytest.raises(perfmodel.InputError, match="fidelity `gpu` needs a measuring function"):
        search.optimize(w, gpu, n_trials=2, seed=0, storage=":memory:", space=space, fidelity="gpu")
