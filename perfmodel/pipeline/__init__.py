"""Whole-inference performance model of recommendation models on GPUs and CPUs.

The embedding stage comes from :func:`perfmodel.predict`; matrix products, interactions,
attention and recurrent layers from roofline cost models with sourced peaks
(``gpu_compute.toml``, ``cpus/*.toml``); a multi-stream list scheduler and a timeline
simulator with contention for SM slots and DRAM bandwidth turn the operator graph into an
end-to-end latency with a stage breakdown and a steady-state throughput. MP-Rec's
representation and platform choices, DeepRecSys' latency-bounded throughput and the plots
build on it. The model zoo is data (``models/*.toml``); users add their own model files.
"""

from __future__ import annotations

from perfmodel.pipeline._choice import brute_force_choice, choose_representations, route_queries, solve_choice
from perfmodel.pipeline._costs import CPUCosts, GPUCosts, OpCost, cache_hit_rate
from perfmodel.pipeline._pipeline import (
    CPU_MODES,
    EMBEDDING_KERNELS,
    MAX_STREAMS,
    SEED_COMBINED_KERNEL,
    PipelineResult,
    build_ops,
    check_streams,
    crossover,
    crossover_of,
    resolve_device,
    run_pipeline,
    sweep_batch,
    table_instances,
)
from perfmodel.pipeline._plot import get_pipeline_plot_info, get_sweep_plot_info, plot_pipeline, plot_sweep
from perfmodel.pipeline._representations import (
    ACCURACY_PROXY,
    INT8_SCALE_BIAS_BYTES,
    REPRESENTATIONS,
    DHEConfig,
    output_dim,
    representation_bytes,
    row_bytes,
)
from perfmodel.pipeline._schedule import (
    COPY_ENGINES,
    MemorySystem,
    Op,
    Schedule,
    brute_force_schedule,
    list_schedule,
    schedule,
    simulate,
    steady_state,
)
from perfmodel.pipeline._serving import QuerySizes, latency_bounded_throughput, parse_query_sizes
from perfmodel.pipeline._specs import (
    CPUSpec,
    EmbeddingFeature,
    GPUCompute,
    LaunchCosts,
    ModelSpec,
    cpu_ids,
    get_cpu,
    get_gpu_compute,
    get_model,
    launch_costs,
    load_cpu_spec,
    load_model,
    model_from_mapping,
    model_ids,
)

__all__ = [
    "ACCURACY_PROXY",
    "COPY_ENGINES",
    "CPU_MODES",
    "EMBEDDING_KERNELS",
    "INT8_SCALE_BIAS_BYTES",
    "MAX_STREAMS",
    "REPRESENTATIONS",
    "SEED_COMBINED_KERNEL",
    "CPUCosts",
    "CPUSpec",
    "DHEConfig",
    "EmbeddingFeature",
    "GPUCompute",
    "GPUCosts",
    "LaunchCosts",
    "MemorySystem",
    "ModelSpec",
    "Op",
    "OpCost",
    "PipelineResult",
    "QuerySizes",
    "Schedule",
    "brute_force_choice",
    "brute_force_schedule",
    "build_ops",
    "cache_hit_rate",
    "check_streams",
    "choose_representations",
    "cpu_ids",
    "crossover",
    "crossover_of",
    "get_cpu",
    "get_gpu_compute",
    "get_model",
    "get_pipeline_plot_info",
    "get_sweep_plot_info",
    "latency_bounded_throughput",
    "launch_costs",
    "list_schedule",
    "load_cpu_spec",
    "load_model",
    "model_from_mapping",
    "model_ids",
    "output_dim",
    "parse_query_sizes",
    "plot_pipeline",
    "plot_sweep",
    "representation_bytes",
    "resolve_device",
    "route_queries",
    "row_bytes",
    "run_pipeline",
    "schedule",
    "simulate",
    "solve_choice",
    "steady_state",
    "sweep_batch",
    "table_instances",
]
