"""``recperf validate published`` and calibration on the published files (CPU only)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import perfmodel
from validation import MicroData, MicroModel, calibrate, compare_published, published_datasets
from validation.published import parse_latency


def test_manifest_covers_the_a100_stream_and_chase_curves_with_provenance() -> None:
    ds = published_datasets()
    for gpu in ("a100-40gb", "a100-80gb"):
        assert any(d.gpu == gpu and d.kind == "stream-read" and "stream" in d.name for d in ds)
        assert any(d.gpu == gpu and d.kind == "pointer-chase" and "latency" in d.name for d in ds)
    assert {d.kind for d in ds} == {"stream-read", "pointer-chase", "l2-read"}  # kernel times are the ledger's
    assert published_datasets(["kernel-time"]) == []
    assert all(d.source and len(d.x) == len(d.measured) for d in ds)
    for d in ds:
        if d.gpu != "h100-pcie":
            perfmodel.get_gpu(d.gpu)


def _toy_model(true: dict[str, float] | None = None) -> MicroModel:
    """A stand-in micro model with known physics: plateaus by footprint, Little's-law stream."""
    def chase(g: perfmodel.GPUSpec, f: int) -> float:
        if f <= 128 * 1024:
            return g.l1_latency_cycles
        if f <= g.l2_size_bytes // 2:
            return g.l2_near_latency_cycles
        if f <= g.l2_size_bytes:
            return g.l2_far_latency_cycles
        return g.dram_latency_cycles

    def stream(g: perfmodel.GPUSpec, b: int, k: int) -> float:
        inflight = b * k * g.sm_count * 8.0
        return min(g.dram_bandwidth_bytes_per_s, inflight / g.latency_s(g.dram_latency_cycles))

    def l2(g: perfmodel.GPUSpec, f: int) -> float:
        return g.l2_bandwidth_bytes_per_s if f <= g.l2_size_bytes else g.dram_bandwidth_bytes_per_s

    return MicroModel(stream_read=stream, pointer_chase=chase, l2_read=l2)


def test_calibration_recovers_known_parameters_from_synthetic_curves(tmp_path: Path) -> None:
    import dataclasses

    base = perfmodel.get_gpu("a100-80gb")
    truth = dataclasses.replace(base, l1_latency_cycles=30.0, l2_near_latency_cycles=250.0, l2_far_latency_cycles=400.0,
                                dram_latency_cycles=700.0, dram_bandwidth_bytes_per_s=1.7e12,
                                l2_bandwidth_bytes_per_s=4.0e12)
    m = _toy_model()
    fps = [int(x) for x in np.geomspace(4096, 400 << 20, 60)]
    data = MicroData(pointer_chase=tuple((f, m.pointer_chase(truth, f)) for f in fps),
                     stream_read=tuple((b, 2, m.stream_read(truth, b, 2)) for b in range(32, 1025, 32)),
                     l2_read=tuple((f, m.l2_read(truth, f)) for f in fps))
    res = calibrate(base, data, model=m)
    for name in ("l1_latency_cycles", "l2_near_latency_cycles", "l2_far_latency_cycles", "dram_latency_cycles",
                 "dram_bandwidth_bytes_per_s", "l2_bandwidth_bytes_per_s"):
        assert res.params[name] == pytest.approx(getattr(truth, name), rel=0.02), (name, res.params)
    assert all(v["mape_after"] < 0.01 for v in res.residuals.values()), res.residuals
    out = res.write_spec(tmp_path / "cal.toml", source_files=["synthetic"])
    spec = perfmodel.load_gpu_spec(out)  # the format --gpu accepts
    assert spec.id == "a100-80gb-calibrated"
    assert spec.l2_near_latency_cycles == pytest.approx(res.params["l2_near_latency_cycles"])
    assert spec.source("dram_latency_cycles").startswith("calibrated: synthetic")
    assert spec.sm_count == base.sm_count and spec.source("sm_count") == base.source("sm_count")


def test_cli_published_reports_an_error_per_dataset() -> None:
    kinds = ["--kind", "stream-read", "--kind", "pointer-chase", "--kind", "l2-read"]  # the ledger: its own tests
    out = subprocess.run([sys.executable, "-m", "recperf", "validate", "published", *kinds, "--json"],
                         capture_output=True, text=True, check=True)
    doc = json.loads(out.stdout)
    names = {(d["name"], d["gpu"]) for d in doc["datasets"]}
    assert len(names) == len(published_datasets())
    for d in doc["datasets"]:
        assert {"name", "gpu", "metric", "error"} <= set(d) and d["error"] >= 0
    stream = [d for d in doc["datasets"] if "stream" in d["name"]]
    assert all(d["error"] < 0.5 for d in stream), stream  # a sane model is within 50% on average


def test_calibrating_a100_latencies_from_the_published_chase_does_not_raise_its_error() -> None:
    base = perfmodel.get_gpu("a100-80gb")
    bench = Path(perfmodel.__file__).parent / "data" / "gpu-benches"
    res = calibrate(base, MicroData(pointer_chase=tuple(parse_latency(bench / "latency_a100_80.txt"))))
    r = res.residuals["pointer-chase"]
    assert r["n"] == 97 and r["mape_after"] <= r["mape_before"] + 1e-12
    cmp = compare_published([d for d in published_datasets(["pointer-chase"]) if d.gpu == "a100-80gb"],
                            gpus={"a100-80gb": res.spec})
    assert cmp[0].error == pytest.approx(r["mape_after"])


def test_cli_calibrate_writes_a_spec_that_predict_accepts(tmp_path: Path) -> None:
    spec = tmp_path / "cal.toml"
    out = subprocess.run([sys.executable, "-m", "recperf", "validate", "calibrate", "--gpu", "a100-40gb", "--published",
                          "--out", str(spec), "--json"], capture_output=True, text=True, check=True)
    doc = json.loads(out.stdout)
    assert set(doc["residuals"]) == {"pointer-chase", "stream-read"}  # the 40 GB part has no l2-cache file
    assert perfmodel.get_gpu(str(spec)).id == "a100-40gb-calibrated"


@pytest.mark.parametrize("cmd", [["micro", "--out", "x.jsonl"], ["run-all", "--out", "x"],
                                 ["sweep", "--workload", "w.toml", "--grid", "{\"block_size\": [128]}", "--out", "x.jsonl"]])
def test_gpu_commands_without_a_gpu_exit_2_with_one_error_line(cmd: list[str], tmp_path: Path) -> None:
    from validation.backends import gpu_available

    if gpu_available():
        pytest.skip("a GPU is present: these commands would run")
    (tmp_path / "w.toml").write_text("batch_size = 8\n[[tables]]\nrows = 10\ndim = 4\npooling = 2\n")
    out = subprocess.run([sys.executable, "-m", "recperf", "validate", *cmd], cwd=tmp_path,
                         capture_output=True, text=True, check=False)
    assert out.returncode == 2 and out.stderr.startswith("error:") and "GPU" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
