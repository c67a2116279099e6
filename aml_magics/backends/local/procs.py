"""Process identity, liveness and signals, safe against recycled pids.

Every pid the workspace records comes with a *start token* (the process's start time, from
``/proc/PID/stat``; psutil's ``create_time`` where there is no /proc). A pid alone is not a process:
after a crash or a reboot the same number names a stranger. So:

* ``is_alive(pid, token)`` is true only for the process that was recorded;
* ``send_signal`` signals a process only while its token still matches — through a pidfd where the
  kernel has them, so the check and the signal name the same process;
* ``signal_group`` signals a process group led by a recorded process, or — once that leader is gone —
  what is left of its group (the kernel never hands out a pid while it still names a live process group,
  so the group is still ours); never a group whose leader is a stranger.
"""
from __future__ import annotations

import os
import signal

ZOMBIE = "zombie"


def start_token(pid: int | None) -> str | None:
    """A token that tells this process from any later one with the same pid; None when it is gone or unknowable."""
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    except OSError:
        return _psutil_token(pid)
    # the command name may contain spaces and parentheses: split after the last ')'
    fields = data[data.rfind(b")") + 2 :].split()
    if fields and fields[0] == b"Z":
        return ZOMBIE
    return fields[19].decode() if len(fields) > 19 else None


def _psutil_token(pid: int) -> str | None:
    if os.path.isdir("/proc/self"):
        return None
    try:  # pragma: no cover - platforms without /proc
        import psutil

        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return ZOMBIE
        return f"{proc.create_time():.6f}"
    except Exception:  # noqa: BLE001
        return None


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_alive(pid: int | None, token: str | None = None) -> bool:
    """Whether the process recorded as (``pid``, ``token``) still runs. Without a recorded token (records older
    than tokens) a live pid counts as alive — such a process is still never signalled."""
    if not pid or token == ZOMBIE or not _exists(pid):
        return False
    now = start_token(pid)
    if now == ZOMBIE:
        return False
    return token is None or now is None or now == token


def same_process(pid: int | None, token: str | None) -> bool:
    """Whether ``pid`` is, provably, the process recorded with ``token`` (the test before any signal)."""
    return bool(pid) and token not in (None, ZOMBIE) and start_token(pid) == token


def send_signal(pid: int | None, token: str | None, sig: int) -> bool:
    """Signal the recorded process, only while it is still that process. Returns whether it was signalled."""
    if not pid or token in (None, ZOMBIE):
        return False
    fd = None
    try:
        try:
            fd = os.pidfd_open(pid)  # from here on the fd names this very process, whatever the pid becomes
        except ProcessLookupError:
            return False
        except (AttributeError, OSError):
            fd = None
        if start_token(pid) != token:
            return False
        if fd is not None and hasattr(signal, "pidfd_send_signal"):
            signal.pidfd_send_signal(fd, sig)
        else:
            os.kill(pid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False
    finally:
        if fd is not None:
            os.close(fd)


def signal_group(pid: int | None, token: str | None, sig: int) -> bool:
    """Signal the process group led by the recorded process ``pid`` (our hosts, run processes and supervisors
    lead their own groups): while that leader runs, or after it has gone (what is left of its group). When the pid
    now names a different process, nothing is signalled."""
    if not pid:
        return False
    if _exists(pid):
        now = start_token(pid)
        # a zombie leader still holds its pid (nobody else can have it); any other process must be the recorded one
        if now != ZOMBIE and (token in (None, ZOMBIE) or now != token):
            return False  # a stranger (or an unverifiable record): leave it alone
    try:
        os.killpg(pid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def signal_own_child_group(pid: int, sig: int) -> bool:
    """Signal the group of a child this process started and has not reaped yet (its pid cannot be reused)."""
    try:
        os.killpg(pid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
            return True
        except (ProcessLookupError, PermissionError):
            return False


def runs_for(pid: int | None, token: str | None, run_id: str) -> bool:
    """Whether the recorded process (``pid``, ``token``) still runs and belongs to run ``run_id``: its working
    directory is in the run's folder (a run's process starts in its snapshot), or its environment names the run."""
    if not same_process(pid, token):
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
