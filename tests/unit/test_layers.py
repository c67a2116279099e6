"""The layers of docs/ARCHITECTURE.md hold: `lint-imports` with the contracts in pyproject.toml."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def lint_imports(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("lint-imports")
    if not exe.exists():
        pytest.fail("lint-imports is missing: pip install -e '.[test]' installs import-linter")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([str(exe), "--no-cache", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def test_every_layer_contract_is_kept():
    done = lint_imports()
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout and "KEPT" in done.stdout


def test_a_wrong_import_would_break_a_contract(tmp_path):
    """The linter really reads our imports: forbidding an import core makes (core.client → core.registry) fails."""
    (tmp_path / ".importlinter").write_text(
        "[importlinter]\nroot_package = aml_magics\n\n[importlinter:contract:probe]\nname = probe\n"
        "type = forbidden\nsource_modules = aml_magics.core.client\nforbidden_modules = aml_magics.core.registry\n")
    done = lint_imports(cwd=tmp_path)  # found in the current folder by every import-linter version
    assert done.returncode != 0 and "BROKEN" in done.stdout, done.stdout[-2000:]
