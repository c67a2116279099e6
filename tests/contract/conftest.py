"""One behaviour suite for every backend: each test here runs on the local workspace and on the azure backend
(Microsoft's REST contract, answered by the contract-checking fake with Microsoft's examples; blobs in Azurite;
metrics in a real MLflow tracking server). What a backend declares unsupported (``capabilities.not_supported``)
is skipped with its reason, visibly: ``pytest -rs tests/contract`` lists them."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from aml_magics.core.client import Client
from tests.azure.conftest import mlflow_server  # noqa: F401 - fixture: MLflow's tracking server on loopback
from tests.azure.contract import FakeArm, Spec
from tests.azure.test_blob_azurite import ACCOUNT, KEY, _container, azurite  # noqa: F401 - Azurite fixture
from tests.azure.test_rest_contract import StaticToken

BACKENDS = ["local", "azure"]


@dataclass
class Case:
    kind: str
    client: Client
    compute: str  # a compute target runs can be submitted to
    fake: Any = None  # the Azure contract fake (its calls and violations)

    def requests(self) -> int:
        """Requests the backend's service has seen so far (the local workspace has none to count)."""
        return len(self.fake.calls) + self.fake.blob_requests if self.fake is not None else 0

    def require(self, operation: str) -> None:
        """Skip, saying why, when this backend declares ``operation`` unsupported."""
        caps = self.client.capabilities
        if operation in caps.not_supported:
            pytest.skip(f"{self.kind}: {operation} is not supported {caps.where} ({caps.not_supported[operation]})")


@pytest.fixture(scope="module")
def spec():
    return Spec()


@pytest.fixture(params=BACKENDS)
def case(request, workspace, spec):
    if request.param == "local":
        client = Client.shared()
        client.computes.create("cpu", 2)
        yield Case("local", client, "cpu")
        return
    azurite_url = request.getfixturevalue("azurite")
    mlflow_url = request.getfixturevalue("mlflow_server")
    fake = FakeArm(spec=spec).snapshots_here().datastore_key(KEY)
    _container(azurite_url)  # the example datastore's container ("string")
    try:
        client = Client.connect("00000000-1111-2222-3333-444444444444", "my-rg", "contract-ws",
                                credential=StaticToken(fake.token), base_url=fake.base_url, mlflow_uri=mlflow_url,
                                storage=(azurite_url, ACCOUNT))
        client.backend.arm._sleep = lambda s: None
        yield Case("azure", client, "cpu-cluster", fake)
    finally:
        fake.close()
    assert not fake.violations, "requests broke Microsoft's contract:\n" + "\n".join(fake.violations)
