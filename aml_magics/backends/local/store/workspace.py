"""Experiments, compute targets and datastores of the local workspace."""
from __future__ import annotations

import sqlite3
import time

from ....core.states import SLOT_STATES


class WorkspaceRows:
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
                      (SELECT created FROM runs WHERE id=(SELECT MAX(r.id) FROM runs r WHERE r.experiment_id=e.id))
                          AS last_run
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
            f"""SELECT c.*, (SELECT COUNT(*) FROM runs r WHERE r.compute=c.name AND r.status IN ({placeholders}) AND r.kind NOT IN ('sweep','pipeline')) AS running,
                           (SELECT COUNT(*) FROM runs r WHERE r.compute=c.name AND r.status='Queued') AS queued
                FROM computes c ORDER BY c.name""",
            SLOT_STATES,
        )

    def ensure_datastore(self, name: str, kind: str, path: str, is_default: bool) -> None:
        with self.write() as c:
            c.execute(
                "INSERT OR IGNORE INTO datastores(name, kind, path, is_default, created) VALUES(?,?,?,?,?)",
                (name, kind, path, int(is_default), time.time()),
            )

    def list_datastores(self) -> list[sqlite3.Row]:
        return self.query("SELECT * FROM datastores ORDER BY is_default DESC, name")

    def count_experiments(self) -> int:
        return self.query_one("SELECT COUNT(*) FROM experiments")[0]

    def has_experiment(self, name: str) -> bool:
        return self.query_one("SELECT 1 FROM experiments WHERE name=?", (name,)) is not None

    def compute_limit(self, name: str) -> int | None:
        """The slots of compute target ``name``; None when there is no such target."""
        row = self.query_one("SELECT max_concurrent FROM computes WHERE name=?", (name,))
        return None if row is None else row[0]

    def compute_names(self) -> list[str]:
        return [r[0] for r in self.query("SELECT name FROM computes ORDER BY name")]

    def has_datastores(self) -> bool:
        return self.query_one("SELECT 1 FROM datastores LIMIT 1") is not None
