// LocalHost, the machine stackha runs on as a Host (the chaos client over SSH, `--client local`): commands, atomic
// files with their modes, and real daemons (sleep, sh) supervised by pid files in a temporary directory. Every daemon a
// test starts is ended by its recorded pid afterwards.
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commandDigest } from '../../src/hosts/lab.js';
import { LocalHost } from '../../src/hosts/local.js';
import { groupMembers, isAlive, parsePidRecord, procStat } from '../../src/hosts/proc.js';
import { CommandError } from '../../src/util/exec.js';
import { waitFor } from '../../src/util/wait.js';

describe('LocalHost', () => {
  let dir: string;
  let host: LocalHost;
  const started = new Map<number, string | undefined>();
  const track = (pid: number): number => {
    started.set(pid, procStat(pid)?.startTime);
    return pid;
  };
  const spec = (name: string, argv: string[]) => ({ name, argv, logFile: join(dir, 'log', `${name}.log`) });

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'stackha-local-'));
    host = new LocalHost('deployer', '192.0.2.1', join(dir, 'pids'));
  });
  afterAll(() => {
    for (const [pid, start] of started)
      if (isAlive(pid, start))
        try {
          process.kill(-pid, 'SIGKILL');
        } catch {
          /* gone */
        }
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs commands here: exec gives the result, run throws a CommandError naming the host', async () => {
    expect(host.name).toBe('deployer');
    expect(host.address).toBe('192.0.2.1');
    const r = await host.exec(['sh', '-c', 'cat; echo err >&2; exit 3'], { input: 'in' });
    expect(r).toMatchObject({ code: 3, stdout: 'in', stderr: 'err\n' });
    expect(await host.run(['echo', 'hi'])).toBe('hi\n');
    const err = await host.run(['sh', '-c', 'echo nope >&2; exit 2']).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CommandError);
    expect((err as Error).message).toMatch(/deployer/);
    expect((err as Error).message).toMatch(/nope/);
  });

  it('writes atomically with the mode asked, creating parents; reads, stats and removes', async () => {
    const path = join(dir, 'etc', 'deep', 'secret.conf');
    expect(await host.readFile(path)).toBeUndefined();
    expect(await host.fileMode(path)).toBeUndefined();
    await host.writeFile(path, 'one\n', { mode: 0o600 });
    expect(readFileSync(path, 'utf8')).toBe('one\n');
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(await host.fileMode(path)).toBe(0o600);
    await host.writeFile(path, 'two\n');
    expect(await host.readFile(path)).toBe('two\n');
    expect(await host.fileMode(path)).toBe(0o644);
    // No temporary file left beside it.
    expect(readdirSync(join(dir, 'etc', 'deep'))).toEqual(['secret.conf']);
    expect(await host.exists(path)).toBe(true);
    await host.remove(join(dir, 'etc'));
    expect(await host.exists(path)).toBe(false);
    await host.remove(join(dir, 'etc'));
    const d = join(dir, 'var', 'lib', 'x');
    await host.mkdir(d, { mode: 0o750 });
    expect(statSync(d).mode & 0o777).toBe(0o750);
    expect(statSync(d).isDirectory()).toBe(true);
    await host.mkdir(d, { mode: 0o700 });
    expect(statSync(d).mode & 0o777).toBe(0o700);
  });

  it('starts a daemon in its own process group, recorded by pid, start time and command; keeps it; stops it', async () => {
    const s = spec('sleeper', ['sleep', '1000']);
    const pid = track(await host.startDaemon(s));
    const st = procStat(pid);
    expect(st).toBeDefined();
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
    expect(fields[2]).toBe(String(pid));
    expect(parsePidRecord(readFileSync(join(dir, 'pids', 'sleeper.pid'), 'utf8'))).toEqual({
      pid,
      startTime: st?.startTime,
      command: commandDigest(s),
    });
    expect(await host.daemonPid('sleeper')).toBe(pid);
    expect(await host.startDaemon(s)).toBe(pid);
    await expect(host.startDaemon({ ...s, argv: ['sleep', '999'] })).rejects.toThrow(/another command line/);
    expect(await host.stopDaemon('sleeper', { timeoutMs: 3000 })).toBe(true);
    expect(isAlive(pid, st?.startTime)).toBe(false);
    expect(await host.daemonPid('sleeper')).toBeUndefined();
    expect(existsSync(join(dir, 'pids', 'sleeper.pid'))).toBe(false);
    expect(await host.stopDaemon('sleeper')).toBe(false);
  });

  it('SIGKILL through signalDaemon ends the whole group; then the daemon has no pid', async () => {
    const pid = track(
      await host.startDaemon(spec('group', ['sh', '-c', 'echo up; sleep 1000 & sleep 1000 & wait'])),
    );
    await waitFor('the daemon and its children', async () => groupMembers(pid).length === 3 || undefined, {
      timeoutMs: 5000,
    });
    const members = groupMembers(pid).map((p) => [p, procStat(p)?.startTime] as const);
    expect(await host.signalDaemon('group', 'SIGKILL')).toBe(true);
    await waitFor(
      'the group to be gone',
      async () => ((await host.daemonPid('group')) === undefined ? true : undefined),
      { timeoutMs: 5000 },
    );
    await waitFor(
      'every member gone',
      async () => members.every(([p, start]) => !isAlive(p, start)) || undefined,
      { timeoutMs: 5000 },
    );
    expect(readFileSync(join(dir, 'log', 'group.log'), 'utf8')).toContain('up');
    expect(await host.signalDaemon('group', 'SIGTERM')).toBe(false);
  });

  it('tcpConnect: true when accepted, false when refused', async () => {
    const server = createServer((s) => s.end());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    expect(await host.tcpConnect('127.0.0.1', port, 2000)).toBe(true);
    await new Promise<void>((resolve) => server.close(() => resolve()));
    expect(await host.tcpConnect('127.0.0.1', port, 2000)).toBe(false);
  });
});
