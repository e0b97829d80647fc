// The machine stackha runs on, as a Host: kolla's `localhost ansible_connection=local`, the deployment machine. The
// chaos suite over SSH runs its load generator and probes here when the operator names it the client (`--client
// local`). Commands run as this process's user; daemons are supervised by pid files with the same script as an SSH host
// without systemd (src/hosts/pidfile.ts), so a daemon is found, signalled and stopped by its recorded pid and start
// time, never by name.
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { Socket } from 'node:net';
import { hostname } from 'node:os';
import { posix } from 'node:path';
import { writeFileAtomic } from '../util/atomic.js';
import { CommandError, type ExecOptions, type ExecResult, execArgv } from '../util/exec.js';
import type { DaemonSpec, Host, WriteOptions } from './host.js';
import { lookupUser } from './lab.js';
import { PID_DIR, PidFileSupervisor } from './pidfile.js';

export class LocalHost implements Host {
  private readonly daemons: PidFileSupervisor;

  constructor(
    readonly name: string = 'local',
    /** An address of this machine the deployment's hosts see (for messages); none is needed to run a load. */
    readonly address: string = hostname(),
    pidDir: string = PID_DIR,
  ) {
    this.daemons = new PidFileSupervisor(this, `${name} (this machine)`, pidDir);
  }

  exec(argv: readonly string[], opts?: ExecOptions): Promise<ExecResult> {
    return execArgv(argv, opts);
  }

  async run(argv: readonly string[], opts?: ExecOptions): Promise<string> {
    const r = await this.exec(argv, opts);
    if (r.code !== 0) throw new CommandError(r, this.name, opts?.input);
    return r.stdout;
  }

  async readFile(path: string): Promise<string | undefined> {
    try {
      return readFileSync(path, 'utf8');
    } catch {
      return undefined;
    }
  }

  private mkdirs(path: string): void {
    const parts = posix.normalize(path).split('/').filter(Boolean);
    for (let i = 1; i <= parts.length; i++) {
      const p = `/${parts.slice(0, i).join('/')}`;
      if (!existsSync(p)) mkdirSync(p, { mode: 0o755 });
    }
  }

  async writeFile(path: string, content: string, opts: WriteOptions = {}): Promise<void> {
    this.mkdirs(posix.dirname(path));
    const owner = opts.owner ? lookupUser(opts.owner) : undefined;
    writeFileAtomic(path, content, {
      mode: opts.mode ?? 0o644,
      ...(owner ? { uid: owner.uid, gid: owner.gid } : {}),
    });
  }

  async mkdir(path: string, opts: WriteOptions = {}): Promise<void> {
    this.mkdirs(posix.dirname(path));
    if (!existsSync(path)) mkdirSync(path, { mode: (opts.mode ?? 0o755) & 0o700 });
    chmodSync(path, opts.mode ?? 0o755);
    if (opts.owner) {
      const { uid, gid } = lookupUser(opts.owner);
      chownSync(path, uid, gid);
    }
  }

  async exists(path: string): Promise<boolean> {
    return existsSync(path);
  }

  async fileMode(path: string): Promise<number | undefined> {
    try {
      return statSync(path).mode & 0o777;
    } catch {
      return undefined;
    }
  }

  async remove(path: string): Promise<void> {
    rmSync(path, { recursive: true, force: true });
  }

  startDaemon(spec: DaemonSpec): Promise<number> {
    return this.daemons.start(spec);
  }

  stopDaemon(name: string, opts?: { signal?: NodeJS.Signals; timeoutMs?: number }): Promise<boolean> {
    return this.daemons.stop(name, opts);
  }

  signalDaemon(name: string, signal: NodeJS.Signals): Promise<boolean> {
    return this.daemons.signal(name, signal);
  }

  daemonPid(name: string): Promise<number | undefined> {
    return this.daemons.pid(name);
  }

  tcpConnect(address: string, port: number, timeoutMs = 2000): Promise<boolean> {
    return new Promise((resolve) => {
      const s = new Socket();
      const done = (ok: boolean) => {
        s.destroy();
        resolve(ok);
      };
      s.setTimeout(timeoutMs, () => done(false));
      s.once('error', () => done(false));
      s.connect(port, address, () => done(true));
    });
  }
}
