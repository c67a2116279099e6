"""Execute the workshop labs headless, in order, keep the executed copies and print a summary.

    python scripts/run_notebooks.py notebooks [--timeout 900] [--out notebooks/executed]

The labs are the notebooks named like ``01-setup.ipynb`` (two digits, a dash); other notebooks in the folder
(a student's own) are left alone. Each runs in a real kernel started in the labs' folder, on the current
workspace ($AML_MAGICS_WORKSPACE, else the per-user default), and is saved executed — outputs, errors and
all — to ``--out``. Exit code 1 when any lab fails.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

LABS = "[0-9][0-9]-*.ipynb"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", type=Path)
    p.add_argument("--timeout", type=int, default=900, help="seconds per cell (default 900)")
    p.add_argument("--out", type=Path, help="where the executed labs go (default FOLDER/executed)")
    args = p.parse_args()
    labs = sorted(args.folder.glob(LABS))
    if not labs:
        print(f"no labs (notebooks named like 01-setup.ipynb) in {args.folder}", file=sys.stderr)
        return 1
    out = args.out or args.folder / "executed"
    out.mkdir(parents=True, exist_ok=True)
    # the kernel's sockets live here (an absolute path: the kernel runs in the labs' folder, not ours)
    sockets = tempfile.mkdtemp(prefix="aml-labs-")
    try:
        return run(labs, args, out, sockets)
    finally:
        shutil.rmtree(sockets, ignore_errors=True)


def run(labs: list[Path], args: argparse.Namespace, out: Path, sockets: str) -> int:
    import nbformat
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    tty = sys.stdout.isatty()
    rows, failed = [], 0
    for n, path in enumerate(labs, 1):
        nb = nbformat.read(path, as_version=4)
        cells = sum(1 for c in nb.cells if c.cell_type == "code")
        done = [0]
        label = f"[{n}/{len(labs)}] {path.name}"

        def progress(**_kw) -> None:
            done[0] += 1
            if tty:
                print(f"\r{label}  cell {done[0]}/{cells}", end="", flush=True)

        if not tty:
            print(f"{label} …", flush=True)
        started = time.perf_counter()
        status = "ok"
        # IPC sockets: a local kernel, and no "running over TCP without encryption" warning for each lab
        km = KernelManager(kernel_name="python3", transport="ipc", ip=str(Path(sockets) / f"kernel-{n}"))
        client = NotebookClient(nb, km=km, timeout=args.timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(path.parent)}},
                                on_cell_executed=progress)
        try:
            client.execute()
        except CellExecutionError as exc:
            failed += 1
            status = "FAILED: " + str(exc).strip().splitlines()[-1][:100]
        except KeyboardInterrupt:
            print()
            return 130
        finally:
            nbformat.write(nb, out / path.name)
            if km.has_kernel:  # we own it (nbclient leaves a kernel it was given running)
                km.shutdown_kernel(now=False)
        seconds = time.perf_counter() - started
        if tty:
            print(f"\r{label}  {cells} cells  {seconds:.1f}s  {status}")
        rows.append((path.name, cells, f"{seconds:.1f}s", status))
    width = max(len(r[0]) for r in rows)
    print(f"\n{'lab'.ljust(width)}  cells  time     result")
    for name, cells, seconds, status in rows:
        print(f"{name.ljust(width)}  {cells:>5}  {seconds:>7}  {status}")
    others = len(list(args.folder.glob("*.ipynb"))) - len(labs)
    print(f"{len(rows) - failed} passed, {failed} failed; executed copies in {out}"
          + (f"; {others} other notebook(s) left alone" if others else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
