"""``azureml.train.estimator`` / ``azureml.train.sklearn``: v1's estimators — a script with ``script_params``
and packages — are ScriptRunConfigs here (the same run, the same environment rule)."""
from __future__ import annotations

from typing import Any

from ..core.errors import InvalidInput
from . import note_once, unknown_settings
from .api import ScriptRunConfig

__all__ = ["Estimator", "SKLearn", "PyTorch", "TensorFlow", "Chainer"]


class Estimator(ScriptRunConfig):
    """``Estimator(source_directory, compute_target, entry_script, script_params, conda_packages, pip_packages,
    environment_definition)``."""

    _framework: tuple[str, ...] = ()

    def __init__(self, source_directory: str = ".", *, compute_target: Any = None, vm_size: str | None = None,
                 vm_priority: str | None = None, entry_script: str | None = None,
                 script_params: dict | None = None, arguments: list | None = None, use_gpu: bool = False,
                 use_docker: bool = True, custom_docker_image: str | None = None, image_registry_details: Any = None,
                 user_managed: bool = False, conda_packages: list | None = None, pip_packages: list | None = None,
                 conda_dependencies_file: str | None = None, pip_requirements_file: str | None = None,
                 environment_variables: dict | None = None, environment_definition: Any = None,
                 inputs: list | None = None, framework_version: str | None = None,
                 conda_dependencies_file_path: str | None = None, pip_requirements_file_path: str | None = None,
                 custom_docker_base_image: str | None = None, **other: Any):
        from .environment import CondaDependencies, Environment

        unknown_settings(type(self).__name__, Estimator.__init__, other)
        # v1's older names of the same two files (deprecated there, still in notebooks)
        conda_dependencies_file = conda_dependencies_file or conda_dependencies_file_path
        pip_requirements_file = pip_requirements_file or pip_requirements_file_path

        if not entry_script:
            raise InvalidInput("Estimator(…, entry_script='train.py'): the script to run is required")
        if script_params is not None and not isinstance(script_params, dict):
            raise InvalidInput("script_params takes a dict, like {'--regularization': 0.5}")
        args: list[Any] = []
        for key, value in (script_params or {}).items():
            args.append(key)
            if value is not None and value != "":
                args.append(value)
        args += list(arguments or [])
        env = environment_definition
        if env is None:
            env = Environment(f"{type(self).__name__.lower()}-env")
            if conda_dependencies_file:
                env.python.conda_dependencies = CondaDependencies(conda_dependencies_file)
            deps = env.python.conda_dependencies
            for p in (*self._framework, *(conda_packages or [])):
                deps.add_conda_package(p)
            for p in pip_packages or []:
                deps.add_pip_package(p)
            if pip_requirements_file:
                for p in Environment.from_pip_requirements("r", pip_requirements_file).python.conda_dependencies \
                        .pip_packages:
                    deps.add_pip_package(p)
            env.python.user_managed_dependencies = user_managed
        if use_gpu:
            note_once("gpu", "use_gpu=True is accepted; runs here use whatever the machine has")
        if environment_variables:
            env.environment_variables.update(environment_variables)
        super().__init__(source_directory=source_directory, script=entry_script, arguments=args,
                         compute_target=compute_target, environment=env)


class SKLearn(Estimator):
    _framework = ("scikit-learn",)


class PyTorch(Estimator):
    _framework = ("torch",)


class TensorFlow(Estimator):
    _framework = ("tensorflow",)


class Chainer(Estimator):
    _framework = ("chainer",)
