"""Per-table plans: search.plan against brute force, the plan file, predict with a plan,
``recperf search --per-table`` and ``recperf predict --plan``."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import perfmodel
import search
from perfmodel import IndexDistribution, KernelConfig, Plan, Table, Workload

GPU = perfmodel.get_gpu("a100-80gb")
# 2 variants x 3 blocks x 4 caps x 3 prefetch x (1 + 2 x 2 pinned) x 2 checks = 720 configurations;
# PyTorch's kernel as shipped is one of them
SPACE = search.SearchSpace(block_sizes=(128, 256, 1024), register_caps=(0, 32, 40, 64), prefetch_distances=(0, 2, 8),
                           pinned_row_fractions=(0.0, 0.004, 0.008))
A = Table(rows=200_000, dim=64, pooling=20, indices=IndexDistribution(kind="zipf", alpha=1.05))
B = Table(rows=50_000, dim=16, pooling=1, count=2, indices=IndexDistribution(kind="uniform"))
C = Table(rows=2_000_000, dim=32, pooling=100, indices=IndexDistribution(kind="uniform"))
#: four entries, three groups: the last entry is the first table again (with another count)
WL = Workload(batch_size=4096, tables=(A, B, C, A.__class__(**{**A.__dict__, "count": 3})))

WORKLOAD_TOML = """
batch_size = 4096
[[tables]]
rows = 200000
dim = 64
pooling = 20
[tables.indices]
kind = "zipf"
alpha = 1.05
[[tables]]
rows = 50000
dim = 16
pooling = 1
count = 2
[tables.indices]
kind = "uniform"
"""
SPACE_TOML = """
block_sizes = [128, 256, 1024]
register_caps = [0, 32, 40, 64]
prefetch_distances = [0, 2, 8]
pinned_row_fractions = [0.0, 0.004, 0.008]
"""


def _configs() -> list[KernelConfig]:
    return [c for chunk in SPACE.grid_chunks() for c in chunk]


def _per_call(table: Table, configs: list[KernelConfig]) -> np.ndarray:
    t = perfmodel.predict_batch(Workload(batch_size=WL.batch_size, tables=(table.__class__(
        **{**table.__dict__, "count": 1}),)), configs, GPU)
    return np.where(np.isfinite(t), t, np.inf)


@pytest.fixture(scope="module")
def result() -> search.PlanResult:
    return search.plan(WL, GPU, space=SPACE)


def test_each_table_gets_its_fastest_configuration(result: search.PlanResult) -> None:
    configs = _configs()
    assert result.n_groups == 3 and len(result.plan) == 4
    assert result.plan[0] == result.plan[3], "identical tables share a configuration"
    for entry in result.tables:
        brute = _per_call(entry.table, configs)
        # the entry's time with its configuration is the least over the grid (count calls of it)
        assert entry.time_s == pytest.approx(entry.table.count * float(brute.min()), rel=1e-9)
    # the tables really differ: no single configuration is the best for all of them
    assert len(set(result.plan)) > 1


def test_plan_time_is_what_predict_gives_the_plan_and_beats_one_configuration(result: search.PlanResult) -> None:
    assert perfmodel.predict(WL, result.plan, GPU).time_s == result.plan_time_s
    assert result.plan_time_s == pytest.approx(sum(e.time_s for e in result.tables), rel=1e-12)
    assert result.plan_time_s <= result.single_config_time_s <= result.baseline_time_s
    # the single configuration is the best for all tables together (brute force over the grid)
    configs = _configs()
    calls = {0: 4, 1: 2, 2: 1}  # table calls per group: A x (1 + 3), B x 2, C x 1
    total = sum(n * _per_call(WL.tables[g], configs) for g, n in calls.items())
    assert result.single_config_time_s == pytest.approx(float(total.min()), rel=1e-9)
    assert result.baseline_time_s == pytest.approx(perfmodel.predict(WL, KernelConfig(), GPU).time_s, rel=1e-12)


def test_plan_file_round_trip_and_its_format(tmp_path: Path, result: search.PlanResult) -> None:
    path = result.write(tmp_path / "p.toml")
    text = path.read_text()
    assert text.count("\n[[tables]]\n") == 4 and "kernel = { variant = " in text and "# table 0:" in text
    assert perfmodel.load_plan(path) == result.plan
    short = tmp_path / "short.toml"
    short.write_text('[[tables]]\nkernel = { variant = "warp", block_size = 512 }\n')
    plan = perfmodel.load_plan(short)
    assert plan == Plan((KernelConfig(variant="warp", block_size=512),))
    with pytest.raises(ValueError, match="one \\[\\[tables\\]\\] entry per"):
        perfmodel.predict(WL, plan, GPU)


@pytest.mark.parametrize(("text", "message"), [
    ('[[tables]]\nkernel = { variant = "nope" }\n', "variant"),
    ('[[tables]]\nkernel = { block_size = 512 }\nrows = 3\n', "unknown keys"),
    ("title = 'x'\n", "unknown top-level keys"),
    ("", "at least one"),
])
def test_bad_plan_files_are_refused_with_the_rule(tmp_path: Path, text: str, message: str) -> None:
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(ValueError, match=message):
        perfmodel.load_plan(p)


def test_uniform_plan_predicts_as_its_configuration() -> None:
    k = KernelConfig(variant="warp", block_size=512, prefetch_distance=2, pinned_row_fraction=0.004)
    one = perfmodel.predict(WL, k, GPU)
    plan = perfmodel.predict(WL, Plan.uniform(k, len(WL.tables)), GPU)
    assert plan.time_s == one.time_s and plan.pin_time_s == one.pin_time_s
    assert plan.dram_bytes == pytest.approx(one.dram_bytes) and plan.l2_hit_rate == pytest.approx(one.l2_hit_rate)
    assert [t["kernel"] for t in plan.breakdown["tables"]] == [k.to_dict()] * 4


def test_two_objectives_front_of_plans_against_brute_force() -> None:
    res = search.plan(WL, GPU, space=SPACE, objectives="time,l2-bytes")
    assert res.pareto and res.pareto[0].plan == res.plan
    times = [p.time_s for p in res.pareto]
    l2 = [p.l2_bytes for p in res.pareto]
    assert times == sorted(times) and l2 == sorted(l2, reverse=True) and len(set(l2)) == len(l2)
    configs = _configs()
    groups = {0: (A, 4), 1: (B, 2), 2: (C, 1)}
    for point in res.pareto:
        # the point's plan sets aside what it says (the largest table's pinned bytes)
        got = max(math.floor(k.pinned_row_fraction * t.rows + 1e-9) * t.row_bytes for t, k in zip(WL.tables, point.plan,
                                                                                                    strict=True))
        assert got == point.l2_bytes
        # and no plan within that L2 budget is faster: each group's fastest within the budget
        best = 0.0
        for table, calls in groups.values():
            within = [c.pinned_row_fraction * 0 + math.floor(c.pinned_row_fraction * table.rows + 1e-9)
                      * table.row_bytes <= point.l2_bytes for c in configs]
            best += calls * float(_per_call(table, configs)[np.array(within)].min())
        assert point.time_s == pytest.approx(best, rel=1e-9)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "recperf", *args], capture_output=True, text=True, timeout=600,
                          check=False)


def test_cli_per_table_and_predict_plan_reproduce_each_other(tmp_path: Path) -> None:
    w = tmp_path / "w.toml"
    w.write_text(WORKLOAD_TOML)
    s = tmp_path / "s.toml"
    s.write_text(SPACE_TOML)
    out = _cli("search", "--gpu", "a100-80gb", "--workload", str(w), "--space", str(s), "--per-table", "--json",
               "--no-progress", "--out", str(tmp_path / "out"))
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    for key in ("plan_time_s", "single_config_time_s", "baseline_time_s", "plan_path", "plan"):
        assert key in r
    assert len(r["plan"]) == 2 and r["plan_time_s"] <= r["single_config_time_s"] * (1 + 1e-12)
    assert Path(r["plan_path"]).is_file() and Path(r["report"]).is_file()
    again = _cli("predict", "--gpu", "a100-80gb", "--workload", str(w), "--plan", r["plan_path"], "--json")
    assert again.returncode == 0, again.stderr
    p = json.loads(again.stdout)
    assert p["time_s"] == pytest.approx(r["plan_time_s"], rel=1e-12)
    assert [t["kernel"] for t in p["breakdown"]["tables"]] == r["plan"]
    text = _cli("predict", "--gpu", "a100-80gb", "--workload", str(w), "--plan", r["plan_path"])
    assert text.returncode == 0 and "table 1 kernel:" in text.stdout


def test_cli_predict_with_a_plan_of_the_wrong_length_exits_2(tmp_path: Path) -> None:
    w = tmp_path / "w.toml"
    w.write_text(WORKLOAD_TOML)
    p = tmp_path / "p.toml"
    Plan((KernelConfig(),)).write(p)
    out = _cli("predict", "--gpu", "a100-80gb", "--workload", str(w), "--plan", str(p), "--json")
    assert out.returncode == 2 and out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "one [[tables]] entry per" in lines[0]
