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
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt

from perfmodel._config import DTYPES, KernelConfig, Table
from perfmodel._errors import InputError, check_int
from perfmodel._gpu import GPUSpec
from perfmodel._indices import hot_rows
from perfmodel._occupancy import _occupancy_cached
from perfmodel._physics import issue_interval_cycles, little_throughput, model_params
from perfmodel._profile import KernelProfile
from perfmodel._resources import ResourceUsage

__all__ = [
    "DEPENDENT_ISSUE_CYCLES",
    "INDEX_BYTES",
    "KERNEL_LAUNCH_GAP_S",
    "PYTORCH_GRID_BLOCKS",
    "PYTORCH_MAPPING",
    "SCHEDULERS_PER_SM",
    "TBE_BLOCKS_PER_SM_CAP",
    "VECTOR_WIDTHS_BYTES",
    "KernelFacts",
    "ProfileProvider",
    "WorkMapping",
    "bounds_check_pass_bytes",
    "compile_facts",
    "evict_last_pass_bytes",
    "expected_row_map_bytes",
    "kernel_facts",
    "kernel_registers",
    "launch_blocks_per_sm",
    "lookup_io_bytes",
    "pass_time_s",
    "pinned_row_count",
    "pinned_rows",
    "remap_pass_bytes",
    "sector_footprint_bytes",
    "set_profile_provider",
    "streaming_bandwidth",
    "tbe_vecs_for",
    "vector_bytes",
    "work_mapping",
]

IntArray = npt.NDArray[np.int64]

#: PyTorch 2.1 EmbeddingBag forward (sum/mean): ``grid = 1024`` blocks (aten/src/ATen/native/cuda/EmbeddingBag.cu);
#: the MICRO'24 artifact's combined kernel and PyTorch's current kernel keep that launch
PYTORCH_GRID_BLOCKS = 1024
#: variants with PyTorch's launch and work mapping: block (32, b/32), a warp per (bag, 32-column chunk)
PYTORCH_MAPPING = ("pytorch", "pytorch-current", "micro24-combined")
#: FBGEMM's TBE forward caps its grid at 64 blocks per SM (MAX_THREAD_BLOCKS_FACTOR = 64,
#: fbgemm_gpu/codegen/training/forward/embedding_forward_split_template.cu, pytorch/FBGEMM 71d6f8b2)
TBE_BLOCKS_PER_SM_CAP = 64
#: FBGEMM's TBE reads rows in 4-element vectors (Vec4T): 32 lanes x 4 = 128 columns per step
TBE_VEC_ELEMENTS = 4
#: warp schedulers per SM, each issuing one warp instruction per cycle (NVIDIA A100 / H100 whitepapers)
SCHEDULERS_PER_SM = 4.0
#: dependent-issue latency of an integer/FP32 instruction, cycles (Jia et al., "Dissecting the
#: NVIDIA Volta GPU Architecture via Microbenchmarking", 2018: 4 cycles; same on Ampere/Hopper)
DEPENDENT_ISSUE_CYCLES = 4.0
#: gap between back-to-back kernels in one stream, s. Estimate: Nsight Systems traces of
#: dependent launches on A100/H100 show ~2 us of idle GPU between kernels; to be calibrated.
#: Corroborated, not fitted: FlagGems' kernel-mode benchmarks on an H20 time ops that launch one
#: trivial kernel at 5.28 us median (PRs #5187, #5156, #5157, #5158 at [64, 64]) and ops that
#: launch none at 3.2 us (PRs #3886, #5446): a trivial kernel adds 2.1 us to the event pair
#: (validation/data/published/harness.toml, events-after-flush).
KERNEL_LAUNCH_GAP_S = 2.0e-6
#: index bytes per lookup (int64 indices, as PyTorch passes them)
INDEX_BYTES = 8
#: bytes per bag of the offsets every kernel reads and of the ``bag_size`` the PyTorch-mapped
#: kernels write (int64; kernels/embedding_bag_pytorch.cu, ``bag_size[bag] = bag_size_``); bytes per
#: lookup of the ``offset2bag`` they write (``if (featureDim == 0) offset2bag[emb] = bag``)
OFFSET_BYTES = 8
BAG_SIZE_BYTES = 8
OFFSET2BAG_BYTES = 8
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

    ``pytorch``, ``pytorch-current``, ``micro24-combined`` (PyTorch 2.1's
    ``EmbeddingBag_updateOutputKernel_sum_mean`` launch): one warp per (bag, 32-column chunk), a
    lane per column, so a load moves 32 elements. ``warp``: one warp per bag, the lanes across
    the row with :func:`vector_bytes` each, a wider row in column passes. ``tbe`` (FBGEMM's TBE
    forward): one warp per bag, each lookup reads the whole row in 4-element vectors per lane
    (:func:`tbe_vecs_for` of them, all in the same iteration).
    """
    itemsize = DTYPES[dtype]
    row_bytes = dim * itemsize
    if variant in PYTORCH_MAPPING:
        unit = warp_size * itemsize
        return WorkMapping(units_per_bag=math.ceil(dim / warp_size), passes_per_unit=1, unit_bytes=unit,
                           pass_bytes=unit)
    if variant == "tbe":
        return WorkMapping(units_per_bag=1, passes_per_unit=1, unit_bytes=row_bytes, pass_bytes=row_bytes)
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


#: where a profile comes from (KernelProfile.source) -> how explain() names it
_SOURCE_NAMES = {"table": "shipped table", "compiled": "compiled now", "cache": "compiled earlier (cache)"}

#: A function that compiles a configuration the shipped table lacks: ``(kernel, arch, dtype,
#: index_dtype, tbe_vecs) -> (ResourceUsage, KernelProfile)`` or None where it cannot. perfmodel
#: never imports ``kernels``; a caller that has it (the recperf CLI, a script) registers
#: ``kernels``' compile-and-disassemble path with :func:`set_profile_provider`.
ProfileProvider = Callable[[KernelConfig, str, str, str, int], "tuple[ResourceUsage, KernelProfile] | None"]
_PROVIDER: list[ProfileProvider | None] = [None]


def set_profile_provider(provider: ProfileProvider | None) -> ProfileProvider | None:
    """Register the function that compiles configurations the shipped table lacks (None: none).

    Returns the previous provider. The kernel facts computed so far are forgotten, so a
    configuration refused before is compiled on its next use.
    """
    if provider is not None and not callable(provider):
        raise InputError(f"a profile provider must be callable, but got {type(provider).__name__}")
    previous = _PROVIDER[0]
    _PROVIDER[0] = provider
    compile_facts.cache_clear()
    return previous


def tbe_vecs_for(dim: int) -> int:
    """FBGEMM's kMaxVecsPerThread for ``dim`` columns: the 4-element vectors per lane a row takes
    (32 lanes x 4 elements = 128 per vector step; kernels/embedding_bag_tbe.cu)."""
    return max(1, math.ceil(dim / (32 * TBE_VEC_ELEMENTS)))


@dataclass(frozen=True, kw_only=True)
class KernelFacts:
    """What one compiled lookup kernel is and does per lookup (one row of one bag, per warp).

    One per (kernel configuration, table dtype, GPU architecture); read off the kernel profile
    of the compiled code (:class:`perfmodel.KernelProfile`) and the compiler's resource figures,
    both from the shipped table or compiled now. Both fidelities take their registers,
    instruction counts, loads in flight and chain from here.
    """

    #: registers per thread, spill bytes per thread (stores + loads), and where they come from
    registers: int
    spill_bytes: int
    registers_source: str
    #: the profile they come from, and a readable account of its source (table/compiled, compiler)
    profile: KernelProfile
    profile_source: str
    #: SASS instructions per lookup (every class, spill code and a validation loop included)
    instructions_per_lookup: float
    #: cycles one warp needs to issue them back to back: the instructions' stall counts
    #: (control bits), estimated as instructions x the mean issue interval of the hot loops
    #: (data/calibration/issue.toml)
    issue_latency_cycles: float
    #: row loads a warp keeps in flight (issued, not yet waited for), and the lookups one pass of
    #: the hot loop handles (the compiler's unrolling); memory rounds per lookup follow from both
    row_loads_in_flight: int
    lookups_per_iteration: int
    #: whether a row's address waits on an index load of the same iteration
    index_on_row_chain: bool
    #: global index loads per lookup, and local (spill) loads and stores per lookup
    index_loads_per_lookup: float
    local_ops_per_lookup: float
    #: whether a local (spill) load sits on the chain from the index to the accumulation
    local_on_chain: bool
    #: cycles from an index's arrival to its row load's issue: the chain's dependent instructions
    #: between the two loads (address arithmetic), each :data:`DEPENDENT_ISSUE_CYCLES`
    address_cycles: float
    #: ``pytorch-current`` with the inline check: the in-kernel validation loop reads the bag's
    #: indices once more before the main loop (one pass over them per warp)
    validation_loop: bool
    #: lookups ahead an ``l2-hint`` kernel prefetches into the L2 (0: none)
    l2_hint_distance: int

    @property
    def memory_rounds_per_lookup(self) -> float:
        """Dependent memory round trips per lookup: a pass of u lookups with k row loads in
        flight waits ceil(u / k) times (u = lookups per iteration, k = loads in flight)."""
        u = max(self.lookups_per_iteration, 1)
        return math.ceil(u / max(self.row_loads_in_flight, 1)) / u

    @property
    def loads_per_round(self) -> float:
        """Row loads a warp waits for together in one memory round."""
        return 1.0 / self.memory_rounds_per_lookup

    # names kept for the simulator's and the docs' vocabulary
    @property
    def instructions_per_iteration(self) -> float:
        return self.instructions_per_lookup


def _compiled_figures(k: KernelConfig, arch: str, dtype: str, tbe_vecs: int) -> tuple[Any, Any]:
    """(ResourceUsage, KernelProfile) of ``k``: the shipped table, else the registered provider."""
    from perfmodel._resources import kernel_profile, kernel_resources

    if tbe_vecs == 1:
        ru, prof = kernel_resources(k, arch, dtype=dtype), kernel_profile(k, arch, dtype=dtype)
        if ru is not None and prof is not None:
            return ru, prof
    provider = _PROVIDER[0]
    if provider is not None:
        got = provider(k, arch, dtype, "int64", tbe_vecs)
        if got is not None:
            return got
    what = ", ".join(f"{f}={getattr(k, f)!r}" for f in ("variant", "register_cap", "prefetch_distance",
                                                         "prefetch_kind", "bounds_check"))
    raise InputError(
        f"no kernel profile for ({what}) on {arch} with {dtype} rows"
        + (f" and {tbe_vecs} vectors per lane" if tbe_vecs != 1 else "")
        + ": the shipped resource table does not hold it and no compiler is registered "
        "(install recperf[compile] and use the recperf CLI, or pass kernels' compiler to "
        "perfmodel.set_profile_provider); the model does not guess a compiled kernel"
    )


def _address_steps(chain: tuple[tuple[str, str], ...]) -> int:
    """Instructions of ``chain`` between its first global load (the index) and the next one (the row)."""
    loads = [i for i, (_op, cls) in enumerate(chain) if cls == "global"]
    return loads[1] - loads[0] - 1 if len(loads) >= 2 else 0


@lru_cache(maxsize=65536)
def compile_facts(variant: str, register_cap: int, prefetch_distance: int, prefetch_kind: str, bounds_check: str,
                  pin_method: str, arch: str, dtype: str, tbe_vecs: int = 1) -> KernelFacts:
    """:func:`kernel_facts` by the fields that change the compiled kernel (memoized)."""
    k = KernelConfig(variant=variant, register_cap=register_cap, prefetch_distance=prefetch_distance,
                     prefetch_kind=prefetch_kind, bounds_check=bounds_check, pin_method=pin_method)
    ru, prof = _compiled_figures(k, arch, dtype, tbe_vecs)
    compiler = prof.compiler or ru.compiler
    src = f"{_SOURCE_NAMES.get(prof.source, prof.source)}, {compiler}" if compiler else _SOURCE_NAMES.get(prof.source, prof.source)
    instr = prof.total_instructions_per_lookup
    loads = prof.global_loads_per_lookup
    l2_hint = prefetch_kind == "l2-hint" and prefetch_distance > 0
    return KernelFacts(
        registers=int(ru.registers),
        spill_bytes=int(ru.spill_store_bytes + ru.spill_load_bytes),
        registers_source=f"compiler figures ({src})",
        profile=prof,
        profile_source=src,
        instructions_per_lookup=instr,
        issue_latency_cycles=instr * issue_interval_cycles(arch),
        row_loads_in_flight=prof.row_loads_in_flight,
        lookups_per_iteration=max(1, prof.lookups_per_iteration),
        index_on_row_chain=prof.index_on_row_chain,
        index_loads_per_lookup=float(loads["index"]),
        local_ops_per_lookup=prof.local_ops_per_lookup,
        local_on_chain=any(cls == "local" for _op, cls in prof.chain),
        address_cycles=DEPENDENT_ISSUE_CYCLES * _address_steps(prof.chain),
        validation_loop=variant == "pytorch-current" and bounds_check == "inline" and loads["index"] >= 2.0,
        l2_hint_distance=prefetch_distance if l2_hint else 0,
    )


def kernel_facts(kernel: KernelConfig, arch: str, dtype: str = "float32", dim: int | None = None) -> KernelFacts:
    """The facts of ``kernel``'s lookup kernel compiled for ``arch`` on a ``dtype`` table (memoized).

    From the shipped table's figures and profile where it holds the configuration, else from
    the registered compiler (:func:`set_profile_provider`); InputError where neither can.
    ``dim``: the table's columns (``tbe`` compiles one kernel per 128 columns per lane).
    """
    vecs = tbe_vecs_for(dim) if kernel.variant == "tbe" and dim is not None else 1
    return compile_facts(kernel.variant, kernel.register_cap, kernel.prefetch_distance, kernel.prefetch_kind,
                         kernel.bounds_check, kernel.pin_method, arch, dtype, vecs)


def kernel_registers(kernel: KernelConfig, gpu: GPUSpec, dtype: str = "float32") -> tuple[int, int, str]:
    """(registers per thread, spill bytes per thread, source) of the lookup kernel (the
    compiler's figures: the shipped table or the registered compiler, :func:`kernel_facts`)."""
    f = kernel_facts(kernel, gpu.arch, dtype)
    return f.registers, f.spill_bytes, f.registers_source


def launch_blocks_per_sm(kernel: KernelConfig, gpu: GPUSpec, dtype: str = "float32", dim: int | None = None) -> int:
    """Resident blocks per SM of the lookup kernel (exact occupancy at its registers); the
    rule that a kernel must fit at least one block on an SM to launch at all.

    Raises:
        InputError: when no block fits (CUDA refuses such a launch with "too many resources
            requested for launch"), naming the registers and the block size.
    """
    regs = kernel_facts(kernel, gpu.arch, dtype, dim).registers
    occ = _occupancy_cached(gpu, kernel.block_size, regs, 0, 0)  # memoized; the inputs are checked upstream
    if occ.active_blocks_per_sm < 1:
        limiter = next((k for k in ("registers", "warps", "shared_memory", "blocks", "barriers")
                        if occ.block_limits.get(k, 1) < 1), "registers")
        raise InputError(
            f"`resident blocks per SM >= 1` must hold for the kernel to launch, but {kernel.variant} with "
            f"block_size={kernel.block_size} and {regs} registers per thread ({occ.registers_per_block} per "
            f"block) fits 0 blocks on an SM of {gpu.id} (limited by {limiter}); use a smaller block, a register cap "
            "or less prefetch"
        )
    return occ.active_blocks_per_sm


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


def lookup_io_bytes(variant: str, bags: int, row_bytes: int, lookups: float = 0.0) -> float:
    """DRAM bytes the lookup kernel moves besides rows and indices: the offsets read, the
    pooled output written (one row per bag) and, for the PyTorch-mapped kernels, the ``bag_size``
    (per bag) and ``offset2bag`` (per lookup) side outputs written."""
    side = bags * float(BAG_SIZE_BYTES) + lookups * OFFSET2BAG_BYTES if variant in PYTORCH_MAPPING else 0.0
    return bags * float(OFFSET_BYTES) + (bags * row_bytes + side)


def output_bytes(bags: int, row_bytes: int) -> float:
    """Bytes of the pooled output one call writes (one row per bag)."""
    return float(bags) * row_bytes
