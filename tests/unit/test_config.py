"""Workspace resolution and Azure config.json discovery."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from aml_magics.core.config import find_azure_config, read_azure_config, resolve_workspace
from aml_magics.core.errors import InvalidInput


def test_resolution_order(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("AML_MAGICS_WORKSPACE", raising=False)
    default = resolve_workspace()
    assert default.source == "default" and default.path == tmp_path / "xdg" / "aml-magics" / "workspaces" / "default"
    monkeypatch.setenv("AML_MAGICS_WORKSPACE", str(tmp_path / "env-ws"))
    assert resolve_workspace().path == tmp_path / "env-ws"
    assert resolve_workspace().source == "environment"
    explicit = resolve_workspace(tmp_path / "mine")
    assert explicit.source == "explicit" and explicit.path == tmp_path / "mine"
    (tmp_path / "afile").write_text("x")
    with pytest.raises(InvalidInput, match="is a file"):
        resolve_workspace(tmp_path / "afile")


def test_default_workspace_does_not_depend_on_the_current_folder(tmp_path):
    """The Jupyter server and kernels start in different folders and must agree."""
    env = {"XDG_DATA_HOME": str(tmp_path / "xdg"), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    seen = set()
    for cwd in (tmp_path, tmp_path / "a", tmp_path / "a" / "b"):
        cwd.mkdir(parents=True, exist_ok=True)
        out = subprocess.run([sys.executable, "-c", "from aml_magics.core.config import resolve_workspace;"
                              "print(resolve_workspace().path)"], cwd=cwd, env=env, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        seen.add(out.stdout.strip())
    assert len(seen) == 1


def test_azure_config_discovery_walks_up_in_sdk_order(tmp_path):
    deep = tmp_path / "proj" / "notebooks" / "lab1"
    deep.mkdir(parents=True)
    assert find_azure_config(deep) is None
    (tmp_path / "proj" / "project.json").write_text("{}")
    assert find_azure_config(deep) == tmp_path / "proj" / "project.json"
    (tmp_path / "proj" / "config.json").write_text("{}")
    assert find_azure_config(deep) == tmp_path / "proj" / "config.json"  # config.json before project.json
    (tmp_path / "proj" / "aml_config").mkdir()
    (tmp_path / "proj" / "aml_config" / "config.json").write_text("{}")
    assert find_azure_config(deep) == tmp_path / "proj" / "aml_config" / "config.json"
    (tmp_path / "proj" / ".azureml").mkdir()
    (tmp_path / "proj" / ".azureml" / "config.json").write_text("{}")
    assert find_azure_config(deep) == tmp_path / "proj" / ".azureml" / "config.json"  # .azureml first
    (deep / "config.json").write_text("{}")
    assert find_azure_config(deep) == deep / "config.json"  # nearest folder wins


def test_read_azure_config_keys_and_scope(tmp_path):
    f = tmp_path / "config.json"
    f.write_text(json.dumps({"subscription_id": "s", "resource_group": "rg", "workspace_name": "w"}))
    assert read_azure_config(f) == {"subscription_id": "s", "resource_group": "rg", "workspace_name": "w"}
    f.write_text(json.dumps({"Scope": "/subscriptions/s2/resourceGroups/rg2/providers/"
                                      "Microsoft.MachineLearningServices/workspaces/w2"}))
    assert read_azure_config(f) == {"subscription_id": "s2", "resource_group": "rg2", "workspace_name": "w2"}
    f.write_text(json.dumps({"subscription_id": "s"}))
    with pytest.raises(InvalidInput, match="lacks resource_group, workspace_name"):
        read_azure_config(f)


def test_an_azure_config_json_upward_selects_that_azure_workspace(tmp_path, monkeypatch):
    """DESIGN's order: explicit, $AML_MAGICS_WORKSPACE, an Azure ML config.json searched upward, the default."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("AML_MAGICS_WORKSPACE", raising=False)
    project, notebooks = tmp_path / "project", tmp_path / "project" / "notebooks"
    notebooks.mkdir(parents=True)
    monkeypatch.chdir(notebooks)
    (project / "config.json").write_text(json.dumps({"name": "some other tool's config"}))
    assert resolve_workspace().backend == "local"  # not Azure ML's: ignored
    (project / ".azureml").mkdir()
    (project / ".azureml" / "config.json").write_text(json.dumps(
        {"subscription_id": "s", "resource_group": "rg", "workspace_name": "w"}))
    found = resolve_workspace()
    assert (found.backend, found.azure, found.source, found.name) == ("azure", ("s", "rg", "w"), "config.json", "w")
    assert "azure workspace 'w' in resource group rg" in found.describe()
    monkeypatch.setenv("AML_MAGICS_WORKSPACE", str(tmp_path / "env-ws"))
    assert resolve_workspace().backend == "local"  # the environment variable comes first
    assert resolve_workspace(tmp_path / "mine").source == "explicit"
    monkeypatch.delenv("AML_MAGICS_WORKSPACE")
    (project / ".azureml" / "config.json").write_text(json.dumps({"subscription_id": "s"}))
    with pytest.raises(InvalidInput, match="lacks resource_group, workspace_name"):
        resolve_workspace()


def test_a_damaged_azure_config_json_is_one_line_not_the_local_workspace(tmp_path, monkeypatch):
    """An Azure ML config.json cut short (not JSON any more) was taken for another tool's file: the notebook then
    worked on the local workspace without a word. Another tool's config.json still means the local workspace."""
    from aml_magics.core.config import resolve_workspace

    monkeypatch.delenv("AML_MAGICS_WORKSPACE", raising=False)
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "config.json"
    config.write_text('{"subscription_id": "s", "resource_group": "rg", "workspace_name": "w"')
    with pytest.raises(InvalidInput, match=r"cannot read Azure config .*config.json: Expecting ',' delimiter.*"
                                           r"\(or remove it to use the local workspace\)$"):
        resolve_workspace()
    for other in ('{"editor.fontSize": 12}', "not json", '["subscription_id"]'):
        config.write_text(other)
        assert resolve_workspace().backend == "local"
