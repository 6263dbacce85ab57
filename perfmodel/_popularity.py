"""Popularity of a table's rows by rank, described without per-row arrays.

Notation: E rows, ranks r = 0 .. E-1 (0 hottest), q_r the probability that one access reads
the row of rank r; for Zipf q_r = (r + 1)^-alpha / Z with Z = H(E) = sum_{j=1..E} j^-alpha.

What the residency estimators need of an independent-reference table is sums over rows of
a smooth function of q (Che's occupancy, expected first touches, hits): sum_r g(q_r). An
:class:`Atoms` set stands for the rows of a rank range as few (q, count) pairs with
sum_j count_j g(q_j) ~= sum_r g(q_r):

- uniform: one atom (1/E, rows), exact;
- Zipf: the hottest ``EXACT_RANKS`` ranks one atom each (exact), the rest in geometric rank
  bins (ratio at most ``BIN_RATIO``); within a bin the discrete sum is taken as the integral
  over x = rank + 1 from the bin's first rank - 1/2 to its last + 1/2 (midpoint rule; its
  relative error in one row's q is about alpha (alpha + 1) / (24 x^2), below 1e-4 for
  x > EXACT_RANKS and alpha <= 1.5), evaluated
  by ``NODES``-point Gauss-Legendre quadrature in log x. Each bin's atoms are rescaled to
  the bin's exact probability mass, so the atoms' masses add up to 1.

The exact partial sums H(N) come from the hottest ranks summed directly plus the
Euler-Maclaurin formula for the rest (Abramowitz and Stegun 23.1.30, three Bernoulli
terms: the remainder, about alpha (alpha+1) ... (alpha+6) / 1209600 x^-(alpha+7) at the
first summed rank x = EXACT_RANKS + 1, is below 1e-12 of H for 0 < alpha <= 10).

Cost: O(EXACT_RANKS + NODES log(E) / log(BIN_RATIO)) for any E (at most ``MAX_BINS`` bins),
so a 10^12-row table costs what a 10^5-row one does. The binned estimates are checked
against the per-row sums in tests/test_popularity.py (hit rates within 0.2 points).

Sampling (:meth:`Popularity.sample_ranks`) uses the same description: the hottest ranks by
inversion of their exact CDF, the others by inversion of the continuous density x^-alpha
of the midpoint rule, rounded to the rank whose interval holds x.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from perfmodel._config import Table

__all__ = ["BIN_RATIO", "EXACT_RANKS", "Atoms", "Popularity", "UniformPopularity", "ZipfPopularity",
           "exact_atoms", "popularity"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Zipf ranks summed one by one (the hottest). With BIN_RATIO this keeps the binned hit
#: rates within 1e-4 points of the per-row sums (tests/test_popularity.py; 16 exact ranks
#: already give 2e-3 points)
EXACT_RANKS = 64
#: largest ratio of a rank bin's last to first rank beyond EXACT_RANKS
BIN_RATIO = 2.0
#: most rank bins (2^63 rows need 57 at BIN_RATIO; beyond, the ratio would grow instead)
MAX_BINS = 64
#: Gauss-Legendre nodes per bin
NODES = 4


@dataclass(frozen=True)
class Atoms:
    """Rows grouped by access probability: ``count[j]`` rows, each read with probability
    ``q[j]`` by one access (counts may be fractional: quadrature weights)."""

    q: FloatArray
    count: FloatArray

    @property
    def mass(self) -> float:
        """Probability that one access reads one of these rows."""
        return float(self.q @ self.count)

    @property
    def rows(self) -> float:
        return float(self.count.sum())


def exact_atoms(q: npt.ArrayLike) -> Atoms:
    """One atom per row (the exact per-row description; for checks and tiny tables)."""
    arr = np.asarray(q, dtype=np.float64)
    return Atoms(arr, np.ones_like(arr))


class Popularity(abc.ABC):
    """Access probabilities of a table's rows, by rank (0 hottest)."""

    rows: int

    @abc.abstractmethod
    def prefix_mass(self, k: npt.ArrayLike) -> FloatArray:
        """Probability that one access reads one of the ``k`` hottest rows (vectorized)."""

    @abc.abstractmethod
    def atoms(self, lo: int = 0) -> Atoms:
        """The rows of ranks ``lo .. E-1`` as atoms (probabilities of the whole table)."""

    @abc.abstractmethod
    def sample_ranks(self, rng: np.random.Generator, n: int) -> IntArray:
        """``n`` independent ranks (0-based), each drawn with probability q_r."""


class UniformPopularity(Popularity):
    """Every row equally likely: q_r = 1/E (one atom, exact)."""

    def __init__(self, rows: int) -> None:
        self.rows = int(rows)

    def prefix_mass(self, k: npt.ArrayLike) -> FloatArray:
        return np.clip(np.asarray(k, dtype=np.float64), 0.0, self.rows) / self.rows

    def atoms(self, lo: int = 0) -> Atoms:
        left = float(max(self.rows - max(int(lo), 0), 0))
        return Atoms(np.array([1.0 / self.rows]), np.array([left]))

    def sample_ranks(self, rng: np.random.Generator, n: int) -> IntArray:
        return rng.integers(0, self.rows, n, dtype=np.int64)


def _power_integral(a: FloatArray, b: FloatArray, alpha: float) -> FloatArray:
    """int_a^b x^-alpha dx (a, b > 0), accurate for alpha near 1."""
    la, lb = np.log(a), np.log(b)
    e = 1.0 - alpha
    if e == 0.0:
        return np.asarray(lb - la, dtype=np.float64)
    # a^(1-alpha) (exp((1-alpha) ln(b/a)) - 1) / (1-alpha)
    out: FloatArray = np.exp(e * la) * np.expm1(e * (lb - la)) / e
    return out


def _power_integral_inverse(a: FloatArray, s: FloatArray, alpha: float) -> FloatArray:
    """x with int_a^x t^-alpha dt = s."""
    e = 1.0 - alpha
    if e == 0.0:
        return np.asarray(a * np.exp(s), dtype=np.float64)
    # x^(1-alpha) = a^(1-alpha) + (1-alpha) s  ->  x = a exp(log1p((1-alpha) s a^(alpha-1)) / (1-alpha))
    out: FloatArray = a * np.exp(np.log1p(e * s * np.exp(-e * np.log(a))) / e)
    return out


def _gauss_legendre_4() -> tuple[FloatArray, FloatArray]:
    """Nodes and weights of 4-point Gauss-Legendre quadrature on [-1, 1] (closed form,
    Abramowitz and Stegun 25.4.29); numpy.polynomial.legendre.leggauss(4) gives the same
    numbers but its import costs more than this module's work."""
    a, b = math.sqrt(3 / 7 - 2 / 7 * math.sqrt(6 / 5)), math.sqrt(3 / 7 + 2 / 7 * math.sqrt(6 / 5))
    wa, wb = (18 + math.sqrt(30)) / 36, (18 - math.sqrt(30)) / 36
    return np.array([-b, -a, a, b]), np.array([wb, wa, wa, wb])


_GL_X, _GL_W = _gauss_legendre_4()


class ZipfPopularity(Popularity):
    """q_r = (r + 1)^-alpha / H(E): exact hottest ranks, geometric rank bins after (module docstring)."""

    def __init__(self, rows: int, alpha: float) -> None:
        self.rows = int(rows)
        self.alpha = float(alpha)
        self._n_exact = min(self.rows, EXACT_RANKS)
        w = np.arange(1, self._n_exact + 1, dtype=np.float64) ** -self.alpha
        self._head_w = w
        self._head_cum = np.concatenate([[0.0], np.cumsum(w)])  # H(k) for k <= EXACT_RANKS
        self._z = float(self._partial_sums(np.array([self.rows], dtype=np.float64))[0])

    # ---- H(N) = sum_{j=1..N} j^-alpha, vectorized --------------------------------------
    def _derivative(self, x: FloatArray, order: int) -> FloatArray:
        """d^order/dx^order of x^-alpha."""
        c = 1.0
        for i in range(order):
            c *= -(self.alpha + i)
        return np.asarray(c * x ** (-self.alpha - order), dtype=np.float64)

    def _tail_sum(self, a: FloatArray, b: FloatArray) -> FloatArray:
        """sum_{j=a..b} j^-alpha for integers b >= a > EXACT_RANKS (Euler-Maclaurin)."""
        f = self._derivative
        out = _power_integral(a, b, self.alpha) + 0.5 * (f(a, 0) + f(b, 0))
        out += (f(b, 1) - f(a, 1)) / 12.0  # B2 / 2!
        out -= (f(b, 3) - f(a, 3)) / 720.0  # B4 / 4!
        out += (f(b, 5) - f(a, 5)) / 30240.0  # B6 / 6!
        return np.asarray(out, dtype=np.float64)

    def _partial_sums(self, n: FloatArray) -> FloatArray:
        """H(n) for whole numbers 0 <= n <= E (float array)."""
        n = np.asarray(n, dtype=np.float64)
        out = np.empty_like(n)
        small = n <= self._n_exact
        out[small] = self._head_cum[n[small].astype(np.int64)]
        big = ~small
        if big.any():
            a = np.full(int(big.sum()), self._n_exact + 1.0)
            out[big] = self._head_cum[-1] + self._tail_sum(a, n[big])
        return out

    # ---- the Popularity interface ---------------------------------------------------------
    def prefix_mass(self, k: npt.ArrayLike) -> FloatArray:
        kk = np.clip(np.floor(np.asarray(k, dtype=np.float64)), 0.0, self.rows)
        return np.asarray(self._partial_sums(np.atleast_1d(kk)).reshape(kk.shape) / self._z, dtype=np.float64)

    def _tail_edges(self, lo: int) -> FloatArray:
        """Rank-bin edges (0-based rank boundaries, whole numbers) from ``lo`` to E."""
        lo = max(lo, self._n_exact)
        if lo >= self.rows:
            return np.array([float(self.rows)])
        span = math.log((self.rows + 0.5) / (lo + 0.5))
        nb = min(MAX_BINS, max(1, math.ceil(span / math.log(BIN_RATIO))))
        edges = np.unique(np.round(np.geomspace(lo + 0.5, self.rows + 0.5, nb + 1) - 0.5))
        edges[0], edges[-1] = lo, self.rows
        return np.unique(edges)

    def atoms(self, lo: int = 0) -> Atoms:
        lo = max(int(lo), 0)
        parts_q: list[FloatArray] = []
        parts_c: list[FloatArray] = []
        if lo < self._n_exact:
            parts_q.append(self._head_w[lo:] / self._z)
            parts_c.append(np.ones(self._n_exact - lo))
        edges = self._tail_edges(lo)
        if edges.size > 1:
            e0, e1 = edges[:-1], edges[1:]
            # bin [e0, e1) of 0-based ranks = x in [e0 + 1/2, e1 + 1/2], x = rank + 1
            u0, u1 = np.log(e0 + 0.5), np.log(e1 + 0.5)
            xg, wg = _GL_X, _GL_W
            half = 0.5 * (u1 - u0)
            u = (0.5 * (u0 + u1))[:, None] + half[:, None] * xg[None, :]
            x = np.exp(u)
            count = half[:, None] * wg[None, :] * x  # dx = x du
            count *= ((e1 - e0) / count.sum(axis=1))[:, None]  # rows of the bin, exactly
            w = x ** -self.alpha
            exact_mass = self._partial_sums(e1) - self._partial_sums(e0)
            w *= (exact_mass / (w * count).sum(axis=1))[:, None]  # the bin's exact mass
            parts_q.append((w / self._z).ravel())
            parts_c.append(count.ravel())
        if not parts_q:
            return Atoms(np.zeros(0), np.zeros(0))
        return Atoms(np.concatenate(parts_q), np.concatenate(parts_c))

    def sample_ranks(self, rng: np.random.Generator, n: int) -> IntArray:
        u = rng.random(n) * self._z
        head_total = float(self._head_cum[-1])
        out = np.minimum(np.searchsorted(self._head_cum[1:], u, side="right"), self._n_exact - 1).astype(np.int64)
        tail = u >= head_total
        if tail.any() and self.rows > self._n_exact:
            # continuous density x^-alpha on [EXACT + 1/2, E + 1/2], scaled to the tail's exact mass
            a = self._n_exact + 0.5
            span = float(_power_integral(np.array([a]), np.array([self.rows + 0.5]), self.alpha)[0])
            s = (u[tail] - head_total) / (self._z - head_total) * span
            x = _power_integral_inverse(np.full(s.size, a), s, self.alpha)
            out[tail] = np.clip(np.floor(x - 0.5), self._n_exact, self.rows - 1).astype(np.int64)
        return out


def popularity(table: Table) -> Popularity | None:
    """The rank popularity of a table's independent-reference distribution; None for traces."""
    kind = table.indices.kind
    if kind == "uniform":
        return _uniform(table.rows)
    if kind == "zipf":
        return _zipf(table.rows, table.indices.alpha)
    return None


@lru_cache(maxsize=64)
def _uniform(rows: int) -> UniformPopularity:
    return UniformPopularity(rows)


@lru_cache(maxsize=64)
def _zipf(rows: int, alpha: float) -> ZipfPopularity:
    return ZipfPopularity(rows, alpha)
