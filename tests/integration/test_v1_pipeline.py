"""A v1 pipeline notebook's code, unchanged, on the local workspace: PythonScriptStep, PipelineData,
OutputFileDatasetConfig, ParallelRunStep, allow_reuse, exp.submit(pipeline), get_steps / find_step_run."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from aml_magics import v1
from aml_magics.core.errors import InvalidInput

PREP = """
import argparse, os
import numpy as np
from azureml.core import Run
from sklearn.datasets import load_digits
p = argparse.ArgumentParser()
p.add_argument("--out")
p.add_argument("--rows", type=int)
a = p.parse_args()
X, y = load_digits(return_X_y=True)
np.save(os.path.join(a.out, "X.npy"), X[:a.rows])
np.save(os.path.join(a.out, "y.npy"), y[:a.rows])
Run.get_context().log("rows", a.rows)
"""

TRAIN = """
import argparse, os, joblib
import numpy as np
from azureml.core import Run
from sklearn.linear_model import LogisticRegression
p = argparse.ArgumentParser()
p.add_argument("--data")
p.add_argument("--model")
a = p.parse_args()
X, y = np.load(os.path.join(a.data, "X.npy")), np.load(os.path.join(a.data, "y.npy"))
m = LogisticRegression(max_iter=3000).fit(X, y)
joblib.dump(m, os.path.join(a.model, "model.pkl"))
run = Run.get_context()
run.log("accuracy", m.score(X, y))
run.register_model("v1-pipe-digits", model_path=os.path.join(a.model, "model.pkl"))
"""

SCORE = """
import os
import numpy as np
from azureml.core.model import Model

def init():
    global model
    import joblib
    model = joblib.load(Model.get_model_path("v1-pipe-digits"))

def run(mini_batch):
    return [f"{os.path.basename(f)} {model.predict(np.load(f).reshape(1, -1))[0]}" for f in mini_batch]
"""


from .test_v1 import azureml  # noqa: F401,E402  (the v1 names on this test's workspace, taken away after)


def test_a_v1_pipeline_with_parallel_run_step_runs_and_is_reused(azureml, client, project, tmp_path):
    from azureml.core import Dataset, Environment, Experiment, Workspace
    from azureml.core.runconfig import RunConfiguration
    from azureml.data import OutputFileDatasetConfig
    from azureml.pipeline.core import Pipeline, PipelineData, PipelineParameter
    from azureml.pipeline.steps import ParallelRunConfig, ParallelRunStep, PythonScriptStep
    from sklearn.datasets import load_digits

    (project / "prep.py").write_text(PREP)
    (project / "train.py").write_text(TRAIN)
    (project / "scoring").mkdir()
    (project / "scoring" / "batch_score.py").write_text(SCORE)
    X, _ = load_digits(return_X_y=True)
    images = tmp_path / "images"
    images.mkdir()
    for i in range(30):
        np.save(images / f"img_{i:02d}.npy", X[i])

    ws = Workspace.from_config()
    ds = ws.get_default_datastore()
    ds.upload(str(images), target_path="digits/images", overwrite=True, show_progress=False)
    image_ds = Dataset.File.from_files(path=(ds, "digits/images/"))
    env = Environment("pipe-env")
    rc = RunConfiguration()
    rc.environment = env
    cleaned = OutputFileDatasetConfig(name="cleaned")
    model_dir = PipelineData("model_dir", datastore=ds)
    scores = PipelineData("scores", datastore=ds)
    rows = PipelineParameter("rows", default_value=400)
    prep = PythonScriptStep(name="prep data", script_name="prep.py", arguments=["--out", cleaned, "--rows", rows],
                            compute_target="local", runconfig=rc, source_directory=".", allow_reuse=True)
    train = PythonScriptStep(name="train", script_name="train.py",
                             arguments=["--data", cleaned.as_input("data"), "--model", model_dir],
                             outputs=[model_dir], compute_target="local", source_directory=".")
    score_cfg = ParallelRunConfig(source_directory="scoring", entry_script="batch_score.py", mini_batch_size="4",
                                  error_threshold=2, output_action="append_row", environment=env,
                                  compute_target="local", node_count=1, process_count_per_node=2)
    batch = ParallelRunStep(name="batch score", parallel_run_config=score_cfg,
                            inputs=[image_ds.as_named_input("images")], output=scores, allow_reuse=True)
    batch.run_after(train)  # the model it loads is registered by train

    pipeline = Pipeline(workspace=ws, steps=[batch])  # the steps it depends on come along (resolve_closure)
    assert "prep data" in repr(pipeline) and pipeline.validate() == []
    run = Experiment(ws, "v1-pipeline").submit(pipeline)
    run.wait_for_completion(show_output=False)
    assert run.get_status() == "Completed", client.runs.get_logs(run.id)
    steps = run.get_steps()
    assert [s.get_details()["runId"] for s in steps] == [s.id for s in steps] and len(steps) == 3
    train_run = run.find_step_run("train")[0]
    assert train_run.get_metrics()["accuracy"] > 0.9
    model = client.models.get("v1-pipe-digits")
    assert model.run_id == train_run.id, "the registered model points to its step"
    batch_run = run.find_step_run("batch score")[0]
    out = client.runs.local_file(batch_run.id, "outputs/parallel_run_step.txt")
    lines = Path(out).read_text().splitlines()
    assert [line.split()[0] for line in lines] == [f"img_{i:02d}.npy" for i in range(30)]
    assert client.runs.get(batch_run.id).parent_run_id == run.id

    again = pipeline.submit("v1-pipeline")
    again.wait_for_completion()
    reused = {client.runs.get(s.id).display_name for s in again.get_steps()
              if client.runs.get(s.id).tags.get("pipeline.reused_from")}
    assert reused == {"prep data", "train", "batch score"}
    fresh = pipeline.submit("v1-pipeline", pipeline_parameters={"rows": 500})
    fresh.wait_for_completion()
    assert not any(client.runs.get(s.id).tags.get("pipeline.reused_from") for s in fresh.get_steps()), \
        "a changed parameter reruns prep, and everything below reads a changed input"


def test_v1_pipeline_mistakes_get_one_line(azureml, client, project):
    from azureml.core import Workspace
    from azureml.pipeline.core import Pipeline, PipelineData
    from azureml.pipeline.steps import ParallelRunConfig, PythonScriptStep

    ws = Workspace.from_config()
    orphan = PipelineData("nobody_writes_me")
    (project / "a.py").write_text("print(1)\n")
    step = PythonScriptStep(script_name="a.py", arguments=["--x", orphan], inputs=[orphan], source_directory=".")
    with pytest.raises(InvalidInput, match="no step of the pipeline writes"):
        Pipeline(ws, steps=[step]).validate()
    missing = PythonScriptStep(script_name="nope.py", source_directory=".")
    with pytest.raises(InvalidInput, match="no script 'nope.py'"):
        Pipeline(ws, steps=[missing]).validate()
    for outside in ("/etc/passwd", "../a.py"):  # /etc/passwd ran as the step's Python; ../ failed in the run
        with pytest.raises(InvalidInput, match="must be a file inside source_directory"):
            Pipeline(ws, steps=[PythonScriptStep(script_name=outside, source_directory=".")]).validate()
    with pytest.raises(InvalidInput, match="is a list"):
        PythonScriptStep(script_name="a.py", source_directory=".", arguments={"--x": 1})
    assert PythonScriptStep(script_name="a.py", source_directory=".", arguments="--x 1").arguments == ["--x", "1"]
    with pytest.raises(InvalidInput, match="entry_script"):
        ParallelRunConfig(mini_batch_size="1")
    # the results file was written where its name pointed: ../../x.txt outside the run; and int("two") raised ValueError
    for kwargs, message in (({"append_row_file_name": "../../x.txt"}, "without folders"),
                            ({"append_row_file_name": "x.json"}, "end it in"),
                            ({"node_count": "two"}, r"node_count\) must be an integer"),
                            ({"error_threshold": -5}, r"error_threshold\) must be between -1"),
                            ({"run_max_try": 1.5}, r"run_max_try\) must be an integer"),
                            ({"process_count_per_node": 0}, r"process_count_per_node\) must be between 1")):
        with pytest.raises(InvalidInput, match=message):
            ParallelRunConfig(entry_script="batch_score.py", mini_batch_size="1", **kwargs)
    assert not client.runs.list().infos
    assert os.environ.get(v1.ENV_FLAG) == "1"


def test_a_step_argument_that_is_a_local_dataset_reaches_the_script_as_its_data(azureml, client, project):
    """A PythonScriptStep's argument that is a dataset of local files: one file arrives as its path and a pattern's
    matches as one folder — before, the script received the dataset's repr as text."""
    from azureml.core import Dataset, Experiment, Workspace
    from azureml.pipeline.core import Pipeline
    from azureml.pipeline.steps import PythonScriptStep

    ws = Workspace.from_config()
    (project / "parts").mkdir()
    for i in range(3):
        (project / "parts" / f"p{i}.csv").write_text(f"x\n{i}\n")
    (project / "count.py").write_text(
        "import glob, os, sys\nfrom azureml.core import Run\nrun = Run.get_context()\n"
        "folder, one = sys.argv[2], sys.argv[4]\n"
        "run.log('parts', len(glob.glob(os.path.join(folder, '*.csv'))))\n"
        "run.log('first', float(open(one).read().split()[1]))\n")
    step = PythonScriptStep(name="count", script_name="count.py", source_directory=".", arguments=[
        "--parts", Dataset.File.from_files(path=str(project / "parts" / "*.csv")),
        "--one", Dataset.File.from_files(path=str(project / "parts" / "p1.csv"))])
    run = Experiment(ws, "v1-pipe-local-data").submit(Pipeline(ws, steps=[step]))
    run.wait_for_completion()
    (child,) = run.get_steps()
    assert child.get_status() == "Completed", client.runs.get(child.id).error
    assert child.get_metrics() == {"parts": 3, "first": 1.0}


def test_a_step_runconfig_time_limit_cancels_the_step(azureml, client, project):
    """``RunConfiguration.max_run_duration_seconds`` of a PythonScriptStep: the step's run is canceled at its limit
    (it was accepted and ignored: the step ran on)."""
    from azureml.core import Experiment, Workspace
    from azureml.core.runconfig import RunConfiguration
    from azureml.pipeline.core import Pipeline
    from azureml.pipeline.steps import PythonScriptStep

    ws = Workspace.from_config()
    (project / "slow.py").write_text("import time\ntime.sleep(60)\n")
    rc = RunConfiguration()
    rc.max_run_duration_seconds = 2
    step = PythonScriptStep(name="slow", script_name="slow.py", source_directory=".", runconfig=rc)
    run = Experiment(ws, "v1-pipe-limit").submit(Pipeline(ws, steps=[step]))
    run.wait_for_completion(raise_on_error=False)
    (child,) = run.get_steps()
    assert child.get_status() == "Canceled"
    assert client.runs.get(child.id).error == "the run exceeded its time limit of 2 s and was canceled"
    rc.max_run_duration_seconds = "2"  # a string: one line, nothing submitted
    with pytest.raises(InvalidInput, match=r"step s: runconfig.max_run_duration_seconds='2': give a number"):
        Pipeline(ws, steps=[PythonScriptStep(name="s", script_name="slow.py", source_directory=".", runconfig=rc)]
                 ).validate()


def test_a_steps_environment_variables_reach_its_run(azureml, client, project):
    """``runconfig.environment.environment_variables`` of a PythonScriptStep, as a ScriptRunConfig's reach its run:
    they were dropped for pipeline steps (the script read None)."""
    from azureml.core import Environment, Experiment, Workspace
    from azureml.core.runconfig import RunConfiguration
    from azureml.pipeline.core import Pipeline
    from azureml.pipeline.steps import PythonScriptStep

    ws = Workspace.from_config()
    (project / "show.py").write_text("import os\nprint('MODE', os.environ.get('MODE'))\n")
    rc = RunConfiguration()
    rc.environment = Environment("show-env")
    rc.environment.environment_variables = {"MODE": "fast"}
    step = PythonScriptStep(name="show", script_name="show.py", source_directory=".", runconfig=rc)
    run = Experiment(ws, "v1-pipe-env").submit(Pipeline(ws, steps=[step]))
    run.wait_for_completion(raise_on_error=True)
    (child,) = run.get_steps()
    assert "MODE fast" in client.runs.get_logs(child.id)
    rc.environment.environment_variables = {"1X": "a"}  # not a variable's name: one line, nothing submitted
    with pytest.raises(InvalidInput, match=r"step show: Environment.environment_variables: '1X' is not a variable"):
        Pipeline(ws, steps=[PythonScriptStep(name="show", script_name="show.py", source_directory=".", runconfig=rc)]
                 ).validate()
