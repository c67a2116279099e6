"""Where things live in a local workspace folder (stdlib only; run processes use it).

```
<workspace>/aml.db                      the SQLite store
<workspace>/runs/<run_id>/snapshot/     the code that ran; the run's working directory
<workspace>/runs/<run_id>/snapshot/outputs/   files the run keeps ("outputs/…")
<workspace>/runs/<run_id>/logs/         std_log.txt ("logs/…")
<workspace>/runs/<run_id>/artifacts/    other uploaded files and logged images
<workspace>/runs/<run_id>/io/           pickled --in values and --out results
<workspace>/datastores/<name>/          local datastores
```
"""
from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from ..common.snapshot import WORKSPACE_DB as DB_NAME  # one place: snapshots leave a folder holding it out

LOG_NAME = "std_log.txt"


UPLOADING = ".uploading"  # the suffix of a file being written beside its final name (hidden from listings)


def uploading_beside(target: Path) -> Path:
    """A temporary name beside ``target`` that no other writer uses (two notebooks writing one name at once each
    write their own file, and the last ``os.replace`` wins whole)."""
    import secrets

    return target.with_name(f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}{UPLOADING}")


def run_dir(workspace: Path, run_id: str) -> Path:
    return workspace / "runs" / run_id


def clean_artifact_name(name: str) -> PurePosixPath:
    """An artifact name as a relative POSIX path; refuses anything that could escape the run folder."""
    from ...core.errors import InvalidInput

    text = str(name).replace("\\", "/")
    p = PurePosixPath(text)
    if not text or p.is_absolute() or ".." in p.parts or text.startswith("~") or ":" in p.parts[0]:
        raise InvalidInput(f"artifact name {name!r} must be a relative path inside the run (like 'outputs/model.pkl')")
    return p


def artifact_path(run_folder: Path, name: str) -> Path:
    """The file behind an artifact name: outputs/… in the snapshot, logs/… in logs, the rest in artifacts/."""
    p = clean_artifact_name(name)
    if p.parts[0] == "outputs":
        return run_folder / "snapshot" / p
    if p.parts[0] == "logs":
        return run_folder / p
    return run_folder / "artifacts" / p


def list_artifacts(run_folder: Path) -> list[str]:
    """Every artifact name of a run, sorted: outputs/…, logs/…, then the rest."""
    names: list[str] = []
    for root, prefix in ((run_folder / "snapshot" / "outputs", "outputs"), (run_folder / "logs", "logs"),
                         (run_folder / "artifacts", "")):
        if not root.is_dir():
            continue
        for f in sorted(root.rglob("*")):
            if f.is_file() and not f.name.endswith(UPLOADING):  # one being written is not an artifact yet
                rel = f.relative_to(root).as_posix()
                names.append(f"{prefix}/{rel}" if prefix else rel)
    return names
