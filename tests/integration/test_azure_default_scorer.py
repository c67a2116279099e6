"""The scorer a one-click deploy sends to an Azure ML managed endpoint, served by Microsoft's own inference server
(azureml-inference-server-http) as the endpoint would: predictions, probabilities, records, and a request the model
cannot take answered 400 with what to send."""
from __future__ import annotations

import joblib
import pytest
import requests
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from aml_magics.scoring.default_scorer import azure_default_score_py

from .test_scoring_parity import azmlinfsrv

pytestmark = pytest.mark.slow


def test_the_azure_default_scorer_runs_under_microsofts_inference_server(tmp_path):
    X, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(X, y)
    model_dir = tmp_path / "model" / "outputs"  # as AZUREML_MODEL_DIR holds a job output: in a subfolder
    model_dir.mkdir(parents=True)
    joblib.dump(model, model_dir / "model.pkl")
    score = tmp_path / "score.py"
    score.write_text(azure_default_score_py("scikit-learn", "iris", 3))
    with azmlinfsrv(score, tmp_path / "model", tmp_path / "azmlinfsrv.log") as base:
        ok = requests.post(base + "/score", json={"data": X[:3].tolist()}, timeout=30)
        assert ok.status_code == 200 and ok.json() == model.predict(X[:3]).tolist()
        proba = requests.post(base + "/score", json={"data": X[:2].tolist(), "method": "predict_proba"}, timeout=30)
        assert proba.status_code == 200 and len(proba.json()[0]) == 3
        for body, said in ((b"{not json", "not JSON"), (b'{"data": [[1, 2]]}', "each row needs 4 numbers"),
                           (b'{"data": []}', "non-empty list"), (b'{"data": [[1, 2, 3, 4]], "method": "fit"}',
                                                                  '"method" must be one of')):
            bad = requests.post(base + "/score", data=body, headers={"Content-Type": "application/json"}, timeout=30)
            assert bad.status_code == 400, (body, bad.status_code, bad.text)
            assert said in bad.json()["error"]
