"""Start a real JupyterLab server and a headless Chromium for the browser tests (shared by both modules)."""
from __future__ import annotations

import contextlib
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

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_notebook(path: Path, cells: list[str]) -> None:
    nb = {"cells": [{"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None, "source": s}
                    for s in cells],
          "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb))


@contextlib.contextmanager
def jupyterlab(root: Path, start_kernels_for: tuple[str, ...] = (), theme: str | None = None):
    """JupyterLab on 127.0.0.1 with its own config, settings and workspace (``root/ws``); ``theme``: e.g.
    "JupyterLab Dark"."""
    if not os.path.exists(CHROMIUM):
        pytest.fail("Chromium is missing: .ci/run installs it (apt-get install chromium)")
    token, port = secrets.token_hex(16), free_port()
    settings = root / "settings"
    plugins = {"notebook-extension/tracker": {"autoStartDefaultKernel": True},
               "apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False}}
    if theme:
        plugins["apputils-extension/themes"] = {"theme": theme}
    for plugin, values in plugins.items():
        target = settings / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(values))
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(root / "config"), JUPYTER_RUNTIME_DIR=str(root / "runtime"),
               AML_MAGICS_WORKSPACE=str(root / "ws"), JUPYTERLAB_SETTINGS_DIR=str(settings),
               JUPYTERLAB_WORKSPACES_DIR=str(root / "lab-workspaces"))
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
    for name in start_kernels_for:
        # start each notebook's kernel up front: the page attaches to it instead of racing to pick one
        body = json.dumps({"path": name, "type": "notebook", "name": name, "kernel": {"name": "python3"}}).encode()
        req = urllib.request.Request(f"{base}/api/sessions?token={token}", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=60)
    try:
        yield {"base": base, "token": token, "root": root, "pid": proc.pid}
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        shutil.copyfile(root / "server.log", ARTIFACTS / f"jupyter-server-{root.name}.log")
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        from tests.conftest import kill_workspace_processes

        kill_workspace_processes(root / "ws")


@contextlib.contextmanager
def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def new_page(browser, width: int = 1300, height: int = 1000):
    page = browser.new_page(viewport={"width": width, "height": height})
    page.console_lines = []
    page.on("console", lambda m: page.console_lines.append(f"{m.type}: {m.text}"))
    # JupyterLab sometimes asks "Select Kernel" when the kernel specs load after the notebook:
    # take its default (Python 3), as a user would, whenever it shows up
    page.add_locator_handler(page.locator(".jp-Dialog", has_text="Select Kernel"),
                             lambda dialog: page.keyboard.press("Enter"))
    return page


IDLE = ".jp-Notebook-ExecutionIndicator[data-status='idle'] >> visible=true"  # the shown notebook's kernel


def save_notebook(page, *, attempts: int = 6) -> None:
    """Save the shown notebook once its kernel is idle (a cell still writing output dirties it again after a save)
    and until JupyterLab says it is saved: Ctrl+S again if the first press went nowhere (focus in an output)."""
    page.wait_for_selector(IDLE, timeout=90_000)
    for attempt in range(attempts):
        page.locator(".jp-Notebook").first.click(position={"x": 5, "y": 5})  # the notebook, not an output, has focus
        page.keyboard.press("Control+s")
        try:
            page.wait_for_function("() => !document.querySelector('.jp-mod-dirty')", timeout=10_000)
            return
        except Exception:
            if attempt == attempts - 1:
                raise


def run_all_cells(page, until: str, *, timeout: int = 30_000, idle_timeout: int = 90_000, attempts: int = 4,
                  failure_shot: str | None = None) -> None:
    """Run ▸ Run All Cells (the same menu in Lab and Notebook 7) until ``until`` shows.

    Run again if the first request was lost: on a fresh server JupyterLab sometimes replaces the notebook's kernel
    just after connecting (seen in the server log), which drops queued cells. On the last failure a screenshot
    (``failure_shot``) and the page's console are saved as artifacts."""
    for attempt in range(attempts):
        page.wait_for_selector(IDLE, timeout=idle_timeout)
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
        try:
            page.locator(until).first.wait_for(timeout=timeout)
            return
        except Exception:
            if attempt == attempts - 1:
                if failure_shot:
                    ARTIFACTS.mkdir(exist_ok=True)
                    page.screenshot(path=str(ARTIFACTS / f"{failure_shot}.png"), full_page=True)
                    (ARTIFACTS / f"{failure_shot}-console.log").write_text("\n".join(page.console_lines))
                raise
