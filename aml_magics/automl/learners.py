"""Learners added to FLAML's search: the strong defaults Azure ML's AutoML also starts from.

Each starts at scikit-learn's default settings (FLAML evaluates a learner's initial point first),
so the search always contains HistGradientBoosting and the linear model exactly as a user
would get them by hand, then tunes them.
"""
from __future__ import annotations

import math
import time

from flaml import tune
from flaml.automl.model import SKLearnEstimator, XGBoostLimitDepthEstimator, XGBoostSklearnEstimator

from .model import ScaledLogistic, ScaledRidge


FIT_SHARE = 0.7  # of FLAML's budget for a fit that a HistGradientBoosting fit takes at most: the rest is the fold's
# predictions and metrics, and a share of the final model's refit on all rows (none of which FLAML counts)


class HGBEstimator(SKLearnEstimator):
    @classmethod
    def search_space(cls, data_size, task, **params):
        return {
            "learning_rate": {"domain": tune.loguniform(0.01, 0.5), "init_value": 0.1},
            "max_leaf_nodes": {"domain": tune.lograndint(4, 256), "init_value": 31},
            "min_samples_leaf": {"domain": tune.lograndint(2, 128), "init_value": 20},
            "l2_regularization": {"domain": tune.loguniform(1e-6, 10.0), "init_value": 1e-6},
            "max_iter": {"domain": tune.lograndint(50, 1000), "init_value": 100},
        }

    @classmethod
    def cost_relative2lgbm(cls):
        return 2

    def __init__(self, task="binary", n_jobs=None, **config):
        super().__init__(task, **config)
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

        self.estimator_class = HistGradientBoostingClassifier if self._task.is_classification() \
            else HistGradientBoostingRegressor
        self.capped_iterations: int | None = None
        self.fitted_iterations: int | None = None  # every fit's, capped or not: each fold logs the same keys

    def fit(self, X_train, y_train, budget=None, free_mem_ratio=0, **kwargs):
        """Within FLAML's ``budget`` for this fit (seconds), as FLAML's own LightGBM keeps to it: one boosting
        iteration first, timed; when all of ``max_iter`` clearly fit, the rest in one more call (warm start: the same
        model as one call), else in chunks sized on the time each took, stopping when the next would not fit. A fit
        cut short says so (``capped_iterations``, carried to the trial's configuration): one fit of 214 classes took
        6 s, five folds of it a 5 s budget's 30."""
        kwargs.pop("is_retrain", None)
        if budget is None or not math.isfinite(budget) or budget <= 0:
            took = super().fit(X_train, y_train, budget=budget, free_mem_ratio=free_mem_ratio, **kwargs)
            self.fitted_iterations = int(self.params.get("max_iter", 100))
            return took
        started = time.time()
        X = self._preprocess(X_train)
        wanted = int(self.params.get("max_iter", 100))
        model = self.estimator_class(**{**self.params, "max_iter": 1, "warm_start": True})
        model.fit(X, y_train, **kwargs)
        rate = time.time() - started  # seconds an iteration costs (the first also bins the data: an overestimate)
        if rate * wanted < FIT_SHARE * budget / 2:  # the usual case: room to spare
            model.max_iter = wanted
            model.fit(X, y_train, **kwargs)
        else:
            while model.max_iter < wanted:
                left = FIT_SHARE * budget - (time.time() - started)
                more = min(wanted - model.max_iter, int(0.5 * left / max(rate, 1e-6)))
                if more < 1:
                    break
                chunk = time.time()
                model.max_iter += more
                model.fit(X, y_train, **kwargs)
                rate = max(rate, (time.time() - chunk) / more)
        self.fitted_iterations = model.max_iter
        if model.max_iter < wanted:
            self.capped_iterations = model.max_iter
        model.warm_start = False
        self._model = model
        return time.time() - started


class LinearEstimator(SKLearnEstimator):
    @classmethod
    def search_space(cls, data_size, task, **params):
        if task.is_classification() if hasattr(task, "is_classification") else "class" in str(task):
            return {"C": {"domain": tune.loguniform(1e-3, 1e3), "init_value": 1.0}}
        return {"alpha": {"domain": tune.loguniform(1e-4, 1e3), "init_value": 1.0}}

    @classmethod
    def cost_relative2lgbm(cls):
        return 0.2

    def __init__(self, task="binary", n_jobs=None, **config):
        super().__init__(task, **config)
        self.estimator_class = ScaledLogistic if self._task.is_classification() else ScaledRidge

    def fit(self, X_train, y_train, budget=None, free_mem_ratio=0, **kwargs):
        """Within FLAML's ``budget`` for this fit (seconds), as the HistGradientBoosting learner: logistic regression
        of many classes iterates for seconds (ridge regression is one solve)."""
        kwargs.pop("is_retrain", None)
        if not self._task.is_classification() or budget is None or not math.isfinite(budget) or budget <= 0:
            return super().fit(X_train, y_train, budget=budget, free_mem_ratio=free_mem_ratio, **kwargs)
        started = time.time()
        model = self.estimator_class(**self.params)
        model.fit(self._preprocess(X_train), y_train, seconds=FIT_SHARE * budget)
        self._model = model
        return time.time() - started


class _GapFreeLabels:
    """XGBoost takes class labels 0…k-1 only: a fold whose training rows lack a class between others ("Invalid
    classes inferred from unique values of y: expected [0 1 2], got [0 2 3]") failed the whole AutoML run once FLAML
    no longer copied rare classes into every fold. Such a fold is fitted on renumbered labels; ``classes_`` and
    ``predict`` answer in the data's own (the scorer maps the probabilities' columns by ``classes_``)."""

    _present = None

    def fit(self, X_train, y_train, *args, **kwargs):
        import numpy as np

        self._present = None
        if self._task.is_classification():
            y = np.asarray(y_train)
            present = np.unique(y)
            if not np.array_equal(present, np.arange(len(present))):
                self._present, y_train = present, np.searchsorted(present, y)
        return super().fit(X_train, y_train, *args, **kwargs)

    @property
    def classes_(self):
        return self._present if self._present is not None else super().classes_

    def predict(self, X, **kwargs):
        import numpy as np

        labels = super().predict(X, **kwargs)
        return labels if self._present is None else self._present[np.asarray(labels, dtype=int)]


class XGBoostEstimator(_GapFreeLabels, XGBoostSklearnEstimator):
    pass


class XGBoostLimitDepth(_GapFreeLabels, XGBoostLimitDepthEstimator):
    pass


CUSTOM = {"hgb": HGBEstimator, "linear": LinearEstimator, "xgboost": XGBoostEstimator,
          "xgb_limitdepth": XGBoostLimitDepth}


def estimator_class(learner: str, flaml_task):
    """The FLAML estimator class of a learner name (ours or FLAML's built-in ones)."""
    if learner in CUSTOM:
        return CUSTOM[learner]
    return flaml_task.estimator_class_from_str(learner)
