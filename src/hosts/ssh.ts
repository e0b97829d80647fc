// A real host reached over SSH (the ssh2 library): one connection per host, commands on multiplexed channels (a
// bounded number at once), files written atomically by a constant shell script fed through stdin, daemons as systemd
// units (src/hosts/systemd.ts), or, on a host without systemd whose connection allows it (a lab host running sshd),
// by pid files (src/hosts/pidfile.ts). Same semantics as the lab host (src/hosts/lab.ts) wherever the Host interface
// says.
import { appendFileSync, mkdirSync, readFileSync } from 'node:fs';
import { type Socket, connect as netConnect } from 'node:net';
import { dirname, posix } from 'node:path';
import type { Duplex } from 'node:stream';
import { Client, type ClientChannel, type ConnectConfig } from 'ssh2';
import type { SshConnection } from '../model.js';
import { CommandError, type ExecOptions, type ExecResult } from '../util/exec.js';
import { sleep } from '../util/wait.js';
import type { DaemonSpec, DirSpec, FileState, Host, WriteOptions } from './host.js';
import { checkHostKey, knownHostsLine, knownKeyAlgorithms, parseKnownHosts } from './known-hosts.js';
import { PidFileSupervisor } from './pidfile.js';
import {
  MKDIRS_SCRIPT,
  MKDIR_SCRIPT,
  READ_FILES_SCRIPT,
  WRITE_SCRIPT,
  octalMode,
  ownerArg,
  parseFileStates,
  remoteArgv,
  shellCommand,
  shellScript,
} from './shell.js';
import {
  isRunningState,
  parseShow,
  renderStopDropIn,
  renderThisBootDropIn,
  renderUnit,
  stopDropInPath,
  thisBootDropInPath,
  unitName,
  unitPath,
} from './systemd.js';
import { label, nameScript, now, trace, tracing } from './trace.js';

const DEFAULT_TIMEOUT_MS = 60_000;
/** Paths per batched read: a bounded command line, and an answer that stays small. */
const READ_BATCH = 64;
nameScript(READ_FILES_SCRIPT, 'read-files');
nameScript(MKDIRS_SCRIPT, 'mkdirs');
/** OpenSSH's sshd allows 10 sessions per connection (MaxSessions): stay under it. */
export const DEFAULT_MAX_CHANNELS = 8;
/** After `systemctl stop` returned, how long the old main pid may take to be gone. */
const GONE_WAIT_MS = 5000;
/** The exit code ssh(1) gives when the connection itself failed; exec() resolves with it too. */
export const SSH_FAILED = 255;
/** Host key algorithms ssh2 can verify. */
const SUPPORTED_HOST_KEYS = new Set([
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'rsa-sha2-512',
  'rsa-sha2-256',
  'ssh-rsa',
]);

/** A host that could not be reached or used: names the host, what was being done, and why. */
export class SshError extends Error {
  readonly code = 'ESSH';
  constructor(
    readonly host: string,
    readonly command: string,
    readonly reason: string,
  ) {
    super(`${host}: ${command}: ${reason}`);
    this.name = 'SshError';
  }
}

export interface SshHostOptions {
  /** Inventory name. */
  readonly name: string;
  /** The host's internal address (HostSpec.address). */
  readonly address: string;
  readonly connection: SshConnection;
  /** The private key's content (read by the caller from ansible_ssh_private_key_file or a default key). */
  readonly privateKey?: Buffer | undefined;
  /** SSH password (ansible_ssh_pass); never printed. */
  readonly password?: string | undefined;
  /** An ssh-agent socket (SSH_AUTH_SOCK). */
  readonly agent?: string | undefined;
  readonly knownHostsFile: string;
  /** Record the key of a host known_hosts has no key for, instead of refusing it. A changed key is always refused. */
  readonly acceptNewHostKeys?: boolean;
  readonly maxChannels?: number;
  readonly connectTimeoutMs?: number;
  /** Opens the transport (tests, a jump host); default: TCP to address:port. */
  readonly socket?: () => Duplex;
  /** Waits between attempts to open a channel the server refused; default CHANNEL_RETRIES. */
  readonly channelRetries?: readonly number[];
  /** Where the pid-file supervisor keeps its records (tests); default /run/stackha. */
  readonly pidDir?: string;
}

/** How an SSH host's daemons are supervised, decided by open(). */
export type Supervisor = 'systemd' | 'pidfile';

/** A counting semaphore: at most `limit` holders at once, the rest wait in order. */
export class Slots {
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  constructor(readonly limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new Error(`slot limit ${limit}: a positive integer`);
  }
  get inUse(): number {
    return this.active;
  }
  async acquire(): Promise<void> {
    if (this.active < this.limit) {
      this.active++;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }
  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.active--;
  }
  async with<T>(fn: () => Promise<T>): Promise<T> {
    await this.acquire();
    try {
      return await fn();
    } finally {
      this.release();
    }
  }
}

/** Where a message says the host is: `ctl1 (ssh deploy@10.0.0.11:22)`. */
function describe(opts: SshHostOptions): string {
  const c = opts.connection;
  return `${opts.name} (ssh ${c.user}@${c.address}:${c.port})`;
}

export class SshHost implements Host {
  readonly name: string;
  readonly address: string;
  private client: Promise<Client> | undefined;
  private socket: Socket | undefined;
  private readonly slots: Slots;
  private inFlight = 0;
  private chosen: Supervisor | undefined;
  private readonly pidFiles: PidFileSupervisor;

  constructor(private readonly opts: SshHostOptions) {
    this.name = opts.name;
    this.address = opts.address;
    this.slots = new Slots(opts.maxChannels ?? DEFAULT_MAX_CHANNELS);
    this.pidFiles = new PidFileSupervisor(this, describe(opts), opts.pidDir);
  }

  private get where(): string {
    return describe(this.opts);
  }

  /**
   * Connects, checks that commands run as root (through sudo -n when the user is not root), and chooses how daemons
   * are supervised: systemd when the host runs it (/run/systemd/system), unless the connection says `pidfile`; pid
   * files on a host without systemd only when the connection allows it (`auto`, the default in a lab). Rejects with
   * an SshError saying why not. Nothing on the host is changed.
   */
  async open(): Promise<void> {
    const r = await this.exec(
      ['sh', '-c', 'id -u; test -d /run/systemd/system && echo systemd || echo no-systemd'],
      {
        timeoutMs: (this.opts.connectTimeoutMs ?? 15_000) + 10_000,
      },
    );
    if (r.code === SSH_FAILED && this.client === undefined)
      throw new SshError(this.where, 'connect', r.stderr.trim());
    const [uid, init] = r.stdout.trim().split('\n');
    if (r.code !== 0 || uid !== '0') {
      const how = this.opts.connection.become ? 'sudo -n (passwordless sudo) to root' : 'root';
      throw new SshError(
        this.where,
        'id -u',
        `commands must run as root, through ${how}: ${r.code !== 0 ? `exited ${r.code}: ${tail(r.stderr)}` : `uid ${uid}`}`,
      );
    }
    const choice = this.opts.connection.supervisor ?? 'systemd';
    if (choice === 'pidfile' || (choice === 'auto' && init !== 'systemd')) this.chosen = 'pidfile';
    else if (init === 'systemd') this.chosen = 'systemd';
    else
      throw new SshError(
        this.where,
        'test -d /run/systemd/system',
        'the host does not run systemd (stackha_supervisor=auto or pidfile lets stackha supervise its daemons by pid files instead)',
      );
  }

  /** How this host's daemons are supervised (open() decides; a host not opened yet is opened now). */
  async supervisor(): Promise<Supervisor> {
    if (this.chosen === undefined) await this.open();
    return this.chosen as Supervisor;
  }

  /** Ends the connection; a later command connects again. */
  close(): void {
    const c = this.client;
    this.client = undefined;
    void c?.then((x) => x.end()).catch(() => undefined);
  }

  /** The connection, opened on first use and again after it dropped (a host that rebooted). */
  private connection(): Promise<Client> {
    if (this.client) return this.client;
    const p: Promise<Client> = this.dial(() => {
      if (this.client === p) this.client = undefined;
    });
    this.client = p;
    return p;
  }

  /** Opens a connection; `gone` is called when it fails or later drops. */
  private dial(gone: () => void): Promise<Client> {
    const o = this.opts;
    const c = o.connection;
    return new Promise<Client>((resolve, reject) => {
      const client = new Client();
      let refused: string | undefined;
      let settled = false;
      const fail = (reason: string): void => {
        gone();
        if (!settled) {
          settled = true;
          reject(new SshError(this.where, 'connect', reason));
        }
      };
      client.on('ready', () => {
        settled = true;
        resolve(client);
      });
      client.on('error', (err) => fail(refused ?? err.message));
      client.on('close', () => fail(refused ?? 'connection closed'));
      let entries: ReturnType<typeof parseKnownHosts>;
      try {
        entries = parseKnownHosts(readKnownHosts(o.knownHostsFile));
      } catch (err) {
        fail(`cannot read known_hosts ${o.knownHostsFile}: ${(err as Error).message}`);
        return;
      }
      const algorithms = knownKeyAlgorithms(entries, c.address, c.port).filter((a) =>
        SUPPORTED_HOST_KEYS.has(a),
      );
      let sock: Duplex;
      if (o.socket) sock = o.socket();
      else {
        const s = netConnect({ host: c.address, port: c.port });
        s.setKeepAlive(true, 10_000);
        this.socket = s;
        sock = s;
      }
      const config: ConnectConfig = {
        sock: sock as NonNullable<ConnectConfig['sock']>,
        username: c.user,
        readyTimeout: o.connectTimeoutMs ?? 15_000,
        // TCP keepalive instead of ssh2's timer, so an idle connection never keeps the process alive.
        keepaliveInterval: 0,
        ...(algorithms.length > 0 ? { algorithms: { serverHostKey: algorithms as never } } : {}),
        ...(o.privateKey ? { privateKey: o.privateKey } : {}),
        ...(o.password !== undefined ? { password: o.password } : {}),
        ...(o.agent ? { agent: o.agent } : {}),
        hostVerifier: (key: Buffer): boolean => {
          const d = checkHostKey(entries, c.address, c.port, key);
          if (d.verdict === 'known') return true;
          if (d.verdict === 'unknown' && o.acceptNewHostKeys) {
            try {
              mkdirSync(dirname(o.knownHostsFile), { recursive: true, mode: 0o700 });
              appendFileSync(o.knownHostsFile, knownHostsLine(c.address, c.port, key), { mode: 0o600 });
              return true;
            } catch (err) {
              refused = `cannot record its host key in ${o.knownHostsFile}: ${(err as Error).message}`;
              return false;
            }
          }
          refused =
            d.verdict === 'unknown'
              ? `host key not in ${o.knownHostsFile}: check its fingerprint and add it (ssh-keyscan), or accept new keys explicitly (--accept-new-host-keys)`
              : d.verdict === 'revoked'
                ? `host key is revoked (${o.knownHostsFile}:${d.line})`
                : `HOST KEY CHANGED: ${o.knownHostsFile} line ${d.lines.join(', ')} has another key for it (someone may be intercepting the connection; if the host was reinstalled, remove the old line)`;
          return false;
        },
      };
      try {
        client.connect(config);
      } catch (err) {
        fail((err as Error).message);
      }
    });
  }

  /** While no channel is open the connection does not keep the process alive. */
  private busy(): void {
    this.inFlight++;
    this.socket?.ref();
  }
  private idle(): void {
    if (this.inFlight > 0) this.inFlight--;
    if (this.inFlight === 0) this.socket?.unref();
  }

  /** Runs argv on the host; a connection failure resolves with exit code 255 and its cause, as ssh(1) does. */
  async exec(argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const command = shellCommand(
      remoteArgv(argv, { become: this.opts.connection.become, env: opts.env ?? {}, timeoutMs }),
    );
    const asked = tracing ? now() : 0;
    return this.slots.with(async () => {
      this.busy();
      const started = tracing ? now() : 0;
      let code: number | null = null;
      try {
        let client: Client;
        try {
          client = await this.connection();
        } catch (err) {
          return failed(
            argv,
            err instanceof SshError ? err.message : `${this.where}: ${(err as Error).message}`,
          );
        }
        const r = await runChannel(
          client,
          command,
          argv,
          opts,
          timeoutMs,
          this.where,
          this.opts.channelRetries ?? CHANNEL_RETRIES,
        );
        code = r.code;
        return r;
      } finally {
        this.idle();
        if (tracing) trace({ host: this.name, what: label(argv), asked, started, ended: now(), code });
      }
    });
  }

  async run(argv: readonly string[], opts?: ExecOptions): Promise<string> {
    const r = await this.exec(argv, opts);
    if (r.code !== 0) throw new CommandError(r, this.where, opts?.input);
    return r.stdout;
  }

  /** Runs one of the constant scripts; a failure names what it did (`write /etc/x`), not the script text. */
  private async script(
    what: readonly string[],
    script: string,
    args: readonly string[],
    input?: string,
  ): Promise<void> {
    const r = await this.exec(shellScript(script, args), input === undefined ? {} : { input });
    if (r.code !== 0) throw new CommandError({ ...r, argv: what }, this.where);
  }

  async readFile(hostPath: string): Promise<string | undefined> {
    const r = await this.exec(['cat', '--', hostPath]);
    return r.code === 0 ? r.stdout : undefined;
  }

  async writeFile(hostPath: string, content: string, opts: WriteOptions = {}): Promise<void> {
    await this.script(
      ['write', hostPath],
      WRITE_SCRIPT,
      [hostPath, octalMode(opts.mode ?? 0o644), ownerArg(opts.owner)],
      content,
    );
  }

  async mkdir(hostPath: string, opts: WriteOptions = {}): Promise<void> {
    await this.script(['mkdir', hostPath], MKDIR_SCRIPT, [
      hostPath,
      octalMode(opts.mode ?? 0o755),
      ownerArg(opts.owner),
    ]);
  }

  /** readFile and fileMode of every path, one command per READ_BATCH paths (batches in parallel). */
  async readFileStates(hostPaths: readonly string[]): Promise<FileState[]> {
    const batches: string[][] = [];
    for (let i = 0; i < hostPaths.length; i += READ_BATCH) batches.push(hostPaths.slice(i, i + READ_BATCH));
    const parts = await Promise.all(
      batches.map(async (paths) => {
        const r = await this.exec(shellScript(READ_FILES_SCRIPT, paths));
        const states = r.code === 0 ? parseFileStates(r.stdout, paths.length) : undefined;
        if (!states)
          throw new CommandError(
            {
              ...r,
              argv: ['read', ...paths],
              stderr: r.code === 0 ? `unexpected answer: ${r.stdout.slice(0, 200)}` : r.stderr,
            },
            this.where,
          );
        return states;
      }),
    );
    return parts.flat();
  }

  /** mkdir of each directory, in order, in one command. */
  async makeDirs(dirs: readonly DirSpec[]): Promise<void> {
    if (dirs.length === 0) return;
    await this.script(
      ['mkdir', ...dirs.map((d) => d.path)],
      MKDIRS_SCRIPT,
      dirs.flatMap((d) => [d.path, octalMode(d.mode ?? 0o755), ownerArg(d.owner)]),
    );
  }

  async exists(hostPath: string): Promise<boolean> {
    return (await this.exec(['test', '-e', hostPath])).code === 0;
  }

  async fileMode(hostPath: string): Promise<number | undefined> {
    const r = await this.exec(['stat', '-L', '-c', '%a', '--', hostPath]);
    if (r.code !== 0) return undefined;
    const mode = Number.parseInt(r.stdout.trim(), 8);
    return Number.isNaN(mode) ? undefined : mode & 0o777;
  }

  async remove(hostPath: string): Promise<void> {
    await this.run(['rm', '-rf', '--', hostPath]);
  }

  private async show(daemon: string): Promise<Record<string, string>> {
    const out = await this.run([
      'systemctl',
      'show',
      '-p',
      'LoadState',
      '-p',
      'ActiveState',
      '-p',
      'SubState',
      '-p',
      'MainPID',
      '-p',
      'ExecMainPID',
      unitName(daemon),
    ]);
    return parseShow(out);
  }

  private async systemctl(...args: string[]): Promise<void> {
    await this.run(['systemctl', ...args], { timeoutMs: 120_000 });
  }

  /**
   * Installs the daemon's unit and starts it, unless it runs already with the same command line and environment.
   * One running with another command line is an error: silently keeping it would leave the host running what was
   * not asked for. A unit that differs only in the rest (limits, ordering) is rewritten for the next start.
   */
  async startDaemon(spec: DaemonSpec): Promise<number> {
    if ((await this.supervisor()) === 'pidfile') return this.pidFiles.start(spec);
    const unit = unitName(spec.name);
    const wantUnit = renderUnit(spec);
    const wantDrop = renderThisBootDropIn(spec);
    const [state, haveUnit, haveDrop] = await Promise.all([
      this.show(spec.name),
      this.readFile(unitPath(spec.name)),
      this.readFile(thisBootDropInPath(spec.name)),
    ]);
    const running = isRunningState(state);
    if (running && commandOf(haveUnit, haveDrop) !== commandOf(wantUnit, wantDrop)) {
      throw new Error(
        `${this.where}: ${spec.name} already runs (pid ${state.MainPID}, ${unit}) with another command line than the ` +
          'one asked for; stop it first',
      );
    }
    let changed = false;
    if (haveUnit !== wantUnit) {
      await this.writeFile(unitPath(spec.name), wantUnit, { mode: 0o644 });
      changed = true;
    }
    if (!running) {
      if (wantDrop !== undefined && haveDrop !== wantDrop) {
        await this.writeFile(thisBootDropInPath(spec.name), wantDrop, { mode: 0o644 });
        changed = true;
      } else if (wantDrop === undefined && haveDrop !== undefined) {
        await this.remove(thisBootDropInPath(spec.name));
        changed = true;
      }
    }
    if (changed) await this.systemctl('daemon-reload');
    if (running) return Number(state.MainPID);
    await this.run(['mkdir', '-p', '--', posix.dirname(spec.logFile)]);
    await this.systemctl('enable', '--quiet', unit);
    const started = await this.exec(['systemctl', 'start', unit], { timeoutMs: 120_000 });
    if (started.code !== 0) {
      const journal = await this.exec(['journalctl', '-u', unit, '-n', '8', '--no-pager', '-o', 'cat']);
      throw new CommandError(
        { ...started, stderr: `${started.stderr}${journal.code === 0 ? journal.stdout : ''}` },
        this.where,
      );
    }
    const after = await this.show(spec.name);
    // Like the lab: the pid even when it exited at once (the caller's wait reads its log and reports it).
    return Number(after.MainPID) || Number(after.ExecMainPID) || 0;
  }

  async daemonPid(name: string): Promise<number | undefined> {
    if ((await this.supervisor()) === 'pidfile') return this.pidFiles.pid(name);
    const show = await this.show(name).catch(() => undefined);
    return show && isRunningState(show) ? Number(show.MainPID) : undefined;
  }

  async signalDaemon(name: string, signal: NodeJS.Signals): Promise<boolean> {
    if ((await this.supervisor()) === 'pidfile') return this.pidFiles.signal(name, signal);
    if ((await this.daemonPid(name)) === undefined) return false;
    const r = await this.exec(['systemctl', 'kill', `--signal=${signal}`, unitName(name)]);
    return r.code === 0;
  }

  /**
   * `systemctl stop` with the signal asked for (a runtime drop-in sets KillSignal and TimeoutStopSec, SIGKILL after
   * it), then checks that the main pid is gone. False when it was not running (a pending automatic restart is
   * cancelled all the same).
   */
  async stopDaemon(
    name: string,
    opts: { signal?: NodeJS.Signals; timeoutMs?: number } = {},
  ): Promise<boolean> {
    if ((await this.supervisor()) === 'pidfile') return this.pidFiles.stop(name, opts);
    const unit = unitName(name);
    const state = await this.show(name);
    if (state.LoadState === 'not-found') return false;
    if (!isRunningState(state)) {
      if (state.ActiveState !== 'inactive') await this.systemctl('stop', unit);
      return false;
    }
    const pid = Number(state.MainPID);
    const timeoutMs = opts.timeoutMs ?? 30_000;
    const drop = renderStopDropIn(opts.signal ?? 'SIGTERM', timeoutMs);
    if ((await this.readFile(stopDropInPath(name))) !== drop) {
      await this.writeFile(stopDropInPath(name), drop, { mode: 0o644 });
      await this.systemctl('daemon-reload');
    }
    await this.run(['systemctl', 'stop', unit], { timeoutMs: timeoutMs + 15_000 });
    const deadline = Date.now() + GONE_WAIT_MS;
    for (;;) {
      const gone = (await this.exec(['test', '-e', `/proc/${pid}`])).code !== 0;
      const now = await this.show(name);
      if (gone && !isRunningState(now)) return true;
      if (Date.now() > deadline)
        throw new Error(`${this.where}: ${name} (pid ${pid}) is still running after systemctl stop ${unit}`);
      await sleep(200);
    }
  }

  async tcpConnect(address: string, port: number, timeoutMs = 2000): Promise<boolean> {
    if (!/^[A-Za-z0-9.:-]+$/.test(address) || !Number.isInteger(port) || port < 1 || port > 65535)
      throw new Error(`${this.where}: tcpConnect: not an address and port: ${address}:${port}`);
    const secs = (timeoutMs / 1000 + 1).toFixed(1);
    const r = await this.exec(['timeout', secs, 'bash', '-c', `exec 3<>/dev/tcp/${address}/${port}`], {
      timeoutMs: timeoutMs + 2000,
    });
    return r.code === 0;
  }
}

/** The command line and environment a unit (with its this-boot drop-in) runs. */
export function commandOf(unit: string | undefined, dropIn: string | undefined): string {
  const lines = (text: string | undefined, prefix: string): string[] =>
    (text ?? '').split('\n').filter((l) => l.startsWith(prefix) && l !== 'ExecStart=');
  const exec = lines(dropIn, 'ExecStart=').at(-1) ?? lines(unit, 'ExecStart=').at(-1) ?? '';
  return [exec, ...lines(unit, 'Environment=')].join('\n');
}

function readKnownHosts(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw err;
  }
}

function tail(text: string): string {
  return text.trim().split('\n').slice(-4).join('\n');
}

function failed(argv: readonly string[], reason: string): ExecResult {
  return { argv, code: SSH_FAILED, signal: null, stdout: '', stderr: reason, timedOut: false };
}

/** One command on its own channel: stdin from `input` (then EOF), stdout and stderr collected, bounded twice. */
function runChannel(
  client: Client,
  command: string,
  argv: readonly string[],
  opts: ExecOptions,
  timeoutMs: number,
  where: string,
  retries: readonly number[],
): Promise<ExecResult> {
  return new Promise((resolve) => {
    const started = Date.now();
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let code: number | null = null;
    let signal: NodeJS.Signals | null = null;
    let timedOut = false;
    let settled = false;
    let channel: ClientChannel | undefined;
    const kill = (): void => {
      try {
        channel?.signal('KILL');
      } catch {
        /* the server may not take signals */
      }
      channel?.close();
    };
    // The host's own `timeout` ends the command; this one only covers a host that stopped answering.
    const timer = setTimeout(() => {
      timedOut = true;
      kill();
      finish(`${where}: no answer ${Math.round(timeoutMs / 1000) + 10} s into ${argv.join(' ')}`);
    }, timeoutMs + 10_000);
    const onAbort = (): void => kill();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    const finish = (extra?: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      const elapsed = Date.now() - started;
      // timeout(1) exits 124 (137 after --kill-after) once the bound is reached.
      if ((code === 124 || code === 137) && elapsed >= timeoutMs - 100) timedOut = true;
      const stderr = Buffer.concat(err).toString('utf8') + (extra ? `${extra}\n` : '');
      resolve({
        argv,
        code: code ?? (extra !== undefined ? SSH_FAILED : null),
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr,
        timedOut,
      });
    };
    let refusals = 0;
    const open = (): void => {
      if (settled) return;
      client.exec(command, (e, ch) => {
        if (e) {
          // The server refused the channel: OpenSSH's MaxSessions counts a session until its command has exited, also
          // after its channel was closed (a command ended from here), so it can be full while our channels are not.
          // Transient: try again, a bounded number of times.
          if (isChannelRefusal(e) && refusals < retries.length && !opts.signal?.aborted) {
            const delay = retries[refusals++] as number;
            setTimeout(open, delay);
            return;
          }
          code = SSH_FAILED;
          finish(
            `${where}: cannot open a channel: ${e.message}${refusals > 0 ? ` (refused ${refusals + 1} times)` : ''}`,
          );
          return;
        }
        onChannel(ch);
      });
    };
    const onChannel = (ch: ClientChannel): void => {
      if (settled) {
        ch.close();
        return;
      }
      channel = ch;
      ch.on('data', (d: Buffer) => out.push(d));
      ch.stderr.on('data', (d: Buffer) => err.push(d));
      ch.on('exit', (c: number | null, s?: string) => {
        if (c !== null && c !== undefined) code = c;
        else if (s) signal = `SIG${s}` as NodeJS.Signals;
      });
      ch.on('close', () => finish());
      ch.on('error', (x: Error) => finish(`${where}: ${x.message}`));
      if (opts.input !== undefined) ch.end(opts.input);
      else ch.end();
      if (opts.signal?.aborted) kill();
    };
    open();
  });
}

/** Waits between attempts to open a channel the server refused (about 8 s in all). */
export const CHANNEL_RETRIES: readonly number[] = [50, 100, 200, 400, 800, 1000, 1000, 1500, 2000, 2000];

/** A channel the server refused to open (SSH_MSG_CHANNEL_OPEN_FAILURE), not a broken connection. */
function isChannelRefusal(e: Error): boolean {
  return (
    e.message.startsWith('(SSH) Channel open failure:') &&
    typeof (e as { reason?: unknown }).reason === 'number'
  );
}
