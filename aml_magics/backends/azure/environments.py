"""Environments of an Azure ML workspace: versions with a conda file on Azure ML's base image (the service builds
their image when a job first uses one). A new version only when the packages change (content hash in a tag)."""
from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from ...core import checks
from ...core.contract import EnvironmentsBackend, not_supported
from ...core.errors import InvalidInput, NotFound
from ...core.names import check_model_name
from ...core.render import counted
from ...core.types import EnvironmentInfo
from ..common.packages import content_hash, parse_packages
from .commands import DEFAULT_ENVIRONMENT
from . import ops
from .convert import timestamp

if TYPE_CHECKING:  # pragma: no cover
    from .backend import AzureBackend

ENV_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest"  # Azure ML's base image for custom envs
ENV_HASH_TAG = "aml_magics.hash"


class AzureEnvironments(EnvironmentsBackend):
    def __init__(self, backend: "AzureBackend"):
        self.b = backend

    def _info(self, body: dict, name: str) -> EnvironmentInfo:
        props = body.get("properties") or {}
        version = str(body.get("name", "0"))
        return EnvironmentInfo(name, checks.digits(version) or 0,
                               (props.get("tags") or {}).get(ENV_HASH_TAG, ""), conda_pip(props.get("condaFile")),
                               timestamp((body.get("systemData") or {}).get("createdAt")))

    def _versions(self, name: str) -> list[EnvironmentInfo]:
        items = self.b.arm.list_all(f"{self.b.ws.path}/environments/{name}/versions")
        return sorted((self._info(v, name) for v in items), key=lambda e: e.version)

    def register(self, name: str, spec) -> EnvironmentInfo:
        """A new version only when the environment changed (content hash in a tag), like the local workspace.

        A conda file (environment.yml) is sent as written — its channels, pins and Python — with only what our job
        runtime needs added, visibly (a comment at its top, and the version's description); a requirements.txt
        or a list becomes a conda file on the kernel's Python (pickled --in values move both ways)."""
        check_model_name(name, "environment name")
        path = None if isinstance(spec, (list, tuple)) else checks.expand_home(spec)
        if path is not None and path.suffix in (".yml", ".yaml"):
            parse_packages(path)  # the same checks (readable, valid requirements) and errors as any file
            conda, added = conda_as_written(path.read_text(encoding="utf-8"), path.name)
            packages = conda_pip(conda)
            digest = hashlib.sha256(json.dumps({"image": ENV_IMAGE, "conda": conda}).encode()).hexdigest()[:16]
            description = f"{path.name} as written" + (f"; added for aml-magics' job runtime: {', '.join(added)}"
                                                       if added else "") + ", registered by aml-magics"
        else:
            packages = parse_packages(spec)
            python = ".".join(sys.version.split(".")[:2])  # the kernel's minor version: pickles move both ways
            digest = hashlib.sha256(json.dumps({"python": python, "image": ENV_IMAGE, "packages": packages})
                                    .encode()).hexdigest()[:16]
            conda = conda_file(name, python, packages)
            description = f"{counted(len(packages), 'package')}, registered by aml-magics"
        try:
            versions = self._versions(name)
        except NotFound:
            versions = []
        if versions and versions[-1].hash == digest:
            return versions[-1]
        version = ops.next_version(self.b.arm, f"{self.b.ws.path}/environments/{name}",
                                   lambda: [v.version for v in versions])
        body = {"properties": {"image": ENV_IMAGE, "condaFile": conda, "description": description,
                               "tags": {ENV_HASH_TAG: digest}}}
        result = self.b.arm.put(f"{self.b.ws.path}/environments/{name}/versions/{version}", body)
        return replace(self._info(result, name), version=version, hash=digest, packages=packages)

    def get(self, name: str, version: int | None = None) -> EnvironmentInfo:
        if version is not None:
            body = self.b.arm.get(f"{self.b.ws.path}/environments/{name}/versions/{version}")
            return replace(self._info(body, name), version=int(version))
        versions = self._versions(name)
        if not versions:
            raise NotFound(f"environment {name!r} has no versions; register one with %aml env register")
        return versions[-1]

    def list(self) -> list[EnvironmentInfo]:
        return ops.latest_versions(self.b.arm, f"{self.b.ws.path}/environments", self.get)

    def environment_id(self, ref: str | None) -> str:
        """What a job's environmentId is for ``--env``: Azure ML's own references pass through; NAME[:VERSION]
        is a registered environment; a requirements.txt / environment.yml is registered under its content hash."""
        if not ref:
            return DEFAULT_ENVIRONMENT
        if ref.startswith(("azureml:", "/subscriptions/")):
            return ref
        if os.path.isfile(os.path.expanduser(ref)):
            info = self.register(f"aml-magics-{content_hash(parse_packages(ref))}", ref)
        else:
            info = self.get(*checks.name_and_version("environment", ref))
        return f"{self.b.ws.path}/environments/{info.name}/versions/{info.version}"

    def python(self, ref: str, progress=print) -> str:
        raise not_supported(self.b.capabilities, "building an environment here")


def conda_file(name: str, python: str, packages: list[str]) -> str:
    lines = [f"name: {json.dumps(name)}", "channels:", "  - conda-forge", "dependencies:", f"  - python={python}",
             "  - pip", "  - pip:", *(f"    - {json.dumps(p)}" for p in packages)]
    return "\n".join(lines) + "\n"


#: what aml-magics' job runtime (shipped in the snapshot) imports beyond the standard library
RUNTIME_NEEDS = ("requests",)


def _requirement_name(text: str) -> str:
    import re

    return re.split(r"[<>=!~\[; ]", str(text).strip(), maxsplit=1)[0].lower().replace("_", "-")


def conda_as_written(text: str, filename: str = "environment.yml") -> tuple[str, list[str]]:
    """The user's conda file unchanged when it has what our runtime needs; else the same file (every channel, pin
    and the Python kept) with the missing packages added to its pip section, said in a comment at the top.
    Returns (conda file, what was added)."""
    import yaml

    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{filename} is not valid YAML ({checks.yaml_error(exc)})") from None
    checks.yaml_size(doc, filename)
    if not isinstance(doc, dict) or not isinstance(doc.get("dependencies") or [], list):
        raise InvalidInput(f"{filename} is not a conda environment file (it needs a 'dependencies:' list)")
    deps = doc.setdefault("dependencies", []) or []
    doc["dependencies"] = deps
    have = {_requirement_name(d) for d in deps if isinstance(d, str)}
    pip = next((d["pip"] for d in deps if isinstance(d, dict) and isinstance(d.get("pip"), list)), None)
    have |= {_requirement_name(p) for p in (pip or [])}
    missing = [n for n in RUNTIME_NEEDS if n not in have]
    if not missing:
        return text, []
    if pip is None:
        if "pip" not in have:
            deps.append("pip")
        pip = []
        deps.append({"pip": pip})
    pip += missing
    header = f"# aml-magics added {', '.join(missing)} (its job runtime logs metrics with it); the rest is {filename}\n"
    return header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), missing


def conda_pip(conda: str | None) -> list[str]:
    """The pip requirements of a conda file (what our environments list as their packages)."""
    if not conda:
        return []
    try:
        import yaml

        doc = checks.yaml_size(yaml.safe_load(conda) or {}, "the conda file")
    except Exception:  # noqa: BLE001
        return []
    if not isinstance(doc, dict):
        return []
    out: list[str] = []
    for dep in doc.get("dependencies") or []:
        if isinstance(dep, dict) and isinstance(dep.get("pip"), list):
            out += [str(x) for x in dep["pip"]]
    return out
