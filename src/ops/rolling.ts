// `stackha restart SERVICE...|all`: rolling restarts on demand, one host at a time, each host drained from every
// HAProxy backend first and put back once healthy. Every service says how it restarts on a host in its declaration
// (src/services/contract.ts); this module only orders and drains. See docs/scale.md.
import { type Fronted, backendsOf, drainServer, frontedDaemon, undrainServer } from '../deploy/drain.js';
import { type ConnectOptions, type Connection, connect } from '../hosts/connect.js';
import type { Deployment, HostSpec } from '../model.js';
import type { HostsContext, ServiceDeclaration } from '../services/contract.js';
import { readApplied } from '../services/files.js';
import { activeServer, lbStates } from '../services/haproxy/haproxy.js';
import { vipHolders } from '../services/keepalived/keepalived.js';
import { SERVICES, deployedServices } from '../services/registry.js';
import { hostIn, targetIn } from '../services/types.js';
import { hostsFor } from '../topology.js';

/** Services that can be restarted, in the order one host restarts them. */
export function restartableServices(dep: Deployment): ServiceDeclaration[] {
  return deployedServices(dep).filter((s) => s.restartHost !== undefined);
}

/** The names `stackha restart` takes. */
export const RESTARTABLE: readonly string[] = SERVICES.filter((s) => s.restartHost !== undefined).map(
  (s) => s.name,
);

/** The services of a request in restart order; `all` is every deployed service that can restart. */
export function expandServices(dep: Deployment, requested: readonly string[]): ServiceDeclaration[] {
  const wanted = new Set<string>(requested.includes('all') ? RESTARTABLE : requested);
  for (const s of wanted)
    if (!RESTARTABLE.includes(s))
      throw new Error(`cannot restart ${s}: one of ${RESTARTABLE.join(', ')}, all`);
  return restartableServices(dep).filter((s) => wanted.has(s.name));
}

const isBackend = (s: ServiceDeclaration): boolean => s.tier === 'infra' || s.tier === 'api';

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
  /** How connect() reaches SSH hosts (the CLI's --known-hosts, --accept-new-host-keys). */
  readonly connectOptions?: ConnectOptions;
  /** Hosts already connected (tests: fake hosts); default: connect(). */
  readonly connection?: Pick<Connection, 'hosts'>;
}

export interface HostRestart {
  readonly host: string;
  readonly services: readonly string[];
  readonly seconds: number;
  /** Draining before the restart and putting back after, included in `seconds`. */
  readonly drainSeconds: number;
}

export interface RestartReport {
  readonly services: readonly string[];
  readonly hosts: readonly HostRestart[];
  readonly seconds: number;
}

/** Hosts whose service runs a config other than the inventory's (`stackha deploy` would change it). */
export async function pendingChanges(
  ctx: HostsContext,
  services: readonly ServiceDeclaration[],
  only?: readonly string[],
): Promise<string[]> {
  const out: string[] = [];
  for (const service of services) {
    for (const spec of hostsFor(ctx.dep, service.name)) {
      if (only && !only.includes(spec.name)) continue;
      const host = hostIn(ctx, spec.name);
      for (const [record, want] of Object.entries(service.wanted?.(ctx.dep, targetIn(ctx, spec)) ?? {})) {
        const applied = await readApplied(host, record);
        if (applied?.config !== want.config || applied?.daemons !== want.daemons) {
          out.push(`${service.name} on ${spec.name}`);
          break;
        }
      }
    }
  }
  return out;
}

/** The Galera node the load balancers send writes to (the one most of them agree on). */
async function currentWriter(ctx: HostsContext): Promise<string | undefined> {
  const votes = new Map<string, number>();
  for (const states of (await lbStates(ctx)).values()) {
    const w = activeServer(states, 'mariadb');
    if (w) votes.set(w, (votes.get(w) ?? 0) + 1);
  }
  return [...votes].sort((a, b) => b[1] - a[1])[0]?.[0];
}

/** A daemon behind HAProxy on the host being restarted. */
type FrontedOnHost = Fronted & { readonly daemon: string };

/**
 * What a rolling restart leaves when it stops on a host: the backends of every daemon there that answers its health
 * check go back into rotation (a Galera node that is Synced, an API that answers), those of a daemon that does not
 * stay drained (HAProxy must not send it clients). Resolves with the error to throw: the cause, what is left drained,
 * and how to put it back.
 */
export async function failedOnHost(
  ctx: HostsContext,
  server: string,
  fronted: readonly FrontedOnHost[],
  cause: unknown,
): Promise<Error> {
  const why = cause instanceof Error ? cause.message : String(cause);
  const host = hostIn(ctx, server);
  const healthy = new Set<string>();
  const unhealthy = new Set<string>();
  for (const f of fronted) {
    const ok = await f.healthy(host).catch(() => false);
    for (const b of f.backends) (ok ? healthy : unhealthy).add(b);
  }
  // A backend shared by a healthy and an unhealthy daemon stays out: one that does not answer is enough.
  const back = [...healthy].filter((b) => !unhealthy.has(b));
  const left = [...unhealthy];
  let putBack = back;
  if (back.length > 0) {
    try {
      await undrainServer(ctx, back, server, async () => true, { healthTimeoutMs: 0, upTimeoutMs: 30_000 });
    } catch (err) {
      putBack = [];
      left.push(...back);
      ctx.log(
        `${server}: could not put back ${back.join(', ')}: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
  }
  const parts = [`restart stopped on ${server}: ${why}`];
  if (putBack.length > 0)
    parts.push(`put back (healthy): ${putBack.map((b) => `${b}/${server}`).join(', ')}`);
  if (left.length > 0)
    parts.push(
      `left drained on every load balancer: ${left.map((b) => `${b}/${server}`).join(', ')}; ` +
        '`stackha deploy` starts what is down and puts it back',
    );
  const msg = parts.join('; ');
  ctx.log(msg);
  return new Error(msg);
}

/**
 * Restarts services host by host under load: for each host (the Galera writer last), drain it from every HAProxy
 * backend its restarting services serve in, restart them in plan order (each waits until it serves again: Galera
 * Synced, RabbitMQ back in every quorum queue, an API answering), put it back, wait until every load balancer has it
 * UP, next host. Then the load balancers (a seamless reload: established sessions stay on the old worker) and the VIP
 * tier, one host at a time, the VIP holder last. Refuses when the deployment has changes `stackha deploy` has not
 * applied: a restart never applies a new config.
 */
export async function rollingRestart(
  dep: Deployment,
  requested: readonly string[],
  opts: RestartOptions = {},
): Promise<RestartReport> {
  const log = opts.log ?? (() => {});
  const started = Date.now();
  const services = expandServices(dep, requested);
  const conn = opts.connection ?? (await connect(dep, opts.connectOptions));
  const ctx: HostsContext = { dep, hosts: conn.hosts, log };
  for (const name of opts.hosts ?? [])
    if (!dep.hosts.some((h) => h.name === name)) throw new Error(`${name} is not a host of the inventory`);
  const pending = await pendingChanges(ctx, services, opts.hosts);
  if (pending.length > 0)
    throw new Error(
      `not restarting: the inventory has changes not yet deployed (${pending.join(', ')}); \`stackha deploy\` applies them, restarting what they touch host by host`,
    );
  const selected = (s: HostSpec) => !opts.hosts || opts.hosts.includes(s.name);
  const runsOn = (s: ServiceDeclaration, host: string) => hostsFor(dep, s.name).some((x) => x.name === host);
  const report: HostRestart[] = [];

  const backends = services.filter(isBackend);
  if (backends.length > 0) {
    const hosts = dep.hosts.filter((h) => selected(h) && backends.some((s) => runsOn(s, h.name)));
    const writer = backends.some((s) => s.name === 'mariadb') ? await currentWriter(ctx) : undefined;
    for (const spec of restartOrder(hosts, writer, undefined)) {
      const hostStarted = Date.now();
      const mine = backends.filter((s) => runsOn(s, spec.name));
      const daemons = mine.flatMap((s) => s.daemons(dep).map((d) => d.name));
      const fronted = daemons.flatMap((d) => {
        const f = frontedDaemon(dep, d);
        return f ? [{ ...f, daemon: d }] : [];
      });
      const lbBackends = backendsOf(dep, daemons);
      log(
        `${spec.name}: restarting ${mine.map((s) => s.name).join(', ')}${spec.name === writer ? ' (the Galera writer: last)' : ''}`,
      );
      const host = hostIn(ctx, spec.name);
      let drained: Awaited<ReturnType<typeof drainServer>>;
      try {
        drained = await drainServer(
          ctx,
          lbBackends,
          spec.name,
          Math.max(0, ...fronted.map((f) => f.drainMs)),
        );
        for (const service of mine) {
          const t0 = Date.now();
          await service.restartHost?.(ctx, spec);
          log(
            `${service.name} on ${spec.name}: restarted, serving again after ${((Date.now() - t0) / 1000).toFixed(1)} s`,
          );
        }
      } catch (err) {
        throw await failedOnHost(ctx, spec.name, fronted, err);
      }
      const undrainStarted = Date.now();
      await undrainServer(ctx, lbBackends, spec.name, async () => {
        for (const f of fronted) if (!(await f.healthy(host))) return false;
        return true;
      });
      report.push({
        host: spec.name,
        services: mine.map((s) => s.name),
        seconds: (Date.now() - hostStarted) / 1000,
        drainSeconds: drained.seconds + (Date.now() - undrainStarted) / 1000,
      });
    }
  }

  const front = services.filter((s) => !isBackend(s));
  const holders = front.length > 0 ? await vipHolders(ctx) : [];
  const holder = holders.length === 1 ? holders[0] : undefined;
  for (const service of front) {
    for (const spec of restartOrder(hostsFor(dep, service.name).filter(selected), undefined, holder)) {
      const t0 = Date.now();
      if (service.tier === 'vip' && spec.name === holder && !opts.moveVip) {
        // Restarting it moves the VIP; even a reload (SIGHUP) re-elects the master, which moves the VIP to a
        // higher-priority host if there is one. Either resets every client connection through the VIP.
        log(
          `${service.name} on ${spec.name}: holds the VIP: left running (--move-vip restarts it, moving the VIP)`,
        );
        report.push({
          host: spec.name,
          services: [`${service.name} (VIP holder: left running)`],
          seconds: 0,
          drainSeconds: 0,
        });
        continue;
      }
      await service.restartHost?.(ctx, spec);
      log(`${service.name} on ${spec.name}: restarted in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      report.push({
        host: spec.name,
        services: [service.name],
        seconds: (Date.now() - t0) / 1000,
        drainSeconds: 0,
      });
    }
  }
  return { services: services.map((s) => s.name), hosts: report, seconds: (Date.now() - started) / 1000 };
}

export function formatRestartReport(r: RestartReport): string {
  const lines = [`restarted ${r.services.join(', ')} in ${r.seconds.toFixed(1)} s`];
  for (const h of r.hosts)
    lines.push(
      `  ${h.host.padEnd(8)} ${h.seconds.toFixed(1).padStart(6)} s  ${h.services.join(', ')}${h.drainSeconds > 0 ? ` (drain and return ${h.drainSeconds.toFixed(1)} s)` : ''}`,
    );
  return lines.join('\n');
}
