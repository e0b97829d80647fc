// The spec's multi-writer test on a real 3-host lab: SELECT ... FOR UPDATE read-modify-write through the VIP
// (one writer) and on all three Galera nodes (three writers), via `stackha bench multiwriter`. Invariants are
// asserted; the figures are printed and saved to reports/lab-bench.json.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BenchReport, ModeSummary } from '../../src/bench/multiwriter.js';
import { labDown } from '../../src/lab/lab.js';
import { type TestLab, createTestLab } from './harness.js';

const LAB = 'tbench';
const REPORT = 'reports/lab-bench.json';
const SECONDS = 8;
let lab: TestLab;
let report: BenchReport;
let benchOut = '';
let benchCode: number | null = null;

function mode(name: 'single' | 'multi'): ModeSummary {
  const m = report.modes.find((x) => x.mode === name);
  if (!m) throw new Error(`no ${name} mode in the report`);
  return m;
}

/** Failed transactions, by class; connect failures are not transactions. */
function failedTransactions(m: ModeSummary): number {
  const other = Object.entries(m.otherByKey)
    .filter(([k]) => !k.startsWith('connect:'))
    .reduce((n, [, c]) => n + c, 0);
  return m.deadlocks + m.lockWaits + other;
}

describe('multi-writer bench on a 3-host lab', () => {
  beforeAll(async () => {
    lab = await createTestLab({ name: LAB, subnet: '198.18.12.0/24' });
    const d = await lab.cli(['deploy']);
    if (d.code !== 0) throw new Error(`deploy failed:\n${d.stdout}\n${d.stderr}`);
    const r = await lab.cli(
      [
        'bench',
        'multiwriter',
        '--seconds',
        String(SECONDS),
        '--workers',
        '6',
        '--rows',
        '5',
        '--json',
        REPORT,
      ],
      300_000,
    );
    benchCode = r.code;
    benchOut = `${r.stdout}\n${r.stderr}`;
    console.log(benchOut);
    report = JSON.parse(readFileSync(REPORT, 'utf8')) as BenchReport;
  }, 900_000);

  afterAll(async () => {
    // Clean up even when a test failed.
    await labDown(LAB, { purge: true });
  }, 120_000);

  it('ran both modes, each committing transactions, and exited 0', () => {
    expect(benchCode, benchOut).toBe(0);
    expect(report.problems).toEqual([]);
    expect(report.modes.map((m) => m.mode)).toEqual(['single', 'multi']);
    for (const m of report.modes) {
      expect(m.error, m.mode).toBeUndefined();
      expect(m.committed, m.mode).toBeGreaterThan(0);
      expect(m.elapsedS, m.mode).toBeGreaterThanOrEqual(SECONDS);
      // Every transaction started either committed or was counted as failed: nothing went missing.
      expect(m.attempts, m.mode).toBe(m.committed + failedTransactions(m));
      expect(m.latencyMs.count, m.mode).toBe(m.committed);
    }
  });

  it('single: everything through the VIP lands on one node, and FOR UPDATE serializes without a deadlock', () => {
    const m = mode('single');
    expect(m.writers).toEqual(['ctl1']);
    expect(m.deadlocks).toBe(0);
    expect(m.lockWaits).toBe(0);
    for (const g of m.galera) {
      expect(g.certFailures, g.address).toBe(0);
      expect(g.bfAborts, g.address).toBe(0);
      expect(g.innodbDeadlocks, g.address).toBe(0);
    }
  });

  it('multi: the workers really wrote on all three nodes', () => {
    expect(mode('multi').writers).toEqual(['ctl1', 'ctl2', 'ctl3']);
  });

  it('no lost update in either mode: SUM(value) equals the commits on every node', () => {
    for (const m of report.modes) {
      expect(m.sumCheck.ok, `${m.mode}: ${m.sumCheck.detail}`).toBe(true);
      expect(m.sums, m.mode).toHaveLength(3);
      for (const s of m.sums) {
        expect(s.rows, `${m.mode} ${s.address}`).toBe(5);
        expect(s.sum, `${m.mode} ${s.address}`).toBeGreaterThanOrEqual(m.committed);
        expect(s.sum, `${m.mode} ${s.address}`).toBeLessThanOrEqual(m.committed + m.unknownOutcome);
      }
    }
  });
});
