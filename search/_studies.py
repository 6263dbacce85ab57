"""The best configurations of a finished search study, for a hardware sweep
(``recperf validate sweep --top K``)."""

from __future__ import annotations

import math
from collections.abc import Mapping

from perfmodel import InputError, KernelConfig, check_int
from search._codec import trial_config
from search._space import space_from_mapping
from search._storage import resolve_storage, storage_errors

__all__ = ["study_top_k"]


def study_top_k(storage: str, study_name: str, k: int) -> list[KernelConfig]:
    """The ``k`` best distinct configurations of a search study (first objective, completed trials).

    ``storage`` is what ``recperf search --storage`` takes (a URL or a file path); the
    study's search space is read from its ``space`` attribute (written by :mod:`search`).
    """
    import optuna

    check_int(k, "k", min_val=1)
    spec = resolve_storage(storage, study_name)
    opened = spec.open()
    try:
        with storage_errors(spec):
            study = optuna.load_study(study_name=study_name, storage=opened)
    except KeyError:
        raise InputError(f"no study named {study_name!r} in {spec.describe()}") from None
    space_doc = study.user_attrs.get("space")
    if not isinstance(space_doc, Mapping):
        raise InputError(f"study {study_name!r} has no `space` attribute: it was not written by recperf search")
    # search writes SearchSpace.to_dict() (field names); space_from_mapping reads plural keys
    fields = {f for f in KernelConfig.__dataclass_fields__}
    doc = {(key + "s" if key in fields else key): v for key, v in space_doc.items()}
    space = space_from_mapping(doc)
    done = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
            if t.values and all(math.isfinite(v) for v in t.values)]
    done.sort(key=lambda t: t.values[0])
    out: list[KernelConfig] = []
    for t in done:
        c = trial_config(space, t)
        if c not in out:
            out.append(c)
        if len(out) == k:
            break
    return out
