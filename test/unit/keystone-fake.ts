// In-memory hosts and an in-memory MariaDB for the Keystone unit tests: files with modes, tracked daemons, and the
// commands Keystone's deploy runs (mariadb through the VIP, keystone-manage, find, dpkg-query, curl) answered the
// way the real ones answer, so the deploy logic can be followed call by call.
import { randomBytes } from 'node:crypto';
import type { DaemonSpec, Host, WriteOptions } from '../../src/hosts/host.js';
import type { Deployment } from '../../src/model.js';
import {
  FERNET_MAX_ACTIVE_KEYS,
  KEYSTONE_MANAGE,
  LIST_KEYS_SCRIPT,
} from '../../src/services/keystone/keystone.js';
import type { DeployContext } from '../../src/services/types.js';
import type { ExecOptions, ExecResult } from '../../src/util/exec.js';

export type Call =
  | { op: 'write'; path: string; mode: number | undefined }
  | { op: 'remove'; path: string }
  | { op: 'start'; name: string }
  | { op: 'stop'; name: string; signal: NodeJS.Signals | undefined }
  | {
      op: 'exec';
      argv: readonly string[];
      input: string | undefined;
      env: Readonly<Record<string, string>> | undefined;
    };

const newKey = (): string => randomBytes(32).toString('base64url').concat('=');

/** The database as stackha's SQL sees it through the VIP. */
export class FakeDb {
  database = false;
  user = false;
  tables = false;
  readonly markers = new Map<string, string>();
  readonly statements: string[] = [];

  answer(sql: string): string {
    this.statements.push(sql);
    if (sql.includes("SELECT 'database'"))
      return `database\t${this.database ? 1 : 0}\nuser\t${this.user ? 1 : 0}\ntables\t${this.tables ? 2 : 0}\n`;
    if (sql.includes('CREATE TABLE IF NOT EXISTS stackha.deploy_markers')) {
      this.tables = true;
      return '';
    }
    if (sql.includes('CREATE USER IF NOT EXISTS')) {
      this.database = true;
      this.user = true;
      return '';
    }
    if (sql.includes('SELECT name, value FROM stackha.deploy_markers'))
      return [...this.markers].map(([k, v]) => `${k}\t${v}\n`).join('');
    const marker =
      /INSERT INTO stackha\.deploy_markers \(name, value, host\) VALUES \('([^']*)', '([^']*)'/.exec(sql);
    if (marker?.[1] && marker[2] !== undefined) {
      this.markers.set(marker[1], marker[2]);
      return '';
    }
    // The lease lock is always free here: SELECT holder answers with the inserting holder.
    const lock =
      /INSERT IGNORE INTO stackha\.locks \(name, holder, expires\) VALUES \('[^']*', '([^']*)'/.exec(sql);
    if (lock?.[1]) return `${lock[1]}\n`;
    return '';
  }
}

export class FakeHost implements Host {
  readonly files = new Map<string, { content: string; mode: number }>();
  readonly dirs = new Map<string, number | undefined>();
  readonly daemons = new Map<string, DaemonSpec>();
  readonly calls: Call[] = [];
  /** The database this host's mariadb client reaches (every host shares one). */
  db: FakeDb | undefined;
  /** Health of the API on this host (curl answers 200 when true and the daemon runs). */
  healthy = true;
  /** Listing a directory fails (an unreadable host): `find` exits 1. */
  failListing = false;
  /** Ports nothing answers on (curl gets no HTTP status): an API that is down while others on the host are up. */
  readonly downPorts = new Set<number>();
  /** Daemons that exit right after they start (a broken config): started, then not running. */
  readonly exitOnStart = new Set<string>();

  constructor(
    readonly name: string,
    readonly address: string,
  ) {}

  /** Paths in commands are host paths, as on a machine. */
  private hostPathOf(path: string): string {
    return path;
  }

  /** keystone-manage's key operations on this host's repository. */
  private keystoneManage(argv: readonly string[]): Partial<ExecResult> {
    const confPath = this.hostPathOf(argv[2] ?? '');
    const conf = this.files.get(confPath)?.content ?? '';
    const repo = (section: string): string => {
      const m = new RegExp(`\\[${section}\\][^[]*?key_repository = (\\S+?)/?\\n`).exec(conf);
      if (!m?.[1]) throw new Error(`no [${section}] key_repository in ${confPath}`);
      return this.hostPathOf(m[1]);
    };
    const command = argv[3];
    if (command === 'fernet_setup' || command === 'credential_setup') {
      const dir = repo(command === 'fernet_setup' ? 'fernet_tokens' : 'credential');
      if (this.keysIn(dir).size === 0) {
        this.files.set(`${dir}/0`, { content: newKey(), mode: 0o600 });
        this.files.set(`${dir}/1`, { content: newKey(), mode: 0o600 });
      }
    } else if (command === 'fernet_rotate') {
      const dir = repo('fernet_tokens');
      const keys = this.keysIn(dir);
      const top = Math.max(...keys.keys());
      this.files.set(`${dir}/${top + 1}`, { content: keys.get(0) ?? '', mode: 0o600 });
      this.files.set(`${dir}/0`, { content: newKey(), mode: 0o600 });
      const secondaries = [...keys.keys()].filter((n) => n !== 0).sort((a, b) => a - b);
      while (secondaries.length + 2 > FERNET_MAX_ACTIVE_KEYS) {
        const n = secondaries.shift();
        if (n !== undefined) this.files.delete(`${dir}/${n}`);
      }
    }
    return {};
  }

  keysIn(dir: string): Map<number, string> {
    const out = new Map<number, string>();
    for (const [p, f] of this.files) {
      const m = /^(.*)\/(\d+)$/.exec(p);
      if (m?.[1] === dir && m[2]) out.set(Number(m[2]), f.content);
    }
    return out;
  }

  async exec(argv: readonly string[], opts?: ExecOptions): Promise<ExecResult> {
    this.calls.push({ op: 'exec', argv, input: opts?.input, env: opts?.env });
    const ok = (r: Partial<ExecResult> = {}): ExecResult => ({
      argv,
      code: 0,
      signal: null,
      stdout: '',
      stderr: '',
      timedOut: false,
      ...r,
    });
    const cmd = argv[0];
    // A key repository's listing (LIST_KEYS_SCRIPT: `find` when the directory exists).
    if (cmd === 'sh' && argv[2] === LIST_KEYS_SCRIPT) {
      if (this.failListing) return ok({ code: 1, stderr: 'find: Permission denied' });
      const dir = this.hostPathOf(argv[4] ?? '');
      const names = [...this.keysIn(dir).keys()].map(String);
      return ok({ stdout: names.map((n) => `${n}\n`).join('') });
    }
    if (cmd === '/usr/bin/mariadb') {
      if (!this.db) return ok({ code: 1, stderr: 'no database' });
      return ok({ stdout: this.db.answer(opts?.input ?? '') });
    }
    if (cmd === KEYSTONE_MANAGE) return ok(this.keystoneManage(argv));
    if (cmd === 'dpkg-query') return ok({ stdout: '2:22.0.2-0+deb12u6' });
    if (cmd === 'curl') {
      const port = Number(/:(\d+)\//.exec(argv.at(-1) ?? '')?.[1]);
      const up = this.healthy && this.daemons.size > 0 && !this.downPorts.has(port);
      return ok({ stdout: up ? '200' : '000' });
    }
    return ok();
  }

  async run(argv: readonly string[], opts?: ExecOptions): Promise<string> {
    const r = await this.exec(argv, opts);
    if (r.code !== 0) throw new Error(`${this.name}: ${argv.join(' ')} exited ${r.code}: ${r.stderr}`);
    return r.stdout;
  }

  async readFile(hostPath: string): Promise<string | undefined> {
    return this.files.get(hostPath)?.content;
  }

  async writeFile(hostPath: string, content: string, opts: WriteOptions = {}): Promise<void> {
    this.calls.push({ op: 'write', path: hostPath, mode: opts.mode });
    this.files.set(hostPath, { content, mode: opts.mode ?? 0o644 });
  }

  async mkdir(hostPath: string, opts: WriteOptions = {}): Promise<void> {
    this.dirs.set(hostPath, opts.mode);
  }

  async exists(hostPath: string): Promise<boolean> {
    return (
      this.files.has(hostPath) ||
      this.dirs.has(hostPath) ||
      [...this.files.keys()].some((p) => p.startsWith(`${hostPath}/`))
    );
  }

  async fileMode(hostPath: string): Promise<number | undefined> {
    return this.files.get(hostPath)?.mode;
  }

  async remove(hostPath: string): Promise<void> {
    this.calls.push({ op: 'remove', path: hostPath });
    this.files.delete(hostPath);
  }

  async startDaemon(spec: DaemonSpec): Promise<number> {
    this.calls.push({ op: 'start', name: spec.name });
    if (this.exitOnStart.has(spec.name)) return 1000 + this.daemons.size + 1;
    this.daemons.set(spec.name, spec);
    return 1000 + this.daemons.size;
  }

  async stopDaemon(name: string, opts: { signal?: NodeJS.Signals } = {}): Promise<boolean> {
    this.calls.push({ op: 'stop', name, signal: opts.signal });
    return this.daemons.delete(name);
  }

  async signalDaemon(name: string): Promise<boolean> {
    return this.daemons.has(name);
  }

  async daemonPid(name: string): Promise<number | undefined> {
    return this.daemons.has(name) ? 1000 : undefined;
  }

  async tcpConnect(): Promise<boolean> {
    return true;
  }

  // --- test helpers ---

  execs(filter: (argv: readonly string[]) => boolean = () => true): (readonly string[])[] {
    return this.calls.flatMap((c) => (c.op === 'exec' && filter(c.argv) ? [c.argv] : []));
  }

  clearCalls(): void {
    this.calls.length = 0;
  }
}

/** Fake hosts for every host of the deployment, sharing one database, and a deploy context over them. */
export function fakeCluster(dep: Deployment): {
  hosts: Map<string, FakeHost>;
  db: FakeDb;
  ctx: DeployContext;
  logs: string[];
} {
  const db = new FakeDb();
  const hosts = new Map(dep.hosts.map((h) => [h.name, new FakeHost(h.name, h.address)]));
  for (const h of hosts.values()) h.db = db;
  const logs: string[] = [];
  const ctx: DeployContext = {
    dep,
    hosts,
    log: (m) => logs.push(m),
  };
  return { hosts, db, ctx, logs };
}
