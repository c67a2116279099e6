"""Turn what a user asked for into a sweep run's submission, refusing bad settings before anything starts."""
from __future__ import annotations

from dataclasses import replace

from ..core import checks
from ..core.errors import InvalidInput
from ..core.specs import SweepSpec, TrialTemplate
from ..core.types import RunSubmission
from .policies import Policy
from .space import Expression, format_args, grid_size, space_to_json

SAMPLINGS = ("random", "grid", "bayesian")


def sweep_submission(
    trial: RunSubmission,
    space: dict[str, Expression],
    *,
    primary_metric: str,
    goal: str = "max",
    sampling: str = "random",
    max_trials: int | None = None,
    parallel: int = 1,
    policy: Policy | None = None,
    timeout_s: float | None = None,
    max_failures: int = 5,
    seed: int | None = None,
    spans: list | None = None,
) -> RunSubmission:
    """The submission of a sweep whose trials are ``trial`` (a cell, script or notebook submission)
    with the parameters of ``space``."""
    import importlib.util

    if importlib.util.find_spec("optuna") is None:
        raise InvalidInput("sweeps need Optuna: pip install 'aml-magics[automl]'")
    if not space:
        raise InvalidInput("the sweep has no parameters: declare them in the cell (C = choice(0.1, 1, 10)) "
                           "or pass --param \"C=choice(0.1,1,10)\"")
    if not primary_metric:
        raise InvalidInput("give the primary metric the trials log: --metric accuracy")
    # the sweep logs it as trial_METRIC, a metric name too (before, a long one failed the sweep after it had started)
    checks.text("the primary metric", primary_metric, max_len=checks.MAX_KEY - len("trial_"))
    goal = {"maximize": "max", "minimize": "min"}.get(goal, goal)
    if goal not in ("max", "min"):
        raise InvalidInput(f"--goal {goal!r}: use max or min")
    if sampling not in SAMPLINGS:
        raise InvalidInput(f"--sampling {sampling!r}: use {', '.join(SAMPLINGS)}")
    if sampling == "grid":
        size = grid_size(space)
        if max_trials is not None and max_trials > size:
            import sys

            print(f"Note: the grid has {size:,} points, so the sweep runs {size:,} trials, not {max_trials:,}.",
                  file=sys.stderr)
        max_trials = min(max_trials or size, size)
    max_trials = 20 if max_trials is None else max_trials
    if max_trials < 1:
        raise InvalidInput("--trials must be at least 1")
    if parallel < 1:
        raise InvalidInput("--parallel must be at least 1")
    if max_failures < 1:
        raise InvalidInput("--max-failures must be at least 1")
    if timeout_s is not None and timeout_s <= 0:
        raise InvalidInput("--timeout must be a positive number of seconds")
    if trial.timeout_s is not None:
        checks.positive("trial timeout", trial.timeout_s, checks.MAX_TIMEOUT_S)
    if trial.out_vars:
        raise InvalidInput("--out does not apply to sweeps: each trial is its own run (use outputs/ files)")
    if trial.args:  # a template naming something that is not a parameter is refused now, not at the first trial
        format_args(list(trial.args), {k: 0 for k in space})
        if trial.kind == "script":  # a parameter the arguments never name does not reach the script: a sweep of it
            # ran every trial the same, and "found" a best value of something that changed nothing
            written = "\n".join(format_args(list(trial.args), {k: f"\x00{k}\x00" for k in space}))
            unused = [k for k in space if f"\x00{k}\x00" not in written]
            if unused:
                raise InvalidInput(f"the script's arguments never name {', '.join('{' + k + '}' for k in unused)}, so "
                                   f"the trials would not differ in {', '.join(unused)}: write it where it goes (like "
                                   f"-- --{unused[0]} {{{unused[0]}}}), or give no arguments to pass every parameter "
                                   "as --NAME VALUE")
    if trial.kind == "notebook":
        trial.parameters = checks.notebook_parameters("notebook parameters", trial.parameters)
        clash = sorted(set(space) & set(trial.parameters))
        if clash:
            raise InvalidInput(f"{', '.join(clash)} is both a sweep parameter and a fixed -p parameter")
    engine = SweepSpec(
        primary_metric=primary_metric, goal=goal, sampling=sampling, max_trials=max_trials, parallel=parallel,
        policy=policy.validate().__dict__ if policy else None, timeout_s=timeout_s, trial_timeout_s=trial.timeout_s,
        max_failures=max_failures,
        seed=seed, space=space_to_json(space), compute=trial.compute, inputs=dict(trial.inputs),
        template=TrialTemplate(kind=trial.kind, entry=trial.entry, code=trial.code, spans=[list(s) for s in spans or []],
                               args=list(trial.args), parameters=dict(trial.parameters)))
    tags = {"sweep.sampling": sampling, "sweep.primary_metric": f"{primary_metric} ({goal})",
            **({"sweep.early_stop": policy.kind} if policy else {}), **trial.tags}
    return replace(trial, kind="sweep", code=None, args=[], parameters={}, tags=tags, engine=engine, timeout_s=None,
                   params={k: _clipped(str(e)) for k, e in space.items()})


def _clipped(text: str) -> str:
    """A search space shown as the sweep run's param: a choice of thousands of values is cut at the param limit (the
    whole space is in the sweep's spec)."""
    return text if len(text) <= checks.MAX_PARAM_VALUE else text[:checks.MAX_PARAM_VALUE - 1] + "…"
