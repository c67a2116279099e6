"""JupyterLab extension benchmark: sidebar first paint with 10,000 runs, route latency, idle server CPU.

    python bench/labextension.py [--quick] [--json PATH]

Starts a real JupyterLab (our server extension + the prebuilt labextension) on a workspace holding
10,000 runs (one of them with a 100,000-point series) and drives headless Chromium (Debian's chromium).
- sidebar_first_paint_s: from a click on the sidebar's tab (JupyterLab ready) to its first run rows;
- runs_route_p50_ms / p99: GET /aml/api/runs?limit=50 (a page of the 10,000), 300 requests;
- series_route_p50_ms: GET /aml/api/runs/RUN/metrics for the 100,000-point series (downsampled to ≤ 2,000);
- idle_server_cpu_percent: the server process's CPU over 30 s with the sidebar open and nothing running
  (the sidebar's polling backs off to 5–30 s when nothing changes).
"""
from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))
from _common import parse_args, percentile, print_table, scratch, timed_gets, write_json  # noqa: E402


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fill(ws: Path, n: int) -> str:
    from aml_magics.core.client import Client

    client = Client(ws)
    store = client.backend.store
    now = time.time()
    for i in range(n):
        store.insert_finished_run(f"bench_{i:05d}", f"exp-{i % 20}", "cell", parent_run_id=None,
                                  display_name=f"run {i}", compute="local", status="Completed",
                                  started=now - 100 + i * 0.001, ended=now - 50 + i * 0.001,
                                  scalars={"loss": 1.0 / (i + 1), "accuracy": i / n})
    from aml_magics import Experiment, Workspace

    os.environ["AML_MAGICS_WORKSPACE"] = str(ws)
    run = Experiment(Workspace.current(), "big-series").start_logging(display_name="100k points")
    run.log_list("curve", [float(i % 977) for i in range(100_000)])
    run.complete()
    return run.id


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    from tests.browser.lab import chromium, jupyterlab, new_page

    root = Path(scratch("bench-labext-"))
    n_runs = 2_000 if args.quick else 10_000
    big = fill(root / "ws", n_runs)
    figures: dict = {}
    with jupyterlab(root) as lab:
        s = requests.Session()
        headers = {"Authorization": f"token {lab['token']}"}
        url = f"{lab['base']}/aml/api"
        def a_page(r):
            assert r.status_code == 200 and len(r.json()["runs"]) == 50

        def the_curve(r):
            body = r.json()["series"]["curve"]
            assert body["total"] == 100_000 and len(body["values"]) <= 2000

        times = timed_gets(s, (f"{url}/runs?limit=50&offset={(i * 50) % (n_runs - 50)}"
                               for i in range(100 if args.quick else 300)), headers, a_page, warmup=20)
        figures["runs_route_p50_ms"] = statistics.median(times)
        figures["runs_route_p99_ms"] = percentile(times, 99)
        series = timed_gets(s, [f"{url}/runs/{big}/metrics"] * (20 if args.quick else 50), headers, the_curve)
        figures["series_route_p50_ms"] = statistics.median(series)
        figures["series_route_p99_ms"] = percentile(series, 99)

        with chromium() as browser:
            page = new_page(browser, 1400, 900)
            page.goto(f"{lab['base']}/lab?token={lab['token']}")
            page.locator("#jp-main-dock-panel").wait_for(timeout=90_000)
            tab = page.locator("li[data-id='amlx-sidebar']")
            tab.wait_for(timeout=60_000)
            page.wait_for_timeout(1500)  # JupyterLab settled (restored layout, kernelspecs)
            t = time.perf_counter()
            tab.click()
            page.locator("#amlx-sidebar .amlx-run-row").first.wait_for(timeout=30_000)
            figures["sidebar_first_paint_s"] = time.perf_counter() - t
            rows = page.locator("#amlx-sidebar .amlx-run-row").count()
            page.wait_for_timeout(5000)  # the sidebar's poll backs off once nothing changes
            window = 10 if args.quick else 30
            c0, t0 = cpu_seconds(lab["pid"]), time.time()
            page.wait_for_timeout(window * 1000)
            figures["idle_server_cpu_percent"] = (cpu_seconds(lab["pid"]) - c0) / (time.time() - t0) * 100
            page.close()
    figures["runs_in_workspace"] = 2_000 if args.quick else 10_000
    print_table("JupyterLab extension", [
        ("sidebar first paint (10,000 runs, a page of 50)", f"{figures['sidebar_first_paint_s']:.2f} s",
         f"{rows} rows painted", "", "≤ 1 s"),
        ("GET /aml/api/runs?limit=50 p50 / p99", f"{figures['runs_route_p50_ms']:.1f} / {figures['runs_route_p99_ms']:.1f} ms",
         "", "", ""),
        ("GET metrics of a 100,000-point series p50 / p99",
         f"{figures['series_route_p50_ms']:.1f} / {figures['series_route_p99_ms']:.1f} ms", "≤ 2,000 points sent", "", ""),
        ("Jupyter server CPU, sidebar open, idle", f"{figures['idle_server_cpu_percent']:.2f} %", "", "", "≈ 0"),
    ])
    write_json("labextension", figures, args.json)


if __name__ == "__main__":
    main()
