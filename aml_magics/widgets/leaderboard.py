"""The trials' leaderboard in the notebook: the rule is ``core.leaderboard`` (shared with the JupyterLab run view);
here its static HTML, for nbconvert and saved notebooks."""
from __future__ import annotations

from typing import Any

from ..core import render as r
from ..core.leaderboard import INTERNAL_METRICS, PINNED, Leaderboard, as_number, build  # noqa: F401 - re-exported
from . import theme


def static_html(board: Leaderboard, limit: int = 10, title: str = "Trials") -> str:
    """The top ``limit`` rows as an HTML table that scrolls sideways when wide (for nbconvert and saved notebooks)."""
    if not board.rows:
        return ""
    rows = list(board.rows)
    key = board.sort.get("key")
    if key:
        present = [x for x in rows if as_number(x.get(key)) is not None]
        missing = [x for x in rows if as_number(x.get(key)) is None]
        present.sort(key=lambda x: as_number(x.get(key)), reverse=bool(board.sort.get("desc")))
        rows = present + missing
    shown = rows[:limit]
    head = "".join(f"<th style='{r.CELL_STYLE}'>{r.esc(c['label'])}</th>" for c in board.columns)
    body = []
    for x in shown:
        style = f" style='{theme.BEST_ROW}'" if x["_id"] == board.best else ""
        cells = "".join(f"<td style='{r.CELL_STYLE}'>{r.esc(_cell(x.get(c['key'])))}</td>" for c in board.columns)
        body.append(f"<tr{style}>{cells}</tr>")
    more = f"<small>top {limit} of {len(rows)}</small>" if len(rows) > limit else ""
    return (f"<div class='aml-static-leaderboard'><b>{r.esc(title)}</b> {more}"
            f"<div style='overflow-x:auto;max-width:100%'><table style='{r.TABLE_STYLE}'><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table></div></div>")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return r.fmt_value(value)
    return str(value)
