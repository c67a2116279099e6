// aml-magics metric charts: small multiples of line charts (kind "lines") or a parallel-coordinates
// plot (kind "parcoords"), drawn on canvas. Series arrive as incremental messages from the kernel
// (fixed points appended, tail replaced); nothing already drawn is ever resent. Colours follow the
// JupyterLab theme through its CSS variables.
//
// Each line chart has axis titles, readable ticks (integer steps, one format per axis, no clipped
// label), a legend on overlays whose entries hide and show their series, a log-scale toggle, zoom
// (drag across the chart; Shift+drag pans; double-click or "reset" goes back) and PNG / SVG export.
// The same drawing code paints the canvas and writes the SVG. Names come from the workspace: they are
// only ever text (text nodes, escaped SVG), never markup.

// bidirectional overrides and isolates in a name are shown as escapes, not acted on (a name read backwards,
// "Trojan Source"): the same rule as the notebook's HTML (core.render.esc)
const BIDI = /[\u202a-\u202e\u2066-\u2069]/g;
const shownText = (s) => String(s).replace(BIDI, (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"));

const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"];

function css(el, name, fallback) {
  const v = getComputedStyle(el).getPropertyValue(name).trim();
  return v || fallback;
}

// ---- ticks (exported for the unit tests) -------------------------------------------------------

/** A 1-2-5 step giving about `count` intervals over `span`; at least 1 when `integer`. */
export function niceStep(span, count, integer = false) {
  if (!(span > 0)) return 1;
  const raw = span / Math.max(1, count);
  const base = Math.pow(10, Math.floor(Math.log10(raw)));
  const f = raw / base;
  const step = base * (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10);
  return integer ? Math.max(1, Math.round(step)) : step;
}

/** Round ticks between lo and hi: `{values, step}`. Values are snapped (0, not -5.55e-17). */
export function niceTicks(lo, hi, count, integer = false) {
  if (!isFinite(lo) || !isFinite(hi)) return { values: [], step: 1 };
  if (hi < lo) [lo, hi] = [hi, lo];
  if (lo === hi) { const d = Math.abs(lo) * 0.1 || 1; lo -= d; hi += d; }
  const step = niceStep(hi - lo, count, integer);
  const values = [];
  const first = Math.ceil(lo / step - 1e-9);
  for (let k = first; k * step <= hi + step * 1e-9 && values.length < 1000; k++) {
    const v = k * step;
    values.push(Math.abs(v) < step * 1e-9 ? 0 : +v.toPrecision(12));
  }
  return { values, step };
}

/** Ticks on a log10 axis between lo > 0 and hi: powers of ten, with 2 and 5 when under two decades. */
export function logTicks(lo, hi) {
  if (!(lo > 0) || !(hi > 0)) return { values: [], step: 1 };
  if (hi < lo) [lo, hi] = [hi, lo];
  const a = Math.floor(Math.log10(lo)), b = Math.ceil(Math.log10(hi));
  const mult = b - a <= 2 ? [1, 2, 5] : [1];
  const every = Math.max(1, Math.ceil((b - a) / 8));
  const values = [];
  for (let e = a; e <= b; e += every) {
    for (const m of mult) {
      const v = +(m * Math.pow(10, e)).toPrecision(12);
      if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) values.push(v);
    }
  }
  return { values, step: 0, log: true };
}

const SUFFIX = [[1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "k"]];

function decimalsOf(x) {
  if (!(x > 0)) return 0;
  const s = x.toPrecision(12).replace(/0+$/, "").replace(/\.$/, "");
  const dot = s.indexOf(".");
  return dot < 0 ? 0 : Math.min(12, s.length - dot - 1);
}

/** Labels for ticks, one format for the whole axis: plain numbers with as many decimals as the step
 * needs, k/M/G/T from 10,000 up, and exponents for tiny values; never `80000` beside `1.00e+5`. */
export function tickLabels(ticks) {
  const { values, step, log } = ticks;
  if (!values.length) return [];
  const big = Math.max(...values.map(Math.abs));
  if (log) return values.map((v) => (v >= 1e4 || v < 1e-3 ? v.toExponential(0).replace("e+", "e") : String(v)));
  if (big >= 1e4) {
    const [unit, s] = SUFFIX.find(([u]) => big >= u * 10) || [1e3, "k"];
    const d = decimalsOf(step / unit);
    return values.map((v) => (v === 0 ? "0" : (v / unit).toFixed(d) + s));
  }
  if (big > 0 && big < 1e-3) {
    const d = Math.max(0, Math.min(6, decimalsOf(step / Math.pow(10, Math.floor(Math.log10(big))))));
    return values.map((v) => (v === 0 ? "0" : v.toExponential(d)));
  }
  const d = decimalsOf(step);
  return values.map((v) => v.toFixed(d));
}

/** Ticks for a time axis (epoch seconds): 1-2-5-10-15-30 s, minutes, hours; labels HH:MM(:SS). */
export function timeTicks(lo, hi, count) {
  const steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];
  const span = Math.max(1, hi - lo);
  const step = steps.find((s) => span / s <= count) || 86400 * Math.ceil(span / count / 86400);
  const values = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi && values.length < 1000; v += step) values.push(v);
  const withSeconds = step < 60;
  const labels = values.map((v) => new Date(v * 1000).toLocaleTimeString([], withSeconds
    ? { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false }
    : { hour: "2-digit", minute: "2-digit", hour12: false }));
  return { values, step, labels };
}

/** A value in a tooltip or the colour legend: 4 significant digits. */
export function fmt(v) {
  if (v === null || v === undefined || !isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e6 || a < 1e-4)) return v.toExponential(3);
  return String(+v.toPrecision(4));
}

function fmtTime(t) {
  return new Date(t * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
}

// ---- pens: the same drawing on a canvas or into SVG ---------------------------------------------

class CanvasPen {
  constructor(g, font) { this.g = g; this.font = font; g.font = font; }
  measure(s) { return this.g.measureText(s).width; }
  line(x0, y0, x1, y1, color, width = 1, dash = null) {
    const g = this.g; g.strokeStyle = color; g.lineWidth = width; g.setLineDash(dash || []);
    g.beginPath(); g.moveTo(x0, y0); g.lineTo(x1, y1); g.stroke(); g.setLineDash([]);
  }
  polyline(runs, color, width) {  // runs: [[x, y, x, y, ...], ...] (a gap between runs)
    const g = this.g; g.strokeStyle = color; g.lineWidth = width; g.lineJoin = "round"; g.beginPath();
    for (const r of runs) { g.moveTo(r[0], r[1]); for (let i = 2; i < r.length; i += 2) g.lineTo(r[i], r[i + 1]); }
    g.stroke();
  }
  dot(x, y, r, color) { const g = this.g; g.fillStyle = color; g.beginPath(); g.arc(x, y, r, 0, 2 * Math.PI); g.fill(); }
  rect(x, y, w, h, color, alpha = 1) { const g = this.g; g.globalAlpha = alpha; g.fillStyle = color; g.fillRect(x, y, w, h); g.globalAlpha = 1; }
  text(s, x, y, color, align = "left", rotate = false) {
    const g = this.g; g.fillStyle = color; g.textAlign = align; g.textBaseline = "middle";
    if (rotate) { g.save(); g.translate(x, y); g.rotate(-Math.PI / 2); g.fillText(s, 0, 0); g.restore(); } else g.fillText(s, x, y);
  }
  gradient(x, y, w, h, stops) {
    const g = this.g, grad = g.createLinearGradient(0, y + h, 0, y);
    stops.forEach(([at, color]) => grad.addColorStop(at, color));
    g.fillStyle = grad; g.fillRect(x, y, w, h);
  }
}

function esc(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c])
    .replace(/[\ud800-\udfff]/g, "\ufffd");  // a lone surrogate would make the file invalid XML
}

class SvgPen {
  constructor(measure, font) { this.parts = []; this.measure = measure; this.font = font; this.ids = 0; }
  line(x0, y0, x1, y1, color, width = 1, dash = null) {
    this.parts.push(`<line x1="${x0}" y1="${y0}" x2="${x1}" y2="${y1}" stroke="${esc(color)}" stroke-width="${width}"${dash ? ` stroke-dasharray="${dash.join(" ")}"` : ""}/>`);
  }
  polyline(runs, color, width) {
    for (const r of runs) {
      const pts = [];
      for (let i = 0; i < r.length; i += 2) pts.push(`${r[i].toFixed(1)},${r[i + 1].toFixed(1)}`);
      this.parts.push(`<polyline fill="none" stroke="${esc(color)}" stroke-width="${width}" stroke-linejoin="round" points="${pts.join(" ")}"/>`);
    }
  }
  dot(x, y, r, color) { this.parts.push(`<circle cx="${x}" cy="${y}" r="${r}" fill="${esc(color)}"/>`); }
  rect(x, y, w, h, color, alpha = 1) { this.parts.push(`<rect x="${x}" y="${y}" width="${w}" height="${h}" fill="${esc(color)}" fill-opacity="${alpha}"/>`); }
  text(s, x, y, color, align = "left", rotate = false) {
    const anchor = { left: "start", center: "middle", right: "end" }[align];
    const t = rotate ? ` transform="rotate(-90 ${x} ${y})"` : "";
    this.parts.push(`<text x="${x}" y="${y}" fill="${esc(color)}" text-anchor="${anchor}" dominant-baseline="middle"${t}>${esc(s)}</text>`);
  }
  gradient(x, y, w, h, stops) {
    const id = `g${this.ids++}`;
    this.parts.push(`<defs><linearGradient id="${id}" x1="0" y1="1" x2="0" y2="0">${stops.map(([at, c]) => `<stop offset="${at}" stop-color="${esc(c)}"/>`).join("")}</linearGradient></defs>`,
      `<rect x="${x}" y="${y}" width="${w}" height="${h}" fill="url(#${id})"/>`);
  }
  svg(w, h, background) {
    return `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" font-family="${esc(this.font.replace(/^\S+\s/, ""))}" font-size="11">` +
      `<rect width="100%" height="100%" fill="${esc(background)}"/>${this.parts.join("")}</svg>`;
  }
}

function safeFileName(s) {
  return (String(s).replace(/[^\w.-]+/g, "_").replace(/^_+|_+$/g, "") || "chart").slice(0, 80);
}

function download(blob, name) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob); a.download = name; a.style.display = "none";
  document.body.append(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
}

function button(label, title) {
  const b = document.createElement("button");
  b.type = "button"; b.className = "aml-chart-btn"; b.textContent = label; b.title = title;
  return b;
}

function theme(el) {
  return {
    fg: css(el, "--jp-ui-font-color2", "#666"), fg1: css(el, "--jp-ui-font-color1", "#222"),
    grid: css(el, "--jp-border-color2", "#e0e0e0"), bg: css(el, "--jp-layout-color0", "#fff"),
    font: "11px " + css(el, "--jp-ui-font-family", "sans-serif"),
  };
}

// ---- line charts --------------------------------------------------------------------------------

class Trace {
  constructor(name, color) {
    this.name = shownText(name); this.color = color;
    this.fx = []; this.ft = []; this.fy = [];
    this.tx = []; this.tt = []; this.ty = [];
    this.total = 0;
  }
  apply(m) {
    if (m.reset) { this.fx = []; this.ft = []; this.fy = []; }
    for (let i = 0; i < m.fx.length; i++) { this.fx.push(m.fx[i]); this.ft.push(m.ft[i]); this.fy.push(m.fy[i]); }
    this.tx = m.tx; this.tt = m.tt; this.ty = m.ty;
    this.total = m.total;
  }
  points(mode) {
    const xs = mode === "time" ? this.ft.concat(this.tt) : this.fx.concat(this.tx);
    return [xs, this.fy.concat(this.ty)];
  }
}

const MARGIN = { l: 64, r: 14, t: 10, b: 36 };

class Panel {
  constructor(root, spec, model) {
    this.id = spec.id; this.model = model; this.traces = new Map();
    this.hidden = new Set(); this.log = false; this.view = null;  // view: the zoomed x range, or null
    this.el = document.createElement("div");
    this.el.className = "aml-chart-panel";
    this.el.dataset.panel = spec.id;
    const head = document.createElement("div");
    head.className = "aml-chart-head";
    this.title = document.createElement("div");
    this.title.className = "aml-chart-title";
    this.title.textContent = shownText(spec.title || spec.id);
    this.note = document.createElement("span");
    this.note.className = "aml-chart-note";
    const tools = document.createElement("div");
    tools.className = "aml-chart-tools";
    this.logButton = button("log", "Logarithmic y axis");
    this.logButton.setAttribute("aria-pressed", "false");
    this.resetButton = button("reset", "Show all points again (or double-click the chart)");
    this.resetButton.style.display = "none";
    const png = button("PNG", "Save this chart as a PNG image"), svg = button("SVG", "Save this chart as an SVG image");
    tools.append(this.resetButton, this.logButton, png, svg);
    head.append(this.title, this.note, tools);
    this.legend = document.createElement("div");
    this.legend.className = "aml-chart-legend";
    this.canvas = document.createElement("canvas");
    this.canvas.className = "aml-chart-canvas";
    this.canvas.title = "Drag across to zoom, Shift+drag to pan, double-click to reset";
    this.tip = document.createElement("div");
    this.tip.className = "aml-chart-tip";
    this.el.append(head, this.legend, this.canvas, this.tip);
    root.append(this.el);
    this.logButton.onclick = () => { this.log = !this.log; this.changed(); };
    this.resetButton.onclick = () => { this.view = null; this.changed(); };
    png.onclick = () => this.exportPng();
    svg.onclick = () => this.exportSvg();
    this.canvas.addEventListener("mousemove", (e) => this.move(e));
    this.canvas.addEventListener("mousedown", (e) => this.press(e));
    window.addEventListener("mouseup", (this.release = (e) => this.up(e)));
    this.canvas.addEventListener("dblclick", () => { this.view = null; this.changed(); });
    this.canvas.addEventListener("mouseleave", () => { this.hoverX = null; this.tip.style.display = "none"; if (!this.drag) this.draw(); });
  }
  dispose() { window.removeEventListener("mouseup", this.release); this.el.remove(); }
  changed() {
    this.logButton.setAttribute("aria-pressed", String(this.log));
    this.resetButton.style.display = this.view ? "" : "none";
    this.el.dataset.zoomed = this.view ? "1" : "";
    this.draw();
  }
  trace(name) {
    let t = this.traces.get(name);
    if (!t) {
      t = new Trace(name, PALETTE[this.traces.size % PALETTE.length]);
      this.traces.set(name, t);
      this.syncLegend();
    }
    return t;
  }
  syncLegend() {
    // a legend when several series share the chart (%aml compare); each entry hides / shows its series
    if (this.traces.size < 2) { this.legend.replaceChildren(); this.legend.style.display = "none"; return; }
    this.legend.style.display = "";
    const items = [];
    for (const t of this.traces.values()) {
      const b = document.createElement("button");
      b.type = "button"; b.className = "aml-legend-item"; b.dataset.trace = t.name;
      b.setAttribute("aria-pressed", String(!this.hidden.has(t.name)));
      b.title = "Click to hide or show " + t.name;
      const sw = document.createElement("span");
      sw.className = "aml-legend-swatch"; sw.style.background = t.color;
      b.append(sw, document.createTextNode(t.name));
      b.onclick = () => {
        if (this.hidden.has(t.name)) this.hidden.delete(t.name); else this.hidden.add(t.name);
        b.setAttribute("aria-pressed", String(!this.hidden.has(t.name)));
        this.draw();
      };
      items.push(b);
    }
    this.legend.replaceChildren(...items);
  }
  shown() { return [...this.traces.values()].filter((t) => !this.hidden.has(t.name)); }
  count() { let n = 0; for (const t of this.traces.values()) n += t.fx.length + t.tx.length; return n; }
  total() { let n = 0; for (const t of this.traces.values()) n += t.total; return n; }
  bounds(mode, logY) {
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (const t of this.shown()) {
      const [xs] = t.points(mode);
      for (const x of xs) { if (x < x0) x0 = x; if (x > x1) x1 = x; }
    }
    if (this.view) { x0 = this.view[0]; x1 = this.view[1]; }
    for (const t of this.shown()) {  // y fits the points in view
      const [xs, ys] = t.points(mode);
      for (let i = 0; i < xs.length; i++) {
        const y = ys[i];
        if (y === null || !isFinite(y) || xs[i] < x0 || xs[i] > x1 || (logY && !(y > 0))) continue;
        if (y < y0) y0 = y; if (y > y1) y1 = y;
      }
    }
    if (!isFinite(x0)) { x0 = 0; x1 = 1; }
    if (x0 === x1) { if (mode === "step") { x0 -= 1; x1 += 1; } else { x0 -= 30; x1 += 30; } }
    if (!isFinite(y0)) { y0 = logY ? 1 : 0; y1 = logY ? 10 : 1; }
    if (y0 === y1) {
      if (logY) { y0 /= 2; y1 *= 2; } else { const d = Math.abs(y0) * 0.1 || 1; y0 -= d; y1 += d; }
    } else if (!logY) { const pad = (y1 - y0) * 0.04; y0 -= pad; y1 += pad; }
    return [x0, x1, y0, y1];
  }
  canLog() {
    for (const t of this.shown()) for (const y of t.points("step")[1]) if (y !== null && isFinite(y) && !(y > 0)) return false;
    return true;
  }
  size() {
    return [Math.max(200, this.el.clientWidth || 400), this.model.get("height") || 180];
  }
  draw() {
    const c = this.canvas, dpr = window.devicePixelRatio || 1;
    const [w, h] = this.size();
    if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) {
      c.width = Math.round(w * dpr); c.height = Math.round(h * dpr);
      c.style.width = w + "px"; c.style.height = h + "px";
    }
    const g = c.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    const th = theme(this.el);
    this.canvas.dataset.points = String(this.count());
    this.canvas.dataset.total = String(this.total());
    const scale = this.paint(new CanvasPen(g, th.font), w, h, th, false);
    if (scale) this.scale = scale;
  }
  /** Draw on `pen` (canvas or SVG); `legend`: draw the legend too (exports). Returns the scales. */
  paint(pen, w, h, th, legend) {
    const mode = this.model.get("x_mode");
    const m = MARGIN, pw = w - m.l - m.r, ph = h - m.t - m.b;
    if (this.count() === 0) {
      pen.text("waiting for values…", m.l + 8, m.t + ph / 2, th.fg);
      return null;
    }
    const logY = this.log && this.canLog();
    this.note.textContent = this.log && !logY ? "log scale needs values above 0" : "";
    const [x0, x1, y0, y1] = this.bounds(mode, logY);
    const fy = logY ? Math.log10 : (v) => v;
    const ly0 = fy(y0), ly1 = fy(y1);
    const sx = (x) => m.l + ((x - x0) / (x1 - x0)) * pw;
    const sy = (y) => m.t + ph - ((fy(y) - ly0) / (ly1 - ly0)) * ph;
    // y axis: gridlines, labels, title (the metric's name)
    const yt = logY ? logTicks(y0, y1) : niceTicks(y0, y1, Math.max(2, Math.floor(ph / 40)));
    const ylabels = tickLabels(yt);
    yt.values.forEach((v, i) => {
      const y = Math.round(sy(v)) + 0.5;
      if (y < m.t - 0.5 || y > m.t + ph + 0.5) return;
      pen.line(m.l, y, m.l + pw, y, th.grid);
      pen.text(ylabels[i], m.l - 5, Math.max(m.t, Math.min(m.t + ph, y)), th.fg, "right");
    });
    pen.text(this.title.textContent, 10, m.t + ph / 2, th.fg, "center", true);
    // x axis: ticks and labels that never overlap or run off the edge
    let xt, xlabels;
    if (mode === "time") { xt = timeTicks(x0, x1, Math.max(2, Math.floor(pw / 90))); xlabels = xt.labels; }
    else { xt = niceTicks(x0, x1, Math.max(2, Math.floor(pw / 80)), true); xlabels = tickLabels(xt); }
    pen.line(m.l, m.t + ph + 0.5, m.l + pw, m.t + ph + 0.5, th.grid);
    let right = -Infinity;
    const shownX = [];
    xt.values.forEach((v, i) => {
      if (v < x0 || v > x1 || (mode !== "time" && v < 0)) return;  // steps are never negative
      const x = Math.round(sx(v)) + 0.5, tw = pen.measure(xlabels[i]);
      let lx = x - tw / 2;
      lx = Math.max(1, Math.min(w - 1 - tw, lx));
      if (lx < right + 8) return;
      right = lx + tw;
      pen.line(x, m.t + ph, x, m.t + ph + 4, th.fg);
      pen.text(xlabels[i], lx, m.t + ph + 12, th.fg, "left");
      shownX.push(xlabels[i]);
    });
    pen.text(mode === "time" ? "time" : "step", m.l + pw / 2, h - 7, th.fg, "center");
    this.canvas.dataset.yticks = ylabels.join("|");
    this.canvas.dataset.xticks = shownX.join("|");
    this.el.dataset.log = logY ? "1" : "";
    // series
    for (const t of this.shown()) {
      const [xs, ys] = t.points(mode);
      const runs = [];
      let cur = null;
      for (let i = 0; i < xs.length; i++) {
        const y = ys[i];
        if (y === null || !isFinite(y) || (logY && !(y > 0)) || xs[i] < x0 || xs[i] > x1) { cur = null; continue; }
        if (!cur) { cur = []; runs.push(cur); }
        cur.push(sx(xs[i]), sy(y));
      }
      pen.polyline(runs.filter((r) => r.length > 2), t.color, 1.5);
      for (const r of runs) if (r.length === 2) pen.dot(r[0], r[1], 3, t.color);
    }
    if (legend && this.traces.size > 1) {
      let ly = m.t + 8;
      for (const t of this.shown()) {
        const tw = pen.measure(t.name);
        pen.rect(m.l + pw - tw - 22, ly - 5, 10, 10, t.color);
        pen.text(t.name, m.l + pw - tw - 8, ly, th.fg1, "left");
        ly += 14;
      }
    }
    if (!legend && this.drag && this.drag.mode === "zoom") {
      const a = Math.min(this.drag.x, this.drag.cx), b = Math.max(this.drag.x, this.drag.cx);
      pen.rect(a, m.t, b - a, ph, th.fg, 0.15);
    }
    if (!legend && this.hoverX !== null && this.hoverX !== undefined && this.hoverX >= x0 && this.hoverX <= x1) {
      const x = Math.round(sx(this.hoverX)) + 0.5;
      pen.line(x, m.t, x, m.t + ph, th.fg, 1, [3, 3]);
    }
    return { sx, x0, x1, m, pw };
  }
  dataX(e) {
    const r = this.canvas.getBoundingClientRect(), { x0, x1, m, pw } = this.scale;
    return [e.clientX - r.left, x0 + ((e.clientX - r.left - m.l) / pw) * (x1 - x0)];
  }
  press(e) {
    if (!this.scale || e.button !== 0) return;
    const [px, xv] = this.dataX(e);
    this.drag = { mode: e.shiftKey ? "pan" : "zoom", x: px, cx: px, xv, view: [this.scale.x0, this.scale.x1] };
    e.preventDefault();
  }
  up(e) {
    const d = this.drag;
    if (!d) return;
    this.drag = null;
    if (d.mode === "zoom" && Math.abs(d.cx - d.x) > 5 && this.scale) {
      const { x0, x1, m, pw } = this.scale;
      const at = (px) => x0 + ((px - m.l) / pw) * (x1 - x0);
      const a = at(Math.min(d.x, d.cx)), b = at(Math.max(d.x, d.cx));
      if (b > a) this.view = [a, b];
    }
    this.changed();
  }
  move(e) {
    if (!this.scale) return;
    if (this.drag) {
      const [px] = this.dataX(e);
      this.drag.cx = px;
      if (this.drag.mode === "pan") {
        const { m, pw } = this.scale, [a, b] = this.drag.view;
        const shift = ((px - this.drag.x) / pw) * (b - a);
        this.view = [a - shift, b - shift];
        this.resetButton.style.display = "";
      }
      this.draw();
      return;
    }
    this.hover(e);
  }
  hover(e) {
    const mode = this.model.get("x_mode");
    const r = this.canvas.getBoundingClientRect();
    const [, xv] = this.dataX(e);
    const lines = [];
    let best = null;
    for (const t of this.shown()) {
      const [xs, ys] = t.points(mode);
      let k = -1, d = Infinity;
      for (let i = 0; i < xs.length; i++) { const dd = Math.abs(xs[i] - xv); if (dd < d) { d = dd; k = i; } }
      if (k >= 0) {
        // names come from the workspace (run names, compare labels): text nodes, never markup
        const line = document.createElement("div");
        const dot = document.createElement("span");
        dot.style.color = t.color; dot.textContent = "● ";
        line.append(dot, document.createTextNode(`${t.name}: ${fmt(ys[k])}`));
        lines.push(line);
        best = xs[k];
      }
    }
    if (best === null) return;
    this.hoverX = best;
    const head = document.createElement("div");
    head.textContent = mode === "time" ? fmtTime(best) : "step " + best;
    this.tip.replaceChildren(head, ...lines);
    this.tip.style.display = "block";
    this.tip.style.left = Math.max(0, Math.min(e.clientX - r.left + 12, r.width - 170)) + "px";
    this.tip.style.top = "40px";
    this.draw();
  }
  exportSize() { return this.size(); }
  exportSvg() {
    const [w, h] = this.exportSize(), th = theme(this.el);
    const probe = document.createElement("canvas").getContext("2d");
    probe.font = th.font;
    const pen = new SvgPen((s) => probe.measureText(s).width, th.font);
    this.paint(pen, w, h, th, true);
    const text = pen.svg(w, h, th.bg);
    this.lastExport = text;
    download(new Blob([text], { type: "image/svg+xml" }), safeFileName(this.title.textContent) + ".svg");
  }
  exportPng() {
    const [w, h] = this.exportSize(), th = theme(this.el), k = 2;
    const c = document.createElement("canvas");
    c.width = w * k; c.height = h * k;
    const g = c.getContext("2d");
    g.scale(k, k); g.fillStyle = th.bg; g.fillRect(0, 0, w, h);
    this.paint(new CanvasPen(g, th.font), w, h, th, true);
    c.toBlob((b) => download(b, safeFileName(this.title.textContent) + ".png"), "image/png");
  }
}

function renderLines(model, el) {
  const root = document.createElement("div");
  root.className = "aml-chart";
  el.append(root);
  const panels = new Map();
  let frame = 0;
  const schedule = () => { if (!frame) frame = requestAnimationFrame(() => { frame = 0; for (const p of panels.values()) p.draw(); }); };
  const syncPanels = () => {
    const specs = model.get("panels") || [];
    const keep = new Set(specs.map((s) => s.id));
    for (const [id, p] of panels) if (!keep.has(id)) { p.dispose(); panels.delete(id); }
    for (const s of specs) {
      let p = panels.get(s.id);
      if (!p) { p = new Panel(root, s, model); panels.set(s.id, p); }
      p.title.textContent = shownText(s.title || s.id);
      root.append(p.el); // keep the order of the spec
    }
    root.dataset.panels = String(panels.size);
    schedule();
  };
  const onMsg = (msg) => {
    if (!msg || msg.type !== "series") return;
    for (const u of msg.updates) {
      const p = panels.get(u.panel);
      if (p) p.trace(u.trace).apply(u);
    }
    schedule();
  };
  model.on("change:panels", syncPanels);
  model.on("change:x_mode", schedule);
  model.on("msg:custom", onMsg);
  syncPanels();
  model.send({ type: "hello" }); // a new view asks for the full data
  const ro = new ResizeObserver(schedule);
  ro.observe(root);
  return () => {
    ro.disconnect(); for (const p of panels.values()) p.dispose();
    model.off("change:panels", syncPanels); model.off("change:x_mode", schedule); model.off("msg:custom", onMsg);
  };
}

// ---- parallel coordinates -----------------------------------------------------------------------

/** The colour of fraction f (0 = worst … 1 = best) on the parcoords scale. */
export function colourAt(f) {
  return `hsl(${Math.round(240 - 240 * (isFinite(f) ? Math.max(0, Math.min(1, f)) : 0))}, 70%, 45%)`;
}

/** An axis of the parallel-coordinates plot: position (0 = bottom … 1 = top) and ticks for a dimension
 * `{name, values, categories?, log?}`. */
export function parcoordsAxis(dim) {
  const vals = dim.values.filter((v) => v !== null && isFinite(v));
  if (dim.categories) {
    const n = dim.categories.length;
    const at = (v) => (n <= 1 ? 0.5 : v / (n - 1));
    return { at, ticks: dim.categories.map((c, i) => [at(i), String(c)]) };
  }
  let lo = Math.min(...vals), hi = Math.max(...vals);
  const log = !!dim.log && lo > 0;
  if (!vals.length) { lo = 0; hi = 1; }
  if (log) {
    const a = Math.log10(lo), b = Math.log10(hi), span = b - a || 1;
    const at = (v) => (b > a ? (Math.log10(v) - a) / span : 0.5);
    const t = logTicks(lo, hi);
    const labels = tickLabels(t);
    return { at, log, ticks: t.values.map((v, i) => [at(v), labels[i]]) };
  }
  if (!(hi > lo)) { const d = Math.abs(lo) * 0.1 || 1; lo -= d; hi += d; }
  const at = (v) => (v - lo) / (hi - lo);
  const t = niceTicks(lo, hi, 4, vals.every(Number.isInteger));  // whole-number parameters get whole ticks
  const labels = tickLabels(t);
  return { at, ticks: t.values.map((v, i) => [at(v), labels[i]]).filter(([p]) => p >= -1e-9 && p <= 1 + 1e-9) };
}

function renderParcoords(model, el) {
  const root = document.createElement("div");
  root.className = "aml-chart aml-parcoords";
  const head = document.createElement("div");
  head.className = "aml-chart-head";
  const title = document.createElement("div");
  title.className = "aml-chart-title";
  title.textContent = "Trials: hyperparameters → metric";
  const tools = document.createElement("div");
  tools.className = "aml-chart-tools";
  const png = button("PNG", "Save as a PNG image"), svg = button("SVG", "Save as an SVG image");
  tools.append(png, svg);
  head.append(title, tools);
  const canvas = document.createElement("canvas");
  root.append(head, canvas);
  el.append(root);
  const paint = (pen, w, h, th) => {
    const data = model.get("parcoords") || {};
    const dims = data.dims || [];
    const color = data.color || [];
    if (dims.length < 2) { pen.text("the trials' parameters appear here once two differ", 8, h / 2, th.fg); return; }
    const m = { l: 56, r: 120, t: 26, b: 14 }, ph = h - m.t - m.b;
    const ax = (i) => m.l + (i * (w - m.l - m.r)) / (dims.length - 1);
    const axes = dims.map(parcoordsAxis);
    const y = (i, v) => (v === null || v === undefined || !isFinite(v) ? null : m.t + ph - axes[i].at(v) * ph);
    const cvals = color.filter((v) => v !== null && isFinite(v));
    const clo = Math.min(...cvals), chi = Math.max(...cvals);
    for (let r = 0; r < color.length; r++) {
      const f = chi > clo ? (color[r] - clo) / (chi - clo) : 0.5;
      const runs = [];
      let cur = null;
      dims.forEach((d, i) => {
        const yy = y(i, d.values[r]);
        if (yy === null) { cur = null; return; }
        if (!cur) { cur = []; runs.push(cur); }
        cur.push(ax(i), yy);
      });
      pen.polyline(runs.filter((q) => q.length > 2), colourAt(f), 1.5);
    }
    dims.forEach((d, i) => {
      const x = ax(i);
      pen.line(x, m.t, x, m.t + ph, th.fg);
      pen.text(shownText(d.name) + (axes[i].log ? " (log)" : ""), x, 10, th.fg1, i === 0 ? "left" : i === dims.length - 1 ? "right" : "center");
      const last = i === dims.length - 1;  // the metric's axis: labels on its outer side
      for (const [p, label] of axes[i].ticks) {
        const ty = m.t + ph - p * ph;
        pen.line(last ? x : x - 3, ty, last ? x + 3 : x, ty, th.fg);
        pen.text(label, last ? x + 5 : x - 5, ty, th.fg, last ? "left" : "right");
      }
    });
    // the colour scale: which end is which value of the metric
    const metric = dims[dims.length - 1].name;
    if (cvals.length) {
      const bx = w - 60, by = m.t, bh = ph;
      pen.gradient(bx, by, 12, bh, [0, 0.25, 0.5, 0.75, 1].map((at) => [at, colourAt(at)]));
      pen.text(fmt(chi), bx + 16, by + 4, th.fg, "left");
      pen.text(fmt(clo), bx + 16, by + bh - 4, th.fg, "left");
      pen.text(metric, bx + 6, by + bh / 2, th.fg1, "center", true);
      canvas.dataset.colour = `${fmt(clo)}|${fmt(chi)}`;
    }
    canvas.dataset.axes = JSON.stringify(axes.map((a, i) => ({ name: dims[i].name, log: !!a.log, ticks: a.ticks.map((t) => t[1]) })));
  };
  const size = () => [Math.max(300, root.clientWidth || 500), model.get("height") || 220];
  const draw = () => {
    const data = model.get("parcoords") || {};
    const dpr = window.devicePixelRatio || 1;
    const [w, h] = size();
    canvas.width = w * dpr; canvas.height = h * dpr; canvas.style.width = w + "px"; canvas.style.height = h + "px";
    canvas.dataset.lines = String((data.color || []).length);
    const g = canvas.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0); g.clearRect(0, 0, w, h);
    const th = theme(root);
    paint(new CanvasPen(g, th.font), w, h, th);
  };
  png.onclick = () => {
    const [w, h] = size(), th = theme(root), c = document.createElement("canvas");
    c.width = w * 2; c.height = h * 2;
    const g = c.getContext("2d"); g.scale(2, 2); g.fillStyle = th.bg; g.fillRect(0, 0, w, h);
    paint(new CanvasPen(g, th.font), w, h, th);
    c.toBlob((b) => download(b, "trials.png"), "image/png");
  };
  svg.onclick = () => {
    const [w, h] = size(), th = theme(root), probe = document.createElement("canvas").getContext("2d");
    probe.font = th.font;
    const pen = new SvgPen((s) => probe.measureText(s).width, th.font);
    paint(pen, w, h, th);
    download(new Blob([pen.svg(w, h, th.bg)], { type: "image/svg+xml" }), "trials.svg");
  };
  model.on("change:parcoords", draw);
  const ro = new ResizeObserver(draw);
  ro.observe(root);
  draw();
  return () => { ro.disconnect(); model.off("change:parcoords", draw); };
}

export default {
  render({ model, el }) {
    return model.get("kind") === "parcoords" ? renderParcoords(model, el) : renderLines(model, el);
  },
};
