"""Whole-inference performance model of recommendation models on GPUs and CPUs.

The embedding stage comes from :func:`perfmodel.predict`; matrix products, interactions,
attention and recurrent layers from roofline cost models with sourced peaks
(``gpu_compute.toml``, ``cpus/*.toml``); a multi-stream list scheduler and a timeline
simulator turn the operator graph into an end-to-end latency with a stage breakdown.
The model zoo is data (``models/*.toml``); users add their own model files.
"""

from __future__ import annotations

from perfmodel.pipeline._costs import CPUCosts, GPUCosts, OpCost, cache_hit_rate
from perfmodel.pipeline._pipeline import (
    SEED_COMBINED_KERNEL,
    PipelineResult,
    build_ops,
    choose_representations,
    crossover,
    resolve_device,
    run_pipeline,
    sweep_batch,
    table_instances,
)
from perfmodel.pipeline._representations import REPRESENTATIONS, DHEConfig, representation_bytes
from perfmodel.pipeline._schedule import Op, Schedule, brute_force_schedule, list_schedule, schedule, simulate
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
    "REPRESENTATIONS",
    "SEED_COMBINED_KERNEL",
    "CPUCosts",
    "CPUSpec",
    "DHEConfig",
    "EmbeddingFeature",
    "GPUCompute",
    "GPUCosts",
    "LaunchCosts",
    "ModelSpec",
    "Op",
    "OpCost",
    "PipelineResult",
    "Schedule",
    "brute_force_schedule",
    "build_ops",
    "cache_hit_rate",
    "choose_representations",
    "cpu_ids",
    "crossover",
    "get_cpu",
    "get_gpu_compute",
    "get_model",
    "launch_costs",
    "list_schedule",
    "load_cpu_spec",
    "load_model",
    "model_from_mapping",
    "model_ids",
    "representation_bytes",
    "resolve_device",
    "run_pipeline",
    "schedule",
    "simulate",
    "sweep_batch",
    "table_instances",
]
