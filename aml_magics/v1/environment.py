"""``azureml.core.environment`` and ``azureml.core.conda_dependencies``: v1 environments as package lists.

A run or service from a v1 notebook uses the kernel's own Python when every package the environment names is
already installed in it (said once): no rebuild, no download — the case of the curated environments the
tutorials use (``AzureML-sklearn-…``, ``AzureML-Minimal``, ``AzureML-Tutorial``), which are mapped to this
interpreter with a note. An environment naming packages the kernel lacks is registered as one of ours and runs in
its own cached virtualenv (``%aml env``); on Azure ML it becomes an environment version from its conda file."""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from ..core import checks
from ..core.errors import InvalidInput
from ..core.specs import conda_as_pip
from . import client_of, note_once, unknown_settings

__all__ = ["Environment", "CondaDependencies", "DockerSection", "PythonSection", "EnvironmentReference"]

#: Azure ML's curated environment names the v1 tutorials use (prefixes): here, the kernel's own Python
CURATED_PREFIXES = ("AzureML-",)


class CondaDependencies:
    """The conda and pip packages of an environment (``CondaDependencies.create(...)``, ``add_conda_package``,
    ``add_pip_package``, ``serialize_to_string``)."""

    def __init__(self, conda_dependencies_file_path: str | None = None, _underlying_structure: Any = None):
        self.conda_packages: list[str] = []
        self.pip_packages: list[str] = []
        self.channels: list[str] = ["conda-forge"]
        self.python_version: str | None = None
        if conda_dependencies_file_path:
            checks.existing_file("conda specification", conda_dependencies_file_path, "the environment .yml file")
            self._read(Path(conda_dependencies_file_path))

    @classmethod
    def create(cls, pip_packages: list[str] | None = None, conda_packages: list[str] | None = None,
               python_version: str | None = None, pin_sdk_version: bool = True, pip_indexurl: str | None = None,
               channels: list[str] | None = None, **_ignored: Any) -> "CondaDependencies":
        deps = cls()
        for p in _listed(conda_packages):  # a single string is one package, not a list of letters
            deps.add_conda_package(p)
        for p in _listed(pip_packages):
            deps.add_pip_package(p)
        if channels:
            deps.channels = _listed(channels)
        deps.python_version = python_version
        return deps

    def _read(self, path: Path) -> None:
        import yaml

        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise InvalidInput(f"cannot read conda file {path}: {checks.yaml_error(exc)}") from None
        checks.yaml_size(data, str(path))
        if not isinstance(data, dict):
            raise InvalidInput(f"{path} is not a conda environment file (it needs a 'dependencies:' list)")
        self.channels = list(data.get("channels") or self.channels)
        for dep in data.get("dependencies") or []:
            if isinstance(dep, dict):
                for p in dep.get("pip") or []:
                    self.add_pip_package(str(p))
            elif str(dep).split("=")[0].strip() == "python":
                self.python_version = str(dep).split("=", 1)[1].lstrip("=") if "=" in str(dep) else None
            elif str(dep).strip() != "pip":
                self.add_conda_package(str(dep))

    def add_conda_package(self, conda_package: str) -> None:
        _check_package(conda_package)
        if conda_package not in self.conda_packages:
            self.conda_packages.append(conda_package)

    def add_pip_package(self, pip_package: str) -> None:
        _check_package(pip_package, pip=True)
        if pip_package not in self.pip_packages:
            self.pip_packages.append(pip_package)

    def remove_pip_package(self, pip_package: str) -> None:
        self.pip_packages = [p for p in self.pip_packages if _name(p) != _name(pip_package)]

    def remove_conda_package(self, conda_package: str) -> None:
        self.conda_packages = [p for p in self.conda_packages if _name(p) != _name(conda_package)]

    def add_channel(self, channel: str) -> None:
        if channel not in self.channels:
            self.channels.append(channel)

    def set_python_version(self, version: str) -> None:
        self.python_version = version

    def requirements(self) -> list[str]:
        """Everything as pip requirements (conda's ``name=1.2`` pins become ``name==1.2``)."""
        out = [p for p in map(conda_as_pip, self.conda_packages) if p is not None]
        return out + [p for p in self.pip_packages if not p.startswith("azureml")]

    def serialize_to_string(self) -> str:
        import yaml

        deps: list[Any] = [f"python={self.python_version}"] if self.python_version else []
        deps += self.conda_packages + (["pip", {"pip": self.pip_packages}] if self.pip_packages else [])
        return yaml.safe_dump({"name": "project_environment", "channels": self.channels, "dependencies": deps},
                              sort_keys=False)

    def save(self, path: str | None = None) -> str:
        target = Path(path or "conda_dependencies.yml")
        target.write_text(self.serialize_to_string(), encoding="utf-8")
        return str(target)

    def save_to_file(self, base_directory: str = ".", conda_file_path: str = "conda_dependencies.yml") -> str:
        return self.save(str(Path(base_directory) / conda_file_path))

    def __repr__(self) -> str:
        return f"CondaDependencies(conda={self.conda_packages}, pip={self.pip_packages})"


class DockerSection:
    """Docker settings: accepted and noted (runs here are processes; a service's image is `%aml deploy --image`)."""

    def __init__(self) -> None:
        object.__setattr__(self, "_values", {"enabled": False, "base_image": None, "base_dockerfile": None,
                                             "shm_size": None, "arguments": []})

    def __getattr__(self, name: str):
        values = object.__getattribute__(self, "_values")
        if name in values:
            return values[name]
        raise AttributeError(name)

    def __setattr__(self, name: str, value: Any) -> None:
        note_once("docker", "v1 Docker settings (docker.enabled, base_image …) are accepted; runs here are "
                            "processes in the environment's Python, and a service's image is built with "
                            "`%aml deploy … --image`")
        self._values[name] = value


class PythonSection:
    def __init__(self) -> None:
        self.conda_dependencies = CondaDependencies()
        self.user_managed_dependencies = False
        self.interpreter_path = "python"
        self.conda_dependencies_file = None


class Environment:
    """v1's ``Environment(name)``: ``from_conda_specification``, ``from_pip_requirements``, ``get(ws, name)``,
    ``register(ws)``, ``python.conda_dependencies``, ``docker`` (noted)."""

    def __init__(self, name: str, **other: Any):
        unknown_settings("Environment", Environment.__init__, other)
        if not isinstance(name, str) or not name.strip():
            raise InvalidInput("Environment(name): give a name, like Environment('sklearn-env')")
        self.name = name
        self.version: str | None = None
        self.python = PythonSection()
        self.docker = DockerSection()
        self.environment_variables: dict[str, str] = {}
        self.inferencing_stack_version = None
        self._registered: str | None = None  # NAME:VERSION once registered here

    @classmethod
    def from_conda_specification(cls, name: str, file_path: str) -> "Environment":
        env = cls(name)
        env.python.conda_dependencies = CondaDependencies(file_path)
        return env

    @classmethod
    def from_pip_requirements(cls, name: str, file_path: str, pip_version: str | None = None) -> "Environment":
        env = cls(name)
        if not isinstance(file_path, (str, os.PathLike)):  # (a list: a TypeError from pathlib)
            raise InvalidInput(f"requirements file must be a path, got {type(file_path).__name__} "
                               f"{checks.shown(file_path)}")
        try:
            lines = Path(file_path).read_text(encoding="utf-8").splitlines()
        except (OSError, ValueError) as exc:  # (a NUL in the name; bytes that are not UTF-8)
            raise InvalidInput(f"cannot read requirements file {checks.shown(str(file_path))}: "
                               f"{getattr(exc, 'strerror', None) or exc}") from None
        for line in lines:
            line = line.split("#", 1)[0].strip()
            if line and not line.startswith("-"):
                env.python.conda_dependencies.add_pip_package(line)
        return env

    @classmethod
    def from_existing_conda_environment(cls, name: str, conda_environment_name: str) -> "Environment":
        note_once("conda-env", f"Environment.from_existing_conda_environment({conda_environment_name!r}) is the "
                               "kernel's own Python here")
        return cls(name)

    @classmethod
    def from_docker_image(cls, name: str, image: str, **_ignored: Any) -> "Environment":
        env = cls(name)
        env.docker.base_image = image
        return env

    @staticmethod
    def get(workspace: Any, name: str, version: str | None = None, label: str | None = None) -> "Environment":
        """A curated name (``AzureML-…``) is the kernel's Python (noted); else a registered environment."""
        checks.text("environment name", name)
        if any(name.startswith(p) for p in CURATED_PREFIXES):
            note_once(f"curated:{name}", f"curated environment {name!r} is this kernel's Python "
                                         "(its packages are what this notebook already imports)")
            env = Environment(name)
            env._curated = True
            return env
        client = client_of(workspace, "Environment.get(workspace, name)")
        version = None if version is None or version == "latest" else checks.whole("Environment.get: version",
                                                                                    version, 1, 2 ** 62)
        info = client.environments.get(name, version)
        return Environment._from_registered(info)

    @staticmethod
    def list(workspace: Any) -> dict:
        client_of(workspace, "Environment.list(workspace)")
        return workspace.environments

    @classmethod
    def _from_registered(cls, info: Any) -> "Environment":
        env = cls(info.name)
        env.version = str(info.version)
        for p in getattr(info, "packages", None) or []:
            env.python.conda_dependencies.pip_packages.append(p)
        env._registered = f"{info.name}:{info.version}"
        return env

    def register(self, workspace: Any) -> "Environment":
        requirements = self.python.conda_dependencies.requirements()
        info = workspace.client.environments.register(self.name, requirements)
        self.version = str(info.version)
        self._registered = f"{info.name}:{info.version}"
        return self

    def get_image_details(self, workspace: Any) -> dict:
        return {"dockerImage": {"name": None}, "note": "no image is built for a run here"}

    def build(self, workspace: Any, image_build_compute: Any = None):
        note_once("env-build", "Environment.build(): a run's environment is made when a run first needs it")
        return self

    def __repr__(self) -> str:
        deps = self.python.conda_dependencies
        return f"Environment(name={self.name!r}, version={self.version!r}, packages={deps.requirements()})"


EnvironmentReference = Environment


def environment_ref(client: Any, env: Any) -> str | None:
    """What a run or service of ours uses for a v1 environment: ``None`` (the kernel's Python) when it is curated,
    empty or already satisfied by the kernel; else a registered environment ``NAME:VERSION``."""
    if env is None or getattr(env, "_curated", False):
        return None
    if isinstance(env, str):
        return None if any(env.startswith(p) for p in CURATED_PREFIXES) else env
    if not isinstance(env, Environment):
        raise InvalidInput(f"environment= takes an Environment, not {type(env).__name__}")
    if env.python.user_managed_dependencies:
        return None
    requirements = env.python.conda_dependencies.requirements()
    missing = [r for r in requirements if not _satisfied(r)]
    if not missing:
        if requirements:
            note_once(f"env:{env.name}", f"environment {env.name!r}: every package it names is installed in this "
                                         "kernel's Python, so its runs use that Python (nothing to build)")
        return None
    if env._registered is None:
        env.register(_Ws(client))
    return env._registered


class _Ws:
    def __init__(self, client: Any):
        self.client = client


def _satisfied(requirement: str) -> bool:
    """Whether the kernel's Python has a distribution meeting ``requirement`` (name and version specifier)."""
    from importlib import metadata

    from packaging.requirements import InvalidRequirement, Requirement

    try:
        req = Requirement(requirement)
    except InvalidRequirement:
        return False
    try:
        version = metadata.version(req.name)
    except metadata.PackageNotFoundError:
        return False
    return not req.specifier or req.specifier.contains(version, prereleases=True)


def _name(package: str) -> str:
    return re.split(r"[=<>!~\[ ;]", package.strip(), maxsplit=1)[0].lower()


def _listed(values: Any) -> list:
    return [values] if isinstance(values, str) else list(values or [])


def _check_package(package: Any, pip: bool = False) -> None:
    if not isinstance(package, str) or not package.strip() or "\n" in package:
        raise InvalidInput(f"package {package!r}: give a name with an optional version, like 'scikit-learn>=1.2'")
    if pip and not package.strip().lower().endswith((".whl", ".tar.gz", ".zip")):  # a wheel or sdist is pip's too
        from packaging.requirements import InvalidRequirement, Requirement

        try:
            Requirement(package.strip())
        except InvalidRequirement:
            raise InvalidInput(f"package {package!r} is not a pip requirement; give a name with an optional "
                               "version, like 'scikit-learn>=1.2'") from None
