import { createHash } from 'node:crypto';
import type { Host } from '../hosts/host.js';
import type { RenderedFile, ServiceUnit } from './types.js';

/**
 * Writes the files that differ from what the host has (content or mode) and returns their paths. An unchanged
 * file is not touched, which is what makes a re-deploy a no-op.
 */
export async function syncFiles(host: Host, files: readonly RenderedFile[]): Promise<string[]> {
  const changed: string[] = [];
  for (const f of files) {
    const current = await host.readFile(f.path);
    const mode = f.mode ?? 0o644;
    const currentMode = await host.fileMode(f.path);
    if (current === f.content && currentMode === mode) continue;
    await host.writeFile(f.path, f.content, f.owner ? { mode, owner: f.owner } : { mode });
    changed.push(f.path);
  }
  return changed;
}

export async function ensureDirs(host: Host, unit: ServiceUnit): Promise<void> {
  for (const d of unit.dirs) {
    await host.mkdir(d.path, {
      ...(d.mode !== undefined ? { mode: d.mode } : {}),
      ...(d.owner !== undefined ? { owner: d.owner } : {}),
    });
  }
}

/** The rendered daemon command lines as a file, so a changed flag is noticed like a changed config. */
export function daemonsFile(service: string, unit: Pick<ServiceUnit, 'daemons'>): RenderedFile {
  const content = `${JSON.stringify(
    unit.daemons.map((d) => ({ name: d.name, argv: d.argv, env: d.env ?? {} })),
    null,
    2,
  )}\n`;
  // The env may carry nothing secret, but the file is root's alone anyway.
  return { path: `/etc/stackha/daemons/${service}.json`, content, mode: 0o600 };
}

export function digest(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 16);
}

/**
 * What was last applied to a running daemon (config and command line digests), recorded only after the reload or
 * restart succeeded: a deploy interrupted between writing files and applying them is finished by the next one.
 */
export interface Applied {
  readonly config: string;
  readonly daemons: string;
  /**
   * Digest of the config with what a running daemon does not need (its peer list) normalized out. Two configs with
   * the same `restart` digest differ only in what is read when the daemon next (re)joins, so a running daemon need
   * not restart for the change. Absent in records written before stackha knew it: then any change restarts.
   */
  readonly restart?: string;
}

const appliedPath = (name: string): string => `/var/lib/stackha/applied/${name}.json`;

/**
 * What a unit wants applied. `normalize` rewrites a file's content the way a running daemon sees it: a service whose
 * peer list is read only at (re)join normalizes that list out, so `restart` tells a peer-only change apart.
 */
export function wantedState(
  service: string,
  unit: Pick<ServiceUnit, 'files' | 'daemons'>,
  normalize: (file: RenderedFile) => string = (f) => f.content,
): Applied {
  const filesDigest = (content: (f: RenderedFile) => string): string =>
    digest(
      unit.files.map((f) => `${f.path}\0${f.mode ?? 0o644}\0${f.owner ?? ''}\0${content(f)}`).join('\0'),
    );
  return {
    config: filesDigest((f) => f.content),
    daemons: digest(daemonsFile(service, unit).content),
    restart: filesDigest(normalize),
  };
}

/**
 * True when a running daemon's applied config differs from the wanted one only in what `normalize` removed (its
 * peers): the file is rewritten and recorded, and the daemon keeps running. False for records without a restart
 * digest (written by an older stackha), and whenever the command line changed.
 */
export function peersOnlyChange(applied: Applied | undefined, want: Applied): boolean {
  return (
    applied !== undefined &&
    applied.config !== want.config &&
    applied.daemons === want.daemons &&
    applied.restart !== undefined &&
    applied.restart === want.restart
  );
}

export async function readApplied(host: Host, name: string): Promise<Applied | undefined> {
  const text = await host.readFile(appliedPath(name));
  if (!text) return undefined;
  try {
    return JSON.parse(text) as Applied;
  } catch {
    return undefined;
  }
}

export async function recordApplied(host: Host, name: string, state: Applied): Promise<void> {
  await host.writeFile(appliedPath(name), `${JSON.stringify(state)}\n`, { mode: 0o600 });
}
