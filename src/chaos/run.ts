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
import { KEYSTONE_ADMIN, KEYSTONE_PORT, keystoneEnabled } from '../services/keystone/keystone.js';
import { memcachedServers } from '../services/memcached/memcached.js';
import { PROBE_API_PORT, probeApiEnabled } from '../services/probe-api/probe-api.js';
import { hostsFor } from '../topology.js';
import { builtScript } from '../util/paths.js';
import { sleep, waitFor } from '../util/wait.js';
import {
  type SqlReconciliation,
  type Timeline,
  type WorkloadStats,
  analyze,
  parseOps,
  reconcile,
  reconcileNodes,
  timeline,
} from './analyze.js';

/** The kinds of replicated queue the spec's RabbitMQ scenarios run with: quorum queues, and classic mirrored ones. */
export type QueueKind = 'quorum' | 'mirrored';
export const QUEUE_KINDS: readonly QueueKind[] = ['quorum', 'mirrored'];

/** The chaos queue of each kind: one name per kind, since a queue's type cannot change in place. */
export const chaosQueue = (kind: QueueKind): string => `stackha-chaos-${kind}`;

/** The queue kind a deployment gives OpenStack's queues (and the chaos queue). */
export function queueKindOf(dep: Deployment): QueueKind {
  return dep.globals.rabbitmqMirroredQueues && !dep.globals.rabbitmqQuorumQueues ? 'mirrored' : 'quorum';
}

/**
 * The same deployment with the other kind of queues: quorum queues (om_enable_rabbitmq_quorum_queues), or classic
 * queues mirrored by the `ha-mode: all` policy (om_enable_rabbitmq_high_availability), the spec's mirrored queues.
 */
export function withQueues(dep: Deployment, kind: QueueKind): Deployment {
  return {
    ...dep,
    globals: {
      ...dep.globals,
      rabbitmqQuorumQueues: kind === 'quorum',
      rabbitmqMirroredQueues: kind === 'mirrored',
    },
  };
}

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
  readonly queueKind: QueueKind;
  /**
   * A scale scenario added or removed a host: from here on `dep`, `conn`, `lab` and the final verification (whole,
   * nothing lost) follow the new deployment.
   */
  setDeployment(dep: Deployment): void;
}

/** What an injection hit, and how to see, independently of the load's figures, that the fault really happened. */
export interface Injection {
  readonly target: string;
  /**
   * When the fault was really applied (epoch ms): finding the target first (a status of everything, seconds on a
   * busy machine) is not part of the outage, and must not hide it either. Default: just before inject was called.
   */
  readonly at?: number;
  /**
   * Observes the fault from outside the load (the process is gone, the writer changed, the VIP moved); resolves with
   * what was seen, each line starting with `NOT OBSERVED` when something expected was not. Runs during the hold.
   */
  readonly observe?: () => Promise<string[]>;
}

export interface Scenario {
  readonly name: string;
  readonly description: string;
  /** How long the fault stays before healing, ms (default from the run options). */
  readonly holdMs?: number;
  /** The scenario exercises RabbitMQ's replicated queues: it runs with each queue kind. */
  readonly queueKinds?: boolean;
  /** Injects the fault. */
  inject(ctx: ChaosContext): Promise<Injection>;
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

export interface AmqpReconciliation {
  readonly confirmed: number;
  /** Confirmed but never received. */
  readonly lost: number;
  readonly lostIds: readonly string[];
  /** Deliveries beyond the first (delivery is at least once). */
  readonly duplicates: number;
  readonly reconnects: number;
  /** Messages still in the queue after the drain (the generator's last look at it; undefined: it could not look). */
  readonly leftInQueue: number | undefined;
  /** The generator's accounting is missing: nothing about messages is verified. */
  readonly notVerified: boolean;
}

export interface ScenarioResult {
  readonly scenario: string;
  readonly profile: string;
  readonly queues: QueueKind;
  /** 1-based trial number within its run. */
  readonly trial: number;
  readonly runId: string;
  readonly target: string;
  readonly startedAt: string;
  /** When the fault was injected (epoch ms; 0 when it never was). */
  readonly faultStartMs: number;
  /** Injection until heal began, and until the cluster was whole again, seconds. */
  readonly faultSeconds: number;
  readonly recoveredSeconds: number | undefined;
  readonly workloads: readonly WorkloadStats[];
  /** What was observed of the fault independently of the load (see Injection.observe). */
  readonly evidence: readonly string[];
  readonly sql: SqlReconciliation;
  readonly amqp: AmqpReconciliation;
  /** Problems left after settling; empty when the cluster is whole. */
  readonly problemsAfter: readonly string[];
  readonly timeline?: Timeline;
  /** The failed operations (the first 200): when, which workload, what error. */
  readonly failedOps?: readonly { readonly t: number; readonly w: string; readonly e: string }[];
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
    get queueKind() {
      return queueKindOf(current);
    },
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

const LOAD_DAEMON = 'chaos-load';
const CHAOS_DIR = '/var/lib/stackha/chaos';
const loadConfigPath = (runId: string) => `/etc/stackha/chaos-load-${runId}.json`;
const opsPath = (runId: string) => `${CHAOS_DIR}/ops-${runId}.jsonl`;
const finalPath = (runId: string) => `${CHAOS_DIR}/final-${runId}.json`;

/**
 * Ends a load generator still running from an earlier run (a harness that died mid-run): it is never reused, and what
 * it does is never charged to the new run, whose files carry their own run id.
 */
async function stopLeftoverGenerator(ctx: ChaosContext): Promise<void> {
  const pid = await ctx.client.daemonPid(LOAD_DAEMON);
  if (pid === undefined) return;
  ctx.log(`a load generator of an earlier run is still running (pid ${pid}): stopping it`);
  await ctx.client.stopDaemon(LOAD_DAEMON, { signal: 'SIGKILL', timeoutMs: 5000 });
}

/** Stops this run's generator: it drains its consumer and writes its accounting; killed if it does not exit. */
async function stopGenerator(ctx: ChaosContext, drainMs: number): Promise<void> {
  await ctx.client.signalDaemon(LOAD_DAEMON, 'SIGTERM');
  await waitFor(
    'the load generator to drain and exit',
    async () => ((await ctx.client.daemonPid(LOAD_DAEMON)) === undefined ? true : undefined),
    { timeoutMs: drainMs + 60_000, intervalMs: 500 },
  ).catch(async () => {
    ctx.log('the load generator did not exit after its drain: killed');
    await ctx.client.stopDaemon(LOAD_DAEMON, { signal: 'SIGKILL', timeoutMs: 5000 });
  });
}

/** The run's acknowledged rows as each Galera node has them, read from the node directly (not through the VIP). */
async function readBackEveryNode(
  ctx: ChaosContext,
  runId: string,
  acked: readonly string[],
): Promise<SqlReconciliation> {
  const rows = await Promise.all(
    hostsFor(ctx.dep, 'mariadb').map(async (h) => {
      try {
        const out = await clientSql(
          ctx.client,
          ctx.dep,
          `SELECT id FROM stackha_chaos.acked WHERE run_id='${runId}';`,
          h.address,
        );
        return { node: h.name, ids: new Set(out.split('\n').filter(Boolean)) };
      } catch (err) {
        return {
          node: h.name,
          ids: undefined,
          error: (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? 'read failed',
        };
      }
    }),
  );
  return reconcileNodes(acked, rows);
}

/**
 * One scenario under load: make sure the cluster is whole, start a fresh load generator in the client namespace,
 * warm up, inject, observe the fault, hold, heal, wait until whole, keep the load on a little longer, stop the
 * generator (on every path out), then verify that every acknowledged row is on every Galera node and every
 * confirmed message was received.
 */
export async function runScenario(
  ctx: ChaosContext,
  scenario: Scenario,
  opts: RunOptions,
  trial = 1,
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
  const queues = ctx.queueKind;
  const cfg: LoadConfig = {
    runId,
    opsFile: opsPath(runId),
    finalFile: finalPath(runId),
    vip: ctx.dep.globals.internalVip,
    dbPassword: ctx.dep.passwords.database_password ?? '',
    brokers: hostsFor(ctx.dep, 'rabbitmq').map((h) => h.address),
    amqpPassword: ctx.dep.passwords.rabbitmq_password ?? '',
    queue: chaosQueue(queues),
    queueType: queues === 'quorum' ? 'quorum' : 'classic',
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
  await stopLeftoverGenerator(ctx);
  await client.mkdir(CHAOS_DIR);
  await client.writeFile(loadConfigPath(runId), JSON.stringify(cfg), { mode: 0o600 });
  await client.startDaemon({
    name: LOAD_DAEMON,
    argv: [process.execPath, builtScript('probes/load.js'), loadConfigPath(runId)],
    logFile: '/var/log/stackha/chaos-load.log',
  });
  let target = '';
  let evidence: string[] = [];
  let faultStart = 0;
  let healStart = 0;
  let wholeAt: number | undefined;
  let problemsAfter: string[] = [];
  let error: string | undefined;
  const loadStart = Date.now();
  try {
    try {
      // Warm up until every workload has succeeded at least once, then a little more.
      await waitFor(
        'the load generator to get going',
        async () => {
          if ((await client.daemonPid(LOAD_DAEMON)) === undefined) {
            const tail = (await client.readFile('/var/log/stackha/chaos-load.log'))
              ?.trim()
              .split('\n')
              .slice(-5);
            throw new Error(`the load generator exited: ${tail?.join(' | ') ?? ''}`);
          }
          const ops = parseOps((await client.readFile(opsPath(runId))) ?? '');
          const ok = new Set(ops.filter((o) => o.ok).map((o) => o.w));
          return ['sql', 'amqp', 'mc'].every((w) => ok.has(w as 'sql')) ? true : undefined;
        },
        { timeoutMs: 60_000, intervalMs: 500 },
      );
      await sleep(opts.warmupMs);
      const called = Date.now();
      const injection = await scenario.inject(ctx);
      faultStart = injection.at ?? called;
      target = injection.target;
      ctx.log(`${scenario.name}: injected (${target})`);
      const hold = sleep(scenario.holdMs ?? opts.holdMs);
      evidence = (await injection
        .observe?.()
        .catch((err: unknown) => [`NOT OBSERVED: ${err instanceof Error ? err.message : String(err)}`])) ?? [
        'no independent observation for this scenario',
      ];
      for (const e of evidence) ctx.log(`${scenario.name}: ${e}`);
      await hold;
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
  } finally {
    // On every path out: the generator drains and exits, or is killed.
    await stopGenerator(ctx, cfg.drainMs);
  }
  const loadEnd = Date.now();
  const finalText = await client.readFile(finalPath(runId));
  let final: LoadFinal | undefined;
  try {
    final = finalText ? (JSON.parse(finalText) as LoadFinal) : undefined;
  } catch {
    final = undefined;
  }
  if (final && final.runId !== runId) {
    error ??= `the load generator's accounting is of run ${final.runId}, not ${runId}`;
    final = undefined;
  }
  if (!final) error ??= 'the load generator wrote no final accounting: nothing it did is verified';
  const ops = parseOps((await client.readFile(opsPath(runId))) ?? '');
  const load = { start: loadStart, end: loadEnd };
  const fault = { start: faultStart || loadStart, end: wholeAt ?? loadEnd };
  const workloads = analyze(ops, load, fault);

  const sql = await readBackEveryNode(ctx, runId, final?.sqlAcked ?? []);
  if (sql.notVerified.length > 0)
    error ??= `acknowledged rows not verified on ${sql.notVerified.join(', ')}: the read-back failed`;
  const amqpRec = reconcile(final?.amqpConfirmed ?? [], new Map(Object.entries(final?.amqpReceived ?? {})));
  for (const path of [opsPath(runId), finalPath(runId), loadConfigPath(runId)]) await client.remove(path);
  return {
    scenario: scenario.name,
    profile: ctx.dep.tuning.profile,
    queues,
    trial,
    runId,
    target,
    startedAt,
    faultStartMs: faultStart,
    faultSeconds: faultStart ? ((healStart || loadEnd) - faultStart) / 1000 : 0,
    recoveredSeconds: wholeAt && faultStart ? (wholeAt - faultStart) / 1000 : undefined,
    workloads,
    evidence,
    sql,
    amqp: {
      confirmed: amqpRec.acknowledged,
      lost: final ? amqpRec.lost.length : 0,
      lostIds: final ? amqpRec.lost.slice(0, 20) : [],
      duplicates: amqpRec.duplicates,
      reconnects: final?.amqpReconnects ?? 0,
      leftInQueue: final?.amqpLeftInQueue,
      notVerified: !final,
    },
    problemsAfter,
    timeline: timeline(ops, load),
    failedOps: ops
      .filter((o) => !o.ok)
      .slice(0, 200)
      .map((o) => ({ t: o.t, w: o.w, e: o.e ?? '' })),
    ...(error !== undefined ? { error } : {}),
  };
}
