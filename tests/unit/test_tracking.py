"""Buffered logging: nothing lost on clean exit, errors or a failed flush; SIGKILL loses at most one interval."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from aml_magics.core.client import Client

from .._helpers import logging_script


def test_clean_exit_and_exception_lose_nothing(workspace):
    client = Client.shared()
    run = client.runs.start_logging("t")
    script = logging_script(client, run,
        """
        for i in range(50_000):
            run.log("x", i)
        run.log_list("batch", list(range(1000)))
        raise RuntimeError("boom after logging")
        """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "boom after logging" in proc.stderr
    metrics = run.get_metrics()
    assert metrics["x"] == list(range(50_000))
    assert metrics["batch"] == list(range(1000))


def test_sigkill_loses_at_most_the_last_flush_interval(workspace):
    client = Client.shared()
    run = client.runs.start_logging("t")
    script = logging_script(client, run,
        """
        i = 0
        while True:
            run.log("t", time.time())
            i += 1
            if i == 200:
                print("ready", flush=True)
            time.sleep(0.001)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(1.0)
    killed_at = time.time()
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    values = run.get_metrics()["t"]
    assert len(values) > 200
    # every point logged more than one flush interval (+ scheduling slack) before the kill is stored
    assert killed_at - max(values) < 0.2 + 0.25
    assert values == sorted(values)


READER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from aml_magics.core.client import Client

    client = Client(Path(sys.argv[1]))
    stop, reads, empty = Path(sys.argv[3]), 0, set()
    print("reading", flush=True)
    while not stop.exists():
        for name, values in client.runs.get_metrics(sys.argv[2]).items():
            if values in ([], {}) and name != "empty":
                empty.add(name)
        reads += 1
    print(reads, sorted(empty))
    """
)


def test_another_process_never_reads_a_new_metric_without_its_values(workspace, tmp_path):
    """A name was stored when first logged and its values by the next flush, 200 ms later: a dashboard or notebook
    reading meanwhile got ``[]`` for it. Now the name is made in the transaction that writes its first values."""
    client = Client.shared()
    run = client.runs.start_logging("t")
    run.log_list("empty", [])  # a name logged with no values is stored all the same, by the flush thread
    db, deadline = sqlite3.connect(client.backend.path / "aml.db"), time.time() + 10
    while not db.execute("SELECT 1 FROM metric_keys WHERE name='empty'").fetchone():
        assert time.time() < deadline, "log_list(name, []) never stored the name"
        time.sleep(0.05)
    db.close()
    reader = subprocess.Popen([sys.executable, "-c", READER, str(client.backend.path), run.id, str(tmp_path / "stop")],
                              stdout=subprocess.PIPE, text=True)
    assert reader.stdout.readline().strip() == "reading"
    for i in range(150):
        run.log(f"m{i}", i)
        run.log_row(f"r{i}", a=i)
        time.sleep(0.004)
    run.flush()
    (tmp_path / "stop").touch()
    reads, empty = reader.communicate(timeout=60)[0].split(" ", 1)
    assert int(reads) > 20 and empty.strip() == "[]"
    metrics = run.get_metrics()
    assert metrics["empty"] == [] and all(metrics[f"m{i}"] == i for i in range(150))


def test_failed_flush_keeps_rows_and_recovers(workspace, capfd):
    client = Client.shared()
    run = client.runs.start_logging("t")
    tracker = run.tracker
    for i in range(1000):
        run.log("v", i)
    blocker = sqlite3.connect(client.backend.path / "aml.db", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    tracker.store._conn.execute("PRAGMA busy_timeout=50")
    try:
        with pytest.raises(sqlite3.OperationalError):
            tracker.flush()
        assert tracker.pending() == 1000
        assert "kept in memory and retried" in capfd.readouterr().err
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
        tracker.store._conn.execute("PRAGMA busy_timeout=60000")
    for i in range(1000, 1500):
        run.log("v", i)
    tracker.flush()
    assert run.get_metrics()["v"] == list(range(1500))


def test_offline_run_prints_what_it_would_log(tmp_path, monkeypatch):
    monkeypatch.delenv("AML_MAGICS_RUN_ID", raising=False)
    script = tmp_path / "bare.py"
    script.write_text("from aml_magics import Run\nrun = Run.get_context()\nrun.log('mse', 0.5)\nrun.tag('a', 'b')\nprint(repr(run))\n")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=30,
                         env={k: v for k, v in os.environ.items() if not k.startswith("AML_MAGICS_")})
    assert out.returncode == 0, out.stderr
    assert "[offline run] mse = 0.5" in out.stdout
    assert "OfflineRun" in out.stdout


def test_an_offline_run_refuses_what_a_workspace_refuses(monkeypatch):
    """``python train.py`` printed an empty metric name or a lone surrogate as logged: the script failed only once
    submitted."""
    from aml_magics.core.errors import InvalidInput
    from aml_magics.core.run import _OfflineRun

    run = _OfflineRun()
    for call in (lambda: run.log("", 1.0), lambda: run.log("\udcff", 1.0), lambda: run.log("", "text"),
                 lambda: run.log_list("", [1.0]), lambda: run.log_row("", a=1), lambda: run.set_tags({"\ud800": "v"})):
        with pytest.raises(InvalidInput, match="empty|lone surrogate"):
            call()
    run.log("fine", 1.0)


def test_an_offline_run_refuses_the_files_and_images_a_workspace_refuses(tmp_path, capsys):
    """``python train.py`` printed ``upload_file('/etc/passwd', …)``, ``upload_file('../x', …)`` and
    ``log_image(path='typo.png')`` as done (the local workspace refused the first two only in its storage layer, and
    the offline run checked nothing of log_image): such a script failed only once submitted, after its training.
    And a log_list of a million values printed megabytes into the notebook."""
    from aml_magics.core.errors import InvalidInput, InvalidType
    from aml_magics.core.run import _OfflineRun

    real = tmp_path / "real.txt"
    real.write_text("x")
    run = _OfflineRun()
    for name in ("/etc/passwd", "../x", "outputs/../../x", "~/x", "C:/x", "outputs\\..\\..\\x"):
        with pytest.raises(InvalidInput, match="must be a relative path inside the run"):
            run.upload_file(name, str(real))
    with pytest.raises(InvalidInput, match=r"log_image\('img'\): 'typo.png' is not a file"):
        run.log_image("img", path="typo.png")
    with pytest.raises(InvalidType, match="exactly one of path= or plot="):
        run.log_image("img")
    with pytest.raises(InvalidType, match="plot= takes a matplotlib figure"):
        run.log_image("img", plot="figure")
    with pytest.raises(InvalidInput, match="empty"):
        run.log_image("", path=str(real))
    capsys.readouterr()
    run.upload_file("outputs/real.txt", str(real))
    run.log_image("img", path=str(real))
    run.log_list("many", range(1_000_000))
    out = capsys.readouterr().out
    assert "upload " in out and "img image " in out
    many = next(line for line in out.splitlines() if "many = " in line)
    assert len(many) < 700 and "more characters" in many


def test_the_workspace_refuses_an_artifact_name_outside_the_run_before_writing(workspace, tmp_path):
    run = Client.shared().runs.start_logging("names")
    real = tmp_path / "real.txt"
    real.write_text("x")
    for name in ("/etc/passwd", "../x", "~/x", "C:x"):
        with pytest.raises(ValueError, match="must be a relative path inside the run"):
            run.upload_file(name, str(real))
    assert run.upload_file("outputs/a:b.txt", str(real)) == "outputs/a:b.txt"  # a colon past the first part is a name
    run.complete()


def test_values_of_every_kind(workspace, tmp_path):
    client = Client.shared()
    run = client.runs.start_logging("kinds")
    import numpy as np

    run.log("np", np.float32(0.5))
    run.log("npint", np.int64(3))
    run.log("flag", True)
    run.log("nan", float("nan"))
    run.log("stepped", 1.0, step=10)
    run.log("stepped", 2.0)
    run.log_table("tbl", {"a": [1, 2], "b": np.array([3, 4])})
    import pandas as pd

    run.log_table("frame", pd.DataFrame({"a": [1, 2], "c": ["x", "y"]}))  # a DataFrame is a table (it was refused)
    png = tmp_path / "img.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\nfake")
    run.log_image("picture", path=png)
    # a typo in the path, or a plot that is not a figure: one line naming log_image (it said "upload_file" / raised
    # an AttributeError from inside)
    with pytest.raises(ValueError, match=r"log_image\('picture2'\): 'nope.png' is not a file"):
        run.log_image("picture2", path="nope.png")
    with pytest.raises(TypeError, match=r"plot= takes a matplotlib figure or pyplot, not str"):
        run.log_image("picture2", plot="figure")
    with pytest.raises(TypeError, match="not a number"):
        run.log("bad", object())
    with pytest.raises(TypeError, match="logged as scalar"):
        run.log_row("np", a=1)
    run.upload_file("outputs/extra.txt", png)
    run.complete()
    m = run.get_metrics()
    assert m["np"] == 0.5 and m["npint"] == 3 and m["flag"] == 1
    assert m["frame"] == {"a": [1, 2], "c": ["x", "y"]}
    assert m["nan"] != m["nan"]  # NaN survives the round trip
    assert m["stepped"] == [1.0, 2.0]
    assert client.runs.metric_series(run.id, "stepped")[0][1][0] == 11  # next step after an explicit one
    assert m["tbl"] == {"a": [1, 2], "b": [3, 4]}
    assert m["picture"].startswith("images/picture_") and m["picture"] in run.get_file_names()
    assert "outputs/extra.txt" in run.get_file_names()
    with pytest.raises(Exception, match="relative path inside the run"):
        run.upload_file("../escape.txt", png)


def test_a_workspace_deleted_and_made_again_at_the_same_path_is_written_to(tmp_path):
    """A careless user deletes the workspace folder and starts again in the same kernel: the new workspace's runs
    log into the new database, not into the deleted file a cached tracker still held."""
    import shutil

    ws = tmp_path / "ws"
    first = Client(ws)
    run = first.runs.start_logging("again")
    run.log("x", 1.0)
    run.complete()
    shutil.rmtree(ws)
    second = Client(ws)
    run = second.runs.start_logging("again")
    run.log("x", 2.0)
    run.log_list("y", [1.0, 2.0])
    run.complete()
    assert second.runs.get_metrics(run.id)["x"] == 2.0
    assert [r.run_id for r in second.runs.list(limit=None).infos] == [run.id]


@pytest.mark.parametrize("name,message", [
    ("outputs/", "names a folder"),  # an IsADirectoryError traceback
    ("outputs/.", "names a folder"),
    ("outputs", "names a folder"),  # would have taken the place of the outputs folder
    ("outputs/a\x00b", "NUL"),  # a ValueError from inside
    ("outputs/" + "a" * 300, "is 300 bytes long; a file name holds at most 255"),  # an OSError from inside
    ("outputs/\udcff.txt", "lone surrogate"),  # it was stored, and then no listing of the run could be sent as JSON
    ("../escape", "relative path inside the run"),
])
def test_a_bad_artifact_name_is_one_line_and_keeps_nothing(workspace, tmp_path, name, message):
    client = Client.shared()
    run = client.runs.start_logging("files")
    source = tmp_path / "f.txt"
    source.write_text("hello")
    with pytest.raises(ValueError, match=message):
        run.upload_file(name, source)
    assert run.get_file_names() == []
    folder = client.backend.path / "runs" / run.id
    assert not [p for p in folder.rglob("*") if p.is_file() and p.name.endswith(".uploading")]
    run.complete()


def test_upload_file_takes_an_open_file_as_v1_does(workspace, tmp_path):
    """``upload_file(name, path_or_stream)``: an open file raised a TypeError from os.stat."""
    import io

    client = Client.shared()
    run = client.runs.start_logging("files")
    (tmp_path / "f.bin").write_bytes(b"\x00\x01" * 1_000_000)
    with open(tmp_path / "f.bin", "rb") as f:
        run.upload_file("outputs/copy.bin", f)
    run.upload_file("outputs/text.txt", io.StringIO("héllo"))
    with pytest.raises(ValueError, match=r"upload_file\('outputs/x'\): '.*' is not a file"):
        run.upload_file("outputs/x", tmp_path)
    run.complete()
    assert run.get_file_names() == ["outputs/copy.bin", "outputs/text.txt"]
    run.download_file("outputs/copy.bin", tmp_path / "back.bin")
    assert (tmp_path / "back.bin").read_bytes() == b"\x00\x01" * 1_000_000
    run.download_file("outputs/text.txt", tmp_path / "back.txt")
    assert (tmp_path / "back.txt").read_text(encoding="utf-8") == "héllo"
