"""Which workspace a process works in.

Resolution order (DESIGN.md): an explicit workspace (``Client(workspace=…)``, ``--workspace``,
``%aml workspace use``), then ``AML_MAGICS_WORKSPACE``, then an Azure ``config.json`` found upward
from the current folder (azure backend), else the per-user default local workspace in the
platform's data folder. The default depends only on the user, never on the current folder, so
the Jupyter server and every kernel land on the same workspace.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import InvalidInput

ENV_WORKSPACE = "AML_MAGICS_WORKSPACE"
APP_NAME = "aml-magics"
AZURE_CONFIG_FOLDERS = (".azureml", "aml_config", ".")
AZURE_CONFIG_FILES = ("config.json", "project.json")


@dataclass(frozen=True)
class WorkspaceConfig:
    backend: str  # "local" or "azure"
    path: Path  # the local workspace folder (azure: a cache folder)
    source: str  # "explicit", "environment", "default", "config.json", "connect"
    name: str = "local"
    azure: tuple[str, str, str] | None = None  # (subscription, resource group, workspace) of an azure workspace

    def describe(self) -> str:
        how = {"explicit": "chosen explicitly", "environment": f"from ${ENV_WORKSPACE}", "default": "per-user default"}
        if self.azure:
            return f"azure workspace {self.name!r} in resource group {self.azure[1]} ({self.source})"
        return f"{self.backend} workspace {self.name!r} at {self.path} ({how.get(self.source, self.source)})"


def default_workspace_path() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir(APP_NAME, appauthor=False)) / "workspaces" / "default"


def resolve_workspace(workspace: str | os.PathLike | None = None) -> WorkspaceConfig:
    if workspace is not None and str(workspace).strip():
        return WorkspaceConfig("local", _local_path(workspace), "explicit", _name_of(workspace))
    env = os.environ.get(ENV_WORKSPACE, "").strip()
    if env:
        return WorkspaceConfig("local", _local_path(env), "environment", _name_of(env))
    found = find_azure_config()
    if found is not None and is_azure_config(found):  # an Azure ML workspace's config.json, searched upward
        try:
            ref = read_azure_config(found)
        except InvalidInput as exc:
            raise InvalidInput(f"{exc} (or remove it to use the local workspace)") from None
        return azure_workspace_config((ref["subscription_id"], ref["resource_group"], ref["workspace_name"]),
                                      "config.json")
    return WorkspaceConfig("local", default_workspace_path(), "default", "default")


def azure_workspace_config(key: tuple[str, str, str], source: str) -> WorkspaceConfig:
    """An Azure ML workspace (subscription, resource group, name); its local folder only caches."""
    return WorkspaceConfig("azure", default_workspace_path().parent.parent / "azure" / key[2], source, key[2],
                           azure=key)


AZURE_CONFIG_KEYS = ("subscription_id", "resource_group", "workspace_name", "Scope")


def is_azure_config(path: Path) -> bool:
    """Whether a config.json is Azure ML's (another tool's config.json never switches the workspace); an
    Azure ML one that is incomplete — or cut short, so not JSON at all, yet naming its keys — is reported by
    read_azure_config rather than silently taken for the local workspace."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")[:1_000_000]
    except OSError:
        return False
    try:
        data = json.loads(text)
    except ValueError:
        return any(f'"{k}"' in text for k in AZURE_CONFIG_KEYS)
    return isinstance(data, dict) and any(k in data for k in AZURE_CONFIG_KEYS)


def _local_path(value: str | os.PathLike) -> Path:
    from . import checks

    checks.text("workspace folder", os.fspath(value))  # NUL or a lone surrogate: one line, not a ValueError
    try:
        path = Path(os.path.expanduser(os.fspath(value))).resolve()
        is_file = path.exists() and not path.is_dir()
    except OSError as exc:  # a name too long for the file system, …
        raise InvalidInput(f"workspace folder {checks.shown(os.fspath(value))}: {exc.strerror}") from None
    if is_file:
        raise InvalidInput(f"workspace {path} is a file; give a folder (it is created when missing)")
    return path


def _name_of(value: str | os.PathLike) -> str:
    return Path(os.fspath(value)).name or "local"


def find_azure_config(start: str | os.PathLike | None = None) -> Path | None:
    """The Azure ML ``config.json`` an SDK would use: ``.azureml/``, ``aml_config/`` and ``.``,
    ``config.json`` before ``project.json``, from ``start`` up through every parent folder."""
    folder = Path(start or os.getcwd()).resolve()
    for directory in (folder, *folder.parents):
        for sub in AZURE_CONFIG_FOLDERS:
            for name in AZURE_CONFIG_FILES:
                candidate = directory / sub / name
                if candidate.is_file():
                    return candidate
    return None


def read_azure_config(path: Path) -> dict[str, str]:
    """subscription_id / resource_group / workspace_name from a config.json (keys or ``Scope``)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"cannot read Azure config {path}: {exc}; download config.json again from the Azure ML "
                           "studio") from None
    if not isinstance(data, dict):
        raise InvalidInput(f"{path} is not an Azure ML config (a JSON object with subscription_id, resource_group "
                           "and workspace_name)")
    if "Scope" in data:
        parts = str(data["Scope"]).strip("/").split("/")
        try:
            data = {
                "subscription_id": parts[parts.index("subscriptions") + 1],
                "resource_group": parts[parts.index("resourceGroups") + 1],
                "workspace_name": parts[parts.index("workspaces") + 1],
            }
        except (ValueError, IndexError):
            raise InvalidInput(f"{path}: 'Scope' is not an Azure ML workspace resource id; download config.json "
                               "again from the Azure ML studio") from None
    missing = [k for k in ("subscription_id", "resource_group", "workspace_name") if not data.get(k)]
    if missing:
        raise InvalidInput(f"{path} lacks {', '.join(missing)}; download config.json from the Azure ML studio")
    return {k: data[k] for k in ("subscription_id", "resource_group", "workspace_name")}


_WARNED: set = set()


def env_number(name: str, default: float, kind: type = float, minimum: float = 0, maximum: float = 1e9) -> float:
    """A number from environment variable ``name`` (a tuning knob of a service or a test), ``default`` when unset —
    and when it is not a number of ``kind`` from ``minimum`` to ``maximum`` (NaN, infinity and absurd sizes are
    typos too: some waits overflow on them): then one line on stderr says so (once per process and value), instead
    of the process failing to start with a traceback."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return kind(default)
    try:
        value = kind(raw)
        if minimum <= value <= maximum:  # False for NaN
            return value
    except ValueError:
        pass
    if (name, raw) not in _WARNED:
        import sys

        _WARNED.add((name, raw))
        print(f"Warning: ${name}={raw[:40]!r} is not {'a whole' if kind is int else 'a'} number from {minimum:g} to "
              f"{maximum:g}; using {default:g}.", file=sys.stderr, flush=True)
    return kind(default)
