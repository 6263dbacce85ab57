"""CUDA embedding-bag kernels: sources, offline compiler driver, CPU runner, CuPy launcher.

The CUDA sources live beside this file (``*.cu``, ``*.cuh``). Nothing here imports a GPU
library at import time: cuda-python and CuPy are imported inside the functions that use them.
"""

from __future__ import annotations

from kernels._compile import (
    COMPILERS,
    PINNED_NVRTC,
    CompileKey,
    available_compiler,
    cache_dir,
    compile_key,
    parse_cubin,
    parse_ptxas_log,
    resource_usage,
    source_hash,
)
from kernels._cpu import CpuResult, cpu_compiler, embedding_bag_cpu, run_cpu
from kernels._gpu import (
    CupyDevice,
    EmbeddingBagLauncher,
    KernelLaunch,
    PreparedLookup,
    embedding_bag_gpu,
    gpu_available,
    launchable_variants,
    nvrtc_problem,
    persisting_l2_window,
    toolchain_problems,
)
from kernels._launch import LaunchGeometry, frequency_remap, launch_geometry, tbe_vecs_for, vec_bytes_for
from kernels._profile import compiled_figures, cuobjdump_path, disassemble, kernel_profile, kernel_sass

__all__ = [
    "COMPILERS",
    "PINNED_NVRTC",
    "CompileKey",
    "CpuResult",
    "CupyDevice",
    "EmbeddingBagLauncher",
    "KernelLaunch",
    "LaunchGeometry",
    "PreparedLookup",
    "available_compiler",
    "cache_dir",
    "compile_key",
    "compiled_figures",
    "cpu_compiler",
    "cuobjdump_path",
    "disassemble",
    "embedding_bag_cpu",
    "embedding_bag_gpu",
    "frequency_remap",
    "gpu_available",
    "kernel_profile",
    "kernel_sass",
    "launch_geometry",
    "launchable_variants",
    "nvrtc_problem",
    "parse_cubin",
    "parse_ptxas_log",
    "persisting_l2_window",
    "resource_usage",
    "run_cpu",
    "source_hash",
    "tbe_vecs_for",
    "toolchain_problems",
    "vec_bytes_for",
]
