"""Model zoo, CPU specs and GPU compute data: every entry loads, shapes follow the sources."""

from __future__ import annotations

from pathlib import Path

import pytest

import perfmodel
from perfmodel import pipeline as pp
from perfmodel.pipeline import CPUCosts

DEEPRECSYS = ["rmc1", "rmc2", "rmc3", "ncf", "wnd", "mt-wnd", "din", "dien"]


def _ops(model: str, batch: int = 4) -> dict[str, pp.Op]:
    costs = CPUCosts(pp.get_cpu("xeon-8280"))
    return {op.name: op for op in pp.build_ops(pp.get_model(model), costs, batch)}


def test_zoo_has_the_eight_deeprecsys_models_seed_and_criteo() -> None:
    ids = pp.model_ids()
    assert set([*DEEPRECSYS, "seed", "criteo-kaggle", "criteo-terabyte"]) <= set(ids)
    for m in ids:
        spec = pp.get_model(m)
        assert spec.source, f"{m} names no source"


@pytest.mark.parametrize(
    ("model", "tables", "rows"),
    [("rmc1", 8, 32_000_000), ("rmc2", 32, 16_000_000), ("rmc3", 10, 20_000_000), ("wnd", 27, 27_000_000),
     ("mt-wnd", 43, 30_500_000), ("dien", 43, 30_500_000), ("criteo-kaggle", 26, 33_762_577),
     ("criteo-terabyte", 26, 187_767_399), ("seed", 12, 6_000_000)],
)
def test_table_counts_and_rows_match_facts(model: str, tables: int, rows: int) -> None:
    m = pp.get_model(model)
    assert m.table_calls == tables
    assert sum(f.table.rows * f.table.count for f in m.features) == rows


@pytest.mark.parametrize(
    ("model", "top_input"),
    # FACTS.md section 2: DeepRecSys prepends the interaction width; Criteo rows list it
    [("rmc1", 288), ("rmc2", 2112), ("rmc3", 352), ("ncf", 256), ("wnd", 1376), ("criteo-kaggle", 367),
     ("criteo-terabyte", 479), ("seed", 206), ("din", 128), ("dien", 160)],
)
def test_top_mlp_input_width(model: str, top_input: int) -> None:
    top0 = _ops(model, batch=4)["top.fc0"]
    first = pp.get_model(model).top_mlp[0]
    assert top0.flops == pytest.approx(2 * 4 * top_input * first)


def test_dien_runs_two_recurrent_layers_of_forty_steps() -> None:
    ops = _ops("dien")
    assert sum(1 for n in ops if n.startswith("gru0.step")) == 40
    assert sum(1 for n in ops if n.startswith("gru1.step")) == 40


def test_user_model_file(tmp_path: Path) -> None:
    f = tmp_path / "mine.toml"
    f.write_text(
        'id = "mine"\narch = "dlrm"\ndense_features = 16\nbottom_mlp = [32, 8]\ninteraction = "dot"\ntop_mlp = [64, 1]\n'
        '[[tables]]\nrows = 1000\ndim = 8\npooling = 4\ncount = 3\n'
    )
    r = pp.run_pipeline(str(f), "xeon-8280", 8)
    assert r.model == "mine" and r.time_s > 0 and r.embedding_time_s > 0


def test_bad_model_files_name_the_rule(tmp_path: Path) -> None:
    f = tmp_path / "bad.toml"
    f.write_text('id = "bad"\narch = "dlrm"\ninteraction = "dot"\ndense_features = 4\nbottom_mlp = [16]\ntop_mlp = [1]\n'
                 '[[tables]]\nrows = 10\ndim = 8\npooling = 1\n')
    with pytest.raises(perfmodel.InputError, match="dot interaction needs one embedding dim"):
        pp.load_model(f)
    with pytest.raises(perfmodel.InputError, match="valid choices"):
        pp.get_model("rmc9")
    with pytest.raises(perfmodel.InputError, match="valid choices"):
        pp.resolve_device("tpu-v4")


def test_cpu_specs_name_a_source_for_every_number() -> None:
    for cid in pp.cpu_ids():
        c = pp.get_cpu(cid)
        fields = [k for k in c.to_dict() if k not in ("id", "name", "peak_fp32_flops_per_s")]
        assert set(fields) == set(c.sources), cid
    c = pp.get_cpu("xeon-8280")
    # 28 cores x 2 AVX-512 FMA units x 16 lanes x 2 flops x 2.7 GHz
    assert c.peak_flops_per_s == pytest.approx(28 * 2 * 16 * 2 * 2.7e9)


@pytest.mark.parametrize(("gpu", "tflops"), [("a100-80gb", 19.5), ("a100-40gb", 19.5), ("h100-pcie", 51),
                                             ("h100-sxm", 67), ("h200", 67)])
def test_gpu_fp32_peaks_from_datasheets(gpu: str, tflops: float) -> None:
    c = pp.get_gpu_compute(gpu)
    assert c.fp32_flops_per_s == pytest.approx(tflops * 1e12)
    assert "datasheet" in c.sources["fp32_flops_per_s"]
    # the catalogue's SMs and clock agree with the datasheet peak (64 FP32 lanes/SM on CC 8.0, 128 on 9.0)
    g = perfmodel.get_gpu(gpu)
    lanes = 64 if g.compute_capability == (8, 0) else 128
    assert g.sm_count * lanes * 2 * g.sm_clock_hz == pytest.approx(c.fp32_flops_per_s, rel=0.02)


def test_terabyte_does_not_fit_an_80gb_gpu_and_gets_a_stated_placement() -> None:
    m = pp.get_model("criteo-terabyte")
    assert m.table_bytes > 80e9
    plan, host = pp._pipeline._memory_plan(m, perfmodel.get_gpu("a100-80gb"), None, pp.DHEConfig(), 4)
    assert plan["placement"] == "device+host-mapped" and host
    assert plan["table_bytes"] - plan["host_table_bytes"] + plan["dense_weight_bytes"] <= plan["capacity_bytes"]
    plan, host = pp._pipeline._memory_plan(m, perfmodel.get_gpu("h200"), None, pp.DHEConfig(), 4)
    assert plan["placement"] == "device" and not host
