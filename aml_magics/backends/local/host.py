"""The run host: ``python -m aml_magics.backends.local.host WORKSPACE RUN_ID``.

A small detached process (its own session, so a kernel restart or a closed notebook does
not touch it) that owns one run on local compute:

1. starts the user's process (``aml_magics.runtime.launch``) in the run's snapshot folder,
   in its own process group, with stdout and stderr in ``logs/std_log.txt``;
2. on SIGTERM (``%aml cancel``), or when the run has run longer than its time limit (``--timeout``), stops
   that group: SIGTERM, a grace period, then SIGKILL;
3. waits, then records the outcome: Completed, Failed (exit code, signal, error and
   traceback) or Canceled;
4. starts the queued runs of its compute target that now have a free slot, so queues move
   on even when the kernel that submitted them is gone.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from . import layout, procs, tracker
from ...core import children
from ...core.config import env_number
from ...core.errors import StorageError, StoreDamaged, StoreGone
from ...core.names import ENV_DEPTH
from ...core.states import SLOT_STATES
from .store import Store

CANCEL_GRACE_S = env_number("AML_MAGICS_CANCEL_GRACE_S", 5)
# how long a host whose run has ended waits for disk space to record how it ended
FINISH_WAIT_S = env_number("AML_MAGICS_FINISH_WAIT_S", 3600)


def spawn_host(workspace: Path, run_id: str, store: Store, warm: bool = False) -> int:
    """Start a detached host for ``run_id`` (already moved to Starting) and record its pid. ``warm``: a process that
    starts many runs (a sweep's or pipeline's controller) forks it from its zygote, skipping an interpreter start."""
    log_dir = layout.run_dir(workspace, run_id) / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    pid = _warm_spawn(workspace, run_id) if warm and not os.environ.get("AML_MAGICS_COLD_HOSTS") else None
    if pid is None:
        with open(log_dir / "host.txt", "ab") as host_log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "aml_magics.backends.local.host", str(workspace), run_id],
                stdin=subprocess.DEVNULL, stdout=host_log, stderr=subprocess.STDOUT,
                start_new_session=True, close_fds=True, cwd=str(workspace),
            )
        _reap_later(proc)
        pid = proc.pid
    store.update_run(run_id, host_pid=pid, host_start=procs.start_token(pid))
    return pid


_zygote = None
_zygote_lock = threading.Lock()


def _warm_spawn(workspace: Path, run_id: str) -> int | None:
    """A host forked by this process's zygote (started on first use); None when there is none to ask."""
    global _zygote
    from .zygote import Zygote

    with _zygote_lock:
        if _zygote is None or _zygote.proc.poll() is not None:
            try:
                _zygote = Zygote()
            except OSError:
                return None
        zygote = _zygote
    return zygote.spawn(workspace, run_id)


_children: list[subprocess.Popen] = []


def _reap_later(proc: subprocess.Popen) -> None:
    # keep finished hosts from lingering as zombies of a long-lived kernel
    _children[:] = [p for p in _children if p.poll() is None]
    _children.append(proc)


def dispatch_queue(workspace: Path, store: Store, compute: str) -> list[str]:
    """Start as many Queued runs of ``compute`` as it has free slots."""
    limit = store.compute_limit(compute)
    if limit is None:
        return []
    started = []
    while True:
        run_id = store.claim_next_queued(compute, limit)
        if run_id is None:
            return started
        spawn_host(workspace, run_id, store)
        started.append(run_id)


class Host:
    def __init__(self, workspace: Path, run_id: str):
        self.workspace = workspace
        self.run_id = run_id
        self.store = Store(workspace / layout.DB_NAME, migrate=False)
        self.folder = layout.run_dir(workspace, run_id)
        self.proc: subprocess.Popen | None = None
        self.cancelled = threading.Event()
        self.timed_out: str | None = None  # why, when the run was stopped at its time limit
        self.disk_was_full = False  # the run's end could not be recorded at once: the workspace's disk was full

    def on_sigterm(self, signum, frame) -> None:
        self.cancelled.set()
        if self.proc is not None:
            self.stop_user_process()

    def on_time_limit(self, seconds: float) -> None:
        """The run has run for its time limit: cancelled, as Azure ML cancels a job past ``limits.timeout``."""
        try:
            if self.cancelled.is_set() or self.proc is None or self.proc.returncode is not None:
                return  # cancelled by the user meanwhile, or just ended: that is its outcome
            reason = f"the run exceeded its time limit of {_duration(seconds)} and was canceled"
            self.store.update_run(self.run_id, cancel_requested=1, cancel_reason=reason)
            self.timed_out = reason
            with open(self.folder / "logs" / layout.LOG_NAME, "a", encoding="utf-8") as log:
                log.write(f"\n[aml-magics] {reason}.\n")  # where the user is looking: the run's output
            self.cancelled.set()
            self.stop_user_process()
        except Exception:  # noqa: BLE001 - a timer thread must not die silently: stop the run regardless
            import traceback

            traceback.print_exc()
            self.cancelled.set()
            if self.proc is not None:
                self.stop_user_process()

    def stop_user_process(self) -> None:
        proc = self.proc
        procs.signal_own_child_group(proc.pid, signal.SIGTERM)

        def kill_after_grace():
            try:
                proc.wait(CANCEL_GRACE_S)
            except subprocess.TimeoutExpired:
                procs.signal_own_child_group(proc.pid, procs.SIGKILL)

        threading.Thread(target=kill_after_grace, daemon=True).start()

    def environment(self, spec: dict) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                tracker.ENV_RUN_ID: self.run_id,
                tracker.ENV_TRACKING_URI: tracker.tracking_uri(self.workspace / layout.DB_NAME),
                "AML_MAGICS_WORKSPACE": str(self.workspace),
                tracker.ENV_EXPERIMENT: spec.get("experiment", ""),
                "AML_MAGICS_RUN_SPEC": str(self.folder / "io" / "spec.json"),
                ENV_DEPTH: str(spec.get("depth") or 1),
                "PYTHONUNBUFFERED": "1",
            }
        )
        for name, path in (spec.get("inputs") or {}).items():
            env[f"AZURE_ML_INPUT_{name}"] = path
        for name, path in (spec.get("outputs") or {}).items():
            env[f"AZURE_ML_OUTPUT_{name}"] = path
        env.update({k: str(v) for k, v in (spec.get("environment_variables") or {}).items()})
        return env

    def _start_forked(self, env: dict[str, str]) -> None:
        """In the forked child: become the run's process (a new session), then run ``launch``.

        Forking this small host instead of starting a new interpreter saves one interpreter
        start-up (the largest part of the submit overhead). Never returns."""
        code = 1
        try:
            os.setsid()
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            log = os.open(self.folder / "logs" / layout.LOG_NAME, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(log, 1)
            os.dup2(log, 2)
            os.close(log)
            os.close(null)
            import io

            sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), write_through=True, line_buffering=True)
            sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), write_through=True, line_buffering=True)
            snapshot_dir = str(self.folder / "snapshot")
            os.chdir(snapshot_dir)
            os.environ.clear()
            os.environ.update(env)
            sys.argv = ["aml_magics.runtime.launch"]
            sys.path[0] = snapshot_dir  # as for `python -m` started in the snapshot
            from ...runtime import launch

            code = launch.main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            import atexit

            try:
                atexit._run_exitfuncs()  # the run's metric flush
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code if isinstance(code, int) else 1)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.on_sigterm)
        row = self.store.get_run(self.run_id)
        if row is None:
            print(f"run {self.run_id} not found", file=sys.stderr)
            return 2
        spec = json.loads(row["spec"] or "{}")
        if not self.store.claim_host(self.run_id, os.getpid(), procs.start_token(os.getpid())):
            print(f"run {self.run_id} already has a host", file=sys.stderr)
            return 0  # a host relaunched for a run whose first host was presumed never started: one runs it
        if row["cancel_requested"]:
            self.cancelled.set()
        code = None
        if not self.cancelled.is_set():
            (self.folder / "logs").mkdir(parents=True, exist_ok=True)
            env = self.environment(spec)
            if hasattr(os, "fork") and not spec.get("python"):
                self.proc = _ForkedProcess(self._start_forked, env)
            else:
                with open(self.folder / "logs" / layout.LOG_NAME, "ab") as log:
                    self.proc = subprocess.Popen(
                        [spec.get("python") or sys.executable, "-u", "-m", "aml_magics.runtime.launch"],
                        cwd=str(self.folder / "snapshot"), env=env, stdin=subprocess.DEVNULL,
                        stdout=log, stderr=subprocess.STDOUT, start_new_session=True, close_fds=True,
                    )
            try:
                self.store.update_run(self.run_id, user_pid=self.proc.pid,
                                      user_start=procs.start_token(self.proc.pid))
            except StorageError:  # a full disk: this host still stops, waits for and records its process
                pass
            limit = threading.Timer(spec["timeout_s"], self.on_time_limit, (spec["timeout_s"],)) \
                if spec.get("timeout_s") else None
            if limit is not None:
                limit.daemon = True
                limit.start()
            if self.cancelled.is_set() or self.store.get_run(self.run_id)["cancel_requested"]:
                self.cancelled.set()
                self.stop_user_process()
            code = self.proc.wait()
            if limit is not None:
                limit.cancel()
        self.record_end(code)
        try:
            dispatch_queue(self.workspace, self.store, row["compute"])
        except StorageError:  # the next run a reader or another host starts (a full disk would fail it anyway)
            pass
        return 0

    def record_end(self, code: int | None) -> None:
        """``finish``, through a full disk: tried again (every 0.5 s, then up to 10 s apart) for ``FINISH_WAIT_S``.
        The run's code has ended; only its record waits for space. Before, the host died of the disk's error here,
        and the run stayed Running until a reader marked it Failed ('its run host ended without finishing the run'),
        also when its code had completed."""
        deadline = time.monotonic() + FINISH_WAIT_S
        delay, said = 0.5, False
        while True:
            try:
                return self.finish(code)
            except StorageError as exc:
                # only a full disk is waited out: a deleted or replaced workspace, or a read-only one, is not
                if isinstance(exc, (StoreGone, StoreDamaged)) or not _nearly_full(self.folder) \
                        or time.monotonic() + delay > deadline:
                    raise
                self.disk_was_full = True
                if not said:  # (this process's own log, when it takes the line)
                    said = True
                    try:
                        print(f"cannot record how run {self.run_id} ended ({exc}); trying again as space returns",
                              file=sys.stderr, flush=True)
                    except OSError:
                        pass
                time.sleep(delay)
                delay = min(delay * 2, 10.0)

    def finish(self, code: int | None) -> None:
        active = ("NotStarted", "Queued", *SLOT_STATES)
        self.store.transition(self.run_id, "Finalizing", only_from=("Starting", "Running"))
        row = self.store.get_run(self.run_id)
        if self.cancelled.is_set() or row["cancel_requested"]:
            self.store.transition(self.run_id, "Canceled", only_from=active, reason=row["cancel_reason"] or "canceled by user",
                                  exit_code=code, **({"error": self.timed_out} if self.timed_out else {}))
            return
        if code == 0:
            self.store.transition(self.run_id, "Completed", only_from=active, exit_code=0)
            return
        error, tb = self.read_error(code)
        self.store.transition(self.run_id, "Failed", only_from=active, reason=error.splitlines()[-1][:200],
                              exit_code=code, error=error, traceback=tb)

    def read_error(self, code: int | None) -> tuple[str, str | None]:
        try:
            data = json.loads((self.folder / "io" / "error.json").read_text())
            return data["error"], data.get("traceback")
        except (OSError, ValueError, KeyError):
            pass
        if code is not None and code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return f"the run process was killed by {name}", None
        if self.disk_was_full or _nearly_full(self.folder):
            return (f"the run process exited with code {code}; the workspace's disk was full as it ended, so what it "
                    "printed, its error and its last logged values may be lost"), None
        return f"the run process exited with code {code}", None


def _nearly_full(path: Path) -> bool:
    from .doctor import MIN_FREE_BYTES

    try:
        return shutil.disk_usage(path).free < MIN_FREE_BYTES
    except OSError:
        return False


def _duration(seconds: float) -> str:
    """90 → "90 s", 1800 → "30 min", 7200 → "2 h": a time limit as the user would say it."""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size:g} {unit}"
    return f"{seconds:g} s"


class _ForkedProcess:
    """The user's process as a forked child, with the little of ``Popen`` the host uses.

    Two threads wait for it (the host's main thread, and on cancel the grace timer): one lock makes exactly
    one of them reap it and both see its exit code. Without it the loser's ``waitpid`` fails with ECHILD,
    and a host that dies so never records its run as Canceled."""

    def __init__(self, target, env: dict[str, str]):
        self._lock = threading.Lock()
        self.pid = os.fork()
        if self.pid == 0:  # pragma: no cover - the child never returns
            target(env)
        self.returncode: int | None = None

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = -1 if deadline is None else max(0.0, deadline - time.monotonic())
            if not self._lock.acquire(timeout=left):  # the other waiter is in a blocking waitpid
                raise subprocess.TimeoutExpired("run process", timeout)
            try:
                if self.returncode is None:
                    pid, status = os.waitpid(self.pid, 0 if deadline is None else os.WNOHANG)
                    if pid:
                        self.returncode = os.waitstatus_to_exitcode(status)
            finally:
                self._lock.release()
            if self.returncode is not None:
                return self.returncode
            if time.monotonic() > deadline:
                raise subprocess.TimeoutExpired("run process", timeout)
            time.sleep(0.05)


def main(argv: list[str]) -> int:
    children.take_signals_back()
    if len(argv) != 2:
        print("usage: python -m aml_magics.backends.local.host WORKSPACE RUN_ID", file=sys.stderr)
        return 2
    return Host(Path(argv[0]), argv[1]).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
