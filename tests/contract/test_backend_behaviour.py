"""The backend contract (``core/contract.py``), method group by method group, through the ``Client`` every front
end uses — the same assertions on every backend. Microsoft's example responses name things their own way (the
fake answers them), so what is asserted is what the contract promises: types, ids that round-trip, errors, and
what each backend declares it cannot do."""
from __future__ import annotations

import pytest

from aml_magics.core import registry
from aml_magics.core.contract import Capabilities
from aml_magics.core.errors import AmlError, Conflict, InvalidInput, NotFound, NotSupported
from aml_magics.core.states import RUN_STATES, SERVICE_STATES
from aml_magics.core.types import (ComputeTarget, DatastoreInfo, DeploymentInfo, EnvironmentInfo, ExperimentInfo,
                                   ModelInfo, RunInfo, RunSubmission, WorkspaceInfo)

pytestmark = pytest.mark.azure_contract

# every operation a backend may declare unsupported, and how a user reaches it
OPTIONAL = {
    "batch endpoints": lambda c, run_id: c.batch_endpoints.list(),
    "resuming a sweep or AutoML run": lambda c, run_id: c.runs.resume(run_id),
    "building an environment here": lambda c, run_id: c.environments.build("contract-env"),
    "building an image here": lambda c, run_id: c.deployments.build_image("no-such-svc"),
    "--no-auth": lambda c, run_id: c.deployments.create("open-svc", "no_such_model:1", auth=False),
    "--instance-type": lambda c, run_id: c.deployments.create("vm-svc", "no_such_model:1",
                                                              instance_type="Standard_F4s_v2"),
}


def submit_cell(case, experiment: str = "contract", code: str = "print('hello')\n") -> str:
    run = case.client.runs.submit(RunSubmission(kind="cell", experiment=experiment, source_dir=case.client_dir,
                                                entry="__aml_cell__.py", code=code, compute=case.compute))
    return run.id


@pytest.fixture
def case_dir(case, tmp_path):
    case.client_dir = tmp_path / "src"
    case.client_dir.mkdir()
    return case


# -- the backend describes itself --------------------------------------------------------------------------


def test_capabilities_are_whole_and_consistent(case):
    caps = case.client.capabilities
    assert isinstance(caps, Capabilities) and caps.where
    assert (caps.pace is not None) == caps.remote  # a remote workspace is asked gently, a local one freely
    if caps.pace is not None:
        assert 0 < caps.pace[0] <= caps.pace[1]
    assert caps.deploy_target == case.kind and caps.deploy_target in registry.BACKENDS
    assert caps.automl_model in ("run", "best_child") and caps.default_compute_size >= 1
    assert set(caps.not_supported) <= set(OPTIONAL), "every declared gap has a way to reach it in OPTIONAL"
    assert all(isinstance(v, str) and v for v in caps.not_supported.values())
    assert caps.inputs_readable_here == (not caps.remote)


def test_the_workspace_summary_names_it_and_hides_secrets(case):
    info = case.client.workspace
    assert isinstance(info, WorkspaceInfo) and info.name and info.backend == case.kind
    assert info.experiments >= 0 and info.runs >= 0
    text = repr(case.client) + repr(info) + info._repr_html_() + repr(case.client.backend)
    if case.fake is not None:
        assert case.fake.token not in text


@pytest.mark.parametrize("operation", sorted(OPTIONAL))
def test_what_a_backend_cannot_do_raises_not_supported_saying_what_instead(case_dir, operation):
    case = case_dir
    caps = case.client.capabilities
    run_id = submit_cell(case)
    if operation in caps.not_supported:
        with pytest.raises(NotSupported) as err:
            OPTIONAL[operation](case.client, run_id)
        assert caps.not_supported[operation] in str(err.value) and caps.where in str(err.value)
        assert err.value.http_status == 501
    else:  # supported: whatever it answers here (a missing model, a cell run that cannot resume) is not that
        try:
            OPTIONAL[operation](case.client, run_id)
        except NotSupported as exc:  # pragma: no cover - the failure this test exists for
            pytest.fail(f"{case.kind} raised NotSupported for {operation} but does not declare it: {exc}")
        except AmlError:
            pass


# -- runs ------------------------------------------------------------------------------------------------


def test_a_submitted_run_can_be_found_listed_and_read(case_dir):
    case = case_dir
    run_id = submit_cell(case)
    info = case.client.runs.get(run_id)
    assert isinstance(info, RunInfo) and info.run_id == run_id and info.status in RUN_STATES
    assert case.client.runs.resolve_id(run_id) == run_id
    if not case.client.capabilities.remote:
        info = case.client.runs.wait(run_id, timeout=60)
        assert info.status == "Completed"
    first, second = case.client.runs.version(run_id), case.client.runs.version(run_id)
    assert first == second and hash(first) == hash(second)  # nothing changed between two reads
    listed = case.client.runs.list(limit=10)
    assert all(isinstance(i, RunInfo) and i.status in RUN_STATES for i in listed.infos)
    assert listed.total >= len(listed.infos)
    assert isinstance(case.client.runs.get_metrics(run_id), dict)
    assert isinstance(case.client.runs.metric_names(run_id), list)


def test_a_run_is_found_by_its_display_name(case_dir):
    """``%aml show baseline`` after ``%%aml run --name baseline``: the newest top-level run of that name."""
    case = case_dir
    run = case.client.runs.submit(RunSubmission(kind="cell", experiment="contract", source_dir=case.client_dir,
                                                entry="__aml_cell__.py", code="1", compute=case.compute,
                                                display_name="contract-named"))
    listed = [i for i in case.client.runs.list(limit=100).infos if i.display_name]
    assert listed, "a run with a display name is listed"
    newest = listed[0]
    assert case.client.backend.runs.named(newest.display_name, 5)[0] == newest.run_id
    assert case.client.backend.runs.named("no run is called this", 5) == []
    if case.fake is None:  # (the fake answers Jobs_Get for every name: there every text is an id)
        assert newest.run_id == run.id
        assert case.client.runs.resolve_id("contract-named") == run.id


def test_a_bad_run_submission_is_refused_before_anything_is_sent(case_dir):
    case = case_dir
    before = case.requests()
    with pytest.raises(NotFound, match="script 'missing.py' not found"):
        case.client.runs.submit(RunSubmission(kind="script", experiment="contract", source_dir=case.client_dir,
                                              entry="missing.py", compute=case.compute))
    with pytest.raises(InvalidInput):
        case.client.runs.submit(RunSubmission(kind="cell", experiment="bad\ud800name", source_dir=case.client_dir,
                                              entry="__aml_cell__.py", code="1", compute=case.compute))
    assert case.requests() == before


def test_logging_from_this_process_round_trips(case):
    run = case.client.runs.start_logging("contract-interactive")
    for i in range(5):
        run.log("loss", 1.0 / (i + 1))
    run.log("note", "text values are kept too") if case.kind == "local" else None
    run.flush()
    assert case.client.runs.get_metrics(run.id)["loss"] == [1.0, 0.5, 1 / 3, 0.25, 0.2]
    assert [s for s, _, _ in case.client.runs.metric_series(run.id, "loss")[0]] == [0, 1, 2, 3, 4]
    run.complete()


def test_an_unknown_run_is_not_found(case):
    if case.fake is not None:
        pytest.skip("azure: Microsoft's examples answer every job name (the fake has no 404 example for Jobs_Get)")
    with pytest.raises(NotFound, match="not found"):
        case.client.runs.get("no-such-run-0123456789")


def test_resume_continues_a_stopped_run(case_dir):
    case = case_dir
    case.require("resuming a sweep or AutoML run")
    run_id = submit_cell(case)
    case.client.runs.wait(run_id, timeout=60)
    with pytest.raises((Conflict, InvalidInput), match="only sweep, AutoML, pipeline and batch runs can be resumed"):  # a cell run has nothing to resume
        case.client.runs.resume(run_id)


# -- experiments, computes, datastores --------------------------------------------------------------------


def test_experiments_and_computes(case_dir):
    case = case_dir
    submit_cell(case, experiment="contract-exp")
    experiments = case.client.experiments.list()
    assert experiments and all(isinstance(e, ExperimentInfo) for e in experiments)
    made = case.client.computes.create("contract-cpu", 2)
    assert isinstance(made, ComputeTarget) and made.name == "contract-cpu"
    computes = case.client.computes.list()
    assert all(isinstance(c, ComputeTarget) for c in computes)
    with pytest.raises(NotFound, match="compute target 'no-such-compute' not found"):
        case.client.computes.get("no-such-compute")
    with pytest.raises(InvalidInput):
        case.client.computes.create("contract-cpu", 0)


def test_datastore_files_round_trip(case_dir, tmp_path):
    case = case_dir
    stores = case.client.datastores.list()
    assert all(isinstance(d, DatastoreInfo) for d in stores) and sum(d.is_default for d in stores) <= 1
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.csv").write_text("x,y\n1,2\n")
    (tmp_path / "data" / "b.csv").write_text("x,y\n3,4\n")
    written = case.client.datastores.upload(tmp_path / "data", "contract/")
    assert sorted(p.rsplit("/", 1)[-1] for p in written) == ["a.csv", "b.csv"]
    names = [e.path for e in case.client.datastores.ls("contract/")]
    assert any(n.endswith("a.csv") for n in names) and any(n.endswith("b.csv") for n in names)
    with pytest.raises(Conflict):
        case.client.datastores.upload(tmp_path / "data", "contract/")
    out = tmp_path / "out"
    case.client.datastores.download("contract/a.csv", out)
    assert (out / "a.csv").read_text() == "x,y\n1,2\n"
    # a folder comes down as itself, inside the target, on every backend (local put its contents there)
    case.client.datastores.download("contract", tmp_path / "folder")
    assert sorted(p.relative_to(tmp_path / "folder").as_posix() for p in (tmp_path / "folder").rglob("*.csv")) \
        == ["contract/a.csv", "contract/b.csv"]
    assert case.client.datastores.resolve_input("datastore:contract/a.csv").endswith("contract/a.csv")
    # where one file lands: the same on every backend (a script moved between them reads the same path)
    one, ds = tmp_path / "data" / "a.csv", case.client.datastores
    assert ds.upload(one, "contract-one") == ["contract-one/a.csv"]  # a new folder
    assert ds.upload(one, "contract-one/renamed.csv") == ["contract-one/renamed.csv"]  # a file name
    assert ds.upload(one, "contract-one/a.csv", overwrite=True) == ["contract-one/a.csv"]  # its own name
    assert ds.upload(one, "contract-one/v1.2/") == ["contract-one/v1.2/a.csv"]  # "/": a folder, whatever it looks like
    assert ds.upload(one, "contract-one/v1.2", overwrite=True) == ["contract-one/v1.2/a.csv"]  # an existing folder
    assert ds.upload(one, "") == ["a.csv"]
    with pytest.raises(Conflict):
        ds.upload(one, "contract-one")  # contract-one/a.csv is there


def test_a_folder_uploads_the_same_files_on_every_backend(case_dir, tmp_path, capsys):
    """The Azure backend sent a folder as a run's snapshot (its ``.gitignore`` applied — data files are what one
    lists most — and its ``outputs/`` left out), the local one every file but links, silently: one upload, two
    different sets of files. Now both send every file, follow a link that stays in the folder, and name in one
    note what they leave out (links out of it, a pipe, ``.git``, a virtual environment, a workspace)."""
    import os

    case = case_dir
    data = tmp_path / "data"
    for rel, text in {"a.csv": "1\n", ".gitignore": "*.csv\noutputs/\n", "outputs/r.csv": "2\n",
                      "sub/b.csv": "3\n", ".git/config": "x", "venv/pyvenv.cfg": "x", "ws/aml.db": "",
                      "sub/__pycache__/m.pyc": "x"}.items():
        (data / rel).parent.mkdir(parents=True, exist_ok=True)
        (data / rel).write_text(text)
    (tmp_path / "secret.txt").write_text("not for the datastore")
    os.symlink(tmp_path / "secret.txt", data / "out-link.txt")
    os.symlink(data / "sub" / "b.csv", data / "in-link.csv")
    os.mkfifo(data / "pipe")
    capsys.readouterr()
    written = case.client.datastores.upload(data, "folder-rule/")
    assert sorted(written) == ["folder-rule/.gitignore", "folder-rule/a.csv", "folder-rule/in-link.csv",
                               "folder-rule/outputs/r.csv", "folder-rule/sub/b.csv"]
    note = capsys.readouterr().err
    for left in (".git/ (not data)", "venv/ (a virtual environment)", "ws/ (a workspace)",
                 "out-link.txt (a link out of the folder)", "and 2 more"):  # (and pipe, sub/__pycache__/)
        assert left in note, note
    case.client.datastores.download("folder-rule/in-link.csv", tmp_path / "back")
    assert (tmp_path / "back" / "in-link.csv").read_text() == "3\n"  # the file, not a link
    with pytest.raises(InvalidInput, match="is a workspace folder"):
        case.client.datastores.upload(data / "ws", "folder-rule-ws/")
    (tmp_path / "empty" / ".git").mkdir(parents=True)
    capsys.readouterr()
    assert case.client.datastores.upload(tmp_path / "empty", "folder-rule-empty/") == []
    assert "Note: not uploaded from empty/: .git/ (not data)." in capsys.readouterr().err
    assert not [e for e in case.client.datastores.ls("") if e.path.startswith(("folder-rule-ws", "folder-rule-empty"))]


# -- models, environments, deployments, doctor ---------------------------------------------------------------


def test_models_register_and_are_found(case, tmp_path):
    (tmp_path / "model.pkl").write_bytes(b"not really a model")
    info = case.client.models.register("contract_model", tmp_path / "model.pkl", tags={"stage": "test"})
    assert isinstance(info, ModelInfo) and info.name == "contract_model" and isinstance(info.version, int)
    got = case.client.models.get("contract_model", info.version)
    assert got.name == "contract_model" and got.version == info.version
    assert all(isinstance(m, ModelInfo) for m in case.client.models.list())
    before = case.requests()
    with pytest.raises(InvalidInput, match="model name"):
        case.client.models.register("bad name!", tmp_path / "model.pkl")
    assert case.requests() == before


def test_environments_register_get_and_list(case, tmp_path):
    (tmp_path / "requirements.txt").write_text("scikit-learn>=1.3\n# a comment\n")
    env = case.client.environments.register("contract-env", tmp_path / "requirements.txt")
    assert isinstance(env, EnvironmentInfo) and env.name == "contract-env" and env.packages == ["scikit-learn>=1.3"]
    assert case.client.environments.get("contract-env").name == "contract-env"
    assert all(isinstance(e, EnvironmentInfo) for e in case.client.environments.list())


def test_deployments_list_and_names_are_checked(case):
    services = case.client.deployments.list()
    assert all(isinstance(d, DeploymentInfo) and d.state in SERVICE_STATES for d in services)
    before = case.requests()
    with pytest.raises(InvalidInput, match="service name"):
        case.client.deployments.create("Bad_Name", "contract_model:1")
    assert case.requests() == before


def test_doctor_reports(case):
    report = case.client.doctor()
    assert isinstance(report.healthy, bool) and report.checks
    assert all(outcome in ("ok", "repaired", "problem", "skipped") for _, outcome, _ in report.checks)
