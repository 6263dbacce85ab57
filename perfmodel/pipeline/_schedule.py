"""Operator graphs on CUDA streams: a timeline simulator and a topology-aware list scheduler.

Execution model (one host thread, as PyTorch eager):
  * The host issues operators one after another in a topological ``order``; issuing op i
    costs ``launch_s``, plus ``event_sync_s`` for every other stream it must wait on (an
    event record + stream wait per foreign stream among its dependencies: a sync point).
  * On the GPU, op i starts once it is issued, its dependencies have finished and the
    previous op of its stream has finished (streams are in-order queues).
  * Concurrent kernels share the GPU: each running op occupies ``sm_util`` of the SMs and
    ``dram_util`` of the DRAM bandwidth when alone; while a set R runs, every op in R
    progresses at rate 1 / max(1, sum_R sm_util, sum_R dram_util). So two memory-bound
    kernels split the bandwidth, and small kernels that underfill the GPU overlap at full
    speed (processor sharing of the bottleneck resource).
  * Wall time is attributed to stages: an interval with ops running is split evenly among
    them; an idle interval (the GPU waiting for the host) goes to the op that starts next.
    The stage times add up to the makespan.

Scheduler: list scheduling in order of bottom level (longest path to the exit, launch
costs included); each op goes to the stream where its estimated finish (with the sync cost
of waiting on other streams and a contention estimate) is earliest, ties to a stream of one
of its dependencies (no sync point), then to the lowest stream. It is run for every stream
count 1..K and the simulated best is kept, so K streams are never slower than one.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["Op", "Schedule", "brute_force_schedule", "list_schedule", "schedule", "simulate"]


@dataclass(frozen=True, kw_only=True)
class Op:
    """One operator: its dependencies (indices of earlier ops) and its cost alone."""

    name: str
    stage: str
    time_s: float
    deps: tuple[int, ...] = ()
    launch_s: float = 0.0
    sm_util: float = 0.0
    dram_util: float = 0.0
    kind: str = ""
    flops: float = 0.0
    bytes: float = 0.0
    note: str = ""


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
        return len(set(self.streams))


def _check(ops: Sequence[Op]) -> None:
    for i, op in enumerate(ops):
        for d in op.deps:
            if not 0 <= d < i:
                raise ValueError(f"op {i} ({op.name}) depends on {d}: ops must be listed in topological order")


def simulate(ops: Sequence[Op], streams: Sequence[int], order: Sequence[int] | None = None,
             event_sync_s: float = 0.0) -> Schedule:
    """Simulate ``ops`` with op i on stream ``streams[i]``, issued in ``order``."""
    n = len(ops)
    order = tuple(range(n)) if order is None else tuple(order)
    # host issue times and per-stream predecessors
    issue = [0.0] * n
    prev_in_stream = [-1] * n
    last: dict[int, int] = {}
    h, syncs = 0.0, 0
    for i in order:
        s = streams[i]
        foreign = {streams[d] for d in ops[i].deps} - {s}
        syncs += len(foreign)
        h += len(foreign) * event_sync_s + ops[i].launch_s
        issue[i] = h
        prev_in_stream[i] = last.get(s, -1)
        last[s] = i
    preds = [set(op.deps) | ({prev_in_stream[i]} if prev_in_stream[i] >= 0 else set()) for i, op in enumerate(ops)]

    start = [math.nan] * n
    end = [math.nan] * n
    remaining = [op.time_s for op in ops]
    running: list[int] = []
    waiting = set(range(n))
    stage_s: dict[str, float] = {}
    t = 0.0
    while waiting or running:
        # earliest start among ops whose predecessors have all finished
        nxt, t_next = -1, math.inf
        for i in waiting:
            if all(not math.isnan(end[p]) for p in preds[i]):
                r = max([issue[i], *(end[p] for p in preds[i])])
                if r < t_next or (r == t_next and i < nxt):
                    nxt, t_next = i, r
        slow = max(1.0, sum(ops[i].sm_util for i in running), sum(ops[i].dram_util for i in running))
        j_done = min(running, key=lambda i: remaining[i]) if running else -1
        t_done = t + remaining[j_done] * slow if running else math.inf
        completes = t_done <= max(t_next, t)
        t_ev = t_done if completes else max(t_next, t)
        dt = t_ev - t
        if dt > 0:
            if running:
                for i in running:
                    remaining[i] -= dt / slow
                    stage_s[ops[i].stage] = stage_s.get(ops[i].stage, 0.0) + dt / len(running)
            elif nxt >= 0:
                stage_s[ops[nxt].stage] = stage_s.get(ops[nxt].stage, 0.0) + dt
        t = t_ev
        if completes:
            remaining[j_done] = 0.0
            for i in list(running):
                if remaining[i] <= 1e-12 * ops[i].time_s:
                    running.remove(i)
                    end[i] = t
        for i in sorted(waiting):
            if all(not math.isnan(end[p]) for p in preds[i]) and max([issue[i], *(end[p] for p in preds[i])]) <= t:
                waiting.discard(i)
                start[i] = t
                if ops[i].time_s <= 0:
                    end[i] = t
                else:
                    running.append(i)
    makespan = max(end) if n else 0.0
    return Schedule(streams=tuple(streams), order=order, makespan_s=makespan, start_s=tuple(start), end_s=tuple(end),
                    sync_points=syncs, stage_s=stage_s)


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
    done: set[int] = set()
    order: list[int] = []
    left = set(range(len(ops)))
    while left:
        ready = [i for i in left if all(d in done for d in ops[i].deps)]
        i = max(ready, key=lambda j: (bl[j], -j))
        order.append(i)
        done.add(i)
        left.discard(i)
    return tuple(order)


def list_schedule(ops: Sequence[Op], k: int, event_sync_s: float = 0.0) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Assign ops to at most ``k`` streams (list scheduling); returns (streams, order)."""
    order = priority_order(ops)
    n = len(ops)
    streams = [0] * n
    est_start = [0.0] * n
    est_end = [0.0] * n
    free = [0.0] * k
    h = 0.0
    placed: list[int] = []
    for i in order:
        op = ops[i]
        dep_streams = {streams[d] for d in op.deps}
        best: tuple[float, int, int] | None = None
        best_h = h
        for s in range(k):
            foreign = dep_streams - {s}
            hi = h + len(foreign) * event_sync_s + op.launch_s
            st = max([hi, free[s], *(est_end[d] for d in op.deps)])
            overlap = [j for j in placed if streams[j] != s and est_end[j] > st]
            slow = max(1.0, op.sm_util + sum(ops[j].sm_util for j in overlap), op.dram_util + sum(ops[j].dram_util for j in overlap))
            fin = st + op.time_s * slow
            key = (fin, 0 if (s in dep_streams or not dep_streams) else 1, s)
            if best is None or key < best:
                best, best_h = key, hi
        assert best is not None
        s = best[2]
        streams[i] = s
        h = best_h
        est_start[i] = best[0] - op.time_s
        est_end[i] = best[0]
        free[s] = best[0]
        placed.append(i)
    # renumber streams by first use
    remap: dict[int, int] = {}
    for i in order:
        remap.setdefault(streams[i], len(remap))
    return tuple(remap[s] for s in streams), order


def schedule(ops: Sequence[Op], max_streams: int = 1, event_sync_s: float = 0.0) -> Schedule:
    """Best simulated list schedule over 1..``max_streams`` streams (never worse than one stream)."""
    if max_streams < 1:
        raise ValueError(f"`max_streams >= 1` must hold, but got max_streams={max_streams}")
    best: Schedule | None = None
    for k in range(1, max_streams + 1):
        streams, order = list_schedule(ops, k, event_sync_s)
        sch = simulate(ops, streams, order, event_sync_s)
        if best is None or sch.makespan_s < best.makespan_s * (1 - 1e-12):
            best = sch
        if k >= len(ops):
            break
    assert best is not None
    return best


def brute_force_schedule(ops: Sequence[Op], max_streams: int, event_sync_s: float = 0.0,
                         order: Sequence[int] | None = None) -> Schedule:
    """The optimal stream assignment by enumeration (small graphs only), same issue order."""
    if len(ops) > 10:
        raise ValueError(f"brute force is for small graphs (<= 10 ops), but got {len(ops)}")
    order = priority_order(ops) if order is None else tuple(order)
    best: Schedule | None = None
    n = len(ops)
    for rest in itertools.product(range(max_streams), repeat=max(0, n - 1)):
        streams = [0] * n
        for pos, i in enumerate(order[1:]):
            streams[i] = rest[pos]
        sch = simulate(ops, streams, order, event_sync_s)
        if best is None or sch.makespan_s < best.makespan_s:
            best = sch
    assert best is not None
    return best
