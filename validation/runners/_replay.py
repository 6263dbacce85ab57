"""Replay: recorded measurements answer "how long does this configuration take on this GPU?"
with no GPU, so reports, tests and the search's ``gpu`` fidelity run in CI."""

from __future__ import annotations

import os
import statistics
from collections.abc import Sequence

from perfmodel import KernelConfig, Workload
from validation._records import MeasurementRecord, read_measurements

__all__ = ["ReplayRunner"]


class ReplayRunner:
    """Measured times from one or more measurement files, looked up by (GPU, workload, kernel).

    A configuration measured more than once answers with the median of its records.
    """

    def __init__(self, *paths: str | os.PathLike[str]) -> None:
        self.paths = [os.fspath(p) for p in paths]
        self.records: list[MeasurementRecord] = [r for p in paths for r in read_measurements(p)]
        self._times: dict[tuple[str, Workload, KernelConfig], list[float]] = {}
        for r in self.records:
            if r.raw.get("warm_cache"):
                continue  # the model predicts cold-cache calls
            self._times.setdefault((r.gpu, r.workload, r.kernel), []).append(r.time_s)

    def time_s(self, workload: Workload, kernel: KernelConfig, gpu: str) -> float | None:
        """The measured time, or None if this configuration was not recorded."""
        times = self._times.get((gpu, workload, kernel))
        return statistics.median(times) if times else None

    def kernels(self, workload: Workload, gpu: str) -> list[KernelConfig]:
        """The recorded configurations of ``workload`` on ``gpu``, in file order."""
        seen: dict[KernelConfig, None] = {}
        for g, w, k in self._times:
            if g == gpu and w == workload:
                seen.setdefault(k, None)
        return list(seen)

    def workloads(self) -> Sequence[tuple[str, Workload]]:
        out: dict[tuple[str, Workload], None] = {}
        for g, w, _ in self._times:
            out.setdefault((g, w), None)
        return list(out)

    def __len__(self) -> int:
        return len(self._times)
