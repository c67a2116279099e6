"""Azure ML v1 code after ``%aml connect``: the same v1 objects become command and sweep jobs,
environment versions, compute clusters and managed online endpoints through the Azure backend — every request
checked against Microsoft's 2024-10-01 contract; what v2 cannot express is said in one line."""
from __future__ import annotations

import pytest

from aml_magics import v1

from .contract import FakeArm, client_on, loopback_certificate, resolve_localhost

pytestmark = pytest.mark.azure_contract

SUB, RG, WS = "00000000-1111-2222-3333-444444444444", "my-rg", "my-ws"


@pytest.fixture
def azure_v1(spec, monkeypatch, request):
    """(our client, the fake) with the v1 names; ``@pytest.mark.storage`` on a test: the datastore's own storage
    account served by the fake too (over TLS, at ACCOUNT.blob.core.localhost)."""
    monkeypatch.delenv(v1.ENV_FLAG, raising=False)
    tls = None
    if request.node.get_closest_marker("storage"):
        tls = loopback_certificate(request.getfixturevalue("tmp_path_factory").mktemp("tls"))
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", tls[0])
        resolve_localhost(monkeypatch)
    fake = FakeArm(spec=spec, tls=tls).snapshots_here().keeping_state(page_size=50)
    if tls:
        fake.datastores_here("AccountKey")
    with client_on(fake) as client:
        v1.install(client=client, quiet=True)
        try:
            yield client, fake
        finally:
            v1.uninstall()
            v1.set_client(None)


def _jobs(fake):
    return [c.body["properties"] for c in fake.calls if c.operation == "Jobs_CreateOrUpdate"]


def test_v1_runs_sweeps_environments_and_computes_become_azure_requests(azure_v1, tmp_path, capsys):
    client, fake = azure_v1
    from azureml.core import Environment, Experiment, ScriptRunConfig, Workspace
    from azureml.core.compute import AmlCompute, ComputeTarget
    from azureml.train.hyperdrive import (BanditPolicy, HyperDriveConfig, PrimaryMetricGoal,
                                          RandomParameterSampling, choice, uniform)

    ws = Workspace(SUB, RG, WS)
    assert ws.client is client and (ws.subscription_id, ws.resource_group, ws.name) == (SUB, RG, WS)
    config = AmlCompute.provisioning_configuration(vm_size="STANDARD_NC6", max_nodes=8)
    ComputeTarget.create(ws, "gpu-cluster", config)
    put = [c for c in fake.calls if c.operation == "Compute_CreateOrUpdate"][-1].body["properties"]
    assert put["computeType"] == "AmlCompute" and put["properties"]["scaleSettings"]["maxNodeCount"] == 8
    assert "made with Standard_DS3_v2 nodes, not STANDARD_NC6" in capsys.readouterr().out  # said, not silent

    (tmp_path / "train.py").write_text("from azureml.core import Run\nRun.get_context().log('acc', 0.9)\n")
    exp = Experiment(ws, "v1-azure")
    run = exp.submit(ScriptRunConfig(source_directory=str(tmp_path), script="train.py", arguments=["--lr", 0.1],
                                     compute_target="cpu-cluster"))
    job = _jobs(fake)[-1]
    assert job["jobType"] == "Command" and job["experimentName"] == "v1-azure"
    assert job["command"] == "python __aml_v1__.py train.py --lr 0.1"  # the v1 shim runs the script (test below)
    assert job["computeId"].endswith("/computes/cpu-cluster")
    assert job["environmentVariables"]["AML_MAGICS_V1"] == "1" and run.id == job["environmentVariables"][
        "AML_MAGICS_RUN_ID"]

    env = Environment("custom-env")  # a package this kernel lacks: an environment version on the workspace
    env.python.conda_dependencies.add_pip_package("aml-magics-no-such-package==1.0")
    exp.submit(ScriptRunConfig(source_directory=str(tmp_path), script="train.py", compute_target="cpu-cluster",
                               environment=env))
    version = [c for c in fake.calls if c.operation == "EnvironmentVersions_CreateOrUpdate"][-1]
    assert "aml-magics-no-such-package==1.0" in version.body["properties"]["condaFile"]
    assert _jobs(fake)[-1]["environmentId"] == version.path  # the job runs in that version

    sampling = RandomParameterSampling({"--lr": uniform(0.01, 0.1), "--batch-size": choice(16, 32)})
    hd = HyperDriveConfig(run_config=ScriptRunConfig(source_directory=str(tmp_path), script="train.py",
                                                     compute_target="cpu-cluster"),
                          hyperparameter_sampling=sampling, policy=BanditPolicy(slack_factor=0.1),
                          primary_metric_name="acc", primary_metric_goal=PrimaryMetricGoal.MAXIMIZE,
                          max_total_runs=6, max_concurrent_runs=2)
    exp.submit(hd)
    sweep = _jobs(fake)[-1]
    assert sweep["jobType"] == "Sweep" and sweep["objective"] == {"primaryMetric": "acc", "goal": "Maximize"}
    assert sweep["searchSpace"] == {"lr": ["uniform", [0.01, 0.1]], "batch_size": ["choice", [[16, 32]]]}
    assert sweep["trial"]["command"] == ("python __aml_v1__.py train.py --lr ${{search_space.lr}} --batch-size "
                                         "${{search_space.batch_size}}")  # each trial through the v1 shim
    assert sweep["limits"]["maxTotalTrials"] == 6 and sweep["limits"]["maxConcurrentTrials"] == 2
    assert sweep["earlyTermination"]["policyType"] == "Bandit"


def test_a_v1_aci_deploy_becomes_a_managed_online_endpoint_with_a_key(azure_v1, tmp_path, capsys):
    client, fake = azure_v1
    from azureml.core import Model, Workspace
    from azureml.core.model import InferenceConfig
    from azureml.core.webservice import AciWebservice

    ws = Workspace.from_config()
    assert ws.client is client
    client.models.register("digits", "outputs/model.pkl", run_id="job-1")
    model = Model(ws, "digits", version=1)
    (tmp_path / "score.py").write_text("def init():\n    pass\n\ndef run(raw):\n    return raw\n")
    service = Model.deploy(ws, "digits-svc", [model], InferenceConfig(entry_script="score.py",
                                                                       source_directory=str(tmp_path)),
                           AciWebservice.deploy_configuration(cpu_cores=1, memory_gb=1))
    assert "always need a key: this service keeps key auth on" in capsys.readouterr().out  # said once
    endpoint = [c for c in fake.calls if c.operation == "OnlineEndpoints_CreateOrUpdate"][0].body
    assert endpoint["properties"]["authMode"] == "Key"
    deployment = [c for c in fake.calls if c.operation == "OnlineDeployments_CreateOrUpdate"][-1].body["properties"]
    assert deployment["codeConfiguration"]["scoringScript"] == "score.py"
    assert deployment["model"].endswith("/models/digits/versions/1")
    assert service.name == "digits-svc" and fake.blobs[next(k for k in fake.blobs if k.endswith("/score.py"))] == \
        (tmp_path / "score.py").read_bytes()


def test_a_v1_script_runs_in_the_job_as_azure_ml_starts_it(azure_v1, tmp_path):
    """The job's command runs the script through the shipped v1 shim: `from azureml.core import Run` is our Run;
    another v1 module says in one line that a job has only Run."""
    import os
    import subprocess
    import sys

    client, fake = azure_v1
    from azureml.core import Experiment, ScriptRunConfig, Workspace

    src = tmp_path / "src"
    src.mkdir()
    (src / "helper.py").write_text("VALUE = 41\n")
    (src / "train.py").write_text(
        "import sys\nfrom azureml.core import Run\nimport helper\nrun = Run.get_context()\n"
        "run.log('acc', 0.5)\nprint(Run.__module__, helper.VALUE + 1, sys.argv[1:])\n"
        "try:\n    import azureml.core.compute\nexcept ModuleNotFoundError as e:\n    print(e)\n")
    Experiment(Workspace.from_config(), "v1-job").submit(ScriptRunConfig(
        source_directory=str(src), script="train.py", arguments=["--lr", "0.1 0.2"], compute_target="cpu-cluster"))
    job = [c for c in fake.calls if c.operation == "Jobs_CreateOrUpdate"][-1].body["properties"]
    assert job["command"] == "python __aml_v1__.py train.py --lr '0.1 0.2'"
    folder = tmp_path / "job"
    for path, data in fake.blobs.items():
        if path.startswith("/blob/c/snap/"):
            (folder / path[len("/blob/c/snap/"):]).parent.mkdir(parents=True, exist_ok=True)
            (folder / path[len("/blob/c/snap/"):]).write_bytes(data)
    import requests

    site = os.path.dirname(os.path.dirname(requests.__file__))  # what a curated environment has; no aml_magics
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": site, **job["environmentVariables"]}
    import shlex

    out = subprocess.run([sys.executable, "-S", *shlex.split(job["command"])[1:]], cwd=folder, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert "aml_magics.core.run 42 ['--lr', '0.1 0.2']" in lines  # (no MLflow run here: an offline run logs)
    assert "azureml.core.compute is not available inside an Azure ML job" in lines[-1]


def test_v1_datastore_paths_and_datasets_become_job_inputs(azure_v1, tmp_path):
    client, fake = azure_v1
    from azureml.core import Dataset, Experiment, ScriptRunConfig, Workspace

    ws = Workspace.from_config()
    store = ws.get_default_datastore()
    (tmp_path / "train.py").write_text("print('reads its inputs')\n")
    images = Dataset.File.from_files(path=(store, "mnist/"))
    src = ScriptRunConfig(source_directory=str(tmp_path), script="train.py", compute_target="cpu-cluster",
                          arguments=["--data-folder", images.as_named_input("mnist-images").as_mount(),
                                     "--labels", store.path("mnist/labels.csv").as_download()])
    Experiment(ws, "v1-inputs").submit(src)
    job = _jobs(fake)[-1]
    assert job["command"] == ("python __aml_v1__.py train.py --data-folder ${{inputs.mnist_images}} "
                              "--labels ${{inputs.input_2}}")
    assert job["inputs"]["mnist_images"]["uri"] == f"azureml://datastores/{store.name}/paths/mnist/"
    assert job["inputs"]["input_2"]["uri"] == f"azureml://datastores/{store.name}/paths/mnist/labels.csv"


def test_run_input_datasets_in_a_job_are_the_job_inputs(azure_v1, tmp_path):
    """`run.input_datasets["name"]` in a job's script: a TabularDataset passed as_named_input is the job input's
    table (read with the dataset's separator), a FileDataset its mounted path — from Azure ML's
    AZURE_ML_INPUT_<name> variables, through the shipped v1 shim."""
    import json
    import os
    import shlex
    import subprocess
    import sys

    import requests

    client, fake = azure_v1
    from azureml.core import Dataset, Experiment, ScriptRunConfig, Workspace

    ws = Workspace.from_config()
    store = ws.get_default_datastore()
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text(
        "from azureml.core import Run\nrun = Run.get_context()\nds = run.input_datasets\n"
        "frame = ds['scores'].to_pandas_dataframe()\n"
        "print(sorted(ds), list(frame.columns), int(frame['y'].sum()), sorted(__import__('os').listdir(ds['imgs'])))\n")
    table = Dataset.Tabular.from_delimited_files(path=(store, "tables/scores.tsv"), separator="\t")
    images = Dataset.File.from_files(path=(store, "images/"))
    Experiment(ws, "v1-named").submit(ScriptRunConfig(
        source_directory=str(src), script="train.py", compute_target="cpu-cluster",
        arguments=["--scores", table.as_named_input("scores"), "--images", images.as_named_input("imgs").as_mount()]))
    job = _jobs(fake)[-1]
    named = json.loads(job["environmentVariables"]["AML_MAGICS_V1_INPUTS"])
    assert named["scores"]["kind"] == "TabularDataset" and named["scores"]["separator"] == "\t"
    assert job["inputs"][named["scores"]["input"]]["uri"].endswith("/paths/tables/scores.tsv")
    assert job["inputs"][named["imgs"]["input"]]["uri"].endswith("/paths/images/")
    # the job as Azure ML starts it: inputs mounted, their paths in AZURE_ML_INPUT_<name>
    folder = tmp_path / "job"
    for path, data in fake.blobs.items():
        if path.startswith("/blob/c/snap/"):
            (folder / path[len("/blob/c/snap/"):]).parent.mkdir(parents=True, exist_ok=True)
            (folder / path[len("/blob/c/snap/"):]).write_bytes(data)
    mounted = tmp_path / "mnt"
    (mounted / "images").mkdir(parents=True)
    (mounted / "images" / "a.png").write_bytes(b"\x89PNG")
    (mounted / "scores.tsv").write_text("x\ty\n1\t2\n3\t4\n")
    site = os.path.dirname(os.path.dirname(requests.__file__))
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": site, **job["environmentVariables"],
           f"AZURE_ML_INPUT_{named['scores']['input']}": str(mounted / "scores.tsv"),
           f"AZURE_ML_INPUT_{named['imgs']['input']}": str(mounted / "images")}
    out = subprocess.run([sys.executable, "-S", *shlex.split(job["command"])[1:]], cwd=folder, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "['imgs', 'scores'] ['x', 'y'] 6 ['a.png']"


@pytest.mark.storage
def test_v1_datasets_of_local_files_are_uploaded_once_and_become_job_inputs(azure_v1, tmp_path):
    """A dataset of files on this machine cannot be read by a job in the cloud: its files go to the default datastore
    (subfolders of a pattern's matches kept, blob requests checked against Microsoft's contract) and the job reads
    that folder — one file as much as several (before, the job got this machine's path)."""
    client, fake = azure_v1
    from azureml.core import Dataset, Experiment, ScriptRunConfig, Workspace

    ws = Workspace.from_config()
    store = ws.get_default_datastore()
    for year in ("2018", "2019"):
        (tmp_path / "data" / year).mkdir(parents=True)
        (tmp_path / "data" / year / "t.csv").write_text(f"year\n{year}\n")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "train.py").write_text("print('reads its inputs')\n")
    several = Dataset.File.from_files(path=str(tmp_path / "data" / "*" / "*.csv"))
    one = Dataset.Tabular.from_delimited_files(path=str(tmp_path / "data" / "2019" / "t.csv"))
    Experiment(ws, "v1-local-data").submit(ScriptRunConfig(
        source_directory=str(tmp_path / "src"), script="train.py", compute_target="cpu-cluster",
        arguments=["--all", several.as_mount(), "--one", one.as_named_input("latest")]))
    job = _jobs(fake)[-1]
    assert job["command"] == "python __aml_v1__.py train.py --all ${{inputs.input_1}} --one ${{inputs.latest}}"
    prefix = f"azureml://datastores/{store.name}/paths/azureml/datasets/"
    folders = {k: v["uri"] for k, v in job["inputs"].items()}
    assert all(u.startswith(prefix) for u in folders.values()) and folders["input_1"] != folders["latest"]
    stored = sorted(p.split("/azureml/datasets/", 1)[1].split("/", 1)[1] for p in fake.blobs
                    if "/azureml/datasets/" in p)
    assert stored == ["2018/t.csv", "2019/t.csv", "t.csv"]
    blob = next(p for p in fake.blobs if p.endswith(folders["input_1"].rsplit("/", 1)[1] + "/2018/t.csv"))
    assert fake.blobs[blob] == b"year\n2018\n"
    fake.blobs[blob] = b"marked"  # a second submission of the same files does not upload them again
    Experiment(ws, "v1-local-data").submit(ScriptRunConfig(
        source_directory=str(tmp_path / "src"), script="train.py", compute_target="cpu-cluster",
        arguments=["--all", several.as_mount()]))
    assert _jobs(fake)[-1]["inputs"]["input_1"]["uri"] == folders["input_1"]
    assert fake.blobs[blob] == b"marked"
    (tmp_path / "data[1].csv").write_text("a\n7\n")  # a blob whose name looks like a pattern is itself
    client.datastores.upload(tmp_path / "data[1].csv", "odd/")
    Experiment(ws, "v1-local-data").submit(ScriptRunConfig(
        source_directory=str(tmp_path / "src"), script="train.py", compute_target="cpu-cluster",
        arguments=["--odd", Dataset.File.from_files(path=(store, "odd/data[1].csv")),
                   "--csvs", Dataset.File.from_files(path=(store, "odd/*.csv"))]))
    inputs = _jobs(fake)[-1]["inputs"]
    assert inputs["input_1"]["uri"].endswith("/paths/odd/data[1].csv")
    assert inputs["input_2"]["uri"].endswith("/paths/odd/")
