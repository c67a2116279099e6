"""Pipelines: real controller and step processes on the local compute, the real store and datastore."""
from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from IPython.core.error import UsageError

from aml_magics.core.errors import AmlError
from aml_magics.core.pipelines import PipelineSpec, PipelineStep, binding, load_yaml

from ..conftest import wait_until

PREP = """
import os, time
from aml_magics import Run
text = open(os.path.join(inputs.raw, "data.txt")).read()
open(os.path.join(outputs.clean, "clean.txt"), "w").write(text.strip().upper())
Run.get_context().log("rows", len(text.split()))
"""

BRANCH = """
import os, time
t0 = time.time()
time.sleep({sleep})
data = open(os.path.join(inputs.clean, "clean.txt")).read()
open(os.path.join(outputs.{out}, "part.txt"), "w").write("{out}:" + data)
open(os.path.join(outputs.{out}, "times.json"), "w").write(__import__("json").dumps([t0, time.time()]))
"""

JOIN = """
import os
a = open(os.path.join(inputs.left, "part.txt")).read()
b = open(os.path.join(inputs.right, "part.txt")).read()
open(os.path.join(outputs.model, "model.txt"), "w").write(a + "|" + b)
"""


def define(ip, name: str, options: str, code: str) -> None:
    ip.run_cell_magic("aml", f"step {name} {options}", code)


def diamond(ip, sleep: float = 0.6) -> None:
    define(ip, "prep", "--in raw=datastore:project/raw --out clean", PREP)
    define(ip, "left", "--in clean --out left", BRANCH.format(sleep=sleep, out="left"))
    define(ip, "right", "--in clean --out right", BRANCH.format(sleep=sleep, out="right"))
    define(ip, "join", "--in left,right --out model", JOIN)


def upload_raw(client, tmp_path, text: str = "a b c\n") -> None:
    src = tmp_path / "raw"
    src.mkdir(exist_ok=True)
    (src / "data.txt").write_text(text)
    client.datastores.upload(src, "project/raw", overwrite=True)


def run_pipeline(ip, client, options: str = "") -> tuple:
    run = ip.run_line_magic("aml", f"pipeline run -e pipe {options}")
    info = client.runs.wait(run.id, timeout=120)
    return info, client.pipelines.steps(run.id)


def output_of(client, step) -> Path:
    uri = json.loads(step.tags["pipeline.outputs"])
    return {k: Path(client.datastores.resolve_input(v)) for k, v in uri.items()}


def test_dag_order_parallel_branches_outputs_and_lineage(ip, client, tmp_path):
    upload_raw(client, tmp_path)
    diamond(ip)
    info, steps = run_pipeline(ip, client)
    assert info.status == "Completed", client.runs.get_logs(info.run_id)
    assert list(steps) == ["prep", "left", "right", "join"] or list(steps)[0] == "prep" and list(steps)[-1] == "join"
    assert all(s.status == "Completed" and s.parent_run_id == info.run_id for s in steps.values())
    model = output_of(client, steps["join"])["model"] / "model.txt"
    assert model.read_text() == "left:A B C|right:A B C"
    # the two branches depend only on prep: they ran side by side on the 2-slot local compute
    (l0, l1), (r0, r1) = (json.loads((output_of(client, steps[b])[b] / "times.json").read_text())
                          for b in ("left", "right"))
    assert max(l0, r0) < min(l1, r1), "independent steps overlap in time"
    # lineage: each step's inputs name the step and run that wrote them; a model registered from a step points to it
    inputs = json.loads(steps["join"].tags["pipeline.inputs"])
    assert inputs["left"]["from_step"] == "left" and inputs["left"]["run_id"] == steps["left"].run_id
    assert json.loads(steps["prep"].tags["pipeline.inputs"])["raw"]["uri"] == "datastore:project/raw"
    m = client.models.register("pipe-model", str(model), run_id=steps["join"].run_id)
    assert m.run_id == steps["join"].run_id and client.runs.get(m.run_id).parent_run_id == info.run_id
    assert client.runs.get_metrics(steps["prep"].run_id)["rows"] == 3


def test_reuse_and_what_reruns(ip, client, tmp_path):
    upload_raw(client, tmp_path)
    diamond(ip, sleep=0)
    first, steps1 = run_pipeline(ip, client)
    assert first.status == "Completed"
    again, steps2 = run_pipeline(ip, client)
    assert again.status == "Completed"
    assert all(s.tags.get("pipeline.reused_from") == steps1[n].run_id for n, s in steps2.items()), "unchanged: all reused"
    assert "reused" in client.runs.get_logs(again.run_id)
    # one changed byte of an input: every step below it runs again
    upload_raw(client, tmp_path, "a b d\n")
    _, steps3 = run_pipeline(ip, client)
    assert not any(s.tags.get("pipeline.reused_from") for s in steps3.values())
    assert (output_of(client, steps3["join"])["model"] / "model.txt").read_text() == "left:A B D|right:A B D"
    # a changed line of one branch's code: that branch and the join run, prep and the other branch are reused
    define(ip, "right", "--in clean --out right", BRANCH.format(sleep=0, out="right") + "\n# changed\n")
    _, steps4 = run_pipeline(ip, client)
    reused = {n for n, s in steps4.items() if s.tags.get("pipeline.reused_from")}
    assert reused == {"prep", "left"}
    # a changed argument: that step runs again
    define(ip, "left", "--in clean --out left -- --flag", BRANCH.format(sleep=0, out="left"))
    _, steps5 = run_pipeline(ip, client)
    assert {n for n, s in steps5.items() if s.tags.get("pipeline.reused_from")} == {"prep", "right"}
    # a step's own environment variable (--env-var, as %%aml run takes): it reaches the step; a changed value runs
    # it again, the same one is reused
    shows = "import os\nprint('MODE', os.environ.get('MODE'))\n" + BRANCH.format(sleep=0, out="right")
    define(ip, "right", "--in clean --out right --env-var MODE=fast", shows)
    _, with_var = run_pipeline(ip, client)
    assert "MODE fast" in client.runs.get_logs(with_var["right"].run_id)
    _, same_var = run_pipeline(ip, client)
    assert same_var["right"].tags.get("pipeline.reused_from") == with_var["right"].run_id
    define(ip, "right", "--in clean --out right --env-var MODE=slow", shows)
    _, other_var = run_pipeline(ip, client)
    assert not other_var["right"].tags.get("pipeline.reused_from")
    assert "MODE slow" in client.runs.get_logs(other_var["right"].run_id)
    with pytest.raises(UsageError, match="--env-var MODE is given twice"):
        define(ip, "right", "--in clean --out right --env-var MODE=a --env-var MODE=b", shows)
    # --no-reuse runs everything; a step marked --no-reuse always runs
    _, steps6 = run_pipeline(ip, client, "--no-reuse")
    assert not any(s.tags.get("pipeline.reused_from") for s in steps6.values())
    define(ip, "prep", "--in raw=datastore:project/raw --out clean --no-reuse", PREP)
    _, steps7 = run_pipeline(ip, client)
    assert not steps7["prep"].tags.get("pipeline.reused_from")
    assert steps7["left"].tags.get("pipeline.reused_from"), "prep's output is byte-identical: below it is reused"
    # a deleted output of an earlier run is not reused
    for path in output_of(client, steps7["join"]).values():
        for f in path.iterdir():
            f.unlink()
        path.rmdir()
    _, steps8 = run_pipeline(ip, client)
    assert not steps8["join"].tags.get("pipeline.reused_from")


def test_a_failed_step_stops_its_dependents_and_says_which(ip, client, tmp_path):
    upload_raw(client, tmp_path)
    define(ip, "prep", "--in raw=datastore:project/raw --out clean", PREP)
    define(ip, "left", "--in clean --out left", "raise ValueError('bad left')\n")
    define(ip, "right", "--in clean --out right", BRANCH.format(sleep=0, out="right"))
    define(ip, "join", "--in left,right --out model", JOIN)
    info, steps = run_pipeline(ip, client)
    assert info.status == "Failed"
    assert "step left failed" in info.error and "bad left" in info.error and "not run: join" in info.error
    assert steps["left"].status == "Failed" and "join" not in steps
    assert steps["right"].status == "Completed", "a step already running when another failed finishes"


def test_cancel_cancels_the_running_steps(ip, client, tmp_path):
    upload_raw(client, tmp_path)
    diamond(ip, sleep=30)
    run = ip.run_line_magic("aml", "pipeline run -e pipe")
    wait_until(lambda: sum(c.status == "Running" for c in client.runs.children(run.id).infos) >= 2, timeout=60,
               what="the branches running")
    ip.run_line_magic("aml", f"cancel {run.id}")
    info = client.runs.wait(run.id, timeout=60)
    assert info.status == "Canceled"
    wait_until(lambda: all(c.status in ("Completed", "Canceled") for c in client.runs.children(run.id).infos),
               timeout=60, what="the steps to end")
    steps = client.pipelines.steps(run.id)
    assert steps["left"].status == steps["right"].status == "Canceled" and "join" not in steps


def test_resume_after_killing_the_controller_runs_only_unfinished_steps(ip, client, tmp_path):
    upload_raw(client, tmp_path)
    diamond(ip, sleep=2)
    run = ip.run_line_magic("aml", "pipeline run -e pipe --no-reuse")
    # both branches running (not just created: a step the controller is still preparing when it dies never ran,
    # and is Canceled — then it rightly runs after the resume)
    wait_until(lambda: {c.tags.get("pipeline.step") for c in client.runs.children(run.id).infos
                        if c.status == "Running"} >= {"left", "right"}, timeout=60, what="both branches running")
    row = client.backend.store.get_run(run.id)
    os.killpg(row["user_pid"], signal.SIGKILL)  # the controller only; its running steps go on
    assert client.runs.wait(run.id, timeout=30).status == "Failed"
    ip.run_line_magic("aml", f"resume {run.id}")
    info = client.runs.wait(run.id, timeout=120)
    assert info.status == "Completed", client.runs.get_logs(run.id)
    children = client.runs.children(run.id).infos
    names = [c.tags["pipeline.step"] for c in children]
    assert sorted(names) == ["join", "left", "prep", "right"], \
        f"no step ran twice: {[(c.tags['pipeline.step'], c.status, c.error) for c in children]}"
    assert all(c.status == "Completed" and not c.tags.get("pipeline.reused_from") for c in children)
    assert "Resuming: 1 of 4 steps done, 2 still running" in client.runs.get_logs(run.id)


def test_yaml_export_then_run_gives_the_same_result(ip, client, tmp_path, project):
    upload_raw(client, tmp_path)
    diamond(ip, sleep=0)
    direct, steps = run_pipeline(ip, client, "--no-reuse")
    assert direct.status == "Completed"
    ip.run_line_magic("aml", "pipeline export pipe.yml")
    with pytest.raises(UsageError, match="exists"):
        ip.run_line_magic("aml", "pipeline export pipe.yml")
    spec, doc = load_yaml(project / "pipe.yml")
    assert doc["type"] == "pipeline" and set(doc["jobs"]) == {"prep", "left", "right", "join"}
    assert doc["jobs"]["join"]["inputs"]["left"] == "${{parent.jobs.left.outputs.left}}"
    assert doc["jobs"]["prep"]["inputs"]["raw"]["path"] == "azureml://datastores/workspaceblobstore/paths/project/raw"
    assert all(s.kind == "script" for s in spec.steps)
    run = ip.run_line_magic("aml", "pipeline run pipe.yml -e pipe --no-reuse")
    info = client.runs.wait(run.id, timeout=120)
    assert info.status == "Completed", client.runs.get_logs(run.id)
    yaml_steps = client.pipelines.steps(run.id)
    for name in ("left", "right", "join"):
        a, b = output_of(client, steps[name]), output_of(client, yaml_steps[name])
        for out in a:
            want = sorted((p.name, p.read_bytes()) for p in a[out].iterdir() if p.name != "times.json")
            got = sorted((p.name, p.read_bytes()) for p in b[out].iterdir() if p.name != "times.json")
            assert want == got, f"{name}.{out} differs between the notebook's pipeline and its YAML"


def test_an_azure_style_yaml_with_scripts_parent_inputs_and_literals(client, tmp_path):
    upload_raw(client, tmp_path)
    folder = tmp_path / "yaml"
    (folder / "src").mkdir(parents=True)
    (folder / "src" / "prep.py").write_text(
        "import argparse, os\np = argparse.ArgumentParser()\np.add_argument('--raw')\np.add_argument('--times', type=int)\n"
        "p.add_argument('--out')\na = p.parse_args()\nt = open(os.path.join(a.raw, 'data.txt')).read().strip()\n"
        "open(os.path.join(a.out, 'x.txt'), 'w').write(' '.join([t] * a.times))\n"
        "assert os.environ['AZURE_ML_OUTPUT_clean'] == a.out\n")
    (folder / "src" / "show.py").write_text(
        "import sys, os\nprint('GOT', open(os.path.join(sys.argv[1], 'x.txt')).read())\n")
    (folder / "p.yml").write_text("""
$schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
type: pipeline
experiment_name: from-yaml
inputs:
  raw:
    type: uri_folder
    path: azureml://datastores/workspaceblobstore/paths/project/raw
settings:
  default_compute: azureml:local
jobs:
  prep:
    type: command
    code: ./src
    command: python prep.py --raw ${{inputs.raw}} --times ${{inputs.times}} --out ${{outputs.clean}}
    environment: azureml:AzureML-sklearn-1.5@latest
    inputs:
      raw: ${{parent.inputs.raw}}
      times: 2
    outputs:
      clean:
        type: uri_folder
  show:
    type: command
    code: ./src
    command: >-
      python show.py ${{inputs.data}}
    inputs:
      data: ${{parent.jobs.prep.outputs.clean}}
""")
    with pytest.raises(AmlError, match="AzureML-sklearn-1.5"):  # a curated Azure environment does not exist here
        client.pipelines.submit(folder / "p.yml")
    assert not client.runs.list().infos, "refused before anything ran"
    text = (folder / "p.yml").read_text().replace("    environment: azureml:AzureML-sklearn-1.5@latest\n", "")
    (folder / "p.yml").write_text(text)
    run = client.pipelines.submit(folder / "p.yml")
    info = client.runs.wait(run.id, timeout=120)
    assert info.status == "Completed" and info.experiment == "from-yaml", client.runs.get_logs(run.id)
    assert "GOT a b c a b c" in client.runs.get_logs(client.pipelines.steps(run.id)["show"].run_id)


def test_a_yaml_steps_environment_variables_reach_it_count_for_reuse_and_survive_export(client, tmp_path):
    """``environment_variables`` of a command step were dropped: the step ran without them, and a step whose
    variable changed was reused from a run made with the old value."""
    from aml_magics.core.pipelines import to_yaml

    (tmp_path / "show.py").write_text("import os\nprint('MODE', os.environ.get('MODE'), os.environ.get('LEVEL'))\n")
    yml = "type: pipeline\njobs:\n  show:\n    command: python show.py\n    environment_variables: {mode_line}\n"
    (tmp_path / "p.yml").write_text(yml.replace("{mode_line}", "{MODE: fast, LEVEL: 3}"))
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        logs = []
        for mode in ("{MODE: fast, LEVEL: 3}", "{MODE: fast, LEVEL: 3}", "{MODE: slow, LEVEL: 3}"):
            (tmp_path / "p.yml").write_text(yml.replace("{mode_line}", mode))
            run = client.pipelines.submit(tmp_path / "p.yml")
            assert client.runs.wait(run.id, timeout=120).status == "Completed", client.runs.get_logs(run.id)
            step = client.pipelines.steps(run.id)["show"]
            reused = client.runs.get(step.run_id).tags.get("pipeline.reused_from")
            logs.append((reused is not None, client.runs.get_logs(reused or step.run_id)))
        assert [r for r, _ in logs] == [False, True, False]  # the same value reused; a changed one runs again
        assert "MODE fast 3" in logs[0][1] and "MODE slow 3" in logs[2][1], logs
        spec, _ = load_yaml(tmp_path / "p.yml")
        out = to_yaml(spec, tmp_path / "export")
        assert load_yaml(out)[1]["jobs"]["show"]["environment_variables"] == {"MODE": "slow", "LEVEL": "3"}
    finally:
        os.chdir(cwd)


@pytest.mark.parametrize("steps, message", [
    ([PipelineStep("a", "cell", "c.py", code="x", inputs={"i": binding("b", "o")}, outputs=["o"]),
      PipelineStep("b", "cell", "c.py", code="x", inputs={"i": binding("a", "o")}, outputs=["o"])], "cycle"),
    ([PipelineStep("a", "cell", "c.py", code="x", inputs={"i": binding("zz", "o")})], "not in the pipeline"),
    ([PipelineStep("a", "cell", "c.py", code="x", outputs=["o"]),
      PipelineStep("b", "cell", "c.py", code="x", inputs={"i": binding("a", "nope")})], "declare it: --out nope"),
    ([PipelineStep("a", "cell", "c.py", code="x"), PipelineStep("a", "cell", "c.py", code="y")], "two steps"),
    ([PipelineStep("a b", "cell", "c.py", code="x")], "letters, digits"),
    ([PipelineStep("a", "cell", "c.py", code="x", outputs=["<img src=x>"])], "letters, digits"),
    ([], "no steps"),
    # a placeholder in a command that the step does not declare: the pipeline run was created and failed at the
    # step's turn ("there is no an output nope")
    ([PipelineStep("a", "script", "a.py", args=["--out", "${{outputs.nope}}"], outputs=["model"])],
     r"uses \$\{\{outputs.nope\}\}, which its outputs do not declare \(model\); add nope under outputs:"),
    ([PipelineStep("a", "script", "a.py", args=["--in=${{inputs.data}}"])],
     r"which its inputs do not declare \(it has none\)"),
    # a script name too long for the system was an OSError with a traceback
    ([PipelineStep("a", "script", "s" * 300 + ".py")], r"step a '.*… cannot be looked up \(File name too long\)"),
])
def test_bad_pipelines_are_refused_before_anything_runs(client, steps, message):
    with pytest.raises(AmlError, match=message):
        client.pipelines.submit(PipelineSpec(steps), "bad")
    assert not client.runs.list().infos


def test_bad_step_lines_and_files_get_one_line(ip, client, tmp_path, project):
    with pytest.raises(UsageError, match="no pipeline steps"):
        ip.run_line_magic("aml", "pipeline run")
    with pytest.raises(UsageError, match="letters, digits"):
        ip.run_cell_magic("aml", "step 1st --out x", "pass\n")
    with pytest.raises(UsageError, match="both an input and an output"):
        ip.run_cell_magic("aml", "step s --in x --out x", "pass\n")
    define(ip, "train", "--in clean --out model", "pass\n")
    with pytest.raises(UsageError, match="no step writes"):
        ip.run_line_magic("aml", "pipeline run")
    (project / "bad.yml").write_text("type: pipeline\njobs:\n  a:\n    type: command\n    command: bash run.sh\n")
    with pytest.raises(UsageError, match="python SCRIPT.py"):
        ip.run_line_magic("aml", "pipeline run bad.yml")
    (project / "bad.yml").write_text("type: pipeline\njobs:\n  a:\n    command: [python, train.py]\n")
    with pytest.raises(UsageError, match="command must be one line of text.*it is a list"):  # was "no command"
        ip.run_line_magic("aml", "pipeline run bad.yml")
    (project / "bad.yml").write_text("jobs: [1, 2\n")
    with pytest.raises(UsageError, match="not a readable YAML"):
        ip.run_line_magic("aml", "pipeline run bad.yml")
    (project / "train.py").write_text("print('x')\n")
    job = "type: pipeline\njobs:\n  a:\n    command: python {script}\n{more}"
    for script, more, message in (
            # sections of the wrong shape were AttributeError tracebacks
            ("train.py", "settings: abc\n", "settings must be a mapping of NAME: VALUE"),
            ("train.py", "inputs: [1, 2]\n", "inputs must be a mapping"),
            ("train.py", "    inputs: [1, 2]\n", "jobs.a.inputs must be a mapping"),
            ("train.py", "    outputs: model\n", "jobs.a.outputs must be a mapping"),
            ("train.py", "    display_name: [1, 2]\n", "display_name must be text"),
            ("train.py", "description: {a: 1}\n", "description must be text"),
            # a step's time limit: a typo, zero, a limit Azure ML does not have, a section that is not one
            ("train.py", "    limits: {timeout: 10x}\n", "limits.timeout='10x': give a number above 0"),
            ("train.py", "    limits: {timeout: 0}\n", "limits.timeout=0: give a number above 0"),
            ("train.py", "    limits: {timeout: .nan}\n", "limits.timeout=nan: give a number above 0"),
            ("train.py", "    limits: {timeout: 100000000000}\n", "give at most 10,000,000"),
            ("train.py", "    limits: {max_nodes: 4}\n", "max_nodes is not a limit of a command step"),
            ("train.py", "    limits: 60\n", "jobs.a.limits must be a mapping"),
            # silently dropped: a field misspelled (the step ran in the kernel's Python), or one not honoured here
            ("train.py", "    enviroment: azureml:e:1\n", "jobs.a: 'enviroment' is not a field of a command step here; "
                                                         "did you mean environment?"),
            ("train.py", "setings: {force_rerun: true}\n", "bad.yml: 'setings' is not a field of a pipeline here; "
                                                          "did you mean settings?"),
            ("train.py", "settings: {force_rerun: true, default_compte: x}\n", "did you mean default_compute?"),
            ("train.py", "    resources: {instance_count: 2}\n", "'resources' is not a field of a command step here "
                                                                  "\\(it takes code, command,"),
            # the script got "${{parent.jobs.b.outputs.o}}" as its argument (and a cycle ran as two steps at once)
            ("train.py --in ${{parent.jobs.b.outputs.o}}", "", r"jobs.a: its command uses "
             r"\$\{\{parent.jobs.b.outputs.o\}\}; a command reads only its own \$\{\{inputs.X\}\} and "
             r"\$\{\{outputs.X\}\} — bind it under the step's inputs: \(X: \$\{\{parent.jobs.b.outputs.o\}\}\)"),
            ("train.py --lr ${{parent.inputs.lr}}", "inputs: {lr: 0.1}\n", r"its command uses \$\{\{parent.inputs.lr"),
            ("train.py", "    environment_variables: {X: [1, 2]}\n",
             "jobs.a.environment_variables.X: list is not a variable's value; write it as text in quotes"),
            ("train.py", "    environment_variables: {X: yes}\n", "X: bool is not a variable's value"),
            ("train.py", "    environment_variables: {1X: a}\n", "'1X' is not a variable name"),
            # a script outside the step's code folder: the step ran a file of this machine, outside its snapshot
            (str(project / "train.py"), "", "must be a file inside the run's source folder"),
            ("../train.py", "", "must be a file inside the run's source folder")):
        (project / "bad.yml").write_text(job.format(script=script, more=more))
        with pytest.raises(UsageError, match=message):
            ip.run_line_magic("aml", "pipeline run bad.yml")
    with pytest.raises(UsageError, match="compute target"):
        define(ip, "prep", "--out clean -c nowhere", "pass\n")
        ip.run_line_magic("aml", "pipeline run")
    define(ip, "prep", "--out clean --in raw=datastore:not/there", "pass\n")
    with pytest.raises(UsageError, match="step prep, input raw: .*nothing at that datastore path"):
        ip.run_line_magic("aml", "pipeline run")
    define(ip, "prep", "--out clean --in raw=datastore:../../etc", "pass\n")
    with pytest.raises(UsageError, match="must stay inside the datastore"):
        ip.run_line_magic("aml", "pipeline run")
    # a step's folder that is not there: the pipeline run was created and failed at that step (a name too long for
    # the system: with an OSError)
    for folder, message in (("nope", "does not exist; give an existing folder"),
                            ("train.py", "is a file, not a folder"),
                            ("d" * 300, r"cannot be looked up \(File name too long\)")):
        define(ip, "prep", f"--out clean --source-dir {folder}", "pass\n")
        with pytest.raises(UsageError, match=f"step prep: its folder .*{message}"):
            ip.run_line_magic("aml", "pipeline run")
    assert not client.runs.list().infos
    steps = ip.run_line_magic("aml", "pipeline steps")
    assert "train" in repr(steps) and "&lt;" not in repr(steps)
    with pytest.raises(UsageError, match="the file to export to .* cannot be looked up"):  # was an OSError
        ip.run_line_magic("aml", "pipeline export " + "p" * 300 + ".yml")
    ip.run_line_magic("aml", "pipeline clear")
    assert "No pipeline steps" in repr(ip.run_line_magic("aml", "pipeline steps"))


def test_a_notebook_step_passes_its_output_to_a_cell_step(ip, client, project):
    """A notebook as a step (papermill, a real kernel): it finds its folders in $AZURE_ML_INPUT_* / $AZURE_ML_OUTPUT_*
    as a script does; a cell below it reads what it wrote."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "import os\nopen(os.path.join(os.environ['AZURE_ML_OUTPUT_table'], 't.txt'), 'w').write('from the notebook')")]
    nbformat.write(nb, str(project / "make_table.ipynb"))
    ip.run_line_magic("aml", "step make make_table.ipynb --out table")
    define(ip, "use", "--in table --out done",
           "import os\ntext = open(os.path.join(inputs.table, 't.txt')).read()\n"
           "open(os.path.join(outputs.done, 'd.txt'), 'w').write(text.upper())\n")
    info, steps = run_pipeline(ip, client)
    assert info.status == "Completed", client.runs.get_logs(info.run_id)
    assert steps["make"].kind == "notebook"
    assert (output_of(client, steps["use"])["done"] / "d.txt").read_text() == "FROM THE NOTEBOOK"


def test_an_output_changed_after_its_step_is_not_reused(ip, client, tmp_path):
    """A later step that writes into its input folder (or a person editing it) changes what the earlier step
    made: that step is not reused from it."""
    upload_raw(client, tmp_path)
    define(ip, "prep", "--in raw=datastore:project/raw --out clean", PREP)
    define(ip, "vandal", "--in clean", "import os\nopen(os.path.join(inputs.clean, 'clean.txt'), 'a').write('!')\n")
    first, steps = run_pipeline(ip, client)
    assert first.status == "Completed"
    assert (output_of(client, steps["prep"])["clean"] / "clean.txt").read_text() == "A B C!"
    _, again = run_pipeline(ip, client)
    assert not again["prep"].tags.get("pipeline.reused_from"), "its output is not what it wrote"
    # a fresh output, as prep writes it; vandal then reads exactly what it read the first time, so it is reused
    assert (output_of(client, again["prep"])["clean"] / "clean.txt").read_text() == "A B C"
    assert again["vandal"].tags.get("pipeline.reused_from")


def test_two_tabs_running_the_same_pipeline_at_once(ip, client, tmp_path):
    """Both runs complete with their own outputs (neither reuses a half-written step of the other); the reuse index
    they both write stays readable, and the next run reuses every step whose inputs one of them made."""
    upload_raw(client, tmp_path)
    diamond(ip, sleep=0.3)
    first = ip.run_line_magic("aml", "pipeline run -e pipe")
    second = ip.run_line_magic("aml", "pipeline run -e pipe")
    for run in (first, second):
        assert client.runs.wait(run.id, timeout=120).status == "Completed", client.runs.get_logs(run.id)
    a, b = client.pipelines.steps(first.id), client.pipelines.steps(second.id)
    assert (output_of(client, a["join"])["model"] / "model.txt").read_text() == "left:A B C|right:A B C"
    assert (output_of(client, b["join"])["model"] / "model.txt").read_text() == "left:A B C|right:A B C"
    _, third = run_pipeline(ip, client)
    reused = {n: s.tags.get("pipeline.reused_from") for n, s in third.items()}
    assert all(reused[n] for n in ("prep", "left", "right")), reused
    # which tab's branch the index gave: the branches write their own timings, so a join reads new inputs (and runs)
    # when the two branches it is given come from different tabs — and is reused when both come from one tab
    tab = {n: "first" if reused[n] == a[n].run_id else "second" if reused[n] == b[n].run_id else None
           for n in ("left", "right")}
    assert None not in tab.values(), (reused, a, b)
    if tab["left"] == tab["right"]:
        assert reused["join"], f"both branches from the {tab['left']} tab: its join is reused"
    else:
        assert not reused["join"]
        assert (output_of(client, third["join"])["model"] / "model.txt").read_text() == "left:A B C|right:A B C"


def test_a_step_time_limit_cancels_that_step_and_survives_export(ip, client, tmp_path, project):
    """``limits.timeout`` of a YAML step (v1: the step's runconfig.max_run_duration_seconds): the step's run is
    canceled at its limit, with the reason, and the pipeline stops there; ``pipeline export`` writes the limit back."""
    (project / "slow.py").write_text("import time\nprint('started', flush=True)\ntime.sleep(60)\n")
    (project / "p.yml").write_text("type: pipeline\njobs:\n  slow:\n    command: python slow.py\n"
                                   "    limits:\n      timeout: 2\n"
                                   "  after:\n    command: python slow.py\n    inputs:\n      x: 1\n")
    spec, _ = load_yaml(project / "p.yml")
    assert [s.timeout_s for s in spec.steps] == [2.0, None]
    spec.steps[1].after = ["slow"]
    started = time.monotonic()
    run = client.pipelines.submit(spec, "limits", source_dir=project)
    info = client.runs.wait(run.id, timeout=120)
    assert time.monotonic() - started < 45, "the step ran past its limit"
    step = client.pipelines.steps(run.id)["slow"]
    assert step.status == "Canceled", step
    assert client.runs.get(step.run_id).error == "the run exceeded its time limit of 2 s and was canceled"
    assert info.status in ("Failed", "Canceled") and "after" not in client.pipelines.steps(run.id)
    from aml_magics.core.pipelines import to_yaml

    written = to_yaml(spec, tmp_path / "export")
    again, doc = load_yaml(written)
    assert doc["jobs"]["slow"]["limits"] == {"timeout": 2} and again.steps[0].timeout_s == 2.0
    define(ip, "cellstep", "--out o --timeout 90m", "pass\n")  # the magic's form
    with pytest.raises(UsageError, match="duration"):
        define(ip, "cellstep", "--out o --timeout 90x", "pass\n")
    ip.run_line_magic("aml", "pipeline export limits.yml")
    assert load_yaml(project / "limits.yml")[1]["jobs"]["cellstep"]["limits"] == {"timeout": 5400}


def test_export_keeps_the_users_own_files_and_refuses_an_unwritable_folder(ip, project):
    """``pipeline export`` writes ``steps/NAME.py`` for each cell step. A script of the user's own at that path was
    replaced without a word; a folder that cannot be written gave a FileNotFoundError traceback."""
    define(ip, "prep", "--out clean", "x = 1\n")
    (project / "steps").mkdir()
    (project / "steps" / "prep.py").write_text("print('my own prep')\n")
    with pytest.raises(UsageError, match=r"steps/prep.py exists and holds something else; move it, or export with "
                                         r"--force to replace it"):
        ip.run_line_magic("aml", "pipeline export one.yml")
    assert (project / "steps" / "prep.py").read_text() == "print('my own prep')\n"
    assert not (project / "one.yml").exists()  # nothing written when one file cannot be
    ip.run_line_magic("aml", "pipeline export one.yml --force")
    assert "x = 1" in (project / "steps" / "prep.py").read_text()
    define(ip, "prep", "--out clean", "x = 2\n")  # the cell changed: the script an export wrote is rewritten
    ip.run_line_magic("aml", "pipeline export two.yml")
    assert "x = 2" in (project / "steps" / "prep.py").read_text()
    with pytest.raises(UsageError, match=r"cannot write /proc/\S+: .*; export to another folder"):
        ip.run_line_magic("aml", "pipeline export /proc/aml/pipe.yml")
