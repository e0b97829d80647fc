import type { OpRecord } from '../probes/load.js';

export const WORKLOADS = ['sql', 'sqlr', 'amqp', 'mc', 'http', 'tok'] as const;
export type Workload = (typeof WORKLOADS)[number];

export const WORKLOAD_LABELS: Record<Workload, string> = {
  sql: 'SQL write',
  sqlr: 'SQL read',
  amqp: 'AMQP publish',
  mc: 'memcached',
  http: 'HTTP API',
  tok: 'token issue',
};

export interface LatencyStats {
  readonly n: number;
  readonly p50: number | undefined;
  readonly p99: number | undefined;
  readonly max: number | undefined;
}

export interface WorkloadStats {
  readonly workload: Workload;
  readonly ops: number;
  readonly failures: number;
  /** The longest time without a successful completion (client-visible outage), ms. */
  readonly longestGapMs: number;
  /** When that gap began, ms after the fault was injected (negative: before). */
  readonly gapStartAfterFaultMs: number | undefined;
  /** Failures whose operation started inside the fault window. */
  readonly failuresDuringFault: number;
  readonly during: LatencyStats;
  readonly outside: LatencyStats;
  /** Error kinds and counts. */
  readonly errors: Readonly<Record<string, number>>;
}

export function percentile(sorted: readonly number[], p: number): number | undefined {
  if (sorted.length === 0) return undefined;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank];
}

export function latencyStats(latencies: readonly number[]): LatencyStats {
  const sorted = [...latencies].sort((a, b) => a - b);
  return { n: sorted.length, p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted.at(-1) };
}

/**
 * Per-workload figures of one run. `window` is when load ran (the first and last instant measured); `fault` is
 * from injection until the cluster was whole again. Latencies are of successful operations.
 */
export function analyze(
  records: readonly OpRecord[],
  window: { start: number; end: number },
  fault: { start: number; end: number },
): WorkloadStats[] {
  const out: WorkloadStats[] = [];
  for (const w of WORKLOADS) {
    const mine = records.filter((r) => r.w === w && r.t >= window.start && r.t <= window.end);
    if (mine.length === 0) continue;
    const successEnds = mine
      .filter((r) => r.ok)
      .map((r) => r.t + r.l)
      .sort((a, b) => a - b);
    // Gaps between consecutive successes, and from the window's edges to the first/last one.
    const points = [
      window.start,
      ...successEnds.filter((t) => t >= window.start && t <= window.end),
      window.end,
    ];
    let longest = 0;
    let gapStart: number | undefined;
    for (let i = 1; i < points.length; i++) {
      const gap = (points[i] ?? 0) - (points[i - 1] ?? 0);
      if (gap > longest) {
        longest = gap;
        gapStart = points[i - 1];
      }
    }
    const inFault = (r: OpRecord) => r.t >= fault.start && r.t <= fault.end;
    const errors: Record<string, number> = {};
    for (const r of mine) if (!r.ok) errors[r.e ?? 'error'] = (errors[r.e ?? 'error'] ?? 0) + 1;
    out.push({
      workload: w,
      ops: mine.length,
      failures: mine.filter((r) => !r.ok).length,
      longestGapMs: longest,
      gapStartAfterFaultMs: gapStart === undefined ? undefined : gapStart - fault.start,
      failuresDuringFault: mine.filter((r) => !r.ok && inFault(r)).length,
      during: latencyStats(mine.filter((r) => r.ok && inFault(r)).map((r) => r.l)),
      outside: latencyStats(mine.filter((r) => r.ok && !inFault(r)).map((r) => r.l)),
      errors,
    });
  }
  return out;
}

export function parseOps(text: string): OpRecord[] {
  const out: OpRecord[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    try {
      out.push(JSON.parse(line) as OpRecord);
    } catch {
      // A line cut by a crash of the generator: skip it.
    }
  }
  return out;
}

/** Acknowledged vs present: what was lost, and how many were received more than once. */
export function reconcile(
  acknowledged: readonly string[],
  present: ReadonlyMap<string, number> | ReadonlySet<string>,
): { acknowledged: number; lost: string[]; duplicates: number } {
  const count = (id: string): number =>
    present instanceof Map ? (present.get(id) ?? 0) : (present as ReadonlySet<string>).has(id) ? 1 : 0;
  const lost = acknowledged.filter((id) => count(id) === 0);
  let duplicates = 0;
  if (present instanceof Map) for (const n of present.values()) if (n > 1) duplicates += n - 1;
  return { acknowledged: acknowledged.length, lost, duplicates };
}
