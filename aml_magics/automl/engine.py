"""The AutoML engine: the process of an AutoML run (on a compute target, never in the kernel).

1. loads the data (a DataFrame sent from the notebook, a CSV/Parquet file, or a datastore path),
   featurizes it and reports what it did;
2. searches with FLAML (Microsoft's AutoML library) under the time budget / trial count, with our
   HistGradientBoosting and linear learners added at their default settings; FLAML writes every
   trial to its log file, a thread turns each line into a child run (algorithm, hyperparameters,
   the full Azure metric set for the task, duration) and charts the primary metric on the parent;
3. scores the best configuration of each algorithm out-of-fold and builds a greedy weighted
   ensemble of them (Azure's VotingEnsemble); the ensemble is kept only when it validates better;
4. refits the winner on all the data and saves ``outputs/model.pkl`` (an ``AutoMLModel``), the
   featurization report, the per-algorithm summary and the best model's feature importance.

A resumed run (``%aml resume``) reads the trials it already has from the store and continues with
the time that is left, FLAML warm-started from the best configuration of each algorithm.
"""
from __future__ import annotations

import json
import math
import os
import threading
import time
from pathlib import Path
from typing import Any

from . import metrics as M
from .settings import algorithm_name

ENSEMBLE_SHARE = 0.15  # of the budget, kept for scoring candidates out-of-fold and ensembling
MAX_CANDIDATES = 5


class Engine:
    def __init__(self, run, spec: dict):
        self.run = run
        self.spec = spec
        self.s = spec["settings"]
        self.task = self.s["task"]
        self.metric = self.s["primary_metric"]
        self.maximize = M.goal(self.metric) == "max"
        self.t0 = time.time()
        self.tracking_s = 0.0
        self.trials: list[dict] = []  # {"learner", "config", "value", "metrics", "run_id", "time"}
        self.lock = threading.Lock()
        self.n_classes = 0
        self.y_range = None
        # threads per trial from the compute's cores and how many runs it takes at once: oversubscribed cores made
        # a 5-fold HistGradientBoosting 8x slower on 2 cores
        self.threads = int(self.s.get("threads") or 1)

    # -- data ----------------------------------------------------------------------------------

    def load(self):
        import pandas as pd

        ref = self.s["data"]
        if ref["kind"] == "memory":
            import pickle

            import cloudpickle  # noqa: F401

            with open(Path(os.environ["AML_MAGICS_RUN_SPEC"]).parent / "in.pkl", "rb") as f:
                values = pickle.load(f)
            data = values["training_data"]
            if not hasattr(data, "columns"):
                import numpy as np

                arr = np.asarray(data)
                arr = arr.reshape(len(arr), -1)
                frame = pd.DataFrame(arr, columns=[f"f{i}" for i in range(arr.shape[1])])
                frame[self.s["label"]] = np.asarray(values[ref.get("label_variable") or self.s["label"]])
                return frame
            return pd.DataFrame(data).copy()
        path = os.environ.get(f"AZURE_ML_INPUT_{ref['name']}") if ref["kind"] == "input" else ref["path"]
        if ref.get("format") == "parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path, sep=None if str(path).endswith((".tsv", ".txt")) else ",", engine="python"
                           if str(path).endswith((".tsv", ".txt")) else "c")

    def prepare(self, frame):
        import numpy as np

        from .featurize import Featurizer

        label = self.s["label"]
        frame.columns = [str(c) for c in frame.columns]
        before = len(frame)
        frame = frame[frame[label].notna()].reset_index(drop=True)
        dropped = before - len(frame)
        if dropped:
            print(f"Dropped {dropped} rows without a label.", flush=True)
        if len(frame) < 10:
            from ..runtime.launch import EngineStopped

            raise EngineStopped(f"only {len(frame)} rows have a label; AutoML needs at least 10")
        self.forecasting = None
        if self.task == "forecasting":
            from .forecast import add_lag_features, keep_history, plan

            tcol = self.s["time_column"]
            import pandas as pd

            frame[tcol] = pd.to_datetime(frame[tcol], errors="coerce")
            frame = frame.sort_values(tcol, kind="stable").reset_index(drop=True)
            self.forecasting = plan(frame, tcol, label, self.s["horizon"])
            self.forecasting["history"] = keep_history(frame, self.forecasting)
            X = add_lag_features(frame, self.forecasting)
        else:
            X = frame.drop(columns=[label])
        y_raw = frame[label]
        self.classes = None
        if self.task == "classification":
            self.classes, y = np.unique(y_raw.astype(str) if y_raw.dtype == object else y_raw, return_inverse=True)
            self.n_classes = len(self.classes)
            if self.n_classes < 2:
                from ..runtime.launch import EngineStopped

                raise EngineStopped(f"the label {label!r} has a single class; classification needs two or more")
        else:
            y = y_raw.astype(float).to_numpy()
            self.y_range = float(y.max() - y.min()) or 1.0
        self.featurizer = Featurizer(self.s["featurization"]).fit(X)
        self.X = self.featurizer.transform(X)
        self.y = np.asarray(y)
        report = self.featurizer.report()
        self.run.log_table("featurization", report)
        with open("outputs/featurization.json", "w") as f:
            json.dump(report, f, indent=1)
        changed = [f"{c}: {a}" for c, a in zip(report["column"], report["action"]) if a != "kept"]
        print(f"Data: {len(frame)} rows × {X.shape[1]} columns → {self.X.shape[1]} features"
              + (f"; {len(changed)} columns changed:\n  " + "\n  ".join(changed[:30]) if changed else ""), flush=True)

    # -- scoring -------------------------------------------------------------------------------

    def _proba(self, estimator, X):
        import numpy as np

        p = np.asarray(estimator.predict_proba(X), dtype=float)
        classes = list(getattr(estimator, "classes_", range(p.shape[1])))
        if p.shape[1] == self.n_classes and classes == list(range(self.n_classes)):
            return p
        full = np.zeros((len(X), self.n_classes))
        for j, c in enumerate(classes):
            full[:, int(c)] = p[:, j]
        return full

    def score(self, y, pred=None, proba=None) -> dict[str, float]:
        import numpy as np

        if self.task == "classification":
            pred = np.argmax(proba, axis=1) if proba is not None else pred
            return M.compute("classification", y, pred, proba, self.n_classes)
        return M.compute("regression", y, pred, y_range=self.y_range)

    def flaml_metric(self, X_val, y_val, estimator, labels, X_train, y_train, *args, **kwargs):
        import numpy as np

        y_val = np.asarray(y_val)
        if self.task == "classification":
            values = self.score(y_val, proba=self._proba(estimator, X_val))
        else:
            values = self.score(y_val, pred=estimator.predict(X_val))
        primary = values.get(self.metric, math.nan)
        return M.loss(self.metric, primary), values

    # -- trials as child runs ------------------------------------------------------------------------

    def record(self, learner: str, config: dict, values: dict, trial_time: float, ended: float) -> None:
        t = time.perf_counter()
        algo = algorithm_name(learner, self.task)
        n = len(self.trials) + 1
        config = {k: v for k, v in config.items() if not k.startswith("FLAML_")}
        scalars = {k: float(v) for k, v in values.items() if isinstance(v, (int, float)) and math.isfinite(v)}
        scalars["trial_time_s"] = float(trial_time)
        child_id = self.run.record_child(
            f"{algo} {n}", params={"algorithm": algo, **{k: _short(v) for k, v in config.items()}},
            tags={"automl.learner": learner, "automl.config": json.dumps(config, default=float), "automl.trial": str(n)},
            metrics=scalars, started=ended - trial_time, ended=ended,
        )
        value = values.get(self.metric)
        trial = {"learner": learner, "config": config, "value": value, "run_id": child_id, "time": trial_time}
        with self.lock:
            self.trials.append(trial)
            best = self.best_trial()
        if value is not None and math.isfinite(value):
            self.run.log(f"trial_{self.metric}", value, step=n)
            self.run.log(self.metric, best["value"], step=n)  # the parent's value: the best so far
        self.tracking_s += time.perf_counter() - t

    def best_trial(self) -> dict | None:
        scored = [t for t in self.trials if t["value"] is not None and math.isfinite(t["value"])]
        if not scored:
            return None
        return (max if self.maximize else min)(scored, key=lambda t: t["value"])

    def tail_log(self, path: Path, stop: threading.Event) -> None:
        offset = 0
        pending = ""
        while True:
            done = stop.is_set()
            try:
                with open(path) as f:
                    f.seek(offset)
                    chunk = f.read()
                    offset = f.tell()
            except FileNotFoundError:
                chunk = ""
            pending += chunk
            *lines, pending = pending.split("\n")
            for line in lines:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if "learner" not in rec or "config" not in rec:
                    continue  # FLAML's checkpoint lines
                logged = rec.get("logged_metric") or {}
                try:
                    self.record(rec["learner"], rec["config"], logged if isinstance(logged, dict) else {},
                                float(rec.get("trial_time") or 0.0), self.search_t0 + float(rec.get("wall_clock_time") or 0))
                except Exception as exc:  # never let bookkeeping stop the search
                    print(f"aml-magics: could not record a trial: {exc}", flush=True)
            if done:
                return
            stop.wait(0.2)

    def rebuild(self) -> None:
        """Trials already in the store (a resumed run)."""
        children = self.run.client.runs.list(parent_run_id=self.run.id, limit=None).infos
        for info in sorted(children, key=lambda i: i.created or 0):
            learner = info.tags.get("automl.learner")
            if not learner or info.status != "Completed":
                continue
            try:
                config = json.loads(info.tags.get("automl.config", "{}"))
            except ValueError:
                continue
            self.trials.append({"learner": learner, "config": config, "value": info.latest_metrics.get(self.metric),
                                "run_id": info.run_id, "time": float(info.latest_metrics.get("trial_time_s") or 0)})
        if self.trials:
            print(f"Resuming with {len(self.trials)} trials already in the store.", flush=True)

    # -- search ------------------------------------------------------------------------------------

    def search(self) -> None:
        import logging

        from flaml import AutoML

        from .learners import CUSTOM

        logging.getLogger("flaml.automl.logger").setLevel(logging.WARNING)
        budget = self.s.get("budget_s")
        max_trials = self.s.get("max_trials")
        done = len(self.trials)
        if max_trials is not None and done >= max_trials:
            return
        time_budget = -1
        if budget is not None:
            spent = float(self.run.get_tags().get("automl.elapsed_s", 0) or 0)
            time_budget = budget * (1 - ENSEMBLE_SHARE) - spent - (time.time() - self.t0)
            if time_budget < 1:
                print("No time left for searching; going on with the trials so far.", flush=True)
                return
        automl = AutoML()
        for name, cls in CUSTOM.items():
            automl.add_learner(name, cls)
        validation = self.s["validation"]
        kwargs: dict[str, Any] = {}
        if validation["method"] == "cv":
            kwargs.update(eval_method="cv", n_splits=validation["folds"])
        elif validation["method"] == "holdout":
            kwargs.update(eval_method="holdout", split_ratio=validation["fraction"])
        elif len(self.y) < 5000 and self.task != "forecasting":
            kwargs.update(eval_method="cv", n_splits=5)
        else:
            kwargs.update(eval_method="holdout", split_ratio=0.2 if len(self.y) < 50000 else 0.1)
        if self.task == "forecasting":
            kwargs["split_type"] = "time"
        starting = {}
        for t in self.trials:
            best = starting.get(t["learner"])
            if t["value"] is not None and (best is None or (t["value"] > best[0] if self.maximize else t["value"] < best[0])):
                starting[t["learner"]] = (t["value"], t["config"])
        if starting:
            kwargs["starting_points"] = {k: v[1] for k, v in starting.items()}
        learners = [k for k in self.s["learners"] if not (k == "kneighbor" and len(self.y) > 20000)]
        log_path = Path("outputs") / "flaml_trials.jsonl"
        log_path.unlink(missing_ok=True)
        stop = threading.Event()
        self.search_t0 = time.time()
        tailer = threading.Thread(target=self.tail_log, args=(log_path, stop), daemon=True)
        tailer.start()
        print(f"Searching {', '.join(algorithm_name(k, self.task) for k in learners)}"
              + (f" for {time_budget:.0f} s" if time_budget > 0 else "")
              + (f", at most {max_trials - done} trials" if max_trials else "") + f" ({kwargs['eval_method']})…",
              flush=True)
        try:
            automl.fit(
                X_train=self.X, y_train=self.y, task="classification" if self.task == "classification" else "regression",
                metric=self.flaml_metric, time_budget=time_budget, max_iter=(max_trials - done) if max_trials else None,
                estimator_list=learners, log_file_name=str(log_path), log_type="all", seed=self.s.get("seed", 0),
                retrain_full=False, verbose=0, keep_search_state=False, model_history=False, mlflow_logging=False,
                n_jobs=self.threads, **kwargs,
            )
        finally:
            stop.set()
            tailer.join()
            spent = float(self.run.get_tags().get("automl.elapsed_s", 0) or 0) + (time.time() - self.t0)
            self.run.set_tags({"automl.elapsed_s": f"{spent:.1f}"})

    # -- ensemble and final model -------------------------------------------------------------------

    def candidates(self) -> list[dict]:
        best: dict[str, dict] = {}
        for t in self.trials:
            if t["value"] is None or not math.isfinite(t["value"]):
                continue
            cur = best.get(t["learner"])
            if cur is None or (t["value"] > cur["value"] if self.maximize else t["value"] < cur["value"]):
                best[t["learner"]] = t
        return sorted(best.values(), key=lambda t: t["value"], reverse=self.maximize)[:MAX_CANDIDATES]

    def _estimator(self, trial: dict):
        from flaml.automl.task.factory import task_factory

        from .learners import estimator_class

        name = ("binary" if self.n_classes == 2 else "multiclass") if self.task == "classification" else "regression"
        cls = estimator_class(trial["learner"], task_factory(name))
        return cls(task=name, n_jobs=self.threads, **trial["config"])

    def _folds(self):
        import numpy as np
        from sklearn.model_selection import KFold, StratifiedKFold

        n = len(self.y)
        if self.task == "forecasting":
            cut = int(n * 0.8)
            return [(np.arange(cut), np.arange(cut, n))]
        if n >= 20000:
            rng = np.random.RandomState(self.s.get("seed", 0))
            idx = rng.permutation(n)
            cut = int(n * 0.8)
            return [(idx[:cut], idx[cut:])]
        splitter = StratifiedKFold(5, shuffle=True, random_state=self.s.get("seed", 0)) \
            if self.task == "classification" else KFold(5, shuffle=True, random_state=self.s.get("seed", 0))
        return list(splitter.split(self.X, self.y))

    def out_of_fold(self, cands: list[dict], deadline: float):
        """Predictions of each candidate on data it was not trained on (the same folds for all)."""
        import numpy as np

        folds = self._folds()
        val_idx = np.concatenate([v for _, v in folds])
        preds = []
        kept = []
        for cand in cands:
            # a candidate's CV trial time is about what scoring it out-of-fold costs: skip what would overrun
            # (FLAML timed it with its own folds, usually 5; we use len(folds))
            if preds and time.time() + 1.1 * (cand.get("time") or 0.0) * len(folds) / 5 > deadline:
                continue
            parts = []
            for train, val in folds:
                est = self._estimator(cand)
                est.fit(self.X[train], self.y[train])
                parts.append(self._proba(est, self.X[val]) if self.task == "classification"
                             else np.asarray(est.predict(self.X[val]), dtype=float))
            preds.append(np.concatenate(parts))
            kept.append(cand)
        return kept, preds, self.y[val_idx]

    def ensemble(self, cands: list[dict], preds: list, y) -> tuple[list[float], dict, dict]:
        """Greedy ensemble selection with replacement (Caruana et al.) on out-of-fold predictions."""
        def value(p):
            s = self.score(y, proba=p) if self.task == "classification" else self.score(y, pred=p)
            return s.get(self.metric, math.nan), s

        singles = [value(p) for p in preds]
        order = sorted(range(len(preds)), key=lambda i: singles[i][0], reverse=self.maximize)
        best_single = order[0]
        # start from the best few averaged (Caruana's sorted initialization), then add greedily
        counts = [0] * len(preds)
        for i in order[:min(3, len(order))]:
            counts[i] = 1
        current = sum(preds[i] for i in order[:min(3, len(order))]) / sum(counts)
        best_value, best_scores = value(current)
        for _ in range(20):
            step = None
            for i, p in enumerate(preds):
                k = sum(counts)
                trial = (current * k + p) / (k + 1)
                v, s = value(trial)
                if step is None or (v > step[0] if self.maximize else v < step[0]):
                    step = (v, s, i, trial)
            if step is None or not (step[0] > best_value if self.maximize else step[0] < best_value):
                break
            best_value, best_scores, i, current = step[0], step[1], step[2], step[3]
            counts[i] += 1
        weights = [c / sum(counts) for c in counts]
        return weights, best_scores, {"single": best_single, "single_scores": singles[best_single][1]}

    def finish(self) -> None:
        import pickle

        import numpy as np

        from .model import AutoMLModel

        cands = self.candidates()
        if not cands:
            from ..runtime.launch import EngineStopped

            raise EngineStopped(f"no trial produced a {self.metric} value; see the trials' logs")
        chosen, weights, ens_scores = [cands[0]], [1.0], None
        budget = self.s.get("budget_s")
        refit = sum(c.get("time") or 0.0 for c in cands[:3]) / 4  # fitting the members once on all the data
        deadline = (self.t0 + budget * 0.97 - refit) if budget else time.time() + 3600
        if self.s.get("ensemble", True) and len(cands) >= 2:
            t = time.time()
            kept, preds, y = self.out_of_fold(cands, deadline)
            if len(kept) >= 2:
                w, scores, single = self.ensemble(kept, preds, y)
                members = [(c, x) for c, x in zip(kept, w) if x > 0]
                single_value = single["single_scores"].get(self.metric)
                ens_value = scores.get(self.metric)
                if len(members) >= 2 and (ens_value > single_value if self.maximize else ens_value < single_value):
                    chosen, weights, ens_scores = [c for c, _ in members], [x for _, x in members], scores
                    print(f"VotingEnsemble of {len(chosen)} ({', '.join(algorithm_name(c['learner'], self.task) for c in chosen)}): "
                          f"{self.metric} {ens_value:.5g} vs best single {single_value:.5g} out-of-fold.", flush=True)
                else:
                    chosen = [kept[single["single"]]]
                    print(f"Best single model {algorithm_name(chosen[0]['learner'], self.task)} kept "
                          f"(the ensemble validated worse: {ens_value:.5g} vs {single_value:.5g}).", flush=True)
                self.ensemble_time = time.time() - t
        fitted = []
        for c in chosen:
            est = self._estimator(c)
            est.fit(self.X, self.y)
            fitted.append(est)
        names = [algorithm_name(c["learner"], self.task) for c in chosen]
        model = AutoMLModel(self.task, self.featurizer, fitted, weights, names,
                            classes=list(self.classes) if self.classes is not None else None, label=self.s["label"],
                            forecasting=self.forecasting)
        with open("outputs/model.pkl.tmp", "wb") as f:
            pickle.dump(model, f)
        os.replace("outputs/model.pkl.tmp", "outputs/model.pkl")
        if ens_scores is not None:
            best_run = self.run.record_child(
                "VotingEnsemble",
                params={"algorithm": "VotingEnsemble", "members": ", ".join(f"{n}×{w:.2f}" for n, w in zip(names, weights))},
                tags={"automl.learner": "VotingEnsemble", "automl.members": json.dumps([c["run_id"] for c in chosen])},
                metrics={k: v for k, v in ens_scores.items() if math.isfinite(v)},
                started=time.time() - getattr(self, "ensemble_time", 0.0),
            )
            best_value = ens_scores[self.metric]
        else:
            best_run, best_value = chosen[0]["run_id"], chosen[0]["value"]
        self.run.set_tags({"best_run": best_run, "best_algorithm": model.algorithm,
                           f"best_{self.metric}": f"{best_value:.6g}"})
        self.summaries(fitted[int(np.argmax(weights))])
        print(f"Best: {model.algorithm} with {self.metric} {best_value:.5g} → outputs/model.pkl "
              f"({len(self.trials)} trials; tracking took {self.tracking_s:.2f} s)", flush=True)

    def summaries(self, best_estimator) -> None:
        import numpy as np

        by_algo: dict[str, list[dict]] = {}
        for t in self.trials:
            by_algo.setdefault(algorithm_name(t["learner"], self.task), []).append(t)
        rows = []
        for algo, ts in by_algo.items():
            vals = [t["value"] for t in ts if t["value"] is not None and math.isfinite(t["value"])]
            best = (max if self.maximize else min)(vals) if vals else math.nan
            rows.append((algo, len(ts), best, sum(t["time"] for t in ts)))
        rows.sort(key=lambda r: r[2] if r[2] == r[2] else (-math.inf if self.maximize else math.inf),
                  reverse=self.maximize)
        self.run.log_table("algorithm_summary", {
            "algorithm": [r[0] for r in rows], "trials": [r[1] for r in rows],
            f"best {self.metric}": [round(r[2], 6) for r in rows], "time s": [round(r[3], 2) for r in rows]})
        importance = None
        model = getattr(best_estimator, "estimator", None) or best_estimator
        if getattr(model, "feature_importances_", None) is not None:
            importance = np.asarray(model.feature_importances_, dtype=float)
        elif getattr(model, "coef_", None) is not None:
            importance = np.abs(np.asarray(model.coef_, dtype=float)).reshape(-1, len(self.featurizer.feature_names)).mean(axis=0)
        else:  # HistGradientBoosting, k-NN, ensembles: how much the score drops when a feature is shuffled
            importance = self.permutation_importance(model)
        if importance is not None and importance.sum() > 0:
            importance = importance / importance.sum()
            order = np.argsort(-importance)[:20]
            table = {"feature": [self.featurizer.feature_names[i] for i in order],
                     "importance": [round(float(importance[i]), 5) for i in order]}
            self.run.log_table("feature_importance", table)
            with open("outputs/feature_importance.json", "w") as f:
                json.dump(table, f, indent=1)

    def permutation_importance(self, model):
        """Permutation importance on the validation part of the data (the first fold's, at most 2,000 rows)."""
        import numpy as np
        from sklearn.inspection import permutation_importance

        try:
            _, val = self._folds()[0]
            val = val[:2000]
            result = permutation_importance(model, self.X[val], self.y[val], n_repeats=3,
                                            random_state=self.s.get("seed", 0), n_jobs=1)
        except Exception as exc:  # noqa: BLE001 - the summary is a bonus; the model is already saved
            print(f"Feature importance skipped: {type(exc).__name__}: {exc}", flush=True)
            return None
        return np.clip(np.asarray(result.importances_mean, dtype=float), 0, None)

    # -- the run -------------------------------------------------------------------------------------

    def main(self) -> None:
        from threadpoolctl import threadpool_limits

        os.makedirs("outputs", exist_ok=True)
        frame = self.load()
        self.prepare(frame)
        with open("outputs/automl_settings.json", "w") as f:
            json.dump(self.s, f, indent=1, default=str)
        self.rebuild()
        print(f"Each trial uses {self.threads} thread(s).", flush=True)
        with threadpool_limits(limits=self.threads):  # OpenMP/BLAS inside HistGradientBoosting, numpy, LightGBM
            self.search()
            self.finish()
        total = time.time() - self.t0
        self.run.log("tracking_overhead_s", self.tracking_s)
        self.run.set_tags({"automl.tracking_s": f"{self.tracking_s:.3f}", "automl.total_s": f"{total:.2f}"})


def _short(v: Any) -> Any:
    if isinstance(v, float):
        return float(f"{v:.6g}")
    return v


def run_automl(spec: dict, run) -> None:
    Engine(run, spec).main()
