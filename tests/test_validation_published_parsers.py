"""Parsers of the shipped gpu-benches measurement files (golden values read off the files)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

import perfmodel
from validation.published import parse_l2, parse_latency, parse_stream

BENCH = Path(perfmodel.__file__).parent / "data" / "gpu-benches"


def test_stream_read_column_and_block_sizes() -> None:
    rows = parse_stream(BENCH / "stream_a100_80.txt")
    # stream_a100_80.txt: block sizes 32..1024 in steps of 32; read column 85 ... 1769 GB/s
    assert [b for b, _ in rows] == list(range(32, 1025, 32))
    assert rows[0] == (32, 85e9)
    assert rows[-1] == (1024, 1769e9)
    rows40 = parse_stream(BENCH / "stream_a100_40.txt")
    assert rows40[7] == (256, 579e9)  # "256 27648 25.0 % | GB/s: 1473 579 ..."


def test_latency_footprints_in_kib_and_cycles_column() -> None:
    rows = parse_latency(BENCH / "latency_a100_80.txt")
    assert rows[0] == (1 * 1024, 36.0)
    assert rows[-1] == (340388 * 1024, 571.8)  # last row of latency_a100_80.txt
    assert all(b2 > b1 for (b1, _), (b2, _) in itertools.pairwise(rows))  # footprints grow
    h100 = parse_latency(BENCH / "latency_h100_pcie.txt")
    assert h100[-1] == (1529075 * 1024, 658.4)


def test_l2_footprint_and_effective_bandwidth() -> None:
    rows = parse_l2(BENCH / "l2-cache_a100_80.txt")
    assert rows[0][0] == 1536 * 1024 and rows[0][1] == pytest.approx(4315.9e9)
    assert rows[-1][0] == 4881920 * 1024 and rows[-1][1] == pytest.approx(1732.3e9)
    assert len(rows) == 85


@pytest.mark.parametrize("parser", [parse_stream, parse_latency, parse_l2])
def test_malformed_files_raise_input_error_with_the_line(parser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "bad.txt"
    f.write_text("32 3456 3 % | GB/s: 159\n  x 1410 1 25.5\n 512 kB  zz kB 12ms 0.0% 4315.9 GB/s\n")
    with pytest.raises(perfmodel.InputError):
        parser(f)


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(perfmodel.InputError, match="cannot read"):
        parse_latency(tmp_path / "nope.txt")
