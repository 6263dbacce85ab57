"""The live runner: each configuration is verified against NumPy on the GPU, then timed.

For every distinct table of the workload, one table call is timed (CUDA events, warm-up,
median of N). Between repetitions the L2 is flushed and the next of ``rotations`` copies
of the index buffers is used, unless warm-cache timing is asked for; so each timed call
starts, as the model assumes (CONTRACT.md), with an L2 that holds none of the table's rows.
The stage's ``time_s`` is the sum over tables of ``count x`` the table call's median.

Records are appended to the measurement file as they come (CONTRACT.md format plus the
environment); a re-run skips configurations already in the file. Configurations whose
output is wrong are not timed: they go to ``<out>.failures.jsonl``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

import perfmodel
from perfmodel import InputError, KernelConfig, Table, Workload
from validation._records import append_record, done_keys, record_key

__all__ = ["LiveRunner", "measure_configs", "reference_embedding_bag", "table_inputs", "workload_mapping"]


def table_inputs(table: Table, batch_size: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """``(indices, offsets)`` of one call of ``table``: the same stream the model predicts."""
    call = perfmodel.table_call(table, batch_size)
    return np.asarray(call.indices, dtype=np.int64), np.asarray(call.offsets, dtype=np.int64)


def reference_embedding_bag(weight: npt.NDArray[Any], indices: npt.NDArray[np.int64],
                            offsets: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """``embedding_bag(mode="sum", include_last_offset=False)`` in NumPy, accumulated in float64."""
    w = np.asarray(weight, dtype=np.float64)
    idx = np.asarray(indices, dtype=np.int64)
    off = np.asarray(offsets, dtype=np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= w.shape[0]):
        bad = int(np.argmax((idx < 0) | (idx >= w.shape[0])))
        raise IndexError(f"index {int(idx[bad])} at position {bad} is out of range for {w.shape[0]} rows")
    out = np.zeros((off.size, w.shape[1]), dtype=np.float64)
    if idx.size == 0:
        return out
    lengths = np.diff(np.append(off, idx.size))
    nonempty = lengths > 0
    sums = np.add.reduceat(w[idx], off[nonempty], axis=0)
    out[nonempty] = sums
    return out


def workload_mapping(workload: Workload) -> dict[str, Any]:
    """A workload as an inline table (the workload TOML's keys); trace paths stay absolute."""
    def clean(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items() if v is not None}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        return x

    return clean(dataclasses.asdict(workload))  # type: ignore[no-any-return]


def _tolerance(dtype: str, pooling: float) -> tuple[float, float]:
    """(rtol, atol) for a sum of ``pooling`` standard-normal rows of ``dtype``."""
    eps = 1e-3 if dtype == "float16" else 1e-6
    return 50 * eps, 50 * eps * max(1.0, float(np.sqrt(pooling)))


def _kernels_api() -> Any:
    """The GPU side of :mod:`kernels`: ``EmbeddingBagLauncher``, ``embedding_bag_gpu``, ``frequency_remap``."""
    import kernels

    return kernels


class LiveRunner:
    """Verify, then time, kernel configurations on device 0.

    Verification runs ``kernels.embedding_bag_gpu`` (the whole launch sequence, result copied
    back) against :func:`reference_embedding_bag`. Timing runs a
    ``kernels.EmbeddingBagLauncher`` compiled once per configuration, on tables prepared
    once as ``embedding_bag_gpu`` prepares them (hot-row ids for the evict-last pass; the
    frequency-ordered table and its row map for the access-policy window), so only the
    launch sequence (validation pass, pinning pass, lookup) falls between the events.
    """

    def __init__(self, *, gpu: str | None = None, repeats: int = 20, warmup: int = 3, warm_cache: bool = False,
                 rotations: int = 4, seed: int = 0, backend: Any = None, kernels_api: Any = None,
                 timer: Callable[..., Any] | None = None) -> None:
        if repeats < 1 or warmup < 0 or rotations < 1:
            raise InputError(f"`repeats >= 1, warmup >= 0, rotations >= 1` must hold, but got "
                             f"(repeats={repeats}, warmup={warmup}, rotations={rotations})")
        self.gpu = gpu
        self.repeats = repeats
        self.warmup = warmup
        self.warm_cache = warm_cache
        self.rotations = rotations
        self.seed = seed
        self._backend = backend
        self._kernels = kernels_api
        self._timer = timer
        self._tables: dict[tuple[Table, int], Any] = {}
        self._launchers: dict[tuple[KernelConfig, int, str], Any] = {}

    # ---- set-up -----------------------------------------------------------------------------
    @property
    def backend(self) -> Any:
        if self._backend is None:
            from validation.backends import CupyBackend

            self._backend = CupyBackend(0)
        return self._backend

    @property
    def kernels(self) -> Any:
        if self._kernels is None:
            self._kernels = _kernels_api()
        return self._kernels

    def _gpu_id(self) -> str:
        gid = self.gpu or self.backend.gpu_id()
        if gid is None:
            raise InputError(f"cannot tell which recperf GPU {self.backend.name!r} is; pass --gpu")
        return str(gid)

    def _table_data(self, table: Table, batch_size: int) -> dict[str, Any]:
        key = (table, batch_size)
        if key not in self._tables:
            cp = self.backend.cp
            rng = np.random.default_rng(self.seed)
            np_dtype = np.float16 if table.dtype == "float16" else np.float32
            weight = rng.standard_normal((table.rows, table.dim), dtype=np.float32).astype(np_dtype)
            idx, off = table_inputs(table, batch_size)
            order, row_map = self.kernels.frequency_remap(idx, table.rows)
            w_gpu = cp.asarray(weight)
            self._tables[key] = {
                "weight": w_gpu,
                "indices": [cp.asarray(idx) for _ in range(self.rotations)],
                "offsets": [cp.asarray(off) for _ in range(self.rotations)],
                # evict-last-prefetch: row ids hottest first; access-policy-window: the
                # frequency-ordered table and row map (as kernels.embedding_bag_gpu does)
                "hot_rows": cp.asarray(np.asarray(order, dtype=np.int64)),
                "weight_by_frequency": cp.ascontiguousarray(w_gpu[cp.asarray(order)]),
                "row_map": cp.asarray(np.asarray(row_map, dtype=np.int64)),
                "reference": reference_embedding_bag(weight, idx, off),
                "indices_host": idx,
                "offsets_host": off,
            }
        data: dict[str, Any] = self._tables[key]
        return data

    def _launcher(self, kernel: KernelConfig, table: Table) -> Any:
        key = (kernel, table.dim, table.dtype)
        if key not in self._launchers:
            self._launchers[key] = self.kernels.EmbeddingBagLauncher(kernel, dim=table.dim, dtype=table.dtype,
                                                                     index_dtype="int64")
        return self._launchers[key]

    def _call(self, kernel: KernelConfig, table: Table, data: dict[str, Any], i: int) -> Any:
        launch = self._launcher(kernel, table)
        r = i % self.rotations
        weight, hot = data["weight"], None
        if kernel.pinned_row_fraction > 0:
            if kernel.pin_method == "access-policy-window":
                weight, hot = data["weight_by_frequency"], data["row_map"]
            else:
                hot = data["hot_rows"]
        return launch(weight, data["indices"][r], data["offsets"][r], mode="sum", hot_rows=hot)

    # ---- one configuration ---------------------------------------------------------------
    def verify(self, workload: Workload, kernel: KernelConfig) -> tuple[bool, float, str]:
        """(ok, max |gpu - numpy|, message) over every distinct table."""
        worst = 0.0
        for t in workload.tables:
            data = self._table_data(t, workload.batch_size)
            try:
                out = self.kernels.embedding_bag_gpu(kernel, data["weight"], data["indices"][0], data["offsets"][0],
                                                     mode="sum")
            except (IndexError, InputError, RuntimeError) as exc:
                return False, float("inf"), f"the kernel failed: {type(exc).__name__}: {exc}"
            got = np.asarray(self.backend.cp.asnumpy(out), dtype=np.float64)
            ref = data["reference"]
            if got.shape != ref.shape:
                return False, float("inf"), f"output shape {got.shape} != reference {ref.shape}"
            err = np.abs(got - ref)
            rtol, atol = _tolerance(t.dtype, t.mean_pooling)
            worst = max(worst, float(err.max(initial=0.0)))
            if not np.all(err <= atol + rtol * np.abs(ref)):
                pos = np.unravel_index(int(np.argmax(err - rtol * np.abs(ref))), err.shape)
                return False, worst, (f"output differs from NumPy at bag {pos[0]}, column {pos[1]}: "
                                      f"{got[pos]!r} vs {ref[pos]!r} (rtol {rtol:g}, atol {atol:g})")
        return True, worst, "ok"

    def time_table(self, workload: Workload, table: Table, kernel: KernelConfig) -> Any:
        from validation.observers import time_with_events

        timer = self._timer or time_with_events
        data = self._table_data(table, workload.batch_size)
        pinned = kernel.pinned_row_fraction > 0 and kernel.pin_method == "access-policy-window"

        def before(_i: int) -> None:
            if pinned:
                # without cuda-python there is nothing to reset; the flush still evicts normal lines
                with contextlib.suppress(Exception):
                    self.backend.reset_persisting_l2()
            if not self.warm_cache:
                self.backend.flush_l2()

        return timer(lambda i: self._call(kernel, table, data, i), repeats=self.repeats, warmup=self.warmup,
                     before_each=before)

    def measure(self, workload: Workload, kernel: KernelConfig) -> dict[str, Any]:
        """Verify, then time; the fields of one measurement record (without gpu/workload)."""
        ok, err, msg = self.verify(workload, kernel)
        if not ok:
            return {"verified": False, "max_abs_error": err, "error": msg}
        per_table = []
        total = 0.0
        first: dict[str, Any] = {}
        for t in workload.tables:
            res = self.time_table(workload, t, kernel)
            per_table.append(res.median_s)
            total += t.count * res.median_s
            if not first:
                first = res.to_dict()
        return {"time_s": total, "table_times_s": per_table, "verified": True, "max_abs_error": err,
                "repeats": self.repeats, "warmup": self.warmup, "warm_cache": self.warm_cache,
                "rotations": self.rotations, "timing": "CUDA events around one table call; median of repeats; "
                + ("warm cache" if self.warm_cache else "L2 flushed and index buffers rotated between repeats"),
                "first_table": first}

    # ---- a sweep ---------------------------------------------------------------------------
    def sweep(self, workload: Workload, configs: Sequence[KernelConfig], *, out: str | os.PathLike[str],
              workload_path: str | os.PathLike[str] | None = None, deadline: float | None = None,
              note: str | None = None) -> dict[str, Any]:
        """Measure ``configs`` in order, appending records to ``out``; skip those already there."""
        out_p = Path(out)
        base = out_p.resolve().parent
        wl_field: Any = workload_mapping(workload)
        if workload_path is not None:
            wl_field = os.path.relpath(Path(workload_path).resolve(), base)
        gpu_id = self._gpu_id()
        done = done_keys(out_p)
        env = self.backend.environment()
        measured = skipped = failed = 0
        stopped = False
        for k in configs:
            if deadline is not None and time.monotonic() > deadline:
                stopped = True
                break
            rec: dict[str, Any] = {"gpu": gpu_id, "workload": wl_field, "kernel": k.to_dict(),
                                   "warm_cache": self.warm_cache}
            if record_key(rec, base) in done:
                skipped += 1
                continue
            fields = self.measure(workload, k)
            stamp = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
            if not fields.get("verified"):
                failed += 1
                append_record(str(out_p) + ".failures.jsonl", {**rec, **fields, "timestamp": stamp})
                continue
            full = {**rec, "time_s": fields.pop("time_s"), **fields, "timestamp": stamp, "env": env}
            if note:
                full["note"] = note
            append_record(out_p, full)
            measured += 1
        return {"out": str(out_p), "gpu": gpu_id, "measured": measured, "skipped_done": skipped,
                "failed_verification": failed, "stopped_by_deadline": stopped}


def measure_configs(workload: Workload, configs: Sequence[KernelConfig], gpu: Any, *,
                    out: str | os.PathLike[str] | None = "out/measurements/search-gpu.jsonl",
                    repeats: int = 20, warmup: int = 3, runner: LiveRunner | None = None) -> list[float]:
    """Measured ``time_s`` of each configuration on this machine's GPU (the search's ``gpu`` fidelity).

    Each is verified, then timed, by a :class:`LiveRunner`; records are appended to ``out``
    (None: not kept). A configuration whose output is wrong measures ``inf`` (never chosen).
    ``gpu`` (an id or GPUSpec) must be the device this runs on.
    """
    import perfmodel

    spec = perfmodel.get_gpu(gpu)
    r = runner or LiveRunner(gpu=spec.id, repeats=repeats, warmup=warmup)
    device_id = r.backend.gpu_id()
    if device_id is not None and device_id != spec.id and not spec.id.startswith(device_id):
        raise InputError(f"fidelity `gpu` measures this machine's GPU ({device_id}, {r.backend.name!r}), "
                         f"but the search targets {spec.id!r}")
    times: list[float] = []
    env = r.backend.environment() if out is not None else {}
    for k in configs:
        fields = r.measure(workload, k)
        if not fields.get("verified"):
            times.append(float("inf"))
            continue
        times.append(float(fields["time_s"]))
        if out is not None:
            stamp = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
            append_record(out, {"gpu": spec.id, "workload": workload_mapping(workload), "kernel": k.to_dict(),
                                **fields, "timestamp": stamp, "env": env})
    return times
