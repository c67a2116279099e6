"""Writing what a child process logged before it ends — the part both trackers share (standard library only: it is
shipped with an Azure ML job, ``backends/azure/ops.RUNTIME_FILES``).

A tracker buffers values and a thread of its own writes them; a child process ends in ways that skip ``atexit``:

* a ``multiprocessing`` worker leaves with ``os._exit`` after its finalizers: a ``multiprocessing.util.Finalize``
  flushes (``flush_when_child_ends``);
* ``Pool.terminate()`` — and leaving ``with Pool(...)`` — sends SIGTERM, which races the worker's own last flush:
  ``_on_terminate`` flushes and then does what SIGTERM did before (end the process, or call the program's own
  handler); a SIGTERM that comes while the main thread is inside a flush waits for that flush to end
  (``flush_ended``), because a flush cut off in the middle lost what it was writing (one run in three of a
  ``with Pool`` loop lost a worker's values that way);
* a worker of the spawn or forkserver start methods makes its tracker while it imports the main module, before
  ``multiprocessing`` starts it (and forkserver drops the finalizers made then): ``watch_multiprocessing``.

Each tracker module registers ``flush(timeout)`` of all its trackers and a test "is this thread inside one of my
flushes" (``register``).
"""
from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Callable

#: at most this long, a child on SIGTERM waits for each flush of what it logged before it ends
FLUSH_ON_TERMINATE_S = 5.0

_flushers: list[Callable[[float], None]] = []  # each tracker module's flush of all its trackers
_flushing_here: list[Callable[[], bool]] = []  # each tracker module's "this thread is inside one of my flushes"
_watchers: list[Callable[[], bool]] = []  # each tracker module's "this process has a tracker that logs"
_hooked: list = []  # [the pid that put _on_terminate in place, the SIGTERM handler it replaced]
_terminate_requested: list[int] = []  # SIGTERM came while the main thread was inside a flush
_finalizer: list = []  # the multiprocessing.util.Finalize of this process
_after_start_registered: list[int] = []  # the pid that registered _after_multiprocessing_start


def register(flush: Callable[[float], None], flushing_here: Callable[[], bool], logs: Callable[[], bool]) -> None:
    """A tracker module: ``flush(timeout)`` of all its trackers, whether this thread is inside one of its flushes,
    and whether this process has one of its trackers with a flush thread running."""
    _flushers.append(flush)
    _flushing_here.append(flushing_here)
    _watchers.append(logs)


def flush_everything(timeout: float = -1) -> None:
    for flush in list(_flushers):
        try:
            flush(timeout)
        except Exception:  # noqa: BLE001 - kept in memory and reported by the tracker
            pass


def _after_fork_in_child() -> None:
    _terminate_requested.clear()  # the parent's, not this child's


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _on_terminate(signum, frame) -> None:
    """SIGTERM in a child that logged: write what it logged, then what SIGTERM did before."""
    if any(inside() for inside in list(_flushing_here)):
        _terminate_requested.append(signum)  # flush_ended() comes back here when that flush is over
        return
    _terminate_requested.clear()
    for flush in list(_flushers):
        try:
            flush(FLUSH_ON_TERMINATE_S)
        except BaseException:  # noqa: BLE001 - ending anyway; the tracker reported what it could not write
            pass
    previous = _hooked[1] if len(_hooked) > 1 else signal.SIG_DFL
    if callable(previous):
        previous(signum, frame)
        return
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def flush_ended() -> None:
    """A tracker calls this when a flush ends: a SIGTERM that came during it is acted on now (main thread only)."""
    if _terminate_requested and threading.current_thread() is threading.main_thread():
        _on_terminate(signal.SIGTERM, None)


def flush_when_child_ends() -> None:
    """In a child process that logs: flush at the end of a ``multiprocessing`` process, and on SIGTERM unless the
    program ignores it. Idempotent."""
    mp_util = sys.modules.get("multiprocessing.util")
    if mp_util is not None and not (_finalizer and _finalizer[0].still_active()):
        _finalizer[:] = [mp_util.Finalize(None, flush_everything, exitpriority=100)]
    pid = os.getpid()
    if _hooked and _hooked[0] == pid:
        return
    inherited = _hooked[1:]  # a parent that logged in a child too: the handler it replaced
    _hooked[:] = [pid]
    try:
        current = signal.getsignal(signal.SIGTERM)
        if current is _on_terminate:
            _hooked.extend(inherited)
        elif (current is signal.SIG_DFL or callable(current)) and threading.current_thread() is threading.main_thread():
            _hooked.append(current)
            signal.signal(signal.SIGTERM, _on_terminate)
    except (ValueError, OSError):  # not the main thread of the main interpreter
        pass


class _Anchor:
    """What ``multiprocessing.util.register_after_fork`` holds (weakly) for this module."""


_ANCHOR = _Anchor()


def _after_multiprocessing_start(_anchor) -> None:
    """Run by a forked or forkserver ``multiprocessing`` child when it starts, after it dropped its finalizers: a
    tracker made while the child imported the main module flushes when the child ends. (A forked child's trackers
    have no flush thread yet: they call ``flush_when_child_ends`` on their first value.)"""
    if any(logs() for logs in list(_watchers)):
        flush_when_child_ends()


def watch_multiprocessing() -> None:
    """A tracker was made: if this is a ``multiprocessing`` child — in its task, or while a spawned child imports
    the main module (spawn keeps the finalizers made then) — it flushes when the child ends."""
    mp_util = sys.modules.get("multiprocessing.util")
    if mp_util is None:
        return
    if os.getpid() not in _after_start_registered:
        _after_start_registered[:] = [os.getpid()]
        mp_util.register_after_fork(_ANCHOR, _after_multiprocessing_start)
    process = sys.modules["multiprocessing.process"]
    if process.parent_process() is not None or getattr(process.current_process(), "_inheriting", False):
        flush_when_child_ends()
