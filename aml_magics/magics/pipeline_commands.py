"""``%%aml step``, ``%aml pipeline …`` and ``%aml batch``: the notebook's pipeline and batch scoring."""
from __future__ import annotations

import os
from pathlib import Path

from IPython.core.error import UsageError

from ..core import checks
from ..core.names import CELL_FILE
from ..core.pipelines import PipelineSpec, PipelineStep, binding, identifier
from . import parser as cli



#: the options of each ``%aml pipeline`` action (any other is refused, not ignored)
_PIPELINE_FLAGS = {"target": "a name or file", "experiment": "-e", "compute": "-c", "no_reuse": "--no-reuse",
                   "display_name": "--name", "tag": "--tag", "wait": "--wait", "force": "--force"}
_PIPELINE_TAKES = {"run": {"target", "experiment", "compute", "no_reuse", "display_name", "tag", "wait"},
                   "export": {"target", "experiment", "compute", "no_reuse", "force"},
                   "show": {"target"}, "steps": set(), "clear": {"target"}}

class PipelineCommands:
    """Mixed into ``AmlMagics``: ``self.client``, ``self.shell``, ``self._steps``, ``self._wait`` come from there."""

    # -- %%aml step -------------------------------------------------------------------------------------

    def _cmd_step(self, args, cell: str | None, extra: list[str]):
        from .aml import _plain_python, _source_and_entry

        name = identifier("step name", args.name)
        inputs = _parse_inputs(args.inputs)
        outputs = [o for item in args.outputs for o in (x.strip() for x in item.split(",")) if o]
        for o in outputs:
            identifier(f"output name of step {name}", o)
        if len(set(outputs)) != len(outputs):
            raise UsageError(f"step {name}: an output is named twice")
        variables = checks.environment_variables("--env-var", cli.parse_pairs(args.env_var, "--env-var"))
        both = sorted(set(inputs) & set(outputs))
        if both:
            raise UsageError(f"step {name}: {', '.join(both)} is both an input and an output")
        if cell is not None:
            if args.script:
                raise UsageError("%%aml step takes the cell as its code; for a script use %aml step NAME SCRIPT")
            if not cell.strip():
                raise UsageError("the cell is empty: put the step's code below %%aml step NAME")
            source = Path(args.source_dir or os.getcwd()).resolve()
            step = PipelineStep(name=name, kind="cell", entry=CELL_FILE, code=_plain_python(self.shell, cell), args=extra,
                                inputs=inputs, outputs=outputs, source=str(source), compute=args.compute,
                                environment=args.environment, allow_reuse=not args.no_reuse,
                                timeout_s=args.timeout, environment_variables=variables)
        else:
            if not args.script:
                raise UsageError("give a script (%aml step NAME train.py --in … --out … -- ARGS), or put %%aml step "
                                 "NAME on a cell's first line")
            source, entry = _source_and_entry(args.script, args.source_dir)
            step = PipelineStep(name=name, kind="notebook" if entry.endswith(".ipynb") else "script", entry=entry,
                                args=extra, inputs=inputs, outputs=outputs, source=str(source), compute=args.compute,
                                environment=args.environment, allow_reuse=not args.no_reuse,
                                timeout_s=args.timeout, environment_variables=variables)
        replaced = name in self._steps
        self._steps[name] = step
        ins = ", ".join(f"{k} ← {_shown_source(v)}" for k, v in inputs.items()) or "none"
        print(f"Step {name} {'redefined' if replaced else 'defined'} (inputs: {ins}; outputs: {', '.join(outputs) or 'none'}). "
              f"Run the notebook's {len(self._steps)} step{'s' if len(self._steps) != 1 else ''} with %aml pipeline run.")

    def notebook_pipeline(self, compute: str | None = None, reuse: bool = True) -> PipelineSpec:
        """The notebook's steps as a pipeline: ``--in NAME`` bound to the one step that writes NAME."""
        if not self._steps:
            raise UsageError("the notebook has no pipeline steps yet: start a cell with %%aml step NAME --out OUTPUT")
        producers: dict[str, list[str]] = {}
        for s in self._steps.values():
            for o in s.outputs:
                producers.setdefault(o, []).append(s.name)
        steps = []
        cwd = Path(os.getcwd()).resolve()
        for s in self._steps.values():
            bound = {}
            for k, v in s.inputs.items():
                if isinstance(v, str) and v.startswith("@"):
                    ref = v[1:]
                    if "." in ref:
                        up, _, out = ref.partition(".")
                        bound[k] = binding(up, out)
                        continue
                    found = [p for p in producers.get(ref, []) if p != s.name]
                    if not found:
                        raise UsageError(f"step {s.name} reads {ref!r}, which no step writes: add --out {ref} to the "
                                         f"step that makes it, or say where it is: --in {k}=datastore:PATH")
                    if len(found) > 1:
                        raise UsageError(f"step {s.name} reads {ref!r}, which steps {', '.join(found)} all write: name "
                                         f"one, --in {k}={found[0]}.{ref}")
                    bound[k] = binding(found[0], ref)
                else:
                    bound[k] = v
            source = Path(s.source)
            rel = os.path.relpath(source, cwd) if source.is_absolute() else s.source
            if rel.startswith(".."):
                raise UsageError(f"step {s.name}: its folder {source} is outside this folder {cwd}; pipelines run from "
                                 "the notebook's folder")
            steps.append(PipelineStep(**{**s.__dict__, "inputs": bound, "source": Path(rel).as_posix()}))
        spec = PipelineSpec(steps=steps, reuse=reuse)
        if compute:
            spec.default_compute = compute
        return spec.validate()

    # -- %aml pipeline ---------------------------------------------------------------------------------

    def _cmd_pipeline(self, args):
        action = args.action
        given = [(key, checks.shown(args.target, 40) if key == "target" else flag)
                 for key, flag in _PIPELINE_FLAGS.items() if getattr(args, key) not in (None, False, [])]
        extra = [flag for key, flag in given if key not in _PIPELINE_TAKES[action]]
        if extra:  # (they were ignored: `pipeline run --force`, `pipeline show --wait`, `pipeline steps prep`)
            takes = [flag for key, flag in _PIPELINE_FLAGS.items() if key in _PIPELINE_TAKES[action]]
            raise UsageError(f"%aml pipeline {action} takes no {', '.join(extra)}"
                             + (f" (it takes {', '.join(takes)})" if takes else "") + "; see %aml help pipeline")
        if action == "steps":
            return _StepList(list(self._steps.values()))
        if action == "clear":
            if args.target:
                if args.target not in self._steps:
                    raise UsageError(f"no step {args.target!r} (steps: {', '.join(self._steps) or 'none'})")
                del self._steps[args.target]
                print(f"Step {args.target} removed from the notebook's pipeline.")
            else:
                self._steps.clear()
                print("The notebook's pipeline has no steps now.")
            return None
        if action == "export":
            target = Path(args.target or "pipeline.yml")
            if target.suffix not in (".yml", ".yaml"):
                raise UsageError(f"{target}: name the file .yml (an Azure ML v2 pipeline YAML)")
            if checks.path_kind("the file to export to", target) != "missing" and not args.force:
                raise UsageError(f"{target} exists; add --force to overwrite it")
            spec = self.notebook_pipeline(args.compute, reuse=not args.no_reuse)
            path = self.client.pipelines.export(spec, target.parent if str(target.parent) else ".",
                                                experiment=args.experiment or self._experiment(args), name=target.name,
                                                overwrite=args.force)
            cells = [s.name for s in spec.steps if s.kind == "cell"]
            print(f"Wrote {path}" + (f" (cell steps as steps/{'.py, steps/'.join(cells)}.py)" if cells else "") +
                  f". Run it with %aml pipeline run {path} or `az ml job create -f {path}`.")
            return None
        if action == "show":
            if not args.target:
                spec = self.notebook_pipeline()
                from ..widgets.pipeline import PipelineGraphView

                return PipelineGraphView(spec)
            run_id = self.client.runs.resolve_id(args.target)
            from .display import in_kernel

            if self.dashboards and in_kernel(self.shell):
                from ..widgets.run_details import RunDetails

                return RunDetails(run_id, self.client)
            return self.client.pipelines.steps(run_id)
        # run
        tags = cli.parse_pairs(args.tag, "--tag")
        if args.target:
            if not str(args.target).endswith((".yml", ".yaml")):
                raise UsageError(f"{args.target}: give a pipeline YAML (.yml), or nothing to run the notebook's steps")
            from ..core.pipelines import load_yaml

            spec, doc = load_yaml(args.target)
            if args.compute:
                spec.default_compute = args.compute
            experiment = args.experiment or doc.get("experiment_name") or self._experiment(args)
            run = self.client.pipelines.submit(spec, experiment, source_dir=Path(args.target).resolve().parent,
                                               reuse=False if args.no_reuse else None,
                                               display_name=args.display_name or doc.get("display_name"), tags=tags)
        else:
            spec = self.notebook_pipeline(args.compute, reuse=not args.no_reuse)
            run = self.client.pipelines.submit(spec, self._experiment(args), source_dir=os.getcwd(),
                                               display_name=args.display_name, tags=tags)
        if args.wait:
            self._wait(run)
        return run

    # -- %aml batch ---------------------------------------------------------------------------------------

    def _cmd_batch(self, args):
        data = args.data
        if data.isidentifier() and data in self.shell.user_ns and not os.path.exists(data):
            data = self.shell.user_ns[data]
        elif data.isidentifier() and not os.path.exists(data):
            raise UsageError(f"--data {data}: no variable {data!r} in this notebook and no file {data!r} "
                             "(datastore files: --data datastore:PATH)")
        run = self.client.batch.submit(
            args.model, data, experiment=self._experiment(args), output=args.output, score=args.score,
            mini_batch=args.mini_batch, parallel=args.parallel, retries=args.retries,
            error_threshold=args.error_threshold, output_file=args.output_file, tabular=True if args.tabular else None,
            compute=args.compute, source_dir=args.source_dir, display_name=args.display_name,
            environment=args.environment)
        if args.wait:
            self._wait(run)
        return run


    def _cmd_batch_endpoint(self, args):
        if args.action == "list":
            return self.client.batch_endpoints.list()
        if not args.name:
            raise UsageError(f"%aml batch-endpoint {args.action} NAME: give the endpoint's name")
        if args.action == "delete":
            self.client.batch_endpoints.delete(args.name)
            print(f"Deleted batch endpoint {args.name}.")
            return None
        if not args.model:
            raise UsageError("%aml batch-endpoint create NAME MODEL -c CLUSTER: give the registered model")
        return self.client.batch_endpoints.create(
            args.name, args.model, score=args.score, compute=args.compute, mini_batch=args.mini_batch,
            parallel=args.parallel, retries=args.retries, error_threshold=args.error_threshold,
            output_file=args.output_file, environment=args.environment)


def _parse_inputs(items: list[str]) -> dict[str, str]:
    """``--in clean`` (the step output named clean), ``--in x=prep.clean``, ``--in data=datastore:PATH``."""
    out: dict[str, str] = {}
    for item in items:
        for part in (p.strip() for p in item.split(",")):
            if not part:
                continue
            name, sep, source = part.partition("=")
            name = name.strip()
            identifier("input name", name)
            if name in out:
                raise UsageError(f"--in {name} is given twice")
            source = source.strip() if sep else name
            if source.startswith(("datastore:", "azureml://")):
                out[name] = source
            else:
                up, dot, o = source.partition(".")
                identifier("step or output name", up)
                if dot:
                    identifier("output name", o)
                out[name] = "@" + source
    return out


def _shown_source(value: str) -> str:
    return value[1:] if isinstance(value, str) and value.startswith("@") else str(value)


class _StepList:
    """``%aml pipeline steps``: the notebook's steps, a line each (HTML: a table with every name escaped)."""

    def __init__(self, steps: list[PipelineStep]):
        self.steps = steps

    def _rows(self):
        return [(s.name, s.kind if s.kind != "cell" else "cell", ", ".join(f"{k}←{_shown_source(v)}" for k, v in s.inputs.items()),
                 ", ".join(s.outputs), s.compute or "(pipeline's)", "yes" if s.allow_reuse else "no") for s in self.steps]

    def __repr__(self) -> str:
        from ..core import render as r

        if not self.steps:
            return "No pipeline steps in this notebook yet (%%aml step NAME --out OUTPUT)."
        return r.text_table(("step", "kind", "inputs", "outputs", "compute", "reuse"), self._rows())

    def _repr_html_(self) -> str:
        from ..core import render as r

        if not self.steps:
            return "<i>No pipeline steps in this notebook yet (%%aml step NAME --out OUTPUT).</i>"
        return r.html_table(("step", "kind", "inputs", "outputs", "compute", "reuse"), self._rows())

