"""Dashboard benchmarks: log → widget latency, first render, bytes per update, run history at 10k runs.

    python bench/dashboards.py [--quick] [--json PATH]

JSON keys: log_to_widget_latency_s, first_render_cold_s, first_render_warm_s, bytes_per_update_100k,
runs_list_10k_s.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import median_of, parse_args, print_table, ratio, write_json  # noqa: E402


def seed_run(client, points: int) -> str:
    run = client.runs.start_logging("bench-dash", display_name="seed")
    run.log_list("loss", [1.0 / (i + 1) for i in range(points)])
    run.log_list("acc", [i / points for i in range(points)])
    run.complete()
    return run.id


RENDER_CODE = """
import json, os, sys, time
t = time.perf_counter()
from aml_magics.widgets import RunDetails
d = RunDetails(sys.argv[1], live=False)
bundle = d._repr_mimebundle_()
cold = time.perf_counter() - t
t = time.perf_counter()
d2 = RunDetails(sys.argv[1], live=False)
d2._repr_mimebundle_()
warm = time.perf_counter() - t
print(json.dumps({"cold": cold, "warm": warm}))
"""

PLOTLY_CODE = """
import json, time
t = time.perf_counter()
import plotly.graph_objects as go
f = go.FigureWidget(data=[go.Scatter(y=list(range(2000)))])
f._repr_mimebundle_()
print(json.dumps({"cold": time.perf_counter() - t, "esm_bytes": len(getattr(f, "_esm", "") or "")}))
"""


def first_render(env: dict, run_id: str) -> dict:
    out = subprocess.run([sys.executable, "-c", RENDER_CODE, run_id], capture_output=True, text=True, env=env,
                         timeout=120)
    if out.returncode:
        raise RuntimeError(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def plotly_render() -> dict | None:
    out = subprocess.run([sys.executable, "-c", PLOTLY_CODE], capture_output=True, text=True, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else None


def bytes_per_update(client, updates: int) -> tuple[float, int, int]:
    """A 100,000-point series then updates of 100 new points: bytes our chart sends per update,
    against resending the displayed trace (2,000 points) and the raw series."""
    from aml_magics.widgets.components import MetricChart

    chart = MetricChart()
    chart.set_panels([("loss", "loss")])
    base = [(i, 1.0e9 + i, 1.0 / (i + 1)) for i in range(100_000)]
    chart.feed("loss", "run", base)
    chart.push()
    sizes = []
    for u in range(updates):
        start = 100_000 + u * 100
        chart.feed("loss", "run", [(i, 1.0e9 + i, 1.0 / (i + 1)) for i in range(start, start + 100)])
        sizes.append(chart.push())
    s = chart.series("loss", "run")
    resend_trace = len(json.dumps(s.full().to_message(), separators=(",", ":")))
    # the series are kept packed (array('d')): as lists, the way they would go over the wire
    raw = len(json.dumps({"x": list(s.steps), "t": list(s.stamps), "y": list(s.values)}, separators=(",", ":")))
    return statistics.median(sizes), resend_trace, raw


def runs_list(client, n: int, repeats: int) -> tuple[float, float]:
    store = client.backend.store
    from aml_magics.backends.local.ids import new_run_id

    for i in range(n):
        run_id = f"{new_run_id('history')}_{i}"
        pk = store.create_run(run_id, "history", "cell", compute="local", status="Completed",
                              display_name=f"run-{i}", tags={"i": i})
        key = store.metric_key(pk, "score", "scalar")
        store.append_metrics([(key, 0, time.time(), i / n)])
    listing = median_of(lambda: _timed(lambda: client.runs.list(experiment="history", limit=50)), repeats)
    from aml_magics.widgets.runs import RunHistory

    widget = median_of(lambda: _timed(lambda: RunHistory(client, experiment="history", live=False)), repeats)
    return listing, widget


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


LATENCY_CELL = """%%aml run -e bench-latency --name lat
import os, time
from aml_magics import Run
run = Run.get_context()
for i in range({n}):
    while not os.path.exists({gate!r} + str(i)):
        time.sleep(0.005)
    run.log("t", time.time())
"""


def log_to_widget_latency(tmp: Path, env: dict, n: int) -> list[float]:
    """Real kernel, real run: time from run.log() to the value being in the dashboard's widget state."""
    from tests.kernel import Kernel

    k = Kernel(env, str(tmp))
    try:
        k.run("%load_ext aml_magics\nimport time\nfrom aml_magics.widgets.poller import shared_poller")
        gate = str(tmp / "gate")
        k.run(LATENCY_CELL.format(n=n, gate=gate))
        k.run("d = shared_poller().members[-1]\n"
              "def seen(i):\n    s = d.chart.series('t', 'lat')\n    while len(s) <= i:\n        time.sleep(0.002)\n"
              "    return time.time() - s.values[i]\n")
        delays = []
        for i in range(n):
            time.sleep(0.8)  # the poller has backed off: measure the worst case, not the best
            Path(f"{gate}{i}").write_text("go")
            out = k.run(f"print(seen({i}))")
            delays.append(float(out["text"].strip().splitlines()[-1]))
        return delays
    finally:
        k.kill()


def main() -> None:
    args = parse_args(__doc__)
    repeats = 3 if args.quick else 7
    n_runs = 2_000 if args.quick else 10_000
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        os.environ["AML_MAGICS_WORKSPACE"] = str(tmp / "ws")
        env = dict(os.environ)
        from aml_magics.core.client import Client

        client = Client.shared()
        run_id = seed_run(client, 10_000)
        renders = [first_render(env, run_id) for _ in range(repeats)]
        cold = statistics.median(r["cold"] for r in renders)
        warm = statistics.median(r["warm"] for r in renders)
        plotly = plotly_render()
        per_update, resend_trace, raw = bytes_per_update(client, 20)
        latencies = log_to_widget_latency(tmp, env, 5 if args.quick else 10)
        latency = statistics.median(latencies)
        listing, widget = runs_list(client, n_runs, repeats)

    rows = [
        ("log -> visible in widget state (median; worst)", f"{latency:.2f} s; {max(latencies):.2f} s",
         "Azure ML RunDetails refresh 5-60 s (documented)", ratio(latency, 5.0), "<= 1 s"),
        ("RunDetails first render, cold process", f"{cold:.2f} s",
         f"plotly FigureWidget {plotly['cold']:.2f} s" if plotly else "plotly FigureWidget: not installed",
         ratio(cold, plotly["cold"]) if plotly else "n/a", "<= 2 s"),
        ("RunDetails first render, warm", f"{warm:.3f} s", "-", "-", "<= 0.5 s"),
        ("bytes per update, 100k-point series (+100 pts)", f"{per_update:,.0f} B",
         f"resend shown trace {resend_trace:,} B; raw series {raw:,} B", ratio(per_update, resend_trace), "small"),
        (f"%aml runs, {n_runs:,} runs (page of 50): list; widget", f"{listing:.3f} s; {widget:.3f} s", "-", "-",
         "<= 0.5 s"),
    ]
    print_table(f"bench/dashboards.py ({'quick' if args.quick else 'full'})", rows)
    write_json("dashboards", {
        "log_to_widget_latency_s": round(latency, 3),
        "first_render_cold_s": round(cold, 3),
        "first_render_warm_s": round(warm, 4),
        "bytes_per_update_100k": round(per_update),
        "runs_list_10k_s": round(max(listing, widget), 4),
        "anchors": {"plotly_figurewidget_cold_s": plotly and round(plotly["cold"], 3),
                    "plotly_figurewidget_esm_bytes": plotly and plotly["esm_bytes"],
                    "resend_trace_bytes": resend_trace, "raw_series_bytes": raw,
                    "latency_worst_s": round(max(latencies), 3), "runs": n_runs},
    }, args.json)


if __name__ == "__main__":
    main()
