"""Session-wide test isolation: no test (nor a notebook run by nbval) touches the user's real workspace."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

_base: Path | None = None


def pytest_configure(config):
    global _base
    _base = Path(tempfile.mkdtemp(prefix="aml-magics-tests-"))
    os.environ["AML_MAGICS_WORKSPACE"] = str(_base / "session-workspace")
    os.environ["XDG_DATA_HOME"] = str(_base / "xdg")


def pytest_unconfigure(config):
    if _base is None:
        return
    from tests.conftest import kill_workspace_processes

    kill_workspace_processes(_base / "session-workspace")
    shutil.rmtree(_base, ignore_errors=True)


def pytest_collection_modifyitems(config, items):
    import pytest

    for item in items:
        if str(item.fspath).endswith(".ipynb"):
            item.add_marker(pytest.mark.notebook)
            item.add_marker(pytest.mark.slow)
