"""The VotingEnsemble is judged on folds its weights were not chosen on (``automl.ensemble.cross_fitted``): greedy
selection scored on the predictions it selected on flatters it — with many near-identical candidates it "wins" by
fitting the folds' noise, and the final model was then an ensemble worse on new rows than the single model."""
from __future__ import annotations

import numpy as np
import pytest

from aml_magics.automl.ensemble import clearly_better, cross_fitted, greedy
from tests.unit.test_one_standard_error import _scorer


def _mixed(weights, preds):
    return sum(w * p for w, p in zip(weights, preds))


def test_candidates_without_complementary_errors_do_not_make_a_clearly_better_ensemble():
    flattered = honest = 0
    for seed in range(10):
        rng = np.random.RandomState(seed)
        y = rng.normal(size=300)
        sizes = [60] * 5
        scorer = _scorer("regression", "r2_score", y)
        base = y + rng.normal(scale=0.7, size=300)
        # the same model, each copy distorted on a fifth of the rows: no copy knows anything the base does not
        preds = [base] + [base + rng.normal(scale=0.3, size=300) * (rng.rand(300) < 0.2) for _ in range(10)]
        weights, _, single, _ = greedy(preds, y, scorer)
        # scored on the predictions its weights were chosen on, the ensemble always looks better than the single
        flattered += scorer.value(y, _mixed(weights, preds)) > scorer.value(y, preds[single])
        honest += clearly_better(cross_fitted(preds, y, sizes, scorer), preds[single], y, sizes, scorer,
                                 corrected=True)
    assert flattered >= 8  # what the choice was made on before: the bias this guards against is real
    assert honest <= 1


def test_models_with_independent_errors_still_make_a_clearly_better_ensemble():
    rng = np.random.RandomState(3)
    y = rng.normal(size=400)
    sizes = [80] * 5
    scorer = _scorer("regression", "r2_score", y)
    preds = [y + rng.normal(scale=0.6, size=400) for _ in range(3)]
    mixed = cross_fitted(preds, y, sizes, scorer)
    assert mixed.shape == y.shape
    assert all(clearly_better(mixed, p, y, sizes, scorer, corrected=True) for p in preds)


def test_classification_probabilities_and_a_single_fold():
    rng = np.random.RandomState(4)
    y = np.array([0, 1] * 100)
    scorer = _scorer("classification", "AUC_weighted", y)
    preds = []
    for _ in range(3):
        p1 = np.clip(0.5 + (y - 0.5) * 0.4 + rng.normal(scale=0.3, size=200), 0.01, 0.99)
        preds.append(np.column_stack([1 - p1, p1]))
    mixed = cross_fitted(preds, y, [40] * 5, scorer)
    assert mixed.shape == (200, 2) and np.allclose(mixed.sum(axis=1), 1.0)
    assert cross_fitted(preds, y, [200], scorer) is None  # one fold: nothing to hold out


def test_the_one_metric_fast_path_agrees_with_the_whole_set():
    from aml_magics.automl import metrics as M

    rng = np.random.RandomState(5)
    for n_classes in (2, 4):
        y = rng.randint(0, n_classes, size=120)
        p = rng.dirichlet(np.ones(n_classes), size=120)
        whole = M.compute("classification", y, np.argmax(p, axis=1), p, n_classes)
        for metric in ("accuracy", "AUC_weighted", "norm_macro_recall"):
            assert M.one("classification", metric, y, p, n_classes) == pytest.approx(whole[metric], abs=1e-12)
    assert np.isnan(M.one("classification", "AUC_weighted", np.zeros(10, int), rng.dirichlet([1, 1], size=10), 2))
    y = rng.normal(size=90) * 10
    pred = y + rng.normal(size=90)
    whole = M.compute("regression", y, pred, y_range=25.0)
    for metric in ("r2_score", "normalized_root_mean_squared_error", "normalized_mean_absolute_error",
                   "spearman_correlation"):
        assert M.one("regression", metric, y, pred, y_range=25.0) == pytest.approx(whole[metric], abs=1e-12)


def test_the_fast_auc_is_scikit_learns_with_ties_clipping_and_missing_classes():
    from aml_magics.automl import metrics as M

    rng = np.random.RandomState(6)
    for trial in range(60):
        k = (2, 3, 5)[trial % 3]
        n = rng.randint(5, 200)
        y = rng.randint(0, k, n)
        p = rng.dirichlet(np.ones(k), size=n)
        if trial % 2:
            p = np.round(p, 1) + 1e-9  # ties
        if trial % 5 == 0:
            p[:, 0] = 0.0  # clipped to the same tiny value
        whole = M.compute("classification", y, np.argmax(p, axis=1), p, k)["AUC_weighted"]
        fast = M.one("classification", "AUC_weighted", y, p, k)
        assert (np.isnan(whole) and np.isnan(fast)) or fast == pytest.approx(whole, abs=1e-9)


def test_a_candidate_predicting_nan_is_never_part_of_the_ensemble():
    rng = np.random.RandomState(7)
    y = rng.normal(size=200)
    scorer = _scorer("regression", "r2_score", y)
    broken = np.full(200, np.nan)  # a linear model that overflowed
    preds = [y + rng.normal(scale=0.5, size=200), broken, y + rng.normal(scale=0.5, size=200)]
    weights, scores, single, single_scores = greedy(preds, y, scorer)
    assert weights[1] == 0 and single != 1 and np.isfinite(scores["r2_score"])
    mixed = cross_fitted(preds, y, [40] * 5, scorer)
    assert np.isfinite(mixed).all()


def test_a_search_winner_too_slow_to_score_out_of_fold_in_time_is_not_scored():
    """Out-of-fold scoring costs a fit per fold: the search's best is left unscored (and then nothing is) when
    those fits would overrun the deadline — a slow RandomForest picked at the end of a 30 s search took the run
    to 41 s. With time, every candidate is scored."""
    import time

    from sklearn.linear_model import Ridge

    from aml_magics.automl.ensemble import out_of_fold
    from aml_magics.automl.trials import Trial

    rng = np.random.RandomState(0)
    y = rng.normal(size=200)
    scorer = _scorer("regression", "r2_score", y)
    scorer.data.X = np.c_[y + rng.normal(scale=0.5, size=200), rng.normal(size=200)]
    splits = [(np.setdiff1d(np.arange(200), np.arange(k, 200, 5)), np.arange(k, 200, 5)) for k in range(5)]
    fitted = []

    def make(trial):
        fitted.append(trial.learner)
        return Ridge()

    slow = Trial("rf", {}, 0.2, "best", 8.0, 1)  # a holdout trial of 8 s: five folds cost ~44 s
    quick = Trial("linear", {}, 0.1, "other", 0.01, 2)
    kept, preds, truth = out_of_fold([slow, quick], make, scorer, splits, time.time() + 20, fits_per_trial=1)
    assert kept == [] and preds == [] and fitted == []
    kept, preds, truth = out_of_fold([slow, quick], make, scorer, splits, time.time() + 60, fits_per_trial=1)
    assert kept == [slow, quick] and len(preds) == 2 and len(truth) == 200 and len(fitted) == 10


def test_a_fold_missing_a_class_between_others_is_fitted_and_scored_in_the_data_s_classes():
    """A fold whose training rows lack class 1 of 0…3 (a class of one row): XGBoost refused its labels ("Invalid
    classes inferred from unique values of y: expected [0 1 2], got [0 2 3]") and the AutoML run failed while scoring
    out-of-fold. Our XGBoost learner fits it on renumbered labels; its predictions come back in the data's own
    classes."""
    import numpy as np

    from aml_magics.automl.data import TrainingData
    from aml_magics.automl.ensemble import Scorer
    from aml_magics.automl.learners import XGBoostEstimator

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    y = np.where(X[:, 0] > 0.5, 3, np.where(X[:, 0] < -0.5, 0, 2))
    y[0] = 1
    data = TrainingData(X=X, y=y, featurizer=None, rows=300, classes=["a", "b", "c", "d"], y_range=None)
    scorer = Scorer("classification", "accuracy", data)
    est = XGBoostEstimator(task="multiclass", n_estimators=10)
    est.fit(X[1:], y[1:])
    p = scorer.predict(est, X)
    assert list(est.classes_) == [0, 2, 3]  # renumbered for XGBoost, answered in the data's classes
    assert p.shape == (300, 4) and np.allclose(p.sum(axis=1), 1) and np.all(p[:, 1] == 0)
    assert (np.argmax(p, axis=1) == y)[1:].mean() > 0.9  # the classes where they belong, not shifted by the gap
    assert set(est.predict(X[1:])) <= {0, 2, 3}
    whole = XGBoostEstimator(task="multiclass", n_estimators=10)
    whole.fit(X, y)
    assert list(whole.classes_) == [0, 1, 2, 3]  # every class present: fitted as it is
