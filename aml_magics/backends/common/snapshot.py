"""Copy a source folder into a run's snapshot, honouring ``.amlignore`` / ``.gitignore``.

As in Azure ML, ``.amlignore`` wins over ``.gitignore``; ``.git``, notebook checkpoints,
``__pycache__`` and the folder's own ``outputs/`` are never copied, nor a workspace (the run's own, or
any folder holding an ``aml.db``), a virtual or conda environment, pipes, sockets or devices. A snapshot over
the size limit is refused before anything is copied.
"""
from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from ...core.errors import InvalidInput

ALWAYS_IGNORED_DIRS = {".git", ".ipynb_checkpoints", "__pycache__", ".hg", ".svn", ".mypy_cache", ".pytest_cache"}


def _ignore_spec(source: Path):
    for name in (".amlignore", ".gitignore"):
        f = source / name
        if f.is_file():
            import pathspec

            lines = f.read_text(encoding="utf-8", errors="replace").splitlines()
            for number, line in enumerate(lines, 1):  # find the one bad line, to name it
                try:
                    pathspec.GitIgnoreSpec.from_lines([line])
                except ValueError as exc:
                    from ...core.errors import InvalidInput

                    raise InvalidInput(f"{name} line {number} ({line.strip()[:40]!r}) is not a valid pattern ({exc}); "
                                       "fix or remove it") from None
            return pathspec.GitIgnoreSpec.from_lines(lines)
    return None


def left_out(items: list[str]) -> str:
    """What a note names as left out of a folder: the first four, and how many more."""
    return ", ".join(items[:4]) + (f" and {len(items) - 4} more" if len(items) > 4 else "")


def link_target(path: Path) -> Path | None:
    """Where a link leads, or None for a loop of links (``resolve`` raises RuntimeError before Python 3.13, OSError
    after: a folder with such a loop made a run's submission, a model's registration and an upload a traceback)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return None


WORKSPACE_DB = "aml.db"  # a local workspace's database: a folder holding it is a workspace (never code)
MANY_FILES = 2000  # a snapshot of more files than this is said: every run copies them (Azure ML's SDK warns too)


def plan_snapshot(source: Path, max_bytes: int, exclude: tuple[Path, ...] = (), *,
                  note: bool = False) -> list[tuple[Path, str]]:
    """The files to copy as (absolute path, relative POSIX path); raises when over ``max_bytes``. ``note``: say so
    when they are many (a data folder beside the notebook, copied by every run without a word)."""
    source = source.resolve()
    spec = _ignore_spec(source)
    excluded = {p.resolve() for p in exclude}
    files: list[tuple[Path, str]] = []
    left: list[str] = []  # links out of the folder, pipes: the run would not find them (said when ``note``)
    total = 0
    for root, dirs, names in os.walk(source, followlinks=False):
        root_path = Path(root)
        rel_root = root_path.relative_to(source)
        keep = []
        for d in sorted(dirs):
            full = root_path / d
            rel = (rel_root / d).as_posix()
            if d in ALWAYS_IGNORED_DIRS or (rel_root == Path(".") and d == "outputs") or link_target(full) in excluded:
                continue
            if full.is_symlink():
                left.append(f"{rel}/ (a linked folder)")
                continue  # never follow links out of the source folder
            if (full / "pyvenv.cfg").is_file() or (full / "conda-meta").is_dir() or (full / WORKSPACE_DB).is_file():
                continue  # a virtual or conda environment in the project (.venv): packages, not code — it filled
                # the snapshot's 100 MB on every run unless the user thought of .amlignore; or a local workspace
                # (./ws, kept when the project moved to Azure ML: its runs were uploaded with every job)
            if spec is not None and spec.match_file(rel + "/"):
                continue
            keep.append(d)
        dirs[:] = keep
        for n in sorted(names):
            full = root_path / n
            rel = (rel_root / n).as_posix()
            if spec is not None and spec.match_file(rel):
                continue
            if full.is_symlink():
                target = link_target(full)
                if target is None or not target.is_file() or source not in target.parents:
                    left.append(f"{rel} (a link out of the folder)")
                    continue  # links that leave the source folder are not part of the snapshot
            try:
                st = full.stat()
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode):
                left.append(f"{rel} (not a regular file)")
                continue  # a named pipe, a socket or a device is no file of the code (copying a pipe refused the run)
            total += st.st_size
            if total > max_bytes:
                raise InvalidInput(
                    f"snapshot of {source} is over the {_size(max_bytes)} limit: list large files in "
                    f".amlignore, submit from a smaller folder, or raise %config AmlMagics.snapshot_max_mb"
                )
            files.append((full, rel))
    if note and left:  # (a data file linked in from elsewhere was missing in the run without a word)
        import sys

        print(f"Note: not in the run's snapshot: {left_out(left)}. The run sees only files inside its source folder: "
              "read other data with --input datastore:PATH, or copy it in.", file=sys.stderr)
    if note and len(files) > MANY_FILES:
        import sys

        from collections import Counter

        tops = Counter(rel.split("/", 1)[0] for _, rel in files if "/" in rel).most_common(1)
        where = f", {tops[0][1]:,} of them in {tops[0][0]}/" if tops else ""
        print(f"Note: the run's snapshot is {len(files):,} files, {total / 1e6:,.1f} MB{where} — copied for every "
              "run; list data folders in .amlignore and read them with --input datastore:PATH instead.",
              file=sys.stderr)
    return files


def copy_snapshot(files: list[tuple[Path, str]], target: Path) -> int:
    target.mkdir(parents=True, exist_ok=True)
    made: set[Path] = {target}
    size = 0
    for src, rel in files:
        dst = target / rel
        if dst.parent not in made:
            dst.parent.mkdir(parents=True, exist_ok=True)
            made.add(dst.parent)
        shutil.copyfile(src, dst)
        size += dst.stat().st_size
    return size


def _size(n: int) -> str:
    """A limit as the error shows it: 100 MB, or 5,000 bytes below one MB (not "0 MB")."""
    return f"{n / 1e6:,.0f} MB" if n >= 1_000_000 else f"{n:,} bytes"
