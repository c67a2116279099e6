"""``azureml.core``: Workspace, Experiment, Run, ScriptRunConfig, RunConfiguration — the v1 objects, each a thin
shape over ``core.Client`` (the same runs, experiments and workspace the ``%aml`` magics use)."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

from ..core import checks
from ..core.config import find_azure_config, is_azure_config, read_azure_config
from ..core.errors import InvalidInput, NotFound, NotSupported
from ..core.run import Run as _CoreRun
from ..core.run import _OfflineRun
from ..core.types import RunSubmission
from ..core.workspace import Experiment as _CoreExperiment
from ..core.workspace import Workspace as _CoreWorkspace
from . import client as _current_client
from . import client_of
from . import V1Names, note_once, set_client, unknown_settings

VERSION = "1.60.0"
INPUTS_ENV = "AML_MAGICS_V1_INPUTS"  # a run's named dataset inputs: name → {kind, local path}  # the last azureml-core release this layer follows (its API, not its code)

__all__ = ["VERSION", "Workspace", "Experiment", "Run", "ScriptRun", "ScriptRunConfig", "RunConfiguration",
           "DockerConfiguration", "DEFAULT_CPU_IMAGE", "DEFAULT_GPU_IMAGE",
           "Environment", "Model", "Dataset", "Datastore", "ComputeTarget", "Webservice", "Image",
           "InteractiveLoginAuthentication", "ServicePrincipalAuthentication", "get_run"]

#: the names ``azureml.core`` exports from its other modules (resolved when first asked for)
_ELSEWHERE = {
    "Environment": "environment", "ComputeTarget": "compute", "Model": "deploy", "Webservice": "deploy",
    "Image": "deploy", "Dataset": "data", "Datastore": "data", "CondaDependencies": "environment",
}


def __getattr__(name: str):
    if name in _ELSEWHERE:
        import importlib

        value = getattr(importlib.import_module(f"aml_magics.v1.{_ELSEWHERE[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(name)


# -- authentication: accepted (the workspace's own sign-in is %aml connect) ----------------------------------

class InteractiveLoginAuthentication:
    def __init__(self, *args: Any, **kwargs: Any):
        note_once("auth", "v1 authentication objects are accepted; the sign-in itself is `%aml connect` "
                          "(azure-identity), or none for the local workspace")


ServicePrincipalAuthentication = MsiAuthentication = AzureCliAuthentication = InteractiveLoginAuthentication


# -- Workspace ------------------------------------------------------------------------------------------------

class Workspace(_CoreWorkspace):
    """v1's ``Workspace``: ``from_config()``, ``get(...)``, ``Workspace(subscription_id, resource_group,
    workspace_name)``, ``create(...)``. On the local workspace the subscription and resource group are names only;
    after ``%aml connect`` (or with an Azure ``config.json``) they are the Azure ML workspace's."""

    def __init__(self, subscription_id: str | None = None, resource_group: str | None = None,
                 workspace_name: str | None = None, auth: Any = None, _location: str | None = None, *,
                 _client: Any = None, **other: Any):
        unknown_settings("Workspace", Workspace.__init__, other)
        if _client is None:
            _client = _resolve(subscription_id, resource_group, workspace_name)
        super().__init__(_client)
        set_client(_client)
        self._v1 = {"subscription_id": subscription_id, "resource_group": resource_group, "location": _location}

    @classmethod
    def from_config(cls, path: str | None = None, auth: Any = None, _logger: Any = None,
                    _file_name: str | None = None) -> "Workspace":
        """The workspace ``config.json`` names (searched upward from ``path`` or the current folder, in ``.azureml/``
        too, as v1 did); with none, the local workspace — said once."""
        found = find_azure_config(path) if path is None or checks.path_kind("path", path) == "folder" else Path(path)
        if found is not None and Path(found).is_file():
            try:
                ref = read_azure_config(Path(found))
            except Exception as exc:  # noqa: BLE001 - another tool's config.json: the local workspace, below
                ref = None
                if is_azure_config(Path(found)):  # meant for Azure ML, but damaged: never silently local
                    why = exc if isinstance(exc, InvalidInput) else f"cannot read {found}: {exc}"
                    raise InvalidInput(f"{why} (or remove it to use the local workspace)") from None
            if ref:
                return cls(ref["subscription_id"], ref["resource_group"], ref["workspace_name"])
        client = _current_client()
        if client.config.backend == "local":
            note_once("from_config", f"no Azure ML config.json here: Workspace.from_config() is the local workspace "
                                     f"{client.config.name!r} ({client.config.path}); `%aml connect` for Azure ML")
        return cls(_client=client)

    @classmethod
    def get(cls, name: str, auth: Any = None, subscription_id: str | None = None, resource_group: str | None = None,
            location: str | None = None, **other: Any) -> "Workspace":
        unknown_settings("Workspace.get", Workspace.get, other)
        checks.text("workspace name", name)
        return cls(subscription_id, resource_group, name, _location=location)

    @classmethod
    def create(cls, name: str, auth: Any = None, subscription_id: str | None = None,
               resource_group: str | None = None, location: str | None = None, create_resource_group: bool = True,
               exist_ok: bool = False, show_output: bool = True, **other: Any) -> "Workspace":
        """Local: the named local workspace, made when missing. Creating an Azure ML workspace is the portal's or
        the az CLI's job: connect to one with ``%aml connect``."""
        unknown_settings("Workspace.create", Workspace.create, other)
        client = _current_client()
        if client.config.backend != "local":
            try:
                ws = cls(subscription_id, resource_group, name, _location=location)
                ws.info()
                return ws
            except NotFound:
                raise NotSupported(f"creating Azure ML workspace {name!r} is not done from here: create it in the "
                                   "Azure portal (or `az ml workspace create`), then `%aml connect`") from None
        ws = cls(subscription_id, resource_group, name, _location=location)
        if show_output:
            print(f"Workspace {name!r}: the local workspace at {ws.client.config.path}")
        return ws

    @classmethod
    def list(cls, subscription_id: str | None = None, auth: Any = None, resource_group: str | None = None):
        return {_current_client().config.name: [cls(_client=_current_client())]}

    # -- what v1 reads from a workspace --------------------------------------------------------------------

    @property
    def subscription_id(self) -> str:
        azure = self.client.config.azure
        return azure[0] if azure else (self._v1.get("subscription_id") or "local")

    @property
    def resource_group(self) -> str:
        azure = self.client.config.azure
        return azure[1] if azure else (self._v1.get("resource_group") or "local")

    @property
    def location(self) -> str:
        if self.client.config.backend == "local":
            return self._v1.get("location") or "local"
        return getattr(self.info(), "location", None) or "unknown"

    @property
    def experiments(self) -> dict[str, "Experiment"]:
        return {e.name: Experiment(self, e.name) for e in self.client.experiments.list()}

    @property
    def compute_targets(self) -> dict:
        from .compute import ComputeTarget

        return {c.name: ComputeTarget._wrap(self, c) for c in self.client.computes.list()}

    @property
    def datastores(self) -> dict:
        from .data import Datastore

        return {d.name: Datastore._wrap(self, d) for d in self.client.datastores.list()}

    def get_default_datastore(self):
        from .data import Datastore

        return Datastore._wrap(self, self.client.datastores.default())

    @property
    def environments(self) -> dict:
        from .environment import Environment

        return {e.name: Environment._from_registered(e) for e in self.client.environments.list()}

    @property
    def models(self) -> dict:
        from .deploy import Model

        return {m.name: Model._from_info(self, m) for m in self.client.models.list()}

    @property
    def webservices(self) -> dict:
        from .deploy import Webservice

        return {s.name: Webservice._wrap(self, s.name) for s in self.client.deployments.list()}

    def write_config(self, path: str | None = None, file_name: str | None = None) -> str | None:
        """v1's config.json (subscription, resource group, workspace) — of an Azure ML workspace only: a local one
        needs none (``Workspace.from_config()`` finds it without)."""
        azure = self.client.config.azure
        if not azure:  # (a v1 notebook's setup cell calls it: it went on with an error here)
            note_once("write_config", "write_config(): nothing written — the local workspace needs no config.json "
                                      "(Workspace.from_config() finds it); it writes one of an Azure ML workspace, "
                                      "after %aml connect")
            return None
        folder = Path(path or ".") / ".azureml"
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / (file_name or "config.json")
        target.write_text(json.dumps({"subscription_id": azure[0], "resource_group": azure[1],
                                      "workspace_name": azure[2]}, indent=2))
        return str(target)

    def get_details(self) -> dict:
        info = self.info()
        return {"name": self.name, "location": self.location, "subscriptionId": self.subscription_id,
                "resourceGroup": self.resource_group, "kind": self.client.config.backend,
                "description": str(info)}


def _resolve(subscription_id, resource_group, workspace_name):
    """The client for ``Workspace(sub, rg, name)``: the current one when it is that workspace (or when only a
    name is given for the local workspace); Azure ML when connected to Azure; else the named local workspace."""
    from ..core.client import Client
    from ..core.config import default_workspace_path

    current = _current_client()
    config = current.config
    if config.backend == "azure":
        if not workspace_name or (subscription_id, resource_group, workspace_name) == tuple(config.azure or ()):
            return current
        if subscription_id and resource_group:
            return Client.connect(subscription_id, resource_group, workspace_name)
        return current
    if not workspace_name or workspace_name == config.name:
        return current
    if not isinstance(workspace_name, str) or not workspace_name.strip() or "/" in workspace_name \
            or workspace_name.startswith("."):
        raise InvalidInput(f"workspace name {workspace_name!r}: use letters, digits, '-' and '_'")
    path = default_workspace_path().parent / workspace_name
    if path.exists():
        note_once(f"ws:{workspace_name}", f"workspace {workspace_name!r} is a local workspace here "
                                          "(`%aml connect` first to use Azure ML)")
    else:  # v1 would refuse a workspace that does not exist; here it is made — say so, a typo shows at once
        note_once(f"ws:{workspace_name}", f"workspace {workspace_name!r} did not exist: it is a new, empty local "
                                          f"workspace at {path} (check the name if you expected your runs there; "
                                          "`%aml connect` first to use Azure ML)")
    return Client.shared(path)


# -- Run ------------------------------------------------------------------------------------------------------

class Run(V1Names, _CoreRun):
    """v1's ``Run``: the in-run logging API (``Run.get_context()``) and the handle of a submitted run."""

    _v1_context: "Run | None" = None
    _V1_HAS = ("a run here logs (log, log_list, log_row, log_table, log_image …), keeps files (upload_file, "
               "upload_folder, download_files), tags and registers models — see the README's v1 table")

    @classmethod
    def get_context(cls, allow_offline: bool = True, **_ignored: Any) -> "Run":
        """The run this code executes in (the same one ``aml_magics.Run.get_context()`` gives, with v1's extras:
        ``input_datasets``, ``get_portal_url`` …); an offline run outside one."""
        context = _CoreRun.get_context(allow_offline=allow_offline)
        if isinstance(context, Run):
            return context
        if isinstance(context, _OfflineRun):  # outside a run: the offline run (it prints what it is given), v1's
            return _OfflineV1Run()            # names on it too
        if Run._v1_context is None or Run._v1_context.id != context.id:
            Run._v1_context = Run(context._experiment, context.id, _client=context._client,
                                  _tracker=context._tracker, _check=False)
        return Run._v1_context

    @staticmethod
    def get(workspace: Any, run_id: str) -> "Run":
        """v1's ``Run.get(ws, run_id)``: the workspace's run of that id (a unique part of one, or ``last``, too)."""
        workspace = workspace if workspace is not None else Workspace.from_config()
        client = client_of(workspace, "Run.get(workspace, run_id)")
        run_id = client.runs.resolve_id(run_id)
        experiment = client.runs.get(run_id, with_metrics=False).experiment
        return Run(Experiment(workspace, experiment), run_id, _client=client, _check=False)

    def log(self, name: str, value: Any, description: str = "", step: int | None = None) -> None:
        """v1's order: ``run.log(name, value, description)`` (the third argument is a description, not a step)."""
        if description is not None and not isinstance(description, str):
            raise InvalidInput(f"run.log({name!r}, value, description): the third argument is a description "
                               f"(text); give a step as step={description!r}")
        super().log(name, value, step=step, description=description or "")

    def get_portal_url(self) -> str:
        """A link that opens the run's view in JupyterLab (``/lab?aml-run=RUN_ID``, under JupyterHub's prefix when
        there is one); in the notebook, ``%aml show RUN`` shows the same."""
        from urllib.parse import quote

        prefix = (os.environ.get("JUPYTER_SERVER_URL") or os.environ.get("JUPYTERHUB_SERVICE_PREFIX") or "").rstrip("/")
        return f"{prefix}/lab?aml-run={quote(self.id, safe='')}"

    def get_properties(self) -> dict:
        info = self.get_info()
        return {**dict(getattr(info, "params", {}) or {}), **{k: str(v) for k, v in (info.tags or {}).items()}}

    def add_properties(self, properties: dict) -> None:
        """v1's properties (kept as the run's parameters: shown beside its metrics, returned by get_properties)."""
        if not isinstance(properties, dict):
            raise InvalidInput(f"add_properties takes a dict of NAME: VALUE, got {type(properties).__name__}")
        self.set_params(properties)

    def upload_files(self, names: list, paths: list, return_artifacts: bool = False, **other: Any) -> list[str]:
        """Each of ``paths`` kept as the artifact of the same place in ``names`` — every path checked first."""
        unknown_settings("upload_files", Run.upload_files, other)
        for what, values in (("names", names), ("paths", paths)):
            if not isinstance(values, (list, tuple)):
                raise InvalidInput(f"upload_files: {what} must be a list (one per file), got {type(values).__name__}")
        names, paths = list(names), list(paths)
        if len(names) != len(paths):
            raise InvalidInput(f"upload_files: {len(names)} names for {len(paths)} paths; give one name per path")
        for name, path in zip(names, paths):
            checks.artifact_name(name)
            if not os.path.isfile(path):
                raise InvalidInput(f"upload_files: {path} is not a file (nothing was uploaded)")
        return [self.upload_file(n, p) for n, p in zip(names, paths)]

    def upload_folder(self, name: str, path: str, **other: Any) -> list[str]:
        """Every file under ``path`` kept as ``name/<its path inside the folder>``."""
        unknown_settings("upload_folder", Run.upload_folder, other)
        from pathlib import Path

        folder = Path(os.path.expanduser(str(path)))
        if not folder.is_dir():
            raise InvalidInput(f"upload_folder: {path} is not a folder")
        files = sorted(f for f in folder.rglob("*") if f.is_file())
        prefix = str(name).replace("\\", "/").strip("/")
        return self.upload_files([f"{prefix}/{f.relative_to(folder).as_posix()}" for f in files], files)

    def download_files(self, prefix: str | None = None, output_directory: str | None = None,
                       append_prefix: bool = True, **other: Any) -> list[str]:
        """The run's files under ``prefix`` (all without one) into ``output_directory`` (default: here)."""
        unknown_settings("download_files", Run.download_files, other)
        from pathlib import Path

        wanted = checks.text("download_files: prefix", prefix or "", empty=True).strip("/")
        names = [n for n in self.get_file_names() if not wanted or n == wanted or n.startswith(wanted + "/")]
        if wanted and not names:
            raise NotFound(f"run {self.id} has no files under {prefix!r}; see run.get_file_names()")
        base = Path(output_directory or ".")

        def where(n: str) -> Path:  # append_prefix=False: the path inside the prefix (a file asked by name: its name)
            return base / n if append_prefix or not wanted else base / (n[len(wanted):].lstrip("/") or Path(n).name)

        return [self.download_file(n, where(n)) for n in names]

    def _log_v1_schema(self, kind: str, name: str, value: Any, description: str = "") -> None:
        """v1's log_confusion_matrix / log_accuracy_table / log_residuals / log_predictions: the JSON value as
        given (a dict, or its JSON text), kept whole as a table metric."""
        import json

        if isinstance(value, (str, bytes)):
            try:
                value = json.loads(value)
            except ValueError:
                raise InvalidInput(f"{kind}({name!r}, value): the value is not JSON; give a dict or its JSON "
                                   "text") from None
        if not isinstance(value, dict):
            raise InvalidInput(f"{kind}({name!r}, value): give a dict (like {{'schema_type': …, 'data': …}}) or "
                               f"its JSON text, not {type(value).__name__}")
        checks.metric_name(name)  # a structured value (schema_type, data), not columns: not log_table's check
        self.tracker.log_record(self.id, name, "table", value)

    def log_confusion_matrix(self, name: str, value: Any, description: str = "") -> None:
        self._log_v1_schema("log_confusion_matrix", name, value, description)

    def log_accuracy_table(self, name: str, value: Any, description: str = "") -> None:
        self._log_v1_schema("log_accuracy_table", name, value, description)

    def log_residuals(self, name: str, value: Any, description: str = "") -> None:
        self._log_v1_schema("log_residuals", name, value, description)

    def log_predictions(self, name: str, value: Any, description: str = "") -> None:
        self._log_v1_schema("log_predictions", name, value, description)

    def get_output(self, metric: str | None = None, iteration: int | None = None,
                   **_ignored: Any) -> tuple["Run", Any]:
        """Of an AutoML run: (best child, fitted model) — or of the child run with ``iteration`` (0-based), or the
        best by ``metric``."""
        if metric is None and iteration is None:
            from .automl import as_pipeline

            best, model = super().get_output()
            return _v1_run(best), as_pipeline(model)
        from .automl import child_output

        return child_output(self, metric=metric, iteration=iteration)

    def get_best_run_by_primary_metric(self, include_failed: bool = True, include_canceled: bool = True,
                                       include_resume_from_runs: bool = True, **_ignored: Any):
        best = super().get_best_run_by_primary_metric()
        return _v1_run(best) if best is not None else None

    def get_metrics(self, name: str | None = None, recursive: bool = False, run_type: str | None = None,
                    populate: bool = False, **other: Any) -> dict:
        """v1's ``get_metrics``: name → value (a series as a list); a name the run never logged is ``{}`` (v1's,
        where ours raises NotFound naming those it did); ``recursive=True``: run id → its metrics, for this run and
        every descendant that logged any."""
        checks.misspelt("get_metrics", Run.get_metrics, other)
        if name is not None:
            checks.metric_name(name)

        def of(run: "_CoreRun") -> dict:
            if name is None:
                return _CoreRun.get_metrics(run)
            try:
                return _CoreRun.get_metrics(run, name)
            except NotFound:
                return {}

        if not recursive:
            return of(self)
        if run_type:
            note_once("get_metrics.run_type",
                      "get_metrics(run_type=…) is not used here: the metrics of runs of every type are returned")
        runs = [self, *super().get_children(recursive=True)]
        return {run.id: metrics for run in runs if (metrics := of(run))}

    def get_children(self, recursive: bool = False, tags: Any = None, properties: Any = None, type: Any = None,
                     status: str | None = None, **other: Any) -> Iterator["Run"]:
        unknown_settings("get_children", Run.get_children, other)  # said at the call, not at the first item
        match = _v1_filter("get_children", tags, properties, type)
        return (_v1_run(child) for child in super().get_children(recursive=recursive)
                if (status is None or child.get_status() == status) and match(child))

    def register_model(self, model_name: str, model_path: str | None = None, tags: dict | None = None,
                       properties: dict | None = None, description: str | None = None, **other: Any):
        """The run's file or folder as the next version of ``model_name`` (a v1 ``Model``; ``model_framework``,
        ``datasets`` and v1's other settings are taken and not used)."""
        from .deploy import Model

        checks.misspelt("register_model", Run.register_model, other)

        if not model_path:
            raise InvalidInput("register_model(model_name, model_path='outputs/model.pkl'): give the run's file")
        info = super().register_model(model_name, model_path, tags=tags, properties=properties,
                                      description=description)
        return Model._from_info(Workspace(_client=self.client), info)

    @property
    def input_datasets(self) -> dict:
        """In a run's script: the datasets the notebook passed ``as_named_input(name)`` — a TabularDataset (its
        ``to_pandas_dataframe()``), or a FileDataset's local path (as v1 gave a mounted one)."""
        from .data import TabularDataset

        out: dict = {}
        for name, entry in json.loads(os.environ.get(INPUTS_ENV, "{}") or "{}").items():
            # the run input's path where the run runs (AZURE_ML_INPUT_<input>, set here and by Azure ML alike)
            path = os.environ.get(f"AZURE_ML_INPUT_{entry.get('input')}") or entry.get("path")
            if path is None:
                continue
            if entry.get("kind") != "TabularDataset":
                out[name] = path  # a FileDataset: the folder it is in (of a pattern: the folder before it)
                continue
            if entry.get("pattern"):  # a dataset like (datastore, "weather/*.csv"): its files in the input's folder
                path = f"{path.rstrip('/')}/{entry['pattern']}"
            out[name] = TabularDataset([path], separator=entry.get("separator", ","),
                                       header=entry.get("header", True))
            out[name].name = name
        return out

    def get_steps(self) -> list["Run"]:
        """A pipeline run's step runs, in the order they started."""
        return [_v1_run(self.client.runs.handle(c.run_id, c.experiment))
                for c in self.client.pipelines.steps(self.id).values()]

    def find_step_run(self, name: str) -> list["Run"]:
        """The step runs of a pipeline run named ``name`` (v1 returns a list)."""
        return [_v1_run(self.client.runs.handle(c.run_id, c.experiment))
                for step, c in self.client.pipelines.steps(self.id).items() if name in (step, c.display_name)]

    def get_details_with_logs(self) -> dict:
        details = self.get_details()
        details["logFiles"] = {"user_logs/std_log.txt": self.get_logs()}
        return details

    def get_all_logs(self, destination: str | os.PathLike | None = None) -> list[str]:
        """v1's: the run's logs written into ``destination`` (default ``assets/RUN_ID`` here); their paths."""
        folder = Path(destination) if destination else Path("assets") / self.id
        if folder.exists() and not folder.is_dir():
            raise InvalidInput(f"get_all_logs: {checks.shown(str(folder))} exists and is not a folder; give a folder")
        out = []
        for name, text in self.get_details_with_logs()["logFiles"].items():
            target = folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8", errors="replace")
            out.append(str(target))
        return out

    def continue_experiment(self, X: Any = None, y: Any = None, training_data: Any = None,
                            experiment_timeout_minutes: float | None = None, iterations: int | None = None,
                            **kwargs: Any) -> "Run":
        """Of an AutoML run: a new AutoML run with the same settings and a new budget (its trials start afresh;
        the first run's models stay as they are)."""
        from .automl import continue_automl

        return continue_automl(self, X=X, y=y, training_data=training_data,
                               experiment_timeout_minutes=experiment_timeout_minutes, iterations=iterations)


ScriptRun = HyperDriveRun = Run


def _v1_filter(what: str, tags: Any, properties: Any, run_type: Any) -> Callable[[Any], bool]:
    """v1's ``tags=`` / ``properties=`` of ``get_runs`` and ``get_children``: a name (the run has it) or a dict
    (the run has each with that value); they were taken and not applied, so every run came back."""
    wanted = {}
    for label, value in (("tags", tags), ("properties", properties)):
        if value is None:
            continue
        if isinstance(value, str):
            value = {value: None}
        if not isinstance(value, dict):
            raise InvalidInput(f"{what}({label}=…) takes a name or a dict of name: value, not "
                               f"{type(value).__name__}")
        wanted[label] = {str(k): None if v is None else str(v) for k, v in value.items()}
    if run_type is not None:
        note_once(f"{what}-type", f"{what}(type=…) is not used here: runs of every type are listed")

    def match(run: Any) -> bool:
        for label, pairs in wanted.items():
            have = run.get_tags() if label == "tags" else Run.get_properties(run)
            if any(k not in have or (v is not None and str(have[k]) != v) for k, v in pairs.items()):
                return False
        return True

    return match


def _v1_run(run: _CoreRun) -> Run:
    if isinstance(run, Run):
        return run
    return Run(run._experiment, run.id, _client=run.client, _check=False)


def get_run(experiment: "Experiment", run_id: str, **_ignored: Any) -> Run:
    return Run(experiment, run_id, _client=experiment.workspace.client)


# -- Experiment -------------------------------------------------------------------------------------------------

class _OfflineV1Run(_OfflineRun, Run):
    """The offline run with v1's methods (``run.upload_folder`` in a script started by hand prints what it keeps)."""


class Experiment(_CoreExperiment):
    """v1's ``Experiment(workspace, name)``: ``submit(config)`` for a ScriptRunConfig, an Estimator, a
    HyperDriveConfig or an AutoMLConfig; ``start_logging()`` for interactive runs."""

    def __init__(self, workspace: Any, name: str, _skip_name_validation: bool = False, **_ignored: Any):
        super().__init__(workspace if workspace is not None else Workspace.from_config(), name)

    def submit(self, config: Any, tags: dict | None = None, **kwargs: Any) -> Run:
        submit = getattr(config, "_aml_submit", None)
        if submit is None:
            raise InvalidInput(f"Experiment.submit() takes a ScriptRunConfig, an Estimator, a HyperDriveConfig or an "
                               f"AutoMLConfig, not {type(config).__name__}")
        run = submit(self, tags=dict(tags or {}), **kwargs)
        return _v1_run(run)

    def start_logging(self, *args: Any, snapshot_directory: Any = None, outputs: Any = None,
                      display_name: str | None = None, tags: dict | None = None, **other: Any) -> Run:
        checks.misspelt("start_logging", Experiment.start_logging, other)
        return _v1_run(super().start_logging(display_name=display_name, tags=tags))

    def get_runs(self, type: Any = None, tags: Any = None, properties: Any = None,
                 include_children: bool = False, **other: Any) -> Iterator[Run]:
        unknown_settings("get_runs", Experiment.get_runs, other)  # said at the call, not at the first item
        match = _v1_filter("get_runs", tags, properties, type)
        return (_v1_run(run) if isinstance(run, _CoreRun) else run
                for run in super().get_runs(include_children=include_children) if match(run))

    @staticmethod
    def list(workspace: "Workspace", experiment_name: str | None = None, **_ignored: Any) -> list["Experiment"]:
        client_of(workspace, "Experiment.list(workspace)")
        return [Experiment(workspace, name) for name in workspace.experiments
                if experiment_name is None or name == experiment_name]

    def archive(self) -> None:
        raise NotSupported("experiments are not archived here; their runs stay listed (%aml runs -e NAME)")


# -- ScriptRunConfig / RunConfiguration ---------------------------------------------------------------------------

#: v1's base image names (``env.docker.base_image = DEFAULT_CPU_IMAGE``): accepted; runs here are processes
DEFAULT_CPU_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04"
DEFAULT_GPU_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-cuda11.1-cudnn8-ubuntu20.04"


class DockerConfiguration:
    """``ScriptRunConfig(docker_runtime_config=DockerConfiguration(use_docker=True))``: accepted and noted."""

    def __init__(self, use_docker: bool = False, arguments: list | None = None, shared_volumes: bool = True,
                 shm_size: str | None = None):
        self.use_docker, self.arguments, self.shm_size = use_docker, list(arguments or []), shm_size
        if use_docker:
            note_once("docker-runtime", "DockerConfiguration(use_docker=True) is accepted; runs here are processes "
                                        "in the environment's Python")


class RunConfiguration:
    """v1's run configuration: its ``environment`` and ``target`` are used; Docker, MPI and the rest are noted."""

    def __init__(self, script: str | None = None, arguments: list | None = None, framework: str | None = None,
                 communicator: str | None = None, conda_dependencies: Any = None, **other: Any):
        from .environment import Environment

        unknown_settings("RunConfiguration", RunConfiguration.__init__, other)

        self.script = script
        self.arguments = list(arguments or [])
        self.target = "local"
        self.environment = Environment("default-environment")
        if conda_dependencies is not None:
            self.environment.python.conda_dependencies = conda_dependencies
        self.node_count = 1
        self.max_run_duration_seconds = None

    @property
    def docker(self):
        return self.environment.docker

    @property
    def python(self):
        return self.environment.python


class ScriptRunConfig:
    """v1's ``ScriptRunConfig``: a script of ``source_directory`` with ``arguments``, on ``compute_target``, in
    ``environment`` (or ``run_config.environment``)."""

    def __init__(self, source_directory: str = ".", script: str | None = None, arguments: list | None = None,
                 run_config: RunConfiguration | None = None, _telemetry_values: Any = None,
                 compute_target: Any = None, environment: Any = None, distributed_job_config: Any = None,
                 resume_from: Any = None, max_run_duration_seconds: int | None = None, command: Any = None,
                 docker_runtime_config: Any = None):
        if command is not None and script is None:
            parts = command if isinstance(command, list) else str(command).split()
            if len(parts) >= 2 and parts[0] in ("python", "python3") and parts[1].endswith(".py"):
                script, arguments = parts[1], parts[2:] + list(arguments or [])
            else:
                raise NotSupported("ScriptRunConfig(command=...) runs a Python script here: command='python "
                                   "train.py …' (or script='train.py', arguments=[…])")
        self.source_directory = source_directory or "."
        self.script = script
        self.arguments = script_arguments("ScriptRunConfig", arguments)
        self.run_config = run_config or RunConfiguration()
        if compute_target is not None:
            self.run_config.target = compute_target
        if environment is not None:
            self.run_config.environment = environment
        if distributed_job_config is not None:
            note_once("distributed", "distributed_job_config is accepted; a run here is one process")
        if max_run_duration_seconds is not None:  # as v1 does: the run configuration's limit
            checks.positive("max_run_duration_seconds", max_run_duration_seconds, checks.MAX_TIMEOUT_S)
            self.run_config.max_run_duration_seconds = max_run_duration_seconds

    @property
    def max_run_duration_seconds(self) -> float | None:
        return self.run_config.max_run_duration_seconds

    @max_run_duration_seconds.setter
    def max_run_duration_seconds(self, value: float | None) -> None:
        self.run_config.max_run_duration_seconds = value  # checked when the run is submitted

    def _submission(self, experiment: Experiment, tags: dict | None = None) -> RunSubmission:
        """The ``RunSubmission`` of this script (also the trial of a HyperDriveConfig)."""
        from .compute import compute_name
        from .environment import environment_ref

        if not self.script or not isinstance(self.script, (str, os.PathLike)):
            raise InvalidInput(f"ScriptRunConfig needs script='train.py' (a file of source_directory), got "
                               f"{checks.shown(self.script)}")
        checks.folder("ScriptRunConfig: source_directory", os.path.expanduser(str(self.source_directory)))
        source = Path(os.path.expanduser(str(self.source_directory))).resolve()
        script_inside("ScriptRunConfig", source, self.script)
        if checks.path_kind("ScriptRunConfig: script", source / self.script) != "file":
            raise InvalidInput(f"ScriptRunConfig: no script {self.script!r} in {source}")
        from .data import _StepOutput, _staged_uri

        client = experiment.workspace.client
        limit = getattr(self.run_config, "max_run_duration_seconds", None)  # the system cancels the run after it
        args, inputs, named, outputs = [], {}, {}, {}
        for a in self.arguments:
            if isinstance(a, _StepOutput):  # OutputFileDatasetConfig: a folder the run writes, kept in the datastore
                import uuid

                key = _input_name(a.name, outputs)
                outputs[key] = f"datastore:{client.datastores.default().name}/azureml/{uuid.uuid4().hex[:12]}/{key}"
                args.append("${{outputs.%s}}" % key)
                continue
            uri = _datastore_uri(a) or _staged_uri(a, client)
            if uri is None:
                args.append(_arg(a))
                continue
            # a datastore path or a dataset of one: a run input (${{inputs.NAME}}, the path the run reads, on
            # the local workspace and on Azure ML alike)
            name = _input_name(getattr(a, "_input_name", None) or f"input_{len(inputs) + 1}", inputs)
            inputs[name] = uri
            args.append("${{inputs.%s}}" % name)
            if getattr(a, "_input_name", None):  # run.input_datasets["x"] in the script: the input's path there
                named[a._input_name] = {"kind": type(a).__name__, "input": name, "pattern": _pattern_of(a),
                                         **(a._settings() if hasattr(a, "_settings") else {})}
        return RunSubmission(
            kind="script", experiment=experiment.name, source_dir=source, entry=str(self.script),
            compute=compute_name(client, self.run_config.target), args=args, inputs=inputs, outputs=outputs,
            tags={k: str(v) for k, v in (tags or {}).items()},
            timeout_s=None if limit is None else checks.positive("max_run_duration_seconds", limit,
                                                                 checks.MAX_TIMEOUT_S),
            environment=environment_ref(client, self.run_config.environment),
            environment_variables={**checks.environment_variables("Environment.environment_variables", getattr(
                self.run_config.environment, "environment_variables", None)),
                **_v1_env(), **({INPUTS_ENV: json.dumps(named)} if named else {})},
        )

    def _aml_submit(self, experiment: Experiment, tags: dict | None = None, **_ignored: Any):
        return experiment.workspace.client.runs.submit(self._submission(experiment, tags))


def script_arguments(what: str, arguments: Any) -> list:
    """A script's ``arguments`` as v1 takes them: a list — one string is split as a command line (not into its
    letters), a dict is refused (it is Estimator's ``script_params``)."""
    if isinstance(arguments, dict):
        raise InvalidInput(f"{what}(arguments=…) is a list, like ['--lr', 0.1, '--epochs', 5] (a dict is "
                           "Estimator's script_params)")
    if isinstance(arguments, str):
        import shlex

        return shlex.split(arguments)
    return list(arguments or [])


def script_inside(what: str, source: Path, script: str) -> None:
    """The script is a file of ``source`` named relative to it — ``/etc/passwd`` ran as Python, ``../x.py`` failed
    in the run: the run has only the snapshot of ``source``."""
    checks.path_kind(f"{what}(script=…)", source / script)  # (resolve() raises on a NUL)
    if source not in (source / script).resolve().parents:
        raise InvalidInput(f"{what}(script={script!r}): the script must be a file inside source_directory "
                           f"({source}), named relative to it")


def _arg(value: Any) -> str:
    """A v1 argument as the script receives it (datasets and datastore paths become their local path)."""
    as_argument = getattr(value, "_as_argument", None)
    if as_argument is not None:
        return as_argument()
    if isinstance(value, bool):
        return str(value)
    return str(value)


def _datastore_uri(value: Any) -> str | None:
    """``datastore:NAME/PATH`` of a v1 datastore path, or of a dataset of exactly one; else ``None``."""
    from .data import DataReference, _Dataset

    if isinstance(value, DataReference):
        return value._uri()
    if isinstance(value, _Dataset) and len(value._paths) == 1 and isinstance(value._paths[0], DataReference):
        return value._paths[0]._split()[0]._uri()  # a pattern's folder: the run applies the pattern (input_datasets)
    return None


def _pattern_of(value: Any) -> str:
    """The pattern of a dataset of one datastore path like ``weather/*.csv`` (its run input is the folder)."""
    from .data import DataReference

    paths = getattr(value, "_paths", [])
    return paths[0]._split()[1] if len(paths) == 1 and isinstance(paths[0], DataReference) else ""


def _input_name(name: str, taken: dict) -> str:
    import re

    key = re.sub(r"\W+", "_", str(name)).strip("_") or "input"
    key = key if not key[0].isdigit() else f"input_{key}"
    if key in taken:
        raise InvalidInput(f"two dataset arguments are both named {name!r}: give each its own as_named_input(…)")
    return key


def _v1_env() -> dict[str, str]:
    """What a run started from a v1 notebook needs to find the v1 names (``import azureml.core`` in train.py)."""
    return {"AML_MAGICS_V1": "1"}


def _python_tag() -> str:
    return f"{sys.version_info[0]}.{sys.version_info[1]}"
