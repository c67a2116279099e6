"""The %aml front end: light to load, documented, completable, configurable."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from IPython.core.error import UsageError

from aml_magics.magics import _complete

HEAVY = ["nbformat", "jsonschema", "pandas", "plotly", "azure.identity", "papermill", "cloudpickle", "numpy",
         "ipywidgets", "requests", "tornado"]


def test_load_ext_is_light(tmp_path):
    code = (
        "import json, sys, time\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "ip = InteractiveShell.instance()\n"
        "before = set(sys.modules)\n"
        "t = time.perf_counter(); ip.run_line_magic('load_ext', 'aml_magics'); dt = time.perf_counter() - t\n"
        "print(json.dumps({'seconds': dt, 'modules': sorted(set(sys.modules) - before)}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={"AML_MAGICS_WORKSPACE": str(tmp_path / "ws"), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout.strip().splitlines()[-1])
    loaded = {m.split(".")[0] for m in data["modules"]} | set(data["modules"])
    assert not [m for m in HEAVY if m in loaded], data["modules"]
    assert not (tmp_path / "ws").exists()  # loading touches no workspace


def test_help_documents_every_subcommand_and_option(ip, capsys):
    from aml_magics.magics.aml import AmlMagics

    doc = AmlMagics.aml.__doc__
    for word in ("run", "submit", "runs", "show", "logs", "metrics", "cancel", "datastore", "compute",
                 "--experiment", "--compute", "--tag", "--wait", "--in", "--out", "--input", "--follow", "--parameter"):
        assert word in doc
    ip.run_line_magic("aml", "help submit")
    out = capsys.readouterr().out
    assert "-p NAME=VALUE" in out and "--experiment" in out


def test_dash_h_and_help_anywhere_show_that_subcommands_help_and_run_nothing(ip, client, capsys):
    assert ip.run_line_magic("aml", "runs --help") is None
    assert "--status" in capsys.readouterr().out
    assert ip.run_line_magic("aml", "-h") is None
    assert "%aml help SUBCOMMAND" in capsys.readouterr().out
    assert ip.run_cell_magic("aml", "run -e helped --help --wait", "raise SystemExit('must not run')\n") is None
    assert "--experiment" in capsys.readouterr().out
    assert "helped" not in [e.name for e in client.experiments.list()]  # the cell was not submitted
    try:  # a typo still gets its suggestion
        ip.run_line_magic("aml", "rnus -h")
    except UsageError as exc:
        assert "did you mean 'runs'" in str(exc)
    else:
        raise AssertionError("no error for an unknown subcommand")


class _Event:
    def __init__(self, line):
        self.line = line
        self.symbol = line.split()[-1] if not line.endswith(" ") else ""


def test_tab_completion_of_subcommands_and_options(ip):
    assert {"run", "runs", "submit", "cancel"} <= set(_complete(None, _Event("%aml ")))
    assert "--experiment" in _complete(None, _Event("%aml run -"))
    assert "upload" in _complete(None, _Event("%aml datastore "))
    from IPython.core.completer import provisionalcompleter

    with provisionalcompleter():
        completions = {c.text for c in ip.Completer.completions("%aml ru", len("%aml ru"))}
    assert {"run", "runs"} <= completions


def test_tab_completion_offers_the_runs_models_and_services_of_the_open_workspace(ip, workspace, tmp_path):
    """RUN, MODEL and SVC words complete from the workspace the kernel has open — never opening one for a tab press
    (the folder is not made), never a name the line could not take as one word."""
    assert "last" not in _complete(None, _Event("%aml show "))
    assert not workspace.exists()  # a tab press before any %aml made no workspace
    from aml_magics.core.client import Client

    client = Client.shared()
    named = client.runs.start_logging("tabs", display_name="baseline")
    spaced = client.runs.start_logging("tabs", display_name="two words")
    (tmp_path / "m.pkl").write_bytes(b"x")
    client.models.register("digits-clf", tmp_path / "m.pkl")
    ip.run_line_magic("aml", "runs")  # the kernel opens its workspace
    offered = _complete(None, _Event("%aml show "))
    assert {"last", named.id, "baseline", spaced.id} <= set(offered) and "two words" not in offered, offered
    assert "--static" in offered
    assert "baseline" in _complete(None, _Event("%aml compare last b"))
    assert "digits-clf" in _complete(None, _Event("%aml deploy "))
    assert named.id not in _complete(None, _Event("%aml show -"))  # an option is being typed
    assert "baseline" not in _complete(None, _Event("%aml logs --tail "))  # an option's value
    assert "baseline" in _complete(None, _Event("%aml show --static "))  # a flag takes no value
    assert "baseline" not in _complete(None, _Event("%aml register baseline "))  # the file, not a second run
    assert "baseline" in _complete(None, _Event("%aml compare baseline "))  # compare takes many
    assert "show" in _complete(None, _Event("%aml help "))
    from IPython.core.completer import provisionalcompleter

    with provisionalcompleter():  # through IPython's own completer, as a tab press in a notebook
        completions = {c.text for c in ip.Completer.completions("%aml show bas", len("%aml show bas"))}
    assert "baseline" in completions, completions
    client.runs.start_logging("tabs", display_name="<img src=x onerror=alert(1)>")  # markup is a word like any
    assert "<img" not in " ".join(_complete(None, _Event("%aml show <")))  # (it has spaces: never offered)
    client.runs.start_logging("tabs", display_name="<b>bold</b>")
    assert "<b>bold</b>" in _complete(None, _Event("%aml show <"))  # offered as the text it is
    import shutil

    shutil.rmtree(workspace)  # the workspace deleted under the kernel: a tab press offers nothing, raises nothing
    assert [w for w in _complete(None, _Event("%aml show ")) if w.startswith("base")] == []
    assert not workspace.exists()  # and it did not begin a new one


def test_config_options(ip, client):
    ip.run_line_magic("config", "AmlMagics.default_experiment = 'configured'")
    try:
        run = ip.run_cell_magic("aml", "run --wait", "x = 1\n")
        assert client.runs.get(run.id).experiment == "configured"
    finally:
        ip.run_line_magic("config", "AmlMagics.default_experiment = ''")


def test_an_empty_experiment_name_is_refused_not_taken_as_the_default(ip, client, tmp_path):
    nb = tmp_path / "nb.ipynb"
    nb.write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    before = len(client.runs.list(limit=1000))
    for line, cell in (("run --wait -e ''", "x = 1\n"), ("run --wait --experiment ' '", "x = 1\n"),
                       (f"submit {nb} -e ''", None), ("runs -e ''", None),
                       ("sweep -e '' --metric acc --trials 1", "lr = 0.1  # choice(0.1, 0.2)\n")):
        with pytest.raises(UsageError, match=r"-e/--experiment was given an empty name"):
            if cell is None:
                ip.run_line_magic("aml", line)
            else:
                ip.run_cell_magic("aml", line, cell)
    assert len(client.runs.list(limit=1000)) == before  # nothing was submitted


@pytest.mark.parametrize("line, cell", [
    ("run --wait -c ''", "x = 1\n"), ("run --wait --source-dir ' '", "x = 1\n"), ("run --wait --env ''", "x = 1\n"),
    ("sweep --metric '' --trials 1", "lr = 0.1  # choice(0.1, 0.2)\n"),
    ("automl --task regression --data d.csv --label y --metric ''", None),
    ("automl --task regression --data d.csv --label y --register ''", None),
    ("automl --task regression --data d.csv --label y --validation ''", None),
    ("batch m --data d.csv --output-file ''", None), ("deploy m --score ''", None),
    ("deploy m --instance-type ' '", None), ("pipeline run --name ''", None), ("runs --metric ''", None),
    ("step s1 --compute ''", "x = 1\n"),
])
def test_an_empty_option_value_is_refused_not_taken_as_the_default(ip, client, tmp_path, line, cell):
    """``-c ""`` ran on the default compute, ``--output-file ""`` wrote the default file, ``--register ""`` was
    dropped: an option given an empty value is one line, and nothing starts."""
    before = len(client.runs.list(limit=1000))
    with pytest.raises(UsageError, match=r"was given an empty value; give one"):
        if cell is None:
            ip.run_line_magic("aml", line)
        else:
            ip.run_cell_magic("aml", line, cell)
    assert len(client.runs.list(limit=1000)) == before
    assert not list(client.deployments.list())


def test_config_values_that_make_no_sense_are_refused_and_empty_means_the_default(ip, client):
    try:
        for bad in ("-1", "0", "10**30"):
            ip.run_line_magic("config", f"AmlMagics.snapshot_max_mb = {bad}")
            with pytest.raises(UsageError, match=r"snapshot_max_mb = .*: give 1 to 1,000,000 \(MB"):
                ip.run_cell_magic("aml", "run --wait", "x = 1\n")
    finally:
        ip.run_line_magic("config", "AmlMagics.snapshot_max_mb = 100")
    ip.run_line_magic("config", "AmlMagics.default_compute = ''")
    try:
        run = ip.run_cell_magic("aml", "run --wait", "x = 1\n")
        assert client.runs.get(run.id).compute == "local"  # was: "compute name is empty"
    finally:
        ip.run_line_magic("config", "AmlMagics.default_compute = 'local'")


def test_workspace_use_switches_this_kernel(ip, tmp_path):
    info = ip.run_line_magic("aml", f"workspace use {tmp_path / 'other'}")
    assert info.location == str(tmp_path / "other") and (tmp_path / "other" / "aml.db").exists()
    run = ip.run_cell_magic("aml", "run --wait", "x = 1\n")
    assert str(tmp_path / "other") in str(run.client.config.path)


def test_a_parameter_value_too_deep_for_python_s_parser_is_a_string():
    """``-p x=------…1`` (100,000 signs) raised MemoryError from ``ast.literal_eval``, a traceback: a value that is
    not a literal Python can read is a string, as papermill's ``-r`` has it."""
    from aml_magics.magics.parser import parse_pairs

    deep = "-" * 100_000 + "1"
    assert parse_pairs([f"x={deep}", "y=[1, 2]", "z=1e309"], "-p", literal=True) == {
        "x": deep, "y": [1, 2], "z": float("inf")}


def test_a_parameter_meant_as_a_list_that_is_not_one_is_said(capsys):
    """``-p alpha=[1,2`` went to the notebook as the text '[1,2' without a word."""
    from aml_magics.magics.parser import parse_pairs

    assert parse_pairs(["alpha=[1,2", "name=vision", "n=3"], "-p", literal=True) == {
        "alpha": "[1,2", "name": "vision", "n": 3}
    assert capsys.readouterr().err == "Note: -p alpha=[1,2 is not a Python literal; it is passed as that text\n"


def test_argparse_leaving_by_exit_is_a_usage_error_not_systemexit():
    """argparse ends by ``exit()`` in places ``error()`` does not cover: a SystemExit there would end the kernel's
    cell with a traceback (the override was lost once in an edit of the parser)."""
    from IPython.core.error import UsageError

    from aml_magics.magics.parser import build_parser

    with pytest.raises(UsageError, match="bad"):
        build_parser().exit(2, "bad")
