"""The azure backend's REST layer against Microsoft's contract: every request validated, Microsoft's
example responses answered (see contract.py)."""
from __future__ import annotations

import json

import pytest

from aml_magics.backends.azure import ops
from aml_magics.backends.azure.auth import workspace_ref
from aml_magics.backends.azure.rest import ArmClient, WorkspaceRef
from aml_magics.core.errors import AuthError, BackendUnavailable, InvalidInput, NotFound

from .contract import FakeArm, Validator

pytestmark = pytest.mark.azure_contract

WS = WorkspaceRef("00000000-1111-2222-3333-444444444444", "my-rg", "my-ws")


class StaticToken:
    def __init__(self, token: str):
        self.token = token
        self.scopes = []

    def get_token(self, *scopes):
        self.scopes.append(scopes)
        return type("AccessToken", (), {"token": self.token, "expires_on": 2**31})()


@pytest.fixture
def arm(spec):
    fake = FakeArm(spec=spec)
    sleeps: list[float] = []
    cred = StaticToken(fake.token)
    client = ArmClient(cred, base_url=fake.base_url, sleep=sleeps.append)
    client.fake, client.sleeps, client.cred = fake, sleeps, cred
    yield client
    fake.close()
    assert not fake.violations, "requests broke the contract:\n" + "\n".join(fake.violations)


def test_the_contract_checker_accepts_microsofts_examples_and_rejects_broken_bodies(spec):
    v = Validator(spec)
    checked = 0
    for _, _, _, file, op in spec.routes:
        for ref in (op.get("x-ms-examples") or {}).values():
            example = json.loads((spec.folder / ref["$ref"][2:]).read_text())
            body = example["parameters"].get("body")
            params = [spec.resolve(p, file)[0] for p in op["parameters"]]
            schema = next((p["schema"] for p in params if p.get("in") == "body"), None)
            if body is None or schema is None:
                continue
            assert v.validate(body, schema, file) == [], (op["operationId"], ref["$ref"])
            checked += 1
    assert checked >= 60
    job_schema = {"$ref": "#/definitions/JobBaseResource"}
    good = ops.command_job_body(command="python train.py", environment_id="azureml:sklearn:1", compute_id=None,
                                code_id=None, experiment="e", display_name=None, env_vars={})
    assert v.validate(good, job_schema, "mfe.json") == []
    assert any("required property 'command'" in e for e in v.validate(
        {"properties": {"jobType": "Command", "environmentId": "x"}}, job_schema, "mfe.json"))
    assert any("'Nonsense' is not one of" in e for e in v.validate(
        {"properties": {"jobType": "Nonsense"}}, job_schema, "mfe.json"))
    assert any("unknown property 'comand'" in e for e in v.validate(
        {"properties": {**good["properties"], "comand": "typo"}}, job_schema, "mfe.json"))
    assert any("read-only" in e for e in v.validate(
        {"properties": {**good["properties"], "status": "Running"}}, job_schema, "mfe.json"))


def test_workspace_computes_datastores(arm):
    body = ops.workspace(arm, WS)
    assert body["name"] and arm.fake.calls[-1].operation == "Workspaces_Get"
    assert arm.cred.scopes == [("https://management.azure.com/.default",)]
    with pytest.raises(Exception, match="mlFlowTrackingUri"):
        ops.mlflow_tracking_uri(body)  # Microsoft's example workspace has none: a clear error, not a guess
    computes = ops.computes(arm, WS)
    assert [c.name for c in computes] == ["compute123", "compute1234"]
    assert all(c.kind.startswith("AKS") for c in computes)
    stores = ops.datastores(arm, WS)
    assert stores and all(s.name for s in stores)
    assert [c.operation for c in arm.fake.calls] == ["Workspaces_Get", "Compute_List", "Datastores_List"]


def test_code_upload_then_command_job_submit_status_cancel(arm, tmp_path):
    fake = arm.fake
    (tmp_path / "train.py").write_text("print('hi')\n")
    (tmp_path / "big.bin").write_bytes(b"x" * 3000)
    files = [(tmp_path / "train.py", "train.py"), (tmp_path / "big.bin", "data/big.bin")]

    def sas_here(call, status, body):  # Microsoft's example points at contoso.com: send it to our fake storage
        cred = body["blobReferenceForConsumption"]["credential"]
        cred["sasUri"] = f"{fake.base_url}/blob/container/snap?sv=2023-11-03&sig=fake"
        return status, body

    fake.overrides["CodeVersions_CreateOrGetStartPendingUpload"] = sas_here
    code_id = ops.upload_code(arm, WS, files, block_size=1024)
    assert fake.blobs["/blob/container/snap/train.py"] == b"print('hi')\n"
    assert fake.blobs["/blob/container/snap/data/big.bin"] == b"x" * 3000  # three blocks, then the block list
    assert code_id
    body = ops.command_job_body(command="python train.py", environment_id="azureml:sklearn-1.5:1",
                                compute_id=ops.compute_id(WS, "cpu-cluster"), code_id=code_id, experiment="mnist",
                                display_name="cell", env_vars=ops.environ_for_job("job-1", "mnist"),
                                inputs={"data": "azureml://datastores/workspaceblobstore/paths/mnist/"})
    submitted = ops.submit_job(arm, WS, "job-1", body)
    assert submitted["properties"]["jobType"] == "Command"
    put = [c for c in fake.calls if c.operation == "Jobs_CreateOrUpdate"][0]
    assert put.body["properties"]["environmentVariables"]["AML_MAGICS_RUN_ID"] == "job-1"
    # how many runs deep the job is: a job that submits jobs (its notebook submits itself) stops at MAX_DEPTH
    assert put.body["properties"]["environmentVariables"]["AML_MAGICS_DEPTH"] == "1"
    status = ops.job(arm, WS, "job-1")["properties"]["status"]
    assert ops.map_status(status) == "NotStarted"
    ops.cancel_job(arm, WS, "job-1")
    arm.delete(f"{WS.path}/jobs/job-1")  # 202 + Location: followed until the operation is done
    ops_called = [c.operation for c in fake.calls]
    # the code is looked up by its hash first (Microsoft's example list holds no version with it: uploaded)
    assert ops_called == ["CodeVersions_List", "CodeVersions_CreateOrGetStartPendingUpload",
                          "CodeVersions_CreateOrUpdate",
                          "Jobs_CreateOrUpdate", "Jobs_Get", "Jobs_Cancel", "Jobs_Delete", "LRO-status"]


def test_retries_honour_retry_after_and_give_up_with_a_clear_error(arm):
    fake = arm.fake
    answers = [429, 503]

    def throttled(call, status, body):
        if answers:
            return answers.pop(0), {"error": {"code": "TooManyRequests", "message": "slow down"}}
        return status, body

    fake.overrides["Compute_List"] = throttled
    original = fake.example_response

    def with_retry_after(op, file, params, body):
        status, headers, resp = original(op, file, params, body)
        return status, {**headers, "Retry-After": "2"}, resp

    fake.example_response = with_retry_after
    assert ops.computes(arm, WS)
    assert len([c for c in fake.calls if c.operation == "Compute_List"]) == 3 and arm.sleeps == [2.0, 2.0]
    fake.overrides["Compute_List"] = lambda call, status, body: (503, {"error": {"code": "ServiceUnavailable",
                                                                                  "message": "down"}})
    with pytest.raises(BackendUnavailable, match="ServiceUnavailable: down"):
        ops.computes(arm, WS)


def test_arm_errors_become_one_clear_message(arm):
    fake = arm.fake
    fake.overrides["Jobs_Get"] = lambda call, status, body: (404, {"error": {"code": "ResourceNotFound",
                                                                              "message": "job x not found"}})
    with pytest.raises(NotFound) as info:
        ops.job(arm, WS, "x")
    text = str(info.value)
    assert "ResourceNotFound: job x not found" in text and "config.json" in text
    assert fake.token not in text and fake.token not in repr(arm)
    fake.overrides["Jobs_Get"] = lambda call, status, body: (401, {"error": {"code": "InvalidAuthenticationToken",
                                                                              "message": "expired"}})
    with pytest.raises(AuthError, match="az login"):
        ops.job(arm, WS, "x")


def test_a_failing_credential_tells_the_user_what_to_run():
    class Broken:
        def get_token(self, *scopes):
            raise RuntimeError("no cached account: secret detail abc123")

    client = ArmClient(Broken(), base_url="http://127.0.0.1:9")
    with pytest.raises(AuthError) as info:
        client.get("/x")
    assert "az login" in str(info.value) and "abc123" not in str(info.value)


SUB = "00000000-1111-2222-3333-444444444444"
SUB2 = "55555555-6666-7777-8888-999999999999"


def test_config_json_discovery(tmp_path, monkeypatch):
    deep = tmp_path / "project" / "notebooks" / "lab"
    deep.mkdir(parents=True)
    (tmp_path / "project" / ".azureml").mkdir()
    (tmp_path / "project" / ".azureml" / "config.json").write_text(json.dumps(
        {"subscription_id": SUB, "resource_group": "rg", "workspace_name": "ws1"}))
    assert workspace_ref(start=str(deep)) == WorkspaceRef(SUB, "rg", "ws1")
    (tmp_path / "project" / "notebooks" / "aml_config").mkdir()
    (tmp_path / "project" / "notebooks" / "aml_config" / "project.json").write_text(json.dumps(
        {"Scope": f"/subscriptions/{SUB2}/resourceGroups/r2/providers/Microsoft.MachineLearningServices/"
                  "workspaces/w2x"}))
    assert workspace_ref(start=str(deep)) == WorkspaceRef(SUB2, "r2", "w2x")  # the nearest folder wins
    (deep / "config.json").write_text(json.dumps({"subscription_id": "only"}))
    with pytest.raises(InvalidInput, match="lacks resource_group, workspace_name"):
        workspace_ref(start=str(deep))
    assert workspace_ref(SUB, "b", "ccc") == WorkspaceRef(SUB, "b", "ccc")
    with pytest.raises(InvalidInput, match="all of"):
        workspace_ref("a", None, None)
    with pytest.raises(InvalidInput, match="no config.json"):
        workspace_ref(start="/")


@pytest.mark.parametrize("sub,rg,ws,what", [
    ("my-subscription", "rg", "ws1", "subscription id"),         # a name where the id goes
    (SUB + " ", "rg", "ws1", "subscription id"),
    (SUB, "my rg", "ws1", "resource group"),
    (SUB, "rg.", "ws1", "resource group"),
    (SUB, "r" * 91, "ws1", "resource group"),
    (SUB, "rg", "../../other", "workspace name"),               # would change the request's path
    (SUB, "rg", "ws/jobs", "workspace name"),
    (SUB, "rg", "<img src=x onerror=alert(1)>", "workspace name"),
    (SUB, "rg", "w\ud800xx", "workspace name"),
    (SUB, "rg", "ab", "workspace name"),
    (SUB, "rg", 12345, "workspace name"),
])
def test_a_workspace_that_azure_cannot_name_is_one_line_before_any_sign_in(tmp_path, sub, rg, ws, what):
    """From %aml connect's options and from a config.json alike: the bad part is named, nothing is signed in to."""
    with pytest.raises(InvalidInput, match=f"is not an Azure {what}") as info:
        workspace_ref(sub, rg, ws) if isinstance(ws, str) else WorkspaceRef(sub, rg, ws)
    assert "\n" not in str(info.value) and "portal" in str(info.value)
    (tmp_path / "config.json").write_text(json.dumps(
        {"subscription_id": sub, "resource_group": rg, "workspace_name": ws}))
    with pytest.raises(InvalidInput, match=f"is not an Azure {what}"):
        workspace_ref(start=str(tmp_path))
    assert WorkspaceRef(SUB, "Grüße-(rg).1", "ws_1-x")  # letters of any script, as Azure allows


def test_a_name_that_would_move_the_request_to_another_resource_is_refused_before_sending(spec):
    """Names from the user go into the REST paths, and the HTTP client resolves ``..``: ``%aml service
    ../computes/cpu-cluster --delete`` sent ``DELETE …/workspaces/my-ws/computes/cpu-cluster`` (the compute), and
    ``?`` or ``#`` in a name cut the path short. Each is one InvalidInput, and nothing reaches Azure."""
    from .contract import client_on

    fake = FakeArm(spec=spec)
    with client_on(fake) as client:
        client.workspace  # signed in, the workspace read
        before = len(fake.calls)
        for call in (lambda: client.deployments.delete("../computes/cpu-cluster"),
                     lambda: client.deployments.delete("../../../.."),
                     lambda: client.deployments.get("a?api-version=1"),
                     lambda: client.runs.cancel("../computes/cpu-cluster"),
                     lambda: client.runs.get("%2e%2e"),
                     lambda: client.models.get("a#b"),
                     lambda: client.deployments.delete("")):
            with pytest.raises(InvalidInput, match="cannot be a name in an Azure ML workspace"):
                call()
        assert fake.calls[before:] == []


def test_a_run_that_is_not_an_id_is_looked_for_in_one_listing_of_the_jobs(spec):
    """A RUN that is not an id is looked for as a unique part of one, then as a run's name, then "did you mean"
    is worked out: Jobs_List has no filter by name, and each of the three listed every job of the workspace (a
    hundred pages for 10,000 jobs, three times for one typo). Now one listing answers the three."""
    from .contract import client_on

    fake = FakeArm(spec=spec)
    with client_on(fake) as client:
        client.workspace
        runs = client.backend.runs
        before = len(fake.calls)
        listed = runs.ids()
        assert listed, "Microsoft's Jobs_List example lists a job"
        assert runs.matching("zzzzzzzz", 3) == []
        assert runs.named("no run is called this", 1) == []
        assert runs.named(runs.get(listed[0], with_metrics=False).display_name, 1) == [listed[0]]
        lists = [c for c in fake.calls[before:] if c.operation == "Jobs_List"]
        assert len(lists) == 1, [c.operation for c in fake.calls[before:]]
