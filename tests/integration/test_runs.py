"""Runs end to end: real IPython shell, real run processes, the real SQLite store."""
from __future__ import annotations

import json
import os
import signal
import textwrap
from pathlib import Path

import numpy as np
import pytest
from IPython.core.error import UsageError

from aml_magics.core.errors import InvalidInput

from tests.conftest import wait_until

TRAIN_CELL = textwrap.dedent(
    """
    from aml_magics import Run
    run = Run.get_context()
    for alpha in [0.1, 0.2, 0.5]:
        run.log("alpha", alpha)
        run.log("mse", 3000 + alpha * 100)
    run.log_row("table", a=1, b=2)
    run.tag("framework", "none")
    with open("outputs/model.txt", "w") as f:
        f.write("model")
    print("trained")
    """
)


def test_cell_run_keeps_status_metrics_logs_outputs_and_snapshot(ip, project, workspace):
    (project / "helper.py").write_text("VALUE = 7\n")
    (project / "outputs").mkdir()
    (project / "outputs" / "stale.bin").write_text("old outputs are not part of the snapshot")
    run = ip.run_cell_magic("aml", "run -e diabetes --compute local --tag owner=me", TRAIN_CELL)
    assert run.get_status() in ("Starting", "Running", "Completed")  # returned at once
    info = run.client.runs.wait(run.id, timeout=60)
    assert info.status == "Completed", run.get_logs()
    assert info.experiment == "diabetes" and info.compute == "local"
    metrics = run.get_metrics()
    assert metrics["alpha"] == [0.1, 0.2, 0.5]
    assert metrics["mse"] == [3010.0, 3020.0, 3050.0]
    assert metrics["table"] == {"a": [1], "b": [2]}
    assert run.get_tags() == {"owner": "me", "framework": "none"}
    assert "trained" in run.get_logs()
    files = run.get_file_names()
    assert "outputs/model.txt" in files and "logs/std_log.txt" in files
    assert "outputs/stale.bin" not in files
    snap = workspace / "runs" / run.id / "snapshot"
    assert (snap / "helper.py").read_text() == "VALUE = 7\n"
    assert "run.log(\"alpha\", alpha)" in (snap / "__aml_cell__.py").read_text()
    target = project / "downloaded.txt"
    run.download_file("outputs/model.txt", target)
    assert target.read_text() == "model"
    text = repr(run)
    assert run.id in text and "Completed" in text and "mse=3050" in text and "diabetes" in text
    html = run._repr_mimebundle_()["text/html"]
    assert "Completed" in html and run.id in html


def test_script_run_with_arguments_and_datastore_input(ip, project, client):
    (project / "data.csv").write_text("x,y\n1,2\n")
    ip.run_line_magic("aml", "datastore upload data.csv --target diabetes/")
    (project / "train.py").write_text(textwrap.dedent(
        """
        import os, sys
        from aml_magics import Run
        run = Run.get_context()
        path = sys.argv[sys.argv.index("--data") + 1]
        rows = open(path).read().splitlines()
        run.log("rows", len(rows))
        run.log("reg", float(sys.argv[sys.argv.index("--reg") + 1]))
        print("input env", os.environ["AZURE_ML_INPUT_data"] == path)
        """
    ))
    reg = 0.5  # a script's arguments expand the caller's variables, as in any magic line; ${{...}} stays
    run = ip.run_line_magic(
        "aml", "run train.py -e scripts --input data=datastore:diabetes/data.csv --wait -- --data ${{inputs.data}} --reg {reg}"
    )
    info = client.runs.get(run.id)
    assert info.status == "Completed", run.get_logs()
    assert run.get_metrics() == {"rows": 2, "reg": 0.5}
    assert "input env True" in run.get_logs()
    assert info.spec["kind"] == "script" and info.spec["args"][-1] == "0.5"
    # from Python, numbers among the arguments are passed as their text (they failed with a TypeError from inside)
    from aml_magics.core.types import RunSubmission

    run = client.runs.submit(RunSubmission(kind="script", experiment="scripts", source_dir=project, entry="train.py",
                                           args=["--data", str(project / "data.csv"), "--reg", 2.5, "--n", np.int64(3)],
                                           environment_variables={"AZURE_ML_INPUT_data": str(project / "data.csv")}))
    assert client.runs.wait(run.id, timeout=60).status == "Completed", run.get_logs()
    assert run.get_metrics()["reg"] == 2.5 and client.runs.get(run.id).spec["args"][-1] == "3"  # numpy's int too


# a notebook a tool wrote (nbformat's new_notebook(), some converters) names no kernel or language: papermill
# refused its parameters ("No language found in notebook"), so every sweep trial of it failed
@pytest.mark.parametrize("metadata", [{"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                      "language": "python"}}, {}], ids=["kernelspec", "no-metadata"])
def test_notebook_submit_with_parameters_keeps_executed_notebook(ip, project, client, capsys, metadata):
    nb = {
        "cells": [
            {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": "alpha = 1.0\nlabel = 'x'",
             "outputs": [], "execution_count": None},
            {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
             "source": "from aml_magics import Run\nrun = Run.get_context()\nrun.log('alpha', alpha)\n"
                       "run.log('label', label)\nprint('nb done', alpha)"},
        ],
        "metadata": metadata,
        "nbformat": 4, "nbformat_minor": 5,
    }
    (project / "train.ipynb").write_text(json.dumps(nb))
    run = ip.run_line_magic("aml", "submit train.ipynb -e nbs -p alpha=0.25 -p label=hello")
    assert "Note:" not in capsys.readouterr().err  # both are set by the parameters cell
    info = client.runs.wait(run.id, timeout=120)
    assert info.status == "Completed", run.get_logs()
    assert run.get_metrics() == {"alpha": 0.25, "label": "hello"}
    assert "outputs/train.ipynb" in run.get_file_names()
    executed = json.loads((client.backend.runs.file_path(run.id, "outputs/train.ipynb")).read_text())
    assert any("nb done 0.25" in "".join(o.get("text", "")) for c in executed["cells"] for o in c.get("outputs", []))
    # the kernel's own log is not the run's: "[IPKernelApp] WARNING | Kernel is running over TCP without encryption"
    # on every run, "KeyboardInterrupt caught in kernel" on some
    assert "nb done 0.25" in run.get_logs() and "IPKernelApp" not in run.get_logs(), run.get_logs()


def _submitted_notebook(ip, client, path: Path, *cells: str):
    """A notebook of these code cells at ``path``, submitted whole: (its run, the run's info once it has ended)."""
    nb = {"cells": [{"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None, "source": text}
                    for text in cells],
          "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb))
    run = ip.run_line_magic("aml", f"submit {path.name}")
    return run, client.runs.wait(run.id, timeout=120)


def test_notebook_failure_reports_the_cell_error(ip, project, client):
    _, info = _submitted_notebook(ip, client, project / "broken.ipynb", "raise ValueError('bad data')")
    assert info.status == "Failed"
    assert "ValueError: bad data" in info.error


@pytest.mark.parametrize("line, says", [("submit selfsub.ipynb", "submits itself"),
                                        ("sweep selfsub.ipynb --metric acc --param x=choice(1,2)", "sweeps itself")])
def test_a_notebook_that_submits_itself_fails_once_saying_so(ip, project, client, line, says):
    """A notebook with an ``%aml submit`` cell of itself, submitted whole: every run it started submitted it again
    (21 runs in 40 s, and counting; a sweep of itself would multiply). Now the first run fails at that cell with the
    reason as its error (a magic's UsageError is printed, not an error output: the run said only
    "CellExecutionError:  (notebook cell 2)")."""
    run, info = _submitted_notebook(ip, client, project / "selfsub.ipynb", "%load_ext aml_magics",
                                    f"again = %aml {line}")
    assert info.status == "Failed"
    assert info.error.startswith(f"UsageError: selfsub.ipynb {says}: this run would start another"), info.error
    assert [i.run_id for i in client.runs.list(limit=None).infos] == [run.id]


def test_runs_that_submit_runs_stop_at_a_depth(ip, client, monkeypatch, capsys):
    """A run's process knows how deep it is (1 for a run from a notebook; a sweep's trial is 2), and a submission from
    a run already ``MAX_DEPTH`` deep is refused: two notebooks submitting each other end there."""
    from aml_magics.core.names import MAX_DEPTH

    cell = "import os\nprint('depth', os.environ['AML_MAGICS_DEPTH'])\n"
    run = ip.run_cell_magic("aml", "run --wait", cell)
    assert "depth 1" in client.runs.get_logs(run.id)
    monkeypatch.setenv("AML_MAGICS_DEPTH", "3")  # as inside a run three deep
    run = ip.run_cell_magic("aml", "run --wait", cell)
    assert "depth 4" in client.runs.get_logs(run.id)
    monkeypatch.setenv("AML_MAGICS_DEPTH", str(MAX_DEPTH))
    before = len(client.runs.list(limit=None).infos)
    with pytest.raises(UsageError, match=f"this run is {MAX_DEPTH} runs deep .*submit each other"):
        ip.run_cell_magic("aml", "run", cell)
    assert len(client.runs.list(limit=None).infos) == before


def test_in_out_round_trip(ip, project, client):
    ip.user_ns["data"] = [1, 2, 3]
    ip.user_ns["scale"] = lambda v: v * 10  # a closure-like object needs cloudpickle
    ip.run_cell_magic("aml", "run --in data,scale --out total,doubled", "total = sum(scale(v) for v in data)\ndoubled = [d * 2 for d in data]\n")
    assert ip.user_ns["total"] == 60
    assert ip.user_ns["doubled"] == [2, 4, 6]
    run = ip.run_cell_magic("aml", "run --in data --out result --no-wait", "import time; time.sleep(1); result = len(data)\n")
    assert "result" not in ip.user_ns
    with pytest.raises(InvalidInput, match="when it has Completed"):
        run.result("result")
    client.runs.wait(run.id, timeout=60)
    assert run.result("result") == 3


def test_an_out_value_that_cannot_travel_is_named(ip, client):
    names = ("unpicklable_count", "unpicklable_lock")
    before = {n: ip.user_ns.get(n, "absent") for n in names}
    run = ip.run_cell_magic("aml", "run --out unpicklable_count,unpicklable_lock",
                            "import threading\nunpicklable_count = 3\nunpicklable_lock = threading.Lock()\n")
    info = client.runs.get(run.id)
    assert info.status == "Failed"
    assert ("--out unpicklable_lock cannot be brought back to the notebook (cannot pickle '_thread.lock' object)"
            in info.error)
    assert {n: ip.user_ns.get(n, "absent") for n in names} == before  # nothing half brought back


def test_failing_cell_records_error_and_traceback(ip, client):
    run = ip.run_cell_magic("aml", "run", "from aml_magics import Run\nRun.get_context().log('before', 1)\n1/0\n")
    info = client.runs.wait(run.id, timeout=60)
    assert info.status == "Failed"
    assert info.exit_code == 1
    assert "ZeroDivisionError" in info.error
    assert "__aml_cell__.py" in info.traceback and "launch.py" not in info.traceback
    assert run.get_metrics() == {"before": 1}
    assert "ZeroDivisionError" in run.get_logs()
    # logging without getting the run first (another tool's habit): the error says how; other names as Python says
    hint = "(get the run first: from aml_magics import Run; run = Run.get_context())"
    for cell, said in (("run.log('acc', 1)\n", f"NameError: name 'run' is not defined {hint}"),
                       ("Run.get_context()\n", f"NameError: name 'Run' is not defined {hint}"),
                       ("foo()\n", "NameError: name 'foo' is not defined")):
        info = client.runs.wait(ip.run_cell_magic("aml", "run", cell).id, timeout=60)
        assert info.status == "Failed" and info.error == said, info.error
        assert info.traceback.endswith(f"{hint}\n") == (hint in said), info.traceback


def test_cancel_stops_the_process_group_and_marks_canceled(ip, client, workspace):
    code = textwrap.dedent(
        """
        import subprocess, sys, time
        from aml_magics import Run
        run = Run.get_context()
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        open("outputs/child.pid", "w").write(str(child.pid))
        for i in range(1000):
            run.log("tick", i)
            time.sleep(0.02)
        """
    )
    run = ip.run_cell_magic("aml", "run", code)
    wait_until(lambda: len(client.runs.metric_series(run.id, "tick")[0]) >= 3, what="the run logging")
    child_pid_file = workspace / "runs" / run.id / "snapshot" / "outputs" / "child.pid"
    child_pid = int(wait_until(lambda: child_pid_file.exists() and child_pid_file.read_text(), what="child pid"))
    info = ip.run_line_magic("aml", f"cancel {run.id}")
    assert info.status == "Canceled"
    assert len(run.get_metrics()["tick"]) > 0  # logged points were flushed on the way out
    def gone(pid):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1].startswith("Z")
    wait_until(lambda: gone(child_pid), timeout=10, what="the run's child process to stop")
    with pytest.raises(UsageError, match="already Canceled"):
        ip.run_line_magic("aml", f"cancel {run.id}")


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads a process's signal mask in /proc")
def test_a_run_submitted_from_a_thread_of_ours_takes_its_signals_back(client, project):
    """A process inherits its starter's signal mask, and our threads block SIGINT/SIGTERM (the kernel then gives
    them to the main thread): a run submitted from one (a widget's worker thread) had a host and a script that
    SIGTERM could not reach — ``cancel`` waited for its grace and killed. Every process of ours takes them back."""
    import threading

    from aml_magics.core.children import leave_signals_to_the_main_thread
    from aml_magics.core.types import RunSubmission

    (project / "wait.py").write_text("import os, time\nopen('outputs/pid', 'w').write(str(os.getpid()))\n"
                                     "time.sleep(120)\n")
    submitted = {}

    def submit():
        leave_signals_to_the_main_thread()
        submitted["run"] = client.runs.submit(RunSubmission(kind="script", experiment="masks", source_dir=project,
                                                            entry="wait.py"))

    thread = threading.Thread(target=submit)
    thread.start()
    thread.join(60)
    run = submitted["run"]
    pid_file = client.backend.path / "runs" / run.id / "snapshot" / "outputs" / "pid"
    script_pid = int(wait_until(lambda: pid_file.exists() and pid_file.read_text(), what="the script's pid"))
    host_pid = client.backend.store.get_run(run.id)["host_pid"]

    def blocked(pid: int) -> set[str]:
        with open(f"/proc/{pid}/status") as f:
            mask = int(next(line for line in f if line.startswith("SigBlk:")).split()[1], 16)
        return {s.name for s in (signal.SIGINT, signal.SIGTERM) if mask >> (s - 1) & 1}

    assert blocked(host_pid) == set() and blocked(script_pid) == set()
    client.runs.cancel(run.id)
    assert client.runs.wait(run.id, timeout=30).status == "Canceled"


def test_a_run_past_its_time_limit_is_canceled_and_says_why(ip, client):
    """``--timeout``: the run is stopped once it has run that long (as Azure ML cancels a job past
    ``limits.timeout``), what it logged is kept, and the user reads why — in its status, its output and its repr."""
    code = textwrap.dedent(
        """
        import time
        from aml_magics import Run
        run = Run.get_context()
        for i in range(100000):
            run.log("tick", i)
            time.sleep(0.05)
        """
    )
    run = ip.run_cell_magic("aml", "run --timeout 2s", code)
    quick = ip.run_cell_magic("aml", "run --timeout 1h", "print('done in time')\n")
    info = client.runs.wait(run.id, timeout=60)
    assert info.status == "Canceled"
    assert info.error == "the run exceeded its time limit of 2 s and was canceled"
    assert 1.5 <= info.ended - info.started < 2 + 5, "stopped at its limit (counted from the process start)"
    assert len(run.get_metrics()["tick"]) >= 10  # the points logged before it were flushed on the way out
    assert "[aml-magics] the run exceeded its time limit of 2 s" in run.get_logs()
    assert "why: the run exceeded its time limit" in repr(info)
    assert "Why" in info._repr_html_()
    done = client.runs.wait(quick.id, timeout=60)
    assert done.status == "Completed" and done.error is None  # a run within its limit is untouched


def test_compute_create_of_an_existing_target_keeps_it_or_says_it_resized(ip, client, capsys):
    """`%aml compute create small` of a target made with --max-concurrent 3 set it back to the default without a
    word (and a size given resized it just as quietly)."""
    ip.run_line_magic("aml", "compute create small --max-concurrent 3")
    capsys.readouterr()
    kept = ip.run_line_magic("aml", "compute create small")
    assert kept.max_concurrent == 3 and client.computes.get("small").max_concurrent == 3
    assert "Note: compute small exists (3 at once), kept as it is; to resize it: %aml compute create small " \
           "--max-concurrent N" in capsys.readouterr().err
    ip.run_line_magic("aml", "compute create small --max-concurrent 1")
    assert client.computes.get("small").max_concurrent == 1
    assert "Note: compute small resized: 3 → 1 at once" in capsys.readouterr().err


def test_queueing_with_max_concurrent_one(ip, client, workspace):
    ip.run_line_magic("aml", "compute create single --max-concurrent 1")
    # runs of 1 s: the first is still running when the statuses of the other two are read
    runs = [ip.run_cell_magic("aml", "run -c single", f"import time\ntime.sleep(1.0)\nprint('run {i}')\n") for i in range(3)]
    statuses = [r.get_status() for r in runs]
    assert statuses[1] == "Queued" and statuses[2] == "Queued"
    # the submitting side plays no part from here: hosts start the queued runs
    assert "Queued" in repr(runs[2])
    infos = [client.runs.wait(r.id, timeout=60) for r in runs]
    assert [i.status for i in infos] == ["Completed"] * 3
    # never more than one at a time: each started after the previous ended
    for before, after in zip(infos, infos[1:]):
        assert after.started >= before.ended - 0.05
    canceled = ip.run_cell_magic("aml", "run -c single", "import time\ntime.sleep(5)\n")
    queued = ip.run_cell_magic("aml", "run -c single", "print('never')\n")
    assert queued.get_status() == "Queued"
    assert ip.run_line_magic("aml", f"cancel {queued.id}").status == "Canceled"
    ip.run_line_magic("aml", f"cancel {canceled.id}")
    assert client.runs.get(queued.id).started is None


def test_eight_concurrent_runs_lose_no_points(ip, client):
    code = textwrap.dedent(
        """
        from aml_magics import Run
        run = Run.get_context()
        for i in range(20000):
            run.log("loss", float(i))
        """
    )
    runs = [ip.run_cell_magic("aml", f"run -e load --name r{i}", code) for i in range(8)]
    for r in runs:
        assert client.runs.wait(r.id, timeout=120).status == "Completed", r.get_logs()
        values = r.get_metrics()["loss"]
        assert len(values) == 20000
        assert values == [float(i) for i in range(20000)]  # each exactly once, in order


def test_sigkilled_run_process_ends_failed_with_logs_kept(ip, client):
    code = "import time, os\nprint('started', os.getpid(), flush=True)\ntime.sleep(60)\n"
    run = ip.run_cell_magic("aml", "run", code)
    row = wait_until(lambda: (lambda r: r if r["user_pid"] and r["status"] == "Running" else None)(
        client.backend.store.get_run(run.id)), what="the run to be Running")
    wait_until(lambda: "started" in run.get_logs(), what="output")
    os.kill(row["user_pid"], signal.SIGKILL)
    info = client.runs.wait(run.id, timeout=30)
    assert info.status == "Failed"
    assert "SIGKILL" in info.error
    assert "started" in run.get_logs()


def test_sigkilled_host_is_repaired_to_failed(ip, client):
    # The cell outlives the test's kills (a short sleep could end before them: ProcessLookupError).
    run = ip.run_cell_magic("aml", "run", "import time\ntime.sleep(120)\n")
    row = wait_until(lambda: (lambda r: r if r["user_pid"] and r["host_pid"] else None)(
        client.backend.store.get_run(run.id)), what="the run's processes")
    os.killpg(row["user_pid"], signal.SIGKILL)
    os.kill(row["host_pid"], signal.SIGKILL)
    info = wait_until(lambda: (lambda i: i if i.status == "Failed" else None)(client.runs.get(run.id)),
                      what="the stale run to be repaired")
    assert "ended" in info.error


def test_interactive_logging_with_start_logging(workspace):
    from aml_magics import Experiment, Workspace

    ws = Workspace.current()
    exp = Experiment(ws, "setup")
    run = exp.start_logging(display_name="pi")
    estimate = 0.0
    for k in range(100):
        estimate += 4 * (-1) ** k / (2 * k + 1)
        run.log("pi", estimate)
    run.complete()
    assert run.get_status() == "Completed"
    assert len(run.get_metrics()["pi"]) == 100
    assert abs(run.get_metrics()["pi"][-1] - 3.13159) < 1e-3
    runs = list(exp.get_runs())
    assert [r.id for r in runs] == [run.id]
    child = run.child_run("c1")
    child.log("x", 1)
    child.complete()
    assert [c.id for c in run.get_children()] == [child.id]
    assert child.parent_id == run.id
    assert [r.id for r in exp.get_runs()] == [run.id]  # top-level only, as in Azure ML


def test_threads_logging_one_metric_get_one_step_each(workspace):
    """Eight threads logging the same two metrics (a data loader's thread, an evaluation pool) without steps: every
    point is kept and has a step of its own. The default step was read and then bumped, and two threads between
    the two got the same step: 5,003 duplicates in 80,000 points."""
    import threading

    from aml_magics import Experiment, Workspace

    run = Experiment(Workspace.current(), "threads").start_logging()
    start = threading.Barrier(8)

    def work(k: int) -> None:
        start.wait()
        for i in range(20_000):
            run.log(f"m{k % 2}", float(i))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    run.log("m0", -1.0, step=100_000)  # an explicit step, then the default goes on after it
    run.log("m0", -2.0)
    run.log_list("m0", [-3.0, -4.0])
    run.log("m0", -5.0)
    run.complete()
    series = {name: run.client.runs.metric_series(run.id, name)[0] for name in ("m0", "m1")}
    assert [len(series[n]) for n in ("m0", "m1")] == [80_005, 80_000]
    assert sorted(step for step, _, _ in series["m1"]) == list(range(80_000))
    assert sorted(step for step, _, _ in series["m0"]) == [*range(80_000), *range(100_000, 100_005)]
    assert [v for _, _, v in sorted(series["m0"])[-5:]] == [-1.0, -2.0, -3.0, -4.0, -5.0]


def test_runs_list_filters_and_query_magics(ip, client):
    a = ip.run_cell_magic("aml", "run -e alpha", "from aml_magics import Run\nRun.get_context().log('m', 1)\n")
    client.runs.wait(a.id, timeout=60)
    assert "· 1 experiment · 1 run ·" in repr(ip.run_line_magic("aml", ""))  # it said "1 experiments · 1 runs"
    b = ip.run_cell_magic("aml", "run -e beta", "raise SystemExit(3)\n")
    client.runs.wait(b.id, timeout=60)
    listed = ip.run_line_magic("aml", "runs -e alpha")
    assert [r.id for r in listed] == [a.id]
    failed = ip.run_line_magic("aml", "runs --status failed")
    assert [r.id for r in failed] == [b.id]
    assert client.runs.get(b.id).exit_code == 3
    past = ip.run_line_magic("aml", "runs --offset 5")  # past the end: "No runs." read as if none matched
    assert repr(past) == "No runs from offset 5 (runs that match: 2); give a smaller --offset", repr(past)
    assert repr(ip.run_line_magic("aml", "runs --status running")) == "No runs."
    assert "m=1" in repr(listed) and "<table" in listed._repr_html_()
    assert ip.run_line_magic("aml", "show last").run_id == b.id
    assert ip.run_line_magic("aml", f"metrics {a.id}").data == {"m": 1}
    exps = ip.run_line_magic("aml", "experiments")
    assert {e.name: e.run_count for e in exps} == {"alpha": 1, "beta": 1}
    assert "Experiment alpha · 1 run" in [repr(e) for e in exps]  # it said "1 runs"
    summary = repr(ip.run_line_magic("aml", ""))
    assert "· 2 experiments · 2 runs ·" in summary
    df = listed.to_pandas()
    assert list(df["run_id"]) == [a.id] and df["m"][0] == 1


def test_a_metric_column_no_listed_run_logged_is_noted(ip, client, capsys):
    """``%aml runs --metric acuracy`` (a typo) showed an empty column without a word."""
    run = ip.run_cell_magic("aml", "run --wait", "from aml_magics import Run\nRun.get_context().log('accuracy', 1)\n")
    capsys.readouterr()
    listed = ip.run_line_magic("aml", "runs --metric acuracy --metric accuracy --metric acuracy")
    assert [i.run_id for i in listed.infos] == [run.id]
    err = capsys.readouterr().err
    assert err.count("Note: no run listed logged metric 'acuracy' (did you mean 'accuracy'?); its column stays "
                     "empty") == 1, err
    assert "metric 'accuracy'" not in err


def test_logs_follow_streams_until_the_end(ip, client, capsys):
    run = ip.run_cell_magic("aml", "run", "import time\nfor i in range(3):\n    print('line', i, flush=True)\n    time.sleep(0.1)\n")
    ip.run_line_magic("aml", f"logs {run.id} --follow")
    out = capsys.readouterr().out
    assert "line 0" in out and "line 2" in out
    assert client.runs.get(run.id).status == "Completed"


def test_the_run_history_filters_by_tag_and_status(ip, client):
    made = {}
    for team, fail in (("vision", False), ("speech", False), ("vision", True)):
        code = "raise ValueError('boom')\n" if fail else "x = 1\n"
        made[(team, fail)] = ip.run_cell_magic("aml", f"run -e tagged --tag team={team} --tag 'note=<b>x</b>' --wait",
                                               code).id
    page = ip.run_line_magic("aml", "runs -e tagged --tag team=vision")
    assert [i.run_id for i in page.infos] == [made[("vision", True)], made[("vision", False)]]
    page = ip.run_line_magic("aml", "runs --tag team=vision --status Completed")
    assert [i.run_id for i in page.infos] == [made[("vision", False)]]
    page = ip.run_line_magic("aml", "runs --tag note --tag team=speech")  # a bare key: set to anything
    assert [i.run_id for i in page.infos] == [made[("speech", False)]]
    assert "<b>x</b>" not in page._repr_html_()  # a tag is text, never markup
    assert ip.run_line_magic("aml", "runs --tag team=nobody").infos == []


def test_the_logs_of_a_run_that_printed_megabytes(ip, client, capsys):
    """``%aml logs`` of a run that printed 30 MB prints its last 4 MB after a line saying what was left out (a
    notebook's output is no pager); ``--tail N`` reads the log's end, not the whole file; the API's ``get_logs()``
    still gives all of it."""
    run = ip.run_cell_magic(
        "aml", "run --wait",
        "import sys\nfor i in range(1_000_000):\n    sys.stdout.write(f'batch {i:>7} loss=0.123456789\\n')\n")
    assert client.runs.wait(run.id, timeout=120).status == "Completed"
    capsys.readouterr()
    ip.run_line_magic("aml", f"logs {run.id}")
    printed = capsys.readouterr().out
    assert printed.startswith("[aml-magics] ") and "MB of earlier output not shown here" in printed
    assert printed.endswith("batch  999999 loss=0.123456789\n\n") and 4_000_000 < len(printed) < 4_300_000
    ip.run_line_magic("aml", f"logs {run.id} --tail 3")
    assert capsys.readouterr().out == "".join(f"batch {i:>7} loss=0.123456789\n" for i in (999_997, 999_998,
                                                                                          999_999))
    assert client.runs.get_logs(run.id, tail=50_000).count("\n") == 49_999  # more than the first read held
    whole = client.runs.get_logs(run.id)
    assert len(whole) > 30_000_000 and whole.startswith("batch       0 ")


def test_a_parameter_the_notebook_does_not_set_is_noted_at_submission():
    """``-p alpah=2`` (a typo) ran the notebook with its default alpha; papermill's warning was only in the run's
    log."""
    from aml_magics.core.operations import _parameters_note

    def nb(*cells):
        return {"cells": [{"cell_type": "code", "metadata": {"tags": tags}, "source": src} for tags, src in cells]}

    params = nb((["parameters"], ["alpha: float = 1.0\n", "lr, (depth, n) = 0.1, (3, 4)\n", "steps += 1"]),
                ([], "beta = 2"))
    assert _parameters_note(params, {"alpha": 2, "lr": 0.2, "n": 5, "steps": 9}) is None
    note = _parameters_note(params, {"alpah": 2, "beta": 3})
    assert note == ("the notebook's parameters cell does not set alpah, beta (it sets alpha, depth, lr, n, steps); "
                    "check the spelling: -p sets them anyway — and cell 2 sets beta again after the parameters cell, "
                    "so the run uses the notebook's value")
    # no parameters cell: -p goes first, and a cell that sets it again made the run use the notebook's value, with a
    # note that said only "tag a cell"; a cell that reads it as it sets it (alpha = alpha * 2) does not count
    assert _parameters_note(nb(([], "import os\nalpha = 1\nif 1:\n    lr = 2")), {"alpha": 2, "lr": 3}) == (
        "the notebook has no cell tagged 'parameters', so the -p values are set in a new first cell — and cell 1 "
        "sets alpha again after it, so the run uses the notebook's value; tag the cell that sets the defaults "
        "'parameters' so that they come after it")
    assert "again" not in _parameters_note(nb(([], "alpha = alpha * 2")), {"alpha": 2})
    assert _parameters_note(nb((["parameters"], "lr = 1"), ([], "lr: float = 0.5")), {"lr": 2}) == (
        "cell 2 sets lr again after the parameters cell, so the run uses the notebook's value")
    assert _parameters_note(nb((["parameters"], "%matplotlib inline\nalpha = 1")), {"x": 1}) is None  # papermill's


def test_a_run_is_shown_by_its_name(ip, client):
    """``%%aml run --name baseline`` then ``%aml show baseline`` said "run 'baseline' not found": the name a user
    gave was no way to reach the run. Now it is the newest top-level run of that name; an id or a unique part of one
    still comes first."""
    from IPython.core.error import UsageError

    first = ip.run_cell_magic("aml", "run --name baseline --wait", "x = 1\n")
    second = ip.run_cell_magic("aml", "run --name baseline --wait", "x = 2\n")
    other = ip.run_cell_magic("aml", "run --name tuned --wait", "x = 3\n")
    assert ip.run_line_magic("aml", "show baseline --static").info.run_id == second.id
    assert client.runs.get("tuned").run_id == other.id
    assert client.runs.resolve_id(first.id) == first.id
    assert ip.run_line_magic("aml", "metrics baseline") is not None
    with pytest.raises(UsageError, match="run 'basline' not found"):
        ip.run_line_magic("aml", "show basline")
