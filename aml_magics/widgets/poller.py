"""One poller per kernel, shared by every open dashboard.

A single daemon thread asks each registered dashboard to ``poll()``. It polls fast while
something changes and backs off when nothing does (the ``@lumino/polling`` ``Poll`` pattern):
the interval grows from ``FAST`` to ``SLOW_ACTIVE`` while a run is active — so a logged value
still shows within a second — and to ``SLOW_IDLE`` when only queued runs are watched. A
dashboard whose run reached its final state and has shown it leaves; the thread ends when
nobody is left, and starts again with the next dashboard. The kernel is never blocked.

A dashboard of a remote workspace (Azure ML) sets ``remote_pace = (active_s, idle_s)``: it is polled at
most that often (every 2 s while something changes, backing off to 10 s), whatever the local pace.
"""
from __future__ import annotations

import sys
import threading
import time
from typing import Protocol

from ..core.children import leave_signals_to_the_main_thread

FAST = 0.2
SLOW_ACTIVE = 0.6
SLOW_IDLE = 2.0
MAX_FAILURES = 14  # polls in a row that raised before a dashboard stops: 1 + 2 + 4 … 30 s, about five minutes


class Pollable(Protocol):
    def poll(self) -> str:
        """'changed', 'idle' (nothing new), 'waiting' (nothing can change soon) or 'done' (stop polling me)."""


class Poller:
    def __init__(self, max_failures: int = MAX_FAILURES) -> None:
        self.max_failures = max_failures
        self._members: list[Pollable] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.interval = FAST
        self.polls = 0  # how many poll rounds ran (tests and benchmarks read it)
        self._due: dict[int, float] = {}  # remote members: when they may be polled next
        self._waits: dict[int, float] = {}  # … and the wait that got them there (it grows while idle)
        self._failures: dict[int, int] = {}  # members whose poll raised: how many times in a row

    def _failed(self, member: Pollable, exc: Exception, now: float) -> str:
        """A poll that raised — often passing (the network to Azure ML, a busy disk): said once, tried again later
        and later (1 s, 2 s … 30 s); after ``max_failures`` in a row (about five minutes) the dashboard stops."""
        n = self._failures.get(id(member), 0) + 1
        self._failures[id(member)] = n
        if n >= self.max_failures:
            print(f"aml-magics: a dashboard stopped updating after {n} failed tries: {type(exc).__name__}: {exc}",
                  file=sys.stderr)
            return "done"
        if n == 1:
            print(f"aml-magics: a dashboard could not update ({type(exc).__name__}: {exc}); trying again",
                  file=sys.stderr)
        self._due[id(member)] = now + min(2.0 ** (n - 1), 30.0)
        return "idle"

    def register(self, member: Pollable) -> None:
        with self._lock:
            if member not in self._members:
                self._members.append(member)
            self.interval = FAST
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="aml-dashboard-poller", daemon=True)
                self._thread.start()
        self._wake.set()

    def unregister(self, member: Pollable) -> None:
        with self._lock:
            if member in self._members:
                self._members.remove(member)

    @property
    def members(self) -> list[Pollable]:
        with self._lock:
            return list(self._members)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        leave_signals_to_the_main_thread()  # the notebook's interrupt (SIGINT) is for the cell, not for this thread
        while True:
            members = self.members
            if not members:
                with self._lock:
                    if not self._members:
                        self._thread = None
                        return
                continue
            results = []
            now = time.monotonic()
            for m in members:
                pace = getattr(m, "remote_pace", None)
                if now < self._due.get(id(m), 0.0):
                    results.append("idle")
                    continue
                try:
                    result = m.poll()
                    self._failures.pop(id(m), None)
                except Exception as exc:  # noqa: BLE001 - a broken dashboard must not stop the others
                    result = self._failed(m, exc, now)
                if result == "done":
                    self.unregister(m)
                    self._due.pop(id(m), None)
                    self._waits.pop(id(m), None)
                    self._failures.pop(id(m), None)
                elif id(m) in self._failures:
                    pass  # its next try is already set
                elif pace:
                    previous = self._waits.get(id(m), 0.0)
                    wait = pace[0] if result == "changed" else min(max(previous * 1.5, pace[0]), pace[1])
                    self._waits[id(m)] = wait
                    self._due[id(m)] = now + wait
                results.append(result)
            self.polls += 1
            if "changed" in results:
                self.interval = FAST
            else:
                cap = SLOW_ACTIVE if "idle" in results else SLOW_IDLE
                self.interval = min(self.interval * 1.5, cap)
            self._wake.wait(self.interval)
            self._wake.clear()


_poller: Poller | None = None


def shared_poller() -> Poller:
    global _poller
    if _poller is None:
        _poller = Poller()
    return _poller
