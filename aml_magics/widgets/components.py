"""The two front-end widgets the dashboards compose (anywidget, small ES modules, no build step):

``MetricChart`` — small multiples of line charts fed incrementally (or parallel coordinates);
``DataTable``   — a sortable, filterable, selectable, paged table.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterable

import anywidget
import traitlets as t

from ..core.series import DownsampledSeries

STATIC = Path(__file__).resolve().parent / "static"
POINTS_PER_TRACE = 2000
FIRST_READ = 20_000  # points of a series' first read: all of a shorter series, min/max buckets of a longer one


class MetricChart(anywidget.AnyWidget):
    _esm = STATIC / "chart.js"
    _css = STATIC / "style.css"

    kind = t.Unicode("lines").tag(sync=True)  # "lines" or "parcoords"
    panels = t.List(t.Dict()).tag(sync=True)  # [{"id": ..., "title": ...}]
    x_mode = t.Unicode("step").tag(sync=True)  # "step" or "time"
    height = t.Int(180).tag(sync=True)
    parcoords = t.Dict().tag(sync=True)  # {"dims": [{"name", "values"}], "color": [...]}

    def __init__(self, points_per_trace: int = POINTS_PER_TRACE, **kwargs: Any):
        super().__init__(**kwargs)
        self._series: dict[tuple[str, str], DownsampledSeries] = {}
        self._limit = points_per_trace
        self.bytes_sent = 0  # what went to the browser as series messages (benchmarks read it)
        self.on_msg(self._on_msg)

    def series(self, panel: str, trace: str) -> DownsampledSeries:
        key = (panel, trace)
        s = self._series.get(key)
        if s is None:
            s = self._series[key] = DownsampledSeries(limit=self._limit)
        return s

    def feed(self, panel: str, trace: str, points: Iterable[tuple[int, float, float]]) -> None:
        points = list(points)
        if points:
            steps, stamps, values = zip(*points)
            self.series(panel, trace).extend(steps, stamps, values)

    def read(self, client, run_id: str, name: str, trace: str, cursor: int | None) -> int:
        """Feed a run's series from ``cursor`` on; returns the next cursor. The first read of a long series takes it
        summarized where it is stored (``display_series``: FIRST_READ points, the extremes kept), so a dashboard of
        a 10,000,000-point series paints as fast as one of 10,000; later reads take only the new points."""
        if cursor is None:
            steps, stamps, values, _, cursor = client.runs.display_series(run_id, name, FIRST_READ)
            if steps:
                self.series(name, trace).extend(steps, stamps, values)
            return cursor
        points, cursor = client.runs.metric_series(run_id, name, cursor)
        self.feed(name, trace, points)
        return cursor

    def push(self) -> int:
        """Send what changed since the last push (new buckets and tails only); returns bytes sent."""
        shown = {p["id"] for p in self.panels}
        updates = []
        for (panel, trace), s in self._series.items():
            if panel not in shown:
                continue
            u = s.update()
            if not u.is_empty():
                updates.append({"panel": panel, "trace": trace, **u.to_message()})
        return self._send_updates(updates)

    def _send_updates(self, updates: list[dict]) -> int:
        if not updates:
            return 0
        msg = {"type": "series", "updates": updates}
        size = len(json.dumps(msg, separators=(",", ":")))
        self.bytes_sent += size
        self.send(msg)
        return size

    def _on_msg(self, _widget, content: dict, buffers) -> None:
        if content.get("type") == "hello":  # a new view: give it everything sent so far
            shown = {p["id"] for p in self.panels}
            self._send_updates([
                {"panel": p, "trace": tr, **s.full().to_message()}
                for (p, tr), s in self._series.items() if p in shown and s.bucket
            ])

    def set_panels(self, panels: list[tuple[str, str]]) -> None:
        new = [{"id": pid, "title": title} for pid, title in panels]
        if new != self.panels:
            added = {p["id"] for p in new} - {p["id"] for p in self.panels}
            self.panels = new
            # newly shown panels get their data in full
            self._send_updates([
                {"panel": p, "trace": tr, **(s.full() if s.bucket else s.update()).to_message()}
                for (p, tr), s in self._series.items() if p in added
            ])


class DataTable(anywidget.AnyWidget):
    _esm = STATIC / "table.js"
    _css = STATIC / "style.css"

    columns = t.List(t.Dict()).tag(sync=True)  # [{"key", "label", "numeric"}]
    rows = t.List(t.Dict()).tag(sync=True)  # each with "_id"
    sort = t.Dict().tag(sync=True)
    selected = t.List(t.Unicode()).tag(sync=True)
    selectable = t.Bool(False).tag(sync=True)
    highlight = t.Unicode("").tag(sync=True)
    pinned = t.Int(0).tag(sync=True)  # the first columns stay in view while the rest scroll sideways
    empty = t.Unicode("").tag(sync=True)  # said instead of an empty table (e.g. "No active runs.")
    offset = t.Int(0).tag(sync=True)
    limit = t.Int(50).tag(sync=True)
    total = t.Int(0).tag(sync=True)

    def __init__(self, on_open: Callable[[str], Any] | None = None, on_page: Callable[[int], Any] | None = None,
                 **kwargs: Any):
        super().__init__(**kwargs)
        self._on_open = on_open
        self._on_page = on_page
        self.on_msg(self._msg)

    def _msg(self, _widget, content: dict, buffers) -> None:
        if content.get("type") == "open" and self._on_open:
            self._on_open(content.get("id"))
        elif content.get("type") == "page" and self._on_page:
            self._on_page(max(0, int(content.get("offset", 0))))


class CopySecret(anywidget.AnyWidget):
    """A button that copies a secret to the clipboard without ever holding it as widget state."""

    _esm = STATIC / "copy.js"
    label = t.Unicode("copy").tag(sync=True)

    def __init__(self, get_secret: Callable[[], str], **kwargs: Any):
        super().__init__(**kwargs)
        self._get_secret = get_secret
        self.on_msg(lambda _w, content, _b: content.get("type") == "copy" and
                    self.send({"type": "secret", "value": self._get_secret()}))
