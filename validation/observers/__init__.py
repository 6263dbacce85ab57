"""What to measure: CUDA-event timing with warm-up until settled, medians and spread."""

from __future__ import annotations

from validation.observers._timing import TimingResult, summarize, time_with_events, warmup_settled

__all__ = ["TimingResult", "summarize", "time_with_events", "warmup_settled"]
