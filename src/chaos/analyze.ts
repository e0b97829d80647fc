// The figures of one scenario run, from the load generator's record of every operation. Pure.
import type { OpRecord, ServerOutcome } from '../probes/load.js';

export const WORKLOADS = [
  'sql',
  'sqlr',
  'amqp',
  'mc',
  'http',
  'tok',
  'nova',
  'plc',
  'neu',
  'glance',
  'swift',
  'obj',
  'img',
  'srv',
] as const satisfies readonly OpRecord['w'][];
export type Workload = (typeof WORKLOADS)[number];

export const WORKLOAD_LABELS: Record<Workload, string> = {
  sql: 'SQL write',
  sqlr: 'SQL read',
  amqp: 'AMQP publish',
  mc: 'memcached',
  http: 'HTTP API',
  tok: 'token issue',
  nova: 'Nova API read',
  plc: 'Placement read',
  neu: 'Neutron API read',
  glance: 'Glance API read',
  swift: 'Swift account HEAD',
  obj: 'object PUT+GET',
  img: 'image upload+download',
  srv: 'server boot',
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
  /** Failures whose operation started inside the fault window. */
  readonly failuresInFault: number;
  /** From the start of the load to this workload's first success, ms: start-up, never counted as an outage. */
  readonly firstSuccessMs: number | undefined;
  /**
   * The client-visible outage: the longest time without a successful completion among the gaps that overlap the
   * fault window (injection until healed and settled), measured from the workload's first success. A workload that
   * never succeeded again is out until the end of the load.
   */
  readonly faultGapMs: number;
  /** When that gap began, ms after the injection (negative: it began just before). */
  readonly faultGapStartMs: number | undefined;
  /** From the injection to the first success completed after it, ms; undefined when none came. */
  readonly firstSuccessAfterFaultMs: number | undefined;
  /** The worst gap entirely outside the fault window: the steady-state jitter the fault gap compares with. */
  readonly steadyGapMs: number;
  /**
   * It works again after the fault: a success completed after the fault window ended or, when the window ran to the
   * end of the load (never whole again), after the fault began and after its last failure.
   */
  readonly recovered: boolean;
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

/** An interval of epoch ms. */
export interface Window {
  readonly start: number;
  readonly end: number;
}

/**
 * Per-workload figures of one run. `load` is when the load ran (its start and the last instant measured); `fault`
 * is from the injection until the deployment was healed and whole again. Latencies are of successful operations.
 */
export function analyze(records: readonly OpRecord[], load: Window, fault: Window): WorkloadStats[] {
  const out: WorkloadStats[] = [];
  for (const w of WORKLOADS) {
    const mine = records.filter((r) => r.w === w && r.t >= load.start && r.t <= load.end);
    if (mine.length === 0) continue;
    const successEnds = mine
      .filter((r) => r.ok)
      .map((r) => r.t + r.l)
      .filter((t) => t <= load.end)
      .sort((a, b) => a - b);
    const first = successEnds[0];
    // From the first success on: the start-up before it is not an outage. The end of the load closes the last gap.
    const points = first === undefined ? [] : [...successEnds, load.end];
    let faultGap = 0;
    let faultGapStart: number | undefined;
    let steadyGap = 0;
    for (let i = 1; i < points.length; i++) {
      const a = points[i - 1] ?? 0;
      const b = points[i] ?? 0;
      const gap = b - a;
      if (a < fault.end && b > fault.start) {
        if (gap > faultGap) {
          faultGap = gap;
          faultGapStart = a;
        }
      } else if (gap > steadyGap) steadyGap = gap;
    }
    if (first === undefined) {
      // Never succeeded at all: out for the whole fault window.
      faultGap = Math.max(0, Math.min(load.end, fault.end) - Math.max(load.start, fault.start));
    }
    const afterFault = successEnds.find((t) => t > fault.start);
    const inFault = (r: OpRecord) => r.t >= fault.start && r.t <= fault.end;
    const errors: Record<string, number> = {};
    for (const r of mine) if (!r.ok) errors[r.e ?? 'error'] = (errors[r.e ?? 'error'] ?? 0) + 1;
    out.push({
      workload: w,
      ops: mine.length,
      failures: mine.filter((r) => !r.ok).length,
      failuresInFault: mine.filter((r) => !r.ok && inFault(r)).length,
      firstSuccessMs: first === undefined ? undefined : first - load.start,
      faultGapMs: faultGap,
      faultGapStartMs: faultGapStart === undefined ? undefined : faultGapStart - fault.start,
      firstSuccessAfterFaultMs: afterFault === undefined ? undefined : afterFault - fault.start,
      steadyGapMs: steadyGap,
      recovered: recoveredAfter(mine, successEnds, load, fault),
      during: latencyStats(mine.filter((r) => r.ok && inFault(r)).map((r) => r.l)),
      outside: latencyStats(mine.filter((r) => r.ok && !inFault(r)).map((r) => r.l)),
      errors,
    });
  }
  return out;
}

/**
 * Whether a workload works again after the fault: a success completed after the fault window ended. When the window
 * never ended while the load ran (the cluster was still not whole, e.g. a server left in maintenance that no client
 * path needs), nothing can complete after it: then a success completed after the fault began and after the
 * workload's last failure says it works again; a workload failing to the end, or with no success since the fault
 * began, did not recover.
 */
function recoveredAfter(
  mine: readonly OpRecord[],
  successEnds: readonly number[],
  load: Window,
  fault: Window,
): boolean {
  if (fault.end < load.end) return successEnds.some((t) => t > fault.end);
  // Measured like the successes: completions up to the end of the load (the drain's are not charged).
  let lastFailureEnd = fault.start;
  for (const r of mine)
    if (!r.ok && r.t + r.l <= load.end && r.t + r.l > lastFailureEnd) lastFailureEnd = r.t + r.l;
  return successEnds.some((t) => t > lastFailureEnd);
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

/** One Galera node's read-back of the run's acknowledged rows. */
export interface NodeReconciliation {
  readonly node: string;
  /** Acknowledged rows found on this node. */
  readonly present: number;
  /** Acknowledged rows missing on this node (first few ids in `lostIds`). */
  readonly lost: number;
  readonly lostIds: readonly string[];
  /** The read-back failed: this node is not verified (never counted as rows lost). */
  readonly error: string | undefined;
}

/** What the SQL workload's acknowledged rows look like on every node. */
export interface SqlReconciliation {
  readonly acknowledged: number;
  readonly nodes: readonly NodeReconciliation[];
  /** Acknowledged rows missing on at least one node that could be read. */
  readonly lost: number;
  readonly lostIds: readonly string[];
  /** Nodes whose read-back failed. */
  readonly notVerified: readonly string[];
}

/**
 * Reconciles the acknowledged ids against each node's rows. `rows` holds, per node, the ids it returned, or the
 * error of its read-back: a node that could not be read is "not verified", never "lost".
 */
export function reconcileNodes(
  acknowledged: readonly string[],
  rows: readonly { node: string; ids: ReadonlySet<string> | undefined; error?: string }[],
): SqlReconciliation {
  const nodes: NodeReconciliation[] = [];
  const lostAnywhere = new Set<string>();
  for (const r of rows) {
    if (r.ids === undefined) {
      nodes.push({ node: r.node, present: 0, lost: 0, lostIds: [], error: r.error ?? 'not read' });
      continue;
    }
    const rec = reconcile(acknowledged, r.ids);
    for (const id of rec.lost) lostAnywhere.add(id);
    nodes.push({
      node: r.node,
      present: rec.acknowledged - rec.lost.length,
      lost: rec.lost.length,
      lostIds: rec.lost.slice(0, 20),
      error: undefined,
    });
  }
  return {
    acknowledged: acknowledged.length,
    nodes,
    lost: lostAnywhere.size,
    lostIds: [...lostAnywhere].slice(0, 20),
    notVerified: nodes.filter((n) => n.error !== undefined).map((n) => n.node),
  };
}

// ------------------------------------------------------------------------------------------------ timeline

/** Successes and failures per workload in fixed buckets: what a timeline plot draws. */
export interface Timeline {
  /** Epoch ms of the first bucket. */
  readonly start: number;
  readonly bucketMs: number;
  /** Per workload, per bucket: [successes, failures] of operations that completed in it. */
  readonly workloads: Readonly<Partial<Record<Workload, readonly (readonly [number, number])[]>>>;
}

export function timeline(records: readonly OpRecord[], load: Window, bucketMs = 100): Timeline {
  const n = Math.max(1, Math.ceil((load.end - load.start) / bucketMs));
  const workloads: Partial<Record<Workload, [number, number][]>> = {};
  for (const r of records) {
    const end = r.t + r.l;
    if (r.t < load.start || end > load.end) continue;
    const i = Math.min(n - 1, Math.floor((end - load.start) / bucketMs));
    workloads[r.w] ??= Array.from({ length: n }, () => [0, 0] as [number, number]);
    const b = workloads[r.w]?.[i];
    if (b) b[r.ok ? 0 : 1]++;
  }
  return { start: load.start, bucketMs, workloads };
}

// ------------------------------------------------------------------------------------------------ trials

/** The median (the lower one of an even count) and the worst of a figure over trials. */
export interface Spread {
  readonly median: number;
  readonly worst: number;
  readonly n: number;
}

/** Median and worst (the highest) of values; undefined when there are none. */
export function spread(values: readonly (number | undefined)[]): Spread | undefined {
  const v = values.filter((x): x is number => x !== undefined && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return undefined;
  return { median: v[Math.floor((v.length - 1) / 2)] ?? 0, worst: v[v.length - 1] ?? 0, n: v.length };
}

/** What became of the servers a run booted. */
export interface ServerTally {
  readonly booted: number;
  readonly active: number;
  readonly error: number;
  /** Left in BUILD with no explanation: a violation. */
  readonly stuckBuild: number;
  /**
   * Left in BUILD, never scheduled, created before the kill of a daemon that may hold a build request it had taken:
   * oslo.messaging acknowledges an RPC message before it runs it, and Nova retries no lost cast, so a conductor
   * killed in the middle of `schedule_and_build_instances` takes that server's build with it. Counted apart.
   */
  readonly lostInFlight: number;
  readonly createFailed: number;
  readonly stuckDeleting: number;
  readonly errors: readonly string[];
}

/** When a server was created, relative to the kill: "2.7 s before the kill". */
const createdRelative = (ms: number): string =>
  `${(Math.abs(ms) / 1000).toFixed(1)} s ${ms <= 0 ? 'before' : 'after'} the kill`;

/**
 * Tallies the servers. `inFlightLoss` is the kill time when the scenario killed a daemon that may hold a build in
 * flight (see lostInFlight); a stuck server counts as lost in flight only with the evidence: no compute host, still
 * scheduling (or no task state at all), and created before the kill, within `windowMs` of it.
 */
export function tallyServers(
  servers: readonly ServerOutcome[],
  inFlightLoss?: { readonly atMs: number; readonly windowMs: number },
): ServerTally {
  const inFlight = (s: ServerOutcome): boolean =>
    inFlightLoss !== undefined &&
    s.state === 'stuck-build' &&
    s.host === undefined &&
    (s.taskState === undefined || s.taskState === 'scheduling') &&
    s.createdAt !== undefined &&
    s.createdAt <= inFlightLoss.atMs &&
    s.createdAt >= inFlightLoss.atMs - inFlightLoss.windowMs;
  const stuck = servers.filter((s) => s.state === 'stuck-build');
  return {
    booted: servers.filter((s) => s.state !== 'create-failed').length,
    active: servers.filter((s) => s.state === 'active').length,
    error: servers.filter((s) => s.state === 'error').length,
    stuckBuild: stuck.filter((s) => !inFlight(s)).length,
    lostInFlight: stuck.filter(inFlight).length,
    createFailed: servers.filter((s) => s.state === 'create-failed').length,
    stuckDeleting: servers.filter((s) => s.deleted === 'stuck-deleting' || s.deleted === 'delete-failed')
      .length,
    errors: [
      ...stuck.map(
        (s) =>
          `${s.id}: stuck in BUILD (task state ${s.taskState ?? 'none'}, host ${s.host ?? 'none'}${s.createdAt && inFlightLoss ? `, created ${createdRelative(s.createdAt - inFlightLoss.atMs)}` : ''})${inFlight(s) ? ': its build was in flight on the killed daemon' : ''}`,
      ),
      ...servers.filter((s) => s.detail).map((s) => `${s.id || 'create'}: ${s.detail}`),
    ].slice(0, 10),
  };
}
