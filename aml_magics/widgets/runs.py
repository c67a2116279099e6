"""Run history, run comparison and the workspace overview."""
from __future__ import annotations

import time
from typing import Any, Sequence

import ipywidgets as w

from ..core import render as r
from ..core.client import Client
from ..core.errors import NotFound
from ..core.leaderboard import INTERNAL_METRICS
from ..core.types import ACTIVE_STATES, RUN_STATES, RunInfo
from . import theme
from .components import DataTable, MetricChart
from .run_details import Dashboard, RunDetails
from .static import sparkline_svg

PAGE = 50
METRIC_COLUMNS = 4
DIFF_ROWS = 200  # rows of the compare table shown (runs of thousands of per-class metrics): the differing ones first


def _run_row(info: RunInfo, metric_columns: Sequence[str]) -> dict[str, Any]:
    row = {
        "_id": info.run_id, "name": info.display_name or info.run_id, "experiment": info.experiment,
        "status": info.status, "created": r.fmt_time(info.created),
        "duration": round(info.duration, 1) if info.duration is not None else None,
        "tags": r.pairs_text(info.tags),
    }
    for m in metric_columns:
        v = info.latest_metrics.get(m)
        row[f"m.{m}"] = v if isinstance(v, (int, float)) else None
    return row


class RunHistory(Dashboard):
    """``%aml runs``: a sortable, filterable, paged table; click a run for its dashboard, tick several to compare."""

    def __init__(self, client: Client | None = None, experiment: str | None = None, status: list[str] | None = None,
                 limit: int = PAGE, metric_columns: Sequence[str] | None = None, live: bool = True):
        super().__init__()
        self.client = client or Client.shared()
        self.experiment, self.status, self.limit = experiment, status, limit
        self.fixed_metrics = list(metric_columns) if metric_columns else None
        self.offset = 0
        self._last: Any = None
        experiments = ["(all)"] + [e.name for e in self.client.experiments.list()]
        self.exp_picker = w.Dropdown(options=experiments, value=experiment if experiment in experiments else "(all)",
                                     description="experiment", layout=w.Layout(width="280px"))
        self.status_picker = w.Dropdown(options=["(all)", *RUN_STATES], description="status",
                                        value=status[0] if status and len(status) == 1 else "(all)",
                                        layout=w.Layout(width="220px"))
        self.compare_button = w.Button(description="Compare selected", icon="line-chart", disabled=True,
                                       layout=w.Layout(width="auto"))
        self.table = DataTable(on_open=self.open_run, on_page=self.goto, selectable=True, limit=limit)
        self.detail = w.Output()
        self.exp_picker.observe(lambda _: self._filter(), names="value")
        self.status_picker.observe(lambda _: self._filter(), names="value")
        self.table.observe(lambda _: setattr(self.compare_button, "disabled", len(self.table.selected) < 2),
                           names="selected")
        self.compare_button.on_click(lambda _: self.compare(self.table.selected))
        self.widget = w.VBox([w.HBox([self.exp_picker, self.status_picker, self.compare_button]), self.table,
                              self.detail])
        self.refresh()
        if live:
            self.start()

    def _filter(self) -> None:
        self.experiment = None if self.exp_picker.value == "(all)" else self.exp_picker.value
        self.status = None if self.status_picker.value == "(all)" else [self.status_picker.value]
        self.offset = 0
        self.refresh()

    def goto(self, offset: int) -> None:
        self.offset = offset
        self.refresh()

    def refresh(self) -> bool:
        runs = self.client.runs.list(experiment=self.experiment, status=self.status, limit=self.limit,
                                     offset=self.offset)
        self.runs = runs
        metrics = self.fixed_metrics
        if metrics is None:
            seen: dict[str, None] = {}
            for info in runs.infos:
                for k, v in info.latest_metrics.items():
                    if isinstance(v, (int, float)):
                        seen.setdefault(k)
            metrics = list(seen)[:METRIC_COLUMNS]
        rows = [_run_row(i, metrics) for i in runs.infos]
        stamp = (runs.total, tuple((i.run_id, i.status, tuple(i.latest_metrics.items())) for i in runs.infos))
        if stamp == self._last:
            return False
        self._last = stamp
        cols = [{"key": "name", "label": "run"}, {"key": "experiment", "label": "experiment"},
                {"key": "status", "label": "status"}, {"key": "created", "label": "created"},
                {"key": "duration", "label": "duration s", "numeric": True}, {"key": "tags", "label": "tags"}]
        cols += [{"key": f"m.{m}", "label": m, "numeric": True} for m in metrics]
        with self.table.hold_sync():
            self.table.columns = cols
            self.table.rows = rows
            self.table.total = runs.total
            self.table.offset = self.offset
        return True

    def poll(self) -> str:
        if self._closed:
            return "done"
        changed = self.refresh()
        active = any(i.status in ACTIVE_STATES for i in self.runs.infos)
        return "changed" if changed else ("idle" if active else "waiting")

    def open_run(self, run_id: str) -> Dashboard:
        return self.open_below(self.detail, RunDetails(run_id, self.client))

    def compare(self, run_ids: Sequence[str]) -> Dashboard:
        return self.open_below(self.detail, RunComparison(list(run_ids), self.client))

    def static_html(self) -> str:
        return self.runs._repr_html_()

    def __repr__(self) -> str:
        return repr(self.runs)


class RunComparison(Dashboard):
    """``%aml compare RUN1 RUN2 …``: one metric overlaid across runs, and a params/metrics diff table."""

    def __init__(self, run_ids: Sequence[str], client: Client | None = None, metric: str | None = None,
                 live: bool = True):
        super().__init__()
        self.client = client or Client.shared()
        self.run_ids = list(dict.fromkeys(self.client.runs.resolve_id(i) for i in run_ids))  # a run named twice: once
        self._cursors: dict[tuple[str, str], int] = {}
        self._version: tuple | None = None
        self.infos = [self.client.runs.get(i) for i in self.run_ids]
        names: dict[str, None] = {}
        for i in self.run_ids:
            for n in self.client.runs.metric_names(i):
                names.setdefault(n)
        self.metric_names = list(names)
        if metric is not None and metric not in names:  # a typo drew the first metric without a word
            raise NotFound.with_suggestions("metric", metric, self.metric_names,
                                            hint=f"these runs logged {', '.join(self.metric_names[:10]) or 'none'}")
        visible = [n for n in self.metric_names if n not in INTERNAL_METRICS] or self.metric_names
        chosen = metric if metric in names else (visible[0] if visible else None)
        self.picker = w.Dropdown(options=self.metric_names, value=chosen, description="metric")
        self.x_toggle = w.ToggleButtons(options=["step", "time"], value="step", style={"button_width": "56px"})
        self.chart = MetricChart()
        w.link((self.x_toggle, "value"), (self.chart, "x_mode"))
        self.diff = w.HTML()
        self.picker.observe(lambda _: self._show_metric(), names="value")
        self.widget = w.VBox([w.HBox([self.picker, self.x_toggle]), self.chart, self.diff])
        self.update()
        self._show_metric()
        if live and any(not i.is_terminal for i in self.infos):
            self.start()

    def _label(self, info: RunInfo) -> str:
        # the chart's legend and tooltip: equal display names are told apart by the end of the run id
        name = info.display_name or info.run_id
        if sum((i.display_name or i.run_id) == name for i in self.infos) > 1:
            return f"{name} ({info.run_id[-6:]})"
        return name

    def _show_metric(self) -> None:
        if self.picker.value:
            self.chart.set_panels([(self.picker.value, self.picker.value)])
            self.chart.push()

    def update(self) -> None:
        self.infos = [self.client.runs.get(i) for i in self.run_ids]
        for info in self.infos:
            for name in self.metric_names:
                key = (info.run_id, name)
                self._cursors[key] = self.chart.read(self.client, info.run_id, name, self._label(info),
                                                     self._cursors.get(key))
        self.chart.push()
        self.diff.value = self.diff_table()

    def diff_rows(self) -> list[tuple[str, str, list[str], bool]]:
        """(kind, name, value per run, differs) for every param and metric of the compared runs."""
        rows = []
        params = sorted({k for i in self.infos for k in i.params})
        for k in params:
            vals = [str(i.params.get(k, "")) for i in self.infos]
            rows.append(("param", k, vals, len(set(vals)) > 1))
        args = [" ".join(map(str, i.spec.get("args") or [])) for i in self.infos]
        if any(args):
            rows.append(("arguments", "", args, len(set(args)) > 1))
        metrics = [k for k in self.metric_names] + sorted(
            {k for i in self.infos for k in i.latest_metrics if k not in self.metric_names})
        for k in metrics:
            vals = [r.fmt_value(i.latest_metrics.get(k, "")) for i in self.infos]
            rows.append(("metric", k, vals, len(set(vals)) > 1))
        return rows

    def shown_diff_rows(self) -> tuple[list[tuple[str, str, list[str], bool]], str]:
        """At most ``DIFF_ROWS`` of ``diff_rows()`` in their order — the differing ones kept first — and a line
        saying what was left out ("" when nothing was)."""
        rows = self.diff_rows()
        if not rows:  # (an empty table, headers only)
            ended = all(i.is_terminal for i in self.infos)
            return [], ("none of these runs logged a metric or parameter" if ended else
                        "none of these runs has logged a metric or parameter yet")
        if len(rows) <= DIFF_ROWS:
            return rows, ""
        keep = set(sorted(range(len(rows)), key=lambda i: not rows[i][3])[:DIFF_ROWS])  # stable: differing first
        left = [row for i, row in enumerate(rows) if i not in keep]
        differ = sum(1 for row in left if row[3])
        note = (f"… and {len(left):,} more rows, {differ:,} of them different (%aml metrics RUN lists all of a "
                "run's metrics)" if differ else f"… and {len(left):,} more rows, the same in every run")
        return [row for i, row in enumerate(rows) if i in keep], note

    def diff_table(self) -> str:
        headers = ["", "name", *[self._label(i) for i in self.infos]]
        body = []
        rows, note = self.shown_diff_rows()
        for kind, name, vals, differs in rows:
            style = f" class='aml-diff' style='{theme.DIFF_ROW}'" if differs else ""
            cells = "".join(f"<td style='{r.CELL_STYLE}'>{r.esc(v)}</td>" for v in vals)
            body.append(f"<tr{style}><td style='{r.CELL_STYLE}'>{kind}</td><td style='{r.CELL_STYLE}'>{r.esc(name)}</td>{cells}</tr>")
        if note:
            body.append(f"<tr><td style='{r.CELL_STYLE}' colspan='{len(headers)}'><i>{r.esc(note)}</i></td></tr>")
        head = "".join(f"<th style='{r.CELL_STYLE}'>{r.esc(h)}</th>" for h in headers)
        return f"<table style='{r.TABLE_STYLE}'><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"

    def poll(self) -> str:
        if self._closed:
            return "done"
        version = tuple(self.client.runs.version(i) for i in self.run_ids)
        if version == self._version:
            if all(i.is_terminal for i in self.infos):
                self.refresh_static()
                return "done"
            return "idle"
        self._version = version
        self.update()
        return "changed"

    def static_html(self) -> str:
        charts = ""
        metric = self.picker.value
        if metric:
            cells = []
            for (panel, trace), s in self.chart._series.items():
                if panel == metric and len(s) > 1:
                    cells.append(f"<div style='display:inline-block;margin-right:12px'><div>{r.esc(trace)}</div>"
                                 f"{sparkline_svg(s.values)}</div>")
            charts = f"<h4 style='margin:6px 0'>{r.esc(metric)}</h4>" + "".join(cells)
        return charts + self.diff_table()

    def __repr__(self) -> str:
        shown, note = self.shown_diff_rows()
        rows = [(kind, name, *vals) for kind, name, vals, _ in shown]
        text = r.text_table(["", "name", *[self._label(i) for i in self.infos]], rows)
        return f"{text}\n{note}" if note else text


class WorkspaceOverview(Dashboard):
    """``%aml``: the workspace, its experiments with run counts, and the runs active now (live)."""

    def __init__(self, client: Client | None = None, live: bool = True):
        super().__init__()
        self.client = client or Client.shared()
        self.header = w.HTML()
        self.experiments = DataTable(on_open=self._open_experiment,
                                     empty="No experiments yet: %%aml run a cell to start the first one.")
        self.active = DataTable(on_open=self._open_run, empty="No active runs.")
        self.detail = w.Output()
        self._last: Any = None
        self.registry = w.HTML()
        self.widget = w.VBox([self.header, w.HTML("<b>Experiments</b>"), self.experiments,
                              w.HTML("<b>Active runs</b>"), self.active, self.registry, self.detail])
        self.refresh()
        if live:
            self.start()

    def refresh(self) -> bool:
        self.info = self.client.workspace
        exps = self.client.experiments.list()
        active = self.client.runs.list(status=list(ACTIVE_STATES), limit=100)
        self.models = list(self.client.models.list())[:5]
        self.services = list(self.client.deployments.list())
        stamp = (repr(self.info), [(e.name, e.run_count) for e in exps],
                 [(i.run_id, i.status, tuple(i.latest_metrics.items())) for i in active.infos],
                 [m.id for m in self.models], [(d.name, d.state) for d in self.services])
        if stamp == self._last:
            return False
        self._last = stamp
        self.exps, self.active_runs = exps, active
        computes = ", ".join(f"{r.esc(c.name)} {c.running}/{c.max_concurrent}" for c in self.info.computes)
        self.header.value = (
            f"<b>{r.esc(self.info.name)}</b> ({r.esc(self.info.backend)}) · {r.esc(self.info.location)} · "
            f"{r.counted(self.info.runs, 'run')} · {self.info.active_runs:,} active · compute: {computes} "
            f"<small style='color:var(--jp-ui-font-color2,#666)'>· updated {time.strftime('%H:%M:%S')}</small>")
        self.experiments.columns = [{"key": "name", "label": "experiment"},
                                    {"key": "runs", "label": "runs", "numeric": True},
                                    {"key": "last", "label": "last run"}]
        self.experiments.rows = [{"_id": e.name, "name": e.name, "runs": e.run_count, "last": r.fmt_time(e.last_run)}
                                 for e in exps]
        self.experiments.total = len(exps)
        self.active.columns = [{"key": "name", "label": "run"}, {"key": "experiment", "label": "experiment"},
                               {"key": "status", "label": "status"}, {"key": "duration", "label": "duration s", "numeric": True}]
        self.active.rows = [_run_row(i, []) for i in active.infos]
        self.active.total = len(active.infos)
        self.registry.value = self._registry_html()
        return True

    def _registry_html(self) -> str:
        html = ""
        if self.models:
            html += "<b>Latest models</b>" + r.html_table(
                ("model", "framework", "from run"), [(m.id, m.framework or "", m.run_id or "") for m in self.models])
        if self.services:
            html += "<b>Services</b>" + r.html_table(
                ("service", "state", "scoring URI", "models"),
                [(d.name, d.state, d.scoring_uri, ", ".join(d.models)) for d in self.services])
        return html

    def poll(self) -> str:
        if self._closed:
            return "done"
        changed = self.refresh()
        return "changed" if changed else ("idle" if self.active_runs.infos else "waiting")

    def _open_experiment(self, name: str) -> None:
        self.open_below(self.detail, RunHistory(self.client, experiment=name))

    def _open_run(self, run_id: str) -> None:
        self.open_below(self.detail, RunDetails(run_id, self.client))

    def static_html(self) -> str:
        exps = r.html_table(("experiment", "runs", "last run"),
                            [(e.name, e.run_count, r.fmt_time(e.last_run)) for e in self.exps])
        return f"<p>{r.esc(repr(self.info))}</p>{exps}" + (
            "<p><b>Active runs</b></p>" + self.active_runs._repr_html_() if self.active_runs.infos else ""
        ) + self._registry_html()

    def __repr__(self) -> str:
        return repr(self.info)
