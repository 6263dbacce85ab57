"""Numba kernels of the set-associative L2 model (imported lazily: this module imports numba).

State of a cache of ``n_sets`` sets x ``ways`` ways, arrays indexed ``set * ways + way``:
``tags`` (line id, -1 = empty), ``stamp`` (LRU: last use counter; SRRIP: re-reference
prediction value 0..3; random: unused), ``valid`` (bit mask of valid sectors), ``pers``
(1 = persisting / evict-last line), and ``ready`` (per sector: the time its data arrives,
which makes a hit on a sector still in flight wait for it, as an MSHR merge does).
``ctl`` holds ``[lru_counter, rng_state]``.

Policies: 0 = LRU, 1 = SRRIP (2-bit, insert at 2, hit -> 0; Jaleel et al., ISCA 2010),
2 = random. Persisting lines (access-policy-window hitProp=Persisting, or
``prefetch.global.L2::evict_last``) may fill at most ``quota`` ways of a set; normal lines
never evict them, and use the quota's ways while persisting lines do not.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
import numpy.typing as npt
from llvmlite import ir  # type: ignore[import-untyped]
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

IntArray = npt.NDArray[np.int64]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing constant (Knuth)


@intrinsic  # type: ignore[misc]
def prefetch(typingctx: Any, arr: Any, idx: Any) -> Any:  # pragma: no cover - compiled
    """Software prefetch of ``arr[idx]`` into the CPU caches (LLVM's ``llvm.prefetch``: a
    read, high locality, data cache). Unlike a load it never stalls the pipeline, so the
    sets of the next accesses arrive while this one is simulated. The name's typed-pointer
    mangling (p0i8) is upgraded by newer LLVMs to the opaque one."""
    sig = types.void(arr, idx)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]], wraparound=False,  # type: ignore[no-untyped-call]
                                       boundscheck=False)
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0i8")  # type: ignore[no-untyped-call]
        builder.call(fn, [builder.bitcast(ptr, i8p), ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return sig, codegen


@numba.njit(cache=True, inline="always")  # type: ignore[misc]
def line_hash(line: int) -> int:  # pragma: no cover - compiled
    """A 64-bit mix of a line id (the hashed set index and home partition come from it)."""
    x = np.uint64(line) * _GOLDEN
    x ^= x >> np.uint64(29)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(32)
    return int(x & np.uint64(0x7FFFFFFFFFFFFFFF))


@numba.njit(cache=True, inline="always")  # type: ignore[misc]
def set_of(line: int, n_sets: int) -> int:  # pragma: no cover - compiled
    """The hashed set index of a line: high hash bits scaled to ``[0, n_sets)`` (n_sets < 2**32)."""
    return ((line_hash(line) >> 31) * n_sets) >> 32


@numba.njit(cache=True)  # type: ignore[misc]
def _rand(ctl: IntArray) -> int:  # pragma: no cover - compiled
    x = np.uint64(ctl[1])
    x ^= x << np.uint64(13)
    x ^= x >> np.uint64(7)
    x ^= x << np.uint64(17)
    ctl[1] = np.int64(x & np.uint64(0x7FFFFFFFFFFFFFFF))
    return int(ctl[1])


@numba.njit(cache=True, inline="always")  # type: ignore[misc]
def _victim(base: int, ways: int, want_pers: int, stamp: IntArray, tags: IntArray, pers: npt.NDArray[np.uint8],
            policy: int, ctl: IntArray) -> int:  # pragma: no cover - compiled
    """Way to replace among ways whose ``pers`` equals ``want_pers`` (-1 if none); empty ways first."""
    n_elig = 0
    for w in range(ways):
        i = base + w
        if tags[i] < 0:
            return w
        if pers[i] == want_pers:
            n_elig += 1
    if n_elig == 0:
        return -1
    if policy == 0:  # LRU: smallest stamp
        best, best_s = -1, np.int64(0)
        for w in range(ways):
            i = base + w
            if pers[i] == want_pers and (best < 0 or stamp[i] < best_s):
                best, best_s = w, stamp[i]
        return best
    if policy == 1:  # SRRIP: first way with RRPV 3, ageing all eligible ways until one is
        while True:
            for w in range(ways):
                i = base + w
                if pers[i] == want_pers and stamp[i] >= 3:
                    return w
            for w in range(ways):
                i = base + w
                if pers[i] == want_pers:
                    stamp[i] += 1
    k = _rand(ctl) % n_elig
    for w in range(ways):
        i = base + w
        if pers[i] == want_pers:
            if k == 0:
                return w
            k -= 1
    return -1  # unreachable


@numba.njit(cache=True, inline="always")  # type: ignore[misc]
def lookup(tags: IntArray, stamp: IntArray, valid: npt.NDArray[np.uint8], pers: npt.NDArray[np.uint8],
           ready: npt.NDArray[np.float64], ctl: IntArray, set_index: int, ways: int, line: int, mask: int,
           persist: int, quota: int, policy: int, allocate: int, now: float) -> tuple[int, int, float]:  # pragma: no cover
    """Look ``line`` up for the sectors in ``mask``; on a miss allocate a way (if ``allocate``).

    Returns ``(way, hit_mask, hit_ready)``: the way holding the line after the access (-1:
    not cached, bypassed), the requested sectors that were valid, and the latest arrival
    time among them (``now`` if none is still in flight). The caller fills the missing
    sectors with :func:`fill` once it knows when their data arrives.
    """
    base = set_index * ways
    if quota <= 0:
        persist = 0
    for w in range(ways):
        i = base + w
        if tags[i] == line:
            hit = int(valid[i]) & mask
            t = now
            for s in range(8):
                if hit & (1 << s):
                    r = ready[i * 8 + s]
                    if r > t:
                        t = r
            if policy == 0:
                ctl[0] += 1
                stamp[i] = ctl[0]
            elif policy == 1:
                stamp[i] = 0
            if persist and pers[i] == 0:
                # promote to persisting if the quota allows
                n = 0
                for v in range(ways):
                    n += pers[base + v]
                if n < quota:
                    pers[i] = 1
            return w, hit, t
    if not allocate:
        return -1, 0, now
    want = 0
    if persist:
        n = 0
        for v in range(ways):
            n += pers[base + v]
        want = 1 if n >= quota else 0
    w = _victim(base, ways, want, stamp, tags, pers, policy, ctl)
    if w < 0:
        return -1, 0, now
    i = base + w
    tags[i] = line
    valid[i] = 0
    pers[i] = 1 if persist else 0
    if policy == 0:
        ctl[0] += 1
        stamp[i] = ctl[0]
    elif policy == 1:
        stamp[i] = 2
    return w, 0, now


@numba.njit(cache=True, inline="always")  # type: ignore[misc]
def fill(valid: npt.NDArray[np.uint8], ready: npt.NDArray[np.float64], set_index: int, ways: int, way: int,
         mask: int, t: float) -> None:  # pragma: no cover - compiled
    """Mark the sectors in ``mask`` of ``way`` valid, their data arriving at ``t``."""
    if way < 0:
        return
    i = set_index * ways + way
    valid[i] = np.uint8(int(valid[i]) | mask)
    for s in range(8):
        if mask & (1 << s):
            ready[i * 8 + s] = t


@numba.njit(cache=True)  # type: ignore[misc]
def run_rows_policy(rows: IntArray, row_bytes: int, line_bytes: int, sector_bytes: int, n_sets: int, ways: int,
             policy: int, seed: int) -> IntArray:  # pragma: no cover - compiled
    """Replay row accesses through one cache (any policy); returns counts
    ``[row_hits, line_accesses, line_hits, sector_accesses, sector_hits]``.

    Row r covers bytes ``[r * row_bytes, (r + 1) * row_bytes)`` of a line-aligned table;
    it touches every line overlapping that range, and in each line the sectors overlapping
    it. A row hits when all its sectors hit; a line when all its requested sectors hit.
    """
    spl = line_bytes // sector_bytes
    n_meta = n_sets * ways
    tags = np.full(n_meta, -1, dtype=np.int64)
    stamp = np.zeros(n_meta, dtype=np.int64)
    valid = np.zeros(n_meta, dtype=np.uint8)
    pers = np.zeros(n_meta, dtype=np.uint8)
    ctl = np.zeros(2, dtype=np.int64)
    ctl[1] = seed | 1
    popc = np.zeros(256, dtype=np.int64)
    for m in range(256):
        popc[m] = popc[m >> 1] + (m & 1)
    row_hits = 0
    line_acc = 0
    line_hits = 0
    sec_acc = 0
    sec_hits = 0
    for k in range(rows.shape[0]):
        first = rows[k] * row_bytes
        s0 = first // sector_bytes
        s1 = (first + row_bytes - 1) // sector_bytes
        row_hit = True
        for line in range(s0 // spl, s1 // spl + 1):
            lo = max(s0, line * spl) - line * spl
            hi = min(s1, line * spl + spl - 1) - line * spl
            mask = ((1 << (hi + 1)) - 1) ^ ((1 << lo) - 1)
            set_index = set_of(line, n_sets)
            way, hit, _t = _lookup_untimed(tags, stamp, valid, pers, ctl, set_index, ways, line, mask, policy)
            nreq = popc[mask]
            nhit = popc[hit]
            line_acc += 1
            sec_acc += nreq
            sec_hits += nhit
            if nhit == nreq:
                line_hits += 1
            else:
                row_hit = False
                if way >= 0:
                    i = set_index * ways + way
                    valid[i] = np.uint8(int(valid[i]) | mask)
        if row_hit:
            row_hits += 1
    out = np.zeros(5, dtype=np.int64)
    out[0] = row_hits
    out[1] = line_acc
    out[2] = line_hits
    out[3] = sec_acc
    out[4] = sec_hits
    return out


@numba.njit(cache=True, inline="always")  # type: ignore[misc]
def _lookup_untimed(tags: IntArray, stamp: IntArray, valid: npt.NDArray[np.uint8], pers: npt.NDArray[np.uint8],
                    ctl: IntArray, set_index: int, ways: int, line: int, mask: int,
                    policy: int) -> tuple[int, int, float]:  # pragma: no cover - compiled
    base = set_index * ways
    for w in range(ways):
        i = base + w
        if tags[i] == line:
            if policy == 0:
                ctl[0] += 1
                stamp[i] = ctl[0]
            elif policy == 1:
                stamp[i] = 0
            return w, int(valid[i]) & mask, 0.0
    w = _victim(base, ways, 0, stamp, tags, pers, policy, ctl)
    i = base + w
    tags[i] = line
    valid[i] = 0
    if policy == 0:
        ctl[0] += 1
        stamp[i] = ctl[0]
    elif policy == 1:
        stamp[i] = 2
    return w, 0, 0.0


#: :func:`parse_ints` error kinds (the second slot of its error answer)
PARSE_BAD_BYTE, PARSE_TWO_ON_A_LINE, PARSE_TOO_LARGE = 0, 1, 2
_INT64_MAX = (1 << 63) - 1


@numba.njit(cache=True)  # type: ignore[misc]
def parse_ints(buf: npt.NDArray[np.uint8]) -> IntArray:  # pragma: no cover - compiled
    """The non-negative decimal integers of a text buffer, one per line (blank lines and
    spaces around a number are allowed), each below 2**63.

    Returns the values, or on the first bad line a 2-element array ``[-(position + 1),
    kind]``: the byte that breaks the rule and which rule (``PARSE_*``).
    """
    n = buf.shape[0]
    count = 0
    in_num = False
    on_line = False  # this line already holds a number
    for i in range(n):
        c = buf[i]
        if 48 <= c <= 57:
            if not in_num:
                if on_line:
                    err = np.empty(2, dtype=np.int64)
                    err[0] = -(i + 1)
                    err[1] = PARSE_TWO_ON_A_LINE
                    return err
                count += 1
                in_num = True
                on_line = True
        elif c == 10:
            in_num = False
            on_line = False
        elif c == 32 or c == 13 or c == 9:
            in_num = False
        else:
            err = np.empty(2, dtype=np.int64)
            err[0] = -(i + 1)
            err[1] = PARSE_BAD_BYTE
            return err
    out = np.empty(count, dtype=np.int64)
    k = -1
    in_num = False
    for i in range(n):
        c = buf[i]
        if 48 <= c <= 57:
            if not in_num:
                k += 1
                out[k] = 0
                in_num = True
            d = c - 48
            if out[k] > (_INT64_MAX - d) // 10:
                err = np.empty(2, dtype=np.int64)
                err[0] = -(i + 1)
                err[1] = PARSE_TOO_LARGE
                return err
            out[k] = out[k] * 10 + d
        else:
            in_num = False
    return out


#: accesses ahead whose sets :func:`run_rows_lru` prefetches (8 measured best of 4, 8, 16 on
#: the reuse_medium trace at 40 MiB: 2x the rate of no prefetch)
PREFETCH_AHEAD = 8


@numba.njit(cache=True)  # type: ignore[misc]
def run_rows_lru(rows: IntArray, row_bytes: int, line_shift: int, sector_shift: int, n_sets: int,
                 ways: int) -> IntArray:  # pragma: no cover - compiled
    """:func:`run_rows_policy` for LRU, specialized: one packed word per way, move to front;
    lines and sectors of power-of-two sizes (``1 << line_shift``, ``1 << sector_shift``
    bytes), so addresses split by shifts; the sets of the access ``PREFETCH_AHEAD`` ahead
    are prefetched."""
    spl_shift = line_shift - sector_shift
    spl = 1 << spl_shift
    n = rows.shape[0]
    packed = np.full(n_sets * ways, -1, dtype=np.int64)
    popc = np.zeros(256, dtype=np.int64)
    for m in range(1, 256):
        popc[m] = popc[m >> 1] + (m & 1)
    row_hits = 0
    line_acc = 0
    line_hits = 0
    sec_acc = 0
    sec_hits = 0
    for k in range(n):
        if k + PREFETCH_AHEAD < n:
            ahead = rows[k + PREFETCH_AHEAD] * row_bytes
            for ln in range(ahead >> line_shift, ((ahead + row_bytes - 1) >> line_shift) + 1):
                b = set_of(ln, n_sets) * ways
                prefetch(packed, b)  # type: ignore[call-arg]
                prefetch(packed, b + ways - 1)  # type: ignore[call-arg]
        first = rows[k] * row_bytes
        s0 = first >> sector_shift
        s1 = (first + row_bytes - 1) >> sector_shift
        l0 = s0 >> spl_shift
        l1 = s1 >> spl_shift
        row_hit = True
        line = l0
        while line <= l1:
            lo = s0 - (line << spl_shift) if line == l0 else 0
            hi = s1 - (line << spl_shift) if line == l1 else spl - 1
            mask = ((1 << (hi + 1)) - 1) ^ ((1 << lo) - 1)
            nreq = hi - lo + 1
            base = set_of(line, n_sets) * ways
            pos = ways - 1
            old = np.int64(0)
            for w in range(ways):
                e = packed[base + w]
                if e < 0:
                    pos = w
                    break
                if (e >> 8) == line:
                    pos = w
                    old = e & 255
                    break
            for w in range(pos, 0, -1):
                packed[base + w] = packed[base + w - 1]
            packed[base] = (line << 8) | old | mask
            nhit = popc[old & mask]
            line_acc += 1
            sec_acc += nreq
            sec_hits += nhit
            if nhit == nreq:
                line_hits += 1
            else:
                row_hit = False
            line += 1
        if row_hit:
            row_hits += 1
    out = np.zeros(5, dtype=np.int64)
    out[0] = row_hits
    out[1] = line_acc
    out[2] = line_hits
    out[3] = sec_acc
    out[4] = sec_hits
    return out
