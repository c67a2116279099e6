"""Batch endpoints on an Azure workspace: create (an endpoint, its one deployment, the endpoint's default), list and
delete, every request checked against Microsoft's 2024-10-01 contract — against Microsoft's example responses, and
against a fake that keeps state (a new endpoint: 404 first, then created). Invoking an endpoint is a data-plane call
outside that contract, and is not done here."""
from __future__ import annotations

import os

import pytest

from aml_magics.core.errors import AmlError, InvalidInput, NotFound

from .contract import FakeArm, client_on

pytestmark = pytest.mark.azure_contract


@pytest.fixture(params=["examples", "state"])
def azure(spec, request):
    fake = FakeArm(spec=spec).snapshots_here()
    if request.param == "state":
        fake.keeping_state(page_size=2)
    with client_on(fake) as client:
        if request.param == "state":  # a model to score with, registered in the kept state
            client.backend.arm.put(f"{client.backend.ws.path}/models/digits/versions/1",
                                   {"properties": {"modelUri": "azureml://datastores/d/paths/model.pkl",
                                                   "modelType": "custom_model"}})
        yield client, fake, request.param
    assert not fake.violations, "requests broke the contract:\n" + "\n".join(fake.violations)


def test_create_list_and_delete_a_batch_endpoint(azure, tmp_path):
    client, fake, mode = azure
    score = tmp_path / "batch_score.py"
    score.write_text("def init():\n    pass\n\ndef run(mini_batch):\n    return mini_batch\n")
    info = client.batch_endpoints.create("digits-batch", "digits:1", score=score, compute="cpu-cluster",
                                         mini_batch=5, parallel=2, retries=1, error_threshold=10,
                                         output_file="preds.csv")
    ops = [c.operation for c in fake.calls]
    [deployment] = [c for c in fake.calls if c.operation == "BatchDeployments_CreateOrUpdate"]
    assert deployment.path.endswith("/batchEndpoints/digits-batch/deployments/default")
    props = deployment.body["properties"]
    assert props["model"]["referenceType"] == "Id"
    assert props["model"]["assetId"].startswith(f"{client.backend.ws.path}/models/")
    if mode == "state":
        assert props["model"]["assetId"] == f"{client.backend.ws.path}/models/digits/versions/1"
    assert props["codeConfiguration"]["scoringScript"] == "batch_score.py" and props["codeConfiguration"]["codeId"]
    assert props["compute"].endswith("/computes/cpu-cluster")
    assert (props["miniBatchSize"], props["maxConcurrencyPerInstance"], props["errorThreshold"]) == (5, 2, 10)
    assert props["retrySettings"]["maxRetries"] == 1 and props["outputAction"] == "AppendRow"
    assert props["outputFileName"] == "preds.csv"
    endpoints = [c for c in fake.calls if c.operation == "BatchEndpoints_CreateOrUpdate"]
    if mode == "state":  # a new endpoint: created (Entra ID tokens only) before its deployment
        assert ops.index("BatchEndpoints_CreateOrUpdate") < ops.index("BatchDeployments_CreateOrUpdate")
        assert endpoints[0].body["properties"] == {"authMode": "AADToken"}
    assert endpoints[-1].body["properties"]["defaults"] == {"deploymentName": "default"}
    assert info.name == "digits-batch" and (info.deployment == "default" or mode == "examples")
    assert "digits-batch" in repr(info) and "<" not in info.name
    listed = client.batch_endpoints.list()
    assert any(e.name == "digits-batch" for e in listed) if mode == "state" else len(listed) >= 1
    client.batch_endpoints.delete("digits-batch")
    assert fake.calls[-1].operation == "BatchEndpoints_Delete" or "BatchEndpoints_Delete" in [c.operation for c in fake.calls]


@pytest.mark.parametrize("azure", ["state"], indirect=True)
def test_a_scikit_learn_model_gets_a_generated_batch_scorer(azure, tmp_path):
    """The kept model is a .pkl: without --score the deployment gets a generated scorer (v1's contract), uploaded
    as code; the generated script itself scores files here the way the service calls it."""
    client, fake, mode = azure
    client.batch_endpoints.create("gen-batch", "digits:1", compute="cpu-cluster")
    [deployment] = [c for c in fake.calls if c.operation == "BatchDeployments_CreateOrUpdate"]
    assert deployment.body["properties"]["codeConfiguration"]["scoringScript"] == "batch_score.py"
    import joblib
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    from aml_magics.backends.azure.batch_endpoints import DEFAULT_BATCH_SCORE

    X, y = load_digits(return_X_y=True)
    (tmp_path / "model").mkdir()
    joblib.dump(LogisticRegression(max_iter=3000).fit(X, y), tmp_path / "model" / "model.pkl")
    for i in range(3):
        np.save(tmp_path / f"img{i}.npy", X[i])
    ns: dict = {}
    import os

    os.environ["AZUREML_MODEL_DIR"] = str(tmp_path / "model")
    try:
        exec(compile(DEFAULT_BATCH_SCORE.format(name="digits", version=1), "batch_score.py", "exec"), ns)
        ns["init"]()
        lines = ns["run"]([str(tmp_path / f"img{i}.npy") for i in range(3)])
    finally:
        del os.environ["AZUREML_MODEL_DIR"]
    assert lines == [f"img{i}.npy 0 {y[i]}" for i in range(3)]


def test_batch_endpoint_mistakes_are_one_line_and_send_nothing(azure, tmp_path):
    client, fake, mode = azure
    before = len(fake.calls)
    with pytest.raises(InvalidInput, match="3-32 letters"):
        client.batch_endpoints.create("<b>x</b>", "digits:1", compute="cpu-cluster")
    with pytest.raises(InvalidInput, match="-c NAME"):
        client.batch_endpoints.create("ok-name", "digits:1")
    with pytest.raises(NotFound, match="scoring script"):
        client.batch_endpoints.create("ok-name", "digits:1", score=tmp_path / "nope.py", compute="c")
    with pytest.raises(AmlError, match="must be between 1 and 1024"):
        client.batch_endpoints.create("ok-name", "digits:1", compute="c", parallel=0)
    for bad, message in (("../../x.csv", "without folders"), ("out/p.csv", "without folders"),
                         (".hidden.csv", "without folders"), ("p.json", "end it in .txt or .csv")):
        with pytest.raises(InvalidInput, match=message):  # the file name the service writes its results to
            client.batch_endpoints.create("ok-name", "digits:1", compute="c", output_file=bad)
    assert not [c for c in fake.calls[before:] if c.method != "GET"]


def test_a_batch_run_is_a_command_job_that_runs_the_batch_engine(spec, tmp_path):
    """`%aml batch` on an Azure workspace: one command job (contract-checked) whose snapshot ships the batch engine;
    the model is a custom_model input, the data a uri_folder input, the output file goes to the job's output. The
    job is then run here the way Azure ML starts it (its inputs as local folders, its command as written)."""
    import subprocess
    import sys

    import joblib
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    from .test_blob_azurite import _job_folder

    fake = FakeArm(spec=spec).snapshots_here().keeping_state(page_size=2)
    with client_on(fake) as client:
        ws = client.backend.ws.path
        client.backend.arm.put(f"{ws}/models/digits/versions/1", {"properties": {
            "modelUri": "azureml://datastores/d/paths/model", "modelType": "custom_model",
            "properties": {"framework": "scikit-learn"}}})
        (tmp_path / "src").mkdir()
        run = client.batch.submit("digits:1", "azureml://datastores/workspaceblobstore/paths/digits/images",
                                  mini_batch=4, parallel=2, compute="cpu-cluster", source_dir=tmp_path / "src",
                                  experiment="azure-batch", output="datastore:digits/preds")
        [job] = [c for c in fake.calls if c.operation == "Jobs_CreateOrUpdate"]
        props = job.body["properties"]
        assert job.path.endswith("/jobs/" + run.id)
        assert props["command"] == ("python __aml_batch__.py --data ${{inputs.data}} --model ${{inputs.model}} "
                                    "--out ${{outputs.predictions}}")
        assert props["inputs"]["data"] == {"jobInputType": "uri_folder",
                                           "uri": "azureml://datastores/workspaceblobstore/paths/digits/images"}
        assert props["inputs"]["model"] == {"jobInputType": "custom_model", "mode": "Download",
                                            "uri": f"azureml:{ws}/models/digits/versions/1"}
        assert props["outputs"]["predictions"]["jobOutputType"] == "uri_folder"
        assert props["computeId"].endswith("/computes/cpu-cluster")
    assert not fake.violations, fake.violations

    # the job, as Azure ML starts it: the model and the data downloaded, the output folder given
    jobdir = _job_folder(fake, tmp_path / "job")
    assert (jobdir / "aml_magics" / "batch" / "engine.py").is_file() and (jobdir / "__aml_batch__.json").is_file()
    X, y = load_digits(return_X_y=True)
    model_dir, data, out = tmp_path / "model", tmp_path / "data", tmp_path / "out"
    for d in (model_dir, data, out):
        d.mkdir()
    joblib.dump(LogisticRegression(max_iter=3000).fit(X, y), model_dir / "model.pkl")
    for i in range(10):
        np.save(data / f"img_{i}.npy", X[i])
    command = props["command"].replace("${{inputs.data}}", str(data)).replace("${{inputs.model}}", str(model_dir)) \
        .replace("${{outputs.predictions}}", str(out))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AML_MAGICS", "MLFLOW"))}
    env["PYTHONPATH"] = str(jobdir)  # only what the job ships (and the environment's packages)
    done = subprocess.run([sys.executable, *command.split()[1:]], cwd=jobdir, capture_output=True, text=True,
                          timeout=180, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    lines = (out / "parallel_run_step.txt").read_text().splitlines()
    assert lines == [f"img_{i}.npy 0 {y[i]}" for i in range(10)]
