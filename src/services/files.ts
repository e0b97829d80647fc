import { createHash } from 'node:crypto';
import { makeDirs, readFileStates } from '../hosts/batch.js';
import type { Host } from '../hosts/host.js';
import type { RenderedFile, ServiceUnit } from './types.js';

/**
 * The files that differ from what the host has (content or mode), found with one batched read (src/hosts/batch.ts),
 * and, when `applied` names a service, its applied record (read in the same batch).
 */
export async function staleFiles(
  host: Host,
  files: readonly RenderedFile[],
  applied?: string,
): Promise<{ stale: RenderedFile[]; applied: Applied | undefined }> {
  const paths = files.map((f) => f.path);
  const states = await readFileStates(host, applied === undefined ? paths : [...paths, appliedPath(applied)]);
  const stale = files.filter((f, i) => {
    const s = states[i];
    return s?.content !== f.content || s?.mode !== (f.mode ?? 0o644);
  });
  return { stale, applied: applied === undefined ? undefined : parseApplied(states[files.length]?.content) };
}

/** Writes the files given (stale ones: staleFiles) and returns their paths. */
export async function writeFiles(host: Host, files: readonly RenderedFile[]): Promise<string[]> {
  for (const f of files) {
    const mode = f.mode ?? 0o644;
    await host.writeFile(f.path, f.content, f.owner ? { mode, owner: f.owner } : { mode });
  }
  return files.map((f) => f.path);
}

/**
 * Writes the files that differ from what the host has (content or mode) and returns their paths. An unchanged
 * file is not touched, which is what makes a re-deploy a no-op.
 */
export async function syncFiles(host: Host, files: readonly RenderedFile[]): Promise<string[]> {
  return writeFiles(host, (await staleFiles(host, files)).stale);
}

export async function ensureDirs(host: Host, unit: Pick<ServiceUnit, 'dirs'>): Promise<void> {
  await makeDirs(host, unit.dirs);
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

function parseApplied(text: string | undefined): Applied | undefined {
  if (!text) return undefined;
  try {
    return JSON.parse(text) as Applied;
  } catch {
    return undefined;
  }
}

export async function readApplied(host: Host, name: string): Promise<Applied | undefined> {
  return parseApplied(await host.readFile(appliedPath(name)));
}

export async function recordApplied(host: Host, name: string, state: Applied): Promise<void> {
  await host.writeFile(appliedPath(name), `${JSON.stringify(state)}\n`, { mode: 0o600 });
}
