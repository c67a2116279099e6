"""Sweeps on an Azure workspace are Azure ML sweep jobs (the service samples and stops trials), built from
the same %%aml sweep / %aml sweep SCRIPT the local workspace runs; their trials are found through MLflow."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

from aml_magics.core.client import Client
from aml_magics.core.errors import InvalidInput
from aml_magics.sweep.policies import Policy
from aml_magics.sweep.settings import sweep_submission
from aml_magics.sweep.space import parse_cell, parse_param
from aml_magics.core.types import RunSubmission

from .contract import FakeArm
from .test_rest_contract import StaticToken

pytestmark = pytest.mark.azure_contract

CELL = """import json
from aml_magics import Run
C = choice(0.1, 1, "auto")
lr = loguniform(-6,
                -1)
depth = randint(8)
print(json.dumps({"C": C, "lr": lr, "depth": depth}))
"""


def _connect(fake, **kwargs):
    fake.snapshots_here()
    client = Client.connect("00000000-1111-2222-3333-444444444444", "my-rg", "my-ws",
                            credential=StaticToken(fake.token), base_url=fake.base_url, **kwargs)
    client.backend.arm._sleep = lambda s: None
    return client


@pytest.fixture
def azure(spec):
    fake = FakeArm(spec=spec)
    yield _connect(fake), fake
    fake.close()
    assert not fake.violations, "requests broke the contract:\n" + "\n".join(fake.violations)


def _jobs(fake):
    return [c for c in fake.calls if c.operation == "Jobs_CreateOrUpdate"]


def test_a_cell_sweep_is_one_sweep_job_whose_trials_read_their_values(azure, tmp_path):
    client, fake = azure
    space, spans = parse_cell(CELL)
    trial = RunSubmission(kind="cell", experiment="tune", source_dir=tmp_path, entry="c.py", code=CELL,
                          compute="cpu-cluster", tags={"team": "a"}, timeout_s=90)  # --trial-timeout 90
    sub = sweep_submission(trial, space, primary_metric="accuracy", goal="max", sampling="random", max_trials=12,
                           parallel=3, policy=Policy("bandit", slack_factor=0.2, delay_evaluation=2),
                           timeout_s=3600, seed=7, spans=spans)
    run = client.runs.submit(sub)
    (job,) = _jobs(fake)
    props = job.body["properties"]
    assert job.path.endswith("/jobs/" + run.id) and props["jobType"] == "Sweep"
    assert props["searchSpace"] == {"C": ["choice", [[0.1, 1, "auto"]]], "lr": ["loguniform", [-6, -1]],
                                    "depth": ["randint", [8]]}
    assert props["samplingAlgorithm"] == {"samplingAlgorithmType": "Random", "seed": 7}
    assert props["limits"] == {"jobLimitsType": "Sweep", "maxTotalTrials": 12, "maxConcurrentTrials": 3,
                               "timeout": "PT1H", "trialTimeout": "PT1M30S"}
    assert props["objective"] == {"primaryMetric": "accuracy", "goal": "Maximize"}
    assert props["earlyTermination"] == {"policyType": "Bandit", "slackFactor": 0.2, "evaluationInterval": 1,
                                         "delayEvaluation": 2}
    command = props["trial"]["command"]
    assert command == ("python __aml_cell__.py --C ${{search_space.C}} --lr ${{search_space.lr}} "
                       "--depth ${{search_space.depth}}")
    assert props["trial"]["codeId"] and props["computeId"].endswith("/computes/cpu-cluster")
    assert props["trial"]["environmentVariables"]["AML_MAGICS_SWEEP_ID"] == run.id
    assert props["tags"]["sweep.sampling"] == "random" and props["tags"]["team"] == "a"

    # the trial as the service would start it: the snapshot's cell run with the placeholders substituted
    for name in ("__aml_cell__.py", "__aml_sweep__.py"):
        (tmp_path / "job" / name).parent.mkdir(exist_ok=True)
        (tmp_path / "job" / name).write_bytes(fake.blobs[f"/blob/c/snap/{name}"])
    cell = (tmp_path / "job" / "__aml_cell__.py").read_text()
    assert cell.splitlines()[5] == 'depth = __import__(\'__aml_sweep__\').value(\'depth\')  # sweep parameter'
    assert "loguniform" not in cell
    argv = command.replace("${{search_space.C}}", "auto").replace("${{search_space.lr}}", "0.0123") \
        .replace("${{search_space.depth}}", "5").split()[1:]
    out = subprocess.run([sys.executable, *argv], cwd=tmp_path / "job", capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == '{"C": "auto", "lr": 0.0123, "depth": 5}'
    out = subprocess.run([sys.executable, *argv[:1], "--C", "0.1", "--lr", "1e-3", "--depth", "2"],
                         cwd=tmp_path / "job", capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == '{"C": 0.1, "lr": 0.001, "depth": 2}'


def test_script_sweeps_use_the_argument_template_and_each_policy(azure, tmp_path):
    client, fake = azure
    (tmp_path / "train.py").write_text("print('train')\n")
    space = dict([parse_param("alpha=uniform(0.01, 1)"), parse_param("units=choice(16, 32)")])
    for policy, rest in ((Policy("median"), {"policyType": "MedianStopping"}),
                         (Policy("truncation", truncation_percentage=30, evaluation_interval=2),
                          {"policyType": "TruncationSelection", "truncationPercentage": 30}),
                         (Policy("bandit", slack_amount=0.05), {"policyType": "Bandit", "slackAmount": 0.05})):
        trial = RunSubmission(kind="script", experiment="tune", source_dir=tmp_path, entry="train.py",
                              compute="cpu-cluster", args=["--alpha={alpha}", "--hidden", "{units}", "--epochs", "3"])
        client.runs.submit(sweep_submission(trial, space, primary_metric="val_loss", goal="min", policy=policy))
        props = _jobs(fake)[-1].body["properties"]
        assert props["trial"]["command"] == ("python train.py '--alpha=${{search_space.alpha}}' --hidden "
                                             "${{search_space.units}} --epochs 3")
        assert {k: v for k, v in props["earlyTermination"].items() if k in rest} == rest
        assert props["objective"]["goal"] == "Minimize" and props["limits"]["maxTotalTrials"] == 20
    grid = sweep_submission(RunSubmission(kind="script", experiment="g", source_dir=tmp_path, entry="train.py",
                                          compute="cpu-cluster"),
                            {"units": space["units"]}, primary_metric="acc", sampling="grid")
    client.runs.submit(grid)
    props = _jobs(fake)[-1].body["properties"]
    assert props["samplingAlgorithm"] == {"samplingAlgorithmType": "Grid"} and props["limits"]["maxTotalTrials"] == 2
    assert props["trial"]["command"] == "python train.py --units ${{search_space.units}}"


def test_what_azure_sweeps_refuse_is_said_before_anything_is_uploaded(azure, tmp_path):
    client, fake = azure
    (tmp_path / "train.py").write_text("print('train')\n")
    trial = RunSubmission(kind="script", experiment="t", source_dir=tmp_path, entry="train.py", compute="cpu")
    lr = dict([parse_param("lr=loguniform(-6, -1)")])
    cases = [
        (sweep_submission(trial, lr, primary_metric="acc", sampling="bayesian"), "bayesian sampling takes choice"),
        (sweep_submission(trial, dict([parse_param("lr=uniform(0, 1)")]), primary_metric="acc", sampling="bayesian",
                          policy=Policy("median")), "no early-termination policy"),
    ]
    for sub, message in cases:
        with pytest.raises(InvalidInput, match=message):
            client.runs.submit(sub)
    assert not [c for c in fake.calls if c.operation.startswith(("CodeVersions", "Jobs_CreateOrUpdate"))]


def test_the_sweep_magic_on_an_azure_workspace(azure, ip, tmp_path, monkeypatch):
    client, fake = azure
    monkeypatch.chdir(tmp_path)
    ip.magics_manager.registry["AmlMagics"]._client = client
    run = ip.run_cell_magic("aml", "sweep -c cpu-cluster -e magic-sweep --metric acc --trials 4 --parallel 2 "
                                   "--sampling bayesian", "C = choice(1, 10)\nprint(C)\n")
    props = _jobs(fake)[-1].body["properties"]
    assert props["jobType"] == "Sweep" and props["experimentName"] == "magic-sweep"
    assert props["samplingAlgorithm"] == {"samplingAlgorithmType": "Bayesian"}
    assert props["limits"]["maxConcurrentTrials"] == 2 and run.id in _jobs(fake)[-1].path


def test_trials_of_an_azure_sweep_are_its_mlflow_child_runs(spec, mlflow_server):
    """Azure ML records each trial as an MLflow run whose ``mlflow.parentRunId`` is the sweep job, in the
    sweep job's experiment (here whatever the contract fake's Jobs_Get example answers)."""
    from aml_magics.backends.azure.mlflow_rest import MlflowRest

    ml = MlflowRest(mlflow_server)
    parent = "sweep_1"
    fake = FakeArm(spec=spec)
    try:
        client = _connect(fake, mlflow_uri=mlflow_server)
        experiment = client.backend.runs.get(parent, with_metrics=False).experiment
        ids = []
        for n, (C, acc) in enumerate(((0.1, 0.81), (1.0, 0.93), (10.0, 0.90)), 1):
            run_id = ml.create_run(experiment, run_name=f"{parent}_{n}", tags={"mlflow.parentRunId": parent})
            ml.log_batch(run_id, [("acc", acc - 0.1, 0, time.time()), ("acc", acc, 1, time.time())], params={"C": C})
            if n < 3:
                ml.end_run(run_id, "FINISHED" if n == 1 else "KILLED")
            ids.append(run_id)
            time.sleep(0.01)  # distinct start times: trials are listed in start order
        ml.create_run(experiment, run_name="unrelated")
        trials = client.runs.list(parent_run_id=parent, limit=None)
        assert [t.run_id for t in trials.infos] == ids
        assert [t.status for t in trials.infos] == ["Completed", "Canceled", "Running"]
        assert [t.params["C"] for t in trials.infos] == ["0.1", "1.0", "10.0"]
        assert trials.infos[1].latest_metrics["acc"] == pytest.approx(0.93)
        assert all(t.parent_run_id == parent for t in trials.infos)
        running = client.runs.list(parent_run_id=parent, status=["Running"])
        assert [t.run_id for t in running.infos] == ids[2:]
        assert client.runs.list(parent_run_id="no-such-sweep").infos == []
    finally:
        fake.close()
    assert not fake.violations, fake.violations


def test_a_sweep_job_read_back_knows_what_its_trials_are_ranked_by(azure):
    """Microsoft's SweepJob example (objective: minimize "string") read through Jobs_Get."""
    import json
    from pathlib import Path

    client, fake = azure
    example = json.loads((Path(__file__).parent / "azureml-rest-2024-10-01" / "examples" / "Job" / "SweepJob" /
                          "get.json").read_text())["responses"]["200"]["body"]
    info = client.backend.runs._info(example, with_metrics=False)
    assert info.kind == "sweep" and info.status == "NotStarted"
    assert info.spec["primary_metric"] == "string" and info.spec["goal"] == "min"
    automl = json.loads((Path(__file__).parent / "azureml-rest-2024-10-01" / "examples" / "Job" / "AutoMLJob" /
                         "get.json").read_text())["responses"]["200"]["body"]
    automl["properties"]["tags"] = {"automl.primary_metric": "normalized_root_mean_squared_error"}  # what we send
    info = client.backend.runs._info(automl, with_metrics=False)
    assert info.kind == "automl" and info.status == "Queued"
    assert info.spec["primary_metric"] == "normalized_root_mean_squared_error" and info.spec["goal"] == "min"
    # a job submitted by another tool (no tags of ours): the metric the service optimises, and its direction
    automl["properties"]["tags"] = {}
    automl["properties"]["taskDetails"]["primaryMetric"] = "NormalizedMeanAbsoluteError"
    info = client.backend.runs._info(automl, with_metrics=False)
    assert info.spec["primary_metric"] == "normalized_mean_absolute_error" and info.spec["goal"] == "min"
