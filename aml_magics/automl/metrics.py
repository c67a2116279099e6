"""Azure ML's AutoML metrics, by their Azure names, computed with scikit-learn.

Every trial reports the whole set for its task (as Azure ML does), not only the primary metric.
Normalized regression errors are divided by the range of the true values, as Azure ML does.
"""
from __future__ import annotations

import math
import warnings

PRIMARY = {
    "classification": ("accuracy", "AUC_weighted", "norm_macro_recall", "average_precision_score_weighted",
                       "precision_score_weighted"),
    "regression": ("r2_score", "normalized_root_mean_squared_error", "spearman_correlation",
                   "normalized_mean_absolute_error"),
}
PRIMARY["forecasting"] = PRIMARY["regression"]
DEFAULT_PRIMARY = {"classification": "accuracy", "regression": "normalized_root_mean_squared_error",
                   "forecasting": "normalized_root_mean_squared_error"}

from ..core.specs import LOWER_IS_BETTER  # noqa: F401,E402 - the one list, shared with backends reading jobs back
from ..core.specs import metric_goal as goal  # noqa: E402


def classification_metrics(y, pred, proba, n_classes: int) -> dict[str, float]:
    """scikit-learn's values, from one confusion matrix and one ranking per class instead of a call each: every trial
    scores every fold, and scikit-learn's twenty calls (input checks each) cost 35 ms a fold for 2 classes, 75 ms for
    10 and 1.1 s for 214 — more than many a trial's fits. ``tests/unit/test_automl_metrics.py`` holds them to
    scikit-learn's."""
    import numpy as np
    from sklearn import metrics as m

    y, pred = np.asarray(y), np.asarray(pred)
    out: dict[str, float] = {}
    labels, codes = np.unique(np.concatenate([y, pred]), return_inverse=True)  # scikit-learn's labels: y's and pred's
    k = len(labels)
    cm = np.bincount(codes[:len(y)] * k + codes[len(y):], minlength=k * k).reshape(k, k).astype(float)
    tp, true_sum, pred_sum = np.diag(cm), cm.sum(axis=1), cm.sum(axis=0)

    def ratio(a, b):  # zero_division=0
        return np.divide(a, b, out=np.zeros(np.shape(a)), where=np.asarray(b) != 0)

    per_class = {"precision_score": ratio(tp, pred_sum), "recall_score": ratio(tp, true_sum),
                 "f1_score": ratio(2 * tp, true_sum + pred_sum)}
    n = float(len(y))
    out["accuracy"] = tp.sum() / n if n else 0.0
    out["balanced_accuracy"] = float(np.mean(tp[true_sum > 0] / true_sum[true_sum > 0])) if n else 0.0
    micro = {"precision_score": ratio(tp.sum(), pred_sum.sum()), "recall_score": ratio(tp.sum(), true_sum.sum()),
             "f1_score": ratio(2 * tp.sum(), true_sum.sum() + pred_sum.sum())}
    for name, values in per_class.items():
        out[f"{name}_weighted"] = float(np.average(values, weights=true_sum)) if true_sum.sum() else 0.0
        out[f"{name}_macro"] = float(np.mean(values))
        out[f"{name}_micro"] = float(micro[name])
    chance = 1.0 / max(n_classes, 2)
    out["norm_macro_recall"] = max(0.0, (out["recall_score_macro"] - chance) / (1 - chance))
    cov_tp = tp.sum() * n - true_sum @ pred_sum
    cov_pp, cov_tt = n * n - pred_sum @ pred_sum, n * n - true_sum @ true_sum
    out["matthews_correlation"] = cov_tp / math.sqrt(cov_tt * cov_pp) if cov_tt * cov_pp else 0.0
    if proba is not None:
        all_labels = np.arange(n_classes)
        onehot = y[:, None] == all_labels[None, :]
        support = onehot.sum(axis=0)
        present = support > 0
        p = np.clip(np.asarray(proba, dtype=float), 1e-15, 1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out["log_loss"] = m.log_loss(y, p, labels=all_labels)
        if present.sum() > 1 and not np.isnan(p).any():  # one class only in this fold: no ranking metric
            cols = np.flatnonzero(present)
            if n_classes == 2:
                out["AUC_weighted"] = out["AUC_macro"] = _auc(p[:, 1], onehot[:, 1])
            else:
                auc = np.array([_auc(p[:, c], onehot[:, c]) for c in cols])
                out["AUC_weighted"] = float(np.average(auc, weights=support[cols]))
                out["AUC_macro"] = float(np.mean(auc))
            ap = np.array([_average_precision(p[:, c], onehot[:, c]) for c in cols])
            out["average_precision_score_weighted"] = float(np.average(ap, weights=support[cols]))
            out["average_precision_score_macro"] = float(np.mean(ap))
            out["AUC_micro"] = _auc(p.ravel(), onehot.ravel())
            out["average_precision_score_micro"] = _average_precision(p.ravel(), onehot.ravel())
    return {k: float(v) for k, v in out.items()}


def _average_precision(scores, positive) -> float:
    """scikit-learn's average precision (no interpolation; tied scores are one threshold) of one column."""
    import numpy as np

    order = np.argsort(-scores, kind="mergesort")
    ranked, hits = scores[order], positive[order]
    last = np.r_[np.flatnonzero(np.diff(ranked)), len(ranked) - 1]  # the last row of each distinct score
    tps = np.cumsum(hits)[last]
    if not tps[-1]:
        return math.nan
    precision = tps / (last + 1)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def regression_metrics(y, pred, y_range: float | None = None) -> dict[str, float]:
    import numpy as np
    from scipy.stats import spearmanr
    from sklearn import metrics as m

    y = np.asarray(y, dtype=float)
    pred = np.asarray(pred, dtype=float)
    rng = y_range if y_range else (float(y.max() - y.min()) or 1.0)
    out: dict[str, float] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out["r2_score"] = m.r2_score(y, pred)
        out["explained_variance"] = m.explained_variance_score(y, pred)
        out["mean_absolute_error"] = m.mean_absolute_error(y, pred)
        out["median_absolute_error"] = m.median_absolute_error(y, pred)
        out["root_mean_squared_error"] = math.sqrt(m.mean_squared_error(y, pred))
        out["normalized_mean_absolute_error"] = out["mean_absolute_error"] / rng
        out["normalized_median_absolute_error"] = out["median_absolute_error"] / rng
        out["normalized_root_mean_squared_error"] = out["root_mean_squared_error"] / rng
        rho = spearmanr(y, pred).correlation
        out["spearman_correlation"] = 0.0 if rho != rho else rho
        nonzero = np.abs(y) > 1e-12
        if nonzero.any():
            out["mean_absolute_percentage_error"] = float(np.mean(np.abs((y[nonzero] - pred[nonzero]) / y[nonzero])) * 100)
        if (y >= 0).all() and (pred > -1).all():
            rmsle = math.sqrt(m.mean_squared_log_error(y, np.maximum(pred, 0)))
            out["root_mean_squared_log_error"] = rmsle
            lrng = float(np.log1p(y.max()) - np.log1p(y.min())) or 1.0
            out["normalized_root_mean_squared_log_error"] = rmsle / lrng
    return {k: float(v) for k, v in out.items()}


CLASSIFICATION_SET = (
    "accuracy", "balanced_accuracy", "f1_score_weighted", "precision_score_weighted", "recall_score_weighted",
    "f1_score_macro", "precision_score_macro", "recall_score_macro", "f1_score_micro", "precision_score_micro",
    "recall_score_micro", "norm_macro_recall", "matthews_correlation", "log_loss", "AUC_weighted", "AUC_macro",
    "AUC_micro", "average_precision_score_weighted", "average_precision_score_macro", "average_precision_score_micro",
)
REGRESSION_SET = (
    "r2_score", "explained_variance", "mean_absolute_error", "median_absolute_error", "root_mean_squared_error",
    "normalized_mean_absolute_error", "normalized_median_absolute_error", "normalized_root_mean_squared_error",
    "spearman_correlation", "mean_absolute_percentage_error", "root_mean_squared_log_error",
    "normalized_root_mean_squared_log_error",
)


def compute(task: str, y, pred, proba=None, n_classes: int = 0, y_range: float | None = None) -> dict[str, float]:
    """The task's whole metric set, always with the same keys (NaN where a metric does not apply,
    e.g. AUC on a fold with one class), so per-fold results can be averaged."""
    if task == "classification":
        found, names = classification_metrics(y, pred, proba, n_classes), CLASSIFICATION_SET
    else:
        found, names = regression_metrics(y, pred, y_range), REGRESSION_SET
    return {k: found.get(k, math.nan) for k in names}


def one(task: str, metric: str, y, predicted, n_classes: int = 0, y_range: float | None = None) -> float:
    """One metric of ``predicted`` (probabilities for classification), as ``compute`` gives it, without the rest of
    the set — what greedy ensemble selection asks for hundreds of times. Metrics without a fast path here are taken
    from the whole set."""
    import numpy as np
    from sklearn import metrics as m

    if task == "classification" and metric == "accuracy":
        return float(np.mean(np.argmax(predicted, axis=1) == np.asarray(y)))
    if task == "classification" and metric == "AUC_weighted":
        p = np.clip(np.asarray(predicted, dtype=float), 1e-15, 1)
        y = np.asarray(y)
        if n_classes == 2:
            return _auc(p[:, 1], y == 1)
        support = np.bincount(y.astype(int), minlength=n_classes)[:n_classes]
        present = [c for c in range(n_classes) if support[c] > 0]
        values = [_auc(p[:, c], y == c) for c in present]
        return float(np.average(values, weights=support[present])) if present else math.nan
    if task != "classification" and metric in ("r2_score", "normalized_root_mean_squared_error",
                                               "normalized_mean_absolute_error"):
        y, pred = np.asarray(y, dtype=float), np.asarray(predicted, dtype=float)
        if metric == "r2_score":
            return float(m.r2_score(y, pred))
        rng = y_range if y_range else (float(y.max() - y.min()) or 1.0)
        if metric == "normalized_mean_absolute_error":
            return float(m.mean_absolute_error(y, pred)) / rng
        return math.sqrt(m.mean_squared_error(y, pred)) / rng
    if task == "classification":
        found = compute(task, y, np.argmax(predicted, axis=1), predicted, n_classes)
    else:
        found = compute(task, y, predicted, y_range=y_range)
    return found.get(metric, math.nan)


def _auc(scores, positive) -> float:
    """ROC AUC as the Mann–Whitney statistic over average ranks — scikit-learn's value (ties count a half), several
    times faster; NaN with one class only or a NaN score."""
    import numpy as np
    from scipy.stats import rankdata

    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0 or np.isnan(scores).any():
        return math.nan
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def loss(metric: str, value: float) -> float:
    """What FLAML minimizes for an Azure metric."""
    if value != value:
        return math.inf
    return value if goal(metric) == "min" else -value
