"""A progress line for long transfers in a notebook or a terminal: redrawn in place with ``\\r`` (Jupyter's output
area and terminals show its last state), only once the work has taken longer than a moment."""
from __future__ import annotations

import sys
import time

SHOW_AFTER_S = 0.5


def _size(n: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{n:,.0f} bytes"


class ProgressLine:
    """``progress(done, total)`` callbacks drawn as "Uploading 1.2 GB of 3.4 GB (35 %) · 120 MB/s · 18 s left"."""

    def __init__(self, verb: str, stream=None):
        self.verb, self.stream = verb, stream or sys.stderr
        self.started = time.monotonic()
        self.shown = False
        self.last = (0, 0)

    def __call__(self, done: int, total: int) -> None:
        self.last = (done, total)
        elapsed = time.monotonic() - self.started
        if elapsed < SHOW_AFTER_S:
            return
        self.shown = True
        self.stream.write("\r" + self._text(done, total, elapsed))
        self.stream.flush()

    def _text(self, done: int, total: int, elapsed: float) -> str:
        rate = done / elapsed if elapsed > 0 else 0.0
        text = f"{self.verb} {_size(done)} of {_size(total)}"
        if total:
            text += f" ({100 * done / total:.0f} %)"
        if rate:
            text += f" · {_size(rate)}/s"
            left = (total - done) / rate
            if left >= 1:
                text += f" · {left:,.0f} s left"
        return text + "   "  # covers the end of a longer line drawn before

    def __enter__(self) -> "ProgressLine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """The last state on a line of its own (only when a line was drawn)."""
        if self.shown:
            done, total = self.last
            self.stream.write("\r" + self._text(done, total, time.monotonic() - self.started).rstrip() + "\n")
            self.stream.flush()


class _Silent:
    """No line at all (``show_progress=False``): a transfer told to nobody."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc) -> None:
        return None


def progress_line(verb: str, show: bool = True):
    """``with progress_line("Uploading") as line: transfer(progress=line)`` — closed (its last state on a line of
    its own) however the transfer ends; with ``show`` false, ``line`` is None."""
    return ProgressLine(verb) if show else _Silent()
