"""The one backend contract. ``core.Client`` talks to a backend only through these methods,
so front ends never know (or branch on) which backend serves them."""
from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from ..core.types import (
    ComputeTarget,
    DatastoreEntry,
    DatastoreInfo,
    ExperimentInfo,
    RunInfo,
    RunSubmission,
    WorkspaceInfo,
)


def decode_log_chunk(data: bytes, offset: int) -> tuple[str, int]:
    """A log read from ``offset``: its text and the next offset, never splitting a UTF-8 character (an
    incomplete tail is left for the next read)."""
    cut = len(data)
    i = cut - 1
    while i >= 0 and cut - i < 4 and (data[i] & 0xC0) == 0x80:
        i -= 1
    if i >= 0 and data[i] >= 0xC0:
        need = 2 if data[i] < 0xE0 else 3 if data[i] < 0xF0 else 4
        if cut - i < need:
            cut = i
    return data[:cut].decode("utf-8", errors="replace"), offset + cut


class Backend(ABC):
    kind: str
    #: where run processes send metrics (``runtime.tracking.tracker_for``)
    tracking_uri: str

    # workspace ---------------------------------------------------------------------------
    @abstractmethod
    def workspace_info(self) -> WorkspaceInfo: ...

    # runs ------------------------------------------------------------------------------------
    @abstractmethod
    def submit(self, submission: RunSubmission) -> str: ...

    @abstractmethod
    def start_interactive(self, experiment: str, display_name: str | None, tags: dict[str, str]) -> str: ...

    @abstractmethod
    def get_run(self, run_id: str, *, with_metrics: bool = True) -> RunInfo: ...

    @abstractmethod
    def list_runs(self, *, experiment: str | None, status: list[str] | None, parent_run_id: str | None,
                  limit: int | None, offset: int) -> tuple[list[RunInfo], int]: ...

    @abstractmethod
    def run_ids(self) -> list[str]: ...

    @abstractmethod
    def has_run(self, run_id: str) -> bool: ...

    @abstractmethod
    def cancel_run(self, run_id: str, reason: str | None = None) -> None: ...

    @abstractmethod
    def resume_run(self, run_id: str) -> None: ...

    @abstractmethod
    def get_metrics(self, run_id: str, name: str | None = None) -> dict[str, Any]: ...

    @abstractmethod
    def metric_series(self, run_id: str, name: str, since: int = 0) -> tuple[list[tuple[int, float, float]], int]: ...

    @abstractmethod
    def run_version(self, run_id: str) -> tuple: ...

    @abstractmethod
    def metric_names(self, run_id: str) -> list[str]: ...

    @abstractmethod
    def read_log(self, run_id: str, offset: int = 0) -> tuple[str, int]: ...

    @abstractmethod
    def list_files(self, run_id: str) -> list[str]: ...

    @abstractmethod
    def file_path(self, run_id: str, name: str) -> Path: ...

    @abstractmethod
    def results(self, run_id: str) -> dict[str, Any]: ...

    # experiments, computes, datastores ---------------------------------------------------------
    @abstractmethod
    def list_experiments(self) -> list[ExperimentInfo]: ...

    @abstractmethod
    def list_computes(self) -> list[ComputeTarget]: ...

    @abstractmethod
    def create_compute(self, name: str, max_concurrent: int) -> ComputeTarget: ...

    @abstractmethod
    def list_datastores(self) -> list[DatastoreInfo]: ...

    @abstractmethod
    def datastore_upload(self, src: Path, target: str, datastore: str | None, overwrite: bool) -> list[str]: ...

    @abstractmethod
    def datastore_list(self, path: str, datastore: str | None) -> list[DatastoreEntry]: ...

    @abstractmethod
    def datastore_download(self, path: str, target: Path, datastore: str | None, overwrite: bool) -> list[str]: ...

    @abstractmethod
    def resolve_input(self, uri: str) -> str: ...
