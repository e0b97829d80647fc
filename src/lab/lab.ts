import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LabHost } from '../hosts/lab.js';
import { isAlive, procStat } from '../hosts/proc.js';
import { quoted } from '../inventory/errors.js';
import { execArgv, execOrThrow } from '../util/exec.js';
import { sleep } from '../util/wait.js';

export const DEFAULT_LAB = 'stackha';
export const DEFAULT_SUBNET = '198.18.0.0/24';
const LAB_NAME = /^[a-z][a-z0-9]{0,7}$/;

export interface LabHostRecord {
  readonly name: string;
  readonly address: string;
}

/** What `lab up` made, kept in the lab's state directory so `down` and faults know the topology. */
export interface LabState {
  readonly name: string;
  /** First three octets of the /24, e.g. 198.18.0 */
  readonly prefix: string;
  readonly hosts: readonly LabHostRecord[];
  readonly client: LabHostRecord;
}

export const labStateDir = (lab: string): string => `/var/lib/stackha/labs/${lab}`;
/** Where the lab's inventory lives; kept across `lab down` so a user's edits survive (remove with --purge). */
export const labConfigDir = (lab: string): string => `/etc/stackha/${lab}`;
export const hostRoot = (lab: string, host: string): string => join(labStateDir(lab), 'hosts', host);
export const switchNs = (lab: string): string => `${lab}-sw`;
export const hostNs = (lab: string, host: string): string => `${lab}-${host}`;
export const clientNs = (lab: string): string => `${lab}-client`;

export function validateLabName(name: string): void {
  if (!LAB_NAME.test(name)) {
    throw new Error(
      `lab name ${quoted(name)}: 1-8 characters, a lowercase letter then lowercase letters or digits`,
    );
  }
}

/** Parses `198.18.0.0/24` into its prefix `198.18.0`. Only /24 subnets are supported. */
export function subnetPrefix(subnet: string): string {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.0\/24$/.exec(subnet);
  if (!m || [m[1], m[2], m[3]].some((o) => Number(o) > 255)) {
    throw new Error(`subnet "${subnet}": expected a /24 such as 198.18.0.0/24`);
  }
  return `${m[1]}.${m[2]}.${m[3]}`;
}

export function readLabState(lab: string): LabState | undefined {
  try {
    return JSON.parse(readFileSync(join(labStateDir(lab), 'lab.json'), 'utf8')) as LabState;
  } catch {
    return undefined;
  }
}

export function labHost(state: LabState, name: string): LabHost {
  const rec = state.hosts.find((h) => h.name === name);
  if (!rec) throw new Error(`lab ${state.name} has no host ${name}`);
  return new LabHost(rec.name, rec.address, hostNs(state.name, rec.name), hostRoot(state.name, rec.name));
}

/** The client namespace, where probes and load run: nothing of the lab is contacted from the root namespace. */
export function labClient(state: LabState): LabHost {
  return new LabHost(
    'client',
    state.client.address,
    clientNs(state.name),
    join(labStateDir(state.name), 'client'),
  );
}

async function ip(...args: string[]): Promise<string> {
  return execOrThrow(['ip', ...args], 'lab', { timeoutMs: 15_000 });
}

export async function listNamespaces(): Promise<string[]> {
  const r = await execArgv(['ip', 'netns', 'list'], { timeoutMs: 10_000 });
  return r.stdout
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => n.length > 0);
}

async function routeFor(prefix: string): Promise<string | undefined> {
  const out = await ip('route', 'show', `${prefix}.0/24`);
  return out.trim() || undefined;
}

function hostsFile(state: LabState): string {
  const lines = ['127.0.0.1 localhost', '::1 localhost ip6-localhost ip6-loopback'];
  for (const h of state.hosts) lines.push(`${h.address} ${h.name}`);
  lines.push(`${state.client.address} client`);
  return `${lines.join('\n')}\n`;
}

async function addNode(state: LabState, ns: string, veth: string, address: string): Promise<void> {
  const sw = switchNs(state.name);
  await ip('netns', 'add', ns);
  await ip('-n', sw, 'link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
  await ip('-n', sw, 'link', 'set', veth, 'master', 'br0', 'up');
  await ip('-n', ns, 'link', 'set', 'lo', 'up');
  await ip('-n', ns, 'addr', 'add', `${address}/24`, 'dev', 'eth0');
  await ip('-n', ns, 'link', 'set', 'eth0', 'up');
  // Every haproxy binds the VIP whether or not its host holds it.
  await execOrThrow(['ip', 'netns', 'exec', ns, 'sysctl', '-q', '-w', 'net.ipv4.ip_nonlocal_bind=1'], 'lab');
}

/**
 * Brings a lab up: a switch namespace with a bridge, one namespace per host and a client namespace, names in
 * per-namespace hosts files, and a blackhole route for the subnet in the root namespace. Idempotent for an
 * existing lab of the same shape.
 */
export async function labUp(opts: { name: string; hostCount: number; subnet: string }): Promise<LabState> {
  validateLabName(opts.name);
  if (!Number.isInteger(opts.hostCount) || opts.hostCount < 1 || opts.hostCount > 9) {
    throw new Error(`host count ${opts.hostCount}: from 1 to 9`);
  }
  const prefix = subnetPrefix(opts.subnet);
  const existing = readLabState(opts.name);
  if (existing && existing.prefix !== prefix) {
    throw new Error(`lab ${opts.name} exists on ${existing.prefix}.0/24; take it down first`);
  }
  const hosts = Array.from({ length: opts.hostCount }, (_, i) => ({
    name: `ctl${i + 1}`,
    address: `${prefix}.${11 + i}`,
  }));
  // Keep the hosts the lab already has (shrinking is `lab remove-host`); add from ctl1.. until it has hostCount.
  const merged = [...(existing?.hosts ?? [])];
  for (const h of hosts) {
    if (merged.length >= opts.hostCount) break;
    if (!merged.some((e) => e.name === h.name || e.address === h.address)) merged.push(h);
  }
  const state: LabState = {
    name: opts.name,
    prefix,
    hosts: merged,
    client: { name: 'client', address: `${prefix}.200` },
  };

  const route = await routeFor(prefix);
  if (route && !route.startsWith('blackhole')) {
    throw new Error(`the root namespace already routes ${prefix}.0/24 (${route}); choose another --subnet`);
  }
  if (route && !existing) {
    throw new Error(`${prefix}.0/24 is already blackholed, probably by another lab; choose another --subnet`);
  }
  // The safety net goes in first: from here on, nothing for this subnet can leave the machine.
  if (!route) await ip('route', 'add', 'blackhole', `${prefix}.0/24`);

  const present = new Set(await listNamespaces());
  const sw = switchNs(opts.name);
  if (!present.has(sw)) {
    await ip('netns', 'add', sw);
    await ip('-n', sw, 'link', 'set', 'lo', 'up');
    await ip('-n', sw, 'link', 'add', 'br0', 'type', 'bridge');
    await ip(
      '-n',
      sw,
      'link',
      'set',
      'br0',
      'type',
      'bridge',
      'mcast_snooping',
      '0',
      'stp_state',
      '0',
      'forward_delay',
      '0',
    );
    await ip('-n', sw, 'link', 'set', 'br0', 'up');
  }
  // Traversable: daemons drop to their own users (mysql, memcache). Secrets are protected file by file (0600).
  mkdirSync(labStateDir(opts.name), { recursive: true, mode: 0o755 });
  for (const dir of ['/var/lib/stackha', '/var/lib/stackha/labs', labStateDir(opts.name)])
    chmodSync(dir, 0o755);
  for (const h of state.hosts) {
    const ns = hostNs(opts.name, h.name);
    if (!present.has(ns)) await addNode(state, ns, `v${h.name}`, h.address);
    mkdirSync(hostRoot(opts.name, h.name), { recursive: true });
  }
  if (!present.has(clientNs(opts.name)))
    await addNode(state, clientNs(opts.name), 'vclient', state.client.address);
  mkdirSync(join(labStateDir(opts.name), 'client'), { recursive: true });
  writeHostsFiles(state);
  writeFileSync(join(labStateDir(opts.name), 'lab.json'), `${JSON.stringify(state, null, 2)}\n`);
  return state;
}

/**
 * Every namespace's hosts file, written in place: `ip netns exec` bind-mounts the file, so a daemon started earlier
 * keeps seeing this inode (a rename would leave it on the old one) and learns the names of hosts added later.
 */
function writeHostsFiles(state: LabState): void {
  for (const ns of [...state.hosts.map((h) => hostNs(state.name, h.name)), clientNs(state.name)]) {
    mkdirSync(`/etc/netns/${ns}`, { recursive: true });
    writeFileSync(`/etc/netns/${ns}/hosts`, hostsFile(state));
  }
}

/** The name and address a lab's next host gets: the lowest free ctlN, at .(10+N). */
export function nextLabHost(state: Pick<LabState, 'prefix' | 'hosts'>): LabHostRecord {
  const used = new Set(state.hosts.map((h) => h.name));
  for (let i = 1; i <= 189; i++) {
    const name = `ctl${i}`;
    const address = `${state.prefix}.${10 + i}`;
    if (!used.has(name) && !state.hosts.some((h) => h.address === address)) return { name, address };
  }
  throw new Error('the lab has no free host address left');
}

/**
 * Grows a lab by one host (`stackha lab add-host`): a new namespace on the lab's switch at the next free address,
 * and its name in every namespace's hosts file. It runs nothing: `stackha scale add` deploys onto it.
 */
export async function labAddHost(lab: string): Promise<{ state: LabState; host: LabHostRecord }> {
  validateLabName(lab);
  const state = readLabState(lab);
  if (!state) throw new Error(`lab ${lab} is not up`);
  if (state.hosts.length >= 9) throw new Error(`lab ${lab} has ${state.hosts.length} hosts: 9 at most`);
  const host = nextLabHost(state);
  const next: LabState = { ...state, hosts: [...state.hosts, host] };
  const ns = hostNs(lab, host.name);
  if (!(await listNamespaces()).includes(ns)) await addNode(next, ns, `v${host.name}`, host.address);
  mkdirSync(hostRoot(lab, host.name), { recursive: true });
  writeHostsFiles(next);
  writeFileSync(join(labStateDir(lab), 'lab.json'), `${JSON.stringify(next, null, 2)}\n`);
  return { state: next, host };
}

/**
 * Shrinks a lab by one host (`stackha lab remove-host`): every process of its namespace ended, the namespace (and so
 * its link on the switch), its hosts file and its data removed, its name dropped from the other hosts files.
 */
export async function labRemoveHost(lab: string, host: string): Promise<LabState> {
  validateLabName(lab);
  const state = readLabState(lab);
  if (!state) throw new Error(`lab ${lab} is not up`);
  labHost(state, host);
  const ns = hostNs(lab, host);
  if ((await listNamespaces()).includes(ns)) {
    await endNamespaceProcesses(ns);
    await execArgv(['ip', 'netns', 'del', ns], { timeoutMs: 10_000 });
  }
  rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
  rmSync(hostRoot(lab, host), { recursive: true, force: true });
  const next: LabState = { ...state, hosts: state.hosts.filter((h) => h.name !== host) };
  writeHostsFiles(next);
  writeFileSync(join(labStateDir(lab), 'lab.json'), `${JSON.stringify(next, null, 2)}\n`);
  return next;
}

/** Pids of every process inside a namespace (the only safe way to find "every process of a host"). */
export async function namespacePids(ns: string): Promise<number[]> {
  const r = await execArgv(['ip', 'netns', 'pids', ns], { timeoutMs: 10_000 });
  if (r.code !== 0) return [];
  return r.stdout
    .split('\n')
    .map((l) => Number(l.trim()))
    .filter((n) => Number.isInteger(n) && n > 0);
}

/** Kills every process of a namespace: a host losing power. */
export async function killNamespace(ns: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<number> {
  const pids = await namespacePids(ns);
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      /* already gone */
    }
  }
  return pids.length;
}

async function endNamespaceProcesses(ns: string): Promise<void> {
  const pids = await namespacePids(ns);
  const start = new Map(pids.map((p) => [p, procStat(p)?.startTime]));
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      /* gone */
    }
  }
  const deadline = Date.now() + 10_000;
  while (pids.some((p) => isAlive(p, start.get(p))) && Date.now() < deadline) await sleep(200);
  for (const pid of pids) {
    if (isAlive(pid, start.get(pid))) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }
}

/** Takes a lab down: every process (by namespace membership), namespace, hosts file, route and host data. */
export async function labDown(name: string, opts: { purge?: boolean } = {}): Promise<string[]> {
  validateLabName(name);
  const done: string[] = [];
  const state = readLabState(name);
  const namespaces = (await listNamespaces()).filter((ns) => ns.startsWith(`${name}-`));
  for (const ns of namespaces) await endNamespaceProcesses(ns);
  for (const ns of namespaces) {
    await execArgv(['ip', 'netns', 'del', ns], { timeoutMs: 10_000 });
    done.push(`namespace ${ns}`);
  }
  if (existsSync('/etc/netns')) {
    for (const d of readdirSync('/etc/netns')) {
      if (d.startsWith(`${name}-`)) rmSync(`/etc/netns/${d}`, { recursive: true, force: true });
    }
  }
  if (state) {
    const route = await routeFor(state.prefix);
    if (route?.startsWith('blackhole')) {
      await ip('route', 'del', 'blackhole', `${state.prefix}.0/24`);
      done.push(`route blackhole ${state.prefix}.0/24`);
    }
  }
  rmSync(labStateDir(name), { recursive: true, force: true });
  if (opts.purge) rmSync(labConfigDir(name), { recursive: true, force: true });
  return done;
}

export interface LabStatus {
  readonly name: string;
  readonly exists: boolean;
  readonly namespaces: readonly { ns: string; processes: number; rssKiB: number }[];
  readonly route: string | undefined;
  readonly totalRssKiB: number;
}

function rssKiB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m?.[1] ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

export async function labStatus(name: string): Promise<LabStatus> {
  validateLabName(name);
  const state = readLabState(name);
  const namespaces = [];
  for (const ns of (await listNamespaces()).filter((n) => n.startsWith(`${name}-`)).sort()) {
    const pids = await namespacePids(ns);
    namespaces.push({ ns, processes: pids.length, rssKiB: pids.reduce((s, p) => s + rssKiB(p), 0) });
  }
  const route = state ? await routeFor(state.prefix) : undefined;
  return {
    name,
    exists: state !== undefined,
    namespaces,
    route,
    totalRssKiB: namespaces.reduce((s, n) => s + n.rssKiB, 0),
  };
}

/** Cuts a host's link on the lab switch (silent drop, like a pulled cable) or restores it. */
export async function setLink(state: LabState, host: string, up: boolean): Promise<void> {
  labHost(state, host);
  await ip('-n', switchNs(state.name), 'link', 'set', `v${host}`, up ? 'up' : 'down');
}

/**
 * A host losing power: every process of it killed and its link dead. Its kernel state (a VIP keepalived had
 * added) would be gone on a real machine, so the link stays down until `powerOnHost` clears it.
 */
export async function crashHost(state: LabState, host: string): Promise<number> {
  labHost(state, host);
  await setLink(state, host, false);
  return killNamespace(hostNs(state.name, host));
}

/** Brings a crashed host back as a reboot would: only its own address, link up, no daemons running. */
export async function powerOnHost(state: LabState, host: string): Promise<void> {
  const h = labHost(state, host);
  const ns = hostNs(state.name, host);
  await ip('-n', ns, 'addr', 'flush', 'dev', 'eth0');
  await ip('-n', ns, 'addr', 'add', `${h.address}/24`, 'dev', 'eth0');
  await setLink(state, host, true);
}
