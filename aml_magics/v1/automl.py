"""``azureml.train.automl``: ``AutoMLConfig`` over our AutoML (FLAML on the local workspace, Azure ML's AutoML
job after ``%aml connect``). The run it returns is v1-shaped: ``get_output(metric=…, iteration=…)``,
``get_best_run_by_primary_metric``, ``get_children``, ``continue_experiment``; the fitted model is a
scikit-learn ``Pipeline``."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..automl.settings import automl_submission
from ..core import checks
from ..core.errors import Conflict, InvalidInput, NotSupported
from . import note_once, unknown_settings

__all__ = ["AutoMLConfig", "AutoMLRun", "ForecastingParameters", "explain_model", "retrieve_model_explanation"]

_TASKS = {"classification": "classification", "regression": "regression", "forecasting": "forecasting"}


class ForecastingParameters:
    def __init__(self, time_column_name: str | None = None, forecast_horizon: int | str = 1,
                 time_series_id_column_names: Any = None, **other: Any):
        unknown_settings("ForecastingParameters", ForecastingParameters.__init__, other)
        if time_series_id_column_names:
            note_once("grain", "time_series_id_column_names is not supported here: one series is forecast")
        self.time_column_name, self.forecast_horizon = time_column_name, forecast_horizon


class AutoMLConfig:
    """v1's ``AutoMLConfig(task, primary_metric, training_data | X+y, label_column_name, …)``."""

    def __init__(self, task: str, path: str | None = None, iterations: int | None = None,
                 primary_metric: str | None = None, compute_target: Any = None, spark_context: Any = None,
                 X: Any = None, y: Any = None, sample_weight: Any = None, X_valid: Any = None, y_valid: Any = None,
                 cv_splits_indices: Any = None, validation_size: float | None = None,
                 n_cross_validations: int | None = None, y_min: Any = None, y_max: Any = None,
                 num_classes: Any = None, featurization: Any = "auto", max_cores_per_iteration: int = 1,
                 max_concurrent_iterations: int = 1, iteration_timeout_minutes: Any = None,
                 mem_in_mb: Any = None, enforce_time_on_windows: Any = None,
                 experiment_timeout_hours: float | None = None, experiment_timeout_minutes: float | None = None,
                 experiment_exit_score: Any = None, enable_early_stopping: bool = True,
                 blocked_models: Any = None, blacklist_models: Any = None, exclude_nan_labels: bool = True,
                 verbosity: Any = None, enable_tf: bool = False, model_explainability: bool = True,
                 allowed_models: Any = None, whitelist_models: Any = None, enable_onnx_compatible_models: bool = False,
                 enable_voting_ensemble: bool = True, enable_stack_ensemble: Any = None, debug_log: Any = None,
                 training_data: Any = None, validation_data: Any = None, test_data: Any = None,
                 label_column_name: str | None = None, weight_column_name: str | None = None,
                 time_column_name: str | None = None, max_horizon: int | None = None,
                 forecasting_parameters: ForecastingParameters | None = None, **other: Any):
        unknown_settings("AutoMLConfig", AutoMLConfig.__init__, other)  # v1 warns of them and goes on
        task = _TASKS.get(str(task).lower())
        if task is None:
            raise InvalidInput("AutoMLConfig(task=…): use 'classification', 'regression' or 'forecasting'")
        if training_data is None and X is None:
            raise InvalidInput("AutoMLConfig needs training_data=… (a DataFrame or a TabularDataset) with "
                               "label_column_name=…, or X=… and y=…")
        if training_data is not None and not label_column_name:
            raise InvalidInput("AutoMLConfig(training_data=…) needs label_column_name='the column to predict'")
        if validation_data is not None or X_valid is not None:
            note_once("validation_data", "validation_data is not used here: AutoML validates on a holdout of the "
                                         "training data (validation_size) or by cross-validation")
        if experiment_timeout_minutes is not None:  # a number: "1" (a string) was 111…1 minutes ("1" * 60)
            experiment_timeout_minutes = checks.positive("experiment_timeout_minutes", experiment_timeout_minutes)
        elif experiment_timeout_hours is not None:
            experiment_timeout_minutes = checks.positive("experiment_timeout_hours", experiment_timeout_hours) * 60
        for label, value in (("iterations", iterations), ("n_cross_validations", n_cross_validations),
                             ("max_concurrent_iterations", max_concurrent_iterations)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise InvalidInput(f"{label}={value!r}: a whole number ≥ 1")
        if forecasting_parameters is not None:
            time_column_name = time_column_name or forecasting_parameters.time_column_name
            max_horizon = max_horizon or forecasting_parameters.forecast_horizon
        self.task, self.primary_metric, self.iterations = task, primary_metric, iterations
        self.compute_target, self.training_data, self.label_column_name = compute_target, training_data, \
            label_column_name
        self.X, self.y = X, y
        self.validation = (f"cv:{n_cross_validations}" if n_cross_validations else
                           (validation_size if validation_size else "auto"))
        self.budget_s = None if experiment_timeout_minutes is None else float(experiment_timeout_minutes) * 60
        self.allowed = allowed_models or whitelist_models
        self.blocked = blocked_models or blacklist_models
        self.featurization = str(featurization).lower() != "off" if not isinstance(featurization, bool) \
            else featurization
        self.ensemble = bool(enable_voting_ensemble)
        self.time_column_name = time_column_name
        self.horizon = int(max_horizon) if isinstance(max_horizon, (int, float)) and max_horizon else None
        self.max_concurrent_iterations = max_concurrent_iterations
        # False goes to Azure ML as limitSettings.enableEarlyTermination (True is the service's default); the local
        # search never stops early, so there it is what happens anyway
        self.early_termination = None if enable_early_stopping is None or enable_early_stopping else False
        if enable_onnx_compatible_models:
            note_once("onnx", "enable_onnx_compatible_models is accepted; models here are scikit-learn Pipelines")

    def _submission(self, experiment: Any, tags: dict | None = None, budget_s: float | None = None,
                    iterations: int | None = None, X: Any = None, y: Any = None, training_data: Any = None):
        from .api import _v1_env
        from .compute import compute_name

        client = experiment.workspace.client
        training = training_data if training_data is not None else self.training_data
        X = X if X is not None else self.X
        y = y if y is not None else self.y
        in_values: dict[str, Any] = {}
        if training is not None and hasattr(training, "_automl_data"):
            data, in_memory, extra = training._automl_data()
            in_values.update(extra)
        elif training is not None:
            data, in_memory = "training_data", True
            in_values["training_data"] = training
        else:
            data, in_memory = "training_data", True
            label = self.label_column_name or "y"
            X, label = _frame_with_label(X, y, label)
            in_values["training_data"] = X
            self.label_column_name = label
        return automl_submission(
            data=data, in_memory=in_memory, task=self.task, label=self.label_column_name, metric=self.primary_metric,
            budget_s=budget_s if budget_s is not None else self.budget_s,
            max_trials=iterations if iterations is not None else self.iterations, validation=self.validation,
            allowed=self.allowed, blocked=self.blocked, featurization=self.featurization, ensemble=self.ensemble,
            time_column=self.time_column_name, horizon=self.horizon, client=client,
            early_termination=self.early_termination,
            source_dir=Path(os.getcwd()), experiment=experiment.name,
            compute=compute_name(client, self.compute_target), in_values=in_values,
            tags={k: str(v) for k, v in (tags or {}).items()}, environment_variables=_v1_env())

    def _aml_submit(self, experiment: Any, tags: dict | None = None, show_output: bool = False, **_ignored: Any):
        run = experiment.workspace.client.runs.submit(self._submission(experiment, tags))
        _configs[run.id] = self
        if show_output:
            run.wait_for_completion(show_output=True)
        return run


_configs: dict[str, AutoMLConfig] = {}  # run id → the config it was submitted with (continue_experiment)


def _frame_with_label(X: Any, y: Any, label: str):
    """v1's X and y as one table (a DataFrame with the label column), what our AutoML trains on."""
    import pandas as pd

    if y is None:
        raise InvalidInput("AutoMLConfig(X=…) needs y=… (the labels)")
    frame = X.copy() if isinstance(X, pd.DataFrame) else pd.DataFrame(X)
    frame.columns = [str(c) if not isinstance(c, int) else f"feature_{c}" for c in frame.columns]
    if label in frame.columns:
        label = f"{label}_label"
    values = y.values if hasattr(y, "values") else y
    if len(values) != len(frame):
        raise InvalidInput(f"X has {len(frame)} rows and y {len(values)}: give one label per row")
    frame[label] = list(values.ravel() if hasattr(values, "ravel") else values)
    return frame, label


def child_output(run: Any, metric: str | None = None, iteration: int | None = None):
    """(child run, its model) of an AutoML run: the trial ``iteration`` (0-based, in the order they ran), or the
    best by ``metric``."""
    import pickle

    from .api import _v1_run

    children = sorted(run.get_children(), key=lambda c: (c.get_info().created or 0, c.id))
    if not children:
        raise Conflict(f"AutoML run {run.id} has no child runs yet; wait for it: run.wait_for_completion()")
    if iteration is not None:
        if isinstance(iteration, bool) or not isinstance(iteration, int) or not 0 <= iteration < len(children):
            raise InvalidInput(f"iteration={iteration!r}: this run has iterations 0–{len(children) - 1}")
        chosen = children[iteration]
    else:
        from ..core.specs import metric_goal

        scored = [(c, c.get_metrics().get(metric)) for c in children]
        scored = [(c, v[-1] if isinstance(v, list) else v) for c, v in scored]
        scored = [(c, v) for c, v in scored if isinstance(v, (int, float))]
        if not scored:
            raise InvalidInput(f"no child run of {run.id} logged {metric!r}")
        best = max if metric_goal(metric) == "max" else min
        chosen = best(scored, key=lambda cv: cv[1])[0]
    from ..automl.refit import child_model

    path = child_model(run.client, run.id, chosen.id)  # a trial that kept no model: fitted once now, then kept
    with open(path, "rb") as f:
        model = pickle.load(f)
    return _v1_run(chosen), as_pipeline(model)


def as_pipeline(model: Any):
    """The fitted AutoML model as v1 gave it: a scikit-learn ``Pipeline`` (``.steps``, ``predict``,
    ``predict_proba``, usable by scikit-learn's tools), whose one step is our fitted model (featurization and the
    chosen algorithm or ensemble inside)."""
    from sklearn.pipeline import Pipeline

    if isinstance(model, Pipeline):
        return model
    return Pipeline([("prefitted_automl_model", PrefittedAutoMLModel(model))])


def _prefitted_base():
    from sklearn.base import BaseEstimator

    return BaseEstimator


class PrefittedAutoMLModel(_prefitted_base()):
    """A fitted AutoML model as a scikit-learn estimator. ``fit`` keeps it as it is (it was fitted by the AutoML
    run; refitting is a new AutoML run)."""

    def __init__(self, model: Any = None):
        self.model = model

    def fit(self, X: Any = None, y: Any = None, **_ignored: Any) -> "PrefittedAutoMLModel":
        return self

    def predict(self, X: Any):
        return self.model.predict(X)

    def predict_proba(self, X: Any):
        return self.model.predict_proba(X)

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Accuracy (classification) or R² (regression), as scikit-learn's classifiers and regressors score."""
        from sklearn.metrics import accuracy_score, r2_score

        measure = accuracy_score if self.classes_ is not None else r2_score
        return float(measure(y, self.predict(X), sample_weight=sample_weight))

    @property
    def classes_(self):
        return getattr(self.model, "classes_", None)

    def __sklearn_is_fitted__(self) -> bool:
        return True

    def __repr__(self) -> str:
        return f"PrefittedAutoMLModel({self.model!r})"


def continue_automl(run: Any, X: Any = None, y: Any = None, training_data: Any = None,
                    experiment_timeout_minutes: float | None = None, iterations: int | None = None):
    config = _configs.get(run.id) or _stored_config(run)
    from .api import Experiment, _v1_run

    experiment = Experiment(run.experiment.workspace, run.experiment.name)
    budget = None if experiment_timeout_minutes is None else experiment_timeout_minutes * 60
    sub = config._submission(experiment, {"continued_from": run.id}, budget_s=budget, iterations=iterations, X=X,
                             y=y, training_data=training_data)
    new = experiment.workspace.client.runs.submit(sub)
    _configs[new.id] = config
    return _v1_run(new)


def _stored_config(run: Any) -> AutoMLConfig:
    """The AutoMLConfig of an AutoML run as the workspace keeps it (its settings, its training data): what
    continue_experiment() resubmits after a kernel restart, when the config object is gone."""
    import pickle

    client = run.client
    info = client.runs.get(run.id)
    settings = (info.spec or {}).get("settings")
    path = getattr(client.backend, "path", None)
    if not settings or info.kind != "automl" or path is None or client.capabilities.remote:
        raise NotSupported(f"continue_experiment() of run {run.id} needs its AutoMLConfig: submit the AutoMLConfig "
                           "again (on Azure ML the service keeps no v1 config to continue from)")
    from ..core.specs import AutoMLSpec
    from .data import Datastore, TabularDataset

    spec = AutoMLSpec.from_settings(settings)
    ref, folder = spec.data, Path(path) / "runs" / run.id
    data: dict[str, Any] = {}
    if ref["kind"] == "memory":
        import cloudpickle  # noqa: F401 - the notebook's values were pickled with it

        try:
            with open(folder / "io" / "in.pkl", "rb") as f:
                values = pickle.load(f)
        except OSError as exc:
            raise NotSupported(f"the training data of run {run.id} is no longer in the workspace ({exc.strerror}); "
                               "pass it: continue_experiment(X=…, y=…) or training_data=…") from None
        frame = values.get("training_data")
        if ref.get("label_variable"):
            data = {"X": frame, "y": values[ref["label_variable"]]}
        else:
            data = {"training_data": frame}
    elif ref["kind"] == "file":
        file = Path(ref["path"]) if Path(ref["path"]).is_absolute() else folder / "snapshot" / ref["path"]
        data = {"training_data": TabularDataset([str(file)])}
    else:
        store, _, rel = str(ref.get("display", "")).removeprefix("datastore:").partition("/")
        data = {"training_data": TabularDataset([Datastore.get(run.experiment.workspace, store).path(rel)])}
    plan = spec.validation or {"method": "auto"}
    config = AutoMLConfig(
        task=spec.task, primary_metric=spec.primary_metric, label_column_name=spec.label,
        compute_target=info.compute, iterations=spec.max_trials,
        experiment_timeout_minutes=None if spec.budget_s is None else spec.budget_s / 60,
        n_cross_validations=plan.get("folds") if plan["method"] == "cv" else None,
        validation_size=plan.get("fraction") if plan["method"] == "holdout" else None,
        allowed_models=list(spec.learners) if spec.learners_restricted else None, featurization=spec.featurization,
        enable_voting_ensemble=spec.ensemble, time_column_name=spec.time_column, max_horizon=spec.horizon,
        enable_early_stopping=spec.early_termination is not False, **data)
    _configs[run.id] = config
    return config


def explain_model(fitted_model: Any, X_train: Any, X_test: Any, best_run: Any = None, features: Any = None,
                  y_train: Any = None, **_ignored: Any):
    """Feature importances of a fitted pipeline (permutation importance on the training data and ``y_train``), in
    v1's ``(shap_values, expected_values, overall_summary, overall_imp, per_class_summary, per_class_imp)`` shape
    with what a permutation gives: the overall importances (largest first) and their feature names."""
    imp = _importances(fitted_model, X_train, y_train)
    names = [n for n, _ in imp]
    values = [v for _, v in imp]
    return None, None, values, names, None, None


def retrieve_model_explanation(run: Any, child_run: Any = None, **_ignored: Any):
    """The feature importances the AutoML run measured for its best model (its ``feature_importance`` table), as
    v1's ``(overall_summary, overall_imp, per_class_summary, per_class_imp)``: importances largest first, their
    feature names, and no per-class split."""
    for candidate in (run, getattr(run, "parent", None)):
        if candidate is None:
            continue
        table = candidate.get_metrics().get("feature_importance")
        if isinstance(table, dict) and table.get("feature"):
            return list(table["importance"]), list(table["feature"]), None, None
    raise NotSupported(f"run {run.id} has no feature importances (only a completed AutoML run logs them); "
                       "measure them with explain_model(fitted_model, X_train, X_test, y_train=…)")


def _importances(model: Any, X_train: Any, y: Any) -> list[tuple[str, float]]:
    import pandas as pd
    from sklearn.inspection import permutation_importance

    if y is None:
        raise InvalidInput("explain_model(…, y_train=…): the training labels are needed to measure importance")
    X = X_train if isinstance(X_train, pd.DataFrame) else pd.DataFrame(X_train)
    result = permutation_importance(model, X, y, n_repeats=5, random_state=0)
    pairs = sorted(zip(map(str, X.columns), result.importances_mean), key=lambda p: -p[1])
    return [(n, float(v)) for n, v in pairs]


def __getattr__(name: str):
    if name == "AutoMLRun":
        from .api import Run

        return Run
    raise AttributeError(name)
