"""Memory-system physics shared by the microbenchmark predictions and the embedding model.

Notation: F footprint (bytes), C capacity (bytes), x = F / C, h hit fraction; N bytes in
flight, L0 unloaded latency (s), B peak bandwidth (bytes/s), rho = X / B utilization of
the achieved throughput X; a the DRAM queueing factor.

- Cache residency under a cyclic sweep with (pseudo-)random replacement: a line survives
  each miss with probability 1 - 1/C, so between two of its uses (F(1-h) misses) it
  survives with probability exp(-x (1-h)); the hit fraction is the fixed point
  h = exp(-x (1 - h)), i.e. h = -W0(-x e^-x) / x for x > 1 (W0 Lambert's function) and 1
  for x <= 1. NVIDIA's L1 and L2 are not LRU (the pointer chase hits well beyond the
  capacity, data/gpu-benches/latency_*), and this form reproduces those curves.
- Loaded latency: L = L0 + a * L_dram * rho / (1 - rho) (an M/D/1-like queueing term that
  grows as the achieved bandwidth nears its peak); with Little's law X = N / L this gives
  a quadratic in rho, solved in closed form, so loaded latency emerges from the load
  rather than being assumed.

Every function here works elementwise on NumPy arrays and on plain floats.
"""

from __future__ import annotations

import sys
from bisect import bisect_right
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np
import numpy.typing as npt

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = [
    "ModelParams",
    "bracket",
    "bracket_scalar",
    "little_throughput",
    "loop_instructions",
    "model_params",
    "random_replacement_hit_rate",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
ArrayOrFloat = Any  # float or FloatArray; kept loose so the same code serves both


def random_replacement_hit_rate(x: ArrayOrFloat) -> ArrayOrFloat:
    """Hit fraction of a cyclic sweep over a footprint x times the capacity (see module doc)."""
    from scipy.special import lambertw

    xa = np.maximum(np.asarray(x, dtype=np.float64), 1e-300)
    big = xa > 1.0
    xs = np.where(big, xa, 2.0)
    h = np.real(-lambertw(-xs * np.exp(-xs), 0)) / xs
    out = np.where(big, np.clip(h, 0.0, 1.0), 1.0)
    return float(out) if np.ndim(x) == 0 else out


def little_throughput(
    bytes_in_flight: ArrayOrFloat,
    latency_s: ArrayOrFloat,
    peak_bytes_per_s: ArrayOrFloat,
    queue_latency_s: ArrayOrFloat,
) -> ArrayOrFloat:
    """Achieved throughput X with Little's law and a loaded latency.

    Solves X = N / (L0 + Lq * rho / (1 - rho)), rho = X / B, for 0 <= rho < 1, where
    ``queue_latency_s`` is Lq = a * L_dram (the scale of the queueing delay).
    Returns X in bytes/s (never above B).
    """
    n = np.asarray(bytes_in_flight, dtype=np.float64)
    l0 = np.asarray(latency_s, dtype=np.float64)
    b = np.asarray(peak_bytes_per_s, dtype=np.float64)
    lq = np.asarray(queue_latency_s, dtype=np.float64)
    # B*r*L0*(1-r) + B*r*Lq*r = N*(1-r)  =>  r^2 (B Lq - B L0) + r (B L0 + N) - N = 0
    qa = b * (lq - l0)
    qb = b * l0 + n
    qc = -n
    disc = np.sqrt(np.maximum(qb * qb - 4.0 * qa * qc, 0.0))
    # the root in [0, 1), in the form that is stable for any sign of qa (and qa = 0)
    r = (2.0 * n) / np.maximum(qb + disc, 1e-300)
    r = np.clip(r, 0.0, 1.0 - 1e-12)
    out = r * b
    return float(out) if np.ndim(out) == 0 else out


@dataclass(frozen=True, kw_only=True)
class ModelParams:
    """Calibrated parameters of the memory physics (data/calibration/micro.toml).

    Each was fitted by ``scripts/fit_micro.py`` on the data named in the file, and is
    architecture-generic (a fraction or a cycle count), so it carries to other GPUs.
    """

    l1_capacity_fraction: float
    l2_near_capacity_fraction: float
    l2_capacity_fraction: float
    dram_queue_factor: float
    block_turnaround_cycles: float
    sources: dict[str, str]


@lru_cache(maxsize=1)
def model_params() -> ModelParams:
    """The shipped calibration of :class:`ModelParams`."""
    text = resources.files("perfmodel").joinpath("data/calibration/micro.toml").read_text(encoding="utf-8")
    doc = tomllib.loads(text)
    p = doc["params"]
    return ModelParams(
        l1_capacity_fraction=float(p["l1_capacity_fraction"]["value"]),
        l2_near_capacity_fraction=float(p["l2_near_capacity_fraction"]["value"]),
        l2_capacity_fraction=float(p["l2_capacity_fraction"]["value"]),
        dram_queue_factor=float(p["dram_queue_factor"]["value"]),
        block_turnaround_cycles=float(p["block_turnaround_cycles"]["value"]),
        sources={k: str(v.get("source", "")) for k, v in p.items()},
    )


#: register_cap 0 (no cap) interpolates as this many registers
_UNCAPPED = 256.0


@lru_cache(maxsize=1)
def _loop_table() -> dict[tuple[str, bool, str], tuple[FloatArray, FloatArray, FloatArray]]:
    """(prefetch distances, caps, instructions[distance, cap]) per (variant, inline check, kind)."""
    text = resources.files("perfmodel").joinpath("data/calibration/loop_instructions.toml").read_text(encoding="utf-8")
    doc = tomllib.loads(text)
    raw: dict[tuple[str, bool, str], dict[tuple[float, float], float]] = {}
    for e in doc["loop"]:
        key = (str(e["variant"]), e["bounds_check"] == "inline", str(e["prefetch_kind"]))
        cap = float(e.get("register_cap", 0)) or _UNCAPPED
        raw.setdefault(key, {})[(float(e["prefetch_distance"]), cap)] = float(e["instructions_per_iteration"])
    for (variant, inline, kind), pts in list(raw.items()):  # distance 0 is the same loop for both kinds
        if kind == "register":
            hint = raw.setdefault((variant, inline, "l2-hint"), {})
            hint.update({k: v for k, v in pts.items() if k[0] == 0.0})
    out = {}
    for key, pts in raw.items():
        pds = np.array(sorted({k[0] for k in pts}))
        caps = np.array(sorted({k[1] for k in pts}))
        grid = np.array([[pts[(d, c)] for c in caps] for d in pds])
        out[key] = (pds, caps, grid)
    return out


def bracket(xs: FloatArray, x: FloatArray) -> tuple[IntArray, FloatArray]:
    """Index i with xs[i] <= x < xs[i+1] (clamped) and the linear weight of xs[i+1], vectorized."""
    i = np.minimum(np.maximum(np.searchsorted(xs, x, side="right") - 1, 0), len(xs) - 2)
    lo = xs[i]
    w = np.minimum(np.maximum((x - lo) / np.maximum(xs[i + 1] - lo, 1e-12), 0.0), 1.0)
    return i, w


def bracket_scalar(xs: list[float], x: float) -> tuple[int, float]:
    """:func:`bracket` for one value (xs a list; no array overhead)."""
    i = min(max(bisect_right(xs, x) - 1, 0), len(xs) - 2)
    lo = xs[i]
    return i, min(max((x - lo) / max(xs[i + 1] - lo, 1e-12), 0.0), 1.0)


@lru_cache(maxsize=8192)
def loop_instructions(
    variant: str, inline_check: bool, prefetch_kind: str, prefetch_distance: int, register_cap: int = 0
) -> float:
    """SASS instructions one lookup iteration executes, spill code included
    (data/calibration/loop_instructions.toml, counted from nvcc's output by
    scripts/count_loop_instructions.py; bilinear between the counted distances and caps)."""
    pds, caps, grid = _loop_table()[(variant, inline_check, prefetch_kind)]
    cap = float(register_cap) or _UNCAPPED
    i, wi = bracket_scalar(pds.tolist(), float(prefetch_distance)) if len(pds) > 1 else (0, 0.0)
    j, wj = bracket_scalar(caps.tolist(), cap) if len(caps) > 1 else (0, 0.0)
    i1, j1 = min(i + 1, len(pds) - 1), min(j + 1, len(caps) - 1)
    lo = grid[i, j] + (grid[i, j1] - grid[i, j]) * wj
    hi = grid[i1, j] + (grid[i1, j1] - grid[i1, j]) * wj
    return float(lo + (hi - lo) * wi)
