"""The analytical model of the embedding stage: ``predict`` and ``predict_batch``.

Notation: B bags per call, L lookups per bag, D columns, R row bytes, R' the bytes of the
32-byte sectors a row covers, E rows; per configuration: b threads per block, r registers
per thread, p prefetch distance; W warps in flight on the GPU, G bags in flight, h the L2
hit fraction of row loads, T the time of one lookup iteration of a warp.

Chain of the model, per table call (the stage runs one call per table, one after another):

1. registers r from NVIDIA's compiler (the shipped resource table, see
   :func:`perfmodel.kernel_registers`) -> resident blocks and warps per SM (exact occupancy);
2. the kernel's work mapping -> W warps per round, rounds and tail:
   ``pytorch`` (PyTorch 2.1 ``EmbeddingBag_updateOutputKernel_sum_mean``): block (32, b/32),
   a fixed grid of 1,024 blocks, one warp per (bag, 32-column chunk), so a warp load moves
   32 elements (128 B of fp32) and a bag's chunks run on ceil(D/32) warps side by side;
   blocks beyond the resident slots run in later waves;
   ``warp``: one warp per bag, the lanes across the row with the widest aligned vector
   load, a grid sized to the GPU (every block resident; bags in rounds);
3. L2 residency -> h for W's interleaving of bags (:mod:`perfmodel._l2`);
4. one iteration of a warp is a dependent chain: row load (h at L2 latency, 1 - h at the
   loaded DRAM latency), the index load of the next iteration overlapping it (it shows only
   when it misses to DRAM while the row hits), the dependent arithmetic; a register prefetch
   ring keeps 1 + p row loads in flight, so
   T = chain / (1 + p) (an ``l2-hint`` kernel keeps one); the loaded DRAM latency depends on the DRAM utilization the warps
   themselves cause (Little's law; :func:`perfmodel._physics.little_throughput`), solved in
   closed form;
5. the warp schedulers: each issues one instruction per cycle to the warps it holds; the
   time of an iteration is that of a closed queue (approximate mean value analysis) with
   the memory chain as think time; L2 bandwidth caps it too;
6. time = sum over rounds of (units per warp) x L x T, plus launch gaps, a separate
   bounds-check pass when asked, and the pinning pass, reported as ``pin_time_s``
   (``evict-last-prefetch``: a bandwidth-bound read of the pinned rows;
   ``access-policy-window``: the index remap the kernels run before the lookup, since the
   table is stored hottest row first: indices read and written, ``row_map`` sectors
   gathered).

The kernel facts and costs this shares with the simulator (registers, instructions and
dependent chain of an iteration, loads in flight, work mapping, pinned rows, the passes'
bytes and times) come from :mod:`perfmodel._kernel`; this module combines them in closed
form. Every constant names its source; calibrated ones live in data/calibration/micro.toml.
One implementation, vectorized over configurations: ``predict`` evaluates a batch of one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from perfmodel._capacity import check_device_fit
from perfmodel._config import KernelConfig, Table, Workload
from perfmodel._errors import InputError
from perfmodel._gpu import GPUSpec, get_gpu
from perfmodel._kernel import (
    INDEX_BYTES,
    KERNEL_LAUNCH_GAP_S,
    PYTORCH_GRID_BLOCKS,
    SCHEDULERS_PER_SM,
    TBE_BLOCKS_PER_SM_CAP,
    KernelFacts,
    bounds_check_pass_bytes,
    compile_facts,
    evict_last_pass_bytes,
    expected_row_map_bytes,
    launch_blocks_per_sm,
    lookup_io_bytes,
    output_bytes,
    pass_time_s,
    pinned_row_count,
    remap_pass_bytes,
    sector_footprint_bytes,
    streaming_bandwidth,
    tbe_vecs_for,
    work_mapping,
)
from perfmodel._l1 import L1_BPB_GRID, L1_G_GRID, l1_hit_grid
from perfmodel._l2 import residency
from perfmodel._occupancy import blocks_per_sm
from perfmodel._physics import bracket, bracket_scalar, model_params, translation_cycles

if TYPE_CHECKING:
    from perfmodel._plan import Plan

__all__ = ["Prediction", "predict", "predict_batch"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

_KERNEL_FIELDS = tuple(f.name for f in fields(KernelConfig))
_CHECK_CODE = {"inline": 0, "separate": 1, "none": 2}


# ---- result type -------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Prediction:
    """The predicted (or simulated) time of one call of the embedding stage."""

    time_s: float
    pin_time_s: float
    occupancy: float
    l2_hit_rate: float
    dram_bytes: float
    bound: str
    breakdown: dict[str, Any] = field(default_factory=dict)
    fidelity: str = "model"

    def to_dict(self) -> dict[str, Any]:
        return {
            "time_s": self.time_s,
            "pin_time_s": self.pin_time_s,
            "lookup_time_s": self.time_s - self.pin_time_s,
            "occupancy": self.occupancy,
            "l2_hit_rate": self.l2_hit_rate,
            "dram_bytes": self.dram_bytes,
            "bound": self.bound,
            "fidelity": self.fidelity,
            "breakdown": self.breakdown,
        }

    def explain(self) -> str:
        """A readable account of where the time goes."""
        b = self.breakdown
        lines = [
            f"embedding stage: {self.time_s * 1e6:,.1f} us per call ({self.fidelity}); pinning passes "
            f"{self.pin_time_s * 1e6:,.1f} us of it",
            f"  bound by {self.bound}; L2 hit rate of row loads {self.l2_hit_rate:.1%}; DRAM traffic "
            f"{self.dram_bytes / 1e6:,.1f} MB",
        ]
        k = b.get("kernel", {})
        if k:
            lines.append(
                f"  kernel: {k.get('variant')} block {k.get('block_size')}, {b.get('registers')} registers/thread "
                f"({b.get('registers_source')}), {b.get('blocks_per_sm')} blocks = {b.get('warps_per_sm')} warps "
                f"per SM, occupancy {self.occupancy:.1%}"
            )
        prof = b.get("profile")
        if prof:
            lines.append(
                f"  compiled loop ({prof['source']}): {prof['row_loads_in_flight']} row loads in flight, "
                f"{prof['lookups_per_iteration']} lookups per pass, {prof['memory_rounds_per_lookup']:.2f} memory "
                f"rounds and {prof['instructions_per_lookup']:.1f} instructions per lookup"
                + (", index load on the row's chain" if prof["index_on_row_chain"] else "")
                + (", validation loop over the bag's indices" if prof.get("validation_loop") else "")
                + f"; launches: {b.get('launches', 'one per table call')}"
            )
        for t in b.get("tables", []):
            lines.append(
                f"  table {t['index']} x{t['count']}: {t['rows']:,} rows x {t['dim']} {t['dtype']}, "
                f"{t['lookups']:,} lookups/call; hit {t['l2_hit_rate']:.1%} (in the SM's L1 "
                f"{t.get('l1_hit_rate', 0.0):.1%}; pinned rows {t['pinned_rows']:,}, "
                f"{t['pinned_bytes'] / 2**20:.1f} MiB); {t['warps_in_flight']:,} warps in flight over "
                f"{t['rounds']:.2f} rounds; iteration {t['iteration_s'] * 1e9:.0f} ns ({t['bound']}); "
                f"DRAM {t['achieved_dram_bytes_per_s'] / 1e9:,.0f} GB/s; per call {t['call_time_s'] * 1e6:,.1f} us"
                + (f" + pin {t['pin_time_s'] * 1e6:,.1f} us" if t["pin_time_s"] else "")
            )
        return "\n".join(lines)


# ---- the core: one implementation for arrays (predict_batch) and floats (predict) --------


def _py_where(cond: Any, a: Any, b: Any) -> Any:
    return a if cond else b


#: the few array functions the core uses, for NumPy arrays and for plain Python numbers; the
#: arithmetic itself is the same code for both
_NP = SimpleNamespace(where=np.where, maximum=np.maximum, minimum=np.minimum, sqrt=np.sqrt, floor=np.floor,
                      ceil=np.ceil, inf=np.inf)
_PY = SimpleNamespace(where=_py_where, maximum=max, minimum=min, sqrt=math.sqrt, floor=math.floor,
                      ceil=math.ceil, inf=math.inf)


#: mapping codes of the variants (perfmodel._kernel.work_mapping)
_PYTORCH_MAP, _WARP_MAP, _TBE_MAP = 0, 1, 2


def _mapping_code(variant: str) -> int:
    return _TBE_MAP if variant == "tbe" else (_WARP_MAP if variant == "warp" else _PYTORCH_MAP)


@dataclass
class _Configs:
    """Kernel configurations: NumPy arrays (one entry per configuration) or Python scalars."""

    kernels: list[KernelConfig]
    mapping: Any
    block_size: Any
    pinned_fraction: Any
    evict_last: Any
    check: Any
    #: from :class:`perfmodel._kernel.KernelFacts` (the compiled kernel's profile): instructions
    #: and issue latency (cycles) per lookup, memory rounds per lookup and row loads per round,
    #: the index load on the row's chain, a spill load on it, the in-kernel validation loop, the
    #: l2-hint prefetch distance
    instr: Any
    issue_lat: Any
    rounds: Any
    per_round: Any
    idx_chain: Any
    local_chain: Any
    validation: Any
    hint_distance: Any


def _facts(uniq: list[tuple[Any, ...]], gpu: GPUSpec, dtype: str, vecs: int) -> list[KernelFacts]:
    arch = gpu.arch
    return [compile_facts(*r, arch, dtype, vecs if r[0] == "tbe" else 1) for r in uniq]


def _model_row_of(k: Any) -> tuple[int, tuple[Any, ...], int, float]:
    """``k._model_row``, set now where ``k`` was built without ``__post_init__`` (search's grid
    builds checked values that way); InputError for anything but a KernelConfig."""
    if not isinstance(k, KernelConfig):
        raise InputError(f"kernels must be KernelConfig objects, but got {type(k).__name__}")
    row = k.__dict__.get("_model_row")
    if row is None:
        row = k._compile_row()
        object.__setattr__(k, "_model_row", row)
    return row


def _configs(
    kernels: Sequence[KernelConfig], gpu: GPUSpec, dtype: str, vecs: int, scalar: bool
) -> tuple[_Configs, Any, Any, list[str], Any, IntArray | None, list[KernelFacts]]:
    """The distinct configurations as columns, with registers, spills and resident blocks.

    Work is done once per distinct configuration (a search repeats some): the columns hold
    the distinct ones, and the expansion maps every configuration to its column entry (None
    when all are distinct). The compiler's facts (the compiled kernel's profile,
    :class:`perfmodel._kernel.KernelFacts`) are looked up once per distinct compile key
    (variant, cap, prefetch, check, pin method: a grid of configurations has few), resident
    blocks once per distinct (block size, registers) pair (:func:`_resident_blocks`). Each
    configuration is read once per object (``KernelConfig._model_row``: an interned compile
    id, the key, block size, pinned fraction), and configurations are grouped and repeats
    found by sorting those numbers, never by hashing their fields on every call.
    Returns (configs, registers, spill bytes, register sources, blocks per SM, expansion,
    the facts of each distinct compile key).
    """
    ks = kernels if isinstance(kernels, list) else list(kernels)
    try:
        rows = [k._model_row for k in ks]
    except AttributeError:
        rows = [_model_row_of(k) for k in ks]
    arch = gpu.arch
    if scalar:
        _, r, size, fraction = rows[0]
        f = compile_facts(*r, arch, dtype, vecs if r[0] == "tbe" else 1)
        c = _Configs(ks, _mapping_code(r[0]), size, fraction, r[5] == "evict-last-prefetch", _CHECK_CODE[r[4]],
                     f.instructions_per_lookup, f.issue_latency_cycles, f.memory_rounds_per_lookup, f.loads_per_round,
                     f.index_on_row_chain, f.local_on_chain, f.validation_loop, float(f.l2_hint_distance))
        return (c, f.registers, float(f.spill_bytes), [f.registers_source], _blocks_one(gpu, size, f.registers), None,
                [f])
    ids, keys, sizes, fracs = zip(*rows, strict=True)
    _, first_of, code = np.unique(np.asarray(ids, dtype=np.int64), return_index=True, return_inverse=True)
    uniq = [keys[i] for i in first_of.tolist()]
    info = _facts(uniq, gpu, dtype, vecs)
    block = np.asarray(sizes, dtype=np.int64)
    frac = np.asarray(fracs, dtype=np.float64)
    # repeated configurations: equal (compile key, block size, pinned fraction)
    expand = None
    number = code * 64 + block // 32
    order = np.lexsort((frac, number))
    first = np.empty(order.size, dtype=bool)
    first[:1] = True
    first[1:] = (np.diff(number[order]) != 0) | (np.diff(frac[order]) != 0)
    if not first.all():
        expand = np.empty(order.size, dtype=np.int64)
        expand[order] = np.cumsum(first) - 1
        keep = order[first]
        code, block, frac = code[keep], block[keep], frac[keep]

    m = np.asarray([_fact_row(r, f) for r, f in zip(uniq, info, strict=True)], dtype=np.float64)[code].T
    regs = m[0].astype(np.int64)
    c = _Configs(ks, m[2].astype(np.int64), block, frac, m[3] > 0.5, m[4].astype(np.int64), m[5], m[6], m[7], m[8],
                 m[9] > 0.5, m[10] > 0.5, m[11] > 0.5, m[12])
    srcs = sorted({f.registers_source for f in info})
    return c, regs, m[1], srcs, _resident_blocks(gpu, block, regs), expand, info


#: per (compile key, facts object): the columns :func:`_configs` takes from them, as floats
_FACT_ROWS: dict[tuple[tuple[Any, ...], int], tuple[KernelFacts, tuple[float, ...]]] = {}


def _fact_row(r: tuple[Any, ...], f: KernelFacts) -> tuple[float, ...]:
    """(registers, spill bytes, mapping, evict-last, check code, instructions, issue latency,
    memory rounds, loads per round, index on chain, local on chain, validation loop, l2-hint
    distance) of one compile key, memoized per facts object."""
    got = _FACT_ROWS.get((r, id(f)))
    if got is not None and got[0] is f:
        return got[1]
    row = (float(f.registers), float(f.spill_bytes), float(_mapping_code(r[0])), float(r[5] == "evict-last-prefetch"),
           float(_CHECK_CODE[r[4]]), f.instructions_per_lookup, f.issue_latency_cycles, f.memory_rounds_per_lookup,
           f.loads_per_round, float(f.index_on_row_chain), float(f.local_on_chain), float(f.validation_loop),
           float(f.l2_hint_distance))
    if len(_FACT_ROWS) > 65536:
        _FACT_ROWS.clear()
    _FACT_ROWS[(r, id(f))] = (f, row)
    return row


#: share of L2 hits served by the near partition. Two partitions (A100/H100 whitepapers), lines
#: homed by address hash, so half the lines are homed near; a hit on a far-homed line finds a
#: near copy when the line's previous access came from this side (A100 duplicates far lines into
#: the near partition; the simulator models it line by line): 1/2 + 1/2 x 1/2.
L2_NEAR_SHARE = 0.75


@dataclass(frozen=True)
class _TableConstants:
    """What one table call's figures share across configurations (computed once)."""

    params: Any
    clk: float
    r_bytes: int
    r_fp: float
    res: Any
    n: float
    lookups_per_bag: float
    chunks: int
    col_chunks: int
    l1: float
    #: an L2 hit's latency (the near/far partition mix) and a DRAM access's, both with the
    #: translation cost of the table's footprint
    l2: float
    dram: float
    #: the queueing scales of the loaded DRAM latency: random row gathers, and streaming
    lq_random: float
    bw_stream: float
    #: where an index sector the warp has not read yet comes from (L2 or DRAM, by whether the
    #: call's indices fit the L2 after the kernel's other traffic)
    idx_fetch: float
    #: DRAM bytes of a call besides rows and indices (perfmodel._kernel.lookup_io_bytes), per mapping
    io: tuple[float, float, float]
    out_bytes: float
    #: L1 hit shares on (log bags per block, log bags in flight per SM); a float when constant
    h1: Any


#: per (table, batch, gpu) object identities -> constants (hashing frozen specs is not free)
_CONSTANTS: dict[tuple[int, int, int], tuple[Table, GPUSpec, _TableConstants]] = {}


def _constants(table: Table, batch: int, gpu: GPUSpec) -> _TableConstants:
    key = (id(table), batch, id(gpu))
    got = _CONSTANTS.get(key)
    if got is not None and got[0] is table and got[1] is gpu:
        return got[2]
    p = model_params()
    res = residency(table, batch)
    tr = translation_cycles(gpu.arch, float(table.table_bytes))
    dram = gpu.latency_s(gpu.dram_latency_cycles + tr)
    l2 = gpu.latency_s(L2_NEAR_SHARE * gpu.l2_near_latency_cycles + (1.0 - L2_NEAR_SHARE) * gpu.l2_far_latency_cycles + tr)
    r_bytes = table.row_bytes
    n = float(res.accesses)
    idx_in_l2 = n * INDEX_BYTES <= p.l2_capacity_fraction * gpu.l2_size_bytes
    pt = lookup_io_bytes("pytorch", batch, r_bytes, n)
    out = _TableConstants(
        params=p, clk=gpu.sm_clock_hz, r_bytes=r_bytes, r_fp=sector_footprint_bytes(r_bytes, gpu.l2_sector_bytes),
        res=res, n=n, lookups_per_bag=res.accesses / batch,
        chunks=work_mapping("pytorch", table.dim, table.dtype, gpu.warp_size).units_per_bag,
        col_chunks=work_mapping("warp", table.dim, table.dtype, gpu.warp_size).passes_per_unit,
        l1=gpu.latency_s(gpu.l1_latency_cycles), l2=l2, dram=dram,
        lq_random=p.dram_queue_factor * dram, bw_stream=streaming_bandwidth(gpu),
        idx_fetch=l2 if idx_in_l2 else dram,
        io=(pt, lookup_io_bytes("warp", batch, r_bytes, n), lookup_io_bytes("tbe", batch, r_bytes, n)),
        out_bytes=output_bytes(batch, r_bytes),
        h1=_l1_constants(l1_hit_grid(table, batch, gpu.sm_count,
                                     gpu.l1_cache_and_shared_mem_per_sm_bytes / sector_footprint_bytes(r_bytes, gpu.l2_sector_bytes))),
    )
    if len(_CONSTANTS) > 4096:
        _CONSTANTS.clear()
    _CONSTANTS[key] = (table, gpu, out)
    return out


_LOG_BPB = np.log(L1_BPB_GRID)
_LOG_G_SM = np.log(L1_G_GRID)
_LOG_BPB_LIST: list[float] = _LOG_BPB.tolist()
_LOG_G_SM_LIST: list[float] = _LOG_G_SM.tolist()


def _l1_constants(grid: npt.NDArray[np.float64]) -> Any:
    """The L1 grid as the core uses it: one float when it is constant (independent references)."""
    return float(grid[0, 0]) if bool(np.all(grid == grid[0, 0])) else grid


def _l1_share(h1: Any, bpb: Any, g_sm: Any, xp: Any) -> Any:
    """Bilinear in (log bags per block, log bags in flight per SM) on the L1 grid."""
    if isinstance(h1, float):
        return h1
    if xp is _PY:
        i, wi = bracket_scalar(_LOG_BPB_LIST, math.log(bpb))
        j, wj = bracket_scalar(_LOG_G_SM_LIST, math.log(g_sm))
        lo = h1[i, j] + (h1[i, j + 1] - h1[i, j]) * wj
        hi = h1[i + 1, j] + (h1[i + 1, j + 1] - h1[i + 1, j]) * wj
        return float(lo + (hi - lo) * wi)
    return _l1_share_logs(h1, np.log(bpb), np.log(g_sm))


#: log of warps per block (1 ... 32), looked up instead of computed for each configuration
_LOG_WARPS = np.log(np.maximum(np.arange(33, dtype=np.float64), 1.0))


def _l1_share_logs(h1: npt.NDArray[np.float64], log_bpb: FloatArray, log_g_sm: FloatArray) -> FloatArray:
    """:func:`_l1_share` on arrays, from the logarithms of its arguments."""
    iv, wiv = bracket(_LOG_BPB, log_bpb)
    jv, wjv = bracket(_LOG_G_SM, log_g_sm)
    n_j = h1.shape[1]
    corners = np.take(h1, (iv * n_j + jv)[None, :] + np.array([0, 1, n_j, n_j + 1])[:, None])  # (4, configs)
    lov = corners[0] + (corners[1] - corners[0]) * wjv
    hiv = corners[2] + (corners[3] - corners[2]) * wjv
    out: FloatArray = lov + (hiv - lov) * wiv
    return out


def _round_latency(lat: tuple[Any, Any, Any], cdf: tuple[Any, Any], m: Any, xp: Any) -> tuple[Any, Any]:
    """(E[slowest of m row loads], P(some load of the round misses to DRAM)) of a memory round:
    each load independently an L1 hit, an L2 hit or a DRAM access (latencies ``lat``, cumulative
    shares ``cdf`` of the first two); a fractional m interpolates between its neighbours."""
    lo = xp.maximum(xp.floor(m), 1.0)
    w = m - lo
    f0 = cdf[0] ** lo  # P(all m loads hit in the L1), P(all hit in the L1 or the L2)
    f1 = cdf[1] ** lo
    a = lat[0] * f0 + lat[1] * (f1 - f0) + lat[2] * (1.0 - f1)
    if xp is _PY and w == 0.0:
        return a, 1.0 - f1
    g0 = f0 * cdf[0]  # the same for m + 1 loads
    g1 = f1 * cdf[1]
    b = lat[0] * g0 + lat[1] * (g1 - g0) + lat[2] * (1.0 - g1)
    return a + (b - a) * w, 1.0 - (f1 + (g1 - f1) * w)


def _table_eval(table: Table, batch: int, c: _Configs, gpu: GPUSpec, blocks: Any, xp: Any,
                fused_units: float) -> dict[str, Any]:
    """Per-configuration figures of one call of ``table`` (arrays over configurations, or floats).

    ``fused_units``: the work units of every table a ``tbe`` launch covers (one launch for all of
    them); this table's share of that launch is ``fused_s``.
    """
    k_ = _constants(table, batch, gpu)
    p, clk, r_bytes, r_fp, res, n = k_.params, k_.clk, k_.r_bytes, k_.r_fp, k_.res, k_.n
    lookups_per_bag, chunks, col_chunks = k_.lookups_per_bag, k_.chunks, k_.col_chunks
    l1, l2, dram, bw_stream = k_.l1, k_.l2, k_.dram, k_.bw_stream

    is_warp = c.mapping == _WARP_MAP
    is_tbe = c.mapping == _TBE_MAP
    wpb = c.block_size // gpu.warp_size
    warps_per_sm = blocks * wpb
    slots_blocks = blocks * gpu.sm_count
    # work mapping: pytorch-like (a warp per (bag, 32-column chunk), grid 1024), warp (a warp per
    # bag, grid of the resident blocks), tbe (a warp per bag, grid over every table's bags of the
    # launch, at most 64 blocks per SM)
    units = xp.where(is_warp | is_tbe, float(batch), float(batch * chunks))
    tbe_grid = xp.minimum(xp.ceil(fused_units / wpb), TBE_BLOCKS_PER_SM_CAP * gpu.sm_count)
    grid = xp.where(is_warp, xp.maximum(slots_blocks, 1), xp.where(is_tbe, tbe_grid, PYTORCH_GRID_BLOCKS))
    # blocks whose warps get no unit exit at once: only ceil(units / warps per block) count
    eff_grid = xp.minimum(grid, xp.ceil(units / wpb))
    warps_total = eff_grid * wpb
    units_per_warp = xp.ceil(units / warps_total)  # u: the grid-stride loop's trips (max)
    # share of warps that run all u trips (the others run u - 1): the last trip's concurrency
    last_trip_share = (units - (units_per_warp - 1.0) * warps_total) / warps_total
    # waves of blocks: full waves fill every resident slot, then a tail wave
    slots = xp.maximum(slots_blocks, 1)
    full_waves = xp.floor(eff_grid / slots)
    tail_blocks = eff_grid - full_waves * slots
    w_full = 1.0 * xp.minimum(eff_grid, slots) * wpb
    w_tail = 1.0 * tail_blocks * wpb
    # a fused tbe launch keeps min(its resident warps, every table's units) busy
    w_fused = xp.minimum(1.0 * xp.minimum(tbe_grid, slots) * wpb, fused_units)
    w_full = xp.where(is_tbe, w_fused, w_full)
    # bytes one lookup iteration loads: the pytorch mapping a 32-column chunk, warp a column
    # pass, tbe the whole row (its vectors in the same iteration)
    bytes_per_iter = xp.where(is_warp, r_fp / col_chunks, xp.where(is_tbe, r_fp, r_fp / chunks))
    iters_per_unit = lookups_per_bag * xp.where(is_warp, float(col_chunks), 1.0)
    bags_in_flight = xp.minimum(xp.where(is_warp | is_tbe, w_full, w_full / chunks), float(batch))

    # L2 residency: pinned rows (hottest first) capped by the persisting maximum
    k_rows = pinned_row_count(c.pinned_fraction, table.rows, r_bytes, gpu)
    pinned_bytes = evict_last_pass_bytes(k_rows, r_bytes, gpu.l2_sector_bytes)
    cap_rows = p.l2_capacity_fraction * xp.maximum(gpu.l2_size_bytes - pinned_bytes, 0.0) / r_fp
    # logarithms are the costly array operations: log G is taken once, for the L2 and the L1
    log_g = None if xp is _PY else np.log(np.maximum(bags_in_flight, 1.0))
    hits, hits_fast = res.hit_counts(1.0 * k_rows, 1.0 * cap_rows, 1.0 * bags_in_flight, log_bags_in_flight=log_g)
    h = xp.minimum(xp.maximum(hits / max(n, 1), 0.0), 1.0)  # hits: no DRAM traffic (a call may have no lookup)
    hl = xp.minimum(xp.maximum(hits_fast / max(n, 1), 0.0), 1.0)  # of which not merged into an in-flight miss
    # of those, served by the issuing SM's own L1 (the kernels use no shared memory, so the
    # whole unified L1/shared array is taken as L1; perfmodel._l1.l1_hit_grid). A block holds
    # runs of consecutive bags: wpb (warp, tbe) or wpb / chunks (pytorch, at least one bag).
    bpb = xp.where(is_warp | is_tbe, 1.0 * wpb, xp.maximum(wpb / chunks, 1.0))
    g_sm = xp.maximum(bags_in_flight / gpu.sm_count, 1.0)
    if xp is _PY or isinstance(k_.h1, float):
        h1 = xp.minimum(_l1_share(k_.h1, bpb, g_sm, xp), hl)
    else:  # log bpb from a table of log(warps per block); log g_sm = max(log G - log SMs, 0)
        assert log_g is not None
        log_wpb = np.take(_LOG_WARPS, wpb)
        log_bpb = np.where(is_warp | is_tbe, log_wpb, np.maximum(log_wpb - math.log(chunks), 0.0))
        h1 = np.minimum(_l1_share_logs(k_.h1, log_bpb, np.maximum(log_g - math.log(gpu.sm_count), 0.0)), hl)

    # ---- one warp's time per lookup, from the compiled code (perfmodel._kernel.KernelFacts) ----
    # l2-hint prefetches turn DRAM misses into L2 hits when they run far enough ahead
    hint_cover = xp.where(c.hint_distance > 0, xp.minimum(1.0, c.hint_distance * (l2 + c.issue_lat / clk) / dram), 0.0)
    dram_eff = l2 + (dram - l2) * (1.0 - hint_cover)
    # a memory round waits for its slowest row load: each an L1 hit, an L2 hit (the near/far
    # mix) or a DRAM access; hits merged into an in-flight miss wait as long as the miss
    t_row, p_miss = _round_latency((l1, l2, dram_eff), (h1, hl), c.per_round, xp)
    # the index of the round's first lookup, where the row's address waits on it: a sector the
    # warp has not read yet (per_round x 8 bytes of a 32-byte sector) comes from where the
    # call's indices are (L2 or DRAM), the rest from the L1; after an in-kernel validation loop
    # every index is in the L1
    p_sec = xp.where(c.validation, 0.0, xp.minimum(1.0, c.per_round * INDEX_BYTES / gpu.l2_sector_bytes))
    t_idx = xp.where(c.idx_chain, p_sec * k_.idx_fetch + (1.0 - p_sec) * l1, 0.0)
    t_local = xp.where(c.local_chain, l1, 0.0)
    # per unit of work, spread over its lookup iterations: the unit first loads its bag's offsets
    # (begin and end, which every index address waits for; from where the call's indices are),
    # then the validation loop waits once per 128-byte line of the bag's indices (16 int64 per
    # pass; a short bag still waits for one line). The simulator runs the same steps per unit.
    per_unit = 1.0 / xp.maximum(iters_per_unit, 1e-9)
    lines_per_bag = math.ceil(lookups_per_bag * INDEX_BYTES / gpu.l2_line_bytes - 1e-9)
    t_check = xp.where(c.validation, lines_per_bag * k_.idx_fetch, 0.0) * per_unit
    t_offsets = k_.idx_fetch * per_unit
    z_mem = (t_idx + t_row + t_local) * c.rounds + t_check + t_offsets
    z_issue = c.issue_lat / clk  # the warp's own instruction stalls (control bits)
    # loaded DRAM latency of random gathers: L = L0 + a L_dram rho / (1 - rho) on the rounds
    # with a DRAM miss (rho: the DRAM utilization the warps cause, reads and output writes)
    queue = c.rounds * p_miss * k_.lq_random * (1.0 - hint_cover) + xp.where(
        c.hint_distance > 0, (1.0 - h) * k_.lq_random * hint_cover, 0.0)
    out_per_iter = k_.out_bytes / xp.maximum(units * iters_per_unit, 1.0)
    issue_per_warp = c.instr / clk  # one warp instruction per cycle per scheduler
    resident = xp.maximum(warps_per_sm, 1)

    def iteration(w: Any) -> tuple[Any, Any]:
        """Per-lookup time T of a warp with ``w`` warps in flight, and what bounds it."""
        w = xp.maximum(w, 1.0)
        # Little's law with the loaded DRAM latency: T = z + queue * rho / (1 - rho),
        # rho = kk / T (kk: DRAM-busy time per iteration of the w warps), solved for T
        z = z_mem + z_issue
        kk = w * ((1.0 - h) * bytes_per_iter + out_per_iter) / gpu.dram_bandwidth_bytes_per_s
        zl = 0.5 * ((z + kk) + xp.sqrt((z - kk) ** 2 + 4.0 * queue * kk))
        # the warp scheduler: n warps share it, each needing s of issue per lookup and spending
        # zl away (memory, its own stalls). Schweitzer's approximate mean value analysis of this
        # closed system, R^2 + R (zl - s n) - s zl = 0 for the time R at the scheduler, gives
        # T = R + zl: zl + s at n = 1, s n when issue saturates, the queueing in between.
        nw = xp.maximum(xp.minimum(w / gpu.sm_count, resident) / SCHEDULERS_PER_SM, 1.0)
        sn = issue_per_warp * nw
        t_sched = 0.5 * ((sn + zl) + xp.sqrt((sn - zl) ** 2 + 4.0 * issue_per_warp * zl))
        t_l2bw = w * (1.0 - h1) * bytes_per_iter / gpu.l2_bandwidth_bytes_per_s
        t = xp.maximum(t_sched, t_l2bw)
        which = xp.where(t == t_l2bw, 2, xp.where(sn >= zl, 3, xp.where(kk > 0.5 * zl, 1, 0)))
        return t, which

    if xp is _PY:  # one configuration: skip the evaluations whose result is known (same values)
        t_full, bound_full = iteration(w_full)
        t_last = t_full if last_trip_share == 1.0 else iteration(w_full * last_trip_share)[0]
        wave_tail = 0.0 if tail_blocks == 0 else (
            (units_per_warp - 1.0) * iteration(w_tail)[0] + iteration(w_tail * last_trip_share)[0])
    else:  # the four warp counts in one pass over a (4, configs) array
        t4, which4 = iteration(np.stack([w_full, w_full * last_trip_share, w_tail, w_tail * last_trip_share]))
        t_full, bound_full, t_last = t4[0], which4[0], t4[1]
        wave_tail = (units_per_warp - 1.0) * t4[2] + t4[3]
    wave_full = (units_per_warp - 1.0) * t_full + t_last
    lookup_s = (full_waves * wave_full + (tail_blocks > 0) * wave_tail) * iters_per_unit
    lookup_s = xp.where(blocks > 0, lookup_s + KERNEL_LAUNCH_GAP_S, xp.inf)
    # this table's share of a fused (tbe) launch: its units' lookups at the launch's concurrency
    fused_s = xp.where(blocks > 0, units * iters_per_unit * t_full / xp.maximum(w_full, 1.0), xp.inf)

    # bytes: row misses, the index stream, offsets, output and side outputs (perfmodel._kernel.lookup_io_bytes)
    row_dram = (n - hits) * r_fp
    index_bytes = n * INDEX_BYTES
    dram_bytes = row_dram + index_bytes + xp.where(is_warp, k_.io[1], xp.where(is_tbe, k_.io[2], k_.io[0]))

    # the passes around the lookup (perfmodel._kernel: one formula each, shared with the
    # simulator), each a streaming pass at bw_stream:
    # separate bounds check: one read of the indices before the lookup
    check_bytes = bounds_check_pass_bytes(n)
    check_s = xp.where(c.check == 1, pass_time_s(check_bytes, bw_stream), 0.0)
    dram_bytes = dram_bytes + xp.where(c.check == 1, check_bytes, 0.0)
    # evict-last pinning pass: prefetch.global.L2::evict_last over the pinned rows
    pin_s = xp.where(c.evict_last & (k_rows > 0), pass_time_s(pinned_bytes, bw_stream), 0.0)
    dram_bytes = dram_bytes + xp.where(c.evict_last, pinned_bytes, 0.0)
    # access-policy window: the index remap through row_map. Distinct rows D ~ the lookup's
    # row misses plus the pinned rows (at most all rows), taken as spread at random over the
    # row_map sectors (the simulator counts the sectors of the call's indices exactly); the
    # gathers are taken at the streaming rate: the grid-stride pass keeps every thread's load
    # in flight (random sectors' lost DRAM page locality is not modelled).
    touched = xp.minimum(n - hits + k_rows, float(table.rows)) / table.rows
    remap_bytes = remap_pass_bytes(n, expected_row_map_bytes(touched, table.rows, gpu.l2_sector_bytes))
    remap_bytes = xp.where(c.evict_last, 0.0, xp.where(k_rows > 0, remap_bytes, 0.0))
    pin_s = pin_s + xp.where(remap_bytes > 0, pass_time_s(remap_bytes, bw_stream), 0.0)
    dram_bytes = dram_bytes + remap_bytes

    return {
        "lookup_s": lookup_s + check_s,
        "fused_s": fused_s,
        "check_s": check_s,
        "pin_s": pin_s,
        "hits": hits,
        "n": n,
        "h": h,
        "h1": h1,
        "hl": hl,
        "dram_bytes": dram_bytes,
        "k_rows": k_rows,
        "pinned_bytes": pinned_bytes,
        "w_full": w_full,
        "rounds": (full_waves + tail_blocks / slots) * units_per_warp,
        "t_full": t_full,
        "bound": bound_full,
        "dram_rate": row_dram / xp.maximum(xp.where(is_tbe, fused_s, lookup_s - KERNEL_LAUNCH_GAP_S), 1e-30),
        "units": units * iters_per_unit,
    }


_BOUND_NAMES = ("latency", "dram-bandwidth", "l2-bandwidth", "issue")


#: resident blocks per SM by (block size / 32, registers), per GPU object (GPUSpec hashing is
#: not free); -1 = not computed yet
_BLOCKS: dict[int, tuple[GPUSpec, npt.NDArray[np.int64]]] = {}


def clear_cache() -> None:
    """Forget the per-table constants and resident-block counts held in memory."""
    _CONSTANTS.clear()
    _BLOCKS.clear()
    _FACT_ROWS.clear()


def _blocks_table(gpu: GPUSpec) -> npt.NDArray[np.int64]:
    entry = _BLOCKS.get(id(gpu))
    if entry is None or entry[0] is not gpu:
        entry = _BLOCKS[id(gpu)] = (gpu, np.full((1024 // 32 + 1, 256), -1, dtype=np.int64))
    return entry[1]


def _resident_blocks(gpu: GPUSpec, block_size: IntArray, regs: IntArray) -> IntArray:
    """Resident blocks per SM of each (block size, registers) pair (exact occupancy, memoized
    in a table; the pairs not seen before computed in one vectorized call)."""
    table = _blocks_table(gpu)
    b = block_size // 32
    r = np.minimum(regs, 255)
    got = table[b, r]
    if (got < 0).any():
        todo = np.unique(b[got < 0] * 256 + r[got < 0])
        tb, tr = todo // 256, todo % 256
        table[tb, tr] = np.asarray(blocks_per_sm(gpu, tb * 32, tr, 0)["active"], dtype=np.int64)
        got = table[b, r]
    out: IntArray = got
    return out


def _blocks_one(gpu: GPUSpec, block_size: int, regs: int) -> int:
    """Resident blocks per SM of one (block size, registers) pair (memoized)."""
    table = _blocks_table(gpu)
    got = int(table[block_size // 32, min(regs, 255)])
    if got < 0:
        got = int(blocks_per_sm(gpu, block_size, regs, 0)["active"])
        table[block_size // 32, min(regs, 255)] = got
    return got


def _table_vecs(t: Table) -> int:
    """FBGEMM's vectors per lane of ``t``'s rows (only a ``tbe`` kernel's facts depend on it)."""
    return tbe_vecs_for(t.dim)


def _evaluate(
    workload: Workload, kernels: Sequence[KernelConfig], gpu: GPUSpec, scalar: bool = False
) -> tuple[dict[str, Any], list[dict[str, Any]], list[KernelFacts]]:
    xp = _PY if scalar else _NP
    per_table: list[dict[str, Any]] = []
    total: Any = 0.0
    fused: Any = 0.0
    fused_check: Any = 0.0
    pin: Any = 0.0
    hits: Any = 0.0
    dram: Any = 0.0
    n_all = 0.0
    t0 = workload.tables[0]
    key0 = (t0.dtype, _table_vecs(t0))
    groups: dict[tuple[str, int], tuple[Any, ...]] = {key0: _configs(kernels, gpu, key0[0], key0[1], scalar)}
    c, regs, spill, srcs, blocks, expand, facts = groups[key0]
    # a tbe launch covers every table's bags (FBGEMM's table-batched kernel: one grid over them all)
    fused_units = float(sum(t.count * workload.batch_size for t in workload.tables))
    for t in workload.tables:
        key = (t.dtype, _table_vecs(t))
        if key not in groups:
            groups[key] = _configs(kernels, gpu, key[0], key[1], scalar)
        c_t, b_t = groups[key][0], groups[key][4]
        e = _table_eval(t, workload.batch_size, c_t, gpu, b_t, xp, fused_units)
        total = total + t.count * (e["lookup_s"] + e["pin_s"])
        fused = fused + t.count * e["fused_s"]
        fused_check = fused_check + t.count * (e["check_s"] - xp.where(e["check_s"] > 0, KERNEL_LAUNCH_GAP_S, 0.0))
        pin = pin + t.count * e["pin_s"]
        hits = hits + t.count * e["hits"]
        n_all += t.count * e["n"]
        dram = dram + t.count * e["dram_bytes"]
        per_table.append(e)
    # tbe: one launch (and one check pass) for all tables; the others: one launch per table call
    is_tbe = c.mapping == _TBE_MAP
    fused_total = fused + KERNEL_LAUNCH_GAP_S + xp.where(fused_check > 0, fused_check + KERNEL_LAUNCH_GAP_S, 0.0) + pin
    total = xp.where(is_tbe, fused_total, total)
    warps = blocks * (c.block_size // gpu.warp_size)
    agg = {
        "time_s": total,
        "pin_time_s": pin,
        "l2_hit_rate": hits / max(n_all, 1.0),
        "dram_bytes": dram,
        "occupancy": warps / gpu.max_warps_per_sm,
        "registers": regs,
        "spill_bytes": spill,
        "registers_source": srcs,
        "blocks_per_sm": blocks,
        "warps_per_sm": warps,
        "fused": is_tbe,
    }
    if expand is not None:  # from the distinct configurations back to every one asked for
        agg = {k: v[expand] if isinstance(v, np.ndarray) else v for k, v in agg.items()}
    return agg, per_table, facts


def _check_args(workload: Workload, gpu: GPUSpec | str) -> GPUSpec:
    if not isinstance(workload, Workload):
        raise InputError(f"workload must be a perfmodel.Workload, but got {type(workload).__name__}")
    g = get_gpu(gpu)
    check_device_fit(workload, g)  # capacity first: tables larger than the GPU are one error, not an allocation
    return g


def predict_batch(workload: Workload, kernels: Sequence[KernelConfig], gpu: GPUSpec | str) -> FloatArray:
    """Predicted stage time (s) of each kernel configuration, as a NumPy array.

    Same physics as :func:`predict` (it is the same code); launches that cannot run (0
    resident blocks) give ``inf``.
    """
    g = _check_args(workload, gpu)
    if len(kernels) == 0:
        return np.zeros(0)
    agg, _, _ = _evaluate(workload, kernels, g)
    return np.asarray(agg["time_s"], dtype=np.float64)


def predict(workload: Workload, kernel: KernelConfig | Plan, gpu: GPUSpec | str) -> Prediction:
    """Predicted time of one call of the embedding stage, with its breakdown.

    ``kernel`` is one configuration for every table, or a :class:`perfmodel.Plan` (one per
    table entry; :func:`perfmodel._plan.predict_plan`). Deterministic: the same inputs give
    the same numbers (sampled index streams are seeded from the workload).
    """
    g = _check_args(workload, gpu)
    from perfmodel._plan import Plan, predict_plan

    if isinstance(kernel, Plan):
        return predict_plan(workload, kernel, g)
    if not isinstance(kernel, KernelConfig):
        raise InputError(f"kernel must be a perfmodel.KernelConfig, but got {type(kernel).__name__}")
    for dtype, dim in sorted({(t.dtype, t.dim) for t in workload.tables}):
        launch_blocks_per_sm(kernel, g, dtype, dim)  # one error for a kernel that cannot launch
    agg, per_table, facts = _evaluate(workload, [kernel], g, scalar=True)
    f = facts[0]
    tables = []
    bounds = []
    for i, (t, e) in enumerate(zip(workload.tables, per_table, strict=True)):
        bound = _BOUND_NAMES[int(e["bound"])]
        bounds.append((float(e["lookup_s"]) * t.count, bound))
        tables.append({
            "index": i, "count": t.count, "rows": t.rows, "dim": t.dim, "dtype": t.dtype,
            "lookups": int(e["n"]), "l2_hit_rate": float(e["h"]), "l1_hit_rate": float(e["h1"]),
            "l2_merged_rate": float(e["h"] - e["hl"]), "pinned_rows": int(e["k_rows"]),
            "pinned_bytes": float(e["pinned_bytes"]), "warps_in_flight": int(e["w_full"]),
            "rounds": float(e["rounds"]), "iteration_s": float(e["t_full"]), "bound": bound,
            "achieved_dram_bytes_per_s": float(e["dram_rate"]),
            "call_time_s": float(e["fused_s"] if agg["fused"] else e["lookup_s"]), "pin_time_s": float(e["pin_s"]),
            "dram_bytes_per_call": float(e["dram_bytes"]),
        })
    bound = max(bounds)[1] if bounds else "latency"
    if not math.isfinite(agg["time_s"]):
        bound = "unlaunchable"
    breakdown = {
        "kernel": {f: getattr(kernel, f) for f in _KERNEL_FIELDS},
        "gpu": g.id,
        "registers": int(agg["registers"]),
        "registers_source": agg["registers_source"][0],
        "spill_bytes": float(agg["spill_bytes"]),
        "profile": {
            "source": f.profile_source,
            "row_loads_in_flight": f.row_loads_in_flight,
            "lookups_per_iteration": f.lookups_per_iteration,
            "memory_rounds_per_lookup": f.memory_rounds_per_lookup,
            "instructions_per_lookup": f.instructions_per_lookup,
            "issue_latency_cycles_per_lookup": f.issue_latency_cycles,
            "index_on_row_chain": f.index_on_row_chain,
            "local_ops_per_lookup": f.local_ops_per_lookup,
            "validation_loop": f.validation_loop,
        },
        "launches": "one for all tables (table-batched)" if agg["fused"] else "one per table call",
        "blocks_per_sm": int(agg["blocks_per_sm"]),
        "warps_per_sm": int(agg["warps_per_sm"]),
        "tables": tables,
    }
    return Prediction(
        time_s=float(agg["time_s"]),
        pin_time_s=float(agg["pin_time_s"]),
        occupancy=float(agg["occupancy"]),
        l2_hit_rate=float(agg["l2_hit_rate"]),
        dram_bytes=float(agg["dram_bytes"]),
        bound=bound,
        breakdown=breakdown,
    )
