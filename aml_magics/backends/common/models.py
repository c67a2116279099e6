"""Model files: what a registration copies or uploads."""
from __future__ import annotations

from pathlib import Path

from ...core.errors import InvalidInput, NotFound
from ...core.names import check_model_name
from .snapshot import link_target


def model_files(source: Path) -> list[tuple[Path, str]]:
    """Regular files of a model file or folder as (path, relative POSIX name); links that leave the folder are not
    followed."""
    if source.is_file():
        return [(source, source.name)]
    root = source.resolve()
    out = []
    for f in sorted(source.rglob("*")):
        if f.is_symlink():
            target = link_target(f)
            if target is None or root not in target.parents:  # a loop, or a link out of the folder
                continue
        if f.is_file():
            out.append((f, f.relative_to(source).as_posix()))
    return out


def files_to_register(name: str, source: Path) -> list[tuple[Path, str]]:
    """The checks every backend makes before registering ``source`` as model ``name`` (a valid name, a path that
    exists and holds files), and its files."""
    check_model_name(name)
    if not source.exists():
        raise NotFound(f"model path {source} does not exist")
    files = model_files(source)
    if not files:
        raise InvalidInput(f"{source} holds no files to register")
    return files
