// The one typed contract every service is declared under, kolla-ansible's "one role per service" made a type: what it
// is (inventory groups, enable key, dependencies, passwords, settings, Debian packages), what runs (daemons and how
// each stops, what HAProxy fronts), how it is deployed, restarted, scaled, removed and checked. Deploy, drain,
// rolling restart, scale add/remove, status, genpwd, the inventory checks and the package installer read these
// declarations (src/services/registry.ts); nothing else lists services by hand.
import type { Host } from '../hosts/host.js';
import type { Deployment, HostSpec } from '../model.js';
import type { SettingSpec } from '../settings.js';
import type { Applied } from './files.js';
import type { LoadBalancedService } from './haproxy/haproxy.js';
import type { DeployContext, RenderTarget, ServiceResult } from './types.js';

/**
 * How long a drained server's established sessions get to end by themselves before HAProxy shuts them down. Database:
 * oslo.db recycles pooled connections every 10 s (connection_recycle_time, src/services/api/framework.ts), so a
 * well-behaved client moves in that time without an error; a second more for good measure. HTTP: requests are short.
 */
export const DB_DRAIN_MS = 11_000;
export const HTTP_DRAIN_MS = 5_000;

/** A daemon of a service: its name on every host, how it stops, and the HAProxy backends that front it. */
export interface DaemonDeclaration {
  readonly name: string;
  /** The signal that stops it cleanly (uwsgi reloads on SIGTERM: SIGINT) and how long it may take before SIGKILL. */
  readonly stopSignal?: NodeJS.Signals;
  readonly stopTimeoutMs: number;
  /**
   * It is one of stackha's own helper programs (the path of its script under dist/, `agents/galera-health.js`): its
   * hosts need node and the stackha runtime (src/runtime/), which bootstrap-servers installs and deploy checks for.
   */
  readonly agent?: string;
  /**
   * Clients reach it through HAProxy: before it stops, its host's server is drained from these backends, and put back
   * once `healthy` says so. `drainMs` bounds how long established sessions get to end by themselves.
   */
  readonly fronted?: {
    backends(dep: Deployment): readonly string[];
    readonly drainMs: number;
    healthy(host: Host, dep: Deployment): Promise<boolean>;
  };
}

/** The smallest safe number of hosts, and why (what a smaller cluster cannot survive). */
export interface MinHosts {
  readonly min: number;
  why(n: number): string;
  /** A quorum cluster: an even size is worth a warning. */
  readonly quorum: boolean;
}

/** What `stackha status` shows of a service, and what an operator must act on. */
export interface ServiceStatus {
  readonly service: string;
  /** Its section of `stackha status`, a heading then indented lines. */
  readonly lines: readonly string[];
  /** Empty when the service is whole. */
  readonly problems: readonly string[];
  /** The same facts for `status --json` and for code (chaos, scale) that reads them. */
  readonly data: unknown;
}

/** What a status probe and a restart are given: the deployment and a connection to its hosts. */
export interface HostsContext {
  readonly dep: Deployment;
  readonly hosts: ReadonlyMap<string, Host>;
  readonly log: (message: string) => void;
}

/** One service user, service and its endpoints in Keystone (src/services/api/registration.ts does it, idempotently). */
export interface KeystoneRegistration {
  /** The service user, its passwords.yml key and its roles in the `service` project. */
  readonly user: { readonly name: string; readonly passwordKey: string; readonly roles: readonly string[] };
  /** The catalog entry: service name and type, and the URL of each interface (on the VIP). */
  readonly service: { readonly name: string; readonly type: string; readonly description: string };
  readonly url: string;
}

/**
 * Where a service sits in the plan. Deploy goes in registry order; `stackha scale add` brings `api` services up on the
 * new host before HAProxy lists it; a rolling restart goes host by host through the backends (`infra`, `api`), then
 * reloads the `loadbalancer` and restarts the `vip` tier one host at a time.
 */
export type Tier = 'infra' | 'loadbalancer' | 'vip' | 'api';

export interface ServiceDeclaration {
  /** The service's name: `stackha restart <name>`, its applied-state record, its status section. */
  readonly name: string;
  /** What the deploy's task list calls it. */
  readonly title: string;
  readonly tier: Tier;
  /** globals.yml's switch and its default. */
  readonly enable: { readonly key: string; readonly default: boolean };
  /** Only in a lab (the probe API): never deployed on real hosts. */
  readonly labOnly?: boolean;
  /** Services it cannot run without, and why (checked by the inventory, which refuses the combination). */
  readonly requires?: readonly { readonly service: string; readonly why: string }[];
  /** Inventory groups it runs on: the first that has hosts (kolla's group, then the ones it falls back to). */
  readonly groups: readonly string[];
  /** No host for it at all: an error (it is needed) or a warning (it is left out). */
  readonly noHosts: 'error' | 'warning';
  readonly minHosts?: MinHosts;
  /** passwords.yml keys it needs while enabled. */
  readonly passwords: readonly string[];
  /** globals.yml settings it reads, each validated (type, range) with file and line. */
  readonly settings?: Readonly<Record<string, SettingSpec<unknown>>>;
  /** Debian packages its hosts need (`stackha packages`, bootstrap-servers). */
  readonly packages: readonly string[];
  /**
   * false: install them without their recommended packages (OpenStack's pull in plotting libraries, test tools and,
   * for nova-compute-ironic, libguestfs with a kernel image).
   */
  readonly recommends?: false;
  /** Its daemons, in the order they start on a host (they stop in the reverse order). */
  daemons(dep: Deployment): readonly DaemonDeclaration[];
  /** HAProxy frontends it needs on the VIP. */
  loadBalanced?(dep: Deployment): readonly LoadBalancedService[];
  /** Its Keystone users, services and endpoints. */
  keystone?(dep: Deployment): readonly KeystoneRegistration[];
  /** Host paths wiped when a host leaves the deployment (cluster membership, keys, data). */
  readonly removal?: readonly string[];
  /** Deploys it on its hosts: idempotent, a re-run with nothing changed changes nothing. */
  deploy(ctx: DeployContext): Promise<ServiceResult | readonly ServiceResult[]>;
  /**
   * What a deploy would apply on a host, by applied-state record (src/services/files.ts): a rolling restart refuses
   * to smuggle in an undeployed change.
   */
  wanted?(dep: Deployment, t: RenderTarget): Readonly<Record<string, Applied>>;
  /** Restarts it on one host already drained from HAProxy; resolves once it serves again. */
  restartHost?(ctx: HostsContext, spec: HostSpec): Promise<void>;
  /** After `stackha scale add` deployed a new host: what the cluster still has to do for it (grow quorum queues). */
  afterJoin?(ctx: HostsContext, spec: HostSpec): Promise<void>;
  /** Before a leaving host's daemons stop: move what it holds (quorum queue replicas) and leave the cluster cleanly. */
  beforeLeave?(ctx: HostsContext, spec: HostSpec, remaining: Deployment): Promise<void>;
  /** A host that died for good: remove it from the cluster through the remaining hosts. */
  forgetDead?(ctx: HostsContext, spec: HostSpec, remaining: Deployment): Promise<void>;
  /** Its part of `stackha status`. */
  status?(ctx: HostsContext): Promise<ServiceStatus>;
}
