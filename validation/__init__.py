"""Hardware and published-data validation of the performance model.

Parsers of the published gpu-benches measurement files live in :mod:`validation.published`.
"""

from __future__ import annotations

from validation.published import parse_l2, parse_latency, parse_stream

__all__ = ["parse_l2", "parse_latency", "parse_stream"]
