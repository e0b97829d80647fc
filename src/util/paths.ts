import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package root (where package.json is), found from this module whether it runs from src/ or dist/. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('stackha: cannot find its package root');
    dir = up;
  }
  return dir;
}

/** A built script run on a host (agents, probes): always the compiled one under dist/. */
export function builtScript(relative: string): string {
  return join(packageRoot(), 'dist', relative);
}
