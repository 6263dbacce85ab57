"""Exact LRU (perfmodel._lru): stack distances against brute force, hit counts against libCacheSim."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perfmodel import InputError
from perfmodel._lru import count_below, lru_hit_counts, lru_hit_rates, merged_hit_counts, stack_distances

TRACES = Path(__file__).resolve().parent.parent / "perfmodel" / "data" / "traces"


def brute_stack_distances(keys: list[int]) -> list[int]:
    """Move-to-front list: the distance is the key's position in the LRU stack."""
    stack: list[int] = []
    out = []
    for k in keys:
        if k in stack:
            pos = stack.index(k)
            out.append(pos)
            stack.pop(pos)
        else:
            out.append(-1)
        stack.insert(0, k)
    return out


def brute_lru_hits(keys: list[int], capacity: int) -> int:
    cache: OrderedDict[int, None] = OrderedDict()
    hits = 0
    for k in keys:
        if k in cache:
            hits += 1
            cache.move_to_end(k)
        else:
            if capacity == 0:
                continue
            if len(cache) >= capacity:
                cache.popitem(last=False)
            cache[k] = None
    return hits


def test_stack_distances_small_example() -> None:
    keys = np.array([1, 2, 3, 1, 1, 2, 4, 3], dtype=np.int64)
    # 1: -1; 2: -1; 3: -1; 1: {2,3} -> 2; 1: 0; 2: {3,1} -> 2; 4: -1; 3: {1,2,4} -> 3
    assert stack_distances(keys).tolist() == [-1, -1, -1, 2, 0, 2, -1, 3]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=-5, max_value=40), max_size=300))
def test_stack_distances_match_brute_force(keys: list[int]) -> None:
    assert stack_distances(np.array(keys, dtype=np.int64)).tolist() == brute_stack_distances(keys), keys


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=60), max_size=400),
    st.lists(st.integers(min_value=0, max_value=70), min_size=1, max_size=5),
)
def test_hit_counts_match_ordered_dict_lru(keys: list[int], caps: list[int]) -> None:
    got = lru_hit_counts(np.array(keys, dtype=np.int64), np.array(caps)).tolist()
    assert got == [brute_lru_hits(keys, c) for c in caps], (keys, caps)


def test_large_sparse_keys_are_renumbered() -> None:
    rng = np.random.default_rng(1)
    base = rng.integers(0, 50, 2000)
    keys = base * (1 << 40) - (1 << 45)  # huge and negative ids, same reuse pattern
    assert np.array_equal(stack_distances(keys), stack_distances(base))


def test_inputs_are_checked() -> None:
    with pytest.raises(InputError, match="1-D"):
        stack_distances(np.zeros((2, 2), dtype=np.int64))
    with pytest.raises(InputError, match="integers"):
        stack_distances(np.array([0.5, 1.5]))
    with pytest.raises(InputError, match="capacities >= 0"):
        lru_hit_counts(np.array([1, 2, 1]), [-1])
    assert stack_distances(np.array([], dtype=np.int64)).size == 0
    assert lru_hit_rates(np.array([], dtype=np.int64), [4]).tolist() == [0.0]


@pytest.mark.parametrize("trace", ["reuse_low_500K.txt", "reuse_medium_500K.txt"])
def test_hit_counts_equal_libcachesim_on_shared_traces(trace: str) -> None:
    """Oracle: libCacheSim's LRU (an independent C implementation) on a prefix of each real trace."""
    lcs = pytest.importorskip("libcachesim", reason="libcachesim (test extra) is the independent LRU oracle")
    ids = np.loadtxt(TRACES / trace, dtype=np.int64)[:120_000]
    caps = [1, 512, 4096, 60_000]
    ours = lru_hit_counts(ids, caps)
    for cap, got in zip(caps, ours.tolist(), strict=True):
        cache, req, hits = lcs.LRU(cache_size=cap), lcs.Request(), 0
        for x in ids.tolist():
            req.obj_id, req.obj_size = x, 1
            hits += bool(cache.get(req))
        assert got == hits, f"{trace} capacity {cap}: ours {got}, libCacheSim {hits}"


def test_facts_reuse_medium_figures() -> None:
    """FACTS.md section 4: first 307,200 indices of reuse_medium, exact LRU 67.7% at 4,096 rows, 73.8% at 60K."""
    ids = np.loadtxt(TRACES / "reuse_medium_500K.txt", dtype=np.int64)[:307_200]
    rates = lru_hit_rates(ids, [4096, 60_000])
    assert rates[0] == pytest.approx(0.677, abs=0.0005)
    assert rates[1] == pytest.approx(0.738, abs=0.0005)


def _merged_reference(stream: list[int], capacity: int, window: int) -> int:
    """Hits under a miss by definition: replay an LRU list, remember each key's latest miss."""
    lru: list[int] = []
    last_miss: dict[int, int] = {}
    merged = 0
    for t, key in enumerate(stream):
        if key in lru:
            hit = lru.index(key) < capacity  # position 0 = most recent: the stack distance
            lru.remove(key)
        else:
            hit = False
        lru.insert(0, key)
        if hit:
            merged += t - last_miss[key] < window
        else:
            last_miss[key] = t
    return merged


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 12), min_size=1, max_size=120), st.integers(1, 14), st.integers(1, 40))
def test_merged_hits_match_their_definition(stream: list[int], capacity: int, window: int) -> None:
    d = stack_distances(stream)
    got = merged_hit_counts(stream, d, [capacity], window)[0]
    assert got == _merged_reference(stream, capacity, window), (stream, capacity, window)


def test_merged_hits_worked_example() -> None:
    """Row 7 misses at 0, is hit at 1 and 2 while in flight (window 3), then at 10 when it has
    arrived; 5's hits at 5 and 6 wait for its miss at 4. At capacity 1 the reuse of 7 at 10
    (distance 2) misses, and the merged hits stay the same four."""
    stream = np.array([7, 7, 7, 9, 5, 5, 5, 5, 5, 5, 7])
    assert merged_hit_counts(stream, stack_distances(stream), [1, 10], 3).tolist() == [4, 4]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-1, 50), max_size=200), st.lists(st.integers(0, 60), min_size=1, max_size=10))
def test_count_below_is_a_count(values: list[int], caps: list[int]) -> None:
    got = count_below(np.array(values, dtype=np.int64), np.array(caps, dtype=np.int64))
    assert got.tolist() == [sum(0 <= v < c for v in values) for c in caps]
