"""The model registry: versions, lineage both ways, framework detection, atomic registration."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest
from IPython.core.error import UsageError

from aml_magics.core.errors import InvalidInput, NotFound
from tests.conftest import wait_until

TRAIN = textwrap.dedent(
    """
    import joblib
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    X, y = load_digits(return_X_y=True)
    joblib.dump(LogisticRegression(max_iter=200).fit(X[:300], y[:300]), "outputs/model.pkl")
    import os
    os.makedirs("outputs/folder/sub", exist_ok=True)
    open("outputs/folder/a.txt", "w").write("a")
    open("outputs/folder/sub/b.txt", "w").write("b")
    """
)


@pytest.fixture
def trained(ip, client):
    run = ip.run_cell_magic("aml", "run -e registry --wait", TRAIN)
    assert client.runs.get(run.id).status == "Completed", run.get_logs()
    return run


def test_register_versions_lineage_and_framework(ip, client, trained, tmp_path):
    from aml_magics import Model, Workspace

    m1 = trained.register_model(model_name="sklearn_mnist", model_path="outputs/model.pkl", tags={"data": "digits"})
    m2 = ip.run_line_magic("aml", f"register {trained.id} outputs/model.pkl --name sklearn_mnist --tag data=digits2")
    assert (m1.version, m2.version) == (1, 2)
    assert m1.framework == "scikit-learn" and m1.run_id == trained.id
    assert [m.id for m in trained.get_models()] == ["sklearn_mnist:2", "sklearn_mnist:1"]  # the run shows its models
    ws = Workspace.current()
    latest = Model(ws, "sklearn_mnist")
    assert latest.version == 2 and latest.tags == {"data": "digits2"}
    assert [m.version for m in Model.list(ws, name="sklearn_mnist", tags={"data": "digits"})] == [1]
    latest.add_tags({"stage": "prod"})
    assert Model(ws, "sklearn_mnist", 2).tags == {"data": "digits2", "stage": "prod"}
    # add_tags checked nothing: a list raised AttributeError from the store, a lone surrogate UnicodeEncodeError
    for bad, message in ((["stage"], "tags must be a dict"), ({"a": "\ud800"}, "lone surrogate"),
                         ({"": "x"}, "tag name is empty"), ({"a\x00": "x"}, "NUL")):
        with pytest.raises(InvalidInput, match=message):
            latest.add_tags(bad)
    with pytest.raises(InvalidInput, match="the version of sklearn_mnist must be an integer"):
        client.models.add_tags("sklearn_mnist", 1.5, {"a": "b"})
    assert Model(ws, "sklearn_mnist", 2).tags == {"data": "digits2", "stage": "prod"}
    path = Model.get_model_path("sklearn_mnist", 1)
    assert path.endswith("models/sklearn_mnist/1/model.pkl") and os.path.isfile(path)
    target = latest.download(str(tmp_path / "dl"))
    import joblib

    assert joblib.load(target).predict([[0.0] * 64]).shape == (1,)
    folder = trained.register_model("folder_model", "outputs/folder")
    assert sorted(os.listdir(os.path.join(folder.path, "sub"))) == ["b.txt"]
    listing = ip.run_line_magic("aml", "models")
    assert {(m.name, m.version) for m in listing} == {("sklearn_mnist", 1), ("sklearn_mnist", 2), ("folder_model", 1)}
    assert "scikit-learn" in repr(listing)


def test_register_local_file_and_bad_input(ip, client, trained, tmp_path):
    (tmp_path / "m.onnx").write_bytes(b"onnx-bytes")
    m = ip.run_line_magic("aml", f"register {tmp_path / 'm.onnx'} --local --name onnx_model")
    assert m.framework == "onnx" and m.version == 1
    with pytest.raises(UsageError, match="did you mean 'outputs/model.pkl'"):
        ip.run_line_magic("aml", f"register {trained.id} outputs/model.pk --name x")
    with pytest.raises(UsageError, match="relative path inside the run"):
        ip.run_line_magic("aml", f"register {trained.id} ../../aml.db --name x")
    # a path nowhere near a saved file: "not found" said nothing of what the run did save, or how to save a model
    with pytest.raises(UsageError, match=r"'outputs/net.onnx' not found; the run saved outputs/folder/a\.txt, "
                                         r"outputs/folder/sub/b\.txt, outputs/model\.pkl$"):
        ip.run_line_magic("aml", f"register {trained.id} outputs/net.onnx --name x")
    bare = ip.run_cell_magic("aml", "run -e registry --wait", "x = 1\n")
    with pytest.raises(UsageError, match=r"the run saved no file under outputs/; save the model there in the run "
                                         r"\(joblib.dump\(model, 'outputs/model.pkl'\)\), or register a file"):
        ip.run_line_magic("aml", f"register {bare.id} --name x")
    with pytest.raises(UsageError, match="model name"):
        ip.run_line_magic("aml", f"register {trained.id} outputs/model.pkl --name 'bad name'")
    assert [m.id for m in ip.run_line_magic("aml", "models onnx_model")] == ["onnx_model:1"]
    # a version, a typo and tags: that version (it was "No models match"), which names there are, tags as k=v
    ip.run_line_magic("aml", f"register {tmp_path / 'm.onnx'} --local --name onnx_model --tag stage=dev")
    assert [m.id for m in ip.run_line_magic("aml", "models onnx_model:1")] == ["onnx_model:1"]
    with pytest.raises(UsageError, match="^model 'onnx_modle' not found; did you mean 'onnx_model'"):
        ip.run_line_magic("aml", "models onnx_modle")
    with pytest.raises(UsageError, match="^model onnx_model has no version 9; it has 1, 2$"):
        ip.run_line_magic("aml", "models onnx_model:9")
    shown = repr(ip.run_line_magic("aml", "models onnx_model")).splitlines()
    # not {'stage': 'dev'} and {}
    assert shown[3].rstrip().endswith("stage=dev") and shown[4].rstrip().endswith("onnx"), shown
    assert repr(ip.run_line_magic("aml", "models --tag stage=prod")) == \
        "No models match (%aml models lists every one)."  # not "No models registered yet."
    with pytest.raises(NotFound, match="has no version 7; it has 1"):
        client.models.get("onnx_model:7")
    with pytest.raises(NotFound, match="did you mean 'onnx_model'"):
        client.models.get("onnx_modle")
    with pytest.raises(InvalidInput, match="whole number"):
        client.models.get("onnx_model:latest")
    assert [m.id for m in client.models.list()] == ["onnx_model:2", "onnx_model:1"]


def test_symlink_escape_is_not_registered(client, tmp_path, capsys):
    secret = tmp_path / "secret.txt"
    secret.write_text("do not copy")
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "weights.bin").write_bytes(b"w")
    os.symlink(secret, model_dir / "leak.txt")
    os.mkfifo(model_dir / "pipe")
    m = client.models.register("linked", model_dir)
    assert sorted(os.listdir(m.path)) == ["weights.bin"]
    # left out silently before: a Hugging Face snapshot (its files links to the cache's blobs) lost its weights
    assert ("Note: not registered from model/: leak.txt (a link out of the folder), pipe (not a regular file). To "
            "include a linked file, copy it in (cp -L).") in capsys.readouterr().err


def test_registration_killed_mid_copy_leaves_no_half_version(client, workspace, tmp_path):
    big = tmp_path / "big"
    big.mkdir()
    for i in range(300):
        (big / f"part{i:03d}.bin").write_bytes(os.urandom(256 * 1024))
    code = (f"from aml_magics.core.client import Client\n"
            f"Client({str(workspace)!r}).models.register('big', {str(big)!r})\n")
    proc = subprocess.Popen([sys.executable, "-c", code])
    staging = workspace / "models" / ".staging"
    wait_until(lambda: staging.exists() and any(p.rglob("*.bin") for p in staging.iterdir()), timeout=60,
               interval=0.005, what="the copy to start")
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert client.models.list(name="big") == []
    assert not (workspace / "models" / "big").exists() or not any((workspace / "models" / "big").iterdir())
    m = client.models.register("big", big)  # a new registration is whole and gets version 1
    assert m.version == 1 and len(os.listdir(m.path)) == 300


FAILS_AFTER_ITS_RENAME = textwrap.dedent("""
    import json, os, resource, signal, sys
    from pathlib import Path
    from aml_magics.core.client import Client
    ws, empty = Path(sys.argv[1]), Path(sys.argv[2])
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # a write past the limit fails with EFBIG (a full disk)
    client = Client(ws)
    client.models.list()  # the database is made before the disk is full
    resource.setrlimit(resource.RLIMIT_FSIZE, (1, resource.RLIM_INFINITY))
    try:  # an empty file: its copy and rename need no space; the record's write does not fit
        client.models.register("m", empty)
        out = {"register": "ok"}
    except Exception as e:
        out = {"register": type(e).__name__}
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    out["left"] = sorted(os.listdir(ws / "models" / "m")) if (ws / "models" / "m").exists() else []
    out["after"] = client.models.register("m", empty).version
    print("RESULT " + json.dumps(out))
""")


def test_files_of_a_version_whose_record_was_not_written_block_no_later_registration(client, workspace, tmp_path):
    """The version folder is renamed into place inside the record's transaction; a record that then failed (a full
    disk, a name SQLite refused) or a process killed before its commit left ``models/NAME/N`` without a record, and
    every later registration of NAME failed on it ("Directory not empty")."""
    (tmp_path / "empty.bin").write_bytes(b"")
    script = tmp_path / "fails.py"
    script.write_text(FAILS_AFTER_ITS_RENAME)
    proc = subprocess.run([sys.executable, str(script), str(workspace), str(tmp_path / "empty.bin")],
                          capture_output=True, text=True, timeout=120)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    assert line is not None, proc.stderr[-3000:]
    import json

    out = json.loads(line[len("RESULT "):])
    assert out["register"] != "ok" and out["left"] == [] and out["after"] == 1, out
    # what a registration killed between its rename and its commit leaves: a folder for the next version
    (workspace / "models" / "m" / "2").mkdir()
    (workspace / "models" / "m" / "2" / "stale.bin").write_bytes(b"old")
    (tmp_path / "new.bin").write_bytes(b"new")
    model = client.models.register("m", tmp_path / "new.bin")
    assert model.version == 2 and sorted(os.listdir(workspace / "models" / "m" / "2")) == ["new.bin"]
    assert not list((workspace / "models" / ".staging").iterdir())


def test_a_model_file_named_in_another_encoding_is_refused_before_anything_is_copied(client, workspace, tmp_path):
    """Its name (a byte of Latin-1, say) cannot be stored: the record's write raised UnicodeEncodeError after the
    files were in place."""
    folder = os.fsencode(tmp_path) + b"/caf\xe9"
    os.mkdir(folder)
    with open(folder + b"/model.bin", "wb") as f:
        f.write(b"x")
    with pytest.raises(InvalidInput, match="the name is not UTF-8 text .*rename it, then register"):
        client.models.register("enc", os.fsdecode(folder))
    assert client.models.list(name="enc") == [] and not (workspace / "models" / "enc").exists()


def test_registering_from_a_failed_or_running_run_says_what_the_version_holds(ip, client, capsys):
    """Registered all the same (v1 registers from any run; a script registers its own model while Running), but
    from a run that failed or has not ended, the magic says what the version holds."""
    write = "import os\nos.makedirs('outputs', exist_ok=True)\nopen('outputs/model.pkl', 'w').write('x')\n"
    failed = ip.run_cell_magic("aml", "run --wait", write + "raise SystemExit(3)\n")
    running = ip.run_cell_magic("aml", "run", write + "import time\ntime.sleep(60)\n")
    done = ip.run_cell_magic("aml", "run --wait", write)
    try:
        wait_until(lambda: "outputs/model.pkl" in client.runs.list_files(running.id), what="the running run's file")
        capsys.readouterr()
        assert ip.run_line_magic("aml", f"register {failed.id} outputs/model.pkl --name from-failed").version == 1
        assert f"run {failed.id} is Failed: this version holds what it left before it ended" in capsys.readouterr().err
        ip.run_line_magic("aml", f"register {running.id} outputs/model.pkl --name from-running")
        assert "is Running: its outputs may still change" in capsys.readouterr().err
        ip.run_line_magic("aml", f"register {done.id} outputs/model.pkl --name from-done")
        assert capsys.readouterr().err == ""
    finally:
        client.runs.cancel(running.id)
