"""Index streams of a table call: traces (text, .npy, .pt), sampled distributions, hot rows."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import pytest

import perfmodel
from perfmodel._indices import hot_rows, load_trace, table_call

TRACES = Path(str(resources.files("perfmodel").joinpath("data/traces")))


def _trace_table(path: Path, rows: int = 500_000, pooling: int = 150) -> perfmodel.Table:
    return perfmodel.Table(rows=rows, dim=128, pooling=pooling,
                           indices=perfmodel.IndexDistribution(kind="trace", path=str(path)))


def test_bags_take_consecutive_runs_and_wrap_around(tmp_path: Path) -> None:
    p = tmp_path / "t.txt"
    p.write_text("\n".join(str(i) for i in [5, 6, 7, 8, 9]) + "\n")
    call = table_call(_trace_table(p, rows=10, pooling=3), 4)
    np.testing.assert_array_equal(call.indices, [5, 6, 7, 8, 9, 5, 6, 7, 8, 9, 5, 6])
    np.testing.assert_array_equal(call.offsets, [0, 3, 6, 9])


def test_shipped_trace_matches_its_readme() -> None:
    """perfmodel/data/README.md: 429,951 indices, 102,524 unique rows, top 60,000 get 87.7%."""
    trace = load_trace(TRACES / "reuse_medium_500K.txt")
    assert trace.size == 429_951 and np.unique(trace).size == 102_524
    counts = np.bincount(trace, minlength=500_000)
    top = hot_rows(_trace_table(TRACES / "reuse_medium_500K.txt"), 60_000)
    assert counts[top].sum() / trace.size == pytest.approx(0.877, abs=0.001)
    paper_top = np.loadtxt(TRACES / "reuse_medium_500K_top60K.txt", dtype=np.int64)
    assert counts[paper_top].sum() == counts[top].sum()  # same access mass (ties ordered differently)


def test_npy_trace_equals_text(tmp_path: Path) -> None:
    ids = np.random.default_rng(3).integers(0, 1000, 500)
    np.savetxt(tmp_path / "a.txt", ids, fmt="%d")
    np.save(tmp_path / "a.npy", ids)
    a = table_call(_trace_table(tmp_path / "a.txt", rows=1000, pooling=7), 30).indices
    b = table_call(_trace_table(tmp_path / "a.npy", rows=1000, pooling=7), 30).indices
    np.testing.assert_array_equal(a, b)


def test_dlrm_datasets_pt_file(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch", reason="reading Meta dlrm_datasets .pt files needs torch")
    lengths = torch.tensor([[2, 1, 3], [1, 1, 1]])  # 2 tables x 3 samples
    indices = torch.tensor([1, 2, 3, 4, 5, 6, 7, 8, 9])
    offsets = torch.tensor([0, 2, 3, 6, 7, 8])
    torch.save((indices, offsets, lengths), tmp_path / "d.pt")
    t = perfmodel.Table(rows=100, dim=8, pooling=1,
                        indices=perfmodel.IndexDistribution(kind="trace", path=str(tmp_path / "d.pt"), table=1))
    np.testing.assert_array_equal(table_call(t, 3).indices, [7, 8, 9])


def test_out_of_range_trace_index_is_reported(tmp_path: Path) -> None:
    p = tmp_path / "t.txt"
    p.write_text("1\n2\n50\n")
    with pytest.raises(ValueError, match="must be < rows=10, but position 2 holds 50"):
        table_call(_trace_table(p, rows=10, pooling=1), 3)


def test_bad_trace_file(tmp_path: Path) -> None:
    p = tmp_path / "t.txt"
    p.write_text("1\nabc\n")
    with pytest.raises(ValueError, match="decimal integer"):
        load_trace(p)


@pytest.mark.parametrize("kind", ["uniform", "zipf"])
def test_sampled_streams_are_reproducible_and_in_range(kind: str) -> None:
    t = perfmodel.Table(rows=5000, dim=16, pooling=10, indices=perfmodel.IndexDistribution(kind=kind, alpha=1.2))
    a = table_call(t, 64).indices
    table_call.cache_clear()
    b = table_call(t, 64).indices
    np.testing.assert_array_equal(a, b)
    assert a.min() >= 0 and a.max() < 5000


def test_zipf_hottest_rows_come_first() -> None:
    t = perfmodel.Table(rows=10_000, dim=16, pooling=50, indices=perfmodel.IndexDistribution(kind="zipf", alpha=1.2))
    idx = table_call(t, 512).indices
    counts = np.bincount(idx, minlength=10_000)
    hot = hot_rows(t)
    assert counts[hot[:10]].sum() > counts[hot[1000:1010]].sum() * 20
    assert np.unique(hot).size == 10_000


def test_variable_pooling_lengths() -> None:
    t = perfmodel.Table(rows=1000, dim=16, pooling_mean=12.0, pooling_dist="poisson")
    call = table_call(t, 2000)
    assert call.lengths.mean() == pytest.approx(12.0, rel=0.05)
    assert call.indices.size == call.lengths.sum()
