"""Operator cost models for GPUs and CPUs.

Notation: M, N, K the matrix product's rows, columns and inner dimension (M = the batch, for
a linear layer of K inputs and N outputs); B batch size; L lookups per bag (pooling); D
embedding dim; E table rows; P threads (CPU); S SMs (GPU); MR x NR a CPU micro-kernel's
register tile; V vector lanes (FP32).

GPU
  * Matrix products: a roofline over tiled execution. Output tiles of t x t run one per SM
    per wave; a tile's per-SM rate is the SM's peak in the run's dtype times the large-GEMM
    efficiency times the tile's operand-reuse factor min(1, t / t_sat). SIMT (fp32): t in
    8..128, t_sat = 64, efficiency 0.9; tensor cores (tf32/fp16/bf16, where the GPU has them):
    t in 8..256, t_sat = 128, efficiency 0.8 (``gpu_compute.toml``, each with its source).
    The fastest tile wins, as cuBLAS's heuristics choose. Wave quantization and tile
    under-use fall out of it: at small M a GEMM fills few SMs. Skinny products (M <= 16) may
    run as a GEMV, bounded by DRAM bandwidth and by per-warp memory parallelism. Plus the
    kernel's fixed cost.
  * Elementwise kernels: bytes over the sustained stream bandwidth, plus fixed cost; blocks
    of 256 threads x 16 bytes, their share of the GPU's block slots.
  * Copies: latency + bytes over the host link, on a copy engine (no SM slots).
  * Embedding gathers: ``perfmodel.predict`` (the project's embedding-stage model), one
    call per table (PyTorch's kernel) or one call for all tables (the table-batched kernel),
    never a second model here. Quantized rows (int8) are given to it as the fp16 rows of
    the same bytes (the core has no int8 row type yet).
  * Every framework operator costs the host ``framework_dispatch_s + cuda_launch_s`` to
    issue; library-internal kernels (cuDNN's recurrent steps) only ``cuda_launch_s``.

CPU
  * Matrix products: P threads (the best P <= the cores allowed, paying ``fork_join_s`` when
    P > 1). The work is BLIS's AVX-512 SGEMM micro-kernel tiles of MR x NR = 2V x 12 outputs
    (``bli_sgemm_skx_asm_32x12_l2.c`` in flame/blis; 2V x 6 on 256-bit parts, BLIS's haswell
    16x6), the output split into ceil(M / MR) ceil(N / NR) tiles (or the transpose, whichever
    is fewer) shared by the threads; a tile costs K (MR NR / V) / FMA units cycles of FMAs plus
    MR NR / V / ``stores_per_cycle`` cycles to store it (Intel's optimization manual), at
    ``gemm_efficiency`` of that rate (packing, cache misses). Small products lose to tile
    quantization and the store epilogue, which replaces a fitted small-size factor. Weights
    stream from the LLC when the model's dense weights fit in half of it, else from DRAM.
    Plus the framework's per-operator overhead (no launch).
  * Embedding gathers: lines from the LLC (the hottest rows, a static top-C estimate of
    the hit rate for the table's index distribution) or DRAM, each core keeping
    ``fill_buffers_per_core`` misses in flight (Little's law: lines x 64 B / latency),
    capped by the socket's random-access DRAM bandwidth, shared with the other cores that
    serve queries at the same time (DeepRecSys' one core per query).
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
from perfmodel.pipeline._representations import fp16_equivalent_dim, row_bytes
from perfmodel.pipeline._schedule import MemorySystem
from perfmodel.pipeline._specs import CPUSpec, GPUCompute, LaunchCosts, get_gpu_compute, launch_costs

__all__ = ["CPUCosts", "GPUCosts", "OpCost", "cache_hit_rate"]

MATMUL_DTYPES = {"fp32": 4, "tf32": 4, "fp16": 2, "bf16": 2}
LINE_BYTES = 64  # CPU cache line
#: BLIS's SGEMM micro-kernel register tile: MR = 2 vectors of FP32 lanes, NR = 12 rows on AVX-512
#: (bli_sgemm_skx_asm_32x12_l2.c), 6 on AVX2 (bli_sgemm_haswell_asm_16x6)
MICRO_TILE_VECTORS = 2
MICRO_TILE_NR = {512: 12, 256: 6}
#: bytes one warp keeps in flight in a streaming GEMV (4 independent 16-B loads per lane);
#: an estimate of typical unrolling, used only for skinny products at tiny batch
GEMV_BYTES_IN_FLIGHT_PER_WARP = 2048
#: an elementwise kernel's block: 256 threads, 16 bytes each
ELEMENTWISE_BLOCK_THREADS = 256
ELEMENTWISE_BYTES_PER_THREAD = 16


@dataclass(frozen=True, kw_only=True)
class OpCost:
    """Execution time of one operator running alone, and what it occupies while it runs."""

    time_s: float
    #: fraction of the GPU's block slots (or the CPU's cores) it takes
    sm_util: float = 0.0
    #: fraction of DRAM bandwidth used
    dram_util: float = 0.0
    flops: float = 0.0
    bytes: float = 0.0
    note: str = ""


def single_table(table: Table, rep: str = "table") -> Table:
    """One table of ``table``'s shape (count 1) with ``rep``'s rows: fp16 rows for fp16, and the
    fp16 rows of the same bytes for int8 (how the embedding model is given quantized rows)."""
    if rep == "fp16":
        dtype, dim = "float16", table.dim
    elif rep == "int8":
        dtype, dim = "float16", fp16_equivalent_dim("int8", table.dim, table.row_bytes // table.dim)
    else:
        dtype, dim = table.dtype, table.dim
    return Table(rows=table.rows, dim=dim, dtype=dtype, pooling=table.pooling, pooling_mean=table.pooling_mean,
                 pooling_dist=table.pooling_dist, count=1, indices=table.indices)


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
        self.tensor_cores = dtype != "fp32" and self.peak > self.compute.fp32_flops_per_s
        self.bw = gpu.dram_bandwidth_bytes_per_s * self.launch.stream_efficiency
        self.memory = MemorySystem.of_gpu(gpu)

    # host side
    @property
    def op_launch_s(self) -> float:
        return self.launch.op_launch_s

    @property
    def library_launch_s(self) -> float:
        return self.launch.cuda_launch_s

    def tile_rate(self, t: int) -> float:
        """FLOP/s of one SM on a t x t output tile: the SM's peak in the run's dtype x the large-GEMM
        efficiency x the tile's operand reuse min(1, t / t_sat) (SIMT and tensor cores each their own)."""
        lc = self.launch
        if self.tensor_cores:
            eff, sat = lc.tensor_core_gemm_efficiency, lc.tensor_core_saturating_tile
        else:
            eff, sat = lc.gemm_efficiency, lc.simt_saturating_tile
        return self.peak / self.gpu.sm_count * eff * min(1.0, t / sat)

    def gemm(self, m: int, n: int, k: int, batch: int = 1, shared_weights: bool = True) -> OpCost:
        """``batch`` products of (m x k) @ (k x n); weights shared across the batch if a linear layer."""
        s = self.gpu.sm_count
        lc = self.launch
        flops = 2.0 * m * n * k * batch
        wbytes = k * n * (1 if shared_weights else batch)
        nbytes = float(self.esize * (m * k * batch + wbytes + m * n * batch))
        sides = (256, 128, 64, 32, 16, 8) if self.tensor_cores else (128, 64, 32, 16, 8)
        best, best_tiles = math.inf, 1
        for t in sides:
            tiles = math.ceil(m / t) * math.ceil(n / t) * batch
            waves = math.ceil(tiles / s)
            tc = waves * 2.0 * t * t * k / self.tile_rate(t)
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
        time = lc.kernel_fixed_s + max(best, t_mem)
        return OpCost(time_s=time, sm_util=sm_util, dram_util=min(1.0, nbytes / time / self.gpu.dram_bandwidth_bytes_per_s),
                      flops=flops, bytes=nbytes)

    def elementwise(self, nbytes: float, flops: float = 0.0) -> OpCost:
        """A memory-bound kernel moving ``nbytes`` (reads + writes)."""
        t = self.launch.kernel_fixed_s + nbytes / self.bw
        blocks = math.ceil(nbytes / (ELEMENTWISE_BLOCK_THREADS * ELEMENTWISE_BYTES_PER_THREAD))
        slots = self.gpu.sm_count * self.gpu.max_warps_per_sm * 32 // ELEMENTWISE_BLOCK_THREADS
        return OpCost(time_s=t, sm_util=min(1.0, blocks / slots),
                      dram_util=min(1.0, nbytes / (t * self.gpu.dram_bandwidth_bytes_per_s)), flops=flops, bytes=nbytes)

    def copy(self, nbytes: float) -> OpCost:
        """A host<->device copy over the host link (on a copy engine)."""
        t = self.launch.memcpy_latency_s + nbytes / (self.compute.host_link_bytes_per_s * self.launch.host_link_efficiency)
        return OpCost(time_s=t, bytes=nbytes)

    def _gather_cost(self, p: dict[str, Any], lookups: float, nbytes: float, warps: float) -> tuple[float, float, float]:
        time = float(p["time_s"])
        occ = float(p.get("occupancy") or 0.5)
        sm_util = min(1.0, warps / (self.gpu.sm_count * self.gpu.max_warps_per_sm * max(occ, 1e-3)))
        dram = float(p.get("dram_bytes") or nbytes)
        return time, sm_util, min(1.0, dram / time / self.gpu.dram_bandwidth_bytes_per_s)

    def gather(self, table: Table, bags: int, kernel: KernelConfig, host_mapped: bool = False,
               rep: str = "table") -> OpCost:
        """One embedding-bag call over one table of ``bags`` bags, from ``perfmodel.predict``."""
        single = single_table(table, rep)
        p = _predict(Workload(batch_size=bags, tables=(single,)), kernel, self.gpu)
        lookups = bags * table.mean_pooling
        nbytes = lookups * row_bytes(rep, table.dim, table.row_bytes // table.dim)
        warps = bags * (math.ceil(single.dim / 32) if kernel.variant == "pytorch" else 1)
        time, sm_util, dram_util = self._gather_cost(p, lookups, nbytes, warps)
        note = "int8 rows as fp16 rows of the same bytes" if rep == "int8" else ""
        if host_mapped:
            row = math.ceil(row_bytes(rep, table.dim, table.row_bytes // table.dim) / LINE_BYTES) * LINE_BYTES
            link = self.compute.host_link_bytes_per_s * self.launch.host_link_efficiency
            time = max(time, lookups * row / link)
            note, dram_util = "host-mapped", 0.0
        return OpCost(time_s=time, sm_util=sm_util, dram_util=dram_util, flops=lookups * table.dim, bytes=nbytes, note=note)

    def fused_gather(self, tables: tuple[Table, ...], reps: tuple[str, ...], batch: int, kernel: KernelConfig) -> OpCost:
        """One launch over every table's bags (a table-batched kernel), from ``perfmodel.predict``."""
        singles = tuple(single_table(t, r) for t, r in zip(tables, reps, strict=True))
        p = _predict(Workload(batch_size=batch, tables=singles), kernel, self.gpu)
        lookups = sum(batch * t.mean_pooling for t in tables)
        nbytes = sum(batch * t.mean_pooling * row_bytes(r, t.dim, t.row_bytes // t.dim) for t, r in zip(tables, reps, strict=True))
        time, sm_util, dram_util = self._gather_cost(p, lookups, nbytes, batch * len(tables))
        return OpCost(time_s=time, sm_util=sm_util, dram_util=dram_util, flops=sum(batch * t.mean_pooling * t.dim for t in tables),
                      bytes=nbytes, note=f"one launch over {len(tables)} tables")

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
    """Operator costs on one CPU socket (threads within an operator, operators in sequence).

    ``threads``: most threads one operator may use (None: the socket's cores; 1: DeepRecSys'
    one core per query). ``concurrent_cores``: cores serving queries at the same time, whose
    share of the socket's DRAM and LLC bandwidth each operator gets.
    """

    kind = "cpu"

    def __init__(self, cpu: CPUSpec, dtype: str = "fp32", *, weights_in_llc: bool = True, table_calls: int = 1,
                 threads: int | None = None, concurrent_cores: int = 1) -> None:
        if dtype not in MATMUL_DTYPES:
            raise InputError(f"unknown dtype {dtype!r}; valid choices: {', '.join(MATMUL_DTYPES)}")
        self.cpu = cpu
        self.dtype = dtype
        # AVX-512 has no FP16/TF32 FMA on these parts: matrix math stays FP32 (data moves at esize)
        self.esize = MATMUL_DTYPES[dtype]
        self.weights_in_llc = weights_in_llc
        self.table_calls = max(1, table_calls)
        self.core_llc_bw = cpu.llc_bandwidth_bytes_per_s / cpu.cores
        limit = cpu.cores if threads is None else max(1, min(threads, cpu.cores))
        self._threads = sorted({1, 2, 4, 8, 16, 32, 64, 128, limit} & set(range(1, limit + 1)))
        self.share = 1.0 / max(1, min(concurrent_cores, cpu.cores))
        lanes = cpu.vector_bits // 32
        self.mr = MICRO_TILE_VECTORS * lanes
        self.nr = MICRO_TILE_NR.get(cpu.vector_bits, 6)

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

    def _llc_bw(self, p: int) -> float:
        return min(p * self.core_llc_bw, self.cpu.llc_bandwidth_bytes_per_s * self.share)

    def _dram_stream_bw(self, p: int) -> float:
        c = self.cpu
        return min(p * c.core_stream_bytes_per_s, c.dram_bandwidth_bytes_per_s * c.dram_efficiency * self.share)

    def _act_bw(self, p: int, nbytes: float) -> float:
        """Bandwidth for activations: the LLC while they fit in half of it, else DRAM streaming."""
        return self._llc_bw(p) if nbytes <= 0.5 * self.cpu.llc_bytes else self._dram_stream_bw(p)

    def micro_tiles(self, m: int, n: int) -> int:
        """Register tiles of the micro-kernel covering an m x n output (the cheaper orientation)."""
        return min(math.ceil(m / self.mr) * math.ceil(n / self.nr), math.ceil(n / self.mr) * math.ceil(m / self.nr))

    def tile_cycles(self, k: int) -> float:
        """Cycles of one register tile: K steps of MR x NR FMAs on the FMA units, then its stores."""
        c = self.cpu
        vectors = self.mr * self.nr / (c.vector_bits // 32)
        return k * vectors / c.fma_units_per_core + vectors / c.stores_per_cycle

    def gemm(self, m: int, n: int, k: int, batch: int = 1, shared_weights: bool = True, overhead: bool = True) -> OpCost:
        c = self.cpu
        flops = 2.0 * m * n * k * batch
        wbytes = float(self.esize * k * n * (1 if shared_weights else batch))
        abytes = float(self.esize * (m * k + m * n) * batch)
        tiles = self.micro_tiles(m, n) * batch
        cycles = self.tile_cycles(k)

        def t(p: int) -> float:
            tc = math.ceil(tiles / p) * cycles / (c.clock_hz * c.gemm_efficiency)
            tw = wbytes / (self._llc_bw(p) if self.weights_in_llc else self._dram_stream_bw(p))
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

    def gather(self, table: Table, bags: int, kernel: KernelConfig | None = None, host_mapped: bool = False,
               rep: str = "table") -> OpCost:
        """One embedding-bag call over one table on the CPU (kernel config does not apply).

        int8 rows are dequantized on the fly (scale x value + bias: two flops per element).
        """
        c = self.cpu
        lookups = bags * table.mean_pooling
        rb = row_bytes(rep, table.dim, table.row_bytes // table.dim)
        lines = math.ceil(rb / LINE_BYTES)
        # half of the LLC for table rows (the rest holds weights and activations), split evenly
        cached_rows = 0.5 * c.llc_bytes / self.table_calls / (lines * LINE_BYTES)
        hit = cache_hit_rate(table, cached_rows)
        miss_bytes = lookups * lines * LINE_BYTES * (1 - hit)
        hit_bytes = lookups * lines * LINE_BYTES * hit
        core_dram = c.fill_buffers_per_core * LINE_BYTES / c.dram_latency_s
        core_llc = min(c.fill_buffers_per_core * LINE_BYTES / c.llc_latency_s, self.core_llc_bw)
        adds = lookups * table.dim * (2 if rep == "int8" else 1)

        def t(p: int) -> float:
            tm = miss_bytes / min(p * core_dram, c.dram_bandwidth_bytes_per_s * c.random_access_efficiency * self.share)
            tm += hit_bytes / min(p * core_llc, c.llc_bandwidth_bytes_per_s * self.share)
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
        t = g.time_s + ew / self._llc_bw(max(1, round(g.sm_util * self.cpu.cores)))
        return OpCost(time_s=t, sm_util=g.sm_util, flops=g.flops, bytes=g.bytes + ew)
