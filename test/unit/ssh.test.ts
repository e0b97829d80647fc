// The SSH host: its pure parts (shell quoting, sudo wrapping, known_hosts), and the host itself against an in-process
// SSH server on a Unix socket (test/unit/ssh-fake.ts): commands confined to a temporary directory run on this machine,
// daemon operations go to a fake systemd.
import { createHmac } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  checkHostKey,
  entryMatches,
  knownHostName,
  knownHostsLine,
  knownKeyAlgorithms,
  parseKnownHosts,
} from '../../src/hosts/known-hosts.js';
import {
  WRITE_SCRIPT,
  parseFileStates,
  remoteArgv,
  shellCommand,
  shellQuote,
} from '../../src/hosts/shell.js';
import { SSH_FAILED, Slots, SshError, SshHost, type SshHostOptions, commandOf } from '../../src/hosts/ssh.js';
import { renderThisBootDropIn, renderUnit, unitPath } from '../../src/hosts/systemd.js';
import type { SshConnection } from '../../src/model.js';
import { staleFiles, syncFiles } from '../../src/services/files.js';
import { execArgv } from '../../src/util/exec.js';
import { type FakeExec, type FakeReply, type FakeServer, logicalArgv, startFakeServer } from './ssh-fake.js';

const NASTY = [
  'plain',
  '',
  'a b',
  "it's",
  '"dq"',
  '$HOME',
  '`id`',
  '$(id)',
  'a;b|c&d',
  'new\nline',
  '\\',
  '*',
  '~',
  '-n',
];

describe('shellQuote', () => {
  it('leaves plain words alone and single-quotes the rest', () => {
    expect(shellQuote('/etc/mysql/my.cnf')).toBe('/etc/mysql/my.cnf');
    expect(shellQuote('--defaults-file=/x')).toBe('--defaults-file=/x');
    expect(shellQuote('')).toBe("''");
    expect(shellQuote('a b')).toBe("'a b'");
    expect(shellQuote("it's")).toBe("'it'\\''s'");
    expect(shellQuote('$HOME')).toBe("'$HOME'");
  });

  it('every word reaches the program exactly, through a real sh', async () => {
    const r = await execArgv(['sh', '-c', shellCommand(['printf', '%s\\0', ...NASTY])]);
    expect(r.code).toBe(0);
    expect(r.stdout.split('\0').slice(0, -1)).toEqual(NASTY);
  });

  it('also through sh -c inside sudo-style argv, quoted twice', async () => {
    const inner = shellCommand(['printf', '%s\\0', ...NASTY]);
    const r = await execArgv(['sh', '-c', shellCommand(['sh', '-c', inner])]);
    expect(r.stdout.split('\0').slice(0, -1)).toEqual(NASTY);
  });
});

describe('remoteArgv', () => {
  it('runs in a clean environment, bounded on the host', () => {
    expect(remoteArgv(['cat', '/x'], { timeoutMs: 1500 })).toEqual([
      'env',
      '-i',
      'HOME=/root',
      'LANG=C.UTF-8',
      'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      'timeout',
      '--kill-after=5',
      '2s',
      'cat',
      '/x',
    ]);
  });

  it('goes through sudo -n (never a password prompt) when the user is not root', () => {
    const argv = remoteArgv(['id', '-u'], {
      become: { method: 'sudo', user: 'root' },
      env: { OS_CLOUD: 'x' },
    });
    expect(argv.slice(0, 6)).toEqual(['sudo', '-n', '-H', '-u', 'root', '--']);
    expect(argv).toContain('OS_CLOUD=x');
    expect(argv.slice(-2)).toEqual(['id', '-u']);
  });

  it('refuses NUL and bad variable names', () => {
    expect(() => remoteArgv(['echo', 'a\0b'])).toThrow(/NUL/);
    expect(() => remoteArgv(['echo'], { env: { 'A B': 'x' } })).toThrow(/not valid/);
  });
});

describe('known_hosts', () => {
  const blob = (type: string, body: string): Buffer => {
    const t = Buffer.from(type);
    const len = Buffer.alloc(4);
    len.writeUInt32BE(t.length);
    return Buffer.concat([len, t, Buffer.from(body)]);
  };
  const ed = blob('ssh-ed25519', 'key-one');
  const ed2 = blob('ssh-ed25519', 'key-two');
  const rsa = blob('ssh-rsa', 'rsa-key');
  const salt = Buffer.from('0123456789abcdef0123');
  const hashed = (name: string): string =>
    `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update(name).digest('base64')}`;

  it('names hosts as OpenSSH does', () => {
    expect(knownHostName('10.0.0.1', 22)).toBe('10.0.0.1');
    expect(knownHostName('10.0.0.1', 2222)).toBe('[10.0.0.1]:2222');
    expect(knownHostsLine('10.0.0.1', 2222, ed)).toBe(
      `[10.0.0.1]:2222 ssh-ed25519 ${ed.toString('base64')}\n`,
    );
  });

  it('matches plain, hashed, wildcard and negated patterns', () => {
    const [e] = parseKnownHosts(`10.0.0.*,!10.0.0.9 ssh-ed25519 ${ed.toString('base64')}\n`);
    expect(e && entryMatches(e, '10.0.0.1')).toBe(true);
    expect(e && entryMatches(e, '10.0.0.9')).toBe(false);
    expect(e && entryMatches(e, '10.0.1.1')).toBe(false);
    const [h] = parseKnownHosts(`${hashed('[10.0.0.2]:2200')} ssh-ed25519 ${ed.toString('base64')}`);
    expect(h && entryMatches(h, '[10.0.0.2]:2200')).toBe(true);
    expect(h && entryMatches(h, '10.0.0.2')).toBe(false);
  });

  it('decides: known, unknown, changed (same type, other key), revoked', () => {
    const text = [
      '# comment',
      `10.0.0.1 ssh-ed25519 ${ed.toString('base64')}`,
      `[10.0.0.1]:2222 ssh-rsa ${rsa.toString('base64')}`,
      `@revoked * ssh-ed25519 ${ed2.toString('base64')}`,
      'garbage',
    ].join('\n');
    const entries = parseKnownHosts(text);
    expect(checkHostKey(entries, '10.0.0.1', 22, ed)).toEqual({ verdict: 'known', line: 2 });
    expect(checkHostKey(entries, '10.0.0.5', 22, ed)).toEqual({ verdict: 'unknown' });
    expect(checkHostKey(entries, '10.0.0.1', 22, blob('ssh-ed25519', 'intruder'))).toEqual({
      verdict: 'changed',
      lines: [2],
    });
    expect(checkHostKey(entries, '10.0.0.1', 22, ed2)).toEqual({ verdict: 'revoked', line: 4 });
    // Another port is another host for known_hosts.
    expect(checkHostKey(entries, '10.0.0.1', 2222, ed)).toEqual({ verdict: 'unknown' });
    expect(knownKeyAlgorithms(entries, '10.0.0.1', 2222)).toEqual([
      'rsa-sha2-512',
      'rsa-sha2-256',
      'ssh-rsa',
    ]);
    expect(knownKeyAlgorithms(entries, '10.0.0.1', 22)).toEqual(['ssh-ed25519']);
  });
});

describe('Slots', () => {
  it('lets at most `limit` through at once, in order', async () => {
    const slots = new Slots(2);
    let now = 0;
    let max = 0;
    const order: number[] = [];
    await Promise.all(
      [0, 1, 2, 3, 4].map((i) =>
        slots.with(async () => {
          now++;
          max = Math.max(max, now);
          await new Promise((r) => setTimeout(r, 10));
          order.push(i);
          now--;
        }),
      ),
    );
    expect(max).toBe(2);
    expect(order).toEqual([0, 1, 2, 3, 4]);
  });
});

const ADDRESS = '192.0.2.10'; // never contacted: every test's transport is the fake server's Unix socket

function connection(over: Partial<SshConnection> = {}): SshConnection {
  return {
    kind: 'ssh',
    address: ADDRESS,
    port: 22,
    user: 'root',
    privateKeyFile: undefined,
    become: undefined,
    pythonInterpreter: undefined,
    ...over,
  };
}

describe('SshHost over a real SSH session (commands run here, in a temporary directory)', () => {
  let server: FakeServer;
  let dir: string;
  let knownHosts: string;
  let host: SshHost;
  const options = (over: Partial<SshHostOptions> = {}): SshHostOptions => ({
    name: 'ctl1',
    address: ADDRESS,
    connection: connection(),
    knownHostsFile: knownHosts,
    socket: server.socket,
    password: 'not-checked',
    ...over,
  });

  beforeAll(async () => {
    server = await startFakeServer('local');
    dir = mkdtempSync(join(tmpdir(), 'stackha-ssh-files-'));
    knownHosts = join(dir, 'known_hosts');
    writeFileSync(knownHosts, knownHostsLine(ADDRESS, 22, server.hostKey));
    host = new SshHost(options());
  });
  afterAll(async () => {
    host.close();
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs argv with every word intact, stdin in, stdout, stderr and exit code out', async () => {
    const r = await host.exec(
      ['sh', '-c', 'printf "%s\\0" "$@"; cat; echo oops >&2; exit 3', 'sh', ...NASTY],
      {
        input: 'secret from stdin\n',
      },
    );
    expect(r.code).toBe(3);
    const [args, rest] = [r.stdout.split('\0').slice(0, -1), r.stdout.split('\0').at(-1)];
    expect(args).toEqual(NASTY);
    expect(rest).toBe('secret from stdin\n');
    expect(r.stderr).toBe('oops\n');
    // The secret went over stdin: it is in no command line the server saw.
    expect(server.commands.some((c) => c.command.includes('secret from stdin'))).toBe(false);
    await expect(host.run(['false'])).rejects.toThrow(/ctl1 \(ssh root@192\.0\.2\.10:22\): false exited 1/);
  });

  it('gives commands the clean environment and the one asked for', async () => {
    process.env.OS_PASSWORD = 'operator-secret';
    try {
      const out = await host.run(['env'], { env: { OS_CLOUD: 'stackha' } });
      expect(out).toContain('OS_CLOUD=stackha');
      expect(out).not.toContain('operator-secret');
    } finally {
      process.env.OS_PASSWORD = undefined;
      Reflect.deleteProperty(process.env, 'OS_PASSWORD');
    }
  });

  it('ends a command at its timeout, on the host', async () => {
    const started = Date.now();
    const r = await host.exec(['sleep', '30'], { timeoutMs: 1000 });
    expect(r.timedOut).toBe(true);
    expect(r.code).toBe(124);
    expect(Date.now() - started).toBeLessThan(8000);
  });

  it('writes files atomically with mode and no temporary file left; reads, tests and removes them', async () => {
    const path = join(dir, 'sub', 'dir', 'secret.conf');
    await host.writeFile(path, 'password = s3cret\n', { mode: 0o600 });
    expect(readFileSync(path, 'utf8')).toBe('password = s3cret\n');
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'sub')).mode & 0o777).toBe(0o755);
    expect(await host.fileMode(path)).toBe(0o600);
    await host.writeFile(path, 'second\n', { mode: 0o640 });
    expect(await host.readFile(path)).toBe('second\n');
    expect(await host.fileMode(path)).toBe(0o640);
    expect(readdirSync(join(dir, 'sub', 'dir'))).toEqual(['secret.conf']);
    expect(await host.readFile(join(dir, 'missing'))).toBeUndefined();
    expect(await host.fileMode(join(dir, 'missing'))).toBeUndefined();
    expect(await host.exists(path)).toBe(true);
    await host.remove(join(dir, 'sub'));
    expect(await host.exists(path)).toBe(false);
    await host.mkdir(join(dir, 'd1', 'd2'), { mode: 0o750 });
    expect(statSync(join(dir, 'd1', 'd2')).mode & 0o777).toBe(0o750);
    // The secret went over stdin, never in a command line.
    expect(server.commands.some((c) => c.command.includes('s3cret'))).toBe(false);
  });

  it('reads many files in one command: exactly what readFile and fileMode say of each, drift included', async () => {
    const d = join(dir, 'batch');
    await host.mkdir(d, { mode: 0o755 });
    const paths = {
      plain: join(d, 'plain.conf'),
      secret: join(d, 'secret.conf'),
      empty: join(d, 'empty'),
      nasty: join(d, "it's a $(file)\nname"),
      utf8: join(d, 'utf8.txt'),
      missing: join(d, 'missing'),
      dir: join(d, 'sub'),
    };
    writeFileSync(paths.plain, 'a = 1\n\n');
    writeFileSync(paths.secret, 'password = x\n', { mode: 0o600 });
    writeFileSync(paths.empty, '');
    writeFileSync(paths.nasty, 'no trailing newline');
    writeFileSync(paths.utf8, 'héllo ✓\n\u0000nul\n');
    mkdirSync(paths.dir, { mode: 0o750 });
    const list = Object.values(paths);
    const before = server.commands.length;
    const states = await host.readFileStates(list);
    expect(server.commands.length - before).toBe(1);
    const single = [];
    for (const p of list) single.push({ content: await host.readFile(p), mode: await host.fileMode(p) });
    expect(states).toEqual(single);
    expect(states[0]).toEqual({ content: 'a = 1\n\n', mode: 0o644 });
    expect(states[1]?.mode).toBe(0o600);
    expect(states[2]).toEqual({ content: '', mode: 0o644 });
    expect(states[5]).toEqual({ content: undefined, mode: undefined });
    expect(states[6]).toEqual({ content: undefined, mode: 0o750 });
    // More paths than one batch holds: still in order, one answer per path.
    const many = Array.from({ length: 150 }, (_, i) => (i % 2 ? paths.plain : paths.missing));
    // (On a host of 2 channels: the channel-limit test below counts the server's sessions at once.)
    const two = new SshHost(options({ maxChannels: 2 }));
    const got = await two.readFileStates(many);
    two.close();
    expect(got.map((g) => g.content)).toEqual(many.map((p) => (p === paths.plain ? 'a = 1\n\n' : undefined)));
    // syncFiles over SSH: a no-op writes nothing; a changed file, a wrong mode, a missing file are each rewritten.
    const files = [
      { path: paths.plain, content: 'a = 1\n\n' },
      { path: paths.secret, content: 'password = x\n', mode: 0o600 },
    ];
    expect(await syncFiles(host, files)).toEqual([]);
    chmodSync(paths.secret, 0o644);
    expect(await syncFiles(host, files)).toEqual([paths.secret]);
    expect(statSync(paths.secret).mode & 0o777).toBe(0o600);
    writeFileSync(paths.plain, 'a = 2\n');
    expect(await syncFiles(host, files)).toEqual([paths.plain]);
    rmSync(paths.plain);
    expect(await syncFiles(host, files)).toEqual([paths.plain]);
    expect(readFileSync(paths.plain, 'utf8')).toBe('a = 1\n\n');
    // The applied record comes in the same batch.
    const r = await staleFiles(host, files, 'no-such-service-here');
    expect(r).toEqual({ stale: [], applied: undefined });
  });

  it('an answer that is not one line per path is an error, never files read as missing', () => {
    expect(parseFileStates('644 YQ== +\n', 2)).toBeUndefined();
    expect(parseFileStates('644 YQ== +\n- - -\n', 2)).toBeUndefined();
    expect(parseFileStates('644 YQ== +\n-  -\n', 2)).toEqual([
      { content: 'a', mode: 0o644 },
      { content: undefined, mode: undefined },
    ]);
  });

  it('makes many directories in one command, in order, each with its mode; stops at one it cannot make', async () => {
    const base = join(dir, 'dirs');
    const before = server.commands.length;
    await host.makeDirs([
      { path: join(base, 'a'), mode: 0o750 },
      { path: join(base, 'a', 'b'), mode: 0o700 },
      { path: join(base, 'c d') },
    ]);
    expect(server.commands.length - before).toBe(1);
    expect(statSync(join(base, 'a')).mode & 0o777).toBe(0o750);
    expect(statSync(join(base, 'a', 'b')).mode & 0o777).toBe(0o700);
    expect(statSync(join(base, 'c d')).mode & 0o777).toBe(0o755);
    // A mode that drifted is set again, as mkdir does.
    chmodSync(join(base, 'a'), 0o777);
    await host.makeDirs([{ path: join(base, 'a'), mode: 0o750 }]);
    expect(statSync(join(base, 'a')).mode & 0o777).toBe(0o750);
    writeFileSync(join(base, 'file'), '');
    await expect(
      host.makeDirs([{ path: join(base, 'file', 'x') }, { path: join(base, 'after') }]),
    ).rejects.toThrow(/ctl1 \(ssh root@192\.0\.2\.10:22\): mkdir .*file\/x/);
    expect(existsSync(join(base, 'after'))).toBe(false);
  });

  it('the write script sets the final mode before any content arrives', () => {
    const lines = WRITE_SCRIPT.split('\n');
    const chmod = lines.findIndex((l) => l.startsWith('chmod'));
    const chown = lines.findIndex((l) => l.includes('chown'));
    const cat = lines.findIndex((l) => l.startsWith('cat >'));
    expect(lines.findIndex((l) => l.includes('mktemp'))).toBeLessThan(chown);
    expect(chown).toBeLessThan(chmod);
    expect(chmod).toBeLessThan(cat);
  });

  it('keeps to its channel limit on one connection', async () => {
    const limited = new SshHost(options({ maxChannels: 2 }));
    const before = server.users.length;
    await Promise.all([1, 2, 3, 4, 5].map(() => limited.run(['sleep', '0.2'])));
    expect(server.users.length - before).toBe(1); // one connection (one authentication) for all five
    expect(server.maxSessions()).toBe(2);
    limited.close();
  });

  it('refuses a host whose key known_hosts does not have, unless told to accept it, then knows it', async () => {
    const empty = join(dir, 'known_hosts.empty');
    writeFileSync(empty, '');
    const strict = new SshHost(options({ knownHostsFile: empty }));
    const r = await strict.exec(['true']);
    expect(r.code).toBe(SSH_FAILED);
    expect(r.stderr).toMatch(
      /ctl1 \(ssh root@192\.0\.2\.10:22\): connect: host key not in .*known_hosts\.empty/,
    );
    await expect(strict.open()).rejects.toBeInstanceOf(SshError);
    const accepting = new SshHost(options({ knownHostsFile: empty, acceptNewHostKeys: true }));
    expect((await accepting.exec(['true'])).code).toBe(0);
    expect(readFileSync(empty, 'utf8')).toBe(knownHostsLine(ADDRESS, 22, server.hostKey));
    accepting.close();
    const again = new SshHost(options({ knownHostsFile: empty }));
    expect((await again.exec(['true'])).code).toBe(0);
    again.close();
  });

  it('refuses a changed host key even when accepting new ones', async () => {
    const other = join(dir, 'known_hosts.other');
    const fake = Buffer.concat([server.hostKey.subarray(0, 19), Buffer.alloc(32, 7)]);
    writeFileSync(other, knownHostsLine(ADDRESS, 22, fake));
    const h = new SshHost(options({ knownHostsFile: other, acceptNewHostKeys: true }));
    const r = await h.exec(['true']);
    expect(r.code).toBe(SSH_FAILED);
    expect(r.stderr).toMatch(/HOST KEY CHANGED: .*known_hosts\.other line 1/);
  });
});

/** A fake host with systemd: files in memory, units with a state, every logical command recorded. */
class FakeSystemd {
  files = new Map<string, { content: string; mode: string }>();
  units = new Map<string, { active: boolean; pid: number }>();
  log: string[][] = [];
  private nextPid = 1000;
  readonly handle = (exec: FakeExec): FakeReply => {
    const argv = logicalArgv(exec.command);
    this.log.push(argv);
    const [cmd, ...rest] = argv;
    if (cmd === 'sh' && rest[0] === '-c' && rest[1] === WRITE_SCRIPT) {
      this.files.set(rest[3] as string, { content: exec.stdin, mode: rest[4] as string });
      return { code: 0 };
    }
    if (cmd === 'sh' && rest[1]?.startsWith('id -u')) return { code: 0, stdout: '0\nsystemd\n' };
    if (cmd === 'cat') {
      const f = this.files.get(rest[1] as string);
      return f ? { code: 0, stdout: f.content } : { code: 1, stderr: 'No such file' };
    }
    if (cmd === 'rm') {
      this.files.delete(rest[2] as string);
      return { code: 0 };
    }
    if (cmd === 'mkdir') return { code: 0 };
    if (cmd === 'test') {
      const pid = Number(rest[1]?.replace('/proc/', ''));
      return { code: [...this.units.values()].some((u) => u.active && u.pid === pid) ? 0 : 1 };
    }
    if (cmd === 'systemctl') {
      const unit = rest.at(-1) as string;
      const u = this.units.get(unit) ?? { active: false, pid: 0 };
      switch (rest[0]) {
        case 'show': {
          const loaded = this.files.has(`/etc/systemd/system/${unit}`);
          return {
            code: 0,
            stdout: [
              `LoadState=${loaded ? 'loaded' : 'not-found'}`,
              `ActiveState=${u.active ? 'active' : 'inactive'}`,
              `SubState=${u.active ? 'running' : 'dead'}`,
              `MainPID=${u.active ? u.pid : 0}`,
              `ExecMainPID=${u.pid}`,
              '',
            ].join('\n'),
          };
        }
        case 'start':
          this.units.set(unit, { active: true, pid: this.nextPid++ });
          return { code: 0 };
        case 'stop':
          this.units.set(unit, { active: false, pid: u.pid });
          return { code: 0 };
        case 'daemon-reload':
        case 'enable':
        case 'kill':
          return { code: 0 };
      }
    }
    return { code: 127, stderr: `fake: ${argv.join(' ')}` };
  };
}

describe('SshHost when the server refuses channels (MaxSessions reached)', () => {
  it('tries again, a bounded number of times, then fails with the cause', async () => {
    let refuse = 3;
    const server = await startFakeServer(() => ({ code: 0, stdout: 'ok\n' }), {
      refuseSession: () => refuse-- > 0,
    });
    const dir = mkdtempSync(join(tmpdir(), 'stackha-ssh-refuse-'));
    try {
      writeFileSync(join(dir, 'known_hosts'), knownHostsLine(ADDRESS, 22, server.hostKey));
      const host = new SshHost({
        name: 'ctl1',
        address: ADDRESS,
        connection: connection(),
        knownHostsFile: join(dir, 'known_hosts'),
        socket: server.socket,
        password: 'x',
        channelRetries: [10, 20, 30, 40],
      });
      const r = await host.exec(['true']);
      expect(r.code).toBe(0);
      expect(r.stdout).toBe('ok\n');
      refuse = 1000;
      const started = Date.now();
      const failed = await host.exec(['true']);
      expect(failed.code).toBe(SSH_FAILED);
      expect(failed.stderr).toMatch(
        /cannot open a channel: \(SSH\) Channel open failure: .*\(refused 5 times\)/,
      );
      expect(Date.now() - started).toBeGreaterThanOrEqual(90);
      host.close();
    } finally {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('SshHost daemons: systemd units (a fake systemd)', () => {
  let server: FakeServer;
  let fake: FakeSystemd;
  let dir: string;
  let host: SshHost;
  const spec = {
    name: 'mariadb',
    argv: ['/usr/sbin/mariadbd', '--defaults-file=/etc/mysql/my.cnf', '--wsrep-new-cluster'],
    bootArgv: ['/usr/sbin/mariadbd', '--defaults-file=/etc/mysql/my.cnf'],
    logFile: '/var/log/mysql/mariadbd.out',
  };

  beforeAll(async () => {
    fake = new FakeSystemd();
    server = await startFakeServer((e) => fake.handle(e));
    dir = mkdtempSync(join(tmpdir(), 'stackha-ssh-kh-'));
    writeFileSync(join(dir, 'known_hosts'), knownHostsLine(ADDRESS, 22, server.hostKey));
    host = new SshHost({
      name: 'ctl2',
      address: ADDRESS,
      connection: connection({ user: 'deploy', become: { method: 'sudo', user: 'root' } }),
      knownHostsFile: join(dir, 'known_hosts'),
      socket: server.socket,
      password: 'x',
    });
  });
  afterEach(() => {
    fake.log = [];
  });
  afterAll(async () => {
    host.close();
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('open() checks root through sudo -n and systemd, and every command went through sudo', async () => {
    await host.open();
    expect(server.users).toContain('deploy');
    expect(server.commands.every((c) => c.command.startsWith('sudo -n -H -u root -- env -i '))).toBe(true);
  });

  it('startDaemon writes the unit and the this-boot drop-in, reloads, enables and starts it', async () => {
    const pid = await host.startDaemon(spec);
    expect(pid).toBe(1000);
    expect(fake.files.get(unitPath('mariadb'))).toEqual({ content: renderUnit(spec), mode: '0644' });
    expect(fake.files.get('/run/systemd/system/stackha-mariadb.service.d/50-this-boot.conf')?.content).toBe(
      renderThisBootDropIn(spec),
    );
    const systemctl = fake.log
      .filter((a) => a[0] === 'systemctl' && a[1] !== 'show')
      .map((a) => a.slice(1).join(' '));
    expect(systemctl).toEqual([
      'daemon-reload',
      'enable --quiet stackha-mariadb.service',
      'start stackha-mariadb.service',
    ]);
    expect(await host.daemonPid('mariadb')).toBe(1000);
  });

  it('keeps a daemon running the same command line, refuses one asked to run another', async () => {
    expect(await host.startDaemon(spec)).toBe(1000);
    expect(fake.log.some((a) => a[1] === 'start')).toBe(false);
    await expect(host.startDaemon({ ...spec, argv: spec.bootArgv })).rejects.toThrow(
      /ctl2 \(ssh deploy@192\.0\.2\.10:22\): mariadb already runs \(pid 1000, stackha-mariadb.service\) with another command line/,
    );
  });

  it('signals through systemctl kill; stops with the signal asked for, then the pid is gone', async () => {
    expect(await host.signalDaemon('mariadb', 'SIGHUP')).toBe(true);
    expect(fake.log).toContainEqual(['systemctl', 'kill', '--signal=SIGHUP', 'stackha-mariadb.service']);
    expect(await host.stopDaemon('mariadb', { signal: 'SIGINT', timeoutMs: 20_000 })).toBe(true);
    expect(fake.files.get('/run/systemd/system/stackha-mariadb.service.d/40-stop.conf')?.content).toContain(
      'KillSignal=SIGINT\nTimeoutStopSec=20\n',
    );
    expect(fake.log).toContainEqual(['systemctl', 'stop', 'stackha-mariadb.service']);
    expect(await host.daemonPid('mariadb')).toBeUndefined();
    // Nothing runs: false, as in the lab; nor is there anything to signal.
    expect(await host.stopDaemon('mariadb')).toBe(false);
    expect(await host.signalDaemon('mariadb', 'SIGKILL')).toBe(false);
    expect(await host.stopDaemon('never-installed')).toBe(false);
  });

  it('a plain start after a bootstrap drops the this-boot drop-in', async () => {
    await host.startDaemon({ ...spec, argv: spec.bootArgv });
    expect(fake.files.has('/run/systemd/system/stackha-mariadb.service.d/50-this-boot.conf')).toBe(false);
  });

  it('compares command lines, not the rest of the unit', () => {
    const a = renderUnit({ name: 'x', argv: ['/bin/x'], logFile: '/var/log/x' });
    const b = renderUnit({ name: 'x', argv: ['/bin/x'], logFile: '/var/log/x', limits: { nofile: 10 } });
    expect(commandOf(a, undefined)).toBe(commandOf(b, undefined));
    const c = renderUnit({ name: 'x', argv: ['/bin/x', '-v'], logFile: '/var/log/x' });
    expect(commandOf(a, undefined)).not.toBe(commandOf(c, undefined));
  });
});
