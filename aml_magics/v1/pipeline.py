"""``azureml.pipeline.core`` / ``azureml.pipeline.steps``: v1 pipelines over ours (``client.pipelines``).

``Pipeline(ws, steps=[...])`` becomes a ``core.pipelines.PipelineSpec``: each ``PythonScriptStep`` a script step,
each ``ParallelRunStep`` a batch scoring step (``ParallelRunConfig``'s entry script, mini-batch size, error
threshold, ``append_row`` file); ``PipelineData`` / ``OutputFileDatasetConfig`` objects are the edges — the step
that lists one in ``outputs=`` (or, for an ``OutputFileDatasetConfig``, in its arguments) writes it, the steps that
read it depend on it. Steps another step depends on are included even when only the last step is listed (v1's
``resolve_closure``). ``allow_reuse`` is honoured; ``pipeline.submit(...)`` / ``exp.submit(pipeline)`` start the run.
Publishing, schedules and endpoints have no local equivalent and say so.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from ..core import checks
from ..core.errors import InvalidInput, NotSupported
from . import note_once
from .data import OutputFileDatasetConfig, PipelineData, TabularDataset, _StepInput, _StepOutput, _staged_uri

import weakref  # noqa: E402

#: every step built in this process, so that a Pipeline of its last step finds the ones it reads from
_STEPS: "weakref.WeakSet" = weakref.WeakSet()

__all__ = ["Pipeline", "PipelineData", "PythonScriptStep", "PipelineParameter", "StepSequence", "PublishedPipeline",
           "Schedule", "ScheduleRecurrence", "ParallelRunStep", "ParallelRunConfig", "EstimatorStep", "HyperDriveStep",
           "AutoMLStep", "OutputFileDatasetConfig", "PipelineRun", "StepRun", "PipelineEndpoint"]


class PipelineParameter:
    """A named value with a default; ``pipeline.submit(pipeline_parameters={name: value})`` overrides it."""

    def __init__(self, name: str, default_value: Any):
        self.name, self.default_value = name, default_value


class _Step:
    def __init__(self, name: str | None, arguments: list | None, inputs: list | None, outputs: list | None,
                 compute_target: Any, source_directory: str | None, allow_reuse: bool, environment: Any = None):
        from .api import script_arguments

        self.name = str(name or type(self).__name__)
        self.arguments = script_arguments(type(self).__name__, arguments)
        self.inputs = list(inputs or [])
        self.outputs = list(outputs or [])
        self.compute_target = compute_target
        self.source_directory = source_directory or "."
        self.allow_reuse = bool(allow_reuse)
        self.environment = environment
        self._run_after: list["_Step"] = []
        _STEPS.add(self)

    def run_after(self, step: "_Step") -> None:
        self._run_after.append(step)

    def _produces(self) -> list[_StepOutput]:
        made = [o for o in self.outputs if isinstance(o, _StepOutput)]
        made += [a for a in self.arguments if isinstance(a, OutputFileDatasetConfig) and a not in made
                 and not any(a is i or getattr(i, "_output", None) is a for i in self.inputs)]
        return made

    def _reads(self) -> list[_StepOutput]:
        read = []
        for x in [*self.inputs, *self.arguments]:
            out = x._output if isinstance(x, _StepInput) else x if isinstance(x, _StepOutput) else None
            if out is not None and out not in self._produces() and out not in read:
                read.append(out)
        return read


class PythonScriptStep(_Step):
    """A script of ``source_directory`` run with ``arguments`` on ``compute_target`` (``runconfig``'s environment)."""

    def __init__(self, script_name: str, name: str | None = None, arguments: list | None = None,
                 compute_target: Any = None, runconfig: Any = None, runconfig_pipeline_params: Any = None,
                 inputs: list | None = None, outputs: list | None = None, params: dict | None = None,
                 source_directory: str | None = None, allow_reuse: bool = True, version: str | None = None,
                 hash_paths: Any = None):
        super().__init__(name or script_name, arguments, inputs, outputs, compute_target, source_directory, allow_reuse,
                         getattr(runconfig, "environment", None))
        self.script_name = script_name
        self.params = dict(params or {})
        self.runconfig = runconfig  # read when the pipeline is submitted, as v1 does


class ParallelRunConfig:
    """v1's batch scoring settings: ``entry_script`` (``init()``, ``run(mini_batch)``) over mini-batches."""

    def __init__(self, environment: Any = None, entry_script: str | None = None, error_threshold: int = -1,
                 output_action: str = "append_row", compute_target: Any = None, node_count: int = 1,
                 process_count_per_node: int | None = None, mini_batch_size: Any = None,
                 source_directory: str | None = None, description: str | None = None, logging_level: str = "INFO",
                 run_invocation_timeout: int = 60, run_max_try: int = 3, append_row_file_name: str | None = None,
                 allowed_failed_count: int | None = None, allowed_failed_percent: float | None = None,
                 partition_keys: Any = None, environment_variables: dict | None = None, **_ignored: Any):
        if not entry_script:
            raise InvalidInput("ParallelRunConfig needs entry_script='batch_score.py' (with init() and run(mini_batch))")
        if output_action not in ("append_row", "summary_only"):
            raise InvalidInput(f"output_action={output_action!r}: use 'append_row' or 'summary_only'")
        if partition_keys:
            raise NotSupported("partition_keys: mini-batches here are rows or files in order, not partitions")
        if append_row_file_name is not None:
            checks.output_file_name("ParallelRunConfig(append_row_file_name)", append_row_file_name)
        self.environment, self.entry_script = environment, entry_script
        self.error_threshold = checks.whole(
            "ParallelRunConfig(allowed_failed_count)" if allowed_failed_count is not None
            else "ParallelRunConfig(error_threshold)",
            allowed_failed_count if allowed_failed_count is not None else error_threshold, -1, 10 ** 12)
        self.output_action, self.compute_target = output_action, compute_target
        self.node_count = checks.whole("ParallelRunConfig(node_count)", node_count or 1, 1, 1024)
        if process_count_per_node is not None:
            process_count_per_node = checks.whole("ParallelRunConfig(process_count_per_node)",
                                                  process_count_per_node, 1, 1024)
        self.process_count_per_node = process_count_per_node
        self.mini_batch_size, self.source_directory = mini_batch_size, source_directory or "."
        self.run_max_try = checks.whole("ParallelRunConfig(run_max_try)", run_max_try, 0, 1001)
        self.append_row_file_name = append_row_file_name
        self.environment_variables = dict(environment_variables or {})


class ParallelRunStep(_Step):
    """Batch scoring as a pipeline step: ``parallel_run_config`` over ``inputs[0]`` into ``output``."""

    def __init__(self, name: str, parallel_run_config: ParallelRunConfig, inputs: list, output: Any = None,
                 side_inputs: list | None = None, arguments: list | None = None, allow_reuse: bool = True):
        if not inputs or len(inputs) != 1:
            raise InvalidInput("ParallelRunStep scores one input: inputs=[dataset.as_named_input('name')]")
        if arguments:
            note_once("prs-arguments", "ParallelRunStep arguments are accepted; the entry script's run(mini_batch) "
                                       "gets its mini-batches, not the arguments")
        cfg = parallel_run_config
        super().__init__(name, arguments, inputs, [output] if output is not None else [], cfg.compute_target,
                         cfg.source_directory, allow_reuse, cfg.environment)
        self.config = cfg


class Pipeline:
    """``Pipeline(workspace, steps)``: ``submit(experiment_name)`` or ``Experiment.submit(pipeline)``."""

    def __init__(self, workspace: Any, steps: Any, description: str | None = None, default_datastore: Any = None,
                 default_source_directory: str | None = None, resolve_closure: bool = True,
                 continue_on_step_failure: bool = False, **_ignored: Any):
        steps = list(steps.steps if isinstance(steps, StepSequence) else steps)
        if not steps or not all(isinstance(s, _Step) for s in steps):
            raise InvalidInput("Pipeline(ws, steps=[...]) takes PythonScriptStep / ParallelRunStep objects")
        self.workspace, self.description = workspace, description
        self.steps = steps
        self.resolve_closure = resolve_closure
        self.continue_on_step_failure = continue_on_step_failure

    # -- the graph --------------------------------------------------------------------------------------------

    def _all_steps(self) -> list[_Step]:
        steps = list(self.steps)
        if self.resolve_closure:
            known = _known_steps()
            frontier = list(steps)
            while frontier:
                s = frontier.pop()
                for out in s._reads():
                    producer = next((k for k in known if out in k._produces()), None)
                    if producer is not None and producer not in steps:
                        steps.append(producer)
                        frontier.append(producer)
                for before in s._run_after:
                    if before not in steps:
                        steps.append(before)
                        frontier.append(before)
        return steps

    def _spec(self, parameters: dict | None = None, regenerate_outputs: bool = False,
              continue_on_step_failure: bool | None = None) -> tuple[Any, Path]:
        from ..core.pipelines import PipelineSpec, PipelineStep, binding
        from .api import _arg, _datastore_uri, _input_name, script_inside
        from .compute import compute_name
        from .environment import environment_ref

        client = self.workspace.client
        steps = self._all_steps()
        names: dict[int, str] = {}
        for s in steps:
            key = _input_name(s.name, {v: 1 for v in names.values()})
            names[id(s)] = key
        producers: dict[int, tuple[str, str]] = {}
        for s in steps:
            for out in s._produces():
                if id(out) in producers:
                    raise InvalidInput(f"{out.name!r} is an output of two steps ({producers[id(out)][0]} and "
                                       f"{names[id(s)]}); each PipelineData is written by one step")
                producers[id(out)] = (names[id(s)], _input_name(out.name, {}))
        folders = [Path(os.path.expanduser(str(s.source_directory))).resolve() for s in steps]
        root = Path(os.path.commonpath([str(f) for f in folders]))
        params = dict(parameters or {})
        out_steps = []
        for s, folder in zip(steps, folders):
            step_name = names[id(s)]
            inputs: dict[str, Any] = {}
            outputs = [producers[id(o)][1] for o in s._produces()]
            args: list[str] = []

            def bind(value: Any) -> str | None:
                out = value._output if isinstance(value, _StepInput) else value if isinstance(value, _StepOutput) else None
                if out is not None:
                    if id(out) not in producers:
                        raise InvalidInput(f"step {s.name} reads {out.name!r}, which no step of the pipeline writes "
                                           "(list it in that step's outputs=[...])")
                    up, oname = producers[id(out)]
                    if up == step_name:
                        return "${{outputs.%s}}" % oname
                    key = _input_name(getattr(value, "_input_name", None) or oname, {})
                    inputs[key] = binding(up, oname)
                    return "${{inputs.%s}}" % key
                uri = _datastore_uri(value) or _staged_uri(value, client)
                if uri is not None:
                    key = _input_name(getattr(value, "_input_name", None) or f"input_{len(inputs) + 1}", inputs)
                    inputs[key] = uri
                    return "${{inputs.%s}}" % key
                return None

            for a in s.arguments:
                if isinstance(a, PipelineParameter):
                    args.append(str(params.get(a.name, a.default_value)))
                    continue
                bound = bind(a)
                args.append(bound if bound is not None else _arg(a))
            for i in s.inputs:
                if not any(i is a for a in s.arguments):
                    bind(i)
            after = [names[id(b)] for b in s._run_after if id(b) in names]
            compute = compute_name(client, s.compute_target)
            environment = environment_ref(client, s.environment)
            # the environment's variables (and a ParallelRunConfig's own) are set in the step's run, as in a
            # ScriptRunConfig's (they were dropped)
            holder = s.config if isinstance(s, ParallelRunStep) else s.runconfig
            variables = {**checks.environment_variables(f"step {s.name}: Environment.environment_variables",
                                                        getattr(s.environment, "environment_variables", None)),
                         **checks.environment_variables(f"step {s.name}: environment_variables",
                                                        getattr(holder, "environment_variables", None))}
            rel = folder.relative_to(root).as_posix()
            if isinstance(s, ParallelRunStep):
                cfg = s.config
                if len(inputs) != 1:
                    raise InvalidInput(f"step {s.name}: ParallelRunStep scores one input: a dataset of a datastore path "
                                       "(Dataset.File.from_files(ds.path('images/')).as_named_input('x')) or an earlier "
                                       "step's PipelineData / OutputFileDatasetConfig")
                inputs = {"data": next(iter(inputs.values()))}
                first = s.inputs[0]
                tabular = isinstance(first, TabularDataset) or bool(getattr(getattr(first, "_output", first),
                                                                            "_tabular", False))
                batch = {"score": cfg.entry_script, "mini_batch": _mini_batch(cfg.mini_batch_size, tabular),
                         "parallel": max(1, cfg.node_count * (cfg.process_count_per_node or os.cpu_count() or 1)),
                         "retries": max(0, cfg.run_max_try - 1), "error_threshold": cfg.error_threshold,
                         "output_file": cfg.append_row_file_name or ("parallel_run_step.txt" if not tabular
                                                                     else "predictions.csv"),
                         "tabular": tabular}
                out_steps.append(PipelineStep(name=step_name, kind="batch", entry="", inputs=inputs, outputs=outputs,
                                              source=rel, compute=compute, environment=environment,
                                              allow_reuse=s.allow_reuse, display_name=s.name, batch=batch,
                                              after=after, environment_variables=variables))
                continue
            script_inside(f"step {s.name}: PythonScriptStep", folder, s.script_name)
            if not (folder / s.script_name).is_file():
                raise InvalidInput(f"step {s.name}: no script {s.script_name!r} in {folder}")
            limit = getattr(s.runconfig, "max_run_duration_seconds", None)  # the step's time limit
            if limit is not None:
                limit = checks.positive(f"step {s.name}: runconfig.max_run_duration_seconds", limit,
                                        checks.MAX_TIMEOUT_S)
            out_steps.append(PipelineStep(name=step_name, kind="script", entry=s.script_name, args=args, inputs=inputs,
                                          outputs=outputs, source=rel, compute=compute, environment=environment,
                                          allow_reuse=s.allow_reuse, display_name=s.name, after=after,
                                          timeout_s=limit, environment_variables=variables))
        cont = self.continue_on_step_failure if continue_on_step_failure is None else continue_on_step_failure
        spec = PipelineSpec(steps=out_steps, reuse=not regenerate_outputs, continue_on_step_failure=bool(cont),
                            description=self.description)
        return spec.validate(), root

    def validate(self) -> list:
        self._spec()
        return []

    def submit(self, experiment_name: str, pipeline_parameters: dict | None = None,
               continue_on_step_failure: bool | None = None, regenerate_outputs: bool = False, tags: dict | None = None,
               **_ignored: Any):
        from .api import Experiment

        return Experiment(self.workspace, experiment_name).submit(
            self, tags=tags, pipeline_parameters=pipeline_parameters, regenerate_outputs=regenerate_outputs,
            continue_on_step_failure=continue_on_step_failure)

    def _aml_submit(self, experiment: Any, tags: dict | None = None, pipeline_parameters: dict | None = None,
                    regenerate_outputs: bool = False, continue_on_step_failure: bool | None = None, **_ignored: Any):
        from .api import _v1_env

        spec, root = self._spec(pipeline_parameters, regenerate_outputs, continue_on_step_failure)
        return self.workspace.client.pipelines.submit(spec, experiment.name, source_dir=root,
                                                      tags={k: str(v) for k, v in (tags or {}).items()},
                                                      environment_variables=_v1_env())

    def publish(self, *args: Any, **kwargs: Any):
        raise NotSupported("publishing a pipeline (a REST endpoint) is Azure ML studio's; here run it again with "
                           "pipeline.submit(experiment_name) — unchanged steps are reused")

    def __repr__(self) -> str:
        return f"Pipeline({len(self._all_steps())} steps: {', '.join(s.name for s in self._all_steps())})"


def _mini_batch(size: Any, tabular: bool) -> int:
    """v1's mini_batch_size: files (an int) for file datasets; for tabular ones a size like "1MB" → rows."""
    if size is None:
        return 10_000 if tabular else 10
    number = size if isinstance(size, int) else checks.digits(size)
    if number is not None:
        return max(1, number)
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMG]B)\s*", str(size).upper())
    if not m:
        raise InvalidInput(f"mini_batch_size={size!r}: a number of files, or a size like '1MB' for tabular data")
    note_once("mini-batch-bytes", f"mini_batch_size={size!r} is taken as rows (about 10,000 per MB)")
    return max(1, int(float(m.group(1)) * {"KB": 10, "MB": 10_000, "GB": 10_000_000}[m.group(2)]))


def _known_steps() -> list[_Step]:
    return list(_STEPS)


class StepSequence:
    """``StepSequence(steps=[a, b, c])``: the steps in this order (each after the one before)."""

    def __init__(self, steps: list | None = None):
        self.steps = list(steps or [])
        for before, after in zip(self.steps, self.steps[1:]):
            after._run_after.append(before)


class _Unsupported:
    _what = ""

    def __init__(self, *args: Any, **kwargs: Any):
        raise NotSupported(f"{type(self).__name__}: {self._what}")


class PublishedPipeline(_Unsupported):
    _what = "published pipelines are Azure ML studio's; run the pipeline again with pipeline.submit(...)"


class PipelineEndpoint(PublishedPipeline):
    pass


class Schedule(_Unsupported):
    _what = "schedules are Azure ML studio's; run the pipeline from a notebook or a cron job (pipeline.submit(...))"


class ScheduleRecurrence(Schedule):
    pass


class EstimatorStep(_Unsupported):
    _what = "use PythonScriptStep(script_name=..., source_directory=..., runconfig=...)"


class HyperDriveStep(_Unsupported):
    _what = "run the sweep on its own (exp.submit(HyperDriveConfig(...))) and pass its best model on"


class AutoMLStep(_Unsupported):
    _what = "run AutoML on its own (exp.submit(AutoMLConfig(...))) and pass its best model on"


from .api import Run as PipelineRun  # noqa: E402  (the run a pipeline returns: get_steps(), find_step_run(name))

StepRun = PipelineRun
