"""Whole-inference latency and throughput of a recommendation model on a GPU or a CPU.

A model (``ModelSpec``) becomes an operator graph for one batch (``build_ops``): the input
copies (dense features; the sparse indices and offsets; on the host->device copy engine), bottom MLP, one embedding op per table (or one table-batched op for all of them;
or a table's DHE/hybrid ops), interaction, DIN's attention units or DIEN's recurrent
layers, top MLP (and task heads), output copy. Each op gets its cost from the device's
cost model (``_costs``), then the graph is scheduled on at most K streams and simulated
(``_schedule``). On a CPU operators run one after another (each uses the socket's cores as
it pays, or one core in DeepRecSys' one-core-per-query mode), so streams do not apply.

Stage times add up to the end-to-end time; ``embedding_time_s`` is the embedding stage's
share of the wall time. ``throughput_samples_per_s`` is the steady state of a stream of
batches: on a GPU the host issues batch after batch and the copy engines move batch b+1's
inputs while batch b computes (simulated, ``steady_state``); on a CPU batches run back to
back on the socket, or one per core in the one-core-per-query mode.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from perfmodel._config import KernelConfig
from perfmodel._errors import InputError, check_int, choices_text
from perfmodel._gpu import GPUSpec, get_gpu, gpu_ids
from perfmodel.pipeline._costs import MATMUL_DTYPES, CPUCosts, GPUCosts, OpCost
from perfmodel.pipeline._representations import REPRESENTATIONS, DHEConfig, output_dim, representation_bytes
from perfmodel.pipeline._schedule import Op, Schedule, schedule, steady_state
from perfmodel.pipeline._specs import (
    CPUSpec,
    EmbeddingFeature,
    ModelSpec,
    cpu_ids,
    get_cpu,
    get_model,
    launch_costs,
)

__all__ = [
    "CPU_MODES",
    "EMBEDDING_KERNELS",
    "SEED_COMBINED_KERNEL",
    "PipelineResult",
    "build_ops",
    "crossover",
    "resolve_device",
    "run_pipeline",
    "sweep_batch",
    "table_instances",
]

#: The seed paper's combined configuration (FACTS.md section 1): OptMT (-maxrregcount 42),
#: register prefetch of 2 rows, L2 pinning of the hottest 12% via evict-last prefetch.
SEED_COMBINED_KERNEL = KernelConfig(register_cap=42, prefetch_distance=2, pinned_row_fraction=0.12,
                                    pin_method="evict-last-prefetch")
#: fraction of a GPU's memory the model may use (CUDA context, allocator slack: estimate)
GPU_MEMORY_USABLE_FRACTION = 0.95
#: ``pytorch``: one EmbeddingBag launch per table; ``tbe``: one table-batched launch for all tables
EMBEDDING_KERNELS = ("pytorch", "tbe")
#: ``socket``: each operator uses the socket's cores, batches one after another;
#: ``core-per-query``: DeepRecSys' mode, each batch on one core, every core serving one
CPU_MODES = ("socket", "core-per-query")
#: most CUDA streams a run takes: the driver gives a context at most 32 hardware work queues
#: (CUDA_DEVICE_MAX_CONNECTIONS, "typically [1, 32]": cuda-python's cuda.core
#: WorkqueueResourceOptions docs), so more streams share queues and add no concurrency
MAX_STREAMS = 32


def check_streams(streams: object) -> int:
    """``streams`` as an int in ``[1, MAX_STREAMS]``, else InputError naming the rule."""
    return check_int(streams, "streams", min_val=1, max_val=MAX_STREAMS)


def resolve_device(device: str | os.PathLike[str] | GPUSpec | CPUSpec) -> GPUSpec | CPUSpec:
    """A GPU (id or spec file) or a CPU (id or ``cpus/*.toml``-style file)."""
    if isinstance(device, (GPUSpec, CPUSpec)):
        return device
    key = str(device)
    if key in gpu_ids():
        return get_gpu(key)
    if key in cpu_ids():
        return get_cpu(key)
    if key.endswith(".toml") and os.path.isfile(key):
        try:
            return get_gpu(key)
        except InputError:
            return get_cpu(key)
    raise InputError(f"unknown device {key!r}; valid choices: GPUs {choices_text(gpu_ids())}; CPUs {choices_text(cpu_ids())}")


def table_instances(model: ModelSpec) -> list[tuple[str, EmbeddingFeature]]:
    """(key, feature) per embedding table: ``name`` for a single table, ``name[i]`` for ``count`` > 1."""
    out = []
    for f in model.features:
        for i in range(f.table.count):
            out.append((f.name if f.table.count == 1 else f"{f.name}[{i}]", f))
    return out


def _rep_of(reps: str | Mapping[str, str] | None, key: str, feature: EmbeddingFeature) -> str:
    if reps is None:
        return "table"
    rep = reps if isinstance(reps, str) else reps.get(key, reps.get(feature.name, "table"))
    if rep not in REPRESENTATIONS:
        raise InputError(f"unknown representation {rep!r}; valid choices: {', '.join(REPRESENTATIONS)}")
    return rep


def _check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise InputError(f"unknown {name} {value!r}; valid choices: {', '.join(choices)}")


class _Builder:
    def __init__(self, costs: GPUCosts | CPUCosts) -> None:
        self.costs = costs
        self.ops: list[Op] = []
        self.esize = costs.esize
        self.gpu = isinstance(costs, GPUCosts)

    def add(self, name: str, stage: str, cost: OpCost, deps: Sequence[int], kind: str,
            launch_s: float | None = None, engine: str = "compute", table: str = "") -> int:
        self.ops.append(Op(name=name, stage=stage, time_s=max(cost.time_s, 0.0), deps=tuple(sorted(set(deps))),
                           launch_s=self.costs.op_launch_s if launch_s is None else launch_s, sm_util=cost.sm_util,
                           dram_util=cost.dram_util, kind=kind, flops=cost.flops, bytes=cost.bytes, note=cost.note,
                           engine=engine if self.gpu else "compute", table=table))
        return len(self.ops) - 1

    def elementwise(self, name: str, stage: str, nbytes: float, deps: Sequence[int], table: str = "") -> int:
        return self.add(name, stage, self.costs.elementwise(nbytes), deps, "elementwise", table=table)

    def linear(self, name: str, stage: str, m: int, k: int, n: int, dep: Sequence[int], act: str | None = "relu",
               table: str = "") -> int:
        i = self.add(name, stage, self.costs.gemm(m, n, k), dep, "gemm", table=table)
        if act:
            i = self.add(f"{name}.{act}", stage, self.costs.elementwise(2.0 * m * n * self.esize), [i], "elementwise",
                         table=table)
        return i

    def mlp(self, name: str, stage: str, m: int, k: int, widths: tuple[int, ...], dep: Sequence[int],
            last_act: str | None = "relu") -> tuple[int, int]:
        i = list(dep)
        idx = -1
        for j, w in enumerate(widths):
            act = "relu" if j < len(widths) - 1 else last_act
            idx = self.linear(f"{name}.fc{j}", stage, m, k, w, i, act)
            i, k = [idx], w
        return idx, k

    def dhe(self, key: str, feature: EmbeddingFeature, bags: int, dim: int, dhe: DHEConfig, dep: Sequence[int]) -> int:
        """A DHE decoding ``dim`` columns per lookup: hash encoding, decoder MLP, pooling."""
        lookups = math.ceil(bags * feature.table.mean_pooling)
        # hash encoding: k hashes per lookup, written as a dense code (fp32)
        h = self.add(f"dhe.{key}.hash", "embedding", self.costs.elementwise(lookups * (dhe.hashes * 4.0 + 8),
                                                                             4.0 * lookups * dhe.hashes),
                     dep, "elementwise", table=key)
        i, k_in = [h], dhe.hashes
        for j, (_, w) in enumerate(dhe.layers(dim)):
            final = j == len(dhe.hidden)
            i = [self.linear(f"dhe.{key}.fc{j}", "embedding", lookups, k_in, w, i, None if final else "relu", table=key)]
            k_in = w
        return self.elementwise(f"dhe.{key}.pool", "embedding", (lookups + bags) * dim * self.esize, i, table=key)


def _dense_weight_bytes(model: ModelSpec, esize: int) -> int:
    """Weights of the MLPs (an upper estimate that ignores DIN/DIEN's small layers)."""
    def chain(k: int, widths: tuple[int, ...]) -> int:
        s = 0
        for w in widths:
            s += (k * w + w) * esize
            k = w
        return s

    total = chain(model.dense_features, model.bottom_mlp)
    total += chain(sum(f.table.dim * f.table.count for f in model.features) + model.dense_features, model.top_mlp)
    if model.tasks:
        total += model.tasks * chain(model.top_mlp[-1], model.task_mlp)
    return total


def _fusable(model: ModelSpec, reps: str | Mapping[str, str] | None) -> list[tuple[str, EmbeddingFeature, str]]:
    """Tables a table-batched kernel serves: one bag per sample, rows stored (table, int8, fp16, hybrid's table)."""
    return [(key, f, _rep_of(reps, key, f)) for key, f in table_instances(model)
            if f.sequence == 1 and _rep_of(reps, key, f) != "dhe"]


def build_ops(model: ModelSpec, costs: GPUCosts | CPUCosts, batch_size: int, *,
              kernel: KernelConfig | None = None, kernels: Mapping[str, KernelConfig] | None = None,
              representations: str | Mapping[str, str] | None = None, dhe: DHEConfig | None = None,
              host_tables: frozenset[str] = frozenset(), transfers: bool = True,
              embedding_kernel: str = "pytorch") -> list[Op]:
    """The operator graph of one batch of ``model`` with costs on ``costs``' device.

    ``transfers``: copy the inputs (dense features, indices, offsets) to the GPU and the
    outputs back (False: inputs already on the device, as kernel benchmark harnesses run).
    ``embedding_kernel``: ``pytorch`` (one launch per table) or ``tbe`` (one table-batched
    launch for every table with one bag per sample; sequence features and DHEs keep their
    own ops), GPU only.
    """
    _check_choice("embedding kernel", embedding_kernel, EMBEDDING_KERNELS)
    b_ = _Builder(costs)
    B = batch_size
    es = costs.esize
    kernel = kernel or KernelConfig()
    dhe = dhe or DHEConfig()
    gpu = isinstance(costs, GPUCosts)
    lc = launch_costs()
    copy_launch = lc.framework_dispatch_s if gpu else 0.0
    move = transfers and gpu

    # input copies on the host->device engine: the dense features (the bottom MLP waits on them only) and the
    # indices and offsets of every table (the lookups wait on them); the scheduler orders them by critical path
    idx_bytes = sum(B * f.lookups_per_sample * model.index_bytes + B * f.sequence * f.table.count * model.index_bytes
                    for f in model.features)
    zero = OpCost(time_s=0.0)
    dense_in = b_.add("input-copy.dense", "transfer", costs.copy(B * model.dense_features * 4) if move else zero, [],
                      "copy", copy_launch if move else 0.0, engine="h2d")
    inp = b_.add("input-copy.sparse", "transfer", costs.copy(idx_bytes) if move else zero, [], "copy",
                 copy_launch if move else 0.0, engine="h2d")

    emb: dict[str, list[int]] = {}
    fused_keys: set[str] = set()
    i_tbe = -1
    served = _fusable(model, representations) if embedding_kernel == "tbe" and isinstance(costs, GPUCosts) else []
    if served and isinstance(costs, GPUCosts):  # nothing to serve (every table a DHE): no launch
        # FBGEMM's table-batched kernel fetches in its own way: no prefetch setting
        tbe = kernel.replace(variant="tbe", prefetch_distance=0, prefetch_kind="register")
        cost = costs.fused_gather(tuple(f.table for _, f, _ in served), tuple(r for _, _, r in served), B, tbe)
        i_tbe = b_.add("emb.tbe", "embedding", cost, [inp], "gather")
        fused_keys = {key for key, _, _ in served}
    for key, f in table_instances(model):
        rep = _rep_of(representations, key, f)
        bags = B * f.sequence
        ends = []
        if rep != "dhe":
            if key in fused_keys:
                ends.append(i_tbe)
            else:
                k = (kernels or {}).get(key, (kernels or {}).get(f.name, kernel))
                row_rep = rep if rep in ("int8", "fp16") else "table"
                cost = costs.gather(f.table, bags, k, host_mapped=key in host_tables, rep=row_rep)
                ends.append(b_.add(f"emb.{key}", "embedding", cost, [inp], "gather", table=key))
        if rep in ("dhe", "hybrid"):
            ends.append(b_.dhe(key, f, bags, f.table.dim, dhe, [inp]))
        if rep == "hybrid":
            ends = [b_.elementwise(f"hybrid.{key}.concat", "embedding", 2.0 * bags * 2 * f.table.dim * es, ends, table=key)]
        emb.setdefault(f.name, []).extend(ends)
    all_emb = sorted({i for v in emb.values() for i in v})

    def width_of(f: EmbeddingFeature, per_sample: bool = True) -> int:
        """Pooled width of all of a feature's tables (hybrid tables hand on 2D)."""
        keys = [k for k, g in table_instances(model) if g is f]
        return sum(output_dim(_rep_of(representations, k, f), f.table.dim) for k in keys) * (f.sequence if per_sample else 1)

    def vectors_of(f: EmbeddingFeature) -> int:
        keys = [k for k, g in table_instances(model) if g is f]
        return sum(output_dim(_rep_of(representations, k, f), f.table.dim) // f.table.dim for k in keys) * f.sequence

    outputs: list[int] = []
    if model.arch == "dlrm":
        dense_dep = [dense_in]
        width_dense = model.dense_features
        if model.bottom_mlp:
            last, width_dense = b_.mlp("bottom", "bottom_mlp", B, model.dense_features, model.bottom_mlp, [dense_in])
            dense_dep = [last]
        if model.interaction == "cat":
            width = width_dense + sum(width_of(f) for f in model.features)
            x = b_.elementwise("interaction.cat", "interaction", 2.0 * B * width * es, dense_dep + all_emb)
        else:
            # a hybrid table's two D-wide halves enter the dot interaction as two vectors
            nf = 1 + sum(vectors_of(f) for f in model.features)
            d = width_dense
            c = b_.elementwise("interaction.stack", "interaction", 2.0 * B * nf * d * es, dense_dep + all_emb)
            z = b_.add("interaction.bmm", "interaction", costs.gemm(nf, nf, d, batch=B, shared_weights=False), [c], "gemm")
            pairs = nf * (nf - 1) // 2
            g = b_.elementwise("interaction.tril", "interaction", B * (nf * nf + pairs) * es, [z])
            width = pairs + d
            x = b_.elementwise("interaction.cat", "interaction", 2.0 * B * width * es, [g, *dense_dep])
        top, wtop = b_.mlp("top", "top_mlp", B, width, model.top_mlp, [x], last_act="relu" if model.tasks else "sigmoid")
        if model.tasks:
            for task in range(model.tasks):
                head, _ = b_.mlp(f"task{task}", "top_mlp", B, wtop, model.task_mlp, [top], last_act="sigmoid")
                outputs.append(head)
        else:
            outputs.append(top)
        if model.wide:
            wide = b_.linear("wide.fc", "wide", B, model.dense_features, 1, [dense_in], None)
            outputs = [b_.elementwise("wide.add", "wide", 3.0 * B * max(1, model.tasks) * es, [*outputs, wide])]
    elif model.arch == "din":
        beh = model.behaviour()
        d = beh.table.dim
        seq = beh.sequence * beh.table.count
        cand = [i for f in model.features if f.role == "candidate" for i in emb[f.name]]
        cat = b_.elementwise("attention.concat", "attention", B * seq * (d + 3 * d) * es + B * d * es,
                             emb[beh.name] + cand + [dense_in])
        last, w_att = b_.mlp("attention", "attention", B * seq, 3 * d, model.attention_mlp, [cat])
        att = b_.elementwise("attention.sum", "attention", (B * seq + B) * w_att * es, [last])
        others = [i for f in model.features if f.role != "behaviour" for i in emb[f.name]]
        width = w_att + sum(width_of(f) for f in model.features if f.role != "behaviour")
        x = b_.elementwise("interaction.cat", "interaction", 2.0 * B * width * es, [att, *others])
        top, _ = b_.mlp("top", "top_mlp", B, width, model.top_mlp, [x], last_act="softmax")
        outputs.append(top)
    else:  # dien
        beh = model.behaviour()
        d = beh.table.dim
        T = beh.sequence * beh.table.count
        H = model.gru_hidden
        x = b_.elementwise("recurrent.concat", "recurrent", 2.0 * B * T * d * es, emb[beh.name] + [dense_in])
        k_in = d
        for layer in range(model.gru_layers):
            proj = b_.add(f"gru{layer}.input", "recurrent", costs.gemm(B * T, 3 * H, k_in), [x], "gemm")
            step = proj
            for step_i in range(T):
                step = b_.add(f"gru{layer}.step{step_i}", "recurrent", costs.recurrent_step(B, k_in, H), [step], "recurrent",
                              costs.library_launch_s)
            x, k_in = step, H
            if layer == 0 and model.gru_layers > 1:
                # attention over the interest states: FC + softmax + weighting (DeepRecSys dien.py)
                a = b_.add("attention.fc", "attention", costs.gemm(B * T, H, H), [x], "gemm")
                sm = b_.elementwise("attention.softmax", "attention", 2.0 * B * T * H * es, [a])
                x = b_.elementwise("attention.weight", "attention", 3.0 * B * T * H * es, [sm, step])
        others = [i for f in model.features if f.role != "behaviour" for i in emb[f.name]]
        width = H + sum(width_of(f) for f in model.features if f.role != "behaviour")
        cat = b_.elementwise("interaction.cat", "interaction", 2.0 * B * width * es, [x, *others])
        top, _ = b_.mlp("top", "top_mlp", B, width, model.top_mlp, [cat], last_act="softmax")
        outputs.append(top)
    out_width = max(1, model.tasks) * model.top_mlp[-1] if not model.tasks else model.tasks
    if move:
        b_.add("output-copy", "transfer", costs.copy(B * out_width * 4), outputs, "copy", copy_launch, engine="d2h")
    return b_.ops


@dataclass(frozen=True, kw_only=True)
class PipelineResult:
    """End-to-end latency of one batch, its breakdown, and the steady-state throughput."""

    model: str
    device: str
    device_kind: str
    batch_size: int
    dtype: str
    time_s: float
    embedding_time_s: float
    stages: dict[str, float]
    streams_requested: int
    streams_used: int
    sync_points: int
    memory: dict[str, Any]
    representations: dict[str, str]
    kernel: dict[str, Any] | None
    #: samples per second of a steady stream of batches (pipelined copies on a GPU)
    throughput_samples_per_s: float
    #: time between consecutive batches' completions in that stream
    period_s: float
    #: a batch's latency inside that stream (its first op's start to its completion)
    pipelined_latency_s: float
    #: ``pytorch`` or ``tbe`` on a GPU; None on a CPU (its gathers are the framework's CPU operator)
    embedding_kernel: str | None = "pytorch"
    cpu_mode: str | None = None
    ops: tuple[Op, ...] = field(repr=False, default=())
    schedule: Schedule | None = field(repr=False, default=None)

    @property
    def embedding_share(self) -> float:
        return self.embedding_time_s / self.time_s if self.time_s > 0 else 0.0

    def to_dict(self, with_ops: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {
            "model": self.model, "device": self.device, "device_kind": self.device_kind, "batch_size": self.batch_size,
            "dtype": self.dtype, "time_s": self.time_s, "embedding_time_s": self.embedding_time_s,
            "embedding_share": self.embedding_share, "throughput_samples_per_s": self.throughput_samples_per_s,
            "period_s": self.period_s, "pipelined_latency_s": self.pipelined_latency_s,
            "batch_over_latency_samples_per_s": self.batch_size / self.time_s if self.time_s > 0 else 0.0,
            "stages": dict(self.stages), "streams_requested": self.streams_requested, "streams_used": self.streams_used,
            "sync_points": self.sync_points, "n_ops": len(self.ops), "memory": self.memory,
            "representations": self.representations, "embedding_kernel": self.embedding_kernel,
            "embedding_kernel_config": self.kernel, "cpu_mode": self.cpu_mode,
        }
        if with_ops and self.schedule is not None:
            sch = self.schedule
            d["ops"] = [
                {"name": op.name, "stage": op.stage, "kind": op.kind, "engine": op.engine, "time_s": op.time_s,
                 "launch_s": op.launch_s, "stream": sch.streams[i], "start_s": sch.start_s[i], "end_s": sch.end_s[i],
                 "sm_util": op.sm_util, "dram_util": op.dram_util, "note": op.note}
                for i, op in enumerate(self.ops)
            ]
        return d


def _batch_bytes(model: ModelSpec, batch_size: int, esize: int) -> int:
    """Device bytes of one batch's inputs and activations: the dense features (fp32), every
    bag's indices (int64) and offsets, and the activations, estimated from above as every
    layer's output held at once (the embedding outputs, each MLP layer, per task)."""
    lookups = sum(math.ceil(batch_size * f.table.mean_pooling) * f.sequence * f.table.count for f in model.features)
    bags = sum(batch_size * f.sequence * f.table.count for f in model.features)
    inputs = batch_size * model.dense_features * 4 + lookups * 8 + (bags + len(model.features)) * 8
    widths = (sum(f.table.dim * f.table.count for f in model.features) + sum(model.bottom_mlp) + sum(model.top_mlp)
              + max(model.tasks, 1) * sum(model.task_mlp))
    return inputs + batch_size * widths * esize


def _memory_plan(model: ModelSpec, dev: GPUSpec | CPUSpec, reps: str | Mapping[str, str] | None, dhe: DHEConfig,
                 esize: int, batch_size: int = 1) -> tuple[dict[str, Any], frozenset[str]]:
    per_table: list[tuple[str, int, float]] = []
    for key, f in table_instances(model):
        rep = _rep_of(reps, key, f)
        nbytes = representation_bytes(rep, f.table.rows, f.table.dim, f.table.row_bytes // f.table.dim, dhe, esize)
        per_table.append((key, nbytes, f.table.mean_pooling * f.sequence / max(nbytes, 1)))
    tables = sum(b for _, b, _ in per_table)
    # the dense weights and one batch's inputs and activations stay in the device's own memory
    dense = _dense_weight_bytes(model, esize) + _batch_bytes(model, batch_size, esize)
    if isinstance(dev, GPUSpec):
        capacity = int(dev.dram_size_bytes * GPU_MEMORY_USABLE_FRACTION)
    else:
        capacity = dev.dram_capacity_bytes
    if dense > capacity:  # no placement of the tables helps
        raise InputError(
            f"`dense weights + one batch's inputs and activations <= usable memory` must hold, but batch {batch_size:,} "
            f"of model {model.id!r} needs {dense / 1e9:,.1f} GB and {dev.id!r} has {capacity / 1e9:,.1f} GB; "
            "give a smaller batch")
    host: set[str] = set()
    on_device = tables
    if isinstance(dev, GPUSpec) and tables + dense > capacity:
        # place the tables with the fewest lookups per byte in host memory (zero-copy reads over the link)
        for key, nbytes, _ in sorted(per_table, key=lambda x: x[2]):
            if on_device + dense <= capacity:
                break
            host.add(key)
            on_device -= nbytes
    fits = on_device + dense <= capacity
    if not fits and isinstance(dev, CPUSpec):
        raise InputError(
            f"model {model.id!r} needs {(tables + dense) / 1e9:.1f} GB but cpu {dev.id!r} has {capacity / 1e9:.1f} GB of DRAM"
        )
    plan = {
        "table_bytes": tables, "dense_weight_bytes": dense - _batch_bytes(model, batch_size, esize),
        "batch_bytes": _batch_bytes(model, batch_size, esize), "capacity_bytes": capacity,
        "fits": not host and fits, "placement": "device" if not host else "device+host-mapped",
        "host_tables": sorted(host), "host_table_bytes": tables - on_device,
    }
    return plan, frozenset(host)


def run_pipeline(model: str | os.PathLike[str] | ModelSpec, device: str | os.PathLike[str] | GPUSpec | CPUSpec,
                 batch_size: int, *, streams: int = 1, dtype: str = "fp32", kernel: KernelConfig | None = None,
                 kernels: Mapping[str, KernelConfig] | None = None,
                 representations: str | Mapping[str, str] | None = None, dhe: DHEConfig | None = None,
                 transfers: bool = True, embedding_kernel: str = "pytorch", cpu_mode: str = "socket",
                 throughput: bool = True) -> PipelineResult:
    """End-to-end latency of one batch of ``model`` on ``device`` (a GPU or CPU id or spec).

    ``streams``: at most this many CUDA streams (GPU only; the scheduler may use fewer).
    ``kernel``: the embedding kernel configuration (default: PyTorch's as shipped);
    ``kernels`` overrides it per table key or feature name (e.g. searched configurations).
    ``representations``: one of ``REPRESENTATIONS`` for all tables, or per table key.
    ``transfers``: include the host<->device copies of inputs and outputs (GPU).
    ``embedding_kernel``: ``pytorch`` or ``tbe`` (one table-batched launch, the model's ``tbe``
    kernel variant over every one-bag-per-sample table). ``cpu_mode``: ``socket`` or ``core-per-query`` (CPU).
    ``throughput``: also simulate the steady state of a stream of batches (GPU).
    """
    m = get_model(model)
    dev = resolve_device(device)
    check_int(batch_size, "batch_size", min_val=1)
    check_streams(streams)
    _check_choice("dtype", dtype, list(MATMUL_DTYPES))
    _check_choice("embedding kernel", embedding_kernel, EMBEDDING_KERNELS)
    _check_choice("cpu mode", cpu_mode, CPU_MODES)
    dhe = dhe or DHEConfig()
    kernel = kernel or KernelConfig()
    plan, host = _memory_plan(m, dev, representations, dhe, MATMUL_DTYPES[dtype], batch_size)
    costs: GPUCosts | CPUCosts
    gpu = isinstance(dev, GPUSpec)
    parallel = 1
    if isinstance(dev, GPUSpec):
        costs = GPUCosts(dev, dtype)
    else:
        per_core = cpu_mode == "core-per-query"
        parallel = dev.cores if per_core else 1
        costs = CPUCosts(dev, dtype, weights_in_llc=plan["dense_weight_bytes"] <= 0.5 * dev.llc_bytes,
                         table_calls=m.table_calls, threads=1 if per_core else None, concurrent_cores=parallel)
    ops = build_ops(m, costs, batch_size, kernel=kernel, kernels=kernels, representations=representations, dhe=dhe,
                    host_tables=host, transfers=transfers, embedding_kernel=embedding_kernel)
    k = streams if gpu else 1
    sync = launch_costs().event_sync_s if gpu else 0.0
    memory = costs.memory if isinstance(costs, GPUCosts) else None
    sch = schedule(ops, k, sync, memory)
    period, lat = steady_state(ops, sch, sync, memory) if gpu and throughput else (sch.makespan_s, sch.makespan_s)
    reps = {key: _rep_of(representations, key, f) for key, f in table_instances(m)}
    return PipelineResult(
        model=m.id, device=dev.id, device_kind="gpu" if gpu else "cpu", batch_size=batch_size,
        dtype=dtype, time_s=sch.makespan_s, embedding_time_s=sch.stage_s.get("embedding", 0.0), stages=dict(sch.stage_s),
        streams_requested=streams, streams_used=sch.streams_used, sync_points=sch.sync_points, memory=plan,
        representations=reps, kernel=kernel.to_dict() if gpu else None,
        throughput_samples_per_s=parallel * batch_size / period if period > 0 else 0.0, period_s=period / parallel,
        pipelined_latency_s=lat, embedding_kernel=embedding_kernel if gpu else None, cpu_mode=None if gpu else cpu_mode,
        ops=tuple(ops), schedule=sch,
    )


def sweep_batch(model: str | ModelSpec, devices: Sequence[str], batch_sizes: Sequence[int], *, streams: int = 1,
                dtype: str = "fp32", embedding_kernel: str = "pytorch") -> list[dict[str, Any]]:
    """Latency and throughput for every (device, batch size)."""
    if not devices or not batch_sizes:
        raise InputError(f"a sweep needs at least one device and one batch size, but got devices={list(devices)} and "
                         f"batch_sizes={list(batch_sizes)}")
    rows = []
    for d in devices:
        for b in batch_sizes:
            r = run_pipeline(model, d, b, streams=streams, dtype=dtype, embedding_kernel=embedding_kernel)
            rows.append({"device": r.device, "device_kind": r.device_kind, "batch_size": b, "time_s": r.time_s,
                         "throughput_samples_per_s": r.throughput_samples_per_s, "embedding_share": r.embedding_share})
    return rows


def crossover_of(rows: Sequence[Mapping[str, Any]], gpu: str, cpu: str) -> int | None:
    """The smallest swept batch size from which the GPU's latency beats the CPU's at every larger
    swept size (None if the CPU is faster at the largest)."""
    g = {r["batch_size"]: r["time_s"] for r in rows if r["device"] == gpu}
    c = {r["batch_size"]: r["time_s"] for r in rows if r["device"] == cpu}
    cross = None
    for b in sorted(set(g) & set(c), reverse=True):
        if g[b] < c[b]:
            cross = b
        else:
            break
    return cross


def crossover(model: str | ModelSpec, cpu: str, gpu: str, batch_sizes: Sequence[int], *, streams: int = 1,
              dtype: str = "fp32") -> int | None:
    """:func:`crossover_of` over a fresh sweep of ``cpu`` and ``gpu``."""
    rows = sweep_batch(model, [gpu], batch_sizes, streams=streams, dtype=dtype) + sweep_batch(model, [cpu], batch_sizes,
                                                                                                dtype=dtype)
    return crossover_of(rows, resolve_device(gpu).id, resolve_device(cpu).id)
