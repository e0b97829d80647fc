import { existsSync, readFileSync, readlinkSync } from 'node:fs';
import { homedir, networkInterfaces } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { sshPassword } from '../inventory/connection.js';
import { labHost, readLabState } from '../lab/lab.js';
import type { Deployment, HostSpec, SshConnection } from '../model.js';
import { packageRoot } from '../util/paths.js';
import type { Host } from './host.js';
import { Slots, SshError, SshHost } from './ssh.js';

export interface Connection {
  readonly hosts: ReadonlyMap<string, Host>;
  /** Ends the SSH connections (idle ones never keep the process alive, so calling it is optional). */
  close?(): void;
}

export interface ConnectOptions {
  /** known_hosts to check host keys against; default ~/.ssh/known_hosts (or STACKHA_KNOWN_HOSTS). */
  readonly knownHostsFile?: string;
  /**
   * Record the key of a host known_hosts has no key for (default: refuse it; STACKHA_ACCEPT_NEW_HOST_KEYS=1 is the
   * same flag for every command). A changed key is always refused.
   */
  readonly acceptNewHostKeys?: boolean;
  /** How many hosts are connected to at once. */
  readonly concurrency?: number;
  /** Builds the host for an SSH connection (tests). */
  readonly sshHost?: (spec: HostSpec, connection: SshConnection, opts: SshSetup) => SshHost;
}

/** What an SSH host is given besides its connection variables. */
export interface SshSetup {
  readonly knownHostsFile: string;
  readonly acceptNewHostKeys: boolean;
  readonly privateKey: Buffer | undefined;
  readonly password: string | undefined;
  readonly agent: string | undefined;
}

/** Thrown when some hosts cannot be reached: every one of them, each with its cause. Nothing was changed. */
export class UnreachableHosts extends Error {
  readonly code = 'EUNREACHABLE';
  constructor(readonly problems: readonly string[]) {
    super(
      `${problems.length} host${problems.length === 1 ? '' : 's'} cannot be reached; nothing was changed on any host:\n` +
        problems.map((p) => `  ${p}`).join('\n'),
    );
    this.name = 'UnreachableHosts';
  }
}

/**
 * Host objects for every inventory host. With `stackha_lab` set, each inventory host is the lab namespace of the
 * same name (its inventory address must be the lab's address for it), unless its ansible_connection says ssh. SSH
 * hosts are all connected to (and checked: root through sudo -n, systemd) before this returns, so that a host that
 * cannot be reached fails the command before anything is changed on any host.
 */
export async function connect(dep: Deployment, opts: ConnectOptions = {}): Promise<Connection> {
  const hosts = new Map<string, Host>(labHosts(dep));
  const problems: string[] = [];
  const lab = dep.globals.lab;
  const sshSpecs = dep.hosts.filter((h) => h.connection.kind === 'ssh');
  if (sshSpecs.length === 0) return { hosts: ordered(dep, hosts) };
  if (lab !== undefined && !inLabNetwork(sshSpecs.map((h) => h.address))) {
    // Lab traffic never leaves the lab's namespaces: SSH to its hosts goes from a namespace of the lab.
    throw new Error(
      `lab ${lab}: ${sshSpecs.map((h) => h.name).join(', ')} ${sshSpecs.length === 1 ? 'is' : 'are'} reached over SSH, ` +
        "and this process runs in the machine's root network namespace: run stackha inside a namespace of the lab " +
        `(ip netns exec ${lab}-<deployer> stackha ...)`,
    );
  }
  const knownHostsFile =
    opts.knownHostsFile ?? process.env.STACKHA_KNOWN_HOSTS ?? join(homedir(), '.ssh', 'known_hosts');
  const acceptNewHostKeys = opts.acceptNewHostKeys ?? process.env.STACKHA_ACCEPT_NEW_HOST_KEYS === '1';
  const agent = process.env.SSH_AUTH_SOCK || undefined;
  const ssh: SshHost[] = [];
  for (const spec of sshSpecs) {
    const c = spec.connection as SshConnection;
    let privateKey: Buffer | undefined;
    try {
      privateKey = readPrivateKey(dep.configDir, c.privateKeyFile);
    } catch (err) {
      problems.push(`${spec.name}: ${(err as Error).message}`);
      continue;
    }
    const setup: SshSetup = {
      knownHostsFile,
      acceptNewHostKeys,
      privateKey,
      password: sshPassword(spec.vars),
      agent,
    };
    const host = opts.sshHost
      ? opts.sshHost(spec, c, setup)
      : new SshHost({
          name: spec.name,
          address: spec.address,
          connection: c,
          knownHostsFile,
          acceptNewHostKeys,
          privateKey,
          password: setup.password,
          agent,
        });
    ssh.push(host);
  }
  // Every host is tried, a bounded number at once, and every failure reported.
  const slots = new Slots(opts.concurrency ?? 8);
  const results = await Promise.all(
    ssh.map((h) =>
      slots.with(async () => {
        try {
          await h.open();
          return undefined;
        } catch (err) {
          return err instanceof SshError ? err.message : `${h.name}: ${(err as Error).message}`;
        }
      }),
    ),
  );
  for (const r of results) if (r !== undefined) problems.push(r);
  const close = (): void => {
    for (const h of ssh) h.close();
  };
  if (problems.length > 0) {
    close();
    throw new UnreachableHosts(problems);
  }
  for (const h of ssh) hosts.set(h.name, h);
  return { hosts: ordered(dep, hosts), close };
}

/** The lab namespaces of the inventory's lab hosts (none when globals.yml has no stackha_lab). */
function labHosts(dep: Deployment): Map<string, Host> {
  const hosts = new Map<string, Host>();
  const problems: string[] = [];
  const lab = dep.globals.lab;
  const labSpecs = dep.hosts.filter((h) => h.connection.kind === 'lab');
  if (lab === undefined || labSpecs.length === 0) return hosts;
  const state = readLabState(lab);
  if (!state) throw new Error(`lab ${lab} is not up: run \`stackha lab up --name ${lab}\``);
  // Lab hosts run stackha's helper programs (dist/agents) from this checkout, and each host has its own /tmp and /run.
  const root = packageRoot();
  const hidden = ['/tmp', '/run'].find((d) => root === d || root.startsWith(`${d}/`));
  if (hidden)
    throw new Error(
      `stackha runs from ${root}, under ${hidden}: every lab host has a ${hidden} of its own, where this checkout and ` +
        'its helper programs do not exist; clone stackha somewhere else (e.g. /opt/stackha or /root/stackha)',
    );
  for (const spec of labSpecs) {
    const rec = state.hosts.find((h) => h.name === spec.name);
    if (!rec) {
      problems.push(
        `inventory host ${spec.name} is not a host of lab ${lab} (${state.hosts.map((h) => h.name).join(', ')})`,
      );
      continue;
    }
    if (rec.address !== spec.address) {
      problems.push(
        `inventory host ${spec.name} has address ${spec.address}, lab ${lab} gave it ${rec.address}`,
      );
      continue;
    }
    hosts.set(spec.name, labHost(state, spec.name));
  }
  if (problems.length > 0) throw new Error(problems.join('\n'));
  return hosts;
}

/**
 * The connection of a deployment whose hosts are all lab hosts, synchronously (the chaos suite, which only runs in a
 * lab). Refuses SSH hosts: those are reached with connect().
 */
export function connectLab(dep: Deployment): Connection {
  const ssh = dep.hosts.filter((h) => h.connection.kind !== 'lab');
  if (ssh.length > 0 || dep.globals.lab === undefined)
    throw new Error(
      `${ssh.map((h) => h.name).join(', ') || 'these hosts'}: not lab hosts; this command runs only in a lab (stackha_lab)`,
    );
  return { hosts: ordered(dep, labHosts(dep)) };
}

/** The hosts in inventory order. */
function ordered(dep: Deployment, hosts: Map<string, Host>): Map<string, Host> {
  const out = new Map<string, Host>();
  for (const spec of dep.hosts) {
    const h = hosts.get(spec.name);
    if (h) out.set(spec.name, h);
  }
  return out;
}

/**
 * The key named by ansible_ssh_private_key_file (`~/` is the home directory, a relative path is relative to the
 * config dir), or else the first default key (~/.ssh/id_ed25519, id_ecdsa, id_rsa), or none.
 */
export function readPrivateKey(configDir: string, file: string | undefined): Buffer | undefined {
  if (file !== undefined) {
    const path = file.startsWith('~/')
      ? join(homedir(), file.slice(2))
      : isAbsolute(file)
        ? file
        : join(configDir, file);
    try {
      return readFileSync(path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new Error(
        `ansible_ssh_private_key_file ${path}: ${code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (err as Error).message}`,
      );
    }
  }
  for (const name of ['id_ed25519', 'id_ecdsa', 'id_rsa']) {
    const path = join(homedir(), '.ssh', name);
    if (existsSync(path)) return readFileSync(path);
  }
  // None: the agent (SSH_AUTH_SOCK) or a password, if any, is what authenticates.
  return undefined;
}

/**
 * Whether this process runs in a network namespace of the lab, not the machine's root one. Where /proc/1/ns/net can
 * be read, a namespace other than pid 1's is enough. Where it cannot (pid 1 of a container that runs in another user
 * namespace: EACCES even for root), the namespace must have an address on the lab's /24: `lab up` refuses a subnet
 * the root namespace routes, and blackholes it there, so the root namespace never has one.
 */
function inLabNetwork(hostAddresses: readonly string[]): boolean {
  try {
    return readlinkSync('/proc/self/ns/net') !== readlinkSync('/proc/1/ns/net');
  } catch {
    /* cannot tell this way */
  }
  const nets = new Set(hostAddresses.map((a) => a.split('.').slice(0, 3).join('.')));
  const mine = Object.values(networkInterfaces())
    .flat()
    .filter((i) => i !== undefined && i.family === 'IPv4' && !i.internal)
    .map((i) => (i?.address ?? '').split('.').slice(0, 3).join('.'));
  return mine.some((n) => nets.has(n));
}
