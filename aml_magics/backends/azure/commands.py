"""What an Azure ML job runs: its command line, the files shipped with a swept cell, in-memory training data."""
from __future__ import annotations

import re
import secrets
import shlex
import time

from ...core.specs import replace_declarations

DEFAULT_ENVIRONMENT = "azureml://registries/azureml/environments/sklearn-1.5/labels/latest"
SWEEP_HELPER = "__aml_sweep__.py"
IO_PROP, OUT_VARS_PROP = "aml_magics.io", "aml_magics.out_vars"  # job properties: where --in/--out values are


def job_name(experiment: str) -> str:
    base = re.sub(r"[^a-zA-Z0-9_-]", "-", experiment)[:40].strip("-") or "run"
    return f"{base}_{int(time.time())}_{secrets.token_hex(4)}"


def quote(arg: str) -> str:
    return shlex.quote(str(arg))


def quote_arg(arg: str) -> str:
    """Quoted for the shell, except the service's own ``${{...}}`` placeholders (substituted before it runs)."""
    return arg if re.fullmatch(r"\$\{\{(search_space|inputs|outputs)\.[A-Za-z_][A-Za-z0-9_]*\}\}", arg) else quote(arg)


def sweep_cell(code: str, spans: list) -> str:
    """The cell with each declared expression replaced by a read of this trial's value; an expression over
    several lines leaves blank lines so every later line keeps its number in tracebacks."""
    return replace_declarations(
        code, spans, lambda name: f"{name} = __import__({SWEEP_HELPER[:-3]!r}).value({name!r})  # sweep parameter",
        keep_numbers=True)


def sweep_helper(space: dict[str, list]) -> str:
    """A module shipped with a swept cell: the trial's values from ``--NAME VALUE`` arguments, typed as
    declared (a choice gives back the option itself). Needs nothing but the standard library."""
    kinds = {k: kind for k, (kind, _) in space.items()}
    choices = {k: list(args) for k, (kind, args) in space.items() if kind == "choice"}
    return f'''"""This trial's sweep parameters (written by aml-magics)."""
import sys

KINDS = {kinds!r}
CHOICES = {choices!r}


def value(name):
    flag = "--" + name
    if flag not in sys.argv[:-1]:
        raise SystemExit(f"sweep parameter {{name}} is missing from the command line")
    raw = sys.argv[sys.argv.index(flag) + 1]
    if name in CHOICES:
        for option in CHOICES[name]:
            if str(option) == raw or str(option).lower() == raw.lower():
                return option
        raise SystemExit(f"sweep parameter {{name}}={{raw!r}} is not one of {{CHOICES[name]!r}}")
    return int(float(raw)) if KINDS[name] == "randint" else float(raw)
'''


def training_csv(values: dict, label: str, label_variable: str | None) -> bytes:
    """The in-memory training data (a DataFrame, or an array with the labels in another variable) as CSV."""
    import pandas as pd

    data = values["training_data"]
    if hasattr(data, "columns"):
        frame = data
    else:
        import numpy as np

        array = np.asarray(data)
        array = array.reshape(len(array), -1)
        frame = pd.DataFrame(array, columns=[f"x{i}" for i in range(array.shape[1])])
        frame[label] = np.asarray(values[label_variable or label])
    return frame.to_csv(index=False).encode()
