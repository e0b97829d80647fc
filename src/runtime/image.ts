// The stackha runtime: what a real host needs to run stackha's helper programs (dist/agents: the Galera health
// endpoint, the HAProxy watcher, the lab's probe API). Built from the deployer's checkout: the compiled agents and the
// dist modules they import, and the npm packages they import with those packages' own dependencies, resolved through
// package-lock.json. Type-only packages (@types/*), source maps and declaration files are left out: node never loads
// them. Deterministic: the same checkout gives the same files, the same tar and the same hash, whatever the file
// times, the order readdir returns or the machine.
import { createHash } from 'node:crypto';
import { lstatSync, readFileSync, readdirSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join, posix } from 'node:path';
import { gzipSync } from 'node:zlib';

/** A file of the runtime: its path relative to the runtime directory, its mode and content. */
export interface RuntimeFile {
  readonly path: string;
  readonly mode: number;
  readonly content: Buffer;
}

/** An npm package the runtime ships. */
export interface ShippedPackage {
  readonly name: string;
  readonly version: string;
  /** Its package.json's engines.node, as written (undefined when it has none). */
  readonly engines: string | undefined;
}

export interface RuntimeImage {
  /** sha256 of the tar, shortened: the runtime's directory name on a host (/var/lib/stackha/runtime/<hash>). */
  readonly hash: string;
  /** The agents (paths under dist/, e.g. `agents/galera-health.js`). */
  readonly agents: readonly string[];
  readonly files: readonly RuntimeFile[];
  readonly packages: readonly ShippedPackage[];
  /** The oldest node that every shipped package accepts (their engines.node lower bounds), e.g. [20, 0, 0]. */
  readonly nodeMin: readonly [number, number, number];
  /** The packages that set nodeMin (`lru-cache@11.5.3, mariadb@3.5.4`), or undefined when none asks for any. */
  readonly nodeMinBy: string | undefined;
  /** The gzip'd tar of `files`, and its sha256 (the host checks the transfer against it). */
  readonly tgz: Buffer;
  readonly tgzSha256: string;
}

const HASH_CHARS = 16;
/** Every entry's mtime: a constant, so the tar (and the hash) depend on content only. 2020-01-01T00:00:00Z. */
const MTIME = 1_577_836_800;

/** Thrown when the runtime cannot be built from the checkout (not built, an agent imports something not installed). */
export class RuntimeBuildError extends Error {
  readonly code = 'ERUNTIME';
  constructor(message: string) {
    super(`stackha runtime: ${message}`);
    this.name = 'RuntimeBuildError';
  }
}

interface LockPackage {
  readonly version?: string;
  readonly dev?: boolean;
  readonly link?: boolean;
  readonly dependencies?: Readonly<Record<string, string>>;
  readonly optionalDependencies?: Readonly<Record<string, string>>;
  readonly peerDependencies?: Readonly<Record<string, string>>;
}

/** Builds the runtime of the checkout at `root` (its dist/ must be built, its node_modules installed). */
export function buildRuntimeImage(root: string): RuntimeImage {
  const agentsDir = join(root, 'dist', 'agents');
  let agentNames: string[];
  try {
    agentNames = readdirSync(agentsDir)
      .filter((f) => f.endsWith('.js'))
      .sort();
  } catch {
    throw new RuntimeBuildError(`${agentsDir} does not exist: build stackha first (npm run build)`);
  }
  if (agentNames.length === 0) throw new RuntimeBuildError(`${agentsDir} holds no agent`);
  const agents = agentNames.map((f) => `agents/${f}`);

  // The dist modules the agents import, and the packages they import.
  const distFiles = new Set<string>();
  const bare = new Set<string>();
  const queue = [...agents];
  while (queue.length > 0) {
    const rel = queue.shift() as string;
    if (distFiles.has(rel)) continue;
    distFiles.add(rel);
    let text: string;
    try {
      text = readFileSync(join(root, 'dist', rel), 'utf8');
    } catch {
      throw new RuntimeBuildError(
        `dist/${rel} is imported but does not exist: rebuild stackha (npm run build)`,
      );
    }
    for (const spec of importsOf(text)) {
      if (spec.startsWith('.')) {
        const target = posix.normalize(posix.join(posix.dirname(rel), spec));
        if (target.startsWith('..'))
          throw new RuntimeBuildError(`dist/${rel} imports ${spec}, outside dist/`);
        queue.push(target);
      } else if (spec.startsWith('/')) {
        throw new RuntimeBuildError(`dist/${rel} imports an absolute path (${spec})`);
      } else if (!spec.startsWith('node:') && !builtinModules.includes(spec)) {
        bare.add(packageName(spec));
      }
    }
  }

  // Those packages and everything they depend on, where npm put them (package-lock.json's layout).
  let lock: { packages?: Record<string, LockPackage> };
  try {
    lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as typeof lock;
  } catch (err) {
    throw new RuntimeBuildError(`cannot read package-lock.json: ${(err as Error).message}`);
  }
  const locked = lock.packages ?? {};
  const shippedPaths = new Set<string>();
  const pending: { from: string; name: string; why: string }[] = [...bare]
    .sort()
    .map((name) => ({ from: '', name, why: 'an agent' }));
  while (pending.length > 0) {
    const { from, name, why } = pending.shift() as (typeof pending)[number];
    const path = resolveLocked(locked, from, name);
    if (path === undefined) {
      // An optional or peer dependency that was not installed is not needed; a required one is checked below.
      if (why.endsWith('(optional)')) continue;
      throw new RuntimeBuildError(`${name}, needed by ${why}, is not in package-lock.json: run npm ci`);
    }
    if (shippedPaths.has(path)) continue;
    const entry = locked[path] as LockPackage;
    if (entry.link) throw new RuntimeBuildError(`${name} is a linked package (${path}): not shippable`);
    if (entry.dev)
      throw new RuntimeBuildError(`${name}, needed by ${why}, is a devDependency: make it a dependency`);
    // Declarations only: nothing of it is ever loaded.
    if (name.startsWith('@types/')) continue;
    shippedPaths.add(path);
    const by = `${name}@${entry.version ?? '?'}`;
    for (const d of Object.keys(entry.dependencies ?? {})) pending.push({ from: path, name: d, why: by });
    for (const d of Object.keys({ ...entry.optionalDependencies, ...entry.peerDependencies }))
      pending.push({ from: path, name: d, why: `${by} (optional)` });
  }

  const files: RuntimeFile[] = [];
  for (const rel of [...distFiles].sort())
    files.push({ path: `dist/${rel}`, mode: 0o644, content: readFileSync(join(root, 'dist', rel)) });
  const packages: ShippedPackage[] = [];
  const top: Record<string, string> = {};
  for (const path of [...shippedPaths].sort()) {
    const dir = join(root, path);
    let pj: { name?: string; version?: string; engines?: { node?: string } };
    try {
      pj = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as typeof pj;
    } catch {
      throw new RuntimeBuildError(`${path} is in package-lock.json but not installed: run npm ci`);
    }
    const name = pj.name ?? path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length);
    packages.push({ name, version: pj.version ?? '?', engines: pj.engines?.node });
    if (!path.slice('node_modules/'.length).includes('/node_modules/')) top[name] = pj.version ?? '*';
    for (const f of packageFiles(dir))
      files.push({ path: `${path}/${f.path}`, mode: f.mode, content: f.content });
  }
  const [nodeMin, nodeMinBy] = nodeRequirement(packages);
  // What makes dist/*.js ES modules, and a record of what is shipped. Nothing of the deployer's version: a new stackha
  // whose agents did not change is the same runtime (and restarts no agent).
  const manifest = {
    name: 'stackha-runtime',
    private: true,
    type: 'module',
    engines: { node: `>=${nodeMin.join('.')}` },
    dependencies: Object.fromEntries(Object.entries(top).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))),
  };
  files.push({
    path: 'package.json',
    mode: 0o644,
    content: Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`),
  });
  files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const tar = tarOf(files);
  const tgz = gzipSync(tar, { level: 9 });
  return {
    hash: createHash('sha256').update(tar).digest('hex').slice(0, HASH_CHARS),
    agents,
    files,
    packages,
    nodeMin,
    nodeMinBy,
    tgz,
    tgzSha256: createHash('sha256').update(tgz).digest('hex'),
  };
}

/** The module specifiers a compiled ES module imports (static imports, re-exports, dynamic imports of a literal). */
export function importsOf(js: string): string[] {
  const out: string[] = [];
  const statics = /(?:^|\n)\s*(?:import|export)\s+(?:[^'";]*?\sfrom\s*)?['"]([^'"\n]+)['"]/g;
  const dynamic = /\bimport\s*\(\s*['"]([^'"\n]+)['"]\s*\)/g;
  for (const re of [statics, dynamic]) for (const m of js.matchAll(re)) if (m[1]) out.push(m[1]);
  return out;
}

/** `@scope/name/sub` -> `@scope/name`, `name/sub` -> `name`. */
function packageName(spec: string): string {
  const parts = spec.split('/');
  return spec.startsWith('@') ? parts.slice(0, 2).join('/') : (parts[0] as string);
}

/** Where node finds `name` from the package at `from` ('' for the root): its own node_modules, then each parent's. */
function resolveLocked(
  locked: Readonly<Record<string, LockPackage>>,
  from: string,
  name: string,
): string | undefined {
  let base = from;
  for (;;) {
    const candidate = base === '' ? `node_modules/${name}` : `${base}/node_modules/${name}`;
    if (locked[candidate]) return candidate;
    if (base === '') return undefined;
    const up = base.lastIndexOf('/node_modules/');
    base = up < 0 ? '' : base.slice(0, up);
  }
}

/** A package directory's files, without its nested node_modules (shipped as packages of their own) and what node never loads. */
function packageFiles(dir: string, rel = ''): RuntimeFile[] {
  const out: RuntimeFile[] = [];
  for (const name of readdirSync(join(dir, rel)).sort()) {
    const r = rel === '' ? name : `${rel}/${name}`;
    const st = lstatSync(join(dir, r));
    if (st.isDirectory()) {
      if (rel === '' && name === 'node_modules') continue;
      out.push(...packageFiles(dir, r));
    } else if (st.isFile()) {
      if (/\.(map|d\.ts|d\.cts|d\.mts)$/.test(name)) continue;
      out.push({ path: r, mode: 0o644, content: readFileSync(join(dir, r)) });
    } else {
      throw new RuntimeBuildError(`${join(dir, r)} is neither a file nor a directory: not shippable`);
    }
  }
  return out;
}

/**
 * The lower bound of an engines.node range, for the forms packages use (`>=20`, `>= 20.0.0`, `^18.17`, `20 || >=22`,
 * `>=0.10`): the smallest lower bound of its alternatives. Only the lower bound: a runtime is checked against it.
 */
export function engineLowerBound(range: string): [number, number, number] {
  let best: [number, number, number] | undefined;
  for (const alt of range.split('||')) {
    const m = /(\d+)(?:\.(\d+))?(?:\.(\d+))?/.exec(alt.replace(/^[\s>=^~v]+/, ''));
    if (!m) continue;
    const v: [number, number, number] = [Number(m[1]), Number(m[2] ?? 0), Number(m[3] ?? 0)];
    if (best === undefined || compareVersions(v, best) < 0) best = v;
  }
  return best ?? [0, 0, 0];
}

export function compareVersions(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < 3; i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** `v18.20.4` -> [18, 20, 4]; undefined when it is not a version. */
export function parseNodeVersion(text: string): [number, number, number] | undefined {
  const m = /^v?(\d+)\.(\d+)\.(\d+)/.exec(text.trim());
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : undefined;
}

function nodeRequirement(
  packages: readonly ShippedPackage[],
): [readonly [number, number, number], string | undefined] {
  let min: [number, number, number] = [0, 0, 0];
  let by: string[] = [];
  for (const p of packages) {
    if (p.engines === undefined) continue;
    const v = engineLowerBound(p.engines);
    const c = compareVersions(v, min);
    if (c > 0) {
      min = v;
      by = [];
    }
    if (c >= 0 && compareVersions(v, [0, 0, 0]) > 0) by.push(`${p.name}@${p.version}`);
  }
  return [min, by.length > 0 ? by.join(', ') : undefined];
}

/** A ustar archive of the files (and their directories, 0755), owned by root, every time the same constant. */
export function tarOf(files: readonly RuntimeFile[]): Buffer {
  const blocks: Buffer[] = [];
  const dirs = new Set<string>();
  for (const f of files) {
    const parts = f.path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const d = parts.slice(0, i).join('/');
      if (dirs.has(d)) continue;
      dirs.add(d);
      blocks.push(tarHeader(`${d}/`, '5', 0, 0o755));
    }
    blocks.push(tarHeader(f.path, '0', f.content.length, f.mode));
    blocks.push(f.content);
    const pad = (512 - (f.content.length % 512)) % 512;
    if (pad > 0) blocks.push(Buffer.alloc(pad));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

function tarHeader(path: string, type: '0' | '5', size: number, mode: number): Buffer {
  const h = Buffer.alloc(512);
  let name = path;
  let prefix = '';
  if (Buffer.byteLength(path) > 100) {
    // ustar: a prefix of up to 155 bytes, split at a '/', and a name of up to 100.
    const body = path.endsWith('/') ? path.slice(0, -1) : path;
    let cut = -1;
    for (let i = body.indexOf('/'); i >= 0; i = body.indexOf('/', i + 1)) {
      if (Buffer.byteLength(body.slice(0, i)) <= 155 && Buffer.byteLength(path.slice(i + 1)) <= 100) {
        cut = i;
        break;
      }
    }
    if (cut < 0) throw new RuntimeBuildError(`path too long for a tar header: ${path}`);
    prefix = body.slice(0, cut);
    name = path.slice(cut + 1);
  }
  const octal = (offset: number, length: number, value: number): void => {
    h.write(`${value.toString(8).padStart(length - 1, '0')}\0`, offset, length, 'ascii');
  };
  h.write(name, 0, 100, 'utf8');
  octal(100, 8, mode);
  octal(108, 8, 0);
  octal(116, 8, 0);
  octal(124, 12, size);
  octal(136, 12, MTIME);
  h.fill(0x20, 148, 156);
  h.write(type, 156, 1, 'ascii');
  h.write('ustar\0', 257, 6, 'ascii');
  h.write('00', 263, 2, 'ascii');
  h.write('root', 265, 32, 'ascii');
  h.write('root', 297, 32, 'ascii');
  h.write(prefix, 345, 155, 'utf8');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'ascii');
  return h;
}
