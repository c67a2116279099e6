"""The Azure ML v1 layer (``%aml v1``): what a v1 notebook's careless or hostile input does, what happens beside a
real azureml-core, and that nothing of the v1 names leaks into a process that did not ask for them. The v1
notebooks themselves (notebooks/v1/) run unchanged under nbval."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from aml_magics import v1
from aml_magics.core.errors import AmlError, InvalidInput, NotFound, NotSupported

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def azureml(client, monkeypatch):
    """The v1 names on this test's workspace; taken away again after."""
    monkeypatch.delenv(v1.ENV_FLAG, raising=False)
    assert v1.install(client=client, quiet=True)
    import azureml.core

    yield azureml
    v1.uninstall()
    v1.set_client(None)
    assert not any(n == "azureml" or n.startswith("azureml.") for n in sys.modules)
    assert v1.ENV_FLAG not in os.environ


def test_every_import_path_the_issue_names_resolves(azureml):
    import importlib

    for module in [m for m, target in v1.ALIASES.items()]:
        importlib.import_module(module)
    from azureml.core import (Dataset, Datastore, Environment, Experiment, Model, Run,  # noqa: F401
                              ScriptRunConfig, Workspace)
    from azureml.core.compute import AmlCompute, ComputeInstance, ComputeTarget, ComputeTargetException  # noqa
    from azureml.core.webservice import AciWebservice, AksWebservice, LocalWebservice, Webservice  # noqa: F401
    from azureml.train.automl.run import AutoMLRun  # noqa: F401
    from azureml.train.hyperdrive import HyperDriveRun  # noqa: F401

    assert azureml.core.VERSION.startswith("1.")
    assert Run.get_context().__class__.__name__ == "_OfflineV1Run"  # outside a run, as v1's offline run


def test_names_that_are_not_here_say_so_in_one_line(azureml):
    with pytest.raises(ModuleNotFoundError, match="has no azureml.core.nope .module or name.*README"):
        import azureml.core.nope  # noqa: F401
    with pytest.raises(ImportError, match="has no azureml.core.NotHere .module or name.*README"):
        from azureml.core import NotHere  # noqa: F401
    import azureml.core

    with pytest.raises(AttributeError, match="azureml.core.Nope is not part of aml-magics' Azure ML v1 layer"):
        azureml.core.Nope
    from azureml.pipeline.core import Pipeline, PublishedPipeline

    with pytest.raises(InvalidInput, match="takes PythonScriptStep"):
        Pipeline(workspace=None, steps=[])
    with pytest.raises(NotSupported, match="published pipelines are Azure ML studio's"):
        PublishedPipeline()


def test_max_run_duration_seconds_cancels_the_run(azureml, client, tmp_path):
    """v1's promise: "the system will attempt to automatically cancel the run if it took longer than this value"
    (it was accepted and ignored: the run went on)."""
    from azureml.core import Experiment, ScriptRunConfig, Workspace

    (tmp_path / "train.py").write_text("import time\nfrom azureml.core import Run\nrun = Run.get_context()\n"
                                       "for i in range(10000):\n    run.log('tick', i)\n    time.sleep(0.05)\n")
    src = ScriptRunConfig(source_directory=str(tmp_path), script="train.py", max_run_duration_seconds=2)
    assert src.max_run_duration_seconds == src.run_config.max_run_duration_seconds == 2
    run = Experiment(Workspace.from_config(), "limited").submit(src)
    run.wait_for_completion(raise_on_error=False)
    assert run.get_status() == "Canceled"
    assert client.runs.get(run.id).error == "the run exceeded its time limit of 2 s and was canceled"
    assert len(run.get_metrics()["tick"]) >= 10


def test_careless_v1_settings_are_refused_before_anything_runs(azureml, client, tmp_path):
    from azureml.core import Environment, Experiment, Model, ScriptRunConfig, Workspace
    from azureml.core.compute import AmlCompute, ComputeTarget
    from azureml.core.compute_target import ComputeTargetException
    from azureml.core.webservice import LocalWebservice
    from azureml.train.automl import AutoMLConfig
    from azureml.train.hyperdrive import HyperDriveConfig, PrimaryMetricGoal, RandomParameterSampling, choice

    ws = Workspace.from_config()
    exp = Experiment(ws, "careless")
    (tmp_path / "train.py").write_text("print('x')\n")
    with pytest.raises(InvalidInput, match="needs script="):
        exp.submit(ScriptRunConfig(source_directory=str(tmp_path)))
    with pytest.raises(InvalidInput, match="no script 'trian.py'"):
        exp.submit(ScriptRunConfig(source_directory=str(tmp_path), script="trian.py"))
    (tmp_path / "src").mkdir()
    for outside in ("/etc/passwd", "../train.py"):  # /etc/passwd ran as a Python script; ../ failed in the run
        with pytest.raises(InvalidInput, match="must be a file inside source_directory"):
            exp.submit(ScriptRunConfig(source_directory=str(tmp_path / "src"), script=outside))
    with pytest.raises(InvalidInput, match="is a list"):
        ScriptRunConfig(source_directory=str(tmp_path), script="train.py", arguments={"--lr": 0.1})
    assert ScriptRunConfig(source_directory=str(tmp_path), script="train.py", arguments="--lr 0.1 --name 'a b'") \
        .arguments == ["--lr", "0.1", "--name", "a b"]  # a command line, not its letters
    for bad, message in (({"1X": "a"}, "is not a variable name"), ({"A": None}, "has no value"),
                         ({"A": "x\x00"}, "NUL"), (["A=1"], "must be a dict")):
        env = Environment("careless-env")
        env.environment_variables = bad
        with pytest.raises(InvalidInput, match=message):
            exp.submit(ScriptRunConfig(source_directory=str(tmp_path), script="train.py", environment=env))
    with pytest.raises(InvalidInput, match="idle_seconds_before_scaledown"):
        AmlCompute.provisioning_configuration(max_nodes=2, idle_seconds_before_scaledown="soon")
    for bad in (-1, "60", float("nan"), 1e300):
        with pytest.raises(InvalidInput, match="max_run_duration_seconds"):
            ScriptRunConfig(source_directory=str(tmp_path), script="train.py", max_run_duration_seconds=bad)
    late = ScriptRunConfig(source_directory=str(tmp_path), script="train.py")
    late.run_config.max_run_duration_seconds = "soon"  # set afterwards, as v1 allows: checked at submission
    with pytest.raises(InvalidInput, match="max_run_duration_seconds"):
        exp.submit(late)
    with pytest.raises(InvalidInput, match="takes a ScriptRunConfig"):
        exp.submit("train.py")
    # names the system cannot look up, an empty dataset path, a wrong type: each was an OSError, ValueError,
    # AttributeError or TypeError from inside (the empty path read the whole working folder as one table)
    from azureml.core import Dataset
    from azureml.core.model import InferenceConfig

    client.models.register("careless-m", tmp_path / "train.py")
    long = "n" * 300
    for call, message in (
            (lambda: exp.submit(ScriptRunConfig(source_directory=long, script="train.py")), "cannot be looked up"),
            (lambda: exp.submit(ScriptRunConfig(source_directory=str(tmp_path / "train.py"), script="train.py")),
             "is a file, not a folder"),
            (lambda: exp.submit(ScriptRunConfig(source_directory=str(tmp_path), script="t\x00.py")),
             "cannot be looked up"),
            (lambda: exp.submit(ScriptRunConfig(source_directory=str(tmp_path), script=1.5)), "needs script="),
            (lambda: Workspace.from_config(path=long), "cannot be looked up"),
            (lambda: Dataset.File.from_files(path=long), "cannot be looked up"),
            (lambda: Dataset.Tabular.from_delimited_files(path=""), "a dataset path is empty"),
            (lambda: Environment.from_pip_requirements("e", "r\x00.txt"), "cannot read requirements file"),
            (lambda: Environment.get(ws, None), "environment name must be text"),
            (lambda: Model.deploy(ws, "careless-svc", [Model(ws, "careless-m")],
                                  InferenceConfig(entry_script="s" * 300 + ".py")), "cannot be looked up"),
            (lambda: Model.deploy(ws, "careless-svc", [Model(ws, "careless-m")], InferenceConfig(entry_script=1.5)),
             "entry_script must be a file name"),
            # a script not written yet was accepted here and said only at the deploy, after the model was staged
            (lambda: InferenceConfig(entry_script="not-written.py"), "no scoring script .*not-written.py.*: write it"),
            (lambda: InferenceConfig(entry_script="train.py", source_directory=1.5),
             "source_directory must be a folder")):
        with pytest.raises(InvalidInput, match=message):
            call()
    for bad in (0, -1, 1.5, "4", True):
        with pytest.raises(InvalidInput, match="max_nodes"):
            AmlCompute.provisioning_configuration(max_nodes=bad)
    with pytest.raises(ComputeTargetException, match="ComputeTargetNotFound"):
        ComputeTarget(workspace=ws, name="gpu-cluster")
    src = ScriptRunConfig(source_directory=str(tmp_path), script="train.py")
    for kwargs, message in (({"max_total_runs": 2.5}, "max_total_runs"), ({"max_total_runs": 0}, "max_total_runs"),
                            ({"primary_metric_goal": "BIGGER"}, "primary_metric_goal")):
        settings = dict(run_config=src, hyperparameter_sampling=RandomParameterSampling({"--lr": choice(1, 2)}),
                        primary_metric_name="acc", primary_metric_goal=PrimaryMetricGoal.MAXIMIZE, max_total_runs=4)
        settings.update(kwargs)
        with pytest.raises(InvalidInput, match=message):
            HyperDriveConfig(**settings)
    for kwargs, message in (({"max_concurrent_runs": 0}, "max_concurrent_runs"),
                            ({"max_duration_minutes": "10"}, "max_duration_minutes='10': give a number above 0"),
                            ({"max_duration_minutes": float("nan")}, "max_duration_minutes")):
        settings = dict(run_config=src, hyperparameter_sampling=RandomParameterSampling({"--lr": choice(1, 2)}),
                        primary_metric_name="acc", primary_metric_goal=PrimaryMetricGoal.MAXIMIZE, max_total_runs=4,
                        **kwargs)
        with pytest.raises(InvalidInput, match=message):
            HyperDriveConfig(**settings)
    from azureml.train.hyperdrive import BanditPolicy, MedianStoppingPolicy, TruncationSelectionPolicy

    for make, message in ((lambda: MedianStoppingPolicy(delay_evaluation="five"), "--delay-evaluation"),
                          (lambda: BanditPolicy(evaluation_interval=1.5, slack_factor=0.1), "--evaluation-interval"),
                          (lambda: BanditPolicy(slack_factor=float("nan")), "slack"),
                          (lambda: TruncationSelectionPolicy(truncation_percentage="20%"), "--truncation-percentage")):
        with pytest.raises(InvalidInput, match=message):  # they were TypeErrors
            make()
    import pandas as pd

    frame = pd.DataFrame({"x": range(20), "y": [0, 1] * 10})
    for kwargs, message in (({"experiment_timeout_hours": "1"}, "experiment_timeout_hours='1'"),  # was 1.1e59 min
                            ({"experiment_timeout_minutes": float("nan")}, "experiment_timeout_minutes"),
                            ({"max_concurrent_iterations": 0}, "max_concurrent_iterations")):
        with pytest.raises(InvalidInput, match=message):
            AutoMLConfig(task="classification", training_data=frame, label_column_name="y", **kwargs)
    with pytest.raises(InvalidInput, match="use choice"):
        RandomParameterSampling({"--lr": [0.1, 1]})
    with pytest.raises(InvalidInput, match="task="):
        AutoMLConfig(task="clasification", training_data=None, X=[[1]], y=[1])
    with pytest.raises(InvalidInput, match="label_column_name"):
        AutoMLConfig(task="regression", training_data=object())
    for port in ("80", 0, 70000, True):
        with pytest.raises(InvalidInput, match="port"):
            LocalWebservice.deploy_configuration(port=port)
    with pytest.raises(InvalidInput, match="give the registered models as a list"):
        Model.deploy(ws, "svc", "model", None, None)
    with pytest.raises(InvalidInput, match="workspace name"):
        Workspace(workspace_name="../elsewhere")
    with pytest.raises(InvalidInput, match="package"):
        Environment("e").python.conda_dependencies.add_pip_package("numpy\n--index-url http://evil")
    from azureml.core import Dataset
    from azureml.core.conda_dependencies import CondaDependencies
    from azureml.core.webservice import AciWebservice, AksWebservice

    assert CondaDependencies.create(pip_packages="scikit-learn", conda_packages="numpy=1.26").pip_packages == \
        ["scikit-learn"]  # one string is one package (it was five one-letter packages)
    with pytest.raises(InvalidInput, match="is not a pip requirement"):
        CondaDependencies.create(pip_packages=["numpy; rm -rf /"])
    for kwargs in ({"cpu_cores": -1}, {"memory_gb": "lots"}, {"cpu_cores": float("nan")}, {"auth_enabled": "false"}):
        with pytest.raises(InvalidInput, match="deploy_configuration"):
            AciWebservice.deploy_configuration(**kwargs)
    with pytest.raises(InvalidInput, match="True or False"):
        AksWebservice.deploy_configuration(auth_enabled="no")
    (tmp_path / "t.csv").write_text("a,b\n1,2\n")
    with pytest.raises(InvalidInput, match="separator"):
        Dataset.Tabular.from_delimited_files(path=str(tmp_path / "t.csv"), separator="")
    open(tmp_path / "m.pkl", "wb").write(b"x")
    with pytest.raises(AttributeError, match="Model.delete is not part of aml-magics' Azure ML v1 layer"):
        Model.register(ws, model_path=str(tmp_path / "m.pkl"), model_name="careless").delete()
    assert len(list(client.runs.list())) == 0  # nothing was submitted


def test_a_misspelt_v1_setting_is_refused_and_an_unused_one_is_said(azureml, client, tmp_path, capsys):
    """The v1 configurations took any other keyword without a word: `auth_enable=True` deployed without a key,
    `experiment_timeout_minute=20` ran AutoML on the default budget, `max_concurent_runs=4` ran one trial at a time,
    `script_param=` dropped the script's arguments — each now names the setting it meant; a v1 setting that means
    nothing here is noted, and v1's older names of an Estimator's files are honoured."""
    import pandas as pd
    from azureml.core import ScriptRunConfig
    from azureml.core.compute import AmlCompute
    from azureml.core.runconfig import RunConfiguration
    from azureml.core.webservice import AciWebservice, AksWebservice
    from azureml.train.automl import AutoMLConfig
    from azureml.train.estimator import Estimator
    from azureml.train.hyperdrive import HyperDriveConfig, PrimaryMetricGoal, RandomParameterSampling, choice

    from azureml.core import Dataset, Model, Workspace

    (tmp_path / "train.py").write_text("print('x')\n")
    (tmp_path / "t.csv").write_text("a;b\n1;2\n")
    df = pd.DataFrame({"a": [1, 2, 3, 4] * 5, "y": [0, 1] * 10})
    src = ScriptRunConfig(source_directory=str(tmp_path), script="train.py")
    sweep = dict(run_config=src, hyperparameter_sampling=RandomParameterSampling({"--lr": choice(0.01, 0.1)}),
                 primary_metric_name="acc", primary_metric_goal=PrimaryMetricGoal.MAXIMIZE, max_total_runs=2)
    for make, meant in (
            (lambda: AciWebservice.deploy_configuration(cpu_cores=1, auth_enable=True), "auth_enabled"),
            (lambda: AutoMLConfig(task="classification", training_data=df, label_column_name="y",
                                  experiment_timeout_minute=20), "experiment_timeout_minutes"),
            (lambda: HyperDriveConfig(**sweep, max_concurent_runs=4), "max_concurrent_runs"),
            (lambda: Estimator(source_directory=str(tmp_path), entry_script="train.py", script_param={"--lr": 1}),
             "script_params"),
            (lambda: AmlCompute.provisioning_configuration(max_node=4), "max_nodes"),
            (lambda: RunConfiguration(conda_dependency=None), "conda_dependencies"),
            (lambda: Dataset.Tabular.from_delimited_files(str(tmp_path / "t.csv"), seperator=";"), "separator"),
            (lambda: Model(Workspace.from_config(), "m", verison=1), "version"),
            (lambda: Workspace(workspace_nme="w"), "workspace_name")):
        with pytest.raises(InvalidInput, match=f"has no setting '.*'; did you mean '{meant}'"):
            make()
    with pytest.raises(InvalidInput, match="primary_metric_name=''"):
        HyperDriveConfig(**{**sweep, "primary_metric_name": ""})
    capsys.readouterr()
    # v1 settings of other meanings go on, said once; v1's private ones and custom_run_id quietly
    AutoMLConfig(task="classification", training_data=df, label_column_name="y", target_lags=3, enable_dnn=True)
    AksWebservice.deploy_configuration(token_auth_enabled=True)
    HyperDriveConfig(**sweep, custom_run_id="mine")
    RunConfiguration(_history_enabled=True)
    out = capsys.readouterr().out
    assert "AutoMLConfig: 'target_lags', 'enable_dnn' are not used here (ignored)" in out
    assert "AksWebservice.deploy_configuration: 'token_auth_enabled' is not used here" in out
    assert "HyperDriveConfig" not in out and "RunConfiguration" not in out
    (tmp_path / "conda.yml").write_text("dependencies:\n  - pip:\n    - tomli-w\n")
    (tmp_path / "req.txt").write_text("tomli\n")
    est = Estimator(source_directory=str(tmp_path), entry_script="train.py",
                    conda_dependencies_file_path=str(tmp_path / "conda.yml"),
                    pip_requirements_file_path=str(tmp_path / "req.txt"))
    assert {"tomli-w", "tomli"} <= set(est.run_config.environment.python.conda_dependencies.pip_packages)


def test_a_damaged_dataset_list_is_never_overwritten(azureml, client, tmp_path):
    from azureml.core import Dataset, Workspace

    ws = Workspace.from_config()
    (tmp_path / "t.csv").write_text("a,b\n1,2\n")
    Dataset.Tabular.from_delimited_files(path=str(tmp_path / "t.csv")).register(ws, "t")
    registry = client.config.path / "v1-datasets.json"
    registry.write_text("{ half written")
    with pytest.raises(InvalidInput, match="not valid JSON"):
        Dataset.Tabular.from_delimited_files(path=str(tmp_path / "t.csv")).register(ws, "u")
    assert registry.read_text() == "{ half written"  # kept for whoever can repair it
    registry.write_text(json.dumps({"t": [{"kind": "TabularDataset", "paths": [str(tmp_path / "t.csv")]}]}))
    assert Dataset.get_by_name(ws, "t").to_pandas_dataframe().to_dict("list") == {"a": [1], "b": [2]}
    with pytest.raises(AmlError, match="dataset 'tt' not found; did you mean 't'"):
        Dataset.get_by_name(ws, "tt")


def test_v1_calls_given_the_wrong_kind_of_value_say_so_in_one_line(azureml, client, tmp_path):
    """A workspace's name where the Workspace goes, a list where a name goes, a file outside relative_root: each was
    an AttributeError, TypeError or ValueError from inside."""
    from azureml.core import Dataset, Datastore, Environment, Experiment, Model, Run, Workspace

    ws = Workspace.from_config()
    run = Experiment(ws, "kinds").start_logging()
    (tmp_path / "f.txt").write_text("x")
    client.models.register("kinds-m", tmp_path / "f.txt")
    store = ws.get_default_datastore()
    for call, message in (
            (lambda: Model.list("ws"), r"Model.list\(workspace\): give the Workspace .* got str 'ws'"),
            (lambda: Environment.list(["ws"]), "Environment.list.workspace.: give the Workspace"),
            (lambda: Run.get("ws", run.id), "Run.get.workspace, run_id.: give the Workspace"),
            (lambda: Datastore.get(ws, ["workspaceblobstore"]), "datastore name must be text, got list"),
            (lambda: Dataset.get_by_name(ws, ["d"]), "dataset name must be text, got list"),
            (lambda: Dataset.get_by_name(ws, "d", version="abc"), "version must be an integer"),  # a ValueError
            (lambda: Dataset.get_by_name(ws, "d", version=1.5), "version must be an integer"),  # was version 1
            (lambda: Environment.get(ws, "e", version=[1]), "version must be an integer"),
            (lambda: Environment.from_pip_requirements("e", ["r.txt"]), "requirements file must be a path, got list"),
            (lambda: run.upload_files(None, None), "names must be a list"),
            (lambda: run.download_files(prefix=["outputs"]), "prefix must be text, got list"),
            (lambda: Model(ws, "kinds-m").download(target_dir=["here"]), "target_dir must be a folder's path"),
            (lambda: client.models.list(tags=3), "tags filter: give"),
            (lambda: Dataset.Tabular.register_pandas_dataframe(None, "workspaceblobstore", "d"),
             "target is a Datastore or .datastore, 'folder'., got 'workspaceblobstore'"),
            (lambda: store.upload_files([str(tmp_path / "f.txt")], relative_root=str(tmp_path / "elsewhere")),
             "is not inside relative_root")):
        with pytest.raises(InvalidInput, match=message):
            call()
    run.complete()


def test_markup_in_v1_names_stays_text(azureml, client):
    from azureml.core import Experiment, Workspace

    ws = Workspace.from_config()
    run = Experiment(ws, "xss").start_logging(display_name="<img src=x onerror=alert(1)>")
    run.log("acc", 1.0)
    run.complete()
    bundle = run._repr_mimebundle_()
    html = bundle.get("text/html") or ""
    assert "<img src=x" not in html and "<img src=x" not in str(bundle.get("application/vnd.jupyter.widget-view+json"))
    assert "&lt;img src=x" in html or run.display_name == "<img src=x onerror=alert(1)>"
    assert run.display_name == "<img src=x onerror=alert(1)>"  # kept as the user typed it: text


def test_beside_a_real_azureml_core_nothing_changes(tmp_path):
    """Where Microsoft's azureml-core is installed, `%aml v1` says so in one line and `import azureml.core` stays
    theirs (a package named azureml.core on sys.path stands in for it here)."""
    (tmp_path / "azureml" / "core").mkdir(parents=True)
    (tmp_path / "azureml" / "core" / "__init__.py").write_text("VERSION = '1.57.0'\nTHEIRS = True\n")
    code = textwrap.dedent("""
        import os, sys
        from aml_magics import v1
        print(v1.install())
        import azureml.core
        print(azureml.core.VERSION, getattr(azureml.core, "THEIRS", False), os.environ.get("AML_MAGICS_V1"))
    """)
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}
    env.pop("AML_MAGICS_V1", None)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("Microsoft's azureml-core is installed") and len(lines) == 3
    assert lines[1:] == ["False", "1.57.0 True None"]


def test_the_v1_layer_is_light_and_stays_out_of_processes_that_did_not_ask(tmp_path):
    code = textwrap.dedent("""
        import sys, time
        t = time.perf_counter()
        from aml_magics import v1
        v1.install(quiet=True)
        import azureml.core
        from azureml.core import Workspace, Experiment, Run, ScriptRunConfig
        took = time.perf_counter() - t
        heavy = sorted(m for m in ("pandas", "nbformat", "plotly", "jsonschema", "azure.identity", "sklearn", "optuna")
                       if m in sys.modules)
        print(heavy, took < 3)
    """)
    env = {k: v for k, v in os.environ.items() if k != "AML_MAGICS_V1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
    assert out.stdout.strip() == "[] True", out.stderr
    # a process started without the flag: `import azureml` is not ours
    out = subprocess.run([sys.executable, "-c", "import aml_magics.runtime.launch, importlib.util; "
                          "print(importlib.util.find_spec('azureml'))"], capture_output=True, text=True, timeout=60,
                         env=env, cwd=tmp_path)
    assert out.stdout.strip() == "None", out.stderr


def test_the_magic_switches_the_v1_names_on_and_off(ip, capsys):
    try:
        ip.run_line_magic("aml", "v1")
        assert "now run on aml-magics' local workspace" in capsys.readouterr().out
        ip.run_cell("from azureml.core import Workspace\nws = Workspace.from_config()")
        assert ip.user_ns["ws"].client.config.path == ip.magics_manager.registry["AmlMagics"].client.config.path
        ip.run_line_magic("aml", "v1 off")
        assert "no longer aml-magics" in capsys.readouterr().out
        result = ip.run_cell("import azureml.core")
        assert isinstance(result.error_in_exec, ModuleNotFoundError)
    finally:
        v1.uninstall()
        v1.set_client(None)


def test_an_environments_variables_reach_the_run(azureml, client, tmp_path):
    """``env.environment_variables = {...}`` (v1 tutorials set flags this way) — the run sees them; before, they were
    dropped. Our own variables (the v1 flag) are not overridden by them."""
    from azureml.core import Environment, Experiment, ScriptRunConfig, Workspace

    (tmp_path / "env.py").write_text("import os\nfrom azureml.core import Run\nrun = Run.get_context()\n"
                                     "run.tag('flag', os.environ.get('MY_FLAG', 'missing'))\n"
                                     "run.tag('v1', os.environ.get('AML_MAGICS_V1', 'missing'))\n")
    env = Environment("flagged")
    env.environment_variables = {"MY_FLAG": "on", "AML_MAGICS_V1": "0", "RETRIES": 3}
    run = Experiment(Workspace.from_config(), "v1-env-vars").submit(
        ScriptRunConfig(source_directory=str(tmp_path), script="env.py", environment=env))
    run.wait_for_completion()
    assert run.get_status() == "Completed", client.runs.get(run.id).error
    assert run.get_tags()["flag"] == "on" and run.get_tags()["v1"] == "1"


def test_run_log_takes_v1s_third_argument_as_a_description(azureml, client):
    from azureml.core import Experiment, Workspace

    run = Experiment(Workspace.from_config(), "order").start_logging()
    run.log("acc", 0.5, "accuracy on the holdout")  # v1: (name, value, description)
    run.log("acc", 0.7, step=5)
    with pytest.raises(InvalidInput, match="third argument is a description"):
        run.log("acc", 0.9, 3)  # a v1 user's step in the wrong place: one clear line, nothing stored
    run.complete()
    assert run.get_metrics()["acc"] == [0.5, 0.7]


def test_a_v1_setup_cell_and_log_download_run_on(azureml, tmp_path, monkeypatch, capsys):
    """``ws.write_config()`` — in v1 tutorials' setup cells — ended the notebook with NotSupported on the local
    workspace (it needs no config.json): a note, nothing written. ``run.get_all_logs()`` was not there at all."""
    from azureml.core import Experiment, Workspace

    monkeypatch.chdir(tmp_path)
    ws = Workspace.from_config()
    assert ws.write_config() is None and not (tmp_path / ".azureml").exists()
    assert "write_config(): nothing written — the local workspace needs no config.json" in capsys.readouterr().out
    run = Experiment(ws, "logs").start_logging()
    print("hello from the run")
    run.complete()
    paths = run.get_all_logs()
    assert paths == [str(Path("assets") / run.id / "user_logs" / "std_log.txt")]
    assert (tmp_path / paths[0]).read_text() == run.get_logs()
    assert run.get_all_logs(destination="there") == [str(Path("there") / "user_logs" / "std_log.txt")]
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidInput, match="exists and is not a folder"):
        run.get_all_logs(destination="file")


def test_get_metrics_takes_v1s_recursive_and_a_name_never_logged(azureml):
    """v1 notebooks read a pipeline's or a sweep's metrics with ``run.get_metrics(recursive=True)`` (run id → its
    metrics): it was a TypeError; ``get_metrics("name")`` of a name the run never logged is v1's ``{}`` (it raised
    NotFound, ending the notebook where v1 code tests ``if "acc" in metrics``)."""
    from azureml.core import Experiment, Workspace

    run = Experiment(Workspace.from_config(), "recursive").start_logging()
    run.log("loss", 0.5)
    child = run.child_run()
    child.log("acc", 0.9)
    grandchild = child.child_run()
    grandchild.log("acc", 0.8)
    silent = run.child_run()  # logged nothing: not listed, as v1
    for r in (grandchild, child, silent, run):
        r.complete()
    assert run.get_metrics(recursive=True) == {run.id: {"loss": 0.5}, child.id: {"acc": 0.9},
                                               grandchild.id: {"acc": 0.8}}
    assert run.get_metrics("acc", recursive=True) == {child.id: {"acc": 0.9}, grandchild.id: {"acc": 0.8}}
    assert run.get_metrics("acc") == {} and silent.get_metrics() == {} and child.get_metrics("acc") == {"acc": 0.9}
    with pytest.raises(InvalidInput, match="get_metrics has no setting 'recursiv'; did you mean 'recursive'"):
        run.get_metrics(recursiv=True)


def test_a_run_used_in_a_with_block_ends_with_it(azureml, client):
    """``with exp.start_logging() as run:`` (v1's Run, like MLflow's ``start_run``, is a context manager) raised
    TypeError: the run ends with the block — Completed, or Failed with the exception, which goes on — unless the
    block ended it itself."""
    from azureml.core import Experiment, Workspace

    exp = Experiment(Workspace.from_config(), "with-block")
    with exp.start_logging() as run:
        run.log("acc", 0.5)
    assert run.get_status() == "Completed" and run.get_metrics() == {"acc": 0.5}
    with pytest.raises(ValueError, match="boom"):
        with exp.start_logging() as failed:
            failed.log("acc", 0.1)
            raise ValueError("boom")
    info = client.runs.get(failed.id)
    assert info.status == "Failed" and info.error == "ValueError: boom" and failed.get_metrics() == {"acc": 0.1}
    with pytest.raises(KeyError):
        with client.runs.start_logging("with-block") as done:  # the client's Run too
            done.complete()
            raise KeyError("after")
    assert client.runs.get(done.id).status == "Completed"  # it ended itself first


def test_v1_run_methods_tutorials_call_keep_what_they_are_given(azureml, client, tmp_path, capsys):
    """The rest of v1's Run a tutorial calls — properties, folders of files, AutoML's chart metrics — kept and read
    back; a careless value is one line that keeps nothing, and a name v1 has but this layer does not says so."""
    import json

    from azureml.core import Experiment, Workspace

    run = Experiment(Workspace.from_config(), "v1-run-extras").start_logging()
    run.add_properties({"dataset": "digits", "rows": 1797})
    assert run.get_properties()["dataset"] == "digits" and run.get_properties()["rows"] == "1797"
    (tmp_path / "report" / "plots").mkdir(parents=True)
    (tmp_path / "report" / "summary.txt").write_text("ok\n")
    (tmp_path / "report" / "plots" / "roc.csv").write_text("fpr,tpr\n0,0\n")
    assert run.upload_folder("outputs/report", str(tmp_path / "report")) == \
        ["outputs/report/plots/roc.csv", "outputs/report/summary.txt"]
    with pytest.raises(InvalidInput, match="is not a file .nothing was uploaded"):
        run.upload_files(["outputs/a.txt", "outputs/b.txt"], [str(tmp_path / "report" / "summary.txt"), "/nope"])
    with pytest.raises(InvalidInput, match="2 names for 1 paths"):
        run.upload_files(["outputs/a.txt", "outputs/b.txt"], [str(tmp_path / "report" / "summary.txt")])
    with pytest.raises(InvalidInput, match="is not a folder"):
        run.upload_folder("outputs/x", str(tmp_path / "missing"))
    matrix = {"schema_type": "confusion_matrix", "schema_version": "1.0.0",
              "data": {"class_labels": ["0", "1"], "matrix": [[5, 1], [0, 7]]}}
    run.log_confusion_matrix("confusion", matrix)
    run.log_accuracy_table("accuracy_table", json.dumps({"schema_type": "accuracy_table", "data": {"n": 2}}))
    for bad, message in (("{not json", "not JSON"), ([[5, 1]], "give a dict")):
        with pytest.raises(InvalidInput, match=message):
            run.log_residuals("residuals", bad)
    with pytest.raises(AttributeError, match="Run.get_snapshot_id is not part of aml-magics' Azure ML v1 layer"):
        run.get_snapshot_id()
    assert not hasattr(run, "_repr_latex_")
    run.complete()
    metrics = run.get_metrics()
    assert metrics["confusion"] == matrix and metrics["accuracy_table"]["data"] == {"n": 2}
    assert "residuals" not in metrics
    assert "outputs/a.txt" not in run.get_file_names()  # the refused upload kept nothing
    got = run.download_files(prefix="outputs/report", output_directory=str(tmp_path / "down"))
    assert sorted(got) == [str(tmp_path / "down" / "outputs" / "report" / "plots" / "roc.csv"),
                           str(tmp_path / "down" / "outputs" / "report" / "summary.txt")]
    got = run.download_files(prefix="outputs/report", output_directory=str(tmp_path / "flat"), append_prefix=False)
    assert (tmp_path / "flat" / "plots" / "roc.csv").is_file() and (tmp_path / "flat" / "summary.txt").is_file()
    with pytest.raises(NotFound, match="no files under 'outputs/nope'"):
        run.download_files(prefix="outputs/nope", output_directory=str(tmp_path / "none"))
    from azureml.core import Run  # a script's code tried in a cell, outside any run: the offline run has the same names

    offline = Run.get_context()
    offline.add_properties({"x": 1})
    offline.log_confusion_matrix("cm", {"schema_type": "cm"})
    printed = capsys.readouterr().out
    assert "[offline run] params {'x': '1'}" in printed and "[offline run] cm table" in printed


def test_get_runs_and_get_children_filter_by_tags_and_properties(azureml, client, tmp_path):
    """`exp.get_runs(tags={"best": "yes"})` and `run.get_children(tags=…, properties=…)` took the filters and gave
    back every run; a misspelt keyword of a call that takes others (`register_model(tag=…)`) was dropped too."""
    from azureml.core import Experiment, Workspace

    exp = Experiment(Workspace.from_config(), "v1-filters")
    parent = exp.start_logging()
    kept = []
    for i in range(3):
        child = parent.child_run(name=f"c{i}")
        child.tag("fold", str(i))
        if i == 1:
            child.tag("best")
            child.add_properties({"model": "hgb"})
            kept.append(child.id)
        child.complete()
    parent.tag("best", "yes")
    parent.complete()
    exp.start_logging().complete()
    assert [r.id for r in exp.get_runs(tags={"best": "yes"})] == [parent.id]
    assert [r.id for r in exp.get_runs(tags="best")] == [parent.id]
    assert [r.id for r in exp.get_runs(tags={"best": "no"})] == []
    assert len(list(exp.get_runs())) == 2
    assert [r.id for r in parent.get_children(tags="best")] == kept
    assert [r.id for r in parent.get_children(tags={"fold": 1})] == kept  # a number's value as its text
    assert [r.id for r in parent.get_children(properties={"model": "hgb"})] == kept
    assert len(list(parent.get_children())) == 3
    with pytest.raises(InvalidInput, match=r"get_runs\(tags=…\) takes a name or a dict"):
        exp.get_runs(tags=["best"])
    (tmp_path / "m.pkl").write_bytes(b"x")
    run = exp.start_logging()
    run.upload_file("outputs/m.pkl", str(tmp_path / "m.pkl"))
    for call, meant in ((lambda: run.register_model("m", "outputs/m.pkl", tag={"a": "1"}), "tags"),
                        (lambda: exp.start_logging(display_nme="x"), "display_name"),
                        (lambda: parent.get_children(recursiv=True), "recursive")):
        with pytest.raises(InvalidInput, match=f"did you mean '{meant}'"):
            call()
    assert not list(client.models.list(name="m"))  # the refused registration kept nothing
    assert run.register_model("m", "outputs/m.pkl", model_framework="ScikitLearn").version == 1  # v1's, not used
    run.complete()


def test_run_get_finds_a_run_by_its_id_and_a_bad_version_is_one_line(azureml, client):
    from azureml.core import Experiment, Model, Run, Workspace

    ws = Workspace.from_config()
    run = Experiment(ws, "fetched").start_logging()
    run.log("acc", 0.5)
    run.complete()
    got = Run.get(ws, run.id)  # v1's static Run.get(workspace, run_id)
    assert isinstance(got, Run) and got.id == run.id and got.experiment.name == "fetched"
    assert got.get_metrics() == {"acc": 0.5} and Run.get(ws, "last").id == run.id
    with pytest.raises(NotFound, match="not found"):
        Run.get(ws, "fetched_1700000000_deadbeef")
    with pytest.raises(NotFound, match="run '5' not found"):  # careless: a number
        Run.get(ws, 5)
    with pytest.raises(InvalidInput, match="lone surrogate"):  # hostile: no stored id can equal it
        Run.get(ws, "\udcff")
    with pytest.raises(InvalidInput, match="must be an integer"):
        Model(ws, "m", version="x")  # was int()'s ValueError
    with pytest.raises(InvalidInput, match="must be an integer"):
        Model(ws, id="m:latest")


def test_two_notebooks_registering_datasets_at_once_lose_none(azureml, client, tmp_path):
    """Each of two processes registers 15 versions of a dataset at the same time: all 30 are kept. Names that are
    not text (empty, a lone surrogate) are refused in one line."""
    from azureml.core import Dataset, Workspace

    (tmp_path / "t.csv").write_text("a\n1\n")
    code = textwrap.dedent(f"""
        from aml_magics import v1
        from aml_magics.core.client import Client
        v1.install(client=Client({str(client.config.path)!r}), quiet=True)
        from azureml.core import Dataset, Workspace
        ws = Workspace.from_config()
        for i in range(15):
            Dataset.Tabular.from_delimited_files(path={str(tmp_path / "t.csv")!r}).register(
                ws, "shared", create_new_version=True)
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    for p in procs:
        assert p.wait(timeout=120) == 0, p.stderr.read()
    ws = Workspace.from_config()
    assert Dataset.get_by_name(ws, "shared").version == 30
    for bad in ("", "  ", "x\ud800"):
        with pytest.raises(InvalidInput, match="dataset name"):
            Dataset.Tabular.from_delimited_files(path=str(tmp_path / "t.csv")).register(ws, bad)


@pytest.mark.slow
def test_continue_experiment_after_a_kernel_restart(azureml, client, tmp_path, monkeypatch):
    """continue_experiment() when the AutoMLConfig object is gone (a restarted kernel): the workspace keeps the
    run's settings and training data, so the continued run trains on the same data with the same settings."""
    import pandas as pd
    from sklearn.datasets import load_diabetes

    from aml_magics.v1 import automl as v1_automl

    monkeypatch.chdir(tmp_path)
    from azureml.core import Experiment, Run, Workspace
    from azureml.train.automl import AutoMLConfig

    X, y = load_diabetes(return_X_y=True, as_frame=True)
    config = AutoMLConfig(task="regression", primary_metric="r2_score", X=X, y=pd.Series(y, name="progress"),
                          iterations=2, n_cross_validations=3, allowed_models=["LightGBM", "ElasticNet"],
                          enable_voting_ensemble=False, label_column_name="progress")
    first = Experiment(Workspace.from_config(), "v1-continue").submit(config)
    first.wait_for_completion()
    v1_automl._configs.clear()  # what a kernel restart leaves: no AutoMLConfig in memory
    again = Run(first.experiment, first.id)
    second = again.continue_experiment(iterations=3)
    second.wait_for_completion()
    assert second.get_status() == "Completed"
    assert second.get_tags()["continued_from"] == first.id
    settings = client.runs.get(second.id).spec["settings"]
    before = client.runs.get(first.id).spec["settings"]
    assert settings["max_trials"] == 3
    for key in ("task", "primary_metric", "label", "validation", "learners", "ensemble", "featurization"):
        assert settings[key] == before[key], key
    _, model = second.get_output()
    assert model.predict(X.head(3)).shape == (3,)

    with pytest.raises(NotSupported, match="submit the AutoMLConfig again"):  # not an AutoML run
        (tmp_path / "s.py").write_text("print(1)\n")
        from azureml.core import ScriptRunConfig

        plain = Experiment(Workspace.from_config(), "v1-continue").submit(
            ScriptRunConfig(source_directory=str(tmp_path), script="s.py"))
        plain.wait_for_completion()
        plain.continue_experiment(iterations=1)


def test_dataset_paths_take_patterns_and_validate_at_once(azureml, client, tmp_path):
    """(datastore, "weather/2019/*.csv") as Microsoft's v1 docs write it: the matching files, locally, from a datastore
    and as a run's named input; validate=True (v1's default) says at once that a path is missing."""
    from azureml.core import Dataset, Experiment, ScriptRunConfig, Workspace

    ws = Workspace.from_config()
    store = ws.get_default_datastore()
    for year, months in (("2018", (11, 12)), ("2019", (1, 2, 3))):
        (tmp_path / "weather" / year).mkdir(parents=True)
        for m in months:
            (tmp_path / "weather" / year / f"{m}.csv").write_text(f"month,temp\n{m},{m * 2}\n")
    (tmp_path / "weather" / "2019" / "notes.txt").write_text("not a table\n")
    store.upload(src_dir=str(tmp_path / "weather"), target_path="weather", overwrite=True)

    local = Dataset.Tabular.from_delimited_files(path=str(tmp_path / "weather" / "2019" / "*.csv"))
    assert local.to_pandas_dataframe()["month"].tolist() == [1, 2, 3]
    mixed = Dataset.Tabular.from_delimited_files(path=[(store, "weather/2018/12.csv"), (store, "weather/2019/*.csv")])
    assert mixed.to_pandas_dataframe()["temp"].tolist() == [24, 2, 4, 6]
    files = Dataset.File.from_files(path=(store, "weather/**/*.csv"))
    assert files.to_path() == ["/2018/11.csv", "/2018/12.csv", "/2019/1.csv", "/2019/2.csv", "/2019/3.csv"]
    got = files.download(str(tmp_path / "down"))
    assert len(got) == 5 and (tmp_path / "down" / "2018" / "11.csv").read_text().startswith("month")
    with pytest.raises(InvalidInput, match="exists; pass overwrite=True"):
        files.download(str(tmp_path / "down"))

    for path, message in ((str(tmp_path / "nope.csv"), "does not exist; check the path, or pass validate=False"),
                          ((store, "weather/2019/*.parquet"), "matches no file"),
                          ((store, "weather/2020/*.csv"), "nothing at that datastore path"),
                          ((store, "weather/2019/missing.csv"), "validate=False"),
                          (str(tmp_path / "weather" / "*" / ".." / ".." / "x"), "cannot climb out")):
        with pytest.raises((NotFound, InvalidInput), match=message):
            Dataset.Tabular.from_delimited_files(path=path)
    (tmp_path / "data[1].csv").write_text("a\n7\n")  # a name that looks like a pattern is itself when it exists
    assert Dataset.Tabular.from_delimited_files(path=str(tmp_path / "data[1].csv")).to_pandas_dataframe()["a"][0] == 7
    store.upload_files([str(tmp_path / "data[1].csv")], target_path="odd", overwrite=True)  # so in a datastore
    odd = Dataset.Tabular.from_delimited_files(path=(store, "odd/data[1].csv"))
    assert odd.to_pandas_dataframe()["a"].tolist() == [7] and v1.api._pattern_of(odd) == ""
    later = Dataset.Tabular.from_delimited_files(path=str(tmp_path / "later.csv"), validate=False)
    (tmp_path / "later.csv").write_text("a\n1\n")
    assert later.to_pandas_dataframe()["a"].tolist() == [1]

    registered = Dataset.Tabular.from_delimited_files(path=(store, "weather/2019/*.csv")).register(ws, "weather19")
    assert Dataset.get_by_name(ws, "weather19").to_pandas_dataframe()["month"].tolist() == [1, 2, 3]
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "read.py").write_text(
        "import sys\nfrom azureml.core import Run\nrun = Run.get_context()\n"
        "df = run.input_datasets['weather'].to_pandas_dataframe()\n"
        "run.log('rows', len(df))\nrun.log('months', float(df['month'].sum()))\n")
    run = Experiment(ws, "v1-patterns").submit(ScriptRunConfig(
        source_directory=str(tmp_path / "src"), script="read.py",
        arguments=["--data", registered.as_named_input("weather")]))
    run.wait_for_completion()
    assert run.get_status() == "Completed", client.runs.get(run.id).error
    assert run.get_metrics() == {"rows": 3, "months": 6.0}


def test_a_dataset_of_several_files_reaches_a_script_as_one_folder(azureml, client, tmp_path):
    """The v1 tutorials' way: ``arguments=['--data-folder', files.as_mount()]`` for a dataset of several files and the
    script globs inside that folder. A local pattern's matches (subfolders kept), several local files, a named input
    read as a table; the same data copied once however often it is submitted; two files that would take one name,
    and several web files, refused in one line before anything runs."""
    import time

    from azureml.core import Dataset, Experiment, ScriptRunConfig, Workspace

    ws = Workspace.from_config()
    for year, months in (("2018", (11, 12)), ("2019", (1, 2))):
        (tmp_path / "weather" / year).mkdir(parents=True)
        for m in months:
            (tmp_path / "weather" / year / f"{m}.csv").write_text(f"month,temp\n{m},{m * 2}\n")
    (tmp_path / "weather" / "2019" / "notes.txt").write_text("not a table\n")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "walk.py").write_text(textwrap.dedent("""
        import glob, os, sys
        from azureml.core import Run
        run = Run.get_context()
        folder = sys.argv[sys.argv.index('--data-folder') + 1]
        found = sorted(os.path.relpath(p, folder) for p in glob.glob(os.path.join(folder, '**/*.csv'), recursive=True))
        run.log_list('found', [len(found)])
        run.tag('files', ' '.join(found))
        run.tag('entries', str(len(os.listdir(folder))))
        if '--named' in sys.argv:
            df = run.input_datasets['weather'].to_pandas_dataframe()
            run.log('temps', float(df['temp'].sum()))
    """))
    matches = Dataset.File.from_files(path=str(tmp_path / "weather" / "**" / "*.csv"))
    exp = Experiment(ws, "v1-folder-argument")

    def submit(*args):
        run = exp.submit(ScriptRunConfig(source_directory=str(tmp_path / "src"), script="walk.py",
                                         arguments=list(args)))
        run.wait_for_completion()
        assert run.get_status() == "Completed", client.runs.get(run.id).error
        return run

    run = submit("--data-folder", matches.as_mount())
    assert run.get_tags()["files"] == "2018/11.csv 2018/12.csv 2019/1.csv 2019/2.csv"
    assert run.get_tags()["entries"] == "2"  # the folders 2018 and 2019: notes.txt did not match
    stage = Path(client.datastores.resolve_input(f"datastore:{client.datastores.default().name}/azureml/datasets"))
    staged = [p for p in stage.iterdir() if p.is_dir()]
    assert len(staged) == 1
    first = (staged[0] / "2018" / "11.csv").stat().st_mtime_ns
    time.sleep(0.05)
    submit("--data-folder", matches.as_mount())  # the same data: not copied again
    assert (staged[0] / "2018" / "11.csv").stat().st_mtime_ns == first

    pair = Dataset.Tabular.from_delimited_files(path=[str(tmp_path / "weather" / "2019" / "1.csv"),
                                                      str(tmp_path / "weather" / "2019" / "2.csv")])
    run = submit("--data-folder", pair.as_named_input("weather"), "--named")
    assert run.get_tags()["files"] == "1.csv 2.csv"
    assert run.get_metrics()["temps"] == 6.0

    one = Dataset.File.from_files(path=str(tmp_path / "weather" / "2019" / "1.csv"))
    assert ScriptRunConfig(source_directory=str(tmp_path / "src"), script="walk.py", arguments=["--data-folder", one]) \
        ._submission(exp).args[1] == str(tmp_path / "weather" / "2019" / "1.csv")  # one file: its own path

    runs_before = len(list(client.runs.list(experiment="v1-folder-argument")))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "1.csv").write_text("month,temp\n1,3\n")
    twins = Dataset.File.from_files(path=[str(tmp_path / "weather" / "2019" / "1.csv"),
                                          str(tmp_path / "other" / "1.csv")])
    with pytest.raises(InvalidInput, match="would both be '1.csv'"):
        exp.submit(ScriptRunConfig(source_directory=str(tmp_path / "src"), script="walk.py",
                                   arguments=["--data-folder", twins]))
    web = Dataset.File.from_files(path=["https://example.invalid/a.gz", "https://example.invalid/b.gz"],
                                  validate=False)
    with pytest.raises(NotSupported, match="download them first"):
        exp.submit(ScriptRunConfig(source_directory=str(tmp_path / "src"), script="walk.py",
                                   arguments=["--data-folder", web]))
    assert len(list(client.runs.list(experiment="v1-folder-argument"))) == runs_before  # refused: nothing ran


def test_a_workspace_name_that_does_not_exist_says_it_is_new(azureml, tmp_path, monkeypatch, capsys):
    """v1's ``Workspace.get("typo")`` raised; here it makes a local workspace (tutorials name one before creating
    it) — and says it is new and empty, so a typo shows at once instead of as a workspace without the user's runs."""
    from azureml.core import Workspace

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    (tmp_path / "aml-magics" / "workspaces" / "existing-ws").mkdir(parents=True)
    Workspace.get("existing-ws")
    assert "is a local workspace here" in capsys.readouterr().out
    ws = Workspace.get("tpyo-ws")
    out = capsys.readouterr().out
    assert "workspace 'tpyo-ws' did not exist: it is a new, empty local workspace" in out
    assert str(tmp_path / "aml-magics" / "workspaces" / "tpyo-ws") in out and ws.name == "tpyo-ws"


def test_datastore_download_keeps_each_blobs_whole_path_as_v1_does(azureml, tmp_path):
    from azureml.core import Workspace

    ds = Workspace.from_config().get_default_datastore()
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "train.csv").write_text("x,y\n1,2\n")
    ds.upload(src_dir=str(tmp_path / "src"), target_path="data/tables", show_progress=False)
    assert ds.download(str(tmp_path / "down"), prefix="data/tables", show_progress=False) == 1
    assert (tmp_path / "down" / "data" / "tables" / "train.csv").read_text() == "x,y\n1,2\n"


def test_a_damaged_azure_config_is_one_line_not_the_local_workspace(azureml, client, tmp_path, monkeypatch):
    """A config.json meant for Azure ML but cut short or missing a key made ``Workspace.from_config()`` return the
    local workspace without a word — the notebook then trained and registered models locally while its user believed
    them on Azure. Now it is one line naming the file and what to do; a config.json of another tool (no Azure ML key
    in it) still means the local workspace."""
    from azureml.core import Workspace

    monkeypatch.chdir(tmp_path)
    config = tmp_path / "config.json"
    for text, message in (('{"subscription_id": "s", "resource_group": "rg", "workspace_name": "w"', "Expecting ','"),
                          ('{"subscription_id": "s", "workspace_name": "w"}', "lacks resource_group"),
                          ('{"Scope": 5}', "'Scope' is not an Azure ML workspace resource id")):
        config.write_text(text)
        with pytest.raises(InvalidInput, match=f"{message}.*(or remove it to use the local workspace)") as caught:
            Workspace.from_config()
        assert str(config) in str(caught.value) and "\n" not in str(caught.value)
    for text in ('["a", "list"]', '{"editor.fontSize": 12}', "not json at all"):
        config.write_text(text)
        assert Workspace.from_config().client.config.path == client.config.path
