"""A real browser (Debian's headless Chromium via Playwright) renders a live RunDetails in JupyterLab 4
and in Notebook 7, and sees its chart and metrics table update while the run logs."""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]

RUN_CELL = (
    "%%aml run -e browser --name live\n"
    "import time\nfrom aml_magics import Run\nrun = Run.get_context()\n"
    "for i in range(150):\n    run.log('loss', 1.0 / (i + 1))\n    run.log('accuracy', i / 150)\n    time.sleep(0.1)\n"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _notebook(path: Path) -> None:
    cells = [("code", "%load_ext aml_magics"), ("code", RUN_CELL)]
    nb = {"cells": [{"cell_type": t, "metadata": {}, "outputs": [], "execution_count": None, "source": s}
                    for t, s in cells],
          "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not os.path.exists(CHROMIUM):
        pytest.fail("Chromium is missing: .ci/run installs it (apt-get install chromium)")
    root = tmp_path_factory.mktemp("lab")
    token, port = secrets.token_hex(16), _free_port()
    settings = root / "settings"
    for plugin, values in {"notebook-extension/tracker": {"autoStartDefaultKernel": True},
                           "apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False}}.items():
        target = settings / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(values))
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(root / "config"), JUPYTER_RUNTIME_DIR=str(root / "runtime"),
               AML_MAGICS_WORKSPACE=str(root / "ws"), JUPYTERLAB_SETTINGS_DIR=str(settings),
               JUPYTERLAB_WORKSPACES_DIR=str(root / "lab-workspaces"))
    _notebook(root / "lab.ipynb")
    _notebook(root / "nb7.ipynb")
    log = open(root / "server.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip", "127.0.0.1", "--port", str(port),
         f"--ServerApp.token={token}", "--allow-root", "--LabApp.news_url=None",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", f"--ServerApp.root_dir={root}"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((root / "server.log").read_text()[-3000:])
            time.sleep(0.5)
    for name in ("lab.ipynb", "nb7.ipynb"):
        # start each notebook's kernel up front: the page attaches to it instead of racing to pick one
        body = json.dumps({"path": name, "type": "notebook", "name": name, "kernel": {"name": "python3"}}).encode()
        req = urllib.request.Request(f"{base}/api/sessions?token={token}", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=60)
    yield {"base": base, "token": token, "root": root}
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copyfile(root / "server.log", ARTIFACTS / "jupyter-server.log")
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    from tests.conftest import kill_workspace_processes

    kill_workspace_processes(root / "ws")


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def _run_all_cells(page) -> None:
    """Run ▸ Run All Cells (the same menu in Lab and Notebook 7) until the dashboard shows.

    Run again if the first request was lost: on a fresh server JupyterLab sometimes replaces the
    notebook's kernel just after connecting (seen in the server log), which drops queued cells."""
    for attempt in range(4):
        page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=90_000)
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
        try:
            page.locator(".aml-chart-canvas").first.wait_for(timeout=20_000)
            return
        except Exception:
            if attempt == 3:
                raise


def _new_page(browser):
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    page.console_lines = []
    page.on("console", lambda m: page.console_lines.append(f"{m.type}: {m.text}"))
    # JupyterLab sometimes asks "Select Kernel" when the kernel specs load after the notebook:
    # take its default (Python 3), as a user would, whenever it shows up
    page.add_locator_handler(page.locator(".jp-Dialog", has_text="Select Kernel"),
                             lambda dialog: page.keyboard.press("Enter"))
    return page


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
    assert page.locator(".aml-chart-panel").count() == 2  # one chart per series: loss and accuracy
    page.wait_for_function(  # the latest-values table moved on too
        "(before) => document.querySelector('.aml-run-details table').innerText !== before",
        arg=first_table, timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / f"{name}-updated.png"), full_page=True)


def test_jupyterlab_renders_and_updates_run_details(server, browser):
    page = _new_page(browser)
    page.goto(f"{server['base']}/lab/tree/lab.ipynb?token={server['token']}")
    page.locator("#jp-main-dock-panel").wait_for(timeout=60_000)
    page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=60_000)
    _run_all_cells(page)
    _watch_dashboard(page, "jupyterlab")
    page.close()


def test_notebook7_renders_and_updates_run_details(server, browser):
    page = _new_page(browser)
    page.goto(f"{server['base']}/notebooks/nb7.ipynb?token={server['token']}")
    page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=60_000)
    _run_all_cells(page)
    _watch_dashboard(page, "notebook7")
    page.close()
