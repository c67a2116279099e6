"""Snapshots honour ignore files and never leave the source; datastore paths never leave the datastore."""
from __future__ import annotations

import os

import pytest

from aml_magics.backends.common.snapshot import plan_snapshot
from aml_magics.core.errors import Conflict, InvalidInput, NotFound


def _names(files):
    return sorted(rel for _, rel in files)


def test_snapshot_ignores(tmp_path):
    src = tmp_path / "src"
    (src / "pkg" / "__pycache__").mkdir(parents=True)
    (src / ".git").mkdir()
    (src / "outputs").mkdir()
    (src / "data").mkdir()
    (src / "ws").mkdir()
    for rel in ("train.py", "pkg/mod.py", "pkg/__pycache__/mod.pyc", ".git/HEAD", "outputs/old.pkl",
                "data/big.csv", "ws/aml.db", "notes.log"):
        (src / rel).write_text("x")
    (tmp_path / "secret.txt").write_text("outside")
    os.symlink(tmp_path / "secret.txt", src / "link_out.txt")
    os.symlink(src / "train.py", src / "link_in.py")
    assert _names(plan_snapshot(src, 10**9, exclude=(src / "ws",))) == [
        "data/big.csv", "link_in.py", "notes.log", "pkg/mod.py", "train.py"]
    (src / ".gitignore").write_text("*.log\n")
    assert "notes.log" not in _names(plan_snapshot(src, 10**9))
    (src / ".amlignore").write_text("data/\n")  # .amlignore wins over .gitignore
    names = _names(plan_snapshot(src, 10**9))
    assert "data/big.csv" not in names and "notes.log" in names


def test_a_pipe_a_socket_or_a_device_in_the_folder_is_not_part_of_the_snapshot(tmp_path):
    """A named pipe in the project folder refused every run ("could not prepare the run's snapshot: … is a named
    pipe"); a link to a device inside the folder would have been read for ever."""
    import socket

    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text("x")
    os.mkfifo(src / "pipe")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(src / "sock"))
    os.symlink("/dev/zero", src / "zero")
    try:
        assert _names(plan_snapshot(src, 10**9)) == ["train.py"]
    finally:
        sock.close()


def test_what_a_submission_leaves_out_of_its_snapshot_unasked_is_named(tmp_path, capsys):
    """A data file linked in from elsewhere (``data.csv -> /mnt/data/big.csv``) was missing in the run without a
    word: the script failed with FileNotFoundError. What .amlignore and the usual folders leave out is not named."""
    src = tmp_path / "src"
    (src / "__pycache__").mkdir(parents=True)
    (src / "train.py").write_text("x")
    (src / "ignored.csv").write_text("x")
    (src / ".amlignore").write_text("ignored.csv\n")
    (tmp_path / "big.csv").write_text("a\n1\n")
    os.symlink(tmp_path / "big.csv", src / "data.csv")
    os.symlink(tmp_path, src / "elsewhere")
    os.mkfifo(src / "pipe")
    assert _names(plan_snapshot(src, 10**9, note=True)) == [".amlignore", "train.py"]
    assert capsys.readouterr().err == (
        "Note: not in the run's snapshot: elsewhere/ (a linked folder), data.csv (a link out of the folder), pipe (not "
        "a regular file). The run sees only files inside its source folder: read other data with --input "
        "datastore:PATH, or copy it in.\n")
    plan_snapshot(src, 10**9)  # a trial's (said once, for its sweep)
    assert capsys.readouterr().err == ""


def test_an_environment_inside_the_project_is_not_part_of_the_snapshot(tmp_path):
    """A .venv (or a conda environment) in the project folder was copied with every run, and a real one is over
    the 100 MB limit: every run was refused until the user wrote .amlignore. A local workspace in it likewise (the
    local backend left its own out; an Azure ML job took it along)."""
    src = tmp_path / "src"
    for env, marker in ((".venv", "pyvenv.cfg"), ("env", "conda-meta/history")):
        (src / env / "lib").mkdir(parents=True)
        (src / env / marker).parent.mkdir(parents=True, exist_ok=True)
        (src / env / marker).write_text("home = /usr/bin\n")
        (src / env / "lib" / "big.so").write_bytes(b"0" * 5000)
    (src / "train.py").write_text("x")
    (src / "ws" / "runs").mkdir(parents=True)  # a local workspace kept in a project that moved to Azure ML
    (src / "ws" / "aml.db").write_bytes(b"0" * 5000)
    (src / "lib").mkdir()
    (src / "lib" / "util.py").write_text("x")  # a folder of code, however named, stays
    assert _names(plan_snapshot(src, 1000)) == ["lib/util.py", "train.py"]


def test_a_snapshot_of_thousands_of_files_is_said(tmp_path, capsys):
    """A data folder beside the notebook was copied by every run without a word (20,000 files: 1.7 s a run)."""
    src = tmp_path / "src"
    (src / "data").mkdir(parents=True)
    (src / "train.py").write_text("x")
    for i in range(2100):
        (src / "data" / f"{i}.bin").write_bytes(b"0")
    assert len(plan_snapshot(src, 10**9)) == 2101 and capsys.readouterr().err == ""  # asked not to: silent
    plan_snapshot(src, 10**9, note=True)
    said = capsys.readouterr().err
    assert "Note: the run's snapshot is 2,101 files, 0.0 MB, 2,100 of them in data/ — copied for every run" in said
    assert ".amlignore" in said


def test_snapshot_size_limit(tmp_path):
    (tmp_path / "big.bin").write_bytes(b"0" * 2000)
    with pytest.raises(InvalidInput, match="over the"):
        plan_snapshot(tmp_path, 1000)


def test_datastore_upload_ls_download(client, tmp_path):
    src = tmp_path / "data"
    (src / "sub").mkdir(parents=True)
    (src / "a.csv").write_text("1")
    (src / "sub" / "b.csv").write_text("2")
    assert client.datastores.upload(src, "mnist") == ["mnist/a.csv", "mnist/sub/b.csv"]
    assert [e.path for e in client.datastores.ls("mnist")] == ["mnist/a.csv", "mnist/sub/"]
    # downloads into a local folder that cannot take them: one line naming the path (a FileExistsError before)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "mnist").mkdir()
    (tmp_path / "busy" / "mnist" / "sub").write_text("a file named like the folder that comes down")
    with pytest.raises(InvalidInput, match=r"cannot write .*busy/mnist/sub: a file is where a folder is needed"):
        client.datastores.download("mnist", tmp_path / "busy", overwrite=True)
    run = client.runs.start_logging("downloads")
    run.upload_file("outputs/a.csv", src / "a.csv")
    run.complete()
    with pytest.raises(InvalidInput, match=r"cannot write .*busy/mnist/sub: a file is where a folder is needed"):
        client.runs.download_file(run.id, "outputs/a.csv", tmp_path / "busy" / "mnist" / "sub" / "a.csv")
    client.models.register("downloads", src / "a.csv")
    with pytest.raises(InvalidInput, match="cannot write /proc/.*: that folder cannot be made"):
        client.models.download("downloads", target_dir="/proc/no/such")
    with pytest.raises(Conflict, match=r"^mnist/a.csv already exists in the datastore \(and 1 other file of the "
                                       r"upload\); add --overwrite to replace \(nothing was uploaded\)$"):
        client.datastores.upload(src, "mnist")
    with pytest.raises(NotFound, match="^datastore 'nosuch' not found; the workspace has workspaceblobstore$"):
        client.datastores.upload(src, "mnist", datastore="nosuch")
    with pytest.raises(NotFound, match="'nothere' does not exist; see what is there with %aml datastore ls$"):
        client.datastores.download("nothere", tmp_path / "nothere")
    (src / "a.csv").write_text("changed")
    client.datastores.upload(src, "mnist", overwrite=True)
    out = tmp_path / "down"
    client.datastores.download("mnist", out)  # the folder comes down as itself, as on Azure ML
    assert (out / "mnist" / "a.csv").read_text() == "changed" and (out / "mnist" / "sub" / "b.csv").read_text() == "2"
    single = client.datastores.upload(src / "a.csv", "")
    assert single == ["a.csv"]
    assert client.datastores.resolve_input("datastore:mnist/a.csv").endswith("mnist/a.csv")
    assert client.datastores.resolve_input("datastore:workspaceblobstore/mnist").endswith("mnist")
    # a file where the upload needs a folder, or a folder where it would put a file: one line, nothing copied
    client.datastores.upload(src / "a.csv", "tables.csv")
    for what, target in ((src / "a.csv", "tables.csv/"), (src / "a.csv", "tables.csv/b.csv"), (src, "tables.csv")):
        with pytest.raises(Conflict, match="tables.csv is a file in the datastore and the upload needs a folder"):
            client.datastores.upload(what, target)
    (tmp_path / "odd" / "a.csv").mkdir(parents=True)
    (tmp_path / "odd" / "a.csv" / "x").write_text("3")
    with pytest.raises(Conflict, match="mnist/a.csv is a file in the datastore and the upload needs a folder"):
        client.datastores.upload(tmp_path / "odd", "mnist", overwrite=True)
    (tmp_path / "sub").write_text("a file named like mnist's folder")
    with pytest.raises(Conflict, match="mnist/sub is a folder in the datastore and the upload would put a file"):
        client.datastores.upload(tmp_path / "sub", "mnist/", overwrite=True)
    assert [e.path for e in client.datastores.ls("mnist")] == ["mnist/a.csv", "mnist/sub/"]


@pytest.mark.parametrize("bad", ["../x", "a/../../x", "/etc/passwd"])
def test_datastore_paths_cannot_escape(client, tmp_path, bad):
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises((InvalidInput, NotFound)):
        client.datastores.upload(tmp_path / "f.txt", bad) if bad != "/etc/passwd" else client.datastores.ls(bad + "/..")
    with pytest.raises(InvalidInput):
        client.datastores.ls(bad if bad != "/etc/passwd" else "../etc")


def test_datastore_symlink_escape_is_refused(client, tmp_path):
    root = client.datastores.default().path
    os.symlink(tmp_path, os.path.join(root, "escape"))
    with pytest.raises(InvalidInput, match="leaves the datastore"):
        client.datastores.ls("escape")


def test_one_rule_picks_the_default_datastore():
    """The core and the Azure backend pick the default datastore by one rule: the marked one, else the only one;
    several and none marked is one clear error (no silent "the first")."""
    from aml_magics.core.errors import NotFound
    from aml_magics.core.names import default_datastore

    def pick(stores):
        return default_datastore(stores, lambda s: s[1], lambda s: s[0])

    assert pick([("a", False), ("b", True)]) == ("b", True)
    assert pick([("only", False)]) == ("only", False)
    with pytest.raises(NotFound, match="no default datastore among a, b; name one"):
        pick([("a", False), ("b", False)])
    with pytest.raises(NotFound, match="^the workspace has no default datastore$"):
        pick([])


def test_uploading_a_folder_that_holds_the_workspace_leaves_the_workspace_out(tmp_path, monkeypatch, capsys):
    """A project with its workspace in it (``%aml workspace use ./ws``), uploaded whole: the live database and the
    datastore — with this very upload in it — were copied too, and each upload of the folder doubled the copy."""
    from aml_magics.core.client import Client

    project = tmp_path / "project"
    project.mkdir()
    (project / "data.csv").write_text("a,b\n1,2\n")
    client = Client(project / "ws")
    run = client.runs.start_logging("e")
    run.log("x", 1.0)
    run.complete()
    for _ in range(2):
        assert client.datastores.upload(project, "proj", overwrite=True) == ["proj/data.csv"]
        assert "Note: not uploaded from project/: ws/ (a workspace)." in capsys.readouterr().err
    assert [e.path for e in client.datastores.ls("proj")] == ["proj/data.csv"]
    with pytest.raises(InvalidInput, match="is a workspace folder"):
        client.datastores.upload(project / "ws", "w")
    # a folder inside the workspace (a run's outputs) is uploaded as any other
    outputs = project / "ws" / "runs" / run.id / "outputs"
    outputs.mkdir(parents=True, exist_ok=True)
    (outputs / "model.txt").write_text("m")
    assert client.datastores.upload(outputs, "models") == ["models/model.txt"]


def test_a_loop_of_links_in_a_folder_is_left_out_not_a_traceback(tmp_path, capsys):
    """A folder holding two links that point at each other (or a link to nothing): ``Path.resolve`` raises
    RuntimeError on the loop (OSError from Python 3.13), and a run's snapshot and a model's registration of the folder
    were that traceback."""
    from pathlib import Path

    from aml_magics.core.client import Client

    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "train.py").write_text("print('hi')\n")
    os.symlink("loop-b", folder / "loop-a")
    os.symlink("loop-a", folder / "loop-b")
    os.symlink("nothing-here", folder / "dangling")
    assert [rel for _, rel in plan_snapshot(folder, 10 ** 6)] == ["train.py"]
    client = Client(tmp_path / "ws")
    model = client.models.register("looped", folder)
    assert sorted(p.name for p in Path(model.path).rglob("*")) == ["train.py"]
    capsys.readouterr()
    assert client.datastores.upload(folder, "looped") == ["looped/train.py"]
    assert "dangling (a link to nothing), loop-a (a link to nothing), loop-b (a link to nothing)" in \
        capsys.readouterr().err
