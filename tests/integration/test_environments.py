"""Environments: content-hashed versions, a virtualenv per hash (built once), used by runs and services."""
from __future__ import annotations

import time

import pytest
import requests
from IPython.core.error import UsageError

pytestmark = pytest.mark.slow


def test_versions_follow_content(client, tmp_path):
    req = tmp_path / "requirements.txt"
    req.write_text("six==1.15.0\n# a comment\n")
    yml = tmp_path / "environment.yml"
    yml.write_text("name: x\ndependencies:\n  - python=3.11\n  - pip:\n    - six==1.15.0\n")
    a = client.environments.register("pinned", req)
    b = client.environments.register("pinned", yml)  # the same packages: the same version
    c = client.environments.register("pinned", ["six==1.15.0", "tomli-w==1.0.0"])
    assert (a.version, b.version, c.version) == (1, 1, 2) and a.hash == b.hash != c.hash
    assert client.environments.get("pinned:1").packages == ["six==1.15.0"]
    assert [e.version for e in client.environments.list()] == [2, 1]
    # a version it does not have: which it has ("environment 'pinned' not found; did you mean 'pinned'?" before)
    from aml_magics.core.errors import NotFound

    with pytest.raises(NotFound, match="^environment pinned has no version 9; it has 1, 2$"):
        client.environments.get("pinned:9")
    # the packages read as a list of packages, not as Python's ['six==1.15.0', 'tomli-w==1.0.0']
    assert "pinned  2        " in repr(client.environments.list()) and \
        repr(client.environments.list()).splitlines()[-2].endswith("six==1.15.0, tomli-w==1.0.0")
    assert repr(c).startswith("Environment pinned:2 · 2 packages: six==1.15.0, tomli-w==1.0.0 · hash ")
    assert repr(a).startswith("Environment pinned:1 · 1 package: six==1.15.0 · hash ")


def test_run_and_service_in_an_environment(ip, client, tmp_path, capsys):
    (tmp_path / "requirements.txt").write_text("six==1.15.0\n")
    ip.run_line_magic("aml", f"env register pinned {tmp_path / 'requirements.txt'}")
    started = time.time()
    run = ip.run_cell_magic("aml", "run --env pinned --wait", "import six, sys\nprint('six', six.__version__, sys.prefix)\n")
    assert "Building environment" in capsys.readouterr().out  # progress is shown the first time
    info = client.runs.get(run.id)
    assert info.status == "Completed", run.get_logs()
    assert "six 1.15.0" in run.get_logs() and "/envs/" in run.get_logs()
    first = time.time() - started
    started = time.time()
    again = ip.run_cell_magic("aml", "run --env pinned --wait", "import six\nprint('six', six.__version__)\n")
    assert "six 1.15.0" in again.get_logs()
    assert "Building environment" not in capsys.readouterr().out  # cached by content hash
    assert time.time() - started < first
    # a scoring service from the same environment
    (tmp_path / "m.bin").write_bytes(b"x")
    client.models.register("envmodel", tmp_path / "m.bin")
    (tmp_path / "score.py").write_text("import six\ndef init():\n    pass\ndef run(raw):\n    return six.__version__\n")
    svc = client.deployments.create("env-svc", "envmodel", score=tmp_path / "score.py", environment="pinned")
    try:
        answer = requests.post(svc.scoring_uri, data="{}", headers={"Authorization": f"Bearer {svc.get_keys()[0]}"})
        assert answer.json() == "1.15.0"
    finally:
        svc.delete()


def test_failed_build_is_one_clear_error_with_the_log_kept(ip, client, workspace, tmp_path):
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(UsageError, match="lists no packages"):
        ip.run_cell_magic("aml", f"run --env {tmp_path / 'empty.txt'}", "x = 1\n")
    (tmp_path / "bad.txt").write_text("this-package-does-not-exist-aml-magics==0.0.1\n")
    with pytest.raises(UsageError, match="building the environment failed") as err:
        ip.run_cell_magic("aml", f"run --env {tmp_path / 'bad.txt'}", "x = 1\n")
    log = str(err.value).rsplit(" ", 1)[-1]
    assert "this-package-does-not-exist" in open(log).read()
    assert client.runs.list().infos == []  # nothing was submitted
    assert not [p for p in (workspace / "envs").iterdir() if p.is_dir()]  # no half-built environment left



def test_a_wrong_file_as_requirements_is_refused_and_nothing_is_stored(ip, client, tmp_path):
    """A 50 MB file of one line is a valid package name: it was stored as one "package" and `env list` read 50 MB."""
    (tmp_path / "data.csv").write_bytes(b"a" * (2 << 20))
    (tmp_path / "one-line.txt").write_text("x" * 5000 + "\n")
    (tmp_path / "ok.txt").write_text("six==1.15.0\n")
    ip.run_line_magic("aml", f"env register keep {tmp_path / 'ok.txt'}")
    for name, message in (("data.csv", "data.csv is 2.0 MB: a requirements file"),
                          ("one-line.txt", "line 1 of one-line.txt is 5,000 characters")):
        with pytest.raises(UsageError, match=message):
            ip.run_line_magic("aml", f"env register keep {tmp_path / name}")
        with pytest.raises(UsageError, match=message):  # --env FILE reads it the same way
            ip.run_cell_magic("aml", f"run --env {tmp_path / name}", "x = 1\n")
    assert [(e.name, e.version, e.packages) for e in client.environments.list()] == [("keep", 1, ["six==1.15.0"])]
    assert client.runs.list().infos == []


SLOW_BACKEND = '''
import time
def get_requires_for_build_wheel(config_settings=None):
    return []
def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    time.sleep(120)
    raise RuntimeError("too slow")
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    time.sleep(120)
    raise RuntimeError("too slow")
'''


def test_a_build_stopped_by_ctrl_c_stops_pip_and_leaves_no_half_built_environment(client, tmp_path):
    """Ctrl-C while pip installed: pip went on installing into the environment's folder, which the next build then
    removed and made again under it. (A package whose in-tree build backend takes minutes: nothing is downloaded.)"""
    import signal
    import threading

    import psutil

    pkg = tmp_path / "slowpkg"
    pkg.mkdir()
    (pkg / "pyproject.toml").write_text('[build-system]\nrequires = []\nbuild-backend = "backend"\n'
                                        'backend-path = ["."]\n\n[project]\nname = "slowpkg"\nversion = "0.1"\n')
    (pkg / "backend.py").write_text(SLOW_BACKEND)
    env = client.environments.register("slow", [f"slowpkg @ {pkg.as_uri()}"])

    def pips():
        return [p for p in psutil.process_iter(["cmdline"]) if pkg.as_uri() in " ".join(p.info["cmdline"] or ())]

    main = threading.main_thread().ident

    def ctrl_c_once_pip_runs():  # as a terminal's Ctrl-C: SIGINT to the main thread, blocked reading pip's output
        deadline = time.monotonic() + 120
        while not pips() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        signal.pthread_kill(main, signal.SIGINT)

    threading.Thread(target=ctrl_c_once_pip_runs, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        client.environments.build("slow", progress=lambda line: None)
    assert not [p for p in pips() if p.is_running() and p.status() != psutil.STATUS_ZOMBIE], "pip goes on installing"
    assert not (client.backend.path / "envs" / env.hash).exists()
