"""The AutoML engine: the process of an AutoML run (on a compute target, never in the kernel).

1. loads the data (a DataFrame sent from the notebook, a CSV/Parquet file, or a datastore path),
   featurizes it and reports what it did (``data``);
2. searches with FLAML (Microsoft's AutoML library) under the time budget / trial count, with our
   HistGradientBoosting and linear learners added at their default settings; FLAML writes every
   trial to its log file, a thread turns each line into a child run (algorithm, hyperparameters,
   the full Azure metric set for the task, duration) and charts the primary metric on the parent (``trials``);
3. scores the best configuration of each algorithm out-of-fold and builds a greedy weighted
   ensemble of them (Azure's VotingEnsemble, ``ensemble``); the ensemble is kept only when it validates
   clearly better — by the corrected standard error — on folds its weights were not chosen on;
4. refits the winner on all the data and saves ``outputs/model.pkl`` (an ``AutoMLModel``), the
   featurization report, the per-algorithm summary and the best model's feature importance.

A resumed run (``%aml resume``) reads the trials it already has from the store and continues with
the time that is left, FLAML warm-started from the best configuration of each algorithm.
"""
from __future__ import annotations

import json
import math
import os
import pickle
import threading
import time
from pathlib import Path
from typing import Any

from ..core import ranking
from ..core.errors import EngineStopped, storage_reason, through_a_full_disk
from ..core.render import counted
from ..core.specs import AutoMLSpec
from . import data as training
from . import ensemble
from .settings import algorithm_name
from .trials import Trial, Trials

ENSEMBLE_SHARE = 0.15  # of the budget, kept for scoring candidates out-of-fold and ensembling
# ... and at least this much of a short budget (up to SHORT_BUDGET_SHARE of it, and never leaving the search less
# than SEARCH_MIN_S, or a 5 s budget had no time to search and failed with no trial): 15 % of 12 s left
# 0.9 s when the search ended, less than five fits of the HistGradientBoosting default (1.0-1.4 s on 569 rows, one
# thread), which a slower machine then left out of the final choice
AFTER_SEARCH_MIN_S = 4.0
SHORT_BUDGET_SHARE = 0.35
SEARCH_MIN_S = 2.0
MAX_CANDIDATES = 5
DEFAULT_LEARNERS = ("hgb", "linear")  # always scored out-of-fold at scikit-learn's defaults (Engine.defaults)


def after_search(budget: float, left: float) -> float:
    """Seconds of a time budget kept from the search for what follows it (scoring the candidates and the defaults
    out-of-fold, ensembling and the refit), ``left`` seconds of it being left as the search starts."""
    return max(ENSEMBLE_SHARE * budget, min(AFTER_SEARCH_MIN_S, SHORT_BUDGET_SHARE * budget, left - SEARCH_MIN_S))


class Engine:
    def __init__(self, run, spec: dict):
        self.run = run
        self.spec = AutoMLSpec.from_settings(spec["settings"])
        self.task = self.spec.task
        self.metric = self.spec.primary_metric
        self.t0 = time.time()
        try:  # the budget runs from the submission: the process start and the data's arrival count too
            info = run.get_info()
            if info.created and not float(info.tags.get("automl.elapsed_s", 0) or 0):
                self.t0 = min(self.t0, max(info.created, self.t0 - 30))
        except Exception:  # noqa: BLE001 - a remote run's details: the engine's own start is close enough
            pass
        self.trials = Trials(run, self.task, self.metric, self.spec.goal)
        # threads per trial from the compute's cores and how many runs it takes at once: oversubscribed cores made
        # a 5-fold HistGradientBoosting 8x slower on 2 cores
        self.threads = int(self.spec.threads or 1)
        self.data: training.TrainingData | None = None
        self.scorer: ensemble.Scorer | None = None
        self.ensemble_s = 0.0
        self.out_of_fold: float | None = None  # the final model's primary metric out-of-fold, when it was scored so
        self.notes_said = self.folds_said = False

    # -- search ------------------------------------------------------------------------------------

    def validation(self) -> dict[str, Any]:
        plan = self.spec.validation
        if plan["method"] == "cv":
            return {"eval_method": "cv", "n_splits": self._folds(plan["folds"])}
        if plan["method"] == "holdout":
            return self._holdout(plan["fraction"])
        if len(self.data.y) < 5000 and self.task != "forecasting":
            return {"eval_method": "cv", "n_splits": self._folds(5)}
        return self._holdout(0.2 if len(self.data.y) < 50000 else 0.1)

    def _holdout(self, fraction: float) -> dict[str, Any]:
        """A stratified holdout needs two rows of every class and a validation row per class; else a plain random
        split (FLAML then puts a class missing from one side there). FLAML's copying of rare classes to 20 rows made
        any split possible, with copies on both sides (``auto_augment``, turned off)."""
        out: dict[str, Any] = {"eval_method": "holdout", "split_ratio": fraction}
        if self.task == "classification":
            import numpy as np

            counts = np.unique(np.asarray(self.data.y), return_counts=True)[1]
            if counts.min() < 2 or len(counts) > int(len(self.data.y) * fraction):
                out["split_type"] = "uniform"
        return out

    def _folds(self, wanted: int) -> int:
        """Stratified folds need a class with a row in each: fewer folds when every class is smaller (as
        ``ensemble.folds``; FLAML copied the rows of small classes instead — ``auto_augment``, turned off)."""
        if self.task != "classification":
            return wanted
        import numpy as np

        largest = int(np.unique(np.asarray(self.data.y), return_counts=True)[1].max())
        folds = max(2, min(wanted, largest))
        if folds < wanted and not self.folds_said:
            self.folds_said = True
            print(f"Note: {folds} folds, not {wanted}: no class has more than {largest} rows.", flush=True)
        return folds

    def spent_before(self) -> float:
        """Seconds earlier attempts of this run (before a resume) spent."""
        try:
            return max(0.0, float(self.run.get_tags().get("automl.elapsed_s", 0) or 0))
        except ValueError:
            return 0.0

    def search(self) -> None:
        import logging

        from flaml import AutoML

        from .learners import CUSTOM

        logging.getLogger("flaml.automl.logger").setLevel(logging.WARNING)
        budget, max_trials, done = self.spec.budget_s, self.spec.max_trials, len(self.trials)
        if max_trials is not None and done >= max_trials:
            return
        time_budget = -1.0
        if budget is not None:
            left = budget - self.spent_before() - (time.time() - self.t0)
            time_budget = left - after_search(budget, left)
            if time_budget < 1:
                print("No time left for searching" + (f"; going on with the {len(self.trials)} trial(s) so far."
                                                      if len(self.trials) else "."), flush=True)
                return
        automl = _search_only(AutoML)()
        for name, cls in CUSTOM.items():
            automl.add_learner(name, cls)
        kwargs = self.validation()
        if self.task == "forecasting":
            kwargs["split_type"] = "time"
        self.note_rare_classes(kwargs.get("n_splits"))
        starting = {t.learner: t.config for t in self.trials.best_per_learner()}
        if starting:
            kwargs["starting_points"] = starting
        learners = [k for k in self.spec.learners if not (k == "kneighbor" and len(self.data.y) > 20000)]
        log_path = Path("outputs") / "flaml_trials.jsonl"
        log_path.unlink(missing_ok=True)
        stop = threading.Event()
        follower = threading.Thread(target=self.trials.follow, args=(log_path, time.time(), stop), daemon=True,
                                    name="aml-automl-trials")
        follower.start()
        print(f"Searching {', '.join(algorithm_name(k, self.task) for k in learners)}"
              + (f" for {time_budget:.0f} s" if time_budget > 0 else "")
              + (f", at most {max_trials - done} trials" if max_trials else "") + f" ({kwargs['eval_method']})…",
              flush=True)
        try:
            automl.fit(
                X_train=self.data.X, y_train=self.data.y,
                task="classification" if self.task == "classification" else "regression",
                metric=self.scorer.flaml_metric, time_budget=time_budget,
                max_iter=(max_trials - done) if max_trials else None, estimator_list=learners,
                log_file_name=str(log_path), log_type="all", seed=self.spec.seed, retrain_full=False, verbose=0,
                keep_search_state=False, model_history=False, mlflow_logging=False, n_jobs=self.threads,
                # FLAML copies the rows of every class of fewer than 20 until it has 20 (auto_augment): a copy in the
                # training folds and one in the validation fold is a memorized answer — a 1-neighbor model scored
                # 1.0 in cross-validation and 0.008 on new rows (214 classes); folds here keep every row once
                auto_augment=False, **kwargs,
            )
        except OSError as exc:  # FLAML's trial log cannot be written: the search stops, its trials so far are kept
            if storage_reason(exc) != "the disk is full":
                raise
            stop.set()
            follower.join()
            print(f"The disk filled up during the search ({exc.strerror or exc}); going on with the "
                  f"{len(self.trials)} trials so far.", flush=True)
            return
        finally:
            stop.set()
            follower.join()
            self.run.set_tags({"automl.elapsed_s": f"{self.spent_before() + (time.time() - self.t0):.1f}"})
        if max_trials is not None and max_trials - done == 1 and len(self.trials) == done:
            self.single_trial(automl)

    def note_rare_classes(self, n_splits: int | None) -> None:
        """Classes with fewer rows than the folds: one line, said once (scikit-learn warned per fit, with its file
        and line, and — the label having many values — that it "could represent a regression problem", which the
        label's own note has said)."""
        import warnings

        import numpy as np

        for message in ("The least populated class in y has only", "The number of unique classes is greater than"):
            warnings.filterwarnings("ignore", message=message)
        if self.task != "classification" or not n_splits or self.notes_said:
            return
        self.notes_said = True
        names, counts = np.unique(np.asarray(self.data.y), return_counts=True)
        rare = names[counts < n_splits]
        if len(rare):
            labels = self.data.classes  # the label's own values, not their indices
            shown = ", ".join(str(labels[i]) if labels is not None else str(i) for i in rare[:5]) + \
                (" …" if len(rare) > 5 else "")
            print(f"Note: {len(rare)} of {len(names)} classes have fewer rows than the {n_splits} folds ({shown}): "
                  "some folds validate without them.", flush=True)

    def single_trial(self, automl) -> None:
        """The one trial of ``--trials 1`` (or the last one of a resumed run). Given one trial (max_iter=1), FLAML
        does not search: it fits its first learner's starting configuration on all the data without validating it
        and logs no trial — so every ``--trials 1`` run failed with "no trial produced a value". That configuration
        is validated here, on the folds the final choice uses, and recorded as the search's trial."""
        learner, config = getattr(automl, "best_estimator", None), dict(getattr(automl, "best_config", None) or {})
        if not learner:
            return
        started = time.time()
        try:
            splits = ensemble.folds(self.data, self.task, self.spec.seed)
            _, preds, y = ensemble.out_of_fold([Trial(learner, config, None, "", 0.0, 0)], self.estimator,
                                               self.scorer, splits, math.inf)
            scores = self.scorer.score(y, preds[0])
        except Exception as exc:  # noqa: BLE001 - a trial that fails is said, as FLAML's failing trials are
            print(f"The trial of {algorithm_name(learner, self.task)} failed: {type(exc).__name__}: {exc}",
                  flush=True)
            return
        self.trials.record(learner, config, scores, time.time() - started, time.time())

    # -- ensemble and final model -------------------------------------------------------------------

    def estimator(self, trial: Trial):
        return make_estimator(trial.learner, trial.config, self.task, self.data.n_classes, self.threads)

    def defaults(self, cands: list[Trial]) -> list[Trial]:
        """HistGradientBoosting and the scaled linear model at scikit-learn's defaults — what every user tries first —
        unless already among ``cands`` or blocked: the search's own trial of that configuration when it ran one, else
        a trial to be scored out-of-fold now."""
        out = []
        for learner in DEFAULT_LEARNERS:
            if learner not in self.spec.learners:
                continue  # blocked by the user's settings
            config = _default_config(learner, self.task)
            same = [t for t in self.trials.items if t.learner == learner and _same_config(t.config, config)] or \
                [t for t in self.trials.items if t.learner == learner and _capped(t.config, config)]
            trial = same[0] if same else Trial(learner, config, None, "", 0.0, 0)
            if not any(c is trial or c.learner == learner and _same_config(c.config, config) for c in cands):
                out.append(trial)  # (a capped one already among them, as its algorithm's best, is not added twice)
        return out

    def choose(self, cands: list[Trial], deadline: float) -> tuple[list[Trial], list[float], dict | None]:
        """The final model's members and weights, chosen on out-of-fold predictions over the same folds: the best of
        the search's best per algorithm, the defaults (``defaults``) and — when it validates better than every one
        of them — a VotingEnsemble of them (then with its scores). So the final model is never measurably worse,
        out-of-fold, than what a user would get by hand."""
        cands = cands[:1] + self.defaults(cands) + cands[1:]
        chosen: tuple[list[Trial], list[float], dict | None] = ([cands[0]], [1.0], None)
        if len(cands) < 2 and cands[0].run_id:
            return chosen
        t = time.time()
        splits = ensemble.folds(self.data, self.task, self.spec.seed)
        slack = 0.04 * (self.spec.budget_s or 0.0)  # the defaults may use most of the budget's 5 % promise
        defaults = tuple(c for c in cands if _is_default(c, self.task))
        kept, preds, y = ensemble.out_of_fold(cands, self.estimator, self.scorer, splits, deadline, required=defaults,
                                              slack=slack, fits_per_trial=self.validation().get("n_splits", 1))
        if not kept:
            print(f"Not scored out-of-fold (no time left in the budget): the search's best, "
                  f"{algorithm_name(cands[0].learner, self.task)}, is the final model.", flush=True)
            self.ensemble_s = time.time() - t
            return chosen
        skipped = [algorithm_name(c.learner, self.task) for c in cands if c not in kept]
        if skipped:
            print(f"Not scored out-of-fold (no time left in the budget): {', '.join(skipped)}.", flush=True)
        if len(kept) >= 2:
            weights, scores, single, single_scores = ensemble.greedy(preds, y, self.scorer)
            self.log_candidates(kept, preds, y)
            sizes = [len(v) for _, v in splits]
            kept_default = self.prefer_default(kept, preds, y, sizes, single)
            if kept_default != single:
                single, single_scores = kept_default, self.scorer.score(y, preds[kept_default])
            members = [(c, w) for c, w in zip(kept, weights) if w > 0]
            mixed = None
            if self.spec.ensemble and len(members) >= 2:  # judged on folds its weights were not chosen on
                mixed = ensemble.cross_fitted(preds, y, sizes, self.scorer)
                if mixed is None:
                    mixed = sum(w * p for w, p in zip(weights, preds))
                else:
                    scores = self.scorer.score(y, mixed)
            single_value, ens_value = single_scores.get(self.metric), scores.get(self.metric)
            if self.spec.ensemble and len(members) >= 2 and ens_value is not None and single_value is not None \
                    and ranking.is_better(ens_value, single_value, self.spec.goal) \
                    and ensemble.clearly_better(mixed, preds[single], y, sizes, self.scorer, corrected=True):
                chosen = ([c for c, _ in members], [w for _, w in members], scores)
                print(f"VotingEnsemble of {len(members)} "
                      f"({', '.join(algorithm_name(c.learner, self.task) for c, _ in members)}): "
                      f"{self.metric} {ens_value:.5g} vs best single {single_value:.5g} out-of-fold.", flush=True)
            else:
                best = kept[single]
                if not best.run_id:  # a default the search never ran: its own child run, with its out-of-fold scores
                    best = self.record_default(best, single_scores)
                chosen = ([best], [1.0], None)
                why = "" if not self.spec.ensemble else \
                    f" (the ensemble validated worse: {_g(ens_value)} vs {_g(single_value)})"
                if why and ens_value is not None and single_value is not None and \
                        ranking.is_better(ens_value, single_value, self.spec.goal):  # it was said "worse" then too
                    why = (f" (the ensemble's {_g(ens_value)} vs {_g(single_value)} is within the folds' spread: "
                           "not clearly better)")
                elif why and ens_value is not None and ens_value == single_value:
                    why = f" (the ensemble validated no better: {_g(ens_value)})"
                print(f"Best single model out-of-fold: {algorithm_name(best.learner, self.task)} "
                      f"{self.metric} {_g(single_value)}{why}.", flush=True)
            final = ens_value if chosen[2] is not None else single_value
        elif not kept[0].run_id:  # the one default allowed, the search having run no trial: recorded as its trial
            final = self._value(y, preds[0])
            chosen = ([self.record_default(kept[0], self.scorer.score(y, preds[0]))], [1.0], None)
            print(f"{algorithm_name(kept[0].learner, self.task)} at its defaults: {self.metric} {_g(final)} "
                  "out-of-fold.", flush=True)
        else:
            final = None
        if final is not None:
            self.out_of_fold = final
            self.run.set_tags({"automl.out_of_fold": f"{final:.6g}"})  # the final model's, beside the table
        self.ensemble_s = time.time() - t
        return chosen

    def prefer_default(self, kept: list[Trial], preds: list, y, sizes: list[int], best: int) -> int:
        """The best candidate out-of-fold — unless a default's score is within one standard error of it over the
        folds: then that default (the simpler model a user would have tried first wins a tie it cannot lose
        measurably)."""
        if _is_default(kept[best], self.task):
            return best
        defaults = [i for i, c in enumerate(kept) if _is_default(c, self.task)]
        if not defaults:
            return best
        values = {i: self._value(y, preds[i]) for i in defaults}
        top = ranking.best(defaults, lambda i: values[i], self.spec.goal)
        if top is None or ensemble.clearly_better(preds[best], preds[top], y, sizes, self.scorer):
            return best
        print(f"{algorithm_name(kept[top].learner, self.task)} at its defaults kept: "
              f"{algorithm_name(kept[best].learner, self.task)}'s lead out-of-fold is within one standard error "
              "of the folds.", flush=True)
        return top

    def _value(self, y, predicted) -> float | None:
        """The primary metric of out-of-fold predictions; None when it cannot take them (NaN, infinite)."""
        try:
            return ranking.score(self.scorer.value(y, predicted))
        except ValueError:
            return None

    def log_candidates(self, kept: list[Trial], preds: list, y) -> None:
        """The candidates' out-of-fold scores, as the table ``out_of_fold`` (the defaults marked): what the final
        choice was made on."""
        values = [self._value(y, p) for p in preds]
        self.run.log_table("out_of_fold", {
            "algorithm": [algorithm_name(c.learner, self.task) for c in kept],
            "default": [_is_default(c, self.task) for c in kept],
            self.metric: [None if v is None or not math.isfinite(v) else round(float(v), 6) for v in values],
        })

    def record_default(self, trial: Trial, scores: dict) -> Trial:
        name = algorithm_name(trial.learner, self.task)
        run_id = through_a_full_disk(lambda: self.run.record_child(
            name, params={"algorithm": name, **{k: str(v) for k, v in trial.config.items()}},
            tags={"automl.learner": trial.learner, "automl.default": "true",
                  "automl.config": json.dumps(trial.config, default=float)},
            metrics={k: v for k, v in scores.items() if math.isfinite(v)}, started=time.time()),
            f"the trial of {name} at its defaults is recorded")
        return Trial(trial.learner, trial.config, scores.get(self.metric), run_id, trial.time, len(self.trials) + 1)

    def finish(self) -> None:
        import numpy as np

        from .model import AutoMLModel

        cands = self.trials.best_per_learner(MAX_CANDIDATES)
        fallback = not cands
        if fallback:  # the budget left no time to search (a slow start, a resumed run that had spent it)
            cands = self.defaults([])
            if not cands or self.trials.items:  # trials ran and none produced a value: the data, not the time
                raise EngineStopped(f"no trial produced a {self.metric} value; see the trials' logs")
            names = [algorithm_name(c.learner, self.task) for c in cands]
            print(f"No trial of the search finished within the budget: the final model is "
                  f"{'the better of ' if len(names) > 1 else ''}{' and '.join(names)} at scikit-learn's defaults "
                  "(scored out-of-fold whatever time is left).", flush=True)
        budget = self.spec.budget_s
        # fitting the members once on all the data: a cross-validated trial's time is ~5 fits on 4/5 of it, a
        # holdout trial's one fit on 80-90 %
        per_fit = 0.25 if self.validation()["eval_method"] == "cv" else 1.25
        refit = sum(c.time or 0.0 for c in cands[:3]) * per_fit
        deadline = (self.t0 + budget * 0.97 - refit) if budget and not fallback else time.time() + 3600
        self.phase("ensembling")
        chosen, weights, ens_scores = self.choose(cands, deadline)
        self.phase("refitting the best on all the data")
        fitted = []
        for c in chosen:
            est = self.estimator(c)
            est.fit(self.data.X, self.data.y)
            fitted.append(est)
        names = [algorithm_name(c.learner, self.task) for c in chosen]
        model = AutoMLModel(self.task, self.data.featurizer, fitted, weights, names, classes=self.data.classes,
                            label=self.spec.label, forecasting=self.data.forecasting)
        save_through_a_full_disk(model, Path("outputs/model.pkl"))
        self.keep_member_models(chosen, fitted, names)
        if ens_scores is not None:
            best_run = through_a_full_disk(lambda: self.run.record_child(
                "VotingEnsemble",
                params={"algorithm": "VotingEnsemble",
                        "members": ", ".join(f"{n}×{w:.2f}" for n, w in zip(names, weights))},
                tags={"automl.learner": "VotingEnsemble", "automl.members": json.dumps([c.run_id for c in chosen])},
                metrics={k: v for k, v in ens_scores.items() if math.isfinite(v)},
                started=time.time() - self.ensemble_s,
            ), "the VotingEnsemble's trial is recorded")
            try:  # the ensemble's child keeps the final model, as each member keeps its own
                self.run.tracker.store_file(best_run, "outputs/model.pkl", "outputs/model.pkl")
            except Exception as exc:  # noqa: BLE001 - the run's own copy is what get_output() reads
                print(f"The ensemble's child run did not keep a copy of the model: {exc}", flush=True)
            best_value = ens_scores[self.metric]
        else:
            best_run, best_value = chosen[0].run_id, chosen[0].value
        self.run.set_tags({"best_run": best_run, "best_algorithm": model.algorithm,
                           f"best_{self.metric}": f"{best_value:.6g}"})
        self.summaries(fitted[int(np.argmax(weights))], self.t0 + 0.95 * budget if budget else math.inf)
        oof = "" if self.out_of_fold is None or f"{self.out_of_fold:.5g}" == f"{best_value:.5g}" else \
            f" in its trial, {self.out_of_fold:.5g} out-of-fold (what it was chosen on)"
        print(f"Best: {model.algorithm} with {self.metric} {best_value:.5g}{oof} → outputs/model.pkl "
              f"({len(self.trials)} trials; tracking took {self.trials.tracking_s:.2f} s)", flush=True)

    def keep_member_models(self, chosen: list, fitted: list, names: list[str]) -> None:
        """Each trial the final model is made of keeps its own fitted model (``outputs/model.pkl`` of its child
        run, already fitted on all the data: no extra training), so a child's model can be asked for by itself
        (v1's ``get_output(iteration=N)``)."""
        from .model import AutoMLModel

        for trial, est, name in zip(chosen, fitted, names):
            if not getattr(trial, "run_id", None):
                continue
            single = AutoMLModel(self.task, self.data.featurizer, [est], [1.0], [name], classes=self.data.classes,
                                 label=self.spec.label, forecasting=self.data.forecasting)
            path = Path("outputs") / f".member-{trial.run_id}.pkl"
            try:
                with open(path, "wb") as f:
                    pickle.dump(single, f)
                self.run.tracker.store_file(trial.run_id, "outputs/model.pkl", path)
            except Exception as exc:  # noqa: BLE001 - the final model is saved; a member's copy is a bonus
                print(f"The model of trial {trial.run_id} was not kept: {type(exc).__name__}: {exc}", flush=True)
            finally:
                path.unlink(missing_ok=True)

    def summaries(self, best_estimator, deadline: float) -> None:
        import numpy as np

        self.run.log_table("algorithm_summary", self.trials.summary())
        names = self.data.featurizer.feature_names
        model = getattr(best_estimator, "estimator", None) or best_estimator
        if getattr(model, "feature_importances_", None) is not None:
            importance = np.asarray(model.feature_importances_, dtype=float)
        elif getattr(model, "coef_", None) is not None:
            importance = np.abs(np.asarray(model.coef_, dtype=float)).reshape(-1, len(names)).mean(axis=0)
        elif time.time() < deadline:  # HistGradientBoosting, k-NN, ensembles: the score's drop when one is shuffled
            importance = self.permutation_importance(model)
        else:
            print("Feature importance skipped: the time budget is used up.", flush=True)
            importance = None
        if importance is not None and importance.sum() > 0:
            importance = importance / importance.sum()
            order = np.argsort(-importance)[:20]
            table = {"feature": [names[i] for i in order], "importance": [round(float(importance[i]), 5) for i in order]}
            self.run.log_table("feature_importance", table)
            with open("outputs/feature_importance.json", "w") as f:
                json.dump(table, f, indent=1)

    def permutation_importance(self, model):
        """Permutation importance on the validation part of the data (the first fold's, at most 2,000 rows)."""
        import numpy as np
        from sklearn.inspection import permutation_importance

        try:
            _, val = ensemble.folds(self.data, self.task, self.spec.seed)[0]
            val = val[:2000]
            result = permutation_importance(model, self.data.X[val], self.data.y[val], n_repeats=3,
                                            random_state=self.spec.seed, n_jobs=1)
        except Exception as exc:  # noqa: BLE001 - the summary is a bonus; the model is already saved
            print(f"Feature importance skipped: {type(exc).__name__}: {exc}", flush=True)
            return None
        return np.clip(np.asarray(result.importances_mean, dtype=float), 0, None)

    # -- the run -------------------------------------------------------------------------------------

    def phase(self, name: str) -> None:
        """What the run is doing now, for the dashboard's header (the ``automl.phase`` tag)."""
        self.run.set_tags({"automl.phase": name})

    def main(self) -> None:
        os.makedirs("outputs", exist_ok=True)
        self.phase("featurizing")
        self.data = training.prepare(training.load(self.spec), self.spec, self.run)
        self.scorer = ensemble.Scorer(self.task, self.metric, self.data)
        with open("outputs/automl_settings.json", "w") as f:
            json.dump(self.spec.to_settings(), f, indent=1, default=str)
        self.trials.rebuild()
        print(f"Each trial uses {counted(self.threads, 'thread')}.", flush=True)
        with trial_threads(self.threads, self.spec.learners):  # OpenMP/BLAS of HistGradientBoosting, numpy, …
            self.phase("searching")
            self.search()
            self.finish()
        self.phase("done")
        total = time.time() - self.t0
        self.run.log("tracking_overhead_s", self.trials.tracking_s)
        self.run.set_tags({"automl.tracking_s": f"{self.trials.tracking_s:.3f}", "automl.total_s": f"{total:.2f}"})


def _search_only(automl_class):
    """FLAML's AutoML without its fit of the best configuration on all the rows once a search of several trials has
    ended: the engine chooses the final model out-of-fold and fits it itself. FLAML's fit had no time limit and came
    out of the budget's share kept for the final choice (a 214-class HistGradientBoosting's took 7 s of a 5 s budget).
    A search of one trial is left as it is (``Engine.single_trial`` relies on it)."""

    class SearchOnly(automl_class):
        def _search(self):
            if getattr(self, "_max_iter", 0) >= 2 and hasattr(self, "_state"):
                self._state.retrain_final = False
            return super()._search()

    return SearchOnly


def save_through_a_full_disk(model: Any, path: Path) -> None:
    """Pickle the final model to ``path`` (whole or not at all), waiting for space while the disk is full: it took
    the whole budget to make, and a run that ends without it loses it."""
    data = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
    tmp = path.with_name(path.name + ".tmp")

    def save() -> None:
        try:
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise

    through_a_full_disk(save, "the final model is saved")


def trial_threads(threads: int, learners) -> Any:
    """A context in which the trials' thread pools (OpenMP, BLAS) use ``threads`` threads. ``threadpool_limits``
    limits only the pools loaded when it is entered, and scikit-learn loads its OpenMP runtime with its first
    HistGradientBoosting: entered before, the search's HGB trials ran with a thread per core, and on a loaded
    2-core machine (two busy processes) their two threads waited on each other at every barrier — one 5-fold trial
    took 35 s instead of 0.7 s and a 30 s run 68 s. So the libraries a trial uses are loaded first."""
    import importlib

    from threadpoolctl import threadpool_limits

    modules = ["sklearn.utils._openmp_helpers", "sklearn.ensemble._hist_gradient_boosting.gradient_boosting"]
    modules += [m for k, m in (("lgbm", "lightgbm"), ("xgboost", "xgboost"), ("xgb_limitdepth", "xgboost"))
                if k in learners]
    for name in dict.fromkeys(modules):
        try:
            importlib.import_module(name)
        except ImportError:  # not installed: a learner FLAML leaves out, no pool to limit
            pass
    return threadpool_limits(limits=threads)


def make_estimator(learner: str, config: dict, task: str, n_classes: int | None, threads: int):
    """An unfitted estimator of a trial: ``learner`` (FLAML's or ours) with ``config``."""
    from flaml.automl.task.factory import task_factory

    from .learners import estimator_class

    name = ("binary" if n_classes == 2 else "multiclass") if task == "classification" else "regression"
    return estimator_class(learner, task_factory(name))(task=name, n_jobs=threads, **config)


class _FlamlTask:
    """What our learners' ``search_space`` asks of a FLAML task."""

    def __init__(self, name: str):
        self.name = name

    def is_classification(self) -> bool:
        return self.name == "classification"


def _default_config(learner: str, task: str) -> dict:
    """A learner of ours at scikit-learn's defaults: its search space's initial point (FLAML's first trial of it)."""
    from .learners import CUSTOM

    space = CUSTOM[learner].search_space(0, _FlamlTask("classification" if task == "classification" else "regression"))
    return {k: v["init_value"] for k, v in space.items()}


def _is_default(trial: Trial, task: str) -> bool:
    """Whether a trial is HistGradientBoosting or the linear model at scikit-learn's defaults — HistGradientBoosting's
    cut short by the budget too, as ``defaults`` takes it (it was scored out-of-fold unmarked and not as a default the
    final choice must keep: seen on a loaded machine)."""
    if trial.learner not in DEFAULT_LEARNERS:
        return False
    config = _default_config(trial.learner, task)
    return _same_config(trial.config, config) or _capped(trial.config, config)


def _capped(a: dict, b: dict) -> bool:
    """Whether a trial's configuration is ``b`` but for fewer boosting iterations (its fits were cut short by the
    budget: HGBEstimator.fit): the default as far as the budget let it go."""
    if "max_iter" not in a or "max_iter" not in b:
        return False
    try:
        fewer = float(a["max_iter"]) < float(b["max_iter"])
    except (TypeError, ValueError):
        return False
    return fewer and _same_config({k: v for k, v in a.items() if k != "max_iter"},
                                  {k: v for k, v in b.items() if k != "max_iter"})


def _same_config(a: dict, b: dict) -> bool:
    """Whether a trial's configuration is ``b`` (FLAML logs ints as floats and may add its own keys)."""
    try:
        return all(k in a and math.isclose(float(a[k]), float(v), rel_tol=1e-9) for k, v in b.items())
    except (TypeError, ValueError):
        return False


def _g(value: float | None) -> str:
    return "no value" if value is None else f"{value:.5g}"


def run_automl(spec: dict, run) -> None:
    Engine(run, spec).main()
