"""A dead process's pid given to a stranger (after a crash or a reboot): the workspace never takes the stranger
for its process — the run is repaired, the service restarted — and never signals it.

The reuse is staged for real: ``/proc/sys/kernel/ns_last_pid`` (root) makes a fresh process get the pid the dead
one had; the stranger leads its own process group, as a daemon after a reboot would."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from aml_magics.core.client import Client
from aml_magics.core.types import RunSubmission

from ..conftest import wait_until

NS_LAST_PID = Path("/proc/sys/kernel/ns_last_pid")

STAGE = textwrap.dedent("""
    import os, sys
    target = int(sys.argv[1])
    for attempt in range(200):
        with open("/proc/sys/kernel/ns_last_pid", "w") as f:
            f.write(str(target - 1))
        pid = os.fork()
        if pid == 0:
            os.setsid()
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            os.execvp("sleep", ["sleep", "600"])
        if pid == target:
            print(pid, flush=True)
            os._exit(0)
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    os._exit(1)
""")


def _can_stage() -> bool:
    return NS_LAST_PID.exists() and os.access(NS_LAST_PID, os.W_OK)


pytestmark = pytest.mark.skipif(not _can_stage(), reason="staging a pid needs a writable "
                                                         "/proc/sys/kernel/ns_last_pid (root); CI runs as root")


def gone(pid: int) -> bool:
    return not os.path.exists(f"/proc/{pid}")


def kill_and_wait_gone(*pids: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for pid in pids:
        try:
            os.waitpid(pid, 0)  # our own children (hosts, supervisors) are reaped here
        except ChildProcessError:
            pass
    wait_until(lambda: all(gone(p) for p in pids), 20, what=f"{pids} to be gone (reaped)")


def stage_stranger(pid: int) -> int:
    """A `sleep` that now holds ``pid`` (its own session and group)."""
    out = subprocess.run([sys.executable, "-c", STAGE, str(pid)], capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        pytest.fail(f"could not stage a process at pid {pid}: {out.stderr}")
    wait_until(lambda: not gone(pid), 5, what="the stranger")
    return pid


@pytest.fixture
def strangers():
    pids: list[int] = []
    yield pids
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def alive_and_sleeping(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")[0].endswith(b"sleep")
    except OSError:
        return False


def test_a_dead_run_whose_pid_went_to_a_stranger_is_repaired_and_the_stranger_spared(workspace, tmp_path, strangers):
    client = Client.shared()
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "train.py").write_text("import time\nprint('ready', flush=True)\ntime.sleep(600)\n")
    run = client.runs.submit(RunSubmission(kind="script", experiment="reuse", source_dir=tmp_path / "src",
                                           entry="train.py"))
    row = wait_until(lambda: (r := client.backend.store.get_run(run.id))["user_pid"] and r["status"] == "Running"
                     and r, 30, what="the run to run")
    host, user = row["host_pid"], row["user_pid"]
    kill_and_wait_gone(user, host)  # the machine "crashed": both processes are gone
    strangers.append(stage_stranger(user))
    assert client.runs.get(run.id).status == "Failed"  # the next reader repairs it, stranger or not
    assert client.computes.get("local").running == 0   # its slot is free again
    report = client.doctor()
    assert report.healthy, report
    time.sleep(0.3)
    assert alive_and_sleeping(user), "the stranger holding the dead run's pid was signalled"


def test_doctor_spares_a_stranger_holding_a_dead_supervisors_pid(workspace, tmp_path, strangers):
    import joblib
    from sklearn.linear_model import LogisticRegression

    client = Client.shared()
    model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    joblib.dump(model, tmp_path / "model.pkl")
    client.models.register("reuse", tmp_path / "model.pkl")
    client.deployments.create("reuse-svc", ["reuse:1"])
    row = client.backend.store.query_one("SELECT * FROM deployments WHERE name='reuse-svc'")
    supervisor, server = row["supervisor_pid"], row["server_pid"]
    kill_and_wait_gone(server, supervisor)
    strangers.append(stage_stranger(supervisor))
    assert client.deployments.get_info("reuse-svc").state == "Failed"  # not Healthy: its supervisor is gone
    report = client.doctor()
    assert alive_and_sleeping(supervisor), "doctor killed the stranger that now holds the supervisor's pid"
    assert client.deployments.get_info("reuse-svc").state == "Healthy", report
    assert client.deployments.get("reuse-svc").run({"data": [[1.0]]}) == [1]
    client.deployments.delete("reuse-svc")
    assert alive_and_sleeping(supervisor), "deleting the service signalled the stranger"
