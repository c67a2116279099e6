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

    def list_experiments(self) -> list[dict]:
        """Every experiment with its number of top-level runs and when its last run was created. Runs are never
        deleted and their ids only grow, so the counts are kept between calls and brought up to date from the runs
        added since: a sidebar refresh costs what changed, not a scan of a year of runs. The kept counts are
        dropped when the run they end at is no longer the same row (a store put back by ``doctor --recover``)."""
        kept = getattr(self, "_experiment_counts", None)
        since, counts = 0, {}
        if kept is not None:
            row = self.query_one("SELECT created FROM runs WHERE id=?", (kept[0],))
            if row is not None and row[0] == kept[1]:
                since, counts = kept[0], dict(kept[2])
        added = self.query(
            """SELECT g.experiment_id, g.n, g.last, (SELECT created FROM runs WHERE id=g.last) AS last_created
               FROM (SELECT experiment_id, SUM(parent_id IS NULL) AS n, MAX(id) AS last FROM runs WHERE id > ?
                     GROUP BY experiment_id) g""", (since,))
        top = kept if since else None
        for r in added:
            n = counts.get(r["experiment_id"], (0, None))[0]
            counts[r["experiment_id"]] = (n + r["n"], r["last_created"])
            if top is None or r["last"] > top[0]:
                top = (r["last"], r["last_created"])
        if top is not None:
            self._experiment_counts = (top[0], top[1], counts)
        return [{"name": e["name"], "created": e["created"], "run_count": counts.get(e["id"], (0, None))[0],
                 "last_run": counts.get(e["id"], (0, None))[1]}
                for e in self.query("SELECT id, name, created FROM experiments ORDER BY name")]

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
