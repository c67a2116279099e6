"""Child runs (sweep trials, pipeline steps) start their hosts warm: forked by the submitting process's zygote instead
of a new interpreter. A warm host must be a host like any other — detached, in its own session, cancelable, its log
where a cold one writes it — and a dead zygote must cost nothing but the warm start."""
from __future__ import annotations

import os
import signal
import time

import psutil
import pytest

from aml_magics.backends.local import host as hosts
from aml_magics.core.types import RunSubmission

from ..conftest import wait_until


@pytest.fixture
def parent(client, tmp_path):
    run = client.runs.start_logging("warm")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "sleepy.py").write_text(
        "import sys, time\nfrom aml_magics import Run\nRun.get_context().log('x', 1.0)\n"
        "time.sleep(float(sys.argv[1]))\nprint('done', sys.argv[1])\n")
    yield run
    if hosts._zygote is not None:
        hosts._zygote.close()
        hosts._zygote.proc.wait(10)
        hosts._zygote = None
    run.complete()


def _child(client, parent, tmp_path, seconds: float):
    return client.runs.submit(RunSubmission(kind="script", experiment="warm", source_dir=tmp_path / "src",
                                            entry="sleepy.py", args=[str(seconds)], parent_run_id=parent.id))


def test_a_child_runs_host_is_forked_warm_detached_and_cancelable(client, parent, tmp_path):
    run = _child(client, parent, tmp_path, 60)
    zygote = hosts._zygote
    assert zygote is not None and zygote.proc.poll() is None
    wait_until(lambda: client.runs.get(run.id).status == "Running", what="the child running")
    host_pid = client.backend.store.get_run(run.id)["host_pid"]
    host = psutil.Process(host_pid)
    assert host.ppid() != os.getpid() and os.getsid(host_pid) == host_pid  # detached: its own session
    assert "aml_magics.backends.local.zygote" in " ".join(host.cmdline())  # a fork, not a new interpreter
    client.runs.cancel(run.id)
    info = client.runs.wait(run.id, timeout=30)
    assert info.status == "Canceled"
    assert (client.backend.path / "runs" / run.id / "logs" / "host.txt").exists()
    wait_until(lambda: not psutil.pid_exists(host_pid), what="the host gone, reaped (no zombie of the zygote)")

    quick = _child(client, parent, tmp_path, 0)
    info = client.runs.wait(quick.id, timeout=30)
    assert info.status == "Completed" and "done 0" in client.runs.get_logs(quick.id)


def test_a_dead_zygote_costs_only_the_warm_start(client, parent, tmp_path):
    first = _child(client, parent, tmp_path, 0)
    assert client.runs.wait(first.id, timeout=30).status == "Completed"
    os.kill(hosts._zygote.proc.pid, signal.SIGKILL)
    hosts._zygote.proc.wait(10)
    second = _child(client, parent, tmp_path, 0)  # a new zygote (or a cold host): the child runs either way
    assert client.runs.wait(second.id, timeout=30).status == "Completed"
    assert hosts._zygote.proc.poll() is None

    # a zygote whose starter is gone exits: its stdin closes
    zygote = hosts._zygote
    zygote.close()
    zygote.proc.wait(10)
    assert zygote.proc.returncode == 0
    hosts._zygote = None
    t = time.monotonic()
    third = _child(client, parent, tmp_path, 0)
    assert client.runs.wait(third.id, timeout=30).status == "Completed"
    assert time.monotonic() - t < 30


def test_a_workspace_path_the_zygote_cannot_carry_starts_its_hosts_cold(tmp_path, monkeypatch):
    """A tab in the workspace's path (the zygote's request separator): the child still runs, its host started cold."""
    from aml_magics.core.client import Client

    ws = tmp_path / "odd\tname" / "ws"
    client = Client(ws)
    parent = client.runs.start_logging("warm")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "quick.py").write_text("print('ran')\n")
    try:
        run = client.runs.submit(RunSubmission(kind="script", experiment="warm", source_dir=tmp_path / "src",
                                               entry="quick.py", parent_run_id=parent.id))
        info = client.runs.wait(run.id, timeout=30)
        assert info.status == "Completed" and "ran" in client.runs.get_logs(run.id)
        assert (ws / "runs" / run.id / "logs" / "host.txt").exists()
    finally:
        parent.complete()
        if hosts._zygote is not None:
            hosts._zygote.close()
            hosts._zygote.proc.wait(10)
            hosts._zygote = None
