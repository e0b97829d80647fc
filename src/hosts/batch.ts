// The batch forms of Host's file operations, on any host: the host's own (one command for many paths, where each
// command costs a round trip: SSH), else the single calls, one after the other, exactly as callers made them before.
import type { DirSpec, FileState, Host } from './host.js';

/** What readFile and fileMode say of each path, in order. */
export async function readFileStates(host: Host, hostPaths: readonly string[]): Promise<FileState[]> {
  if (hostPaths.length === 0) return [];
  if (host.readFileStates) return host.readFileStates(hostPaths);
  const out: FileState[] = [];
  for (const p of hostPaths) {
    const content = await host.readFile(p);
    const mode = await host.fileMode(p);
    out.push({ content, mode });
  }
  return out;
}

/** mkdir of each directory, in order (a parent before its children). */
export async function makeDirs(host: Host, dirs: readonly DirSpec[]): Promise<void> {
  if (dirs.length === 0) return;
  if (host.makeDirs) return host.makeDirs(dirs);
  for (const d of dirs) {
    await host.mkdir(d.path, {
      ...(d.mode !== undefined ? { mode: d.mode } : {}),
      ...(d.owner !== undefined ? { owner: d.owner } : {}),
    });
  }
}
