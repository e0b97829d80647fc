// The pid-file supervisor of SSH hosts without systemd (src/hosts/pidfile.ts): its pure parts, the choice of supervisor
// at open(), and real daemons (sleep, sh) started, kept, refused, signalled and stopped through an in-process SSH
// server on a Unix socket (test/unit/ssh-fake.ts) whose commands run on this machine, with the records in a temporary
// directory. Every daemon a test starts is ended by its recorded pid afterwards.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { knownHostsLine } from '../../src/hosts/known-hosts.js';
import { commandDigest } from '../../src/hosts/lab.js';
import { launchArgv, parseStatus } from '../../src/hosts/pidfile.js';
import {
  formatPidRecord,
  groupMembers,
  isAlive,
  parsePidRecord,
  procStat,
  startDecision,
} from '../../src/hosts/proc.js';
import { SshHost, type SshHostOptions } from '../../src/hosts/ssh.js';
import type { SshConnection } from '../../src/model.js';
import { BASE_ENV } from '../../src/util/exec.js';
import { waitFor } from '../../src/util/wait.js';
import { type FakeServer, startFakeServer } from './ssh-fake.js';

const ADDRESS = '192.0.2.10';

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

describe('pid records and start decisions (shared with the lab host)', () => {
  it('formats and parses `<pid> <start time> <digest>`', () => {
    const rec = { pid: 42, startTime: '123456', command: 'abcdef0123456789' };
    expect(formatPidRecord(rec)).toBe('42 123456 abcdef0123456789\n');
    expect(parsePidRecord(formatPidRecord(rec))).toEqual(rec);
    expect(parsePidRecord('42 123456\n')).toEqual({ pid: 42, startTime: '123456', command: undefined });
    expect(parsePidRecord('')).toBeUndefined();
    expect(parsePidRecord('x 1 2')).toBeUndefined();
    expect(parsePidRecord('0 1 2')).toBeUndefined();
  });

  it('starts when nothing lives, keeps the same command, refuses another', () => {
    const rec = { pid: 7, startTime: '9', command: 'aaa' };
    expect(startDecision(undefined, false, 'aaa')).toEqual({ action: 'start' });
    expect(startDecision(rec, false, 'bbb')).toEqual({ action: 'start' });
    expect(startDecision(rec, true, 'aaa')).toEqual({ action: 'keep', pid: 7 });
    expect(startDecision(rec, true, 'bbb')).toEqual({ action: 'refuse', pid: 7 });
    // A record without a digest (written before digests were kept) is kept, never refused.
    expect(startDecision({ ...rec, command: undefined }, true, 'bbb')).toEqual({ action: 'keep', pid: 7 });
  });

  it('launches with exactly BASE_ENV + env, default signal dispositions, argv last', () => {
    expect(launchArgv({ argv: ['/usr/bin/x', '-v'], env: { A: '1' } })).toEqual([
      'env',
      '-i',
      '--default-signal',
      ...Object.entries({ ...BASE_ENV, A: '1' })
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([k, v]) => `${k}=${v}`),
      '/usr/bin/x',
      '-v',
    ]);
  });

  it('parses the status line', () => {
    expect(parseStatus('')).toBeUndefined();
    expect(parseStatus('5 77 abc alive\n')).toEqual({
      record: { pid: 5, startTime: '77', command: 'abc' },
      alive: true,
    });
    expect(parseStatus('5 77  dead\n')).toEqual({
      record: { pid: 5, startTime: '77', command: undefined },
      alive: false,
    });
  });
});

describe('the supervisor is chosen at open()', () => {
  let server: FakeServer;
  let dir: string;
  let init = 'no-systemd';
  const host = (supervisor?: SshConnection['supervisor']): SshHost =>
    new SshHost({
      name: 'ctl1',
      address: ADDRESS,
      connection: connection(supervisor ? { supervisor } : {}),
      knownHostsFile: join(dir, 'known_hosts'),
      socket: server.socket,
      password: 'x',
    });
  beforeAll(async () => {
    server = await startFakeServer(() => ({ code: 0, stdout: `0\n${init}\n` }));
    dir = mkdtempSync(join(tmpdir(), 'stackha-pidfile-kh-'));
    writeFileSync(join(dir, 'known_hosts'), knownHostsLine(ADDRESS, 22, server.hostKey));
  });
  afterAll(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('without systemd: refused by default, pid files with auto or pidfile', async () => {
    init = 'no-systemd';
    const plain = host();
    await expect(plain.open()).rejects.toThrow(
      /does not run systemd \(stackha_supervisor=auto or pidfile lets stackha supervise/,
    );
    for (const [choice, want] of [
      ['auto', 'pidfile'],
      ['pidfile', 'pidfile'],
    ] as const) {
      const h = host(choice);
      expect(await h.supervisor()).toBe(want);
      h.close();
    }
    plain.close();
  });

  it('with systemd: systemd by default and with auto; pid files only when asked', async () => {
    init = 'systemd';
    for (const [choice, want] of [
      [undefined, 'systemd'],
      ['auto', 'systemd'],
      ['pidfile', 'pidfile'],
    ] as const) {
      const h = host(choice);
      await h.open();
      expect(await h.supervisor()).toBe(want);
      h.close();
    }
  });
});

describe('SshHost daemons by pid files (real processes here, records in a temporary directory)', () => {
  let server: FakeServer;
  let dir: string;
  let host: SshHost;
  const started = new Map<number, string | undefined>();
  const options = (): SshHostOptions => ({
    name: 'ctl1',
    address: ADDRESS,
    connection: connection({ supervisor: 'auto' }),
    knownHostsFile: join(dir, 'known_hosts'),
    socket: server.socket,
    password: 'x',
    pidDir: join(dir, 'pids'),
  });
  const track = (pid: number): number => {
    started.set(pid, procStat(pid)?.startTime);
    return pid;
  };
  const record = (name: string) => parsePidRecord(readFileSync(join(dir, 'pids', `${name}.pid`), 'utf8'));
  const spec = (name: string, argv: string[], env: Record<string, string> = {}) => ({
    name,
    argv,
    env,
    logFile: join(dir, 'log', `${name}.log`),
  });

  beforeAll(async () => {
    server = await startFakeServer('local');
    dir = mkdtempSync(join(tmpdir(), 'stackha-pidfile-'));
    writeFileSync(join(dir, 'known_hosts'), knownHostsLine(ADDRESS, 22, server.hostKey));
    host = new SshHost(options());
  });
  afterAll(async () => {
    // Whatever a failed test left running, by its pid (and start time), never by name.
    for (const [pid, start] of started) {
      if (isAlive(pid, start)) {
        try {
          process.kill(-pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    }
    host.close();
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('this machine has no systemd: auto chose pid files', async () => {
    expect(existsSync('/run/systemd/system')).toBe(false);
    expect(await host.supervisor()).toBe('pidfile');
  });

  it('starts a daemon detached in its own session, with the clean environment, its output appended to its log', async () => {
    const printer = spec('printer', ['sh', '-c', 'echo "started $STACKHA_T"; env; exec sleep 1000'], {
      STACKHA_T: 'yes',
    });
    process.env.OS_PASSWORD = 'operator-secret';
    let pid: number;
    try {
      pid = track(await host.startDaemon(printer));
    } finally {
      Reflect.deleteProperty(process.env, 'OS_PASSWORD');
    }
    const st = procStat(pid);
    expect(st).toBeDefined();
    // Its own session and process group: fields 4 (pgrp) and 5 (session) of /proc/<pid>/stat are its pid.
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
    expect([fields[2], fields[3]]).toEqual([String(pid), String(pid)]);
    expect(readFileSync(`/proc/${pid}/status`, 'utf8')).toMatch(/^SigIgn:\s+0+$/m);
    expect(record('printer')).toEqual({ pid, startTime: st?.startTime, command: commandDigest(printer) });
    await waitFor(
      'the daemon log',
      async () => readFileSync(join(dir, 'log', 'printer.log'), 'utf8').includes('PATH=') || undefined,
      { timeoutMs: 5000 },
    );
    const log = readFileSync(join(dir, 'log', 'printer.log'), 'utf8');
    expect(log).toContain('started yes');
    expect(log).not.toContain('operator-secret');
    const envKeys = log
      .split('\n')
      .filter((l) => /^[A-Z_]+=/.test(l))
      .map((l) => l.split('=')[0])
      .filter((k) => k !== 'PWD' && k !== 'SHLVL' && k !== '_');
    expect(envKeys.sort()).toEqual([...Object.keys(BASE_ENV), 'STACKHA_T'].sort());
    expect(await host.daemonPid('printer')).toBe(pid);
    expect(await host.stopDaemon('printer', { timeoutMs: 5000 })).toBe(true);
    expect(isAlive(pid, st?.startTime)).toBe(false);
    expect(existsSync(join(dir, 'pids', 'printer.pid'))).toBe(false);
  });

  it('keeps a daemon running the same command line, refuses one asked to run another', async () => {
    const s = spec('sleeper', ['sleep', '1000']);
    const pid = track(await host.startDaemon(s));
    expect(await host.startDaemon(s)).toBe(pid);
    await expect(host.startDaemon({ ...s, argv: ['sleep', '999'] })).rejects.toThrow(
      /ctl1 \(ssh root@192\.0\.2\.10:22\): sleeper already runs \(pid \d+\) with another command line/,
    );
    await expect(host.startDaemon({ ...s, env: { X: '1' } })).rejects.toThrow(/another command line/);
    expect(await host.daemonPid('sleeper')).toBe(pid);
  });

  it('signals the process group; SIGINT reaches a daemon that has no handler of its own', async () => {
    const pid = (await host.daemonPid('sleeper')) as number;
    expect(await host.signalDaemon('sleeper', 'SIGINT')).toBe(true);
    await waitFor('sleep ended by SIGINT', async () => !isAlive(pid) || undefined, { timeoutMs: 5000 });
    expect(await host.daemonPid('sleeper')).toBeUndefined();
    expect(await host.signalDaemon('sleeper', 'SIGTERM')).toBe(false);
    // Dead but recorded: stop says false and drops the record.
    expect(await host.stopDaemon('sleeper')).toBe(false);
    expect(existsSync(join(dir, 'pids', 'sleeper.pid'))).toBe(false);
    expect(await host.stopDaemon('never-started')).toBe(false);
  });

  it('a reused pid (another start time) is not the daemon', async () => {
    const s = spec('reused', ['sleep', '1000']);
    writeFileSync(join(dir, 'pids', 'reused.pid'), `${process.pid} 1 ${commandDigest(s)}\n`);
    expect(await host.daemonPid('reused')).toBeUndefined();
    expect(await host.signalDaemon('reused', 'SIGTERM')).toBe(false);
    const pid = track(await host.startDaemon(s));
    expect(pid).not.toBe(process.pid);
    expect(await host.daemonPid('reused')).toBe(pid);
    expect(await host.stopDaemon('reused', { timeoutMs: 3000 })).toBe(true);
  });

  it('stops the whole process group, SIGKILL after the timeout when SIGTERM is ignored', async () => {
    const pid = track(
      await host.startDaemon(spec('stubborn', ['sh', '-c', 'trap "" TERM; sleep 1000 & sleep 1000 & wait'])),
    );
    await waitFor('the daemon and its children', async () => groupMembers(pid).length === 3 || undefined, {
      timeoutMs: 5000,
    });
    const members = groupMembers(pid).map((p) => [p, procStat(p)?.startTime] as const);
    const t0 = Date.now();
    expect(await host.stopDaemon('stubborn', { signal: 'SIGTERM', timeoutMs: 500 })).toBe(true);
    const took = Date.now() - t0;
    expect(took).toBeGreaterThanOrEqual(500);
    for (const [p, start] of members) expect(isAlive(p, start)).toBe(false);
    expect(await host.daemonPid('stubborn')).toBeUndefined();
  });

  it('a daemon whose program cannot run: a pid that is soon not alive, the reason in its log', async () => {
    const pid = track(await host.startDaemon(spec('broken', ['/nonexistent/daemon'])));
    expect(pid).toBeGreaterThan(0);
    await waitFor(
      'the broken daemon to be gone',
      async () => (await host.daemonPid('broken')) === undefined || undefined,
      { timeoutMs: 5000 },
    );
    expect(readFileSync(join(dir, 'log', 'broken.log'), 'utf8')).toMatch(/nonexistent/);
  });

  it('refuses names that are not file names and signals that are not signals', async () => {
    await expect(host.startDaemon(spec('../x', ['true']))).rejects.toThrow(/daemon name/);
    await expect(host.signalDaemon('x', 'KILL' as NodeJS.Signals)).rejects.toThrow(/not a signal/);
  });
});
