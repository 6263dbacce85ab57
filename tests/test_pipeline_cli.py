"""`recperf models`, `cpus`, `pipeline` and `pipeline-sweep`: JSON contract and errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "recperf", *args], capture_output=True, text=True, timeout=300, check=False)


def test_models_and_cpus_json() -> None:
    out = run("models", "--json")
    assert out.returncode == 0, out.stderr
    ids = [m["id"] for m in json.loads(out.stdout)["models"]]
    assert {"rmc1", "rmc2", "rmc3", "ncf", "wnd", "mt-wnd", "din", "dien"} <= set(ids)
    out = run("cpus", "--json")
    assert out.returncode == 0, out.stderr
    assert len(json.loads(out.stdout)["cpus"]) >= 2


@pytest.mark.parametrize("device", ["a100-80gb", "xeon-8280"])
def test_pipeline_json_fields(device: str) -> None:
    out = run("pipeline", "--model", "rmc1", "--device", device, "--batch-size", "32", "--streams", "2", "--json")
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    for key in ("time_s", "embedding_time_s", "stages", "embedding_share", "streams_used", "throughput_samples_per_s"):
        assert key in d
    assert d["embedding_time_s"] == pytest.approx(d["stages"]["embedding"])
    assert sum(d["stages"].values()) == pytest.approx(d["time_s"])


def test_pipeline_seed_config_reports_speedups() -> None:
    out = run("pipeline", "--model", "seed", "--device", "a100-80gb", "--batch-size", "2048", "--seed-config",
              "--inputs-on-device", "--json")
    assert out.returncode == 0, out.stderr
    c = json.loads(out.stdout)["compare"]
    assert c["embedding_speedup"] > c["end_to_end_speedup"] > 1


def test_pipeline_representation_choice() -> None:
    out = run("pipeline", "--model", "criteo-kaggle", "--device", "xeon-8280", "--batch-size", "64",
              "--memory-budget-gb", "0.5", "--json")
    assert out.returncode == 0, out.stderr
    ch = json.loads(out.stdout)["representation_choice"]
    assert ch["feasible"] and ch["embedding_bytes"] <= 0.5e9 and ch["counts"]["dhe"] > 0


def test_pipeline_sweep_crossover() -> None:
    out = run("pipeline-sweep", "--model", "rmc2", "--devices", "a100-80gb,xeon-8280", "--batch-sizes", "1,64,1024", "--json")
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert len(d["rows"]) == 6 and d["crossover"][0]["gpu_faster_from_batch"] in (64, 1024)


@pytest.mark.parametrize(
    ("args", "needle"),
    [(["--model", "rmc9", "--device", "a100-80gb", "--batch-size", "1"], "valid choices"),
     (["--model", "rmc1", "--device", "tpu", "--batch-size", "1"], "valid choices"),
     (["--model", "rmc1", "--device", "a100-80gb", "--batch-size", "0"], "batch_size"),
     (["--model", "rmc1", "--device", "a100-80gb", "--batch-size", "4", "--streams", "0"], "streams")],
)
def test_pipeline_errors(args: list[str], needle: str) -> None:
    out = run("pipeline", *args, "--json")
    assert out.returncode == 2 and out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0]
