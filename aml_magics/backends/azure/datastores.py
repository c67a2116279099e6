"""Datastores of an Azure ML workspace: the blob containers behind them, reached with the credentials the
workspace holds for them (``listSecrets``). A container handle is cached for ten minutes per datastore."""
from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...core.contract import DatastoresBackend, not_supported
from ...core.errors import Conflict, InvalidInput, NotFound
from ...core.names import default_datastore
from ...core.types import DatastoreEntry, DatastoreInfo
from ..common.transfer import Transfer, replace_whole
from ..common.uploads import file_destination, folder_files
from . import ops
from .convert import clean_datastore_path, datastore_uri

if TYPE_CHECKING:  # pragma: no cover
    from .backend import AzureBackend


class AzureDatastores(DatastoresBackend):
    def __init__(self, backend: "AzureBackend"):
        self.b = backend
        self._containers: dict[str, tuple[float, Any]] = {}  # datastore → (when asked, its container)
        self._default: tuple[float, str, frozenset[str]] | None = None  # (when asked, default's name, all names)

    def list(self) -> list[DatastoreInfo]:
        return ops.datastores(self.b.arm, self.b.ws)

    # -- the storage behind a datastore ------------------------------------------------------------------

    def describe(self, name: str | None) -> dict:
        """The datastore named, else the workspace's default one."""
        if name:
            return self.b.arm.get(f"{self.b.ws.path}/datastores/{name}")
        stores = self.b.arm.list_all(f"{self.b.ws.path}/datastores")
        return default_datastore(stores, lambda d: bool((d.get("properties") or {}).get("isDefault")),
                                 lambda d: d.get("name", "?"))

    def default_container(self):
        """(name, container) of the workspace's default datastore."""
        body = self.describe(None)
        return body.get("name"), self.container(None, body)

    def cached_container(self, store: str):
        """The container of ``store``, its credential asked again every ten minutes (dashboards poll logs)."""
        now = time.monotonic()
        cached = self._containers.get(store)
        if cached is None or now - cached[0] > 600:
            cached = self._containers[store] = (now, self.container(store))
        return cached[1]

    def container(self, datastore: str | None, body: dict | None = None):
        """The blob container behind a datastore, with the credential the workspace holds for it."""
        from .blob import BlobContainer

        body = body or self.describe(datastore)
        name = body.get("name") or datastore
        props = body.get("properties") or {}
        if props.get("datastoreType") not in ("AzureBlob", None):
            raise not_supported(self.b.capabilities, f"{props.get('datastoreType')} datastores")
        account, container = props.get("accountName", ""), props.get("containerName", "")
        if self.b.storage is not None:  # an emulator or another cloud's endpoint, for this account
            base, account = self.b.storage
        else:
            base = f"{props.get('protocol') or 'https'}://{account}.blob.{props.get('endpoint') or 'core.windows.net'}"
        if (props.get("credentials") or {}).get("credentialsType") == "None":
            # an identity-based datastore holds no secret: the caller's own token reaches the storage, as with
            # Microsoft's SDK (they need a Storage Blob Data role on the account)
            from .rest import STORAGE_SCOPE

            return BlobContainer(f"{base}/{container}", account, token=lambda: self.b.arm.token(STORAGE_SCOPE))
        secrets = self.b.arm.post(f"{self.b.ws.path}/datastores/{name}/listSecrets")
        kind = secrets.get("secretsType")
        if kind == "AccountKey":
            return BlobContainer(f"{base}/{container}", account, key=secrets.get("key"))
        if kind == "Sas":
            return BlobContainer(f"{base}/{container}", account, sas=secrets.get("sasToken"))
        raise not_supported(self.b.capabilities, f"datastores with {kind} credentials")

    # -- files --------------------------------------------------------------------------------------------

    def upload(self, src, target, datastore, overwrite, progress=None):
        src = Path(src)
        container = self.container(datastore)
        into = str(target or "").replace("\\", "/").endswith("/")
        target = clean_datastore_path(target)
        if src.is_file():  # one rule with the local workspace for where the file lands
            files = [(src, file_destination(target + "/" * into, src.name,
                                            lambda f: any(True for _ in container.list(f + "/"))))]
        else:
            files = [(p, "/".join(x for x in (target, rel) if x)) for p, rel in folder_files(src)]
        existing = {name for name, _ in container.list(target)} if not overwrite else set()
        clash = next((name for _, name in files if name in existing), None)
        if clash is not None:  # said before anything is uploaded
            raise Conflict(f"{clash} exists in the datastore; add --overwrite to replace it (nothing was uploaded)")
        moved = Transfer(sum(Path(p).stat().st_size for p, _ in files), progress) if progress is not None else None
        done = []
        for path, name in files:
            container.put_file(name, Path(path), moved)  # a block at a time: a large file is never read whole
            done.append(name)
        if moved is not None:
            moved.finish()
        return done

    def ls(self, path, datastore):
        container = self.container(datastore)
        prefix = clean_datastore_path(path)
        return [DatastoreEntry(name, size, False) for name, size in container.list(prefix + "/" if prefix else "")]

    def download(self, path, target, datastore, overwrite, progress=None):
        container = self.container(datastore)
        prefix = clean_datastore_path(path)
        blobs = [(n, size) for n, size in container.list(prefix)
                 if not prefix or n == prefix or n.startswith(prefix + "/")]  # "tables" must not take "tables2/…"
        if not blobs:
            raise NotFound(f"nothing at {path!r} in the datastore")
        target = Path(target)
        parent = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        pairs = []
        for name, _ in blobs:  # every destination checked before anything is written
            dest = (target / (name[len(parent):].lstrip("/") if parent else name)).resolve()
            if target.resolve() not in dest.parents:
                raise InvalidInput(f"{name} would be written outside {target}")
            if dest.exists() and not overwrite:
                raise Conflict(f"{dest} exists; add --overwrite to replace it")
            pairs.append((name, dest))
        moved = Transfer(sum(size for _, size in blobs), progress) if progress is not None else None
        done = []
        for name, dest in pairs:
            dest.parent.mkdir(parents=True, exist_ok=True)
            # streamed into a file beside it, then put in place: never a half-written file, nor the whole in memory
            replace_whole(dest, lambda tmp, name=name: container.get_file(name, tmp, moved))
            done.append(str(dest))
        if moved is not None:
            moved.finish()
        return done

    def _names(self) -> tuple[str, frozenset[str]]:
        """(the default datastore's name, every datastore's name), from one list, asked again every ten minutes."""
        now = time.monotonic()
        if self._default is None or now - self._default[0] > 600:
            stores = self.list()
            default = default_datastore(stores, lambda d: d.is_default, lambda d: d.name)
            self._default = (now, default.name, frozenset(d.name for d in stores))
        return self._default[1], self._default[2]

    def default_name(self) -> str:
        """The workspace's default datastore (``core.names.default_datastore``): where uploads go and where
        ``datastore:PATH`` points — one rule for both."""
        return self._names()[0]

    def resolve_input(self, uri: str) -> str:
        """``datastore:PATH`` in the default datastore, or ``datastore:NAME/PATH`` when NAME is one of the
        workspace's datastores (the local workspace's rule)."""
        if not str(uri).startswith("datastore:"):
            return uri
        default, names = self._names()
        first, _, tail = str(uri)[len("datastore:"):].lstrip("/").partition("/")
        if tail and first in names:
            return f"azureml://datastores/{first}/paths/{tail}"
        return datastore_uri(uri, default)
