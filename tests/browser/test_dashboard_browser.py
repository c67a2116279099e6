"""A real browser (Debian's headless Chromium via Playwright) renders a live RunDetails in JupyterLab 4
and in Notebook 7, and sees its chart and metrics table update while the run logs."""
from __future__ import annotations

import pytest

from .lab import ARTIFACTS, IDLE, chromium, jupyterlab, new_page, run_all_cells, save_notebook, write_notebook

pytestmark = [pytest.mark.browser, pytest.mark.slow]

RUN_CELL = (
    "%%aml run -e browser --name live\n"
    "import time\nfrom aml_magics import Run\nrun = Run.get_context()\n"
    "for i in range(150):\n    run.log('loss', 1.0 / (i + 1))\n    run.log('accuracy', i / 150)\n    time.sleep(0.1)\n"
)


REOPEN_CELL = (
    "%%aml run -e reopen --name saved-run --wait\n"
    "from aml_magics import Run\nrun = Run.get_context()\n"
    "for i in range(20):\n    run.log('loss', 1.0 / (i + 1))\n"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("lab")
    for name in ("lab.ipynb", "nb7.ipynb"):
        write_notebook(root / name, ["%load_ext aml_magics", RUN_CELL])
    write_notebook(root / "reopen.ipynb", ["%load_ext aml_magics", REOPEN_CELL])
    with jupyterlab(root, start_kernels_for=("lab.ipynb", "nb7.ipynb", "reopen.ipynb")) as info:
        yield info


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


def _run_all_cells(page) -> None:
    run_all_cells(page, ".aml-chart-canvas", timeout=20_000, failure_shot="run-all-failed")


def _watch_dashboard(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    canvas = page.locator(".aml-chart-canvas").first
    try:
        canvas.wait_for(timeout=60_000)
    except Exception:
        page.screenshot(path=str(ARTIFACTS / f"{name}-failed.png"), full_page=True)
        (ARTIFACTS / f"{name}-console.log").write_text("\n".join(page.console_lines))
        raise
    page.wait_for_function(
        "() => { const c = document.querySelector('.aml-chart-canvas'); return c && +c.dataset.points > 0; }",
        timeout=30_000)
    first = int(canvas.get_attribute("data-points"))
    table = page.locator(".aml-run-details table").first
    table.wait_for(timeout=10_000)
    assert "loss" in table.inner_text()
    first_table = table.inner_text()
    page.screenshot(path=str(ARTIFACTS / f"{name}-running.png"), full_page=True)
    page.wait_for_function(
        f"() => +document.querySelector('.aml-chart-canvas').dataset.points > {first + 10}", timeout=30_000)
    # one chart per series: loss and accuracy (if the first poll saw loss alone, accuracy's chart comes with the next)
    page.wait_for_function("() => document.querySelectorAll('.aml-chart-panel').length === 2", timeout=10_000)
    page.wait_for_function(  # the latest-values table moved on too
        "(before) => document.querySelector('.aml-run-details table').innerText !== before",
        arg=first_table, timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / f"{name}-updated.png"), full_page=True)


def test_jupyterlab_renders_and_updates_run_details(server, browser):
    page = new_page(browser)
    page.goto(f"{server['base']}/lab/tree/lab.ipynb?token={server['token']}")
    page.locator("#jp-main-dock-panel").wait_for(timeout=60_000)
    page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=60_000)
    _run_all_cells(page)
    _watch_dashboard(page, "jupyterlab")
    page.close()


def test_notebook7_renders_and_updates_run_details(server, browser):
    page = new_page(browser)
    page.goto(f"{server['base']}/notebooks/nb7.ipynb?token={server['token']}")
    page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=60_000)
    _run_all_cells(page)
    _watch_dashboard(page, "notebook7")
    page.close()


def _shut_down_kernels(server) -> None:
    import json
    import urllib.request

    base, token = server["base"], server["token"]
    sessions = json.load(urllib.request.urlopen(f"{base}/api/sessions?token={token}", timeout=30))
    for session in sessions:
        req = urllib.request.Request(f"{base}/api/sessions/{session['id']}?token={token}", method="DELETE")
        urllib.request.urlopen(req, timeout=30)


@pytest.mark.parametrize("front_end", ["lab", "notebooks"])
def test_a_saved_notebook_reopened_with_a_new_kernel_shows_each_dashboards_summary(server, browser, front_end):
    """Run, save, close (the kernel shut down), reopen: the static summary the output carries, never
    "Error displaying widget: model not found"; re-running brings the live dashboard back."""
    page = new_page(browser)
    # ?reset: JupyterLab opens only this notebook, not the tabs the earlier tests left in its workspace
    url = (f"{server['base']}/{front_end}/{'tree/' if front_end == 'lab' else ''}reopen.ipynb?"
           f"{'reset&' if front_end == 'lab' else ''}token={server['token']}")
    if front_end == "lab":
        page.goto(url)
        page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=60_000)
        run_all_cells(page, ".aml-chart-canvas")
        save_notebook(page)
        page.close()
    _shut_down_kernels(server)
    page = new_page(browser)
    page.goto(url)
    page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=60_000)
    summary = page.locator(".aml-static-run").first
    try:
        summary.wait_for(state="visible", timeout=60_000)
        page.wait_for_selector(IDLE, timeout=90_000)
        page.wait_for_timeout(1500)  # the widget manager has had its go at the output
        assert summary.is_visible() and "saved-run" in summary.inner_text()
        assert not page.get_by_text("model not found").first.is_visible()
        if front_end == "lab":  # run again: the live dashboard replaces the summary
            page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
            page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
            page.locator(".aml-chart-canvas").first.wait_for(state="visible", timeout=60_000)
            assert not page.locator(".aml-static-run").first.is_visible()
    finally:
        page.screenshot(path=str(ARTIFACTS / f"reopened-{front_end}.png"), full_page=True)
    page.close()
