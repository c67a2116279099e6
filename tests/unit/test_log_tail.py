"""A view of a log's end reads only its last bytes, from a whole line and a whole character."""
from __future__ import annotations

from aml_magics.backends.common.logs import decode_log_tail, tail_start


def test_a_short_log_is_read_whole_and_a_long_one_from_its_last_bytes():
    assert tail_start(1000, 0, None) == 0
    assert tail_start(1000, 0, 2000) == 0
    assert tail_start(1000, 0, 100) == 900
    assert tail_start(1000, 950, 100) == 950  # what is new since the last read is smaller than the tail


def test_the_tail_starts_at_a_whole_line_after_a_note_of_what_was_left_out():
    log = "".join(f"line {i} ✓\n" for i in range(1000)).encode()
    start = tail_start(len(log), 0, 100)
    text, end = decode_log_tail(log[start:], start, 0)
    note, *lines = text.split("\n")
    assert note.startswith("[aml-magics] ") and "of earlier output not shown here" in note
    assert lines[0].startswith("line ") and lines[-2] == "line 999 ✓" and lines[-1] == ""
    assert end == len(log)
    shown = text[len(note) + 1:].encode()
    assert f"{len(log) - len(shown):,} bytes" in note  # the count is exactly what was left out


def test_a_tail_without_newlines_never_starts_inside_a_character():
    log = "✓" * 1000  # three bytes each
    data = log.encode()
    start = tail_start(len(data), 0, 100)  # 100 is not a multiple of 3: the cut falls inside a character
    text, end = decode_log_tail(data[start:], start, 0)
    assert text.split("\n", 1)[1] == "✓" * 33 and end == len(data) and "\ufffd" not in text
