"""Scoring and ensembling for the AutoML engine: the task's whole metric set for a model's predictions, each
candidate's out-of-fold predictions (the same folds for all), and Azure's VotingEnsemble built from them by greedy
ensemble selection (Caruana et al., 2004)."""
from __future__ import annotations

import math
import time
from typing import Any, Callable

from ..core import ranking
from . import metrics as M
from .data import TrainingData

ROUNDS = 20  # of greedy selection


class Scorer:
    def __init__(self, task: str, metric: str, data: TrainingData):
        self.task, self.metric, self.data = task, metric, data
        self.goal = M.goal(metric)

    def proba(self, estimator, X):
        """Class probabilities with a column for every class, whatever classes the estimator saw."""
        import numpy as np

        n = self.data.n_classes
        p = np.asarray(estimator.predict_proba(X), dtype=float)
        classes = list(getattr(estimator, "classes_", range(p.shape[1])))
        if p.shape[1] == n and classes == list(range(n)):
            return p
        full = np.zeros((len(X), n))
        for j, c in enumerate(classes):
            full[:, int(c)] = p[:, j]
        return full

    def predict(self, estimator, X):
        import numpy as np

        if self.task == "classification":
            return self.proba(estimator, X)
        return np.asarray(estimator.predict(X), dtype=float)

    def score(self, y, predicted) -> dict[str, float]:
        """The metric set of ``predicted`` (probabilities for classification, values otherwise)."""
        import numpy as np

        if self.task == "classification":
            return M.compute("classification", y, np.argmax(predicted, axis=1), predicted, self.data.n_classes)
        return M.compute("regression", y, predicted, y_range=self.data.y_range)

    def value(self, y, predicted) -> float:
        """The primary metric only (``metrics.one``): the inner loop of the final choice."""
        return M.one(self.task, self.metric, y, predicted, self.data.n_classes, self.data.y_range)

    def flaml_metric(self, X_val, y_val, estimator, labels, X_train, y_train, *args, **kwargs):
        """FLAML's custom metric: what it minimizes, and every metric to log with the trial."""
        import numpy as np

        values = self.score(np.asarray(y_val), self.predict(estimator, X_val))
        fitted = getattr(estimator, "fitted_iterations", None)
        if fitted is not None:
            # the iterations fitted, which a budget may have cut short: the trial's configuration is what was fitted
            # (trials.record). Every fold of a trial logs it, capped or not — FLAML sums the folds' values key by key
            # from the first fold's, and a key only some folds had failed the whole AutoML run (KeyError).
            values = {**values, CAPPED_KEY: float(fitted)}
        return M.loss(self.metric, values.get(self.metric, math.nan)), values


CAPPED_KEY = "_capped_max_iter"  # in a trial's logged values: the boosting iterations its budget allowed


def folds(data: TrainingData, task: str, seed: int) -> list:
    """Train/validation index pairs: the latest 20% for forecasting, one 80/20 split from 20,000 rows, else 5 folds
    (stratified for classification)."""
    import numpy as np
    from sklearn.model_selection import KFold, StratifiedKFold

    n = len(data.y)
    if task == "forecasting":
        cut = int(n * 0.8)
        return [(np.arange(cut), np.arange(cut, n))]
    if n >= 20000:
        idx = np.random.RandomState(seed).permutation(n)
        cut = int(n * 0.8)
        return [(idx[:cut], idx[cut:])]
    if task == "classification":
        largest = int(np.unique(data.y, return_counts=True)[1].max())
        if largest >= 2:  # stratified needs a class of 5 rows for 5 folds: fewer folds when every class is smaller
            return list(StratifiedKFold(min(5, largest), shuffle=True, random_state=seed).split(data.X, data.y))
    return list(KFold(5, shuffle=True, random_state=seed).split(data.X, data.y))


def out_of_fold(candidates: list, make: Callable[[Any], Any], scorer: Scorer, splits: list, deadline: float,
                required: tuple = (), slack: float = 0.0, fits_per_trial: int = 5):
    """Each candidate's predictions on the rows it was not trained on; candidates that would overrun ``deadline``
    are left out (a trial's time was ``fits_per_trial`` fits — 5 for FLAML's cross-validation, 1 for a holdout —
    and scoring it out-of-fold costs ``len(splits)``) — ``required`` ones only when they would overrun it by more
    than ``slack`` seconds. The first candidate (the search's best) too: when it cannot be scored in time nothing
    is (there would be nothing to compare the others with) and ``kept`` is empty."""
    import numpy as np

    data = scorer.data
    kept, preds = [], []
    for cand in candidates:
        cost = 1.1 * (cand.time or 0.0) * len(splits) / max(1, fits_per_trial)
        if time.time() + cost > deadline + (slack if cand in required else 0.0):
            if not preds:  # the first: five fits of a slow search winner overran a 30 s budget by 40 %
                return [], [], data.y[:0]
            continue
        parts = []
        for train, val in splits:
            est = make(cand)  # (XGBoost's learners take a fold that lacks a class: learners._GapFreeLabels)
            est.fit(data.X[train], data.y[train])
            parts.append(scorer.predict(est, data.X[val]))
        preds.append(np.concatenate(parts))
        kept.append(cand)
    return kept, preds, data.y[np.concatenate([v for _, v in splits])]


def greedy(preds: list, y, scorer: Scorer) -> tuple[list[float], dict, int, dict]:
    """Greedy ensemble selection with replacement, started from the best three averaged. Returns the weights, the
    ensemble's scores, the best single candidate's index and its scores."""
    def value(p) -> float | None:
        try:
            return ranking.score(scorer.value(y, p))
        except ValueError:  # predictions the metric cannot take (NaN, infinite): never chosen
            return None

    def scores(p) -> dict:
        try:
            return scorer.score(y, p)
        except ValueError:
            return {}

    singles = [value(p) for p in preds]
    order = sorted(range(len(preds)), key=lambda i: (singles[i] is None, i))
    order = sorted(order, key=lambda i: singles[i] if singles[i] is not None else
                   (-math.inf if scorer.goal == "max" else math.inf), reverse=scorer.goal == "max")
    start = [i for i in order if singles[i] is not None][:3] or order[:1]  # a candidate without a score: never
    counts = [0] * len(preds)
    for i in start:
        counts[i] = 1
    current = sum(preds[i] for i in start) / len(start)
    best_value = value(current)
    for _ in range(ROUNDS):
        step = None
        k = sum(counts)
        for i, p in enumerate(preds):
            if singles[i] is None:
                continue
            mixed = (current * k + p) / (k + 1)
            v = value(mixed)
            if v is not None and (step is None or ranking.is_better(v, step[0], scorer.goal)):
                step = (v, i, mixed)
        if step is None or (best_value is not None and not ranking.is_better(step[0], best_value, scorer.goal)):
            break
        best_value, current = step[0], step[2]
        counts[step[1]] += 1
    return [c / sum(counts) for c in counts], scores(current), order[0], scores(preds[order[0]])


def cross_fitted(preds: list, y, sizes: list[int], scorer: Scorer):
    """The greedy ensemble's predictions on each fold with its weights chosen on the other folds only (``sizes``: the
    folds' lengths, in the order the predictions were concatenated) — an honest estimate of how the ensemble does on
    rows it was not selected on. Weights chosen and scored on the same predictions flatter it: with many candidates
    the selection fits the folds' noise. ``None`` with one fold (nothing to hold out)."""
    import numpy as np

    if len(sizes) < 2:
        return None
    bounds = np.cumsum([0] + list(sizes))
    parts = []
    for k in range(len(sizes)):
        held = np.zeros(len(y), dtype=bool)
        held[bounds[k]:bounds[k + 1]] = True
        weights, *_ = greedy([p[~held] for p in preds], y[~held], scorer)
        parts.append(sum(w * p[held] for w, p in zip(weights, preds) if w > 0))
    return np.concatenate(parts)


def clearly_better(a, b, y, sizes: list[int], scorer: Scorer, corrected: bool = False) -> bool:
    """Whether predictions ``a`` beat ``b`` by more than one standard error of their paired per-fold differences
    (``sizes``: the folds' lengths, in the order the predictions were concatenated) — the one-standard-error rule:
    a more complex choice must be measurably better than the simpler one. With one fold there is no error to
    measure: better at all is enough.

    ``corrected``: Nadeau and Bengio's corrected standard error, variance × (1/J + n_val/n_train) instead of
    variance / J — the folds' models share most of their training rows, so their scores are not independent and the
    plain error understates the noise (by 1.5× with 5 folds). The final choice asks it of the VotingEnsemble, whose
    members and weights were all picked on these folds: on 426 rows an ensemble clearly better than the linear
    default by the plain error lost to it on new rows, and by the corrected one it is not chosen. A single search
    winner against a default keeps the plain error: measured on the same splits, the corrected one kept the linear
    default where LightGBM was better on new rows by 4 – 6 points of accuracy (anes96)."""
    import numpy as np

    def per_fold(p) -> list[float | None]:
        out, start = [], 0
        for n in sizes:
            try:
                v = scorer.value(y[start:start + n], p[start:start + n])
            except ValueError:  # predictions the metric cannot take (NaN, one class in the fold)
                v = None
            out.append(None if v is None or not math.isfinite(v) else float(v))
            start += n
        return out

    fa, fb = per_fold(a), per_fold(b)
    if any(v is None for v in fb) and not any(v is None for v in fa):
        return True
    if any(v is None for v in fa):
        return False
    sign = 1.0 if scorer.goal == "max" else -1.0
    diffs = np.array([sign * (x - z) for x, z in zip(fa, fb)])
    if len(diffs) < 2:
        return bool(diffs.mean() > 0)
    share = 1 / len(diffs)
    if corrected:
        held = float(np.mean(sizes))
        share += held / max(1.0, sum(sizes) - held)
    return bool(diffs.mean() > math.sqrt(diffs.var(ddof=1) * share))
