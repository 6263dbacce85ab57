"""Objective values of kernel configurations: the model (``predict_batch``), the simulator, or
measurements on a GPU (live through a measuring function the caller passes, such as
``validation.measure_configs``, or replayed from a measurement file).

The search never models performance itself: times come from :func:`perfmodel.predict_batch`
(fidelity ``model``), :func:`perfmodel.simulate` (``sim``) or measurements (``gpu``). The
second objective, the L2 bytes set aside for pinned rows, is a definition, not a prediction:
tables run one after another and pinning applies per table call, so the set-aside is the
largest table's pinned bytes, ``max_t floor(f * rows_t) * row_bytes_t``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

import perfmodel
from perfmodel import GPUSpec, InputError, KernelConfig, Workload

__all__ = [
    "FIDELITIES",
    "OBJECTIVES",
    "Evaluation",
    "Measure",
    "evaluate_model",
    "l2_bytes_set_aside",
    "parse_objectives",
    "read_measurements",
    "replay_times",
]

OBJECTIVES = ("time", "l2-bytes")
FIDELITIES = ("model", "sim", "gpu")

#: a function that measures configurations on this machine's GPU: (workload, configurations,
#: gpu) -> one time (s) per configuration, ``inf`` for one whose output was wrong
Measure = Callable[[Workload, list[KernelConfig], GPUSpec], Sequence[float]]


def parse_objectives(objectives: str | Sequence[str]) -> tuple[str, ...]:
    """``"time"`` or ``"time,l2-bytes"`` (or a sequence of names) -> a tuple starting with time."""
    names = tuple(o.strip() for o in (objectives.split(",") if isinstance(objectives, str) else objectives))
    bad = [n for n in names if n not in OBJECTIVES]
    if bad:
        raise InputError(f"unknown objectives {bad}; valid choices: {', '.join(OBJECTIVES)}")
    if not names or names[0] != "time" or len(set(names)) != len(names):
        raise InputError(
            f"objectives must be `time` or `time,l2-bytes` (time first, no repeats), but got {','.join(names)!r}"
        )
    return names


def l2_bytes_set_aside(workload: Workload, configs: Sequence[KernelConfig]) -> npt.NDArray[np.float64]:
    """L2 bytes each configuration sets aside for pinned rows (its largest table's)."""
    f = np.array([c.pinned_row_fraction for c in configs], dtype=np.float64)
    out = np.zeros(len(configs), dtype=np.float64)
    for t in workload.tables:
        out = np.maximum(out, np.floor(f * t.rows + 1e-9) * t.row_bytes)
    return out


@dataclass(frozen=True, kw_only=True)
class Evaluation:
    """Objective values of a batch: ``time_s`` (inf where infeasible), ``l2_bytes``, and why."""

    time_s: npt.NDArray[np.float64]
    l2_bytes: npt.NDArray[np.float64]
    #: "" where feasible, else the reason
    infeasible: tuple[str, ...]

    @property
    def feasible(self) -> npt.NDArray[np.bool_]:
        return np.array([r == "" for r in self.infeasible], dtype=bool)


def evaluate_model(workload: Workload, gpu: GPUSpec, configs: Sequence[KernelConfig]) -> Evaluation:
    """Predicted times of ``configs`` in one :func:`perfmodel.predict_batch` call.

    A configuration the model rejects (an :class:`InputError`, or a time that is not a
    finite positive number, e.g. a block that cannot be resident) is infeasible, never an
    error: the batch is then re-run one configuration at a time to find which.
    """
    predict_batch = perfmodel.predict_batch
    configs = list(configs)
    l2 = l2_bytes_set_aside(workload, configs)
    try:
        times = np.asarray(predict_batch(workload, configs, gpu), dtype=np.float64).reshape(-1)
    except InputError:
        times = np.full(len(configs), np.nan)
        reasons = []
        for i, c in enumerate(configs):
            try:
                times[i] = float(np.asarray(predict_batch(workload, [c], gpu), dtype=np.float64).reshape(-1)[0])
                reasons.append("")
            except InputError as exc:
                reasons.append(str(exc).splitlines()[0] if str(exc) else "rejected by the model")
        return _finish(times, l2, reasons)
    if times.shape != (len(configs),):
        raise RuntimeError(f"predict_batch returned {times.shape[0]} times for {len(configs)} configurations")
    return _finish(times, l2, [""] * len(configs))


#: why a configuration whose predicted time is not a finite positive number is infeasible
NO_VALID_TIME = "the model predicts no valid time (the kernel cannot run with this configuration)"


def _finish(times: npt.NDArray[np.float64], l2: npt.NDArray[np.float64], reasons: list[str]) -> Evaluation:
    given = np.fromiter((r != "" for r in reasons), dtype=bool, count=len(reasons))
    invalid = ~(np.isfinite(times) & (times > 0)) & ~given
    out = np.where(invalid, NO_VALID_TIME, "").astype(object)
    out[given] = [r for r in reasons if r]
    times = np.where(given | invalid, np.inf, times)
    return Evaluation(time_s=times, l2_bytes=l2, infeasible=tuple(out.tolist()))


# ---- higher fidelities (called lazily on the top k) --------------------------------------


def simulate_times(workload: Workload, gpu: GPUSpec, configs: Sequence[KernelConfig]) -> list[float]:
    """Simulated times (:func:`perfmodel.simulate`); inf where it rejects a config."""
    out = []
    for c in configs:
        try:
            out.append(float(perfmodel.simulate(workload, c, gpu).time_s))
        except InputError:
            out.append(math.inf)
    return out


def _summary(w: Workload) -> str:
    t = w.tables[0]
    more = f" and {len(w.tables) - 1} more tables" if len(w.tables) > 1 else ""
    return f"batch {w.batch_size}, {t.count} x {t.rows:,} rows x {t.dim} {t.dtype}, {t.indices.kind} indices{more}"


def read_measurements(measurements: str | os.PathLike[str], gpu: GPUSpec,
                      workload: Workload) -> dict[KernelConfig, list[float]]:
    """The measured times of each configuration in a measurement file (JSON lines,
    docs/formats.md; read by :func:`perfmodel.read_measurements`, so a record with no valid
    kernel, or a time that is not a positive finite number, is an error naming its line).

    Replayed times stand for the searched workload on the searched GPU: every record must be
    of that workload and that GPU, or this refuses, naming the first record that is not.
    """
    seen: dict[KernelConfig, list[float]] = {}
    gpus: dict[str, str] = {}
    for r in perfmodel.read_measurements(measurements):
        where = f"{os.fspath(measurements)}:{r.line}"
        if r.gpu not in gpus:
            try:
                gpus[r.gpu] = perfmodel.get_gpu(r.gpu).id
            except InputError as exc:
                raise InputError(f"{where}: the record's gpu: {exc}") from None
        if gpus[r.gpu] != gpu.id:
            raise InputError(f"{where}: replayed times must be measured on the GPU searched ({gpu.id!r}), but the "
                             f"record is of gpu {r.gpu!r}")
        if r.workload != workload:
            raise InputError(f"{where}: replayed times must be of the workload searched ({_summary(workload)}), but "
                             f"the record's workload is {r.workload_ref if len(r.workload_ref) < 120 else 'inline'} "
                             f"({_summary(r.workload)})")
        seen.setdefault(r.kernel, []).append(r.time_s)
    return seen


def replay_times(
    measurements: str | os.PathLike[str], gpu: GPUSpec, workload: Workload, configs: Sequence[KernelConfig]
) -> list[float | None]:
    """Measured times of ``configs`` from a measurement file (:func:`read_measurements`: every
    record of ``workload`` on ``gpu``). Several records of one configuration give their
    median; a configuration with no record gives None."""
    seen = read_measurements(measurements, gpu, workload)
    return [float(np.median(seen[c])) if c in seen else None for c in configs]


def measure_times(
    workload: Workload, gpu: GPUSpec, configs: Sequence[KernelConfig], measure: Measure | None
) -> list[float]:
    """Times measured on this machine's GPU by ``measure`` (e.g. ``validation.measure_configs``,
    which ``recperf search --fidelity gpu`` passes)."""
    if measure is None:
        raise InputError(
            "fidelity `gpu` needs a measuring function (optimize(..., measure=validation.measure_configs), as "
            "`recperf search --fidelity gpu` passes) or recorded runs (measurements=FILE); "
            "or use fidelity `model`"
        )
    try:
        return [float(t) for t in measure(workload, list(configs), gpu)]
    except (ImportError, RuntimeError, OSError) as exc:  # no CuPy, no driver, no device
        raise InputError(
            f"fidelity `gpu` needs an NVIDIA GPU with CuPy (pip install 'recperf[gpu]'), but measuring failed: "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}; replay recorded runs with "
            "--measurements FILE, or use --fidelity model"
        ) from None
