"""``Client``: the one entry point every front end uses.

Operation groups share one resolved workspace and one backend (the azure-ai-ml ``MLClient``
shape): ``client.runs``, ``client.experiments``, ``client.computes``, ``client.datastores``,
``client.models``. Construction is cheap: the backend opens on first use.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from . import checks
from .config import WorkspaceConfig, resolve_workspace
from .errors import AmlError, InvalidInput, NotFound
from .types import (
    TERMINAL_STATES,
    ComputeTarget,
    DatastoreInfo,
    ExperimentInfo,
    Listing,
    MetricsView,
    ModelInfo,
    ModelList,
    ServiceList,
    RunInfo,
    RunList,
    RunSubmission,
    WorkspaceInfo,
)

if TYPE_CHECKING:  # pragma: no cover
    from ..backends.base import Backend
    from ..runtime.run import Run

_clients: dict[tuple[str, str], "Client"] = {}
_clients_lock = threading.Lock()


class Client:
    def __init__(self, workspace: str | os.PathLike | None = None, *, config: WorkspaceConfig | None = None):
        self.config = config or resolve_workspace(workspace)
        self._backend: "Backend | None" = None
        self._lock = threading.Lock()
        self.runs = RunOperations(self)
        self.experiments = ExperimentOperations(self)
        self.computes = ComputeOperations(self)
        self.datastores = DatastoreOperations(self)
        self.models = ModelOperations(self)
        self.deployments = DeploymentOperations(self)
        self.environments = EnvironmentOperations(self)

    @classmethod
    def shared(cls, workspace: str | os.PathLike | None = None) -> "Client":
        """One client per resolved workspace and process (so connections are shared)."""
        config = resolve_workspace(workspace)
        key = (config.backend, str(config.path))
        with _clients_lock:
            client = _clients.get(key)
            if client is None:
                client = _clients[key] = cls(config=config)
            return client

    @property
    def backend(self) -> "Backend":
        if self._backend is None:
            with self._lock:
                if self._backend is None:
                    if self.config.backend == "local":
                        from ..backends.local.backend import LocalBackend

                        self._backend = LocalBackend(self.config)
                    elif self.config.backend == "azure" and self.config.azure:
                        from ..backends.azure.backend import AzureBackend
                        from ..backends.azure.rest import WorkspaceRef

                        options = _azure_options.get(self.config.azure)
                        if options is None:  # found through config.json: sign in as Azure ML's SDKs do
                            from ..backends.azure.auth import credential

                            options = {"credential": credential("default")}
                        self._backend = AzureBackend(WorkspaceRef(*self.config.azure), **options)
                    else:
                        raise InvalidInput(f"unknown backend {self.config.backend!r}")
        return self._backend

    @classmethod
    def connect(cls, subscription: str | None = None, resource_group: str | None = None, workspace: str | None = None,
                *, device_code: bool = False, credential: Any = None, base_url: str | None = None,
                mlflow_uri: str | None = None, storage: tuple[str, str] | None = None,
                prompt: Callable[[str], Any] = print) -> "Client":
        """A client on an Azure ML workspace: named here, or from the config.json Azure ML's SDKs would find."""
        from ..backends.azure.auth import credential as make_credential
        from ..backends.azure.auth import workspace_ref
        from .config import azure_workspace_config

        ref = workspace_ref(subscription, resource_group, workspace)
        cred = make_credential("device-code" if device_code else "default", prompt=prompt, passed=credential)
        key = (ref.subscription_id, ref.resource_group, ref.workspace_name)
        _azure_options[key] = {"credential": cred, **({"base_url": base_url} if base_url else {}),
                               **({"mlflow_uri": mlflow_uri} if mlflow_uri else {}),
                               **({"storage": storage} if storage else {})}
        return cls(config=azure_workspace_config(key, "connect" if subscription else "config.json"))

    @property
    def workspace(self) -> WorkspaceInfo:
        return self.backend.workspace_info()

    def doctor(self, recover: bool = False):
        """Check the workspace (SQLite, processes, records vs files) and repair what is safe to repair.

        A damaged store is copied aside and what can be read is saved into a fresh one; ``recover`` puts that
        fresh store in place (restart other kernels of the workspace afterwards)."""
        from .errors import StoreDamaged

        try:
            backend = self.backend
        except StoreDamaged as exc:
            if exc.examine is None:
                raise
            return exc.examine(recover)
        report = backend.doctor(recover=recover)
        if recover and any(outcome == "repaired" and check == "store recovered" for check, outcome, _ in report.checks):
            with self._lock:
                self._backend = None  # this process's connection still reads the damaged file: open the new one
        return report

    def __repr__(self) -> str:
        return f"Client({self.config.describe()})"


class _Operations:
    def __init__(self, client: Client):
        self._client = client

    @property
    def _backend(self) -> "Backend":
        return self._client.backend


class RunOperations(_Operations):
    """Submit, find, watch and stop runs."""

    def handle(self, run_id: str, experiment: str | None = None) -> "Run":
        from ..runtime.run import Run

        return Run(experiment, run_id, _client=self._client, _tracking_uri=self._backend.tracking_uri)

    def submit(self, submission: RunSubmission) -> "Run":
        _check_submission(submission)
        run_id = self._backend.submit(submission)
        return self.handle(run_id, submission.experiment)

    def start_logging(self, experiment: str, display_name: str | None = None,
                      tags: dict[str, str] | None = None) -> "Run":
        _check_name("experiment", experiment)
        if display_name is not None:
            checks.text("run name", display_name, max_len=checks.MAX_NAME)
        clean = checks.tags("tags", tags or {})
        run_id = self._backend.start_interactive(experiment, display_name, {k: v or "" for k, v in clean.items()})
        return self.handle(run_id, experiment)

    def get(self, run_id: str) -> RunInfo:
        return self._backend.get_run(self.resolve_id(run_id))

    def resolve_id(self, run_id: str) -> str:
        """A full run id from a full id, ``last`` (the newest run) or a unique prefix/suffix."""
        run_id = str(run_id).strip()
        if run_id in ("last", "latest", "-1"):
            infos, _ = self._backend.list_runs(experiment=None, status=None, parent_run_id=None, limit=1, offset=0)
            if not infos:
                raise NotFound("there are no runs yet; submit one with %%aml run")
            return infos[0].run_id
        if self._backend.has_run(run_id):  # the common case, and what dashboards poll: one indexed lookup
            return run_id
        ids = self._backend.run_ids()
        matches = [i for i in ids if i.startswith(run_id) or i.endswith(run_id)] if len(run_id) >= 6 else []
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise InvalidInput(f"run id {run_id!r} is ambiguous ({len(matches)} runs match); give more of it")
        raise NotFound.with_suggestions("run", run_id, ids, hint="list runs with %aml runs")

    def list(self, experiment: str | None = None, status: str | list[str] | None = None, limit: int | None = 50,
             offset: int = 0, parent_run_id: str | None = None) -> RunList:
        if isinstance(status, str):
            status = [status]
        if status:
            from .types import RUN_STATES

            lookup = {s.lower(): s for s in RUN_STATES}
            bad = [s for s in status if s.lower() not in lookup]
            if bad:
                raise NotFound.with_suggestions("status", bad[0], RUN_STATES, hint="one of " + ", ".join(RUN_STATES))
            status = [lookup[s.lower()] for s in status]
        if limit is not None:
            limit = checks.whole("--limit", limit, 1, MAX_LIST)
        offset = checks.whole("--offset", offset, 0, checks.INT64_MAX)
        infos, total = self._backend.list_runs(experiment=experiment, status=status, parent_run_id=parent_run_id,
                                               limit=limit, offset=offset)
        query = {"experiment": experiment, "status": status, "limit": limit, "offset": offset,
                 "parent_run_id": parent_run_id}
        return RunList([self.handle(i.run_id, i.experiment) for i in infos], infos, total, query)

    def children(self, run_id: str, recursive: bool = False) -> RunList:
        run_id = self.resolve_id(run_id)
        infos, _ = self._backend.list_runs(experiment=None, status=None, parent_run_id=run_id, limit=None, offset=0)
        infos = list(reversed(infos))  # oldest child first, as trials were started
        if recursive:
            for info in list(infos):
                infos.extend(self.children(info.run_id, recursive=True).infos)
        return RunList([self.handle(i.run_id, i.experiment) for i in infos], infos)

    def cancel(self, run_id: str, wait: float | None = None, reason: str | None = None) -> RunInfo:
        run_id = self.resolve_id(run_id)
        self._backend.cancel_run(run_id, reason)
        if wait:
            return self.wait(run_id, timeout=wait, raise_on_timeout=False)
        return self.get(run_id)

    def resume(self, run_id: str) -> "Run":
        """Continue a sweep or AutoML run whose controller stopped (killed, failed or canceled)."""
        run_id = self.resolve_id(run_id)
        self._backend.resume_run(run_id)
        return self.handle(run_id)

    def get_metrics(self, run_id: str, name: str | None = None) -> dict[str, Any]:
        return self._backend.get_metrics(self.resolve_id(run_id), name=name)

    def metrics_view(self, run_id: str) -> MetricsView:
        run_id = self.resolve_id(run_id)
        return MetricsView(run_id, self._backend.get_metrics(run_id))

    def metric_series(self, run_id: str, name: str, since: int = 0):
        """New points ``[(step, ts, value)]`` of a scalar series after cursor ``since``, and the next cursor."""
        return self._backend.metric_series(run_id, name, since)

    def version(self, run_id: str) -> tuple:
        """A stamp that changes whenever the run's status, metrics, tags, children or log change."""
        return self._backend.run_version(run_id)

    def metric_names(self, run_id: str) -> list[str]:
        """Names of the run's scalar series, in the order they were first logged."""
        return self._backend.metric_names(run_id)

    def get_logs(self, run_id: str, tail: int | None = None) -> str:
        text, _ = self._backend.read_log(self.resolve_id(run_id), 0)
        if tail is not None:
            text = "\n".join(text.splitlines()[-tail:])
        return text

    def read_log(self, run_id: str, offset: int = 0) -> tuple[str, int]:
        return self._backend.read_log(run_id, offset)

    def follow_logs(self, run_id: str, poll: float = 0.1, timeout: float | None = None) -> Iterator[str]:
        """Yield log text as the run writes it, until the run has ended and the log is drained."""
        run_id = self.resolve_id(run_id)
        pace = (0.0, 1.0) if self._client.config.backend == "local" else (2.0, 10.0)  # a remote service: gently
        poll = max(poll, pace[0])
        offset, deadline, delay = 0, None if timeout is None else time.monotonic() + timeout, poll
        while True:
            status = self._backend.get_run(run_id, with_metrics=False).status
            text, offset = self._backend.read_log(run_id, offset)
            if text:
                delay = poll
                yield text
            if status in TERMINAL_STATES:
                text, offset = self._backend.read_log(run_id, offset)
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
        run_id = self.resolve_id(run_id)
        deadline = None if timeout is None else time.monotonic() + timeout
        if show_output:
            out = write or sys.stdout.write
            for text in self.follow_logs(run_id, timeout=timeout):
                out(text)
        remote = self._client.config.backend != "local"
        delay = 2.0 if remote else 0.05
        while True:
            info = self._backend.get_run(run_id, with_metrics=not remote)  # remote: metrics once, at the end
            if info.status in TERMINAL_STATES:
                return self._backend.get_run(run_id) if remote else info
            if deadline is not None and time.monotonic() > deadline:
                if raise_on_timeout:
                    raise AmlError(f"run {run_id} is still {info.status} after {timeout:g} s")
                return info
            time.sleep(delay)
            delay = min(delay * 1.5, 10.0 if remote else 0.5)

    def list_files(self, run_id: str) -> list[str]:
        return self._backend.list_files(self.resolve_id(run_id))

    def download_file(self, run_id: str, name: str, output_file_path: str | os.PathLike | None = None) -> str:
        import shutil

        run_id = self.resolve_id(run_id)
        src = self._backend.file_path(run_id, name)
        target = Path(output_file_path) if output_file_path else Path(Path(name).name)
        if target.is_dir():
            target = target / Path(name).name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, target)
        return str(target)

    def local_file(self, run_id: str, name: str) -> Path:
        """A run's file as a local path (read it, do not change it)."""
        return Path(self._backend.file_path(self.resolve_id(run_id), name))

    def best_child(self, run_id: str) -> "Run | None":
        """The completed child run with the best last value of the parent's primary metric."""
        run_id = self.resolve_id(run_id)
        info = self.get(run_id)
        metric, goal = info.spec.get("primary_metric"), info.spec.get("goal", "max")
        if not metric:
            raise InvalidInput(f"run {run_id} has no primary metric (it is not a sweep or AutoML run)")
        best = None
        for child in self.children(run_id).infos:
            v = child.latest_metrics.get(metric)
            if child.status != "Completed" or not isinstance(v, (int, float)) or v != v:
                continue
            if best is None or (v > best[0] if goal == "max" else v < best[0]):
                best = (v, child)
        return self.handle(best[1].run_id, best[1].experiment) if best else None

    def result(self, run_id: str, name: str | None = None) -> Any:
        run_id = self.resolve_id(run_id)
        info = self._backend.get_run(run_id, with_metrics=False)
        wanted = info.spec.get("out_vars") or []
        if not wanted:
            raise InvalidInput(f"run {run_id} was not submitted with --out; nothing to bring back")
        if info.status != "Completed":
            raise InvalidInput(f"run {run_id} is {info.status}; --out values come back when it has Completed")
        values = self._backend.results(run_id)
        if name is None:
            return values
        if name not in values:
            raise NotFound.with_suggestions(f"--out variable of run {run_id}", name, list(values))
        return values[name]


class ExperimentOperations(_Operations):
    def list(self) -> Listing:
        return Listing(self._backend.list_experiments(), ("name", "run_count"), "No experiments yet.", "Experiments")

    def get(self, name: str) -> ExperimentInfo:
        for e in self._backend.list_experiments():
            if e.name == name:
                return e
        raise NotFound.with_suggestions("experiment", name, [e.name for e in self._backend.list_experiments()])


class ComputeOperations(_Operations):
    def list(self) -> Listing:
        return Listing(self._backend.list_computes(), ("name", "kind", "max_concurrent", "running", "queued"),
                       "No compute targets.", "Compute targets")

    def get(self, name: str) -> ComputeTarget:
        targets = self._backend.list_computes()
        for c in targets:
            if c.name == name:
                return c
        raise NotFound.with_suggestions("compute target", name, [c.name for c in targets])

    def create(self, name: str, max_concurrent: int) -> ComputeTarget:
        checks.text("compute name", name, max_len=checks.MAX_NAME)
        return self._backend.create_compute(name, checks.whole("--max-concurrent", max_concurrent, 1, MAX_CONCURRENT))


class DatastoreOperations(_Operations):
    def list(self) -> Listing:
        return Listing(self._backend.list_datastores(), ("name", "kind", "is_default", "path"), "No datastores.",
                       "Datastores")

    def default(self) -> DatastoreInfo:
        return next(d for d in self._backend.list_datastores() if d.is_default)

    def upload(self, src: str | os.PathLike, target: str = "", datastore: str | None = None,
               overwrite: bool = False) -> list[str]:
        return self._backend.datastore_upload(Path(src), target, datastore, overwrite)

    def ls(self, path: str = "", datastore: str | None = None) -> Listing:
        return Listing(self._backend.datastore_list(path, datastore), ("path", "size"), "The datastore is empty.")

    def download(self, path: str, target: str | os.PathLike = ".", datastore: str | None = None,
                 overwrite: bool = False) -> list[str]:
        return self._backend.datastore_download(path, Path(target), datastore, overwrite)


class ModelOperations(_Operations):
    """The model registry: names with auto-incremented versions, files kept in the workspace."""

    def register(self, name: str, path: str | os.PathLike, *, run_id: str | None = None,
                 tags: dict[str, Any] | None = None, properties: dict[str, Any] | None = None,
                 description: str | None = None) -> ModelInfo:
        """Register a local file or folder — or, with ``run_id``, a file of that run (``outputs/model.pkl``)."""
        checks.text("model name", name, max_len=checks.MAX_NAME)
        tags = {k: v or "" for k, v in checks.tags("tags", tags or {}).items()}
        properties = {k: v or "" for k, v in checks.tags("properties", properties or {}).items()}
        if description is not None:
            checks.text("description", str(description), empty=True)
        if run_id is not None:
            return self._backend.register_run_model(self._client.runs.resolve_id(run_id), name, str(path), tags=tags,
                                                    properties=properties, description=description)
        return self._backend.register_model(name, Path(path).expanduser(), tags=tags, properties=properties,
                                            description=description)

    def get(self, name: str, version: int | None = None) -> ModelInfo:
        name, version = parse_model_ref(name, version)
        return self._backend.get_model(name, version)

    def list(self, name: str | None = None, tags: dict[str, str] | list[str] | None = None,
             run_id: str | None = None) -> Listing:
        models = self._backend.list_models(name=name, run_id=run_id)
        if tags:
            wanted = tags if isinstance(tags, dict) else {t: None for t in tags}
            models = [m for m in models if all(k in m.tags and (v is None or m.tags[k] == str(v))
                                               for k, v in wanted.items())]
        query = {"name": name, "tags": tags, "run_id": run_id}
        out = ModelList(models, ("name", "version", "framework", "run_id", "tags"), "No models registered yet.",
                        "Models")
        out.query = query
        return out

    def add_tags(self, name: str, version: int, tags: dict[str, Any]) -> ModelInfo:
        return self._backend.add_model_tags(name, version, tags)

    def download(self, name: str, version: int | None = None, target_dir: str | os.PathLike = ".",
                 exist_ok: bool = False) -> str:
        import shutil

        model = self.get(name, version)
        src = Path(model.path)
        target = Path(target_dir).expanduser() / src.name
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

    def create(self, name: str, models: list[str] | str, *, score: str | os.PathLike | None = None,
               host: str = "127.0.0.1", port: int | None = None, auth: bool = True, update: bool = False,
               timeout: float = 120, request_timeout_s: float = 60.0, max_body_bytes: int = 100 * 1024 * 1024,
               environment: str | None = None, instance_type: str | None = None):
        """Deploy (or with ``update`` swap in place); returns when the service is Healthy. ``instance_type``:
        the VM size of an Azure managed online deployment."""
        from .services import Webservice

        if request_timeout_s <= 0 or max_body_bytes <= 0:
            raise InvalidInput("request_timeout_s and max_body_bytes must be positive")
        if instance_type and self._client.config.backend != "azure":
            raise InvalidInput("instance_type is for Azure endpoints; a local service runs on this machine")
        refs = [parse_model_ref(m) for m in ([models] if isinstance(models, str) else models)]
        self._backend.deployments.deploy(name, refs, Path(score) if score else None, host=host, port=port,
                                         auth=auth, update=update, timeout=timeout,
                                         request_timeout_s=request_timeout_s, max_body_bytes=max_body_bytes,
                                         environment=environment,
                                         **({"instance_type": instance_type} if instance_type else {}))
        return Webservice(self._client, name)

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
        self._backend.deployments.regenerate_key(name, which)

    def get_logs(self, name: str, tail: int | None = None) -> str:
        return self._backend.deployments.logs(name, tail)

    def delete(self, name: str) -> None:
        self._backend.deployments.delete(name)

    def build_image(self, name: str) -> str:
        """Build the service's container image with Docker; a clear error where no Docker engine runs."""
        return self._backend.deployments.build_image(name)


class EnvironmentOperations(_Operations):
    """Named, versioned package lists; runs and services use them through a cached virtualenv."""

    def register(self, name: str, spec: str | os.PathLike | list[str]):
        """From a requirements.txt, a conda-style .yml (its pip section) or a list of requirements."""
        return self._backend.register_environment(name, spec)

    def get(self, name: str, version: int | None = None):
        name, version = parse_model_ref(name, version)
        return self._backend.get_environment(name, version)

    def list(self) -> Listing:
        return Listing(self._backend.list_environments(), ("name", "version", "hash", "packages"),
                       "No environments registered yet.", "Environments")

    def build(self, ref: str, progress: Callable[[str], Any] = print) -> str:
        """Build (once per content hash) and return the environment's python."""
        return self._backend.environment_python(ref, progress)


_azure_options: dict[tuple, dict] = {}  # credentials stay in memory, per workspace, never in a config


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
MAX_CONCURRENT = 10_000  # runs at once on one compute target


def _check_name(what: str, name: str) -> None:
    checks.text(f"{what} name", name)
    if not name or not str(name).strip() or len(name) > 255 or any(c in name for c in "/\\\n\r\t"):
        raise InvalidInput(f"{what} name {name!r}: use 1–255 characters without slashes or line breaks")


def _check_submission(sub: RunSubmission) -> None:
    """What a user typed into a submission, checked before anything is written."""
    _check_name("experiment", sub.experiment)
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
