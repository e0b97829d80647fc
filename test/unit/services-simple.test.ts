// syncFiles and deploySimpleService against an in-memory Host: what a deploy writes, starts, reloads and restarts.
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import type { DaemonSpec, Host, WriteOptions } from '../../src/hosts/host.js';
import { buildDeployment } from '../../src/inventory/load.js';
import type { Deployment, HostSpec } from '../../src/model.js';
import { daemonsFile, syncFiles } from '../../src/services/files.js';
import { deployHaproxy } from '../../src/services/haproxy/haproxy.js';
import { deployKeepalived } from '../../src/services/keepalived/keepalived.js';
import { galeraLoadBalanced } from '../../src/services/mariadb/galera.js';
import { deployMemcached } from '../../src/services/memcached/memcached.js';
import { type SimpleServiceOptions, deploySimpleService } from '../../src/services/simple.js';
import type { DeployContext, RenderTarget, RenderedFile, ServiceUnit } from '../../src/services/types.js';
import type { ExecOptions, ExecResult } from '../../src/util/exec.js';

const FIXTURES = join(import.meta.dirname, '../fixtures/render');
const fixture = (name: string): string => readFileSync(join(FIXTURES, name), 'utf8');
const dep: Deployment = buildDeployment(
  { multinode: fixture('multinode'), globals: fixture('globals.yml'), passwords: fixture('passwords.yml') },
  '/etc/stackha',
);

/** Scratch directory the fake hosts mirror their files into (see FakeHost.path). */
const scratch = mkdtempSync(join(tmpdir(), 'stackha-fakehost-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

type Call =
  | { op: 'write'; path: string; mode: number | undefined; owner: string | undefined }
  | { op: 'mkdir'; path: string }
  | { op: 'start'; name: string; argv: readonly string[] }
  | { op: 'stop'; name: string }
  | { op: 'signal'; name: string; signal: NodeJS.Signals }
  | { op: 'exec'; argv: readonly string[] }
  | { op: 'beforeStart' }
  | { op: 'waitReady' };

/**
 * A Host kept in memory: files (content, mode, owner), directories, daemons by name -> pid, and every call in
 * order. Files are also mirrored under a scratch directory and path() points there, because syncFiles reads the
 * current mode with statSync(...) rather than through the Host (see the `it.fails` test below).
 */
class FakeHost implements Host {
  readonly files = new Map<string, { content: string; mode: number; owner: string | undefined }>();
  readonly dirs = new Map<string, WriteOptions>();
  readonly daemons = new Map<string, number>();
  readonly calls: Call[] = [];
  /** Answers exec(); by default every command succeeds with no output. */
  onExec: (argv: readonly string[]) => Partial<ExecResult> = () => ({});
  private nextPid = 1000;

  constructor(
    readonly name: string,
    readonly address: string,
    private readonly mirror: string,
  ) {}

  path(hostPath: string): string {
    return this.mirrored(hostPath);
  }

  /** Where the file is mirrored on this machine, whatever path() says. */
  protected mirrored(hostPath: string): string {
    return join(this.mirror, hostPath);
  }

  async exec(argv: readonly string[], _opts?: ExecOptions): Promise<ExecResult> {
    this.calls.push({ op: 'exec', argv });
    return { argv, code: 0, signal: null, stdout: '', stderr: '', timedOut: false, ...this.onExec(argv) };
  }

  async run(argv: readonly string[], opts?: ExecOptions): Promise<string> {
    const r = await this.exec(argv, opts);
    if (r.code !== 0) throw new Error(`${this.name}: ${argv.join(' ')} exited ${r.code}`);
    return r.stdout;
  }

  async readFile(hostPath: string): Promise<string | undefined> {
    return this.files.get(hostPath)?.content;
  }

  async writeFile(hostPath: string, content: string, opts: WriteOptions = {}): Promise<void> {
    this.calls.push({ op: 'write', path: hostPath, mode: opts.mode, owner: opts.owner });
    const mode = opts.mode ?? 0o644;
    this.files.set(hostPath, { content, mode, owner: opts.owner });
    const mirrored = this.mirrored(hostPath);
    mkdirSync(dirname(mirrored), { recursive: true });
    writeFileSync(mirrored, content);
    chmodSync(mirrored, mode);
  }

  async mkdir(hostPath: string, opts: WriteOptions = {}): Promise<void> {
    this.calls.push({ op: 'mkdir', path: hostPath });
    this.dirs.set(hostPath, opts);
  }

  async exists(hostPath: string): Promise<boolean> {
    return this.files.has(hostPath) || this.dirs.has(hostPath);
  }

  async fileMode(hostPath: string): Promise<number | undefined> {
    return this.files.get(hostPath)?.mode;
  }

  async remove(hostPath: string): Promise<void> {
    this.files.delete(hostPath);
    this.dirs.delete(hostPath);
    rmSync(this.mirrored(hostPath), { recursive: true, force: true });
  }

  async startDaemon(spec: DaemonSpec): Promise<number> {
    this.calls.push({ op: 'start', name: spec.name, argv: spec.argv });
    const pid = this.nextPid++;
    this.daemons.set(spec.name, pid);
    return pid;
  }

  async stopDaemon(name: string): Promise<boolean> {
    this.calls.push({ op: 'stop', name });
    return this.daemons.delete(name);
  }

  async signalDaemon(name: string, signal: NodeJS.Signals): Promise<boolean> {
    this.calls.push({ op: 'signal', name, signal });
    return this.daemons.has(name);
  }

  async daemonPid(name: string): Promise<number | undefined> {
    return this.daemons.get(name);
  }

  async tcpConnect(): Promise<boolean> {
    return true;
  }

  // --- test controls, not part of Host ---

  /** The daemon dies behind stackha's back. */
  crash(name: string): void {
    this.daemons.delete(name);
  }

  /** Someone changes a file's mode on the host. */
  chmod(hostPath: string, mode: number): void {
    const f = this.files.get(hostPath);
    if (!f) throw new Error(`no file ${hostPath}`);
    f.mode = mode;
    chmodSync(this.mirrored(hostPath), mode);
  }

  /** Someone edits a file on the host. */
  edit(hostPath: string, content: string): void {
    const f = this.files.get(hostPath);
    if (!f) throw new Error(`no file ${hostPath}`);
    f.content = content;
    writeFileSync(this.mirrored(hostPath), content);
  }

  ops(...kinds: Call['op'][]): Call[] {
    return this.calls.filter((c) => kinds.includes(c.op));
  }

  started(): string[] {
    return this.calls.flatMap((c) => (c.op === 'start' ? [c.name] : []));
  }

  stopped(): string[] {
    return this.calls.flatMap((c) => (c.op === 'stop' ? [c.name] : []));
  }

  signalled(): [string, NodeJS.Signals][] {
    return this.calls.flatMap((c): [string, NodeJS.Signals][] =>
      c.op === 'signal' ? [[c.name, c.signal]] : [],
    );
  }

  clearCalls(): void {
    this.calls.length = 0;
  }
}

let hosts: Map<string, FakeHost>;
let logged: string[];

function fakeHosts(): Map<string, FakeHost> {
  const dir = mkdtempSync(join(scratch, 'run-'));
  return new Map(dep.hosts.map((h) => [h.name, new FakeHost(h.name, h.address, join(dir, h.name))]));
}

function context(): DeployContext {
  return {
    dep,
    hosts,
    log: (m) => logged.push(m),
  };
}

const host = (name: string): FakeHost => {
  const h = hosts.get(name);
  if (!h) throw new Error(`no fake host ${name}`);
  return h;
};

beforeEach(() => {
  hosts = fakeHosts();
  logged = [];
});

describe('syncFiles', () => {
  const files: RenderedFile[] = [
    { path: '/etc/demo/a.conf', content: 'a = 1\n' },
    { path: '/etc/demo/secret.conf', content: 'password = fake\n', mode: 0o600, owner: 'demo' },
  ];

  it('writes every file on a new host, with its mode (0644 by default) and owner', async () => {
    const h = host('ctl1');
    expect(await syncFiles(h, files)).toEqual(['/etc/demo/a.conf', '/etc/demo/secret.conf']);
    expect(h.files.get('/etc/demo/a.conf')).toEqual({ content: 'a = 1\n', mode: 0o644, owner: undefined });
    expect(h.files.get('/etc/demo/secret.conf')).toEqual({
      content: 'password = fake\n',
      mode: 0o600,
      owner: 'demo',
    });
  });

  it('writes nothing and returns nothing when content and mode match', async () => {
    const h = host('ctl1');
    await syncFiles(h, files);
    h.clearCalls();
    expect(await syncFiles(h, files)).toEqual([]);
    expect(h.ops('write')).toEqual([]);
  });

  it('rewrites only the file whose content changed', async () => {
    const h = host('ctl1');
    await syncFiles(h, files);
    h.clearCalls();
    const next = [files[0]!, { ...files[1]!, content: 'password = other-fake\n' }];
    expect(await syncFiles(h, next)).toEqual(['/etc/demo/secret.conf']);
    expect(h.ops('write').map((c) => (c.op === 'write' ? c.path : ''))).toEqual(['/etc/demo/secret.conf']);
    expect(h.files.get('/etc/demo/secret.conf')?.content).toBe('password = other-fake\n');
  });

  it('rewrites a file edited on the host back to the rendered content', async () => {
    const h = host('ctl1');
    await syncFiles(h, files);
    h.edit('/etc/demo/a.conf', 'a = 2\n');
    expect(await syncFiles(h, files)).toEqual(['/etc/demo/a.conf']);
    expect(h.files.get('/etc/demo/a.conf')?.content).toBe('a = 1\n');
  });

  it('rewrites a file whose mode alone changed, restoring the mode', async () => {
    const h = host('ctl1');
    await syncFiles(h, files);
    h.chmod('/etc/demo/secret.conf', 0o644);
    h.clearCalls();
    expect(await syncFiles(h, files)).toEqual(['/etc/demo/secret.conf']);
    expect(h.ops('write')).toEqual([
      { op: 'write', path: '/etc/demo/secret.conf', mode: 0o600, owner: 'demo' },
    ]);
    expect(h.files.get('/etc/demo/secret.conf')?.mode).toBe(0o600);
  });

  // The current mode is read through the Host, so a host whose files are not on this machine (SSH) works too.
  it('leaves unchanged files alone on a host whose files are not on this machine', async () => {
    class RemoteHost extends FakeHost {
      override path(hostPath: string): string {
        // A remote host's path: nothing is there on this machine (and nothing is ever written there).
        return join(scratch, 'not-on-this-machine', hostPath);
      }
    }
    const h = new RemoteHost('ctl1', '198.18.0.11', join(scratch, 'remote'));
    await syncFiles(h, files);
    expect(await syncFiles(h, files)).toEqual([]);
  });
});

describe('deploySimpleService', () => {
  /** What the fake service renders; tests change it between deploys. */
  let config: string;
  let argv: string[];
  let beforeStartCalls: string[];

  beforeEach(() => {
    config = 'setting = 1\n';
    argv = ['/usr/sbin/demod', '--foreground'];
    beforeStartCalls = [];
  });

  const render = (t: RenderTarget): ServiceUnit => ({
    files: [{ path: '/etc/demo/demo.conf', content: `# ${t.host.name}\n${config}`, mode: 0o600 }],
    dirs: [{ path: '/run/demo', mode: 0o755 }],
    daemons: [{ name: 'demod', argv: [...argv, '-f', '/etc/demo/demo.conf'], logFile: '/var/log/demo.log' }],
  });

  function options(extra: Partial<SimpleServiceOptions> = {}): SimpleServiceOptions {
    return {
      service: 'demo',
      hosts: dep.hosts,
      render,
      beforeStart: async (h: Host, spec: HostSpec) => {
        expect(h.name).toBe(spec.name);
        (h as FakeHost).calls.push({ op: 'beforeStart' });
        beforeStartCalls.push(spec.name);
      },
      waitReady: async (h: Host) => {
        (h as FakeHost).calls.push({ op: 'waitReady' });
      },
      ...extra,
    };
  }

  const deploy = (extra: Partial<SimpleServiceOptions> = {}) =>
    deploySimpleService(context(), options(extra));
  const clearAll = (): void => {
    for (const h of hosts.values()) h.clearCalls();
    beforeStartCalls = [];
    logged = [];
  };
  const allOf = (outcome: string) => Object.fromEntries(dep.hosts.map((h) => [h.name, outcome]));

  it('first run: writes the files and the daemons file, creates the dirs, starts every daemon', async () => {
    const r = await deploy();
    expect(r).toEqual({ service: 'demo', outcomes: allOf('started') });
    for (const spec of dep.hosts) {
      const h = host(spec.name);
      expect(h.files.get('/etc/demo/demo.conf')).toEqual({
        content: `# ${spec.name}\nsetting = 1\n`,
        mode: 0o600,
        owner: undefined,
      });
      const daemons = JSON.parse(h.files.get('/etc/stackha/daemons/demo.json')?.content ?? '') as unknown;
      expect(daemons).toEqual([
        {
          name: 'demod',
          argv: ['/usr/sbin/demod', '--foreground', '-f', '/etc/demo/demo.conf'],
          env: {},
        },
      ]);
      expect(h.files.get('/etc/stackha/daemons/demo.json')?.mode).toBe(0o600);
      expect(h.dirs.get('/run/demo')).toEqual({ mode: 0o755 });
      expect(h.started()).toEqual(['demod']);
      expect(h.daemons.has('demod')).toBe(true);
      expect(h.ops('waitReady')).toHaveLength(1);
    }
    expect(logged.sort()).toEqual(dep.hosts.map((h) => `demo on ${h.name}: started`));
  });

  it('second run with the same render: unchanged, nothing written, started, stopped or signalled', async () => {
    await deploy();
    clearAll();
    const r = await deploy({ reloadSignal: 'SIGHUP' });
    expect(r.outcomes).toEqual(allOf('unchanged'));
    for (const h of hosts.values()) {
      expect(h.ops('write', 'start', 'stop', 'signal', 'beforeStart', 'waitReady')).toEqual([]);
    }
    expect(beforeStartCalls).toEqual([]);
  });

  it('a config written but never applied (an interrupted deploy) is applied by the next deploy', async () => {
    await deploy({ reloadSignal: 'SIGHUP' });
    config = 'setting = 2\n';
    // The interrupted run: new files on disk, the daemon never told; the record still says the old config.
    for (const h of hosts.values()) await h.writeFile('/etc/demo/demo.conf', config);
    clearAll();
    const r = await deploy({ reloadSignal: 'SIGHUP' });
    expect(r.outcomes).toEqual(allOf('reloaded'));
    for (const h of hosts.values()) expect(h.signalled()).toEqual([['demod', 'SIGHUP']]);
    clearAll();
    expect((await deploy({ reloadSignal: 'SIGHUP' })).outcomes).toEqual(allOf('unchanged'));
  });

  it('a changed config with reloadSignal: reloaded with the signal, never restarted', async () => {
    await deploy({ reloadSignal: 'SIGHUP' });
    clearAll();
    config = 'setting = 2\n';
    const pids = [...hosts.values()].map((h) => h.daemons.get('demod'));
    const r = await deploy({ reloadSignal: 'SIGHUP' });
    expect(r.outcomes).toEqual(allOf('reloaded'));
    for (const h of hosts.values()) {
      expect(h.signalled()).toEqual([['demod', 'SIGHUP']]);
      expect(h.started()).toEqual([]);
      expect(h.stopped()).toEqual([]);
      expect(h.files.get('/etc/demo/demo.conf')?.content).toContain('setting = 2\n');
      // The config is in place before the daemon is told to read it, the service is waited for, and only then
      // is the config recorded as applied.
      expect(
        h.ops('write', 'signal', 'waitReady').map((c) => (c.op === 'write' ? `write ${c.path}` : c.op)),
      ).toEqual([
        'write /etc/demo/demo.conf',
        'signal',
        'waitReady',
        'write /var/lib/stackha/applied/demo.json',
      ]);
    }
    expect([...hosts.values()].map((h) => h.daemons.get('demod'))).toEqual(pids);
    expect(beforeStartCalls).toEqual([]);
  });

  it('a changed config without reloadSignal: restarted (stop, beforeStart, start)', async () => {
    await deploy();
    clearAll();
    config = 'setting = 2\n';
    const r = await deploy();
    expect(r.outcomes).toEqual(allOf('restarted'));
    for (const h of hosts.values()) {
      expect(h.ops('stop', 'beforeStart', 'start', 'signal').map((c) => c.op)).toEqual([
        'stop',
        'beforeStart',
        'start',
      ]);
    }
  });

  it('a changed daemon argv: restarted even with reloadSignal, not signalled', async () => {
    await deploy({ reloadSignal: 'SIGUSR2' });
    clearAll();
    argv = ['/usr/sbin/demod', '--foreground', '--verbose'];
    const r = await deploy({ reloadSignal: 'SIGUSR2' });
    expect(r.outcomes).toEqual(allOf('restarted'));
    for (const h of hosts.values()) {
      expect(h.signalled()).toEqual([]);
      expect(h.stopped()).toEqual(['demod']);
      const start = h.ops('start')[0];
      expect(start?.op === 'start' && start.argv).toContain('--verbose');
    }
  });

  it('a changed argv and config together: restarted, not reloaded', async () => {
    await deploy({ reloadSignal: 'SIGHUP' });
    clearAll();
    argv = ['/usr/sbin/demod'];
    config = 'setting = 3\n';
    const r = await deploy({ reloadSignal: 'SIGHUP' });
    expect(r.outcomes).toEqual(allOf('restarted'));
    for (const h of hosts.values()) expect(h.signalled()).toEqual([]);
  });

  it('a dead daemon is started again, on that host only, after beforeStart', async () => {
    await deploy({ reloadSignal: 'SIGHUP' });
    clearAll();
    host('ctl2').crash('demod');
    const r = await deploy({ reloadSignal: 'SIGHUP' });
    expect(r.outcomes).toEqual({ ctl1: 'unchanged', ctl2: 'started', ctl3: 'unchanged' });
    expect(
      host('ctl2')
        .ops('beforeStart', 'start', 'stop', 'signal')
        .map((c) => c.op),
    ).toEqual(['beforeStart', 'start']);
    expect(host('ctl1').started()).toEqual([]);
    expect(host('ctl3').started()).toEqual([]);
    expect(beforeStartCalls).toEqual(['ctl2']);
  });

  it('a dead daemon with a changed config is started (not signalled) with the new config', async () => {
    await deploy({ reloadSignal: 'SIGHUP' });
    clearAll();
    host('ctl1').crash('demod');
    config = 'setting = 9\n';
    const r = await deploy({ reloadSignal: 'SIGHUP' });
    expect(r.outcomes).toEqual({ ctl1: 'started', ctl2: 'reloaded', ctl3: 'reloaded' });
    expect(host('ctl1').signalled()).toEqual([]);
    expect(
      host('ctl1')
        .ops('write', 'start')
        .map((c) => c.op),
    ).toEqual(['write', 'start', 'write']);
    expect(host('ctl1').ops('write').at(-1)).toMatchObject({ path: '/var/lib/stackha/applied/demo.json' });
  });

  it('beforeStart runs before every start, and only then', async () => {
    await deploy();
    config = 'setting = 2\n';
    await deploy();
    host('ctl3').crash('demod');
    await deploy();
    for (const h of hosts.values()) {
      const order = h.ops('beforeStart', 'start').map((c) => c.op);
      expect(order.length).toBeGreaterThan(0);
      for (let i = 0; i < order.length; i += 2)
        expect(order.slice(i, i + 2)).toEqual(['beforeStart', 'start']);
    }
    expect(beforeStartCalls.filter((n) => n === 'ctl3')).toHaveLength(3);
    expect(beforeStartCalls.filter((n) => n === 'ctl1')).toHaveLength(2);
  });

  it('a mode changed on the host is restored and counts as a change', async () => {
    await deploy({ reloadSignal: 'SIGHUP' });
    clearAll();
    host('ctl1').chmod('/etc/demo/demo.conf', 0o644);
    const r = await deploy({ reloadSignal: 'SIGHUP' });
    expect(r.outcomes).toEqual({ ctl1: 'reloaded', ctl2: 'unchanged', ctl3: 'unchanged' });
    expect(host('ctl1').files.get('/etc/demo/demo.conf')?.mode).toBe(0o600);
  });

  it('serial: hosts one at a time, in inventory order', async () => {
    const order: string[] = [];
    let busy = false;
    await deploy({
      serial: true,
      waitReady: async (h) => {
        expect(busy).toBe(false);
        busy = true;
        await new Promise((r) => setTimeout(r, 5));
        order.push(h.name);
        busy = false;
      },
    });
    expect(order).toEqual(['ctl1', 'ctl2', 'ctl3']);
  });

  it('a host without a connection fails the deploy', async () => {
    hosts.delete('ctl3');
    await expect(deploy()).rejects.toThrow('no connection to host ctl3');
  });

  it('the daemons file is what a deploy compares argv against', () => {
    const unit = render({ host: dep.hosts[0]! });
    expect(daemonsFile('demo', unit).path).toBe('/etc/stackha/daemons/demo.json');
  });
});

describe('the simple services on fake hosts', () => {
  it('memcached: started once, unchanged on a re-deploy', async () => {
    expect((await deployMemcached(context())).outcomes).toEqual({
      ctl1: 'started',
      ctl2: 'started',
      ctl3: 'started',
    });
    const start = host('ctl2').ops('start')[0];
    expect(start?.op === 'start' && start.argv).toContain('198.18.0.12');
    for (const h of hosts.values()) h.clearCalls();
    expect(Object.values((await deployMemcached(context())).outcomes)).toEqual([
      'unchanged',
      'unchanged',
      'unchanged',
    ]);
    for (const h of hosts.values()) expect(h.ops('write', 'start', 'stop', 'signal')).toEqual([]);
  });

  it('haproxy: a changed service list is reloaded with SIGUSR2', async () => {
    const services = galeraLoadBalanced(dep);
    await deployHaproxy(context(), services);
    for (const h of hosts.values()) h.clearCalls();
    const more = [
      ...services,
      {
        name: 'keystone_internal',
        mode: 'http' as const,
        bind: { address: dep.globals.internalVip, port: 5000 },
        servers: dep.hosts.map((h) => ({ name: h.name, address: h.address, port: 5000 })),
      },
    ];
    const r = await deployHaproxy(context(), more);
    expect(Object.values(r.outcomes)).toEqual(['reloaded', 'reloaded', 'reloaded']);
    for (const h of hosts.values()) {
      expect(h.signalled()).toEqual([['haproxy', 'SIGUSR2']]);
      expect(h.files.get('/etc/haproxy/haproxy.cfg')?.mode).toBe(0o600);
    }
  });

  it('keepalived: before starting, a VIP a crashed keepalived left behind is removed', async () => {
    const vip = dep.globals.internalVip;
    host('ctl1').onExec = (argv) =>
      argv[0] === 'ip' && argv[1] === '-o'
        ? {
            stdout: `2: eth0    inet 198.18.0.11/24 scope global eth0\n2: eth0    inet ${vip}/32 scope global eth0\n`,
          }
        : {};
    const r = await deployKeepalived(context());
    expect(Object.values(r.outcomes)).toEqual(['started', 'started', 'started']);
    const ctl1 = host('ctl1').ops('exec', 'start');
    const del = ctl1.findIndex(
      (c) => c.op === 'exec' && c.argv.join(' ') === `ip addr del ${vip}/32 dev eth0`,
    );
    const start = ctl1.findIndex((c) => c.op === 'start');
    expect(del).toBeGreaterThanOrEqual(0);
    expect(del).toBeLessThan(start);
    for (const name of ['ctl2', 'ctl3']) {
      expect(
        host(name)
          .ops('exec')
          .some((c) => c.op === 'exec' && c.argv.includes('del')),
      ).toBe(false);
    }
  });

  it('keepalived: a changed config is reloaded with SIGHUP, the VIP left alone', async () => {
    const vip = dep.globals.internalVip;
    // ctl2 is the master: deploy waits until exactly one host holds the VIP.
    host('ctl2').onExec = (argv) =>
      argv[0] === 'ip' && argv[1] === '-o' ? { stdout: `2: eth0    inet ${vip}/32 scope global eth0\n` } : {};
    await deployKeepalived(context());
    for (const h of hosts.values()) h.clearCalls();
    const unicast = buildDeployment(
      {
        multinode: fixture('multinode'),
        globals: fixture('globals-unicast.yml'),
        passwords: fixture('passwords.yml'),
      },
      '/etc/stackha',
    );
    const r = await deployKeepalived({ ...context(), dep: unicast });
    expect(Object.values(r.outcomes)).toEqual(['reloaded', 'reloaded', 'reloaded']);
    for (const h of hosts.values()) {
      expect(h.signalled()).toEqual([['keepalived', 'SIGHUP']]);
      expect(h.ops('start', 'stop')).toEqual([]);
      // The only commands run are the read-only VIP lookups; nothing deletes the VIP.
      for (const c of h.ops('exec')) expect(c.op === 'exec' && c.argv.slice(0, 3).join(' ')).toBe('ip -o -4');
    }
  });
});
