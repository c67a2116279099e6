"""Two deploys of one service name at once (two tabs, a double click on Deploy): one deploys, the other is told
in one line that the service is being deployed; the record and the listening socket agree."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

from aml_magics.core.client import Client

DEPLOY = textwrap.dedent("""
    import json, os, sys, time
    from pathlib import Path
    from aml_magics.core.client import Client
    go = Path(sys.argv[1])
    client = Client.shared()
    while not go.exists():
        time.sleep(0.001)
    try:
        service = client.deployments.create("twin", ["twin:1"], update=sys.argv[2] == "update")
        print("RESULT " + json.dumps(["ok", service.scoring_uri]))
    except Exception as exc:
        print("RESULT " + json.dumps([type(exc).__name__, str(exc)]))
""")


def test_two_deploys_of_one_name_at_once(workspace, tmp_path):
    import joblib
    from sklearn.linear_model import LogisticRegression

    client = Client.shared()
    joblib.dump(LogisticRegression().fit([[0.0], [1.0]], [0, 1]), tmp_path / "model.pkl")
    client.models.register("twin", tmp_path / "model.pkl")
    script = tmp_path / "deploy.py"
    script.write_text(DEPLOY)
    for round_, mode in enumerate(("create", "update")):
        go = tmp_path / f"go-{round_}"
        procs = [subprocess.Popen([sys.executable, str(script), str(go), mode], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(2)]
        time.sleep(1.5)  # both have imported and wait at the line
        go.touch()
        results = []
        for p in procs:
            out, err = p.communicate(timeout=180)
            line = next((x for x in out.splitlines() if x.startswith("RESULT ")), None)
            assert line, err[-3000:]
            results.append(json.loads(line[7:]))
        kinds = sorted(r[0] for r in results)
        assert kinds == ["Conflict", "ok"], results
        refused = next(r[1] for r in results if r[0] == "Conflict")
        assert "being deployed" in refused and "\n" not in refused and "Traceback" not in refused
        info = client.deployments.get_info("twin")
        assert info.state == "Healthy"
        uri = next(r[1] for r in results if r[0] == "ok")
        assert info.scoring_uri == uri
        assert client.deployments.get("twin").run({"data": [[1.0]]}) == [1]  # the recorded port is the live one
    client.deployments.delete("twin")
