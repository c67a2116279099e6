"""``azureml.core.model``, ``azureml.core.webservice`` and ``azureml.core.image``: registering and deploying.

``Model.deploy(ws, name, [model], inference_config, deployment_config)`` is ``client.deployments.create``: a
scoring service of ours (on 127.0.0.1 locally; a managed online endpoint on Azure ML). The deployment
configuration's kind is kept for what it means to a v1 user: an ACI service has key auth off unless
``auth_enabled=True`` (as ACI), a local web service none, an AKS one on by default — every one binds 127.0.0.1
here. The 2019 workshop's ``ContainerImage.image_configuration`` + ``Webservice.deploy_from_model`` is the same
deploy."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..core.errors import InvalidInput, NotFound, NotSupported
from ..core.operations import parse_model_ref
from ..core.services import Webservice as _CoreWebservice
from ..core.workspace import Model as _CoreModel
from . import V1Names, client_of, note_once, unknown_settings
from .exceptions import WebserviceException

__all__ = ["Model", "InferenceConfig", "Webservice", "AciWebservice", "LocalWebservice", "AksWebservice",
           "ContainerImage", "Image", "AciServiceDeploymentConfiguration", "LocalWebserviceDeploymentConfiguration"]


class Model(V1Names, _CoreModel):
    """v1's ``Model``: ``Model(ws, name, version=...)``, ``Model.register``, ``Model.deploy``,
    ``Model.get_model_path`` (in a scoring service: the deployed copy)."""

    def __init__(self, workspace: Any, name: str | None = None, id: str | None = None, tags: Any = None,
                 properties: Any = None, version: int | None = None, run_id: str | None = None, **other: Any):
        unknown_settings("Model", Model.__init__, other)
        if name is None and id:
            name, _, v = str(id).partition(":")
            version = v if v and version is None else version
        if not name:
            raise InvalidInput("Model(ws, name=...): give the registered model's name (or id='name:version')")
        if version is not None:  # a whole number, or one clear line (not int()'s ValueError)
            name, version = parse_model_ref(name, version)
        super().__init__(workspace, name, version)

    @classmethod
    def register(cls, workspace: Any, model_path: str, model_name: str, tags: dict | None = None,
                 properties: dict | None = None, description: str | None = None, datasets: Any = None,
                 model_framework: str | None = None, model_framework_version: str | None = None,
                 child_paths: Any = None, sample_input_dataset: Any = None, sample_output_dataset: Any = None,
                 resource_configuration: Any = None, **other: Any) -> "Model":
        unknown_settings("Model.register", Model.register, other)
        info = workspace.client.models.register(model_name, model_path, tags=tags, properties=properties,
                                                description=description)
        return cls._from_info(workspace, info)

    @classmethod
    def _from_info(cls, workspace: Any, info: Any) -> "Model":
        model = cls.__new__(cls)
        model.workspace, model._client, model._info = workspace, workspace.client, info
        return model

    @classmethod
    def list(cls, workspace: Any, name: str | None = None, tags: Any = None, properties: Any = None,
             run_id: str | None = None, latest: bool = False, **other: Any) -> list["Model"]:
        unknown_settings("Model.list", Model.list, other)
        client = client_of(workspace, "Model.list(workspace)")
        models = [cls._from_info(workspace, m) for m in client.models.list(name=name, tags=tags, run_id=run_id)]
        if latest:
            newest: dict[str, Model] = {}
            for m in models:
                if m.name not in newest or m.version > newest[m.name].version:
                    newest[m.name] = m
            models = list(newest.values())
        return models

    @staticmethod
    def deploy(workspace: Any, name: str, models: list, inference_config: "InferenceConfig | None" = None,
               deployment_config: Any = None, deployment_target: Any = None, overwrite: bool = False,
               show_output: bool = False) -> "Webservice":
        return _deploy(workspace, name, models, inference_config, deployment_config, overwrite)

    @staticmethod
    def package(*args: Any, **kwargs: Any):
        raise NotSupported("Model.package(): build a service's image with `%aml deploy … --image` (Docker)")

    def serialize(self) -> dict:
        return {"name": self.name, "version": self.version, "id": f"{self.name}:{self.version}", "tags": self.tags,
                "properties": self.properties, "runId": self.run_id, "description": self.description}


class InferenceConfig:
    """``InferenceConfig(entry_script, source_directory, environment)`` — or the older ``runtime="python"`` +
    ``conda_file``."""

    def __init__(self, entry_script: str | None = None, runtime: str | None = None, conda_file: str | None = None,
                 extra_docker_file_steps: Any = None, source_directory: str | None = None,
                 enable_gpu: Any = None, description: str | None = None, base_image: Any = None,
                 base_image_registry: Any = None, cuda_version: Any = None, environment: Any = None):
        if not entry_script:
            raise InvalidInput("InferenceConfig(entry_script='score.py', …): the scoring script is required")
        self.entry_script, self.source_directory = entry_script, source_directory
        self.score_path()  # a missing script is said here, where it was named, not at the deploy
        self.environment = environment
        if environment is None and conda_file:
            from .environment import Environment

            folder = Path(source_directory or ".")
            self.environment = Environment.from_conda_specification("inference-env", str(folder / conda_file))

    def score_path(self) -> Path:
        from ..core import checks

        if not isinstance(self.entry_script, (str, os.PathLike)):
            raise InvalidInput("InferenceConfig: entry_script must be a file name, got "
                               f"{checks.shown(self.entry_script)}")
        if self.source_directory is not None and not isinstance(self.source_directory, (str, os.PathLike)):
            raise InvalidInput("InferenceConfig: source_directory must be a folder name, got "
                               f"{checks.shown(self.source_directory)}")
        path = Path(self.source_directory or ".") / self.entry_script
        if checks.path_kind("InferenceConfig: the scoring script", path) != "file":
            raise InvalidInput(f"InferenceConfig: no scoring script {checks.shown(str(path), 120)}: write it first "
                               "(with %%writefile) or fix entry_script / source_directory")
        return path


def _checked(kind: str, **values: Any) -> None:
    """A deploy configuration's numbers and switches: positive numbers, True/False (a string like "false" would
    read as true) — else one line now, not at deploy time."""
    from ..core import checks

    for name, value in values.items():
        if value is None:
            continue
        if not name.endswith("_enabled"):
            checks.positive(f"{kind}.deploy_configuration: {name}", value)
        elif not isinstance(value, bool):
            raise InvalidInput(f"{kind}.deploy_configuration({name}={value!r}): give True or False")


class _DeploymentConfiguration:
    def __init__(self, kind: str, auth: bool, port: int | None = None, **settings: Any):
        self.kind, self.auth_enabled, self.port, self.settings = kind, auth, port, settings
        self.tags = settings.get("tags") or {}
        self.description = settings.get("description")


AciServiceDeploymentConfiguration = LocalWebserviceDeploymentConfiguration = _DeploymentConfiguration


class Webservice(V1Names, _CoreWebservice):
    """A deployed service with v1's names: ``state``, ``scoring_uri``, ``swagger_uri``, ``run``, ``get_keys``,
    ``get_logs``, ``update``, ``delete``, ``wait_for_deployment``. ``Webservice(ws, name)`` finds one."""

    def __init__(self, workspace: Any, name: str):
        super().__init__(workspace.client, name)
        self.workspace = workspace
        try:
            self.info
        except NotFound:
            raise WebserviceException(f"WebserviceNotFound: no service {name!r} in workspace {workspace.name!r}; "
                                      "deploy one with Model.deploy(...)") from None

    @classmethod
    def _wrap(cls, workspace: Any, name: str) -> "Webservice":
        service = cls.__new__(cls)
        _CoreWebservice.__init__(service, workspace.client, name)
        service.workspace = workspace
        return service

    compute_type = property(lambda self: "ACI" if self.client_is_remote() else "Local")
    auth_enabled = property(lambda self: bool(self.info.auth))

    def client_is_remote(self) -> bool:
        return bool(self._client.capabilities.remote)

    def wait_for_deployment(self, show_output: bool = False, timeout_sec: float | None = None) -> str:
        state = self.state
        if show_output:
            print(f"{self.name}: {state} at {self.scoring_uri}")
        if state not in ("Healthy",):
            raise WebserviceException(f"service {self.name} is {state}: service.get_logs() says why")
        return state

    def get_logs(self, num_lines: int = 5000, init: bool = False) -> str:
        return super().get_logs(tail=num_lines)

    def update(self, models: list | None = None, inference_config: "InferenceConfig | None" = None,
               auth_enabled: bool | None = None, **other: Any) -> "Webservice":
        unknown_settings("Webservice.update", Webservice.update, other)
        refs = [_ref(m) for m in models] if models else None
        score = str(inference_config.score_path()) if inference_config is not None else None
        self._client.deployments.create(self.name, refs or self.models, score=score, update=True,
                                        **({"auth": auth_enabled} if auth_enabled is not None else {}))
        return self

    def serialize(self) -> dict:
        info = self.info
        return {"name": self.name, "state": info.state, "scoringUri": info.scoring_uri,
                "swaggerUri": info.swagger_uri, "models": list(info.models), "authEnabled": bool(info.auth)}

    @staticmethod
    def list(workspace: Any, compute_type: str | None = None, **_ignored: Any) -> list["Webservice"]:
        client_of(workspace, "Webservice.list(workspace)")
        return list(workspace.webservices.values())

    @staticmethod
    def deploy_from_model(workspace: Any, name: str, models: list, image_config: "ContainerImage",
                          deployment_config: Any = None, deployment_target: Any = None,
                          overwrite: bool = False) -> "Webservice":
        """The 2019 workshop's way: an image configuration (execution_script, conda_file) and the models."""
        return _deploy(workspace, name, models, image_config._inference_config(), deployment_config, overwrite)


class AciWebservice(Webservice):
    @staticmethod
    def deploy_configuration(cpu_cores: float | None = None, memory_gb: float | None = None, tags: dict | None = None,
                             properties: dict | None = None, description: str | None = None,
                             location: str | None = None, auth_enabled: bool | None = None,
                             ssl_enabled: bool | None = None, enable_app_insights: bool | None = None,
                             **settings: Any) -> _DeploymentConfiguration:
        """ACI semantics: key auth only with ``auth_enabled=True`` (off by default, as on ACI)."""
        unknown_settings("AciWebservice.deploy_configuration", AciWebservice.deploy_configuration, settings)
        _checked("AciWebservice", cpu_cores=cpu_cores, memory_gb=memory_gb, auth_enabled=auth_enabled,
                 ssl_enabled=ssl_enabled, enable_app_insights=enable_app_insights)
        return _DeploymentConfiguration("aci", bool(auth_enabled), tags=tags, description=description,
                                        cpu_cores=cpu_cores, memory_gb=memory_gb)


class LocalWebservice(Webservice):
    @staticmethod
    def deploy_configuration(port: int | None = None) -> _DeploymentConfiguration:
        if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536):
            raise InvalidInput(f"LocalWebservice.deploy_configuration(port={port!r}): a port number 1–65535")
        return _DeploymentConfiguration("local", False, port=port)


class AksWebservice(Webservice):
    @staticmethod
    def deploy_configuration(autoscale_enabled: bool | None = None, cpu_cores: float | None = None,
                             memory_gb: float | None = None, auth_enabled: bool | None = None,
                             tags: dict | None = None, description: str | None = None,
                             **settings: Any) -> _DeploymentConfiguration:
        unknown_settings("AksWebservice.deploy_configuration", AksWebservice.deploy_configuration, settings)
        note_once("aks", "an AKS deployment configuration makes a scoring service like any other here (no "
                         "Kubernetes cluster): key auth on unless auth_enabled=False, as on AKS")
        _checked("AksWebservice", cpu_cores=cpu_cores, memory_gb=memory_gb, auth_enabled=auth_enabled,
                 autoscale_enabled=autoscale_enabled)
        return _DeploymentConfiguration("aks", True if auth_enabled is None else bool(auth_enabled), tags=tags,
                                        description=description)


class ContainerImage:
    """The 2019 workshop's ``ContainerImage.image_configuration(execution_script, runtime, conda_file)``."""

    def __init__(self, execution_script: str, conda_file: str | None = None, **settings: Any):
        self.execution_script, self.conda_file, self.settings = execution_script, conda_file, settings

    @staticmethod
    def image_configuration(execution_script: str, runtime: str = "python", conda_file: str | None = None,
                            docker_file: str | None = None, schema_file: str | None = None,
                            dependencies: list | None = None, enable_gpu: bool | None = None,
                            tags: dict | None = None, description: str | None = None,
                            **settings: Any) -> "ContainerImage":
        if runtime not in ("python", "python-slim"):
            raise InvalidInput(f"image_configuration(runtime={runtime!r}): the runtime is 'python'")
        return ContainerImage(execution_script, conda_file, tags=tags, description=description)

    def _inference_config(self) -> InferenceConfig:
        return InferenceConfig(entry_script=self.execution_script, conda_file=self.conda_file)


Image = ContainerImage


def _ref(model: Any) -> str:
    if isinstance(model, _CoreModel) or (hasattr(model, "name") and hasattr(model, "version")
                                         and not isinstance(model, str)):
        return f"{model.name}:{model.version}"
    if isinstance(model, str) and model.strip():
        return model
    raise InvalidInput(f"models=[…] takes Model objects (or 'name:version'), not {type(model).__name__}")


def _deploy(workspace: Any, name: str, models: list, inference_config: Any, deployment_config: Any,
            overwrite: bool) -> Webservice:
    from .environment import environment_ref

    if not isinstance(models, (list, tuple)) or not models:
        raise InvalidInput("Model.deploy(ws, name, models=[model], …): give the registered models as a list")
    refs = [_ref(m) for m in models]
    config = deployment_config or _DeploymentConfiguration("aci", False)
    if not isinstance(config, _DeploymentConfiguration):
        raise InvalidInput("deployment_config comes from AciWebservice.deploy_configuration(…) or "
                           "LocalWebservice.deploy_configuration(…)")
    client = workspace.client
    score = inference_config.score_path() if inference_config is not None else None
    environment = environment_ref(client, inference_config.environment) if inference_config is not None else None
    exists = name in {s.name for s in client.deployments.list()}
    if exists and not overwrite:
        raise WebserviceException(f"a service named {name!r} exists; pass overwrite=True to replace it, or "
                                  "service.update(...)")
    auth = config.auth_enabled
    if not auth and "--no-auth" in client.capabilities.not_supported:
        note_once("aci-auth", "Azure ML online endpoints always need a key: this service keeps key auth on "
                              "(service.get_keys(); service.run() sends the key)")
        auth = True
    if exists and config.port is not None and client.deployments.get_info(name).port != config.port:
        client.deployments.delete(name)  # overwrite=True on another port: replaced (an update keeps its socket)
        exists = False
    client.deployments.create(name, refs, score=score, auth=auth, port=config.port, update=exists,
                              environment=environment)
    return Webservice._wrap(workspace, name)
