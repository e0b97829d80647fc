import type { Host } from '../../hosts/host.js';
import type { Deployment, HostSpec } from '../../model.js';
import { agentArgv } from '../../runtime/runtime.js';
import { hostsFor } from '../../topology.js';
import { sleep, waitFor } from '../../util/wait.js';
import type { HostsContext, ServiceDeclaration, ServiceStatus } from '../contract.js';
import { wantedState } from '../files.js';
import { HAPROXY_STATS_PORT } from '../haproxy/haproxy.js';
import { deploySimpleService } from '../simple.js';
import type { DeployContext, RenderTarget, ServiceResult, ServiceUnit } from '../types.js';
import { hostIn, hostOf, targetIn } from '../types.js';

/** keepalived's console log (its state changes, "Entering MASTER STATE", are read by the chaos failover count). */
export const KEEPALIVED_LOG = '/var/log/keepalived/keepalived.log';

export const KEEPALIVED_CONF = '/etc/keepalived/keepalived.conf';
const CHECK_SCRIPT = '/etc/keepalived/check_haproxy.sh';
/** 0 while the local HAProxy accepts connections, 1 once it refuses them (written by the watcher). */
export const HAPROXY_TRACK_FILE = '/run/keepalived/haproxy-alive';

export function renderKeepalivedConf(dep: Deployment, t: RenderTarget): string {
  const g = dep.globals;
  const k = dep.tuning.keepalived;
  const lbs = hostsFor(dep, 'keepalived');
  const index = lbs.findIndex((h) => h.name === t.host.name);
  const priority = k.priorities(lbs.length)[index] ?? 1;
  // kolla-ansible puts the VIP on api_interface, which may differ per host.
  const iface = t.host.apiInterface;
  const lines = [
    `# Rendered by stackha for ${t.host.name}; local edits are overwritten by the next deploy.`,
    'global_defs {',
    `  router_id ${t.host.name}`,
    `  vrrp_version ${k.vrrpVersion}`,
    '  script_user root',
    '  enable_script_security',
    '}',
    '',
    // A TCP connect to the local HAProxy: track_process does not work inside a network namespace.
    'vrrp_script check_haproxy {',
    `  script "${CHECK_SCRIPT}"`,
    `  interval ${k.trackScript.intervalSec}`,
    '  timeout 1',
    `  fall ${k.trackScript.fall}`,
    `  rise ${k.trackScript.rise}`,
    '}',
    '',
    ...(k.watchHaproxy
      ? [
          // Written by the HAProxy watcher (dist/agents/haproxy-watch.js); keepalived reads it on every change.
          'track_file haproxy_alive {',
          `  file "${HAPROXY_TRACK_FILE}"`,
          '  weight 0',
          // Created as "up" if the watcher has not written it yet; it corrects that within 0.1 s.
          '  init_file',
          '}',
          '',
        ]
      : []),
    `vrrp_instance kolla_internal_vip_${g.keepalivedVirtualRouterId} {`,
    // All BACKUP + nopreempt: a returning host does not take the VIP back and cause a second interruption.
    '  state BACKUP',
    '  nopreempt',
    `  interface ${iface}`,
    `  virtual_router_id ${g.keepalivedVirtualRouterId}`,
    `  priority ${priority}`,
    `  advert_int ${k.advertIntSec}`,
  ];
  if (g.keepalivedUnicastPeers) {
    // check_unicast_src: adverts from anything but a listed peer are dropped, the protection VRRPv3 still has.
    lines.push(`  unicast_src_ip ${t.host.address}`, '  check_unicast_src', '  unicast_peer {');
    for (const peer of lbs) if (peer.name !== t.host.name) lines.push(`    ${peer.address}`);
    lines.push('  }');
  }
  if (k.vrrpVersion === 2) {
    // VRRPv3 (RFC 5798) dropped authentication; with v2 the password keeps stray routers out.
    lines.push(
      '  authentication {',
      '    auth_type PASS',
      `    auth_pass ${(dep.passwords.keepalived_password ?? '').slice(0, 8)}`,
      '  }',
    );
  }
  lines.push(
    '  virtual_ipaddress {',
    `    ${g.internalVip}/32 dev ${iface}`,
    '  }',
    '  track_script {',
    '    check_haproxy',
    '  }',
  );
  if (k.watchHaproxy) lines.push('  track_file {', '    haproxy_alive weight 0', '  }');
  lines.push('}', '');
  return lines.join('\n');
}

export function renderCheckScript(t: RenderTarget): string {
  return `#!/bin/bash
# Rendered by stackha: exits 0 while the local HAProxy accepts connections.
exec 3<>/dev/tcp/${t.host.address}/${HAPROXY_STATS_PORT}
`;
}

export function renderKeepalived(
  dep: Deployment,
  t: RenderTarget,
  watcher: readonly string[] = haproxyWatchAgent(t.host),
): ServiceUnit {
  const watch = dep.tuning.keepalived.watchHaproxy
    ? [
        {
          name: 'haproxy-watch',
          argv: [...watcher, `${t.host.address}:${HAPROXY_STATS_PORT}`, `${HAPROXY_TRACK_FILE}`],
          logFile: '/var/log/keepalived/haproxy-watch.log',
        },
      ]
    : [];
  return {
    files: [
      { path: KEEPALIVED_CONF, content: renderKeepalivedConf(dep, t), mode: 0o600 },
      { path: CHECK_SCRIPT, content: renderCheckScript(t), mode: 0o755 },
    ],
    dirs: [{ path: '/run/keepalived', mode: 0o755 }],
    daemons: [
      // The watcher first: keepalived finds its track file written when it starts.
      ...watch,
      {
        name: 'keepalived',
        argv: [
          '/usr/sbin/keepalived',
          '--dont-fork',
          '--log-console',
          '--log-detail',
          '--vrrp',
          '-f',
          `${KEEPALIVED_CONF}`,
          '-p',
          '/run/keepalived/keepalived.pid',
          '-r',
          '/run/keepalived/vrrp.pid',
        ],
        logFile: KEEPALIVED_LOG,
        // After a reboot (systemd): the local HAProxy (and its watcher) first, so the VIP comes to a working host.
        after: ['haproxy', ...watch.map((w) => w.name)],
      },
    ],
  };
}

/** The HAProxy watcher's script under dist/. */
export const HAPROXY_WATCH_AGENT = 'agents/haproxy-watch.js';

/** The command that runs the HAProxy watcher on a host (src/runtime/runtime.ts: lab or real host). */
export function haproxyWatchAgent(host: HostSpec): string[] {
  return agentArgv(host, HAPROXY_WATCH_AGENT);
}

/** The interface that carries the VIP on a host: its api_interface (globals.yml's default when not in the inventory). */
export function vipInterface(dep: Deployment, hostName: string): string {
  return dep.hosts.find((h) => h.name === hostName)?.apiInterface ?? dep.globals.apiInterface;
}

/** Removes the VIP from a host where no keepalived runs any more (a crashed one leaves it behind). */
export async function releaseVip(host: Host, dep: Deployment): Promise<void> {
  if (await holdsVip(host, dep)) {
    const dev = vipInterface(dep, host.name);
    await host.run(['ip', 'addr', 'del', `${dep.globals.internalVip}/32`, 'dev', dev]);
  }
}

/** True when the host has the VIP on its interface. */
export async function holdsVip(host: Host, dep: Deployment): Promise<boolean> {
  const r = await host.exec(['ip', '-o', '-4', 'addr', 'show', 'dev', vipInterface(dep, host.name)], {
    timeoutMs: 5000,
  });
  return r.stdout.includes(` ${dep.globals.internalVip}/`);
}

/** Resolves with the VIP holder once exactly one loadbalancer host holds the VIP. */
export function waitOneVipHolder(ctx: DeployContext, timeoutMs = 30_000): Promise<string> {
  return waitFor(
    `exactly one holder of the VIP ${ctx.dep.globals.internalVip}`,
    async () => {
      const holders: string[] = [];
      for (const spec of hostsFor(ctx.dep, 'keepalived')) {
        if (await holdsVip(hostOf(ctx, spec.name), ctx.dep)) holders.push(spec.name);
      }
      return holders.length === 1 ? holders[0] : undefined;
    },
    { timeoutMs, intervalMs: 200 },
  );
}

export async function deployKeepalived(ctx: DeployContext): Promise<ServiceResult> {
  const dep = ctx.dep;
  const result = await deploySimpleService(ctx, {
    service: 'keepalived',
    hosts: hostsFor(dep, 'keepalived'),
    render: (t) => renderKeepalived(dep, t),
    reloadSignal: 'SIGHUP',
    reloads: (d) => d === 'keepalived',
    // A crashed keepalived leaves the VIP behind: two hosts would answer for it.
    beforeStart: (host) => releaseVip(host, dep),
    waitReady: async () => {},
  });
  // Done means the VIP answers: one master elected (a few advert intervals after the first start).
  if (Object.values(result.outcomes).some((o) => o !== 'unchanged')) {
    ctx.log(`VIP held by ${await waitOneVipHolder(ctx)}`);
  }
  return result;
}

/** The hosts that hold the VIP right now (exactly one when all is well). */
export async function vipHolders(ctx: Pick<HostsContext, 'dep' | 'hosts'>): Promise<string[]> {
  const holders: string[] = [];
  for (const spec of hostsFor(ctx.dep, 'keepalived')) {
    const h = ctx.hosts.get(spec.name);
    if (h && (await holdsVip(h, ctx.dep))) holders.push(spec.name);
  }
  return holders;
}

/** keepalived's part of `stackha status`: who holds the VIP (exactly one host must). Pure. */
export function keepalivedStatusOf(dep: Deployment, rows: readonly KeepalivedStatusData[]): ServiceStatus {
  const vip = dep.globals.internalVip;
  const holders = rows.filter((k) => k.holdsVip).map((k) => k.host);
  const problems: string[] = [];
  if (holders.length === 0) problems.push(`keepalived: no host holds the VIP ${vip}`);
  if (holders.length > 1)
    problems.push(`keepalived: several hosts hold the VIP ${vip}: ${holders.join(', ')}`);
  for (const k of rows) if (!k.running) problems.push(`keepalived: ${k.host} is not running`);
  return {
    service: 'keepalived',
    lines: [
      'Keepalived',
      ...rows.map(
        (k) =>
          `  ${k.host.padEnd(8)} ${k.running ? 'running' : 'stopped'}${k.holdsVip ? '  MASTER (holds the VIP)' : ''}`,
      ),
    ],
    problems,
    data: rows,
  };
}

export interface KeepalivedStatusData {
  readonly host: string;
  readonly running: boolean;
  readonly holdsVip: boolean;
}

export const KEEPALIVED: ServiceDeclaration = {
  name: 'keepalived',
  title: 'keepalived',
  tier: 'vip',
  enable: { key: 'enable_keepalived', default: true },
  groups: ['loadbalancer', 'haproxy', 'network', 'control'],
  noHosts: 'error',
  minHosts: {
    min: 2,
    quorum: false,
    why: () => 'with one load balancer the VIP has nowhere to move when it fails',
  },
  passwords: ['keepalived_password'],
  packages: ['keepalived'],
  // The watcher first: keepalived finds its track file written when it starts.
  daemons: (dep) => [
    ...(dep.tuning.keepalived.watchHaproxy
      ? [{ name: 'haproxy-watch', stopTimeoutMs: 20_000, agent: HAPROXY_WATCH_AGENT }]
      : []),
    { name: 'keepalived', stopTimeoutMs: 20_000 },
  ],
  deploy: deployKeepalived,
  wanted: (dep, t) => ({ keepalived: wantedState('keepalived', renderKeepalived(dep, t)) }),
  restartHost: async (ctx, spec) => {
    const host = hostIn(ctx, spec.name);
    await host.stopDaemon('keepalived', { timeoutMs: 20_000 });
    // A stopped keepalived removes the VIP; a killed one would have left it behind.
    await releaseVip(host, ctx.dep);
    for (const d of renderKeepalived(ctx.dep, targetIn(ctx, spec)).daemons) await host.startDaemon(d);
    // A few adverts: the restarted instance has heard the master (or, for the old holder, a new master took over).
    await sleep(Math.max(1000, ctx.dep.tuning.keepalived.advertIntSec * 5000));
    await waitFor(
      'exactly one VIP holder',
      async () => ((await vipHolders(ctx)).length === 1 ? true : undefined),
      {
        timeoutMs: 30_000,
        intervalMs: 200,
      },
    );
  },
  status: async (ctx) => {
    const rows: KeepalivedStatusData[] = await Promise.all(
      hostsFor(ctx.dep, 'keepalived').map(async (s) => {
        const h = hostIn(ctx, s.name);
        return {
          host: s.name,
          running: (await h.daemonPid('keepalived')) !== undefined,
          holdsVip: await holdsVip(h, ctx.dep),
        };
      }),
    );
    return keepalivedStatusOf(ctx.dep, rows);
  },
};
