// `stackha restart SERVICE...|all`: rolling restarts on demand, one host at a time, each host drained from every
// HAProxy backend first and put back once healthy. See docs/scale.md.
import { galeraHealthAgent, loadBalancedServices, probeApiAgent } from '../deploy/deploy.js';
import {
  type LbContext,
  backendsOf,
  drainServer,
  frontedDaemon,
  lbStates,
  undrainServer,
  waitServersUp,
} from '../deploy/drain.js';
import { connect } from '../hosts/connect.js';
import type { Host } from '../hosts/host.js';
import type { Deployment, HostSpec } from '../model.js';
import { UWSGI_STOP_SIGNAL, apiHealthy, waitApiReady } from '../services/api/framework.js';
import { type Applied, readApplied, wantedState } from '../services/files.js';
import {
  classifyStateTransfer,
  errorLogMark,
  errorLogSince,
  galeraHealthy,
  galeraWantedState,
  renderGaleraHealth,
  startGaleraNode,
  waitSynced,
} from '../services/galera.js';
import { HAPROXY_STATS_PORT, activeServer, haproxySocket, renderHaproxy } from '../services/haproxy.js';
import { holdsVip, releaseVip, renderKeepalived } from '../services/keepalived.js';
import { KEYSTONE, keystoneHosts } from '../services/keystone.js';
import { memcachedReady, renderMemcached } from '../services/memcached.js';
import { PROBE_API_PORT, probeApiHosts, renderProbeApi } from '../services/probe-api.js';
import { rabbitNodeState, renderRabbitmq, restartRabbitNode } from '../services/rabbitmq.js';
import type { RenderTarget, ServiceUnit } from '../services/types.js';
import { hostsFor } from '../topology.js';
import { sleep, waitFor } from '../util/wait.js';

/** Services that restart host by host behind a drain, in the order one host restarts them. */
export const BACKEND_SERVICES = [
  'memcached',
  'mariadb',
  'galera-health',
  'rabbitmq',
  'probe-api',
  'keystone',
] as const;
/** The load balancer tier, restarted after every backend, one host at a time. */
export const LB_SERVICES = ['haproxy', 'keepalived'] as const;
export const RESTARTABLE = [...BACKEND_SERVICES, ...LB_SERVICES] as const;
export type Restartable = (typeof RESTARTABLE)[number];

export function isRestartable(s: string): s is Restartable {
  return (RESTARTABLE as readonly string[]).includes(s);
}

/** The hosts a service runs on. */
export function serviceHosts(dep: Deployment, service: Restartable): HostSpec[] {
  switch (service) {
    case 'galera-health':
      return hostsFor(dep, 'mariadb');
    case 'probe-api':
      return probeApiHosts(dep);
    case 'keystone':
      return keystoneHosts(dep);
    default:
      return hostsFor(dep, service);
  }
}

/**
 * The services of a request in restart order; `all` is every deployed service. Galera's health endpoint goes with
 * its node: restarting either takes the node out of HAProxy, so both restart inside one drain.
 */
export function expandServices(dep: Deployment, requested: readonly string[]): Restartable[] {
  const wanted = new Set<string>(requested.includes('all') ? RESTARTABLE : requested);
  if (wanted.has('mariadb')) wanted.add('galera-health');
  for (const s of wanted)
    if (!isRestartable(s)) throw new Error(`cannot restart ${s}: one of ${RESTARTABLE.join(', ')}, all`);
  return RESTARTABLE.filter((s) => wanted.has(s) && serviceHosts(dep, s).length > 0);
}

/**
 * The order hosts restart in: inventory order, except that the Galera writer goes last (its writes move once, to the
 * first backup, and come back when it is healthy) and, when it is to be restarted, the VIP holder after it.
 */
export function restartOrder(
  hosts: readonly HostSpec[],
  writer: string | undefined,
  vipHolder: string | undefined,
): HostSpec[] {
  const rank = (h: HostSpec): number => (h.name === vipHolder ? 2 : 0) + (h.name === writer ? 1 : 0);
  return [...hosts].sort((a, b) => rank(a) - rank(b));
}

export interface RestartOptions {
  /** Only these hosts (default: every host of each service). */
  readonly hosts?: readonly string[];
  /**
   * Restart keepalived on the VIP holder too. Off by default: that moves the VIP, which resets every client
   * connection through it (they reconnect), so the holder's keepalived is left running. A reload is no way out:
   * SIGHUP re-elects the master, and a higher-priority backup then takes the VIP.
   */
  readonly moveVip?: boolean;
  readonly log?: (message: string) => void;
}

export interface HostRestart {
  readonly host: string;
  readonly services: readonly string[];
  readonly seconds: number;
  /** Draining before the restart and putting back after, included in `seconds`. */
  readonly drainSeconds: number;
}

export interface RestartReport {
  readonly services: readonly Restartable[];
  readonly hosts: readonly HostRestart[];
  readonly seconds: number;
}

interface Rc {
  readonly dep: Deployment;
  readonly hosts: ReadonlyMap<string, Host>;
  readonly roots: ReadonlyMap<string, string>;
  readonly log: (m: string) => void;
}

const tgt = (rc: Rc, spec: HostSpec): RenderTarget => ({ host: spec, root: rc.roots.get(spec.name) ?? '' });
const hostOf = (rc: Rc, name: string): Host => {
  const h = rc.hosts.get(name);
  if (!h) throw new Error(`no connection to host ${name}`);
  return h;
};

/** What deploy would apply to a host for a service: a restart must not smuggle in an undeployed change. */
function wanted(rc: Rc, service: Restartable, t: RenderTarget): Applied {
  const dep = rc.dep;
  switch (service) {
    case 'memcached':
      return wantedState(service, renderMemcached(dep, t));
    case 'mariadb':
      return galeraWantedState(dep, t);
    case 'galera-health':
      return wantedState(service, renderGaleraHealth(dep, t, galeraHealthAgent()));
    case 'rabbitmq':
      return rabbitNodeState(renderRabbitmq(dep, t));
    case 'probe-api':
      return wantedState(service, renderProbeApi(t, probeApiAgent()));
    case 'keystone':
      return wantedState(service, KEYSTONE.render(dep, t));
    case 'haproxy':
      return wantedState(service, renderHaproxy(dep, t, loadBalancedServices(dep)));
    case 'keepalived':
      return wantedState(service, renderKeepalived(dep, t));
  }
}

/** Hosts whose service runs a config other than the inventory's (`stackha deploy` would change it). */
export async function pendingChanges(
  rc: Rc,
  services: readonly Restartable[],
  only?: readonly string[],
): Promise<string[]> {
  const out: string[] = [];
  for (const service of services) {
    for (const spec of serviceHosts(rc.dep, service)) {
      if (only && !only.includes(spec.name)) continue;
      const applied = await readApplied(hostOf(rc, spec.name), service);
      const want = wanted(rc, service, tgt(rc, spec));
      if (applied?.config !== want.config || applied?.daemons !== want.daemons)
        out.push(`${service} on ${spec.name}`);
    }
  }
  return out;
}

async function restartDaemon(
  host: Host,
  unit: ServiceUnit,
  opts: { signal?: NodeJS.Signals; timeoutMs?: number } = {},
): Promise<void> {
  for (const d of unit.daemons) {
    await host.stopDaemon(d.name, {
      timeoutMs: opts.timeoutMs ?? 20_000,
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    await host.startDaemon(d);
  }
}

/** Restarts one backend service on one (already drained) host and waits until it serves again. */
async function restartBackend(rc: Rc, service: Restartable, spec: HostSpec): Promise<void> {
  const host = hostOf(rc, spec.name);
  const t = tgt(rc, spec);
  const started = Date.now();
  switch (service) {
    case 'memcached':
      await restartDaemon(host, renderMemcached(rc.dep, t));
      await memcachedReady(host);
      break;
    case 'mariadb': {
      // A clean shutdown leaves the position in grastate.dat: the node rejoins by IST (or needs no transfer).
      await host.stopDaemon('mariadb', { timeoutMs: 120_000 });
      const mark = await errorLogMark(host);
      await startGaleraNode(host, t);
      await waitSynced(host, t.root);
      rc.log(
        `mariadb on ${spec.name}: Synced (state transfer: ${classifyStateTransfer(await errorLogSince(host, mark))})`,
      );
      break;
    }
    case 'galera-health':
      await restartDaemon(host, renderGaleraHealth(rc.dep, t, galeraHealthAgent()));
      await waitFor(
        `Galera health endpoint on ${spec.name}`,
        async () => ((await galeraHealthy(host)) ? true : undefined),
        {
          timeoutMs: 60_000,
          intervalMs: 300,
        },
      );
      break;
    case 'rabbitmq':
      await restartRabbitNode(rc, host, t);
      break;
    case 'probe-api':
      await restartDaemon(host, renderProbeApi(t, probeApiAgent()));
      await waitFor(
        `probe API on ${spec.name}`,
        async () => ((await apiHealthy(host, PROBE_API_PORT, '/healthcheck')) ? true : undefined),
        { timeoutMs: 30_000, intervalMs: 200 },
      );
      break;
    case 'keystone': {
      const unit = KEYSTONE.render(rc.dep, t);
      await restartDaemon(host, unit, { signal: UWSGI_STOP_SIGNAL });
      await waitApiReady(host, KEYSTONE, unit.daemons[0]?.logFile ?? '');
      break;
    }
    default:
      throw new Error(`${service} is not a backend service`);
  }
  rc.log(
    `${service} on ${spec.name}: restarted, healthy after ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
}

/** The HAProxy worker pid (`show info`): a reload replaces it. */
async function haproxyWorker(host: Host, root: string): Promise<string | undefined> {
  const info = await haproxySocket(host, root, 'show info');
  return /^Pid: (\d+)$/m.exec(info ?? '')?.[1];
}

async function vipHolderOf(rc: Rc): Promise<string | undefined> {
  const holders: string[] = [];
  for (const s of hostsFor(rc.dep, 'keepalived'))
    if (await holdsVip(hostOf(rc, s.name), rc.dep)) holders.push(s.name);
  return holders.length === 1 ? holders[0] : undefined;
}

/** The Galera node the load balancers send writes to (the one most of them agree on). */
async function currentWriter(lb: LbContext): Promise<string | undefined> {
  const votes = new Map<string, number>();
  for (const states of (await lbStates(lb)).values()) {
    const w = activeServer(states, 'mariadb');
    if (w) votes.set(w, (votes.get(w) ?? 0) + 1);
  }
  return [...votes].sort((a, b) => b[1] - a[1])[0]?.[0];
}

/**
 * Restarts services host by host under load: for each host (the Galera writer last), drain it from every HAProxy
 * backend its restarting services serve in, restart them in dependency order, wait until each is healthy (Galera
 * Synced, RabbitMQ back in every quorum queue), put it back, wait until every load balancer has it UP, next host.
 * Then HAProxy (a seamless reload: established sessions stay on the old worker) and keepalived, one host at a time.
 * Refuses when the deployment has changes `stackha deploy` has not applied: a restart never applies a new config.
 */
export async function rollingRestart(
  dep: Deployment,
  requested: readonly string[],
  opts: RestartOptions = {},
): Promise<RestartReport> {
  const log = opts.log ?? (() => {});
  const started = Date.now();
  const services = expandServices(dep, requested);
  const conn = connect(dep);
  const rc: Rc = { dep, hosts: conn.hosts, roots: conn.roots, log };
  const lb: LbContext = rc;
  for (const name of opts.hosts ?? [])
    if (!dep.hosts.some((h) => h.name === name)) throw new Error(`${name} is not a host of the inventory`);
  const pending = await pendingChanges(rc, services, opts.hosts);
  if (pending.length > 0)
    throw new Error(
      `not restarting: the inventory has changes not yet deployed (${pending.join(', ')}); \`stackha deploy\` applies them, restarting what they touch host by host`,
    );
  const selected = (s: HostSpec) => !opts.hosts || opts.hosts.includes(s.name);
  const report: HostRestart[] = [];

  const backends = services.filter((s) => (BACKEND_SERVICES as readonly string[]).includes(s));
  if (backends.length > 0) {
    const hosts = dep.hosts.filter(
      (h) => selected(h) && backends.some((s) => serviceHosts(dep, s).some((x) => x.name === h.name)),
    );
    const writer =
      backends.includes('mariadb') || backends.includes('galera-health')
        ? await currentWriter(lb)
        : undefined;
    for (const spec of restartOrder(hosts, writer, undefined)) {
      const hostStarted = Date.now();
      const mine = backends.filter((s) => serviceHosts(dep, s).some((x) => x.name === spec.name));
      const fronted = mine.flatMap((s) => {
        const f = frontedDaemon(dep, s);
        return f ? [f] : [];
      });
      const lbBackends = backendsOf(dep, mine);
      log(
        `${spec.name}: restarting ${mine.join(', ')}${spec.name === writer ? ' (the Galera writer: last)' : ''}`,
      );
      const drained = await drainServer(
        lb,
        lbBackends,
        spec.name,
        Math.max(0, ...fronted.map((f) => f.drainMs)),
      );
      for (const service of mine) await restartBackend(rc, service, spec);
      const undrainStarted = Date.now();
      const host = hostOf(rc, spec.name);
      await undrainServer(lb, lbBackends, spec.name, async () => {
        for (const f of fronted) if (!(await f.healthy(host))) return false;
        return true;
      });
      report.push({
        host: spec.name,
        services: mine,
        seconds: (Date.now() - hostStarted) / 1000,
        drainSeconds: drained.seconds + (Date.now() - undrainStarted) / 1000,
      });
    }
  }

  const holder = services.some((s) => (LB_SERVICES as readonly string[]).includes(s))
    ? await vipHolderOf(rc)
    : undefined;
  if (services.includes('haproxy')) {
    for (const spec of restartOrder(hostsFor(dep, 'haproxy').filter(selected), undefined, holder)) {
      const t0 = Date.now();
      const host = hostOf(rc, spec.name);
      const root = rc.roots.get(spec.name) ?? '';
      const before = await haproxyWorker(host, root);
      // Master-worker: SIGUSR2 re-reads the config into a new worker; the old one keeps its established sessions.
      await host.signalDaemon('haproxy', 'SIGUSR2');
      await waitFor(
        `a new HAProxy worker on ${spec.name}`,
        async () => {
          const now = await haproxyWorker(host, root);
          return now !== undefined &&
            now !== before &&
            (await host.tcpConnect(host.address, HAPROXY_STATS_PORT, 1000))
            ? true
            : undefined;
        },
        { timeoutMs: 30_000, intervalMs: 200 },
      );
      // The new worker starts its checks afresh: the next host reloads only once this one sees every server UP.
      await waitServersUp(rc, `every load balancer to see every server UP after ${spec.name}'s reload`);
      log(`haproxy on ${spec.name}: reloaded (new worker), ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      report.push({
        host: spec.name,
        services: ['haproxy'],
        seconds: (Date.now() - t0) / 1000,
        drainSeconds: 0,
      });
    }
  }
  if (services.includes('keepalived')) {
    const advertMs = dep.tuning.keepalived.advertIntSec * 1000;
    for (const spec of restartOrder(hostsFor(dep, 'keepalived').filter(selected), undefined, holder)) {
      const t0 = Date.now();
      const host = hostOf(rc, spec.name);
      if (spec.name === holder && !opts.moveVip) {
        // Restarting it moves the VIP; even a reload (SIGHUP) re-elects the master, which moves the VIP to a
        // higher-priority host if there is one. Either resets every client connection through the VIP.
        log(
          `keepalived on ${spec.name}: holds the VIP: left running (--move-vip restarts it, moving the VIP)`,
        );
        report.push({
          host: spec.name,
          services: ['keepalived (VIP holder: left running)'],
          seconds: 0,
          drainSeconds: 0,
        });
        continue;
      }
      const unit = renderKeepalived(dep, tgt(rc, spec));
      await host.stopDaemon('keepalived', { timeoutMs: 20_000 });
      // A stopped keepalived removes the VIP; a killed one would have left it behind.
      await releaseVip(host, dep);
      for (const d of unit.daemons) await host.startDaemon(d);
      log(`keepalived on ${spec.name}: restarted`);
      // A few adverts: the restarted instance has heard the master (or, for the old holder, a new master took over).
      await sleep(Math.max(1000, advertMs * 5));
      await waitFor(
        'exactly one VIP holder',
        async () => ((await vipHolderOf(rc)) !== undefined ? true : undefined),
        { timeoutMs: 30_000, intervalMs: 200 },
      );
      report.push({
        host: spec.name,
        services: ['keepalived'],
        seconds: (Date.now() - t0) / 1000,
        drainSeconds: 0,
      });
    }
  }
  return { services, hosts: report, seconds: (Date.now() - started) / 1000 };
}

export function formatRestartReport(r: RestartReport): string {
  const lines = [`restarted ${r.services.join(', ')} in ${r.seconds.toFixed(1)} s`];
  for (const h of r.hosts)
    lines.push(
      `  ${h.host.padEnd(8)} ${h.seconds.toFixed(1).padStart(6)} s  ${h.services.join(', ')}${h.drainSeconds > 0 ? ` (drain and return ${h.drainSeconds.toFixed(1)} s)` : ''}`,
    );
  return lines.join('\n');
}
