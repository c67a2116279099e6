"""AutoML benchmark: our AutoML run against FLAML called directly and Optuna-tuned HistGradientBoosting (the same
budget), and HistGradientBoosting and a scaled linear model at scikit-learn's defaults — over 5 random splits per
dataset (75 % train / 25 % holdout, the same splits for every contender), mean and spread.

    python bench/automl.py [--quick] [--budgets 30,120] [--splits 5] [--datasets a,b] [--json PATH]

Datasets (all shipped with installed packages, nothing downloaded): scikit-learn's breast_cancer (ROC AUC),
digits and wine (accuracy), diabetes (r2); statsmodels' fair (affairs > 0, ROC AUC), anes96 (party, accuracy),
grunfeld (investment, r2), randhie (doctor visits, r2); and one forecasting series, statsmodels' yearly sunspots
(the last 10 years of 5 rolling origins, mean absolute error, lower is better; anchors there: the last value and
the 11-year cycle repeated). ``spread`` is the standard deviation over the splits.
JSON: {dataset: {budget: {ours_mean, ours_spread, best_anchor, best_anchor_mean, ours_wall_s_max, budget_s,
goal, anchors: {name: {mean, spread}}, ours_models}}}.
--quick: grunfeld (statsmodels) and sunspots (forecasting), one split, a 5 s budget.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_table, scratch, write_json  # noqa: E402

# name: (loader, task, our primary metric, holdout measure)
DATASETS = {
    "breast_cancer": ("sk:load_breast_cancer", "classification", "AUC_weighted", "roc_auc"),
    "digits": ("sk:load_digits", "classification", "accuracy", "accuracy"),
    "wine": ("sk:load_wine", "classification", "accuracy", "accuracy"),
    "diabetes": ("sk:load_diabetes", "regression", "r2_score", "r2"),
    "fair": ("sm:fair", "classification", "AUC_weighted", "roc_auc"),
    "anes96": ("sm:anes96", "classification", "accuracy", "accuracy"),
    "grunfeld": ("sm:grunfeld", "regression", "r2_score", "r2"),
    "randhie": ("sm:randhie", "regression", "r2_score", "r2"),
    "sunspots": ("sm:sunspots", "forecasting", "normalized_mean_absolute_error", "mae"),
}
HORIZON = 10


def load(loader: str):
    """(X DataFrame, y Series) of a bundled dataset."""
    import pandas as pd

    source, name = loader.split(":")
    if source == "sk":
        import sklearn.datasets as d

        return getattr(d, name)(return_X_y=True, as_frame=True)
    import statsmodels.api as sm

    data = getattr(sm.datasets, name).load_pandas()
    frame = data.data.copy()
    if name == "fair":
        y = (frame.pop("affairs") > 0).astype(int)
    elif name == "anes96":
        y = frame.pop("PID").astype(int)
    elif name == "grunfeld":
        frame = frame.drop(columns=["firm"], errors="ignore")
        y = frame.pop("invest")
    elif name == "randhie":
        y = frame.pop("mdvis")
    elif name == "sunspots":
        frame["year"] = pd.to_datetime(frame["YEAR"].astype(int).astype(str), format="%Y")
        return frame[["year"]], frame["SUNACTIVITY"].astype(float)
    else:  # pragma: no cover
        raise KeyError(name)
    return frame.apply(pd.to_numeric, errors="coerce").astype(float), y


def splits(task: str, X, y, n: int) -> list:
    """``n`` (train, test) index pairs: random 75/25 (stratified for classification); rolling origins for a series."""
    import numpy as np
    from sklearn.model_selection import ShuffleSplit, StratifiedShuffleSplit

    if task == "forecasting":
        end = len(y)
        return [(np.arange(0, end - HORIZON * (k + 1)), np.arange(end - HORIZON * (k + 1), end - HORIZON * k))
                for k in range(n)]
    cls = StratifiedShuffleSplit if task == "classification" else ShuffleSplit
    return list(cls(n_splits=n, test_size=0.25, random_state=0).split(X, y))


def holdout_score(kind: str, model, X, y) -> float:
    from sklearn.metrics import accuracy_score, mean_absolute_error, r2_score, roc_auc_score

    if kind == "roc_auc":
        return roc_auc_score(y, model.predict_proba(X)[:, 1])
    pred = model.predict(X)
    if kind == "mae":
        return mean_absolute_error(y, pred)
    return accuracy_score(y, pred) if kind == "accuracy" else r2_score(y, pred)


def defaults(task: str, kind: str, Xtr, ytr, Xte, yte) -> dict[str, float]:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if task == "forecasting":  # the naive forecasts every forecaster is measured against
        import numpy as np

        last = np.full(len(yte), ytr.iloc[-1])
        cycle = np.array([ytr.iloc[-11 + (i % 11)] for i in range(len(yte))])
        return {"naive": float(np.abs(yte.to_numpy() - last).mean()),
                "seasonal_naive_11y": float(np.abs(yte.to_numpy() - cycle).mean())}
    clf = task == "classification"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hgb = (HistGradientBoostingClassifier() if clf else HistGradientBoostingRegressor()).fit(Xtr, ytr)
        linear = make_pipeline(StandardScaler(), LogisticRegression() if clf else Ridge()).fit(Xtr.fillna(0), ytr)
    return {"hgb_default": holdout_score(kind, hgb, Xte, yte),
            "linear_default": holdout_score(kind, linear, Xte.fillna(0), yte)}


def flaml_direct(task: str, kind: str, budget: float, Xtr, ytr, Xte, yte) -> float | None:
    from flaml import AutoML

    if task == "forecasting":
        return None  # FLAML's forecasters (ARIMA, Prophet) are another comparison; the naive ones anchor here
    automl = AutoML()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        automl.fit(Xtr, ytr, task=task, metric=kind, time_budget=budget, seed=0, verbose=0)
    return holdout_score(kind, automl, Xte, yte)


def optuna_hgb(task: str, kind: str, budget: float, Xtr, ytr, Xte, yte) -> float | None:
    """HistGradientBoosting tuned by Optuna (TPE, 3-fold CV, defaults tried first) within the budget, refit on all."""
    import optuna
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.model_selection import cross_val_score

    if task == "forecasting":
        return None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    cls = HistGradientBoostingClassifier if task == "classification" else HistGradientBoostingRegressor
    scoring = {"roc_auc": "roc_auc", "accuracy": "accuracy", "r2": "r2"}[kind]
    t0 = time.perf_counter()

    def params(trial):
        return {"learning_rate": trial.suggest_float("learning_rate", 0.01, 0.5, log=True),
                "max_leaf_nodes": trial.suggest_int("max_leaf_nodes", 4, 256, log=True),
                "min_samples_leaf": trial.suggest_int("min_samples_leaf", 2, 128, log=True),
                "l2_regularization": trial.suggest_float("l2_regularization", 1e-6, 10.0, log=True),
                "max_iter": trial.suggest_int("max_iter", 50, 1000, log=True)}

    def objective(trial):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return cross_val_score(cls(**params(trial)), Xtr, ytr, cv=3, scoring=scoring).mean()

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))
    study.enqueue_trial({"learning_rate": 0.1, "max_leaf_nodes": 31, "min_samples_leaf": 20,
                         "l2_regularization": 1e-6, "max_iter": 100})
    study.optimize(objective, timeout=max(1.0, budget * 0.9 - (time.perf_counter() - t0)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = cls(**study.best_params).fit(Xtr, ytr)
    return holdout_score(kind, model, Xte, yte)


def ours(client, task: str, metric: str, budget: float, Xtr, ytr, Xte, yte, kind: str, folder: Path) -> dict:
    from aml_magics.automl.settings import automl_submission

    frame = Xtr.copy()
    frame["label"] = ytr.to_numpy()
    extra = {"time_column": "year", "horizon": HORIZON} if task == "forecasting" else {}
    sub = automl_submission(data="train", in_memory=True, task=task, label="label", metric=metric, budget_s=budget,
                            in_values={"training_data": frame}, source_dir=folder, experiment="bench-automl",
                            client=client, **extra)
    t = time.perf_counter()
    run = client.runs.submit(sub)
    info = client.runs.wait(run.id)
    wall = time.perf_counter() - t
    if info.status != "Completed":
        raise SystemExit(f"AutoML run {run.id} ended {info.status}: {info.error}")
    _, model = run.get_output()
    return {"score": holdout_score(kind, model, Xte, yte), "wall_s": wall, "model": model.algorithm,
            "trials": len(client.runs.children(run.id).infos)}


def _mean_spread(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--budgets", default="30,120")
    p.add_argument("--splits", type=int, default=5)
    p.add_argument("--datasets", default=",".join(DATASETS))
    p.add_argument("--json", metavar="PATH")
    args = p.parse_args()
    budgets = [5.0] if args.quick else [float(b) for b in args.budgets.split(",")]
    n_splits = 1 if args.quick else args.splits
    names = ["grunfeld", "sunspots"] if args.quick else args.datasets.split(",")
    os.environ.setdefault("AML_MAGICS_WORKSPACE", scratch("bench-automl-ws-"))
    from aml_magics.core.client import Client

    client = Client()
    folder = Path(scratch("bench-automl-src-"))
    results: dict = {}
    rows = []
    for name in names:
        loader, task, metric, kind = DATASETS[name]
        X, y = load(loader)
        goal = "min" if kind == "mae" else "max"
        pairs = splits(task, X, y, n_splits)
        fixed = [defaults(task, kind, X.iloc[tr], y.iloc[tr], X.iloc[te], y.iloc[te]) for tr, te in pairs]
        for budget in budgets:
            scores: dict[str, list[float]] = {k: [f[k] for f in fixed] for k in fixed[0]}
            mine, walls, models = [], [], []
            for tr, te in pairs:
                Xtr, ytr, Xte, yte = X.iloc[tr], y.iloc[tr], X.iloc[te], y.iloc[te]
                for anchor, fn in (("flaml", flaml_direct), ("optuna_hgb", optuna_hgb)):
                    value = fn(task, kind, budget, Xtr, ytr, Xte, yte)
                    if value is not None:
                        scores.setdefault(anchor, []).append(value)
                got = ours(client, task, metric, budget, Xtr, ytr, Xte, yte, kind, folder)
                mine.append(got["score"])
                walls.append(got["wall_s"])
                models.append(got["model"])
            anchors = {k: dict(zip(("mean", "spread"), _mean_spread(v))) for k, v in scores.items()}
            pick = min if goal == "min" else max
            best = pick(anchors, key=lambda k: anchors[k]["mean"])
            mean, spread = _mean_spread(mine)
            fig = {"ours_mean": mean, "ours_spread": spread, "best_anchor": best,
                   "best_anchor_mean": anchors[best]["mean"], "ours_wall_s_max": max(walls), "budget_s": budget,
                   "goal": goal, "splits": len(pairs), "anchors": anchors, "ours_models": models}
            results.setdefault(name, {})[f"{budget:g}"] = fig
            ahead = mean <= anchors[best]["mean"] if goal == "min" else mean >= anchors[best]["mean"]
            within = abs(mean - anchors[best]["mean"]) <= max(spread, anchors[best]["spread"])
            rows.append((f"{name} {kind} @{budget:g}s ×{len(pairs)}", f"{mean:.4f} ± {spread:.4f}",
                         f"{best} {anchors[best]['mean']:.4f} ± {anchors[best]['spread']:.4f}",
                         f"{mean / anchors[best]['mean']:.4f}x",
                         "ahead" if ahead else ("within a spread" if within else "BEHIND")))
            rows.append(("  wall time, worst split / budget", f"{max(walls):.1f} s",
                         ", ".join(f"{k} {v['mean']:.4f}" for k, v in anchors.items() if k != best), "",
                         f"{max(walls) / budget:.3f} (≤ 1.05)"))
            print(f"{name} @{budget:g}s: ours {mean:.4f} ± {spread:.4f}, {best} {anchors[best]['mean']:.4f} ± "
                  f"{anchors[best]['spread']:.4f}; worst wall {max(walls) / budget:.3f} × budget; chosen {models}",
                  flush=True)
            if args.json and args.json != "-":  # after every dataset: a run stopped halfway keeps what it measured
                Path(args.json).write_text(json.dumps(results, indent=2, default=str) + "\n")
    print_table("AutoML: holdout score over random splits, ours vs FLAML / Optuna HGB / defaults", rows)
    write_json("automl", results, args.json)


if __name__ == "__main__":
    main()
