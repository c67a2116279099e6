"""Who may call a service, where it listens, and paths that try to leave their folder."""
from __future__ import annotations

import inspect
from pathlib import Path

import joblib
import pytest
import requests
from IPython.core.error import UsageError

from aml_magics.core.errors import AmlError, InvalidInput


def listening_addresses(port: int) -> set[str]:
    """Local addresses with a socket listening on ``port`` (from /proc/net/tcp and tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            addr, p = local.split(":")
            if int(p, 16) == port and state == "0A":  # LISTEN
                found.add(addr)
    return found


@pytest.fixture
def model(client, tmp_path):
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    X, y = load_digits(return_X_y=True)
    joblib.dump(LogisticRegression(max_iter=200).fit(X[:300], y[:300]), tmp_path / "model.pkl")
    client.models.register("auth-model", tmp_path / "model.pkl")
    yield X
    for d in client.deployments.list():
        client.deployments.delete(d.name)


def test_services_listen_on_loopback_with_a_key_unless_told_otherwise(ip, client, model, capsys):
    svc = ip.run_line_magic("aml", "deploy auth-model --name loopback-svc")
    port = int(svc.scoring_uri.rsplit(":", 1)[1].split("/")[0])
    assert listening_addresses(port) == {"0100007F"}  # 127.0.0.1 only
    assert requests.post(svc.scoring_uri, json={"data": model[:1].tolist()}).status_code == 401
    capsys.readouterr()
    wide = ip.run_line_magic("aml", "deploy auth-model --name wide-svc --host 0.0.0.0")
    captured = capsys.readouterr()
    assert "0.0.0.0" in captured.out + captured.err and "warning" in (captured.out + captured.err).lower()
    wide_port = int(wide.scoring_uri.rsplit(":", 1)[1].split("/")[0])
    assert "00000000" in listening_addresses(wide_port)
    assert requests.post(wide.scoring_uri, json={"data": model[:1].tolist()}).status_code == 401  # still keyed
    with pytest.raises(UsageError, match="could call the service without a key"):  # keyless on every network: no
        ip.run_line_magic("aml", "deploy auth-model --name open-svc --host 0.0.0.0 --no-auth")
    assert "open-svc" not in [d.name for d in client.deployments.list()]
    assert "warning" not in capsys.readouterr().err.lower()  # refused, not warned about and then refused


@pytest.mark.parametrize("host, only_here", [("127.0.0.1", True), ("127.0.0.2", True), ("::1", True),
                                             ("localhost", True), ("0.0.0.0", False), ("::", False),
                                             ("10.1.2.3", False)])
def test_what_counts_as_this_machine_only(host, only_here):
    from aml_magics.core import checks

    assert checks.loopback_host(host) is only_here  # the deploy warning and the --no-auth refusal ask the same


@pytest.mark.parametrize("host", ["my-laptop", "", "127.0.0.1 ", "\ud800", 127])
def test_a_host_that_is_not_an_address_is_one_line(host):
    from aml_magics.core import checks
    from aml_magics.core.errors import InvalidInput

    with pytest.raises(InvalidInput):
        checks.loopback_host(host)


def test_keys_are_compared_in_constant_time():
    from aml_magics.scoring.server import ScoringService

    source = inspect.getsource(ScoringService.authorized)
    assert "hmac.compare_digest" in source
    assert "==" not in source.replace("scheme.lower() != ", "")  # no early-exit string comparison of keys


@pytest.mark.parametrize("name", ["../../aml.db", "outputs/../../../aml.db", "/etc/passwd", "logs/../../../../etc/passwd",
                                  "outputs/../io/spec.json/../../../aml.db"])
def test_artifact_downloads_cannot_leave_the_run(ip, client, tmp_path, name):
    run = ip.run_cell_magic("aml", "run --wait", "import os\nos.makedirs('outputs', exist_ok=True)\n"
                                                 "open('outputs/ok.txt', 'w').write('ok')\n")
    assert client.runs.list_files(run.id)
    with pytest.raises(AmlError):
        client.runs.download_file(run.id, name, tmp_path / "stolen")
    assert not (tmp_path / "stolen").exists()


def test_symlinks_out_of_a_run_or_a_snapshot_are_not_followed(ip, client, project, tmp_path):
    secret = tmp_path / "outside-secret.txt"
    secret.write_text("do not copy me")
    (project / "link-to-secret.txt").symlink_to(secret)
    (project / "link-dir").symlink_to(tmp_path)
    (project / "train.py").write_text("import os\nprint(sorted(os.listdir('.')))\n"
                                      "os.makedirs('outputs', exist_ok=True)\n"
                                      f"os.symlink({str(secret)!r}, 'outputs/escape.txt')\n")
    run = ip.run_line_magic("aml", "run train.py --wait")
    assert client.runs.get(run.id).status == "Completed"
    snapshot = client.backend.path / "runs" / run.id / "snapshot"
    assert not (snapshot / "link-to-secret.txt").exists() and not (snapshot / "link-dir").exists()
    assert "do not copy me" not in "".join(p.read_text(errors="ignore") for p in snapshot.rglob("*")
                                           if p.is_file() and not p.is_symlink())
    with pytest.raises(AmlError):
        client.runs.download_file(run.id, "outputs/escape.txt", tmp_path / "got.txt")
    with pytest.raises(UsageError):
        ip.run_line_magic("aml", f"register {run.id} outputs/escape.txt --name escaped")
    assert client.backend.store.query_one("SELECT COUNT(*) FROM models")[0] == 0


@pytest.mark.parametrize("target", ["../outside", "/../outside", "a/../../b"])
def test_datastore_paths_stay_inside(client, tmp_path, target):
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(AmlError):
        client.datastores.upload(tmp_path / "f.txt", target)
    with pytest.raises(AmlError):
        client.datastores.download(target, tmp_path / "dl")
    root = client.backend.path / "datastores"
    assert not any(p.name == "f.txt" for p in root.parent.parent.rglob("f.txt") if root not in p.parents
                   and p != tmp_path / "f.txt")


def test_pickled_inputs_are_read_only_by_the_run_they_were_sent_to(ip, client):
    ip.user_ns["payload"] = {"a": 1}
    run = ip.run_cell_magic("aml", "run --in payload --wait", "assert payload == {'a': 1}\n")
    assert client.runs.get(run.id).status == "Completed"
    pickle_file = client.backend.path / "runs" / run.id / "io" / "in.pkl"
    assert pickle_file.exists() and pickle_file.stat().st_mode & 0o022 == 0  # nobody else can swap the pickle
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert "Trust model" in readme and "--in" in readme


def test_datastore_folder_operations_refuse_links_that_leave_it(client, tmp_path):
    """download, ls and --input of a folder, and uploads into a folder, never follow a link out of the datastore."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("private")
    root = Path(client.datastores.default().path)
    (root / "data").mkdir()
    (root / "data" / "ok.txt").write_text("fine")
    (root / "data" / "leak.txt").symlink_to(outside / "secret.txt")
    (root / "linked").symlink_to(outside, target_is_directory=True)
    target = tmp_path / "down"
    with pytest.raises(InvalidInput, match="link that leaves the datastore"):
        client.datastores.download("data", target)
    assert not target.exists() or not any(target.rglob("*"))  # nothing was copied
    assert [e.path for e in client.datastores.ls("data")] == ["data/ok.txt"]
    with pytest.raises(InvalidInput, match="leaves the datastore"):
        client.datastores.resolve_input("datastore:data")
    src = tmp_path / "up"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "new.txt").write_text("x")
    with pytest.raises(InvalidInput, match="leaves the datastore"):
        client.datastores.upload(src, "linked")  # would write through the linked folder
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    with pytest.raises(InvalidInput, match="NUL"):
        client.datastores.ls("data\x00")


def test_names_with_terminal_escapes_are_shown_not_acted_on(ip, client):
    """A run name, tag or metric name holding escape codes (clear the screen, retitle the terminal — Jupyter also
    renders colours in text/plain), a newline that fakes a table row, or a bidirectional override: the text views
    (``%aml runs``, a run's repr, ``%aml models``, ``%aml metrics``) show them as escapes."""
    hostile = "ok\x1b[2J\x1b]0;owned\x07\u202egnp.exe"
    run = client.runs.start_logging("shown", display_name=hostile, tags={"note": "x\nfake_run  Completed"})
    run.log("loss\x1b[8m", 1.0)
    run.log("said", "val\x1b[31mue\nfake_run  Completed")  # a string metric's value: it was shown raw
    run.complete()
    client.models.register("shown-model", Path(__file__), tags={"k": "v\x1b[31m"})
    failed = client.runs.start_logging("shown")  # an error a library coloured (and one with a title escape)
    failed.fail(RuntimeError("\x1b[1;31mboom\x1b[0m\x1b]0;owned\x07 here"))
    texts = [repr(ip.run_line_magic("aml", "runs")), repr(client.runs.get(run.id)),
             repr(ip.run_line_magic("aml", "models")), repr(ip.run_line_magic("aml", f"metrics {run.id}")),
             repr(client.models.get("shown-model")), repr(client.runs.get(failed.id))]
    with pytest.raises(AmlError) as raised:
        failed.wait_for_completion()
    texts.append(str(raised.value))
    assert "said=val\\x1b[31mue\\nfake_run" in texts[1], texts[1]
    assert "boom here" in texts[5] and "boom here" in texts[6], texts[5:]
    for text in texts:
        assert "\x1b" not in text and "\u202e" not in text and "\x07" not in text, text
    assert "loss\\x1b[8m=1" in texts[0] and "loss\\x1b[8m=1" in texts[1] and "v\\x1b[31m" in texts[4]
    assert len(texts[0].splitlines()) == 4  # header, rule, the two runs
    client.models.register("shown-model", Path(__file__), tags={"k": "x\nfake-model  9  sklearn"})
    models = repr(ip.run_line_magic("aml", "models"))
    assert "x\\nfake-model" in models and len(models.splitlines()) == 5  # title, header, rule, two versions
    # the HTML views too: the override is shown, not acted on (the name read backwards: "…exe.png")
    assert "\u202e" not in ip.run_line_magic("aml", "runs")._repr_html_()
    html = client.runs.get(run.id)._repr_html_()
    assert "\u202e" not in html and "\\u202egnp.exe" in html, html


def test_a_file_whose_name_is_not_utf8_is_listed_shown_and_downloaded(ip, client, tmp_path):
    """A run that writes ``outputs/bad\\xff.txt`` (bytes that are not UTF-8: a Linux file name can be any bytes):
    ``%aml show RUN --static`` raised UnicodeEncodeError on the lone surrogate Python names it with. It is shown as
    an escape in every view, and the file is still listed and downloaded by that name."""
    import json

    run = ip.run_cell_magic("aml", "run --wait", "import os\nos.makedirs('outputs', exist_ok=True)\n"
                                                 "open(os.path.join(b'outputs', b'bad\\xff.txt'), 'w').write('x')\n")
    assert run.get_status() == "Completed", run.get_logs()
    names = client.runs.list_files(run.id)
    assert "outputs/bad\udcff.txt" in names
    views = [ip.run_line_magic("aml", f"show {run.id} --static")._repr_html_(), client.runs.get(run.id)._repr_html_(),
             repr(client.runs.get(run.id))]
    for text in views:
        text.encode("utf-8")  # raised for the static view
    assert "bad\\udcff.txt" in views[0]
    json.dumps(names)  # the sidebar's route: escaped by json
    run.download_file("outputs/bad\udcff.txt", tmp_path / "got.txt")
    assert (tmp_path / "got.txt").read_text() == "x"
