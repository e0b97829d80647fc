// The embedded lab: hosts as namespaces on this machine. Each host (and the client) has its own network namespace on
// the lab's switch, and its own mount and UTS namespaces in which its own directories sit over the real paths: /etc,
// /root, /srv and /var are overlays over the machine's (writes are the host's own), /run, /tmp and /dev/shm are fresh
// tmpfs (empty at every boot), /sys shows its own network devices, and it has its own host name. So a host path is
// the same path in the lab and on a machine, and what OpenStack's packages hard-code (/etc/nova, /var/lib/nova,
// /run/netns, /var/lock) is per host. Measured on this machine: /work/notes/mount-namespaces.md.
import { spawn } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { LabHost, nsenterArgs } from '../hosts/lab.js';
import { groupMembers, isAlive, procStat } from '../hosts/proc.js';
import { writeFileAtomic } from '../util/atomic.js';
import { BASE_ENV, execArgv, execOrThrow } from '../util/exec.js';
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

/**
 * The lab's "outside": a second bridge on the switch (Neutron's provider network physnet1) that every host reaches
 * through eth1, with no address of its own, and one namespace on it standing for the world beyond (first address of
 * the external /24). It is derived from the lab's subnet: 198.18.N.0/24 gives 198.19.N.0/24 (both in the
 * benchmarking range 198.18.0.0/15); another subnet has no outside namespace (its hosts still get eth1).
 */
export function externalPrefix(prefix: string): string | undefined {
  const m = /^198\.18\.(\d{1,3})$/.exec(prefix);
  return m ? `198.19.${m[1]}` : undefined;
}
export const outsideNs = (lab: string): string => `${lab}-out`;
/** The external bridge in the switch namespace, and each host's link to it there. */
const EXTERNAL_BRIDGE = 'brx';
const externalVeth = (host: string) => `x${host}`;

/** Every lab's state: lab.json, and each host's overlay layers (hidden inside every host). */
export const LABS_DIR = '/var/lib/stackha/labs';
export const labStateDir = (lab: string): string => join(LABS_DIR, lab);
/** Where the lab's inventory lives; kept across `lab down` so a user's edits survive (remove with --purge). */
export const labConfigDir = (lab: string): string => `/etc/stackha/${lab}`;
/** A host's persistent layers on the machine: <layer>/{upper,work} for /etc, /var, /root, /srv. */
export const hostStateDir = (lab: string, host: string): string => join(labStateDir(lab), 'hosts', host);
/** The lab's runtime files on the machine: namespace files (a private bind mount) and each host's anchor. */
export const labRunDir = (lab: string): string => `/run/stackha/labs/${lab}`;
export const nsFileDir = (lab: string): string => join(labRunDir(lab), 'ns');
export const switchNs = (lab: string): string => `${lab}-sw`;
export const hostNs = (lab: string, host: string): string => `${lab}-${host}`;
export const clientNs = (lab: string): string => `${lab}-client`;
export const CLIENT = 'client';

export function validateLabName(name: string): void {
  if (!LAB_NAME.test(name)) {
    throw new Error(
      `lab name "${name}": 1-8 characters, a lowercase letter then lowercase letters or digits`,
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

/** The namespace files of a lab host (or the client). */
export function hostNamespaces(lab: string, host: string): { net: string; mnt: string; uts: string } {
  return {
    net: `/run/netns/${host === CLIENT ? clientNs(lab) : hostNs(lab, host)}`,
    mnt: join(nsFileDir(lab), `${host}.mnt`),
    uts: join(nsFileDir(lab), `${host}.uts`),
  };
}

const anchorFile = (lab: string, host: string): string => join(labRunDir(lab), 'anchors', host);

function makeHost(state: LabState, rec: LabHostRecord): LabHost {
  return new LabHost(
    rec.name,
    rec.address,
    hostNamespaces(state.name, rec.name),
    anchorFile(state.name, rec.name),
  );
}

export function labHost(state: LabState, name: string): LabHost {
  const rec = state.hosts.find((h) => h.name === name);
  if (!rec) throw new Error(`lab ${state.name} has no host ${name}`);
  return makeHost(state, rec);
}

/** The client namespace, where probes and load run: nothing of the lab is contacted from the root namespace. */
export function labClient(state: LabState): LabHost {
  return makeHost(state, state.client);
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

function hostsFile(state: LabState, self: string): string {
  const lines = ['127.0.0.1 localhost', '::1 localhost ip6-localhost ip6-loopback'];
  for (const h of state.hosts) lines.push(`${h.address} ${h.name}`);
  lines.push(`${state.client.address} ${CLIENT}`);
  if (self === CLIENT) lines.push(`127.0.1.1 ${CLIENT}`);
  return `${lines.join('\n')}\n`;
}

/**
 * What the first process of a host's new mount and UTS namespaces runs (already in the host's network namespace):
 * its name, its own layers over the machine's directories, fresh volatile state, its own sysfs, the lab state hidden.
 */
const SETUP = `set -eu
H=$1; S=$2; HIDE=$3
hostname "$H"
# Nothing inherited under /run (the machine's /run/netns and its namespace files), no other namespace file held.
for t in $(findmnt -rn -o TARGET | grep -E "^/run(/|$)" | sort -r); do umount -l "$t"; done
for t in $(findmnt -rn -t nsfs -o TARGET | sort -r); do umount -l "$t"; done
O=redirect_dir=on
mount -t overlay overlay -o "$O,lowerdir=/etc,upperdir=$S/etc/upper,workdir=$S/etc/work" /etc
# The machine's lab inventories and passwords are not the host's: its own /etc/stackha instead.
mkdir -p /etc/stackha
mount --bind "$S/stackha-etc" /etc/stackha
mount -t overlay overlay -o "$O,lowerdir=/root,upperdir=$S/root/upper,workdir=$S/root/work" /root
mount -t overlay overlay -o "$O,lowerdir=/srv,upperdir=$S/srv/upper,workdir=$S/srv/work" /srv
# /var last: the upper directories live under it on the machine, and an overlay is no upper directory.
mount -t overlay overlay -o "$O,lowerdir=/var,upperdir=$S/var/upper,workdir=$S/var/work" /var
mount -t tmpfs -o mode=0755,nosuid,nodev,size=256m tmpfs /run
mount -t tmpfs -o mode=1777,nosuid,nodev,size=1g tmpfs /tmp
mount -t tmpfs -o mode=1777,nosuid,nodev,size=256m tmpfs /dev/shm
umount -l /sys
mount -t sysfs -o nosuid,nodev,noexec sysfs /sys
# Every host's layers sit in the machine's /var: no host may reach them.
mount -t tmpfs -o ro,mode=0755,size=4k tmpfs "$HIDE"
# Mounts the host makes later (ip netns add) reach the processes it starts (ip netns exec), never the machine.
mount --make-rshared /
`;

/** What a boot does to /run: the directories Debian's packages expect, and stackha's own. */
const BOOT_RUN = `install -d -m 1777 /run/lock
if command -v systemd-tmpfiles >/dev/null; then systemd-tmpfiles --create --prefix=/run >/dev/null 2>&1 || true; fi
install -d -m 0755 /run/stackha /run/netns`;

/** A reboot of the volatile state: every mount under /run detached (the host's own namespaces too), fresh tmpfs. */
const REBOOT = `for t in $(findmnt -rn -o TARGET | grep -E "^/run(/|$)" | sort -r); do umount -l "$t"; done
mount -t tmpfs -o mode=0755,nosuid,nodev,size=256m tmpfs /run
umount -l /tmp; mount -t tmpfs -o mode=1777,nosuid,nodev,size=1g tmpfs /tmp
umount -l /dev/shm; mount -t tmpfs -o mode=1777,nosuid,nodev,size=256m tmpfs /dev/shm`;

/** The ns-file directory must be a private mount: a mount namespace file cannot be bound onto a shared one. */
async function ensureNsFileDir(lab: string): Promise<void> {
  const dir = nsFileDir(lab);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  mkdirSync(join(labRunDir(lab), 'anchors'), { recursive: true, mode: 0o755 });
  const r = await execArgv(['mountpoint', '-q', dir], { timeoutMs: 5000 });
  if (r.code !== 0) {
    await execOrThrow(['mount', '--bind', dir, dir], 'lab', { timeoutMs: 10_000 });
    await execOrThrow(['mount', '--make-private', dir], 'lab', { timeoutMs: 10_000 });
  }
}

/** The network namespace of a host, wired to the lab's switch. */
async function addNode(state: LabState, ns: string, veth: string, address: string): Promise<void> {
  const sw = switchNs(state.name);
  await ip('netns', 'add', ns);
  await ip('-n', sw, 'link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
  await ip('-n', sw, 'link', 'set', veth, 'master', 'br0', 'up');
  await ip('-n', ns, 'link', 'set', 'lo', 'up');
  await ip('-n', ns, 'addr', 'add', `${address}/24`, 'dev', 'eth0');
  await ip('-n', ns, 'link', 'set', 'eth0', 'up');
  // Every haproxy binds the VIP whether or not its host holds it (a sysctl of the network namespace).
  await execOrThrow(['ip', 'netns', 'exec', ns, 'sysctl', '-q', '-w', 'net.ipv4.ip_nonlocal_bind=1'], 'lab');
  if (ns === clientNs(state.name)) return;
  // eth1: the host's link to the provider network; the linuxbridge agent enslaves it, so it has no address.
  const x = externalVeth(veth.slice(1));
  await ip('-n', sw, 'link', 'add', x, 'type', 'veth', 'peer', 'name', 'eth1', 'netns', ns);
  await ip('-n', sw, 'link', 'set', x, 'master', EXTERNAL_BRIDGE, 'up');
  await ip('-n', ns, 'link', 'set', 'eth1', 'up');
}

/** The outside namespace on the external bridge, at the external /24's first address. */
async function addOutside(state: LabState, ext: string): Promise<void> {
  const ns = outsideNs(state.name);
  if ((await listNamespaces()).includes(ns)) return;
  const sw = switchNs(state.name);
  await ip('netns', 'add', ns);
  await ip('-n', sw, 'link', 'add', 'xout', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
  await ip('-n', sw, 'link', 'set', 'xout', 'master', EXTERNAL_BRIDGE, 'up');
  await ip('-n', ns, 'link', 'set', 'lo', 'up');
  await ip('-n', ns, 'addr', 'add', `${ext}.1/24`, 'dev', 'eth0');
  await ip('-n', ns, 'link', 'set', 'eth0', 'up');
}

/** A host's mount and UTS namespaces with its layers, kept alive by their namespace files. */
async function createHostNamespaces(lab: string, host: string): Promise<void> {
  const ns = hostNamespaces(lab, host);
  const dir = hostStateDir(lab, host);
  for (const layer of ['etc', 'var', 'root', 'srv'])
    for (const sub of ['upper', 'work']) mkdirSync(join(dir, layer, sub), { recursive: true });
  mkdirSync(join(dir, 'stackha-etc'), { recursive: true, mode: 0o755 });
  for (const f of [ns.mnt, ns.uts]) if (!existsSync(f)) writeFileSync(f, '');
  await execOrThrow(
    [
      'nsenter',
      `--net=${ns.net}`,
      'unshare',
      `--mount=${ns.mnt}`,
      `--uts=${ns.uts}`,
      '--propagation',
      'private',
      'sh',
      '-c',
      SETUP,
      'setup',
      host,
      dir,
      LABS_DIR,
    ],
    `lab host ${host}`,
    { timeoutMs: 30_000 },
  );
}

/** The inode of a namespace file: what /proc/PID/ns/<kind> of a process inside reads as `kind:[inode]`. */
function nsInode(file: string): number | undefined {
  try {
    return statSync(file).ino;
  } catch {
    return undefined;
  }
}

/** True when a process is in the given mount namespace (a freshly spawned one is still in the root's a moment). */
function inMountNs(pid: number, file: string): boolean {
  try {
    return readlinkSync(`/proc/${pid}/ns/mnt`) === `mnt:[${nsInode(file)}]`;
  } catch {
    return false;
  }
}

/**
 * A host's boot: /run laid out, its anchor started (a process inside the host through which stackha reads and writes
 * the host's files: /proc/<anchor>/root), its /etc/hosts and /etc/hostname written.
 */
async function bootHost(state: LabState, host: string): Promise<void> {
  const ns = hostNamespaces(state.name, host);
  await execOrThrow(['nsenter', ...nsenterArgs(ns), '--', 'sh', '-c', BOOT_RUN], `lab host ${host}`, {
    timeoutMs: 30_000,
  });
  const child = spawn('nsenter', [...nsenterArgs(ns), '--', 'sleep', 'infinity'], {
    detached: true,
    stdio: 'ignore',
    env: { ...BASE_ENV },
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error(`lab host ${host}: could not start its anchor`);
  child.unref();
  for (let i = 0; i < 200 && !inMountNs(pid, ns.mnt); i++) await sleep(10);
  if (!inMountNs(pid, ns.mnt))
    throw new Error(`lab host ${host}: its anchor did not enter the host's namespaces`);
  writeFileSync(anchorFile(state.name, host), `${pid} ${procStat(pid)?.startTime ?? '0'}\n`);
  writeHostsFile(state, host);
}

/** A host's /etc/hosts and /etc/hostname (in its own /etc): every lab host by name, and the client. */
function writeHostsFile(state: LabState, host: string): void {
  const h = makeHost(
    state,
    host === CLIENT ? state.client : (state.hosts.find((x) => x.name === host) as LabHostRecord),
  );
  writeFileAtomic(h.machinePath('/etc/hosts'), hostsFile(state, host), { mode: 0o644 });
  writeFileAtomic(h.machinePath('/etc/hostname'), `${host}\n`, { mode: 0o644 });
}

function writeHostsFiles(state: LabState): void {
  for (const h of [...state.hosts.map((x) => x.name), CLIENT])
    if (anchorAlive(state.name, h)) writeHostsFile(state, h);
}

function anchorAlive(lab: string, host: string): boolean {
  try {
    const [pid, start] = readFileSync(anchorFile(lab, host), 'utf8').trim().split(' ');
    return isAlive(Number(pid), start);
  } catch {
    return false;
  }
}

/** A whole host (or the client): network namespace on the switch, mount and UTS namespaces, booted. */
async function addHost(state: LabState, host: string, address: string): Promise<void> {
  const ns = host === CLIENT ? clientNs(state.name) : hostNs(state.name, host);
  if (!(await listNamespaces()).includes(ns)) await addNode(state, ns, `v${host}`, address);
  const files = hostNamespaces(state.name, host);
  if (!(await isMountPoint(files.mnt))) {
    await createHostNamespaces(state.name, host);
    mkdirSync(join(labRunDir(state.name), 'mounted'), { recursive: true });
    writeFileSync(join(labRunDir(state.name), 'mounted', host), `${Date.now()}\n`);
  }
  if (!anchorAlive(state.name, host)) await bootHost(state, host);
}

/**
 * Lab hosts that may not see packages installed since their /etc and /var overlays were mounted: overlayfs keeps
 * what it has looked up of a lower layer that changed underneath it (dpkg's status file, a new package's /etc
 * files). `sync; echo 2 > /proc/sys/vm/drop_caches` makes them look again (measured); recreating the lab does too.
 */
export function hostsBehindPackages(lab: string): string[] {
  let changed: number;
  try {
    changed = statSync('/var/lib/dpkg/status').mtimeMs;
  } catch {
    return [];
  }
  const dir = join(labRunDir(lab), 'mounted');
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((h) => Number(readFileSync(join(dir, h), 'utf8').trim()) < changed);
}

async function isMountPoint(path: string): Promise<boolean> {
  if (!existsSync(path)) return false;
  return (await execArgv(['mountpoint', '-q', path], { timeoutMs: 5000 })).code === 0;
}

/**
 * Brings a lab up: a switch namespace with a bridge, one host per inventory host and a client, each with its own
 * namespaces and names, and a blackhole route for the subnet in the root namespace. Idempotent for an existing lab.
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
    client: { name: CLIENT, address: `${prefix}.200` },
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

  const sw = switchNs(opts.name);
  if (!(await listNamespaces()).includes(sw)) {
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
  if (!(await linkExists(sw, EXTERNAL_BRIDGE))) {
    await ip('-n', sw, 'link', 'add', EXTERNAL_BRIDGE, 'type', 'bridge');
    await ip(
      '-n',
      sw,
      'link',
      'set',
      EXTERNAL_BRIDGE,
      'type',
      'bridge',
      'stp_state',
      '0',
      'forward_delay',
      '0',
    );
    await ip('-n', sw, 'link', 'set', EXTERNAL_BRIDGE, 'up');
  }
  const ext = externalPrefix(prefix);
  if (ext) {
    // The same safety net for the outside's addresses (router gateways, floating IPs).
    const extRoute = await routeFor(ext);
    if (extRoute && !extRoute.startsWith('blackhole'))
      throw new Error(`the root namespace already routes ${ext}.0/24 (${extRoute}); choose another --subnet`);
    if (!extRoute) await ip('route', 'add', 'blackhole', `${ext}.0/24`);
  }
  // Traversable: daemons drop to their own users (mysql, memcache). Secrets are protected file by file (0600).
  mkdirSync(labStateDir(opts.name), { recursive: true, mode: 0o755 });
  for (const dir of ['/var/lib/stackha', LABS_DIR, labStateDir(opts.name)]) chmodSync(dir, 0o755);
  writeFileSync(join(labStateDir(opts.name), 'lab.json'), `${JSON.stringify(state, null, 2)}\n`);
  await ensureNsFileDir(opts.name);
  for (const h of state.hosts) await addHost(state, h.name, h.address);
  await addHost(state, CLIENT, state.client.address);
  if (ext) await addOutside(state, ext);
  writeHostsFiles(state);
  return state;
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
 * Grows a lab by one host (`stackha lab add-host`): a new host at the next free address, and its name in every host's
 * /etc/hosts. It runs nothing: `stackha scale add` deploys onto it.
 */
export async function labAddHost(lab: string): Promise<{ state: LabState; host: LabHostRecord }> {
  validateLabName(lab);
  const state = readLabState(lab);
  if (!state) throw new Error(`lab ${lab} is not up`);
  if (state.hosts.length >= 9) throw new Error(`lab ${lab} has ${state.hosts.length} hosts: 9 at most`);
  const host = nextLabHost(state);
  const next: LabState = { ...state, hosts: [...state.hosts, host] };
  writeFileSync(join(labStateDir(lab), 'lab.json'), `${JSON.stringify(next, null, 2)}\n`);
  await addHost(next, host.name, host.address);
  writeHostsFiles(next);
  return { state: next, host };
}

/**
 * Shrinks a lab by one host (`stackha lab remove-host`): every process of it ended, its namespaces (and so its link on
 * the switch) and its data removed, its name dropped from the other hosts' /etc/hosts.
 */
export async function labRemoveHost(lab: string, host: string): Promise<LabState> {
  validateLabName(lab);
  const state = readLabState(lab);
  if (!state) throw new Error(`lab ${lab} is not up`);
  labHost(state, host);
  await destroyHost(lab, host);
  const next: LabState = { ...state, hosts: state.hosts.filter((h) => h.name !== host) };
  writeFileSync(join(labStateDir(lab), 'lab.json'), `${JSON.stringify(next, null, 2)}\n`);
  writeHostsFiles(next);
  return next;
}

/**
 * Every process of a host: those in its UTS namespace (this includes processes inside network namespaces the host
 * made itself, as neutron's `ip netns exec qrouter-x` does, which its network namespace does not list) and those in
 * its network namespace. Found by namespace membership, never by name.
 */
export async function hostPids(lab: string, host: string): Promise<number[]> {
  const ns = hostNamespaces(lab, host);
  const out = new Set<number>();
  const r = await execArgv(['ip', 'netns', 'pids', ns.net.replace('/run/netns/', '')], { timeoutMs: 10_000 });
  if (r.code === 0)
    for (const l of r.stdout.split('\n')) {
      const n = Number(l.trim());
      if (Number.isInteger(n) && n > 0) out.add(n);
    }
  const uts = nsInode(ns.uts);
  if (uts !== undefined) {
    const want = `uts:[${uts}]`;
    for (const e of readdirSync('/proc')) {
      if (!/^\d+$/.test(e)) continue;
      try {
        if (readlinkSync(`/proc/${e}/ns/uts`) === want) out.add(Number(e));
      } catch {
        /* gone meanwhile */
      }
    }
  }
  return [...out].sort((a, b) => a - b);
}

/** Kills every process of a host: a host losing power. Resolves with how many there were. */
async function killHost(lab: string, host: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<number> {
  const pids = await hostPids(lab, host);
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      /* already gone */
    }
  }
  return pids.length;
}

/** Ends every process of a host: SIGTERM, a grace period, then SIGKILL; by pid only. */
async function endHostProcesses(lab: string, host: string): Promise<void> {
  const pids = await hostPids(lab, host);
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
  const killDeadline = Date.now() + 5000;
  while (pids.some((p) => isAlive(p, start.get(p))) && Date.now() < killDeadline) await sleep(100);
}

/**
 * A host taken apart, in the only order that frees everything: its processes ended (nothing else frees a namespace),
 * its namespace files unmounted and unlinked (the kernel then tears down every mount inside, and unlinking detaches
 * the copies other mount namespaces hold), its network namespace deleted, its layers removed.
 */
async function destroyHost(lab: string, host: string): Promise<void> {
  await endHostProcesses(lab, host);
  const ns = hostNamespaces(lab, host);
  for (const f of [ns.mnt, ns.uts]) {
    if (await isMountPoint(f)) await execArgv(['umount', f], { timeoutMs: 10_000 });
    rmSync(f, { force: true });
  }
  rmSync(anchorFile(lab, host), { force: true });
  const name = ns.net.replace('/run/netns/', '');
  if ((await listNamespaces()).includes(name))
    await execArgv(['ip', 'netns', 'del', name], { timeoutMs: 10_000 });
  rmSync(hostStateDir(lab, host), { recursive: true, force: true });
}

/** Takes a lab down: every process, namespace, mount, route and host layer. */
export async function labDown(name: string, opts: { purge?: boolean } = {}): Promise<string[]> {
  validateLabName(name);
  const done: string[] = [];
  const state = readLabState(name);
  // Every host the state names, and any leftover namespace or namespace file of this lab.
  const hosts = new Set<string>([...(state?.hosts.map((h) => h.name) ?? []), CLIENT]);
  for (const ns of await listNamespaces())
    if (ns.startsWith(`${name}-`) && ns !== switchNs(name)) hosts.add(ns.slice(name.length + 1));
  if (existsSync(nsFileDir(name)))
    for (const f of readdirSync(nsFileDir(name))) hosts.add(f.replace(/\.(mnt|uts)$/, ''));
  for (const h of hosts) {
    const had = (await listNamespaces()).includes(h === CLIENT ? clientNs(name) : hostNs(name, h));
    await destroyHost(name, h);
    // The outside and tenant namespaces go the same way (their processes by pid, then the namespace).
    const ours = h === 'out' || h.startsWith('tenant-');
    if (had) done.push(ours ? `namespace ${name}-${h}` : `host ${h}`);
  }
  if ((await listNamespaces()).includes(outsideNs(name))) {
    await execArgv(['ip', 'netns', 'del', outsideNs(name)], { timeoutMs: 10_000 });
    done.push(`namespace ${outsideNs(name)}`);
  }
  if ((await listNamespaces()).includes(switchNs(name))) {
    await execArgv(['ip', 'netns', 'del', switchNs(name)], { timeoutMs: 10_000 });
    done.push(`namespace ${switchNs(name)}`);
  }
  if (await isMountPoint(nsFileDir(name))) await execArgv(['umount', nsFileDir(name)], { timeoutMs: 10_000 });
  rmSync(labRunDir(name), { recursive: true, force: true });
  // Hosts files of the labs before they had mount namespaces.
  if (existsSync('/etc/netns'))
    for (const d of readdirSync('/etc/netns'))
      if (d.startsWith(`${name}-`)) rmSync(`/etc/netns/${d}`, { recursive: true, force: true });
  if (state) {
    const route = await routeFor(state.prefix);
    if (route?.startsWith('blackhole')) {
      await ip('route', 'del', 'blackhole', `${state.prefix}.0/24`);
      done.push(`route blackhole ${state.prefix}.0/24`);
    }
    const ext = externalPrefix(state.prefix);
    if (ext && (await routeFor(ext))?.startsWith('blackhole')) {
      await ip('route', 'del', 'blackhole', `${ext}.0/24`);
      done.push(`route blackhole ${ext}.0/24`);
    }
  }
  rmSync(labStateDir(name), { recursive: true, force: true });
  if (opts.purge) rmSync(labConfigDir(name), { recursive: true, force: true });
  return done;
}

export interface LabStatus {
  readonly name: string;
  readonly exists: boolean;
  readonly namespaces: readonly {
    ns: string;
    host: string;
    processes: number;
    pssKiB: number;
    /** Resident memory of each tracked daemon's process group; what no daemon owns is `other`. */
    daemons: Record<string, number>;
  }[];
  readonly route: string | undefined;
  readonly totalPssKiB: number;
}

/**
 * A process's proportional set size: its private pages plus its share of pages it shares with others (libraries,
 * a forking server's workers). Unlike the resident size, the sum over processes is what they really take.
 */
function pssKiB(pid: number): number {
  try {
    const m = /^Pss:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
    return m?.[1] ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

export async function labStatus(name: string): Promise<LabStatus> {
  validateLabName(name);
  const state = readLabState(name);
  const namespaces = [];
  for (const h of [...(state?.hosts.map((x) => x.name) ?? []), ...(state ? [CLIENT] : [])]) {
    const pids = await hostPids(name, h);
    const daemons: Record<string, number> = {};
    const owned = new Set<number>();
    if (state && h !== CLIENT && anchorAlive(name, h)) {
      for (const d of labHost(state, h).runningDaemons()) {
        const members = groupMembers(d.pid);
        for (const p of members) owned.add(p);
        daemons[d.name] = members.reduce((s, p) => s + pssKiB(p), 0);
      }
    }
    const other = pids.filter((p) => !owned.has(p)).reduce((s, p) => s + pssKiB(p), 0);
    if (other > 0) daemons.other = other;
    namespaces.push({
      ns: h === CLIENT ? clientNs(name) : hostNs(name, h),
      host: h,
      processes: pids.length,
      pssKiB: pids.reduce((s, p) => s + pssKiB(p), 0),
      daemons,
    });
  }
  const route = state ? await routeFor(state.prefix) : undefined;
  return {
    name,
    exists: state !== undefined,
    namespaces,
    route,
    totalPssKiB: namespaces.reduce((s, n) => s + n.pssKiB, 0),
  };
}

/** Cuts a host's link on the lab switch (silent drop, like a pulled cable) or restores it. */
export async function setLink(state: LabState, host: string, up: boolean): Promise<void> {
  labHost(state, host);
  const sw = switchNs(state.name);
  await ip('-n', sw, 'link', 'set', `v${host}`, up ? 'up' : 'down');
  // The provider network too: a cut-off or powered-off host's router namespaces must not answer there either.
  if (await linkExists(sw, externalVeth(host)))
    await ip('-n', sw, 'link', 'set', externalVeth(host), up ? 'up' : 'down');
}

async function linkExists(ns: string, link: string): Promise<boolean> {
  return (await execArgv(['ip', '-n', ns, 'link', 'show', link], { timeoutMs: 5000 })).code === 0;
}

/**
 * A host losing power: its link dead and every process of it killed (its anchor too: its files are out of reach
 * until it is powered on). What only a running machine has (the VIP keepalived added, /run) goes at power on.
 */
export async function crashHost(state: LabState, host: string): Promise<number> {
  labHost(state, host);
  await setLink(state, host, false);
  return killHost(state.name, host);
}

/** The links of a host's network namespace other than the lab's own (lo, eth0, eth1). */
async function hostMadeLinks(ns: string): Promise<string[]> {
  const r = await execArgv(['ip', '-n', ns, '-o', 'link', 'show'], { timeoutMs: 5000 });
  return r.stdout
    .split('\n')
    .map((l) => /^\d+: ([^:@\s]+)/.exec(l)?.[1])
    .filter((n): n is string => n !== undefined && !['lo', 'eth0', 'eth1'].includes(n));
}

/** Brings a crashed host back as a reboot would: fresh /run, /tmp and /dev/shm, only its own address, link up, no daemons. */
export async function powerOnHost(state: LabState, host: string): Promise<void> {
  const h = labHost(state, host);
  const left = (await hostPids(state.name, host)).filter((p) => isAlive(p));
  if (left.length > 0) {
    await killHost(state.name, host);
    await sleep(500);
  }
  const files = hostNamespaces(state.name, host);
  await execOrThrow(['nsenter', ...nsenterArgs(files), '--', 'sh', '-c', REBOOT], `lab host ${host}`, {
    timeoutMs: 30_000,
  });
  const ns = hostNs(state.name, host);
  // Bridges, VXLAN and tap devices Neutron's agents made live only while the machine runs.
  for (const link of await hostMadeLinks(ns))
    await execArgv(['ip', '-n', ns, 'link', 'del', link], { timeoutMs: 5000 });
  await ip('-n', ns, 'addr', 'flush', 'dev', 'eth0');
  await ip('-n', ns, 'addr', 'add', `${h.address}/24`, 'dev', 'eth0');
  await setLink(state, host, true);
  await bootHost(state, host);
}
