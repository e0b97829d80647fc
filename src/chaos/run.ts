import { randomBytes } from 'node:crypto';
import { type DeployReport, deploy } from '../deploy/deploy.js';
import { type Connection, connect, connectLab } from '../hosts/connect.js';
import type { Host } from '../hosts/host.js';
import { type LabState, labClient, readLabState } from '../lab/lab.js';
import { CHAOS_TENANT, type PingProbe, type PingReport, readTenant, startPing } from '../lab/tenant.js';
import type { Deployment } from '../model.js';
import { runOpenstack } from '../ops/keystone.js';
import { clusterProblems, clusterStatus } from '../ops/status.js';
import { clientSql } from '../probes/client.js';
import type { LoadConfig, LoadFinal, OpenstackLoad, OpenstackVerdict } from '../probes/load.js';
import { GLANCE_PORT } from '../services/glance/glance.js';
import { KEYSTONE_ADMIN, KEYSTONE_PORT, keystoneEnabled } from '../services/keystone/keystone.js';
import { memcachedServers } from '../services/memcached/memcached.js';
import { NEUTRON_PORT } from '../services/neutron/neutron.js';
import { NOVA_API_PORT } from '../services/nova/conf.js';
import { PLACEMENT_PORT } from '../services/placement/placement.js';
import { PROBE_API_PORT, probeApiEnabled } from '../services/probe-api/probe-api.js';
import { SWIFT_PROXY_PORT } from '../services/swift/conf.js';
import { SWIFT_RING_SETTINGS } from '../services/swift/rings.js';
import { readSettings } from '../settings.js';
import { hostsFor } from '../topology.js';
import { builtScript } from '../util/paths.js';
import { sleep, waitFor } from '../util/wait.js';
import {
  type ServerTally,
  type SqlReconciliation,
  type Timeline,
  type WorkloadStats,
  analyze,
  parseOps,
  reconcile,
  reconcileNodes,
  tallyServers,
  timeline,
} from './analyze.js';
import {
  type FailoverCounters,
  type Failovers,
  failoversBetween,
  readFailoverCounters,
} from './failovers.js';
import { replicaCounts } from './swift-replicas.js';

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

/** What a scenario acts on: the deployment, the lab (if any), and a way to heal with a real deploy. */
export interface ChaosContext {
  readonly dep: Deployment;
  /** The lab the deployment runs in; undefined over SSH, where only scenarios without `needsLab` run. */
  readonly lab: LabState | undefined;
  /** What the run's state is kept under (the lab's name, else the config dir). */
  readonly name: string;
  readonly conn: Connection;
  /** Where the load generator and the probes run: the lab's client namespace, or this machine (`--client local`). */
  readonly client: Host;
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

/**
 * What a scenario's inject throws when it failed after the fault had begun (a rolling restart that stopped on a
 * host): when the fault began and what it hit, so the trial is measured from there. Any other error counts from
 * when inject was called.
 */
export class InjectionFailed extends Error {
  constructor(
    message: string,
    readonly at: number,
    readonly target: string,
  ) {
    super(message);
    this.name = 'InjectionFailed';
  }
}

export interface Scenario {
  readonly name: string;
  readonly description: string;
  /** How long the fault stays before healing, ms (default from the run options). */
  readonly holdMs?: number;
  /** The scenario exercises RabbitMQ's replicated queues: it runs with each queue kind. */
  readonly queueKinds?: boolean;
  /** Servers booting at once during the run (default 1), when Nova is deployed. */
  readonly serverStreams?: number;
  /** Services the scenario needs deployed; `chaos run all` skips it where they are not. */
  readonly requires?: readonly string[];
  /**
   * After healing, measure how long Swift's replicators take until every acknowledged object has all its replicas
   * again (the host that was down gets them back).
   */
  readonly measureReplicas?: boolean;
  /**
   * The killed daemon may hold a server build it had taken off the queue (nova-conductor): a server created before the
   * kill and never scheduled is counted as lost in flight, not as stuck (see ServerTally.lostInFlight).
   */
  readonly losesInFlightBuilds?: boolean;
  /**
   * The lab's chaos tenant pings the outside through its HA router during the run (every 50 ms): its outage around
   * the fault is measured, and no reply after it is a violation.
   */
  readonly tenantProbe?: boolean;
  /** Injects the fault. */
  inject(ctx: ChaosContext): Promise<Injection>;
  /** Heals: what an operator would do (restart what died, power the host on, recover). */
  heal(ctx: ChaosContext): Promise<void>;
  /** Runs before the cluster check and the load (e.g. grow the lab so there is a host to remove). */
  prepare?(ctx: ChaosContext): Promise<void>;
  /**
   * What of the lab the scenario needs besides its hosts' daemons: to crash a host (every process, the link), to cut a
   * host's link, a spare host to add, or the lab tenant (a namespace on a Neutron port) whose pings it measures.
   * Over SSH there is no such lever: the scenario is refused (labRefusal).
   */
  readonly needsLab?: 'crash' | 'partition' | 'spare host' | 'tenant';
}

const NEEDS_LAB: Readonly<Record<NonNullable<Scenario['needsLab']>, string>> = {
  crash: 'it crashes a host (kills every process of it and takes its link down)',
  partition: "it cuts a host's network link",
  'spare host': 'it adds a host from the lab',
  tenant: "it pings from the lab's tenant namespace, plugged into a Neutron port",
};

/** A host of the connection, by inventory name (both contexts look hosts up this way). */
function hostOfConnection(conn: Connection, name: string): Host {
  const h = conn.hosts.get(name);
  if (!h) throw new Error(`no host ${name}`);
  return h;
}

/** Why a scenario cannot run on this deployment (no lab: hosts over SSH), or undefined when it can. */
export function labRefusal(
  scenario: Pick<Scenario, 'name' | 'needsLab'>,
  inLab: boolean,
): string | undefined {
  if (inLab || scenario.needsLab === undefined) return undefined;
  return `${scenario.name} runs only in a lab: ${NEEDS_LAB[scenario.needsLab]}, which stackha does not do to hosts over SSH`;
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

export interface OpenstackReconciliation {
  readonly objects: { readonly acked: number; readonly lost: number; readonly detail: readonly string[] };
  readonly images: { readonly acked: number; readonly lost: number; readonly detail: readonly string[] };
  readonly servers: ServerTally;
  /** The read-back could not be done: nothing acknowledged is verified. */
  readonly notVerified: boolean;
}

export interface TenantProbeResult {
  /** The host the tenant's port is bound to. */
  readonly host: string;
  readonly sent: number;
  readonly lost: number;
  /** From the last reply before the fault to the first after it; undefined when none came after. */
  readonly outageSeconds: number | undefined;
  /** From the fault to the first reply after it. */
  readonly firstReplyAfterFaultSeconds: number | undefined;
  /** The longest gap between two replies anywhere in the run. */
  readonly longestGapSeconds: number;
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
  /** What the OpenStack workloads had acknowledged, read back after healing, and what became of every server. */
  readonly openstack?: OpenstackReconciliation;
  /** The chaos tenant's pings to the outside through the HA router (tenantProbe), around the fault. */
  readonly tenant?: TenantProbeResult;
  /**
   * Swift replicas after healing (measureReplicas): seconds from the cluster being whole until every acknowledged
   * object was on all its primary nodes again, or undefined if that never happened within the bound; the counts at
   * the first and last look.
   */
  readonly replicas?: {
    readonly objects: number;
    readonly restoredSeconds: number | undefined;
    readonly firstLook: Readonly<Record<string, number>>;
    readonly lastLook: Readonly<Record<string, number>>;
  };
  /**
   * Failovers the daemons recorded from just before the injection to the end of the load (HAProxy mark-downs, VIP
   * takeovers, Galera view changes): the expected ones in a fault, false ones in the baseline or a soak.
   */
  readonly failovers?: Failovers;
  /** Problems left after settling; empty when the cluster is whole. */
  readonly problemsAfter: readonly string[];
  readonly timeline?: Timeline;
  /** The failed operations (the first 200): when, which workload, what error. */
  readonly failedOps?: readonly { readonly t: number; readonly w: string; readonly e: string }[];
  readonly error?: string;
}

export function chaosContext(dep: Deployment, lab: LabState, log: (m: string) => void): ChaosContext {
  let current = dep;
  let conn = connectLab(dep);
  let labNow = lab;
  return {
    get dep() {
      return current;
    },
    get lab() {
      return labNow;
    },
    name: lab.name,
    get conn() {
      return conn;
    },
    client: labClient(lab),
    log,
    host: (name) => hostOfConnection(conn, name),
    redeploy: async () => {
      logDeploy(log, await deploy(current, { renderer: 'silent' }));
    },
    get queueKind() {
      return queueKindOf(current);
    },
    setDeployment: (next) => {
      current = next;
      conn = connectLab(next);
      labNow = readLabState(lab.name) ?? labNow;
    },
  };
}

/**
 * The context over an open connection to the deployment's hosts (SSH): heals deploy through that connection, the load
 * runs on `client`. There is no lab: scenarios with `needsLab` are refused before they get here.
 */
export function connectedChaosContext(
  dep: Deployment,
  conn: Connection,
  client: Host,
  log: (m: string) => void,
): ChaosContext {
  return {
    dep,
    lab: undefined,
    name: dep.configDir,
    conn,
    client,
    log,
    host: (name) => hostOfConnection(conn, name),
    redeploy: async () => {
      logDeploy(log, await deploy(dep, { renderer: 'silent', connection: conn }));
    },
    queueKind: queueKindOf(dep),
    setDeployment: () => {
      throw new Error('the deployment changed hosts: that needs a lab (scale scenarios run only in a lab)');
    },
  };
}

const seconds = (ms: number | undefined): number | undefined => (ms === undefined ? undefined : ms / 1000);

/** A heal's deploy in the run's log: its length and its slow steps (where a host's return spends its time). */
function logDeploy(log: (m: string) => void, r: DeployReport): void {
  const slow = Object.entries(r.stepSeconds)
    .filter(([, s]) => s >= 5)
    .map(([n, s]) => `${n} ${s.toFixed(0)} s`);
  log(`deploy: ${r.seconds.toFixed(1)} s${slow.length > 0 ? ` (${slow.join(', ')})` : ''}`);
}

async function problemsNow(ctx: ChaosContext): Promise<string[]> {
  return clusterProblems(ctx.dep, await clusterStatus(ctx.dep, ctx.conn));
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
/** How long a server may stay in BUILD (or a deleted one linger) before it counts as stuck. */
const SERVER_TIMEOUT_MS = 120_000;
const LOAD_LOG = '/var/log/stackha/chaos-load.log';

/** The last lines the load generator wrote to its log (its stack trace when it died), for an error message. */
async function loadLogTail(client: Host): Promise<string> {
  const lines = (await client.readFile(LOAD_LOG))?.trim().split('\n').slice(-5) ?? [];
  return lines.join(' | ') || 'empty';
}
const CHAOS_DIR = '/var/lib/stackha/chaos';
const loadConfigPath = (runId: string) => `/etc/stackha/chaos-load-${runId}.json`;
const opsPath = (runId: string) => `${CHAOS_DIR}/ops-${runId}.jsonl`;
const finalPath = (runId: string) => `${CHAOS_DIR}/final-${runId}.json`;
const verdictPath = (runId: string) => `${CHAOS_DIR}/verdict-${runId}.json`;

/** The flavor and image the server workload boots from, made once (the fake driver never reads the image). */
const CHAOS_FIXTURE = 'stackha-chaos';

async function openstackId(ctx: ChaosContext, args: readonly string[]): Promise<string | undefined> {
  const r = await runOpenstack(ctx.client, ctx.dep, args);
  return r.code === 0 ? r.stdout.trim() || undefined : undefined;
}

/** A flavor and an image to boot from, created unless there. */
async function chaosFixtures(ctx: ChaosContext): Promise<{ flavorId: string; imageId: string } | undefined> {
  let flavorId = await openstackId(ctx, ['flavor', 'show', CHAOS_FIXTURE, '-f', 'value', '-c', 'id']);
  flavorId ??= await openstackId(ctx, [
    'flavor',
    'create',
    '--ram',
    '64',
    '--disk',
    '1',
    '--vcpus',
    '1',
    CHAOS_FIXTURE,
    '-f',
    'value',
    '-c',
    'id',
  ]);
  let imageId = await openstackId(ctx, ['image', 'show', CHAOS_FIXTURE, '-f', 'value', '-c', 'id']);
  if (!imageId) {
    await ctx.client.writeFile('/var/lib/stackha/chaos/fixture.img', 'stackha chaos fixture image\n');
    imageId = await openstackId(ctx, [
      'image',
      'create',
      '--disk-format',
      'raw',
      '--container-format',
      'bare',
      '--file',
      '/var/lib/stackha/chaos/fixture.img',
      CHAOS_FIXTURE,
      '-f',
      'value',
      '-c',
      'id',
    ]);
  }
  return flavorId && imageId ? { flavorId, imageId } : undefined;
}

/** The OpenStack workloads for the services this deployment runs. */
async function openstackLoad(ctx: ChaosContext, scenario: Scenario): Promise<OpenstackLoad | undefined> {
  const vip = ctx.dep.globals.internalVip;
  const on = (s: string) => hostsFor(ctx.dep, s).length > 0;
  if (!on('nova') && !on('glance') && !on('swift-proxy') && !on('placement') && !on('neutron'))
    return undefined;
  const fixtures = on('nova') && on('nova-compute') && on('glance') ? await chaosFixtures(ctx) : undefined;
  return {
    ...(on('nova') ? { novaUrl: `http://${vip}:${NOVA_API_PORT}/v2.1` } : {}),
    ...(on('placement') ? { placementUrl: `http://${vip}:${PLACEMENT_PORT}` } : {}),
    ...(on('neutron') ? { neutronUrl: `http://${vip}:${NEUTRON_PORT}` } : {}),
    ...(on('glance') ? { glanceUrl: `http://${vip}:${GLANCE_PORT}` } : {}),
    ...(on('swift-proxy') ? { swiftUrl: `http://${vip}:${SWIFT_PROXY_PORT}/v1` } : {}),
    ...(fixtures ?? {}),
    serverStreams: scenario.serverStreams ?? 1,
    serverTimeoutMs: SERVER_TIMEOUT_MS,
    readIntervalMs: 500,
    objectIntervalMs: 250,
    imageIntervalMs: 1000,
    objectBytes: 64 * 1024,
    imageBytes: 256 * 1024,
  };
}

const REPLICA_BOUND_MS = 600_000;
/** How long the load stays on, once the cluster is whole, for every workload to succeed again. */
const RECOVERY_BOUND_MS = 180_000;

/** Waits until every workload that ran has an operation started and succeeded after `since` (or the bound). */
async function everyWorkloadSucceededSince(
  client: Host,
  runId: string,
  since: number,
  boundMs: number,
): Promise<void> {
  await waitFor(
    'every workload to succeed once since the cluster is whole',
    async () => {
      const ops = parseOps((await client.readFile(opsPath(runId))) ?? '');
      const ran = new Set(ops.map((o) => o.w));
      const ok = new Set(ops.filter((o) => o.ok && o.t >= since).map((o) => o.w));
      return [...ran].every((w) => ok.has(w)) ? true : undefined;
    },
    { timeoutMs: boundMs, intervalMs: 1000 },
  ).catch(() => {});
}

/** Polls the replica count of every acknowledged object until each has as many as the ring asks for. */
async function measureReplicas(
  ctx: ChaosContext,
  final: LoadFinal,
  since: number,
): Promise<NonNullable<ScenarioResult['replicas']>> {
  const names = (final.objectsAcked ?? []).map((o) => o.name);
  const storage = hostsFor(ctx.dep, 'swift-storage')[0];
  const m = /\/v1\/([^/]+)\/([^/]+)$/.exec(final.objectContainerUrl ?? '');
  if (!storage || !m?.[1] || !m[2] || names.length === 0)
    return {
      objects: names.length,
      restoredSeconds: names.length === 0 ? 0 : undefined,
      firstLook: {},
      lastLook: {},
    };
  const want = readSettings(ctx.dep.globals.settings, SWIFT_RING_SETTINGS).swift_replica_count;
  const histogram = (counts: Record<string, number>) => {
    const h: Record<string, number> = {};
    for (const n of Object.values(counts)) h[`${n} replicas`] = (h[`${n} replicas`] ?? 0) + 1;
    return h;
  };
  let first: Record<string, number> | undefined;
  let last: Record<string, number> = {};
  const done = await waitFor(
    'every object to have all its replicas',
    async () => {
      const counts = await replicaCounts(ctx.host(storage.name), m[1] ?? '', m[2] ?? '', names);
      first ??= histogram(counts);
      last = histogram(counts);
      return Object.values(counts).every((n) => n >= want) ? Date.now() : undefined;
    },
    { timeoutMs: REPLICA_BOUND_MS, intervalMs: 2000 },
  ).catch(() => undefined);
  ctx.log(`swift replicas: first look ${JSON.stringify(first)}, last ${JSON.stringify(last)}`);
  return {
    objects: names.length,
    restoredSeconds: done === undefined ? undefined : Math.max(0, (done - since) / 1000),
    firstLook: first ?? {},
    lastLook: last,
  };
}

/** Reads back every object and image the run had acknowledged, through the VIP, and tallies the servers. */
async function verifyOpenstack(
  ctx: ChaosContext,
  runId: string,
  final: LoadFinal | undefined,
  inFlightLossAt: number | undefined,
): Promise<OpenstackReconciliation> {
  const tally = tallyServers(
    final?.servers ?? [],
    inFlightLossAt ? { atMs: inFlightLossAt, windowMs: SERVER_TIMEOUT_MS } : undefined,
  );
  const none = { acked: 0, lost: 0, detail: [] as string[] };
  if (!final) return { objects: none, images: none, servers: tally, notVerified: true };
  const r = await ctx.client.exec(
    [
      process.execPath,
      builtScript('probes/load.js'),
      '--verify',
      loadConfigPath(runId),
      finalPath(runId),
      verdictPath(runId),
    ],
    { timeoutMs: 600_000 },
  );
  const text = await ctx.client.readFile(verdictPath(runId));
  if (r.code !== 0 || !text) {
    ctx.log(`read-back of objects and images failed: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
    return { objects: none, images: none, servers: tally, notVerified: true };
  }
  const v = JSON.parse(text) as OpenstackVerdict;
  const side = (x: OpenstackVerdict['objects']) => ({
    acked: x.acked,
    lost: x.differ.length + x.unreadable.length,
    detail: [...x.differ.map((d) => `${d}: differs`), ...x.unreadable].slice(0, 20),
  });
  return { objects: side(v.objects), images: side(v.images), servers: tally, notVerified: false };
}

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
  const openstack = keystoneEnabled(ctx.dep) ? await openstackLoad(ctx, scenario) : undefined;
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
    ...(openstack ? { openstack } : {}),
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
    logFile: LOAD_LOG,
  });
  let target = '';
  let evidence: string[] = [];
  let faultStart = 0;
  let healStart = 0;
  let wholeAt: number | undefined;
  let problemsAfter: string[] = [];
  let loadEnd = 0;
  const errors: string[] = [];
  const failed = (what: string, err: unknown): void => {
    const m = `${what}${err instanceof Error ? err.message : String(err)}`;
    errors.push(m);
    ctx.log(`${scenario.name}: ${m}`);
  };
  let countersBefore: FailoverCounters = { haproxyDowns: {}, vipTakeovers: {}, galeraConfIds: {} };
  let failovers: Failovers | undefined;
  let tenantProbe: { host: string; probe: PingProbe } | undefined;
  let tenantPing: PingReport | undefined;
  const loadStart = Date.now();
  try {
    let warm = false;
    try {
      // Warm up until every workload has succeeded at least once, then a little more.
      await waitFor(
        'the load generator to get going',
        async () => {
          if ((await client.daemonPid(LOAD_DAEMON)) === undefined) {
            throw new Error(`the load generator exited: ${await loadLogTail(client)}`);
          }
          const ops = parseOps((await client.readFile(opsPath(runId))) ?? '');
          const ok = new Set(ops.filter((o) => o.ok).map((o) => o.w));
          return ['sql', 'amqp', 'mc'].every((w) => ok.has(w as 'sql')) ? true : undefined;
        },
        { timeoutMs: 60_000, intervalMs: 500 },
      );
      await sleep(opts.warmupMs);
      countersBefore = await readFailoverCounters(ctx.dep, ctx.conn.hosts, client);
      warm = true;
    } catch (err) {
      // Nothing was injected: nothing to heal, and no fault to measure.
      failed('', err);
    }
    if (warm && scenario.tenantProbe) {
      const lab = ctx.lab;
      const t = lab ? readTenant(lab.name, CHAOS_TENANT) : undefined;
      if (lab && t) {
        tenantProbe = { host: t.host, probe: startPing(lab, CHAOS_TENANT, t.outside) };
        await sleep(2000);
      } else failed('', new Error('no chaos tenant to ping from (the scenario needs a lab tenant)'));
    }
    if (warm) {
      const called = Date.now();
      try {
        const injection = await scenario.inject(ctx);
        faultStart = injection.at ?? called;
        target = injection.target;
        ctx.log(`${scenario.name}: injected (${target})`);
        const hold = sleep(scenario.holdMs ?? opts.holdMs);
        evidence = (await injection
          .observe?.()
          .catch((err: unknown) => [
            `NOT OBSERVED: ${err instanceof Error ? err.message : String(err)}`,
          ])) ?? ['no independent observation for this scenario'];
        for (const e of evidence) ctx.log(`${scenario.name}: ${e}`);
        await hold;
      } catch (err) {
        // The fault may be half applied (a rolling restart that stopped on a host): it is a fault all the same, from
        // when the injection began, and is healed and measured like one. The trial stays a violation (the error).
        faultStart = err instanceof InjectionFailed ? err.at : called;
        target = err instanceof InjectionFailed ? err.target : `${scenario.name}: injection failed`;
        failed('injection failed: ', err);
      }
      healStart = Date.now();
      try {
        await scenario.heal(ctx);
      } catch (err) {
        failed('heal failed: ', err);
      }
      try {
        // After a failed operation an operator runs `stackha deploy`: it starts what is down and puts back every
        // server left in maintenance on the load balancers.
        if (errors.length > 0) {
          const left = await problemsNow(ctx);
          if (left.length > 0) {
            ctx.log(`${scenario.name}: not whole after the failure (${left.join('; ')}): deploying`);
            await ctx
              .redeploy()
              .catch((err: unknown) => failed('the deploy after the failure failed: ', err));
          }
        }
        problemsAfter = await settle(ctx, opts.settleTimeoutMs);
        if (problemsAfter.length === 0) wholeAt = Date.now();
        ctx.log(
          `${scenario.name}: ${problemsAfter.length === 0 ? 'whole again' : `not whole: ${problemsAfter.join('; ')}`}`,
        );
        // A slow workload (a server boot, an image cycle) needs time for one whole operation after the cluster is
        // whole before "it works again" can be seen: the load stays on until each has succeeded once since then
        // (bounded).
        if (wholeAt !== undefined)
          await everyWorkloadSucceededSince(client, runId, wholeAt, RECOVERY_BOUND_MS);
        await sleep(opts.afterMs);
        failovers = failoversBetween(
          countersBefore,
          await readFailoverCounters(ctx.dep, ctx.conn.hosts, client),
        );
      } catch (err) {
        failed('', err);
      }
    }
  } finally {
    // The load ends when the generator is told to stop: its drain starts no new operation, and a gap that ran on
    // to the drain's end would be charged to the run as steady-state jitter.
    loadEnd = Date.now();
    tenantPing = await tenantProbe?.probe.stop(faultStart || undefined);
    // On every path out: the generator drains and exits, or is killed.
    await stopGenerator(ctx, cfg.drainMs);
  }
  let error: string | undefined = errors.length > 0 ? errors.join('; ') : undefined;
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
  if (!final)
    error ??=
      'the load generator wrote no final accounting: nothing it did is verified ' +
      `(the end of its log: ${await loadLogTail(client)})`;
  const ops = parseOps((await client.readFile(opsPath(runId))) ?? '');
  const load = { start: loadStart, end: loadEnd };
  const fault = { start: faultStart || loadStart, end: wholeAt ?? loadEnd };
  const workloads = analyze(ops, load, fault);

  const sql = await readBackEveryNode(ctx, runId, final?.sqlAcked ?? []);
  if (sql.notVerified.length > 0)
    error ??= `acknowledged rows not verified on ${sql.notVerified.join(', ')}: the read-back failed`;
  const amqpRec = reconcile(final?.amqpConfirmed ?? [], new Map(Object.entries(final?.amqpReceived ?? {})));
  const replicas =
    scenario.measureReplicas && final ? await measureReplicas(ctx, final, wholeAt ?? Date.now()) : undefined;
  if (replicas && replicas.restoredSeconds === undefined)
    error ??= `Swift did not restore every replica of ${replicas.objects} objects within ${REPLICA_BOUND_MS / 1000} s`;
  const osRec = openstack
    ? await verifyOpenstack(
        ctx,
        runId,
        final,
        scenario.losesInFlightBuilds && faultStart ? faultStart : undefined,
      )
    : undefined;
  if (osRec?.notVerified) error ??= 'the acknowledged objects and images were not read back: not verified';
  const tenant: TenantProbeResult | undefined =
    tenantProbe && tenantPing
      ? {
          host: tenantProbe.host,
          sent: tenantPing.sent,
          lost: tenantPing.lost,
          outageSeconds: seconds(tenantPing.faultGapMs),
          firstReplyAfterFaultSeconds: seconds(tenantPing.firstReplyAfterFaultMs),
          longestGapSeconds: tenantPing.longestGapMs / 1000,
        }
      : undefined;
  if (tenant && faultStart && tenant.outageSeconds === undefined)
    error ??= `the tenant on ${tenant.host} never reached the outside again after the fault`;
  for (const path of [opsPath(runId), finalPath(runId), loadConfigPath(runId), verdictPath(runId)])
    await client.remove(path);
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
    ...(osRec ? { openstack: osRec } : {}),
    ...(replicas ? { replicas } : {}),
    ...(tenant ? { tenant } : {}),
    ...(failovers ? { failovers } : {}),
    problemsAfter,
    timeline: timeline(ops, load),
    failedOps: ops
      .filter((o) => !o.ok)
      .slice(0, 200)
      .map((o) => ({ t: o.t, w: o.w, e: o.e ?? '' })),
    ...(error !== undefined ? { error } : {}),
  };
}
