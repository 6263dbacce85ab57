"""recperf's performance model of the DLRM embedding stage on NVIDIA GPUs.

Pure knowledge and math: GPU specs, occupancy, workloads and kernel configurations, L2
residency, the analytical timing model and the simulator. Imports no GPU library.
"""

from __future__ import annotations

from perfmodel._caches import clear_caches
from perfmodel._config import (
    BOUNDS_CHECKS,
    DTYPES,
    FIXED_PREFETCH_VARIANTS,
    INDEX_KINDS,
    MAX_PREFETCH_DISTANCE,
    MIN_REGISTER_CAP,
    MODELLED_VARIANTS,
    PIN_METHODS,
    POOLING_DISTS,
    PREFETCH_KINDS,
    TUNABLE_VARIANTS,
    VARIANTS,
    IndexDistribution,
    KernelConfig,
    Table,
    Workload,
    check_modelled,
    kernel_config_from_mapping,
    load_kernel_config,
    load_workload,
    workload_from_mapping,
)
from perfmodel._errors import InputError, check_float, check_int
from perfmodel._files import check_input_file, parse_json, parse_toml, read_text, read_toml
from perfmodel._gpu import SUPPORTED_COMPUTE_CAPABILITIES, GPUSpec, get_gpu, gpu_ids, load_gpu_spec
from perfmodel._indices import TableCall, hot_rows, table_call
from perfmodel._kernel import (
    PYTORCH_GRID_BLOCKS,
    KernelFacts,
    ProfileProvider,
    kernel_facts,
    kernel_registers,
    set_profile_provider,
    vector_bytes,
)
from perfmodel._measurements import MeasurementRecord, read_measurements, workload_ref
from perfmodel._micro import micro_l2_read, micro_pointer_chase, micro_stream_read
from perfmodel._model import Prediction, predict, predict_batch
from perfmodel._occupancy import Occupancy, blocks_per_sm, occupancy
from perfmodel._plan import Plan, load_plan, plan_from_mapping
from perfmodel._profile import KernelProfile
from perfmodel._resources import (
    INDEX_DTYPES,
    ResourceUsage,
    check_arch,
    kernel_profile,
    kernel_resources,
    load_resource_table,
)
from perfmodel.sim import simulate  # the simulator; its numba kernels load only when it runs

__all__ = [
    "BOUNDS_CHECKS",
    "DTYPES",
    "FIXED_PREFETCH_VARIANTS",
    "INDEX_DTYPES",
    "INDEX_KINDS",
    "MAX_PREFETCH_DISTANCE",
    "MIN_REGISTER_CAP",
    "MODELLED_VARIANTS",
    "PIN_METHODS",
    "POOLING_DISTS",
    "PREFETCH_KINDS",
    "PYTORCH_GRID_BLOCKS",
    "SUPPORTED_COMPUTE_CAPABILITIES",
    "TUNABLE_VARIANTS",
    "VARIANTS",
    "GPUSpec",
    "IndexDistribution",
    "InputError",
    "KernelConfig",
    "KernelFacts",
    "KernelProfile",
    "MeasurementRecord",
    "Occupancy",
    "Plan",
    "Prediction",
    "ProfileProvider",
    "ResourceUsage",
    "Table",
    "TableCall",
    "Workload",
    "blocks_per_sm",
    "check_arch",
    "check_float",
    "check_input_file",
    "check_int",
    "check_modelled",
    "clear_caches",
    "get_gpu",
    "gpu_ids",
    "hot_rows",
    "kernel_config_from_mapping",
    "kernel_facts",
    "kernel_profile",
    "kernel_registers",
    "kernel_resources",
    "load_gpu_spec",
    "load_kernel_config",
    "load_plan",
    "load_resource_table",
    "load_workload",
    "micro_l2_read",
    "micro_pointer_chase",
    "micro_stream_read",
    "occupancy",
    "parse_json",
    "parse_toml",
    "plan_from_mapping",
    "predict",
    "predict_batch",
    "read_measurements",
    "read_text",
    "read_toml",
    "set_profile_provider",
    "simulate",
    "table_call",
    "vector_bytes",
    "workload_from_mapping",
    "workload_ref",
]
