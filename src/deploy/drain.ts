// Taking one host's server out of HAProxy before its daemon restarts, and putting it back once it is healthy:
// what makes a restart invisible to clients. Used by `stackha deploy` (through drainingHosts), by rolling restarts
// (src/ops/rolling.ts) and by `stackha scale remove`.
import { makeDirs, readFileStates } from '../hosts/batch.js';
import type { DaemonSpec, DirSpec, Host } from '../hosts/host.js';
import type { Deployment } from '../model.js';
import {
  type BackendServerState,
  type LbContext,
  activeServer,
  everyLb,
  haproxySocket,
  lbStates,
  serversNotUp,
  waitServersUp,
} from '../services/haproxy/haproxy.js';
import { daemonDeclarations, isEnabled } from '../services/registry.js';
import type { ExecOptions } from '../util/exec.js';
import { sleep, waitFor } from '../util/wait.js';

export { everyLb, lbStates, serversNotUp, waitServersUp, type LbContext };

/** What HAProxy knows about one daemon that clients reach through it. */
export interface Fronted {
  /** The HAProxy backends that list the daemon's host as a server (named after the host). */
  readonly backends: readonly string[];
  /** How long to let the server's sessions end by themselves before HAProxy shuts them down, ms. */
  readonly drainMs: number;
  /** True when the daemon on this host can take clients again (what HAProxy's check also asks). */
  healthy(host: Host): Promise<boolean>;
}

/**
 * The HAProxy backends behind which a daemon serves, from its service's declaration; undefined for a daemon clients
 * do not reach through HAProxy (memcached and RabbitMQ: clients hold every server's address), or when HAProxy or its
 * service is not deployed.
 */
export function frontedDaemon(dep: Deployment, daemon: string): Fronted | undefined {
  if (!isEnabled(dep, 'haproxy')) return undefined;
  const found = daemonDeclarations(dep).find((d) => d.daemon.name === daemon);
  const fronted = found?.daemon.fronted;
  if (!found || !fronted) return undefined;
  return {
    backends: fronted.backends(dep),
    drainMs: fronted.drainMs,
    healthy: (h) => fronted.healthy(h, dep),
  };
}

/** Every HAProxy backend a host serves in, for the daemons given. */
export function backendsOf(dep: Deployment, daemons: readonly string[]): string[] {
  const out = new Set<string>();
  for (const d of daemons) for (const b of frontedDaemon(dep, d)?.backends ?? []) out.add(b);
  return [...out];
}

/** Sessions HAProxy currently holds to `server` in the backends, over every load balancer. */
export function sessionsOf(
  states: ReadonlyMap<string, readonly BackendServerState[]>,
  backends: readonly string[],
  server: string,
): number {
  let n = 0;
  for (const list of states.values())
    for (const s of list) if (s.server === server && backends.includes(s.backend)) n += s.sessions;
  return n;
}

/** True when every load balancer that lists `server` in the backends has it UP (health checks passed, not drained). */
export function upEverywhere(
  states: ReadonlyMap<string, readonly BackendServerState[]>,
  backends: readonly string[],
  server: string,
): boolean {
  return serversNotUp(states, (s) => s.server === server && backends.includes(s.backend)).length === 0;
}

/**
 * The last step of every deploy: a deploy is done only when every load balancer sees every server UP. A server left
 * in maintenance by an interrupted drain (stackha is the only one that drains) is put back first. Resolves with what
 * it changed.
 */
export async function convergeLoadBalancers(ctx: LbContext, timeoutMs = 90_000): Promise<string[]> {
  if (!isEnabled(ctx.dep, 'haproxy')) return [];
  const changed: string[] = [];
  const states = await lbStates(ctx);
  for (const [lb, list] of states) {
    for (const s of list) {
      if (s.status !== 'MAINT' && s.status !== 'DRAIN') continue;
      const host = ctx.hosts.get(lb);
      if (!host) continue;
      await haproxySocket(host, `set server ${s.backend}/${s.server} state ready`);
      changed.push(`${lb}: ${s.backend}/${s.server}`);
    }
  }
  if (changed.length > 0)
    ctx.log(`left in maintenance by an interrupted drain, put back: ${changed.join(', ')}`);
  // What was just read already says every server is UP (nothing put back): no second look needed.
  if (changed.length === 0 && serversNotUp(states).length === 0) return changed;
  await waitServersUp(ctx, 'every load balancer to see every server UP', { timeoutMs });
  return changed;
}

export interface DrainResult {
  readonly backends: readonly string[];
  readonly seconds: number;
  /** Sessions HAProxy shut down because they had not ended by themselves within the bound. */
  readonly shutDown: number;
}

/**
 * Takes `server` out of the backends on every load balancer: new connections go to the other servers (for the
 * active/backup database backend: the first backup becomes the writer), established ones get up to `boundMs` to
 * end by themselves, then HAProxy shuts the rest down so their clients reconnect elsewhere before the daemon stops,
 * and the server stays in maintenance until undrainServer puts it back.
 */
export async function drainServer(
  ctx: LbContext,
  backends: readonly string[],
  server: string,
  boundMs: number,
): Promise<DrainResult> {
  const started = Date.now();
  if (backends.length === 0) return { backends, seconds: 0, shutDown: 0 };
  for (const b of backends) await everyLb(ctx, `set server ${b}/${server} state drain`);
  let left = 0;
  await waitFor(
    `sessions to ${server} to end`,
    async () => {
      left = sessionsOf(await lbStates(ctx), backends, server);
      return left === 0 ? true : undefined;
    },
    { timeoutMs: boundMs, intervalMs: 250 },
  ).catch(() => {});
  if (left > 0) for (const b of backends) await everyLb(ctx, `shutdown sessions server ${b}/${server}`);
  // Maintenance from here: HAProxy stops checking it. A drained server whose checks pass again while its host is
  // still busy would be marked up, and `on-marked-up shutdown-backup-sessions` would move the database clients
  // back and forth once more; from maintenance it comes up once, when it is put back.
  for (const b of backends) await everyLb(ctx, `set server ${b}/${server} state maint`);
  const seconds = (Date.now() - started) / 1000;
  ctx.log(
    `${server}: drained from ${backends.join(', ')} in ${seconds.toFixed(1)} s` +
      (left > 0 ? ` (${left} sessions had not ended; shut down, their clients reconnect elsewhere)` : ''),
  );
  return { backends, seconds, shutDown: left };
}

/**
 * Puts `server` back into the backends once `healthy()` says so (HAProxy's own checks then need `rise` successes
 * before it sends anything), waits until every load balancer has it UP, and for an active/backup backend whose
 * writer it is again, shuts down the sessions still on the backups, so writes go to one node only.
 */
export async function undrainServer(
  ctx: LbContext,
  backends: readonly string[],
  server: string,
  healthy: () => Promise<boolean>,
  opts: { healthTimeoutMs?: number; upTimeoutMs?: number } = {},
): Promise<void> {
  if (backends.length === 0) return;
  const started = Date.now();
  try {
    await waitFor(`${server} to be healthy`, async () => ((await healthy()) ? true : undefined), {
      timeoutMs: opts.healthTimeoutMs ?? 600_000,
      intervalMs: 300,
    });
  } catch (err) {
    // Its checks keep failing, so HAProxy will not send it anything anyway; the caller reports why.
    ctx.log(
      `${server}: not healthy (${err instanceof Error ? err.message : String(err)}); re-enabled anyway`,
    );
  }
  for (const b of backends) await everyLb(ctx, `set server ${b}/${server} state ready`);
  // Fails loudly: a server that does not come back leaves its pool one short, and the next host must not go.
  await waitServersUp(ctx, `${server} to be UP in ${backends.join(', ')} on every load balancer`, {
    wanted: (s) => s.server === server && backends.includes(s.backend),
    timeoutMs: opts.upTimeoutMs ?? 60_000,
  });
  const states = await lbStates(ctx);
  // Sessions still on another server of an active/backup backend this server leads again: one writer only.
  const stale = new Set<string>();
  for (const b of backends) {
    for (const list of states.values()) {
      const mine = list.filter((s) => s.backend === b);
      if (!mine.some((s) => s.backup) || activeServer(mine, b) !== server) continue;
      for (const other of mine)
        if (other.server !== server && other.sessions > 0) stale.add(`${b}/${other.server}`);
    }
  }
  for (const bs of stale) {
    await everyLb(ctx, `shutdown sessions server ${bs}`);
    ctx.log(`${bs.split('/')[0]}: ${server} leads again; sessions on ${bs.split('/')[1]} shut down`);
  }
  ctx.log(`${server}: back in ${backends.join(', ')} after ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

/**
 * A Host whose daemons behind HAProxy are drained before they stop and put back once healthy after they start.
 * `stackha deploy` hands these to every service's deploy, so a restart for a changed setting, whichever module does
 * it (including the API-service framework), takes the host out of the load balancers first. A start that follows
 * no drain (first start, a crashed daemon) is left to HAProxy's checks alone.
 */
export class DrainingHost implements Host {
  private readonly drained = new Map<string, readonly string[]>();

  constructor(
    private readonly inner: Host,
    private readonly ctx: LbContext,
  ) {}

  get name(): string {
    return this.inner.name;
  }

  get address(): string {
    return this.inner.address;
  }

  exec(argv: readonly string[], opts?: ExecOptions) {
    return this.inner.exec(argv, opts);
  }

  run(argv: readonly string[], opts?: ExecOptions) {
    return this.inner.run(argv, opts);
  }

  readFile(hostPath: string) {
    return this.inner.readFile(hostPath);
  }

  writeFile(hostPath: string, content: string, opts?: { mode?: number; owner?: string }) {
    return this.inner.writeFile(hostPath, content, opts);
  }

  mkdir(hostPath: string, opts?: { mode?: number; owner?: string }) {
    return this.inner.mkdir(hostPath, opts);
  }

  exists(hostPath: string) {
    return this.inner.exists(hostPath);
  }

  readFileStates(hostPaths: readonly string[]) {
    return readFileStates(this.inner, hostPaths);
  }

  makeDirs(dirs: readonly DirSpec[]) {
    return makeDirs(this.inner, dirs);
  }

  fileMode(hostPath: string) {
    return this.inner.fileMode(hostPath);
  }

  remove(hostPath: string) {
    return this.inner.remove(hostPath);
  }

  signalDaemon(name: string, signal: NodeJS.Signals) {
    return this.inner.signalDaemon(name, signal);
  }

  daemonPid(name: string) {
    return this.inner.daemonPid(name);
  }

  tcpConnect(address: string, port: number, timeoutMs?: number) {
    return this.inner.tcpConnect(address, port, timeoutMs);
  }

  async stopDaemon(name: string, opts?: { signal?: NodeJS.Signals; timeoutMs?: number }): Promise<boolean> {
    const fronted = frontedDaemon(this.ctx.dep, name);
    if (fronted && (await this.inner.daemonPid(name)) !== undefined) {
      await drainServer(this.ctx, fronted.backends, this.name, fronted.drainMs);
      this.drained.set(name, fronted.backends);
    }
    return this.inner.stopDaemon(name, opts);
  }

  async startDaemon(spec: DaemonSpec): Promise<number> {
    const pid = await this.inner.startDaemon(spec);
    const backends = this.drained.get(spec.name);
    const fronted = frontedDaemon(this.ctx.dep, spec.name);
    if (backends && fronted) {
      this.drained.delete(spec.name);
      await undrainServer(this.ctx, backends, this.name, async () => {
        // A daemon that exited will not get healthy: stop waiting, the caller's own wait reports why.
        if ((await this.inner.daemonPid(spec.name)) === undefined) {
          await sleep(500);
          if ((await this.inner.daemonPid(spec.name)) === undefined) return true;
        }
        return fronted.healthy(this.inner);
      });
    }
    return pid;
  }
}

/** Every host of the connection wrapped in a DrainingHost. */
export function drainingHosts(ctx: LbContext): Map<string, Host> {
  return new Map([...ctx.hosts].map(([name, h]) => [name, new DrainingHost(h, ctx)]));
}
