"""What an AutoML run leaves in ``outputs/model.pkl``: featurization + the chosen model (one
estimator, or a weighted voting ensemble), predicting in the user's own labels.

``predict`` takes what users and the default scorer send: a DataFrame, a list of records
(dicts), or rows as lists / an array in the training columns' order.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin


class ScaledLogistic(BaseEstimator, ClassifierMixin):
    """Standardize, then logistic regression (AutoML's linear model for classification)."""

    def __init__(self, C: float = 1.0, max_iter: int = 1000):
        self.C = C
        self.max_iter = max_iter

    def fit(self, X, y, seconds: float | None = None, **_: Any):
        """Fit; within about ``seconds`` when given (an AutoML trial's share of its budget): one solver iteration
        is timed first and the solver is given at most the iterations that fit. lbfgs is deterministic, so a fit
        that converges within them is the very fit without the limit; one that does not stops early (many classes:
        214 of them on 3,456 rows took 1.4 s a fold, a 5 s budget's search 9 s)."""
        import time
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        started = time.time()
        self.scaler_ = StandardScaler().fit(X)
        Xs = self.scaler_.transform(X)
        iterations = self.max_iter
        if seconds is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                LogisticRegression(C=self.C, max_iter=1).fit(Xs, y)
            rate = max(time.time() - started, 1e-6)  # seconds an iteration costs, at most
            iterations = max(1, min(self.max_iter, int((seconds - rate) / rate)))
        with warnings.catch_warnings():
            if iterations < self.max_iter:  # stopped short on purpose: not the user's warning
                warnings.simplefilter("ignore", ConvergenceWarning)
            fitting = time.time()
            model = LogisticRegression(C=self.C, max_iter=iterations, warm_start=True).fit(Xs, y)
            done = last = int(model.n_iter_.max())
            # the call used all its iterations (the timed one may have been slow by chance: a collection, another
            # thread): the iterations that still fit, measured on those done, go on from where it stopped — until a
            # call converges before its limit
            while seconds is not None and last >= model.max_iter and done < self.max_iter:
                rate = (time.time() - fitting) / max(done, 1)
                more = min(self.max_iter - done, int((seconds - (time.time() - started)) / max(rate, 1e-6)))
                if more < 1:
                    break
                model.max_iter = more
                model.fit(Xs, y)
                last = int(model.n_iter_.max())
                done += last
        model.warm_start = False
        self.model_ = model
        self.classes_ = self.model_.classes_
        return self

    def predict(self, X):
        return self.model_.predict(self.scaler_.transform(X))

    def predict_proba(self, X):
        return self.model_.predict_proba(self.scaler_.transform(X))

    @property
    def coef_(self):
        return self.model_.coef_


class ScaledRidge(BaseEstimator, RegressorMixin):
    """Standardize, then ridge regression (AutoML's linear model for regression)."""

    def __init__(self, alpha: float = 1.0):
        self.alpha = alpha

    def fit(self, X, y, **_: Any):
        from sklearn.linear_model import Ridge
        from sklearn.preprocessing import StandardScaler

        self.scaler_ = StandardScaler().fit(X)
        self.model_ = Ridge(alpha=self.alpha).fit(self.scaler_.transform(X), y)
        return self

    def predict(self, X):
        return self.model_.predict(self.scaler_.transform(X))

    @property
    def coef_(self):
        return self.model_.coef_


class AutoMLModel:
    """Featurizer + members (fitted estimators) + weights, in the user's labels."""

    def __init__(self, task: str, featurizer, members: list, weights: list[float], names: list[str],
                 classes: list | None = None, label: str = "", forecasting: dict | None = None):
        self.task = task
        self.featurizer = featurizer
        self.members = members
        self.weights = weights
        self.names = names
        self.classes_ = np.asarray(classes) if classes is not None else None
        self.label = label
        self.forecasting = forecasting

    @property
    def algorithm(self) -> str:
        return self.names[0] if len(self.members) == 1 else "VotingEnsemble"

    def __repr__(self) -> str:
        if len(self.members) == 1:
            return f"AutoMLModel({self.task}, {self.names[0]})"
        parts = ", ".join(f"{n}×{w:.2f}" for n, w in zip(self.names, self.weights))
        return f"AutoMLModel({self.task}, VotingEnsemble[{parts}])"

    # -- input ---------------------------------------------------------------------------------

    def _frame(self, data):
        import pandas as pd

        columns = self.featurizer.input_columns
        if isinstance(data, pd.DataFrame):
            frame = data
        elif isinstance(data, dict):
            frame = pd.DataFrame(data if all(isinstance(v, list) for v in data.values()) else [data])
        elif len(data) and isinstance(data[0], dict):
            frame = pd.DataFrame(list(data))
        else:
            rows = np.asarray(data, dtype=object)
            if rows.ndim == 1:
                rows = rows[None, :]
            if rows.shape[1] != len(columns):
                raise ValueError(f"each row needs {len(columns)} values ({', '.join(columns[:8])}"
                                 f"{', …' if len(columns) > 8 else ''}), got {rows.shape[1]}")
            frame = pd.DataFrame(rows, columns=columns)
            for c in columns:  # numbers sent as JSON arrive as objects
                converted = pd.to_numeric(frame[c], errors="coerce")
                if converted.notna().sum() == frame[c].notna().sum():
                    frame[c] = converted
        frame = frame.copy()
        frame.columns = [str(c) for c in frame.columns]
        if self.forecasting:
            from .forecast import add_lag_features

            frame = add_lag_features(frame, self.forecasting, history=self.forecasting.get("history"))
        return frame

    def features(self, data):
        return self.featurizer.transform(self._frame(data))

    # -- predictions ---------------------------------------------------------------------------

    def predict_proba(self, data):
        if self.task != "classification":
            raise AttributeError("predict_proba is for classification models")
        X = self.features(data)
        return sum(w * m.predict_proba(X) for m, w in zip(self.members, self.weights)) / sum(self.weights)

    def predict(self, data):
        if self.task == "classification":
            index = np.argmax(self.predict_proba(data), axis=1)
            return self.classes_[index]
        X = self.features(data)
        return sum(w * np.asarray(m.predict(X), dtype=float) for m, w in zip(self.members, self.weights)) / sum(self.weights)
