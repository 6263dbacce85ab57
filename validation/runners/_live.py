"""The live runner: each configuration is verified against NumPy on the GPU, then timed.

Per configuration, once: the NVRTC check (a register cap needs NVRTC 12.4+), compilation
(one :class:`kernels.EmbeddingBagLauncher`), and for every distinct table of the workload
the prepared calls (:meth:`kernels.EmbeddingBagLauncher.prepare`: arguments checked, buffers
allocated). Then, with that very launcher and those very buffers:

1. verification: each prepared call is run once and its output compared with
   :func:`reference_embedding_bag` (NumPy, float64) before any timing starts;
2. timing (:func:`validation.observers.time_with_events`): between the two events only the
   call's kernel launches (validation pass, pinning pass or index remap, lookup); before each
   call, outside the events: for ``evict-last-prefetch`` the persisting lines are reset (so
   the pinning pass loads its rows as the model assumes), the L2 is flushed by a read of twice
   its size (unless warm-cache timing is asked for), and a hold kernel keeps the stream busy
   while the host enqueues the timed call; cold-cache calls rotate over ``rotations`` copies of
   the index buffers, warm-cache calls reuse one. ``access-policy-window`` calls run inside
   their persisting window, set once around the table's calls (the pinned rows stay resident
   from call to call, as CONTRACT.md's "none of that table's rows except the pinned ones");
3. after the last stop event, the validation pass's result is read back: a bad index there
   makes the configuration a failure.

The stage's ``time_s`` is the sum over tables of ``count x`` the table call's median. Records
are appended to the measurement file as they come (CONTRACT.md format plus the environment
and a clocks snapshot before and after); a re-run skips configurations already in the file.
A configuration that does not compile, launch or verify is never timed: it goes to
``<out>.failures.jsonl`` with the stage and the error, and the sweep goes on.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

import perfmodel
from perfmodel import InputError, KernelConfig, Table, Workload
from validation._records import append_record, done_keys, record_key

__all__ = [
    "LiveRunner",
    "is_sticky_cuda_error",
    "measure_configs",
    "reference_embedding_bag",
    "table_inputs",
    "workload_mapping",
]

#: CUDA errors after which the context is unusable: every later launch fails too
_STICKY = ("cudaErrorIllegalAddress", "cudaErrorAssert", "cudaErrorLaunchFailure", "cudaErrorIllegalInstruction",
           "cudaErrorMisalignedAddress", "CUDA_ERROR_ILLEGAL_ADDRESS", "CUDA_ERROR_ASSERT", "CUDA_ERROR_LAUNCH_FAILED",
           "CUDA_ERROR_ILLEGAL_INSTRUCTION", "CUDA_ERROR_MISALIGNED_ADDRESS")

#: what every record's ``timing`` field says about the protocol
TIMING_PROTOCOL = ("CUDA events around one table call's kernel launches only (arguments checked and buffers "
                   "allocated once per configuration); a hold kernel before the start event; warm-up until two "
                   "successive medians agree within 2%; median of the repeats")


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


def is_sticky_cuda_error(message: str) -> bool:
    """Whether an error leaves the CUDA context unusable (an illegal address, a device assert)."""
    return any(s in message for s in _STICKY)


def _tolerance(dtype: str, pooling: float) -> tuple[float, float]:
    """(rtol, atol) for a sum of ``pooling`` standard-normal rows of ``dtype``."""
    eps = 1e-3 if dtype == "float16" else 1e-6
    return 50 * eps, 50 * eps * max(1.0, float(np.sqrt(pooling)))


def _first_line(exc: BaseException, limit: int = 2000) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= limit else text[:limit] + " ..."


@dataclasses.dataclass
class _TableData:
    """One table on the device, uploaded once for every configuration that uses it."""

    weight: Any
    #: index and offset buffers, one pair per rotation (same content)
    indices: list[Any]
    offsets: list[Any]
    reference: npt.NDArray[np.float64]
    indices_host: npt.NDArray[np.int64]
    order: npt.NDArray[np.int64]
    row_map: npt.NDArray[np.int64]
    hot_rows: Any = None
    weight_by_frequency: Any = None
    row_map_device: Any = None


class _ConfigFailure(Exception):
    """A configuration that failed at one stage (compile, verify, launch, bounds)."""

    def __init__(self, stage: str, message: str, max_abs_error: float = float("inf")) -> None:
        super().__init__(message)
        self.stage = stage
        self.max_abs_error = max_abs_error


class LiveRunner:
    """Verify, then time, kernel configurations on one device (``backend``, default GPU 0)."""

    def __init__(self, *, gpu: str | None = None, repeats: int = 20, warmup: int = 3, warm_cache: bool = False,
                 rotations: int = 4, seed: int = 0, backend: Any = None, hold_s: float = 200e-6,
                 settle_rel: float = 0.02, max_warmup: int = 60) -> None:
        if repeats < 1 or warmup < 0 or rotations < 1 or hold_s < 0 or max_warmup < warmup:
            raise InputError(f"`repeats >= 1, 0 <= warmup <= max_warmup, rotations >= 1, hold_s >= 0` must hold, but got "
                             f"(repeats={repeats}, warmup={warmup}, max_warmup={max_warmup}, rotations={rotations}, "
                             f"hold_s={hold_s})")
        self.gpu = gpu
        self.repeats = repeats
        self.warmup = warmup
        self.warm_cache = warm_cache
        #: index-buffer copies the timed calls cycle over (1 with a warm cache: no rotation)
        self.rotations = 1 if warm_cache else rotations
        self.seed = seed
        self.hold_s = hold_s
        self.settle_rel = settle_rel
        self.max_warmup = max_warmup
        self._backend = backend
        self._stream: Any = None
        self._tables: dict[tuple[Table, int], _TableData] = {}

    # ---- set-up -----------------------------------------------------------------------------
    @property
    def backend(self) -> Any:
        if self._backend is None:
            from validation.backends import CupyBackend

            self._backend = CupyBackend(0)
        return self._backend

    @property
    def stream(self) -> Any:
        """The created stream every verified and timed call runs on."""
        if self._stream is None:
            self._stream = self.backend.new_stream()
        return self._stream

    def _gpu_id(self) -> str:
        gid = self.gpu or self.backend.gpu_id()
        if gid is None:
            raise InputError(f"cannot tell which recperf GPU {self.backend.name!r} is; pass --gpu")
        return str(gid)

    def _table_data(self, table: Table, batch_size: int) -> _TableData:
        key = (table, batch_size)
        if key not in self._tables:
            from kernels import frequency_remap

            dev = self.backend
            rng = np.random.default_rng(self.seed)
            np_dtype = np.float16 if table.dtype == "float16" else np.float32
            weight = rng.standard_normal((table.rows, table.dim), dtype=np.float32).astype(np_dtype)
            idx, off = table_inputs(table, batch_size)
            order, row_map = frequency_remap(idx, table.rows)
            self._tables[key] = _TableData(
                weight=dev.upload(weight),
                indices=[dev.upload(idx) for _ in range(self.rotations)],
                offsets=[dev.upload(off) for _ in range(self.rotations)],
                reference=reference_embedding_bag(weight, idx, off),
                indices_host=idx, order=np.asarray(order, np.int64), row_map=np.asarray(row_map, np.int64),
            )
        return self._tables[key]

    def _pin_inputs(self, kernel: KernelConfig, data: _TableData) -> tuple[Any, Any]:
        """(weight as stored, hot_rows argument) for ``kernel``'s pin method, built once per table:
        row ids hottest first (evict-last), or the frequency-ordered table and its row map."""
        dev = self.backend
        if kernel.pinned_row_fraction <= 0:
            return data.weight, None
        if kernel.pin_method == "evict-last-prefetch":
            if data.hot_rows is None:
                data.hot_rows = dev.upload(data.order)
            return data.weight, data.hot_rows
        if data.weight_by_frequency is None:
            data.weight_by_frequency = dev.take_rows(data.weight, dev.upload(data.order))
            data.row_map_device = dev.upload(data.row_map)
        return data.weight_by_frequency, data.row_map_device

    # ---- one configuration ---------------------------------------------------------------
    def _prepare(self, workload: Workload, kernel: KernelConfig) -> list[tuple[Table, _TableData, list[Any]]]:
        """Compile once per (dim, dtype) and prepare every rotation's call of every distinct table."""
        import kernels as kernels_pkg

        problem = kernels_pkg.nvrtc_problem(kernel, self.backend.nvrtc_version())
        if problem is not None:
            raise _ConfigFailure("compile", problem)
        launchers: dict[tuple[int, str], Any] = {}
        out = []
        for t in dict.fromkeys(workload.tables):
            if (t.dim, t.dtype) not in launchers:
                try:
                    launchers[(t.dim, t.dtype)] = kernels_pkg.EmbeddingBagLauncher(
                        kernel, dim=t.dim, dtype=t.dtype, index_dtype="int64", device=self.backend)
                except Exception as exc:  # CuPy's CompileException is not a RuntimeError
                    raise _ConfigFailure("compile", _first_line(exc)) from None
            launcher = launchers[(t.dim, t.dtype)]
            data = self._table_data(t, workload.batch_size)
            weight, hot = self._pin_inputs(kernel, data)
            prepared = [launcher.prepare(weight, data.indices[r], data.offsets[r], mode="sum", hot_rows=hot)
                        for r in range(self.rotations)]
            out.append((t, data, prepared))
        return out

    def _verify(self, table: Table, data: _TableData, prepared: Sequence[Any]) -> float:
        """Run each prepared call once and compare with NumPy; the largest |error|."""
        dev = self.backend
        stream = self.stream
        worst = 0.0
        ref = data.reference
        rtol, atol = _tolerance(table.dtype, table.mean_pooling)
        with prepared[0].window(stream):
            for p in prepared:
                p.enqueue(stream)
                dev.synchronize(stream)
                bad = p.bad_position(stream)
                if bad is not None:
                    raise _ConfigFailure("verify", f"the validation pass reports index position {bad} out of range "
                                                   "on valid indices")
                got = np.asarray(dev.to_host(p.output, stream), dtype=np.float64)
                if got.shape != ref.shape:
                    raise _ConfigFailure("verify", f"output shape {got.shape} != reference {ref.shape}")
                err = np.abs(got - ref)
                worst = max(worst, float(err.max(initial=0.0)))
                if not np.all(err <= atol + rtol * np.abs(ref)):
                    pos = np.unravel_index(int(np.argmax(err - rtol * np.abs(ref))), err.shape)
                    raise _ConfigFailure("verify", f"output differs from NumPy at bag {pos[0]}, column {pos[1]}: "
                                                   f"{got[pos]!r} vs {ref[pos]!r} (rtol {rtol:g}, atol {atol:g})", worst)
        return worst

    def _time(self, kernel: KernelConfig, prepared: Sequence[Any]) -> Any:
        from validation.observers import time_with_events

        dev = self.backend
        stream = self.stream
        evict_last = kernel.pinned_row_fraction > 0 and kernel.pin_method == "evict-last-prefetch"

        def before(_i: int) -> None:
            if evict_last:
                dev.reset_persisting_l2()
            if not self.warm_cache:
                dev.flush_l2(stream)
            if self.hold_s:
                dev.hold(stream, self.hold_s)

        def run(i: int) -> None:
            prepared[i % len(prepared)].enqueue(stream)

        with prepared[0].window(stream):
            result = time_with_events(run, device=dev, repeats=self.repeats, warmup=self.warmup, before_each=before,
                                      stream=stream, settle_rel=self.settle_rel, max_warmup=self.max_warmup)
        if evict_last:
            dev.reset_persisting_l2()  # leave no evict-last lines to the next configuration
        for p in prepared:  # after the last stop event
            bad = p.bad_position(stream)
            if bad is not None:
                raise _ConfigFailure("bounds", f"the validation pass reports index position {bad} out of range "
                                               "during the timed calls")
        return result

    def verify(self, workload: Workload, kernel: KernelConfig) -> tuple[bool, float, str]:
        """(ok, max |gpu - numpy|, message) over every distinct table, with the timed launcher."""
        try:
            tables = self._prepare(workload, kernel)
            worst = max((self._verify(t, d, p) for t, d, p in tables), default=0.0)
        except _ConfigFailure as f:
            return False, f.max_abs_error, f"{f.stage}: {f}"
        return True, worst, "ok"

    def measure(self, workload: Workload, kernel: KernelConfig) -> dict[str, Any]:
        """Verify, then time; the fields of one measurement record (without gpu/workload).

        A failure gives ``{"verified": False, "stage", "error", "max_abs_error"}`` and is never timed.
        """
        dev = self.backend
        try:
            try:
                tables = self._prepare(workload, kernel)
                worst = max((self._verify(t, d, p) for t, d, p in tables), default=0.0)
                clocks_before = dev.clocks()
                timings = {t: self._time(kernel, p) for t, _, p in tables}
                clocks_after = dev.clocks()
            except _ConfigFailure:
                raise
            except Exception as exc:  # a launch or driver error: recorded, the sweep goes on
                raise _ConfigFailure("launch", _first_line(exc)) from None
        except _ConfigFailure as f:
            return {"verified": False, "stage": f.stage, "error": str(f), "max_abs_error": f.max_abs_error}
        per_table = [timings[t].median_s for t in workload.tables]
        total = sum(t.count * timings[t].median_s for t in workload.tables)
        nvrtc = dev.nvrtc_version()
        return {"time_s": total, "table_times_s": per_table, "verified": True, "max_abs_error": worst,
                "repeats": self.repeats, "warmup": self.warmup, "warm_cache": self.warm_cache,
                "rotations": self.rotations, "hold_s": self.hold_s,
                "timing": TIMING_PROTOCOL + ("; warm cache: no L2 flush, one index buffer" if self.warm_cache
                                             else "; L2 flushed by a read of twice its size and index buffers "
                                                  "rotated between calls"),
                "table_timings": [timings[t].to_dict() for t in dict.fromkeys(workload.tables)],
                "clocks": {"before": clocks_before, "after": clocks_after},
                "nvrtc_version": f"{nvrtc[0]}.{nvrtc[1]}"}

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
        stopped_by_error: str | None = None
        failures_by_stage: dict[str, int] = {}
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
                stage = str(fields.get("stage", "verify"))
                failures_by_stage[stage] = failures_by_stage.get(stage, 0) + 1
                append_record(str(out_p) + ".failures.jsonl", {**rec, **fields, "timestamp": stamp, "env": env})
                if is_sticky_cuda_error(str(fields.get("error", ""))):
                    stopped_by_error = str(fields["error"])[:300]
                    break
                continue
            full = {**rec, "time_s": fields.pop("time_s"), **fields, "timestamp": stamp, "env": env}
            if note:
                full["note"] = note
            append_record(out_p, full)
            measured += 1
        return {"out": str(out_p), "gpu": gpu_id, "measured": measured, "skipped_done": skipped,
                "failed": failed, "failures_by_stage": failures_by_stage, "stopped_by_deadline": stopped,
                "stopped_by_error": stopped_by_error}


def measure_configs(workload: Workload, configs: Sequence[KernelConfig], gpu: Any, *,
                    out: str | os.PathLike[str] | None = "out/measurements/search-gpu.jsonl",
                    repeats: int = 20, warmup: int = 3, runner: LiveRunner | None = None) -> list[float]:
    """Measured ``time_s`` of each configuration on this machine's GPU (the search's ``gpu`` fidelity).

    Each is verified, then timed, by a :class:`LiveRunner`; records are appended to ``out``
    (None: not kept). A configuration that fails (compile, launch, verification) measures
    ``inf`` (never chosen). ``gpu`` (an id or GPUSpec) must be the device this runs on.
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
