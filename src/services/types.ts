import type { DaemonSpec, Host } from '../hosts/host.js';
import type { Deployment, HostSpec } from '../model.js';

/** A file a service needs on a host: host path, content, mode and owner. Rendered purely from the model. */
export interface RenderedFile {
  readonly path: string;
  readonly content: string;
  readonly mode?: number;
  readonly owner?: string;
}

/** The host a service's files are rendered for. Paths are host paths, the same in the lab and on a machine. */
export interface RenderTarget {
  readonly host: HostSpec;
}

/** Everything the deploy runner knows about one host of one service. */
export interface ServiceUnit {
  readonly files: readonly RenderedFile[];
  /** Directories to create (with owner) before the daemon starts. */
  readonly dirs: readonly { path: string; owner?: string; mode?: number }[];
  readonly daemons: readonly DaemonSpec[];
}

export interface DeployContext {
  readonly dep: Deployment;
  /** Host objects by inventory name. */
  readonly hosts: ReadonlyMap<string, Host>;
  readonly log: (message: string) => void;
  readonly signal?: AbortSignal;
}

/** What deploying a service did on one host. */
export type HostOutcome = 'unchanged' | 'started' | 'restarted' | 'reloaded' | 'configured';

export interface ServiceResult {
  readonly service: string;
  readonly outcomes: Readonly<Record<string, HostOutcome>>;
}

export function target(ctx: DeployContext, host: HostSpec): RenderTarget {
  void ctx;
  return { host };
}

export function hostOf(ctx: DeployContext, name: string): Host {
  const h = ctx.hosts.get(name);
  if (!h) throw new Error(`no connection to host ${name}`);
  return h;
}

/** A host of a connection by name (status probes, restarts and scale steps use this). */
export function hostIn(ctx: { readonly hosts: ReadonlyMap<string, Host> }, name: string): Host {
  const h = ctx.hosts.get(name);
  if (!h) throw new Error(`no connection to host ${name}`);
  return h;
}

/** The render target of a host of a connection. */
export function targetIn(_ctx: unknown, host: HostSpec): RenderTarget {
  return { host };
}
