"""`%aml doctor` / `python -m aml_magics doctor`: integrity, stale states repaired, records vs files."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys

from tests.conftest import wait_until


def test_doctor_repairs_stale_runs_and_reports_missing_files(ip, client, workspace, tmp_path):
    healthy = ip.run_line_magic("aml", "doctor")
    assert healthy.healthy and "healthy" in repr(healthy)
    run = ip.run_cell_magic("aml", "run", "import time\ntime.sleep(30)\n")
    row = wait_until(lambda: (lambda r: r if r["user_pid"] and r["status"] == "Running" else None)(
        client.backend.store.get_run(run.id)), what="the run to be Running")
    os.killpg(row["user_pid"], signal.SIGKILL)  # the host would notice: kill it first, as a crash would
    os.kill(row["host_pid"], signal.SIGKILL)
    from aml_magics.backends.local.procs import is_alive

    wait_until(lambda: not is_alive(row["host_pid"]), what="the host to die")
    (tmp_path / "m.bin").write_bytes(b"m")
    model = client.models.register("doc-model", tmp_path / "m.bin")
    os.remove(model.path)
    (workspace / "models" / ".staging" / "interrupted").mkdir(parents=True)
    (workspace / "runs" / "stray-folder").mkdir()
    out = subprocess.run([sys.executable, "-m", "aml_magics", "doctor", "--workspace", str(workspace)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1, out.stdout + out.stderr
    text = out.stdout
    assert "PROBLEMS FOUND" in text and "marked Failed: " + run.id in text
    assert "doc-model:1" in text and "stray-folder" in text and "removed 1 interrupted" in text
    info = client.runs.get(run.id)
    assert info.status == "Failed" and "ended" in info.error
    assert not any((workspace / "models" / ".staging").iterdir())
    shutil.rmtree(workspace / "runs" / "stray-folder")
    (tmp_path / "m.bin").rename(model.path)
    again = ip.run_line_magic("aml", "doctor")
    assert again.healthy, repr(again)


def test_doctor_removes_what_a_killed_upload_left_and_keeps_a_live_one(client, tmp_path):
    """A kernel killed while uploading a file to a datastore left its half-written copy (hidden from every
    listing) taking its space for ever."""
    from pathlib import Path

    from aml_magics.backends.local.procs import is_alive

    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        f.truncate(2_000_000_000)  # 2 GB (sparse): long enough to be caught halfway
    root = Path(next(d for d in client.datastores.list() if d.is_default).path)
    script = "import sys\nfrom aml_magics.core.client import Client\n" \
             "Client(sys.argv[1]).datastores.upload(sys.argv[2], target='data')\n"
    proc = subprocess.Popen([sys.executable, "-c", script, str(client.backend.path), str(big)])
    try:  # killed halfway through the copy, as a closed laptop or a restarted kernel would
        left = wait_until(lambda: [f for f in root.rglob("*.uploading") if f.stat().st_size > 0], timeout=60,
                          interval=0.005, what="the upload to be writing")
    finally:
        proc.kill()
        proc.wait(30)
    assert len(left) == 1 and not is_alive(proc.pid)
    written = left[0].stat().st_size
    assert 0 < written < 2_000_000_000
    live = left[0].with_name(f".other.bin.{os.getpid()}-0123abcd.uploading")  # an upload still being written
    live.write_bytes(b"x")
    assert [e.path for e in client.datastores.ls("data")] == []  # hidden from listings, as before
    report = client.doctor()
    row = next(c for c in report.checks if c[0] == "no half-written uploads")
    assert row[1] == "repaired" and row[2].startswith("removed 1 file, ") and "whose kernel was stopped" in row[2]
    assert not left[0].exists() and live.exists()
    assert ("no half-written uploads", "ok", "") in client.doctor().checks


def test_doctor_removes_what_a_killed_run_upload_left(client, workspace, tmp_path):
    """The same for ``run.upload_file``: a process killed while it copied a file into its run's folder left the
    hidden half-written copy there, which doctor did not look for."""
    from aml_magics.backends.local.procs import is_alive

    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        f.truncate(2_000_000_000)  # 2 GB (sparse): long enough to be caught halfway
    script = ("import sys\nfrom aml_magics.core.client import Client\n"
              "Client(sys.argv[1]).runs.start_logging('uploads').upload_file('outputs/big.bin', sys.argv[2])\n")
    proc = subprocess.Popen([sys.executable, "-c", script, str(client.backend.path), str(big)])
    runs = workspace / "runs"
    try:
        left = wait_until(lambda: [f for f in runs.rglob("*.uploading") if f.stat().st_size > 0], timeout=60,
                          interval=0.005, what="the upload to be writing")
    finally:
        proc.kill()
        proc.wait(30)
    assert len(left) == 1 and left[0].parent.name == "outputs" and not is_alive(proc.pid)
    live = left[0].with_name(f".other.bin.{os.getpid()}-0123abcd.uploading")  # an upload still being written
    live.write_bytes(b"x")
    row = next(c for c in client.doctor().checks if c[0] == "no half-written uploads")
    assert row[1] == "repaired" and row[2].startswith("removed 1 file, "), row
    assert not left[0].exists() and live.exists()
