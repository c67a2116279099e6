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
