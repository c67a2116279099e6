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


#: the name the generated default scorer is uploaded under: an update without --score makes it again for the new model,
#: where a user's own scoring script is kept
GENERATED_SCRIPT = "aml_magics_score.py"


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
        was: dict[str, Any] = {}  # the deployment as it is, on an update
        if current is None:  # as Microsoft's SDK creates one: key auth, a system-assigned identity
            self.b.arm.put(f"{self.base}/{name}", {"location": location, "identity": {"type": "SystemAssigned"},
                                                   "properties": {"authMode": "Key"}})
        else:
            try:
                was = self.b.arm.get(f"{self.base}/{name}/deployments/{self.DEPLOYMENT}")
            except NotFound:
                was = {}
        # read, modify, write: an update changes what it is given and keeps the rest — its VM size, workers and
        # instance count (it resized to Standard_DS3_v2, one worker, one instance), the user's own score.py and
        # environment (replaced by the generated scorer and the curated environment), the settings made in the
        # studio (request timeouts, probes, environment variables)
        props: dict[str, Any] = {k: v for k, v in (was.get("properties") or {}).items() if k != "provisioningState"}
        instance_type = instance_type or props.get("instanceType") or "Standard_DS3_v2"
        variables = dict(props.get("environmentVariables") or {})
        if workers is None:
            count = str(variables.get("WORKER_COUNT") or "1")
            workers = int(count) if count.isdigit() else 1
        if workers != 1:  # Azure ML's inference server starts this many worker processes per instance
            variables["WORKER_COUNT"] = str(workers)
        else:
            variables.pop("WORKER_COUNT", None)
        props.pop("environmentVariables", None)
        if variables:
            props["environmentVariables"] = variables
        props.update({"endpointComputeType": props.get("endpointComputeType") or "Managed",
                      "instanceType": instance_type,
                      "model": f"{self.b.ws.path}/models/{model.name}/versions/{model.version}"})
        props.setdefault("scaleSettings", {"scaleType": "Default"})
        kept_code = props.get("codeConfiguration") or {}
        if score_path is None and kept_code.get("codeId") and kept_code.get("scoringScript") != GENERATED_SCRIPT:
            pass  # the user's own scoring script stays, as locally (a generated one is made again for the new model)
        else:
            props["codeConfiguration"] = self._upload_score(model, score_path)
        if environment is not None or not props.get("environmentId"):
            props["environmentId"] = self.b.environments.environment_id(environment)
        body: dict[str, Any] = {"location": location, "sku": was.get("sku") or {"name": "Default", "capacity": 1},
                                "properties": props}
        for key in ("tags", "kind"):
            if was.get(key):
                body[key] = was[key]
        self.b.arm.put(f"{self.base}/{name}/deployments/{self.DEPLOYMENT}", body)
        if current is None:
            current = self.b.arm.get(f"{self.base}/{name}")
        self.b.arm.put(f"{self.base}/{name}", endpoint_with_traffic(current, location, self.DEPLOYMENT))
        return self.get(name)

    def _upload_score(self, model, score_path: Path | None) -> dict:
        """The codeConfiguration of ``score_path`` — or, without one, of the generated default scorer for ``model``
        (a .pkl registered as custom_model needs code and an environment on a managed online endpoint; the scorer is
        self-contained: Azure's container has no aml-magics), uploaded as GENERATED_SCRIPT so an update knows it."""
        generated = None
        script = "score.py"
        if score_path is None:
            from ...scoring.default_scorer import azure_default_score_py

            from ...core.frameworks import PICKLE_SUFFIXES

            framework = model.properties.get("framework") or (  # a job's output registered unseen: its suffix
                "scikit-learn" if model.path.lower().rstrip("/").endswith(tuple(PICKLE_SUFFIXES)) else None)
            source = azure_default_score_py(framework, model.name, model.version)
            if source is None:
                raise InvalidInput(f"model {model.name}:{model.version} ({model.framework or 'unknown framework'}) "
                                   "has no default scorer on Azure; give one with --score score.py")
            generated = tempfile.TemporaryDirectory(prefix="aml-score-")
            script = GENERATED_SCRIPT
            score_path = Path(generated.name) / script
            score_path.write_text(source, encoding="utf-8")
        try:
            code_id = ops.upload_code(self.b.arm, self.b.ws, [(Path(score_path), script)])
        finally:
            if generated is not None:
                generated.cleanup()
        return {"codeId": code_id, "scoringScript": script}

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
