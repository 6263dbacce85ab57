"""The ledger of published kernel times, the harness layer and ``recperf validate published`` (CPU only)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import perfmodel
from validation import compare_ledger, load_ledger
from validation._harness import (
    HarnessCost,
    NotModelled,
    TimedCalls,
    TimedRegion,
    as_timed,
    call_workload,
    harness_costs,
)
from validation._ledger import ledger_dir, power_law_floor

LEDGER = ledger_dir()


def _generation(gpu: str) -> str:
    return "sm_80" if gpu.startswith("a100") else "sm_90"


def test_the_shipped_ledger_meets_the_issue_floor_and_names_its_sources() -> None:
    led = load_ledger()
    assert len(led.sources) >= 3 and len(led.points) >= 8
    checks = [p for p in led.points if p.role == "check"]
    assert 2 * len(checks) >= len(led.points)
    assert {_generation(g) for p in led.points for g in p.gpus} >= {"sm_80", "sm_90"}
    for s in led.sources:
        assert (s.url or s.repository) and s.gpu and s.clock, s.id
    for p in led.points:
        assert p.quote and p.measured_s > 0 and p.gpus, p.name
        assert p.kernel.get("variant"), p.name  # every point names the kernel variant that reproduces it
    for r in led.ratios:
        assert r.numerator.source_id == r.denominator.source_id == r.source_id
    assert sum(1 for r in led.ratios if r.numerator.status is None and r.denominator.status is None) >= 2


def test_artifact_points_are_the_means_of_the_shipped_log() -> None:
    """scripts/log: four runs of 144 calls (reuse_high, reuse_medium, reuse_low, random, as scripts/dummy
    names them), the cold first call of each dropped, as the artifact's parser_Kernel_ET.py does."""
    ms = np.loadtxt(LEDGER / "micro24-artifact" / "scripts_log.txt")
    assert ms.shape == (576,)
    runs = {"reuse_high": 0, "reuse_medium": 1, "reuse_low": 2, "random": 3}
    points = [p for p in load_ledger().points if p.source_id == "micro24-artifact"]
    assert len(points) == 4
    for p in points:
        (trace,) = [t for t in runs if f"{t} trace" in p.name]
        timed = ms[runs[trace] * 144 + 1 : (runs[trace] + 1) * 144] * 1e-3
        assert timed.size == 143
        assert p.measured_s == pytest.approx(timed.mean(), rel=1e-5), p.name
        assert (p.min_s, p.max_s) == (pytest.approx(timed.min()), pytest.approx(timed.max()))
        assert p.calls is None or p.calls.count == 143


def test_power_law_generator_reproduces_the_sources_distinct_id_count() -> None:
    """benchmark_results.json (recsys-examples): 'avg_n_unique': 350280.02 over 10 tables of 104,857 ids
    drawn from 1,677,721 rows; a Zipf law of the same exponent gives ~5% fewer distinct ids."""
    ids = power_law_floor(1677721, 104857, low=1, alpha=1.05, seed=0)
    assert ids.min() >= 1 and ids.max() < 1677721
    assert np.unique(ids).size == pytest.approx(35028.0, rel=0.02)
    again = power_law_floor(1677721, 104857, low=1, alpha=1.05, seed=0)
    assert np.array_equal(ids, again)


def _costs(**values: float | None) -> dict[str, HarnessCost]:
    return {k.replace("_", "-"): HarnessCost(term=k.replace("_", "-"), value_s=v,
                                             status="unknown" if v is None else "estimate", basis="test")
            for k, v in values.items()}


def test_as_timed_adds_the_terms_of_the_region() -> None:
    costs = _costs(launch_from_idle=5e-6, host_sync_before_stop=3e-6, host_dispatch=None)
    region = TimedRegion(contains=("kernel", "launch-from-idle", "host-sync-before-stop"))
    t = as_timed(100e-6, 20e-6, region, costs)  # hand-worked: 80 us kernel + 5 + 3
    assert t.kernel_s == pytest.approx(80e-6) and t.harness_s == pytest.approx(8e-6)
    assert t.as_timed_s == pytest.approx(88e-6)
    assert as_timed(100e-6, 20e-6, TimedRegion(contains=("kernel", "pin-pass")), costs).as_timed_s == \
        pytest.approx(100e-6)
    assert as_timed(100e-6, 20e-6, TimedRegion(), costs).as_timed_s == pytest.approx(80e-6)  # kernel only
    with pytest.raises(NotModelled, match="host-dispatch"):
        as_timed(100e-6, 0.0, TimedRegion(contains=("kernel", "host-dispatch")), costs)
    with pytest.raises(perfmodel.InputError, match="unknown timed-region term"):
        TimedRegion(contains=("kernel", "coffee"))
    with pytest.raises(perfmodel.InputError, match="holds the kernel"):
        TimedRegion(contains=("launch-from-idle",))


def test_shipped_harness_costs_name_their_basis() -> None:
    costs = harness_costs()
    assert {"launch-from-idle", "host-sync-before-stop", "events-after-flush"} <= set(costs)
    for c in costs.values():
        assert c.basis and (c.value_s is None) == (c.status == "unknown")


def test_the_do_bench_floor_is_sourced_from_no_kernel_rows_and_used_by_the_do_bench_source() -> None:
    """events-after-flush: FlagGems' kernel-mode rows of ops that launch no kernel (views) on an
    H20 print 0.003200 ms; the FlagGems embedding points, timed by the same do_bench, hold it."""
    c = harness_costs()["events-after-flush"]
    assert c.status == "sourced" and c.value_s == pytest.approx(3.2e-6)
    assert "0.003200" in c.basis and "#3886" in c.basis
    src = next(s for s in load_ledger().sources if s.id == "flaggems-pr-5610")
    assert "events-after-flush" in src.timed_region.contains


@pytest.mark.parametrize(("entry", "rule"), [
    ('status = "guess"\nvalue_s = 1e-6\nbasis = "x"', "status must be one of"),
    ('status = "estimate"\nvalue_s = -1.0\nbasis = "x"', "value_s"),
    ('status = "estimate"\nvalue_s = 1e-6', "basis"),
])
def test_bad_harness_cost_files_name_the_rule(tmp_path: Path, entry: str, rule: str) -> None:
    f = tmp_path / "harness.toml"
    f.write_text(f"[costs.launch-from-idle]\n{entry}\n")
    with pytest.raises(perfmodel.InputError, match=rule):
        harness_costs(f)


def test_timed_calls_spread_evenly_and_windows_rotate_the_trace(tmp_path: Path) -> None:
    assert TimedCalls(first=1, count=143).sample(4) == (1, 48, 96, 143)
    assert TimedCalls(first=1, count=143).sample(1) == (1,)
    assert TimedCalls(first=0, count=3).sample(10) == (0, 1, 2)
    trace = np.arange(100, dtype=np.int64) % 37  # 100 indices over 37 rows
    path = tmp_path / "t.txt"
    path.write_text("\n".join(map(str, trace)) + "\n")
    wl = perfmodel.Workload(batch_size=3, tables=(perfmodel.Table(
        rows=37, dim=4, pooling=5, indices=perfmodel.IndexDistribution(kind="trace", path=str(path))),))
    assert call_workload(wl, 0) is wl
    shifted = call_workload(wl, 7)  # call 7 reads indices [105, 120) of the wrapped stream = [5, 20)
    got = np.load(shifted.tables[0].indices.path or "")
    assert np.array_equal(got[:15], trace[5:20]) and np.array_equal(np.sort(got), np.sort(trace))


def test_compare_ledger_predicts_what_it_can_and_says_why_not_for_the_rest() -> None:
    cmp = compare_ledger(sources=["pytorch-pr-167834"], windows=1)
    ok = [r for r in cmp.points if r.ok]
    assert {r.point.name for r in ok} == {
        "EmbeddingBag forward, random ids, assert inside the loop (before)",
        "EmbeddingBag forward, random ids, check loop before the main loop (after)",
        "EmbeddingBag forward on H20, random ids, assert inside the loop (before)"}
    (h20,) = [r for r in ok if r.gpu == "h20"]
    assert h20.point.role == "check" and h20.point.measured_s == pytest.approx(278.6e-6)
    for r in ok:
        assert r.predicted is not None and r.predicted.as_timed_s > 0
        assert r.error == pytest.approx(abs(r.predicted.as_timed_s / r.point.measured_s - 1))
        assert r.predicted.harness_s == 0.0  # this source's region is the kernel only
    for r in cmp.points:
        if not r.ok:
            assert r.status in ("under-specified", "unavailable") and r.reason and math.isnan(r.error)
    (ratio,) = [r for r in cmp.ratios if r.ok]
    num, den = (next(p for p in ok if p.point is end) for end in (ratio.ratio.numerator, ratio.ratio.denominator))
    assert num.predicted and den.predicted
    assert ratio.predicted == pytest.approx(num.predicted.as_timed_s / den.predicted.as_timed_s)
    assert ratio.ratio.measured == pytest.approx(162.4 / 105.9)
    assert all(r.status == "under-specified" for r in cmp.ratios if not r.ok)


def test_flaggems_points_are_the_torch_column_of_their_quoted_rows_and_are_predicted() -> None:
    """FlagGems PR #5610: each point's figure is the 'Torch Latency (ms)' cell of the row it quotes, and its
    workload the row's shapes: weight [rows, dim] / indices [bags x pooling] / offsets [bags]."""
    cmp = compare_ledger(sources=["flaggems-pr-5610"], windows=1)
    assert len(cmp.points) == 5
    for r in cmp.points:
        cells = [c.strip() for c in r.point.quote[0].strip("|").split("|")]
        weight, indices, offsets = (json.loads(x) for x in cells[0].split(" / "))
        assert r.point.measured_s == pytest.approx(float(cells[1]) * 1e-3, rel=1e-12)
        (table,) = r.point.workload["tables"]
        assert weight == [table["rows"], table["dim"]] and offsets == [r.point.workload["batch_size"]]
        assert indices == [offsets[0] * table["pooling"]] and table["dtype"] == "float16"
        assert r.ok and r.gpu == "h20" and r.point.role == "check" and r.point.kernel["variant"] == "pytorch-current"
        # do_bench: device time between two events behind an L2 flush (the events-after-flush floor)
        assert r.predicted is not None and r.predicted.harness_s == pytest.approx(3.2e-6)
        assert r.error == pytest.approx(abs(r.predicted.as_timed_s / r.point.measured_s - 1))


def test_the_a800_points_are_the_figures_of_their_quoted_sentence_and_are_under_specified() -> None:
    """Wang's 2025 article (Notion): 'embedding_bag 的计算时间从 460 µs 优化至 175 µs' on an A800; the stored
    text names neither the test case's index dataset nor the timing method, so both points are reported,
    not predicted, and the before/after pair names the inline and the separate check."""
    cmp = compare_ledger(sources=["yywangcs-notion-2025"], windows=1)
    assert len(cmp.points) == 2 and not any(r.ok for r in cmp.points)
    sentence = "embedding_bag 的计算时间从 460 µs 优化至 175 µs"
    by_check = {r.point.kernel["bounds_check"]: r for r in cmp.points}
    assert set(by_check) == {"inline", "separate"}
    for check, figure in (("inline", 460), ("separate", 175)):
        r = by_check[check]
        assert sentence in r.point.quote[0] and f"{figure} µs" in r.point.quote[0]
        assert r.point.measured_s == pytest.approx(figure * 1e-6, rel=1e-12)
        assert r.gpu == "a100-80gb" and r.point.role == "check" and r.point.kernel["variant"] == "pytorch"
        assert r.status == "under-specified" and "dataset" in r.reason and math.isnan(r.error)
    (ratio,) = cmp.ratios
    assert not ratio.ok and ratio.ratio.measured == pytest.approx(460 / 175)


def test_the_nobag_points_name_fbgemms_nobag_kernels_and_are_not_modelled() -> None:
    """recsys-examples (PoolingMode.NONE) and TorchRec #4688 (batch_index_select_dim0) ran FBGEMM's nobag
    kernels; the `tbe` replica is the pooled forward, so both are reported as not modelled, with the
    pooled replica as an information-only stand-in (never counted as a prediction)."""
    cmp = compare_ledger(sources=["recsys-examples-dynamicemb", "torchrec-pr-4688"], windows=1)
    assert cmp.points and not any(r.ok for r in cmp.points)
    for r in cmp.points:
        assert r.point.kernel["variant"] in ("fbgemm-tbe-nobag", "fbgemm-batch-index-select-dim0")
        assert r.status == "not-modelled" and "unknown variant" in r.reason and math.isnan(r.error)
        assert r.point.stand_in == {"variant": "tbe", "block_size": 256}
        assert any("not reproducible by our kernels" in a for a in r.point.assumptions)
        d = r.to_dict()
        assert "predicted" not in d
        if r.stand_in is not None:  # the eval point's region holds a host term without a cost: no stand-in either
            assert d["stand_in"]["kernel"]["variant"] == "tbe"
    train = next(r for r in cmp.points if r.point.name.startswith("TBE training forward"))
    assert train.stand_in is not None and train.stand_in.as_timed_s > 0


def _ledger_file(tmp_path: Path, points: str, ratios: str = "") -> Path:
    d = tmp_path / "ledger"
    d.mkdir(exist_ok=True)
    (d / "src.toml").write_text(textwrap.dedent("""\
        [source]
        id = "toy"
        title = "a toy source"
        url = "https://example.org/toy"
        gpu = "A100"
        clock = "1410 MHz"
        """) + points + ratios)
    return d


_POINT = """
[[points]]
name = "{name}"
role = "{role}"
gpus = ["a100-80gb"]
measured_s = 1.0e-4
quote = ["a quoted line"]
kernel = {{ variant = "{variant}", block_size = 256 }}
stand_in = {{ variant = "warp", block_size = 256 }}
workload = {{ batch_size = 256, tables = [{{ rows = 100000, dim = 64, pooling = 20 }}] }}
"""


def test_an_unknown_variant_is_reported_with_its_reason_and_the_stand_in(tmp_path: Path) -> None:
    d = _ledger_file(tmp_path, _POINT.format(name="a", role="check", variant="not-a-variant")
                     + _POINT.format(name="b", role="calibration", variant="warp"),
                     '[[ratios]]\nname = "a / b"\nnumerator = "a"\ndenominator = "b"\n')
    cmp = compare_ledger(load_ledger(d), windows=1)
    by = {r.point.name: r for r in cmp.points}
    assert by["a"].status == "not-modelled" and "not-a-variant" in by["a"].reason
    assert by["a"].stand_in is not None and by["a"].predicted is None
    assert by["b"].ok and by["a"].stand_in.as_timed_s == pytest.approx(by["b"].predicted.as_timed_s)  # type: ignore[union-attr]
    (ratio,) = cmp.ratios
    assert ratio.status == "not-modelled" and not ratio.ok and "'a'" in ratio.reason
    d2 = by["a"].to_dict()
    assert d2["stand_in"]["kernel"]["variant"] == "warp" and "predicted" not in d2


@pytest.mark.parametrize(("points", "ratios", "rule"), [
    (_POINT.format(name="a", role="fit", variant="warp"), "", "role"),
    (_POINT.format(name="a", role="check", variant="warp").replace('quote = ["a quoted line"]', "quote = []"), "",
     "quote"),
    (_POINT.format(name="a", role="check", variant="warp"), '[[ratios]]\nname = "r"\nnumerator = "a"\n'
     'denominator = "zzz"\n', "denominator"),
    (_POINT.format(name="a", role="check", variant="warp") * 2, "", "used twice"),
    (_POINT.format(name="a", role="check", variant="warp").replace("role =", "colour = 1\nrole ="), "",
     "unknown keys"),
    (_POINT.format(name="a", role="check", variant="warp").replace("measured_s = 1.0e-4", "measured_s = -1"), "",
     "measured_s"),
    (_POINT.format(name="a", role="check", variant="warp") + 'status = "lost"\nreason = "x"\n', "", "status"),
])
def test_bad_ledger_files_raise_input_error_naming_file_and_rule(tmp_path: Path, points: str, ratios: str,
                                                                 rule: str) -> None:
    d = _ledger_file(tmp_path, points, ratios)
    with pytest.raises(perfmodel.InputError, match=rule) as exc:
        load_ledger(d)
    assert "src.toml" in str(exc.value)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "recperf", "validate", "published", *args],
                          capture_output=True, text=True, check=False)


def test_cli_json_reports_kernel_times_ratios_and_pending_points_with_the_contract_fields() -> None:
    out = _cli("--source", "pytorch-pr-167834", "--kind", "kernel-time", "--windows", "1", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    kt = [d for d in doc["datasets"] if d["kind"] == "kernel-time"]
    assert len(kt) == 3 and len(doc["datasets"]) == 3  # H100 before/after, H20 before; --kind kernel-time: no curves
    for d in kt:
        assert {"name", "gpu", "metric", "error", "role", "measured", "predicted", "source_id"} <= set(d)
        assert d["role"] in ("calibration", "check") and d["source_id"] == "pytorch-pr-167834"
        assert d["error"] == pytest.approx(abs(d["predicted"] / d["measured"] - 1))
    (ratio,) = doc["ratios"]
    assert {"name", "source_id", "measured", "predicted"} <= set(ratio)
    assert len(doc["pending"]) == 4 + 2  # 4 points and the 2 ratios whose points are under-specified
    assert all(p["status"] != "ok" and p["reason"] for p in doc["pending"])
    assert doc["windows"] == 1 and "launch-from-idle" in doc["harness"]


def test_cli_text_prints_the_fidelity_table() -> None:
    out = _cli("--source", "pytorch-pr-167834", "--kind", "kernel-time", "--windows", "1")
    assert out.returncode == 0, out.stderr
    assert "Kernel times as their sources timed them" in out.stdout
    assert "Before/after ratios" in out.stdout and "Not predicted yet" in out.stdout


@pytest.mark.parametrize(("args", "rule"), [(["--windows", "0"], "windows"), (["--source", "nowhere"], "source")])
def test_cli_bad_input_exits_2_with_one_error_line(args: list[str], rule: str) -> None:
    out = _cli("--kind", "kernel-time", *args, "--json")
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.startswith("error:") and rule in out.stderr and len(out.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_cli_default_run_accounts_for_every_point_on_every_gpu() -> None:
    out = _cli("--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    seen = {(d["source_id"], d["name"], d["gpu"]) for d in doc["datasets"] if d["kind"] == "kernel-time"}
    seen |= {(d["source_id"], d["name"], d["gpu"]) for d in doc["pending"] if d["kind"] == "kernel-time"}
    assert seen == {(p.source_id, p.name, g) for p in load_ledger().points for g in p.gpus}
    assert any(d["kind"] == "stream-read" for d in doc["datasets"])
    # issue #15's floor counts points the model predicts: >= 8 of them, from >= 3 sources, on both
    # generations, at least half of them check points
    kt = [d for d in doc["datasets"] if d["kind"] == "kernel-time"]
    modelled = {(d["source_id"], d["name"]) for d in kt}
    assert len(modelled) >= 8 and len({src for src, _ in modelled}) >= 3
    assert {_generation(d["gpu"]) for d in kt} >= {"sm_80", "sm_90"}
    assert 2 * len({(d["source_id"], d["name"]) for d in kt if d["role"] == "check"}) >= len(modelled)
