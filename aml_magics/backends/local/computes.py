"""Compute targets (local pools with a number of slots) and experiments of the local workspace."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ...core.contract import ComputesBackend, ExperimentsBackend
from ...core.errors import InvalidInput, NotFound
from ...core.types import ComputeTarget, ExperimentInfo
from .host import dispatch_queue

if TYPE_CHECKING:  # pragma: no cover
    from .backend import LocalBackend


class LocalComputes(ComputesBackend):
    def __init__(self, backend: "LocalBackend"):
        self.backend = backend
        self.store = backend.store

    def limit(self, name: str) -> int:
        """The slots of compute target ``name`` (``NotFound`` with suggestions)."""
        limit = self.store.compute_limit(name)
        if limit is None:
            raise NotFound.with_suggestions(
                "compute target", name, self.store.compute_names(), hint="list them with %aml compute; create one "
                "with %aml compute create NAME --max-concurrent N")
        return limit

    def list(self) -> list[ComputeTarget]:
        return [ComputeTarget(r["name"], r["kind"], r["max_concurrent"], r["running"], r["queued"])
                for r in self.store.list_computes()]

    def create(self, name: str, max_concurrent: int) -> ComputeTarget:
        if not name or not all(c.isalnum() or c in "-_" for c in name):
            raise InvalidInput(f"compute name {name!r}: use letters, digits, '-' and '_'")
        if max_concurrent < 1:
            raise InvalidInput("--max-concurrent must be at least 1")
        self.store.upsert_compute(name, "local", max_concurrent)
        dispatch_queue(self.backend.path, self.store, name)
        return next(c for c in self.list() if c.name == name)


class LocalExperiments(ExperimentsBackend):
    def __init__(self, backend: "LocalBackend"):
        self.store = backend.store

    def list(self) -> list[ExperimentInfo]:
        return [ExperimentInfo(r["name"], r["run_count"], r["created"], r["last_run"])
                for r in self.store.list_experiments()]
