"""AutoML trials use the thread count they were given: threadpool_limits covers only the pools loaded when it is
entered, and scikit-learn loads its OpenMP runtime with its first HistGradientBoosting (on a loaded 2-core machine
an HGB trial with a thread per core took 35 s instead of 0.7 s)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

CODE = """
from aml_magics.automl.engine import trial_threads
with trial_threads(1, ["hgb", "linear", "lgbm"]):
    from sklearn.ensemble import HistGradientBoostingClassifier  # loaded by the search, inside the limit
    from sklearn.utils._openmp_helpers import _openmp_effective_n_threads
    from threadpoolctl import threadpool_info
    print(_openmp_effective_n_threads(), max(p["num_threads"] for p in threadpool_info()))
from sklearn.utils._openmp_helpers import _openmp_effective_n_threads
print(_openmp_effective_n_threads())
"""


def test_histgradientboosting_trials_get_the_threads_they_were_given():
    if (os.cpu_count() or 1) < 2:
        pytest.skip("one core: a thread per core is one thread, the limit cannot be told apart")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, env=env, check=True)
    inside, after = out.stdout.splitlines()
    assert inside == "1 1", out.stdout  # HGB's OpenMP and every other pool
    assert int(after) >= 2  # the limit ends with the search: the rest of the process is untouched
