"""``Client``: the one entry point every front end uses.

Operation groups share one resolved workspace and one backend (the azure-ai-ml ``MLClient`` shape):
``client.runs``, ``client.experiments``, ``client.computes``, ``client.datastores``, ``client.models``,
``client.deployments``, ``client.environments``, and ``client.doctor()``. Construction is cheap: the backend opens
on first use, chosen by ``registry`` from the workspace's kind; what differs between backends is read from
``client.capabilities``, never from which backend it is.
"""
from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from . import registry
from .config import WorkspaceConfig, resolve_workspace
from .errors import InvalidInput
from .operations import (BatchEndpointOperations, BatchOperations, ComputeOperations, DatastoreOperations, DeploymentOperations,
                         EnvironmentOperations, PipelineOperations,
                         ExperimentOperations, ModelOperations, RunOperations, check_name, parse_model_ref)
from .types import WorkspaceInfo

if TYPE_CHECKING:  # pragma: no cover
    from .contract import Backend, Capabilities

_clients: dict[tuple[str, str], "Client"] = {}
_clients_lock = threading.Lock()


def _after_fork_in_child() -> None:
    """A lock held by another thread when the process forked is held for ever in the child (that thread is not
    there): a pool worker calling ``Client.shared()`` would wait for ever."""
    global _clients_lock
    _clients_lock = threading.Lock()
    for client in list(_clients.values()):
        client._lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

__all__ = ["Client", "check_name", "parse_model_ref"]


def _say_replaced(config: "WorkspaceConfig") -> None:
    """One line when a workspace this process had open is opened again because its storage went away or changed:
    without it, a kernel whose workspace folder was deleted showed "No runs." with no word why."""
    where = config.path
    if where is not None and not Path(where).exists():
        print(f"aml-magics: the workspace folder {where} was deleted after this process opened it; a new, empty "
              "workspace is begun there (the runs, models and services of the old one are gone)", file=sys.stderr)
    else:
        print(f"aml-magics: the workspace at {where} was replaced on disk after this process opened it (a backup "
              "put back, or doctor --recover in another process); reading the one there now", file=sys.stderr)


class Client:
    def __init__(self, workspace: str | os.PathLike | None = None, *, config: WorkspaceConfig | None = None):
        if workspace is not None and not isinstance(workspace, (str, os.PathLike)):
            raise InvalidInput(f"Client(workspace): give the workspace's folder (a path), not "
                               f"{type(workspace).__name__}")
        self.config = config or resolve_workspace(workspace)
        self._backend: "Backend | None" = None
        self._lock = threading.Lock()
        self.runs = RunOperations(self)
        self.experiments = ExperimentOperations(self)
        self.computes = ComputeOperations(self)
        self.datastores = DatastoreOperations(self)
        self.models = ModelOperations(self)
        self.deployments = DeploymentOperations(self)
        self.environments = EnvironmentOperations(self)
        self.pipelines = PipelineOperations(self)
        self.batch = BatchOperations(self)
        self.batch_endpoints = BatchEndpointOperations(self)

    @classmethod
    def shared(cls, workspace: str | os.PathLike | None = None) -> "Client":
        """One client per resolved workspace and process (so connections are shared)."""
        config = resolve_workspace(workspace)
        key = (config.backend, str(config.path))
        with _clients_lock:
            client = _clients.get(key)
            if client is None or client.stale():  # (a workspace folder deleted and begun again: the new one)
                if client is not None:
                    _say_replaced(config)
                client = _clients[key] = cls(config=config)
            return client

    def stale(self) -> bool:
        """Whether this client's workspace storage was deleted or replaced since it was opened."""
        return self._backend is not None and self._backend.stale()

    @property
    def backend(self) -> "Backend":
        if self._backend is None:
            with self._lock:
                if self._backend is None:
                    self._backend = registry.open_backend(self.config)
        return self._backend

    @property
    def capabilities(self) -> "Capabilities":
        """What this workspace's backend can do, and how it is asked (see ``core.contract.Capabilities``)."""
        return self.backend.capabilities

    @classmethod
    def connect(cls, subscription: str | None = None, resource_group: str | None = None, workspace: str | None = None,
                *, device_code: bool = False, credential: Any = None, base_url: str | None = None,
                mlflow_uri: str | None = None, storage: tuple[str, str] | None = None,
                prompt: Callable[[str], Any] = print) -> "Client":
        """A client on an Azure ML workspace: named here, or from the config.json Azure ML's SDKs would find."""
        config = registry.connect(subscription=subscription, resource_group=resource_group, workspace=workspace,
                                  device_code=device_code, credential=credential, base_url=base_url,
                                  mlflow_uri=mlflow_uri, storage=storage, prompt=prompt)
        return cls(config=config)

    @property
    def workspace(self) -> WorkspaceInfo:
        return self.backend.workspace_info()

    def doctor(self, recover: bool = False):
        """Check the workspace (SQLite, processes, records vs files) and repair what is safe to repair.

        A damaged store is copied aside and what can be read is saved into a fresh one; ``recover`` puts that
        fresh store in place (other kernels open it at their next command: ``Client.shared`` sees the new file)."""
        from .errors import StoreDamaged

        try:
            backend = self.backend
        except StoreDamaged as exc:
            if exc.examine is None:
                raise
            return exc.examine(recover)
        report = backend.doctor.check(recover=recover)
        if recover and any(outcome == "repaired" and check == "store recovered" for check, outcome, _ in report.checks):
            with self._lock:
                self._backend = None  # this process's connection still reads the damaged file: open the new one
        return report

    def __repr__(self) -> str:
        return f"Client({self.config.describe()})"
