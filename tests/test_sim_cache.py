"""The cache model behind `recperf cache-sim`: exact LRU against libCacheSim, the set-associative
sectored model against a plain-Python reference of its definition (docs/simulator.md)."""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perfmodel import InputError
from perfmodel._lru import lru_hit_counts
from perfmodel.sim import cache_sim, read_trace
from recperf.cli import main

TRACES = Path(__file__).resolve().parent.parent / "perfmodel" / "data" / "traces"
MASK64 = (1 << 64) - 1


def py_line_hash(line: int) -> int:
    """The model's hash (perfmodel/sim/_l2jit.py line_hash), in Python integers."""
    x = (line * 0x9E3779B97F4A7C15) & MASK64
    x ^= x >> 29
    x = (x * 0xBF58476D1CE4E5B9) & MASK64
    x ^= x >> 32
    return x & 0x7FFFFFFFFFFFFFFF


def py_set_assoc(rows: list[int], row_bytes: int, capacity_bytes: int, ways: int) -> tuple[int, int, int]:
    """Reference: sets of OrderedDicts (LRU), sector masks per line; (sector hits, sector accesses, row hits)."""
    n_sets = capacity_bytes // 128 // ways
    sets: list[OrderedDict[int, int]] = [OrderedDict() for _ in range(n_sets)]
    hits = acc = row_hits = 0
    for r in rows:
        s0, s1 = r * row_bytes // 32, (r * row_bytes + row_bytes - 1) // 32
        all_hit = True
        for line in range(s0 // 4, s1 // 4 + 1):
            mask = 0
            for s in range(max(s0, 4 * line), min(s1, 4 * line + 3) + 1):
                mask |= 1 << (s - 4 * line)
            st_ = sets[((py_line_hash(line) >> 31) * n_sets) >> 32]
            valid = st_.pop(line, None)
            if valid is None:
                valid = 0
                if len(st_) >= ways:
                    st_.popitem(last=False)
            got = bin(valid & mask).count("1")
            hits += got
            acc += bin(mask).count("1")
            all_hit &= got == bin(mask).count("1")
            st_[line] = valid | mask
        row_hits += all_hit
    return hits, acc, row_hits


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, object]:
    assert main([*args, "--json"]) == 0
    out: dict[str, object] = json.loads(capsys.readouterr().out)
    return out


@pytest.mark.parametrize("trace", ["reuse_low_500K.txt", "reuse_medium_500K.txt"])
def test_cli_fully_associative_lru_equals_libcachesim(trace: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Oracle: libCacheSim's LRU on the whole shared trace (the issue's 'done when')."""
    lcs = pytest.importorskip("libcachesim", reason="libcachesim (test extra) is the independent LRU oracle")
    ids = np.loadtxt(TRACES / trace, dtype=np.int64).tolist()
    for cap in (4096, 60_000):
        cache, req, hits = lcs.LRU(cache_size=cap), lcs.Request(), 0
        for x in ids:
            req.obj_id, req.obj_size = x, 1
            hits += bool(cache.get(req))
        got = run_cli(capsys, "cache-sim", "--trace", str(TRACES / trace), "--row-bytes", "512",
                      "--capacity-bytes", str(cap * 512), "--ways", "0")
        assert got["accesses"] == len(ids)
        assert got["hits"] == hits, f"{trace} capacity {cap}: ours {got['hits']}, libCacheSim {hits}"
        assert got["hit_rate"] == hits / len(ids)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=300), min_size=1, max_size=400),
    st.sampled_from([32, 96, 128, 200, 512]),
    st.sampled_from([1, 2, 4, 8]),
    st.integers(min_value=1, max_value=8),
)
def test_set_associative_lru_matches_reference(rows: list[int], row_bytes: int, ways: int, n_sets: int) -> None:
    cap = n_sets * ways * 128
    r = cache_sim(np.array(rows), row_bytes=row_bytes, capacity_bytes=cap, ways=ways)
    hits, acc, row_hits = py_set_assoc(rows, row_bytes, cap, ways)
    assert (r.sector_hits, r.sector_accesses) == (hits, acc), (rows, row_bytes, ways, n_sets)
    assert round(r.row_hit_rate * len(rows)) == row_hits


def test_one_set_is_fully_associative_lru_over_lines() -> None:
    """128-B rows are one line each; a single set of W ways is a fully associative LRU of W lines."""
    rng = np.random.default_rng(3)
    rows = (rng.zipf(1.2, 20_000) % 5000).astype(np.int64)
    for ways in (16, 64, 512):
        r = cache_sim(rows, row_bytes=128, capacity_bytes=ways * 128, ways=ways)
        assert r.sets == 1
        assert r.line_hits == int(lru_hit_counts(rows, [ways])[0])


@pytest.mark.parametrize("policy", ["lru", "srrip", "random"])
def test_every_policy_hits_all_reuses_when_everything_fits(policy: str) -> None:
    rng = np.random.default_rng(5)
    rows = rng.integers(0, 1000, 30_000)
    r = cache_sim(rows, row_bytes=128, capacity_bytes=1 << 20, ways=16, policy=policy)  # 8192 lines >> 1000
    # hashing may overfill a set; with 512 sets x 16 ways for 1000 lines that does not happen
    assert r.line_hits == len(rows) - len(np.unique(rows)), policy
    assert r.hits == 4 * r.line_hits  # a 128-B row is 4 sectors


def test_policies_differ_under_pressure_and_stay_in_range() -> None:
    rng = np.random.default_rng(9)
    rows = (rng.zipf(1.1, 50_000) % 20_000).astype(np.int64)
    rates = {p: cache_sim(rows, row_bytes=512, capacity_bytes=1 << 20, ways=16, policy=p).hit_rate
             for p in ("lru", "srrip", "random")}
    assert all(0.0 < v < 1.0 for v in rates.values()), rates
    assert len(set(rates.values())) == 3, rates


def test_read_trace_formats_and_errors(tmp_path: Path) -> None:
    t = tmp_path / "t.txt"
    t.write_text("5\n17\n\n3\r\n")
    assert read_trace(t).tolist() == [5, 17, 3]
    n = tmp_path / "t.npy"
    np.save(n, np.array([4, 2], dtype=np.int32))
    assert read_trace(n).tolist() == [4, 2]
    bad = tmp_path / "bad.txt"
    bad.write_text("1\n2\nx7\n")
    with pytest.raises(InputError, match="line 3"):
        read_trace(bad)
    with pytest.raises(InputError, match="cannot read"):
        read_trace(tmp_path / "missing.txt")


def test_cache_sim_input_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(InputError, match="ways >= 0"):
        cache_sim(np.array([1]), row_bytes=4, capacity_bytes=128, ways=-1)
    with pytest.raises(InputError, match="valid choices"):
        cache_sim(np.array([1]), row_bytes=4, capacity_bytes=1024, ways=2, policy="fifo")
    with pytest.raises(InputError, match="ways <= capacity_bytes // line_bytes <= 67108864"):
        cache_sim(np.array([1]), row_bytes=4, capacity_bytes=128, ways=4)
    t = tmp_path / "t.txt"
    t.write_text("1\n")
    with pytest.raises(SystemExit) as exc:
        main(["cache-sim", "--trace", str(t), "--row-bytes", "0", "--capacity-bytes", "1024", "--ways", "0"])
    assert exc.value.code == 2
    assert capsys.readouterr().err.startswith("error: `1 <= row_bytes <= 262144`")


def test_a_capacity_past_int64_is_an_infinite_cache_not_an_overflow() -> None:
    """Fully associative LRU with 1e20 bytes (fuzz seed 1008557 overflowed int64): every access
    after a row's first is a hit, as with any capacity of at least the accesses' rows."""
    rows = np.array([1, 2, 1, 3, 2])
    r = cache_sim(rows, row_bytes=4, capacity_bytes=10**20, ways=0)
    assert (r.hits, r.misses, r.capacity_rows) == (2, 3, 25 * 10**18)
    assert r.hits == cache_sim(rows, row_bytes=4, capacity_bytes=20, ways=0).hits
