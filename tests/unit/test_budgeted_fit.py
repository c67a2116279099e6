"""HistGradientBoosting within FLAML's budget for one fit: cut short when it cannot finish in time (and the trial's
configuration says how far it went), the very same model when it can."""
from __future__ import annotations

import time

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes

from aml_magics.automl.engine import _capped, _default_config
from aml_magics.automl.learners import HGBEstimator


def test_a_fit_with_room_is_the_same_model_as_one_call():
    X, y = load_breast_cancer(return_X_y=True)
    whole, budgeted = HGBEstimator(task="binary", max_iter=100), HGBEstimator(task="binary", max_iter=100)
    whole.fit(X, y)
    budgeted.fit(X, y, budget=60)
    assert budgeted.capped_iterations is None and budgeted._model.n_iter_ == 100
    assert np.array_equal(whole._model.predict_proba(X), budgeted._model.predict_proba(X))


def test_a_fit_that_cannot_finish_in_its_budget_stops_in_time_and_says_how_far_it_went():
    """214 classes (the diabetes target as a class label): 100 iterations take seconds; a 0.5 s budget stops it."""
    X, y = load_diabetes(return_X_y=True)
    est = HGBEstimator(task="multiclass", max_iter=100)
    started = time.time()
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
