"""An Azure ML v1 notebook on the local workspace: train, register, deploy, score — end to end and by phase.

    python bench/v1.py [--quick] [--json PATH]

1. notebook: notebooks/v1/02-train-deploy.ipynb (ScriptRunConfig on a compute target, register_model,
   Model.deploy with an ACI configuration, service.run, delete), executed unchanged in a real kernel (nbclient)
   in a fresh workspace; wall time from the first cell to the last.
2. phases, through the same v1 API in this process (median of N): ``v1_submit_to_running_s`` — from
   ``experiment.submit(ScriptRunConfig)`` to the run reported Running (or already done); and
   ``v1_deploy_to_first_answer_s`` — from ``Model.deploy(...)`` to the first answer of ``service.run``.

Anchors, quoted (Azure cannot be reached from here): the v1 workshop's own figures on Azure ML — about 10 minutes
for the first run (image build plus cluster scale-up) and 7–8 minutes for an ACI deployment.

JSON keys: v1_notebook_s, v1_submit_to_running_s, v1_deploy_to_first_answer_s, anchor_first_run_s,
anchor_aci_deploy_s.
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import parse_args, print_table, ratio, write_json  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ANCHOR_FIRST_RUN_S = 10 * 60  # the workshop: image build + cluster scale-up
ANCHOR_ACI_DEPLOY_S = 7.5 * 60  # the workshop: 7–8 minutes for an ACI deployment

TRAIN = """import os, joblib
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from azureml.core import Run
run = Run.get_context()
X, y = load_digits(return_X_y=True)
clf = LogisticRegression(max_iter=300).fit(X / 16.0, y)
run.log("accuracy", float(clf.score(X / 16.0, y)))
os.makedirs("outputs", exist_ok=True)
joblib.dump(clf, "outputs/model.pkl")
"""
SCORE = """import json, joblib, numpy as np
from azureml.core.model import Model
def init():
    global model
    model = joblib.load(Model.get_model_path("bench-digits"))
def run(raw):
    return model.predict(np.array(json.loads(raw)["data"])).tolist()
"""


def notebook_wall(workdir: Path) -> float:
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(ROOT / "notebooks" / "v1" / "02-train-deploy.ipynb", as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}).execute()
    return time.perf_counter() - start


def phases(workdir: Path, repeats: int) -> tuple[float, float]:
    from aml_magics import v1

    v1.install(quiet=True)
    from azureml.core import Experiment, ScriptRunConfig, Workspace
    from azureml.core.model import InferenceConfig, Model
    from azureml.core.webservice import AciWebservice

    src = workdir / "src"
    src.mkdir(exist_ok=True)
    (src / "train.py").write_text(TRAIN)
    (src / "score.py").write_text(SCORE)
    ws = Workspace.from_config()
    exp = Experiment(ws, "bench-v1")
    submits, deploys = [], []
    from sklearn.datasets import load_digits

    sample = json.dumps({"data": (load_digits().data[:5] / 16.0).tolist()})
    for i in range(repeats):
        start = time.perf_counter()
        run = exp.submit(ScriptRunConfig(source_directory=str(src), script="train.py"))
        while run.get_status() not in ("Running", "Completed", "Failed", "Canceled"):
            time.sleep(0.02)
        submits.append(time.perf_counter() - start)
        run.wait_for_completion()
        model = run.register_model("bench-digits", "outputs/model.pkl")
        start = time.perf_counter()
        service = Model.deploy(ws, f"bench-v1-svc-{i}", [model],
                               InferenceConfig(entry_script="score.py", source_directory=str(src)),
                               AciWebservice.deploy_configuration(cpu_cores=1, memory_gb=1), overwrite=True)
        answer = service.run(sample)
        deploys.append(time.perf_counter() - start)
        assert len(answer) == 5, answer
        service.delete()
    return statistics.median(submits), statistics.median(deploys)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    repeats = 1 if args.quick else 5
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        os.environ["AML_MAGICS_WORKSPACE"] = str(workdir / "ws")
        os.chdir(workdir)
        total = notebook_wall(workdir)
        submit_s, deploy_s = phases(workdir, repeats)
    figures = {"v1_notebook_s": round(total, 3), "v1_submit_to_running_s": round(submit_s, 3),
               "v1_deploy_to_first_answer_s": round(deploy_s, 3), "anchor_first_run_s": ANCHOR_FIRST_RUN_S,
               "anchor_aci_deploy_s": ANCHOR_ACI_DEPLOY_S}
    print_table("Azure ML v1 notebook on the local workspace (anchors: the v1 workshop's figures on Azure, quoted)", [
        ("train-register-deploy-score notebook", f"{total:.1f} s", f"{ANCHOR_FIRST_RUN_S + ANCHOR_ACI_DEPLOY_S:.0f} s",
         ratio(ANCHOR_FIRST_RUN_S + ANCHOR_ACI_DEPLOY_S, total), "faster"),
        ("submit → Running", f"{submit_s:.2f} s", f"{ANCHOR_FIRST_RUN_S:.0f} s (first run)",
         ratio(ANCHOR_FIRST_RUN_S, submit_s), "faster"),
        ("deploy → first answer", f"{deploy_s:.2f} s", f"{ANCHOR_ACI_DEPLOY_S:.0f} s (ACI)",
         ratio(ANCHOR_ACI_DEPLOY_S, deploy_s), "faster"),
    ])
    write_json("v1", figures, args.json)


if __name__ == "__main__":
    main()
