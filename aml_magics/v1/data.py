"""``azureml.core.dataset``, ``azureml.core.datastore``, ``azureml.data``: v1 datastores and datasets over our
datastores (``client.datastores``) and ``datastore:PATH`` inputs.

A ``FileDataset`` / ``TabularDataset`` is a list of datastore paths, local files or URLs; ``as_mount()`` /
``as_download()`` / ``as_named_input(...)`` hand a script the local path (the local workspace's datastores are
folders); a dataset of several files is handed over as one folder, as v1 mounts it (``_staged_uri``).
``register(ws, name)`` keeps the dataset's definition in the workspace (``datasets.json`` of the local workspace), so
``Dataset.get_by_name(ws, name)`` finds it again."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from ..core import checks
from ..core.errors import AmlError, InvalidInput, NotFound, NotSupported
from ..core.render import counted
from . import client_of, note_once, unknown_settings

__all__ = ["Dataset", "Datastore", "FileDataset", "TabularDataset", "DataReference", "DataPath", "DatasetConsumptionConfig",
           "OutputFileDatasetConfig"]


class Datastore:
    """v1's ``Datastore``: ``upload``, ``upload_files``, ``download``, ``path(...)``, ``as_mount()``."""

    def __init__(self, workspace: Any, name: str | None = None):
        client = client_of(workspace, "Datastore(workspace, name)")
        if name is not None:
            checks.text("datastore name", name)
        stores = {d.name: d for d in client.datastores.list()}
        info = client.datastores.default() if name is None else stores.get(name)
        if info is None:
            raise NotFound.with_suggestions("datastore", name, stores)
        self._set(workspace, info)

    def _set(self, workspace: Any, info: Any) -> None:
        self.workspace, self._info, self.name = workspace, info, info.name
        self.datastore_type = "AzureBlob"
        self.container_name = info.name
        self.account_name = "local" if workspace.client.config.backend == "local" else workspace.name

    @classmethod
    def _wrap(cls, workspace: Any, info: Any) -> "Datastore":
        store = cls.__new__(cls)
        store._set(workspace, info)
        return store

    @staticmethod
    def get(workspace: Any, datastore_name: str) -> "Datastore":
        return Datastore(workspace, datastore_name)

    @staticmethod
    def get_default(workspace: Any) -> "Datastore":
        return Datastore(workspace)

    @staticmethod
    def register_azure_blob_container(*args: Any, **kwargs: Any):
        raise NotSupported("registering a storage account is done in Azure ML studio; here use the workspace's "
                           "datastores (ws.datastores) — %aml datastore list")

    register_azure_file_share = register_azure_data_lake_gen2 = register_azure_blob_container

    def upload(self, src_dir: str, target_path: str | None = None, overwrite: bool = False,
               show_progress: bool = True) -> "DataReference":
        from ..core.progress import progress_line

        with progress_line("Uploading", show_progress) as line:
            done = self.workspace.client.datastores.upload(src_dir, target_path or "", datastore=self.name,
                                                           overwrite=overwrite, progress=line)
        if show_progress:
            print(f"Uploaded {counted(len(done), 'file')} to datastore {self.name}/{target_path or ''}")
        return DataReference(self, target_path or "")

    def upload_files(self, files: Iterable[str], relative_root: str | None = None, target_path: str | None = None,
                     overwrite: bool = False, show_progress: bool = True) -> "DataReference":
        count = 0
        checks.text("upload_files: target_path", target_path or "", empty=True)
        if relative_root is not None:
            checks.path_kind("upload_files: relative_root", relative_root)
        for f in files:
            p = Path(f)
            try:
                rel = p.resolve().relative_to(Path(relative_root).resolve()).parent.as_posix() if relative_root else ""
            except ValueError:
                raise InvalidInput(f"upload_files: {checks.shown(str(f))} is not inside relative_root "
                                   f"{checks.shown(str(relative_root))}; give the folder the files are in") from None
            target = "/".join(x.strip("/") for x in (target_path or "", rel) if x and x != ".")
            self.workspace.client.datastores.upload(p, target + "/" if target else "", datastore=self.name,
                                                    overwrite=overwrite)  # a folder: the file keeps its name
            count += 1
        if show_progress:
            print(f"Uploaded {counted(count, 'file')} to datastore {self.name}/{target_path or ''}")
        return DataReference(self, target_path or "")

    def download(self, target_path: str, prefix: str | None = None, overwrite: bool = False,
                 show_progress: bool = True) -> int:
        from ..core.progress import progress_line

        # v1 keeps each blob's whole path under target_path: prefix "a/b" lands in target_path/a/b/…
        parent = str(prefix or "").strip("/").rpartition("/")[0]
        with progress_line("Downloading", show_progress) as line:
            done = self.workspace.client.datastores.download(prefix or "", Path(target_path) / parent,
                                                             datastore=self.name, overwrite=overwrite, progress=line)
        if show_progress:
            print(f"Downloaded {counted(len(done), 'file')} to {target_path}")
        return len(done)

    def path(self, path: str | None = None, data_reference_name: str | None = None) -> "DataReference":
        return DataReference(self, path or "")

    def as_mount(self) -> "DataReference":
        return DataReference(self, "")

    as_download = as_mount

    def __repr__(self) -> str:
        return f"Datastore(name={self.name!r}, type={self.datastore_type})"


class DataReference:
    """A path in a datastore, as a script argument: the local path the run reads."""

    def __init__(self, datastore: Datastore, path_on_datastore: str = "", mode: str = "mount"):
        checks.text("path_on_datastore", path_on_datastore, empty=True)
        folder = path_on_datastore.endswith("/") and path_on_datastore.strip("/")
        self.datastore, self.mode = datastore, mode
        self.path_on_datastore = path_on_datastore.strip("/") + ("/" if folder else "")  # a folder keeps its "/"

    def as_mount(self) -> "DataReference":
        return DataReference(self.datastore, self.path_on_datastore, "mount")

    def as_download(self, path_on_compute: str | None = None, overwrite: bool = False) -> "DataReference":
        return DataReference(self.datastore, self.path_on_datastore, "download")

    def _split(self) -> tuple["DataReference", str]:
        """``(the folder before a pattern, the pattern)`` — ``(self, "")`` for a path without one."""
        parts = self.path_on_datastore.split("/")
        cut = next((i for i, part in enumerate(parts) if _wild(part)), None)
        if cut is None or self._exists():  # a file named "data[1].csv" is itself
            return self, ""
        return DataReference(self.datastore, "/".join(parts[:cut]) + "/", self.mode), "/".join(parts[cut:])

    def _exists(self) -> bool:
        """Whether this exact path is in the datastore (asked only of a path that looks like a pattern)."""
        client = self.datastore.workspace.client
        path = self.path_on_datastore.rstrip("/")
        try:
            if client.capabilities.inputs_readable_here:
                return Path(client.datastores.resolve_input(self._uri())).exists()
            parent = path.rsplit("/", 1)[0] if "/" in path else ""
            return any(e.path.rstrip("/") == path or e.path.startswith(path + "/")
                       for e in client.datastores.ls(parent, self.datastore.name))
        except AmlError:  # not there, or the storage cannot be listed from here: the pattern it looks like
            return False

    def _uri(self) -> str:
        return f"datastore:{self.datastore.name}/{self.path_on_datastore}" if self.path_on_datastore \
            else f"datastore:{self.datastore.name}"

    def _as_argument(self) -> str:
        client = self.datastore.workspace.client
        if not client.capabilities.inputs_readable_here:
            raise NotSupported("datastore paths as script arguments run on the local workspace; on Azure ML pass "
                               "them as inputs: %aml submit train.py --input data=datastore:PATH")
        return client.datastores.resolve_input(self._uri())

    def __str__(self) -> str:
        return self._uri()


DataPath = DataReference


class _Dataset:
    def __init__(self, paths: list[Any], name: str | None = None, description: str | None = None):
        self._paths, self.name, self.description, self.version = paths, name, description, None
        self._input_name = None

    def as_named_input(self, name: str) -> "_Dataset":
        self._input_name = name
        return self

    def as_mount(self, path_on_compute: str | None = None) -> "_Dataset":
        return self

    def as_download(self, path_on_compute: str | None = None) -> "_Dataset":
        return self

    def _local_paths(self) -> list[str]:
        return [str(local) for local, _ in self._entries()]

    def _entries(self) -> list[tuple[str, str]]:
        """``(local path or URL, name under the dataset)`` of every path; a pattern (``*``, ``?``, ``[…]``, ``**``) is
        its matching files, each named relative to the folder before the pattern."""
        out: list[tuple[str, str]] = []
        for p in self._paths:
            out += _entries_of(p)
        return out

    def _check(self) -> None:
        """``validate=True``: every path this process can see exists (a pattern matches a file) — else one line now,
        not a failure when the data is first read. Datastore paths on Azure ML are left to the run."""
        for p in self._paths:
            if isinstance(p, DataReference) and not p.datastore.workspace.client.capabilities.inputs_readable_here:
                continue
            try:
                _entries_of(p)
            except NotFound as exc:
                raise NotFound(f"{exc}; check the path, or pass validate=False to define the dataset before its "
                               "files exist") from None

    def _as_argument(self) -> str:
        paths = self._local_paths()
        if len(paths) != 1:
            raise NotSupported(f"a dataset of {len(paths)} files (several paths, or a pattern's matches) as one "
                               "argument: pass their folder (datastore.path('folder/')) or each file")
        return paths[0]

    def register(self, workspace: Any, name: str, description: str | None = None, tags: dict | None = None,
                 create_new_version: bool = False) -> "_Dataset":
        from ..core import checks

        checks.text("dataset name", name, max_len=checks.MAX_NAME)
        if description is not None:
            checks.text("description", str(description), empty=True)
        registry = _registry(workspace)
        entry = {"kind": type(self).__name__, "paths": [_serial(p) for p in self._paths], "description": description,
                 "tags": {str(k): str(v) for k, v in (tags or {}).items()}, **self._settings()}
        with registry.lock():  # two notebooks registering at once: neither registration is lost
            data = registry.read()
            versions = data.get(name, [])
            if versions and not create_new_version:
                raise InvalidInput(f"a dataset named {name!r} exists; pass create_new_version=True for a new version")
            versions.append(entry)
            data[name] = versions
            registry.write(data)
        self.name, self.version, self.description = name, len(versions), description
        return self

    def _settings(self) -> dict:
        return {}

    def download(self, target_path: str | None = None, overwrite: bool = False) -> list[str]:
        import shutil

        target = Path(target_path or ".")
        target.mkdir(parents=True, exist_ok=True)
        entries = self._entries()
        existing = [str(target / rel) for _, rel in entries if (target / rel).exists()]
        if existing and not overwrite:  # checked before anything is copied: a refused download changes nothing
            raise InvalidInput(f"{existing[0]} exists; pass overwrite=True")
        done = []
        for p, rel in entries:
            src, dest = Path(p), target / rel
            if src.is_dir():
                shutil.copytree(src, dest, dirs_exist_ok=True)
            else:
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dest)
            done.append(str(dest))
        return done

    def to_path(self) -> list[str]:
        out = []
        for p, rel in self._entries():
            path = Path(p)
            out += [f"/{f.relative_to(path).as_posix()}" for f in sorted(path.rglob("*")) if f.is_file()] \
                if path.is_dir() else [f"/{rel}"]
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, paths={[str(p) for p in self._paths]})"


class FileDataset(_Dataset):
    pass


class TabularDataset(_Dataset):
    def __init__(self, paths: list[Any], separator: str = ",", header: bool = True, **kwargs: Any):
        if not isinstance(separator, str) or not separator or "\n" in separator:
            raise InvalidInput(f"separator={separator!r}: give the character between columns, like ',' or '\\t'")
        super().__init__(paths, **kwargs)
        self.separator, self.header = separator, header

    def _settings(self) -> dict:
        return {"separator": self.separator, "header": self.header}

    def to_pandas_dataframe(self, on_error: str = "null", out_of_range_datetime: str = "null"):
        import pandas as pd

        frames = []
        for p in self._local_paths():
            files = sorted(f for f in Path(p).rglob("*") if f.is_file()) if not p.startswith("http") and \
                Path(p).is_dir() else [p]
            for f in files:
                frames.append(pd.read_parquet(f) if str(f).endswith(".parquet") else
                              pd.read_csv(f, sep=self.separator, header=0 if self.header else None))
        if not frames:
            raise NotFound("the dataset has no files")
        return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]

    def _automl_data(self):
        """What AutoML trains on: the one CSV/Parquet file, else the table in memory."""
        if len(self._paths) == 1 and isinstance(self._paths[0], DataReference):
            return self._paths[0]._uri(), False, {}  # a datastore input of the run (on Azure ML too)
        paths = self._local_paths()
        if len(paths) == 1 and Path(paths[0]).is_file():
            return paths[0], False, {}
        return "training_data", True, {"training_data": self.to_pandas_dataframe()}

    def random_split(self, percentage: float, seed: int | None = None):
        frame = self.to_pandas_dataframe()
        first = frame.sample(frac=percentage, random_state=seed)
        return _InMemory(first), _InMemory(frame.drop(first.index))

    def drop_columns(self, columns):
        return _InMemory(self.to_pandas_dataframe().drop(columns=columns))

    def keep_columns(self, columns):
        return _InMemory(self.to_pandas_dataframe()[list(columns) if not isinstance(columns, str) else [columns]])


class _InMemory(TabularDataset):
    """A TabularDataset made from another in this session (random_split, keep_columns): a DataFrame."""

    def __init__(self, frame):
        super().__init__([])
        self._frame = frame

    def to_pandas_dataframe(self, *args: Any, **kwargs: Any):
        return self._frame.copy()

    def _automl_data(self):
        return "training_data", True, {"training_data": self._frame}

    def register(self, *args: Any, **kwargs: Any):
        raise NotSupported("register the files a split came from (Dataset.Tabular.from_delimited_files(...)); a "
                           "split lives in this session only")


class _FileFactory:
    @staticmethod
    def from_files(path: Any, validate: bool = True, partition_format: Any = None, is_file: bool = False):
        return _validated(FileDataset(_paths(path)), validate)


class _TabularFactory:
    @staticmethod
    def from_delimited_files(path: Any, validate: bool = True, include_path: bool = False, infer_column_types: bool = True,
                             set_column_types: Any = None, separator: str = ",", header: Any = True, **other: Any):
        unknown_settings("Dataset.Tabular.from_delimited_files", _TabularFactory.from_delimited_files, other)
        return _validated(TabularDataset(_paths(path), separator=separator, header=bool(header)), validate)

    @staticmethod
    def from_parquet_files(path: Any, validate: bool = True, **other: Any):
        unknown_settings("Dataset.Tabular.from_parquet_files", _TabularFactory.from_parquet_files, other)
        return _validated(TabularDataset(_paths(path)), validate)

    @staticmethod
    def register_pandas_dataframe(dataframe: Any, target: Any, name: str, description: str | None = None,
                                  **_ignored: Any):
        store, folder = (target if isinstance(target, tuple) and len(target) == 2 else (target, name))
        if not isinstance(store, Datastore):  # (a datastore's name: an AttributeError from inside)
            raise InvalidInput(f"register_pandas_dataframe: target is a Datastore or (datastore, 'folder'), got "
                               f"{checks.shown(target)}; use ws.get_default_datastore()")
        checks.text("dataset name", name)
        ws = store.workspace
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{name}.csv"
            dataframe.to_csv(path, index=False)
            ws.client.datastores.upload(path, str(folder), datastore=store.name, overwrite=True)
        ds = TabularDataset([DataReference(store, f"{folder}/{name}.csv")])
        return ds.register(ws, name, description=description, create_new_version=True)


class Dataset:
    """``Dataset.File.from_files``, ``Dataset.Tabular.from_delimited_files``, ``Dataset.get_by_name``."""

    File = _FileFactory
    Tabular = _TabularFactory

    @staticmethod
    def get_by_name(workspace: Any, name: str, version: str | int = "latest") -> _Dataset:
        checks.text("dataset name", name)
        # (int() took "abc" and None with a ValueError or TypeError from inside, and 1.5 or True as version 1)
        wanted = None if version in ("latest", None) else checks.whole("Dataset.get_by_name: version", version, 1)
        data = _registry(workspace).read()
        versions = data.get(name)
        if not versions:
            raise NotFound.with_suggestions("dataset", name, data, hint="register one with dataset.register(ws, name)")
        index = len(versions) if wanted is None else wanted
        if not 1 <= index <= len(versions):
            raise NotFound(f"dataset {name!r} has versions 1–{len(versions)}")
        entry = versions[index - 1]
        paths = [_deserial(workspace, p) for p in entry["paths"]]
        ds = TabularDataset(paths, separator=entry.get("separator", ","), header=entry.get("header", True)) \
            if entry["kind"] == "TabularDataset" else FileDataset(paths)
        ds.name, ds.version, ds.description = name, index, entry.get("description")
        return ds

    @staticmethod
    def get_by_id(workspace: Any, id: str):
        raise NotSupported("datasets are found by name here: Dataset.get_by_name(ws, name)")

    @staticmethod
    def get_all(workspace: Any) -> dict:
        return {name: Dataset.get_by_name(workspace, name) for name in _registry(workspace).read()}


DatasetConsumptionConfig = _Dataset


def _paths(path: Any) -> list[Any]:
    items = path if isinstance(path, list) else [path]
    out = []
    for item in items:
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], Datastore):
            out.append(DataReference(item[0], str(item[1])))
        elif isinstance(item, (str, Path)) and not str(item).strip():  # Path("") is the working folder: all of it
            raise InvalidInput("a dataset path is empty: give a file, a folder, a pattern ('data/*.csv') or a URL")
        elif isinstance(item, (DataReference, str, Path)):
            out.append(item)
        else:
            raise InvalidInput(f"dataset path {item!r}: give (datastore, 'path'), datastore.path('…'), a local path or "
                               "a URL")
    if not out:
        raise InvalidInput("the dataset needs at least one path")
    return out


def _validated(dataset: "_Dataset", validate: Any) -> "_Dataset":
    if validate:
        dataset._check()
    return dataset


def _wild(part: str) -> bool:
    return any(c in part for c in "*?[")


def _entries_of(p: Any) -> list[tuple[str, str]]:
    """One dataset path as ``(local path or URL, name under the dataset)`` — a pattern as its matching files."""
    import glob

    if isinstance(p, str) and p.startswith(("http://", "https://")):
        return [(p, p.rstrip("/").rsplit("/", 1)[-1] or "data")]
    if isinstance(p, DataReference):
        folder, pattern = p._split()
        if not pattern:
            local = Path(p._as_argument())
            return [(str(local), local.name)]
        base, shown = Path(folder._as_argument()), p._uri()
    else:
        text = str(checks.expand_home(str(p)))
        parts = text.split("/")
        kind = checks.path_kind("dataset path", text)
        if not any(_wild(part) for part in parts) or kind != "missing":  # a file named "data[1].csv" is itself
            local = Path(text)
            if kind == "missing":
                raise NotFound(f"dataset path {str(p)!r} does not exist")
            return [(str(local.resolve()), local.name)]
        cut = next(i for i, part in enumerate(parts) if _wild(part))
        base = Path("/".join(parts[:cut]) or ("/" if text.startswith("/") else ".")).resolve()
        pattern, shown = "/".join(parts[cut:]), str(p)
    if ".." in pattern.split("/"):
        raise InvalidInput(f"dataset path {shown!r}: a pattern cannot climb out with '..'; put it before the pattern")
    found: dict[str, str] = {}
    for match in sorted(glob.glob(glob.escape(str(base)) + "/" + pattern, recursive=True)):
        path = Path(match)
        for f in ([path] if path.is_file() else sorted(q for q in path.rglob("*") if q.is_file())):
            found.setdefault(str(f.resolve()), f.relative_to(base).as_posix())
    if not found:
        raise NotFound(f"dataset path {shown!r} matches no file")
    return list(found.items())


STAGED = "azureml/datasets"  # where a dataset handed to a run as one folder is copied, in the default datastore


def _staged_uri(value: Any, client: Any) -> str | None:
    """A dataset a run cannot read where its files are — several files (v1 hands the script one folder: the mount
    point), or local files for a run that is not on this machine — copied into the default datastore under
    ``azureml/datasets/<digest>/`` (each file named as under the dataset, so a pattern's matches keep their
    subfolders), and that folder's ``datastore:`` URI; ``None`` for a dataset passed as it is (one local file or URL
    on this machine). The digest is of every file's path, size and time: the same data is copied once."""
    import hashlib

    if not isinstance(value, _Dataset) or isinstance(value, _InMemory):
        return None
    here = client.capabilities.inputs_readable_here
    if not here and any(isinstance(p, DataReference) for p in value._paths):
        raise NotSupported(f"{value!r} as one argument: on Azure ML a dataset of several datastore paths is passed "
                           "as their folder (Dataset.File.from_files((datastore, 'folder/'))) or one input per path")
    entries = value._entries()
    if any(str(p).startswith(("http://", "https://")) for p, _ in entries):
        if len(entries) == 1:
            return None
        raise NotSupported(f"a dataset of {len(entries)} web files as one argument: download them first "
                           "(dataset.download('data')) and pass Dataset.File.from_files('data/*')")
    if here and len(entries) == 1:
        return None
    files: list[tuple[Path, str]] = []
    for p, rel in entries:
        path = Path(p)
        files += [(f, f"{rel}/{f.relative_to(path).as_posix()}") for f in sorted(path.rglob("*")) if f.is_file()] \
            if path.is_dir() else [(path, rel)]
    taken: dict[str, Path] = {}
    for f, rel in files:
        if taken.setdefault(rel, f) != f:
            raise InvalidInput(f"two files of the dataset would both be {rel!r} in the run's folder ({taken[rel]} and "
                               f"{f}): give the dataset one folder or pattern, or rename one")
    digest = hashlib.sha256()
    for f, rel in files:
        st = f.stat()
        digest.update(f"{f}\0{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
    folder = f"{STAGED}/{digest.hexdigest()[:16]}"
    uri = f"datastore:{client.datastores.default().name}/{folder}"
    try:
        if here:
            have = Path(client.datastores.resolve_input(uri))
            done = all((have / rel).is_file() for _, rel in files)
        else:  # one listing of the folder's blobs
            names = {e.path for e in client.datastores.ls(folder)}
            done = all(f"{folder}/{rel}" in names for _, rel in files)
        if done:
            return uri  # copied by an earlier submission
    except NotFound:
        pass
    for f, rel in files:  # into its folder (a trailing "/": the file keeps its name on either backend)
        client.datastores.upload(f, "/".join([folder, *rel.split("/")[:-1]]) + "/", overwrite=True)
    return uri


def _serial(p: Any) -> Any:
    if isinstance(p, DataReference):
        return {"datastore": p.datastore.name, "path": p.path_on_datastore}
    return str(p)


def _deserial(workspace: Any, p: Any) -> Any:
    if isinstance(p, dict):
        return DataReference(Datastore(workspace, p["datastore"]), p["path"])
    return p


class _registry:
    """The registered datasets of a local workspace: ``datasets.json`` in its folder (written whole, atomically)."""

    def __init__(self, workspace: Any):
        config = client_of(workspace, "a dataset's workspace").config
        if config.backend != "local":
            raise NotSupported("registered v1 datasets are kept by the local workspace; on Azure ML use datastore "
                               "paths (datastore:PATH) as inputs")
        self.path = Path(config.path) / "v1-datasets.json"

    def read(self) -> dict:
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except ValueError:  # never overwritten: what it holds may be someone's only record
            raise InvalidInput(f"{self.path} is not valid JSON (edited by hand?); fix or move it, then "
                               "register again") from None

    def lock(self):
        from filelock import FileLock

        self.path.parent.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.path) + ".lock", timeout=30)

    def write(self, data: dict) -> None:
        import os

        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
        os.replace(tmp, self.path)


class _StepOutput:
    """A folder one pipeline step writes and later steps read (``PipelineData``, ``OutputFileDatasetConfig``)."""

    def __init__(self, name: str | None = None, datastore: Any = None, **_ignored: Any):
        import uuid

        self.name = str(name) if name else f"output_{uuid.uuid4().hex[:8]}"
        self.datastore = datastore
        self._tabular = False

    def as_input(self, name: str | None = None) -> "_StepInput":
        return _StepInput(self, name)

    def as_mount(self, *args: Any, **kwargs: Any) -> "_StepOutput":
        return self

    as_upload = as_download = as_dataset = as_mount

    def as_named_input(self, name: str) -> "_StepInput":
        return _StepInput(self, name)

    def read_delimited_files(self, *args: Any, **kwargs: Any) -> "_StepOutput":
        self._tabular = True
        return self

    read_parquet_files = read_delimited_files

    def register_on_complete(self, name: str, *args: Any, **kwargs: Any) -> "_StepOutput":
        note_once("register_on_complete", "register_on_complete() is accepted; the step's output folder is recorded "
                                          "with its run (pipeline.outputs), not registered as a dataset")
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class _StepInput:
    """An earlier step's output as a later step's input (``output.as_input("name")``)."""

    def __init__(self, output: _StepOutput, name: str | None = None):
        self._output, self._input_name = output, name

    def as_mount(self, *args: Any, **kwargs: Any) -> "_StepInput":
        return self

    as_download = as_mount


class PipelineData(_StepOutput):
    """v1's ``PipelineData(name, datastore=...)``: an intermediate folder between pipeline steps."""


class OutputFileDatasetConfig(_StepOutput):
    """v1's ``OutputFileDatasetConfig(name=..., destination=(datastore, path))``: a step's output folder (in a
    pipeline; a run outside a pipeline writes its files to ``outputs/``)."""

    def __init__(self, name: str | None = None, destination: Any = None, source: str | None = None, **_ignored: Any):
        super().__init__(name)
        if destination is not None:
            note_once("ofdc-destination", "OutputFileDatasetConfig(destination=...) is accepted; the output folder is "
                                          "the workspace's (azureml/RUN/STEP/NAME in the default datastore)")
