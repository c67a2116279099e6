"""Names from the workspace are text, never markup: a workspace full of hostile names (run, experiment, metric,
tag, param, model tag and description, service error, log text) is shown by every dashboard, by the static
fallback of saved notebooks and by the JupyterLab sidebar and run view in real Chromium — and no script runs.

Each payload bumps ``window.__pwned`` if the browser ever parses it as markup."""
from __future__ import annotations

import pytest

from .lab import ARTIFACTS, chromium, jupyterlab, new_page, run_all_cells, write_notebook

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PAYLOADS = [
    '"><img src=x onerror="window.__pwned=(window.__pwned||0)+1">',
    "<svg onload=window.__pwned=(window.__pwned||0)+1>",
    "<iframe srcdoc='<script>parent.__pwned=(parent.__pwned||0)+1</script>'></iframe>",
]
HOSTILE = PAYLOADS[0]


def populate(ws) -> dict:
    """Runs, a model and a failed service whose every name a user controls is hostile."""
    import joblib
    from sklearn.linear_model import LogisticRegression

    from aml_magics.core.client import Client

    client = Client(ws)
    ids = []
    for i, payload in enumerate(PAYLOADS):
        run = client.runs.start_logging(payload.replace("/", "_"), display_name=payload, tags={payload: payload})
        run.log_param(payload, payload)
        for step in range(5):
            run.log(payload, step * 0.1 + i)
            run.log("loss", 1.0 / (step + 1) + i)
        run.log(f"note {payload}", payload)  # a string metric
        run.flush()
        log = ws / "runs" / run.id / "logs" / "std_log.txt"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(f"printed by the run: {payload}\n")
        run.fail(payload) if i == 0 else run.complete()
        ids.append(run.id)
    model_file = ws.parent / "model.pkl"
    joblib.dump(LogisticRegression().fit([[0.0], [1.0]], [0, 1]), model_file)
    client.models.register("hostile-model", model_file, tags={HOSTILE: HOSTILE}, description=HOSTILE)
    score = ws.parent / "score.py"
    score.write_text(f"def init():\n    print({HOSTILE!r})\n    raise RuntimeError({HOSTILE!r})\n"
                     "def run(raw):\n    return raw\n")
    try:
        client.deployments.create("hostile-svc", ["hostile-model:1"], score=score, timeout=60)
    except Exception:  # noqa: BLE001 - init() fails on purpose: the error text is hostile
        pass
    return {"runs": ids}


def cells(ids: list[str]) -> list[str]:
    return [
        "%load_ext aml_magics",
        "from aml_magics.widgets import RunDetails, ModelBrowser, ServicePanel\n"
        f"RunDetails({ids[0]!r})",
        f"%aml compare {ids[0]} {ids[1]} {ids[2]} --metric loss",
        "%aml runs",
        "mb = ModelBrowser()\nmb.select('hostile-model:1')\nmb",
        "sp = ServicePanel(live=False)\nsp.select('hostile-svc')\nsp",
        "%aml",
    ]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    made = populate(root / "ws")
    write_notebook(root / "hostile.ipynb", cells(made["runs"]))
    with jupyterlab(root, start_kernels_for=("hostile.ipynb",)) as info:
        info.update(made)
        yield info


def pwned(page) -> int:
    return page.evaluate("() => (window.__pwned || 0) + [...document.querySelectorAll('iframe')].reduce("
                         "(n, f) => { try { return n + (f.contentWindow.__pwned || 0); } catch (e) { return n; } }, 0)")


def test_dashboards_and_sidebar_render_hostile_names_as_text(lab):
    with chromium() as browser:
        page = new_page(browser, 1400, 1000)
        try:
            page.goto(f"{lab['base']}/lab/tree/hostile.ipynb?token={lab['token']}")
            page.locator("#jp-main-dock-panel").wait_for(timeout=90_000)
            page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=60_000)
            run_all_cells(page, ".aml-chart-canvas", timeout=20_000)
            page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=120_000)
            # every dashboard is there: RunDetails, the comparison, the run history, model browser, service panel
            page.wait_for_function("() => document.querySelectorAll('.aml-table').length >= 4", timeout=60_000)
            page.wait_for_function("() => document.querySelectorAll('.aml-chart-canvas').length >= 2", timeout=30_000)
            # hover each chart so its tooltip shows the (hostile) trace names
            for canvas in page.locator(".aml-chart-canvas").all():
                canvas.scroll_into_view_if_needed()
                box = canvas.bounding_box()
                if box:
                    page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] / 2)
                    page.wait_for_timeout(150)
            text = page.locator(".jp-Notebook").inner_text()
            assert HOSTILE in text, "the hostile names are shown, as text"
            assert PAYLOADS[1] in text
            page.screenshot(path=str(ARTIFACTS / "hostile-names-notebook.png"), full_page=True)

            # the sidebar lists them; the run view shows the metric and param names
            page.locator(".amlx-statusbar").click()
            page.locator("#amlx-sidebar .amlx-run-row").first.wait_for(timeout=30_000)
            page.locator("#amlx-sidebar .amlx-model-row").first.wait_for(timeout=30_000)
            page.locator("#amlx-sidebar .amlx-endpoint-row").first.wait_for(timeout=30_000)
            page.locator(f"#amlx-sidebar .amlx-run-row[data-run-id='{lab['runs'][0]}']").click()
            page.wait_for_function("(p) => [...document.querySelectorAll('.amlx-run-view .amlx-table')].some("
                                   "t => t.innerText.includes(p))", arg=HOSTILE, timeout=30_000)
            page.wait_for_function("(p) => [...document.querySelectorAll('.amlx-log')].some(l => "
                                   "l.textContent.includes(p))", arg=HOSTILE, timeout=30_000)
            page.wait_for_timeout(500)
            page.screenshot(path=str(ARTIFACTS / "hostile-names-sidebar.png"))
            assert pwned(page) == 0, "a name from the workspace ran as script"
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "hostile-names-failed.png"), full_page=True)
            (ARTIFACTS / "hostile-names-console.log").write_text("\n".join(page.console_lines))
            raise
        finally:
            page.close()


def test_static_fallbacks_render_hostile_names_as_text(lab):
    """What a saved notebook shows without a kernel (GitHub, nbviewer, nbconvert): the static HTML of every
    dashboard, loaded as a page in Chromium."""
    from aml_magics.core.client import Client
    from aml_magics.widgets.registry import ModelBrowser, ServicePanel
    from aml_magics.widgets.run_details import RunDetails
    from aml_magics.widgets.runs import RunComparison, RunHistory, WorkspaceOverview

    client = Client(lab["root"] / "ws")
    ids = lab["runs"]
    views = [RunDetails(ids[0], client, live=False), RunComparison(ids, client, metric="loss", live=False),
             RunHistory(client, live=False), ModelBrowser(client), ServicePanel(client, live=False),
             WorkspaceOverview(client, live=False)]
    parts = []
    for view in views:
        parts.append(view.static_html())
        view.close()
    parts.append(client.runs.get(ids[0])._repr_html_())
    parts.append(client.models.list()._repr_html_())
    parts.append(client.deployments.list()._repr_html_())
    page_html = "<html><body>" + "".join(parts) + "</body></html>"
    (ARTIFACTS / "hostile-static.html").write_text(page_html)
    with chromium() as browser:
        page = new_page(browser)
        page.set_content(page_html)
        page.wait_for_timeout(500)
        assert pwned(page) == 0, "a static fallback let a name run as script"
        assert HOSTILE in page.locator("body").inner_text()
        page.close()
