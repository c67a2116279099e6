"""Step register of an aml-magics pipeline (exported from a notebook cell)."""
import argparse as _argparse
import types as _types

_p = _argparse.ArgumentParser()
_p.add_argument('--model', required=True)
_p.add_argument('--report', required=True)
_a, _ = _p.parse_known_args()
inputs = _types.SimpleNamespace(**{k: getattr(_a, k) for k in ['model', 'report']})
outputs = _types.SimpleNamespace(**{k: getattr(_a, k) for k in []})
# --- the cell ---
import json
import os
from aml_magics import Run

report = json.load(open(os.path.join(inputs.report, "report.json")))
assert report["accuracy"] > 0.9, f"not good enough to register: {report}"
run = Run.get_context()
model = run.register_model("digits-pipeline", os.path.join(inputs.model, "model.pkl"),
                           tags={"accuracy": round(report["accuracy"], 4)})
print("registered", model.name, model.version)
