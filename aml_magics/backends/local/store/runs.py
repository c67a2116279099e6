"""Runs: creation, state changes (compare-and-set: a terminal state is final, a transition only from the states
it names — one atomic ``UPDATE``), slots of compute targets, hosts, tags and params."""
from __future__ import annotations

import json
import sqlite3
import time
from typing import Any, Iterable, Sequence

from ....core.states import SLOT_STATES, TERMINAL_STATES
from .metrics import pack_points


def _busy(conn: sqlite3.Connection, compute: str) -> int:
    """Slots of ``compute`` in use: its runs between Starting and Finalizing (a sweep's controller only
    orchestrates, its trials take the slots)."""
    placeholders = ",".join("?" * len(SLOT_STATES))
    return conn.execute(
        f"SELECT COUNT(*) FROM runs WHERE compute=? AND status IN ({placeholders}) AND kind NOT IN ('sweep','pipeline')",
        (compute, *SLOT_STATES),
    ).fetchone()[0]


class RunRows:
    _RUN_COLUMNS = """r.id, r.run_id, e.name AS experiment, p.run_id AS parent_run_id, r.display_name, r.kind,
        r.compute, r.status, r.created, r.started, r.ended, r.exit_code, r.error, r.traceback,
        r.host_pid, r.host_start, r.user_pid, r.user_start, r.cancel_requested, r.cancel_reason, r.spec"""
    _RUN_FROM = "runs r JOIN experiments e ON e.id=r.experiment_id LEFT JOIN runs p ON p.id=r.parent_id"

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

    def _run_filters(self, experiment, status, parent_run_id, top_level, compute, tags) -> tuple[str, list[str], list]:
        """(FROM clause, conditions, parameters) of a run query. With a tag of a given value, the query starts from
        the tag index (key, value, run): its runs come newest first, so a page stops early, whatever the filter
        matches; other filters are checked per run along the way."""
        source, where, params = "runs r", [], []
        tags = dict(tags or {})
        driving = next((k for k, v in tags.items() if v is not None), None)
        if driving is not None:
            source = "run_tags d JOIN runs r ON r.id=d.run"
            where.append("d.key=? AND d.value=?")
            params += [driving, tags.pop(driving)]
        if experiment is not None:
            where.append("r.experiment_id=(SELECT id FROM experiments WHERE name=?)")
            params.append(experiment)
        if parent_run_id is not None:
            where.append("r.parent_id=(SELECT id FROM runs WHERE run_id=?)")
            params.append(parent_run_id)
        elif top_level:
            # runs that are not over are few: find them by status (a unary + keeps SQLite off the parent index)
            rare = bool(status) and not set(status) & {"Completed", "Failed", "Canceled"}
            where.append("+r.parent_id IS NULL" if rare else "r.parent_id IS NULL")
        if status:
            status = list(status)
            where.append(f"r.status IN ({','.join('?' * len(status))})")
            params.extend(status)
        if compute is not None:
            where.append("r.compute=?")
            params.append(compute)
        for key, value in tags.items():
            if value is None:  # the tag is set, whatever its value
                where.append("EXISTS(SELECT 1 FROM run_tags t WHERE t.run=r.id AND t.key=?)")
                params.append(key)
            else:
                where.append("EXISTS(SELECT 1 FROM run_tags t WHERE t.run=r.id AND t.key=? AND t.value=?)")
                params += [key, value]
        return source, where, params

    def list_runs(
        self,
        *,
        experiment: str | None = None,
        status: Iterable[str] | None = None,
        parent_run_id: str | None = None,
        top_level: bool = True,
        compute: str | None = None,
        tags: dict[str, str | None] | None = None,
        limit: int | None = 100,
        offset: int = 0,
    ) -> list[sqlite3.Row]:
        """Runs newest first. The page is walked newest first through an index and stops when full, so a page costs
        about the same in a workspace of a thousand runs and of a million."""
        source, where, params = self._run_filters(experiment, status, parent_run_id, top_level, compute, tags)
        order = "d.run" if source.startswith("run_tags") else "r.id"
        page = f"SELECT r.id FROM {source}"
        if where:
            page += " WHERE " + " AND ".join(where)
        page += f" ORDER BY {order} DESC"
        if limit is not None:
            page += " LIMIT ? OFFSET ?"
            params += [limit, offset]
        return self.query(f"SELECT {self._RUN_COLUMNS} FROM {self._RUN_FROM} WHERE r.id IN ({page}) ORDER BY r.id DESC",
                          params)

    def count_runs(self, *, experiment: str | None = None, status: Iterable[str] | None = None,
                   tags: dict[str, str | None] | None = None, cap: int | None = None,
                   within: float | None = None) -> int | None:
        """How many top-level runs match; with ``cap``, counting stops there (the answer is then ``cap``: "at least");
        with ``within`` seconds, None when counting would take longer."""
        source, where, params = self._run_filters(experiment, status, None, True, None, tags)
        inner = f"SELECT 1 FROM {source} WHERE " + " AND ".join(where)
        if cap is not None:
            inner += " LIMIT ?"
            params.append(cap)
        sql = f"SELECT COUNT(*) FROM ({inner})"
        if within is None:
            return self.query_one(sql, params)[0]
        row = self.query_one_within(sql, params, within)
        return None if row is None else row[0]

    def run_ids(self) -> list[str]:
        return [r[0] for r in self.query("SELECT run_id FROM runs ORDER BY id DESC LIMIT 5000")]

    def run_ids_matching(self, part: str, limit: int) -> list[str]:
        """Ids that start or end with ``part``, newest first — over every run (a scan in SQLite: searching only the
        newest 5,000 ids said "not found" for a unique part of an older run)."""
        n = len(part)
        sql = ("SELECT run_id FROM runs WHERE substr(run_id, 1, ?) = ? OR substr(run_id, -?) = ? "
               "ORDER BY id DESC LIMIT ?")
        return [r[0] for r in self.query(sql, (n, part, n, part, limit))]

    def run_ids_named(self, display_name: str, limit: int) -> list[str]:
        """Ids of top-level runs with this display name, newest first (a scan: asked only for a name that is no id
        nor a part of one)."""
        sql = "SELECT run_id FROM runs WHERE display_name = ? AND parent_id IS NULL ORDER BY id DESC LIMIT ?"
        return [r[0] for r in self.query(sql, (display_name, limit))]

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
            self.check_file()
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
                "SELECT id, run_id FROM runs WHERE compute=? AND status='Queued' AND kind NOT IN ('sweep','pipeline') ORDER BY id LIMIT 1",
                (compute,),
            ).fetchone()
            if row is None:
                return None
            c.execute("UPDATE runs SET status='Starting' WHERE id=?", (row["id"],))
            c.execute("INSERT INTO status_history(run, status, ts) VALUES(?,'Starting',?)", (row["id"], now))
            return row["run_id"]

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

    def run_version(self, run_id: str) -> tuple | None:
        """What a dashboard shows of a run: status, end, counts of points, records and children's state changes,
        the tags themselves (a value can change: an AutoML run's phase), the count of params — None for an unknown
        run."""
        row = self.query_one(
            """SELECT r.status, r.ended,
                 (SELECT COALESCE(SUM(c.n), 0) FROM metric_keys k JOIN metric_chunks c ON c.key_id=k.id WHERE k.run=r.id),
                 (SELECT COUNT(*) FROM metric_keys k JOIN metric_records m ON m.key_id=k.id WHERE k.run=r.id),
                 (SELECT COUNT(*) FROM status_history h WHERE h.run IN (SELECT id FROM runs WHERE parent_id=r.id)),
                 (SELECT group_concat(t.key || '=' || COALESCE(t.value, ''), char(31)) FROM run_tags t WHERE t.run=r.id),
                 (SELECT COUNT(*) FROM run_params p WHERE p.run=r.id)
               FROM runs r WHERE r.run_id=?""",
            (run_id,),
        )
        return None if row is None else tuple(row)

    def hosted_in_slots(self) -> list[sqlite3.Row]:
        """Runs holding a slot that a host owns (not interactive logging): the doctor checks their processes."""
        placeholders = ",".join("?" * len(SLOT_STATES))
        return self.query(f"SELECT run_id, kind, host_pid, host_start, user_pid, user_start FROM runs WHERE status IN "
                          f"({placeholders}) AND kind NOT IN ('interactive','child')", SLOT_STATES)

    def ended_with_processes(self) -> list[sqlite3.Row]:
        placeholders = ",".join("?" * len(TERMINAL_STATES))
        return self.query(f"SELECT run_id, user_pid, user_start FROM runs WHERE user_pid IS NOT NULL AND status IN "
                          f"({placeholders})", TERMINAL_STATES)

    def every_run(self) -> list[sqlite3.Row]:
        return self.query("SELECT run_id, kind, status, started FROM runs")
