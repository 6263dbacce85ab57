"""Plots: the pure ``get_*_info`` data is tested; the matplotlib renderers only write a PNG."""

from __future__ import annotations

from pathlib import Path

import pytest

from perfmodel import pipeline as pp


@pytest.fixture(scope="module")
def rmc1() -> pp.PipelineResult:
    return pp.run_pipeline("rmc1", "a100-80gb", 64, streams=2)


def test_pipeline_plot_info_holds_the_stage_stack_and_every_op_once(rmc1: pp.PipelineResult) -> None:
    info = pp.get_pipeline_plot_info(rmc1)
    assert sum(v for _, v in info["stages"]) == pytest.approx(rmc1.time_s, rel=1e-9)
    values = [v for _, v in info["stages"]]
    assert values == sorted(values, reverse=True)
    lanes = dict(info["lanes"])
    assert "h2d" in lanes and "d2h" in lanes and "stream 0" in lanes
    names = [it["name"] for items in lanes.values() for it in items]
    timed = [op.name for op in rmc1.ops if op.time_s > 0]
    assert sorted(names) == sorted(timed)
    assert all(it["end_s"] <= rmc1.time_s * (1 + 1e-9) for items in lanes.values() for it in items)
    assert [lane for lane, _ in info["lanes"]][-2:] == ["d2h", "h2d"]  # copy engines drawn last


def test_sweep_plot_info_marks_the_crossover() -> None:
    rows = pp.sweep_batch("rmc2", ["a100-80gb", "xeon-8280"], [1, 64, 1024])
    info = pp.get_sweep_plot_info(rows)
    assert set(info["devices"]) == {"a100-80gb", "xeon-8280"}
    assert info["devices"]["xeon-8280"]["batch_size"] == [1, 64, 1024]
    assert info["crossovers"] == [{"gpu": "a100-80gb", "cpu": "xeon-8280",
                                   "batch_size": pp.crossover_of(rows, "a100-80gb", "xeon-8280")}]
    assert info["crossovers"][0]["batch_size"] in (64, 1024)


def test_renderers_write_png_files(rmc1: pp.PipelineResult, tmp_path: Path) -> None:
    a = pp.plot_pipeline(rmc1, tmp_path / "p.png")
    b = pp.plot_sweep(pp.sweep_batch("rmc1", ["xeon-8280"], [1, 4]), tmp_path / "s.png")
    for f in (a, b):
        assert Path(f).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
