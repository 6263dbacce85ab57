"""Microbenchmark predictions against the published A100 measurements (data/gpu-benches)."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

import perfmodel
from validation.published import parse_l2, parse_latency, parse_stream

DATA = Path(str(resources.files("perfmodel").joinpath("data/gpu-benches")))


@pytest.mark.parametrize(("gid", "name"), [("a100-40gb", "a100_40"), ("a100-80gb", "a100_80")])
def test_stream_read_vs_occupancy_within_10_percent(gid: str, name: str) -> None:
    gpu = perfmodel.get_gpu(gid)
    rows = parse_stream(DATA / f"stream_{name}.txt")
    assert len(rows) == 32
    err = [abs(perfmodel.micro_stream_read(gpu, block_size=b, blocks_per_sm=2) / bw - 1) for b, bw in rows]
    print(f"{gid} stream read MAPE {np.mean(err):.1%} max {np.max(err):.1%}")
    assert np.mean(err) <= 0.10


@pytest.mark.parametrize(("gid", "name"), [("a100-40gb", "a100_40"), ("a100-80gb", "a100_80"), ("h100-pcie", "h100_pcie")])
def test_pointer_chase_vs_footprint_within_10_percent(gid: str, name: str) -> None:
    """A100 curves were fitted (scripts/fit_micro.py); the H100 PCIe curve was not."""
    gpu = perfmodel.get_gpu(gid)
    rows = parse_latency(DATA / f"latency_{name}.txt")
    err = [abs(perfmodel.micro_pointer_chase(gpu, footprint_bytes=int(fp)) / cyc - 1) for fp, cyc in rows]
    print(f"{gid} pointer chase MAPE {np.mean(err):.1%} max {np.max(err):.1%} over {len(rows)} footprints")
    assert np.mean(err) <= 0.10


def test_l2_read_bandwidth_curve_not_fitted() -> None:
    gpu = perfmodel.get_gpu("a100-80gb")
    rows = parse_l2(DATA / "l2-cache_a100_80.txt")
    err = [abs(perfmodel.micro_l2_read(gpu, footprint_bytes=int(fp)) / bw - 1) for fp, bw in rows]
    print(f"l2-read MAPE {np.mean(err):.1%}")
    assert np.mean(err) <= 0.15


def test_chase_latency_rises_through_the_hierarchy() -> None:
    gpu = perfmodel.get_gpu("a100-80gb")
    lat = [perfmodel.micro_pointer_chase(gpu, footprint_bytes=f) for f in (16 << 10, 4 << 20, 1 << 30)]
    assert lat[0] == pytest.approx(gpu.l1_latency_cycles, rel=0.02)
    assert lat[1] == pytest.approx(gpu.l2_near_latency_cycles, rel=0.05)
    assert lat[2] == pytest.approx(gpu.dram_latency_cycles, rel=0.02)


def test_stream_bandwidth_never_exceeds_peak_and_grows_with_occupancy() -> None:
    gpu = perfmodel.get_gpu("h100-sxm")
    bws = [perfmodel.micro_stream_read(gpu, block_size=b) for b in range(32, 1025, 32)]
    assert all(b2 >= b1 for b1, b2 in itertools.pairwise(bws))
    assert max(bws) <= gpu.dram_bandwidth_bytes_per_s


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "recperf", *args], capture_output=True, text=True, timeout=120,
                          check=False)


def test_micro_cli_json() -> None:
    out = _cli("micro", "--gpu", "a100-80gb", "--kind", "pointer-chase", "--footprint-bytes", "1000000000", "--json")
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert d["latency_cycles"] == pytest.approx(perfmodel.get_gpu("a100-80gb").dram_latency_cycles, rel=0.02)
    assert d["latency_s"] == pytest.approx(d["latency_cycles"] / 1.41e9)
    out = _cli("micro", "--gpu", "a100-80gb", "--kind", "stream-read", "--block-size", "256", "--json")
    assert out.returncode == 0 and json.loads(out.stdout)["bandwidth_bytes_per_s"] > 0
    bad = _cli("micro", "--gpu", "a100-80gb", "--kind", "stream-read", "--json")
    assert bad.returncode == 2 and bad.stderr.startswith("error:") and "--block-size" in bad.stderr


def test_predict_cli(tmp_path: Path) -> None:
    w = tmp_path / "w.toml"
    w.write_text('batch_size = 256\n[[tables]]\nrows = 100000\ndim = 64\npooling = 20\ncount = 2\n'
                 '[tables.indices]\nkind = "zipf"\nalpha = 1.1\n')
    k = tmp_path / "k.toml"
    k.write_text('variant = "warp"\nprefetch_distance = 4\n')
    out = _cli("predict", "--gpu", "h100-sxm", "--workload", str(w), "--kernel", str(k), "--json")
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    for f in ("time_s", "pin_time_s", "occupancy", "l2_hit_rate", "dram_bytes", "bound"):
        assert f in d
    expect = perfmodel.predict(perfmodel.load_workload(w), perfmodel.load_kernel_config(k), perfmodel.get_gpu("h100-sxm"))
    assert d["time_s"] == expect.time_s
    text = _cli("predict", "--gpu", "h100-sxm", "--workload", str(w), "--kernel", str(k))
    assert "bound by" in text.stdout
    k.write_text('variant = "fast"\n')
    bad = _cli("predict", "--gpu", "h100-sxm", "--workload", str(w), "--kernel", str(k))
    assert bad.returncode == 2 and "valid choices: micro24-combined, pytorch, pytorch-current, tbe, warp" in bad.stderr
