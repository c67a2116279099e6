"""Step train of an aml-magics pipeline (exported from a notebook cell)."""
import argparse as _argparse
import types as _types

_p = _argparse.ArgumentParser()
_p.add_argument('--clean', required=True)
_p.add_argument('--model', required=True)
_a, _ = _p.parse_known_args()
inputs = _types.SimpleNamespace(**{k: getattr(_a, k) for k in ['clean']})
outputs = _types.SimpleNamespace(**{k: getattr(_a, k) for k in ['model']})
# --- the cell ---
import os
import joblib
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from aml_magics import Run

d = np.load(os.path.join(inputs.clean, "digits.npz"))
model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000)).fit(d["X_train"], d["y_train"])
joblib.dump(model, os.path.join(outputs.model, "model.pkl"))
Run.get_context().log("train_accuracy", model.score(d["X_train"], d["y_train"]))
