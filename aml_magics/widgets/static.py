"""Static views: what a saved notebook shows without a kernel (GitHub, nbviewer, nbconvert).

Plain HTML with inline SVG charts, no scripts and no widget imports, so it renders anywhere
and can be written into the notebook as the fallback of every dashboard.
"""
from __future__ import annotations

import html
import math
from typing import Any, Sequence

from ..core import render as r
from ..core.leaderboard import INTERNAL_METRICS
from ..core.series import downsample
from ..core.types import RunInfo

SVG_POINTS = 300


def sparkline_svg(values: Sequence[float], width: int = 300, height: int = 70, colour: str = "#1f77b4") -> str:
    finite = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    if not finite:
        return ""
    idx, vals = downsample(list(values), SVG_POINTS)
    lo, hi = min(finite), max(finite)
    span = (hi - lo) or 1.0
    n = max(1, len(values) - 1)
    pts = " ".join(
        f"{2 + (i / n) * (width - 4):.1f},{2 + (1 - (v - lo) / span) * (height - 16):.1f}"
        for i, v in zip(idx, vals) if isinstance(v, (int, float)) and math.isfinite(v)
    )
    label = f"min {r.fmt_value(lo)} · max {r.fmt_value(hi)} · {len(values)} pts"
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}">'
        f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{pts}"/>'
        f'<text x="2" y="{height - 2}" font-size="10" fill="#777">{html.escape(label)}</text></svg>'
    )


def metrics_rows(metrics: dict[str, Any]) -> list[tuple[str, str, str, str, int]]:
    rows = []
    for name, value in metrics.items():
        if isinstance(value, list) and value and all(isinstance(v, (int, float)) for v in value):
            finite = [v for v in value if math.isfinite(v)] or [float("nan")]
            rows.append((name, r.fmt_value(value[-1]), r.fmt_value(min(finite)), r.fmt_value(max(finite)), len(value)))
        else:
            rows.append((name, r.fmt_value(value), "", "", 1))
    return rows


MAX_METRIC_ROWS = 100  # a saved notebook keeps every output: a run of 3,000 per-class metrics made 1.6 MB of it


def capped_rows(rows: list, run_id: str, limit: int = MAX_METRIC_ROWS) -> tuple[list, str]:
    """The first ``limit`` rows of a metrics table, and a line saying how many more there are and where ("" when
    none are left out)."""
    if len(rows) <= limit:
        return rows, ""
    return rows[:limit], f"… and {len(rows) - limit:,} more: %aml metrics {run_id}"


def run_summary_html(info: RunInfo, metrics: dict[str, Any], log_tail: str = "", files: Sequence[str] = (),
                     max_charts: int = 8, trials_html: str = "") -> str:
    """Status, final metrics table and static charts of a run (and ``trials_html``: a sweep's or AutoML run's
    leaderboard)."""
    head = info._repr_html_()
    parts = [f'<div class="aml-static-run">{head}']
    rows, more = capped_rows(metrics_rows(metrics), info.run_id)
    if rows:
        parts.append("<h4 style='margin:8px 0 4px'>Metrics</h4>")
        # a wide table scrolls inside the cell (nbconvert, GitHub) instead of widening the page
        parts.append("<div style='overflow-x:auto;max-width:100%'>"
                     + r.html_table(("metric", "last", "min", "max", "points"), rows) + "</div>")
        if more:
            parts.append(f"<div style='margin:2px 0'><i>{r.esc(more)}</i></div>")
    charts = [(k, v) for k, v in metrics.items() if isinstance(v, list) and len(v) > 1 and k not in INTERNAL_METRICS
              and all(isinstance(x, (int, float)) for x in v)][:max_charts]
    if charts:
        cells = "".join(
            f"<div style='display:inline-block;margin:4px 12px 4px 0'><div style='font-weight:600'>{r.esc(k)}</div>"
            f"{sparkline_svg(v)}</div>" for k, v in charts
        )
        parts.append(f"<div>{cells}</div>")
    if trials_html:
        parts.append(trials_html)
    if files:
        items = "".join(f"<li><code>{r.esc(f)}</code></li>" for f in files[:50])
        parts.append(f"<details><summary>Files ({len(files)})</summary><ul>{items}</ul></details>")
    if log_tail:
        parts.append(f"<details><summary>Log (last lines)</summary><pre style='max-height:20em;overflow:auto'>"
                     f"{r.esc(log_tail)}</pre></details>")
    parts.append("</div>")
    return "".join(parts)


class StaticRunView:
    """``%aml show RUN --static``: the static summary only (no widget, no kernel needed)."""

    def __init__(self, info: RunInfo, metrics: dict[str, Any], log_tail: str, files: Sequence[str]):
        self.info, self.metrics, self.log_tail, self.files = info, metrics, log_tail, list(files)

    def _repr_html_(self) -> str:
        return run_summary_html(self.info, self.metrics, self.log_tail, self.files)

    def __repr__(self) -> str:
        text = repr(self.info)
        rows, more = capped_rows(metrics_rows(self.metrics), self.info.run_id)
        if rows:
            text += "\n" + r.text_table(("metric", "last", "min", "max", "points"), rows)
            text += f"\n{more}" if more else ""
        return text
