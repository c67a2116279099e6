import { describe, expect, it } from 'vitest';
import {
  chartedAfter,
  metricsQuery,
  experimentFor,
  extent,
  fingerprint,
  formatDuration,
  formatStart,
  formatValue,
  groupRuns,
  IRunRow,
  isActive,
  mergeSeries,
  nextInterval,
  runFromUrl,
  sortRows,
  statusClass,
  statusText,
  shownText,
  terminalText,
  useStates
} from '../src/logic';

function run(id: string, status: string, ended: number | null = null): IRunRow {
  return {
    id,
    status,
    ended,
    experiment: 'e',
    name: id,
    compute: 'local',
    created: 0,
    started: 0,
    duration: 1,
    parent: null,
    metrics: {}
  };
}

describe('formatting', () => {
  it('writes the status bar text', () => {
    expect(statusText('local', 2)).toBe('AML: local · 2 running');
    expect(statusText('', 0)).toBe('AML: not connected');
  });
  it('formats durations', () => {
    expect(formatDuration(0.25)).toBe('250 ms');
    expect(formatDuration(12.34)).toBe('12.3 s');
    expect(formatDuration(245)).toBe('4 min 05 s');
    expect(formatDuration(7380)).toBe('2 h 03 min');
    expect(formatDuration(null)).toBe('');
  });
  it('formats values', () => {
    expect(formatValue(0.123456)).toBe('0.1235');
    expect(formatValue(3)).toBe('3');
    expect(formatValue(1.5e-7)).toBe('1.500e-7');
    expect(formatValue(null)).toBe('–');
    expect(formatValue(NaN)).toBe('–');
  });
  it('maps statuses to icon classes', () => {
    expect(statusClass('Running')).toBe('amlx-status-active');
    expect(statusClass('Queued')).toBe('amlx-status-active');
    expect(statusClass('Failed')).toBe('amlx-status-failed');
    expect(statusClass('Completed')).toBe('amlx-status-completed');
  });
  it('derives an experiment name from a notebook path', () => {
    expect(experimentFor('labs/02 train model.ipynb')).toBe('02-train-model');
    expect(experimentFor('x.ipynb')).toBe('x');
    expect(experimentFor('???.ipynb')).toBe('default');
  });
});

describe('polling', () => {
  it('is fast while runs are active and something changes', () => {
    expect(nextInterval(8000, true, true)).toBe(1000);
  });
  it('backs off while nothing changes, up to the maximum', () => {
    let i = 5000;
    const seen: number[] = [];
    for (let k = 0; k < 6; k++) {
      i = nextInterval(i, false, false);
      seen.push(i);
    }
    expect(seen).toEqual([10000, 20000, 30000, 30000, 30000, 30000]);
  });
  it('stays responsive while runs are active even without changes', () => {
    expect(nextInterval(1000, false, true)).toBe(2000);
    expect(nextInterval(4000, false, true)).toBe(4000);
  });
  it('fingerprints what the sidebar shows', () => {
    const a = fingerprint([run('a', 'Running'), run('b', 'Completed', 5)]);
    expect(fingerprint([run('a', 'Running'), run('b', 'Completed', 5)])).toBe(a);
    expect(fingerprint([run('a', 'Completed', 9), run('b', 'Completed', 5)])).not.toBe(a);
  });
});

describe('series', () => {
  it('appends incremental reads and keeps the cursor', () => {
    const first = mergeSeries(undefined, { steps: [0, 1], values: [1, 2], cursor: 2 });
    const second = mergeSeries(first, { steps: [2], values: [3], cursor: 3 });
    expect(second).toEqual({ steps: [0, 1, 2], values: [1, 2, 3], cursor: 3 });
  });
  it('replaces a held series with a downsampled first read', () => {
    const held = { steps: [0], values: [9], cursor: 1 };
    const fresh = mergeSeries(held, { steps: [0, 50], values: [1, 2], cursor: 100, downsampled: true });
    expect(fresh.steps).toEqual([0, 50]);
    expect(fresh.cursor).toBe(100);
  });
  it('stays bounded', () => {
    let s = mergeSeries(undefined, { steps: [], values: [], cursor: 0 });
    for (let k = 0; k < 50; k++) {
      const steps = Array.from({ length: 500 }, (_, i) => k * 500 + i);
      s = mergeSeries(s, { steps, values: steps.map(x => x * 2), cursor: (k + 1) * 500 }, 4000);
    }
    expect(s.steps.length).toBeLessThanOrEqual(4000);
    expect(s.steps[s.steps.length - 1]).toBe(24999);
    expect(s.cursor).toBe(25000);
  });
  it('builds the metrics query: since= for a series read, name= for a first read, each its own parameter', () => {
    const read = { loss: { steps: [], values: [], cursor: 7 }, acc: { steps: [], values: [], cursor: 3 } };
    expect(metricsQuery(read, ['loss', 'acc'])).toBe('?since=loss%3A7&since=acc%3A3');
    expect(metricsQuery(read, ['acc', 'f1'])).toBe('?since=acc%3A3&name=f1'); // loss taken off: not read
    // a metric name may hold the separators of a query
    expect(metricsQuery({ 'f1,macro&x=1': { steps: [], values: [], cursor: 2 } }, ['f1,macro&x=1', 'a:b'])).toBe(
      '?since=f1%2Cmacro%26x%3D1%3A2&name=a%3Ab'
    );
    expect(metricsQuery(read, [])).toBe('');
  });
  it('charts a metric logged later while there is room; one taken off stays off', () => {
    const known = ['loss', 'acc', 'lr', 'f1', 'auc'];
    expect(chartedAfter(['loss'], known, new Set(), 3)).toEqual(['loss', 'acc', 'lr']);
    expect(chartedAfter(['loss'], known, new Set(['acc']), 3)).toEqual(['loss', 'lr', 'f1']);
    expect(chartedAfter(['auc', 'loss', 'acc', 'lr'], known, new Set(), 3)).toEqual(['auc', 'loss', 'acc', 'lr']);
    const many = Array.from({ length: 3000 }, (_, i) => `class_${i}`);
    expect(chartedAfter([], many, new Set(), 12)).toHaveLength(12);
  });
  it('computes a padded extent', () => {
    expect(extent([1, null, 3])).toEqual([1, 3]);
    expect(extent([2, 2])).toEqual([1.9, 2.1]);
    expect(extent([null])).toEqual([0, 1]);
  });
});

describe('useStates', () => {
  it('takes the active states the server sends and ignores malformed ones', () => {
    expect(isActive('Running')).toBe(true);
    expect(isActive('Paused')).toBe(false);
    useStates({ active: ['Running', 'Paused'] });
    expect(isActive('Paused')).toBe(true);
    expect(isActive('Queued')).toBe(false);
    useStates({ active: [1, 2] });
    useStates({ active: [] });
    useStates(null);
    expect(isActive('Paused')).toBe(true);
    useStates({ active: ['NotStarted', 'Queued', 'Starting', 'Running', 'Finalizing'] });
    expect(isActive('Queued')).toBe(true);
  });
});

describe('groupRuns', () => {
  it('groups by experiment, keeps the order, and tells equal names apart', () => {
    const rows = [run('exp_aaaaaa111111', 'Running'), run('exp_bbbbbb222222', 'Completed'), run('exp_cccccc333333', 'Failed')];
    rows[0].experiment = 'train';
    rows[1].experiment = 'sweep';
    rows[2].experiment = 'train';
    rows[0].name = 'baseline';
    rows[1].name = 'search';
    rows[2].name = 'baseline';
    const groups = groupRuns(rows);
    expect(groups.map(g => g.experiment)).toEqual(['train', 'sweep']);
    expect(groups[0].runs.map(r => r.label)).toEqual(['baseline (111111)', 'baseline (333333)']);
    expect(groups[1].runs.map(r => r.label)).toEqual(['search']);
  });
});

describe('formatStart', () => {
  it('shows the time today and the date otherwise', () => {
    const now = new Date(2026, 11, 1, 15, 0, 0);
    expect(formatStart(new Date(2026, 11, 1, 9, 5, 0).getTime() / 1000, now)).toBe('09:05');
    expect(formatStart(new Date(2026, 10, 28, 23, 59, 0).getTime() / 1000, now)).toBe('28 Nov 23:59');
    expect(formatStart(null, now)).toBe('');
  });
});

describe('sortRows', () => {
  it('puts the best first and the runs without a value last, ties in their order', () => {
    const rows = [
      { _id: 'a', 'm.acc': 0.5 },
      { _id: 'b', 'm.acc': null },
      { _id: 'c', 'm.acc': 0.9 },
      { _id: 'd', 'm.acc': 0.5 }
    ];
    expect(sortRows(rows, { key: 'm.acc', desc: true }).map(r => r._id)).toEqual(['c', 'a', 'd', 'b']);
    expect(sortRows(rows, { key: 'm.acc', desc: false }).map(r => r._id)).toEqual(['a', 'd', 'c', 'b']);
    expect(sortRows(rows, {}).map(r => r._id)).toEqual(['a', 'b', 'c', 'd']);
  });
});

describe('runFromUrl', () => {
  it('takes the run a /lab?aml-run= link names', () => {
    expect(runFromUrl('?aml-run=exp_1796154809_414bd8bb')).toBe('exp_1796154809_414bd8bb');
    expect(runFromUrl('?token=abc&aml-run=a%3Ab.c-d_e')).toBe('a:b.c-d_e');
    expect(runFromUrl('?reset&aml-run=x#frag')).toBe('x');
  });
  it('refuses what is not a run id: markup, paths, bad escapes, nothing', () => {
    expect(runFromUrl('?aml-run=%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E')).toBeNull();
    expect(runFromUrl('?aml-run=..%2F..%2Fetc')).toBeNull();
    expect(runFromUrl('?aml-run=%E0%A4%A')).toBeNull();
    expect(runFromUrl('?aml-run=' + 'a'.repeat(201))).toBeNull();
    expect(runFromUrl('?other=1')).toBeNull();
    expect(runFromUrl('')).toBeNull();
  });
});

describe('terminalText', () => {
  it('shows a progress bar redrawn with carriage returns as its last state', () => {
    const tqdm = 'start\n  0%|   | 0/3\r 33%|#  | 1/3\r100%|###| 3/3\ndone\n';
    expect(terminalText(tqdm)).toBe('start\n100%|###| 3/3\ndone\n');
  });
  it('writes a shorter redraw over the start of the line, as a terminal does', () => {
    expect(terminalText('abcdef\rxy')).toBe('xycdef');
    expect(terminalText('line1\r\nline2\r\n')).toBe('line1\nline2\n');
  });
  it('replays backspaces (Keras) and takes colour and title escapes out', () => {
    expect(terminalText('1/3 [==>...]' + '\b'.repeat(12) + '2/3 [=====>]')).toBe('2/3 [=====>]');
    expect(terminalText('\x1b[32mgreen\x1b[0m and \x1b]0;title\x07x')).toBe('green and x');
  });
  it('leaves plain text as it is', () => {
    expect(terminalText('a\nb <b>c</b>\n')).toBe('a\nb <b>c</b>\n');
  });
});

describe('shownText', () => {
  it('shows bidirectional overrides and isolates as escapes, leaves right-to-left letters alone', () => {
    expect(shownText('report\u202egpj.exe')).toBe('report\\u202egpj.exe');
    expect(shownText('a\u2066b\u2069c\u202a')).toBe('a\\u2066b\\u2069c\\u202a');
    expect(shownText('שלום <b>')).toBe('שלום <b>');
  });
});
