"""A service's log: private (0600) and bounded (``service.log`` plus one older ``service.log.1``).

Several processes append to it (the server, and during an update its successor), so rotation happens under
an advisory lock and only by the writer that still holds the current file; the others simply reopen. After a
rotation the server's own stdout and stderr (file descriptors 1 and 2) are pointed at the new file too, so
output of C extensions follows.
"""
from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path

from ..core.config import env_number

DEFAULT_MAX_BYTES = env_number("AML_MAGICS_SERVICE_LOG_MAX_BYTES", 5 * 1024 * 1024, int, minimum=1024)


def open_private(path: Path) -> int:
    """An append-only descriptor of ``path``, created 0600 (and made 0600 if it was not)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.fchmod(fd, 0o600)
    return fd


class RotatingLog:
    """A text stream (``write``/``flush``) that appends to ``path`` and rotates it past ``max_bytes``."""

    def __init__(self, path: Path, max_bytes: int = DEFAULT_MAX_BYTES, *, own_stdio: bool = False):
        self.path = Path(path)
        self.max_bytes = max(4096, max_bytes)
        self.own_stdio = own_stdio  # point fds 1 and 2 at the current file (the server process)
        self._lock = threading.Lock()
        self._fd = open_private(self.path)
        if own_stdio:
            self._adopt_stdio()

    def _adopt_stdio(self) -> None:
        for target in (1, 2):
            try:
                os.dup2(self._fd, target)
            except OSError:
                pass

    def write(self, text: str) -> int:
        data = text.encode("utf-8", "backslashreplace")
        with self._lock:
            view = memoryview(data)
            while view:
                try:
                    n = os.write(self._fd, view)
                except OSError:
                    return len(text)  # a full disk must not break a request: the line is lost, not the service
                view = view[n:]
            try:
                if os.fstat(self._fd).st_size > self.max_bytes:
                    self._rotate()
            except OSError:
                pass
        return len(text)

    def _rotate(self) -> None:
        lock_path = self.path.with_name(self.path.name + ".lock")
        lock_fd = os.open(lock_path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            try:
                current = os.stat(self.path)
                mine = os.fstat(self._fd)
                if (current.st_ino, current.st_dev) == (mine.st_ino, mine.st_dev) and mine.st_size > self.max_bytes:
                    os.replace(self.path, self.path.with_name(self.path.name + ".1"))
            except FileNotFoundError:
                pass
            new = open_private(self.path)
            os.close(self._fd)
            self._fd = new
            if self.own_stdio:
                self._adopt_stdio()
        finally:
            fcntl.flock(lock_fd, fcntl.LOCK_UN)
            os.close(lock_fd)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self._fd

    @property
    def encoding(self) -> str:
        return "utf-8"


def read_tail(path: Path, tail: int | None = None) -> str:
    """The log's text, the older rotated part first; the last ``tail`` lines when given."""
    parts = []
    for p in (path.with_name(path.name + ".1"), path):
        try:
            parts.append(p.read_text(errors="replace"))
        except OSError:
            pass
    text = "".join(parts)
    return "\n".join(text.splitlines()[-tail:]) if tail else text
