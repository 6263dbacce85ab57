"""Where studies live: the default SQLite file, any Optuna storage URL, or a journal file.

``storage`` is one of:

- ``None``: an SQLite file ``<out_dir>/studies/<study_name>.db`` (re-running the same study
  name continues the study);
- an Optuna storage URL (``sqlite:///...``, ``postgresql://...``, ``mysql://...``);
- ``":memory:"``: Optuna's in-memory storage (one process; nothing persists);
- a file path: ``*.db``/``*.sqlite``/``*.sqlite3`` is an SQLite file, anything else a
  journal file (``JournalFileBackend``), the storage for several local worker processes.

:meth:`StorageSpec.open` is the one opener. Whatever goes wrong there is one
:class:`~perfmodel.InputError` naming the storage (a file that is not an SQLite database or
is damaged, a server that does not answer, a scheme whose driver is not installed, a folder
that cannot be written). A journal file is repaired before anyone appends to it: a last
record cut short by a killed writer is cut off (with a warning), so that the next record
does not glue onto it and make the whole file unreadable. Journal writers hold a lock
(:class:`PidSymlinkLock`, Optuna's symlink lock whose link names the holder ``host:pid``):
a lock left by a process of this host that is gone is broken at once instead of after
Optuna's 30-s grace period.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perfmodel import InputError

if TYPE_CHECKING:
    import optuna

__all__ = ["PidSymlinkLock", "StorageSpec", "StorageWarning", "open_rdb", "repair_journal", "resolve_storage",
           "storage_errors"]

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
        """A new storage object (one per process), checked; every failure one InputError."""
        with storage_errors(self):
            return self._open()

    def _open(self) -> optuna.storages.BaseStorage:
        import optuna

        if self.kind == "memory":
            return optuna.storages.InMemoryStorage()
        if self.kind == "journal":
            from optuna.storages.journal import JournalFileBackend

            lock = PidSymlinkLock(self.url)
            repair_journal(self.url, lock)
            # the backend only calls acquire() and release() (Optuna's lock protocol; subclassing
            # its BaseJournalFileLock would import Optuna with this module)
            return optuna.storages.JournalStorage(JournalFileBackend(self.url, lock_obj=lock))  # type: ignore[arg-type]
        if self.url.startswith("sqlite:///"):
            # a busy timeout, so that several local processes on one SQLite file wait for
            # each other's write lock instead of failing
            rdb = open_rdb(self.url, engine_kwargs={"connect_args": {"timeout": 60}})
            _fast_sqlite(rdb)
        elif self.url.startswith(("postgresql", "postgres")):
            # a server that does not answer fails within seconds, not after the OS's TCP timeout
            rdb = open_rdb(self.url, engine_kwargs={"connect_args": {"connect_timeout": CONNECT_TIMEOUT_S}})
        else:
            rdb = open_rdb(self.url)
        rdb.get_all_studies()  # reads the database: a damaged one fails here, not mid-search
        return rdb


#: seconds a PostgreSQL connection attempt may take
CONNECT_TIMEOUT_S = 10


class StorageWarning(UserWarning):
    """Something about a storage the user should know, that was handled (a repaired journal)."""


@contextlib.contextmanager
def storage_errors(spec: StorageSpec) -> Iterator[None]:
    """Turn what opening or reading ``spec`` raises into one :class:`InputError` naming it."""
    from sqlalchemy.exc import ArgumentError, DatabaseError, NoSuchModuleError

    where = f"storage {spec.describe()!r}"
    try:
        yield
    except InputError:
        raise
    except NoSuchModuleError:
        scheme = spec.url.split("://", 1)[0]
        raise InputError(f"{where}: unsupported URL scheme {scheme!r} (use sqlite:///FILE, postgresql://..., "
                         "mysql://... with its driver, a journal file path or :memory:)") from None
    except ImportError as exc:  # Optuna re-raises the driver's ModuleNotFoundError as an ImportError
        missing = exc if isinstance(exc, ModuleNotFoundError) else exc.__cause__
        name = getattr(missing, "name", None) or "?"
        raise InputError(f"{where} needs the database driver {name!r}, which is not installed "
                         f"(pip install a driver for {spec.url.split('://', 1)[0]!r})") from None
    except ArgumentError as exc:
        raise InputError(f"{where}: not a valid storage URL ({_first_line(exc)})") from None
    except DatabaseError as exc:  # sqlite3 / psycopg errors, wrapped by SQLAlchemy
        orig = getattr(exc, "orig", None) or exc
        text = _first_line(orig)
        if spec.url.startswith("sqlite") and ("not a database" in text or "malformed" in text):
            text = f"the file is not an Optuna study database or is damaged ({text})"
        raise InputError(f"{where} cannot be used: {text}") from None
    except OSError as exc:  # a journal file, its lock (filename2 of a symlink) or its folder
        path = exc.filename2 or exc.filename
        raise InputError(f"{where} cannot be used: {exc.strerror or exc}" + (f" ({path})" if path else "")) from None
    except (ValueError, RuntimeError) as exc:  # Optuna's own checks (e.g. a journal it cannot parse)
        raise InputError(f"{where} cannot be used: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class PidSymlinkLock:
    """Optuna's journal lock (a symlink ``<journal>.lock`` made atomically; other Optuna
    processes using ``JournalFileSymlinkLock`` exclude each other with the same link) whose
    link target names the holder, ``recperf-lock:<host>:<pid>:<token>``. A lock whose holder
    is a process of this host that is gone is broken at once; another kind of link (stock
    Optuna, another host) is broken after ``grace_period_s`` without change, as Optuna does.
    Breaking happens under an ``fcntl`` lock of ``<journal>.lock-break``, so two processes
    never both break a lock (the second would remove the first one's new lock).
    """

    PREFIX = "recperf-lock:"

    def __init__(self, path: str, grace_period_s: float = 30.0) -> None:
        self.path = path
        self.lock_file = path + ".lock"
        self.grace_period_s = grace_period_s
        self._tag = f"{self.PREFIX}{worker_tag()}:{uuid.uuid4().hex[:8]}"

    def acquire(self) -> bool:
        pause = 0.001
        seen: tuple[str, float] | None = None
        while True:
            try:
                os.symlink(self._tag, self.lock_file)
                return True
            except FileExistsError:
                pass
            try:
                holder = os.readlink(self.lock_file)
            except OSError:
                continue  # released meanwhile
            if holder.startswith(self.PREFIX) and is_dead_local_worker(holder[len(self.PREFIX):].rsplit(":", 1)[0]):
                self._break(holder)
                continue
            if seen is None or seen[0] != holder:
                seen = (holder, time.monotonic())
            elif time.monotonic() - seen[1] > self.grace_period_s:
                self._break(holder)
                seen = None
                continue
            time.sleep(pause)
            pause = min(pause * 2, 0.1)

    def _break(self, holder: str) -> None:
        with open(self.lock_file + "-break", "a") as guard:
            fcntl.flock(guard, fcntl.LOCK_EX)
            try:
                if os.readlink(self.lock_file) == holder:
                    os.unlink(self.lock_file)
            except OSError:
                pass

    def release(self) -> None:
        try:
            if os.readlink(self.lock_file) == self._tag:
                os.unlink(self.lock_file)
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                raise


def repair_journal(path: str, lock: PidSymlinkLock) -> int:
    """Cut a journal file's last record when a killed writer left it without its newline.

    Optuna reads such a file (it skips a last line that is cut short), but its next append
    would glue a new record onto the partial one, and that line, no longer the last, makes
    the whole journal unreadable. The check and the cut happen under the journal's lock
    (a live writer never leaves a partial line outside it). Returns the bytes cut (0: none);
    a cut is reported as a :class:`StorageWarning`.
    """
    if not os.path.isfile(path):
        return 0
    lock.acquire()
    try:
        with open(path, "rb+") as f:
            size = f.seek(0, os.SEEK_END)
            if size == 0:
                return 0
            f.seek(size - 1)
            if f.read(1) == b"\n":
                return 0
            keep = 0
            step = 1 << 16
            pos = size
            while pos > 0:  # the last newline, searched backwards
                start = max(0, pos - step)
                f.seek(start)
                block = f.read(pos - start)
                i = block.rfind(b"\n")
                if i >= 0:
                    keep = start + i + 1
                    break
                pos = start
            f.truncate(keep)
            f.flush()
            os.fsync(f.fileno())
    finally:
        lock.release()
    warnings.warn(f"journal {path!r} ended in a record cut short ({size - keep} bytes after the last complete "
                  "line, from a writer that was killed); cut it off before appending", StorageWarning, stacklevel=2)
    return size - keep


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
        _make_folder(path.parent)
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
                _make_folder(Path(text[len("sqlite:///"):]).parent)
        elif not scheme.replace("+", "").replace("_", "").isalnum():
            raise InputError(f"`--storage` URL has no valid scheme, but got {text!r}")
        return StorageSpec(kind="rdb", url=text)
    path = Path(text)
    if path.is_dir():
        raise InputError(f"`--storage` must be a URL or a file path, but got the folder {text!r}")
    _make_folder(path.parent)
    if path.suffix.lower() in _SQLITE_SUFFIXES:
        return StorageSpec(kind="rdb", url=f"sqlite:///{path.resolve()}")
    return StorageSpec(kind="journal", url=str(path.resolve()))


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"the storage's folder {str(folder)!r} cannot be made: {exc.strerror or exc}") from None


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
