import { describe, expect, it } from 'vitest';
import {
  analyze,
  latencyStats,
  parseOps,
  percentile,
  reconcile,
  reconcileNodes,
  spread,
  tallyServers,
  timeline,
} from '../../src/chaos/analyze.js';
import {
  formatOutageTable,
  formatResults,
  formatTrialsMarkdown,
  renderTimelineSvg,
  summarizeTrials,
  violations,
} from '../../src/chaos/report.js';
import type { ScenarioResult } from '../../src/chaos/run.js';
import type { ServerOutcome } from '../../src/probes/load.js';
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

describe('analyze: outages anchored to the fault', () => {
  it('reports the longest gap overlapping the fault, the time to the first success after it, and failures in it', () => {
    const ops = steady('sql', 0, 20_000, 20, [10_000, 13_000]);
    const [sql] = analyze(ops, { start: 0, end: 20_000 }, { start: 9_900, end: 15_000 });
    expect(sql?.workload).toBe('sql');
    expect(sql?.ops).toBe(1000);
    expect(sql?.failures).toBe(150);
    expect(sql?.failuresInFault).toBe(150);
    // Last success completes at 9980+5, next at 13000+5.
    expect(sql?.faultGapMs).toBe(13_005 - 9_985);
    expect(sql?.faultGapStartMs).toBe(9_985 - 9_900);
    // Injected at 9900: the op started at 9880 completes at 9885 (before); 9900 completes at 9905.
    expect(sql?.firstSuccessAfterFaultMs).toBe(9_905 - 9_900);
    expect(sql?.recovered).toBe(true);
    expect(sql?.errors).toEqual({ ECONNREFUSED: 150 });
  });

  it('measures each workload from its first success: a slow start is start-up, never the outage', () => {
    // The generator took 3 s to get its first SQL success; the fault at 10 s caused a 300 ms gap.
    const ops = [...steady('sql', 3_000, 10_000, 20), ...steady('sql', 10_300, 20_000, 20)];
    const [sql] = analyze(ops, { start: 0, end: 20_000 }, { start: 10_000, end: 12_000 });
    expect(sql?.firstSuccessMs).toBe(3_005);
    expect(sql?.faultGapMs).toBe(10_305 - 9_985);
    // The steady-state worst gap outside the window is the 20 ms rhythm, not the 3 s start-up.
    expect(sql?.steadyGapMs).toBe(20);
  });

  it('keeps steady-state jitter outside the window apart from the fault gap', () => {
    const ops = [
      ...steady('mc', 0, 4_000, 20),
      // A 700 ms hiccup long before the fault.
      ...steady('mc', 4_700, 10_000, 20),
      ...steady('mc', 10_250, 20_000, 20),
    ];
    const [mc] = analyze(ops, { start: 0, end: 20_000 }, { start: 10_000, end: 11_000 });
    expect(mc?.steadyGapMs).toBe(4_705 - 3_985);
    expect(mc?.faultGapMs).toBe(10_255 - 9_985);
  });

  it('counts a workload that never recovered as out until the end of the load', () => {
    const ops = steady('amqp', 0, 5_000, 20, [3_000, 5_000]);
    const [a] = analyze(ops, { start: 0, end: 8_000 }, { start: 3_000, end: 8_000 });
    expect(a?.faultGapMs).toBe(8_000 - (2_980 + 5));
    expect(a?.recovered).toBe(false);
    expect(a?.firstSuccessAfterFaultMs).toBeUndefined();
  });

  it('a cluster never whole again (the window runs to the end of the load): serving again is recovered', () => {
    // A failed rolling restart left one server in maintenance until the load ended: the window never closed, but
    // the workload failed for 2 s and then served to the end (rolling-5, trial 4: every workload said "never").
    const ops = steady('sql', 0, 30_000, 20, [10_000, 12_000]);
    const [sql] = analyze(ops, { start: 0, end: 30_000 }, { start: 9_000, end: 30_000 });
    expect(sql?.recovered).toBe(true);
    expect(sql?.faultGapMs).toBe(12_005 - 9_985);
    // No failure at all in the open window: recovered too (it never stopped).
    const [mc] = analyze(
      steady('mc', 0, 30_000, 20),
      { start: 0, end: 30_000 },
      { start: 9_000, end: 30_000 },
    );
    expect(mc?.recovered).toBe(true);
  });

  it('an open window: failing at the end of the load, or no success since the fault, is not recovered', () => {
    // Succeeded again for a while, then failed to the end.
    const ops = [
      ...steady('http', 0, 20_000, 100, [10_000, 12_000]),
      ...steady('http', 20_000, 29_000, 100, [20_000, 29_000]),
    ];
    const [http] = analyze(ops, { start: 0, end: 30_000 }, { start: 9_000, end: 30_000 });
    expect(http?.recovered).toBe(false);
    // The gap from its last success to the end of the load is its outage.
    expect(http?.faultGapMs).toBe(30_000 - 19_905);
    // Ran fine until the fault, then only failures.
    const tok = steady('tok', 0, 29_000, 1_000, [9_000, 29_000]);
    const [t] = analyze(tok, { start: 0, end: 30_000 }, { start: 9_000, end: 30_000 });
    expect(t?.recovered).toBe(false);
  });

  it('a failure completing in the drain, after the load ended, does not undo a recovery', () => {
    const ops = [...steady('amqp', 0, 30_000, 20), { w: 'amqp' as const, t: 29_990, l: 5_000, ok: false }];
    const [a] = analyze(ops, { start: 0, end: 30_000 }, { start: 9_000, end: 30_000 });
    expect(a?.recovered).toBe(true);
  });

  it('a closed window still asks for a success after it, whatever happened inside it', () => {
    // Served during the window, then stopped just as the cluster was whole again.
    const ops = steady('sql', 0, 15_000, 20);
    const [sql] = analyze(ops, { start: 0, end: 30_000 }, { start: 9_000, end: 16_000 });
    expect(sql?.recovered).toBe(false);
  });

  it('counts a workload that never succeeded as out for the whole fault window', () => {
    const ops = steady('tok', 0, 5_000, 100, [0, 5_000]);
    const [t] = analyze(ops, { start: 0, end: 8_000 }, { start: 2_000, end: 6_000 });
    expect(t?.firstSuccessMs).toBeUndefined();
    expect(t?.faultGapMs).toBe(4_000);
    expect(t?.recovered).toBe(false);
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

  it('omits workloads with no operations and ignores operations outside the load window', () => {
    const ops = [...steady('http', -5_000, -1, 100), ...steady('http', 0, 1_000, 100)];
    const stats = analyze(ops, { start: 0, end: 1_000 }, { start: 500, end: 600 });
    expect(stats.map((s) => s.workload)).toEqual(['http']);
    expect(stats[0]?.ops).toBe(10);
  });
});

describe('timeline', () => {
  it('buckets successes and failures by completion time, per workload', () => {
    const ops = steady('sql', 0, 1_000, 50, [500, 700]);
    const tl = timeline(ops, { start: 0, end: 1_000 }, 250);
    expect(tl.bucketMs).toBe(250);
    // Failures take 1000 ms: those completing after the window's end are left out.
    expect(tl.workloads.sql).toEqual([
      [5, 0],
      [5, 0],
      [1, 0],
      [5, 0],
    ]);
    expect(tl.workloads.amqp).toBeUndefined();
  });
});

describe('spread over trials', () => {
  it('is the median (lower of two middles) and the worst', () => {
    expect(spread([300, 100, 200])).toEqual({ median: 200, worst: 300, n: 3 });
    expect(spread([4, 1, 3, 2])).toEqual({ median: 2, worst: 4, n: 4 });
    expect(spread([undefined, 5])).toEqual({ median: 5, worst: 5, n: 1 });
    expect(spread([])).toBeUndefined();
  });
});

describe('reconcileNodes', () => {
  it('reconciles every node on its own; a failed read-back is not verified, never lost', () => {
    const r = reconcileNodes(
      ['a', 'b', 'c'],
      [
        { node: 'ctl1', ids: new Set(['a', 'b', 'c']) },
        { node: 'ctl2', ids: new Set(['a', 'c']) },
        { node: 'ctl3', ids: undefined, error: 'ERROR 2002: cannot connect' },
      ],
    );
    expect(r.acknowledged).toBe(3);
    expect(r.nodes).toEqual([
      { node: 'ctl1', present: 3, lost: 0, lostIds: [], error: undefined },
      { node: 'ctl2', present: 2, lost: 1, lostIds: ['b'], error: undefined },
      { node: 'ctl3', present: 0, lost: 0, lostIds: [], error: 'ERROR 2002: cannot connect' },
    ]);
    expect(r.lost).toBe(1);
    expect(r.lostIds).toEqual(['b']);
    expect(r.notVerified).toEqual(['ctl3']);
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

describe('violations and reports', () => {
  const workloads = analyze(steady('sql', 0, 1_000, 20), { start: 0, end: 1_000 }, { start: 0, end: 1 });
  const base: ScenarioResult = {
    scenario: 's',
    profile: 'stackha',
    queues: 'quorum',
    trial: 1,
    runId: 's-1234',
    target: 't',
    startedAt: '',
    faultStartMs: 500,
    faultSeconds: 1,
    recoveredSeconds: 2,
    workloads,
    evidence: ['mariadb on ctl1 gone (pid 1) 0.1 s after the kill'],
    sql: {
      acknowledged: 10,
      nodes: [{ node: 'ctl1', present: 10, lost: 0, lostIds: [], error: undefined }],
      lost: 0,
      lostIds: [],
      notVerified: [],
    },
    amqp: {
      confirmed: 10,
      lost: 0,
      duplicates: 1,
      reconnects: 0,
      lostIds: [],
      leftInQueue: 0,
      notVerified: false,
    },
    problemsAfter: [],
    timeline: timeline(steady('sql', 0, 1_000, 20), { start: 0, end: 1_000 }),
  };
  it('accepts a clean run (duplicates are at-least-once, not a violation)', () => {
    expect(violations(base)).toEqual([]);
    expect(formatOutageTable([base])).toContain('| s ');
    expect(formatResults([base])).toContain('ctl1 10 present, 0 lost');
  });
  it('a build lost with a killed conductor is reported, not a violation; a stuck one is', () => {
    const kill = 500_000;
    const server = (host?: string): ServerOutcome => ({
      id: 'srv-1',
      state: 'stuck-build',
      deleted: 'deleted',
      createdAt: kill - 2000,
      taskState: 'scheduling',
      ...(host ? { host } : {}),
    });
    const withServer = (s: ServerOutcome): ScenarioResult => ({
      ...base,
      openstack: {
        objects: { acked: 1, lost: 0, detail: [] },
        images: { acked: 0, lost: 0, detail: [] },
        servers: tallyServers([s], { atMs: kill, windowMs: 120_000 }),
        notVerified: false,
      },
    });
    expect(violations(withServer(server()))).toEqual([]);
    expect(formatResults([withServer(server())])).toContain('1 lost in flight with the killed daemon');
    expect(violations(withServer(server('ctl1')))).toEqual(['1 servers stuck in BUILD']);
  });
  it('flags loss, unverified nodes, a fault not observed, a cluster left broken and an outage over the bound', () => {
    const bad: ScenarioResult = {
      ...base,
      sql: { ...base.sql, lost: 1, lostIds: ['x'], notVerified: ['ctl3'] },
      amqp: { ...base.amqp, lost: 2 },
      evidence: ['NOT OBSERVED: writes still go to ctl1 15 s after the fault'],
      problemsAfter: ['galera: ctl2 is not running'],
      workloads: analyze(
        steady('sql', 0, 100_000, 20, [1_000, 90_000]),
        { start: 0, end: 100_000 },
        { start: 1_000, end: 2_000 },
      ),
    };
    const v = violations(bad).join('\n');
    expect(v).toContain('1 acknowledged SQL rows lost');
    expect(v).toContain('SQL rows not verified on ctl3');
    expect(v).toContain('2 confirmed messages lost');
    expect(v).toContain('fault NOT OBSERVED');
    expect(v).toContain('not whole after healing');
    expect(v).toMatch(/sql: outage 89\.\d+ s > 60\.00 s/);
    expect(violations({ ...base, amqp: { ...base.amqp, notVerified: true } })).toEqual([
      'AMQP messages not verified (no accounting from the load generator)',
    ]);
  });
  it('summarizes trials with median and worst, both profiles side by side with their ratio', () => {
    const run = (profile: string, trial: number, gapMs: number): ScenarioResult => ({
      ...base,
      profile,
      trial,
      workloads: analyze(
        [...steady('sql', 0, 10_000, 20), ...steady('sql', 10_000 + gapMs, 20_000, 20)],
        { start: 0, end: 20_000 },
        { start: 10_000, end: 12_000 },
      ),
    });
    const results = [
      run('stackha', 1, 1_000),
      run('stackha', 2, 3_000),
      run('stackha', 3, 2_000),
      run('kolla', 1, 8_000),
      run('kolla', 2, 6_000),
    ];
    const summaries = summarizeTrials(results);
    expect(summaries.map((x) => [x.profile, x.trials])).toEqual([
      ['stackha', 3],
      ['kolla', 2],
    ]);
    const sqlA = summaries[0]?.workloads.find((w) => w.workload === 'sql');
    expect(sqlA?.outageMs).toEqual({ median: 2_020, worst: 3_020, n: 3 });
    const md = formatTrialsMarkdown(summaries);
    expect(md).toContain('### s (quorum queues; trials: stackha 3, kolla 2)');
    // kolla's median 6.02 s over stackha's 2.02 s.
    expect(md).toMatch(
      /\| SQL write +\| 2\.02 \(3\.02\) +\| 0 \(0\) +\| 6\.02 \(8\.02\) +\| 0 \(0\) +\| 3\.0x/,
    );
  });
  it('draws a timeline: one row per workload, the fault window shaded', () => {
    const svg = renderTimelineSvg(base);
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('SQL write');
    expect(svg).toContain('>fault<');
    expect(svg).toContain('#2e7d32');
  });
});

describe('tallyServers: a build lost with a killed conductor is counted apart, only with the evidence', () => {
  const kill = 1_000_000;
  const stuck = (over: Partial<ServerOutcome>): ServerOutcome => ({
    id: 'srv-1',
    state: 'stuck-build',
    deleted: 'deleted',
    createdAt: kill - 3000,
    taskState: 'scheduling',
    ...over,
  });
  const loss = { atMs: kill, windowMs: 120_000 };

  it('never scheduled, still scheduling, created before the kill: lost in flight, not stuck', () => {
    const t = tallyServers([stuck({}), { id: 'srv-2', state: 'active', deleted: 'deleted' }], loss);
    expect(t).toMatchObject({ booted: 2, active: 1, stuckBuild: 0, lostInFlight: 1 });
    expect(t.errors[0]).toContain(
      'created 3.0 s before the kill): its build was in flight on the killed daemon',
    );
  });

  it('without a kill that may lose builds, the same server is stuck', () => {
    expect(tallyServers([stuck({})])).toMatchObject({ stuckBuild: 1, lostInFlight: 0 });
  });

  it('a server that had a compute host, was created after the kill, or long before it, is stuck', () => {
    const t = tallyServers(
      [
        stuck({ host: 'ctl2', taskState: 'spawning' }),
        stuck({ createdAt: kill + 500 }),
        stuck({ createdAt: kill - 200_000 }),
        stuck({ taskState: 'block_device_mapping' }),
        stuck({ createdAt: undefined as unknown as number }),
      ],
      loss,
    );
    expect(t).toMatchObject({ stuckBuild: 5, lostInFlight: 0 });
  });
});
