// `stackha bootstrap-servers`: make real hosts ready for `stackha deploy`. A pure plan (which Debian packages each
// host's services declare, which hosts are load balancers) and an executor that applies it through the Host
// interface, idempotently: a second run finds everything in place and changes nothing.
//
// Directories: deploy already creates every directory a service needs (each ServiceUnit's `dirs`, with owner and
// mode, through ensureDirs in src/services/files.ts, before any file is written), and Host.writeFile creates the
// parents of stackha's own files (/etc/stackha/daemons, /var/lib/stackha/applied). So bootstrap-servers creates no
// directory: doing it here as well would be a second list to keep in step. The service users (mysql, rabbitmq,
// memcache, haproxy, keystone, nova, ...) are created by their Debian packages.
//
// stackha's own helper programs (agents: the Galera health endpoint, the HAProxy watcher) run on the hosts whose
// services declare one (DaemonDeclaration.agent): those hosts also get Debian's nodejs and the stackha runtime
// (src/runtime/ship.ts), after their packages.
import { type ConnectOptions, type Connection, connect } from '../hosts/connect.js';
import type { Host } from '../hosts/host.js';
import type { Deployment } from '../model.js';
import type { RuntimeImage } from '../runtime/image.js';
import { NODE_PACKAGE, deployerRuntime } from '../runtime/runtime.js';
import { type RuntimeOutcome, formatRuntimeOutcome, shipRuntime } from '../runtime/ship.js';
import type { ServiceDeclaration } from '../services/contract.js';
import { agentsByHost, debianPackages, deployedServices } from '../services/registry.js';
import { hostsFor } from '../topology.js';

/** Where Debian's invoke-rc.d asks whether a package may start its service (exit 101: no). */
export const POLICY_RC_D = '/usr/sbin/policy-rc.d';
/** What stackha writes there; the marker line tells a leftover of an interrupted run from an operator's own file. */
export const POLICY_RC_D_CONTENT =
  '#!/bin/sh\n# Written by stackha bootstrap-servers while it installs packages: no service starts on install.\nexit 101\n';

export const SYSCTL_FILE = '/etc/sysctl.d/60-stackha.conf';
export const SYSCTL_KEY = 'net.ipv4.ip_nonlocal_bind';
export const SYSCTL_CONTENT =
  '# Written by stackha bootstrap-servers: HAProxy binds the VIP on load balancers that do not hold it.\n' +
  `${SYSCTL_KEY} = 1\n`;
const SYSCTL_PROC = '/proc/sys/net/ipv4/ip_nonlocal_bind';

/** The services whose hosts are load balancers: HAProxy binds the VIP there, held or not. */
const LOAD_BALANCER_SERVICES = ['haproxy', 'keepalived'];

const QUERY_TIMEOUT_MS = 30_000;
const APT_UPDATE_TIMEOUT_MS = 10 * 60_000;
const APT_INSTALL_TIMEOUT_MS = 30 * 60_000;

/** What one host needs. */
export interface HostPlan {
  readonly host: string;
  /** The services placed on it, in plan order. */
  readonly services: readonly string[];
  /** Declared packages installed with their recommended packages. */
  readonly packages: readonly string[];
  /** Declared packages installed with --no-install-recommends (the declaration says `recommends: false`). */
  readonly packagesNoRecommends: readonly string[];
  /** A load balancer: net.ipv4.ip_nonlocal_bind=1, persisted. */
  readonly nonlocalBind: boolean;
  /** The agents it runs (scripts under dist/): it gets nodejs and the stackha runtime. */
  readonly agents: readonly string[];
}

/**
 * Per inventory host, in inventory order: the Debian packages its services declare, split the way `stackha packages
 * --recommends/--no-recommends` splits them (the same function over the host's services), and whether it is a load
 * balancer. A host with no service gets an empty plan.
 */
export function bootstrapPlan(dep: Deployment): HostPlan[] {
  const services = deployedServices(dep);
  const lb = new Set(LOAD_BALANCER_SERVICES.flatMap((s) => hostsFor(dep, s).map((h) => h.name)));
  const agents = agentsByHost(dep);
  return dep.hosts.map((h) => {
    const mine: ServiceDeclaration[] = services.filter((s) =>
      hostsFor(dep, s.name).some((x) => x.name === h.name),
    );
    const packages = debianPackages(mine, true);
    const mineAgents = agents.get(h.name) ?? [];
    // The agents' node: without its recommended packages (nodejs-doc).
    const node = mineAgents.length > 0 && !packages.includes(NODE_PACKAGE) ? [NODE_PACKAGE] : [];
    return {
      host: h.name,
      services: mine.map((s) => s.name),
      packages,
      packagesNoRecommends: [...new Set([...debianPackages(mine, false), ...node])].sort(),
      nonlocalBind: lb.has(h.name),
      agents: mineAgents,
    };
  });
}

/** What was done on one host. */
export interface HostBootstrap {
  readonly host: string;
  readonly installed: readonly string[];
  /** Declared packages found installed already. */
  readonly present: number;
  /** 'written': the file was (re)written and applied; 'applied': the file was right, the live value was not. */
  readonly sysctl: 'written' | 'applied' | 'unchanged' | 'none';
  /** An operator's own policy-rc.d was there and was left alone (it decides whether services start). */
  readonly foreignPolicy: boolean;
  /** What was done about the stackha runtime (hosts that run an agent). */
  readonly runtime: RuntimeOutcome | undefined;
  readonly seconds: number;
}

export interface BootstrapReport {
  readonly hosts: readonly HostBootstrap[];
  readonly changed: boolean;
  readonly seconds: number;
}

export interface BootstrapOptions {
  /** The hosts (default: connect() to the inventory's, every one probed first); tests hand fake ones in. */
  readonly connection?: Connection;
  /** How connect() reaches SSH hosts (known_hosts, accepting new keys). */
  readonly connectOptions?: ConnectOptions;
  readonly log?: (message: string) => void;
  readonly signal?: AbortSignal;
  /** The runtime shipped to the hosts that run an agent (default: this deployer's); tests hand another in. */
  readonly runtime?: () => RuntimeImage;
}

/** Thrown for a deployment bootstrap-servers must not touch (a lab). */
export class BootstrapRefused extends Error {
  readonly code = 'EREFUSED';
  constructor(message: string) {
    super(message);
    this.name = 'BootstrapRefused';
  }
}

/** Some hosts failed: each one's error (host, command, cause); the others' results are in `done`. */
export class BootstrapFailed extends Error {
  readonly code = 'EBOOTSTRAP';
  constructor(
    readonly failures: readonly { readonly host: string; readonly error: Error }[],
    readonly done: readonly HostBootstrap[],
  ) {
    super(
      `bootstrap-servers failed on ${failures.length} host${failures.length === 1 ? '' : 's'}:\n` +
        failures.map((f) => `  ${f.error.message.split('\n').join('\n    ')}`).join('\n'),
    );
    this.name = 'BootstrapFailed';
  }
}

/** Why a lab is refused, or undefined for real hosts. */
export function labRefusal(dep: Deployment): string | undefined {
  const lab = dep.globals.lab;
  if (lab === undefined) return undefined;
  // A lab host, whether entered as a namespace or over SSH, runs this machine's /usr: installing packages "on" it
  // would install them on this machine, under a dpkg database the host's overlay may not share.
  return (
    `lab ${lab} (stackha_lab in globals.yml): not bootstrapping ${dep.hosts.map((h) => h.name).join(', ')}. ` +
    "A lab's hosts are namespaces of this machine and use its packages, which scripts/ensure-deps.sh installs " +
    '(npm run demo and npm test run it). bootstrap-servers is for hosts reached over SSH (in a lab, it only ships ' +
    'the stackha runtime to them).'
  );
}

/**
 * What bootstrap-servers does: the plan of every host, or in a lab only the runtime for the hosts it reaches over SSH
 * (their agents run from it, as on a machine; packages and sysctls are this machine's, which ensure-deps.sh sets up).
 * A lab with no such host is refused.
 */
export function bootstrapServersPlan(dep: Deployment): HostPlan[] {
  const plan = bootstrapPlan(dep);
  if (dep.globals.lab === undefined) return plan;
  const ssh = new Set(dep.hosts.filter((h) => h.connection.kind === 'ssh').map((h) => h.name));
  const runtimeOnly = plan
    .filter((p) => ssh.has(p.host) && p.agents.length > 0)
    .map((p) => ({ ...p, packages: [], packagesNoRecommends: [], nonlocalBind: false }));
  const refusal = labRefusal(dep);
  if (runtimeOnly.length === 0 && refusal) throw new BootstrapRefused(refusal);
  return runtimeOnly;
}

/**
 * Installs each host's missing packages (no service started by the install), sets ip_nonlocal_bind on load
 * balancers. Every host is connected to and probed before anything is changed on any; then hosts go in parallel.
 */
export async function bootstrapServers(
  dep: Deployment,
  opts: BootstrapOptions = {},
): Promise<BootstrapReport> {
  const started = Date.now();
  const plan = bootstrapServersPlan(dep);
  // Built (and checked) here, before any host is reached: a checkout that cannot make one fails with nothing changed.
  const runtime = plan.some((p) => p.agents.length > 0) ? (opts.runtime ?? deployerRuntime)() : undefined;
  const conn = opts.connection ?? (await connect(dep, opts.connectOptions ?? {}));
  const settled = await Promise.allSettled(
    plan.map((p) => {
      const host = conn.hosts.get(p.host);
      if (!host) return Promise.reject(new Error(`${p.host}: no connection to this host`));
      return bootstrapHost(host, p, { ...opts, ...(runtime ? { runtime: () => runtime } : {}) });
    }),
  );
  const done: HostBootstrap[] = [];
  const failures: { host: string; error: Error }[] = [];
  settled.forEach((s, i) => {
    if (s.status === 'fulfilled') done.push(s.value);
    else
      failures.push({
        host: plan[i]?.host ?? '?',
        error: s.reason instanceof Error ? s.reason : new Error(String(s.reason)),
      });
  });
  if (failures.length > 0) throw new BootstrapFailed(failures, done);
  return {
    hosts: done,
    changed: done.some(
      (h) =>
        h.installed.length > 0 ||
        h.sysctl === 'written' ||
        h.sysctl === 'applied' ||
        (h.runtime !== undefined && h.runtime.action !== 'up to date'),
    ),
    seconds: (Date.now() - started) / 1000,
  };
}

/** Whether dpkg has the package fully installed (not just known, half-configured or removed with its config). */
export async function isInstalled(host: Host, pkg: string, signal?: AbortSignal): Promise<boolean> {
  const r = await host.exec(['dpkg-query', '-W', '-f=${Status}', pkg], {
    timeoutMs: QUERY_TIMEOUT_MS,
    ...(signal ? { signal } : {}),
  });
  return r.code === 0 && r.stdout.trim() === 'install ok installed';
}

export async function bootstrapHost(
  host: Host,
  plan: HostPlan,
  opts: BootstrapOptions = {},
): Promise<HostBootstrap> {
  const started = Date.now();
  const log = opts.log ?? (() => {});
  const sig = opts.signal ? { signal: opts.signal } : {};
  const declared = [...plan.packages, ...plan.packagesNoRecommends];
  const installed = await Promise.all(declared.map((p) => isInstalled(host, p, opts.signal)));
  const missing = (list: readonly string[]) => list.filter((p) => !installed[declared.indexOf(p)]);
  const withRecommends = missing(plan.packages);
  const bare = missing(plan.packagesNoRecommends);
  let foreignPolicy = false;
  if (withRecommends.length + bare.length > 0) {
    log(`${host.name}: installing ${[...withRecommends, ...bare].join(' ')}`);
    // A policy-rc.d that is stackha's (a leftover of an interrupted run) is used and removed; anyone else's is left
    // alone, and decides for itself whether the packages' services start.
    const existing = await host.readFile(POLICY_RC_D);
    const ours = existing === undefined || existing === POLICY_RC_D_CONTENT;
    foreignPolicy = !ours;
    if (existing === undefined) await host.writeFile(POLICY_RC_D, POLICY_RC_D_CONTENT, { mode: 0o755 });
    let failed: unknown;
    try {
      const apt = { env: { DEBIAN_FRONTEND: 'noninteractive' }, ...sig };
      await host.run(['apt-get', 'update', '-q'], { ...apt, timeoutMs: APT_UPDATE_TIMEOUT_MS });
      if (withRecommends.length > 0)
        await host.run(['apt-get', 'install', '-y', '-q', ...withRecommends], {
          ...apt,
          timeoutMs: APT_INSTALL_TIMEOUT_MS,
        });
      if (bare.length > 0)
        await host.run(['apt-get', 'install', '-y', '-q', '--no-install-recommends', ...bare], {
          ...apt,
          timeoutMs: APT_INSTALL_TIMEOUT_MS,
        });
    } catch (err) {
      failed = err;
    }
    // Removed on every path, the failed install's included; a failed removal is said along with the install's error.
    if (ours) {
      try {
        await host.remove(POLICY_RC_D);
      } catch (err) {
        const why = `${host.name}: could not remove ${POLICY_RC_D} (remove it by hand, or services never start on install): ${(err as Error).message}`;
        throw new Error(failed instanceof Error ? `${failed.message}\n${why}` : why);
      }
    }
    if (failed !== undefined) throw failed;
  }
  let sysctl: HostBootstrap['sysctl'] = 'none';
  if (plan.nonlocalBind) {
    const current = await host.readFile(SYSCTL_FILE);
    const mode = await host.fileMode(SYSCTL_FILE);
    if (current !== SYSCTL_CONTENT || mode !== 0o644) {
      await host.writeFile(SYSCTL_FILE, SYSCTL_CONTENT, { mode: 0o644 });
      sysctl = 'written';
    } else if ((await host.readFile(SYSCTL_PROC))?.trim() !== '1') sysctl = 'applied';
    else sysctl = 'unchanged';
    if (sysctl !== 'unchanged')
      await host.run(['sysctl', '-p', SYSCTL_FILE], { timeoutMs: QUERY_TIMEOUT_MS, ...sig });
  }
  // After the packages: the runtime needs the node they brought.
  let runtime: RuntimeOutcome | undefined;
  if (plan.agents.length > 0)
    runtime = await shipRuntime(host, (opts.runtime ?? deployerRuntime)(), {
      log,
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
  return {
    host: plan.host,
    installed: [...withRecommends, ...bare].sort(),
    present: declared.length - withRecommends.length - bare.length,
    sysctl,
    foreignPolicy,
    runtime,
    seconds: (Date.now() - started) / 1000,
  };
}

/** One line per host, then the total. */
export function formatBootstrapReport(r: BootstrapReport): string {
  const lines = r.hosts.map((h) => {
    const parts: string[] = [];
    if (h.installed.length > 0)
      parts.push(
        `installed ${h.installed.length} package${h.installed.length === 1 ? '' : 's'} (${h.installed.join(' ')})` +
          (h.foreignPolicy ? `, with the host's own ${POLICY_RC_D} left in place` : ''),
      );
    if (h.sysctl === 'written') parts.push(`${SYSCTL_KEY}=1 written to ${SYSCTL_FILE} and applied`);
    if (h.sysctl === 'applied') parts.push(`${SYSCTL_KEY}=1 applied from ${SYSCTL_FILE}`);
    if (h.runtime && h.runtime.action !== 'up to date') parts.push(formatRuntimeOutcome(h.runtime));
    const kept: string[] = [];
    if (h.present > 0) kept.push(`${h.present} package${h.present === 1 ? '' : 's'} already installed`);
    if (h.sysctl === 'unchanged') kept.push(`${SYSCTL_KEY} already set`);
    if (h.runtime?.action === 'up to date') kept.push(formatRuntimeOutcome(h.runtime));
    const what =
      parts.length > 0
        ? `${parts.join('; ')}${kept.length ? `; ${kept.join(', ')}` : ''}`
        : kept.length > 0
          ? `nothing changed (${kept.join(', ')})`
          : 'nothing to do (no service)';
    return `${h.host}: ${what} (${h.seconds.toFixed(1)} s)`;
  });
  lines.push(
    r.changed
      ? `bootstrapped ${r.hosts.length} host${r.hosts.length === 1 ? '' : 's'} in ${r.seconds.toFixed(1)} s`
      : `nothing changed on ${r.hosts.length} host${r.hosts.length === 1 ? '' : 's'} (${r.seconds.toFixed(1)} s)`,
  );
  return lines.join('\n');
}

/** The plan as `--dry-run` prints it: one line per host, nothing asked of any host. */
export function formatBootstrapPlan(plan: readonly HostPlan[], runtimeHash?: string): string {
  return plan
    .map((p) => {
      if (p.services.length === 0) return `${p.host}: no service, nothing to install`;
      const parts = [`${p.services.join(', ')}`];
      if (p.packages.length > 0) parts.push(`packages ${p.packages.join(' ')}`);
      if (p.packagesNoRecommends.length > 0)
        parts.push(`without recommends ${p.packagesNoRecommends.join(' ')}`);
      if (p.nonlocalBind) parts.push(`${SYSCTL_KEY}=1 in ${SYSCTL_FILE}`);
      if (p.agents.length > 0)
        parts.push(
          `stackha runtime${runtimeHash ? ` ${runtimeHash}` : ''} for ${p.agents.map((a) => a.replace(/^agents\/|\.js$/g, '')).join(', ')}`,
        );
      return `${p.host}: ${parts.join('; ')}`;
    })
    .join('\n');
}
