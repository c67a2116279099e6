"""AutoML benchmark: our AutoML run vs FLAML called directly with the same budget, vs scikit-learn's
HistGradientBoosting and a linear model at default settings, on the same 25 % holdout (random_state=0).

    python bench/automl.py [--quick] [--budgets 30,120] [--json PATH]

Datasets (bundled with scikit-learn): load_breast_cancer (ROC AUC), load_digits (accuracy),
load_diabetes (r2). JSON: {dataset: {budget_s: {ours_score, flaml_score, hgb_score, linear_score,
overhead_fraction, ours_wall_s}}}; overhead_fraction = time the run spent recording trials (child
runs, metrics, charts) / budget. --quick: one 15 s budget.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_table, write_json  # noqa: E402

DATASETS = {
    "breast_cancer": ("load_breast_cancer", "classification", "AUC_weighted", "roc_auc"),
    "digits": ("load_digits", "classification", "accuracy", "accuracy"),
    "diabetes": ("load_diabetes", "regression", "r2_score", "r2"),
}


def split(loader: str):
    import sklearn.datasets as d
    from sklearn.model_selection import train_test_split

    X, y = getattr(d, loader)(return_X_y=True, as_frame=True)
    return train_test_split(X, y, test_size=0.25, random_state=0)


def holdout_score(kind: str, model, X, y) -> float:
    from sklearn.metrics import accuracy_score, r2_score, roc_auc_score

    if kind == "roc_auc":
        proba = model.predict_proba(X)
        return roc_auc_score(y, proba[:, 1])
    pred = model.predict(X)
    return accuracy_score(y, pred) if kind == "accuracy" else r2_score(y, pred)


def anchors(task: str, kind: str, Xtr, ytr, Xte, yte) -> dict[str, float]:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.linear_model import LogisticRegression, Ridge

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hgb = (HistGradientBoostingClassifier() if task == "classification" else HistGradientBoostingRegressor()).fit(Xtr, ytr)
        # the linear anchor: defaults, with enough iterations to converge on unscaled data
        linear = (LogisticRegression(max_iter=5000) if task == "classification" else Ridge()).fit(Xtr, ytr)
    return {"hgb_score": holdout_score(kind, hgb, Xte, yte), "linear_score": holdout_score(kind, linear, Xte, yte)}


def flaml_direct(task: str, kind: str, budget: float, Xtr, ytr, Xte, yte) -> float:
    from flaml import AutoML

    automl = AutoML()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        automl.fit(Xtr, ytr, task=task, metric=kind, time_budget=budget, seed=0, verbose=0)
    return holdout_score(kind, automl, Xte, yte)


def ours(client, task: str, metric: str, budget: float, Xtr, ytr, Xte, yte, kind: str, folder: Path) -> dict:
    from aml_magics.automl.settings import automl_submission

    frame = Xtr.copy()
    frame["label"] = ytr.to_numpy()
    sub = automl_submission(data="train", in_memory=True, task=task, label="label", metric=metric, budget_s=budget,
                            in_values={"training_data": frame}, source_dir=folder, experiment="bench-automl",
                            client=client)
    t = time.perf_counter()
    run = client.runs.submit(sub)
    info = client.runs.wait(run.id)
    wall = time.perf_counter() - t
    if info.status != "Completed":
        raise SystemExit(f"AutoML run {run.id} ended {info.status}: {info.error}")
    _, model = run.get_output()
    tracking = float(info.tags.get("automl.tracking_s", "nan"))
    return {"ours_score": holdout_score(kind, model, Xte, yte), "overhead_fraction": tracking / budget,
            "ours_wall_s": wall, "ours_model": repr(model), "ours_trials": len(client.runs.children(run.id).infos)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--budgets", default="30,120")
    p.add_argument("--datasets", default=",".join(DATASETS))
    p.add_argument("--json", metavar="PATH")
    args = p.parse_args()
    budgets = [15.0] if args.quick else [float(b) for b in args.budgets.split(",")]
    os.environ.setdefault("AML_MAGICS_WORKSPACE", tempfile.mkdtemp(prefix="bench-automl-ws-"))
    from aml_magics.core.client import Client

    client = Client()
    folder = Path(tempfile.mkdtemp(prefix="bench-automl-src-"))
    results: dict = {}
    rows = []
    for name in args.datasets.split(","):
        loader, task, metric, kind = DATASETS[name]
        Xtr, Xte, ytr, yte = split(loader)
        base = anchors(task, kind, Xtr, ytr, Xte, yte)
        for budget in budgets:
            fig = dict(base)
            fig["flaml_score"] = flaml_direct(task, kind, budget, Xtr, ytr, Xte, yte)
            fig.update(ours(client, task, metric, budget, Xtr, ytr, Xte, yte, kind, folder))
            results.setdefault(name, {})[f"{budget:g}"] = fig
            best_anchor = max(fig["flaml_score"], fig["hgb_score"], fig["linear_score"])
            rows.append((f"{name} {kind} @{budget:g}s", f"{fig['ours_score']:.4f}",
                         f"flaml {fig['flaml_score']:.4f} hgb {fig['hgb_score']:.4f} linear {fig['linear_score']:.4f}",
                         f"{fig['ours_score'] / best_anchor:.4f}x", "≥ best anchor"))
            rows.append(("  tracking overhead / budget", f"{fig['overhead_fraction'] * 100:.2f} %",
                         f"wall {fig['ours_wall_s']:.1f} s, {fig['ours_trials']} trials", "", "≤ 5 %"))
            print(json.dumps({name: {f"{budget:g}": fig}}), flush=True)
    print_table("AutoML: holdout score, ours vs FLAML direct / HistGradientBoosting / linear", rows)
    write_json("automl", results, args.json)


if __name__ == "__main__":
    main()
