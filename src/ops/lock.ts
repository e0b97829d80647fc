// One exclusive lock per deployment for every command that changes hosts (deploy, recover, scale, restart, key
// rotation, chaos, ...): two operators, or an operator and a forgotten chaos run, must never change the same cluster
// at once. The lock is a file holding its holder (command, pid, process start time), created atomically; a lock whose
// holder is gone (the pid is not running, or is another process now) is stale and taken over.
import { createHash, randomBytes } from 'node:crypto';
import { linkSync, mkdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { isAlive, procStat } from '../hosts/proc.js';

export const LOCK_DIR = '/run/stackha/locks';

export interface LockHolder {
  readonly command: string;
  readonly pid: number;
  /** The holder's start time in clock ticks since boot (/proc/PID/stat), to tell a reused pid apart. */
  readonly startTime: string;
  readonly startedAt: string;
  readonly host: string;
  readonly configDir: string;
}

/** Another command holds the lock: nothing was changed. */
export class LockHeld extends Error {
  readonly code = 'ELOCKED';
  constructor(
    readonly holder: LockHolder,
    readonly path: string,
  ) {
    super(
      `another stackha command is changing this deployment (${holder.configDir}): \`stackha ${holder.command}\` ` +
        `(pid ${holder.pid} on ${holder.host}, started ${holder.startedAt}); wait for it to finish, or end it. ` +
        `Lock: ${path}`,
    );
  }
}

/** The lock file of a deployment: one per config directory. */
export function lockPathFor(configDir: string, dir = LOCK_DIR): string {
  const abs = resolve(configDir);
  const tag = createHash('sha256').update(abs).digest('hex').slice(0, 12);
  return join(dir, `${basename(abs).replace(/[^A-Za-z0-9._-]/g, '_') || 'root'}-${tag}.lock`);
}

export function readHolder(path: string): LockHolder | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as LockHolder;
  } catch {
    return undefined;
  }
}

/** True when the holder's process is still the one that took the lock. */
export function holderAlive(h: LockHolder): boolean {
  return isAlive(h.pid, h.startTime);
}

export interface Lock {
  readonly path: string;
  readonly holder: LockHolder;
  /** Removes the lock if it is still this process's. */
  release(): void;
}

/**
 * Takes the deployment's lock for `command`, or throws LockHeld naming the holder. A stale lock (its holder gone) is
 * taken over and reported through `onStale`. The lock is released when the process exits, however it exits.
 */
export function acquireLock(
  configDir: string,
  command: string,
  opts: { dir?: string; onStale?: (previous: LockHolder) => void; pid?: number } = {},
): Lock {
  const dir = opts.dir ?? LOCK_DIR;
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const path = lockPathFor(configDir, dir);
  const pid = opts.pid ?? process.pid;
  const holder: LockHolder = {
    command,
    pid,
    startTime: procStat(pid)?.startTime ?? '0',
    startedAt: new Date().toISOString(),
    host: hostname(),
    configDir: resolve(configDir),
  };
  const content = `${JSON.stringify(holder)}\n`;
  // Written aside, then hard-linked into place: link() fails if the lock exists, and the lock is never seen empty.
  const tmp = `${path}.${randomBytes(4).toString('hex')}.tmp`;
  writeFileSync(tmp, content, { mode: 0o644 });
  try {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        linkSync(tmp, path);
        const lock: Lock = {
          path,
          holder,
          release: () => {
            if (readFileSync(path, 'utf8') === content) unlinkSync(path);
          },
        };
        process.once('exit', () => {
          try {
            lock.release();
          } catch {
            /* already gone */
          }
        });
        return lock;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const current = readHolder(path);
      if (current && holderAlive(current)) throw new LockHeld(current, path);
      // Stale: moved aside first, so of two processes finding it stale only one takes it over.
      const aside = `${path}.stale.${randomBytes(4).toString('hex')}`;
      try {
        renameSync(path, aside);
      } catch {
        continue; // someone else moved it: try again
      }
      const moved = readHolder(aside);
      if (moved && holderAlive(moved)) {
        // A live lock was taken between our read and our rename: put it back and give up.
        try {
          linkSync(aside, path);
        } catch {
          /* another one is there already */
        }
        unlinkSync(aside);
        throw new LockHeld(moved, path);
      }
      unlinkSync(aside);
      if (current) opts.onStale?.(current);
    }
    const current = readHolder(path);
    if (current) throw new LockHeld(current, path);
    throw new Error(`could not take the lock ${path}`);
  } finally {
    try {
      unlinkSync(tmp);
    } catch {
      /* gone */
    }
  }
}
