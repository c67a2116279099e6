"""Environments: a named, versioned list of pip requirements, content-hashed; a virtualenv per hash.

The virtualenv is built once per hash (under a file lock, so two kernels never build the same one
twice) and layered on the current interpreter's packages through a ``.pth`` file that adds its
site-packages *after* the environment's own: aml-magics and its runtime stay importable, and the
environment's pins win. (``--system-site-packages`` would not do: from inside a virtualenv it
reaches the base interpreter's packages, not the virtualenv that has aml-magics.) A failed build is removed and reported in one line, with the pip log kept for reading.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ...core import checks
from ...core.contract import EnvironmentsBackend
from ...core.errors import InvalidInput, NotFound
from ...core.names import check_model_name
from ...core.render import counted
from ...core.types import EnvironmentInfo
from ..common.packages import content_hash, parse_packages
from .store import EnvironmentRows

if TYPE_CHECKING:  # pragma: no cover
    from .backend import LocalBackend


def env_python(folder: Path) -> Path:
    return folder / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def build(root: Path, packages: list[str], progress: Callable[[str], None] = print) -> Path:
    """The virtualenv for ``packages``: built on first use, cached by content hash. Returns its python."""
    from filelock import FileLock

    digest = content_hash(packages)
    folder = root / digest
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root / f"{digest}.lock")):
        if (folder / ".complete").exists():
            return env_python(folder)
        shutil.rmtree(folder, ignore_errors=True)
        log_path = root / f"{digest}.pip.log"
        started = time.time()
        progress(f"Building environment {digest} ({counted(len(packages), 'package')}); the first time only…")
        with open(log_path, "w") as log:
            subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True, stdout=log, stderr=subprocess.STDOUT)
            _layer_on_current_packages(folder)
            proc = subprocess.Popen([str(env_python(folder)), "-m", "pip", "install", "--disable-pip-version-check",
                                     "--no-input", "--progress-bar", "off", *packages],
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            try:
                for line in proc.stdout:
                    log.write(line)
                    if line.startswith(("Collecting", "Downloading", "Installing", "Successfully")):
                        progress(f"  {line.strip()[:120]}")
                code = proc.wait()
            except BaseException:  # Ctrl-C (or a full disk for the log): pip went on installing into the folder
                proc.kill()  # that the next build removes and makes again
                proc.wait()
                shutil.rmtree(folder, ignore_errors=True)
                raise
        if code != 0:
            shutil.rmtree(folder, ignore_errors=True)
            last = [l for l in log_path.read_text(errors="replace").splitlines() if "ERROR" in l][-1:]
            raise InvalidInput(f"building the environment failed ({(last or ['pip exited with code %d' % code])[0][:200]}); "
                               f"the pip log is kept at {log_path}")
        (folder / ".complete").write_text(json.dumps({"packages": packages, "seconds": time.time() - started}))
        progress(f"Environment {digest} ready in {time.time() - started:.0f} s.")
        return env_python(folder)


def _layer_on_current_packages(folder: Path) -> None:
    import site
    import sysconfig

    purelib = subprocess.run([str(env_python(folder)), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    parents = [p for p in [*site.getsitepackages(), sysconfig.get_paths()["purelib"]] if os.path.isdir(p)]
    if site.ENABLE_USER_SITE and os.path.isdir(site.getusersitepackages()):
        parents.append(site.getusersitepackages())
    lines = [f"import site; site.addsitedir({p!r})" for p in dict.fromkeys(parents)]
    Path(purelib, "aml_magics_layer.pth").write_text("\n".join(lines) + "\n")


class LocalEnvironments(EnvironmentsBackend):
    """Named, versioned package lists; runs and services use them through a virtualenv built once per content."""

    def __init__(self, backend: "LocalBackend"):
        self.backend = backend
        self.rows = EnvironmentRows(backend.store)

    def register(self, name: str, spec) -> EnvironmentInfo:
        check_model_name(name, "environment name")
        packages = parse_packages(spec)
        version = self.rows.save(name, content_hash(packages), packages)  # the same content is the same version
        return self.get(name, version)

    def get(self, name: str, version: int | None = None) -> EnvironmentInfo:
        row = self.rows.get(name, version)
        if row is None and version is not None and self.rows.get(name) is not None:  # "did you mean 'myenv'?"
            have = sorted(v for n, v in self.rows.versions() if n == name)
            raise NotFound(f"environment {name} has no version {version}; it has {', '.join(map(str, have))}")
        if row is None:
            raise NotFound.with_suggestions("environment", name, self.rows.names(),
                                            hint="register one with %aml env register")
        return EnvironmentInfo(row["name"], row["version"], row["hash"], json.loads(row["packages"]), row["created"])

    def list(self) -> list[EnvironmentInfo]:
        return [self.get(name, version) for name, version in self.rows.versions()]

    def python(self, ref: str, progress=print) -> str:
        """The interpreter for an environment: a registered NAME[:VERSION], or a requirements/yml file."""
        if os.path.exists(os.path.expanduser(ref)):
            packages = parse_packages(ref)
        else:
            packages = self.get(*checks.name_and_version("environment", ref)).packages
        return str(build(self.backend.path / "envs", packages, progress))
