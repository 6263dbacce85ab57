"""Trace files read in chunks: heads, counts, ranks and digests against whole-file NumPy."""

from __future__ import annotations

import subprocess
import sys
from importlib import resources as ires
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perfmodel._errors import InputError
from perfmodel._traces import iter_trace_chunks, trace_counts, trace_digest, trace_head

TRACE = Path(str(ires.files("perfmodel").joinpath("data/traces/reuse_medium_500K.txt")))


def _whole(path: Path) -> np.ndarray:
    return np.loadtxt(path, dtype=np.int64)


@pytest.mark.parametrize("chunk", [1, 7, 1000, 1 << 23])
def test_chunks_reassemble_the_file(tmp_path: Path, chunk: int) -> None:
    ids = np.random.default_rng(0).integers(0, 10**12, 5000)
    txt = tmp_path / "t.txt"
    txt.write_text("\n".join(map(str, ids)) + "\n")
    npy = tmp_path / "t.npy"
    np.save(npy, ids)
    for p in (txt, npy):
        got = np.concatenate(list(iter_trace_chunks(p, chunk=chunk)))
        np.testing.assert_array_equal(got, ids)


def test_text_with_odd_whitespace(tmp_path: Path) -> None:
    p = tmp_path / "t.txt"
    p.write_bytes(b"\n\n3\r\n 4\t\n\t5 \n\n\n6")
    np.testing.assert_array_equal(np.concatenate(list(iter_trace_chunks(p, chunk=1))), [3, 4, 5, 6])
    p.write_bytes(b"\n\n3\r\n 4\t5\n6")  # one index per line (CONTRACT.md): two on line 4 are an error
    with pytest.raises(InputError, match=r"one index, but line 4 holds more: '4\\t5'"):
        list(iter_trace_chunks(p, chunk=1))


def test_bad_token_and_negative_index_are_located(tmp_path: Path) -> None:
    p = tmp_path / "bad.txt"
    p.write_text("1\n2\n1.5\n")
    with pytest.raises(InputError, match=r"decimal integer, but line 3 holds '1.5'"):
        trace_head(p, 10)
    p.write_text("1\n2\n-7\n")
    with pytest.raises(InputError, match="line 3 holds '-7'"):
        trace_counts(p)
    p.write_text("\n\n")
    with pytest.raises(InputError, match="holds no indices"):
        trace_head(p, 1)


def test_head_reads_only_what_the_call_needs_and_wraps() -> None:
    whole = _whole(TRACE)
    np.testing.assert_array_equal(trace_head(TRACE, 1000), whole[:1000])
    n = whole.size * 2 + 17
    np.testing.assert_array_equal(trace_head(TRACE, n), whole[np.arange(n) % whole.size])


def test_counts_and_ranks_match_a_whole_file_bincount() -> None:
    whole = _whole(TRACE)
    tc = trace_counts(TRACE)
    counts = np.bincount(whole)
    ids = np.nonzero(counts)[0]
    np.testing.assert_array_equal(tc.ids, ids)
    np.testing.assert_array_equal(tc.counts, counts[ids])
    assert tc.total == whole.size
    # hottest first by count, ties by id; then the rows the file never reads, by id
    rows = 500_000
    full = np.bincount(whole, minlength=rows)[:rows]
    order = np.lexsort((np.arange(rows), -full))
    np.testing.assert_array_equal(tc.hottest(rows, rows), order)
    np.testing.assert_array_equal(tc.hottest(1234, rows), order[:1234])
    np.testing.assert_array_equal(tc.rank_of(order[:50]), np.arange(50))


def test_digest_changes_with_the_content(tmp_path: Path) -> None:
    p = tmp_path / "t.txt"
    p.write_text("1\n2\n")
    d1 = trace_digest(p)
    p.write_text("1\n3\n")
    assert trace_digest(p) != d1
    assert trace_digest(p, table=1) != trace_digest(p)


_COUNT_UNDER_A_LIMIT = r"""
import resource, sys
import numpy as np
from perfmodel._traces import trace_counts
vm = int(open("/proc/self/status").read().split("VmSize:")[1].split()[0]) * 1024
limit = vm + (300 << 20)  # 300 MB more address space than the process has now
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
if sys.argv[2] == "chunked":
    c = trace_counts(sys.argv[1])
    print(c.total, c.ids.size)
else:  # the whole file at once, as the model did before
    ids, counts = np.unique(np.load(sys.argv[1]), return_counts=True)
    print(int(counts.sum()), ids.size)
"""


@pytest.mark.slow
def test_counting_a_trace_bigger_than_the_memory_limit(tmp_path: Path) -> None:
    """A 200 MB .npy trace (25 M indices) counted in a process allowed 300 MB more address
    space: whole-file counting runs out of memory, chunked counting does not."""
    rows, n = 1_000_000, 25_000_000
    big = tmp_path / "big.npy"
    arr = np.lib.format.open_memmap(big, mode="w+", dtype=np.int64, shape=(n,))
    rng = np.random.default_rng(1)
    for i in range(0, n, 5_000_000):
        arr[i : i + 5_000_000] = rng.integers(0, rows, 5_000_000)
    del arr
    runs = {how: subprocess.run([sys.executable, "-c", _COUNT_UNDER_A_LIMIT, str(big), how], check=False,
                                capture_output=True,
                                text=True, timeout=600) for how in ("whole", "chunked")}
    assert runs["whole"].returncode != 0 and "Memory" in runs["whole"].stderr, runs["whole"].stdout
    assert runs["chunked"].returncode == 0, runs["chunked"].stderr[-500:]
    total, distinct = map(int, runs["chunked"].stdout.split())
    assert total == n and 990_000 < distinct <= rows


def _scanner(data: bytes) -> np.ndarray | None:
    """The compiled scanner's answer (None where it refuses the text)."""
    from perfmodel.sim import _l2jit

    out = _l2jit.parse_ints(np.frombuffer(data, dtype=np.uint8))
    return None if (out.size == 2 and out[0] < 0) else out


@given(st.lists(st.one_of(
    st.integers(min_value=0, max_value=(1 << 63) - 1).map(lambda v: str(v).encode()),
    st.sampled_from([b"", b" ", b"007", b"3 4", b"-1", b"1.5", b"+2", b"\r", b"1\r", b"x", b"\t9 ",
                     b"99999999999999999999", b"9223372036854775808", b"1e3"]),
), max_size=30))
@settings(max_examples=400, deadline=None)
def test_the_plain_parser_agrees_with_the_compiled_scanner(lines: list[bytes]) -> None:
    """parse_trace_text's numpy path (no numba import) answers only text the scanner accepts,
    with the same indices; everything else goes to the scanner and its line-numbered error."""
    from perfmodel._traces import _parse_plain

    data = b"\n".join(lines)
    plain, ref = _parse_plain(data), _scanner(data)
    if plain is not None:
        assert ref is not None and np.array_equal(plain, ref)


def test_the_shipped_traces_take_the_plain_path_and_parse_as_the_scanner_does() -> None:
    from perfmodel._traces import _parse_plain

    data = (Path(str(ires.files("perfmodel"))) / "data" / "traces" / "reuse_medium_500K.txt").read_bytes()
    plain = _parse_plain(data)
    assert plain is not None and plain.size > 400_000
    assert np.array_equal(plain, _scanner(data))
    assert _parse_plain(b"1\n2 3\n") is None and _parse_plain(b"-4\n") is None
