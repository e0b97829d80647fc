// Where stackha's helper programs (agents) run from on each kind of host. A lab host is a namespace of this machine and
// sees this checkout: it runs the agents with this process's node, exactly as before. A real host (SSH) runs them with
// its own node (Debian's `nodejs`, /usr/bin/node) from the stackha runtime shipped to it by `stackha bootstrap-servers`
// (src/runtime/ship.ts), at the runtime's own hash directory: a new runtime is a new command line, which deploy sees as
// a changed daemon and restarts (the old directory stays while a unit still names it).
import type { HostSpec } from '../model.js';
import { builtScript, packageRoot } from '../util/paths.js';
import { type RuntimeImage, buildRuntimeImage } from './image.js';

/**
 * Where runtimes live on a host reached over SSH: one directory per hash, and `current`, a symlink to the latest
 * shipped. Under /var/lib, not /opt: in a lab, /var is each host's own (an overlay), /opt is this machine's.
 */
export const RUNTIME_ROOT = '/var/lib/stackha/runtime';
/** The node that runs the agents on a real host: Debian's nodejs package. */
export const HOST_NODE = '/usr/bin/node';
/** The Debian package that provides it. */
export const NODE_PACKAGE = 'nodejs';

let deployer: RuntimeImage | undefined;

/** The runtime this deployer ships, built once per process from its checkout. */
export function deployerRuntime(): RuntimeImage {
  deployer ??= buildRuntimeImage(packageRoot());
  return deployer;
}

/** The directory of a runtime on a host. */
export function runtimeDir(hash: string): string {
  return `${RUNTIME_ROOT}/${hash}`;
}

/**
 * The command that runs an agent (`agents/galera-health.js`) on a host: on a lab host this process's node and this
 * checkout's dist/ (unchanged from before real hosts existed); on an SSH host the host's node and the runtime at the
 * hash this deployer ships.
 */
export function agentArgv(
  host: HostSpec,
  agent: string,
  runtime: () => Pick<RuntimeImage, 'hash'> = deployerRuntime,
): string[] {
  if (host.connection.kind === 'lab') return [process.execPath, builtScript(agent)];
  return [HOST_NODE, `${runtimeDir(runtime().hash)}/dist/${agent}`];
}
