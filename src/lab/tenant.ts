// A lab tenant: a simulated server's network card. Nova's fake driver boots no VM and plugs nothing (plugging is
// os-vif's job on a real hypervisor, and the linuxbridge agent leaves compute ports to it), so the lab does what
// os-vif's Linux bridge plugin would: a tap device on the compute host in the network's brq bridge, whose other end
// is a network namespace of its own standing for the server. The agent then wires the bridge to the VXLAN, the port
// goes ACTIVE, the namespace leases its address from Neutron's dnsmasq and reaches the outside through the HA router.
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Deployment } from '../model.js';
import { runOpenstack } from '../ops/keystone.js';
import { routerNamespacesOn } from '../services/neutron/status.js';
import { execArgv, execOrThrow } from '../util/exec.js';
import { sleep, waitFor } from '../util/wait.js';
import {
  type LabState,
  externalPrefix,
  hostNs,
  labClient,
  labHost,
  labStateDir,
  listNamespaces,
  outsideNs,
} from './lab.js';

/** The Neutron resources every lab tenant shares, found by name (the lab's own; made once). */
export const TENANT_NET = {
  external: 'stackha-ext',
  network: 'stackha-tenant',
  subnet: 'stackha-tenant-v4',
  cidr: '10.10.0.0/24',
  router: 'stackha-router',
} as const;

const TENANT_NAME = /^[a-z0-9]{1,8}$/;
/** The tenant chaos scenarios ping the outside from (`tenantProbe`). */
export const CHAOS_TENANT = 'chaos';
export const tenantNs = (lab: string, name: string): string => `${lab}-tenant-${name}`;
const tenantDir = (lab: string, name: string): string => join(labStateDir(lab), 'tenants', name);

/** Linux device names of a port and a network, as Neutron's Linux bridge driver derives them (15 characters). */
export const tapName = (portId: string): string => `tap${portId.slice(0, 11)}`;
export const bridgeName = (networkId: string): string => `brq${networkId.slice(0, 11)}`;

export interface TenantInfo {
  readonly name: string;
  readonly namespace: string;
  readonly host: string;
  readonly portId: string;
  readonly networkId: string;
  readonly routerId: string;
  readonly mac: string;
  /** The port's fixed address, and the one DHCP leased (they must agree). */
  readonly fixedIp: string;
  readonly leasedIp: string;
  /** The outside namespace's address: the probe's target. */
  readonly outside: string;
  readonly seconds: number;
}

/**
 * An openstack command in the lab's client; its stdout, or an error naming the command and the end of its stderr.
 * `router set` and `router add subnet` print nothing and take no -f json: they run through this directly.
 */
async function osPlain(state: LabState, dep: Deployment, args: readonly string[]): Promise<string> {
  const r = await runOpenstack(labClient(state), dep, args);
  if (r.code !== 0)
    throw new Error(
      `openstack ${args.slice(0, 3).join(' ')} failed (exit ${r.code}): ${r.stderr.trim().split('\n').slice(-2).join(' ')}`,
    );
  return r.stdout;
}

async function osJson<T>(state: LabState, dep: Deployment, args: readonly string[]): Promise<T> {
  return JSON.parse(await osPlain(state, dep, [...args, '-f', 'json'])) as T;
}

async function findId(
  state: LabState,
  dep: Deployment,
  kind: string,
  name: string,
): Promise<string | undefined> {
  const list = await osJson<{ ID: string; Name: string }[]>(state, dep, [kind, 'list', '--name', name]);
  return list.find((x) => x.Name === name)?.ID;
}

/**
 * One resource made if missing. A create can fail at the client (HAProxy's 504 after its server timeout, on a busy
 * machine) while neutron-server goes on and finishes it, so after a failed create the resource is looked for again
 * (bounded) before the failure counts; a re-run finds it and does nothing.
 */
export async function ensureResource<T>(
  what: string,
  find: () => Promise<T | undefined>,
  create: () => Promise<unknown>,
  opts: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  const found = await find();
  if (found !== undefined) return found;
  let failure: unknown;
  try {
    await create();
  } catch (err) {
    failure = err;
  }
  try {
    return await waitFor(`${what} to exist`, find, {
      timeoutMs: failure ? (opts.timeoutMs ?? 180_000) : 30_000,
      intervalMs: opts.intervalMs ?? 3000,
    });
  } catch (err) {
    throw failure instanceof Error ? new Error(`${failure.message} (and ${what} never appeared)`) : err;
  }
}

interface RouterShown {
  readonly external_gateway_info: { readonly network_id?: string } | null | string;
  readonly interfaces_info: readonly { readonly subnet_id: string }[] | null;
}

/**
 * The provider network on physnet1 (the lab's external bridge, with the outside namespace at .1), a VXLAN tenant
 * network, and an HA router between them (Neutron makes every router HA: l3_ha). Each piece is made once, in
 * small steps (router, then its gateway, then its interface) so that a slow step is found done on a re-run.
 */
export interface TenantNetwork {
  readonly networkId: string;
  readonly routerId: string;
  /** The outside namespace's address. */
  readonly outside: string;
}

export async function ensureTenantNetwork(state: LabState, dep: Deployment): Promise<TenantNetwork> {
  const ext = externalPrefix(state.prefix);
  if (!ext)
    throw new Error(
      `lab ${state.name}: its subnet ${state.prefix}.0/24 has no external network (198.18.N only)`,
    );
  const os = <T>(args: readonly string[]) => osJson<T>(state, dep, args);
  const byName = (kind: string, name: string) => () => findId(state, dep, kind, name);
  const extId = await ensureResource(
    `network ${TENANT_NET.external}`,
    byName('network', TENANT_NET.external),
    () =>
      os([
        'network',
        'create',
        '--external',
        '--provider-network-type',
        'flat',
        '--provider-physical-network',
        'physnet1',
        TENANT_NET.external,
      ]),
  );
  const extSubnet = `${TENANT_NET.external}-v4`;
  await ensureResource(`subnet ${extSubnet}`, byName('subnet', extSubnet), () =>
    os([
      'subnet',
      'create',
      '--network',
      extId,
      '--subnet-range',
      `${ext}.0/24`,
      '--gateway',
      `${ext}.1`,
      '--allocation-pool',
      `start=${ext}.10,end=${ext}.200`,
      '--no-dhcp',
      extSubnet,
    ]),
  );
  const netId = await ensureResource(
    `network ${TENANT_NET.network}`,
    byName('network', TENANT_NET.network),
    () => os(['network', 'create', TENANT_NET.network]),
  );
  const subnetId = await ensureResource(
    `subnet ${TENANT_NET.subnet}`,
    byName('subnet', TENANT_NET.subnet),
    () => os(['subnet', 'create', '--network', netId, '--subnet-range', TENANT_NET.cidr, TENANT_NET.subnet]),
  );
  const routerId = await ensureResource(
    `router ${TENANT_NET.router}`,
    byName('router', TENANT_NET.router),
    () => os(['router', 'create', TENANT_NET.router]),
  );
  const shown = () => os<RouterShown>(['router', 'show', routerId]);
  await ensureResource(
    `the gateway of router ${TENANT_NET.router}`,
    async () => {
      const g = (await shown()).external_gateway_info;
      return typeof g === 'object' && g?.network_id === extId ? true : undefined;
    },
    // `router set` prints nothing and takes no -f json.
    () => osPlain(state, dep, ['router', 'set', '--external-gateway', extId, routerId]),
  );
  await ensureResource(
    `the interface of router ${TENANT_NET.router} on ${TENANT_NET.subnet}`,
    async () => ((await shown()).interfaces_info ?? []).some((i) => i.subnet_id === subnetId) || undefined,
    () => osPlain(state, dep, ['router', 'add', 'subnet', routerId, subnetId]),
  );
  return { networkId: netId, routerId, outside: `${ext}.1` };
}

/** The hosts whose DHCP agents Neutron scheduled the network on (alive or not), from `network agent list --network`. */
export async function dhcpHostsOf(state: LabState, dep: Deployment, networkId: string): Promise<string[]> {
  const agents = await osJson<{ Host: string; 'Agent Type': string }[]>(state, dep, [
    'network',
    'agent',
    'list',
    '--network',
    networkId,
  ]);
  return agents.filter((a) => a['Agent Type'] === 'DHCP agent').map((a) => a.Host);
}

/** Per host, this router's state in its namespaces (active, standby, orphaned), for the hosts that answered. */
export async function routerStates(state: LabState, routerId: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const h of state.hosts) {
    const m = await routerNamespacesOn(labHost(state, h.name)).catch(() => undefined);
    const s = m?.get(routerId);
    if (s) out[h.name] = s;
  }
  return out;
}

/**
 * The host where the router is active, waiting (bounded) until exactly one is; `except` (a crashed host, whose
 * namespace keeps its addresses while nothing runs there) is left out.
 */
export async function activeRouterHost(
  state: LabState,
  routerId: string,
  opts: { timeoutMs?: number; except?: string } = {},
): Promise<string> {
  return waitFor(
    `router ${routerId} to be active on exactly one host${opts.except ? ` other than ${opts.except}` : ''}`,
    async () => {
      const active = Object.entries(await routerStates(state, routerId))
        .filter(([h, s]) => s === 'active' && h !== opts.except)
        .map(([h]) => h);
      return active.length === 1 ? active[0] : undefined;
    },
    { timeoutMs: opts.timeoutMs ?? 120_000, intervalMs: 500 },
  );
}

/** dhclient's script for the tenant: the leased address, MTU and default route on eth0; nothing else is touched. */
const DHCLIENT_SCRIPT = `#!/bin/sh
case "$reason" in
BOUND|RENEW|REBIND|REBOOT)
  [ -n "$new_interface_mtu" ] && ip link set dev "$interface" mtu "$new_interface_mtu"
  ip -4 addr flush dev "$interface" scope global
  ip -4 addr add "$new_ip_address/$new_subnet_mask" dev "$interface"
  for r in $new_routers; do ip -4 route replace default via "$r" dev "$interface"; break; done ;;
esac
exit 0
`;

async function inNs(ns: string, argv: readonly string[], timeoutMs = 15_000): Promise<string> {
  return execOrThrow(['ip', 'netns', 'exec', ns, ...argv], 'lab tenant', { timeoutMs });
}

/**
 * Plugs a tenant into a Neutron port bound to a lab host: the given port (a server's, bound by Nova) or a new one
 * bound to `host`; waits for the port to go ACTIVE, then leases its address by DHCP (dhclient, ended by pid once
 * bound: the lease outlives the probe).
 */
export async function tenantUp(
  state: LabState,
  dep: Deployment,
  opts: { name: string; host?: string; portId?: string; network?: TenantNetwork },
): Promise<TenantInfo> {
  const started = Date.now();
  if (!TENANT_NAME.test(opts.name))
    throw new Error(`tenant name ${opts.name}: 1 to 8 lowercase letters or digits`);
  // A caller that has just ensured the network (a chaos scenario plugging ports during a fault) passes it on.
  const net = opts.network ?? (await ensureTenantNetwork(state, dep));
  const portName = `stackha-${state.name}-${opts.name}`;
  let portId = opts.portId;
  if (!portId) {
    const bound = opts.host;
    if (!bound) throw new Error('tenant up: give the host to bind the new port to');
    labHost(state, bound);
    portId = await ensureResource(
      `port ${portName}`,
      () => findId(state, dep, 'port', portName),
      () =>
        osJson(state, dep, [
          'port',
          'create',
          '--network',
          net.networkId,
          '--host',
          bound,
          '--device-owner',
          'compute:lab',
          '--device',
          `lab-${state.name}-${opts.name}`,
          portName,
        ]),
    );
  }
  const port = await osJson<{
    id: string;
    mac_address: string;
    network_id: string;
    binding_host_id: string;
    fixed_ips: { ip_address: string }[];
  }>(state, dep, ['port', 'show', portId]);
  const host = port.binding_host_id;
  if (!host || !state.hosts.some((h) => h.name === host))
    throw new Error(`port ${portId} is bound to "${host}", not to a host of lab ${state.name}`);
  const fixedIp = port.fixed_ips[0]?.ip_address ?? '';
  const ns = tenantNs(state.name, opts.name);
  const hns = hostNs(state.name, host);
  const tap = tapName(port.id);
  const brq = bridgeName(port.network_id);
  if (!(await listNamespaces()).includes(ns)) {
    await execOrThrow(['ip', 'netns', 'add', ns], 'lab tenant');
    await execOrThrow(
      ['ip', '-n', hns, 'link', 'add', tap, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns],
      'lab tenant',
    );
    await inNs(ns, ['ip', 'link', 'set', 'eth0', 'address', port.mac_address]);
    await inNs(ns, ['ip', 'link', 'set', 'lo', 'up']);
    await inNs(ns, ['ip', 'link', 'set', 'eth0', 'up']);
    // os-vif creates the network's bridge when the agent has not yet (first port of the network on this host).
    if ((await execArgv(['ip', '-n', hns, 'link', 'show', brq], { timeoutMs: 5000 })).code !== 0) {
      await execOrThrow(['ip', '-n', hns, 'link', 'add', brq, 'type', 'bridge'], 'lab tenant');
      await execOrThrow(['ip', '-n', hns, 'link', 'set', brq, 'up'], 'lab tenant');
    }
    await execOrThrow(['ip', '-n', hns, 'link', 'set', tap, 'master', brq, 'up'], 'lab tenant');
  }
  await waitFor(
    `port ${port.id} on ${host} to go ACTIVE`,
    async () => {
      const p = await osJson<{ status: string }>(state, dep, ['port', 'show', port.id]);
      return p.status === 'ACTIVE' ? true : undefined;
    },
    { timeoutMs: 120_000, intervalMs: 2000 },
  );
  const dir = tenantDir(state.name, opts.name);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const script = join(dir, 'dhclient-script');
  writeFileSync(script, DHCLIENT_SCRIPT, { mode: 0o755 });
  const conf = join(dir, 'dhclient.conf');
  writeFileSync(conf, 'request subnet-mask, broadcast-address, routers, interface-mtu;\n');
  const pidFile = join(dir, 'dhclient.pid');
  // -1: one attempt (bounded by dhclient's 60 s timeout); it forks once bound, and that child is ended by its pid.
  await inNs(
    ns,
    ['dhclient', '-1', '-cf', conf, '-sf', script, '-lf', join(dir, 'leases'), '-pf', pidFile, 'eth0'],
    90_000,
  );
  await endByPidFile(pidFile, 'dhclient');
  const leasedIp =
    /inet (\d+\.\d+\.\d+\.\d+)\//.exec(
      await inNs(ns, ['ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0']),
    )?.[1] ?? '';
  const info: TenantInfo = {
    name: opts.name,
    namespace: ns,
    host,
    portId: port.id,
    networkId: port.network_id,
    routerId: net.routerId,
    mac: port.mac_address,
    fixedIp,
    leasedIp,
    outside: net.outside,
    seconds: (Date.now() - started) / 1000,
  };
  writeFileSync(join(dir, 'tenant.json'), `${JSON.stringify(info, null, 2)}\n`);
  return info;
}

/** Ends the process a pid file names, when it is the program expected (never a reused pid). */
async function endByPidFile(pidFile: string, program: string): Promise<void> {
  let pid: number;
  try {
    pid = Number(readFileSync(pidFile, 'utf8').trim());
  } catch {
    return;
  }
  if (!Number.isInteger(pid) || pid <= 0) return;
  let cmd = '';
  try {
    cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return;
  }
  if (!cmd.split('\0')[0]?.endsWith(program)) return;
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 50; i++) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    await sleep(100);
  }
  process.kill(pid, 'SIGKILL');
}

/** A tenant made earlier, from its record. */
export function readTenant(lab: string, name: string): TenantInfo | undefined {
  try {
    return JSON.parse(readFileSync(join(tenantDir(lab, name), 'tenant.json'), 'utf8')) as TenantInfo;
  } catch {
    return undefined;
  }
}

/** Removes a tenant: its processes (by pid), its namespace and tap, and the port stackha made for it. */
export async function tenantDown(state: LabState, dep: Deployment, name: string): Promise<string[]> {
  const done: string[] = [];
  const info = readTenant(state.name, name);
  const ns = tenantNs(state.name, name);
  if ((await listNamespaces()).includes(ns)) {
    const r = await execArgv(['ip', 'netns', 'pids', ns], { timeoutMs: 10_000 });
    for (const l of r.stdout.split('\n')) {
      const pid = Number(l.trim());
      if (Number.isInteger(pid) && pid > 0)
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
    }
    // Deleting the namespace deletes eth0, and with it its peer (the tap on the host).
    await execOrThrow(['ip', 'netns', 'del', ns], 'lab tenant');
    done.push(`namespace ${ns}`);
  }
  const portName = `stackha-${state.name}-${name}`;
  const portId = await findId(state, dep, 'port', portName);
  if (portId) {
    const r = await runOpenstack(labClient(state), dep, ['port', 'delete', portId]);
    if (r.code !== 0) throw new Error(`openstack port delete ${portId} failed: ${r.stderr.trim()}`);
    done.push(`port ${portName}`);
  }
  if (info) done.push(`tenant ${name} (was on ${info.host})`);
  return done;
}

/** What a ping probe saw: every send and reply, timestamped by ping itself (-D). */
export interface PingReport {
  readonly target: string;
  readonly sent: number;
  readonly replies: number;
  readonly lost: number;
  /** Epoch ms of the first and last reply. */
  readonly firstReplyAt: number | undefined;
  readonly lastReplyAt: number | undefined;
  /** The longest time between two consecutive replies, and when it began (epoch ms). */
  readonly longestGapMs: number;
  readonly longestGapFrom: number | undefined;
  /** With a fault time: from the last reply before it to the first after it (the tenant's outage), and from the
   * fault to that first reply; undefined when no reply came after the fault. */
  readonly faultGapMs?: number;
  readonly firstReplyAfterFaultMs?: number;
}

/**
 * Reads `ping -D -O -n` output: `[1733238000.123456] 64 bytes from ...: icmp_seq=12 ...` for a reply and
 * `[...] no answer yet for icmp_seq=13` for a send unanswered when the next one goes.
 */
export function parsePing(output: string, target: string, faultAt?: number): PingReport {
  const replies: { t: number; seq: number }[] = [];
  let maxSeq = 0;
  for (const line of output.split('\n')) {
    const m = /^\[(\d+\.\d+)\] (.*icmp_seq=(\d+).*)$/.exec(line);
    if (!m?.[1] || !m[2] || !m[3]) continue;
    const t = Math.round(Number(m[1]) * 1000);
    const seq = Number(m[3]);
    maxSeq = Math.max(maxSeq, seq);
    if (/bytes from/.test(m[2])) replies.push({ t, seq });
  }
  const seen = new Set(replies.map((r) => r.seq));
  let longestGapMs = 0;
  let longestGapFrom: number | undefined;
  for (let i = 1; i < replies.length; i++) {
    const a = replies[i - 1];
    const b = replies[i];
    if (a && b && b.t - a.t > longestGapMs) {
      longestGapMs = b.t - a.t;
      longestGapFrom = a.t;
    }
  }
  const before = faultAt === undefined ? undefined : replies.filter((r) => r.t < faultAt).at(-1);
  const after = faultAt === undefined ? undefined : replies.find((r) => r.t >= faultAt);
  return {
    ...(faultAt !== undefined && after
      ? { faultGapMs: after.t - (before?.t ?? faultAt), firstReplyAfterFaultMs: after.t - faultAt }
      : {}),
    target,
    sent: maxSeq,
    replies: seen.size,
    lost: Math.max(0, maxSeq - seen.size),
    firstReplyAt: replies[0]?.t,
    lastReplyAt: replies.at(-1)?.t,
    longestGapMs,
    longestGapFrom,
  };
}

/** A running ping from a tenant to the outside, every `intervalMs`; ended by its pid. */
export interface PingProbe {
  /** Ends ping (SIGINT, then SIGKILL) and reads what it saw, measuring around `faultAt` when given. */
  readonly stop: (faultAt?: number) => Promise<PingReport>;
}

export function startPing(state: LabState, tenant: string, target: string, intervalMs = 50): PingProbe {
  const ns = tenantNs(state.name, tenant);
  // -O reports each send left unanswered; -D stamps every line; -W 1: a reply later than 1 s counts as lost.
  const child = spawn(
    'ip',
    ['netns', 'exec', ns, 'ping', '-D', '-O', '-n', '-W', '1', '-i', String(intervalMs / 1000), target],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  child.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
  return {
    stop: async (faultAt?: number) => {
      if (child.pid !== undefined && child.exitCode === null) process.kill(child.pid, 'SIGINT');
      await Promise.race([exited, sleep(5000)]);
      if (child.exitCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
      return parsePing(out, target, faultAt);
    },
  };
}

/** The outside namespace exists (the lab was made with an external network). */
export async function hasOutside(state: LabState): Promise<boolean> {
  return (await listNamespaces()).includes(outsideNs(state.name));
}
