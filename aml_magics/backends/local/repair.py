"""Runs left behind by processes that died, repaired by the next reader (``runs.get``/``list``/``wait``, doctor).

* An active run whose processes are all gone is marked Failed with the reason (it could be neither cancelled
  nor finished). Liveness checks the start token of every pid, so a stranger holding a recycled pid never keeps
  a dead run Running.
* A run left NotStarted by a submitter that died while preparing it is Canceled (its snapshot may be partial).
* A run left Starting without any host (its submitter was killed between claiming the slot and starting the
  host) has not run at all: its host is started now, after a grace, claimed atomically so it runs once.
"""
from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

from ...core.config import env_number
from ...core.errors import StorageError
from ...core.states import SLOT_STATES
from . import procs
from .host import dispatch_queue, spawn_host

if TYPE_CHECKING:  # pragma: no cover
    from .backend import LocalBackend

#: a run Starting this long (default 15 s) without a host lost its submitter between claiming the slot and
#: starting the host
HOSTLESS_GRACE_ENV = "AML_MAGICS_HOSTLESS_GRACE_S"


def repair_if_orphaned(backend: "LocalBackend", row) -> bool:
    """Repair ``row``'s run when its processes are gone; whether anything changed."""
    store = backend.store
    if row["status"] == "NotStarted" and not row["host_pid"]:
        submitter = json.loads(row["spec"] or "{}").get("submitter")
        if not submitter or procs.is_alive(*submitter):
            return False
        try:  # its submitter died while preparing it (a killed sweep controller): it never started
            return store.transition(row["run_id"], "Canceled", only_from=("NotStarted",),
                                    reason="its submitter ended before the run started; submit it again")
        except StorageError:
            return False
    if row["status"] == "Starting" and not row["host_pid"]:
        grace = env_number(HOSTLESS_GRACE_ENV, 15)
        if store.claim_hostless_start(row["run_id"], time.time() - grace):
            spawn_host(backend.path, row["run_id"], store)
            return True
        return False
    if row["status"] not in SLOT_STATES or not row["host_pid"]:
        return False
    if procs.is_alive(row["host_pid"], row["host_start"]):
        return False
    if row["user_pid"] and procs.is_alive(row["user_pid"], row["user_start"]):
        return False
    who = "the process that was logging to it" if row["kind"] in ("interactive", "child") else "its run host"
    try:
        changed = store.transition(
            row["run_id"], "Failed", only_from=SLOT_STATES, reason=f"{who} ended unexpectedly",
            error=f"{who} ended without finishing the run (killed, or the machine restarted)",
        )
    except StorageError:
        return False  # a read-only workspace can still be read: the repair waits for a writable one
    if changed and row["compute"]:
        dispatch_queue(backend.path, store, row["compute"])
    return changed
