"""A damaged workspace database: keep a copy, save what can be saved into a fresh store, say what was saved.

``examine_damaged(path)`` is what ``%aml doctor`` does when ``aml.db`` cannot be read (an overwritten
header, a truncated file, bad pages): it copies the damaged file (with its WAL) aside as
``aml.db.damaged-<time>``, salvages every row it can still read into ``aml.db.recovered`` and reports, table
by table, what was saved. Nothing is replaced until the user asks: ``%aml doctor --recover`` (or
``python -m aml_magics doctor --recover``) puts the recovered store in place, keeping the damaged copy.

Salvage reads each table whole when it can; where a bad page stops a scan it reads on in key ranges,
stepping over what cannot be read. A file whose header was overwritten gets a rebuilt header (the page
size is found by trying the sizes SQLite allows) before anything is read.
"""
from __future__ import annotations

import os
import shutil
import sqlite3
import time
from pathlib import Path

from ...common.doctor import DoctorReport
from .connection import file_identity

MAGIC = b"SQLite format 3\x00"
PAGE_SIZES = (4096, 1024, 2048, 8192, 16384, 32768, 65536, 512)
STEP = 500

#: called with the database's path after a recovered store took its place (the tracker forgets its connection)
ON_REPLACED: list = []


def _readable(path: Path) -> bool:
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            return True
        finally:
            conn.close()
    except sqlite3.DatabaseError:
        return False


def _with_rebuilt_header(path: Path) -> Path | None:
    """A copy of ``path`` with a fresh SQLite header and the first page size at which its schema reads."""
    data = path.read_bytes()
    if len(data) < 512:
        return None
    for size in PAGE_SIZES:
        template = path.with_name(path.name + f".header-{size}")
        template.unlink(missing_ok=True)
        conn = sqlite3.connect(template)
        conn.execute(f"PRAGMA page_size={size}")
        conn.execute("CREATE TABLE _t(x)")
        conn.commit()
        conn.close()
        header = bytearray(template.read_bytes()[:100])
        template.unlink()
        header[28:32] = b"\x00\x00\x00\x00"  # page count: let SQLite count the pages from the file's size
        header[18:20] = b"\x01\x01"  # rollback journal: the WAL (if any) was copied and is read separately
        candidate = path.with_name(path.name + f".rebuilt-{size}")
        candidate.write_bytes(bytes(header) + data[100:])
        if _readable(candidate):
            return candidate
        candidate.unlink()
    return None


def _tables(conn: sqlite3.Connection) -> list[str]:
    try:
        return [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'")]
    except sqlite3.DatabaseError:
        from .schema import MIGRATIONS
        import re

        return sorted({m.group(1) for text in MIGRATIONS
                       for m in re.finditer(r"CREATE TABLE IF NOT EXISTS (\w+)", text)})


def _key_columns(conn: sqlite3.Connection, table: str) -> list[str] | None:
    """The ordered key of a table: rowid for ordinary tables, the primary key of WITHOUT ROWID ones."""
    try:
        conn.execute(f"SELECT rowid FROM {table} LIMIT 0")
        return ["rowid"]
    except sqlite3.DatabaseError:
        pass
    try:
        cols = sorted((r[5], r[1]) for r in conn.execute(f"PRAGMA table_info({table})") if r[5])
        return [c for _, c in cols] or None
    except sqlite3.DatabaseError:
        return None


#: WITHOUT ROWID tables read key by key, the keys taken from the table already salvaged that they belong to
LEADS = {"run_tags": ("run", "SELECT id FROM runs"), "run_params": ("run", "SELECT id FROM runs"),
         "metric_chunks": ("key_id", "SELECT id FROM metric_keys")}


def _rowids(src: sqlite3.Connection, table: str) -> list[int]:
    """Rowids of a table as its indexes know them (index pages may be whole where table pages are not); without a
    readable index, every rowid up to the first long run of misses."""
    found: set[int] = set()
    try:
        indexes = [r[1] for r in src.execute(f"PRAGMA index_list({table})")]
    except sqlite3.DatabaseError:
        indexes = []
    for index in indexes:
        try:
            found.update(r[0] for r in src.execute(f'SELECT rowid FROM {table} INDEXED BY "{index}"'))
        except sqlite3.DatabaseError:
            continue
    if found:
        return sorted(found)
    misses, rowid, out = 0, 0, []
    while misses < 2000 and rowid < 10_000_000:
        rowid += 1
        try:
            hit = src.execute(f"SELECT 1 FROM {table} WHERE rowid=?", (rowid,)).fetchone()
        except sqlite3.DatabaseError:
            hit = True  # a row is there, on a bad page
        if hit:
            out.append(rowid)
            misses = 0
        else:
            misses += 1
    return out


def _salvage_table(src: sqlite3.Connection, dst: sqlite3.Connection, table: str) -> tuple[int, bool]:
    """Copy the readable rows of ``table``: (rows saved, whether some could not be read)."""
    try:
        dst_cols = [r[1] for r in dst.execute(f"PRAGMA table_info({table})")]
    except sqlite3.DatabaseError:
        return 0, True
    if not dst_cols:
        return 0, False  # a table this aml-magics does not have
    try:
        src_cols = [r[1] for r in src.execute(f"PRAGMA table_info({table})")] or dst_cols
    except sqlite3.DatabaseError:
        src_cols = dst_cols
    cols = [c for c in dst_cols if c in src_cols]
    col_list = ", ".join(cols)
    insert = f"INSERT OR IGNORE INTO {table}({col_list}) VALUES({', '.join('?' * len(cols))})"
    select = f"SELECT {col_list} FROM {table}"
    try:
        rows = src.execute(select).fetchall()
        dst.executemany(insert, rows)
        return len(rows), False
    except sqlite3.DatabaseError:
        pass
    saved, lost = 0, True
    if table in LEADS:  # WITHOUT ROWID: one key at a time
        lead, keys_sql = LEADS[table]
        for (value,) in dst.execute(keys_sql).fetchall():
            try:
                rows = src.execute(f"{select} WHERE {lead}=?", (value,)).fetchall()
            except sqlite3.DatabaseError:
                continue
            dst.executemany(insert, rows)
            saved += len(rows)
        return saved, lost
    if _key_columns(src, table) != ["rowid"]:
        return 0, lost
    ids = _rowids(src, table)
    for start in range(0, len(ids), STEP):
        chunk = ids[start:start + STEP]
        try:
            rows = src.execute(f"{select} WHERE rowid IN ({','.join('?' * len(chunk))})", chunk).fetchall()
        except sqlite3.DatabaseError:  # a bad page among them: one by one
            rows = []
            for rowid in chunk:
                try:
                    rows += src.execute(f"{select} WHERE rowid=?", (rowid,)).fetchall()
                except sqlite3.DatabaseError:
                    continue
        dst.executemany(insert, rows)
        saved += len(rows)
    return saved, lost


CACHES = ("metric_summaries",)  # derived from other tables, rebuilt when read: not salvaged

ORPHANS = (  # rows that belong to a row that was lost: they would otherwise attach to a new run with its id
    ("run_tags", "run NOT IN (SELECT id FROM runs)"),
    ("run_params", "run NOT IN (SELECT id FROM runs)"),
    ("status_history", "run NOT IN (SELECT id FROM runs)"),
    ("metric_keys", "run NOT IN (SELECT id FROM runs)"),
    ("metric_chunks", "key_id NOT IN (SELECT id FROM metric_keys)"),
    ("metric_records", "key_id NOT IN (SELECT id FROM metric_keys)"),
)


def _drop_orphans(dst: sqlite3.Connection) -> dict[str, int]:
    dropped: dict[str, int] = {}
    # a child run whose parent was lost is kept, as a top-level run
    dst.execute("UPDATE runs SET parent_id=NULL WHERE parent_id IS NOT NULL AND parent_id NOT IN (SELECT id FROM runs)")
    for table, where in ORPHANS:
        n = dst.execute(f"DELETE FROM {table} WHERE {where}").rowcount
        if n > 0:
            dropped[table] = dropped.get(table, 0) + n
    return dropped


def salvage(damaged: Path, target: Path) -> tuple[list[tuple[str, int, bool]], str]:
    """Rows of ``damaged`` into a fresh store at ``target``: ([(table, rows saved, rows lost?)], how it was read)."""
    from . import Store

    source, how = damaged, "read as it is"
    if not _readable(damaged):
        rebuilt = _with_rebuilt_header(damaged)
        if rebuilt is not None:
            source, how = rebuilt, "its header was rebuilt"
    for suffix in ("", "-wal", "-shm"):
        Path(str(target) + suffix).unlink(missing_ok=True)
    fresh = Store(target)
    fresh.close()
    results = []
    try:
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    except sqlite3.DatabaseError:
        return [], "nothing could be read"
    dst = sqlite3.connect(target)
    try:
        try:
            tables = _tables(src)
        except sqlite3.DatabaseError:
            tables = []
        for table in tables:
            if table in CACHES:
                continue
            saved, lost = _salvage_table(src, dst, table)
            results.append((table, saved, lost))
        dropped = _drop_orphans(dst)
        results = [(t, n - dropped.get(t, 0), lost or bool(dropped.get(t))) for t, n, lost in results]
        dst.commit()
    finally:
        src.close()
        dst.close()
        if source != damaged:
            source.unlink(missing_ok=True)
    return results, how


DOCTOR_WAIT_S = 1800  # how long a doctor waits for another one working on the same damaged store


def examine_damaged(path: str | os.PathLike, recover: bool = False,
                    seen: tuple[int, int] | None = None) -> DoctorReport:
    """The doctor for a database that cannot be opened: copy, salvage, and (``recover``) swap in the salvage — one
    doctor at a time per store. Two at once (two kernels told to run doctor) copied to the same file in the same
    second, salvaged into one ``aml.db.recovered`` together and replaced the store twice; the one that waited
    now finds the store recovered, or does its work on what the first left. ``seen``: the file found damaged."""
    from filelock import FileLock, Timeout

    db = Path(path)
    before = seen or file_identity(str(db))
    lock = FileLock(str(db.with_name(f"{db.name}.doctor.lock")))
    try:
        lock.acquire(timeout=DOCTOR_WAIT_S)
    except Timeout:
        from ....core.errors import StorageError

        raise StorageError(f"another doctor has worked on {db} for {DOCTOR_WAIT_S // 60} minutes; try again when it "
                           "has finished") from None
    try:
        if file_identity(str(db)) != before:  # the one before us put a recovered store in place meanwhile
            report = DoctorReport(str(db.parent))
            report.add("store recovered", "ok", "another doctor put the recovered store in place while this one waited")
            return report
        return _examine_damaged(db, recover)
    finally:
        lock.release()


def _examine_damaged(db: Path, recover: bool) -> DoctorReport:
    report = DoctorReport(str(db.parent))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    copy = db.with_name(f"{db.name}.damaged-{stamp}")
    for suffix in ("", "-wal"):
        if Path(str(db) + suffix).exists():
            shutil.copyfile(str(db) + suffix, str(copy) + suffix)
    report.add("SQLite store can be read", "problem",
               f"the database file is damaged; a copy was kept as {copy.name}")
    recovered = db.with_name(f"{db.name}.recovered")
    results, how = salvage(copy, recovered)
    total = sum(n for _, n, _ in results)
    detail = ", ".join(f"{t} {n}{' (some unreadable)' if lost else ''}" for t, n, lost in results if n or lost)
    if not total:
        report.add("rows saved", "problem", f"nothing could be read ({how})")
        report.advice.append(f"The damaged file is kept as {copy.name}; start afresh by moving {db.name} away.")
        return report
    saved_runs = next((n for t, n, _ in results if t == "runs"), 0)
    saved_models = next((n for t, n, _ in results if t == "models"), 0)
    summary = f"{total} rows saved ({how}): {saved_runs} runs, {saved_models} model versions"
    report.advice.append(f"Saved per table: {detail}.")
    if recover:
        for suffix in ("-wal", "-shm"):
            Path(str(db) + suffix).unlink(missing_ok=True)
        os.replace(recovered, db)
        for replaced in ON_REPLACED:  # this process's writers still have the damaged file open
            replaced(db)
        report.add("store recovered", "repaired", summary)
        report.advice.append(f"The recovered store is now {db.name}; the damaged one is kept as {copy.name}. "
                             "Other kernels and the Jupyter server open it at their next %aml command or "
                             "request; a run they had started logging must be started again.")
    else:
        report.add("rows that can be saved", "problem", summary)
        report.advice.insert(0, f"To use them, run %aml doctor --recover (or python -m aml_magics doctor --recover): "
                                f"{recovered.name} takes the place of {db.name}, whose copy stays as {copy.name}.")
    return report
