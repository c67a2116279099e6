"""Small HTML/text rendering helpers shared by the domain types' reprs.

HTML uses JupyterLab's CSS variables with fallbacks, so it follows the light and dark
themes and still reads in static viewers.
"""
from __future__ import annotations

import datetime as _dt
import html
import math
from typing import Any, Iterable, Sequence

STATUS_COLOURS = {
    "Completed": "#2e7d32",
    "Running": "#1565c0",
    "Starting": "#1565c0",
    "Finalizing": "#1565c0",
    "Queued": "#6d6d6d",
    "NotStarted": "#6d6d6d",
    "Failed": "#c62828",
    "Canceled": "#ef6c00",
    # services
    "Healthy": "#2e7d32",
    "Transitioning": "#1565c0",
    "Unhealthy": "#ef6c00",
}

TABLE_STYLE = (
    "border-collapse:collapse;font-size:var(--jp-ui-font-size1,13px);"
    "color:var(--jp-ui-font-color1,inherit)"
)
CELL_STYLE = "padding:2px 8px;text-align:left;border-bottom:1px solid var(--jp-border-color2,#ddd)"


def esc(value: Any) -> str:
    """Text from the workspace as HTML text: markup escaped, and bidirectional overrides and isolates shown as
    escapes (``\\u202e``) rather than acted on — a name with a right-to-left override reads backwards
    ("Trojan Source": ``report\\u202egpj.exe`` shown as report…exe.jpg) and reorders the text after it."""
    text = "" if value is None else str(value)
    if not text.isprintable():
        text = text.translate(_UNSHOWABLE)
    return html.escape(text)


_BIDI = {i: f"\\u{i:04x}" for i in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))}
# and lone surrogates: a file a run wrote whose name is not UTF-8 (b"bad\xff.txt") is listed as "bad\udcff.txt",
# which no page or output can encode (the static view raised UnicodeEncodeError)
_UNSHOWABLE = {**_BIDI, **{i: f"\\u{i:04x}" for i in range(0xD800, 0xE000)}}


def _visible_controls() -> dict[int, str]:
    named = {9: "\\t", 10: "\\n", 13: "\\r"}
    table = {i: named.get(i, f"\\x{i:02x}") for i in (*range(32), *range(127, 160))}
    # bidirectional overrides and isolates reorder what follows ("Trojan Source"); line and paragraph separators
    table.update({**_UNSHOWABLE, 0x2028: "\\u2028", 0x2029: "\\u2029"})
    return table


_VISIBLE = None


def plain(value: Any) -> str:
    """Text from the workspace (a run's name, a tag, a metric's name) as a text/plain output shows it: control
    characters — an escape that recolours, clears or retitles a terminal (Jupyter renders colours in text/plain
    too), a newline that fakes a table row — and bidirectional overrides shown as escapes, never acted on."""
    global _VISIBLE
    text = "" if value is None else str(value)
    if text.isprintable():  # the usual case, at C speed
        return text
    if _VISIBLE is None:
        _VISIBLE = _visible_controls()
    return text.translate(_VISIBLE)


def error_line(error: str, last: bool = False, limit: int = 300) -> str:
    """One line of an error the workspace recorded (its first, or its ``last``), as a text output shows it: a
    library's colour escapes taken out, any other control character shown, not acted on."""
    lines = terminal_text(error).strip().splitlines() or [""]
    return plain((lines[-1] if last else lines[0])[:limit])


# what a terminal acts on instead of printing: colours and cursor moves (CSI), titles (OSC), two-character escapes
_ESCAPES = None
_TERMINAL_LONG = 100_000  # past this, a line's backspaces are dropped rather than replayed character by character


def terminal_text(text: str) -> str:
    """A run's output as a terminal (and Jupyter's output area) shows it: a progress bar redrawn with ``\r`` (tqdm)
    or backspaces (Keras) is its last state, not every state on its own line; colour escapes are taken out."""
    global _ESCAPES
    if "\x1b" in text:
        if _ESCAPES is None:
            import re

            _ESCAPES = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])?")
        text = _ESCAPES.sub("", text)
    if "\r" not in text and "\b" not in text:
        return text
    return "\n".join(_redrawn(line) if ("\r" in line or "\b" in line) else line
                     for line in text.replace("\r\n", "\n").split("\n"))


def _redrawn(line: str) -> str:
    """One line after its carriage returns and backspaces: each redraw writes over the one before from the start."""
    shown = ""
    for part in reversed(line.split("\r")):  # the last redraw, then what longer earlier ones leave visible
        if "\b" in part:
            part = _backspaced(part)
        if len(part) > len(shown):
            shown += part[len(shown):]
    return shown


def _backspaced(part: str) -> str:
    if len(part) > _TERMINAL_LONG:
        return part.replace("\b", "")
    cells: list[str] = []
    at = 0
    for ch in part:
        if ch == "\b":
            at = max(0, at - 1)
        elif at < len(cells):
            cells[at] = ch
            at += 1
        else:
            cells.append(ch)
            at += 1
    return "".join(cells)


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``1 run``, ``2 runs``, ``1,000 runs``; ``plural`` where it is not the noun and an s (``mini-batches``)."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"


def badge(status: str) -> str:
    colour = STATUS_COLOURS.get(status, "#6d6d6d")
    return (
        f'<span style="background:{colour};color:#fff;border-radius:8px;padding:0 7px;'
        f'font-size:0.9em">{esc(status)}</span>'
    )


def fmt_time(ts: float | None) -> str:
    if not ts:
        return ""
    return _dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


SHOWN_TEXT = 300  # characters of a text value (a string metric, a tag) a view shows


def short(value: Any, limit: int = SHOWN_TEXT) -> str:
    """A text value as a view shows it: whole up to ``limit`` characters, else its start and its length — a 50 MB
    string metric made a run's repr a 50 MB cell output, saved in the notebook."""
    text = "" if value is None else str(value)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text):,} characters)"


def pairs_text(values: dict) -> str:
    """Tags or params as ``k=v, …`` for a view (each value ``short``)."""
    return ", ".join(f"{k}={short(v)}" for k, v in values.items())


def fmt_value(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        inner = ", ".join(fmt_value(v) for v in value[:5])
        return f"[{inner}{', …' if len(value) > 5 else ''}] ({len(value)})"
    if isinstance(value, dict):
        return "{" + ", ".join(plain(k) for k in list(value)[:5]) + (", …}" if len(value) > 5 else "}")
    return plain(short(value))  # a string metric is workspace text: its escapes shown, not acted on (a run's repr
    # recoloured the output and broke its line with "val\x1b[31mue\nnext")


def html_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, raw_columns: Iterable[int] = ()) -> str:
    """An HTML table; cells are escaped except in ``raw_columns`` (already HTML)."""
    raw = set(raw_columns)
    head = "".join(f'<th style="{CELL_STYLE}">{esc(h)}</th>' for h in headers)
    body = []
    for row in rows:
        cells = "".join(
            f'<td style="{CELL_STYLE}">{cell if i in raw else esc(cell)}</td>' for i, cell in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    return f'<table style="{TABLE_STYLE}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def text_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], max_width: int = 40) -> str:
    """A plain-text table with aligned columns (for terminals, nbval and static viewers)."""
    cells = [[str(h) for h in headers]] + [
        [(s if len(s) <= max_width else s[: max_width - 1] + "…") for s in map(plain, r)]
        for r in rows
    ]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
