"""SIGKILL at random (seeded) points: a run's process, its host, a kernel, a scoring service's processes,
a sweep controller. Afterwards the workspace passes `doctor`, and every point logged before the last
flush interval is there, exactly once."""
from __future__ import annotations

import os
import random
import signal
import textwrap
import time

import joblib
import pytest
import requests

from aml_magics.backends.local.procs import is_alive
from aml_magics.core.types import RunSubmission
from aml_magics.backends.local.tracker import FLUSH_INTERVAL as FLUSH_INTERVAL_S

from ..conftest import wait_until
from ..kernel import Kernel

SEEDS = [int(s) for s in os.environ.get("AML_MAGICS_CRASH_SEEDS", "11,22,33").split(",")]
MARGIN_S = 0.3  # scheduling slack on a loaded 2-core machine

LOGGER = """
import time
from aml_magics import Run
run = Run.get_context()
i = 0
while True:
    run.log("tick", float(i), step=i)
    i += 1
    time.sleep(0.001)
"""


def assert_prefix_kept(client, run_id: str, name: str, killed_at: float) -> int:
    """The stored series is 0, 1, … k-1 (no hole, no duplicate) and reaches the last flush before the kill."""
    series, _ = client.runs.metric_series(run_id, name)
    steps = [s for s, _, _ in series]
    assert steps == list(range(len(steps))), "a hole or a duplicate in the stored series"
    assert [v for _, _, v in series] == [float(s) for s in steps]
    assert series, "nothing was stored"
    last_ts = series[-1][1]
    assert last_ts >= killed_at - FLUSH_INTERVAL_S - MARGIN_S, (
        f"lost {killed_at - last_ts:.2f} s of points, more than one flush interval ({FLUSH_INTERVAL_S} s)")
    return len(steps)


def doctor_is_clean(client) -> None:
    first = client.doctor()
    assert first.healthy, repr(first)
    again = client.doctor()  # everything repairable was repaired the first time
    assert again.healthy and all(outcome == "ok" for _, outcome, _ in again.checks), repr(again)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("victim", ["run process", "run process and host"])
def test_sigkill_of_a_logging_run(client, tmp_path, seed, victim):
    rng = random.Random(seed)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "logger.py").write_text(LOGGER)
    run = client.runs.submit(RunSubmission(kind="script", experiment="crash", source_dir=tmp_path / "src",
                                           entry="logger.py"))
    wait_until(lambda: client.runs.get(run.id).status == "Running", what="Running")
    time.sleep(rng.uniform(0.3, 1.5))
    row = client.backend.store.get_run(run.id)
    if victim == "run process and host":
        os.kill(row["host_pid"], signal.SIGKILL)
    killed_at = time.time()
    os.killpg(row["user_pid"], signal.SIGKILL)
    if victim == "run process and host":
        wait_until(lambda: not is_alive(row["host_pid"], row["host_start"]), what="the host to die")
    info = client.runs.wait(run.id, timeout=30)
    assert info.status == "Failed" and ("SIGKILL" in (info.error or "") or "ended" in (info.error or ""))
    assert assert_prefix_kept(client, run.id, "tick", killed_at) > 100
    doctor_is_clean(client)


def _a_run_whose_host_was_killed(client, tmp_path):
    """A logging run, Running, whose host was SIGKILLed (its own process runs on): (the run, its record)."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "logger.py").write_text(LOGGER)
    run = client.runs.submit(RunSubmission(kind="script", experiment="orphan", source_dir=tmp_path / "src",
                                           entry="logger.py"))
    wait_until(lambda: client.runs.get(run.id).status == "Running", what="Running")
    row = client.backend.store.get_run(run.id)
    os.kill(row["host_pid"], signal.SIGKILL)
    wait_until(lambda: not is_alive(row["host_pid"], row["host_start"]), what="the host to die")
    return run, row


def test_sigkill_of_only_the_host_leaves_an_orphan_that_doctor_stops(client, tmp_path):
    run, row = _a_run_whose_host_was_killed(client, tmp_path)
    time.sleep(0.5)
    assert client.runs.get(run.id).status == "Running", "its code still runs: shown Running until doctor acts"
    assert is_alive(row["user_pid"]), "the run's own process outlives its host"
    report = client.doctor()
    assert ("active runs have live processes", "repaired") in [(c, o) for c, o, _ in report.checks], repr(report)
    assert not is_alive(row["user_pid"]), "the unsupervised process was stopped"
    info = client.runs.get(run.id)
    assert info.status == "Failed" and "ended" in info.error
    steps = [s for s, _, _ in client.runs.metric_series(run.id, "tick")[0]]
    assert steps == list(range(len(steps))) and steps
    doctor_is_clean(client)


def test_cancel_of_a_run_whose_host_was_killed_stops_its_code(client, tmp_path):
    """``%aml cancel`` marked the run Canceled while its code ran on, logging to it, until ``doctor`` found it."""
    run, row = _a_run_whose_host_was_killed(client, tmp_path)
    assert is_alive(row["user_pid"])
    assert client.runs.cancel(run.id).status == "Canceled"
    assert not is_alive(row["user_pid"], row["user_start"]), "the run's code still runs"
    doctor_is_clean(client)


@pytest.mark.parametrize("seed", SEEDS[:2])
def test_sigkill_of_the_kernel_during_interactive_logging(workspace, tmp_path, seed):
    from aml_magics.core.client import Client

    rng = random.Random(seed)
    kernel = Kernel(env={**os.environ, "AML_MAGICS_WORKSPACE": str(workspace)}, cwd=str(tmp_path))
    try:
        kernel.run(textwrap.dedent("""
            import threading, time
            from aml_magics import Workspace, Experiment
            run = Experiment(Workspace.current(), "kernel-crash").start_logging()
            def loop():
                i = 0
                while True:
                    run.log("tick", float(i), step=i); i += 1; time.sleep(0.001)
            threading.Thread(target=loop, daemon=True).start()
        """))
        run_id = kernel.value("run.id")
        time.sleep(rng.uniform(0.5, 1.5))
        killed_at = time.time()
    finally:
        kernel.kill()
    client = Client(workspace)
    wait_until(lambda: client.runs.get(run_id).status == "Failed", timeout=20, what="the stale run repaired")
    assert assert_prefix_kept(client, run_id, "tick", killed_at) > 100
    doctor_is_clean(client)


@pytest.mark.parametrize("seed", SEEDS[:2])
def test_sigkill_of_a_scoring_service(client, tmp_path, seed):
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    rng = random.Random(seed)
    X, y = load_digits(return_X_y=True)
    joblib.dump(LogisticRegression(max_iter=200).fit(X[:300], y[:300]), tmp_path / "model.pkl")
    client.models.register("crash-model", tmp_path / "model.pkl")
    svc = client.deployments.create("crash-svc", "crash-model")
    key = svc.get_keys()[0]
    row = client.backend.store.query_one("SELECT * FROM deployments WHERE name='crash-svc'")
    victim = rng.choice(["server", "supervisor"])
    os.kill(row["server_pid"] if victim == "server" else row["supervisor_pid"], signal.SIGKILL)
    if victim == "supervisor":
        wait_until(lambda: client.deployments.get_info("crash-svc").state == "Failed", what="shown Failed")
    report = client.doctor()
    assert report.healthy, repr(report)
    wait_until(lambda: client.deployments.get_info("crash-svc").state == "Healthy", timeout=30, what="Healthy again")
    resp = requests.post(svc.scoring_uri, json={"data": X[:2].tolist()}, headers={"Authorization": f"Bearer {key}"})
    assert resp.status_code == 200, (victim, resp.text)
    doctor_is_clean(client)
    client.deployments.delete("crash-svc")


def test_a_supervisor_killed_while_the_service_starts_fails_the_deploy_at_once(client, tmp_path):
    """The OOM killer takes the supervisor while score.py's init() loads: the deploy says so within a second or two
    with the supervisor's last words — it waited out its whole timeout (120 s by default) before."""
    import threading

    from sklearn.linear_model import LogisticRegression

    joblib.dump(LogisticRegression().fit([[0.0], [1.0]], [0, 1]), tmp_path / "model.pkl")
    client.models.register("slow-start", tmp_path / "model.pkl")
    (tmp_path / "score.py").write_text("import time\ndef init():\n    time.sleep(30)\ndef run(raw):\n    return raw\n")

    def kill_the_supervisor():
        row = None
        for _ in range(200):
            row = client.backend.store.query_one("SELECT * FROM deployments WHERE name='slow-svc'")
            if row is not None and row["supervisor_pid"]:
                break
            time.sleep(0.05)
        time.sleep(1.0)  # the service is starting: init() sleeps
        os.kill(row["supervisor_pid"], signal.SIGKILL)

    killer = threading.Thread(target=kill_the_supervisor)
    killer.start()
    started = time.monotonic()
    with pytest.raises(Exception, match="slow-svc failed to start: its supervisor exited while starting"):
        client.deployments.create("slow-svc", "slow-start", score=tmp_path / "score.py", timeout=60)
    killer.join()
    assert time.monotonic() - started < 15
    assert client.deployments.get_info("slow-svc").state == "Failed"
    client.deployments.delete("slow-svc")
    import psutil

    left = [p.pid for p in psutil.process_iter(["cmdline"]) if any("slow-svc" in a for a in p.info["cmdline"] or [])]
    assert not left, "the service's server outlived its supervisor and the delete"


def test_a_submitter_killed_before_its_run_host_started(client, workspace, tmp_path, monkeypatch):
    """The submitter (a kernel, a sweep controller) dies between claiming a slot and starting the run's host:
    the run has not run at all, so whoever looks at it next starts its host — once."""
    import subprocess
    import sys

    monkeypatch.setenv("AML_MAGICS_HOSTLESS_GRACE_S", "1")
    code = textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        import aml_magics.backends.local.runs as backend
        backend.spawn_host = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)  # the kill lands exactly here
        from aml_magics.core.client import Client
        from aml_magics.core.types import RunSubmission
        Client({str(workspace)!r}).runs.submit(RunSubmission(kind="cell", experiment="lost", source_dir=Path("."),
                                                         entry="__aml_cell__.py", code="print('ran once')"))
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == -signal.SIGKILL, out.stderr
    (run,) = client.runs.list(experiment="lost").infos
    assert run.status == "Starting" and not client.backend.store.get_run(run.run_id)["host_pid"]
    views = [client.runs.get(run.run_id).status for _ in range(3)]  # within the grace: left alone
    assert views == ["Starting"] * 3
    time.sleep(1.2)
    info = client.runs.wait(run.run_id, timeout=60)
    assert info.status == "Completed"
    assert client.runs.read_log(run.run_id)[0].count("ran once") == 1
    assert [h["status"] for h in client.backend.store.status_history(run.run_id)].count("Running") == 1
    doctor_is_clean(client)


def test_a_submitter_killed_while_preparing_its_run(client, workspace, tmp_path):
    """The submitter (a kernel, a sweep controller) dies while copying the run's snapshot: the run never
    started and its snapshot may be partial, so the next reader ends it Canceled (a resumed sweep would
    otherwise wait for it forever — CI caught one)."""
    import subprocess
    import sys

    code = textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        import aml_magics.backends.local.runs as backend
        backend.snapshot.copy_snapshot = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)  # killed right here
        from aml_magics.core.client import Client
        from aml_magics.core.types import RunSubmission
        Client({str(workspace)!r}).runs.submit(RunSubmission(kind="cell", experiment="half", source_dir=Path("."),
                                                         entry="__aml_cell__.py", code="print('never')"))
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == -signal.SIGKILL, out.stderr
    run_id = client.backend.store.list_runs(experiment="half", limit=None)[0]["run_id"]
    assert client.backend.store.get_run(run_id)["status"] == "NotStarted"
    info = client.runs.get(run_id)
    assert info.status == "Canceled"
    assert "submitter ended before the run started" in client.backend.store.status_history(run_id)[-1]["reason"]
    doctor_is_clean(client)


def test_an_interrupted_submission_is_canceled_not_left_waiting(client, tmp_path, monkeypatch):
    import aml_magics.backends.local.runs as backend
    from aml_magics.core.types import RunSubmission

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(backend.snapshot, "copy_snapshot", interrupted)
    with pytest.raises(KeyboardInterrupt):
        client.runs.submit(RunSubmission(kind="cell", experiment="stop", source_dir=tmp_path, entry="c.py", code="1"))
    (run,) = client.runs.list(experiment="stop").infos
    assert run.status == "Canceled"


@pytest.mark.parametrize("seed", SEEDS[:2])
def test_sigkill_of_a_sweep_controller(ip, client, seed):
    rng = random.Random(seed)
    # trials of 1 s, three rounds at --parallel 2: the sweep is still going when the kill comes (with trials of 0.3 s
    # and warm trial hosts it could end first: the controller was gone before the kill, ProcessLookupError)
    cell = "import time\nfrom aml_magics import Run\nk = randint(100)\ntime.sleep(1.0)\nRun.get_context().log('k', k)\n"
    parent = ip.run_cell_magic("aml", f"sweep --metric k --trials 5 --parallel 2 --seed {seed} -e sweep-crash", cell)
    wait_until(lambda: client.runs.get(parent.id).status == "Running", what="Running")
    time.sleep(rng.uniform(0.2, 1.2))
    os.killpg(client.backend.store.get_run(parent.id)["user_pid"], signal.SIGKILL)
    assert client.runs.wait(parent.id, timeout=30).status == "Failed"
    for child in client.runs.children(parent.id).infos:  # trials keep running and end on their own
        assert client.runs.wait(child.run_id, timeout=30).status == "Completed"
    doctor_is_clean(client)
    client.runs.resume(parent.id)
    assert client.runs.wait(parent.id, timeout=60).status == "Completed"
    children = client.runs.children(parent.id).infos
    assert len(children) == 5 and all(c.status == "Completed" for c in children)
    doctor_is_clean(client)


@pytest.mark.parametrize("seed", SEEDS[:2])
def test_sigkill_of_the_jupyter_server_mid_deploy(client, workspace, tmp_path, seed):
    """The Jupyter server dies while it deploys a model and a submitted run is going: what it started
    lives on (detached), and the workspace stays consistent."""
    import json as _json
    import secrets
    import subprocess
    import sys
    import threading

    import nbformat
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    from tests.browser.lab import free_port

    rng = random.Random(seed)
    X, y = load_digits(return_X_y=True)
    joblib.dump(LogisticRegression(max_iter=100).fit(X[:200], y[:200]), tmp_path / "model.pkl")
    client.models.register("server-crash", tmp_path / "model.pkl")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import time\nfrom aml_magics import Run\nfor i in range(20):\n"
                                          "    Run.get_context().log('i', i)\n    time.sleep(0.1)")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    root = tmp_path / "root"
    root.mkdir()
    nbformat.write(nb, root / "job.ipynb")
    token, port = secrets.token_hex(8), free_port()
    env = dict(os.environ, AML_MAGICS_WORKSPACE=str(workspace), JUPYTER_CONFIG_DIR=str(tmp_path / "cfg"),
               JUPYTER_RUNTIME_DIR=str(tmp_path / "rt"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter_server", "--no-browser", "--ip", "127.0.0.1", "--port", str(port),
         f"--IdentityProvider.token={token}", "--allow-root", f"--ServerApp.root_dir={root}",
         "--ServerApp.jpserver_extensions={'aml_magics.server': True}"],
        env=env, stdout=open(tmp_path / "server.log", "wb"), stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}/aml/api"
    headers = {"Authorization": f"token {token}"}
    try:
        wait_until(lambda: _ok(base + "/workspace", headers), timeout=60, what="the Jupyter server")
        run = requests.post(base + "/runs", data=_json.dumps({"path": "job.ipynb"}), headers=headers).json()
        def deploy():
            try:
                requests.post(base + "/deployments", data=_json.dumps({"model": "server-crash"}), headers=headers,
                              timeout=60)
            except requests.ConnectionError:
                pass  # the server is killed under this request: that is the test

        threading.Thread(target=deploy, daemon=True).start()
        time.sleep(rng.uniform(0.1, 1.5))
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert client.runs.wait(run["id"], timeout=120).status == "Completed"  # the run outlives the server
    deployments = client.deployments.list()
    for d in deployments:  # a deploy the server started either finishes on its own or is repairable
        wait_until(lambda: client.deployments.get_info(d.name).state in ("Healthy", "Failed"), timeout=60,
                   what="the deployment to settle")
    doctor_is_clean(client)
    for d in client.deployments.list():
        assert d.state == "Healthy"
        client.deployments.delete(d.name)


def _ok(url: str, headers: dict) -> bool:
    try:
        return requests.get(url, headers=headers, timeout=2).status_code == 200
    except requests.RequestException:
        return False
