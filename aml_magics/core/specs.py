"""What a sweep or an AutoML run is asked to do: typed specs, pure data. The engines (``sweep``, ``automl``) build
and run them; backends turn them into their own jobs (an Azure sweep or AutoML job) without knowing the engines.
A spec travels to the run process as JSON (``to_settings`` / ``from_settings``) inside the run's spec.

Also here, because both the sweep controller and a backend's job generation need them: how a trial's parameters
reach its code — ``{NAME}`` in argument templates (``format_args``) and ``NAME = choice(...)`` lines of a swept
cell (``replace_declarations``); and, for environments (a backend's and the v1 API's), a conda package as the pip
requirement a virtualenv installs (``conda_as_pip``).
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable

from .errors import InvalidInput
from .names import DEFAULT_COMPUTE


@dataclass
class TrialTemplate:
    """How each trial of a sweep runs: the cell, script or notebook, with its declared parameters' places."""

    kind: str  # "cell", "script" or "notebook"
    entry: str
    code: str | None = None
    spans: list = field(default_factory=list)  # [(name, first_line, last_line)] of a cell's declarations
    args: list[str] = field(default_factory=list)  # argument template: "{NAME}" is the trial's value
    parameters: dict[str, Any] = field(default_factory=dict)  # a notebook's fixed parameters


@dataclass
class SweepSpec:
    """A hyperparameter sweep (HyperDrive's settings)."""

    primary_metric: str
    goal: str  # "max" or "min"
    space: dict[str, list]  # name -> [expression kind, args]
    template: TrialTemplate
    sampling: str = "random"
    max_trials: int = 20
    parallel: int = 1
    policy: dict | None = None  # an early termination policy's settings
    timeout_s: float | None = None
    trial_timeout_s: float | None = None  # each trial is canceled after it has run this long
    max_failures: int = 5
    seed: int | None = None
    compute: str = DEFAULT_COMPUTE
    inputs: dict[str, str] = field(default_factory=dict)

    kind = "sweep"

    def to_settings(self) -> dict:
        return asdict(self)

    @classmethod
    def from_settings(cls, data: dict) -> "SweepSpec":
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["template"] = TrialTemplate(**data["template"])
        return cls(**values)


@dataclass
class AutoMLSpec:
    """An automated ML run."""

    task: str  # "classification", "regression", "forecasting"
    primary_metric: str
    goal: str
    label: str
    data: dict  # where the training data is: {"kind": "memory" | "input" | "file", ...}
    budget_s: float | None = None
    max_trials: int | None = None
    validation: dict = field(default_factory=lambda: {"method": "auto"})
    learners: list[str] = field(default_factory=list)
    learners_restricted: bool = False  # the user allowed or blocked algorithms (else: every default one)
    featurization: bool = True
    ensemble: bool = True
    time_column: str | None = None
    horizon: int | None = None
    seed: int = 0
    threads: int | None = None  # per trial; None: the engine decides
    # stop when the score stops improving (Azure's limitSettings.enableEarlyTermination; None: the service's
    # default). The local search always uses its whole budget or trial count: False is what it does already.
    early_termination: bool | None = None

    kind = "automl"

    def to_settings(self) -> dict:
        return asdict(self)

    @classmethod
    def from_settings(cls, data: dict) -> "AutoMLSpec":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default)


#: what batch scoring reads as rows of a table (every other file is scored as a file)
TABULAR_SUFFIXES = (".csv", ".parquet", ".pq", ".tsv")


@dataclass
class BatchSpec:
    """A batch scoring run (v1's ParallelRunStep, v2's batch deployment): a model over files or table rows."""

    data: dict  # {"kind": "input", "name": N} (a datastore folder/file), {"kind": "path", "path": P}, {"kind": "memory"}
    model: str | None = None  # "NAME:VERSION"
    score: str | None = None  # a script with init() and run(mini_batch) in the snapshot; None: the default scorer
    framework: str | None = None  # the model's, for the default scorer
    tabular: bool = False  # rows of CSV/Parquet files or a DataFrame; else files
    mini_batch: int = 10  # files per mini-batch, or rows for tabular data
    parallel: int = 1  # worker processes
    retries: int = 3  # a failing mini-batch is tried this many more times
    error_threshold: int = -1  # failed files/rows tolerated; -1: any number
    output_file: str = "parallel_run_step.txt"
    output: str | None = None  # the run's output name of a datastore folder that gets the file too
    model_path: str | None = None  # where the model's files are, when the run cannot ask the registry (an Azure job)

    kind = "batch"
    primary_metric = None
    goal = "max"

    def to_settings(self) -> dict:
        return asdict(self)

    @classmethod
    def from_settings(cls, data: dict) -> "BatchSpec":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


#: Azure ML's AutoML metrics where lower is better (errors and losses); every other one is maximized
LOWER_IS_BETTER = frozenset({
    "log_loss", "mean_absolute_error", "median_absolute_error", "root_mean_squared_error",
    "root_mean_squared_log_error", "normalized_mean_absolute_error", "normalized_median_absolute_error",
    "normalized_root_mean_squared_error", "normalized_root_mean_squared_log_error",
    "mean_absolute_percentage_error",
})


def metric_goal(metric: str) -> str:
    """"min" or "max" for an AutoML primary metric."""
    return "min" if metric in LOWER_IS_BETTER else "max"


def spec_from_settings(kind: str, data: dict | None) -> "SweepSpec | AutoMLSpec | None":
    if not data:
        return None
    return SweepSpec.from_settings(data) if kind == "sweep" else AutoMLSpec.from_settings(data)


# -- trial templates ----------------------------------------------------------------------------------------

# in one pass: Azure ML placeholders (``${{inputs.x}}``, ``${x}``) kept, ``{{``/``}}`` as literal braces (as
# str.format has them), and ``{NAME}`` of a sweep parameter
_TEMPLATE = re.compile(r"\$\{\{.*?\}\}|\$\{[^}]*\}|\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")


def format_args(template: list[str], values: dict[str, Any]) -> list[str]:
    """``--args`` templating: ``{C}`` in an argument becomes the trial's C, everything else is passed as written
    (``${{inputs.data}}`` too); without a template every parameter is passed HyperDrive-style as ``--C VALUE``."""
    if not template:
        out: list[str] = []
        for k, v in values.items():
            out += [f"--{k}", str(v)]
        return out

    def value(match: "re.Match[str]") -> str:
        token, name = match.group(0), match.group(1)
        if name is None:
            return {"{{": "{", "}}": "}"}.get(token, token)
        if name not in values:
            raise InvalidInput(f"argument {match.string!r} names {{{name}}}, which is not a sweep parameter (they are "
                               f"{', '.join(sorted(values)) or 'none'}); write a literal brace as {{{{ }}}}")
        return str(values[name])

    return [_TEMPLATE.sub(value, arg) for arg in template]


def replace_declarations(code: str, spans: list, line: Callable[[str], str], *, keep_numbers: bool = False) -> str:
    """The cell with each declared expression (``spans``) replaced by ``line(name)``; with ``keep_numbers`` an
    expression over several lines leaves blank lines, so later lines keep their numbers."""
    lines = code.splitlines()
    for name, first, last in sorted(spans, key=lambda s: -s[1]):
        lines[first - 1:last] = [line(name)] + [""] * ((last - first) if keep_numbers else 0)
    return "\n".join(lines) + "\n"


def trial_code(code: str, spans: list, values: dict[str, Any]) -> str:
    """The cell with each parameter expression replaced by this trial's value."""
    return replace_declarations(code, spans, lambda name: f"{name} = {values[name]!r}  # sweep parameter")


def conda_as_pip(package: str) -> str | None:
    """A conda dependency as a pip requirement, or None for what a virtualenv has anyway (``python``, ``pip``):
    ``scikit-learn=1.5`` → ``scikit-learn==1.5.*`` (conda's single ``=`` is a prefix: 1.5.2 matches; its
    ``name=version=build`` too), ``numpy 1.26.*`` → ``numpy==1.26.*``, ``conda-forge::lightgbm`` → ``lightgbm``;
    ``numpy>=1.20`` and a bare name stay."""
    package = package.strip().split("::", 1)[-1].strip()  # a channel prefix
    name = re.split(r"[=<>!~\[ ;]", package, maxsplit=1)[0]
    if name.lower() in ("python", "pip"):
        return None
    rest = package[len(name):].strip()
    if not rest:
        return name
    if rest[0] == "=" and rest[1:2] not in ("=", ""):  # conda's single "=" pins (its build string dropped)
        version = rest[1:].split("=")[0].strip()
        return f"{name}=={version}" if version.endswith("*") else f"{name}=={version}.*"
    if rest[0] not in "=<>!~[;":  # conda's "name version" match spec
        version = rest.split()[0]
        return f"{name}=={version}" if version[0].isdigit() else f"{name}{version}"
    return name + rest

