"""How the magics' return values display in a notebook kernel: as live dashboards.

Registered on ``%load_ext`` as IPython display formatters (so ``core`` stays free of widgets):
a ``Run`` shows its ``RunDetails``, the ``%aml runs`` list its ``RunHistory``, the workspace
summary its ``WorkspaceOverview``. Outside a kernel (terminal IPython) nothing is registered
and the plain reprs show; ``%config AmlMagics.dashboards = False`` turns them off.
"""
from __future__ import annotations

from typing import Callable

TYPES = (("aml_magics.core.run", "Run"), ("aml_magics.core.types", "RunList"),
         ("aml_magics.core.types", "WorkspaceInfo"), ("aml_magics.core.types", "ModelList"),
         ("aml_magics.core.types", "ServiceList"))


def in_kernel(shell) -> bool:
    return shell is not None and getattr(shell, "kernel", None) is not None


def _plain(obj) -> None:
    from IPython.display import display

    display(obj._repr_mimebundle_(), raw=True)


def register(shell, magics) -> None:
    if not in_kernel(shell):
        return

    def guarded(show: Callable) -> Callable:
        def printer(obj) -> None:
            if not magics.dashboards:
                _plain(obj)
            else:
                show(obj)
        return printer

    def show_run(run) -> None:
        from ..core.run import _OfflineRun
        from ..widgets.run_details import RunDetails

        if run.__dict__.pop("_on_screen", None) == getattr(shell, "execution_count", 0):
            return  # `--wait` showed its live dashboard in this cell already
        if isinstance(run, _OfflineRun):
            print(repr(run))
        else:
            RunDetails(run.id, run.client).show()

    def show_run_list(runs) -> None:
        from ..widgets.runs import RunHistory

        q = runs.query or {}
        RunHistory(magics.client, experiment=q.get("experiment"), status=q.get("status"),
                   limit=q.get("limit") or 50, metric_columns=q.get("metrics")).show()

    def show_workspace(info) -> None:
        from ..widgets.runs import WorkspaceOverview

        WorkspaceOverview(magics.client).show()

    def show_models(models) -> None:
        from ..widgets.registry import ModelBrowser

        ModelBrowser(magics.client, name=(models.query or {}).get("name")).show()

    def show_services(services) -> None:
        from ..widgets.registry import ServicePanel

        ServicePanel(magics.client).show()

    formatter = shell.display_formatter.ipython_display_formatter
    for (module, name), show in zip(TYPES, (show_run, show_run_list, show_workspace, show_models, show_services)):
        formatter.for_type_by_name(module, name, guarded(show))


def unregister(shell) -> None:
    if not in_kernel(shell):
        return
    formatter = shell.display_formatter.ipython_display_formatter
    for key in TYPES:
        formatter.deferred_printers.pop(key, None)
        for cls in list(formatter.type_printers):
            if (cls.__module__, cls.__name__) == key:
                formatter.type_printers.pop(cls)
