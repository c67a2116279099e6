"""The vocabulary of states: one place. The JupyterLab extension reads them from the server (``/aml/api/workspace``).

Runs: ``NotStarted → Queued → Starting → Running → Finalizing → Completed | Failed | Canceled`` (Azure ML's).
Services: ``Transitioning → Healthy`` (``Unhealthy`` while a crashed server restarts), or ``Failed``.
"""
from __future__ import annotations

ACTIVE_STATES = ("NotStarted", "Queued", "Starting", "Running", "Finalizing")
TERMINAL_STATES = ("Completed", "Failed", "Canceled")
RUN_STATES = ACTIVE_STATES + TERMINAL_STATES
#: states in which a run holds one of its compute target's slots
SLOT_STATES = ("Starting", "Running", "Finalizing")
#: states a run can be left in by a process that died (the local workspace repairs them)
REPAIRABLE_STATES = ("NotStarted", *SLOT_STATES)

SERVICE_STATES = ("Transitioning", "Healthy", "Unhealthy", "Failed")
SERVICE_ALIVE_STATES = ("Transitioning", "Healthy", "Unhealthy")


def is_terminal(status: str) -> bool:
    return status in TERMINAL_STATES


def canonical_state(text: str) -> str | None:
    """A run state from any casing (``running`` → ``Running``); None when it is not one."""
    return {s.lower(): s for s in RUN_STATES}.get(str(text).lower())
