"""The azure backend: the same Backend contract over an Azure ML workspace (ARM REST + MLflow REST).

Runs (cells, scripts, notebooks) are command jobs, sweeps are sweep jobs, AutoML is an AutoML job; metrics,
params and child runs come through the workspace's MLflow endpoint; models, environments, managed online
endpoints, computes and datastores are ARM resources. A job's log and files are read from its default
artifact store (a datastore) through blob storage. What Azure cannot do here yet answers with one clear error.
"""
from __future__ import annotations

import re
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any

from ...core.errors import AmlError, InvalidInput, NotFound
from ...core.types import (ComputeTarget, DatastoreInfo, DeploymentInfo, EnvironmentInfo, ExperimentInfo,
                           ModelInfo, RunInfo, RunSubmission, WorkspaceInfo)
from ..base import Backend
from . import ops
from .rest import ArmClient, WorkspaceRef

DEFAULT_ENVIRONMENT = "azureml://registries/azureml/environments/sklearn-1.5/labels/latest"
CELL_FILE = "__aml_cell__.py"
SWEEP_HELPER = "__aml_sweep__.py"
IO_PROP, OUT_VARS_PROP = "aml_magics.io", "aml_magics.out_vars"  # job properties: where --in/--out values are


def _not_yet(what: str):
    raise InvalidInput(f"{what} is not available on the azure backend yet (it works on the local workspace: "
                       "%aml workspace use PATH)")


class AzureBackend(Backend):
    name = "azure"

    def __init__(self, ws: WorkspaceRef, credential: Any, *, base_url: str | None = None,
                 mlflow_uri: str | None = None, storage: tuple[str, str] | None = None, sleep=time.sleep):
        kwargs = {"base_url": base_url} if base_url else {}
        self.ws = ws
        self.arm = ArmClient(credential, sleep=sleep, **kwargs)
        self._credential = credential
        self._mlflow_uri = mlflow_uri
        self._mlflow = None
        self._storage = storage  # (account URL, account name): a storage emulator, or a sovereign cloud
        self._artifact_roots: dict[str, tuple[str, str]] = {}  # job → (datastore, path) of its files
        self._containers: dict[str, tuple[float, Any]] = {}  # datastore → (when asked, its container)

    def __repr__(self) -> str:
        return f"AzureBackend({self.ws})"

    # -- workspace -------------------------------------------------------------------------------------

    def workspace_info(self) -> WorkspaceInfo:
        body = ops.workspace(self.arm, self.ws)
        computes = self.list_computes()
        return WorkspaceInfo(name=self.ws.workspace_name, backend="azure",
                             location=f"{body.get('location', '?')} · {self.ws.resource_group}",
                             source="config.json / %aml connect", computes=computes)

    def doctor(self, recover: bool = False):
        """What an Azure workspace needs to work from here: sign-in, computes, the MLflow endpoint, the
        default datastore. Each check says what is wrong in one line; nothing is changed."""
        from ..local.doctor import DoctorReport

        report = DoctorReport(f"azure {self.ws.workspace_name} ({self.ws.resource_group})")

        def check(name: str, fn) -> None:
            try:
                report.add(name, "ok", fn() or "")
            except AmlError as exc:
                report.add(name, "problem", str(exc))

        def workspace():
            return f"found, in {ops.workspace(self.arm, self.ws).get('location', '?')}"

        def computes():
            found = self.list_computes()
            if not found:
                raise InvalidInput("no compute targets: create one with %aml compute create NAME --max-concurrent N")
            return ", ".join(f"{c.name} ({c.max_concurrent} node(s))" for c in found)

        def mlflow():
            if not self._mlflow_available():
                raise AmlError("the workspace reports no MLflow tracking URI: metrics cannot be read")
            try:
                self.mlflow().experiment_id("Default", create=False)
            except NotFound:
                pass  # answered: the endpoint works
            return "reachable"

        def datastore():
            store, container = self._default_container()
            container.list("aml-magics/")
            return f"{store}: readable with the workspace's credentials"

        for name, fn in (("sign-in and workspace", workspace), ("compute targets", computes),
                         ("MLflow tracking endpoint", mlflow), ("default datastore", datastore)):
            check(name, fn)
        return report

    def list_computes(self) -> list[ComputeTarget]:
        return ops.computes(self.arm, self.ws)

    def create_compute(self, name: str, max_concurrent: int, vm_size: str = "Standard_DS3_v2") -> ComputeTarget:
        """An Azure ML compute cluster that scales from 0 to ``max_concurrent`` nodes (idle nodes go after
        2 minutes); waits while Azure provisions it."""
        if not re.fullmatch(r"[a-zA-Z][a-zA-Z0-9-]{1,30}[a-zA-Z0-9]", name or ""):
            raise InvalidInput(f"compute name {name!r}: 3-32 letters, digits and '-', starting with a letter")
        if max_concurrent < 1:
            raise InvalidInput("--max-concurrent must be at least 1")
        location = ops.workspace(self.arm, self.ws).get("location") or "westeurope"
        body = {"location": location, "properties": {"computeType": "AmlCompute", "properties": {
            "vmSize": vm_size, "vmPriority": "Dedicated",
            "scaleSettings": {"maxNodeCount": int(max_concurrent), "minNodeCount": 0,
                              "nodeIdleTimeBeforeScaleDown": "PT120S"}}}}
        self.arm.put(f"{self.ws.path}/computes/{name}", body)
        return next((c for c in self.list_computes() if c.name == name),
                    ComputeTarget(name, "AmlCompute (Creating)", int(max_concurrent)))

    def list_datastores(self) -> list[DatastoreInfo]:
        return ops.datastores(self.arm, self.ws)

    # -- runs ------------------------------------------------------------------------------------------

    def submit(self, sub: RunSubmission) -> str:
        from ..local import snapshot

        if sub.kind == "automl":
            return self._submit_automl(sub)
        if sub.kind not in ("cell", "script", "notebook", "sweep"):
            _not_yet(f"{sub.kind} runs")
        pickled_in = None
        if sub.in_values or sub.out_vars:
            if sub.kind not in ("cell", "script", "sweep") or (sub.kind == "sweep" and sub.out_vars):
                raise InvalidInput("--in/--out go with cell and script runs, and --in with sweeps")
            if sub.in_values:
                import cloudpickle

                try:
                    pickled_in = cloudpickle.dumps(sub.in_values)
                except Exception as exc:
                    raise InvalidInput(f"--in: cannot pickle {', '.join(sub.in_values)}: {exc}") from None
        sub = self._on_compute(sub)
        sweep = sub.settings if sub.kind == "sweep" else None
        if sweep is not None:
            ops.check_sweep_settings(sweep)  # before anything is uploaded
        template = sweep["template"] if sweep else {"kind": sub.kind, "entry": sub.entry, "code": sub.code,
                                                   "args": sub.args, "parameters": sub.parameters}
        kind, entry = template["kind"], template["entry"]
        source = Path(sub.source_dir).resolve()
        if kind != "cell" and not (source / entry).is_file():
            raise NotFound(f"{'notebook' if kind == 'notebook' else 'script'} {entry!r} not found in {source}")
        environment_id = self.environment_id(sub.environment)  # an unknown environment: refused before uploads
        files = snapshot.plan_snapshot(source, sub.snapshot_max_bytes)
        name = _job_name(sub.experiment)
        io = self._io(name, pickled_in, sub.out_vars) if (sub.in_values or sub.out_vars) else None
        with tempfile.TemporaryDirectory() as tmp:
            if io:
                driver = Path(tmp) / ops.IO_DRIVER
                driver.write_text(ops.IO_DRIVER_SOURCE, encoding="utf-8")
                files = [*files, (driver, ops.IO_DRIVER)]
            if kind == "cell":
                code = template["code"] or ""
                if sweep:  # each declared expression reads this trial's value from the command line
                    code = _sweep_cell(code, template.get("spans") or [])
                    helper = Path(tmp) / SWEEP_HELPER
                    helper.write_text(_sweep_helper(sweep["space"]), encoding="utf-8")
                    files = [*files, (helper, SWEEP_HELPER)]
                cell = Path(tmp) / CELL_FILE
                cell.write_text(code, encoding="utf-8")
                files = [*files, (cell, CELL_FILE)]
                entry = CELL_FILE
            code_id = ops.upload_code(self.arm, self.ws, ops.with_runtime(files))
        placeholders = {k: "${{search_space.%s}}" % k for k in (sweep["space"] if sweep else {})}
        if kind == "notebook":
            # papermill runs it in the job (the environment needs papermill and ipykernel)
            params = [x for k, v in (template.get("parameters") or {}).items() for x in ("-p", str(k), str(v))]
            params += [x for k, v in placeholders.items() for x in ("-p", k, v)]
            command = " ".join(["python", "-m", "papermill", _quote(entry), _quote(f"outputs/{Path(entry).name}"),
                                *(_quote_arg(p) for p in params)])
        else:
            from ...sweep.space import format_args

            args = list(template.get("args") or [])
            if sweep:
                args = format_args([] if kind == "cell" else args, placeholders)
            driver = []
            if io:  # the driver loads --in values, runs the entry, keeps --out values in the job's output
                driver = [ops.IO_DRIVER, *(["--aml-in", "${{inputs.%s}}" % ops.IO_IN] if io.get("in") else []),
                          *(["--aml-out", "${{outputs.%s}}" % ops.IO_OUT, "--aml-vars", ",".join(sub.out_vars)]
                            if io.get("out") else [])]
            command = " ".join(["python", *driver, _quote(entry), *(_quote_arg(a) for a in args)])
        inputs = {k: _datastore_uri(v) for k, v in sub.inputs.items()}
        common = dict(command=command, environment_id=environment_id,
                      compute_id=ops.compute_id(self.ws, sub.compute), code_id=code_id, experiment=sub.experiment,
                      display_name=sub.display_name, inputs=inputs or None, tags=sub.tags)
        if sweep:  # trials find their own MLflow run (MLFLOW_RUN_ID); the sweep's name is their parent
            body = ops.sweep_job_body(settings=sweep, env_vars={"AML_MAGICS_SWEEP_ID": name,
                                                                "AML_MAGICS_EXPERIMENT": sub.experiment,
                                                                "AML_MAGICS_BACKEND": "azure", "PYTHONUNBUFFERED": "1",
                                                                **sub.environment_variables}, io=io, **common)
        else:
            body = ops.command_job_body(env_vars={**ops.environ_for_job(name, sub.experiment),
                                                  **sub.environment_variables}, io=io, **common)
        ops.submit_job(self.arm, self.ws, name, body)
        return name

    def _on_compute(self, sub: RunSubmission) -> RunSubmission:
        """Without -c, the workspace's only compute cluster is the sensible choice; with several, the user picks."""
        if sub.compute not in ("", "local"):
            return sub
        from dataclasses import replace

        clusters = [c.name for c in self.list_computes() if c.kind.startswith(("AmlCompute", "ComputeInstance", "Kubernetes"))]
        if len(clusters) == 1:
            return replace(sub, compute=clusters[0])
        if not clusters:
            raise InvalidInput("the workspace has no compute cluster: create one with %aml compute create NAME "
                               "--max-concurrent N")
        raise InvalidInput(f"choose a compute target with -c: {', '.join(clusters)}")

    def _submit_automl(self, sub: RunSubmission) -> str:
        """An Azure ML AutoML job: the training data goes to the default datastore as an MLTable folder."""
        from ...automl.settings import DEFAULT_LEARNERS

        sub = self._on_compute(sub)
        settings, ref = sub.settings, sub.settings["data"]
        name = _job_name(sub.experiment)
        body = None
        if ref["kind"] == "input":  # already in the workspace's storage: the MLTable points at it
            data_file, fmt = _datastore_uri(sub.inputs["training_data"]), ref.get("format", "csv")
        elif ref["kind"] == "file":
            path = Path(ref["path"])
            path = path if path.is_absolute() else Path(sub.source_dir) / path
            data_file, fmt, body = path.name, ref.get("format", "csv"), path.read_bytes()
        else:
            data_file, fmt, body = "training_data.csv", "csv", _training_csv(sub.in_values, settings["label"],
                                                                             ref.get("label_variable"))
        if settings["budget_s"] and settings["budget_s"] < ops.AUTOML_MIN_TIMEOUT_S:
            print(f"Azure AutoML runs for at least {ops.AUTOML_MIN_TIMEOUT_S // 60} minutes: the budget is "
                  f"{ops.AUTOML_MIN_TIMEOUT_S // 60} minutes (--trials ends it sooner).")
        store, container = self._default_container()
        folder = f"aml-magics/automl/{name}/training_data"
        job = ops.automl_job_body(settings=settings, training_uri=f"azureml://datastores/{store}/paths/{folder}/",
                                  compute_id=ops.compute_id(self.ws, sub.compute), experiment=sub.experiment,
                                  display_name=sub.display_name, tags=sub.tags, all_learners=DEFAULT_LEARNERS)
        if body is not None:
            container.put(f"{folder}/{data_file}", body)
        container.put(f"{folder}/MLTable", ops.mltable(data_file if body is None else f"./{data_file}", fmt).encode())
        ops.submit_job(self.arm, self.ws, name, job)
        return name

    def _io(self, name: str, pickled_in: bytes | None, out_vars: list[str]) -> dict:
        """Where a run's --in values go (uploaded now) and its --out values will be, in the default datastore."""
        store, container = self._default_container()
        folder = f"aml-magics/io/{name}"
        io: dict[str, Any] = {"properties": {IO_PROP: f"{store}:{folder}"}}
        if pickled_in is not None:
            container.put(f"{folder}/in.pkl", pickled_in)
            io["in"] = f"azureml://datastores/{store}/paths/{folder}/in.pkl"
        if out_vars:
            io["out"] = f"azureml://datastores/{store}/paths/{folder}/out/"
            io["properties"][OUT_VARS_PROP] = ",".join(out_vars)
        return io

    def results(self, run_id: str) -> dict[str, Any]:
        import pickle

        props = (ops.job(self.arm, self.ws, run_id).get("properties") or {}).get("properties") or {}
        where = props.get(IO_PROP, "")
        store, _, folder = where.partition(":")
        if not store or not folder:
            return {}
        try:
            data = self._container(store).get(f"{folder}/out/out.pkl")
        except NotFound:
            return {}
        import cloudpickle  # noqa: F401  (needed to unpickle closures)

        return pickle.loads(data)

    def start_interactive(self, experiment: str, display_name: str | None, tags: dict[str, str]) -> str:
        return self.mlflow().create_run(experiment, display_name, tags)

    def _info(self, body: dict, with_metrics: bool = True) -> RunInfo:
        props = body.get("properties") or {}
        system = body.get("systemData") or {}
        name = body.get("name", "?")
        metrics = {}
        if with_metrics and self._mlflow_available():
            try:
                data = self.mlflow().get_run(name).get("data", {})
                metrics = {m["key"]: m["value"] for m in data.get("metrics", [])}
            except AmlError:
                metrics = {}
        spec: dict[str, Any] = {"command": props.get("command"),
                                "out_vars": [v for v in ((props.get("properties") or {}).get(OUT_VARS_PROP) or "")
                                             .split(",") if v]}
        objective = props.get("objective") or {}
        if objective.get("primaryMetric"):  # a sweep: what its trials are ranked by
            spec.update(primary_metric=objective["primaryMetric"],
                        goal="min" if objective.get("goal") == "Minimize" else "max")
        tags = props.get("tags") or {}
        if props.get("jobType") == "AutoML" and tags.get("automl.primary_metric"):
            from ...automl.metrics import goal

            spec.update(primary_metric=tags["automl.primary_metric"], goal=goal(tags["automl.primary_metric"]))
        return RunInfo(run_id=name, experiment=props.get("experimentName") or "Default",
                       status=ops.map_status(props.get("status")), kind=(props.get("jobType") or "").lower(),
                       compute=(props.get("computeId") or "").rsplit("/", 1)[-1] or None,
                       display_name=props.get("displayName"), created=_ts(system.get("createdAt")),
                       tags=dict(props.get("tags") or {}), latest_metrics=metrics,
                       spec=spec)

    def get_run(self, run_id: str, *, with_metrics: bool = True) -> RunInfo:
        return self._info(ops.job(self.arm, self.ws, run_id), with_metrics)

    def list_runs(self, *, experiment=None, status=None, parent_run_id=None, limit=100, offset=0):
        if parent_run_id:  # a sweep's trials: child runs are found through MLflow, as Azure ML documents
            infos = self._child_runs(parent_run_id)
            if status:
                infos = [i for i in infos if i.status in status]
            total = len(infos)
            return (infos[offset:offset + limit] if limit is not None else infos[offset:]), total
        bodies, url = [], f"{self.ws.path}/jobs"
        page = self.arm.get(url)
        while True:
            bodies += page.get("value", [])
            nxt = page.get("nextLink")
            if not isinstance(nxt, str) or not nxt.startswith(("https://", "http://")) \
                    or (limit is not None and len(bodies) >= offset + limit):
                break
            page = self.arm.get(nxt, absolute=True)
        infos = [self._info(b, with_metrics=False) for b in bodies]
        if experiment:
            infos = [i for i in infos if i.experiment == experiment]
        if status:
            infos = [i for i in infos if i.status in status]
        total = len(infos)
        infos = infos[offset:offset + limit] if limit is not None else infos[offset:]
        return infos, total

    def _child_runs(self, parent_run_id: str) -> list[RunInfo]:
        parent = ops.job(self.arm, self.ws, parent_run_id)
        experiment = (parent.get("properties") or {}).get("experimentName") or "Default"
        if not self._mlflow_available():
            return []  # child runs are found through MLflow (%aml doctor reports its absence)
        client = self.mlflow()
        try:
            experiment_id = client.experiment_id(experiment, create=False)
        except NotFound:
            return []
        safe = parent_run_id.replace("'", "")
        runs = client.search_runs([experiment_id], max_results=1000, filter=f"tags.mlflow.parentRunId = '{safe}'")
        return sorted((_mlflow_info(r, experiment, parent_run_id) for r in runs), key=lambda i: i.created or 0)

    def run_ids(self) -> list[str]:
        return [i.run_id for i in self.list_runs(limit=None)[0]]

    def has_run(self, run_id: str) -> bool:
        try:
            ops.job(self.arm, self.ws, run_id)
            return True
        except NotFound:
            return False

    def cancel_run(self, run_id: str, reason: str | None = None) -> None:
        ops.cancel_job(self.arm, self.ws, run_id)

    def resume_run(self, run_id: str) -> None:
        raise InvalidInput("on an Azure workspace the service runs sweeps and AutoML itself, so there is no "
                           "controller to resume; submit the run again to continue")

    # -- metrics through MLflow ----------------------------------------------------------------------------

    def _mlflow_available(self) -> bool:
        if self._mlflow_uri is None:
            try:
                self._mlflow_uri = ops.mlflow_tracking_uri(ops.workspace(self.arm, self.ws))
            except AmlError:
                self._mlflow_uri = ""
        return bool(self._mlflow_uri)

    def mlflow(self):
        if not self._mlflow_available():
            raise AmlError("this workspace has no MLflow tracking URI: metrics are not available")
        if self._mlflow is None:
            from .mlflow_rest import MlflowRest

            token = None
            if self._mlflow_uri.startswith(("azureml://", "https://")):
                token = lambda: self._credential.get_token("https://management.azure.com/.default").token  # noqa: E731
            self._mlflow = MlflowRest(self._mlflow_uri, token)
        return self._mlflow

    def get_metrics(self, run_id: str, name: str | None = None) -> dict[str, Any]:
        out = {}
        for key in ([name] if name else self.metric_names(run_id)):
            values = [v for _, _, v in self.mlflow().metric_history(run_id, key)]
            out[key] = values[0] if len(values) == 1 else values
        return out

    def metric_series(self, run_id: str, name: str, since: int = 0):
        if not self._mlflow_available():
            return [], since
        try:
            history = self.mlflow().metric_history(run_id, name)
        except NotFound:  # the job's MLflow run is not there yet
            return [], since
        return [(s, t, v) for s, t, v in history[since:]], len(history)

    def metric_names(self, run_id: str) -> list[str]:
        """The run's metric names; none while its MLflow run does not exist yet (or the workspace has no
        MLflow endpoint, which %aml doctor reports), so dashboards show the run without charts."""
        if not self._mlflow_available():
            return []
        try:
            data = self.mlflow().get_run(run_id).get("data", {})
        except NotFound:
            return []
        return sorted(m["key"] for m in data.get("metrics", []))

    def run_version(self, run_id: str) -> tuple:
        info = self.get_run(run_id)
        return (info.status, tuple(sorted(info.latest_metrics.items())))

    # -- a job's files: its default artifact store, where Azure ML writes user_logs/ and outputs/ ----------------

    LOG_PREFIX = "user_logs/std_log"

    def _artifacts(self, run_id: str):
        """(container, prefix) of the job's files. The job's ``default`` output names them; Azure ML leaves it
        out of many job bodies, and then they are where ``az ml job download`` looks:
        ``workspaceartifactstore`` at ``ExperimentRun/dcid.<job>/``. Both are cached: neither ever moves."""
        root = self._artifact_roots.get(run_id)
        if root is None:
            outputs = (ops.job(self.arm, self.ws, run_id).get("properties") or {}).get("outputs") or {}
            uri = str((outputs.get("default") or {}).get("uri") or "")
            found = re.match(r"azureml://(?:subscriptions/.+?/workspaces/[^/]+/)?datastores/([^/]+)/(?:paths/)?(.+)", uri)
            store, path = (found.group(1), found.group(2)) if found else \
                ("workspaceartifactstore", f"ExperimentRun/dcid.{run_id}")
            root = self._artifact_roots[run_id] = (store, path.strip("/") + "/")
        store, prefix = root
        now = time.monotonic()
        cached = self._containers.get(store)
        if cached is None or now - cached[0] > 600:  # the datastore's credential is asked again every 10 min
            cached = self._containers[store] = (now, self._container(store))
        return cached[1], prefix

    def read_log(self, run_id: str, offset: int = 0) -> tuple[str, int]:
        """The job's ``user_logs/std_log.txt`` (on several nodes: process 0's) from ``offset`` on, as Azure ML
        uploads it while the job runs. Empty until the job has started writing it."""
        from ..base import decode_log_chunk

        container, prefix = self._artifacts(run_id)
        logs = sorted((name, size) for name, size in container.list(prefix + self.LOG_PREFIX) if name.endswith(".txt"))
        if not logs or logs[0][1] <= offset:
            return "", offset
        return decode_log_chunk(container.read(logs[0][0], offset), offset)

    def list_files(self, run_id: str) -> list[str]:
        container, prefix = self._artifacts(run_id)
        return sorted(name[len(prefix):] for name, _ in container.list(prefix))

    def file_path(self, run_id: str, name: str) -> Path:
        """The job's file, downloaded once into the user's cache (again when its size has changed)."""
        from platformdirs import user_cache_dir

        from ...core.config import APP_NAME

        rel = _clean_datastore_path(name)
        container, prefix = self._artifacts(run_id)
        sizes = dict(container.list(prefix + rel))
        if prefix + rel not in sizes:
            raise NotFound.with_suggestions(f"file of run {run_id}", name, self.list_files(run_id))
        ws = self.ws
        folder = Path(user_cache_dir(APP_NAME, appauthor=False)) / "azure" / ws.subscription_id / ws.resource_group \
            / ws.workspace_name / run_id
        path = folder / rel
        if not path.is_file() or path.stat().st_size != sizes[prefix + rel]:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(path.name + f".{secrets.token_hex(4)}.part")
            partial.write_bytes(container.get(prefix + rel))
            partial.replace(path)  # a reader never sees half a file
        return path

    def list_experiments(self) -> list[ExperimentInfo]:
        counts: dict[str, int] = {}
        for info in self.list_runs(limit=None)[0]:
            counts[info.experiment] = counts.get(info.experiment, 0) + 1
        return [ExperimentInfo(name, n) for name, n in sorted(counts.items())]

    # -- datastores: the storage behind them, with the credentials the workspace holds ----------------------------

    def _default_container(self):
        """(name, container) of the workspace's default datastore."""
        body = self._datastore(None)
        return body.get("name"), self._container(None, body)

    def _datastore(self, name: str | None) -> dict:
        """The datastore named, else the workspace's default one."""
        if name:
            return self.arm.get(f"{self.ws.path}/datastores/{name}")
        stores = self.arm.get(f"{self.ws.path}/datastores").get("value", [])
        body = next((d for d in stores if (d.get("properties") or {}).get("isDefault")), stores[0] if stores else None)
        if body is None:
            raise NotFound("the workspace has no datastore")
        return body

    def _container(self, datastore: str | None, body: dict | None = None):
        """The blob container behind a datastore, with the credential the workspace holds for it."""
        from .blob import BlobContainer

        body = body or self._datastore(datastore)
        name = body.get("name") or datastore
        props = body.get("properties") or {}
        if props.get("datastoreType") not in ("AzureBlob", None):
            _not_yet(f"{props.get('datastoreType')} datastores")
        secrets = self.arm.post(f"{self.ws.path}/datastores/{name}/listSecrets")
        account, container = props.get("accountName", ""), props.get("containerName", "")
        if self._storage is not None:  # an emulator or another cloud's endpoint, for this account
            base, account = self._storage
        else:
            base = f"{props.get('protocol') or 'https'}://{account}.blob.{props.get('endpoint') or 'core.windows.net'}"
        kind = secrets.get("secretsType")
        if kind == "AccountKey":
            return BlobContainer(f"{base}/{container}", account, key=secrets.get("key"))
        if kind == "Sas":
            return BlobContainer(f"{base}/{container}", account, sas=secrets.get("sasToken"))
        _not_yet(f"datastores with {kind} credentials")

    def datastore_upload(self, src, target, datastore, overwrite):
        from ..local.snapshot import plan_snapshot

        src = Path(src)
        container = self._container(datastore)
        target = _clean_datastore_path(target)
        files = [(src, src.name)] if src.is_file() else plan_snapshot(src, 10**12)
        existing = {name for name, _ in container.list(target)} if not overwrite else set()
        done = []
        for path, rel in files:
            name = "/".join(x for x in (target, rel) if x)
            if name in existing:
                from ...core.errors import Conflict

                raise Conflict(f"{name} exists in the datastore; add --overwrite to replace it")
            container.put(name, Path(path).read_bytes())
            done.append(name)
        return done

    def datastore_list(self, path, datastore):
        from ...core.types import DatastoreEntry

        container = self._container(datastore)
        prefix = _clean_datastore_path(path)
        return [DatastoreEntry(name, size, False) for name, size in container.list(prefix + "/" if prefix else "")]

    def datastore_download(self, path, target, datastore, overwrite):
        container = self._container(datastore)
        prefix = _clean_datastore_path(path)
        names = [n for n, _ in container.list(prefix)]
        if not names:
            raise NotFound(f"nothing at {path!r} in the datastore")
        target = Path(target)
        parent = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        done = []
        for name in names:
            if prefix and name != prefix and not name.startswith(prefix + "/"):
                continue  # "tables" must not take "tables2/…"
            dest = (target / (name[len(parent):].lstrip("/") if parent else name)).resolve()
            if target.resolve() not in dest.parents:
                raise InvalidInput(f"{name} would be written outside {target}")
            if dest.exists() and not overwrite:
                from ...core.errors import Conflict

                raise Conflict(f"{dest} exists; add --overwrite to replace it")
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(container.get(name))
            done.append(str(dest))
        return done

    def resolve_input(self, uri: str) -> str:
        return _datastore_uri(uri)

    # -- model registry: versions of job outputs ------------------------------------------------------------

    def _model_info(self, body: dict, name: str | None = None) -> ModelInfo:
        props = body.get("properties") or {}
        version = body.get("name", "0")
        return ModelInfo(name=name or body.get("id", "").split("/models/")[-1].split("/")[0] or "?",
                         version=int(version) if str(version).isdigit() else 0, path=props.get("modelUri") or "",
                         framework=props.get("modelType"), description=props.get("description"),
                         run_id=props.get("jobName"), created=_ts((body.get("systemData") or {}).get("createdAt")),
                         tags=dict(props.get("tags") or {}), properties=dict(props.get("properties") or {}))

    def _versions(self, name: str) -> list[ModelInfo]:
        body = self.arm.get(f"{self.ws.path}/models/{name}/versions")
        return sorted((self._model_info(v, name) for v in body.get("value", [])), key=lambda m: m.version)

    def _next_version(self, name: str) -> int:
        try:
            return max((m.version for m in self._versions(name)), default=0) + 1
        except NotFound:
            return 1

    def _put_model(self, name: str, version: int, props: dict) -> ModelInfo:
        from dataclasses import replace

        result = self.arm.put(f"{self.ws.path}/models/{name}/versions/{version}", {"properties": props})
        return replace(self._model_info(result, name), version=version)  # the version we wrote

    def register_run_model(self, run_id: str, name: str, model_path: str, *, tags=None, properties=None,
                           description=None, **_: Any) -> ModelInfo:
        """A version whose files are the job's output (no upload): azureml://jobs/JOB/outputs/artifacts/paths/…"""
        _check_model_name(name)
        path = model_path.strip("/")
        if ".." in path.split("/"):
            raise InvalidInput(f"{model_path}: the path must stay inside the job's outputs")
        props = {"modelUri": f"azureml://jobs/{run_id}/outputs/artifacts/paths/{path}",
                 "modelType": "custom_model", "jobName": run_id,
                 "tags": {k: str(v) for k, v in (tags or {}).items()},
                 "properties": {k: str(v) for k, v in (properties or {}).items()}}
        if description:
            props["description"] = description
        return self._put_model(name, self._next_version(name), props)

    def register_model(self, name: str, source: Path, *, tags=None, properties=None, description=None,
                       **_: Any) -> ModelInfo:
        """A local file or folder: uploaded to the default datastore under ``LocalUpload/<content hash>/``
        (as Azure ML's own clients do; the same content is not sent twice), then a model version points at it."""
        from ...core.frameworks import detect_framework
        from ..local.backend import _model_files

        _check_model_name(name)
        source = Path(source)
        if not source.exists():
            raise NotFound(f"model path {source} does not exist")
        files = _model_files(source)
        if not files:
            raise InvalidInput(f"{source} has no files to register")
        prefix = f"LocalUpload/{ops.content_digest(files)}/{source.name}"
        store, container = self._default_container()
        present = {n for n, _ in container.list(prefix + ("/" if source.is_dir() else ""))}
        for path, rel in files:
            blob = prefix if source.is_file() else f"{prefix}/{rel}"
            if blob not in present:
                container.put(blob, path.read_bytes())
        framework = detect_framework(source)
        props = {"modelUri": f"azureml://datastores/{store}/paths/{prefix}" + ("/" if source.is_dir() else ""),
                 "modelType": "mlflow_model" if framework == "mlflow" else "custom_model",
                 "tags": {k: str(v) for k, v in (tags or {}).items()},
                 "properties": {**({"framework": framework} if framework else {}),
                                **{k: str(v) for k, v in (properties or {}).items()}}}
        if description:
            props["description"] = description
        return self._put_model(name, self._next_version(name), props)

    def add_model_tags(self, name: str, version: int, tags: dict[str, Any]) -> ModelInfo:
        """Tags of a version are mutable: the version is read and written back with the tags merged."""
        body = self.arm.get(f"{self.ws.path}/models/{name}/versions/{version}")
        current = body.get("properties") or {}
        props = {k: current[k] for k in ("modelUri", "modelType", "description", "jobName", "properties", "flavors")
                 if current.get(k) is not None}
        props["tags"] = {**(current.get("tags") or {}), **{k: str(v) for k, v in tags.items()}}
        return self._put_model(name, int(version), props)

    def get_model(self, name: str, version: int | None = None) -> ModelInfo:
        if version is not None:
            from dataclasses import replace

            body = self.arm.get(f"{self.ws.path}/models/{name}/versions/{version}")
            return replace(self._model_info(body, name), version=int(version))
        versions = self._versions(name)
        if not versions:
            raise NotFound(f"model {name!r} has no versions")
        return versions[-1]

    def list_models(self, name: str | None = None, run_id: str | None = None, limit: int | None = None,
                    **_: Any) -> list[ModelInfo]:
        if name:
            infos = self._versions(name)
        else:
            infos = []
            for container in self.arm.get(f"{self.ws.path}/models").get("value", []):
                cname = container.get("name")
                latest = (container.get("properties") or {}).get("latestVersion")
                if cname:  # latestVersion is optional in the service's answer: then the versions say it
                    try:
                        infos.append(self.get_model(cname, int(latest) if str(latest).isdigit() else None))
                    except NotFound:
                        continue  # a container without versions
        if run_id:
            infos = [m for m in infos if m.run_id == run_id]
        return infos[:limit] if limit else infos

    @property
    def deployments(self) -> "AzureDeployments":
        return AzureDeployments(self)

    tracking_uri = ""  # runs here are tracked by the workspace's MLflow endpoint, not a local store

    # -- environments: versions with a conda file on Azure ML's base image (the service builds them) ------------

    def _env_info(self, body: dict, name: str) -> EnvironmentInfo:
        props = body.get("properties") or {}
        version = str(body.get("name", "0"))
        return EnvironmentInfo(name, int(version) if version.isdigit() else 0,
                               (props.get("tags") or {}).get(ENV_HASH_TAG, ""), _conda_pip(props.get("condaFile")),
                               _ts((body.get("systemData") or {}).get("createdAt")))

    def _env_versions(self, name: str) -> list[EnvironmentInfo]:
        body = self.arm.get(f"{self.ws.path}/environments/{name}/versions")
        return sorted((self._env_info(v, name) for v in body.get("value", [])), key=lambda e: e.version)

    def register_environment(self, name: str, spec) -> EnvironmentInfo:
        """A new version only when the packages changed (content hash in a tag), like the local workspace."""
        import hashlib
        import json
        import sys

        from ..local.environments import parse_packages

        _check_model_name(name)
        packages = parse_packages(spec)
        python = ".".join(sys.version.split(".")[:2])  # the kernel's minor version: pickles move both ways
        digest = hashlib.sha256(json.dumps({"python": python, "image": ENV_IMAGE, "packages": packages})
                                .encode()).hexdigest()[:16]
        try:
            versions = self._env_versions(name)
        except NotFound:
            versions = []
        if versions and versions[-1].hash == digest:
            return versions[-1]
        version = (versions[-1].version + 1) if versions else 1
        body = {"properties": {"image": ENV_IMAGE, "condaFile": _conda_file(name, python, packages),
                               "description": f"{len(packages)} package(s), registered by aml-magics",
                               "tags": {ENV_HASH_TAG: digest}}}
        result = self.arm.put(f"{self.ws.path}/environments/{name}/versions/{version}", body)
        from dataclasses import replace

        return replace(self._env_info(result, name), version=version, hash=digest, packages=packages)

    def get_environment(self, name: str, version: int | None = None) -> EnvironmentInfo:
        if version is not None:
            from dataclasses import replace

            body = self.arm.get(f"{self.ws.path}/environments/{name}/versions/{version}")
            return replace(self._env_info(body, name), version=int(version))
        versions = self._env_versions(name)
        if not versions:
            raise NotFound(f"environment {name!r} has no versions; register one with %aml env register")
        return versions[-1]

    def list_environments(self) -> list[EnvironmentInfo]:
        out = []
        for container in self.arm.get(f"{self.ws.path}/environments").get("value", []):
            cname = container.get("name")
            latest = (container.get("properties") or {}).get("latestVersion")
            if cname:  # latestVersion is optional in the service's answer: then the versions say it
                try:
                    out.append(self.get_environment(cname, int(latest) if str(latest).isdigit() else None))
                except NotFound:
                    continue  # a container without versions
        return out

    def environment_id(self, ref: str | None) -> str:
        """What a job's environmentId is for ``--env``: Azure ML's own references pass through; NAME[:VERSION]
        is a registered environment; a requirements.txt / environment.yml is registered under its content hash."""
        import os

        if not ref:
            return DEFAULT_ENVIRONMENT
        if ref.startswith(("azureml:", "/subscriptions/")):
            return ref
        if os.path.isfile(os.path.expanduser(ref)):
            from ..local.environments import content_hash, parse_packages

            info = self.register_environment(f"aml-magics-{content_hash(parse_packages(ref))}", ref)
        else:
            name, _, version = ref.partition(":")
            info = self.get_environment(name, int(version) if version.isdigit() else None)
        return f"{self.ws.path}/environments/{info.name}/versions/{info.version}"

    def environment_python(self, ref: str, progress=print) -> str:
        raise InvalidInput("on an Azure workspace the service builds an environment's image when a job first uses it "
                           "(--env NAME); there is nothing to build here")


ENV_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest"  # Azure ML's base image for custom envs
ENV_HASH_TAG = "aml_magics.hash"


def _conda_file(name: str, python: str, packages: list[str]) -> str:
    import json

    lines = [f"name: {json.dumps(name)}", "channels:", "  - conda-forge", "dependencies:", f"  - python={python}",
             "  - pip", "  - pip:", *(f"    - {json.dumps(p)}" for p in packages)]
    return "\n".join(lines) + "\n"


def _conda_pip(conda: str | None) -> list[str]:
    """The pip requirements of a conda file (what our environments list as their packages)."""
    if not conda:
        return []
    try:
        import yaml

        doc = yaml.safe_load(conda) or {}
    except Exception:
        return []
    if not isinstance(doc, dict):
        return []
    out: list[str] = []
    for dep in doc.get("dependencies") or []:
        if isinstance(dep, dict) and isinstance(dep.get("pip"), list):
            out += [str(x) for x in dep["pip"]]
    return out


def _clean_datastore_path(path: str) -> str:
    parts = [p for p in str(path or "").replace("\\", "/").split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise InvalidInput(f"datastore path {path!r} must stay inside the datastore (no '..')")
    return "/".join(parts)


def _job_name(experiment: str) -> str:
    base = re.sub(r"[^a-zA-Z0-9_-]", "-", experiment)[:40].strip("-") or "run"
    return f"{base}_{int(time.time())}_{secrets.token_hex(4)}"


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(str(arg))


MLFLOW_STATES = {"RUNNING": "Running", "SCHEDULED": "Queued", "FINISHED": "Completed", "FAILED": "Failed",
                 "KILLED": "Canceled"}


def _mlflow_info(run: dict, experiment: str, parent_run_id: str | None) -> RunInfo:
    """A run as MLflow's runs/search answers it (a sweep's trial)."""
    info, data = run.get("info") or {}, run.get("data") or {}
    tags = {t["key"]: t.get("value", "") for t in data.get("tags", [])}
    start, end = info.get("start_time"), info.get("end_time")
    return RunInfo(run_id=info.get("run_id") or info.get("run_uuid") or "?", experiment=experiment,
                   status=MLFLOW_STATES.get(info.get("status") or "", "Queued"), kind="trial",
                   display_name=info.get("run_name") or tags.get("mlflow.runName"), parent_run_id=parent_run_id,
                   created=start / 1000 if start else None, started=start / 1000 if start else None,
                   ended=end / 1000 if end else None,
                   tags={k: v for k, v in tags.items() if not k.startswith("mlflow.")},
                   params={p["key"]: p.get("value", "") for p in data.get("params", [])},
                   latest_metrics={m["key"]: m["value"] for m in data.get("metrics", [])})


def _training_csv(values: dict, label: str, label_variable: str | None) -> bytes:
    """The in-memory training data (a DataFrame, or an array with the labels in another variable) as CSV."""
    import pandas as pd

    data = values["training_data"]
    if hasattr(data, "columns"):
        frame = data
    else:
        import numpy as np

        array = np.asarray(data)
        array = array.reshape(len(array), -1)
        frame = pd.DataFrame(array, columns=[f"x{i}" for i in range(array.shape[1])])
        frame[label] = np.asarray(values[label_variable or label])
    return frame.to_csv(index=False).encode()


def _check_model_name(name: str) -> None:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,254}", name or ""):
        raise InvalidInput(f"model name {name!r}: letters, digits, '-', '_' and '.', starting with a letter or digit")


def _quote_arg(arg: str) -> str:
    """Quoted for the shell, except the service's own ``${{...}}`` placeholders (substituted before it runs)."""
    return arg if re.fullmatch(r"\$\{\{(search_space|inputs|outputs)\.[A-Za-z_][A-Za-z0-9_]*\}\}", arg) else _quote(arg)


def _sweep_cell(code: str, spans: list) -> str:
    """The cell with each declared expression replaced by a read of this trial's value; an expression over
    several lines leaves blank lines so every later line keeps its number in tracebacks."""
    from ...sweep.space import replace_declarations

    return replace_declarations(
        code, spans, lambda name: f"{name} = __import__({SWEEP_HELPER[:-3]!r}).value({name!r})  # sweep parameter",
        keep_numbers=True)


def _sweep_helper(space: dict[str, list]) -> str:
    """A module shipped with a swept cell: the trial's values from ``--NAME VALUE`` arguments, typed as
    declared (a choice gives back the option itself). Needs nothing but the standard library."""
    kinds = {k: kind for k, (kind, _) in space.items()}
    choices = {k: list(args) for k, (kind, args) in space.items() if kind == "choice"}
    return f'''"""This trial's sweep parameters (written by aml-magics)."""
import sys

KINDS = {kinds!r}
CHOICES = {choices!r}


def value(name):
    flag = "--" + name
    if flag not in sys.argv[:-1]:
        raise SystemExit(f"sweep parameter {{name}} is missing from the command line")
    raw = sys.argv[sys.argv.index(flag) + 1]
    if name in CHOICES:
        for option in CHOICES[name]:
            if str(option) == raw or str(option).lower() == raw.lower():
                return option
        raise SystemExit(f"sweep parameter {{name}}={{raw!r}} is not one of {{CHOICES[name]!r}}")
    return int(float(raw)) if KINDS[name] == "randint" else float(raw)
'''


def _datastore_uri(value: str) -> str:
    if value.startswith("datastore:"):
        path = value[len("datastore:"):].lstrip("/")
        return f"azureml://datastores/workspaceblobstore/paths/{path}"
    return value


_ISO = None


def _ts(text: str | None) -> float | None:
    """An ISO 8601 time as Azure writes it — ``2024-05-20T10:15:30.1234567Z``: 0 to 9 fractional digits, ``Z`` or an
    offset — as a Unix time, on every Python (3.10's ``fromisoformat`` takes only 3 or 6 digits)."""
    global _ISO
    if not text:
        return None
    import re
    from datetime import datetime, timedelta, timezone

    if _ISO is None:
        _ISO = re.compile(r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d)(?::(\d\d)(?:[.,](\d{1,9})\d*)?)?"
                          r"\s*(Z|z|[+-]\d\d(?::?\d\d)?)?$")
    m = _ISO.match(text.strip())
    if m is None:
        return None
    year, month, day, hour, minute, second, fraction, zone = m.groups()
    tz = timezone.utc
    if zone and zone not in ("Z", "z"):
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        tz = timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0)))
    try:
        moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0), tzinfo=tz)
    except ValueError:
        return None
    return moment.timestamp() + (int(fraction) / 10 ** len(fraction) if fraction else 0.0)



ENDPOINT_STATES = {"Succeeded": "Healthy", "Creating": "Transitioning", "Updating": "Transitioning",
                   "Deleting": "Transitioning", "Failed": "Failed", "Canceled": "Failed"}


class AzureDeployments:
    """Managed online endpoints, one deployment ("blue") each, all traffic to it."""

    DEPLOYMENT = "blue"

    def __init__(self, backend: AzureBackend):
        self.b = backend
        self.base = f"{backend.ws.path}/onlineEndpoints"

    def _info(self, body: dict, models: list[str] | None = None) -> DeploymentInfo:
        props = body.get("properties") or {}
        state = ENDPOINT_STATES.get(props.get("provisioningState") or "", "Transitioning")
        return DeploymentInfo(name=body.get("name", "?"), state=state, scoring_uri=props.get("scoringUri") or "",
                              models=models or [], host="azure", port=443,
                              auth=True,
                              error=None if state != "Failed" else f"provisioning {props.get('provisioningState')}")

    def deploy(self, name: str, models: list, score_path: Path | None, *, host: str, port, auth: bool, update: bool,
               timeout: float, instance_type: str = "Standard_DS3_v2", environment: str | None = None, **_: Any):
        if not re.fullmatch(r"[a-zA-Z][a-zA-Z0-9-]{1,30}[a-zA-Z0-9]", name or ""):
            raise InvalidInput(f"endpoint name {name!r}: 3-32 letters, digits and '-', starting with a letter")
        if not auth:
            raise InvalidInput("Azure endpoints always need a key here (--no-auth is for the local workspace)")
        infos = [self.b.get_model(m, v) for m, v in models]
        if len(infos) != 1:
            raise InvalidInput("an Azure online deployment serves one model")
        model = infos[0]
        location = ops.workspace(self.b.arm, self.b.ws).get("location") or "westeurope"
        self.b.arm.put(f"{self.base}/{name}", {"location": location, "properties": {"authMode": "Key"}})
        props: dict[str, Any] = {
            "endpointComputeType": "Managed", "instanceType": instance_type,
            "model": f"{self.b.ws.path}/models/{model.name}/versions/{model.version}",
            "scaleSettings": {"scaleType": "Default"},
        }
        if score_path is not None:
            code_id = ops.upload_code(self.b.arm, self.b.ws, [(Path(score_path), "score.py")])
            props["codeConfiguration"] = {"codeId": code_id, "scoringScript": "score.py"}
            props["environmentId"] = self.b.environment_id(environment)
        self.b.arm.put(f"{self.base}/{name}/deployments/{self.DEPLOYMENT}",
                       {"location": location, "sku": {"name": "Default", "capacity": 1}, "properties": props})
        self.b.arm.put(f"{self.base}/{name}", {"location": location,
                                               "properties": {"authMode": "Key", "traffic": {self.DEPLOYMENT: 100}}})
        return self.get(name)

    def get(self, name: str) -> DeploymentInfo:
        return self._info(self.b.arm.get(f"{self.base}/{name}"))

    def list(self) -> list[DeploymentInfo]:
        return [self._info(e) for e in self.b.arm.get(self.base).get("value", [])]

    def keys(self, name: str) -> tuple[str, str]:
        body = self.b.arm.post(f"{self.base}/{name}/listKeys")
        return body.get("primaryKey", ""), body.get("secondaryKey", "")

    def regenerate_key(self, name: str, which: str) -> None:
        self.b.arm.post(f"{self.base}/{name}/regenerateKeys", {"keyType": which.capitalize()}, wait=True)

    def logs(self, name: str, tail: int | None = None) -> str:
        body = self.b.arm.post(f"{self.base}/{name}/deployments/{self.DEPLOYMENT}/getLogs",
                               {"containerType": "InferenceServer", "tail": int(tail or 200)})
        return body.get("content", "")

    def delete(self, name: str, timeout: float = 0) -> None:
        self.b.arm.delete(f"{self.base}/{name}")

    def build_image(self, name: str) -> str:
        raise InvalidInput("Azure ML builds a managed endpoint's image itself; there is nothing to build here")
