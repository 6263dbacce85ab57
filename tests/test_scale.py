"""Production-size tables: the model's memory does not grow with the rows, a table larger than
the GPU is one error line, and a cold call's only access misses (issue #17).

Speed is measured by scripts/bench_scale.py, not here; these tests check behaviour under an
address-space limit that any per-row array of these tables would break.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import perfmodel
from perfmodel._indices import hot_rows, table_call, zipf_rank_to_row
from recperf.cli import main

_UNDER_A_LIMIT = r"""
import json, resource, sys
import perfmodel as pm
rows, kind, what = int(sys.argv[1]), sys.argv[2], sys.argv[3]
k = pm.KernelConfig(pinned_row_fraction=0.1, pin_method="access-policy-window")
run = {"predict": pm.predict, "simulate": pm.simulate}[what]

def workload(rows):
    return pm.Workload(batch_size=4096, tables=(pm.Table(rows=rows, dim=1, dtype="float16", pooling=40,
                       indices=pm.IndexDistribution(kind=kind, alpha=1.05)),))

run(workload(1000), k, "h200")  # load what any table needs (compiled code, shipped tables)
vm = int(open("/proc/self/status").read().split("VmSize:")[1].split()[0]) * 1024
limit = vm + (400 << 20)  # 400 MB more address space than the process uses for a 1,000-row table
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
p = run(workload(rows), k, "h200")
print(json.dumps({"time_s": p.time_s, "hit": p.l2_hit_rate}))
"""


def _run_limited(rows: int, kind: str, what: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", _UNDER_A_LIMIT, str(rows), kind, what], check=False,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-800:]
    got: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return got


@pytest.mark.parametrize("kind", ["zipf", "uniform"])
def test_predict_of_ten_billion_rows_needs_no_per_row_memory(kind: str) -> None:
    """1e10 rows of 2 bytes (20 GB, fits an H200): one int64 per row would be 80 GB."""
    got = _run_limited(10**10, kind, "predict")
    assert 0 < got["time_s"] < 1 and 0 <= got["hit"] <= 1


@pytest.mark.slow
def test_simulate_of_ten_billion_rows_needs_no_per_row_memory() -> None:
    got = _run_limited(10**10, "zipf", "simulate")
    assert 0 < got["time_s"] < 1 and 0 <= got["hit"] <= 1


def test_a_cold_one_row_table_read_once_misses() -> None:
    w = perfmodel.Workload(batch_size=1, tables=(perfmodel.Table(rows=1, dim=32, pooling=1),))
    p = perfmodel.predict(w, perfmodel.KernelConfig(), "a100-80gb")
    assert p.l2_hit_rate == 0.0
    assert p.breakdown["tables"][0]["l1_hit_rate"] == 0.0
    # read twice, the second read hits
    w2 = perfmodel.Workload(batch_size=1, tables=(perfmodel.Table(rows=1, dim=32, pooling=2),))
    assert perfmodel.predict(w2, perfmodel.KernelConfig(), "a100-80gb").l2_hit_rate == pytest.approx(0.5)


def test_a_trillion_row_table_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "huge.toml"
    p.write_text('batch_size = 4096\n[[tables]]\nrows = 1000000000000\ndim = 128\npooling = 40\n'
                 '[tables.indices]\nkind = "zipf"\n')
    for cmd in ("predict", "simulate"):
        with pytest.raises(SystemExit) as exit_:
            main([cmd, "--gpu", "h200", "--workload", str(p)])
        assert exit_.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error:") and "512,000.0 GB" in err[0], err
    w = perfmodel.load_workload(p)
    with pytest.raises(perfmodel.InputError, match="usable device memory"):
        perfmodel.predict_batch(w, [perfmodel.KernelConfig()], "h200")


def test_rank_to_row_is_exact_past_64_bit_products() -> None:
    """(a r + b) mod E with a r beyond 2^63: the doubling path against Python integers."""
    for rows in (10**10 + 7, 2**62 + 1):
        ranks = np.array([0, 1, 2, 12345, rows // 3, rows - 1], dtype=np.int64)
        got = zipf_rank_to_row(ranks, rows, seed=5)
        a = 2654435761 % rows
        while math.gcd(a, rows) != 1:
            a += 1
        b = int(zipf_rank_to_row(np.array([0]), rows, seed=5)[0])
        assert got.tolist() == [(a * int(r) + b) % rows for r in ranks]
    small = zipf_rank_to_row(np.arange(1000), 1000, seed=3)
    assert np.unique(small).size == 1000  # a bijection


def test_hottest_rows_of_a_huge_table_cost_what_is_asked() -> None:
    t = perfmodel.Table(rows=10**12, dim=4, pooling=1, indices=perfmodel.IndexDistribution(kind="zipf"))
    top = hot_rows(t, 1000)
    assert top.size == 1000 and np.unique(top).size == 1000 and top.max() < 10**12
    np.testing.assert_array_equal(top, zipf_rank_to_row(np.arange(1000), 10**12, 0))
    u = perfmodel.Table(rows=10**12, dim=4, pooling=1)
    assert hot_rows(u, 3).tolist() == [0, 1, 2]
    call = table_call(t, 256)
    assert call.indices.size == 256 and call.indices.max() < 10**12
