"""``%aml`` / ``%%aml``: parse, call ``core.Client``, return an object whose repr is the answer."""
from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand
from traitlets import Bool, Int, Unicode

from ..core import checks
from ..core.client import Client
from ..core.errors import AmlError
from ..core.names import CELL_FILE, DEFAULT_COMPUTE, check_model_name
from ..core.types import RunSubmission
from . import parser as cli
from .display import in_kernel as _in_kernel
from .pipeline_commands import PipelineCommands
from .workspace_commands import WorkspaceCommands

_PARSER = cli.build_parser()
MAX_SNAPSHOT_MB = 1_000_000  # a terabyte
SHOWN_LOG_BYTES = 4 * 1024 * 1024  # %aml logs prints at most the last 4 MB (a notebook's output is no pager)


@magics_class
class AmlMagics(WorkspaceCommands, PipelineCommands, Magics):
    workspace = Unicode("", help="local workspace folder for this kernel (default: $AML_MAGICS_WORKSPACE, "
                                 "else the per-user workspace)").tag(config=True)
    default_experiment = Unicode("", help="experiment for runs without -e (default: the notebook's name, "
                                          "else 'default')").tag(config=True)
    default_compute = Unicode(DEFAULT_COMPUTE, help="compute target for runs without -c").tag(config=True)
    snapshot_max_mb = Int(100, help="refuse snapshots larger than this many MB").tag(config=True)
    stream_output = Bool(True, help="with --wait, stream the run's output into the cell").tag(config=True)
    dashboards = Bool(True, help="show runs, run lists and the workspace as live dashboards in notebooks").tag(
        config=True)

    def __init__(self, shell=None, **kwargs):
        super().__init__(shell=shell, **kwargs)
        self._client: Client | None = None
        self._steps: dict = {}  # the notebook's pipeline steps (%%aml step), by name, in definition order

    # -- plumbing -----------------------------------------------------------------------------

    @property
    def client(self) -> Client:
        if self._client is None or self._client.stale():
            self._client = Client.shared(self.workspace or None)
        return self._client

    @line_cell_magic
    @no_var_expand
    def aml(self, line: str = "", cell: str | None = None):
        try:
            os.getcwd()
        except FileNotFoundError:  # every command that reads the project said only "[Errno 2] No such file …"
            raise UsageError("this notebook's folder (the kernel's working directory) was deleted or moved; %cd to "
                             "a folder that exists, or restart the kernel") from None
        try:
            return self._dispatch(self._expand(line), cell)
        except AmlError as exc:
            raise UsageError(str(exc)) from None
        except KeyboardInterrupt:
            print("Interrupted.", file=sys.stderr)
            return None

    def _expand(self, line: str) -> str:
        """IPython's ``{expr}`` / ``$name`` expansion with the caller's variables, as for any magic, except in a
        sweep's template after `` -- `` (``--lr {lr}`` names a sweep parameter, not a notebook variable); Azure
        ML's ``${{inputs.data}}`` placeholders are kept as written everywhere."""
        import re

        from IPython.utils.text import DollarFormatter

        if self.shell is None or not any(c in line for c in "{$"):
            return line
        cut = re.search(r"(^|\s)--(\s|$)", line)
        head, tail = (line[:cut.start()], line[cut.start():]) if cut else (line, "")
        if line.split(None, 1)[:1] != ["sweep"]:
            head, tail = head + tail, ""
        kept: list[str] = []

        def keep(m: re.Match) -> str:
            kept.append(m.group(0))
            return f"\x00{len(kept) - 1}\x00"

        masked = re.sub(r"\$\{\{[^{}]*\}\}", keep, head)
        try:
            masked = DollarFormatter().vformat(masked, args=[], kwargs=self._namespace())
        except Exception:  # noqa: BLE001 - as IPython: what does not expand is used as written
            return line
        return re.sub("\x00(\\d+)\x00", lambda m: kept[int(m.group(1))], masked) + tail

    def _namespace(self) -> dict:
        """The notebook's variables and, inside a function, its locals (what IPython's own expansion sees)."""
        ns = dict(self.shell.user_ns)
        frame = sys._getframe()
        while frame is not None and frame.f_code.co_name not in ("run_line_magic", "run_cell_magic"):
            frame = frame.f_back
        if frame is not None and frame.f_back is not None:
            ns.update(frame.f_back.f_locals)
        return ns

    def _dispatch(self, line: str, cell: str | None):
        try:
            tokens = shlex.split(line, posix=os.name != "nt")
        except ValueError as exc:
            raise UsageError(f"%aml: {exc} (check the quotes)") from None
        for token in tokens:  # a lone surrogate no file name (even as raw bytes) and no stored name can have
            try:
                token.encode("utf-8", "surrogateescape")
            except UnicodeEncodeError:
                raise UsageError(f"%aml: {checks.shown(token)} contains a lone surrogate character, which no file and "
                                 "no name in the workspace can have; fix the string") from None
        extra: list[str] = []
        if "--" in tokens:
            cut = tokens.index("--")
            tokens, extra = tokens[:cut], tokens[cut + 1:]
        if not tokens:
            if cell is not None:
                raise UsageError("%%aml needs a subcommand on its first line, like %%aml run -e my-experiment")
            return self.client.workspace
        subs = cli.subcommands(_PARSER)
        if "-h" in tokens or "--help" in tokens:  # what every command line answers: its help (nothing is run)
            topic = tokens[0] if not tokens[0].startswith("-") else None
            return self._cmd_help(argparse.Namespace(topic=topic))
        if tokens[0] in subs:  # let the subcommand's own parser report its errors
            args = subs[tokens[0]].parse_args(tokens[1:])
            args.command = tokens[0]
        else:
            args = _PARSER.parse_args(tokens)
        if getattr(args, "experiment", None) is not None and not args.experiment.strip():
            raise UsageError(f"%aml {args.command}: -e/--experiment was given an empty name; give one, or leave the "
                             "option out for the default")
        blank = cli.blank_option(subs.get(args.command, _PARSER), args)
        if blank is not None:
            raise UsageError(f"%aml {args.command}: {blank}")
        if cell is not None and args.command not in ("run", "sweep", "step"):
            raise UsageError(f"%%aml {args.command} is a line magic: use %aml {args.command} "
                             "(only %%aml run, %%aml sweep and %%aml step take a cell)")
        if extra and args.command not in ("run", "sweep", "step"):
            raise UsageError("'--' arguments go only with %aml run SCRIPT -- ARGS, %aml sweep SCRIPT -- ARGS or "
                             "%aml step NAME SCRIPT -- ARGS")
        handler = getattr(self, f"_cmd_{args.command.replace('-', '_')}")
        return handler(args, cell, extra) if args.command in ("run", "sweep", "step") else handler(args)

    # -- runs -------------------------------------------------------------------------------------

    def _experiment(self, args) -> str:
        return args.experiment or self.default_experiment or _notebook_stem(self.shell) or "default"

    def _common(self, args, kind: str) -> dict[str, Any]:
        tags = cli.parse_pairs(args.tag, "--tag")
        env = cli.parse_pairs(args.env_var, "--env-var")
        inputs = cli.parse_pairs(args.input, "--input", identifier=True)
        in_names = cli.parse_names(args.in_vars, "--in")
        out_names = cli.parse_names(args.out_vars, "--out")
        if kind == "notebook" and (in_names or out_names):
            raise UsageError("--in/--out work for cells and scripts; pass values to a notebook with -p NAME=VALUE")
        missing = [n for n in in_names if n not in self.shell.user_ns]
        if missing:
            raise UsageError(f"--in: {', '.join(missing)} not defined in this notebook")
        # checked where it is used: a TraitError from %config would stay in the shell's config and break the next
        # %load_ext; 0 or less would refuse every snapshot ("over the -1 MB limit")
        if not 1 <= self.snapshot_max_mb <= MAX_SNAPSHOT_MB:
            raise UsageError(f"%config AmlMagics.snapshot_max_mb = {self.snapshot_max_mb}: give 1 to "
                             f"{MAX_SNAPSHOT_MB:,} (MB; the default is 100)")
        return dict(
            experiment=self._experiment(args), tags=tags,
            compute=args.compute or self.default_compute or DEFAULT_COMPUTE,  # '' in %config: the default
            display_name=args.display_name, in_values={n: self.shell.user_ns[n] for n in in_names},
            out_vars=out_names, inputs=inputs, environment_variables=env, environment=args.environment,
            snapshot_max_bytes=self.snapshot_max_mb * 1_000_000,
        )

    def _cmd_run(self, args, cell: str | None, extra: list[str]):
        if cell is not None:
            if args.script:
                raise UsageError("%%aml run takes the cell as its code; to run a script use the line form %aml run SCRIPT")
            if not cell.strip():
                raise UsageError("the cell is empty: put the code to run below %%aml run")
            code = _plain_python(self.shell, cell)
            sub = RunSubmission(kind="cell", source_dir=Path(args.source_dir or os.getcwd()), entry=CELL_FILE,
                                code=code, args=extra, timeout_s=args.timeout, **self._common(args, "cell"))
        else:
            if not args.script:
                raise UsageError("give a script (%aml run train.py -- ARGS), or put %%aml run on a cell's first line")
            source, entry = _source_and_entry(args.script, args.source_dir)
            sub = RunSubmission(kind="script", source_dir=source, entry=entry, args=extra, timeout_s=args.timeout,
                                **self._common(args, "script"))
        return self._submit(sub, args)

    def _cmd_submit(self, args):
        path = args.notebook or _current_notebook(self.shell)
        if not path:
            raise UsageError("cannot tell which notebook this is; name it: %aml submit my-notebook.ipynb")
        if not path.endswith(".ipynb"):
            raise UsageError(f"{path!r} is not a notebook (.ipynb); run scripts with %aml run {path}")
        params = cli.parse_pairs(args.parameter, "-p", literal=True, identifier=True)
        source, entry = _source_and_entry(path, args.source_dir)
        sub = RunSubmission(kind="notebook", source_dir=source, entry=entry, parameters=params,
                            timeout_s=args.timeout, **self._common(args, "notebook"))
        if not args.notebook:
            print(f"Submitting {entry} as last saved (save first to include recent edits).")
        return self._submit(sub, args)

    def _submit(self, sub: RunSubmission, args):
        if args.wait and args.no_wait:  # (it did not wait, without a word)
            raise UsageError("--wait and --no-wait say opposite things: give one (--no-wait is for a run with --out "
                             "that should not block)")
        run = self.client.runs.submit(sub)
        wait = (args.wait or bool(sub.out_vars)) and not args.no_wait
        if not wait:
            return run
        info = self._wait(run)
        if info is None:
            return run
        if sub.out_vars:
            if info.status != "Completed":
                print(f"Run {run.id} ended {info.status}; --out variables were not brought back.", file=sys.stderr)
            else:
                values = self.client.runs.result(run.id)
                self.shell.user_ns.update(values)
                print(f"Brought back {', '.join(values)} from run {run.id}.")
        return run

    def _cmd_sweep(self, args, cell: str | None, extra: list[str]):
        from ..sweep.policies import Policy
        from ..sweep.settings import sweep_submission
        from ..sweep.space import parse_cell, parse_param, unread

        space: dict = {}
        spans: list = []
        if args.parameter and (cell is not None or not str(args.target or "").endswith(".ipynb")):
            raise UsageError("-p/--parameter fixes a notebook's parameters; a cell or script keeps its fixed values "
                             "in its code (a script can take them as arguments after --); swept ones go in --param")
        if cell is not None:
            if args.target:
                raise UsageError("%%aml sweep tunes the cell; to sweep a script use %aml sweep SCRIPT --param ...")
            code = _plain_python(self.shell, cell)
            space, spans = parse_cell(code)
            idle = unread(code, space)
            if idle:
                them = "it" if len(idle) == 1 else "them"
                print(f"Note: the cell never reads {', '.join(idle)} after declaring {them}: the trials would not "
                      f"differ in {them}.", file=sys.stderr)
            trial = RunSubmission(kind="cell", source_dir=Path(args.source_dir or os.getcwd()), entry=CELL_FILE,
                                  code=code, args=extra, timeout_s=args.trial_timeout, **self._common(args, "cell"))
        else:
            if not args.target:
                raise UsageError("give a script or notebook (%aml sweep train.py --param ...), or put %%aml sweep "
                                 "on a cell's first line")
            source, entry = _source_and_entry(args.target, args.source_dir)
            kind = "notebook" if entry.endswith(".ipynb") else "script"
            params = cli.parse_pairs(args.parameter, "-p", literal=True, identifier=True)
            trial = RunSubmission(kind=kind, source_dir=source, entry=entry, args=extra, parameters=params,
                                  timeout_s=args.trial_timeout, **self._common(args, kind))
        for text in args.param:
            name, expr = parse_param(text)
            if name in space:
                raise UsageError(f"--param {name}: the cell declares {name} already" if cell is not None else
                                 f"--param {name} is given twice: keep one")
            space[name] = expr
        policy = None
        if args.early_stop:
            given = {"evaluation_interval": args.evaluation_interval, "delay_evaluation": args.delay_evaluation,
                     "truncation_percentage": args.truncation_percentage}
            policy = Policy(args.early_stop, slack_factor=args.slack_factor, slack_amount=args.slack_amount,
                            **{k: v for k, v in given.items() if v is not None})
        elif args.slack_factor is not None or args.slack_amount is not None:
            raise UsageError("--slack-factor/--slack-amount need --early-stop bandit")
        for option, value, policies in (("--truncation-percentage", args.truncation_percentage, ("truncation",)),
                                        ("--slack-factor", args.slack_factor, ("bandit",)),
                                        ("--slack-amount", args.slack_amount, ("bandit",)),
                                        ("--evaluation-interval", args.evaluation_interval, None),
                                        ("--delay-evaluation", args.delay_evaluation, None)):
            if value is not None and (policies is None and not args.early_stop or
                                      policies is not None and args.early_stop not in policies):
                wanted = f"--early-stop {policies[0]}" if policies else "--early-stop bandit, median or truncation"
                other = f", not {args.early_stop}" if args.early_stop else ""
                raise UsageError(f"{option} goes with {wanted}{other} (nothing was submitted)")
        sub = sweep_submission(trial, space, primary_metric=args.metric, goal=args.goal, sampling=args.sampling,
                               max_trials=args.trials, parallel=args.parallel, policy=policy, timeout_s=args.timeout,
                               max_failures=args.max_failures, seed=args.seed, spans=spans)
        return self._submit(sub, args)

    def _cmd_automl(self, args):
        from ..automl.settings import automl_submission

        data = args.data
        if args.register:  # said before the run, not after its whole budget
            check_model_name(args.register, "--register: the model name")
        if args.in_vars:
            raise UsageError("--in does not apply to AutoML: give the training data as --data (a DataFrame variable of "
                             "this notebook, a CSV/Parquet file or datastore:PATH)")
        in_values = {}
        if data.isidentifier() and data in self.shell.user_ns:
            in_values = {"training_data": self.shell.user_ns[data]}
            label_value = self.shell.user_ns.get(args.label)
            if not hasattr(in_values["training_data"], "columns") and label_value is not None:
                in_values[args.label] = label_value  # arrays: --data X --label y
        elif data.isidentifier() and not os.path.exists(data):
            raise UsageError(f"--data {data}: no variable {data!r} in this notebook and no file {data!r}")
        common = self._common(args, "cell")
        common["in_values"] = {**common["in_values"], **in_values}
        sub = automl_submission(
            data=data, in_memory=bool(in_values), task=args.task, label=args.label, metric=args.metric,
            budget_s=args.budget, max_trials=args.trials, validation=args.validation, allowed=args.allowed,
            blocked=args.blocked, featurization=not args.no_featurization, ensemble=not args.no_ensemble,
            time_column=args.time_column, horizon=args.horizon, seed=args.seed, client=self.client,
            source_dir=Path(args.source_dir or os.getcwd()), **common,
        )
        run = self._submit(sub, args)
        if args.register:
            info = self.client.runs.wait(run.id, show_output=False)
            if info.status != "Completed":
                print(f"AutoML run {run.id} ended {info.status}; nothing was registered.", file=sys.stderr)
                return run
            tags = {"automl": run.id, "primary_metric": sub.engine.primary_metric}
            if self.client.capabilities.automl_model == "best_child":  # each trial's model is in its own outputs
                best = self.client.runs.best_child(run.id)
                if best is None:
                    print(f"AutoML run {run.id} has no completed trial; nothing was registered.", file=sys.stderr)
                    return run
                model = self.client.models.register(args.register, "outputs/model.pkl", run_id=best.id, tags=tags)
            else:
                model = run.register_model(args.register, "outputs/model.pkl", tags=tags)
            print(f"Registered {model.name}:{model.version} from {run.id}.")
        return run

    def _wait(self, run):
        """Wait for ``run``: in a notebook its live dashboard shows at once (log, charts and trials update while the
        cell waits) and the run's output is not printed a second time; elsewhere the output streams. None when
        interrupted (the run goes on)."""
        live = self.dashboards and _in_kernel(self.shell)
        try:
            if live:
                from ..widgets.run_details import RunDetails

                RunDetails(run.id, self.client).show()
                run._on_screen = getattr(self.shell, "execution_count", None)  # the cell's value shows no second one
            return self.client.runs.wait(run.id, show_output=self.stream_output and not live)
        except KeyboardInterrupt:
            print(f"\nStopped waiting; run {run.id} goes on (%aml cancel {run.id} stops it).", file=sys.stderr)
            return None

    def _cmd_resume(self, args):
        run = self.client.runs.resume(args.run)
        print(f"Resumed {run.id}.")
        if args.wait:
            self._wait(run)
        return run

    def _cmd_connect(self, args):
        self._client = Client.connect(args.subscription, args.resource_group, args.workspace,
                                      device_code=args.device_code)
        info = self._client.workspace  # the first call: signs in and reads the workspace
        from .workspace_commands import _follow_v1

        _follow_v1(self._client)
        print(f"Connected to Azure ML workspace {self._client.config.name} ({self._client.config.describe()}). "
              "Back to the local workspace: %aml workspace use PATH")
        return info

    def _cmd_runs(self, args):
        runs = self.client.runs.list(experiment=args.experiment, status=args.status, limit=args.limit,
                                     offset=args.offset, tags=checks.tag_filter(args.tag) or None)
        runs.query["metrics"] = args.metrics
        if args.metrics and runs.infos:  # a typo'd column is an empty column: say so
            import difflib

            logged = {k for info in runs.infos for k in info.latest_metrics}
            for name in dict.fromkeys(m for m in args.metrics if m not in logged):
                close = difflib.get_close_matches(name, sorted(logged), n=3, cutoff=0.6)
                also = f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""
                print(f"Note: no run listed logged metric {checks.shown(name)}{also}; its column stays empty",
                      file=sys.stderr)
        return runs

    def _cmd_show(self, args):
        run_id = self.client.runs.resolve_id(args.run)
        if args.static:
            from ..widgets.static import StaticRunView

            try:
                files, log = self.client.runs.list_files(run_id), self.client.runs.get_logs(run_id, tail=30)
            except AmlError as exc:  # a remote log store out of reach: the run itself is still shown
                files, log = [], f"(the log cannot be read: {exc})"
            return StaticRunView(self.client.runs.get(run_id), self.client.runs.get_metrics(run_id), log, files)
        if self.dashboards and _in_kernel(self.shell):
            from ..widgets.run_details import RunDetails

            return RunDetails(run_id, self.client)
        return self.client.runs.get(run_id)

    def _cmd_compare(self, args):
        if len(args.runs) < 2 or len({self.client.runs.resolve_id(r) for r in args.runs}) < 2:
            raise UsageError("give at least two different runs: %aml compare RUN1 RUN2 [RUN3 …]")
        from ..widgets.runs import RunComparison

        return RunComparison(args.runs, self.client, metric=args.metric, live=_in_kernel(self.shell))

    def _cmd_metrics(self, args):
        return self.client.runs.metrics_view(args.run)

    def _cmd_cancel(self, args):
        info = self.client.runs.cancel(args.run, wait=10)
        return info

    def _cmd_logs(self, args):
        if args.follow:
            try:
                for text in self.client.runs.follow_logs(args.run, first_max_bytes=SHOWN_LOG_BYTES):
                    sys.stdout.write(text)
                    sys.stdout.flush()
            except KeyboardInterrupt:
                print("\nStopped following; the run goes on.", file=sys.stderr)
            return None
        text = self.client.runs.get_logs(args.run, tail=args.tail, max_bytes=SHOWN_LOG_BYTES)
        if not text:
            ended = self.client.runs.get(args.run, with_metrics=False).is_terminal
            text = "(the run printed nothing)" if ended else "(no output yet)"
        print(text)
        return None

    # -- help (models, services, environments and the workspace: WorkspaceCommands) ---------------------

    def _cmd_help(self, args):
        subs = cli.subcommands(_PARSER)
        if not args.topic:
            print(cli.OVERVIEW)
            return None
        if args.topic not in subs:
            from ..core.errors import NotFound

            raise NotFound.with_suggestions("subcommand", args.topic, list(subs), hint="see %aml help")
        print(subs[args.topic].format_help().replace("usage: ", "", 1))
        return None


AmlMagics.aml.__doc__ = cli.full_help(_PARSER)


# -- helpers --------------------------------------------------------------------------------------------

def _plain_python(shell, cell: str) -> str:
    """The cell as plain Python: runs have no IPython, so magics and ``!`` commands are refused."""
    transformed = shell.transform_cell(cell) if shell is not None else cell
    if "get_ipython()" in transformed and "get_ipython()" not in cell:
        for number, text in enumerate(cell.splitlines(), 1):
            if "get_ipython()" in shell.transform_cell(text + "\n"):
                raise UsageError(f"line {number} of the cell ({text.strip()[:40]!r}) is IPython syntax; a run "
                                 "executes plain Python: remove it, or submit the notebook with %aml submit")
        raise UsageError("the cell uses IPython syntax (magics or !commands); a run executes plain Python")
    try:  # a typo is said here, not by a Failed run in the history
        compile(cell, "<cell>", "exec", dont_inherit=True)
    except SyntaxError as exc:
        where = f"line {exc.lineno} of the cell" if exc.lineno else "the cell"
        shown = f" ({exc.text.strip()[:60]!r})" if exc.text and exc.text.strip() else ""
        raise UsageError(f"{where} is not valid Python: {exc.msg}{shown}; nothing was submitted") from None
    except (ValueError, RecursionError, MemoryError):
        pass  # NUL bytes, or nesting too deep to compile here: the run says what it makes of it
    return cell


def _source_and_entry(path: str, source_dir: str | None) -> tuple[Path, str]:
    target = checks.expand_home(path)
    if not target.is_absolute():
        target = Path(os.getcwd()) / target
    kind = checks.path_kind("path", target)  # (a name the system cannot look up: an OSError)
    target = target.resolve()
    if kind != "file":
        raise UsageError(f"{path} {'not found' if kind == 'missing' else 'is not a file'} (relative paths start in "
                         f"{os.getcwd()})")
    source = checks.expand_home(source_dir).resolve() if source_dir else Path(os.getcwd()).resolve()
    if source not in target.parents:
        if source_dir:
            raise UsageError(f"{path} is not inside --source-dir {source_dir}")
        source = target.parent
    return source, target.relative_to(source).as_posix()


def _current_notebook(shell) -> str | None:
    """The path of the notebook this kernel serves, where the front end tells us."""
    ns = shell.user_ns if shell is not None else {}
    for candidate in (ns.get("__vsc_ipynb_file__"), ns.get("__session__"), os.environ.get("JPY_SESSION_NAME")):
        if not candidate or not str(candidate).endswith(".ipynb"):
            continue
        p = Path(candidate)
        if p.is_absolute() and p.is_file():
            return str(p)
        for base in (Path(os.getcwd()) / p.name, Path(os.getcwd()) / p):
            if base.is_file():
                return str(base)
    return None


def _notebook_stem(shell) -> str | None:
    """The notebook's name as an experiment name (Azure ML's notebooks do the same)."""
    path = _current_notebook(shell)
    if not path:
        return None
    cleaned = "".join(c if c.isalnum() or c in "-_" else "-" for c in Path(path).stem).strip("-")
    return cleaned or None
