"""The local workspace's SQLite store: the schema and every query of the local workspace — nothing else.

Stdlib only: run processes import it to log metrics, so it must stay light. Several processes share one
database (kernels, run hosts, the Jupyter server). ``Store`` is one connection with the row classes of the
runs, their metrics and the workspace's experiments, computes and datastores; ``ModelRows``,
``EnvironmentRows`` and ``DeploymentRows`` hold the registry's and the services' queries.
"""
from __future__ import annotations

from .connection import Connection, damaged, is_damage
from .metrics import MetricRows, pack_points, unpack
from .registry import DeploymentRows, EnvironmentRows, ModelRows
from .runs import RunRows
from .schema import BUSY_TIMEOUT_MS, MIGRATIONS, SCHEMA_VERSION
from .summaries import SummaryRows
from .workspace import WorkspaceRows


class Store(RunRows, MetricRows, SummaryRows, WorkspaceRows, Connection):
    """One connection to a workspace database, safe to share between threads."""


__all__ = ["Store", "ModelRows", "EnvironmentRows", "DeploymentRows", "MIGRATIONS", "SCHEMA_VERSION",
           "BUSY_TIMEOUT_MS", "pack_points", "unpack", "damaged", "is_damage"]
