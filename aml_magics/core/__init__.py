"""The client core: one ``Client`` over one documented backend contract (``contract``), backends chosen by
``registry``. No IPython, widgets, tornado or backend here; nothing is imported until it is used, so a run process
that only logs (``core.run``) stays light.

    from aml_magics.core.client import Client
"""
from __future__ import annotations

_LAZY = {"Client": ("client", "Client"), "AmlError": ("errors", "AmlError"), "AuthError": ("errors", "AuthError"),
         "BackendUnavailable": ("errors", "BackendUnavailable"), "Conflict": ("errors", "Conflict"),
         "InvalidInput": ("errors", "InvalidInput"), "NotFound": ("errors", "NotFound"),
         "NotSupported": ("errors", "NotSupported")}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(f"{__name__}.{module}"), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
