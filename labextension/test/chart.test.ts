// The notebook dashboards' chart module (aml_magics/widgets/static/chart.js): ticks, their labels and
// the parallel-coordinates axes. Pure functions: no DOM needed.
import { describe, expect, it } from 'vitest';
// @ts-ignore -- a plain ES module shipped with the Python package
import * as chart from '../../aml_magics/widgets/static/chart.js';

const { niceTicks, logTicks, tickLabels, timeTicks, parcoordsAxis, fmt } = chart as any;

describe('niceTicks', () => {
  it('steps on an integer axis are whole numbers', () => {
    const t = niceTicks(0, 3, 8, true);
    expect(t.step).toBe(1);
    expect(t.values).toEqual([0, 1, 2, 3]);
    expect(niceTicks(0, 7, 3, true).values.every(Number.isInteger)).toBe(true);
  });
  it('snaps to zero instead of -5.55e-17', () => {
    const t = niceTicks(-0.3, 0.3, 6);
    expect(t.values).toContain(0);
    expect(t.values.some((v: number) => v !== 0 && Math.abs(v) < 1e-12)).toBe(false);
    expect(tickLabels(t).join(' ')).not.toMatch(/e-1[0-9]/);
  });
  it('a one-point metric gets a sensible range around its value', () => {
    const t = niceTicks(0.5, 0.5, 4);
    expect(t.values.length).toBeGreaterThanOrEqual(2);
    expect(t.values[0]).toBeLessThanOrEqual(0.5);
    expect(t.values[t.values.length - 1]).toBeGreaterThanOrEqual(0.5);
    expect(niceTicks(0, 0, 4).values).toContain(0);
  });
  it('never loops forever on a huge or inverted range', () => {
    expect(niceTicks(1e300, -1e300, 4).values.length).toBeLessThan(20);
    expect(niceTicks(NaN, 1, 4).values).toEqual([]);
  });
});

describe('tickLabels', () => {
  it('uses one format for the whole axis: no 80000 beside 1.00e+5', () => {
    const labels = tickLabels(niceTicks(0, 100000, 5));
    expect(labels).toEqual(['0', '20k', '40k', '60k', '80k', '100k']);
  });
  it('shows as many decimals as the step needs', () => {
    expect(tickLabels(niceTicks(0, 1, 4))).toEqual(['0.0', '0.2', '0.4', '0.6', '0.8', '1.0']);
    expect(tickLabels(niceTicks(0.9, 0.95, 5))).toEqual(['0.90', '0.91', '0.92', '0.93', '0.94', '0.95']);
  });
  it('writes tiny values with exponents, distinct from one another', () => {
    const labels = tickLabels(niceTicks(0.00001, 0.00005, 4));
    expect(new Set(labels).size).toBe(labels.length);
    expect(labels.every((l: string) => l === '0' || /e-/.test(l))).toBe(true);
  });
  it('labels log axes by powers of ten', () => {
    const t = logTicks(0.001, 1000);
    expect(t.values).toEqual([0.001, 0.01, 0.1, 1, 10, 100, 1000]);
    expect(tickLabels(t)).toEqual(['0.001', '0.01', '0.1', '1', '10', '100', '1000']);
    expect(logTicks(2, 30).values).toEqual([2, 5, 10, 20]);
    expect(logTicks(0, 10).values).toEqual([]);
  });
});

describe('timeTicks', () => {
  it('steps by round seconds and minutes', () => {
    const t0 = 1_700_000_000;
    expect(timeTicks(t0, t0 + 60, 6).step).toBe(10);
    expect(timeTicks(t0, t0 + 3600, 6).step).toBe(600);
    expect(timeTicks(t0, t0 + 3600, 6).labels[0]).toMatch(/^\d\d:\d\d$/);
  });
});

describe('parcoordsAxis', () => {
  it('spreads categories evenly, first to last', () => {
    const a = parcoordsAxis({ name: 'kernel', values: [0, 1, 2, 1], categories: ['linear', 'rbf', 'poly'] });
    expect(a.ticks).toEqual([[0, 'linear'], [0.5, 'rbf'], [1, 'poly']]);
    expect(parcoordsAxis({ name: 'k', values: [0, 0], categories: ['only'] }).ticks).toEqual([[0.5, 'only']]);
  });
  it('puts a log-sampled parameter on a log axis with decade ticks', () => {
    const a = parcoordsAxis({ name: 'alpha', values: [0.0001, 0.01, 1], log: true });
    expect(a.log).toBe(true);
    expect(a.at(0.01)).toBeCloseTo(0.5);
    expect(a.ticks.map((t: any) => t[1])).toEqual(['1e-4', '0.001', '0.01', '0.1', '1']);
  });
  it('gives whole-number parameters whole-number ticks', () => {
    const a = parcoordsAxis({ name: 'k', values: [1, 2, 3] });
    expect(a.ticks.map((t: any) => t[1])).toEqual(['1', '2', '3']);
  });
  it('ticks a numeric axis inside its range', () => {
    const a = parcoordsAxis({ name: 'lr', values: [0.1, 0.5] });
    expect(a.ticks.length).toBeGreaterThanOrEqual(2);
    expect(a.ticks.every(([p]: number[]) => p >= 0 && p <= 1)).toBe(true);
  });
});

describe('fmt', () => {
  it('gives 4 significant digits and exponents only for extremes', () => {
    expect(fmt(0.948891)).toBe('0.9489');
    expect(fmt(123456789)).toBe('1.235e+8');
    expect(fmt(null)).toBe('null');
  });
});
