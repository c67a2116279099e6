"""Runs of an Azure ML workspace: cells, scripts and notebooks are command jobs, sweeps are sweep jobs, AutoML is an
AutoML job. Status comes from the jobs; metrics, params and child runs from the workspace's MLflow endpoint; a
job's log and files from its default artifact store (``artifacts.py``)."""
from __future__ import annotations

import pickle
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...core.contract import RunsBackend, Tracker, not_supported
from ...core.errors import AmlError, InvalidInput, NotFound
from ...core.names import CELL_FILE
from ...core.specs import AutoMLSpec, SweepSpec, TrialTemplate, format_args, metric_goal
from ...core.types import RunInfo, RunSubmission
from ..common.pickles import pickle_inputs
from ..common.snapshot import plan_snapshot
from . import ops
from .artifacts import JobFiles
from .mlflow_rest import value_of
from .commands import (IO_PROP, OUT_VARS_PROP, SWEEP_HELPER, job_name, quote, quote_arg, sweep_cell, sweep_helper,
                       training_csv)
from .convert import mlflow_info, timestamp

if TYPE_CHECKING:  # pragma: no cover
    from .backend import AzureBackend

#: how long one listing of every job answers the questions a RUN that is not an id asks (ids, parts, names)
LISTING_KEPT_S = 5.0


class AzureRuns(JobFiles, RunsBackend):
    def __init__(self, backend: "AzureBackend"):
        JobFiles.__init__(self, backend)
        self.b = backend
        self._listing: tuple[float, list[RunInfo]] | None = None  # (when, every job) for _every_job

    # -- submitting --------------------------------------------------------------------------------------

    def submit(self, sub: RunSubmission) -> str:
        if sub.kind == "automl":
            return self._submit_automl(sub)
        if sub.kind == "pipeline":
            return self._submit_pipeline(sub)
        if sub.kind == "batch":
            return self._submit_batch(sub)
        if sub.kind not in ("cell", "script", "notebook", "sweep"):
            raise not_supported(self.b.capabilities, f"{sub.kind} runs")
        if (sub.in_values or sub.out_vars) and (sub.kind not in ("cell", "script", "sweep")
                                                or (sub.kind == "sweep" and sub.out_vars)):
            raise InvalidInput("--in/--out go with cell and script runs, and --in with sweeps")
        if sub.outputs and sub.kind == "sweep":
            raise InvalidInput("outputs are for runs of a cell, script or notebook, not sweeps")
        pickled_in = pickle_inputs(sub.in_values)
        sub = self._on_compute(sub)
        sweep = sub.engine if isinstance(sub.engine, SweepSpec) else None
        if sweep is not None:
            ops.check_sweep_settings(sweep)  # before anything is uploaded
        template = sweep.template if sweep else TrialTemplate(kind=sub.kind, entry=sub.entry, code=sub.code,
                                                              args=list(sub.args), parameters=dict(sub.parameters))
        kind, entry = template.kind, template.entry
        source = Path(sub.source_dir).resolve()
        if kind != "cell" and not (source / entry).is_file():
            raise NotFound(f"{'notebook' if kind == 'notebook' else 'script'} {entry!r} not found in {source}")
        environment_id = self.b.environments.environment_id(sub.environment)  # unknown: refused before uploads
        files = plan_snapshot(source, sub.snapshot_max_bytes, note=True)
        name = job_name(sub.experiment)
        io = self._io(name, pickled_in, sub.out_vars) if (sub.in_values or sub.out_vars) else None
        with tempfile.TemporaryDirectory() as tmp:
            if io:
                driver = Path(tmp) / ops.IO_DRIVER
                driver.write_text(ops.IO_DRIVER_SOURCE, encoding="utf-8")
                files = [*files, (driver, ops.IO_DRIVER)]
            if kind == "cell":
                code = template.code or ""
                if sweep:  # each declared expression reads this trial's value from the command line
                    code = sweep_cell(code, template.spans or [])
                    helper = Path(tmp) / SWEEP_HELPER
                    helper.write_text(sweep_helper(sweep.space), encoding="utf-8")
                    files = [*files, (helper, SWEEP_HELPER)]
                cell = Path(tmp) / CELL_FILE
                cell.write_text(code, encoding="utf-8")
                files = [*files, (cell, CELL_FILE)]
                entry = CELL_FILE
            v1 = sub.environment_variables.get("AML_MAGICS_V1") == "1" and kind == "script"
            if v1:  # from an Azure ML v1 notebook: the script's `from azureml.core import Run` is ours
                shim = Path(tmp) / ops.V1_DRIVER
                shim.write_text(ops.V1_DRIVER_SOURCE, encoding="utf-8")
                files = [*files, (shim, ops.V1_DRIVER)]
            code_id = ops.upload_code(self.b.arm, self.b.ws, ops.with_runtime(files))
        placeholders = {k: "${{search_space.%s}}" % k for k in (sweep.space if sweep else {})}
        if kind == "notebook":
            # papermill runs it in the job (the environment needs papermill and ipykernel)
            params = [x for k, v in (template.parameters or {}).items() for x in ("-p", str(k), str(v))]
            params += [x for k, v in placeholders.items() for x in ("-p", k, v)]
            command = " ".join(["python", "-m", "papermill", quote(entry), quote(f"outputs/{Path(entry).name}"),
                                *(quote_arg(p) for p in params)])
        else:
            args = list(template.args or [])
            if sweep:
                args = format_args([] if kind == "cell" else args, placeholders)
            driver = []
            if io:  # the driver loads --in values, runs the entry, keeps --out values in the job's output
                driver = [ops.IO_DRIVER, *(["--aml-in", "${{inputs.%s}}" % ops.IO_IN] if io.get("in") else []),
                          *(["--aml-out", "${{outputs.%s}}" % ops.IO_OUT, "--aml-vars", ",".join(sub.out_vars)]
                            if io.get("out") else [])]
            command = " ".join(["python", *([ops.V1_DRIVER] if v1 else []), *driver, quote(entry),
                                *(quote_arg(a) for a in args)])
        inputs = {k: self.b.datastores.resolve_input(v) for k, v in sub.inputs.items()}
        outputs = {k: self.b.datastores.resolve_input(v) for k, v in sub.outputs.items()}
        common = dict(command=command, environment_id=environment_id,
                      compute_id=ops.compute_id(self.b.ws, sub.compute), code_id=code_id, experiment=sub.experiment,
                      display_name=sub.display_name, inputs=inputs or None, tags=sub.tags)
        if sweep:  # trials find their own MLflow run (MLFLOW_RUN_ID); the sweep's name is their parent
            body = ops.sweep_job_body(settings=sweep, env_vars={"AML_MAGICS_SWEEP_ID": name,
                                                                "AML_MAGICS_EXPERIMENT": sub.experiment,
                                                                "PYTHONUNBUFFERED": "1",
                                                                **sub.environment_variables}, io=io, **common)
        else:
            body = ops.command_job_body(env_vars={**ops.environ_for_job(name, sub.experiment),
                                                  **sub.environment_variables}, io=io,
                                        outputs=outputs or None, timeout_s=sub.timeout_s, **common)
        ops.submit_job(self.b.arm, self.b.ws, name, body)
        return name

    def _on_compute(self, sub: RunSubmission) -> RunSubmission:
        """Without -c, the workspace's only compute cluster is the sensible choice; with several, the user picks."""
        if sub.compute not in ("", "local"):
            return sub
        clusters = self.b.computes.clusters()
        if len(clusters) == 1:
            return replace(sub, compute=clusters[0])
        if not clusters:
            raise InvalidInput("the workspace has no compute cluster: create one with %aml compute create NAME "
                               "--max-concurrent N")
        raise InvalidInput(f"choose a compute target with -c: {', '.join(clusters)}")

    def _submit_automl(self, sub: RunSubmission) -> str:
        """An Azure ML AutoML job: the training data goes to the default datastore as an MLTable folder."""
        spec: AutoMLSpec = sub.engine
        sub = self._on_compute(sub)
        ref = spec.data
        name = job_name(sub.experiment)
        body = None
        if ref["kind"] == "input":  # already in the workspace's storage: the MLTable points at it
            data_file, fmt = self.b.datastores.resolve_input(sub.inputs["training_data"]), ref.get("format", "csv")
        elif ref["kind"] == "file":
            path = Path(ref["path"])
            path = path if path.is_absolute() else Path(sub.source_dir) / path
            data_file, fmt, body = path.name, ref.get("format", "csv"), path.read_bytes()
        else:
            data_file, fmt, body = "training_data.csv", "csv", training_csv(sub.in_values, spec.label,
                                                                            ref.get("label_variable"))
        if spec.budget_s and spec.budget_s < ops.AUTOML_MIN_TIMEOUT_S:
            print(f"Azure AutoML runs for at least {ops.AUTOML_MIN_TIMEOUT_S // 60} minutes: the budget is "
                  f"{ops.AUTOML_MIN_TIMEOUT_S // 60} minutes (--trials ends it sooner).")
        store, container = self.b.datastores.default_container()
        folder = f"aml-magics/automl/{name}/training_data"
        job = ops.automl_job_body(settings=spec, training_uri=f"azureml://datastores/{store}/paths/{folder}/",
                                  compute_id=ops.compute_id(self.b.ws, sub.compute), experiment=sub.experiment,
                                  display_name=sub.display_name, tags={**sub.tags, "automl.goal": spec.goal})
        if body is not None:
            container.put(f"{folder}/{data_file}", body)
        container.put(f"{folder}/MLTable", ops.mltable(data_file if body is None else f"./{data_file}", fmt).encode())
        ops.submit_job(self.b.arm, self.b.ws, name, job)
        return name

    def _submit_batch(self, sub: RunSubmission) -> str:
        """A batch scoring run as a command job: aml-magics' batch engine (shipped with the snapshot) over the job's
        input "data", the model as a custom_model input, the output file into the job's output "predictions"."""
        import json

        spec = sub.engine
        if spec.data.get("kind") == "path":
            raise InvalidInput("the data is on this machine; upload it (%aml datastore upload) and pass datastore:PATH")
        sub = self._on_compute(sub)
        source = Path(sub.source_dir).resolve()
        environment_id = self.b.environments.environment_id(sub.environment)  # unknown: refused before uploads
        files = plan_snapshot(source, sub.snapshot_max_bytes, note=True)
        name = job_name(sub.experiment)
        pickled_in = pickle_inputs(sub.in_values)
        io = self._io(name, pickled_in, []) if pickled_in is not None else None
        settings = {k: v for k, v in spec.to_settings().items() if k not in ("model_path", "output")}
        with tempfile.TemporaryDirectory() as tmp:
            driver, settings_file = Path(tmp) / ops.BATCH_DRIVER, Path(tmp) / ops.BATCH_SETTINGS
            driver.write_text(ops.BATCH_DRIVER_SOURCE, encoding="utf-8")
            settings_file.write_text(json.dumps(settings), encoding="utf-8")
            files = [*files, (driver, ops.BATCH_DRIVER), (settings_file, ops.BATCH_SETTINGS)]
            code_id = ops.upload_code(self.b.arm, self.b.ws, ops.with_runtime(files, batch=True))
        args = []
        inputs = {}
        if "data" in sub.inputs:
            inputs["data"] = self.b.datastores.resolve_input(sub.inputs["data"])
            args += ["--data", "${{inputs.data}}"]
        if spec.model:
            args += ["--model", "${{inputs.model}}"]
        if io and io.get("in"):
            args += ["--in", "${{inputs.%s}}" % ops.IO_IN]
        args += ["--out", "${{outputs.predictions}}"]
        command = " ".join(["python", ops.BATCH_DRIVER, *(quote_arg(a) for a in args)])
        outputs = {k: self.b.datastores.resolve_input(v) for k, v in sub.outputs.items()}
        body = ops.command_job_body(
            command=command, environment_id=environment_id, compute_id=ops.compute_id(self.b.ws, sub.compute),
            code_id=code_id, experiment=sub.experiment, display_name=sub.display_name, inputs=inputs or None,
            tags={**sub.tags, "batch.mini_batch": str(spec.mini_batch)},
            env_vars={**ops.environ_for_job(name, sub.experiment), **sub.environment_variables}, io=io,
            outputs=outputs or None)
        props = body["properties"]
        props.setdefault("outputs", {}).setdefault("predictions", {"jobOutputType": "uri_folder",
                                                                   "mode": "ReadWriteMount"})
        if spec.model:
            model, _, version = spec.model.rpartition(":")
            props.setdefault("inputs", {})["model"] = {
                "jobInputType": "custom_model", "mode": "Download",
                "uri": f"azureml:{self.b.ws.path}/models/{model}/versions/{version}"}
        ops.submit_job(self.b.arm, self.b.ws, name, body)
        return name

    def _submit_pipeline(self, sub: RunSubmission) -> str:
        """An Azure ML pipeline job, as azure-ai-ml sends a v2 pipeline YAML: each step's code uploaded (found again
        by its hash), an anonymous command component per step, the job's nodes binding them."""
        from ...core.pipelines import cell_script, is_files, parse_binding
        from .rest import AML_SCOPE

        spec = sub.engine
        sub = self._on_compute(replace(sub, compute=spec.default_compute))
        for step in spec.steps:  # everything that can be refused, before anything is uploaded
            if step.kind not in ("script", "cell"):
                raise not_supported(self.b.capabilities, f"{step.kind} steps in a pipeline (step {step.name})")
        v1 = sub.environment_variables.get("AML_MAGICS_V1") == "1"
        environments = {s.name: self.b.environments.environment_id(s.environment) for s in spec.steps}
        jobs, codes = {}, {}
        with tempfile.TemporaryDirectory() as tmp:
            for step in spec.steps:
                folder = (Path(sub.source_dir) / step.source).resolve()
                files = plan_snapshot(folder, sub.snapshot_max_bytes)
                entry, args = step.entry, list(step.args)
                if step.kind == "cell":
                    entry = f"{step.name}.py"
                    script = Path(tmp) / step.name / entry
                    script.parent.mkdir()
                    script.write_text(cell_script(step), encoding="utf-8")
                    files = [*files, (script, entry)]
                    args = [*(x for k in step.inputs for x in (f"--{k}", "${{inputs.%s}}" % k)),
                            *(x for o in step.outputs for x in (f"--{o}", "${{outputs.%s}}" % o)), *args]
                if v1:
                    shim = Path(tmp) / ops.V1_DRIVER
                    shim.write_text(ops.V1_DRIVER_SOURCE, encoding="utf-8")
                    files = [*files, (shim, ops.V1_DRIVER)]
                key = (str(folder), tuple(sorted(rel for _, rel in files)), step.kind == "cell" and step.name)
                if key not in codes:
                    codes[key] = ops.upload_code(self.b.arm, self.b.ws, ops.with_runtime(files))
                command = " ".join(["python", *([ops.V1_DRIVER] if v1 else []), quote(entry),
                                    *(quote_arg(a) for a in args)])
                inputs = {}
                for k, v in step.inputs.items():
                    if parse_binding(v):
                        inputs[k] = {"binding": v}
                    elif is_files(v):
                        inputs[k] = {"uri": self.b.datastores.resolve_input(v)}
                    else:
                        inputs[k] = v
                component = ops.component_spec(command=command, code_id=codes[key],
                                               environment_id=environments[step.name], inputs=inputs,
                                               outputs=step.outputs, deterministic=step.allow_reuse)
                if sub.environment_variables:
                    component["environment_variables"] = dict(sub.environment_variables)
                component_id = ops.create_component(self.b.arm, self.b.ws, component)
                jobs[step.name] = ops.pipeline_node(step.name, component_id, inputs, step.outputs,
                                                    ops.compute_id(self.b.ws, step.compute) if step.compute else None,
                                                    timeout_s=step.timeout_s,
                                                    environment_variables=step.environment_variables)
        name = job_name(sub.experiment)
        body = ops.pipeline_job_body(jobs=jobs, experiment=sub.experiment, display_name=sub.display_name,
                                     tags=sub.tags, default_compute_id=ops.compute_id(self.b.ws, sub.compute),
                                     continue_on_step_failure=spec.continue_on_step_failure,
                                     force_rerun=not spec.reuse, description=spec.description)
        # as azure-ai-ml does for pipeline jobs: the caller's Azure ML token, with which the service runs the steps
        ops.submit_job(self.b.arm, self.b.ws, name, body, headers={"x-azureml-token": self.b.arm.token(AML_SCOPE)})
        return name

    def _io(self, name: str, pickled_in: bytes | None, out_vars: list[str]) -> dict:
        """Where a run's --in values go (uploaded now) and its --out values will be, in the default datastore."""
        store, container = self.b.datastores.default_container()
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
        props = (ops.job(self.b.arm, self.b.ws, run_id).get("properties") or {}).get("properties") or {}
        where = props.get(IO_PROP, "")
        store, _, folder = where.partition(":")
        if not store or not folder:
            return {}
        try:
            data = self.b.datastores.container(store).get(f"{folder}/out/out.pkl")
        except NotFound:
            return {}
        import cloudpickle  # noqa: F401  (needed to unpickle closures)

        return pickle.loads(data)

    def start_interactive(self, experiment: str, display_name: str | None, tags: dict[str, str]) -> str:
        return self.b.mlflow().create_run(experiment, display_name, tags)

    def tracker(self) -> Tracker:
        """Logging from this process to the workspace's MLflow endpoint (``Experiment.start_logging``)."""
        from .tracker import MlflowTracker

        return MlflowTracker.over(self.b.mlflow())

    # -- reading runs --------------------------------------------------------------------------------------

    def _info(self, body: dict, with_metrics: bool = True) -> RunInfo:
        props = body.get("properties") or {}
        system = body.get("systemData") or {}
        name = body.get("name", "?")
        metrics = {}
        if with_metrics and self.b.mlflow_available():
            try:
                data = self.b.mlflow().get_run(name).get("data", {})
                metrics = {m["key"]: value_of(m["value"]) for m in data.get("metrics", [])}
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
        service_metric = (props.get("taskDetails") or {}).get("primaryMetric")
        metric = tags.get("automl.primary_metric") or {v: k for k, v in ops.AUTOML_METRICS.items()}.get(service_metric)
        if props.get("jobType") == "AutoML" and metric:  # ours tag both; a job from elsewhere names its metric
            spec.update(primary_metric=metric, goal=tags.get("automl.goal") or metric_goal(metric))
        return RunInfo(run_id=name, experiment=props.get("experimentName") or "Default",
                       status=ops.map_status(props.get("status")), kind=(props.get("jobType") or "").lower(),
                       compute=(props.get("computeId") or "").rsplit("/", 1)[-1] or None,
                       display_name=props.get("displayName"), created=timestamp(system.get("createdAt")),
                       tags=dict(props.get("tags") or {}), latest_metrics=metrics, spec=spec)

    def get(self, run_id: str, *, with_metrics: bool = True) -> RunInfo:
        return self._info(ops.job(self.b.arm, self.b.ws, run_id), with_metrics)

    def list(self, *, experiment=None, status=None, parent_run_id=None, limit=100, offset=0, tags=None):
        def tagged(info) -> bool:
            return all(k in info.tags and (v is None or info.tags[k] == v) for k, v in (tags or {}).items())

        if parent_run_id:  # a sweep's trials: child runs are found through MLflow, as Azure ML documents
            infos = self._children(parent_run_id)
            if status:
                infos = [i for i in infos if i.status in status]
            infos = [i for i in infos if tagged(i)]
            total = len(infos)
            return (infos[offset:offset + limit] if limit is not None else infos[offset:]), total
        bodies = self.b.arm.list_all(f"{self.b.ws.path}/jobs", limit=None if limit is None else offset + limit)
        infos = [self._info(b, with_metrics=False) for b in bodies]
        if experiment:
            infos = [i for i in infos if i.experiment == experiment]
        if status:
            infos = [i for i in infos if i.status in status]
        infos = [i for i in infos if tagged(i)]
        total = len(infos)
        infos = infos[offset:offset + limit] if limit is not None else infos[offset:]
        return infos, total

    def _children(self, parent_run_id: str) -> list[RunInfo]:
        parent = ops.job(self.b.arm, self.b.ws, parent_run_id)
        experiment = (parent.get("properties") or {}).get("experimentName") or "Default"
        if not self.b.mlflow_available():
            return []  # child runs are found through MLflow (%aml doctor reports its absence)
        client = self.b.mlflow()
        try:
            experiment_id = client.experiment_id(experiment, create=False)
        except NotFound:
            return []
        safe = parent_run_id.replace("'", "")
        runs = client.search_runs([experiment_id], max_results=1000, filter=f"tags.mlflow.parentRunId = '{safe}'")
        return sorted((mlflow_info(r, experiment, parent_run_id) for r in runs), key=lambda i: i.created or 0)

    def _every_job(self) -> list[RunInfo]:
        """Every job of the workspace (Jobs_List has no filter by name), kept ``LISTING_KEPT_S``: a RUN that is not
        an id is looked for as a unique part of one, then as a name, then "did you mean" — one listing for the three
        (a workspace of 10,000 jobs is a hundred pages), not three."""
        now = time.monotonic()
        kept = self._listing
        if kept is not None and now - kept[0] < LISTING_KEPT_S:
            return kept[1]
        infos = self.list(limit=None)[0]
        self._listing = (time.monotonic(), infos)
        return infos

    def ids(self) -> list[str]:
        return [i.run_id for i in self._every_job()]

    def named(self, display_name: str, limit: int) -> list[str]:
        return [i.run_id for i in self._every_job() if i.display_name == display_name][:limit]

    def exists(self, run_id: str) -> bool:
        try:
            ops.job(self.b.arm, self.b.ws, run_id)
            return True
        except NotFound:
            return False

    def cancel(self, run_id: str, reason: str | None = None) -> None:
        ops.cancel_job(self.b.arm, self.b.ws, run_id)

    def resume(self, run_id: str) -> None:
        raise not_supported(self.b.capabilities, "resuming a sweep or AutoML run")

    # -- metrics through MLflow ------------------------------------------------------------------------------

    def metrics(self, run_id: str, name: str | None = None) -> dict[str, Any]:
        out = {}
        for key in ([name] if name else self.metric_names(run_id)):
            values = [v for _, _, v in self.b.mlflow().metric_history(run_id, key)]
            out[key] = values[0] if len(values) == 1 else values
        return out

    def metric_series(self, run_id: str, name: str, since: int = 0):
        if not self.b.mlflow_available():
            return [], since
        try:
            history = self.b.mlflow().metric_history(run_id, name)
        except NotFound:  # the job's MLflow run is not there yet
            return [], since
        return [(s, t, v) for s, t, v in history[since:]], len(history)

    def metric_names(self, run_id: str) -> list[str]:
        """The run's metric names; none while its MLflow run does not exist yet (or the workspace has no
        MLflow endpoint, which %aml doctor reports), so dashboards show the run without charts."""
        if not self.b.mlflow_available():
            return []
        try:
            data = self.b.mlflow().get_run(run_id).get("data", {})
        except NotFound:
            return []
        return sorted(m["key"] for m in data.get("metrics", []))

    def version(self, run_id: str) -> tuple:
        info = self.get(run_id)
        return (info.status, tuple(sorted(info.latest_metrics.items())))
