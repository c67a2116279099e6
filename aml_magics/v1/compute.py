"""``azureml.core.compute`` and ``azureml.core.compute_target``: v1 compute targets over ``client.computes``.

Locally, ``AmlCompute.provisioning_configuration(max_nodes=N)`` + ``ComputeTarget.create`` make a compute target
that runs ``min(N, cores)`` runs at once (a "node" is a slot); on Azure ML, a real cluster, as ``%aml compute
create`` makes one. ``ComputeTarget(workspace, name)`` raises ``ComputeTargetException`` when there is none, as the
tutorials' ``try``/``except`` expects."""
from __future__ import annotations

import os
from typing import Any

from ..core import checks
from ..core.errors import InvalidInput, NotFound
from ..core.names import DEFAULT_COMPUTE
from . import note_once, unknown_settings
from .exceptions import ComputeTargetException

__all__ = ["ComputeTarget", "AmlCompute", "ComputeInstance", "ComputeTargetException", "AmlComputeProvisioningConfiguration"]


class AmlComputeProvisioningConfiguration:
    def __init__(self, vm_size: str = "", min_nodes: int = 0, max_nodes: int = 4, **settings: Any):
        for label, value in (("min_nodes", min_nodes), ("max_nodes", max_nodes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidInput(f"provisioning_configuration({label}={value!r}): a whole number ≥ 0")
        if max_nodes < 1 or min_nodes > max_nodes:
            raise InvalidInput(f"provisioning_configuration: max_nodes ({max_nodes}) must be ≥ 1 and ≥ min_nodes "
                               f"({min_nodes})")
        self.vm_size, self.min_nodes, self.max_nodes, self.settings = vm_size, min_nodes, max_nodes, settings


class ComputeTarget:
    """A compute target of the workspace: ``ComputeTarget(workspace=ws, name=...)`` finds one."""

    def __init__(self, workspace: Any, name: str):
        try:
            info = workspace.client.computes.get(name)
        except NotFound:
            raise ComputeTargetException(f"ComputeTargetNotFound: compute target {name!r} not found in workspace "
                                         f"{workspace.name!r}; create it with ComputeTarget.create(...)") from None
        self._set(workspace, info)

    def _set(self, workspace: Any, info: Any) -> None:
        self.workspace, self._info, self.name = workspace, info, info.name
        self.provisioning_state = "Succeeded"
        self.type = "AmlCompute" if info.kind != "local" else "local"
        self.vm_size = getattr(info, "vm_size", None) or "local"

    @classmethod
    def _wrap(cls, workspace: Any, info: Any) -> "ComputeTarget":
        target = cls.__new__(AmlCompute)
        target._set(workspace, info)
        return target

    @staticmethod
    def create(workspace: Any, name: str, provisioning_configuration: Any) -> "ComputeTarget":
        if not isinstance(provisioning_configuration, AmlComputeProvisioningConfiguration):
            raise InvalidInput("ComputeTarget.create(ws, name, config): config comes from "
                               "AmlCompute.provisioning_configuration(vm_size=…, max_nodes=…)")
        client = workspace.client
        nodes = provisioning_configuration.max_nodes
        if client.config.backend == "local":
            cores = os.cpu_count() or 1
            if nodes > cores:
                note_once(f"nodes:{name}", f"compute {name!r}: max_nodes={nodes} runs {cores} runs at once here "
                                           f"(this machine's cores)")
            nodes = min(nodes, cores)
        elif provisioning_configuration.vm_size and provisioning_configuration.vm_size.lower() != "standard_ds3_v2":
            note_once(f"vm:{name}", f"compute {name!r}: made with Standard_DS3_v2 nodes, not "
                                    f"{provisioning_configuration.vm_size} (`%aml compute create` sizes are fixed); "
                                    "change its size in Azure ML studio")
        info = client.computes.create(name, max_concurrent=nodes)
        return ComputeTarget._wrap(workspace, info)

    @staticmethod
    def list(workspace: Any) -> list["ComputeTarget"]:
        return list(workspace.compute_targets.values())

    def wait_for_completion(self, show_output: bool = False, min_node_count: int | None = None,
                            timeout_in_minutes: int = 25, is_delete_operation: bool = False) -> None:
        if show_output:
            print(f"{self.name}: {self.provisioning_state} ({self._info.max_concurrent} at once)")

    def get_status(self):
        info = self._info
        return _Status({"currentNodeCount": info.running, "targetNodeCount": info.max_concurrent,
                        "nodeStateCounts": {"runningNodeCount": info.running, "idleNodeCount":
                                            max(0, info.max_concurrent - info.running)},
                        "provisioningState": self.provisioning_state})

    def delete(self) -> None:
        raise InvalidInput(f"compute {self.name!r} stays (it costs nothing when idle here); %aml compute list")

    def __repr__(self) -> str:
        return repr(self._info)


class AmlCompute(ComputeTarget):
    @staticmethod
    def provisioning_configuration(vm_size: str = "", vm_priority: str = "dedicated", min_nodes: int = 0,
                                   max_nodes: int = 4, idle_seconds_before_scaledown: int | None = None,
                                   **settings: Any) -> AmlComputeProvisioningConfiguration:
        unknown_settings("AmlCompute.provisioning_configuration", AmlCompute.provisioning_configuration, settings)
        if idle_seconds_before_scaledown is not None:
            idle_seconds_before_scaledown = checks.whole("provisioning_configuration(idle_seconds_before_scaledown)",
                                                         idle_seconds_before_scaledown, 0, 10**9)
        return AmlComputeProvisioningConfiguration(vm_size, min_nodes, max_nodes, vm_priority=vm_priority,
                                                   idle_seconds_before_scaledown=idle_seconds_before_scaledown,
                                                   **settings)

    @staticmethod
    def supported_vmsizes(workspace: Any, location: str | None = None) -> list[dict]:
        return [{"name": "local", "vCPUs": os.cpu_count() or 1}]


class ComputeInstance(ComputeTarget):
    @staticmethod
    def provisioning_configuration(vm_size: str = "", **settings: Any) -> AmlComputeProvisioningConfiguration:
        unknown_settings("ComputeInstance.provisioning_configuration", ComputeInstance.provisioning_configuration,
                         settings)
        return AmlComputeProvisioningConfiguration(vm_size, 0, 1, **settings)


class _Status:
    def __init__(self, data: dict):
        self._data = data
        self.current_node_count = data["currentNodeCount"]
        self.provisioning_state = data["provisioningState"]

    def serialize(self) -> dict:
        return dict(self._data)


def compute_name(client: Any, target: Any) -> str:
    """The compute a v1 ``compute_target`` names: an object's name, a string, or "local" (our default)."""
    if target is None or target == "local":
        return DEFAULT_COMPUTE
    if isinstance(target, ComputeTarget):
        return target.name
    if isinstance(target, str) and target.strip():
        return target
    raise InvalidInput(f"compute_target={target!r}: give a ComputeTarget or its name")
