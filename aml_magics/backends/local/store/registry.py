"""The model registry's, environments' and deployments' rows."""
from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

class ModelRows:
    """Queries of the model registry (kept beside the schema they read)."""

    def __init__(self, store):
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

    def files(self) -> list[sqlite3.Row]:
        """Every version's folder and entry (the doctor checks they exist)."""
        return self.store.query("SELECT name, version, path, entry FROM models")


class EnvironmentRows:
    """Environments: a name's versions, each a content hash and its package list."""

    def __init__(self, store):
        self.store = store

    def save(self, name: str, digest: str, packages: list[str]) -> int:
        """The version of ``name`` with this content: the latest when its hash matches, else a new one."""
        with self.store.write() as c:
            latest = c.execute("SELECT version, hash FROM environments WHERE name=? ORDER BY version DESC LIMIT 1",
                               (name,)).fetchone()
            if latest is not None and latest["hash"] == digest:
                return latest["version"]
            version = (latest["version"] + 1) if latest else 1
            c.execute("INSERT INTO environments(name, version, hash, packages, created) VALUES(?,?,?,?,?)",
                      (name, version, digest, json.dumps(packages), time.time()))
            return version

    def get(self, name: str, version: int | None = None) -> sqlite3.Row | None:
        sql = "SELECT * FROM environments WHERE name=?" + (" AND version=?" if version else "") + \
              " ORDER BY version DESC LIMIT 1"
        return self.store.query_one(sql, (name, version) if version else (name,))

    def names(self) -> list[str]:
        return [r[0] for r in self.store.query("SELECT DISTINCT name FROM environments ORDER BY name")]

    def versions(self) -> list[tuple[str, int]]:
        return [(r[0], r[1]) for r in self.store.query("SELECT name, version FROM environments ORDER BY name, version DESC")]


class DeploymentRows:
    """Scoring services: one row each, written by the deploying process and by the service's supervisor."""

    def __init__(self, store):
        self.store = store

    def get(self, name: str) -> sqlite3.Row | None:
        return self.store.query_one("SELECT * FROM deployments WHERE name=?", (name,))

    def names(self) -> list[str]:
        return [r[0] for r in self.store.query("SELECT name FROM deployments ORDER BY name")]

    def all(self) -> list[sqlite3.Row]:
        return self.store.query("SELECT * FROM deployments ORDER BY name")

    def insert(self, name: str, models: list[str], host: str, port: int, uri: str) -> bool:
        """A new service, Transitioning; False when the name was taken meanwhile."""
        now = time.time()
        with self.store.write() as c:
            try:
                c.execute("""INSERT INTO deployments(name, models, state, host, port, scoring_uri, created, updated)
                             VALUES(?,?,?,?,?,?,?,?)""", (name, json.dumps(models), "Transitioning", host, port, uri,
                                                          now, now))
            except sqlite3.IntegrityError:
                return False
        return True

    def set_models(self, name: str, models: list[str]) -> None:
        with self.store.write() as c:
            c.execute("UPDATE deployments SET models=?, updated=? WHERE name=?", (json.dumps(models), time.time(), name))

    def set_state(self, name: str, state: str, error: str | None = None, **fields: Any) -> None:
        fields.update(state=state, error=error, updated=time.time())
        cols = ", ".join(f"{k}=?" for k in fields)
        with self.store.write() as c:
            c.execute(f"UPDATE deployments SET {cols} WHERE name=?", (*fields.values(), name))

    def fail_if_still(self, name: str, state: str, error: str) -> None:
        """Failed with ``error`` — only if it is still in ``state`` (another process may have moved it on)."""
        with self.store.write() as c:
            c.execute("UPDATE deployments SET state='Failed', error=?, updated=? WHERE name=? AND state=?",
                      (error, time.time(), name, state))

    def set_supervisor(self, name: str, pid: int, token: str | None) -> None:
        with self.store.write() as c:
            c.execute("UPDATE deployments SET supervisor_pid=?, supervisor_start=? WHERE name=?", (pid, token, name))

    def delete(self, name: str) -> None:
        with self.store.write() as c:
            c.execute("DELETE FROM deployments WHERE name=?", (name,))
