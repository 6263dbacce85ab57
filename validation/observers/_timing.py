"""CUDA-event timing: warm-up, then N repetitions, each bracketed by events; the median counts.

Work that must not be timed (an L2 flush, picking the next index buffer) runs in
``before_each`` on the same stream *before* the start event is recorded.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["TimingResult", "summarize", "time_with_events"]


@dataclass(frozen=True, kw_only=True)
class TimingResult:
    """Repetition times in seconds and their summary."""

    times_s: tuple[float, ...]
    median_s: float
    mean_s: float
    min_s: float
    max_s: float
    #: interquartile range over the median (a robust relative spread)
    iqr_over_median: float

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["times_s"] = list(self.times_s)
        return d


def summarize(times_s: Sequence[float]) -> TimingResult:
    """Median, mean, extremes and relative IQR of repetition times."""
    from perfmodel import InputError

    t = [float(x) for x in times_s]
    if not t:
        raise InputError("at least one repetition time is needed, but got none")
    if any(not math.isfinite(x) or x < 0 for x in t):
        raise InputError(f"repetition times must be finite and >= 0, but got {t}")
    med = statistics.median(t)
    if len(t) >= 4:
        q = statistics.quantiles(t, n=4, method="inclusive")
        iqr = q[2] - q[0]
    else:
        iqr = max(t) - min(t)
    return TimingResult(times_s=tuple(t), median_s=med, mean_s=statistics.fmean(t), min_s=min(t), max_s=max(t),
                        iqr_over_median=iqr / med if med > 0 else math.nan)


def time_with_events(
    run: Callable[[int], None],
    *,
    repeats: int,
    warmup: int = 3,
    before_each: Callable[[int], None] | None = None,
    stream: Any = None,
) -> TimingResult:
    """Time ``run(i)`` with CUDA events on ``stream`` (CuPy), ``repeats`` times after ``warmup`` calls."""
    import cupy

    from perfmodel import InputError

    if repeats < 1 or warmup < 0:
        raise InputError(f"`repeats >= 1 and warmup >= 0` must hold, but got (repeats={repeats}, warmup={warmup})")
    s = stream if stream is not None else cupy.cuda.get_current_stream()
    for i in range(warmup):
        if before_each is not None:
            before_each(i)
        run(i)
    s.synchronize()
    times = []
    start, end = cupy.cuda.Event(), cupy.cuda.Event()
    for i in range(repeats):
        if before_each is not None:
            before_each(warmup + i)
        start.record(s)
        run(warmup + i)
        end.record(s)
        end.synchronize()
        times.append(cupy.cuda.get_elapsed_time(start, end) / 1e3)  # ms -> s
    return summarize(times)
