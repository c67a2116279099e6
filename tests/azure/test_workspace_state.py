"""The azure backend against a workspace that keeps state (tests/azure/contract.py FakeArm.keeping_state): what
Microsoft's SDK does and the service requires — unchanged code is reused, not re-pointed; versions come from the
container's nextVersion over paged lists; a deploy reads the endpoint before writing it; links to other hosts are
never followed with our token."""
from __future__ import annotations

import pytest

from aml_magics.core.client import Client
from aml_magics.core.errors import AmlError
from aml_magics.core.errors import InvalidInput as InvalidInputError
from aml_magics.core.types import RunSubmission

from .contract import FakeArm, client_on

pytestmark = pytest.mark.azure_contract


@pytest.fixture
def azure(spec):
    fake = FakeArm(spec=spec).snapshots_here().keeping_state(page_size=2)
    with client_on(fake) as client:
        yield client, fake


def ops_of(fake, since: int = 0) -> list[str]:
    return [c.operation for c in fake.calls[since:]]


def test_resubmitting_unchanged_code_reuses_its_version(azure, tmp_path):
    client, fake = azure
    (tmp_path / "train.py").write_text("print('hi')\n")
    sub = RunSubmission(kind="script", experiment="e", source_dir=tmp_path, entry="train.py", compute="cpu")
    first = client.runs.submit(sub)
    uploads = ops_of(fake).count("CodeVersions_CreateOrGetStartPendingUpload")
    code_ids = [c.body["properties"]["codeId"] for c in fake.calls if c.operation == "Jobs_CreateOrUpdate"]
    assert uploads == 1 and len(code_ids) == 1
    mark = len(fake.calls)
    second = client.runs.submit(sub)  # the same folder again: found by its hash, nothing uploaded or PUT
    again = ops_of(fake, mark)
    assert "CodeVersions_List" in again
    assert "CodeVersions_CreateOrGetStartPendingUpload" not in again and "CodeVersions_CreateOrUpdate" not in again
    jobs = [c.body["properties"]["codeId"] for c in fake.calls if c.operation == "Jobs_CreateOrUpdate"]
    assert jobs[1] == jobs[0] and first.id != second.id
    (tmp_path / "train.py").write_text("print('changed')\n")  # changed code: a new code asset
    client.runs.submit(sub)
    jobs = [c.body["properties"]["codeId"] for c in fake.calls if c.operation == "Jobs_CreateOrUpdate"]
    assert jobs[2] != jobs[0] and ops_of(fake).count("CodeVersions_CreateOrGetStartPendingUpload") == 2


def test_the_service_refuses_a_new_path_on_an_existing_code_version(azure, tmp_path):
    """What the old code did on a second submission, and why it failed on a live workspace."""
    client, fake = azure
    path = f"{client.backend.ws.path}/codes/abc/versions/1"
    client.backend.arm.put(path, {"properties": {"codeUri": "https://store/one", "isAnonymous": True}})
    from aml_magics.core.errors import Conflict

    with pytest.raises(Conflict, match="Asset paths cannot be updated"):
        client.backend.arm.put(path, {"properties": {"codeUri": "https://store/two", "isAnonymous": True}})


def test_model_versions_follow_next_version_over_paged_lists(azure, tmp_path):
    client, fake = azure
    versions = [client.models.register("digits", "outputs/model.pkl", run_id=f"job-{i}").version for i in range(5)]
    assert versions == [1, 2, 3, 4, 5]  # pages of 2: never "highest on the first page + 1"
    assert [m.version for m in client.models.list("digits")] == [1, 2, 3, 4, 5]  # every page read
    assert client.models.get("digits").version == 5
    pages = [c for c in fake.calls if c.operation == "ModelVersions_List"]
    assert any(c.query.get("$skip") == "4" for c in pages)  # the nextLink was followed to the last page
    puts = [c.path.rsplit("/", 1)[1] for c in fake.calls if c.operation == "ModelVersions_CreateOrUpdate"]
    assert puts == ["1", "2", "3", "4", "5"]  # no PUT over an existing version


def test_environment_versions_follow_next_version(azure, tmp_path):
    client, fake = azure
    got = []
    for i in range(4):
        (tmp_path / "requirements.txt").write_text(f"scikit-learn==1.{i}\n")
        got.append(client.environments.register("train-env", tmp_path / "requirements.txt").version)
    assert got == [1, 2, 3, 4]
    again = client.environments.register("train-env", tmp_path / "requirements.txt")
    assert again.version == 4  # unchanged packages: the latest version (on the last page) is reused


def test_a_deploy_reads_the_endpoint_and_keeps_what_it_does_not_change(azure, tmp_path):
    client, fake = azure
    arm, ws = client.backend.arm, client.backend.ws
    client.models.register("digits", "outputs/model.pkl", run_id="job-1")
    # an endpoint someone made in the studio: identity, tags, token auth, a "green" deployment with traffic
    arm.put(f"{ws.path}/onlineEndpoints/digits-ep", {
        "location": "westeurope", "tags": {"team": "vision"}, "identity": {"type": "SystemAssigned"},
        "properties": {"authMode": "AMLToken", "description": "made in the studio", "traffic": {"green": 100}}})
    mark = len(fake.calls)
    (tmp_path / "score.py").write_text("def init():\n    pass\n\ndef run(raw):\n    return raw\n")
    client.deployments.create("digits-ep", "digits:1", score=tmp_path / "score.py")
    calls = fake.calls[mark:]
    endpoint_ops = [c.operation for c in calls if c.operation.startswith("OnlineEndpoints")]
    assert endpoint_ops[0] == "OnlineEndpoints_Get"  # read first
    puts = [c for c in calls if c.operation == "OnlineEndpoints_CreateOrUpdate"]
    assert len(puts) == 1  # no bare {authMode} PUT over the existing endpoint
    body = puts[0].body
    assert body["tags"] == {"team": "vision"} and body["identity"] == {"type": "SystemAssigned"}
    assert body["properties"]["authMode"] == "AMLToken" and body["properties"]["description"] == "made in the studio"
    assert body["properties"]["traffic"] == {"green": 0, "blue": 100}
    assert "scoringUri" not in body["properties"] and "provisioningState" not in body["properties"]
    # a new endpoint: created with key auth before its deployment, then all traffic to it
    mark = len(fake.calls)
    client.deployments.create("fresh-ep", "digits:1", score=tmp_path / "score.py")
    calls = [c for c in fake.calls[mark:] if c.operation.startswith("Online")]
    assert [c.operation for c in calls][:3] == ["OnlineEndpoints_Get", "OnlineEndpoints_CreateOrUpdate",
                                                "OnlineDeployments_CreateOrUpdate"]
    assert calls[1].body["properties"] == {"authMode": "Key"}
    final = [c for c in calls if c.operation == "OnlineEndpoints_CreateOrUpdate"][-1]
    assert final.body["properties"]["traffic"] == {"blue": 100} and final.body["properties"]["authMode"] == "Key"


def test_an_update_keeps_the_deployments_vm_size_and_workers_unless_given(azure, tmp_path):
    """An update of a deployment made with `--instance-type Standard_F4s_v2 --workers 2` PUT Standard_DS3_v2 and no
    WORKER_COUNT: it resized the deployment and went back to one worker without a word."""
    client, fake = azure
    client.models.register("digits", "outputs/model.pkl", run_id="job-1")
    client.models.register("digits", "outputs/model.pkl", run_id="job-2")
    (tmp_path / "score.py").write_text("def init():\n    pass\n\ndef run(raw):\n    return raw\n")

    def deployment_put(since):
        puts = [c for c in fake.calls[since:] if c.operation == "OnlineDeployments_CreateOrUpdate"]
        assert len(puts) == 1
        return puts[0].body["properties"]

    client.deployments.create("digits-ep", "digits:1", score=tmp_path / "score.py", instance_type="Standard_F4s_v2",
                              workers=2)
    mark = len(fake.calls)
    client.deployments.create("digits-ep", "digits:2", score=tmp_path / "score.py", update=True)
    props = deployment_put(mark)
    assert "OnlineDeployments_Get" in ops_of(fake, mark)  # read before it is written
    assert props["instanceType"] == "Standard_F4s_v2" and props["environmentVariables"] == {"WORKER_COUNT": "2"}
    assert props["model"].endswith("/models/digits/versions/2")
    mark = len(fake.calls)
    client.deployments.create("digits-ep", "digits:2", score=tmp_path / "score.py", update=True, workers=1,
                              instance_type="Standard_DS2_v2")  # given: applied
    props = deployment_put(mark)
    assert props["instanceType"] == "Standard_DS2_v2" and "environmentVariables" not in props
    mark = len(fake.calls)
    client.deployments.create("other-ep", "digits:1", score=tmp_path / "score.py")  # a new one: the defaults
    props = deployment_put(mark)
    assert props["instanceType"] == "Standard_DS3_v2" and "environmentVariables" not in props
    assert "OnlineDeployments_Get" not in ops_of(fake, mark)


def test_a_link_to_another_host_is_never_followed_with_the_token(azure):
    """A nextLink (or an operation monitor) pointing elsewhere would carry our bearer token there."""
    client, fake = azure
    arm = client.backend.arm
    seen = []

    def elsewhere(call, status, body):
        seen.append(call.path)
        return 200, {"value": [{"name": "a"}], "nextLink": "https://attacker.example/steal?page=2"}

    fake.overrides["Compute_List"] = elsewhere
    with pytest.raises(AmlError, match="link to another host"):
        arm.list_all(f"{client.backend.ws.path}/computes")
    assert seen  # the first page came from the workspace; the second link was refused before any request


class ScopedTokens:
    """A credential with one token per scope (as Entra ID gives): the ARM token must never reach storage."""

    def __init__(self, tokens: dict[str, str]):
        self.tokens = tokens

    def get_token(self, *scopes):
        return type("AccessToken", (), {"token": self.tokens[scopes[0]], "expires_on": 2**31})()


def test_an_identity_based_datastore_is_reached_with_the_callers_storage_token(spec, tmp_path):
    fake = FakeArm(spec=spec, storage_token="storage-token-abc")

    def identity_based(call, status, body):  # Microsoft's example store, made credential-less (identity-based)
        for store in body.get("value", [body]):
            store["properties"]["credentials"] = {"credentialsType": "None"}
        return status, body

    fake.overrides["Datastores_List"] = fake.overrides["Datastores_Get"] = identity_based
    try:
        client = Client.connect("00000000-1111-2222-3333-444444444444", "my-rg", "my-ws",
                                credential=ScopedTokens({"https://management.azure.com/.default": fake.token,
                                                         "https://storage.azure.com/.default": "storage-token-abc"}),
                                base_url=fake.base_url, storage=(f"{fake.base_url}/blob", "acct"))
        (tmp_path / "data.csv").write_text("a,b\n1,2\n")
        done = client.datastores.upload(tmp_path / "data.csv", "tables")
        assert done == ["tables/data.csv"]
        stored = [k for k in fake.blobs if k.endswith("/tables/data.csv")]
        assert stored and fake.blobs[stored[0]] == b"a,b\n1,2\n"
        assert "Datastores_ListSecrets" not in [c.operation for c in fake.calls]  # no secret asked for
    finally:
        fake.close()
    assert not fake.violations, fake.violations  # and the ARM token never went to storage


TORCH_ENV = """name: torch  # a GPU environment
channels:
  - pytorch
  - nvidia
  - conda-forge
dependencies:
  - python=3.10
  - pytorch=2.3
  - cudatoolkit=11.8
  - pip
  - pip:
      - requests>=2.31
      - lightgbm==4.3.0
"""


def test_a_conda_file_is_sent_as_written(azure, tmp_path):
    import yaml

    client, fake = azure
    (tmp_path / "environment.yml").write_text(TORCH_ENV)
    env = client.environments.register("torch-env", tmp_path / "environment.yml")
    put = [c for c in fake.calls if c.operation == "EnvironmentVersions_CreateOrUpdate"][-1]
    assert put.body["properties"]["condaFile"] == TORCH_ENV  # byte for byte: channels, pins, Python, comments
    assert env.packages == ["requests>=2.31", "lightgbm==4.3.0"]
    # without what the job runtime needs: the same file, that one package added and said so
    (tmp_path / "environment.yml").write_text(TORCH_ENV.replace("      - requests>=2.31\n", ""))
    client.environments.register("torch-env", tmp_path / "environment.yml")
    put = [c for c in fake.calls if c.operation == "EnvironmentVersions_CreateOrUpdate"][-1]
    sent = put.body["properties"]["condaFile"]
    assert sent.startswith("# aml-magics added requests")
    doc = yaml.safe_load(sent)
    assert doc["channels"] == ["pytorch", "nvidia", "conda-forge"]
    assert doc["dependencies"][:4] == ["python=3.10", "pytorch=2.3", "cudatoolkit=11.8", "pip"]  # their Python
    assert doc["dependencies"][4] == {"pip": ["lightgbm==4.3.0", "requests"]}
    assert "requests" in put.body["properties"]["description"]
    (tmp_path / "broken.yml").write_text("dependencies: [python=3.10\n")
    from aml_magics.core.errors import InvalidInput

    with pytest.raises(InvalidInput, match="not valid YAML"):
        client.environments.register("torch-env", tmp_path / "broken.yml")


def test_a_deploy_without_a_scoring_script_sends_the_default_scorer_and_an_environment(azure, tmp_path):
    client, fake = azure
    client.models.register("digits", "outputs/model.pkl", run_id="job-1")
    client.deployments.create("digits-ep", "digits:1")
    deployment = [c for c in fake.calls if c.operation == "OnlineDeployments_CreateOrUpdate"][-1].body["properties"]
    code = deployment["codeConfiguration"]
    assert code["scoringScript"] == "aml_magics_score.py" and code["codeId"]  # (the name marks it as generated)
    assert deployment["environmentId"]  # a custom_model needs code and an environment on a managed endpoint
    score = next(v for k, v in fake.blobs.items() if k.endswith("/aml_magics_score.py")).decode()
    assert "Generated by aml-magics for model digits:1" in score
    assert "import aml_magics" not in score and "from aml_magics" not in score  # Azure's container has none
    client.models.register("vision", "outputs/model.onnx", run_id="job-2")
    with pytest.raises(InvalidInputError, match="no default scorer on Azure; give one with --score"):
        client.deployments.create("vision-ep", "vision:1")


def test_an_update_without_a_scoring_script_keeps_the_users_own_and_what_was_set_in_the_studio(azure, tmp_path):
    """An update without --score sent the generated default scorer over the user's own score.py, the curated
    environment over theirs, and one instance with no request settings over what was set in the studio: it changes
    the model and keeps the rest (a generated scorer is made again, for the new model)."""
    client, fake = azure
    for run in ("job-1", "job-2", "job-1"):
        client.models.register("digits", "outputs/model.pkl", run_id=run)
    (tmp_path / "score.py").write_text("def init():\n    pass\n\ndef run(raw):\n    return 'mine'\n")

    def deployment_put(since):
        puts = [c for c in fake.calls[since:] if c.operation == "OnlineDeployments_CreateOrUpdate"]
        assert len(puts) == 1
        return puts[0].body

    client.deployments.create("digits-ep", "digits:1")  # the generated scorer …
    mark = len(fake.calls)
    client.deployments.create("digits-ep", "digits:2", update=True)  # … is made again for the new model
    assert deployment_put(mark)["properties"]["codeConfiguration"]["scoringScript"] == "aml_magics_score.py"
    assert any(b"for model digits:2" in v for k, v in fake.blobs.items() if k.endswith("/aml_magics_score.py"))
    mark = len(fake.calls)
    client.deployments.create("digits-ep", "digits:2", score=tmp_path / "score.py", update=True,
                              environment="azureml:mine:3")
    mine = deployment_put(mark)["properties"]
    assert mine["codeConfiguration"]["scoringScript"] == "score.py" and mine["environmentId"] == "azureml:mine:3"
    # what the studio set meanwhile: three instances, a longer request timeout, a variable of the user's
    path = next(k for k in fake.assets if k.endswith("/onlineEndpoints/digits-ep/deployments/blue"))
    fake.assets[path]["sku"]["capacity"] = 3
    fake.assets[path]["properties"]["requestSettings"] = {"requestTimeout": "PT30S"}
    fake.assets[path]["properties"]["environmentVariables"] = {"MY_SETTING": "on"}
    mark = len(fake.calls)
    client.deployments.create("digits-ep", "digits:3", update=True)
    body = deployment_put(mark)
    props = body["properties"]
    assert props["model"].endswith("/models/digits/versions/3")
    assert props["codeConfiguration"] == mine["codeConfiguration"] and props["environmentId"] == "azureml:mine:3"
    assert "CodeVersions_CreateOrGetStartPendingUpload" not in ops_of(fake, mark)  # nothing uploaded
    assert body["sku"]["capacity"] == 3 and props["requestSettings"] == {"requestTimeout": "PT30S"}
    assert props["environmentVariables"] == {"MY_SETTING": "on"} and "provisioningState" not in props


def test_two_notebooks_uploading_the_same_code_at_once_share_one_version(azure, tmp_path):
    """The other notebook's PUT lands between our lookup and ours: the service refuses ours (409, another path);
    we take theirs instead of failing the run."""
    from aml_magics.backends.azure import ops

    client, fake = azure
    (tmp_path / "train.py").write_text("print('race')\n")
    files = [(tmp_path / "train.py", "train.py")]
    digest, name = ops.content_hash(files), ops.content_digest(files)
    theirs = f"{client.backend.ws.path}/codes/{name}/versions/1"
    listing, looked = fake.overrides["CodeVersions_List"], []

    def first_lookup_misses(call, status, body):
        looked.append(call)
        if len(looked) == 1:  # our lookup runs before the other notebook's PUT lands …
            fake.assets[theirs] = {"id": theirs, "name": "1", "properties": {
                "codeUri": "https://other/upload", "properties": {"hash_sha256": digest, "hash_version": "202208"}}}
            return 200, {"value": []}
        return listing(call, status, body)

    fake.overrides["CodeVersions_List"] = first_lookup_misses
    code_id = ops.upload_code(client.backend.arm, client.backend.ws, files)
    assert code_id == theirs and len(looked) == 2  # refused (409), looked again, took theirs
    assert fake.assets[theirs]["properties"]["codeUri"] == "https://other/upload"  # theirs untouched
