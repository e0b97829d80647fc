import { randomBytes } from 'node:crypto';
import { deploy } from '../deploy/deploy.js';
import { type Connection, connect } from '../hosts/connect.js';
import type { Host } from '../hosts/host.js';
import type { LabHost } from '../hosts/lab.js';
import { type LabState, labClient, readLabState } from '../lab/lab.js';
import type { Deployment } from '../model.js';
import { clusterProblems, clusterStatus } from '../ops/status.js';
import { clientSql } from '../probes/client.js';
import type { LoadConfig, LoadFinal } from '../probes/load.js';
import { KEYSTONE_ADMIN, KEYSTONE_PORT, keystoneEnabled } from '../services/keystone.js';
import { memcachedServers } from '../services/memcached.js';
import { PROBE_API_PORT, probeApiEnabled } from '../services/probe-api.js';
import { hostsFor } from '../topology.js';
import { builtScript } from '../util/paths.js';
import { sleep, waitFor } from '../util/wait.js';
import { type WorkloadStats, analyze, parseOps, reconcile } from './analyze.js';

export const CHAOS_QUEUE = 'stackha-chaos';

/** What a scenario acts on: the deployment, the lab, and a way to heal with a real deploy. */
export interface ChaosContext {
  readonly dep: Deployment;
  readonly lab: LabState;
  readonly conn: Connection;
  readonly client: LabHost;
  readonly log: (message: string) => void;
  host(name: string): Host;
  /** `stackha deploy`, in-process and quiet: what an operator runs to bring back what died. */
  redeploy(): Promise<void>;
  readonly queueType: 'quorum' | 'classic';
  /**
   * A scale scenario added or removed a host: from here on `dep`, `conn`, `lab` and the final verification (whole,
   * nothing lost) follow the new deployment.
   */
  setDeployment(dep: Deployment): void;
}

export interface Scenario {
  readonly name: string;
  readonly description: string;
  /** How long the fault stays before healing, ms (default from the run options). */
  readonly holdMs?: number;
  /** Injects the fault; returns what it hit, for the report. */
  inject(ctx: ChaosContext): Promise<string>;
  /** Heals: what an operator would do (restart what died, power the host on, recover). */
  heal(ctx: ChaosContext): Promise<void>;
  /** Runs before the cluster check and the load (e.g. grow the lab so there is a host to remove). */
  prepare?(ctx: ChaosContext): Promise<void>;
}

export interface RunOptions {
  readonly warmupMs: number;
  readonly holdMs: number;
  readonly settleTimeoutMs: number;
  /** Load kept on after the cluster is whole again, ms. */
  readonly afterMs: number;
  readonly intervalMs: number;
}

export const DEFAULT_RUN: RunOptions = {
  warmupMs: 5000,
  holdMs: 12_000,
  settleTimeoutMs: 180_000,
  afterMs: 5000,
  intervalMs: 20,
};

export interface ScenarioResult {
  readonly scenario: string;
  readonly profile: string;
  readonly target: string;
  readonly startedAt: string;
  /** Injection until heal began, and until the cluster was whole again, seconds. */
  readonly faultSeconds: number;
  readonly recoveredSeconds: number | undefined;
  readonly workloads: readonly WorkloadStats[];
  readonly sql: { acknowledged: number; lost: number; lostIds: string[] };
  readonly amqp: {
    confirmed: number;
    lost: number;
    duplicates: number;
    reconnects: number;
    lostIds: string[];
  };
  /** Problems left after settling; empty when the cluster is whole. */
  readonly problemsAfter: readonly string[];
  readonly error?: string;
}

export function chaosContext(dep: Deployment, lab: LabState, log: (m: string) => void): ChaosContext {
  let current = dep;
  let conn = connect(dep);
  let labNow = lab;
  return {
    get dep() {
      return current;
    },
    get lab() {
      return labNow;
    },
    get conn() {
      return conn;
    },
    client: labClient(lab),
    log,
    host: (name) => {
      const h = conn.hosts.get(name);
      if (!h) throw new Error(`no host ${name}`);
      return h;
    },
    redeploy: async () => {
      await deploy(current, { renderer: 'silent' });
    },
    queueType: dep.globals.rabbitmqMirroredQueues ? 'classic' : 'quorum',
    setDeployment: (next) => {
      current = next;
      conn = connect(next);
      labNow = readLabState(lab.name) ?? labNow;
    },
  };
}

async function problemsNow(ctx: ChaosContext): Promise<string[]> {
  return clusterProblems(ctx.dep, await clusterStatus(ctx.dep));
}

/** Waits until the cluster is whole; resolves with the problems still there when the bound is reached. */
async function settle(ctx: ChaosContext, timeoutMs: number): Promise<string[]> {
  try {
    await waitFor(
      'the cluster to be whole',
      async () => ((await problemsNow(ctx)).length === 0 ? true : undefined),
      // A full status runs rabbitmqctl on every node (an Erlang VM each): not more often than this.
      { timeoutMs, intervalMs: 3000 },
    );
    return [];
  } catch {
    return problemsNow(ctx);
  }
}

const LOAD_CFG = '/etc/stackha/chaos-load.json';
const OPS = '/var/lib/stackha/chaos/ops.jsonl';
const FINAL = '/var/lib/stackha/chaos/final.json';

/**
 * One scenario under load: make sure the cluster is whole, start the load generator in the client namespace,
 * warm up, inject, hold, heal, wait until whole, keep the load on a little longer, stop, then verify that
 * every acknowledged row and confirmed message is still there.
 */
export async function runScenario(
  ctx: ChaosContext,
  scenario: Scenario,
  opts: RunOptions,
): Promise<ScenarioResult> {
  const startedAt = new Date().toISOString();
  await scenario.prepare?.(ctx);
  const before = await problemsNow(ctx);
  if (before.length > 0) {
    ctx.log(`cluster not whole before ${scenario.name} (${before.join('; ')}): deploying`);
    await ctx.redeploy();
    const still = await settle(ctx, 120_000);
    if (still.length > 0) throw new Error(`cluster not whole before ${scenario.name}: ${still.join('; ')}`);
  }
  const runId = `${scenario.name.slice(0, 20)}-${randomBytes(4).toString('hex')}`;
  const client = ctx.client;
  const cfg: LoadConfig = {
    runId,
    opsFile: client.path(OPS),
    finalFile: client.path(FINAL),
    vip: ctx.dep.globals.internalVip,
    dbPassword: ctx.dep.passwords.database_password ?? '',
    brokers: hostsFor(ctx.dep, 'rabbitmq').map((h) => h.address),
    amqpPassword: ctx.dep.passwords.rabbitmq_password ?? '',
    queue: CHAOS_QUEUE,
    queueType: ctx.queueType,
    memcachedServers: memcachedServers(ctx.dep),
    httpUrl: probeApiEnabled(ctx.dep)
      ? `http://${ctx.dep.globals.internalVip}:${PROBE_API_PORT}/`
      : undefined,
    keystone: keystoneEnabled(ctx.dep)
      ? {
          url: `http://${ctx.dep.globals.internalVip}:${KEYSTONE_PORT}`,
          username: KEYSTONE_ADMIN.user,
          password: ctx.dep.passwords.keystone_admin_password ?? '',
          project: KEYSTONE_ADMIN.project,
          issueIntervalMs: Math.max(1000, opts.intervalMs * 50),
        }
      : undefined,
    intervalMs: opts.intervalMs,
    drainMs: 60_000,
    maxSeconds: Math.ceil((opts.warmupMs + opts.holdMs + opts.settleTimeoutMs + opts.afterMs) / 1000) + 600,
  };
  await client.mkdir('/var/lib/stackha/chaos');
  await client.remove(OPS);
  await client.remove(FINAL);
  await client.writeFile(LOAD_CFG, JSON.stringify(cfg), { mode: 0o600 });
  await client.startDaemon({
    name: 'chaos-load',
    argv: [process.execPath, builtScript('probes/load.js'), client.path(LOAD_CFG)],
    logFile: '/var/log/stackha/chaos-load.log',
  });
  let target = '';
  let faultStart = 0;
  let healStart = 0;
  let wholeAt: number | undefined;
  let problemsAfter: string[] = [];
  let error: string | undefined;
  const windowStart = Date.now();
  try {
    // Warm up until every workload has succeeded at least once, then a little more.
    await waitFor(
      'the load generator to get going',
      async () => {
        const ops = parseOps((await client.readFile(OPS)) ?? '');
        const ok = new Set(ops.filter((o) => o.ok).map((o) => o.w));
        return ['sql', 'amqp', 'mc'].every((w) => ok.has(w as 'sql')) ? true : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 500 },
    );
    await sleep(opts.warmupMs);
    faultStart = Date.now();
    target = await scenario.inject(ctx);
    ctx.log(`${scenario.name}: injected (${target})`);
    await sleep(scenario.holdMs ?? opts.holdMs);
    healStart = Date.now();
    await scenario.heal(ctx);
    problemsAfter = await settle(ctx, opts.settleTimeoutMs);
    if (problemsAfter.length === 0) wholeAt = Date.now();
    ctx.log(
      `${scenario.name}: ${problemsAfter.length === 0 ? 'whole again' : `not whole: ${problemsAfter.join('; ')}`}`,
    );
    await sleep(opts.afterMs);
  } catch (err) {
    error = err instanceof Error ? err.message : String(err);
    ctx.log(`${scenario.name}: ${error}`);
    if (healStart === 0 && faultStart !== 0) {
      healStart = Date.now();
      await scenario.heal(ctx).catch(() => {});
    }
    problemsAfter = await settle(ctx, opts.settleTimeoutMs);
  }
  const windowEnd = Date.now();
  await client.signalDaemon('chaos-load', 'SIGTERM');
  await waitFor(
    'the load generator to drain and exit',
    async () => ((await client.daemonPid('chaos-load')) === undefined ? true : undefined),
    { timeoutMs: cfg.drainMs + 60_000, intervalMs: 500 },
  ).catch(async () => {
    await client.stopDaemon('chaos-load', { signal: 'SIGKILL' });
  });
  const final = JSON.parse((await client.readFile(FINAL)) ?? 'null') as LoadFinal | null;
  const ops = parseOps((await client.readFile(OPS)) ?? '');
  const faultEnd = wholeAt ?? windowEnd;
  const workloads = analyze(
    ops,
    { start: windowStart, end: windowEnd },
    { start: faultStart || windowStart, end: faultEnd },
  );

  // Every acknowledged row must be there (the primary key makes "more than once" impossible).
  const acked = final?.sqlAcked ?? [];
  let presentRows = new Set<string>();
  try {
    const outRows = await clientSql(
      client,
      ctx.dep,
      `SELECT id FROM stackha_chaos.acked WHERE run_id='${runId}';`,
    );
    presentRows = new Set(outRows.split('\n').filter(Boolean));
  } catch (err) {
    error ??= `could not read back rows: ${err instanceof Error ? err.message : String(err)}`;
  }
  const sql = reconcile(acked, presentRows);
  const amqp = reconcile(final?.amqpConfirmed ?? [], new Map(Object.entries(final?.amqpReceived ?? {})));
  if (!final) error ??= 'the load generator wrote no final accounting';
  return {
    scenario: scenario.name,
    profile: ctx.dep.tuning.profile,
    target,
    startedAt,
    faultSeconds: faultStart ? (healStart - faultStart) / 1000 : 0,
    recoveredSeconds: wholeAt && faultStart ? (wholeAt - faultStart) / 1000 : undefined,
    workloads,
    sql: { acknowledged: sql.acknowledged, lost: sql.lost.length, lostIds: sql.lost.slice(0, 20) },
    amqp: {
      confirmed: amqp.acknowledged,
      lost: amqp.lost.length,
      duplicates: amqp.duplicates,
      reconnects: final?.amqpReconnects ?? 0,
      lostIds: amqp.lost.slice(0, 20),
    },
    problemsAfter,
    ...(error !== undefined ? { error } : {}),
  };
}
