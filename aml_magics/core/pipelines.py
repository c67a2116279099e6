"""What a pipeline is: steps with named inputs and outputs, the graph their bindings make, and the file format
(a subset of Azure ML's v2 pipeline YAML). Pure data: the pipeline engine (``aml_magics.pipeline``) runs it in a
parent run; a backend may turn it into its own job.

A step input is one of
- ``datastore:PATH`` / ``datastore:NAME/PATH`` (or ``azureml://datastores/NAME/paths/PATH``): files in a datastore;
- ``${{parent.jobs.STEP.outputs.NAME}}``: what an earlier step wrote (the graph's edges);
- a literal (a number or a string), substituted into the step's arguments as ``${{inputs.NAME}}``.
A step output is a folder the step writes (``${{outputs.NAME}}`` in arguments, ``outputs.NAME`` in a cell).
"""
from __future__ import annotations

import os
import re
import shlex
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from . import checks
from .errors import InvalidInput
from .names import ARG_PLACEHOLDER, DEFAULT_COMPUTE

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")
_BINDING = re.compile(r"^\$\{\{\s*parent\.jobs\.([A-Za-z_][A-Za-z0-9_]*)\.outputs\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}$")
_PARENT_INPUT = re.compile(r"\$\{\{\s*parent\.inputs\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_ANY_PLACEHOLDER = re.compile(r"\$\{\{(.*?)\}\}")
#: what the YAML reader takes (Azure ML's pipeline and command job fields); a field it does not know — a typo like
#: ``enviroment:`` or ``ouputs:``, or one it cannot honour (``resources``, ``distribution``) — is refused, by name
_PIPELINE_FIELDS = {"$schema", "type", "name", "display_name", "experiment_name", "description", "tags", "properties",
                    "settings", "inputs", "outputs", "jobs", "compute"}
_JOB_FIELDS = {"type", "name", "display_name", "description", "tags", "properties", "code", "command", "environment",
               "environment_variables", "compute", "inputs", "outputs", "limits", "is_deterministic"}
_SETTINGS = {"default_compute", "default_datastore", "force_rerun", "continue_on_step_failure"}
MAX_STEPS = 1_000


def identifier(what: str, name: Any) -> str:
    text = checks.text(what, name, max_len=100)
    if not _IDENT.fullmatch(text):
        raise InvalidInput(f"{what} {text!r}: use letters, digits and _ (not starting with a digit)")
    return text


def binding(step: str, output: str) -> str:
    return "${{parent.jobs.%s.outputs.%s}}" % (step, output)


def parse_binding(value: Any) -> tuple[str, str] | None:
    """(step, output) when ``value`` names an earlier step's output, else None."""
    m = _BINDING.match(value) if isinstance(value, str) else None
    return (m.group(1), m.group(2)) if m else None


def is_files(value: Any) -> bool:
    """A step input naming files (a datastore path), as opposed to an earlier step's output or a literal."""
    return isinstance(value, str) and value.startswith(("datastore:", "azureml://"))


@dataclass
class PipelineStep:
    """One step: a cell, script or notebook run as a child run of the pipeline's run."""

    name: str
    kind: str  # "cell", "script" or "notebook"
    entry: str  # the script/notebook inside ``source``; the cell's file name for cells
    code: str | None = None  # a cell's source
    args: list[str] = field(default_factory=list)
    inputs: dict[str, Any] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)
    source: str = "."  # the step's code folder, relative to the pipeline's source folder
    compute: str | None = None  # None: the pipeline's default
    environment: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    allow_reuse: bool = True
    display_name: str | None = None
    batch: dict | None = None  # a batch scoring step (kind "batch"): core.specs.BatchSpec's settings; input "data"
    after: list[str] = field(default_factory=list)  # steps this one waits for without reading their outputs
    timeout_s: float | None = None  # the step's run is canceled after this long (YAML limits.timeout)
    environment_variables: dict[str, str] = field(default_factory=dict)  # the step's own (YAML environment_variables)

    def upstream(self) -> list[str]:
        return sorted({b[0] for b in map(parse_binding, self.inputs.values()) if b} | set(self.after))


@dataclass
class PipelineSpec:
    """A pipeline run: its steps (any order; the graph comes from the bindings)."""

    steps: list[PipelineStep]
    default_compute: str = DEFAULT_COMPUTE
    reuse: bool = True  # False: --no-reuse, every step runs
    continue_on_step_failure: bool = False
    description: str | None = None

    kind = "pipeline"
    primary_metric = None
    goal = "max"

    def to_settings(self) -> dict:
        return asdict(self)

    @classmethod
    def from_settings(cls, data: dict) -> "PipelineSpec":
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        step_fields = {f.name for f in fields(PipelineStep)}
        values["steps"] = [PipelineStep(**{k: v for k, v in s.items() if k in step_fields}) for s in data["steps"]]
        return cls(**values)

    def validate(self) -> "PipelineSpec":
        """Refuse what cannot run — an unknown step or output, a cycle, a duplicate name — before anything starts."""
        if not self.steps:
            raise InvalidInput("the pipeline has no steps: define them with %%aml step NAME [--in ...] [--out ...]")
        if len(self.steps) > MAX_STEPS:
            raise InvalidInput(f"the pipeline has {len(self.steps)} steps; at most {MAX_STEPS:,} are supported")
        seen: set[str] = set()
        for s in self.steps:
            identifier("step name", s.name)
            if s.name in seen:
                raise InvalidInput(f"two steps are named {s.name!r}; give each step its own name")
            seen.add(s.name)
            if s.kind not in ("cell", "script", "notebook", "batch"):
                raise InvalidInput(f"step {s.name}: kind {s.kind!r} is not cell, script, notebook or batch")
            if s.kind in ("script", "notebook"):
                checks.entry_inside(f"step {s.name}: {s.kind}", s.entry)
            if s.display_name is not None:
                checks.text(f"step {s.name}: display_name", s.display_name, max_len=checks.MAX_NAME)
            s.environment_variables = checks.environment_variables(f"step {s.name}: environment_variables",
                                                                   s.environment_variables)
            if s.timeout_s is not None:
                s.timeout_s = checks.positive(f"step {s.name}: limits.timeout", s.timeout_s, checks.MAX_TIMEOUT_S)
            if s.kind == "batch" and (not isinstance(s.batch, dict) or "data" not in s.inputs or len(s.outputs) > 1):
                raise InvalidInput(f"batch step {s.name} scores its input 'data' into at most one output folder")
            outs = [identifier(f"output name of step {s.name}", o) for o in s.outputs]
            if len(set(outs)) != len(outs):
                raise InvalidInput(f"step {s.name} names an output twice")
            for name, value in s.inputs.items():
                identifier(f"input name of step {s.name}", name)
                if name in outs:
                    raise InvalidInput(f"step {s.name}: {name!r} is both an input and an output")
                if isinstance(value, str):
                    checks.text(f"input {name} of step {s.name}", value)
                elif not isinstance(value, (int, float, bool)) or isinstance(value, float) and value != value:
                    raise InvalidInput(f"step {s.name}: input {name} must be a datastore path, an earlier step's "
                                       f"output or a number/string, not {type(value).__name__}")
            for arg in s.args:
                checks.text(f"argument of step {s.name}", str(arg), empty=True)
                for which, name in ARG_PLACEHOLDER.findall(str(arg)):  # (it failed the pipeline run when its turn came)
                    if name not in (s.inputs if which == "inputs" else outs):
                        declared = sorted(s.inputs if which == "inputs" else outs)
                        raise InvalidInput(f"step {s.name}: its command uses ${{{{{which}.{name}}}}}, which its "
                                           f"{which} do not declare ({', '.join(declared) or 'it has none'}); add "
                                           f"{name} under {which}:")
        by_name = {s.name: s for s in self.steps}
        for s in self.steps:
            for up in s.after:
                if up not in by_name:
                    raise InvalidInput(f"step {s.name} runs after {up!r}, which is not in the pipeline")
            for name, value in s.inputs.items():
                b = parse_binding(value)
                if b is None:
                    continue
                up, out = b
                if up not in by_name:
                    raise InvalidInput(f"step {s.name}: input {name} reads step {up!r}, which is not in the pipeline "
                                       f"(steps: {', '.join(by_name)})")
                if out not in by_name[up].outputs:
                    raise InvalidInput(f"step {s.name}: input {name} reads output {out!r} of step {up}, which has "
                                       f"{', '.join(by_name[up].outputs) or 'no outputs'} (declare it: --out {out})")
        self.levels()  # refuses a cycle
        return self

    def levels(self) -> list[list[str]]:
        """The steps in dependency order, grouped: each group needs only earlier groups (one may run at once)."""
        deps = {s.name: set(s.upstream()) for s in self.steps}
        done: set[str] = set()
        out: list[list[str]] = []
        while len(done) < len(deps):
            ready = sorted(n for n, d in deps.items() if n not in done and d <= done)
            if not ready:
                cycle = sorted(n for n in deps if n not in done)
                raise InvalidInput(f"the steps {', '.join(cycle)} depend on each other in a cycle; a step can read only "
                                   "outputs of steps that do not read its own")
            out.append(ready)
            done.update(ready)
        return out

    def order(self) -> list[str]:
        return [n for level in self.levels() for n in level]

    def downstream(self, name: str) -> list[str]:
        """Every step that depends, directly or not, on ``name``."""
        found: set[str] = set()
        frontier = {name}
        while frontier:
            nxt = {s.name for s in self.steps if set(s.upstream()) & frontier} - found
            found |= nxt
            frontier = nxt
        return [n for n in self.order() if n in found]


# -- Azure ML v2 pipeline YAML (a subset) -----------------------------------------------------------------------

_COMMAND_PLACEHOLDER = re.compile(r"\$\{\{\s*(inputs|outputs)\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def load_yaml(path: str | Path) -> tuple[PipelineSpec, dict]:
    """A PipelineSpec from an Azure ML v2 pipeline YAML; also the file's top-level fields (experiment_name…).

    Supported: ``type: pipeline``; ``inputs`` (literals and ``uri_folder``/``uri_file`` paths) bound as
    ``${{parent.inputs.X}}``; ``jobs`` of ``type: command`` with ``code``, ``command`` (``python SCRIPT ARGS``),
    ``environment``, ``compute``, ``inputs``, ``outputs`` and ``limits.timeout`` (seconds);
    ``settings.default_compute``, ``force_rerun``,
    ``continue_on_step_failure``."""
    import yaml

    if not isinstance(path, (str, os.PathLike)):  # (None, bytes, a number: a TypeError from pathlib)
        raise InvalidInput(f"pipeline file must be a path, got {type(path).__name__} {checks.shown(path)}")
    path = Path(path)
    if checks.path_kind("pipeline file", path) == "missing":
        raise InvalidInput(f"{path}: no such file")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInput(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InvalidInput(f"{path} is not a readable YAML file: {checks.yaml_error(exc)}") from None
    checks.yaml_size(doc, str(path))
    if not isinstance(doc, dict):
        raise InvalidInput(f"{path}: expected a pipeline job (type: pipeline, jobs: …)")
    if doc.get("type", "pipeline") != "pipeline":
        raise InvalidInput(f"{path}: type is {doc.get('type')!r}; only type: pipeline files are pipelines")
    _known_fields(doc, _PIPELINE_FIELDS, f"{path}", "a pipeline")
    jobs = doc.get("jobs")
    if not isinstance(jobs, dict) or not jobs:
        raise InvalidInput(f"{path}: no jobs; a pipeline YAML lists its steps under jobs:")
    parent_inputs = {k: _input_value(v, f"{path}: inputs.{k}")
                     for k, v in _mapping(doc.get("inputs"), f"{path}: inputs").items()}
    settings = _mapping(doc.get("settings"), f"{path}: settings")
    _known_fields(settings, _SETTINGS, f"{path}: settings", "a pipeline's settings")
    if doc.get("description") is not None and not isinstance(doc["description"], str):
        raise InvalidInput(f"{path}: description must be text")
    default_compute = _compute(settings.get("default_compute") or doc.get("compute") or DEFAULT_COMPUTE)
    steps = []
    for name, job in jobs.items():
        where = f"{path}: jobs.{name}"
        if not isinstance(job, dict):
            raise InvalidInput(f"{where} is not a job")
        if job.get("type", "command") != "command":
            raise InvalidInput(f"{where}: type {job.get('type')!r}; only command jobs are supported as steps here")
        _known_fields(job, _JOB_FIELDS, where, "a command step")
        command = job.get("command")
        if command is not None and not isinstance(command, str):
            raise InvalidInput(f"{where}: command must be one line of text, `python SCRIPT.py ARGS` (it is a "
                               f"{type(command).__name__})")
        if not isinstance(command, str) or not command.strip():
            raise InvalidInput(f"{where}: no command; give `command: python SCRIPT.py ARGS`")
        try:
            words = shlex.split(command.replace("\\\n", " "))
        except ValueError as exc:
            raise InvalidInput(f"{where}: command: {exc}") from None
        if len(words) < 2 or Path(words[0]).name not in ("python", "python3") or not words[1].endswith((".py", ".ipynb")):
            raise InvalidInput(f"{where}: command must be `python SCRIPT.py ARGS` (it is {command.strip()[:60]!r})")
        for placeholder in _ANY_PLACEHOLDER.finditer(command):  # passed on as it was written, to the script
            if not _COMMAND_PLACEHOLDER.fullmatch(placeholder.group(0)):
                raise InvalidInput(f"{where}: its command uses {checks.shown(placeholder.group(0), 80)[1:-1]}; a "
                                   "command reads only its own ${{inputs.X}} and ${{outputs.X}} — bind it under the "
                                   "step's inputs: (X: " + checks.shown(placeholder.group(0), 80)[1:-1] + ") and "
                                   "write ${{inputs.X}} in the command")
        inputs: dict[str, Any] = {}
        for k, v in _mapping(job.get("inputs"), f"{where}.inputs").items():
            value = _input_value(v, f"{where}.inputs.{k}")
            whole = _PARENT_INPUT.fullmatch(value) if isinstance(value, str) else None
            if whole:  # the parent's input itself (a path, or a number that stays a number)
                _parent(parent_inputs, whole.group(1), where)
                value = parent_inputs[whole.group(1)]
            elif isinstance(value, str):
                value = _PARENT_INPUT.sub(lambda m: str(_parent(parent_inputs, m.group(1), where)), value)
            inputs[k] = value
        outputs = list(_mapping(job.get("outputs"), f"{where}.outputs").keys())
        if job.get("display_name") is not None and not isinstance(job["display_name"], str):
            raise InvalidInput(f"{where}: display_name must be text")
        limits = _mapping(job.get("limits"), f"{where}.limits")
        unknown = sorted(map(str, set(limits) - {"timeout"}))
        if unknown:
            raise InvalidInput(f"{where}.limits: {', '.join(unknown)} is not a limit of a command step (timeout is, "
                               "in seconds)")
        variables = _mapping(job.get("environment_variables"), f"{where}.environment_variables")
        for key, value in variables.items():  # text, as Azure ML takes it; a number as it reads
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                raise InvalidInput(f"{where}.environment_variables.{checks.shown(key, 40)[1:-1]}: "
                                   f"{type(value).__name__} is not a variable's value; write it as text in quotes")
        code = str(job.get("code") or ".")
        env = job.get("environment")
        if isinstance(env, str):  # azureml:NAME:VERSION → NAME:VERSION; Azure ML's URIs (azureml://…) as written
            env = env[len("azureml:"):] if env.startswith("azureml:") and not env.startswith("azureml://") else env
        elif env is not None:
            raise InvalidInput(f"{where}: environment must be a registered environment's name (azureml:NAME:VERSION)")
        steps.append(PipelineStep(
            name=name, kind="notebook" if words[1].endswith(".ipynb") else "script", entry=words[1], args=words[2:],
            inputs=inputs, outputs=outputs, source=code, compute=_compute(job.get("compute")) if job.get("compute") else None,
            environment=env, display_name=job.get("display_name"), timeout_s=limits.get("timeout"),
            environment_variables={str(k): str(v) for k, v in variables.items()},
            allow_reuse=job.get("is_deterministic", True) is not False,
        ))
    spec = PipelineSpec(steps=steps, default_compute=default_compute, reuse=not bool(settings.get("force_rerun")),
                        continue_on_step_failure=bool(settings.get("continue_on_step_failure")),
                        description=doc.get("description"))
    return spec.validate(), doc


def _known_fields(section: dict, known: set[str], where: str, what: str) -> None:
    import difflib

    for key in section:
        if key not in known:
            close = difflib.get_close_matches(str(key), sorted(known), n=1, cutoff=0.7)
            raise InvalidInput(f"{where}: {checks.shown(str(key), 40)} is not a field of {what} here" +
                               (f"; did you mean {close[0]}?" if close else
                                f" (it takes {', '.join(sorted(k for k in known if not k.startswith('$')))})"))


def _mapping(value: Any, where: str) -> dict:
    """A YAML section that holds NAME: VALUE pairs (absent or empty: none)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f"{where} must be a mapping of NAME: VALUE (indented lines), not a {type(value).__name__}")
    return value


def _compute(value: Any) -> str:
    text = str(value)
    return text[len("azureml:"):] if text.startswith("azureml:") else text


def _parent(parent_inputs: dict, name: str, where: str) -> Any:
    if name not in parent_inputs:
        raise InvalidInput(f"{where} reads ${{{{parent.inputs.{name}}}}}, which the pipeline's inputs do not define")
    return parent_inputs[name]


def _input_value(value: Any, where: str) -> Any:
    if isinstance(value, dict):
        if "path" in value:
            p = str(value["path"])
            if p.startswith(("azureml://", "datastore:")):
                return p  # kept as written: Azure ML takes it as it is; the local workspace reads either form
            raise InvalidInput(f"{where}: path {p!r}; upload local files first (%aml datastore upload) and use "
                               "azureml://datastores/NAME/paths/PATH")
        if "value" in value or "default" in value:
            return value.get("value", value.get("default"))
        raise InvalidInput(f"{where}: give a path or a value")
    if isinstance(value, (str, int, float, bool)):
        return value
    raise InvalidInput(f"{where}: {type(value).__name__} is not an input (a path, a number or a string)")


def to_yaml(spec: PipelineSpec, folder: str | Path, *, experiment: str | None = None, name: str = "pipeline.yml",
            datastores: tuple[str, ...] = (), default_datastore: str = "workspaceblobstore",
            overwrite: bool = False) -> Path:
    """Write the pipeline as an Azure ML v2 pipeline YAML in ``folder``; a cell step becomes ``steps/NAME.py`` (its
    inputs and outputs from the command line, as ``inputs.X`` / ``outputs.Y`` in the cell). Returns the file.

    A ``steps/NAME.py`` that holds something else (the user's own script) is not replaced unless ``overwrite``;
    nothing is written unless everything can be."""
    import yaml

    folder = Path(folder)
    spec.validate()
    files: dict[Path, str] = {}
    jobs: dict[str, Any] = {}
    for s in spec.steps:
        code, entry = s.source, s.entry
        if s.kind == "batch":
            raise InvalidInput(f"step {s.name} is a batch scoring step (ParallelRunStep); the YAML export writes command "
                               "steps only")
        if s.kind == "cell":
            entry = f"{s.name}.py"
            files[folder / "steps" / entry] = cell_script(s)
            code = "./steps"
            args = [*(f"--{k} ${{{{inputs.{k}}}}}" for k in s.inputs), *(f"--{o} ${{{{outputs.{o}}}}}" for o in s.outputs)]
            args = [a for pair in args for a in pair.split(" ", 1)] + list(s.args)
        else:
            args = list(s.args)
        job: dict[str, Any] = {"type": "command", "code": code if code.startswith(".") else f"./{code}",
                               "command": " ".join(["python", shlex.quote(entry), *(_quote(a) for a in args)])}
        if s.environment:
            job["environment"] = f"azureml:{s.environment}"
        if s.compute:
            job["compute"] = f"azureml:{s.compute}"
        if s.inputs:
            job["inputs"] = {k: _yaml_input(v, datastores, default_datastore) for k, v in s.inputs.items()}
        if s.outputs:
            job["outputs"] = {o: {"type": "uri_folder"} for o in s.outputs}
        if s.display_name:
            job["display_name"] = s.display_name
        if s.timeout_s is not None:  # Azure ML's YAML takes whole seconds
            job["limits"] = {"timeout": max(1, round(s.timeout_s))}
        if s.environment_variables:
            job["environment_variables"] = dict(s.environment_variables)
        if not s.allow_reuse:
            job["is_deterministic"] = False
        jobs[s.name] = job
    doc: dict[str, Any] = {"$schema": "https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json",
                           "type": "pipeline"}
    if experiment:
        doc["experiment_name"] = experiment
    if spec.description:
        doc["description"] = spec.description
    doc["settings"] = {"default_compute": f"azureml:{spec.default_compute}",
                       **({"force_rerun": True} if not spec.reuse else {}),
                       **({"continue_on_step_failure": True} if spec.continue_on_step_failure else {})}
    doc["jobs"] = jobs
    path = folder / name
    files[path] = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=120)
    _write_all(files, overwrite)
    return path


def _write_all(files: dict[Path, str], overwrite: bool) -> None:
    """Write every file or (a clear error before the first) none: a file that differs is replaced only when asked."""
    for path, text in files.items():
        checks.path_kind("the file to export to", path)  # (a name the system cannot take: an OSError below)
        try:
            old = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else text
        except OSError:
            old = ""
        # a step script an earlier export wrote is ours to rewrite; anything else is the user's
        differs = old != text and not (old.partition("\n")[0] == text.partition("\n")[0] and _EXPORTED in old)
        if (differs and not overwrite) or (path.exists() and not path.is_file()):
            raise InvalidInput(f"{path} exists and holds something else; move it, or export with --force to "
                               "replace it" if path.is_file() else f"{path} exists and is not a file; move it")
    for path, text in files.items():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise InvalidInput(f"cannot write {path}: {exc.strerror or exc}; export to another folder") from None


def _quote(arg: str) -> str:
    return arg if _COMMAND_PLACEHOLDER.fullmatch(arg) else shlex.quote(arg)


def _yaml_input(value: Any, datastores: tuple[str, ...], default: str) -> Any:
    if isinstance(value, str) and value.startswith("azureml://"):
        return {"type": "uri_folder", "path": value}
    if isinstance(value, str) and value.startswith("datastore:"):
        rest = value[len("datastore:"):].lstrip("/")
        first, _, tail = rest.partition("/")
        store, rel = (first, tail) if first in datastores and tail else (default, rest)
        return {"type": "uri_folder", "path": f"azureml://datastores/{store}/paths/{rel}"}
    return value


_EXPORTED = "of an aml-magics pipeline (exported from a notebook cell)"


def cell_script(step: PipelineStep) -> str:
    """A cell step as a script: its inputs and outputs come as --NAME PATH arguments, as ``inputs.NAME`` and
    ``outputs.NAME`` in the cell's code."""
    names = [*step.inputs, *step.outputs]
    lines = [f'"""Step {step.name} {_EXPORTED}."""',
             "import argparse as _argparse", "import types as _types", "",
             "_p = _argparse.ArgumentParser()"]
    lines += [f"_p.add_argument('--{n}', required=True)" for n in names]
    lines += ["_a, _ = _p.parse_known_args()",
              f"inputs = _types.SimpleNamespace(**{{k: getattr(_a, k) for k in {list(step.inputs)!r}}})",
              f"outputs = _types.SimpleNamespace(**{{k: getattr(_a, k) for k in {step.outputs!r}}})",
              "# --- the cell ---", (step.code or "").rstrip(), ""]
    return "\n".join(lines)
