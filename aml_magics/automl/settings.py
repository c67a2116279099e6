"""AutoML settings: Azure ML's names, checked before anything starts (no heavy imports here)."""
from __future__ import annotations

import csv
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from ..core import checks
from ..core.errors import InvalidInput
from ..core.names import DEFAULT_COMPUTE
from ..core.specs import AutoMLSpec
from ..core.types import RunSubmission
from .metrics import DEFAULT_PRIMARY, PRIMARY, goal

# FLAML learner → Azure ML's algorithm name (classification, regression)
ALGORITHMS: dict[str, tuple[str, str]] = {
    "lgbm": ("LightGBM", "LightGBM"),
    "xgboost": ("XGBoostClassifier", "XGBoostRegressor"),
    "xgb_limitdepth": ("XGBoostLimitDepth", "XGBoostLimitDepth"),
    "rf": ("RandomForest", "RandomForest"),
    "extra_tree": ("ExtremeRandomTrees", "ExtremeRandomTrees"),
    "hgb": ("HistGradientBoosting", "HistGradientBoosting"),
    "linear": ("LogisticRegression", "Ridge"),
    "kneighbor": ("KNN", "KNN"),
}
DEFAULT_LEARNERS = ("hgb", "linear", "lgbm", "rf", "extra_tree", "xgboost", "xgb_limitdepth", "kneighbor")
# Azure ML's (v1 and v2) names of algorithms run here as their closest equivalent
AZURE_ALIASES = {"gradientboosting": "hgb", "elasticnet": "linear", "lassolars": "linear", "sgd": "linear"}
# Azure ML's algorithms with no equivalent here: blocking one changes nothing, allowing one is said once
AZURE_ONLY = {"decisiontree", "svm", "linearsvm", "multinomialnaivebayes", "bernoullinaivebayes",
              "averagedperceptronclassifier", "tensorflowdnn", "tensorflowlinearclassifier",
              "tensorflowlinearregressor", "fasttreeregressor", "onlinegradientdescentregressor", "tabnetclassifier",
              "tabnetregressor", "prophet", "autoarima", "arima", "exponentialsmoothing", "naive", "seasonalnaive",
              "average", "seasonalaverage", "tcnforecaster"}


def algorithm_name(learner: str, task: str) -> str:
    names = ALGORITHMS.get(learner)
    if names is None:
        return learner
    return names[0] if task == "classification" else names[1]


def _learner_key(name: str, task: str) -> str:
    wanted = name.strip().lower()
    for key, (cls_name, reg_name) in ALGORITHMS.items():
        if wanted in (key, cls_name.lower(), reg_name.lower()):
            return key
    if wanted in AZURE_ALIASES:
        return AZURE_ALIASES[wanted]
    known = sorted({algorithm_name(k, task) for k in ALGORITHMS})
    raise InvalidInput(f"unknown algorithm {name!r}; use one of {', '.join(known)}")


def learners(task: str, allowed: str | list | None, blocked: str | list | None) -> list[str]:
    def split(v):
        return [x for x in (v.split(",") if isinstance(v, str) else (v or [])) if x.strip()]

    for option, v in (("--allowed", allowed), ("--blocked", blocked)):
        if isinstance(v, str) and v.strip() and not split(v):  # "," or " , ": taken as no list (all algorithms)
            raise InvalidInput(f"{option} {v!r} names no algorithm; give names separated by commas, like "
                               "HistGradientBoosting,LightGBM, or leave it out")
    allowed_names, blocked_names = split(allowed), split(blocked)
    absent = [n.strip() for n in allowed_names if n.strip().lower() in AZURE_ONLY]
    chosen = [_learner_key(n, task) for n in allowed_names if n.strip().lower() not in AZURE_ONLY]
    if absent and not chosen:
        raise InvalidInput(f"{', '.join(absent)}: not run here; allow one of "
                           f"{', '.join(sorted({algorithm_name(k, task) for k in ALGORITHMS}))}")
    if absent:
        print(f"Note: {', '.join(absent)} not run here (no equivalent); the other allowed algorithms are.")
    chosen = chosen or list(DEFAULT_LEARNERS)
    blocked_keys = {_learner_key(n, task) for n in blocked_names if n.strip().lower() not in AZURE_ONLY}
    chosen = [k for k in dict.fromkeys(chosen) if k not in blocked_keys]
    if not chosen:
        raise InvalidInput("--allowed/--blocked leave no algorithm to try")
    return chosen


def parse_validation(text: str | float | None) -> dict[str, Any]:
    if text in (None, "", "auto"):
        return {"method": "auto"}
    t = str(text).strip().lower()
    if t.startswith("cv"):
        k = t[2:].lstrip(":=") or "5"
        if not 2 <= (checks.digits(k) or 0) <= 20:
            raise InvalidInput(f"--validation {text!r}: write cv:K with K from 2 to 20, like cv:5")
        return {"method": "cv", "folds": int(k)}
    try:
        fraction = float(t)
    except ValueError:
        raise InvalidInput(f"--validation {text!r}: use auto, a holdout fraction like 0.2, or cv:5") from None
    if not 0.05 <= fraction <= 0.5:
        raise InvalidInput("--validation: the holdout fraction must be between 0.05 and 0.5")
    return {"method": "holdout", "fraction": fraction}


def _columns_of(data: Any, path: Path | None) -> tuple[list[str], bool]:
    """Column names and whether there is at least one data row, read cheaply."""
    if path is not None:
        if path.suffix.lower() == ".parquet":
            try:
                import pyarrow.parquet as pq
            except ImportError:
                raise InvalidInput("reading Parquet needs pyarrow: pip install pyarrow (or use a CSV)") from None
            meta = pq.ParquetFile(path)
            return list(meta.schema_arrow.names), meta.metadata.num_rows > 0
        sep = checks.table_delimiter(path, path.name)  # (a file that does not start as UTF-8 text: one line, now)
        with open(path, newline="", encoding="utf-8-sig", errors="replace") as f:
            reader = csv.reader(f, delimiter=sep)
            header = next(reader, [])
            first = next(reader, None)
        return [h.strip() for h in header], first is not None and any(c.strip() for c in first)
    columns = getattr(data, "columns", None)
    if columns is not None:
        return [str(c) for c in columns], len(data) > 0
    return [], len(data) > 0 if hasattr(data, "__len__") else False


def _check_label(frame: Any, label: str, task: str, time_column: str | None = None,
                 horizon: int | None = None) -> None:
    """What the run would stop for at once (too few labeled rows, one class, a label that is not a number, a time
    column that is not one), said before it is submitted — a table already in the notebook is cheap to look at (a
    file is read by the run)."""
    from .data import label_note, label_problem, time_problem

    try:
        problem = label_problem(label, frame[label], task)
        if not problem and task == "forecasting" and time_column in getattr(frame, "columns", ()):
            labeled = frame[frame[label].notna()]
            problem = time_problem(labeled, time_column, horizon or 1)
        note = None if problem else label_note(label, frame[label], task)
    except Exception:  # noqa: BLE001 - an unusual table (not pandas-like): the run's own checks decide
        return
    if problem:
        raise InvalidInput(problem)
    if note:
        print(f"Note: {note}.", file=sys.stderr)


def automl_submission(
    *, data: Any, in_memory: bool, task: str, label: str, metric: str | None = None, budget_s: float | None = None,
    max_trials: int | None = None, validation: str | None = "auto", allowed=None, blocked=None,
    featurization: bool = True, ensemble: bool = True, time_column: str | None = None, horizon: int | None = None,
    seed: int = 0, client=None, source_dir: Path, experiment: str, compute: str = DEFAULT_COMPUTE,
    in_values: dict | None = None, early_termination: bool | None = None, **run_options: Any,
) -> RunSubmission:
    """The submission of an AutoML run; every setting is checked here, before anything starts."""
    import importlib.util

    if importlib.util.find_spec("flaml") is None or importlib.util.find_spec("xgboost") is None:
        raise InvalidInput("AutoML needs FLAML: pip install 'aml-magics[automl]'")
    if task not in PRIMARY:
        raise InvalidInput(f"--task {task!r}: use classification, regression or forecasting")
    metric = metric or DEFAULT_PRIMARY[task]
    if metric not in PRIMARY[task]:
        raise InvalidInput(f"{metric!r} is not a primary metric for {task}; use one of {', '.join(PRIMARY[task])}")
    if budget_s is None and max_trials is None:
        budget_s = 60.0
    if budget_s is not None and budget_s < 5:
        raise InvalidInput("--budget must be at least 5 seconds")
    if max_trials is not None and max_trials < 1:
        raise InvalidInput("--trials must be at least 1")
    chosen = learners(task, allowed, blocked)
    validation_plan = parse_validation(validation)
    if task != "forecasting" and (time_column or horizon):
        raise InvalidInput(f"a time column and a horizon (--time-column, --horizon) are for forecasting, not {task}; "
                           "leave them out")
    if run_options.get("out_vars"):
        raise InvalidInput("--out does not apply to AutoML: its result is the run's outputs/model.pkl "
                           "(%aml register RUN outputs/model.pkl, or --register NAME)")
    if task == "forecasting":
        if not time_column or not horizon:
            raise InvalidInput("forecasting needs --time-column COLUMN and --horizon N (periods ahead)")
        if horizon < 1:
            raise InvalidInput("--horizon must be at least 1")
        if validation_plan["method"] == "cv":
            raise InvalidInput("forecasting validates on the latest part of the history: use --validation auto "
                               "or a fraction")
    inputs: dict[str, str] = {}
    path: Path | None = None
    remote = False
    columns: list[str] = []
    has_rows = True
    data_ref: dict[str, Any]
    if in_memory:
        obj = (in_values or {}).get("training_data")
        if obj is None:
            raise InvalidInput("--data: nothing to train on")
        columns, has_rows = _columns_of(obj, None)
        counts = Counter(columns)
        twice = sorted(c for c, n in counts.items() if n > 1)
        if label in twice:
            raise InvalidInput(f"the data has {counts[label]} columns named {label!r}; rename all but the label")
        if twice:  # the run failed on them deep in pandas ("The truth value of a Series is ambiguous")
            raise InvalidInput(f"--data: {len(twice)} column name{'s appear' if len(twice) > 1 else ' appears'} more "
                               f"than once ({', '.join(checks.shown(c, 40) for c in twice[:5])}); give every column a "
                               "name of its own (df.columns = [...])")
        if columns and any(not isinstance(c, str) for c in obj.columns):  # 0, 1, 2 or tuples: named as text, so
            obj = obj.copy(deep=False)  # --label 2 finds column 2 (the run failed: no trial could fit)
            obj.columns = columns
            in_values = {**in_values, "training_data": obj}
        if not columns:  # an array: the label is a second variable
            if not isinstance(label, str) or label not in (in_values or {}):
                raise InvalidInput("--data is an array: give the labels as another variable, --label y")
            columns = [label]
        data_ref = {"kind": "memory"}
    elif str(data).startswith("datastore:"):
        if client is None:
            raise InvalidInput("datastore paths need a workspace")
        local = client.datastores.resolve_input(str(data))
        inputs["training_data"] = str(data)
        data_ref = {"kind": "input", "name": "training_data", "display": str(data)}
        if not client.capabilities.inputs_readable_here:  # in a remote workspace's storage: the service checks
            remote = True
            data_ref["format"] = "parquet" if local.lower().endswith(".parquet") else "csv"
        else:
            path = Path(local)
    else:
        p = checks.expand_home(str(data))
        path = p if p.is_absolute() else Path(os.getcwd()) / p
        kind = checks.path_kind("--data", path)
        if kind in ("missing", "other"):
            raise InvalidInput(f"--data {data}: {'no such file' if kind == 'missing' else 'not a file (a device)'} (a "
                               "DataFrame variable, a CSV/Parquet path, or datastore:PATH)")
        path = path.resolve()
        try:
            rel = path.relative_to(Path(source_dir).resolve()).as_posix()
            data_ref = {"kind": "file", "path": rel, "display": str(data)}  # in the run's snapshot
        except ValueError:
            data_ref = {"kind": "file", "path": str(path), "display": str(data)}
    if path is not None:
        if path.is_dir():
            raise InvalidInput(f"--data {data} is a folder; give a CSV or Parquet file")
        if path.suffix.lower() not in (".csv", ".parquet", ".txt", ".tsv"):
            raise InvalidInput(f"--data {data}: read CSV or Parquet files (got {path.suffix or 'no extension'})")
        columns, has_rows = _columns_of(None, path)
        data_ref["format"] = "parquet" if path.suffix.lower() == ".parquet" else "csv"
    if not has_rows:
        raise InvalidInput(f"--data {data} is empty: there are no rows to train on")
    if not remote and label not in columns:  # remote data: the service checks its columns
        near = ", ".join(columns[:12]) + (" …" if len(columns) > 12 else "")
        raise InvalidInput(f"label column {label!r} is not in the data (columns: {near})")
    if in_memory and label in columns:
        _check_label(in_values["training_data"], label, task, time_column, horizon)
    if task == "forecasting" and not remote and time_column not in columns:
        raise InvalidInput(f"--time-column {time_column!r} is not in the data")
    if in_memory and len(columns) == 1 and columns == [label]:
        data_ref["label_variable"] = label
    engine = AutoMLSpec(
        threads=_threads_per_run(client, compute), task=task, primary_metric=metric, goal=goal(metric), label=label,
        budget_s=budget_s, max_trials=max_trials, validation=validation_plan, learners=chosen,
        learners_restricted=bool(allowed or blocked), featurization=featurization, ensemble=ensemble,
        time_column=time_column, horizon=horizon, seed=seed, data=data_ref, early_termination=early_termination)
    tags = {"automl.task": task, "automl.primary_metric": metric, **run_options.pop("tags", {})}
    run_options.pop("out_vars", None)
    return RunSubmission(
        kind="automl", experiment=experiment, source_dir=Path(source_dir), entry="automl", compute=compute,
        in_values=dict(in_values or {}), inputs={**run_options.pop("inputs", {}), **inputs}, tags=tags,
        engine=engine, params={"task": task, "primary_metric": metric, "label": label,
                                   "budget_s": "" if budget_s is None else f"{budget_s:g}",
                                   "trials": "" if max_trials is None else str(max_trials)},
        **run_options,
    )


def _threads_per_run(client, compute: str) -> int | None:
    """Cores per run on ``compute``: this machine's cores shared among the runs the compute takes at once (a compute
    target of as many slots as cores: one thread each). None where runs go elsewhere (a cluster's nodes are sized by
    the cluster)."""
    if client is None or client.capabilities.remote:
        return None
    try:
        target = client.computes.get(compute)
    except Exception:  # noqa: BLE001 - created later, or not readable now: the engine decides
        return None
    cores = os.cpu_count() or 1
    return max(1, cores // max(1, min(target.max_concurrent, cores)))
