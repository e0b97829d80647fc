import { describe, expect, it } from 'vitest';
import { analyze, latencyStats, parseOps, percentile, reconcile } from '../../src/chaos/analyze.js';
import { formatOutageTable, violations } from '../../src/chaos/report.js';
import type { ScenarioResult } from '../../src/chaos/run.js';
import type { OpRecord } from '../../src/probes/load.js';

/** A steady workload: one op every `every` ms from `from` to `to`, failing inside [failFrom, failTo). */
function steady(
  w: OpRecord['w'],
  from: number,
  to: number,
  every: number,
  fail?: [number, number],
  latency = 5,
): OpRecord[] {
  const out: OpRecord[] = [];
  for (let t = from; t < to; t += every) {
    const failing = fail !== undefined && t >= fail[0] && t < fail[1];
    out.push(failing ? { w, t, l: 1000, ok: false, e: 'ECONNREFUSED' } : { w, t, l: latency, ok: true });
  }
  return out;
}

describe('percentiles', () => {
  it('uses the nearest rank', () => {
    const v = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(v, 50)).toBe(50);
    expect(percentile(v, 99)).toBe(99);
    expect(percentile(v, 100)).toBe(100);
    expect(percentile([], 50)).toBeUndefined();
    expect(latencyStats([5, 1, 3])).toEqual({ n: 3, p50: 3, p99: 5, max: 5 });
  });
});

describe('analyze', () => {
  it('finds the longest gap without a success, and counts failures inside the fault', () => {
    const ops = steady('sql', 0, 20_000, 20, [10_000, 13_000]);
    const [sql] = analyze(ops, { start: 0, end: 20_000 }, { start: 9_900, end: 15_000 });
    expect(sql?.workload).toBe('sql');
    expect(sql?.ops).toBe(1000);
    expect(sql?.failures).toBe(150);
    expect(sql?.failuresDuringFault).toBe(150);
    // Last success completes at 9980+5, next at 13000+5.
    expect(sql?.longestGapMs).toBe(13_005 - 9_985);
    expect(sql?.gapStartAfterFaultMs).toBe(9_985 - 9_900);
    expect(sql?.errors).toEqual({ ECONNREFUSED: 150 });
  });

  it('counts a workload that never recovered as out until the end of the window', () => {
    const ops = steady('amqp', 0, 5_000, 20, [3_000, 5_000]);
    const [a] = analyze(ops, { start: 0, end: 8_000 }, { start: 3_000, end: 8_000 });
    expect(a?.longestGapMs).toBe(8_000 - (2_980 + 5));
  });

  it('separates latencies inside and outside the fault window', () => {
    const ops = [
      ...steady('mc', 0, 1_000, 100, undefined, 2),
      ...steady('mc', 1_000, 2_000, 100, undefined, 50),
      ...steady('mc', 2_000, 3_000, 100, undefined, 2),
    ];
    const [mc] = analyze(ops, { start: 0, end: 3_000 }, { start: 1_000, end: 1_999 });
    expect(mc?.during.p50).toBe(50);
    expect(mc?.outside.p50).toBe(2);
    expect(mc?.failures).toBe(0);
  });

  it('omits workloads with no operations and ignores operations outside the window', () => {
    const ops = [...steady('http', -5_000, -1, 100), ...steady('http', 0, 1_000, 100)];
    const stats = analyze(ops, { start: 0, end: 1_000 }, { start: 500, end: 600 });
    expect(stats.map((s) => s.workload)).toEqual(['http']);
    expect(stats[0]?.ops).toBe(10);
  });
});

describe('reconcile', () => {
  it('reports acknowledged ids that are missing, and duplicates', () => {
    expect(reconcile(['a', 'b', 'c'], new Set(['a', 'c', 'x']))).toEqual({
      acknowledged: 3,
      lost: ['b'],
      duplicates: 0,
    });
    expect(
      reconcile(
        ['a', 'b'],
        new Map([
          ['a', 2],
          ['b', 1],
          ['z', 3],
        ]),
      ),
    ).toEqual({
      acknowledged: 2,
      lost: [],
      duplicates: 3,
    });
  });

  it('parses an ops file, skipping a line cut short by a crash', () => {
    const text = '{"w":"sql","t":1,"l":2,"ok":true}\n{"w":"sql","t":3,"l":4,"ok":false,"e":"x"}\n{"w":"sq';
    expect(parseOps(text)).toHaveLength(2);
  });
});

describe('violations', () => {
  const base: ScenarioResult = {
    scenario: 's',
    profile: 'stackha',
    target: 't',
    startedAt: '',
    faultSeconds: 1,
    recoveredSeconds: 2,
    workloads: analyze(steady('sql', 0, 1_000, 20), { start: 0, end: 1_000 }, { start: 0, end: 1 }),
    sql: { acknowledged: 10, lost: 0, lostIds: [] },
    amqp: { confirmed: 10, lost: 0, duplicates: 1, reconnects: 0, lostIds: [] },
    problemsAfter: [],
  };
  it('accepts a clean run (duplicates are at-least-once, not a violation)', () => {
    expect(violations(base)).toEqual([]);
    expect(formatOutageTable([base])).toContain('| s ');
  });
  it('flags loss, a cluster left broken and an outage over the bound', () => {
    const bad: ScenarioResult = {
      ...base,
      sql: { acknowledged: 10, lost: 1, lostIds: ['x'] },
      amqp: { ...base.amqp, lost: 2 },
      problemsAfter: ['galera: ctl2 is not running'],
      workloads: analyze(
        steady('sql', 0, 100_000, 20, [1_000, 90_000]),
        { start: 0, end: 100_000 },
        { start: 0, end: 1 },
      ),
    };
    const v = violations(bad).join('\n');
    expect(v).toContain('1 acknowledged SQL rows lost');
    expect(v).toContain('2 confirmed messages lost');
    expect(v).toContain('not whole after healing');
    expect(v).toMatch(/sql: outage 89\.\d+ s > 60\.00 s/);
  });
});
