"""What an Azure workspace needs to work from here: sign-in, computes, the MLflow endpoint, the default datastore.
Each check says what is wrong in one line; nothing is changed."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ...core.contract import DoctorBackend
from ...core.errors import AmlError, InvalidInput, NotFound
from ..common.doctor import DoctorReport
from . import ops

if TYPE_CHECKING:  # pragma: no cover
    from .backend import AzureBackend


class AzureDoctor(DoctorBackend):
    def __init__(self, backend: "AzureBackend"):
        self.b = backend

    def check(self, recover: bool = False) -> DoctorReport:
        b = self.b
        report = DoctorReport(f"azure {b.ws.workspace_name} ({b.ws.resource_group})")

        def check(name: str, fn) -> None:
            try:
                report.add(name, "ok", fn() or "")
            except AmlError as exc:
                report.add(name, "problem", str(exc))

        def workspace():
            return f"found, in {ops.workspace(b.arm, b.ws).get('location', '?')}"

        def computes():
            found = b.computes.list()
            if not found:
                raise InvalidInput("no compute targets: create one with %aml compute create NAME --max-concurrent N")
            return ", ".join(f"{c.name} ({c.max_concurrent} node(s))" for c in found)

        def mlflow():
            if not b.mlflow_available():
                raise AmlError("the workspace reports no MLflow tracking URI: metrics cannot be read")
            try:
                b.mlflow().experiment_id("Default", create=False)
            except NotFound:
                pass  # answered: the endpoint works
            return "reachable"

        def datastore():
            store, container = b.datastores.default_container()
            container.list("aml-magics/")
            return f"{store}: readable with the workspace's credentials"

        for name, fn in (("sign-in and workspace", workspace), ("compute targets", computes),
                         ("MLflow tracking endpoint", mlflow), ("default datastore", datastore)):
            check(name, fn)
        return report
