"""Live dashboards (ipywidgets + small anywidget charts), each with a static fallback for saved notebooks.

    from aml_magics.widgets import RunDetails
    RunDetails(run).show()
"""
from __future__ import annotations

_LAZY = {
    "RunDetails": "run_details",
    "RunHistory": "runs",
    "RunComparison": "runs",
    "WorkspaceOverview": "runs",
    "StaticRunView": "static",
    "ModelBrowser": "registry",
    "ServicePanel": "registry",
}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
