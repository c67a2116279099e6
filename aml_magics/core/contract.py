"""The backend contract: what a workspace backend does, method by method.

``core.Client``'s operation groups call a backend only through these sub-contracts, one per group —
``runs`` (incl. what runs tracked), ``experiments``, ``computes``, ``datastores``, ``models``, ``deployments``,
``environments`` and ``doctor`` — and read ``capabilities`` for everything that differs between backends, so
no code above ``backends/`` names or type-checks a backend. A backend is chosen by ``core.registry`` (kind →
``"module:Class"``): a third one needs no edit above it.

Conventions for every method: names and values reaching a backend have been checked by the client
(``core.checks``); errors are ``core.errors`` — ``NotFound`` (with suggestions where names exist),
``InvalidInput`` (the user can fix it), ``Conflict`` (the state forbids it now), ``StorageError`` (the
workspace cannot be written), ``BackendUnavailable`` / ``AuthError`` (the service), ``NotSupported`` (this
backend cannot do it: its message says what to use instead). Optional operations say so; a backend that lacks
one raises ``NotSupported`` and lists it in ``capabilities.not_supported``.

Logging from inside a run goes through a ``Tracker`` (below): each backend brings its own, and
``Run.get_context()`` finds it from the environment the run was started with.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

if TYPE_CHECKING:  # pragma: no cover
    from .types import (BatchEndpointInfo, ComputeTarget, DatastoreEntry, DatastoreInfo, DeploymentInfo, EnvironmentInfo,
                        ExperimentInfo, ModelInfo, RunInfo, RunSubmission, WorkspaceInfo)


@dataclass(frozen=True)
class Capabilities:
    """What differs between backends, for the code above them to read instead of asking which backend it has."""

    #: where runs and services live, for messages ("on this machine", "on Azure ML workspace 'w'")
    where: str
    #: runs and services live elsewhere: ask about them gently (``pace``), metrics once at the end of a wait
    remote: bool = False
    #: seconds between reads of a changing run (fastest, slowest) for remote backends; None: as often as useful
    pace: tuple[float, float] | None = None
    #: what ``%aml compute create NAME`` makes without ``--max-concurrent`` (slots, or cluster nodes)
    default_compute_size: int = 1
    #: the value ``%aml deploy --target`` must have here: the backend's kind
    deploy_target: str = ""
    #: deployments take a VM size (``--instance-type``)
    instance_types: bool = False
    #: where an AutoML run keeps its best model: "run" (the AutoML run's outputs/model.pkl) or "best_child"
    automl_model: str = "run"
    #: datastore inputs resolve to files this process can read (their columns can be checked before a submit)
    inputs_readable_here: bool = True
    #: operation → what to use instead, for what this backend cannot do (each raises ``NotSupported``)
    not_supported: Mapping[str, str] = field(default_factory=dict)


class Tracker(ABC):
    """Where a run's logging goes, from inside the run (or any process logging to it). One per process and
    destination, shared by the runs logged to there. Buffering, retries and what happens on a full disk are
    the tracker's business; every method returns quickly."""

    @abstractmethod
    def scalar_writer(self, run_id: str) -> Callable[..., None]:
        """A fast ``write(name, value, step=None)`` for one run: the hot path of ``run.log``. ``value`` is a checked
        number; ``step`` is None (the next index) or checked by the writer (an int in the int64 range)."""

    @abstractmethod
    def log_scalars(self, run_id: str, name: str, values: list[float]) -> None:
        """Append checked numbers to a series (``log_list``)."""

    @abstractmethod
    def log_record(self, run_id: str, name: str, kind: str, payload: Any) -> None:
        """A non-scalar value: kind "string", "row", "table" or "image" (payload ``{"path": artifact}``)."""

    @abstractmethod
    def store_file(self, run_id: str, name: str, source: str | Path) -> str:
        """Keep a file with the run as artifact ``name``; returns the name. May raise ``StorageError``."""

    @abstractmethod
    def set_tags(self, run_id: str, values: dict[str, Any], *, params: bool = False) -> None:
        """Tags (or, with ``params``, parameters) of a run; never raises for a full disk (they wait)."""

    @abstractmethod
    def start_child(self, run_id: str, name: str | None) -> str:
        """A child run, Running, to log to; returns its id. Optional (``NotSupported``)."""

    @abstractmethod
    def record_child(self, run_id: str, name: str, *, params: dict | None, tags: dict | None,
                     metrics: dict[str, float] | None, started: float | None, ended: float | None,
                     status: str) -> str:
        """A child run that already ended, with one value per metric, in one write (an AutoML trial). Optional."""

    @abstractmethod
    def started(self, run_id: str) -> None:
        """The run's code starts: Starting → Running (a run host's process calls this)."""

    @abstractmethod
    def finish(self, run_id: str, status: str, error: str | None = None) -> None:
        """End a run this process logged to interactively: "Completed" or "Failed" (with ``error``)."""

    @abstractmethod
    def flush(self) -> None:
        """Write what is buffered now; raises the storage error when the destination refuses (nothing is lost)."""

    @abstractmethod
    def pending(self) -> int:
        """How many values wait to be written."""

    def describe(self) -> str:
        """Where the logging goes, for reprs and messages (never a token or key)."""
        return type(self).__name__

    def client_options(self) -> dict[str, Any] | None:
        """``Client(**options)`` reaches the runs this tracker logs to from this process (their queries: status,
        metrics, files); None where this process cannot ask (an Azure ML job only logs)."""
        return None


class RunsBackend(ABC):
    """Submit, find, watch and stop runs; read what they tracked (metrics, log, files)."""

    @abstractmethod
    def submit(self, submission: "RunSubmission") -> str:
        """Start a run of a cell, script, notebook, sweep or AutoML spec; returns its id. Everything that can be
        refused is checked before anything is written or uploaded."""

    @abstractmethod
    def start_interactive(self, experiment: str, display_name: str | None, tags: dict[str, str]) -> str:
        """A Running run this process logs to (``Experiment.start_logging``); returns its id. Optional."""

    @abstractmethod
    def get(self, run_id: str, *, with_metrics: bool = True) -> "RunInfo":
        """One run (``NotFound`` with suggestions); ``with_metrics=False`` skips the latest metric values."""

    @abstractmethod
    def list(self, *, experiment: str | None, status: list[str] | None, parent_run_id: str | None,
             limit: int | None, offset: int, tags: "dict[str, str | None] | None" = None) -> "tuple[list[RunInfo], int]":
        """Runs newest first — top-level ones, or the children of ``parent_run_id`` — with every tag of ``tags``
        (``None``: set to anything), and the total count (a backend may stop counting COUNT_CAP past the page)."""

    @abstractmethod
    def ids(self) -> list[str]:
        """Ids of recent runs (for "did you mean" and unique parts of an id)."""

    def matching(self, part: str, limit: int) -> list[str]:
        """Up to ``limit`` ids, newest first, that start or end with ``part``. A backend that can search every run
        should: this default searches only ``ids()`` (recent runs)."""
        return [i for i in self.ids() if i.startswith(part) or i.endswith(part)][:limit]

    def named(self, display_name: str, limit: int) -> list[str]:
        """Up to ``limit`` ids of top-level runs whose display name is ``display_name``, newest first (``%aml show
        NAME``). This default reads the runs ``list`` gives; a backend that can ask for the name should."""
        infos, _ = self.list(experiment=None, status=None, parent_run_id=None, limit=None, offset=0)
        return [i.run_id for i in infos if i.display_name == display_name][:limit]

    @abstractmethod
    def exists(self, run_id: str) -> bool:
        """Whether ``run_id`` is a full id of a run here (one cheap lookup)."""

    @abstractmethod
    def cancel(self, run_id: str, reason: str | None = None) -> None:
        """Stop a run (``Conflict`` when it has ended)."""

    @abstractmethod
    def resume(self, run_id: str) -> None:
        """Continue a stopped sweep or AutoML run. Optional."""

    @abstractmethod
    def version(self, run_id: str) -> tuple:
        """A stamp that changes whenever anything a dashboard shows of the run changes; one cheap read."""

    @abstractmethod
    def results(self, run_id: str) -> dict[str, Any]:
        """The ``--out`` values a completed run sent back."""

    @abstractmethod
    def metrics(self, run_id: str, name: str | None = None) -> dict[str, Any]:
        """name → value (one) or list (a series), as Azure ML's ``get_metrics``; never raises on empty series."""

    @abstractmethod
    def metric_series(self, run_id: str, name: str, since: int = 0) -> "tuple[list[tuple[int, float, float]], int]":
        """Points ``(step, time, value)`` of a scalar series after cursor ``since``, and the next cursor."""

    def display_series(self, run_id: str, name: str, limit: int) -> "tuple[list, list, list, int, int] | None":
        """Optional: a whole series as a chart of at most ``limit`` points draws it (``core.series`` min/max buckets):
        ``(steps, timestamps, values, total points, cursor)``, computed where the points are. None: the caller reads
        the points (``metric_series``) and downsamples them itself."""
        return None

    @abstractmethod
    def metric_names(self, run_id: str) -> list[str]:
        """Names of the run's scalar series, in the order they were first logged."""

    @abstractmethod
    def read_log(self, run_id: str, offset: int = 0, tail: int | None = None) -> tuple[str, int]:
        """The run's output from byte ``offset`` and the next offset (never splitting a character). ``tail``: when
        more than that many bytes wait, only the last of them, from a line's start, after a line saying what was
        left out (``common.logs``)."""

    @abstractmethod
    def list_files(self, run_id: str) -> list[str]:
        """Artifact names: ``outputs/…``, ``logs/…``, others."""

    @abstractmethod
    def file_path(self, run_id: str, name: str) -> Path:
        """A local path of one artifact (fetched first where it is remote)."""

    @abstractmethod
    def tracker(self) -> Tracker:
        """The tracker to log to this workspace's runs from this process. Optional: a remote workspace is logged
        to from inside its jobs."""


class ExperimentsBackend(ABC):
    @abstractmethod
    def list(self) -> "list[ExperimentInfo]":
        """Experiments with their run counts."""


class ComputesBackend(ABC):
    @abstractmethod
    def list(self) -> "list[ComputeTarget]":
        """Compute targets with their size and what runs on them now."""

    @abstractmethod
    def create(self, name: str, max_concurrent: int) -> "ComputeTarget":
        """Create (or resize) a compute target of ``max_concurrent`` slots (local) or nodes (a cluster)."""


class DatastoresBackend(ABC):
    @abstractmethod
    def list(self) -> "list[DatastoreInfo]":
        """Datastores; one is the default."""

    @abstractmethod
    def upload(self, src: Path, target: str, datastore: str | None, overwrite: bool,
               progress: "Callable[[int, int], object] | None" = None) -> list[str]:
        """Copy a file or folder in; returns the datastore paths written (``Conflict`` without ``overwrite``).
        ``progress(bytes moved, bytes in all)`` is told as it goes (``common.transfer``)."""

    @abstractmethod
    def ls(self, path: str, datastore: str | None) -> "list[DatastoreEntry]":
        """Entries at a path."""

    @abstractmethod
    def download(self, path: str, target: Path, datastore: str | None, overwrite: bool,
                 progress: "Callable[[int, int], object] | None" = None) -> list[str]:
        """Copy a file or folder out; returns the local paths written. Each file is whole or absent: a failed or
        interrupted copy leaves what was there before."""

    @abstractmethod
    def resolve_input(self, uri: str) -> str:
        """``datastore:PATH`` (or this backend's own form) as what a run of this workspace reads."""


class ModelsBackend(ABC):
    @abstractmethod
    def register(self, name: str, source: Path, *, tags: dict, properties: dict, description: str | None,
                 run_id: str | None = None) -> "ModelInfo":
        """The next version of ``name`` from a local file or folder, atomically."""

    @abstractmethod
    def register_from_run(self, run_id: str, name: str, path: str, *, tags: dict, properties: dict,
                          description: str | None) -> "ModelInfo":
        """The next version of ``name`` from a file or folder of a run (lineage kept)."""

    @abstractmethod
    def get(self, name: str, version: int | None = None) -> "ModelInfo":
        """A version (the latest when None)."""

    @abstractmethod
    def list(self, name: str | None = None, run_id: str | None = None) -> "list[ModelInfo]":
        """Versions, by name then newest version first."""

    @abstractmethod
    def add_tags(self, name: str, version: int, tags: dict[str, str]) -> "ModelInfo":
        """Merge tags into a version."""


class DeploymentsBackend(ABC):
    @abstractmethod
    def deploy(self, name: str, models: list[tuple[str, int | None]], score_path: Path | None, *, host: str,
               port: int | None, auth: bool, update: bool, timeout: float, request_timeout_s: float,
               max_body_bytes: int, environment: str | None, instance_type: str | None,
               workers: int = 1) -> "DeploymentInfo":
        """Deploy (or, with ``update``, swap in place) and return once it answers; one at a time per name.
        ``workers``: how many processes serve it."""

    @abstractmethod
    def get(self, name: str) -> "DeploymentInfo":
        """One service, as it is now (a service whose processes are gone is not shown Healthy)."""

    @abstractmethod
    def list(self) -> "list[DeploymentInfo]":
        """Every service."""

    @abstractmethod
    def keys(self, name: str) -> tuple[str, str]:
        """(primary, secondary) keys."""

    @abstractmethod
    def regenerate_key(self, name: str, which: str) -> None:
        """Rotate "primary" or "secondary"; the service keeps answering."""

    @abstractmethod
    def logs(self, name: str, tail: int | None = None) -> str:
        """The service's log (the last ``tail`` lines)."""

    @abstractmethod
    def delete(self, name: str) -> None:
        """Stop and forget a service."""

    @abstractmethod
    def build_image(self, name: str) -> str:
        """Build the service's container image. Optional."""


class EnvironmentsBackend(ABC):
    @abstractmethod
    def register(self, name: str, spec: Any) -> "EnvironmentInfo":
        """A version of ``name`` from a requirements file, an environment.yml or a list (same content, same version)."""

    @abstractmethod
    def get(self, name: str, version: int | None = None) -> "EnvironmentInfo":
        """A version (the latest when None)."""

    @abstractmethod
    def list(self) -> "list[EnvironmentInfo]":
        """Every version."""

    @abstractmethod
    def python(self, ref: str, progress: Callable[[str], Any] = print) -> str:
        """The interpreter of an environment here, built once. Optional."""


class BatchEndpointsBackend(ABC):
    """Batch endpoints: a named model + scorer + batch settings a service runs batch jobs with. Optional."""

    @abstractmethod
    def create(self, name: str, model: tuple[str, int | None], score_path: Path | None, *, compute: str,
               settings: dict, environment: str | None) -> "BatchEndpointInfo":
        """Create (or update) the endpoint and its one deployment ("default"); ``settings``: mini_batch, parallel,
        retries, error_threshold, output_file (``core.specs.BatchSpec``'s names)."""

    @abstractmethod
    def list(self) -> "list[BatchEndpointInfo]":
        """Every batch endpoint."""

    @abstractmethod
    def delete(self, name: str) -> None:
        """Delete the endpoint with its deployments."""


class DoctorBackend(ABC):
    @abstractmethod
    def check(self, recover: bool = False) -> Any:
        """Check the workspace and repair what is safe to repair; returns a report (``healthy``, a table).
        ``recover``: put a salvaged store in place of a damaged one, where that applies."""


class Backend(ABC):
    """A workspace: its capabilities, a summary, and one sub-contract per ``Client`` operation group."""

    capabilities: Capabilities
    runs: RunsBackend
    experiments: ExperimentsBackend
    computes: ComputesBackend
    datastores: DatastoresBackend
    models: ModelsBackend
    deployments: DeploymentsBackend
    environments: EnvironmentsBackend
    batch_endpoints: BatchEndpointsBackend
    doctor: DoctorBackend

    @abstractmethod
    def workspace_info(self) -> "WorkspaceInfo":
        """The workspace: name, where it is, counts of experiments and runs, the runs active now, computes."""

    def stale(self) -> bool:
        """Whether the workspace's storage was deleted or replaced under this process (its folder removed, a backup
        put back): ``Client.shared`` then opens it again instead of handing out this backend."""
        return False


def not_supported(capabilities: Capabilities, operation: str) -> Exception:
    """The ``NotSupported`` error for ``operation``, saying what to use instead."""
    from .errors import NotSupported

    instead = capabilities.not_supported.get(operation, "")
    return NotSupported(f"{operation} is not available {capabilities.where}" + (f"; {instead}" if instead else ""))
