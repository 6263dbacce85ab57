"""Latency-bounded throughput (DeepRecSys' question): the most queries per second a device
serves with the p-th percentile of query latency within a target.

Notation: lambda the query arrival rate (Poisson, as DeepRecSys' load generator), q a
query's size (items to rank), b the batch size a query is split into (DeepRecSys'
``sub_task_batch_size``: ceil(q / b) batches of at most b), c the servers, t(s) a batch of s
items' latency, p(s) how long it holds its server.

Servers: a GPU is one server running batches in a pipelined stream (the next batch may start
p(s) after the previous one, p the steady-state period of ``run_pipeline``; it completes
t(s) after its start); a CPU socket is one server with p = t (batches back to back on all
cores); DeepRecSys' CPU mode is c = cores servers of one core each, t the one-core latency
with every core busy. A query's batches go first-come first-served to the earliest free
server; its latency is its last batch's completion minus its arrival. For a given lambda the
queue is simulated on a fixed sample of arrivals and sizes (the same sample for every
lambda and configuration), and lambda is bisected to the largest rate whose p-th percentile
latency meets the target. t and p come from the pipeline model at powers of two and the
swept batch sizes and are interpolated linearly between them.
"""

from __future__ import annotations

import heapq
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from perfmodel._errors import InputError, check_int
from perfmodel._gpu import GPUSpec
from perfmodel.pipeline._pipeline import CPU_MODES, check_streams, resolve_device, run_pipeline
from perfmodel.pipeline._specs import CPUSpec, ModelSpec

__all__ = ["DEEPRECSYS_QUERY_SIZES", "QuerySizes", "latency_bounded_throughput", "parse_query_sizes"]

#: DeepRecSys' load generator settings (harvard-acc/DeepRecSys run_DeepRecSys.sh): query sizes
#: normal with mean 165 and standard deviation 16 items, at most 1024
DEEPRECSYS_QUERY_SIZES = "normal:165:16"
_KINDS = ("normal", "lognormal", "fixed", "list")
#: highest server utilization searched (a queue at 100% load has no steady state)
_MAX_LOAD = 0.98
_BISECTIONS = 18


@dataclass(frozen=True, kw_only=True)
class QuerySizes:
    """A distribution of query sizes (items per query), clipped to 1..``max_size``.

    ``normal`` (mean, sd) and ``lognormal`` (mu, sigma of the log) as DeepRecSys' load
    generator draws them; ``fixed`` (size); ``list`` (sizes drawn uniformly).
    """

    kind: str
    params: tuple[float, ...]
    max_size: int = 1024

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise InputError(f"unknown query-size distribution {self.kind!r}; valid choices: {', '.join(_KINDS)}")
        need = {"normal": 2, "lognormal": 2, "fixed": 1}.get(self.kind)
        if (need is not None and len(self.params) != need) or not self.params or any(not math.isfinite(p) for p in self.params):
            raise InputError(f"query-size distribution {self.kind!r} needs {need or 'one or more'} numbers, "
                             f"but got {list(self.params)}")
        if self.kind in ("fixed", "list") and any(p < 1 for p in self.params):
            raise InputError(f"query sizes must be >= 1, but got {list(self.params)}")

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        if self.kind == "normal":
            x = rng.normal(self.params[0], self.params[1], n)
        elif self.kind == "lognormal":
            x = rng.lognormal(self.params[0], self.params[1], n)
        elif self.kind == "fixed":
            x = np.full(n, self.params[0])
        else:
            x = rng.choice(np.asarray(self.params), n)
        return np.clip(np.rint(x), 1, self.max_size).astype(np.int64)

    def describe(self) -> str:
        return f"{self.kind}:{':'.join(f'{p:g}' for p in self.params)}"


def parse_query_sizes(spec: str, max_size: int = 1024) -> QuerySizes:
    """``normal:MEAN:SD``, ``lognormal:MU:SIGMA``, ``fixed:N`` or ``list:N1,N2,...``."""
    kind, _, rest = spec.partition(":")
    try:
        params = tuple(float(x) for x in rest.replace(",", ":").split(":") if x.strip())
    except ValueError:
        raise InputError(f"query sizes {spec!r}: expected KIND:NUMBERS (e.g. {DEEPRECSYS_QUERY_SIZES})") from None
    return QuerySizes(kind=kind, params=params, max_size=max_size)


def _grid(batch_sizes: Sequence[int]) -> list[int]:
    top = max(batch_sizes)
    pts = {1, *batch_sizes}
    p = 1
    while p < top:
        pts.add(p)
        p *= 2
    return sorted(pts)


def _simulate(arrive: np.ndarray, sizes: np.ndarray, b: int, servers: int, lat: Sequence[float],
              hold: Sequence[float]) -> np.ndarray:
    """Latency of each query (FCFS, batches of at most b to the earliest free of ``servers``);
    ``lat[s]``/``hold[s]``: a batch of s items' latency and server time."""
    free = [0.0] * servers
    out = np.empty(len(arrive))
    push, pop = heapq.heappush, heapq.heappop
    for q, (a, size) in enumerate(zip(arrive.tolist(), sizes.tolist(), strict=True)):
        done = a
        while size > 0:
            s = b if size > b else size
            size -= s
            t_free = pop(free)
            start = a if a > t_free else t_free
            push(free, start + hold[s])
            end = start + lat[s]
            if end > done:
                done = end
        out[q] = done - a
    return out


def _max_rate(sizes: np.ndarray, gaps: np.ndarray, b: int, servers: int, lat: Sequence[float], hold: Sequence[float],
              target: float, pct: float, warmup: int) -> tuple[float, float, str]:
    """(largest arrival rate meeting the target, its tail latency, what bounds it)."""
    def tail(rate: float) -> float:
        lats = _simulate(np.cumsum(gaps) / rate, sizes, b, servers, lat, hold)
        return float(np.percentile(lats[warmup:], pct))

    per_query = [sum(hold[min(b, s - j * b)] for j in range(math.ceil(s / b))) for s in sizes.tolist()]
    cap = servers / max(float(np.mean(per_query)), 1e-300)  # queries/s with every server always busy
    lo, hi = cap * 1e-4, cap * _MAX_LOAD
    t_lo = tail(lo)
    if t_lo > target:
        return 0.0, t_lo, "latency"
    t_hi = tail(hi)
    if t_hi <= target:
        return hi, t_hi, "capacity"
    for _ in range(_BISECTIONS):
        mid = math.sqrt(lo * hi)
        if tail(mid) <= target:
            lo = mid
        else:
            hi = mid
    return lo, tail(lo), "latency"


def latency_bounded_throughput(model: str | os.PathLike[str] | ModelSpec, devices: Sequence[str], *,
                               latency_target_s: float, query_sizes: QuerySizes | str = DEEPRECSYS_QUERY_SIZES,
                               percentile: float = 99.0, batch_sizes: Sequence[int] = (16, 32, 64, 128, 256, 512, 1024),
                               streams: Sequence[int] = (1,), dtype: str = "fp32", embedding_kernel: str = "pytorch",
                               n_queries: int = 2000, seed: int = 0) -> dict[str, Any]:
    """For each device, batch size and (GPU) stream count or (CPU) mode: the largest query rate whose
    ``percentile`` latency meets ``latency_target_s``; and the best of them."""
    if not latency_target_s > 0:
        raise InputError(f"`latency_target_s > 0` must hold, but got latency_target_s={latency_target_s!r}")
    if not 0 < percentile < 100:
        raise InputError(f"`0 < percentile < 100` must hold, but got percentile={percentile!r}")
    if not batch_sizes:
        raise InputError("`batch_sizes` must list at least one batch size")
    for b in batch_sizes:
        check_int(b, "batch_size", min_val=1)
    for k in streams:
        check_streams(k)
    qs = parse_query_sizes(query_sizes) if isinstance(query_sizes, str) else query_sizes
    rng = np.random.default_rng(seed)
    sizes = qs.sample(n_queries, rng)
    gaps = rng.exponential(1.0, n_queries)
    warmup = n_queries // 10
    grid = _grid(batch_sizes)
    configs = []
    for d in devices:
        dev = resolve_device(d)
        gpu = isinstance(dev, GPUSpec)
        modes: list[tuple[str, dict[str, Any]]] = (
            [(f"{k} stream{'s' if k > 1 else ''}", {"streams": k, "embedding_kernel": embedding_kernel}) for k in streams]
            if gpu else [(m, {"cpu_mode": m}) for m in CPU_MODES])
        for label, kw in modes:
            runs = [run_pipeline(model, dev, g, dtype=dtype, throughput=gpu, **kw) for g in grid]
            items = np.arange(max(batch_sizes) + 1, dtype=float)
            lat_tab = np.interp(items, grid, [r.time_s for r in runs]).tolist()
            if gpu:
                hold_tab = np.interp(items, grid, [r.period_s for r in runs]).tolist()
                servers = 1
            else:
                hold_tab = lat_tab
                servers = dev.cores if isinstance(dev, CPUSpec) and kw["cpu_mode"] == "core-per-query" else 1
            for b in batch_sizes:
                rate, tail, bound = _max_rate(sizes, gaps, b, servers, lat_tab, hold_tab, latency_target_s, percentile,
                                              warmup)
                configs.append({"device": dev.id, "device_kind": "gpu" if gpu else "cpu", "mode": label,
                                "batch_size": b, "queries_per_s": rate,
                                "throughput_samples_per_s": rate * float(np.mean(sizes)), "tail_latency_s": tail,
                                "bound": bound, "meets_target": rate > 0})
    best = max(configs, key=lambda c: (float(c["throughput_samples_per_s"]), -int(c["batch_size"]))) if configs else None
    return {"query_sizes": qs.describe(), "mean_query_size": float(np.mean(sizes)), "latency_target_s": latency_target_s,
            "percentile": percentile, "n_queries": n_queries, "seed": seed, "configs": configs, "best": best}
