"""Trace-driven cache simulation of row accesses (the engine behind ``recperf cache-sim``).

Notation: N bytes per row, C cache capacity in bytes, W ways, 128-byte lines of four
32-byte sectors (the GPU's L2 geometry; CUDA C++ Best Practices Guide).

Two modes:

- ``ways = 0``: a fully associative LRU cache of ``C // N`` rows; a row access hits iff
  its LRU stack distance is below that capacity (:mod:`perfmodel._lru`). Exact, and the
  same cache that independent simulators (libCacheSim's ``LRU``) implement.
- ``ways = W > 0``: the L2 model: ``C // 128`` lines in ``C // 128 // W`` sets of W ways,
  a hashed set index (a 64-bit mix of the line number, scaled to the number of sets, as
  NVIDIA's undocumented L2 hash spreads addresses over slices and sets), sector fills.
  Row r occupies bytes ``[r N, (r + 1) N)`` of a line-aligned table; an access to it
  requests, in every 128-byte line that range overlaps, the 32-byte sectors it overlaps
  (``ceil(N / 32)`` sectors when N is a multiple of 32). On a miss the line is allocated
  (replacing per the policy) and only the requested sectors become valid; a later access
  to another sector of that line is a sector miss in a present line. ``hit_rate`` is the
  sector hit rate (the byte-weighted rate that sets DRAM traffic); the row hit rate (all
  of a row's sectors hit) and line hit rate are reported beside it.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from perfmodel._config import DTYPES, MAX_DIM
from perfmodel._errors import InputError, check_int, choices_text
from perfmodel._interrupt import interruptible

__all__ = ["POLICIES", "CacheSimResult", "cache_sim", "read_trace"]

IntArray = npt.NDArray[np.int64]

#: replacement policies of the set-associative model (SRRIP: Jaleel et al., ISCA 2010)
POLICIES = {"lru": 0, "srrip": 1, "random": 2}
#: the largest row: a table row of the largest dim a workload allows, in the widest dtype
MAX_ROW_BYTES = MAX_DIM * max(DTYPES.values())
#: lines of the set-associative model (2**26: a 8 GiB cache of 128-B lines, 80x the largest
#: GPU L2; its state then takes about 1.2 GB of host memory)
MAX_LINES = 1 << 26
_INDEX_MAX = (1 << 63) - 1


@dataclass(frozen=True, kw_only=True)
class CacheSimResult:
    """Counts of one replay. ``accesses`` counts row accesses (trace entries)."""

    mode: str
    policy: str
    accesses: int
    hits: int
    misses: int
    hit_rate: float
    row_hit_rate: float
    capacity_bytes: int
    row_bytes: int
    ways: int
    capacity_rows: int | None = None
    lines: int | None = None
    sets: int | None = None
    line_accesses: int | None = None
    line_hits: int | None = None
    sector_accesses: int | None = None
    sector_hits: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_trace(path: str | os.PathLike[str]) -> IntArray:
    """A trace file's indices: text (whitespace-separated decimal integers) or ``.npy``.

    Text: one non-negative decimal integer below 2**63 per line (blank lines allowed),
    parsed by a compiled scanner (about 10x faster than ``np.loadtxt``), which keeps
    ``recperf cache-sim`` on multi-million-line traces dominated by simulation.
    """
    p = os.fspath(path)
    if p.endswith(".npy"):
        try:
            arr = np.load(p, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read trace {p!r}: {exc}") from None
        if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
            raise InputError(f"trace {p!r}: a .npy trace must be a 1-D integer array, but got {arr.dtype} {arr.shape}")
        if arr.size and arr.dtype == np.uint64 and int(arr.max()) > _INDEX_MAX:
            raise InputError(f"trace {p!r}: every index must be below 2**63, but got {int(arr.max())}")
        return np.ascontiguousarray(arr, dtype=np.int64)
    try:
        with open(p, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise InputError(f"cannot read trace {p!r}: {exc.strerror}") from None
    from perfmodel._traces import parse_trace_text

    out = parse_trace_text(data, p)
    if out.size == 0:
        raise InputError(f"trace {p!r} holds no indices")
    return out


def _is_pow2(v: int) -> bool:
    return v > 0 and v & (v - 1) == 0


def cache_sim(
    rows: npt.ArrayLike,
    *,
    row_bytes: int,
    capacity_bytes: int,
    ways: int,
    line_bytes: int = 128,
    sector_bytes: int = 32,
    policy: str = "lru",
    seed: int = 1,
) -> CacheSimResult:
    """Replay row accesses through a cache that starts empty (see the module docstring)."""
    keys = np.ascontiguousarray(np.asarray(rows), dtype=np.int64)
    if keys.ndim != 1:
        raise InputError(f"`rows` must be 1-D, but got shape {keys.shape}")
    if keys.size and int(keys.min()) < 0:
        raise InputError(f"row ids must be >= 0, but got {int(keys.min())}")
    # a row is at most the largest table row a workload may have (dim 65536 x 4 B): every
    # access walks the row's lines, so a row of 10^14 bytes would walk 10^12 of them
    check_int(row_bytes, "row_bytes", min_val=1, max_val=MAX_ROW_BYTES)
    for name, v in (("capacity_bytes", capacity_bytes), ("line_bytes", line_bytes), ("sector_bytes", sector_bytes)):
        check_int(v, name, min_val=1)
    check_int(ways, "ways", min_val=0)  # 0: fully associative LRU
    if keys.size and (int(keys.max()) + 1) * row_bytes > _INDEX_MAX:
        raise InputError(f"`(row id + 1) * row_bytes < 2**63` (a byte address) must hold, but got row id "
                         f"{int(keys.max())} with row_bytes={row_bytes}")
    if policy not in POLICIES:
        raise InputError(f"unknown policy {policy!r}; valid choices: {choices_text(list(POLICIES))}")
    n = int(keys.size)
    if ways == 0:
        if policy != "lru":
            raise InputError(f"`ways = 0` is the fully associative LRU mode; policy must be 'lru', but got {policy!r}")
        from perfmodel._lru import lru_hit_counts

        cap = capacity_bytes // row_bytes
        with interruptible():  # a capacity of n rows or more holds every row the n accesses touch
            hits = int(lru_hit_counts(keys, [min(cap, n)])[0])
        return CacheSimResult(
            mode="fully-associative-lru", policy="lru", accesses=n, hits=hits, misses=n - hits,
            hit_rate=hits / n if n else 0.0, row_hit_rate=hits / n if n else 0.0,
            capacity_bytes=capacity_bytes, row_bytes=row_bytes, ways=0, capacity_rows=cap,
        )
    if line_bytes % sector_bytes or not 1 <= line_bytes // sector_bytes <= 8:
        raise InputError(
            f"`line_bytes` must be 1 to 8 sectors, but got line_bytes={line_bytes}, sector_bytes={sector_bytes}"
        )
    lines = capacity_bytes // line_bytes
    sets = lines // ways
    if sets < 1 or lines > MAX_LINES:
        raise InputError(
            f"`ways <= capacity_bytes // line_bytes <= {MAX_LINES}` must hold (at least one set; at most "
            f"{MAX_LINES} lines held in memory), but got capacity_bytes={capacity_bytes}, line_bytes={line_bytes}, "
            f"ways={ways}"
        )
    from perfmodel.sim import _l2jit

    with interruptible():  # a Ctrl-C waits for the compiled walk to return (no crash inside numba)
        if policy == "lru" and _is_pow2(line_bytes) and _is_pow2(sector_bytes):
            c = _l2jit.run_rows_lru(keys, row_bytes, int(line_bytes).bit_length() - 1,
                                    int(sector_bytes).bit_length() - 1, sets, ways)
        else:
            c = _l2jit.run_rows_policy(keys, row_bytes, line_bytes, sector_bytes, sets, ways, POLICIES[policy], seed)
    row_hits, line_acc, line_hits, sec_acc, sec_hits = (int(x) for x in c)
    return CacheSimResult(
        mode="set-associative", policy=policy, accesses=n, hits=sec_hits, misses=sec_acc - sec_hits,
        hit_rate=sec_hits / sec_acc if sec_acc else 0.0, row_hit_rate=row_hits / n if n else 0.0,
        capacity_bytes=capacity_bytes, row_bytes=row_bytes, ways=ways, lines=sets * ways, sets=sets,
        line_accesses=line_acc, line_hits=line_hits, sector_accesses=sec_acc, sector_hits=sec_hits,
    )
