"""Runs of the local workspace: submitted as detached hosts on local compute targets, read from the store.

A run whose processes vanished (a killed host, a machine restart) is repaired by the next reader
(``repair.py``); every liveness decision checks the recorded start token of a pid (``procs``).
"""
from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...core.contract import RunsBackend, Tracker
from ...core.errors import Conflict, InvalidInput, NotFound, StorageError, storage_reason
from ...core.names import ARG_PLACEHOLDER, run_depth
from ...core.states import ACTIVE_STATES, TERMINAL_STATES
from ...core.types import COUNT_CAP, AtLeast, RunInfo, RunSubmission
from ..common import snapshot
from ..common.logs import decode_log_tail, tail_start
from ..common.pickles import pickle_inputs
from . import layout, procs
from .host import dispatch_queue, spawn_host
from .ids import new_run_id
from .repair import repair_if_orphaned

if TYPE_CHECKING:  # pragma: no cover
    from .backend import LocalBackend


RESUMABLE = ("sweep", "automl", "pipeline", "batch")
COUNT_SECONDS = 0.02  # the time a run list may spend counting the runs it does not show


class LocalRuns(RunsBackend):
    def __init__(self, backend: "LocalBackend"):
        self.backend = backend
        self.store = backend.store
        self.path = backend.path

    # -- submitting --------------------------------------------------------------------------------

    def submit(self, sub: RunSubmission) -> str:
        # everything that can be refused is checked before anything is written
        limit = self.backend.computes.limit(sub.compute)
        inputs = {name: self.backend.datastores.resolve_input(uri) for name, uri in sub.inputs.items()}
        outputs = {name: self.backend.datastores.resolve_output(uri) for name, uri in sub.outputs.items()}
        clash = sorted(set(inputs) & set(outputs))
        if clash:
            raise InvalidInput(f"{', '.join(clash)} is both an input and an output of the run")
        source = Path(sub.source_dir).resolve()
        if not source.is_dir():
            raise InvalidInput(f"source folder {source} does not exist")
        if sub.kind in ("script", "notebook") and not (source / sub.entry).is_file():
            raise NotFound(f"{sub.kind} {sub.entry!r} not found in {source}")
        files = snapshot.plan_snapshot(source, sub.snapshot_max_bytes, exclude=(self.path,),
                                       note=not sub.parent_run_id)  # (a trial's: said once, for its sweep)
        pickled_inputs = pickle_inputs(sub.in_values)
        python = self.backend.environments.python(sub.environment) if sub.environment else None
        if sub.parent_run_id and not self.exists(sub.parent_run_id):
            raise NotFound(f"parent run {sub.parent_run_id!r} not found")
        self.reconcile()

        run_id = new_run_id(sub.experiment)
        folder = layout.run_dir(self.path, run_id)
        spec = {
            "kind": sub.kind, "entry": sub.entry, "parameters": sub.parameters,
            "args": _substitute_inputs(sub.args, inputs, {k: str(v) for k, v in outputs.items()}),
            "outputs": {k: str(v) for k, v in outputs.items()},
            "experiment": sub.experiment, "in_vars": sorted(sub.in_values), "out_vars": list(sub.out_vars),
            "inputs": inputs, "source_dir": str(source), "environment_variables": sub.environment_variables,
            "python": python, "environment": sub.environment, "timeout_s": sub.timeout_s,
            "submitter": [os.getpid(), procs.start_token(os.getpid())],  # who prepares it, until it has started
            "depth": run_depth() + 1,  # its process's AML_MAGICS_DEPTH (runs it submits are one deeper)
        }
        if sub.engine is not None:
            spec["settings"] = sub.engine.to_settings()
            spec["primary_metric"], spec["goal"] = sub.engine.primary_metric, sub.engine.goal  # how children rank
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
            for out in outputs.values():
                out.mkdir(parents=True, exist_ok=True)
            if pickled_inputs is not None:
                (folder / "io" / "in.pkl").write_bytes(pickled_inputs)
            (folder / "io" / "spec.json").write_text(json.dumps(spec))
        except OSError as exc:
            reason = storage_reason(exc)
            self.store.transition(run_id, "Failed", reason="snapshot failed",
                                  error=f"could not prepare the run: {reason or exc}")
            if reason is None:
                raise InvalidInput(f"could not prepare the run's snapshot: {exc}") from None
            for part in (folder / "snapshot", folder / "io"):  # what was copied before the disk filled: freed
                shutil.rmtree(part, ignore_errors=True)
            (folder / "snapshot").mkdir(exist_ok=True)
            raise StorageError(f"could not prepare the run: {reason}; it did not start (recorded as Failed) — free "
                               "space or make the workspace writable, then submit it again") from None
        except BaseException:  # interrupted while preparing it: it never started
            self.store.transition(run_id, "Canceled", only_from=("NotStarted",), reason="interrupted before it started")
            raise
        if sub.kind in ("sweep", "pipeline"):  # a controller only orchestrates: it takes no slot, its children do
            self.store.transition(run_id, "Starting", only_from=("NotStarted",))
            spawn_host(self.path, run_id, self.store)
        elif self.store.claim_slot(run_id, sub.compute, limit):
            # a controller's children (sweep trials, pipeline steps) come many and short: their hosts start warm
            spawn_host(self.path, run_id, self.store, warm=sub.parent_run_id is not None)
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

    def tracker(self) -> Tracker:
        from .tracker import tracker_for, tracking_uri

        return tracker_for(tracking_uri(self.backend.db_path))

    # -- reading runs ------------------------------------------------------------------------------

    def _row(self, run_id: str):
        row = self.store.get_run(run_id)
        if row is None:
            raise NotFound.with_suggestions("run", run_id, self.store.run_ids(), hint="list runs with %aml runs")
        return row

    @staticmethod
    def _info(row, tags=None, params=None, metrics=None) -> RunInfo:
        return RunInfo(
            run_id=row["run_id"], experiment=row["experiment"], status=row["status"], kind=row["kind"],
            compute=row["compute"], display_name=row["display_name"], parent_run_id=row["parent_run_id"],
            created=row["created"], started=row["started"], ended=row["ended"], exit_code=row["exit_code"],
            error=row["error"], traceback=row["traceback"], tags=tags or {}, params=params or {},
            latest_metrics=metrics or {}, spec=json.loads(row["spec"] or "{}"),
        )

    def get(self, run_id: str, *, with_metrics: bool = True) -> RunInfo:
        if with_metrics:
            self._own_writes()
        row = self._row(run_id)
        if row["status"] in ("NotStarted", "Starting", "Running", "Finalizing"):
            if repair_if_orphaned(self.backend, row):
                row = self._row(run_id)
        metrics = {k: v[1] for k, v in self.store.latest_values(run_id).items()} if with_metrics else {}
        return self._info(row, self.store.get_tags(run_id), self.store.get_tags(run_id, table="run_params"), metrics)

    def list(self, *, experiment=None, status=None, parent_run_id=None, limit=100, offset=0, tags=None):
        if experiment is not None and not self.store.has_experiment(experiment):
            names = [e.name for e in self.backend.experiments.list()]
            raise NotFound.with_suggestions("experiment", experiment, names, hint="list them with %aml experiments")
        query = dict(experiment=experiment, status=status, parent_run_id=parent_run_id, tags=tags, limit=limit,
                     offset=offset)
        rows = self.store.list_runs(**query)
        if any(r["status"] in ("NotStarted", "Starting", "Running", "Finalizing") for r in rows) \
                and any(repair_if_orphaned(self.backend, r) for r in rows):
            rows = self.store.list_runs(**query)
        pks = [r["id"] for r in rows]
        tag_rows = self.store.tags_for_runs(pks)
        params = self.store.tags_for_runs(pks, table="run_params")
        latest = self.store.latest_scalars_for_runs(pks)
        infos = [self._info(r, tag_rows[r["id"]], params[r["id"]], latest[r["id"]]) for r in rows]
        if parent_run_id is None and limit is not None and len(infos) == limit:
            # counted up to COUNT_CAP past the page, for at most COUNT_SECONDS: a million runs are not counted one by
            # one for "50 of …"; past either, the total says "at least" (core.types.AtLeast)
            cap = offset + len(infos) + COUNT_CAP + 1
            total = self.store.count_runs(experiment=experiment, status=status, tags=tags, cap=cap,
                                          within=COUNT_SECONDS)
            if total is None:
                more = self.store.list_runs(**{**query, "limit": 1, "offset": offset + len(infos)})
                total = AtLeast(offset + len(infos) + 1) if more else offset + len(infos)
            elif total >= cap:
                total = AtLeast(cap)
        elif parent_run_id is None and limit is not None and (infos or not offset):
            total = offset + len(infos)  # the last page: nothing to count
        elif parent_run_id is None and limit is not None:  # past the end
            total = self.store.count_runs(experiment=experiment, status=status, tags=tags, cap=COUNT_CAP,
                                          within=COUNT_SECONDS)
            total = AtLeast(COUNT_CAP) if total is None or total >= COUNT_CAP else total
        else:
            total = len(infos)
        return infos, total

    def ids(self) -> list[str]:
        return self.store.run_ids()

    def matching(self, part: str, limit: int) -> list[str]:
        return self.store.run_ids_matching(part, limit)

    def named(self, display_name: str, limit: int) -> list[str]:
        return self.store.run_ids_named(display_name, limit)

    def exists(self, run_id: str) -> bool:
        return self.store.run_pk(run_id) is not None

    def reconcile(self) -> list[str]:
        """Repair every stale active run; returns the ids repaired."""
        rows = self.store.list_runs(status=("NotStarted", "Starting", "Running", "Finalizing"), top_level=False,
                                    limit=None)
        return [r["run_id"] for r in rows if repair_if_orphaned(self.backend, r)]

    # -- cancel and resume ----------------------------------------------------------------------------

    def cancel(self, run_id: str, reason: str | None = None) -> None:
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
        elif row["user_pid"] and procs.runs_for(row["user_pid"], row["user_start"], run_id):
            _stop_unsupervised(row["user_pid"], row["user_start"])  # its host is gone: nobody else would stop it
        self.store.transition(run_id, "Canceled", only_from=ACTIVE_STATES, reason=reason)

    def resume(self, run_id: str) -> None:
        row = self._row(run_id)
        if row["kind"] not in RESUMABLE:
            raise InvalidInput(f"run {run_id} is a {row['kind']} run; only sweep, AutoML, pipeline and batch runs can "
                               "be resumed")
        if row["status"] not in ("Failed", "Canceled"):
            raise Conflict(f"run {run_id} is {row['status']}; only a Failed or Canceled sweep, AutoML, pipeline or "
                           "batch run can be resumed")
        if row["kind"] in ("automl", "batch"):
            limit = self.backend.computes.limit(row["compute"])
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

    def _own_writes(self) -> None:
        """A process that logs to this workspace reads its own values (``tracker.flush_here``)."""
        module = sys.modules.get("aml_magics.backends.local.tracker")  # (not imported: nothing logged here)
        if module is not None:
            module.flush_here(self.backend.db_path)

    def metrics(self, run_id: str, name: str | None = None) -> dict[str, Any]:
        self._own_writes()
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
        self._own_writes()
        key = self.store.scalar_key(run_id, name)
        if key is None:
            return [], since
        steps, stamps, values, cursor = self.store.series(key, since)
        return list(zip(steps, stamps, values)), cursor

    def display_series(self, run_id: str, name: str, limit: int):
        self._own_writes()
        key = self.store.scalar_key(run_id, name)
        return None if key is None else self.store.display_series(key, limit)

    def version(self, run_id: str) -> tuple:
        """A cheap stamp that changes whenever anything a dashboard shows of the run changes."""
        self._own_writes()
        counts = self.store.run_version(run_id)
        if counts is None:
            raise NotFound(f"run {run_id!r} not found")
        try:
            log_size = (layout.run_dir(self.path, run_id) / "logs" / layout.LOG_NAME).stat().st_size
        except OSError:
            log_size = 0
        return (*counts, log_size)

    def metric_names(self, run_id: str) -> list[str]:
        self._own_writes()
        return [k["name"] for k in self.store.metric_keys(run_id) if k["kind"] == "scalar"]

    def read_log(self, run_id: str, offset: int = 0, tail: int | None = None) -> tuple[str, int]:
        self._row(run_id)
        path = layout.run_dir(self.path, run_id) / "logs" / layout.LOG_NAME
        try:
            with open(path, "rb") as f:
                start = tail_start(os.fstat(f.fileno()).st_size, offset, tail)
                f.seek(start)
                data = f.read()
        except FileNotFoundError:
            return "", offset
        except OSError as exc:  # a disk fault: say so, and let the rest of the run be shown
            raise StorageError(f"the log of run {run_id} cannot be read ({exc.strerror or exc})") from None
        return decode_log_tail(data, start, offset)

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


def _substitute_inputs(args: list[str], inputs: dict[str, str], outputs: dict[str, str] | None = None) -> list[str]:
    """Azure ML's ``${{inputs.NAME}}`` / ``${{outputs.NAME}}`` placeholders in arguments become the folder's path
    (``${inputs.NAME}`` too: ``names.ARG_PLACEHOLDER``)."""
    outputs = outputs or {}

    def replace(match) -> str:
        which, name = match.group(1), match.group(2)
        found = (inputs if which == "inputs" else outputs).get(name)
        if found is None:
            option = "--input" if which == "inputs" else "output"
            raise InvalidInput(f"argument uses ${{{{{which}.{name}}}}} but there is no {option} {name}=datastore:PATH")
        return found

    return [ARG_PLACEHOLDER.sub(replace, a) for a in args]


def _stop_unsupervised(pid: int, token: str | None, grace_s: float = 2.0) -> None:
    """Stop the process group of a run whose host is gone (killed): SIGTERM, then SIGKILL after ``grace_s``. Before,
    the run was marked Canceled while its code ran on, logging to it, until ``doctor`` found it."""
    import time

    procs.signal_group(pid, token, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while procs.is_alive(pid, token) and time.monotonic() < deadline:
        time.sleep(0.02)
    procs.signal_group(pid, token, procs.SIGKILL)  # what is left of its group (a child that ignored SIGTERM)
