"""MP-Rec's choices: the exact representation choice (against brute force) and the per-size routing."""

from __future__ import annotations

import itertools
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from perfmodel import pipeline as pp

SMALL = """id = "small3"
arch = "dlrm"
dense_features = 16
bottom_mlp = [32, 16]
interaction = "cat"
top_mlp = [64, 1]
[[tables]]
name = "a"
rows = 2000000
dim = 16
pooling = 20
[[tables]]
name = "b"
rows = 300000
dim = 16
pooling = 5
[[tables]]
name = "c"
rows = 50000
dim = 16
pooling = 40
"""


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("m") / "small3.toml"
    path.write_text(SMALL)
    return path


@pytest.mark.parametrize("seed", range(8))
def test_solver_matches_brute_force_on_random_instances(seed: int) -> None:
    rng = random.Random(seed)
    n, k = rng.randint(2, 5), rng.randint(2, 5)
    times = [[rng.uniform(1e-6, 1e-3) for _ in range(k)] for _ in range(n)]
    nbytes = [[rng.uniform(1e3, 1e9) for _ in range(k)] for _ in range(n)]
    quality = [[rng.choice([0.0, 0.0, 1.0, 0.5]) for _ in range(k)] for _ in range(n)] if seed % 2 else None
    lo = sum(min(b) for b in nbytes)
    hi = sum(max(b) for b in nbytes)
    for frac in (0.0, 0.3, 0.7, 1.0):
        mem = lo + frac * (hi - lo)
        tb = None if seed % 3 == 0 else sum(min(t) for t in times) * rng.uniform(1.0, 2.0)
        got = pp.solve_choice(times, nbytes, memory_budget=mem, time_budget=tb, quality=quality)
        want = pp.brute_force_choice(times, nbytes, memory_budget=mem, time_budget=tb, quality=quality)
        assert (got is None) == (want is None), (seed, frac)
        if got is None or want is None:
            continue
        def score(pick: list[int]) -> tuple[float, float]:
            q = sum(quality[i][j] for i, j in enumerate(pick)) if quality else 0.0
            return q, sum(times[i][j] for i, j in enumerate(pick))
        (qg, tg), (qw, tw) = score(got), score(want)
        assert qg == pytest.approx(qw, abs=1e-9) and tg == pytest.approx(tw, rel=1e-9), (seed, frac, got, want)
        assert sum(nbytes[i][j] for i, j in enumerate(got)) <= mem * (1 + 1e-9)


def test_choice_on_a_cpu_is_the_fastest_assignment_under_the_budget(small: Path) -> None:
    # On a CPU the operators run one after another, so the latency of a choice is exactly the per-table sum the
    # program optimizes: the chosen pipeline must be the fastest of all 5^3 assignments within the budget.
    model = pp.get_model(small)
    keys = [k for k, _ in pp.table_instances(model)]
    budget = 0.5 * model.table_bytes
    got = pp.choose_representations(model, "xeon-8280", 64, memory_budget_bytes=budget)
    best = None
    for combo in itertools.product(pp.REPRESENTATIONS, repeat=len(keys)):
        reps = dict(zip(keys, combo, strict=True))
        r = pp.run_pipeline(model, "xeon-8280", 64, representations=reps)
        if r.memory["table_bytes"] <= budget and (best is None or r.time_s < best[0] - 1e-15):
            best = (r.time_s, reps)
    assert best is not None and got["feasible"]
    assert got["time_s"] == pytest.approx(best[0], rel=1e-9), (got["representations"], best[1])
    assert got["time_s"] == got["surrogate_time_s"] or got["time_s"] == pytest.approx(got["surrogate_time_s"], rel=1e-9)


def test_choice_keeps_the_latency_target_or_says_why_not(small: Path) -> None:
    model = pp.get_model(small)
    free = pp.choose_representations(model, "xeon-8280", 64, memory_budget_bytes=1e12, prefer_hybrid=True)
    assert free["counts"]["hybrid"] == 3  # with room and no target, every table goes hybrid
    table_time = pp.run_pipeline(model, "xeon-8280", 64).time_s
    target = 1.05 * table_time  # hybrid everywhere would miss it
    r = pp.choose_representations(model, "xeon-8280", 64, memory_budget_bytes=1e12, prefer_hybrid=True,
                                  latency_target_s=target)
    assert r["feasible"] and r["time_s"] <= target
    assert 0 < r["counts"]["hybrid"] < 3 or r["counts"]["hybrid"] == 0
    impossible = pp.choose_representations(model, "xeon-8280", 64, memory_budget_bytes=1e12, latency_target_s=1e-7)
    assert not impossible["feasible"] and "latency" in impossible["reason"]


def test_choice_runs_at_the_runs_dtype_and_reports_the_run(small: Path) -> None:
    # before: the choice ignored --dtype (fp32 costs) and the top level reported another run than the choice
    out = subprocess.run([sys.executable, "-m", "recperf", "pipeline", "--model", str(small), "--device", "a100-80gb",
                          "--batch-size", "256", "--dtype", "fp16", "--memory-budget-gb", "0.05", "--latency-target-ms",
                          "2", "--json"], capture_output=True, text=True, timeout=600, check=False)
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    rc = d["representation_choice"]
    assert rc["dtype"] == "fp16" and d["dtype"] == "fp16"
    assert rc["time_s"] == d["time_s"]
    assert d["representations"] == rc["representations"]
    assert d["memory"]["table_bytes"] == rc["embedding_bytes"] <= 0.05e9


def test_routing_sends_small_queries_to_the_cpu_and_large_ones_to_the_gpu() -> None:
    r = pp.route_queries("rmc2", ["a100-80gb", "xeon-8280"], [1, 16, 1024], [0.5, 0.3, 0.2])
    devices = [row["device"] for row in r["rows"]]
    assert devices[0] == "xeon-8280" and devices[-1] == "a100-80gb"
    assert sum(r["share"].values()) == pytest.approx(1.0)
    assert r["switch_sizes"]
    assert r["mean_time_s"] == pytest.approx(sum(row["weight"] * row["time_s"] for row in r["rows"]))
