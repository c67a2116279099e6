"""Where ``score.py``'s ``init()`` and ``run()`` execute: the process's main thread, one request at a time,
with a time limit it cannot swallow — while the HTTP server's event loop runs on a thread of its own.

* One at a time, as azmlinfsrv's sync workers do: score.py need not be thread-safe and BLAS-heavy models do
  not fight over the cores.
* Off the event loop, so the liveness route (``GET /``) answers while ``run()`` works.
* On the main thread, so the limit is SIGALRM: it interrupts a ``time.sleep`` or a blocking read at once, and
  raises ``RunTimeout`` — a ``BaseException``, so ``except Exception:`` in a score.py does not catch it —
  again every half second for as long as ``run()`` goes on (a bare ``except:`` that retries is stopped too).
* The client gets its 504 at the deadline even when ``run()`` is deep in C code that no signal interrupts;
  requests that arrive while such a ``run()`` is still stuck are answered 503 at once instead of queueing.
* Results of short runs with more requests waiting are handed back a few at a time: every hand-back wakes the event
  loop's thread, and under load those wake-ups (two thread switches a request) cost more than a short ``run()``
  (measured: +12 % requests/s with one worker, +16 % with two, around a 110 µs ``run()``). A result waits at most ``HOLD_S`` for others, or
  until the queue is empty — and the event loop collects what is waiting every ``HOLD_S`` itself, so a result never
  waits on a slow or stuck ``run()`` that came after it.
"""
from __future__ import annotations

import asyncio
import collections
import queue
import signal
import time
from typing import Any, Callable

RAISE_AGAIN_S = 0.5
HOLD_S = 0.001  # how long a finished run()'s result may wait to be handed back with others
HOLD_MAX = 8  # how many may wait
WAKE_S = 0.2  # the idle main thread wakes this often, so a signal taken by another thread is handled
GRACE_S = 0.25  # after the deadline, how long the event loop waits for the interrupted run() to report


class RunTimeout(BaseException):
    """Raised inside a ``run()`` that outlived the service's time limit (not an ``Exception``: ordinary
    handlers do not catch it)."""


class RunStopped(Exception):
    """run() was interrupted by its time limit (carried through a future, which takes only Exceptions)."""


class Busy(Exception):
    """A request arrived while an earlier ``run()`` was still running past its limit."""


class MainThreadRunner:
    """Jobs handed over from the event loop's thread and executed by ``serve()`` on the main thread."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._current: tuple[float, float] | None = None  # (started, timeout) of the job running now
        self._done: collections.deque = collections.deque()  # (future, result, error) not yet settled
        self._held = 0  # main thread: results put in _done since the event loop was last woken
        self._held_since = 0.0
        self._waiting = 0  # event loop: jobs submitted whose results have not been collected
        self._collector: asyncio.TimerHandle | None = None  # event loop: collects held results every HOLD_S
        self._deadlines: collections.deque = collections.deque()  # event loop: (when, future), in submission order
        self._expiry: asyncio.TimerHandle | None = None  # event loop: fires at (or before) the first deadline

    @property
    def stuck(self) -> bool:
        cur = self._current
        return cur is not None and cur[1] > 0 and time.monotonic() > cur[0] + cur[1] + GRACE_S

    def submit(self, fn: Callable[[], Any], timeout: float | None,
               on_done: Callable[[asyncio.Future], None] | None = None) -> asyncio.Future:
        """``fn()`` on the main thread (called on the event loop's thread): a future of its result, settled on the
        event loop — at the deadline whether or not ``fn`` has stopped (``outcome`` then raises ``RunTimeout``).
        ``on_done(future)`` is called on the event loop when it is settled. Raises ``Busy`` while a run() is stuck."""
        if self.stuck:
            raise Busy()
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        # the deadlines share one timer (a timer set and cancelled per request cost 1.5 µs of uvloop's; the event loop
        # spends about 20 µs on a request; wait_for + shield cost three futures and more callbacks): at the
        # deadline the request is answered; the job's own result, when it comes, finds the future done (_settle)
        if timeout:
            self._add_deadline(loop, loop.time() + timeout + GRACE_S, future)
        self._jobs.put((fn, future, loop, timeout or 0.0))
        self._waiting += 1
        self._ensure_collector(loop)
        if on_done is not None:
            future.add_done_callback(on_done)
        return future

    async def call(self, fn: Callable[[], Any], timeout: float | None) -> Any:
        """``fn()`` on the main thread; raises ``RunTimeout`` at the deadline, whether or not ``fn`` has stopped."""
        future = self.submit(fn, timeout)
        try:
            return await future
        except _Expired:
            raise RunTimeout() from None

    def _add_deadline(self, loop: asyncio.AbstractEventLoop, when: float, future: asyncio.Future) -> None:
        deadlines = self._deadlines
        if deadlines and when < deadlines[-1][0]:  # a shorter limit than the calls before it: a timer of its own
            loop.call_at(when, _expire, future)
            return
        deadlines.append((when, future))
        if self._expiry is None:
            self._expiry = loop.call_at(when, self._expire_due, loop)

    def _expire_due(self, loop: asyncio.AbstractEventLoop) -> None:
        """The shared timer: every call past its deadline gets its answer (``_Expired``); the timer is set again for
        the first one left."""
        self._expiry = None
        deadlines, now = self._deadlines, loop.time()
        while deadlines:
            when, future = deadlines[0]
            if not future.done() and when > now:
                break
            deadlines.popleft()
            _expire(future)
        if deadlines:
            self._expiry = loop.call_at(deadlines[0][0], self._expire_due, loop)

    def _ensure_collector(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._collector is None and self._waiting:
            self._collector = loop.call_later(HOLD_S, self._collect, loop)

    def _collect(self, loop: asyncio.AbstractEventLoop) -> None:
        """Every HOLD_S while calls wait: settle the results the main thread holds back — except while a long run()
        is under way with nothing held: nothing can be held before it ends, and its end is reported at once
        (``_reported`` starts collecting again), so the event loop is not woken every millisecond of a long run()."""
        self._collector = None
        self._drain()
        current = self._current
        if current is not None and not self._done and time.monotonic() - current[0] >= HOLD_S:
            return
        self._ensure_collector(loop)

    def _reported(self, loop: asyncio.AbstractEventLoop) -> None:
        self._drain()
        self._ensure_collector(loop)

    def _drain(self) -> None:
        done = self._done
        while True:
            try:
                future, result, error = done.popleft()
            except IndexError:
                break
            self._waiting -= 1
            _settle(future, result, error)
        deadlines = self._deadlines  # the settled calls leave it (in order: the main thread runs them in turn)
        while deadlines and deadlines[0][1].done():
            deadlines.popleft()

    def stop(self) -> None:
        self._jobs.put(None)

    def _alarm(self, signum, frame) -> None:
        if self._current is not None:
            raise RunTimeout()

    def serve(self) -> None:
        """The main thread's loop: run jobs until ``stop()``.

        It never blocks for long: a signal the kernel hands to another thread (SIGTERM to a process is taken by any
        thread) only runs its Python handler when the main thread next runs, and a main thread asleep in an
        untimed wait never would — the service then ignored ``stop`` until its next request."""
        signal.signal(signal.SIGALRM, self._alarm)
        while True:
            try:
                try:
                    job = self._jobs.get(timeout=WAKE_S)
                except queue.Empty:
                    continue
                if job is None:
                    return
                self._run(*job)
            except RunTimeout:  # an alarm that landed just after its job had ended: harmless
                self._current = None

    def _run(self, fn: Callable[[], Any], future: asyncio.Future, loop, timeout: float) -> None:
        started = time.monotonic()
        self._current = (started, timeout)
        try:
            try:
                if timeout:
                    signal.setitimer(signal.ITIMER_REAL, timeout, RAISE_AGAIN_S)
                result, error = fn(), None
            except BaseException as exc:  # noqa: BLE001 - handed to the request (RunTimeout included)
                result, error = None, exc
            finally:
                if timeout:
                    signal.setitimer(signal.ITIMER_REAL, 0)
                self._current = None
        except RunTimeout:  # the alarm landed in the finally: the deadline had passed
            self._current = None
            result, error = None, RunTimeout()
        self._done.append((future, result, error))
        now = time.monotonic()
        if not self._held:
            self._held_since = now
        self._held += 1
        if (error is None and not self._jobs.empty() and self._held < HOLD_MAX and now - self._held_since < HOLD_S
                and now - started < HOLD_S):
            return  # more work waits and this one was short: handed back with the next (or by _collect)
        self._held = 0
        try:
            loop.call_soon_threadsafe(self._reported, loop)
        except RuntimeError:  # the event loop has closed (shutting down)
            pass


def outcome(future: asyncio.Future) -> Any:
    """The result of a settled ``submit`` future: run()'s value, or what it raised (``RunTimeout`` at the deadline)."""
    try:
        return future.result()
    except _Expired:
        raise RunTimeout() from None


class _Expired(Exception):
    """The deadline passed before the job reported (set on its future by the event loop's timer)."""


def _expire(future: asyncio.Future) -> None:
    if not future.done():
        future.set_exception(_Expired())


def _settle(future: asyncio.Future, result: Any, error: BaseException | None) -> None:
    if future.done():  # the request already had its answer (a 504 at the deadline)
        return
    if error is None:
        future.set_result(result)
    elif isinstance(error, Exception):
        future.set_exception(error)
    elif isinstance(error, RunTimeout):
        future.set_exception(RunStopped())
    else:  # SystemExit or KeyboardInterrupt from a score.py: a failure of this request only
        future.set_exception(RuntimeError(f"run() raised {type(error).__name__}: {error}"))
