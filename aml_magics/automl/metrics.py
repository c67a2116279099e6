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
    import numpy as np
    from sklearn import metrics as m

    out: dict[str, float] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out["accuracy"] = m.accuracy_score(y, pred)
        out["balanced_accuracy"] = m.balanced_accuracy_score(y, pred)
        for avg in ("weighted", "macro", "micro"):
            out[f"f1_score_{avg}"] = m.f1_score(y, pred, average=avg, zero_division=0)
            out[f"precision_score_{avg}"] = m.precision_score(y, pred, average=avg, zero_division=0)
            out[f"recall_score_{avg}"] = m.recall_score(y, pred, average=avg, zero_division=0)
        chance = 1.0 / max(n_classes, 2)
        out["norm_macro_recall"] = max(0.0, (out["recall_score_macro"] - chance) / (1 - chance))
        out["matthews_correlation"] = m.matthews_corrcoef(y, pred)
        if proba is not None:
            labels = np.arange(n_classes)
            onehot = (np.asarray(y)[:, None] == labels[None, :]).astype(float)
            present = onehot.sum(axis=0) > 0
            p = np.clip(np.asarray(proba, dtype=float), 1e-15, 1)
            out["log_loss"] = m.log_loss(y, p, labels=labels)
            try:
                if n_classes == 2:
                    auc = m.roc_auc_score(y, p[:, 1])
                    out.update(AUC_weighted=auc, AUC_macro=auc, AUC_micro=m.roc_auc_score(onehot.ravel(), p.ravel()))
                    ap = m.average_precision_score(onehot[:, present], p[:, present], average=None)
                    weights = onehot[:, present].sum(axis=0)
                    out["average_precision_score_weighted"] = float(np.average(ap, weights=weights))
                    out["average_precision_score_macro"] = float(np.mean(ap))
                else:
                    cols = present
                    out["AUC_weighted"] = m.roc_auc_score(onehot[:, cols], p[:, cols], average="weighted")
                    out["AUC_macro"] = m.roc_auc_score(onehot[:, cols], p[:, cols], average="macro")
                    out["average_precision_score_weighted"] = m.average_precision_score(
                        onehot[:, cols], p[:, cols], average="weighted")
                    out["average_precision_score_macro"] = m.average_precision_score(
                        onehot[:, cols], p[:, cols], average="macro")
                    out["AUC_micro"] = m.roc_auc_score(onehot.ravel(), p.ravel())
                out["average_precision_score_micro"] = m.average_precision_score(onehot.ravel(), p.ravel())
            except ValueError:  # one class only in this fold
                pass
    return {k: float(v) for k, v in out.items()}


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
