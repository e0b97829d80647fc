import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { writeFileAtomic } from '../util/atomic.js';
import { BASE_ENV, CommandError, type ExecOptions, type ExecResult, execArgv } from '../util/exec.js';
import { sleep } from '../util/wait.js';
import type { DaemonSpec, Host, WriteOptions } from './host.js';
import { groupMembers, isAlive, procStat, signalGroup } from './proc.js';

/** How long a SIGKILLed daemon may take to be gone (this machine's init reaps about a second late). */
const KILL_WAIT_MS = 5000;

/** A digest of what a daemon runs: its command line and environment. */
export function commandDigest(spec: Pick<DaemonSpec, 'argv' | 'env'>): string {
  return createHash('sha256')
    .update(JSON.stringify([spec.argv, spec.env ?? {}]))
    .digest('hex')
    .slice(0, 16);
}

/** Owner name -> uid/gid from /etc/passwd (the lab shares the machine's users). */
export function lookupUser(name: string): { uid: number; gid: number } {
  for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const f = line.split(':');
    if (f[0] === name && f[2] !== undefined && f[3] !== undefined)
      return { uid: Number(f[2]), gid: Number(f[3]) };
  }
  throw new Error(`no user ${name} on this machine`);
}

/**
 * A lab host: a network namespace `<lab>-<host>` whose files live under `root` on this machine.
 * Commands run through `ip netns exec`, which also bind-mounts /etc/netns/<ns>/hosts over /etc/hosts.
 */
export class LabHost implements Host {
  constructor(
    readonly name: string,
    readonly address: string,
    readonly namespace: string,
    readonly root: string,
  ) {}

  path(hostPath: string): string {
    return join(this.root, hostPath);
  }

  exec(argv: readonly string[], opts?: ExecOptions): Promise<ExecResult> {
    return execArgv(['ip', 'netns', 'exec', this.namespace, ...argv], opts);
  }

  async run(argv: readonly string[], opts?: ExecOptions): Promise<string> {
    const r = await this.exec(argv, opts);
    if (r.code !== 0) throw new CommandError(r, this.name);
    return r.stdout;
  }

  async readFile(hostPath: string): Promise<string | undefined> {
    try {
      return readFileSync(this.path(hostPath), 'utf8');
    } catch {
      return undefined;
    }
  }

  async writeFile(hostPath: string, content: string, opts: WriteOptions = {}): Promise<void> {
    const target = this.path(hostPath);
    mkdirSync(dirname(target), { recursive: true });
    const owner = opts.owner ? lookupUser(opts.owner) : undefined;
    writeFileAtomic(target, content, {
      mode: opts.mode ?? 0o644,
      ...(owner ? { uid: owner.uid, gid: owner.gid } : {}),
    });
  }

  async mkdir(hostPath: string, opts: WriteOptions = {}): Promise<void> {
    const target = this.path(hostPath);
    // Parents traversable by every daemon user; only the leaf gets the requested mode.
    mkdirSync(dirname(target), { recursive: true, mode: 0o755 });
    // Created with (at most) its final mode, then given it exactly (the umask may have cut it).
    mkdirSync(target, { recursive: true, mode: (opts.mode ?? 0o755) & 0o700 });
    chmodSync(target, opts.mode ?? 0o755);
    if (opts.owner) {
      const { uid, gid } = lookupUser(opts.owner);
      chownSync(target, uid, gid);
    }
  }

  async exists(hostPath: string): Promise<boolean> {
    return existsSync(this.path(hostPath));
  }

  async fileMode(hostPath: string): Promise<number | undefined> {
    try {
      return statSync(this.path(hostPath)).mode & 0o777;
    } catch {
      return undefined;
    }
  }

  async remove(hostPath: string): Promise<void> {
    rmSync(this.path(hostPath), { recursive: true, force: true });
  }

  private pidFile(name: string): string {
    return this.path(`/run/stackha/${name}.pid`);
  }

  /** The daemon's record: pid, start time and a digest of the command line it was started with. */
  private readPid(name: string): { pid: number; startTime: string; command: string | undefined } | undefined {
    try {
      const [pid, startTime, command] = readFileSync(this.pidFile(name), 'utf8').trim().split(' ');
      if (!pid || !startTime) return undefined;
      return { pid: Number(pid), startTime, command };
    } catch {
      return undefined;
    }
  }

  /**
   * Starts the daemon unless it runs already with the same command line and environment. One running with another
   * command line is an error: silently keeping it would leave the host running what was not asked for.
   */
  async startDaemon(spec: DaemonSpec): Promise<number> {
    const command = commandDigest(spec);
    const rec = this.readPid(spec.name);
    if (rec && isAlive(rec.pid, rec.startTime)) {
      if (rec.command !== undefined && rec.command !== command)
        throw new Error(
          `${this.name}: ${spec.name} already runs (pid ${rec.pid}) with another command line than the one asked ` +
            'for; stop it first',
        );
      return rec.pid;
    }
    const log = this.path(spec.logFile);
    mkdirSync(dirname(log), { recursive: true });
    mkdirSync(dirname(this.pidFile(spec.name)), { recursive: true });
    const fd = openSync(log, 'a', 0o640);
    try {
      // detached: the daemon leads its own session and process group, so it is ended by pgid, never by name.
      const child = spawn('ip', ['netns', 'exec', this.namespace, ...spec.argv], {
        detached: true,
        stdio: ['ignore', fd, fd],
        // A clean, explicit environment: nothing of the operator's shell (OS_PASSWORD, a pyenv PATH) leaks in.
        env: { ...BASE_ENV, ...spec.env },
      });
      const pid = child.pid;
      if (pid === undefined) throw new Error(`${this.name}: could not start ${spec.name}`);
      child.unref();
      const st = procStat(pid);
      writeFileSync(this.pidFile(spec.name), `${pid} ${st?.startTime ?? '0'} ${command}\n`);
      return pid;
    } finally {
      closeSync(fd);
    }
  }

  async daemonPid(name: string): Promise<number | undefined> {
    const rec = this.readPid(name);
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
    const rec = this.readPid(name);
    if (!rec || !isAlive(rec.pid, rec.startTime)) {
      rmSync(this.pidFile(name), { force: true });
      return false;
    }
    // Gone means the leader and every process of its group (uwsgi's workers, a mariadbd's SST helpers).
    const gone = (): boolean => !isAlive(rec.pid, rec.startTime) && groupMembers(rec.pid).length === 0;
    signalGroup(rec.pid, opts.signal ?? 'SIGTERM');
    const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
    while (!gone() && Date.now() < deadline) await sleep(100);
    if (!gone()) {
      signalGroup(rec.pid, 'SIGKILL');
      const killDeadline = Date.now() + KILL_WAIT_MS;
      while (!gone() && Date.now() < killDeadline) await sleep(100);
      if (!gone()) {
        const left = [rec.pid, ...groupMembers(rec.pid)].filter((p, i, a) => a.indexOf(p) === i);
        throw new Error(
          `${this.name}: ${name} is still running ${KILL_WAIT_MS / 1000} s after SIGKILL (pids ${left.join(', ')})`,
        );
      }
    }
    rmSync(this.pidFile(name), { force: true });
    return true;
  }

  async tcpConnect(address: string, port: number, timeoutMs = 2000): Promise<boolean> {
    // The bound covers the connect; starting `ip netns exec` and bash gets its own second on a busy machine.
    const secs = (timeoutMs / 1000 + 1).toFixed(1);
    const r = await this.exec(['timeout', secs, 'bash', '-c', `exec 3<>/dev/tcp/${address}/${port}`], {
      timeoutMs: timeoutMs + 2000,
    });
    return r.code === 0;
  }
}
