"""Bad input: one clear line (UsageError, no traceback) and nothing changed in the workspace."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from IPython.core.error import UsageError


def _snapshot_of_store(client):
    store = client.backend.store
    return {
        table: store.query_one(f"SELECT COUNT(*) FROM {table}")[0]
        for table in ("runs", "experiments", "status_history", "metric_chunks", "run_tags")
    }, sorted(os.listdir(client.backend.path / "runs")) if (client.backend.path / "runs").exists() else []


@pytest.mark.parametrize(
    "line, cell, message",
    [
        ("show diabetes_1700000000_deadbeef", None, "not found"),
        ("metrics nope", None, "not found"),
        ("run --frobnicate", "x = 1", "unrecognized arguments: --frobnicate"),
        ("runs --limit many", None, "argument --limit: 'many' is not a whole number: give one from 1 to"),
        ("frobnicate", None, "no subcommand 'frobnicate'; one of run, submit,"),
        # a typo, or another tool's word for it: what was meant (argparse listed every choice)
        ("dleete x", None, "no subcommand 'dleete'; did you mean %aml service SVC --delete?"),
        ("config", None, "did you mean %config AmlMagics?"),
        ("Runs", None, "no subcommand 'Runs'; did you mean %aml runs?"),
        ("datastore uplod x", None, "no action 'uplod'; did you mean %aml datastore upload?"),
        ("automl --task clasification --data x --label y", None, "--task 'clasification' is not a choice; did you "
                                                                 "mean --task classification?"),
        ("\udcff", None, "no subcommand '\\udcff'"),  # a lone surrogate is shown escaped, not printed
        # a misspelled option: what was meant, after argparse's words
        ("runs --limt 5", None, "unrecognized arguments: --limt 5; did you mean --limit?"),
        ("runs --stauts=Failed", None, "unrecognized arguments: --stauts=Failed; did you mean --status?"),
        ("datastore upload x --overwirte", None, "did you mean --overwrite?"),
        ("runs --\udcff", None, "unrecognized arguments: --\\udcff ("),
        ("submit train.ipynb -p alpha", None, "write it as NAME=VALUE"),
        ("submit train.ipynb -p 1x=2", None, "not a valid Python name"),
        ("submit train.ipynb -p class=2", None, "not a name a notebook can assign"),  # a SyntaxError in the run
        # a TypeError from inside (bytes, complex, ..., a tuple as a key), or a run that failed writing the notebook
        ("submit train.ipynb -p 'x=b\"\\xff\"'", None, "x cannot be passed to the notebook: bytes is not JSON"),
        ("submit train.ipynb -p x=1j", None, "complex is not JSON"),
        ("submit train.ipynb -p 'x=[1, ...]'", None, "ellipsis is not JSON"),
        ("submit train.ipynb -p 'x={(1, 2): 3}'", None, "keys must be str, int, float, bool or None"),
        ("submit train.ipynb -p 'x=\"\\ud800\"'", None, "x has a lone surrogate character"),
        ("submit missing.ipynb", None, "not found"),
        ("run", None, "give a script"),
        ("run missing.py", None, "not found"),
        ("run -c gpu-cluster", "x = 1", "compute target 'gpu-cluster' not found"),
        ("run --in undefined_var", "x = 1", "not defined in this notebook"),
        ("run --tag novalue", "x = 1", "write it as NAME=VALUE"),
        ("run --input data=datastore:nothing/here.csv", "x = 1", "nothing at that datastore path"),
        ("run", "%matplotlib inline\nx = 1", "IPython syntax"),
        ("run", "   ", "the cell is empty"),
        ("runs", "x = 1", "is a line magic"),
        ("runs --status Exploded", None, "status 'Exploded' not found"),
        ("help " + "h" * 300, None, "subcommand '" + "h" * 78 + "… not found"),  # not said back whole
        ("env register e /dev/zero", None, "environment file /dev/zero is not a file"),  # was "not found"
        ("env list pinned", None, "%aml env list takes no name (got 'pinned'); it lists every"),  # listed them all
        ("env build e extra", None, "%aml env build takes one NAME[:VERSION] (got 'extra' after it)"),
        ("datastore ls --target out", None, "--target and --overwrite go with upload and download"),
        ("datastore ls x --overwrite", None, "--target and --overwrite go with upload and download"),
        ("runs -e nosuchexperiment", None, "experiment 'nosuchexperiment' not found"),
        ("runs --tag =vision", None, "write it as KEY=VALUE"),
        # a key twice: the last won without a word (a filter that matched nothing, a tag that lost a value)
        ("runs --tag team=a --tag team=b", None, "--tag team is given twice with different values; a tag has one"),
        ("run --tag stage=prod --tag stage=dev", "x = 1", "--tag stage is given twice; keep one"),
        ("run --env-var A=1 --env-var A=2", "x = 1", "--env-var A is given twice; keep one"),
        ("models m1:x", None, "the version of m1 must be"),
        ("models --tag =vision", None, "write it as KEY=VALUE"),  # was "No models registered yet."
        ("runs --tag team=\udcff", None, "lone surrogate"),
        ("runs --tag team\x00=a", None, "NUL"),
        ("datastore ls ../../etc", None, "must stay inside the datastore"),
        ("datastore upload /does/not/exist", None, "does not exist"),
        ("logs 'unclosed", None, "check the quotes"),
        # hostile and careless values: one line each, nothing stored
        ("runs --limit 99999999999999999999999", None, "out of range"),
        ("runs --limit -3", None, "out of range"),
        ("compute create big --max-concurrent 10000000000000000000000", None, "out of range"),
        ("sweep --metric m --trials 1e400", "C = choice(1, 2)\nx = 1", "'1e400' is not a whole number"),
        ("sweep --metric m --trials 2", "C = choice(0.1, 1e400)\nx = 1", "not a finite number"),
        # a policy's setting without its policy was silently dropped
        ("sweep --metric m --trials 2 --early-stop bandit --truncation-percentage 5", "C = choice(1, 2)\nx = 1",
         "--truncation-percentage goes with --early-stop truncation, not bandit (nothing was submitted)"),
        ("sweep --metric m --trials 2 --early-stop median --slack-amount 0.5", "C = choice(1, 2)\nx = 1",
         "--slack-amount goes with --early-stop bandit, not median"),
        ("sweep --metric m --trials 2 --delay-evaluation 3", "C = choice(1, 2)\nx = 1",
         "--delay-evaluation goes with --early-stop bandit, median or truncation (nothing"),
        ("sweep --metric m --trials 2 --early-stop median --evaluation-interval 1.5", "C = choice(1, 2)\nx = 1",
         "argument --evaluation-interval: '1.5' is not a whole number: give one from 1 to 1,000,000"),
        ("sweep --metric m --trials 2", "C = uniform(0, 1e400)\nx = 1", "not a finite number"),
        # -p is a notebook's parameter: on a cell or a script it was silently ignored
        ("sweep --metric m --trials 2 -p a=1", "C = choice(1, 2)\nx = 1", "fixes a notebook's parameters"),
        ("sweep train.py --metric m --param C=choice(1,2) -p a=1", None, "fixes a notebook's parameters"),
        ("sweep train.ipynb --metric m --param C=choice(1,2) --param C=choice(3)", None, "--param C is given twice"),
        ("automl --task regression --data x.csv --label y --budget nan", None, "out of range"),
        ("run --name bad\udcffname", "x = 1", "lone surrogate"),
        ("run --tag k=\udcff", "x = 1", "lone surrogate"),
        ("run -e \ud800", "x = 1", "lone surrogate"),
        ("datastore ls data\x00", None, "NUL"),
        # a lone surrogate in a name to look up (nothing stored has one) or in a path (no file has one)
        ("show \udcff", None, "lone surrogate"),
        ("runs -e \udcff", None, "lone surrogate"),
        ("models \udcff", None, "lone surrogate"),
        ("service \udcff --delete", None, "lone surrogate"),
        # two actions: one was done and the other dropped (`--test … --delete` deleted the service untested)
        ("run --wait --no-wait", "x = 1", "--wait and --no-wait say opposite things: give one"),
        ("pipeline run --force", None, "%aml pipeline run takes no --force (it takes a name or file, -e, -c, "
                                       "--no-reuse, --name, --tag, --wait)"),
        ("pipeline steps prep", None, "%aml pipeline steps takes no 'prep'; see %aml help pipeline"),
        ("pipeline show --wait", None, "%aml pipeline show takes no --wait"),
        ("service svc --test '{}' --delete", None, "takes one of --logs, --keys, --test, --delete, --build-image at a "
                                                   "time; give --test and --delete in separate lines"),
        ("cancel \udcff", None, "lone surrogate"),
        ("deploy \udcff", None, "lone surrogate"),
        ("show \ud800", None, "lone surrogate"),
        ("run \ud800.py", None, "lone surrogate"),
        ("submit \ud800.ipynb", None, "lone surrogate"),
        ("register last outputs/\ud800 --name m", None, "lone surrogate"),
        # a model name AutoML cannot register was refused after the run, its whole budget later
        ("automl --task regression --data d.csv --label y --register <b>", None,
         "--register: the model name '<b>': use letters, digits"),
        # a compute target's name without "create": it listed the targets and made nothing, without a word
        ("compute list gpu", None, "takes no name or --max-concurrent; to add one: %aml compute create NAME"),
        ("compute --max-concurrent 4", None, "takes no name or --max-concurrent"),
        # a file of the notebook's folder without --local: "run 'train.ipynb' not found; list runs with %aml runs"
        ("register train.ipynb --name m", None, "no run is called 'train.ipynb', but that is a file here: to register "
                                               "it, add --local (%aml register train.ipynb --name m --local)"),
        ("workspace use /tmp/aml-\udcff", None, "lone surrogate"),
        ("env register \udcff requirements.txt", None, "environment name"),
        ("workspace use /proc/1", None, "and no workspace; give a new or empty folder"),
        ("workspace use /etc", None, "holds other files"),  # it made /etc a workspace (aml.db, datastores/)
        ("workspace use /tmp/aml-\x00ws", None, "NUL"),  # a ValueError traceback
        ("workspace use /tmp/" + "w" * 300, None, "File name too long"),  # an OSError traceback
        ("env register x /etc/shadow", None, "is not a pip requirement"),
        # a typo in the file's name (it registered a package called "requirments.txt")
        ("env register x requirments.txt", None, "requirments.txt not found"),
        ("env register x ./envs/conda.yml", None, "conda.yml not found"),
        ("deploy nomodel:99999999999999999999999999", None, "between 1 and"),
        # a service without a key on every network; an address that is not one (the service failed to start)
        ("deploy m --host 0.0.0.0 --no-auth", None, "could call the service without a key"),
        ("deploy m --host my-laptop", None, "give an IP address to listen on"),
        # a device or a pipe: /dev/zero would be read until the disk is full (it was: nothing uploaded, silently)
        ("datastore upload /dev/zero", None, "is not a file or folder"),
        # an experiment name with a terminal escape or a right-to-left override (it was stored, and read backwards)
        ("run -e exp\u202egnp.exe", "x = 1", "without slashes, line breaks or control characters"),
        ("run -e exp\x1b[2J", "x = 1", "without slashes, line breaks or control characters"),
        # a run's time limit: a typo, zero, a negative, NaN, infinity or centuries
        ("run --timeout 10x", "x = 1", "is not a duration: give seconds or a number with s, m, h or d"),
        ("run --timeout 0", "x = 1", "out of range"),
        ("run --timeout -5", "x = 1", "out of range"),
        ("run --timeout nan", "x = 1", "out of range"),
        ("run --timeout inf", "x = 1", "out of range"),
        ("run --timeout 1e400m", "x = 1", "out of range"),
        ("submit train.ipynb --timeout 200d", None, "out of range"),
        ("run --timeout m", "x = 1", "is not a duration"),
        # a syntax error is said at submission (it was a Failed run in the history)
        ("run", "def f(:\n    pass", "line 1 of the cell is not valid Python: invalid syntax ('def f(:')"),
        ("sweep --metric m --trials 2", "C = choice(1, 2)\nif C\n    x = 1", "line 2 of the cell is not valid"),
        ("step prep --out o", "x = (1,", "is not valid Python"),
        # a source folder the system cannot look up was an OSError / ValueError with a traceback
        ("run --source-dir " + "a" * 300, "x = 1", "cannot be looked up (File name too long)"),
        ("run --source-dir 'a\x00b'", "x = 1", "source folder 'a\\x00b' cannot be looked up ("),
        ("run --source-dir train.ipynb", "x = 1", "is a file, not a folder"),
        ("run " + "r" * 300 + ".py", None, "cannot be looked up (File name too long)"),  # an OSError
        ("submit " + "n" * 300 + ".ipynb", None, "cannot be looked up (File name too long)"),
        ("run /dev/zero", None, "/dev/zero is not a file"),  # was "not found"
        # ~ of a user who does not exist stays as written, as a shell has it (pathlib raised RuntimeError)
        ("deploy svc m --score ~nosuchuser/score.py", None, "score script '~nosuchuser/score.py' not found"),
        ("env register e ~nosuchuser/r.txt", None, "environment file ~nosuchuser/r.txt not found"),
        ("automl --task classification --data ~nosuchuser/d.csv --label y", None, "--data ~nosuchuser/d.csv: no such"),
    ],
)
def test_bad_input_is_one_clear_error_and_changes_nothing(ip, client, project, line, cell, message):
    seed = ip.run_cell_magic("aml", "run -e seed --wait", "from aml_magics import Run\nRun.get_context().log('m', 1)\n")
    (project / "train.ipynb").write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    before = _snapshot_of_store(client)
    with pytest.raises(UsageError) as err:
        if cell is None:
            ip.run_line_magic("aml", line)
        else:
            ip.run_cell_magic("aml", line, cell)
    text = str(err.value)
    assert message in text
    assert "\n" not in text.strip() and "Traceback" not in text
    assert _snapshot_of_store(client) == before
    assert client.runs.get_metrics(seed.id) == {"m": 1}


def test_a_bad_amlignore_line_is_named(ip, client, project):
    (project / ".amlignore").write_text("*.bin\n!\n")
    before = _snapshot_of_store(client)
    with pytest.raises(UsageError, match=r".amlignore line 2 \('!'\) is not a valid pattern"):
        ip.run_cell_magic("aml", "run", "x = 1\n")
    assert _snapshot_of_store(client) == before


def test_a_file_that_is_not_a_notebook_is_refused_at_submission(ip, client, project):
    """Submitting a broken, foreign or old notebook file: one line, no run — the run used to fail in nbformat's
    words (NotJSONError, a jsonschema ValidationError, an AttributeError)."""
    (project / "broken.ipynb").write_text("{not json")
    (project / "list.ipynb").write_text("[]")
    (project / "old.ipynb").write_text('{"worksheets": [], "metadata": {}, "nbformat": 3, "nbformat_minor": 0}')
    before = _snapshot_of_store(client)
    for name, message in (("broken.ipynb", "is not a notebook .its file is not JSON"),
                          ("list.ipynb", "is not a notebook .no list of cells"),
                          ("old.ipynb", "is an nbformat 3 notebook; open it in Jupyter and save it")):
        with pytest.raises(UsageError, match=message):
            ip.run_line_magic("aml", f"submit {name}")
    assert _snapshot_of_store(client) == before


def test_bad_values_from_python_are_one_clear_error(client):
    from aml_magics.core.errors import InvalidInput

    with pytest.raises(InvalidInput, match="lone surrogate"):
        client.runs.start_logging("exp", display_name="\udcff")
    with pytest.raises(InvalidInput, match="lone surrogate"):
        client.runs.start_logging("exp", tags={"k": "\ud800"})
    with pytest.raises(InvalidInput, match="must be a dict"):
        client.models.register("m", "x.pkl", tags=["not", "a", "dict"])
    with pytest.raises(InvalidInput, match="between 1 and"):
        client.runs.list(limit=10 ** 30)
    # lookups of a name no stored name can equal: one clear error, not the encoder's
    with pytest.raises(InvalidInput, match="lone surrogate"):
        client.runs.get("\udcff")
    with pytest.raises(InvalidInput, match="lone surrogate"):
        client.runs.list(experiment="\ud800")
    with pytest.raises(InvalidInput, match="lone surrogate"):
        client.models.list(name="\udcff")
    # careless types: one clear error each, not a TypeError from inside
    with pytest.raises(InvalidInput, match="status must be a status name or a list"):
        client.runs.list(status=5)
    with pytest.raises(InvalidInput, match="give the model's file or folder"):
        client.models.register("m", None)
    from aml_magics.core.errors import InvalidType, NotFound

    with pytest.raises(NotFound, match="experiment 5 not found"):
        client.experiments.get(5)
    with pytest.raises(NotFound, match="service None not found"):
        client.deployments.get(None)
    from aml_magics.core.types import RunSubmission

    def script(**kw):
        return RunSubmission(**{"kind": "script", "experiment": "exp", "source_dir": Path.cwd(), "entry": "s.py", **kw})

    with pytest.raises(InvalidInput, match="parameters a: only a notebook run takes parameters"):  # were dropped
        client.runs.submit(script(parameters={"a": 1}))
    with pytest.raises(InvalidInput, match="kind='scirpt': a run is a cell, script, notebook"):  # ran as a script
        client.runs.submit(script(kind="scirpt"))
    with pytest.raises(InvalidInput, match="kind=None: a run is"):  # an IntegrityError from the store
        client.runs.submit(script(kind=None))
    with pytest.raises(InvalidInput, match="give the script's arguments as a list"):  # ran with its letters as args
        client.runs.submit(script(args="--alpha 1"))
    with pytest.raises(InvalidInput, match="argument None: arguments are text or numbers"):  # a TypeError
        client.runs.submit(script(args=["--alpha", None]))
    runs = len(client.runs.list())
    for kw, says in (({"code": "print(1)"}, "only a cell run takes code"),  # the code was dropped, the script ran
                     ({"kind": "cell", "code": None}, "code=None: a cell run needs its Python source"),  # ran ''
                     ({"kind": "cell", "code": 5}, "code=5: a cell run needs"),  # a TypeError from inside
                     ({"snapshot_max_bytes": -5}, "snapshot_max_bytes must be at least 1"),  # "over the -0 MB limit"
                     ({"snapshot_max_bytes": None}, "snapshot_max_bytes must be an integer"),  # a TypeError
                     ({"environment_variables": {"A B": "1"}}, "'A B' is not a variable name"),
                     ({"inputs": ["data"]}, "inputs must be a dict"),
                     ({"out_vars": "model"}, r"out_vars='model': give the names as a list"),  # its letters
                     ({"out_vars": ["a-b"]}, "'a-b' is not a variable name")):
        with pytest.raises(InvalidInput, match=says):
            client.runs.submit(script(**kw))
    assert len(client.runs.list()) == runs  # nothing was stored
    run = client.runs.start_logging("exp")
    with pytest.raises(InvalidType, match=r"item 1 \('a'\) is not a number; give numbers only"):
        run.log_list("l", (v for v in [1.0, "a", 3]))
    for since, says in ((1.5, "must be an integer"), (-1, "must be between 0 and")):  # a TypeError; a re-read
        with pytest.raises(InvalidInput, match=says):
            client.runs.metric_series(run.id, "l", since=since)
    from aml_magics.core import checks
    from aml_magics.core.types import RunSubmission

    for bad in ({"import os; os.system('touch pwned') #": 1}, {"a b": 1}, {"None": 1}, {1: 2}):
        # papermill writes NAME = VALUE into the notebook: the first ran its code in the run
        with pytest.raises(InvalidInput, match="not a name a notebook can assign"):
            client.runs.submit(RunSubmission(kind="notebook", experiment="exp", source_dir=client.backend.path.parent,
                                             entry="nb.ipynb", parameters=bad))
    import numpy as np

    # numpy's numbers and arrays (a TypeError from inside) go as JSON's numbers and lists
    assert checks.notebook_parameters("p", {"x": np.int64(3), "y": np.array([1.5, 2.0]), "z": (1, 2)}) == {
        "x": 3, "y": [1.5, 2.0], "z": [1, 2]}
    # a TypeError from inside; a run that failed writing the notebook; what JSON carries
    for bad, says in (({"x": b"1"}, "bytes is not JSON"), ({"x": [object()]}, "object is not JSON"),
                      ({"x": {"k": "\ud800"}}, "x has a lone surrogate"), ({"x": [[[[[]]]]] * 2}, None)):
        if says is None:  # what JSON carries is a parameter, nested too
            assert checks.notebook_parameters("notebook parameters", bad) == bad
            continue
        with pytest.raises(InvalidInput, match=says):
            client.runs.submit(RunSubmission(kind="notebook", experiment="exp", source_dir=client.backend.path.parent,
                                             entry="nb.ipynb", parameters=bad))
    for kwargs in ({"request_timeout_s": float("nan")}, {"request_timeout_s": "60"}, {"timeout": -1},
                   {"max_body_bytes": 1.5}, {"host": "::", "auth": False}):  # TypeErrors, a NaN accepted, no key
        with pytest.raises(InvalidInput):
            client.deployments.create("svc", "m:1", **kwargs)
    for entry in ("/etc/passwd", "../train.py", "a/../../train.py"):  # the run has only the snapshot of source_dir
        with pytest.raises(InvalidInput, match="must be a file inside the run's source folder"):
            client.runs.submit(RunSubmission(kind="script", experiment="exp", source_dir=client.backend.path.parent,
                                             entry=entry))
    for bad in (0, -1, float("nan"), float("inf"), "60", True, 1e300):
        with pytest.raises(InvalidInput, match="timeout="):
            client.runs.submit(RunSubmission(kind="cell", experiment="exp", source_dir=client.backend.path.parent,
                                             entry="c.py", code="x = 1", timeout_s=bad))
    run.log_list("l", (v for v in [1.0, 2, True]))  # a generator is read once, and logged
    run.complete()
    assert client.runs.get_metrics(run.id) == {"l": [1.0, 2.0, 1.0]}
    # paths the system cannot look up (a NUL, a name over 255 bytes) and values of the wrong kind: each was an
    # OSError, ValueError or AttributeError from inside
    long = "n" * 300
    from aml_magics.core.workspace import Model

    calls = [
        (lambda: client.runs.download_file(run.id, "a\x00b"), "contains a NUL"),
        (lambda: client.runs.local_file(run.id, "outputs/" + long), "is 300 bytes long"),
        (lambda: client.runs.read_log(run.id, offset=10 ** 30), "offset"),
        (lambda: client.runs.submit("train.py"), "submit\\(\\) takes a RunSubmission, got str"),
        (lambda: client.datastores.ls(long), "is 300 bytes long"),
        (lambda: client.datastores.upload(long), "cannot be looked up"),
        (lambda: client.datastores.resolve_input(None), "datastore URI must be text"),
        (lambda: client.models.register("m", long), "cannot be looked up"),
        (lambda: client.environments.register("env", long + ".txt"), "cannot be looked up"),
        (lambda: client.pipelines.load("p\x00.yml"), "cannot be looked up"),
        (lambda: client.pipelines.export("pipeline.yml"), "takes a PipelineSpec"),
        (lambda: client.batch.submit(None, "d.csv", score="s\x00.py"), "cannot be looked up"),
        (lambda: client.batch.submit(None, "d.csv", score="s.py", source_dir="x\x00"), "cannot be looked up"),
        (lambda: client.deployments.regenerate_key("svc", None), "key type must be 'Primary' or 'Secondary'"),
        (lambda: client.deployments.create("svc", None), "name the model\\(s\\) to deploy"),
        (lambda: client.runs.list(experiment=["a", "b"]), "was given as list \\['a', 'b'\\]; give one, as text"),
        (lambda: client.models.get(10 ** 30), "is too large to look up"),
        (lambda: client.batch.submit(None, "d.csv", score="s.py", source_dir=3), "--source-dir must be a path"),
        # a TypeError from inside each (os.fspath, pathlib, a dict lookup): a value of the wrong kind
        (lambda: client.datastores.upload(None), "upload must be a path, got NoneType"),
        (lambda: client.pipelines.load(3), "pipeline file must be a path, got int"),
        (lambda: client.runs.metric_names(["r"]), "run id must be text, got list"),
        (lambda: client.runs.display_series({"r": 1}, "l"), "run id must be text, got dict"),
        (lambda: Model.get_model_path(["m"]), "model name must be text, got list"),
    ]
    for call, message in calls:
        with pytest.raises(InvalidInput, match=message):
            call()
    live = client.runs.start_logging("exp")  # a list where a name goes: 'unhashable type' from inside
    for call, message in ((lambda: live.tag(["k"], "v"), "tag name must be text, got list"),
                          (lambda: live.log_param({"k": 1}, "v"), "param name must be text, got dict"),
                          (lambda: live.log_row(["r"], a=1), "metric name must be text, got list"),
                          (lambda: live.get_metrics(name=["a"]), "metric name must be text, got list"),
                          (lambda: live.log_list("l", 0.5), "give a list of numbers, not a float; for one value use "
                                                            "run.log")):
        with pytest.raises(InvalidInput, match=message):
            call()
    live.tag("k", "v")
    live.upload_file("outputs/x.txt", __file__)
    for call, message in (  # a UnicodeEncodeError (no file's name has '\ud800'), a TypeError from pathlib
            (lambda: live.download_file("outputs/\ud800"), "lone surrogate that no file's name has"),
            (lambda: live.download_file("outputs/x.txt", "\ud800.txt"), "the path contains a lone surrogate"),
            (lambda: live.download_file("outputs/x.txt", ["x.txt"]), "output_file_path must be a path, got list")):
        with pytest.raises(InvalidInput, match=message):
            call()
    live.complete()
    assert live.get_tags()["k"] == "v"
    for call in (lambda: client.models.register("m", "~nosuchuser/m.pkl"),  # a RuntimeError from pathlib
                 lambda: client.datastores.upload("~nosuchuser/data")):
        with pytest.raises(NotFound, match="~nosuchuser/.* does not exist"):
            call()
    client.models.register("m", __file__)
    with pytest.raises(InvalidInput, match="cannot write .*: the path contains a NUL"):
        client.models.download("m", target_dir="t\x00")


def test_did_you_mean_for_run_ids_and_experiments(ip, client):
    run = ip.run_cell_magic("aml", "run -e diabetes --wait", "x = 1\n")
    typo = run.id[:-1] + ("0" if run.id[-1] != "0" else "1")
    with pytest.raises(UsageError, match="did you mean"):
        ip.run_line_magic("aml", f"show {typo}")
    with pytest.raises(UsageError, match="did you mean 'diabetes'"):
        ip.run_line_magic("aml", "runs -e diabetis")
    # a unique part of an id is enough
    assert ip.run_line_magic("aml", f"show {run.id[-8:]}").run_id == run.id
    other = client.runs.start_logging("diabetes")
    other.log("accuracy", 0.9)
    other.complete()
    # compare: a metric no run logged drew the first one without a word; one run named twice made two columns
    with pytest.raises(UsageError, match="metric 'acuracy' not found; did you mean 'accuracy'"):
        ip.run_line_magic("aml", f"compare {run.id} {other.id} --metric acuracy")
    with pytest.raises(UsageError, match="give at least two different runs"):
        ip.run_line_magic("aml", f"compare {other.id} last")
    # two runs that logged nothing: said, not a table of headers only
    empty = ip.run_cell_magic("aml", "run -e diabetes --wait", "x = 2\n")
    shown = ip.run_line_magic("aml", f"compare {run.id} {empty.id}")
    assert repr(shown).endswith("\nnone of these runs logged a metric or parameter"), repr(shown)
    assert "none of these runs logged a metric or parameter" in shown.diff_table()


def test_a_unique_part_of_an_old_run_id_is_found_among_thousands(ip, client):
    """Parts of ids were looked for among the newest 5,000 runs only: a unique part of an older run's id said
    "not found" (a year of runs is far more)."""
    old = client.runs.start_logging("old")
    old.complete()
    store = client.backend.store
    exp = store.ensure_experiment("newer")
    with store.write() as c:  # 6,000 newer runs, written through the store's schema
        c.executemany("INSERT INTO runs(run_id, experiment_id, kind, status, created) VALUES (?, ?, 'interactive', "
                      "'Completed', 0)", [(f"newer_{i:06d}", exp) for i in range(6000)])
    assert old.id not in client.backend.runs.ids()  # not among the recent ones
    assert ip.run_line_magic("aml", f"show {old.id[-8:]}").run_id == old.id
    assert client.runs.resolve_id(old.id[:-2]) == old.id
    with pytest.raises(UsageError, match=r"'newer_00' is ambiguous \(more than 100 runs match\)"):
        ip.run_line_magic("aml", "show newer_00")
    with pytest.raises(UsageError, match=r"'newer_00599' is ambiguous \(10 runs match\)"):
        ip.run_line_magic("aml", "show newer_00599")
    with pytest.raises(UsageError, match="not found"):
        ip.run_line_magic("aml", "show zzzzzzzzz")


def test_a_deleted_notebook_folder_is_one_line(ip, client, project):
    """The kernel's working directory deleted under it (the project folder removed, or renamed from another window):
    %%aml run, %aml submit and %%aml sweep each raised a bare FileNotFoundError ("[Errno 2] No such file …")."""
    gone = project / "gone"
    gone.mkdir()
    os.chdir(gone)
    try:
        gone.rmdir()
        for line, cell in (("run", "x = 1"), ("submit train.ipynb", None), ("sweep --metric m", "a = choice(1, 2)")):
            with pytest.raises(UsageError, match="notebook's folder .* was deleted or moved; %cd to a folder"):
                ip.run_cell_magic("aml", line, cell) if cell else ip.run_line_magic("aml", line)
    finally:
        os.chdir(project)
    assert client.runs.list().infos == []  # nothing was submitted


def test_snapshot_too_large_is_refused_before_anything_is_written(ip, client, project):
    (project / "big.bin").write_bytes(b"\0" * 3_000_000)
    ip.run_line_magic("config", "AmlMagics.snapshot_max_mb = 2")
    before = _snapshot_of_store(client)
    with pytest.raises(UsageError, match="over the 2 MB limit"):
        ip.run_cell_magic("aml", "run", "x = 1\n")
    assert _snapshot_of_store(client) == before
    (project / ".amlignore").write_text("*.bin\n")
    run = ip.run_cell_magic("aml", "run --wait", "import os\nprint(sorted(os.listdir('.')))\n")
    assert "big.bin" not in run.get_logs() and ".amlignore" in run.get_logs()
    ip.run_line_magic("config", "AmlMagics.snapshot_max_mb = 100")


def test_unpicklable_in_value_is_refused(ip, client):
    import threading

    ip.user_ns["lock"] = threading.Lock()
    before = _snapshot_of_store(client)
    with pytest.raises(UsageError, match="cannot pickle lock"):
        ip.run_cell_magic("aml", "run --in lock", "print(lock)\n")
    assert _snapshot_of_store(client) == before


def test_a_long_upload_and_download_draw_a_progress_line(ip, client, project, capsys, monkeypatch):
    """Past a moment, ``%aml datastore upload`` / ``download`` redraw one line (bytes, share, speed, time left) in
    place, and leave its last state on a line of its own; a quick one prints nothing extra."""
    import re

    from aml_magics.core import progress

    (project / "big").mkdir()
    (project / "big" / "a.bin").write_bytes(os.urandom(3 << 20))
    (project / "big" / "b.bin").write_bytes(os.urandom(1 << 20))
    ip.run_line_magic("aml", "datastore upload big --target quick")
    assert "Uploading" not in capsys.readouterr().err
    monkeypatch.setattr(progress, "SHOW_AFTER_S", 0.0)  # every transfer counts as long from its first byte
    last = r"\r{} 4\.2 MB of 4\.2 MB \(100 %\) · [0-9.,]+ [KMG]?B/s\n"
    ip.run_line_magic("aml", "datastore upload big --target slow")
    err = capsys.readouterr().err
    assert err.startswith("\rUploading ") and re.search(last.format("Uploading") + "$", err), err
    assert err.count("\n") == 1
    ip.run_line_magic("aml", f"datastore download slow --target {project / 'back'}")
    err = capsys.readouterr().err
    assert re.search(last.format("Downloading") + "$", err) and err.count("\n") == 1, err
    assert (project / "back" / "slow" / "a.bin").read_bytes() == (project / "big" / "a.bin").read_bytes()  # cp -r
    (project / "empty").mkdir()
    ip.run_line_magic("aml", "datastore upload empty --target none")
    assert "Nothing was uploaded: empty holds no files." in capsys.readouterr().out


def test_a_deploy_that_names_a_model_twice_or_a_folder_or_device_as_score_is_refused(client, tmp_path):
    """``deploy(["m", "m:1"])`` started a service listing m:1 twice (one model folder for two entries); a folder
    given as score.py was "not found"."""
    from aml_magics.core.errors import InvalidInput

    (tmp_path / "model.pkl").write_bytes(b"not read")
    (tmp_path / "score.py").write_text("def init():\n    pass\n\ndef run(data):\n    return data\n")
    client.models.register("twice", tmp_path / "model.pkl")
    for models in (["twice", "twice:1"], ["twice:1", "twice:1"], ["twice", "twice"]):
        with pytest.raises(InvalidInput, match="model twice:1 is named twice; name each model to deploy once"):
            client.deployments.create("svc-twice", models, score=tmp_path / "score.py")
    with pytest.raises(InvalidInput, match="is a folder; give the .py file with init"):
        client.deployments.create("svc-twice", "twice", score=tmp_path)
    # a device read forever; a name too long for the system was an OSError with a traceback
    with pytest.raises(InvalidInput, match="'/dev/zero' is a device or a pipe; give the .py file with init"):
        client.deployments.create("svc-twice", "twice", score="/dev/zero")
    with pytest.raises(InvalidInput, match=r"score script 's+… cannot be looked up \(File name too long\)"):
        client.deployments.create("svc-twice", "twice", score="s" * 300)
    with pytest.raises(InvalidInput, match="scoring script '/dev/zero' is a device or a pipe"):
        client.batch_endpoints.create("ep", "twice", score="/dev/zero", compute="cpu")
    assert [s.name for s in client.deployments.list()] == []
