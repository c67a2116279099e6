"""A damaged aml.db (an overwritten header, a truncated file, bad pages): every command says so in one line
naming doctor; doctor says it in words, keeps a copy, salvages what can be read into a fresh store and says
what was saved; ``doctor --recover`` puts that store in place."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from IPython.core.error import UsageError

from aml_magics.core.client import Client
from aml_magics.core.errors import StorageError


def stored_rows(db) -> int:
    """Rows in the store's tables (what doctor's salvage counts), read before the damage."""
    import sqlite3

    from aml_magics.backends.local.store.recovery import CACHES

    con = sqlite3.connect(db)
    try:
        tables = [t for (t,) in con.execute("SELECT name FROM sqlite_master WHERE type='table'")
                  if not t.startswith("sqlite_") and t not in CACHES]
        return sum(con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables)
    finally:
        con.close()


def populate(workspace, runs: int = 60) -> list[str]:
    client = Client(workspace)
    ids = []
    for i in range(runs):
        run = client.runs.start_logging("damage", display_name=f"run {i}", tags={"i": str(i)})
        run.log_list("loss", [float(x) for x in range(200)])
        run.complete()
        ids.append(run.id)
    client.backend.store.query("PRAGMA wal_checkpoint(TRUNCATE)")
    client.backend.store.close()
    from aml_magics.core import client as client_module

    client_module._clients.clear()
    return ids


def damage(db, how: str) -> None:
    data = bytearray(db.read_bytes())
    if how == "header":
        data[:100] = os.urandom(100)
    elif how == "truncated":
        data = data[: len(data) * 2 // 3]
    elif how == "pages":  # bad sectors in the data: every fifth page of the file's second half
        page = 4096
        for p in range(len(data) // page // 2, len(data) // page, 5):
            data[p * page: p * page + 200] = os.urandom(200)
    db.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["header", "truncated", "pages"])
def test_a_damaged_store_is_reported_copied_salvaged_and_recovered(workspace, ip, how):
    ids = populate(workspace)
    db = workspace / "aml.db"
    before = stored_rows(db)
    damage(db, how)
    # any other command: one StorageError line that names doctor (no raw sqlite3 traceback)
    with pytest.raises((UsageError, StorageError)) as err:
        ip.run_line_magic("aml", "runs")
        ip.run_line_magic("aml", "show " + ids[-1])
    assert "damaged" in str(err.value) and "doctor" in str(err.value) and "\n" not in str(err.value)

    out = subprocess.run([sys.executable, "-m", "aml_magics", "doctor", "--workspace", str(workspace)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "Traceback" not in out.stderr and "damaged" in out.stdout
    assert "a copy was kept as aml.db.damaged-" in out.stdout
    assert "doctor --recover" in out.stdout and "rows saved" in out.stdout
    copies = sorted(p.name for p in workspace.glob("aml.db.damaged-*") if not p.name.endswith("-wal"))
    assert copies, list(workspace.iterdir())

    report = ip.run_line_magic("aml", "doctor --recover")
    text = repr(report)
    assert "store recovered" in text and "runs" in text, text
    client = Client.shared()
    listed = {i.run_id for i in client.runs.list(limit=None).infos}
    saved = len(listed & set(ids))
    import re

    rows_saved = int(re.search(r"(\d+) rows saved", text).group(1))
    assert rows_saved > 0
    if how == "header":  # nothing but the header was lost: every run is back, with its tags and metrics
        assert saved == len(ids)
    if how == "pages":  # rows on whole pages are saved around the bad ones: some are lost, the rest come back
        # (whether a bad page holds a run's own row depends on how the tables' pages interleaved in the file — a
        # run whose row survived comes back even if its metrics did not)
        assert 0 < saved <= len(ids) and 0 < rows_saved < before, (saved, rows_saved, before)
    for some in [i for i in ids if i in listed][:5]:  # what was saved is whole
        info = client.runs.get(some)
        assert info.tags.get("i", str(ids.index(some))) == str(ids.index(some))
        if how == "header":
            assert client.runs.get_metrics(some)["loss"] == [float(x) for x in range(200)]
    assert client.backend.store.integrity_check() == ["ok"]
    new = client.runs.start_logging("after")  # the recovered workspace works
    new.log("x", 1.0)
    new.complete()
    assert client.runs.get_metrics(new.id) == {"x": 1.0}


def _until_idle(procs, limit: float = 60.0) -> None:
    """Wait until every process has used (almost) no CPU for half a second: started, and now waiting on a lock."""
    import time

    import psutil

    def used() -> list[float]:
        return [sum(psutil.Process(p.pid).cpu_times()[:2]) for p in procs]

    deadline = time.monotonic() + limit
    try:
        last = used()
        while time.monotonic() < deadline:
            time.sleep(0.5)
            now = used()
            if all(n - b < 0.05 for n, b in zip(now, last)):
                return
            last = now
    except psutil.NoSuchProcess:  # one ended early: its output says why
        return


def test_two_doctors_at_once_recover_the_store_once(workspace):
    """Two kernels told "run doctor" at the same moment: both copied the store to the same file in the same second,
    salvaged into one aml.db.recovered together and each put it in place. One works at a time now; the one that
    waited says another doctor recovered the store."""
    ids = populate(workspace, runs=40)
    db = workspace / "aml.db"
    damage(db, "header")
    command = [sys.executable, "-m", "aml_magics", "doctor", "--recover", "--workspace", str(workspace)]
    # "at the same moment" made sure: the doctors' lock is held here until both have found the store damaged and
    # wait for it (on a loaded machine the second one started after the first had finished, and found it healthy)
    from filelock import FileLock

    with FileLock(str(db.with_name("aml.db.doctor.lock"))):
        procs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
        _until_idle(procs)
    outs = [p.communicate(timeout=300) for p in procs]
    for (out, err), p in zip(outs, procs):
        assert "Traceback" not in err, err
    said = "\n".join(out for out, _ in outs)
    assert said.count("The recovered store is now aml.db") == 1, said
    assert "another doctor put the recovered store in place while this one waited" in said, said
    copies = [c for c in workspace.glob("aml.db.damaged-*") if not c.name.endswith("-wal")]
    assert len(copies) == 1, copies  # one copy of the damaged store, not two
    client = Client(workspace)
    assert {i.run_id for i in client.runs.list(limit=None).infos} == set(ids)
    assert client.backend.store.integrity_check() == ["ok"]
