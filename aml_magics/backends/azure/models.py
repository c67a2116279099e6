"""The model registry of an Azure ML workspace: versions of job outputs (no upload) or of local files uploaded to
the default datastore under ``LocalUpload/<content hash>/`` (as Azure ML's own clients do)."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...core import checks
from ...core.contract import ModelsBackend
from ...core.errors import InvalidInput, NotFound
from ...core.names import check_model_name
from ...core.types import ModelInfo
from ..common.models import files_to_register
from . import ops
from .convert import timestamp

if TYPE_CHECKING:  # pragma: no cover
    from .backend import AzureBackend


class AzureModels(ModelsBackend):
    def __init__(self, backend: "AzureBackend"):
        self.b = backend

    def _info(self, body: dict, name: str | None = None) -> ModelInfo:
        props = body.get("properties") or {}
        version = body.get("name", "0")
        return ModelInfo(name=name or body.get("id", "").split("/models/")[-1].split("/")[0] or "?",
                         version=checks.digits(version) or 0, path=props.get("modelUri") or "",
                         framework=(props.get("properties") or {}).get("framework") or props.get("modelType"),
                         description=props.get("description"),
                         run_id=props.get("jobName"), created=timestamp((body.get("systemData") or {}).get("createdAt")),
                         tags=dict(props.get("tags") or {}), properties=dict(props.get("properties") or {}))

    def _versions(self, name: str) -> list[ModelInfo]:
        items = self.b.arm.list_all(f"{self.b.ws.path}/models/{name}/versions")
        return sorted((self._info(v, name) for v in items), key=lambda m: m.version)

    def _next_version(self, name: str) -> int:
        return ops.next_version(self.b.arm, f"{self.b.ws.path}/models/{name}",
                                lambda: [m.version for m in self._versions(name)])

    def _put(self, name: str, version: int, props: dict) -> ModelInfo:
        result = self.b.arm.put(f"{self.b.ws.path}/models/{name}/versions/{version}", {"properties": props})
        return replace(self._info(result, name), version=version)  # the version we wrote

    def register_from_run(self, run_id: str, name: str, path: str, *, tags=None, properties=None,
                          description=None) -> ModelInfo:
        """A version whose files are the job's output (no upload): azureml://jobs/JOB/outputs/artifacts/paths/…"""
        check_model_name(name)
        path = path.strip("/")
        if ".." in path.split("/"):
            raise InvalidInput(f"{path}: the path must stay inside the job's outputs")
        props = {"modelUri": f"azureml://jobs/{run_id}/outputs/artifacts/paths/{path}",
                 "modelType": "custom_model", "jobName": run_id,
                 "tags": {k: str(v) for k, v in (tags or {}).items()},
                 "properties": {k: str(v) for k, v in (properties or {}).items()}}
        if description:
            props["description"] = description
        return self._put(name, self._next_version(name), props)

    def register(self, name: str, source: Path, *, tags=None, properties=None, description=None,
                 run_id: str | None = None) -> ModelInfo:
        """A local file or folder: uploaded to the default datastore under ``LocalUpload/<content hash>/`` (the
        same content is not sent twice), then a model version points at it."""
        from ...core.frameworks import detect_framework

        source = Path(source)
        files = files_to_register(name, source)
        prefix = f"LocalUpload/{ops.content_digest(files)}/{source.name}"
        store, container = self.b.datastores.default_container()
        present = {n for n, _ in container.list(prefix + ("/" if source.is_dir() else ""))}
        for path, rel in files:
            blob = prefix if source.is_file() else f"{prefix}/{rel}"
            if blob not in present:
                container.put_file(blob, path)  # a block at a time: a large model is never read whole
        framework = detect_framework(source)
        props = {"modelUri": f"azureml://datastores/{store}/paths/{prefix}" + ("/" if source.is_dir() else ""),
                 "modelType": "mlflow_model" if framework == "mlflow" else "custom_model",
                 "tags": {k: str(v) for k, v in (tags or {}).items()},
                 "properties": {**({"framework": framework} if framework else {}),
                                **{k: str(v) for k, v in (properties or {}).items()}}}
        if description:
            props["description"] = description
        return self._put(name, self._next_version(name), props)

    def add_tags(self, name: str, version: int, tags: dict[str, Any]) -> ModelInfo:
        """Tags of a version are mutable: the version is read and written back with the tags merged."""
        body = self.b.arm.get(f"{self.b.ws.path}/models/{name}/versions/{version}")
        current = body.get("properties") or {}
        props = {k: current[k] for k in ("modelUri", "modelType", "description", "jobName", "properties", "flavors")
                 if current.get(k) is not None}
        props["tags"] = {**(current.get("tags") or {}), **{k: str(v) for k, v in tags.items()}}
        return self._put(name, int(version), props)

    def get(self, name: str, version: int | None = None) -> ModelInfo:
        if version is not None:
            body = self.b.arm.get(f"{self.b.ws.path}/models/{name}/versions/{version}")
            return replace(self._info(body, name), version=int(version))
        versions = self._versions(name)
        if not versions:
            raise NotFound(f"model {name!r} has no versions")
        return versions[-1]

    def list(self, name: str | None = None, run_id: str | None = None, limit: int | None = None,
             offset: int = 0) -> list[ModelInfo]:
        if name:
            infos = self._versions(name)
        else:
            infos = ops.latest_versions(self.b.arm, f"{self.b.ws.path}/models", self.get)
        if run_id:
            infos = [m for m in infos if m.run_id == run_id]
        return infos[offset:offset + limit] if limit else infos[offset:]
