"""The installed package enables both halves: the server extension and the prebuilt labextension."""
from __future__ import annotations

import re
import subprocess
import sys


def _run(*args: str) -> str:
    out = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, timeout=120)
    return re.sub(r"\x1b\[[0-9;]*m", "", out.stdout + out.stderr)


def test_jupyter_lists_both_extensions_enabled_and_ok():
    labext = _run("jupyterlab.labextensions", "list")
    assert re.search(r"aml-magics-labextension v[\d.]+ enabled OK \(python, aml-magics\)", labext), labext
    server = _run("jupyter_server.extension.serverextension", "list")
    assert re.search(r"aml_magics\.server enabled", server) and re.search(r"aml_magics\.server\s+OK", server), server
