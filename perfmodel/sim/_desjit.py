"""Numba kernel of the discrete-event timing simulation (imported lazily: imports numba).

See :mod:`perfmodel.sim._timing` for the model this implements; times are in SM cycles.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numba
import numpy as np
import numpy.typing as npt

from perfmodel.sim._l2jit import fill, line_hash, lookup, set_of

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

#: line ids of the index array start here (weights start at line 0)
INDEX_LINE_BASE = 1 << 40
#: where the call's offsets sit, in index positions past the indices (8 bytes each, like them):
#: their lines follow the index lines (a call holds far fewer than 2^36 indices)
OFFSETS_POS = 1 << 36

# counters (the layout _timing.py reads)
C_W_SECTORS, C_W_L1, C_W_NEAR, C_W_FAR, C_W_DRAM = 0, 1, 2, 3, 4
C_I_SECTORS, C_I_L1, C_I_L2, C_I_DRAM = 5, 6, 7, 8
C_LOOKUPS, C_EVENTS, C_PF_SECTORS, C_PF_DRAM = 9, 10, 11, 12
#: row loads (each lookup's row): all its lines hit in L1 / some did / all hit but one was still being filled
C_ROW_LOADS, C_ROW_L1_WHOLE, C_ROW_L1_PARTIAL, C_ROW_L1_FILL_WAIT = 13, 14, 15, 16
#: row sectors that hit in the L2 (near or far) while their line was still coming from DRAM
C_W_L2_FILL_WAIT = 17
#: row loads served from L2 only (some line missed the L1, none went to DRAM) and from DRAM,
#: and the summed latency (cycles, from the issue of the loads to the last line's arrival) of
#: each kind, L1-only rows included
C_ROW_L2, C_ROW_DRAM, C_LAT_L1, C_LAT_L2, C_LAT_DRAM = 18, 19, 20, 21, 22
N_COUNTERS = 23
#: slots of ``fp``, the memory timing simulate_call takes (cycles, but the last): unloaded
#: latencies of a near-partition L2 hit, a far-partition L2 hit, DRAM and an L1 hit; service
#: time of one sector at the L2 and at the DRAM bandwidth; sectors per DRAM fetch (1, 2 or 4)
FP_L2_NEAR, FP_L2_FAR, FP_DRAM, FP_L2_SERVICE, FP_DRAM_SERVICE, FP_L1, FP_FETCH_SECTORS = 0, 1, 2, 3, 4, 5, 6
N_FP = 7
HIST_BINS = 256
HIST_WIDTH = 16.0  # cycles per latency-histogram bin


@numba.njit(cache=True, inline="always")  # type: ignore[misc]
def _popc(m: int) -> int:  # pragma: no cover - compiled
    n = 0
    while m:
        m &= m - 1
        n += 1
    return n


@numba.njit(cache=True, inline="always")  # type: ignore[misc]
def _heap_push(ht: FloatArray, hp: IntArray, size: int, t: float, slot: int, j: int) -> int:  # pragma: no cover
    """Push an event: time ``t``, payload ``slot << 32 | (j + 1)`` (ties: smaller payload first,
    so lower warp slots go first, a deterministic round-robin)."""
    i = size
    key = (slot << 32) | (j + 1)
    while i > 0:
        par = (i - 1) >> 1
        if ht[par] > t or (ht[par] == t and hp[par] > key):
            ht[i] = ht[par]
            hp[i] = hp[par]
            i = par
        else:
            break
    ht[i] = t
    hp[i] = key
    return size + 1


@numba.njit(cache=True, inline="always")  # type: ignore[misc]
def _heap_pop(ht: FloatArray, hp: IntArray, size: int) -> int:  # pragma: no cover - compiled
    """Remove the first event (read it from ``ht[0]``, ``hp[0]`` before)."""
    size -= 1
    t = ht[size]
    key = hp[size]
    i = 0
    while True:
        a = 2 * i + 1
        if a >= size:
            break
        c = a
        b = a + 1
        if b < size and (ht[b] < ht[a] or (ht[b] == ht[a] and hp[b] < hp[a])):
            c = b
        if ht[c] < t or (ht[c] == t and hp[c] < key):
            ht[i] = ht[c]
            hp[i] = hp[c]
            i = c
        else:
            break
    ht[i] = t
    hp[i] = key
    return size


@numba.njit(cache=True)  # type: ignore[misc]
def _l2_path(sm: int, line: int, missing: int, t: float, persist: int, prefetch_only: int,
             sm_side: IntArray, n_parts: int, duplicate: int,
             l2_tags: IntArray, l2_stamp: IntArray, l2_valid: npt.NDArray[np.uint8], l2_pers: npt.NDArray[np.uint8],
             l2_ready: FloatArray, ctl: IntArray, l2_sets: int, l2_ways: int, quota: int, policy: int,
             fp: FloatArray, servers: FloatArray, cnt: IntArray, is_weight: int) -> float:  # pragma: no cover
    """Sectors ``missing`` of ``line`` requested from the L2 by SM ``sm`` at ``t``; returns their arrival time.

    ``fp``: the memory timing, slots ``FP_*`` (see there); ``servers`` =
    [l2_free, dram_free] (FIFO servers of the L2 and DRAM bandwidth).
    """
    n = _popc(missing)
    start = max(t, servers[0])
    servers[0] = start + n * fp[FP_L2_SERVICE]
    tq = start  # after the L2 bandwidth queue
    h = line_hash(line)
    home = (h >> 8) % n_parts
    side = sm_side[sm] if duplicate else home
    s = set_of(line, l2_sets)
    gs = side * l2_sets + s
    # only the home copy of a line can be persisting; near copies of far-homed lines are
    # normal lines (otherwise a pinned set would need twice the set-aside: the seed paper's
    # 30.7 MB pinned on A100's 30 MiB set-aside could not have helped)
    way, hit, r = lookup(l2_tags, l2_stamp, l2_valid, l2_pers, l2_ready, ctl, gs, l2_ways, line, missing,
                         persist if side == home else 0, quota, policy, 1, tq)
    done = tq
    if hit:
        done = max(tq + fp[FP_L2_NEAR], r)
        if is_weight:
            cnt[C_W_NEAR] += _popc(hit)
            if r > tq + fp[FP_L2_NEAR]:
                cnt[C_W_L2_FILL_WAIT] += _popc(hit)
        elif prefetch_only == 0:
            cnt[C_I_L2] += _popc(hit)
    rest = missing & ~hit
    if rest == 0:
        return float(done)
    far_way = -1
    gh = home * l2_sets + s
    if side != home:
        far_way, hit2, r2 = lookup(l2_tags, l2_stamp, l2_valid, l2_pers, l2_ready, ctl, gh, l2_ways, line, rest,
                                   persist, quota, policy, 1, tq)
        if hit2:
            t2 = max(tq + fp[FP_L2_FAR], r2)
            fill(l2_valid, l2_ready, gs, l2_ways, way, hit2, t2)  # duplicated into the near partition
            done = max(done, t2)
            if is_weight:
                cnt[C_W_FAR] += _popc(hit2)
                if r2 > tq + fp[FP_L2_FAR]:
                    cnt[C_W_L2_FILL_WAIT] += _popc(hit2)
            elif prefetch_only == 0:
                cnt[C_I_L2] += _popc(hit2)
        rest = rest & ~hit2
        if rest == 0:
            return float(done)
    # DRAM fetch granularity (cudaLimitMaxL2FetchGranularity): whole aligned groups of
    # fp[FP_FETCH_SECTORS] sectors come in, except sectors the line already holds
    grp = int(fp[FP_FETCH_SECTORS])
    fetch = rest
    if grp > 1:
        fetch = 0
        for q in range(0, 4, grp):
            gm = ((1 << grp) - 1) << q
            if rest & gm:
                fetch |= gm
        if way >= 0:
            fetch &= ~int(l2_valid[gs * l2_ways + way]) | rest
    nd = _popc(fetch)
    ds = max(tq, servers[1])
    servers[1] = ds + nd * fp[FP_DRAM_SERVICE]
    td = ds + fp[FP_DRAM]
    fill(l2_valid, l2_ready, gs, l2_ways, way, fetch, td)
    if side != home:
        fill(l2_valid, l2_ready, gh, l2_ways, far_way, fetch, td)
    if is_weight:
        cnt[C_W_DRAM] += nd
    elif prefetch_only:
        cnt[C_PF_DRAM] += nd
    else:
        cnt[C_I_DRAM] += nd
    return float(max(done, td))


@numba.njit(cache=True)  # type: ignore[misc]
def _index_fetch(
    sm: int, pos: int, t0: float, l1_tags: IntArray, l1_stamp: IntArray, l1_valid: npt.NDArray[np.uint8],
    l1_pers: npt.NDArray[np.uint8], l1_ready: FloatArray, l1ctl: IntArray, l1_sets: int, l1_ways: int,
    sm_side: IntArray, n_parts: int, duplicate: int, l2_tags: IntArray, l2_stamp: IntArray,
    l2_valid: npt.NDArray[np.uint8], l2_pers: npt.NDArray[np.uint8], l2_ready: FloatArray, ctl: IntArray,
    l2_sets: int, l2_ways: int, quota: int, policy: int, fp: FloatArray, servers: FloatArray, cnt: IntArray,
) -> float:  # pragma: no cover - compiled
    """Load the 8-byte index at position ``pos`` from SM ``sm`` at time ``t0``; returns its arrival."""
    ib = pos * 8
    iline = INDEX_LINE_BASE + ib // 128
    imask = 1 << ((ib % 128) // 32)
    cnt[C_I_SECTORS] += 1
    g1 = sm * l1_sets + set_of(iline, l1_sets)
    way, hit, r = lookup(l1_tags, l1_stamp, l1_valid, l1_pers, l1_ready, l1ctl, g1, l1_ways, iline, imask,
                         0, 0, 0, 1, t0)
    if hit:
        cnt[C_I_L1] += 1
        return float(max(t0 + fp[FP_L1], r))
    ti = _l2_path(sm, iline, imask, t0, 0, 0, sm_side, n_parts, duplicate, l2_tags, l2_stamp, l2_valid,
                  l2_pers, l2_ready, ctl, l2_sets, l2_ways, quota, policy, fp, servers, cnt, 0)
    fill(l1_valid, l1_ready, g1, l1_ways, way, imask, ti)
    return float(ti)


#: events (or warm-up rows) one compiled call handles before it returns to Python, where a
#: pending Ctrl-C is acted on (perfmodel._interrupt): at most about 0.2 s of simulation
CHUNK_EVENTS = 1 << 16


def simulate_call(
    # work: the call's lookups
    indices: IntArray, bag_start: IntArray, bag_len: IntArray,
    # mapping: units (pytorch: (bag, 32-column chunk); warp: bag) and column passes
    row_bytes: int, unit_bytes: int, units_per_bag: int, pass_bytes: int, passes_per_unit: int,
    n_blocks: int, warps_per_block: int, blocks_per_sm: int, sm_count: int,
    # per-lookup costs (cycles) and the in-flight window; whether the row's address waits for the
    # index load (0: the index arrives by shuffle, loaded earlier), whether a validation loop
    # reads the bag's index lines one after another before the lookups
    issue_cycles_warp: float, issue_cycles_sm: float, dep_cycles: float, window: int, l2_hint_distance: int,
    idx_chain: int, validation: int,
    block_start_cycles: float,
    # memory system; persist_access[i]: index i of the call reads a pinned row (warm_rows are
    # the call's first indices, so the same flags serve them)
    fp: FloatArray, l1_sets: int, l1_ways: int, l2_sets: int, l2_ways: int, n_parts: int, duplicate: int,
    quota: int, policy: int, persist_access: npt.NDArray[np.uint8], apw: int, seed: int,
    pinned_lines: IntArray, pinned_masks: IntArray, warm_rows: IntArray,
    check: Callable[[], None] = lambda: None, chunk: int = CHUNK_EVENTS,
) -> tuple[float, IntArray, IntArray, FloatArray, FloatArray]:
    """Run one table call. Returns (end time, counters, latency histogram, per-SM finish times, per-SM lookups).

    The compiled parts run ``chunk`` events (or warm-up rows) at a time; ``check()`` is
    called between chunks (perfmodel._interrupt: it raises a deferred Ctrl-C from Python).
    """
    n_l2 = n_parts * l2_sets * l2_ways
    n_l1 = sm_count * l1_sets * l1_ways
    ctl = np.zeros(2, dtype=np.int64)
    ctl[1] = seed | 1
    l1ctl = np.zeros(2, dtype=np.int64)
    l1ctl[1] = (seed * 7 + 3) | 1
    mem = (
        np.full(n_l2, -1, dtype=np.int64), np.zeros(n_l2, dtype=np.int64), np.zeros(n_l2, dtype=np.uint8),
        np.zeros(n_l2, dtype=np.uint8), np.zeros(n_l2 * 8, dtype=np.float64), ctl,
        np.full(n_l1, -1, dtype=np.int64), np.zeros(n_l1, dtype=np.int64), np.zeros(n_l1, dtype=np.uint8),
        np.zeros(n_l1, dtype=np.uint8), np.zeros(n_l1 * 8, dtype=np.float64), l1ctl,
        np.zeros(2, dtype=np.float64),  # servers: [l2_free, dram_free]
        np.zeros(N_COUNTERS, dtype=np.int64), np.zeros(HIST_BINS, dtype=np.int64),
        (np.arange(sm_count, dtype=np.int64) * n_parts) // sm_count,  # sm_side
    )
    geo = (l1_sets, l1_ways, l2_sets, l2_ways, n_parts, duplicate, quota, policy)
    _pin_lines(mem, geo, pinned_lines, pinned_masks)
    for lo in range(0, warm_rows.shape[0], chunk):
        _warm(mem, geo, fp, warm_rows, lo, min(lo + chunk, warm_rows.shape[0]), row_bytes, sm_count, apw, persist_access)
        check()
    max_warps = blocks_per_sm * warps_per_block
    n_slots = sm_count * max_warps
    heap_cap = n_slots * (window + 2) + 16
    warps = (
        np.full(n_slots, -1, dtype=np.int64),  # w_glob: global warp id, -1 = free
        np.zeros(n_slots, dtype=np.int64),  # w_unit: current unit
        np.zeros(n_slots, dtype=np.int64),  # w_pass
        np.zeros(n_slots, dtype=np.int64),  # w_next: next lookup to issue within the segment
        np.zeros(n_slots, dtype=np.int64),  # w_ret: oldest lookup not yet retired
        np.zeros(n_slots, dtype=np.int64),  # w_wait: 1 = waiting for the oldest lookup's issue
        np.full(n_slots, -1, dtype=np.int64),  # w_pidx: lookup whose index was requested ahead
        np.zeros(n_slots, dtype=np.float64),  # w_pidx_t: and when it arrives
        np.full(n_slots * window, -1.0, dtype=np.float64),  # w_comp
        np.zeros(n_slots * window, dtype=np.float64),  # w_issue_t
        np.zeros(sm_count * blocks_per_sm, dtype=np.int64),  # blk_left
        np.zeros(sm_count, dtype=np.float64),  # sm_issue
        np.zeros(sm_count, dtype=np.float64),  # sm_finish
        np.zeros(sm_count, dtype=np.float64),  # sm_lookups
        np.empty(heap_cap, dtype=np.float64),  # ht: event times
        np.empty(heap_cap, dtype=np.int64),  # hp: event payloads
        np.zeros(n_slots, dtype=np.int64),  # w_valid: index lines the unit's validation loop has read
        np.zeros(n_slots, dtype=np.int64),  # w_off: 1 = the unit's offsets have arrived
    )
    run = np.zeros(2, dtype=np.int64)  # [heap size, next block]
    end = np.zeros(1, dtype=np.float64)  # end time
    work = (indices, bag_start, bag_len)
    shape = (row_bytes, unit_bytes, units_per_bag, pass_bytes, passes_per_unit, n_blocks, warps_per_block,
             blocks_per_sm, sm_count, window, l2_hint_distance, apw, idx_chain, validation)
    costs = (issue_cycles_warp, issue_cycles_sm, dep_cycles, block_start_cycles)
    _first_wave(warps, run, shape, block_start_cycles)
    while not _run_events(mem, geo, fp, warps, run, end, work, shape, costs, persist_access, chunk):
        check()
    check()
    return float(end[0]), mem[13], mem[14], warps[12], warps[13]


@numba.njit(cache=True)  # type: ignore[misc]
def _pin_lines(mem: Any, geo: Any, pinned_lines: IntArray, pinned_masks: IntArray) -> None:  # pragma: no cover
    """The pinned rows, resident at the start of the call (persisting / evict-last)."""
    l2_tags, l2_stamp, l2_valid, l2_pers, l2_ready, ctl = mem[0], mem[1], mem[2], mem[3], mem[4], mem[5]
    _l1s, _l1w, l2_sets, l2_ways, n_parts, _dup, quota, policy = geo
    for i in range(pinned_lines.shape[0]):
        line = pinned_lines[i]
        home = (line_hash(line) >> 8) % n_parts
        gs = home * l2_sets + set_of(line, l2_sets)
        way, _h, _r = lookup(l2_tags, l2_stamp, l2_valid, l2_pers, l2_ready, ctl, gs, l2_ways, line,
                             pinned_masks[i], 1, quota, policy, 1, 0.0)
        fill(l2_valid, l2_ready, gs, l2_ways, way, pinned_masks[i], 0.0)


@numba.njit(cache=True)  # type: ignore[misc]
def _warm(mem: Any, geo: Any, fp: FloatArray, warm_rows: IntArray, lo: int, hi: int, row_bytes: int, sm_count: int,
          apw: int, persist_access: npt.NDArray[np.uint8]) -> None:  # pragma: no cover - compiled
    """Sampling windows: rows ``warm_rows[lo:hi]``, read before the window, replayed untimed into the L2."""
    l2_tags, l2_stamp, l2_valid, l2_pers, l2_ready, ctl = mem[0], mem[1], mem[2], mem[3], mem[4], mem[5]
    sm_side = mem[15]
    _l1s, _l1w, l2_sets, l2_ways, n_parts, duplicate, quota, policy = geo
    sec_b = 32
    dummy_servers = np.zeros(2, dtype=np.float64)
    dummy_cnt = np.zeros(N_COUNTERS, dtype=np.int64)
    warm_fp = fp.copy()
    warm_fp[FP_L2_SERVICE] = 0.0
    warm_fp[FP_DRAM_SERVICE] = 0.0
    for i in range(lo, hi):
        row = warm_rows[i]
        s0 = row * row_bytes // sec_b
        s1 = (row * row_bytes + row_bytes - 1) // sec_b
        wsm = (i * 7919) % sm_count  # spread over the SMs (and so over both partitions)
        wpers = 1 if (apw and persist_access[i]) else 0
        for line in range(s0 // 4, s1 // 4 + 1):
            a = max(s0, line * 4) - line * 4
            b = min(s1, line * 4 + 3) - line * 4
            mask = ((1 << (b + 1)) - 1) ^ ((1 << a) - 1)
            _l2_path(wsm, line, mask, 0.0, wpers, 1, sm_side, n_parts, duplicate, l2_tags, l2_stamp, l2_valid,
                     l2_pers, l2_ready, ctl, l2_sets, l2_ways, quota, policy, warm_fp, dummy_servers, dummy_cnt, 0)


@numba.njit(cache=True)  # type: ignore[misc]
def _first_wave(warps: Any, run: IntArray, shape: Any, block_start_cycles: float) -> None:  # pragma: no cover
    """Initial wave: blocks to SMs round-robin (block i -> SM i mod sm_count)."""
    w_glob, w_unit, w_pass, w_next, w_ret, w_wait = warps[0], warps[1], warps[2], warps[3], warps[4], warps[5]
    blk_left, ht, hp = warps[10], warps[14], warps[15]
    n_blocks, warps_per_block, blocks_per_sm, sm_count = shape[5], shape[6], shape[7], shape[8]
    max_warps = blocks_per_sm * warps_per_block
    hsize = 0
    next_block = 0
    for k in range(blocks_per_sm):
        for s in range(sm_count):
            if next_block >= n_blocks:
                break
            bslot = s * blocks_per_sm + k
            blk_left[bslot] = warps_per_block
            for wi in range(warps_per_block):
                slot = s * max_warps + k * warps_per_block + wi
                g = next_block * warps_per_block + wi
                w_glob[slot] = g
                w_unit[slot] = g
                w_pass[slot] = 0
                w_next[slot] = 0
                w_ret[slot] = 0
                w_wait[slot] = 0
                hsize = _heap_push(ht, hp, hsize, block_start_cycles, slot, -1)
            next_block += 1
    run[0] = hsize
    run[1] = next_block


@numba.njit(cache=True)  # type: ignore[misc]
def _run_events(mem: Any, geo: Any, fp: FloatArray, warps: Any, run: IntArray, end: FloatArray, work: Any,
                shape: Any, costs: Any, persist_access: npt.NDArray[np.uint8], budget: int) -> bool:  # pragma: no cover
    """Process at most ``budget`` events; True when the call is over (no event left)."""
    (l2_tags, l2_stamp, l2_valid, l2_pers, l2_ready, ctl, l1_tags, l1_stamp, l1_valid, l1_pers, l1_ready, l1ctl,
     servers, cnt, hist, sm_side) = mem
    l1_sets, l1_ways, l2_sets, l2_ways, n_parts, duplicate, quota, policy = geo
    (w_glob, w_unit, w_pass, w_next, w_ret, w_wait, w_pidx, w_pidx_t, w_comp, w_issue_t, blk_left, sm_issue,
     sm_finish, sm_lookups, ht, hp, w_valid, w_off) = warps
    indices, bag_start, bag_len = work
    (row_bytes, unit_bytes, units_per_bag, pass_bytes, passes_per_unit, n_blocks, warps_per_block, blocks_per_sm,
     _sm_count, window, l2_hint_distance, apw, idx_chain, validation) = shape
    issue_cycles_warp, issue_cycles_sm, dep_cycles, block_start_cycles = costs
    sec_b = 32
    max_warps = blocks_per_sm * warps_per_block
    total_warps = n_blocks * warps_per_block
    warp_stride = total_warps
    n_units = bag_start.shape[0] * units_per_bag
    hsize = run[0]
    next_block = run[1]
    end_time = end[0]
    n_done = 0
    while hsize > 0 and n_done < budget:
        n_done += 1
        t = ht[0]
        slot = hp[0] >> 32
        j = (hp[0] & 0xFFFFFFFF) - 1
        hsize = _heap_pop(ht, hp, hsize)
        cnt[C_EVENTS] += 1
        sm = slot // max_warps
        unit = w_unit[slot]
        if unit >= n_units:  # warp with no work: retire at once
            ln = 0
        else:
            bag = unit // units_per_bag
            ln = bag_len[bag]
        if j >= 0:
            # ---- the index of lookup j arrived: issue its row's loads
            bag = unit // units_per_bag
            part = unit % units_per_bag
            row = indices[bag_start[bag] + j]
            lo = part * unit_bytes + w_pass[slot] * pass_bytes
            hi = min(lo + pass_bytes, (part + 1) * unit_bytes, row_bytes)
            first = row * row_bytes + lo
            last = row * row_bytes + hi - 1
            s0 = first // sec_b
            s1 = last // sec_b
            pers = 1 if (apw and persist_access[bag_start[bag] + j]) else 0
            done = t
            whole = 0  # lines of the row that hit in L1 entirely
            some = 0  # a sector of the row hit in L1
            waited = 0  # an L1 hit of the row was still being filled
            dram_before = cnt[C_W_DRAM]
            for line in range(s0 // 4, s1 // 4 + 1):
                a = max(s0, line * 4) - line * 4
                b = min(s1, line * 4 + 3) - line * 4
                mask = ((1 << (b + 1)) - 1) ^ ((1 << a) - 1)
                cnt[C_W_SECTORS] += _popc(mask)
                g1 = sm * l1_sets + set_of(line, l1_sets)
                way, hit, r = lookup(l1_tags, l1_stamp, l1_valid, l1_pers, l1_ready, l1ctl, g1, l1_ways, line, mask,
                                     0, 0, 0, 1, t)
                tl = t
                if hit:
                    cnt[C_W_L1] += _popc(hit)
                    tl = max(t + fp[FP_L1], r)
                    some = 1
                    whole += 1 if hit == mask else 0
                    waited = 1 if r > t + fp[FP_L1] else waited
                miss = mask & ~hit
                if miss:
                    t2 = _l2_path(sm, line, miss, t, pers, 0, sm_side, n_parts, duplicate, l2_tags, l2_stamp, l2_valid,
                                  l2_pers, l2_ready, ctl, l2_sets, l2_ways, quota, policy, fp, servers, cnt, 1)
                    fill(l1_valid, l1_ready, g1, l1_ways, way, miss, t2)
                    tl = max(tl, t2)
                done = max(done, tl)
            cnt[C_ROW_LOADS] += 1
            lat = int(done - t + 0.5)
            if whole == s1 // 4 - s0 // 4 + 1:
                cnt[C_ROW_L1_WHOLE] += 1
                cnt[C_ROW_L1_FILL_WAIT] += waited
                cnt[C_LAT_L1] += lat
            else:
                if some:
                    cnt[C_ROW_L1_PARTIAL] += 1
                if cnt[C_W_DRAM] > dram_before:
                    cnt[C_ROW_DRAM] += 1
                    cnt[C_LAT_DRAM] += lat
                else:
                    cnt[C_ROW_L2] += 1
                    cnt[C_LAT_L2] += lat
            if l2_hint_distance > 0 and j + l2_hint_distance < ln:
                # prefetch.global.L2 of the row l2_hint_distance lookups ahead (no register, no wait)
                row2 = indices[bag_start[bag] + j + l2_hint_distance]
                f2 = row2 * row_bytes + lo
                l2s0 = f2 // sec_b
                l2s1 = (row2 * row_bytes + hi - 1) // sec_b
                pers2 = 1 if (apw and persist_access[bag_start[bag] + j + l2_hint_distance]) else 0
                for line in range(l2s0 // 4, l2s1 // 4 + 1):
                    a = max(l2s0, line * 4) - line * 4
                    b = min(l2s1, line * 4 + 3) - line * 4
                    mask = ((1 << (b + 1)) - 1) ^ ((1 << a) - 1)
                    cnt[C_PF_SECTORS] += _popc(mask)
                    _l2_path(sm, line, mask, t, pers2, 1, sm_side, n_parts, duplicate, l2_tags, l2_stamp, l2_valid,
                             l2_pers, l2_ready, ctl, l2_sets, l2_ways, quota, policy, fp, servers, cnt, 0)
            # the compiled loops issue the next lookup's index load right after this row's loads
            # (one lookup ahead; see the SASS in docs/model.md), so its latency overlaps the row's
            jn1 = j + 1
            if jn1 < ln and jn1 >= w_next[slot] and w_pidx[slot] != jn1:
                w_pidx_t[slot] = _index_fetch(sm, bag_start[bag] + jn1, t, l1_tags, l1_stamp, l1_valid, l1_pers,
                                              l1_ready, l1ctl, l1_sets, l1_ways, sm_side, n_parts, duplicate, l2_tags,
                                              l2_stamp, l2_valid, l2_pers, l2_ready, ctl, l2_sets, l2_ways, quota,
                                              policy, fp, servers, cnt)
                w_pidx[slot] = jn1
            k = slot * window + j % window
            w_comp[k] = done
            lat = done - w_issue_t[k]
            hb = int(lat / HIST_WIDTH)
            hist[min(hb, HIST_BINS - 1)] += 1
            if w_wait[slot] and j == w_ret[slot]:
                w_wait[slot] = 0
                hsize = _heap_push(ht, hp, hsize, done, slot, -1)
            continue
        # ---- WAKE: retire completed lookups, issue the next one, or move on
        if unit < n_units and w_off[slot] == 0:
            # the unit starts by loading its bag's offsets (begin and end: one 8-byte load each,
            # the same or the next sector), which every index address waits for
            bag = unit // units_per_bag
            to = _index_fetch(sm, OFFSETS_POS + bag, t, l1_tags, l1_stamp, l1_valid, l1_pers, l1_ready, l1ctl,
                              l1_sets, l1_ways, sm_side, n_parts, duplicate, l2_tags, l2_stamp, l2_valid, l2_pers,
                              l2_ready, ctl, l2_sets, l2_ways, quota, policy, fp, servers, cnt)
            w_off[slot] = 1
            hsize = _heap_push(ht, hp, hsize, to, slot, -1)
            continue
        if validation and unit < n_units and w_next[slot] == 0 and w_valid[slot] < (ln + 15) // 16:
            # the in-kernel validation loop: one pass per 128-byte line of the bag's indices,
            # each waiting for its loads before the next (they then sit in the L1); one line per
            # event, so that requests reach the bandwidth servers in time order
            bag = unit // units_per_bag
            tv = _index_fetch(sm, bag_start[bag] + 16 * w_valid[slot], t, l1_tags, l1_stamp, l1_valid, l1_pers,
                              l1_ready, l1ctl, l1_sets, l1_ways, sm_side, n_parts, duplicate, l2_tags, l2_stamp,
                              l2_valid, l2_pers, l2_ready, ctl, l2_sets, l2_ways, quota, policy, fp, servers, cnt)
            w_valid[slot] += 1
            hsize = _heap_push(ht, hp, hsize, tv, slot, -1)
            continue
        while w_ret[slot] < w_next[slot]:
            k = slot * window + w_ret[slot] % window
            if w_comp[k] >= 0.0 and w_comp[k] <= t:
                w_comp[k] = -1.0
                w_ret[slot] += 1
            else:
                break
        if w_next[slot] < ln:
            if w_next[slot] - w_ret[slot] < window:
                jn = w_next[slot]
                t0 = max(t, sm_issue[sm])
                sm_issue[sm] = t0 + issue_cycles_sm
                bag = unit // units_per_bag
                if w_pidx[slot] == jn:  # its index was requested one lookup ahead
                    ti = max(w_pidx_t[slot], t0)
                    w_pidx[slot] = -1
                else:
                    ti = _index_fetch(sm, bag_start[bag] + jn, t0, l1_tags, l1_stamp, l1_valid, l1_pers, l1_ready,
                                      l1ctl, l1_sets, l1_ways, sm_side, n_parts, duplicate, l2_tags, l2_stamp,
                                      l2_valid, l2_pers, l2_ready, ctl, l2_sets, l2_ways, quota, policy, fp, servers,
                                      cnt)
                if idx_chain == 0:  # loaded earlier for many lookups and passed by shuffle
                    ti = t0
                k = slot * window + jn % window
                w_comp[k] = -2.0  # issued, row not yet requested
                w_issue_t[k] = t0
                cnt[C_LOOKUPS] += 1
                sm_lookups[sm] += 1
                hsize = _heap_push(ht, hp, hsize, ti + dep_cycles, slot, jn)
                w_next[slot] = jn + 1
                if jn + 1 - w_ret[slot] < window or jn + 1 >= ln:
                    hsize = _heap_push(ht, hp, hsize, t0 + issue_cycles_warp, slot, -1)
                else:
                    # the ring is full: sleep until its oldest row arrives (never before the
                    # warp's own issue slot; a row load takes far longer than an issue)
                    k = slot * window + w_ret[slot] % window
                    if w_comp[k] >= 0.0:
                        hsize = _heap_push(ht, hp, hsize, max(w_comp[k], t0 + issue_cycles_warp), slot, -1)
                    else:
                        w_wait[slot] = 1
            else:
                k = slot * window + w_ret[slot] % window
                if w_comp[k] >= 0.0:
                    hsize = _heap_push(ht, hp, hsize, w_comp[k], slot, -1)
                else:
                    w_wait[slot] = 1
            continue
        if w_ret[slot] < w_next[slot]:  # all issued: drain before the next segment
            k = slot * window + w_ret[slot] % window
            if w_comp[k] >= 0.0:
                hsize = _heap_push(ht, hp, hsize, w_comp[k], slot, -1)
            else:
                w_wait[slot] = 1
            continue
        # segment done (output written, not waited for): next column pass or next unit
        w_next[slot] = 0
        w_ret[slot] = 0
        w_pidx[slot] = -1
        if unit < n_units and w_pass[slot] + 1 < passes_per_unit:
            w_pass[slot] += 1
            hsize = _heap_push(ht, hp, hsize, t + issue_cycles_warp, slot, -1)
            continue
        w_pass[slot] = 0
        w_valid[slot] = 0
        w_off[slot] = 0
        if unit < n_units:
            w_unit[slot] = unit + warp_stride
            if w_unit[slot] < n_units:
                hsize = _heap_push(ht, hp, hsize, t + issue_cycles_warp, slot, -1)
                continue
        # warp finished
        w_glob[slot] = -1
        end_time = max(end_time, t)
        sm_finish[sm] = max(sm_finish[sm], t)
        kb = (slot % max_warps) // warps_per_block
        bslot = sm * blocks_per_sm + kb
        blk_left[bslot] -= 1
        if blk_left[bslot] == 0 and next_block < n_blocks:
            # the SM takes the next block of the grid
            blk_left[bslot] = warps_per_block
            for wi in range(warps_per_block):
                s2 = sm * max_warps + kb * warps_per_block + wi
                g = next_block * warps_per_block + wi
                w_glob[s2] = g
                w_unit[s2] = g
                w_pass[s2] = 0
                w_next[s2] = 0
                w_ret[s2] = 0
                w_wait[s2] = 0
                w_pidx[s2] = -1
                w_valid[s2] = 0
                w_off[s2] = 0
                hsize = _heap_push(ht, hp, hsize, t + block_start_cycles, s2, -1)
            next_block += 1
    run[0] = hsize
    run[1] = next_block
    end[0] = end_time
    return bool(hsize == 0)
