"""A job's files: its default artifact store, where Azure ML writes ``user_logs/`` and ``outputs/``.

The job's ``default`` output names them; Azure ML leaves it out of many job bodies, and then they are where
``az ml job download`` looks: ``workspaceartifactstore`` at ``ExperimentRun/dcid.<job>/``. Where a job's files are
is cached (it never moves), and so is the datastore's container (its credential asked again every ten minutes), so
a dashboard's log polls go to storage only. Files download once into the user's cache, again when their size
changes, written atomically.
"""
from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from ...core.errors import NotFound
from ..common.logs import decode_log_tail, tail_start
from . import ops
from .convert import clean_datastore_path

if TYPE_CHECKING:  # pragma: no cover
    from .backend import AzureBackend

LOG_PREFIX = "user_logs/std_log"


class JobFiles:
    """The log and files of jobs (mixed into the runs group)."""

    def __init__(self, backend: "AzureBackend"):
        self.b = backend
        self._artifact_roots: dict[str, tuple[str, str]] = {}  # job → (datastore, path) of its files

    def _artifacts(self, run_id: str):
        root = self._artifact_roots.get(run_id)
        if root is None:
            outputs = (ops.job(self.b.arm, self.b.ws, run_id).get("properties") or {}).get("outputs") or {}
            uri = str((outputs.get("default") or {}).get("uri") or "")
            found = re.match(r"azureml://(?:subscriptions/.+?/workspaces/[^/]+/)?datastores/([^/]+)/(?:paths/)?(.+)", uri)
            store, path = (found.group(1), found.group(2)) if found else \
                ("workspaceartifactstore", f"ExperimentRun/dcid.{run_id}")
            root = self._artifact_roots[run_id] = (store, path.strip("/") + "/")
        store, prefix = root
        return self.b.datastores.cached_container(store), prefix

    def read_log(self, run_id: str, offset: int = 0, tail: int | None = None) -> tuple[str, int]:
        """The job's ``user_logs/std_log.txt`` (on several nodes: process 0's) from ``offset`` on, as Azure ML
        uploads it while the job runs. Empty until the job has started writing it."""
        container, prefix = self._artifacts(run_id)
        logs = sorted((name, size) for name, size in container.list(prefix + LOG_PREFIX) if name.endswith(".txt"))
        if not logs or logs[0][1] <= offset:
            return "", offset
        start = tail_start(logs[0][1], offset, tail)
        return decode_log_tail(container.read(logs[0][0], start), start, offset)

    def list_files(self, run_id: str) -> list[str]:
        container, prefix = self._artifacts(run_id)
        return sorted(name[len(prefix):] for name, _ in container.list(prefix))

    def file_path(self, run_id: str, name: str) -> Path:
        """The job's file, downloaded once into the user's cache (again when its size has changed)."""
        from platformdirs import user_cache_dir

        from ...core.config import APP_NAME

        rel = clean_datastore_path(name)
        container, prefix = self._artifacts(run_id)
        sizes = dict(container.list(prefix + rel))
        if prefix + rel not in sizes:
            raise NotFound.with_suggestions(f"file of run {run_id}", name, self.list_files(run_id))
        ws = self.b.ws
        folder = Path(user_cache_dir(APP_NAME, appauthor=False)) / "azure" / ws.subscription_id / ws.resource_group \
            / ws.workspace_name / run_id
        path = folder / rel
        if not path.is_file() or path.stat().st_size != sizes[prefix + rel]:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(path.name + f".{secrets.token_hex(4)}.part")
            try:
                container.get_file(prefix + rel, partial)  # streamed: a large output is never held in memory
                partial.replace(path)  # a reader never sees half a file
            finally:
                partial.unlink(missing_ok=True)
        return path
