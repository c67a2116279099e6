"""An AutoML run's training data: read from where the spec says (a DataFrame sent from the notebook, a CSV or
Parquet file of the snapshot, a datastore input), rows without a label dropped, the label encoded, the features
made (``Featurizer``; lag features for forecasting) and what was done reported."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core import checks
from ..core.errors import EngineStopped, InvalidInput
from ..core.specs import AutoMLSpec


@dataclass
class TrainingData:
    X: Any  # the featurized matrix
    y: Any  # class indices (classification) or floats
    featurizer: Any
    rows: int
    classes: list | None = None  # the label's values, in the order of y's indices
    y_range: float | None = None  # regression: for the normalized metrics
    forecasting: dict | None = None  # the plan of lags and history (forecasting)

    @property
    def n_classes(self) -> int:
        return len(self.classes) if self.classes is not None else 0


def load(spec: AutoMLSpec):
    """The training data as a DataFrame."""
    import pandas as pd

    ref = spec.data
    if ref["kind"] == "memory":
        import pickle

        import cloudpickle  # noqa: F401 - the notebook's objects were pickled with it

        with open(Path(os.environ["AML_MAGICS_RUN_SPEC"]).parent / "in.pkl", "rb") as f:
            values = pickle.load(f)
        data = values["training_data"]
        if not hasattr(data, "columns"):
            import numpy as np

            arr = np.asarray(data)
            arr = arr.reshape(len(arr), -1)
            frame = pd.DataFrame(arr, columns=[f"f{i}" for i in range(arr.shape[1])])
            frame[spec.label] = np.asarray(values[ref.get("label_variable") or spec.label])
            return frame
        return pd.DataFrame(data).copy()
    path = os.environ.get(f"AZURE_ML_INPUT_{ref['name']}") if ref["kind"] == "input" else ref["path"]
    if ref.get("format") == "parquet":
        return pd.read_parquet(path)
    try:
        return pd.read_csv(path, sep=checks.table_delimiter(path))
    except UnicodeDecodeError as exc:  # past the start the submission checked
        raise EngineStopped(checks.not_utf8(ref.get("display") or path, exc.object[exc.start], "further in")) from None
    except InvalidInput as exc:
        raise EngineStopped(str(exc)) from None


MIN_LABELED_ROWS = 10


def label_problem(label: str, y, task: str) -> str | None:
    """Why the label column ``y`` (a pandas Series) cannot be learned from, or None: too few labeled rows; one class
    (classification); values that are not numbers or are infinite (regression, forecasting). Said by the run before
    it trains, and by the submission already for a table in the notebook."""
    import numpy as np
    import pandas as pd

    from ..core.checks import shown

    if getattr(y, "ndim", 1) != 1:
        return f"the data has {y.shape[1]} columns named {label!r}; rename all but the label"
    labeled = y[y.notna()]
    if len(labeled) < MIN_LABELED_ROWS:
        return f"only {len(labeled)} rows have a label; AutoML needs at least {MIN_LABELED_ROWS}"
    if task == "classification":
        try:
            classes = labeled.nunique()
        except TypeError:  # unhashable values (lists): as the run's classes are counted, as text
            classes = labeled.astype(str).nunique()
        if classes < 2:
            return f"the label {label!r} has a single class; classification needs two or more"
        if classes == len(labeled):  # every row its own class: nothing to learn, and no split can be stratified
            return (f"the label {label!r} has a different value on every one of its {len(labeled)} rows; it looks "
                    "like an ID, not something to predict (for numbers use --task regression)")
        return None
    numbers = pd.to_numeric(labeled, errors="coerce")
    if numbers.isna().any():
        bad = labeled[numbers.isna()].iloc[0]
        return (f"the label {label!r} has values that are not numbers (like {shown(bad, 40)}); {task} needs numbers "
                "(for categories use --task classification)")
    values = numbers.to_numpy(dtype=float)
    infinite = int(np.isinf(values).sum())
    if infinite:
        return f"the label {label!r} has {infinite} infinite value{'s' if infinite > 1 else ''}; drop or replace those rows"
    if np.abs(values).max() > LABEL_MAX:  # the learners keep labels as 32-bit floats: beyond, XGBoost stopped the run
        return (f"the label {label!r} has values as large as {np.abs(values).max():.3g}; the learners take up to "
                f"{LABEL_MAX:.0e} — scale it (divide by a power of ten) and scale the predictions back")
    if task == "regression" and values.min() == values.max():  # every model "fitted" it, with an error of 0
        return (f"the label {label!r} is {values[0]:g} on every labeled row: there is nothing to learn (is it the "
                "right column?)")
    return None


LABEL_MAX = 1e38  # within a 32-bit float (3.4e38)


def label_note(label: str, y, task: str) -> str | None:
    """A classification label that looks like a number to predict: numbers, more than 20 different ones, fewer than
    three rows each on average. Not refused (a label of many rare classes is possible), but said: each value becomes a
    class, cross-validation cannot stratify them, and a boosting model learns a tree per class per iteration."""
    import pandas as pd

    if task != "classification":
        return None
    labeled = y[y.notna()]
    if not pd.api.types.is_numeric_dtype(labeled) or pd.api.types.is_bool_dtype(labeled):
        return None
    classes = labeled.nunique()
    if classes <= 20 or classes * 3 <= len(labeled):
        return None
    return (f"the label {label!r} has {classes} different numbers in {len(labeled)} rows: classification makes each "
            f"a class (about {len(labeled) / classes:.0f} rows each); to predict the number use --task regression")


def time_problem(frame, time_column: str, horizon: int) -> str | None:
    """Why the time column of a forecasting table cannot be used, or None: values that are not dates or times,
    the same time on two rows (one series is forecast: several mixed would be one jagged series), a horizon the
    history cannot cover."""
    import pandas as pd

    from ..core.checks import shown

    import warnings

    raw = frame[time_column]
    with warnings.catch_warnings():  # pandas' "could not infer format" for text times: said once per element
        warnings.simplefilter("ignore")
        times = pd.to_datetime(raw, errors="coerce")
    bad = raw[times.isna() & raw.notna()]
    if len(bad):
        return (f"the time column {time_column!r} has values that are not dates or times (like "
                f"{shown(bad.iloc[0], 40)}); fix or drop those rows")
    missing = int(times.isna().sum())
    if missing:
        return f"the time column {time_column!r} is empty on {missing} row{'s' if missing > 1 else ''}; drop them"
    repeated = int(times.duplicated().sum())
    if repeated:
        return (f"the time column {time_column!r} has {repeated} repeated time{'s' if repeated > 1 else ''} (like "
                f"{times[times.duplicated()].iloc[0]}); one row per time is forecast — several series need one run "
                "each")
    if 3 * int(horizon) > len(times):
        return (f"--horizon {horizon} is too far ahead for {len(times)} rows of history; give at most "
                f"{max(1, len(times) // 3)} (a third of the rows)")
    return None


def prepare(frame, spec: AutoMLSpec, run) -> TrainingData:
    """Features and label of ``frame``; the featurization report is logged on ``run`` and saved in outputs."""
    import numpy as np

    from .featurize import Featurizer

    label = spec.label
    frame.columns = [str(c) for c in frame.columns]
    problem = label_problem(label, frame[label], spec.task)
    if problem:
        raise EngineStopped(problem)
    note = label_note(label, frame[label], spec.task)
    if note and (spec.data or {}).get("kind") != "memory":  # a notebook's table: said at submission (it was twice)
        print(f"Note: {note}.", flush=True)
    before = len(frame)
    frame = frame[frame[label].notna()].reset_index(drop=True)
    if before - len(frame):
        print(f"Dropped {before - len(frame)} rows without a label.", flush=True)
    forecasting = None
    if spec.task == "forecasting":
        import pandas as pd

        from .forecast import add_lag_features, keep_history, plan

        tcol = spec.time_column
        problem = time_problem(frame, tcol, spec.horizon)
        if problem:
            raise EngineStopped(problem)
        frame[tcol] = pd.to_datetime(frame[tcol], errors="coerce")
        frame = frame.sort_values(tcol, kind="stable").reset_index(drop=True)
        forecasting = plan(frame, tcol, label, spec.horizon)
        forecasting["history"] = keep_history(frame, forecasting)
        X = add_lag_features(frame, forecasting)
    else:
        X = frame.drop(columns=[label])
    y_raw = frame[label]
    classes, y_range = None, None
    if spec.task == "classification":
        found, y = np.unique(y_raw.astype(str) if y_raw.dtype == object else y_raw, return_inverse=True)
        classes = list(found)
    else:
        y = y_raw.astype(float).to_numpy()
        y_range = float(y.max() - y.min()) or 1.0
    featurizer = Featurizer(spec.featurization).fit(X)
    data = TrainingData(X=featurizer.transform(X), y=np.asarray(y), featurizer=featurizer, rows=len(frame),
                        classes=classes, y_range=y_range, forecasting=forecasting)
    report = featurizer.report()
    run.log_table("featurization", report)
    with open("outputs/featurization.json", "w") as f:
        json.dump(report, f, indent=1)
    changed = [f"{c}: {a}" for c, a in zip(report["column"], report["action"]) if a != "kept"]
    print(f"Data: {len(frame)} rows × {X.shape[1]} columns → {data.X.shape[1]} features"
          + (f"; {len(changed)} columns changed:\n  " + "\n  ".join(changed[:30]) if changed else ""), flush=True)
    return data
