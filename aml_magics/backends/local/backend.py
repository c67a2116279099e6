"""The embedded local workspace: SQLite store + folders + detached run processes."""
from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import time
from pathlib import Path, PurePosixPath
from typing import Any

from ...core.config import WorkspaceConfig
from ...core.errors import BackendUnavailable, Conflict, InvalidInput, NotFound, StorageError
from ...core.types import (
    ComputeTarget,
    DatastoreEntry,
    DatastoreInfo,
    DeploymentInfo,
    EnvironmentInfo,
    ExperimentInfo,
    ModelInfo,
    RunInfo,
    RunSubmission,
    WorkspaceInfo,
)
from ..base import Backend, decode_log_chunk
from . import layout, procs, snapshot
from .host import dispatch_queue, spawn_host
from .ids import new_run_id
from .store import ACTIVE_STATES, SLOT_STATES, TERMINAL_STATES, ModelRows, Store

DEFAULT_COMPUTE = "local"
DEFAULT_DATASTORE = "workspaceblobstore"  # Azure ML's name for the default datastore
CELL_FILE = "__aml_cell__.py"
REPAIRABLE = ("NotStarted", *SLOT_STATES)  # states a run can be left in by a process that died
HOSTLESS_GRACE_ENV = "AML_MAGICS_HOSTLESS_GRACE_S"  # a run Starting this long (default 15 s) without a host
# lost its submitter between claiming the slot and starting the host


class LocalBackend(Backend):
    kind = "local"

    def __init__(self, config: WorkspaceConfig):
        self.config = config
        self.path = config.path
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InvalidInput(f"cannot create workspace folder {self.path}: {exc.strerror}") from None
        self.store = Store(self.path / layout.DB_NAME)
        self.models = ModelRows(self.store)
        self.deployments = LocalDeployments(self)
        self.tracking_uri = "sqlite://" + str(self.path / layout.DB_NAME)
        if not self.store.query_one("SELECT 1 FROM computes WHERE name=?", (DEFAULT_COMPUTE,)):
            self.store.ensure_compute(DEFAULT_COMPUTE, "local", os.cpu_count() or 1)
        if not self.store.query_one("SELECT 1 FROM datastores LIMIT 1"):
            ds = self.path / "datastores" / DEFAULT_DATASTORE
            ds.mkdir(parents=True, exist_ok=True)
            self.store.ensure_datastore(DEFAULT_DATASTORE, "local", str(ds), True)

    # -- workspace ---------------------------------------------------------------------------

    def workspace_info(self) -> WorkspaceInfo:
        exps = self.store.query_one("SELECT COUNT(*) FROM experiments")[0]
        runs = self.store.count_runs()
        active = self.store.count_runs(status=ACTIVE_STATES)
        return WorkspaceInfo(
            name=self.config.name, backend="local", location=str(self.path), source=self.config.source,
            experiments=exps, runs=runs, active_runs=active, computes=self.list_computes(),
        )

    def doctor(self, recover: bool = False):
        from .doctor import run_doctor

        return run_doctor(self, recover=recover)

    # -- submitting --------------------------------------------------------------------------------

    def _compute_limit(self, compute: str) -> int:
        row = self.store.query_one("SELECT max_concurrent FROM computes WHERE name=?", (compute,))
        if row is None:
            names = [r[0] for r in self.store.query("SELECT name FROM computes")]
            raise NotFound.with_suggestions(
                "compute target", compute, names, hint="list them with %aml compute; create one with "
                "%aml compute create NAME --max-concurrent N",
            )
        return row[0]

    def submit(self, sub: RunSubmission) -> str:
        # everything that can be refused is checked before anything is written
        limit = self._compute_limit(sub.compute)
        inputs = {name: self.resolve_input(uri) for name, uri in sub.inputs.items()}
        source = Path(sub.source_dir).resolve()
        if not source.is_dir():
            raise InvalidInput(f"source folder {source} does not exist")
        if sub.kind in ("script", "notebook") and not (source / sub.entry).is_file():
            raise NotFound(f"{sub.kind} {sub.entry!r} not found in {source}")
        files = snapshot.plan_snapshot(source, sub.snapshot_max_bytes, exclude=(self.path,))
        pickled_inputs = None
        if sub.in_values:
            import cloudpickle

            try:
                pickled_inputs = cloudpickle.dumps(sub.in_values)
            except Exception as exc:
                raise InvalidInput(f"--in: cannot pickle {', '.join(sub.in_values)}: {exc}") from None
        python = self.environment_python(sub.environment) if sub.environment else None
        self.reconcile()

        run_id = new_run_id(sub.experiment)
        folder = layout.run_dir(self.path, run_id)
        spec = {
            "kind": sub.kind, "entry": sub.entry, "args": _substitute_inputs(sub.args, inputs), "parameters": sub.parameters,
            "experiment": sub.experiment, "in_vars": sorted(sub.in_values), "out_vars": list(sub.out_vars),
            "inputs": inputs, "source_dir": str(source), "environment_variables": sub.environment_variables,
            "python": python, "environment": sub.environment,
            "submitter": [os.getpid(), procs.start_token(os.getpid())],  # who prepares it, until it has started
        }
        if sub.settings:
            spec["settings"] = sub.settings
            for key in ("primary_metric", "goal"):  # what dashboards rank the children by
                if key in sub.settings:
                    spec[key] = sub.settings[key]
        if sub.parent_run_id and not self.has_run(sub.parent_run_id):
            raise NotFound(f"parent run {sub.parent_run_id!r} not found")
        self.store.create_run(run_id, sub.experiment, sub.kind, compute=sub.compute, status="NotStarted",
                              display_name=sub.display_name, spec=spec, tags=sub.tags, parent_run_id=sub.parent_run_id)
        if sub.params:
            self.store.set_tags(run_id, sub.params, table="run_params")
        try:
            snapshot.copy_snapshot(files, folder / "snapshot")
            (folder / "snapshot" / "outputs").mkdir(exist_ok=True)
            if sub.kind == "cell":
                (folder / "snapshot" / sub.entry).write_text(sub.code or "", encoding="utf-8")
            (folder / "io").mkdir(parents=True, exist_ok=True)
            if pickled_inputs is not None:
                (folder / "io" / "in.pkl").write_bytes(pickled_inputs)
            (folder / "io" / "spec.json").write_text(json.dumps(spec))
        except OSError as exc:
            self.store.transition(run_id, "Failed", reason="snapshot failed", error=f"could not prepare the run: {exc}")
            raise InvalidInput(f"could not prepare the run's snapshot: {exc}") from None
        except BaseException:  # interrupted while preparing it: it never started
            self.store.transition(run_id, "Canceled", only_from=("NotStarted",), reason="interrupted before it started")
            raise
        if sub.kind == "sweep":  # a sweep's controller only orchestrates: it takes no slot, its trials do
            self.store.transition(run_id, "Starting", only_from=("NotStarted",))
            spawn_host(self.path, run_id, self.store)
        elif self.store.claim_slot(run_id, sub.compute, limit):
            spawn_host(self.path, run_id, self.store)
        else:
            self.store.transition(run_id, "Queued", only_from=("NotStarted",),
                                  reason=f"{sub.compute} is running {limit} runs")
            dispatch_queue(self.path, self.store, sub.compute)  # a slot may have freed meanwhile
        return run_id

    def start_interactive(self, experiment: str, display_name: str | None, tags: dict[str, str]) -> str:
        run_id = new_run_id(experiment)
        self.store.create_run(run_id, experiment, "interactive", compute=None, status="Running",
                              display_name=display_name, tags=tags)
        # the logging process stands in for a host: if it dies without complete(), reconcile sees it
        self.store.update_run(run_id, host_pid=os.getpid(), host_start=procs.start_token(os.getpid()))
        (layout.run_dir(self.path, run_id) / "snapshot" / "outputs").mkdir(parents=True, exist_ok=True)
        return run_id

    # -- reading runs ------------------------------------------------------------------------------

    def _row(self, run_id: str):
        row = self.store.get_run(run_id)
        if row is None:
            raise NotFound.with_suggestions("run", run_id, self.store.run_ids(),
                                            hint="list runs with %aml runs")
        return row

    def _info(self, row, tags=None, params=None, metrics=None) -> RunInfo:
        return RunInfo(
            run_id=row["run_id"], experiment=row["experiment"], status=row["status"], kind=row["kind"],
            compute=row["compute"], display_name=row["display_name"], parent_run_id=row["parent_run_id"],
            created=row["created"], started=row["started"], ended=row["ended"], exit_code=row["exit_code"],
            error=row["error"], traceback=row["traceback"], tags=tags or {}, params=params or {},
            latest_metrics=metrics or {}, spec=json.loads(row["spec"] or "{}"),
        )

    def get_run(self, run_id: str, *, with_metrics: bool = True) -> RunInfo:
        row = self._row(run_id)
        if row["status"] in REPAIRABLE:
            if self._repair_if_orphaned(row):
                row = self._row(run_id)
        metrics = {k: v[1] for k, v in self.store.latest_values(run_id).items()} if with_metrics else {}
        return self._info(row, self.store.get_tags(run_id), self.store.get_tags(run_id, table="run_params"), metrics)

    def list_runs(self, *, experiment=None, status=None, parent_run_id=None, limit=100, offset=0):
        if experiment is not None and not self.store.query_one("SELECT 1 FROM experiments WHERE name=?", (experiment,)):
            names = [e.name for e in self.list_experiments()]
            raise NotFound.with_suggestions("experiment", experiment, names, hint="list them with %aml experiments")
        rows = self.store.list_runs(experiment=experiment, status=status, parent_run_id=parent_run_id,
                                    limit=limit, offset=offset)
        if any(r["status"] in REPAIRABLE for r in rows) and any(self._repair_if_orphaned(r) for r in rows):
            rows = self.store.list_runs(experiment=experiment, status=status, parent_run_id=parent_run_id,
                                        limit=limit, offset=offset)
        pks = [r["id"] for r in rows]
        tags = self.store.tags_for_runs(pks)
        params = self.store.tags_for_runs(pks, table="run_params")
        infos = [self._info(r, tags[r["id"]], params[r["id"]], self._latest_scalars(r["run_id"])) for r in rows]
        if parent_run_id is None and limit is not None:
            total = self.store.count_runs(experiment=experiment, status=status)
        else:
            total = len(infos)
        return infos, total

    def _latest_scalars(self, run_id: str) -> dict[str, Any]:
        return {k: v[1] for k, v in self.store.latest_values(run_id).items() if v[0] == "scalar"}

    def run_ids(self) -> list[str]:
        return self.store.run_ids()

    def has_run(self, run_id: str) -> bool:
        return self.store.run_pk(run_id) is not None

    # -- liveness -----------------------------------------------------------------------------------

    def _repair_if_orphaned(self, row) -> bool:
        """An active run whose processes are all gone is marked Failed with the reason. A run left NotStarted
        by a submitter that died while preparing it is Canceled (its snapshot may be partial). A run left Starting
        without any host (its submitter was killed between claiming the slot and starting the host) has not
        run at all: its host is started now."""
        if row["status"] == "NotStarted" and not row["host_pid"]:
            submitter = json.loads(row["spec"] or "{}").get("submitter")
            if not submitter or procs.is_alive(*submitter):
                return False
            try:  # its submitter died while preparing it (a killed sweep controller): it never started
                return self.store.transition(row["run_id"], "Canceled", only_from=("NotStarted",),
                                             reason="its submitter ended before the run started; submit it again")
            except StorageError:
                return False
        if row["status"] == "Starting" and not row["host_pid"]:
            grace = float(os.environ.get(HOSTLESS_GRACE_ENV) or 15)
            if self.store.claim_hostless_start(row["run_id"], time.time() - grace):
                spawn_host(self.path, row["run_id"], self.store)
                return True
            return False
        if row["status"] not in SLOT_STATES or not row["host_pid"]:
            return False
        if procs.is_alive(row["host_pid"], row["host_start"]):
            return False
        if row["user_pid"] and procs.is_alive(row["user_pid"], row["user_start"]):
            return False
        who = "the process that was logging to it" if row["kind"] in ("interactive", "child") else "its run host"
        try:
            changed = self.store.transition(
                row["run_id"], "Failed", only_from=SLOT_STATES, reason=f"{who} ended unexpectedly",
                error=f"{who} ended without finishing the run (killed, or the machine restarted)",
            )
        except StorageError:
            return False  # a read-only workspace can still be read: the repair waits for a writable one
        if changed and row["compute"]:
            dispatch_queue(self.path, self.store, row["compute"])
        return changed

    def reconcile(self) -> list[str]:
        """Repair every stale active run; returns the ids repaired."""
        rows = self.store.list_runs(status=REPAIRABLE, top_level=False, limit=None)
        return [r["run_id"] for r in rows if self._repair_if_orphaned(r)]

    # -- cancel -----------------------------------------------------------------------------------------

    def cancel_run(self, run_id: str, reason: str | None = None) -> None:
        row = self._row(run_id)
        if row["status"] in TERMINAL_STATES:
            raise Conflict(f"run {run_id} is already {row['status']}; there is nothing to cancel")
        reason = reason or "canceled by user"
        self.store.update_run(run_id, cancel_requested=1, cancel_reason=reason)
        if self.store.transition(run_id, "Canceled", only_from=("NotStarted", "Queued"), reason=reason):
            return
        row = self._row(run_id)
        if row["kind"] in ("interactive", "child"):
            self.store.transition(run_id, "Canceled", only_from=ACTIVE_STATES, reason=reason)
            return
        if row["host_pid"] and procs.is_alive(row["host_pid"], row["host_start"]):
            if not row["user_pid"]:
                # the host is still starting (its SIGTERM handler may not be installed yet): it reads
                # cancel_requested before and after it starts the run's process, so it will cancel
                return
            if procs.send_signal(row["host_pid"], row["host_start"], signal.SIGTERM):
                return  # the host stops the run's process group
        self.store.transition(run_id, "Canceled", only_from=ACTIVE_STATES, reason=reason)

    def resume_run(self, run_id: str) -> None:
        row = self._row(run_id)
        if row["kind"] not in ("sweep", "automl"):
            raise InvalidInput(f"run {run_id} is a {row['kind']} run; only sweep and AutoML runs can be resumed")
        if row["status"] not in ("Failed", "Canceled"):
            raise Conflict(f"run {run_id} is {row['status']}; only a Failed or Canceled sweep/AutoML run can be resumed")
        if row["kind"] == "automl":
            limit = self._compute_limit(row["compute"])
            if not self.store.reopen_run(run_id):
                raise Conflict(f"run {run_id} changed state meanwhile; try again")
            # reopened as Starting: give the slot back to the queue when the compute is full
            if self.store.busy_slots(row["compute"]) > limit:
                self.store.update_run(run_id, status="Queued")
                dispatch_queue(self.path, self.store, row["compute"])
                return
        elif not self.store.reopen_run(run_id):
            raise Conflict(f"run {run_id} changed state meanwhile; try again")
        spawn_host(self.path, run_id, self.store)

    # -- metrics, logs, files ---------------------------------------------------------------------------

    def get_metrics(self, run_id: str, name: str | None = None) -> dict[str, Any]:
        self._row(run_id)
        out: dict[str, Any] = {}
        for key in self.store.metric_keys(run_id):
            if name is not None and key["name"] != name:
                continue
            kind = key["kind"]
            if kind == "scalar":
                values = self.store.series(key["id"])[2]
                out[key["name"]] = values[0] if len(values) == 1 else values
                continue
            payloads = [json.loads(r["payload"]) for r in self.store.records(key["id"])]
            if kind == "row":
                columns: dict[str, list] = {}
                for i, row in enumerate(payloads):
                    for col, value in (row.items() if isinstance(row, dict) else ()):
                        columns.setdefault(col, [None] * i).append(value)
                    for col in columns:
                        if len(columns[col]) < i + 1:
                            columns[col].append(None)
                out[key["name"]] = columns
            elif kind == "table":
                out[key["name"]] = payloads[-1] if payloads else {}
            elif kind == "image":
                paths = [p["path"] for p in payloads]
                out[key["name"]] = paths[0] if len(paths) == 1 else paths
            else:
                out[key["name"]] = payloads[0] if len(payloads) == 1 else payloads
        if name is not None and name not in out:
            raise NotFound.with_suggestions(f"metric of run {run_id}", name,
                                            [k["name"] for k in self.store.metric_keys(run_id)])
        return out

    def metric_series(self, run_id: str, name: str, since: int = 0):
        key = self.store.query_one(
            "SELECT id FROM metric_keys WHERE run=? AND name=? AND kind='scalar'", (self.store.run_pk(run_id), name)
        )
        if key is None:
            return [], since
        steps, stamps, values, cursor = self.store.series(key[0], since)
        return list(zip(steps, stamps, values)), cursor

    def run_version(self, run_id: str) -> tuple:
        """A cheap stamp that changes whenever anything a dashboard shows of the run changes."""
        row = self.store.query_one(
            """SELECT r.status, r.ended,
                 (SELECT COALESCE(SUM(c.n), 0) FROM metric_keys k JOIN metric_chunks c ON c.key_id=k.id WHERE k.run=r.id),
                 (SELECT COUNT(*) FROM metric_keys k JOIN metric_records m ON m.key_id=k.id WHERE k.run=r.id),
                 (SELECT COUNT(*) FROM status_history h WHERE h.run IN (SELECT id FROM runs WHERE parent_id=r.id)),
                 (SELECT COUNT(*) FROM run_tags t WHERE t.run=r.id), (SELECT COUNT(*) FROM run_params p WHERE p.run=r.id)
               FROM runs r WHERE r.run_id=?""",
            (run_id,),
        )
        if row is None:
            raise NotFound(f"run {run_id!r} not found")
        try:
            log_size = (layout.run_dir(self.path, run_id) / "logs" / layout.LOG_NAME).stat().st_size
        except OSError:
            log_size = 0
        return (*tuple(row), log_size)

    def metric_names(self, run_id: str) -> list[str]:
        return [k["name"] for k in self.store.metric_keys(run_id) if k["kind"] == "scalar"]

    def read_log(self, run_id: str, offset: int = 0) -> tuple[str, int]:
        self._row(run_id)
        path = layout.run_dir(self.path, run_id) / "logs" / layout.LOG_NAME
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                data = f.read()
        except FileNotFoundError:
            return "", offset
        except OSError as exc:  # a disk fault: say so, and let the rest of the run be shown
            raise StorageError(f"the log of run {run_id} cannot be read ({exc.strerror or exc})") from None
        return decode_log_chunk(data, offset)

    def list_files(self, run_id: str) -> list[str]:
        self._row(run_id)
        return layout.list_artifacts(layout.run_dir(self.path, run_id))

    def file_path(self, run_id: str, name: str) -> Path:
        folder = layout.run_dir(self.path, run_id)
        path = layout.artifact_path(folder, name)
        resolved = path.resolve()
        if folder.resolve() not in resolved.parents or not resolved.is_file():
            raise NotFound.with_suggestions(f"file of run {run_id}", name, self.list_files(run_id))
        return resolved

    def results(self, run_id: str) -> dict[str, Any]:
        path = layout.run_dir(self.path, run_id) / "io" / "out.pkl"
        if not path.is_file():
            return {}
        import cloudpickle  # noqa: F401  (needed to unpickle closures)

        with open(path, "rb") as f:
            return pickle.load(f)

    # -- model registry ----------------------------------------------------------------------------------

    def register_model(self, name: str, source: Path, *, run_id: str | None = None, tags: dict | None = None,
                       properties: dict | None = None, description: str | None = None) -> ModelInfo:
        """Copy a file or folder into the registry as the next version of ``name``, atomically:
        files are staged, then renamed into place inside the transaction that records the version."""
        import uuid

        from ...core.frameworks import detect_framework

        _check_model_name(name)
        source = Path(source)
        if not source.exists():
            raise NotFound(f"model path {source} does not exist")
        files = _model_files(source)
        if not files:
            raise InvalidInput(f"{source} holds no files to register")
        staging = self.path / "models" / ".staging" / uuid.uuid4().hex
        entry = source.name
        try:
            try:
                for src, rel in files:
                    dst = staging / entry / rel if source.is_dir() else staging / entry
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(src, dst)
            except OSError as exc:
                from ...core.errors import StorageError, storage_reason

                reason = storage_reason(exc)
                if reason is None:
                    raise
                raise StorageError(f"cannot copy {source.name} into the registry: {reason}; nothing was registered — "
                                   "free space or make the workspace writable, then register again") from None
            framework = detect_framework(staging / entry)

            def move_into_place(version: int) -> Path:
                final = self.path / "models" / name / str(version)
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(staging, final)
                return final

            row = self.models.insert_next_version(
                name, move_into_place, entry=entry, framework=framework, run_id=run_id, tags=tags,
                properties=properties, description=description)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return self._model_info(row)

    def register_run_model(self, run_id: str, name: str, model_path: str, **kwargs: Any) -> ModelInfo:
        self._row(run_id)
        folder = layout.run_dir(self.path, run_id)
        source = layout.artifact_path(folder, model_path)
        resolved = source.resolve()
        if folder.resolve() not in resolved.parents:
            raise InvalidInput(f"{model_path!r} leaves the run's folder")
        if not source.exists():
            raise NotFound.with_suggestions(f"file of run {run_id}", model_path, self.list_files(run_id))
        return self.register_model(name, source, run_id=run_id, **kwargs)

    def _model_info(self, row) -> ModelInfo:
        return ModelInfo(name=row["name"], version=row["version"], path=str(Path(row["path"]) / row["entry"]),
                         framework=row["framework"], description=row["description"], run_id=row["run_id"],
                         created=row["created"], tags=json.loads(row["tags"]), properties=json.loads(row["properties"]))

    def get_model(self, name: str, version: int | None = None) -> ModelInfo:
        row = self.models.get(name, version)
        if row is None:
            if version is not None and self.models.get(name) is not None:
                versions = [r["version"] for r in self.models.list(name=name)]
                raise NotFound(f"model {name} has no version {version}; it has {', '.join(map(str, versions))}")
            raise NotFound.with_suggestions("model", name, self.models.names(), hint="list them with %aml models")
        return self._model_info(row)

    def list_models(self, name: str | None = None, run_id: str | None = None, limit: int | None = None,
                    offset: int = 0) -> list[ModelInfo]:
        return [self._model_info(r) for r in self.models.list(name=name, run_id=run_id, limit=limit, offset=offset)]

    def add_model_tags(self, name: str, version: int, tags: dict[str, Any]) -> ModelInfo:
        self.get_model(name, version)
        self.models.update_tags(name, version, tags)
        return self.get_model(name, version)

    # -- environments ----------------------------------------------------------------------------------

    def register_environment(self, name: str, spec) -> EnvironmentInfo:
        from . import environments

        _check_model_name(name)
        packages = environments.parse_packages(spec)
        digest = environments.content_hash(packages)
        with self.store.write() as c:
            latest = c.execute("SELECT version, hash FROM environments WHERE name=? ORDER BY version DESC LIMIT 1",
                               (name,)).fetchone()
            if latest is not None and latest["hash"] == digest:
                version = latest["version"]  # the same content is the same version
            else:
                version = (latest["version"] + 1) if latest else 1
                c.execute("INSERT INTO environments(name, version, hash, packages, created) VALUES(?,?,?,?,?)",
                          (name, version, digest, json.dumps(packages), time.time()))
        return self.get_environment(name, version)

    def get_environment(self, name: str, version: int | None = None) -> EnvironmentInfo:
        sql = "SELECT * FROM environments WHERE name=?" + (" AND version=?" if version else "") + \
              " ORDER BY version DESC LIMIT 1"
        row = self.store.query_one(sql, (name, version) if version else (name,))
        if row is None:
            names = [r[0] for r in self.store.query("SELECT DISTINCT name FROM environments")]
            raise NotFound.with_suggestions("environment", name, names, hint="register one with %aml env register")
        return EnvironmentInfo(row["name"], row["version"], row["hash"], json.loads(row["packages"]), row["created"])

    def list_environments(self) -> list[EnvironmentInfo]:
        return [self.get_environment(r[0], r[1]) for r in
                self.store.query("SELECT name, version FROM environments ORDER BY name, version DESC")]

    def environment_python(self, ref: str, progress=print) -> str:
        """The interpreter for an environment: a registered NAME[:VERSION], or a requirements/yml file."""
        from . import environments

        if os.path.exists(os.path.expanduser(ref)):
            packages = environments.parse_packages(ref)
        else:
            name, _, version = ref.partition(":")
            packages = self.get_environment(name, int(version) if version.isdigit() else None).packages
        return str(environments.build(self.path / "envs", packages, progress))

    # -- experiments and computes ---------------------------------------------------------------------

    def list_experiments(self) -> list[ExperimentInfo]:
        return [ExperimentInfo(r["name"], r["run_count"], r["created"], r["last_run"])
                for r in self.store.list_experiments()]

    def list_computes(self) -> list[ComputeTarget]:
        return [ComputeTarget(r["name"], r["kind"], r["max_concurrent"], r["running"], r["queued"])
                for r in self.store.list_computes()]

    def create_compute(self, name: str, max_concurrent: int) -> ComputeTarget:
        if not name or not all(c.isalnum() or c in "-_" for c in name):
            raise InvalidInput(f"compute name {name!r}: use letters, digits, '-' and '_'")
        if max_concurrent < 1:
            raise InvalidInput("--max-concurrent must be at least 1")
        self.store.upsert_compute(name, "local", max_concurrent)
        dispatch_queue(self.path, self.store, name)
        return next(c for c in self.list_computes() if c.name == name)

    # -- datastores -------------------------------------------------------------------------------------

    def list_datastores(self) -> list[DatastoreInfo]:
        return [DatastoreInfo(r["name"], r["kind"], r["path"], bool(r["is_default"])) for r in self.store.list_datastores()]

    def _datastore_root(self, name: str | None) -> Path:
        stores = self.list_datastores()
        if name is None:
            return Path(next(s.path for s in stores if s.is_default))
        for s in stores:
            if s.name == name:
                return Path(s.path)
        raise NotFound.with_suggestions("datastore", name, [s.name for s in stores])

    @staticmethod
    def _inside(root: Path, rel: str) -> Path:
        from ...core import checks

        checks.text("datastore path", rel or "", empty=True)
        text = (rel or "").replace("\\", "/").strip("/")
        p = PurePosixPath(text)
        if p.is_absolute() or ".." in p.parts:
            raise InvalidInput(f"datastore path {rel!r} must stay inside the datastore (no '..')")
        target = (root / p) if text else root
        resolved = target.resolve()
        if resolved != root.resolve() and root.resolve() not in resolved.parents:
            raise InvalidInput(f"datastore path {rel!r} leaves the datastore (through a link)")
        return target

    def datastore_upload(self, src: Path, target: str, datastore: str | None, overwrite: bool) -> list[str]:
        root = self._datastore_root(datastore)
        src = Path(src).expanduser()
        if not src.exists():
            raise NotFound(f"{src} does not exist; give a file or folder to upload")
        dest = self._inside(root, target or "")
        pairs: list[tuple[Path, Path]] = []
        if src.is_file():
            final = dest / src.name if (dest.is_dir() or (target or "").endswith("/") or not target) else dest
            pairs.append((src, final))
        else:
            for f in sorted(src.rglob("*")):
                if f.is_file() and not f.is_symlink():
                    pairs.append((f, dest / f.relative_to(src)))
        for _, d in pairs:  # a linked folder in the datastore must not carry a write outside it
            self._inside(root, d.relative_to(root).as_posix())
        clashes = [d for _, d in pairs if d.exists()]
        if clashes and not overwrite:
            rel = clashes[0].relative_to(root).as_posix()
            raise Conflict(f"{rel} already exists in the datastore ({len(clashes)} file(s)); add --overwrite to replace")
        done = []
        for s, d in pairs:
            d.parent.mkdir(parents=True, exist_ok=True)
            tmp = d.with_name(f".{d.name}.uploading")
            shutil.copyfile(s, tmp)
            os.chmod(tmp, 0o444)  # inputs are read-only to runs
            os.replace(tmp, d)
            done.append(d.relative_to(root).as_posix())
        return done

    def datastore_list(self, path: str, datastore: str | None) -> list[DatastoreEntry]:
        root = self._datastore_root(datastore)
        base = self._inside(root, path)
        if not base.exists():
            raise NotFound(f"datastore path {path!r} does not exist; list the root with %aml datastore ls")
        if base.is_file():
            return [DatastoreEntry(base.relative_to(root).as_posix(), base.stat().st_size, False)]
        inside = root.resolve()
        return [
            DatastoreEntry(p.relative_to(root).as_posix() + ("/" if p.is_dir() else ""),
                           p.stat().st_size if p.is_file() else 0, p.is_dir())
            for p in sorted(base.iterdir()) if not p.name.endswith(".uploading")
            and (p.resolve() == inside or inside in p.resolve().parents)  # never a link out of the datastore
        ]

    @staticmethod
    def _refuse_links_out(root: Path, paths, what: str) -> None:
        inside = root.resolve()
        for p in paths:
            if p.is_symlink():
                resolved = p.resolve()
                if resolved != inside and inside not in resolved.parents:
                    raise InvalidInput(f"{p.relative_to(root).as_posix()} in {what!r} is a link that leaves the "
                                       "datastore; remove it (nothing was copied)")

    def datastore_download(self, path: str, target: Path, datastore: str | None, overwrite: bool) -> list[str]:
        root = self._datastore_root(datastore)
        src = self._inside(root, path)
        if not src.exists():
            raise NotFound(f"datastore path {path!r} does not exist")
        target = Path(target).expanduser()
        files = [src] if src.is_file() else [f for f in sorted(src.rglob("*")) if f.is_file()]
        self._refuse_links_out(root, [src] if src.is_file() else sorted(src.rglob("*")), path)
        pairs = [(f, (target / f.name) if src.is_file() else (target / f.relative_to(src))) for f in files]
        clashes = [d for _, d in pairs if d.exists()]
        if clashes and not overwrite:
            raise Conflict(f"{clashes[0]} already exists; add --overwrite to replace")
        for s, d in pairs:
            d.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(s, d)
        return [str(d) for _, d in pairs]

    def resolve_input(self, uri: str) -> str:
        if not uri.startswith("datastore:"):
            raise InvalidInput(f"input {uri!r}: use datastore:PATH or datastore:NAME/PATH (azureml:// URIs with azure)")
        rest = uri[len("datastore:"):].lstrip("/")
        names = {s.name for s in self.list_datastores()}
        first, _, tail = rest.partition("/")
        datastore, rel = (first, tail) if first in names and tail else (None, rest)
        root = self._datastore_root(datastore)
        path = self._inside(root, rel)
        if not path.exists():
            raise NotFound(f"input {uri!r}: nothing at that datastore path; upload it with %aml datastore upload")
        if path.is_dir():
            self._refuse_links_out(root, sorted(path.rglob("*")), uri)
        return str(path)


def _substitute_inputs(args: list[str], inputs: dict[str, str]) -> list[str]:
    """Azure ML's ``${{inputs.NAME}}`` placeholders in arguments become the input's path.

    ``${inputs.NAME}`` works too: IPython turns ``{{`` into ``{`` in magic lines."""
    import re

    def replace(match: "re.Match[str]") -> str:
        name = match.group(1)
        if name not in inputs:
            raise InvalidInput(f"argument uses ${{{{inputs.{name}}}}} but there is no --input {name}=datastore:PATH")
        return inputs[name]

    return [re.sub(r"\$\{\{?\s*inputs\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}?", replace, a) for a in args]


def _check_model_name(name: str) -> None:
    import re

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,254}", name or ""):
        raise InvalidInput(f"model name {name!r}: use letters, digits, '-', '_' and '.', starting with a letter or digit")


def _model_files(source: Path) -> list[tuple[Path, str]]:
    """Regular files of a model file or folder; links that leave the folder are not followed."""
    if source.is_file():
        return [(source, source.name)]
    root = source.resolve()
    out = []
    for f in sorted(source.rglob("*")):
        if f.is_symlink() and root not in f.resolve().parents:
            continue
        if f.is_file():
            out.append((f, f.relative_to(source).as_posix()))
    return out


# -- deployments ------------------------------------------------------------------------------------------

DEPLOYMENT_STATES_ALIVE = ("Transitioning", "Healthy", "Unhealthy")


class LocalDeployments:
    """Local scoring services: records in the store, files in ``deployments/<name>/``, one supervisor each."""

    def __init__(self, backend: "LocalBackend"):
        self.backend = backend
        self.store = backend.store
        self.root = backend.path / "deployments"

    def _row(self, name: str):
        row = self.store.query_one("SELECT * FROM deployments WHERE name=?", (name,))
        if row is None:
            names = [r[0] for r in self.store.query("SELECT name FROM deployments")]
            raise NotFound.with_suggestions("service", name, names, hint="list them with %aml services")
        return row

    def _info(self, row) -> DeploymentInfo:
        spec = json.loads((self.root / row["name"] / "spec.json").read_text()) if (self.root / row["name"] / "spec.json").exists() else {}
        return DeploymentInfo(name=row["name"], state=row["state"], scoring_uri=row["scoring_uri"],
                              models=json.loads(row["models"]), host=row["host"], port=row["port"],
                              auth=spec.get("auth", True), restarts=row["restarts"], error=row["error"],
                              created=row["created"], updated=row["updated"])

    def _reconcile(self, row):
        """A record whose supervisor is gone is shown as it is: not Healthy."""
        if row["state"] in DEPLOYMENT_STATES_ALIVE and row["supervisor_pid"] and not procs.is_alive(
                row["supervisor_pid"], row["supervisor_start"]):
            with self.store.write() as c:
                c.execute("UPDATE deployments SET state='Failed', error=?, updated=? WHERE name=? AND state=?",
                          ("its supervisor process is gone (killed, or the machine restarted); redeploy with --update",
                           time.time(), row["name"], row["state"]))
            return self._row(row["name"])
        return row

    def get(self, name: str):
        return self._info(self._reconcile(self._row(name)))

    def list(self):
        return [self._info(self._reconcile(r)) for r in self.store.query("SELECT * FROM deployments ORDER BY name")]

    def keys(self, name: str) -> tuple[str, str]:
        self._row(name)
        data = json.loads((self.root / name / "keys.json").read_text())
        return data["primary"], data["secondary"]

    def regenerate_key(self, name: str, which: str) -> None:
        import secrets

        which = which.lower()
        if which not in ("primary", "secondary"):
            raise InvalidInput("key type must be Primary or Secondary")
        self._row(name)
        with self._one_at_a_time(name):
            folder = self.root / name
            data = json.loads((folder / "keys.json").read_text())
            data[which] = secrets.token_urlsafe(32)
            _write_private(folder / "keys.json", json.dumps(data))
            row = self._row(name)
            if self._signal(row, signal.SIGHUP):  # a new server process picks the keys up; no request fails
                self._wait(name, 120, after=row["updated"])

    def logs(self, name: str, tail: int | None = None) -> str:
        from ...scoring.logfile import read_tail

        self._row(name)
        return read_tail(self.root / name / "service.log", tail)

    def _one_at_a_time(self, name: str):
        """Only one deploy, update, restart or delete of a service at a time, across kernels and tabs: the others
        are refused at once (a double click on Deploy must not start two supervisors on two ports)."""
        import contextlib

        from filelock import FileLock, Timeout

        locks = self.root / ".locks"
        locks.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(locks / f"{name}.lock"), timeout=0)

        @contextlib.contextmanager
        def held():
            try:
                lock.acquire()
            except Timeout:
                raise Conflict(f"service {name} is being deployed or changed right now (another tab or kernel); "
                               f"wait for it to finish, then use --update to change it") from None
            try:
                yield
            finally:
                lock.release()

        return held()

    def deploy(self, name: str, models: list, score_path: Path | None, *, host: str, port: int | None,
               auth: bool, update: bool, timeout: float, request_timeout_s: float = 60.0,
               max_body_bytes: int = 100 * 1024 * 1024, environment: str | None = None):
        import re

        if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9][a-z0-9-]{1,30}[a-z0-9]", name):
            raise InvalidInput(f"service name {name!r}: 3-32 lowercase letters, digits and '-' (as Azure ML asks)")
        with self._one_at_a_time(name):
            return self._deploy(name, models, score_path, host=host, port=port, auth=auth, update=update,
                                timeout=timeout, request_timeout_s=request_timeout_s, max_body_bytes=max_body_bytes,
                                environment=environment)

    def _deploy(self, name: str, models: list, score_path: Path | None, *, host: str, port: int | None,
                auth: bool, update: bool, timeout: float, request_timeout_s: float, max_body_bytes: int,
                environment: str | None):
        import secrets
        import socket
        import sqlite3

        from ...scoring.default_scorer import default_score_py
        existing = self.store.query_one("SELECT * FROM deployments WHERE name=?", (name,))
        if existing is not None and not update:
            raise Conflict(f"service {name} exists; add --update to swap its model in place, or delete it first")
        if existing is None and update:
            raise NotFound(f"service {name} does not exist; deploy it without --update")
        infos = [self.backend.get_model(m, v) for m, v in models]
        if not infos:
            raise InvalidInput("name at least one model to deploy, as NAME or NAME:VERSION")
        if score_path is not None:
            score_path = Path(score_path).expanduser()
            if not score_path.is_file():
                raise NotFound(f"score script {score_path} not found")
            source = score_path.read_text(encoding="utf-8")
        else:
            source = default_score_py(infos[0].framework, infos[0].name, infos[0].version)
            if source is None:
                raise InvalidInput(f"model {infos[0].id} ({infos[0].framework or 'unknown framework'}) has no default "
                                   "scorer: give a score.py with init() and run(raw_data) (--score score.py)")
        python = self.backend.environment_python(environment) if environment else None
        if existing is not None:
            port, host = existing["port"], existing["host"]
        elif port is None:
            with socket.socket() as s:
                s.bind((host, 0))
                port = s.getsockname()[1]
        folder = self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        model_paths = {}
        for m in infos:
            model_paths[m.name] = m.path
            model_paths[m.id] = m.path
        model_dir = str(Path(infos[0].path).parent) if len(infos) == 1 else str(self.backend.path / "models")
        spec = {"entry_script": "score.py", "model_dir": model_dir, "model_paths": model_paths, "host": host,
                "port": port, "auth": auth, "models": [m.id for m in infos], "timeout_s": request_timeout_s,
                "max_body": max_body_bytes, "python": python, "environment": environment}
        _write_atomic(folder / "score.py", source)
        _write_atomic(folder / "spec.json", json.dumps(spec, indent=2))
        if not (folder / "keys.json").exists():
            _write_private(folder / "keys.json", json.dumps({"primary": secrets.token_urlsafe(32),
                                                             "secondary": secrets.token_urlsafe(32)}))
        self._image_record(folder, spec, infos)
        shown_host = f"[{host}]" if ":" in host else host
        uri = f"http://{shown_host}:{port}/score"
        now = time.time()
        with self.store.write() as c:
            if existing is None:
                try:
                    c.execute("""INSERT INTO deployments(name, models, state, host, port, scoring_uri, created, updated)
                                 VALUES(?,?,?,?,?,?,?,?)""", (name, json.dumps(spec["models"]), "Transitioning", host,
                                                              port, uri, now, now))
                except sqlite3.IntegrityError:  # an older aml-magics without the lock deployed it meanwhile
                    raise Conflict(f"service {name} was deployed meanwhile; use --update to change it") from None
            else:
                c.execute("UPDATE deployments SET models=?, updated=? WHERE name=?",
                          (json.dumps(spec["models"]), now, name))
        row = self._row(name)
        if existing is not None and procs.is_alive(row["supervisor_pid"], row["supervisor_start"]):
            before = row["updated"]
            self._signal(row, signal.SIGHUP)
            self._wait(name, timeout, after=before)
        else:
            self._spawn(name)
            self._wait(name, timeout)
        return self.get(name)

    def _image_record(self, folder: Path, spec: dict, infos) -> None:
        """What a container build needs (Dockerfile, score.py, model references), kept with the service."""
        image = folder / "image"
        image.mkdir(exist_ok=True)
        (image / "manifest.json").write_text(json.dumps({"models": spec["models"], "entry_script": "score.py",
                                                         "model_paths": spec["model_paths"]}, indent=2))
        (image / "Dockerfile").write_text(
            "FROM mcr.microsoft.com/azureml/minimal-ubuntu22.04-py39-cpu-inference:latest\n"
            "COPY score.py /var/azureml-app/score.py\n"
            + "".join(f"COPY models/{m.name}/{m.version} /var/azureml-app/azureml-models/{m.name}/{m.version}\n"
                      for m in infos)
            + "ENV AZUREML_ENTRY_SCRIPT=score.py AZUREML_MODEL_DIR=/var/azureml-app/azureml-models\n"
            "CMD [\"runsvdir\", \"/var/runit\"]\n")

    def build_image(self, name: str) -> str:
        import subprocess

        self._row(name)
        context = self.root / name / "image"
        docker = shutil.which("docker")
        engine = docker and subprocess.run([docker, "info"], capture_output=True, timeout=30).returncode == 0
        if not engine:
            raise BackendUnavailable(f"no Docker engine runs here, so the image was not built; its build context "
                                     f"(Dockerfile, manifest.json) is at {context}")
        tag = f"aml-magics/{name}:latest"
        staged = context / "build"
        shutil.rmtree(staged, ignore_errors=True)
        staged.mkdir()
        shutil.copyfile(self.root / name / "score.py", staged / "score.py")
        shutil.copyfile(context / "Dockerfile", staged / "Dockerfile")
        spec = json.loads((self.root / name / "spec.json").read_text())
        for ref in spec["models"]:
            model_name, _, version = ref.rpartition(":")
            model = self.backend.get_model(model_name, int(version))
            src = Path(model.path).parent
            shutil.copytree(src, staged / "models" / model.name / str(model.version))
        out = subprocess.run([docker, "build", "-t", tag, str(staged)], capture_output=True, text=True)
        if out.returncode != 0:
            raise InvalidInput(f"docker build failed: {(out.stderr.strip().splitlines() or ['?'])[-1]}")
        return f"Built image {tag}"

    def _spawn(self, name: str) -> None:
        import subprocess
        import sys

        log = open(self.root / name / "supervisor.log", "ab")
        proc = subprocess.Popen([sys.executable, "-m", "aml_magics.backends.local.supervisor", str(self.backend.path),
                                 name], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True, cwd=str(self.backend.path))
        log.close()
        from .host import _reap_later

        _reap_later(proc)
        with self.store.write() as c:
            c.execute("UPDATE deployments SET supervisor_pid=?, supervisor_start=? WHERE name=?",
                      (proc.pid, procs.start_token(proc.pid), name))

    def _wait(self, name: str, timeout: float, after: float | None = None) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            row = self._row(name)
            if row["state"] in ("Healthy", "Failed") and (after is None or row["updated"] > after):
                if row["state"] == "Failed":
                    raise InvalidInput(f"service {name} failed to start: {row['error']}")
                return
            time.sleep(0.05)
        raise InvalidInput(f"service {name} is still starting after {timeout:g} s; see %aml service {name} --logs")

    def _signal(self, row, sig) -> bool:
        return procs.send_signal(row["supervisor_pid"], row["supervisor_start"], sig)

    def restart(self, name: str, timeout: float = 60.0) -> bool:
        """Start a service again whose supervisor is gone (a crash, a reboot); False when it is alive."""
        with self._one_at_a_time(name):
            return self._restart(name, timeout)

    def _restart(self, name: str, timeout: float) -> bool:
        row = self._row(name)
        if procs.is_alive(row["supervisor_pid"], row["supervisor_start"]):
            return False
        # what is left of its group (an orphaned server); never a stranger that now has the pid
        procs.signal_group(row["supervisor_pid"], row["supervisor_start"], procs.SIGKILL)
        with self.store.write() as c:
            c.execute("UPDATE deployments SET state='Transitioning', error=NULL, updated=? WHERE name=?",
                      (time.time(), name))
        self._spawn(name)
        self._wait(name, timeout)
        return True

    def delete(self, name: str, timeout: float = 40.0) -> None:
        self._row(name)
        with self._one_at_a_time(name):
            self._delete(name, timeout)

    def _delete(self, name: str, timeout: float) -> None:
        row = self._row(name)
        if self._signal(row, signal.SIGTERM):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and procs.is_alive(row["supervisor_pid"], row["supervisor_start"]):
                time.sleep(0.05)
            if procs.is_alive(row["supervisor_pid"], row["supervisor_start"]):
                procs.signal_group(row["supervisor_pid"], row["supervisor_start"], procs.SIGKILL)
        with self.store.write() as c:
            c.execute("DELETE FROM deployments WHERE name=?", (name,))
        shutil.rmtree(self.root / name, ignore_errors=True)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _write_private(path: Path, text: str) -> None:
    """Secrets: a 0600 file, replaced atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)
