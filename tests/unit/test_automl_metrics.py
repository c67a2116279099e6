"""AutoML's classification metrics (computed from one confusion matrix and one ranking per class) against
scikit-learn's own functions, on random folds: binary and many classes, tied scores, classes missing from a fold's
labels or from its predictions, a fold of one class."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")

from aml_magics.automl import metrics as M  # noqa: E402


def by_scikit_learn(y, pred, proba, n_classes):
    """Each metric as its scikit-learn function gives it (what the engine computed before)."""
    from sklearn import metrics as m

    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out["accuracy"] = m.accuracy_score(y, pred)
        out["balanced_accuracy"] = m.balanced_accuracy_score(y, pred)
        for avg in ("weighted", "macro", "micro"):
            out[f"f1_score_{avg}"] = m.f1_score(y, pred, average=avg, zero_division=0)
            out[f"precision_score_{avg}"] = m.precision_score(y, pred, average=avg, zero_division=0)
            out[f"recall_score_{avg}"] = m.recall_score(y, pred, average=avg, zero_division=0)
        out["matthews_correlation"] = m.matthews_corrcoef(y, pred)
        labels = np.arange(n_classes)
        onehot = (np.asarray(y)[:, None] == labels[None, :]).astype(float)
        present = onehot.sum(axis=0) > 0
        p = np.clip(proba, 1e-15, 1)
        out["log_loss"] = m.log_loss(y, p, labels=labels)
        if present.sum() > 1:
            if n_classes == 2:
                out["AUC_weighted"] = out["AUC_macro"] = m.roc_auc_score(y, p[:, 1])
            else:
                out["AUC_weighted"] = m.roc_auc_score(onehot[:, present], p[:, present], average="weighted")
                out["AUC_macro"] = m.roc_auc_score(onehot[:, present], p[:, present], average="macro")
            out["AUC_micro"] = m.roc_auc_score(onehot.ravel(), p.ravel())
            for avg in ("weighted", "macro"):
                out[f"average_precision_score_{avg}"] = m.average_precision_score(
                    onehot[:, present], p[:, present], average=avg)
            out["average_precision_score_micro"] = m.average_precision_score(onehot.ravel(), p.ravel())
    return out


def cases():
    rng = np.random.default_rng(7)
    for i in range(120):
        k = int(rng.choice([2, 2, 3, 5, 10, 40]))
        n = int(rng.integers(5, 400))
        y = rng.integers(0, k, n)
        if i % 5 == 0:  # classes missing from the fold's labels
            y = rng.choice(rng.choice(k, size=max(1, k // 2), replace=False), n)
        proba = rng.random((n, k)) ** 3
        if i % 3 == 0:  # tied scores
            proba = np.round(proba, 1) + 1e-9
        proba /= proba.sum(axis=1, keepdims=True)
        if i % 7 == 0:  # a model that leans on the true class
            proba[np.arange(n), y] += rng.random(n)
            proba /= proba.sum(axis=1, keepdims=True)
        pred = np.argmax(proba, axis=1)
        if i % 11 == 0:  # predictions of a class no row has
            pred[: n // 3] = k - 1
        yield y, pred, proba, k
    yield np.zeros(20, int), np.zeros(20, int), np.tile([0.9, 0.1], (20, 1)), 2  # one class only
    yield np.array([0, 1] * 10), np.ones(20, int), np.tile([0.5, 0.5], (20, 1)), 2  # every score tied


def test_the_classification_metrics_are_scikit_learns():
    compared = 0
    for y, pred, proba, k in cases():
        ours = M.classification_metrics(y, pred, proba, k)
        theirs = by_scikit_learn(y, pred, proba, k)
        assert set(theirs) <= set(ours), set(theirs) - set(ours)
        for name, value in theirs.items():
            assert math.isclose(ours[name], value, rel_tol=1e-9, abs_tol=1e-12), (name, k, len(y), ours[name], value)
            compared += 1
        ranking = {n for n in ours if n.startswith(("AUC", "average_precision"))}
        assert ranking == {n for n in theirs if n.startswith(("AUC", "average_precision"))}
    assert compared > 2000
