import type { Host } from '../../hosts/host.js';
import type { Deployment, HostSpec } from '../../model.js';
import { hostsFor } from '../../topology.js';
import { waitFor } from '../../util/wait.js';
import type { ServiceDeclaration, ServiceStatus } from '../contract.js';
import { wantedState } from '../files.js';
import { deploySimpleService } from '../simple.js';
import type { DeployContext, RenderTarget, ServiceResult, ServiceUnit } from '../types.js';

export const HAPROXY_STATS_PORT = 1984;
export const HAPROXY_CFG = '/etc/haproxy/haproxy.cfg';
export const HAPROXY_SOCKET = '/run/haproxy/admin.sock';

/** One load-balanced service: what API services (Keystone, Glance, ...) hand to the generator. */
export interface LoadBalancedService {
  readonly name: string;
  readonly mode: 'http' | 'tcp';
  /** Address and port the frontend binds (the VIP and the service's port). */
  readonly bind: { address: string; port: number };
  readonly servers: readonly { name: string; address: string; port: number }[];
  /** HTTP health check: a path on the server (or `checkPort`), expecting 2xx/3xx. Absent: TCP connect check. */
  readonly httpCheck?: { path: string; port?: number };
  /** Which health-check tuning applies (Tuning.haproxy): the database's or the APIs' (the default). */
  readonly checks?: 'database' | 'api';
  /** Single active server, the others `backup`: the Galera single-writer pattern. */
  readonly activeBackup?: boolean;
  readonly timeouts?: { client?: string; server?: string };
  /** Extra lines placed in the section as they are. */
  readonly extra?: readonly string[];
}

export function renderListen(dep: Deployment, svc: LoadBalancedService): string {
  const t = dep.tuning.haproxy;
  const lines = [`listen ${svc.name}`, `  bind ${svc.bind.address}:${svc.bind.port}`, `  mode ${svc.mode}`];
  if (svc.mode === 'http') {
    lines.push('  option httplog', '  option forwardfor', '  http-request del-header X-Forwarded-Proto');
    // On a reload, the old worker answers a keep-alive client's next request (with `Connection: close`) instead of
    // closing its idle connection under it, which a client sending at that instant sees as a reset.
    lines.push('  option idle-close-on-response');
  } else {
    lines.push('  option tcplog');
  }
  const check = svc.checks === 'database' ? t.database : t.api;
  if (svc.timeouts?.client) lines.push(`  timeout client ${svc.timeouts.client}`);
  if (svc.timeouts?.server) lines.push(`  timeout server ${svc.timeouts.server}`);
  lines.push(`  timeout check ${check.timeoutMs}ms`);
  if (svc.httpCheck) {
    lines.push(
      '  option httpchk',
      `  http-check send meth GET uri ${svc.httpCheck.path}`,
      '  http-check expect status 200-399',
    );
  }
  const serverOpts = [`check inter ${check.interMs}`];
  if (check.fastinterMs !== undefined) serverOpts.push(`fastinter ${check.fastinterMs}`);
  if (check.downinterMs !== undefined) serverOpts.push(`downinter ${check.downinterMs}`);
  serverOpts.push(`rise ${check.rise} fall ${check.fall}`);
  if (svc.httpCheck?.port !== undefined) serverOpts.push(`port ${svc.httpCheck.port}`);
  if (t.markDownAfterConnectionErrors !== undefined)
    serverOpts.push(`observe layer4 error-limit ${t.markDownAfterConnectionErrors} on-error mark-down`);
  if (t.shutdownSessionsOnDown) serverOpts.push('on-marked-down shutdown-sessions');
  // A returning primary takes over only after clients left the backup: one writer at a time.
  if (svc.activeBackup) serverOpts.push('on-marked-up shutdown-backup-sessions');
  lines.push(`  default-server ${serverOpts.join(' ')}`);
  for (const extra of svc.extra ?? []) lines.push(`  ${extra}`);
  svc.servers.forEach((s, i) => {
    const backup = svc.activeBackup && i > 0 ? ' backup' : '';
    lines.push(`  server ${s.name} ${s.address}:${s.port}${backup}`);
  });
  return `${lines.join('\n')}\n`;
}

export function renderHaproxyCfg(
  dep: Deployment,
  t: RenderTarget,
  services: readonly LoadBalancedService[],
): string {
  const head = `# Rendered by stackha for ${t.host.name}; local edits are overwritten by the next deploy.
global
  log stderr format raw local0 notice
  maxconn 4000
  stats socket ${HAPROXY_SOCKET} mode 600 level admin expose-fd listeners
  stats timeout 30s
  # Old workers left by a reload finish their sessions, but not forever.
  hard-stop-after 10m

defaults
  log global
  option redispatch
  retries 3
  timeout http-request 10s
  timeout queue 1m
  timeout connect ${dep.tuning.haproxy.connectTimeoutMs}ms
  timeout client 1m
  timeout server 1m
  timeout check ${dep.tuning.haproxy.api.timeoutMs}ms

listen stats
  bind ${t.host.address}:${HAPROXY_STATS_PORT}
  mode http
  stats enable
  stats uri /
  stats refresh 5s
  stats auth haproxy:${dep.passwords.haproxy_password ?? ''}
`;
  return [head, ...services.map((s) => renderListen(dep, s))].join('\n');
}

export function renderHaproxy(
  dep: Deployment,
  t: RenderTarget,
  services: readonly LoadBalancedService[],
): ServiceUnit {
  return {
    // The stats password is in the file: root's alone.
    files: [{ path: HAPROXY_CFG, content: renderHaproxyCfg(dep, t, services), mode: 0o600 }],
    dirs: [{ path: '/run/haproxy', mode: 0o755 }],
    daemons: [
      {
        name: 'haproxy',
        // Master-worker in the foreground: SIGUSR2 reloads the config, established sessions stay on old workers.
        argv: ['/usr/sbin/haproxy', '-W', '-db', '-f', `${HAPROXY_CFG}`],
        logFile: '/var/log/haproxy/haproxy.log',
      },
    ],
  };
}

/** Sends a command to the host's HAProxy stats socket (from the host itself). */
export async function haproxySocket(host: Host, command: string): Promise<string | undefined> {
  const r = await host.exec(['socat', '-t', '2', 'stdio', `unix-connect:${HAPROXY_SOCKET}`], {
    input: `${command}\n`,
    timeoutMs: 5000,
  });
  return r.code === 0 ? r.stdout : undefined;
}

export interface BackendServerState {
  readonly backend: string;
  readonly server: string;
  /** UP, DOWN, MAINT, NOLB, ... */
  readonly status: string;
  readonly backup: boolean;
  readonly sessions: number;
  /** The last health check's result (L7OK, L4CON, L7TOUT, L7STS, ...) and its HTTP code, if any. */
  readonly check: string;
  /** UP to DOWN transitions since this HAProxy started (`chkdown`). */
  readonly checkDowns: number;
}

export function parseShowStat(csv: string): BackendServerState[] {
  const lines = csv.trim().split('\n');
  const header = (lines[0] ?? '').replace(/^# /, '').split(',');
  const col = (name: string): number => header.indexOf(name);
  const out: BackendServerState[] = [];
  for (const line of lines.slice(1)) {
    const f = line.split(',');
    const server = f[col('svname')] ?? '';
    if (server === 'FRONTEND' || server === 'BACKEND' || server === '') continue;
    out.push({
      backend: f[col('pxname')] ?? '',
      server,
      status: (f[col('status')] ?? '').split(' ')[0] ?? '',
      backup: f[col('bck')] === '1',
      sessions: Number(f[col('scur')] ?? 0),
      // A check in progress is shown as `* L7OK`.
      check: [f[col('check_status')]?.replace(/^\* /, ''), f[col('check_code')]].filter((x) => x).join('/'),
      checkDowns: Number(f[col('chkdown')] || 0),
    });
  }
  return out;
}

/** The server HAProxy sends new connections to in an active/backup backend: first UP active, else first UP backup. */
export function activeServer(states: readonly BackendServerState[], backend: string): string | undefined {
  const mine = states.filter((s) => s.backend === backend);
  return (mine.find((s) => !s.backup && s.status === 'UP') ?? mine.find((s) => s.backup && s.status === 'UP'))
    ?.server;
}

export function deployHaproxy(
  ctx: DeployContext,
  services: readonly LoadBalancedService[],
): Promise<ServiceResult> {
  return deploySimpleService(ctx, {
    service: 'haproxy',
    hosts: hostsFor(ctx.dep, 'haproxy'),
    render: (t) => renderHaproxy(ctx.dep, t, services),
    reloadSignal: 'SIGUSR2',
    waitReady: async (host) => {
      await waitFor(
        `HAProxy on ${host.name}`,
        async () => ((await host.tcpConnect(host.address, HAPROXY_STATS_PORT, 1000)) ? true : undefined),
        { timeoutMs: 15_000 },
      );
    },
  });
}

/** What the load-balancer helpers need: the deployment and a connection to its hosts. */
export interface LbContext {
  readonly dep: Deployment;
  readonly hosts: ReadonlyMap<string, Host>;
  readonly log: (message: string) => void;
}

interface Lb {
  readonly name: string;
  readonly host: Host;
}

/** The loadbalancer hosts whose HAProxy is running (a drain is told to each). */
async function runningLbs(ctx: LbContext): Promise<Lb[]> {
  const out: Lb[] = [];
  for (const spec of hostsFor(ctx.dep, 'haproxy')) {
    const host = ctx.hosts.get(spec.name);
    if (!host || (await host.daemonPid('haproxy')) === undefined) continue;
    out.push({ name: spec.name, host });
  }
  return out;
}

/** Runs a stats-socket command on every running HAProxy; resolves with each one's answer. */
export async function everyLb(ctx: LbContext, command: string): Promise<Map<string, string | undefined>> {
  const lbs = await runningLbs(ctx);
  const answers = await Promise.all(lbs.map((lb) => haproxySocket(lb.host, command)));
  return new Map(lbs.map((lb, i) => [lb.name, answers[i]]));
}

/** `show stat` of every running HAProxy, parsed. */
export async function lbStates(ctx: LbContext): Promise<Map<string, BackendServerState[]>> {
  const csv = await everyLb(ctx, 'show stat');
  return new Map([...csv].map(([lb, text]) => [lb, text ? parseShowStat(text) : []]));
}

/**
 * Every server some running load balancer does not have UP, as `haproxy on LB: backend/server STATUS (check)`. A
 * server not checked yet (`INI`: a worker that just started or reloaded assumes UP until its first check) is not UP.
 */
export function serversNotUp(
  states: ReadonlyMap<string, readonly BackendServerState[]>,
  wanted: (s: BackendServerState) => boolean = () => true,
): string[] {
  const out: string[] = [];
  for (const [lb, list] of states)
    for (const s of list) {
      if (!wanted(s)) continue;
      const unchecked = s.check.startsWith('INI');
      if (s.status === 'UP' && !unchecked) continue;
      const why = unchecked ? 'not checked yet' : s.check;
      out.push(`haproxy on ${lb}: ${s.backend}/${s.server} ${s.status}${why ? ` (${why})` : ''}`);
    }
  return out;
}

/**
 * Waits until every running load balancer has every server UP (or, with `wanted`, every server it selects); rejects
 * naming each server still not UP, with HAProxy's last check result, when the bound is reached.
 */
export async function waitServersUp(
  ctx: LbContext,
  what: string,
  opts: { wanted?: (s: BackendServerState) => boolean; timeoutMs?: number } = {},
): Promise<void> {
  let missing: string[] = [];
  await waitFor(
    what,
    async () => {
      missing = serversNotUp(await lbStates(ctx), opts.wanted);
      return missing.length === 0 ? true : undefined;
    },
    { timeoutMs: opts.timeoutMs ?? 60_000, intervalMs: 200 },
  ).catch(() => {
    throw new Error(
      `${what}: not UP after ${Math.round((opts.timeoutMs ?? 60_000) / 1000)} s:\n  ${missing.join('\n  ')}`,
    );
  });
}

/** The HAProxy worker pid (`show info`): a reload replaces it. */
async function haproxyWorker(host: Host): Promise<string | undefined> {
  const info = await haproxySocket(host, 'show info');
  return /^Pid: (\d+)$/m.exec(info ?? '')?.[1];
}

/**
 * A seamless reload on one host: master-worker HAProxy re-reads its config into a new worker on SIGUSR2, the old one
 * keeps its established sessions. Done once the new worker answers and every load balancer sees every server UP
 * (the new worker starts its checks afresh), so the next host reloads only then.
 */
export async function reloadHaproxy(ctx: LbContext, spec: HostSpec): Promise<void> {
  const host = ctx.hosts.get(spec.name);
  if (!host) throw new Error(`no connection to host ${spec.name}`);
  const before = await haproxyWorker(host);
  await host.signalDaemon('haproxy', 'SIGUSR2');
  await waitFor(
    `a new HAProxy worker on ${spec.name}`,
    async () => {
      const now = await haproxyWorker(host);
      return now !== undefined &&
        now !== before &&
        (await host.tcpConnect(host.address, HAPROXY_STATS_PORT, 1000))
        ? true
        : undefined;
    },
    { timeoutMs: 30_000, intervalMs: 200 },
  );
  await waitServersUp(ctx, `every load balancer to see every server UP after ${spec.name}'s reload`);
}

/** HAProxy's part of `stackha status`, from what each load balancer's stats socket said. Pure. */
export function haproxyStatusOf(rows: readonly HaproxyStatusData[]): ServiceStatus {
  const problems: string[] = [];
  for (const hp of rows) {
    if (!hp.running) problems.push(`haproxy: ${hp.host} is not running`);
    for (const sv of hp.servers)
      if (sv.status !== 'UP') problems.push(`haproxy on ${hp.host}: ${sv.backend}/${sv.server} ${sv.status}`);
  }
  const lines = ['HAProxy'];
  for (const hp of rows) {
    const servers = hp.servers
      .map((sv) => `${sv.backend}/${sv.server}${sv.backup ? '(b)' : ''}=${sv.status}`)
      .join(' ');
    lines.push(`  ${hp.host.padEnd(8)} ${hp.running ? 'running' : 'stopped'}  ${servers}`);
  }
  return { service: 'haproxy', lines, problems, data: rows };
}

export interface HaproxyStatusData {
  readonly host: string;
  readonly running: boolean;
  readonly servers: readonly BackendServerState[];
}

/**
 * HAProxy, declared with the frontends it serves: the registry hands it every service's (src/services/registry.ts),
 * so this module need not know them.
 */
export function haproxyDeclaration(
  frontends: (dep: Deployment) => readonly LoadBalancedService[],
): ServiceDeclaration {
  return {
    name: 'haproxy',
    title: 'haproxy',
    tier: 'loadbalancer',
    enable: { key: 'enable_haproxy', default: true },
    // kolla's group, its name before Ussuri, then what kolla falls back to.
    groups: ['loadbalancer', 'haproxy', 'network', 'control'],
    noHosts: 'error',
    passwords: ['haproxy_password'],
    packages: ['haproxy', 'socat'],
    daemons: () => [{ name: 'haproxy', stopTimeoutMs: 20_000 }],
    deploy: (ctx) => deployHaproxy(ctx, frontends(ctx.dep)),
    wanted: (dep, t) => ({ haproxy: wantedState('haproxy', renderHaproxy(dep, t, frontends(dep))) }),
    restartHost: (ctx, spec) => reloadHaproxy(ctx, spec),
    status: async (ctx) => {
      const rows: HaproxyStatusData[] = await Promise.all(
        hostsFor(ctx.dep, 'haproxy').map(async (s) => {
          const h = ctx.hosts.get(s.name);
          const running = h !== undefined && (await h.daemonPid('haproxy')) !== undefined;
          const csv = running && h ? await haproxySocket(h, 'show stat') : undefined;
          return { host: s.name, running, servers: csv ? parseShowStat(csv) : [] };
        }),
      );
      return haproxyStatusOf(rows);
    },
  };
}
