"""A full disk and a read-only workspace: clear errors, no corrupt record, recovery when space returns.

The full disk is a per-process file-size limit (RLIMIT_FSIZE: writes past it fail as on a full disk);
the read-only workspace is a read-only bind mount inside a user+mount namespace (`unshare -r -m`), so
it is truly read-only even for root."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

FULL = textwrap.dedent("""
    import json, os, resource, signal, sys
    from pathlib import Path
    ws, big = Path(sys.argv[1]), Path(sys.argv[2])
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # a write past the limit fails with EFBIG instead
    from aml_magics.core.client import Client
    from aml_magics import Workspace, Experiment
    client = Client(ws)
    run = Experiment(Workspace.current(), "full").start_logging()
    for i in range(1000):
        run.log("m", float(i))
    run.flush()
    limit = max(p.stat().st_size for p in ws.glob("aml.db*")) + 65536
    out = {}
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))   # the disk is now full
    run.log_list("m", [float(i) for i in range(1000, 300000)])
    try:
        run.flush()
        out["flush"] = "ok"
    except Exception as e:
        out["flush"] = [type(e).__name__, str(e)]
    try:
        client.models.register("big", big)
        out["register"] = "ok"
    except Exception as e:
        out["register"] = [type(e).__name__, str(e)]
    out["staging_left"] = sorted(os.listdir(ws / "models" / ".staging")) if (ws / "models" / ".staging").exists() else []
    out["versions_while_full"] = [m.version for m in client.models.list()]
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))  # space returns
    run.flush()
    run.complete()
    out["points"] = [v for _, _, v in client.runs.metric_series(run.id, "m")[0]]
    out["register_after"] = client.models.register("big", big).version
    out["integrity"] = client.backend.store.integrity_check()
    print("RESULT " + json.dumps(out))
""")


def _result_of(code: str, tmp_path, workspace, arg) -> tuple[dict, subprocess.CompletedProcess]:
    """Run ``code`` as a script with the workspace and ``arg``; what it printed after ``RESULT ``."""
    script = tmp_path / "script.py"
    script.write_text(code)
    proc = subprocess.run([sys.executable, str(script), str(workspace), str(arg)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "AML_MAGICS_WORKSPACE": str(workspace)})
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert line, proc.stdout[-2000:] + proc.stderr[-2000:]
    return json.loads(line[7:]), proc


def test_disk_full_fails_clearly_and_recovers(workspace, tmp_path):
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(1_000_000))
    out, proc = _result_of(FULL, tmp_path, workspace, big)
    kind, message = out["flush"]
    assert kind == "StorageError" and "cannot write to the workspace" in message and "Traceback" not in message
    kind, message = out["register"]
    assert kind == "StorageError" and "nothing was registered" in message
    assert out["staging_left"] == [] and out["versions_while_full"] == []
    assert out["points"] == [float(i) for i in range(300000)], "every point kept in memory was written afterwards"
    assert out["register_after"] == 1 and out["integrity"] == ["ok"]
    assert "kept in memory and retried" in proc.stderr and "recovered; nothing was lost" in proc.stderr


READ_ONLY = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from aml_magics.core.client import Client
    from aml_magics import Workspace, Experiment
    ws, model = Path(sys.argv[1]), Path(sys.argv[2])
    client = Client(ws)
    out = {"runs": [(i.run_id, i.status) for i in client.runs.list(limit=None).infos],
           "points": len(client.runs.metric_series(client.runs.list(limit=None).infos[0].run_id, "m")[0])}
    for name, action in (("start_logging", lambda: Experiment(Workspace.current(), "ro").start_logging()),
                         ("register", lambda: client.models.register("ro-model", model))):
        try:
            action()
            out[name] = "ok"
        except Exception as e:
            out[name] = [type(e).__name__, str(e)]
    print("RESULT " + json.dumps(out))
""")


def _read_only_wrapper(ws) -> list[str] | None:
    """A command prefix that runs a process with ``ws`` mounted read-only, or None when impossible here."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return None
    probe = subprocess.run([unshare, "-r", "-m", "sh", "-c", f"mount --bind {ws} {ws} && mount -o remount,bind,ro {ws}"],
                           capture_output=True)
    if probe.returncode != 0:
        return None
    return [unshare, "-r", "-m", "sh", "-c", f'mount --bind {ws} {ws} && mount -o remount,bind,ro {ws} && exec "$0" "$@"']


def test_read_only_workspace_reads_but_refuses_writes_clearly(client, workspace, tmp_path):
    from aml_magics import Experiment, Workspace

    run = Experiment(Workspace.current(), "before").start_logging()
    run.log_list("m", [1.0, 2.0, 3.0])
    run.complete()
    before = client.backend.store.query_one("SELECT COUNT(*) FROM runs")[0]
    (tmp_path / "m.bin").write_bytes(b"model")
    script = tmp_path / "ro.py"
    script.write_text(READ_ONLY)
    wrapper = _read_only_wrapper(workspace)
    if wrapper is None:
        pytest.skip("no way to mount the workspace read-only here (unshare -r -m is not permitted)")
    proc = subprocess.run([*wrapper, sys.executable, str(script), str(workspace), str(tmp_path / "m.bin")],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "AML_MAGICS_WORKSPACE": str(workspace)})
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert line, proc.stdout[-2000:] + proc.stderr[-2000:]
    out = json.loads(line[7:])
    assert out["runs"] == [[run.id, "Completed"]] and out["points"] == 3  # reading works
    for name in ("start_logging", "register"):
        kind, message = out[name]
        assert kind == "StorageError" and "read-only" in message, (name, message)
    assert client.backend.store.query_one("SELECT COUNT(*) FROM runs")[0] == before
    assert client.backend.store.integrity_check() == ["ok"]
    assert client.backend.store.query_one("SELECT COUNT(*) FROM models")[0] == 0


TRAINING_LOOP_ON_A_FULL_DISK = textwrap.dedent("""
    import json, os, resource, signal, sys, time
    from pathlib import Path
    ws, src = Path(sys.argv[1]), Path(sys.argv[2])
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    from aml_magics.core.client import Client
    from aml_magics import Workspace, Experiment
    client = Client(ws)
    run = Experiment(Workspace.current(), "loop").start_logging()
    run.log("warm", 1.0)
    run.flush()
    limit = max(p.stat().st_size for p in ws.glob("aml.db*")) + 8192
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    out, raised = {}, []
    for epoch in range(200):                       # a training loop while the disk is full
        try:
            run.log("loss", 1.0 / (epoch + 1))
            run.log(f"new_metric_{epoch % 3}", float(epoch))   # names never logged before
            run.log_list("batch", [float(epoch)] * 50)
            run.tag("epoch", epoch)
            run.log_param(f"p{epoch % 2}", epoch)
            run.log_row("rows", epoch=epoch)
        except Exception as exc:
            raised.append(f"{type(exc).__name__}: {exc}")
    time.sleep(0.6)
    out["raised_in_loop"] = raised
    out["thread_alive"] = run.tracker._thread.is_alive()
    out["pending_while_full"] = run.tracker.pending()
    try:
        run.upload_file("outputs/report.bin", src)
        out["upload"] = "ok"
    except Exception as exc:
        out["upload"] = [type(exc).__name__, str(exc)]
    out["upload_left"] = sorted(p.name for p in (ws / "runs" / run.id / "snapshot" / "outputs").glob("*"))
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))   # space returns
    deadline = time.time() + 30
    while run.tracker.pending() and time.time() < deadline:     # the flush thread catches up by itself
        time.sleep(0.1)
    out["pending_after"] = run.tracker.pending()
    run.complete()
    m = client.runs.get_metrics(run.id)
    out["loss"] = len(m["loss"]); out["batch"] = len(m["batch"]); out["rows"] = len(m["rows"]["epoch"])
    out["new"] = sorted(k for k in m if k.startswith("new_metric"))
    out["new_points"] = sum(len(m[k]) for k in out["new"])
    info = client.runs.get(run.id)
    out["tags"] = info.tags; out["params"] = info.params; out["status"] = info.status
    out["integrity"] = client.backend.store.integrity_check()
    print("RESULT " + json.dumps(out))
""")


def test_a_training_loop_never_stops_for_a_full_disk(workspace, tmp_path):
    """On a full disk run.log (of new names too), log_list, log_row, tag and log_param never raise: they wait in
    memory and are all written, in order, by the flush thread when space returns; upload_file raises one
    StorageError and leaves nothing half-written."""
    src = tmp_path / "report.bin"
    src.write_bytes(os.urandom(16_000_000))  # larger than any file the limit allows
    script = tmp_path / "loop.py"
    script.write_text(TRAINING_LOOP_ON_A_FULL_DISK)
    proc = subprocess.run([sys.executable, str(script), str(workspace), str(src)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "AML_MAGICS_WORKSPACE": str(workspace)})
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert line, proc.stdout[-2000:] + proc.stderr[-3000:]
    out = json.loads(line[7:])
    assert out["raised_in_loop"] == [] and out["thread_alive"] and out["pending_while_full"] > 0
    kind, message = out["upload"]
    assert kind == "StorageError" and "disk is full" in message and "nothing was kept" in message
    assert out["upload_left"] == []
    assert out["pending_after"] == 0
    assert out["loss"] == 200 and out["batch"] == 200 * 50 and out["rows"] == 200
    assert out["new"] == ["new_metric_0", "new_metric_1", "new_metric_2"] and out["new_points"] == 200
    assert out["tags"]["epoch"] == "199" and out["params"] == {"p0": "198", "p1": "199"}
    assert out["status"] == "Completed" and out["integrity"] == ["ok"]
    assert "kept in memory and retried" in proc.stderr and "recovered; nothing was lost" in proc.stderr
    assert "Traceback" not in proc.stderr


SUBMIT_FULL = textwrap.dedent("""
    import json, os, resource, signal, sys
    from pathlib import Path
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    ws, project = Path(sys.argv[1]), Path(sys.argv[2])
    os.chdir(project)
    from aml_magics.core.client import Client
    from aml_magics.core.types import RunSubmission
    client = Client(ws)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, resource.RLIM_INFINITY))   # the disk is now full
    out = {}
    try:
        client.runs.submit(RunSubmission(kind="script", source_dir=project, entry="train.py", experiment="full"))
        out["submit"] = "ok"
    except Exception as e:
        out["submit"] = [type(e).__name__, str(e)]
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    info = client.runs.list(limit=None).infos[0]
    out["run"] = [info.status, info.error]
    out["left"] = sum(f.stat().st_size for f in (ws / "runs" / info.run_id).rglob("*") if f.is_file())
    print("RESULT " + json.dumps(out))
""")


def test_a_submission_on_a_full_disk_is_one_line_and_frees_what_it_copied(workspace, tmp_path):
    """Preparing a run's snapshot on a full disk said "could not prepare the run's snapshot: [Errno 28] No space
    left on device: '/…/big.bin' -> '/…/snapshot/big.bin'" and left the half-copied files taking space."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "train.py").write_text("print('hi')\n")
    (project / "big.bin").write_bytes(os.urandom(3_000_000))
    out, _ = _result_of(SUBMIT_FULL, tmp_path, workspace, project)
    assert out["submit"] == ["StorageError", "could not prepare the run: the disk is full; it did not start (recorded "
                                             "as Failed) — free space or make the workspace writable, then submit it "
                                             "again"]
    assert out["run"] == ["Failed", "could not prepare the run: the disk is full"]
    assert out["left"] < 100_000, "the half-copied snapshot was left on the full disk"


UPLOAD_FULL = textwrap.dedent("""
    import json, os, resource, signal, sys
    from pathlib import Path
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    ws, data = Path(sys.argv[1]), Path(sys.argv[2])
    from aml_magics.core.client import Client
    client = Client(ws)
    client.datastores.upload(data / "small.csv", target="kept")   # a folder that was there before
    resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, resource.RLIM_INFINITY))   # the disk is now full
    out = {}
    for target in ("new/deep/er", "kept/new"):
        try:
            client.datastores.upload(data, target=target)
            out[target] = "ok"
        except Exception as e:
            out[target] = [type(e).__name__, str(e)]
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    out["ls"] = sorted(e.path for e in client.datastores.ls(""))
    out["kept"] = sorted(e.path for e in client.datastores.ls("kept"))
    print("RESULT " + json.dumps(out))
""")


def test_an_upload_on_a_full_disk_leaves_no_empty_folders(workspace, tmp_path):
    """A folder upload that failed on a full disk left its (empty) target folders in the datastore: `datastore ls`
    showed new/ as if something had been uploaded there."""
    data = tmp_path / "data"
    (data / "a").mkdir(parents=True)
    (data / "small.csv").write_text("x\n1\n")
    (data / "a" / "big.bin").write_bytes(os.urandom(3_000_000))
    out, _ = _result_of(UPLOAD_FULL, tmp_path, workspace, data)
    for target in ("new/deep/er", "kept/new"):
        kind, message = out[target]
        assert kind == "StorageError" and "the disk is full" in message, out
    assert out["ls"] == ["kept/"], out  # no new/ (nor new/deep/, new/deep/er/a/) left behind
    assert out["kept"] == ["kept/small.csv"], out  # the folder that was there stays, with what it held


DEPLOY_FULL = textwrap.dedent("""
    import json, os, resource, signal, sys
    from pathlib import Path
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    ws, src = Path(sys.argv[1]), Path(sys.argv[2])
    from aml_magics.core.client import Client
    client = Client(ws)
    client.models.register("m", src / "model.bin")
    client.deployments.create("svc", "m", score=src / "a.py")
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, resource.RLIM_INFINITY))   # the disk is now full
    out = {}
    for name, kwargs in (("new", {}), ("svc", {"update": True})):
        try:
            client.deployments.create(name, "m", score=src / "b.py", **kwargs)
            out[name] = "ok"
        except Exception as e:
            out[name] = [type(e).__name__, str(e)]
    keys = client.deployments.get_keys("svc")
    try:
        client.deployments.regenerate_key("svc", "primary")
        out["key"] = "ok"
    except Exception as e:
        out["key"] = [type(e).__name__, str(e)]
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    out["keys_kept"] = client.deployments.get_keys("svc") == keys
    out["left"] = sorted(p.name for p in (ws / "deployments" / "svc").iterdir() if p.name.endswith(".tmp"))
    service = client.deployments.get("svc")
    out["answer"] = service.run("{}")
    out["services"] = [d.name for d in client.deployments.list()]
    out["folders"] = sorted(p.name for p in (ws / "deployments").iterdir() if not p.name.startswith("."))
    out["score"] = (ws / "deployments" / "svc" / "score.py").read_text()
    client.deployments.delete("svc")
    print("RESULT " + json.dumps(out))
""")


def test_a_deploy_on_a_full_disk_is_one_line_and_the_service_stays_as_it_was(workspace, tmp_path):
    """``OSError: [Errno 27] File too large`` from writing the service's files or a new key, a traceback; an update
    now puts the files it replaced back, a new service leaves no folder, and no temporary file is left."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "model.bin").write_bytes(b"x")
    score = "def init():\n    pass\n\ndef run(raw):\n    return {!r}\n"
    (src / "a.py").write_text(score.format("A"))
    (src / "b.py").write_text(score.format("B"))
    out, _ = _result_of(DEPLOY_FULL, tmp_path, workspace, src)
    for name in ("new", "svc"):
        kind, message = out[name]
        assert kind == "StorageError" and message.startswith(f"cannot write the files of service {name}: the disk is "
                                                             "full; nothing was deployed or changed"), out
    kind, message = out["key"]
    assert kind == "StorageError" and "both keys are unchanged" in message and out["keys_kept"], out
    assert out["answer"] == "A" and out["score"] == score.format("A") and out["left"] == [], out
    assert out["services"] == ["svc"] and out["folders"] == ["svc"], out


def _on_a_small_disk(folder, size: str) -> list[str]:
    """A command prefix that runs a process with a real disk of ``size`` (a tmpfs) mounted at ``folder``, in a user
    and mount namespace: every process it starts sees the same full disk (a file-size limit is one process's)."""
    unshare = shutil.which("unshare")
    folder.mkdir(exist_ok=True)
    mount = f"mount -t tmpfs -o size={size} tmpfs {folder}"
    if unshare is None or subprocess.run([unshare, "-r", "-m", "sh", "-c", mount], capture_output=True).returncode:
        pytest.skip("no way to mount a small disk here (unshare -r -m is not permitted)")
    return [unshare, "-r", "-m", "sh", "-c", f'{mount} && exec "$0" "$@"']


FILL_THE_DISK = textwrap.dedent("""
    def fill_the_disk(filler):
        try:
            with open(filler, "wb") as f:
                while True:
                    f.write(b"x" * 1_000_000)
                    f.flush()
        except OSError:
            return filler
""")


def _result_on_a_small_disk(tmp_path, code: str, size: str, timeout: float = 300) -> dict:
    """Run ``code`` (with ``fill_the_disk``) as a script on a real disk of ``size`` with a workspace there: what it
    printed after ``RESULT ``."""
    disk = tmp_path / "disk"
    script = tmp_path / "script.py"
    script.write_text(FILL_THE_DISK + code)
    proc = subprocess.run([*_on_a_small_disk(disk, size), sys.executable, str(script), str(disk / "ws")],
                          capture_output=True, text=True, timeout=timeout)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    assert line, proc.stdout[-2000:] + proc.stderr[-2000:]
    return json.loads(line[7:])


def test_doctor_says_when_the_workspace_s_disk_is_nearly_full(client, workspace, tmp_path):
    """``doctor`` on a workspace whose disk had a few MB left said "healthy"; every run, logging and registration
    then failed. A real small disk: an 8 MB tmpfs mounted in a user and mount namespace."""
    report = client.doctor()
    assert ("free disk space", "ok") in [(c, o) for c, o, _ in report.checks], repr(report)
    small = tmp_path / "small"
    proc = subprocess.run([*_on_a_small_disk(small, "8m"), sys.executable, "-m", "aml_magics", "doctor",
                           "--workspace", str(small / "ws")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("free disk space"))
    assert line.split()[3:5] == ["problem", "only"] and "MB free on the workspace's disk" in line, proc.stdout


RUN_ON_A_FULL_DISK = textwrap.dedent("""
    import json, os, sys
    from pathlib import Path
    ws = Path(sys.argv[1])
    from aml_magics.core.client import Client
    from aml_magics.core.errors import AmlError
    from aml_magics.core.types import RunSubmission
    client = Client(ws)
    src = ws.parent / "src"
    src.mkdir()
    (src / "fill.py").write_text(
        "from aml_magics import Run\\n"
        "run = Run.get_context()\\n"
        "run.log_list('i', list(range(100)))\\n"
        "run.flush()\\n"
        "try:\\n"
        "    with open('outputs/big.bin', 'wb') as f:  # the disk is full after this\\n"
        "        while True:\\n"
        "            f.write(b'x' * 1_000_000)\\n"
        "except OSError:\\n"
        "    pass\\n")
    (src / "outputs").mkdir()
    out = {}
    run = client.runs.submit(RunSubmission(kind="script", experiment="full", source_dir=src, entry="fill.py"))
    try:
        out["while_full"] = client.runs.wait(run.id, timeout=5).status
    except AmlError as e:
        out["while_full"] = str(e)
    for big in ws.rglob("big.bin"):  # space returns
        big.unlink()
    info = client.runs.wait(run.id, timeout=60)
    out["after"] = [info.status, info.error]
    out["points"] = client.runs.get_metrics(run.id)["i"]
    print("RESULT " + json.dumps(out))
""")


def test_a_run_that_ends_on_a_full_disk_is_recorded_as_it_ended_once_space_returns(tmp_path):
    """The run's host died of the disk's error as it recorded how the run ended: the run stayed Running, and then was
    marked Failed, 'its run host ended without finishing the run', though its code had completed. On a real full disk
    (a 20 MB tmpfs in a user and mount namespace) the host now waits for space and records Completed."""
    out = _result_on_a_small_disk(tmp_path, RUN_ON_A_FULL_DISK, "20m", timeout=180)
    assert out["while_full"].endswith("is still Running after 5 s"), out  # its end waits for space to be recorded
    assert out["after"] == ["Completed", None] and out["points"] == list(range(100)), out


AUTOML_ON_A_FULL_DISK = textwrap.dedent("""
    import json, os, pickle, sys, time
    from pathlib import Path
    ws = Path(sys.argv[1])
    os.environ["AML_MAGICS_WORKSPACE"] = str(ws)
    src = ws.parent / "src"
    src.mkdir()
    os.chdir(src)
    from sklearn.datasets import load_breast_cancer
    frame = load_breast_cancer(as_frame=True).frame
    frame.to_csv("bc.csv", index=False)
    from IPython.core.interactiveshell import InteractiveShell
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "aml_magics")
    from aml_magics.core.client import Client
    client = Client(ws)
    run = ip.run_line_magic("aml", "automl --task classification --data bc.csv --label target --budget 12 -e full")
    started = time.monotonic()
    while len(client.runs.children(run.id).infos) < 2 and time.monotonic() - started < 60:
        time.sleep(0.2)
    filler = fill_the_disk(ws.parent / "filler.bin")  # the disk is full from here
    time.sleep(max(0.0, started + 30 - time.monotonic()))  # the budget (12 s) is over: the model waits to be saved
    filler.unlink()
    info = client.runs.wait(run.id, timeout=120)
    out = {"status": info.status, "error": info.error, "log": client.runs.get_logs(run.id)}
    if info.status == "Completed":
        with open(client.runs.local_file(run.id, "outputs/model.pkl"), "rb") as f:
            out["predicted"] = len(pickle.load(f).predict(frame.drop(columns=["target"]).head(5)))
    out["recorded"] = sorted(int(c.tags["automl.trial"]) for c in client.runs.children(run.id).infos
                             if "automl.trial" in c.tags)
    searched = 0  # the trials FLAML logged (a line cut short by the full disk is not one)
    for line in client.runs.local_file(run.id, "outputs/flaml_trials.jsonl").read_bytes().splitlines():
        try:
            searched += "learner" in json.loads(line)
        except ValueError:
            pass
    out["searched"] = searched
    print("RESULT " + json.dumps(out))
""")


def test_automl_on_a_disk_that_fills_keeps_its_trials_and_saves_its_model_once_space_returns(tmp_path):
    """FLAML's trial log raised on the full disk and the whole AutoML run failed, its trials' work lost. Now the
    search stops with the trials so far, each of them is recorded once space returns (those the workspace refused
    were dropped: "could not record a trial"), and the final model waits for space to be saved (a 60 MB tmpfs,
    filled during the search and freed after the budget)."""
    out = _result_on_a_small_disk(tmp_path, AUTOML_ON_A_FULL_DISK, "60m")
    assert out["status"] == "Completed", (out["error"], out["log"][-3000:])
    assert out["predicted"] == 5
    log = out["log"]
    assert "The disk filled up during the search" in log and "trials so far" in log, log[-3000:]
    assert "could not record a trial" not in log, log[-3000:]
    assert out["recorded"] == list(range(1, out["searched"] + 1)), out["recorded"]  # every trial FLAML logged
    # what waited for space: the trials the workspace refused, or the final model (or both)
    assert "wait to be recorded before the final choice" in log or \
        "The disk is full: the final model is saved as soon as there is space" in log, log[-3000:]
    assert "Space returned: " in log or "trials wait in memory" in log, log[-3000:]


BATCH_ON_A_FULL_DISK = textwrap.dedent("""
    import json, os, sys, time
    from pathlib import Path
    ws = Path(sys.argv[1])
    src = ws.parent / "src"
    src.mkdir()
    os.chdir(src)
    import joblib
    import numpy as np
    import pandas as pd
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    X, y = load_digits(return_X_y=True)
    joblib.dump(LogisticRegression(max_iter=200).fit(X, y), "m.pkl")
    pd.DataFrame(np.repeat(X, 10, axis=0)).to_csv("rows.csv", index=False)
    (src / "slow.py").write_text(
        "import os, time, joblib\\n"
        "def init():\\n"
        "    global model\\n"
        "    model = joblib.load(os.path.join(os.environ['AZUREML_MODEL_DIR'], 'm.pkl'))\\n"
        "def run(batch):\\n"
        "    time.sleep(0.2)\\n"
        "    return model.predict(batch.values).tolist()\\n")
    from aml_magics.core.client import Client
    client = Client(ws)
    client.models.register("digits", "m.pkl")
    run = client.batch.submit("digits", "rows.csv", score="slow.py", mini_batch=1000, experiment="full")
    started = time.monotonic()
    while time.monotonic() - started < 120:
        done = client.runs.get_metrics(run.id).get("mini_batches_done")
        if done and (done[-1] if isinstance(done, list) else done) >= 2:
            break
        time.sleep(0.1)
    filler = fill_the_disk(ws.parent / "filler.bin")  # the disk is full from here
    time.sleep(5)
    filler.unlink()
    info = client.runs.wait(run.id, timeout=180)
    out = {"status": info.status, "error": info.error, "log": client.runs.get_logs(run.id), "rows": None}
    if info.status == "Completed":
        out["rows"] = len(pd.read_csv(client.runs.local_file(run.id, "outputs/predictions.csv")))
    print("RESULT " + json.dumps(out))
""")


def test_a_batch_run_on_a_disk_that_fills_waits_for_space_and_scores_every_row(tmp_path):
    """A mini-batch that could not keep its result on the full disk failed its tries at once, the list of failures
    could not be written, and the run failed with a traceback (its scored parts kept only for a resume). Now such a
    mini-batch is no try of its own: it waits for space and is scored again (a 60 MB tmpfs, full for 5 s)."""
    out = _result_on_a_small_disk(tmp_path, BATCH_ON_A_FULL_DISK, "60m")
    log = out["log"]
    assert out["status"] == "Completed", (out["error"], log[-3000:])
    assert out["rows"] == 17970, log[-3000:]
    assert "waits for space and is scored again" in log and "Space returned: scoring goes on." in log, log[-3000:]
    assert ", 0 failed;" in log and "Traceback" not in log, log[-3000:]
