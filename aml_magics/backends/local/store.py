"""The local workspace's SQLite schema and queries — nothing else.

Stdlib only: run processes import this module to log metrics, so it must stay light.
Several processes share one database (kernels, run hosts, the Jupyter server): WAL mode,
a long busy timeout, and ``BEGIN IMMEDIATE`` for every write so that writers queue instead
of failing on a lock upgrade.
"""
from __future__ import annotations

import json
import os
import sqlite3
import sys
from array import array
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterable, Iterator, Sequence

SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 60_000

ACTIVE_STATES = ("NotStarted", "Queued", "Starting", "Running", "Finalizing")
TERMINAL_STATES = ("Completed", "Failed", "Canceled")
#: states that hold a slot of a compute target's concurrency
SLOT_STATES = ("Starting", "Running", "Finalizing")

# Each entry upgrades the schema from version i to i + 1.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS experiments(
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        created REAL NOT NULL
    );
    CREATE TABLE IF NOT EXISTS computes(
        name TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        max_concurrent INTEGER NOT NULL,
        created REAL NOT NULL
    );
    CREATE TABLE IF NOT EXISTS runs(
        id INTEGER PRIMARY KEY,
        run_id TEXT NOT NULL UNIQUE,
        experiment_id INTEGER NOT NULL REFERENCES experiments(id),
        parent_id INTEGER REFERENCES runs(id),
        display_name TEXT,
        kind TEXT NOT NULL,
        compute TEXT,
        status TEXT NOT NULL,
        created REAL NOT NULL,
        started REAL,
        ended REAL,
        exit_code INTEGER,
        error TEXT,
        traceback TEXT,
        host_pid INTEGER,
        host_start TEXT,
        user_pid INTEGER,
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        spec TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX IF NOT EXISTS runs_by_experiment ON runs(experiment_id, parent_id, id);
    CREATE INDEX IF NOT EXISTS runs_by_status ON runs(status, compute);
    CREATE INDEX IF NOT EXISTS runs_by_parent ON runs(parent_id);
    CREATE TABLE IF NOT EXISTS run_tags(
        run INTEGER NOT NULL, key TEXT NOT NULL, value TEXT,
        PRIMARY KEY(run, key)) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS run_params(
        run INTEGER NOT NULL, key TEXT NOT NULL, value TEXT,
        PRIMARY KEY(run, key)) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS status_history(
        run INTEGER NOT NULL, status TEXT NOT NULL, ts REAL NOT NULL, reason TEXT);
    CREATE INDEX IF NOT EXISTS status_history_by_run ON status_history(run);
    CREATE TABLE IF NOT EXISTS metric_keys(
        id INTEGER PRIMARY KEY,
        run INTEGER NOT NULL,
        name TEXT NOT NULL,
        kind TEXT NOT NULL,
        UNIQUE(run, name));
    -- scalar series: the hot table. One row per series per flush, the points packed as
    -- little-endian arrays (int64 steps, float64 timestamps and values): a flush costs one
    -- row, not one per point. first_index counts the series' points before the chunk, so
    -- "points since cursor" reads touch only the chunks they need.
    CREATE TABLE IF NOT EXISTS metric_chunks(
        key_id INTEGER NOT NULL, first_index INTEGER NOT NULL, n INTEGER NOT NULL,
        steps BLOB NOT NULL, ts BLOB NOT NULL, vals BLOB NOT NULL,
        PRIMARY KEY(key_id, first_index)) WITHOUT ROWID;
    -- strings, rows, tables and images: one JSON payload each
    CREATE TABLE IF NOT EXISTS metric_records(
        id INTEGER PRIMARY KEY, key_id INTEGER NOT NULL, ts REAL NOT NULL, payload TEXT NOT NULL);
    CREATE INDEX IF NOT EXISTS metric_records_by_key ON metric_records(key_id);
    CREATE TABLE IF NOT EXISTS datastores(
        name TEXT PRIMARY KEY, kind TEXT NOT NULL, path TEXT NOT NULL,
        is_default INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL);
    """,
    """
    CREATE TABLE IF NOT EXISTS models(
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        version INTEGER NOT NULL,
        path TEXT NOT NULL,
        entry TEXT NOT NULL,
        framework TEXT,
        description TEXT,
        run_id TEXT,
        created REAL NOT NULL,
        tags TEXT NOT NULL DEFAULT '{}',
        properties TEXT NOT NULL DEFAULT '{}',
        UNIQUE(name, version));
    CREATE INDEX IF NOT EXISTS models_by_run ON models(run_id);
    """,
    """
    CREATE TABLE IF NOT EXISTS deployments(
        name TEXT PRIMARY KEY,
        models TEXT NOT NULL,
        state TEXT NOT NULL,
        host TEXT NOT NULL,
        port INTEGER NOT NULL,
        scoring_uri TEXT NOT NULL,
        supervisor_pid INTEGER,
        supervisor_start TEXT,
        server_pid INTEGER,
        restarts INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        created REAL NOT NULL,
        updated REAL NOT NULL);
    """,
    """
    CREATE TABLE IF NOT EXISTS environments(
        name TEXT NOT NULL,
        version INTEGER NOT NULL,
        hash TEXT NOT NULL,
        packages TEXT NOT NULL,
        created REAL NOT NULL,
        PRIMARY KEY(name, version));
    """,
    """
    ALTER TABLE runs ADD COLUMN cancel_reason TEXT;
    """,
    # the start token of every recorded pid: a recycled pid is never taken for the process we started
    """
    ALTER TABLE runs ADD COLUMN user_start TEXT;
    ALTER TABLE deployments ADD COLUMN server_start TEXT;
    """,
]


def _busy(conn: sqlite3.Connection, compute: str) -> int:
    """Slots of ``compute`` in use: its runs between Starting and Finalizing (a sweep's controller only
    orchestrates, its trials take the slots)."""
    placeholders = ",".join("?" * len(SLOT_STATES))
    return conn.execute(
        f"SELECT COUNT(*) FROM runs WHERE compute=? AND status IN ({placeholders}) AND kind != 'sweep'",
        (compute, *SLOT_STATES),
    ).fetchone()[0]


def is_damage(exc: BaseException) -> bool:
    """Whether SQLite says the file itself is damaged (not a lock, a full disk or a read-only folder)."""
    return isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, (
        sqlite3.OperationalError, sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError,
        sqlite3.DataError, sqlite3.NotSupportedError)) or "malformed" in str(exc) or "not a database" in str(exc)


def damaged(path: str, exc: BaseException) -> Exception:
    """One clear error for a damaged database file, carrying its doctor."""
    from ...core.errors import StoreDamaged

    def examine(recover: bool = False):
        from .recovery import examine_damaged

        return examine_damaged(path, recover=recover)

    return StoreDamaged(f"the workspace database {path} is damaged ({exc}); run %aml doctor (or python -m aml_magics "
                        "doctor) to keep a copy and save what can be saved", examine)


def _storage_error(exc: sqlite3.OperationalError) -> Exception:
    """A clear error for a full disk or a read-only workspace; other errors unchanged."""
    from ...core.errors import StorageError, storage_reason

    reason = storage_reason(exc)
    if reason is None:
        return exc
    return StorageError(f"cannot write to the workspace: {reason} ({exc}); nothing was half-written — "
                        "free space or make the workspace writable, then try again")


class Store:
    """One connection to a workspace database, safe to share between threads."""

    def __init__(self, path: str | os.PathLike, *, migrate: bool = True):
        self.path = os.fspath(path)
        self._lock = threading.RLock()
        try:
            self._conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
            )
        except sqlite3.OperationalError as exc:  # a folder that cannot hold a database (/proc/1, read-only)
            raise _storage_error(exc) from None
        self._conn.row_factory = sqlite3.Row
        self._run_pks: dict[str, int] = {}
        try:
            self._conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            mode = self._conn.execute("PRAGMA journal_mode").fetchone()[0]
            if mode.lower() != "wal":
                self._conn.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL: a committed transaction survives a crash of any process.
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()  # reads the schema: is it whole?
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            if is_damage(exc):
                raise damaged(self.path, exc) from None
            raise _storage_error(exc) from None
        if migrate:
            self.migrate()

    # -- plumbing ---------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that takes the write lock up front (queues, never deadlocks)."""
        with self._lock:
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
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.DatabaseError as exc:
                if is_damage(exc):
                    raise damaged(self.path, exc) from None
                raise

    def query_one(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        with self._lock:
            try:
                return self._conn.execute(sql, params).fetchone()
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
                from ...core.errors import BackendUnavailable

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

    # -- experiments and computes -------------------------------------------------------

    def ensure_experiment(self, name: str) -> int:
        row = self.query_one("SELECT id FROM experiments WHERE name=?", (name,))
        if row:
            return row[0]
        with self.write() as c:
            c.execute("INSERT OR IGNORE INTO experiments(name, created) VALUES(?, ?)", (name, time.time()))
            return c.execute("SELECT id FROM experiments WHERE name=?", (name,)).fetchone()[0]

    def list_experiments(self) -> list[sqlite3.Row]:
        return self.query(
            """SELECT e.name, e.created,
                      (SELECT COUNT(*) FROM runs r WHERE r.experiment_id=e.id AND r.parent_id IS NULL) AS run_count,
                      (SELECT MAX(r.created) FROM runs r WHERE r.experiment_id=e.id) AS last_run
               FROM experiments e ORDER BY e.name"""
        )

    def ensure_compute(self, name: str, kind: str, max_concurrent: int) -> None:
        with self.write() as c:
            c.execute(
                "INSERT OR IGNORE INTO computes(name, kind, max_concurrent, created) VALUES(?,?,?,?)",
                (name, kind, max_concurrent, time.time()),
            )

    def upsert_compute(self, name: str, kind: str, max_concurrent: int) -> None:
        with self.write() as c:
            c.execute(
                """INSERT INTO computes(name, kind, max_concurrent, created) VALUES(?,?,?,?)
                   ON CONFLICT(name) DO UPDATE SET max_concurrent=excluded.max_concurrent""",
                (name, kind, max_concurrent, time.time()),
            )

    def list_computes(self) -> list[sqlite3.Row]:
        placeholders = ",".join("?" * len(SLOT_STATES))
        return self.query(
            f"""SELECT c.*, (SELECT COUNT(*) FROM runs r WHERE r.compute=c.name AND r.status IN ({placeholders}) AND r.kind != 'sweep') AS running,
                           (SELECT COUNT(*) FROM runs r WHERE r.compute=c.name AND r.status='Queued') AS queued
                FROM computes c ORDER BY c.name""",
            SLOT_STATES,
        )

    # -- runs -----------------------------------------------------------------------------

    def create_run(
        self,
        run_id: str,
        experiment: str,
        kind: str,
        *,
        compute: str | None,
        status: str,
        display_name: str | None = None,
        parent_run_id: str | None = None,
        spec: dict | None = None,
        tags: dict | None = None,
    ) -> int:
        exp_id = self.ensure_experiment(experiment)
        parent_pk = self.run_pk(parent_run_id) if parent_run_id else None
        now = time.time()
        with self.write() as c:
            cur = c.execute(
                """INSERT INTO runs(run_id, experiment_id, parent_id, display_name, kind, compute, status,
                                    created, started, spec) VALUES(?,?,?,?,?,?,?,?,?,?)""",
                (
                    run_id, exp_id, parent_pk, display_name, kind, compute, status, now,
                    now if status == "Running" else None, json.dumps(spec or {}),
                ),
            )
            pk = cur.lastrowid
            c.execute("INSERT INTO status_history(run, status, ts) VALUES(?,?,?)", (pk, status, now))
            if tags:
                c.executemany(
                    "INSERT OR REPLACE INTO run_tags(run, key, value) VALUES(?,?,?)",
                    [(pk, k, str(v)) for k, v in tags.items()],
                )
        self._run_pks[run_id] = pk
        return pk

    def insert_finished_run(
        self, run_id: str, experiment: str, kind: str, *, parent_run_id: str | None, display_name: str | None,
        compute: str | None, status: str, started: float, ended: float, params: dict | None = None,
        tags: dict | None = None, scalars: dict[str, float] | None = None,
    ) -> int:
        """A run that already ended (an AutoML trial), with its params, tags and one value per
        metric, written in one transaction: the cheap way to record many small trials."""
        exp_id = self.ensure_experiment(experiment)
        parent_pk = self.run_pk(parent_run_id) if parent_run_id else None
        points = []
        with self.write() as c:
            pk = c.execute(
                """INSERT INTO runs(run_id, experiment_id, parent_id, display_name, kind, compute, status,
                                    created, started, ended, spec) VALUES(?,?,?,?,?,?,?,?,?,?,'{}')""",
                (run_id, exp_id, parent_pk, display_name, kind, compute, status, started, started, ended),
            ).lastrowid
            c.executemany("INSERT INTO status_history(run, status, ts) VALUES(?,?,?)",
                          [(pk, "Running", started), (pk, status, ended)])
            for table, values in (("run_params", params), ("run_tags", tags)):
                if values:
                    c.executemany(f"INSERT OR REPLACE INTO {table}(run, key, value) VALUES(?,?,?)",
                                  [(pk, k, str(v)) for k, v in values.items()])
            for name, value in (scalars or {}).items():
                kid = c.execute("INSERT INTO metric_keys(run, name, kind) VALUES(?,?,'scalar')", (pk, name)).lastrowid
                points.append((kid, 0, ended, float(value)))
            for key_id, n, steps, ts, vals in pack_points(points):
                c.execute("INSERT INTO metric_chunks(key_id, first_index, n, steps, ts, vals) VALUES(?,0,?,?,?,?)",
                          (key_id, n, steps, ts, vals))
        self._run_pks[run_id] = pk
        return pk

    def run_pk(self, run_id: str) -> int | None:
        pk = self._run_pks.get(run_id)
        if pk is None:
            row = self.query_one("SELECT id FROM runs WHERE run_id=?", (run_id,))
            if row is None:
                return None
            pk = self._run_pks[run_id] = row[0]
        return pk

    _RUN_COLUMNS = """r.id, r.run_id, e.name AS experiment, p.run_id AS parent_run_id, r.display_name, r.kind,
        r.compute, r.status, r.created, r.started, r.ended, r.exit_code, r.error, r.traceback,
        r.host_pid, r.host_start, r.user_pid, r.user_start, r.cancel_requested, r.cancel_reason, r.spec"""
    _RUN_FROM = "runs r JOIN experiments e ON e.id=r.experiment_id LEFT JOIN runs p ON p.id=r.parent_id"

    def get_run(self, run_id: str) -> sqlite3.Row | None:
        return self.query_one(f"SELECT {self._RUN_COLUMNS} FROM {self._RUN_FROM} WHERE r.run_id=?", (run_id,))

    def list_runs(
        self,
        *,
        experiment: str | None = None,
        status: Iterable[str] | None = None,
        parent_run_id: str | None = None,
        top_level: bool = True,
        compute: str | None = None,
        limit: int | None = 100,
        offset: int = 0,
    ) -> list[sqlite3.Row]:
        where, params = [], []
        if experiment is not None:
            where.append("e.name=?")
            params.append(experiment)
        if parent_run_id is not None:
            where.append("r.parent_id=(SELECT id FROM runs WHERE run_id=?)")
            params.append(parent_run_id)
        elif top_level:
            where.append("r.parent_id IS NULL")
        if status:
            status = list(status)
            where.append(f"r.status IN ({','.join('?' * len(status))})")
            params.extend(status)
        if compute is not None:
            where.append("r.compute=?")
            params.append(compute)
        sql = f"SELECT {self._RUN_COLUMNS} FROM {self._RUN_FROM}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY r.id DESC"
        if limit is not None:
            sql += " LIMIT ? OFFSET ?"
            params += [limit, offset]
        return self.query(sql, params)

    def count_runs(self, *, experiment: str | None = None, status: Iterable[str] | None = None) -> int:
        where, params = ["r.parent_id IS NULL"], []
        if experiment is not None:
            where.append("e.name=?")
            params.append(experiment)
        if status:
            status = list(status)
            where.append(f"r.status IN ({','.join('?' * len(status))})")
            params.extend(status)
        return self.query_one(f"SELECT COUNT(*) FROM {self._RUN_FROM} WHERE " + " AND ".join(where), params)[0]

    def run_ids(self) -> list[str]:
        return [r[0] for r in self.query("SELECT run_id FROM runs ORDER BY id DESC LIMIT 5000")]

    def update_run(self, run_id: str, **fields: Any) -> None:
        if not fields:
            return
        if "spec" in fields and not isinstance(fields["spec"], str):
            fields["spec"] = json.dumps(fields["spec"])
        cols = ", ".join(f"{k}=?" for k in fields)
        with self.write() as c:
            c.execute(f"UPDATE runs SET {cols} WHERE run_id=?", (*fields.values(), run_id))

    def transition(
        self,
        run_id: str,
        status: str,
        *,
        only_from: Iterable[str] | None = None,
        reason: str | None = None,
        **fields: Any,
    ) -> bool:
        """Move a run to ``status`` (atomically, only from ``only_from`` states when given).

        Returns False (and changes nothing) when the run was not in one of those states.
        """
        now = time.time()
        if status in TERMINAL_STATES:
            fields.setdefault("ended", now)
        if status == "Running":
            fields["started"] = now  # overwritten below only when not yet set
        with self.write() as c:
            row = c.execute("SELECT id, status, started FROM runs WHERE run_id=?", (run_id,)).fetchone()
            if row is None:
                return False
            if only_from is not None and row["status"] not in set(only_from):
                return False
            if row["status"] in TERMINAL_STATES and status not in TERMINAL_STATES:
                return False  # a terminal state is final
            if status == "Running" and row["started"] is not None:
                fields.pop("started")
            fields["status"] = status
            cols = ", ".join(f"{k}=?" for k in fields)
            c.execute(f"UPDATE runs SET {cols} WHERE id=?", (*fields.values(), row["id"]))
            c.execute(
                "INSERT INTO status_history(run, status, ts, reason) VALUES(?,?,?,?)", (row["id"], status, now, reason)
            )
            return True

    def status_history(self, run_id: str) -> list[sqlite3.Row]:
        return self.query(
            "SELECT status, ts, reason FROM status_history WHERE run=? ORDER BY rowid", (self.run_pk(run_id),)
        )

    def busy_slots(self, compute: str) -> int:
        with self._lock:
            return _busy(self._conn, compute)

    def reopen_run(self, run_id: str) -> bool:
        """Failed/Canceled → Starting for a resumed sweep or AutoML run (its history is kept)."""
        now = time.time()
        with self.write() as c:
            cur = c.execute(
                """UPDATE runs SET status='Starting', ended=NULL, exit_code=NULL, error=NULL, traceback=NULL,
                          cancel_requested=0, cancel_reason=NULL WHERE run_id=? AND status IN ('Failed','Canceled')""",
                (run_id,),
            )
            if cur.rowcount != 1:
                return False
            c.execute(
                "INSERT INTO status_history(run, status, ts, reason) SELECT id, 'Starting', ?, 'resumed' FROM runs WHERE run_id=?",
                (now, run_id),
            )
            return True

    def claim_host(self, run_id: str, pid: int, start: str | None) -> bool:
        """A starting host records itself, unless another host already owns the run (atomic)."""
        with self.write() as c:
            cur = c.execute("UPDATE runs SET host_pid=?, host_start=? WHERE run_id=? AND (host_pid IS NULL OR host_pid=?)",
                            (pid, start, run_id, pid))
            return cur.rowcount == 1

    def claim_hostless_start(self, run_id: str, older_than: float) -> bool:
        """A run left Starting without a host since before ``older_than`` (its submitter died between claiming
        the slot and starting the host): claim, once, the right to start its host (atomic)."""
        with self.write() as c:
            cur = c.execute(
                "UPDATE runs SET host_start=? WHERE run_id=? AND status='Starting' AND host_pid IS NULL"
                " AND (host_start IS NULL OR (host_start LIKE 'launch:%' AND CAST(substr(host_start, 8) AS REAL) < ?))"
                " AND (SELECT MAX(ts) FROM status_history WHERE run=runs.id) < ?",
                (f"launch:{time.time()}", run_id, older_than, older_than))
            return cur.rowcount == 1

    def claim_slot(self, run_id: str, compute: str, max_concurrent: int) -> bool:
        """Queued/NotStarted → Starting if the compute target has a free slot (atomic)."""
        now = time.time()
        with self.write() as c:
            busy = _busy(c, compute)
            if busy >= max_concurrent:
                return False
            cur = c.execute(
                "UPDATE runs SET status='Starting' WHERE run_id=? AND status IN ('NotStarted','Queued')", (run_id,)
            )
            if cur.rowcount != 1:
                return False
            c.execute(
                "INSERT INTO status_history(run, status, ts) SELECT id, 'Starting', ? FROM runs WHERE run_id=?",
                (now, run_id),
            )
            return True

    def claim_next_queued(self, compute: str, max_concurrent: int) -> str | None:
        """The oldest Queued run on ``compute``, moved to Starting, if a slot is free."""
        now = time.time()
        with self.write() as c:
            busy = _busy(c, compute)
            if busy >= max_concurrent:
                return None
            row = c.execute(
                "SELECT id, run_id FROM runs WHERE compute=? AND status='Queued' AND kind != 'sweep' ORDER BY id LIMIT 1",
                (compute,),
            ).fetchone()
            if row is None:
                return None
            c.execute("UPDATE runs SET status='Starting' WHERE id=?", (row["id"],))
            c.execute("INSERT INTO status_history(run, status, ts) VALUES(?,'Starting',?)", (row["id"], now))
            return row["run_id"]

    # -- tags and params --------------------------------------------------------------------

    def set_tags(self, run_id: str, tags: dict[str, Any], *, table: str = "run_tags") -> None:
        pk = self.run_pk(run_id)
        with self.write() as c:
            c.executemany(
                f"INSERT OR REPLACE INTO {table}(run, key, value) VALUES(?,?,?)",
                [(pk, str(k), None if v is None else str(v)) for k, v in tags.items()],
            )

    def get_tags(self, run_id: str, *, table: str = "run_tags") -> dict[str, str]:
        return {
            r[0]: r[1] for r in self.query(f"SELECT key, value FROM {table} WHERE run=? ORDER BY key", (self.run_pk(run_id),))
        }

    def tags_for_runs(self, run_pks: Sequence[int], *, table: str = "run_tags") -> dict[int, dict[str, str]]:
        out: dict[int, dict[str, str]] = {pk: {} for pk in run_pks}
        if not run_pks:
            return out
        for r in self.query(
            f"SELECT run, key, value FROM {table} WHERE run IN ({','.join('?' * len(run_pks))})", list(run_pks)
        ):
            out[r[0]][r[1]] = r[2]
        return out

    # -- metrics ----------------------------------------------------------------------------

    def metric_key(self, run_pk: int, name: str, kind: str) -> int:
        """The id of a run's metric ``name`` (created on first use)."""
        row = self.query_one("SELECT id FROM metric_keys WHERE run=? AND name=?", (run_pk, name))
        if row:
            return row[0]
        with self.write() as c:
            c.execute("INSERT OR IGNORE INTO metric_keys(run, name, kind) VALUES(?,?,?)", (run_pk, name, kind))
            return c.execute("SELECT id FROM metric_keys WHERE run=? AND name=?", (run_pk, name)).fetchone()[0]

    def append_metrics(
        self, points: Sequence[tuple[int, int, float, float]], records: Sequence[tuple[int, float, str]] = ()
    ) -> None:
        """Append scalar points ``(key_id, step, ts, value)`` and records ``(key_id, ts, json)`` in one transaction."""
        chunks = pack_points(points)
        with self.write() as c:
            for key_id, n, steps, ts, vals in chunks:
                c.execute(
                    """INSERT INTO metric_chunks(key_id, first_index, n, steps, ts, vals)
                       VALUES(?, (SELECT COALESCE(MAX(first_index + n), 0) FROM metric_chunks WHERE key_id=?), ?, ?, ?, ?)""",
                    (key_id, key_id, n, steps, ts, vals),
                )
            if records:
                c.executemany("INSERT INTO metric_records(key_id, ts, payload) VALUES(?,?,?)", records)

    def metric_keys(self, run_id: str) -> list[sqlite3.Row]:
        return self.query("SELECT id, name, kind FROM metric_keys WHERE run=? ORDER BY id", (self.run_pk(run_id),))

    def series(self, key_id: int, since: int = 0) -> tuple[list[int], list[float], list[float], int]:
        """Points of one scalar series from point index ``since`` on, in logging order:
        ``(steps, timestamps, values, next_cursor)``."""
        steps: list[int] = []
        stamps: list[float] = []
        values: list[float] = []
        end = since
        for first, n, s_blob, t_blob, v_blob in self.query(
            "SELECT first_index, n, steps, ts, vals FROM metric_chunks WHERE key_id=? AND first_index + n > ? "
            "ORDER BY first_index",
            (key_id, since),
        ):
            skip = max(0, since - first)
            steps.extend(unpack("q", s_blob)[skip:])
            stamps.extend(unpack("d", t_blob)[skip:])
            values.extend(unpack("d", v_blob)[skip:])
            end = first + n
        return steps, stamps, values, end

    def records(self, key_id: int) -> list[sqlite3.Row]:
        return self.query("SELECT id, ts, payload FROM metric_records WHERE key_id=? ORDER BY id", (key_id,))

    def latest_values(self, run_id: str) -> dict[str, tuple[str, Any, int]]:
        """name -> (kind, last value, count) for every metric of a run; one query per kind."""
        pk = self.run_pk(run_id)
        out: dict[str, tuple[str, Any, int]] = {}
        for r in self.query(
            """SELECT k.name, c.first_index + c.n AS n, c.vals
               FROM metric_keys k LEFT JOIN metric_chunks c ON c.key_id=k.id
                    AND c.first_index=(SELECT MAX(first_index) FROM metric_chunks WHERE key_id=k.id)
               WHERE k.run=? AND k.kind='scalar' ORDER BY k.id""",
            (pk,),
        ):
            vals = unpack("d", r["vals"]) if r["vals"] else ()
            last = vals[-1] if vals else None
            out[r["name"]] = ("scalar", last, r["n"] or 0)
        for r in self.query(
            """SELECT k.name, k.kind, COUNT(m.id) AS n,
                      (SELECT payload FROM metric_records WHERE key_id=k.id ORDER BY id DESC LIMIT 1) AS last
               FROM metric_keys k LEFT JOIN metric_records m ON m.key_id=k.id
               WHERE k.run=? AND k.kind!='scalar' GROUP BY k.id ORDER BY k.id""",
            (pk,),
        ):
            out[r["name"]] = (r["kind"], json.loads(r["last"]) if r["last"] is not None else None, r["n"])
        return out

    # -- datastores ---------------------------------------------------------------------------

    def ensure_datastore(self, name: str, kind: str, path: str, is_default: bool) -> None:
        with self.write() as c:
            c.execute(
                "INSERT OR IGNORE INTO datastores(name, kind, path, is_default, created) VALUES(?,?,?,?,?)",
                (name, kind, path, int(is_default), time.time()),
            )

    def list_datastores(self) -> list[sqlite3.Row]:
        return self.query("SELECT * FROM datastores ORDER BY is_default DESC, name")


# -- packed series ------------------------------------------------------------------------------

_SWAP = sys.byteorder != "little"


def _pack(typecode: str, items: list) -> bytes:
    a = array(typecode, items)
    if _SWAP:  # pragma: no cover - big-endian machines
        a.byteswap()
    return a.tobytes()


def unpack(typecode: str, blob: bytes) -> array:
    a = array(typecode)
    blob = blob or b""
    a.frombytes(blob[: len(blob) - len(blob) % a.itemsize])  # a torn blob yields its whole items
    if _SWAP:  # pragma: no cover
        a.byteswap()
    return a


def pack_points(points: Sequence[tuple[int, int, float, float]]) -> list[tuple[int, int, bytes, bytes, bytes]]:
    """Group ``(key_id, step, ts, value)`` rows by series, keeping order: ``(key_id, n, steps, ts, vals)``."""
    groups: dict[int, tuple[list, list, list]] = {}
    for key_id, step, ts, value in points:
        g = groups.get(key_id)
        if g is None:
            g = groups[key_id] = ([], [], [])
        g[0].append(step)
        g[1].append(ts)
        g[2].append(value)
    return [(k, len(g[0]), _pack("q", g[0]), _pack("d", g[1]), _pack("d", g[2])) for k, g in groups.items()]


class ModelRows:
    """Queries of the model registry (kept beside the schema they read)."""

    def __init__(self, store: Store):
        self.store = store

    def insert_next_version(self, name: str, make_folder, **fields: Any) -> sqlite3.Row:
        """Allocate the next version of ``name`` and insert it in one write transaction.

        ``make_folder(version)`` moves the staged files into place (an atomic rename) inside the
        transaction: either the record and its files both exist, or neither does.
        """
        with self.store.write() as c:
            version = c.execute("SELECT COALESCE(MAX(version), 0) + 1 FROM models WHERE name=?", (name,)).fetchone()[0]
            path = make_folder(version)
            c.execute(
                """INSERT INTO models(name, version, path, entry, framework, description, run_id, created, tags, properties)
                   VALUES(?,?,?,?,?,?,?,?,?,?)""",
                (name, version, str(path), fields["entry"], fields.get("framework"), fields.get("description"),
                 fields.get("run_id"), time.time(), json.dumps(fields.get("tags") or {}),
                 json.dumps(fields.get("properties") or {})),
            )
            return c.execute("SELECT * FROM models WHERE name=? AND version=?", (name, version)).fetchone()

    def get(self, name: str, version: int | None = None) -> sqlite3.Row | None:
        if version is None:
            return self.store.query_one("SELECT * FROM models WHERE name=? ORDER BY version DESC LIMIT 1", (name,))
        return self.store.query_one("SELECT * FROM models WHERE name=? AND version=?", (name, version))

    def list(self, name: str | None = None, run_id: str | None = None, limit: int | None = None,
             offset: int = 0) -> list[sqlite3.Row]:
        where, params = [], []
        if name is not None:
            where.append("name=?")
            params.append(name)
        if run_id is not None:
            where.append("run_id=?")
            params.append(run_id)
        sql = "SELECT * FROM models" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY name, version DESC"
        if limit is not None:
            sql += " LIMIT ? OFFSET ?"
            params += [limit, offset]
        return self.store.query(sql, params)

    def names(self) -> list[str]:
        return [r[0] for r in self.store.query("SELECT DISTINCT name FROM models ORDER BY name")]

    def update_tags(self, name: str, version: int, tags: dict[str, Any]) -> None:
        with self.store.write() as c:
            row = c.execute("SELECT tags FROM models WHERE name=? AND version=?", (name, version)).fetchone()
            merged = {**json.loads(row[0]), **{k: str(v) for k, v in tags.items()}}
            c.execute("UPDATE models SET tags=? WHERE name=? AND version=?", (json.dumps(merged), name, version))
