"""Names and their rules: one place per rule (run-cell file name, default datastore, service and model names)."""
from __future__ import annotations

import re

from typing import Any, Callable, Sequence

from .errors import InvalidInput, NotFound

#: the file a submitted cell is written to in the run's snapshot
CELL_FILE = "__aml_cell__.py"
#: Azure ML's name of a workspace's default datastore (the local workspace uses it too)
DEFAULT_DATASTORE = "workspaceblobstore"
DEFAULT_COMPUTE = "local"


def default_datastore(stores: Sequence[Any], is_default: Callable[[Any], bool], name: Callable[[Any], str]) -> Any:
    """The workspace's default datastore: the one marked default, else the only one — where uploads go and where
    ``datastore:PATH`` points, on every backend. Several and none marked: NotFound, saying how to choose."""
    marked = [s for s in stores if is_default(s)]
    if marked or len(stores) == 1:
        return (marked or stores)[0]
    raise NotFound("the workspace has no default datastore" + (
        f" among {', '.join(name(s) for s in stores)}; name one (datastore=NAME)" if stores else ""))

_SERVICE = re.compile(r"[a-z0-9][a-z0-9-]{1,30}[a-z0-9]")
_MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,254}")


def check_service_name(name: object) -> str:
    """3-32 lowercase letters, digits and '-', starting and ending with a letter or digit (Azure ML's rule)."""
    if not isinstance(name, str) or not _SERVICE.fullmatch(name):
        raise InvalidInput(f"service name {name!r}: 3-32 lowercase letters, digits and '-' (as Azure ML asks)")
    return name


def default_service_name(model_ref: str) -> str:
    """The service a model deploys to by default: its name, lower-cased, with '-' for anything else, fitted to the
    service-name rule (``sklearn_mnist:3`` → ``sklearn-mnist``). Every front end uses this one rule."""
    model = str(model_ref).rpartition(":")[0] if ":" in str(model_ref) else str(model_ref)
    name = re.sub(r"-+", "-", "".join(c if c.isalnum() and c.isascii() else "-" for c in model.lower())).strip("-")
    name = name[:32].strip("-")
    if len(name) < 3:
        name = (name + "-svc").strip("-")
    return name


def check_model_name(name: object, what: str = "model name") -> str:
    """Letters, digits, '-', '_' and '.', starting with a letter or digit, at most 255 characters (the rule of
    models and environments both: ``what`` says which)."""
    if not isinstance(name, str) or not _MODEL.fullmatch(name):
        raise InvalidInput(f"{what} {name!r}: use letters, digits, '-', '_' and '.', starting with a letter or "
                           "digit")
    return name


ENV_DEPTH = "AML_MAGICS_DEPTH"  # in a run's process: how many runs deep it is (1: submitted from a notebook)
MAX_DEPTH = 8  # a notebook → its pipeline → a step's sweep → its trials is 4 deep


def run_depth() -> int:
    """How many runs deep this process is: 0 outside any run (a notebook, a script), 1 in a run submitted from one,
    2 in a sweep's trial or a pipeline's step, …"""
    import os

    text = os.environ.get(ENV_DEPTH, "").strip()
    if not (text.isascii() and text.isdigit()):  # ("²".isdigit(), and int("²") raised ValueError at every submission)
        return 0  # not one of ours: set by hand
    return int(text) if len(text) < 6 else 999_999  # (deeper than MAX_DEPTH; int() of 4,301 digits raises)


#: ``${{inputs.NAME}}`` / ``${{outputs.NAME}}`` in a run's or step's arguments (``${inputs.NAME}`` too: an older
#: IPython turned ``{{`` into ``{`` in magic lines) — one pattern for what is substituted and what is checked
ARG_PLACEHOLDER = re.compile(r"\$\{\{?\s*(inputs|outputs)\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}?")
