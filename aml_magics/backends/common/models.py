"""Model files: what a registration copies or uploads."""
from __future__ import annotations

from pathlib import Path

from ...core import checks
from ...core.errors import InvalidInput, NotFound
from ...core.names import check_model_name
from .snapshot import left_out, link_target


def model_files(source: Path) -> list[tuple[Path, str]]:
    """Regular files of a model file or folder as (path, relative POSIX name). Links that leave the folder are not
    followed (a link to a secret would be copied into the registry), nor pipes, sockets or devices: what is left out
    is named in one note on stderr (it was left out silently: a Hugging Face snapshot, whose files are links to its
    cache's blobs, registered as a model without its weights)."""
    if source.is_file():
        return [(source, source.name)]
    root = source.resolve()
    out, left = [], []
    for f in sorted(source.rglob("*")):
        rel = f.relative_to(source).as_posix()
        if f.is_symlink():
            target = link_target(f)
            if target is None or root not in target.parents:  # a loop, or a link out of the folder
                left.append(f"{rel} (a link out of the folder)")
                continue
        if f.is_file():
            out.append((f, rel))
        elif not f.is_dir():
            left.append(f"{rel} (not a regular file)")
    if left:
        import sys

        print(f"Note: not registered from {source.name}/: {left_out(left)}. To include a linked file, copy it in "
              "(cp -L).", file=sys.stderr)
    return out


def files_to_register(name: str, source: Path) -> list[tuple[Path, str]]:
    """The checks every backend makes before registering ``source`` as model ``name`` (a valid name, a path that
    exists and holds files), and its files."""
    check_model_name(name)
    kind = checks.path_kind("model path", source)
    if kind == "missing":
        raise NotFound(f"model path {source} does not exist")
    if kind == "other":
        raise InvalidInput(f"model path {source} is a device or a pipe; give a file or folder")
    files = model_files(source)
    if not files:
        raise InvalidInput(f"{source} holds no files to register")
    for path, rel in [(source, source.name), *files]:  # a name no record can hold (a byte of another encoding)
        try:
            rel.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidInput(f"model path {checks.shown(str(path))}: the name is not UTF-8 text (a file named in "
                               "another encoding); rename it, then register") from None
    return files
