"""Differential test against Microsoft's own SDK: azure-ai-ml (in its own virtualenv, .cache/azure-sdk-venv, made by
scripts/test) and our backend do the same operations, each against its own contract-checking fake that keeps state
(HTTPS on loopback: azure-core sends bearer tokens over TLS only; a dummy credential; the SDK pointed at the fake as
a custom cloud through ``cloud_metadata``; the datastore's storage account at ACCOUNT.blob.core.localhost on the same
fake). Per operation, the requests the service acts on and their fields must match; the harmless differences are
listed once, below, each with its reason, and where we differ on purpose the test says why.

Covered: model and environment registration with paged lists, code upload and command jobs (first and second
submission), cancel, sweep, AutoML, online endpoint + deployment with and without a scoring script, listKeys,
getLogs, datastore access with an account key (Shared Key signatures verified), a SAS and identity (the caller's
storage token)."""
from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest
import yaml

from aml_magics.core.client import Client

from .contract import RESOLVE_LOCALHOST, FakeArm, loopback_certificate, resolve_localhost

pytestmark = [pytest.mark.azure_contract, pytest.mark.azure_sdk_parity, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SUB, RG, WS = "00000000-1111-2222-3333-444444444444", "my-rg", "my-ws"

#: what differs between the SDK's requests and ours without changing what the service does — and why
HARMLESS = {
    "api-version": "the SDK pins an api-version per operation group (2022-02-01-preview … 2024-10-01-preview); "
                   "we send 2024-10-01 everywhere, the contract our fake checks bodies against",
    "ModelVersions_List before a model PUT": "the SDK reads the newest version to refuse mixing prompt-flow "
                                             "evaluators with models; we never register evaluators",
    "Jobs_Get before registering a job's output": "we check the job exists, so a mistyped run id fails before "
                                                  "anything is registered; the SDK registers any path",
    "isAnonymous/isArchived false": "the SDK sends the schema's defaults explicitly; we leave them out",
    "conda file formatting": "the SDK loads the YAML and dumps it again (keys sorted, comments lost); we send the "
                             "user's file as written — the same environment",
    "EnvironmentVersions_List before an environment PUT": "we look for a version with the same content to reuse "
                                                          "it (as for code); the SDK PUTs onto the latest version "
                                                          "(accepted when identical, else 409) then onto nextVersion",
    "environment tags and description": "we tag a version with its content hash (to reuse an unchanged one) and "
                                        "say what was registered; the service stores them, builds nothing from them",
    "Workspaces_Get before an endpoint PUT": "both read the workspace's location; the SDK does it just before",
    "OnlineEndpoints_Get before the first PUT": "we read the endpoint first (404 here) so an existing one keeps "
                                                "its identity, tags and traffic; the SDK writes what it is given",
    "empty properties/traffic/mirrorTraffic/tags on a new endpoint": "the SDK sends empty maps; we leave them out",
    "getLogs containerType": "we name the default (InferenceServer); the SDK leaves it out",
    "code version name": "the SDK names anonymous code with a random UUID, we with the start of its content hash; "
                         "both find it again by hash (CodeVersions_List ?hash=, which the service answers across "
                         "names), so neither uploads the same files twice",
    "CodeVersions_Get after a hash match": "the SDK reads the version the lookup found; we take its id from the "
                                           "lookup's answer",
    "code folder inside the upload": "the SDK puts the files in a folder named after the local one and points "
                                     "codeUri at it; we put them at the top of the pending upload's location and "
                                     "point codeUri there — the job sees the same files either way",
    "upload confirmation metadata": "the SDK marks uploaded blobs (upload_status) so a later upload to the same "
                                    "datastore path can skip them; a pending upload's location is new each time, "
                                    "so we need no marker",
    "job command and environment variables": "our job runs the user's command with our runtime beside it "
                                             "(AML_MAGICS_* variables: run id, experiment) to report metrics the "
                                             "same way on both backends",
    "Jobs_Get around a cancel": "we read the job after asking to cancel (its status is what the user waits for); "
                                "the SDK follows the operation monitor (LRO-status)",
    "hash_version type": "the SDK sends the number 202208 where the contract says a string; we send \"202208\"",
    "enum casing": "goal minimize/Minimize: the service reads both",
    "the datastore read before an upload": "the SDK reads the datastore named workspaceblobstore (its name for "
                                           "uploads); we the workspace's default one (isDefault), where datastore: "
                                           "paths point too",
    "listSecrets body": "the SDK asks for an expirable secret (a body the 2024-10-01 contract does not define); we "
                        "send none and ask again every ten minutes",
    "AutoML limitSettings sweepTrials/sweepConcurrentTrials 0": "the SDK posts AutoML jobs to a preview api-version "
                                                                "with two more fields, 0 meaning not set",
    "AutoML featurization Auto, tags, logVerbosity": "we name the default featurization and tag the run with its "
                                                     "task and metric; the SDK names the default log verbosity",
}

#: what the SDK sends outside the 2024-10-01 contract that the service accepts (the SDK's fake records it, and the
#: test checks nothing else was tolerated); we send what the contract says
SDK_DEVIATIONS = (
    "CodeVersions_CreateOrUpdate: body.properties.properties.hash_version: expected a string, got int",
    # AutoML jobs go to a preview api-version whose limit settings have two more fields (0 = not set)
    "Jobs_CreateOrUpdate: body.properties.taskDetails.limitSettings: unknown property 'sweepConcurrentTrials'",
    "Jobs_CreateOrUpdate: body.properties.taskDetails.limitSettings: unknown property 'sweepTrials'",
)

PREAMBLE = RESOLVE_LOCALHOST + textwrap.dedent('''
    import json, sys
    from azure.core.credentials import AccessToken
    from azure.ai.ml import MLClient
    from azure.ai.ml.entities import Environment, ManagedOnlineEndpoint, Model

    class Token:  # the ARM token, or for storage (identity-based datastores) the storage token
        def get_token(self, *scopes, **kwargs):
            return AccessToken(sys.argv[3] if any("storage.azure.com" in s for s in scopes) else sys.argv[2], 2**31)

    base = sys.argv[1].rstrip("/") + "/"
    ml = MLClient(Token(), "{sub}", "{rg}", "{ws}", cloud="AmlMagicsFake",
                  cloud_metadata={{"azure_portal": base, "resource_manager": base, "active_directory": base,
                                  "aml_resource_id": base, "storage_endpoint": "core.localhost:" + base.rstrip("/").rsplit(":", 1)[1],
                                  "registry_discovery_endpoint": base}})
''').format(sub=SUB, rg=RG, ws=WS)


STORAGE_TOKEN = "storage-token-abc"


class Tokens:
    """The caller's Entra ID tokens: one for ARM, another for storage (identity-based datastores)."""

    def __init__(self, arm: str, storage: str):
        self.arm, self.storage = arm, storage

    def get_token(self, *scopes):
        token = self.storage if any("storage.azure.com" in s for s in scopes) else self.arm
        return type("AccessToken", (), {"token": token, "expires_on": 2**31})()


@pytest.fixture(scope="module")
def sdk_python():
    python = os.environ.get("AML_MAGICS_AZURE_SDK_PYTHON") or str(ROOT / ".cache" / "azure-sdk-venv" / "bin" / "python")
    if not Path(python).exists():
        pytest.fail("no azure-ai-ml to compare with: scripts/test makes .cache/azure-sdk-venv "
                    "(or set AML_MAGICS_AZURE_SDK_PYTHON)")
    return python


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    return loopback_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def pair(spec, tls, sdk_python, tmp_path, monkeypatch):
    """(run the SDK with a script, our client, the SDK's fake, our fake)."""
    fakes = [FakeArm(spec=spec, tls=tls, any_api_version=True, tolerate=tolerate).snapshots_here()
             .keeping_state(page_size=2) for tolerate in (SDK_DEVIATIONS, ())]
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", tls[0])
    resolve_localhost(monkeypatch)
    ours = Client.connect(SUB, RG, WS, credential=Tokens(fakes[1].token, STORAGE_TOKEN), base_url=fakes[1].base_url)
    ours.backend.arm._sleep = lambda s: None

    def sdk(body: str) -> str:
        script = tmp_path / "sdk_ops.py"
        script.write_text(PREAMBLE + textwrap.dedent(body))
        env = {"PATH": os.environ.get("PATH", ""), "REQUESTS_CA_BUNDLE": tls[0], "HOME": str(tmp_path)}
        proc = subprocess.run([sdk_python, str(script), fakes[0].base_url, fakes[0].token, STORAGE_TOKEN],
                              capture_output=True,
                              text=True, timeout=240, env=env, cwd=tmp_path)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
        return proc.stdout

    yield sdk, ours, fakes[0], fakes[1]
    for fake in fakes:
        fake.close()
    for who, fake in zip(("azure-ai-ml", "ours"), fakes):
        assert not fake.violations, f"{who} broke the contract:\n" + "\n".join(fake.violations)
    assert not fakes[1].tolerated


CURATED = "azureml://registries/azureml/environments/sklearn-1.5/labels/latest"


def source_folder(tmp_path, files: dict[str, str]):
    """``tmp_path/src`` holding ``files`` (name → text): what both clients upload."""
    src = tmp_path / "src"
    src.mkdir()
    for name, text in files.items():
        (src / name).write_text(text)
    return src


def sequence(fake, drop: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """(operation, the path after the workspace) of every request, without the listed harmless ones."""
    marker = f"/workspaces/{WS}"
    return [(c.operation, c.path.split(marker, 1)[-1]) for c in fake.calls if c.operation not in drop]


def test_model_versions_match_the_sdk(pair):
    sdk, ours, theirs_fake, our_fake = pair
    sdk('''
        for i in range(3):
            ml.models.create_or_update(Model(name="digits", type="custom_model",
                                             path=f"azureml://jobs/job-{i}/outputs/artifacts/paths/outputs/model.pkl"))
    ''')
    for i in range(3):
        ours.models.register("digits", "outputs/model.pkl", run_id=f"job-{i}")
    theirs = sequence(theirs_fake, drop=("ModelVersions_List",))  # HARMLESS: the evaluator check
    mine = sequence(our_fake, drop=("Jobs_Get",))  # HARMLESS: we check the job exists
    expected = [("ModelContainers_Get", "/models/digits"), ("ModelVersions_CreateOrUpdate", "/models/digits/versions/1"),
                ("ModelContainers_Get", "/models/digits"), ("ModelVersions_CreateOrUpdate", "/models/digits/versions/2"),
                ("ModelContainers_Get", "/models/digits"), ("ModelVersions_CreateOrUpdate", "/models/digits/versions/3")]
    assert theirs == expected and mine == expected
    for a, b in zip([c for c in theirs_fake.calls if c.operation == "ModelVersions_CreateOrUpdate"],
                    [c for c in our_fake.calls if c.operation == "ModelVersions_CreateOrUpdate"]):
        for field in ("modelUri", "modelType"):
            assert a.body["properties"][field] == b.body["properties"][field], field
    assert {c.query["api-version"] for c in our_fake.calls} == {"2024-10-01"}  # HARMLESS: api-version


def test_an_environment_from_a_conda_file_matches_the_sdk(pair, tmp_path):
    """Three versions of an environment (lists in pages of two): 1, 2, 3 on both sides; the conda file as written."""
    sdk, ours, theirs_fake, our_fake = pair
    files = []
    for i, pin in enumerate(("2.3", "2.4", "2.5")):
        conda = tmp_path / f"environment{i}.yml"
        conda.write_text(f"name: torch\nchannels:\n  - pytorch\n  - conda-forge\ndependencies:\n  - python=3.10\n"
                         f"  - pytorch={pin}\n  - pip\n  - pip:\n      - requests>=2.31\n")
        files.append(conda)
    from aml_magics.backends.azure.environments import ENV_IMAGE

    sdk(f'''
        for conda in {[str(f) for f in files]!r}:
            ml.environments.create_or_update(Environment(name="torch-env", image={ENV_IMAGE!r}, conda_file=conda))
    ''')
    for conda in files:
        ours.environments.register("torch-env", conda)
    get = ("EnvironmentContainers_Get", "/environments/torch-env")
    expected = [x for v in (1, 2, 3) for x in (get, ("EnvironmentVersions_CreateOrUpdate",
                                                     f"/environments/torch-env/versions/{v}"))]
    # HARMLESS: the SDK first PUTs onto the latest version (the service takes the same definition there, refuses
    # another: 409), then onto nextVersion; we look for an identical version in the list first
    refused = [c for c in theirs_fake.calls if c.operation == "EnvironmentVersions_CreateOrUpdate" and c.status == 409]
    assert [c.path.rsplit("/", 1)[1] for c in refused] == ["1", "2"]
    accepted = [(c.operation, c.path.split(f"/workspaces/{WS}", 1)[1]) for c in theirs_fake.calls
                if not any(c is r for r in refused)]
    assert accepted == expected
    # ours lists the versions first, every page (to reuse an unchanged one): none matches here
    assert sequence(our_fake, drop=("EnvironmentVersions_List",)) == expected
    assert len([c for c in our_fake.calls if c.operation == "EnvironmentVersions_List"]) == 3  # one page each
    a = [c for c in theirs_fake.calls if c.operation == "EnvironmentVersions_CreateOrUpdate" and c.status != 409]
    b = [c for c in our_fake.calls if c.operation == "EnvironmentVersions_CreateOrUpdate"]
    assert len(a) == len(b) == 3
    for x, y, conda in zip(a, b, files):
        assert x.body["properties"]["image"] == y.body["properties"]["image"]
        assert yaml.safe_load(x.body["properties"]["condaFile"]) == yaml.safe_load(y.body["properties"]["condaFile"])
        assert y.body["properties"]["condaFile"] == conda.read_text()  # ours: as written (HARMLESS: formatting)
    # the latest unchanged: reused (found on the second page of three versions); the SDK's PUT of the same
    # definition onto the latest version is accepted and changes nothing either
    assert ours.environments.register("torch-env", files[2]).version == 3
    assert len([c for c in our_fake.calls if c.operation == "EnvironmentVersions_CreateOrUpdate"]) == 3
    assert "$skip" in [c for c in our_fake.calls if c.operation == "EnvironmentVersions_List"][-1].query


def test_endpoint_keys_and_logs_match_the_sdk(pair, tmp_path):
    sdk, ours, theirs_fake, our_fake = pair
    out = sdk('''
        ml.online_endpoints.begin_create_or_update(ManagedOnlineEndpoint(name="digits-ep", auth_mode="key")).result()
        print(json.dumps({"key": ml.online_endpoints.get_keys("digits-ep").primary_key,
                          "logs": ml.online_deployments.get_logs(name="blue", endpoint_name="digits-ep", lines=50)}))
    ''')
    theirs_said = json.loads(out.strip().splitlines()[-1])
    ours.models.register("digits", "outputs/model.pkl", run_id="job-1")
    (tmp_path / "score.py").write_text("def init():\n    pass\n\ndef run(raw):\n    return raw\n")
    ours.deployments.create("digits-ep", "digits:1", score=tmp_path / "score.py")
    key, _ = ours.deployments.get_keys("digits-ep")
    logs = ours.deployments.get_logs("digits-ep", tail=50)
    assert key == theirs_said["key"] and logs == theirs_said["logs"]  # the same answers read the same way
    theirs_create = [c for c in theirs_fake.calls if c.operation == "OnlineEndpoints_CreateOrUpdate"][0].body
    ours_create = [c for c in our_fake.calls if c.operation == "OnlineEndpoints_CreateOrUpdate"][0].body
    assert theirs_create["properties"]["authMode"] == ours_create["properties"]["authMode"] == "Key"
    assert theirs_create["identity"] == ours_create["identity"] == {"type": "SystemAssigned"}
    for op in ("OnlineEndpoints_ListKeys", "OnlineDeployments_GetLogs"):
        a = [c for c in theirs_fake.calls if c.operation == op][-1]
        b = [c for c in our_fake.calls if c.operation == op][-1]
        assert a.path == b.path, op
        if op == "OnlineDeployments_GetLogs":
            assert a.body["tail"] == b.body["tail"] == 50
            assert b.body.get("containerType", "InferenceServer") == "InferenceServer"  # HARMLESS: the default
    first = [c.operation for c in our_fake.calls if c.operation.startswith("OnlineEndpoints")][:2]
    assert first == ["OnlineEndpoints_Get", "OnlineEndpoints_CreateOrUpdate"]  # HARMLESS: read before writing


def test_code_upload_command_jobs_and_cancel_match_the_sdk(pair, tmp_path):
    """A command job with a code folder, submitted twice (the second finds the code by hash and uploads nothing),
    then cancelled. The content hash is the SDK's own (hashVersion 202208)."""
    from aml_magics.backends.azure import ops
    from aml_magics.core.types import RunSubmission

    sdk, ours, theirs_fake, our_fake = pair
    # lower-cased order decides the hash: "data.csv" < "train.py"
    src = source_folder(tmp_path, {"train.py": "print('training')\n", "Data.csv": "a,b\n1,2\n"})
    job = (f"command(code={str(src)!r}, command='python train.py', compute='cpu-cluster', experiment_name='exp', "
           f"environment={CURATED!r}, timeout=5400)")
    sdk(f"from azure.ai.ml import command\nml.jobs.create_or_update({job})\n")
    theirs_first_blobs = dict(theirs_fake.blobs)
    sdk(f"from azure.ai.ml import command\nml.jobs.begin_cancel(ml.jobs.create_or_update({job}).name).result()\n")
    for _ in range(2):
        run = ours.runs.submit(RunSubmission(kind="script", experiment="exp", source_dir=src, entry="train.py",
                                             compute="cpu-cluster", timeout_s=5400))  # --timeout 90m
        if _ == 0:
            our_first_blobs = dict(our_fake.blobs)
    ours.runs.cancel(run.id)

    code_ops = ("CodeVersions_List", "CodeVersions_CreateOrGetStartPendingUpload", "CodeVersions_CreateOrUpdate")
    theirs = [c.operation for c in theirs_fake.calls if c.operation not in ("CodeVersions_Get", "LRO-status")]
    mine = [c.operation for c in our_fake.calls if c.operation not in ("Jobs_Get", "Workspaces_Get")]
    expected = [*code_ops, "Jobs_CreateOrUpdate", "CodeVersions_List", "Jobs_CreateOrUpdate", "Jobs_Cancel"]
    assert theirs == expected and mine == expected
    # the second submission uploaded nothing and both jobs run the first upload's code
    assert theirs_fake.blobs == theirs_first_blobs and our_fake.blobs == our_first_blobs
    for fake in (theirs_fake, our_fake):
        put = next(c for c in fake.calls if c.operation == "CodeVersions_CreateOrUpdate")
        jobs = [c.body["properties"] for c in fake.calls if c.operation == "Jobs_CreateOrUpdate"]
        assert [j["codeId"] for j in jobs] == [put.path] * 2
        lookups = [c.query for c in fake.calls if c.operation == "CodeVersions_List"]
        assert [q["hashVersion"] for q in lookups] == ["202208"] * 2
        assert {q["hash"] for q in lookups} == {put.body["properties"]["properties"]["hash_sha256"]}
        for j in jobs:
            assert j["jobType"] == "Command" and j["experimentName"] == "exp"
            assert j["computeId"].endswith("/computes/cpu-cluster")
            assert j["environmentId"] == CURATED
            # the time limit, written as the SDK writes it
            assert j["limits"] == {"jobLimitsType": "Command", "timeout": "PT1H30M"}
    # the same hash for the same files: the SDK's hash of its upload is ours of the folder …
    theirs_hash = next(c for c in theirs_fake.calls if c.operation == "CodeVersions_CreateOrUpdate") \
        .body["properties"]["properties"]["hash_sha256"]
    assert theirs_hash == ops.content_hash([(src / "train.py", "train.py"), (src / "Data.csv", "Data.csv")])
    # … and the SDK's own function, on the files we uploaded (the user's and our runtime), gives the hash we sent
    uploaded = tmp_path / "uploaded"
    for path, data in our_fake.blobs.items():
        (uploaded / path[len("/blob/c/snap/"):]).parent.mkdir(parents=True, exist_ok=True)
        (uploaded / path[len("/blob/c/snap/"):]).write_bytes(data)
    out = sdk(f"from azure.ai.ml._utils._asset_utils import get_content_hash\nprint(get_content_hash({str(uploaded)!r}))\n")
    ours_put = next(c for c in our_fake.calls if c.operation == "CodeVersions_CreateOrUpdate").body["properties"]
    assert ours_put["properties"] == {"hash_sha256": out.strip().splitlines()[-1], "hash_version": "202208"}
    assert (uploaded / "train.py").read_text() == "print('training')\n"
    # the cancel names the job the second submission made, on both sides
    for fake in (theirs_fake, our_fake):
        last_job = [c.path for c in fake.calls if c.operation == "Jobs_CreateOrUpdate"][-1]
        assert next(c.path for c in fake.calls if c.operation == "Jobs_Cancel") == last_job + "/cancel"
    assert theirs_fake.tolerated == [SDK_DEVIATIONS[0]] * 1  # the first submission's PUT only


def test_a_deployment_with_a_scoring_script_matches_the_sdk(pair, tmp_path):
    """Endpoint, code upload of the scoring script, deployment, then all traffic to it: the same requests, the same
    fields (one code version for the same score.py: the same hash on both sides)."""
    from aml_magics.backends.azure import ops

    sdk, ours, theirs_fake, our_fake = pair
    src = source_folder(tmp_path, {"score.py": "def init():\n    pass\n\ndef run(raw):\n    return raw\n"})
    env = CURATED
    sdk(f'''
        from azure.ai.ml.entities import CodeConfiguration, ManagedOnlineDeployment
        ml.models.create_or_update(Model(name="digits", type="custom_model",
                                         path="azureml://jobs/job-1/outputs/artifacts/paths/outputs/model.pkl"))
        ml.online_endpoints.begin_create_or_update(ManagedOnlineEndpoint(name="digits-ep", auth_mode="key")).result()
        ml.online_deployments.begin_create_or_update(ManagedOnlineDeployment(
            name="blue", endpoint_name="digits-ep", model="azureml:digits:1", environment={env!r},
            code_configuration=CodeConfiguration(code={str(src)!r}, scoring_script="score.py"),
            instance_type="Standard_DS3_v2", instance_count=1)).result()
        endpoint = ml.online_endpoints.get("digits-ep")
        endpoint.traffic = {{"blue": 100}}
        ml.online_endpoints.begin_create_or_update(endpoint).result()
    ''')
    ours.models.register("digits", "outputs/model.pkl", run_id="job-1")
    ours.deployments.create("digits-ep", "digits:1", score=src / "score.py")

    def writes(fake):
        return [c.operation for c in fake.calls if c.method in ("PUT", "POST", "PATCH") and "Model" not in c.operation]
    expected = ["OnlineEndpoints_CreateOrUpdate", "CodeVersions_CreateOrGetStartPendingUpload",
                "CodeVersions_CreateOrUpdate", "OnlineDeployments_CreateOrUpdate", "OnlineEndpoints_CreateOrUpdate"]
    assert writes(theirs_fake) == writes(our_fake) == expected
    # HARMLESS: reads — we read the endpoint before each write (read-modify-write); the SDK reads it before the
    # traffic update and lists its deployments there
    bodies = {}
    for who, fake in (("theirs", theirs_fake), ("ours", our_fake)):
        code = next(c for c in fake.calls if c.operation == "CodeVersions_CreateOrUpdate")
        deployment = next(c for c in fake.calls if c.operation == "OnlineDeployments_CreateOrUpdate")
        endpoint_puts = [c for c in fake.calls if c.operation == "OnlineEndpoints_CreateOrUpdate"]
        props = deployment.body["properties"]
        assert deployment.path.endswith("/onlineEndpoints/digits-ep/deployments/blue"), who
        assert props["codeConfiguration"] == {"codeId": code.path, "scoringScript": "score.py"}, who
        assert props["model"].endswith("/workspaces/my-ws/models/digits/versions/1") and props["model"].startswith(
            "/subscriptions/"), who
        assert (props["endpointComputeType"], props["instanceType"], props["environmentId"]) == (
            "Managed", "Standard_DS3_v2", env), who
        assert deployment.body["sku"] == {"name": "Default", "capacity": 1}, who
        assert props.get("scaleSettings", {"scaleType": "Default"}) == {"scaleType": "Default"}  # HARMLESS: default
        assert endpoint_puts[-1].body["properties"]["traffic"] == {"blue": 100}, who
        assert endpoint_puts[-1].body["identity"] == {"type": "SystemAssigned"}, who  # kept, not replaced
        bodies[who] = code.body["properties"]["properties"]["hash_sha256"]
    assert bodies["theirs"] == bodies["ours"] == ops.content_hash([(src / "score.py", "score.py")])


def test_a_deployment_without_a_scoring_script_is_what_the_service_accepts(pair, tmp_path):
    """Where we differ on purpose: given a custom_model and no scoring script, the SDK sends the model and the
    instance type only — a managed online endpoint refuses that for anything but an MLflow model. We send a generated
    scorer for the model's framework and an environment, so one-click deploy works (issue 19, item 4)."""
    sdk, ours, theirs_fake, our_fake = pair
    sdk('''
        from azure.ai.ml.entities import ManagedOnlineDeployment
        ml.models.create_or_update(Model(name="digits", type="custom_model",
                                         path="azureml://jobs/job-1/outputs/artifacts/paths/outputs/model.pkl"))
        ml.online_endpoints.begin_create_or_update(ManagedOnlineEndpoint(name="digits-ep", auth_mode="key")).result()
        ml.online_deployments.begin_create_or_update(ManagedOnlineDeployment(
            name="blue", endpoint_name="digits-ep", model="azureml:digits:1", instance_type="Standard_DS3_v2",
            instance_count=1)).result()
    ''')
    ours.models.register("digits", "outputs/model.pkl", run_id="job-1")
    ours.deployments.create("digits-ep", "digits:1")
    theirs = next(c for c in theirs_fake.calls if c.operation == "OnlineDeployments_CreateOrUpdate").body["properties"]
    mine = next(c for c in our_fake.calls if c.operation == "OnlineDeployments_CreateOrUpdate").body["properties"]
    assert "codeConfiguration" not in theirs and "environmentId" not in theirs
    assert mine["codeConfiguration"]["scoringScript"] == "aml_magics_score.py" and mine["environmentId"]
    code = next(c for c in our_fake.calls if c.operation == "CodeVersions_CreateOrUpdate")
    assert mine["codeConfiguration"]["codeId"] == code.path
    score = next(v for k, v in our_fake.blobs.items() if k.endswith("/aml_magics_score.py")).decode()
    assert "Generated by aml-magics for model digits:1" in score
    assert theirs["model"] == mine["model"] and theirs["instanceType"] == mine["instanceType"]


def test_a_sweep_job_matches_the_sdk(pair, tmp_path):
    """A command trial with two parameters, random sampling, a Bandit policy and limits."""
    from aml_magics.core.types import RunSubmission
    from aml_magics.sweep.policies import Policy
    from aml_magics.sweep.settings import sweep_submission
    from aml_magics.sweep.space import parse_param

    sdk, ours, theirs_fake, our_fake = pair
    src = source_folder(tmp_path, {"train.py": "print('train')\n"})
    env = CURATED
    sdk(f'''
        from azure.ai.ml import command
        from azure.ai.ml.sweep import BanditPolicy, Choice, Uniform
        trial = command(code={str(src)!r}, command="python train.py --alpha ${{{{inputs.alpha}}}} --units ${{{{inputs.units}}}}",
                        inputs={{"alpha": 0.5, "units": 16}}, environment={env!r}, compute="cpu-cluster")
        sweep = trial(alpha=Uniform(min_value=0.01, max_value=1), units=Choice([16, 32])).sweep(
            sampling_algorithm="random", primary_metric="val_loss", goal="minimize",
            early_termination_policy=BanditPolicy(slack_amount=0.05, evaluation_interval=1, delay_evaluation=2))
        sweep.set_limits(max_total_trials=20, max_concurrent_trials=4, timeout=3600)
        sweep.experiment_name = "tune"
        ml.jobs.create_or_update(sweep)
    ''')
    space = dict([parse_param("alpha=uniform(0.01, 1)"), parse_param("units=choice(16, 32)")])
    trial = RunSubmission(kind="script", experiment="tune", source_dir=src, entry="train.py", compute="cpu-cluster",
                          args=["--alpha", "{alpha}", "--units", "{units}"])
    ours.runs.submit(sweep_submission(trial, space, primary_metric="val_loss", goal="min", sampling="random",
                                      max_trials=20, parallel=4, timeout_s=3600,
                                      policy=Policy("bandit", slack_amount=0.05, delay_evaluation=2)))
    ops = ["CodeVersions_List", "CodeVersions_CreateOrGetStartPendingUpload", "CodeVersions_CreateOrUpdate",
           "Jobs_CreateOrUpdate"]
    assert [c.operation for c in theirs_fake.calls] == [c.operation for c in our_fake.calls] == ops
    a, b = (next(c for c in fake.calls if c.operation == "Jobs_CreateOrUpdate").body["properties"]
            for fake in (theirs_fake, our_fake))
    for field in ("jobType", "searchSpace", "computeId", "experimentName"):
        assert a[field] == b[field], field
    assert a["samplingAlgorithm"]["samplingAlgorithmType"] == b["samplingAlgorithm"]["samplingAlgorithmType"]
    assert a["limits"] == b["limits"] and b["limits"]["timeout"] == "PT1H"  # ISO durations written as the SDK does
    assert a["earlyTermination"] == b["earlyTermination"]
    assert a["objective"]["primaryMetric"] == b["objective"]["primaryMetric"]
    assert (a["objective"]["goal"], b["objective"]["goal"]) == ("minimize", "Minimize")  # HARMLESS: enum casing
    for field in ("command", "environmentId"):
        assert a["trial"][field] == b["trial"][field], field
    for fake, props in ((theirs_fake, a), (our_fake, b)):
        assert props["trial"]["codeId"] == next(c.path for c in fake.calls if c.operation == "CodeVersions_CreateOrUpdate")


@pytest.mark.parametrize("credentials", ["AccountKey", "Sas", "None"])
def test_datastore_access_matches_the_sdk(pair, tmp_path, credentials):
    """A file uploaded to a datastore whose storage is reached with its account key (Shared Key signatures, checked
    by the fake as Azure Storage documents them), a SAS it hands out, or — identity-based, no secret — the caller's
    own storage token. azure-ai-ml uploads through a data asset; we through ``datastores.upload``."""
    sdk, ours, theirs_fake, our_fake = pair
    for fake in (theirs_fake, our_fake):
        fake.datastores_here(credentials)
    (tmp_path / "data.csv").write_text("a,b\n1,2\n")
    sdk(f'''
        from azure.ai.ml.entities import Data
        ml.data.create_or_update(Data(name="tables", path={str(tmp_path / "data.csv")!r}, type="uri_file"))
    ''')
    assert ours.datastores.upload(tmp_path / "data.csv", "tables") == ["tables/data.csv"]
    scheme = {"AccountKey": "SharedKey", "Sas": "SAS", "None": "Bearer"}[credentials]
    for who, fake in (("azure-ai-ml", theirs_fake), ("ours", our_fake)):
        operations = [c.operation for c in fake.calls]
        assert ("Datastores_ListSecrets" in operations) == (credentials != "None"), who  # no secret to ask for
        assert fake.blob_auth and set(fake.blob_auth) == {scheme}, (who, fake.blob_auth)
        stored = [v for k, v in fake.blobs.items() if k.endswith("/data.csv")]
        assert stored == [b"a,b\n1,2\n"], who
    # HARMLESS: the SDK reads the datastore named workspaceblobstore (it names it so for uploads); we the workspace's
    # default one (isDefault) — where datastore: paths point too
    assert [c.operation for c in theirs_fake.calls][0] == "Datastores_Get"
    assert [c.operation for c in our_fake.calls][0] == "Datastores_List"
    if credentials != "None":  # HARMLESS: the SDK asks for an expirable secret, a body 2024-10-01 does not define
        secrets = next(c for c in theirs_fake.calls if c.operation == "Datastores_ListSecrets")
        assert secrets.body == {"expirableSecret": True, "expireAfterHours": 1}
        assert next(c for c in our_fake.calls if c.operation == "Datastores_ListSecrets").body is None


def test_an_automl_job_matches_the_sdk(pair, tmp_path):
    """Classification on an MLTable in the default datastore: the SDK is given the MLTable folder; we are given the
    table (datastore:tables/train.parquet) and write the MLTable beside it first."""
    from aml_magics.automl.settings import automl_submission

    sdk, ours, theirs_fake, our_fake = pair
    for fake in (theirs_fake, our_fake):
        fake.datastores_here("AccountKey")
    sdk('''
        from azure.ai.ml import Input, automl
        job = automl.classification(experiment_name="auto", compute="cpu-cluster", target_column_name="label",
                                    primary_metric="accuracy", n_cross_validations=5,
                                    training_data=Input(type="mltable", path="azureml://datastores/string/paths/train/"))
        job.set_limits(timeout_minutes=30)
        ml.jobs.create_or_update(job)
    ''')
    ours.runs.submit(automl_submission(data="datastore:tables/train.parquet", in_memory=False, task="classification",
                                       label="label", metric="accuracy", budget_s=1800, validation="cv:5",
                                       client=ours, source_dir=tmp_path, experiment="auto", compute="cpu-cluster"))
    a, b = (next(c for c in fake.calls if c.operation == "Jobs_CreateOrUpdate").body["properties"]
            for fake in (theirs_fake, our_fake))
    for field in ("jobType", "experimentName", "computeId"):
        assert a[field] == b[field], field
    ta, tb = a["taskDetails"], b["taskDetails"]
    for field in ("taskType", "targetColumnName", "primaryMetric"):
        assert ta[field].lower() == tb[field].lower(), field  # HARMLESS: enum casing
    assert ta["trainingData"]["jobInputType"] == tb["trainingData"]["jobInputType"] == "mltable"
    assert tb["trainingData"]["uri"].startswith("azureml://datastores/string/paths/")
    assert ta["nCrossValidations"] == tb["nCrossValidations"]
    assert ta["limitSettings"]["timeout"] == tb["limitSettings"]["timeout"] == "PT30M"
    # ours: the MLTable it points at was written to the datastore, naming the table
    written = [k for k in our_fake.blobs if k.endswith("/MLTable")]
    assert len(written) == 1 and b"azureml://datastores/string/paths/tables/train.parquet" in our_fake.blobs[written[0]]


def test_the_fakes_storage_checks_refuse_a_wrong_signature_and_a_partial_sas(pair, tmp_path):
    """The checks the datastore test leans on can fail: a Shared Key signature made with another key, and a SAS
    with a parameter dropped, are refused (403) and recorded; our client says so in one line."""
    from aml_magics.core.errors import AuthError

    _, ours, _, our_fake = pair
    (tmp_path / "data.csv").write_text("a,b\n1,2\n")
    our_fake.datastores_here("AccountKey")  # the datastore gives another key than the account's
    our_fake.overrides["Datastores_ListSecrets"] = lambda call, status, body: (
        status, {"secretsType": "AccountKey", "key": "b3RoZXIta2V5"})
    with pytest.raises(AuthError, match="refused access"):
        ours.datastores.upload(tmp_path / "data.csv", "tables")
    assert our_fake.violations and "Shared Key signature that does not verify" in our_fake.violations[-1]
    our_fake.violations.clear()

    sas_fake = our_fake.datastores_here("Sas")
    given = sas_fake.storage_sas
    sas_fake.overrides["Datastores_ListSecrets"] = lambda call, status, body: (
        status, {"secretsType": "Sas", "sasToken": given.replace("&sp=rwdlac", "")})
    ours.backend.datastores._containers.clear()
    with pytest.raises(AuthError, match="refused access"):
        ours.datastores.upload(tmp_path / "data.csv", "tables", overwrite=True)
    assert "a SAS that is not the one the datastore gave" in sas_fake.violations[-1]
    sas_fake.violations.clear()
    assert not any(k.endswith("/data.csv") for k in our_fake.blobs)  # nothing was stored


PIPELINE_YAML = """
$schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
type: pipeline
experiment_name: pipe
settings:
  default_compute: azureml:cpu-cluster
jobs:
  prep:
    type: command
    code: ./src
    command: python prep.py --out ${{outputs.clean}} --n ${{inputs.n}}
    environment: azureml://registries/azureml/environments/sklearn-1.5/labels/latest
    environment_variables:
      MODE: fast
    inputs:
      n: 3
    outputs:
      clean:
        type: uri_folder
  train:
    type: command
    code: ./src
    command: python train.py --data ${{inputs.data}} --raw ${{inputs.raw}}
    environment: azureml://registries/azureml/environments/sklearn-1.5/labels/latest
    limits:
      timeout: 5400
    inputs:
      data: ${{parent.jobs.prep.outputs.clean}}
      raw:
        type: uri_folder
        path: azureml://datastores/workspaceblobstore/paths/digits/raw
"""


def _jwt(audience: str) -> str:
    """A token shaped as Entra ID's (azure-ai-ml reads the audience of the Azure ML token it sends with a pipeline)."""
    import base64

    def part(d):
        return base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")

    return part({"alg": "none", "typ": "JWT"}) + "." + part({"aud": audience, "oid": "0000", "exp": 2 ** 31}) + ".c2ln"


def test_a_pipeline_yaml_matches_the_sdk(pair, tmp_path):
    """A v2 pipeline YAML of two command steps (a literal input, a step output bound to the next step, a datastore
    folder): the code uploaded once, an anonymous command component per step, the pipeline job binding them — and
    the caller's Azure ML token in x-azureml-token, as the SDK sends it."""
    sdk, ours, theirs_fake, our_fake = pair
    source_folder(tmp_path, {"prep.py": "print('prep')\n", "train.py": "print('train')\n"})
    (tmp_path / "p.yml").write_text(PIPELINE_YAML)
    theirs_fake.token = _jwt(theirs_fake.base_url.rstrip("/"))
    sdk('''
        from azure.ai.ml import load_job
        ml.jobs.create_or_update(load_job("p.yml"))
    ''')
    run = ours.pipelines.submit(tmp_path / "p.yml")
    drop = ("Workspaces_Get", "CodeVersions_List", "CodeVersions_Get", "Computes_List", "Computes_Get",
            "Datastores_List", "Datastores_Get")
    ops_theirs = [op for op, _ in sequence(theirs_fake, drop=drop)]
    ops_ours = [op for op, _ in sequence(our_fake, drop=drop)]
    assert ops_theirs == ops_ours == ["CodeVersions_CreateOrGetStartPendingUpload", "CodeVersions_CreateOrUpdate",
                                      "ComponentVersions_CreateOrUpdate", "ComponentVersions_CreateOrUpdate",
                                      "Jobs_CreateOrUpdate"]

    def components(fake):
        return [c.body["properties"]["componentSpec"] for c in fake.calls
                if c.operation == "ComponentVersions_CreateOrUpdate"]

    for a, b in zip(components(theirs_fake), components(our_fake)):
        a = {k: v for k, v in a.items() if k != "_source"}  # HARMLESS: the SDK's note of where it read the job
        assert a["code"].split("/codes/")[0] == b["code"].split("/codes/")[0]  # HARMLESS: code version name
        assert {k: v for k, v in a.items() if k != "code"} == {k: v for k, v in b.items() if k != "code"}
    [theirs_job] = [c for c in theirs_fake.calls if c.operation == "Jobs_CreateOrUpdate"]
    [our_job] = [c for c in our_fake.calls if c.operation == "Jobs_CreateOrUpdate"]
    assert our_job.path.endswith("/jobs/" + run.id)
    a, b = theirs_job.body["properties"], our_job.body["properties"]
    for props in (a, b):
        for node in props["jobs"].values():
            node.pop("_source", None)
            node["componentId"] = node["componentId"].rsplit("/versions/", 1)[0]  # both content-addressed
        props["settings"].pop("_source", None)
    assert a["jobs"] == b["jobs"]
    assert b["jobs"]["train"]["limits"] == {"job_limits_type": "Command", "timeout": "PT1H30M"}  # limits.timeout: 5400
    assert b["jobs"]["prep"]["environment_variables"] == {"MODE": "fast"}  # on the node, as the SDK (were dropped)
    assert b["jobs"]["train"]["inputs"]["data"] == {"job_input_type": "literal",
                                                    "value": "${{parent.jobs.prep.outputs.clean}}"}
    assert a["settings"] == b["settings"] and a["jobType"] == b["jobType"] == "Pipeline"
    assert a["experimentName"] == b["experimentName"] == "pipe"
    for job in (theirs_job, our_job):
        assert job.headers.get("x-azureml-token"), "the caller's Azure ML token goes with a pipeline job"
