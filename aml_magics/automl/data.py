"""An AutoML run's training data: read from where the spec says (a DataFrame sent from the notebook, a CSV or
Parquet file of the snapshot, a datastore input), rows without a label dropped, the label encoded, the features
made (``Featurizer``; lag features for forecasting) and what was done reported."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.errors import EngineStopped
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
    delimited = str(path).endswith((".tsv", ".txt"))
    return pd.read_csv(path, sep=None if delimited else ",", engine="python" if delimited else "c")


def prepare(frame, spec: AutoMLSpec, run) -> TrainingData:
    """Features and label of ``frame``; the featurization report is logged on ``run`` and saved in outputs."""
    import numpy as np

    from .featurize import Featurizer

    label = spec.label
    frame.columns = [str(c) for c in frame.columns]
    before = len(frame)
    frame = frame[frame[label].notna()].reset_index(drop=True)
    if before - len(frame):
        print(f"Dropped {before - len(frame)} rows without a label.", flush=True)
    if len(frame) < 10:
        raise EngineStopped(f"only {len(frame)} rows have a label; AutoML needs at least 10")
    forecasting = None
    if spec.task == "forecasting":
        import pandas as pd

        from .forecast import add_lag_features, keep_history, plan

        tcol = spec.time_column
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
        if len(classes) < 2:
            raise EngineStopped(f"the label {label!r} has a single class; classification needs two or more")
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
