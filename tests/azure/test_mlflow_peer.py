"""The MLflow REST client against a real MLflow tracking server (MLflow's own `mlflow server`, SQLite store,
on loopback): Azure ML's metrics endpoint speaks this API, so this is the peer we can run here.

The server runs from its own virtualenv ($AML_MAGICS_MLFLOW_PYTHON; scripts/test creates it): MLflow is
large and `import flaml` imports mlflow whenever it is installed, which would slow every AutoML run."""
from __future__ import annotations

import re
import textwrap
import time

import pytest

from aml_magics.backends.azure.mlflow_rest import MlflowRest, tracking_base
from aml_magics.core.errors import NotFound

pytestmark = pytest.mark.azure_contract


def test_tracking_base_for_azure_and_plain_uris():
    uri = ("azureml://westeurope.api.azureml.ms/mlflow/v1.0/subscriptions/s/resourceGroups/rg/providers/"
           "Microsoft.MachineLearningServices/workspaces/w")
    assert tracking_base(uri) == ("https://westeurope.api.azureml.ms/mlflow/v2.0/subscriptions/s/resourceGroups/rg/"
                                  "providers/Microsoft.MachineLearningServices/workspaces/w")
    assert tracking_base("http://127.0.0.1:5000/") == "http://127.0.0.1:5000"


def test_runs_metrics_params_tags_round_trip(mlflow_server):
    ml = MlflowRest(mlflow_server)
    run_id = ml.create_run("azure-peer", run_name="cell", tags={"aml.kind": "cell"})
    points = [("loss", 1.0 / (i + 1), i, time.time()) for i in range(2500)]  # more than one batch
    ml.log_batch(run_id, points, params={"alpha": 0.1}, tags={"stage": "test"})
    ml.log_batch(run_id, [("accuracy", 0.9, 0, time.time())])
    history = ml.metric_history(run_id, "loss")
    assert [s for s, _, _ in history] == list(range(2500))
    assert history[-1][2] == pytest.approx(1 / 2500)
    ml.end_run(run_id)
    run = ml.get_run(run_id)
    assert run["info"]["status"] == "FINISHED"
    data = run["data"]
    assert {p["key"]: p["value"] for p in data["params"]} == {"alpha": "0.1"}
    assert {t["key"]: t["value"] for t in data["tags"]}["stage"] == "test"
    assert {m["key"] for m in data["metrics"]} == {"loss", "accuracy"}
    found = ml.search_runs([ml.experiment_id("azure-peer", create=False)])
    assert [r["info"]["run_id"] for r in found] == [run_id]
    with pytest.raises(NotFound):
        ml.get_run("0" * 32)


def _job(folder, tracking_uri: str, run_id: str):
    """``folder``/train.py as an Azure ML job runs it: MLFLOW_TRACKING_URI and MLFLOW_RUN_ID set, no workspace."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("AML_MAGICS_")}
    env.update(MLFLOW_TRACKING_URI=tracking_uri, MLFLOW_RUN_ID=run_id)
    out = subprocess.run([sys.executable, "train.py"], cwd=folder, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return out


def test_run_get_context_inside_a_job_logs_through_mlflow(mlflow_server, tmp_path):
    """A script as an Azure ML job runs it: MLFLOW_TRACKING_URI and MLFLOW_RUN_ID set, no local workspace."""
    ml = MlflowRest(mlflow_server)
    run_id = ml.create_run("in-job")
    (tmp_path / "train.py").write_text(
        "from aml_magics import Run\nrun = Run.get_context()\n"
        "for i in range(1500):\n    run.log('loss', 1.0 / (i + 1))\n"
        "run.log_param('lr', 0.1)\nrun.tag('stage', 'job')\nprint(run)\n")
    out = _job(tmp_path, mlflow_server, run_id)
    assert "MLflow tracking" in out.stdout
    history = ml.metric_history(run_id, "loss")
    assert [s for s, _, _ in history] == list(range(1500))  # flushed at exit, in MLflow-sized batches
    data = ml.get_run(run_id)["data"]
    assert {p["key"]: p["value"] for p in data["params"]} == {"lr": "0.1"}
    assert {t["key"]: t["value"] for t in data["tags"]}["stage"] == "job"


def test_a_nan_or_a_refused_metric_costs_only_itself(mlflow_server, tmp_path):
    """Inside a job: a NaN loss (bare NaN is not JSON: requests refused every batch, and every metric of the
    process was lost: "104 metric values could not be sent at exit"), a metric name MLflow refuses, and 150 tags
    at once (MLflow takes 100 a request) — the values arrive as MLflow's own client sends them, the refused point
    alone is left out (said once), and everything logged after it arrives."""
    ml = MlflowRest(mlflow_server)
    run_id = ml.create_run("in-job-bad-values")
    (tmp_path / "train.py").write_text(
        "from aml_magics import Run\nrun = Run.get_context()\n"
        "run.log('loss', float('nan'))\nrun.log('loss', float('inf'))\nrun.log('loss', 0.5)\n"
        # '@': MLflow's names are letters, digits, _-./: and space
        "for i in range(3):\n    run.log('acc@1', 0.1 * i)\n"
        "run.set_tags({f't{i}': str(i) for i in range(150)})\n"
        "for i in range(1200):\n    run.log('after', float(i))\n")
    out = _job(tmp_path, mlflow_server, run_id)
    loss = [v for _, _, v in ml.metric_history(run_id, "loss")]
    assert loss[0] != loss[0] and loss[1] > 1e308 and loss[2] == 0.5  # NaN; MLflow keeps infinity as the max float
    assert [v for _, _, v in ml.metric_history(run_id, "after")] == [float(i) for i in range(1200)]
    data = ml.get_run(run_id)["data"]
    assert {t["key"] for t in data["tags"]} >= {f"t{i}" for i in range(150)}
    assert "acc@1" not in {m["key"] for m in data["metrics"]}
    assert out.stderr.count("refused metric 'acc@1'") == 1, out.stderr
    assert "could not be sent" not in out.stderr and "not sent yet" not in out.stderr, out.stderr


def test_a_changed_param_does_not_stop_the_job_and_its_new_value_is_kept(mlflow_server, tmp_path):
    """The local workspace keeps a param's last value; MLflow refuses a second one, and ``run.log_param`` raised its
    refusal: a script that runs through locally stopped on Azure ML. Now the first value stays the param (MLflow's
    rule), the latest is the tag of the same name, said once, and the params sent beside it arrive."""
    ml = MlflowRest(mlflow_server)
    run_id = ml.create_run("in-job-params")
    (tmp_path / "train.py").write_text(
        "from aml_magics import Run\nrun = Run.get_context()\n"
        "run.log_param('lr', 0.1)\nrun.set_params({'lr': 0.2, 'epochs': 5})\nrun.log_param('lr', 0.3)\n"
        "run.log_param('epochs', 5)\nrun.log('loss', 1.0)\nprint('trained')\n")
    out = _job(tmp_path, mlflow_server, run_id)
    assert "trained" in out.stdout
    data = ml.get_run(run_id)["data"]
    assert {p["key"]: p["value"] for p in data["params"]} == {"lr": "0.1", "epochs": "5"}
    assert {t["key"]: t["value"] for t in data["tags"]}["lr"] == "0.3"
    assert [v for _, _, v in ml.metric_history(run_id, "loss")] == [1.0]
    assert out.stderr.count("param 'lr' is already '0.1' on this run") == 1, out.stderr


def test_text_values_go_as_tags_and_what_is_not_sent_is_said_once(mlflow_server, tmp_path):
    """``run.log(name, text)`` in a job: a line on stderr at every call (a training loop's epochs filled the job's
    log) and the text went nowhere. Now the text is the tag ``name`` (MLflow's metrics are numbers; the latest wins),
    said once; a name MLflow refuses, text beyond its tag limit and rows are each said once and cost nothing else."""
    ml = MlflowRest(mlflow_server)
    run_id = ml.create_run("in-job-text")
    (tmp_path / "train.py").write_text(
        "from aml_magics import Run\nrun = Run.get_context()\n"
        "for i in range(5):\n    run.log('phase', f'epoch {i}')\n    run.log('bad@name', 'x')\n"
        "    run.log('long', 'x' * 9000)\n    run.log_row('row', a=i)\n    run.log('loss', float(i))\n")
    out = _job(tmp_path, mlflow_server, run_id)
    data = ml.get_run(run_id)["data"]
    tags = {t["key"]: t["value"] for t in data["tags"]}
    assert tags["phase"] == "epoch 4" and "bad@name" not in tags and "long" not in tags
    assert [v for _, _, v in ml.metric_history(run_id, "loss")] == [0.0, 1.0, 2.0, 3.0, 4.0]
    for said in ("text values of 'phase' are sent as its tag", "refused text value of 'bad@name'",
                 "'long' longer than 8,000 characters is not sent", "a row value of 'row' is not sent"):
        assert out.stderr.count(said) == 1, out.stderr
    assert len(out.stderr.strip().splitlines()) == 4, out.stderr


def test_our_key_limit_is_mlflows(mlflow_server):
    """We refuse a metric name, a param key or a tag key over ``checks.MAX_KEY`` before anything is stored
    (tests/reliability/test_bad_values.py): MLflow's server takes exactly that many characters and refuses one more,
    so a run that logs here logs the same inside an Azure ML job."""
    from aml_magics.backends.azure.mlflow_rest import Refused
    from aml_magics.core import checks

    ml = MlflowRest(mlflow_server)
    run_id = ml.create_run("key-limits")
    ok, long = "k" * checks.MAX_KEY, "k" * (checks.MAX_KEY + 1)
    ml.log_batch(run_id, [(ok, 1.0, 0, time.time())], params={ok: 1}, tags={ok: "y"})
    for values in ({"metrics": [(long, 1.0, 0, time.time())]}, {"params": {long: 1}}, {"tags": {long: "y"}}):
        with pytest.raises(Refused):
            ml.log_batch(run_id, **values)
    data = ml.get_run(run_id)["data"]
    assert [m["key"] for m in data["metrics"]] == [ok] and [p["key"] for p in data["params"]] == [ok]
    assert ok in {t["key"] for t in data["tags"]} and long not in {t["key"] for t in data["tags"]}


class Outage:
    """A loopback TCP relay to the MLflow server that can be cut: while ``down`` it closes each connection at once
    (the client sees a dropped connection, as in a network outage); ``delay`` holds each answer that long (a slow
    endpoint)."""

    def __init__(self, upstream: str):
        import socket
        import threading
        from urllib.parse import urlsplit

        parts = urlsplit(upstream)
        self.target = (parts.hostname, parts.port)
        self.down = False
        self.delay = 0.0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket
        import threading

        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.down:
                client.close()
                continue
            server = socket.create_connection(self.target)
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b, b is client), daemon=True).start()

    def _pipe(self, a, b, answers: bool) -> None:
        try:
            while data := a.recv(65536):
                if answers and self.delay:
                    time.sleep(self.delay)
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(2)
                except OSError:
                    pass


def test_an_outage_is_said_once_and_loses_nothing(mlflow_server, tmp_path):
    """The endpoint unreachable for a while: the values wait in memory, the outage is said once (it was a line
    every second), and when it ends everything logged meanwhile arrives. Tags too: ``run.tag`` during the outage
    raised BackendUnavailable after its retries, and the training loop stopped."""
    import os
    import subprocess
    import sys
    import time

    ml = MlflowRest(mlflow_server)
    run_id = ml.create_run("in-job-outage")
    relay = Outage(mlflow_server)
    (tmp_path / "train.py").write_text(
        "import sys, time\nfrom aml_magics import Run\nrun = Run.get_context()\n"
        "for i in range(30):\n    run.log('loss', float(i))\n    run.tag(f'epoch{i}', str(i))\n    time.sleep(0.4)\n"
        "run.log_param('lr', 0.1)\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AML_MAGICS_")}
    env.update(MLFLOW_TRACKING_URI=relay.url, MLFLOW_RUN_ID=run_id)
    relay.down = True
    job = subprocess.Popen([sys.executable, "train.py"], cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    time.sleep(9)  # past the first flush's retries (7.5 s)
    relay.down = False
    _, err = job.communicate(timeout=120)
    assert job.returncode == 0, err
    assert [v for _, _, v in ml.metric_history(run_id, "loss")] == [float(i) for i in range(30)]
    data = ml.get_run(run_id)["data"]
    assert {t["key"]: t["value"] for t in data["tags"] if t["key"].startswith("epoch")} == \
        {f"epoch{i}": str(i) for i in range(30)}
    assert {p["key"]: p["value"] for p in data["params"]} == {"lr": "0.1"}
    assert err.count("metrics not sent yet") == 1, err
    assert "metrics are being sent again; none were lost" in err


def test_values_the_flush_thread_holds_as_the_job_ends_still_arrive(mlflow_server, tmp_path):
    """The job ends while the flush thread holds a batch it is retrying (the endpoint unreachable for a moment): the
    last flush found the buffer empty and the process ended with that batch unsent (a CI run lost a job's last two
    values this way). It waits for the flush under way, which sends them when the endpoint is back."""
    import os
    import subprocess
    import sys

    ml = MlflowRest(mlflow_server)
    run_id = ml.create_run("held-at-exit")
    relay = Outage(mlflow_server)
    relay.down = True
    (tmp_path / "train.py").write_text(
        "import time\nfrom aml_magics import Run\nrun = Run.get_context()\n"
        "for i in range(3):\n    run.log('loss', float(i))\ntime.sleep(1.5)\n")  # the flush thread's tick is 1 s
    env = {k: v for k, v in os.environ.items() if not k.startswith("AML_MAGICS_")}
    env.update(MLFLOW_TRACKING_URI=relay.url, MLFLOW_RUN_ID=run_id)
    job = subprocess.Popen([sys.executable, "train.py"], cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    time.sleep(3.0)  # the script's end is ~1.7 s; the flush thread's retries of its batch go on to ~7.5 s
    relay.down = False
    _, err = job.communicate(timeout=120)
    assert job.returncode == 0, err
    assert [v for _, _, v in ml.metric_history(run_id, "loss")] == [0.0, 1.0, 2.0], err
    assert "could not be sent" not in err, err


@pytest.mark.parametrize("batch", [False, True])
def test_the_runtime_shipped_with_a_job_is_enough_on_its_own(mlflow_server, tmp_path, batch):
    """An Azure ML job gets only ``ops.with_runtime``'s files of aml-magics (its environment does not have the
    package). A module they import that is not among them fails only there — nothing here would notice. The job's
    script runs with just those files as ``aml_magics``, logs through the MLflow peer, and nothing else of
    aml-magics is importable."""
    import os
    import shutil
    import subprocess
    import sys

    from aml_magics.backends.azure import ops

    for source, rel in ops.with_runtime([], batch=batch):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, tmp_path / rel)
    ml = MlflowRest(mlflow_server)
    run_id = ml.create_run("runtime-alone")
    script = ("import sys\nsys.path.insert(0, sys.argv[1])\nimport aml_magics\n"
              "assert aml_magics.__file__.startswith(sys.argv[1]), aml_magics.__file__\n"
              "from aml_magics import Run\nrun = Run.get_context()\nrun.log('loss', float('nan'))\n"
              "run.log('loss', 0.5)\nrun.tag('stage', 'alone')\n"
              + ("from aml_magics.batch.engine import run_batch\n" if batch else "")
              # every other thing a job's script may ask of its run: done, or one clear refusal — never a module
              # that was not shipped (run.experiment, run.client and record_child raised ModuleNotFoundError)
              + "for ask in ('experiment', 'client', 'get_info()', 'get_metrics()', 'get_status()', 'get_details()',\n"
                "            'record_child(\"t\", metrics={\"m\": 1.0})', 'child_run(\"c\")',\n"
                "            'log_table(\"t\", {\"a\": [1, 2]})', 'log_row(\"r\", a=1)', 'set_tags({\"a\": \"b\"})'):\n"
                "    try:\n        eval('run.' + ask)\n"
                "    except Exception as exc:\n"
                "        assert type(exc).__name__ in ('NotSupported', 'AttributeError'), (ask, repr(exc))\n"
                "        print('REFUSED', ask, type(exc).__name__, file=sys.stderr)\n"
              + "print(sorted(m for m in sys.modules if m.startswith('aml_magics')))\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AML_MAGICS_") and k != "PYTHONPATH"}
    env.update(MLFLOW_TRACKING_URI=mlflow_server, MLFLOW_RUN_ID=run_id)
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path)], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert [v for _, _, v in ml.metric_history(run_id, "loss")][1:] == [0.5]
    assert "could not be sent" not in out.stderr, out.stderr


def test_a_pool_worker_that_cannot_send_its_values_as_it_ends_says_they_are_lost(mlflow_server, tmp_path):
    """The endpoint is down when a pool worker of a job ends: its values go with it. It said "kept in memory and
    retried" (a worker has no later); it says how many were lost, and the job's own values still arrive when the
    endpoint is back."""
    import os
    import subprocess
    import sys

    ml = MlflowRest(mlflow_server)
    run_id = ml.create_run("in-job-pool-outage")
    relay = Outage(mlflow_server)
    (tmp_path / "train.py").write_text(textwrap.dedent("""
        import sys
        import multiprocessing as mp
        from aml_magics import Run
        run = Run.get_context()
        def work(i):
            for j in range(3):
                run.log("pool", j)
            return i
        if __name__ == "__main__":
            with mp.get_context("fork").Pool(1) as pool:
                pool.map(work, [0])
            print("POOL DONE", flush=True)
            sys.stdin.readline()                 # the endpoint is back
            run.log("parent", 1.0)
    """))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AML_MAGICS_")}
    env.update(MLFLOW_TRACKING_URI=relay.url, MLFLOW_RUN_ID=run_id)
    relay.down = True
    job = subprocess.Popen([sys.executable, "train.py"], cwd=tmp_path, env=env, stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert job.stdout.readline().startswith("POOL DONE")
        relay.down = False
        _, err = job.communicate("go\n", timeout=120)
    finally:
        if job.poll() is None:
            job.kill()
    assert job.returncode == 0, err
    assert re.search(r"3 metric values or tags could not be sent before this process \(pid \d+\) ended", err), err
    assert "kept in memory" not in err
    assert [v for _, _, v in ml.metric_history(run_id, "parent")] == [1.0]


def test_pool_workers_in_a_job_send_every_value_once(mlflow_server, tmp_path):
    """A job whose script logs from ``multiprocessing`` pool workers (fork: Linux's default before Python 3.14) and
    from an ``os.fork`` child: every worker's value reaches MLflow (before, none did: a worker leaves with
    ``os._exit`` and had no flush thread), and the parent's values once each (a child that exited normally sent
    the parent's buffered values again)."""
    ml = MlflowRest(mlflow_server)
    run_id = ml.create_run("in-job-pool")
    (tmp_path / "train.py").write_text(textwrap.dedent("""
        import os, sys
        import multiprocessing as mp
        from aml_magics import Run
        run = Run.get_context()
        def work(i):
            for j in range(5):
                run.log("pool", i * 5 + j)
            return i
        if __name__ == "__main__":
            for r in range(3):
                with mp.get_context("fork").Pool(2) as pool:
                    pool.map(work, range(r * 4, r * 4 + 4))
            for i in range(300):
                run.log("parent", i)                  # still buffered when the child is forked
            pid = os.fork()
            if pid == 0:
                run.log("child", 1.0)
                sys.exit(0)
            os.waitpid(pid, 0)
            for i in range(300, 600):
                run.log("parent", i)
    """))
    _job(tmp_path, mlflow_server, run_id)
    assert sorted(v for _, _, v in ml.metric_history(run_id, "parent")) == list(range(600))
    assert sorted(v for _, _, v in ml.metric_history(run_id, "pool")) == list(range(60))
    assert [v for _, _, v in ml.metric_history(run_id, "child")] == [1.0]
