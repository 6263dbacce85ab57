"""Che's approximation of an LRU cache under independent references, from a cold start.

Notation: n accesses of one call, rows grouped into atoms (:class:`perfmodel._popularity.Atoms`):
``count_j`` rows each read with probability q_j per access (sum count q = 1 within the
stream), C the capacity in rows, T Che's characteristic time (in accesses), beta_j = 1 - q_j.

An access hits when its row was read within the last T accesses, where T solves
``sum_j count_j (1 - beta_j^T) = C`` (Che, Tung and Wang 2002; Fricker, Robert and Roberts
2012 for its accuracy). The call starts cold, so the access at time t looks back min(t-1, T)
accesses; summed over the n accesses a row of probability q hits

    q T - (1 - beta^T) + q (n - T)(1 - beta^T)      (T < n)
    q n - (1 - beta^n)                              (T >= n: every access after its first)

times. Powers of beta are exact for draws with replacement (no Poisson approximation):
a row that is the whole table, read once, never hits.

Hits under a miss: of a row's hits, those within G accesses of its latest miss wait for that
miss. Its misses come at the rate q m per access (m its miss share), so a hit has a miss
among the G accesses before it with probability 1 - (1 - q m)^G.

Everything is vectorized over capacities and atoms; the cost depends on the atoms, never on
the rows (:mod:`perfmodel._popularity` keeps those few).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from perfmodel._popularity import Atoms

__all__ = ["CallHits", "call_hits", "characteristic_time", "expected_distinct", "hit_fraction", "hit_fractions", "touched"]

FloatArray = npt.NDArray[np.float64]

#: Newton/bisection steps of the characteristic-time solve (converges to 1e-12 relative in
#: fewer; the loop stops early)
_MAX_STEPS = 60


def touched(q: npt.ArrayLike, x: npt.ArrayLike) -> FloatArray:
    """1 - (1 - q)^x elementwise (broadcast): the chance that x draws read a row of
    probability q; accurate for tiny q x, exact at q = 1 (one draw always reads it)."""
    qa = np.clip(np.asarray(q, dtype=np.float64), 0.0, 1.0)
    xa = np.asarray(x, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = -np.expm1(xa * np.log1p(-qa))
    out = np.where(qa >= 1.0, np.where(xa > 0, 1.0, 0.0), out)
    return np.asarray(out, dtype=np.float64)


def expected_distinct(atoms: Atoms, n: float) -> float:
    """Expected distinct rows among n draws."""
    return float((atoms.count * touched(atoms.q, n)).sum())


def characteristic_time(atoms: Atoms, capacities: npt.ArrayLike) -> FloatArray:
    """T(C): ``sum count (1 - (1-q)^T) = C`` for each capacity; inf where C >= the rows.

    Safeguarded Newton in log T inside a bracket that always holds the root:
    T >= C / sum(count lambda) (the occupancy is below T sum(count lambda)) and
    T <= -ln(1 - C/rows) / min(lambda), with lambda = -ln(1 - q).
    """
    caps = np.atleast_1d(np.asarray(capacities, dtype=np.float64))
    keep = (atoms.count > 0) & (atoms.q > 0)
    q, cnt = atoms.q[keep], atoms.count[keep]
    lam = -np.log1p(-np.minimum(q, 1.0 - 1e-16))  # rate of one row's reads per access
    rows = float(cnt.sum())
    out = np.full(caps.shape, np.inf)
    solve = (caps > 0) & (caps < rows * (1.0 - 1e-12))  # the rest holds every row: T = inf
    out[caps <= 0] = 0.0
    if not solve.any():
        return out
    c = caps[solve]
    lo = np.log(c / float((cnt * lam).sum()))
    hi = np.log(-np.log1p(-c / rows) / float(lam.min()))
    s = 0.5 * (lo + hi)
    for _ in range(_MAX_STEPS):
        t = np.exp(s)
        e = np.exp(-np.outer(t, lam))  # (capacity, atom)
        f = (cnt * -np.expm1(-np.outer(t, lam))).sum(axis=1) - c
        lo = np.where(f < 0, s, lo)
        hi = np.where(f >= 0, s, hi)
        df = t * (e * (cnt * lam)).sum(axis=1)  # d occupancy / d ln T
        step = np.where(df > 0, f / np.maximum(df, 1e-300), 0.0)
        s_new = s - step
        bad = ~((s_new >= lo) & (s_new <= hi))  # outside the bracket: bisect instead
        s_new = np.where(bad, 0.5 * (lo + hi), s_new)
        done = (np.abs(step) < 1e-13) | (hi - lo < 1e-13)
        s = np.where(done, s, s_new)
        if done.all():
            break
    out[solve] = np.exp(s)
    return out


@dataclass(frozen=True)
class CallHits:
    """Expected hits of one cold call, per capacity (and per bags-in-flight window)."""

    #: expected hits, one per capacity
    hits: FloatArray
    #: of those, hits under a miss, shape (windows, capacities)
    merged: FloatArray
    #: expected distinct rows the call reads
    distinct: float


def call_hits(atoms: Atoms, n: float, capacities: npt.ArrayLike, windows: npt.ArrayLike = (1.0,)) -> CallHits:
    """Che's hits of n independent accesses to ``atoms`` from a cold LRU of each capacity.

    Args:
        atoms: the rows the stream reads; their probabilities are renormalized to the
            stream (pinned rows taken out by the caller).
        n: accesses of the stream.
        capacities: LRU capacities, rows.
        windows: accesses G within which a hit waits for its row's latest miss.
    """
    caps = np.atleast_1d(np.asarray(capacities, dtype=np.float64))
    g = np.atleast_1d(np.asarray(windows, dtype=np.float64))
    keep = (atoms.count > 0) & (atoms.q > 0)
    qm, cnt = atoms.q[keep], atoms.count[keep]
    mass = float(qm @ cnt)
    if n <= 0 or mass <= 0:
        return CallHits(np.zeros(caps.size), np.zeros((g.size, caps.size)), 0.0)
    q = np.minimum(qm / mass, 1.0)
    first = touched(q, n)  # a row's first access misses (if it has one)
    reuse = np.maximum(n * q - first, 0.0)  # accesses after the first
    t_inf = characteristic_time(Atoms(q, cnt), caps)
    t = np.minimum(t_inf, n)  # (capacity,)
    e = touched(q[None, :], t[:, None])  # (capacity, atom): read within the last T
    row_hits = q[None, :] * t[:, None] - e + q[None, :] * (n - t)[:, None] * e
    row_hits[~np.isfinite(t_inf), :] = reuse
    row_hits = np.clip(row_hits, 0.0, reuse[None, :])
    hits = row_hits @ cnt
    h = row_hits / np.maximum(reuse, 1e-300)[None, :]  # hit share of the row's reuses
    acc = np.maximum(n * q, 1e-300)
    m = np.clip((first[None, :] + (1.0 - h) * reuse[None, :]) / acc[None, :], 0.0, 1.0)  # miss share
    close = touched((q[None, :] * m)[None, :, :], g[:, None, None])  # (window, capacity, atom)
    merged = (close * row_hits[None, :, :]) @ cnt
    return CallHits(np.asarray(hits, dtype=np.float64), np.asarray(merged, dtype=np.float64),
                    expected_distinct(Atoms(q, cnt), n))


def hit_fraction(atoms: Atoms, n: float, capacity: float) -> float:
    """Share of n independent accesses that hit a cold LRU of ``capacity`` rows."""
    return float(hit_fractions(atoms, [n], capacity)[0])


def hit_fractions(atoms: Atoms, ns: npt.ArrayLike, capacity: float) -> FloatArray:
    """:func:`hit_fraction` for several stream lengths: T(C) does not depend on n, so it is
    solved once."""
    n = np.atleast_1d(np.asarray(ns, dtype=np.float64))
    keep = (atoms.count > 0) & (atoms.q > 0)
    qm, cnt = atoms.q[keep], atoms.count[keep]
    mass = float(qm @ cnt)
    if mass <= 0:
        return np.zeros(n.size)
    q = np.minimum(qm / mass, 1.0)
    t_inf = float(characteristic_time(Atoms(q, cnt), [capacity])[0])
    first = touched(q[None, :], n[:, None])  # (stream, atom)
    reuse = np.maximum(n[:, None] * q[None, :] - first, 0.0)
    if not np.isfinite(t_inf):
        hits = reuse
    else:
        t = np.minimum(t_inf, n)[:, None]
        e = touched(q[None, :], t)
        hits = np.clip(q[None, :] * t - e + q[None, :] * (n[:, None] - t) * e, 0.0, reuse)
    out: FloatArray = np.where(n > 0, (hits @ cnt) / np.maximum(n, 1e-300), 0.0)
    return out
