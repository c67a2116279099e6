"""The scoring service's ``JoinedWrites``: an answer's head goes out with its body in one write; what must not wait
(an interim 100 Continue, a streamed head, a head with no body) is not held back. The transport here is a
recorder of what reaches the socket — the thing under test is ours, the transport is asyncio's interface."""
from __future__ import annotations

from aml_magics.scoring.guard import JoinedWrites

HEAD = b"HTTP/1.1 200 OK\r\ndate: x\r\nserver: uvicorn\r\ncontent-length: 2\r\ncontent-type: application/json\r\n\r\n"


class Recorder:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default=None):
        return ("127.0.0.1", 1) if name == "peername" else default


def test_a_head_and_its_body_are_one_write():
    t = Recorder()
    w = JoinedWrites(t)
    w.write(HEAD)
    assert t.writes == []
    w.write(b"[]")
    assert t.writes == [HEAD + b"[]"]
    w.flush()  # the answer ended: nothing left
    assert t.writes == [HEAD + b"[]"]
    w.write(HEAD)  # the next answer on the kept-alive connection
    w.write(b"{}")
    assert t.writes[1] == HEAD + b"{}"


def test_what_must_not_wait_is_written_at_once():
    t = Recorder()
    w = JoinedWrites(t)
    w.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # the client waits for it before sending its body
    chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
    w.write(chunked)  # a streamed answer: its body may come much later
    assert t.writes == [b"HTTP/1.1 100 Continue\r\n\r\n", chunked]
    w.write(b"2\r\nab\r\n")
    assert t.writes[-1] == b"2\r\nab\r\n"


def test_a_held_head_is_written_when_the_answer_ends_or_the_connection_closes():
    t = Recorder()
    w = JoinedWrites(t)
    w.write(HEAD)  # a HEAD answer: no body write follows
    w.flush()
    assert t.writes == [HEAD]
    w.write(HEAD)  # the app failed after its head: uvicorn closes the connection
    w.close()
    assert t.writes == [HEAD, HEAD] and t.closed and w.is_closing()
    assert w.get_extra_info("peername") == ("127.0.0.1", 1)  # the rest of the transport is the transport's
