"""A plan: one kernel configuration per table of a workload, its TOML file, and its prediction.

The embedding stage launches one lookup kernel per table call, one after another, and each
call starts with an L2 that holds none of that table's rows except the pinned ones
(docs/formats.md), so each table may run its own configuration. A :class:`Plan` holds one
:class:`KernelConfig` per ``[[tables]]`` entry of the workload, in the workload's order
(the ``count`` identical tables of an entry share it). The file (written by
``recperf search --per-table``, read by ``recperf predict --plan``)::

    [[tables]]
    kernel = { variant = "warp", block_size = 512, register_cap = 40, prefetch_distance = 4 }

Absent kernel keys take PyTorch's values as shipped, as in a kernel configuration file.

A plan is predicted table by table: each entry as a workload of that one table under its own
configuration, the times summed. The registers of each table's kernel are those compiled for
that table's dtype; :func:`perfmodel.predict` of one configuration takes the first table's
dtype for every table, so on a workload that mixes float32 and float16 tables a plan that
repeats one configuration can differ from that configuration's own prediction (on a
single-dtype workload the two are the same sum).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from perfmodel._config import KernelConfig, Workload, kernel_config_from_mapping
from perfmodel._errors import InputError
from perfmodel._files import read_toml
from perfmodel._gpu import GPUSpec, get_gpu
from perfmodel._model import Prediction, predict

__all__ = ["Plan", "load_plan", "plan_from_mapping", "predict_plan"]

_KERNEL_FIELDS = tuple(f.name for f in fields(KernelConfig))


@dataclass(frozen=True)
class Plan:
    """One kernel configuration per ``[[tables]]`` entry of a workload, in its order.

    Args:
        kernels: the configurations, one per table entry.
    """

    kernels: tuple[KernelConfig, ...]

    def __post_init__(self) -> None:
        ks = tuple(self.kernels)
        if not ks:
            raise InputError("a plan needs at least one [[tables]] entry, but got none")
        for i, k in enumerate(ks):
            if not isinstance(k, KernelConfig):
                raise InputError(f"plan entry {i} must be a perfmodel.KernelConfig, but got {type(k).__name__}")
        object.__setattr__(self, "kernels", ks)

    @classmethod
    def uniform(cls, kernel: KernelConfig, n_tables: int) -> Plan:
        """The plan that runs ``kernel`` for each of ``n_tables`` table entries."""
        return cls((kernel,) * n_tables)

    def __len__(self) -> int:
        return len(self.kernels)

    def __iter__(self) -> Iterator[KernelConfig]:
        return iter(self.kernels)

    def __getitem__(self, i: int) -> KernelConfig:
        return self.kernels[i]

    def check_workload(self, workload: Workload) -> None:
        """Raise :class:`InputError` unless the plan has one entry per table entry of ``workload``."""
        if len(self.kernels) != len(workload.tables):
            raise InputError(
                f"a plan needs one [[tables]] entry per [[tables]] entry of the workload ({len(workload.tables)}), "
                f"but got {len(self.kernels)}"
            )

    def to_dict(self) -> dict[str, Any]:
        """``{"tables": [{"kernel": {...}}, ...]}``, the file's structure."""
        return {"tables": [{"kernel": k.to_dict()} for k in self.kernels]}

    def to_toml(self, comments: Sequence[str] | None = None) -> str:
        """The plan file's text; ``comments[i]`` (if given) is written above entry ``i``."""
        lines = ["# recperf plan: one kernel configuration per [[tables]] entry of the workload, in its order", ""]
        for i, k in enumerate(self.kernels):
            if comments is not None and i < len(comments) and comments[i]:
                lines += [f"# {c}" for c in comments[i].splitlines()]
            doc = k.to_dict()
            cells = ", ".join(f"{name} = {_toml_value(doc[name])}" for name in _KERNEL_FIELDS)
            lines += ["[[tables]]", f"kernel = {{ {cells} }}", ""]
        return "\n".join(lines)

    def write(self, path: str | os.PathLike[str], comments: Sequence[str] | None = None) -> Path:
        """Write the plan file to ``path`` (folders created) and return the path."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(self.to_toml(comments), encoding="utf-8")
        return p


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return json.dumps(str(v))  # a TOML basic string (the values are plain ASCII names)


def plan_from_mapping(doc: Mapping[str, Any], origin: str = "plan") -> Plan:
    """A :class:`Plan` from a parsed plan file (``{"tables": [{"kernel": {...}}, ...]}``)."""
    unknown = sorted(set(doc) - {"tables"})
    if unknown:
        raise InputError(f"{origin}: unknown top-level keys {unknown}; valid: tables")
    entries = doc.get("tables")
    if not isinstance(entries, list) or not entries:
        raise InputError(f"{origin}: at least one [[tables]] entry is required")
    kernels = []
    for i, e in enumerate(entries):
        where = f"{origin}: tables[{i}]"
        if not isinstance(e, Mapping):
            raise InputError(f"{where} must be a table, but got {e!r}")
        bad = sorted(set(e) - {"kernel"})
        if bad:
            raise InputError(f"{where}: unknown keys {bad}; valid keys: kernel")
        k = e.get("kernel", {})
        if not isinstance(k, Mapping):
            raise InputError(f"{where}.kernel must be a table of kernel configuration keys, but got {k!r}")
        kernels.append(kernel_config_from_mapping(k, f"{where}.kernel"))
    return Plan(tuple(kernels))


def load_plan(path: str | os.PathLike[str]) -> Plan:
    """Load a plan TOML file (see the module docstring)."""
    return plan_from_mapping(read_toml(path, "plan"), f"plan {str(path)!r}")


def predict_plan(workload: Workload, plan: Plan, gpu: GPUSpec | str) -> Prediction:
    """Predicted time of one call of the embedding stage with each table on its plan's kernel.

    Each table entry is predicted as a workload of that entry alone (its ``count`` calls)
    under its configuration; the stage time, pinning time and DRAM bytes are the sums, the
    L2 hit rate is over all lookups, the occupancy is the lookup-time-weighted mean, and
    ``bound`` is that of the table entry with the most lookup time. ``breakdown["tables"]``
    gives each entry's figures with its ``kernel``, registers and resident warps.
    """
    if not isinstance(workload, Workload):
        raise InputError(f"workload must be a perfmodel.Workload, but got {type(workload).__name__}")
    if not isinstance(plan, Plan):
        raise InputError(f"plan must be a perfmodel.Plan, but got {type(plan).__name__}")
    g = get_gpu(gpu)
    plan.check_workload(workload)
    time_s = pin_s = dram = hits = lookups = occ_weighted = lookup_total = 0.0
    tables: list[dict[str, Any]] = []
    bounds: list[tuple[float, str]] = []
    for i, (t, k) in enumerate(zip(workload.tables, plan.kernels, strict=True)):
        p = predict(Workload(batch_size=workload.batch_size, tables=(t,)), k, g)
        time_s += p.time_s
        pin_s += p.pin_time_s
        dram += p.dram_bytes
        row = dict(p.breakdown["tables"][0])
        n = float(row["lookups"]) * t.count
        hits += p.l2_hit_rate * n
        lookups += n
        lookup_s = p.time_s - p.pin_time_s
        occ_weighted += p.occupancy * lookup_s
        lookup_total += lookup_s
        bounds.append((lookup_s, p.bound))
        b = p.breakdown
        row.update(index=i, kernel=k.to_dict(), registers=b["registers"], registers_source=b["registers_source"],
                   spill_bytes=b["spill_bytes"], blocks_per_sm=b["blocks_per_sm"], warps_per_sm=b["warps_per_sm"],
                   occupancy=p.occupancy, time_s=p.time_s)
        tables.append(row)
    bound = max(bounds)[1]
    return Prediction(
        time_s=time_s,
        pin_time_s=pin_s,
        occupancy=occ_weighted / lookup_total if lookup_total > 0 else 0.0,
        l2_hit_rate=hits / max(lookups, 1.0),
        dram_bytes=dram,
        bound=bound,
        breakdown={"gpu": g.id, "plan": [k.to_dict() for k in plan.kernels], "tables": tables},
    )
