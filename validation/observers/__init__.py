"""What to measure: CUDA-event timing with warm-up and medians (and its pure statistics)."""

from __future__ import annotations

from validation.observers._timing import TimingResult, summarize, time_with_events

__all__ = ["TimingResult", "summarize", "time_with_events"]
