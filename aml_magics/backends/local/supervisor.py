"""The deployment supervisor: ``python -m aml_magics.backends.local.supervisor WORKSPACE NAME``.

A detached process (its own session: it outlives the kernel) that owns one deployment:

* holds the listening socket, so the scoring URI never changes, and hands it to the server process;
* marks the deployment Healthy once ``init()`` is done, restarts a crashed server with backoff
  (1 s, 2 s, 4 s … 30 s) and marks it Unhealthy with the reason meanwhile;
* on SIGHUP (an update) starts a new server on the same socket, waits until it is ready, then
  stops the old one gracefully: in-flight requests finish, none fails;
* on SIGTERM (delete) stops the server, closes the socket and exits;
* stops the same way when its workspace's database is deleted (the folder removed): no command could find the
  service any more, and it would hold its port for ever.

A service with ``workers`` > 1 (``--workers``) is served by that many server processes sharing the socket (the
kernel hands each connection to one of them); they start, become ready, are replaced on an update and stopped as
one group. A worker that dies takes the group with it: the group is restarted, as one server would be.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from ...core import children
from ...core.errors import StorageError, StoreGone
from . import layout, procs
from .store import DeploymentRows, Store

READY_TIMEOUT_S = 120
WORKSPACE_CHECK_S = 2.0  # how often a Healthy service checks that its workspace's database is still there
MAX_BACKOFF_S = 30.0
DRAIN_S = 1.5  # clients with kept-alive connections move to the new server meanwhile
UPDATE_FAILED = "the update did not start"  # how a failed handoff's record begins (the deploy raises it)


class ServerGroup:
    """The server processes of one service: one, or ``--workers`` of them on the same socket; used where one
    ``subprocess.Popen`` was (``pid`` is the first worker's)."""

    def __init__(self, procs_: list[subprocess.Popen], counts: Path | None = None):
        self.procs = procs_
        self.pid = procs_[0].pid
        self.counts = counts  # the workers' shared connection counts (scoring/balance.py), when there are several

    @property
    def returncode(self) -> int | None:
        return next((p.returncode for p in self.procs if p.returncode is not None), None)

    def poll(self) -> int | None:
        """The exit code of the first worker that ended, or None while every one runs."""
        for p in self.procs:
            code = p.poll()
            if code is not None:
                return code
        return None

    def send_signal(self, sig: int) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(sig)

    def wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for p in self.procs:
            p.wait(max(0.0, deadline - time.monotonic()))

    def kill(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()

    def alive(self) -> bool:
        return any(p.poll() is None for p in self.procs)


class Supervisor:
    def __init__(self, workspace: Path, name: str):
        self.workspace, self.name = workspace, name
        self.store = Store(workspace / layout.DB_NAME, migrate=False)
        self.rows = DeploymentRows(self.store)
        self.dir = workspace / "deployments" / name
        self.spec = json.loads((self.dir / "spec.json").read_text())
        self.server: ServerGroup | None = None
        self.stopping = False
        self.update_requested = False
        from ...scoring.logfile import open_private

        # the server rotates this log itself (private, bounded); the supervisor hands it over as stdout/stderr
        self.log = os.fdopen(open_private(self.dir / "service.log"), "ab")

    def set_state(self, state: str, error: str | None = None, **fields) -> None:
        try:
            self.rows.set_state(self.name, state, error, **fields)
        except StoreGone as exc:
            self.workspace_gone(exc)
        except StorageError as exc:  # a full disk: the recorded state is stale for a while; the service goes on
            self.note(f"could not record the state {state}: {exc}")

    def workspace_gone(self, exc: Exception) -> None:
        """The workspace's database was deleted (its folder removed): nobody can find, update or delete this service
        any more, so it stops rather than hold its port for ever."""
        if not self.stopping:
            self.note(f"{exc}; the service stops")
            self.stopping = True

    def note(self, line: str) -> None:
        try:
            self.log.write(f"aml-magics supervisor: {line}\n".encode("utf-8", "replace"))
            self.log.flush()
        except OSError:
            pass

    def listen(self, wait_s: float = 5.0) -> socket.socket:
        """The service's listening socket. Its port can be held a moment longer by what was killed just before
        (the servers of a supervisor that was gone, on a redeploy): tried again for ``wait_s``."""
        import errno

        sock = socket.socket(socket.AF_INET6 if ":" in self.spec["host"] else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        deadline = time.monotonic() + wait_s
        while True:
            try:
                sock.bind((self.spec["host"], self.spec["port"]))
                break
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                    sock.close()
                    raise
                time.sleep(0.1)
        sock.listen(2048)
        sock.set_inheritable(True)
        return sock

    def start_server(self, sock: socket.socket) -> ServerGroup:
        self.spec = json.loads((self.dir / "spec.json").read_text())  # an update may have changed it
        workers = max(1, int(self.spec.get("workers") or 1))
        counts = None
        if workers > 1:  # the workers take connections in turn (scoring/balance.py): a file for their counts
            from ...scoring.balance import shared_counts

            counts, why = shared_counts(self.dir, workers)
            if why:
                self.log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} WARNING supervisor: {why}\n".encode())
                self.log.flush()
        return ServerGroup([subprocess.Popen(
            [self.spec.get("python") or sys.executable, "-m", "aml_magics.scoring.server", "--dir", str(self.dir),
             "--fd", str(sock.fileno())] + ([f"--balance={counts}:{i}:{workers}"] if counts else []),
            pass_fds=(sock.fileno(),), stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
            cwd=str(self.dir),
        ) for i in range(workers)], counts)

    def wait_ready(self, group: ServerGroup) -> bool:
        """Whether every worker finished ``init()`` (a worker that exits first: False)."""
        waiting = {p.pid: self.dir / f"ready-{p.pid}" for p in group.procs}
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline and not self.stopping:
            for pid, ready in list(waiting.items()):
                if ready.exists():
                    ready.unlink(missing_ok=True)
                    del waiting[pid]
            if not waiting:
                return True
            if group.poll() is not None:
                return False
            time.sleep(0.02)
        return False

    def stop(self, group: ServerGroup | None, grace: float = 30.0) -> None:
        if group is None:
            return
        if group.alive():
            group.send_signal(signal.SIGTERM)  # uvicorn: stop accepting, finish in-flight requests
            try:
                group.wait(grace)
            except subprocess.TimeoutExpired:
                group.kill()
                group.wait(30)
        if group.counts is not None:
            group.counts.unlink(missing_ok=True)

    def last_error(self) -> str | None:
        """The last exception line of the service log ("RuntimeError: cannot load"), for a one-line reason."""
        import re

        from ...scoring.logfile import read_tail

        lines = read_tail(self.dir / "service.log", 200).splitlines()
        for line in reversed(lines):
            if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b.*", line.strip()):
                return line.strip()[:300]
        return None

    def run(self) -> int:
        signal.signal(signal.SIGTERM, lambda *_: setattr(self, "stopping", True))
        signal.signal(signal.SIGHUP, lambda *_: setattr(self, "update_requested", True))
        try:
            sock = self.listen()
        except OSError as exc:
            self.set_state("Failed", f"cannot listen on {self.spec['host']}:{self.spec['port']}: {exc.strerror}")
            return 1
        self.rows.set_supervisor(self.name, os.getpid(), procs.start_token(os.getpid()))
        backoff, ever_ready, restarts = 1.0, False, 0
        checked, missed = time.monotonic(), 0
        while not self.stopping:
            self.server = self.start_server(sock)
            self.set_state("Transitioning", server_pid=self.server.pid,
                           server_start=procs.start_token(self.server.pid))
            if not self.wait_ready(self.server):
                if self.stopping:
                    break
                self.stop(self.server, grace=2)
                reason = (f"{self.last_error() or f'the service process exited (code {self.server.returncode})'}"
                          f" (the whole log: %aml service {self.name} --logs)")
                if not ever_ready:
                    self.set_state("Failed", reason)  # init() or score.py is broken: restarting will not help
                    sock.close()
                    return 1
                self.set_state("Unhealthy", reason, restarts=restarts)
                self.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                continue
            ever_ready, backoff = True, 1.0
            self.set_state("Healthy", None, server_pid=self.server.pid,
                           server_start=procs.start_token(self.server.pid))
            while not self.stopping:
                if self.update_requested:
                    self.update_requested = False
                    self.handoff(sock)
                code = self.server.poll()
                if code is not None:
                    self.stop(self.server, grace=5)  # the group's other workers: finish what they have, then go
                    restarts += 1
                    self.set_state("Unhealthy", f"the service process exited (code {code}); restarting",
                                   restarts=restarts)
                    self.sleep(backoff)
                    backoff = min(backoff * 2, MAX_BACKOFF_S)
                    break
                if time.monotonic() - checked > WORKSPACE_CHECK_S:
                    checked = time.monotonic()
                    try:
                        self.store.check_file()
                        missed = 0
                    except StoreGone as exc:
                        missed += 1  # twice in a row: a network folder's passing hiccup does not stop a service
                        if missed >= 2:
                            self.workspace_gone(exc)
                time.sleep(0.1)
        self.stop(self.server)
        sock.close()
        return 0

    def handoff(self, sock: socket.socket) -> None:
        """Update in place: the new server shares the socket; the old one drains, then exits."""
        self.set_state("Transitioning", None)
        new = self.start_server(sock)
        if self.wait_ready(new):
            old, self.server = self.server, new
            if old.alive() and hasattr(signal, "SIGUSR1"):
                old.send_signal(signal.SIGUSR1)  # stop accepting; close kept-alive connections after their answer
                time.sleep(DRAIN_S)
            self.stop(old)
            self.set_state("Healthy", None, server_pid=new.pid, server_start=procs.start_token(new.pid))
        else:
            self.stop(new, grace=2)
            self.set_state("Healthy", f"{UPDATE_FAILED} ({self.last_error() or 'see the log'}); "
                                      "still serving the previous version")

    def sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self.stopping:
            time.sleep(0.05)


def main(argv: list[str]) -> int:
    children.take_signals_back()
    if len(argv) != 2:
        print("usage: python -m aml_magics.backends.local.supervisor WORKSPACE NAME", file=sys.stderr)
        return 2
    return Supervisor(Path(argv[0]), argv[1]).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
