"""The AutoML final choice's one-standard-error rule (``automl.ensemble.clearly_better``): a more complex candidate
replaces a simpler one only when its lead over the folds is larger than the folds' standard error."""
from __future__ import annotations

import numpy as np
import pytest

from aml_magics.automl.data import TrainingData
from aml_magics.automl.ensemble import Scorer, clearly_better


def _scorer(task: str, metric: str, y) -> Scorer:
    data = TrainingData(X=np.zeros((len(y), 1)), y=np.asarray(y), featurizer=None, rows=len(y),
                        classes=[0, 1] if task == "classification" else None,
                        y_range=None if task == "classification" else float(np.ptp(y)) or 1.0, forecasting=None)
    return Scorer(task, metric, data)


def test_a_lead_within_the_noise_of_the_folds_is_not_clearly_better():
    rng = np.random.RandomState(0)
    y = rng.normal(size=500)
    sizes = [100] * 5
    scorer = _scorer("regression", "r2_score", y)
    good = y + rng.normal(scale=0.5, size=500)
    noisy_tie = good + rng.normal(scale=0.05, size=500)  # the same model, a hair different
    much_better = y + rng.normal(scale=0.1, size=500)
    assert clearly_better(much_better, good, y, sizes, scorer)
    assert not clearly_better(good, much_better, y, sizes, scorer)
    assert not (clearly_better(noisy_tie, good, y, sizes, scorer) and clearly_better(good, noisy_tie, y, sizes, scorer))
    # one consistent lead on every fold, however small, is clear; a lead on one fold only is not
    tiny = good.copy()
    for k in range(5):
        part = slice(100 * k, 100 * k + 100)
        tiny[part] = good[part] + 0.02 * (y[part] - good[part])
    assert clearly_better(tiny, good, y, sizes, scorer)
    one_fold = good.copy()
    one_fold[:100] = y[:100]
    one_fold[100:] = good[100:] + rng.normal(scale=0.3, size=400)
    assert not clearly_better(one_fold, good, y, sizes, scorer)


@pytest.mark.parametrize("metric", ["normalized_root_mean_squared_error", "r2_score"])
def test_the_goal_decides_the_direction(metric):
    rng = np.random.RandomState(1)
    y = rng.normal(size=400)
    scorer = _scorer("regression", metric, y)
    close, far = y + rng.normal(scale=0.1, size=400), y + rng.normal(scale=1.0, size=400)
    assert clearly_better(close, far, y, [80] * 5, scorer)
    assert not clearly_better(far, close, y, [80] * 5, scorer)


def test_undefined_scores_and_a_single_fold():
    y = np.array([0, 1] * 50)
    scorer = _scorer("classification", "AUC_weighted", y)
    right = np.column_stack([1 - y, y]).astype(float) * 0.8 + 0.1
    wrong = right[:, ::-1].copy()
    nan = np.full_like(right, np.nan)
    assert clearly_better(right, nan, y, [50, 50], scorer)
    assert not clearly_better(nan, right, y, [50, 50], scorer)
    assert clearly_better(right, wrong, y, [100], scorer) and not clearly_better(wrong, right, y, [100], scorer)
