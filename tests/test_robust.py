"""Issue #20, "Nothing lost, no traceback": one test (or more) per item of the issue, each
failing before its fix. Items are numbered as in the issue; the fuzzer over every
subcommand is tests/test_fuzz.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from _fuzz import Result, run_cli

import perfmodel
from perfmodel._interrupt import interruptible

ROOT = Path(__file__).resolve().parent.parent


def one_error(res: Result, *needles: str) -> str:
    """The single ``error:`` line of a run that must exit 2 (no traceback), holding ``needles``."""
    assert res.escaped is None, res.escaped
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert res.status == 2 and len(errors) == 1, (res.status, res.stderr[-2000:])
    assert "Traceback" not in res.stderr
    for n in needles:
        assert n in errors[0], (n, errors[0])
    return errors[0]


def write(path: Path, text: str | bytes) -> str:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return str(path)


WORKLOAD = 'batch_size = 512\n[[tables]]\nrows = 200000\ndim = 64\npooling = 20\n[tables.indices]\nkind = "zipf"\n'
#: a simulation that runs for seconds in the compiled event loop (3 M rows, 245,760 lookups)
LONG_WORKLOAD = 'batch_size = 4096\n[[tables]]\nrows = 3000000\ndim = 128\npooling = 60\n[tables.indices]\nkind = "uniform"\n'

# ---- interrupts (items 4, 5; the CLI's one signal path) -------------------------------------

#: runs a recperf command in a child; ``delay_s`` after the first compiled simulation call
#: starts, a timer thread sends the child SIGINT (or SIGTERM), so the signal lands while
#: numba runs, the case that crashed (item 4: exit 139; item 5: SystemError traceback)
_INTERRUPTER = textwrap.dedent("""
    import os, signal, sys, threading, time
    import perfmodel.sim._timing as timing
    from perfmodel.sim import _desjit
    import perfmodel
    sig, delay = getattr(signal, sys.argv[1]), float(sys.argv[2])
    # load (or compile) the simulator's numba code first: the signal must land in the event loop
    tiny = perfmodel.Workload(batch_size=8, tables=(perfmodel.Table(rows=100, dim=32, pooling=2),))
    perfmodel.simulate(tiny, perfmodel.KernelConfig(), "a100-80gb")
    real = _desjit.simulate_call
    sent = []
    def call(*a, **k):
        if not sent:
            sent.append(time.monotonic() + delay)
            threading.Timer(delay, os.kill, (os.getpid(), sig)).start()
        return real(*a, **k)
    _desjit.simulate_call = call
    from recperf.cli import main
    status = main(sys.argv[3:])
    print(f"signal-to-exit {time.monotonic() - sent[0]:.3f}" if sent else "no simulation", file=sys.stderr)
    sys.exit(status)
""")


def _interrupt(tmp_path: Path, argv: list[str], sig: str = "SIGINT", delay_s: float = 1.0) -> tuple[int, list[str], float]:
    script = write(tmp_path / "interrupter.py", _INTERRUPTER)
    proc = subprocess.run([sys.executable, script, sig, str(delay_s), *argv], capture_output=True, text=True,
                          timeout=600, check=False, cwd=tmp_path)
    lines = proc.stderr.splitlines()
    lag = [float(x.split()[1]) for x in lines if x.startswith("signal-to-exit")]
    return proc.returncode, [x for x in lines if not x.startswith("signal-to-exit")], lag[0] if lag else -1.0


def test_item04_ctrl_c_during_simulate_exits_130_with_one_line(tmp_path: Path) -> None:
    """Item 4: Ctrl-C inside the compiled event loop: exit 130, one ``interrupted`` line, at
    once (was: a segmentation fault, exit 139, 5 of 5 runs)."""
    w = write(tmp_path / "w.toml", LONG_WORKLOAD)
    status, stderr, lag = _interrupt(tmp_path, ["simulate", "--gpu", "a100-80gb", "--workload", w])
    assert status == 130, (status, stderr)
    assert stderr == ["interrupted"], stderr
    assert 0 <= lag < 2.0, f"{lag:.2f} s from the signal to the exit (the loop polls its flag between chunks)"


def test_sigterm_takes_the_same_path(tmp_path: Path) -> None:
    """The one signal path: SIGTERM (a job scheduler's stop) ends like Ctrl-C, 128 + 15."""
    w = write(tmp_path / "w.toml", LONG_WORKLOAD)
    status, stderr, _lag = _interrupt(tmp_path, ["simulate", "--gpu", "a100-80gb", "--workload", w], "SIGTERM")
    assert status == 143 and stderr == ["interrupted"], (status, stderr)


def test_item05_ctrl_c_during_the_simulator_rerank_of_a_search(tmp_path: Path) -> None:
    """Item 5: Ctrl-C while ``search --fidelity sim`` re-ranks with the simulator: exit 130,
    one line (was: a 50-line ``SystemError: CPUDispatcher(...) returned a result with an
    exception set`` traceback)."""
    w = write(tmp_path / "w.toml", LONG_WORKLOAD)
    status, stderr, lag = _interrupt(tmp_path, [
        "search", "--gpu", "a100-80gb", "--workload", w, "--fidelity", "sim", "--trials", "4", "--top-k", "3",
        "--storage", str(tmp_path / "s.db"), "--no-progress", "--no-report"], delay_s=1.0)
    assert status == 130, (status, stderr[-30:])
    assert stderr == ["interrupted"], stderr[-30:]
    assert 0 <= lag < 2.0


def test_interruptible_defers_the_signal_to_check() -> None:
    """The stop flag itself: inside ``interruptible()`` a SIGINT only sets the flag; ``check()``
    raises it from Python; the handlers are back afterwards; nested blocks share one flag."""
    before = signal.getsignal(signal.SIGINT)
    raised = []
    try:
        with interruptible(), interruptible() as inner:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # the Python-level handler runs here: it only sets the flag
            raised.append("not yet")
            inner()  # the inner block's check sees the outer flag
            raised.append("check() did not raise")
    except KeyboardInterrupt:
        raised.append("raised by check()")
    assert raised == ["not yet", "raised by check()"]
    assert signal.getsignal(signal.SIGINT) is before
    with interruptible() as check:  # nothing pending: check is a no-op
        check()


def test_interruptible_outside_the_main_thread_changes_nothing() -> None:
    seen: list[object] = []

    def worker() -> None:
        with interruptible() as check:
            check()
            seen.append(signal.getsignal(signal.SIGINT))

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert seen == [signal.default_int_handler]


def _sim_args(chunk: int, check: object = None, validation: int = 0) -> tuple[tuple[object, ...], dict[str, object]]:
    """The arguments of a small table call of the simulator's compiled kernel: 256 bags of 16
    lookups of 256-B rows, the ``pytorch`` mapping (2 units of 128 B per bag), 16 SMs."""
    from perfmodel._indices import table_call
    from perfmodel.sim import _desjit

    table = perfmodel.Table(rows=20_000, dim=64, pooling=16, indices=perfmodel.IndexDistribution(kind="zipf"))
    call = table_call(table, 256)
    idx = np.ascontiguousarray(call.indices, dtype=np.int64)
    starts = np.ascontiguousarray(call.offsets[:256], dtype=np.int64)
    lens = np.ascontiguousarray(call.lengths[:256], dtype=np.int64)
    fp = np.array([200.0, 300.0, 500.0, 0.05, 0.2, 30.0, 1.0])  # latencies, service times, fetch sectors
    assert fp.size == _desjit.N_FP
    args = (idx, starts, lens,
            256, 128, 2, 128, 1,  # row bytes, unit bytes, units per bag, pass bytes, passes
            64, 8, 2, 16,  # blocks, warps per block, blocks per SM, SMs
            30.0, 7.5, 24.0, 3, 0,  # issue cycles (warp, SM), dependent cycles, window, hint
            1, validation, 20.0,  # the row address waits for its index; the validation loop; block start
            fp, 12, 4, 256, 16, 2, 1, 12, 0,  # L1 sets/ways, L2 sets/ways, partitions, duplicate, quota, LRU
            np.zeros(20_000, dtype=np.uint8), 1, 1,  # persisting rows, access-policy window, seed
            np.zeros(0, np.int64), np.zeros(0, np.int64), idx[:500])  # pinned lines, masks; warm-up rows
    kw: dict[str, object] = {"chunk": chunk}
    if check is not None:
        kw["check"] = check
    return args, kw


def test_the_chunked_event_loop_gives_the_same_answer_at_any_chunk_size() -> None:
    """The event loop and the warm-up run in chunks between which Python polls the stop
    flag; the split must not change a single figure."""
    from perfmodel.sim import _desjit

    for validation in (0, 1):  # with and without the in-kernel validation loop's index passes
        results = []
        for chunk in (1 << 16, 997, 1):
            args, kw = _sim_args(chunk, validation=validation)
            end, cnt, hist, smf, sml = _desjit.simulate_call(*args, **kw)
            results.append((end, cnt.tolist(), hist.tolist(), smf.tolist(), sml.tolist()))
        assert results[0] == results[1] == results[2]
        assert results[0][1][_desjit.C_LOOKUPS] == 256 * 16 * 2


def test_the_event_loop_stops_at_the_first_check_that_raises() -> None:
    from perfmodel.sim import _desjit

    calls = []

    def check() -> None:
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt

    args, kw = _sim_args(100, check)
    with pytest.raises(KeyboardInterrupt):
        _desjit.simulate_call(*args, **kw)
    assert len(calls) == 3


# ---- sizes and numbers (items 9, 10, 11) ------------------------------------------------------


@pytest.mark.parametrize(("text", "needle"), [
    ("1\n18446744073709551617\n", "below 2**63, but line 2 holds '18446744073709551617'"),
    ("9223372036854775808\n1\n", "below 2**63, but line 1 holds '9223372036854775808'"),
    ("1 2 3\n4\n", "one index, but line 1 holds more: '1 2 3'"),
    ("1\n-4\n", "line 2 holds '-4'"),
    ("1\n2.5\n", "line 2 holds '2.5'"),
])
def test_item09_cache_sim_trace_integers(tmp_path: Path, text: str, needle: str) -> None:
    """Item 9 (cache-sim): an index beyond int64 wrapped to row 1 (hit rate 0.5 instead of 0),
    2**63 read as -2**63, and ``1 2 3`` counted as three accesses; each is now one error
    naming the line."""
    t = write(tmp_path / "t.txt", text)
    one_error(run_cli(["cache-sim", "--trace", t, "--row-bytes", "128", "--capacity-bytes", "1048576", "--ways", "0"]),
              needle)


def test_item09_the_scanner_reads_what_python_reads(tmp_path: Path) -> None:
    from perfmodel.sim import read_trace

    rng = np.random.default_rng(0)
    vals = [int(v) for v in rng.integers(0, 2**63 - 1, 2000, dtype=np.int64)] + [0, 2**63 - 1]
    t = write(tmp_path / "t.txt", "".join(f"{' ' * (i % 3)}{v}\r\n" if i % 2 else f"{v}\n\n" for i, v in enumerate(vals)))
    assert read_trace(t).tolist() == vals


@pytest.mark.parametrize(("text", "needle"), [
    ("1\n18446744073709551617\n", "an index below 2**63, but line 2 holds '18446744073709551617'"),
    ("1 2 3\n4\n", "one index, but line 1 holds more: '1 2 3'"),
    ("1\n+4\n", "line 2 holds '+4'"),
])
def test_item09_workload_trace_integers(tmp_path: Path, text: str, needle: str) -> None:
    """Item 9 (workload traces): an index beyond int64 was an ``OverflowError`` traceback (then,
    read by NumPy, clamped to 2**63 - 1), and ``1 2 3`` three accesses."""
    t = write(tmp_path / "t.txt", text)
    w = write(tmp_path / "w.toml", f'batch_size = 2\n[[tables]]\nrows = 100\ndim = 32\npooling = 2\n'
                                   f'[tables.indices]\nkind = "trace"\npath = "{t}"\n')
    one_error(run_cli(["predict", "--gpu", "a100-80gb", "--workload", w]), needle)


def test_item09_workload_traces_read_in_chunks_see_whole_lines(tmp_path: Path) -> None:
    """Chunks end at a line's end, so a line is never split into two valid ones."""
    from perfmodel._traces import iter_trace_chunks

    vals = list(range(0, 3_000_000, 7))
    t = tmp_path / "t.txt"
    t.write_text("".join(f"{v}\n" for v in vals))
    assert np.concatenate(list(iter_trace_chunks(t, chunk=1024))).tolist() == vals
    t.write_text("".join(f"{v}\n" for v in vals[:5000]) + "12 34\n" + "".join(f"{v}\n" for v in vals[:5000]))
    with pytest.raises(perfmodel.InputError, match="line 5001 holds more: '12 34'"):
        list(iter_trace_chunks(t, chunk=1024))


def test_item10_huge_row_bytes_is_an_error_not_a_hang(tmp_path: Path) -> None:
    """Item 10: ``--row-bytes 99999999999999 --ways 16`` walked 10**12 lines per access."""
    t = write(tmp_path / "t.txt", "1\n2\n")
    t0 = time.perf_counter()
    one_error(run_cli(["cache-sim", "--trace", t, "--row-bytes", "99999999999999", "--capacity-bytes", "1048576",
                       "--ways", "16"]), "row_bytes <= 262144")
    assert time.perf_counter() - t0 < 10
    # the byte address of the last row must fit too
    one_error(run_cli(["cache-sim", "--trace", write(tmp_path / "t2.txt", f"{2**60}\n"), "--row-bytes", "64",
                       "--capacity-bytes", "4096", "--ways", "4"]), "(row id + 1) * row_bytes < 2**63")


def test_item11_no_resident_block_is_one_error_in_predict_pipeline_and_simulate(tmp_path: Path) -> None:
    """Item 11: warp, block 1024, prefetch 16, separate check (96 registers) fits no block on
    an A100 SM: predict gave ``inf us`` and pipeline ``inf us``, ``nan%`` with exit 0."""
    w = write(tmp_path / "w.toml", WORKLOAD)
    k = write(tmp_path / "k.toml",
              'variant = "warp"\nblock_size = 1024\nprefetch_distance = 16\nbounds_check = "separate"\n')
    rule = "resident blocks per SM >= 1"
    one_error(run_cli(["predict", "--gpu", "a100-80gb", "--workload", w, "--kernel", k]), rule, "1024")
    one_error(run_cli(["predict", "--gpu", "a100-80gb", "--workload", w, "--kernel", k, "--json"]), rule)
    one_error(run_cli(["simulate", "--gpu", "a100-80gb", "--workload", w, "--kernel", k]), rule)
    one_error(run_cli(["pipeline", "--model", "rmc1", "--device", "a100-80gb", "--batch-size", "64",
                       "--embedding-config", k]), rule)
    # the vectorized model (search) still scores it as infeasible
    kern = perfmodel.load_kernel_config(k)
    assert perfmodel.predict_batch(perfmodel.load_workload(w), [kern], "a100-80gb")[0] == float("inf")


# ---- silently ignored or unchecked values (item 13) ---------------------------------------


@pytest.mark.parametrize(("argv", "needle"), [
    (["micro", "--gpu", "a100-80gb", "--kind", "stream-read", "--block-size", "256", "--blocks-per-sm", "100"],
     "1 <= blocks_per_sm <= 8"),
    (["micro", "--gpu", "a100-80gb", "--kind", "pointer-chase", "--footprint-bytes", "1e20"],
     "footprint_bytes <= 85899345920"),
    (["micro", "--gpu", "a100-80gb", "--kind", "l2-read", "--footprint-bytes", "100000000000000000000"],
     "footprint_bytes <= 85899345920"),
    (["occupancy", "--gpu", "a100-80gb", "--block-size", "256", "--registers", "32", "--smem-bytes", "150000",
      "--static-smem-bytes", "40000"], "shared_mem_bytes + static_shared_mem_bytes <= 166912"),
    (["occupancy", "--gpu", "a100-80gb", "--block-size", "256", "--registers", "32", "--static-smem-bytes", "60000"],
     "static_shared_mem_bytes <= 49152"),
])
def test_item13_values_that_were_silently_ignored(argv: list[str], needle: str) -> None:
    """Item 13: ``micro --blocks-per-sm 100`` was clamped to what fits, ``--footprint-bytes
    1e20`` accepted, and shared memory over the per-block limit reported as 0 blocks."""
    one_error(run_cli(argv), needle)


# ---- errors that must name the file or the rule (item 14) ---------------------------------


def test_item14_binary_inputs_name_the_file(tmp_path: Path) -> None:
    """Item 14: a binary TOML or JSONL file gave ``'utf-8' codec can't decode byte 0xec ...``."""
    junk = bytes(range(256)) * 2
    w = write(tmp_path / "w.toml", WORKLOAD)
    b = write(tmp_path / "bin.toml", b"batch_size = 1\n\xec\xff" + junk)
    one_error(run_cli(["predict", "--gpu", "a100-80gb", "--workload", b]), "workload file", "bin.toml",
              "must be UTF-8 text", "line 2")
    one_error(run_cli(["predict", "--gpu", "a100-80gb", "--workload", w, "--kernel", b]), "kernel config file", "bin.toml")
    one_error(run_cli(["predict", "--gpu", b, "--workload", w]), "bin.toml")
    m = write(tmp_path / "m.jsonl", b'{"gpu": "a100-80gb"}\n\xec\xff\n')
    one_error(run_cli(["validate", "report", "--measurements", m]), "measurement file", "m.jsonl", "UTF-8")
    one_error(run_cli(["predict", "--gpu", "a100-80gb", "--workload", write(tmp_path / "nul.toml", b"a = 1\x00")]),
              "byte 5 (line 1) is 0x00")


def test_item14_a_folder_where_a_file_belongs(tmp_path: Path) -> None:
    """Item 14: a trace path that is a folder said "does not exist"."""
    w = write(tmp_path / "w.toml", f'batch_size = 8\n[[tables]]\nrows = 100\ndim = 32\npooling = 2\n'
                                   f'[tables.indices]\nkind = "trace"\npath = "{tmp_path}"\n')
    one_error(run_cli(["predict", "--gpu", "a100-80gb", "--workload", w]), "it is a folder")
    one_error(run_cli(["predict", "--gpu", "a100-80gb", "--workload", str(tmp_path)]), "workload file", "it is a folder")
    one_error(run_cli(["validate", "report", "--measurements", str(tmp_path)]), "it is a folder")
    one_error(run_cli(["cache-sim", "--trace", str(tmp_path), "--row-bytes", "4", "--capacity-bytes", "64",
                       "--ways", "0"]), "trace")


@pytest.mark.parametrize(("argv", "needle"), [
    (["simulate", "--gpu", "a100-80gb", "--workload", "W", "--max-line-requests", "nan"],
     "argument --max-line-requests: must be an integer, but got 'nan'"),
    (["simulate", "--gpu", "a100-80gb", "--workload", "W", "--max-line-requests", "-5"], "max_line_requests >= 0"),
    (["occupancy", "--gpu", "a100-80gb", "--block-size", "1e20", "--registers", "32"], "block_size <= 1024"),
    (["occupancy", "--gpu", "a100-80gb", "--block-size", "2.5", "--registers", "32"], "must be an integer, but got '2.5'"),
    (["pipeline", "--model", "rmc1", "--device", "a100-80gb", "--batch-size", "64", "--latency-target-ms", "inf"],
     "must be a finite number, but got 'inf'"),
    (["search", "--gpu", "a100-80gb", "--workload", "W", "--seed", "1e20", "--storage", ":memory:"],
     "`0 <= seed <= 4294967295` must hold, but got seed=100000000000000000000"),
])
def test_item14_number_arguments_name_the_rule_and_the_value(tmp_path: Path, argv: list[str], needle: str) -> None:
    """Item 14: ``--max-line-requests nan`` said ``cannot convert float NaN to integer``."""
    w = write(tmp_path / "w.toml", WORKLOAD)
    one_error(run_cli([w if a == "W" else a for a in argv]), needle)


def test_integer_arguments_accept_exponent_form() -> None:
    from recperf._common import integer

    assert integer("1e9") == 10**9
    assert integer("1_000") == 1000
    assert integer(" 12 ") == 12
    assert integer("99999999999999999999") == 99999999999999999999
    for bad in ("nan", "inf", "1.5", "", "x", "1e-3"):
        with pytest.raises(Exception, match="must be an integer"):
            integer(bad)


# ---- storages (items 1, 7, 15) ----------------------------------------------------------------


def _search(w: str, storage: str, trials: int, *more: str) -> Result:
    return run_cli(["search", "--gpu", "a100-80gb", "--workload", w, "--sampler", "tpe", "--trials", str(trials),
                    "--storage", storage, "--study-name", "t", "--seed", "0", "--no-progress", "--no-report",
                    "--json", *more])


def _journal_complete(path: str) -> int:
    import optuna
    from optuna.storages.journal import JournalFileBackend

    study = optuna.load_study(study_name="t", storage=optuna.storages.JournalStorage(JournalFileBackend(path)))
    return sum(t.state.name == "COMPLETE" for t in study.trials)


def test_item01_a_torn_journal_is_cut_before_appending(tmp_path: Path) -> None:
    """Item 1: a journal whose last record a killed writer cut short. ``search`` appended onto
    the partial line, failed with ``Expecting ':' delimiter``, and the study was unreadable
    afterwards, by Optuna too. Now the partial record is cut (one warning line) and the
    search continues; every complete trial is kept."""
    w = write(tmp_path / "w.toml", WORKLOAD)
    j = str(tmp_path / "j.log")
    assert _search(w, j, 12).status == 0
    before = _journal_complete(j)
    data = Path(j).read_bytes()
    Path(j).write_bytes(data[:-20])  # the last record torn, as by a SIGKILL mid-write
    res = _search(w, j, 5)
    assert res.status == 0 and res.escaped is None, res.stderr[-2000:]
    warn = [line for line in res.stderr.splitlines() if line.startswith("warning:")]
    assert len(warn) == 1 and "cut short" in warn[0] and "j.log" in warn[0], res.stderr
    after = _journal_complete(j)  # Optuna reads the whole file again
    assert after >= before - 1 + 5, (before, after)  # at most the torn record's trial lost, then 5 more
    assert Path(j).read_bytes().endswith(b"\n")


def test_repair_journal_cuts_only_a_partial_last_line(tmp_path: Path) -> None:
    from search._storage import PidSymlinkLock, StorageWarning, repair_journal

    p = tmp_path / "j.log"
    p.write_bytes(b'{"a": 1}\n{"b": 2}\n')
    assert repair_journal(str(p), PidSymlinkLock(str(p))) == 0 and p.read_bytes() == b'{"a": 1}\n{"b": 2}\n'
    p.write_bytes(b'{"a": 1}\n' + b"x" * 200_000)  # a partial line longer than one read block
    with pytest.warns(StorageWarning, match="200000 bytes"):
        assert repair_journal(str(p), PidSymlinkLock(str(p))) == 200_000
    assert p.read_bytes() == b'{"a": 1}\n'
    p.write_bytes(b'{"only": "partial')
    with pytest.warns(StorageWarning):
        repair_journal(str(p), PidSymlinkLock(str(p)))
    assert p.read_bytes() == b""
    assert not os.path.lexists(str(p) + ".lock")  # released


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_item07_a_lock_of_a_dead_process_is_broken_at_once(tmp_path: Path) -> None:
    """Item 7: after a SIGKILL on a journal storage the re-run waited 30 s on the lock file
    the killed process held. The lock names its holder (host:pid); a holder of this host
    that is gone is detected and the lock broken at once."""
    import socket

    from search._storage import PidSymlinkLock

    w = write(tmp_path / "w.toml", WORKLOAD)
    j = str(tmp_path / "j.log")
    assert _search(w, j, 3).status == 0
    os.symlink(f"{PidSymlinkLock.PREFIX}{socket.gethostname()}:{_dead_pid()}:deadbeef", j + ".lock")
    t0 = time.monotonic()
    res = _search(w, j, 2)
    assert res.status == 0, res.stderr[-2000:]
    assert time.monotonic() - t0 < 20  # the search itself; the lock wait was 30 s
    assert not os.path.lexists(j + ".lock")


def test_a_lock_of_a_live_process_is_waited_for(tmp_path: Path) -> None:
    """The other side of item 7: a live holder (this process) is not broken before the grace
    period; a lock of unknown form (stock Optuna's) is broken after it."""
    from search._storage import PidSymlinkLock

    j = str(tmp_path / "j.log")
    holder = PidSymlinkLock(j)
    assert holder.acquire()
    got: list[float] = []
    waiter = PidSymlinkLock(j, grace_period_s=60)
    t = threading.Thread(target=lambda: got.append(time.monotonic()) if waiter.acquire() else None, daemon=True)
    t.start()
    time.sleep(0.5)
    assert not got  # still waiting
    holder.release()
    t.join(5)
    assert got
    waiter.release()
    os.symlink(j, j + ".lock")  # stock Optuna's link: the journal's own path, no holder named
    t0 = time.monotonic()
    assert PidSymlinkLock(j, grace_period_s=0.3).acquire()
    assert 0.3 <= time.monotonic() - t0 < 5


@pytest.mark.parametrize(("kind", "needle"), [
    ("text", "not an Optuna study database or is damaged"),
    ("header", "not an Optuna study database or is damaged"),
    ("truncated", "is damaged (database disk image is malformed)"),
    ("mysql", "needs the database driver"),
    ("nosuch", "unsupported URL scheme 'nosuch'"),
    ("postgres", "cannot be used"),
    ("readonly", "cannot be used"),
    ("nofolder", "folder '/proc/recperf-none' cannot be made"),
])
def test_item15_storages_that_cannot_be_used_are_one_error(tmp_path: Path, kind: str, needle: str) -> None:
    """Item 15: a corrupt SQLite study (a text file, a bad header, truncated), an unreachable
    PostgreSQL server, a scheme without its driver, a read-only folder: each was a traceback
    (``sqlite3.DatabaseError``, ``OperationalError``, ``ImportError``)."""
    w = write(tmp_path / "w.toml", WORKLOAD)
    db = tmp_path / "s.db"
    storage = f"sqlite:///{db}"
    if kind == "text":
        write(db, "this is not a database\n" * 50)
    elif kind == "header":
        write(db, b"SQLite format 3\x00" + os.urandom(4096))
    elif kind == "truncated":
        assert _search(w, str(db), 2).status == 0
        for extra in ("-wal", "-shm"):
            Path(str(db) + extra).unlink(missing_ok=True)
        data = db.read_bytes()
        db.write_bytes(data[: len(data) // 3])
    elif kind == "mysql":
        storage = "mysql://u:p@127.0.0.1:1/db"
    elif kind == "nosuch":
        storage = "nosuch://u@h/db"
    elif kind == "postgres":
        storage = "postgresql://u:p@127.0.0.1:1/db"
    elif kind == "readonly":
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        # root writes into any folder of a normal file system, not into sysfs
        storage = "/sys/recperf-j.log" if os.geteuid() == 0 else str(ro / "j.log")
    elif kind == "nofolder":
        storage = "/proc/recperf-none/j.log"  # a folder that cannot be made
    one_error(_search(w, storage, 2), needle)


# ---- replayed measurements (item 3) ----------------------------------------------------------


def test_item03_replayed_measurements_must_match_workload_gpu_and_times(tmp_path: Path) -> None:
    """Item 3: ``search --fidelity gpu --measurements F`` replayed F's times whatever
    workload or GPU they were measured for, and dropped records with a NaN time silently.
    Now each record must be of the searched workload and GPU with a finite time, or the
    command refuses naming the record."""
    import json

    w = write(tmp_path / "w.toml", WORKLOAD)
    other = write(tmp_path / "other.toml", LONG_WORKLOAD)

    def meas(name: str, *recs: dict[str, object]) -> str:
        return write(tmp_path / name, "".join(json.dumps(r) + "\n" for r in recs))

    def rec(workload: str = w, gpu: str = "a100-80gb", time_s: float = 1e-4, cap: int = 40) -> dict[str, object]:
        return {"gpu": gpu, "workload": workload, "kernel": {"register_cap": cap}, "time_s": time_s}

    def replay(m: str) -> Result:
        return run_cli(["search", "--gpu", "a100-80gb", "--workload", w, "--fidelity", "gpu", "--measurements", m,
                        "--trials", "4", "--sampler", "tpe", "--storage", ":memory:", "--no-progress", "--no-report",
                        "--json"])

    one_error(replay(meas("a.jsonl", rec(), rec(workload=other, cap=64))), "a.jsonl:2", "workload searched",
              "batch 4096")
    one_error(replay(meas("b.jsonl", rec(), rec(gpu="h100-sxm", cap=64))), "b.jsonl:2", "GPU searched", "h100-sxm")
    one_error(replay(meas("c.jsonl", rec(), rec(gpu="nosuch", cap=64))), "c.jsonl:2", "nosuch")
    nan = write(tmp_path / "d.jsonl", json.dumps(rec()) + "\n" + json.dumps(rec(cap=64)).replace("0.0001", "NaN") + "\n")
    one_error(replay(nan), "d.jsonl:2", "time_s > 0", "nan")
    # records of the searched workload (an inline table or another path to the same file) on the same GPU replay
    same = {"batch_size": 512, "tables": [{"rows": 200000, "dim": 64, "pooling": 20, "indices": {"kind": "zipf"}}]}
    ok = replay(meas("e.jsonl", rec(), rec(cap=64, time_s=5e-5), {**rec(cap=0), "workload": same}))
    assert ok.status == 0, ok.stderr[-2000:]
    assert json.loads(ok.stdout)["best_time_s"] == 5e-5


def test_item06_ctrl_c_to_a_search_with_workers(tmp_path: Path) -> None:
    """Item 6: Ctrl-C at the terminal (SIGINT to the whole process group) during ``search
    --workers 2``: exit 130 but two 150-line worker tracebacks. Now the parent alone says
    ``interrupted``; the workers stop between trials and every completed trial is kept."""
    w = write(tmp_path / "w.toml", WORKLOAD)
    j = str(tmp_path / "j.log")
    proc = subprocess.Popen([sys.executable, "-m", "recperf", "search", "--gpu", "a100-80gb", "--workload", w,
                             "--sampler", "tpe", "--trials", "100000", "--workers", "2", "--storage", j,
                             "--study-name", "t", "--no-progress", "--no-report"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:  # until the workers have finished trials
            if os.path.exists(j) and Path(j).read_bytes().count(b'"state":1,') >= 10:
                break
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()
        os.killpg(proc.pid, signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err[-3000:]
    assert err.splitlines() == ["interrupted"], err[-3000:]
    assert _journal_complete(j) >= 10
    assert Path(j).read_bytes().endswith(b"\n")  # no record torn by the stop


# ---- outputs over inputs (item 2) --------------------------------------------------------------


@pytest.mark.parametrize(("argv", "needle"), [
    (["validate", "report", "--measurements", "M", "--markdown", "M"], "`--markdown` must not be the file `--measurements`"),
    (["validate", "report", "--measurements", "M", "--markdown", "M2"], "`--measurements`"),  # another spelling
    (["validate", "report", "--measurements", "M", "--markdown", "L"], "`--measurements`"),  # a hard link
    (["validate", "report", "--measurements", "M", "--plot", "W"], "line 1's workload"),  # a file the records name
    (["validate", "report", "--measurements", "M", "--plot", "X", "--markdown", "X"], "`--plot`"),
    (["search", "--gpu", "a100-80gb", "--workload", "W", "--storage", "W", "--trials", "2"], "`--storage`"),
    (["search", "--gpu", "a100-80gb", "--workload", "W", "--storage", "sqlite:///W", "--trials", "2"], "`--storage`"),
    (["search", "--gpu", "a100-80gb", "--workload", "W", "--per-table", "--plan-out", "W"], "`--plan-out`"),
    (["pipeline", "--model", "rmc1", "--device", "a100-80gb", "--batch-size", "64", "--embedding-config", "K",
      "--plot", "K"], "`--embedding-config`"),
    (["validate", "calibrate", "--gpu", "a100-80gb", "--latency", "T", "--out", "T"], "`--latency`"),
    (["validate", "sweep", "--workload", "W", "--grid", '{"block_size": [128]}', "--out", "W"], "`--workload`"),
    (["validate", "micro", "--out", "K", "--gpu", "K"], "`--gpu`"),
])
def test_item02_an_output_over_an_input_is_refused(tmp_path: Path, argv: list[str], needle: str) -> None:
    """Item 2: ``validate report --measurements m.jsonl --markdown m.jsonl`` overwrote the
    measurements with the report (exit 0). Every output path equal to an input (by path, by
    another spelling, by a hard link) is refused before anything is written."""
    import hashlib
    import json

    w = write(tmp_path / "w.toml", WORKLOAD)
    m = write(tmp_path / "m.jsonl", json.dumps({"gpu": "a100-80gb", "workload": w, "kernel": {}, "time_s": 1e-4}) + "\n"
              + json.dumps({"gpu": "a100-80gb", "workload": "w.toml", "kernel": {"register_cap": 40}, "time_s": 9e-5})
              + "\n")
    os.link(m, tmp_path / "link.jsonl")
    k = write(tmp_path / "k.toml", "block_size = 256\n")
    t = write(tmp_path / "lat.txt", "".join(f"{x} 500\n" for x in (16, 64, 256, 1024, 4096, 65536, 262144, 1048576)))
    names = {"M": m, "W": w, "K": k, "T": t, "L": str(tmp_path / "link.jsonl"), "X": str(tmp_path / "x.md"),
             "M2": f"{tmp_path}/../{tmp_path.name}/m.jsonl", "sqlite:///W": "sqlite:///" + w}
    files = [Path(p) for p in (w, m, k, t)]
    before = [hashlib.sha256(p.read_bytes()).hexdigest() for p in files]
    one_error(run_cli([names.get(a, a) for a in argv]), needle, "it would be overwritten")
    assert [hashlib.sha256(p.read_bytes()).hexdigest() for p in files] == before
    assert not (tmp_path / "x.md").exists()


# ---- sizes: capacity rules before any allocation (item 8) ------------------------------------


def _capped(argv: list[str], tmp_path: Path, gb: float = 3.0) -> Result:
    """``recperf ARGV`` in a child whose address space is capped at ``gb`` GB: a size rule
    must answer before any allocation (was: the whole machine's 24 GB gone in 53 s, or an
    ``_ArrayMemoryError`` traceback)."""
    import resource

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (int(gb * 2**30), int(gb * 2**30)))

    proc = subprocess.run([sys.executable, "-m", "recperf", *argv], capture_output=True, text=True, timeout=300,
                          check=False, cwd=tmp_path, preexec_fn=cap)
    return Result(argv, proc.returncode, proc.stdout, proc.stderr)


def _table(rows: int | str, batch: int | str = 64, pooling: int = 8, dim: int = 64) -> str:
    return f'batch_size = {batch}\n[[tables]]\nrows = {rows}\ndim = {dim}\npooling = {pooling}\n'


@pytest.mark.parametrize(("command", "rows", "batch", "needle"), [
    ("predict", "1000000000", 64, "`table bytes <= usable device memory`"),
    ("predict", "10000000000", 64, "2,560.0 GB"),
    ("predict", "1000000000000", 64, "1,000,000,000,000 rows"),
    ("simulate", "1000000000", 64, "`table bytes <= usable device memory`"),
    ("simulate", "1000", "1000000000", "indices, offsets and outputs <= usable device memory"),
    ("predict", "1000", "1000000000", "split the batch"),
])
def test_item08_sizes_beyond_the_device_are_one_error_before_any_allocation(
        tmp_path: Path, command: str, rows: str, batch: int | str, needle: str) -> None:
    w = write(tmp_path / "w.toml", _table(rows, batch))
    one_error(_capped([command, "--gpu", "h200", "--workload", w], tmp_path), needle)


def test_item08_a_call_beyond_host_memory_is_one_error(tmp_path: Path) -> None:
    """A call that fits the device (40 GB of int64 indices on an H200) but whose index stream
    the model cannot hold in host memory: the rule answers before the first array."""
    from perfmodel._capacity import call_host_bytes, host_available_bytes

    t = perfmodel.Table(rows=1000, dim=1, dtype="float16", pooling=50)
    if call_host_bytes(t, 10**8) <= host_available_bytes():
        pytest.skip(f"this host has {host_available_bytes() / 1e9:.0f} GB available: the call fits")
    w = write(tmp_path / "w.toml", 'batch_size = 100000000\n[[tables]]\nrows = 1000\ndim = 1\ndtype = "float16"\n'
                                   'pooling = 50\n')
    for command in ("predict", "simulate"):
        one_error(_capped([command, "--gpu", "h200", "--workload", w], tmp_path),
                  "`host bytes of one call's index stream <= available host memory`", "100,000,000")


def test_item08_a_host_rule_refuses_what_does_not_fit_now(monkeypatch: pytest.MonkeyPatch) -> None:
    import perfmodel._capacity as cap

    t = perfmodel.Table(rows=1000, dim=16, pooling=10)
    need = cap.call_host_bytes(t, 4096)
    assert need == 4096 * cap.HOST_BYTES_PER_BAG + 40960 * cap.HOST_BYTES_PER_LOOKUP
    monkeypatch.setattr(cap, "host_available_bytes", lambda: need - 1)
    with pytest.raises(perfmodel.InputError, match="host memory"):
        perfmodel.predict(perfmodel.Workload(batch_size=4096, tables=(t,)), perfmodel.KernelConfig(), "a100-80gb")
    monkeypatch.setattr(cap, "host_available_bytes", lambda: need)
    assert perfmodel.predict(perfmodel.Workload(batch_size=4096, tables=(t,)), perfmodel.KernelConfig(),
                             "a100-80gb").time_s > 0


def test_item08_pipeline_counts_the_batch_and_refuses_what_cannot_fit(tmp_path: Path) -> None:
    """``pipeline --batch-size 1e9`` reported ``fits: true`` counting the tables only, then
    used 7.9 GB of host memory; a zoo model of 10^11 rows killed the machine."""
    import json

    one_error(_capped(["pipeline", "--model", "rmc1", "--device", "a100-80gb", "--batch-size", "1e9"], tmp_path),
              "one batch's inputs and activations <= usable memory", "1,000,000,000")
    out = run_cli(["pipeline", "--model", "rmc1", "--device", "a100-80gb", "--batch-size", "100000", "--json"])
    mem = json.loads(out.stdout)["memory"]
    # 8 tables x 80 int64 indices a sample are part of what the device holds
    assert mem["batch_bytes"] >= 100000 * 8 * 80 * 8 and mem["fits"] is True
    big = (ROOT / "perfmodel" / "pipeline" / "models" / "rmc1.toml").read_text().replace("rows = 4000000",
                                                                                     "rows = 100000000000")
    one_error(_capped(["pipeline", "--model", write(tmp_path / "big.toml", big), "--device", "a100-80gb",
                       "--batch-size", "64"], tmp_path), "usable device memory")


def test_item08_a_report_record_of_a_trillion_rows(tmp_path: Path) -> None:
    import json

    m = write(tmp_path / "m.jsonl", json.dumps({"gpu": "a100-80gb", "kernel": {}, "time_s": 1e-4, "workload": {
        "batch_size": 64, "tables": [{"rows": 10**12, "dim": 64, "pooling": 8}]}}) + "\n")
    one_error(_capped(["validate", "report", "--measurements", m], tmp_path), "usable device memory")


# ---- calibration data and ignored values (items 12, 13) ----------------------------------------


@pytest.mark.parametrize(("row", "needle"), [("1 1410 64 0.1 -5", "lat.txt:3:"), ("1 1410 64 0.1 nan", "'1 1410 64 0.1 nan'"),
                                             ("1 1410 -64 0.1 30", "size must be > 0")])
def test_item12_calibration_refuses_non_physical_latencies(tmp_path: Path, row: str, needle: str) -> None:
    """Item 12: a latency file of negative cycles gave ``"success": true``, ``mape_before:
    -40.49`` and a spec that loaded. A measured value must be finite and > 0 (one bad row
    among good ones too: it was dropped silently), its line named; no spec is written."""
    lat = write(tmp_path / "lat.txt", f"clock: 1410 MHz\n1 1410 16 0.1 30\n{row}\n1 1410 1024 0.1 40\n")
    out = tmp_path / "cal.toml"
    one_error(run_cli(["validate", "calibrate", "--gpu", "a100-80gb", "--latency", lat, "--out", str(out)]),
              "measured value finite and > 0", needle)
    assert not out.exists()


@pytest.mark.parametrize(("argv", "needle"), [
    (["validate", "published", "--kind", "stream-read", "--gpu-spec", "rtx=a100-80gb"], "but got 'rtx'"),
    (["pipeline", "--model", "rmc1", "--device", "a100-80gb", "--batch-size", "64", "--memory-budget-gb", "-1"],
     "memory_budget_bytes >= 0"),
    (["pipeline", "--model", "rmc1", "--device", "a100-80gb", "--batch-size", "64", "--memory-budget-gb", "nan"],
     "must be a finite number, but got 'nan'"),
    (["pipeline-sweep", "--model", "rmc1", "--batch-sizes", ""], "batch_sizes=[]"),
    (["pipeline-sweep", "--model", "rmc1", "--devices", ",", "--batch-sizes", "8"], "devices=[]"),
])
def test_item13_more_values_that_were_silently_ignored(argv: list[str], needle: str) -> None:
    """Item 13: an unknown GPU id in ``--gpu-spec ID=SPEC``, a negative or NaN memory budget,
    an empty batch-size list: each ran with exit 0 as if not given."""
    one_error(run_cli(argv), needle)


def test_item14_an_architecture_the_compiler_does_not_know(tmp_path: Path) -> None:
    """Item 14: ``--arch sm_12`` ended in a dangling ``...REGISTER_CAP=0:`` (NVRTC's empty log)."""
    pytest.importorskip("cuda.bindings.nvrtc", reason="NVRTC (nvidia-cuda-nvrtc, cuda-bindings) is not installed")
    one_error(run_cli(["resources", "--compiler", "nvrtc", "--arch", "sm_12"]), "compiles for", "sm_80",
              "but got arch='sm_12'")


# ---- reports over several GPUs (item 16) ---------------------------------------------------------


def test_item16_a_report_over_two_gpus_is_per_gpu_first(tmp_path: Path) -> None:
    """Item 16: a file with two GPUs' records pooled Spearman and top-1 regret across them;
    now each GPU has its own figures (equal to a report of its records alone) and the pooled
    ones are one extra line that says so."""
    import json

    w = write(tmp_path / "w.toml", WORKLOAD)
    rng = np.random.default_rng(5)
    recs = {g: [{"gpu": g, "workload": w, "kernel": {"register_cap": cap, "block_size": bs},
                 "time_s": float(rng.uniform(1e-5, 1e-4)) * (10 if g == "h100-sxm" else 1)}
                for cap in (0, 32, 40, 64) for bs in (128, 256)] for g in ("a100-80gb", "h100-sxm")}
    both = write(tmp_path / "both.jsonl", "".join(json.dumps(r) + "\n" for g in recs for r in recs[g]))
    res = run_cli(["validate", "report", "--measurements", both, "--json"])
    assert res.status == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["pooled_over_gpus"] == ["a100-80gb", "h100-sxm"]
    for g in recs:
        alone = json.loads(run_cli(["validate", "report", "--measurements",
                                    write(tmp_path / f"{g}.jsonl", "".join(json.dumps(r) + "\n" for r in recs[g])),
                                    "--json"]).stdout)
        mine = next(x for x in doc["per_gpu"] if x["gpu"] == g)
        for k in ("n", "mape", "spearman", "kendall", "top1_regret"):
            assert mine[k] == alone[k], (g, k)
        assert alone["pooled_over_gpus"] is None
    text = run_cli(["validate", "report", "--measurements", both]).stdout
    pooled = [line for line in text.splitlines() if "pooled" in line]
    assert len(pooled) == 1 and "pooled over 2 GPUs" in pooled[0] and "not a per-GPU figure" in pooled[0]
    md = tmp_path / "r.md"
    assert run_cli(["validate", "report", "--measurements", both, "--markdown", str(md)]).status == 0
    assert "| a100-80gb | 8 |" in md.read_text() and "pooled over 2 GPUs" in md.read_text()
