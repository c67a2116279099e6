"""Execute the workshop notebooks headless, in order, and print a summary.

    python scripts/run_notebooks.py notebooks [--timeout 900]

Each notebook runs in a real kernel started in its own folder, on the current workspace
($AML_MAGICS_WORKSPACE, else the per-user default). Exit code 1 when any notebook fails.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", type=Path)
    p.add_argument("--timeout", type=int, default=900, help="seconds per cell")
    args = p.parse_args()

    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    rows, failed = [], 0
    for path in sorted(args.folder.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        started = time.perf_counter()
        status = "ok"
        try:
            NotebookClient(nb, timeout=args.timeout, kernel_name="python3",
                           resources={"metadata": {"path": str(path.parent)}}).execute()
        except CellExecutionError as exc:
            failed += 1
            status = "FAILED: " + str(exc).strip().splitlines()[-1][:100]
        cells = sum(1 for c in nb.cells if c.cell_type == "code")
        rows.append((path.name, cells, f"{time.perf_counter() - started:.1f}s", status))
    width = max((len(r[0]) for r in rows), default=8)
    print(f"{'notebook'.ljust(width)}  cells  time     result")
    for name, cells, seconds, status in rows:
        print(f"{name.ljust(width)}  {cells:>5}  {seconds:>7}  {status}")
    print(f"{len(rows) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
