"""The azure backend behind the same Client the magics use, against the contract fake (and MLflow peer)."""
from __future__ import annotations

import pytest

from aml_magics.core.client import Client
from aml_magics.core.errors import AmlError, InvalidInput
from aml_magics.core.types import RunSubmission

from .contract import FakeArm, client_on
from .test_rest_contract import StaticToken

pytestmark = pytest.mark.azure_contract


@pytest.fixture
def azure(spec):
    fake = FakeArm(spec=spec).snapshots_here()
    with client_on(fake) as client:
        yield client, fake


def test_workspace_and_computes_through_the_client(azure):
    client, fake = azure
    info = client.workspace
    assert info.backend == "azure" and info.name == "my-ws"
    assert [c.name for c in client.computes.list()] == ["compute123", "compute1234"]
    assert "azure workspace 'my-ws'" in repr(client) and fake.token not in repr(client)
    assert fake.token not in repr(client.backend) and fake.token not in repr(client.backend.arm)


def test_a_cell_run_is_a_command_job(azure, tmp_path):
    client, fake = azure
    (tmp_path / "helper.py").write_text("X = 1\n")
    run = client.runs.submit(RunSubmission(kind="cell", experiment="mnist", source_dir=tmp_path, entry="c.py",
                                           code="import helper\nprint(helper.X)\n", compute="cpu-cluster",
                                           args=["--lr", "0.1"], tags={"team": "a"}, timeout_s=5400,
                                           inputs={"data": "datastore:mnist/"}))
    job = [c for c in fake.calls if c.operation == "Jobs_CreateOrUpdate"][0]
    props = job.body["properties"]
    assert props["limits"] == {"jobLimitsType": "Command", "timeout": "PT1H30M"}  # --timeout 90m: the service cancels
    assert props["command"] == "python __aml_cell__.py --lr 0.1" and props["experimentName"] == "mnist"
    assert props["computeId"].endswith("/computes/cpu-cluster") and props["codeId"]
    # datastore:PATH is in the workspace's default datastore, where uploads go too: Microsoft's example lists one
    # datastore, "string" (so it is the default), not a hard-coded "workspaceblobstore"
    assert props["inputs"]["data"]["uri"] == "azureml://datastores/string/paths/mnist/"
    assert client.backend.datastores.default_name() == "string"
    assert props["environmentVariables"]["AML_MAGICS_RUN_ID"] == run.id == job.path.rsplit("/", 1)[1]
    assert fake.blobs["/blob/c/snap/__aml_cell__.py"] == b"import helper\nprint(helper.X)\n"
    assert fake.blobs["/blob/c/snap/helper.py"] == b"X = 1\n"
    info = client.runs.get(run.id)
    assert info.status == "NotStarted" and info.kind == "command"
    listed = client.runs.list(limit=10)
    assert listed.infos and all(i.status for i in listed.infos)
    client.runs.cancel(run.id)
    assert fake.calls[-1].operation in ("Jobs_Get", "Jobs_Cancel")
    assert "Jobs_Cancel" in [c.operation for c in fake.calls]


def test_what_is_not_there_yet_says_so_in_one_line(azure, tmp_path):
    client, fake = azure
    with pytest.raises(InvalidInput, match="no compute cluster: create one"):  # the example's computes are AKS
        client.runs.submit(RunSubmission(kind="cell", experiment="e", source_dir=tmp_path, entry="c.py", code="1"))
    with pytest.raises(AmlError, match="account key is not a valid key"):  # Microsoft's example key is "string"
        client.datastores.upload(tmp_path, "x")
    from aml_magics.core.errors import NotFound

    with pytest.raises(NotFound, match="script 'missing.py' not found"):  # refused before any upload
        client.runs.submit(RunSubmission(kind="script", experiment="e", source_dir=tmp_path, entry="missing.py",
                                         compute="cpu", in_values={"x": 1}))
    assert not fake.blobs and not [c for c in fake.calls if c.operation.startswith("CodeVersions")]
    (tmp_path / "lab.ipynb").write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    run = client.runs.submit(RunSubmission(kind="notebook", experiment="e", source_dir=tmp_path, entry="lab.ipynb",
                                           compute="cpu", parameters={"alpha": 0.5}))
    job = [c for c in fake.calls if c.operation == "Jobs_CreateOrUpdate"][-1]
    assert job.body["properties"]["command"] == "python -m papermill lab.ipynb outputs/lab.ipynb -p alpha 0.5"
    assert run.id in job.path


def test_metrics_come_from_the_workspace_mlflow_endpoint(spec, mlflow_server):
    """Run metrics are read through MLflow (Azure ML's tracking endpoint speaks its REST API): here the
    endpoint is a real MLflow server, the jobs come from the contract fake."""
    import time

    from aml_magics.backends.azure.mlflow_rest import MlflowRest

    ml = MlflowRest(mlflow_server)
    run_id = ml.create_run("azure-metrics", run_name="job")
    ml.log_batch(run_id, [("loss", 1.0 / (i + 1), i, time.time()) for i in range(50)] +
                 [("accuracy", 0.5 + i / 100, i, time.time()) for i in range(10)])
    fake = FakeArm(spec=spec)
    try:
        client = Client.connect("00000000-1111-2222-3333-444444444444", "my-rg", "metrics-ws",
                                credential=StaticToken(fake.token), base_url=fake.base_url, mlflow_uri=mlflow_server)
        assert client.runs.metric_names(run_id) == ["accuracy", "loss"]
        points, cursor = client.runs.metric_series(run_id, "loss", 40)
        assert [s for s, _, _ in points] == list(range(40, 50)) and cursor == 50
        metrics = client.runs.get_metrics(run_id)
        assert len(metrics["loss"]) == 50 and metrics["accuracy"][-1] == pytest.approx(0.59)
        assert client.runs.get(run_id).latest_metrics["accuracy"] == pytest.approx(0.59)
    finally:
        fake.close()
    assert not fake.violations, fake.violations


def test_connect_magic_refuses_half_a_workspace_and_missing_config(ip, project):
    from IPython.core.error import UsageError

    with pytest.raises(UsageError, match="give all of --subscription, --resource-group and --workspace"):
        ip.run_line_magic("aml", "connect --subscription s")
    with pytest.raises(UsageError, match="no config.json found"):
        ip.run_line_magic("aml", "connect")


def test_register_a_job_output_and_deploy_it_to_a_managed_endpoint(azure, tmp_path):
    client, fake = azure
    model = client.models.register("digits", "outputs/model.pkl", run_id="job-123", tags={"stage": "dev"})
    put = [c for c in fake.calls if c.operation == "ModelVersions_CreateOrUpdate"][-1]
    assert put.body["properties"]["modelUri"] == "azureml://jobs/job-123/outputs/artifacts/paths/outputs/model.pkl"
    assert put.path.endswith("/models/digits/versions/" + str(model.version))
    with pytest.raises(InvalidInput, match="inside the job's outputs"):
        client.models.register("digits", "../../secrets", run_id="job-123")
    assert client.models.list("digits")
    (tmp_path / "score.py").write_text("def init():\n    pass\n\ndef run(raw):\n    return raw\n")
    svc = client.deployments.create("digits-ep", "digits:1", score=tmp_path / "score.py")
    operations = [c.operation for c in fake.calls]
    for op in ("OnlineEndpoints_CreateOrUpdate", "OnlineDeployments_CreateOrUpdate", "CodeVersions_CreateOrUpdate"):
        assert op in operations
    deployment = [c for c in fake.calls if c.operation == "OnlineDeployments_CreateOrUpdate"][-1]
    assert deployment.body["properties"]["model"].endswith("/models/digits/versions/1")
    assert deployment.body["properties"]["codeConfiguration"]["scoringScript"] == "score.py"
    assert svc.scoring_uri.startswith("https://")
    primary, secondary = client.deployments.get_keys("digits-ep")
    # Microsoft's example keys are the placeholder "string" (so searching reprs for them would prove nothing)
    assert (primary, secondary) == ("string", "string")
    assert client.deployments.get_logs("digits-ep", tail=50) is not None
    client.deployments.regenerate_key("digits-ep", "primary")
    client.deployments.delete("digits-ep")
    assert [c for c in fake.calls if c.operation == "OnlineEndpoints_Delete"]


def test_the_magics_on_an_azure_workspace_never_show_the_token(azure, ip, capsys, tmp_path):
    client, fake = azure
    magics = ip.magics_manager.registry["AmlMagics"]
    magics._client = client  # what %aml connect does after signing in
    shown = []
    for line in ("", "compute", "runs", "experiments", "models digits", "services"):
        result = ip.run_line_magic("aml", line)
        shown.append(repr(result))
        if hasattr(result, "_repr_html_"):
            shown.append(result._repr_html_())
    run = ip.run_cell_magic("aml", "run -c cpu-cluster -e azure-cell", "print('hello from Azure')\n")
    shown += [repr(run), repr(client.runs.get(run.id))]
    fake.overrides["Jobs_Get"] = lambda call, status, body: (401, {"error": {"code": "ExpiredAuthenticationToken",
                                                                              "message": "the token expired"}})
    from IPython.core.error import UsageError

    with pytest.raises(UsageError, match="az login") as info:
        ip.run_line_magic("aml", f"show {run.id} --static")
    shown.append(str(info.value))
    captured = capsys.readouterr()
    shown += [captured.out, captured.err]
    text = "\n".join(shown)
    assert "compute123" in text and "azure-cell" in text
    assert fake.token not in text


def test_tags_of_a_model_version_are_written_back_with_the_version(azure):
    client, fake = azure
    client.models.add_tags("digits", 3, {"stage": "prod", "score": 0.97})
    get, put = [c for c in fake.calls if c.operation.startswith("ModelVersions_")][-2:]
    assert (get.operation, put.operation) == ("ModelVersions_Get", "ModelVersions_CreateOrUpdate")
    assert put.path.endswith("/models/digits/versions/3")
    tags = put.body["properties"]["tags"]
    assert tags["stage"] == "prod" and tags["score"] == "0.97"
    assert "provisioningState" not in put.body["properties"]  # read-only fields are not sent back (the fake checks)


def test_a_job_logs_through_mlflow_with_nothing_but_the_shipped_runtime(spec, mlflow_server, tmp_path):
    """The snapshot carries aml-magics' job runtime: the cell runs as Azure ML would start it (the job's
    MLflow variables set) with only the standard library and requests importable — no aml-magics installed."""
    import os
    import subprocess
    import sys

    import requests

    from aml_magics.backends.azure.mlflow_rest import MlflowRest

    fake = FakeArm(spec=spec)
    fake.snapshots_here()
    try:
        client = Client.connect("00000000-1111-2222-3333-444444444444", "my-rg", "rt-ws",
                                credential=StaticToken(fake.token), base_url=fake.base_url, mlflow_uri=mlflow_server)
        cell = ("import aml_magics\nfrom aml_magics import Run\nrun = Run.get_context()\n"
                "for i in range(20):\n    run.log('loss', 1.0 / (i + 1))\nrun.log_param('lr', 0.5)\n"
                "print(aml_magics.__file__)\n")
        (tmp_path / "src").mkdir()
        run = client.runs.submit(RunSubmission(kind="cell", experiment="rt", source_dir=tmp_path / "src", entry="c.py",
                                               code=cell, compute="cpu-cluster"))
        job = tmp_path / "job"
        for path, data in fake.blobs.items():
            if path.startswith("/blob/c/snap/"):
                target = job / path[len("/blob/c/snap/"):]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
        assert (job / "aml_magics" / "backends" / "azure" / "tracker.py").is_file()
        env_vars = [c for c in fake.calls if c.operation == "Jobs_CreateOrUpdate"][-1].body["properties"][
            "environmentVariables"]
        assert env_vars["AML_MAGICS_RUN_ID"] == run.id
        ml = MlflowRest(mlflow_server)
        mlflow_run = ml.create_run("rt", run_name=run.id)
        site = os.path.dirname(os.path.dirname(requests.__file__))  # requests and its dependencies, nothing else
        env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": site, "MLFLOW_TRACKING_URI": mlflow_server,
               "MLFLOW_RUN_ID": mlflow_run, **env_vars}
        out = subprocess.run([sys.executable, "-S", "__aml_cell__.py"], cwd=job, env=env, capture_output=True,
                             text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip().startswith(str(job / "aml_magics")), out.stdout
        assert [s for s, _, _ in ml.metric_history(mlflow_run, "loss")] == list(range(20))
        assert {p["key"]: p["value"] for p in ml.get_run(mlflow_run)["data"]["params"]} == {"lr": "0.5"}
    finally:
        fake.close()
    assert not fake.violations, fake.violations


def test_environments_are_versions_with_a_conda_file_and_jobs_use_them(azure, tmp_path, ip):
    client, fake = azure
    (tmp_path / "requirements.txt").write_text("scikit-learn==1.5.2\n# a comment\nlightgbm>=4\n")
    env = client.environments.register("train-env", tmp_path / "requirements.txt")
    put = [c for c in fake.calls if c.operation == "EnvironmentVersions_CreateOrUpdate"][-1]
    props = put.body["properties"]
    assert props["image"].startswith("mcr.microsoft.com/azureml/")
    import yaml

    conda = yaml.safe_load(props["condaFile"])
    assert conda["dependencies"][-1] == {"pip": ["lightgbm>=4", "scikit-learn==1.5.2"]}
    assert props["tags"]["aml_magics.hash"] == env.hash and env.packages == ["lightgbm>=4", "scikit-learn==1.5.2"]
    assert put.path.endswith(f"/environments/train-env/versions/{env.version}")
    listed = client.environments.list()
    assert listed and all(e.name for e in listed)

    (tmp_path / "train.py").write_text("print(1)\n")
    client.runs.submit(RunSubmission(kind="script", experiment="e", source_dir=tmp_path, entry="train.py",
                                     compute="cpu", environment="train-env:3"))
    job = [c for c in fake.calls if c.operation == "Jobs_CreateOrUpdate"][-1]
    assert job.body["properties"]["environmentId"].endswith("/environments/train-env/versions/3")
    client.runs.submit(RunSubmission(kind="script", experiment="e", source_dir=tmp_path, entry="train.py",
                                     compute="cpu", environment=str(tmp_path / "requirements.txt")))
    job = [c for c in fake.calls if c.operation == "Jobs_CreateOrUpdate"][-1]
    assert "/environments/aml-magics-" in job.body["properties"]["environmentId"]
    curated = "azureml://registries/azureml/environments/sklearn-1.5/labels/latest"
    client.runs.submit(RunSubmission(kind="script", experiment="e", source_dir=tmp_path, entry="train.py",
                                     compute="cpu", environment=curated))
    assert [c for c in fake.calls if c.operation == "Jobs_CreateOrUpdate"][-1].body["properties"][
        "environmentId"] == curated
    from IPython.core.error import UsageError

    ip.magics_manager.registry["AmlMagics"]._client = client
    with pytest.raises(UsageError, match="builds an environment's image"):
        ip.run_line_magic("aml", "env build train-env")
    with pytest.raises(UsageError, match="lists no packages"):
        (tmp_path / "empty.txt").write_text("# nothing\n")
        ip.run_line_magic("aml", f"env register e2 {tmp_path / 'empty.txt'}")


def test_doctor_checks_what_an_azure_workspace_needs_and_compute_create_makes_a_cluster(azure, ip):
    client, fake = azure
    report = client.doctor()
    results = {name: (outcome, detail) for name, outcome, detail in report.checks}
    assert results["sign-in and workspace"][0] == "ok"
    assert results["compute targets"] == ("ok", "compute123 (1 node(s)), compute1234 (1 node(s))")
    # Microsoft's workspace example has no mlFlowTrackingUri and its datastore key is the placeholder "string"
    assert results["MLflow tracking endpoint"][0] == "problem" and "MLflow" in results["MLflow tracking endpoint"][1]
    assert results["default datastore"][0] == "problem" and "key" in results["default datastore"][1]
    assert not report.healthy and fake.token not in repr(report) + report._repr_html_()

    ip.magics_manager.registry["AmlMagics"]._client = client
    target = ip.run_line_magic("aml", "compute create gpu-pool --max-concurrent 3")
    put = [c for c in fake.calls if c.operation == "Compute_CreateOrUpdate"][-1]
    assert put.path.endswith("/computes/gpu-pool")
    inner = put.body["properties"]["properties"]
    assert put.body["properties"]["computeType"] == "AmlCompute"
    assert inner["scaleSettings"] == {"maxNodeCount": 3, "minNodeCount": 0, "nodeIdleTimeBeforeScaleDown": "PT120S"}
    assert target.name
    from IPython.core.error import UsageError

    with pytest.raises(UsageError, match="compute name"):
        ip.run_line_magic("aml", "compute create x --max-concurrent 2")
    with pytest.raises(UsageError, match="no controller to resume"):
        ip.run_line_magic("aml", "resume some-job")


def test_without_c_the_only_cluster_is_used_and_several_need_a_choice(azure, tmp_path):
    """Compute_List answered with Microsoft's AmlCompute example (examples/Compute/get/AmlCompute.json)."""
    import copy
    import json
    from pathlib import Path

    client, fake = azure
    cluster = json.loads((Path(__file__).parent / "azureml-rest-2024-10-01" / "examples" / "Compute" / "get" /
                          "AmlCompute.json").read_text())["responses"]["200"]["body"]
    listed = [cluster]
    fake.overrides["Compute_List"] = lambda call, status, body: (status, {"value": copy.deepcopy(listed)})
    (tmp_path / "train.py").write_text("print(1)\n")
    client.runs.submit(RunSubmission(kind="script", experiment="e", source_dir=tmp_path, entry="train.py"))
    job = [c for c in fake.calls if c.operation == "Jobs_CreateOrUpdate"][-1]
    assert job.body["properties"]["computeId"].endswith("/computes/" + cluster["name"])
    second = copy.deepcopy(cluster)
    second["name"] = "gpu-cluster"
    listed.append(second)
    with pytest.raises(InvalidInput, match=f"choose a compute target with -c: {cluster['name']}, gpu-cluster"):
        client.runs.submit(RunSubmission(kind="script", experiment="e", source_dir=tmp_path, entry="train.py"))


def test_the_dashboard_of_an_azure_job_renders_without_an_mlflow_endpoint(azure):
    """Microsoft's workspace example has no mlFlowTrackingUri: the dashboard shows the job without charts."""
    from aml_magics.widgets.run_details import RunDetails

    client, fake = azure
    run = client.runs.handle("job-1", "e")
    widget = RunDetails(run, live=False)
    assert "NotStarted" in widget.header.value or "Queued" in widget.header.value
    assert client.runs.metric_names("job-1") == [] and client.runs.children("job-1").infos == []
    assert fake.token not in widget.header.value
    # the example datastore's key is the placeholder "string": the log pane says why it has no log
    assert "The log cannot be read" in widget.log.value and "account key is not a valid key" in widget.log.value


def test_deploy_target_and_instance_type(azure, ip, tmp_path):
    from IPython.core.error import UsageError

    client, fake = azure
    magics = ip.magics_manager.registry["AmlMagics"]
    magics._client = client
    (tmp_path / "score.py").write_text("def init():\n    pass\n\ndef run(raw):\n    return raw\n")
    svc = ip.run_line_magic("aml", f"deploy digits:1 --name digits-ep --target azure --instance-type Standard_F4s_v2 "
                                   f"--score {tmp_path / 'score.py'}")
    deployment = [c for c in fake.calls if c.operation == "OnlineDeployments_CreateOrUpdate"][-1]
    assert deployment.body["properties"]["instanceType"] == "Standard_F4s_v2" and svc.name == "digits-ep"
    # the example workspace's deployment has a variable of its own: kept, and no WORKER_COUNT for one worker
    assert deployment.body["properties"]["environmentVariables"] == {"string": "string"}
    # --workers: the inference server's worker processes per instance (its WORKER_COUNT setting)
    ip.run_line_magic("aml", f"deploy digits:1 --name digits-ep --target azure --workers 4 --update "
                             f"--score {tmp_path / 'score.py'}")
    deployment = [c for c in fake.calls if c.operation == "OnlineDeployments_CreateOrUpdate"][-1]
    assert deployment.body["properties"]["environmentVariables"] == {"string": "string", "WORKER_COUNT": "4"}
    with pytest.raises(UsageError, match="--target local: services of this workspace run on Azure ML workspace"):
        ip.run_line_magic("aml", "deploy digits:1 --target local")
    magics._client = None  # back to the test's local workspace
    with pytest.raises(UsageError, match="%aml connect"):
        ip.run_line_magic("aml", "deploy digits:1 --target azure")
    with pytest.raises(UsageError, match="--instance-type is not available on this machine; .*Azure endpoints"):
        ip.run_line_magic("aml", "deploy digits:1 --instance-type Standard_F4s_v2")


def test_service_run_scores_at_the_endpoints_scoring_uri_with_its_key(azure, tmp_path):
    """A managed online deployment runs score.py in Microsoft's azureml-inference-server-http: here that server
    runs the same score.py on loopback, and the endpoint's scoringUri points at it (stated adaptation: the
    example's scoringUri is https://www.contoso.com/example). service.run() asks for the key and POSTs there."""
    from tests.integration.test_scoring_parity import SCORE, azmlinfsrv

    client, fake = azure
    score = tmp_path / "score.py"
    score.write_text(SCORE)
    with azmlinfsrv(score, tmp_path, tmp_path / "azmlinfsrv.log") as base:
        fake.overrides["OnlineEndpoints_Get"] = lambda call, status, body: (
            status, {**body, "properties": {**body["properties"], "scoringUri": f"{base}/score"}})
        svc = client.deployments.create("digits-ep", "digits:1", score=score)
        assert svc.scoring_uri == f"{base}/score"
        assert svc.run({"data": [1, 2, 3]}) == [2, 4, 6]
        assert svc.run('{"data": [5]}') == [10]
        with pytest.raises(AmlError, match="answered 500"):
            svc.run({"boom": True})
    assert "OnlineEndpoints_ListKeys" in [c.operation for c in fake.calls]  # the key was asked for, to send


def test_azure_times_with_seven_fractional_digits_are_read_on_every_python(azure, tmp_path):
    """The fake writes systemData times as the service does (…56.9990000Z); runs, models and environments keep
    them (Python 3.10's fromisoformat returns nothing for 7 digits, and `created` went empty)."""
    import datetime

    from aml_magics.backends.azure.convert import timestamp as _ts

    client, fake = azure
    expected = datetime.datetime(2020, 1, 1, 12, 34, 56, 999000, tzinfo=datetime.timezone.utc).timestamp()
    run = client.runs.submit(RunSubmission(kind="cell", experiment="times", source_dir=tmp_path, entry="c.py",
                                           code="x = 1\n", compute="cpu-cluster"))
    assert client.runs.get(run.id).created == pytest.approx(expected)
    assert all(i.created for i in client.runs.list(limit=5).infos)
    models = client.models.list()
    assert models and all(m.created for m in models)
    environments = client.environments.list()
    assert environments and all(e.created for e in environments)
    for text, value in (("2024-05-20T10:15:30.1234567Z", 1716200130.1234567), ("2024-05-20T10:15:30Z", 1716200130.0),
                        ("2024-05-20T10:15:30.1Z", 1716200130.1), ("2024-05-20T12:15:30.123456789+02:00",
                                                                    1716200130.123456789)):
        assert _ts(text) == pytest.approx(value, abs=1e-6)
    assert _ts("not a time") is None and _ts(None) is None


def test_a_name_no_azure_resource_can_have_is_refused_before_any_request(azure):
    client, fake = azure
    sent = len(fake.calls)
    for lookup in (lambda: client.runs.get("\udcff"), lambda: client.models.list(name="\ud800"),
                   lambda: client.deployments.get("\udcff")):
        with pytest.raises(InvalidInput, match="lone surrogate"):
            lookup()
    with pytest.raises(InvalidInput, match="lone surrogate"):  # one inside a list-valued query parameter too
        client.backend.arm.request("GET", "/subscriptions", params={"names": ["ok", "\udcff"]})
    assert len(fake.calls) == sent
