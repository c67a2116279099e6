"""The server extension's routes, in a real Jupyter server (pytest-jupyter), over a real workspace."""
from __future__ import annotations

import json
import time
from urllib.parse import urlencode

import joblib
import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from aml_magics.server.handlers import ROUTES

ALL = [  # (method, path, body) — every route, concrete
    ("GET", "workspace", None), ("GET", "experiments", None), ("GET", "computes", None),
    ("GET", "runs", None), ("POST", "runs", {"path": "x.ipynb"}), ("GET", "runs/r1", None),
    ("POST", "runs/r1/cancel", {}), ("GET", "runs/r1/metrics", None), ("GET", "runs/r1/logs", None),
    ("GET", "runs/r1/trials", None),
    ("GET", "models", None), ("POST", "models", {"run_id": "r1", "name": "m"}), ("GET", "deployments", None),
    ("POST", "deployments", {"model": "m"}), ("DELETE", "deployments/svc", None), ("POST", "deployments/svc/score", {}),
]


def test_every_route_is_listed():
    import re

    patterns = [re.compile(p.replace("(?P<run_id>[^/]+)", "[^/]+").replace("(?P<name>[^/]+)", "[^/]+"))
                for p, _ in ROUTES]
    covered = {i for _, path, _ in ALL for i, rx in enumerate(patterns) if rx.fullmatch(path)}
    assert covered == set(range(len(ROUTES))), "a route without a case in ALL"


async def get(jp_fetch, *path, **params):
    r = await jp_fetch("aml", "api", *path, params=params or None)
    return json.loads(r.body)


async def send(jp_fetch, method, *path, body=None):
    r = await jp_fetch("aml", "api", *path, method=method, body=json.dumps(body) if body is not None else None,
                       allow_nonstandard_methods=True)
    return r.code, json.loads(r.body)


async def expect_error(jp_fetch, code, *path, method="GET", body=None, params=None):
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("aml", "api", *path, method=method, params=params,
                       body=json.dumps(body) if body is not None else (None if method in ("GET", "DELETE") else ""),
                       allow_nonstandard_methods=True)
    assert info.value.code == code
    return json.loads(info.value.response.body)


async def test_no_route_answers_without_the_token(jp_fetch, jp_http_port, jp_base_url, client):
    client.experiments  # the workspace exists
    http = AsyncHTTPClient()
    for method, path, body in ALL:
        url = f"http://127.0.0.1:{jp_http_port}{jp_base_url}aml/api/{path}"
        for headers in ({}, {"Authorization": "token wrong-token"}):
            r = await http.fetch(url, method=method, headers=headers, raise_error=False, follow_redirects=False,
                                 body=json.dumps(body) if body is not None else (None if method in ("GET", "DELETE") else ""),
                                 allow_nonstandard_methods=True)
            assert r.code in (401, 403), (method, path, headers, r.code)
            assert b'"runs"' not in r.body and b'"experiments"' not in r.body


async def test_cookie_sessions_need_the_xsrf_token(jp_fetch, jp_http_port, jp_base_url, jp_serverapp, client):
    http = AsyncHTTPClient()
    base = f"http://127.0.0.1:{jp_http_port}{jp_base_url}"
    login = await http.fetch(base + "login", raise_error=False)
    xsrf = [c for c in login.headers.get_list("Set-Cookie") if c.startswith("_xsrf=")][0].split(";")[0].split("=", 1)[1]
    token = jp_serverapp.identity_provider.token
    r = await http.fetch(base + "login", method="POST", follow_redirects=False, raise_error=False,
                         body=urlencode({"password": token, "_xsrf": xsrf}), headers={"Cookie": f"_xsrf={xsrf}"})
    cookies = "; ".join(c.split(";")[0] for c in r.headers.get_list("Set-Cookie")) + f"; _xsrf={xsrf}"
    ok = await http.fetch(base + "aml/api/workspace", headers={"Cookie": cookies}, raise_error=False)
    assert ok.code == 200  # the session cookie authenticates reads
    run = client.experiments  # noqa: F841
    refused = await http.fetch(base + "aml/api/deployments", method="POST", body="{}", raise_error=False,
                               headers={"Cookie": cookies})
    assert refused.code == 403  # a write without the XSRF header
    allowed = await http.fetch(base + "aml/api/deployments", method="POST", body="{}", raise_error=False,
                               headers={"Cookie": cookies, "X-XSRFToken": xsrf})
    assert allowed.code == 400 and "model" in json.loads(allowed.body)["message"]  # reached the handler


async def test_workspace_experiments_computes(jp_fetch, client):
    from aml_magics import Experiment, Workspace

    Experiment(Workspace.current(), "alpha").start_logging().complete()
    ws = await get(jp_fetch, "workspace")
    assert ws["backend"] == "local" and ws["runs"] == 1 and ws["running"] == 0
    assert [e["name"] for e in (await get(jp_fetch, "experiments"))["experiments"]] == ["alpha"]
    assert (await get(jp_fetch, "computes"))["computes"][0]["name"] == "local"


async def test_a_workspace_folder_deleted_under_the_server_is_begun_again(jp_fetch, client, workspace):
    """The server kept its connection to the deleted database: the sidebar went on listing the deleted runs, and a
    notebook submitted from it went into a file nobody could see. Its next request opens the workspace again."""
    import shutil

    from aml_magics import Experiment, Workspace

    Experiment(Workspace.current(), "before").start_logging().complete()
    assert (await get(jp_fetch, "workspace"))["runs"] == 1
    shutil.rmtree(workspace)
    ws = await get(jp_fetch, "workspace")
    assert ws["runs"] == 0 and (await get(jp_fetch, "runs"))["runs"] == []
    assert (workspace / "aml.db").is_file()


async def test_runs_paging_filters_metrics_and_logs(jp_fetch, client):
    from aml_magics import Experiment, Workspace

    ws = Workspace.current()
    ids = []
    for i in range(7):
        run = Experiment(ws, "even" if i % 2 == 0 else "odd").start_logging(display_name=f"r{i}")
        run.log("loss", 1.0 / (i + 1))
        run.tag("parity", "even" if i % 2 == 0 else "odd")
        if i < 6:
            run.complete()
        ids.append(run.id)
    page = await get(jp_fetch, "runs", limit="3", offset="3")
    assert page["total"] == 7 and len(page["runs"]) == 3
    assert [r["id"] for r in page["runs"]] == list(reversed(ids))[3:6]  # newest first
    even = await get(jp_fetch, "runs", experiment="even")
    assert {r["name"] for r in even["runs"]} == {"r0", "r2", "r4", "r6"}
    running = await get(jp_fetch, "runs", status="Running")
    assert [r["id"] for r in running["runs"]] == [ids[6]]
    odd = await get(jp_fetch, "runs", tag="parity=odd")
    assert [r["id"] for r in odd["runs"]] == [ids[5], ids[3], ids[1]] and odd["total"] == 3 and not odd["more"]
    assert (await get(jp_fetch, "runs", tag="parity"))["total"] == 7  # a bare key: the tag set to anything
    body = await expect_error(jp_fetch, 400, "runs", params={"tag": "=odd"})
    assert "write it as KEY=VALUE" in body["message"]
    assert (await get(jp_fetch, "runs", tag="<img src=x onerror=alert(1)>=odd"))["runs"] == []  # text, matched as text
    body = await expect_error(jp_fetch, 400, "runs", params={"limit": "zero"})
    assert "limit must be an integer" in body["message"]
    body = await expect_error(jp_fetch, 404, "runs", "no-such-run")
    assert "not found" in body["message"]

    big = Experiment(ws, "big").start_logging()
    big.log_list("curve", [float(i % 1000) for i in range(100_000)])
    big.log("spike", 5.0)
    big.flush()
    detail = await get(jp_fetch, "runs", big.id)
    assert detail["status"] == "Running" and detail["metrics"]["spike"] == 5.0
    first = await get(jp_fetch, "runs", big.id, "metrics")
    curve = first["series"]["curve"]
    assert curve["downsampled"] and len(curve["values"]) <= 2000 and curve["total"] == 100_000
    assert max(curve["values"]) == 999.0 and min(curve["values"]) == 0.0  # extremes survive downsampling
    big.log_list("curve", [1.0, 2.0])
    big.flush()
    since = [("since", f"{n}:{s['cursor']}") for n, s in first["series"].items()]
    more = json.loads((await jp_fetch("aml", "api", "runs", big.id, "metrics", params=since)).body)
    assert more["series"]["curve"]["values"] == [1.0, 2.0] and more["series"]["spike"]["values"] == []
    big.complete()


async def test_a_metric_named_with_commas_and_colons_is_read_once_then_only_what_is_new(jp_fetch, client):
    # the cursors were one comma-joined parameter: a metric named "f1,macro" never found its cursor, so every poll
    # was a first read and the run view appended the whole series again
    from aml_magics import Experiment, Workspace

    run = Experiment(Workspace.current(), "odd-names").start_logging()
    names = ["f1,macro", "acc:val", "a&since=b:1", "plain"]
    for name in names:
        run.log_list(name, [1.0, 2.0, 3.0])
    run.flush()
    first = json.loads((await jp_fetch("aml", "api", "runs", run.id, "metrics")).body)["series"]
    assert sorted(first) == sorted(names) and all(first[n]["values"] == [1.0, 2.0, 3.0] for n in names)
    for name in names:
        run.log(name, 4.0)
    run.flush()
    since = [("since", f"{n}:{first[n]['cursor']}") for n in names]
    again = json.loads((await jp_fetch("aml", "api", "runs", run.id, "metrics", params=since)).body)["series"]
    assert {n: again[n]["values"] for n in names} == {n: [4.0] for n in names}
    for bad in ("loss", "loss:x", ":5", "loss:-1", "loss:1e3"):
        body = await expect_error(jp_fetch, 400, "runs", run.id, "metrics", params={"since": bad})
        assert "since" in body["message"] or "cursor" in body["message"], body
    run.complete()


async def test_trials_are_the_leaderboard_the_notebook_shows(jp_fetch, client):
    from aml_magics import Experiment, Workspace

    parent = Experiment(Workspace.current(), "trials").start_logging(display_name="search")
    first = parent.record_child("t1", params={"lr": "0.1", "fixed": "1"}, metrics={"acc": 0.5, "loss": 0.9})
    second = parent.record_child("t2", params={"lr": "0.2", "fixed": "1"}, metrics={"acc": 0.7, "loss": 0.4})
    parent.complete()
    board = await get(jp_fetch, "runs", parent.id, "trials")
    assert [c["key"] for c in board["columns"]][:3] == ["name", "m.acc", "status"]
    assert "p.lr" in [c["key"] for c in board["columns"]] and "p.fixed" not in [c["key"] for c in board["columns"]]
    assert {r["_id"] for r in board["rows"]} == {first, second} and board["best"] == second
    assert board["sort"] == {"key": "m.acc", "desc": True} and board["pinned"] == 2
    assert (await get(jp_fetch, "runs", second, "trials"))["rows"] == []  # a trial has no trials
    await expect_error(jp_fetch, 404, "runs", "no-such-run", "trials")


async def test_submit_cancel_register_deploy_score_delete(jp_fetch, jp_root_dir, client, tmp_path):
    import nbformat
    from sklearn.datasets import load_digits

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell(
        "import joblib, os\nfrom sklearn.datasets import load_digits\nfrom sklearn.linear_model import LogisticRegression\n"
        "from aml_magics import Run\nX, y = load_digits(return_X_y=True)\nRun.get_context().log('acc', 0.9)\n"
        "os.makedirs('outputs', exist_ok=True)\njoblib.dump(LogisticRegression(max_iter=100).fit(X[:200], y[:200]), "
        "'outputs/model.pkl')\nprint('done training')")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    (jp_root_dir / "lab").mkdir()
    nbformat.write(nb, jp_root_dir / "lab" / "train.ipynb")
    code, run = await send(jp_fetch, "POST", "runs", body={"path": "lab/train.ipynb", "experiment": "from-lab"})
    assert code == 201 and run["experiment"] == "from-lab"
    body = await expect_error(jp_fetch, 400, "runs", method="POST", body={"path": "../../etc/passwd.ipynb"})
    assert "not found under the server's root" in body["message"]
    info = client.runs.wait(run["id"], timeout=120)
    assert info.status == "Completed", info.error
    logs = await get(jp_fetch, "runs", run["id"], "logs", offset="0")
    assert logs["offset"] > 0
    tail = await get(jp_fetch, "runs", run["id"], "logs", offset=str(logs["offset"]))
    assert tail["text"] == ""

    code, model = await send(jp_fetch, "POST", "models", body={"run_id": run["id"], "name": "lab-model"})
    assert code == 201 and model["version"] == 1 and model["framework"] == "scikit-learn"
    models = await get(jp_fetch, "models")
    assert [(m["name"], m["version"]) for m in models["models"]] == [("lab-model", 1)]
    code, svc = await send(jp_fetch, "POST", "deployments", body={"model": "lab-model:1", "name": "lab-svc"})
    assert code == 201 and svc["state"] == "Healthy" and svc["scoring_uri"].startswith("http://127.0.0.1:")
    assert "key" not in json.dumps(svc).lower().replace("auth", "")
    X, _ = load_digits(return_X_y=True)
    code, answer = await send(jp_fetch, "POST", "deployments", "lab-svc", "score", body={"input": {"data": X[:2].tolist()}})
    assert code == 200 and answer["answer"] == [0, 1] and answer["ms"] > 0
    listed = await get(jp_fetch, "deployments")
    assert [d["name"] for d in listed["deployments"]] == ["lab-svc"]
    code, _ = await send(jp_fetch, "DELETE", "deployments", "lab-svc")
    assert code == 200 and (await get(jp_fetch, "deployments"))["deployments"] == []

    slow = client.runs.submit(__import__("aml_magics.core.types", fromlist=["RunSubmission"]).RunSubmission(
        kind="cell", experiment="slow", source_dir=tmp_path, entry="c.py", code="import time\ntime.sleep(60)\n"))
    code, cancelled = await send(jp_fetch, "POST", "runs", slow.id, "cancel", body={})
    assert code == 200
    final = client.runs.wait(slow.id, timeout=30)
    assert final.status == "Canceled", (final.status, final.error)
    body = await expect_error(jp_fetch, 409, "runs", slow.id, "cancel", method="POST", body={})
    assert "already Canceled" in body["message"]


async def test_blocking_store_calls_do_not_block_the_server(jp_fetch, client):
    """A slow route (a deploy) runs off the event loop: other requests are answered meanwhile."""
    import asyncio

    async def deploy_missing():
        return await expect_error(jp_fetch, 404, "deployments", method="POST", body={"model": "missing-model"})

    started = time.perf_counter()
    results = await asyncio.gather(deploy_missing(), *[get(jp_fetch, "workspace") for _ in range(5)])
    assert "missing-model" in results[0]["message"] and all(r["backend"] == "local" for r in results[1:])
    assert time.perf_counter() - started < 10
    assert joblib  # imported for the notebook run above


async def test_bad_requests_get_400_or_404_with_a_message(jp_fetch, jp_root_dir, client):
    """Huge numbers, wrong types, deep nesting and unknown runs: a JSON 4xx that says what to send, never a 500."""
    (jp_root_dir / "p.ipynb").write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    run = client.runs.start_logging("routes-bad")
    run.log("loss", 0.5)
    run.complete()
    huge = "9" * 5000
    cases = [
        (400, ("runs",), "GET", None, {"offset": huge}),
        (400, ("runs",), "GET", None, {"limit": "-1"}),
        (400, ("runs", run.id, "logs"), "GET", None, {"offset": str(2 ** 70)}),
        (400, ("runs", run.id, "metrics"), "GET", None, {"since": f"loss:{2 ** 70}"}),
        (400, ("models",), "POST", {"run_id": run.id, "name": "m", "tags": ["not", "a", "dict"]}, None),
        (400, ("models",), "POST", {"run_id": run.id, "name": 12}, None),
        (400, ("deployments",), "POST", {"model": "m", "name": ["x"]}, None),
        (400, ("deployments",), "POST", {"model": "m:99999999999999999999999"}, None),
        (400, ("runs",), "POST", {"path": "x.ipynb", "experiment": {"a": 1}}, None),
        # a parameter name papermill would write into the notebook as code (it ran: `import os; ... #` = 1)
        (400, ("runs",), "POST", {"path": "p.ipynb", "parameters": {"import os; os.system('id') #": 1}}, None),
        (400, ("runs",), "POST", {"path": "p.ipynb", "parameters": {"class": 1}}, None),
        # JSON may carry a lone surrogate ("\\ud800"): no stored name has one
        (400, ("models",), "POST", {"run_id": "\ud800", "name": "m"}, None),
        (400, ("deployments",), "POST", {"model": "\udcff"}, None),
        # the run's file to register, with a lone surrogate or a NUL: a 500 (UnicodeEncodeError, ValueError)
        (400, ("models",), "POST", {"run_id": run.id, "name": "m", "path": "outputs/\ud800.pkl"}, None),
        (400, ("models",), "POST", {"run_id": run.id, "name": "m", "path": "outputs/a\x00b.pkl"}, None),
        (404, ("runs", "no_such_run_1700000000_deadbeef", "metrics"), "GET", None, None),
        (404, ("runs", "no_such_run_1700000000_deadbeef", "logs"), "GET", None, None),
    ]
    for code, path, method, body, params in cases:
        message = (await expect_error(jp_fetch, code, *path, method=method, body=body, params=params))["message"]
        assert message and "Traceback" not in message, (path, message)
    assert client.runs.list(experiment=None, limit=None).total == 1, "a refused submission left a run behind"
    nested = "[" * 100_000 + "]" * 100_000
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("aml", "api", "models", method="POST", body=nested)
    assert info.value.code == 400 and "nested too deeply" in json.loads(info.value.response.body)["message"]
    # "last" works for the log and metrics routes as it does for the run itself
    assert (await get(jp_fetch, "runs", "last"))["id"] == run.id
    assert "offset" in await get(jp_fetch, "runs", "last", "logs")
    assert "loss" in (await get(jp_fetch, "runs", "last", "metrics"))["series"]


async def test_a_run_with_thousands_of_metrics_is_read_a_few_series_at_a_time(jp_fetch, client):
    # the run view asked for every metric's cursor in one URL: past ~1,800 metrics the URL outgrew the server's
    # limit and every poll after the first failed ("stream closed"); every runs-list row carried every metric
    from aml_magics import Experiment, Workspace

    run = Experiment(Workspace.current(), "per-class").start_logging()
    names = [f"class_{i:04d}_f1" for i in range(3000)]
    for name in names:
        run.log_list(name, [0.5, 0.6])
    run.flush()
    first = json.loads((await jp_fetch("aml", "api", "runs", run.id, "metrics")).body)
    assert list(first["series"]) == names[:12] and first["count"] == 3000  # the first logged, and how many
    for name in names[:12]:
        run.log(name, 0.7)
    run.log(names[2999], 0.9)
    run.flush()
    query = [("since", f"{n}:{first['series'][n]['cursor']}") for n in names[:12]] + [("name", names[2999])]
    again = json.loads((await jp_fetch("aml", "api", "runs", run.id, "metrics", params=query)).body)["series"]
    assert {n: again[n]["values"] for n in names[:12]} == {n: [0.7] for n in names[:12]}
    assert again[names[2999]]["values"] == [0.5, 0.6, 0.9] and len(again) == 13  # nothing that was not asked for
    gone = json.loads((await jp_fetch("aml", "api", "runs", run.id, "metrics",
                                      params=[("name", "no-such-metric")])).body)["series"]
    assert gone == {}
    body = await expect_error(jp_fetch, 400, "runs", run.id, "metrics", params=[("name", n) for n in names[:65]])
    assert "at most 64" in body["message"]
    row = (await get(jp_fetch, "runs", experiment="per-class"))["runs"][0]
    assert list(row["metrics"]) == names[:8] and row["metric_count"] == 3000
    detail = await get(jp_fetch, "runs", run.id)
    assert len(detail["metrics"]) == 3000 and detail["metric_count"] == 3000  # the run's own view lists them all
    run.complete()
