"""Operator graphs on CUDA streams: a timeline simulator, a list scheduler and an exact oracle.

Notation: S_i the fraction of the GPU's block slots op i asks for (``sm_util``), u_i the
fraction of the DRAM peak B it draws when it runs alone (``dram_util``), t_i its time alone;
L0 the unloaded DRAM latency, Lq the queueing scale (``perfmodel._physics``).

Execution model (one host thread, as PyTorch eager):
  * The host issues operators one after another in a topological ``order``; issuing op i
    costs ``launch_s``, plus ``event_sync_s`` for every other stream it must wait on (an
    event record + stream wait per foreign stream among its dependencies: a sync point).
  * On the GPU, op i starts once it is issued, its dependencies have finished and the
    previous op of its stream has finished (streams are in-order queues). Host<->device
    copies (``engine`` ``h2d``/``d2h``) run on the copy engines, one in-order queue per
    direction, and take no SM slots: a copy overlaps kernels.
  * Concurrent kernels contend, with a cost:
      - SM slots by block dispatch: the block scheduler dispatches the blocks of the kernel
        that started first; a later kernel gets only the slots left over (the left-over
        policy of NVIDIA's block scheduler, Pai et al., ASPLOS 2013). Kernel i is granted
        g_i = min(S_i, 1 - sum of the grants of the kernels started before it) and keeps
        s_i = g_i / S_i of its speed.
      - DRAM bandwidth with a latency that rises under load: alone, kernel i keeps
        N_i = u_i B (L0 + Lq u_i / (1 - u_i)) bytes in flight (Little's law at its own
        loaded latency). Together the kernels keep N = sum s_i N_i in flight and the
        memory system delivers X = little_throughput(N) (the same physics as
        ``perfmodel.predict``), shared in proportion to what each has in flight:
        m_i = X s_i N_i / N / (u_i B).
    Kernel i progresses at rate min(s_i, m_i) <= 1 of its speed alone. So two memory-bound
    kernels slow each other (latency rises with the load), small kernels that under-fill
    the GPU overlap at full speed, and a kernel started later can be starved of SM slots
    by an earlier, larger one: more streams can be slower than one.
  * Wall time is attributed to stages: an interval with ops running is split evenly among
    them; an idle interval (the GPU waiting for the host) goes to the op that starts next.
    The stage times add up to the makespan.

Scheduler: list scheduling in order of bottom level (longest path to the exit, launch
costs included); each op goes to the stream where its estimated finish (sync costs, and an
estimate of the contention above) is earliest, ties to a stream of one of its dependencies
(no sync point), then to the lowest stream. One pass for K streams; nothing keeps it from
being slower than one stream, so "K streams never slower" is measured, not built in.

Oracle: :func:`brute_force_schedule` searches every issue order and stream assignment
(branch and bound on the same timeline, exact) for graphs of up to 14 ops.
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from perfmodel._physics import little_throughput, model_params

__all__ = [
    "COPY_ENGINES",
    "MemorySystem",
    "Op",
    "Schedule",
    "brute_force_schedule",
    "list_schedule",
    "priority_order",
    "schedule",
    "simulate",
    "steady_state",
]

#: copy engines and the stream id each one's in-order queue has in a :class:`Schedule`
COPY_ENGINES = {"h2d": 1000, "d2h": 1001}
#: most DRAM utilization an op is taken to reach alone (the loaded latency diverges at 1)
_MAX_UTIL = 0.98


@dataclass(frozen=True, kw_only=True)
class Op:
    """One operator: its dependencies (indices of earlier ops) and its cost alone."""

    name: str
    stage: str
    time_s: float
    deps: tuple[int, ...] = ()
    launch_s: float = 0.0
    #: fraction of the GPU's block slots it asks for (the CPU's cores on a CPU)
    sm_util: float = 0.0
    #: fraction of the DRAM peak it draws when it runs alone
    dram_util: float = 0.0
    kind: str = ""
    flops: float = 0.0
    bytes: float = 0.0
    note: str = ""
    #: ``compute`` (a kernel on a stream), ``h2d`` or ``d2h`` (a copy on that copy engine)
    engine: str = "compute"
    #: the embedding table this op serves (its key), "" for the rest
    table: str = ""


@dataclass(frozen=True, kw_only=True)
class MemorySystem:
    """DRAM as the contention model sees it: unloaded latency, peak, queueing scale."""

    latency_s: float
    peak_bytes_per_s: float
    queue_latency_s: float

    @classmethod
    def of_gpu(cls, gpu: object) -> MemorySystem:
        """From a :class:`perfmodel.GPUSpec` and the calibrated queueing factor."""
        lat = gpu.latency_s(gpu.dram_latency_cycles)  # type: ignore[attr-defined]
        return cls(latency_s=lat, peak_bytes_per_s=gpu.dram_bandwidth_bytes_per_s,  # type: ignore[attr-defined]
                   queue_latency_s=model_params().dram_queue_factor * lat)

    def in_flight(self, util: float) -> float:
        """Bytes in flight of a stream of loads that alone reaches ``util`` of the peak."""
        u = min(max(util, 0.0), _MAX_UTIL)
        return u * self.peak_bytes_per_s * (self.latency_s + self.queue_latency_s * u / (1.0 - u))

    def throughput(self, bytes_in_flight: float) -> float:
        """Delivered bytes/s with ``bytes_in_flight`` outstanding (``little_throughput``)."""
        return _throughput(self, float(f"{bytes_in_flight:.12g}"))


@lru_cache(maxsize=65536)
def _throughput(mem: MemorySystem, n: float) -> float:
    # memoized: the simulator asks for the same loads again and again (n rounded to 12 digits)
    return float(little_throughput(n, mem.latency_s, mem.peak_bytes_per_s, mem.queue_latency_s))


@dataclass(frozen=True, kw_only=True)
class Schedule:
    """A stream assignment, the host's issue order and the simulated timeline."""

    streams: tuple[int, ...]
    order: tuple[int, ...]
    makespan_s: float
    start_s: tuple[float, ...]
    end_s: tuple[float, ...]
    sync_points: int
    stage_s: dict[str, float] = field(default_factory=dict)

    @property
    def streams_used(self) -> int:
        """Compute streams used (the copy engines' queues not counted)."""
        return len({s for s in self.streams if s not in COPY_ENGINES.values()})


def _check(ops: Sequence[Op]) -> None:
    for i, op in enumerate(ops):
        for d in op.deps:
            if not 0 <= d < i:
                raise ValueError(f"op {i} ({op.name}) depends on {d}: ops must be listed in topological order")
        if op.engine != "compute" and op.engine not in COPY_ENGINES:
            raise ValueError(f"op {i} ({op.name}): unknown engine {op.engine!r}")


class _Timeline:
    """The GPU side of a simulation, advanced event by event; ops are added as the host issues them.

    Adding op j at host time h after ``run(h)`` is exact: nothing issued later can start
    before it is issued, so the timeline before h does not depend on what comes after.
    """

    def __init__(self, ops: Sequence[Op], memory: MemorySystem | None) -> None:
        n = len(ops)
        self.ops = ops
        self.memory = memory
        self.n_in_flight = [memory.in_flight(op.dram_util) if memory and op.engine == "compute" else 0.0 for op in ops]
        self.t = 0.0
        self.issue = [math.nan] * n
        self.start = [math.nan] * n
        self.end = [math.nan] * n
        self.remaining = [op.time_s for op in ops]
        self.preds: list[list[int]] = [[] for _ in range(n)]
        self.succ: list[list[int]] = [[] for _ in range(n)]
        self.pending = [0] * n
        self.ready: list[tuple[float, int, int]] = []  # (ready time, issue position, op)
        self.running: list[int] = []  # in start order
        self.pos = [0] * n
        self.issued = 0
        self.stage_s: dict[str, float] = {}
        self.idle = 0.0

    def copy(self) -> _Timeline:
        c = _Timeline.__new__(_Timeline)
        c.ops, c.memory, c.n_in_flight = self.ops, self.memory, self.n_in_flight
        c.t, c.issued = self.t, self.issued
        c.issue, c.start, c.end, c.remaining = self.issue[:], self.start[:], self.end[:], self.remaining[:]
        c.preds = self.preds[:]  # an entry is replaced when its op is added, never mutated
        c.succ = [s[:] for s in self.succ]
        c.pending, c.ready, c.running, c.pos = self.pending[:], self.ready[:], self.running[:], self.pos[:]
        c.stage_s, c.idle = dict(self.stage_s), self.idle
        return c

    def add(self, i: int, prev_in_stream: int, issue_s: float) -> None:
        """Op i, issued at ``issue_s`` (>= every event run so far) behind ``prev_in_stream`` (-1: none)."""
        preds = sorted(set(self.ops[i].deps) | ({prev_in_stream} if prev_in_stream >= 0 else set()))
        self.preds[i] = preds
        self.issue[i] = issue_s
        self.pos[i] = self.issued
        self.issued += 1
        waiting = 0
        ready_t = issue_s
        for p in preds:
            if math.isnan(self.end[p]):
                waiting += 1
                self.succ[p].append(i)
            else:
                ready_t = max(ready_t, self.end[p])
        self.pending[i] = waiting
        if not waiting:
            heapq.heappush(self.ready, (ready_t, self.pos[i], i))

    def _rates(self) -> list[float]:
        ops, mem = self.ops, self.memory
        avail = 1.0
        share = []
        for i in self.running:
            op = ops[i]
            if op.engine != "compute" or op.sm_util <= 0:
                share.append(1.0)
                continue
            g = min(op.sm_util, max(avail, 0.0))
            avail -= g
            share.append(g / op.sm_util)
        rates = share[:]
        if mem is not None:
            n = [self.n_in_flight[i] * share[k] for k, i in enumerate(self.running)]
            total = sum(n)
            if total > 0 and sum(1 for x in n if x > 0) > 1:
                x = mem.throughput(total)
                for k, i in enumerate(self.running):
                    if n[k] > 0:
                        alone = min(ops[i].dram_util, _MAX_UTIL) * mem.peak_bytes_per_s
                        rates[k] = min(share[k], x * n[k] / total / alone)
        return rates

    def run(self, until: float = math.inf) -> None:
        """Process every event at or before ``until``."""
        ops = self.ops
        while True:
            rates = self._rates() if self.running else []
            t_done, k_done = math.inf, -1
            for k, i in enumerate(self.running):
                if rates[k] > 0:
                    td = self.t + self.remaining[i] / rates[k]
                    if td < t_done:
                        t_done, k_done = td, k
            t_start = self.ready[0][0] if self.ready else math.inf
            t_next = min(t_done, max(t_start, self.t))
            if t_next > until or t_next == math.inf:
                if until != math.inf and until > self.t:
                    self._advance(until, rates)
                return
            self._advance(t_next, rates)
            if t_done <= t_next and k_done >= 0:
                first = self.running[k_done]
                done = [i for i in self.running if i == first or self.remaining[i] <= 1e-12 * ops[i].time_s]
                for i in done:
                    self._finish(i)
            while self.ready and self.ready[0][0] <= self.t:
                _, _, i = heapq.heappop(self.ready)
                self.start[i] = self.t
                if self.idle > 0:
                    self.stage_s[ops[i].stage] = self.stage_s.get(ops[i].stage, 0.0) + self.idle
                    self.idle = 0.0
                if ops[i].time_s <= 0:
                    self._finish(i)
                else:
                    self.running.append(i)

    def _advance(self, t_new: float, rates: list[float]) -> None:
        dt = t_new - self.t
        if dt > 0:
            if self.running:
                share = dt / len(self.running)
                for k, i in enumerate(self.running):
                    self.remaining[i] -= dt * rates[k]
                    st = self.ops[i].stage
                    self.stage_s[st] = self.stage_s.get(st, 0.0) + share
            else:
                self.idle += dt  # the GPU waits (for the host): charged to the op that starts next
        self.t = max(self.t, t_new)

    def _finish(self, i: int) -> None:
        self.remaining[i] = 0.0
        self.end[i] = self.t
        if i in self.running:
            self.running.remove(i)
        for j in self.succ[i]:
            self.pending[j] -= 1
            if not self.pending[j]:
                r = max([self.issue[j], *(self.end[p] for p in self.preds[j])])
                heapq.heappush(self.ready, (r, self.pos[j], j))

    def lower_bound(self, unissued: Sequence[int], h: float, graph: _Graph) -> float:
        """A lower bound on the makespan of any completion that issues ``unissued`` from host time ``h``.

        Every op runs at rate <= 1, so: each op ends no earlier than its critical path at full
        speed (issued after its unissued ancestors: the host issues one op at a time); the
        work of an op and its unfinished ancestors fits on ``graph.k`` streams no faster than
        evenly spread; then its descendants' longest chain follows. Also the host's issue
        time left, and the SM-slot and DRAM work (their shares never sum past 1).
        """
        ops = self.ops
        n = len(ops)
        lb_end = [0.0] * n
        rem = [0.0] * n
        bound = self.t
        sm_work = mem_work = 0.0
        unfinished = 0
        for _, i in sorted((self.pos[i], i) for i in range(n) if not math.isnan(self.issue[i])):
            if not math.isnan(self.end[i]):
                lb_end[i] = self.end[i]
                continue
            r = self.remaining[i]
            if not math.isnan(self.start[i]):
                lb_end[i] = self.t + r
            else:
                lb_end[i] = max([self.t, self.issue[i], *(lb_end[p] for p in self.preds[i])]) + r
            rem[i] = r
            unfinished |= 1 << i
        mask = 0
        if unissued:
            launches = sum(ops[i].launch_s for i in unissued)
            bound = max(bound, h + launches + min(ops[i].time_s for i in unissued))
            mask = sum(1 << i for i in unissued)
            for i in sorted(unissued):
                anc = graph.ancestors[i] & mask
                host = ops[i].launch_s + sum(ops[j].launch_s for j in unissued if anc >> j & 1)
                lb_end[i] = max([h + host, *(lb_end[p] for p in ops[i].deps)]) + ops[i].time_s
                rem[i] = ops[i].time_s
            unfinished |= mask
        for i in range(n):
            if not unfinished >> i & 1:
                continue
            if ops[i].engine == "compute":
                sm_work += ops[i].sm_util * rem[i]
                mem_work += min(ops[i].dram_util, _MAX_UTIL) * rem[i]
                work = sum(rem[j] for j in graph.compute_closure[i] if unfinished >> j & 1)
                end = max(lb_end[i], self.t + work / graph.k)
            else:
                end = lb_end[i]
            bound = max(bound, end + graph.tail[i])
        return max(bound, self.t + sm_work, self.t + (mem_work if self.memory is not None else 0.0))


@dataclass(frozen=True, kw_only=True)
class _Graph:
    """What the exact search's bound needs of the graph: ancestors (bitmasks), each op's
    compute-engine ancestors with itself, the longest chain of op times after it, streams."""

    ancestors: tuple[int, ...]
    compute_closure: tuple[tuple[int, ...], ...]
    tail: tuple[float, ...]
    k: int

    @classmethod
    def of(cls, ops: Sequence[Op], k: int) -> _Graph:
        n = len(ops)
        anc = [0] * n
        succ: list[list[int]] = [[] for _ in range(n)]
        for i, op in enumerate(ops):
            for d in op.deps:
                anc[i] |= anc[d] | (1 << d)
                succ[d].append(i)
        tail = [0.0] * n
        for i in reversed(range(n)):
            tail[i] = max((ops[j].time_s + tail[j] for j in succ[i]), default=0.0)
        closure = tuple(tuple(j for j in range(n) if (anc[i] >> j & 1 or j == i) and ops[j].engine == "compute")
                        for i in range(n))
        return cls(ancestors=tuple(anc), compute_closure=closure, tail=tuple(tail), k=k)


def _host_step(ops: Sequence[Op], i: int, stream: int, streams: dict[int, int], event_sync_s: float) -> tuple[float, int]:
    """Host cost of issuing op i on ``stream`` (given the streams of issued ops) and its sync points."""
    foreign = {streams[d] for d in ops[i].deps} - {stream}
    return len(foreign) * event_sync_s + ops[i].launch_s, len(foreign)


def simulate(ops: Sequence[Op], streams: Sequence[int], order: Sequence[int] | None = None,
             event_sync_s: float = 0.0, memory: MemorySystem | None = None) -> Schedule:
    """Simulate ``ops`` with op i on stream ``streams[i]``, issued in ``order``.

    ``memory``: the DRAM system for bandwidth contention (None: kernels contend for SM
    slots only).
    """
    _check(ops)
    n = len(ops)
    order = tuple(range(n)) if order is None else tuple(order)
    tl = _Timeline(ops, memory)
    last: dict[int, int] = {}
    assigned: dict[int, int] = {}
    h, syncs = 0.0, 0
    for i in order:
        s = streams[i]
        assigned[i] = s
        cost, k = _host_step(ops, i, s, assigned, event_sync_s)
        h += cost
        syncs += k
        tl.run(h)
        tl.add(i, last.get(s, -1), h)
        last[s] = i
    tl.run()
    makespan = max(tl.end) if n else 0.0
    return Schedule(streams=tuple(streams), order=order, makespan_s=makespan, start_s=tuple(tl.start),
                    end_s=tuple(tl.end), sync_points=syncs, stage_s=tl.stage_s)


def _bottom_levels(ops: Sequence[Op]) -> list[float]:
    n = len(ops)
    succ: list[list[int]] = [[] for _ in range(n)]
    for i, op in enumerate(ops):
        for d in op.deps:
            succ[d].append(i)
    bl = [0.0] * n
    for i in reversed(range(n)):
        bl[i] = ops[i].time_s + ops[i].launch_s + max((bl[j] for j in succ[i]), default=0.0)
    return bl


def priority_order(ops: Sequence[Op]) -> tuple[int, ...]:
    """Topological order, highest bottom level first among ready ops (ties: lower index)."""
    _check(ops)
    bl = _bottom_levels(ops)
    n = len(ops)
    indeg = [len(set(op.deps)) for op in ops]
    succ: list[set[int]] = [set() for _ in range(n)]
    for i, op in enumerate(ops):
        for d in set(op.deps):
            succ[d].add(i)
    heap = [(-bl[i], i) for i in range(n) if not indeg[i]]
    heapq.heapify(heap)
    order: list[int] = []
    while heap:
        _, i = heapq.heappop(heap)
        order.append(i)
        for j in succ[i]:
            indeg[j] -= 1
            if not indeg[j]:
                heapq.heappush(heap, (-bl[j], j))
    return tuple(order)


def _estimate_rate(op: Op, start: float, placed: Sequence[tuple[float, float, Op]], memory: MemorySystem | None) -> float:
    """The contention model's rate for ``op`` started at ``start`` next to the ``placed`` (start, end, op) on other streams."""
    if op.engine != "compute":
        return 1.0
    over = [p for p in placed if p[0] <= start < p[1] and p[2].engine == "compute"]
    s = 1.0
    if op.sm_util > 0:
        avail = max(0.0, 1.0 - sum(p[2].sm_util for p in over))
        s = min(1.0, avail / op.sm_util)
    if memory is None or op.dram_util <= 0 or not over:
        return s
    n_i = memory.in_flight(op.dram_util) * s
    total = n_i + sum(memory.in_flight(p[2].dram_util) for p in over)
    m = memory.throughput(total) * n_i / total / (min(op.dram_util, _MAX_UTIL) * memory.peak_bytes_per_s) if total > 0 else s
    return min(s, m)


def list_schedule(ops: Sequence[Op], k: int, event_sync_s: float = 0.0,
                  memory: MemorySystem | None = None) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Assign ops to at most ``k`` compute streams (list scheduling); returns (streams, order).

    Ops are taken in bottom-level order. Each goes to the stream where it would finish first
    (the host's issue time with its sync points, the stream's queue, its dependencies, the
    contention estimate), except that finishing before its dependants can start anyway is
    worth nothing: a dependant cannot start before the host has issued all of its
    ancestors. Among streams equally good by that measure, one that already holds a
    dependency or a placed co-dependency of a dependant wins (no new sync point), then the
    earliest finish, then the lowest stream. Copies go to their copy engine's queue
    (``COPY_ENGINES``), never to a compute stream.
    """
    if k < 1:
        raise ValueError(f"`k >= 1` must hold, but got k={k}")
    order = priority_order(ops)
    n = len(ops)
    succ: list[list[int]] = [[] for _ in range(n)]
    ancestors = [0] * n
    for i, op in enumerate(ops):
        for d in set(op.deps):
            succ[d].append(i)
            ancestors[i] |= ancestors[d] | (1 << d)
    # the launch time of each op's ancestors not yet placed, kept as ops are placed (a sum
    # over all ops at each step made a 1,000-table model take minutes)
    descendants: list[list[int]] = [[] for _ in range(n)]
    pending = [0.0] * n
    for j in range(n):
        bits = ancestors[j]
        while bits:
            low = bits & -bits
            a = low.bit_length() - 1
            bits ^= low
            descendants[a].append(j)
            pending[j] += ops[a].launch_s
    streams = [0] * n
    est_end = [0.0] * n
    free: dict[int, float] = {}
    h = 0.0
    # per stream, its placed (start, end, op, placement number), in time order and disjoint (a
    # stream runs one op at a time): at most one per stream overlaps a given start
    lanes: dict[int, list[tuple[float, float, Op, int]]] = {}
    used: list[int] = []
    assigned: dict[int, int] = {}
    succ_deps = [{d for j in succ[i] for d in ops[j].deps} for i in range(n)]
    for i in order:
        op = ops[i]
        for j in descendants[i]:
            pending[j] -= op.launch_s
        near = {assigned[d] for d in op.deps}
        near |= {assigned[d] for d in succ_deps[i] if d in assigned}
        # the earliest a dependant can start: after the host has issued its ancestors still to place
        ready = min((h + pending[j] + ops[j].launch_s for j in succ[i]), default=0.0)
        if op.engine != "compute":
            cands = [COPY_ENGINES[op.engine]]
        else:
            cands = used + ([len(used)] if len(used) < k else [])
        best: tuple[float, int, float, int] | None = None
        best_h = h
        for s in cands:
            cost, _ = _host_step(ops, i, s, assigned, event_sync_s)
            hi = h + cost
            st = max([hi, free.get(s, 0.0), *(est_end[d] for d in op.deps)])
            rate = _estimate_rate(op, st, _running_at(lanes, st, s), memory)
            fin = st + op.time_s / max(rate, 1e-3)
            key = (max(fin, ready), 0 if (s in near or not near) else 1, fin, s)
            if best is None or key < best:
                best, best_h = key, hi
        assert best is not None
        s = best[3]
        fin = best[2]
        if op.engine == "compute" and s not in used:
            used.append(s)
        streams[i] = s
        assigned[i] = s
        h = best_h
        est_end[i] = fin
        free[s] = fin
        lanes.setdefault(s, []).append((fin - op.time_s, fin, op, len(assigned)))
    return tuple(streams), order


def _start(span: tuple[float, float, Op, int]) -> float:
    return span[0]


def _running_at(lanes: dict[int, list[tuple[float, float, Op, int]]], t: float,
                skip: int) -> list[tuple[float, float, Op]]:
    """The placed ops on streams other than ``skip`` that run at time ``t``, in placement order."""
    found = []
    for s, spans in lanes.items():
        if s == skip:
            continue
        k = bisect.bisect_right(spans, t, key=_start) - 1
        if k >= 0 and t < spans[k][1]:
            found.append(spans[k])
    found.sort(key=lambda p: p[3])
    return [(a, b, o) for a, b, o, _ in found]


def schedule(ops: Sequence[Op], max_streams: int = 1, event_sync_s: float = 0.0,
             memory: MemorySystem | None = None) -> Schedule:
    """The list schedule on at most ``max_streams`` compute streams, simulated."""
    if max_streams < 1:
        raise ValueError(f"`max_streams >= 1` must hold, but got max_streams={max_streams}")
    streams, order = list_schedule(ops, max_streams, event_sync_s, memory)
    return simulate(ops, streams, order, event_sync_s, memory)


def steady_state(ops: Sequence[Op], sch: Schedule, event_sync_s: float = 0.0, memory: MemorySystem | None = None,
                 batches: int = 4) -> tuple[float, float]:
    """(period, latency) of a pipelined stream of batches: the host issues batch after batch
    with ``sch``'s streams and order, so batch b+1's copies run on the copy engines while
    batch b computes. Period: the time between consecutive batches' completions at steady
    state; latency: from the start of a batch's first op to its completion there."""
    n = len(ops)
    if n == 0:
        return 0.0, 0.0
    rep: list[Op] = []
    streams: list[int] = []
    order: list[int] = []
    for b in range(batches):
        off = b * n
        for op in ops:
            rep.append(Op(name=op.name, stage=op.stage, time_s=op.time_s, deps=tuple(d + off for d in op.deps),
                          launch_s=op.launch_s, sm_util=op.sm_util, dram_util=op.dram_util, engine=op.engine))
        streams.extend(sch.streams)
        order.extend(i + off for i in sch.order)
    full = simulate(rep, streams, order, event_sync_s, memory)
    ends = [max(full.end_s[b * n:(b + 1) * n]) for b in range(batches)]
    firsts = [min(full.start_s[b * n:(b + 1) * n]) for b in range(batches)]
    period = (ends[-1] - ends[-2]) if batches > 1 else ends[0]
    return period, ends[-1] - firsts[-1]


def brute_force_schedule(ops: Sequence[Op], max_streams: int, event_sync_s: float = 0.0,
                         memory: MemorySystem | None = None) -> Schedule:
    """The fastest schedule over every issue order and stream assignment (exact; <= 14 ops).

    Depth-first branch and bound on the simulator's own timeline. Cut without loss: streams
    are labelled in order of first use (relabellings are the same schedule), of two twin ops
    (same dependencies, dependants and costs) the lower index is issued first (swapping
    twins gives the same timeline), and a partial schedule is dropped when a lower bound on
    its makespan (the host's issue time left, each op's critical path at full speed after
    its ancestors are issued, SM-slot and DRAM work) reaches the best schedule found so far
    (first: the best list schedule on 1..``max_streams`` streams).
    """
    n = len(ops)
    if n > 14:
        raise ValueError(f"brute force is for small graphs (<= 14 ops), but got {len(ops)}")
    _check(ops)
    succ: list[set[int]] = [set() for _ in range(n)]
    for i, op in enumerate(ops):
        for d in op.deps:
            succ[d].add(i)
    graph = _Graph.of(ops, max_streams)
    twin_before = [-1] * n
    for b in range(n):
        for a in range(b):
            oa, ob = ops[a], ops[b]
            if (set(oa.deps) == set(ob.deps) and succ[a] == succ[b] and
                    (oa.time_s, oa.launch_s, oa.sm_util, oa.dram_util, oa.engine) ==
                    (ob.time_s, ob.launch_s, ob.sm_util, ob.dram_util, ob.engine)):
                twin_before[b] = a
    best = min((schedule(ops, k, event_sync_s, memory) for k in range(1, max_streams + 1)), key=lambda x: x.makespan_s)
    best_t = best.makespan_s
    best_plan: tuple[tuple[int, ...], tuple[int, ...]] = (best.streams, best.order)
    streams = [-1] * n
    cut = 1 - 1e-12

    def rec(tl: _Timeline, order: list[int], h: float, last: dict[int, int], used: int) -> None:
        nonlocal best_t, best_plan
        left = [i for i in range(n) if streams[i] < 0]
        if not left:
            done = tl.copy()
            done.run()
            mk = max(done.end)
            if mk < best_t * cut:
                best_t, best_plan = mk, (tuple(streams), tuple(order))
            return
        issued = set(order)
        assigned = {j: streams[j] for j in order}
        children = []
        for i in left:
            if any(d not in issued for d in ops[i].deps) or (twin_before[i] >= 0 and streams[twin_before[i]] < 0):
                continue
            op = ops[i]
            cands = [COPY_ENGINES[op.engine]] if op.engine != "compute" else list(range(min(used + 1, max_streams)))
            for s in cands:
                cost, _ = _host_step(ops, i, s, assigned, event_sync_s)
                hi = h + cost
                child = tl.copy()
                child.run(hi)
                child.add(i, last.get(s, -1), hi)
                lb = child.lower_bound([j for j in left if j != i], hi, graph)
                if lb < best_t * cut:
                    children.append((lb, i, s, hi, child))
        children.sort(key=lambda c: (c[0], c[1], c[2]))
        for lb, i, s, hi, child in children:
            if lb >= best_t * cut:
                break
            streams[i] = s
            order.append(i)
            rec(child, order, hi, {**last, s: i}, max(used, s + 1) if ops[i].engine == "compute" else used)
            order.pop()
            streams[i] = -1

    rec(_Timeline(ops, memory), [], 0.0, {}, 0)
    return simulate(ops, best_plan[0], best_plan[1], event_sync_s, memory)
