"""aml-magics: the Azure Machine Learning workflow from a Jupyter notebook.

``%load_ext aml_magics`` then ``%aml?``. Inside a run: ``from aml_magics import Run``.
Names are imported on first use so that loading the extension stays light.
"""
from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "Run": ("aml_magics.core.run", "Run"),
    "Client": ("aml_magics.core.client", "Client"),
    "Workspace": ("aml_magics.core.workspace", "Workspace"),
    "Experiment": ("aml_magics.core.workspace", "Experiment"),
    "Model": ("aml_magics.core.workspace", "Model"),
}

__all__ = [*_LAZY, "load_ipython_extension", "unload_ipython_extension"]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'aml_magics' has no attribute {name!r}")


def load_ipython_extension(ipython) -> None:
    from .magics import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython) -> None:
    from .magics import unload_ipython_extension as unload

    unload(ipython)
