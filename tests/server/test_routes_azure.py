"""The sidebar's routes on an Azure ML workspace: the server finds the workspace through the config.json of
its folder (as kernels there do) and answers from Azure ML (the contract-checking fake ARM)."""
from __future__ import annotations

import json

import pytest
from tornado.httpclient import HTTPClientError

from tests.azure.contract import FakeArm
from tests.azure.test_rest_contract import StaticToken

pytestmark = pytest.mark.azure_contract

SUB, RG, WS = "00000000-1111-2222-3333-444444444444", "my-rg", "side-ws"


@pytest.fixture
def azure_project(tmp_path, monkeypatch, workspace):
    from aml_magics.core import client as client_module
    from aml_magics.core.client import Client

    project = tmp_path / "azure-project"
    (project / ".azureml").mkdir(parents=True)
    (project / ".azureml" / "config.json").write_text(json.dumps(
        {"subscription_id": SUB, "resource_group": RG, "workspace_name": WS}))
    monkeypatch.delenv("AML_MAGICS_WORKSPACE")
    monkeypatch.chdir(project)
    client_module._clients.clear()
    fake = FakeArm()
    # what %aml connect does in the server's process: sign-in options for that workspace (here the fake's token)
    Client.connect(SUB, RG, WS, credential=StaticToken(fake.token), base_url=fake.base_url)
    yield fake
    fake.close()
    client_module._clients.clear()
    from aml_magics.backends.azure import backend as azure_backend

    azure_backend._signed_in.pop((SUB, RG, WS), None)
    assert not fake.violations, fake.violations


async def get(jp_fetch, *path, **params):
    r = await jp_fetch("aml", "api", *path, params=params or None)
    return json.loads(r.body)


async def test_the_sidebar_routes_answer_from_the_azure_workspace(jp_fetch, azure_project):
    fake = azure_project
    ws = await get(jp_fetch, "workspace")
    assert ws["backend"] == "azure" and ws["name"] == WS
    assert [c["name"] for c in (await get(jp_fetch, "computes"))["computes"]] == ["compute123", "compute1234"]
    runs = await get(jp_fetch, "runs", limit="5")
    assert runs["runs"] and all(r["status"] for r in runs["runs"])
    models = await get(jp_fetch, "models")
    assert isinstance(models["models"], list)
    services = await get(jp_fetch, "deployments")
    assert isinstance(services["deployments"], list)
    operations = {c.operation for c in fake.calls}
    assert {"Workspaces_Get", "Compute_List", "Jobs_List", "ModelContainers_List", "OnlineEndpoints_List"} <= operations
    text = json.dumps([ws, runs, models, services])
    assert fake.token not in text


async def test_an_azure_error_is_one_clear_json_error(jp_fetch, azure_project):
    fake = azure_project
    fake.overrides["Jobs_List"] = lambda call, status, body: (403, {"error": {
        "code": "AuthorizationFailed", "message": "no access to the workspace"}})
    with pytest.raises(HTTPClientError) as info:
        await get(jp_fetch, "runs")
    body = json.loads(info.value.response.body)
    assert info.value.code == 403 and "AuthorizationFailed" in body["message"] and "Traceback" not in body["message"]
    assert fake.token not in json.dumps(body)
