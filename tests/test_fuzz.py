"""Fuzzing every subcommand with broken inputs (issue #20): see tests/_fuzz.py for what a
case is and the contract each must keep. The default suite runs ``FUZZ_CASES`` cases in
this process (``main()`` with captured output) plus a few through the console script; the
slow run (``make test-slow``) runs ``FUZZ_CASES_SLOW`` more. Replay one case with
``python tests/_fuzz.py SEED``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _fuzz import check, make_case, run_case, run_cli, write_case

FUZZ_CASES = int(os.environ.get("RECPERF_FUZZ_CASES", "500"))
FUZZ_CASES_SLOW = int(os.environ.get("RECPERF_FUZZ_CASES_SLOW", "20000"))


def _warm_up() -> float:
    """Load (or compile, on a fresh checkout) the compiled simulators first, so that the time
    printed is the fuzzing's, not numba's one-off compilation; returns its seconds."""
    import numpy as np

    import perfmodel
    from perfmodel.sim import cache_sim

    t = time.perf_counter()
    tiny = perfmodel.Workload(batch_size=8, tables=(perfmodel.Table(rows=100, dim=32, pooling=2),))
    perfmodel.simulate(tiny, perfmodel.KernelConfig(), "a100-80gb")
    cache_sim(np.arange(10, dtype=np.int64), row_bytes=64, capacity_bytes=4096, ways=4)
    return time.perf_counter() - t


def _fuzz(first: int, n: int, tmp: Path) -> None:
    failures: list[str] = []
    warm = _warm_up()
    t0 = time.perf_counter()
    slowest = (0.0, -1)
    for seed in range(first, first + n):
        folder = tmp / f"case{seed}"
        case = make_case(seed, folder)
        t = time.perf_counter()
        problems = run_case(case, folder)
        dt = time.perf_counter() - t
        slowest = max(slowest, (dt, seed))
        if problems:
            failures.append(case.describe() + "\n  " + "\n  ".join(problems))
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler, f"seed {seed} left SIGINT changed"
    wall = time.perf_counter() - t0
    print(f"fuzz: {n} cases in {wall:.1f} s after a {warm:.1f}-s warm-up (slowest: seed {slowest[1]}, "
          f"{slowest[0]:.2f} s), {len(failures)} failing")
    assert not failures, f"{len(failures)} of {n} cases break the contract:\n\n" + "\n\n".join(failures[:15])


def test_fuzz_cli(tmp_path: Path) -> None:
    _fuzz(0, FUZZ_CASES, tmp_path)


@pytest.mark.slow
def test_fuzz_cli_long(tmp_path: Path) -> None:
    _fuzz(10**6, FUZZ_CASES_SLOW, tmp_path)


@pytest.mark.parametrize("seed", [3, 11, 29, 47])
def test_fuzz_cases_through_the_console_script(seed: int, tmp_path: Path) -> None:
    """A few cases run as a user runs them: the real exit status and streams of a process
    agree with the in-process run."""
    case = make_case(seed, tmp_path)
    write_case(case, tmp_path)
    inproc = run_cli(case.argv)
    proc = subprocess.run([sys.executable, "-m", "recperf", *case.argv], capture_output=True, text=True, timeout=300,
                          check=False)
    assert proc.returncode == inproc.status, (case.describe(), proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, case.describe()
    assert [line for line in proc.stderr.splitlines() if line.startswith("error:")] == [
        line for line in inproc.stderr.splitlines() if line.startswith("error:")], case.describe()
    assert not check(inproc), (case.describe(), check(inproc))
