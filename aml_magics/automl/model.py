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

    def fit(self, X, y, **_: Any):
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        self.scaler_ = StandardScaler().fit(X)
        self.model_ = LogisticRegression(C=self.C, max_iter=self.max_iter).fit(self.scaler_.transform(X), y)
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
