"""Process identity and liveness without psutil: a pid plus its start time, so that a
recycled pid is never mistaken for the process we started."""
from __future__ import annotations

import os
import signal


def start_token(pid: int) -> str | None:
    """The process start time (clock ticks since boot) from /proc; None where there is no /proc."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    # the command name may contain spaces and parentheses: split after the last ')'
    fields = data[data.rfind(b")") + 2 :].split()
    if fields and fields[0] == b"Z":
        return "zombie"
    return fields[19].decode() if len(fields) > 19 else None


def is_alive(pid: int | None, token: str | None = None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    now = start_token(pid)
    if now == "zombie":
        return False
    return token is None or now is None or now == token


def signal_group(pid: int, sig: int) -> bool:
    """Signal the process group led by ``pid`` (our run processes lead their own group)."""
    try:
        os.killpg(pid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
            return True
        except (ProcessLookupError, PermissionError):
            return False


def runs_for(pid: int, run_id: str) -> bool:
    """Whether ``pid`` is a live process of run ``run_id``: its working directory is in the run's
    folder (a run's process starts in its snapshot), or its environment names the run. A safe check
    before stopping an orphaned process, whatever became of the pid meanwhile."""
    if not is_alive(pid):
        return False
    try:
        if f"/runs/{run_id}/" in os.readlink(f"/proc/{pid}/cwd") + "/":
            return True
    except OSError:
        pass
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = f.read().split(b"\0")
    except OSError:
        return False
    return f"AML_MAGICS_RUN_ID={run_id}".encode() in env


SIGKILL = getattr(signal, "SIGKILL", signal.SIGTERM)
