"""Azure ML's and MLflow's answers as aml-magics' types: times, run states, datastore paths and URIs."""
from __future__ import annotations

import re
from typing import Any

from ...core.errors import InvalidInput
from ...core.names import DEFAULT_DATASTORE
from ...core.types import RunInfo
from .mlflow_rest import value_of

MLFLOW_STATES = {"RUNNING": "Running", "SCHEDULED": "Queued", "FINISHED": "Completed", "FAILED": "Failed",
                 "KILLED": "Canceled"}
ENDPOINT_STATES = {"Succeeded": "Healthy", "Creating": "Transitioning", "Updating": "Transitioning",
                   "Deleting": "Transitioning", "Failed": "Failed", "Canceled": "Failed"}

_ISO = re.compile(r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d)(?::(\d\d)(?:[.,](\d{1,9})\d*)?)?"
                  r"\s*(Z|z|[+-]\d\d(?::?\d\d)?)?$")


def timestamp(text: str | None) -> float | None:
    """An ISO 8601 time as Azure writes it — ``2024-05-20T10:15:30.1234567Z``: 0 to 9 fractional digits, ``Z`` or an
    offset — as a Unix time, on every Python (3.10's ``fromisoformat`` takes only 3 or 6 digits)."""
    if not text:
        return None
    from datetime import datetime, timedelta, timezone

    m = _ISO.match(str(text).strip())
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


def mlflow_info(run: dict, experiment: str, parent_run_id: str | None) -> RunInfo:
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
                   latest_metrics={m["key"]: value_of(m["value"]) for m in data.get("metrics", [])})


def datastore_uri(value: str, default_datastore: str = DEFAULT_DATASTORE) -> str:
    """``datastore:PATH`` (in the default datastore) or ``datastore:NAME/PATH`` as an ``azureml://`` URI."""
    if value.startswith("datastore:"):
        path = value[len("datastore:"):].lstrip("/")
        return f"azureml://datastores/{default_datastore}/paths/{path}"
    return value


def clean_datastore_path(path: Any) -> str:
    parts = [p for p in str(path or "").replace("\\", "/").split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise InvalidInput(f"datastore path {path!r} must stay inside the datastore (no '..')")
    return "/".join(parts)
