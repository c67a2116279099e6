"""The HTTP layer of a scoring service, hardened against clients that never finish (uvicorn's httptools
protocol plus the guards a service reachable by others needs).

* **Header-read timeout**: a connection must send a whole request head within ``HEADER_TIMEOUT_S`` of its
  first byte (or of connecting): idle, partial-header and slow-drip connections are answered 408 and closed.
  Kept-alive connections between requests close after uvicorn's keep-alive timeout.
* **Body-read timeout**: a request whose body has not all arrived ``BODY_TIMEOUT_S`` after its head is answered
  408 and closed (slow-body / slowloris). The timer is armed only when a read ends with the body incomplete: a
  request that arrives whole costs nothing (``asyncio.timeout`` around the app's reads cost 9 µs a request).
* **Header size**: a request head larger than ``MAX_HEADER_BYTES`` is answered 431 and closed, so a 200 MB
  header costs no more memory than the limit plus one read.
* **One write per answer**: the response head goes out with its body (``JoinedWrites``).
* **A fast route**: the service's ``POST /score`` with a small body (a declared length up to ``FAST_BODY_BYTES`` and
  the service's limit) is handed to it whole, without uvicorn's ASGI task (``fast_route``), and answered through
  ``answer_json`` / ``answer_with``. Everything else about the connection (keep-alive, pipelining, the timers above,
  shutdown) stays uvicorn's.
* **Connection cap**: past ``max_connections`` (just below the file-descriptor limit, which ``raise_fd_limit``
  lifts to the hard limit at start) the oldest connection that has not sent anything is closed to make room,
  or, when there is none, the new connection is answered 503 — never a silent failure to accept.
"""
from __future__ import annotations

import resource
import time

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ..core.config import env_number

HEADER_TIMEOUT_S = env_number("AML_MAGICS_HEADER_TIMEOUT_S", 10, minimum=0.01)
BODY_TIMEOUT_S = env_number("AML_MAGICS_BODY_TIMEOUT_S", 30, minimum=0.01)
MAX_HEADER_BYTES = 64 * 1024
FD_RESERVE = 64  # descriptors kept for the model, logs and the store
FAST_BODY_BYTES = 64 * 1024  # uvicorn's read buffer limit: a body up to this size is read without pausing
LINGER_S, LINGER_BYTES = 2.0, 1 << 20  # after refusing a request mid-upload, what is read and dropped so the
# client sees the answer instead of a connection reset


def raise_fd_limit() -> int:
    """Lift the soft limit on open files to the hard limit; returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1_048_576)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def _plain_response(status: int, reason: str, message: str) -> bytes:
    body = ('{"message": "%s"}' % message.replace('"', "'")).encode()
    return (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
            "connection: close\r\n\r\n").encode() + body


class JoinedWrites:
    """A connection's transport as uvicorn's request cycle sees it: the response head is held back and goes out
    with the body's first bytes in one ``write`` (uvicorn writes the two apart — two sends, two TCP segments and
    two wake-ups of the client for every answer). Only a head that declares a ``content-length`` is held (its
    body follows at once: Starlette's ``Response`` sends both back to back); a streamed (chunked) head or a
    ``100 Continue`` is written straight away. Whatever is held is written when the response completes (a HEAD
    answer has no body write) and before the connection is closed."""

    __slots__ = ("transport", "held")

    def __init__(self, transport) -> None:
        self.transport = transport
        self.held: bytes | None = None

    def write(self, data: bytes) -> None:
        held = self.held
        if held is not None:
            self.held = None
            self.transport.write(held + data)
        elif data.startswith(b"HTTP/1.1 ") and b"\r\ncontent-length: " in data and not data.startswith(b"HTTP/1.1 1"):
            self.held = data
        else:
            self.transport.write(data)

    def flush(self) -> None:
        held = self.held
        if held is not None:
            self.held = None
            self.transport.write(held)

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def is_closing(self) -> bool:
        return self.transport.is_closing()

    def __getattr__(self, name: str):
        return getattr(self.transport, name)


class GuardedHttpProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` with a header-read timeout, a header size limit and a connection cap."""

    max_connections = 10_000  # set by the server from the descriptor limit
    balance = None  # the service's shared connection counts (balance.Balance) when it has several workers
    fast_route = None  # (method, path, handler(protocol, cycle), body limit): requests answered without an ASGI task

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)  # (counted in ``balance`` when it was accepted)
        self._writer = JoinedWrites(transport)
        self._head_open = True  # waiting for (the rest of) a request head
        self._head_bytes = 0
        self._discarding = -1  # >= 0: the answer has been sent; bytes still arriving are dropped
        self._head_timer = self.loop.call_later(HEADER_TIMEOUT_S, self._head_timeout)
        self._body_timer = None  # while a request's body is being read (``_body_pending``)
        self._opened = time.monotonic()
        if len(self.connections) > self.max_connections and not self._evict_idle():
            transport.write(_plain_response(503, "Service Unavailable",
                                            "the service has too many open connections; try again shortly"))
            transport.close()

    def _evict_idle(self) -> bool:
        """Close the oldest connection that has sent nothing yet; whether one was found."""
        idle = [c for c in self.connections
                if c is not self and getattr(c, "_head_open", False) and not getattr(c, "_head_bytes", 1)]
        if not idle:
            return False
        oldest = min(idle, key=lambda c: c._opened)
        oldest._cancel_head_timer()
        oldest.transport.close()
        return True

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _body_pending(self) -> bool:
        """Whether the request being read has more body to come, unanswered, while this connection is read (uvicorn
        stops reading behind a pipelined request until the one before it is answered, and when the app has not
        taken what came: then a body that waits is not the client's fault)."""
        cycle = self.cycle
        return (cycle is not None and cycle.more_body and not cycle.response_complete and not self.flow.read_paused
                and self._discarding < 0)

    def _arm_body_timer(self) -> None:
        if self._body_timer is None and self._body_pending():
            self._body_timer = self.loop.call_later(BODY_TIMEOUT_S, self._body_timeout)

    def _cancel_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _body_timeout(self) -> None:
        self._body_timer = None
        if self._body_pending() and not self.transport.is_closing():
            self._refuse(408, "Request Timeout", f"the request body did not arrive within {BODY_TIMEOUT_S:g} s")

    def _head_timeout(self) -> None:
        self._head_timer = None
        if self._head_open and not self.transport.is_closing():
            if self._head_bytes:
                self._refuse(408, "Request Timeout", f"the request head did not arrive within {HEADER_TIMEOUT_S:g} s")
            else:
                self.transport.close()

    def _refuse(self, status: int, reason: str, message: str) -> None:
        """Answer and close, reading (and dropping) what the client still sends for a moment first: closing with
        unread data would reset the connection and the client might never see the answer."""
        self._cancel_head_timer()
        self._head_open = False
        self.transport.write(_plain_response(status, reason, message))
        self._discarding = 0
        try:
            self.transport.write_eof()
        except (NotImplementedError, OSError, RuntimeError):
            self.transport.close()
            return
        self.loop.call_later(LINGER_S, self.transport.close)

    def data_received(self, data: bytes) -> None:
        if self._discarding >= 0:
            self._discarding += len(data)
            if self._discarding > LINGER_BYTES:
                self.transport.close()
            return
        if self._head_open:
            if self._head_bytes > MAX_HEADER_BYTES:  # earlier reads did not complete the head: refuse it
                self._refuse(431, "Request Header Fields Too Large",
                             f"the request head is over {MAX_HEADER_BYTES // 1024} KB")
                return
            self._head_bytes += len(data)
        super().data_received(data)
        if self._head_open and self._head_bytes and self._head_timer is None and self._discarding < 0:
            # a head begun on a kept-alive connection and not whole after this read: it has HEADER_TIMEOUT_S from
            # now. (Armed only then: a timer set and cancelled for every request cost 1.5 µs of uvloop's.)
            self._head_timer = self.loop.call_later(HEADER_TIMEOUT_S, self._head_timeout)
        self._arm_body_timer()  # the rest of a body comes later

    def on_headers_complete(self) -> None:
        self._head_open = False
        self._cancel_head_timer()
        super().on_headers_complete()
        if self.cycle is not None:
            self.cycle.transport = self._writer

    def on_response_complete(self) -> None:
        self._writer.flush()  # a head with no body write after it (the answer to a HEAD request)
        super().on_response_complete()  # (starts a pipelined request and reads again)
        self._cancel_body_timer()  # answered (a 413 before the body came): no 408 after it
        self._arm_body_timer()  # a pipelined request whose body is still coming

    def on_message_complete(self) -> None:
        self._cancel_body_timer()
        super().on_message_complete()
        self._head_open, self._head_bytes = True, 0  # a kept-alive connection waits for its next request
        cycle = self.cycle
        if cycle is not None and getattr(cycle, "fast", None) == "waiting":  # its turn has come: it is whole now
            cycle.fast = "started"
            self.fast_route[2](self, cycle)

    def _start_asgi_task(self, cycle, app) -> None:
        """A request's turn (at once, or after the pipelined ones before it): the fast route's requests are handed
        to its handler when their body is whole; others start uvicorn's ASGI task."""
        route = self.fast_route
        if route is not None and app is self.app and _fast(cycle, route):
            if cycle.more_body:
                cycle.fast = "waiting"  # on_message_complete hands it over
            else:
                cycle.fast = "started"
                route[2](self, cycle)
            return
        super()._start_asgi_task(cycle, app)

    def answer_json(self, cycle, body: bytes, close: bool = False) -> None:
        """A fast-route request's 200 answer: ``body`` (JSON), uvicorn's default headers, one write."""
        if cycle.disconnected or cycle.response_complete:
            return
        keep_alive = cycle.keep_alive and not close
        if self.flow.write_paused:  # the client reads slower than it asks: wait, as uvicorn's route does, and
            task = self.loop.create_task(self._finish_when_writable(cycle, body, keep_alive))  # read no more
            task.add_done_callback(self.tasks.discard)  # of it meanwhile (its next request waits in the pipeline)
            self.tasks.add(task)
            return
        self._finish(cycle, _json_answer(cycle, body, keep_alive), keep_alive)

    async def _finish_when_writable(self, cycle, body: bytes, keep_alive: bool) -> None:
        await self.flow.drain()  # (also ends when the connection is lost: then it is marked disconnected)
        if not (cycle.disconnected or cycle.response_complete):  # a shutdown meanwhile: it says so and closes
            keep_alive = keep_alive and cycle.keep_alive
            self._finish(cycle, _json_answer(cycle, body, keep_alive), keep_alive)

    def answer_with(self, cycle, response, close: bool = False) -> None:
        """A fast-route request answered with an ASGI response (an error, or a ``Response`` run() returned): it
        runs as uvicorn's task would have run the application (streaming, headers checked, a 500 if it fails)."""
        if cycle.disconnected or cycle.response_complete:
            return
        if close:
            response.headers["connection"] = "close"
        super()._start_asgi_task(cycle, response)

    def _finish(self, cycle, data: bytes, keep_alive: bool) -> None:
        cycle.response_started = cycle.response_complete = True
        cycle.keep_alive = keep_alive
        cycle.message_event.set()
        self.transport.write(data)
        if not keep_alive:
            self.transport.close()
        on_response, cycle.on_response = cycle.on_response, _nothing
        on_response()

    def connection_lost(self, exc) -> None:
        if self.balance is not None:
            self.balance.add(-1)
        self._cancel_head_timer()
        self._cancel_body_timer()
        super().connection_lost(exc)


def _nothing() -> None:
    pass


def _json_answer(cycle, body: bytes, keep_alive: bool) -> bytes:
    """The bytes of a 200 answer with a JSON ``body`` and uvicorn's default headers."""
    head = [b"HTTP/1.1 200 OK\r\n"]
    for name, value in cycle.default_headers:
        head += (name, b": ", value, b"\r\n")
    head.append(b"content-type: application/json\r\ncontent-length: %d\r\n" % len(body))
    head.append(b"\r\n" if keep_alive else b"connection: close\r\n\r\n")
    head.append(body)
    return b"".join(head)


def _fast(cycle, route) -> bool:
    """Whether a request goes the fast route: its method and path, a declared body length up to FAST_BODY_BYTES and
    the route's limit (not chunked: a longer one is refused by the application before it is read), and no
    ``Expect: 100-continue`` (its body comes only after an interim answer)."""
    scope = cycle.scope
    if scope["method"] != route[0] or scope["path"] != route[1] or cycle.waiting_for_100_continue:
        return False
    length = None
    for name, value in scope["headers"]:
        if name == b"content-length":
            if length is not None or not value.isdigit():
                return False
            length = int(value)
        elif name == b"transfer-encoding":
            return False
    return length is not None and length <= FAST_BODY_BYTES and length <= route[3]
