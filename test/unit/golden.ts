// Golden-file comparison for rendered configs. The golden files are real, reviewed files committed under
// test/golden/; `UPDATE_GOLDEN=1 npx vitest run test/unit` rewrites them from the current renderers.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { expect } from 'vitest';

export const GOLDEN_DIR = join(import.meta.dirname, '../golden');
// Rendered argv names the checkout's own agents (`<repo>/dist/agents/...`); golden files say `<repo>` so they
// hold wherever the clone lives.
const REPO_ROOT = join(import.meta.dirname, '../..');

const UPDATE_HINT = 'run `UPDATE_GOLDEN=1 npx vitest run test/unit` and review the result';

/** Compares `actual` with test/golden/<name>; with UPDATE_GOLDEN=1 writes it instead. */
export function expectGolden(name: string, rendered: string): void {
  const actual = rendered.split(REPO_ROOT).join('<repo>');
  const file = join(GOLDEN_DIR, name);
  // An empty rendering matching an empty golden file proves nothing.
  expect(actual.trim().length, `the rendering compared with test/golden/${name} is empty`).toBeGreaterThan(0);
  if (process.env.UPDATE_GOLDEN === '1') {
    // In CI a rewrite would make every golden test pass whatever the renderers do.
    if (process.env.CI)
      expect.fail('UPDATE_GOLDEN=1 is refused under CI: golden files are compared, never rewritten');
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, actual);
    return;
  }
  if (!existsSync(file)) {
    expect.fail(`golden file test/golden/${name} is missing: ${UPDATE_HINT}`);
  }
  const expected = readFileSync(file, 'utf8');
  expect(actual, `differs from test/golden/${name} (if the change is intended, ${UPDATE_HINT})`).toBe(
    expected,
  );
}
