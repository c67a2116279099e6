"""What a folder uploaded to a datastore sends, and where an uploaded file lands — one rule for every backend."""
from __future__ import annotations

import os
import stat
import sys
from pathlib import Path, PurePosixPath
from typing import Callable

from .snapshot import WORKSPACE_DB, left_out, link_target

NOT_DATA_DIRS = {".git", ".hg", ".svn", "__pycache__", ".ipynb_checkpoints", ".mypy_cache", ".pytest_cache"}


def folder_files(source: Path) -> list[tuple[Path, str]]:
    """Every file of a folder to upload to a datastore, as (path, relative POSIX name), sorted — the same on every
    backend. Unlike a run's snapshot, ``.amlignore`` / ``.gitignore`` do not apply (data files are what a
    ``.gitignore`` most often lists) nor is ``outputs/`` left out. Left out, and named in one note on stderr: links
    that lead out of the folder (a link to a file inside it is sent as that file), pipes, sockets and devices,
    version-control and cache folders (``.git``, ``__pycache__`` …), virtual environments and local workspaces."""
    source = source.resolve()
    if (source / WORKSPACE_DB).is_file():
        from ...core.errors import InvalidInput

        raise InvalidInput(f"{source} is a workspace folder (it holds {WORKSPACE_DB}), not data; upload a folder of "
                           "data files")
    files: list[tuple[Path, str]] = []
    left: list[str] = []  # what was not sent, as "name (why)"
    for root, dirs, names in os.walk(source, followlinks=False):
        here = Path(root)
        rel_root = here.relative_to(source)
        keep = []
        for d in sorted(dirs):
            full, rel = here / d, (rel_root / d).as_posix()
            why = ("a link" if full.is_symlink() else "not data" if d in NOT_DATA_DIRS
                   else "a virtual environment" if (full / "pyvenv.cfg").is_file() or (full / "conda-meta").is_dir()
                   else "a workspace" if (full / WORKSPACE_DB).is_file() else None)
            if why is None:
                keep.append(d)
            else:
                left.append(f"{rel}/ ({why})")
        dirs[:] = keep
        for n in sorted(names):
            full, rel = here / n, (rel_root / n).as_posix()
            if full.is_symlink():
                target = link_target(full)
                if target is None or not target.exists():
                    left.append(f"{rel} (a link to nothing)")
                    continue
                if source not in target.parents or not target.is_file():
                    left.append(f"{rel} (a link out of the folder)")
                    continue
            try:
                mode = full.stat().st_mode
            except OSError:
                left.append(f"{rel} (unreadable)")
                continue
            if not stat.S_ISREG(mode):
                left.append(f"{rel} (not a regular file)")
                continue
            files.append((full, rel))
    if left:
        print(f"Note: not uploaded from {source.name}/: {left_out(left)}.", file=sys.stderr)
    return sorted(files, key=lambda f: f[1])


def file_destination(target: str, name: str, is_folder: Callable[[str], bool]) -> str:
    """The datastore path of a file called ``name`` uploaded to ``target`` (already cleaned, no leading ``/``):

    - no target, a target ending in ``/``, or a folder that exists: inside it (``tables`` → ``tables/data.csv``);
    - a target whose last part is the file's own name or has a suffix (``tables/renamed.csv``): that path;
    - otherwise a new folder (``tables`` → ``tables/data.csv``).
    """
    folder = target.strip("/")
    if not folder or target.endswith("/") or is_folder(folder):
        return f"{folder}/{name}" if folder else name
    last = PurePosixPath(folder).name
    if last == name or PurePosixPath(last).suffix:
        return folder
    return f"{folder}/{name}"
