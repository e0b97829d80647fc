import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { lbStates } from '../deploy/drain.js';
import { isAlive } from '../hosts/proc.js';
import { addHostToMultinode } from '../inventory/lab-inventory.js';
import { CONFIG_FILES, loadDeployment } from '../inventory/load.js';
import { type LabState, crashHost, hostPids, labAddHost, powerOnHost, setLink } from '../lab/lab.js';
import {
  CHAOS_TENANT,
  type TenantNetwork,
  activeRouterHost,
  dhcpHostsOf,
  ensureTenantNetwork,
  readTenant,
  tenantDown,
  tenantUp,
} from '../lab/tenant.js';
import { rollingRestart } from '../ops/rolling.js';
import { type ScaleReport, removalCheck, scaleAdd, scaleRemove } from '../ops/scale.js';
import { clusterStatus, galeraNodesOf, rabbitNodesOf } from '../ops/status.js';
import { activeServer } from '../services/haproxy/haproxy.js';
import { holdsVip } from '../services/keepalived/keepalived.js';
import { KEYSTONE_LB_NAME, keystoneHosts } from '../services/keystone/keystone.js';
import { rabbitmqctl } from '../services/rabbitmq/rabbitmq.js';
import { hostsFor } from '../topology.js';
import { withProfile } from '../tuning.js';
import { sleep, waitFor } from '../util/wait.js';
import { type ChaosContext, InjectionFailed, type Scenario, chaosQueue } from './run.js';

/** The lab of a scenario that needs one (needsLab): refused before the run over SSH, so this only guards. */
function labOf(ctx: ChaosContext): LabState {
  if (!ctx.lab) throw new Error('this scenario needs a lab (its hosts are reached over SSH)');
  return ctx.lab;
}

async function vipHolder(ctx: ChaosContext): Promise<string> {
  const s = await clusterStatus(ctx.dep, ctx.conn);
  const holder = s.vipHolders[0];
  if (s.vipHolders.length !== 1 || !holder)
    throw new Error(`expected one VIP holder, found ${s.vipHolders.join(',') || 'none'}`);
  return holder;
}

/** The Galera node the VIP holder's HAProxy sends writes to. */
async function galeraWriter(ctx: ChaosContext): Promise<string> {
  const s = await clusterStatus(ctx.dep, ctx.conn);
  const holder = s.vipHolders[0];
  const writer = holder ? s.galeraWriter[holder] : undefined;
  if (!writer) throw new Error('no Galera writer behind the VIP');
  return writer;
}

/**
 * The node leading a queue in `rabbitmqctl list_queues -q --no-table-headers name type leader pid` output: a quorum
 * queue's `leader`, else the node in a classic (mirrored) queue's master pid, `<rabbit@ctl2.1796194342.1871.0>`. The
 * JSON formatter is no use here: it prints a pid as `#PID<11017.1871.0>`, without the node.
 */
export function queueLeaderIn(table: string, queue: string): string | undefined {
  for (const line of table.split('\n')) {
    const [name, , leader, pid] = line.split('\t');
    if (name !== queue) continue;
    const node = leader?.trim() || /rabbit@([\w-]+)/.exec(pid ?? '')?.[0];
    if (node) return node.replace('rabbit@', '');
  }
  return undefined;
}

/** The node leading the chaos queue (quorum leader, or the mirrored queue's master), asked of any live node. */
async function queueLeader(ctx: ChaosContext, except?: string): Promise<string> {
  const queue = chaosQueue(ctx.queueKind);
  for (const spec of hostsFor(ctx.dep, 'rabbitmq')) {
    if (spec.name === except) continue;
    const host = ctx.host(spec.name);
    const r = await rabbitmqctl(
      host,
      { host: spec },
      ['list_queues', '-q', '--no-table-headers', 'name', 'type', 'leader', 'pid'],
      30_000,
    );
    if (r.code !== 0) continue;
    const node = queueLeaderIn(r.stdout, queue);
    if (node) return node;
  }
  throw new Error(`no leader found for queue ${queue}`);
}

const secondsSince = (t: number): string => `${((Date.now() - t) / 1000).toFixed(1)} s`;

/** Polls `probe` for up to `ms`; resolves with its first defined answer, or undefined. */
async function within<T>(ms: number, probe: () => Promise<T | undefined>): Promise<T | undefined> {
  return waitFor('an observation', probe, { timeoutMs: ms, intervalMs: 100 }).catch(() => undefined);
}

/** When the last kill was sent, per lab: the instant the fault began. */
const killedAt = new Map<string, number>();

/** Kills a daemon with SIGKILL; the observation checks its process is really gone. */
async function kill(ctx: ChaosContext, host: string, daemon: string): Promise<() => Promise<string>> {
  const h = ctx.host(host);
  const pid = await h.daemonPid(daemon);
  const at = Date.now();
  if (pid === undefined || !(await h.signalDaemon(daemon, 'SIGKILL')))
    throw new Error(`${daemon} is not running on ${host}`);
  killedAt.set(ctx.name, at);
  return async () =>
    (await within(10_000, async () => ((await h.daemonPid(daemon)) === undefined ? true : undefined)))
      ? `${daemon} on ${host} gone (pid ${pid}) ${secondsSince(at)} after the kill`
      : `NOT OBSERVED: ${daemon} on ${host} (pid ${pid}) still running 10 s after SIGKILL`;
}

/** The writer HAProxy on `lb` sends new connections to, from its stats socket (cheap: no status of everything). */
async function writerOn(ctx: ChaosContext, lb: string): Promise<string | undefined> {
  const states = await lbStates({
    dep: ctx.dep,
    hosts: ctx.conn.hosts,
    log: () => {},
  });
  return activeServer(states.get(lb) ?? [], 'mariadb');
}

/** The instant of the kill just sent (for Injection.at). */
const lastKill = (ctx: ChaosContext): number => killedAt.get(ctx.name) ?? Date.now();

/** Observes that the load balancers moved the writes away from `from`. */
function writerMoved(ctx: ChaosContext, from: string, lbs: readonly string[]): () => Promise<string> {
  const at = Date.now();
  return async () => {
    for (const lb of lbs) {
      const to = await within(15_000, async () => {
        const w = await writerOn(ctx, lb);
        return w !== undefined && w !== from ? w : undefined;
      });
      if (to)
        return `writes moved from ${from} to ${to} (HAProxy on ${lb}) ${secondsSince(at)} after the fault`;
    }
    return `NOT OBSERVED: writes still go to ${from} 15 s after the fault`;
  };
}

/** Observes that another load balancer took the VIP from `from`. */
function vipMoved(ctx: ChaosContext, from: string): () => Promise<string> {
  const at = Date.now();
  return async () => {
    const to = await within(15_000, async () => {
      for (const s of hostsFor(ctx.dep, 'keepalived'))
        if (s.name !== from && (await holdsVip(ctx.host(s.name), ctx.dep))) return s.name;
      return undefined;
    });
    return to
      ? `VIP moved from ${from} to ${to} ${secondsSince(at)} after the fault`
      : `NOT OBSERVED: no other host took the VIP from ${from} within 15 s`;
  };
}

/** Observes the queue's leadership moving off `from`. */
function leaderMoved(ctx: ChaosContext, from: string): () => Promise<string> {
  const at = Date.now();
  return async () => {
    const to = await within(30_000, async () => {
      const l = await queueLeader(ctx, from).catch(() => undefined);
      return l !== undefined && l !== from ? l : undefined;
    });
    return to
      ? `${chaosQueue(ctx.queueKind)} led by ${to} instead of ${from} ${secondsSince(at)} after the fault`
      : `NOT OBSERVED: no new leader for ${chaosQueue(ctx.queueKind)} within 30 s`;
  };
}

/**
 * Whether anything at `address` answers the client at all: a TCP connect to a closed port is refused at once by a
 * host that is there, and left unanswered by one that is cut off or down.
 */
async function answers(ctx: ChaosContext, address: string): Promise<boolean> {
  const r = await ctx.client.exec(['timeout', '1', 'bash', '-c', `exec 3<>/dev/tcp/${address}/9`], {
    timeoutMs: 5000,
  });
  return r.code !== 124;
}

/** Observes that a host's namespace has no process left (or keeps them, when cut off) and that it does not answer. */
function hostDown(ctx: ChaosContext, host: string, expectProcesses: boolean): () => Promise<string> {
  return async () => {
    // Killed processes linger a moment (this machine's init reaps late): count the live ones, give them 5 s.
    const live = async () => (await hostPids(labOf(ctx).name, host)).filter((p) => isAlive(p)).length;
    const left = expectProcesses
      ? await live()
      : ((await within(5000, async () => ((await live()) === 0 ? 0 : undefined))) ?? (await live()));
    const reachable = await answers(ctx, ctx.host(host).address);
    const parts = [
      expectProcesses
        ? `${host} keeps its ${left} processes`
        : left === 0
          ? `${host} has no process left`
          : `NOT OBSERVED: ${host} still has ${left} processes`,
      reachable
        ? `NOT OBSERVED: ${host} still reachable from the client`
        : `${host} unreachable from the client`,
    ];
    return parts.join('; ');
  };
}

/** Observes every load balancer marking `server` of `backend` down. */
function serverDown(ctx: ChaosContext, backend: string, server: string): () => Promise<string> {
  const at = Date.now();
  return async () => {
    const down = await within(15_000, async () => {
      const states = await lbStates({
        dep: ctx.dep,
        hosts: ctx.conn.hosts,
        log: () => {},
      });
      const mine = [...states.values()].flat().filter((s) => s.backend === backend && s.server === server);
      return mine.length > 0 && mine.every((s) => s.status !== 'UP') ? true : undefined;
    });
    return down
      ? `${backend}/${server} marked down on every load balancer ${secondsSince(at)} after the fault`
      : `NOT OBSERVED: ${backend}/${server} still UP somewhere 15 s after the fault`;
  };
}

/** Runs observations one after the other (each bounded), collecting what they saw. */
function observeAll(...observations: (() => Promise<string>)[]): () => Promise<string[]> {
  return async () => {
    const out: string[] = [];
    for (const o of observations) out.push(await o());
    return out;
  };
}

const restartWhatDied = async (ctx: ChaosContext): Promise<void> => ctx.redeploy();

/** Heals a host crash as an operator would: power the host on, then deploy (it starts what the host lost). */
async function powerOnAndRedeploy(ctx: ChaosContext): Promise<void> {
  const host = crashed.get(ctx.name);
  if (host) await powerOnHost(labOf(ctx), host);
  crashed.delete(ctx.name);
  await ctx.redeploy();
}

/** The last scale or rolling operation a scenario ran, by lab: its duration and phases, for reports. */
export interface ScaleOperation {
  readonly operation: string;
  readonly host: string | undefined;
  readonly seconds: number;
  readonly phases: readonly { name: string; seconds: number }[];
}
const lastOperations = new Map<string, ScaleOperation>();
export function lastScaleOperation(lab: string): ScaleOperation | undefined {
  return lastOperations.get(lab);
}

/**
 * Grows the deployment by one host: a lab host the inventory does not list yet, else a new one (`lab add-host`),
 * written into the inventory's [control] and [network] groups, then `stackha scale add`.
 */
async function addHost(ctx: ChaosContext): Promise<ScaleReport> {
  const spare = labOf(ctx).hosts.find((h) => !ctx.dep.hosts.some((d) => d.name === h.name));
  const rec = spare ?? (await labAddHost(labOf(ctx).name)).host;
  const path = join(ctx.dep.configDir, CONFIG_FILES.multinode);
  const text = readFileSync(path, 'utf8');
  const next = addHostToMultinode(text, rec.name, rec.address);
  if (next !== text) writeFileSync(path, next);
  // Read back from disk, keeping the profile a comparison run selected.
  const dep = withProfile(loadDeployment(ctx.dep.configDir), ctx.dep.tuning.profile);
  const r = await scaleAdd(dep, rec.name, { log: ctx.log });
  ctx.setDeployment(r.deployment);
  return r;
}

/** The host a remove scenario takes out: the last of the inventory (the one added last). */
function hostToRemove(ctx: ChaosContext): string {
  const last = ctx.dep.hosts.at(-1);
  if (!last) throw new Error('no host to remove');
  return last.name;
}

const recordOperation = (ctx: ChaosContext, op: ScaleOperation): string => {
  lastOperations.set(ctx.name, op);
  return `${op.operation}${op.host ? ` ${op.host}` : ''} in ${op.seconds.toFixed(1)} s`;
};

/** Observes the deployment's membership after a scale operation: the Galera cluster size and the RabbitMQ nodes. */
function membershipIs(ctx: ChaosContext): () => Promise<string> {
  return async () => {
    const s = await clusterStatus(ctx.dep, ctx.conn);
    const want = hostsFor(ctx.dep, 'mariadb').length;
    const sizes = [...new Set(galeraNodesOf(s).map((g) => g.clusterSize))];
    const rabbit = [...new Set(rabbitNodesOf(s).flatMap((r) => r.runningNodes))].sort();
    const wantRabbit = hostsFor(ctx.dep, 'rabbitmq').length;
    return [
      sizes.length === 1 && sizes[0] === want
        ? `Galera cluster size ${want}`
        : `NOT OBSERVED: Galera cluster sizes ${sizes.join(',')} (expected ${want})`,
      rabbit.length === wantRabbit
        ? `RabbitMQ nodes ${rabbit.join(', ')}`
        : `NOT OBSERVED: RabbitMQ nodes ${rabbit.join(', ')} (expected ${wantRabbit})`,
    ].join('; ');
  };
}

/** Every tracked daemon's pid on every host of the deployment: what a restart must change. */
async function daemonPids(ctx: ChaosContext, names: readonly string[]): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const h of ctx.dep.hosts)
    for (const d of names) {
      const pid = await ctx.host(h.name).daemonPid(d);
      if (pid !== undefined) out.set(`${d} on ${h.name}`, pid);
    }
  return out;
}

/** Scale and rolling scenarios (issue 5): the change under load, measured like a fault. */
export const SCALE_SCENARIOS: readonly Scenario[] = [
  {
    name: 'scale-add-under-load',
    needsLab: 'spare host',
    description:
      'a host joins every cluster under load (`stackha scale add`), the others’ peer lists updated',
    holdMs: 1000,
    inject: async (ctx) => {
      const at = Date.now();
      const r = await addHost(ctx);
      const target = recordOperation(ctx, {
        operation: 'scale add',
        host: r.host,
        seconds: r.seconds,
        phases: r.phases,
      });
      return { target, at, observe: observeAll(membershipIs(ctx)) };
    },
    heal: async () => {},
  },
  {
    name: 'scale-remove-under-load',
    needsLab: 'spare host',
    description:
      'the last host leaves every cluster under load (`stackha scale remove`); a 3-host deployment first grows by one',
    holdMs: 1000,
    prepare: async (ctx) => {
      if (removalCheck(ctx.dep, hostToRemove(ctx)).refusals.length > 0) {
        ctx.log('scale-remove-under-load: growing by one host first (before the load), so one can leave');
        await addHost(ctx);
      }
    },
    inject: async (ctx) => {
      const at = Date.now();
      const r = await scaleRemove(ctx.dep, hostToRemove(ctx), { log: ctx.log });
      ctx.setDeployment(r.deployment);
      const target = recordOperation(ctx, {
        operation: 'scale remove',
        host: r.host,
        seconds: r.seconds,
        phases: r.phases,
      });
      return { target, at, observe: observeAll(membershipIs(ctx)) };
    },
    heal: async () => {},
  },
  {
    name: 'rolling-restart-under-load',
    description:
      'every service restarted host by host under load (`stackha restart all`): drained, restarted, healthy, back',
    holdMs: 1000,
    queueKinds: true,
    inject: async (ctx) => {
      const watched = ['mariadb', 'rabbitmq', 'memcached', 'keystone'];
      const before = await daemonPids(ctx, watched);
      const at = Date.now();
      const r = await rollingRestart(ctx.dep, ['all'], { log: ctx.log }).catch((err: unknown) => {
        // Stopped on a host: the restart had begun, so the trial measures it as a fault from `at`.
        throw new InjectionFailed(
          err instanceof Error ? err.message : String(err),
          at,
          `restart all (failed after ${((Date.now() - at) / 1000).toFixed(1)} s)`,
        );
      });
      const target = recordOperation(ctx, {
        operation: 'restart all',
        host: undefined,
        seconds: r.seconds,
        phases: r.hosts.map((h) => ({ name: `${h.host}: ${h.services.join(', ')}`, seconds: h.seconds })),
      });
      return {
        target,
        at,
        observe: async () => {
          const after = await daemonPids(ctx, watched);
          const same = [...before].filter(([k, pid]) => after.get(k) === pid).map(([k]) => k);
          return [
            same.length === 0
              ? `all ${before.size} watched daemons have new pids`
              : `NOT OBSERVED: not restarted: ${same.join(', ')}`,
          ];
        },
      };
    },
    heal: async () => {},
  },
];

/**
 * The spec's test 2, "one or more API services are in a failed state", for the OpenStack tier: an API backend killed
 * on a host that does not hold the VIP, under its users' load. HAProxy drops it after its checks fail; requests it
 * had in flight are retried on another server (redispatch) when that is safe. Deploy restarts it.
 */
function apiBackendDies(service: string, daemon: string, lb: string, what: string): Scenario {
  return {
    name: `${daemon}-dies`,
    description: `kill -9 of ${daemon} on a host not holding the VIP, under ${what} load; HAProxy drops it`,
    requires: [service],
    inject: async (ctx) => {
      const hosts = hostsFor(ctx.dep, service);
      const holder = await vipHolder(ctx);
      const victim = hosts.find((h) => h.name !== holder) ?? hosts[0];
      if (!victim) throw new Error(`${service} is not deployed`);
      const gone = await kill(ctx, victim.name, daemon);
      return {
        target: `${daemon} on ${victim.name}`,
        at: lastKill(ctx),
        observe: observeAll(gone, serverDown(ctx, lb, victim.name)),
      };
    },
    heal: restartWhatDied,
  };
}

/** A Nova service that is not behind HAProxy (conductor, scheduler) killed on one host while servers boot. */
function novaServiceDies(daemon: 'nova-conductor' | 'nova-scheduler'): Scenario {
  // A scheduler lost mid-call fails the conductor's call, which puts the server in ERROR. A conductor lost mid-cast
  // loses the build it had taken (oslo.messaging acknowledges an RPC before running it; Nova retries no cast).
  const losesBuilds = daemon === 'nova-conductor';
  return {
    name: `${daemon}-dies`,
    description: `kill -9 of ${daemon} on one host while servers boot: each ends ACTIVE or in a clear ERROR, none stuck in BUILD${losesBuilds ? ' except a build the killed conductor had taken (never scheduled, created before the kill: counted as lost in flight)' : ''}`,
    ...(losesBuilds ? { losesInFlightBuilds: true } : {}),
    requires: ['nova', 'nova-compute', 'glance'],
    serverStreams: 2,
    holdMs: 20_000,
    inject: async (ctx) => {
      const hosts = hostsFor(ctx.dep, 'nova');
      const victim = hosts[0];
      if (!victim) throw new Error('nova is not deployed');
      const gone = await kill(ctx, victim.name, daemon);
      return { target: `${daemon} on ${victim.name}`, at: lastKill(ctx), observe: observeAll(gone) };
    },
    heal: restartWhatDied,
  };
}

/**
 * The chaos tenant (lab namespace on a Neutron port, behind the lab's HA router), standing on a host where the
 * router is not active: the crash of the router's primary must not take the tenant's own host.
 */
async function ensureChaosTenant(ctx: ChaosContext): Promise<TenantNetwork> {
  const lab = labOf(ctx);
  const net = await ensureTenantNetwork(lab, ctx.dep);
  const primary = await activeRouterHost(lab, net.routerId);
  const existing = readTenant(lab.name, CHAOS_TENANT);
  if (existing && existing.host !== primary) return net;
  if (existing) {
    ctx.log(`chaos tenant on ${existing.host}, where the router is active: moving it`);
    await tenantDown(lab, ctx.dep, CHAOS_TENANT);
  }
  const host = hostsFor(ctx.dep, 'neutron-l3-agent').find((h) => h.name !== primary)?.name;
  if (!host) throw new Error('no host apart from the router primary to stand the chaos tenant on');
  const t = await tenantUp(lab, ctx.dep, { name: CHAOS_TENANT, host });
  ctx.log(`chaos tenant up on ${t.host} (${t.leasedIp}) in ${t.seconds.toFixed(1)} s`);
  return net;
}

/** A tenant scenario's prepare: the chaos tenant up, its router and network kept for the injection. */
async function prepareChaosTenant(ctx: ChaosContext): Promise<void> {
  chaosNetworks.set(ctx.name, await ensureChaosTenant(ctx));
}

/** The chaos tenant's network and router, found by prepareChaosTenant. */
function chaosNetwork(ctx: ChaosContext): TenantNetwork {
  const net = chaosNetworks.get(ctx.name);
  if (!net) throw new Error('no chaos tenant network (prepare did not run)');
  return net;
}

/** The chaos tenant's router (found by prepareChaosTenant) and the host where it is active now. */
async function chaosRouterPrimary(ctx: ChaosContext): Promise<{ routerId: string; primary: string }> {
  const { routerId } = chaosNetwork(ctx);
  return { routerId, primary: await activeRouterHost(labOf(ctx), routerId, { timeoutMs: 60_000 }) };
}

/**
 * The DHCP host a DHCP fault takes down: never the tenant's own host (its probe must go on), and not the router's
 * primary when another will do (the router's failover is router-host-crash's subject). Pure.
 */
export function dhcpVictim(dhcpHosts: readonly string[], tenantHost: string, routerPrimary: string): string {
  const candidates = dhcpHosts.filter((h) => h !== tenantHost);
  const victim = candidates.find((h) => h !== routerPrimary) ?? candidates[0];
  if (!victim || dhcpHosts.length < 2)
    throw new Error(
      `the tenant network is served by DHCP agents on ${dhcpHosts.join(', ') || 'no host'}: a DHCP fault needs two, one of them off the tenant's host (${tenantHost})`,
    );
  return victim;
}

/**
 * Observes new ports, one per host in `hosts` plugged at once while `down` is off, each going ACTIVE (its host's
 * agent bound it over RPC) and leasing its address from a dnsmasq; the lab tenants `lease1`.. stand for the servers.
 */
function newPortsLease(ctx: ChaosContext, hosts: readonly string[], down: string): () => Promise<string[]> {
  return async () => {
    const lab = labOf(ctx);
    return Promise.all(
      hosts.map(async (host, i) => {
        const name = `lease${i + 1}`;
        try {
          const t = await tenantUp(lab, ctx.dep, { name, host, network: chaosNetwork(ctx) });
          return `a new port on ${host} ACTIVE, leased ${t.leasedIp} in ${t.seconds.toFixed(1)} s with ${down} down`;
        } catch (err) {
          return `NOT OBSERVED: a new port on ${host} did not go ACTIVE with a lease while ${down} was down: ${err instanceof Error ? err.message : String(err)}`;
        } finally {
          await tenantDown(lab, ctx.dep, name).catch((err: unknown) =>
            ctx.log(`lab tenant ${name} not removed: ${err instanceof Error ? err.message : String(err)}`),
          );
        }
      }),
    );
  };
}

/** Observes another L3 agent's keepalived taking the router's primary role from `from`. */
function routerMoved(ctx: ChaosContext, routerId: string, from: string): () => Promise<string> {
  const at = Date.now();
  return async () => {
    const to = await activeRouterHost(labOf(ctx), routerId, { timeoutMs: 30_000, except: from }).catch(
      () => undefined,
    );
    return to
      ? `router primary moved from ${from} to ${to} ${secondsSince(at)} after the fault`
      : `NOT OBSERVED: no other host became the router's primary within 30 s`;
  };
}

/** Observes that the router's primary stayed on `host` (the fault is not meant to move it). */
function routerStayed(ctx: ChaosContext, routerId: string, host: string): () => Promise<string> {
  return async () => {
    const now = await activeRouterHost(labOf(ctx), routerId, { timeoutMs: 10_000 }).catch(() => undefined);
    return now === host
      ? `router primary still on ${host}: its keepalived outlived the agent`
      : `NOT OBSERVED: router primary ${now ? `moved to ${now}` : 'on no single host'}, expected to stay on ${host}`;
  };
}

export const OPENSTACK_SCENARIOS: readonly Scenario[] = [
  apiBackendDies('nova', 'nova-api', 'nova_api', 'Nova API and server boot'),
  apiBackendDies('placement', 'placement-api', 'placement_api', 'Placement read'),
  apiBackendDies('neutron', 'neutron-server', 'neutron_server', 'Neutron API read'),
  apiBackendDies('glance', 'glance-api', 'glance_api', 'image upload and download'),
  apiBackendDies('swift-proxy', 'swift-proxy-server', 'swift_api', 'object PUT and GET'),
  novaServiceDies('nova-conductor'),
  novaServiceDies('nova-scheduler'),
  {
    name: 'storage-host-crash',
    needsLab: 'crash',
    description:
      'a Swift storage host not holding the VIP loses power while objects are written; after power-on every acknowledged object reads back and replication restores every replica (timed)',
    requires: ['swift-storage', 'swift-proxy'],
    // Its subject is Swift. A lab host is every role at once, so the crash also takes a conductor, a scheduler
    // and a compute node; a boot in flight there can stay in BUILD (seen once in CI: Nova acknowledges the
    // RPC cast before acting on it and nothing retries it). The conductor and scheduler scenarios own that.
    serverStreams: 0,
    measureReplicas: true,
    inject: async (ctx) => {
      const holder = await vipHolder(ctx);
      const victim = hostsFor(ctx.dep, 'swift-storage').find((h) => h.name !== holder);
      if (!victim) throw new Error('no storage host apart from the VIP holder');
      const at = Date.now();
      await crashHost(labOf(ctx), victim.name);
      crashed.set(ctx.name, victim.name);
      return { target: `host ${victim.name}`, at, observe: observeAll(hostDown(ctx, victim.name, false)) };
    },
    heal: powerOnAndRedeploy,
  },
  {
    name: 'l3-agent-dies',
    needsLab: 'tenant',
    description:
      "kill -9 of the L3 agent beside the lab tenant's active HA router while the tenant pings the outside: the router's keepalived and the kernel's forwarding are not the agent's, so the data plane should not notice; the restarted agent adopts the router without a second primary",
    requires: ['neutron-l3-agent'],
    tenantProbe: true,
    prepare: prepareChaosTenant,
    inject: async (ctx) => {
      const { routerId, primary: host } = await chaosRouterPrimary(ctx);
      const gone = await kill(ctx, host, 'neutron-l3-agent');
      return {
        target: `neutron-l3-agent on ${host} (router primary)`,
        at: lastKill(ctx),
        observe: observeAll(gone, routerStayed(ctx, routerId, host)),
      };
    },
    heal: restartWhatDied,
  },
  {
    name: 'rabbitmq-dies-during-ports',
    needsLab: 'tenant',
    description:
      'kill -9 of the RabbitMQ node leading the chaos queue, then, with it down, a new port plugged on every host at once: each must go ACTIVE and lease its address (the agents and neutron-server reconnect to the other brokers), none stuck DOWN or BUILD',
    requires: ['neutron-linuxbridge-agent', 'neutron-dhcp-agent', 'rabbitmq'],
    serverStreams: 0,
    tenantProbe: true,
    prepare: prepareChaosTenant,
    inject: async (ctx) => {
      const leader = await queueLeader(ctx);
      const gone = await kill(ctx, leader, 'rabbitmq');
      const hosts = hostsFor(ctx.dep, 'neutron-linuxbridge-agent').map((h) => h.name);
      return {
        target: `rabbitmq on ${leader}`,
        at: lastKill(ctx),
        observe: async () => [
          ...(await observeAll(gone)()),
          ...(await newPortsLease(ctx, hosts, `rabbitmq on ${leader}`)()),
        ],
      };
    },
    heal: restartWhatDied,
  },
  {
    name: 'dhcp-host-crash',
    needsLab: 'crash',
    description:
      "a host whose DHCP agent serves the lab tenant's network loses power (not the tenant's host, and not the router's primary when another will do); a new port plugged meanwhile still leases its address from the other agent's dnsmasq; powered on and redeployed",
    requires: ['neutron-dhcp-agent', 'neutron-l3-agent'],
    serverStreams: 0,
    tenantProbe: true,
    // Plugging a port and leasing its address takes tens of seconds on a busy machine: the observation sets the hold.
    holdMs: 20_000,
    prepare: prepareChaosTenant,
    inject: async (ctx) => {
      const lab = labOf(ctx);
      const tenant = readTenant(lab.name, CHAOS_TENANT);
      if (!tenant) throw new Error('no chaos tenant (prepare did not run)');
      const dhcp = await dhcpHostsOf(lab, ctx.dep, chaosNetwork(ctx).networkId);
      const { primary } = await chaosRouterPrimary(ctx);
      const victim = dhcpVictim(dhcp, tenant.host, primary);
      const at = Date.now();
      await crashHost(lab, victim);
      crashed.set(ctx.name, victim);
      return {
        target: `host ${victim} (DHCP agent of the tenant network${victim === primary ? ', router primary' : ''})`,
        at,
        observe: async () => [
          ...(await observeAll(hostDown(ctx, victim, false))()),
          ...(await newPortsLease(ctx, [tenant.host], `host ${victim}`)()),
        ],
      };
    },
    heal: powerOnAndRedeploy,
  },
  {
    name: 'router-host-crash',
    needsLab: 'crash',
    description:
      "the host where the lab tenant's HA router is active loses power while the tenant pings the outside through it and objects are written; a standby's keepalived takes over (the tenant's outage is timed) and, after power-on, the router has one primary again and Swift every replica",
    requires: ['neutron-l3-agent', 'swift-storage', 'swift-proxy'],
    // The host is every role at once (see storage-host-crash): a boot in flight there is not this scenario's subject.
    serverStreams: 0,
    measureReplicas: true,
    tenantProbe: true,
    prepare: prepareChaosTenant,
    inject: async (ctx) => {
      const { routerId, primary: victim } = await chaosRouterPrimary(ctx);
      const at = Date.now();
      await crashHost(labOf(ctx), victim);
      crashed.set(ctx.name, victim);
      return {
        target: `host ${victim} (router primary)`,
        at,
        observe: observeAll(routerMoved(ctx, routerId, victim), hostDown(ctx, victim, false)),
      };
    },
    heal: powerOnAndRedeploy,
  },
];

export const SCENARIOS: readonly Scenario[] = [
  {
    name: 'baseline',
    description: 'no fault: the figures every other scenario is compared with',
    inject: async () => ({ target: 'nothing' }),
    heal: async () => {},
  },
  {
    name: 'galera-writer-dies',
    description: 'kill -9 of the Galera node HAProxy sends writes to; restarted by deploy (IST)',
    inject: async (ctx) => {
      const w = await galeraWriter(ctx);
      const holder = await vipHolder(ctx);
      const gone = await kill(ctx, w, 'mariadb');
      return {
        target: `mariadb on ${w}`,
        at: lastKill(ctx),
        observe: observeAll(gone, writerMoved(ctx, w, [holder])),
      };
    },
    heal: restartWhatDied,
  },
  {
    name: 'galera-nonwriter-dies',
    description: 'kill -9 of a Galera node that takes no writes',
    inject: async (ctx) => {
      const w = await galeraWriter(ctx);
      const other = hostsFor(ctx.dep, 'mariadb').find((h) => h.name !== w);
      if (!other) throw new Error('no non-writer Galera node');
      const gone = await kill(ctx, other.name, 'mariadb');
      return { target: `mariadb on ${other.name}`, at: lastKill(ctx), observe: observeAll(gone) };
    },
    heal: restartWhatDied,
  },
  {
    name: 'rabbitmq-leader-dies',
    description: 'kill -9 of the RabbitMQ node leading the queue under load',
    queueKinds: true,
    inject: async (ctx) => {
      const leader = await queueLeader(ctx);
      const gone = await kill(ctx, leader, 'rabbitmq');
      return {
        target: `rabbitmq on ${leader}`,
        at: lastKill(ctx),
        observe: observeAll(gone, leaderMoved(ctx, leader)),
      };
    },
    heal: restartWhatDied,
  },
  {
    name: 'haproxy-vip-holder-dies',
    description: 'kill -9 of HAProxy on the host holding the VIP: keepalived moves the VIP',
    inject: async (ctx) => {
      const holder = await vipHolder(ctx);
      const gone = await kill(ctx, holder, 'haproxy');
      return {
        target: `haproxy on ${holder}`,
        at: lastKill(ctx),
        observe: observeAll(gone, vipMoved(ctx, holder)),
      };
    },
    heal: restartWhatDied,
  },
  {
    name: 'vip-holder-host-crash',
    needsLab: 'crash',
    description: 'the VIP holder loses power: every process killed, link down; powered on and redeployed',
    inject: async (ctx) => {
      const holder = await vipHolder(ctx);
      const at = Date.now();
      await crashHost(labOf(ctx), holder);
      crashed.set(ctx.name, holder);
      return {
        target: `host ${holder}`,
        at,
        observe: observeAll(hostDown(ctx, holder, false), vipMoved(ctx, holder)),
      };
    },
    heal: powerOnAndRedeploy,
  },
  {
    name: 'host-partition',
    needsLab: 'partition',
    description: 'the VIP holder is cut off the network for 30 s, then returns',
    holdMs: 30_000,
    queueKinds: true,
    inject: async (ctx) => {
      const holder = await vipHolder(ctx);
      const at = Date.now();
      await setLink(labOf(ctx), holder, false);
      crashed.set(ctx.name, holder);
      return {
        target: `host ${holder} cut off`,
        at,
        observe: observeAll(hostDown(ctx, holder, true), vipMoved(ctx, holder)),
      };
    },
    heal: async (ctx) => {
      const host = crashed.get(ctx.name);
      if (host) await setLink(labOf(ctx), host, true);
      crashed.delete(ctx.name);
      // pause_minority resumes the cut-off RabbitMQ node by itself; deploy restarts anything that died meanwhile.
      await sleep(5000);
      await ctx.redeploy();
    },
  },
  {
    name: 'galera-power-loss',
    description: 'every Galera node killed at once; `stackha recover galera` bootstraps the most advanced',
    holdMs: 5000,
    inject: async (ctx) => {
      const dbs = hostsFor(ctx.dep, 'mariadb');
      const at = Date.now();
      const gone = await Promise.all(dbs.map((h) => kill(ctx, h.name, 'mariadb')));
      return { target: `mariadb on ${dbs.map((h) => h.name).join(', ')}`, at, observe: observeAll(...gone) };
    },
    heal: async (ctx) => {
      // Wait until every node is really gone before recovering their positions.
      await waitFor(
        'every mariadbd to exit',
        async () => {
          for (const h of hostsFor(ctx.dep, 'mariadb'))
            if (await ctx.host(h.name).daemonPid('mariadb')) return undefined;
          return true;
        },
        { timeoutMs: 30_000 },
      );
      const { recoverGalera } = await import('../ops/recover.js');
      const r = await recoverGalera(ctx.dep, ctx.conn.hosts, { log: ctx.log });
      ctx.log(`recover galera: bootstrapped ${r.chosen} (${r.reason})`);
      await ctx.redeploy();
    },
  },
  {
    name: 'keystone-dies-on-one-host',
    description:
      'kill -9 of Keystone (uwsgi and its workers) on a host not holding the VIP; HAProxy drops it, deploy restarts it',
    inject: async (ctx) => {
      const hosts = keystoneHosts(ctx.dep);
      if (hosts.length === 0) throw new Error('Keystone is not deployed (enable_keystone)');
      const holder = await vipHolder(ctx);
      const victim = hosts.find((h) => h.name !== holder) ?? hosts[0];
      if (!victim) throw new Error('no Keystone host');
      const gone = await kill(ctx, victim.name, 'keystone');
      return {
        target: `keystone on ${victim.name}`,
        at: lastKill(ctx),
        observe: observeAll(gone, serverDown(ctx, KEYSTONE_LB_NAME, victim.name)),
      };
    },
    heal: restartWhatDied,
  },
  {
    name: 'killed-service-rejoins',
    description:
      'a RabbitMQ node that does not lead the queue and a memcached are killed, restarted, and rejoin',
    inject: async (ctx) => {
      const leader = await queueLeader(ctx);
      const other = hostsFor(ctx.dep, 'rabbitmq').find((h) => h.name !== leader);
      if (!other) throw new Error('no non-leader RabbitMQ node');
      const mc = hostsFor(ctx.dep, 'memcached').find((h) => h.name !== other.name) ?? other;
      const at = Date.now();
      const rabbitGone = await kill(ctx, other.name, 'rabbitmq');
      const mcGone = await kill(ctx, mc.name, 'memcached');
      return {
        target: `rabbitmq on ${other.name}, memcached on ${mc.name}`,
        at,
        observe: observeAll(rabbitGone, mcGone),
      };
    },
    heal: restartWhatDied,
  },
  ...OPENSTACK_SCENARIOS,
  // Issue 5, last: growing, shrinking back and restarting leave the deployment as they found it.
  ...SCALE_SCENARIOS,
];

/** Hosts a scenario took down, by lab, so its heal can bring them back. */
const crashed = new Map<string, string>();
/** The chaos tenant's network and router, by lab, found by a scenario's prepare. */
const chaosNetworks = new Map<string, TenantNetwork>();

export function scenarioByName(name: string): Scenario {
  const s = SCENARIOS.find((x) => x.name === name);
  if (!s) throw new Error(`no scenario ${name}; \`stackha chaos list\` shows them`);
  return s;
}
