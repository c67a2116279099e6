"""The ``%aml`` command line: one argparse tree whose help is the ``%aml?`` text.

A bad option raises IPython's ``UsageError`` (one line, no traceback) instead of exiting.
"""
from __future__ import annotations

import argparse
import ast
import re
from typing import Any

from IPython.core.error import UsageError
from ..core import checks
from ..core.registry import BACKENDS

OVERVIEW = """\
%aml — the Azure Machine Learning workflow from this notebook (local workspace by default).

  %aml                                  summary of the current workspace
  %%aml run [options]                   submit this cell as a run (first line of a cell)
  %aml run SCRIPT [options] [-- ARGS]   submit a script as a run
  %aml submit [NOTEBOOK] [-p NAME=VALUE ...] [options]   run a whole notebook headless
  %%aml sweep --metric M [--goal max] [--sampling random|grid|bayesian] [--trials N] [--parallel N]
        [--early-stop bandit|median|truncation]          tune the cell (NAME = choice(...) lines)
  %aml sweep SCRIPT|NOTEBOOK --param "C=choice(0.1,1)" --metric M [...] [-- --C {C}]
  %aml automl --task classification|regression|forecasting --data DF|PATH --label COL [--metric M]
        [--budget S] [--trials N] [--register NAME]     AutoML; _.get_output() → (best run, model)
  %%aml step NAME [--in NAME[=SOURCE]] [--out NAME] [-c C] [--timeout T]   this cell becomes a pipeline step
  %aml pipeline run [FILE.yml] [-e EXP] [--no-reuse] · export [FILE.yml] · show [RUN] · steps · clear [NAME]
  %aml batch MODEL --data datastore:PATH|DF [--out datastore:PATH] [--score batch_score.py] [--mini-batch N]
        [--parallel N] [--retries N] [--error-threshold N]   score a folder of files or a table in mini-batches
  %aml batch-endpoint create NAME MODEL -c CLUSTER [--score F] · list · delete NAME   (Azure ML batch endpoints)
  %aml resume RUN                                        continue a killed sweep / AutoML / pipeline / batch run
  %aml runs [-e EXP] [--status S] [--tag K=V] [--limit N] run history
  %aml show RUN [--static] · %aml logs RUN [--follow] · %aml metrics RUN · %aml cancel RUN
  %aml compare RUN1 RUN2 [...] [--metric M]              metrics overlaid, params side by side
  %aml experiments · %aml compute [create NAME --max-concurrent N]
  %aml datastore upload SRC [--target PATH] · ls [PATH] · download PATH [--target DIR]
  %aml register RUN [outputs/model.pkl] --name NAME [--tag k=v] · %aml models [NAME]
  %aml deploy MODEL[:V] [--name SVC] [--score score.py] [--update] · %aml services
  %aml service SVC [--logs | --keys | --test JSON | --delete]
  %aml env register NAME requirements.txt · %aml env list · run/deploy with --env NAME
  %aml connect [--subscription S --resource-group RG --workspace W] [--device-code]   an Azure ML workspace
  %aml workspace [use PATH] · %aml doctor · %aml help SUBCOMMAND (or SUBCOMMAND --help)

RUN is a run id, a unique part of one, a run's --name (its newest run), or `last`.
Settings: %config AmlMagics (see `%config AmlMagics`).
"""


class _Parser(argparse.ArgumentParser):
    """argparse that raises ``UsageError`` (one line, no traceback) instead of exiting."""

    def error(self, message: str):
        name = self.prog.split()[-1]
        hint = "%aml?" if name == "%aml" else f"%aml help {name}"
        unknown = _unknown_subcommand(self, message)
        if unknown is not None:
            raise UsageError(f"{self.prog}: {unknown} (see {hint})")
        message += _misspelled_option(self, message)
        message = message.encode("utf-8", "backslashreplace").decode("utf-8")  # a lone surrogate shown escaped
        raise UsageError(f"{self.prog}: {message} (see {hint})")

    def exit(self, status=0, message=None):
        raise UsageError(message or "see %aml?")


# what a user may type for a command that has another name here
SUBCOMMAND_HINTS = {
    "delete": "%aml service SVC --delete", "keys": "%aml service SVC --keys", "test": "%aml service SVC --test JSON",
    "score": "%aml service SVC --test JSON", "predict": "%aml service SVC --test JSON",
    "config": "%config AmlMagics", "settings": "%config AmlMagics", "use": "%aml workspace use PATH",
    "upload": "%aml datastore upload SRC", "download": "%aml datastore download PATH", "ls": "%aml datastore ls",
    "login": "%aml connect", "endpoints": "%aml services", "deployments": "%aml services", "list": "%aml runs",
    "status": "%aml runs", "history": "%aml runs", "model": "%aml models", "experiment": "%aml experiments",
    "train": "%%aml run", "tune": "%aml sweep", "hyperdrive": "%aml sweep", "environment": "%aml env list",
    "environments": "%aml env list", "envs": "%aml env list", "stop": "%aml cancel RUN", "kill": "%aml cancel RUN",
    "log": "%aml logs RUN", "view": "%aml show RUN", "widget": "%aml show RUN",
}


def _unknown_subcommand(parser: argparse.ArgumentParser, message: str) -> str | None:
    """For ``%aml dleete`` or ``%aml datastore uplod``: one line naming what was meant (a close spelling, or where
    that command lives here), instead of argparse's list of every choice."""
    match = re.match(r"argument (\S+): invalid choice: '(.*)' \(choose from ", message, re.S)
    if match is None:
        return None
    name, typed = match.groups()
    choices = next((list(a.choices) for a in parser._actions if a.choices and not isinstance(a.choices, range)
                    and (name in (a.metavar, a.dest) or name in a.option_strings)), None)
    if not choices:
        return None
    import difflib

    shown = f"'{typed}'" if len(typed) <= 40 else f"'{typed[:39]}…'"  # (argparse's repr: a surrogate is escaped)
    hints = SUBCOMMAND_HINTS if parser.prog == "%aml" else {}
    close = difflib.get_close_matches(typed.lower(), [*choices, *hints], n=1, cutoff=0.6)
    if name.startswith("-"):  # an option's value
        meant = f"; did you mean {name} {close[0]}?" if close else f"; give one of {', '.join(map(str, choices))}"
        return f"{name} {shown} is not a choice{meant}"
    what = "subcommand" if name == "SUBCOMMAND" else name
    if close:
        meant = hints.get(close[0]) if close[0] not in choices else f"{parser.prog} {close[0]}"
        return f"no {what} {shown}; did you mean {meant}?"
    return f"no {what} {shown}; one of {', '.join(map(str, choices))}"


def _misspelled_option(parser: argparse.ArgumentParser, message: str) -> str:
    """For ``%aml runs --limt 5``: "; did you mean --limit?" after argparse's "unrecognized arguments" (the options
    of this parser first, then of its actions' parsers: ``%aml datastore upload x --overwirte`` is reported by the
    ``datastore`` parser)."""
    if not message.startswith("unrecognized arguments: "):
        return ""
    typed = next((t for t in message[len("unrecognized arguments: "):].split() if t.startswith("--")), None)
    if typed is None:
        return ""
    import difflib

    typed = typed.split("=", 1)[0]
    nested = [p for a in parser._actions if isinstance(a, argparse._SubParsersAction) for p in a.choices.values()]
    for group in ([parser], nested):
        options = {o for p in group for a in p._actions for o in a.option_strings if o.startswith("--")}
        close = difflib.get_close_matches(typed.lower(), sorted(options - {"--help"}), n=1, cutoff=0.7)
        if close:
            return f"; did you mean {close[0]}?"
    return ""


def _count(low: int, high: int):
    """An argparse type: a whole number within bounds (a huge or negative one is one clear line, not an overflow)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:  # argparse said "invalid int value: '1.5'"
            raise argparse.ArgumentTypeError(f"{checks.shown(text, 40)} is not a whole number: give one from {low:,} "
                                             f"to {high:,}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is out of range: give at least {low} and at most {high:,}")
        return value
    parse.__name__ = "int"
    return parse


def _amount(low: float, high: float, *, low_open: bool = False):
    """An argparse type: a finite number within bounds (no nan, no inf)."""
    def parse(text: str) -> float:
        value = float(text)
        if value != value or value in (float("inf"), float("-inf")) or value > high or value < low or (
                low_open and value == low):
            raise argparse.ArgumentTypeError(f"{text} is out of range: give {'more than' if low_open else 'at least'} "
                                             f"{low:g} and at most {high:g}")
        return value
    parse.__name__ = "float"
    return parse


def _duration(text: str) -> float:
    """An argparse type: a run's time limit, seconds or with a unit (90, 90s, 30m, 2h, 1d)."""
    from ..core.checks import MAX_TIMEOUT_S

    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = (text[:-1], units[text[-1].lower()]) if text[-1:].lower() in units else (text, 1)
    try:
        value = float(number) * unit
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration: give seconds or a number with s, m, h or d "
                                         "(like 90, 30m or 2h)") from None
    if not 0 < value <= MAX_TIMEOUT_S:  # NaN fails too
        raise argparse.ArgumentTypeError(f"{text} is out of range: give more than 0 and at most "
                                         f"{MAX_TIMEOUT_S:,} seconds")
    return value


_duration.__name__ = "duration"
SEED = _count(0, 2 ** 32 - 1)
TRIALS = _count(1, 100_000)


def _run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("-e", "--experiment", help="experiment name (default: %%config AmlMagics.default_experiment, "
                                              "else the notebook's name)")
    p.add_argument("-c", "--compute", help="compute target (default: local)")
    p.add_argument("--name", dest="display_name", help="display name of the run")
    p.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE", help="tag the run (repeatable)")
    p.add_argument("--wait", action="store_true", help="block until the run ends, streaming its output")
    p.add_argument("--no-wait", action="store_true", help="with --out: return at once; get values with run.result()")
    p.add_argument("--in", dest="in_vars", default="", metavar="A,B",
                   help="send these notebook variables into the run (pickled with cloudpickle)")
    p.add_argument("--out", dest="out_vars", default="", metavar="X,Y",
                   help="bring these run variables back into the notebook when it completes (implies --wait)")
    p.add_argument("--input", action="append", default=[], metavar="NAME=datastore:PATH",
                   help="a datastore path the run reads: $AZURE_ML_INPUT_NAME, and ${{inputs.NAME}} in arguments")
    p.add_argument("--source-dir", help="folder to snapshot as the run's working directory (default: this folder)")
    p.add_argument("--env-var", action="append", default=[], metavar="KEY=VALUE",
                   help="environment variable for the run (repeatable)")
    p.add_argument("--env", dest="environment", metavar="ENV",
                   help="run in an environment: a registered NAME[:VERSION] or a requirements.txt / .yml "
                        "(a virtualenv built once per content; default: this interpreter)")


RUN_HELP = "the run: its id, a unique part of one, its name, or 'last'"


def build_parser() -> argparse.ArgumentParser:
    root = _Parser(prog="%aml", description=OVERVIEW, formatter_class=argparse.RawDescriptionHelpFormatter,
                   add_help=False)
    sub = root.add_subparsers(dest="command", metavar="SUBCOMMAND", parser_class=_Parser)

    p = sub.add_parser("run", help="submit the cell (%%aml run) or a script (%aml run SCRIPT -- ARGS) as a run",
                       add_help=False)
    p.add_argument("script", nargs="?", help="script to run (line form); omit in %%aml run cells")
    _run_options(p)
    p.add_argument("--timeout", type=_duration, metavar="DURATION",
                   help="cancel the run after it has run this long (90, 30m, 2h)")

    p = sub.add_parser("submit", help="run a whole notebook headless (papermill-style parameters)", add_help=False)
    p.add_argument("notebook", nargs="?", help="the .ipynb to run (default: this notebook, as last saved)")
    p.add_argument("-p", "--parameter", action="append", default=[], metavar="NAME=VALUE",
                   help="set a parameter (a Python literal, else a string); repeatable")
    _run_options(p)
    p.add_argument("--timeout", type=_duration, metavar="DURATION",
                   help="cancel the run after it has run this long (90, 30m, 2h)")

    p = sub.add_parser("sweep", help="hyperparameter sweep of the cell (%%aml sweep), a script or a notebook; "
                                     "every trial a child run", add_help=False)
    p.add_argument("target", nargs="?", help="script or notebook to sweep (line form); omit in %%aml sweep cells")
    p.add_argument("--metric", required=True, help="the primary metric the trials log with run.log()")
    p.add_argument("--goal", default="max", choices=["max", "min", "maximize", "minimize"], help="default max")
    p.add_argument("--param", action="append", default=[], metavar="NAME=EXPR",
                   help="a parameter, like C=choice(0.1,1,10) or lr=loguniform(-6,-1) (cells may declare them "
                        "as NAME = EXPR lines instead)")
    p.add_argument("--sampling", default="random", choices=["random", "grid", "bayesian"], help="default random")
    p.add_argument("--trials", type=TRIALS, help="number of trials (default 20; grid: the whole grid)")
    p.add_argument("--parallel", type=_count(1, 1024), default=1, help="trials at once (within the compute's limit)")
    p.add_argument("--timeout", type=_amount(0, 1e7, low_open=True), help="stop the sweep after this many seconds")
    p.add_argument("--trial-timeout", type=_duration, metavar="DURATION",
                   help="cancel a trial after it has run this long (90, 30m, 2h)")
    p.add_argument("--max-failures", type=_count(1, 100_000), default=5, help="stop after this many consecutive failed trials")
    p.add_argument("--seed", type=SEED, help="seed of the sampler (repeatable sweeps)")
    p.add_argument("--early-stop", choices=["bandit", "median", "truncation"], help="early termination policy")
    p.add_argument("--slack-factor", type=_amount(0, 1e6), help="bandit: allowed ratio to the best (default 0.1)")
    p.add_argument("--slack-amount", type=_amount(0, 1e300), help="bandit: allowed distance to the best")
    p.add_argument("--evaluation-interval", type=_count(1, 1_000_000),
                   help="apply the policy every N logged values (default 1)")
    p.add_argument("--delay-evaluation", type=_count(0, 1_000_000_000),
                   help="do not stop trials before N logged values (default 0)")
    p.add_argument("--truncation-percentage", type=_count(1, 99),
                   help="truncation: the worst N %% stop (default 20)")
    p.add_argument("-p", "--parameter", action="append", default=[], metavar="NAME=VALUE",
                   help="notebooks: a fixed parameter for every trial")
    _run_options(p)

    p = sub.add_parser("automl", help="automated ML on a compute target: every trial a child run, the best model "
                                      "in outputs/", add_help=False)
    p.add_argument("--task", required=True, choices=["classification", "regression", "forecasting"])
    p.add_argument("--data", required=True, help="a DataFrame variable, a CSV/Parquet path, or datastore:PATH")
    p.add_argument("--label", required=True, help="the column to predict")
    p.add_argument("--metric", help="primary metric (Azure ML names; default accuracy / normalized_root_mean_squared_error)")
    p.add_argument("--budget", type=_amount(0, 1e7, low_open=True), help="time budget in seconds (default 60 unless --trials is given)")
    p.add_argument("--trials", type=TRIALS, help="stop after this many trials")
    p.add_argument("--validation", default="auto",
                   help="auto, a holdout fraction like 0.2, or cv:K for K-fold cross-validation")
    p.add_argument("--allowed", help="only these algorithms (comma separated; see %aml help automl)")
    p.add_argument("--blocked", help="never these algorithms")
    p.add_argument("--no-featurization", action="store_true", help="use the columns as they are")
    p.add_argument("--no-ensemble", action="store_true", help="do not try an ensemble of the best trials")
    p.add_argument("--time-column", help="forecasting: the time column")
    p.add_argument("--horizon", type=_count(1, 100_000), help="forecasting: how many periods ahead")
    p.add_argument("--register", metavar="NAME", help="register the best model under this name when done (waits)")
    p.add_argument("--seed", type=SEED, default=0, help="random seed (default 0)")
    _run_options(p)

    p = sub.add_parser("step", help="make this cell (%%aml step NAME) or a script (%aml step NAME SCRIPT -- ARGS) a "
                                    "step of the notebook's pipeline", add_help=False)
    p.add_argument("name", help="the step's name (letters, digits, _)")
    p.add_argument("script", nargs="?", help="script or notebook of the step (line form); omit in %%aml step cells")
    p.add_argument("--in", dest="inputs", action="append", default=[], metavar="NAME[=SOURCE]",
                   help="an input folder: NAME alone reads the step output of that name; NAME=STEP.OUTPUT, "
                        "NAME=datastore:PATH (repeatable, or comma separated)")
    p.add_argument("--out", dest="outputs", action="append", default=[], metavar="NAME",
                   help="an output folder the step writes (outputs.NAME in the cell, ${{outputs.NAME}} in arguments)")
    p.add_argument("-c", "--compute", help="compute target of the step (default: the pipeline's)")
    p.add_argument("--env", dest="environment", metavar="ENV", help="run the step in a registered environment")
    p.add_argument("--no-reuse", action="store_true", help="always run this step (never reuse an earlier run)")
    p.add_argument("--source-dir", help="the step's code folder (default: this folder)")
    p.add_argument("--timeout", type=_duration, metavar="DURATION",
                   help="cancel the step's run after it has run this long (90, 30m, 2h)")
    p.add_argument("--env-var", action="append", default=[], metavar="KEY=VALUE",
                   help="environment variable of the step's run (repeatable; part of what decides reuse)")

    p = sub.add_parser("pipeline", help="the notebook's pipeline: `run` it (or a v2 pipeline YAML), `export` it as "
                                        "YAML, `show` a pipeline run's graph, list its `steps`, `clear` them",
                       add_help=False)
    p.add_argument("action", choices=["run", "export", "show", "steps", "clear"])
    p.add_argument("target", nargs="?", help="run: a pipeline YAML (default: the notebook's steps); export: the file "
                                             "to write (default pipeline.yml); show: a run; clear: a step")
    p.add_argument("-e", "--experiment", help="experiment name (default: the YAML's experiment_name, else the notebook's)")
    p.add_argument("-c", "--compute", help="default compute target of the steps (default: local)")
    p.add_argument("--no-reuse", action="store_true", help="run every step, even unchanged ones")
    p.add_argument("--name", dest="display_name", help="display name of the pipeline run")
    p.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE", help="tag the pipeline run")
    p.add_argument("--wait", action="store_true", help="block until the pipeline ends, streaming its output")
    p.add_argument("--force", action="store_true", help="export: overwrite an existing file")

    p = sub.add_parser("batch", help="batch scoring: a model over a folder of files or a table's rows, in "
                                     "mini-batches on worker processes (v1 ParallelRunStep's contract)", add_help=False)
    p.add_argument("model", nargs="?", help="registered model NAME[:VERSION] (optional with --score)")
    p.add_argument("--data", required=True, help="datastore:PATH (a folder of files, or CSV/Parquet), a local path, "
                                                 "or a DataFrame variable")
    p.add_argument("--out", dest="output", metavar="datastore:PATH", help="a datastore folder for the output file too")
    p.add_argument("--score", help="a script with init() and run(mini_batch) (default: score a scikit-learn or ONNX model)")
    p.add_argument("--mini-batch", type=_count(1, 10 ** 9), help="files (default 10) or rows (default 10,000) per mini-batch")
    p.add_argument("--parallel", type=_count(1, 1024), default=1, help="worker processes (default 1)")
    p.add_argument("--retries", type=_count(0, 1000), default=3, help="tries more of a failing mini-batch (default 3)")
    p.add_argument("--error-threshold", type=_count(-1, 10 ** 12), default=-1,
                   help="stop when more files/rows than this failed (default -1: never)")
    p.add_argument("--output-file", help="parallel_run_step.txt (files), predictions.csv (rows), or a .parquet name")
    p.add_argument("--tabular", action="store_true", help="score rows of the CSV/Parquet files (default: decided by "
                                                          "the files)")
    p.add_argument("-e", "--experiment", help="experiment name (default: the notebook's)")
    p.add_argument("-c", "--compute", help="compute target (default: local)")
    p.add_argument("--name", dest="display_name", help="display name of the run")
    p.add_argument("--env", dest="environment", metavar="ENV", help="run in a registered environment")
    p.add_argument("--source-dir", help="folder to snapshot (where --score is; default: this folder)")
    p.add_argument("--wait", action="store_true", help="block until the batch run ends")

    p = sub.add_parser("batch-endpoint", help="Azure ML batch endpoints: `create NAME MODEL -c CLUSTER`, `list`, "
                                              "`delete NAME`", add_help=False)
    p.add_argument("action", choices=["create", "list", "delete"])
    p.add_argument("name", nargs="?", help="the endpoint's name (create, delete)")
    p.add_argument("model", nargs="?", help="create: registered model NAME[:VERSION]")
    p.add_argument("--score", help="a batch scoring script (init(), run(mini_batch)); default: a generated one for "
                                   "a scikit-learn model")
    p.add_argument("-c", "--compute", help="the compute cluster its jobs run on")
    p.add_argument("--mini-batch", type=_count(1, 10 ** 9), default=10, help="files per mini-batch (default 10)")
    p.add_argument("--parallel", type=_count(1, 1024), default=1, help="processes per instance (default 1)")
    p.add_argument("--retries", type=_count(0, 1000), default=3, help="tries more of a failing mini-batch")
    p.add_argument("--error-threshold", type=_count(-1, 10 ** 12), default=-1, help="failed files tolerated (-1: any)")
    p.add_argument("--output-file", default="predictions.csv", help="the appended output (default predictions.csv)")
    p.add_argument("--env", dest="environment", metavar="ENV", help="a registered environment")

    p = sub.add_parser("resume", help="continue a sweep, AutoML, pipeline or batch run whose controller stopped",
                       add_help=False)
    p.add_argument("run", help=RUN_HELP)
    p.add_argument("--wait", action="store_true", help="block until it ends")

    p = sub.add_parser("connect", help="use an Azure ML workspace (config.json, or name it); DefaultAzureCredential",
                       add_help=False)
    p.add_argument("--subscription", help="subscription id (default: from config.json)")
    p.add_argument("--resource-group", help="resource group (default: from config.json)")
    p.add_argument("--workspace", help="workspace name (default: from config.json)")
    p.add_argument("--device-code", action="store_true", help="sign in with a device code (workshops, no browser)")

    p = sub.add_parser("runs", help="run history (newest first)", add_help=False)
    p.add_argument("-e", "--experiment", help="only this experiment")
    p.add_argument("--status", action="append", help="only runs in this state (repeatable)")
    p.add_argument("--tag", action="append", default=[], metavar="KEY[=VALUE]",
                   help="only runs with this tag (set to VALUE, or to anything; repeatable)")
    p.add_argument("--limit", type=_count(1, 100_000), default=50, help="at most this many runs (default 50)")
    p.add_argument("--offset", type=_count(0, 2 ** 62), default=0, help="skip this many (paging)")
    p.add_argument("--metric", action="append", dest="metrics", metavar="NAME",
                   help="a metric column of the run history (repeatable; default: the first few logged)")

    p = sub.add_parser("show", help="a run's live dashboard (its summary outside notebooks)", add_help=False)
    p.add_argument("run", help=RUN_HELP)
    p.add_argument("--static", action="store_true", help="only the static summary (renders without a kernel)")

    for name, text in (("metrics", "a run's metrics with their latest values"),
                       ("cancel", "stop a run (its whole process group) and mark it Canceled")):
        p = sub.add_parser(name, help=text, add_help=False)
        p.add_argument("run", help=RUN_HELP)

    p = sub.add_parser("compare", help="runs side by side: a metric overlaid, params and metrics diffed",
                       add_help=False)
    p.add_argument("runs", nargs="+", metavar="RUN", help="two or more runs")
    p.add_argument("--metric", help="the metric to overlay (default: the first one logged)")

    p = sub.add_parser("logs", help="a run's output (stdout and stderr)", add_help=False)
    p.add_argument("run", help=RUN_HELP)
    p.add_argument("--follow", "-f", action="store_true", help="keep printing until the run ends")
    p.add_argument("--tail", type=_count(1, 10_000_000), help="only the last N lines")

    sub.add_parser("experiments", help="experiments with their run counts", add_help=False)

    p = sub.add_parser("compute", help="compute targets; `create NAME --max-concurrent N` adds a local pool",
                       add_help=False)
    p.add_argument("action", nargs="?", choices=["list", "create"], default="list")
    p.add_argument("name", nargs="?", help="name of the compute target to create")
    p.add_argument("--max-concurrent", type=_count(1, 10_000), help="runs at once on it (default: number of cores)")

    p = sub.add_parser("datastore", help="the workspace's files for runs: upload, ls, download", add_help=False)
    p.add_argument("action", choices=["upload", "ls", "download"])
    p.add_argument("path", nargs="?", default="", help="upload: local file/folder; ls/download: datastore path")
    p.add_argument("--target", default=None, help="upload: a datastore folder (a file sent to a name with a suffix, "
                   "like tables/x.csv, takes that name); download: local folder (default .; a datastore folder "
                   "comes down as itself inside it, as cp -r does)")
    p.add_argument("--datastore", help="datastore name (default: the workspace default)")
    p.add_argument("--overwrite", action="store_true", help="replace files that exist")

    p = sub.add_parser("workspace", help="show the workspace, or `use PATH` to switch this kernel to another",
                       add_help=False)
    p.add_argument("action", nargs="?", choices=["show", "use"], default="show")
    p.add_argument("path", nargs="?", help="folder of a local workspace (created when missing)")

    p = sub.add_parser("register", help="register a file or folder of a run as a model version", add_help=False)
    p.add_argument("run", help=RUN_HELP + "; or a local path with --local")
    p.add_argument("path", nargs="?", default="outputs/model.pkl", help="the run's file or folder (default outputs/model.pkl)")
    p.add_argument("--name", required=True, help="model name (a new version each time)")
    p.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE", help="tag the version (repeatable)")
    p.add_argument("--description", help="a description of the version")
    p.add_argument("--local", action="store_true", help="RUN is a local file or folder, not a run")

    p = sub.add_parser("models", help="the model registry: names, versions, frameworks, source runs", add_help=False)
    p.add_argument("name", nargs="?", help="only this model's versions")
    p.add_argument("--tag", action="append", default=[], metavar="KEY[=VALUE]", help="only versions with this tag")

    p = sub.add_parser("deploy", help="deploy registered models as a scoring web service (local, or an Azure "
                                      "managed online endpoint)", add_help=False)
    p.add_argument("models", nargs="+", metavar="MODEL[:VERSION]", help="registered model(s); the latest version by default")
    p.add_argument("--name", help="service name (default: the model's name, lower-cased)")
    p.add_argument("--score", help="score.py with init() and run(raw_data) (default: a scorer for the model's framework)")
    p.add_argument("--host", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=_count(1, 65535), help="port (default: a free one)")
    p.add_argument("--no-auth", action="store_true", help="serve /score without a key (not recommended)")
    p.add_argument("--update", action="store_true",
                   help="swap the models/score.py of an existing service in place (its address, key setting, "
                        "workers, score.py and --env stay unless given)")
    p.add_argument("--env", dest="environment", metavar="ENV",
                   help="serve from an environment: a registered NAME[:VERSION] or a requirements.txt / .yml")
    p.add_argument("--target", choices=sorted(BACKENDS),
                   help="where the service runs: this workspace's kind (default); azure needs %%aml connect")
    p.add_argument("--instance-type", help="azure: the VM size of the deployment (default Standard_DS3_v2)")
    p.add_argument("--workers", type=_count(1, 64),
                   help="processes serving it, each with its own init() (default 1; about one per core)")

    p = sub.add_parser("services", help="deployed services: state, scoring URI, models", add_help=False)

    p = sub.add_parser("env", help="environments: `env register NAME FILE`, `env list`, `env build NAME`",
                       add_help=False)
    p.add_argument("action", choices=["register", "list", "build"])
    p.add_argument("name", nargs="?", help="environment name (NAME[:VERSION] for build)")
    p.add_argument("spec", nargs="*", help="register: a requirements.txt / environment.yml, or requirements")

    p = sub.add_parser("service", help="one service: --logs, --keys, --test JSON, --delete", add_help=False)
    p.add_argument("name")
    p.add_argument("--logs", action="store_true", help="the service's log")
    p.add_argument("--keys", action="store_true", help="its keys, masked, with buttons that copy them (never printed)")
    p.add_argument("--test", metavar="JSON", help="POST this JSON (in single quotes), or @FILE's contents, to /score "
                                                  "and show the answer")
    p.add_argument("--delete", action="store_true", help="stop it, free its port and forget it")
    p.add_argument("--build-image", action="store_true",
                   help="build a container image from the service's image record (needs a Docker engine)")

    p = sub.add_parser("v1", help="run Azure ML SDK v1 notebooks unchanged: `import azureml.core` … use this "
                                  "workspace (`%aml v1 off` to stop)", add_help=False)
    p.add_argument("action", nargs="?", choices=["on", "off"], default="on")

    p = sub.add_parser("doctor", help="check the workspace and repair stale runs / interrupted registrations",
                       add_help=False)
    p.add_argument("--recover", action="store_true",
                   help="a damaged store: use the store doctor salvaged (a copy of the damaged one is kept)")

    p = sub.add_parser("help", help="help on a subcommand", add_help=False)
    p.add_argument("topic", nargs="?")
    return root


def full_help(parser: argparse.ArgumentParser) -> str:
    """The overview plus every subcommand's options: the ``%aml?`` docstring."""
    parts = [OVERVIEW, "Subcommands and options", "=" * 23]
    for name, sub in subcommands(parser).items():
        parts.append(sub.format_help().replace("usage: ", "").rstrip())
        parts.append("")
    return "\n".join(parts)


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


# options where an empty value means something: a description, the datastore's root, a request body to test with;
# and the NAME=VALUE ones, which say how to write a pair themselves
_EMPTY_ALLOWED = {"description", "target", "test", "tag", "env_var", "input", "parameter", "param"}


def blank_option(parser: argparse.ArgumentParser, args: argparse.Namespace) -> str | None:
    """The message for an option given an empty or blank value (``-c ""``, ``--source-dir " "``) — which the
    commands took for the option left out, the default, without a word — or None."""
    for action in parser._actions:
        if not action.option_strings or action.nargs == 0 or action.dest in _EMPTY_ALLOWED:
            continue
        value = getattr(args, action.dest, None)
        values = value if isinstance(value, list) else [value]
        if value == action.default or not any(isinstance(v, str) and not v.strip() for v in values):
            continue
        also = "" if action.required else ", or leave the option out for the default"
        return f"{'/'.join(action.option_strings)} was given an empty value; give one{also}"
    return None


_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def parse_pairs(items: list[str], option: str, *, literal: bool = False, identifier: bool = False) -> dict[str, Any]:
    """``["a=1", "b=x"]`` → dict; one clear error for anything else."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"{option} {item!r}: write it as NAME=VALUE")
        if identifier and not _NAME.match(key):
            raise UsageError(f"{option} {item!r}: {key!r} is not a valid Python name")
        if literal:
            try:
                value = ast.literal_eval(value)
            except (ValueError, SyntaxError, MemoryError, RecursionError):  # (the last two: a literal too deep)
                # anything that is not a literal is a string, as papermill's -r does; one that was meant as a list,
                # a dict or a quoted string ("[1,2", a quote that the line's quoting ate) is said
                if value.strip()[:1] in ("[", "{", "(") or value.strip()[:1] in ("'", '"') and len(value) < 2000:
                    import sys

                    print(f"Note: {option} {checks.shown(key, 40)[1:-1]}={checks.shown(value, 60)[1:-1]} is not a "
                          "Python literal; it is passed as that text", file=sys.stderr)
        if key in out:  # "--tag stage=prod --tag stage=dev" kept the last without a word
            raise UsageError(f"{option} {checks.shown(key, 40)[1:-1]} is given twice; keep one")
        out[key] = value
    return out


def parse_names(text: str, option: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    for n in names:
        if not _NAME.match(n):
            raise UsageError(f"{option}: {n!r} is not a variable name (use {option} a,b)")
    return names
