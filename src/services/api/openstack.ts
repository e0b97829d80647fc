// One OpenStack service declared once: what kolla-ansible spreads over a role's defaults, templates and tasks, here as
// one value (OpenstackServiceSpec) that defineOpenstackService turns into the contract every layer reads
// (src/services/contract.ts). The deploy it gives every service:
//   1. its databases and user, created once through the VIP;
//   2. its Keystone user, service and endpoints (src/services/api/registration.ts);
//   3. its files on every host (config, uwsgi ini), only what differs written;
//   4. its bootstrap (schema syncs, cells, ...) on one host, under a lock kept in the database, once per package
//      version and step list;
//   5. its daemons: stopped ones start on every host at once; running ones whose config or command line changed
//      restart one host at a time (drained from HAProxy first, src/deploy/drain.ts), each ready before the next;
//   6. what must follow the start (Nova: map the new compute hosts).
import type { DaemonSpec, Host } from '../../hosts/host.js';
import type { Deployment, HostSpec } from '../../model.js';
import type { SettingSpec } from '../../settings.js';
import { hostsFor } from '../../topology.js';
import { CommandError, type ExecResult } from '../../util/exec.js';
import { WaitAborted, waitFor } from '../../util/wait.js';
import {
  type DaemonDeclaration,
  HTTP_DRAIN_MS,
  type HostsContext,
  type KeystoneRegistration,
  type MinHosts,
  type ServiceDeclaration,
  type ServiceStatus,
} from '../contract.js';
import {
  daemonsFile,
  digest,
  ensureDirs,
  readApplied,
  recordApplied,
  staleFiles,
  syncFiles,
  wantedState,
  writeFiles,
} from '../files.js';
import type { LoadBalancedService } from '../haproxy/haproxy.js';
import { apiHealthy } from '../health.js';
import type { DeployContext, HostOutcome, ServiceResult, ServiceUnit } from '../types.js';
import { hostIn, hostOf } from '../types.js';
import {
  type AdminSql,
  type ApiDatabase,
  STATE_TABLES_SQL,
  adminSql,
  apiLoadBalanced,
  ensureDatabase,
  readMarkers,
  withDbLock,
  writeMarker,
} from './framework.js';
import { registerInKeystone } from './registration.js';

/** A daemon of an OpenStack service on one host, as rendered. */
export interface OpenstackDaemon extends DaemonSpec {
  /** An HTTP API: ready once GET `path` on the host's address and `port` answers 200. */
  readonly http?: { readonly port: number; readonly path: string };
}

export interface OpenstackUnit extends ServiceUnit {
  readonly daemons: readonly OpenstackDaemon[];
}

/** A daemon as the service declares it (the same on every host): how it stops, and what HAProxy fronts. */
export interface OpenstackDaemonDeclaration {
  readonly name: string;
  readonly stopSignal?: NodeJS.Signals;
  readonly stopTimeoutMs: number;
  /** Its HTTP API on the VIP: the HAProxy frontend's name, the port, the health check path, extra HAProxy lines. */
  readonly api?: {
    readonly lb: string;
    readonly port: number;
    readonly healthPath: string;
    readonly extra?: readonly string[];
  };
}

/** One command of a service's bootstrap, run on its first host. */
export interface BootstrapStep {
  readonly title: string;
  readonly argv: readonly string[];
  /** A non-zero exit that means the step was done before (nova's create_cell exits 2 when the cell exists). */
  readonly alreadyDone?: (r: ExecResult) => boolean;
  readonly timeoutMs?: number;
}

export interface OpenstackServiceSpec {
  readonly name: string;
  readonly title: string;
  readonly enable: { readonly key: string; readonly default: boolean };
  readonly requires?: ServiceDeclaration['requires'];
  readonly groups: readonly string[];
  readonly noHosts: 'error' | 'warning';
  readonly minHosts?: MinHosts;
  readonly passwords: readonly string[];
  readonly settings?: Readonly<Record<string, SettingSpec<unknown>>>;
  readonly packages: readonly string[];
  readonly recommends?: false;
  /** Its databases (several may share a user: Nova's three). */
  databases?(dep: Deployment): readonly ApiDatabase[];
  keystone?(dep: Deployment): readonly KeystoneRegistration[];
  readonly daemons: readonly OpenstackDaemonDeclaration[];
  /** Everything of the service on one host: config files, directories, daemons (in the order they start). */
  render(dep: Deployment, host: HostSpec): OpenstackUnit;
  /** Steps run once on the first host, again only when the package version or the steps change. */
  readonly bootstrap?: {
    /** The Debian package whose version the bootstrap was run for. */
    readonly package: string;
    steps(dep: Deployment, host: HostSpec): readonly BootstrapStep[];
    /**
     * What else the bootstrap depends on (Nova's cell1 records the transport URL and database): a change runs it
     * again. Only its digest is stored.
     */
    inputs?(dep: Deployment): string;
  };
  /** After config files are written, before the bootstrap; resolves with the hosts it changed. */
  afterConfig?(ctx: DeployContext, sql: AdminSql): Promise<readonly string[]>;
  /** After the bootstrap, before any daemon starts. */
  afterBootstrap?(ctx: DeployContext, sql: AdminSql): Promise<readonly string[]>;
  /** After every daemon runs: what must follow (mapping new compute hosts, waiting for agents to report). */
  afterStart?(ctx: DeployContext, sql: AdminSql): Promise<readonly string[]>;
  /** A daemon that is not an HTTP API: true once it serves (default: alive two seconds after its start). */
  ready?(host: Host, daemon: OpenstackDaemon, dep: Deployment): Promise<boolean>;
  /** The service's own part of status, beside each daemon's state. */
  status?(ctx: HostsContext): Promise<Omit<ServiceStatus, 'service'>>;
  readonly removal?: readonly string[];
  afterJoin?: ServiceDeclaration['afterJoin'];
  beforeLeave?: ServiceDeclaration['beforeLeave'];
  forgetDead?: ServiceDeclaration['forgetDead'];
}

/** How long a daemon that has no health check must stay up after its start to count as started. */
export const PROCESS_GRACE_MS = 2000;

/** The HAProxy frontends of a service: one per declared API, over every host of the service. */
export function openstackLoadBalanced(spec: OpenstackServiceSpec, dep: Deployment): LoadBalancedService[] {
  const hosts = hostsFor(dep, spec.name);
  if (hosts.length === 0) return [];
  return spec.daemons.flatMap((d) => {
    if (!d.api) return [];
    const lb = apiLoadBalanced(dep, {
      name: d.api.lb,
      port: d.api.port,
      healthPath: d.api.healthPath,
      hosts,
    });
    return [{ ...lb, extra: [...(lb.extra ?? []), ...(d.api.extra ?? [])] }];
  });
}

function declaredDaemons(spec: OpenstackServiceSpec): DaemonDeclaration[] {
  return spec.daemons.map((d) => {
    const api = d.api;
    return {
      name: d.name,
      stopTimeoutMs: d.stopTimeoutMs,
      ...(d.stopSignal ? { stopSignal: d.stopSignal } : {}),
      ...(api
        ? {
            fronted: {
              backends: () => [api.lb],
              drainMs: HTTP_DRAIN_MS,
              healthy: (host: Host) => apiHealthy(host, api.port, api.healthPath),
            },
          }
        : {}),
    };
  });
}

/** Waits until a daemon serves: its health check answers, or (no check) it stays alive. Aborts when it exits. */
export async function waitDaemonReady(
  spec: Pick<OpenstackServiceSpec, 'ready'>,
  host: Host,
  d: OpenstackDaemon,
  dep: Deployment,
  timeoutMs = 180_000,
): Promise<void> {
  const exited = async (): Promise<WaitAborted | undefined> => {
    if ((await host.daemonPid(d.name)) !== undefined) return undefined;
    const tail = (await host.readFile(d.logFile))?.trim().split('\n').slice(-8).join('\n');
    return new WaitAborted(
      `${d.name} on ${host.name} exited${tail ? `; the end of ${d.logFile}:\n${tail}` : ''}`,
    );
  };
  const started = Date.now();
  await waitFor(
    `${d.name} on ${host.name} to ${d.http ? `answer ${d.http.path} on port ${d.http.port}` : 'serve'}`,
    async () => {
      const gone = await exited();
      if (gone) throw gone;
      if (d.http) return (await apiHealthy(host, d.http.port, d.http.path)) ? true : undefined;
      if (spec.ready) return (await spec.ready(host, d, dep)) ? true : undefined;
      return Date.now() - started >= PROCESS_GRACE_MS ? true : undefined;
    },
    { timeoutMs, intervalMs: 300 },
  );
}

/** Runs the bootstrap steps on the first host under the service's lock, unless done for this version and steps. */
async function runBootstrap(ctx: DeployContext, spec: OpenstackServiceSpec, sql: AdminSql): Promise<boolean> {
  const boot = spec.bootstrap;
  const first = hostsFor(ctx.dep, spec.name)[0];
  if (!boot || !first) return false;
  const host = hostOf(ctx, first.name);
  const version = (
    await host.run(['dpkg-query', '-W', '-f=${Version}', boot.package], { timeoutMs: 15_000 })
  ).trim();
  const steps = boot.steps(ctx.dep, first);
  const key = `${spec.name}:bootstrap`;
  const want = `${version} ${digest(JSON.stringify([steps.map((s) => s.argv), boot.inputs?.(ctx.dep) ?? '']))}`;
  if ((await readMarkers(sql, spec.name)).get(key) === want) return false;
  return withDbLock(
    sql,
    key,
    async () => {
      // Another deploy may have done it while this one waited for the lock.
      if ((await readMarkers(sql, spec.name)).get(key) === want) return false;
      const started = Date.now();
      const times: string[] = [];
      for (const step of steps) {
        const t0 = Date.now();
        const r = await host.exec(step.argv, { timeoutMs: step.timeoutMs ?? 600_000 });
        if (r.code !== 0 && !step.alreadyDone?.(r))
          throw new CommandError(r, `${first.name} (${spec.name} bootstrap: ${step.title})`);
        times.push(`${step.title} ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      }
      await writeMarker(sql, key, want, first.name);
      ctx.log(
        `${spec.name}: bootstrap on ${first.name} for ${boot.package} ${version} in ` +
          `${((Date.now() - started) / 1000).toFixed(1)} s (${times.join(', ')})`,
      );
      return true;
    },
    { log: ctx.log },
  );
}

interface HostPlan {
  readonly spec: HostSpec;
  readonly host: Host;
  readonly unit: OpenstackUnit;
  readonly want: ReturnType<typeof wantedState>;
  /** Daemons not running now. */
  readonly stopped: readonly OpenstackDaemon[];
  readonly due: string | undefined;
}

/** Deploys one OpenStack service (see the top of this file). */
export async function deployOpenstackService(
  ctx: DeployContext,
  spec: OpenstackServiceSpec,
): Promise<ServiceResult> {
  const specs = hostsFor(ctx.dep, spec.name);
  const outcomes: Record<string, HostOutcome> = {};
  if (specs.length === 0) return { service: spec.name, outcomes };
  const touched = new Set<string>();
  const firstName = specs[0]?.name ?? '';

  const sql = await adminSql(ctx);
  const databases = spec.databases?.(ctx.dep) ?? [];
  if (databases.length === 0) await sql(STATE_TABLES_SQL);
  for (const db of databases) {
    const r = await ensureDatabase(sql, spec.name, db, ctx.dep.passwords[db.passwordKey] ?? '');
    if (r.created) {
      ctx.log(`${spec.name}: database ${db.name} and user ${db.user} ready`);
      touched.add(firstName);
    }
  }
  const regs = spec.keystone?.(ctx.dep) ?? [];
  if ((await registerInKeystone(ctx, sql, spec.name, regs)).length > 0) touched.add(firstName);

  const plans: HostPlan[] = await Promise.all(
    specs.map(async (hs) => {
      const host = hostOf(ctx, hs.name);
      const unit = spec.render(ctx.dep, hs);
      // Asked at once (each one command over SSH); files are written once the directories are.
      const [, { stale, applied }, pids] = await Promise.all([
        ensureDirs(host, unit),
        staleFiles(host, [...unit.files, daemonsFile(spec.name, unit)], spec.name),
        Promise.all(unit.daemons.map((d) => host.daemonPid(d.name))),
      ]);
      const changed = await writeFiles(host, stale);
      const want = wantedState(spec.name, unit);
      const stopped = unit.daemons.filter((_, i) => pids[i] === undefined);
      const due =
        changed.length > 0
          ? `changed: ${changed.join(', ')}`
          : applied?.config !== want.config || applied?.daemons !== want.daemons
            ? 'config not yet applied'
            : undefined;
      return { spec: hs, host, unit, want, stopped, due };
    }),
  );

  for (const h of (await spec.afterConfig?.(ctx, sql)) ?? []) touched.add(h);
  if (await runBootstrap(ctx, spec, sql)) touched.add(firstName);
  for (const h of (await spec.afterBootstrap?.(ctx, sql)) ?? []) touched.add(h);

  const ready = async (p: HostPlan, daemons: readonly OpenstackDaemon[]) => {
    await Promise.all(daemons.map((d) => waitDaemonReady(spec, p.host, d, ctx.dep)));
  };
  const declared = new Map(spec.daemons.map((d) => [d.name, d]));
  // A host with every daemon stopped (a fresh host, or one powered back on) starts them all; one whose config is due
  // restarts below, host by host; one with only some stopped (a crash) starts those, with the config it has now.
  await Promise.all(
    plans
      .filter(
        (p) => p.stopped.length > 0 && (p.due === undefined || p.stopped.length === p.unit.daemons.length),
      )
      .map(async (p) => {
        for (const d of p.stopped) await p.host.startDaemon(d);
        await ready(p, p.stopped);
        // Either nothing was due, or every daemon started with the config just written.
        await recordApplied(p.host, spec.name, p.want);
        outcomes[p.spec.name] = 'started';
      }),
  );
  for (const p of plans.filter((x) => x.due !== undefined && outcomes[x.spec.name] === undefined)) {
    ctx.log(`${spec.name} on ${p.spec.name}: restarting (${p.due})`);
    for (const d of [...p.unit.daemons].reverse()) {
      const decl = declared.get(d.name);
      await p.host.stopDaemon(d.name, {
        timeoutMs: decl?.stopTimeoutMs ?? 20_000,
        ...(decl?.stopSignal ? { signal: decl.stopSignal } : {}),
      });
    }
    for (const d of p.unit.daemons) await p.host.startDaemon(d);
    await ready(p, p.unit.daemons);
    await recordApplied(p.host, spec.name, p.want);
    outcomes[p.spec.name] = 'restarted';
  }
  for (const h of (await spec.afterStart?.(ctx, sql)) ?? []) touched.add(h);
  for (const p of plans) {
    outcomes[p.spec.name] ??= touched.has(p.spec.name) ? 'configured' : 'unchanged';
    ctx.log(`${spec.name} on ${p.spec.name}: ${outcomes[p.spec.name]}`);
  }
  return { service: spec.name, outcomes };
}

/** Each daemon of the service on each host: running or not, and for an API its health check. */
export interface OpenstackDaemonState {
  readonly host: string;
  readonly daemon: string;
  readonly running: boolean;
  /** For an HTTP API: its health check answered 200. */
  readonly healthy?: boolean;
}

export async function openstackDaemonStates(
  ctx: HostsContext,
  spec: OpenstackServiceSpec,
): Promise<OpenstackDaemonState[]> {
  const out = await Promise.all(
    hostsFor(ctx.dep, spec.name).map(async (hs) => {
      const host = hostIn(ctx, hs.name);
      return Promise.all(
        spec.daemons.map(async (d): Promise<OpenstackDaemonState> => {
          const running = (await host.daemonPid(d.name).catch(() => undefined)) !== undefined;
          if (!d.api) return { host: hs.name, daemon: d.name, running };
          const healthy =
            running && (await apiHealthy(host, d.api.port, d.api.healthPath).catch(() => false));
          return { host: hs.name, daemon: d.name, running, healthy };
        }),
      );
    }),
  );
  return out.flat();
}

/** The daemon part of a service's status. Pure. */
export function openstackDaemonStatus(
  title: string,
  service: string,
  states: readonly OpenstackDaemonState[],
): { lines: string[]; problems: string[] } {
  const hosts = [...new Set(states.map((s) => s.host))];
  const lines = [title];
  const problems: string[] = [];
  for (const h of hosts) {
    const mine = states.filter((s) => s.host === h);
    lines.push(
      `  ${h.padEnd(8)} ${mine
        .map((s) => `${s.daemon} ${!s.running ? 'stopped' : s.healthy === false ? 'unhealthy' : 'running'}`)
        .join('  ')}`,
    );
    for (const s of mine) {
      if (!s.running) problems.push(`${service}: ${s.daemon} on ${h} is not running`);
      else if (s.healthy === false)
        problems.push(`${service}: ${s.daemon} on ${h} does not answer its health check`);
    }
  }
  return { lines, problems };
}

/** Every OpenStack service's spec by name, for tests that look inside (bootstrap steps, readiness). */
export const OPENSTACK_SPECS = new Map<string, OpenstackServiceSpec>();

/** The contract value of an OpenStack service. */
export function defineOpenstackService(spec: OpenstackServiceSpec): ServiceDeclaration {
  OPENSTACK_SPECS.set(spec.name, spec);
  const daemons = declaredDaemons(spec);
  const title = spec.title.charAt(0).toUpperCase() + spec.title.slice(1);
  return {
    name: spec.name,
    title: spec.title,
    tier: 'api',
    enable: spec.enable,
    ...(spec.requires ? { requires: spec.requires } : {}),
    groups: spec.groups,
    noHosts: spec.noHosts,
    ...(spec.minHosts ? { minHosts: spec.minHosts } : {}),
    passwords: spec.passwords,
    ...(spec.settings ? { settings: spec.settings } : {}),
    packages: spec.packages,
    ...(spec.recommends === false ? { recommends: false as const } : {}),
    daemons: () => daemons,
    loadBalanced: (dep) => openstackLoadBalanced(spec, dep),
    ...(spec.keystone ? { keystone: spec.keystone } : {}),
    ...(spec.removal ? { removal: spec.removal } : {}),
    deploy: (ctx) => deployOpenstackService(ctx, spec),
    wanted: (dep, t) => ({ [spec.name]: wantedState(spec.name, spec.render(dep, t.host)) }),
    restartHost: async (ctx, hs) => {
      const host = hostIn(ctx, hs.name);
      const unit = spec.render(ctx.dep, hs);
      for (const d of [...unit.daemons].reverse()) {
        const decl = daemons.find((x) => x.name === d.name);
        await host.stopDaemon(d.name, {
          timeoutMs: decl?.stopTimeoutMs ?? 20_000,
          ...(decl?.stopSignal ? { signal: decl.stopSignal } : {}),
        });
      }
      for (const d of unit.daemons) await host.startDaemon(d);
      await Promise.all(unit.daemons.map((d) => waitDaemonReady(spec, host, d, ctx.dep)));
    },
    ...(spec.afterJoin ? { afterJoin: spec.afterJoin } : {}),
    ...(spec.beforeLeave ? { beforeLeave: spec.beforeLeave } : {}),
    ...(spec.forgetDead ? { forgetDead: spec.forgetDead } : {}),
    status: async (ctx) => {
      const states = await openstackDaemonStates(ctx, spec);
      const base = openstackDaemonStatus(title, spec.name, states);
      const own = await spec.status?.(ctx);
      return {
        service: spec.name,
        lines: [...base.lines, ...(own?.lines ?? [])],
        problems: [...base.problems, ...(own?.problems ?? [])],
        data: { daemons: states, ...(own ? { service: own.data } : {}) },
      };
    },
  };
}
