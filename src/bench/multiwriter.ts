// The Kolla HA spec's multi-writer question, measured: does OpenStack's `SELECT ... FOR UPDATE`
// read-modify-write stay safe and usable with several active Galera writers?
//
// The probe (src/probes/multiwriter.ts) runs in the lab's client namespace and returns raw figures for one mode;
// this module runs it for each mode from the controller and turns the figures into a report. Everything from
// `classifyError` to `formatTable` is pure and unit-tested.
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { dirname } from 'node:path';
import type { Host } from '../hosts/host.js';
import { type LabState, labClient } from '../lab/lab.js';
import type { Deployment } from '../model.js';
import { hostsFor } from '../topology.js';
import { builtScript } from '../util/paths.js';

export const BENCH_MODES = ['single', 'multi'] as const;
export type BenchMode = (typeof BENCH_MODES)[number];

/** ER_LOCK_DEADLOCK: InnoDB deadlocks, and Galera certification failures / brute-force aborts. */
export const ER_LOCK_DEADLOCK = 1213;
/** ER_LOCK_WAIT_TIMEOUT */
export const ER_LOCK_WAIT_TIMEOUT = 1205;

export const DEFAULT_REPORT = 'reports/multiwriter.json';

// ---- what the probe prints -------------------------------------------------------------------------------

export interface ProbeError {
  /** `step:errno` (or `step:code` when the driver gave no errno). */
  readonly key: string;
  readonly errno: number | null;
  readonly code: string | null;
  /** connect, begin, select, update or commit */
  readonly step: string;
  readonly count: number;
  /** The first message seen for this key. */
  readonly sample: string;
}

export interface ProbeNodeSum {
  readonly address: string;
  readonly node?: string;
  readonly rows?: number;
  readonly sum?: number;
  readonly error?: string;
}

/** Galera's conflict counters on one node: how much they grew during the run. */
export interface ProbeGaleraDelta {
  readonly address: string;
  readonly node: string | null;
  readonly certFailures: number | null;
  /** Local transactions aborted by a replicated one (brute-force abort). */
  readonly bfAborts: number | null;
  /** BF-aborted transactions that had passed certification and were replayed (the client saw a commit). */
  readonly replays: number | null;
  /** InnoDB's own deadlock detector. */
  readonly innodbDeadlocks: number | null;
}

export interface ProbeResult {
  readonly mode: BenchMode;
  readonly workers: number;
  readonly seconds: number;
  readonly rows: number;
  readonly targets: readonly string[];
  readonly elapsedS: number;
  /** Transactions started (BEGIN sent). */
  readonly attempts: number;
  readonly committed: number;
  /** COMMITs whose answer was lost with the connection: committed or not, nobody knows. */
  readonly unknownOutcome: number;
  readonly latenciesMs: readonly number[];
  readonly errors: readonly ProbeError[];
  /** Committed transactions per Galera node name (which nodes took writes). */
  readonly writesByNode: Readonly<Record<string, number>>;
  readonly sums: readonly ProbeNodeSum[];
  readonly galera: readonly ProbeGaleraDelta[];
}

// ---- pure figures ----------------------------------------------------------------------------------------

export type ErrorClass = 'deadlock' | 'lockWait' | 'other';

/** 1213 is a deadlock (InnoDB's, or Galera's certification failure / BF abort); 1205 a lock wait timeout. */
export function classifyError(errno: number | null | undefined): ErrorClass {
  if (errno === ER_LOCK_DEADLOCK) return 'deadlock';
  if (errno === ER_LOCK_WAIT_TIMEOUT) return 'lockWait';
  return 'other';
}

/** Nearest-rank percentile of ascending values (p in 0..100); undefined for no values. */
export function percentile(sorted: readonly number[], p: number): number | undefined {
  if (sorted.length === 0) return undefined;
  const rank = Math.ceil((Math.min(Math.max(p, 0), 100) / 100) * sorted.length);
  return sorted[Math.min(Math.max(rank - 1, 0), sorted.length - 1)];
}

export interface LatencyStats {
  readonly count: number;
  readonly p50: number | null;
  readonly p99: number | null;
  readonly max: number | null;
  readonly mean: number | null;
}

export function latencyStats(latenciesMs: readonly number[]): LatencyStats {
  const sorted = [...latenciesMs].sort((a, b) => a - b);
  const n = sorted.length;
  return {
    count: n,
    p50: percentile(sorted, 50) ?? null,
    p99: percentile(sorted, 99) ?? null,
    max: sorted[n - 1] ?? null,
    mean: n > 0 ? sorted.reduce((s, x) => s + x, 0) / n : null,
  };
}

export interface ErrorCounts {
  readonly deadlocks: number;
  readonly lockWaits: number;
  readonly other: number;
  /** Other errors by `step:errno`. */
  readonly otherByKey: Readonly<Record<string, number>>;
  /** Deadlocks by the step that failed (select, update, commit). */
  readonly deadlocksByStep: Readonly<Record<string, number>>;
}

export function countErrors(errors: readonly ProbeError[]): ErrorCounts {
  let deadlocks = 0;
  let lockWaits = 0;
  let other = 0;
  const otherByKey: Record<string, number> = {};
  const deadlocksByStep: Record<string, number> = {};
  for (const e of errors) {
    const c = classifyError(e.errno);
    if (c === 'deadlock') {
      deadlocks += e.count;
      deadlocksByStep[e.step] = (deadlocksByStep[e.step] ?? 0) + e.count;
    } else if (c === 'lockWait') lockWaits += e.count;
    else {
      other += e.count;
      otherByKey[e.key] = (otherByKey[e.key] ?? 0) + e.count;
    }
  }
  return { deadlocks, lockWaits, other, otherByKey, deadlocksByStep };
}

export interface SumCheck {
  readonly ok: boolean;
  /** SUM(value) must lie in [expectedMin, expectedMax]: committed, plus COMMITs of unknown outcome. */
  readonly expectedMin: number;
  readonly expectedMax: number;
  readonly detail: string;
}

/**
 * No lost update: every node has the `rows` rows and SUM(value) equal to the number of committed
 * transactions (each added exactly 1). A COMMIT whose answer was lost may have counted: it widens the range.
 */
export function checkSums(
  committed: number,
  unknownOutcome: number,
  rows: number,
  sums: readonly ProbeNodeSum[],
): SumCheck {
  const expectedMin = committed;
  const expectedMax = committed + unknownOutcome;
  const problems: string[] = [];
  if (sums.length === 0) problems.push('no node was read');
  for (const s of sums) {
    const who = s.node ?? s.address;
    if (s.sum === undefined) problems.push(`${who}: not read (${s.error ?? 'no answer'})`);
    else {
      if (s.rows !== rows) problems.push(`${who}: ${s.rows ?? '?'} rows, expected ${rows}`);
      if (s.sum < expectedMin)
        problems.push(
          `${who}: sum ${s.sum} < ${expectedMin} committed (${expectedMin - s.sum} lost updates)`,
        );
      else if (s.sum > expectedMax)
        problems.push(`${who}: sum ${s.sum} > ${expectedMax} (increments nobody saw commit)`);
    }
  }
  const values = new Set(sums.filter((s) => s.sum !== undefined).map((s) => s.sum));
  if (values.size > 1) problems.push(`nodes disagree: ${[...values].join(' vs ')}`);
  const range = expectedMax === expectedMin ? `${expectedMin}` : `${expectedMin}..${expectedMax}`;
  return {
    ok: problems.length === 0,
    expectedMin,
    expectedMax,
    detail:
      problems.length === 0
        ? `sum ${sums[0]?.sum} = ${range} committed on ${sums.map((s) => s.node ?? s.address).join(', ')}`
        : problems.join('; '),
  };
}

export interface ModeSummary {
  readonly mode: BenchMode;
  readonly workers: number;
  readonly seconds: number;
  readonly rows: number;
  readonly elapsedS: number;
  readonly attempts: number;
  readonly committed: number;
  readonly commitsPerS: number;
  readonly deadlocks: number;
  /** Deadlocks in % of attempts. */
  readonly deadlockPct: number;
  readonly deadlocksByStep: Readonly<Record<string, number>>;
  readonly deadlockSample: string | null;
  readonly lockWaits: number;
  readonly otherErrors: number;
  readonly otherByKey: Readonly<Record<string, number>>;
  readonly unknownOutcome: number;
  readonly latencyMs: LatencyStats;
  /** Galera nodes that committed writes, sorted. */
  readonly writers: readonly string[];
  readonly writesByNode: Readonly<Record<string, number>>;
  readonly sumCheck: SumCheck;
  readonly sums: readonly ProbeNodeSum[];
  readonly galera: readonly ProbeGaleraDelta[];
  /** Set when the mode could not run at all. */
  readonly error?: string;
}

const round = (x: number, digits: number): number => {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
};

export function summarizeMode(r: ProbeResult): ModeSummary {
  const e = countErrors(r.errors);
  const sample = r.errors.find((x) => classifyError(x.errno) === 'deadlock')?.sample ?? null;
  const lat = latencyStats(r.latenciesMs);
  return {
    mode: r.mode,
    workers: r.workers,
    seconds: r.seconds,
    rows: r.rows,
    elapsedS: round(r.elapsedS, 2),
    attempts: r.attempts,
    committed: r.committed,
    commitsPerS: r.elapsedS > 0 ? round(r.committed / r.elapsedS, 1) : 0,
    deadlocks: e.deadlocks,
    deadlockPct: r.attempts > 0 ? round((100 * e.deadlocks) / r.attempts, 2) : 0,
    deadlocksByStep: e.deadlocksByStep,
    deadlockSample: sample,
    lockWaits: e.lockWaits,
    otherErrors: e.other,
    otherByKey: e.otherByKey,
    unknownOutcome: r.unknownOutcome,
    latencyMs: {
      count: lat.count,
      p50: lat.p50 === null ? null : round(lat.p50, 2),
      p99: lat.p99 === null ? null : round(lat.p99, 2),
      max: lat.max === null ? null : round(lat.max, 2),
      mean: lat.mean === null ? null : round(lat.mean, 2),
    },
    writers: Object.keys(r.writesByNode).sort(),
    writesByNode: r.writesByNode,
    sumCheck: checkSums(r.committed, r.unknownOutcome, r.rows, r.sums),
    sums: r.sums,
    galera: r.galera,
  };
}

/** A mode that could not run: no figures, and a failed sum check so it never passes for a good result. */
export function failedMode(
  mode: BenchMode,
  opts: { workers: number; seconds: number; rows: number },
  error: string,
): ModeSummary {
  return {
    mode,
    ...opts,
    elapsedS: 0,
    attempts: 0,
    committed: 0,
    commitsPerS: 0,
    deadlocks: 0,
    deadlockPct: 0,
    deadlocksByStep: {},
    deadlockSample: null,
    lockWaits: 0,
    otherErrors: 0,
    otherByKey: {},
    unknownOutcome: 0,
    latencyMs: { count: 0, p50: null, p99: null, max: null, mean: null },
    writers: [],
    writesByNode: {},
    sumCheck: { ok: false, expectedMin: 0, expectedMax: 0, detail: `not run: ${error}` },
    sums: [],
    galera: [],
    error,
  };
}

const ms = (x: number | null): string => (x === null ? '-' : x.toFixed(1));

/** A plain-text table: one line per mode. */
export function formatTable(modes: readonly ModeSummary[]): string {
  const header = [
    'mode',
    'workers',
    'seconds',
    'writers',
    'committed',
    'commits/s',
    'deadlocks',
    'lock waits',
    'other errors',
    'p50 ms',
    'p99 ms',
    'sum check',
  ];
  const rows = modes.map((m) => [
    m.mode,
    String(m.workers),
    m.elapsedS.toFixed(1),
    String(m.writers.length),
    String(m.committed),
    m.commitsPerS.toFixed(1),
    `${m.deadlocks} (${m.deadlockPct.toFixed(1)}%)`,
    String(m.lockWaits),
    String(m.otherErrors),
    ms(m.latencyMs.p50),
    ms(m.latencyMs.p99),
    m.error !== undefined ? 'not run' : m.sumCheck.ok ? 'ok' : 'MISMATCH',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  // Text columns left-aligned, figures right-aligned.
  const left = new Set([0, 11]);
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (left.has(i) ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

/** Details under the table: where the writes went, what failed and how, the sum check per mode. */
export function formatDetails(modes: readonly ModeSummary[]): string {
  const out: string[] = [];
  for (const m of modes) {
    if (m.error !== undefined) {
      out.push(`${m.mode}: not run: ${m.error}`);
      continue;
    }
    const writes = Object.entries(m.writesByNode)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([n, c]) => `${n}=${c}`)
      .join(' ');
    out.push(`${m.mode}: ${m.attempts} attempts; commits by node: ${writes || 'none'}`);
    if (m.deadlocks > 0) {
      const steps = Object.entries(m.deadlocksByStep)
        .map(([s, c]) => `${s} ${c}`)
        .join(', ');
      out.push(`  deadlocks (1213) at ${steps}: "${m.deadlockSample ?? ''}"`);
    }
    const g = m.galera
      .map(
        (x) =>
          `${x.node ?? x.address} cert ${x.certFailures ?? '?'} bf ${x.bfAborts ?? '?'} replay ${x.replays ?? '?'} innodb ${x.innodbDeadlocks ?? '?'}`,
      )
      .join(', ');
    if (g)
      out.push(
        `  conflicts counted by the servers (certification failures, BF aborts, replays, InnoDB deadlocks): ${g}`,
      );
    if (m.otherErrors > 0)
      out.push(
        `  other errors: ${Object.entries(m.otherByKey)
          .map(([k, c]) => `${k}=${c}`)
          .join(' ')}`,
      );
    if (m.unknownOutcome > 0) out.push(`  commits of unknown outcome: ${m.unknownOutcome}`);
    out.push(`  sum check: ${m.sumCheck.ok ? 'ok' : 'FAILED'}: ${m.sumCheck.detail}`);
  }
  return out.join('\n');
}

/** What makes the bench fail: a mode that did not run, or a lost (or invented) update. */
export function benchProblems(modes: readonly ModeSummary[]): string[] {
  const problems: string[] = [];
  for (const m of modes) {
    if (m.error !== undefined) problems.push(`${m.mode}: not run: ${m.error}`);
    else if (!m.sumCheck.ok) problems.push(`${m.mode}: sum check failed: ${m.sumCheck.detail}`);
  }
  return problems;
}

// ---- running it ------------------------------------------------------------------------------------------

export interface BenchOptions {
  readonly seconds: number;
  readonly workers: number;
  readonly rows: number;
  readonly modes?: readonly BenchMode[];
  /** Progress lines. */
  readonly log?: (line: string) => void;
}

export interface BenchReport {
  readonly bench: 'multiwriter';
  readonly when: string;
  readonly lab: string;
  readonly cpus: number;
  /** The machine's 1-minute load average before and after: other labs share these cores. */
  readonly loadAvg1m: { readonly before: number; readonly after: number };
  readonly vip: string;
  readonly nodes: readonly string[];
  readonly settings: { seconds: number; workers: number; rows: number };
  readonly modes: readonly ModeSummary[];
  readonly table: string;
  readonly problems: readonly string[];
}

/** Setup and read-back budget of the probe besides the measured seconds. */
const PROBE_OVERHEAD_MS = 60_000;

function isProbeResult(x: unknown): x is ProbeResult {
  return (
    typeof x === 'object' &&
    x !== null &&
    typeof (x as ProbeResult).committed === 'number' &&
    Array.isArray((x as ProbeResult).latenciesMs) &&
    Array.isArray((x as ProbeResult).sums)
  );
}

/** Runs the probe for one mode on the client host (the lab's client namespace). */
export async function runProbe(
  client: Host,
  dep: Deployment,
  mode: BenchMode,
  opts: { seconds: number; workers: number; rows: number },
): Promise<ProbeResult> {
  const nodes = hostsFor(dep, 'mariadb').map((h) => h.address);
  if (nodes.length === 0) throw new Error('no mariadb hosts in the inventory');
  const probeTimeoutMs = opts.seconds * 1000 + PROBE_OVERHEAD_MS;
  const r = await client.exec(
    [
      process.execPath,
      builtScript('probes/multiwriter.js'),
      '--mode',
      mode,
      '--vip',
      dep.globals.internalVip,
      '--nodes',
      nodes.join(','),
      '--workers',
      String(opts.workers),
      '--seconds',
      String(opts.seconds),
      '--rows',
      String(opts.rows),
      '--timeout-ms',
      String(probeTimeoutMs),
    ],
    { input: dep.passwords.database_password ?? '', timeoutMs: probeTimeoutMs + 15_000 },
  );
  const line = r.stdout.trim().split('\n').pop() ?? '';
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch {
    throw new Error(
      `multiwriter probe exited ${r.timedOut ? '(timed out)' : (r.code ?? r.signal)}: ${r.stderr.trim().split('\n').slice(0, 6).join(' ')}`,
    );
  }
  if (isProbeResult(parsed)) return parsed;
  const err = (parsed as { error?: unknown }).error;
  throw new Error(`multiwriter probe: ${typeof err === 'string' ? err : line.slice(0, 300)}`);
}

/** Both modes, one after the other, from the controller; the probe always runs in the lab's client namespace. */
export async function runMultiwriterBench(
  dep: Deployment,
  state: LabState,
  opts: BenchOptions,
): Promise<BenchReport> {
  const client = labClient(state);
  const settings = { seconds: opts.seconds, workers: opts.workers, rows: opts.rows };
  const modes: ModeSummary[] = [];
  const loadBefore = loadavg()[0] ?? 0;
  for (const mode of opts.modes ?? BENCH_MODES) {
    opts.log?.(
      `${mode}: ${opts.workers} workers, ${opts.rows} rows, ${opts.seconds} s (${
        mode === 'single' ? `all through the VIP ${dep.globals.internalVip}` : 'round-robin over every node'
      })`,
    );
    try {
      modes.push(summarizeMode(await runProbe(client, dep, mode, settings)));
    } catch (err) {
      modes.push(failedMode(mode, settings, err instanceof Error ? err.message : String(err)));
    }
  }
  return {
    bench: 'multiwriter',
    when: new Date().toISOString(),
    lab: state.name,
    cpus: availableParallelism(),
    loadAvg1m: { before: round(loadBefore, 2), after: round(loadavg()[0] ?? 0, 2) },
    vip: dep.globals.internalVip,
    nodes: hostsFor(dep, 'mariadb').map((h) => h.address),
    settings,
    modes,
    table: formatTable(modes),
    problems: benchProblems(modes),
  };
}

export function saveBenchReport(report: BenchReport, file: string): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
}
