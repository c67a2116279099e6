"""``azureml.train.hyperdrive``: ``HyperDriveConfig`` over our sweeps. The parameter expressions are HyperDrive's
own (``choice``, ``uniform``, ``loguniform`` …, the same meaning); parameters named like ``--learning-rate`` reach
the script as that argument, as in v1."""
from __future__ import annotations

import re
from typing import Any

from ..core import checks
from ..core.errors import InvalidInput
from ..sweep.policies import Policy
from ..sweep.settings import sweep_submission
from ..sweep.space import (Expression, choice, loguniform, lognormal, normal, qloguniform, qlognormal, qnormal,
                           quniform, randint, uniform)
from . import note_once, unknown_settings

__all__ = ["HyperDriveConfig", "RandomParameterSampling", "GridParameterSampling", "BayesianParameterSampling",
           "BanditPolicy", "MedianStoppingPolicy", "TruncationSelectionPolicy", "NoTerminationPolicy",
           "PrimaryMetricGoal", "choice", "randint", "uniform", "quniform", "loguniform", "qloguniform", "normal",
           "qnormal", "lognormal", "qlognormal", "HyperDriveRun"]


class PrimaryMetricGoal:
    MAXIMIZE = "MAXIMIZE"
    MINIMIZE = "MINIMIZE"


class _Sampling:
    kind = "random"

    def __init__(self, parameter_space: dict, properties: dict | None = None, **settings: Any):
        if not isinstance(parameter_space, dict) or not parameter_space:
            raise InvalidInput(f"{type(self).__name__}({{'--lr': uniform(0.01, 0.1), …}}): give the parameters")
        for name, expr in parameter_space.items():
            if not isinstance(expr, Expression):
                raise InvalidInput(f"parameter {name!r}: use choice(…), uniform(…), loguniform(…) … from "
                                   "azureml.train.hyperdrive, not {type(expr).__name__}")
        self.parameter_space = dict(parameter_space)
        self.seed = (properties or {}).get("seed") if properties else settings.get("seed")


class RandomParameterSampling(_Sampling):
    kind = "random"


class GridParameterSampling(_Sampling):
    kind = "grid"


class BayesianParameterSampling(_Sampling):
    kind = "bayesian"


class _Termination:
    def policy(self) -> Policy | None:
        raise NotImplementedError


class BanditPolicy(_Termination):
    def __init__(self, evaluation_interval: int = 1, slack_factor: float | None = None,
                 slack_amount: float | None = None, delay_evaluation: int = 0):
        self._policy = Policy("bandit", evaluation_interval=evaluation_interval, delay_evaluation=delay_evaluation,
                              slack_factor=slack_factor, slack_amount=slack_amount).validate()

    def policy(self):
        return self._policy


class MedianStoppingPolicy(_Termination):
    def __init__(self, evaluation_interval: int = 1, delay_evaluation: int = 0):
        self._policy = Policy("median", evaluation_interval=evaluation_interval,
                              delay_evaluation=delay_evaluation).validate()

    def policy(self):
        return self._policy


class TruncationSelectionPolicy(_Termination):
    def __init__(self, truncation_percentage: int, evaluation_interval: int = 1, delay_evaluation: int = 0,
                 exclude_finished_jobs: bool = False):
        self._policy = Policy("truncation", evaluation_interval=evaluation_interval, delay_evaluation=delay_evaluation,
                              truncation_percentage=truncation_percentage).validate()

    def policy(self):
        return self._policy


class NoTerminationPolicy(_Termination):
    def policy(self):
        return None


class HyperDriveConfig:
    """``HyperDriveConfig(run_config=ScriptRunConfig | estimator=Estimator, hyperparameter_sampling, policy,
    primary_metric_name, primary_metric_goal, max_total_runs, max_concurrent_runs, max_duration_minutes)``."""

    def __init__(self, hyperparameter_sampling: _Sampling, primary_metric_name: str, primary_metric_goal: str,
                 max_total_runs: int, max_concurrent_runs: int | None = None, max_duration_minutes: int = 10080,
                 policy: _Termination | None = None, estimator: Any = None, run_config: Any = None,
                 resume_from: Any = None, resume_child_runs: Any = None, pipeline: Any = None, debug_flag: Any = None,
                 custom_run_id: Any = None, **other: Any):
        unknown_settings("HyperDriveConfig", HyperDriveConfig.__init__, other)
        if not isinstance(hyperparameter_sampling, _Sampling):
            raise InvalidInput("hyperparameter_sampling takes RandomParameterSampling({…}), GridParameterSampling or "
                               "BayesianParameterSampling")
        trial = run_config if run_config is not None else estimator
        if trial is None or not hasattr(trial, "_submission"):
            raise InvalidInput("HyperDriveConfig needs run_config=ScriptRunConfig(…) (or estimator=…)")
        if not isinstance(primary_metric_name, str) or not primary_metric_name.strip():
            raise InvalidInput(f"primary_metric_name={checks.shown(primary_metric_name)}: give the name of the "
                               "metric the trials log, like 'accuracy'")
        goal = str(primary_metric_goal).upper().rsplit(".", 1)[-1]
        if goal not in ("MAXIMIZE", "MINIMIZE"):
            raise InvalidInput(f"primary_metric_goal={primary_metric_goal!r}: use PrimaryMetricGoal.MAXIMIZE or "
                               "MINIMIZE")
        for label, value in (("max_total_runs", max_total_runs),
                             ("max_concurrent_runs", 1 if max_concurrent_runs is None else max_concurrent_runs)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInput(f"{label}={value!r}: a whole number ≥ 1")
        max_duration_minutes = checks.positive("max_duration_minutes", max_duration_minutes)
        if pipeline is not None:
            raise InvalidInput("HyperDriveConfig(pipeline=…) is not supported here: sweep a ScriptRunConfig")
        self.sampling, self.trial, self.primary_metric_name = hyperparameter_sampling, trial, primary_metric_name
        self.goal = "max" if goal == "MAXIMIZE" else "min"
        self.max_total_runs, self.max_concurrent_runs = max_total_runs, max_concurrent_runs or 1
        self.max_duration_minutes = max_duration_minutes
        self.policy = policy.policy() if isinstance(policy, _Termination) else None
        if policy is not None and not isinstance(policy, _Termination):
            raise InvalidInput("policy takes BanditPolicy(…), MedianStoppingPolicy(…) or TruncationSelectionPolicy(…)")

    def _aml_submit(self, experiment: Any, tags: dict | None = None, **_ignored: Any):
        trial = self.trial._submission(experiment, tags)
        space, args = {}, list(trial.args)
        for name, expr in self.sampling.parameter_space.items():
            key = _identifier(name)
            if key in space:
                raise InvalidInput(f"parameters {name!r} and another both become {key!r}; rename one")
            space[key] = expr
            args += [name if name.startswith("-") else f"--{name}", "{" + key + "}"]
        trial.args = args
        if self.sampling.kind == "bayesian" and self.policy is not None:
            note_once("bayes-policy", "Bayesian sampling takes no early-termination policy (as in v1): ignored")
        sub = sweep_submission(trial, space, primary_metric=self.primary_metric_name, goal=self.goal,
                               sampling=self.sampling.kind, max_trials=self.max_total_runs,
                               parallel=self.max_concurrent_runs,
                               policy=None if self.sampling.kind == "bayesian" else self.policy,
                               timeout_s=self.max_duration_minutes * 60, seed=self.sampling.seed)
        return experiment.workspace.client.runs.submit(sub)


def _identifier(name: str) -> str:
    key = re.sub(r"\W+", "_", str(name).lstrip("-")).strip("_")
    if not key or key[0].isdigit():
        raise InvalidInput(f"parameter name {name!r}: use a name like '--learning-rate' or 'lr'")
    return key


def __getattr__(name: str):
    if name == "HyperDriveRun":
        from .api import Run

        return Run
    raise AttributeError(name)
