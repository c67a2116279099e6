"""Where an uploaded file lands in a datastore — one rule for every backend."""
from __future__ import annotations

from pathlib import PurePosixPath
from typing import Callable


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
