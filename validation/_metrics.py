"""Accuracy metrics of predictions against measurements (CONTRACT.md, ``validate report``).

Notation: ``p`` predicted times, ``m`` measured times, both of length ``n``, in file order.

- ``mape`` = mean(|p - m| / m)
- ``spearman``: Pearson correlation of the average ranks (ties share the mean of their ranks)
- ``kendall``: tau-b = (C - D) / sqrt((n0 - n1) (n0 - n2)), n0 = n(n-1)/2, n1 and n2 the
  pairs tied in ``p`` and in ``m``
- ``top1_regret`` = m[i*] / min(m) - 1, with i* the first index (file order) of min(p)

Undefined values (fewer than two points, a constant vector) are NaN.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["AccuracyMetrics", "accuracy_metrics", "average_ranks", "kendall_tau_b", "mape", "spearman", "top1_regret"]

FloatArray = npt.NDArray[np.float64]


def _pair(predicted: npt.ArrayLike, measured: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    from perfmodel import InputError

    p = np.asarray(predicted, dtype=np.float64).ravel()
    m = np.asarray(measured, dtype=np.float64).ravel()
    if p.shape != m.shape:
        raise InputError(f"predicted and measured must have the same length, but got ({p.size}, {m.size})")
    if p.size == 0:
        raise InputError("at least one (predicted, measured) pair is needed, but got none")
    if not (np.all(np.isfinite(p)) and np.all(np.isfinite(m))):
        raise InputError("predicted and measured times must be finite numbers")
    if np.any(m <= 0):
        raise InputError(f"measured times must be > 0, but got min {float(m.min())!r}")
    return p, m


def mape(predicted: npt.ArrayLike, measured: npt.ArrayLike) -> float:
    """Mean absolute percentage error as a fraction: mean(|p - m| / m)."""
    p, m = _pair(predicted, measured)
    return float(np.mean(np.abs(p - m) / m))


def average_ranks(x: npt.ArrayLike) -> FloatArray:
    """Ranks 1..n; tied values share the mean of the ranks they span."""
    a = np.asarray(x, dtype=np.float64).ravel()
    order = np.argsort(a, kind="mergesort")
    sorted_a = a[order]
    # group boundaries of equal values in sorted order
    new_group = np.empty(a.size, dtype=bool)
    if a.size:
        new_group[0] = True
        new_group[1:] = sorted_a[1:] != sorted_a[:-1]
    group_id = np.cumsum(new_group) - 1
    starts = np.flatnonzero(new_group)
    ends = np.append(starts[1:], a.size)  # exclusive
    mean_rank = (starts + ends + 1) / 2.0  # mean of ranks start+1 .. end
    ranks = np.empty(a.size, dtype=np.float64)
    ranks[order] = mean_rank[group_id]
    return ranks


def _pearson(x: FloatArray, y: FloatArray) -> float:
    if x.size < 2:
        return math.nan
    dx, dy = x - x.mean(), y - y.mean()
    denom = math.sqrt(float(np.dot(dx, dx)) * float(np.dot(dy, dy)))
    return float(np.dot(dx, dy) / denom) if denom > 0 else math.nan


def spearman(predicted: npt.ArrayLike, measured: npt.ArrayLike) -> float:
    """Spearman's rank correlation with average ranks for ties."""
    p, m = _pair(predicted, measured)
    return _pearson(average_ranks(p), average_ranks(m))


def kendall_tau_b(predicted: npt.ArrayLike, measured: npt.ArrayLike, *, chunk: int = 1024) -> float:
    """Kendall's tau-b, by direct comparison of all pairs (in row chunks to bound memory)."""
    p, m = _pair(predicted, measured)
    n = p.size
    if n < 2:
        return math.nan
    concordant_minus_discordant = 0
    tied_p = tied_m = 0
    for lo in range(0, n - 1, chunk):
        hi = min(lo + chunk, n - 1)
        i = np.arange(lo, hi)[:, None]
        j = np.arange(n)[None, :]
        upper = j > i  # each unordered pair once
        sp = np.sign(p[None, :] - p[lo:hi, None])
        sm = np.sign(m[None, :] - m[lo:hi, None])
        concordant_minus_discordant += int(np.sum((sp * sm)[upper]))
        tied_p += int(np.sum((sp == 0) & upper))
        tied_m += int(np.sum((sm == 0) & upper))
    n0 = n * (n - 1) // 2
    denom = math.sqrt(float(n0 - tied_p) * float(n0 - tied_m))
    return concordant_minus_discordant / denom if denom > 0 else math.nan


def top1_regret(predicted: npt.ArrayLike, measured: npt.ArrayLike) -> float:
    """Measured time of the predicted-best record over the best measured time, minus one.

    The predicted-best record is the first in order among equal (minimal) predictions.
    """
    p, m = _pair(predicted, measured)
    best = int(np.argmin(p))  # argmin returns the first occurrence
    return float(m[best] / m.min() - 1.0)


@dataclass(frozen=True, kw_only=True)
class AccuracyMetrics:
    """The four CONTRACT.md metrics over ``n`` (predicted, measured) pairs."""

    n: int
    mape: float
    spearman: float
    kendall: float
    top1_regret: float
    #: index (in the given order) of the predicted-best pair
    predicted_best_index: int
    #: index of the measured-best pair (first among equals)
    measured_best_index: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def accuracy_metrics(predicted: npt.ArrayLike, measured: npt.ArrayLike) -> AccuracyMetrics:
    """All metrics at once."""
    p, m = _pair(predicted, measured)
    return AccuracyMetrics(
        n=int(p.size),
        mape=mape(p, m),
        spearman=spearman(p, m),
        kendall=kendall_tau_b(p, m),
        top1_regret=top1_regret(p, m),
        predicted_best_index=int(np.argmin(p)),
        measured_best_index=int(np.argmin(m)),
    )
