"""The MLflow REST API (``/api/2.0/mlflow/…``) over ``requests``: how the azure backend reads and writes
metrics, params and tags — Azure ML workspaces expose an MLflow-compatible tracking endpoint.

``tracking_base(uri)`` turns a workspace's ``mlFlowTrackingUri`` (``azureml://<host>/mlflow/v1.0/…``)
into the https base the REST paths hang off (``https://<host>/mlflow/v2.0/subscriptions/…/workspaces/W``);
a plain ``http(s)://`` URI (an MLflow tracking server) is used as it is.
"""
from __future__ import annotations

import time
from typing import Any, Callable

from ...core.errors import AmlError, AuthError, BackendUnavailable, NotFound

MAX_BATCH = 1000  # MLflow's log-batch limit on metrics + params + tags per request
MAX_PARAMS_TAGS = 100  # … and on params, and on tags, each


def retry_delay(retry_after: str | None, fallback: float, cap: float) -> float:
    """Seconds to wait before trying again: the server's ``Retry-After`` when it is a number of seconds (an HTTP
    date, NaN or a negative number is not one: the backoff is used), never more than ``cap``. (Here rather than in
    rest.py, which uses it too: this module is shipped with jobs.)"""
    import math

    try:
        wanted = float(retry_after) if retry_after else fallback
    except ValueError:
        wanted = fallback
    if not math.isfinite(wanted) or wanted < 0:
        wanted = fallback
    return max(0.0, min(wanted, cap))


class Refused(AmlError):
    """The endpoint answered that the request itself is wrong (HTTP 400-class other than sign-in and throttling):
    sending it again cannot help."""


def metric_value(value: float) -> float | str:
    """A value as MLflow's JSON carries it: NaN and the infinities as the strings protobuf's JSON mapping reads
    ("NaN", "Infinity", "-Infinity"), as MLflow's own client sends them — a bare NaN is not JSON, and requests
    refused the whole batch (every metric of the process was lost)."""
    value = float(value)
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def value_of(value: Any) -> Any:
    """A metric value as MLflow's JSON gives it back: the strings "NaN", "Infinity" and "-Infinity" are numbers."""
    return float(value) if isinstance(value, str) and value in ("NaN", "Infinity", "-Infinity") else value


def tracking_base(uri: str) -> str:
    if uri.startswith("azureml://"):
        rest = uri[len("azureml://"):]
        host, _, path = rest.partition("/")
        path = path.replace("mlflow/v1.0/", "mlflow/v2.0/", 1)
        return f"https://{host}/{path}".rstrip("/")
    if uri.startswith(("http://", "https://")):
        return uri.rstrip("/")
    raise AmlError(f"unsupported MLflow tracking URI {uri.split('?')[0]!r}")


class MlflowRest:
    def __init__(self, tracking_uri: str, token: Callable[[], str] | None = None):
        import requests

        self.base = tracking_base(tracking_uri)
        self._token = token
        self.session = requests.Session()

    def __repr__(self) -> str:
        return f"MlflowRest({self.base})"

    def _call(self, method: str, endpoint: str, *, json: Any = None, params: dict | None = None) -> dict:
        import requests

        headers = {"Authorization": f"Bearer {self._token()}"} if self._token else {}
        url = f"{self.base}/api/2.0/mlflow/{endpoint}"
        for attempt in range(5):
            try:
                resp = self.session.request(method, url, json=json, params=params, headers=headers, timeout=60)
            except requests.exceptions.InvalidJSONError as exc:  # never sent: sending again cannot help
                raise Refused(f"MLflow {endpoint}: the request is not JSON ({exc})") from None
            except requests.RequestException as exc:
                if attempt == 4:
                    raise BackendUnavailable(f"the MLflow endpoint did not answer ({type(exc).__name__})") from None
                time.sleep(0.5 * 2 ** attempt)
                continue
            if resp.status_code in (429, 500, 502, 503, 504) and attempt < 4:
                time.sleep(retry_delay(resp.headers.get("Retry-After"), 0.5 * 2 ** attempt, 60.0))
                continue
            break
        body = resp.json() if resp.content else {}
        if resp.status_code == 200:
            return body
        code, message = body.get("error_code", f"HTTP {resp.status_code}"), body.get("message", resp.reason)
        if resp.status_code in (401, 403):
            raise AuthError(f"the MLflow endpoint refused the request: {code}: {message} — sign in again (az login)")
        if resp.status_code == 404 or code == "RESOURCE_DOES_NOT_EXIST":
            raise NotFound(f"{code}: {message}")
        if 400 <= resp.status_code < 500 and resp.status_code != 429:
            raise Refused(f"MLflow {endpoint} failed: {code}: {message}")
        raise AmlError(f"MLflow {endpoint} failed: {code}: {message}")

    # -- experiments and runs ------------------------------------------------------------------------

    def experiment_id(self, name: str, create: bool = True) -> str:
        try:
            return self._call("GET", "experiments/get-by-name", params={"experiment_name": name})["experiment"][
                "experiment_id"]
        except NotFound:
            if not create:
                raise
            return self._call("POST", "experiments/create", json={"name": name})["experiment_id"]

    def create_run(self, experiment: str, run_name: str | None = None, tags: dict[str, str] | None = None) -> str:
        body = {"experiment_id": self.experiment_id(experiment), "start_time": int(time.time() * 1000),
                "tags": [{"key": k, "value": str(v)} for k, v in (tags or {}).items()]}
        if run_name:
            body["run_name"] = run_name
        return self._call("POST", "runs/create", json=body)["run"]["info"]["run_id"]

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        self._call("POST", "runs/update", json={"run_id": run_id, "status": status,
                                                "end_time": int(time.time() * 1000)})

    def get_run(self, run_id: str) -> dict:
        return self._call("GET", "runs/get", params={"run_id": run_id})["run"]

    def log_batch(self, run_id: str, metrics: list[tuple[str, float, int, float]] = (),
                  params: dict[str, Any] | None = None, tags: dict[str, Any] | None = None) -> None:
        """``metrics``: (key, value, step, timestamp seconds); sent in chunks within MLflow's limits."""
        metrics = list(metrics)
        params_left = [{"key": k, "value": str(v)} for k, v in (params or {}).items()]
        tags_left = [{"key": k, "value": str(v)} for k, v in (tags or {}).items()]
        first = True
        while first or metrics or params_left or tags_left:
            # at most 100 params and 100 tags a request; the 1,000 counts metrics, params and tags together
            some_params, params_left = params_left[:MAX_PARAMS_TAGS], params_left[MAX_PARAMS_TAGS:]
            some_tags, tags_left = tags_left[:MAX_PARAMS_TAGS], tags_left[MAX_PARAMS_TAGS:]
            room = MAX_BATCH - len(some_params) - len(some_tags)
            chunk, metrics = metrics[:room], metrics[room:]
            body: dict[str, Any] = {"run_id": run_id, "metrics": [
                {"key": k, "value": metric_value(v), "step": int(s), "timestamp": int(t * 1000)}
                for k, v, s, t in chunk]}
            if some_params or some_tags:
                body["params"], body["tags"] = some_params, some_tags
            self._call("POST", "runs/log-batch", json=body)
            first = False

    def metric_history(self, run_id: str, key: str) -> list[tuple[int, float, float]]:
        """(step, timestamp seconds, value), in logging order."""
        out, token = [], None
        while True:
            params = {"run_id": run_id, "metric_key": key, "max_results": 25000}
            if token:
                params["page_token"] = token
            body = self._call("GET", "metrics/get-history", params=params)
            out += [(int(m.get("step", 0)), m.get("timestamp", 0) / 1000, float(value_of(m["value"])))
                    for m in body.get("metrics", [])]
            token = body.get("next_page_token")
            if not token:
                return out

    def search_runs(self, experiment_ids: list[str], max_results: int = 100, filter: str = "") -> list[dict]:
        body = {"experiment_ids": experiment_ids, "max_results": max_results,
                "order_by": ["attributes.start_time DESC"]}
        if filter:
            body["filter"] = filter
        return self._call("POST", "runs/search", json=body).get("runs", [])
