"""``RunDetails``: the live dashboard of one run (Azure ML's widget name, made live and portable)."""
from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

import ipywidgets as w

from ..core import ranking
from ..core import render as r
from ..core.client import Client
from ..core.leaderboard import INTERNAL_METRICS
from ..core.errors import AmlError, InvalidInput
from ..core.states import SLOT_STATES
from ..core.types import RunInfo
from . import theme
from . import leaderboard
from .components import DataTable, MetricChart
from .poller import shared_poller
from .static import capped_rows, metrics_rows, run_summary_html

if TYPE_CHECKING:  # pragma: no cover
    from ..core.run import Run

LOG_LINES = 200
LOG_TAIL_BYTES = 256 * 1024  # read at most this much of the log at once: a run that printed gigabytes opens at once
MAX_PANELS = 6


class Dashboard:
    """Shared plumbing: display with a display id, a static fallback, the shared poller."""

    widget: w.Widget

    def __init__(self) -> None:
        self.display_id = f"aml-{uuid.uuid4().hex[:12]}"
        self._displayed = False
        self._closed = False
        self.opened: Dashboard | None = None  # a dashboard this one opened below itself

    @property
    def remote_pace(self) -> tuple[float, float] | None:
        """How often a remote workspace may be asked (its backend's ``capabilities.pace``); the poller reads this."""
        client = getattr(self, "client", None)
        return client.capabilities.pace if client is not None else None

    def open_below(self, output: w.Output, dashboard: "Dashboard") -> "Dashboard":
        """Show ``dashboard`` in ``output``, replacing (and stopping) the one opened there before."""
        if self.opened is not None:
            self.opened.close()
        self.opened = dashboard
        output.clear_output()
        with output:
            dashboard.show()
        return dashboard

    def static_html(self) -> str:  # pragma: no cover - overridden
        return ""

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        bundle = dict(self.widget._repr_mimebundle_(include=include, exclude=exclude) or {})
        bundle["text/html"] = self.static_html()
        bundle["text/plain"] = repr(self)
        return bundle

    def _ipython_display_(self) -> None:
        self.show()

    def show(self) -> None:
        """Display the dashboard (once). Returns None, so ``RunDetails(run).show()`` as a cell's last line is not
        displayed a second time as the cell's value — the Azure ML idiom."""
        from IPython.display import display

        display(self._repr_mimebundle_(), raw=True, display_id=self.display_id)
        self._displayed = True

    def refresh_static(self) -> None:
        """Rewrite the displayed output so that a saved notebook keeps the final state."""
        if self._displayed:
            from IPython.display import update_display

            update_display(self._repr_mimebundle_(), raw=True, display_id=self.display_id)

    def start(self) -> None:
        shared_poller().register(self)

    def close(self) -> None:
        """Stop updating and close the widgets."""
        self._closed = True
        shared_poller().unregister(self)
        if self.opened is not None:
            self.opened.close()
        _close_tree(self.widget)

    def poll(self) -> str:  # pragma: no cover - overridden
        return "done"


class RunDetails(Dashboard):
    """The live dashboard of a run: status, charts, metrics, params and tags, log, outputs, children.

    ``RunDetails(run).show()`` — or just display a run in a notebook once the extension is loaded.
    """

    def __init__(self, run: "Run | str", client: Client | None = None, *, live: bool = True):
        super().__init__()
        self.client = client or getattr(run, "client", None) or Client.shared()
        if not isinstance(run, str) and not isinstance(getattr(run, "id", None), str):
            raise InvalidInput(f"RunDetails(run): give a run or its id (a submission returns the run), not "
                               f"{type(run).__name__}")
        self.run_id = self.client.runs.resolve_id(run if isinstance(run, str) else run.id)
        self.live = live
        self._version: tuple | None = None
        self._cursors: dict[str, int] = {}
        self._log_offset = 0
        self._log_text = ""
        self._last_tick = 0.0
        self._board: leaderboard.Leaderboard | None = None
        self.info: RunInfo = self.client.runs.get(self.run_id)
        self._build()
        self.update(force=True)
        if live and not self.info.is_terminal:
            self.start()

    # -- layout ---------------------------------------------------------------------------

    def _build(self) -> None:
        self.header = w.HTML()
        self.refresh_button = w.Button(description="Refresh", icon="refresh", layout=w.Layout(width="auto"))
        self.cancel_button = w.Button(description="Cancel", icon="stop", button_style="danger",
                                      layout=w.Layout(width="auto"))
        self.register_button = w.Button(description="Register model", icon="archive",
                                        layout=w.Layout(width="auto", display="none"))
        self.message = w.HTML()
        self.refresh_button.on_click(lambda _: self.update(force=True))
        self.cancel_button.on_click(lambda _: self._cancel())
        self.metric_picker = w.SelectMultiple(options=[], rows=4, description="metrics",
                                              layout=w.Layout(width="260px"))
        self.x_toggle = w.ToggleButtons(options=[("step", "step"), ("time", "time")], value="step",
                                        style={"button_width": "56px"})
        self.chart = MetricChart()
        w.link((self.x_toggle, "value"), (self.chart, "x_mode"))
        self.metric_picker.observe(lambda _: self._sync_panels(), names="value")
        self.latest = w.HTML()
        self.props = w.HTML()
        self.files = w.HTML()
        self.log = w.HTML()
        self.children_table = DataTable(on_open=self._open_child)
        self.children_chart = MetricChart(kind="parcoords", height=220)
        self.children_box = w.VBox([w.HTML("<b>Child runs</b>"), self.children_table, self.children_chart],
                                   layout=w.Layout(display="none"))
        self.insights = w.HTML(layout=w.Layout(display="none"))
        self.graph = None
        self.graph_box = w.VBox(layout=w.Layout(display="none"))
        self.batch_bar = w.IntProgress(min=0, max=1, value=0, layout=w.Layout(width="320px"))
        self.batch_text = w.HTML()
        self.batch_box = w.HBox([self.batch_bar, self.batch_text], layout=w.Layout(display="none"))
        self.child_view = w.Output()
        details = w.Accordion(children=[self.log, self.files, self.props])
        for i, title in enumerate(("Log", "Outputs", "Params, tags and models")):
            details.set_title(i, title)
        details.selected_index = 0
        self.widget = w.VBox([
            self.header,
            w.HBox([self.refresh_button, self.cancel_button, self.register_button, self.message]),
            w.HBox([self.metric_picker, self.x_toggle]),
            self.chart,
            self.batch_box,
            self.graph_box,
            self.latest,
            self.children_box,
            self.insights,
            self.child_view,
            details,
        ], layout=w.Layout(width="100%"))
        self.widget.add_class("aml-run-details")

    def _sync_panels(self) -> None:
        self.chart.set_panels([(name, name) for name in self.metric_picker.value])

    # -- data -----------------------------------------------------------------------------------

    def poll(self) -> str:
        if self._closed:
            return "done"
        try:
            version = self.client.runs.version(self.run_id)
        except AmlError:
            return "done"
        changed = version != self._version
        if changed:
            self.update(version=version)
        elif not self.info.is_terminal and time.time() - self._last_tick >= 1.0:
            self._render_header()  # the duration and the "checked" time tick
        if self.info.is_terminal and not changed:
            self.refresh_static()
            return "done"
        if changed:
            return "changed"
        return "idle" if self.info.status in SLOT_STATES else "waiting"

    def update(self, force: bool = False, version: tuple | None = None) -> None:
        """Fetch what changed and update every part (only new points go to the chart); ``version``: the stamp the
        poll just read (read here otherwise)."""
        if version is None:
            version = self.client.runs.version(self.run_id)
        self.info = self.client.runs.get(self.run_id)
        names = self.client.runs.metric_names(self.run_id)
        for name in names:
            self._cursors[name] = self.chart.read(self.client, self.run_id, name, self.info.display_name or "value",
                                                  self._cursors.get(name))
        before = list(self.metric_picker.options)
        if before != names:
            # bookkeeping metrics (tracking_overhead_s, …) stay in the picker but are not charted by default
            default = [n for n in names if n not in INTERNAL_METRICS][:MAX_PANELS] or names[:MAX_PANELS]
            chosen = [n for n in self.metric_picker.value if n in names]
            # a metric first logged later (val_accuracy at an epoch's end) is charted too, while there is room; one
            # the user took off the chart was in the picker already and stays off
            arrived = [n for n in names if n not in before and n not in INTERNAL_METRICS and n not in chosen]
            chosen = (chosen + arrived)[:MAX_PANELS] if chosen else default
            self.metric_picker.options = names
            self.metric_picker.value = tuple(chosen)
        self._sync_panels()
        self.chart.push()
        self._render_header()
        self._render_latest()
        self._render_props()
        self._render_log()
        if force or self.info.is_terminal or self._version is None or version[0] != self._version[0]:
            self._render_files()
        self._render_children()
        if self.info.kind == "pipeline":
            self._render_graph()
        elif self.info.kind == "batch":
            self._render_batch()
        if self.info.kind == "automl":
            self._render_insights()
        self._version = version

    def _render_header(self) -> None:
        i = self.info
        bits = [r.badge(i.status), f"<b>{r.esc(i.display_name or i.run_id)}</b>",
                f"experiment <b>{r.esc(i.experiment)}</b>"]
        if i.compute:
            bits.append(f"compute <b>{r.esc(i.compute)}</b>")
        if i.started:
            bits.append(f"started {r.esc(r.fmt_time(i.started))}")
        if i.ended:
            bits.append(f"ended {r.esc(r.fmt_time(i.ended))}")
        if i.duration is not None:
            bits.append(f"duration <b>{r.esc(r.fmt_duration(i.duration))}</b>")
        phase = i.tags.get("automl.phase")
        if phase and not i.is_terminal:
            bits.append(f"now <b>{r.esc(phase)}</b>")
        html = " · ".join(bits) + f"<br><code style='font-size:0.85em'>{r.esc(i.run_id)}</code>"
        if self.live and not i.is_terminal:  # how fresh what is shown is
            html += (f" <small class='aml-updated' style='color:var(--jp-ui-font-color2,#666)'>live · checked "
                     f"{time.strftime('%H:%M:%S')}</small>")
        if i.status in ("Failed", "Canceled") and i.error:  # a Canceled run's error: why the system stopped it
            html += f"<pre style='{theme.ERROR};white-space:pre-wrap;margin:4px 0'>{r.esc(i.error[-1500:])}</pre>"
        self.header.value = html
        self.cancel_button.layout.display = "none" if i.is_terminal else ""
        self._last_tick = time.time()

    def _render_latest(self) -> None:
        rows = []
        for name, value in self.info.latest_metrics.items():
            s = next((s for (p, _), s in self.chart._series.items() if p == name), None)
            if s is not None and len(s):
                has = s.vmin <= s.vmax
                rows.append((name, r.fmt_value(value), r.fmt_value(s.vmin) if has else "",
                             r.fmt_value(s.vmax) if has else "", len(s)))
            else:
                rows.append((name, r.fmt_value(value), "", "", 1))
        self.latest.value = r.html_table(("metric", "latest", "min", "max", "points"), rows) if rows \
            else "<i>No metrics yet.</i>"

    def _render_props(self) -> None:
        rows = [("param", k, r.short(v)) for k, v in self.info.params.items()] + \
            [("tag", k, r.short(v)) for k, v in self.info.tags.items()]
        args = self.info.spec.get("args") or []
        if args:
            rows.append(("arguments", "", " ".join(map(str, args))))
        rows += [("model", m.name, f"version {m.version}") for m in self.client.models.list(run_id=self.run_id)]
        self.props.value = r.html_table(("kind", "name", "value"), rows) if rows else "<i>No params, tags or models.</i>"

    def _render_log(self) -> None:
        try:
            text, self._log_offset = self.client.runs.read_log(self.run_id, self._log_offset, LOG_TAIL_BYTES)
        except AmlError as exc:  # a remote log store out of reach: the rest of the dashboard still works
            if not self._log_text:
                self.log.value = f"<i>The log cannot be read: {r.esc(str(exc))}</i>"
            return
        if not text and self.log.value and not (self.info.is_terminal and not self._log_text):
            return
        if text:  # the raw tail by lines ("\r" redraws a line: not a line of its own)
            self._log_text = "\n".join((self._log_text + text).split("\n")[-LOG_LINES:])
        body = r.esc(r.terminal_text(self._log_text)) or ("<i>(the run printed nothing)</i>" if self.info.is_terminal
                                         else "<i>(no output yet)</i>")
        self.log.value = f"<pre class='aml-log' style='max-height:22em;overflow:auto;margin:0'>{body}</pre>"

    def _render_files(self) -> None:
        try:
            names = self.client.runs.list_files(self.run_id)
        except AmlError:
            names = []
        if not names:
            self.files.value = "<i>No files.</i>" if self.info.is_terminal else "<i>No files yet.</i>"
            return
        items = "".join(f"<li><code>{r.esc(n)}</code></li>" for n in names[:200])
        self.files.value = (f"<ul style='margin:0'>{items}</ul><small>Get one with "
                            f"<code>run.download_file(NAME, PATH)</code>.</small>")
        self._files = names

    def _render_children(self) -> None:
        children = self.client.runs.list(parent_run_id=self.run_id, limit=None)
        self._children = children.infos  # the pipeline graph reads the same list
        if not children.infos:
            return
        self.children_box.layout.display = ""
        board = self._board = leaderboard.build(children.infos, self.info.spec.get("primary_metric"),
                                                self.info.spec.get("goal", "max"), self.info.kind)
        self.children_table.columns = board.columns
        self.children_table.rows = board.rows
        self.children_table.total = len(board.rows)
        self.children_table.highlight = board.best  # the run get_best_run_by_primary_metric() returns
        self.children_table.pinned = leaderboard.PINNED
        if board.sort and not self.children_table.sort:
            self.children_table.sort = board.sort
        if board.dims:
            self.children_chart.layout.display = ""
            self.children_chart.parcoords = {"dims": board.dims, "color": board.dims[-1]["values"]}
        else:
            self.children_chart.layout.display = "none"

    def _pipeline_spec(self):
        from ..core.pipelines import PipelineSpec

        try:
            return PipelineSpec.from_settings(self.info.spec["settings"])
        except (KeyError, TypeError, AmlError):
            return None

    def _render_graph(self) -> None:
        """A pipeline run: its steps as a graph, coloured by state; a click opens a step's run."""
        from .pipeline import PipelineGraph, step_states

        if self.graph is None:  # the spec never changes: read once
            spec = self._pipeline_spec()
            if spec is None:
                return
            self.graph = PipelineGraph(spec, self._open_child)
            self.graph_box.children = [self.graph.widget]
            self.graph_box.layout.display = ""
        self._step_states = step_states(self.graph.spec, getattr(self, "_children", []))
        self.graph.update(self._step_states)

    def _render_batch(self) -> None:
        """A batch run: mini-batches done and failed, items per second, time left."""
        total = int(self.info.tags.get("batch.mini_batches") or 0)
        if not total:
            return
        m = self.info.latest_metrics
        done, failed = int(m.get("mini_batches_done") or 0), int(m.get("mini_batches_failed") or 0)
        self.batch_bar.max, self.batch_bar.value = total, min(done + failed, total)
        self.batch_bar.bar_style = "danger" if failed else ("success" if done == total else "")
        self.batch_text.value = batch_line(done, failed, total, m.get("items_per_s"), m.get("eta_s"),
                                           self.info.is_terminal)
        self.batch_box.layout.display = ""

    def _render_insights(self) -> None:
        """AutoML: the per-algorithm summary and the best model's feature importance."""
        tables = {k: v for k, v in self.client.runs.get_metrics(self.run_id).items()
                  if k in ("algorithm_summary", "feature_importance") and isinstance(v, dict)}
        parts = []
        summary = tables.get("algorithm_summary")
        if summary:
            cols = list(summary)
            rows = list(zip(*(summary[c] for c in cols)))
            parts.append("<b>Algorithms</b>" + r.html_table(cols, [tuple(r.fmt_value(x) for x in row) for row in rows]))
        importance = tables.get("feature_importance")
        if importance and importance.get("feature"):
            top = max(importance["importance"]) or 1
            bars = "".join(
                f"<div style='display:flex;align-items:center;gap:6px;font-size:12px'>"
                f"<span style='width:180px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap'>{r.esc(f)}</span>"
                f"<span style='display:inline-block;height:10px;width:{max(1, int(220 * v / top))}px;"
                f"background:var(--jp-brand-color1,#1976d2)'></span><span>{v:.3f}</span></div>"
                for f, v in zip(importance["feature"], importance["importance"]))
            parts.append(f"<b>Feature importance of the best model</b>{bars}")
        if parts:
            self.insights.value = "<div style='display:flex;gap:24px;flex-wrap:wrap'>" + "".join(
                f"<div>{p}</div>" for p in parts) + "</div>"
            self.insights.layout.display = ""

    def _open_child(self, run_id: str) -> None:
        self.open_below(self.child_view, RunDetails(run_id, self.client))

    def _cancel(self) -> None:
        try:
            self.client.runs.cancel(self.run_id)
            self.message.value = "<i>cancel requested…</i>"
        except AmlError as exc:
            self.message.value = f"<span style='{theme.ERROR}'>{r.esc(exc)}</span>"
        self.update(force=True)

    # -- static -----------------------------------------------------------------------------------

    def static_html(self) -> str:
        metrics = {}
        for (panel, _), s in self.chart._series.items():
            metrics[panel] = list(s.values) if len(s) != 1 else s.values[0]
        for name, value in self.info.latest_metrics.items():
            metrics.setdefault(name, value)
        log_tail = "\n".join(r.terminal_text(self._log_text).split("\n")[-30:])
        trials = leaderboard.static_html(self._board, title="Trials (best first)") if self._board else ""
        if self.info.kind == "pipeline" and self.graph is not None:
            from .pipeline import graph_svg

            trials = graph_svg(self.graph.spec, getattr(self, "_step_states", None)) + trials
        elif self.info.kind == "batch" and self.batch_text.value:
            trials = f"<div>{self.batch_text.value}</div>" + trials
        return run_summary_html(self.info, metrics, log_tail, getattr(self, "_files", []), trials_html=trials)

    def __repr__(self) -> str:
        rows, more = capped_rows(metrics_rows(self.info.latest_metrics), self.info.run_id)
        text = repr(self.info)
        if rows:
            text += "\n" + r.text_table(("metric", "latest", "min", "max", "points"), rows)
            text += f"\n{more}" if more else ""
        return text


def batch_line(done: int, failed: int, total: int, rate: Any, eta: Any, ended: bool) -> str:
    text = f"<b>{done:,}</b> of {total:,} mini-batches scored"
    if failed:
        text += f", <b style='{theme.ERROR}'>{failed:,} failed</b>"
    if rate:
        text += f" · {r.esc(r.fmt_value(rate))} items/s"
    if eta is not None and not ended and float(eta) >= 0:
        text += f" · about {r.esc(r.fmt_duration(float(eta)))} left"
    return text


def _close_tree(widget: w.Widget) -> None:
    """Close a widget and everything inside it (``Widget.close_all`` would close every widget of the kernel)."""
    for child in getattr(widget, "children", ()):
        _close_tree(child)
    widget.close()
