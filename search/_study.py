"""Study identity: the default name and fingerprint of a study, the check that a continued
study was made for the same inputs, and the starting points of a new study."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

from perfmodel import GPUSpec, InputError, KernelConfig, Workload
from search._codec import CapLevelCodec
from search._space import SearchSpace
from search._storage import StorageSpec, storage_errors

if TYPE_CHECKING:
    import optuna

__all__ = ["check_study_matches", "default_study_name", "fingerprint", "known_good_configs", "open_study"]

#: the study attribute holding the fingerprint of the inputs it was made for
FINGERPRINT_ATTR = "recperf_fingerprint"


def fingerprint(workload: Workload, gpu: GPUSpec, space: SearchSpace, objectives: Sequence[str]) -> str:
    """12 hex digits of a hash of everything that fixes what a trial's value means."""
    doc = {
        "workload": dataclasses.asdict(workload),
        "gpu": gpu.to_dict(),
        "space": space.to_dict(),
        "objectives": list(objectives),
        "encoding": CapLevelCodec.name,  # the parameters' meaning (search._codec)
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:12]


def default_study_name(
    workload: Workload, gpu: GPUSpec, space: SearchSpace, objectives: Sequence[str], stem: str | None = None
) -> str:
    """``<workload stem>-<gpu>-<objectives>-<fingerprint>``: the same inputs name the same study."""
    return f"{stem or 'workload'}-{gpu.id}-{'-'.join(objectives)}-{fingerprint(workload, gpu, space, objectives)}"


def known_good_configs(space: SearchSpace) -> list[KernelConfig]:
    """Starting points enqueued in a new study (projected into ``space``): PyTorch's kernel
    as shipped (the baseline), and the seed paper's combination (register cap 42, prefetch
    two rows ahead into registers, the hottest rows pinned with evict-last prefetches up to
    the persisting limit; FACTS.md section 1)."""
    top_fraction = space.pinned_row_fractions[-1]
    paper = KernelConfig(register_cap=42, prefetch_distance=2, pinned_row_fraction=top_fraction,
                         pin_method="evict-last-prefetch")
    out: list[KernelConfig] = []
    for c in (KernelConfig(), paper):
        p = space.project(c)
        if p not in out:
            out.append(p)
    return out


def open_study(spec: StorageSpec, name: str, n_objectives: int,
               sampler: optuna.samplers.BaseSampler | None = None) -> optuna.Study:
    """Create the study ``name`` in ``spec``'s storage, or load it if it exists."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = spec.open()
    with storage_errors(spec):
        return optuna.create_study(storage=storage, study_name=name, directions=["minimize"] * n_objectives,
                                   sampler=sampler, load_if_exists=True)


def check_study_matches(study: optuna.Study, workload: Workload, gpu: GPUSpec, space: SearchSpace,
                        objectives: Sequence[str]) -> None:
    """Record the inputs on a new study; refuse to continue a study made for other inputs."""
    fp = fingerprint(workload, gpu, space, objectives)
    attrs = study.user_attrs
    if FINGERPRINT_ATTR not in attrs:
        study.set_user_attr(FINGERPRINT_ATTR, fp)
        study.set_user_attr("gpu", gpu.id)
        study.set_user_attr("objectives", list(objectives))
        study.set_user_attr("space", space.to_dict())
        return
    if attrs[FINGERPRINT_ATTR] != fp:
        raise InputError(
            f"study {study.study_name!r} was created for another workload, GPU, search space or objectives "
            f"(gpu {attrs.get('gpu')!r}, objectives {attrs.get('objectives')!r}); it must match to continue it, "
            f"so choose another --study-name"
        )
