"""The embedded local workspace: a SQLite store, folders, and detached processes on this machine.

Wiring only: the store, the capabilities, and one object per ``Client`` operation group, each in its own
module — ``runs`` (submit, read, repair: ``runs.py``, ``repair.py``, ``host.py``), ``experiments``/``computes``
(``computes.py``), ``datastores``, ``models``, ``deployments`` (``supervisor.py`` runs a service), ``environments``
and ``doctor`` (``store/recovery.py`` for a damaged store). Every SQL statement is in ``store/``. The groups a
notebook rarely needs at first are made on first use, so that ``%load_ext aml_magics`` + ``%aml`` stay light.
"""
from __future__ import annotations

import os
from functools import cached_property

from ...core import checks
from ...core.config import WorkspaceConfig
from ...core.contract import BatchEndpointsBackend, Backend, Capabilities, not_supported
from ...core.errors import InvalidInput, StoreDamaged
from ...core.names import DEFAULT_COMPUTE, DEFAULT_DATASTORE
from ...core.types import WorkspaceInfo
from . import layout
from .computes import LocalComputes, LocalExperiments
from .runs import LocalRuns
from .store import ModelRows, Store


def capabilities() -> Capabilities:
    return Capabilities(where="on this machine", remote=False, pace=None,
                        default_compute_size=os.cpu_count() or 1, deploy_target="local", instance_types=False,
                        automl_model="run", inputs_readable_here=True,
                        not_supported={"--instance-type": "a local service runs on this machine; instance types "
                                                          "are for Azure endpoints (%aml connect)",
                                       "batch endpoints": "here a batch run needs no endpoint: %aml batch MODEL "
                                                          "--data datastore:PATH runs it directly"})


class LocalBackend(Backend):
    @classmethod
    def open(cls, config: WorkspaceConfig) -> "LocalBackend":
        return cls(config)

    def __init__(self, config: WorkspaceConfig):
        self.config = config
        self.path = config.path
        # its paths are stored as text: a folder whose name is not UTF-8 (raw bytes) is refused before it is made
        checks.text("workspace folder", str(self.path))
        _refuse_a_foreign_folder(self.path)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InvalidInput(f"cannot create workspace folder {self.path}: {exc.strerror}") from None
        self.db_path = self.path / layout.DB_NAME
        self.store = Store(self.db_path)
        self.capabilities = capabilities()
        self.model_rows = ModelRows(self.store)
        self.runs = LocalRuns(self)
        self.experiments = LocalExperiments(self)
        self.computes = LocalComputes(self)
        if self.store.compute_limit(DEFAULT_COMPUTE) is None:
            self.store.ensure_compute(DEFAULT_COMPUTE, "local", os.cpu_count() or 1)
        if not self.store.has_datastores():
            ds = self.path / "datastores" / DEFAULT_DATASTORE
            ds.mkdir(parents=True, exist_ok=True)
            self.store.ensure_datastore(DEFAULT_DATASTORE, "local", str(ds), True)

    @cached_property
    def datastores(self):
        from .datastores import LocalDatastores

        return LocalDatastores(self)

    @cached_property
    def models(self):
        from .models import LocalModels

        return LocalModels(self)

    @cached_property
    def deployments(self):
        from .deployments import LocalDeployments

        return LocalDeployments(self)

    @cached_property
    def environments(self):
        from .environments import LocalEnvironments

        return LocalEnvironments(self)

    @cached_property
    def batch_endpoints(self):
        return LocalBatchEndpoints(self)

    @cached_property
    def doctor(self):
        from .doctor import LocalDoctor

        return LocalDoctor(self)

    @property
    def tracking_uri(self) -> str:
        """Where a run process of this workspace logs to (the run host sets it in its environment)."""
        from .tracker import tracking_uri

        return tracking_uri(self.db_path)

    def __repr__(self) -> str:
        return f"LocalBackend({self.path})"

    def stale(self) -> bool:  # noqa: D102
        return self.store.replaced()

    def workspace_info(self) -> WorkspaceInfo:
        from ...core.states import ACTIVE_STATES

        return WorkspaceInfo(
            name=self.config.name, backend="local", location=str(self.path), source=self.config.source,
            experiments=self.store.count_experiments(), runs=self.store.count_runs(),
            active_runs=self.store.count_runs(status=ACTIVE_STATES), computes=self.computes.list(),
        )


__all__ = ["LocalBackend", "StoreDamaged", "capabilities"]


class LocalBatchEndpoints(BatchEndpointsBackend):
    """The local workspace runs batch scoring directly (``%aml batch``); endpoints are an Azure ML resource."""

    def __init__(self, backend: "LocalBackend"):
        self.backend = backend

    def create(self, name, model, score_path, *, compute, settings, environment):
        raise not_supported(self.backend.capabilities, "batch endpoints")

    def list(self):
        raise not_supported(self.backend.capabilities, "batch endpoints")

    def delete(self, name):
        raise not_supported(self.backend.capabilities, "batch endpoints")


# what a workspace folder holds: a folder with only these (or nothing) may become one
WORKSPACE_ENTRIES = {layout.DB_NAME, f"{layout.DB_NAME}-wal", f"{layout.DB_NAME}-shm", "runs", "datastores", "models",
                     "deployments", "environments", "batch", "pipelines", ".locks"}


def _refuse_a_foreign_folder(path) -> None:
    """``%aml workspace use ~/projects`` (or ``/etc``): a folder that holds other things and no workspace is not
    made one — its aml.db, runs/ and datastores/ would be strewn among the user's files."""
    try:
        entries = {p.name for p in path.iterdir()} if path.is_dir() else set()
    except OSError:
        return  # not readable: the store says so in its own words
    if entries and layout.DB_NAME not in entries and not entries & WORKSPACE_ENTRIES:
        shown = ", ".join(sorted(entries)[:3]) + (" …" if len(entries) > 3 else "")
        raise InvalidInput(f"{path} holds other files ({shown}) and no workspace; give a new or empty folder, "
                           f"like {path / 'aml-workspace'}")
