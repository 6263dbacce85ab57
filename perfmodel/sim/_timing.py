"""``simulate``: a trace-driven, discrete-event simulation of the embedding stage.

Notation: B bags per call, L lookups per bag, D columns, R row bytes, E rows; b threads per
block, p prefetch distance; P L2 partitions; all times inside the simulation in SM cycles.

What runs, per distinct table (a table with ``count = n`` is n identical calls: each call
starts from an L2 holding only that table's pinned rows, CONTRACT.md, so one simulated call
stands for all n):

1. **Access stream.** The launch as the kernels are written (kernels/*.cu, kernels/_launch.py):
   ``pytorch``: blocks of (32, b/32) threads, a fixed grid of 1,024 blocks, one warp per
   (bag, 32-column chunk) unit, grid-stride over units; a warp iteration reads the bag's
   next 8-byte index (all lanes one address) and then that row's 32 columns (one 128-B line
   for fp32). ``warp``: 1-D blocks, one warp per bag, grid ``min(ceil(B / (b/32)),
   sm_count * 2048 / b)`` blocks, grid-stride over bags; an iteration reads the index and then
   the row with one vector load per lane (columns beyond 32 vectors in further passes).
   Blocks go to SMs round-robin, as many per SM as the exact occupancy allows (registers
   from the same source as :func:`perfmodel.predict`); a finished block's slot takes the
   next block of the grid (waves), after ``block_turnaround_cycles``.
2. **Warps.** Each warp keeps at most ``1 + p`` row loads in flight (its register ring;
   ``prefetch_kind = "l2-hint"`` keeps one, and sends an L2 prefetch for the row p lookups
   ahead). An iteration's chain is: index load -> address arithmetic (the dependent
   instructions of the loop body) -> row load. Instruction issue: a warp issues one
   instruction per cycle, an SM four (NVIDIA whitepapers); so an SM's warps share an issue
   server. A warp's segment (a unit or column pass) drains its ring before the next.
3. **Memory.** Per-SM L1 (sectored, set-associative, LRU) -> L2 -> DRAM. The L2 is P
   partitions of set-associative, sectored lines with a hashed set index and the chosen
   replacement policy; an SM talks to its near partition; an address has a home partition
   (hash); a miss in the near partition of a line homed in the far one is a far hit (far
   latency) when the far partition has it, and the line is then duplicated into the near
   partition (FACTS.md section 3); DRAM fills the home and the near copy. Bandwidth: one FIFO
   server for L2 sector transfers at ``l2_bandwidth_bytes_per_s`` and one for DRAM sectors
   at ``dram_bandwidth_bytes_per_s``, so queueing (loaded latency) emerges; the latencies
   added to the queue waits are the unloaded pointer-chase ones of the GPU spec.
4. **Pinning.** The hottest ``pinned_row_fraction`` of the rows, capped at the GPU's
   persisting-L2 maximum, are resident as persisting lines when the call starts, in their
   home partition; persisting lines may fill at most ``floor(ways * persisting max / L2
   size)`` ways of a set and normal lines never evict them. With ``access-policy-window``
   the lookup's own accesses to pinned rows are persisting too (hitRatio 1: the pinned
   bytes never exceed the set-aside); with ``evict-last-prefetch`` they are normal
   accesses, and the separate pinning pass costs a launch gap plus the pinned bytes read
   (``pin_time_s``). With ``access-policy-window`` the pass is the kernels' index remap
   instead (the table is stored hottest row first): the indices read and written plus
   every distinct ``row_map`` sector the call touches, counted exactly. The passes (and a
   separate bounds check) take the analytical model's formulas (:mod:`perfmodel._kernel`:
   the bytes at the streaming bandwidth of a fully occupied GPU), as do the registers,
   the instructions and dependent chain of an iteration and the loads in flight.

Sampling: a call whose row-line requests exceed ``max_line_requests`` is simulated in
``SAMPLE_WINDOWS`` windows spread evenly over the call, on a scaled-down GPU: a fraction f
of the SMs, of both bandwidths and of the ``pytorch`` grid, so per-SM load and per-SM
bandwidth stay as on the full GPU; the L2 keeps its full size. Window i runs the f B / 4
bags that start at bag i B / 4 (fewer windows when the call has fewer than 4 rounds of
bags, so that a window still fills the scaled GPU), after an untimed replay of every row read before them
into the L2 (so it sees the cache state of that point of the call, not a cold one). The
windows' times add up to the call's time (each stands for a quarter of the call on the
full GPU: its SMs' mean finish time, plus once per call the largest lag of a window's last SM
behind that mean, since a call drains once); hit rates and traffic are the windows' together, scaled by 1 / f. Known bias: a
call of one or two rounds gets one window, the call's first f B bags, which starts as cold as
the call but is shorter, so its cold misses weigh more (hit rate low, time long).
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from perfmodel._capacity import check_device_fit
from perfmodel._config import KernelConfig, Table, Workload
from perfmodel._errors import InputError, check_int, choices_text
from perfmodel._gpu import GPUSpec, get_gpu
from perfmodel._indices import TableCall, table_call
from perfmodel._interrupt import interruptible
from perfmodel._kernel import (
    INDEX_BYTES,
    KERNEL_LAUNCH_GAP_S,
    PYTORCH_GRID_BLOCKS,
    PYTORCH_MAPPING,
    SCHEDULERS_PER_SM,
    TBE_BLOCKS_PER_SM_CAP,
    bounds_check_pass_bytes,
    evict_last_pass_bytes,
    kernel_facts,
    kernel_registers,
    launch_blocks_per_sm,
    lookup_io_bytes,
    pass_time_s,
    pinned_rows,
    remap_pass_bytes,
    streaming_bandwidth,
    work_mapping,
)
from perfmodel._model import Prediction
from perfmodel._occupancy import blocks_per_sm
from perfmodel._physics import model_params, translation_cycles
from perfmodel.sim._cache import POLICIES

__all__ = ["SimParams", "SimResult", "TableSim", "simulate", "simulate_detailed"]

IntArray = npt.NDArray[np.int64]

#: default sampling budget: row-line requests simulated per table call
DEFAULT_MAX_LINE_REQUESTS = 4_000_000
#: windows a sampled call is split into (each after an untimed L2 warm-up with all rows before it)
SAMPLE_WINDOWS = 4
#: most L1 and L2 lines the simulator holds (tags, stamps, sector readiness: ~90 bytes each):
#: 22 times an H200's (60 MiB of L2 and 132 x 256 KiB of L1 in 128-byte lines: 0.76 M lines)
MAX_SIM_LINES = 1 << 24


@dataclass(frozen=True, kw_only=True)
class SimParams:
    """Simulator settings that are not in the GPU spec (each with its basis)."""

    #: L2 associativity. NVIDIA does not publish it; 16 ways is the common microbenchmark
    #: estimate for Ampere/Hopper (and 40 MiB / 128 B / 16 gives whole sets per partition).
    l2_ways: int = 16
    #: L1 associativity (not published; an assumption, with a sectored LRU like the L2's)
    l1_ways: int = 4
    #: L1 bytes per SM: the whole unified L1/shared array, as a kernel with no shared memory
    #: may get it (CUDA C++ Programming Guide, carveout); None: that default
    l1_bytes: int | None = None
    #: L2 replacement: "lru", "srrip" or "random"
    policy: str = "lru"
    #: near/far partitions with duplication into the near one (FACTS.md section 3); False: one unified L2
    partitions: bool = True
    #: bytes an L2 miss fetches from DRAM, aligned (32, 64 or 128; cudaLimitMaxL2FetchGranularity
    #: is a hint of 0-128 B whose default NVIDIA does not document): 32 = only the missing sectors
    dram_fetch_bytes: int = 32
    #: sampling budget (row-line requests per simulated call); 0: never sample
    max_line_requests: int = DEFAULT_MAX_LINE_REQUESTS
    seed: int = 1

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise InputError(f"unknown policy {self.policy!r}; valid choices: {choices_text(list(POLICIES))}")
        for name in ("l2_ways", "l1_ways"):
            object.__setattr__(self, name, check_int(getattr(self, name), name, min_val=1, max_val=1024))
        if self.l1_bytes is not None:
            object.__setattr__(self, "l1_bytes", check_int(self.l1_bytes, "l1_bytes", min_val=128, max_val=1 << 30))
        if self.dram_fetch_bytes not in (32, 64, 128):
            raise InputError(f"`dram_fetch_bytes` must be 32, 64 or 128, but got {self.dram_fetch_bytes!r}")
        object.__setattr__(self, "max_line_requests", check_int(self.max_line_requests, "max_line_requests", min_val=0))
        object.__setattr__(self, "seed", check_int(self.seed, "seed", min_val=0, max_val=2**31 - 1))

    def l1_size(self, gpu: GPUSpec) -> int:
        """L1 bytes per SM on ``gpu``: ``l1_bytes``, or the whole unified L1/shared array."""
        return self.l1_bytes if self.l1_bytes is not None else gpu.l1_cache_and_shared_mem_per_sm_bytes


@dataclass(frozen=True, kw_only=True)
class TableSim:
    """What one simulated call of one table did (times in seconds, rates as fractions)."""

    index: int
    count: int
    call_time_s: float
    kernel_time_s: float
    pin_time_s: float
    check_time_s: float
    lookups: int
    row_sectors: int
    l1_hit_rate: float
    l2_near_hit_rate: float
    l2_far_hit_rate: float
    dram_sector_rate: float
    l2_hit_rate: float
    index_l1_hit_rate: float
    #: shares of row loads (one lookup's row, or its column pass) whose lines all hit in the
    #: L1, of which some hit was still being filled, and that hit only in part
    row_l1_whole_rate: float
    row_l1_fill_wait_rate: float
    row_l1_partial_rate: float
    #: share of row sectors that hit in the L2 while their line was still coming from DRAM
    l2_fill_wait_rate: float
    #: mean latency (cycles) of row loads served by the L1 alone, by the L2 (no DRAM), by DRAM
    row_latency_l1_cycles: float
    row_latency_l2_cycles: float
    row_latency_dram_cycles: float
    dram_bytes: float
    achieved_dram_bytes_per_s: float
    achieved_l2_bytes_per_s: float
    dram_utilization: float
    l2_utilization: float
    issue_utilization: float
    latency_cycles_p50: float
    latency_cycles_p90: float
    latency_cycles_p99: float
    latency_cycles_mean: float
    sm_finish_imbalance: float
    sm_lookup_imbalance: float
    pinned_rows: int
    pinned_bytes: float
    blocks_per_sm: int
    grid_blocks: int
    waves: float
    sampled_fraction: float
    #: warps resident at once (first wave), and the mean time of one warp iteration
    warps_in_flight: int
    iteration_s: float
    events: int
    wall_s: float
    bound: str
    latency_histogram: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, kw_only=True)
class SimResult:
    """:func:`simulate_detailed`'s answer: the Prediction and the per-table simulations."""

    prediction: Prediction
    tables: tuple[TableSim, ...]
    params: SimParams

    def details(self) -> dict[str, Any]:
        out = []
        for t in self.tables:
            d = t.to_dict()
            d.pop("latency_histogram")
            out.append(d)
        return {"params": asdict(self.params), "tables": out}


def _row_lines(rows: IntArray, row_bytes: int) -> tuple[IntArray, IntArray]:
    """Lines and sector masks of whole rows (for the pinned set)."""
    lines: list[int] = []
    masks: list[int] = []
    for r in rows.tolist():
        s0 = r * row_bytes // 32
        s1 = (r * row_bytes + row_bytes - 1) // 32
        for line in range(s0 // 4, s1 // 4 + 1):
            a = max(s0, line * 4) - line * 4
            b = min(s1, line * 4 + 3) - line * 4
            lines.append(line)
            masks.append(((1 << (b + 1)) - 1) ^ ((1 << a) - 1))
    return np.array(lines, dtype=np.int64), np.array(masks, dtype=np.int64)


def _percentile(hist: IntArray, q: float, width: float) -> float:
    total = int(hist.sum())
    if total == 0:
        return 0.0
    c = np.cumsum(hist)
    i = int(np.searchsorted(c, q * total))
    return (i + 0.5) * width


def _fused_call(workload: Workload, kernel: KernelConfig, gpu: GPUSpec) -> tuple[TableCall, IntArray, int]:
    """The index stream of a ``tbe`` launch over every table of ``workload`` (FBGEMM's table-batched
    kernel: one grid over all tables' bags, table after table): each table's rows offset past the
    previous tables', a table with ``count = n`` as n copies. Returns (call, pinned rows, rows)."""
    idx: list[IntArray] = []
    lens: list[IntArray] = []
    pins: list[IntArray] = []
    base = 0
    for t in workload.tables:
        call = table_call(t, workload.batch_size)
        pin = pinned_rows(t, kernel, gpu)
        for _ in range(t.count):
            idx.append(call.indices + base)
            lens.append(call.lengths)
            pins.append(pin + base)
            base += t.rows
    lengths = np.concatenate(lens).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    fused = TableCall(indices=np.concatenate(idx).astype(np.int64), offsets=offsets)
    return fused, np.concatenate(pins).astype(np.int64), base


def _simulate_table(
    index: int, table: Table, batch: int, kernel: KernelConfig, gpu: GPUSpec, params: SimParams,
    fused: tuple[TableCall, IntArray, int] | None = None,
) -> TableSim:
    """One call of ``table`` (or, with ``fused``, one tbe launch over the stream :func:`_fused_call` built)."""
    from perfmodel.sim import _desjit

    wall0 = time.perf_counter()
    clk = gpu.sm_clock_hz
    facts = kernel_facts(kernel, gpu.arch, table.dtype, table.dim)
    blocks = launch_blocks_per_sm(kernel, gpu, table.dtype, table.dim)
    wpb = kernel.block_size // gpu.warp_size
    if fused is not None:
        call, pinned, n_rows = fused
        batch = int(call.lengths.size)
    else:
        call, pinned, n_rows = table_call(table, batch), pinned_rows(table, kernel, gpu), table.rows
    lengths = call.lengths
    rb = table.row_bytes
    # ---- work mapping (perfmodel._kernel.work_mapping)
    wm = work_mapping(kernel.variant, table.dim, table.dtype, gpu.warp_size)
    unit_bytes, units_per_bag, pass_bytes, passes = wm.unit_bytes, wm.units_per_bag, wm.pass_bytes, wm.passes_per_unit
    lines_per_iter = math.ceil(min(pass_bytes, rb) / gpu.l2_line_bytes)
    total_requests = int(lengths.sum()) * units_per_bag * passes * lines_per_iter
    # ---- sampling: windows on a scaled-down GPU (see the module docstring)
    f = 1.0
    if params.max_line_requests and total_requests > params.max_line_requests:
        f = params.max_line_requests / total_requests
    sm_count = max(1, round(gpu.sm_count * f)) if f < 1 else gpu.sm_count
    f_eff = sm_count / gpu.sm_count
    # a window must still fill the scaled GPU: at most as many windows as the call has rounds
    # (pytorch mapping: units per warp of the fixed grid; warp, tbe: bags per resident warp)
    pytorch_map = kernel.variant in PYTORCH_MAPPING
    if pytorch_map:
        rounds = batch * units_per_bag / (PYTORCH_GRID_BLOCKS * wpb)
    else:
        rounds = batch / (blocks * gpu.sm_count * wpb)
    n_windows = max(1, min(SAMPLE_WINDOWS, math.floor(rounds))) if f < 1 else 1
    win_bags = max(1, round(batch * f_eff / n_windows)) if f < 1 else batch
    if pytorch_map:
        grid = max(1, round(PYTORCH_GRID_BLOCKS * f_eff)) if f < 1 else PYTORCH_GRID_BLOCKS
    elif kernel.variant == "tbe":  # FBGEMM: a grid over the bags, at most 64 blocks per SM
        grid = max(1, min(math.ceil(win_bags / wpb), TBE_BLOCKS_PER_SM_CAP * sm_count))
    else:
        grid = max(1, min(math.ceil(win_bags / wpb), sm_count * (gpu.max_threads_per_sm // kernel.block_size)))
    parts = gpu.l2_partitions if params.partitions else 1
    l2_sets = max(1, gpu.l2_size_bytes // gpu.l2_line_bytes // params.l2_ways // parts)
    l1_sets = max(1, params.l1_size(gpu) // gpu.l2_line_bytes // params.l1_ways)
    quota = math.floor(params.l2_ways * gpu.persisting_l2_max_bytes / gpu.l2_size_bytes)
    # ---- per-lookup costs: the compiled kernel's facts (its profile, perfmodel._kernel), as the
    # analytical model's, so that the two fidelities differ only in the memory system and the
    # scheduling they model: the SM issues the lookup's instructions (4 schedulers), the warp
    # needs their stall cycles before its next lookup, an index reaches its row's address after
    # the chain's dependent instructions, a warp keeps the profile's row loads of a round in flight
    instr = facts.instructions_per_lookup
    dep_cycles = facts.address_cycles
    window = max(1, round(facts.loads_per_round))
    hint_distance = facts.l2_hint_distance
    # ---- pinning
    # per access of the call, whether it reads a pinned row (O(lookups), never O(rows))
    persist_access = np.isin(call.indices, pinned).astype(np.uint8)
    apw = 1 if kernel.pin_method == "access-policy-window" else 0
    p_lines, p_masks = _row_lines(pinned, rb) if pinned.size else (np.zeros(0, np.int64), np.zeros(0, np.int64))
    # ---- memory timing, cycles
    sector = gpu.l2_sector_bytes
    fp = np.zeros(_desjit.N_FP, dtype=np.float64)
    # address translation over the call's footprint (perfmodel._physics.translation_cycles, from
    # the pointer-chase curves) on every access beyond the L1
    tr = translation_cycles(gpu.arch, float(n_rows) * rb)
    fp[_desjit.FP_L2_NEAR] = gpu.l2_near_latency_cycles + tr
    fp[_desjit.FP_L2_FAR] = gpu.l2_far_latency_cycles + tr
    fp[_desjit.FP_DRAM] = gpu.dram_latency_cycles + tr
    fp[_desjit.FP_L2_SERVICE] = sector / (gpu.l2_bandwidth_bytes_per_s * f_eff / clk)
    fp[_desjit.FP_DRAM_SERVICE] = sector / (gpu.dram_bandwidth_bytes_per_s * f_eff / clk)
    fp[_desjit.FP_L1] = gpu.l1_latency_cycles
    fp[_desjit.FP_FETCH_SECTORS] = params.dram_fetch_bytes // sector
    turnaround = model_params().block_turnaround_cycles
    indices = np.ascontiguousarray(call.indices, dtype=np.int64)
    end = 0.0
    tail = 0.0
    cnt = np.zeros(_desjit.N_COUNTERS, dtype=np.int64)
    hist = np.zeros(_desjit.HIST_BINS, dtype=np.int64)
    sm_finish = np.zeros(sm_count)
    sm_lookups = np.zeros(sm_count)
    with interruptible() as check:  # Ctrl-C acts between chunks of compiled events
        for wi in range(n_windows):
            first_bag = (wi * batch) // n_windows
            stop = min(first_bag + win_bags, batch)
            starts = np.ascontiguousarray(call.offsets[first_bag:stop], dtype=np.int64)
            lens = np.ascontiguousarray(lengths[first_bag:stop], dtype=np.int64)
            warm = np.ascontiguousarray(indices[: int(call.offsets[first_bag])] if first_bag else indices[:0])
            e, c, h, smf, sml = _desjit.simulate_call(
                indices, starts, lens,
                rb, unit_bytes, units_per_bag, pass_bytes, passes,
                grid, wpb, blocks, sm_count,
                float(facts.issue_latency_cycles), float(instr / SCHEDULERS_PER_SM), float(dep_cycles), int(window),
                int(hint_distance), 1 if facts.index_on_row_chain else 0, 1 if facts.validation_loop else 0,
                float(turnaround),
                fp, int(l1_sets), int(params.l1_ways), int(l2_sets), int(params.l2_ways), int(parts),
                1 if parts > 1 else 0, int(quota), POLICIES[params.policy], persist_access, apw, int(params.seed),
                p_lines, p_masks, warm, check=check,
            )
            # a window's bulk is its SMs' mean finish time; its tail (the last SM's lag) happens once per call
            bulk = float(smf.mean()) if n_windows > 1 else float(e)
            end += bulk
            tail = max(tail, float(e) - bulk)
            cnt += c
            hist += h
            sm_finish += smf
            sm_lookups += sml
    end += tail
    C = _desjit
    kernel_cycles = float(end)
    kernel_s = kernel_cycles / clk
    w_sec = max(int(cnt[C.C_W_SECTORS]), 1)
    l1h = cnt[C.C_W_L1] / w_sec
    row_loads = max(int(cnt[C.C_ROW_LOADS]), 1)
    near = cnt[C.C_W_NEAR] / w_sec
    far = cnt[C.C_W_FAR] / w_sec
    dram_rate = cnt[C.C_W_DRAM] / w_sec
    dram_sectors = int(cnt[C.C_W_DRAM] + cnt[C.C_I_DRAM] + cnt[C.C_PF_DRAM])
    l2_sectors = int(cnt[C.C_W_SECTORS] - cnt[C.C_W_L1] + cnt[C.C_I_SECTORS] - cnt[C.C_I_L1] + cnt[C.C_PF_SECTORS])
    scale = 1.0 / f_eff  # sampled counts stand for the full call
    call_dram_bytes = dram_sectors * sector * scale
    dram_busy = dram_sectors * fp[C.FP_DRAM_SERVICE]
    l2_busy = l2_sectors * fp[C.FP_L2_SERVICE]
    issue_busy = float(cnt[C.C_LOOKUPS]) * instr / SCHEDULERS_PER_SM / sm_count
    dram_util = dram_busy / max(kernel_cycles, 1e-9)
    l2_util = l2_busy / max(kernel_cycles, 1e-9)
    issue_util = issue_busy / max(kernel_cycles, 1e-9)
    bound = "latency"
    best = max(dram_util, l2_util, issue_util)
    if best >= 0.75:
        bound = "dram-bandwidth" if best == dram_util else ("l2-bandwidth" if best == l2_util else "issue")
    # ---- the passes around the lookup kernel: the model's formulas (perfmodel._kernel), each a
    # streaming pass at the DRAM bandwidth of a fully occupied GPU
    pinned_bytes = float(evict_last_pass_bytes(float(pinned.size), rb, sector))
    stream = streaming_bandwidth(gpu)
    lookups = float(lengths.sum())
    if not pinned.size:
        pin_bytes = 0.0
    elif apw:
        # the frequency-order index remap: every distinct row_map sector the call's indices
        # touch, counted exactly
        row_map_sectors = np.unique(call.indices // (sector // INDEX_BYTES)).size
        pin_bytes = float(remap_pass_bytes(lookups, row_map_sectors * sector))
    else:
        pin_bytes = pinned_bytes
    pin_s = float(pass_time_s(pin_bytes, stream)) if pin_bytes else 0.0
    check_bytes = float(bounds_check_pass_bytes(lookups)) if kernel.bounds_check == "separate" else 0.0
    check_s = float(pass_time_s(check_bytes, stream)) if check_bytes else 0.0
    dram_total = call_dram_bytes + lookup_io_bytes(kernel.variant, batch, rb, lookups) + pin_bytes + check_bytes
    call_s = kernel_s + KERNEL_LAUNCH_GAP_S + check_s + pin_s
    mean_finish = float(sm_finish.mean()) if sm_finish.size else 0.0
    lat_hist = np.asarray(hist, dtype=np.int64)
    n_lat = max(int(lat_hist.sum()), 1)
    centers = (np.arange(lat_hist.size) + 0.5) * C.HIST_WIDTH
    return TableSim(
        index=index, count=table.count, call_time_s=call_s, kernel_time_s=kernel_s, pin_time_s=pin_s,
        check_time_s=check_s, lookups=int(lengths.sum()), row_sectors=round(float(cnt[C.C_W_SECTORS]) * scale),
        l1_hit_rate=l1h, l2_near_hit_rate=near, l2_far_hit_rate=far, dram_sector_rate=dram_rate,
        l2_hit_rate=1.0 - dram_rate, index_l1_hit_rate=cnt[C.C_I_L1] / max(int(cnt[C.C_I_SECTORS]), 1),
        row_l1_whole_rate=cnt[C.C_ROW_L1_WHOLE] / row_loads, row_l1_fill_wait_rate=cnt[C.C_ROW_L1_FILL_WAIT] / row_loads,
        row_l1_partial_rate=cnt[C.C_ROW_L1_PARTIAL] / row_loads, l2_fill_wait_rate=cnt[C.C_W_L2_FILL_WAIT] / w_sec,
        row_latency_l1_cycles=cnt[C.C_LAT_L1] / max(int(cnt[C.C_ROW_L1_WHOLE]), 1),
        row_latency_l2_cycles=cnt[C.C_LAT_L2] / max(int(cnt[C.C_ROW_L2]), 1),
        row_latency_dram_cycles=cnt[C.C_LAT_DRAM] / max(int(cnt[C.C_ROW_DRAM]), 1),
        dram_bytes=dram_total, achieved_dram_bytes_per_s=dram_sectors * sector / max(kernel_s, 1e-30),
        achieved_l2_bytes_per_s=l2_sectors * sector / max(kernel_s, 1e-30),
        dram_utilization=dram_util, l2_utilization=l2_util, issue_utilization=issue_util,
        latency_cycles_p50=_percentile(lat_hist, 0.5, C.HIST_WIDTH),
        latency_cycles_p90=_percentile(lat_hist, 0.9, C.HIST_WIDTH),
        latency_cycles_p99=_percentile(lat_hist, 0.99, C.HIST_WIDTH),
        latency_cycles_mean=float((lat_hist * centers).sum() / n_lat),
        sm_finish_imbalance=float(sm_finish.max() / mean_finish) if mean_finish > 0 else 1.0,
        sm_lookup_imbalance=float(sm_lookups.max() / max(sm_lookups.mean(), 1e-30)),
        pinned_rows=int(pinned.size), pinned_bytes=pinned_bytes, blocks_per_sm=blocks, grid_blocks=grid,
        waves=grid / max(blocks * sm_count, 1), sampled_fraction=f_eff if f < 1 else 1.0,
        warps_in_flight=round(min(grid, blocks * sm_count) * wpb / f_eff),
        iteration_s=kernel_s * min(grid, blocks * sm_count) * wpb / max(float(cnt[C.C_LOOKUPS]), 1.0),
        events=int(cnt[C.C_EVENTS]), wall_s=time.perf_counter() - wall0, bound=bound,
        latency_histogram=lat_hist.tolist(),
    )


def simulate_detailed(
    workload: Workload, kernel: KernelConfig, gpu: GPUSpec | str, *, params: SimParams | None = None,
    policy: str | None = None, max_line_requests: int | None = None,
) -> SimResult:
    """:func:`simulate`, with every table's simulation figures (see the module docstring)."""
    if not isinstance(workload, Workload):
        raise InputError(f"workload must be a perfmodel.Workload, but got {type(workload).__name__}")
    if not isinstance(kernel, KernelConfig):
        raise InputError(f"kernel must be a perfmodel.KernelConfig, but got {type(kernel).__name__}")
    g = get_gpu(gpu)
    check_device_fit(workload, g)
    p = params or SimParams()
    l1_bytes = p.l1_size(g)
    lines = g.l2_size_bytes // g.l2_line_bytes + g.sm_count * (l1_bytes // g.l2_line_bytes)
    if lines > MAX_SIM_LINES:
        raise InputError(f"the simulator holds every L1 and L2 line in memory, at most {MAX_SIM_LINES:,} lines, but "
                         f"{g.id!r} has {lines:,} ({g.l2_size_bytes:,} B of L2 and {g.sm_count} x {l1_bytes:,} B of L1 "
                         f"in {g.l2_line_bytes}-byte lines)")
    changes: dict[str, Any] = {}
    if policy is not None:
        changes["policy"] = policy
    if max_line_requests is not None:
        changes["max_line_requests"] = max_line_requests
    if changes:
        p = SimParams(**{**asdict(p), **changes})
    sims: list[TableSim] = []
    done: dict[Table, TableSim] = {}
    tables = workload.tables
    if kernel.variant == "tbe" and len({(t.dim, t.dtype) for t in tables}) == 1:
        # FBGEMM's table-batched forward: one launch whose grid covers every table's bags, so one
        # simulated call over the stream of all tables (rows of each table after the previous')
        call, pinned, n_rows = _fused_call(workload, kernel, g)
        t0 = tables[0]
        stacked = dataclasses.replace(t0, rows=n_rows, count=1, pooling=None,
                                      pooling_mean=float(call.lengths.mean()), pooling_dist="uniform")
        fused_sim = _simulate_table(0, t0, workload.batch_size, kernel, g, p, fused=(call, pinned, n_rows))
        sims.append(TableSim(**{**asdict(fused_sim), "count": 1}))
        tables = (stacked,)
    else:
        for i, t in enumerate(tables):
            key = dataclasses.replace(t, count=1)
            got = done.get(key)
            if got is None:
                got = _simulate_table(i, t, workload.batch_size, kernel, g, p)
                done[key] = got
            sims.append(TableSim(**{**asdict(got), "index": i, "count": t.count}))
    total = sum(s.count * s.call_time_s for s in sims)
    pin = sum(s.count * s.pin_time_s for s in sims)
    sectors = sum(s.count * s.row_sectors for s in sims)
    hit = sum(s.count * s.row_sectors * s.l2_hit_rate for s in sims) / max(sectors, 1)
    dram = sum(s.count * s.dram_bytes for s in sims)
    bound = max(((s.count * s.call_time_s, s.bound) for s in sims), default=(0.0, "latency"))[1]
    regs, spill, src = kernel_registers(kernel, g, workload.tables[0].dtype)
    blocks = int(blocks_per_sm(g, kernel.block_size, regs, 0)["active"])
    warps = blocks * (kernel.block_size // g.warp_size)
    breakdown = {
        "kernel": kernel.to_dict(),
        "gpu": g.id,
        "registers": regs,
        "registers_source": src,
        "spill_bytes": float(spill),
        "blocks_per_sm": blocks,
        "warps_per_sm": warps,
        "tables": [_table_breakdown(tables[s.index], s) for s in sims],
        "simulator": {"policy": p.policy, "partitions": p.partitions, "l2_ways": p.l2_ways, "l1_ways": p.l1_ways},
    }
    pred = Prediction(
        time_s=total, pin_time_s=pin, occupancy=warps / g.max_warps_per_sm, l2_hit_rate=hit, dram_bytes=dram,
        bound=bound, breakdown=breakdown, fidelity="simulator",
    )
    return SimResult(prediction=pred, tables=tuple(sims), params=p)


def _table_breakdown(t: Table, s: TableSim) -> dict[str, Any]:
    """The per-table entry in the breakdown, with the keys Prediction.explain reads."""
    return {
        "index": s.index, "count": s.count, "rows": t.rows, "dim": t.dim, "dtype": t.dtype, "lookups": s.lookups,
        "l2_hit_rate": s.l2_hit_rate, "pinned_rows": s.pinned_rows, "pinned_bytes": s.pinned_bytes,
        "warps_in_flight": s.warps_in_flight, "rounds": s.waves, "iteration_s": s.iteration_s, "bound": s.bound,
        "achieved_dram_bytes_per_s": s.achieved_dram_bytes_per_s, "call_time_s": s.call_time_s,
        "pin_time_s": s.pin_time_s, "l1_hit_rate": s.l1_hit_rate, "l2_near_hit_rate": s.l2_near_hit_rate,
        "l2_far_hit_rate": s.l2_far_hit_rate, "latency_cycles_p50": s.latency_cycles_p50,
        "latency_cycles_p99": s.latency_cycles_p99, "sm_finish_imbalance": s.sm_finish_imbalance,
        "sampled_fraction": s.sampled_fraction,
    }


def simulate(workload: Workload, kernel: KernelConfig, gpu: GPUSpec | str) -> Prediction:
    """Simulated time of one call of the embedding stage: the same inputs and result type as
    :func:`perfmodel.predict` (``fidelity = "simulator"``). Deterministic (seeded)."""
    return simulate_detailed(workload, kernel, gpu).prediction
