"""Dashboards driven in a real kernel: widget state after a run logs, the shared poller, static fallbacks."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import nbformat
import pytest
from nbclient import NotebookClient

from tests.kernel import Kernel

pytestmark = pytest.mark.slow

SLOW_RUN = (
    "%%aml run -e dash --name slow\n"
    "import time\nfrom aml_magics import Run\nrun = Run.get_context()\nrun.log_param('lr', 0.1)\n"
    "for i in range(60):\n    run.log('loss', 1.0 / (i + 1))\n    run.log('acc', i / 60)\n    time.sleep(0.05)\n"
    "print('finished')\n"
)


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    base = tmp_path_factory.mktemp("dash")
    (base / "project").mkdir()
    yield base
    from tests.conftest import kill_workspace_processes

    kill_workspace_processes(base / "ws")


@pytest.fixture(scope="module")
def kernel(ws):
    env = dict(os.environ, AML_MAGICS_WORKSPACE=str(ws / "ws"))
    k = Kernel(env, str(ws / "project"))
    out = k.run("%load_ext aml_magics\nfrom aml_magics.widgets.poller import shared_poller\n"
                "from aml_magics.widgets import RunDetails, RunHistory, RunComparison\nimport time")
    assert out["error"] is None, out["error"]
    yield k
    k.kill()


def test_cell_run_displays_a_live_run_details(kernel):
    out = kernel.run(SLOW_RUN)
    assert out["error"] is None, out["error"]
    [bundle] = out["outputs"]
    assert "application/vnd.jupyter.widget-view+json" in bundle["data"]
    assert "text/html" in bundle["data"] and "dash" in bundle["data"]["text/html"]
    assert bundle["transient"]["display_id"].startswith("aml-")  # updatable: the saved notebook gets the final state
    kernel.run("d = [m for m in shared_poller().members if isinstance(m, RunDetails)][-1]")
    counts = []
    for _ in range(12):
        counts.append(kernel.value("len(d.chart.series('loss', 'slow'))"))
        time.sleep(0.25)
    assert counts == sorted(counts) and counts[-1] > counts[0]  # points arrived while the run was logging
    assert any(0 < c < 60 for c in counts)  # …and were seen mid-run, not only at the end
    kernel.run("d.client.runs.wait(d.run_id)\ntime.sleep(1.5)")
    state = kernel.value(
        "{'points': len(d.chart.series('loss', 'slow')), 'status': d.info.status, "
        "'panels': [p['id'] for p in d.chart.panels], 'latest': d.latest.value, 'log': d.log.value, "
        "'props': d.props.value, 'files': d.files.value, 'members': len(shared_poller().members), "
        "'cancel_hidden': d.cancel_button.layout.display}"
    )
    assert state["points"] == 60 and state["status"] == "Completed"
    assert state["panels"] == ["loss", "acc"]
    assert "loss" in state["latest"] and "0.0166667" in state["latest"]
    assert "finished" in state["log"] and "lr" in state["props"] and "logs/std_log.txt" in state["files"]
    assert state["members"] == 0  # the poller let go of the finished run
    assert state["cancel_hidden"] == "none"


def test_metric_reaches_widget_state_within_a_second(kernel, ws):
    gate = ws / "project" / "gate"
    out = kernel.run(
        "%%aml run -e latency --name lat\n"
        "import os, time\nfrom aml_magics import Run\nrun = Run.get_context()\n"
        f"for i in range(5):\n    while not os.path.exists({str(gate)!r} + str(i)):\n        time.sleep(0.01)\n"
        "    run.log('t', time.time())\n"
    )
    assert out["error"] is None
    kernel.run("d = [m for m in shared_poller().members if isinstance(m, RunDetails)][-1]\n"
               "def seen_at(series, n, timeout=5):\n"
               "    t0 = time.time()\n"
               "    while len(series) <= n and time.time() - t0 < timeout:\n"
               "        time.sleep(0.01)\n"
               "    return time.time() if len(series) > n else None\n")
    delays = []
    for i in range(5):
        time.sleep(0.7)  # let the poller back off: the worst case
        started = time.time()
        (gate.parent / f"gate{i}").write_text("go")
        seen = kernel.value(f"seen_at(d.chart.series('t', 'lat'), {i})")
        assert seen is not None, "the metric never reached the widget"
        delays.append(seen - started)
    assert max(delays) < 1.0, delays


def test_many_dashboards_share_one_poller_and_close_stops_work(kernel):
    kernel.run("%%aml run -e dash --name a\nimport time\ntime.sleep(3)\n")
    kernel.run("%%aml run -e dash --name b\nimport time\ntime.sleep(3)\n")
    kernel.run("extra = RunDetails('last')\nextra.show()")
    state = kernel.value(
        "{'members': len(shared_poller().members), 'threads': sum(t.name == 'aml-dashboard-poller' "
        "for t in __import__('threading').enumerate())}"
    )
    assert state["members"] >= 3 and state["threads"] == 1
    kernel.run("p = shared_poller(); target = p.members[-1]; n = len(p.members); other = p.members[0]\n"
               "target.close()")
    assert kernel.value("len(p.members) == n - 1 and target not in p.members")
    # closing one dashboard closes its own widgets only
    assert kernel.value("target.widget.comm is None and other.widget.comm is not None")
    kernel.run("import time\nwhile shared_poller().members: time.sleep(0.1)\ntime.sleep(0.5)")
    assert kernel.value("shared_poller().running") is False


def test_polling_backs_off_when_nothing_changes(kernel):
    kernel.run("%%aml run -e dash --name quiet\nimport time\ntime.sleep(4)\n")
    kernel.run("time.sleep(3)")
    interval = kernel.value("shared_poller().interval")
    assert interval >= 0.45  # from 0.2 s towards the cap while the run is silent
    assert interval <= 0.6  # but not beyond it while a run is active: new values still show within 1 s


def test_run_history_pages_opens_and_compares(kernel):
    kernel.run("for i in range(3):\n    get_ipython().run_cell_magic('aml', f'run -e hist --name h{i} --wait', "
               "f'from aml_magics import Run\\nr = Run.get_context()\\nr.log_param(\"reg\", {i})\\n"
               "for s in range(5): r.log(\"score\", s * {i})\\n')")
    out = kernel.run("h = RunHistory(experiment='hist', limit=2)\nh.show()")
    assert out["error"] is None, out["error"]
    state = kernel.value("{'rows': [r['name'] for r in h.table.rows], 'total': h.table.total, "
                         "'cols': [c['key'] for c in h.table.columns]}")
    assert state["rows"] == ["h2", "h1"] and state["total"] == 3 and "m.score" in state["cols"]
    kernel.run("h.goto(2)")
    assert kernel.value("[r['name'] for r in h.table.rows]") == ["h0"]
    kernel.run("h.goto(0)\nfirst = h.open_run(h.table.rows[0]['_id'])")
    assert kernel.value("h.opened.run_id == h.table.rows[0]['_id'] and h.opened.info.status") == "Completed"
    kernel.run("h.compare([r.id for r in h.runs])")
    assert kernel.value("type(h.opened).__name__ + str(first._closed)") == "RunComparisonTrue"
    out = kernel.run("c = RunComparison([r.id for r in h.runs])\nprint(repr(c))")
    assert "reg" in out["text"] and "score" in out["text"]
    diff = kernel.value("[(k, n, d) for k, n, v, d in c.diff_rows()]")
    assert ["param", "reg", True] in diff
    assert kernel.value("sorted(tr for (p, tr) in c.chart._series)") == ["h1", "h2"]


def test_compare_magic_and_static_show(kernel):
    out = kernel.run("%aml runs -e hist --limit 2")
    assert out["error"] is None and "widget-view" in json.dumps(out["outputs"])
    ids = kernel.value("[r.id for r in h.runs]")
    out = kernel.run(f"%aml compare {ids[0]} {ids[1]} --metric score")
    assert out["error"] is None and "widget-view" in json.dumps(out["outputs"])
    out = kernel.run("%aml show last --static")
    assert out["error"] is None
    data = out["outputs"][0]["data"]
    assert "application/vnd.jupyter.widget-view+json" not in data and "<svg" in data["text/html"]
    out = kernel.run("%aml compare onlyone")
    assert "UsageError: give at least two different runs" in out["text"] and "Traceback" not in out["text"]


def test_saved_notebook_keeps_a_static_summary(tmp_path):
    """JupyterLab saves without widget state by default: viewers then show our text/html fallback."""
    env_ws = tmp_path / "ws"
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext aml_magics"),
        nbformat.v4.new_code_cell("%%aml run -e static\nimport time\nfrom aml_magics import Run\nrun = Run.get_context()\n"
                                  "for i in range(20):\n    run.log('loss', 1 / (i + 1))\n    time.sleep(0.02)\n"),
        nbformat.v4.new_code_cell("run = _\nrun.wait_for_completion()\nimport time\ntime.sleep(2)"),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    old = os.environ.get("AML_MAGICS_WORKSPACE")
    os.environ["AML_MAGICS_WORKSPACE"] = str(env_ws)
    try:
        NotebookClient(nb, timeout=120, kernel_name="python3", store_widget_state=False,
                       resources={"metadata": {"path": str(tmp_path)}}).execute()
    finally:
        os.environ["AML_MAGICS_WORKSPACE"] = old or ""
    path = tmp_path / "saved.ipynb"
    nbformat.write(nb, path)
    [output] = nb.cells[1].outputs
    html = output["data"]["text/html"]
    assert "Completed" in html and "<svg" in html and "loss" in html  # the final state, not "Running"
    subprocess.run([sys.executable, "-m", "nbconvert", "--to", "html", str(path)], check=True, capture_output=True)
    page = (tmp_path / "saved.html").read_text()
    assert "aml-static-run" in page and "Loading widget" not in page and "<svg" in page


def test_parent_run_shows_children_table_and_parallel_coordinates(kernel):
    out = kernel.run(
        "%%aml run -e sweepish --name parent --wait\n"
        "from aml_magics import Run\nparent = Run.get_context()\n"
        "for c in [0.1, 1.0, 10.0]:\n    child = parent.child_run(f'C={c}')\n    child.log_param('C', c)\n"
        "    child.log('accuracy', 0.9 - abs(c - 1.0) / 100)\n    child.complete()\n"
    )
    assert out["error"] is None
    kernel.run("p = RunDetails('last', live=False)")
    state = kernel.value(
        "{'rows': sorted(r['name'] for r in p.children_table.rows), 'best': p.children_table.highlight,"
        " 'best_name': next(r['name'] for r in p.children_table.rows if r['_id'] == p.children_table.highlight),"
        " 'cols': [c['key'] for c in p.children_table.columns], 'dims': [d['name'] for d in p.children_chart.parcoords['dims']],"
        " 'shown': p.children_box.layout.display}"
    )
    assert state["rows"] == ["C=0.1", "C=1.0", "C=10.0"] and state["best_name"] == "C=1.0"
    assert "p.C" in state["cols"] and "m.accuracy" in state["cols"]
    assert state["dims"] == ["C", "accuracy"] and state["shown"] == ""
    out = kernel.run("%aml runs -e sweepish --metric accuracy")
    assert out["error"] is None


def test_a_metric_first_logged_later_gets_its_chart_and_one_taken_off_stays_off(kernel):
    """A script logs loss every step and val_acc only at an epoch's end: the dashboard that saw loss alone first
    charts val_acc when it arrives (it kept only the metrics it had first seen); a metric the user took off the
    chart is not put back when another arrives."""
    out = kernel.run("from aml_magics.core.client import Client\n"
                     "late = Client.shared().runs.start_logging('late-metric')\nlate.log('loss', 1.0)")
    assert out["error"] is None, out["error"]
    kernel.run("d = RunDetails(late.id, live=False)")
    assert kernel.value("[p['id'] for p in d.chart.panels]") == ["loss"]
    kernel.run("late.log('val_acc', 0.5)")
    kernel.run("d.update()")
    assert kernel.value("[p['id'] for p in d.chart.panels]") == ["loss", "val_acc"]
    kernel.run("d.metric_picker.value = ('val_acc',)")  # the user takes loss off the chart
    kernel.run("late.log('lr', 0.01)")
    kernel.run("d.update()")
    assert kernel.value("[p['id'] for p in d.chart.panels]") == ["val_acc", "lr"]
    kernel.run("late.complete()")


def test_model_browser_deploys_in_one_click_and_service_panel_tests_it(kernel, ws):
    out = kernel.run(
        "%%aml run -e reg --name train --wait\n"
        "import joblib\nfrom sklearn.datasets import load_digits\nfrom sklearn.linear_model import LogisticRegression\n"
        "X, y = load_digits(return_X_y=True)\n"
        "joblib.dump(LogisticRegression(max_iter=300).fit(X[:400], y[:400]), 'outputs/model.pkl')\n"
    )
    assert out["error"] is None
    kernel.run("last_run = _\nlast_run.register_model('browser_model', 'outputs/model.pkl', tags={'k': 'v'})")
    out = kernel.run("%aml models")
    assert out["error"] is None and "widget-view" in json.dumps(out["outputs"])
    kernel.run("from aml_magics.widgets import ModelBrowser, ServicePanel\nb = ModelBrowser()\n"
               "b.select('browser_model:1')\nworker = b.deploy(wait=True)")
    state = kernel.value("{'rows': [r['_id'] for r in b.table.rows], 'result': b.result.value, "
                         "'progress': b.progress.value, 'detail': b.detail.value}")
    assert state["rows"] == ["browser_model:1"] and "k=v" not in state["rows"][0]
    assert "Deployed" in state["result"] and "http://127.0.0.1:" in state["result"] and state["progress"] == 1.0
    assert "scikit-learn" in state["detail"]
    kernel.run("b.open_run()")
    assert kernel.value("b.opened.run_id == last_run.id")
    kernel.run("import json\np = ServicePanel(live=False)\np.select(b.service_name)\n"
               "p.test(json.dumps({'data': [[0.0] * 64, [1.0] * 64]}))")
    state = kernel.value("{'response': p.response.value, 'detail': p.detail.value, 'state': [str(v) for v in p.widget.get_state().values()]}")
    assert "<b>200</b>" in state["response"] and "Healthy" in state["detail"]
    key = kernel.value("p._keys()[0]")
    assert key not in state["detail"] and key not in json.dumps(state["state"])  # keys never in widget state
    kernel.run("p.test('{not json')")
    assert "not valid JSON" in kernel.value("p.response.value")
    kernel.run("p.delete()")
    assert kernel.value("len(p.table.rows)") == 0


def test_show_as_a_cells_last_line_renders_the_dashboard_once(kernel):
    """``RunDetails(run).show()`` — the Azure ML idiom — as the last line of a cell: one dashboard, not two."""
    kernel.run("%%aml run -e dash --name once --wait\nx = 1\n")
    out = kernel.run("RunDetails('last').show()")
    assert out["error"] is None, out["error"]
    views = [o for o in out["outputs"] if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(views) == 1, [list(o.get("data", {})) for o in out["outputs"]]


def test_wait_shows_the_live_dashboard_at_once_and_the_output_once(kernel):
    """``--wait`` in a notebook: one live dashboard shown when the run starts (not after it ends), the run's output
    in its log and nowhere else, and the cell's value is the run (not a second dashboard)."""
    out = kernel.run("%%aml run -e dash --name waited --wait\nimport time\nprint('hello from the run')\n"
                     "time.sleep(1.5)\n")
    assert out["error"] is None, out["error"]
    views = [o for o in out["outputs"] if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(views) == 1, [list(o.get("data", {})) for o in out["outputs"]]
    assert "hello from the run" not in out["text"]  # printed and displayed text of the cell
    assert kernel.value("_.get_status()") == "Completed" and kernel.value("_.display_name") == "waited"
    assert "hello from the run" in kernel.value("_.get_logs()")
    again = kernel.run("_")  # the same run shown later is its dashboard again
    assert [o for o in again["outputs"] if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]


def test_a_pipeline_run_shows_its_graph_and_steps_and_a_batch_run_its_progress(kernel, ws):
    out = kernel.run(
        "%%aml step first --out data\nimport os\nopen(os.path.join(outputs.data, 'x.txt'), 'w').write('1')\n")
    assert out["error"] is None, out["error"]
    out = kernel.run("%%aml step second --in data\nimport os\nprint(open(os.path.join(inputs.data, 'x.txt')).read())\n")
    assert out["error"] is None, out["error"]
    out = kernel.run("prun = %aml pipeline run -e dash-pipe --wait")
    assert out["error"] is None, out["error"]
    kernel.run("p = RunDetails(prun.id, live=False)")
    state = kernel.value(
        "{'buttons': {n: (b.description, b.button_style) for n, b in p.graph.buttons.items()},"
        " 'shown': p.graph_box.layout.display, 'rows': [r['name'] for r in p.children_table.rows],"
        " 'static': p.static_html()}")
    assert state["buttons"] == {"first": ["first", "success"], "second": ["second", "success"]}
    assert state["shown"] == "" and state["rows"] == ["first", "second"]
    assert "<svg" in state["static"] and "first" in state["static"] and state["static"].count("aml-step") >= 2
    kernel.run("p.graph.buttons['second'].click()")
    assert kernel.value("p.opened.info.tags['pipeline.step']") == "second"
    out = kernel.run("again = %aml pipeline run -e dash-pipe --wait\nq = RunDetails(again.id, live=False)")
    assert out["error"] is None
    assert kernel.value("[b.description for b in q.graph.buttons.values()]") == ["first ↺", "second ↺"]
    assert kernel.value("[r['name'] for r in q.children_table.rows]") == ["first (reused)", "second (reused)"]
    # a batch run: its progress (mini-batches, failures, rate) in the dashboard
    out = kernel.run(
        "import pandas as pd\nframe = pd.DataFrame({'a': range(50)})\n"
        "open('echo_score.py', 'w').write('def init():\\n    pass\\ndef run(mb):\\n    return list(mb[\"a\"] * 2)\\n')\n"
        "brun = %aml batch --data frame --score echo_score.py --mini-batch 10 -e dash-batch --wait\n"
        "b = RunDetails(brun.id, live=False)")
    assert out["error"] is None, out["error"]
    state = kernel.value("{'bar': (b.batch_bar.value, b.batch_bar.max), 'text': b.batch_text.value, "
                         "'shown': b.batch_box.layout.display, 'static': b.static_html()}")
    assert state["bar"] == [5, 5] and state["shown"] == ""
    assert "<b>5</b> of 5 mini-batches scored" in state["text"] and "mini-batches scored" in state["static"]


def test_a_progress_bar_in_the_log_shows_its_last_state(kernel):
    """tqdm redraws its bar with carriage returns (and many scripts colour their output): the dashboard's log shows
    what a terminal shows — the bar's last state, the words without escape codes — not every redraw on a line."""
    out = kernel.run(
        "%%aml run -e progress --name bar\n"
        "import time\nfrom tqdm import tqdm\n"
        "for _ in tqdm(range(40), mininterval=0, ascii=True, desc='epochs'):\n    time.sleep(0.002)\n"
        "print('\\x1b[32mtrained\\x1b[0m')\n"
    )
    assert out["error"] is None, out["error"]
    kernel.run("d = [m for m in shared_poller().members if isinstance(m, RunDetails)][-1]\n"
               "d.client.runs.wait(d.run_id)\ntime.sleep(1.5)")
    log, raw, static = kernel.value("(d.log.value, d.client.runs.get_logs(d.run_id), d.static_html())")
    assert raw.count("\r") >= 40 and "\x1b[32m" in raw  # the run's log file keeps what it printed
    assert "epochs: 100%" in log and "epochs:  50%" not in log and log.count("epochs:") == 1
    assert "trained" in log and "\x1b" not in log and "[32m" not in log
    assert static.count("epochs:") == 1 and "[32m" not in static  # the saved notebook's copy too


def test_a_run_that_printed_megabytes_opens_at_the_end_of_its_log(kernel):
    """A dashboard opened on a run that printed 20 MB reads the log's last 256 KB (it shows 200 lines), says what it
    left out and where the whole log is — it used to read and split the whole file, on every first look."""
    out = kernel.run(
        "%%aml run -e chatty --name chatty --wait\n"
        "import sys\nfor i in range(600_000):\n    sys.stdout.write(f'batch {i:>7} loss=0.123456789\\n')\n"
        "print('the end')\n"
    )
    assert out["error"] is None, out["error"]
    state = kernel.value(
        "(lambda d: (d.client.runs.read_log(d.run_id, 0, 256 * 1024), d.log.value, d._log_offset))("
        "RunDetails('last'))")
    (text, end), html, offset = state
    assert end == offset > 18_000_000 and len(text) < 256 * 1024 + 300
    assert text.startswith("[aml-magics] ") and "MB of earlier output not shown here" in text
    assert text.endswith("batch  599999 loss=0.123456789\nthe end\n")
    assert "the end" in html and "batch  599999" in html and len(html) < 20_000
