"""The MLflow REST client against a real MLflow tracking server (MLflow's own `mlflow server`, SQLite store,
on loopback): Azure ML's metrics endpoint speaks this API, so this is the peer we can run here.

The server runs from its own virtualenv ($AML_MAGICS_MLFLOW_PYTHON; scripts/test creates it): MLflow is
large and `import flaml` imports mlflow whenever it is installed, which would slow every AutoML run."""
from __future__ import annotations

import time

import pytest

from aml_magics.backends.azure.mlflow_rest import MlflowRest, tracking_base
from aml_magics.core.errors import NotFound

pytestmark = pytest.mark.azure_contract


def test_tracking_base_for_azure_and_plain_uris():
    uri = ("azureml://westeurope.api.azureml.ms/mlflow/v1.0/subscriptions/s/resourceGroups/rg/providers/"
           "Microsoft.MachineLearningServices/workspaces/w")
    assert tracking_base(uri) == ("https://westeurope.api.azureml.ms/mlflow/v2.0/subscriptions/s/resourceGroups/rg/"
                                  "providers/Microsoft.MachineLearningServices/workspaces/w")
    assert tracking_base("http://127.0.0.1:5000/") == "http://127.0.0.1:5000"


def test_runs_metrics_params_tags_round_trip(mlflow_server):
    ml = MlflowRest(mlflow_server)
    run_id = ml.create_run("azure-peer", run_name="cell", tags={"aml.kind": "cell"})
    points = [("loss", 1.0 / (i + 1), i, time.time()) for i in range(2500)]  # more than one batch
    ml.log_batch(run_id, points, params={"alpha": 0.1}, tags={"stage": "test"})
    ml.log_batch(run_id, [("accuracy", 0.9, 0, time.time())])
    history = ml.metric_history(run_id, "loss")
    assert [s for s, _, _ in history] == list(range(2500))
    assert history[-1][2] == pytest.approx(1 / 2500)
    ml.end_run(run_id)
    run = ml.get_run(run_id)
    assert run["info"]["status"] == "FINISHED"
    data = run["data"]
    assert {p["key"]: p["value"] for p in data["params"]} == {"alpha": "0.1"}
    assert {t["key"]: t["value"] for t in data["tags"]}["stage"] == "test"
    assert {m["key"] for m in data["metrics"]} == {"loss", "accuracy"}
    found = ml.search_runs([ml.experiment_id("azure-peer", create=False)])
    assert [r["info"]["run_id"] for r in found] == [run_id]
    with pytest.raises(NotFound):
        ml.get_run("0" * 32)
