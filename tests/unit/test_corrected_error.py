"""The VotingEnsemble must beat the best single model by Nadeau and Bengio's corrected standard error
(``automl.ensemble.clearly_better(corrected=True)``): the folds' models share most of their training rows, so the
plain error understates the noise, and on 426 rows (breast_cancer at 120 s) an ensemble clearly better than the
linear default by the plain error lost to it on new rows."""
from __future__ import annotations

import numpy as np

from aml_magics.automl.ensemble import clearly_better


class _FoldScore:
    """A metric that is the mean of the predictions: each fold's score is what the test puts in it."""
    goal = "max"

    def value(self, y, p) -> float:
        return float(np.mean(p))


def test_the_corrected_error_needs_a_larger_lead_than_the_plain_one():
    sizes = [100] * 5  # 500 rows: each fold trained on 400, validated on 100
    zero = np.zeros(500)
    lead = np.array([0.9, -0.5, 1.5, 0.2, 0.65])  # per fold: mean 0.55, standard deviation 0.74
    plain = np.sqrt(lead.var(ddof=1) / 5)  # 0.33
    corrected = np.sqrt(lead.var(ddof=1) * (1 / 5 + 100 / 400))  # 0.50
    assert plain < 0.4 < corrected < 0.55
    clear = np.repeat(lead, 100)
    assert clearly_better(clear, zero, zero, sizes, _FoldScore())
    assert clearly_better(clear, zero, zero, sizes, _FoldScore(), corrected=True)
    smaller = np.repeat(lead - (lead.mean() - 0.4), 100)  # the same spread, a lead of 0.4
    assert clearly_better(smaller, zero, zero, sizes, _FoldScore())
    assert not clearly_better(smaller, zero, zero, sizes, _FoldScore(), corrected=True)
    # a lead on every fold stays clear (no spread to speak of); one fold only is never enough
    steady = np.repeat(np.full(5, 0.01), 100) + np.repeat(np.arange(5) * 1e-4, 100)
    assert clearly_better(steady, zero, zero, sizes, _FoldScore(), corrected=True)
    assert clearly_better(np.full(100, 0.01), np.zeros(100), np.zeros(100), [100], _FoldScore(), corrected=True)
    assert not clearly_better(np.full(100, -0.01), np.zeros(100), np.zeros(100), [100], _FoldScore(), corrected=True)


def test_the_training_rows_share_counts_with_uneven_folds():
    """The correction's n_val / n_train uses the folds' sizes: 103 rows in folds of 21, 21, 21, 20, 20."""
    sizes = [21, 21, 21, 20, 20]
    lead = np.array([0.9, -0.5, 1.5, 0.2, 0.65])
    held = np.mean(sizes)
    threshold = np.sqrt(lead.var(ddof=1) * (1 / 5 + held / (103 - held)))
    for margin, expected in ((0.01, True), (-0.01, False)):
        per_fold = lead - lead.mean() + threshold + margin
        a = np.concatenate([np.full(n, v) for n, v in zip(sizes, per_fold)])
        assert clearly_better(a, np.zeros(103), np.zeros(103), sizes, _FoldScore(), corrected=True) is expected
