"""Measurement files and the accuracy report (``recperf validate report``)."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from scipy import stats

import perfmodel
from perfmodel import GPUSpec, KernelConfig, Workload
from validation import (
    accuracy_report,
    append_record,
    done_keys,
    read_measurements,
    record_key,
    render_markdown,
    render_scatter,
    scatter_info,
)

WORKLOAD = 'batch_size = 256\n[[tables]]\nrows = 100000\ndim = 64\npooling = 20\n[tables.indices]\nkind = "uniform"\n'
INLINE = {"batch_size": 128, "tables": [{"rows": 5000, "dim": 32, "pooling": 4, "indices": {"kind": "zipf", "alpha": 1.1}}]}


def stand_in(w: Workload, ks: Sequence[KernelConfig], g: GPUSpec) -> npt.NDArray[np.float64]:
    """A known, deterministic predictor: lets the tests check grouping and order exactly."""
    return np.array([1e-3 * k.block_size / 256 + 1e-5 * k.prefetch_distance + w.batch_size * 1e-7 for k in ks])


def _file(tmp_path: Path, rows: list[dict[str, object]]) -> Path:
    (tmp_path / "w.toml").write_text(WORKLOAD)
    f = tmp_path / "m.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return f


def test_paths_resolve_against_the_measurement_file_and_inline_tables_work(tmp_path: Path) -> None:
    sub = tmp_path / "runs"
    sub.mkdir()
    (sub / "w.toml").write_text(WORKLOAD)
    f = sub / "m.jsonl"
    f.write_text(json.dumps({"gpu": "a100-80gb", "workload": "w.toml", "kernel": {"block_size": 128}, "time_s": 1e-3,
                             "note": "synthetic"}) + "\n\n"
                 + json.dumps({"gpu": "h100-sxm", "workload": INLINE, "kernel": {}, "time_s": 2e-3}) + "\n")
    recs = read_measurements(f)
    assert [r.line for r in recs] == [1, 3]
    assert recs[0].workload.batch_size == 256 and recs[0].workload_ref == str((sub / "w.toml").resolve())
    assert recs[1].workload.batch_size == 128 and recs[1].kernel == KernelConfig()


@pytest.mark.parametrize(("line", "message"), [
    ('{"gpu": "a100-80gb", "workload": "w.toml", "kernel": {}}', "time_s"),
    ('{"gpu": "a100-80gb", "workload": "w.toml", "kernel": {}, "time_s": -1}', "time_s > 0"),
    ('{"gpu": "a100-80gb", "workload": "nope.toml", "kernel": {}, "time_s": 1}', "does not exist"),
    ('{"gpu": "a100-80gb", "workload": "w.toml", "kernel": {"block_size": 100}, "time_s": 1}', "multiple of 32"),
    ("[1, 2]", "one JSON object"),
])
def test_bad_records_name_file_line_and_rule(tmp_path: Path, line: str, message: str) -> None:
    (tmp_path / "w.toml").write_text(WORKLOAD)
    f = tmp_path / "m.jsonl"
    f.write_text(line + "\n")
    with pytest.raises(perfmodel.InputError, match=message) as exc:
        read_measurements(f)
    assert "m.jsonl:1" in str(exc.value)


def test_report_metrics_match_scipy_with_a_known_predictor(tmp_path: Path) -> None:
    rows: list[dict[str, object]] = []
    rng = np.random.default_rng(3)
    for b in (64, 128, 256, 512):
        for p in (0, 2, 4):
            for wl in ("w.toml", INLINE):
                rows.append({"gpu": "a100-80gb", "workload": wl, "kernel": {"block_size": b, "prefetch_distance": p},
                             "time_s": float(rng.uniform(1e-4, 3e-3)), "note": "synthetic test file"})
    f = _file(tmp_path, rows)
    rep = accuracy_report(f, predictor=stand_in)
    recs = read_measurements(f)
    pred = np.array([stand_in(r.workload, [r.kernel], perfmodel.get_gpu(r.gpu))[0] for r in recs])
    meas = np.array([r.time_s for r in recs])
    np.testing.assert_allclose(rep.predicted_s, pred, rtol=1e-15)
    assert rep.metrics.mape == pytest.approx(np.mean(np.abs(pred - meas) / meas))
    assert rep.metrics.spearman == pytest.approx(stats.spearmanr(pred, meas).statistic)
    assert rep.metrics.kendall == pytest.approx(stats.kendalltau(pred, meas).statistic)
    assert rep.metrics.top1_regret == pytest.approx(meas[np.argmin(pred)] / meas.min() - 1)
    assert len(rep.groups) == 2 and sum(g.metrics.n for g in rep.groups) == len(rows)
    assert rep.synthetic
    info = scatter_info(rep)
    assert sum(len(s[1]) for s in info.series) == len(rows)
    assert info.lo_ms < meas.min() * 1e3 and info.hi_ms > meas.max() * 1e3
    md = render_markdown(rep, plot="r.png")
    assert "| 24 |" in md and "![predicted vs measured](r.png)" in md
    png = render_scatter(rep, tmp_path / "out" / "r.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_gpu_override_is_used_for_every_record(tmp_path: Path) -> None:
    seen: list[str] = []

    def spy(w: Workload, ks: Sequence[KernelConfig], g: GPUSpec) -> npt.NDArray[np.float64]:
        seen.append(g.id)
        return stand_in(w, ks, g)

    f = _file(tmp_path, [{"gpu": "a100-80gb", "workload": "w.toml", "kernel": {}, "time_s": 1e-3}])
    accuracy_report(f, gpu="h200", predictor=spy)
    assert seen == ["h200"]


def test_append_and_resume_keys(tmp_path: Path) -> None:
    (tmp_path / "w.toml").write_text(WORKLOAD)
    f = tmp_path / "m.jsonl"
    rec = {"gpu": "a100-80gb", "workload": "w.toml", "kernel": {"block_size": 128}, "time_s": 1e-3}
    append_record(f, rec)
    with f.open("a") as fh:
        fh.write('{"gpu": "a100-80gb", "workl')  # a crash mid-line
    append_record(f, {**rec, "kernel": {"block_size": 256}})
    keys = done_keys(f)
    assert record_key(rec, tmp_path) in keys
    # the same kernel written with defaults spelled out is the same record
    assert record_key({**rec, "kernel": {"block_size": 128, "variant": "pytorch"}}, tmp_path) in keys
    assert record_key({**rec, "warm_cache": True}, tmp_path) not in keys
    assert len(f.read_text().splitlines()) == 3


def test_cli_report_agrees_with_predict_per_record(tmp_path: Path) -> None:
    kernels = [{"variant": v, "block_size": b, "register_cap": r} for v in ("pytorch", "warp") for b in (128, 256)
               for r in (0, 40)]
    w = perfmodel.load_workload(_file(tmp_path, []).parent / "w.toml")
    pred = np.array([perfmodel.predict(w, perfmodel.kernel_config_from_mapping(k), perfmodel.get_gpu("h100-sxm")).time_s
                     for k in kernels])
    meas = pred * np.linspace(0.7, 1.3, len(pred))[::-1]
    meas[3] = meas[5]  # a tie in the measurements
    f = _file(tmp_path, [{"gpu": "h100-sxm", "workload": "w.toml", "kernel": k, "time_s": float(t),
                          "note": "synthetic"} for k, t in zip(kernels, meas, strict=True)])
    out = subprocess.run([sys.executable, "-m", "recperf", "validate", "report", "--measurements", str(f), "--json"],
                         capture_output=True, text=True, check=True)
    r = json.loads(out.stdout)
    assert r["n"] == len(kernels)
    assert r["mape"] == pytest.approx(np.mean(np.abs(pred - meas) / meas), abs=1e-9)
    assert r["spearman"] == pytest.approx(stats.spearmanr(pred, meas).statistic, abs=1e-9)
    assert r["kendall"] == pytest.approx(stats.kendalltau(pred, meas).statistic, abs=1e-9)
    assert r["top1_regret"] == pytest.approx(meas[np.argmin(pred)] / meas.min() - 1, abs=1e-9)


def test_cli_report_bad_file_exits_2_with_one_error_line(tmp_path: Path) -> None:
    f = tmp_path / "m.jsonl"
    f.write_text("not json\n")
    out = subprocess.run([sys.executable, "-m", "recperf", "validate", "report", "--measurements", str(f), "--json"],
                         check=False, capture_output=True, text=True)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.startswith("error:") and len(out.stderr.strip().splitlines()) == 1


def test_shipped_synthetic_file_replays_and_says_it_is_synthetic() -> None:
    from validation.runners import ReplayRunner

    f = Path(__file__).resolve().parent.parent / "validation" / "data" / "synthetic" / "h100-sxm-zipf-grid.jsonl"
    recs = read_measurements(f)
    assert len(recs) == 24 and all(str(r.raw["note"]).startswith("synthetic") for r in recs)
    rp = ReplayRunner(f)
    k = perfmodel.KernelConfig(variant="warp", block_size=256, prefetch_distance=4, register_cap=40)
    assert rp.time_s(recs[0].workload, k, "h100-sxm") == pytest.approx(1e-4 * 0.8)  # README.md formula
    rep = accuracy_report(f, predictor=stand_in)
    assert rep.synthetic and rep.metrics.n == 24


# ---- hardware-run archives (the committed example is SYNTHETIC: it tests the path, not the model) ----

SYNTHETIC_DIR = Path(__file__).resolve().parent.parent / "validation" / "data" / "synthetic"
ARCHIVE = SYNTHETIC_DIR / "gpu-validate-synthetic-h100-sxm-20260101T000000Z.tar.gz"


def _recperf(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "recperf", *args], capture_output=True, text=True, check=False, cwd=cwd)


def test_the_committed_synthetic_archive_is_what_its_script_makes(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, str(SYNTHETIC_DIR / "make_synthetic_archive.py"), str(tmp_path)],
                         capture_output=True, text=True, check=True)
    made = Path(out.stdout.strip())
    assert made.name == ARCHIVE.name and made.read_bytes() == ARCHIVE.read_bytes()
    assert ARCHIVE.stat().st_size < 64 << 10


def test_report_reads_an_archive_and_says_it_is_synthetic(tmp_path: Path) -> None:
    from validation._lease import read_manifest

    manifest = read_manifest(ARCHIVE)
    assert manifest["synthetic"] is True and "synthetic" in manifest["name"] and manifest["rule"]
    out = _recperf("validate", "report", "--measurements", str(ARCHIVE), "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["n"] == 144 and doc["synthetic"] is True and doc["archive"]["gpu"] == "h100-sxm"
    assert {"mape", "spearman", "kendall", "top1_regret"} <= set(doc)  # numbers of a made-up rule: not checked
    text = _recperf("validate", "report", "--measurements", str(ARCHIVE))
    assert "SYNTHETIC data: not a measurement" in text.stdout.splitlines()[0]
    rep = accuracy_report(ARCHIVE, predictor=stand_in)  # the library reads it too
    assert rep.synthetic and rep.metrics.n == 144 and all(r.gpu == "h100-sxm" for r in rep.records)


def test_calibrate_reads_the_gpu_and_the_microbenchmarks_from_an_archive(tmp_path: Path) -> None:
    spec = tmp_path / "cal.toml"
    out = _recperf("validate", "calibrate", "--archive", str(ARCHIVE), "--out", str(spec), "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["gpu"] == "h100-sxm" and doc["synthetic"] is True and doc["spec_file"] == str(spec)
    assert set(doc["residuals"]) == {"pointer-chase", "stream-read", "l2-read"}
    assert perfmodel.get_gpu(str(spec)).id == "h100-sxm-calibrated"


def _one_error(out: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert out.returncode == 2 and out.stdout == "", (out.returncode, out.stdout, out.stderr)
    assert out.stderr.startswith("error:") and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert all(n in out.stderr for n in needles), out.stderr


def test_archive_errors_exit_2_with_one_line(tmp_path: Path) -> None:
    from validation._lease import pack_run

    run = tmp_path / "run"
    run.mkdir()
    (run / "env.json").write_text('{"gpu_id": "h200"}\n')
    bare = pack_run(run, tmp_path, gpu="h200", when=dt.datetime(2026, 2, 3, tzinfo=dt.timezone.utc),
                    manifest={"phases_failed": ["micro", "sweep"]})
    _one_error(_recperf("validate", "calibrate", "--archive", str(bare), "--json"), "micro.jsonl", "micro, sweep")
    _one_error(_recperf("validate", "report", "--measurements", str(bare), "--json"), "measurements.jsonl")
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not gzip")
    _one_error(_recperf("validate", "report", "--measurements", str(junk)), "not a readable")
    _one_error(_recperf("validate", "calibrate", "--json"), "--gpu", "--archive")
