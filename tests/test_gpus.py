"""GPU catalogue and user spec files."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

import perfmodel
from perfmodel._gpu import SPEC_FIELDS

IDS = ["a100-40gb", "a100-80gb", "h100-pcie", "h100-sxm", "h200"]


def test_catalogue_has_the_five_gpus() -> None:
    assert set(IDS) <= set(perfmodel.gpu_ids())


@pytest.mark.parametrize("gid", IDS)
def test_every_number_has_a_source(gid: str) -> None:
    gpu = perfmodel.get_gpu(gid)
    for name in SPEC_FIELDS:
        assert gpu.source(name).strip(), f"{gid}.{name} has no source"
    # estimates are flagged only where no public measurement exists
    if gid in ("a100-40gb", "a100-80gb"):
        assert not gpu.estimates
    if gid in ("h100-sxm", "h200"):
        assert "dram_latency_cycles" in gpu.estimates


def test_facts_table_numbers() -> None:
    """FACTS.md section 3."""
    a = perfmodel.get_gpu("a100-80gb")
    assert (a.sm_count, a.sm_clock_hz, a.l2_size_bytes, a.persisting_l2_max_bytes) == (108, 1.41e9, 40 * 2**20, 31457280)
    assert a.dram_bandwidth_bytes_per_s == 2.039e12 and perfmodel.get_gpu("a100-40gb").dram_bandwidth_bytes_per_s == 1.555e12
    h = perfmodel.get_gpu("h100-sxm")
    assert (h.sm_count, h.compute_capability, h.shared_mem_per_sm_bytes) == (132, (9, 0), 228 * 1024)
    assert perfmodel.get_gpu("h100-pcie").sm_count == 114
    assert perfmodel.get_gpu("h200").dram_bandwidth_bytes_per_s == 4.8e12


def test_h20_spec_names_its_sources_and_marks_its_estimates() -> None:
    """perfmodel/gpus/h20.toml: 78 SMs and 96 GB HBM3 at 4.0 TB/s from sourced figures; the clock, the L2
    size and every latency are estimates (H100 PCIe per-cycle latencies reused, DRAM held in ns)."""
    g = perfmodel.get_gpu("h20")
    assert g.compute_capability == (9, 0) and g.sm_count == 78
    assert g.dram_bandwidth_bytes_per_s == 4.0e12 and g.dram_size_bytes == 97871 * 2**20
    assert "multi_processor_count=78" in g.source("sm_count")
    for name in ("sm_clock_hz", "l2_size_bytes", "l2_bandwidth_bytes_per_s", "l1_latency_cycles",
                 "l2_near_latency_cycles", "l2_far_latency_cycles", "dram_latency_cycles"):
        assert name in g.estimates, name
    for name in ("sm_count", "dram_bandwidth_bytes_per_s", "dram_size_bytes"):
        assert name not in g.estimates, name
    h = perfmodel.get_gpu("h100-pcie")
    assert (g.l2_near_latency_cycles, g.l2_far_latency_cycles) == (h.l2_near_latency_cycles, h.l2_far_latency_cycles)
    # DRAM latency held in ns across clocks (H100 PCIe's 655 cycles at 1755 MHz)
    assert g.latency_s(g.dram_latency_cycles) == pytest.approx(h.latency_s(h.dram_latency_cycles), rel=0.01)


def test_gpuspec_is_frozen_and_keyword_only() -> None:
    g = perfmodel.get_gpu("a100-80gb")
    with pytest.raises(dataclasses.FrozenInstanceError):
        g.sm_count = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        perfmodel.GPUSpec("x")  # type: ignore[misc]
    assert g.latency_s(g.dram_latency_cycles) == pytest.approx(571.8 / 1.41e9)


def _builtin_text(gid: str) -> str:
    from importlib import resources

    return resources.files("perfmodel").joinpath(f"gpus/{gid}.toml").read_text()


def test_user_spec_file_accepted_where_an_id_is(tmp_path: Path) -> None:
    text = _builtin_text("a100-80gb").replace('id = "a100-80gb"', 'id = "my-a100"').replace(
        "sm_count = { value = 108", "sm_count = { value = 100"
    )
    path = tmp_path / "mine.toml"
    path.write_text(text)
    g = perfmodel.get_gpu(str(path))
    assert g.id == "my-a100" and g.sm_count == 100


@pytest.mark.parametrize(
    ("old", "new", "needle"),
    [
        ("sm_count = { value = 108", "sm_count = { value = -3", "1 <= sm_count"),
        ("sm_count = { value = 108", 'sm_count = { value = "many"', "`sm_count` must be a number"),
        ("sm_count = { value = 108", "sm_count = { value = 108.5", "`sm_count` must be an integer"),
        ("sm_count = { value = 108, source = \"NVIDIA A100 whitepaper (2020): 108 SMs\"", "sm_count = { value = 108, source = \"\"", "source"),
        ("[spec]", "[spec]\nbogus_field = { value = 1, source = \"x\" }", "unknown fields ['bogus_field']"),
        ("l2_partitions = ", "l2_partitionz = ", "missing fields ['l2_partitions']"),
        ("compute_capability_minor = { value = 0", "compute_capability_minor = { value = 5", "compute capability must be one of"),
        ("[spec]", "[spec", "not valid TOML"),
        # a value far past any GPU is refused by name (1e308 cycles overflowed the model: fuzz seed 1004537)
        ("dram_latency_cycles = { value = 571.8", "dram_latency_cycles = { value = 1e308", "dram_latency_cycles <= "),
        ("sm_count = { value = 108", "sm_count = { value = 10800000", "sm_count <= 10000"),
    ],
)
def test_malformed_spec_file_names_the_problem(tmp_path: Path, old: str, new: str, needle: str) -> None:
    text = _builtin_text("a100-80gb")
    assert old in text
    path = tmp_path / "bad.toml"
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(ValueError, match=None) as info:
        perfmodel.get_gpu(str(path))
    assert needle in str(info.value)
    assert "bad.toml" in str(info.value)


def test_unknown_id_lists_choices() -> None:
    with pytest.raises(ValueError, match="valid choices: a100-40gb, a100-80gb, h100-pcie, h100-sxm, h20, h200"):
        perfmodel.get_gpu("rtx-9090")
