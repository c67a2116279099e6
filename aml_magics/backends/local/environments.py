"""Environments: a named, versioned list of pip requirements, content-hashed; a virtualenv per hash.

The virtualenv is built once per hash (under a file lock, so two kernels never build the same one
twice) and layered on the current interpreter's packages through a ``.pth`` file that adds its
site-packages *after* the environment's own: aml-magics and its runtime stay importable, and the
environment's pins win. (``--system-site-packages`` would not do: from inside a virtualenv it
reaches the base interpreter's packages, not the virtualenv that has aml-magics.) A failed build is removed and reported in one line, with the pip log kept for reading.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from ...core.errors import InvalidInput, NotFound


def parse_packages(spec: str | os.PathLike | list[str]) -> list[str]:
    """Requirements from a requirements.txt, a conda-style environment.yml (its pip section) or a list."""
    if isinstance(spec, (list, tuple)):
        lines = [str(x) for x in spec]
    else:
        path = Path(spec).expanduser()
        if not path.is_file():
            raise NotFound(f"environment file {path} not found (give requirements.txt, environment.yml or a list)")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"cannot read {path} as a requirements file ({type(exc).__name__}); give a "
                               "requirements.txt or environment.yml") from None
        if path.suffix in (".yml", ".yaml"):
            import yaml

            doc = yaml.safe_load(text) or {}
            lines = []
            for dep in doc.get("dependencies", []) or []:
                if isinstance(dep, dict) and "pip" in dep:
                    lines += [str(x) for x in dep["pip"]]
        else:
            lines = text.splitlines()
    from packaging.requirements import InvalidRequirement, Requirement

    packages = []
    where = "" if isinstance(spec, (list, tuple)) else f" of {Path(spec).name}"
    for number, raw in enumerate(lines, 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith(("-e ", "--editable", "-r ", "--requirement")):
            raise InvalidInput(f"environment line {line!r}: editable installs and nested files are not supported")
        if not line.lower().endswith((".whl", ".tar.gz", ".zip")):  # a wheel or sdist file or URL is pip's too
            try:
                Requirement(line)
            except InvalidRequirement:
                # the line itself is not shown: this may be a file that was never meant to be read
                raise InvalidInput(f"line {number}{where} is not a pip requirement (like scikit-learn==1.5 or "
                                   "pandas>=2); nothing was registered") from None
        packages.append(line)
    if not packages:
        raise InvalidInput("the environment lists no packages")
    return sorted(set(packages), key=str.lower)


def content_hash(packages: list[str]) -> str:
    digest = hashlib.sha256(json.dumps({"python": sys.version.split()[0], "packages": packages}).encode())
    return digest.hexdigest()[:16]


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
        progress(f"Building environment {digest} ({len(packages)} package(s)); the first time only…")
        with open(log_path, "w") as log:
            subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True, stdout=log, stderr=subprocess.STDOUT)
            _layer_on_current_packages(folder)
            proc = subprocess.Popen([str(env_python(folder)), "-m", "pip", "install", "--disable-pip-version-check",
                                     "--no-input", "--progress-bar", "off", *packages],
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for line in proc.stdout:
                log.write(line)
                if line.startswith(("Collecting", "Downloading", "Installing", "Successfully")):
                    progress(f"  {line.strip()[:120]}")
            code = proc.wait()
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
