"""Expensive fidelities (search._multifidelity): the neighbourhood, the model-guided sampler
against brute force, and a study at simulator fidelity that spends exactly its budget."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest
from scipy.stats import spearmanr

import perfmodel
import search
from perfmodel import IndexDistribution, KernelConfig, Table, Workload
from search._multifidelity import spearman

GPU = perfmodel.get_gpu("a100-80gb")
SPACE = search.SearchSpace(block_sizes=(128, 256, 512, 1024), register_caps=(0, 32, 40), prefetch_distances=(0, 2, 4),
                           pinned_row_fractions=(0.0, 0.05, 0.1))
#: small enough that the simulator takes a few hundredths of a second a configuration
TINY = Workload(batch_size=128, tables=(
    Table(rows=20_000, dim=32, pooling=4, indices=IndexDistribution(kind="zipf", alpha=1.05)),))


def _model(configs: list[KernelConfig]) -> np.ndarray:
    return search.evaluate_model(TINY, GPU, configs).time_s


def _fields_changed(a: KernelConfig, b: KernelConfig) -> int:
    return sum(getattr(a, f) != getattr(b, f) for f in a.to_dict())


def test_neighbours_change_at_most_two_fields_within_two_steps() -> None:
    c = KernelConfig(variant="warp", block_size=512, register_cap=32, prefetch_distance=2, pinned_row_fraction=0.05,
                     pin_method="evict-last-prefetch")
    near = SPACE.neighbours(c)
    assert c not in near and near
    grid = {x for chunk in SPACE.grid_chunks() for x in chunk}
    assert near <= grid  # canonical grid points only
    for n in near:
        assert _fields_changed(c, n) <= 2 or (n.pinned_row_fraction == 0.0 and _fields_changed(c, n) <= 3)
        for name in ("block_size", "register_cap", "pinned_row_fraction"):
            values = SPACE.values(name)
            assert abs(values.index(getattr(n, name)) - values.index(getattr(c, name))) <= 2
    assert len(SPACE.neighbours(c, fields=1)) < len(near)
    # a one-field neighbourhood is every single change of one field
    assert KernelConfig(**{**c.to_dict(), "bounds_check": "separate"}) in SPACE.neighbours(c, fields=1)


def test_the_sampler_proposes_the_model_best_untried_neighbour_of_the_best() -> None:
    study = optuna.create_study()
    start = KernelConfig(variant="warp", block_size=256, prefetch_distance=2)
    other = KernelConfig(block_size=1024)
    for c, v in ((start, 1.0), (other, 2.0)):
        study.add_trial(optuna.trial.create_trial(params=SPACE.params_from_config(c),
                                                  distributions=SPACE.distributions(), value=v,
                                                  user_attrs={"config": c.to_dict()}))
    smp = search.ModelGuidedSampler(SPACE, _model, seed=0)
    got = smp.propose(study)
    pool = sorted(SPACE.neighbours(start, fields=1) - {start, other}, key=str)
    times = _model(pool)
    assert got in pool and _model([got])[0] == pytest.approx(float(times.min()))
    # with allowed configurations, only those
    allowed = {pool[0], pool[1]}
    smp2 = search.ModelGuidedSampler(SPACE, _model, allowed=allowed, seed=0)
    assert smp2.propose(study) in allowed
    # when the best point's neighbours are all tried, the next best point's
    tried = SPACE.neighbours(start, fields=1) - {other}
    for i, c in enumerate(sorted(tried, key=str)):
        study.add_trial(optuna.trial.create_trial(params=SPACE.params_from_config(c),
                                                  distributions=SPACE.distributions(), value=3.0 + i,
                                                  user_attrs={"config": c.to_dict()}))
    nxt = smp.propose(study)
    assert nxt is not None and nxt not in tried and nxt in SPACE.neighbours(other, fields=1)


def test_a_simulator_study_spends_its_budget_on_the_model_ranking() -> None:
    sim = {}

    def evaluate(configs: list[KernelConfig]) -> search.Evaluation:
        t = []
        for c in configs:
            try:
                sim[c] = perfmodel.simulate(TINY, c, GPU).time_s
            except perfmodel.InputError:
                sim[c] = math.inf
            t.append(sim[c])
        arr = np.array(t)
        return search.Evaluation(time_s=arr, l2_bytes=search.l2_bytes_set_aside(TINY, configs),
                                 infeasible=tuple("" if math.isfinite(x) else "cannot launch" for x in arr))

    configs = [c for chunk in SPACE.grid_chunks() for c in chunk]
    ranking = sorted(configs, key=lambda c: _model([c])[0])
    study = optuna.create_study()
    res = search.run_fidelity_study(study, SPACE, "sim", evaluate, _model, budget_evals=7, warm_start=ranking,
                                    n_warm=3, seed=1)
    assert len(res.points) == 7 == len(sim) and res.n_new == 7
    assert [p.config for p in res.points[:3]] == ranking[:3]
    assert [p.origin for p in res.points] == ["model top"] * 3 + ["near best"] * 4
    assert len({p.config for p in res.points}) == 7  # never the same configuration twice
    for p in res.points:
        assert p.time_s == sim[p.config] and p.model_time_s == pytest.approx(float(_model([p.config])[0]))
    ok = [p for p in res.points if math.isfinite(p.time_s)]
    assert sorted(p.fidelity_rank for p in ok) == list(range(1, len(ok) + 1))
    assert res.spearman == pytest.approx(spearmanr([p.model_time_s for p in ok], [p.time_s for p in ok]).statistic)
    # each sampled point is one field away from a point simulated before it (the best with untried neighbours)
    for i, p in enumerate(res.points[3:], 3):
        assert any(p.config in SPACE.neighbours(q.config, fields=1) for q in res.points[:i])
    # continuing spends a new budget and keeps the old points
    more = search.run_fidelity_study(study, SPACE, "sim", evaluate, _model, budget_evals=2, warm_start=ranking,
                                     n_warm=3, seed=1)
    assert len(more.points) == 9 and more.n_new == 2
    assert [(p.config, p.time_s) for p in more.points[:7]] == [(p.config, p.time_s) for p in res.points]


def test_spearman_needs_three_points_and_two_values() -> None:
    assert math.isnan(spearman([1.0, 2.0], [1.0, 2.0]))
    assert math.isnan(spearman([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))
    assert spearman([1.0, 2.0, 3.0], [3.0, 2.0, 1.0]) == pytest.approx(-1.0)
