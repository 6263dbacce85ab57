"""Predictions of the published microbenchmarks (CONTRACT.md ``micro`` kinds), from the
same physics as the embedding model (:mod:`perfmodel._physics`).

- ``stream-read``: every thread loads one 8-byte element once; ``blocks_per_sm`` blocks of
  ``block_size`` threads resident per SM (a shared-memory spoiler fixes it); blocks start,
  load and retire continuously. Bytes in flight N = SMs x blocks x threads x 8; each block
  lives one DRAM round trip plus a fixed turnaround (launch, retire); Little's law with
  the loaded DRAM latency gives the bandwidth.
- ``pointer-chase``: one warp follows a random cyclic chain spanning the footprint F, each
  step one dependent load. Its latency is the hit-weighted mix of L1, near L2, far L2 and
  DRAM latencies, each level's hit fraction the random-replacement sweep law at that
  level's effective capacity.
- ``l2-read``: all SMs full of 1024-thread blocks summing a buffer of size F again and
  again: L2 hits at the L2 bandwidth, misses at the loaded DRAM bandwidth.
"""

from __future__ import annotations

from perfmodel._errors import check_int
from perfmodel._gpu import GPUSpec
from perfmodel._physics import ModelParams, little_throughput, model_params, random_replacement_hit_rate

__all__ = ["micro_l2_read", "micro_pointer_chase", "micro_stream_read"]

_ELEMENT_BYTES = 8  # the benchmarks' double-precision elements / 8-byte pointers
_L2_READ_BLOCK = 1024  # threads per block of the l2-read benchmark


def micro_stream_read(
    gpu: GPUSpec, *, block_size: int, blocks_per_sm: int = 2, params: ModelParams | None = None
) -> float:
    """Predicted read bandwidth (bytes/s) of the streaming-read benchmark.

    ``params`` overrides the shipped calibration (used when fitting it).
    """
    check_int(block_size, "block_size", min_val=1, max_val=gpu.max_threads_per_block)
    # the benchmark fixes residency; more blocks than an SM holds at this block size cannot be resident
    check_int(blocks_per_sm, "blocks_per_sm", min_val=1,
              max_val=min(gpu.max_blocks_per_sm, gpu.max_threads_per_sm // block_size))
    p = params or model_params()
    resident = blocks_per_sm
    n_bytes = gpu.sm_count * resident * block_size * _ELEMENT_BYTES
    dram_s = gpu.latency_s(gpu.dram_latency_cycles)
    latency = dram_s + gpu.latency_s(p.block_turnaround_cycles)
    return float(little_throughput(n_bytes, latency, gpu.dram_bandwidth_bytes_per_s, p.dram_queue_factor * dram_s))


def check_footprint(gpu: GPUSpec, footprint_bytes: int) -> int:
    """The buffer a benchmark cycles over: at least one 8-byte element, at most the device memory."""
    return check_int(footprint_bytes, "footprint_bytes", min_val=_ELEMENT_BYTES, max_val=gpu.dram_size_bytes)


def pointer_chase_hit_rates(
    gpu: GPUSpec, footprint_bytes: float, params: ModelParams | None = None
) -> tuple[float, float, float]:
    """(L1, near-L2, any-L2) hit fractions of a single-warp chase over ``footprint_bytes``."""
    p = params or model_params()
    f = float(footprint_bytes)
    h1 = random_replacement_hit_rate(f / (p.l1_capacity_fraction * gpu.l1_cache_and_shared_mem_per_sm_bytes))
    ht = random_replacement_hit_rate(f / (p.l2_capacity_fraction * gpu.l2_size_bytes))
    hn = min(random_replacement_hit_rate(f / (p.l2_near_capacity_fraction * gpu.l2_size_bytes)), ht)
    return float(h1), float(hn), float(ht)


def micro_pointer_chase(gpu: GPUSpec, *, footprint_bytes: int, params: ModelParams | None = None) -> float:
    """Predicted latency per access (SM cycles) of the pointer chase over ``footprint_bytes``."""
    check_footprint(gpu, footprint_bytes)
    h1, hn, ht = pointer_chase_hit_rates(gpu, footprint_bytes, params)
    beyond_l1 = (
        hn * gpu.l2_near_latency_cycles + (ht - hn) * gpu.l2_far_latency_cycles + (1.0 - ht) * gpu.dram_latency_cycles
    )
    return h1 * gpu.l1_latency_cycles + (1.0 - h1) * beyond_l1


def micro_l2_read(gpu: GPUSpec, *, footprint_bytes: int, params: ModelParams | None = None) -> float:
    """Predicted effective bandwidth (bytes/s) of the L2 read benchmark over ``footprint_bytes``."""
    check_footprint(gpu, footprint_bytes)
    p = params or model_params()
    h = float(random_replacement_hit_rate(footprint_bytes / (p.l2_capacity_fraction * gpu.l2_size_bytes)))
    threads = gpu.sm_count * (gpu.max_threads_per_sm // _L2_READ_BLOCK) * _L2_READ_BLOCK
    n_bytes = threads * _ELEMENT_BYTES
    l2_s = gpu.latency_s(gpu.l2_near_latency_cycles)
    dram_s = gpu.latency_s(gpu.dram_latency_cycles)
    x_l2 = min(gpu.l2_bandwidth_bytes_per_s, n_bytes / l2_s)
    x_dram = float(little_throughput(n_bytes, dram_s, gpu.dram_bandwidth_bytes_per_s, p.dram_queue_factor * dram_s))
    return 1.0 / (h / x_l2 + (1.0 - h) / x_dram)
