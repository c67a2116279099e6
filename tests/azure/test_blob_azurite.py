"""Blob uploads against a real Azure Storage emulator: Azurite (npm), on loopback, Shared Key auth."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

from aml_magics.backends.azure.blob import BlobContainer
from aml_magics.core.errors import AmlError, AuthError, NotFound

pytestmark = pytest.mark.azure_contract

ACCOUNT = "devstoreaccount1"  # Azurite's well-known development account and key (public, documented)
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@pytest.fixture(scope="module")
def azurite(tmp_path_factory):
    exe = os.environ.get("AML_MAGICS_AZURITE") or shutil.which("azurite-blob") or "/tmp/azurite/node_modules/.bin/azurite-blob"
    if not Path(exe).exists():
        pytest.fail("Azurite is missing: scripts/test installs it with npm (set AML_MAGICS_AZURITE)")
    folder = tmp_path_factory.mktemp("azurite")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([exe, "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location", str(folder),
                             "--skipApiVersionCheck", "--silent"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}/{ACCOUNT}"
    deadline = time.monotonic() + 60
    while True:
        try:
            requests.get(base, timeout=1)
            break
        except requests.RequestException:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("Azurite did not start")
            time.sleep(0.2)
    yield base
    os.killpg(proc.pid, 15)
    proc.wait(10)


def _connect(fake, azurite: str, workspace: str):
    """A client on the contract fake's workspace whose datastores live in Azurite."""
    from aml_magics.core.client import Client

    from .test_rest_contract import StaticToken

    return Client.connect("00000000-1111-2222-3333-444444444444", "my-rg", workspace,
                          credential=StaticToken(fake.token), base_url=fake.base_url, storage=(azurite, ACCOUNT))


def _container(azurite: str, name: str = "string") -> BlobContainer:
    """A container in Azurite (by default the example datastore's, "string"), made if this module has not yet."""
    container = BlobContainer(f"{azurite}/{name}", ACCOUNT, key=KEY)
    try:
        container.create()
    except AmlError:
        pass  # made by an earlier test of this module
    return container


def _job_folder(fake, folder: Path) -> Path:
    """The uploaded snapshot, unpacked where Azure ML would run the job."""
    for path, data in fake.blobs.items():
        if path.startswith("/blob/c/snap/"):
            (folder / path[len("/blob/c/snap/"):]).parent.mkdir(parents=True, exist_ok=True)
            (folder / path[len("/blob/c/snap/"):]).write_bytes(data)
    return folder


def test_put_get_list_with_shared_key(azurite):
    c = BlobContainer(f"{azurite}/datastore", ACCOUNT, key=KEY)
    c.create()
    c.put("tables/small.csv", b"a,b\n1,2\n")
    big = os.urandom(2_500_000)
    c.put("models/big model.bin", big, block_size=1_000_000)  # Put Block ×3 + Put Block List
    assert c.get("tables/small.csv") == b"a,b\n1,2\n"
    assert c.get("models/big model.bin") == big
    assert sorted(c.list()) == [("models/big model.bin", 2_500_000), ("tables/small.csv", 8)]
    assert list(c.list("tables/")) == [("tables/small.csv", 8)]
    with pytest.raises(NotFound):
        c.get("missing.txt")
    wrong = BlobContainer(f"{azurite}/datastore", ACCOUNT, key="d3Jvbmc=")
    with pytest.raises(AuthError) as info:
        wrong.get("tables/small.csv")
    assert KEY not in str(info.value) and KEY not in repr(c)
    with socket.socket() as s:  # a port nothing listens on: one line, not a requests traceback
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(AmlError, match="could not be reached or the connection broke .ConnectionError.") as info:
        BlobContainer(f"http://127.0.0.1:{port}/{ACCOUNT}/datastore", ACCOUNT, key=KEY).get("tables/small.csv")
    assert KEY not in str(info.value)


def test_datastore_upload_list_download_through_the_workspace(azurite, tmp_path):
    """ARM (the contract fake) hands out the datastore and its key; the files go to Azurite."""
    from aml_magics.core.errors import Conflict, InvalidInput

    from .contract import FakeArm

    fake = FakeArm().datastore_key(KEY)
    try:
        client = _connect(fake, azurite, "ds-ws")
        _container(azurite)  # the example datastore's container
        (tmp_path / "data").mkdir()
        (tmp_path / "data" / "train.csv").write_text("x,y\n1,2\n")
        (tmp_path / "data" / "sub").mkdir()
        (tmp_path / "data" / "sub" / "more.csv").write_text("x,y\n3,4\n")
        uploaded = client.datastores.upload(tmp_path / "data", "tables", datastore="string")
        assert sorted(uploaded) == ["tables/sub/more.csv", "tables/train.csv"]
        with pytest.raises(Conflict, match="--overwrite"):
            client.datastores.upload(tmp_path / "data", "tables", datastore="string")
        assert [e.path for e in client.datastores.ls("tables", datastore="string")] == ["tables/sub/more.csv",
                                                                                      "tables/train.csv"]
        got = client.datastores.download("tables", tmp_path / "out", datastore="string")
        assert (tmp_path / "out" / "tables" / "sub" / "more.csv").read_text() == "x,y\n3,4\n" and len(got) == 2
        with pytest.raises(InvalidInput, match="inside the datastore"):
            client.datastores.upload(tmp_path / "data", "../escape", datastore="string")
        (tmp_path / "odd").mkdir()  # names as a careless user writes them: listed and read back as themselves
        for name in ("a&b.csv", "50%25 <off>.csv", "é ü.csv"):
            (tmp_path / "odd" / name).write_text(name)
        client.datastores.upload(tmp_path / "odd", "odd", datastore="string")
        assert [e.path for e in client.datastores.ls("odd", datastore="string")] == \
            ["odd/50%25 <off>.csv", "odd/a&b.csv", "odd/é ü.csv"]
        client.datastores.download("odd", tmp_path / "odd-out", datastore="string")
        assert sorted(p.name for p in (tmp_path / "odd-out" / "odd").iterdir()) == ["50%25 <off>.csv", "a&b.csv",
                                                                                    "é ü.csv"]
        # a file larger than a block: streamed up in blocks and down in chunks (never read whole), told as it goes
        big = os.urandom(9 << 20)
        (tmp_path / "big").mkdir()
        (tmp_path / "big" / "weights.bin").write_bytes(big)
        told: list[tuple[int, int]] = []
        client.datastores.upload(tmp_path / "big" / "weights.bin", "models/", datastore="string",
                                 progress=lambda done, total: told.append((done, total)))
        assert told[-1] == (len(big), len(big)) and [d for d, _ in told] == sorted(d for d, _ in told)
        told.clear()
        (tmp_path / "big-out").mkdir()
        (tmp_path / "big-out" / "weights.bin").write_bytes(b"an older copy")
        client.datastores.download("models/weights.bin", tmp_path / "big-out", datastore="string", overwrite=True,
                                   progress=lambda done, total: told.append((done, total)))
        assert (tmp_path / "big-out" / "weights.bin").read_bytes() == big and told[-1] == (len(big), len(big))
        assert os.listdir(tmp_path / "big-out") == ["weights.bin"]  # no temporary file left beside it
        assert {c.operation for c in fake.calls} == {"Datastores_Get", "Datastores_ListSecrets"}
    finally:
        fake.close()
    assert not fake.violations, fake.violations


def test_registering_local_model_files_uploads_them_to_the_default_datastore(azurite, tmp_path):
    """A local file or folder goes to LocalUpload/<content hash>/ in the default datastore (Azurite here),
    then a model version points at it (contract fake)."""
    import joblib
    from sklearn.linear_model import LinearRegression

    from aml_magics.core.errors import InvalidInput

    from .contract import FakeArm

    fake = FakeArm().datastore_key(KEY)
    try:
        client = _connect(fake, azurite, "model-ws")
        container = _container(azurite)  # the example datastore's container
        joblib.dump(LinearRegression().fit([[0], [1]], [0, 1]), tmp_path / "model.pkl")
        model = client.models.register("diabetes", tmp_path / "model.pkl", tags={"stage": "dev"},
                                       description="a line")
        put = [c for c in fake.calls if c.operation == "ModelVersions_CreateOrUpdate"][-1]
        props = put.body["properties"]
        uri = props["modelUri"]
        assert uri.startswith("azureml://datastores/") and uri.endswith("/model.pkl") and "/LocalUpload/" in uri
        blob = uri.split("/paths/", 1)[1]
        assert container.get(blob) == (tmp_path / "model.pkl").read_bytes()
        assert props["properties"]["framework"] == "scikit-learn" and props["tags"] == {"stage": "dev"}
        assert props["modelType"] == "custom_model" and props["description"] == "a line"
        assert put.path.endswith(f"/models/diabetes/versions/{model.version}")

        (tmp_path / "mlflow_model").mkdir()
        (tmp_path / "mlflow_model" / "MLmodel").write_text("flavors: {}\n")
        (tmp_path / "mlflow_model" / "data").mkdir()
        (tmp_path / "mlflow_model" / "data" / "w.bin").write_bytes(b"\x00" * 100)
        client.models.register("flow", tmp_path / "mlflow_model")
        props = [c for c in fake.calls if c.operation == "ModelVersions_CreateOrUpdate"][-1].body["properties"]
        assert props["modelType"] == "mlflow_model" and props["modelUri"].endswith("/mlflow_model/")
        prefix = props["modelUri"].split("/paths/", 1)[1]
        assert sorted(n for n, _ in container.list(prefix)) == [prefix + "MLmodel", prefix + "data/w.bin"]

        client.models.register("flow", tmp_path / "mlflow_model")  # the same content: the same blobs
        again = [c for c in fake.calls if c.operation == "ModelVersions_CreateOrUpdate"][-1].body["properties"]
        assert again["modelUri"] == props["modelUri"]
        with pytest.raises(NotFound, match="does not exist"):
            client.models.register("flow", tmp_path / "missing")
        with pytest.raises(InvalidInput, match="model name"):
            client.models.register("bad name!", tmp_path / "model.pkl")
    finally:
        fake.close()
    assert not fake.violations, fake.violations


def test_in_and_out_variables_travel_through_the_default_datastore(azurite, tmp_path):
    """--in values are pickled to the default datastore (Azurite) and given to the job as a uri_file input; the
    shipped driver runs the cell with them and writes --out values to the job's uri_folder output, from where
    the client brings them back. The job itself is run here the way Azure ML would start it."""
    import subprocess
    import sys

    from aml_magics.core.errors import InvalidInput
    from aml_magics.core.types import RunSubmission

    from .contract import FakeArm

    fake = FakeArm().datastore_key(KEY).snapshots_here()
    submitted = {}

    def finished_job(call, status, body):
        # stated adaptation: the service keeps the properties a job was created with, and this job has finished
        sent = submitted.get(call.path.rsplit("/", 1)[-1])
        if sent is not None:
            body["properties"]["properties"] = sent["properties"].get("properties", {})
            body["properties"]["status"] = "Completed"
        return status, body

    fake.overrides["Jobs_Get"] = finished_job
    try:
        client = _connect(fake, azurite, "io-ws")
        container = _container(azurite)
        (tmp_path / "src").mkdir()
        cell = "y = [f(x) for x in X]\nz = sum(y)\n"
        run = client.runs.submit(RunSubmission(kind="cell", experiment="io", source_dir=tmp_path / "src", entry="c.py",
                                               code=cell, compute="cpu-cluster",
                                               in_values={"X": [1, 2, 3], "f": lambda v: v * 10},
                                               out_vars=["y", "z"]))
        job = [c for c in fake.calls if c.operation == "Jobs_CreateOrUpdate"][-1]
        submitted[run.id] = job.body
        props = job.body["properties"]
        assert props["command"] == ("python __aml_io__.py --aml-in ${{inputs.aml_magics_in}} --aml-out "
                                    "${{outputs.aml_magics_out}} --aml-vars y,z __aml_cell__.py")
        in_uri = props["inputs"]["aml_magics_in"]["uri"]
        out_uri = props["outputs"]["aml_magics_out"]["uri"]
        assert in_uri == f"azureml://datastores/string/paths/aml-magics/io/{run.id}/in.pkl"
        assert out_uri == f"azureml://datastores/string/paths/aml-magics/io/{run.id}/out/"

        # the job, as Azure ML starts it: inputs downloaded, the output folder uploaded when it ends
        jobdir = _job_folder(fake, tmp_path / "job")
        (tmp_path / "in.pkl").write_bytes(container.get(in_uri.split("/paths/", 1)[1]))
        command = props["command"].replace("${{inputs.aml_magics_in}}", str(tmp_path / "in.pkl")) \
            .replace("${{outputs.aml_magics_out}}", str(tmp_path / "out"))
        out = subprocess.run([sys.executable, *command.split()[1:]], cwd=jobdir, capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0, out.stderr
        container.put(out_uri.split("/paths/", 1)[1] + "out.pkl", (tmp_path / "out" / "out.pkl").read_bytes())

        assert client.runs.result(run.id) == {"y": [10, 20, 30], "z": 60}
        assert client.runs.result(run.id, "z") == 60
        with pytest.raises(InvalidInput, match="cannot pickle"):
            import threading

            client.runs.submit(RunSubmission(kind="cell", experiment="io", source_dir=tmp_path / "src", entry="c.py",
                                             code="1", compute="cpu", in_values={"lock": threading.Lock()}))
        (tmp_path / "src" / "n.ipynb").write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
        with pytest.raises(InvalidInput, match="cell and script runs"):
            client.runs.submit(RunSubmission(kind="notebook", experiment="io", source_dir=tmp_path / "src",
                                             entry="n.ipynb", compute="cpu", out_vars=["y"]))
    finally:
        fake.close()
    assert not fake.violations, fake.violations


def test_in_values_reach_every_trial_of_an_azure_sweep(azurite, tmp_path):
    """%%aml sweep --in X: the values go to the default datastore once; the sweep job takes them as an input
    and each trial's command runs the swept cell through the shipped driver with them."""
    import subprocess
    import sys

    from aml_magics.core.types import RunSubmission
    from aml_magics.sweep.settings import sweep_submission
    from aml_magics.sweep.space import parse_cell

    from .contract import FakeArm

    fake = FakeArm().datastore_key(KEY).snapshots_here()
    try:
        client = _connect(fake, azurite, "sweep-io-ws")
        container = _container(azurite)
        cell = "C = choice(1, 2)\nprint(sum(scale(x) for x in X) * C)\n"
        space, spans = parse_cell(cell)
        trial = RunSubmission(kind="cell", experiment="tune", source_dir=tmp_path, entry="c.py", code=cell,
                              compute="cpu-cluster", in_values={"X": [1, 2, 3], "scale": lambda v: v * 2})
        run = client.runs.submit(sweep_submission(trial, space, primary_metric="acc", goal="max", sampling="grid",
                                                  max_trials=2, parallel=2, spans=spans))
        props = [c for c in fake.calls if c.operation == "Jobs_CreateOrUpdate"][-1].body["properties"]
        assert props["jobType"] == "Sweep"
        command = props["trial"]["command"]
        assert command == "python __aml_io__.py --aml-in ${{inputs.aml_magics_in}} __aml_cell__.py --C ${{search_space.C}}"
        in_uri = props["inputs"]["aml_magics_in"]["uri"]
        assert in_uri == f"azureml://datastores/string/paths/aml-magics/io/{run.id}/in.pkl" and "outputs" not in props

        # one trial as the service starts it: the snapshot, the input downloaded, its value substituted
        jobdir = _job_folder(fake, tmp_path / "job")
        (tmp_path / "in.pkl").write_bytes(container.get(in_uri.split("/paths/", 1)[1]))
        argv = command.replace("${{inputs.aml_magics_in}}", str(tmp_path / "in.pkl")) \
            .replace("${{search_space.C}}", "2").split()[1:]
        out = subprocess.run([sys.executable, *argv], cwd=jobdir, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "24"
    finally:
        fake.close()
    assert not fake.violations, fake.violations


def test_a_jobs_log_and_files_come_from_its_artifact_store(azurite, tmp_path, monkeypatch, ip, capsys):
    """A job's user_logs/std_log.txt is tailed and its files listed and downloaded from its default artifact
    store: the datastore and its key from ARM (contract fake), the blobs from Azurite. Azure ML writes them
    there while the job runs; here the test writes them, in pieces, as Azure ML would."""
    from aml_magics.core.errors import InvalidInput

    from .contract import FakeArm

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    fake = FakeArm().datastore_key(KEY)

    def named_artifact_store(call, status, body):
        # stated adaptation: this job's body names its default output, as Azure ML's job bodies may
        if call.path.endswith("/jobs/named-job"):
            body["properties"]["outputs"] = {"default": {"jobOutputType": "uri_folder",
                                                         "uri": "azureml://datastores/workspaceartifactstore/paths/"
                                                                "ExperimentRun/dcid.elsewhere/"}}
        return status, body

    fake.overrides["Jobs_Get"] = named_artifact_store
    try:
        client = _connect(fake, azurite, "logs-ws")
        ws = client.backend.ws
        name = client.backend.arm.get(f"{ws.path}/datastores/workspaceartifactstore")["properties"]["containerName"]
        store = _container(azurite, name)
        job, prefix = "quiet_lamp_4y2b", "ExperimentRun/dcid.quiet_lamp_4y2b/"
        assert client.runs.read_log(job, 0) == ("", 0)  # not started: nothing written yet
        assert client.runs.list_files(job) == []

        first = "epoch 1 loss=0.50 ✓\n".encode()
        store.put(prefix + "user_logs/std_log.txt", first[:-3])  # the upload so far ends inside "✓"
        store.put(prefix + "user_logs/std_log_process_1.txt", b"another process\n")
        text, offset = client.runs.read_log(job, 0)
        assert text == "epoch 1 loss=0.50 " and offset == len(first) - 4
        asked = len(fake.calls)  # where the job's files are, and the datastore's key, were asked once (cached)
        assert client.runs.read_log(job, offset) == ("", offset)  # the character is not complete yet
        store.put(prefix + "user_logs/std_log.txt", first + b"epoch 2 loss=0.25\n")
        text, offset2 = client.runs.read_log(job, offset)
        assert text == "✓\nepoch 2 loss=0.25\n" and offset2 == len(first) + 18
        assert client.runs.read_log(job, offset2) == ("", offset2)  # the blob has not grown: nothing more
        assert [c.operation for c in fake.calls[asked:]] == []  # a dashboard's log polls go to storage only
        assert client.runs.get_logs(job, tail=1) == "epoch 2 loss=0.25"
        # a dashboard's first read of a long log: only its end is fetched (a range read), from a whole line
        text, end = client.runs.read_log(job, 0, tail=20)
        assert text == ("[aml-magics] 22 bytes of earlier output not shown here; the whole log: %aml logs RUN, or "
                        "the run's file logs/std_log.txt\nepoch 2 loss=0.25\n") and end == offset2
        magics = ip.magics_manager.registry["AmlMagics"]
        magics._client = client  # what %aml connect does
        try:
            capsys.readouterr()
            ip.run_line_magic("aml", f"logs {job}")
            assert capsys.readouterr().out == "epoch 1 loss=0.50 ✓\nepoch 2 loss=0.25\n\n"
        finally:
            magics._client = None

        store.put(prefix + "outputs/model.pkl", b"\x80model bytes")
        assert client.runs.list_files(job) == ["outputs/model.pkl", "user_logs/std_log.txt",
                                               "user_logs/std_log_process_1.txt"]
        got = client.runs.download_file(job, "outputs/model.pkl", tmp_path / "m.pkl")
        assert Path(got).read_bytes() == b"\x80model bytes"
        cached = client.runs.local_file(job, "outputs/model.pkl")
        assert str(cached).startswith(str(tmp_path / "cache")) and cached.read_bytes() == b"\x80model bytes"
        store.put(prefix + "outputs/model.pkl", b"a newer, longer model")  # rewritten: fetched again
        assert client.runs.local_file(job, "outputs/model.pkl").read_bytes() == b"a newer, longer model"
        with pytest.raises(NotFound, match="outputs/model.pkl"):
            client.runs.download_file(job, "outputs/model.pk", tmp_path)  # suggests the near name
        with pytest.raises(InvalidInput, match="must be a relative path inside the run"):
            client.runs.local_file(job, "../dcid.other/outputs/model.pkl")
        with pytest.raises(InvalidInput, match="inside the datastore"):  # the backend's own guard, below the client's
            client.backend.runs.file_path(job, "../dcid.other/outputs/model.pkl")

        store.put("ExperimentRun/dcid.elsewhere/user_logs/std_log.txt", b"from the named store\n")
        assert client.runs.read_log("named-job", 0) == ("from the named store\n", 21)
        assert {c.operation for c in fake.calls} == {"Jobs_Get", "Datastores_Get", "Datastores_ListSecrets"}
    finally:
        fake.close()
    assert not fake.violations, fake.violations
    assert KEY not in repr(client.backend) and KEY not in str(list((tmp_path / "cache").rglob("*")))
