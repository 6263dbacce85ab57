"""Accuracy metrics: hand-computed values, scipy.stats as an independent oracle, tie rules."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import perfmodel
from validation import accuracy_metrics, average_ranks, kendall_tau_b, mape, spearman, top1_regret


def test_hand_computed_small_case() -> None:
    p = [1.0, 2.0, 3.0, 4.0]
    m = [2.0, 1.0, 3.0, 5.0]
    # |1-2|/2 + |2-1|/1 + 0 + |4-5|/5 = 0.5 + 1 + 0 + 0.2 = 1.7 -> /4
    assert mape(p, m) == pytest.approx(1.7 / 4)
    # ranks p 1 2 3 4, m 2 1 3 4: d^2 = 1+1 = 2 -> 1 - 6*2/(4*15) = 0.8
    assert spearman(p, m) == pytest.approx(0.8)
    # 6 pairs, one discordant (0,1): (5-1)/6
    assert kendall_tau_b(p, m) == pytest.approx(4 / 6)
    # predicted best is index 0, measured 2.0; best measured 1.0 -> regret 1.0
    assert top1_regret(p, m) == pytest.approx(1.0)


def test_average_ranks_for_ties() -> None:
    assert average_ranks([10, 20, 20, 5, 20]).tolist() == [2.0, 4.0, 4.0, 1.0, 4.0]


def test_tau_b_with_ties_hand_computed() -> None:
    p = [1.0, 1.0, 2.0]
    m = [1.0, 2.0, 3.0]
    # pairs: (0,1) tied in p; (0,2) concordant; (1,2) concordant -> C-D = 2
    # n0 = 3, n1 = 1 (p ties), n2 = 0 -> 2 / sqrt(2 * 3)
    assert kendall_tau_b(p, m) == pytest.approx(2 / math.sqrt(6))


def test_top1_regret_takes_the_first_among_equal_predictions() -> None:
    p = [2.0, 1.0, 1.0, 3.0]
    m = [1.0, 1.5, 1.0, 2.0]
    # predictions tie at indices 1 and 2; the first in order (1) is the predicted best: 1.5/1.0 - 1
    assert top1_regret(p, m) == pytest.approx(0.5)
    assert top1_regret(p[::-1], m[::-1]) == pytest.approx(0.0)  # reversed: index 1 (m=1.0) comes first
    assert accuracy_metrics(p, m).predicted_best_index == 1


def test_undefined_correlations_are_nan() -> None:
    assert math.isnan(spearman([1.0], [1.0]))
    assert math.isnan(kendall_tau_b([1.0, 1.0], [1.0, 2.0]))


@pytest.mark.parametrize(("p", "m", "rule"), [
    ([1.0], [1.0, 2.0], "same length"),
    ([], [], "at least one"),
    ([1.0], [0.0], "> 0"),
    ([float("nan")], [1.0], "finite"),
])
def test_bad_inputs_state_the_rule(p: list[float], m: list[float], rule: str) -> None:
    with pytest.raises(perfmodel.InputError, match=rule):
        mape(p, m)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 6), st.integers(1, 9)), min_size=3, max_size=60))
def test_agrees_with_scipy_including_ties(pairs: list[tuple[int, int]]) -> None:
    p = np.array([a for a, _ in pairs], dtype=float)
    m = np.array([b for _, b in pairs], dtype=float)
    if np.ptp(p) == 0 or np.ptp(m) == 0:
        return  # scipy warns and returns nan; our nan case is tested above
    ctx = f"p={p.tolist()} m={m.tolist()}"
    assert spearman(p, m) == pytest.approx(stats.spearmanr(p, m).statistic, abs=1e-12), ctx
    assert kendall_tau_b(p, m) == pytest.approx(stats.kendalltau(p, m, variant="b").statistic, abs=1e-12), ctx


def test_kendall_chunks_give_the_same_answer() -> None:
    rng = np.random.default_rng(0)
    p, m = rng.integers(1, 30, 700).astype(float), rng.integers(1, 40, 700).astype(float)
    want = stats.kendalltau(p, m).statistic
    assert kendall_tau_b(p, m, chunk=7) == pytest.approx(want, abs=1e-12)
    assert kendall_tau_b(p, m, chunk=5000) == pytest.approx(want, abs=1e-12)
