"""Studies in real storages: a search killed with SIGKILL keeps its completed trials and
continues; several worker processes share one study (journal file, PostgreSQL) with no
trial lost or duplicated."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

import search
from search._storage import resolve_storage

WORKLOAD_TOML = """
batch_size = 512
[[tables]]
rows = 100000
dim = 64
pooling = 20
count = 2
[tables.indices]
kind = "uniform"
"""


@pytest.fixture
def workload_file(tmp_path: Path) -> Path:
    p = tmp_path / "small.toml"
    p.write_text(WORKLOAD_TOML)
    return p


def _complete(storage: str, name: str) -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name=name, storage=storage)
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def _cli(*args: str, timeout: float = 300) -> dict[str, object]:
    out = subprocess.run([sys.executable, "-m", "recperf", *args, "--json", "--no-progress"], capture_output=True,
                         text=True, timeout=timeout, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def test_resolve_storage_kinds(tmp_path: Path) -> None:
    d = resolve_storage(None, "my study", tmp_path)
    assert d.kind == "rdb" and d.url.endswith("/studies/my_study.db") and d.url.startswith("sqlite:///")
    assert resolve_storage(str(tmp_path / "s.db"), "x").kind == "rdb"
    j = resolve_storage(str(tmp_path / "s.log"), "x")
    assert j.kind == "journal" and j.url == str((tmp_path / "s.log").resolve())
    assert resolve_storage(":memory:", "x").kind == "memory"
    pg = resolve_storage("postgresql://u:secret@h:5432/db", "x")
    assert pg.kind == "rdb" and "secret" not in pg.describe()
    with pytest.raises(ValueError, match="storage"):
        resolve_storage("", "x")


def test_sigkilled_search_keeps_completed_trials_and_resumes(tmp_path: Path, workload_file: Path) -> None:
    db = f"sqlite:///{tmp_path / 'kill.db'}"
    cmd = [sys.executable, "-m", "recperf", "search", "--gpu", "a100-80gb", "--workload", str(workload_file),
           "--sampler", "tpe", "--trials", "100000", "--seed", "1", "--storage", db, "--study-name", "k", "--json",
           "--no-progress", "--no-report", "--out", str(tmp_path / "out")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        n = 0
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.5)
            try:
                n = len(_complete(db, "k"))
            except (KeyError, ValueError):  # study not created yet
                continue
            if n >= 8:
                break
        assert proc.poll() is None, f"search ended early: {proc.stderr.read().decode()[-2000:] if proc.stderr else ''}"
        assert n >= 8, "no trials reached the storage within 120 s"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    before = {t.number: t.values for t in _complete(db, "k")}
    running = optuna.load_study(study_name="k", storage=db).get_trials(states=(TrialState.RUNNING,))
    tagged = [t.number for t in running if "worker" in t.user_attrs]

    r = _cli("search", "--gpu", "a100-80gb", "--workload", str(workload_file), "--sampler", "tpe", "--trials", "10",
             "--seed", "2",
             "--storage", db, "--study-name", "k", "--no-report", "--out", str(tmp_path / "out"))
    after = {t.number: t.values for t in _complete(db, "k")}
    assert r["n_trials_completed"] == len(after) == len(before) + 10
    assert all(after[k] == v for k, v in before.items()), "a completed trial changed or vanished"
    # the killed process's batch in flight is marked FAIL, not left RUNNING forever (a trial
    # killed between ask and its worker tag waits search._optimize.ORPHAN_AGE_S for that)
    study = optuna.load_study(study_name="k", storage=db)
    states = {t.number: t.state for t in study.trials}
    assert all(states[n] == TrialState.FAIL for n in tagged)
    assert all("worker" not in t.user_attrs for t in study.get_trials(states=(TrialState.RUNNING,)))


def test_same_study_name_continues_and_counts_all_trials(tmp_path: Path, workload_file: Path) -> None:
    db = str(tmp_path / "c.db")
    first = search.optimize(workload_file, "a100-80gb", n_trials=12, seed=0, storage=db, study_name="c", sampler="tpe")
    second = search.optimize(workload_file, "a100-80gb", n_trials=7, seed=1, storage=db, study_name="c", sampler="tpe")
    assert first.n_trials_completed == 12
    assert second.n_trials_completed == 19
    assert second.best_time_s <= first.best_time_s


def test_default_storage_is_sqlite_under_out(tmp_path: Path, workload_file: Path) -> None:
    r = search.optimize(workload_file, "a100-80gb", n_trials=5, seed=0, out_dir=tmp_path, sampler="tpe")
    files = list((tmp_path / "studies").glob("*.db"))
    assert len(files) == 1 and r.study_name in files[0].name
    again = search.optimize(workload_file, "a100-80gb", n_trials=5, seed=0, out_dir=tmp_path, sampler="tpe")
    assert again.study_name == r.study_name and again.n_trials_completed == 10


def test_study_of_another_workload_is_refused(tmp_path: Path, workload_file: Path) -> None:
    db = str(tmp_path / "m.db")
    search.optimize(workload_file, "a100-80gb", n_trials=3, storage=db, study_name="m", sampler="tpe")
    with pytest.raises(ValueError, match="another workload"):
        search.optimize(workload_file, "h100-sxm", n_trials=3, storage=db, study_name="m", sampler="tpe")


def _assert_no_loss_or_duplicate(trials: list[optuna.trial.FrozenTrial], n: int) -> None:
    assert len(trials) == n
    assert len({t.number for t in trials}) == n
    assert len({t._trial_id for t in trials}) == n


@pytest.mark.slow
def test_journal_file_workers_complete_n_trials(tmp_path: Path, workload_file: Path) -> None:
    journal = str(tmp_path / "study.log")
    r = search.optimize(workload_file, "a100-80gb", n_trials=30, seed=0, storage=journal, study_name="j", workers=3,
                        sampler="tpe")
    assert r.n_trials_completed == 30
    trials = _complete(optuna.storages.JournalStorage(  # type: ignore[arg-type]
        optuna.storages.journal.JournalFileBackend(journal)), "j")
    _assert_no_loss_or_duplicate(trials, 30)
    by_worker = collections.Counter(t.user_attrs["worker"] for t in trials)
    assert sorted(by_worker.values()) == [10, 10, 10]


POSTGRES = os.environ.get("RECPERF_TEST_POSTGRES_URL")


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.skipif(not POSTGRES, reason="RECPERF_TEST_POSTGRES_URL is unset: no PostgreSQL server (.ci/run starts one as root)")
def test_four_processes_on_one_postgres_server(tmp_path: Path, workload_file: Path) -> None:
    assert POSTGRES
    name = f"pg-{uuid.uuid4().hex[:8]}"
    n_each = 10
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "recperf", "search", "--gpu", "a100-80gb", "--workload", str(workload_file),
             "--sampler", "tpe", "--trials", str(n_each), "--seed", str(i), "--storage", POSTGRES, "--study-name",
             name, "--json", "--no-progress", "--no-report", "--out", str(tmp_path / "out")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for i in range(4)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    try:
        for p, (_, err) in zip(procs, outs, strict=True):
            assert p.returncode == 0, err[-2000:]
        trials = _complete(POSTGRES, name)
        _assert_no_loss_or_duplicate(trials, 4 * n_each)
        by_worker = collections.Counter(t.user_attrs["worker"] for t in trials)
        assert sorted(by_worker.values()) == [n_each] * 4
        # the last process to finish saw (at least) everyone's completed trials
        assert max(json.loads(o)["n_trials_completed"] for o, _ in outs) == 4 * n_each
        # and the Python API's worker processes on the same server
        r = search.optimize(workload_file, "a100-80gb", n_trials=12, seed=9, storage=POSTGRES, study_name=name,
                            workers=4, sampler="tpe")
        assert r.n_trials_completed == 4 * n_each + 12
        _assert_no_loss_or_duplicate(_complete(POSTGRES, name), 4 * n_each + 12)
    finally:
        optuna.delete_study(study_name=name, storage=POSTGRES)


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.skipif(not POSTGRES, reason="RECPERF_TEST_POSTGRES_URL is unset: no PostgreSQL server (.ci/run starts one as root)")
def test_workers_starting_together_on_an_empty_postgres_database(tmp_path: Path, workload_file: Path) -> None:
    """Four searches started at once on a database with no Optuna tables yet (a fresh
    schema): they race to create the tables, and every one must still run (search._storage.open_rdb)."""
    import psycopg

    assert POSTGRES
    schema = f"empty_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    url = f"{POSTGRES}?options=-csearch_path%3D{schema}"
    try:
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "recperf", "search", "--gpu", "a100-80gb", "--workload", str(workload_file),
                 "--sampler", "tpe", "--trials", "3", "--seed", str(i), "--storage", url, "--study-name", "race",
                 "--json", "--no-progress", "--no-report", "--out", str(tmp_path / "out")],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )
            for i in range(4)
        ]
        outs = [p.communicate(timeout=600) for p in procs]
        for p, (_, err) in zip(procs, outs, strict=True):
            assert p.returncode == 0, err[-2000:]
        _assert_no_loss_or_duplicate(_complete(url, "race"), 12)
    finally:
        with psycopg.connect(POSTGRES, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def test_running_trials_of_dead_local_processes_are_failed(tmp_path: Path, workload_file: Path) -> None:
    import socket

    db = f"sqlite:///{tmp_path / 'o.db'}"
    first = search.optimize(workload_file, "a100-80gb", n_trials=4, storage=db, study_name="o", sampler="tpe")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = socket.gethostname()
    study = optuna.load_study(study_name="o", storage=db)
    orphan = study.ask()
    orphan.set_user_attr("worker", f"{host}:{dead.pid}")
    alive = study.ask()
    alive.set_user_attr("worker", f"{host}:{os.getppid()}")  # a live process: left alone
    remote = study.ask()
    remote.set_user_attr("worker", f"not-{host}:{dead.pid}")  # another host's: left alone
    again = search.optimize(workload_file, "a100-80gb", n_trials=2, storage=db, study_name="o", sampler="tpe")
    states = {t.number: t.state for t in optuna.load_study(study_name="o", storage=db).trials}
    assert states[orphan.number] == TrialState.FAIL
    assert states[alive.number] == TrialState.RUNNING and states[remote.number] == TrialState.RUNNING
    assert again.n_trials_completed == first.n_trials_completed + 2
