// aml-magics metric charts: small multiples of line charts (kind "lines") or a parallel-coordinates
// plot (kind "parcoords"), drawn on canvas. Series arrive as incremental messages from the kernel
// (fixed points appended, tail replaced); nothing already drawn is ever resent. Colours follow the
// JupyterLab theme through its CSS variables.

const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"];

function css(el, name, fallback) {
  const v = getComputedStyle(el).getPropertyValue(name).trim();
  return v || fallback;
}

function niceTicks(lo, hi, count) {
  if (!isFinite(lo) || !isFinite(hi)) return [];
  if (lo === hi) { lo -= 1; hi += 1; }
  const span = hi - lo;
  const step0 = Math.pow(10, Math.floor(Math.log10(span / count)));
  const err = (count * step0) / span;
  const step = step0 * (err <= 0.15 ? 10 : err <= 0.35 ? 5 : err <= 0.75 ? 2 : 1);
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toPrecision(12));
  return out;
}

function fmt(v) {
  if (v === null || v === undefined || !isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e5 || a < 1e-3)) return v.toExponential(2);
  return +v.toPrecision(4) + "";
}

function fmtTime(t) {
  const d = new Date(t * 1000);
  return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

class Trace {
  constructor(name, color) {
    this.name = name; this.color = color;
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

class Panel {
  constructor(root, spec, model) {
    this.id = spec.id; this.model = model; this.traces = new Map();
    this.el = document.createElement("div");
    this.el.className = "aml-chart-panel";
    this.el.dataset.panel = spec.id;
    this.title = document.createElement("div");
    this.title.className = "aml-chart-title";
    this.title.textContent = spec.title || spec.id;
    this.canvas = document.createElement("canvas");
    this.canvas.className = "aml-chart-canvas";
    this.tip = document.createElement("div");
    this.tip.className = "aml-chart-tip";
    this.el.append(this.title, this.canvas, this.tip);
    root.append(this.el);
    this.canvas.addEventListener("mousemove", (e) => this.hover(e));
    this.canvas.addEventListener("mouseleave", () => { this.hoverX = null; this.tip.style.display = "none"; this.draw(); });
  }
  trace(name) {
    let t = this.traces.get(name);
    if (!t) { t = new Trace(name, PALETTE[this.traces.size % PALETTE.length]); this.traces.set(name, t); }
    return t;
  }
  count() { let n = 0; for (const t of this.traces.values()) n += t.fx.length + t.tx.length; return n; }
  total() { let n = 0; for (const t of this.traces.values()) n += t.total; return n; }
  bounds(mode) {
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (const t of this.traces.values()) {
      const [xs, ys] = t.points(mode);
      for (let i = 0; i < xs.length; i++) {
        const y = ys[i];
        if (y === null || !isFinite(y)) continue;
        if (xs[i] < x0) x0 = xs[i]; if (xs[i] > x1) x1 = xs[i];
        if (y < y0) y0 = y; if (y > y1) y1 = y;
      }
    }
    if (x0 === x1) { x0 -= 1; x1 += 1; }
    if (y0 === y1) { const d = Math.abs(y0) * 0.1 || 1; y0 -= d; y1 += d; }
    return [x0, x1, y0, y1];
  }
  draw() {
    const mode = this.model.get("x_mode");
    const c = this.canvas, dpr = window.devicePixelRatio || 1;
    const w = Math.max(200, this.el.clientWidth || 400), h = this.model.get("height") || 180;
    if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) {
      c.width = Math.round(w * dpr); c.height = Math.round(h * dpr);
      c.style.width = w + "px"; c.style.height = h + "px";
    }
    const g = c.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    const fg = css(this.el, "--jp-ui-font-color2", "#666"), grid = css(this.el, "--jp-border-color2", "#e0e0e0");
    const font = "11px " + css(this.el, "--jp-ui-font-family", "sans-serif");
    const m = { l: 56, r: 10, t: 6, b: 22 };
    const pw = w - m.l - m.r, ph = h - m.t - m.b;
    this.canvas.dataset.points = String(this.count());
    this.canvas.dataset.total = String(this.total());
    if (this.count() === 0) {
      g.fillStyle = fg; g.font = font; g.fillText("waiting for values…", m.l + 8, m.t + ph / 2);
      return;
    }
    const [x0, x1, y0, y1] = this.bounds(mode);
    const sx = (x) => m.l + ((x - x0) / (x1 - x0)) * pw, sy = (y) => m.t + ph - ((y - y0) / (y1 - y0)) * ph;
    g.font = font; g.fillStyle = fg; g.strokeStyle = grid; g.lineWidth = 1;
    for (const v of niceTicks(y0, y1, 4)) {
      const y = Math.round(sy(v)) + 0.5;
      g.beginPath(); g.moveTo(m.l, y); g.lineTo(m.l + pw, y); g.stroke();
      g.textAlign = "right"; g.fillText(fmt(v), m.l - 4, y + 4);
    }
    for (const v of niceTicks(x0, x1, Math.max(2, Math.floor(pw / 90)))) {
      const x = Math.round(sx(v)) + 0.5;
      g.beginPath(); g.moveTo(x, m.t + ph); g.lineTo(x, m.t + ph + 4); g.stroke();
      g.textAlign = "center"; g.fillText(mode === "time" ? fmtTime(v) : fmt(v), x, h - 6);
    }
    for (const t of this.traces.values()) {
      const [xs, ys] = t.points(mode);
      g.strokeStyle = t.color; g.lineWidth = 1.5; g.beginPath();
      let pen = false;
      for (let i = 0; i < xs.length; i++) {
        const y = ys[i];
        if (y === null || !isFinite(y)) { pen = false; continue; }
        if (pen) g.lineTo(sx(xs[i]), sy(y)); else { g.moveTo(sx(xs[i]), sy(y)); pen = true; }
      }
      g.stroke();
      if (xs.length === 1) { g.fillStyle = t.color; g.beginPath(); g.arc(sx(xs[0]), sy(ys[0]), 3, 0, 6.3); g.fill(); }
    }
    if (this.hoverX !== null && this.hoverX !== undefined) {
      const x = Math.round(sx(this.hoverX)) + 0.5;
      g.strokeStyle = fg; g.beginPath(); g.moveTo(x, m.t); g.lineTo(x, m.t + ph); g.stroke();
    }
    this.scale = { sx, x0, x1, m, pw };
  }
  hover(e) {
    if (!this.scale) return;
    const mode = this.model.get("x_mode");
    const r = this.canvas.getBoundingClientRect();
    const { x0, x1, m, pw } = this.scale;
    const xv = x0 + ((e.clientX - r.left - m.l) / pw) * (x1 - x0);
    const lines = [];
    let best = null;
    for (const t of this.traces.values()) {
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
    this.hoverX = best;
    const head = document.createElement("div");
    head.textContent = mode === "time" ? fmtTime(best) : "step " + fmt(best);
    this.tip.replaceChildren(head, ...lines);
    this.tip.style.display = "block";
    this.tip.style.left = Math.min(e.clientX - r.left + 12, r.width - 160) + "px";
    this.tip.style.top = "24px";
    this.draw();
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
    for (const [id, p] of panels) if (!keep.has(id)) { p.el.remove(); panels.delete(id); }
    for (const s of specs) {
      let p = panels.get(s.id);
      if (!p) { p = new Panel(root, s, model); panels.set(s.id, p); }
      p.title.textContent = s.title || s.id;
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
  return () => { ro.disconnect(); model.off("change:panels", syncPanels); model.off("change:x_mode", schedule); model.off("msg:custom", onMsg); };
}

function renderParcoords(model, el) {
  const root = document.createElement("div");
  root.className = "aml-chart aml-parcoords";
  const canvas = document.createElement("canvas");
  root.append(canvas);
  el.append(root);
  const draw = () => {
    const data = model.get("parcoords") || {};
    const dims = data.dims || [];
    const color = data.color || [];
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(300, root.clientWidth || 500), h = model.get("height") || 220;
    canvas.width = w * dpr; canvas.height = h * dpr; canvas.style.width = w + "px"; canvas.style.height = h + "px";
    canvas.dataset.lines = String(color.length);
    const g = canvas.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0); g.clearRect(0, 0, w, h);
    if (dims.length < 2) return;
    const fg = css(root, "--jp-ui-font-color2", "#666");
    const font = "11px " + css(root, "--jp-ui-font-family", "sans-serif");
    const m = { l: 40, r: 40, t: 22, b: 18 }, ph = h - m.t - m.b;
    const ax = (i) => m.l + (i * (w - m.l - m.r)) / (dims.length - 1);
    const scales = dims.map((d) => {
      const vals = d.values.filter((v) => v !== null && isFinite(v));
      let lo = Math.min(...vals), hi = Math.max(...vals);
      if (!(hi > lo)) { lo -= 1; hi += 1; }
      return (v) => m.t + ph - ((v - lo) / (hi - lo)) * ph;
    });
    const cvals = color.filter((v) => v !== null && isFinite(v));
    const clo = Math.min(...cvals), chi = Math.max(...cvals);
    for (let r = 0; r < color.length; r++) {
      const f = chi > clo ? (color[r] - clo) / (chi - clo) : 0.5;
      g.strokeStyle = `hsla(${Math.round(240 - 240 * (isFinite(f) ? f : 0))}, 70%, 45%, 0.75)`;
      g.lineWidth = 1.5; g.beginPath();
      dims.forEach((d, i) => { const v = d.values[r]; const y = v === null ? m.t + ph : scales[i](v); if (i) g.lineTo(ax(i), y); else g.moveTo(ax(i), y); });
      g.stroke();
    }
    g.fillStyle = fg; g.font = font; g.textAlign = "center"; g.strokeStyle = fg;
    dims.forEach((d, i) => {
      g.beginPath(); g.moveTo(ax(i), m.t); g.lineTo(ax(i), m.t + ph); g.stroke();
      g.fillText(d.name, ax(i), 12);
    });
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
