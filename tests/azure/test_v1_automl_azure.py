"""An Azure ML v1 ``AutoMLConfig`` after ``%aml connect``: the same object becomes an Azure ML AutoML job — the
v1 names (task, primary metric, timeout in minutes, cross-validations, blocked models) in v2's words, the data in
the default datastore (Azurite) as an MLTable — every request checked against Microsoft's contract (the fake ARM)."""
from __future__ import annotations

import io

import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes

from aml_magics import v1

from .test_automl_azure import _job, _training, azure  # noqa: F401  (the fake ARM + Azurite fixture)
from .test_blob_azurite import azurite  # noqa: F401  (the Azurite fixture, which `azure` uses)

pytestmark = pytest.mark.azure_contract


@pytest.fixture
def azure_v1(azure, monkeypatch, tmp_path):  # noqa: F811
    client, fake, container = azure
    monkeypatch.delenv(v1.ENV_FLAG, raising=False)
    monkeypatch.chdir(tmp_path)
    v1.install(client=client, quiet=True)
    try:
        yield client, fake, container
    finally:
        v1.uninstall()
        v1.set_client(None)


def test_a_v1_automl_config_with_x_and_y_becomes_an_automl_job(azure_v1):
    client, fake, container = azure_v1
    from azureml.core import Experiment, Workspace
    from azureml.train.automl import AutoMLConfig

    X, y = load_diabetes(return_X_y=True, as_frame=True)
    config = AutoMLConfig(task="regression", primary_metric="normalized_root_mean_squared_error", X=X, y=y,
                          experiment_timeout_minutes=20, n_cross_validations=5, blocked_models=["KNN"],
                          compute_target="cpu-cluster", enable_early_stopping=True)
    run = Experiment(Workspace.from_config(), "v1-automl").submit(config)
    props = _job(fake)
    assert props["jobType"] == "AutoML" and props["experimentName"] == "v1-automl"
    assert props["computeId"].endswith("/computes/cpu-cluster")
    details = props["taskDetails"]
    assert details["taskType"] == "Regression"
    assert details["primaryMetric"] == "NormalizedRootMeanSquaredError"
    assert details["limitSettings"] == {"timeout": "PT20M"}
    assert details["nCrossValidations"] == {"mode": "Custom", "value": 5}
    assert "KNN" not in details["trainingSettings"]["allowedTrainingAlgorithms"]
    folder, table = _training(container, details)
    frame = pd.read_csv(io.BytesIO(container.get(folder + "training_data.csv")))
    label = details["targetColumnName"]
    assert len(frame) == 442 and list(frame.columns[:10]) == list(X.columns)  # X's columns and y beside them
    assert frame[label].round(6).tolist() == y.round(6).tolist()
    assert type(run).__name__ in ("Run", "AutoMLRun") and hasattr(run, "get_output")
    assert not fake.violations


def test_a_v1_automl_config_with_training_data_and_a_label_column(azure_v1):
    client, fake, container = azure_v1
    from azureml.core import Experiment, Workspace
    from azureml.train.automl import AutoMLConfig

    frame = load_breast_cancer(as_frame=True).frame
    config = AutoMLConfig(task="classification", primary_metric="AUC_weighted", training_data=frame,
                          label_column_name="target", iterations=25, validation_size=0.2,
                          enable_voting_ensemble=False, enable_early_stopping=False, compute_target="cpu-cluster")
    Experiment(Workspace.from_config(), "v1-automl-bc").submit(config)
    details = _job(fake)["taskDetails"]
    assert details["taskType"] == "Classification" and details["primaryMetric"] == "AUCWeighted"
    assert details["targetColumnName"] == "target"
    assert details["limitSettings"] == {"maxTrials": 25, "enableEarlyTermination": False}
    assert details["validationDataSize"] == 0.2
    assert details["trainingSettings"]["enableVoteEnsemble"] is False
    folder, _ = _training(container, details)
    uploaded = pd.read_csv(io.BytesIO(container.get(folder + "training_data.csv")))
    assert uploaded.shape == (569, 31) and uploaded["target"].sum() == 357
