// The deployment lock: one command that changes hosts at a time, stale locks taken over.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LockHeld, acquireLock, lockPathFor, readHolder } from '../../src/ops/lock.js';

const dirs: string[] = [];
function scratch(): string {
  const d = mkdtempSync(join(tmpdir(), 'stackha-lock-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A pid that ran and is gone. */
function deadPid(): number {
  const r = spawnSync('sh', ['-c', 'echo $$']);
  return Number(String(r.stdout).trim());
}

describe('the deployment lock', () => {
  it('is refused to a second command while the first holds it, naming the holder', () => {
    const dir = scratch();
    const first = acquireLock('/etc/stackha/lab1', 'deploy', { dir });
    let err: unknown;
    try {
      acquireLock('/etc/stackha/lab1', 'scale remove', { dir });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(LockHeld);
    const held = err as LockHeld;
    expect(held.code).toBe('ELOCKED');
    expect(held.holder.command).toBe('deploy');
    expect(held.holder.pid).toBe(process.pid);
    expect(held.message).toContain('`stackha deploy`');
    expect(held.message).toContain(`pid ${process.pid}`);
    expect(held.message).toContain(first.holder.startedAt);
    // Still the first command's.
    expect(readHolder(first.path)?.command).toBe('deploy');
    first.release();
    expect(readdirSync(dir)).toEqual([]);
    // Free again.
    acquireLock('/etc/stackha/lab1', 'scale remove', { dir }).release();
  });

  it('is one per config directory', () => {
    const dir = scratch();
    expect(lockPathFor('/etc/stackha/a', dir)).not.toBe(lockPathFor('/etc/stackha/b', dir));
    expect(lockPathFor('/etc/stackha/a/', dir)).toBe(lockPathFor('/etc/stackha/a', dir));
    const a = acquireLock('/etc/stackha/a', 'deploy', { dir });
    const b = acquireLock('/etc/stackha/b', 'deploy', { dir });
    a.release();
    b.release();
  });

  it('takes over a stale lock (its holder gone, or its pid reused by another process)', () => {
    const dir = scratch();
    const path = lockPathFor('/etc/kolla', dir);
    const gone = deadPid();
    writeFileSync(
      path,
      JSON.stringify({
        command: 'chaos run',
        pid: gone,
        startTime: '1',
        startedAt: 'then',
        host: 'h',
        configDir: '/etc/kolla',
      }),
    );
    const stale: string[] = [];
    const lock = acquireLock('/etc/kolla', 'deploy', {
      dir,
      onStale: (p) => stale.push(`${p.command} ${p.pid}`),
    });
    expect(stale).toEqual([`chaos run ${gone}`]);
    expect(readHolder(path)?.command).toBe('deploy');
    lock.release();
    // This process's pid, but another start time: a reused pid, not the holder.
    writeFileSync(
      path,
      JSON.stringify({
        command: 'restart',
        pid: process.pid,
        startTime: '1',
        startedAt: 'then',
        host: 'h',
        configDir: '/etc/kolla',
      }),
    );
    const again = acquireLock('/etc/kolla', 'deploy', { dir });
    expect(readHolder(path)?.pid).toBe(process.pid);
    again.release();
  });

  it('release leaves a lock that is no longer its own alone', () => {
    const dir = scratch();
    const lock = acquireLock('/etc/x', 'deploy', { dir });
    const other = `${JSON.stringify({ command: 'other', pid: 1, startTime: '0', startedAt: 'now', host: 'h', configDir: '/etc/x' })}\n`;
    writeFileSync(lock.path, other);
    lock.release();
    expect(readFileSync(lock.path, 'utf8')).toBe(other);
  });
});
