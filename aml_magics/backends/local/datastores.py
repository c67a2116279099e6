"""Local datastores: folders of the workspace, with Azure ML's default name (``workspaceblobstore``).

Every path stays inside its datastore: no ``..``, no absolute paths, and no link that leads out — in single-path
operations and in every folder operation (upload into, download of, listing of and ``--input`` of a folder).
"""
from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from ...core import checks
from ...core.contract import DatastoresBackend
from ...core.errors import Conflict, InvalidInput, NotFound, StorageError, storage_reason
from ...core.render import counted
from ...core.types import DatastoreEntry, DatastoreInfo
from ..common.transfer import Transfer, copy_file, replace_whole
from ..common.uploads import file_destination, folder_files
from .layout import UPLOADING, uploading_beside

if TYPE_CHECKING:  # pragma: no cover
    from .backend import LocalBackend


class LocalDatastores(DatastoresBackend):
    def __init__(self, backend: "LocalBackend"):
        self.store = backend.store
        self.workspace = backend.path

    def list(self) -> list[DatastoreInfo]:
        return [DatastoreInfo(r["name"], r["kind"], r["path"], bool(r["is_default"])) for r in self.store.list_datastores()]

    def _datastore_root(self, name: str | None) -> Path:
        stores = self.list()
        if name is None:
            return Path(next(s.path for s in stores if s.is_default))
        for s in stores:
            if s.name == name:
                return Path(s.path)
        names = [s.name for s in stores]
        raise NotFound.with_suggestions("datastore", name, names, hint=f"the workspace has {', '.join(names)}")

    @staticmethod
    def _inside(root: Path, rel: str) -> Path:
        checks.text("datastore path", rel or "", empty=True)
        text = (rel or "").replace("\\", "/").strip("/")
        p = PurePosixPath(text)
        if p.is_absolute() or ".." in p.parts:
            raise InvalidInput(f"datastore path {rel!r} must stay inside the datastore (no '..')")
        long = next((part for part in p.parts if len(part.encode("utf-8")) > 255), None)
        if long is not None:  # (an OSError from the file system)
            raise InvalidInput(f"datastore path {checks.shown(rel)}: its part {checks.shown(long, 30)} is "
                               f"{len(long.encode())} bytes long; a file name holds at most 255")
        target = (root / p) if text else root
        resolved = target.resolve()
        if resolved != root.resolve() and root.resolve() not in resolved.parents:
            raise InvalidInput(f"datastore path {rel!r} leaves the datastore (through a link)")
        return target

    def upload(self, src: Path, target: str, datastore: str | None, overwrite: bool, progress=None) -> list[str]:
        root = self._datastore_root(datastore)  # (src: a file or folder that exists, DatastoreOperations.upload)
        dest = self._inside(root, target or "")
        pairs: list[tuple[Path, Path]] = []
        if src.is_file():
            rel = file_destination((target or "").replace("\\", "/").lstrip("/"), src.name,
                                   lambda folder: self._inside(root, folder).is_dir())
            pairs.append((src, self._inside(root, rel)))
        else:
            pairs.extend((f, dest / rel) for f, rel in folder_files(src))
        for _, d in pairs:  # a linked folder in the datastore must not carry a write outside it
            self._inside(root, d.relative_to(root).as_posix())
            # a file where a folder must go (or the reverse): one line, before anything is copied
            blocked = d if d.is_dir() else next((q for q in d.parents if q != root and root in q.parents
                                                 and q.exists() and not q.is_dir()), None)
            if blocked is not None:
                rel = blocked.relative_to(root).as_posix()
                needs = "would put a file where it is" if blocked.is_dir() else "needs a folder there"
                raise Conflict(f"{rel} is a {'folder' if blocked.is_dir() else 'file'} in the datastore and the upload "
                               f"{needs}; upload to another path (nothing was uploaded)")
        clashes = [d for _, d in pairs if d.exists()]
        if clashes and not overwrite:
            rel = clashes[0].relative_to(root).as_posix()
            more = f" (and {counted(len(clashes) - 1, 'other file')} of the upload)" if len(clashes) > 1 else ""
            raise Conflict(f"{rel} already exists in the datastore{more}; add --overwrite to replace (nothing was "
                           "uploaded)")
        done: list[str] = []
        made: list[Path] = []  # folders this upload created, outermost first: a failed upload takes back empty ones
        moved = Transfer(sum(s.stat().st_size for s, _ in pairs), progress) if progress is not None else None
        for s, d in pairs:
            tmp = uploading_beside(d)  # each writer its own: two notebooks uploading one name never mix the files
            try:
                if not d.parent.is_dir():  # (most files go where an earlier one made the folder)
                    made.extend(reversed([q for q in (d.parent, *d.parent.parents)
                                          if root in q.parents and not q.exists()]))
                    d.parent.mkdir(parents=True, exist_ok=True)
                copy_file(s, tmp, moved)
                os.chmod(tmp, 0o444)  # inputs are read-only to runs
                os.replace(tmp, d)
            except BaseException as exc:  # a full disk, and Ctrl-C too: no hidden half-written file is left
                tmp.unlink(missing_ok=True)
                for folder in reversed(made):  # nor an empty folder that looks like an upload (rmdir: only if empty)
                    try:
                        folder.rmdir()
                    except OSError:
                        pass
                reason = storage_reason(exc) if isinstance(exc, OSError) else None
                if reason is None:
                    raise
                raise StorageError(f"cannot upload {s.name}: {reason}; {len(done)} of {counted(len(pairs), 'file')} "
                                   "uploaded — free space or make the workspace writable, then upload again "
                                   "with --overwrite") from None
            done.append(d.relative_to(root).as_posix())
        if moved is not None:
            moved.finish()
        return done

    def ls(self, path: str, datastore: str | None) -> list[DatastoreEntry]:
        root = self._datastore_root(datastore)
        base = self._inside(root, path)
        if not base.exists():
            raise NotFound(f"datastore path {path!r} does not exist; list the root with %aml datastore ls")
        if base.is_file():
            return [DatastoreEntry(base.relative_to(root).as_posix(), base.stat().st_size, False)]
        inside = root.resolve()
        return [
            DatastoreEntry(p.relative_to(root).as_posix() + ("/" if p.is_dir() else ""),
                           p.stat().st_size if p.is_file() else 0, p.is_dir())
            for p in sorted(base.iterdir()) if not p.name.endswith(UPLOADING)
            and (p.resolve() == inside or inside in p.resolve().parents)  # never a link out of the datastore
        ]

    @staticmethod
    def _refuse_links_out(root: Path, paths, what: str) -> None:
        inside = root.resolve()
        for p in paths:
            if p.is_symlink():
                resolved = p.resolve()
                if resolved != inside and inside not in resolved.parents:
                    raise InvalidInput(f"{p.relative_to(root).as_posix()} in {what!r} is a link that leaves the "
                                       "datastore; remove it (nothing was copied)")

    def download(self, path: str, target: Path, datastore: str | None, overwrite: bool, progress=None) -> list[str]:
        root = self._datastore_root(datastore)
        src = self._inside(root, path)
        if not src.exists():
            raise NotFound(f"datastore path {path!r} does not exist; see what is there with %aml datastore ls")
        target = checks.expand_home(target)
        files = [src] if src.is_file() else [f for f in sorted(src.rglob("*")) if f.is_file()]
        self._refuse_links_out(root, [src] if src.is_file() else sorted(src.rglob("*")), path)
        # a folder comes down as itself, inside the target (as cp -r and azcopy do, and the Azure ML datastore):
        # datastore "mnist" into "out" is out/mnist/…; the whole datastore ("") is its contents
        base = root if src == root else src.parent
        pairs = [(f, target / f.relative_to(base)) for f in files]
        clashes = [d for _, d in pairs if d.exists()]
        if clashes and not overwrite:
            raise Conflict(f"{clashes[0]} already exists; add --overwrite to replace")
        moved = Transfer(sum(s.stat().st_size for s, _ in pairs), progress) if progress is not None else None
        for s, d in pairs:
            d.parent.mkdir(parents=True, exist_ok=True)
            replace_whole(d, lambda tmp, s=s: copy_file(s, tmp, moved))  # whole or as it was, never half-written
        if moved is not None:
            moved.finish()
        return [str(d) for _, d in pairs]

    def _split(self, uri: str, what: str) -> tuple[str, str | None, str]:
        """``datastore:PATH`` / ``datastore:NAME/PATH`` / ``azureml://datastores/NAME/paths/PATH`` →
        (the uri as datastore:…, the datastore's name or None for the default, the path inside it)."""
        uri = _from_azureml(uri)
        if not uri.startswith("datastore:"):
            raise InvalidInput(f"{what} {uri!r}: use datastore:PATH or datastore:NAME/PATH (azureml:// URIs with azure)")
        rest = uri[len("datastore:"):].lstrip("/")
        names = {s.name for s in self.list()}
        first, _, tail = rest.partition("/")
        datastore, rel = (first, tail) if first in names and tail else (None, rest)
        return uri, datastore, rel

    def resolve_output(self, uri: str) -> Path:
        """The folder a run writes for ``datastore:PATH`` (made when the run is prepared, not here)."""
        uri, datastore, rel = self._split(uri, "output")
        if not rel.strip("/"):
            raise InvalidInput(f"output {uri!r}: name a folder inside the datastore, not its root")
        root = self._datastore_root(datastore)
        path = self._inside(root, rel)
        if path.exists() and not path.is_dir():
            raise InvalidInput(f"output {uri!r} is a file; an output is a folder the run writes")
        return path

    def resolve_input(self, uri: str) -> str:
        uri, datastore, rel = self._split(uri, "input")
        root = self._datastore_root(datastore)
        path = self._inside(root, rel)
        if not path.exists():
            raise NotFound(f"input {uri!r}: nothing at that datastore path; upload it with %aml datastore upload")
        if path.is_dir():
            self._refuse_links_out(root, sorted(path.rglob("*")), uri)
        return str(path)


def _from_azureml(uri: str) -> str:
    """``azureml://datastores/NAME/paths/PATH`` (Azure ML's form, as a pipeline YAML writes it) → ``datastore:NAME/PATH``."""
    prefix = "azureml://datastores/"
    if isinstance(uri, str) and uri.startswith(prefix) and "/paths/" in uri:
        name, _, path = uri[len(prefix):].partition("/paths/")
        return f"datastore:{name}/{path}"
    return uri
