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

A child's SIGTERM must reach its Python handler, which only the main thread runs. Two things stood in the way: on a
loaded machine, one ``with Pool(...)`` in 60 to 170 hung for ever when they met a worker's main thread asleep in a
lock (waiting for its next task), which only a signal delivered to that thread wakes:

* the kernel hands a signal sent to a process to any one of its threads that does not block it: our threads block
  the signals a program handles (``leave_signals_to_the_main_thread``);
* a signal that lands while the main thread is between Python's last check for signals and the lock it then
  sleeps in is never acted on (Python's own race; a second thread wanting the GIL makes it likely). A child that
  hooked SIGTERM has Python write each signal to a pipe (``signal.set_wakeup_fd``) that a thread of ours reads: when
  a SIGTERM's handler has not started ``RESEND_AFTER_S`` later, the main thread is woken — with a real-time signal
  of ours whose handler does nothing (the wait it sleeps in is interrupted, and Python then runs the SIGTERM's
  handler, still pending), or, where there is none free, by sending it the SIGTERM again. Sending SIGTERM again
  alone could run the program's own SIGTERM handler twice: the copy sent just as the first was being handled.

Each tracker module registers ``flush(timeout)`` of all its trackers and a test "is this thread inside one of my
flushes" (``register``).
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import Callable

#: at most this long, a child on SIGTERM waits for each flush of what it logged before it ends
FLUSH_ON_TERMINATE_S = 5.0
#: a SIGTERM whose handler has not started this long after it came is sent again, to the main thread
RESEND_AFTER_S = 0.2

_flushers: list[Callable[[float], None]] = []  # each tracker module's flush of all its trackers
_flushing_here: list[Callable[[], bool]] = []  # each tracker module's "this thread is inside one of my flushes"
_watchers: list[Callable[[], bool]] = []  # each tracker module's "this process has a tracker that logs"
_hooked: list = []  # [the pid that put _on_terminate in place, the SIGTERM handler it replaced]
_terminate_requested: list[int] = []  # SIGTERM came while the main thread was inside a flush
_finalizer: list = []  # the multiprocessing.util.Finalize of this process
_after_start_registered: list[int] = []  # the pid that registered _after_multiprocessing_start
_wakeup: list = []  # [pid, read fd, write fd]: the pipe Python writes this process's signals to
_waker: list[int] = []  # [the real-time signal that wakes the main thread], when one was free to take
_sigterms = {"unhandled": 0, "resent": 0, "since": 0.0}  # SIGTERMs read from it; those sent again by us
_sigterms_lock = threading.RLock()  # (an RLock: the handler can run inside itself, in the main thread)


#: the signals a program handles (or dies of) in its main thread; our own threads block them
MAIN_THREAD_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM")


def leave_signals_to_the_main_thread() -> None:
    """Called first in each thread of ours: the kernel then delivers those signals to the main thread (or a thread
    of the program's own), where Python can act on them."""
    if not hasattr(signal, "pthread_sigmask"):
        return  # Windows: no process-directed signals to steer
    try:
        signal.pthread_sigmask(signal.SIG_BLOCK, {getattr(signal, name) for name in MAIN_THREAD_SIGNALS
                                                  if hasattr(signal, name)})
    except (OSError, ValueError):  # the default mask stays, as before
        pass


def take_signals_back() -> None:
    """First in the main thread of every process of ours (run host and run process, zygote, service supervisor and
    server): the signals a program handles, unblocked. A process inherits its starter's signal mask, and a thread of
    ours blocks them: a service the model browser deployed from its worker thread had SIGTERM and SIGALRM blocked —
    deleting it waited 40 s for a SIGKILL, and its time limit never fired."""
    if not hasattr(signal, "pthread_sigmask"):
        return
    try:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {getattr(signal, name) for name in MAIN_THREAD_SIGNALS
                                                    if hasattr(signal, name)})
    except (OSError, ValueError):
        pass


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
    global _sigterms_lock
    _terminate_requested.clear()  # the parent's, not this child's
    _sigterms_lock = threading.RLock()
    _sigterms.update(unhandled=0, resent=0)
    if _wakeup:  # the parent's pipe: this child's signals must not be counted there
        try:
            previous = signal.set_wakeup_fd(-1)
            if previous not in (-1, _wakeup[2]):
                signal.set_wakeup_fd(previous)  # the program's own, set after ours: kept
        except (ValueError, OSError):
            pass
        for fd in _wakeup[1:]:
            try:
                os.close(fd)
            except OSError:
                pass
        _wakeup.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _read_wakeup() -> None:
    """Count the SIGTERMs Python wrote to the pipe since the last read (under ``_sigterms_lock``)."""
    try:
        data = os.read(_wakeup[1], 4096) if _wakeup else b""
    except (BlockingIOError, OSError):
        return
    for signum in data:
        if signum != signal.SIGTERM:
            continue
        if _sigterms["resent"]:  # the echo of one we sent again
            _sigterms["resent"] -= 1
        else:
            if not _sigterms["unhandled"]:
                _sigterms["since"] = time.monotonic()
            _sigterms["unhandled"] += 1


def _watch_sigterm(pid: int, read_fd: int) -> None:
    """The thread that sends a SIGTERM again when its handler did not start: the main thread slept through it."""
    import select

    leave_signals_to_the_main_thread()
    main = threading.main_thread().ident
    poll = select.poll()
    poll.register(read_fd, select.POLLIN)
    while _wakeup and _wakeup[0] == pid and _wakeup[1] == read_fd:
        try:
            poll.poll(RESEND_AFTER_S * 1000 if _sigterms["unhandled"] else None)  # idle until a signal comes
            with _sigterms_lock:
                _read_wakeup()
                late = (_sigterms["unhandled"] and time.monotonic() - _sigterms["since"] >= RESEND_AFTER_S
                        and signal.getsignal(signal.SIGTERM) is _on_terminate)
                if late and main is not None:
                    _sigterms["since"] = time.monotonic()
                    if _waker and signal.getsignal(_waker[0]) is _woken:
                        signal.pthread_kill(main, _waker[0])
                    else:
                        _sigterms["resent"] += 1
                        signal.pthread_kill(main, signal.SIGTERM)
        except (OSError, ValueError):  # the pipe was closed (a fork replaced it): this watch is over
            return


def _hook_wakeup() -> None:
    """In the main thread of a child whose SIGTERM handler is ours: the pipe, and the thread that reads it."""
    import select

    pid = os.getpid()
    if not (hasattr(signal, "pthread_kill") and hasattr(select, "poll")) or (_wakeup and _wakeup[0] == pid):
        return
    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)
    os.set_blocking(write_fd, False)
    try:
        previous = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    except (ValueError, OSError):
        previous = None
    if previous != -1:  # the program has a pipe of its own (asyncio's): left alone
        if previous is not None:
            signal.set_wakeup_fd(previous)
        os.close(read_fd)
        os.close(write_fd)
        return
    _wakeup[:] = [pid, read_fd, write_fd]
    _take_waker()
    threading.Thread(target=_watch_sigterm, args=(pid, read_fd), name="aml-sigterm", daemon=True).start()


def _woken(signum, frame) -> None:
    """The waker's handler: nothing — being called is the point (the main thread is awake to run the SIGTERM's)."""


def _take_waker() -> None:
    """In the main thread: a real-time signal no one handles becomes the waker (the highest free one below
    SIGRTMAX: libraries that use one take the lowest). None on systems without them: SIGTERM is sent again."""
    if _waker and signal.getsignal(_waker[0]) is _woken:
        return
    _waker.clear()
    low, high = getattr(signal, "SIGRTMIN", None), getattr(signal, "SIGRTMAX", None)
    if low is None or high is None:
        return
    for signum in range(high - 1, max(low, high - 8), -1):
        try:
            if signal.getsignal(signum) is signal.SIG_DFL:
                signal.signal(signum, _woken)
                _waker.append(signum)
                return
        except (OSError, ValueError):
            continue


def _on_terminate(signum, frame) -> None:
    """SIGTERM in a child that logged: write what it logged, then what SIGTERM did before."""
    with _sigterms_lock:  # this run answers every SIGTERM so far: none is sent again
        _read_wakeup()
        _sigterms["unhandled"] = 0
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
        if signal.getsignal(signal.SIGTERM) is _on_terminate and threading.current_thread() is threading.main_thread():
            _hook_wakeup()
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
