"""Sets of kernel configurations for a sweep: a grid, a seeded sample of it, or a list (a
search study's best ones come from ``search.study_top_k``; the CLI joins the two)."""

from __future__ import annotations

import itertools
import os
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import perfmodel
from perfmodel import InputError, KernelConfig

__all__ = ["kernel_grid", "read_kernel_list"]


def kernel_grid(grid: Mapping[str, Sequence[Any]], *, sample: int = 0, seed: int = 0) -> list[KernelConfig]:
    """Every valid combination of ``grid``'s values (invalid ones skipped), or ``sample`` of them.

    Keys are kernel config keys (CONTRACT.md); absent keys take their defaults.
    """
    if not isinstance(grid, Mapping) or not grid:
        raise InputError(f"a grid must be a non-empty table of lists, but got {grid!r}")
    keys = sorted(grid)
    values = []
    for k in keys:
        v = grid[k]
        if isinstance(v, (str, bytes)) or not isinstance(v, Sequence) or not v:
            raise InputError(f"grid[{k!r}] must be a non-empty list of values, but got {v!r}")
        values.append(list(v))
    configs: list[KernelConfig] = []
    seen: set[KernelConfig] = set()
    for combo in itertools.product(*values):
        try:
            c = perfmodel.kernel_config_from_mapping(dict(zip(keys, combo, strict=True)), "grid point")
        except InputError as exc:
            if "unknown keys" in str(exc):
                raise
            continue  # an invalid combination (e.g. a cap below ptxas's minimum) is not a point
        if c not in seen:
            seen.add(c)
            configs.append(c)
    if sample and sample < len(configs):
        configs = random.Random(seed).sample(configs, sample)
    return configs


def read_kernel_list(path: str | os.PathLike[str]) -> list[KernelConfig]:
    """Kernel configs from a JSON-lines file (one object per line, or records with a ``kernel``
    field, such as a study export) or from a folder of kernel TOML files."""
    p = Path(path)
    if p.is_dir():
        files = sorted(p.glob("*.toml"))
        if not files:
            raise InputError(f"folder {str(p)!r} holds no kernel .toml files")
        return [perfmodel.load_kernel_config(f) for f in files]
    lines = perfmodel.read_text(p, "kernel list").splitlines()
    out = []
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        doc = perfmodel.parse_json(line, f"{p}:{i}: each line (a JSON object of kernel config keys)")
        if isinstance(doc, dict) and isinstance(doc.get("kernel"), dict):
            doc = doc["kernel"]
        if not isinstance(doc, dict):
            raise InputError(f"{p}:{i}: each line must be a JSON object of kernel config keys, but got {doc!r}")
        out.append(perfmodel.kernel_config_from_mapping(doc, f"{p}:{i}"))
    return out
