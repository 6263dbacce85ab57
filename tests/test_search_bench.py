"""scripts/bench_search.py: how evaluations to the target are counted, and its arguments."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "bench_search.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_search", SCRIPT)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_evaluations_to_the_target_count_from_one_and_never_is_budget_plus_one() -> None:
    b = _load()
    assert b.evals_to_target([5.0, 3.0, 1.0], target=3.0, budget=3) == 2
    assert b.evals_to_target([1.0], target=3.0, budget=60) == 1
    assert b.evals_to_target([5.0, float("inf"), 4.0], target=3.0, budget=3) == 4
    assert b.evals_to_target([], target=3.0, budget=60) == 61


def test_json_last_line_and_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    b = _load()
    b._emit_json({"space_size": 3}, "-")
    b._emit_json({"space_size": 4}, str(tmp_path / "o.json"))
    out = capsys.readouterr().out.strip().splitlines()
    assert [json.loads(x)["space_size"] for x in out] == [3, 4]
    assert json.loads((tmp_path / "o.json").read_text())["space_size"] == 4


def test_the_sim_truth_space_is_small_enough_to_simulate_whole() -> None:
    import search

    b = _load()
    space = search.space_from_mapping(b.SIM_SPACE)
    assert space.grid_size == 720
    assert set(b.SIM_WORKLOADS) == {"a", "b"}


def test_bad_arguments_exit_with_the_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    b = _load()
    monkeypatch.setattr(sys, "argv", ["bench_search.py"])
    with pytest.raises(SystemExit, match="seeds"):
        b.main(["--sim-truth", "--seeds", "0"])
