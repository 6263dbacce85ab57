"""Operator cost models for GPUs and CPUs.

Notation: M, N, K the matrix product's rows, columns and inner dimension (M = the batch, for
a linear layer of K inputs and N outputs); B batch size; L lookups per bag (pooling); D
embedding dim; E table rows; P threads (CPU); S SMs (GPU).

GPU
  * Matrix products: a roofline over tiled execution. Output tiles of t x t (t in 8..128)
    run one per SM per wave; a tile's per-SM rate is the SM's FP32 peak times
    ``gemm_efficiency`` times the tile's operand-reuse factor min(1, t / 64) (a t x t tile
    does t/2 FMAs per element it loads; 32 saturate the FMA pipes). The fastest tile wins,
    as cuBLAS's heuristics choose. Wave quantization and tile under-use fall out of it: at
    small M a GEMM fills few SMs. Skinny products (M <= 16) may run as a GEMV, bounded by
    DRAM bandwidth and by per-warp memory parallelism. Plus the kernel's fixed cost.
  * Elementwise/copy kernels: bytes over the sustained stream bandwidth, plus fixed cost.
  * Embedding gathers: ``perfmodel.predict`` (the project's embedding-stage model), one
    call per table, never a second model here.
  * Every framework operator costs the host ``framework_dispatch_s + cuda_launch_s`` to
    issue; library-internal kernels (cuDNN's recurrent steps) only ``cuda_launch_s``.

CPU
  * Matrix products: P threads (the best P <= cores, paying ``fork_join_s`` when P > 1);
    each thread's compute rate is the core's AVX-512 FMA peak x ``gemm_efficiency`` x a
    small-size factor (outputs per thread against a 6 x 16 register tile, K against its
    prologue); weights stream from the LLC when the model's dense weights fit in half of
    it, else from DRAM. Plus the framework's per-operator overhead (no launch).
  * Embedding gathers: lines from the LLC (the hottest rows, a static top-C estimate of
    the hit rate for the table's index distribution) or DRAM, each core keeping
    ``fill_buffers_per_core`` misses in flight (Little's law: lines x 64 B / latency),
    capped by the socket's random-access DRAM bandwidth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

import perfmodel
from perfmodel._config import KernelConfig, Table, Workload
from perfmodel._errors import InputError
from perfmodel._gpu import GPUSpec
from perfmodel.pipeline._specs import CPUSpec, GPUCompute, LaunchCosts, get_gpu_compute, launch_costs

__all__ = ["CPUCosts", "GPUCosts", "OpCost", "cache_hit_rate"]

MATMUL_DTYPES = {"fp32": 4, "tf32": 4, "fp16": 2, "bf16": 2}
LINE_BYTES = 64  # CPU cache line
#: register tile of an AVX-512 SGEMM micro-kernel (oneDNN/BLIS-style 6 x 16 outputs)
CPU_REGISTER_TILE_OUTPUTS = 96
#: bytes one warp keeps in flight in a streaming GEMV (4 independent 16-B loads per lane);
#: an estimate of typical unrolling, used only for skinny products at tiny batch
GEMV_BYTES_IN_FLIGHT_PER_WARP = 2048


@dataclass(frozen=True, kw_only=True)
class OpCost:
    """Execution time of one operator running alone, and what it occupies while it runs."""

    time_s: float
    #: fraction of the GPU's SMs (or the CPU's cores) busy
    sm_util: float = 0.0
    #: fraction of DRAM bandwidth used
    dram_util: float = 0.0
    flops: float = 0.0
    bytes: float = 0.0
    note: str = ""


# ---- index distributions: cache hit rates ----------------------------------------------------


def _harmonic(n: float, alpha: float) -> float:
    """sum_{i=1..n} i^-alpha (Euler-Maclaurin tail beyond 1000 terms)."""
    n = max(0.0, n)
    m = int(min(n, 1000))
    s = float(np.sum(np.arange(1, m + 1, dtype=np.float64) ** -alpha)) if m else 0.0
    if n > m:
        if abs(alpha - 1.0) < 1e-9:
            s += math.log(n / m)
        else:
            s += (n ** (1 - alpha) - m ** (1 - alpha)) / (1 - alpha)
    return s


@lru_cache(maxsize=16)
def _trace_top_share(path: str) -> np.ndarray:
    idx = np.loadtxt(path, dtype=np.int64, ndmin=1) if not path.endswith(".npy") else np.load(path)
    counts = np.sort(np.bincount(idx))[::-1]
    counts = counts[counts > 0]
    return np.concatenate([[0.0], np.cumsum(counts) / counts.sum()])


def cache_hit_rate(table: Table, cached_rows: float) -> float:
    """Fraction of lookups that hit when the hottest ``cached_rows`` rows are cached.

    Static top-C estimate: an LRU of C rows holds roughly the C most popular rows under
    independent references (exact for uniform; Che's approximation refines it for skewed
    distributions, FACTS.md section 4).
    """
    e = table.rows
    c = max(0.0, min(float(e), cached_rows))
    kind = table.indices.kind
    if kind == "uniform":
        return c / e
    if kind == "zipf":
        return _harmonic(c, table.indices.alpha) / _harmonic(e, table.indices.alpha)
    share = _trace_top_share(str(table.indices.path))
    return float(share[min(int(c), len(share) - 1)])


# ---- GPU ------------------------------------------------------------------------------------


class GPUCosts:
    """Operator costs on one GPU."""

    kind = "gpu"

    def __init__(self, gpu: GPUSpec, dtype: str = "fp32") -> None:
        if dtype not in MATMUL_DTYPES:
            raise InputError(f"unknown dtype {dtype!r}; valid choices: {', '.join(MATMUL_DTYPES)}")
        self.gpu = gpu
        self.dtype = dtype
        self.esize = MATMUL_DTYPES[dtype]
        lanes = 64 if gpu.compute_capability == (8, 0) else 128
        self.compute: GPUCompute = get_gpu_compute(gpu.id, gpu.sm_count, gpu.sm_clock_hz, lanes)
        self.launch: LaunchCosts = launch_costs()
        self.peak = self.compute.peak(dtype)
        self.bw = gpu.dram_bandwidth_bytes_per_s * self.launch.stream_efficiency

    # host side
    @property
    def op_launch_s(self) -> float:
        return self.launch.op_launch_s

    @property
    def library_launch_s(self) -> float:
        return self.launch.cuda_launch_s

    def gemm(self, m: int, n: int, k: int, batch: int = 1, shared_weights: bool = True) -> OpCost:
        """``batch`` products of (m x k) @ (k x n); weights shared across the batch if a linear layer."""
        s = self.gpu.sm_count
        flops = 2.0 * m * n * k * batch
        wbytes = k * n * (1 if shared_weights else batch)
        nbytes = float(self.esize * (m * k * batch + wbytes + m * n * batch))
        peak_sm = self.peak / s * self.launch.gemm_efficiency
        best, best_tiles = math.inf, 1
        for t in (128, 64, 32, 16, 8):
            tiles = math.ceil(m / t) * math.ceil(n / t) * batch
            waves = math.ceil(tiles / s)
            tc = waves * 2.0 * t * t * k / (peak_sm * min(1.0, t / 64))
            if tc < best:
                best, best_tiles = tc, tiles
        t_mem = nbytes / self.bw
        sm_util = min(1.0, best_tiles / s)
        if min(m * batch, n) <= 16:
            # skinny product (GEMV-like): about a warp per output streams its K-long row, a few loads
            # in flight per lane (latency-bound for short rows), all bounded by DRAM bandwidth
            outputs = m * batch * n
            cap = s * self.gpu.max_warps_per_sm
            lat = self.gpu.latency_s(self.gpu.dram_latency_cycles)
            t_row = lat * math.ceil(k * self.esize / GEMV_BYTES_IN_FLIGHT_PER_WARP)
            t_gemv = max(nbytes / self.bw, t_row * math.ceil(outputs / cap), flops / (self.peak * 0.5))
            if t_gemv < max(best, t_mem):
                best = t_gemv
                sm_util = min(1.0, outputs / cap)
        time = self.launch.kernel_fixed_s + max(best, t_mem)
        return OpCost(time_s=time, sm_util=sm_util, dram_util=min(1.0, nbytes / time / self.gpu.dram_bandwidth_bytes_per_s),
                      flops=flops, bytes=nbytes)

    def elementwise(self, nbytes: float, flops: float = 0.0) -> OpCost:
        """A memory-bound kernel moving ``nbytes`` (reads + writes)."""
        t = self.launch.kernel_fixed_s + nbytes / self.bw
        return OpCost(time_s=t, sm_util=min(1.0, nbytes / (t * self.bw)), dram_util=min(1.0, nbytes / (t * self.gpu.dram_bandwidth_bytes_per_s)),
                      flops=flops, bytes=nbytes)

    def copy(self, nbytes: float) -> OpCost:
        """A host<->device copy over the host link."""
        t = self.launch.memcpy_latency_s + nbytes / (self.compute.host_link_bytes_per_s * self.launch.host_link_efficiency)
        return OpCost(time_s=t, bytes=nbytes)

    def gather(self, table: Table, bags: int, kernel: KernelConfig, host_mapped: bool = False) -> OpCost:
        """One embedding-bag call over one table of ``bags`` bags, from ``perfmodel.predict``."""
        single = Table(rows=table.rows, dim=table.dim, dtype=table.dtype, pooling=table.pooling,
                       pooling_mean=table.pooling_mean, pooling_dist=table.pooling_dist, count=1, indices=table.indices)
        p = _predict(Workload(batch_size=bags, tables=(single,)), kernel, self.gpu)
        time = float(p["time_s"])
        lookups = bags * table.mean_pooling
        note = ""
        if host_mapped:
            row = math.ceil(table.row_bytes / LINE_BYTES) * LINE_BYTES
            link = self.compute.host_link_bytes_per_s * self.launch.host_link_efficiency
            time = max(time, lookups * row / link)
            note = "host-mapped"
        warps = bags * (math.ceil(table.dim / 32) if kernel.variant == "pytorch" else 1)
        occ = float(p.get("occupancy") or 0.5)
        sm_util = min(1.0, warps / (self.gpu.sm_count * self.gpu.max_warps_per_sm * max(occ, 1e-3)))
        dram = float(p.get("dram_bytes") or lookups * table.row_bytes)
        return OpCost(time_s=time, sm_util=sm_util, dram_util=0.0 if host_mapped else min(1.0, dram / time / self.gpu.dram_bandwidth_bytes_per_s),
                      flops=lookups * table.dim, bytes=lookups * table.row_bytes, note=note)

    def recurrent_step(self, batch: int, inputs: int, hidden: int, gates: int = 3) -> OpCost:
        """One GRU step: the recurrent product (B x H) @ (H x 3H) with the gate math fused in."""
        g = self.gemm(batch, gates * hidden, hidden)
        ew = batch * hidden * 4 * (gates * 2 + 2)
        t = g.time_s + ew / self.bw
        return OpCost(time_s=t, sm_util=g.sm_util, dram_util=g.dram_util, flops=g.flops + 10.0 * batch * hidden, bytes=g.bytes + ew)


def _predict(workload: Workload, kernel: KernelConfig, gpu: GPUSpec) -> dict[str, Any]:
    return _predict_cached(workload, kernel, gpu)


@lru_cache(maxsize=4096)
def _predict_cached(workload: Workload, kernel: KernelConfig, gpu: GPUSpec) -> dict[str, Any]:
    p = perfmodel.predict(workload, kernel, gpu)
    return {"time_s": p.time_s, "occupancy": p.occupancy, "dram_bytes": p.dram_bytes}


# ---- CPU ------------------------------------------------------------------------------------


class CPUCosts:
    """Operator costs on one CPU socket (threads within an operator, operators in sequence)."""

    kind = "cpu"

    def __init__(self, cpu: CPUSpec, dtype: str = "fp32", *, weights_in_llc: bool = True, table_calls: int = 1) -> None:
        if dtype not in MATMUL_DTYPES:
            raise InputError(f"unknown dtype {dtype!r}; valid choices: {', '.join(MATMUL_DTYPES)}")
        self.cpu = cpu
        self.dtype = dtype
        # AVX-512 has no FP16/TF32 FMA on these parts: matrix math stays FP32 (data moves at esize)
        self.esize = MATMUL_DTYPES[dtype]
        self.weights_in_llc = weights_in_llc
        self.table_calls = max(1, table_calls)
        self.core_llc_bw = cpu.llc_bandwidth_bytes_per_s / cpu.cores
        self._threads = sorted({1, 2, 4, 8, 16, 32, 64, 128, cpu.cores} & set(range(1, cpu.cores + 1)))

    op_launch_s = 0.0
    library_launch_s = 0.0

    def _best(self, fn: Any, max_threads: int) -> tuple[float, int]:
        best, best_p = math.inf, 1
        for p in self._threads:
            if p > max(1, max_threads):
                break
            t = fn(p) + (self.cpu.fork_join_s if p > 1 else 0.0)
            if t < best:
                best, best_p = t, p
        return best, best_p

    def _act_bw(self, p: int, nbytes: float) -> float:
        """Bandwidth for activations: the LLC while they fit in half of it, else DRAM streaming."""
        c = self.cpu
        if nbytes <= 0.5 * c.llc_bytes:
            return min(p * self.core_llc_bw, c.llc_bandwidth_bytes_per_s)
        return min(p * c.core_stream_bytes_per_s, c.dram_bandwidth_bytes_per_s * c.dram_efficiency)

    def gemm(self, m: int, n: int, k: int, batch: int = 1, shared_weights: bool = True, overhead: bool = True) -> OpCost:
        c = self.cpu
        flops = 2.0 * m * n * k * batch
        wbytes = float(self.esize * k * n * (1 if shared_weights else batch))
        abytes = float(self.esize * (m * k + m * n) * batch)
        outputs = m * n * batch

        def t(p: int) -> float:
            per = outputs / p
            eff = c.gemm_efficiency * per / (per + CPU_REGISTER_TILE_OUTPUTS) * k / (k + 16)
            tc = flops / (p * c.core_peak_flops_per_s * eff)
            if self.weights_in_llc:
                tw = wbytes / min(p * self.core_llc_bw, c.llc_bandwidth_bytes_per_s)
            else:
                tw = wbytes / min(p * c.core_stream_bytes_per_s, c.dram_bandwidth_bytes_per_s * c.dram_efficiency)
            ta = abytes / self._act_bw(p, abytes)
            return max(tc, tw + ta)

        best, p = self._best(t, c.cores)
        time = best + (c.op_overhead_s if overhead else 0.0)
        return OpCost(time_s=time, sm_util=p / c.cores, flops=flops, bytes=wbytes + abytes)

    def elementwise(self, nbytes: float, flops: float = 0.0) -> OpCost:
        c = self.cpu
        best, p = self._best(lambda p: nbytes / self._act_bw(p, nbytes), math.ceil(nbytes / 65536))
        return OpCost(time_s=c.op_overhead_s + best, sm_util=p / c.cores, flops=flops, bytes=nbytes)

    def copy(self, nbytes: float) -> OpCost:
        return OpCost(time_s=0.0, bytes=nbytes)

    def gather(self, table: Table, bags: int, kernel: KernelConfig | None = None, host_mapped: bool = False) -> OpCost:
        """One embedding-bag call over one table on the CPU (kernel config does not apply)."""
        c = self.cpu
        lookups = bags * table.mean_pooling
        lines = math.ceil(table.row_bytes / LINE_BYTES)
        # half of the LLC for table rows (the rest holds weights and activations), split evenly
        cached_rows = 0.5 * c.llc_bytes / self.table_calls / (lines * LINE_BYTES)
        hit = cache_hit_rate(table, cached_rows)
        miss_bytes = lookups * lines * LINE_BYTES * (1 - hit)
        hit_bytes = lookups * lines * LINE_BYTES * hit
        core_dram = c.fill_buffers_per_core * LINE_BYTES / c.dram_latency_s
        core_llc = min(c.fill_buffers_per_core * LINE_BYTES / c.llc_latency_s, self.core_llc_bw)
        adds = lookups * table.dim

        def t(p: int) -> float:
            tm = miss_bytes / min(p * core_dram, c.dram_bandwidth_bytes_per_s * c.random_access_efficiency)
            tm += hit_bytes / min(p * core_llc, c.llc_bandwidth_bytes_per_s)
            tc = adds / (p * c.core_peak_flops_per_s / 2)
            return max(tm, tc)

        best, p = self._best(t, bags)
        time = c.op_overhead_s + best
        return OpCost(time_s=time, sm_util=p / c.cores,
                      dram_util=min(1.0, miss_bytes / best / c.dram_bandwidth_bytes_per_s) if best > 0 else 0.0,
                      flops=adds, bytes=miss_bytes + hit_bytes, note=f"llc hit {hit:.2f}")

    def recurrent_step(self, batch: int, inputs: int, hidden: int, gates: int = 3) -> OpCost:
        g = self.gemm(batch, gates * hidden, hidden, overhead=False)
        ew = batch * hidden * 4 * (gates * 2 + 2)
        t = g.time_s + ew / min(self.core_llc_bw * max(1.0, g.sm_util * self.cpu.cores), self.cpu.llc_bandwidth_bytes_per_s)
        return OpCost(time_s=t, sm_util=g.sm_util, flops=g.flops, bytes=g.bytes + ew)
