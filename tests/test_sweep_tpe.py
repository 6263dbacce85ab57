"""scripts/sweep_tpe.py: the setting parser, and that a sweep leaves the shipped sampler in place."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def _load() -> ModuleType:
    sys.path.insert(0, str(SCRIPTS))
    try:
        spec = importlib.util.spec_from_file_location("sweep_tpe", SCRIPTS / "sweep_tpe.py")
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod
    finally:
        sys.path.remove(str(SCRIPTS))


def test_settings_parse_to_python_values() -> None:
    sweep = _load()
    assert sweep.parse_setting("") == {}
    assert sweep.parse_setting("ask_batch=2, n_ei_candidates=128,multivariate=False") == {
        "ask_batch": 2, "n_ei_candidates": 128, "multivariate": False}


@pytest.mark.parametrize("bad", ["ask_batch", "multivariate=maybe"])
def test_bad_settings_are_refused_with_the_item(bad: str) -> None:
    sweep = _load()
    with pytest.raises(SystemExit, match=bad.split("=")[-1]):
        sweep.parse_setting(bad)


def test_default_settings_all_parse() -> None:
    sweep = _load()
    for text in sweep.DEFAULT_SETTINGS:
        opts = sweep.parse_setting(text)
        assert set(opts) <= {"ask_batch", "n_startup_trials", "n_ei_candidates", "multivariate", "constant_liar"}


def test_a_setting_reaches_the_sampler_without_patching_search() -> None:
    import perfmodel
    import search

    sweep = _load()
    gpu = perfmodel.get_gpu("a100-80gb")
    wl = perfmodel.Workload(batch_size=256, tables=(perfmodel.Table(rows=20_000, dim=32, pooling=4),))
    space = search.SearchSpace(block_sizes=(128, 512), register_caps=(0, 40), prefetch_distances=(0, 2))
    optimum = search.exhaustive(wl, gpu, space=space).best_time_s
    row = sweep.run_setting("ask_batch=2,n_startup_trials=3", {"w": wl}, {"w": optimum}, gpu, seeds=2, trials=6,
                            space=space)
    assert row["ask_batch"] == 2 and row["tpe"] == {"n_startup_trials": 3}
    assert len(row["w"]["gaps"]) == 2 and min(row["w"]["gaps"]) >= -1e-12
    with pytest.raises(TypeError, match="bogus"):  # the options go to optuna's TPESampler itself
        sweep.run_setting("bogus=1", {"w": wl}, {"w": optimum}, gpu, seeds=1, trials=2, space=space)
