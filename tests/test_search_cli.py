"""`recperf search` and `search.optimize`/`search.exhaustive` end to end on a small workload."""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

import perfmodel
import search
from perfmodel import KernelConfig

WORKLOAD_TOML = """
batch_size = 512
[[tables]]
rows = 200000
dim = 64
pooling = 20
count = 2
[tables.indices]
kind = "zipf"
alpha = 1.05
"""

# A small space: 2 x 4 x 3 x 3 x (3 fractions: 1 + 2 x 2) x 2 = 720 configurations.
SPACE_TOML = """
block_sizes = [128, 256, 512, 1024]
register_caps = [0, 40, 64]
prefetch_distances = [0, 2, 8]
pinned_row_fractions = [0.0, 0.05, 0.1]
"""


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    w = tmp_path / "w.toml"
    w.write_text(WORKLOAD_TOML)
    s = tmp_path / "space.toml"
    s.write_text(SPACE_TOML)
    return w, s


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "recperf", "search", *args], capture_output=True, text=True,
                          timeout=600, check=False)


def test_cli_json_fields_progress_on_stderr_and_report(tmp_path: Path, files: tuple[Path, Path]) -> None:
    w, s = files
    out = _run("--gpu", "a100-80gb", "--workload", str(w), "--space", str(s), "--sampler", "tpe", "--trials", "16",
               "--seed", "3", "--storage", f"sqlite:///{tmp_path / 'st.db'}", "--study-name", "cli", "--out",
               str(tmp_path / "out"), "--json")
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("\n") == 1
    r = json.loads(out.stdout)
    for key in ("best_config", "best_time_s", "baseline_time_s", "speedup", "n_trials_completed"):
        assert key in r
    assert r["n_trials_completed"] == 16
    assert r["method"] == "tpe" and "16 trials" in r["method_reason"]
    assert r["speedup"] == pytest.approx(r["baseline_time_s"] / r["best_time_s"])
    assert KernelConfig(**r["best_config"])  # a valid configuration
    assert "trials" in out.stderr and "100%" in out.stderr  # the progress bar, on stderr only
    report = Path(r["report"])
    assert report.is_file() and (report.parent / "history.png").is_file()
    text = report.read_text()
    assert "speedup" in text and "| # |" in text
    # the baseline was enqueued first, so the search never reports worse than it
    assert r["best_time_s"] <= r["baseline_time_s"]


def test_cli_exhaustive_is_a_lower_bound_of_the_search(tmp_path: Path, files: tuple[Path, Path]) -> None:
    w, s = files
    out = _run("--gpu", "a100-80gb", "--workload", str(w), "--space", str(s), "--exhaustive", "--json",
               "--no-progress", "--out", str(tmp_path / "out"))
    assert out.returncode == 0, out.stderr
    ex = json.loads(out.stdout)
    space = search.load_space(s)
    assert ex["n_evaluated"] == space.grid_size == 720
    # oracle: the grid's best is predict_batch's minimum over every configuration of the space
    configs = [c for chunk in space.grid_chunks() for c in chunk]
    times = perfmodel.predict_batch(perfmodel.load_workload(w), configs, perfmodel.get_gpu("a100-80gb"))
    assert ex["best_time_s"] == pytest.approx(float(min(t for t in times if math.isfinite(t))))
    r = search.optimize(w, "a100-80gb", n_trials=24, seed=0, storage=":memory:", space=space, sampler="tpe")
    assert r.best_time_s >= ex["best_time_s"] * (1 - 1e-12)
    assert all(t.time_s >= ex["best_time_s"] * (1 - 1e-12) for t in r.top)


@pytest.mark.parametrize("sampler", ["auto", "tpe"])
def test_two_objectives_pareto_front(files: tuple[Path, Path], sampler: str) -> None:
    w, s = files
    r = search.optimize(w, "a100-80gb", n_trials=30, seed=1, storage=":memory:", space=search.load_space(s),
                        objectives="time,l2-bytes", sampler=sampler)
    assert r.pareto, "a Pareto front"
    times = [p.time_s for p in r.pareto]
    l2 = [p.l2_bytes for p in r.pareto]
    assert times == sorted(times) and all(b < a for a, b in itertools.pairwise(l2))
    assert r.best_config == r.pareto[0].config and r.best_time_s == min(t.time_s for t in r.top)
    # no completed feasible point dominates a front point
    for q in r.top:
        assert not any(q.time_s < p.time_s and q.l2_bytes < p.l2_bytes for p in r.pareto)
    assert "pareto" in r.to_dict()
    if sampler == "auto":  # the grid's front, exactly
        ex = search.exhaustive(w, "a100-80gb", space=search.load_space(s))
        assert [(p.time_s, p.l2_bytes) for p in r.pareto] == [(p.time_s, p.l2_bytes) for p in ex.pareto]


def test_same_seed_same_search(files: tuple[Path, Path]) -> None:
    w, s = files
    space = search.load_space(s)
    a = search.optimize(w, "a100-80gb", n_trials=20, seed=7, storage=":memory:", space=space, sampler="tpe")
    b = search.optimize(w, "a100-80gb", n_trials=20, seed=7, storage=":memory:", space=space, sampler="tpe")
    assert [t.params for t in a.study.trials] == [t.params for t in b.study.trials]


def test_gpu_fidelity_replays_measurements(tmp_path: Path, files: tuple[Path, Path]) -> None:
    w, s = files
    space = search.load_space(s)
    first = search.optimize(w, "a100-80gb", n_trials=20, seed=2, storage=str(tmp_path / "g.db"), study_name="g",
                            space=space, sampler="tpe")
    # synthetic measurements (said so in the records): the model's third-ranked config measures fastest
    recs = [{"gpu": "a100-80gb", "workload": str(w), "kernel": KernelConfig().to_dict(), "time_s": 1e-3,
             "synthetic": True}]
    for i, ranked in enumerate(first.top[:5]):
        recs.append({"gpu": "a100-80gb", "workload": str(w), "kernel": ranked.config.to_dict(),
                     "time_s": 2e-4 if i == 2 else 5e-4, "synthetic": True})
    m = tmp_path / "m.jsonl"
    m.write_text("\n".join(json.dumps(x) for x in recs) + "\n")
    r = search.optimize(w, "a100-80gb", n_trials=0, storage=str(tmp_path / "g.db"), study_name="g", space=space,
                        fidelity="gpu", measurements=m, budget_evals=30, sampler="tpe")
    assert r.best_config == first.top[2].config
    assert r.best_time_s == 2e-4 and r.baseline_time_s == 1e-3 and r.speedup == pytest.approx(5.0)
    assert r.n_trials_completed == 20
    # only what was measured is evaluated (the 5 and the baseline, not the budget of 30), in the model's order
    fs = r.fidelity_study
    assert fs is not None and fs.fidelity == "gpu" and len(fs.points) == 6
    recorded = [t.config for t in first.top[:5]] + [KernelConfig()]
    model = dict(zip(recorded, perfmodel.predict_batch(perfmodel.load_workload(w), recorded, "a100-80gb"), strict=True))
    assert [p.config for p in fs.points] == sorted(recorded, key=lambda c: model[c])
    assert [p.model_rank for p in fs.points] == [1, 2, 3, 4, 5, 6]
    assert next(p for p in fs.points if p.config == first.top[2].config).fidelity_rank == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--gpu", "no-such-gpu"], "valid"),
        (["--gpu", "a100-80gb", "--objectives", "time,energy"], "valid choices"),
        (["--gpu", "a100-80gb", "--workers", "2", "--storage", ":memory:"], "share"),
        (["--gpu", "a100-80gb", "--sampler", "tpe", "--trials", "-1", "--storage", ":memory:"], "n_trials"),
        (["--gpu", "a100-80gb", "--budget-s", "0", "--storage", ":memory:"], "budget_s"),
        (["--gpu", "a100-80gb", "--fidelity", "sim", "--budget-evals", "0", "--storage", ":memory:"], "budget_evals"),
        (["--gpu", "a100-80gb", "--sampler", "nope"], "invalid choice"),
        (["--gpu", "a100-80gb", "--per-table", "--fidelity", "sim"], "--per-table"),
    ],
)
def test_cli_bad_input_exits_2_with_one_error_line(files: tuple[Path, Path], args: list[str], message: str) -> None:
    w, _ = files
    out = _run("--workload", str(w), "--json", "--no-progress", "--no-report", *args)
    assert out.returncode == 2
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], out.stderr


def test_space_file_beyond_the_gpu_is_refused(tmp_path: Path, files: tuple[Path, Path]) -> None:
    w, _ = files
    s = tmp_path / "big.toml"
    s.write_text("pinned_row_fractions = [0.0, 0.9]\n")
    with pytest.raises(ValueError, match="persisting"):
        search.optimize(w, "a100-80gb", n_trials=1, storage=":memory:", space=search.load_space(s))


def test_sim_fidelity_spends_its_budget_on_what_the_model_ranks(files: tuple[Path, Path]) -> None:
    w, s = files
    wl = perfmodel.load_workload(w)
    gpu = perfmodel.get_gpu("a100-80gb")
    space = search.load_space(s)
    r = search.optimize(wl, gpu, storage=":memory:", space=space, fidelity="sim", budget_evals=4, top_k=3)
    assert r.fidelity == "sim" and r.method == "exhaustive" and 1 <= len(r.top) <= 3
    fs = r.fidelity_study
    assert fs is not None and len(fs.points) == 4
    # the first evaluation is the model's optimum (the grid's), the others near the best so far
    ex = search.exhaustive(wl, gpu, space=space)
    assert fs.points[0].config == ex.best_config and fs.points[0].origin == "model top"
    sim = {p.config: perfmodel.simulate(wl, p.config, gpu).time_s for p in fs.points}
    assert [p.time_s for p in fs.points] == pytest.approx([sim[p.config] for p in fs.points])
    assert r.best_time_s == pytest.approx(min(sim.values())) and sim[r.best_config] == pytest.approx(r.best_time_s)
    assert r.baseline_time_s == pytest.approx(perfmodel.simulate(wl, KernelConfig(), gpu).time_s)
    # the model's times stay on record beside the simulator's, with both ranks
    assert all(p.model_time_s == pytest.approx(float(perfmodel.predict_batch(wl, [p.config], gpu)[0]))
               for p in fs.points)
    assert sorted(p.model_rank for p in fs.points) == sorted(p.fidelity_rank for p in fs.points) == [1, 2, 3, 4]
    assert "spearman" in r.to_dict()["fidelity_study"]


def _gpu_present() -> bool:
    try:
        import cupy

        cupy.cuda.Device(0).attributes  # noqa: B018 - the probe
        return True
    except Exception:
        return False


def test_gpu_fidelity_without_a_gpu_is_a_clean_error(files: tuple[Path, Path]) -> None:
    if _gpu_present():
        pytest.skip("a GPU is present: the live gpu fidelity would run")
    w, s = files
    out = _run("--gpu", "a100-80gb", "--workload", str(w), "--space", str(s), "--trials", "4", "--storage", ":memory:",
               "--fidelity", "gpu", "--json", "--no-progress", "--no-report")
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.startswith("error: fidelity `gpu` needs") and len(out.stderr.strip().splitlines()) == 1
