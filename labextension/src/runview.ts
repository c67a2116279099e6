import { Poll } from '@lumino/polling';
import { Widget } from '@lumino/widgets';

import { post, requestAPI } from './api';
import {
  chartedAfter,
  extent,
  formatDuration,
  formatValue,
  isActive,
  ISeries,
  MAX_CHARTS,
  mergeSeries,
  metricsQuery,
  shownText,
  sortRows,
  statusClass,
  terminalText
} from './logic';

/** Metrics charted without being asked (the first logged); the user may chart up to MAX_CHARTS. */
const AUTO_CHARTS = 12;
/** How long the "at most N charts" refusal stays in the note (polls re-render it meanwhile). */
const LIMIT_NOTE_MS = 15000;

interface ITrials {
  columns: { key: string; label: string; numeric?: boolean }[];
  rows: { [key: string]: unknown; _id: string }[];
  sort: { key?: string; desc?: boolean };
  best: string;
}

interface IRunDetail {
  id: string;
  kind: string;
  name: string;
  experiment: string;
  status: string;
  compute: string | null;
  duration: number | null;
  error_text: string | null;
  params: { [k: string]: string };
  tags: { [k: string]: string };
  metrics: { [k: string]: number };
}

interface IMetricsAnswer {
  series: { [n: string]: ISeries };
  count: number;
}

interface ILogChunk {
  text: string;
  offset: number;
  error?: string;
}

/** A run in the main area: header, charts of its first metrics (incremental reads; click a metric in the table to
 * chart it or take it off), every metric's latest value, log tail. */
export class RunView extends Widget {
  private series: { [name: string]: ISeries } = {};
  /** The charted metrics, in order; null until the first read (the route then picks the first logged). */
  private charted: string[] | null = null;
  private takenOff = new Set<string>();
  private metricCount = 0;
  private chartNote: HTMLElement;
  /** The "at most N charts" refusal and when it was given: kept across polls for a while, not wiped by the next. */
  private limitNotedAt = 0;
  private logOffset = 0;
  private logText = '';
  private logError = '';
  private poll: Poll;
  private header: HTMLElement;
  private charts: HTMLElement;
  private table: HTMLElement;
  private log: HTMLPreElement;
  private detail: IRunDetail | null = null;
  private trials: HTMLElement;
  private board: ITrials | null = null;
  /** Open another run's view (a trial clicked in the trials table). */
  onOpenRun: (runId: string) => void = () => undefined;

  constructor(readonly runId: string) {
    super();
    this.id = `amlx-run-${runId}`;
    this.title.label = runId;
    this.title.closable = true;
    this.addClass('amlx-run-view');
    this.header = document.createElement('div');
    this.header.className = 'amlx-run-header';
    const actions = document.createElement('div');
    actions.className = 'amlx-run-actions';
    const cancel = document.createElement('button');
    cancel.className = 'jp-Button jp-mod-styled jp-mod-warn amlx-cancel';
    cancel.textContent = 'Cancel run';
    cancel.onclick = () => void post(`runs/${encodeURIComponent(runId)}/cancel`, {}).then(() => this.poll.refresh());
    actions.appendChild(cancel);
    this.chartNote = document.createElement('div');
    this.chartNote.className = 'amlx-chart-note';
    this.charts = document.createElement('div');
    this.charts.className = 'amlx-charts';
    this.table = document.createElement('div');
    this.table.className = 'amlx-latest';
    this.trials = document.createElement('div');
    this.trials.className = 'amlx-trials';
    const logTitle = document.createElement('h3');
    logTitle.textContent = 'Log';
    this.log = document.createElement('pre');
    this.log.className = 'amlx-log';
    for (const el of [this.header, actions, this.chartNote, this.charts, this.table, this.trials, logTitle, this.log]) {
      this.node.appendChild(el);
    }
    this.poll = new Poll({
      factory: () => this.refresh(),
      frequency: { interval: 1000, backoff: true, max: 10000 },
      standby: 'when-hidden'
    });
  }

  dispose(): void {
    this.poll.dispose();
    super.dispose();
  }

  async refresh(): Promise<void> {
    const id = encodeURIComponent(this.runId);
    const charted = this.charted;
    const none: IMetricsAnswer = { series: {}, count: this.metricCount }; // every chart taken off: nothing to read
    const [detail, metrics, log] = await Promise.all([
      requestAPI<IRunDetail>(`runs/${id}`),
      charted !== null && charted.length === 0
        ? none
        : requestAPI<IMetricsAnswer>(
            `runs/${id}/metrics${metricsQuery(this.series, charted ?? [])}`
          ),
      // a remote workspace's log store may be out of reach: the rest of the view still refreshes
      requestAPI<ILogChunk>(`runs/${id}/logs?offset=${this.logOffset}`).catch(
        (error: Error): ILogChunk => ({ text: '', offset: this.logOffset, error: error.message })
      )
    ]);
    this.logError = log.error ?? '';
    this.detail = detail;
    if (detail.kind === 'sweep' || detail.kind === 'automl' || detail.kind === 'pipeline') {
      this.board = await requestAPI<ITrials>(`runs/${id}/trials`).catch(() => this.board);
    }
    if (this.charted === null && Object.keys(metrics.series).length > 0) {
      this.charted = Object.keys(metrics.series); // the route's pick: the first metrics logged
    }
    for (const name of Object.keys(metrics.series)) {
      if (this.charted?.includes(name)) {
        // a chart taken off while this read was on its way is not brought back
        this.series[name] = mergeSeries(this.series[name], metrics.series[name]);
      }
    }
    this.metricCount = metrics.count ?? this.metricCount;
    if (this.charted !== null) {
      // a metric first logged later gets its chart while there is room; one taken off stays off
      this.charted = chartedAfter(this.charted, Object.keys(detail.metrics), this.takenOff, AUTO_CHARTS);
    }
    if (log.text) {
      this.logText = (this.logText + log.text).split('\n').slice(-400).join('\n');
    }
    this.logOffset = log.offset;
    this.render();
    if (!isActive(detail.status)) {
      this.poll.frequency = { interval: 30000, backoff: true, max: 300000 };
    }
  }

  private render(): void {
    const d = this.detail;
    if (!d) {
      return;
    }
    this.title.label = d.name;
    this.header.innerHTML = '';
    const badge = document.createElement('span');
    badge.className = `amlx-badge ${statusClass(d.status)}`;
    badge.textContent = d.status;
    const name = document.createElement('b');
    name.textContent = ` ${shownText(d.name)} `;
    const rest = document.createElement('span');
    rest.textContent = shownText(
      `· experiment ${d.experiment} · compute ${d.compute ?? '–'} · ${formatDuration(d.duration)}`
    );
    this.header.append(badge, name, rest);
    if ((d.status === 'Failed' || d.status === 'Canceled') && d.error_text) {
      const err = document.createElement('pre');
      err.className = 'amlx-error';
      err.textContent = shownText(d.error_text.slice(-1500));
      this.header.appendChild(err);
    }
    (this.node.querySelector('.amlx-cancel') as HTMLElement).style.display = isActive(d.status) ? '' : 'none';
    this.renderCharts();
    // every name and value comes from the workspace: built as text nodes, never parsed as markup
    this.table.replaceChildren(
      ...[
        this.metricTable(d.metrics),
        textTable(['param', 'value'], Object.keys(d.params).map(k => [k, String(d.params[k])]))
      ].filter((t): t is HTMLTableElement => t !== null)
    );
    this.renderTrials();
    const atBottom = this.log.scrollTop + this.log.clientHeight >= this.log.scrollHeight - 4;
    this.log.textContent =
      shownText(terminalText(this.logText)) ||
      (this.logError
        ? `The log cannot be read: ${this.logError}`
        : isActive(d.status)
          ? '(no output yet)'
          : '(the run printed nothing)');
    if (atBottom) {
      this.log.scrollTop = this.log.scrollHeight;
    }
  }

  /** A sweep's or AutoML run's trials: the leaderboard the notebook shows, best first, best row marked; a
   * pipeline's steps in the order they started (click one for its run). */
  private renderTrials(): void {
    const b = this.board;
    if (!b || b.rows.length === 0) {
      this.trials.replaceChildren();
      return;
    }
    const title = document.createElement('h3');
    title.textContent = `${this.detail?.kind === 'pipeline' ? 'Steps' : 'Trials'} (${b.rows.length})`;
    const table = document.createElement('table');
    table.className = 'amlx-table amlx-trials-table';
    const head = document.createElement('tr');
    for (const c of b.columns) {
      const th = document.createElement('th');
      th.textContent = c.label + (b.sort.key === c.key ? (b.sort.desc ? ' ▼' : ' ▲') : '');
      head.appendChild(th);
    }
    table.appendChild(head);
    for (const row of sortRows(b.rows, b.sort)) {
      const tr = document.createElement('tr');
      tr.dataset.runId = row._id;
      if (row._id === b.best) {
        tr.classList.add('amlx-best');
      }
      for (const c of b.columns) {
        const td = document.createElement('td');
        const v = row[c.key];
        td.textContent =
          typeof v === 'number' ? formatValue(v) : v === null || v === undefined ? '' : shownText(String(v));
        tr.appendChild(td);
      }
      tr.onclick = () => this.onOpenRun(row._id);
      table.appendChild(tr);
    }
    const scroll = document.createElement('div');
    scroll.className = 'amlx-scroll';
    scroll.appendChild(table);
    this.trials.replaceChildren(title, scroll);
  }

  /** Every metric's latest value; a row is clicked to chart the metric or take it off. */
  private metricTable(metrics: { [k: string]: number }): HTMLTableElement | null {
    const names = Object.keys(metrics);
    const table = textTable(['metric', 'latest'], names.map(k => [k, formatValue(metrics[k])]));
    if (!table) {
      return null;
    }
    const rows = table.querySelectorAll('tr');
    names.forEach((name, i) => {
      const tr = rows[i + 1] as HTMLTableRowElement;
      const on = this.charted?.includes(name) ?? false;
      tr.dataset.metric = name;
      tr.className = `amlx-metric-row${on ? ' amlx-charted' : ''}`;
      tr.title = on ? 'Charted: click to take the chart off' : 'Click to chart this metric';
      tr.onclick = () => this.toggleChart(name);
    });
    return table;
  }

  private toggleChart(name: string): void {
    const charted = this.charted ?? [];
    if (charted.includes(name)) {
      this.charted = charted.filter(n => n !== name);
      this.takenOff.add(name);
      this.limitNotedAt = 0;
      delete this.series[name]; // charted again later: read whole again
    } else if (charted.length < MAX_CHARTS) {
      this.charted = [...charted, name];
      this.takenOff.delete(name);
    } else {
      this.limitNotedAt = Date.now();
      this.renderCharts();
      return;
    }
    this.render();
    void this.poll.refresh();
  }

  private renderCharts(): void {
    const charted = this.charted ?? [];
    for (const box of Array.from(this.charts.querySelectorAll<HTMLElement>('.amlx-chart'))) {
      if (!charted.includes(box.dataset.metric ?? '')) {
        box.remove();
      }
    }
    const total = Math.max(this.metricCount, Object.keys(this.detail?.metrics ?? {}).length);
    const limit =
      Date.now() - this.limitNotedAt < LIMIT_NOTE_MS
        ? `At most ${MAX_CHARTS} charts: take one off first (click a charted metric). `
        : '';
    this.chartNote.textContent =
      total > charted.length
        ? limit +
          `Charts: ${charted.length} of ${total.toLocaleString()} metrics · ` +
          'click a metric in the table below to chart it or take it off'
        : limit;
    const names = charted.filter(n => this.series[n] && this.series[n].steps.length > 0);
    for (const name of names) {
      let box = this.charts.querySelector(`[data-metric="${CSS.escape(name)}"]`) as HTMLElement | null;
      if (!box) {
        box = document.createElement('div');
        box.className = 'amlx-chart';
        box.dataset.metric = name;
        const title = document.createElement('div');
        title.className = 'amlx-chart-title';
        title.textContent = shownText(name);
        const canvas = document.createElement('canvas');
        canvas.width = 360;
        canvas.height = 160;
        box.append(title, canvas);
        this.charts.appendChild(box);
      }
      drawLine(box.querySelector('canvas') as HTMLCanvasElement, this.series[name]);
    }
  }
}

/** A table of text cells (null when there are no rows). */
export function textTable(headers: string[], rows: string[][]): HTMLTableElement | null {
  if (rows.length === 0) {
    return null;
  }
  const table = document.createElement('table');
  table.className = 'amlx-table';
  const head = document.createElement('tr');
  for (const h of headers) {
    const th = document.createElement('th');
    th.textContent = h;
    head.appendChild(th);
  }
  table.appendChild(head);
  for (const row of rows) {
    const tr = document.createElement('tr');
    for (const value of row) {
      const td = document.createElement('td');
      td.textContent = shownText(value);
      tr.appendChild(td);
    }
    table.appendChild(tr);
  }
  return table;
}

/** One series as a line, in the theme's colours. */
export function drawLine(canvas: HTMLCanvasElement, s: ISeries): void {
  const ctx = canvas.getContext('2d');
  if (!ctx) {
    return;
  }
  const style = getComputedStyle(document.body);
  const fg = style.getPropertyValue('--jp-ui-font-color2').trim() || '#666';
  const line = style.getPropertyValue('--jp-brand-color1').trim() || '#1976d2';
  const w = canvas.width;
  const h = canvas.height;
  const pad = { l: 48, r: 8, t: 8, b: 18 };
  ctx.clearRect(0, 0, w, h);
  const [lo, hi] = extent(s.values);
  const x0 = s.steps[0];
  const x1 = s.steps[s.steps.length - 1];
  const sx = (x: number) => pad.l + ((x - x0) / (x1 - x0 || 1)) * (w - pad.l - pad.r);
  const sy = (y: number) => h - pad.b - ((y - lo) / (hi - lo || 1)) * (h - pad.t - pad.b);
  ctx.fillStyle = fg;
  ctx.font = '10px sans-serif';
  ctx.fillText(formatValue(hi), 2, pad.t + 8);
  ctx.fillText(formatValue(lo), 2, h - pad.b);
  ctx.fillText(String(x0), pad.l, h - 4);
  ctx.fillText(String(x1), w - pad.r - 30, h - 4);
  ctx.strokeStyle = line;
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  let pen = false;
  for (let i = 0; i < s.steps.length; i++) {
    const v = s.values[i];
    if (v === null || !isFinite(v)) {
      pen = false;
      continue;
    }
    const x = sx(s.steps[i]);
    const y = sy(v);
    if (pen) {
      ctx.lineTo(x, y);
    } else {
      ctx.moveTo(x, y);
      pen = true;
    }
  }
  ctx.stroke();
  canvas.dataset.points = String(s.steps.length);
}
