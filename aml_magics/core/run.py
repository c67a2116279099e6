"""``Run``: what user code logs to, and the handle a notebook holds on a run — one class for every backend.

Logging goes to a ``Tracker`` (``core.contract``): inside a submitted run ``Run.get_context()`` finds the one its
environment names (``core.registry``: the local workspace's SQLite tracker, an Azure ML job's MLflow tracker);
outside any run it returns an offline run that prints what it would log, so the same script runs bare. A handle
from ``client.runs`` logs through its workspace's tracker. Every value is checked at the call (``core.checks``):
a bad one raises one ``InvalidInput`` naming the metric and stores nothing. Query methods go through the client
core, imported on first use so that a run process that only logs stays light.
"""
from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING, Any, Iterable

from . import checks
from .contract import Tracker
from .errors import InvalidInput, InvalidType

if TYPE_CHECKING:  # pragma: no cover
    from .client import Client
    from .types import RunInfo

ENV_RUN_ID = "AML_MAGICS_RUN_ID"
ENV_TRACKING_URI = "AML_MAGICS_TRACKING_URI"
ENV_WORKSPACE = "AML_MAGICS_WORKSPACE"
ENV_EXPERIMENT = "AML_MAGICS_EXPERIMENT"

_context: "Run | None" = None
_FLOAT_MAX = checks.FLOAT_MAX


class Run:
    """A run: log metrics to it, tag it, and ask it about its state, metrics and files.

    ``Run(experiment, run_id)`` gets an existing run, as in Azure ML.
    """

    def __init__(self, experiment: Any, run_id: str, *, _client: "Client | None" = None,
                 _tracker: Tracker | None = None, _check: bool = True):
        self.id = run_id
        self._experiment = experiment
        self._client = _client if _client is not None else getattr(experiment, "_client", None)
        self._tracker = _tracker
        self._write = None  # the run's fast scalar writer, made on first log()
        if self._client is not None and _tracker is None and _check:
            self.get_info()  # fail now with a clear NotFound, not at first use

    # -- construction ----------------------------------------------------------------------

    @classmethod
    def get_context(cls, allow_offline: bool = True) -> "Run":
        """The run this code executes in; an offline run when there is none."""
        global _context
        if _context is None:
            from . import registry

            found = registry.context_tracker(os.environ)
            if found is not None:
                tracker, run_id, experiment = found
                _context = cls(experiment, run_id, _tracker=tracker, _check=False)
                _install_ipython_flush(tracker)
            elif allow_offline:
                _context = _OfflineRun()
            else:
                raise RuntimeError("not inside a submitted run (Run.get_context(allow_offline=False))")
        return _context

    # -- identity ------------------------------------------------------------------------------

    @property
    def client(self) -> "Client":
        """The workspace client that answers questions about this run (status, metrics, files)."""
        if self._client is None:
            # asked first: an Azure ML job's process cannot read back, and ships without the client's modules
            options = None if self._tracker is None else self._tracker.client_options()
            if self._tracker is not None and options is None:
                from .errors import NotSupported

                raise NotSupported(f"this process logs run {self.id} to {self._tracker.describe()} and cannot "
                                   "read it back; ask from the notebook: client.runs.get(run_id)")
            from .client import Client

            self._client = Client(**options) if options is not None else Client(workspace=os.environ.get(ENV_WORKSPACE))
        return self._client

    @property
    def experiment(self):
        if self._client is None and self._tracker is not None and self._tracker.client_options() is None:
            return self.client  # raises NotSupported: an Azure ML job's process cannot read back
        from .workspace import Experiment

        if not isinstance(self._experiment, Experiment):
            name = self._experiment if isinstance(self._experiment, str) else self.get_info().experiment
            self._experiment = Experiment(self.client, name)
        return self._experiment

    @property
    def tracker(self) -> Tracker:
        """Where this run's logging goes from this process."""
        if self._tracker is None:
            self._tracker = self.client.backend.runs.tracker()
        return self._tracker

    # -- logging (Azure ML names) ------------------------------------------------------------------

    def log(self, name: str, value: Any, step: int | None = None, description: str = "") -> None:
        """Log one value of metric ``name`` (numbers form a series; ``step`` defaults to the next index).

        A bad value or step raises one ``InvalidInput`` naming the metric and stores nothing of the call."""
        t = type(value)
        if t is not float:
            if t is int:
                if not -_FLOAT_MAX <= value <= _FLOAT_MAX:
                    value = checks.metric_value(name, value)  # raises: too large for a float
            elif isinstance(value, str):
                if step is not None:
                    checks.step(name, step)
                self.tracker.log_record(self.id, name, "string", value)
                return
            else:
                value = checks.metric_value(name, value)
        write = self._write
        if write is None:
            write = self._write = self.tracker.scalar_writer(self.id)
        write(name, value, step)

    def log_list(self, name: str, value: Iterable[Any], description: str = "") -> None:
        """Log a list of numbers as a series in one call (the fast path for many points)."""
        if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__iter__"):  # one number: run.log
            raise InvalidType(f"log_list({checks.shown(name)}): give a list of numbers, not a {type(value).__name__}"
                              + ("; for one value use run.log(name, value)" if not isinstance(value, (str, bytes, dict))
                                 else ""))
        items = value if isinstance(value, (list, tuple)) else list(value)  # a generator is read once
        try:
            values = [v if type(v) is float else checks.metric_value(name, v) for v in items]
        except InvalidType:  # which item, and what log_list takes (the scalar's hint names log_list itself)
            for at, bad in enumerate(items):
                try:
                    checks.metric_value(name, bad)
                except InvalidType:
                    raise InvalidType(f"log_list({checks.shown(name)}): item {at} ({checks.shown(bad, 40)}) is not a "
                                      "number; give numbers only (a row of mixed values: log_row; text: run.log)"
                                      ) from None
                except InvalidInput:  # a number too large: not the item that raised InvalidType
                    pass
            raise
        self.tracker.log_scalars(self.id, name, values)

    def log_row(self, name: str, description: str = "", **kwargs: Any) -> None:
        """Add a row to table metric ``name``: ``run.log_row("roc", fpr=0.1, tpr=0.6)``."""
        checks.metric_name(name)  # (a list as the name was 'unhashable type' from inside)
        for column in kwargs:
            checks.text("column name", column, max_len=checks.MAX_NAME)
        self.tracker.log_record(self.id, name, "row", kwargs)

    def log_table(self, name: str, value: dict[str, list], description: str = "") -> None:
        """Log a whole table as a dict of equal-length columns (or a pandas DataFrame)."""
        if hasattr(value, "to_dict") and hasattr(value, "columns"):  # a DataFrame: its columns
            value = value.to_dict(orient="list")
        if not isinstance(value, dict):
            raise InvalidType("log_table takes a dict of columns, like {'x': [1, 2], 'y': [3, 4]}")
        lengths = {}
        for column, values in value.items():
            checks.text("column name", column if isinstance(column, str) else str(column), max_len=checks.MAX_NAME)
            if isinstance(values, (str, bytes, dict)) or not hasattr(values, "__len__"):
                raise InvalidType(f"log_table({checks.shown(name)}): column {checks.shown(column)} is not a list of "
                                  f"values (it is {type(values).__name__}); give each column as a list, like "
                                  "{'x': [1, 2], 'y': [3, 4]}")
            lengths[column] = len(values)
        if len(set(lengths.values())) > 1:  # a ragged table was stored as it was, and shown with holes
            sizes = ", ".join(f"{checks.shown(k, 30)}: {n}" for k, n in list(lengths.items())[:6])
            raise InvalidInput(f"log_table({checks.shown(name)}): the columns have different lengths ({sizes}); give "
                               "every column the same number of values (one row: log_row)")
        self.tracker.log_record(self.id, name, "table", value)

    def log_image(self, name: str, path: str | os.PathLike | None = None, plot: Any = None, description: str = "") -> None:
        """Log an image file (``path``) or a matplotlib figure (``plot``) as an image metric."""
        fig = _image_source(name, path, plot)
        artifact = f"images/{_safe_name(name)}_{time.time_ns()}.png"
        if fig is not None:
            import tempfile

            with tempfile.TemporaryDirectory() as tmp:
                tmp_png = os.path.join(tmp, "image.png")
                fig.savefig(tmp_png, format="png")
                self.tracker.store_file(self.id, artifact, tmp_png)
        else:
            suffix = os.path.splitext(os.fspath(path))[1] or ".png"
            artifact = artifact[: -len(".png")] + suffix
            self.tracker.store_file(self.id, artifact, path)
        self.tracker.log_record(self.id, name, "image", {"path": artifact})

    def upload_file(self, name: str, path_or_stream: str | os.PathLike) -> str:
        """Keep a file with the run under artifact ``name`` (for example ``outputs/report.txt``).

        On a full disk this raises one ``StorageError`` and keeps nothing (metrics and tags wait in memory instead)."""
        checks.artifact_name(name)
        if not hasattr(path_or_stream, "read"):
            checks.text("upload_file's path", os.fspath(path_or_stream) if isinstance(path_or_stream, os.PathLike)
                        else path_or_stream)
            if not os.path.isfile(path_or_stream):
                raise InvalidInput(f"upload_file({name!r}): {os.fspath(path_or_stream)!r} is not a file; give a "
                                   "file's path or an open binary file")
        return self.tracker.store_file(self.id, name, path_or_stream)

    def tag(self, key: str, value: Any = None) -> None:
        self.set_tags({_hashable("tag", key): value})

    def set_tags(self, tags: dict[str, Any]) -> None:
        """Tag the run; on a full disk the tags wait in memory and are written when space returns."""
        self.tracker.set_tags(self.id, checks.tags("tags", tags))

    def log_param(self, key: str, value: Any) -> None:
        """Record a parameter (shown beside metrics in comparisons)."""
        self.set_params({_hashable("param", key): value})

    def set_params(self, params: dict[str, Any]) -> None:
        self.tracker.set_tags(self.id, checks.tags("params", params), params=True)

    def flush(self) -> None:
        """Write buffered metrics now (normally done every 200 ms and at exit)."""
        self.tracker.flush()

    # -- child runs and end states ---------------------------------------------------------------------

    def child_run(self, name: str | None = None, run_id: str | None = None, outputs: str | None = None) -> "Run":
        """Start a child run (status Running) under this run; log to it and ``complete()`` it."""
        if name is not None:
            checks.text("run name", name, max_len=checks.MAX_NAME)
        child = self.tracker.start_child(self.id, name)
        # the same kind of run as this one (a v1 run's child has v1's names: add_properties, get_children(tags=…))
        return type(self)(self._experiment, child, _client=self._client, _tracker=self._tracker, _check=False)

    def record_child(self, name: str, *, params: dict | None = None, tags: dict | None = None,
                     metrics: dict[str, float] | None = None, started: float | None = None,
                     ended: float | None = None, status: str = "Completed") -> str:
        """Record a child run that already ended (one value per metric) in one write; returns its id.

        What the AutoML engine records each trial with; use ``child_run()`` to log as you go. Every value is checked
        first, as ``log`` and ``set_tags`` check theirs: a bad one raises one ``InvalidInput`` and records nothing."""
        from .states import TERMINAL_STATES

        checks.text("run name", name, max_len=checks.MAX_NAME)
        if status not in TERMINAL_STATES:
            raise InvalidInput(f"record_child({checks.shown(name, 40)}): status {checks.shown(status, 40)} is not "
                               f"an end state; give one of {', '.join(TERMINAL_STATES)} (child_run() for a run that "
                               "goes on)")
        if metrics is not None and not isinstance(metrics, dict):
            raise InvalidInput(f"record_child({checks.shown(name, 40)}): metrics must be a dict of NAME: number, got "
                               f"{type(metrics).__name__}")
        values = {checks.metric_name(k): float(checks.metric_value(k, v)) for k, v in (metrics or {}).items()}
        started = None if started is None else checks.timestamp("started", started)
        ended = None if ended is None else checks.timestamp("ended", ended)
        if started is not None and ended is not None and started > ended:
            raise InvalidInput(f"record_child({checks.shown(name, 40)}): started ({started:.3f}) is after ended "
                               f"({ended:.3f}); give times as time.time() gives them, started first")
        return self.tracker.record_child(
            self.id, name, params=None if params is None else checks.tags("params", params),
            tags=None if tags is None else checks.tags("tags", tags), metrics=values, started=started, ended=ended,
            status=status)

    def complete(self) -> None:
        """Flush and mark the run Completed (a submitted run is completed by its process exit).

        What the store refuses (a full disk) stays in memory and is retried; this says how much, on stderr."""
        self._flush_reporting()
        if self.id != os.environ.get(ENV_RUN_ID):
            self.tracker.finish(self.id, "Completed")

    def fail(self, error_details: Any = None) -> None:
        """Flush and mark the run Failed with ``error_details``."""
        self._flush_reporting()
        self.tracker.finish(self.id, "Failed",
                            str(error_details) if error_details is not None else "run.fail() was called")

    def _flush_reporting(self) -> None:
        try:
            self.flush()
        except Exception as exc:  # noqa: BLE001 - the values stay buffered and the flush thread retries
            print(f"aml-magics: {self.tracker.pending()} metric values of run {self.id} are not saved yet ({exc}); "
                  "they are kept in memory and retried while this process runs", file=sys.stderr)

    def cancel(self) -> None:
        self.client.runs.cancel(self.id)

    def __enter__(self) -> "Run":
        """``with experiment.start_logging() as run:`` (as with Azure ML v1's Run and MLflow's ``start_run``): the run
        ends with the block — Completed, or Failed with the exception that left it — unless the block ended it."""
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.complete()
        elif issubclass(exc_type, KeyboardInterrupt):
            self.fail("interrupted (KeyboardInterrupt)")
        else:
            self.fail(f"{exc_type.__name__}: {exc}" if str(exc) else exc_type.__name__)
        return False  # the exception goes on

    # -- queries -------------------------------------------------------------------------------------

    def get_info(self) -> "RunInfo":
        return self.client.runs.get(self.id)

    def get_status(self) -> str:
        return self.get_info().status

    @property
    def status(self) -> str:
        return self.get_status()

    @property
    def parent_id(self) -> str | None:
        return self.get_info().parent_run_id

    @property
    def display_name(self) -> str | None:
        return self.get_info().display_name

    def get_details(self) -> dict[str, Any]:
        return self.get_info().to_dict()

    def get_metrics(self, name: str | None = None) -> dict[str, Any]:
        """name -> value for single values, name -> list for series (as Azure ML)."""
        self.flush_pending()
        if name is not None:
            checks.metric_name(name)
        return self.client.runs.get_metrics(self.id, name=name)

    def get_tags(self) -> dict[str, str]:
        self.flush_pending()
        return self.client.runs.get(self.id).tags

    def get_params(self) -> dict[str, str]:
        self.flush_pending()
        return self.client.runs.get(self.id).params

    def get_children(self, recursive: bool = False) -> list["Run"]:
        return self.client.runs.children(self.id, recursive=recursive)

    def get_file_names(self) -> list[str]:
        return self.client.runs.list_files(self.id)

    def download_file(self, name: str, output_file_path: str | os.PathLike | None = None) -> str:
        return self.client.runs.download_file(self.id, name, output_file_path)

    def get_logs(self, tail: int | None = None) -> str:
        return self.client.runs.get_logs(self.id, tail=tail)

    def wait_for_completion(self, show_output: bool = False, wait_post_processing: bool = False,
                            raise_on_error: bool = True, timeout: float | None = None) -> dict[str, Any]:
        """Block until the run ends (streaming its log when ``show_output``); returns its details."""
        info = self.client.runs.wait(self.id, show_output=show_output, timeout=timeout)
        if raise_on_error and info.status == "Failed":
            from . import render
            from .errors import AmlError

            said = render.error_line(info.error, last=True, limit=2000) if info.error else "see its logs"
            raise AmlError(f"run {self.id} failed: {said}")
        return info.to_dict()

    def result(self, name: str) -> Any:
        """A variable the run sent back with ``--out`` (after the run completed)."""
        return self.client.runs.result(self.id, name)

    def register_model(self, model_name: str, model_path: str, tags: dict | None = None,
                       properties: dict | None = None, description: str | None = None, **v1_only: Any):
        """Register a file or folder of this run (``outputs/model.pkl``) as the next version of ``model_name``
        (v1's other settings — ``model_framework``, ``datasets``, … — are taken and not used)."""
        if v1_only:
            checks.misspelt("register_model", Run.register_model, v1_only)  # tag= for tags= was dropped
        self.flush_pending()
        return self.client.models.register(model_name, model_path, run_id=self.id, tags=tags, properties=properties,
                                           description=description)

    def get_models(self):
        """The models registered from this run (lineage)."""
        return self.client.models.list(run_id=self.id)

    # -- sweeps and AutoML --------------------------------------------------------------------------------

    def get_best_run_by_primary_metric(self) -> "Run | None":
        """Of a sweep or AutoML run: the completed child with the best value of the primary metric."""
        return self.client.runs.best_child(self.id)

    def get_output(self) -> tuple["Run", Any]:
        """Of an AutoML run (when it has completed): ``(best child run, fitted model)``, as in Azure ML."""
        import pickle

        info = self.client.runs.get(self.id)
        if info.kind != "automl":
            from .errors import InvalidInput

            raise InvalidInput(f"run {self.id} is a {info.kind} run; get_output() is for AutoML runs "
                               "(use get_best_run_by_primary_metric() for sweeps)")
        if info.status != "Completed":
            from .errors import Conflict

            raise Conflict(f"AutoML run {self.id} is {info.status}; wait for it: run.wait_for_completion()")
        best_id = info.tags.get("best_run")
        best = self.client.runs.handle(best_id, info.experiment) if best_id else self.get_best_run_by_primary_metric()
        holder = self.id if self.client.capabilities.automl_model == "run" else best.id
        with open(self.client.runs.local_file(holder, "outputs/model.pkl"), "rb") as f:
            model = pickle.load(f)
        return best, model

    def flush_pending(self) -> None:
        """Before reading: write what this process still buffers for the workspace (best effort)."""
        if self._tracker is not None:
            try:
                self._tracker.flush()
            except Exception:  # noqa: BLE001 - kept in memory; the read shows what is stored
                pass

    flush_if_local_writer = flush_pending  # the name earlier releases used

    # -- display ------------------------------------------------------------------------------------------

    def __repr__(self) -> str:
        try:
            return repr(self.get_info())
        except Exception:  # noqa: BLE001 - a repr must not fail
            where = f", {self._tracker.describe()}" if self._tracker is not None else ""
            return f"Run(id={self.id!r}{where})"

    def _repr_mimebundle_(self, include=None, exclude=None):
        self.flush_pending()
        return self.get_info()._repr_mimebundle_(include, exclude)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Run) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)


class OfflineTracker(Tracker):
    """The tracker of a run outside any workspace: it prints what it would log (at most ``MAX_LINES`` lines). It
    refuses what a workspace refuses (an empty metric name, a lone surrogate): a script tried with ``python
    train.py`` must not fail only once submitted."""

    MAX_LINES = 200
    MAX_CHARS = 500

    def __init__(self) -> None:
        self._lines = 0

    def say(self, text: str) -> None:
        self._lines += 1
        if self._lines <= self.MAX_LINES:
            if len(text) > self.MAX_CHARS:  # a log_list of a million values is one line, not megabytes of output
                text = text[:self.MAX_CHARS] + f" … ({len(text) - self.MAX_CHARS:,} more characters)"
            print(f"[offline run] {text}")
        elif self._lines == self.MAX_LINES + 1:
            print("[offline run] … further logging not shown")

    def scalar_writer(self, run_id):
        def write(name, value, step=None):
            checks.metric_name(name)
            if step is not None:
                step = checks.step(name, step)
            self.say(f"{name} = {value!r}" + (f" (step {step})" if step is not None else ""))
        return write

    def log_scalars(self, run_id, name, values):
        checks.metric_name(name)
        self.say(f"{name} = {list(values)!r}")

    def log_record(self, run_id, name, kind, payload):
        checks.metric_name(name)
        shown = {"row": f"row {payload!r}", "table": f"table with columns {list(payload)}",
                 "image": f"image {payload.get('path') if isinstance(payload, dict) else payload}"}.get(kind, repr(payload))
        self.say(f"{name} {shown}" if kind != "string" else f"{name} = {payload!r}")

    def store_file(self, run_id, name, source):
        self.say(f"upload {source} as {name}")
        return name

    def set_tags(self, run_id, values, *, params=False):
        values = checks.tags("params" if params else "tags", values)
        self.say(f"{'params' if params else 'tags'} {values!r}")

    def start_child(self, run_id, name):
        return "OfflineRun"

    def record_child(self, run_id, name, *, params, tags, metrics, started, ended, status):
        self.say(f"child {name}: {metrics!r}")
        return "OfflineRun"

    def started(self, run_id):
        pass

    def finish(self, run_id, status, error=None):
        self.say("complete" if status == "Completed" else f"fail: {error}")

    def flush(self):
        pass

    def pending(self):
        return 0


class _OfflineRun(Run):
    """The run returned outside any submitted run: it prints what it would log."""

    def __init__(self) -> None:
        super().__init__(None, "OfflineRun", _tracker=OfflineTracker(), _check=False)

    def child_run(self, name=None, run_id=None, outputs=None):
        return type(self)()

    def log_image(self, name, path=None, plot=None, description=""):
        _image_source(name, path, plot)  # what a workspace refuses, refused here too
        self.tracker.say(f"{name} image {path if plot is None else 'from plot'}")

    def complete(self):
        self.tracker.finish(self.id, "Completed")

    def fail(self, error_details=None):
        self.tracker.finish(self.id, "Failed", str(error_details))

    def get_status(self):
        return "Running"

    def get_metrics(self, name=None, recursive=False, **_v1_settings):  # (v1's run_type, populate too)
        return {}

    def __repr__(self):
        return "OfflineRun (not inside a submitted run: logging is printed, not stored)"

    def _repr_mimebundle_(self, include=None, exclude=None):
        return {"text/plain": repr(self)}


def _hashable(what: str, key: Any) -> Any:
    """A tag or param name that can be a dict's key (text, or what ``checks.tags`` writes as text); a list or a
    dict is the name's own error, not 'unhashable type'."""
    try:
        hash(key)
    except TypeError:
        raise InvalidType(f"{what} name must be text, got {type(key).__name__} {checks.shown(key)}") from None
    return key


def _image_source(name: Any, path: Any, plot: Any) -> Any:
    """``log_image``'s arguments checked: the figure to save (``plot``, or pyplot's current one), or None for a
    ``path`` that is a file."""
    if (path is None) == (plot is None):
        raise InvalidType("log_image takes exactly one of path= or plot=")
    checks.metric_name(name)
    if plot is not None:
        fig = plot.gcf() if hasattr(plot, "gcf") else plot
        if not callable(getattr(fig, "savefig", None)):
            raise InvalidType(f"log_image({name!r}): plot= takes a matplotlib figure or pyplot, not "
                              f"{type(plot).__name__}")
        return fig
    if not isinstance(path, (str, os.PathLike)) or not os.path.isfile(path):
        raise InvalidInput(f"log_image({name!r}): {checks.shown(path)} is not a file; give an image file's path")
    return None


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:80] or "image"


def _install_ipython_flush(tracker: Tracker) -> None:
    """In a notebook run (a kernel executed headless) flush after every cell, not only at exit."""
    ip = sys.modules.get("IPython")
    if ip is None:
        return
    try:
        shell = ip.get_ipython()
    except Exception:  # pragma: no cover
        return
    if shell is not None:
        def flush(*_):
            try:
                tracker.flush()
            except Exception:  # noqa: BLE001 - kept and retried by the tracker
                pass
        shell.events.register("post_run_cell", flush)
