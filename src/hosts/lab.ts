import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  closeSync,
  existsSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { posix } from 'node:path';
import { writeFileAtomic } from '../util/atomic.js';
import { BASE_ENV, CommandError, type ExecOptions, type ExecResult, execArgv } from '../util/exec.js';
import { sleep } from '../util/wait.js';
import type { DaemonSpec, Host, WriteOptions } from './host.js';
import {
  type PidRecord,
  formatPidRecord,
  groupMembers,
  isAlive,
  otherCommandMessage,
  parsePidRecord,
  procStat,
  signalGroup,
  startDecision,
} from './proc.js';

/** How long a SIGKILLed daemon may take to be gone (this machine's init reaps about a second late). */
const KILL_WAIT_MS = 5000;

/** A digest of what a daemon runs: its command line and environment. */
export function commandDigest(spec: Pick<DaemonSpec, 'argv' | 'env'>): string {
  return createHash('sha256')
    .update(JSON.stringify([spec.argv, spec.env ?? {}]))
    .digest('hex')
    .slice(0, 16);
}

/** Owner name -> uid/gid from /etc/passwd (the lab's hosts share the machine's users: /etc is an overlay of it). */
export function lookupUser(name: string): { uid: number; gid: number } {
  for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const f = line.split(':');
    if (f[0] === name && f[2] !== undefined && f[3] !== undefined)
      return { uid: Number(f[2]), gid: Number(f[3]) };
  }
  throw new Error(`no user ${name} on this machine`);
}

/** The namespace files of a lab host: its network namespace, and its mount and UTS namespaces. */
export interface HostNamespaces {
  readonly net: string;
  readonly mnt: string;
  readonly uts: string;
}

/** nsenter's arguments for entering all three of a host's namespaces (cwd becomes the host's /). */
export function nsenterArgs(ns: HostNamespaces): string[] {
  return [`--net=${ns.net}`, `--mount=${ns.mnt}`, `--uts=${ns.uts}`];
}

/** Thrown when a lab host is powered off (crashed): its files are out of reach until `lab fault poweron`. */
export class HostDown extends Error {
  readonly code = 'EHOSTDOWN';
}

/**
 * A host path resolved under a root on this machine (`/proc/<anchor>/root`), the way the host itself would resolve
 * it: every symlink followed inside the host (an absolute target such as /var/run -> /run starts again at the host's
 * root, not the machine's). A missing component ends the walk: the rest is appended as it is (to be created).
 */
export function resolveInRoot(root: string, hostPath: string, followLast = true): string {
  if (!root.startsWith('/') || root === '/')
    throw new Error(`lab host root must be an absolute path below /, got ${root}`);
  const inRoot = (parts: string[]): string => (parts.length === 0 ? root : `${root}/${parts.join('/')}`);
  let parts = posix.normalize(`/${hostPath}`).split('/').filter(Boolean);
  let resolved: string[] = [];
  for (let hops = 0; parts.length > 0; ) {
    const part = parts[0] as string;
    parts = parts.slice(1);
    if (part === '..') {
      // '..' at the host's / stays at /, as it does for a process inside the host.
      resolved.pop();
      continue;
    }
    if (part === '.') continue;
    const candidate = inRoot([...resolved, part]);
    let st: ReturnType<typeof lstatSync> | undefined;
    try {
      st = lstatSync(candidate);
    } catch {
      return inRoot([...resolved, part, ...parts]);
    }
    if (st.isSymbolicLink() && (parts.length > 0 || followLast)) {
      if (++hops > 40) throw new Error(`too many symbolic links resolving ${hostPath}`);
      const target = readlinkSync(candidate);
      const tparts = target.split('/').filter(Boolean);
      // An absolute link is absolute inside the host, never on this machine.
      if (target.startsWith('/')) resolved = [];
      parts = [...tparts, ...parts];
      continue;
    }
    resolved.push(part);
  }
  return inRoot(resolved);
}

/**
 * The root of the process `pid` as this machine sees it. Refuses a process in this machine's own mount namespace:
 * its root is this machine's /, and writing a lab host's /etc/hosts there would overwrite the machine's.
 */
function rootOf(host: string, pid: number): string {
  const own = readlinkSync('/proc/self/ns/mnt');
  let theirs: string;
  try {
    theirs = readlinkSync(`/proc/${pid}/ns/mnt`);
  } catch (e) {
    throw new HostDown(`${host} is down: its anchor process ${pid} is gone (${(e as Error).message})`);
  }
  if (theirs === own)
    throw new Error(
      `${host}: anchor process ${pid} shares this machine's mount namespace; refusing to treat this machine's / as the host's`,
    );
  return `/proc/${pid}/root`;
}

/**
 * A lab host: its own network, mount and UTS namespaces on this machine (src/lab/lab.ts). Commands and daemons run
 * with nsenter in all three; its files are reached from here through /proc/<anchor>/root, where the anchor is a
 * process kept inside the host, so a host path is the same path as on a real machine and no process is spawned per
 * file.
 */
export class LabHost implements Host {
  private anchor: { pid: number; startTime: string } | undefined;

  constructor(
    readonly name: string,
    readonly address: string,
    readonly namespaces: HostNamespaces,
    private readonly anchorFile: string,
  ) {}

  /** The host's root as this machine sees it, or HostDown when the host is powered off. */
  private root(): string {
    if (this.anchor && isAlive(this.anchor.pid, this.anchor.startTime))
      return rootOf(this.name, this.anchor.pid);
    let rec: { pid: number; startTime: string } | undefined;
    try {
      const [pid, startTime] = readFileSync(this.anchorFile, 'utf8').trim().split(' ');
      rec = { pid: Number(pid), startTime: startTime ?? '' };
    } catch {
      /* no anchor: down */
    }
    if (rec && isAlive(rec.pid, rec.startTime)) {
      const root = rootOf(this.name, rec.pid);
      this.anchor = rec;
      return root;
    }
    throw new HostDown(
      `${this.name} is down (powered off): its files are out of reach until it is powered on`,
    );
  }

  /** Where a host path is on this machine right now (for code that must open it itself). */
  machinePath(hostPath: string, followLast = true): string {
    return resolveInRoot(this.root(), hostPath, followLast);
  }

  exec(argv: readonly string[], opts?: ExecOptions): Promise<ExecResult> {
    return execArgv(['nsenter', ...nsenterArgs(this.namespaces), '--', ...argv], opts);
  }

  async run(argv: readonly string[], opts?: ExecOptions): Promise<string> {
    const r = await this.exec(argv, opts);
    if (r.code !== 0) throw new CommandError(r, this.name, opts?.input);
    return r.stdout;
  }

  async readFile(hostPath: string): Promise<string | undefined> {
    try {
      return readFileSync(this.machinePath(hostPath), 'utf8');
    } catch {
      return undefined;
    }
  }

  /** Directories up to `hostPath`, each created traversable (0755) where missing. */
  private mkdirs(hostPath: string): void {
    const parts = posix.normalize(hostPath).split('/').filter(Boolean);
    for (let i = 1; i <= parts.length; i++) {
      const p = this.machinePath(`/${parts.slice(0, i).join('/')}`);
      if (!existsSync(p)) mkdirSync(p, { mode: 0o755 });
    }
  }

  async writeFile(hostPath: string, content: string, opts: WriteOptions = {}): Promise<void> {
    this.mkdirs(posix.dirname(hostPath));
    const owner = opts.owner ? lookupUser(opts.owner) : undefined;
    writeFileAtomic(this.machinePath(hostPath, false), content, {
      mode: opts.mode ?? 0o644,
      ...(owner ? { uid: owner.uid, gid: owner.gid } : {}),
    });
  }

  async mkdir(hostPath: string, opts: WriteOptions = {}): Promise<void> {
    // Parents traversable by every daemon user; only the leaf gets the requested mode.
    this.mkdirs(posix.dirname(hostPath));
    const target = this.machinePath(hostPath);
    // Created with (at most) its final mode, then given it exactly (the umask may have cut it).
    if (!existsSync(target)) mkdirSync(target, { mode: (opts.mode ?? 0o755) & 0o700 });
    chmodSync(target, opts.mode ?? 0o755);
    if (opts.owner) {
      const { uid, gid } = lookupUser(opts.owner);
      chownSync(target, uid, gid);
    }
  }

  async exists(hostPath: string): Promise<boolean> {
    try {
      return existsSync(this.machinePath(hostPath));
    } catch (err) {
      if (err instanceof HostDown) return false;
      throw err;
    }
  }

  async fileMode(hostPath: string): Promise<number | undefined> {
    try {
      return statSync(this.machinePath(hostPath)).mode & 0o777;
    } catch {
      return undefined;
    }
  }

  async remove(hostPath: string): Promise<void> {
    rmSync(this.machinePath(hostPath, false), { recursive: true, force: true });
  }

  private pidFile(name: string): string {
    return `/run/stackha/${name}.pid`;
  }

  /** The daemon's record: pid, start time and a digest of the command line it was started with. */
  private readPid(name: string): PidRecord | undefined {
    let text: string;
    try {
      text = readFileSync(this.machinePath(this.pidFile(name)), 'utf8');
    } catch {
      return undefined;
    }
    return parsePidRecord(text);
  }

  /** Every tracked daemon running on the host now, by name (the pid files stackha keeps), for memory accounting. */
  runningDaemons(): { name: string; pid: number }[] {
    let names: string[];
    try {
      names = readdirSync(this.machinePath('/run/stackha')).filter((f) => f.endsWith('.pid'));
    } catch {
      return [];
    }
    const out: { name: string; pid: number }[] = [];
    for (const f of names) {
      const name = f.slice(0, -'.pid'.length);
      const rec = this.readPid(name);
      if (rec && isAlive(rec.pid, rec.startTime)) out.push({ name, pid: rec.pid });
    }
    return out.sort((a, b) => a.name.localeCompare(b.name));
  }

  /**
   * Starts the daemon unless it runs already with the same command line and environment. One running with another
   * command line is an error: silently keeping it would leave the host running what was not asked for.
   */
  async startDaemon(spec: DaemonSpec): Promise<number> {
    const command = commandDigest(spec);
    const rec = this.readPid(spec.name);
    const decision = startDecision(rec, rec !== undefined && isAlive(rec.pid, rec.startTime), command);
    if (decision.action === 'refuse')
      throw new Error(otherCommandMessage(this.name, spec.name, decision.pid));
    if (decision.action === 'keep') return decision.pid;
    this.mkdirs(posix.dirname(spec.logFile));
    this.mkdirs(posix.dirname(this.pidFile(spec.name)));
    const fd = openSync(this.machinePath(spec.logFile), 'a', 0o640);
    try {
      // detached: the daemon leads its own session and process group, so it is ended by pgid, never by name.
      const child = spawn('nsenter', [...nsenterArgs(this.namespaces), '--', ...spec.argv], {
        detached: true,
        stdio: ['ignore', fd, fd],
        // A clean, explicit environment: nothing of the operator's shell (OS_PASSWORD, a pyenv PATH) leaks in.
        env: { ...BASE_ENV, ...spec.env },
      });
      const pid = child.pid;
      if (pid === undefined) throw new Error(`${this.name}: could not start ${spec.name}`);
      child.unref();
      // nsenter does not fork: the pid is the daemon's. Until its setns calls are done it is still in the root
      // namespaces for a few milliseconds: wait, so nothing counting the host's processes can miss it.
      const want = `mnt:[${statSync(this.namespaces.mnt).ino}]`;
      for (let i = 0; i < 200; i++) {
        let now: string | undefined;
        try {
          now = readlinkSync(`/proc/${pid}/ns/mnt`);
        } catch {
          break; // exited already: its log says why, the caller's wait reports it
        }
        if (now === want) break;
        await sleep(5);
      }
      const st = procStat(pid);
      writeFileSync(
        this.machinePath(this.pidFile(spec.name)),
        formatPidRecord({ pid, startTime: st?.startTime ?? '0', command }),
      );
      return pid;
    } finally {
      closeSync(fd);
    }
  }

  async daemonPid(name: string): Promise<number | undefined> {
    let rec: ReturnType<LabHost['readPid']>;
    try {
      rec = this.readPid(name);
    } catch (err) {
      if (err instanceof HostDown) return undefined;
      throw err;
    }
    if (!rec) return undefined;
    return isAlive(rec.pid, rec.startTime) ? rec.pid : undefined;
  }

  async signalDaemon(name: string, signal: NodeJS.Signals): Promise<boolean> {
    const pid = await this.daemonPid(name);
    if (pid === undefined) return false;
    return signalGroup(pid, signal);
  }

  async stopDaemon(
    name: string,
    opts: { signal?: NodeJS.Signals; timeoutMs?: number } = {},
  ): Promise<boolean> {
    let rec: ReturnType<LabHost['readPid']>;
    try {
      rec = this.readPid(name);
    } catch (err) {
      if (err instanceof HostDown) return false;
      throw err;
    }
    if (!rec || !isAlive(rec.pid, rec.startTime)) {
      rmSync(this.machinePath(this.pidFile(name)), { force: true });
      return false;
    }
    const { pid, startTime } = rec;
    // Gone means the leader and every process of its group (uwsgi's workers, a mariadbd's SST helpers).
    const gone = (): boolean => !isAlive(pid, startTime) && groupMembers(pid).length === 0;
    signalGroup(pid, opts.signal ?? 'SIGTERM');
    const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
    while (!gone() && Date.now() < deadline) await sleep(100);
    if (!gone()) {
      signalGroup(pid, 'SIGKILL');
      const killDeadline = Date.now() + KILL_WAIT_MS;
      while (!gone() && Date.now() < killDeadline) await sleep(100);
      if (!gone()) {
        const left = [pid, ...groupMembers(pid)].filter((p, i, a) => a.indexOf(p) === i);
        throw new Error(
          `${this.name}: ${name} is still running ${KILL_WAIT_MS / 1000} s after SIGKILL (pids ${left.join(', ')})`,
        );
      }
    }
    rmSync(this.machinePath(this.pidFile(name)), { force: true });
    return true;
  }

  async tcpConnect(address: string, port: number, timeoutMs = 2000): Promise<boolean> {
    // The bound covers the connect; starting nsenter and bash gets its own second on a busy machine.
    const secs = (timeoutMs / 1000 + 1).toFixed(1);
    const r = await this.exec(['timeout', secs, 'bash', '-c', `exec 3<>/dev/tcp/${address}/${port}`], {
      timeoutMs: timeoutMs + 2000,
    });
    return r.code === 0;
  }
}
