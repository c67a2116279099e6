"""Metric chart options side by side, in headless Chromium (Debian's chromium): our canvas module
(`aml_magics/widgets/static/chart.js`), uPlot and plotly.js, on the same data in the same page.

    python bench/charts.py [--quick] [--json PATH]

For each library, a dashboard of 3 line charts with POINTS points each (a RunDetails with three metrics):
- cold_render_ms: a fresh page: the library's script evaluated, the 3 charts created and painted (two
  animation frames after the last call), median of REPEATS pages;
- warm_update_ms: 50 new points appended to each chart and painted (median of 20 updates);
- shipped_kb: what the page loads once (script + CSS);
- update_bytes: what one such update costs on the wire from the kernel, mean of 40 successive updates. Ours
  (and any library behind the same widget) gets the incremental series message MetricChart really sends
  (new points; a whole downsampled series when one passes 2,000 points); plotly's FigureWidget restyles
  whole traces, so its figure is the JSON of the full arrays.
uPlot and plotly.js come from the JupyterLab extension's dev dependencies (labextension/node_modules).
"""
from __future__ import annotations

import json
import shutil
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))
from _common import parse_args, print_table, ratio, write_json  # noqa: E402

CHART_JS = ROOT / "aml_magics" / "widgets" / "static" / "chart.js"
STYLE = ROOT / "aml_magics" / "widgets" / "static" / "style.css"
NODE = ROOT / "labextension" / "node_modules"
UPLOT = (NODE / "uplot" / "dist" / "uPlot.iife.min.js", NODE / "uplot" / "dist" / "uPlot.min.css")
PLOTLY = (NODE / "plotly.js-dist-min" / "plotly.min.js",)

FRAMES = "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"

# each returns {cold, ok} for a fresh page; `window.bench.update(k)` appends 50 points to every chart
SETUP = {
    "ours": """async ([src, n]) => {
      const t0 = performance.now();
      const url = URL.createObjectURL(new Blob([src], {type: "text/javascript"}));
      const mod = await import(url);
      const handlers = {};
      const state = {kind: "lines", panels: [0, 1, 2].map(i => ({id: "m" + i, title: "metric " + i})),
                     x_mode: "step", height: 180, parcoords: {}};
      const model = {get: k => state[k], on: (e, f) => (handlers[e] = handlers[e] || []).push(f),
                     off: () => {}, send: () => {}};
      const emit = m => (handlers["msg:custom"] || []).forEach(f => f(m));
      const el = document.getElementById("root");
      mod.default.render({model, el});
      const series = (from, to) => { const fx = [], ft = [], fy = [];
        for (let i = from; i < to; i++) { fx.push(i); ft.push(1.7e9 + i); fy.push(Math.exp(-i / 300) + 0.01 * Math.sin(i)); }
        return {fx, ft, fy}; };
      const msg = (from, to) => ({type: "series", updates: [0, 1, 2].map(i => ({panel: "m" + i, trace: "run",
        ...series(from, to), tx: [], tt: [], ty: [], total: to}))});
      emit(msg(0, n));
      await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
      const cold = performance.now() - t0;
      let size = n;
      window.bench = {update: () => { emit(msg(size, size + 50)); size += 50; }};
      return {cold, ok: +document.querySelector(".aml-chart-canvas").dataset.points === n};
    }""",
    "uPlot": """async ([src, css, n]) => {
      const t0 = performance.now();
      const style = document.createElement("style"); style.textContent = css; document.head.append(style);
      (0, eval)(src);
      const make = (from, to) => { const x = [], y = [];
        for (let i = from; i < to; i++) { x.push(i); y.push(Math.exp(-i / 300) + 0.01 * Math.sin(i)); } return [x, y]; };
      const el = document.getElementById("root");
      const data = [0, 1, 2].map(() => make(0, n));
      const charts = data.map((d, i) => new uPlot({width: 1000, height: 180, title: "metric " + i,
        series: [{label: "step"}, {label: "run", stroke: "#1f77b4"}]}, d, el));
      await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
      const cold = performance.now() - t0;
      let size = n;
      window.bench = {update: () => { const [x, y] = make(size, size + 50); size += 50;
        data.forEach((d, i) => { d[0] = d[0].concat(x); d[1] = d[1].concat(y); charts[i].setData(d); }); }};
      return {cold, ok: el.querySelectorAll("canvas").length === 3};
    }""",
    "plotly.js": """async ([src, n]) => {
      const t0 = performance.now();
      (0, eval)(src);
      const make = (from, to) => { const x = [], y = [];
        for (let i = from; i < to; i++) { x.push(i); y.push(Math.exp(-i / 300) + 0.01 * Math.sin(i)); } return [x, y]; };
      const el = document.getElementById("root");
      const divs = [0, 1, 2].map(() => { const d = document.createElement("div"); el.append(d); return d; });
      await Promise.all(divs.map((d, i) => { const [x, y] = make(0, n);
        return Plotly.newPlot(d, [{x, y, type: "scatter", mode: "lines", name: "run"}],
                              {height: 180, width: 1000, title: {text: "metric " + i}, margin: {t: 30}}); }));
      await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
      const cold = performance.now() - t0;
      let size = n;
      window.bench = {update: () => { const [x, y] = make(size, size + 50); size += 50;
        divs.forEach(d => Plotly.extendTraces(d, {x: [x], y: [y]}, [0])); }};
      return {cold, ok: el.querySelectorAll(".main-svg").length >= 3};
    }""",
}


def sources(name: str) -> list:
    if name == "ours":
        return [CHART_JS.read_text()]
    if name == "uPlot":
        return [UPLOT[0].read_text(), UPLOT[1].read_text()]
    return [PLOTLY[0].read_text()]


def shipped_kb(name: str) -> float:
    files = {"ours": (CHART_JS, STYLE), "uPlot": UPLOT, "plotly.js": PLOTLY}[name]
    return round(sum(f.stat().st_size for f in files) / 1024, 1)


def measure(browser, name: str, points: int, repeats: int) -> dict:
    colds, warms = [], []
    for _ in range(repeats):
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.set_content('<html><body><div id="root" style="width:1000px"></div></body></html>')
        result = page.evaluate(SETUP[name], [*sources(name), points])
        if not result["ok"]:
            raise RuntimeError(f"{name}: the charts did not render")
        colds.append(result["cold"])
        if not warms:
            for k in range(21):
                ms = page.evaluate("async () => { const t0 = performance.now(); window.bench.update();"
                                   f" await ({FRAMES})(); return performance.now() - t0; }}")
                if k:
                    warms.append(ms)
        page.close()
    return {"cold_render_ms": round(statistics.median(colds), 1),
            "warm_update_ms": round(statistics.median(warms), 2), "shipped_kb": shipped_kb(name)}


def update_bytes(points: int, updates: int = 40) -> tuple[float, float]:
    """Mean bytes of one update (50 new points on each of 3 charts), over `updates` successive updates from
    `points` points on: (ours, FigureWidget's). Ours includes the updates that re-bucket a series once it
    passes MetricChart's 2,000 points per trace (those resend the series, downsampled)."""
    from aml_magics.widgets.components import MetricChart

    chart = MetricChart()
    chart.set_panels([(f"m{i}", f"metric {i}") for i in range(3)])

    def feed(a: int, b: int) -> None:
        for i in range(3):
            chart.feed(f"m{i}", "run", [(s, 1.7e9 + s, 1.0 / (s + 1)) for s in range(a, b)])

    feed(0, points)
    chart.push()
    before, full = chart.bytes_sent, 0
    for k in range(updates):
        n = points + 50 * k
        feed(n, n + 50)
        chart.push()
        xs = list(range(n + 50))  # FigureWidget restyles the whole x and y of every trace
        full += len(json.dumps({"data": [{"x": xs, "y": [1.0 / (s + 1) for s in xs]} for _ in range(3)]},
                               separators=(",", ":")))
    return round((chart.bytes_sent - before) / updates), round(full / updates)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    points, repeats = (500, 2) if args.quick else (2000, 7)
    missing = [str(p) for p in (*UPLOT, *PLOTLY) if not p.exists()]
    if missing:
        sys.exit(f"missing {', '.join(missing)}: run `jlpm install` in labextension/ (scripts/test does)")
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    figures: dict = {"points_per_chart": points, "charts": 3}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True,
                                    args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        try:
            for name in ("ours", "uPlot", "plotly.js"):
                figures[name] = measure(browser, name, points, repeats)
        finally:
            browser.close()
    ours_bytes, figure_widget_bytes = update_bytes(points, 10 if args.quick else 40)
    figures["update_bytes"] = {"ours": ours_bytes, "plotly FigureWidget": figure_widget_bytes}
    o, u, pl = figures["ours"], figures["uPlot"], figures["plotly.js"]
    rows = []
    for key, label, target in (("cold_render_ms", "cold render, 3 charts (ms)", "≤ 2000"),
                               ("warm_update_ms", "warm update +50 pts (ms)", "≤ 500"),
                               ("shipped_kb", "shipped once per page (KB)", "")):
        rows.append((label, o[key], f"uPlot {u[key]}", ratio(o[key], u[key]), target))
        rows.append(("", "", f"plotly.js {pl[key]}", ratio(o[key], pl[key]), ""))
    rows.append(("bytes per update, mean (3 × 50 pts)", ours_bytes, f"FigureWidget {figure_widget_bytes}",
                 ratio(ours_bytes, figure_widget_bytes), ""))
    print_table(f"Metric charts in Chromium ({points} points × 3 charts)", rows)
    write_json("charts", figures, args.json)


if __name__ == "__main__":
    main()
