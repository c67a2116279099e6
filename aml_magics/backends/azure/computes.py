"""Compute targets (clusters scaling 0…N nodes) and experiments of an Azure ML workspace."""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ...core.contract import ComputesBackend, ExperimentsBackend
from ...core.errors import InvalidInput
from ...core.types import ComputeTarget, ExperimentInfo
from . import ops

if TYPE_CHECKING:  # pragma: no cover
    from .backend import AzureBackend

CLUSTER_KINDS = ("AmlCompute", "ComputeInstance", "Kubernetes")


class AzureComputes(ComputesBackend):
    def __init__(self, backend: "AzureBackend"):
        self.b = backend

    def list(self) -> list[ComputeTarget]:
        return ops.computes(self.b.arm, self.b.ws)

    def clusters(self) -> list[str]:
        return [c.name for c in self.list() if c.kind.startswith(CLUSTER_KINDS)]

    def create(self, name: str, max_concurrent: int, vm_size: str = "Standard_DS3_v2") -> ComputeTarget:
        """An Azure ML compute cluster that scales from 0 to ``max_concurrent`` nodes (idle nodes go after
        2 minutes); waits while Azure provisions it."""
        if not re.fullmatch(r"[a-zA-Z][a-zA-Z0-9-]{1,30}[a-zA-Z0-9]", name or ""):
            raise InvalidInput(f"compute name {name!r}: 3-32 letters, digits and '-', starting with a letter")
        if max_concurrent < 1:
            raise InvalidInput("--max-concurrent must be at least 1")
        location = ops.workspace(self.b.arm, self.b.ws).get("location") or "westeurope"
        body = {"location": location, "properties": {"computeType": "AmlCompute", "properties": {
            "vmSize": vm_size, "vmPriority": "Dedicated",
            "scaleSettings": {"maxNodeCount": int(max_concurrent), "minNodeCount": 0,
                              "nodeIdleTimeBeforeScaleDown": "PT120S"}}}}
        self.b.arm.put(f"{self.b.ws.path}/computes/{name}", body)
        return next((c for c in self.list() if c.name == name),
                    ComputeTarget(name, "AmlCompute (Creating)", int(max_concurrent)))


class AzureExperiments(ExperimentsBackend):
    def __init__(self, backend: "AzureBackend"):
        self.b = backend

    def list(self) -> list[ExperimentInfo]:
        counts: dict[str, int] = {}
        for info in self.b.runs.list(experiment=None, status=None, parent_run_id=None, limit=None, offset=0)[0]:
            counts[info.experiment] = counts.get(info.experiment, 0) + 1
        return [ExperimentInfo(name, n) for name, n in sorted(counts.items())]
