"""The local model registry: a name with auto-incremented versions, files copied into the workspace.

Registration is atomic: the files are staged, then renamed into place inside the transaction that records the
version — a registration killed mid-copy leaves no version behind (doctor removes the staging folder).
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...core.contract import ModelsBackend
from ...core.errors import InvalidInput, NotFound, StorageError, storage_reason
from ...core.types import ModelInfo
from ..common.models import files_to_register
from . import layout

if TYPE_CHECKING:  # pragma: no cover
    from .backend import LocalBackend


class LocalModels(ModelsBackend):
    def __init__(self, backend: "LocalBackend"):
        self.backend = backend
        self.rows = backend.model_rows
        self.path = backend.path

    def register(self, name: str, source: Path, *, tags: dict | None = None, properties: dict | None = None,
                 description: str | None = None, run_id: str | None = None) -> ModelInfo:
        """Copy a file or folder into the registry as the next version of ``name``, atomically."""
        import uuid

        from ...core.frameworks import detect_framework

        source = Path(source)
        files = files_to_register(name, source)
        staging = self.path / "models" / ".staging" / uuid.uuid4().hex
        entry = source.name
        try:
            try:
                for src, rel in files:
                    dst = staging / entry / rel if source.is_dir() else staging / entry
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(src, dst)
            except OSError as exc:
                reason = storage_reason(exc)
                if reason is None:
                    raise
                raise StorageError(f"cannot copy {source.name} into the registry: {reason}; nothing was registered — "
                                   "free space or make the workspace writable, then register again") from None
            framework = detect_framework(staging / entry)

            placed: list[Path] = []

            def move_into_place(version: int) -> Path:
                final = self.path / "models" / name / str(version)
                final.parent.mkdir(parents=True, exist_ok=True)
                if final.exists():  # no record has this version: files left by a registration that failed or was
                    _discard(final, staging.parent)  # killed after its rename (it blocked every later one)
                os.replace(staging, final)
                placed.append(final)
                return final

            try:
                row = self.rows.insert_next_version(
                    name, move_into_place, entry=entry, framework=framework, run_id=run_id, tags=tags,
                    properties=properties, description=description)
            except BaseException:  # the record was not written: neither are its files
                for final in placed:
                    _discard(final, staging.parent)
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return self._info(row)

    def register_from_run(self, run_id: str, name: str, path: str, *, tags: dict | None = None,
                          properties: dict | None = None, description: str | None = None) -> ModelInfo:
        row = self.backend.runs._row(run_id)
        folder = layout.run_dir(self.path, run_id)
        named = _in_named_output(row, path)
        if named is not None:  # a file in one of the run's output or input folders (a pipeline step's)
            return self.register(name, named, run_id=run_id, tags=tags, properties=properties, description=description)
        source = layout.artifact_path(folder, path)
        resolved = source.resolve()
        if folder.resolve() not in resolved.parents:
            raise InvalidInput(f"{path!r} leaves the run's folder")
        if not source.exists():
            files = self.backend.runs.list_files(run_id)
            raise NotFound.with_suggestions(f"file of run {run_id}", path, files, hint=saved_files_hint(files))
        return self.register(name, source, run_id=run_id, tags=tags, properties=properties, description=description)

    @staticmethod
    def _info(row) -> ModelInfo:
        return ModelInfo(name=row["name"], version=row["version"], path=str(Path(row["path"]) / row["entry"]),
                         framework=row["framework"], description=row["description"], run_id=row["run_id"],
                         created=row["created"], tags=json.loads(row["tags"]), properties=json.loads(row["properties"]))

    def get(self, name: str, version: int | None = None) -> ModelInfo:
        row = self.rows.get(name, version)
        if row is None:
            if version is not None and self.rows.get(name) is not None:
                versions = sorted(r["version"] for r in self.rows.list(name=name))
                raise NotFound(f"model {name} has no version {version}; it has {', '.join(map(str, versions))}")
            raise NotFound.with_suggestions("model", name, self.rows.names(), hint="list them with %aml models")
        return self._info(row)

    def list(self, name: str | None = None, run_id: str | None = None, limit: int | None = None,
             offset: int = 0) -> list[ModelInfo]:
        return [self._info(r) for r in self.rows.list(name=name, run_id=run_id, limit=limit, offset=offset)]

    def add_tags(self, name: str, version: int, tags: dict[str, Any]) -> ModelInfo:
        self.get(name, version)
        self.rows.update_tags(name, version, tags)
        return self.get(name, version)


def _discard(folder: Path, staging_root: Path) -> None:
    """Remove a version folder no record names: renamed into the staging area first (one atomic step, so its
    version number is free at once), then deleted (what cannot be is left to doctor, which clears staging)."""
    import uuid

    staging_root.mkdir(parents=True, exist_ok=True)
    aside = staging_root / f"orphan-{uuid.uuid4().hex}"
    try:
        os.replace(folder, aside)
    except FileNotFoundError:
        return
    shutil.rmtree(aside, ignore_errors=True)


def _in_named_output(row, path: str) -> Path | None:
    """``path`` when it is an absolute path inside one of the run's declared output or input folders (a pipeline
    step's ``outputs.NAME`` / ``inputs.NAME``: the step's input lineage names the step that wrote it)."""
    if not os.path.isabs(str(path)):
        return None
    target = Path(path).resolve()
    spec = json.loads(row["spec"] or "{}")
    for folder in [*(spec.get("outputs") or {}).values(), *(spec.get("inputs") or {}).values()]:
        base = Path(folder).resolve()
        if (target == base or base in target.parents) and target.exists():
            return target
    return None


def saved_files_hint(files: list[str]) -> str:
    """What a run did save, where a model path of it is not there: "its outputs: a.pkl, b.onnx", or how to save one."""
    outputs = [f for f in files if f.startswith("outputs/")]
    if not outputs:
        return ("the run saved no file under outputs/; save the model there in the run (joblib.dump(model, "
                "'outputs/model.pkl')), or register a file of this machine: %aml register FILE --local --name NAME")
    shown = ", ".join(outputs[:6]) + (f" and {len(outputs) - 6} more" if len(outputs) > 6 else "")
    return f"the run saved {shown}"
