"""Fixtures of the azure backend's tests: Microsoft's contract, a real MLflow tracking server on loopback."""
from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests


def _python() -> str:
    python = os.environ.get("AML_MAGICS_MLFLOW_PYTHON") or "/tmp/mlflow-venv/bin/python"
    if not Path(python).exists():
        pytest.fail("no MLflow to run as the peer: scripts/test creates it and sets AML_MAGICS_MLFLOW_PYTHON")
    return python


@pytest.fixture(scope="session")
def spec():
    """Microsoft's contract files, read once (tests/azure/contract.py)."""
    from .contract import Spec

    return Spec()


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    python = _python()
    folder = tmp_path_factory.mktemp("mlflow")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, PATH=str(Path(python).parent) + os.pathsep + os.environ.get("PATH", ""))
    proc = subprocess.Popen(
        [python, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}", "--default-artifact-root", str(folder / "art")],
        cwd=folder, env=env, stdout=open(folder / "server.log", "wb"), stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if requests.get(base + "/health", timeout=2).status_code == 200:
                break
        except requests.RequestException:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError((folder / "server.log").read_text()[-3000:])
        time.sleep(0.5)
    yield base
    os.killpg(proc.pid, 15)
    proc.wait(20)


