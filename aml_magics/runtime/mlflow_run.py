"""``Run.get_context()`` inside an Azure ML job: the same logging calls, sent to the MLflow tracking
endpoint the job's environment provides (``MLFLOW_TRACKING_URI``, ``MLFLOW_RUN_ID``; the token from
``MLFLOW_TRACKING_TOKEN`` or ``AZUREML_RUN_TOKEN``). Metrics are buffered and sent in batches every
second and at exit, like the local tracker; nothing waits on the network in ``run.log``.
"""
from __future__ import annotations

import atexit
import os
import sys
import threading
import time
from collections import deque
from typing import Any, Iterable

FLUSH_S = 1.0


class MlflowRun:
    """The run of an Azure ML job (or any MLflow-tracked process), with aml-magics' logging API."""

    def __init__(self, tracking_uri: str, run_id: str, experiment: str | None = None):
        from ..backends.azure.mlflow_rest import MlflowRest

        token = os.environ.get("MLFLOW_TRACKING_TOKEN") or os.environ.get("AZUREML_RUN_TOKEN")
        self.id = run_id
        self.experiment = experiment
        self._rest = MlflowRest(tracking_uri, (lambda: token) if token else None)
        self._points: deque = deque()
        self._steps: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="aml-mlflow-flush", daemon=True)
        self._thread.start()
        atexit.register(self.flush)

    def __repr__(self) -> str:
        return f"Run(id={self.id!r}, MLflow tracking)"

    # -- logging -----------------------------------------------------------------------------------------

    def log(self, name: str, value: float, step: int | None = None, description: str = "") -> None:
        with self._lock:
            if step is None:
                step = self._steps.get(name, 0)
            self._steps[name] = max(self._steps.get(name, 0), step + 1)
        self._points.append((name, float(value), int(step), time.time()))

    def log_list(self, name: str, value: Iterable[float], description: str = "") -> None:
        for v in value:
            self.log(name, v)

    def set_params(self, params: dict[str, Any]) -> None:
        self._rest.log_batch(self.id, params=params)

    def log_param(self, key: str, value: Any) -> None:
        self.set_params({key: value})

    def set_tags(self, tags: dict[str, Any]) -> None:
        self._rest.log_batch(self.id, tags=tags)

    def tag(self, key: str, value: Any = None) -> None:
        self.set_tags({key: "" if value is None else value})

    def _unsupported(self, what: str) -> None:
        print(f"aml-magics: {what} is not sent to Azure ML yet; use mlflow.log_artifact for files", file=sys.stderr)

    def log_row(self, name: str, description: str = "", **kwargs: Any) -> None:
        self._unsupported(f"log_row({name!r})")

    def log_table(self, name: str, value: dict, description: str = "") -> None:
        self._unsupported(f"log_table({name!r})")

    def log_image(self, name: str, path=None, plot=None, description: str = "") -> None:
        self._unsupported(f"log_image({name!r})")

    def upload_file(self, name: str, path_or_stream) -> str:
        self._unsupported(f"upload_file({name!r}) (files in ./outputs are kept with the job anyway)")
        return name

    # -- flushing ----------------------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.wait(FLUSH_S):
            try:
                self.flush()
            except Exception as exc:  # kept in memory, retried at the next tick
                print(f"aml-magics: metrics not sent yet ({exc}); retrying", file=sys.stderr)

    def flush(self) -> None:
        batch = [self._points.popleft() for _ in range(len(self._points))]
        if not batch:
            return
        try:
            self._rest.log_batch(self.id, batch)
        except Exception:
            self._points.extendleft(reversed(batch))
            raise

    def complete(self) -> None:
        self.flush()

    def fail(self, error_details: Any = None) -> None:
        self.flush()
        if error_details:
            self.set_tags({"error": str(error_details)[:5000]})
