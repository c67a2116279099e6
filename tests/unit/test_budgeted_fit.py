"""HistGradientBoosting within FLAML's budget for one fit: cut short when it cannot finish in time (and the trial's
configuration says how far it went), the very same model when it can."""
from __future__ import annotations

import time

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes

from aml_magics.automl.engine import _capped, _default_config, _is_default
from aml_magics.automl.trials import Trial
from aml_magics.automl.learners import HGBEstimator


def test_a_fit_with_room_is_the_same_model_as_one_call():
    X, y = load_breast_cancer(return_X_y=True)
    whole, budgeted = HGBEstimator(task="binary", max_iter=100), HGBEstimator(task="binary", max_iter=100)
    whole.fit(X, y)
    budgeted.fit(X, y, budget=60)
    assert budgeted.capped_iterations is None and budgeted._model.n_iter_ == 100
    assert np.array_equal(whole._model.predict_proba(X), budgeted._model.predict_proba(X))


def test_a_fit_that_cannot_finish_in_its_budget_stops_in_time_and_says_how_far_it_went():
    """214 classes (the diabetes target as a class label): 100 iterations take 8 s; a 0.5 s budget stops it. On one
    thread, as the engine gives a trial its share of the cores: OpenMP's two threads on two cores that another process
    keeps busy took 2.5 s for the first iteration alone (0.35 s on an idle machine)."""
    from threadpoolctl import threadpool_limits

    X, y = load_diabetes(return_X_y=True)
    est = HGBEstimator(task="multiclass", max_iter=100)
    started = time.time()
    with threadpool_limits(1):
        est.fit(X, y.astype(int), budget=0.5)
    assert time.time() - started < 1.5
    assert est.capped_iterations is not None and 1 <= est.capped_iterations < 100
    assert est._model.n_iter_ == est.capped_iterations and not est._model.warm_start
    assert est._model.predict_proba(X[:3]).shape == (3, len(np.unique(y)))


@pytest.mark.parametrize("config, capped", [
    ({**_default_config("hgb", "classification"), "max_iter": 9}, True),
    (_default_config("hgb", "classification"), False),  # the default itself: not a capped one
    ({**_default_config("hgb", "classification"), "max_iter": 9, "learning_rate": 0.2}, False),
])
def test_a_capped_default_still_counts_as_the_default(config, capped):
    assert _capped(config, _default_config("hgb", "classification")) is capped
    # and is marked a default in the out-of-fold table and kept as one (it was not: a CI run on a loaded machine)
    default = config == _default_config("hgb", "classification")
    assert _is_default(Trial("hgb", config, 0.9, "r", 1.0, 1), "classification") is (capped or default)


def test_folds_cut_short_and_folds_not_add_up_in_flamls_cross_validation():
    """FLAML sums a trial's logged values over its folds key by key, starting from the first fold's keys. Only the
    folds a budget cut short logged the iterations they reached, so a trial whose first fold finished and a later
    one did not failed the whole AutoML run: KeyError: '_capped_max_iter' (seen in CI, on a loaded machine). Every
    fold logs its iterations now, and the trial's value is their mean."""
    from flaml.automl.ml import default_cv_score_agg_func

    from aml_magics.automl.data import TrainingData
    from aml_magics.automl.ensemble import CAPPED_KEY, Scorer

    X, y = load_diabetes(return_X_y=True)
    y = y.astype(int)
    classes = np.unique(y)
    y = np.searchsorted(classes, y)
    whole, cut = HGBEstimator(task="multiclass", max_iter=4), HGBEstimator(task="multiclass", max_iter=100)
    whole.fit(X, y, budget=600)
    cut.fit(X, y, budget=0.5)
    assert whole.capped_iterations is None and cut.capped_iterations is not None
    scorer = Scorer("classification", "accuracy", TrainingData(X, y, None, len(y), classes=list(classes)))
    folds = [scorer.flaml_metric(X[:50], y[:50], est, None, X, y) for est in (whole, cut)]
    loss, logged = default_cv_score_agg_func([f[0] for f in folds], [f[1] for f in folds])
    assert logged[CAPPED_KEY] == (4 + cut.capped_iterations) / 2


def test_the_linear_learner_keeps_its_budget_and_is_the_same_model_when_it_has_room():
    """Logistic regression of 214 classes (the diabetes target, its rows 8 times) iterates for 1.9 s; FLAML gave the
    linear learner a budget it did not look at (a 5 s AutoML search took 9 s). With room, the fit is the very one
    without a budget (lbfgs is deterministic: a limit it does not reach changes nothing)."""
    from threadpoolctl import threadpool_limits

    from aml_magics.automl.learners import LinearEstimator

    X, y = load_breast_cancer(return_X_y=True)
    whole, budgeted = LinearEstimator(task="binary"), LinearEstimator(task="binary")
    whole.fit(X, y)
    budgeted.fit(X, y, budget=60)
    assert np.array_equal(whole._model.model_.coef_, budgeted._model.model_.coef_)
    X, y = load_diabetes(return_X_y=True)
    X, y = np.repeat(X, 8, axis=0), np.repeat(y.astype(int), 8)
    est = LinearEstimator(task="multiclass")
    started = time.time()
    with threadpool_limits(1):
        est.fit(X, y, budget=0.3)
    assert time.time() - started < 1.2
    assert est._model.model_.n_iter_.max() < 59 and not est._model.model_.warm_start  # 59 to converge
    assert est._model.predict_proba(X[:3]).shape == (3, len(np.unique(y)))


def test_flaml_does_not_fit_the_best_configuration_again_after_the_search():
    """After a cross-validated search FLAML fitted its best configuration on all the rows, with no time limit, inside
    the budget's share the engine keeps for its own choice and refit (7 s of a 5 s budget for 214 classes)."""
    from flaml import AutoML

    from aml_magics.automl.engine import _search_only
    from aml_magics.automl.learners import LinearEstimator

    calls = []

    class Recorded(LinearEstimator):
        def fit(self, X_train, y_train, budget=None, free_mem_ratio=0, **kwargs):
            calls.append(bool(kwargs.get("is_retrain")))
            return super().fit(X_train, y_train, budget=budget, free_mem_ratio=free_mem_ratio, **kwargs)

    X, y = load_breast_cancer(return_X_y=True)
    for cls, refits in ((AutoML, True), (_search_only(AutoML), False)):
        calls.clear()
        automl = cls()
        automl.add_learner("recorded", Recorded)
        automl.fit(X_train=X, y_train=y, task="classification", metric="accuracy", estimator_list=["recorded"],
                   max_iter=3, eval_method="cv", n_splits=3, verbose=0, retrain_full=False, mlflow_logging=False)
        assert calls.count(False) == 9 and any(calls) is refits, (cls, calls)  # 3 trials × 3 folds


def test_a_linear_fit_that_converges_while_going_on_stops_there(monkeypatch):
    """The first call is given the iterations one timed iteration says fit; when it uses them all, the fit goes on
    from there. A continuation that converged went on again and again (each restart converged at once) until the
    budget was spent."""
    from sklearn.linear_model import LogisticRegression

    from aml_magics.automl.model import ScaledLogistic

    calls = []
    fit = LogisticRegression.fit

    def counted(self, *args, **kwargs):
        calls.append(self.max_iter)
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(LogisticRegression, "fit", counted)
    X, y = load_diabetes(return_X_y=True)
    X, y = np.repeat(X, 8, axis=0), np.repeat(y.astype(int), 8)
    model = ScaledLogistic().fit(X, y, seconds=3.0)  # 59 iterations converge: about 2 s here
    assert len(calls) <= 5, calls  # the timing fit, the first, and a continuation or two
    assert model.model_.predict_proba(X[:3]).shape == (3, len(np.unique(y)))
