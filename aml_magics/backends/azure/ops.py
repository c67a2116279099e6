"""Azure ML operations over ``ArmClient``: the workspace, computes, datastores, code snapshots, and the bodies
of command, sweep and AutoML jobs.

Each function sends exactly the requests Microsoft's 2024-10-01 contract defines (tests/azure validate them)
and maps answers to our domain types.
"""
from __future__ import annotations

import hashlib
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ...core import checks
from ...core.errors import AmlError, Conflict, InvalidInput, NotFound
from ...core.types import ComputeTarget, DatastoreInfo
from .rest import ArmClient, WorkspaceRef

# Azure ML job states → ours (DESIGN.md: NotStarted → Queued → Starting → Running → Finalizing → terminal)
JOB_STATES = {
    "NotStarted": "NotStarted", "Starting": "Starting", "Provisioning": "Starting", "Preparing": "Starting",
    "Queued": "Queued", "Running": "Running", "Finalizing": "Finalizing", "CancelRequested": "Running",
    "Completed": "Completed", "Failed": "Failed", "Canceled": "Canceled", "NotResponding": "Running",
    "Paused": "Queued", "Unknown": "Queued", "Scheduled": "Queued",
}


def map_status(azure_status: str | None) -> str:
    return JOB_STATES.get(azure_status or "NotStarted", "Queued")


def workspace(arm: ArmClient, ws: WorkspaceRef) -> dict:
    return arm.get(ws.path)


def mlflow_tracking_uri(workspace_body: dict) -> str:
    uri = (workspace_body.get("properties") or {}).get("mlFlowTrackingUri")
    if not uri:
        raise AmlError("the workspace does not report an MLflow tracking URI (mlFlowTrackingUri); metrics need "
                       "it — check the workspace in the Azure ML studio")
    return uri


def computes(arm: ArmClient, ws: WorkspaceRef) -> list[ComputeTarget]:
    out = []
    for c in arm.list_all(ws.path + "/computes"):
        props = c.get("properties") or {}
        inner = props.get("properties") or {}
        kind = props.get("computeType", "?")
        nodes = inner.get("scaleSettings", {}).get("maxNodeCount") or inner.get("currentNodeCount") or 1
        running = inner.get("currentNodeCount") or 0
        out.append(ComputeTarget(c.get("name", "?"), f"{kind} ({props.get('provisioningState', '?')})",
                                 int(nodes), running=int(running)))
    return out


def datastores(arm: ArmClient, ws: WorkspaceRef) -> list[DatastoreInfo]:
    out = []
    for d in arm.list_all(ws.path + "/datastores"):
        props = d.get("properties") or {}
        where = "/".join(x for x in (props.get("accountName"), props.get("containerName")) if x)
        out.append(DatastoreInfo(d.get("name", "?"), props.get("datastoreType", "?"), where or "?",
                                 bool(props.get("isDefault"))))
    return out


if TYPE_CHECKING:  # pragma: no cover
    from ...core.specs import AutoMLSpec, SweepSpec


# What ``from aml_magics import Run`` needs inside a job whose environment lacks aml-magics: the runtime that
# logs through the job's MLflow endpoint (standard library + requests). tests/azure check this list by running
# a shipped cell with nothing else importable.
RUNTIME_FILES = ("__init__.py", "core/__init__.py", "core/checks.py", "core/children.py", "core/contract.py",
                 "core/errors.py", "core/plain.py", "core/registry.py", "core/run.py", "core/states.py",
                 "backends/__init__.py", "backends/azure/__init__.py", "backends/azure/mlflow_rest.py",
                 "backends/azure/tracker.py")
#: what a batch scoring job runs besides (the engine and the spec it reads)
BATCH_RUNTIME_FILES = ("core/config.py", "core/names.py", "core/render.py", "core/specs.py", "batch/__init__.py",
                       "batch/engine.py")
BATCH_DRIVER = "__aml_batch__.py"
BATCH_SETTINGS = "__aml_batch__.json"
BATCH_DRIVER_SOURCE = '''"""Runs a batch scoring job (written by aml-magics): aml-magics' batch engine over the job's input "data" with the
settings in __aml_batch__.json, its output file into the job's output "predictions"."""
import json
import os
import sys
from pathlib import Path


def main() -> int:
    settings = json.loads(Path(__file__).with_name("__aml_batch__.json").read_text())
    args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
    if "--data" in args:
        os.environ["AZURE_ML_INPUT_data"] = args["--data"]
    if "--model" in args:
        settings["model_path"] = args["--model"]
    if "--in" in args:
        os.environ["AML_MAGICS_BATCH_IN"] = args["--in"]
    if "--out" in args:
        os.environ["AZURE_ML_OUTPUT_predictions"] = args["--out"]
        settings["output"] = "predictions"
    from aml_magics.batch.engine import run_batch
    from aml_magics.core.run import Run

    return run_batch({"settings": settings}, Run.get_context())


if __name__ == "__main__":
    sys.exit(main())
'''


def with_runtime(files: list[tuple[Path, str]], *, batch: bool = False) -> list[tuple[Path, str]]:
    """The snapshot plus aml-magics' job runtime as ``aml_magics/`` (unless the project ships its own); ``batch``:
    with the batch scoring engine."""
    if any(rel == "aml_magics" or rel.startswith("aml_magics/") for _, rel in files):
        return files
    package = Path(__file__).resolve().parents[2]
    names = RUNTIME_FILES + (BATCH_RUNTIME_FILES if batch else ())
    return [*files, *((package / rel, f"aml_magics/{rel}") for rel in names)]


def next_version(arm: ArmClient, container_path: str, versions: Callable[[], list[int]]) -> int:
    """The version a new asset version gets, as Microsoft's SDK picks it: the container's ``nextVersion`` (the
    service counts every version, on every page); if the answer has none, one past the highest of ``versions()``
    (all pages); 1 for a new container."""
    try:
        body = arm.get(container_path)
    except NotFound:
        return 1
    nxt = checks.digits((body.get("properties") or {}).get("nextVersion") or "")
    return nxt if nxt else max(versions(), default=0) + 1


def latest_versions(arm: ArmClient, containers_path: str, get: Callable[[str, int | None], Any]) -> list:
    """The latest version of every container (models, environments): ``get(name, version)`` with the container's
    ``latestVersion``, or ``None`` when the answer has none (then the versions say it); empty containers skipped."""
    out = []
    for container in arm.list_all(containers_path):
        name = container.get("name")
        latest = (container.get("properties") or {}).get("latestVersion")
        if name:
            try:
                out.append(get(name, checks.digits(latest)))
            except NotFound:
                continue
    return out


def content_hash(files: list[tuple[Path, str]]) -> str:
    """The content hash Azure ML finds code by (``hash_sha256`` with ``hashVersion`` 202208, as azure-ai-ml computes
    it, so the same folder has the same hash from either client): SHA-256 over the number of files, then each
    file's ``#relative/path#`` and size, then each file's bytes — files in the lower-cased order of their paths."""
    ordered = sorted(files, key=lambda f: f[1].lower())
    digest = hashlib.sha256(str(len(ordered)).encode())
    for src, rel in ordered:
        digest.update(f"#{rel}#".encode() + str(src.stat().st_size).encode())
    for src, _ in ordered:
        with open(src, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def content_digest(files: list[tuple[Path, str]]) -> str:
    """A short name for a set of files (the start of their ``content_hash``): a code version's name, a model
    upload's folder. The same files give the same name, so nothing is uploaded twice."""
    return content_hash(files)[:32]


UPLOAD_THREADS = 8


def upload_code(arm: ArmClient, ws: WorkspaceRef, files: list[tuple[Path, str]], *, block_size: int = 4 << 20) -> str:
    """Upload a snapshot the way Azure ML does: ``codes/{hash}/versions/1:startPendingUpload`` gives a SAS,
    the files go to blob storage (Put Blob, or Put Block + Put Block List), then the code version is PUT.
    Returns its id."""
    from .blob import BlobContainer

    full_hash = content_hash(files)
    name = full_hash[:32]
    version_path = f"{ws.path}/codes/{name}/versions/1"
    existing = find_code(arm, ws, name, full_hash)
    if existing:  # the same files were uploaded before: reuse the version (its path cannot change anyway)
        return existing
    pending = arm.post(version_path + "/startPendingUpload", {"pendingUploadType": "TemporaryBlobReference"})
    blob = (pending.get("blobReferenceForConsumption") or {})
    sas = (blob.get("credential") or {}).get("sasUri") or blob.get("blobUri")
    if not sas:
        raise AmlError("Azure ML gave no upload location for the snapshot (startPendingUpload)")
    base, _, token = sas.partition("?")
    local = threading.local()  # a container (and its HTTP session) per upload thread

    def put_one(src: Path, rel: str) -> None:
        container = getattr(local, "container", None)
        if container is None:
            container = local.container = BlobContainer(base, "", sas=token)
        try:
            container.put_file(rel, src, block_size=block_size)
        except AmlError as exc:
            raise AmlError(f"uploading {rel} to the workspace's storage failed ({exc}); check that the workspace's "
                           "storage account allows access from here") from None

    # the files go up several at a time (a snapshot is many small files: round trips, not bandwidth)
    with ThreadPoolExecutor(max_workers=max(1, min(UPLOAD_THREADS, len(files)))) as pool:
        for future in [pool.submit(put_one, src, rel) for src, rel in files]:
            future.result()
    body = {"properties": {"codeUri": base, "isAnonymous": True,
                           "properties": {"hash_sha256": full_hash, "hash_version": HASH_VERSION}}}
    try:
        result = arm.put(version_path, body)
    except Conflict:  # another notebook uploaded the same files first: theirs is as good as ours
        existing = find_code(arm, ws, name, full_hash)
        if not existing:
            raise
        return existing
    return result.get("id") or version_path


HASH_VERSION = "202208"  # the hashVersion CodeVersions_List filters on, as Microsoft's SDK sends it


def find_code(arm: ArmClient, ws: WorkspaceRef, name: str, digest: str) -> str | None:
    """The id of a code version holding exactly these files, if the workspace has one, under any name (azure-ai-ml
    uploads under a random one): ``CodeVersions_List ?hash=…&hashVersion=202208``, each answer checked (a service
    that ignored the filter must not hand us someone else's code)."""
    try:
        versions = arm.list_all(f"{ws.path}/codes/{name}/versions",
                                params={"hash": digest, "hashVersion": HASH_VERSION})
    except NotFound:
        return None
    for v in versions:
        props = v.get("properties") or {}
        if (props.get("properties") or {}).get("hash_sha256") == digest and props.get("codeUri") and v.get("id"):
            return v["id"]
    return None


def command_job_body(*, command: str, environment_id: str, compute_id: str | None, code_id: str | None,
                     experiment: str, display_name: str | None, env_vars: dict[str, str],
                     inputs: dict[str, str] | None = None, tags: dict[str, str] | None = None,
                     io: dict | None = None, outputs: dict[str, str] | None = None,
                     timeout_s: float | None = None) -> dict:
    """``outputs``: name → the azureml:// folder the job writes. ``io``: ``{"in": uri of the pickled --in values,
    "out": uri of the --out folder, "properties": {...}}``. ``timeout_s``: the service cancels the job after it has run
    this long (``limits.timeout``)."""
    if not command.strip():
        raise InvalidInput("the job needs a command")
    props: dict[str, Any] = {
        "jobType": "Command", "command": command, "environmentId": environment_id, "experimentName": experiment,
        "environmentVariables": dict(env_vars),
    }
    if compute_id:
        props["computeId"] = compute_id
    if code_id:
        props["codeId"] = code_id
    if timeout_s:
        props["limits"] = {"jobLimitsType": "Command", "timeout": _duration(timeout_s)}
    _job_extras(props, display_name, tags, inputs, io)
    if outputs:
        props.setdefault("outputs", {}).update(
            {k: {"jobOutputType": "uri_folder", "uri": v, "mode": "ReadWriteMount"} for k, v in outputs.items()})
    return {"properties": props}


def _job_extras(props: dict, display_name: str | None, tags: dict | None, inputs: dict[str, str] | None,
                io: dict | None = None) -> None:
    """What every kind of job takes alike: a display name, tags, datastore folders as inputs, and the
    file of --in values (input) and folder of --out values (output) with the job properties naming them."""
    if display_name:
        props["displayName"] = display_name
    if tags:
        props["tags"] = {k: str(v) for k, v in tags.items()}
    if inputs:
        props["inputs"] = {k: {"jobInputType": "uri_folder", "uri": v} for k, v in inputs.items()}
    if io:
        if io.get("in"):
            props.setdefault("inputs", {})[IO_IN] = {"jobInputType": "uri_file", "uri": io["in"], "mode": "Download"}
        if io.get("out"):
            props["outputs"] = {IO_OUT: {"jobOutputType": "uri_folder", "uri": io["out"], "mode": "Upload"}}
        props["properties"] = dict(io.get("properties") or {})


IO_IN, IO_OUT = "aml_magics_in", "aml_magics_out"  # the job's input/output names of --in and --out values
V1_DRIVER = "__aml_v1__.py"
V1_DRIVER_SOURCE = '''"""Runs a script submitted from an Azure ML SDK v1 notebook (written by aml-magics): `from azureml.core import
Run` in it is aml-magics' Run (the job's metrics reach the run the notebook watches). Only when the job's
environment has no azureml-core of its own; standard library and the shipped aml_magics/ only."""
import importlib.abc
import importlib.machinery
import importlib.util
import os
import runpy
import sys
import types

RUN_MODULES = ("azureml.core", "azureml.core.run")
INPUTS_ENV = "AML_MAGICS_V1_INPUTS"  # datasets passed as_named_input(name): name -> {kind, input, separator, header}


class _TabularInput:
    """run.input_datasets[name] of a TabularDataset: the job's input (a file or a folder of them) as a table."""

    def __init__(self, name, path, separator=",", header=True):
        self.name, self.path, self.separator, self.header = name, path, separator, header

    def to_pandas_dataframe(self):
        import pandas as pd

        files = sorted(os.path.join(d, f) for d, _, names in os.walk(self.path) for f in names
                       if not f.startswith(".")) if os.path.isdir(self.path) else [self.path]
        frames = [pd.read_parquet(f) if f.endswith(".parquet") else
                  pd.read_csv(f, sep=self.separator, header=0 if self.header else None) for f in files]
        if not frames:
            raise FileNotFoundError(f"the dataset {self.name!r} has no files in {self.path}")
        return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]

    def __repr__(self):
        return f"TabularDataset(name={self.name!r})"


def _input_datasets(run):
    """The datasets the notebook passed as_named_input(name): a table for a TabularDataset, else its path."""
    import json

    out = {}
    for name, entry in json.loads(os.environ.get(INPUTS_ENV) or "{}").items():
        path = os.environ.get("AZURE_ML_INPUT_" + str(entry.get("input")))
        if path:
            out[name] = _TabularInput(name, path, entry.get("separator", ","), entry.get("header", True)) \
                if entry.get("kind") == "TabularDataset" else path
    return out


class _V1InJob(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        if fullname == "azureml" or fullname in RUN_MODULES:
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        if fullname.startswith("azureml."):
            raise ModuleNotFoundError(f"{fullname} is not available inside an Azure ML job started by aml-magics: "
                                      "a job's script uses `from azureml.core import Run` (Run.get_context(), "
                                      "run.log …)", name=fullname)
        return None

    def create_module(self, spec):
        module = types.ModuleType(spec.name)
        module.__path__ = []
        if spec.name in RUN_MODULES:
            from aml_magics.core.run import Run

            if not hasattr(Run, "input_datasets"):
                Run.input_datasets = property(_input_datasets)
            module.Run = Run
            module.__all__ = ["Run"]
        return module

    def exec_module(self, module):
        pass


if importlib.util.find_spec("azureml") is None:
    sys.meta_path.insert(0, _V1InJob())
sys.argv = sys.argv[1:]
sys.path.insert(0, os.path.dirname(os.path.abspath(sys.argv[0])))  # as `python script.py` would
runpy.run_path(sys.argv[0], run_name="__main__")
'''

IO_DRIVER = "__aml_io__.py"
IO_DRIVER_SOURCE = '''"""Runs a cell or script with its --in variables and keeps its --out variables (written by aml-magics).
Standard library only; cloudpickle is used when the job's environment has it (functions, lambdas)."""
import os
import pickle
import runpy
import sys


def main():
    argv, opts = sys.argv[1:], {}
    while argv and argv[0] in ("--aml-in", "--aml-out", "--aml-vars"):
        opts[argv[0]], argv = argv[1], argv[2:]
    entry, args = argv[0], argv[1:]
    values = {}
    if "--aml-in" in opts:
        try:
            import cloudpickle  # noqa: F401  (pickles of closures need it importable)
        except ImportError:
            pass
        with open(opts["--aml-in"], "rb") as f:
            values.update(pickle.load(f))
    sys.argv = [entry, *args]
    sys.path.insert(0, os.path.dirname(os.path.abspath(entry)))
    result = runpy.run_path(entry, init_globals=values, run_name="__main__")
    wanted = [v for v in opts.get("--aml-vars", "").split(",") if v]
    if wanted:
        missing = [v for v in wanted if v not in result]
        if missing:
            raise NameError("--out variables not defined by the run: " + ", ".join(missing))
        try:
            import cloudpickle as dumper
        except ImportError:
            dumper = pickle
        os.makedirs(opts["--aml-out"], exist_ok=True)
        try:
            with open(os.path.join(opts["--aml-out"], "out.pkl"), "wb") as f:
                dumper.dump({v: result[v] for v in wanted}, f)
        except Exception:
            for v in wanted:  # which value cannot travel, said by name
                try:
                    dumper.dumps(result[v])
                except Exception as exc:
                    raise TypeError("--out %s cannot be brought back to the notebook (%s); a lock, an open file or "
                                    "a generator stays in the run: bring back what it holds instead" % (v, exc)) from None
            raise


main()
'''


def submit_job(arm: ArmClient, ws: WorkspaceRef, name: str, body: dict, headers: dict | None = None) -> dict:
    return arm.put(f"{ws.path}/jobs/{name}", body, wait=False, headers=headers)


# -- pipelines: Azure ML pipeline jobs of anonymous command components, as azure-ai-ml sends them ----------------

LITERAL_TYPES = ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"))


def component_spec(*, command: str, code_id: str, environment_id: str, inputs: dict, outputs: list[str],
                   deterministic: bool) -> dict:
    """An anonymous command component: the step's command, code and environment, its inputs' and outputs' types
    (literals with their value as default, as azure-ai-ml writes a YAML job's)."""
    spec_inputs: dict[str, dict] = {}
    for k, v in inputs.items():
        if isinstance(v, dict):
            spec_inputs[k] = {"type": "uri_folder"}
        else:
            kind = next(t for cls, t in LITERAL_TYPES if isinstance(v, cls))
            spec_inputs[k] = {"type": kind, "default": str(v).lower() if isinstance(v, bool) else str(v)}
    env = environment_id if environment_id.startswith("azureml:") else f"azureml:{environment_id}"
    spec = {"command": command, "code": f"azureml:{code_id}", "environment": env, "name": "azureml_anonymous",
            "version": "1", "is_deterministic": bool(deterministic), "inputs": spec_inputs, "type": "command"}
    if outputs:
        spec["outputs"] = {o: {"type": "uri_folder"} for o in outputs}
    return spec


def create_component(arm: ArmClient, ws: WorkspaceRef, spec: dict) -> str:
    """PUT an anonymous component version named by its content (the same step again finds the same version);
    returns its id."""
    import uuid

    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()
    version = str(uuid.UUID(digest[:32]))
    path = f"{ws.path}/components/azureml_anonymous/versions/{version}"
    arm.put(path, {"properties": {"componentSpec": spec, "isAnonymous": True}})
    return path


def pipeline_job_body(*, jobs: dict, experiment: str, display_name: str | None, tags: dict | None,
                      default_compute_id: str, continue_on_step_failure: bool, force_rerun: bool,
                      description: str | None = None) -> dict:
    settings: dict[str, Any] = {"default_compute": default_compute_id}
    if continue_on_step_failure:
        settings["continue_on_step_failure"] = True
    if force_rerun:
        settings["force_rerun"] = True
    props: dict[str, Any] = {"jobType": "Pipeline", "experimentName": experiment, "jobs": jobs, "settings": settings,
                             "inputs": {}, "outputs": {}}
    if display_name:
        props["displayName"] = display_name
    if tags:
        props["tags"] = {k: str(v) for k, v in tags.items()}
    if description:
        props["description"] = description
    return {"properties": props}


def pipeline_node(name: str, component_id: str, inputs: dict, outputs: list[str], compute_id: str | None,
                  timeout_s: float | None = None, environment_variables: dict[str, str] | None = None) -> dict:
    """A pipeline's node as azure-ai-ml writes one: bindings and literals as ``literal`` inputs, files as uri_folder,
    the step's own environment variables on the node (not its component)."""
    node: dict[str, Any] = {**({"environment_variables": dict(environment_variables)} if environment_variables else {}),
                            "name": name, "type": "command", "componentId": component_id, "inputs": {}}
    for k, v in inputs.items():
        if isinstance(v, dict) and "binding" in v:
            node["inputs"][k] = {"job_input_type": "literal", "value": v["binding"]}
        elif isinstance(v, dict):
            node["inputs"][k] = {"job_input_type": "uri_folder", "uri": v["uri"]}
        else:
            node["inputs"][k] = {"job_input_type": "literal",
                                 "value": str(v).lower() if isinstance(v, bool) else str(v)}
    if outputs:
        node["outputs"] = {o: {"job_output_type": "uri_folder"} for o in outputs}
    if compute_id:
        node["computeId"] = compute_id
    if timeout_s is not None:  # a node's limits as the SDK writes them (snake case, as its inputs)
        node["limits"] = {"job_limits_type": "Command", "timeout": _duration(timeout_s)}
    return node


def job(arm: ArmClient, ws: WorkspaceRef, name: str) -> dict:
    return arm.get(f"{ws.path}/jobs/{name}")


def cancel_job(arm: ArmClient, ws: WorkspaceRef, name: str) -> None:
    arm.post(f"{ws.path}/jobs/{name}/cancel")


def compute_id(ws: WorkspaceRef, compute: str) -> str:
    return f"{ws.path}/computes/{compute}"


def environ_for_job(run_id: str, experiment: str) -> dict[str, str]:
    """What ``Run.get_context()`` inside the job uses to find its run (MLflow env comes from the job), and how many
    runs deep the job is: jobs that submit jobs (a notebook whose cell submits it) stop at ``MAX_DEPTH`` here too,
    rather than fill a paid cluster for ever."""
    from ...core.names import ENV_DEPTH, run_depth

    return {"AML_MAGICS_RUN_ID": run_id, "AML_MAGICS_EXPERIMENT": experiment, "AML_MAGICS_BACKEND": "azure",
            "PYTHONUNBUFFERED": "1", ENV_DEPTH: str(run_depth() + 1)}


# -- sweeps: Azure ML sweep jobs (HyperDrive on the service side) ---------------------------------------------

_SAMPLING = {"random": "Random", "grid": "Grid", "bayesian": "Bayesian"}
_BAYESIAN_KINDS = ("choice", "uniform", "quniform")


def search_space_rest(space: dict[str, list]) -> dict[str, list]:
    """Our expressions (HyperDrive's names and arguments) in the service's form: ``[kind, [args]]``,
    a choice's options as one list (``["choice", [[1, 2, 3]]]``)."""
    out = {}
    for name, (kind, args) in space.items():
        out[name] = [kind, [list(args)]] if kind == "choice" else [kind, list(args)]
    return out


def _duration(seconds: float) -> str:
    """Whole seconds (at least one) as an ISO 8601 duration, written as azure-ai-ml writes one: PT1H30M, P1DT1M1S."""
    days, rest = divmod(max(1, int(round(seconds))), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = "".join(f"{n}{unit}" for n, unit in ((hours, "H"), (minutes, "M"), (secs, "S")) if n)
    return "P" + (f"{days}D" if days else "") + (f"T{clock}" if clock else "")


def check_sweep_settings(settings: "SweepSpec") -> None:
    """What Azure's sweep service refuses, said before anything is uploaded."""
    space, sampling = settings.space, settings.sampling
    if sampling == "grid":
        bad = sorted(k for k, (kind, _) in space.items() if kind != "choice")
        if bad:
            raise InvalidInput(f"Azure's grid sampling takes choice() parameters only ({', '.join(bad)} are not): "
                               "use --sampling random or bayesian")
    if sampling == "bayesian":
        bad = sorted(k for k, (kind, _) in space.items() if kind not in _BAYESIAN_KINDS)
        if bad:
            raise InvalidInput(f"Azure's bayesian sampling takes choice, uniform and quniform only ({', '.join(bad)} "
                               "are not): use --sampling random")
        if settings.policy:
            raise InvalidInput("Azure's bayesian sampling takes no early-termination policy: drop --early-stop "
                               "or use --sampling random")


def early_termination_rest(policy: dict | None) -> dict | None:
    if not policy:
        return None
    out: dict[str, Any] = {"evaluationInterval": int(policy.get("evaluation_interval") or 1),
                           "delayEvaluation": int(policy.get("delay_evaluation") or 0)}
    kind = policy["kind"]
    if kind == "bandit":
        out["policyType"] = "Bandit"
        if policy.get("slack_amount") is not None:
            out["slackAmount"] = float(policy["slack_amount"])
        else:
            out["slackFactor"] = float(policy.get("slack_factor") or 0.1)
    elif kind == "median":
        out["policyType"] = "MedianStopping"
    else:
        out["policyType"] = "TruncationSelection"
        out["truncationPercentage"] = int(policy.get("truncation_percentage") or 20)
    return out


def sweep_job_body(*, settings: "SweepSpec", command: str, environment_id: str, compute_id: str, code_id: str,
                   experiment: str, display_name: str | None, env_vars: dict[str, str],
                   inputs: dict[str, str] | None = None, tags: dict[str, str] | None = None,
                   io: dict | None = None) -> dict:
    """``io``: as for command jobs, --in values only (every trial reads them; a sweep has no --out)."""
    check_sweep_settings(settings)
    sampling: dict[str, Any] = {"samplingAlgorithmType": _SAMPLING[settings.sampling]}
    if settings.sampling == "random" and settings.seed is not None:
        sampling["seed"] = int(settings.seed)
    limits: dict[str, Any] = {"jobLimitsType": "Sweep", "maxTotalTrials": int(settings.max_trials),
                              "maxConcurrentTrials": int(settings.parallel or 1)}
    if settings.timeout_s:
        limits["timeout"] = _duration(settings.timeout_s)
    if settings.trial_timeout_s:
        limits["trialTimeout"] = _duration(settings.trial_timeout_s)
    props: dict[str, Any] = {
        "jobType": "Sweep", "experimentName": experiment, "computeId": compute_id,
        "samplingAlgorithm": sampling, "searchSpace": search_space_rest(settings.space), "limits": limits,
        "objective": {"primaryMetric": settings.primary_metric,
                      "goal": "Maximize" if settings.goal == "max" else "Minimize"},
        "trial": {"command": command, "codeId": code_id, "environmentId": environment_id,
                  "environmentVariables": dict(env_vars)},
    }
    policy = early_termination_rest(settings.policy)
    if policy:
        props["earlyTermination"] = policy
    _job_extras(props, display_name, tags, inputs, io)
    return {"properties": props}


# -- AutoML: Azure ML AutoML jobs (the service featurizes, searches and ensembles) --------------------------------

AUTOML_METRICS = {
    "accuracy": "Accuracy", "AUC_weighted": "AUCWeighted", "norm_macro_recall": "NormMacroRecall",
    "average_precision_score_weighted": "AveragePrecisionScoreWeighted",
    "precision_score_weighted": "PrecisionScoreWeighted", "r2_score": "R2Score",
    "normalized_root_mean_squared_error": "NormalizedRootMeanSquaredError",
    "spearman_correlation": "SpearmanCorrelation", "normalized_mean_absolute_error": "NormalizedMeanAbsoluteError",
}
# our learner keys → the service's algorithm names, per task (None: the service has no such algorithm)
AUTOML_ALGORITHMS = {
    "classification": {"lgbm": "LightGBM", "xgboost": "XGBoostClassifier", "rf": "RandomForest",
                       "extra_tree": "ExtremeRandomTrees", "hgb": "GradientBoosting", "linear": "LogisticRegression",
                       "kneighbor": "KNN", "xgb_limitdepth": None},
    "regression": {"lgbm": "LightGBM", "xgboost": "XGBoostRegressor", "rf": "RandomForest",
                   "extra_tree": "ExtremeRandomTrees", "hgb": "GradientBoosting", "linear": "ElasticNet",
                   "kneighbor": "KNN", "xgb_limitdepth": None},
}
AUTOML_ALGORITHMS["forecasting"] = AUTOML_ALGORITHMS["regression"]
AUTOML_MIN_TIMEOUT_S = 15 * 60  # the service's shortest experiment timeout for tabular tasks


def mltable(file_name: str, fmt: str) -> str:
    """The MLTable file of a folder holding one data file (what AutoML jobs take as training data)."""
    if fmt == "parquet":
        read = ["  - read_parquet:", "      include_path_column: false"]
    else:
        read = ["  - read_delimited:", "      delimiter: ','", "      encoding: utf8",
                "      header: all_files_same_headers"]
    return "\n".join(["paths:", f"  - file: {file_name}", "transformations:", *read]) + "\n"


def automl_job_body(*, settings: "AutoMLSpec", training_uri: str, compute_id: str, experiment: str,
                    display_name: str | None, tags: dict[str, str] | None) -> dict:
    task = settings.task
    metric = AUTOML_METRICS.get(settings.primary_metric)
    if metric is None:
        raise InvalidInput(f"Azure AutoML cannot optimise {settings.primary_metric}; use one of "
                           f"{', '.join(m for m in AUTOML_METRICS)}")
    details: dict[str, Any] = {
        "taskType": task.capitalize(), "primaryMetric": metric, "targetColumnName": settings.label,
        "trainingData": {"jobInputType": "mltable", "uri": training_uri},
        "featurizationSettings": {"mode": "Auto" if settings.featurization else "Off"},
    }
    limits: dict[str, Any] = {}
    if settings.budget_s:
        limits["timeout"] = _duration(max(settings.budget_s, AUTOML_MIN_TIMEOUT_S))
    if settings.max_trials:
        limits["maxTrials"] = int(settings.max_trials)
    if settings.early_termination is not None:
        limits["enableEarlyTermination"] = bool(settings.early_termination)
    if limits:
        details["limitSettings"] = limits
    validation = settings.validation or {"method": "auto"}
    if validation["method"] == "cv":
        details["nCrossValidations"] = {"mode": "Custom", "value": int(validation["folds"])}
    elif validation["method"] == "holdout":
        details["validationDataSize"] = float(validation["fraction"])
    training: dict[str, Any] = {}
    learners = list(settings.learners or [])
    if learners and settings.learners_restricted:
        names = AUTOML_ALGORITHMS[task]
        allowed = list(dict.fromkeys(names[k] for k in learners if names.get(k)))
        if not allowed:
            raise InvalidInput(f"Azure AutoML has none of {', '.join(learners)}; allow others with --allowed")
        training["allowedTrainingAlgorithms"] = allowed
    if not settings.ensemble:
        training.update(enableVoteEnsemble=False, enableStackEnsemble=False)
    if training:
        details["trainingSettings"] = training
    if task == "forecasting":
        details["forecastingSettings"] = {"timeColumnName": settings.time_column,
                                          "forecastHorizon": {"mode": "Custom", "value": int(settings.horizon)}}
    props: dict[str, Any] = {"jobType": "AutoML", "experimentName": experiment, "computeId": compute_id,
                             "taskDetails": details}
    _job_extras(props, display_name, tags, None)
    return {"properties": props}
