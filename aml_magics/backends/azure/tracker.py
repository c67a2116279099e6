"""The tracker inside an Azure ML job: the same logging calls, sent to the MLflow tracking endpoint the job's
environment provides (``MLFLOW_TRACKING_URI``, ``MLFLOW_RUN_ID``; the token from ``MLFLOW_TRACKING_TOKEN`` or
``AZUREML_RUN_TOKEN``). Metrics are buffered and sent in batches every second and at exit; nothing waits on the
network in ``run.log``. Standard library and ``requests`` only: it is shipped with a job whose environment lacks
aml-magics (``ops.RUNTIME_FILES``).

A forked child (a ``multiprocessing`` pool worker in the job) forgets the parent's buffered points (the parent sends
those: a child that exited normally sent every one of them again), gets its own HTTP session (two processes on one
keep-alive socket mix their requests), starts its own flush thread on its first value and sends the rest when it
ends (``core.children``, as the local tracker).
"""
from __future__ import annotations

import atexit
import os
import sys
import threading
import time
import weakref
from collections import deque
from typing import Any, Callable

from ...core import checks, children
from ...core.contract import Tracker

FLUSH_S = 1.0
ENV_EXPERIMENT = "AML_MAGICS_EXPERIMENT"

_trackers: dict[str, "MlflowTracker"] = {}
_every: "weakref.WeakSet[MlflowTracker]" = weakref.WeakSet()  # those made over a workspace's client too
_inherited: list = []  # HTTP sessions a forked child inherited: never used there (nor closed)


def _after_fork_in_child() -> None:
    for tracker in list(_every):
        tracker._forked()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def flush_all(timeout: float = -1) -> None:
    """The last flush of a process that is ending (``core.children``): what cannot be sent now is lost with it.
    ``timeout`` bounds the wait for a flush the flush thread has under way."""
    for tracker in list(_every):
        try:
            tracker.flush(timeout)
        except Exception as exc:  # noqa: BLE001 - the process ends next
            left = tracker.pending()
            if left:
                print(f"aml-magics: {_values_or_tags(left)} could not be sent before this process (pid "
                      f"{os.getpid()}) ended: {exc}", file=sys.stderr)


def _values_or_tags(n: int) -> str:
    return f"{n:,} metric value or tag" if n == 1 else f"{n:,} metric values or tags"


def _flushing_here() -> bool:
    me = threading.get_ident()
    return any(me in tracker._flushing for tracker in list(_every))


def _logs() -> bool:
    return any(tracker._thread is not None and not tracker._stop.is_set() for tracker in list(_every))


children.register(flush_all, _flushing_here, _logs)


def from_environment(environ) -> "tuple[MlflowTracker, str, str | None] | None":
    """Inside an Azure ML job (or any MLflow-tracked process): its tracker, run id and experiment."""
    run_id, uri = environ.get("MLFLOW_RUN_ID"), environ.get("MLFLOW_TRACKING_URI")
    if not (run_id and uri):
        return None
    tracker = _trackers.get(uri)
    if tracker is None:
        token = environ.get("MLFLOW_TRACKING_TOKEN") or environ.get("AZUREML_RUN_TOKEN")
        tracker = _trackers[uri] = MlflowTracker(uri, token)
    return tracker, run_id, environ.get(ENV_EXPERIMENT) or environ.get("MLFLOW_EXPERIMENT_NAME")


class MlflowTracker(Tracker):
    """Logs through the MLflow REST API (Azure ML's tracking endpoint speaks it)."""

    def __init__(self, tracking_uri: str, token: str | None = None):
        from .mlflow_rest import MlflowRest

        self._rest = MlflowRest(tracking_uri, (lambda: token) if token else None)
        self._start()

    def _start(self) -> None:
        self._points: deque = deque()  # (run_id, name, value, step, time)
        self._said: set[str] = set()  # what was reported once
        self._tags: deque = deque()  # (run_id, values, params?) that waited through an outage
        self._failing = False  # an outage is on (said once)
        self._in_flight = 0  # points a flush took from the buffer and has not sent yet
        self._steps: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._flushing: set[int] = set()  # the threads inside flush()
        self._flush_lock = threading.Lock()  # one flush at a time (see flush())
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = threading.Thread(target=self._loop, name="aml-mlflow-flush",
                                                                  daemon=True)
        self._thread.start()
        _every.add(self)
        atexit.register(self._close)
        children.watch_multiprocessing()

    def _forked(self) -> None:
        """Inside ``os.fork()`` in the child: no thread, no network here (see the module's docstring)."""
        self._points.clear()  # in place, as the parent's writers hold nothing else
        self._tags.clear()
        self._in_flight = 0
        self._lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._stop = threading.Event()
        self._flushing = set()
        self._thread = None

    def _start_in_child(self) -> None:
        with self._start_lock:
            if self._thread is not None:
                return
            import requests

            _inherited.append(self._rest.session)
            self._rest.session = requests.Session()
            self._thread = threading.Thread(target=self._loop, name="aml-mlflow-flush", daemon=True)
            self._thread.start()
        children.flush_when_child_ends()

    @classmethod
    def over(cls, rest) -> "MlflowTracker":
        """A tracker over an existing MLflow REST client (the workspace's, with its credential)."""
        tracker = cls.__new__(cls)
        tracker._rest = rest
        tracker._start()
        return tracker

    def __repr__(self) -> str:
        return "MlflowTracker()"  # the endpoint's token never shows

    def describe(self) -> str:
        return "MLflow tracking"  # its URI names the workspace's subscription and may carry a SAS-like query

    # -- logging -----------------------------------------------------------------------------------------

    def scalar_writer(self, run_id: str) -> Callable[..., None]:
        def write(name: str, value: float, step: int | None = None) -> None:
            if self._thread is None:
                self._start_in_child()
            checks.metric_name(name)
            if step is not None:
                step = checks.step(name, step)
            with self._lock:
                key = (run_id, name)
                if step is None:
                    step = self._steps.get(key, 0)
                self._steps[key] = max(self._steps.get(key, 0), step + 1)
            self._points.append((run_id, name, float(value), int(step), time.time()))
        return write

    def log_scalars(self, run_id: str, name: str, values: list[float]) -> None:
        write = self.scalar_writer(run_id)
        for v in values:
            write(name, v)

    def set_tags(self, run_id: str, values: dict[str, Any], *, params: bool = False) -> None:
        """Sent at once; the endpoint refusing them (a value too long, a name it takes for none) is an error here
        (a changed param is not: see ``_send_tags``). When the
        network or the service is down they wait, like metrics, and go first when it answers: a training loop
        never stops for an outage."""
        from ...core.errors import AuthError
        from .mlflow_rest import Refused

        clean = {k: "" if v is None else v for k, v in values.items()}
        if self._thread is None:
            self._start_in_child()
        if self._tags:  # an outage is on: after the ones already waiting
            self._tags.append((run_id, clean, params))
            return
        try:
            self._send_tags(run_id, clean, params)
        except (Refused, AuthError):
            raise
        except Exception as exc:  # noqa: BLE001 - the network or the service: kept, and retried
            self._tags.append((run_id, clean, params))
            self._outage(exc)

    def _send_tags(self, run_id: str, clean: dict[str, Any], params: bool) -> None:
        """Tags, or params. MLflow keeps a param's first value and refuses another (the local workspace keeps the
        last): a changed param would stop a script that runs through locally, so its new value is kept as the tag
        of the same name, said once per param, and the run goes on. Any other refusal is raised."""
        from .mlflow_rest import Refused

        try:
            self._rest.log_batch(run_id, **({"params": clean} if params else {"tags": clean}))
            return
        except Refused:
            if not params:
                raise
            before = {p["key"]: p["value"] for p in self._rest.get_run(run_id).get("data", {}).get("params", [])}
            changed = {k: before[k] for k, v in clean.items() if k in before and before[k] != str(v)}
            if not changed:
                raise
        same = {k: v for k, v in clean.items() if k not in changed}
        if same:
            self._rest.log_batch(run_id, params=same)
        self._rest.log_batch(run_id, tags={k: clean[k] for k in changed})
        for key, old in changed.items():
            if f"param changed:{key}" not in self._said:
                self._said.add(f"param changed:{key}")
                print(f"aml-magics: param {checks.shown(key)} is already {checks.shown(old)} on this run and MLflow "
                      f"keeps a param's first value: {checks.shown(clean[key])} is kept as the tag {checks.shown(key)} "
                      "(and later values too)", file=sys.stderr)

    def _unsupported(self, what: str) -> None:
        if what not in self._said:  # once: a training loop logs it every epoch
            self._said.add(what)
            print(f"aml-magics: {what} is not sent to Azure ML yet; use mlflow.log_artifact for files",
                  file=sys.stderr)

    def log_record(self, run_id: str, name: str, kind: str, payload: Any) -> None:
        """Text goes as the tag ``name`` (MLflow's metrics are numbers; the tag keeps the latest text), said once;
        rows, tables and images are not sent (said once per name)."""
        from ...core.checks import MAX_TAG_VALUE
        from .mlflow_rest import Refused

        if kind != "string" or not isinstance(payload, str) or len(payload) > MAX_TAG_VALUE:
            long = kind == "string" and isinstance(payload, str)
            self._unsupported(f"a {kind} value of {name!r}" + (f" longer than {MAX_TAG_VALUE:,} characters" if long
                                                              else ""))
            return
        said = f"text:{name}"
        try:
            self.set_tags(run_id, {name: payload})
        except Refused as exc:  # a name MLflow takes for no tag: said once, the training goes on
            said = f"text refused:{name}"
            if said not in self._said:
                print(f"aml-magics: the MLflow endpoint refused text value of {name!r} as a tag: {exc}; it is left "
                      "out", file=sys.stderr)
            self._said.add(said)
            return
        if said not in self._said:
            self._said.add(said)
            print(f"aml-magics: text values of {name!r} are sent as its tag (MLflow metrics are numbers; the tag "
                  "keeps the latest)", file=sys.stderr)

    def store_file(self, run_id: str, name: str, source) -> str:
        self._unsupported(f"upload_file({name!r}) (files in ./outputs are kept with the job anyway)")
        return name

    def start_child(self, run_id: str, name: str | None) -> str:
        from ...core.errors import NotSupported

        raise NotSupported("child runs are not created from inside an Azure ML job; use a sweep (%%aml sweep) "
                           "or log under distinct metric names")

    def record_child(self, run_id, name, *, params=None, tags=None, metrics=None, started=None, ended=None,
                     status="Completed") -> str:
        return self.start_child(run_id, name)

    def started(self, run_id: str) -> None:
        pass  # Azure ML moves its job to Running itself

    def finish(self, run_id: str, status: str, error: str | None = None) -> None:
        if status != "Completed" and error:
            self.set_tags(run_id, {"error": str(error)[:5000]})
        try:
            self.flush()
        except Exception as exc:  # noqa: BLE001 - an outage: kept, sent by the flush thread or at exit
            self._outage(exc)

    # -- flushing ----------------------------------------------------------------------------------------

    def _loop(self) -> None:
        children.leave_signals_to_the_main_thread()
        while not self._stop.wait(FLUSH_S):
            try:
                self.flush()
                if self._failing:
                    self._failing = False
                    print("aml-magics: metrics are being sent again; none were lost", file=sys.stderr)
            except Exception as exc:  # noqa: BLE001 - kept in memory, retried at the next tick
                self._outage(exc)

    def _outage(self, exc: Exception) -> None:
        if not self._failing:  # once per outage, not every second of it
            self._failing = True
            print(f"aml-magics: metrics not sent yet ({exc}); they are kept and retried", file=sys.stderr)

    def pending(self) -> int:
        return len(self._points) + len(self._tags) + self._in_flight

    def flush(self, timeout: float = -1) -> None:
        """Send what is buffered. One flush at a time: a flush the flush thread has under way holds points it took
        from the buffer, and the last flush of a process must not find the buffer empty and let the process end
        (and those points with it) before they are sent; it waits for that flush (up to ``timeout`` seconds)."""
        me = threading.get_ident()
        self._flushing.add(me)
        try:
            if not self._flush_lock.acquire(timeout=timeout):
                raise TimeoutError(f"a flush under way did not end within {timeout:g} s")
            try:
                self._flush()
            finally:
                self._flush_lock.release()
        finally:
            self._flushing.discard(me)
            children.flush_ended()

    def _flush(self) -> None:
        from .mlflow_rest import Refused

        while self._tags:  # what waited through an outage first, in order
            run_id, clean, params = self._tags[0]
            try:
                self._send_tags(run_id, clean, params)
            except Refused as exc:  # (the call that set them has returned: said, and left out)
                print(f"aml-magics: the MLflow endpoint refused {'params' if params else 'tags'} "
                      f"{', '.join(map(str, clean))[:200]}: {exc}", file=sys.stderr)
            self._tags.popleft()
        batch = [self._points.popleft() for _ in range(len(self._points))]
        if not batch:
            return
        by_run: dict[str, list] = {}
        for run_id, name, value, step, ts in batch:
            by_run.setdefault(run_id, []).append((name, value, step, ts))
        sent: set[str] = set()
        self._in_flight = len(batch)
        try:
            for run_id, points in by_run.items():
                self._send(run_id, points)
                sent.add(run_id)
                self._in_flight -= len(points)
        except Exception:
            self._points.extendleft(reversed([p for p in batch if p[0] not in sent]))
            raise
        finally:
            self._in_flight = 0

    def _send(self, run_id: str, points: list) -> None:
        """Send points; a batch the endpoint refuses as wrong (not the network, not sign-in) is halved until the
        points it refuses are alone, and those are dropped, said once: one bad point must not hold back every
        later one (they would be re-sent, and refused, forever)."""
        from .mlflow_rest import Refused

        try:
            self._rest.log_batch(run_id, points)
        except Refused as exc:
            if len(points) > 1:
                half = len(points) // 2
                self._send(run_id, points[:half])
                self._send(run_id, points[half:])
                return
            name, value, step, _ = points[0]
            key = f"refused:{name}"
            if key not in self._said:
                self._said.add(key)
                print(f"aml-magics: the MLflow endpoint refused metric {name!r} (value {value!r}, step {step}): "
                      f"{exc}; that value is left out, the others are sent", file=sys.stderr)

    def _close(self) -> None:
        self._stop.set()
        try:
            self.flush()
        except Exception as exc:  # noqa: BLE001
            n = self.pending()
            print(f"aml-magics: {_values_or_tags(n)} could not be sent at exit ({exc})",
                  file=sys.stderr)
