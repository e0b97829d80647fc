// The multi-writer bench's pure figures: error classes, percentiles, the lost-update check and the table.
import { describe, expect, it } from 'vitest';
import {
  type ProbeResult,
  benchProblems,
  checkSums,
  classifyError,
  countErrors,
  failedMode,
  formatDetails,
  formatTable,
  latencyStats,
  percentile,
  summarizeMode,
} from '../../src/bench/multiwriter.js';

const nodes = (sum: number, rows = 5) =>
  ['ctl1', 'ctl2', 'ctl3'].map((node, i) => ({ address: `198.18.12.${11 + i}`, node, rows, sum }));

function probe(over: Partial<ProbeResult> = {}): ProbeResult {
  return {
    mode: 'multi',
    workers: 6,
    seconds: 8,
    rows: 5,
    targets: ['198.18.12.11', '198.18.12.12', '198.18.12.13'],
    elapsedS: 8,
    attempts: 110,
    committed: 100,
    unknownOutcome: 0,
    latenciesMs: Array.from({ length: 100 }, (_, i) => i + 1),
    errors: [
      {
        key: 'commit:1213',
        errno: 1213,
        code: 'ER_LOCK_DEADLOCK',
        step: 'commit',
        count: 6,
        sample: 'Deadlock found when trying to get lock; try restarting transaction',
      },
      { key: 'select:1213', errno: 1213, code: 'ER_LOCK_DEADLOCK', step: 'select', count: 2, sample: 'x' },
      {
        key: 'update:1205',
        errno: 1205,
        code: 'ER_LOCK_WAIT_TIMEOUT',
        step: 'update',
        count: 1,
        sample: 'y',
      },
      {
        key: 'commit:1047',
        errno: 1047,
        code: 'ER_UNKNOWN_COM_ERROR',
        step: 'commit',
        count: 1,
        sample: 'z',
      },
    ],
    writesByNode: { ctl1: 40, ctl2: 30, ctl3: 30 },
    sums: nodes(100),
    galera: [],
    ...over,
  };
}

describe('classifyError', () => {
  it('tells deadlocks (1213, also Galera certification failures) and lock wait timeouts (1205) apart', () => {
    expect(classifyError(1213)).toBe('deadlock');
    expect(classifyError(1205)).toBe('lockWait');
    expect(classifyError(1047)).toBe('other');
    expect(classifyError(null)).toBe('other');
    expect(classifyError(undefined)).toBe('other');
  });

  it('counts by class, deadlocks by step and the rest by key', () => {
    const c = countErrors(probe().errors);
    expect(c).toEqual({
      deadlocks: 8,
      lockWaits: 1,
      other: 1,
      otherByKey: { 'commit:1047': 1 },
      deadlocksByStep: { commit: 6, select: 2 },
    });
  });
});

describe('percentile and latencyStats', () => {
  it('uses the nearest rank', () => {
    const xs = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(xs, 50)).toBe(50);
    expect(percentile(xs, 99)).toBe(99);
    expect(percentile(xs, 100)).toBe(100);
    expect(percentile(xs, 0)).toBe(1);
    expect(percentile([7], 99)).toBe(7);
    expect(percentile([1, 2, 3], 50)).toBe(2);
    expect(percentile([], 50)).toBeUndefined();
  });

  it('sorts before it ranks and has nulls for nothing committed', () => {
    expect(latencyStats([5, 1, 3, 2, 4])).toEqual({ count: 5, p50: 3, p99: 5, max: 5, mean: 3 });
    expect(latencyStats([])).toEqual({ count: 0, p50: null, p99: null, max: null, mean: null });
  });
});

describe('checkSums (no lost update)', () => {
  it('holds when every node has every row and the sum equals the commits', () => {
    const c = checkSums(100, 0, 5, nodes(100));
    expect(c.ok).toBe(true);
    expect(c.detail).toBe('sum 100 = 100 committed on ctl1, ctl2, ctl3');
  });

  it('fails on a lost update, naming how many', () => {
    const c = checkSums(100, 0, 5, nodes(97));
    expect(c.ok).toBe(false);
    expect(c.detail).toContain('ctl1: sum 97 < 100 committed (3 lost updates)');
  });

  it('fails on an increment nobody saw commit', () => {
    expect(checkSums(100, 0, 5, nodes(101)).ok).toBe(false);
  });

  it('accepts a COMMIT of unknown outcome either way, and nothing beyond', () => {
    expect(checkSums(100, 2, 5, nodes(100)).ok).toBe(true);
    expect(checkSums(100, 2, 5, nodes(102)).ok).toBe(true);
    expect(checkSums(100, 2, 5, nodes(103)).ok).toBe(false);
  });

  it('fails when nodes disagree, a node was not read, rows are missing, or nothing was read', () => {
    const s = nodes(100);
    const disagree = [s[0]!, s[1]!, { ...s[2]!, sum: 99 }];
    expect(checkSums(100, 1, 5, disagree).detail).toContain('nodes disagree: 100 vs 99');
    const unread = [s[0]!, s[1]!, { address: '198.18.12.13', error: 'connect ECONNREFUSED' }];
    const u = checkSums(100, 0, 5, unread);
    expect(u.ok).toBe(false);
    expect(u.detail).toContain('198.18.12.13: not read (connect ECONNREFUSED)');
    expect(checkSums(100, 0, 6, s).ok).toBe(false);
    expect(checkSums(0, 0, 5, []).ok).toBe(false);
  });
});

describe('summarizeMode', () => {
  it('derives rates, deadlock share of attempts, writers and latency', () => {
    const m = summarizeMode(probe());
    expect(m).toMatchObject({
      committed: 100,
      commitsPerS: 12.5,
      deadlocks: 8,
      deadlockPct: 7.27,
      lockWaits: 1,
      otherErrors: 1,
      writers: ['ctl1', 'ctl2', 'ctl3'],
      latencyMs: { count: 100, p50: 50, p99: 99, max: 100, mean: 50.5 },
      deadlockSample: 'Deadlock found when trying to get lock; try restarting transaction',
    });
    expect(m.sumCheck.ok).toBe(true);
    expect(benchProblems([m])).toEqual([]);
  });

  it('copes with a run where nothing was attempted', () => {
    const m = summarizeMode(
      probe({ attempts: 0, committed: 0, elapsedS: 0, latenciesMs: [], errors: [], sums: nodes(0) }),
    );
    expect(m).toMatchObject({ commitsPerS: 0, deadlockPct: 0, latencyMs: { p50: null } });
  });
});

describe('formatTable and problems', () => {
  const single = summarizeMode(
    probe({ mode: 'single', errors: [], attempts: 100, writesByNode: { ctl1: 100 } }),
  );
  const multi = summarizeMode(probe({ sums: nodes(90) }));
  const notRun = failedMode('multi', { workers: 6, seconds: 8, rows: 5 }, 'probe timed out');

  it('prints one aligned line per mode', () => {
    const t = formatTable([single, multi, notRun]);
    const lines = t.split('\n');
    expect(lines).toHaveLength(5);
    expect(lines[0]).toMatch(
      /^mode\s+workers\s+seconds\s+writers\s+committed\s+commits\/s\s+deadlocks\s+lock waits\s+other errors\s+p50 ms\s+p99 ms\s+sum check$/,
    );
    expect(lines[2]).toMatch(
      /^single\s+6\s+8\.0\s+1\s+100\s+12\.5\s+0 \(0\.0%\)\s+0\s+0\s+50\.0\s+99\.0\s+ok$/,
    );
    expect(lines[3]).toMatch(
      /^multi\s+6\s+8\.0\s+3\s+100\s+12\.5\s+8 \(7\.3%\)\s+1\s+1\s+50\.0\s+99\.0\s+MISMATCH$/,
    );
    expect(lines[4]).toMatch(/^multi\s.*\s-\s+-\s+not run$/);
    // Aligned: every line has the column "committed" ending at the same place.
    const end = lines[0]!.indexOf('committed') + 'committed'.length;
    expect(lines[2]!.slice(0, end)).toMatch(/100$/);
    expect(lines[3]!.slice(0, end)).toMatch(/100$/);
  });

  it('reports a lost update and a mode that did not run as problems', () => {
    expect(benchProblems([single, multi, notRun])).toEqual([
      'multi: sum check failed: ctl1: sum 90 < 100 committed (10 lost updates); ctl2: sum 90 < 100 committed (10 lost updates); ctl3: sum 90 < 100 committed (10 lost updates)',
      'multi: not run: probe timed out',
    ]);
  });

  it('details where writes went and how deadlocks surfaced', () => {
    const d = formatDetails([single, multi]);
    expect(d).toContain('single: 100 attempts; commits by node: ctl1=100');
    expect(d).toContain('deadlocks (1213) at commit 6, select 2: "Deadlock found');
    expect(d).toContain('other errors: commit:1047=1');
  });
});
