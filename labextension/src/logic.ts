/**
 * Pure logic of the extension (no JupyterLab imports): formatting, polling intervals, merging
 * metric series read incrementally. Unit-tested with vitest.
 */

export interface IRunRow {
  id: string;
  experiment: string;
  status: string;
  name: string;
  compute: string | null;
  created: number | null;
  started: number | null;
  ended: number | null;
  duration: number | null;
  parent: string | null;
  metrics: { [name: string]: number };
}

/** The run states that are still changing; the server sends its list with the workspace (`useStates`). */
export const ACTIVE_STATES = ['NotStarted', 'Queued', 'Starting', 'Running', 'Finalizing'];
let activeStates: string[] = ACTIVE_STATES;

/** Take the states vocabulary the server sends in `/aml/api/workspace` (`states.active`); ignore a malformed one. */
export function useStates(states: { active?: unknown } | null | undefined): void {
  const active = states && states.active;
  if (Array.isArray(active) && active.length > 0 && active.every(s => typeof s === 'string')) {
    activeStates = active as string[];
  }
}

export function isActive(status: string): boolean {
  return activeStates.indexOf(status) >= 0;
}

/** The status bar text: "AML: local · 2 running". */
export function statusText(backend: string, running: number): string {
  if (!backend) {
    return 'AML: not connected';
  }
  return `AML: ${backend} · ${running} running`;
}

/** A duration in seconds as "850 ms", "12.3 s", "4 min 05 s" or "2 h 03 min". */
export function formatDuration(seconds: number | null): string {
  if (seconds === null || seconds === undefined || isNaN(seconds)) {
    return '';
  }
  if (seconds < 1) {
    return `${Math.round(seconds * 1000)} ms`;
  }
  if (seconds < 60) {
    return `${seconds.toFixed(1)} s`;
  }
  if (seconds < 3600) {
    const m = Math.floor(seconds / 60);
    const s = Math.floor(seconds % 60);
    return `${m} min ${s.toString().padStart(2, '0')} s`;
  }
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  return `${h} h ${m.toString().padStart(2, '0')} min`;
}

/** A number as the dashboards show it: 4 significant digits, no exponent for ordinary values. */
export function formatValue(v: number | null | undefined): string {
  if (v === null || v === undefined || isNaN(v)) {
    return '–';
  }
  if (Number.isInteger(v) && Math.abs(v) < 1e9) {
    return v.toString();
  }
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) {
    return v.toExponential(3);
  }
  return Number(v.toPrecision(4)).toString();
}

/** CSS class of a run status icon. */
export function statusClass(status: string): string {
  switch (status) {
    case 'Completed':
      return 'amlx-status-completed';
    case 'Failed':
      return 'amlx-status-failed';
    case 'Canceled':
      return 'amlx-status-canceled';
    default:
      return isActive(status) ? 'amlx-status-active' : 'amlx-status-other';
  }
}

/**
 * The next polling interval (ms): fast while something runs, backing off (doubling) while nothing
 * changes, up to `max`; back to fast as soon as something changes.
 */
export function nextInterval(
  previous: number,
  changed: boolean,
  anyActive: boolean,
  fast = 1000,
  idle = 5000,
  max = 30000
): number {
  if (changed) {
    return anyActive ? fast : idle;
  }
  const base = anyActive ? fast : idle;
  return Math.min(Math.max(previous * 2, base), anyActive ? Math.max(fast * 4, base) : max);
}

/** A stable fingerprint of a list of runs: changes when anything the sidebar shows changes. */
export function fingerprint(runs: IRunRow[]): string {
  return runs.map(r => `${r.id}:${r.status}:${r.ended ?? ''}`).join('|');
}

export interface ISeries {
  steps: number[];
  values: (number | null)[];
  cursor: number;
  downsampled?: boolean;
}

/** Merge an incremental read (points after our cursor) into a series we hold. */
export function mergeSeries(held: ISeries | undefined, update: ISeries, limit = 4000): ISeries {
  if (!held || update.downsampled) {
    return { steps: update.steps.slice(), values: update.values.slice(), cursor: update.cursor };
  }
  const steps = held.steps.concat(update.steps);
  const values = held.values.concat(update.values);
  if (steps.length > limit) {
    // keep the chart light: every other old point, all of the newest ones
    const cut = steps.length - Math.floor(limit / 2);
    const keepS: number[] = [];
    const keepV: (number | null)[] = [];
    for (let i = 0; i < cut; i += 2) {
      keepS.push(steps[i]);
      keepV.push(values[i]);
    }
    return {
      steps: keepS.concat(steps.slice(cut)),
      values: keepV.concat(values.slice(cut)),
      cursor: update.cursor
    };
  }
  return { steps, values, cursor: update.cursor };
}

/** Metrics the run view charts at most (a run may log thousands; its table lists them all). */
export const MAX_CHARTS = 24;

/** The query of the metrics route for the charted metrics: "?since=name:cursor" for one already read,
 * "?name=name" for a first read — each its own parameter (a name may hold ",", ":", "&"). None: the route's
 * default (the first metrics logged). */
export function metricsQuery(series: { [name: string]: ISeries }, charted: string[]): string {
  const parts = charted.map(n =>
    n in series ? `since=${encodeURIComponent(`${n}:${series[n].cursor}`)}` : `name=${encodeURIComponent(n)}`
  );
  return parts.length ? `?${parts.join('&')}` : '';
}

/** The charted metrics after a poll: the chosen ones still charted, then metrics logged since, while there is
 * room (`room` of them); a metric the user took off stays off. */
export function chartedAfter(charted: string[], known: string[], takenOff: Set<string>, room: number): string[] {
  const out = charted.slice();
  for (const name of known) {
    if (out.length >= room) {
      break;
    }
    if (!out.includes(name) && !takenOff.has(name)) {
      out.push(name);
    }
  }
  return out;
}

/** Chart scaling: [min, max] of the finite values, padded so a flat line is visible. */
export function extent(values: (number | null)[]): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (v !== null && isFinite(v)) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
  }
  if (lo === Infinity) {
    return [0, 1];
  }
  if (lo === hi) {
    const pad = Math.abs(lo) * 0.05 || 1;
    return [lo - pad, hi + pad];
  }
  return [lo, hi];
}

/** A default experiment name for a notebook path: its file name without extension. */
export function experimentFor(path: string): string {
  const base = path.split('/').pop() || 'default';
  const stem = base.replace(/\.ipynb$/, '');
  return stem.replace(/[^A-Za-z0-9_.-]+/g, '-').replace(/^-+|-+$/g, '') || 'default';
}

/** A run row as the sidebar lists it: its label (the display name, told apart from equal ones by the end of
 * its id) and when it started. */
export interface IListedRun extends IRunRow {
  label: string;
}

/** Runs grouped by experiment, groups in the order of their newest run, runs newest first within a group. */
export function groupRuns(runs: IRunRow[]): { experiment: string; runs: IListedRun[] }[] {
  const counts = new Map<string, number>();
  for (const r of runs) {
    counts.set(r.name, (counts.get(r.name) || 0) + 1);
  }
  const groups = new Map<string, IListedRun[]>();
  for (const r of runs) {
    const label = (counts.get(r.name) || 0) > 1 ? `${r.name} (${r.id.slice(-6)})` : r.name;
    const list = groups.get(r.experiment) || [];
    list.push({ ...r, label });
    groups.set(r.experiment, list);
  }
  return Array.from(groups, ([experiment, list]) => ({ experiment, runs: list }));
}

/** When a run started, for a list: "12:04" today, "3 Dec 12:04" otherwise (local time). */
export function formatStart(started: number | null, now: Date = new Date()): string {
  if (started === null || started === undefined) {
    return '';
  }
  const d = new Date(started * 1000);
  const time = `${d.getHours().toString().padStart(2, '0')}:${d.getMinutes().toString().padStart(2, '0')}`;
  if (d.toDateString() === now.toDateString()) {
    return time;
  }
  const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  return `${d.getDate()} ${months[d.getMonth()]} ${time}`;
}

/** Rows sorted by `sort.key` (numbers before missing values, best first when `desc`); ties keep their order. */
export function sortRows<T extends { [k: string]: unknown }>(rows: T[], sort: { key?: string; desc?: boolean }): T[] {
  const key = sort.key;
  if (!key) {
    return rows.slice();
  }
  const num = (v: unknown) => (typeof v === 'number' && isFinite(v) ? v : null);
  const present = rows.filter(r => num(r[key]) !== null);
  const missing = rows.filter(r => num(r[key]) === null);
  present.sort((a, b) => ((num(a[key]) as number) - (num(b[key]) as number)) * (sort.desc ? -1 : 1));
  return present.concat(missing);
}

/** The run a `/lab?aml-run=RUN_ID` link names (a v1 notebook's `run.get_portal_url()`); null when there is none or
 * it is not a run id — a link is someone else's text, so only an id's characters are taken. */
export function runFromUrl(search: string): string | null {
  const match = /[?&]aml-run=([^&#]+)/.exec(search);
  if (!match) {
    return null;
  }
  let id: string;
  try {
    id = decodeURIComponent(match[1]);
  } catch {
    return null;
  }
  return /^[A-Za-z0-9_.:-]{1,200}$/.test(id) ? id : null;
}

// what a terminal acts on instead of printing: colours and cursor moves (CSI), titles (OSC), two-character escapes
// eslint-disable-next-line no-control-regex
const ESCAPES = /\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])?/g;
const TERMINAL_LONG = 100_000; // past this, a line's backspaces are dropped rather than replayed one by one

const BIDI = /[\u202a-\u202e\u2066-\u2069]/g;

/** Text from the workspace as the page shows it: bidirectional overrides and isolates as escapes (`\u202e`), not
 * acted on — a name with a right-to-left override reads backwards and reorders the text after it ("Trojan
 * Source"). The same rule as the notebook's HTML (`core.render.esc`). */
export function shownText(text: string): string {
  return text.replace(BIDI, c => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'));
}

/** A run's output as a terminal (and Jupyter's output area) shows it: a progress bar redrawn with `\r` (tqdm) or
 * backspaces (Keras) is its last state, not every state on a line of its own; colour escapes are taken out. The
 * same rule as the notebook dashboard's (`core.render.terminal_text`). */
export function terminalText(text: string): string {
  if (text.includes('\x1b')) {
    text = text.replace(ESCAPES, '');
  }
  if (!text.includes('\r') && !text.includes('\b')) {
    return text;
  }
  return text
    .replace(/\r\n/g, '\n')
    .split('\n')
    .map(line => (line.includes('\r') || line.includes('\b') ? redrawn(line) : line))
    .join('\n');
}

function redrawn(line: string): string {
  let shown = '';
  const parts = line.split('\r');
  for (let i = parts.length - 1; i >= 0; i--) {
    const part = parts[i].includes('\b') ? backspaced(parts[i]) : parts[i];
    if (part.length > shown.length) {
      shown += part.slice(shown.length);
    }
  }
  return shown;
}

function backspaced(part: string): string {
  if (part.length > TERMINAL_LONG) {
    return part.split('\b').join('');
  }
  const cells: string[] = [];
  let at = 0;
  for (const ch of part) {
    if (ch === '\b') {
      at = Math.max(0, at - 1);
    } else if (at < cells.length) {
      cells[at++] = ch;
    } else {
      cells.push(ch);
      at++;
    }
  }
  return cells.join('');
}
