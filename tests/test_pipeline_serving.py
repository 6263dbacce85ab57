"""Latency-bounded throughput: the queue simulation against M/D/1, DeepRecSys' findings, inputs."""

from __future__ import annotations

import numpy as np
import pytest

import perfmodel
from perfmodel import pipeline as pp
from perfmodel.pipeline._serving import _simulate


def test_queue_simulation_matches_md1() -> None:
    # one server, Poisson arrivals, deterministic service D: mean latency D + rho D / (2 (1 - rho)) (Pollaczek-Khinchine)
    rng = np.random.default_rng(1)
    n, d = 200_000, 1e-3
    for rho in (0.3, 0.6, 0.8):
        arrive = np.cumsum(rng.exponential(d / rho, n))
        lat = _simulate(arrive, np.ones(n, dtype=np.int64), 1, 1, [0.0, d], [0.0, d])
        expected = d + rho * d / (2 * (1 - rho))
        assert float(np.mean(lat[n // 10:])) == pytest.approx(expected, rel=0.04), rho


def test_queries_split_into_batches_spread_over_servers() -> None:
    # a query of 10 items in batches of 4 on 3 idle servers: batches of 4, 4, 2 in parallel
    lat = [0.0, 1.0, 2.0, 3.0, 4.0]
    out = _simulate(np.array([0.0]), np.array([10]), 4, 3, lat, lat)
    assert out[0] == pytest.approx(4.0)
    out = _simulate(np.array([0.0]), np.array([10]), 4, 1, lat, lat)  # one server: one after another
    assert out[0] == pytest.approx(4.0 + 4.0 + 2.0)


def test_query_size_distributions() -> None:
    rng = np.random.default_rng(0)
    q = pp.parse_query_sizes("normal:165:16")
    x = q.sample(10_000, rng)
    assert abs(float(np.mean(x)) - 165) < 1 and x.min() >= 1 and x.max() <= 1024
    assert set(pp.parse_query_sizes("list:1,16,256").sample(1000, rng).tolist()) == {1, 16, 256}
    assert pp.parse_query_sizes("fixed:64").sample(3, rng).tolist() == [64, 64, 64]
    for bad in ("normal:165", "weird:1", "fixed:0", "list:a,b"):
        with pytest.raises(perfmodel.InputError):
            pp.parse_query_sizes(bad)


@pytest.fixture(scope="module")
def rmc1_cpu() -> dict[str, object]:
    return pp.latency_bounded_throughput("rmc1", ["xeon-8280"], latency_target_s=25e-3, batch_sizes=[16, 64, 256],
                                         n_queries=1500)


def test_one_core_per_query_beats_the_whole_socket_at_small_batches(rmc1_cpu: dict[str, object]) -> None:
    # DeepRecSys: on a CPU, many small batches on separate cores (request parallelism) sustain more queries under
    # a tail-latency target than each batch spread over the socket (the fork-join and small-GEMM costs repeat)
    by = {(c["mode"], c["batch_size"]): c for c in rmc1_cpu["configs"]}  # type: ignore[attr-defined]
    assert by[("core-per-query", 16)]["throughput_samples_per_s"] > 2 * by[("socket", 16)]["throughput_samples_per_s"]
    best = rmc1_cpu["best"]
    assert isinstance(best, dict) and best["meets_target"] and best["tail_latency_s"] <= 25e-3
    assert best["throughput_samples_per_s"] == max(c["throughput_samples_per_s"] for c in rmc1_cpu["configs"])  # type: ignore[attr-defined]


def test_a_looser_target_never_serves_less(rmc1_cpu: dict[str, object]) -> None:
    loose = pp.latency_bounded_throughput("rmc1", ["xeon-8280"], latency_target_s=50e-3, batch_sizes=[16, 64, 256],
                                          n_queries=1500)
    tight = {(c["mode"], c["batch_size"]): c["queries_per_s"] for c in rmc1_cpu["configs"]}  # type: ignore[attr-defined]
    for c in loose["configs"]:
        assert c["queries_per_s"] >= tight[(c["mode"], c["batch_size"])] * (1 - 1e-9)


def test_bad_serving_inputs_name_the_rule() -> None:
    with pytest.raises(perfmodel.InputError, match="latency_target_s > 0"):
        pp.latency_bounded_throughput("rmc1", ["xeon-8280"], latency_target_s=0.0)
    with pytest.raises(perfmodel.InputError, match="percentile"):
        pp.latency_bounded_throughput("rmc1", ["xeon-8280"], latency_target_s=1e-2, percentile=100)
