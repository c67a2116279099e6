"""Reading a log incrementally."""
from __future__ import annotations


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
