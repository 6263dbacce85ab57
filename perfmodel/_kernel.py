"""The lookup kernels as both fidelities see them: one place for each kernel fact and cost.

The analytical model (:mod:`perfmodel._model`) and the simulator (:mod:`perfmodel.sim`)
differ in how they combine these facts (a closed form vs events), never in the facts:

- :class:`KernelFacts` (:func:`kernel_facts`): what one compiled lookup kernel is, per
  (kernel configuration, table dtype, GPU architecture): its registers and spills, the SASS
  instructions of one lookup iteration, the dependent instructions on its critical path,
  and how many row loads a warp keeps in flight. The one place a later source of these
  figures (a profile read off the compiled kernel) plugs in.
- :class:`WorkMapping` (:func:`work_mapping`): how a variant spreads a bag's row over a
  warp (work units per bag, column passes, bytes per pass), with :func:`vector_bytes`, the
  ``warp`` variant's per-lane vector width (also the launcher's, ``kernels.vec_bytes_for``).
- pinned rows (:func:`pinned_row_count`, :func:`pinned_rows`): the hottest
  ``pinned_row_fraction`` of the rows, at most the persisting-L2 maximum.
- the passes around the lookup kernel, one formula each: the separate bounds check
  (:func:`bounds_check_pass_bytes`), the ``evict-last-prefetch`` pinning pass
  (:func:`evict_last_pass_bytes`) and the ``access-policy-window`` index remap
  (:func:`remap_pass_bytes`), each timed by :func:`pass_time_s` at the DRAM bandwidth of a
  fully occupied streaming pass (:func:`streaming_bandwidth`); and the bytes the lookup
  kernel reads and writes besides rows and indices (:func:`lookup_io_bytes`).

Every constant names its source.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt

from perfmodel._config import DTYPES, KernelConfig, Table
from perfmodel._errors import InputError, check_int
from perfmodel._gpu import GPUSpec
from perfmodel._indices import hot_rows
from perfmodel._physics import little_throughput, loop_instructions, model_params

__all__ = [
    "DEPENDENT_ISSUE_CYCLES",
    "DEPENDENT_PER_ITER",
    "INDEX_BYTES",
    "INLINE_CHECK_DEPENDENT",
    "KERNEL_LAUNCH_GAP_S",
    "PYTORCH_GRID_BLOCKS",
    "SCHEDULERS_PER_SM",
    "VECTOR_WIDTHS_BYTES",
    "KernelFacts",
    "WorkMapping",
    "bounds_check_pass_bytes",
    "compile_facts",
    "evict_last_pass_bytes",
    "expected_row_map_bytes",
    "kernel_facts",
    "kernel_registers",
    "lookup_io_bytes",
    "pass_time_s",
    "pinned_row_count",
    "pinned_rows",
    "remap_pass_bytes",
    "sector_footprint_bytes",
    "streaming_bandwidth",
    "vector_bytes",
    "work_mapping",
]

IntArray = npt.NDArray[np.int64]

#: PyTorch 2.1 EmbeddingBag forward (sum/mean): ``grid = 1024`` blocks (aten/src/ATen/native/cuda/EmbeddingBag.cu)
PYTORCH_GRID_BLOCKS = 1024
#: warp schedulers per SM, each issuing one warp instruction per cycle (NVIDIA A100 / H100 whitepapers)
SCHEDULERS_PER_SM = 4.0
#: dependent-issue latency of an integer/FP32 instruction, cycles (Jia et al., "Dissecting the
#: NVIDIA Volta GPU Architecture via Microbenchmarking", 2018: 4 cycles; same on Ampere/Hopper)
DEPENDENT_ISSUE_CYCLES = 4.0
#: gap between back-to-back kernels in one stream, s. Estimate: Nsight Systems traces of
#: dependent launches on A100/H100 show ~2 us of idle GPU between kernels; to be calibrated.
KERNEL_LAUNCH_GAP_S = 2.0e-6
#: dependent instructions on one iteration's critical path besides the loads, read off the
#: SASS of the hot loops (nvcc 13.0, sm_80): IMAD.WIDE, IMAD.IADD, LEA, LEA.HI.X before the
#: row load, FSEL/FADD after it; the inline assert adds ISETP.GE(.EX) and a predicated BRA.
DEPENDENT_PER_ITER = 6.0
INLINE_CHECK_DEPENDENT = 3.0
#: index bytes per lookup (int64 indices, as PyTorch passes them)
INDEX_BYTES = 8
#: bytes per bag of the offsets both kernels read and of the ``bag_size`` the ``pytorch``
#: kernel writes (int64; kernels/embedding_bag_pytorch.cu, ``bag_size[bag] = bag_size_``)
OFFSET_BYTES = 8
BAG_SIZE_BYTES = 8
#: vector load widths the ``warp`` variant is compiled for, widest first (kernels/embedding_bag_warp.cu)
VECTOR_WIDTHS_BYTES = (16, 8, 4, 2)


# ---- the row over a warp ---------------------------------------------------------------


def vector_bytes(dim: int, itemsize: int) -> int:
    """The ``warp`` variant's per-lane load (bytes): the widest vector that divides a row of
    ``dim`` elements of ``itemsize`` bytes, so every row stays aligned; at least one element."""
    check_int(dim, "dim", min_val=1)
    if itemsize not in (2, 4):
        raise InputError(f"`itemsize in (2, 4)` must hold, but got itemsize={itemsize!r}")
    row = dim * itemsize
    for v in VECTOR_WIDTHS_BYTES:
        if v >= itemsize and row % v == 0:
            return v
    return itemsize  # pragma: no cover - itemsize always divides the row


@dataclass(frozen=True, kw_only=True)
class WorkMapping:
    """How one variant spreads a table's rows over a warp.

    A warp's work unit is a bag (``warp``) or a (bag, 32-column chunk) pair (``pytorch``);
    one lookup iteration of a unit loads ``pass_bytes`` of the row, and a unit wider than
    one load is walked in ``passes_per_unit`` column passes, each over all of the bag's
    lookups.
    """

    units_per_bag: int
    passes_per_unit: int
    #: bytes of a row a unit covers, and that one lookup iteration loads
    unit_bytes: int
    pass_bytes: int


def work_mapping(variant: str, dim: int, dtype: str, warp_size: int = 32) -> WorkMapping:
    """The work mapping of ``variant`` on a table of ``dim`` columns of ``dtype``.

    ``pytorch`` (PyTorch 2.1 ``EmbeddingBag_updateOutputKernel_sum_mean``): one warp per
    (bag, 32-column chunk), a lane per column, so a load moves 32 elements. ``warp``: one
    warp per bag, the lanes across the row with :func:`vector_bytes` each.
    """
    itemsize = DTYPES[dtype]
    row_bytes = dim * itemsize
    if variant == "pytorch":
        unit = warp_size * itemsize
        return WorkMapping(units_per_bag=math.ceil(dim / warp_size), passes_per_unit=1, unit_bytes=unit,
                           pass_bytes=unit)
    pass_bytes = warp_size * vector_bytes(dim, itemsize)
    return WorkMapping(units_per_bag=1, passes_per_unit=math.ceil(row_bytes / pass_bytes), unit_bytes=row_bytes,
                       pass_bytes=pass_bytes)


def sector_footprint_bytes(row_bytes: int, sector_bytes: int = 32) -> float:
    """Mean bytes of the sectors a row of ``row_bytes`` covers, over its possible alignments.

    Rows start at multiples of gcd(R, 32) within a sector; a row then spans
    (R + 32 - gcd(R, 32)) / 32 sectors on average (R / 32 when R is a multiple of 32).
    """
    g = math.gcd(row_bytes, sector_bytes)
    return float(row_bytes + sector_bytes - g)


# ---- the compiled kernel -----------------------------------------------------------------


#: Interim register demand used only when the shipped compiler table lacks a configuration.
#: Basis: FACTS.md section 1 (a PyTorch 2.1 replica, nvcc 13.0, sm_80: 54 registers with the
#: in-loop assert, 48 without); ring of p rows adds the held values and their addresses.
_INTERIM_BASE = {("pytorch", "inline"): 54, ("pytorch", "separate"): 48, ("pytorch", "none"): 48,
                 ("warp", "inline"): 40, ("warp", "separate"): 36, ("warp", "none"): 36}


def _interim_registers(k: KernelConfig) -> tuple[int, int]:
    per_row = 1 if k.variant == "pytorch" else max(1, 16 // 4)  # fp32 scalar vs a float4 per lane
    held = per_row + 2 if k.prefetch_kind == "register" else 0
    demand = _INTERIM_BASE[(k.variant, k.bounds_check)] + held * k.prefetch_distance
    if k.register_cap and demand > k.register_cap:
        return k.register_cap, 4 * (demand - k.register_cap)
    return min(demand, 255), 0


@dataclass(frozen=True, kw_only=True)
class KernelFacts:
    """What one compiled lookup kernel is and does per lookup iteration.

    One per (kernel configuration, table dtype, GPU architecture); both fidelities read
    their registers, instruction counts and loads in flight from here.
    """

    #: registers per thread, spill bytes per thread (stores + loads), and where they come from
    registers: int
    spill_bytes: int
    registers_source: str
    #: SASS instructions one lookup iteration of a warp executes, spill code included
    instructions_per_iteration: float
    #: dependent instructions on one iteration's critical path besides the loads
    dependent_instructions: float
    #: row loads a warp keeps in flight: 1 + p for a register ring of p prefetched rows,
    #: 1 for ``l2-hint`` (its prefetches hold no registers and are not waited for)
    row_loads_in_flight: int
    #: lookups ahead an ``l2-hint`` kernel prefetches into the L2 (0: none)
    l2_hint_distance: int
    #: where the instruction counts come from
    instructions_source: str

    @property
    def dependent_cycles(self) -> float:
        """Cycles of dependent issue on one iteration's chain."""
        return self.dependent_instructions * DEPENDENT_ISSUE_CYCLES


_LOOP_SOURCE = ("perfmodel/data/calibration/loop_instructions.toml (counted from nvcc's SASS by "
                "scripts/count_loop_instructions.py); dependent chain read off the same SASS")


@lru_cache(maxsize=65536)
def compile_facts(variant: str, register_cap: int, prefetch_distance: int, prefetch_kind: str, bounds_check: str,
           pin_method: str, arch: str, dtype: str) -> KernelFacts:
    """:func:`kernel_facts` by the fields that change the compiled kernel (memoized)."""
    k = KernelConfig(variant=variant, register_cap=register_cap, prefetch_distance=prefetch_distance,
                     prefetch_kind=prefetch_kind, bounds_check=bounds_check, pin_method=pin_method)
    from perfmodel._resources import kernel_resources

    ru = kernel_resources(k, arch, dtype=dtype)
    if ru is not None:
        regs, spill, src = int(ru.registers), int(ru.spill_store_bytes + ru.spill_load_bytes), f"compiler table ({ru.compiler})"
    else:
        regs, spill = _interim_registers(k)
        src = "interim estimate (no compiler-table entry)"
    inline = bounds_check == "inline"
    l2_hint = prefetch_kind == "l2-hint"
    return KernelFacts(
        registers=regs,
        spill_bytes=spill,
        registers_source=src,
        instructions_per_iteration=loop_instructions(variant, inline, prefetch_kind, prefetch_distance, register_cap),
        dependent_instructions=DEPENDENT_PER_ITER + (INLINE_CHECK_DEPENDENT if inline else 0.0),
        row_loads_in_flight=1 if l2_hint else 1 + prefetch_distance,
        l2_hint_distance=prefetch_distance if l2_hint else 0,
        instructions_source=_LOOP_SOURCE,
    )


def kernel_facts(kernel: KernelConfig, arch: str, dtype: str = "float32") -> KernelFacts:
    """The facts of ``kernel``'s lookup kernel compiled for ``arch`` on a ``dtype`` table (memoized).

    Registers from the shipped compiler table (``perfmodel.kernel_resources``) where it has
    the configuration, else an interim estimate marked as such in ``registers_source``.
    """
    return compile_facts(kernel.variant, kernel.register_cap, kernel.prefetch_distance, kernel.prefetch_kind,
                  kernel.bounds_check, kernel.pin_method, arch, dtype)


def kernel_registers(kernel: KernelConfig, gpu: GPUSpec, dtype: str = "float32") -> tuple[int, int, str]:
    """(registers per thread, spill bytes per thread, source) of the lookup kernel.

    From the shipped compiler table (``perfmodel.kernel_resources``) where it has the
    configuration; else the interim estimate above, marked as such in the source.
    """
    f = kernel_facts(kernel, gpu.arch, dtype)
    return f.registers, f.spill_bytes, f.registers_source


# ---- pinned rows ---------------------------------------------------------------------------


def pinned_row_count(fraction: Any, rows: int, row_bytes: int, gpu: GPUSpec) -> Any:
    """Rows pinned in the L2: ``floor(fraction * rows)``, at most the persisting-L2 maximum
    over the row's sector footprint (:func:`sector_footprint_bytes`). ``fraction`` a float
    (gives an int) or a NumPy array (gives floats)."""
    cap = math.floor(gpu.persisting_l2_max_bytes / sector_footprint_bytes(row_bytes, gpu.l2_sector_bytes))
    if isinstance(fraction, np.ndarray):
        return np.minimum(np.floor(fraction * rows), cap)
    return min(math.floor(fraction * rows), cap)


def pinned_rows(table: Table, kernel: KernelConfig, gpu: GPUSpec) -> IntArray:
    """Ids of the rows ``kernel`` pins for ``table``: the hottest first
    (:func:`perfmodel._indices.hot_rows`), :func:`pinned_row_count` of them."""
    k = pinned_row_count(kernel.pinned_row_fraction, table.rows, table.row_bytes, gpu)
    return hot_rows(table, max(k, 0))


# ---- the passes around the lookup kernel -----------------------------------------------------


@lru_cache(maxsize=64)
def streaming_bandwidth(gpu: GPUSpec) -> float:
    """DRAM bandwidth (bytes/s) of a fully occupied streaming pass (bounds check, pinning
    prefetches, index remap): every thread of a full GPU with a 16-byte request in flight,
    through Little's law with the loaded DRAM latency (:func:`perfmodel._physics.little_throughput`,
    the physics the stream-read microbenchmark calibrates, data/calibration/micro.toml).

    Chosen over the raw peak bandwidth: no streaming kernel reaches the datasheet figure,
    and this one is fitted on measured stream reads (``scripts/fit_micro.py --check``).
    """
    p = model_params()
    dram = gpu.latency_s(gpu.dram_latency_cycles)
    n_bytes = gpu.sm_count * gpu.max_threads_per_sm * 16.0
    return float(little_throughput(n_bytes, dram, gpu.dram_bandwidth_bytes_per_s, p.dram_queue_factor * dram))


def pass_time_s(pass_bytes: Any, bandwidth: float) -> Any:
    """Time of one streaming pass moving ``pass_bytes``: a launch gap plus the bytes at
    ``bandwidth`` (:func:`streaming_bandwidth`). Elementwise on arrays."""
    return KERNEL_LAUNCH_GAP_S + pass_bytes / bandwidth


def bounds_check_pass_bytes(lookups: Any) -> Any:
    """DRAM bytes of the separate bounds check (``bounds_check = "separate"``): one read of the indices."""
    return lookups * INDEX_BYTES


def evict_last_pass_bytes(pinned: Any, row_bytes: int, sector_bytes: int = 32) -> Any:
    """DRAM bytes of the ``evict-last-prefetch`` pinning pass: ``prefetch.global.L2::evict_last``
    over the ``pinned`` rows, each its sector footprint."""
    return pinned * sector_footprint_bytes(row_bytes, sector_bytes)


def remap_pass_bytes(lookups: Any, row_map_bytes: Any) -> Any:
    """DRAM bytes of the ``access-policy-window`` index remap (kernels/embedding_bag_aux.cu,
    ``recperf_remap_indices``; the table is stored hottest row first): the indices read and
    written once, plus ``row_map_bytes``, the ``row_map`` sectors the call touches (each
    from DRAM once: ``row_map`` is not pinned, so it starts cold)."""
    return 2.0 * (lookups * INDEX_BYTES) + row_map_bytes


def expected_row_map_bytes(touched_fraction: Any, rows: int, sector_bytes: int = 32) -> Any:
    """Expected bytes of the ``row_map`` sectors holding a touched row when a ``touched_fraction``
    of the ``rows`` is spread at random: a sector of e entries holds none with probability
    (1 - D/E)^e. (The simulator counts the sectors of the call's indices exactly.)"""
    per_sector = sector_bytes // INDEX_BYTES
    return math.ceil(rows / per_sector) * sector_bytes * (1.0 - _int_power(1.0 - touched_fraction, per_sector))


def _int_power(x: Any, e: int) -> Any:
    """x ** e for a whole e >= 1 by repeated squaring (NumPy's pow on arrays costs 30x more)."""
    out: Any = None
    while e:
        if e & 1:
            out = x if out is None else out * x
        e >>= 1
        if e:
            x = x * x
    return out


def lookup_io_bytes(variant: str, bags: int, row_bytes: int) -> float:
    """DRAM bytes the lookup kernel moves besides rows and indices: the offsets read, the
    output written and, for ``pytorch``, the ``bag_size`` side output written."""
    side = bags * float(BAG_SIZE_BYTES) if variant == "pytorch" else 0.0
    return bags * float(OFFSET_BYTES) + (bags * row_bytes + side)
