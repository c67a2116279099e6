"""Shared fixtures: a fresh workspace per test, real processes, cleaned up by pid."""
from __future__ import annotations

import os
import signal
import sqlite3
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

MARKERS_BY_FOLDER = {"reliability": "reliability", "security": "security", "notebooks": "notebook", "browser": "browser"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        parts = Path(str(item.fspath)).parts
        for folder, marker in MARKERS_BY_FOLDER.items():
            if folder in parts:
                item.add_marker(getattr(pytest.mark, marker))


def kill_workspace_processes(ws: Path) -> None:
    """SIGKILL what a test's workspace left running — only processes that are still its own: a recorded pid whose
    process has ended may belong to anyone by now (the other Python's suite, side by side, got the pids that
    test_pid_reuse freed and forced, and this teardown killed its scoring service and supervisor)."""
    db = ws / "aml.db"
    if not db.exists():
        return
    conn = sqlite3.connect(db, timeout=30)
    pids = []
    try:
        for sql in ("SELECT host_pid, host_start, user_pid, user_start FROM runs",
                    "SELECT server_pid, server_start, supervisor_pid, supervisor_start FROM deployments"):
            try:
                for a, a_start, b, b_start in conn.execute(sql).fetchall():
                    pids += [(b, b_start), (a, a_start)]
            except sqlite3.Error:
                pass
    finally:
        conn.close()
    for pid, token in pids:
        if not pid or pid == os.getpid() or not _own_process(pid, token, ws):
            continue
        kills = [os.kill]
        try:
            if os.getpgid(pid) == pid:  # it leads its group: its children go too
                kills.insert(0, os.killpg)
        except OSError:
            pass
        for kill in kills:
            try:
                kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError, OSError):
                pass


def _own_process(pid: int, token: str | None, ws: Path) -> bool:
    """Whether ``pid`` is still the workspace's process: the start token recorded with it, or — not recorded yet —
    a process working in the workspace or naming it on its command line."""
    from aml_magics.backends.local.procs import same_process

    if token:
        return same_process(pid, token)
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd")
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read()
    except OSError:
        return False
    return cwd == str(ws) or cwd.startswith(str(ws) + os.sep) or str(ws).encode() in cmdline


@pytest.fixture
def workspace(tmp_path, monkeypatch) -> Path:
    """An empty local workspace, selected through $AML_MAGICS_WORKSPACE; its processes are killed after."""
    from aml_magics.core import client as client_module

    ws = tmp_path / "ws"
    monkeypatch.setenv("AML_MAGICS_WORKSPACE", str(ws))
    monkeypatch.setenv("AML_MAGICS_CANCEL_GRACE_S", "2")
    client_module._clients.clear()
    yield ws
    kill_workspace_processes(ws)
    client_module._clients.clear()


@pytest.fixture
def client(workspace):
    from aml_magics.core.client import Client

    return Client.shared()


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """The folder a notebook lives in (the kernel's working directory)."""
    folder = tmp_path / "project"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


@pytest.fixture
def ip(workspace, project):
    """A real IPython shell with %load_ext aml_magics done, in ``project``."""
    from IPython.testing.globalipapp import start_ipython

    shell = start_ipython() or __import__("IPython").get_ipython()
    from aml_magics import magics

    magics.load_ipython_extension(shell)  # a fresh AmlMagics for this test's workspace
    yield shell
    magics.unload_ipython_extension(shell)


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def python_exe() -> str:
    return sys.executable
