"""The analytical model of the embedding stage: ``predict`` and ``predict_batch``.

Notation: B bags per call, L lookups per bag, D columns, R row bytes, R' the bytes of the
32-byte sectors a row covers, E rows; per configuration: b threads per block, r registers
per thread, p prefetch distance; W warps in flight on the GPU, G bags in flight, h the L2
hit fraction of row loads, T the time of one lookup iteration of a warp.

Chain of the model, per table call (the stage runs one call per table, one after another):

1. registers r from NVIDIA's compiler (the shipped resource table, see
   :func:`kernel_registers`) -> resident blocks and warps per SM (exact occupancy);
2. the kernel's work mapping -> W warps per round, rounds and tail:
   ``pytorch`` (PyTorch 2.1 ``EmbeddingBag_updateOutputKernel_sum_mean``): block (32, b/32),
   a fixed grid of 1,024 blocks, one warp per (bag, 32-column chunk), so a warp load moves
   32 elements (128 B of fp32) and a bag's chunks run on ceil(D/32) warps side by side;
   blocks beyond the resident slots run in later waves;
   ``warp``: one warp per bag, the lanes across the row with the widest aligned vector
   load, a grid sized to the GPU (every block resident; bags in rounds);
3. L2 residency -> h for W's interleaving of bags (:mod:`perfmodel._l2`);
4. one iteration of a warp is a dependent chain: index load (L1, one miss per 128-B line of
   indices), row load (h at L2 latency, 1 - h at the loaded DRAM latency), the dependent
   arithmetic; a register prefetch ring keeps 1 + p row loads in flight, so
   T = chain / (1 + p); the loaded DRAM latency depends on the DRAM utilization the warps
   themselves cause (Little's law; :func:`perfmodel._physics.little_throughput`), solved in
   closed form;
5. ceilings on T: L2 bandwidth (all row bytes pass the L2), SM instruction issue
   (4 warp instructions per cycle per SM);
6. time = sum over rounds of (units per warp) x L x T, plus launch gaps, a separate
   bounds-check pass when asked, and the pinning pass (``evict-last-prefetch``: a
   bandwidth-bound read of the pinned rows, reported as ``pin_time_s``).

Every constant below names its source; calibrated ones live in data/calibration/micro.toml.
One implementation, vectorized over configurations: ``predict`` evaluates a batch of one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from perfmodel._config import KernelConfig, Table, Workload
from perfmodel._errors import InputError
from perfmodel._gpu import GPUSpec, get_gpu
from perfmodel._l2 import residency, sector_footprint_bytes
from perfmodel._occupancy import blocks_per_sm
from perfmodel._physics import little_throughput, model_params

__all__ = ["Prediction", "kernel_registers", "predict", "predict_batch"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: PyTorch 2.1 EmbeddingBag forward (sum/mean): ``grid = 1024`` blocks (aten/src/ATen/native/cuda/EmbeddingBag.cu)
PYTORCH_GRID_BLOCKS = 1024
#: warp instructions an SM issues per cycle: 4 schedulers x 1 (NVIDIA A100 / H100 whitepapers)
ISSUE_PER_SM_PER_CYCLE = 4.0
#: dependent-issue latency of an integer/FP32 instruction, cycles (Jia et al., "Dissecting the
#: NVIDIA Volta GPU Architecture via Microbenchmarking", 2018: 4 cycles; same on Ampere/Hopper)
DEPENDENT_ISSUE_CYCLES = 4.0
#: gap between back-to-back kernels in one stream, s. Estimate: Nsight Systems traces of
#: dependent launches on A100/H100 show ~2 us of idle GPU between kernels; to be calibrated.
KERNEL_LAUNCH_GAP_S = 2.0e-6
#: instructions per lookup iteration of a warp, and the dependent ones on its critical path
#: (our kernels' hot loops, kernels/*.cu: index load, bounds test, address IMAD.WIDE, load,
#: FADD/FMA, loop test). Counted from the CUDA sources' loop bodies (see docs/model.md).
INSTR_PER_ITER = {"pytorch": 10.0, "warp": 12.0}
DEPENDENT_PER_ITER = {"pytorch": 5.0, "warp": 5.0}
#: the inline device-side assert adds a compare and a predicated branch to every iteration
INLINE_CHECK_INSTR = 3.0
INLINE_CHECK_DEPENDENT = 2.0
#: index bytes per lookup (int64 indices, as PyTorch passes them)
INDEX_BYTES = 8
#: bytes of one L1/L2 line (indices per line = 128 / 8)
LINE_BYTES = 128

_VARIANT_CODE = {"pytorch": 0, "warp": 1}
_CHECK_CODE = {"inline": 0, "separate": 1, "none": 2}


# ---- registers -------------------------------------------------------------------------

#: Interim register demand used only when the shipped compiler table lacks a configuration.
#: Basis: FACTS.md section 1 (a PyTorch 2.1 replica, nvcc 13.0, sm_80: 54 registers with the
#: in-loop assert, 48 without); ring of p rows adds the held values and their addresses.
_INTERIM_BASE = {("pytorch", "inline"): 54, ("pytorch", "separate"): 48, ("pytorch", "none"): 48,
                 ("warp", "inline"): 40, ("warp", "separate"): 36, ("warp", "none"): 36}


def _interim_registers(k: KernelConfig, dtype: str) -> tuple[int, int]:
    per_row = 1 if k.variant == "pytorch" else max(1, 16 // 4)  # fp32 scalar vs a float4 per lane
    held = per_row + 2 if k.prefetch_kind == "register" else 0
    demand = _INTERIM_BASE[(k.variant, k.bounds_check)] + held * k.prefetch_distance
    if k.register_cap and demand > k.register_cap:
        return k.register_cap, 4 * (demand - k.register_cap)
    return min(demand, 255), 0


_REG_CACHE: dict[tuple[KernelConfig, str, str], tuple[int, int, str]] = {}


def kernel_registers(kernel: KernelConfig, gpu: GPUSpec, dtype: str = "float32") -> tuple[int, int, str]:
    """(registers per thread, spill bytes per thread, source) of the lookup kernel.

    From the shipped compiler table (``perfmodel.kernel_resources``) where it has the
    configuration; else the interim estimate above, marked as such in the source.
    """
    key = (kernel.replace(block_size=256, pinned_row_fraction=0.0), gpu.arch, dtype)
    got = _REG_CACHE.get(key)
    if got is not None:
        return got
    out: tuple[int, int, str] | None = None
    try:
        from perfmodel._resources import kernel_resources
    except ImportError:  # pragma: no cover - the table ships with the package
        kernel_resources = None  # type: ignore[assignment]
    if kernel_resources is not None:
        ru = kernel_resources(kernel, gpu.arch, dtype=dtype)
        if ru is not None:
            out = (int(ru.registers), int(ru.spill_store_bytes + ru.spill_load_bytes), f"compiler table ({ru.compiler})")
    if out is None:
        regs, spill = _interim_registers(kernel, dtype)
        out = (regs, spill, "interim estimate (no compiler-table entry)")
    _REG_CACHE[key] = out
    return out


# ---- result type -------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Prediction:
    """The predicted (or simulated) time of one call of the embedding stage."""

    time_s: float
    pin_time_s: float
    occupancy: float
    l2_hit_rate: float
    dram_bytes: float
    bound: str
    breakdown: dict[str, Any] = field(default_factory=dict)
    fidelity: str = "model"

    def to_dict(self) -> dict[str, Any]:
        return {
            "time_s": self.time_s,
            "pin_time_s": self.pin_time_s,
            "lookup_time_s": self.time_s - self.pin_time_s,
            "occupancy": self.occupancy,
            "l2_hit_rate": self.l2_hit_rate,
            "dram_bytes": self.dram_bytes,
            "bound": self.bound,
            "fidelity": self.fidelity,
            "breakdown": self.breakdown,
        }

    def explain(self) -> str:
        """A readable account of where the time goes."""
        b = self.breakdown
        lines = [
            f"embedding stage: {self.time_s * 1e6:,.1f} us per call ({self.fidelity}); pinning passes "
            f"{self.pin_time_s * 1e6:,.1f} us of it",
            f"  bound by {self.bound}; L2 hit rate of row loads {self.l2_hit_rate:.1%}; DRAM traffic "
            f"{self.dram_bytes / 1e6:,.1f} MB",
        ]
        k = b.get("kernel", {})
        if k:
            lines.append(
                f"  kernel: {k.get('variant')} block {k.get('block_size')}, {b.get('registers')} registers/thread "
                f"({b.get('registers_source')}), {b.get('blocks_per_sm')} blocks = {b.get('warps_per_sm')} warps "
                f"per SM, occupancy {self.occupancy:.1%}"
            )
        for t in b.get("tables", []):
            lines.append(
                f"  table {t['index']} x{t['count']}: {t['rows']:,} rows x {t['dim']} {t['dtype']}, "
                f"{t['lookups']:,} lookups/call; hit {t['l2_hit_rate']:.1%} (pinned rows {t['pinned_rows']:,}, "
                f"{t['pinned_bytes'] / 2**20:.1f} MiB); {t['warps_in_flight']:,} warps in flight over "
                f"{t['rounds']:.2f} rounds; iteration {t['iteration_s'] * 1e9:.0f} ns ({t['bound']}); "
                f"DRAM {t['achieved_dram_bytes_per_s'] / 1e9:,.0f} GB/s; per call {t['call_time_s'] * 1e6:,.1f} us"
                + (f" + pin {t['pin_time_s'] * 1e6:,.1f} us" if t["pin_time_s"] else "")
            )
        return "\n".join(lines)


# ---- the vectorized core ----------------------------------------------------------------


@dataclass
class _Configs:
    """Kernel configurations as arrays (one entry per configuration)."""

    kernels: list[KernelConfig]
    warp_variant: npt.NDArray[np.bool_]
    block_size: IntArray
    prefetch: FloatArray
    l2_hint: npt.NDArray[np.bool_]
    pinned_fraction: FloatArray
    evict_last: npt.NDArray[np.bool_]
    check: IntArray


def _configs(kernels: Sequence[KernelConfig]) -> _Configs:
    ks = list(kernels)
    for k in ks:
        if not isinstance(k, KernelConfig):
            raise InputError(f"kernels must be KernelConfig objects, but got {type(k).__name__}")
    return _Configs(
        kernels=ks,
        warp_variant=np.array([k.variant == "warp" for k in ks], dtype=bool),
        block_size=np.array([k.block_size for k in ks], dtype=np.int64),
        prefetch=np.array([k.prefetch_distance for k in ks], dtype=np.float64),
        l2_hint=np.array([k.prefetch_kind == "l2-hint" for k in ks], dtype=bool),
        pinned_fraction=np.array([k.pinned_row_fraction for k in ks], dtype=np.float64),
        evict_last=np.array([k.pin_method == "evict-last-prefetch" for k in ks], dtype=bool),
        check=np.array([_CHECK_CODE[k.bounds_check] for k in ks], dtype=np.int64),
    )


def _registers(c: _Configs, gpu: GPUSpec, dtype: str) -> tuple[IntArray, FloatArray, list[str]]:
    regs = np.empty(len(c.kernels), dtype=np.int64)
    spill = np.empty(len(c.kernels), dtype=np.float64)
    srcs = []
    for i, k in enumerate(c.kernels):
        r, s, src = kernel_registers(k, gpu, dtype)
        regs[i], spill[i] = r, s
        srcs.append(src)
    return regs, spill, srcs


def _vector_bytes(row_bytes: int) -> int:
    """Widest aligned per-lane load of the ``warp`` variant (16, 8, 4 or 2 bytes)."""
    for v in (16, 8, 4, 2):
        if row_bytes % v == 0:
            return v
    return 1


def _table_eval(table: Table, batch: int, c: _Configs, gpu: GPUSpec, blocks: IntArray, spill: FloatArray) -> dict[str, Any]:
    """Per-configuration figures of one call of ``table`` (arrays over configurations)."""
    p = model_params()
    clk = gpu.sm_clock_hz
    d = table.dim
    r_bytes = table.row_bytes
    r_fp = sector_footprint_bytes(r_bytes, gpu.l2_sector_bytes)
    res = residency(table, batch)
    n = float(res.accesses)
    lookups_per_bag = n / batch

    wpb = c.block_size // gpu.warp_size
    warps_per_sm = blocks * wpb
    slots_blocks = blocks * gpu.sm_count
    # work mapping
    chunks = math.ceil(d / gpu.warp_size)
    grid = np.where(c.warp_variant, np.maximum(slots_blocks, 1), PYTORCH_GRID_BLOCKS)
    warps_total = grid * wpb
    units = np.where(c.warp_variant, batch, batch * chunks).astype(np.float64)
    units_per_warp = np.ceil(units / np.maximum(warps_total, 1))
    # waves of blocks (pytorch) / rounds of bags (warp); the tail runs with fewer warps
    full_blocks_waves = np.floor(grid / np.maximum(slots_blocks, 1))
    tail_blocks = grid - full_blocks_waves * np.maximum(slots_blocks, 1)
    w_full = np.minimum(grid, np.maximum(slots_blocks, 1)) * wpb
    w_tail = tail_blocks * wpb
    # warp variant: whole rounds of bags over all warps, then a partial round
    rounds_full = np.where(c.warp_variant, np.floor(units / np.maximum(warps_total, 1)), full_blocks_waves * units_per_warp)
    tail_units = units - np.floor(units / np.maximum(warps_total, 1)) * warps_total
    w_tail = np.where(c.warp_variant, tail_units, w_tail)
    rounds_tail = np.where(c.warp_variant, (tail_units > 0).astype(np.float64), (tail_blocks > 0) * units_per_warp)
    # bytes moved by one warp iteration, and bags in flight
    bytes_per_iter = np.where(c.warp_variant, r_fp, r_fp / chunks)
    bags_in_flight = np.minimum(np.where(c.warp_variant, w_full, w_full / chunks), batch)

    # L2 residency: pinned rows (hottest first) capped by the persisting maximum
    k_rows = np.minimum(np.floor(c.pinned_fraction * table.rows), math.floor(gpu.persisting_l2_max_bytes / r_fp))
    pinned_bytes = k_rows * r_fp
    cap_rows = p.l2_capacity_fraction * np.maximum(gpu.l2_size_bytes - pinned_bytes, 0.0) / r_fp
    hits = res.hits(k_rows, cap_rows, bags_in_flight)
    h = np.clip(hits / n, 0.0, 1.0)

    # one iteration's dependent chain (seconds)
    l1 = gpu.latency_s(gpu.l1_latency_cycles)
    l2 = gpu.latency_s(gpu.l2_near_latency_cycles)
    dram = gpu.latency_s(gpu.dram_latency_cycles)
    lq = p.dram_queue_factor * dram
    # index loads: pytorch reads one 8-B index per iteration (all lanes the same address; a
    # new 128-B line every 16 lookups, first touched in DRAM); warp loads 32 indices at once
    per_line = LINE_BYTES / INDEX_BYTES
    t_idx = np.where(c.warp_variant, dram / gpu.warp_size, l1 + dram / per_line)
    variant_dep = np.where(c.warp_variant, DEPENDENT_PER_ITER["warp"], DEPENDENT_PER_ITER["pytorch"])
    dep = (variant_dep + np.where(c.check == 0, INLINE_CHECK_DEPENDENT, 0.0)) * DEPENDENT_ISSUE_CYCLES / clk
    # spilled registers come back from local memory (L1) once per iteration
    t_spill = np.where(spill > 0, l1, 0.0)
    ring = np.where(c.l2_hint, 1.0, 1.0 + c.prefetch)
    # l2-hint prefetches turn DRAM misses into L2 hits when they run far enough ahead
    hint_cover = np.where(c.l2_hint & (c.prefetch > 0), np.minimum(1.0, c.prefetch * (t_idx + l2 + dep) / dram), 0.0)
    miss_lat_scale = 1.0 - hint_cover  # share of the miss latency left on the chain

    def iteration(w: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Per-iteration time T of each warp with ``w`` warps in flight; and the DRAM rate."""
        w = np.maximum(w, 1.0)
        a = (t_idx + h * l2 + (1.0 - h) * (l2 + (dram - l2) * miss_lat_scale) + dep + t_spill) / ring
        kk = w * (1.0 - h) * bytes_per_iter / gpu.dram_bandwidth_bytes_per_s  # DRAM-busy time per iteration
        bq = (1.0 - h) * lq * miss_lat_scale / ring + np.where(c.l2_hint, (1.0 - h) * lq * hint_cover, 0.0)
        t_lat = 0.5 * ((a + kk) + np.sqrt((a - kk) ** 2 + 4.0 * bq * kk))
        t_l2bw = w * bytes_per_iter / gpu.l2_bandwidth_bytes_per_s
        instr = np.where(c.warp_variant, INSTR_PER_ITER["warp"], INSTR_PER_ITER["pytorch"]) + np.where(
            c.check == 0, INLINE_CHECK_INSTR, 0.0
        )
        per_sm = np.minimum(w / gpu.sm_count, np.maximum(warps_per_sm, 1))
        t_issue = per_sm * instr / (ISSUE_PER_SM_PER_CYCLE * clk)
        t = np.maximum(np.maximum(t_lat, t_l2bw), t_issue)
        which = np.where(t == t_lat, np.where(kk > 0.5 * t_lat, 1, 0), np.where(t == t_l2bw, 2, 3))
        return t, which.astype(np.float64)

    t_full, bound_full = iteration(w_full.astype(np.float64))
    t_tail, _ = iteration(w_tail.astype(np.float64))
    iters_per_unit = lookups_per_bag
    lookup_s = (rounds_full * t_full + rounds_tail * t_tail) * iters_per_unit
    launchable = blocks > 0
    lookup_s = np.where(launchable, lookup_s + KERNEL_LAUNCH_GAP_S, np.inf)

    # bytes: row misses, the index stream, offsets and the output
    row_dram = (n - hits) * r_fp
    index_bytes = n * INDEX_BYTES
    out_bytes = batch * r_bytes + np.where(c.warp_variant, 0.0, batch * 8.0)  # pytorch also writes bag_size
    dram_bytes = row_dram + index_bytes + batch * 8.0 + out_bytes

    full_threads = gpu.sm_count * gpu.max_threads_per_sm
    bw_stream = little_throughput(full_threads * 16.0, dram, gpu.dram_bandwidth_bytes_per_s, lq)
    # separate bounds check: one streaming pass over the indices before the lookup
    check_s = np.where(c.check == 1, KERNEL_LAUNCH_GAP_S + index_bytes / bw_stream, 0.0)
    dram_bytes = dram_bytes + np.where(c.check == 1, index_bytes, 0.0)
    # evict-last pinning pass: prefetch.global.L2::evict_last over the pinned rows
    pin_s = np.where(c.evict_last & (k_rows > 0), KERNEL_LAUNCH_GAP_S + pinned_bytes / bw_stream, 0.0)
    dram_bytes = dram_bytes + np.where(c.evict_last, pinned_bytes, 0.0)

    total_iter_time = np.maximum(lookup_s - KERNEL_LAUNCH_GAP_S, 1e-30)
    return {
        "lookup_s": lookup_s + check_s,
        "pin_s": pin_s,
        "hits": hits,
        "n": n,
        "h": h,
        "dram_bytes": dram_bytes,
        "k_rows": k_rows,
        "pinned_bytes": pinned_bytes,
        "w_full": w_full,
        "rounds": (rounds_full + rounds_tail) / np.maximum(units_per_warp, 1),
        "t_full": t_full,
        "bound": bound_full,
        "dram_rate": row_dram / total_iter_time,
    }


_BOUND_NAMES = ("latency", "dram-bandwidth", "l2-bandwidth", "issue")


def _evaluate(workload: Workload, kernels: Sequence[KernelConfig], gpu: GPUSpec) -> tuple[dict[str, Any], list[dict[str, Any]], _Configs]:
    c = _configs(kernels)
    per_table: list[dict[str, Any]] = []
    total = np.zeros(len(c.kernels))
    pin = np.zeros(len(c.kernels))
    hits = np.zeros(len(c.kernels))
    n_all = 0.0
    dram = np.zeros(len(c.kernels))
    dtype0 = workload.tables[0].dtype
    regs, spill, srcs = _registers(c, gpu, dtype0)
    blocks = blocks_per_sm(gpu, c.block_size, regs, 0)["active"]
    for t in workload.tables:
        if t.dtype != dtype0:
            r_t, s_t, _ = _registers(c, gpu, t.dtype)
            b_t = blocks_per_sm(gpu, c.block_size, r_t, 0)["active"]
        else:
            s_t, b_t = spill, blocks
        e = _table_eval(t, workload.batch_size, c, gpu, b_t, s_t)
        total += t.count * (e["lookup_s"] + e["pin_s"])
        pin += t.count * e["pin_s"]
        hits += t.count * e["hits"]
        n_all += t.count * e["n"]
        dram += t.count * e["dram_bytes"]
        per_table.append(e)
    warps = blocks * (c.block_size // gpu.warp_size)
    agg = {
        "time_s": total,
        "pin_time_s": pin,
        "l2_hit_rate": hits / max(n_all, 1.0),
        "dram_bytes": dram,
        "occupancy": warps / gpu.max_warps_per_sm,
        "registers": regs,
        "spill_bytes": spill,
        "registers_source": srcs,
        "blocks_per_sm": blocks,
        "warps_per_sm": warps,
    }
    return agg, per_table, c


def _check_args(workload: Workload, gpu: GPUSpec | str) -> GPUSpec:
    if not isinstance(workload, Workload):
        raise InputError(f"workload must be a perfmodel.Workload, but got {type(workload).__name__}")
    return get_gpu(gpu)


def predict_batch(workload: Workload, kernels: Sequence[KernelConfig], gpu: GPUSpec | str) -> FloatArray:
    """Predicted stage time (s) of each kernel configuration, as a NumPy array.

    Same physics as :func:`predict` (it is the same code); launches that cannot run (0
    resident blocks) give ``inf``.
    """
    g = _check_args(workload, gpu)
    if len(kernels) == 0:
        return np.zeros(0)
    agg, _, _ = _evaluate(workload, kernels, g)
    return np.asarray(agg["time_s"], dtype=np.float64)


def predict(workload: Workload, kernel: KernelConfig, gpu: GPUSpec | str) -> Prediction:
    """Predicted time of one call of the embedding stage, with its breakdown.

    Deterministic: the same inputs give the same numbers (sampled index streams are
    seeded from the workload).
    """
    g = _check_args(workload, gpu)
    if not isinstance(kernel, KernelConfig):
        raise InputError(f"kernel must be a perfmodel.KernelConfig, but got {type(kernel).__name__}")
    agg, per_table, _ = _evaluate(workload, [kernel], g)
    tables = []
    bounds = []
    for i, (t, e) in enumerate(zip(workload.tables, per_table, strict=True)):
        bound = _BOUND_NAMES[int(e["bound"][0])]
        bounds.append((float(e["lookup_s"][0]) * t.count, bound))
        tables.append({
            "index": i, "count": t.count, "rows": t.rows, "dim": t.dim, "dtype": t.dtype,
            "lookups": int(e["n"]), "l2_hit_rate": float(e["h"][0]), "pinned_rows": int(e["k_rows"][0]),
            "pinned_bytes": float(e["pinned_bytes"][0]), "warps_in_flight": int(e["w_full"][0]),
            "rounds": float(e["rounds"][0]), "iteration_s": float(e["t_full"][0]), "bound": bound,
            "achieved_dram_bytes_per_s": float(e["dram_rate"][0]),
            "call_time_s": float(e["lookup_s"][0]), "pin_time_s": float(e["pin_s"][0]),
            "dram_bytes_per_call": float(e["dram_bytes"][0]),
        })
    bound = max(bounds)[1] if bounds else "latency"
    if not np.isfinite(agg["time_s"][0]):
        bound = "unlaunchable"
    breakdown = {
        "kernel": kernel.to_dict(),
        "gpu": g.id,
        "registers": int(agg["registers"][0]),
        "registers_source": agg["registers_source"][0],
        "spill_bytes": float(agg["spill_bytes"][0]),
        "blocks_per_sm": int(agg["blocks_per_sm"][0]),
        "warps_per_sm": int(agg["warps_per_sm"][0]),
        "tables": tables,
    }
    return Prediction(
        time_s=float(agg["time_s"][0]),
        pin_time_s=float(agg["pin_time_s"][0]),
        occupancy=float(agg["occupancy"][0]),
        l2_hit_rate=float(agg["l2_hit_rate"][0]),
        dram_bytes=float(agg["dram_bytes"][0]),
        bound=bound,
        breakdown=breakdown,
    )
