import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/**
 * Writes a file atomically with its final mode from the first byte: a fresh temporary file beside it (created
 * exclusively, so no leftover of a crash with another mode is reused), fsynced, given its exact mode (the umask may
 * have cut it) and owner, then renamed over the target. A secret is never readable by others, not even for a moment.
 */
export function writeFileAtomic(
  path: string,
  content: string | Buffer,
  opts: { mode?: number; uid?: number; gid?: number } = {},
): void {
  const mode = opts.mode ?? 0o644;
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(4).toString('hex')}.stackha-tmp`);
  const fd = openSync(tmp, 'wx', mode & 0o700);
  try {
    writeSync(fd, typeof content === 'string' ? Buffer.from(content) : content);
    fsyncSync(fd);
    closeSync(fd);
    if (opts.uid !== undefined) chownSync(tmp, opts.uid, opts.gid ?? opts.uid);
    chmodSync(tmp, mode);
    renameSync(tmp, path);
  } catch (err) {
    try {
      closeSync(fd);
    } catch {
      /* closed already */
    }
    rmSync(tmp, { force: true });
    throw err;
  }
}
