"""Moving files in and out of datastores: bytes counted for a progress line, copies that are whole or absent."""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Callable

CHUNK = 8 << 20
TELL_EVERY_S = 0.1

Progress = Callable[[int, int], object]  # (bytes moved so far, bytes in all)


class Transfer:
    """Bytes moved so far of a known total, told to ``progress`` at most every ``TELL_EVERY_S`` and at the end.
    A progress callback that fails is dropped, not allowed to stop the transfer."""

    def __init__(self, total: int, progress: Progress | None):
        self.total, self.done, self._progress, self._told = total, 0, progress, 0.0

    def add(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if self._progress is not None and now - self._told >= TELL_EVERY_S:
            self._told = now
            self._tell()

    def finish(self) -> None:
        if self._progress is not None:
            self._tell()

    def _tell(self) -> None:
        try:
            self._progress(self.done, self.total)
        except Exception:  # noqa: BLE001 - a display problem must not cost the user their upload
            self._progress = None


def copy_file(src: Path, dest: Path, transfer: Transfer | None) -> None:
    """``src`` to ``dest`` (a new file), counted in ``transfer`` as it goes (the kernel's copy when nobody counts)."""
    if transfer is None:
        shutil.copyfile(src, dest)
        return
    with open(src, "rb") as fin, open(dest, "wb") as fout:
        while True:
            chunk = fin.read(CHUNK)
            if not chunk:
                break
            fout.write(chunk)
            transfer.add(len(chunk))


def replace_whole(dest: Path, write: Callable[[Path], None]) -> None:
    """``write(tmp)`` then put ``tmp`` in ``dest``'s place in one step: an interrupted or failed copy leaves
    ``dest`` as it was (a file being replaced is never half old, half new), and no temporary file behind."""
    import secrets

    tmp = dest.with_name(f".{dest.name}.{os.getpid()}-{secrets.token_hex(4)}.partial")
    try:
        write(tmp)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
