"""The workspace database deleted or replaced while a kernel, a run and its host have it open.

An open SQLite handle keeps using the old file: before the check, a kernel whose workspace folder had been removed
went on listing, submitting and logging into a file nobody could see (and ``doctor --recover`` in another process
left every other kernel writing into the damaged copy). Now a handle opened before says so in one line, the next
``%aml`` command (or ``Client.shared()``, as the Jupyter server calls it) opens the workspace again, a run in flight
still ends, and a scoring service of a deleted workspace stops.
"""
from __future__ import annotations

import shutil
import time

import psutil
import pytest
from IPython.core.error import UsageError

from aml_magics.core.client import Client
from aml_magics.core.errors import StorageError
from aml_magics.core.types import RunSubmission


def test_a_deleted_workspace_is_begun_again_and_old_handles_say_so(workspace, ip, project, capsys):
    client = Client.shared()
    old = client.runs.start_logging("moved", display_name="before")
    old.log("x", 1.0)
    old.flush()
    shutil.rmtree(workspace)

    # a handle opened before: one line each, and nothing written into the deleted file
    with pytest.raises(StorageError) as err:
        client.runs.list()
    text = str(err.value)
    assert "was deleted after this process opened it" in text and "open the workspace again" in text, text
    assert "\n" not in text
    (project / "train.py").write_text("print('hi')\n")
    with pytest.raises(StorageError, match="deleted"):
        client.runs.submit(RunSubmission(kind="script", experiment="moved", source_dir=project, entry="train.py"))
    old.log("x", 2.0)
    with pytest.raises(StorageError, match="deleted"):
        old.flush()
    assert not workspace.exists(), list(workspace.rglob("*"))

    # the next command opens the workspace again, as a user who deleted the folder to start afresh expects — and
    # says why the runs are gone, once (it showed "No runs." without a word)
    capsys.readouterr()
    assert "No runs" in repr(ip.run_line_magic("aml", "runs"))
    assert "No runs" in repr(ip.run_line_magic("aml", "runs"))
    said = capsys.readouterr().err
    assert said.count(f"the workspace folder {workspace} was deleted after this process opened it; a new, empty "
                      "workspace is begun there") == 1, said
    run = ip.run_cell_magic("aml", "run --wait -e again", "x = 1\n")
    fresh = Client.shared()
    assert fresh is not client and [i.run_id for i in fresh.runs.list().infos] == [run.id]
    assert (workspace / "aml.db").is_file()
    from aml_magics.backends.local.tracker import discard, tracking_uri

    discard(tracking_uri(workspace / "aml.db"))  # the old run's value can never be saved (no note at exit)


def test_a_replaced_database_keeps_a_live_runs_values_and_says_so(workspace, tmp_path, capsys):
    client = Client.shared()
    run = client.runs.start_logging("moved")
    run.log("x", 1.0)
    run.flush()
    db = workspace / "aml.db"
    client.backend.store.query("PRAGMA wal_checkpoint(TRUNCATE)")
    copy = tmp_path / "restored.db"
    shutil.copy(db, copy)
    copy.replace(db)  # a backup put back (or doctor --recover run in another process)

    run.log("x", 2.0)
    with pytest.raises(StorageError, match="replaced by another file"):
        run.flush()
    assert run._tracker.pending() >= 1  # kept in memory, not dropped
    with pytest.raises(StorageError, match="replaced by another file"):
        client.runs.get(run.id)
    capsys.readouterr()
    fresh = Client.shared()  # opens the file that is there now
    assert "was replaced on disk after this process opened it" in capsys.readouterr().err
    assert fresh.runs.get_metrics(run.id)["x"] in (1.0, [1.0])  # what was saved before is there
    from aml_magics.backends.local.tracker import discard, tracking_uri

    discard(tracking_uri(db))  # the old kernel's tracker: its value can never be saved (no note at this test's exit)


def test_a_run_whose_workspace_is_deleted_still_ends(workspace, project):
    (project / "train.py").write_text(
        "import time\nfrom aml_magics import Run\nrun = Run.get_context()\n"
        "for i in range(40):\n    run.log('x', i)\n    time.sleep(0.05)\n")
    client = Client.shared()
    run = client.runs.submit(RunSubmission(kind="script", experiment="moved", source_dir=project, entry="train.py"))
    deadline = time.monotonic() + 30
    while client.runs.get(run.id).status not in ("Running",) and time.monotonic() < deadline:
        time.sleep(0.05)
    ours = [p for p in psutil.process_iter(["cmdline"]) if any(run.id in part for part in p.info["cmdline"] or ())]
    ours += [p for p in psutil.process_iter(["cmdline"])
             if str(workspace) in " ".join(p.info["cmdline"] or ()) and p not in ours]
    assert ours, "the run's processes were not found"
    shutil.rmtree(workspace)
    gone, alive = psutil.wait_procs(ours, timeout=60)
    assert not alive, [(p.pid, p.cmdline()) for p in alive]
    assert not workspace.exists()


def test_a_service_whose_workspace_is_deleted_stops_and_frees_its_port(client, tmp_path):
    import socket

    import joblib
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    from aml_magics.backends.local.procs import is_alive

    X, y = load_digits(return_X_y=True)
    joblib.dump(LogisticRegression(max_iter=200).fit(X[:300], y[:300]), tmp_path / "model.pkl")
    client.models.register("digits", tmp_path / "model.pkl")
    client.deployments.create("gone", ["digits"])
    info = client.deployments.get_info("gone")
    assert info.state == "Healthy"
    pids = client.backend.store.query_one("SELECT supervisor_pid, server_pid FROM deployments WHERE name='gone'")
    assert all(is_alive(pid) for pid in pids)
    log = client.backend.path / "deployments" / "gone" / "service.log"
    held = open(log, "rb")  # the log is unlinked with the folder: keep it readable
    shutil.rmtree(client.backend.path)
    deadline = time.monotonic() + 30
    while any(is_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(is_alive(pid) for pid in pids), "the service still runs with its workspace gone"
    with socket.socket() as s:
        s.bind(("127.0.0.1", info.port))  # free again
    said = held.read()
    held.close()
    assert b"was deleted after this process opened it" in said and said.endswith(b"; the service stops\n"), said
