"""The model browser (``%aml models``) and the service panel (``%aml services``)."""
from __future__ import annotations

import json
import threading
import time
from typing import Any

import ipywidgets as w

from ..core import render as r
from ..core.children import leave_signals_to_the_main_thread
from ..core.client import Client
from ..core.errors import AmlError
from ..core.names import default_service_name
from . import theme
from .components import CopySecret, DataTable
from .run_details import Dashboard, RunDetails

PAGE = 50


def _error_html(exc: Exception) -> str:
    text = str(exc) if isinstance(exc, AmlError) else f"{type(exc).__name__}: {exc}"
    return f"<span style='{theme.ERROR}'>{r.esc(text)}</span>"


class ModelBrowser(Dashboard):
    """Search the registry, see a version's tags and lineage, deploy it in one click."""

    def __init__(self, client: Client | None = None, name: str | None = None, live: bool = False):
        super().__init__()
        self.client = client or Client.shared()
        self.name = name
        self.offset = 0
        self.table = DataTable(on_open=self.select, on_page=self.goto, limit=PAGE)
        self.detail = w.HTML()
        self.open_run_button = w.Button(description="Open source run", icon="line-chart", layout=w.Layout(display="none"))
        self.deploy_button = w.Button(description="Deploy", icon="rocket", button_style="primary",
                                      layout=w.Layout(display="none"))
        self.progress = w.FloatProgress(min=0, max=1, layout=w.Layout(display="none", width="240px"))
        self.result = w.HTML()
        self.run_view = w.Output()
        self.selected = None
        self.open_run_button.on_click(lambda _: self.open_run())
        self.deploy_button.on_click(lambda _: self.deploy())
        self.widget = w.VBox([self.table, self.detail, w.HBox([self.open_run_button, self.deploy_button, self.progress]),
                              self.result, self.run_view])
        self.refresh()

    def refresh(self) -> None:
        models = list(self.client.models.list(name=self.name))
        self.models = {m.id: m for m in models}
        page = models[self.offset:self.offset + PAGE]
        self.table.columns = [{"key": "name", "label": "model"}, {"key": "version", "label": "version", "numeric": True},
                              {"key": "framework", "label": "framework"}, {"key": "tags", "label": "tags"},
                              {"key": "run", "label": "source run"}, {"key": "created", "label": "registered"}]
        self.table.rows = [{"_id": m.id, "name": m.name, "version": m.version, "framework": m.framework or "",
                            "tags": r.pairs_text(m.tags), "run": m.run_id or "",
                            "created": r.fmt_time(m.created)} for m in page]
        self.table.total = len(models)
        self.table.offset = self.offset

    def goto(self, offset: int) -> None:
        self.offset = offset
        self.refresh()

    def select(self, model_id: str) -> None:
        m = self.models.get(model_id)
        if m is None:
            return
        self.selected = m
        rows = [("version", m.id), ("framework", m.framework or "unknown"), ("path", m.path),
                ("source run", m.run_id or "—"), ("description", m.description or "")]
        rows += [(f"tag {k}", r.short(v)) for k, v in m.tags.items()] + \
            [(f"property {k}", r.short(v)) for k, v in m.properties.items()]
        self.detail.value = r.html_table(("", ""), rows)
        self.open_run_button.layout.display = "" if m.run_id else "none"
        self.deploy_button.layout.display = ""
        self.result.value = ""

    def open_run(self) -> None:
        if self.selected is None or not self.selected.run_id:
            return
        self.open_below(self.run_view, RunDetails(self.selected.run_id, self.client))

    def deploy(self, wait: bool = False) -> threading.Thread:
        """Deploy the selected version (a default scorer when the framework has one), without blocking."""
        m = self.selected
        name = default_service_name(m.name)  # as %aml deploy and the sidebar name it
        self.deploy_button.disabled = True
        self.progress.layout.display = ""
        self.progress.bar_style = "info"
        started = time.time()
        done, shown = threading.Event(), threading.Lock()  # the bar's last word is the deploy's, never a late tick's

        def tick():
            leave_signals_to_the_main_thread()
            while not done.wait(0.1):
                with shown:
                    if not done.is_set():
                        self.progress.value = min(0.95, (time.time() - started) / 5)

        def work():
            leave_signals_to_the_main_thread()
            try:
                existing = {d.name for d in self.client.deployments.list()}
                service = self.client.deployments.create(name, m.id, update=name in existing)
                with shown:
                    done.set()
                    self.progress.value, self.progress.bar_style = 1.0, "success"
                self.result.value = (f"Deployed <b>{r.esc(name)}</b> in {time.time() - started:.1f} s: "
                                     f"<code>{r.esc(service.scoring_uri)}</code> — see <code>%aml services</code>")
                self.service_name = name
            except Exception as exc:  # noqa: BLE001 - a worker thread must say why it stopped, never die silently
                with shown:
                    done.set()
                    self.progress.bar_style = "danger"
                self.result.value = _error_html(exc)
            finally:
                done.set()
                self.deploy_button.disabled = False

        threading.Thread(target=tick, daemon=True).start()
        worker = threading.Thread(target=work, daemon=True)
        worker.start()
        if wait:
            worker.join()
        return worker

    def static_html(self) -> str:
        return self.client.models.list(name=self.name)._repr_html_()

    def __repr__(self) -> str:
        return repr(self.client.models.list(name=self.name))


class ServicePanel(Dashboard):
    """Services: state, scoring URI, masked keys with copy, log tail, a test form, delete."""

    def __init__(self, client: Client | None = None, live: bool = True):
        super().__init__()
        self.client = client or Client.shared()
        self.table = DataTable(on_open=self.select)
        self.detail = w.HTML()
        self.copy_primary = CopySecret(lambda: self._keys()[0], label="copy primary key")
        self.copy_secondary = CopySecret(lambda: self._keys()[1], label="copy secondary key")
        self.request = w.Textarea(placeholder='{"data": [[...]]}', layout=w.Layout(width="100%", height="80px"))
        self.send_button = w.Button(description="Send", icon="paper-plane")
        self.response = w.HTML()
        self.log = w.HTML()
        self.delete_button = w.Button(description="Delete", icon="trash", button_style="danger")
        self.send_button.on_click(lambda _: self.test(self.request.value))
        self.delete_button.on_click(lambda _: self.delete())
        self.panel = w.VBox([self.detail, w.HBox([self.copy_primary, self.copy_secondary, self.delete_button]),
                             w.HTML("<b>Test</b>"), self.request, self.send_button, self.response,
                             w.HTML("<b>Log</b>"), self.log], layout=w.Layout(display="none"))
        self.widget = w.VBox([self.table, self.panel])
        self.selected: str | None = None
        self._last: Any = None
        self.refresh()
        if live:
            self.start()

    def _keys(self) -> tuple[str, str]:
        return self.client.deployments.get_keys(self.selected)

    def refresh(self) -> bool:
        services = list(self.client.deployments.list())
        stamp = [(d.name, d.state, d.restarts, d.error) for d in services]
        if stamp == self._last:
            return False
        self._last = stamp
        self.services = {d.name: d for d in services}
        self.table.columns = [{"key": "name", "label": "service"}, {"key": "state", "label": "state"},
                              {"key": "uri", "label": "scoring URI"}, {"key": "models", "label": "models"},
                              {"key": "restarts", "label": "restarts", "numeric": True}]
        self.table.rows = [{"_id": d.name, "name": d.name, "state": d.state, "uri": d.scoring_uri,
                            "models": ", ".join(d.models), "restarts": d.restarts} for d in services]
        self.table.total = len(services)
        if self.selected in self.services:
            self._render_detail()
        return True

    def select(self, name: str) -> None:
        self.selected = name
        self.panel.layout.display = ""
        self.response.value = ""
        self._render_detail()

    def _render_detail(self) -> None:
        d = self.services[self.selected]
        masked = "••••••••" if d.auth else "no key (auth off)"
        rows = [("state", d.state), ("scoring URI", d.scoring_uri), ("swagger", d.swagger_uri),
                ("models", ", ".join(d.models)), ("keys", masked), ("restarts", d.restarts)]
        if d.error:
            rows.append(("last problem", d.error))
        self.detail.value = f"<b>{r.esc(d.name)}</b>" + r.html_table(("", ""), rows)
        self._render_log()

    def _render_log(self) -> None:
        """The service log's last lines, newest at the bottom (a failed request's traceback is there)."""
        try:
            tail = self.client.deployments.get_logs(self.selected, tail=60)
        except AmlError as exc:
            self.log.value = _error_html(exc)
            return
        self.log.value = (f"<pre style='max-height:16em;overflow:auto;margin:0;display:flex;flex-direction:column-reverse'>"
                          f"<span>{r.esc(tail) or '(the service has logged nothing yet)'}</span></pre>")

    def test(self, body: str) -> None:
        if not self.selected:
            return
        try:
            json.loads(body)
        except ValueError as exc:
            self.response.value = _error_html(f"not valid JSON: {exc}")
            return
        started = time.perf_counter()
        try:
            answer = self.client.deployments.get(self.selected).run(body)
            ms = (time.perf_counter() - started) * 1000
            self.response.value = (f"<b>200</b> in {ms:.1f} ms<pre style='white-space:pre-wrap'>"
                                   f"{r.esc(json.dumps(answer)[:5000])}</pre>")
        except AmlError as exc:
            self.response.value = _error_html(exc) + "<br><small>The service's log below has the details.</small>"
        self._render_log()  # what the request left in the log: a traceback on a 500

    def delete(self) -> None:
        if not self.selected:
            return
        name, self.selected = self.selected, None
        self.client.deployments.delete(name)
        self.panel.layout.display = "none"
        self.refresh()

    def poll(self) -> str:
        if self._closed:
            return "done"
        return "changed" if self.refresh() else "waiting"

    def static_html(self) -> str:
        return self.client.deployments.list()._repr_html_()

    def __repr__(self) -> str:
        return repr(self.client.deployments.list())
