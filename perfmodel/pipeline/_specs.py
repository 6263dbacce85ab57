"""Model zoo, CPU platforms and GPU compute numbers: frozen specs loaded from TOML data files.

A model file (``perfmodel/pipeline/models/*.toml``, or any path) describes one recommendation
model: an architecture template (``arch``: ``dlrm``, ``din`` or ``dien``), its MLP widths and
its embedding features. Each ``[[tables]]`` entry takes the keys of a CONTRACT.md workload
table (``rows``, ``dim``, ``dtype``, ``pooling``, ``count``, ``indices``) plus ``name``,
``role`` (``""``, ``"behaviour"`` or ``"candidate"``) and ``sequence`` (how many bags of this
table one sample gathers in one kernel, e.g. DIN's 250 behaviours).

A CPU file (``perfmodel/pipeline/cpus/*.toml``) and ``gpu_compute.toml`` carry one
``{ value = ..., source = "..." }`` per number, with ``estimate = "basis"`` where no public
measurement exists (as the GPU spec files do).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from perfmodel._config import Table, workload_from_mapping
from perfmodel._errors import InputError, choices_text
from perfmodel._files import read_toml

__all__ = [
    "ARCHS",
    "CPUSpec",
    "EmbeddingFeature",
    "GPUCompute",
    "LaunchCosts",
    "ModelSpec",
    "cpu_ids",
    "get_cpu",
    "get_gpu_compute",
    "get_model",
    "launch_costs",
    "load_cpu_spec",
    "load_model",
    "model_from_mapping",
    "model_ids",
]

_HERE = Path(__file__).resolve().parent
ARCHS = ("dlrm", "din", "dien")
ROLES = ("", "behaviour", "candidate")
INTERACTIONS = ("cat", "dot")


def _widths(name: str, value: Any, origin: str) -> tuple[int, ...]:
    if not isinstance(value, (list, tuple)) or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in value):
        raise InputError(f"{origin}: `{name}` must be a list of positive layer widths, but got {value!r}")
    return tuple(int(v) for v in value)


# ---- models ---------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class EmbeddingFeature:
    """``table.count`` embedding tables that one sample looks up ``sequence`` bags of."""

    name: str
    table: Table
    role: str = ""
    sequence: int = 1

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise InputError(f"unknown table role {self.role!r}; valid choices: {choices_text(list(ROLES))}")
        if isinstance(self.sequence, bool) or not isinstance(self.sequence, int) or self.sequence < 1:
            raise InputError(f"`1 <= sequence` must hold, but got sequence={self.sequence!r}")

    @property
    def table_bytes(self) -> int:
        """Bytes of all ``count`` tables."""
        return self.table.table_bytes * self.table.count

    @property
    def lookups_per_sample(self) -> float:
        return self.table.mean_pooling * self.sequence * self.table.count


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """A recommendation model: architecture template, MLP widths and embedding features.

    MLP widths are the layers after the input (the input width follows from the
    architecture, as DeepRecSys' and DLRM's code prepend it).
    """

    id: str
    name: str
    arch: str
    features: tuple[EmbeddingFeature, ...]
    dense_features: int = 0
    bottom_mlp: tuple[int, ...] = ()
    top_mlp: tuple[int, ...] = ()
    interaction: str = "cat"
    wide: bool = False
    tasks: int = 0
    task_mlp: tuple[int, ...] = ()
    attention_mlp: tuple[int, ...] = ()
    gru_hidden: int = 0
    gru_layers: int = 0
    #: bytes per index on the host->device copy (PyTorch embedding bags take int64)
    index_bytes: int = 8
    #: the batch size the source used, if it names one (informational)
    batch_size: int | None = None
    source: str = ""
    notes: str = ""
    path: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise InputError(f"model {self.id!r}: unknown arch {self.arch!r}; valid choices: {choices_text(list(ARCHS))}")
        if self.interaction not in INTERACTIONS:
            raise InputError(
                f"model {self.id!r}: unknown interaction {self.interaction!r}; valid choices: {choices_text(list(INTERACTIONS))}"
            )
        if not self.features:
            raise InputError(f"model {self.id!r}: at least one [[tables]] entry is required")
        if not self.top_mlp:
            raise InputError(f"model {self.id!r}: `top_mlp` must list at least one layer width")
        if self.interaction == "dot":
            dims = {f.table.dim for f in self.features}
            width = self.bottom_mlp[-1] if self.bottom_mlp else self.dense_features
            if len(dims) != 1 or width not in dims:
                raise InputError(
                    f"model {self.id!r}: the dot interaction needs one embedding dim equal to the bottom MLP's output, "
                    f"but got dims {sorted(dims)} and bottom output {width}"
                )
        if self.arch in ("din", "dien"):
            beh = [f for f in self.features if f.role == "behaviour"]
            cand = [f for f in self.features if f.role == "candidate"]
            if len(beh) != 1 or len(cand) != 1:
                raise InputError(
                    f"model {self.id!r}: arch {self.arch!r} needs exactly one table with role = \"behaviour\" and one with "
                    f"role = \"candidate\", but got {len(beh)} and {len(cand)}"
                )
            if beh[0].table.dim != cand[0].table.dim:
                raise InputError(f"model {self.id!r}: behaviour and candidate tables need the same dim")
        if self.arch == "dien" and (self.gru_hidden < 1 or self.gru_layers < 1):
            raise InputError(
                f"model {self.id!r}: arch \"dien\" needs `gru_hidden >= 1` and `gru_layers >= 1`, but got "
                f"({self.gru_hidden}, {self.gru_layers})"
            )
        if self.arch == "din" and not self.attention_mlp:
            raise InputError(f"model {self.id!r}: arch \"din\" needs `attention_mlp`")
        if self.tasks and not self.task_mlp:
            raise InputError(f"model {self.id!r}: `tasks` needs `task_mlp`")

    @property
    def table_bytes(self) -> int:
        return sum(f.table_bytes for f in self.features)

    @property
    def table_calls(self) -> int:
        return sum(f.table.count for f in self.features)

    def behaviour(self) -> EmbeddingFeature:
        return next(f for f in self.features if f.role == "behaviour")

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "arch": self.arch,
            "dense_features": self.dense_features,
            "bottom_mlp": list(self.bottom_mlp),
            "top_mlp": list(self.top_mlp),
            "interaction": self.interaction,
            "tables": [
                {
                    "name": f.name,
                    "rows": f.table.rows,
                    "dim": f.table.dim,
                    "dtype": f.table.dtype,
                    "pooling": f.table.mean_pooling,
                    "count": f.table.count,
                    "sequence": f.sequence,
                    "role": f.role,
                    "indices": f.table.indices.kind,
                }
                for f in self.features
            ],
            "table_calls": self.table_calls,
            "table_bytes": self.table_bytes,
            "source": self.source,
        }


_MODEL_KEYS = {
    "id", "name", "arch", "dense_features", "bottom_mlp", "top_mlp", "interaction", "wide", "tasks", "task_mlp",
    "attention_mlp", "gru_hidden", "gru_layers", "index_bytes", "batch_size", "source", "notes", "tables",
}


def model_from_mapping(doc: Mapping[str, Any], base_dir: str | os.PathLike[str] = ".", origin: str = "model") -> ModelSpec:
    """Build a :class:`ModelSpec` from a parsed model file (trace paths resolve against ``base_dir``)."""
    unknown = sorted(set(doc) - _MODEL_KEYS)
    if unknown:
        raise InputError(f"{origin}: unknown keys {unknown}; valid keys: {', '.join(sorted(_MODEL_KEYS))}")
    for key in ("id", "arch", "top_mlp", "tables"):
        if key not in doc:
            raise InputError(f"{origin}: `{key}` is required")
    raw = doc["tables"]
    if not isinstance(raw, list) or not raw:
        raise InputError(f"{origin}: at least one [[tables]] entry is required")
    features = []
    for i, t in enumerate(raw):
        if not isinstance(t, Mapping):
            raise InputError(f"{origin}: tables[{i}] must be a table, but got {t!r}")
        kw = dict(t)
        name = str(kw.pop("name", f"table{i}"))
        role = kw.pop("role", "")
        sequence = kw.pop("sequence", 1)
        wl = workload_from_mapping({"batch_size": 1, "tables": [kw]}, base_dir, f"{origin}: tables[{i}] ({name})")
        try:
            features.append(EmbeddingFeature(name=name, table=wl.tables[0], role=role, sequence=sequence))
        except InputError as exc:
            raise InputError(f"{origin}: tables[{i}] ({name}): {exc}") from None
    ints: dict[str, Any] = {}
    for key in ("dense_features", "tasks", "gru_hidden", "gru_layers", "index_bytes"):
        v = doc.get(key, 0 if key != "index_bytes" else 8)
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise InputError(f"{origin}: `{key}` must be a non-negative integer, but got {v!r}")
        ints[key] = v
    batch = doc.get("batch_size")
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
        raise InputError(f"{origin}: `batch_size` must be a positive integer, but got {batch!r}")
    return ModelSpec(
        id=str(doc["id"]),
        name=str(doc.get("name", doc["id"])),
        arch=str(doc["arch"]),
        features=tuple(features),
        bottom_mlp=_widths("bottom_mlp", doc.get("bottom_mlp", []), origin),
        top_mlp=_widths("top_mlp", doc["top_mlp"], origin),
        interaction=str(doc.get("interaction", "cat")),
        wide=bool(doc.get("wide", False)),
        task_mlp=_widths("task_mlp", doc.get("task_mlp", []), origin),
        attention_mlp=_widths("attention_mlp", doc.get("attention_mlp", []), origin),
        batch_size=batch,
        source=str(doc.get("source", "")),
        notes=str(doc.get("notes", "")),
        **ints,
    )


def load_model(path: str | os.PathLike[str]) -> ModelSpec:
    """Load a model TOML file (see docs/pipeline.md)."""
    p = Path(path).resolve()
    spec = model_from_mapping(read_toml(p, "model"), p.parent, f"model {str(path)!r}")
    return dataclasses.replace(spec, path=str(p))


@cache
def _zoo() -> dict[str, ModelSpec]:
    out = {}
    for p in sorted((_HERE / "models").glob("*.toml")):
        m = load_model(p)
        out[m.id] = m
    return out


def model_ids() -> list[str]:
    """Ids of the built-in models."""
    return list(_zoo())


def get_model(model: str | os.PathLike[str] | ModelSpec) -> ModelSpec:
    """A built-in model by id, a model TOML file by path, or a spec passed through."""
    if isinstance(model, ModelSpec):
        return model
    key = str(model)
    zoo = _zoo()
    if key in zoo:
        return zoo[key]
    if key.endswith(".toml") or os.sep in key:
        return load_model(key)
    raise InputError(f"unknown model {key!r}; valid choices: {choices_text(list(zoo))} (or a model .toml file)")


# ---- CPUs -----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class CPUSpec:
    """One CPU socket's numbers for the pipeline model (SI units), each with its source."""

    id: str
    name: str
    cores: int
    clock_hz: float
    fma_units_per_core: int
    vector_bits: int
    stores_per_cycle: int
    llc_bytes: int
    dram_bandwidth_bytes_per_s: float
    dram_efficiency: float
    random_access_efficiency: float
    dram_latency_s: float
    llc_latency_s: float
    fill_buffers_per_core: int
    core_stream_bytes_per_s: float
    llc_bandwidth_bytes_per_s: float
    dram_capacity_bytes: int
    gemm_efficiency: float
    op_overhead_s: float
    fork_join_s: float
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False, repr=False)
    estimates: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False, repr=False)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if f.name in ("id", "name", "sources", "estimates"):
                continue
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise InputError(f"cpu {self.id!r}: `{f.name} > 0` must hold, but got {f.name}={v!r}")
        for name in ("dram_efficiency", "random_access_efficiency", "gemm_efficiency"):
            if getattr(self, name) > 1:
                raise InputError(f"cpu {self.id!r}: `{name} <= 1` must hold, but got {getattr(self, name)}")

    @property
    def core_peak_flops_per_s(self) -> float:
        """FP32 FLOP/s of one core: FMA units x lanes x 2 x clock."""
        return self.fma_units_per_core * (self.vector_bits // 32) * 2 * self.clock_hz

    @property
    def peak_flops_per_s(self) -> float:
        return self.cores * self.core_peak_flops_per_s

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("sources", "estimates")}
        d["peak_fp32_flops_per_s"] = self.peak_flops_per_s
        return d


_CPU_FIELDS = [f.name for f in dataclasses.fields(CPUSpec) if f.name not in ("id", "name", "sources", "estimates")]
_INT_FIELDS = {"cores", "fma_units_per_core", "vector_bits", "stores_per_cycle", "llc_bytes", "fill_buffers_per_core",
               "dram_capacity_bytes"}


def _sourced(doc: Mapping[str, Any], names: list[str], origin: str) -> tuple[dict[str, Any], dict[str, str], dict[str, str]]:
    values, sources, estimates = {}, {}, {}
    missing = [n for n in names if n not in doc]
    if missing:
        raise InputError(f"{origin}: missing {missing}")
    for n in names:
        entry = doc[n]
        if not isinstance(entry, Mapping) or "value" not in entry or not entry.get("source"):
            raise InputError(f"{origin}: `{n}` must be {{ value = ..., source = \"...\" }}, but got {entry!r}")
        values[n] = entry["value"]
        sources[n] = str(entry["source"])
        if entry.get("estimate"):
            estimates[n] = str(entry["estimate"])
    return values, sources, estimates


def load_cpu_spec(path: str | os.PathLike[str]) -> CPUSpec:
    """Load a CPU spec TOML file (``[spec]`` of sourced values)."""
    p = Path(path)
    doc = read_toml(p, "cpu spec")
    origin = f"cpu spec {str(path)!r}"
    spec = doc.get("spec")
    if not isinstance(spec, Mapping) or "id" not in doc:
        raise InputError(f"{origin}: needs `id` and a [spec] table")
    values, sources, estimates = _sourced(spec, _CPU_FIELDS, origin)
    for n in _INT_FIELDS:
        values[n] = int(values[n])
    return CPUSpec(id=str(doc["id"]), name=str(doc.get("name", doc["id"])), sources=sources, estimates=estimates, **values)


@cache
def _cpus() -> dict[str, CPUSpec]:
    out = {}
    for p in sorted((_HERE / "cpus").glob("*.toml")):
        c = load_cpu_spec(p)
        out[c.id] = c
    return out


def cpu_ids() -> list[str]:
    """Ids of the built-in CPU platforms."""
    return list(_cpus())


def get_cpu(cpu: str | os.PathLike[str] | CPUSpec) -> CPUSpec:
    """A built-in CPU by id, a CPU spec file by path, or a spec passed through."""
    if isinstance(cpu, CPUSpec):
        return cpu
    key = str(cpu)
    if key in _cpus():
        return _cpus()[key]
    if key.endswith(".toml"):
        return load_cpu_spec(key)
    raise InputError(f"unknown cpu {key!r}; valid choices: {choices_text(cpu_ids())}")


# ---- GPU compute and launch costs -----------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class LaunchCosts:
    """Host-side and fixed costs of running operators on a GPU (gpu_compute.toml [launch])."""

    framework_dispatch_s: float
    cuda_launch_s: float
    kernel_fixed_s: float
    event_sync_s: float
    memcpy_latency_s: float
    host_link_efficiency: float
    gemm_efficiency: float
    stream_efficiency: float
    simt_saturating_tile: float
    tensor_core_gemm_efficiency: float
    tensor_core_saturating_tile: float
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @property
    def op_launch_s(self) -> float:
        """Host time to issue one framework operator's kernel."""
        return self.framework_dispatch_s + self.cuda_launch_s


@dataclass(frozen=True, kw_only=True)
class GPUCompute:
    """Matrix-math peaks and the host link of one GPU (gpu_compute.toml)."""

    gpu_id: str
    fp32_flops_per_s: float
    tf32_flops_per_s: float
    fp16_flops_per_s: float
    host_link_bytes_per_s: float
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False, repr=False)

    def peak(self, dtype: str) -> float:
        """Peak FLOP/s of matrix products in ``dtype`` (``fp32`` without tensor cores)."""
        return {"fp32": self.fp32_flops_per_s, "tf32": self.tf32_flops_per_s, "fp16": self.fp16_flops_per_s,
                "bf16": self.fp16_flops_per_s}[dtype]


@cache
def _gpu_compute_doc() -> dict[str, Any]:
    return read_toml(_HERE / "gpu_compute.toml", "gpu compute")


@cache
def launch_costs() -> LaunchCosts:
    names = [f.name for f in dataclasses.fields(LaunchCosts) if f.name != "sources"]
    values, sources, _ = _sourced(_gpu_compute_doc()["launch"], names, "gpu_compute.toml [launch]")
    return LaunchCosts(sources=sources, **{k: float(v) for k, v in values.items()})


@lru_cache(maxsize=32)
def get_gpu_compute(gpu_id: str, sm_count: int = 0, sm_clock_hz: float = 0.0, fp32_lanes_per_sm: int = 128) -> GPUCompute:
    """Compute peaks of ``gpu_id``; a GPU missing from the table (a user's spec file) gets the
    FP32 peak from its SMs, FP32 lanes and clock, and no tensor-core speedup."""
    gpus = _gpu_compute_doc()["gpus"]
    if gpu_id in gpus:
        names = ["fp32_flops_per_s", "tf32_flops_per_s", "fp16_flops_per_s", "host_link_bytes_per_s"]
        values, sources, _ = _sourced(gpus[gpu_id], names, f"gpu_compute.toml [gpus.{gpu_id}]")
        return GPUCompute(gpu_id=gpu_id, sources=sources, **{k: float(v) for k, v in values.items()})
    if sm_count <= 0 or sm_clock_hz <= 0:
        raise InputError(f"no compute peaks for gpu {gpu_id!r}; known: {choices_text(list(gpus))}")
    fp32 = sm_count * fp32_lanes_per_sm * 2 * sm_clock_hz
    return GPUCompute(
        gpu_id=gpu_id, fp32_flops_per_s=fp32, tf32_flops_per_s=fp32, fp16_flops_per_s=fp32, host_link_bytes_per_s=32e9,
        sources={"fp32_flops_per_s": "derived: SMs x FP32 lanes (64 on CC 8.0, 128 on 8.6+/9.0, CUDA guide) x 2 x clock",
                 "host_link_bytes_per_s": "assumed PCIe 4.0 x16"},
    )
