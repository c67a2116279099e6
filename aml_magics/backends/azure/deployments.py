"""Managed online endpoints of an Azure ML workspace: one deployment ("blue") each, all traffic to it."""
from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...core.contract import DeploymentsBackend, not_supported
from ...core.errors import InvalidInput, NotFound
from ...core.types import DeploymentInfo
from . import ops
from .convert import ENDPOINT_STATES

if TYPE_CHECKING:  # pragma: no cover
    from .backend import AzureBackend


class AzureDeployments(DeploymentsBackend):
    """Managed online endpoints, one deployment ("blue") each, all traffic to it."""

    DEPLOYMENT = "blue"

    def __init__(self, backend: "AzureBackend"):
        self.b = backend
        self.base = f"{backend.ws.path}/onlineEndpoints"

    def _info(self, body: dict, models: list[str] | None = None) -> DeploymentInfo:
        props = body.get("properties") or {}
        state = ENDPOINT_STATES.get(props.get("provisioningState") or "", "Transitioning")
        return DeploymentInfo(name=body.get("name", "?"), state=state, scoring_uri=props.get("scoringUri") or "",
                              models=models or [], host="azure", port=443,
                              auth=True,
                              error=None if state != "Failed" else f"provisioning {props.get('provisioningState')}")

    def deploy(self, name: str, models: list, score_path: Path | None, *, host: str = "", port=None, auth: bool = True,
               update: bool = False, timeout: float = 0, request_timeout_s: float = 60.0,
               max_body_bytes: int = 100 * 1024 * 1024, environment: str | None = None,
               instance_type: str | None = None, workers: int | None = None):
        if not re.fullmatch(r"[a-zA-Z][a-zA-Z0-9-]{1,30}[a-zA-Z0-9]", name or ""):
            raise InvalidInput(f"endpoint name {name!r}: 3-32 letters, digits and '-', starting with a letter")
        if not auth:
            raise InvalidInput("Azure endpoints always need a key here (--no-auth is for the local workspace)")
        infos = [self.b.models.get(m, v) for m, v in models]
        if len(infos) != 1:
            raise InvalidInput("an Azure online deployment serves one model")
        model = infos[0]
        location = ops.workspace(self.b.arm, self.b.ws).get("location") or "westeurope"
        # read, modify, write (as Microsoft's SDK does): an existing endpoint keeps its identity, tags, auth mode and
        # the traffic of its other deployments; a new one is created with key auth before its deployment
        try:
            current = self.b.arm.get(f"{self.base}/{name}")
        except NotFound:
            current = None
        if current is None:  # as Microsoft's SDK creates one: key auth, a system-assigned identity
            self.b.arm.put(f"{self.base}/{name}", {"location": location, "identity": {"type": "SystemAssigned"},
                                                   "properties": {"authMode": "Key"}})
        elif instance_type is None or workers is None:
            # an update keeps the deployment's VM size and workers unless given (it resized to Standard_DS3_v2
            # and went back to one worker)
            try:
                was = self.b.arm.get(f"{self.base}/{name}/deployments/{self.DEPLOYMENT}").get("properties") or {}
            except NotFound:
                was = {}
            instance_type = instance_type or was.get("instanceType")
            if workers is None:
                count = str((was.get("environmentVariables") or {}).get("WORKER_COUNT") or "1")
                workers = int(count) if count.isdigit() else 1
        instance_type = instance_type or "Standard_DS3_v2"
        workers = workers or 1
        props: dict[str, Any] = {
            "endpointComputeType": "Managed", "instanceType": instance_type,
            "model": f"{self.b.ws.path}/models/{model.name}/versions/{model.version}",
            "scaleSettings": {"scaleType": "Default"},
        }
        if workers != 1:  # Azure ML's inference server starts this many worker processes per instance
            props["environmentVariables"] = {"WORKER_COUNT": str(workers)}
        generated = None
        if score_path is None:
            # a .pkl registered as custom_model needs code and an environment on a managed online endpoint:
            # send the generated default scorer (self-contained: Azure's container has no aml-magics)
            from ...scoring.default_scorer import azure_default_score_py

            from ...core.frameworks import PICKLE_SUFFIXES

            framework = model.properties.get("framework") or (  # a job's output registered unseen: its suffix
                "scikit-learn" if model.path.lower().rstrip("/").endswith(tuple(PICKLE_SUFFIXES)) else None)
            source = azure_default_score_py(framework, model.name, model.version)
            if source is None:
                raise InvalidInput(f"model {model.name}:{model.version} ({model.framework or 'unknown framework'}) "
                                   "has no default scorer on Azure; give one with --score score.py")
            generated = tempfile.TemporaryDirectory(prefix="aml-score-")
            score_path = Path(generated.name) / "score.py"
            score_path.write_text(source, encoding="utf-8")
        try:
            code_id = ops.upload_code(self.b.arm, self.b.ws, [(Path(score_path), "score.py")])
        finally:
            if generated is not None:
                generated.cleanup()
        props["codeConfiguration"] = {"codeId": code_id, "scoringScript": "score.py"}
        props["environmentId"] = self.b.environments.environment_id(environment)
        self.b.arm.put(f"{self.base}/{name}/deployments/{self.DEPLOYMENT}",
                       {"location": location, "sku": {"name": "Default", "capacity": 1}, "properties": props})
        if current is None:
            current = self.b.arm.get(f"{self.base}/{name}")
        self.b.arm.put(f"{self.base}/{name}", endpoint_with_traffic(current, location, self.DEPLOYMENT))
        return self.get(name)

    def get(self, name: str) -> DeploymentInfo:
        return self._info(self.b.arm.get(f"{self.base}/{name}"))

    def list(self) -> list[DeploymentInfo]:
        return [self._info(e) for e in self.b.arm.list_all(self.base)]

    def keys(self, name: str) -> tuple[str, str]:
        body = self.b.arm.post(f"{self.base}/{name}/listKeys")
        return body.get("primaryKey", ""), body.get("secondaryKey", "")

    def regenerate_key(self, name: str, which: str) -> None:
        self.b.arm.post(f"{self.base}/{name}/regenerateKeys", {"keyType": which.capitalize()}, wait=True)

    def logs(self, name: str, tail: int | None = None) -> str:
        body = self.b.arm.post(f"{self.base}/{name}/deployments/{self.DEPLOYMENT}/getLogs",
                               {"containerType": "InferenceServer", "tail": int(tail or 200)})
        return body.get("content", "")

    def delete(self, name: str, timeout: float = 0) -> None:
        self.b.arm.delete(f"{self.base}/{name}")

    def build_image(self, name: str) -> str:
        raise not_supported(self.b.capabilities, "building an image here")


#: what the service sets on an endpoint (never sent back) and what is never echoed (its keys)
ENDPOINT_READ_ONLY = frozenset({"scoringUri", "swaggerUri", "provisioningState", "keys"})


def endpoint_with_traffic(current: dict, location: str, deployment: str) -> dict:
    """The endpoint as it is (location, tags, kind, sku, identity, description, properties, auth mode), with all
    traffic on ``deployment``: the other deployments stay listed, at 0 %."""
    body: dict[str, Any] = {"location": current.get("location") or location}
    for key in ("tags", "kind", "sku"):
        if current.get(key):
            body[key] = current[key]
    identity = current.get("identity") or {}
    if identity.get("type"):  # the service fills in principal and client ids: send only what is chosen
        body["identity"] = {"type": identity["type"]}
        if identity.get("userAssignedIdentities"):
            body["identity"]["userAssignedIdentities"] = {k: {} for k in identity["userAssignedIdentities"]}
    props = {k: v for k, v in (current.get("properties") or {}).items() if k not in ENDPOINT_READ_ONLY}
    props.setdefault("authMode", "Key")
    props["traffic"] = {**{k: 0 for k in (props.get("traffic") or {})}, deployment: 100}
    body["properties"] = props
    return body
