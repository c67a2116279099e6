"""pytest-jupyter's fixtures (jp_fetch, a real Jupyter server app in-process) for these tests only:
its autouse fixtures (a fresh event loop, ServerApp cleanup) must not reach the rest of the suite."""
from pytest_jupyter.jupyter_core import *  # noqa: F401,F403
from pytest_jupyter.jupyter_server import *  # noqa: F401,F403
import pytest


@pytest.fixture
def jp_server_config(workspace):
    return {"ServerApp": {"jpserver_extensions": {"aml_magics.server": True}}}
