"""Batch scoring: real run and worker processes, the real store and datastore, a real scikit-learn model."""
from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import numpy as np
import pytest
from IPython.core.error import UsageError

from aml_magics.core.errors import AmlError

from ..conftest import wait_until


@pytest.fixture
def digits(client, tmp_path):
    """A registered LogisticRegression on digits and 95 images written as .npy files in the datastore."""
    import joblib
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    X, y = load_digits(return_X_y=True)
    model = LogisticRegression(max_iter=3000).fit(X, y)
    joblib.dump(model, tmp_path / "model.pkl")
    client.models.register("digits", str(tmp_path / "model.pkl"))
    images = tmp_path / "images"
    images.mkdir()
    for i in range(95):
        np.save(images / f"img_{i:03d}.npy", X[i])
    client.datastores.upload(images, "digits/images")
    return X, model.predict(X)


def lines_of(client, run_id, name="outputs/parallel_run_step.txt"):
    return Path(client.runs.local_file(run_id, name)).read_text().splitlines()


def test_files_in_mini_batches_on_workers_in_input_order(ip, client, digits):
    X, expected = digits
    run = ip.run_line_magic("aml", "batch digits:1 --data datastore:digits/images --out datastore:digits/preds "
                                   "--mini-batch 10 --parallel 2 -e batch")
    info = client.runs.wait(run.id, timeout=120)
    assert info.status == "Completed", client.runs.get_logs(run.id)
    lines = lines_of(client, run.id)
    assert lines == [f"img_{i:03d}.npy 0 {expected[i]}" for i in range(95)]
    copy = Path(client.datastores.resolve_input("datastore:digits/preds")) / "parallel_run_step.txt"
    assert copy.read_text().splitlines() == lines
    metrics = client.runs.get_metrics(run.id)
    assert metrics["mini_batches_done"][-1] == 10 and metrics["mini_batches_failed"][-1] == 0
    assert info.tags["batch.mini_batches"] == "10" and info.tags["batch.items"] == "95"


def test_a_dataframe_by_rows_and_a_csv_folder(ip, client, digits, tmp_path):
    import pandas as pd

    X, expected = digits
    ip.user_ns["df"] = pd.DataFrame(X[:250], columns=[f"p{i}" for i in range(64)])
    run = ip.run_line_magic("aml", "batch digits --data df --mini-batch 40 --parallel 2 -e batch")
    info = client.runs.wait(run.id, timeout=120)
    assert info.status == "Completed", client.runs.get_logs(run.id)
    out = pd.read_csv(client.runs.local_file(run.id, "outputs/predictions.csv"))
    assert list(out["row"]) == list(range(250)) and list(out["prediction"]) == list(expected[:250])
    tables = tmp_path / "tables"
    tables.mkdir()
    for k, sep in enumerate([",", ";", ","]):  # ";": Excel's CSV in many languages (it was read as one column)
        pd.DataFrame(X[k * 100:(k + 1) * 100], columns=[f"p{i}" for i in range(64)]).to_csv(tables / f"t{k}.csv",
                                                                                             index=False, sep=sep)
    (tables / "t3.csv").write_bytes(b"")  # not even a header: no rows, as a header alone (it failed the whole job)
    client.datastores.upload(tables, "digits/tables")
    run = client.batch.submit("digits", "datastore:digits/tables", mini_batch=64, parallel=2, experiment="batch")
    assert client.runs.wait(run.id, timeout=120).status == "Completed", client.runs.get_logs(run.id)
    out = pd.read_csv(client.runs.local_file(run.id, "outputs/predictions.csv"))
    assert list(out["row"]) == list(range(300)) and list(out["prediction"]) == list(expected[:300])


SCORE = '''
import os, time
from azureml.core.model import Model

def init():
    global model
    import joblib
    model = joblib.load(Model.get_model_path("digits"))

def run(mini_batch):
    import numpy as np
    out = []
    for f in mini_batch:
        name = os.path.basename(f)
        marker = os.path.join(os.environ["MARKS"], name)
        if name in os.environ.get("ALWAYS_FAIL", "").split(","):
            raise RuntimeError("cannot read " + name)
        if name == os.environ.get("FAIL_ONCE") and not os.path.exists(marker):
            open(marker, "w").close()
            raise RuntimeError("flaky " + name)
        out.append(f"{name},{model.predict(np.load(f).reshape(1, -1))[0]}")
    with open(os.environ["CALLS"], "a") as log:
        log.write(",".join(sorted(os.path.basename(f) for f in mini_batch)) + "\\n")
    time.sleep(float(os.environ.get("SLOW", "0")))
    return out
'''


PLAIN_SCORE = SCORE.replace("from azureml.core.model import Model", "from aml_magics import Model")


def score_env(tmp_path, monkeypatch, **extra):
    marks = tmp_path / "marks"
    marks.mkdir(exist_ok=True)
    monkeypatch.setenv("MARKS", str(marks))
    monkeypatch.setenv("CALLS", str(tmp_path / "calls.txt"))
    for k, v in extra.items():
        monkeypatch.setenv(k, v)


def test_a_v1_scoring_script_with_a_retried_mini_batch(ip, client, digits, project, tmp_path, monkeypatch):
    X, expected = digits
    (project / "batch_score.py").write_text(SCORE)
    score_env(tmp_path, monkeypatch, FAIL_ONCE="img_033.npy")
    ip.run_line_magic("aml", "v1")
    try:
        run = ip.run_line_magic("aml", "batch digits --data datastore:digits/images --score batch_score.py "
                                       "--mini-batch 7 --parallel 2 -e batch")
        info = client.runs.wait(run.id, timeout=120)
    finally:
        ip.run_line_magic("aml", "v1 off")
    assert info.status == "Completed", client.runs.get_logs(run.id)
    assert lines_of(client, run.id) == [f"img_{i:03d}.npy,{expected[i]}" for i in range(95)]
    assert "flaky img_033.npy (try 2 of 4)" in client.runs.get_logs(run.id)


def test_the_error_threshold_and_failed_mini_batches(ip, client, digits, project, tmp_path, monkeypatch):
    (project / "batch_score.py").write_text(PLAIN_SCORE)
    score_env(tmp_path, monkeypatch, ALWAYS_FAIL="img_005.npy,img_050.npy")
    run = client.batch.submit("digits", "datastore:digits/images", score="batch_score.py", mini_batch=10, retries=1,
                              error_threshold=10, experiment="batch")
    info = client.runs.wait(run.id, timeout=120)
    assert info.status == "Failed" and "more than --error-threshold 10" in info.error and "img_050.npy" in info.error
    run = client.batch.submit("digits", "datastore:digits/images", score="batch_score.py", mini_batch=10, retries=0,
                              experiment="batch")
    info = client.runs.wait(run.id, timeout=120)
    assert info.status == "Completed"
    lines = lines_of(client, run.id)
    assert len(lines) == 75 and not any(l.startswith(("img_00", "img_05")) for l in lines)
    assert client.runs.get_metrics(run.id)["mini_batches_failed"][-1] == 2
    # every mini-batch failed (with the default threshold, -1, that lets failures pass): the run ended Completed with
    # an empty predictions file, and a notebook that went on read nothing
    score_env(tmp_path, monkeypatch, ALWAYS_FAIL=",".join(f"img_{i:03d}.npy" for i in range(0, 100, 10)))
    run = client.batch.submit("digits", "datastore:digits/images", score="batch_score.py", mini_batch=10, retries=0,
                              experiment="batch")
    info = client.runs.wait(run.id, timeout=120)
    assert info.status == "Failed", info
    assert re.match(r"every mini-batch failed \((\d+) of \1\); nothing was scored\. The first error: .*cannot read "
                    r"img_000\.npy", info.error), info.error


def test_a_killed_batch_run_resumes_without_scoring_a_finished_mini_batch_again(ip, client, digits, project, tmp_path,
                                                                               monkeypatch):
    X, expected = digits
    (project / "batch_score.py").write_text(PLAIN_SCORE)
    score_env(tmp_path, monkeypatch, SLOW="0.15")
    run = client.batch.submit("digits", "datastore:digits/images", score="batch_score.py", mini_batch=5, parallel=2,
                              experiment="batch")
    parts = None

    def half_done():
        nonlocal parts
        folder = client.backend.store.get_run(run.id)
        snap = Path(client.backend.path) / "runs" / run.id / "snapshot" / ".batch" / "parts"
        parts = sorted(p.name for p in snap.glob("*.part")) if snap.is_dir() else []
        return folder and len(parts) >= 9

    wait_until(half_done, timeout=120, what="half of the mini-batches")
    row = client.backend.store.get_run(run.id)
    os.killpg(row["user_pid"], signal.SIGKILL)  # the run's process group: the engine and its workers
    assert client.runs.wait(run.id, timeout=30).status == "Failed"
    snap = Path(client.backend.path) / "runs" / run.id / "snapshot" / ".batch" / "parts"
    finished_before = {int(p.stem) for p in snap.glob("*.part")}
    calls_before = (tmp_path / "calls.txt").read_text().splitlines()
    monkeypatch.setenv("SLOW", "0")
    ip.run_line_magic("aml", f"resume {run.id}")
    info = client.runs.wait(run.id, timeout=120)
    assert info.status == "Completed", client.runs.get_logs(run.id)
    assert lines_of(client, run.id) == [f"img_{i:03d}.npy,{expected[i]}" for i in range(95)], "none missing, none twice"
    calls_after = (tmp_path / "calls.txt").read_text().splitlines()[len(calls_before):]
    batches = [",".join(f"img_{i:03d}.npy" for i in range(k * 5, min(k * 5 + 5, 95))) for k in range(19)]
    rescored = [batches.index(c) for c in calls_after if batches.index(c) in finished_before]
    assert rescored == [], "a mini-batch finished before the kill was scored again"
    assert len(calls_after) == 19 - len(finished_before)
    assert f"Resuming: {len(finished_before)} of 19 mini-batches done" in client.runs.get_logs(run.id)


def test_bad_batch_requests_get_one_line_and_start_nothing(ip, client, digits, project, tmp_path):
    cases = [
        ("batch digits --data datastore:nothing/here", "nothing at that datastore path"),
        ("batch digits --data nosuchvar", "no variable 'nosuchvar'"),
        ("batch nomodel --data datastore:digits/images", "nomodel"),
        ("batch digits:7 --data datastore:digits/images", "no version 7"),
        ("batch --data datastore:digits/images", "give a model"),
        ("batch digits --data datastore:digits/images --score missing.py", "not found"),
        ("batch digits --data datastore:digits/images --output-file ../x.txt", "without folders"),
        ("batch digits --data datastore:digits/images --output-file x.json", ".txt"),
        ("batch digits --data datastore:digits/images --parallel 0", "out of range"),
        ("batch digits --data datastore:digits/images --mini-batch 1.5",
         "argument --mini-batch: '1.5' is not a whole number: give one from"),
        ("batch digits --data datastore:digits/images --error-threshold -2", "out of range"),
        ("batch digits --data datastore:digits/images --out datastore:", "not its root"),
        ("batch-endpoint list", "here a batch run needs no endpoint: %aml batch MODEL"),
        ("batch-endpoint create", "give the endpoint's name"),
    ]
    (tmp_path / "nothing").mkdir()  # a folder of hidden files only, an empty table: the run started, then failed
    (tmp_path / "nothing" / ".DS_Store").write_bytes(b"x")
    import pandas as pd

    ip.user_ns["no_rows"] = pd.DataFrame({"a": []})
    ip.user_ns["a_number"] = np.float64(1.0)  # a 0-d array: its shape is ()
    cases += [(f"batch digits --data {tmp_path / 'nothing'}", "the folder has no files to score"),
              ("batch digits --data no_rows", "the DataFrame has no rows to score"),
              ("batch digits --data a_number", "the float64 has no rows to score"),
              # an empty --data was the working folder (every file in it scored); a device and a name too long for
              # the system were an OSError with a traceback
              ("batch digits --data ''", "--data was given an empty value"),
              ("batch digits --data /dev/zero", "is not a file or a folder"),
              ("batch digits --data datastore:digits/images --score " + "s" * 300, "cannot be looked up")]
    for line, message in cases:
        with pytest.raises(UsageError, match=message):
            ip.run_line_magic("aml", line)
    (tmp_path / "m.bin").write_bytes(b"x")
    client.models.register("opaque", str(tmp_path / "m.bin"))
    with pytest.raises(AmlError, match="--score"):
        client.batch.submit("opaque", "datastore:digits/images")
    assert not client.runs.list().infos


def test_what_the_engine_refuses_once_started_is_its_one_line(client, digits, tmp_path):
    """A datastore folder that is emptied after the submission looked at it: the run fails with the engine's own
    line — its error was "aml_magics.core.errors.InvalidInput: …" below a traceback of our code."""
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    (hidden / ".keep").write_text("x")
    client.datastores.upload(hidden / ".keep", "only-hidden/.keep")
    run = client.batch.submit("digits", "datastore:only-hidden", experiment="batch")
    info = client.runs.wait(run.id, timeout=120)
    assert info.status == "Failed"
    assert info.error.startswith("the input folder ") and info.error.endswith("has no files to score"), info.error
    assert "Traceback" not in client.runs.get_logs(run.id)
    (hidden / "empty.csv").write_bytes(b"")  # pandas' EmptyDataError was the error, below its traceback
    run = client.batch.submit("digits", hidden / "empty.csv", experiment="batch")
    info = client.runs.wait(run.id, timeout=120)
    assert info.status == "Failed" and info.error == "the table has no rows to score", info.error
    assert "Traceback" not in client.runs.get_logs(run.id)


def test_the_default_scorer_names_the_file_it_cannot_score(client, digits, tmp_path):
    """A folder with a few wrong files among good ones: each failed mini-batch says which file and why — the errors
    were numpy's ("This file contains pickled (object) data … load it unsafely" for any non-.npy bytes, "No data left
    in file", a shape error from concatenating) with no file named, behind "aml_magics.core.errors.InvalidInput: "."""
    X, expected = digits
    folder = tmp_path / "mixed"
    folder.mkdir()
    for i in range(3):
        np.save(folder / f"a{i}.npy", X[i])
    (folder / "b_garbage.npy").write_bytes(b"garbage")
    (folder / "c_empty.npy").write_bytes(b"")
    np.save(folder / "d_wide.npy", np.zeros((2, 7)))
    (folder / "e_text.csv").write_text("a,b\n1,2\n")
    with open(os.fsencode(folder) + b"/f_caf\xe9<b>.npy", "wb") as f:  # not UTF-8: its error stopped the run
        f.write(b"junk")
    run = client.batch.submit("digits", str(folder), mini_batch=1, retries=0, experiment="batch")
    info = client.runs.wait(run.id, timeout=120)
    assert info.status == "Completed", client.runs.get_logs(run.id)
    assert lines_of(client, run.id) == [f"a{i}.npy 0 {expected[i]}" for i in range(3)]
    logs = client.runs.get_logs(run.id)
    for line in ("b_garbage.npy: not a NumPy .npy file", "c_empty.npy: an empty file",
                 "d_wide.npy: 7 values per sample; the model takes 64",
                 "e_text.csv: cannot be read as a .csv file (ValueError: could not convert string 'a'",
                 "f_caf\\udce9<b>.npy: not a NumPy .npy file"):
        assert f"failed after 1 try — {line}" in logs, logs
    assert "aml_magics.core" not in logs and "pickled" not in logs
    assert client.runs.get_metrics(run.id)["mini_batches_failed"][-1] == 5
    # stopped by the error threshold: the dashboard's count was left at its last half-second report (0 failed)
    run = client.batch.submit("digits", str(folder), mini_batch=1, retries=0, error_threshold=0, experiment="batch")
    info = client.runs.wait(run.id, timeout=120)
    assert info.status == "Failed" and info.error == ("1 file failed, more than --error-threshold 0; the last "
                                                      "error: b_garbage.npy: not a NumPy .npy file"), info.error
    assert client.runs.get_metrics(run.id)["mini_batches_failed"][-1] == 1


def test_a_scorer_whose_init_fails_stops_at_once_with_its_error(client, digits, project):
    (project / "bad_score.py").write_text("def init():\n    raise ImportError('no module named torch')\n"
                                          "def run(mb):\n    return mb\n")
    run = client.batch.submit(None, "datastore:digits/images", score="bad_score.py", parallel=2, experiment="batch")
    info = client.runs.wait(run.id, timeout=120)
    assert info.status == "Failed" and "the scorer could not start" in info.error and "torch" in info.error
    wait_until(lambda: True)


def test_a_worker_that_dies_and_hostile_file_names(client, project, tmp_path):
    """A run() that kills its own process (os._exit) loses only its mini-batch's try: the pool is made again and
    the other mini-batches are scored; file names that are not UTF-8 (surrogates) or hold markup come out as
    written."""
    folder = tmp_path / "odd"
    folder.mkdir()
    names = [f"f{i:02d}.txt" for i in range(12)] + ["<img src=x onerror=alert(1)>.txt"]
    for n in names:
        (folder / n).write_text("x")
    raw = os.fsencode(str(folder)) + b"/caf\xe9.txt"  # a Latin-1 name: not UTF-8
    with open(raw, "wb") as f:
        f.write(b"x")
    (project / "dying.py").write_text(
        "import os\ndef init():\n    pass\ndef run(mb):\n"
        "    if any(os.path.basename(p) == 'f05.txt' for p in mb):\n        os._exit(3)\n"
        "    return [os.path.basename(p) for p in mb]\n")
    run = client.batch.submit(None, str(folder), score="dying.py", mini_batch=2, parallel=2, retries=1,
                              experiment="batch")
    info = client.runs.wait(run.id, timeout=120)
    assert info.status == "Completed", client.runs.get_logs(run.id)
    out = Path(client.runs.local_file(run.id, "outputs/parallel_run_step.txt")).read_bytes().splitlines()
    expected = sorted([os.fsencode(n) for n in names] + [b"caf\xe9.txt"])
    lost = {b"f04.txt", b"f05.txt"}  # the mini-batch of the dying file failed after its tries
    assert out == [n for n in expected if n not in lost]
    assert "a worker process died" in client.runs.get_logs(run.id)
    assert client.runs.get_metrics(run.id)["mini_batches_failed"][-1] == 1


def test_the_default_scorer_serves_an_onnx_model(client, tmp_path):
    """A scikit-learn model converted to ONNX (skl2onnx), registered, scored by the default batch scorer with
    onnxruntime: the same labels as the scikit-learn model."""
    from skl2onnx import to_onnx
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    X, y = load_digits(return_X_y=True)
    model = LogisticRegression(max_iter=3000).fit(X, y)
    onx = to_onnx(model, X[:1].astype(np.float32))
    (tmp_path / "digits.onnx").write_bytes(onx.SerializeToString())
    info = client.models.register("digits-onnx", str(tmp_path / "digits.onnx"))
    assert info.framework == "onnx"
    rows = tmp_path / "rows"
    rows.mkdir()
    np.save(rows / "a.npy", X[:40])
    np.save(rows / "b.npy", X[40:55])
    run = client.batch.submit("digits-onnx", str(rows), mini_batch=1, parallel=2, experiment="batch")
    info = client.runs.wait(run.id, timeout=120)
    assert info.status == "Completed", client.runs.get_logs(run.id)
    lines = Path(client.runs.local_file(run.id, "outputs/parallel_run_step.txt")).read_text().splitlines()
    expected = model.predict(X[:55])
    assert [int(line.split()[2]) for line in lines] == list(expected)
    assert [line.split()[0] for line in lines] == ["a.npy"] * 40 + ["b.npy"] * 15


def test_parquet_tables_in_and_a_parquet_output(client, digits, tmp_path):
    """A folder of Parquet files scored by rows (mini-batches never cross a file) into one Parquet output, in order."""
    import pandas as pd

    X, expected = digits
    tables = tmp_path / "pq"
    tables.mkdir()
    cols = [f"p{i}" for i in range(64)]
    for k, (a, b) in enumerate(((0, 70), (70, 100), (100, 233))):
        pd.DataFrame(X[a:b], columns=cols).to_parquet(tables / f"part{k}.parquet")
    client.datastores.upload(tables, "digits/parquet")
    run = client.batch.submit("digits", "datastore:digits/parquet", mini_batch=50, parallel=2, experiment="batch",
                              output_file="scores.parquet", output="datastore:digits/parquet-scores")
    info = client.runs.wait(run.id, timeout=120)
    assert info.status == "Completed", client.runs.get_logs(run.id)
    assert info.tags["batch.mini_batches"] == "6"  # 70 → 2, 30 → 1, 133 → 3: by file, 50 rows at most
    out = pd.read_parquet(client.runs.local_file(run.id, "outputs/scores.parquet"))
    assert list(out["row"]) == list(range(233)) and list(out["prediction"]) == list(expected[:233])
    copy = Path(client.datastores.resolve_input("datastore:digits/parquet-scores")) / "scores.parquet"
    assert pd.read_parquet(copy).equals(out)


def test_a_table_with_more_columns_than_the_model_and_an_error_of_several_lines(client, project, tmp_path):
    """A table with an id column beside the model's: scikit-learn's four-line "feature names should match" on every
    try of every mini-batch (the online default scorer takes the model's columns by name) — now the model's columns
    are taken, and a missing one is one line. A scoring script's error of several lines was printed so on every try
    and stored so as the run's error: one line each. "1 mini-batches on 1 worker" is said in the singular."""
    import joblib
    import pandas as pd
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True, as_frame=True)
    model = LogisticRegression(max_iter=500).fit(X, y)
    joblib.dump(model, tmp_path / "iris.pkl")
    client.models.register("iris", tmp_path / "iris.pkl")
    run = client.batch.submit("iris", X.assign(customer=range(150)).iloc[:, ::-1], experiment="batch")
    info = client.runs.wait(run.id, timeout=120)
    assert info.status == "Completed", client.runs.get_logs(run.id)
    out = pd.read_csv(client.runs.local_file(run.id, "outputs/predictions.csv"))
    assert out["prediction"].tolist() == model.predict(X).tolist()
    assert "Scoring 150 rows in 1 mini-batch on 1 worker." in client.runs.get_logs(run.id)
    run = client.batch.submit("iris", X.drop(columns=["petal width (cm)"]), retries=0, experiment="batch")
    info = client.runs.wait(run.id, timeout=120)
    assert info.status == "Failed" and info.error.endswith("The first error: the table lacks the model's column "
                                                           "petal width (cm)"), info.error
    (project / "two_lines.py").write_text("def init():\n    pass\n\ndef run(mini_batch):\n"
                                          "    raise ValueError('the first line\\n  - and a second')\n")
    run = client.batch.submit("iris", X, score="two_lines.py", retries=1, experiment="batch")
    info = client.runs.wait(run.id, timeout=120)
    said = "ValueError: the first line - and a second"
    assert info.status == "Failed" and info.error.endswith(f"The first error: {said}"), info.error
    logs = client.runs.get_logs(run.id)
    assert f"mini-batch 0: {said} (try 2 of 2)\n" in logs and f"failed after 2 tries — {said}\n" in logs, logs
