"""How the dashboards show a run's output: as a terminal would (the labextension's ``terminalText`` has the same
cases in labextension/test/logic.test.ts)."""
from __future__ import annotations

import time

from aml_magics.core.render import terminal_text


def test_a_progress_bar_redrawn_with_carriage_returns_is_its_last_state():
    tqdm = "start\n  0%|   | 0/3\r 33%|#  | 1/3\r100%|###| 3/3\ndone\n"
    assert terminal_text(tqdm) == "start\n100%|###| 3/3\ndone\n"


def test_a_shorter_redraw_writes_over_the_start_of_the_line():
    assert terminal_text("abcdef\rxy") == "xycdef"
    assert terminal_text("line1\r\nline2\r\n") == "line1\nline2\n"


def test_backspaces_are_replayed_and_escapes_taken_out():
    assert terminal_text("1/3 [==>...]" + "\b" * 12 + "2/3 [=====>]") == "2/3 [=====>]"
    assert terminal_text("\x1b[32mgreen\x1b[0m and \x1b]0;title\x07x") == "green and x"
    assert terminal_text("a\nb <b>c</b>\n") == "a\nb <b>c</b>\n"


def test_a_line_of_a_hundred_thousand_redraws_is_read_in_linear_time():
    line = "".join(f"\r{i:>6}/100000 [{'#' * (i // 5000):<20}]" for i in range(100_000))
    started = time.perf_counter()
    assert terminal_text(line) == " 99999/100000 [" + "#" * 19 + " ]"  # the last redraw
    assert time.perf_counter() - started < 1.0
