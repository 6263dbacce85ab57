"""Whole-inference latency of a recommendation model on a GPU or a CPU.

A model (``ModelSpec``) becomes an operator graph for one batch (``build_ops``): input
copy, bottom MLP, one embedding op per table (or its DHE/hybrid ops), interaction, DIN's
attention units or DIEN's recurrent layers, top MLP (and task heads), output copy. Each op
gets its cost from the device's cost model (``_costs``), then the graph is scheduled on at
most K streams and simulated (``_schedule``). On a CPU operators run one after another
(each uses the socket's cores as it pays), so streams do not apply.

Stage times add up to the end-to-end time; ``embedding_time_s`` is the embedding stage's
share of the wall time (all of its ops' time at one stream).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from perfmodel._config import KernelConfig, Table
from perfmodel._errors import InputError, choices_text
from perfmodel._gpu import GPUSpec, get_gpu, gpu_ids
from perfmodel.pipeline._costs import MATMUL_DTYPES, CPUCosts, GPUCosts, OpCost
from perfmodel.pipeline._representations import REPRESENTATIONS, DHEConfig, representation_bytes
from perfmodel.pipeline._schedule import Op, Schedule, schedule
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
    "SEED_COMBINED_KERNEL",
    "PipelineResult",
    "build_ops",
    "choose_representations",
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
    if isinstance(reps, str):
        rep = reps
    else:
        rep = reps.get(key, reps.get(feature.name, "table"))
    if rep not in REPRESENTATIONS:
        raise InputError(f"unknown representation {rep!r}; valid choices: {', '.join(REPRESENTATIONS)}")
    return rep


class _Builder:
    def __init__(self, costs: GPUCosts | CPUCosts) -> None:
        self.costs = costs
        self.ops: list[Op] = []
        self.esize = costs.esize

    def add(self, name: str, stage: str, cost: OpCost, deps: list[int] | tuple[int, ...], kind: str,
            launch_s: float | None = None) -> int:
        self.ops.append(Op(name=name, stage=stage, time_s=max(cost.time_s, 0.0), deps=tuple(sorted(set(deps))),
                           launch_s=self.costs.op_launch_s if launch_s is None else launch_s, sm_util=cost.sm_util,
                           dram_util=cost.dram_util, kind=kind, flops=cost.flops, bytes=cost.bytes, note=cost.note))
        return len(self.ops) - 1

    def elementwise(self, name: str, stage: str, nbytes: float, deps: list[int]) -> int:
        return self.add(name, stage, self.costs.elementwise(nbytes), deps, "elementwise")

    def linear(self, name: str, stage: str, m: int, k: int, n: int, dep: list[int], act: str | None = "relu") -> int:
        i = self.add(name, stage, self.costs.gemm(m, n, k), dep, "gemm")
        if act:
            i = self.add(f"{name}.{act}", stage, self.costs.elementwise(2.0 * m * n * self.esize), [i], "elementwise")
        return i

    def mlp(self, name: str, stage: str, m: int, k: int, widths: tuple[int, ...], dep: list[int],
            last_act: str | None = "relu") -> tuple[int, int]:
        i = dep
        idx = -1
        for j, w in enumerate(widths):
            act = "relu" if j < len(widths) - 1 else last_act
            idx = self.linear(f"{name}.fc{j}", stage, m, k, w, i, act)
            i, k = [idx], w
        return idx, k


def _dense_weight_bytes(model: ModelSpec, esize: int) -> int:
    """Weights of the MLPs (an upper estimate that ignores DIN/DIEN's small layers)."""
    total = 0

    def chain(k: int, widths: tuple[int, ...]) -> int:
        s = 0
        for w in widths:
            s += (k * w + w) * esize
            k = w
        return s

    total += chain(model.dense_features, model.bottom_mlp)
    total += chain(sum(f.table.dim * f.table.count for f in model.features) + model.dense_features, model.top_mlp)
    if model.tasks:
        total += model.tasks * chain(model.top_mlp[-1], model.task_mlp)
    return total


def build_ops(model: ModelSpec, costs: GPUCosts | CPUCosts, batch_size: int, *,
              kernel: KernelConfig | None = None, kernels: Mapping[str, KernelConfig] | None = None,
              representations: str | Mapping[str, str] | None = None, dhe: DHEConfig | None = None,
              host_tables: frozenset[str] = frozenset(), transfers: bool = True) -> list[Op]:
    """The operator graph of one batch of ``model`` with costs on ``costs``' device.

    ``transfers``: copy the inputs (dense features, indices, offsets) to the GPU and the
    outputs back (False: inputs already on the device, as kernel benchmark harnesses run).
    """
    b_ = _Builder(costs)
    B = batch_size
    es = costs.esize
    kernel = kernel or KernelConfig()
    dhe = dhe or DHEConfig()
    gpu = isinstance(costs, GPUCosts)
    lc = launch_costs()
    copy_launch = lc.framework_dispatch_s if gpu else 0.0

    # input copy: dense features, indices and offsets
    idx_bytes = sum(B * f.lookups_per_sample * model.index_bytes + B * f.sequence * f.table.count * model.index_bytes
                    for f in model.features)
    in_cost = costs.copy(B * model.dense_features * 4 + idx_bytes) if transfers else OpCost(time_s=0.0)
    inp = b_.add("input-copy", "transfer", in_cost, [], "copy", copy_launch if transfers else 0.0)

    # embeddings, per table
    emb: dict[str, list[int]] = {}
    for key, f in table_instances(model):
        rep = _rep_of(representations, key, f)
        bags = B * f.sequence
        ends = []
        if rep in ("table", "hybrid"):
            t = f.table
            if rep == "hybrid":
                t = Table(rows=t.rows, dim=max(1, t.dim // 2), dtype=t.dtype, pooling=t.pooling, pooling_mean=t.pooling_mean,
                          pooling_dist=t.pooling_dist, count=1, indices=t.indices)
            k = (kernels or {}).get(key, (kernels or {}).get(f.name, kernel))
            cost = costs.gather(t, bags, k, host_mapped=key in host_tables)
            ends.append(b_.add(f"emb.{key}", "embedding", cost, [inp], "gather"))
        if rep in ("dhe", "hybrid"):
            d_out = f.table.dim - (max(1, f.table.dim // 2) if rep == "hybrid" else 0)
            lookups = math.ceil(bags * f.table.mean_pooling)
            # hash encoding: k hashes per lookup, written as a dense code (fp32)
            h = b_.add(f"dhe.{key}.hash", "embedding", costs.elementwise(lookups * (dhe.hashes * 4.0 + 8), 4.0 * lookups * dhe.hashes),
                       [inp], "elementwise")
            i, k_in = [h], dhe.hashes
            for j, (_, w) in enumerate(dhe.layers(d_out)):
                final = j == len(dhe.hidden)
                i = [b_.linear(f"dhe.{key}.fc{j}", "embedding", lookups, k_in, w, i, None if final else "relu")]
                k_in = w
            pool = b_.elementwise(f"dhe.{key}.pool", "embedding", (lookups + bags) * d_out * es, i)
            ends.append(pool)
        if len(ends) == 2:
            ends = [b_.elementwise(f"hybrid.{key}.concat", "embedding", 2.0 * bags * f.table.dim * es, ends)]
        emb.setdefault(f.name, []).extend(ends)
    all_emb = [i for v in emb.values() for i in v]

    outputs: list[int] = []
    if model.arch == "dlrm":
        dense_dep = [inp]
        width_dense = model.dense_features
        if model.bottom_mlp:
            last, width_dense = b_.mlp("bottom", "bottom_mlp", B, model.dense_features, model.bottom_mlp, [inp])
            dense_dep = [last]
        if model.interaction == "cat":
            width = width_dense + sum(f.table.dim * f.table.count * f.sequence for f in model.features)
            x = b_.elementwise("interaction.cat", "interaction", 2.0 * B * width * es, dense_dep + all_emb)
        else:
            nf = 1 + sum(f.table.count * f.sequence for f in model.features)
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
            wide = b_.linear("wide.fc", "wide", B, model.dense_features, 1, [inp], None)
            outputs = [b_.elementwise("wide.add", "wide", 3.0 * B * max(1, model.tasks) * es, [*outputs, wide])]
    elif model.arch == "din":
        beh = model.behaviour()
        d = beh.table.dim
        seq = beh.sequence * beh.table.count
        cand = [i for f in model.features if f.role == "candidate" for i in emb[f.name]]
        cat = b_.elementwise("attention.concat", "attention", B * seq * (d + 3 * d) * es + B * d * es, emb[beh.name] + cand)
        last, w_att = b_.mlp("attention", "attention", B * seq, 3 * d, model.attention_mlp, [cat])
        att = b_.elementwise("attention.sum", "attention", (B * seq + B) * w_att * es, [last])
        others = [i for f in model.features if f.role != "behaviour" for i in emb[f.name]]
        width = w_att + sum(f.table.dim * f.table.count for f in model.features if f.role != "behaviour")
        x = b_.elementwise("interaction.cat", "interaction", 2.0 * B * width * es, [att, *others])
        top, _ = b_.mlp("top", "top_mlp", B, width, model.top_mlp, [x], last_act="softmax")
        outputs.append(top)
    else:  # dien
        beh = model.behaviour()
        d = beh.table.dim
        T = beh.sequence * beh.table.count
        H = model.gru_hidden
        x = b_.elementwise("recurrent.concat", "recurrent", 2.0 * B * T * d * es, emb[beh.name])
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
        width = H + sum(f.table.dim * f.table.count for f in model.features if f.role != "behaviour")
        cat = b_.elementwise("interaction.cat", "interaction", 2.0 * B * width * es, [x, *others])
        top, _ = b_.mlp("top", "top_mlp", B, width, model.top_mlp, [cat], last_act="softmax")
        outputs.append(top)
    out_width = max(1, model.tasks) * model.top_mlp[-1] if not model.tasks else model.tasks
    if transfers:
        b_.add("output-copy", "transfer", costs.copy(B * out_width * 4), outputs, "copy", copy_launch)
    return b_.ops


@dataclass(frozen=True, kw_only=True)
class PipelineResult:
    """End-to-end latency of one batch and its breakdown."""

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
    ops: tuple[Op, ...] = field(repr=False, default=())
    schedule: Schedule | None = field(repr=False, default=None)

    @property
    def embedding_share(self) -> float:
        return self.embedding_time_s / self.time_s if self.time_s > 0 else 0.0

    @property
    def throughput_samples_per_s(self) -> float:
        return self.batch_size / self.time_s

    def to_dict(self, with_ops: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {
            "model": self.model, "device": self.device, "device_kind": self.device_kind, "batch_size": self.batch_size,
            "dtype": self.dtype, "time_s": self.time_s, "embedding_time_s": self.embedding_time_s,
            "embedding_share": self.embedding_share, "throughput_samples_per_s": self.throughput_samples_per_s,
            "stages": dict(self.stages), "streams_requested": self.streams_requested, "streams_used": self.streams_used,
            "sync_points": self.sync_points, "n_ops": len(self.ops), "memory": self.memory,
            "representations": self.representations, "embedding_kernel": self.kernel,
        }
        if with_ops and self.schedule is not None:
            sch = self.schedule
            d["ops"] = [
                {"name": op.name, "stage": op.stage, "kind": op.kind, "time_s": op.time_s, "launch_s": op.launch_s,
                 "stream": sch.streams[i], "start_s": sch.start_s[i], "end_s": sch.end_s[i], "sm_util": op.sm_util,
                 "dram_util": op.dram_util, "note": op.note}
                for i, op in enumerate(self.ops)
            ]
        return d


def _memory_plan(model: ModelSpec, dev: GPUSpec | CPUSpec, reps: str | Mapping[str, str] | None, dhe: DHEConfig,
                 esize: int) -> tuple[dict[str, Any], frozenset[str]]:
    per_table: list[tuple[str, int, float]] = []
    for key, f in table_instances(model):
        rep = _rep_of(reps, key, f)
        nbytes = representation_bytes(rep, f.table.rows, f.table.dim, f.table.row_bytes // f.table.dim, dhe)
        per_table.append((key, nbytes, f.table.mean_pooling * f.sequence / max(nbytes, 1)))
    tables = sum(b for _, b, _ in per_table)
    dense = _dense_weight_bytes(model, esize)
    if isinstance(dev, GPUSpec):
        capacity = int(dev.dram_size_bytes * GPU_MEMORY_USABLE_FRACTION)
    else:
        capacity = dev.dram_capacity_bytes
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
        "table_bytes": tables, "dense_weight_bytes": dense, "capacity_bytes": capacity,
        "fits": not host and fits, "placement": "device" if not host else "device+host-mapped",
        "host_tables": sorted(host), "host_table_bytes": tables - on_device,
    }
    return plan, frozenset(host)


def run_pipeline(model: str | os.PathLike[str] | ModelSpec, device: str | os.PathLike[str] | GPUSpec | CPUSpec,
                 batch_size: int, *, streams: int = 1, dtype: str = "fp32", kernel: KernelConfig | None = None,
                 kernels: Mapping[str, KernelConfig] | None = None,
                 representations: str | Mapping[str, str] | None = None, dhe: DHEConfig | None = None,
                 transfers: bool = True) -> PipelineResult:
    """End-to-end latency of one batch of ``model`` on ``device`` (a GPU or CPU id or spec).

    ``streams``: at most this many CUDA streams (GPU only; the scheduler may use fewer).
    ``kernel``: the embedding kernel configuration (default: PyTorch's as shipped);
    ``kernels`` overrides it per table key or feature name (e.g. searched configurations).
    ``representations``: ``table``/``dhe``/``hybrid`` for all tables, or per table key.
    ``transfers``: include the host<->device copies of inputs and outputs (GPU).
    """
    m = get_model(model)
    dev = resolve_device(device)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"`batch_size >= 1` must hold, but got batch_size={batch_size!r}")
    if isinstance(streams, bool) or not isinstance(streams, int) or streams < 1:
        raise InputError(f"`streams >= 1` must hold, but got streams={streams!r}")
    if dtype not in MATMUL_DTYPES:
        raise InputError(f"unknown dtype {dtype!r}; valid choices: {', '.join(MATMUL_DTYPES)}")
    dhe = dhe or DHEConfig()
    kernel = kernel or KernelConfig()
    plan, host = _memory_plan(m, dev, representations, dhe, MATMUL_DTYPES[dtype])
    costs: GPUCosts | CPUCosts
    if isinstance(dev, GPUSpec):
        costs = GPUCosts(dev, dtype)
    else:
        costs = CPUCosts(dev, dtype, weights_in_llc=plan["dense_weight_bytes"] <= 0.5 * dev.llc_bytes,
                         table_calls=m.table_calls)
    ops = build_ops(m, costs, batch_size, kernel=kernel, kernels=kernels, representations=representations, dhe=dhe,
                    host_tables=host, transfers=transfers)
    k = streams if isinstance(dev, GPUSpec) else 1
    sch = schedule(ops, k, launch_costs().event_sync_s if isinstance(dev, GPUSpec) else 0.0)
    reps = {key: _rep_of(representations, key, f) for key, f in table_instances(m)}
    return PipelineResult(
        model=m.id, device=dev.id, device_kind="gpu" if isinstance(dev, GPUSpec) else "cpu", batch_size=batch_size,
        dtype=dtype, time_s=sch.makespan_s, embedding_time_s=sch.stage_s.get("embedding", 0.0), stages=dict(sch.stage_s),
        streams_requested=streams, streams_used=sch.streams_used, sync_points=sch.sync_points, memory=plan,
        representations=reps, kernel=kernel.to_dict() if isinstance(dev, GPUSpec) else None, ops=tuple(ops), schedule=sch,
    )


def sweep_batch(model: str | ModelSpec, devices: list[str], batch_sizes: list[int], *, streams: int = 1,
                dtype: str = "fp32") -> list[dict[str, Any]]:
    """Latency and throughput for every (device, batch size)."""
    rows = []
    for d in devices:
        for b in batch_sizes:
            r = run_pipeline(model, d, b, streams=streams, dtype=dtype)
            rows.append({"device": r.device, "device_kind": r.device_kind, "batch_size": b, "time_s": r.time_s,
                         "throughput_samples_per_s": r.throughput_samples_per_s, "embedding_share": r.embedding_share})
    return rows


def crossover(model: str | ModelSpec, cpu: str, gpu: str, batch_sizes: list[int], *, streams: int = 1,
              dtype: str = "fp32") -> int | None:
    """The smallest batch size from which on the GPU is faster than the CPU at every larger
    swept size (None if the CPU is faster at the largest)."""
    cross: int | None = None
    for b in sorted(batch_sizes, reverse=True):
        g = run_pipeline(model, gpu, b, streams=streams, dtype=dtype).time_s
        c = run_pipeline(model, cpu, b, dtype=dtype).time_s
        if g < c:
            cross = b
        else:
            break
    return cross


def choose_representations(model: str | ModelSpec, device: str, batch_size: int, *, memory_budget_bytes: float,
                           latency_target_s: float | None = None, prefer_hybrid: bool = False,
                           dhe: DHEConfig | None = None, streams: int = 1) -> dict[str, Any]:
    """Per-table representation under a memory budget (and a latency target).

    Greedy: start from tables; while the embedding memory exceeds the budget, turn into DHE
    the table that saves the most bytes per second of added embedding time. With
    ``prefer_hybrid`` (MP-Rec: hybrid is the most accurate), then upgrade tables to hybrid,
    cheapest added time first, while budget and target hold. Infeasible settings are a
    result (``feasible`` False with the reason), not an error.
    """
    m = get_model(model)
    dev = resolve_device(device)
    dhe = dhe or DHEConfig()
    costs: GPUCosts | CPUCosts = GPUCosts(dev) if isinstance(dev, GPUSpec) else CPUCosts(dev, table_calls=m.table_calls)
    inst = table_instances(m)

    def op_time(key: str, f: EmbeddingFeature, rep: str) -> float:
        ops = build_ops(
            ModelSpec(id=m.id, name=m.name, arch="dlrm", features=(EmbeddingFeature(name=f.name, table=Table(
                rows=f.table.rows, dim=f.table.dim, dtype=f.table.dtype, pooling=f.table.pooling,
                pooling_mean=f.table.pooling_mean, pooling_dist=f.table.pooling_dist, count=1, indices=f.table.indices),
                sequence=f.sequence),), top_mlp=(1,)),
            costs, batch_size, representations=rep, dhe=dhe)
        return sum(o.time_s + o.launch_s for o in ops if o.stage == "embedding")

    cache: dict[tuple[str, str], float] = {}
    nbytes: dict[tuple[str, str], int] = {}
    for key, f in inst:
        sig = f"{f.name}"
        for rep in REPRESENTATIONS:
            if (sig, rep) not in cache:
                cache[(sig, rep)] = op_time(key, f, rep)
                nbytes[(sig, rep)] = representation_bytes(rep, f.table.rows, f.table.dim, f.table.row_bytes // f.table.dim, dhe)
    choice = {key: "table" for key, _ in inst}
    feat = dict(inst)

    def total_bytes() -> int:
        return sum(nbytes[(feat[k].name, r)] for k, r in choice.items())

    while total_bytes() > memory_budget_bytes:
        cands = [((nbytes[(feat[k].name, "table")] - nbytes[(feat[k].name, "dhe")])
                  / max(cache[(feat[k].name, "dhe")] - cache[(feat[k].name, "table")], 1e-12), k)
                 for k, r in choice.items() if r == "table"]
        cands = [c for c in cands if c[0] > 0]
        if not cands:
            break
        choice[max(cands)[1]] = "dhe"
    reason = ""
    if total_bytes() > memory_budget_bytes:
        reason = "memory budget below the all-DHE footprint"
    res = run_pipeline(m, dev, batch_size, streams=streams, representations=choice, dhe=dhe)
    if prefer_hybrid and not reason:
        order = sorted((cache[(feat[k].name, "hybrid")] - cache[(feat[k].name, r)], k) for k, r in choice.items() if r != "hybrid")
        for _, k in order:
            old = choice[k]
            choice[k] = "hybrid"
            if total_bytes() > memory_budget_bytes:
                choice[k] = old
                continue
            trial = run_pipeline(m, dev, batch_size, streams=streams, representations=choice, dhe=dhe)
            if latency_target_s is not None and trial.time_s > latency_target_s:
                choice[k] = old
                continue
            res = trial
    if not reason and latency_target_s is not None and res.time_s > latency_target_s:
        reason = f"latency {res.time_s:.3g} s exceeds the target {latency_target_s:.3g} s"
    return {
        "model": m.id, "device": dev.id, "batch_size": batch_size, "representations": dict(choice),
        "counts": {r: sum(1 for v in choice.values() if v == r) for r in REPRESENTATIONS},
        "embedding_bytes": total_bytes(), "memory_budget_bytes": memory_budget_bytes, "time_s": res.time_s,
        "embedding_time_s": res.embedding_time_s, "latency_target_s": latency_target_s, "feasible": not reason,
        "reason": reason,
    }
