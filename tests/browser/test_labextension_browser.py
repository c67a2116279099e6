"""The JupyterLab extension end to end in headless Chromium: open the sidebar, submit a notebook with the
toolbar button, watch the run complete, open its run view and see a chart, deploy a registered model and
see it Healthy. Screenshots go to test-artifacts/ (the README's sidebar picture comes from here)."""
from __future__ import annotations

import pytest

from .lab import ARTIFACTS, chromium, jupyterlab, new_page, write_notebook

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TRAIN = [
    "x = 1  # a plain notebook: no magics needed to submit it from the toolbar",
    "import os, time, joblib\nfrom sklearn.datasets import load_digits\nfrom sklearn.linear_model import LogisticRegression\n"
    "from aml_magics import Run\nrun = Run.get_context()\nX, y = load_digits(return_X_y=True)\n"
    "for epoch in range(1, 9):\n"
    "    model = LogisticRegression(max_iter=epoch * 10).fit(X[:800], y[:800])\n"
    "    run.log('accuracy', model.score(X[800:], y[800:]))\n    time.sleep(0.2)\n"
    "os.makedirs('outputs', exist_ok=True)\njoblib.dump(model, 'outputs/model.pkl')\nprint('trained')",
]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("labext")
    write_notebook(root / "train.ipynb", TRAIN)
    with jupyterlab(root) as info:
        yield info


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def test_sidebar_submit_run_view_and_deploy(lab):
    from aml_magics.core.client import Client

    client = Client(lab["root"] / "ws")
    with chromium() as browser:
        page = new_page(browser, 1400, 900)
        page.on("dialog", lambda d: d.accept())
        try:
            page.goto(f"{lab['base']}/lab/tree/train.ipynb?token={lab['token']}")
            page.locator("#jp-main-dock-panel").wait_for(timeout=90_000)
            # the status bar item, and the sidebar behind its tab
            status = page.locator(".amlx-statusbar")
            status.wait_for(timeout=60_000)
            page.wait_for_function("() => document.querySelector('.amlx-statusbar').textContent.includes('AML: local')",
                                   timeout=30_000)
            status.click()
            page.locator("#amlx-sidebar").wait_for(state="visible", timeout=20_000)
            page.locator("#amlx-sidebar .amlx-empty").first.wait_for(timeout=20_000)  # no runs yet

            # submit the notebook from its toolbar button
            page.locator(".amlx-submit-button").first.wait_for(timeout=60_000)
            page.locator(".amlx-submit-button").first.click()
            dialog = page.locator(".jp-Dialog")
            dialog.wait_for(timeout=20_000)
            assert dialog.locator(".amlx-experiment").input_value() == "train"
            assert dialog.locator(".amlx-compute").input_value() == "local"
            dialog.locator(".jp-Dialog-button.jp-mod-accept").click()
            row = page.locator("#amlx-sidebar .amlx-run-row.amlx-highlight")
            row.wait_for(timeout=30_000)
            run_id = row.get_attribute("data-run-id")
            # a notification says so, with a link to the run; the sidebar groups runs by experiment
            toast = page.locator(".Toastify__toast", has_text="Submitted train.ipynb as run")
            toast.wait_for(timeout=10_000)
            assert toast.get_by_role("button", name="Open run").count() == 1
            page.locator("#amlx-sidebar .amlx-group[data-experiment='train']").wait_for(timeout=10_000)
            shot(page, "labextension-submitted")
            # the status bar keeps up: the running run is counted while it runs, and not once it has ended
            page.wait_for_function("() => document.querySelector('.amlx-statusbar').textContent.includes('1 running')",
                                   timeout=30_000)
            page.locator(f"#amlx-sidebar .amlx-run-row[data-run-id='{run_id}'][data-status='Completed']").wait_for(
                timeout=180_000)
            page.wait_for_function("() => document.querySelector('.amlx-statusbar').textContent.includes('0 running')",
                                   timeout=5_000)
            info = client.runs.get(run_id)
            assert info.status == "Completed" and info.kind == "notebook" and info.experiment == "train"

            # its run view in the main area: a chart with the logged points, the log tail
            page.locator(f"#amlx-sidebar .amlx-run-row[data-run-id='{run_id}']").click()
            page.wait_for_function(
                "() => { const c = document.querySelector('.amlx-chart[data-metric=\"accuracy\"] canvas');"
                " return c && +c.dataset.points === 8; }", timeout=30_000)
            page.wait_for_function("() => [...document.querySelectorAll('.amlx-log')].some(l => "
                                   "l.textContent.includes('max_iter'))", timeout=30_000)  # the run's stderr
            shot(page, "labextension-run-view")

            # a run whose log cannot be read (a disk fault): its view says so, and still shows the run
            faulty = client.runs.start_logging("faults", display_name="unreadable log")
            faulty.log("loss", 0.5)
            faulty.flush()
            log_path = lab["root"] / "ws" / "runs" / faulty.id / "logs" / "std_log.txt"
            log_path.mkdir(parents=True)  # a directory where the log file should be
            page.locator(f"#amlx-sidebar .amlx-run-row[data-run-id='{faulty.id}']").click()
            page.wait_for_function("(id) => [...document.querySelectorAll('.amlx-log')].some(l => "
                                   "l.textContent.includes('The log cannot be read') && l.textContent.includes(id))",
                                   arg=faulty.id, timeout=30_000)
            page.wait_for_function(
                "() => { const c = document.querySelector('.amlx-chart[data-metric=\"loss\"] canvas');"
                " return c && +c.dataset.points === 1; }", timeout=30_000)  # the rest of the view refreshed
            faulty.complete()

            # register the run's model, then deploy it from the sidebar and see the endpoint Healthy
            client.models.register("e2e-model", "outputs/model.pkl", run_id=run_id)
            model_row = page.locator("#amlx-sidebar .amlx-model-row[data-model='e2e-model:1']")
            model_row.wait_for(timeout=60_000)
            model_row.locator(".amlx-deploy").click()
            page.locator("#amlx-sidebar .amlx-endpoint-row[data-endpoint='e2e-model'][data-state='Healthy']").wait_for(
                timeout=90_000)
            assert client.deployments.get_info("e2e-model").state == "Healthy"
            # Test in an inline form: what was sent and what came back, side by side (no browser prompt)
            endpoint = page.locator("#amlx-sidebar .amlx-endpoint-row[data-endpoint='e2e-model']")
            endpoint.locator(".amlx-test").click()
            page.locator("#amlx-sidebar .amlx-test-input").fill('{"data": [' + ",".join(["[0]" * 1]) + "]}")
            page.locator("#amlx-sidebar .amlx-test-send").click()
            result = page.locator("#amlx-sidebar .amlx-test-result")
            result.wait_for(timeout=20_000)
            page.wait_for_function("() => ['ok', 'error'].includes(document.querySelector('.amlx-test-result')"
                                   ".dataset.outcome)", timeout=20_000)
            assert result.get_attribute("data-outcome") == "error"  # one feature for a 64-feature model: a 400
            assert "expected 64 features" in result.inner_text()
            digits = "[" + ",".join(["0.0"] * 64) + "]"
            page.locator("#amlx-sidebar .amlx-test-input").fill('{"data": [' + digits + "]}")
            page.locator("#amlx-sidebar .amlx-test-send").click()
            page.wait_for_function("() => document.querySelector('.amlx-test-result').dataset.outcome === 'ok'",
                                   timeout=20_000)
            assert result.inner_text().startswith("200 in")
            shot(page, "labextension-sidebar")

            # a sweep's run view lists its trials: the notebook's leaderboard, best first, best row marked
            from aml_magics.core.types import RunSubmission
            from aml_magics.sweep.settings import sweep_submission
            from aml_magics.sweep.space import parse_cell

            cell = "from aml_magics import Run\nk = choice(1, 2, 3)\nRun.get_context().log('acc', k / 10)\n"
            space, spans = parse_cell(cell)
            trial = RunSubmission(kind="cell", experiment="search", source_dir=lab["root"], entry="__aml_cell__.py",
                                  code=cell)
            parent = client.runs.submit(sweep_submission(trial, space, primary_metric="acc", sampling="grid",
                                                         spans=spans))
            assert client.runs.wait(parent.id, timeout=120).status == "Completed"
            page.locator(f"#amlx-sidebar .amlx-run-row[data-run-id='{parent.id}']").click()
            best_row = page.locator(".amlx-trials-table tr.amlx-best")
            best_row.wait_for(timeout=30_000)
            assert best_row.get_attribute("data-run-id") == client.runs.best_child(parent.id).id
            assert page.locator(".amlx-trials-table tr[data-run-id]").count() == 3
            assert page.locator(".amlx-trials-table tr[data-run-id]").first.get_attribute("data-run-id") == \
                best_row.get_attribute("data-run-id")  # best first
            shot(page, "labextension-sweep-view")

            # a pipeline run's view lists its steps, in the order they ran; a click opens a step's own view
            from aml_magics.core.pipelines import PipelineSpec, PipelineStep, binding

            spec = PipelineSpec([
                PipelineStep("make", "cell", "__aml_cell__.py", outputs=["o"],
                             code="import os\nopen(os.path.join(outputs.o, 'x'), 'w').write('1')\n"),
                PipelineStep("use", "cell", "__aml_cell__.py", code="print('used')\n",
                             inputs={"i": binding("make", "o")})])
            prun = client.pipelines.submit(spec, "pipe", source_dir=lab["root"])
            assert client.runs.wait(prun.id, timeout=120).status == "Completed"
            page.locator(f"#amlx-sidebar .amlx-run-row[data-run-id='{prun.id}']").click()
            view = page.locator(f"[id='amlx-run-{prun.id}']")  # the sweep's view is still open in another tab
            view.locator(".amlx-trials h3", has_text="Steps (2)").wait_for(timeout=30_000)
            step_rows = view.locator(".amlx-trials-table tr[data-run-id]")
            assert step_rows.count() == 2
            assert step_rows.first.inner_text().startswith("make") and step_rows.nth(1).inner_text().startswith("use")
            used = client.pipelines.steps(prun.id)["use"].run_id
            step_rows.nth(1).click()
            page.locator(f"[id='amlx-run-{used}']").wait_for(state="visible", timeout=20_000)  # the step's own view
            shot(page, "labextension-pipeline-view")

            # another left panel in front: the status bar item brings the workspace back
            page.locator(".jp-SideBar [data-id='filebrowser']").first.click()
            page.locator("#amlx-sidebar").wait_for(state="hidden", timeout=10_000)
            # a run submitted elsewhere (a cell, another tab) is counted within seconds, sidebar hidden or not
            from aml_magics.core.types import RunSubmission

            elsewhere = client.runs.submit(RunSubmission(kind="cell", experiment="elsewhere", source_dir=lab["root"],
                                                         entry="__aml_cell__.py", code="import time\ntime.sleep(6)\n"))
            page.wait_for_function("() => document.querySelector('.amlx-statusbar').textContent.includes('1 running')",
                                   timeout=5_000)
            client.runs.wait(elsewhere.id, timeout=60)
            page.wait_for_function("() => document.querySelector('.amlx-statusbar').textContent.includes('0 running')",
                                   timeout=5_000)
            page.locator(".amlx-statusbar").click()
            page.locator("#amlx-sidebar").wait_for(state="visible", timeout=10_000)

            # it follows the theme: switch JupyterLab to dark and the sidebar goes dark with it
            light_bg = page.evaluate("getComputedStyle(document.querySelector('#amlx-sidebar')).backgroundColor")
            page.locator(".lm-MenuBar-itemLabel", has_text="Settings").first.click()
            page.locator(".lm-Menu-itemLabel", has_text="Theme").first.hover()
            page.locator(".lm-Menu-itemLabel", has_text="JupyterLab Dark").first.click()
            page.wait_for_selector("body[data-jp-theme-light='false']", state="attached", timeout=30_000)
            page.wait_for_function(
                "(before) => getComputedStyle(document.querySelector('#amlx-sidebar')).backgroundColor !== before",
                arg=light_bg, timeout=10_000)
            page.wait_for_selector("#jupyterlab-splash", state="detached", timeout=30_000)
            page.wait_for_timeout(500)
            shot(page, "labextension-dark")
        except Exception:
            shot(page, "labextension-failed")
            (ARTIFACTS / "labextension-console.log").write_text("\n".join(page.console_lines))
            raise
        finally:
            page.close()
            for d in client.deployments.list():
                client.deployments.delete(d.name)


def test_a_portal_link_opens_the_run_view_and_a_hostile_one_opens_nothing(lab):
    """``run.get_portal_url()`` of a v1 notebook is ``/lab?aml-run=RUN_ID``: opening it shows that run's view with
    its chart; a link whose run id is markup opens nothing and runs nothing."""
    import urllib.parse

    from aml_magics import v1
    from aml_magics.core.client import Client

    client = Client(lab["root"] / "ws")
    run = client.runs.start_logging("portal", display_name="linked run")
    for i in range(5):
        run.log("loss", 1.0 / (i + 1))
    run.complete()
    v1.install(client=client, quiet=True)
    try:
        from azureml.core import Run as V1Run

        link = V1Run(run.experiment, run.id, _client=client).get_portal_url()
    finally:
        v1.uninstall()
        v1.set_client(None)
    assert link == f"/lab?aml-run={run.id}"
    with chromium() as browser:
        page = new_page(browser, 1300, 900)
        alerts: list[str] = []
        page.on("dialog", lambda d: (alerts.append(d.message), d.dismiss()))
        try:
            page.goto(f"{lab['base']}{link}&token={lab['token']}", wait_until="commit")
            page.locator(f"#amlx-run-view-{run.id}").wait_for(timeout=90_000)
            page.wait_for_function(
                "() => { const c = document.querySelector('.amlx-chart[data-metric=\"loss\"] canvas');"
                " return c && +c.dataset.points === 5; }", timeout=30_000)
        finally:
            page.close()
        # a fresh page in a workspace of its own (nothing restored from the first page's layout)
        page = new_page(browser, 1300, 900)
        page.on("dialog", lambda d: (alerts.append(d.message), d.dismiss()))
        try:
            hostile = urllib.parse.quote("<img src=x onerror=alert(1)>")
            page.goto(f"{lab['base']}/lab/workspaces/hostile-link?aml-run={hostile}&token={lab['token']}",
                      wait_until="commit")
            page.locator("#jp-main-dock-panel").wait_for(timeout=90_000)
            page.locator(".amlx-statusbar").wait_for(timeout=60_000)  # the extension is active
            page.wait_for_timeout(2000)
            assert page.locator("[id^='amlx-run-view-']").count() == 0 and not alerts
            assert page.locator("img[src='x']").count() == 0
        finally:
            page.close()


def test_the_run_view_of_a_run_with_many_metrics_charts_a_few_and_the_table_picks_them(lab):
    """A run logging 40 metrics, the first named with a comma: the run view charts the first 12 and says so, a
    chart's points grow by exactly what was logged (the comma once made every poll re-append the whole series), a
    metric clicked in the table gets its chart and a charted one clicked loses it; past 24 charts a click is refused
    with a note that outlives the next polls."""
    from aml_magics.core.client import Client

    client = Client(lab["root"] / "ws")
    run = client.runs.start_logging("many", display_name="per-class metrics")
    names = ["f1,macro"] + [f"class_{i:02d}" for i in range(39)]
    for name in names:
        run.log_list(name, [0.1, 0.2, 0.3])
    run.flush()
    chart = "(n) => { const b = [...document.querySelectorAll('.amlx-chart')].find(b => b.dataset.metric === n);" \
            " const c = b && b.querySelector('canvas'); return c ? +c.dataset.points : -1; }"
    with chromium() as browser:
        page = new_page(browser, 1300, 900)
        try:
            page.goto(f"{lab['base']}/lab?aml-run={run.id}&token={lab['token']}", wait_until="commit")
            page.locator(f"#amlx-run-view-{run.id}").wait_for(timeout=90_000)
            page.wait_for_function("() => document.querySelectorAll('.amlx-run-view .amlx-chart').length === 12",
                                   timeout=30_000)
            assert "Charts: 12 of 40 metrics" in page.locator(".amlx-chart-note").inner_text()
            assert page.evaluate(chart, "f1,macro") == 3
            run.log_list("f1,macro", [0.4, 0.5])
            run.flush()
            page.wait_for_function(f"(n) => ({chart})(n) === 5", arg="f1,macro", timeout=30_000)
            page.wait_for_timeout(2500)  # two more polls: nothing appended twice
            assert page.evaluate(chart, "f1,macro") == 5
            page.locator(".amlx-metric-row[data-metric='class_30']").click()
            page.wait_for_function(f"(n) => ({chart})(n) === 3", arg="class_30", timeout=30_000)
            page.locator(".amlx-metric-row[data-metric='class_00']").click()
            page.wait_for_function(f"(n) => ({chart})(n) === -1", arg="class_00", timeout=30_000)
            page.wait_for_timeout(2500)
            assert page.evaluate(chart, "class_00") == -1  # taken off stays off
            assert page.locator(".amlx-run-view .amlx-chart").count() == 12
            shot(page, "labextension-many-metrics")
            for i in range(11, 23):  # up to the limit of 24 charts
                page.locator(f".amlx-metric-row[data-metric='class_{i:02d}']").click()
            page.wait_for_function("() => document.querySelectorAll('.amlx-run-view .amlx-chart').length === 24",
                                   timeout=30_000)
            page.locator(".amlx-metric-row[data-metric='class_23']").click()
            note = page.locator(".amlx-chart-note")
            assert "At most 24 charts" in note.inner_text()
            page.wait_for_timeout(2500)  # polls re-render the note: the refusal is still there to be read
            assert "At most 24 charts" in note.inner_text() and "Charts: 24 of 40" in note.inner_text()
            assert page.evaluate(chart, "class_23") == -1
        finally:
            page.close()
    run.complete()


def test_the_run_view_of_a_run_stopped_at_its_time_limit_says_why(lab):
    """A Canceled run shows why the system stopped it (its time limit), as a Failed run shows its error."""
    from aml_magics.core.client import Client
    from aml_magics.core.types import RunSubmission

    client = Client(lab["root"] / "ws")
    run = client.runs.submit(RunSubmission(kind="cell", experiment="limited", source_dir=lab["root"], entry="c.py",
                                           code="import time\ntime.sleep(60)\n", timeout_s=1))
    assert client.runs.wait(run.id, timeout=60).status == "Canceled"
    with chromium() as browser:
        page = new_page(browser, 1300, 900)
        try:
            page.goto(f"{lab['base']}/lab/workspaces/limited?aml-run={run.id}&token={lab['token']}",
                      wait_until="commit")
            view = page.locator(f"#amlx-run-view-{run.id}")
            view.wait_for(timeout=90_000)
            error = view.locator(".amlx-error")
            error.wait_for(timeout=30_000)
            assert error.inner_text() == "the run exceeded its time limit of 1 s and was canceled"
            assert view.locator(".amlx-badge").first.inner_text() == "Canceled"
        finally:
            page.close()
