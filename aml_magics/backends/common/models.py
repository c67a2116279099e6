"""Model files: what a registration copies or uploads."""
from __future__ import annotations

from pathlib import Path


def model_files(source: Path) -> list[tuple[Path, str]]:
    """Regular files of a model file or folder as (path, relative POSIX name); links that leave the folder are not
    followed."""
    if source.is_file():
        return [(source, source.name)]
    root = source.resolve()
    out = []
    for f in sorted(source.rglob("*")):
        if f.is_symlink() and root not in f.resolve().parents:
            continue
        if f.is_file():
            out.append((f, f.relative_to(source).as_posix()))
    return out
