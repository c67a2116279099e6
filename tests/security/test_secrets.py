"""Secrets: a whole workflow in a real kernel, then every artifact it produced is searched for the keys."""
from __future__ import annotations

import json
import os
import sqlite3
import stat
from pathlib import Path

import pytest

CELLS = [
    "%load_ext aml_magics",
    "%%aml run -e secrets --wait\n"
    "import joblib, os\nfrom sklearn.datasets import load_digits\nfrom sklearn.linear_model import LogisticRegression\n"
    "from aml_magics import Run\nX, y = load_digits(return_X_y=True)\nm = LogisticRegression(max_iter=200).fit(X[:300], y[:300])\n"
    "Run.get_context().log('acc', m.score(X[300:], y[300:]))\nos.makedirs('outputs', exist_ok=True)\n"
    "joblib.dump(m, 'outputs/model.pkl')\nprint('trained')",
    "%aml register last --name secret-model",
    "svc = %aml deploy secret-model --name secret-svc\nsvc",
    "%aml service secret-svc --keys",
    "%aml service secret-svc --test '{\"data\": [[0, 0, 5, 13, 9, 1, 0, 0, 0, 0, 13, 15, 10, 15, 5, 0, 0, 3, 15, 2, "
    "0, 11, 8, 0, 0, 4, 12, 0, 0, 8, 8, 0, 0, 5, 8, 0, 0, 9, 8, 0, 0, 4, 11, 0, 1, 12, 7, 0, 0, 2, 14, 5, 10, 12, "
    "0, 0, 0, 0, 6, 13, 10, 0, 0, 0]]}'",
    "%aml services",
    "import requests\nr = requests.post(svc.scoring_uri, json={'data': [[0] * 64]})\nprint(r.status_code, r.text)",
    "try:\n    svc.run('{not json')\nexcept Exception as exc:\n    print(type(exc).__name__, exc)",
    "print(repr(svc), str(svc))\nprint(svc.info)",
    "%aml models",
    "%aml show last --static",
    "%aml",
    "%aml doctor",
]


@pytest.fixture
def workflow(workspace, tmp_path):
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in CELLS]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    folder = tmp_path / "project"
    folder.mkdir()
    client = NotebookClient(nb, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(folder)}},
                            store_widget_state=True)
    os.environ["AML_MAGICS_WORKSPACE"] = str(workspace)
    client.execute()
    path = folder / "workflow.ipynb"
    nbformat.write(nb, path)
    return workspace, path, nb


def test_keys_never_appear_outside_their_private_file(workflow):
    from aml_magics.core.client import Client

    workspace, notebook_path, nb = workflow
    client = Client(workspace)
    primary, secondary = client.deployments.get_keys("secret-svc")
    secrets = [primary.encode(), secondary.encode()]
    outputs = json.dumps([c.get("outputs") for c in nb.cells], ensure_ascii=False)
    assert "secret-svc" in outputs and "401" in outputs  # the workflow really ran (a keyless request refused)
    assert "•" in notebook_path.read_text(encoding="utf-8")  # --keys showed them masked (in the widget's state)

    key_files = {p for p in workspace.rglob("keys.json")}
    assert len(key_files) == 1
    key_file = key_files.pop()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    searched = []
    for path in [notebook_path, *workspace.rglob("*")]:
        if not path.is_file() or path == key_file:
            continue
        data = path.read_bytes()
        searched.append(path.name)
        for secret in secrets:
            assert secret not in data, f"a key is in {path}"
    assert {"aml.db", "std_log.txt", "supervisor.log", "spec.json", "workflow.ipynb"} <= set(searched), searched
    # the store, dumped as SQL text (WAL content included)
    conn = sqlite3.connect(workspace / "aml.db")
    dump = "\n".join(conn.iterdump()).encode()
    conn.close()
    assert all(s not in dump for s in secrets)
    # reprs and errors in this process too
    svc = client.deployments.get("secret-svc")
    texts = [repr(svc), str(svc), repr(svc.info), repr(client.deployments.list()),
             str(svc._repr_mimebundle_()), repr(client.workspace)]
    try:
        svc.run("{not json")
    except Exception as exc:  # noqa: BLE001
        texts.append(str(exc))
    assert all(primary not in t and secondary not in t for t in texts)
    client.deployments.delete("secret-svc")
    assert not Path(key_file).exists()
