"""Every benchmark runs once, quickly, in the test command, so none can rot unnoticed. Their figures are not
asserted here (machines are noisy); that each finishes and writes its JSON is."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCHES = sorted(p.stem for p in (ROOT / "bench").glob("*.py") if not p.name.startswith("_"))

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", BENCHES)
def test_benchmark_runs_quickly_and_writes_its_figures(name, tmp_path):
    out = tmp_path / f"{name}.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("AML_MAGICS_WORKSPACE", None)  # each benchmark makes its own workspaces
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg")
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / f"{name}.py"), "--quick", "--json", str(out)],
                          capture_output=True, text=True, timeout=900, cwd=str(tmp_path), env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    figures = json.loads(out.read_text())
    assert isinstance(figures, dict) and figures, "the benchmark wrote no figures"
    if name == "scoring" and os.environ.get("AML_MAGICS_MLFLOW_PYTHON"):  # the test command installs MLflow's venv:
        assert figures["mlflow_rps"], "the mlflow models serve anchor did not run"  # its anchor must have run
