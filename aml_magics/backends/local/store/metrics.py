"""Metrics: scalar series packed per flush (one row per series per flush, little-endian arrays of int64 steps and
float64 times and values), and records (strings, rows, tables, images) as JSON."""
from __future__ import annotations

import json
import sqlite3
import sys
from array import array
from typing import Any, Sequence


# The end of a series (the index its next point gets) and the first chunk holding point ``?`` of it, both found by
# one seek in the primary key (key_id, first_index): a series of a million flushes costs the same as one of ten.
SERIES_END = "COALESCE((SELECT first_index + n FROM metric_chunks WHERE key_id=? ORDER BY first_index DESC LIMIT 1), 0)"
CHUNK_OF = "COALESCE((SELECT MAX(first_index) FROM metric_chunks WHERE key_id=? AND first_index <= ?), 0)"


class MetricRows:
    def metric_key_row(self, run_pk: int, name: str) -> tuple[int, str] | None:
        """(key id, kind) of a run's metric ``name``, or None before it was first logged."""
        row = self.query_one("SELECT id, kind FROM metric_keys WHERE run=? AND name=?", (run_pk, name))
        return None if row is None else (row[0], row[1])

    def key_kind(self, key_id: int) -> str | None:
        row = self.query_one("SELECT kind FROM metric_keys WHERE id=?", (key_id,))
        return None if row is None else row[0]

    def series_length(self, key_id: int) -> int:
        """How many points a scalar series holds (the next step a writer counts from)."""
        return self.query_one(f"SELECT {SERIES_END}", (key_id,))[0]

    def scalar_key(self, run_id: str, name: str) -> int | None:
        row = self.query_one("SELECT id FROM metric_keys WHERE run=? AND name=? AND kind='scalar'",
                             (self.run_pk(run_id), name))
        return None if row is None else row[0]

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
        self.append_packed(pack_points(points), records)

    def append_packed(
        self, chunks: list[tuple[int, int, bytes, bytes, bytes]], records: Sequence[tuple[int, float, str]] = (),
        new_keys: dict[int, tuple[int, str, str]] | None = None, resolved: dict[int, int] | None = None,
    ) -> dict[int, tuple[int, str]]:
        """Append packed series (``pack_points``) and records in one transaction.

        ``new_keys``: ``{provisional id: (run, name, kind)}`` of names made in the same transaction, so that no reader
        sees a new name before its first values. Rows of a provisional (negative) id are written under the real id
        of the name made now or of ``resolved`` (``{provisional id: real id}``, made earlier), and dropped when there
        is none (0: the name is stored with another kind — another process made it first). Returns
        ``{provisional id: (real id, stored kind)}`` of the names made."""
        made: dict[int, tuple[int, str]] = {}
        with self.write() as c:
            for kid, (run_pk, name, kind) in (new_keys or {}).items():
                c.execute("INSERT OR IGNORE INTO metric_keys(run, name, kind) VALUES(?,?,?)", (run_pk, name, kind))
                made[kid] = tuple(c.execute("SELECT id, kind FROM metric_keys WHERE run=? AND name=?",
                                            (run_pk, name)).fetchone())
            if made or resolved:
                now = {kid: made[kid][0] if made[kid][1] == new_keys[kid][2] else 0 for kid in made}
                older = resolved or {}

                def real(kid: int) -> int:
                    return kid if kid > 0 else now[kid] if kid in now else older.get(kid, 0)

                chunks = [ch if ch[0] > 0 else (real(ch[0]),) + tuple(ch[1:]) for ch in chunks]
                chunks = [ch for ch in chunks if ch[0] > 0]
                records = [r for r in ((real(r[0]), r[1], r[2]) if r[0] <= 0 else r for r in records) if r[0] > 0]
            _insert_rows(c, chunks, records)
        return made

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
            f"SELECT first_index, n, steps, ts, vals FROM metric_chunks WHERE key_id=? AND first_index >= {CHUNK_OF} "
            "ORDER BY first_index",
            (key_id, key_id, since),
        ):
            skip = max(0, since - first)
            steps.extend(unpack("q", s_blob)[skip:])
            stamps.extend(unpack("d", t_blob)[skip:])
            values.extend(unpack("d", v_blob)[skip:])
            end = first + n
        return steps, stamps, values, end

    def records(self, key_id: int) -> list[sqlite3.Row]:
        return self.query("SELECT id, ts, payload FROM metric_records WHERE key_id=? ORDER BY id", (key_id,))

    def latest_scalars_for_runs(self, run_pks: Sequence[int]) -> dict[int, dict[str, float | None]]:
        """run pk -> {name: last value} of every scalar series of those runs, in one query (a page of a run list)."""
        out: dict[int, dict[str, float | None]] = {pk: {} for pk in run_pks}
        if not run_pks:
            return out
        for run, name, vals in self.query(
            f"""SELECT k.run, k.name, c.vals
               FROM metric_keys k LEFT JOIN metric_chunks c ON c.key_id=k.id
                    AND c.first_index=(SELECT MAX(first_index) FROM metric_chunks WHERE key_id=k.id)
               WHERE k.run IN ({','.join('?' * len(run_pks))}) AND k.kind='scalar' ORDER BY k.id""",
            list(run_pks),
        ):
            last = unpack("d", vals[-8:]) if vals else ()
            out[run][name] = last[-1] if last else None
        return out

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


def _insert_rows(c: sqlite3.Connection, chunks: list, records: Sequence[tuple[int, float, str]]) -> None:
    for key_id, n, steps, ts, vals in chunks:
        c.execute(
            f"""INSERT INTO metric_chunks(key_id, first_index, n, steps, ts, vals)
               VALUES(?, {SERIES_END}, ?, ?, ?, ?)""",
            (key_id, key_id, n, steps, ts, vals),
        )
    if records:
        c.executemany("INSERT INTO metric_records(key_id, ts, payload) VALUES(?,?,?)", records)
