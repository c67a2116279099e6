"""The azure backend: the same contract over an Azure ML workspace (ARM REST + MLflow REST).

Wiring only: sign-in (``auth.py``), the ARM client (``rest.py``), the workspace's MLflow endpoint, the capabilities,
and one object per ``Client`` operation group — ``runs`` (``jobs.py``: command, sweep and AutoML jobs; their logs and
files in ``artifacts.py``), ``experiments``/``computes`` (``computes.py``), ``datastores`` (blob containers, ``blob.py``),
``models``, ``deployments`` (managed online endpoints), ``environments`` and ``doctor``. Request bodies are built in
``ops.py`` and ``commands.py``; answers read in ``convert.py``.
"""
from __future__ import annotations

import time
from typing import Any, Callable

from ...core.config import WorkspaceConfig
from ...core.contract import Backend, Capabilities
from ...core.errors import AmlError
from ...core.types import WorkspaceInfo
from . import ops
from .batch_endpoints import AzureBatchEndpoints
from .computes import AzureComputes, AzureExperiments

from .datastores import AzureDatastores
from .deployments import AzureDeployments
from .doctor import AzureDoctor
from .environments import AzureEnvironments
from .jobs import AzureRuns
from .models import AzureModels
from .rest import ArmClient, WorkspaceRef

# credentials stay in this process's memory, per workspace, never in a config or on disk
_signed_in: dict[tuple[str, str, str], dict] = {}


def capabilities(ws: WorkspaceRef) -> Capabilities:
    return Capabilities(
        where=f"on Azure ML workspace {ws.workspace_name!r}", remote=True, pace=(2.0, 10.0), default_compute_size=4,
        deploy_target="azure", instance_types=True, automl_model="best_child", inputs_readable_here=False,
        not_supported={
            "resuming a sweep or AutoML run": "on an Azure workspace the service runs sweeps and AutoML itself, so "
                                              "there is no controller to resume; submit the run again to continue",
            "building an environment here": "the service builds an environment's image when a job first uses it "
                                            "(--env NAME); there is nothing to build here",
            "building an image here": "Azure ML builds a managed endpoint's image itself; there is nothing to build",
            "--no-auth": "Azure endpoints always need a key here (--no-auth is for the local workspace)",
        })


class AzureBackend(Backend):
    @classmethod
    def open(cls, config: WorkspaceConfig) -> "AzureBackend":
        """The workspace of ``config`` with the credential ``connect`` signed in with — or, for a workspace found
        through config.json, the one Azure ML's SDKs would use (DefaultAzureCredential)."""
        options = _signed_in.get(config.azure)
        if options is None:
            from .auth import credential

            options = {"credential": credential("default")}
        return cls(WorkspaceRef(*config.azure), **options)

    @classmethod
    def connect(cls, subscription: str | None = None, resource_group: str | None = None,
                workspace: str | None = None, *, device_code: bool = False, credential: Any = None,
                base_url: str | None = None, mlflow_uri: str | None = None, storage: tuple[str, str] | None = None,
                prompt: Callable[[str], Any] = print) -> WorkspaceConfig:
        """Sign in to the workspace named here, or to the one the config.json Azure ML's SDKs would find."""
        from ...core.config import azure_workspace_config
        from .auth import credential as make_credential
        from .auth import workspace_ref

        ref = workspace_ref(subscription, resource_group, workspace)
        cred = make_credential("device-code" if device_code else "default", prompt=prompt, passed=credential)
        key = (ref.subscription_id, ref.resource_group, ref.workspace_name)
        _signed_in[key] = {"credential": cred, **({"base_url": base_url} if base_url else {}),
                           **({"mlflow_uri": mlflow_uri} if mlflow_uri else {}),
                           **({"storage": storage} if storage else {})}
        return azure_workspace_config(key, "connect" if subscription else "config.json")

    def __init__(self, ws: WorkspaceRef, credential: Any, *, base_url: str | None = None,
                 mlflow_uri: str | None = None, storage: tuple[str, str] | None = None, sleep=time.sleep):
        kwargs = {"base_url": base_url} if base_url else {}
        self.ws = ws
        self.arm = ArmClient(credential, sleep=sleep, **kwargs)
        self._credential = credential
        self._mlflow_uri = mlflow_uri
        self._mlflow = None
        self.storage = storage  # (account URL, account name): a storage emulator, or a sovereign cloud
        self.capabilities = capabilities(ws)
        self.runs = AzureRuns(self)
        self.experiments = AzureExperiments(self)
        self.computes = AzureComputes(self)
        self.datastores = AzureDatastores(self)
        self.models = AzureModels(self)
        self.deployments = AzureDeployments(self)
        self.environments = AzureEnvironments(self)
        self.batch_endpoints = AzureBatchEndpoints(self)
        self.doctor = AzureDoctor(self)

    def __repr__(self) -> str:
        return f"AzureBackend({self.ws})"

    def workspace_info(self) -> WorkspaceInfo:
        body = ops.workspace(self.arm, self.ws)
        return WorkspaceInfo(name=self.ws.workspace_name, backend="azure",
                             location=f"{body.get('location', '?')} · {self.ws.resource_group}",
                             source="config.json / %aml connect", computes=self.computes.list())

    # -- the workspace's MLflow endpoint: metrics, params, tags, child runs ------------------------------------

    def mlflow_available(self) -> bool:
        if self._mlflow_uri is None:
            try:
                self._mlflow_uri = ops.mlflow_tracking_uri(ops.workspace(self.arm, self.ws))
            except AmlError:
                self._mlflow_uri = ""
        return bool(self._mlflow_uri)

    def mlflow(self):
        if not self.mlflow_available():
            raise AmlError("this workspace has no MLflow tracking URI: metrics are not available")
        if self._mlflow is None:
            from .mlflow_rest import MlflowRest

            token = None
            if self._mlflow_uri.startswith(("azureml://", "https://")):
                token = lambda: self._credential.get_token("https://management.azure.com/.default").token  # noqa: E731
            self._mlflow = MlflowRest(self._mlflow_uri, token)
        return self._mlflow
