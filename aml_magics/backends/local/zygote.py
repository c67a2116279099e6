"""A warm starter of run hosts: ``python -m aml_magics.backends.local.zygote``.

A sweep's controller (or a pipeline's) starts hundreds of short child runs; a host started as a new interpreter
imports aml-magics again each time — most of a short trial's cost. The zygote is started once by such a process,
imports the host (and what a run process imports) once, and forks a host per request: a line ``WORKSPACE<TAB>RUN_ID``
on its stdin is answered with the host's pid on its stdout. It is single-threaded (so forking it is safe) and has
opened no database. A host starts its own session, like any host; the zygote ignores SIGCHLD, so the kernel reaps
the hosts that end. The zygote exits when its stdin closes: its starter is gone; its hosts live on.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

ANSWER_TIMEOUT_S = 10.0  # a fork takes milliseconds; a zygote that has not answered by then is stuck


class Zygote:
    """The starter's side: one zygote process, asked over a pipe (from any thread of the starter)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aml_magics.backends.local.zygote"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)
        self.lock = threading.Lock()

    def spawn(self, workspace: Path, run_id: str) -> int | None:
        """The pid of a new host of ``run_id``, or None when the zygote cannot start one (then start it cold)."""
        if "\t" in str(workspace) or "\n" in str(workspace) + run_id:
            return None
        import select

        with self.lock:
            try:
                self.proc.stdin.write(f"{workspace}\t{run_id}\n".encode())
                self.proc.stdin.flush()
                if not select.select([self.proc.stdout], [], [], ANSWER_TIMEOUT_S)[0]:
                    self.proc.kill()  # stuck: never ask it again (the next start is cold, or a new zygote)
                    return None
                answer = self.proc.stdout.readline().decode().strip()
            except (OSError, ValueError):  # the zygote is gone
                return None
        pid = int(answer) if answer.isdigit() else 0
        return pid or None  # 0: its fork failed

    def close(self) -> None:
        try:
            self.proc.stdin.close()
        except OSError:
            pass


def _become_host(workspace: str, run_id: str) -> None:
    """In the forked child: the host of ``run_id``, as ``spawn_host`` would have started it. Never returns."""
    code = 1
    try:
        os.setsid()  # its own session, as a cold host's start_new_session
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL)  # SIGCHLD above all: the host waits for its run process
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        log = os.open(Path(workspace) / "runs" / run_id / "logs" / "host.txt", os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                      0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.closerange(3, 1024)  # the zygote's pipes: a host keeps none of them
        sys.stdin = open(0, closefd=False)
        sys.stdout = open(1, "w", buffering=1, closefd=False)
        sys.stderr = open(2, "w", buffering=1, closefd=False)
        os.chdir(workspace)
        from .host import Host

        code = Host(Path(workspace), run_id).run()
    except BaseException:  # noqa: BLE001 - a host that could not start: its log says why; the run is reconciled
        import traceback

        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code if isinstance(code, int) else 1)


def serve() -> int:
    from . import host  # noqa: F401 - imported once here, by every host after
    from ...core import run  # noqa: F401 - and what every run process imports
    from ...runtime import launch  # noqa: F401

    from ...core.children import take_signals_back

    take_signals_back()  # (its hosts inherit its signal mask)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the hosts that end: nobody's zombies
    for line in sys.stdin.buffer:
        workspace, _, run_id = line.decode().rstrip("\n").partition("\t")
        try:
            pid = os.fork()
        except OSError:
            pid = -1
        if pid == 0:
            _become_host(workspace, run_id)
        sys.stdout.write(f"{max(pid, 0)}\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(serve())
