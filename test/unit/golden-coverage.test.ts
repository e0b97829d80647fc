// Golden files cannot pass vacuously: each one is named by a test that compares a rendering with it, and each name
// a test compares with exists.
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GOLDEN_DIR } from './golden.js';

const UNIT_DIR = import.meta.dirname;

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? filesUnder(join(dir, e.name)) : [join(dir, e.name)],
  );
}

const testSources = readdirSync(UNIT_DIR)
  .filter((f) => f.endsWith('.ts'))
  .map((f) => readFileSync(join(UNIT_DIR, f), 'utf8'))
  .join('\n');

describe('golden files', () => {
  const goldens = filesUnder(GOLDEN_DIR).map((f) => relative(GOLDEN_DIR, f));

  it('exist', () => {
    expect(goldens.length).toBeGreaterThan(10);
  });

  it('are each compared by some test (no orphan left behind by a renamed test)', () => {
    const orphans = goldens.filter((g) => !testSources.includes(`'${g}'`));
    expect(orphans).toEqual([]);
  });

  it('named by a test all exist', () => {
    const named = [...testSources.matchAll(/expectGolden\(\s*'([^']+)'/g)].map((m) => m[1] ?? '');
    expect(named.length).toBeGreaterThan(10);
    expect(named.filter((n) => !goldens.includes(n))).toEqual([]);
  });
});
