import type { Host } from '../hosts/host.js';
import type { Deployment } from '../model.js';
import { hostsFor } from '../topology.js';
import { waitFor } from '../util/wait.js';
import { GALERA_HEALTH_PORT, MARIADB_PORT } from './galera.js';
import { deploySimpleService } from './simple.js';
import type { DeployContext, RenderTarget, ServiceResult, ServiceUnit } from './types.js';

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

/** The load-balanced services of the infrastructure tier; API services append theirs. */
export function infraLoadBalancedServices(dep: Deployment): LoadBalancedService[] {
  const out: LoadBalancedService[] = [];
  const db = hostsFor(dep, 'mariadb');
  if (db.length > 0) {
    out.push({
      name: 'mariadb',
      mode: 'tcp',
      bind: { address: dep.globals.internalVip, port: MARIADB_PORT },
      servers: db.map((h) => ({ name: h.name, address: h.address, port: MARIADB_PORT })),
      httpCheck: { path: '/', port: GALERA_HEALTH_PORT },
      checks: 'database',
      activeBackup: true,
      // Long-lived pooled DB connections from OpenStack services must not be cut by idle timeouts.
      timeouts: { client: '3600s', server: '3600s' },
    });
  }
  return out;
}

export function renderHaproxyCfg(
  dep: Deployment,
  t: RenderTarget,
  services: readonly LoadBalancedService[],
): string {
  const r = t.root;
  const head = `# Rendered by stackha for ${t.host.name}; local edits are overwritten by the next deploy.
global
  log stderr format raw local0 notice
  maxconn 4000
  stats socket ${r}${HAPROXY_SOCKET} mode 600 level admin expose-fd listeners
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
        argv: ['/usr/sbin/haproxy', '-W', '-db', '-f', `${t.root}${HAPROXY_CFG}`],
        logFile: '/var/log/haproxy/haproxy.log',
      },
    ],
  };
}

/** Sends a command to the host's HAProxy stats socket (from the host itself). */
export async function haproxySocket(host: Host, root: string, command: string): Promise<string | undefined> {
  const r = await host.exec(['socat', '-t', '2', 'stdio', `unix-connect:${root}${HAPROXY_SOCKET}`], {
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
