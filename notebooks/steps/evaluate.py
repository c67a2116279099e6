"""Step evaluate of an aml-magics pipeline (exported from a notebook cell)."""
import argparse as _argparse
import types as _types

_p = _argparse.ArgumentParser()
_p.add_argument('--clean', required=True)
_p.add_argument('--model', required=True)
_p.add_argument('--report', required=True)
_a, _ = _p.parse_known_args()
inputs = _types.SimpleNamespace(**{k: getattr(_a, k) for k in ['clean', 'model']})
outputs = _types.SimpleNamespace(**{k: getattr(_a, k) for k in ['report']})
# --- the cell ---
import json
import os
import joblib
import numpy as np
from aml_magics import Run

d = np.load(os.path.join(inputs.clean, "digits.npz"))
model = joblib.load(os.path.join(inputs.model, "model.pkl"))
accuracy = float(model.score(d["X_test"], d["y_test"]))
Run.get_context().log("accuracy", accuracy)
json.dump({"accuracy": accuracy}, open(os.path.join(outputs.report, "report.json"), "w"))
