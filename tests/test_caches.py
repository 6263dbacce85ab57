"""perfmodel.clear_caches: one call forgets every module-level cache (found by walking the
package, so a cache added later without being cleared fails here), and results do not change."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import perfmodel
import perfmodel.pipeline
from perfmodel import IndexDistribution, KernelConfig, Table, Workload

ROOT = Path(__file__).resolve().parent.parent
TRACE = ROOT / "perfmodel" / "data" / "traces" / "reuse_medium_500K.txt"


def _modules() -> list[ModuleType]:
    out = [perfmodel]
    for info in pkgutil.walk_packages(perfmodel.__path__, "perfmodel."):
        if info.name.endswith(("_desjit", "_l2jit", "_lru_jit")):
            continue  # numba kernels: no module-level caches, and importing compiles them
        out.append(importlib.import_module(info.name))
    return out


def _lru_functions() -> dict[str, Callable[..., Any]]:
    """Every functools-cached function defined at module level in perfmodel."""
    found = {}
    for m in _modules():
        for name, obj in vars(m).items():
            if callable(obj) and hasattr(obj, "cache_info") and getattr(obj, "__module__", "") == m.__name__:
                found[f"{m.__name__}.{name}"] = obj
    return found


def _module_dicts() -> dict[str, dict[Any, Any]]:
    """Module-level dicts of perfmodel (caches among them)."""
    return {f"{m.__name__}.{name}": obj for m in _modules() for name, obj in vars(m).items()
            if isinstance(obj, dict) and not name.startswith("__")}


def _run_everything(tmp_path: Path) -> list[float]:
    trace = Workload(batch_size=64, tables=(Table(rows=500_000, dim=128, pooling=20,
                                                  indices=IndexDistribution(kind="trace", path=str(TRACE))),))
    zipf = Workload(batch_size=64, tables=(Table(rows=50_000, dim=32, pooling=10,
                                                 indices=IndexDistribution(kind="zipf", alpha=1.1)),))
    k = KernelConfig(variant="warp", prefetch_distance=2, pinned_row_fraction=0.01)
    out = [perfmodel.predict(trace, k, "a100-80gb").time_s, perfmodel.predict(zipf, k, "h100-sxm").time_s,
           float(perfmodel.predict_batch(zipf, [k, KernelConfig()], "a100-80gb")[1]),
           perfmodel.simulate(zipf, k, "a100-80gb").time_s]
    out.append(perfmodel.pipeline.run_pipeline("rmc1", "a100-80gb", batch_size=64).time_s)
    out.append(perfmodel.pipeline.run_pipeline("rmc1", "xeon-8280", batch_size=64).time_s)
    spec = tmp_path / "gpu.toml"
    spec.write_text((ROOT / "perfmodel" / "gpus" / "a100-40gb.toml").read_text().replace('id = "a100-40gb"', 'id = "mine"'))
    out.append(perfmodel.predict(zipf, k, str(spec)).time_s)
    out.append(perfmodel.occupancy(perfmodel.get_gpu("h200"), block_size=256, registers_per_thread=42).occupancy)
    return out


def test_clear_caches_forgets_every_module_level_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECPERF_CACHE_DIR", str(tmp_path / "cache"))
    perfmodel.clear_caches()
    sizes = {k: len(v) for k, v in _module_dicts().items()}
    first = _run_everything(tmp_path)
    lru = _lru_functions()
    filled = [n for n, f in lru.items() if f.cache_info().currsize > 0]  # type: ignore[attr-defined]
    assert len(filled) >= 15, filled  # the run above reaches the caches
    grown = [n for n, d in _module_dicts().items() if len(d) > sizes.get(n, 0)]
    assert grown, "the run fills some module-level dict caches"
    perfmodel.clear_caches()
    left = [n for n, f in lru.items() if f.cache_info().currsize > 0]  # type: ignore[attr-defined]
    assert left == [], f"caches clear_caches does not clear: {left}"
    still = [n for n, d in _module_dicts().items() if len(d) > sizes.get(n, 0)]
    assert still == [], f"module-level dicts that grew and were not cleared: {still}"
    assert _run_everything(tmp_path) == first  # same results from scratch


def test_clear_caches_with_disk_deletes_the_stored_grids(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECPERF_CACHE_DIR", str(tmp_path))
    perfmodel.clear_caches()
    w = Workload(batch_size=32, tables=(Table(rows=500_000, dim=128, pooling=10,
                                              indices=IndexDistribution(kind="trace", path=str(TRACE))),))
    perfmodel.predict(w, KernelConfig(), "a100-80gb")
    stored = sorted(p.name for p in (tmp_path / "residency").glob("*.npy"))
    assert any(n.startswith("l1-") for n in stored) and any(not n.startswith("l1-") for n in stored), stored
    perfmodel.clear_caches()
    assert len(list((tmp_path / "residency").glob("*.npy"))) == len(stored)  # memory only by default
    perfmodel.clear_caches(disk=True)
    assert list((tmp_path / "residency").glob("*.npy")) == []
