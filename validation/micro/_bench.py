"""Running the microbenchmarks on a GPU (CuPy) and writing the results file.

Results file: JSON lines. The first line is ``{"benchmark": "env", ...}`` (device name,
UUID, driver, CUDA and library versions, clocks); then one line per point:

- ``{"benchmark": "pointer-chase", "footprint_bytes", "latency_cycles", "latency_s", "steps"}``
- ``{"benchmark": "stream-read", "block_size", "blocks_per_sm", "bandwidth_bytes_per_s",
  "occupancy", "driver_blocks_per_sm"}``
- ``{"benchmark": "l2-read", "footprint_bytes", "bandwidth_bytes_per_s"}``
- ``{"benchmark": "persisting-l2", "hot_bytes", "window": bool, "hit_ratio",
  "bandwidth_bytes_per_s", "time_s"}``: re-reading a hot buffer after a cold stream
  evicted the L2, with and without an access-policy window on the hot buffer.

Every point also carries ``gpu`` (recperf id, or None when the device is unknown) and the
timing summary (``times_s``, ``median_s``). :func:`validation.read_micro_results` reads it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import perfmodel
from perfmodel import InputError
from validation._records import append_record
from validation.micro import _sources as src
from validation.micro._plan import (
    CHASE_SLOT_BYTES,
    QUICK_CHASE_MAX_STEPS,
    chase_footprints,
    chase_max_bytes,
    chase_next_slots,
    chase_order,
    chase_steps,
    l2_footprints,
    result_record,
    spoiler_shared_mem_bytes,
)

__all__ = ["KINDS", "run_microbenchmarks"]

KINDS = ("pointer-chase", "stream-read", "l2-read", "persisting-l2")


def _spec_for(backend: Any, gpu: str | None) -> perfmodel.GPUSpec:
    gid = gpu or backend.gpu_id()
    if gid is None:
        raise InputError(f"cannot tell which recperf GPU {backend.name!r} is; pass --gpu (one of {perfmodel.gpu_ids()})")
    return perfmodel.get_gpu(gid)


#: the hold before each timed microbenchmark call: the stream stays busy while the host records
#: the start event and launches, so host launch overhead never falls inside the events
HOLD_S = 50e-6


def _hold(backend: Any, stream: Any = None) -> Callable[[int], None]:
    def before(_i: int) -> None:
        backend.hold(stream if stream is not None else backend.current_stream(), HOLD_S)

    return before


def run_pointer_chase(backend: Any, footprints: Sequence[int], *, gpu_id: str | None, emit: Callable[[dict[str, Any]], None],
                      deadline: float = float("inf"), max_steps: int = 1 << 20) -> None:
    cp = backend.cp
    kernel = backend.compile_kernel(src.CHASE, "chase")
    sink = cp.zeros(1, dtype=cp.uint64)
    cycles = cp.zeros(1, dtype=cp.int64)
    start_ev, end_ev = cp.cuda.Event(), cp.cuda.Event()
    for fp in footprints:
        if time.monotonic() > deadline:
            break
        n_slots = fp // CHASE_SLOT_BYTES
        buf = cp.zeros(n_slots * (CHASE_SLOT_BYTES // 8), dtype=cp.uint64)
        nxt = chase_next_slots(n_slots, seed=n_slots)
        host = np.zeros(n_slots * (CHASE_SLOT_BYTES // 8), dtype=np.uint64)
        host[:: CHASE_SLOT_BYTES // 8] = np.uint64(buf.data.ptr) + nxt.astype(np.uint64) * np.uint64(CHASE_SLOT_BYTES)
        buf.set(host)
        steps = chase_steps(n_slots, max_steps=max_steps)
        start = buf[0:1]  # slot 0 is on the cycle like every slot
        args = (start, np.int64(steps), sink, cycles)
        backend.launch(kernel, (1,), (64,), (start, np.int64(min(steps, 2 * n_slots + 16)), sink, cycles))  # warm
        runs = []
        for _ in range(3):
            start_ev.record()
            backend.launch(kernel, (1,), (64,), args)
            end_ev.record()
            end_ev.synchronize()
            runs.append((int(cycles.get()[0]) / steps, cp.cuda.get_elapsed_time(start_ev, end_ev) / 1e3 / steps))
        lat_cycles = float(np.median([r[0] for r in runs]))
        lat_s = float(np.median([r[1] for r in runs]))
        emit(result_record("pointer-chase", gpu_id, footprint_bytes=int(n_slots * CHASE_SLOT_BYTES),
                           latency_cycles=lat_cycles, latency_s=lat_s, steps=steps,
                           runs_cycles=[r[0] for r in runs]))
        del buf


def run_stream_read(backend: Any, spec: perfmodel.GPUSpec, block_sizes: Sequence[int], *, blocks_per_sm: int = 2,
                    gpu_id: str | None, emit: Callable[[dict[str, Any]], None], repeats: int = 7,
                    buffer_bytes: int = 1 << 30, deadline: float = float("inf")) -> None:
    from validation.observers import time_with_events

    cp = backend.cp
    kernel = backend.compile_kernel(src.STREAM_READ, "stream_read")
    n = buffer_bytes // 8
    a = cp.ones(n, dtype=cp.float64)
    sink = cp.zeros(1, dtype=cp.float64)
    smem = spoiler_shared_mem_bytes(spec, blocks_per_sm)
    for b in block_sizes:
        if time.monotonic() > deadline:
            break
        grid = (n + b - 1) // b
        def run(_i: int, b: int = b, grid: int = grid) -> None:
            backend.launch(kernel, (grid,), (b,), (a, sink, np.int64(n)), shared_mem=smem)

        t = time_with_events(run, device=backend, repeats=repeats, warmup=2, before_each=_hold(backend))
        occ = perfmodel.occupancy(spec, block_size=b, registers_per_thread=32, shared_mem_bytes=smem)
        emit(result_record("stream-read", gpu_id, block_size=int(b), blocks_per_sm=blocks_per_sm,
                           bandwidth_bytes_per_s=n * 8 / t.median_s, shared_mem_bytes=smem,
                           model_blocks_per_sm=occ.active_blocks_per_sm,
                           driver_blocks_per_sm=backend.max_active_blocks(kernel, b, smem), **t.to_dict()))


def run_l2_read(backend: Any, footprints: Sequence[int], *, gpu_id: str | None, emit: Callable[[dict[str, Any]], None],
                repeats: int = 5, bytes_per_run: int = 4 << 30, deadline: float = float("inf")) -> None:
    from validation.observers import time_with_events

    cp = backend.cp
    kernel = backend.compile_kernel(src.L2_READ, "l2_read")
    chunk_bytes = src.L2_READ_BLOCK * src.L2_READ_PER_THREAD * 8
    sink = cp.zeros(1, dtype=cp.float64)
    for fp in footprints:
        if time.monotonic() > deadline:
            break
        chunks = max(1, fp // chunk_bytes)
        buf = cp.ones(chunks * chunk_bytes // 8, dtype=cp.float64)
        blocks = max(chunks, bytes_per_run // chunk_bytes)
        blocks = (blocks + chunks - 1) // chunks * chunks  # whole laps over the buffer
        def run(_i: int, blocks: int = blocks, buf: Any = buf, chunks: int = chunks) -> None:
            backend.launch(kernel, (blocks,), (src.L2_READ_BLOCK,), (buf, sink, np.int64(chunks)))

        t = time_with_events(run, device=backend, repeats=repeats, warmup=1, before_each=_hold(backend))
        emit(result_record("l2-read", gpu_id, footprint_bytes=int(chunks * chunk_bytes),
                           bandwidth_bytes_per_s=blocks * chunk_bytes / t.median_s, blocks=int(blocks), **t.to_dict()))
        del buf


def run_persisting_l2(backend: Any, *, gpu_id: str | None, emit: Callable[[dict[str, Any]], None], repeats: int = 5,
                      deadline: float = float("inf")) -> None:
    """Hot-buffer re-read bandwidth after a cold stream, with and without a persisting window."""
    from validation.observers import time_with_events

    cp = backend.cp
    limit = backend.persisting_l2_max_bytes
    if limit <= 0:
        emit(result_record("persisting-l2", gpu_id, skipped="persistingL2CacheMaxSize is 0 (MIG, or not supported)"))
        return
    kernel = backend.compile_kernel(src.STREAM_READ, "stream_read")
    cold = cp.ones(4 * backend.l2_size_bytes // 8, dtype=cp.float64)
    sink = cp.zeros(1, dtype=cp.float64)
    n_cold = np.int64(cold.size)
    stream = backend.new_stream()  # ordered after the buffers' fills on the default stream
    backend.set_persisting_l2_limit(limit)
    try:
        for frac in (0.25, 0.5, 0.75, 1.0, 1.5):
            if time.monotonic() > deadline:
                break
            hot_bytes = int(limit * frac) // 8 * 8
            hot = cp.ones(hot_bytes // 8, dtype=cp.float64)
            n_hot = np.int64(hot.size)
            for window in (False, True):
                hit_ratio = min(1.0, limit / hot_bytes) if window else 0.0
                backend.set_access_policy_window(stream, hot.data.ptr, hot_bytes if window else 0, hit_ratio)
                with stream:
                    backend.launch(kernel, ((hot.size + 255) // 256,), (256,), (hot, sink, n_hot), stream=stream)

                    def evict(_i: int) -> None:
                        backend.launch(kernel, ((cold.size + 255) // 256,), (256,), (cold, sink, n_cold), stream=stream)
                        backend.hold(stream, HOLD_S)

                    def read_hot(_i: int, hot: Any = hot, n_hot: Any = n_hot) -> None:
                        backend.launch(kernel, ((hot.size + 255) // 256,), (256,), (hot, sink, n_hot), stream=stream)

                    t = time_with_events(read_hot, device=backend, repeats=repeats, warmup=1, before_each=evict,
                                         stream=stream)
                emit(result_record("persisting-l2", gpu_id, hot_bytes=hot_bytes, window=window, hit_ratio=hit_ratio,
                                   persisting_limit_bytes=limit, bandwidth_bytes_per_s=hot_bytes / t.median_s,
                                   time_s=t.median_s, **t.to_dict()))
                backend.set_access_policy_window(stream, hot.data.ptr, 0, 0.0)
                backend.reset_persisting_l2()
            del hot
    finally:
        backend.set_persisting_l2_limit(0)


def run_microbenchmarks(out: str | Path, *, gpu: str | None = None, quick: bool = False,
                        kinds: Sequence[str] | None = None, budget_s: float | None = None,
                        backend: Any = None) -> dict[str, Any]:
    """Run the microbenchmarks on device 0, appending to ``out``; returns a summary."""
    from validation.backends import CupyBackend

    unknown = sorted(set(kinds or ()) - set(KINDS))
    if unknown:
        raise InputError(f"unknown microbenchmark kinds {unknown}; valid choices: {', '.join(KINDS)}")
    kinds = list(kinds or KINDS)
    be = backend or CupyBackend(0)
    spec = _spec_for(be, gpu)
    gpu_id = spec.id
    t0 = time.monotonic()
    deadline = t0 + budget_s if budget_s else float("inf")
    counts: dict[str, int] = {}

    def emit(rec: dict[str, Any]) -> None:
        counts[rec["benchmark"]] = counts.get(rec["benchmark"], 0) + 1
        append_record(out, {**rec, "clocks": be.clocks()})

    env = be.environment()
    append_record(out, {"benchmark": "env", "gpu": gpu_id, "env": env})
    share = {k: (budget_s or 1e9) * w for k, w in
             {"pointer-chase": 0.35, "stream-read": 0.25, "l2-read": 0.25, "persisting-l2": 0.15}.items()}
    phase_start = time.monotonic()
    for kind in KINDS:
        if kind not in kinds:
            continue
        phase_deadline = min(deadline, time.monotonic() + share[kind]) if budget_s else deadline
        if kind == "pointer-chase":
            fps = chase_order(chase_footprints(chase_max_bytes(be.l2_size_bytes or spec.l2_size_bytes),
                                               factor=1.6 if quick else 1.25))
            run_pointer_chase(be, fps, gpu_id=gpu_id, emit=emit, deadline=phase_deadline,
                              max_steps=QUICK_CHASE_MAX_STEPS if quick else 1 << 20)
        elif kind == "stream-read":
            sizes = list(range(64, 1025, 128)) if quick else list(range(32, 1025, 32))
            run_stream_read(be, spec, sizes, gpu_id=gpu_id, emit=emit, deadline=phase_deadline)
        elif kind == "l2-read":
            run_l2_read(be, l2_footprints(spec.l2_size_bytes, quick=quick), gpu_id=gpu_id, emit=emit,
                        deadline=phase_deadline)
        else:
            run_persisting_l2(be, gpu_id=gpu_id, emit=emit, deadline=phase_deadline)
    return {"out": str(out), "gpu": gpu_id, "device": env.get("device_name"), "points": counts,
            "seconds": round(time.monotonic() - phase_start, 1)}
