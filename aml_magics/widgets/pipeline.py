"""A pipeline's graph: steps left to right in dependency order, coloured by state.

``graph_svg`` is the static picture (saved notebooks, no kernel); ``PipelineGraph`` the live one inside a pipeline
run's ``RunDetails`` (a button per step: click it for the step's dashboard); ``PipelineGraphView`` shows the
notebook's steps before they run (``%aml pipeline show``). Step names are text: escaped in SVG, plain in buttons.
"""
from __future__ import annotations

from typing import Any, Callable

import ipywidgets as w

from ..core import render as r
from ..core.pipelines import PipelineSpec, parse_binding

NODE_W, NODE_H, GAP_X, GAP_Y, PAD = 150, 38, 56, 16, 8
COLORS = {"Completed": "#2e7d32", "Failed": "#c62828", "Running": "#1565c0", "Canceled": "#757575",
          "Queued": "#ef6c00", "Starting": "#ef6c00", "NotStarted": "#9e9e9e", "Finalizing": "#1565c0",
          "NotRun": "#bdbdbd", "Reused": "#558b2f"}
BUTTON_STYLES = {"Completed": "success", "Reused": "success", "Failed": "danger", "Running": "info",
                 "Finalizing": "info", "Queued": "warning", "Starting": "warning", "NotStarted": "warning"}


def edges(spec: PipelineSpec) -> list[tuple[str, str, str]]:
    """(from step, to step, output name) for every binding."""
    out = []
    for s in spec.steps:
        for value in s.inputs.values():
            b = parse_binding(value)
            if b:
                out.append((b[0], s.name, b[1]))
    return out


def step_states(spec: PipelineSpec, children: list) -> dict[str, tuple[str, str | None]]:
    """step → (state, child run id); a step reused from an earlier run is "Reused"."""
    states: dict[str, tuple[str, str | None]] = {s.name: ("NotRun", None) for s in spec.steps}
    for c in sorted(children, key=lambda c: c.created or 0):
        name = c.tags.get("pipeline.step")
        if name in states:
            state = "Reused" if c.tags.get("pipeline.reused_from") else c.status
            states[name] = (state, c.run_id)
    return states


def graph_svg(spec: PipelineSpec, states: dict[str, tuple[str, str | None]] | None = None) -> str:
    states = states or {}
    levels = spec.levels()
    pos: dict[str, tuple[int, int]] = {}
    for col, level in enumerate(levels):
        for row, name in enumerate(level):
            pos[name] = (PAD + col * (NODE_W + GAP_X), PAD + row * (NODE_H + GAP_Y))
    width = PAD * 2 + len(levels) * NODE_W + (len(levels) - 1) * GAP_X
    height = PAD * 2 + max(len(level) for level in levels) * (NODE_H + GAP_Y) - GAP_Y
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' class='aml-pipeline-graph' width='{width}' height='{height}' "
             f"viewBox='0 0 {width} {height}' style='font:12px sans-serif'>",
             "<defs><marker id='aml-arrow' viewBox='0 0 10 10' refX='9' refY='5' markerWidth='7' markerHeight='7' "
             "orient='auto'><path d='M0,0L10,5L0,10z' fill='#888'/></marker></defs>"]
    for a, b, out in edges(spec):
        (x1, y1), (x2, y2) = pos[a], pos[b]
        x1, y1, y2 = x1 + NODE_W, y1 + NODE_H / 2, y2 + NODE_H / 2
        mid = (x1 + x2) / 2
        parts.append(f"<path d='M{x1},{y1} C{mid},{y1} {mid},{y2} {x2},{y2}' fill='none' stroke='#888' "
                     f"marker-end='url(#aml-arrow)'><title>{r.esc(a)}.{r.esc(out)} → {r.esc(b)}</title></path>")
    for name, (x, y) in pos.items():
        state = states.get(name, ("NotRun", None))[0]
        color = COLORS.get(state, "#9e9e9e")
        label = name if len(name) <= 18 else name[:17] + "…"
        dash = " stroke-dasharray='5,3'" if state == "Reused" else ""
        parts.append(f"<g class='aml-step' data-state='{r.esc(state)}'><title>{r.esc(name)}: {r.esc(state)}</title>"
                     f"<rect x='{x}' y='{y}' width='{NODE_W}' height='{NODE_H}' rx='6' fill='{color}' "
                     f"fill-opacity='0.15' stroke='{color}' stroke-width='2'"
                     f"{dash}/>"
                     f"<text x='{x + 8}' y='{y + 16}' font-weight='bold'>{r.esc(label)}</text>"
                     f"<text x='{x + 8}' y='{y + 31}' fill='{color}'>{r.esc(state)}</text></g>")
    parts.append("</svg>")
    return "".join(parts)


class PipelineGraph:
    """The live graph: a column of buttons per dependency level; a click opens that step's run."""

    def __init__(self, spec: PipelineSpec, on_open: Callable[[str], Any]):
        self.spec = spec
        self.on_open = on_open
        self.runs: dict[str, str | None] = {}
        self.buttons: dict[str, w.Button] = {}
        columns = []
        for level in spec.levels():
            col = []
            for name in level:
                b = w.Button(description=name, tooltip=f"{name}: not run", layout=w.Layout(width="160px"))
                b.on_click(lambda _, n=name: self._click(n))
                self.buttons[name] = b
                col.append(b)
            columns.append(w.VBox(col))
        arrows = []
        for i, col in enumerate(columns):
            arrows.append(col)
            if i < len(columns) - 1:
                arrows.append(w.HTML("<div style='padding-top:6px;color:#888'>→</div>"))
        self.widget = w.VBox([w.HTML("<b>Pipeline</b> <small>(click a step for its run)</small>"),
                              w.HBox(arrows, layout=w.Layout(flex_flow="row wrap"))])

    def _click(self, name: str) -> None:
        run_id = self.runs.get(name)
        if run_id:
            self.on_open(run_id)

    def update(self, states: dict[str, tuple[str, str | None]]) -> None:
        for name, (state, run_id) in states.items():
            b = self.buttons.get(name)
            if b is None:
                continue
            self.runs[name] = run_id
            label = name + (" ↺" if state == "Reused" else "")
            if b.description != label:
                b.description = label
            style = BUTTON_STYLES.get(state, "")
            if b.button_style != style:
                b.button_style = style
            b.tooltip = f"{name}: {state}" + (f" ({run_id})" if run_id else "")


class PipelineGraphView:
    """``%aml pipeline show`` without a run: the notebook's steps as they would run."""

    def __init__(self, spec: PipelineSpec):
        self.spec = spec

    def _repr_html_(self) -> str:
        return graph_svg(self.spec)

    def __repr__(self) -> str:
        return "Pipeline: " + " → ".join(", ".join(level) for level in self.spec.levels())
