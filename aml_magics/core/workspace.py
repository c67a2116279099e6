"""Azure ML-style handles over the client: ``Workspace``, ``Experiment``."""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Iterator

from .client import Client, check_name
from .errors import InvalidInput
from .types import WorkspaceInfo

if TYPE_CHECKING:  # pragma: no cover
    from .run import Run


class Workspace:
    """The resolved workspace (``Workspace.current()``), as Azure ML's ``Workspace``."""

    def __init__(self, client: Client):
        self._client = client

    @classmethod
    def current(cls) -> "Workspace":
        return cls(Client.shared())

    @classmethod
    def get(cls, path: str | os.PathLike) -> "Workspace":
        return cls(Client.shared(path))

    @property
    def client(self) -> Client:
        return self._client

    @property
    def name(self) -> str:
        return self._client.config.name

    @property
    def experiments(self) -> dict[str, "Experiment"]:
        return {e.name: Experiment(self, e.name) for e in self._client.experiments.list()}

    @property
    def compute_targets(self):
        return {c.name: c for c in self._client.computes.list()}

    @property
    def datastores(self):
        return {d.name: d for d in self._client.datastores.list()}

    def get_default_datastore(self):
        return self._client.datastores.default()

    def info(self) -> WorkspaceInfo:
        return self._client.workspace

    def __repr__(self) -> str:
        return repr(self.info())

    def _repr_mimebundle_(self, include=None, exclude=None):
        return self.info()._repr_mimebundle_(include, exclude)


class Experiment:
    """``Experiment(ws, name)``: its runs (newest first) and interactive logging."""

    def __init__(self, workspace: "Workspace | Client", name: str):
        check_name("experiment", name)
        if not isinstance(workspace, (Workspace, Client)):
            raise InvalidInput(f"Experiment(workspace, name): give a workspace (Workspace.current()) first, not "
                               f"{type(workspace).__name__}")
        self.workspace = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
        self._client = self.workspace.client
        self.name = name

    def get_runs(self, include_children: bool = False, status: str | None = None) -> Iterator["Run"]:
        """Top-level runs, newest first (children too with ``include_children``), paged lazily."""
        offset, page = 0, 200
        while True:
            batch = self._client.runs.list(experiment=self.name, status=status, limit=page, offset=offset) \
                if offset or self.name in {e.name for e in self._client.experiments.list()} else []
            for run in batch:
                yield run
                if include_children:
                    yield from self._client.runs.children(run.id, recursive=True)
            if len(batch) < page:
                return
            offset += page

    def start_logging(self, display_name: str | None = None, tags: dict | None = None, **v1_only: object) -> "Run":
        """A Running run to log to from this process (call ``run.complete()`` when done)."""
        if v1_only:
            from . import checks

            checks.misspelt("start_logging", Experiment.start_logging, v1_only)
        return self._client.runs.start_logging(self.name, display_name=display_name, tags=tags)

    def __repr__(self) -> str:
        return f"Experiment(name={self.name!r}, workspace={self.workspace.name!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Experiment) and other.name == self.name


class Model:
    """A registered model version, with Azure ML's names: ``Model(ws, name, version=None)``."""

    def __init__(self, workspace: "Workspace | Client", name: str, version: int | None = None):
        self.workspace = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
        self._client = self.workspace.client
        self._info = self._client.models.get(name, version)

    @classmethod
    def _from_info(cls, workspace: "Workspace", info) -> "Model":
        model = cls.__new__(cls)
        model.workspace, model._client, model._info = workspace, workspace.client, info
        return model

    @classmethod
    def register(cls, workspace: "Workspace", model_path: str, model_name: str, tags: dict | None = None,
                 properties: dict | None = None, description: str | None = None, **v1_only: object) -> "Model":
        if v1_only:  # model_framework=, datasets=, …: taken, not used; tag= for tags= was dropped without a word
            from . import checks

            checks.misspelt("Model.register", Model.register, v1_only)
        info = workspace.client.models.register(model_name, model_path, tags=tags, properties=properties,
                                                description=description)
        return cls._from_info(workspace, info)

    @classmethod
    def list(cls, workspace: "Workspace", name: str | None = None, tags: list | dict | None = None) -> list["Model"]:
        return [cls._from_info(workspace, m) for m in workspace.client.models.list(name=name, tags=tags)]

    @staticmethod
    def get_model_path(model_name: str, version: int | None = None, _workspace: "Workspace | None" = None) -> str:
        """Path of a model's file or folder: inside a scoring service the deployed copy, else the registry's."""
        import json

        from . import checks

        checks.text("model name", model_name)  # (a list: 'unhashable type' from inside)
        deployed = json.loads(os.environ.get("AML_MAGICS_MODEL_PATHS", "{}") or "{}")
        key = model_name if version is None else f"{model_name}:{version}"
        for candidate in (key, model_name):
            if candidate in deployed and (version is None or candidate == key or deployed.get(key) is None):
                return deployed[candidate]
        ws = _workspace or Workspace.current()
        return ws.client.models.get(model_name, version).path

    name = property(lambda self: self._info.name)
    version = property(lambda self: self._info.version)
    id = property(lambda self: self._info.id)
    tags = property(lambda self: dict(self._info.tags))
    properties = property(lambda self: dict(self._info.properties))
    framework = property(lambda self: self._info.framework)
    run_id = property(lambda self: self._info.run_id)
    description = property(lambda self: self._info.description)
    path = property(lambda self: self._info.path)

    def download(self, target_dir: str = ".", exist_ok: bool = False) -> str:
        return self._client.models.download(self.name, self.version, target_dir, exist_ok=exist_ok)

    def add_tags(self, tags: dict) -> None:
        self._info = self._client.models.add_tags(self.name, self.version, tags)

    def __repr__(self) -> str:
        return repr(self._info)

    def _repr_mimebundle_(self, include=None, exclude=None):
        return self._info._repr_mimebundle_(include, exclude)
