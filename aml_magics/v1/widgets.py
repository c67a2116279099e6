"""``azureml.widgets``: ``RunDetails(run).show()`` is our live dashboard (metric charts, children, log), which
also renders in a saved notebook without a kernel."""
from __future__ import annotations

from typing import Any

__all__ = ["RunDetails"]


class RunDetails:
    """v1's ``RunDetails(run)``; ``.show()`` displays it (so does leaving it as a cell's last line)."""

    def __init__(self, run_instance: Any):
        from ..core.run import Run

        if not isinstance(run_instance, Run):
            from ..core.errors import InvalidInput

            raise InvalidInput(f"RunDetails(run): give a run (exp.submit(...) returns one), not "
                               f"{type(run_instance).__name__}")
        self.run = run_instance
        self._widget = None

    def _dashboard(self):
        if self._widget is None:
            from ..widgets.run_details import RunDetails as Dashboard

            self._widget = Dashboard(self.run.id, self.run.client)
        return self._widget

    def show(self) -> None:
        from IPython.display import display

        display(self._dashboard())

    def get_widget_data(self, widget_settings: Any = None) -> dict:
        return {"run_id": self.run.id, "status": self.run.get_status(), "metrics": self.run.get_metrics()}

    def _repr_mimebundle_(self, include=None, exclude=None):
        return self._dashboard()._repr_mimebundle_(include=include, exclude=exclude)
