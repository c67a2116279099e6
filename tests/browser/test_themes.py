"""Every dashboard reads in JupyterLab's light and dark themes: the text of the compare table's differing rows, the
best trial's row and every table cell has WCAG AA contrast (4.5:1) against the background it is drawn on, as
computed in real Chromium. Screenshots of both themes are saved as artifacts."""
from __future__ import annotations

import pytest

from .lab import ARTIFACTS, chromium, jupyterlab, new_page, run_all_cells, write_notebook

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CELLS = [
    "%load_ext aml_magics",
    "parent = get_ipython().run_cell_magic('aml', 'sweep --metric acc --sampling grid -e themes --wait',\n"
    "    'from aml_magics import Run\\nk = choice(1, 2, 3)\\nRun.get_context().log(\"acc\", k / 10)\\n')\nparent",
    "kids = [c.id for c in parent.get_children()]\n%aml compare {kids[0]} {kids[1]} {kids[2]}",
]

# the contrast of each matched element's text with what is behind it (translucent layers blended over the first
# opaque one), as WCAG defines it
CONTRAST_JS = """(selector) => {
  const parse = (c) => { const m = c.match(/rgba?\\(([^)]+)\\)/); if (!m) return null;
    const p = m[1].split(',').map(Number); return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1}; };
  const behind = (el) => { const layers = [];
    for (let e = el; e; e = e.parentElement) { const c = parse(getComputedStyle(e).backgroundColor);
      if (c && c.a > 0) { layers.push(c); if (c.a >= 1) break; } }
    let out = {r: 255, g: 255, b: 255};
    for (const l of layers.reverse()) out = {r: l.r * l.a + out.r * (1 - l.a), g: l.g * l.a + out.g * (1 - l.a),
                                             b: l.b * l.a + out.b * (1 - l.a)};
    return out; };
  const lum = (c) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b); };
  return Array.from(document.querySelectorAll(selector)).filter(e => e.offsetParent && e.textContent.trim())
    .map(e => { const fg = parse(getComputedStyle(e).color), bg = behind(e);
      const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
      return {text: e.textContent.trim().slice(0, 40), ratio: (a + 0.05) / (b + 0.05)}; });
}"""


@pytest.mark.parametrize("theme", ["JupyterLab Light", "JupyterLab Dark"])
def test_tables_and_highlights_read_in_both_themes(tmp_path_factory, theme):
    root = tmp_path_factory.mktemp("theme")
    write_notebook(root / "themes.ipynb", CELLS)
    slug = theme.split()[-1].lower()
    with jupyterlab(root, start_kernels_for=("themes.ipynb",), theme=theme) as server, chromium() as browser:
        page = new_page(browser, height=1600)
        page.goto(f"{server['base']}/lab/tree/themes.ipynb?token={server['token']}")
        page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=60_000)
        try:
            run_all_cells(page, "tr.aml-diff", timeout=40_000, idle_timeout=120_000)  # a lost run costs this
            page.locator(".aml-table tr.aml-best").first.wait_for(timeout=30_000)
            assert page.evaluate("() => document.body.dataset.jpThemeLight") == ("true" if slug == "light" else "false")
            checks = {}
            for what, selector in {"best trial row": ".aml-table tr.aml-best td",
                                   "compare rows that differ": "tr.aml-diff td",
                                   "table cells": ".aml-table td, .aml-table th",
                                   "chart legend and buttons": ".aml-legend-item[aria-pressed='true'], .aml-chart-btn",
                                   }.items():
                found = page.evaluate(CONTRAST_JS, selector)
                assert found, f"nothing matched {selector}"
                checks[what] = min(found, key=lambda f: f["ratio"])
            poor = {k: v for k, v in checks.items() if v["ratio"] < 4.5}
            assert not poor, f"{theme}: text below 4.5:1 contrast: {poor}"
        finally:
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"theme-{slug}.png"), full_page=True)
