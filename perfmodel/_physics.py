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

import math
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
    "GatherParams",
    "ModelParams",
    "bracket",
    "bracket_scalar",
    "gather_params",
    "issue_interval_cycles",
    "little_throughput",
    "model_params",
    "random_replacement_hit_rate",
    "translation_cycles",
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


@lru_cache(maxsize=8)
def issue_interval_cycles(arch: str) -> float:
    """Mean cycles one warp waits between two of its own instructions in the compiled hot loops
    of ``arch`` (the control bits' stall counts, data/calibration/issue.toml, written by
    scripts/count_loop_instructions.py from the disassembly; no timing enters). Another
    architecture takes the nearest older one's figure."""
    text = resources.files("perfmodel").joinpath("data/calibration/issue.toml").read_text(encoding="utf-8")
    table = {k: float(v["value"]) for k, v in tomllib.loads(text)["issue_interval_cycles"].items()}
    if arch in table:
        return table[arch]
    num = int("".join(ch for ch in arch if ch.isdigit()) or 0)
    older = sorted((int("".join(ch for ch in a if ch.isdigit())), v) for a, v in table.items())
    below = [v for n, v in older if n <= num]
    return below[-1] if below else older[0][1]


def _nearest_arch(arch: str, known: list[str]) -> str:
    """``arch`` if known, else the nearest older known architecture (the oldest if none is older)."""
    if arch in known:
        return arch
    num = int("".join(ch for ch in arch if ch.isdigit()) or 0)
    older = sorted((int("".join(ch for ch in a if ch.isdigit())), a) for a in known)
    below = [a for n, a in older if n <= num]
    return below[-1] if below else older[0][1]


@dataclass(frozen=True, kw_only=True)
class GatherParams:
    """The memory system under random row gathers (data/calibration/gather.toml).

    ``translation`` maps an architecture to figures read off the pointer-chase curves (no fit):
    (footprint F0 in bytes where the chase's DRAM plateau starts, cycles added per doubling of
    the footprint beyond F0, the largest footprint measured). ``loaded_translation_cycles``:
    per architecture, the cycles every access beyond the L1 adds under a full GPU's random
    gathers once the footprint exceeds F0 (attributed to address translation: the single-warp
    chase sees its unloaded cost only), fitted on the ledger's calibration points of that
    architecture only (scripts/fit_published.py names them).
    """

    loaded_translation_cycles: dict[str, float]
    translation: dict[str, tuple[float, float, float]]
    sources: dict[str, str]

    def loaded_translation(self, arch: str) -> float:
        """``loaded_translation_cycles`` of ``arch`` (another architecture: the nearest older one's)."""
        return self.loaded_translation_cycles[_nearest_arch(arch, list(self.loaded_translation_cycles))]


#: parameters under evaluation by a fit (scripts/fit_published.py); None: the shipped file
_GATHER_OVERRIDE: list[GatherParams | None] = [None]


def gather_params() -> GatherParams:
    """The shipped :class:`GatherParams` (or those a fit is evaluating)."""
    return _GATHER_OVERRIDE[0] or _gather_file()


@lru_cache(maxsize=1)
def _gather_file() -> GatherParams:
    """:class:`GatherParams` as data/calibration/gather.toml holds them."""
    text = resources.files("perfmodel").joinpath("data/calibration/gather.toml").read_text(encoding="utf-8")
    doc = tomllib.loads(text)
    tr = {arch: (float(v["plateau_bytes"]), float(v["cycles_per_doubling"]), float(v["measured_to_bytes"]))
          for arch, v in doc["translation"].items()}
    params = doc["params"]
    names = ("loaded_translation_cycles",)
    return GatherParams(
        loaded_translation_cycles={a: float(v[names[0]]["value"]) for a, v in params.items()},
        translation=tr,
        sources={f"{n}.{a}": str(v[n].get("source", "")) for a, v in params.items() for n in names})


def translation_cycles(arch: str, footprint_bytes: float) -> float:
    """Cycles a random access beyond the L2 pays for address translation over a footprint of
    ``footprint_bytes`` (0 while the footprint is within the chase's DRAM plateau start): the
    pointer chase's latency growth per doubling of its footprint (TLB misses included, since the
    chase is a random permutation), extrapolated at the same slope beyond the largest footprint
    measured (an estimate there). Another architecture takes the nearest older one's figures."""
    gp = gather_params()
    f0, slope, _top = gp.translation[_nearest_arch(arch, list(gp.translation))]
    if footprint_bytes <= f0:
        return 0.0
    return slope * math.log2(footprint_bytes / f0) + gp.loaded_translation(arch)


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
