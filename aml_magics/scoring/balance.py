"""How a service's workers share their listening socket evenly.

Each worker of a ``--workers N`` service waits on the same socket, and uvloop takes every connection that is
waiting whenever its worker wakes: when a client opens its connections at once (a pool, a load test), one worker
often took all of them and the others idled — seen for 8 connections over 2 workers one time in five, at half the
throughput. Here each worker accepts connections itself, one at a time, and keeps its count of open connections
in a small file the service's workers share (an 8-byte slot each, written by its own worker only). A worker that
holds two connections more than another leaves the next connection to the others for a moment (``DEFER_S``),
and takes it itself if it is still waiting then — so a stopped or busy worker delays a connection by at most that
moment and never loses one. The moment is short: with clients that open a connection per request, counts change
all the time and two workers can each be "over" the other in turn (with 10 ms such a client got 230 requests/s
from two workers against 2,200 from one; with 1 ms 3,300 – 3,400 against 2,700 – 3,200 — 3,900 with no waiting at
all — and a burst of 8 connections still lands 4 + 4 or 3 + 5).
"""
from __future__ import annotations

import asyncio
import logging
import mmap
import os
import socket
import time
from pathlib import Path
from typing import Callable

log = logging.getLogger("aml_magics.scoring")

DEFER_S = 0.001  # how long a worker over its share leaves a waiting connection to the others
BACKOFF_S = 0.1  # after accept() failed for want of descriptors or memory


class Balance:
    """This worker's slot among the service's connection counts."""

    def __init__(self, path: Path, slot: int, workers: int) -> None:
        if not 0 <= slot < workers:
            raise ValueError(f"slot {slot} of {workers} workers")
        self.slot, self.workers = slot, workers
        fd = os.open(path, os.O_RDWR)
        try:
            self._map = mmap.mmap(fd, 8 * workers)
        finally:
            os.close(fd)
        self.counts = memoryview(self._map).cast("q")
        self.counts[slot] = 0

    @classmethod
    def parse(cls, value: str) -> "Balance":
        """``PATH:SLOT:WORKERS`` (the form the supervisor passes)."""
        path, slot, workers = value.rsplit(":", 2)
        return cls(Path(path), int(slot), int(workers))

    def add(self, n: int) -> None:
        self.counts[self.slot] += n

    def over_share(self) -> bool:
        """Whether this worker holds at least two connections more than another worker of the service. (Not one:
        with clients that open a connection per request, whichever worker is answering one would always be "over"
        and the workers would keep leaving connections to each other.)"""
        counts = self.counts
        mine = counts[self.slot] - 1
        return any(counts[i] < mine for i in range(self.workers) if i != self.slot)


def create_counts(path: Path, workers: int) -> None:
    """The shared file for ``workers`` slots, all zero (written by the supervisor before it starts them). Raises
    ``OSError`` (a full disk: ENOSPC) with nothing left behind."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        if os.write(fd, bytes(8 * workers)) != 8 * workers:
            raise OSError(28, "No space left on device", str(path))
    except OSError:
        path.unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)


def shared_counts(directory: Path, workers: int) -> tuple[Path | None, str | None]:
    """A new counts file for a group of ``workers`` in ``directory``, or (None, why) when it cannot be made: the
    workers then accept as one server does (unevenly at times, never refusing a connection) — a full disk must not
    keep a service from starting."""
    path = directory / f"connections-{time.time_ns()}"
    try:
        create_counts(path, workers)
    except OSError as exc:
        return None, (f"the workers' shared connection counts could not be written ({exc.strerror or exc}); "
                      f"they accept connections unbalanced")
    return path, None


class Acceptor:
    """Accepts the listening socket's connections one at a time on the event loop and hands each to a protocol
    made by ``factory`` — what ``loop.create_server`` does, with the fair share of ``Balance`` in between."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, factory: Callable[[], asyncio.Protocol],
                 balance: Balance | None) -> None:
        self.loop, self.sock, self.factory, self.balance = loop, sock, factory, balance
        self.sock.setblocking(False)
        self.fd = sock.fileno()
        self.timer: asyncio.TimerHandle | None = None
        self.deferred_at: float | None = None  # when a waiting connection was last left to the others
        self.running = False
        self.failed_once = False

    def start(self) -> None:
        self.running = True
        self.loop.add_reader(self.fd, self._ready)

    def stop(self) -> None:
        """Accept nothing more (shutdown, or draining before an update); waiting connections stay in the socket's
        queue for the other servers on it."""
        if not self.running:
            return
        self.running = False
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.loop.remove_reader(self.fd)
        self.sock.close()  # this process's copy: the socket stays open in the supervisor and the other workers

    def _pause(self, seconds: float) -> None:
        self.loop.remove_reader(self.fd)
        self.timer = self.loop.call_later(seconds, self._resume)

    def _resume(self) -> None:
        self.timer = None
        if self.running:
            self.loop.add_reader(self.fd, self._ready)

    def _ready(self) -> None:
        if self.balance is not None and self.balance.over_share():
            now = self.loop.time()
            if self.deferred_at is None or now - self.deferred_at > 4 * DEFER_S:  # else: left to them already
                self.deferred_at = now
                self._pause(DEFER_S)
                return
        try:
            conn, _ = self.sock.accept()
        except (BlockingIOError, InterruptedError):  # another worker took it
            return
        except OSError as exc:  # out of descriptors or memory: wait, rather than spin on a socket that stays ready
            if not self.failed_once:
                log.warning("cannot accept connections (%s); retrying every %g s", exc, BACKOFF_S)
                self.failed_once = True
            self._pause(BACKOFF_S)
            return
        self.deferred_at = None
        if self.balance is not None:  # counted now, not when its protocol starts: the next one may be waiting
            self.balance.add(1)  # (the protocol's connection_lost takes it off)
        conn.setblocking(False)
        if conn.family in (socket.AF_INET, socket.AF_INET6):
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        task = self.loop.create_task(self.loop.connect_accepted_socket(self.factory, conn))
        task.add_done_callback(self._connected)

    def _connected(self, task: asyncio.Task) -> None:
        if task.cancelled() or task.exception() is not None:  # the client left before its transport was made
            if self.balance is not None:
                self.balance.add(-1)
            if not task.cancelled():
                log.debug("a connection closed while it was set up: %s", task.exception())
