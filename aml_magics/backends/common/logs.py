"""Reading a log incrementally — all of it, or (a view that shows the end) only its last bytes."""
from __future__ import annotations


def tail_start(size: int, offset: int, tail: int | None) -> int:
    """Where to read from: ``offset``, or — when more than ``tail`` bytes wait — the last ``tail`` bytes' start (a
    dashboard opened on a run that printed a gigabyte reads a few hundred kilobytes, not the gigabyte)."""
    if tail is None or size - offset <= tail:
        return offset
    return max(offset, size - tail)


def decode_log_tail(data: bytes, start: int, offset: int) -> tuple[str, int]:
    """``decode_log_chunk`` of bytes read from ``start``; when that is past ``offset``, the text begins at the next
    whole line, after a line saying how much was left out and where the whole log is."""
    if start <= offset:
        return decode_log_chunk(data, offset)
    newline = data.find(b"\n", 0, 64 * 1024)
    cut = newline + 1 if newline >= 0 else 0
    while cut < len(data) and (data[cut] & 0xC0) == 0x80:  # never start inside a character
        cut += 1
    text, end = decode_log_chunk(data[cut:], start + cut)
    skipped = start + cut - offset
    size = f"{skipped / 1e6:,.1f} MB" if skipped >= 100_000 else f"{skipped:,} bytes"
    return (f"[aml-magics] {size} of earlier output not shown here; the whole log: %aml logs RUN, or the run's "
            f"file logs/std_log.txt\n" + text), end


def decode_log_chunk(data: bytes, offset: int) -> tuple[str, int]:
    """A log read from ``offset``: its text and the next offset, never splitting a UTF-8 character (an
    incomplete tail is left for the next read)."""
    cut = len(data)
    i = cut - 1
    while i >= 0 and cut - i < 4 and (data[i] & 0xC0) == 0x80:
        i -= 1
    if i >= 0 and data[i] >= 0xC0:
        need = 2 if data[i] < 0xE0 else 3 if data[i] < 0xF0 else 4
        if cut - i < need:
            cut = i
    return data[:cut].decode("utf-8", errors="replace"), offset + cut
