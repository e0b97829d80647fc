// Shipping the stackha runtime (src/runtime/image.ts) to a real host, and checking that a host has it, through the
// Host interface only: constant shell scripts whose variable parts are positional arguments, the archive as base64 on
// stdin. On the host: /var/lib/stackha/runtime/<hash>/ (0755 directories, 0644 files, root's), complete only once its
// marker file holds its hash, and `current`, a symlink swapped by rename(2). A runtime is made current only after the
// host's node ran every agent from it (each prints its usage and exits 2 without arguments: it loaded everything it
// imports). Old runtimes are removed unless a stackha unit still names them.
import type { Host } from '../hosts/host.js';
import type { Deployment } from '../model.js';
import { agentsByHost } from '../services/registry.js';
import { type RuntimeImage, compareVersions, parseNodeVersion } from './image.js';
import { HOST_NODE, NODE_PACKAGE, RUNTIME_ROOT } from './runtime.js';

/** The file in a runtime directory that says it is complete: its hash. */
export const RUNTIME_MARKER = '.stackha-runtime';
/** Where stackha's units and their runtime drop-ins are (src/hosts/systemd.ts): a runtime they name is kept. */
export const UNIT_DIRS = ['/etc/systemd/system', '/run/systemd/system'] as const;

const QUERY_TIMEOUT_MS = 30_000;
const TRANSFER_TIMEOUT_MS = 10 * 60_000;

/** $1 root, $2 hash, $3 node. Reads only. */
export const PROBE_SCRIPT = [
  'set -u',
  'if [ -x "$3" ]; then printf \'node=%s\\n\' "$("$3" --version 2>/dev/null || echo unusable)"; else echo node=; fi',
  'printf \'current=%s\\n\' "$(readlink -- "$1/current" 2>/dev/null || true)"',
  `if [ "$(cat -- "$1/$2/${RUNTIME_MARKER}" 2>/dev/null || true)" = "$2" ]; then echo has=yes; else echo has=no; fi`,
].join('\n');

/**
 * $1 root, $2 hash, $3 sha256 of the archive; stdin: the archive (tar.gz) in base64. Unpacks into $1/.incoming-$2
 * (0700 while it is not checked), after checking the transfer.
 */
export const UNPACK_SCRIPT = [
  'set -eu',
  'umask 022',
  'mkdir -p -- "$1"',
  'chmod 0755 -- "$1"',
  'stage="$1/.incoming-$2"',
  'rm -rf -- "$stage" "$stage.tgz"',
  `trap 'rm -rf -- "$stage" "$stage.tgz"' EXIT`,
  'base64 -d > "$stage.tgz"',
  'if ! printf \'%s  %s\\n\' "$3" "$stage.tgz" | sha256sum -c --status; then',
  '  echo "the runtime archive arrived damaged (its sha256 differs)" >&2; exit 1',
  'fi',
  'mkdir -m 0700 -- "$stage"',
  'tar -xzf "$stage.tgz" -C "$stage" --no-same-owner',
  'rm -f -- "$stage.tgz"',
  'trap - EXIT',
].join('\n');

/**
 * $1 root, $2 hash, then the unit directories. Moves a checked $1/.incoming-$2 into place (marker last), swaps
 * `current` to it atomically, and removes every other runtime no unit names ("pruned NAME" / "kept NAME" on stdout).
 */
export const COMMIT_SCRIPT = [
  'set -eu',
  'umask 022',
  'root=$1; hash=$2; shift 2',
  'stage="$root/.incoming-$hash"; dest="$root/$hash"',
  'if [ -d "$stage" ]; then',
  `  printf '%s\\n' "$hash" > "$stage/${RUNTIME_MARKER}"`,
  '  chmod 0755 -- "$stage"',
  '  rm -rf -- "$dest"',
  '  mv -T -- "$stage" "$dest"',
  'fi',
  `if [ "$(cat -- "$dest/${RUNTIME_MARKER}" 2>/dev/null || true)" != "$hash" ]; then`,
  '  echo "$dest is not a complete stackha runtime" >&2; exit 1',
  'fi',
  'ln -sfn -- "$hash" "$root/.current-$hash"',
  'mv -Tf -- "$root/.current-$hash" "$root/current"',
  'for d in "$root"/* "$root"/.incoming-*; do',
  '  if [ -L "$d" ] || [ ! -d "$d" ]; then continue; fi',
  '  name=${d##*/}',
  '  if [ "$name" = "$hash" ]; then continue; fi',
  '  named=no',
  '  for u in "$@"; do',
  '    if grep -qsF -- "/$name/" "$u"/stackha-*.service "$u"/stackha-*.service.d/*.conf; then named=yes; fi',
  '  done',
  '  if [ "$named" = yes ]; then echo "kept $name"; else rm -rf -- "$d"; echo "pruned $name"; fi',
  'done',
].join('\n');

/** What a host has. */
export interface RuntimeProbe {
  /** `node --version` of HOST_NODE; undefined when there is none (or it does not run). */
  readonly node: string | undefined;
  /** The hash `current` points to. */
  readonly current: string | undefined;
  /** The runtime of the image's hash is there, complete. */
  readonly has: boolean;
}

export async function probeRuntime(host: Host, image: Pick<RuntimeImage, 'hash'>): Promise<RuntimeProbe> {
  const out = await host.run(['sh', '-c', PROBE_SCRIPT, 'sh', RUNTIME_ROOT, image.hash, HOST_NODE], {
    timeoutMs: QUERY_TIMEOUT_MS,
  });
  const field = (k: string): string | undefined => {
    const line = out.split('\n').find((l) => l.startsWith(`${k}=`));
    const v = line?.slice(k.length + 1).trim();
    return v ? v : undefined;
  };
  const node = field('node');
  return {
    node: node === 'unusable' ? undefined : node,
    current: field('current'),
    has: field('has') === 'yes',
  };
}

/** Why the host's node cannot run this runtime, or undefined when it can (as far as its version tells). */
export function nodeProblem(
  probe: RuntimeProbe,
  image: Pick<RuntimeImage, 'nodeMin' | 'nodeMinBy'>,
): string | undefined {
  if (probe.node === undefined) return `no ${HOST_NODE} (Debian package ${NODE_PACKAGE})`;
  const v = parseNodeVersion(probe.node);
  if (v === undefined) return `${HOST_NODE} --version says ${JSON.stringify(probe.node)}, not a version`;
  if (compareVersions(v, image.nodeMin) < 0)
    return (
      `${HOST_NODE} is ${probe.node}; the agents need node >= ${image.nodeMin.join('.')}` +
      (image.nodeMinBy ? ` (${image.nodeMinBy})` : '')
    );
  return undefined;
}

export type RuntimeAction = 'up to date' | 'made current' | 'shipped';

export interface RuntimeOutcome {
  readonly action: RuntimeAction;
  readonly hash: string;
  /** Bytes sent (the archive), 0 unless shipped. */
  readonly bytes: number;
  /** What `current` pointed to before. */
  readonly previous: string | undefined;
  /** Old runtimes removed. */
  readonly pruned: readonly string[];
}

/** The host cannot take the runtime: names the host and why. */
export class RuntimeShipError extends Error {
  readonly code = 'ERUNTIME';
  constructor(host: string, reason: string) {
    super(`${host}: stackha runtime: ${reason}`);
    this.name = 'RuntimeShipError';
  }
}

/**
 * Makes the image the host's current runtime: nothing when it is already (nothing is sent), a swap of `current` when
 * the host has it already, else the archive is sent, checked, unpacked, run, and swapped in.
 */
export async function shipRuntime(
  host: Host,
  image: RuntimeImage,
  opts: { readonly log?: (m: string) => void; readonly signal?: AbortSignal } = {},
): Promise<RuntimeOutcome> {
  const sig = opts.signal ? { signal: opts.signal } : {};
  const probe = await probeRuntime(host, image);
  const base = { hash: image.hash, previous: probe.current };
  if (probe.has && probe.current === image.hash)
    return { ...base, action: 'up to date', bytes: 0, pruned: [] };
  if (!probe.has) {
    const bad = nodeProblem(probe, image);
    if (bad) throw new RuntimeShipError(host.name, `${bad}; nothing was sent`);
    opts.log?.(`${host.name}: sending the stackha runtime ${image.hash} (${kib(image.tgz.length)})`);
    await host.run(['sh', '-c', UNPACK_SCRIPT, 'sh', RUNTIME_ROOT, image.hash, image.tgzSha256], {
      input: image.tgz.toString('base64'),
      timeoutMs: TRANSFER_TIMEOUT_MS,
      ...sig,
    });
    const stage = `${RUNTIME_ROOT}/.incoming-${image.hash}`;
    const failures: string[] = [];
    for (const agent of image.agents) {
      const r = await host.exec([HOST_NODE, `${stage}/dist/${agent}`], {
        timeoutMs: QUERY_TIMEOUT_MS,
        ...sig,
      });
      if (r.code !== 2 || !r.stderr.includes('usage:')) {
        const tail = (r.stderr || r.stdout).trim().split('\n').slice(-3).join(' | ');
        failures.push(
          `${agent} ${r.timedOut ? 'timed out' : `exited ${r.code ?? r.signal}`}${tail ? `: ${tail}` : ''}`,
        );
      }
    }
    if (failures.length > 0) {
      await host.remove(stage).catch(() => undefined);
      throw new RuntimeShipError(
        host.name,
        `${HOST_NODE} (${probe.node}) cannot run the agents of runtime ${image.hash}, which was not made current: ${failures.join('; ')}`,
      );
    }
  }
  const out = await host.run(['sh', '-c', COMMIT_SCRIPT, 'sh', RUNTIME_ROOT, image.hash, ...UNIT_DIRS], {
    timeoutMs: QUERY_TIMEOUT_MS,
    ...sig,
  });
  const pruned = out
    .split('\n')
    .filter((l) => l.startsWith('pruned '))
    .map((l) => l.slice('pruned '.length));
  return {
    ...base,
    action: probe.has ? 'made current' : 'shipped',
    bytes: probe.has ? 0 : image.tgz.length,
    pruned,
  };
}

export function kib(bytes: number): string {
  return bytes >= 1024 * 1024 ? `${(bytes / 1024 / 1024).toFixed(1)} MiB` : `${Math.ceil(bytes / 1024)} KiB`;
}

/** One line of what shipRuntime did, for bootstrap-servers' report. */
export function formatRuntimeOutcome(o: RuntimeOutcome): string {
  const pruned = o.pruned.length > 0 ? `, removed old ${o.pruned.join(' ')}` : '';
  if (o.action === 'up to date') return `runtime up to date (${o.hash})`;
  if (o.action === 'made current')
    return `runtime ${o.hash} made current (it was on the host already)${pruned}`;
  return `runtime ${o.hash} shipped (${kib(o.bytes)}) and made current${o.previous ? `, was ${o.previous}` : ''}${pruned}`;
}

/** The SSH hosts that run an agent but cannot run this image's: each with why. Reads only. */
export async function runtimeProblems(
  dep: Deployment,
  hosts: ReadonlyMap<string, Host>,
  image: () => RuntimeImage,
): Promise<{ readonly host: string; readonly problem: string; readonly node: boolean }[]> {
  const agents = agentsByHost(dep);
  const ssh = dep.hosts.filter((h) => h.connection.kind === 'ssh' && agents.has(h.name));
  if (ssh.length === 0) return [];
  const img = image();
  const found = await Promise.all(
    ssh.map(async (spec) => {
      const host = hosts.get(spec.name);
      if (!host) return { host: spec.name, problem: 'no connection to this host', node: false };
      let probe: RuntimeProbe;
      try {
        probe = await probeRuntime(host, img);
      } catch (err) {
        return { host: spec.name, problem: (err as Error).message, node: false };
      }
      const bad = nodeProblem(probe, img);
      if (bad && probe.node !== undefined) return { host: spec.name, problem: bad, node: true };
      const parts: string[] = [];
      if (bad) parts.push(bad);
      if (!probe.has)
        parts.push(
          `no stackha runtime ${img.hash} (${probe.current ? `its current runtime is ${probe.current}` : 'it has none'})`,
        );
      return parts.length > 0 ? { host: spec.name, problem: parts.join('; '), node: false } : undefined;
    }),
  );
  return found.filter((f) => f !== undefined);
}

/** Deploy's refusal: hosts that would run agents they cannot run. Nothing was changed on any host. */
export class RuntimeNotReady extends Error {
  readonly code = 'ERUNTIME';
  constructor(
    readonly problems: readonly { readonly host: string; readonly problem: string; readonly node: boolean }[],
    hash: string,
  ) {
    const n = problems.length;
    const lines = problems.map((p) => `  ${p.host}: ${p.problem}`);
    const oldNode = problems.some((p) => p.node);
    super(
      `${n} host${n === 1 ? '' : 's'} cannot run stackha's agents (runtime ${hash}); nothing was changed on any host:\n` +
        `${lines.join('\n')}\n` +
        (oldNode
          ? `Install node >= the version named above as ${HOST_NODE} (Debian 13's nodejs is 20; on Debian 12, NodeSource's nodejs 20 package), then run \`stackha bootstrap-servers\`.`
          : "Run `stackha bootstrap-servers`: it installs nodejs and ships this deployer's runtime to these hosts."),
    );
    this.name = 'RuntimeNotReady';
  }
}

/** Deploy's preflight: every SSH host that runs an agent has this deployer's runtime and a node that runs it. */
export async function requireRuntimes(
  dep: Deployment,
  hosts: ReadonlyMap<string, Host>,
  image: () => RuntimeImage,
): Promise<void> {
  const problems = await runtimeProblems(dep, hosts, image);
  if (problems.length > 0) throw new RuntimeNotReady(problems, image().hash);
}
