// OpenSSH's sshd in the lab: each lab host runs the Debian sshd inside its own network, mount and UTS namespaces, as a
// lab daemon tracked by pid, so a command over SSH sees that host's own /etc, /var and host name exactly as on a
// machine. Each host gets its own host key (in its own /etc/ssh, over the machine's), an authorized_keys for root and
// for the non-root users asked for (with passwordless sudo where asked). The deployer is the lab's client namespace:
// its key pair and known_hosts live in the client's own /root/.ssh, and an SSH inventory of the lab in the client's
// own /etc/stackha/<lab>, so `stackha` run there (nsenter into the client) reaches the hosts over SSH and lab traffic
// stays inside the lab. Nothing here reaches a lab address from the root namespace: every wait for sshd is a connect
// made inside the host itself.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DaemonSpec } from '../hosts/host.js';
import type { LabHost } from '../hosts/lab.js';
import { waitFor } from '../util/wait.js';
import { type LabState, labClient, labConfigDir, labHost } from './lab.js';

/** stackha's own sshd configuration on a lab host (the host's packaged sshd_config is left as it is). */
export const SSHD_CONFIG = '/etc/ssh/sshd_stackha_config';
export const SSHD_HOST_KEY = '/etc/ssh/ssh_host_ed25519_key';
/** authorized_keys by user name, root-owned: independent of where a user's home is. */
export const AUTHORIZED_KEYS_DIR = '/etc/ssh/authorized_keys';
export const SSHD_LOG = '/var/log/stackha/sshd.log';
/** The deployer's key pair and known_hosts, in the client namespace's own /root. */
export const DEPLOYER_KEY = '/root/.ssh/id_ed25519';
export const DEPLOYER_KNOWN_HOSTS = '/root/.ssh/known_hosts';
/** Non-root users' homes: under the host's own /var (the machine's /home is not a layer of a lab host). */
export const USER_HOME_DIR = '/var/home';
const USER = /^[a-z_][a-z0-9_-]{0,31}$/;

/** sshd's configuration for a lab host: its own address only, keys only, its own host key, stackha's record of its pid. */
export function renderSshdConfig(address: string, port = 22): string {
  return [
    '# Written by stackha for a lab host (src/lab/sshd.ts).',
    `ListenAddress ${address}:${port}`,
    `HostKey ${SSHD_HOST_KEY}`,
    'PermitRootLogin prohibit-password',
    'PubkeyAuthentication yes',
    `AuthorizedKeysFile ${AUTHORIZED_KEYS_DIR}/%u`,
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'UsePAM yes',
    // stackha keeps the pid (/run/stackha/sshd.pid); sshd's own file would be a second truth.
    'PidFile none',
    'PrintMotd no',
    'UseDNS no',
    // The SSH host opens up to 8 channels on its one connection.
    'MaxSessions 10',
    'MaxStartups 30:30:100',
    'Subsystem sftp internal-sftp',
    '',
  ].join('\n');
}

/** The lab daemon that runs sshd in the foreground, its log on stderr (-e) in the host's log file. */
export function sshdSpec(): DaemonSpec {
  return { name: 'sshd', argv: ['/usr/sbin/sshd', '-D', '-e', '-f', SSHD_CONFIG], logFile: SSHD_LOG };
}

/**
 * The host key's comment names lab and host: a host whose /etc/ssh still shows the machine's keys (the lower layer)
 * gets its own, once. $1 the comment. Prints the public key line. The private key never leaves the host.
 */
const HOST_KEY_SCRIPT = `set -eu
k=${SSHD_HOST_KEY}
if ! grep -qsF " $1" "$k.pub"; then
  rm -f /etc/ssh/ssh_host_*
  ssh-keygen -q -t ed25519 -N '' -C "$1" -f "$k"
fi
cat "$k.pub"`;

/** $1 the user: created once, home under /var/home, shell bash; its password stays locked (keys only). */
const USER_SCRIPT = `set -eu
if ! id -u "$1" >/dev/null 2>&1; then
  mkdir -p ${USER_HOME_DIR}
  useradd --create-home --home-dir "${USER_HOME_DIR}/$1" --shell /bin/bash --user-group "$1"
fi`;

/**
 * Debian's own root shell files (base-files) in the host's own /root. A lab host's /root is an overlay of the
 * machine's, whose ~/.bashrc is the operator's (here `pyenv init`): bash runs it for every command sshd starts, which
 * measured 0.3-0.6 s per command as root against 60 ms as a fresh user through sudo.
 */
const ROOT_SHELL_SCRIPT = `set -eu
for f in bashrc profile; do
  cmp -s /usr/share/base-files/dot.$f /root/.$f || install -m 0644 /usr/share/base-files/dot.$f /root/.$f
done`;

export interface SshdUser {
  readonly name: string;
  /** Passwordless sudo to root (`sudo -n`, what stackha uses for a non-root ansible_user). */
  readonly sudo: boolean;
}

/**
 * Makes a lab host ready to run sshd (idempotent): its own host key, stackha's sshd configuration, authorized_keys
 * for root and each user, the users themselves, sudoers lines. Resolves with the host's public key line.
 */
export async function prepareSshd(
  h: LabHost,
  opts: {
    lab: string;
    authorizedKeys: string;
    users?: readonly SshdUser[];
    /** Keep the machine's root shell files instead of Debian's (default false: a host looks freshly installed). */
    machineRootShell?: boolean;
  },
): Promise<string> {
  const keys = opts.authorizedKeys.endsWith('\n') ? opts.authorizedKeys : `${opts.authorizedKeys}\n`;
  const pub = await h.run(['sh', '-c', HOST_KEY_SCRIPT, 'sh', `stackha-lab:${opts.lab}:${h.name}`], {
    timeoutMs: 30_000,
  });
  await h.writeFile(SSHD_CONFIG, renderSshdConfig(h.address), { mode: 0o644 });
  if (!opts.machineRootShell) await h.run(['sh', '-c', ROOT_SHELL_SCRIPT]);
  await h.mkdir(AUTHORIZED_KEYS_DIR, { mode: 0o755 });
  await h.writeFile(`${AUTHORIZED_KEYS_DIR}/root`, keys, { mode: 0o644 });
  for (const u of opts.users ?? []) {
    if (!USER.test(u.name) || u.name === 'root')
      throw new Error(`lab sshd user ${JSON.stringify(u.name)}: not a plain user name`);
    await h.run(['sh', '-c', USER_SCRIPT, 'sh', u.name], { timeoutMs: 30_000 });
    await h.writeFile(`${AUTHORIZED_KEYS_DIR}/${u.name}`, keys, { mode: 0o644 });
    const sudoers = `/etc/sudoers.d/stackha-${u.name}`;
    if (u.sudo) {
      await h.writeFile(sudoers, `${u.name} ALL=(root) NOPASSWD: ALL\n`, { mode: 0o440 });
      await h.run(['visudo', '-c', '-q', '-f', sudoers]);
    } else await h.remove(sudoers);
  }
  // Privilege separation directory (sshd -t checks it too); /run is fresh at every boot of a lab host.
  await h.mkdir('/run/sshd', { mode: 0o755 });
  await h.run(['/usr/sbin/sshd', '-t', '-f', SSHD_CONFIG]);
  return pub.trim();
}

/** Starts the host's sshd (kept when it runs already) and waits until it accepts connections, asked from inside the host. */
export async function startSshd(h: LabHost, timeoutMs = 15_000): Promise<number> {
  await h.mkdir('/run/sshd', { mode: 0o755 });
  const pid = await h.startDaemon(sshdSpec());
  await waitFor(
    `sshd on ${h.name} (${h.address}:22)`,
    async () => {
      if ((await h.daemonPid('sshd')) === undefined)
        throw new Error(
          `sshd exited: ${(await h.readFile(SSHD_LOG))?.trim().split('\n').slice(-3).join(' | ')}`,
        );
      return (await h.tcpConnect(h.address, 22, 1000)) || undefined;
    },
    { timeoutMs, intervalMs: 100 },
  );
  return pid;
}

/** The deployer's key pair in the client namespace (created once); resolves with its public key line. */
export async function deployerKey(client: LabHost, lab: string): Promise<string> {
  await client.mkdir('/root/.ssh', { mode: 0o700 });
  if (!(await client.exists(DEPLOYER_KEY)))
    await client.run([
      'ssh-keygen',
      '-q',
      '-t',
      'ed25519',
      '-N',
      '',
      '-C',
      `stackha-deployer:${lab}`,
      '-f',
      DEPLOYER_KEY,
    ]);
  const pub = await client.readFile(`${DEPLOYER_KEY}.pub`);
  if (!pub) throw new Error(`lab ${lab}: the deployer has no public key ${DEPLOYER_KEY}.pub`);
  return pub.trim();
}

/** known_hosts text: other lines kept, the lab hosts' lines replaced by their current keys. */
export function mergeKnownHosts(existing: string, keys: ReadonlyMap<string, string>): string {
  const mine = new Set(keys.keys());
  const kept = existing.split('\n').filter((l) => l.trim() !== '' && !mine.has(l.split(' ')[0] ?? ''));
  for (const [address, pub] of keys) {
    const [type, blob] = pub.split(' ');
    kept.push(`${address} ${type} ${blob}`);
  }
  return `${kept.join('\n')}\n`;
}

/**
 * The lab's inventory for a deployer that reaches its hosts over SSH: every host `ansible_connection=ssh` with the
 * deployer's key, root unless a user is given for it (then sudo -n). Host lines gain their variables in place.
 */
export function sshInventory(
  multinode: string,
  opts: { keyFile: string; users?: Readonly<Record<string, string>> },
): string {
  const users = opts.users ?? {};
  const lines = multinode.split('\n').map((line) => {
    const m = /^(\S+)\s+ansible_host=/.exec(line);
    const user = m?.[1] !== undefined ? users[m[1]] : undefined;
    return user !== undefined ? `${line} ansible_user=${user}` : line;
  });
  return [
    ...lines,
    '',
    '# Reached over SSH from the deployer namespace (stackha lab sshd).',
    '[all:vars]',
    'ansible_connection=ssh',
    `ansible_ssh_private_key_file=${opts.keyFile}`,
    '',
  ].join('\n');
}

export interface LabSshdResult {
  /** sshd's pid on each host. */
  readonly pids: Readonly<Record<string, number>>;
  /** Each host's public host key line. */
  readonly hostKeys: Readonly<Record<string, string>>;
  /** The SSH inventory's directory inside the client namespace. */
  readonly configDir: string;
}

/**
 * sshd on every host of a lab (or those named), the deployer in the client namespace: its key, its known_hosts, and
 * the SSH inventory (the machine's lab inventory with SSH connection variables, its globals.yml and passwords.yml) in
 * the client's own /etc/stackha/<lab>. `user` logs in instead of root, with passwordless sudo, on `userHosts`.
 */
export async function labSshd(
  state: LabState,
  opts: {
    hosts?: readonly string[];
    user?: string;
    userHosts?: readonly string[];
    machineRootShell?: boolean;
  } = {},
): Promise<LabSshdResult> {
  const names = opts.hosts ?? state.hosts.map((h) => h.name);
  const client = labClient(state);
  const authorizedKeys = await deployerKey(client, state.name);
  const pids: Record<string, number> = {};
  const hostKeys: Record<string, string> = {};
  const byAddress = new Map<string, string>();
  const userHosts = new Set(opts.user ? (opts.userHosts ?? names) : []);
  await Promise.all(
    names.map(async (name) => {
      const h = labHost(state, name);
      const users = opts.user ? [{ name: opts.user, sudo: userHosts.has(name) }] : [];
      hostKeys[name] = await prepareSshd(h, {
        lab: state.name,
        authorizedKeys,
        users,
        ...(opts.machineRootShell ? { machineRootShell: true } : {}),
      });
      pids[name] = await startSshd(h);
    }),
  );
  for (const name of names) byAddress.set(labHost(state, name).address, hostKeys[name] as string);
  // In the hosts' order, whichever finished first.
  const orderedPids = Object.fromEntries(names.map((n) => [n, pids[n] as number]));
  const orderedKeys = Object.fromEntries(names.map((n) => [n, hostKeys[n] as string]));
  const known = (await client.readFile(DEPLOYER_KNOWN_HOSTS)) ?? '';
  await client.writeFile(DEPLOYER_KNOWN_HOSTS, mergeKnownHosts(known, byAddress), { mode: 0o644 });
  // The client's /etc/stackha is its own: the machine's lab inventory, reached over SSH.
  const src = labConfigDir(state.name);
  const users: Record<string, string> = {};
  if (opts.user) for (const h of userHosts) users[h] = opts.user;
  await client.writeFile(
    join(src, 'multinode'),
    sshInventory(readFileSync(join(src, 'multinode'), 'utf8'), { keyFile: DEPLOYER_KEY, users }),
    { mode: 0o644 },
  );
  await client.writeFile(join(src, 'globals.yml'), readFileSync(join(src, 'globals.yml'), 'utf8'), {
    mode: 0o644,
  });
  await client.writeFile(join(src, 'passwords.yml'), readFileSync(join(src, 'passwords.yml'), 'utf8'), {
    mode: 0o600,
  });
  return { pids: orderedPids, hostKeys: orderedKeys, configDir: src };
}
