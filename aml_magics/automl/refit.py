"""Any trial's own model, on demand: what v1's ``get_output(iteration=N)`` asks of every child of an AutoML run.

The search scores a trial on folds and keeps no model of it (keeping one per trial would cost the budget a refit
each, or memory and disk for hundreds); the trials the final model is made of keep theirs. For any other child,
its configuration (the ``automl.learner`` and ``automl.config`` tags) is fitted once on all of the run's training
data with the run's featurization — what the trial would have left — in a process of its own started as the
engine was (the run's interpreter, in its snapshot, with its inputs), and kept with the child run
(``outputs/model.pkl``) for the next time.

``python -m aml_magics.automl.refit LEARNER CONFIG_JSON OUT_PATH`` is that process.
"""
from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

from ..core.errors import InvalidInput, NotSupported


def child_model(client, parent_id: str, child_id: str, timeout: float = 1800) -> Path:
    """The local path of ``outputs/model.pkl`` of AutoML child ``child_id`` — fitted now when it kept none."""
    try:
        return client.runs.local_file(child_id, "outputs/model.pkl")
    except Exception:  # noqa: BLE001 - no model kept: fit it (below)
        pass
    info = client.runs.get(child_id)
    learner, config = info.tags.get("automl.learner"), info.tags.get("automl.config")
    if not learner or config is None or learner == "VotingEnsemble":
        raise NotSupported(f"child run {child_id} is not an AutoML trial with a configuration; "
                           "get_output() gives the final model")
    path = getattr(client.backend, "path", None)
    if client.capabilities.remote or path is None:
        raise NotSupported(f"child run {child_id} kept no model on the service; get_output() gives the final model")
    folder = Path(path) / "runs" / parent_id
    spec = json.loads((folder / "io" / "spec.json").read_text())
    env = dict(os.environ, AML_MAGICS_RUN_SPEC=str(folder / "io" / "spec.json"), PYTHONUNBUFFERED="1")
    env.update({f"AZURE_ML_INPUT_{k}": str(v) for k, v in (spec.get("inputs") or {}).items()})
    env.update({k: str(v) for k, v in (spec.get("environment_variables") or {}).items()})
    python = spec.get("python") or sys.executable
    print(f"Fitting the model of {info.display_name or child_id} on the run's training data (once: the child run "
          "keeps it)…", flush=True)
    with tempfile.TemporaryDirectory(prefix="aml-refit-") as tmp:
        out = Path(tmp) / "model.pkl"
        done = subprocess.run([python, "-m", "aml_magics.automl.refit", learner, config, str(out)],
                              cwd=folder / "snapshot", env=env, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0 or not out.is_file():
            last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise InvalidInput(f"could not fit the model of child run {child_id}: {last[0]}")
        client.runs.handle(child_id).upload_file("outputs/model.pkl", out)
    return client.runs.local_file(child_id, "outputs/model.pkl")


class _Quiet:
    """The run ``prepare`` reports featurization to: none here (the run has its report)."""

    def log_table(self, *_args, **_kwargs) -> None:
        pass


def main(argv: list[str]) -> int:
    from ..core.children import take_signals_back
    from ..core.specs import AutoMLSpec

    take_signals_back()  # (started from the engine's thread: a cancel's SIGTERM must reach it)
    from . import data as training
    from .engine import make_estimator
    from .model import AutoMLModel
    from .settings import algorithm_name

    learner, config, out = argv[0], json.loads(argv[1]), Path(argv[2])
    spec_file = json.loads(Path(os.environ["AML_MAGICS_RUN_SPEC"]).read_text())
    spec = AutoMLSpec.from_settings(spec_file["settings"])
    frame = training.load(spec)  # in the run's snapshot: its data files are where the engine read them
    with tempfile.TemporaryDirectory() as scratch:  # prepare() writes a report to outputs/: not the run's
        os.chdir(scratch)
        os.mkdir("outputs")
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()):
            data = training.prepare(frame, spec, _Quiet())
    est = make_estimator(learner, config, spec.task, data.n_classes, os.cpu_count() or 1)
    est.fit(data.X, data.y)
    name = algorithm_name(learner, spec.task)
    model = AutoMLModel(spec.task, data.featurizer, [est], [1.0], [name], classes=data.classes, label=spec.label,
                        forecasting=data.forecasting)
    with open(out, "wb") as f:
        pickle.dump(model, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
