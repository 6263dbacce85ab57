"""CUDA-event timing: warm-up until the timings settle, then N repetitions; median and spread.

One timed call ``i``:

1. ``before_each(i)`` enqueues what must not be timed on the stream (an L2 flush, a hold
   kernel that keeps the stream busy while the host enqueues the next steps);
2. the start event is recorded, ``run(i)`` enqueues the call (kernel launches only), the stop
   event is recorded;
3. the host waits for the stop event and reads the elapsed time.

Warm-up: at least ``warmup`` calls, then rounds of ``warmup_round`` timed calls until the
medians of two successive rounds agree within ``settle_rel`` (2%: caches of the driver and
the clocks ramped up), at most ``max_warmup`` calls. Every event, launch and wait goes
through ``device`` (:class:`kernels.CupyDevice` or a stand-in), so the order of operations
can be checked.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["TimingResult", "summarize", "time_with_events", "warmup_settled"]


@dataclass(frozen=True, kw_only=True)
class TimingResult:
    """Repetition times in seconds, their summary, and how the warm-up went."""

    times_s: tuple[float, ...]
    median_s: float
    mean_s: float
    min_s: float
    max_s: float
    #: interquartile range over the median (a robust relative spread)
    iqr_over_median: float
    #: sample standard deviation (0 for one repetition)
    stdev_s: float = 0.0
    warmup_calls: int = 0
    #: medians of the warm-up rounds, in order
    warmup_medians_s: tuple[float, ...] = ()
    #: whether the last two warm-up rounds agreed within the tolerance
    warmup_settled: bool = False

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["times_s"] = list(self.times_s)
        d["warmup_medians_s"] = list(self.warmup_medians_s)
        return d


def summarize(times_s: Sequence[float], **warmup: Any) -> TimingResult:
    """Median, mean, extremes, relative IQR and standard deviation of repetition times."""
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
                        iqr_over_median=iqr / med if med > 0 else math.nan,
                        stdev_s=statistics.stdev(t) if len(t) > 1 else 0.0, **warmup)


def warmup_settled(medians_s: Sequence[float], rel: float) -> bool:
    """Whether the last two warm-up medians agree within ``rel`` of the earlier one."""
    if len(medians_s) < 2:
        return False
    a, b = float(medians_s[-2]), float(medians_s[-1])
    return a > 0 and abs(b - a) <= rel * a


def time_with_events(
    run: Callable[[int], None],
    *,
    device: Any,
    repeats: int,
    warmup: int = 3,
    before_each: Callable[[int], None] | None = None,
    stream: Any = None,
    settle_rel: float = 0.02,
    warmup_round: int = 5,
    max_warmup: int = 60,
) -> TimingResult:
    """Time ``run(i)`` with CUDA events on ``stream``: warm-up until settled, then ``repeats`` calls."""
    from perfmodel import InputError

    if repeats < 1 or warmup < 0 or warmup_round < 1 or max_warmup < warmup or not 0 < settle_rel < 1:
        raise InputError(f"`repeats >= 1, 0 <= warmup <= max_warmup, warmup_round >= 1, 0 < settle_rel < 1` must hold, "
                         f"but got (repeats={repeats}, warmup={warmup}, max_warmup={max_warmup}, "
                         f"warmup_round={warmup_round}, settle_rel={settle_rel})")
    s = stream if stream is not None else device.current_stream()
    start, stop = device.event(), device.event()
    calls = 0

    def timed_call() -> float:
        nonlocal calls
        if before_each is not None:
            before_each(calls)
        device.record(start, s)
        run(calls)
        device.record(stop, s)
        device.wait_event(stop)
        calls += 1
        return float(device.elapsed_s(start, stop))

    for _ in range(warmup):
        timed_call()
    medians: list[float] = []
    while calls + warmup_round <= max_warmup and not warmup_settled(medians, settle_rel):
        medians.append(statistics.median(timed_call() for _ in range(warmup_round)))
    warm = calls
    times = [timed_call() for _ in range(repeats)]
    return summarize(times, warmup_calls=warm, warmup_medians_s=tuple(medians),
                     warmup_settled=warmup_settled(medians, settle_rel))
