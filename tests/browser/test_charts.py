"""The metric charts in a real browser (JupyterLab 4, Chromium): readable ticks and axis titles, a legend on
overlays whose entries hide and show their series, the log-scale toggle, zoom / pan / reset, PNG and SVG export
(a workspace name in the SVG stays text), and a parallel-coordinates plot with ticks, a log axis, a categorical
axis and a colour legend."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from .lab import ARTIFACTS, chromium, jupyterlab, new_page, run_all_cells, write_notebook

pytestmark = [pytest.mark.browser, pytest.mark.slow]

HOSTILE = "<img src=x onerror=alert(1)>"
CELLS = [
    "%load_ext aml_magics",
    "from aml_magics import Experiment, Workspace\n"
    "exp = Experiment(Workspace.current(), 'charts')\nids = []\n"
    "for k in range(2):\n"
    f"    run = exp.start_logging(display_name={HOSTILE!r})\n"
    "    run.log_list('loss', [1.0 / (i + 1) + k * 0.01 for i in range(0, 100_001, 500)])\n"
    "    for i in range(201):\n        run.log('big', i * 500.0, step=i * 500)\n"
    "    run.log('one', 0.5)\n    run.complete()\n    ids.append(run.id)\n"
    "a, b = ids",
    "%aml compare $a $b --metric big",
    "%aml show $a",
    "from aml_magics.widgets.components import MetricChart\n"
    "MetricChart(kind='parcoords', height=240, parcoords={'dims': [\n"
    "    {'name': 'alpha', 'values': [0.0001, 0.01, 1.0], 'log': True},\n"
    "    {'name': 'kernel', 'values': [0.0, 1.0, 2.0], 'categories': ['linear', 'rbf', 'poly']},\n"
    "    {'name': 'acc', 'values': [0.8, 0.9, 0.85]}], 'color': [0.8, 0.9, 0.85]})",
]


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    root = tmp_path_factory.mktemp("charts")
    write_notebook(root / "charts.ipynb", CELLS)
    with jupyterlab(root, start_kernels_for=("charts.ipynb",)) as server, chromium() as browser:
        page = new_page(browser, height=2400)
        page.goto(f"{server['base']}/lab/tree/charts.ipynb?token={server['token']}")
        page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=60_000)
        run_all_cells(page, ".aml-parcoords canvas[data-axes]", timeout=60_000, idle_timeout=120_000,
                      failure_shot="charts-failed")
        page.wait_for_function("() => [...document.querySelectorAll('.aml-chart-canvas')]"
                               ".every(c => c.dataset.yticks !== undefined)", timeout=30_000)
        try:
            yield page
        finally:
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "charts.png"), full_page=True)


def panel(page, metric: str, nth: int = 0):
    return page.locator(f".aml-chart-panel[data-panel='{metric}']").nth(nth)


def test_ticks_are_readable_with_one_format_per_axis(page):
    big = panel(page, "big").locator("canvas")  # the compare chart: steps 0 … 100,000, values 0 … 100,000
    xt, yt = big.get_attribute("data-xticks").split("|"), big.get_attribute("data-yticks").split("|")
    assert len(xt) >= 2 and all(t.endswith("k") or t == "0" for t in xt), xt  # 20k, 40k … never 80000 beside 1e+5
    assert all(t.endswith("k") or t.lstrip("-") == "0" for t in yt), yt
    one = panel(page, "one").locator("canvas")  # a one-point metric
    labels = one.get_attribute("data-yticks").split("|")
    assert "0.50" in labels or "0.5" in labels, labels
    assert not any("e-1" in t for t in labels), labels  # no -5.55e-17
    assert all(t.isdigit() or t.startswith("-") and t[1:].isdigit() for t in one.get_attribute("data-xticks").split("|"))
    assert "e" not in "".join(panel(page, "loss").locator("canvas").get_attribute("data-xticks").split("|"))


def test_the_overlay_has_a_legend_whose_entries_hide_and_show_series(page):
    legend = panel(page, "big").locator(".aml-legend-item")
    assert legend.count() == 2
    names = legend.all_inner_texts()
    assert all(HOSTILE in n for n in names) and names[0] != names[1]  # equal names told apart, shown as text
    assert page.locator(".aml-legend-item img").count() == 0
    legend.first.click()
    assert legend.first.get_attribute("aria-pressed") == "false"
    legend.first.click()
    assert legend.first.get_attribute("aria-pressed") == "true"


def test_log_scale_toggle_and_zoom_pan_reset(page):
    p = panel(page, "loss")
    canvas = p.locator("canvas")
    linear = canvas.get_attribute("data-yticks")
    p.locator(".aml-chart-btn", has_text="log").click()
    page.wait_for_function("(el) => el.dataset.log === '1'", arg=p.element_handle())
    logged = canvas.get_attribute("data-yticks").split("|")
    assert logged != linear.split("|") and "1" in logged and "0.1" in logged, logged
    before = canvas.get_attribute("data-xticks")
    box = canvas.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + 80, y)
    page.mouse.down()
    page.mouse.move(box["x"] + 160, y, steps=5)
    page.mouse.up()
    page.wait_for_function("(el) => el.dataset.zoomed === '1'", arg=p.element_handle())
    zoomed = canvas.get_attribute("data-xticks")
    assert zoomed != before
    page.keyboard.down("Shift")  # Shift+drag pans
    page.mouse.move(box["x"] + 200, y)
    page.mouse.down()
    page.mouse.move(box["x"] + 120, y, steps=5)
    page.mouse.up()
    page.keyboard.up("Shift")
    assert canvas.get_attribute("data-xticks") != zoomed
    canvas.dblclick()
    page.wait_for_function("(el) => el.dataset.zoomed === ''", arg=p.element_handle())
    assert canvas.get_attribute("data-xticks") == before
    p.locator(".aml-chart-btn", has_text="log").click()


def test_png_and_svg_export_with_names_as_text(page, tmp_path):
    p = panel(page, "big")
    with page.expect_download() as got:
        p.locator(".aml-chart-btn", has_text="PNG").click()
    png = tmp_path / "big.png"
    got.value.save_as(png)
    assert got.value.suggested_filename == "big.png" and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with page.expect_download() as got:
        p.locator(".aml-chart-btn", has_text="SVG").click()
    svg = tmp_path / "big.svg"
    got.value.save_as(svg)
    tree = ET.parse(svg)  # well-formed XML: the run names are escaped
    texts = [t.text for t in tree.iter("{http://www.w3.org/2000/svg}text")]
    assert any(HOSTILE in (t or "") for t in texts)  # the legend, as text
    assert not list(tree.iter("{http://www.w3.org/2000/svg}img")) and "<img" not in svg.read_text()
    assert "step" in texts and "big" in texts  # axis titles


def test_parallel_coordinates_have_ticks_log_and_category_axes_and_a_colour_legend(page):
    import json

    canvas = page.locator(".aml-parcoords canvas[data-axes]")
    axes = {a["name"]: a for a in json.loads(canvas.get_attribute("data-axes"))}
    assert axes["alpha"]["log"] and axes["alpha"]["ticks"] == ["1e-4", "0.001", "0.01", "0.1", "1"]
    assert axes["kernel"]["ticks"] == ["linear", "rbf", "poly"]
    assert len(axes["acc"]["ticks"]) >= 2
    assert canvas.get_attribute("data-colour") == "0.8|0.9"
