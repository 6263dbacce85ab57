"""Where studies live: the default SQLite file, any Optuna storage URL, or a journal file.

``storage`` is one of:

- ``None``: an SQLite file ``<out_dir>/studies/<study_name>.db`` (re-running the same study
  name continues the study);
- an Optuna storage URL (``sqlite:///...``, ``postgresql://...``, ``mysql://...``);
- ``":memory:"``: Optuna's in-memory storage (one process; nothing persists);
- a file path: ``*.db``/``*.sqlite``/``*.sqlite3`` is an SQLite file, anything else a
  journal file (``JournalFileBackend``), the storage for several local worker processes.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perfmodel import InputError

if TYPE_CHECKING:
    import optuna

__all__ = ["StorageSpec", "open_rdb", "resolve_storage"]

_SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")


@dataclass(frozen=True, kw_only=True)
class StorageSpec:
    """A resolved storage: ``kind`` is ``rdb``, ``journal`` or ``memory``; ``url`` its address."""

    kind: str
    #: an SQLAlchemy URL (rdb), a file path (journal) or ``":memory:"``
    url: str

    @property
    def shareable(self) -> bool:
        """Whether several processes can use this storage at once."""
        return self.kind != "memory"

    def describe(self) -> str:
        if self.kind == "rdb" and "@" in self.url:
            # hide a password in postgresql://user:password@host/db
            scheme, rest = self.url.split("://", 1)
            creds, host = rest.rsplit("@", 1)
            user = creds.split(":", 1)[0]
            return f"{scheme}://{user}:***@{host}"
        return self.url

    def open(self) -> optuna.storages.BaseStorage:
        """A new storage object (one per process)."""
        import optuna

        if self.kind == "memory":
            return optuna.storages.InMemoryStorage()
        if self.kind == "journal":
            from optuna.storages.journal import JournalFileBackend

            return optuna.storages.JournalStorage(JournalFileBackend(self.url))
        if self.url.startswith("sqlite:///"):
            # a busy timeout, so that several local processes on one SQLite file wait for
            # each other's write lock instead of failing
            rdb = open_rdb(self.url, engine_kwargs={"connect_args": {"timeout": 60}})
            _fast_sqlite(rdb)
            return rdb
        return open_rdb(self.url)


#: attempts and the longest pause between them when workers create a storage's schema at once
SCHEMA_ATTEMPTS = 8
SCHEMA_RETRY_MAX_S = 1.0


def open_rdb(url: str, **kwargs: Any) -> optuna.storages.RDBStorage:
    """``optuna.storages.RDBStorage(url, **kwargs)``, safe when processes start together.

    On an empty database, ``RDBStorage`` creates Optuna's tables and types; workers started
    at the same moment race in that step (PostgreSQL: ``CREATE TYPE studydirection`` fails
    with a unique violation in all but one of them; 1-3 of 4 processes failed so in 4 of 5
    tries here). The loser retries after a random pause: by then the schema exists and
    creating it is a no-op. Other errors (a wrong URL, a refused connection) are raised at
    once.
    """
    import random
    import time

    import optuna
    from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

    for _ in range(SCHEMA_ATTEMPTS - 1):
        try:
            return optuna.storages.RDBStorage(url, **kwargs)
        except (IntegrityError, ProgrammingError, OperationalError) as exc:
            if not (isinstance(exc, IntegrityError) or "already exists" in str(exc)):
                raise
            time.sleep(random.uniform(0.1, SCHEMA_RETRY_MAX_S))
    return optuna.storages.RDBStorage(url, **kwargs)  # the last attempt raises whatever it meets


def resolve_storage(storage: str | os.PathLike[str] | None, study_name: str, out_dir: str | os.PathLike[str] = "out") -> StorageSpec:
    """Resolve a ``--storage`` argument (see the module docstring)."""
    if storage is None:
        path = Path(out_dir) / "studies" / f"{_safe_name(study_name)}.db"
        path.parent.mkdir(parents=True, exist_ok=True)
        return StorageSpec(kind="rdb", url=f"sqlite:///{path.resolve()}")
    text = os.fspath(storage)
    if not text.strip():
        raise InputError("`--storage` must be a storage URL or a file path, but got an empty string")
    if text == ":memory:":
        return StorageSpec(kind="memory", url=text)
    if "://" in text:
        scheme = text.split("://", 1)[0]
        if scheme.startswith("sqlite"):
            db = text.split("://", 1)[1].lstrip("/")
            if db and text.startswith("sqlite:///"):
                Path(text[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        elif not scheme.replace("+", "").replace("_", "").isalnum():
            raise InputError(f"`--storage` URL has no valid scheme, but got {text!r}")
        return StorageSpec(kind="rdb", url=text)
    path = Path(text)
    if path.is_dir():
        raise InputError(f"`--storage` must be a URL or a file path, but got the folder {text!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in _SQLITE_SUFFIXES:
        return StorageSpec(kind="rdb", url=f"sqlite:///{path.resolve()}")
    return StorageSpec(kind="journal", url=str(path.resolve()))


def _fast_sqlite(rdb: optuna.storages.RDBStorage) -> None:
    """Write-ahead logging with ``synchronous=NORMAL`` on every connection: a commit is then
    one append to the log, not a sync of the database file. A killed process loses nothing
    committed (only a power loss or OS crash can drop the last commits); several processes
    still share the file safely."""
    from sqlalchemy import event

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    event.listen(rdb.engine, "connect", on_connect)
    rdb.engine.dispose()


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "study"


def worker_tag() -> str:
    """This process as ``host:pid``, recorded on each trial it runs."""
    return f"{socket.gethostname()}:{os.getpid()}"


def is_dead_local_worker(tag: str) -> bool:
    """Whether ``tag`` (``host:pid``) names a process on this host that no longer runs."""
    host, _, pid_text = tag.rpartition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"
