"""The leaderboard of a sweep's or AutoML run's trials, as every front end shows it (the dashboard's live table and
parallel coordinates, its static summary, the JupyterLab run view): the run's name, the primary metric second (and the
default sort, best first), the status, the algorithm for AutoML, only the hyperparameters that vary, then the
other metrics and the duration. Internal bookkeeping metrics stay out of sight."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

from . import ranking
from .types import RunInfo

#: metrics the engines log for themselves, not for the user to compare
INTERNAL_METRICS = frozenset({"tracking_overhead_s", "trial_time_s"})
#: the columns that stay in view while the rest scroll sideways: the run and its primary metric
PINNED = 2
#: a positive parameter whose largest value is this many times its smallest gets a log axis
LOG_AXIS_SPAN = 100


@dataclass
class Leaderboard:
    columns: list[dict] = field(default_factory=list)  # {"key", "label", "numeric"?}
    rows: list[dict] = field(default_factory=list)  # each with "_id"
    sort: dict = field(default_factory=dict)  # {"key", "desc"}
    best: str = ""  # the run id every "best" names (core.ranking)
    dims: list[dict] = field(default_factory=list)  # parallel coordinates: {"name", "values", "categories"?, "log"?}


def as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None  # NaN and infinities are not places on a leaderboard


def number_or_text(value: Any) -> Any:
    f = as_number(value)
    return f if f is not None and str(value).strip() not in ("", "True", "False") else value


def varying(infos: Sequence[RunInfo], name: str) -> bool:
    return len({str(i.params.get(name, "")) for i in infos}) > 1


def build(infos: Sequence[RunInfo], primary: str | None, goal: str, kind: str = "") -> Leaderboard:
    """The leaderboard of ``infos`` (a parent's children) ranked by ``primary`` under ``goal``; a pipeline's steps
    are listed in the order they started, named by step (reused ones say so), not ranked."""
    if kind == "pipeline":
        return _steps_board(infos)
    metrics = sorted({k for i in infos for k, v in i.latest_metrics.items()
                      if as_number(v) is not None and k not in INTERNAL_METRICS})
    if primary is None and metrics:
        primary = metrics[0]
    params = sorted({k for i in infos for k in i.params})
    algorithm = "algorithm" if kind == "automl" and "algorithm" in params else None
    shown_params = [k for k in params if k != algorithm and varying(infos, k)]
    columns = [{"key": "name", "label": "run"}]
    if primary:
        columns.append({"key": f"m.{primary}", "label": primary, "numeric": True})
    columns.append({"key": "status", "label": "status"})
    if algorithm:
        columns.append({"key": "p.algorithm", "label": "algorithm"})
    columns += [{"key": f"p.{k}", "label": k} for k in shown_params]
    columns += [{"key": f"m.{k}", "label": k, "numeric": True} for k in metrics if k != primary]
    columns.append({"key": "duration", "label": "duration s", "numeric": True})
    names = [i.display_name or i.run_id for i in infos]
    repeated = {n for n in names if names.count(n) > 1}
    rows = []
    for i, name in zip(infos, names):
        # equal display names are told apart by the end of the run id
        row = {"_id": i.run_id, "name": f"{name} ({i.run_id[-6:]})" if name in repeated else name,
               "status": i.status, "duration": round(i.duration, 2) if i.duration is not None else None}
        row.update({f"p.{k}": number_or_text(v) for k, v in i.params.items()})
        row.update({f"m.{k}": as_number(v) for k, v in i.latest_metrics.items() if as_number(v) is not None})
        rows.append(row)
    best = ranking.best_child(infos, primary, goal) if primary else None
    dims = []
    for k in ([algorithm] if algorithm else []) + shown_params:
        values = [i.params.get(k) for i in infos]
        numbers = [as_number(v) for v in values]
        if all(n is not None for n in numbers):
            dim = {"name": k, "values": numbers}
            if min(numbers) > 0 and max(numbers) >= LOG_AXIS_SPAN * min(numbers):
                dim["log"] = True  # spans decades, as log-sampled parameters (loguniform) do
            dims.append(dim)
        else:  # categories spread evenly along their axis, in order of first appearance
            categories = list(dict.fromkeys(str(v) for v in values))
            dims.append({"name": k, "values": [float(categories.index(str(v))) for v in values],
                         "categories": categories})
    if dims and primary:
        dims.append({"name": primary, "values": [as_number(i.latest_metrics.get(primary)) for i in infos]})
    return Leaderboard(columns=columns, rows=rows,
                       sort={"key": f"m.{primary}", "desc": goal == "max"} if primary else {},
                       best=best.run_id if best is not None else "", dims=dims)


def _steps_board(infos: Sequence[RunInfo]) -> Leaderboard:
    ordered = sorted(infos, key=lambda i: i.created or 0)
    metrics = sorted({k for i in ordered for k, v in i.latest_metrics.items()
                      if as_number(v) is not None and k not in INTERNAL_METRICS})
    columns = [{"key": "name", "label": "step"}, {"key": "status", "label": "status"},
               {"key": "duration", "label": "duration s", "numeric": True}]
    columns += [{"key": f"m.{k}", "label": k, "numeric": True} for k in metrics]
    rows = []
    for i in ordered:
        name = i.tags.get("pipeline.step") or i.display_name or i.run_id
        reused = i.tags.get("pipeline.reused_from")
        row = {"_id": i.run_id, "name": f"{name} (reused)" if reused else name, "status": i.status,
               "duration": round(i.duration, 2) if i.duration is not None else None}
        row.update({f"m.{k}": as_number(v) for k, v in i.latest_metrics.items() if as_number(v) is not None})
        rows.append(row)
    return Leaderboard(columns=columns, rows=rows, sort={}, best="", dims=[])
