"""Domain types: plain dataclasses that read well as text and as HTML."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from . import render as r
from .names import DEFAULT_COMPUTE
from .states import ACTIVE_STATES, RUN_STATES, TERMINAL_STATES  # noqa: F401 - re-exported for the front ends

if TYPE_CHECKING:  # pragma: no cover
    from .run import Run
    from .specs import AutoMLSpec, SweepSpec


class _Reprs:
    """Mixin: a mimebundle with text/plain always, text/html when the type renders one."""

    def _repr_html_(self) -> str:  # pragma: no cover - overridden
        return f"<pre>{r.esc(repr(self))}</pre>"

    def _repr_mimebundle_(self, include=None, exclude=None):
        return {"text/plain": repr(self), "text/html": self._repr_html_()}


@dataclass
class RunInfo(_Reprs):
    run_id: str
    experiment: str
    status: str
    kind: str
    compute: str | None = None
    display_name: str | None = None
    parent_run_id: str | None = None
    created: float | None = None
    started: float | None = None
    ended: float | None = None
    exit_code: int | None = None
    error: str | None = None
    traceback: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    latest_metrics: dict[str, Any] = field(default_factory=dict)
    spec: dict[str, Any] = field(default_factory=dict)

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATES

    @property
    def duration(self) -> float | None:
        if self.started is None:
            return None
        return (self.ended or time.time()) - self.started

    def metrics_line(self, limit: int = 6) -> str:
        items = list(self.latest_metrics.items())
        text = " ".join(f"{r.plain(k)}={r.fmt_value(v)}" for k, v in items[:limit])
        if len(items) > limit:
            text += f" (+{len(items) - limit} more)"
        return text

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["runId"] = self.run_id
        d["duration"] = self.duration
        return d

    def __repr__(self) -> str:
        head = f"Run {self.run_id} · {self.status} · experiment {self.experiment}"
        if self.compute:
            head += f" · compute {self.compute}"
        if self.duration is not None:
            head += f" · {r.fmt_duration(self.duration)}"
        lines = [head]
        if self.latest_metrics:
            lines.append(f"  metrics: {self.metrics_line()}")
        if self.status in ("Failed", "Canceled") and self.error:  # Canceled: why the system stopped it
            label = "error" if self.status == "Failed" else "why"
            lines.append(f"  {label}: {r.error_line(self.error, last=True)}")
        if self.status == "Queued":
            lines.append("  waiting for a free slot on its compute target")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        rows = [
            ("Run", f"<code>{r.esc(self.run_id)}</code>"),
            ("Status", r.badge(self.status)),
            ("Experiment", r.esc(self.experiment)),
        ]
        if self.display_name:
            rows.append(("Name", r.esc(self.display_name)))
        if self.compute:
            rows.append(("Compute", r.esc(self.compute)))
        if self.started:
            rows.append(("Started", r.esc(r.fmt_time(self.started))))
        if self.duration is not None:
            rows.append(("Duration", r.esc(r.fmt_duration(self.duration))))
        if self.latest_metrics:
            rows.append(("Metrics", r.esc(self.metrics_line(limit=10))))
        if self.tags:
            rows.append(("Tags", r.esc(r.pairs_text(self.tags))))
        if self.status in ("Failed", "Canceled") and self.error:
            rows.append(("Error" if self.status == "Failed" else "Why",
                         f"<pre style='margin:0;white-space:pre-wrap'>{r.esc(self.error[-2000:])}</pre>"))
        body = "".join(
            f'<tr><th style="{r.CELL_STYLE}">{k}</th><td style="{r.CELL_STYLE}">{v}</td></tr>' for k, v in rows
        )
        return f'<table style="{r.TABLE_STYLE}">{body}</table>'


# A run list counts the runs it does not show up to this many past its page ("50 of 10,051+ runs"): in a workspace of
# a million runs, an exact count of a filter would cost more than the page itself.
COUNT_CAP = 10_000


class AtLeast(int):
    """A count that stopped early: at least this many."""


class RunList(list, _Reprs):
    """Runs as a list of ``Run`` handles, shown as a table (``.to_pandas()`` for a DataFrame)."""

    def __init__(self, runs: Iterable["Run"] = (), infos: Iterable[RunInfo] = (), total: int | None = None,
                 query: dict[str, Any] | None = None):
        super().__init__(runs)
        self.infos = list(infos)
        self.total = total if total is not None else len(self)
        self.query = query or {}  # the filters that produced the list (dashboards page through them)
        self.more = isinstance(self.total, AtLeast)  # a backend stopped counting: at least ``total``

    @property
    def total_text(self) -> str:
        """The total as shown: ``10,051+`` when counting stopped early."""
        return f"{self.total:,}+" if self.more else f"{self.total:,}"

    HEADERS = ("run", "experiment", "status", "created", "duration", "metrics")
    SHOWN = 1000  # rows a view draws: `%aml runs --limit 100000` made an 8 MB text and an 80 MB HTML output (past
    # Jupyter's output rate limit, and saved with the notebook); the list itself holds every run

    def _rows(self):
        for info in self.infos[: self.SHOWN]:
            yield (
                info.run_id, info.experiment, info.status, r.fmt_time(info.created),
                r.fmt_duration(info.duration), info.metrics_line(limit=3),
            )

    def _footer(self) -> str:
        if len(self.infos) > self.SHOWN:
            return (f"the first {self.SHOWN:,} of the {len(self.infos):,} runs listed are shown, of {self.total_text} "
                    "that match; the list holds them all: .to_pandas() for a table")
        if self.total > len(self.infos):
            return f"{len(self.infos):,} of {self.total_text} runs shown"
        return ""

    def _empty(self) -> str:
        offset = self.query.get("offset") or 0
        if self.total and offset:  # past the end: "No runs." read as if none matched
            return f"No runs from offset {offset:,} (runs that match: {self.total_text}); give a smaller --offset"
        return "No runs."

    def __repr__(self) -> str:
        if not self.infos:
            return self._empty()
        text = r.text_table(self.HEADERS, self._rows(), max_width=48)
        footer = self._footer()
        return text + (f"\n({footer})" if footer else "")

    def _repr_html_(self) -> str:
        if not self.infos:
            return f"<p>{r.esc(self._empty())}</p>"
        rows = []
        for row, info in zip(self._rows(), self.infos):
            row = list(row)
            row[0] = f"<code>{r.esc(row[0])}</code>"
            row[2] = r.badge(info.status)
            rows.append(row)
        html = r.html_table(self.HEADERS, rows, raw_columns=(0, 2))
        footer = self._footer()
        return html + (f"<p>{r.esc(footer)}</p>" if footer else "")

    def to_pandas(self):
        try:
            import pandas as pd
        except ImportError:
            from .errors import BackendUnavailable

            raise BackendUnavailable("to_pandas() needs pandas: pip install pandas") from None

        return pd.DataFrame(
            [
                {
                    "run_id": i.run_id, "experiment": i.experiment, "status": i.status, "compute": i.compute,
                    "created": pd.to_datetime(i.created, unit="s") if i.created else None,
                    "duration_s": i.duration, **{f"tag.{k}": v for k, v in i.tags.items()},
                    **{k: v for k, v in i.latest_metrics.items() if not isinstance(v, (list, dict))},
                }
                for i in self.infos
            ]
        )


@dataclass
class ExperimentInfo(_Reprs):
    name: str
    run_count: int = 0
    created: float | None = None
    last_run: float | None = None

    def __repr__(self) -> str:
        return f"Experiment {self.name} · {r.counted(self.run_count, 'run')}"

    def _repr_html_(self) -> str:
        return f"<b>Experiment</b> {r.esc(self.name)} · {r.counted(self.run_count, 'run')}"


@dataclass
class ComputeTarget(_Reprs):
    name: str
    kind: str
    max_concurrent: int
    running: int = 0
    queued: int = 0

    def __repr__(self) -> str:
        return f"Compute {self.name} ({self.kind}) · {self.running}/{self.max_concurrent} running · {self.queued} queued"

    def _repr_html_(self) -> str:
        return r.esc(repr(self))


@dataclass
class DatastoreInfo(_Reprs):
    name: str
    kind: str
    path: str
    is_default: bool = False

    def __repr__(self) -> str:
        return f"Datastore {self.name} ({self.kind}{', default' if self.is_default else ''}) at {self.path}"

    def _repr_html_(self) -> str:
        return r.esc(repr(self))


@dataclass
class DatastoreEntry:
    path: str
    size: int
    is_dir: bool


class Listing(list, _Reprs):
    """A list of rows shown as a table; ``headers`` names the fields of each row."""

    def __init__(self, items: Iterable[Any], headers: tuple[str, ...], empty: str = "Nothing here.",
                 title: str = ""):
        super().__init__(items)
        self.headers = headers
        self.empty = empty
        self.title = title

    SHOWN = 1000  # rows a view draws (the list holds them all)

    def _cells(self):
        for item in self[: self.SHOWN]:
            values = (getattr(item, h) if not isinstance(item, dict) else item.get(h) for h in self.headers)
            # a list (an environment's packages) as its items, not Python's ['numpy', 'pandas==2.0']; a dict (a
            # model's tags) as k=v pairs, not {'stage': 'dev'} (and {} as nothing)
            yield [", ".join(map(str, v)) if isinstance(v, (list, tuple)) else r.pairs_text(v) if isinstance(v, dict)
                   else v for v in values]

    def _more(self) -> str:
        left = len(self) - self.SHOWN
        return f"… and {left:,} more (the list holds them all)" if left > 0 else ""

    def __repr__(self) -> str:
        if not self:
            return self.empty
        more = self._more()
        return (self.title + "\n" if self.title else "") + r.text_table(self.headers, self._cells()) + (
            f"\n{more}" if more else "")

    def _repr_html_(self) -> str:
        if not self:
            return f"<p>{r.esc(self.empty)}</p>"
        title = f"<b>{r.esc(self.title)}</b>" if self.title else ""
        more = self._more()
        return title + r.html_table(self.headers, self._cells()) + (f"<p>{r.esc(more)}</p>" if more else "")


class ModelList(Listing):
    """``%aml models``: registered versions (a model browser in notebooks)."""

    query: dict[str, Any] = {}


class ServiceList(Listing):
    """``%aml services``: deployed services (a service panel in notebooks)."""


@dataclass
class MetricsView(_Reprs):
    """``%aml metrics RUN``: every metric with its latest value and count; ``.data`` is get_metrics()."""

    run_id: str
    data: dict[str, Any]

    SHOWN = 500  # rows shown: a run of 5,000 per-class metrics made a 1.7 MB output, saved with the notebook

    def _rows(self):
        for name, value in list(self.data.items())[: self.SHOWN]:
            count = len(value) if isinstance(value, list) else 1
            last = value[-1] if isinstance(value, list) and value else value
            yield name, r.fmt_value(last), count

    def _more(self) -> str:
        left = len(self.data) - self.SHOWN
        return f"… and {left:,} more metrics (.data has them all)" if left > 0 else ""

    def __repr__(self) -> str:
        if not self.data:
            return f"Run {self.run_id} has no metrics yet."
        more = self._more()
        return r.text_table(("metric", "latest", "points"), self._rows()) + (f"\n{more}" if more else "")

    def _repr_html_(self) -> str:
        if not self.data:
            return f"<p>Run {r.esc(self.run_id)} has no metrics yet.</p>"
        more = self._more()
        return r.html_table(("metric", "latest", "points"), self._rows()) + (f"<p>{r.esc(more)}</p>" if more else "")


@dataclass
class WorkspaceInfo(_Reprs):
    name: str
    backend: str
    location: str
    source: str
    experiments: int = 0
    runs: int = 0
    active_runs: int = 0
    computes: list[ComputeTarget] = field(default_factory=list)

    def __repr__(self) -> str:
        compute = ", ".join(f"{c.name} {c.running}/{c.max_concurrent}" for c in self.computes)
        return (
            f"AML workspace {self.name!r} ({self.backend}) at {self.location} · "
            f"{r.counted(self.experiments, 'experiment')} · {r.counted(self.runs, 'run')} · "
            f"{self.active_runs:,} active · compute: {compute or 'none'}"
        )

    def _repr_html_(self) -> str:
        return f"<p>{r.esc(repr(self))}</p>"


@dataclass
class ModelInfo(_Reprs):
    name: str
    version: int
    path: str  # the registered file or folder inside the workspace
    framework: str | None = None
    description: str | None = None
    run_id: str | None = None
    created: float | None = None
    tags: dict[str, str] = field(default_factory=dict)
    properties: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.name}:{self.version}"

    def __repr__(self) -> str:
        bits = [f"Model {self.id}"]
        if self.framework:
            bits.append(self.framework)
        if self.run_id:
            bits.append(f"from run {self.run_id}")
        if self.tags:
            bits.append(r.plain(r.pairs_text(self.tags)))
        return " · ".join(bits)

    def _repr_html_(self) -> str:
        return f"<b>Model</b> <code>{r.esc(self.id)}</code> · " + r.esc(" · ".join(repr(self).split(" · ")[1:]))


@dataclass
class DeploymentInfo(_Reprs):
    name: str
    state: str
    scoring_uri: str
    models: list[str] = field(default_factory=list)
    host: str = "127.0.0.1"
    port: int = 0
    auth: bool = True
    restarts: int = 0
    error: str | None = None
    created: float | None = None
    updated: float | None = None

    @property
    def swagger_uri(self) -> str:
        return self.scoring_uri.rsplit("/", 1)[0] + "/swagger.json"

    def __repr__(self) -> str:
        text = f"Service {self.name} · {self.state} · {self.scoring_uri} · models {', '.join(self.models)}"
        if self.auth:
            text += " · key auth (service.get_keys())"
        if self.error and self.state != "Healthy":
            text += f"\n  {r.error_line(self.error)}"
        return text

    def _repr_html_(self) -> str:
        html = (f"<b>Service</b> {r.esc(self.name)} {r.badge(self.state)} <code>{r.esc(self.scoring_uri)}</code>"
                f" · models {r.esc(', '.join(self.models))}")
        if self.error and self.state != "Healthy":
            html += f"<pre style='white-space:pre-wrap'>{r.esc(self.error)}</pre>"
        return html


@dataclass
class BatchEndpointInfo(_Reprs):
    name: str
    state: str
    scoring_uri: str
    deployment: str = ""
    model: str = ""

    def __repr__(self) -> str:
        return (f"Batch endpoint {self.name} · {self.state} · {self.scoring_uri or '(no URI yet)'}"
                + (f" · deployment {self.deployment}" if self.deployment else "")
                + (f" · model {self.model}" if self.model else ""))

    def _repr_html_(self) -> str:
        return (f"<b>Batch endpoint</b> {r.esc(self.name)} {r.badge(self.state)} <code>{r.esc(self.scoring_uri)}</code>"
                + (f" · deployment {r.esc(self.deployment)}" if self.deployment else "")
                + (f" · model {r.esc(self.model)}" if self.model else ""))


@dataclass
class EnvironmentInfo(_Reprs):
    name: str
    version: int
    hash: str
    packages: list[str] = field(default_factory=list)
    created: float | None = None

    def __repr__(self) -> str:
        shown = ", ".join(self.packages[:6]) + (" …" if len(self.packages) > 6 else "")
        count = r.counted(len(self.packages), "package")
        return f"Environment {self.name}:{self.version} · {count}: {shown} · hash {self.hash}"

    def _repr_html_(self) -> str:
        return r.esc(repr(self))


@dataclass
class RunSubmission:
    """Everything a backend needs to start a run of a cell, a script or a notebook."""

    kind: str  # "cell", "script" or "notebook"
    experiment: str
    source_dir: Path
    entry: str  # path of the script/notebook inside source_dir; the cell's file name for cells
    compute: str = DEFAULT_COMPUTE
    code: str | None = None  # the cell's Python source
    args: list[str] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    display_name: str | None = None
    in_values: dict[str, Any] = field(default_factory=dict)
    out_vars: list[str] = field(default_factory=list)
    inputs: dict[str, str] = field(default_factory=dict)  # name -> "datastore:path"
    outputs: dict[str, str] = field(default_factory=dict)  # name -> "datastore:PATH", a folder the run writes
    environment_variables: dict[str, str] = field(default_factory=dict)
    environment: str | None = None  # a registered environment (NAME[:VERSION]) or a requirements/yml path
    snapshot_max_bytes: int = 100_000_000
    parent_run_id: str | None = None  # trials of a sweep are children of the sweep's run
    params: dict[str, Any] = field(default_factory=dict)  # recorded as the run's parameters at submission
    timeout_s: float | None = None  # cancel the run after this many seconds of running (Azure: limits.timeout)
    engine: "Any" = None  # what a sweep, AutoML, pipeline or batch run is asked to do (core.specs, core.pipelines)
