"""One connection to a workspace database, safe to share between threads: WAL, a long busy timeout, and
``BEGIN IMMEDIATE`` for every write so that writers queue instead of failing on a lock upgrade. A full disk or a
read-only folder is one ``StorageError`` saying what to do; a damaged file is one ``StoreDamaged`` naming doctor.
A database file deleted or replaced after it was opened (the workspace folder removed, ``doctor --recover`` in
another process) is one ``StorageError`` too: an open SQLite handle keeps reading and writing the old file, so
without the check every later run, metric and model went into a file nobody can see.

A forked child (``multiprocessing``'s fork start method, ``os.fork``) never uses nor closes the SQLite handle it
inherited — SQLite forbids both — it opens its own on first use. While a process forks, no thread of it is inside
SQLite through a connection of ours (``_before_fork`` takes their locks for a moment), so the child's first
``sqlite3.connect`` cannot wait on a mutex held by a thread that does not exist there.
"""
from __future__ import annotations

import os
import sqlite3
import threading
import time
import weakref
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

from .schema import BUSY_TIMEOUT_MS, MIGRATIONS


def is_damage(exc: BaseException) -> bool:
    """Whether SQLite says the file itself is damaged (not a lock, a full disk or a read-only folder)."""
    return isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, (
        sqlite3.OperationalError, sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError,
        sqlite3.DataError, sqlite3.NotSupportedError)) or "malformed" in str(exc) or "not a database" in str(exc)


def damaged(path: str, exc: BaseException) -> Exception:
    """One clear error for a damaged database file, carrying its doctor."""
    from ....core.errors import StoreDamaged

    seen = file_identity(path)  # the damaged file: a doctor that finds another file there leaves it be

    def examine(recover: bool = False):
        from .recovery import examine_damaged

        return examine_damaged(path, recover=recover, seen=seen)

    return StoreDamaged(f"the workspace database {path} is damaged ({exc}); run %aml doctor (or python -m aml_magics "
                        "doctor) to keep a copy and save what can be saved", examine)


def _storage_error(exc: sqlite3.OperationalError) -> Exception:
    """A clear error for a full disk or a read-only workspace; other errors unchanged."""
    from ....core.errors import StorageError, storage_reason

    reason = storage_reason(exc)
    if reason is None:
        return exc
    return StorageError(f"cannot write to the workspace: {reason} ({exc}); nothing was half-written — "
                        "free space or make the workspace writable, then try again")


def _not_encodable(params: Sequence[Any] | dict, exc: UnicodeEncodeError) -> Exception:
    """A lookup given a lone surrogate (nothing stored has one: the writes refuse it): one clear error."""
    from ....core.checks import unmatchable

    for value in params.values() if isinstance(params, dict) else params:
        error = unmatchable(value)
        if error is not None:
            return error
    return exc


def _not_bindable(params: Sequence[Any] | dict, exc: Exception) -> Exception:
    """A lookup given a value SQLite cannot take (a list or an object where a name goes, an int past 64 bits — from
    Python, ``client.runs.list(experiment=["a", "b"])``): one clear error instead of "Error binding parameter 1"."""
    from ....core.checks import shown
    from ....core.errors import InvalidInput

    for value in params.values() if isinstance(params, dict) else params:
        if isinstance(value, int) and not -2 ** 63 <= value < 2 ** 63:
            return InvalidInput(f"the number {shown(value)} is too large to look up (at most 2**63 - 1)")
        if value is not None and not isinstance(value, (str, int, float, bytes, memoryview)):
            return InvalidInput(f"a name or id to look up was given as {type(value).__name__} {shown(value)}; "
                                "give one, as text")
    return exc


def file_identity(path: str) -> tuple[int, int] | None:
    """Which file is at ``path`` now (device, inode), or None when there is none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _gone(path: str, now: tuple[int, int] | None) -> Exception:
    from ....core.errors import StoreGone

    what = "deleted" if now is None else "replaced by another file"
    return StoreGone(f"the workspace database {path} was {what} after this process opened it, so nothing was "
                     "read or written; open the workspace again (any %aml command does, or Client.shared()) — a "
                     "run started before stays tied to the old file")


_open: "weakref.WeakSet[Connection]" = weakref.WeakSet()
#: SQLite handles a forked child inherited: kept referenced there so that they are never closed (nor used)
_inherited: list = []
#: how long a fork waits, at most, for threads to leave SQLite (a connection's lock held longer is not waited for)
FORK_WAIT_S = 1.0
_held: list = []


def _before_fork() -> None:
    deadline = time.monotonic() + FORK_WAIT_S
    for conn in list(_open):
        lock = conn._lock
        if lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            _held.append(lock)


def _after_fork_in_parent() -> None:
    while _held:
        _held.pop().release()


def _after_fork_in_child() -> None:
    _held.clear()
    for conn in list(_open):
        conn._lock = threading.RLock()
        if conn._conn is not None:
            _inherited.append(conn._conn)
            conn._conn = None  # opened again on first use (check_file)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                        after_in_child=_after_fork_in_child)


def _open_settings(conn: sqlite3.Connection) -> None:
    """WAL, NORMAL sync, and a read of the schema. The journal mode is read (and set) without SQLite's busy
    handler: a second process opening the workspace at that moment got "database is locked" at once — so a
    locked answer is tried again for as long as any other wait here."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            if mode.lower() != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL: a committed transaction survives a crash of any process.
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()  # the schema: is it whole?
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


class Connection:
    """The plumbing every row class of the store shares."""

    def __init__(self, path: str | os.PathLike, *, migrate: bool = True):
        self.path = os.path.abspath(os.fspath(path))  # absolute: the file is checked again after a chdir
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._run_pks: dict[str, int] = {}
        self._connect()
        self._file = file_identity(self.path)
        _open.add(self)
        if migrate:
            self.migrate()

    def _connect(self) -> None:
        try:
            conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
            )
        except sqlite3.OperationalError as exc:  # a folder that cannot hold a database (/proc/1, read-only)
            raise _storage_error(exc) from None
        conn.row_factory = sqlite3.Row
        try:
            _open_settings(conn)
        except sqlite3.DatabaseError as exc:
            conn.close()
            if is_damage(exc):
                raise damaged(self.path, exc) from None
            raise _storage_error(exc) from None
        self._conn = conn

    def replaced(self) -> bool:
        """Whether the database file was deleted or replaced since it was opened (one ``stat``, about 1.5 µs)."""
        return self._file is not None and file_identity(self.path) != self._file

    def check_file(self) -> None:
        """Raise when the database file was deleted or replaced since it was opened (and, in a forked child, open
        the child's own handle)."""
        if self._conn is None:
            self._connect()
        if self.replaced():
            raise _gone(self.path, file_identity(self.path))

    def close(self) -> None:
        with self._lock:
            _open.discard(self)  # a forked child leaves it closed (it does not open it again)
            if self._conn is not None:
                self._conn.close()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that takes the write lock up front (queues, never deadlocks)."""
        with self._lock:
            self.check_file()
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise _storage_error(exc) from None
            try:
                yield self._conn
            except BaseException as exc:
                if self._conn.in_transaction:  # SQLite may have rolled back already (disk full)
                    try:
                        self._conn.execute("ROLLBACK")
                    except sqlite3.DatabaseError:
                        pass
                if is_damage(exc):
                    raise damaged(self.path, exc) from None
                if isinstance(exc, sqlite3.OperationalError):
                    raise _storage_error(exc) from None
                raise
            else:
                try:
                    self._conn.execute("COMMIT")
                except sqlite3.OperationalError as exc:
                    if self._conn.in_transaction:
                        self._conn.execute("ROLLBACK")
                    raise _storage_error(exc) from None

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            self.check_file()
            try:
                return self._conn.execute(sql, params).fetchall()
            except UnicodeEncodeError as exc:
                raise _not_encodable(params, exc) from None
            except (sqlite3.ProgrammingError, sqlite3.InterfaceError, OverflowError) as exc:  # (3.10: InterfaceError)
                raise _not_bindable(params, exc) from None
            except sqlite3.DatabaseError as exc:
                if is_damage(exc):
                    raise damaged(self.path, exc) from None
                raise

    def query_one_within(self, sql: str, params: Sequence[Any], seconds: float) -> sqlite3.Row | None:
        """``query_one``, or None when it takes longer than ``seconds`` (SQLite interrupts it: nothing waits on it)."""
        deadline = time.perf_counter() + seconds
        with self._lock:
            self.check_file()
            self._conn.set_progress_handler(lambda: time.perf_counter() > deadline, 10_000)
            try:
                return self._conn.execute(sql, params).fetchone()
            except UnicodeEncodeError as exc:
                raise _not_encodable(params, exc) from None
            except (sqlite3.ProgrammingError, sqlite3.InterfaceError, OverflowError) as exc:  # (3.10: InterfaceError)
                raise _not_bindable(params, exc) from None
            except sqlite3.OperationalError as exc:
                if "interrupted" in str(exc):
                    return None
                raise
            except sqlite3.DatabaseError as exc:
                if is_damage(exc):
                    raise damaged(self.path, exc) from None
                raise
            finally:
                self._conn.set_progress_handler(None, 0)

    def query_one(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        with self._lock:
            self.check_file()
            try:
                return self._conn.execute(sql, params).fetchone()
            except UnicodeEncodeError as exc:
                raise _not_encodable(params, exc) from None
            except (sqlite3.ProgrammingError, sqlite3.InterfaceError, OverflowError) as exc:  # (3.10: InterfaceError)
                raise _not_bindable(params, exc) from None
            except sqlite3.DatabaseError as exc:
                if is_damage(exc):
                    raise damaged(self.path, exc) from None
                raise

    def schema_version(self) -> int:
        return self.query_one("PRAGMA user_version")[0]

    def migrate(self) -> None:
        if self.schema_version() == len(MIGRATIONS):
            return
        with self.write() as c:
            version = c.execute("PRAGMA user_version").fetchone()[0]
            if version > len(MIGRATIONS):
                from ....core.errors import BackendUnavailable

                raise BackendUnavailable(
                    f"workspace database {self.path} has schema version {version}, newer than this "
                    f"aml-magics understands ({len(MIGRATIONS)}); upgrade aml-magics"
                )
            for i in range(version, len(MIGRATIONS)):
                # executescript would COMMIT our transaction, so run statement by statement
                for statement in MIGRATIONS[i].split(";"):
                    if statement.strip():
                        c.execute(statement)
            c.execute(f"PRAGMA user_version={len(MIGRATIONS)}")

    def integrity_check(self) -> list[str]:
        return [r[0] for r in self.query("PRAGMA integrity_check")]
