"""scripts/workshop and scripts/run_notebooks.py as a newcomer meets them: the labs run by name (a student's own
notebook is left alone), executed copies are kept, kernels print no TCP warning, an unsupported Python is one
line, and a clone on a machine without Node.js installs without the sidebar and says so in one line."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def notebook(path: Path, *sources: str) -> None:
    cells = [{"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None, "source": s, "id": f"c{i}"}
             for i, s in enumerate(sources)]
    path.write_text(json.dumps({"cells": cells, "metadata": {"kernelspec": {"name": "python3", "language": "python",
                                                                             "display_name": "Python 3"}},
                                "nbformat": 4, "nbformat_minor": 5}))


def run_labs(folder: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "AML_MAGICS_WORKSPACE": str(tmp_path / "ws")}
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "run_notebooks.py"), str(folder)],
                          capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.slow
def test_headless_runs_the_labs_by_name_and_keeps_their_executed_copies(tmp_path):
    labs = tmp_path / "notebooks"
    labs.mkdir()
    notebook(labs / "01-first.ipynb", "print('hello from lab one')")
    notebook(labs / "02-second.ipynb", "x = 6 * 7\nprint(x)")
    notebook(labs / "my-notes.ipynb", "raise SystemExit('a student notebook must not run')")
    proc = run_labs(labs, tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "2 passed, 0 failed" in out and "1 other notebook(s) left alone" in out
    assert "without encryption" not in out  # kernels over IPC: no warning per lab
    executed = labs / "executed"
    assert sorted(p.name for p in executed.iterdir()) == ["01-first.ipynb", "02-second.ipynb"]
    first = json.loads((executed / "01-first.ipynb").read_text())
    assert "hello from lab one" in "".join(first["cells"][0]["outputs"][0]["text"])
    assert json.loads((labs / "01-first.ipynb").read_text())["cells"][0]["outputs"] == []  # the lab itself untouched


@pytest.mark.slow
def test_a_failing_lab_fails_the_run_and_its_executed_copy_shows_the_error(tmp_path):
    labs = tmp_path / "notebooks"
    labs.mkdir()
    notebook(labs / "01-ok.ipynb", "print(1)")
    notebook(labs / "02-broken.ipynb", "print('before')", "1 / 0", "print('never')")
    proc = run_labs(labs, tmp_path)
    assert proc.returncode == 1
    assert "1 passed, 1 failed" in proc.stdout and "ZeroDivisionError" in proc.stdout
    broken = json.loads((labs / "executed" / "02-broken.ipynb").read_text())
    assert broken["cells"][1]["outputs"][0]["ename"] == "ZeroDivisionError"


def test_a_folder_without_labs_says_so(tmp_path):
    proc = run_labs(tmp_path, tmp_path)
    assert proc.returncode == 1 and proc.stderr.strip().startswith("no labs")


def test_the_workshop_refuses_an_unsupported_or_missing_python_in_one_line(tmp_path):
    old = tmp_path / "python3.8"  # an interpreter that is too old: answers the version check as 3.8 does
    old.write_text("#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'Python 3.8.10'; exit 0; fi\nexit 1\n")
    old.chmod(0o755)
    for python, expected in ((str(old), "needs Python 3.10 to 3.13; "), ("/no/such/python", "is not a program")):
        proc = subprocess.run(["bash", str(ROOT / "scripts" / "workshop"), "--install-only"], capture_output=True,
                              text=True, timeout=60, env={**os.environ, "PYTHON": python})
        assert proc.returncode == 1
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0], proc.stderr
        if python == str(old):
            assert "Python 3.8.10" in lines[0]


@pytest.mark.slow
def test_a_clone_without_node_installs_without_the_sidebar_and_says_so(tmp_path):
    clone = tmp_path / "clone"
    shutil.copytree(ROOT, clone, ignore=shutil.ignore_patterns(
        ".git", ".cache", ".venv", "node_modules", "labextension", "lib", "test-artifacts", "results", "__pycache__",
        "*.egg-info", "executed"))
    shutil.copytree(ROOT / "labextension", clone / "labextension",
                    ignore=shutil.ignore_patterns("node_modules", "lib", "*.tsbuildinfo"))
    assert not (clone / "aml_magics" / "labextension").exists()  # as in a fresh clone: nothing built
    nonode = tmp_path / "bin"  # this machine's programs, minus Node.js
    nonode.mkdir()
    for folder in ("/usr/local/bin", "/usr/bin", "/bin"):
        for program in Path(folder).iterdir() if Path(folder).is_dir() else ():
            if program.name not in ("node", "nodejs", "npm", "npx", "corepack") and not (nonode / program.name).exists():
                (nonode / program.name).symlink_to(program)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=120)
    env = {**os.environ, "PATH": f"{venv / 'bin'}:{nonode}", "PYTHON": str(venv / "bin" / "python")}
    env.pop("PYTHONPATH", None)
    proc = subprocess.run(["bash", str(clone / "scripts" / "workshop"), "--install-only"], capture_output=True,
                          text=True, timeout=600, env=env, cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    note = [line for line in out.splitlines() if "without the JupyterLab sidebar" in line]
    assert len(note) == 1 and "Node.js" in note[0], out
    assert "Traceback" not in out and "npm ERR" not in out
    found = subprocess.run([str(venv / "bin" / "python"), "-c", "import aml_magics; print(aml_magics.__file__)"],
                           capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env)
    assert found.stdout.strip() == str(clone / "aml_magics" / "__init__.py"), found.stderr


def test_the_test_command_runs_the_labs_by_name_not_a_students_notebooks(tmp_path):
    """nbval collects notebooks/NN-*.ipynb (and the v1 ones, notebooks/v1/NN-*.ipynb) only: a student's copy in
    notebooks/ or an executed copy is no test."""
    student = ROOT / "notebooks" / f"my-attempt-{os.getpid()}.ipynb"
    executed = ROOT / "notebooks" / "executed"
    made_executed = not executed.exists()
    executed.mkdir(exist_ok=True)
    copy = executed / f"01-setup-{os.getpid()}.ipynb"
    notebook(student, "raise SystemExit('not a lab')")
    shutil.copyfile(ROOT / "notebooks" / "01-setup.ipynb", copy)
    try:
        proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:randomly"],
                              capture_output=True, text=True, timeout=300, cwd=ROOT)
        collected = {line.split("::")[0] for line in proc.stdout.splitlines() if ".ipynb::" in line}
        labs = {f"notebooks/{p.relative_to(ROOT / 'notebooks').as_posix()}"
                for p in [*(ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"),
                          *(ROOT / "notebooks" / "v1").glob("[0-9][0-9]-*.ipynb")]}
        assert labs and collected == labs, (collected, proc.stderr[-2000:])
    finally:
        student.unlink()
        copy.unlink()
        if made_executed:
            executed.rmdir()
