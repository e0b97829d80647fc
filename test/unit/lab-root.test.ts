import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { resolveInRoot } from '../../src/hosts/lab.js';

// A lab host's files are reached through /proc/<anchor>/root. Whatever the path or the links inside the host, the
// answer must stay below that root: a path that escapes it is a path on this machine.
describe('resolveInRoot', () => {
  const root = mkdtempSync(join(tmpdir(), 'stackha-root-'));
  mkdirSync(join(root, 'etc/alternatives'), { recursive: true });
  mkdirSync(join(root, 'usr/lib'), { recursive: true });
  writeFileSync(join(root, 'usr/lib/real.conf'), 'x');
  symlinkSync('/usr/lib/real.conf', join(root, 'etc/abs-link'));
  symlinkSync('../usr/lib/real.conf', join(root, 'etc/rel-link'));
  symlinkSync('/../../../../etc', join(root, 'etc/escape'));
  symlinkSync('/etc/loop-b', join(root, 'etc/loop-a'));
  symlinkSync('/etc/loop-a', join(root, 'etc/loop-b'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  const below = (p: string) => p === root || p.startsWith(`${root}/`);

  it('maps a plain host path below the root, existing or not', () => {
    expect(resolveInRoot(root, '/etc/hosts')).toBe(`${root}/etc/hosts`);
    expect(resolveInRoot(root, '/')).toBe(root);
    expect(resolveInRoot(root, 'etc/x/y')).toBe(`${root}/etc/x/y`);
  });

  it('follows absolute links inside the host, not on this machine', () => {
    expect(resolveInRoot(root, '/etc/abs-link')).toBe(`${root}/usr/lib/real.conf`);
    expect(resolveInRoot(root, '/etc/rel-link')).toBe(`${root}/usr/lib/real.conf`);
  });

  it('leaves the last link alone when asked (writes replace the link)', () => {
    expect(resolveInRoot(root, '/etc/abs-link', false)).toBe(`${root}/etc/abs-link`);
  });

  it('never climbs above the root, by .. or by a link', () => {
    for (const p of ['/../../etc/hosts', '/etc/../../../../etc/passwd', '/etc/escape/hosts', '../etc']) {
      const got = resolveInRoot(root, p);
      expect(below(got), `${p} -> ${got}`).toBe(true);
    }
    expect(resolveInRoot(root, '/etc/escape/hosts')).toBe(`${root}/etc/hosts`);
  });

  it('stops on link loops', () => {
    expect(() => resolveInRoot(root, '/etc/loop-a')).toThrow(/too many symbolic links/);
  });

  it('refuses / or a relative path as the root', () => {
    expect(() => resolveInRoot('/', '/etc/hosts')).toThrow(/root/);
    expect(() => resolveInRoot('proc/1/root', '/etc/hosts')).toThrow(/root/);
  });
});
