"""Processes opening one new workspace at the same moment (on a fresh machine the notebook's kernel and the
sidebar's server both make the default workspace; two notebooks started together): each opens it — none gets
SQLite's "database is locked" from switching the new database to WAL, a wait SQLite's busy timeout does not cover
(found by two notebooks uploading at once)."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

pytestmark = pytest.mark.reliability

OPEN = textwrap.dedent("""
    import sys, time
    from aml_magics.core.client import Client
    from aml_magics.backends.local import backend  # imported before the start: the opens race, not the imports
    client = Client(sys.argv[1])
    start = float(sys.argv[2])
    time.sleep(max(0.0, start - time.time()))  # every process opens at the same moment
    print("OPEN", len(client.runs.list(limit=5).infos))
""")


def test_processes_making_one_new_workspace_at_once_all_open_it(tmp_path):
    script = tmp_path / "open.py"
    script.write_text(OPEN)
    for round_ in range(20):
        folder, start = tmp_path / f"ws{round_}", time.time() + 0.8
        procs = [subprocess.Popen([sys.executable, str(script), str(folder), str(start)], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(4)]
        outs = [p.communicate(timeout=120) for p in procs]
        failed = [err[-1500:] for out, err in outs if "OPEN 0" not in out]
        assert not failed, failed[0]
