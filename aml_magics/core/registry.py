"""Backends and trackers by kind: the one place that names them (kind → ``"module:Class"``), imported on first use.

``core.config`` says which kind a workspace is (``local``, or ``azure`` for an Azure ML ``config.json``); the
client opens it here. ``Run.get_context()`` asks here for the tracker its environment names. A third backend is
one line in each table and a package under ``backends/``: nothing above ``backends/`` changes.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:  # pragma: no cover
    from .config import WorkspaceConfig
    from .contract import Backend, Tracker

BACKENDS = {
    "local": "aml_magics.backends.local.backend:LocalBackend",
    "azure": "aml_magics.backends.azure.backend:AzureBackend",
}
#: modules with ``from_environment(environ) -> (tracker, run_id, experiment) | None``, asked in this order
TRACKERS = (
    "aml_magics.backends.local.tracker",
    "aml_magics.backends.azure.tracker",
)
#: the kind ``%aml connect`` / ``Client.connect`` signs in to
CONNECT_KIND = "azure"
#: how a user opens a workspace of each kind, for messages that send them to another one
HOW_TO_OPEN = {
    "local": "%aml workspace use PATH",
    "azure": "%aml connect SUBSCRIPTION RESOURCE_GROUP WORKSPACE",
}


def load(path: str) -> Any:
    module, _, name = path.partition(":")
    value = importlib.import_module(module)
    return getattr(value, name) if name else value


def backend_class(kind: str) -> type:
    from .errors import InvalidInput

    if kind not in BACKENDS:
        raise InvalidInput(f"unknown backend {kind!r} (known: {', '.join(BACKENDS)})")
    return load(BACKENDS[kind])


def open_backend(config: "WorkspaceConfig") -> "Backend":
    """The backend of a resolved workspace."""
    return backend_class(config.backend).open(config)


def connect(**options: Any) -> "WorkspaceConfig":
    """Sign in to a remote workspace (``%aml connect``); returns its config for ``Client(config=…)``."""
    return backend_class(CONNECT_KIND).connect(**options)


def context_tracker(environ: Mapping[str, str]) -> "tuple[Tracker, str, str | None] | None":
    """The tracker, run id and experiment a run process's environment names, or None outside any run."""
    for path in TRACKERS:
        try:
            module = load(path)
        except ImportError:  # a job runtime ships only what its backend needs
            continue
        found = module.from_environment(environ)
        if found is not None:
            return found
    return None
