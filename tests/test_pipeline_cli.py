"""`recperf models`, `cpus`, `pipeline` and `pipeline-sweep`: JSON contract and errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from recperf.cli import main


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "recperf", *args], capture_output=True, text=True, timeout=300, check=False)


def run_json(*args: str) -> dict[str, Any]:
    """The one JSON object of a successful ``--json`` run."""
    out = run(*args, "--json")
    assert out.returncode == 0, out.stderr
    d: dict[str, Any] = json.loads(out.stdout)
    return d


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
    d = run_json("pipeline", "--model", "criteo-kaggle", "--device", "xeon-8280", "--batch-size", "64",
                 "--memory-budget-gb", "0.5")
    ch = d["representation_choice"]
    assert ch["feasible"] and ch["embedding_bytes"] <= 0.5e9 and ch["counts"]["table"] < 26
    assert ch["time_s"] == d["time_s"] and d["memory"]["table_bytes"] == ch["embedding_bytes"]


@pytest.mark.parametrize(("rep", "ratio"), [("hybrid", (1.0, 1.1)), ("dhe", (0.0, 0.05)), ("int8", (0.37, 0.38)),
                                            ("fp16", (0.5, 0.5))])
def test_pipeline_representation_memory(rep: str, ratio: tuple[float, float]) -> None:
    base = json.loads(run("pipeline", "--model", "criteo-kaggle", "--device", "xeon-8280", "--batch-size", "8",
                          "--json").stdout)["memory"]["table_bytes"]
    got = run_json("pipeline", "--model", "criteo-kaggle", "--device", "xeon-8280", "--batch-size", "8",
                   "--representation", rep)["memory"]["table_bytes"] / base
    assert ratio[0] <= got <= ratio[1] and (rep != "hybrid" or got > 1)


def test_pipeline_throughput_is_the_pipelined_steady_state() -> None:
    # before: throughput was batch / latency; the copies now overlap the previous batch's compute
    d = run_json("pipeline", "--model", "rmc1", "--device", "a100-80gb", "--batch-size", "1024")
    assert d["throughput_samples_per_s"] > 1.1 * d["batch_over_latency_samples_per_s"]
    assert d["throughput_samples_per_s"] == pytest.approx(1024 / d["period_s"])


def test_pipeline_cpu_reports_both_modes() -> None:
    d = run_json("pipeline", "--model", "rmc1", "--device", "xeon-8280", "--batch-size", "16")
    modes = d["cpu_modes"]
    assert set(modes) == {"socket", "core-per-query"}
    assert modes["core-per-query"]["throughput_samples_per_s"] > modes["socket"]["throughput_samples_per_s"]
    assert modes["core-per-query"]["time_s"] > modes["socket"]["time_s"]


def test_plots_are_written(tmp_path: Path) -> None:
    for args in (["pipeline", "--model", "rmc1", "--device", "a100-80gb", "--batch-size", "64", "--streams", "2"],
                 ["pipeline-sweep", "--model", "rmc1", "--devices", "a100-80gb,xeon-8280", "--batch-sizes", "1,64"]):
        png = tmp_path / f"{args[0]}.png"
        out = run(*args, "--plot", str(png), "--json")
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["plot"] == str(png)
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_help_texts_name_no_issue_numbers() -> None:
    for sub in ("gpus", "occupancy", "resources", "predict", "simulate", "cache-sim", "micro", "search", "validate",
                "models", "cpus", "pipeline", "pipeline-sweep"):
        out = run(sub, "--help")
        assert not re.search(r"\bissue \d", out.stdout, re.I), sub


def test_latency_bounded_throughput_in_the_sweep() -> None:
    d = run_json("pipeline-sweep", "--model", "rmc1", "--devices", "xeon-8280", "--batch-sizes", "16,64",
                 "--latency-target-ms", "25")
    lb = d["latency_bounded"]
    assert lb["best"]["meets_target"] and lb["best"]["tail_latency_s"] <= 0.025
    assert {c["mode"] for c in lb["configs"]} == {"socket", "core-per-query"}
    assert sum(d["routing"]["share"].values()) == pytest.approx(1.0)


def test_tbe_is_one_launch_and_beats_per_table_launches_at_batch_1() -> None:
    pt = json.loads(run("pipeline", "--model", "rmc1", "--device", "a100-80gb", "--batch-size", "1", "--embedding-kernel",
                        "pytorch", "--ops", "--json").stdout)
    tb = run_json("pipeline", "--model", "rmc1", "--device", "a100-80gb", "--batch-size", "1", "--embedding-kernel", "tbe",
                  "--ops")
    assert [o["name"] for o in tb["ops"] if o["stage"] == "embedding"] == ["emb.tbe"]
    assert tb["embedding_time_s"] < 0.5 * pt["embedding_time_s"]


def test_tbe_serves_quantized_rows_in_its_one_launch() -> None:
    """FBGEMM's inference TBE serves fp16 and int8 rows: still one launch, on smaller tables."""
    base = ["pipeline", "--model", "rmc1", "--device", "a100-80gb", "--batch-size", "256", "--embedding-kernel", "tbe",
            "--ops"]
    runs = {rep: run_json(*base, "--representation", rep) for rep in ("table", "fp16", "int8")}
    for d in runs.values():
        assert [o["name"] for o in d["ops"] if o["stage"] == "embedding"] == ["emb.tbe"] and d["embedding_time_s"] > 0
    mem = {rep: d["memory"]["table_bytes"] for rep, d in runs.items()}
    assert mem["int8"] < mem["fp16"] < mem["table"]


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
     (["--model", "rmc1", "--device", "a100-80gb", "--batch-size", "4", "--streams", "0"], "streams"),
     # a stream count past the driver's 32 work queues: refused before any loop over the counts
     # (1e9 used to run the stream curve a billion times: fuzz seed 1018855)
     (["--model", "rmc2", "--device", "h100-sxm", "--batch-size", "64", "--streams", "1e9"], "streams <= 32"),
     (["--model", "rmc1", "--device", "a100-80gb", "--batch-size", "4", "--representation", "int4"], "valid choices"),
     (["--model", "rmc1", "--device", "a100-80gb", "--batch-size", "4", "--embedding-kernel", "fast"], "valid choices"),
     (["--model", "rmc1", "--device", "xeon-8280", "--batch-size", "4", "--cpu-mode", "numa"], "valid choices")],
)
def test_pipeline_errors(args: list[str], needle: str) -> None:
    out = run("pipeline", *args, "--json")
    assert out.returncode == 2 and out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0]


def test_pipeline_sweep_refuses_more_streams_than_the_driver_has_queues() -> None:
    out = run("pipeline-sweep", "--model", "rmc1", "--devices", "a100-80gb", "--streams", "33", "--json")
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.strip().splitlines() == ["error: `1 <= streams <= 32` must hold, but got streams=33"]


def test_the_stream_curve_stops_computing_once_a_stream_is_left_unused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A run that leaves a stream unused schedules every larger count the same way (the list
    scheduler offers a new stream at each step either way): the curve repeats it instead of
    rerunning, and its figures equal a direct run at the larger count."""
    from perfmodel import pipeline as pp

    calls: list[int] = []
    real = pp.run_pipeline

    def counting(*a: object, **kw: object) -> object:
        calls.append(int(kw.get("streams", 1)))  # type: ignore[call-overload]
        return real(*a, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(pp, "run_pipeline", counting)
    import io
    from contextlib import redirect_stdout

    buf = io.StringIO()
    with redirect_stdout(buf):
        assert main(["pipeline", "--model", "rmc1", "--device", "a100-80gb", "--batch-size", "4", "--streams", "32",
                     "--json"]) == 0
    d = json.loads(buf.getvalue())
    curve = d["by_streams"]
    assert [c["streams"] for c in curve] == list(range(1, 33))
    first_unused = next(c["streams"] for c in curve if c["streams_used"] < c["streams"])
    # the run at 32 streams, then the curve from 1 up to the first count that left a stream unused
    assert sorted(calls) == [*range(1, first_unused + 1), 32] and first_unused < 32
    direct = real("rmc1", "a100-80gb", 4, streams=32)
    assert curve[-1]["time_s"] == pytest.approx(direct.time_s, rel=1e-12)
