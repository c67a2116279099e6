"""Package lists of environments: parsed from a requirements file, an environment.yml or a list; every line a pip
requirement (a file that is not one is refused, without echoing it); hashed by content."""
from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

from ...core import checks
from ...core.errors import InvalidInput, NotFound
from ...core.specs import conda_as_pip

MAX_FILE = 1 << 20  # bytes of a requirements file or environment.yml
MAX_LINE = 4096  # characters of one requirement (a package's name, version and extras, or a URL)
MAX_NESTING = 10  # requirements files including others (-r), deep


def parse_packages(spec: str | os.PathLike | list[str]) -> list[str]:
    """Requirements from a requirements.txt, a conda-style environment.yml or a list. An environment.yml's conda
    packages count as pip requirements (``conda_as_pip``): a local virtualenv is built from them (they were left
    out, and the run failed on an import), and a conda file of conda packages only is an environment too (Azure
    ML's conda installs them; "it lists no packages" refused it). A requirements file's ``-r other.txt`` takes the
    requirements of that file (beside it), as pip does."""
    if isinstance(spec, (list, tuple)):
        lines = [("", number, str(x)) for number, x in enumerate(spec, 1)]
    else:
        path = checks.expand_home(spec)
        text = _read(path)
        if path.suffix in (".yml", ".yaml"):
            import yaml

            try:
                doc = yaml.safe_load(text) or {}
            except yaml.YAMLError as exc:
                raise InvalidInput(f"{path.name} is not valid YAML ({checks.yaml_error(exc)}); give a conda "
                                   "environment file or a requirements.txt") from None
            checks.yaml_size(doc, path.name)
            if not isinstance(doc, dict):
                raise InvalidInput(f"{path.name} is not a conda environment file (it needs a 'dependencies:' list)")
            found = []
            for dep in doc.get("dependencies", []) or []:
                if isinstance(dep, dict) and "pip" in dep:
                    found += [str(x) for x in dep["pip"] or []]
                elif isinstance(dep, (str, int, float)):
                    taken = conda_as_pip(str(dep))
                    if taken is not None:
                        found.append(taken)
            lines = [(f" of {path.name}", number, x) for number, x in enumerate(found, 1)]
        else:
            lines = _requirement_lines(path, text, [])
    from packaging.requirements import InvalidRequirement, Requirement

    packages = []
    for where, number, raw in lines:
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith(("-e ", "-e=", "--editable")):
            raise InvalidInput(f"line {number}{where} is an editable install ({line[:80]!r}): an environment is built "
                               "from packages; give the package (a name, a wheel or a git URL); nothing was registered")
        if line.startswith("-"):  # --index-url, -c constraints.txt, --pre, -f …: pip's options
            option = line.split()[0].split("=")[0]
            raise InvalidInput(f"line {number}{where} is pip's option {option}: an environment here is a list of "
                               "packages, without pip's options; remove the line (a package from another index: "
                               "its wheel's URL); nothing was registered")
        if len(line) > MAX_LINE:
            raise InvalidInput(f"line {number}{where} is {len(line):,} characters: a pip requirement is a package "
                               f"name, version and URL of at most {MAX_LINE:,}; nothing was registered")
        if not line.lower().endswith((".whl", ".tar.gz", ".zip")):  # a wheel or sdist file or URL is pip's too
            try:
                Requirement(line)
            except InvalidRequirement:
                # the line itself is not shown: this may be a file that was never meant to be read
                raise InvalidInput(f"line {number}{where} is not a pip requirement (like scikit-learn==1.5 or "
                                   "pandas>=2); nothing was registered") from None
        packages.append(line)
    if not packages:
        where = "" if isinstance(spec, (list, tuple)) else f" of {Path(spec).name}"
        raise InvalidInput(f"the environment{where} lists no packages; name the packages its code imports (nothing "
                           "was registered)")
    return sorted(set(packages), key=str.lower)


def _read(path: Path) -> str:
    kind = checks.path_kind("environment file", path)
    if kind != "file":
        raise (NotFound if kind == "missing" else InvalidInput)(
            f"environment file {path} {'not found' if kind == 'missing' else 'is not a file'} (give "
            "requirements.txt, environment.yml or a list)")
    try:
        size = path.stat().st_size
        if size > MAX_FILE:  # a wrong file: read whole, it was stored as one "package" of megabytes
            raise InvalidInput(f"{path.name} is {size / 2**20:,.1f} MB: a requirements file or environment.yml is "
                               "a short list of packages; give that file; nothing was registered")
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read {path} as a requirements file ({type(exc).__name__}); give a "
                           "requirements.txt or environment.yml") from None


def _requirement_lines(path: Path, text: str, including: list[Path]) -> list[tuple[str, int, str]]:
    """(" of NAME", line number, line) of a requirements file, a ``-r FILE`` / ``--requirement FILE`` line replaced
    by that file's lines (a path relative to the file that names it, as pip reads it)."""
    import re

    here = path.resolve()
    if here in including:
        chain = " → ".join(p.name for p in [*including, here])
        raise InvalidInput(f"requirements files include each other ({chain}); nothing was registered")
    if len(including) >= MAX_NESTING:
        raise InvalidInput(f"requirements files nested more than {MAX_NESTING} deep at {path.name}; nothing was "
                           "registered")
    out = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        nested = re.fullmatch(r"(?:-r|--requirement)(?:\s*=\s*|\s+|(?<=-r))(\S.*)", line)
        if nested is None:
            out.append((f" of {path.name}", number, raw))
            continue
        target = nested.group(1).strip()
        if "://" in target:
            raise InvalidInput(f"line {number} of {path.name} includes {target[:80]!r}: requirements from a URL are "
                               "not read here; save the file beside it; nothing was registered")
        child = (path.parent / os.path.expanduser(target))
        if checks.path_kind("requirements file", child) == "missing":
            raise NotFound(f"line {number} of {path.name} includes {target[:80]}, which is not there (a path "
                           f"relative to {path.name}'s folder); nothing was registered")
        out += _requirement_lines(child, _read(child), [*including, here])
    return out


def content_hash(packages: list[str]) -> str:
    digest = hashlib.sha256(json.dumps({"python": sys.version.split()[0], "packages": packages}).encode())
    return digest.hexdigest()[:16]
