"""``python -m aml_magics doctor [--workspace PATH]``: check (and safely repair) a local workspace."""
from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m aml_magics")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("doctor", help="check the workspace; repair stale runs and interrupted registrations")
    d.add_argument("--workspace", help="workspace folder (default: as %%aml resolves it)")
    d.add_argument("--recover", action="store_true",
                   help="a damaged store: put the salvaged store in place (a copy of the damaged one is kept)")
    args = p.parse_args(argv)
    from .core.client import Client
    from .core.errors import AmlError

    try:
        report = Client(args.workspace).doctor(recover=args.recover)
    except AmlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(repr(report))
    return 0 if report.healthy else 1


if __name__ == "__main__":
    sys.exit(main())
