"""The pipeline controller: the process of a pipeline's parent run.

Each step becomes a child run (tag ``pipeline.step``) once every step it reads from has completed; independent
steps are submitted together and run side by side as far as their compute target allows (its own queue). A step's
outputs are folders of the default datastore, ``azureml/PIPELINE_RUN/STEP/OUTPUT``, bound to the inputs of the
steps that read them.

**Reuse.** Before a step runs, its fingerprint — the code (the step's source folder, the cell), arguments,
parameters, environment and the *contents* of every input — is looked up in the workspace's reuse index
(``azureml/.reuse/`` in the default datastore, one small file per fingerprint, written when a step completes).
When an earlier run with the same fingerprint completed and its outputs still exist, the step is not run: a
Completed child run records ``pipeline.reused_from`` and the earlier outputs flow on.

**Resume.** A killed controller (``%aml resume RUN``) reads its children: completed steps stay done, running ones
are watched again, failed or canceled ones run again.

**Failure.** A failed step stops the steps that depend on it; no new step starts (unless the pipeline continues on
step failure) and the pipeline fails naming the step, its error and what was not run. Canceling the pipeline
cancels its running steps.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from ..core.errors import AmlError, EngineStopped, NotFound
from ..core.pipelines import PipelineSpec, PipelineStep, is_files, parse_binding
from ..core.render import counted
from ..core.states import ACTIVE_STATES
from ..core.types import RunSubmission

TICK_S = 0.02
CANCEL_WAIT_S = 30
REUSE_DIR = "azureml/.reuse"
_SKIP_DIRS = {"outputs", "logs", "__pycache__", ".ipynb_checkpoints", ".git", ".aml", "node_modules"}
FINGERPRINT_VERSION = "1"


def folder_digest(path: Path, *, code: bool = False) -> str:
    """A digest of a file's or a folder's contents (relative names and bytes). With ``code``, what a run's code
    is: outputs, logs, caches, hidden files and notebooks' saved state are left out."""
    h = hashlib.sha256()
    path = Path(path)
    if path.is_file():
        _hash_file(h, path)
        return h.hexdigest()
    files = []
    for root, dirs, names in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not (code and d in _SKIP_DIRS))
        for n in names:
            if code and (n.startswith(".") or n.endswith((".pyc", ".ipynb"))):
                continue
            files.append(os.path.join(root, n))
    for f in sorted(files):
        rel = os.path.relpath(f, path).replace(os.sep, "/")
        h.update(b"\0" + rel.encode("utf-8", "surrogatepass") + b"\0")
        _hash_file(h, Path(f))
    return h.hexdigest()


def _hash_file(h, path: Path) -> None:
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)


class Controller:
    def __init__(self, run, spec: dict, client=None):
        self.run = run
        self.client = client or run.client
        self.pipeline = PipelineSpec.from_settings(spec["settings"])
        self.experiment = spec["experiment"]
        self.env_vars = spec.get("environment_variables") or {}
        self.steps = {s.name: s for s in self.pipeline.steps}
        self.order = self.pipeline.order()
        self.done: dict[str, dict] = {}  # step → {"run_id", "outputs", "reused"}
        self.active: dict[str, str] = {}  # step → run id
        self.failed: dict[str, str] = {}  # step → its error
        self.skipped: list[str] = []
        self.digests: dict[str, str] = {}
        store = self.client.datastores.default()
        self.store_name, self.store_root = store.name, Path(store.path)
        self.started_at = time.monotonic()
        self.reused = 0
        self.fingerprints: dict[str, str] = {}  # run id → its step's fingerprint
        self.logged_done = -1

    # -- resume -------------------------------------------------------------------------------

    def rebuild(self) -> None:
        children = self.client.runs.list(parent_run_id=self.run.id, limit=None).infos
        for info in sorted(children, key=lambda i: i.created or 0):
            name = info.tags.get("pipeline.step")
            if name not in self.steps:
                continue
            if info.status == "Completed":
                self.done[name] = {"run_id": info.run_id, "outputs": json.loads(info.tags.get("pipeline.outputs") or "{}"),
                                   "reused": bool(info.tags.get("pipeline.reused_from")),
                                   "fingerprint": info.tags.get("pipeline.fingerprint")}
                self.active.pop(name, None)
            elif info.status in ACTIVE_STATES:
                self.active[name] = info.run_id
            else:
                self.active.pop(name, None)  # failed or canceled last time: it runs again
        if children:
            print(f"Resuming: {len(self.done)} of {len(self.steps)} steps done, {len(self.active)} still running.",
                  flush=True)

    # -- fingerprints and reuse ----------------------------------------------------------------------

    def _digest(self, path: Path, code: bool = False) -> str:
        key = f"{int(code)}:{path}"
        if key not in self.digests:
            self.digests[key] = folder_digest(path, code=code)
        return self.digests[key]

    def fingerprint(self, step: PipelineStep, inputs: dict[str, Any]) -> str:
        source = (Path.cwd() / step.source).resolve()
        parts = {
            "v": FINGERPRINT_VERSION, "kind": step.kind, "entry": step.entry, "code": step.code, "args": step.args,
            "parameters": step.parameters, "environment": step.environment, "outputs": sorted(step.outputs),
            "batch": step.batch,
            # a step that waits for another (v1's run_after) depends on what that one did, not only on its files
            "after": {a: self.done[a].get("fingerprint") for a in sorted(step.after)},
            "source": self._digest(source, code=True),
            "env_vars": {**self.env_vars, **step.environment_variables},
            "inputs": {k: (self._digest(Path(v["path"])) if isinstance(v, dict) else ["literal", v])
                       for k, v in sorted(inputs.items())},
        }
        return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:40]

    def _index(self, fp: str) -> Path:
        return self.store_root / REUSE_DIR / f"{fp}.json"

    def lookup(self, fp: str) -> dict | None:
        try:
            entry = json.loads(self._index(fp).read_text())
            info = self.client.runs.get(entry["run_id"], with_metrics=False)
        except (OSError, ValueError, KeyError, NotFound):
            return None
        if info.status != "Completed":
            return None
        digests = entry.get("digests") or {}
        for name, uri in entry.get("outputs", {}).items():
            try:
                path = Path(self.client.datastores.resolve_input(uri))
            except AmlError:
                return None  # an output was deleted since: run the step again
            if digests.get(name) != self._digest(path):
                return None  # changed since (a later step wrote into it, or a person did): run the step again
        return entry

    def remember(self, fp: str, step: str, run_id: str, outputs: dict) -> None:
        """Index a completed step for reuse, with its outputs' digests (what is reused must be what it wrote)."""
        path = self._index(fp)
        try:
            digests = {k: self._digest(Path(self.client.datastores.resolve_input(v))) for k, v in outputs.items()}
        except AmlError:  # an output is not there (nothing written, removed): not reusable
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"run_id": run_id, "step": step, "outputs": outputs, "digests": digests,
                                       "created": time.time()}))
            os.replace(tmp, path)
        except OSError as exc:  # the step's run is intact; it just cannot be reused later
            print(f"step {step}: could not record it for reuse ({exc})", flush=True)

    # -- steps ---------------------------------------------------------------------------------------

    def ready(self) -> list[str]:
        blocked = set(self.failed) | set(self.skipped)
        return [n for n in self.order if n not in self.done and n not in self.active and n not in blocked
                and all(u in self.done for u in self.steps[n].upstream())]

    def resolve_inputs(self, step: PipelineStep) -> dict[str, Any]:
        """name → {"uri", "path", "from_step", "run_id"} for files, or the literal value."""
        out: dict[str, Any] = {}
        for name, value in step.inputs.items():
            b = parse_binding(value)
            if b is not None:
                up = self.done[b[0]]
                uri = up["outputs"][b[1]]
                out[name] = {"uri": uri, "path": self.client.datastores.resolve_input(uri), "from_step": b[0],
                             "run_id": up["run_id"]}
            elif is_files(value):
                out[name] = {"uri": value, "path": self.client.datastores.resolve_input(value)}
            else:
                out[name] = value
        return out

    def start(self, name: str) -> None:
        step = self.steps[name]
        try:
            inputs = self.resolve_inputs(step)
        except AmlError as exc:
            self._fail(name, f"an input is missing: {exc}")
            return
        fp = self.fingerprint(step, inputs)
        lineage = {k: {kk: vv for kk, vv in v.items() if kk != "path"} if isinstance(v, dict) else v
                   for k, v in inputs.items()}
        tags = {"pipeline.step": name, "pipeline.fingerprint": fp, "pipeline.inputs": json.dumps(lineage)}
        if self.pipeline.reuse and step.allow_reuse:
            earlier = self.lookup(fp)
            if earlier is not None:
                child = self.run.tracker.record_child(
                    self.run.id, step.display_name or name, params=None, status="Completed",
                    tags={**tags, "pipeline.reused_from": earlier["run_id"],
                          "pipeline.outputs": json.dumps(earlier["outputs"])}, metrics=None, started=None, ended=None)
                self.done[name] = {"run_id": child, "outputs": earlier["outputs"], "reused": True,
                                   "source_run": earlier["run_id"], "fingerprint": fp}
                self.reused += 1
                print(f"step {name}: reused {earlier['run_id']} (code, arguments and inputs unchanged) → {child}",
                      flush=True)
                return
        outputs = {o: f"datastore:{self.store_name}/azureml/{self.run.id}/{name}/{o}" for o in step.outputs}
        literals = {k: v for k, v in inputs.items() if not isinstance(v, dict)}
        args = [_literal_args(a, literals) for a in step.args]
        engine = None
        if step.kind == "batch":  # a batch scoring run (v1's ParallelRunStep) over the step's input "data"
            from ..core.specs import BatchSpec

            engine = BatchSpec.from_settings({**step.batch, "data": {"kind": "input", "name": "data"},
                                              "output": step.outputs[0] if step.outputs else None})
        sub = RunSubmission(
            kind=step.kind, experiment=self.experiment, source_dir=(Path.cwd() / step.source).resolve(),
            entry=step.entry, compute=step.compute or self.pipeline.default_compute, code=step.code, args=args,
            parameters=dict(step.parameters), tags={**tags, "pipeline.outputs": json.dumps(outputs)},
            display_name=step.display_name or name,
            inputs={k: v["uri"] for k, v in inputs.items() if isinstance(v, dict)}, outputs=outputs,
            environment_variables={**self.env_vars, **step.environment_variables,
                                   **{f"AZURE_ML_INPUT_{k}": str(v) for k, v in literals.items()}},
            environment=step.environment, parent_run_id=self.run.id, engine=engine, timeout_s=step.timeout_s,
        )
        try:
            handle = self.client.runs.submit(sub)
        except AmlError as exc:
            self._fail(name, f"could not be submitted: {exc}")
            return
        self.active[name] = handle.id
        self.fingerprints[handle.id] = fp
        print(f"step {name}: submitted → {handle.id}", flush=True)

    def refresh(self) -> None:
        for name, run_id in list(self.active.items()):
            try:
                info = self.client.runs.get(run_id, with_metrics=False)
            except NotFound:
                continue
            if info.status in ACTIVE_STATES:
                continue
            del self.active[name]
            took = f" in {info.ended - info.started:.1f} s" if info.ended and info.started else ""
            if info.status == "Completed":
                outputs = json.loads(info.tags.get("pipeline.outputs") or "{}")
                fp = self.fingerprints.get(run_id) or info.tags.get("pipeline.fingerprint")
                self.done[name] = {"run_id": run_id, "outputs": outputs, "reused": False, "fingerprint": fp}
                if fp:
                    self.remember(fp, name, run_id, outputs)
                print(f"step {name}: Completed{took}", flush=True)
            else:
                error = (info.error or "").strip().splitlines()[-1:] or [info.status]
                self._fail(name, error[0], f"{info.status}{took}")
        if len(self.done) != self.logged_done:
            self.logged_done = len(self.done)
            self.run.log("steps_done", self.logged_done)

    def _fail(self, name: str, error: str, status: str = "Failed") -> None:
        self.failed[name] = error
        below = [d for d in self.pipeline.downstream(name) if d not in self.skipped]
        self.skipped += below
        print(f"step {name}: {status} — {error}" + (f" (not run: {', '.join(below)})" if below else ""), flush=True)

    def cancel_active(self, reason: str, wait_s: float = 0) -> None:
        for run_id in list(self.active.values()):
            try:
                self.client.runs.cancel(run_id, reason=reason)
            except AmlError:
                pass
        deadline = time.monotonic() + wait_s
        while self.active and time.monotonic() < deadline:
            time.sleep(TICK_S)
            self.refresh()

    # -- the loop --------------------------------------------------------------------------------------

    def main(self) -> int:
        self.rebuild()
        print(f"Pipeline of {counted(len(self.steps), 'step')}: "
              + " → ".join(", ".join(level) for level in self.pipeline.levels()), flush=True)
        try:
            while True:
                self.refresh()
                stopping = self.failed and not self.pipeline.continue_on_step_failure
                if not stopping:
                    for name in self.ready():
                        self.start(name)
                    if self.failed and not self.pipeline.continue_on_step_failure:
                        continue
                if not self.active and (stopping or not self.ready()):
                    break
                time.sleep(TICK_S)
        except BaseException:
            self.cancel_active("the pipeline was canceled")
            raise
        return self.finish()

    def finish(self) -> int:
        not_run = [n for n in self.order if n not in self.done and n not in self.failed]
        summary = {"steps": {n: {**self.done[n], "status": "Completed"} if n in self.done else
                             {"status": "Failed", "error": self.failed[n]} if n in self.failed else {"status": "NotRun"}
                             for n in self.order},
                   "reused": self.reused, "seconds": round(time.monotonic() - self.started_at, 3)}
        os.makedirs("outputs", exist_ok=True)
        with open("outputs/pipeline_summary.json", "w") as f:
            json.dump(summary, f, indent=1)
        self.run.log("steps_reused", self.reused)
        self.run.set_tags({"pipeline.reused": str(self.reused), "pipeline.done": f"{len(self.done)}/{len(self.steps)}"})
        if self.failed:
            first = next(n for n in self.order if n in self.failed)
            rest = f"; not run: {', '.join(not_run)}" if not_run else ""
            raise EngineStopped(f"step {first} failed: {self.failed[first]}{rest}")
        print(f"Pipeline done: {counted(len(self.done), 'step')} ({self.reused} reused) in "
              f"{time.monotonic() - self.started_at:.1f} s", flush=True)
        return 0


def _literal_args(arg: str, literals: dict[str, Any]) -> str:
    import re

    return re.sub(r"\$\{\{\s*inputs\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}",
                  lambda m: str(literals[m.group(1)]) if m.group(1) in literals else m.group(0), arg)


def run_pipeline(spec: dict, run) -> int:
    return Controller(run, spec).main()
