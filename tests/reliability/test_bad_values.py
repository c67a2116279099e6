"""One bad value never costs a metric: a bad step or value is refused at the call with one clear error and
nothing else of the process is affected; a row that reaches the flush anyway is isolated; a run whose series
are partial or empty still answers ``get_metrics``."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

import pytest

from aml_magics.core.client import Client
from aml_magics.core.errors import InvalidInput

from .._helpers import logging_script

BAD_CALLS = [
    ("loss", 0.5, {"step": 1.5}),
    ("loss", 0.5, {"step": 2 ** 63}),
    ("loss", 0.5, {"step": -(2 ** 63) - 1}),
    ("loss", 0.5, {"step": "3"}),
    ("loss", 0.5, {"step": float("nan")}),
    ("loss", 0.5, {"step": True}),
    ("big", 10 ** 400, {}),
    ("big", -(10 ** 400), {}),
    ("\ud800surrogate", 1.0, {}),
    ("", 1.0, {}),
    (["loss"], 1.0, {}),  # a TypeError from inside (unhashable), not the name's own error
    ({"loss": 1}, 1.0, {}),
]


@pytest.mark.parametrize("name,value,kwargs", BAD_CALLS, ids=[f"{n!r}-{k}" for n, _, k in BAD_CALLS])
def test_a_bad_call_is_refused_and_every_other_point_of_every_run_is_kept(workspace, name, value, kwargs):
    """In a process with two runs: the bad call raises InvalidInput (naming the metric), and every point logged
    before and after it, to either run, is stored; the runs complete."""
    client = Client.shared()
    a, b = client.runs.start_logging("bad"), client.runs.start_logging("bad")
    script = logging_script(client, a, f"""
        from aml_magics.core.client import Client
        from aml_magics.core.errors import InvalidInput
        nan = float("nan")
        other = Client.shared().runs.handle({b.id!r})
        for i in range(100):
            run.log("before", i); other.log("other", i)
        run.flush()
        try:
            run.log({name!r}, {value!r}, **{kwargs!r})
            print("ACCEPTED")
        except InvalidInput as exc:
            print("REFUSED", exc)
        for i in range(100, 200):
            run.log("before", i); other.log("other", i)
        run.log("after", 1.0, step=2.0)   # an integral float step is a step
        time.sleep(0.5)                    # the flush thread writes these, if it is still alive
        print("THREAD", run.tracker._thread.is_alive(), run.tracker.pending())
        run.complete(); other.complete()
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "REFUSED" in proc.stdout, proc.stdout
    refused = next(line for line in proc.stdout.splitlines() if line.startswith("REFUSED"))
    assert "metric" in refused and "Traceback" not in proc.stderr
    assert "THREAD True 0" in proc.stdout, proc.stdout + proc.stderr
    assert a.get_metrics()["before"] == list(range(200))
    assert b.get_metrics()["other"] == list(range(200))
    assert a.get_metrics()["after"] == 1.0
    assert client.runs.metric_series(a.id, "after")[0][0][0] == 2
    assert b.get_status() == "Completed"  # (a is this process's context run: its host would complete it)
    assert str(name) not in a.get_metrics()  # the refused call left no empty metric behind (a bad step did)


def test_a_submitted_script_that_logs_a_bad_step_keeps_its_later_points(workspace, tmp_path):
    client = Client.shared()
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "train.py").write_text(textwrap.dedent("""
        from aml_magics import Run
        run = Run.get_context()
        for i in range(50):
            run.log("acc", i / 100)
        try:
            run.log("acc", 0.9, step=1.5)
        except ValueError as exc:
            print("refused:", exc)
        for i in range(50, 100):
            run.log("acc", i / 100)
    """))
    from aml_magics.core.types import RunSubmission

    run = client.runs.submit(RunSubmission(kind="script", experiment="bad", source_dir=tmp_path / "src",
                                           entry="train.py"))
    info = client.runs.wait(run.id, timeout=60)
    assert info.status == "Completed", info.error
    assert client.runs.get_metrics(run.id)["acc"] == [i / 100 for i in range(100)]
    assert "refused: metric 'acc': step 1.5 is not a whole number" in client.runs.get_logs(run.id)


def test_a_row_no_check_foresaw_is_isolated_and_the_thread_lives_on(workspace, capfd):
    """Defence in depth: rows that cannot be stored reach the flush anyway (pushed past the checks here); the flush
    splits the batch, drops only them, reports once, and writes everything else; the thread keeps flushing."""
    client = Client.shared()
    run = client.runs.start_logging("isolate")
    tracker = run.tracker
    for i in range(1000):
        run.log("good", i)
    kid = tracker.counter(tracker.run_pk(run.id), "good")[0]
    tracker._points.append((kid, 1.5, time.time(), 1.0))          # a float step: array('q') refuses it
    tracker._points.append((kid, 2 ** 64, time.time(), 1.0))      # beyond int64
    tracker._records.append((kid, time.time(), object()))          # not something SQLite can bind
    for i in range(1000, 2000):
        run.log("good", i)
    deadline = time.monotonic() + 10
    while tracker.pending() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert tracker.pending() == 0 and tracker._thread.is_alive()
    assert run.get_metrics()["good"] == list(range(2000))
    err = capfd.readouterr().err
    assert err.count("could not be stored and was dropped") >= 1 and "every other value was written" in err
    run.log("later", 1.0)  # the thread still flushes
    deadline = time.monotonic() + 5
    while client.runs.get_metrics(run.id).get("later") != 1.0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.runs.get_metrics(run.id)["later"] == 1.0


def test_get_metrics_never_raises_on_partial_or_empty_series(workspace):
    """Keys whose values never arrived (a process killed before its flush), and a torn chunk."""
    client = Client.shared()
    run = client.runs.start_logging("partial")
    store = client.backend.store
    pk = store.run_pk(run.id)
    for name, kind in (("s", "scalar"), ("t", "table"), ("r", "row"), ("i", "image"), ("str", "string")):
        store.metric_key(pk, name, kind)
    kid = store.metric_key(pk, "torn", "scalar")
    with store.write() as c:
        c.execute("INSERT INTO metric_chunks(key_id, first_index, n, steps, ts, vals) VALUES(?,0,2,?,?,?)",
                  (kid, b"\x00" * 12, b"\x00" * 16, b"\x00" * 9))
    metrics = client.runs.get_metrics(run.id)
    assert metrics["t"] == {} and metrics["s"] == [] and metrics["r"] == {}
    assert metrics["torn"] == 0.0  # the one whole value of the torn chunk
    assert client.runs.get(run.id).run_id == run.id
    client.runs.metrics_view(run.id)._repr_mimebundle_()


def test_step_and_value_errors_name_the_metric(workspace):
    run = Client.shared().runs.start_logging("messages")
    with pytest.raises(InvalidInput, match=r"metric 'loss': step 1.5 is not a whole number"):
        run.log("loss", 0.5, step=1.5)
    with pytest.raises(InvalidInput, match=r"metric 'big': .* too large to store as a number"):
        run.log("big", 10 ** 400)
    with pytest.raises(InvalidInput, match="lone surrogate"):
        run.tag("k\udcff", "v")
    with pytest.raises(InvalidInput, match="lone surrogate"):
        run.log_row("tbl", **{"c\udcff": 1})
    run.log("np", 1.0, step=__import__("numpy").int64(7))
    # a table of ragged columns, or a column that is one value (stored as they were, shown with holes)
    with pytest.raises(InvalidInput, match=r"log_table\('tbl2'\): the columns have different lengths \('a': 3, "):
        run.log_table("tbl2", {"a": [1, 2, 3], "b": [1]})
    with pytest.raises(InvalidInput, match=r"column 'x' is not a list of values \(it is int\)"):
        run.log_table("tbl2", {"x": 5})
    run.log_table("tbl2", {"a": __import__("numpy").arange(2), "b": ["u", "v"]})
    run.complete()
    assert json.dumps(run.get_metrics())  # everything stored is plain JSON
    assert run.get_metrics()["tbl2"] == {"a": [0, 1], "b": ["u", "v"]}


def test_a_huge_text_metric_or_tag_is_stored_whole_and_shown_short(workspace):
    """A 5 MB string metric and a tag of MLflow's longest (8,000 characters): stored as they are, but a run's repr,
    its HTML and the dashboards show their start and length (the run's HTML was the whole 5 MB, saved in the notebook
    with the output)."""
    from aml_magics.widgets.run_details import RunDetails

    client = Client.shared()
    run = client.runs.start_logging("huge")
    run.log("dump", "x" * (5 << 20))
    run.set_tags({"note": "n" * 8000})
    run.complete()
    info = client.runs.get(run.id)
    assert len(run.get_metrics()["dump"]) == 5 << 20 and len(info.tags["note"]) == 8000
    for shown in (repr(info), info._repr_html_(), repr(client.runs.list()), client.runs.list()._repr_html_()):
        assert len(shown) < 5000, len(shown)
    assert "… (5,242,880 characters)" in repr(info) and "… (8,000 characters)" in info._repr_html_()
    view = RunDetails(run.id, client, live=False)
    try:
        assert len(view.static_html()) < 200_000
    finally:
        view.close()


def test_a_run_of_thousands_of_metrics_lists_a_page_of_them(workspace):
    """``%aml metrics RUN`` of a run that logged 5,000 per-class metrics was a 1.7 MB table, saved with the
    notebook: it shows 500 and says how many more there are; ``.data`` keeps them all."""
    client = Client.shared()
    run = client.runs.start_logging("many")
    run.log_row("confusion", a=1)  # a table metric among them
    for i in range(5000):
        run.log(f"class_{i}_f1", i / 5000)
    run.complete()
    view = client.runs.metrics_view(run.id)
    assert len(view.data) == 5001
    html, text = view._repr_html_(), repr(view)
    assert len(html) < 250_000 and html.count("<tr") == 501, (len(html), html.count("<tr"))
    assert "… and 4,501 more metrics (.data has them all)" in html and text.endswith("… and 4,501 more metrics "
                                                                                       "(.data has them all)")
    assert "class_498_f1" in text and "class_499_f1" not in text


def test_a_listing_of_a_hundred_thousand_runs_shows_a_page_of_them(workspace):
    """``%aml runs --limit 100000`` made an 8 MB text and an 80 MB HTML cell output (past Jupyter's output rate
    limit, and saved with the notebook). The view draws 1,000 rows and says so; the list holds every run."""
    from aml_magics.core.types import Listing, RunInfo, RunList

    infos = [RunInfo(run_id=f"run_{i:06d}", experiment="big", status="Completed", kind="script")
             for i in range(3000)]
    runs = RunList(range(3000), infos, total=5000)
    html, text = runs._repr_html_(), repr(runs)
    assert html.count("<tr") == 1001 and len(text.splitlines()) == 1003, (html.count("<tr"), len(text.splitlines()))
    said = "the first 1,000 of the 3,000 runs listed are shown, of 5,000 that match; the list holds them all"
    assert said in html and said in text and "run_000999" in text and "run_001000" not in text
    assert len(runs) == 3000 and len(runs.to_pandas()) == 3000
    assert repr(RunList(range(3), infos[:3], total=10)).endswith("(3 of 10 runs shown)")  # a page, as before
    many = Listing([{"name": f"m{i}"} for i in range(1500)], ("name",))
    assert many._repr_html_().count("<tr") == 1001 and repr(many).endswith("… and 500 more (the list holds them all)")


def test_the_query_calls_refuse_a_bad_count_or_wait(workspace):
    """``get_logs(tail=2.5)`` raised a TypeError from inside, ``tail=0`` gave the whole log, and ``wait(timeout=nan)``
    on a running run never returned. Each is one InvalidInput now, naming the argument."""
    client = Client.shared()
    run = client.runs.start_logging("queries")
    try:
        for kwargs, message in (({"tail": 2.5}, "tail must be an integer"), ({"tail": 0}, "tail must be between 1"),
                                ({"tail": "x"}, "tail must be an integer"), ({"max_bytes": -1}, "max_bytes must be")):
            with pytest.raises(InvalidInput, match=message):
                client.runs.get_logs(run.id, **kwargs)
        for timeout in (float("nan"), -1, "10", True):
            started = time.monotonic()
            with pytest.raises(InvalidInput, match=r"timeout=.*: give seconds \(0 or more\)"):
                client.runs.wait(run.id, timeout=timeout)
            assert time.monotonic() - started < 1
        with pytest.raises(InvalidInput, match="poll="):
            next(client.runs.follow_logs(run.id, poll=float("nan")))
        assert client.runs.wait(run.id, timeout=0, raise_on_timeout=False).status == "Running"  # 0: look once
        assert client.runs.get_logs(run.id, tail=3) == ""
    finally:
        run.complete()


def test_run_details_of_something_that_is_not_a_run_is_one_line(workspace):
    """``RunDetails(None)`` (a submission's result not kept, or a typo) raised AttributeError: 'NoneType' object has
    no attribute 'id'."""
    from aml_magics.widgets.run_details import RunDetails

    client = Client.shared()
    for bad in (None, 5, ["run"]):
        with pytest.raises(InvalidInput, match=r"^RunDetails\(run\): give a run or its id .* not "):
            RunDetails(bad, client)


def test_the_entry_points_refuse_what_is_not_a_workspace(workspace):
    """``Experiment(None, 'x')`` raised AttributeError ('NoneType' has no attribute 'config'), ``Client(5)`` a
    TypeError from os.fspath."""
    from aml_magics import Experiment

    with pytest.raises(InvalidInput, match=r"^Experiment\(workspace, name\): give a workspace .* not NoneType"):
        Experiment(None, "x")
    with pytest.raises(InvalidInput, match=r"^Client\(workspace\): give the workspace's folder \(a path\), not int"):
        Client(5)


def test_record_child_checks_what_it_records_before_it_records_anything(workspace):
    """``record_child`` (a finished child in one write) stored what it was given as it was: status "Bogus" (a run
    listed in no state), started="yesterday" (a text in the time column the listing sorts by), an empty metric name;
    a text metric value raised ValueError from float(), a lone surrogate in the name UnicodeEncodeError from
    SQLite. Each is one InvalidInput now, and no child is recorded."""
    client = Client.shared()
    parent = client.runs.start_logging("children")
    try:
        bad = [({"status": "Bogus"}, "status 'Bogus' is not an end state"),
               ({"status": "Running"}, "not an end state"),
               ({"started": "yesterday"}, r"started='yesterday': give seconds since 1970"),
               ({"ended": float("inf")}, "ended=inf"), ({"started": True}, "started=True"),
               ({"started": 2e12}, "started=2000000000000.0"),
               ({"started": 200.0, "ended": 100.0}, r"started \(200.000\) is after ended \(100.000\)"),
               ({"metrics": {"acc": "high"}}, "metric 'acc': str is not a number"),
               ({"metrics": {"acc": None}}, "metric 'acc': NoneType is not a number"),
               ({"metrics": {"": 1.0}}, "metric name is empty"), ({"metrics": [1.0]}, "metrics must be a dict"),
               ({"params": {"lr": "\ud800"}}, "lone surrogate"), ({"tags": "x"}, "tags must be a dict")]
        for kwargs, message in bad:
            with pytest.raises(InvalidInput, match=message):
                parent.record_child("trial", **kwargs)
        with pytest.raises(InvalidInput, match="run name '\\\\ud800' contains a lone surrogate"):
            parent.record_child("\ud800")
        assert client.runs.list(parent_run_id=parent.id) == []
        import numpy as np

        now = time.time()
        child = parent.record_child("fine", metrics={"acc": np.float32(0.5), "n": 3, "loss": float("nan")},
                                    started=np.float64(now - 2), ended=now, status="Failed")
        info = client.runs.get(child)
        assert (info.status, info.display_name) == ("Failed", "fine")
        metrics = client.runs.get_metrics(child)
        assert metrics["acc"] == 0.5 and metrics["n"] == 3
    finally:
        parent.complete()


def test_a_param_or_tag_longer_than_mlflow_takes_is_refused_and_nothing_of_its_call_is_kept(workspace, tmp_path):
    """A param over 6,000 characters or a tag over 8,000 (MLflow's limits: a tracking server that follows them, as
    on Azure ML, refuses the whole batch) was stored here whole — a 100 MB tag went into every listing of runs. Now
    it is one InvalidInput that says where longer text goes, and nothing of that call is stored: not the values
    beside it, not a child run, not a run started with it, not a model registered with it. Values at the limits are
    kept."""
    client = Client.shared()
    run = client.runs.start_logging("limits")
    run.log_param("lr", 0.1)
    calls = [(lambda: run.log_param("prompt", "p" * 6001), "param 'prompt': its value is 6,001 characters long; "
              "keep at most 6,000"),
             (lambda: run.set_params({"ok": 1, "config": "c" * 6001}), "param 'config'"),
             (lambda: run.set_tags({"ok": "y", "note": "n" * 8001}), "tag 'note': its value is 8,001 characters"),
             (lambda: run.tag("note", b"b" * 9000), "tag 'note'"),
             (lambda: run.record_child("trial", params={"space": "s" * 7000}), "param 'space'"),
             (lambda: client.runs.start_logging("limits", tags={"note": "n" * 10_000}), "tag 'note'")]
    for call, message in calls:
        with pytest.raises(InvalidInput, match=message) as caught:
            call()
        assert "run.upload_file(" in str(caught.value)
    with pytest.raises(InvalidInput, match="param 'seed': its value is a number too long to write as text"):
        run.set_params({"ok": 1, "seed": 10 ** 5000})  # past Python's 4,300 digits: str() raised ValueError
    run.set_params({"prompt": "p" * 6000})
    run.set_tags({"note": "n" * 8000})
    run.complete()
    info = client.runs.get(run.id)
    assert info.params == {"lr": "0.1", "prompt": "p" * 6000}
    assert info.tags == {"note": "n" * 8000}
    assert client.runs.list(parent_run_id=run.id) == [] and len(client.runs.list(experiment="limits")) == 1
    model = tmp_path / "model.pkl"
    model.write_bytes(b"m")
    for call in (lambda: client.models.register("limited", model, tags={"notes": "n" * 9000}),
                 lambda: client.models.register("limited", model, properties={"card": "c" * 9000})):
        with pytest.raises(InvalidInput, match="keep longer text as a file: a file in the model's folder"):
            call()
    assert client.models.list() == []
    # the engines' bookkeeping (a pipeline step's literal inputs, read back to resume it) is not the user's to cut
    from aml_magics.core import checks

    assert len(checks.tags("tags", {"pipeline.inputs": "i" * 20_000})["pipeline.inputs"]) == 20_000


def test_a_number_past_pythons_digit_limit_is_one_clear_error_everywhere(workspace):
    """An int of over 4,300 digits cannot be written as text (Python 3.11's limit): the checks refused it, but their
    own message (its repr) raised ValueError instead — a traceback from log, log_list, record_child, a step, and a
    param. Each is one InvalidInput now, and the run goes on."""
    client = Client.shared()
    run = client.runs.start_logging("digits")
    huge = 10 ** 5000
    calls = [(lambda: run.log("m", huge), "metric 'm': <int of over 4,300 digits> is too large"),
             (lambda: run.log("m", 1.0, step=huge), "step <int of over 4,300 digits> is outside the 64-bit range"),
             (lambda: run.log_list("l", [1.0, huge]), "metric 'l'"), (lambda: run.log_row("t", a=huge), "metric 't'"),
             (lambda: run.record_child("c", metrics={"a": huge}), "metric 'a'"),
             (lambda: run.tag("t", huge), "tag 't': its value is a number too long")]
    for call, message in calls:
        with pytest.raises(InvalidInput, match=message):
            call()
    run.log("fine", 1.0)
    run.complete()
    assert run.get_metrics() == {"fine": 1.0} and client.runs.list(parent_run_id=run.id) == []


def test_a_version_or_a_count_python_cannot_read_is_one_clear_error(workspace):
    """``str.isdigit`` takes ``"²"``, which ``int()`` refuses, and ``int()`` refuses over 4,300 digits: an
    environment's ``NAME:²``, AutoML's ``cv²`` and v1's ``mini_batch_size="²"`` each raised ValueError (a
    traceback); ``NAME:2x`` quietly built the latest version of the environment."""
    from aml_magics.automl.settings import parse_validation
    from aml_magics.v1.pipeline import _mini_batch

    client = Client.shared()
    for ref in ("py:²", "py:2x", "py:0", "py:" + "9" * 5000):
        with pytest.raises(InvalidInput, match="the version of environment 'py' must be a whole number from 1"):
            client.environments.build(ref)
    with pytest.raises(InvalidInput, match="write cv:K"):
        parse_validation("cv²")
    for size in ("²", "9" * 5000):
        with pytest.raises(InvalidInput, match="mini_batch_size"):
            _mini_batch(size, False)
    assert parse_validation("cv:7") == {"method": "cv", "folds": 7} and _mini_batch(" 12 ", False) == 12
    # a count from Python or a route's query: int() read "٣" as 3, and 5,000 digits were "not an integer"
    for bad, says in (("٣", "must be an integer"), ("²", "must be an integer"), ("9" * 5000, "between 1 and"),
                      ("-" + "9" * 5000, "between 1 and"), (1.5, "must be an integer"), (True, "must be an integer")):
        with pytest.raises(InvalidInput, match=says):
            client.runs.list(limit=bad)
    import numpy as np

    for fine in (np.int64(3), " +3 ", 3):  # NumPy's integers and text with a sign stay numbers
        assert client.runs.list(limit=fine).infos == []


def test_a_value_whose_repr_or_str_raises_is_one_clear_error(workspace):
    """An object whose ``__repr__`` and ``__str__`` raise (a half-built object, a proxy whose target is gone): the
    checks refused it, but their own message (its repr), a tag's or param's text or a row's JSON raised the
    object's exception instead, a traceback from inside aml-magics. Each is one InvalidInput or InvalidType, and
    nothing of the call is kept."""
    from aml_magics.core.errors import InvalidType

    class Broken:
        def __repr__(self):
            raise RuntimeError("gone")

        __str__ = __repr__

    client = Client.shared()
    run = client.runs.start_logging("broken")
    calls = [(lambda: run.log("m", 1.0, step=Broken()), "step <Broken object, whose repr raised RuntimeError>"),
             (lambda: run.log_list("l", [Broken()]), "item 0"),
             (lambda: run.tag("t", Broken()), "tag 't': its value \\(Broken\\) could not be written as text"),
             (lambda: run.log_param("p", Broken()), "param 'p'"),
             (lambda: run.log_row("r", a=Broken()), "metric 'r': its value cannot be stored \\(RuntimeError")]
    for call, message in calls:
        with pytest.raises((InvalidInput, InvalidType), match=message):
            call()
    run.log("fine", 1.0)
    run.complete()
    info = client.runs.get(run.id)
    assert run.get_metrics() == {"fine": 1.0} and not info.params and "t" not in info.tags


def test_a_metric_name_or_a_param_or_tag_key_longer_than_mlflow_takes_is_refused(workspace):
    """MLflow refuses a metric name, a param key or a tag key over 250 characters (``MAX_ENTITY_KEY_LENGTH``; the peer
    test in tests/azure shows its server doing it): we took 255, so a run that logged one here lost it on Azure ML.
    Now 251 is one InvalidInput and nothing of the call is kept; 250 is stored."""
    client = Client.shared()
    run = client.runs.start_logging("keys")
    long, ok = "k" * 251, "k" * 250
    calls = [(lambda: run.log(long, 1.0), "metric name"), (lambda: run.log_list(long, [1.0]), "metric name"),
             (lambda: run.log_param(long, 1), "param name"),
             (lambda: run.set_tags({"fine": "1", long: "x"}), "tag name"),
             (lambda: run.record_child("trial", metrics={long: 1.0}), "metric name")]
    for call, what in calls:
        with pytest.raises(InvalidInput, match=f"{what} 'k+… is 251 characters long; use at most 250"):
            call()
    run.log(ok, 1.0)
    run.log_param(ok, 1)
    run.tag(ok, "y")
    run.complete()
    info = client.runs.get(run.id)
    assert run.get_metrics() == {ok: 1.0} and info.params == {ok: "1"} and info.tags == {ok: "y"}
    assert client.runs.list(parent_run_id=run.id) == []
