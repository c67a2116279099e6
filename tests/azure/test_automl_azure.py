"""AutoML on an Azure workspace is an Azure ML AutoML job: the training data goes to the default datastore
(Azurite here) as an MLTable folder, the job is checked against Microsoft's contract (the fake ARM)."""
from __future__ import annotations

import io

import pandas as pd
import pytest
import yaml
from sklearn.datasets import load_breast_cancer, load_diabetes

from aml_magics.automl.settings import automl_submission
from aml_magics.backends.azure.blob import BlobContainer
from aml_magics.core.client import Client
from aml_magics.core.errors import InvalidInput

from .contract import FakeArm
from .test_blob_azurite import ACCOUNT, KEY, azurite  # noqa: F401  (the Azurite fixture)
from .test_rest_contract import StaticToken

pytestmark = pytest.mark.azure_contract


@pytest.fixture
def azure(azurite):  # noqa: F811
    fake = FakeArm().datastore_key(KEY)
    client = Client.connect("00000000-1111-2222-3333-444444444444", "my-rg", "automl-ws",
                            credential=StaticToken(fake.token), base_url=fake.base_url, storage=(azurite, ACCOUNT))
    container = BlobContainer(f"{azurite}/string", ACCOUNT, key=KEY)  # the example datastore's container
    try:
        container.create()
    except Exception:
        pass  # made by another test of the module
    yield client, fake, container
    fake.close()
    assert not fake.violations, "requests broke the contract:\n" + "\n".join(fake.violations)


def _job(fake):
    return [c for c in fake.calls if c.operation == "Jobs_CreateOrUpdate"][-1].body["properties"]


def _training(container, details):
    folder = details["trainingData"]["uri"].split("/paths/", 1)[1]
    table = yaml.safe_load(container.get(folder + "MLTable"))
    return folder, table


def test_a_dataframe_becomes_an_mltable_and_an_automl_job(azure, ip, tmp_path, monkeypatch, capsys):
    client, fake, container = azure
    monkeypatch.chdir(tmp_path)
    ip.magics_manager.registry["AmlMagics"]._client = client
    ip.user_ns["df"] = load_breast_cancer(as_frame=True).frame
    run = ip.run_line_magic("aml", "automl --task classification --data df --label target -c cpu-cluster "
                                   "--metric AUC_weighted --budget 60 --validation cv:5 --allowed LightGBM,RandomForest "
                                   "--no-ensemble -e bc")
    props = _job(fake)
    assert props["jobType"] == "AutoML" and props["experimentName"] == "bc"
    assert props["computeId"].endswith("/computes/cpu-cluster")
    details = props["taskDetails"]
    assert details["taskType"] == "Classification" and details["primaryMetric"] == "AUCWeighted"
    assert details["targetColumnName"] == "target" and details["trainingData"]["jobInputType"] == "mltable"
    assert details["limitSettings"] == {"timeout": "PT15M"}
    assert "at least 15 minutes" in capsys.readouterr().out
    assert details["nCrossValidations"] == {"mode": "Custom", "value": 5}
    assert details["trainingSettings"] == {"allowedTrainingAlgorithms": ["LightGBM", "RandomForest"],
                                           "enableVoteEnsemble": False, "enableStackEnsemble": False}
    assert details["featurizationSettings"] == {"mode": "Auto"}
    folder, table = _training(container, details)
    assert run.id in folder
    assert table["paths"] == [{"file": "./training_data.csv"}]
    assert table["transformations"][0]["read_delimited"]["header"] == "all_files_same_headers"
    uploaded = pd.read_csv(io.BytesIO(container.get(folder + "training_data.csv")))
    assert uploaded.shape == (569, 31) and uploaded["target"].sum() == 357


def test_arrays_files_and_datastore_data(azure, tmp_path, monkeypatch):
    client, fake, container = azure
    monkeypatch.chdir(tmp_path)
    X, y = load_diabetes(return_X_y=True)
    sub = automl_submission(data="X", in_memory=True, in_values={"training_data": X, "y": y}, task="regression",
                            label="y", metric="r2_score", max_trials=30, validation="0.2", featurization=False,
                            client=client, source_dir=tmp_path, experiment="diabetes", compute="cpu")
    client.runs.submit(sub)
    details = _job(fake)["taskDetails"]
    assert details["taskType"] == "Regression" and details["primaryMetric"] == "R2Score"
    assert details["validationDataSize"] == 0.2 and details["limitSettings"] == {"maxTrials": 30}
    assert details["featurizationSettings"] == {"mode": "Off"} and "trainingSettings" not in details
    folder, _ = _training(container, details)
    frame = pd.read_csv(io.BytesIO(container.get(folder + "training_data.csv")))
    assert list(frame.columns) == [f"x{i}" for i in range(10)] + ["y"] and len(frame) == 442

    days = pd.date_range("2025-01-01", periods=60, freq="D")
    pd.DataFrame({"day": days, "sales": range(60)}).to_csv(tmp_path / "sales.csv", index=False)
    sub = automl_submission(data="sales.csv", in_memory=False, task="forecasting", label="sales", time_column="day",
                            horizon=7, budget_s=1800, client=client, source_dir=tmp_path, experiment="sales",
                            compute="cpu", blocked="KNN")
    client.runs.submit(sub)
    details = _job(fake)["taskDetails"]
    assert details["taskType"] == "Forecasting" and details["limitSettings"] == {"timeout": "PT30M"}
    assert details["forecastingSettings"] == {"timeColumnName": "day", "forecastHorizon": {"mode": "Custom", "value": 7}}
    assert "KNN" not in details["trainingSettings"]["allowedTrainingAlgorithms"]
    folder, table = _training(container, details)
    assert container.get(folder + "sales.csv") == (tmp_path / "sales.csv").read_bytes()

    sub = automl_submission(data="datastore:tables/train.parquet", in_memory=False, task="classification",
                            label="label", client=client, source_dir=tmp_path, experiment="remote", compute="cpu")
    client.runs.submit(sub)
    details = _job(fake)["taskDetails"]
    folder, table = _training(container, details)
    # in the default datastore (Microsoft's example lists one, "string")
    assert table["paths"] == [{"file": "azureml://datastores/string/paths/tables/train.parquet"}]
    assert "read_parquet" in table["transformations"][0]
    assert [n for n, _ in container.list(folder)] == [folder + "MLTable"]  # nothing else uploaded

    with pytest.raises(InvalidInput, match="no compute cluster"):  # the example's computes are AKS
        client.runs.submit(automl_submission(data="sales.csv", in_memory=False, task="regression", label="sales",
                                             client=client, source_dir=tmp_path, experiment="e", compute="local"))
