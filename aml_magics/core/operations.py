"""The operation groups of ``Client`` (``client.runs``, ``client.models`` …): they check what users give, call one
sub-contract of the backend each (``core.contract``), and return domain types whose reprs are the answer."""
from __future__ import annotations

import numbers
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from . import checks
from .contract import not_supported
from .errors import AmlError, InvalidInput, NotFound, writing_to
from .names import check_service_name, default_datastore, default_service_name
from .states import RUN_STATES, TERMINAL_STATES, canonical_state
from .types import (BatchEndpointInfo, ComputeTarget, DatastoreInfo, ExperimentInfo, Listing, MetricsView, ModelInfo,
                    ModelList, RunInfo, RunList, RunSubmission, ServiceList)

if TYPE_CHECKING:  # pragma: no cover
    from .client import Client
    from .contract import Backend
    from .pipelines import PipelineSpec
    from .run import Run


class _Operations:
    def __init__(self, client: "Client"):
        self._client = client

    @property
    def _backend(self) -> "Backend":
        return self._client.backend


class RunOperations(_Operations):
    """Submit, find, watch and stop runs."""

    def handle(self, run_id: str, experiment: str | None = None) -> "Run":
        from .run import Run

        return Run(experiment, run_id, _client=self._client, _check=False)

    def submit(self, submission: RunSubmission) -> "Run":
        if not isinstance(submission, RunSubmission):
            raise InvalidInput(f"submit() takes a RunSubmission, got {type(submission).__name__}; from a notebook use "
                               "%aml run / %aml submit, from Python Experiment(ws, NAME).submit(ScriptRunConfig(...))")
        _check_submission(submission)
        run_id = self._backend.runs.submit(submission)
        return self.handle(run_id, submission.experiment)

    def start_logging(self, experiment: str, display_name: str | None = None,
                      tags: dict[str, str] | None = None) -> "Run":
        check_name("experiment", experiment)
        if display_name is not None:
            checks.text("run name", display_name, max_len=checks.MAX_NAME)
        clean = checks.tags("tags", tags or {})
        run_id = self._backend.runs.start_interactive(experiment, display_name, {k: v or "" for k, v in clean.items()})
        return self.handle(run_id, experiment)

    def get(self, run_id: str, with_metrics: bool = True) -> RunInfo:
        return self._backend.runs.get(self.resolve_id(run_id), with_metrics=with_metrics)

    def resolve_id(self, run_id: str) -> str:
        """A full run id from a full id, ``last`` (the newest run), a unique prefix/suffix, or a top-level run's display
        name (``%%aml run --name baseline``: the newest run of that name, as ``last`` is the newest of all)."""
        run_id = str(run_id).strip()
        if run_id in ("last", "latest", "-1"):
            infos, _ = self._backend.runs.list(experiment=None, status=None, parent_run_id=None, limit=1, offset=0)
            if not infos:
                raise NotFound("there are no runs yet; submit one with %%aml run")
            return infos[0].run_id
        if self._backend.runs.exists(run_id):  # the common case, and what dashboards poll: one indexed lookup
            return run_id
        matches = self._backend.runs.matching(run_id, AMBIGUOUS + 1) if len(run_id) >= 6 else []
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            many = f"more than {AMBIGUOUS}" if len(matches) > AMBIGUOUS else str(len(matches))
            raise InvalidInput(f"run id {run_id!r} is ambiguous ({many} runs match); give more of it")
        named = self._backend.runs.named(run_id, 1) if run_id else []
        if named:
            return named[0]
        raise NotFound.with_suggestions("run", run_id, self._backend.runs.ids(), hint="list runs with %aml runs")

    def list(self, experiment: str | None = None, status: str | list[str] | None = None, limit: int | None = 50,
             offset: int = 0, parent_run_id: str | None = None,
             tags: "dict[str, str | None] | None" = None) -> RunList:
        """Runs newest first. ``tags``: ``{key: value}`` (``None`` as the value: the tag is set at all)."""
        if isinstance(status, str):
            status = [status]
        if status is not None and not (isinstance(status, (list, tuple, set)) and all(isinstance(s, str)
                                                                                     for s in status)):
            raise InvalidInput(f"status must be a status name or a list of them (like 'Completed' or ['Failed', "
                               f"'Canceled']), got {checks.shown(status)}")
        if status:
            bad = [s for s in status if canonical_state(s) is None]
            if bad:
                raise NotFound.with_suggestions("status", bad[0], RUN_STATES, hint="one of " + ", ".join(RUN_STATES))
            status = [canonical_state(s) for s in status]
        if limit is not None:
            limit = checks.whole("--limit", limit, 1, MAX_LIST)
        offset = checks.whole("--offset", offset, 0, checks.INT64_MAX)
        if tags is not None:
            if isinstance(tags, dict):  # a number, as tags are set ({"fold": 1} is stored "1"), finds what it set
                tags = {k: str(v) if isinstance(v, (int, float)) else v for k, v in tags.items()}
            if not isinstance(tags, dict) or not all(isinstance(k, str) and k and (v is None or isinstance(v, str))
                                                     for k, v in tags.items()):
                raise InvalidInput("tags filter: give {'key': 'value'} (or {'key': None} for any value), "
                                   "like --tag team=vision or --tag reviewed")
            for k, v in tags.items():
                checks.text("the tag filter's key", k, max_len=checks.MAX_NAME)
                if v is not None:
                    checks.text(f"the tag filter's value of {k}", v, empty=True)
            tags = tags or None
        filters = {"tags": tags} if tags else {}  # a backend without tag filtering is asked nothing new
        infos, total = self._backend.runs.list(experiment=experiment, status=status, parent_run_id=parent_run_id,
                                               limit=limit, offset=offset, **filters)
        query = {"experiment": experiment, "status": status, "limit": limit, "offset": offset,
                 "parent_run_id": parent_run_id, "tags": tags}
        return RunList([self.handle(i.run_id, i.experiment) for i in infos], infos, total, query)

    def children(self, run_id: str, recursive: bool = False) -> RunList:
        run_id = self.resolve_id(run_id)
        infos, _ = self._backend.runs.list(experiment=None, status=None, parent_run_id=run_id, limit=None, offset=0)
        infos = list(reversed(infos))  # oldest child first, as trials were started
        if recursive:
            for info in list(infos):
                infos.extend(self.children(info.run_id, recursive=True).infos)
        return RunList([self.handle(i.run_id, i.experiment) for i in infos], infos)

    def cancel(self, run_id: str, wait: float | None = None, reason: str | None = None) -> RunInfo:
        run_id = self.resolve_id(run_id)
        self._backend.runs.cancel(run_id, reason)
        if wait:
            return self.wait(run_id, timeout=wait, raise_on_timeout=False)
        return self.get(run_id)

    def resume(self, run_id: str) -> "Run":
        """Continue a sweep or AutoML run whose controller stopped (killed, failed or canceled)."""
        run_id = self.resolve_id(run_id)
        self._backend.runs.resume(run_id)
        return self.handle(run_id)

    def get_metrics(self, run_id: str, name: str | None = None) -> dict[str, Any]:
        return self._backend.runs.metrics(self.resolve_id(run_id), name=name)

    def metrics_view(self, run_id: str) -> MetricsView:
        run_id = self.resolve_id(run_id)
        return MetricsView(run_id, self._backend.runs.metrics(run_id))

    def metric_series(self, run_id: str, name: str, since: int = 0):
        """New points ``[(step, ts, value)]`` of a scalar series after cursor ``since``, and the next cursor."""
        since = checks.whole("since", since, 0, checks.INT64_MAX)  # (1.5 was a TypeError from inside; -1 re-read)
        return self._backend.runs.metric_series(checks.text("run id", run_id), name, since)

    def display_series(self, run_id: str, name: str, limit: int = 2000) -> "tuple[list, list, list, int, int]":
        """A whole scalar series as a chart of at most ``limit`` points draws it (min/max buckets, the extremes kept):
        ``(steps, timestamps, values, total points, cursor)`` — computed where the points are when the backend can."""
        from .series import DownsampledSeries

        limit = checks.whole("limit", limit, 4, 1_000_000)
        shown = self._backend.runs.display_series(checks.text("run id", run_id), name, limit)
        if shown is not None:
            return shown
        points, cursor = self._backend.runs.metric_series(run_id, name, 0)
        s = DownsampledSeries(limit=limit)
        s.extend((p[0] for p in points), (p[1] for p in points), (p[2] for p in points))
        u = s.full()
        return u.fixed[0] + u.tail[0], u.fixed[1] + u.tail[1], u.fixed[2] + u.tail[2], len(points), cursor

    def version(self, run_id: str) -> tuple:
        """A stamp that changes whenever the run's status, metrics, tags, children or log change."""
        return self._backend.runs.version(run_id)

    def metric_names(self, run_id: str) -> list[str]:
        """Names of the run's scalar series, in the order they were first logged."""
        return self._backend.runs.metric_names(checks.text("run id", run_id))

    def get_logs(self, run_id: str, tail: int | None = None, max_bytes: int | None = None) -> str:
        """The run's output; ``tail``: its last lines only (read from the end, not the whole file); ``max_bytes``:
        at most about that much, the newest, after a line saying what was left out."""
        tail = None if tail is None else checks.whole("tail", tail, 1, 10 ** 8)  # 0 gave the whole log, 2.5 a TypeError
        max_bytes = None if max_bytes is None else checks.whole("max_bytes", max_bytes, 1, 2 ** 62)
        run_id = self.resolve_id(run_id)
        if tail is None:
            return self._backend.runs.read_log(run_id, 0, max_bytes)[0]
        want = max(64 * 1024, tail * 256)
        if max_bytes is not None:
            want = min(want, max_bytes)
        while True:  # read the end; more of it while the lines there are fewer than asked and more is left
            text, end = self._backend.runs.read_log(run_id, 0, want)
            lines = text.rstrip("\n").split("\n")  # lines end in "\n"; "\r" only redraws one
            whole = want >= end
            if whole or len(lines) > tail or (max_bytes is not None and want >= max_bytes):
                return "\n".join(lines[-tail:] if whole or len(lines) > tail else lines)
            want = want * 4 if max_bytes is None else min(want * 4, max_bytes)

    def read_log(self, run_id: str, offset: int = 0, tail: int | None = None) -> tuple[str, int]:
        """The log from byte ``offset``; ``tail``: at most about that many bytes, the newest (a view of its end)."""
        offset = checks.whole("offset", offset, 0, 2 ** 62)
        tail = None if tail is None else checks.whole("tail", tail, 1, 2 ** 62)
        return self._backend.runs.read_log(run_id, offset, tail)

    def follow_logs(self, run_id: str, poll: float = 0.1, timeout: float | None = None,
                    first_max_bytes: int | None = None) -> Iterator[str]:
        """Yield log text as the run writes it, until the run has ended and the log is drained. ``first_max_bytes``:
        what was written before is given from its last that many bytes (after a line saying what was left out)."""
        poll = checks.positive("poll", poll, 3600)
        timeout = _timeout(timeout)
        first_max_bytes = None if first_max_bytes is None else checks.whole("first_max_bytes", first_max_bytes, 1,
                                                                            2 ** 62)
        run_id = self.resolve_id(run_id)
        pace = self._client.capabilities.pace or (0.0, 1.0)  # a remote service: gently
        poll = max(poll, pace[0])
        offset, deadline, delay = 0, None if timeout is None else time.monotonic() + timeout, poll
        first = first_max_bytes
        while True:
            status = self._backend.runs.get(run_id, with_metrics=False).status
            text, offset = self._backend.runs.read_log(run_id, offset, first)
            first = None
            if text:
                delay = poll
                yield text
            if status in TERMINAL_STATES:
                text, offset = self._backend.runs.read_log(run_id, offset)
                if text:
                    yield text
                return
            if deadline is not None and time.monotonic() > deadline:
                return
            time.sleep(delay)
            delay = min(delay * 1.5, pace[1])

    def wait(self, run_id: str, show_output: bool = False, timeout: float | None = None,
             raise_on_timeout: bool = True, write: Callable[[str], Any] | None = None) -> RunInfo:
        """Block until the run reaches a terminal state (streaming its log when ``show_output``)."""
        timeout = _timeout(timeout)  # NaN waited forever
        run_id = self.resolve_id(run_id)
        deadline = None if timeout is None else time.monotonic() + timeout
        if show_output:
            out = write or sys.stdout.write
            for text in self.follow_logs(run_id, timeout=timeout):
                out(text)
        remote = self._client.capabilities.remote
        delay, slowest = self._client.capabilities.pace or (0.05, 0.5)
        while True:
            info = self._backend.runs.get(run_id, with_metrics=not remote)  # remote: metrics once, at the end
            if info.status in TERMINAL_STATES:
                return self._backend.runs.get(run_id) if remote else info
            if deadline is not None and time.monotonic() > deadline:
                if raise_on_timeout:
                    raise AmlError(f"run {run_id} is still {info.status} after {timeout:g} s")
                return info
            time.sleep(delay)
            delay = min(delay * 1.5, slowest)

    def list_files(self, run_id: str) -> list[str]:
        return self._backend.runs.list_files(self.resolve_id(run_id))

    def download_file(self, run_id: str, name: str, output_file_path: str | os.PathLike | None = None) -> str:
        import shutil

        run_id = self.resolve_id(run_id)
        if output_file_path is not None and not isinstance(output_file_path, (str, os.PathLike)):
            raise InvalidInput(f"output_file_path must be a path, got {type(output_file_path).__name__} "
                               f"{checks.shown(output_file_path)}")
        src = self._backend.runs.file_path(run_id, checks.artifact_to_read(name))
        target = Path(output_file_path) if output_file_path else Path(Path(name).name)
        with writing_to(target):
            if target.is_dir():
                target = target / Path(name).name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, target)
        return str(target)

    def local_file(self, run_id: str, name: str) -> Path:
        """A run's file as a local path (read it, do not change it)."""
        return Path(self._backend.runs.file_path(self.resolve_id(run_id), checks.artifact_to_read(name)))

    def best_child(self, run_id: str) -> "Run | None":
        """The completed child run with the best last value of the parent's primary metric (``core.ranking``: the
        one rule every leaderboard uses; on a tie the earlier child)."""
        from .ranking import best_child

        run_id = self.resolve_id(run_id)
        info = self.get(run_id)
        metric, goal = info.spec.get("primary_metric"), info.spec.get("goal", "max")
        if not metric:
            raise InvalidInput(f"run {run_id} has no primary metric (it is not a sweep or AutoML run)")
        best = best_child(self.children(run_id).infos, metric, goal)
        return self.handle(best.run_id, best.experiment) if best else None

    def result(self, run_id: str, name: str | None = None) -> Any:
        run_id = self.resolve_id(run_id)
        info = self._backend.runs.get(run_id, with_metrics=False)
        wanted = info.spec.get("out_vars") or []
        if not wanted:
            raise InvalidInput(f"run {run_id} was not submitted with --out; nothing to bring back")
        if info.status != "Completed":
            raise InvalidInput(f"run {run_id} is {info.status}; --out values come back when it has Completed")
        values = self._backend.runs.results(run_id)
        if name is None:
            return values
        if name not in values:
            raise NotFound.with_suggestions(f"--out variable of run {run_id}", name, list(values))
        return values[name]


class PipelineOperations(_Operations):
    """Pipelines: steps (cells, scripts, notebooks) with named inputs and outputs, run as child runs of one run."""

    def load(self, path: str | os.PathLike) -> "PipelineSpec":
        """A pipeline from an Azure ML v2 pipeline YAML (the subset ``core.pipelines.load_yaml`` names)."""
        from .pipelines import load_yaml

        return load_yaml(path)[0]

    def submit(self, pipeline: "PipelineSpec | str | os.PathLike", experiment: str | None = None, *,
               source_dir: str | os.PathLike | None = None, reuse: bool | None = None,
               display_name: str | None = None, tags: dict[str, str] | None = None,
               environment_variables: dict[str, str] | None = None) -> "Run":
        """Run a pipeline (a ``PipelineSpec`` or a YAML file's path): a parent run whose children are the steps.
        A step whose code, arguments, environment and input contents are unchanged reuses its earlier run's outputs
        (``reuse=False``: every step runs)."""
        from dataclasses import replace as _replace

        from .pipelines import PipelineSpec, load_yaml

        if isinstance(pipeline, PipelineSpec):
            spec, doc = pipeline, {}
            source = Path(source_dir or os.getcwd())
        else:
            spec, doc = load_yaml(pipeline)
            source = Path(source_dir) if source_dir else Path(pipeline).resolve().parent
        spec = _replace(spec, reuse=spec.reuse if reuse is None else bool(reuse)).validate()
        experiment = experiment or doc.get("experiment_name") or "default"
        remote = self._client.capabilities.remote
        known = set() if remote else {c.name for c in self._backend.computes.list()}
        for step in spec.steps:
            compute = step.compute or spec.default_compute
            if not remote and compute not in known:  # a remote workspace's service checks its own computes
                raise NotFound.with_suggestions("compute target", compute, sorted(known),
                                                hint=f"step {step.name} names it; create it with %aml compute create")
            folder = (source / step.source).resolve()
            checks.folder(f"step {step.name}: its folder", folder)  # (the pipeline run began, and failed at the step)
            if step.kind in ("script", "notebook") and checks.path_kind(f"step {step.name}",
                                                                        folder / step.entry) != "file":
                raise NotFound(f"step {step.name}: {step.entry!r} not found in {folder}")
            for key, value in step.inputs.items():  # a datastore path that is not there: said now, not mid-pipeline
                if isinstance(value, str) and value.startswith(("datastore:", "azureml://")):
                    try:
                        self._backend.datastores.resolve_input(value)
                    except AmlError as exc:
                        raise type(exc)(f"step {step.name}, input {key}: {exc}") from None
            score = (step.batch or {}).get("score") if step.kind == "batch" else None
            if score and checks.path_kind(f"step {step.name}", folder / score) != "file":
                raise NotFound(f"step {step.name}: scoring script {score!r} not found in {folder}")
            env = step.environment
            remote_env = bool(env) and env.startswith(("azureml:", "/subscriptions/"))
            if remote_env and not self._client.capabilities.remote:
                raise InvalidInput(f"step {step.name}: environment {env} is an Azure ML one; here register one "
                                   "(%aml env register NAME requirements.txt) or leave it out to use this Python")
            if env and not remote_env and not env.endswith((".txt", ".yml", ".yaml")):
                try:
                    self._client.environments.get(*checks.name_and_version("environment", env.split("@")[0]))
                except (NotFound, InvalidInput) as exc:
                    raise type(exc)(f"step {step.name}: {exc}") from None
        sub = RunSubmission(kind="pipeline", experiment=experiment, source_dir=source, entry="",
                            compute=spec.default_compute, engine=spec, display_name=display_name or doc.get("display_name"),
                            tags={"pipeline.steps": str(len(spec.steps)), **(tags or {})},
                            environment_variables=dict(environment_variables or {}))
        return self._client.runs.submit(sub)

    def export(self, pipeline: "PipelineSpec", folder: str | os.PathLike = ".", *, experiment: str | None = None,
               name: str = "pipeline.yml", overwrite: bool = False) -> Path:
        """Write the pipeline as an Azure ML v2 pipeline YAML (cell steps as scripts under ``steps/``). Files there
        that hold something else are replaced only with ``overwrite``."""
        from .pipelines import PipelineSpec, to_yaml

        if not isinstance(pipeline, PipelineSpec):
            raise InvalidInput(f"export() takes a PipelineSpec (client.pipelines.load(PATH), or %aml pipeline export "
                               f"for the notebook's steps), got {type(pipeline).__name__}")
        stores = self._backend.datastores.list()
        default = default_datastore(stores, lambda d: d.is_default, lambda d: d.name)
        return to_yaml(pipeline, folder, experiment=experiment, name=name,
                       datastores=tuple(d.name for d in stores), default_datastore=default.name, overwrite=overwrite)

    def steps(self, run_id: str) -> dict[str, RunInfo]:
        """A pipeline run's steps (step name → its child run), in the order they were started."""
        children = self._client.runs.children(run_id)
        return {c.tags.get("pipeline.step", c.display_name or c.run_id): c
                for c in sorted(children.infos, key=lambda c: c.created or 0)}


class BatchOperations(_Operations):
    """Batch scoring: a model over the files of a folder or the rows of a table, on worker processes."""

    def submit(self, model: str | None, data: Any, *, experiment: str = "batch", output: str | None = None,
               score: str | os.PathLike | None = None, mini_batch: int | None = None, parallel: int = 1,
               retries: int = 3, error_threshold: int = -1, output_file: str | None = None,
               tabular: bool | None = None, compute: str | None = None, source_dir: str | os.PathLike | None = None,
               display_name: str | None = None, tags: dict[str, str] | None = None,
               environment: str | None = None) -> "Run":
        """``data``: ``datastore:PATH`` (a folder of files, or CSV/Parquet), a local path, or a DataFrame/array.
        ``output``: a ``datastore:PATH`` folder that receives the output file too. Without ``score`` the model
        must be a scikit-learn or ONNX model (the default scorer)."""
        from .names import DEFAULT_COMPUTE as _COMPUTE
        from .specs import TABULAR_SUFFIXES, BatchSpec

        checks.folder("--source-dir", source_dir or os.getcwd())
        source = Path(source_dir or os.getcwd()).resolve()
        if model is None and score is None:
            raise InvalidInput("give a model (NAME[:VERSION]), a scoring script (--score batch_score.py), or both")
        model_ref, framework = None, None
        if model is not None:
            name, version = parse_model_ref(str(model))
            info = self._client.models.get(name, version)
            model_ref, framework = f"{info.name}:{info.version}", info.framework
            if score is None and framework not in ("scikit-learn", "sklearn", "onnx"):
                raise InvalidInput(f"model {model_ref} is {framework or 'of an unknown framework'}; the default batch "
                                   "scorer serves scikit-learn and ONNX models: give a script with --score batch_score.py "
                                   "(init() and run(mini_batch))")
        entry = None
        if score is not None:
            path = Path(score)
            checks.path_kind("--score", source / path)  # (resolve() raises on a NUL)
            full = (source / path).resolve() if not path.is_absolute() else path.resolve()
            if checks.path_kind("--score", full) != "file":
                raise NotFound(f"scoring script {str(score)!r} not found in {source}")
            if source not in full.parents:
                raise InvalidInput(f"the scoring script must be inside the run's folder {source} (--source-dir)")
            entry = full.relative_to(source).as_posix()
        mini = checks.whole("--mini-batch", mini_batch, 1, 10 ** 9) if mini_batch is not None else None
        parallel = checks.whole("--parallel", parallel, 1, 1024)
        retries = checks.whole("--retries", retries, 0, 1000)
        error_threshold = checks.whole("--error-threshold", error_threshold, -1, 10 ** 12)
        inputs, in_values = {}, {}
        if isinstance(data, (str, os.PathLike)) and str(data).startswith(("datastore:", "azureml://")):
            uri = str(data)  # as written: each backend reads both forms
            where = self._backend.datastores.resolve_input(uri)
            inputs["data"] = uri
            data_ref = {"kind": "input", "name": "data"}
            looks = Path(where) if self._client.capabilities.inputs_readable_here else None
        elif isinstance(data, (str, os.PathLike)):
            if not str(data).strip():  # Path("") is the working folder: every file in it was scored
                raise InvalidInput("--data is empty: give a file, a folder, datastore:PATH or a DataFrame")
            looks = checks.expand_home(data).resolve()
            kind = checks.path_kind("--data", looks)
            if kind == "missing":
                raise NotFound(f"--data {str(data)!r}: no such file or folder (or datastore:PATH for datastore files)")
            if kind == "other":
                raise InvalidInput(f"--data {str(data)!r} is not a file or a folder (a device or a pipe); give files")
            if self._client.capabilities.remote:
                raise InvalidInput(f"--data {str(data)!r} is on this machine; upload it (%aml datastore upload) and "
                                   "pass datastore:PATH")
            if looks.is_dir() and not any(p.is_file() and not any(part.startswith(".") for part in
                                                                 p.relative_to(looks).parts) for p in looks.rglob("*")):
                raise InvalidInput(f"--data {str(data)!r}: the folder has no files to score (hidden ones are "
                                   "left out)")  # (the run failed on it, after starting)
            data_ref = {"kind": "path", "path": str(looks)}
        elif hasattr(data, "shape"):
            shape = tuple(getattr(data, "shape", None) or ())
            if not shape or not shape[0]:  # no rows (or a 0-d array): the run failed on it after starting
                raise InvalidInput(f"--data: the {type(data).__name__} has no rows to score")
            in_values["__batch_data__"] = data
            data_ref, looks = {"kind": "memory"}, None
            if tabular is False:
                raise InvalidInput("a DataFrame or array is scored by rows (tabular)")
            tabular = True
        else:
            raise InvalidInput(f"--data: give datastore:PATH, a local path or a DataFrame, not {type(data).__name__}")
        if tabular is None:  # a table file, or a folder of nothing but table files
            files = [] if looks is None else [looks] if looks.is_file() else [p for p in looks.iterdir() if p.is_file()]
            tabular = bool(files) and all(p.suffix.lower() in TABULAR_SUFFIXES for p in files)
        output_file = output_file or ("predictions.csv" if tabular else "parallel_run_step.txt")
        checks.output_file_name("--output-file", output_file)
        if output_file.endswith(".parquet"):
            import importlib.util

            if importlib.util.find_spec("pyarrow") is None:
                raise InvalidInput("Parquet output needs pyarrow (pip install pyarrow); or use --output-file predictions.csv")
        outputs = {}
        if output is not None:
            outputs["predictions"] = str(output)
        spec = BatchSpec(data=data_ref, model=model_ref, score=entry, framework=framework, tabular=bool(tabular),
                         mini_batch=mini or (10_000 if tabular else 10), parallel=parallel, retries=retries,
                         error_threshold=error_threshold, output_file=output_file,
                         output="predictions" if outputs else None)
        sub = RunSubmission(kind="batch", experiment=experiment, source_dir=source, entry="",
                            compute=compute or _COMPUTE, engine=spec, in_values=in_values, inputs=inputs,
                            outputs=outputs, display_name=display_name,
                            tags={**({"batch.model": model_ref} if model_ref else {}), **(tags or {})},
                            environment=environment)
        return self._client.runs.submit(sub)


class BatchEndpointOperations(_Operations):
    """Batch endpoints (Azure ML): a model, its batch scorer and settings under a name. Optional: the local
    workspace scores directly (``client.batch.submit``)."""

    def create(self, name: str, model: str, *, score: str | os.PathLike | None = None, compute: str | None = None,
               mini_batch: int = 10, parallel: int = 1, retries: int = 3, error_threshold: int = -1,
               output_file: str = "predictions.csv", environment: str | None = None) -> "BatchEndpointInfo":
        checks.text("batch endpoint name", name, max_len=64)
        ref = parse_model_ref(str(model))
        settings = {"mini_batch": checks.whole("--mini-batch", mini_batch, 1, 10 ** 9),
                    "parallel": checks.whole("--parallel", parallel, 1, 1024),
                    "retries": checks.whole("--retries", retries, 0, 1000),
                    "error_threshold": checks.whole("--error-threshold", error_threshold, -1, 10 ** 12),
                    "output_file": checks.output_file_name("--output-file", output_file, (".txt", ".csv"))}
        path = None
        if score is not None:
            path = checks.expand_home(score)
            checks.existing_file("scoring script", path)
        if not compute:
            raise InvalidInput("name the compute cluster the endpoint's jobs run on: -c NAME")
        return self._backend.batch_endpoints.create(name, ref, path, compute=compute, settings=settings,
                                                    environment=environment)

    def list(self) -> Listing:
        return Listing(self._backend.batch_endpoints.list(), ("name", "state", "deployment", "scoring_uri"),
                       "No batch endpoints.", "Batch endpoints")

    def delete(self, name: str) -> None:
        checks.text("batch endpoint name", name, max_len=64)
        self._backend.batch_endpoints.delete(name)


class ExperimentOperations(_Operations):
    def list(self) -> Listing:
        return Listing(self._backend.experiments.list(), ("name", "run_count"), "No experiments yet.", "Experiments")

    def get(self, name: str) -> ExperimentInfo:
        experiments = self._backend.experiments.list()
        for e in experiments:
            if e.name == name:
                return e
        raise NotFound.with_suggestions("experiment", name, [e.name for e in experiments])


class ComputeOperations(_Operations):
    def list(self) -> Listing:
        return Listing(self._backend.computes.list(), ("name", "kind", "max_concurrent", "running", "queued"),
                       "No compute targets.", "Compute targets")

    def get(self, name: str) -> ComputeTarget:
        targets = self._backend.computes.list()
        for c in targets:
            if c.name == name:
                return c
        raise NotFound.with_suggestions("compute target", name, [c.name for c in targets])

    def create(self, name: str, max_concurrent: int | None = None) -> ComputeTarget:
        """A compute target of ``max_concurrent`` slots or nodes (default: ``capabilities.default_compute_size``).
        One that exists is kept as it is, or resized when ``max_concurrent`` differs (said either way: a `create`
        without a size set it back to the default without a word)."""
        checks.text("compute name", name, max_len=checks.MAX_NAME)
        if max_concurrent is not None:
            max_concurrent = checks.whole("--max-concurrent", max_concurrent, 1, MAX_CONCURRENT)
        current = next((c for c in self._backend.computes.list() if c.name == name), None)
        if current is not None and max_concurrent in (None, current.max_concurrent):
            print(f"Note: compute {name} exists ({current.max_concurrent} at once), kept as it is"
                  + ("" if max_concurrent else f"; to resize it: %aml compute create {name} --max-concurrent N"),
                  file=sys.stderr)
            return current
        size = self._client.capabilities.default_compute_size if max_concurrent is None else max_concurrent
        target = self._backend.computes.create(name, size)
        if current is not None:
            print(f"Note: compute {name} resized: {current.max_concurrent} → {size} at once", file=sys.stderr)
        return target


class DatastoreOperations(_Operations):
    def list(self) -> Listing:
        return Listing(self._backend.datastores.list(), ("name", "kind", "is_default", "path"), "No datastores.",
                       "Datastores")

    def default(self) -> DatastoreInfo:
        """The workspace's default datastore: the one marked default, else the only one (one rule with where
        uploads go and ``datastore:PATH`` points)."""
        return default_datastore(self._backend.datastores.list(), lambda d: d.is_default, lambda d: d.name)

    def upload(self, src: str | os.PathLike, target: str = "", datastore: str | None = None,
               overwrite: bool = False, progress: Callable[[int, int], Any] | None = None) -> list[str]:
        """``progress(bytes moved, bytes in all)``: told as the files go (a progress line, a widget)."""
        checks.path_kind("the file or folder to upload", src)  # (None, a number: a TypeError from os.fspath)
        path = checks.expand_home(checks.text("the file or folder to upload", os.fspath(src)))
        kind = checks.path_kind("the file or folder to upload", path)
        if kind == "missing":
            raise NotFound(f"{path} does not exist; give a file or folder to upload")
        if kind == "other":  # /dev/zero, a pipe: read forever or block (was: nothing, silently)
            raise InvalidInput(f"{path} is not a file or folder (a device, pipe or socket); give a file or folder to "
                               "upload")
        return self._backend.datastores.upload(path, target, datastore, overwrite, progress)

    def ls(self, path: str = "", datastore: str | None = None) -> Listing:
        return Listing(self._backend.datastores.ls(path, datastore), ("path", "size"), "The datastore is empty.")

    def download(self, path: str, target: str | os.PathLike = ".", datastore: str | None = None,
                 overwrite: bool = False, progress: Callable[[int, int], Any] | None = None) -> list[str]:
        with writing_to(target):
            return self._backend.datastores.download(path, Path(target), datastore, overwrite, progress)

    def resolve_input(self, uri: str) -> str:
        """``datastore:PATH`` as what a run of this workspace reads (a local path, or the backend's own URI)."""
        checks.text("datastore URI", uri)
        return self._backend.datastores.resolve_input(uri)


class ModelOperations(_Operations):
    """The model registry: names with auto-incremented versions, files kept in the workspace."""

    def register(self, name: str, path: str | os.PathLike, *, run_id: str | None = None,
                 tags: dict[str, Any] | None = None, properties: dict[str, Any] | None = None,
                 description: str | None = None) -> ModelInfo:
        """Register a local file or folder — or, with ``run_id``, a file of that run (``outputs/model.pkl``)."""
        checks.text("model name", name, max_len=checks.MAX_NAME)
        if not isinstance(path, (str, os.PathLike)) or not str(path).strip():
            raise InvalidInput(f"give the model's file or folder (or with run_id, the run's file like "
                               f"'outputs/model.pkl'), got {checks.shown(path)}")
        tags = {k: v or "" for k, v in checks.tags("tags", tags or {}, longer=MODEL_FILE).items()}
        properties = {k: v or "" for k, v in checks.tags("properties", properties or {}, longer=MODEL_FILE).items()}
        if description is not None:
            checks.text("description", str(description), empty=True)
        if run_id is not None:  # (a registered file's name is stored: it must be text, as every name)
            checks.text("the run's file to register", str(path), max_len=4096)
            return self._backend.models.register_from_run(self._client.runs.resolve_id(run_id), name, str(path),
                                                          tags=tags, properties=properties, description=description)
        return self._backend.models.register(name, checks.expand_home(path), tags=tags, properties=properties,
                                             description=description)

    def get(self, name: str, version: int | None = None) -> ModelInfo:
        name, version = parse_model_ref(name, version)
        return self._backend.models.get(name, version)

    def list(self, name: str | None = None, tags: dict[str, str] | list[str] | None = None,
             run_id: str | None = None) -> Listing:
        if tags is not None and not (isinstance(tags, dict) or isinstance(tags, (list, tuple, set)) and all(
                isinstance(t, str) for t in tags)):  # (3: a TypeError from inside)
            raise InvalidInput(f"tags filter: give {{'key': 'value'}} or a list of tag names, got "
                               f"{type(tags).__name__} {checks.shown(tags)}")
        version = None
        if isinstance(name, str) and ":" in name:  # "%aml models m1:2": that version (it was "No models match")
            name, version = parse_model_ref(name, None)
        models = self._backend.models.list(name=name, run_id=run_id)
        if version is not None:
            models = [m for m in models if m.version == version]
        if tags:
            wanted = tags if isinstance(tags, dict) else {t: None for t in tags}
            models = [m for m in models if all(k in m.tags and (v is None or m.tags[k] == str(v))
                                               for k, v in wanted.items())]
        query = {"name": name, "tags": tags, "run_id": run_id}
        empty = "No models match (%aml models lists every one)." if name or tags or run_id else \
            "No models registered yet."
        out = ModelList(models, ("name", "version", "framework", "run_id", "tags"), empty, "Models")
        out.query = query
        return out

    def add_tags(self, name: str, version: int, tags: dict[str, Any]) -> ModelInfo:
        """Add (or change) tags of one model version; checked as ``register``'s tags are (a list, a lone surrogate or
        a NUL is one ``InvalidInput``, and nothing is changed)."""
        name, version = parse_model_ref(name, version)
        tags = {k: v or "" for k, v in checks.tags("tags", tags, longer=MODEL_FILE).items()}  # as register keeps them
        if version is None:
            raise InvalidInput(f"add_tags({checks.shown(name, 40)}): give the version whose tags change")
        return self._backend.models.add_tags(name, version, tags)

    def download(self, name: str, version: int | None = None, target_dir: str | os.PathLike = ".",
                 exist_ok: bool = False) -> str:
        import shutil

        if not isinstance(target_dir, (str, os.PathLike)):  # (a TypeError from pathlib)
            raise InvalidInput(f"target_dir must be a folder's path, got {type(target_dir).__name__} "
                               f"{checks.shown(target_dir)}")
        model = self.get(name, version)
        src = Path(model.path)
        target = checks.expand_home(target_dir) / src.name
        with writing_to(target):
            if target.exists() and not exist_ok:
                from .errors import Conflict

                raise Conflict(f"{target} exists; pass exist_ok=True to replace it")
            target.parent.mkdir(parents=True, exist_ok=True)
            if src.is_dir():
                shutil.copytree(src, target, dirs_exist_ok=True)
            else:
                shutil.copyfile(src, target)
        return str(target)


class DeploymentOperations(_Operations):
    """Scoring web services: deploy registered models behind ``score.py`` (or a default scorer)."""

    def create(self, name: str | None, models: list[str] | str, *, score: str | os.PathLike | None = None,
               host: str | None = None, port: int | None = None, auth: bool | None = None, update: bool = False,
               timeout: float = 120, request_timeout_s: float = 60.0, max_body_bytes: int = 100 * 1024 * 1024,
               environment: str | None = None, instance_type: str | None = None, workers: int | None = None):
        """Deploy (or with ``update`` swap in place); returns when the service is Healthy. ``host`` (default
        127.0.0.1), ``port`` (default: a free one), ``auth`` (default: a key) and ``workers`` (default 1): an update
        keeps the service's own unless given — its address cannot change in place — and its score.py and
        environment too (a generated default scorer is made again for the new model). ``instance_type``: the VM
        size of an Azure managed online deployment (an update keeps it too); ``workers``: processes serving it (each
        runs score.py's ``init()`` and takes requests from the same socket; on Azure, the inference server's
        WORKER_COUNT)."""
        from .services import Webservice

        request_timeout_s = checks.positive("request_timeout_s", request_timeout_s, checks.MAX_TIMEOUT_S)
        timeout = checks.positive("timeout", timeout, checks.MAX_TIMEOUT_S)
        max_body_bytes = checks.whole("max_body_bytes", max_body_bytes, 1, 2 ** 40)
        if workers is not None:
            workers = checks.whole("--workers", workers, 1, MAX_WORKERS)
        if port is not None:  # 99999, "8080x", 1.5: the service failed to start, after the whole deploy timeout
            port = checks.whole("--port", port, 1, 65535)
        if not isinstance(models, (str, list, tuple)):
            raise InvalidInput(f"name the model(s) to deploy as 'NAME[:VERSION]' or a list of them, got "
                               f"{checks.shown(models)}")
        refs = [parse_model_ref(m) for m in ([models] if isinstance(models, str) else models)]
        if name is None:
            name = default_service_name(refs[0][0]) if refs else ""
        check_service_name(name)
        capabilities = self._client.capabilities
        if update and not capabilities.remote:
            host, auth = self._as_it_is(name, host, port, auth)
        host = "127.0.0.1" if host is None else host
        auth = True if auth is None else auth
        loopback = checks.loopback_host(host)
        if not auth and not loopback:
            raise InvalidInput(f"--no-auth with --host {host}: anyone who can reach this machine could call the "
                               "service without a key; keep the key (drop --no-auth) or listen on 127.0.0.1")
        if instance_type and not capabilities.instance_types:
            raise not_supported(capabilities, "--instance-type")
        if not auth and "--no-auth" in capabilities.not_supported:
            raise not_supported(capabilities, "--no-auth")
        cores = os.cpu_count() or 1
        if workers is not None and workers > cores and not capabilities.remote:
            print(f"Note: {workers} workers on this machine's {cores} cores: each loads the model, and more than about "
                  "one per core adds memory, not requests per second.", file=sys.stderr)
        if score:
            checks.existing_file("score script", checks.expand_home(score), "the .py file with init() and run()")
        self._backend.deployments.deploy(name, refs, Path(score) if score else None, host=host, port=port,
                                         auth=auth, update=update, timeout=timeout,
                                         request_timeout_s=request_timeout_s, max_body_bytes=max_body_bytes,
                                         environment=environment, instance_type=instance_type,
                                         **({"workers": workers} if workers is not None else {}))
        return Webservice(self._client, name)

    def _as_it_is(self, name: str, host: str | None, port: int | None, auth: bool | None) -> tuple[str | None,
                                                                                                     bool | None]:
        """An update's host and key setting: the service's own unless given; a new address is refused (the
        service keeps its socket through an update — `--port 9999` was dropped without a word)."""
        try:
            current = self._backend.deployments.get(name)
        except NotFound:
            return host, auth  # (the backend says the service does not exist)
        moved = [f"--{what} {new}" for what, new, now in (("host", host, current.host), ("port", port, current.port))
                 if new is not None and new != now]
        if moved:
            raise InvalidInput(f"service {name} listens on {current.host}:{current.port}; --update keeps its address, "
                               f"so {' and '.join(moved)} cannot apply: delete it (%aml service {name} --delete) and "
                               "deploy again to move it")
        return current.host, current.auth if auth is None else auth

    def get(self, name: str):
        from .services import Webservice

        self._backend.deployments.get(name)
        return Webservice(self._client, name)

    def get_info(self, name: str):
        return self._backend.deployments.get(name)

    def list(self) -> Listing:
        return ServiceList(self._backend.deployments.list(), ("name", "state", "scoring_uri", "models", "restarts"),
                           "No services deployed yet.", "Services")

    def get_keys(self, name: str) -> tuple[str, str]:
        return self._backend.deployments.keys(name)

    def regenerate_key(self, name: str, which: str) -> None:
        if not isinstance(which, str) or which.lower() not in ("primary", "secondary"):
            raise InvalidInput(f"key type must be 'Primary' or 'Secondary', got {checks.shown(which)}")
        self._backend.deployments.regenerate_key(name, which)

    def get_logs(self, name: str, tail: int | None = None) -> str:
        return self._backend.deployments.logs(name, None if tail is None else checks.whole("tail", tail, 1, 10 ** 8))

    def delete(self, name: str) -> None:
        self._backend.deployments.delete(name)

    def build_image(self, name: str) -> str:
        """Build the service's container image with Docker; a clear error where no Docker engine runs."""
        return self._backend.deployments.build_image(name)


class EnvironmentOperations(_Operations):
    """Named, versioned package lists; runs and services use them through a cached virtualenv."""

    def register(self, name: str, spec: str | os.PathLike | list[str]):
        """From a requirements.txt, a conda-style .yml (its conda packages as pip requirements, and its pip
        section) or a list of requirements."""
        return self._backend.environments.register(name, spec)

    def get(self, name: str, version: int | None = None):
        name, version = parse_model_ref(name, version)
        return self._backend.environments.get(name, version)

    def list(self) -> Listing:
        return Listing(self._backend.environments.list(), ("name", "version", "hash", "packages"),
                       "No environments registered yet.", "Environments")

    def build(self, ref: str, progress: Callable[[str], Any] = print) -> str:
        """Build (once per content hash) and return the environment's python."""
        return self._backend.environments.python(ref, progress)


def parse_model_ref(name: str, version: int | str | None = None) -> tuple[str, int | None]:
    """``"model:3"`` → ("model", 3); ``"model"`` → ("model", None) (the latest)."""
    if version is None and ":" in str(name):
        name, _, text = str(name).rpartition(":")
        version = text
    if version is not None:
        version = checks.whole(f"the version of {name}", version if isinstance(version, int) else str(version)[:40],
                               1, 2 ** 62)
    return name, version


MAX_LIST = 100_000  # runs in one listing
MAX_WORKERS = 64  # processes of one scoring service
MAX_CONCURRENT = 10_000  # runs at once on one compute target
AMBIGUOUS = 100  # matches of a part of a run id counted before "ambiguous" (more are "more than 100")
MODEL_FILE = "a file in the model's folder, registered with it"  # where a model's long tag text goes


def check_name(what: str, name: str) -> None:
    checks.text(f"{what} name", name)
    if not name or not str(name).strip() or len(name) > 255 or any(c in name for c in "/\\") \
            or not name.isprintable():  # line breaks, terminal escapes, bidirectional overrides
        raise InvalidInput(f"{what} name {checks.shown(name)}: use 1–255 characters without slashes, line breaks or "
                           "control characters")


def _timeout(value: Any) -> float | None:
    """A wait's limit in seconds: None (no limit), 0 (look once) or more; not NaN, a string or a bool."""
    import math

    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or value < 0:
        raise InvalidInput(f"timeout={checks.shown(value)}: give seconds (0 or more), or None to wait as long as "
                           "it takes")
    return float(value)


RUN_KINDS = ("cell", "script", "notebook", "sweep", "automl", "pipeline", "batch")


def _check_submission(sub: RunSubmission) -> None:
    """What a user typed into a submission, checked before anything is written."""
    if sub.kind not in RUN_KINDS:  # a typo ran as a script; None failed deep in the store
        raise InvalidInput(f"kind={checks.shown(sub.kind)}: a run is a {', '.join(RUN_KINDS[:-1])} or {RUN_KINDS[-1]}")
    if isinstance(sub.args, (str, bytes)) or not isinstance(sub.args, (list, tuple)):  # a string ran as its letters
        raise InvalidInput(f"args={checks.shown(sub.args)}: give the script's arguments as a list, like "
                           "['--alpha', '0.5']")
    bad = [a for a in sub.args if isinstance(a, bool) or not isinstance(a, (str, numbers.Real))]  # numpy's too
    if bad:  # (numbers are passed as their text, as Azure ML's command arguments are)
        raise InvalidInput(f"argument {checks.shown(bad[0])}: arguments are text or numbers")
    sub.args = [a if isinstance(a, str) else str(a) for a in sub.args]
    if sub.kind == "cell":  # (None ran an empty cell; a number failed in the store with a TypeError)
        if not isinstance(sub.code, str):
            raise InvalidInput(f"code={checks.shown(sub.code)}: a cell run needs its Python source as text")
        checks.text("the cell's code", sub.code, empty=True)
    elif sub.code is not None and sub.kind in ("script", "notebook"):  # (was dropped without a word)
        raise InvalidInput(f"code: only a cell run takes code; a {sub.kind} run runs its {sub.kind} "
                           f"({sub.entry!s}) — leave code out, or use kind='cell'")
    for what in ("inputs", "outputs", "in_values"):  # (None failed inside with a TypeError)
        value = getattr(sub, what)
        if value is None:
            setattr(sub, what, {})
        elif not isinstance(value, dict):
            raise InvalidInput(f"{what} must be a dict of NAME: VALUE, got {type(value).__name__}")
    sub.environment_variables = checks.environment_variables("environment variables", sub.environment_variables)
    if isinstance(sub.out_vars, (str, bytes)) or not isinstance(sub.out_vars, (list, tuple)):  # "xy": x and y
        raise InvalidInput(f"out_vars={checks.shown(sub.out_vars)}: give the names as a list, like ['model']")
    for name in sub.out_vars:
        if not isinstance(name, str) or not name.isidentifier():
            raise InvalidInput(f"out_vars: {checks.shown(name)} is not a variable name")
    sub.out_vars = list(sub.out_vars)
    # (a negative limit refused every snapshot as "over the -0 MB limit"; text failed inside with a TypeError)
    sub.snapshot_max_bytes = checks.whole("snapshot_max_bytes", sub.snapshot_max_bytes, low=1)
    check_name("experiment", sub.experiment)
    if sub.display_name is not None:
        checks.text("run name", sub.display_name, max_len=checks.MAX_NAME)
    checks.tags("tags", sub.tags)
    checks.tags("params", sub.params)
    checks.text("compute name", sub.compute, max_len=checks.MAX_NAME)
    for name, value in {**sub.environment_variables, **sub.inputs}.items():
        checks.text("name", str(name), max_len=checks.MAX_NAME)
        checks.text(f"value of {name}", str(value), empty=True)
    for arg in sub.args:
        checks.text("argument", str(arg), empty=True)
    if sub.timeout_s is not None:
        checks.positive("timeout", sub.timeout_s, checks.MAX_TIMEOUT_S)
    if sub.parameters and sub.kind in ("script", "cell"):  # (were dropped without a word: only notebooks take them)
        raise InvalidInput(f"parameters {', '.join(map(str, sub.parameters))}: only a notebook run takes parameters; "
                           "give a script its values as arguments (args=[...], or after -- in %aml run)")
    sub.parameters = checks.notebook_parameters("notebook parameters", sub.parameters)
    checks.folder("source folder", sub.source_dir)
    if sub.kind in ("script", "notebook"):
        checks.entry_inside(sub.kind, sub.entry)
    _check_nesting(sub)
    if sub.kind == "notebook" and sub.source_dir and sub.entry:
        doc = _check_notebook(Path(sub.source_dir) / sub.entry)
        if sub.parameters:
            note = _parameters_note(doc, sub.parameters)
            if note:
                print(f"Note: {note}.", file=sys.stderr)
    template = getattr(sub.engine, "template", None)
    if sub.kind == "sweep" and getattr(template, "kind", None) == "notebook" and sub.source_dir and template.entry:
        again = _set_again(_check_notebook(Path(sub.source_dir) / template.entry), set(sub.engine.space))
        if again:  # every trial would run with the notebook's own value: a "best" of something that changed nothing
            number, names = again[0]
            raise InvalidInput(f"cell {number} of {template.entry} sets {', '.join(names)} after where the sweep sets "
                               f"{'it' if len(names) == 1 else 'them'}, so every trial would run with the notebook's "
                               f"own value: tag the cell that sets the defaults 'parameters' (each trial's values "
                               "then come after it), or set them there only")


def _check_nesting(sub: RunSubmission) -> None:
    """A notebook run that submits its own notebook (a ``%aml submit`` cell, the notebook then submitted whole) would
    submit it again from every run it starts: refused in the first of them. Runs that submit each other, however,
    stop at ``MAX_DEPTH`` runs deep (before, 21 runs in 40 s and counting)."""
    import json

    from .names import MAX_DEPTH, run_depth

    depth = run_depth()
    if depth >= MAX_DEPTH:
        raise InvalidInput(f"this run is {depth} runs deep (a run submitted by a run submitted by a run …): do two "
                           "notebooks or scripts submit each other? Remove the submission from one of them")
    spec_path = os.environ.get("AML_MAGICS_RUN_SPEC")
    if not depth or not spec_path or not sub.source_dir or not str(sub.entry or "").endswith(".ipynb"):
        return  # (a sweep of a notebook names it too: its trials would each sweep it again)
    try:
        spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
        running = (Path(spec_path).parent.parent / "snapshot" / spec["entry"]).resolve()
    except (OSError, ValueError, KeyError, TypeError):
        return
    if spec.get("kind") == "notebook" and (Path(sub.source_dir) / sub.entry).resolve() == running:
        what = "sweeps itself" if sub.kind == "sweep" else "submits itself"
        raise InvalidInput(f"{sub.entry} {what}: this run would start another that does the same, without end; "
                           "submit it from another notebook (or drop that cell before submitting it)")


def _parameters_note(doc: dict, parameters: dict) -> str | None:
    """What a user would want to know before a notebook runs with ``-p`` values its parameters cell does not set:
    papermill sets them anyway, and only says so in the run's log (a typo, ``-p alpah=2``, changes nothing) — or
    that a later cell sets again (the run then uses the notebook's value)."""
    import ast

    cells = [c for c in doc.get("cells", []) if isinstance(c, dict) and isinstance(c.get("metadata"), dict)
             and "parameters" in (c["metadata"].get("tags") or [])]
    again = _set_again(doc, parameters)
    later = (" — and " + "; ".join(f"cell {n} sets {', '.join(names)}" for n, names in again)
             + f" again after {'the parameters cell' if cells else 'it'}, so the run uses the notebook's "
             + ("value" if sum(len(names) for _, names in again) == 1 else "values")) if again else ""
    if not cells:
        return (f"the notebook has no cell tagged 'parameters', so the -p values are set in a new first cell{later}; "
                "tag the cell that sets the defaults 'parameters' so that they come after it")
    names: set[str] = set()
    for cell in cells:
        source = cell.get("source", "")
        try:
            tree = ast.parse("".join(source) if isinstance(source, list) else str(source))
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return None  # magics or a syntax error: papermill decides
        for node in ast.walk(tree):
            targets = node.targets if isinstance(node, ast.Assign) else \
                [node.target] if isinstance(node, (ast.AnnAssign, ast.AugAssign)) else []
            for target in targets:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
    unknown = [p for p in parameters if p not in names]
    if not unknown:
        return later[len(" — and "):] if later else None
    return (f"the notebook's parameters cell does not set {', '.join(unknown)} (it sets "
            f"{', '.join(sorted(names)) or 'nothing'}); check the spelling: -p sets "
            f"{'it' if len(unknown) == 1 else 'them'} anyway{later}")


def _set_again(doc: dict, parameters: Any) -> list[tuple[int, list[str]]]:
    """The code cells (numbered from 1) after where papermill sets the parameters (after the last cell tagged
    'parameters', else first) whose top-level statements assign one of ``parameters`` anew (``lr = 0.1``, not
    ``lr = lr * 2``), with those names: the run then uses the notebook's value, not the one given."""
    import ast

    code = [c for c in doc.get("cells", []) if isinstance(c, dict) and c.get("cell_type") == "code"]
    tagged = [i for i, c in enumerate(code) if isinstance(c.get("metadata"), dict)
              and "parameters" in (c["metadata"].get("tags") or [])]
    found = []
    for number, cell in enumerate(code[tagged[-1] + 1 if tagged else 0:], tagged[-1] + 2 if tagged else 1):
        source = cell.get("source", "")
        try:
            tree = ast.parse("".join(source) if isinstance(source, list) else str(source))
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue  # magics or a syntax error: not read
        names = set()
        for node in tree.body:
            if not isinstance(node, (ast.Assign, ast.AnnAssign)) or node.value is None:
                continue
            read = {n.id for n in ast.walk(node.value) if isinstance(n, ast.Name)}
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                names.update(n.id for n in ast.walk(target)
                             if isinstance(n, ast.Name) and n.id in parameters and n.id not in read)
        if names:
            found.append((number, sorted(names)))
    return found


def _check_notebook(path: Path) -> dict:
    """A notebook to submit is one: JSON with a list of cells, nbformat 4 (read with the standard library — not
    nbformat, which costs seconds to import) — else one line now, not a run failing in nbformat's words."""
    import json

    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except FileNotFoundError:
        raise NotFound(f"notebook {path} not found") from None
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        raise InvalidInput(f"{path.name} is not a notebook (its file is not JSON); open it in Jupyter and save it "
                           "again, or check it is the file you meant") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("cells", doc.get("worksheets")), list):
        raise InvalidInput(f"{path.name} is not a notebook (no list of cells)")
    if doc.get("nbformat") != 4:
        raise InvalidInput(f"{path.name} is an nbformat {doc.get('nbformat')!r} notebook; open it in Jupyter and "
                           "save it, which writes version 4")
    return doc
