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


def test_the_trial_follower_lives_through_an_unreadable_log_and_a_line_cut_in_a_character(workspace, tmp_path, capfd):
    """The thread that records FLAML's trials as it appends them: a read error (here the log is a folder for a
    while) ended it silently — no trial was recorded after that; a line cut inside a UTF-8 character was read in
    text mode and could fail to decode. It says once what it cannot read, and records every whole line."""
    import json
    import threading
    import time

    from aml_magics.automl.trials import Trials
    from aml_magics.core.client import Client

    run = Client.shared().runs.start_logging("automl-follow")
    trials = Trials(run, "classification", "accuracy", "max")
    path = tmp_path / "flaml.log"
    path.mkdir()
    stop = threading.Event()
    follower = threading.Thread(target=trials.follow, args=(path, time.time(), stop))
    follower.start()
    time.sleep(0.6)
    path.rmdir()
    line = json.dumps({"learner": "lgbm", "config": {"n_estimators": 4, "note": "café"}, "trial_time": 0.1,
                       "logged_metric": {"accuracy": 0.9}, "wall_clock_time": 1.0}, ensure_ascii=False).encode()
    cut = line.index("é".encode()) + 1  # between the two bytes of "é"
    path.write_bytes(line[:cut])
    time.sleep(0.5)
    with open(path, "ab") as f:
        f.write(line[cut:] + b"\n")
    time.sleep(0.5)
    stop.set()
    follower.join(10)
    assert not follower.is_alive()
    assert [(t.learner, t.config["note"], t.score) for t in trials.items] == [("lgbm", "café", 0.9)]
    out = capfd.readouterr().out
    assert out.count("cannot read FLAML's trial log (IsADirectoryError") == 1, out
    run.complete()
