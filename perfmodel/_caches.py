"""``perfmodel.clear_caches``: one call that forgets every module-level cache of perfmodel."""

from __future__ import annotations

__all__ = ["clear_caches"]


def clear_caches(*, disk: bool = False) -> None:
    """Forget every module-level cache of :mod:`perfmodel` (and of :mod:`perfmodel.pipeline`).

    The caches hold what was read from files (GPU specs, the calibration, the compiler
    table, traces, model and CPU specs) and what was computed from them (index streams, L2
    residency and L1 grids, rank popularity, trace counts and digests, kernel facts,
    occupancy, per-table constants of the model). Call
    it after changing such a file in a running process, or to free memory; results do not
    change otherwise. With ``disk=True`` the residency and L1 grids stored on disk
    (:mod:`perfmodel._disk_cache`) are deleted too.
    """
    from perfmodel import (
        _disk_cache,
        _gpu,
        _indices,
        _kernel,
        _l1,
        _l2,
        _model,
        _occupancy,
        _physics,
        _popularity,
        _resources,
        _traces,
    )
    from perfmodel.pipeline import _costs, _specs

    _l2.clear_cache()
    _l1.clear_cache()
    _model.clear_cache()
    for fn in (
        _kernel.compile_facts, _kernel.streaming_bandwidth,
        _physics.model_params, _physics.issue_interval_cycles, _physics._gather_file,
        _indices.table_call, _popularity._uniform, _popularity._zipf,
        _traces._trace_counts_cached, _traces._trace_digest_cached,
        _gpu._catalogue, _gpu._load_cached,
        _occupancy._occupancy_cached,
        _resources.load_resource_table, _resources.kernel_resources, _resources.kernel_profile,
        _resources._profile_cached,
        _costs._trace_top_share, _costs._predict_cached,
        _specs._zoo, _specs._cpus, _specs._gpu_compute_doc, _specs.launch_costs, _specs.get_gpu_compute,
    ):
        fn.cache_clear()
    if disk:
        _disk_cache.clear()
