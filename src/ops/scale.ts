// `stackha scale add HOST` and `stackha scale remove HOST`: grow and shrink the control plane under load. See
// docs/scale.md for the order of every step and why.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type DeployReport, type Step, deploy } from '../deploy/deploy.js';
import { DB_DRAIN_MS, HTTP_DRAIN_MS, type LbContext, backendsOf, drainServer } from '../deploy/drain.js';
import { connect } from '../hosts/connect.js';
import type { Host } from '../hosts/host.js';
import { removeHostFromMultinode } from '../inventory/lab-inventory.js';
import { CONFIG_FILES, buildDeployment } from '../inventory/load.js';
import type { Deployment, HostSpec } from '../model.js';
import { UWSGI_STOP_SIGNAL } from '../services/api/framework.js';
import { galeraNodeStatus } from '../services/galera.js';
import { holdsVip } from '../services/keepalived.js';
import { CREDENTIAL_KEYS_DIR, FERNET_KEYS_DIR } from '../services/keystone.js';
import {
  RABBITMQ_MNESIA,
  forgetClusterNode,
  growQuorumQueues,
  queuesWithout,
  quorumQueues,
  rabbitNode,
  rabbitTool,
  shrinkQuorumQueues,
} from '../services/rabbitmq.js';
import type { RenderTarget } from '../services/types.js';
import { SAFE_SIZES, evenSizeWarning, hostsFor, hostsOfRule } from '../topology.js';
import { waitFor } from '../util/wait.js';
import { clusterProblems, clusterStatus } from './status.js';

/** Thrown when a scale operation would be unsafe or cannot start; nothing was changed. */
export class ScaleRefused extends Error {
  readonly code = 'ESCALEREFUSED';
}

/** The deployment as it is without `name`: the host gone from the host list and from every group. */
export function withoutHost(dep: Deployment, name: string): Deployment {
  return {
    ...dep,
    hosts: dep.hosts.filter((h) => h.name !== name),
    groups: Object.fromEntries(
      Object.entries(dep.groups).map(([g, hs]) => [g, hs.filter((h) => h !== name)]),
    ),
  };
}

export interface ScaleCheck {
  /** Why the operation must not run; empty when it may. */
  readonly refusals: readonly string[];
  /** What the operator should know (an even cluster size), without refusing. */
  readonly warnings: readonly string[];
}

/** Whether `name` may leave the deployment: no clustered service may drop below its safe size. */
export function removalCheck(dep: Deployment, name: string): ScaleCheck {
  if (!dep.hosts.some((h) => h.name === name))
    return { refusals: [`${name} is not a host of the inventory`], warnings: [] };
  const refusals: string[] = [];
  const warnings: string[] = [];
  for (const rule of SAFE_SIZES) {
    const hosts = hostsOfRule(dep, rule);
    if (!hosts.some((h) => h.name === name)) continue;
    const left = hosts.length - 1;
    if (left < rule.min)
      refusals.push(
        `${rule.service}: removing ${name} leaves ${left} (at least ${rule.min} needed): ${rule.why(left)}`,
      );
    else if (rule.service !== 'haproxy' && left % 2 === 0) warnings.push(evenSizeWarning(rule.service, left));
  }
  if (dep.hosts.length === 1) refusals.push(`${name} is the only host`);
  return { refusals, warnings };
}

/** Whether `name` (already in the inventory) may join: it must be in it; an even resulting size is warned about. */
export function additionCheck(dep: Deployment, name: string): ScaleCheck {
  if (!dep.hosts.some((h) => h.name === name))
    return {
      refusals: [
        `${name} is not in the inventory: add it to ${join(dep.configDir, CONFIG_FILES.multinode)} first`,
      ],
      warnings: [],
    };
  const warnings: string[] = [];
  for (const service of ['mariadb', 'rabbitmq'] as const) {
    const hosts = hostsFor(dep, service);
    if (hosts.some((h) => h.name === name) && hosts.length % 2 === 0)
      warnings.push(evenSizeWarning(service, hosts.length));
  }
  return { refusals: [], warnings };
}

/**
 * The deploy plan for `scale add`: the API services (every step after keepalived) move before HAProxy, so the new
 * host's APIs answer their health checks before any load balancer lists them. Its database node is Synced and its
 * health endpoint up before that too (their steps come first anyway).
 */
export function scaleAddSteps(steps: Step[]): Step[] {
  const lb = steps.findIndex((s) => s.title === 'haproxy');
  const vip = steps.findIndex((s) => s.title === 'keepalived');
  if (lb < 0 || vip < lb) return steps;
  return [...steps.slice(0, lb), ...steps.slice(vip + 1), ...steps.slice(lb, vip + 1)];
}

/** Every daemon stackha may run on a host, in the order a leaving host stops them, with how each stops. */
export const HOST_DAEMONS: readonly { name: string; signal?: NodeJS.Signals; timeoutMs: number }[] = [
  { name: 'keystone', signal: UWSGI_STOP_SIGNAL, timeoutMs: 20_000 },
  { name: 'probe-api', timeoutMs: 20_000 },
  { name: 'keepalived', timeoutMs: 20_000 },
  { name: 'haproxy-watch', timeoutMs: 20_000 },
  { name: 'rabbitmq', timeoutMs: 60_000 },
  { name: 'mariadb', timeoutMs: 120_000 },
  { name: 'galera-health', timeoutMs: 20_000 },
  { name: 'memcached', timeoutMs: 20_000 },
  { name: 'haproxy', timeoutMs: 20_000 },
  { name: 'epmd', timeoutMs: 20_000 },
];

export interface ScalePhase {
  readonly name: string;
  readonly seconds: number;
}

export interface ScaleReport {
  readonly operation: 'add' | 'remove';
  readonly host: string;
  readonly seconds: number;
  readonly phases: readonly ScalePhase[];
  readonly warnings: readonly string[];
  /** The deployment after the operation: what status should now find whole. */
  readonly deployment: Deployment;
}

export interface ScaleOptions {
  readonly log?: (message: string) => void;
}

function phases(log: (m: string) => void) {
  const done: ScalePhase[] = [];
  return {
    done,
    async run<T>(name: string, fn: () => Promise<T>): Promise<T> {
      const started = Date.now();
      log(`${name} ...`);
      const r = await fn();
      const seconds = (Date.now() - started) / 1000;
      done.push({ name, seconds });
      log(`${name}: done in ${seconds.toFixed(1)} s`);
      return r;
    },
  };
}

async function requireWhole(dep: Deployment, what: string): Promise<void> {
  const problems = clusterProblems(dep, await clusterStatus(dep));
  if (problems.length > 0)
    throw new ScaleRefused(
      `${what}: the cluster is not whole, fix that first (\`stackha status\`, \`stackha deploy\`):\n  ${problems.join('\n  ')}`,
    );
}

async function waitWhole(dep: Deployment, timeoutMs = 180_000): Promise<void> {
  let last: string[] = [];
  await waitFor(
    'the cluster to be whole',
    async () => {
      last = clusterProblems(dep, await clusterStatus(dep));
      return last.length === 0 ? true : undefined;
    },
    { timeoutMs, intervalMs: 2000 },
  ).catch(() => {
    throw new Error(`the cluster is not whole after the change:\n  ${last.join('\n  ')}`);
  });
}

function rabbitTarget(dep: Deployment, roots: ReadonlyMap<string, string>, spec: HostSpec): RenderTarget {
  return { host: spec, root: roots.get(spec.name) ?? '' };
}

/**
 * `stackha scale add HOST`: the host is in the inventory (`dep`) but not yet in the running cluster. It gets every
 * service through the normal deploy plan, with the API services brought up before HAProxy lists them; every other
 * host's peer lists are rewritten (Galera and RabbitMQ without a restart, HAProxy and keepalived reloaded, API
 * services restarted one host at a time, drained first); then the new RabbitMQ node joins every quorum queue.
 */
export async function scaleAdd(dep: Deployment, name: string, opts: ScaleOptions = {}): Promise<ScaleReport> {
  const log = opts.log ?? (() => {});
  const started = Date.now();
  const check = additionCheck(dep, name);
  if (check.refusals.length > 0) throw new ScaleRefused(check.refusals.join('\n'));
  for (const w of check.warnings) log(`warning: ${w}`);
  const conn = connect(dep);
  const host = conn.hosts.get(name) as Host;
  const reach = await host.exec(['true'], { timeoutMs: 10_000 });
  if (reach.code !== 0) throw new ScaleRefused(`${name} is not reachable: ${reach.stderr.trim()}`);
  const before = withoutHost(dep, name);
  const p = phases(log);
  await p.run('check the cluster is whole', async () => {
    // Whole without the host, or already whole with it (a re-run that finishes an interrupted add).
    if (clusterProblems(dep, await clusterStatus(dep)).length === 0)
      log(`${name} is in every cluster already`);
    else await requireWhole(before, `adding ${name}`);
  });
  let report: DeployReport | undefined;
  await p.run(`deploy ${name} and update every peer list`, async () => {
    report = await deploy(dep, { renderer: 'silent', steps: scaleAddSteps, log });
  });
  for (const r of report?.results ?? [])
    log(
      `  ${r.service}: ${Object.entries(r.outcomes)
        .map(([h, o]) => `${h} ${o}`)
        .join(', ')}`,
    );
  const spec = dep.hosts.find((h) => h.name === name) as HostSpec;
  const rabbits = hostsFor(dep, 'rabbitmq');
  if (rabbits.some((h) => h.name === name)) {
    await p.run(`make ${rabbitNode(spec)} a member of every quorum queue`, async () => {
      const via = rabbits.find((h) => h.name !== name) ?? spec;
      const t = rabbitTarget(dep, conn.roots, via);
      const viaHost = conn.hosts.get(via.name) as Host;
      const out = await growQuorumQueues(viaHost, t, rabbitNode(spec));
      log(out.trim().split('\n').slice(-3).join(' | '));
      await waitFor(
        `every quorum queue to have ${rabbitNode(spec)} as a member`,
        async () => {
          const missing = queuesWithout(await quorumQueues(viaHost, t), rabbitNode(spec));
          return missing.length === 0 ? true : undefined;
        },
        { timeoutMs: 120_000, intervalMs: 1000 },
      );
    });
  }
  await p.run('wait until the cluster is whole', () => waitWhole(dep));
  return {
    operation: 'add',
    host: name,
    seconds: (Date.now() - started) / 1000,
    phases: p.done,
    warnings: check.warnings,
    deployment: dep,
  };
}

/**
 * `stackha scale remove HOST`: the reverse, gracefully. The host is drained from every HAProxy backend, the VIP
 * moves away if it holds it, its RabbitMQ replicas move (shrink) and the node leaves the cluster, its Galera node
 * stops cleanly, every other host's peer lists are rewritten (Galera and RabbitMQ without a restart), its last
 * daemons stop, its cluster state and keys are wiped, and it is removed from the inventory.
 */
export async function scaleRemove(
  dep: Deployment,
  name: string,
  opts: ScaleOptions = {},
): Promise<ScaleReport> {
  const log = opts.log ?? (() => {});
  const started = Date.now();
  const check = removalCheck(dep, name);
  if (check.refusals.length > 0)
    throw new ScaleRefused(`not removing ${name}:\n  ${check.refusals.join('\n  ')}`);
  for (const w of check.warnings) log(`warning: ${w}`);
  const after = withoutHost(dep, name);
  // The inventory must be editable to a version without the host, or a later deploy would bring it back.
  const multinodePath = join(dep.configDir, CONFIG_FILES.multinode);
  const multinode = readFileSync(multinodePath, 'utf8');
  const edited = removeHostFromMultinode(multinode, name);
  const reread = buildDeployment(
    {
      multinode: edited.text,
      globals: readFileSync(join(dep.configDir, CONFIG_FILES.globals), 'utf8'),
      passwords: readFileSync(join(dep.configDir, CONFIG_FILES.passwords), 'utf8'),
    },
    dep.configDir,
    // Only whether the host is gone is asked here; removalCheck has applied the size rule.
    { allowSingle: true },
  );
  if (reread.hosts.some((h) => h.name === name))
    throw new ScaleRefused(
      `${name} is listed in ${multinodePath} through a pattern stackha cannot edit: list it on its own line`,
    );

  const conn = connect(dep);
  const host = conn.hosts.get(name) as Host;
  const spec = dep.hosts.find((h) => h.name === name) as HostSpec;
  const lb: LbContext = { dep, hosts: conn.hosts, roots: conn.roots, log };
  const p = phases(log);
  await p.run('check the cluster is whole', () => requireWhole(dep, `removing ${name}`));

  const inGroup = (service: 'mariadb' | 'rabbitmq' | 'keepalived') =>
    hostsFor(dep, service).some((h) => h.name === name);
  await p.run(`drain ${name} from every HAProxy backend`, async () => {
    const backends = backendsOf(dep, ['mariadb', 'probe-api', 'keystone']);
    await drainServer(lb, backends, name, inGroup('mariadb') ? DB_DRAIN_MS : HTTP_DRAIN_MS);
  });
  if (inGroup('keepalived')) {
    await p.run(`stop keepalived on ${name} (the VIP moves if it holds it)`, async () => {
      const held = await holdsVip(host, dep);
      // SIGTERM: keepalived sends a priority-0 advert, so a backup takes over at once.
      await host.stopDaemon('keepalived', { timeoutMs: 20_000 });
      if (held) {
        const holder = await waitFor(
          'another host to hold the VIP',
          async () => {
            const holders: string[] = [];
            for (const s of hostsFor(after, 'keepalived'))
              if (await holdsVip(conn.hosts.get(s.name) as Host, dep)) holders.push(s.name);
            return holders.length === 1 && !(await holdsVip(host, dep)) ? holders[0] : undefined;
          },
          { timeoutMs: 30_000, intervalMs: 100 },
        );
        log(`VIP moved from ${name} to ${holder}`);
      }
    });
  }
  if (inGroup('rabbitmq') && (await host.daemonPid('rabbitmq')) !== undefined) {
    await p.run(`move ${name}'s quorum queue replicas away and take its RabbitMQ node out`, async () => {
      const node = rabbitNode(spec);
      const via = hostsFor(after, 'rabbitmq')[0] as HostSpec;
      const viaHost = conn.hosts.get(via.name) as Host;
      const vt = rabbitTarget(dep, conn.roots, via);
      const out = await shrinkQuorumQueues(viaHost, vt, node);
      log(out.trim().split('\n').slice(-3).join(' | '));
      const still = (await quorumQueues(viaHost, vt))
        .filter((q) => q.members.includes(node))
        .map((q) => q.name);
      if (still.length > 0)
        throw new Error(`quorum queues still have a replica on ${node}: ${still.join(', ')}`);
      // Maintenance mode closes its client connections (they reconnect to the other brokers) before it stops.
      const t = rabbitTarget(dep, conn.roots, spec);
      const drained = await rabbitTool(host, t, 'rabbitmq-upgrade', ['drain'], 130_000);
      if (drained.code !== 0) log(`rabbitmq-upgrade drain on ${name} failed: ${drained.stderr.trim()}`);
      await host.stopDaemon('rabbitmq', { timeoutMs: 60_000 });
      await host.stopDaemon('epmd', { timeoutMs: 20_000 });
      await forgetClusterNode(viaHost, vt, node);
      log(`${node} left the cluster (forget_cluster_node through ${via.name})`);
    });
  }
  if (inGroup('mariadb') && (await host.daemonPid('mariadb')) !== undefined) {
    await p.run(`stop the Galera node on ${name} cleanly`, async () => {
      await host.stopDaemon('mariadb', { timeoutMs: 120_000 });
      await host.stopDaemon('galera-health', { timeoutMs: 20_000 });
      const size = hostsFor(after, 'mariadb').length;
      const first = hostsFor(after, 'mariadb')[0] as HostSpec;
      await waitFor(
        `the Galera cluster to be ${size} nodes`,
        async () => {
          const s = await galeraNodeStatus(
            conn.hosts.get(first.name) as Host,
            conn.roots.get(first.name) ?? '',
          );
          return s.clusterSize === size && s.clusterStatus === 'Primary' ? true : undefined;
        },
        { timeoutMs: 60_000, intervalMs: 500 },
      );
    });
  }
  await p.run('update every other host (peer lists, HAProxy servers, keepalived peers)', async () => {
    await deploy(after, { renderer: 'silent', log });
  });
  await p.run(`stop what still runs on ${name} and wipe its cluster state and keys`, async () => {
    for (const d of HOST_DAEMONS) {
      if ((await host.daemonPid(d.name)) === undefined) continue;
      await host.stopDaemon(d.name, { timeoutMs: d.timeoutMs, ...(d.signal ? { signal: d.signal } : {}) });
      log(`${d.name} on ${name}: stopped`);
    }
    // Forgotten by the cluster: a node keeping its old membership could not join again; keys are secrets.
    for (const path of [RABBITMQ_MNESIA, FERNET_KEYS_DIR, CREDENTIAL_KEYS_DIR, '/var/lib/stackha/applied'])
      await host.remove(path);
  });
  await p.run(`remove ${name} from ${multinodePath}`, async () => {
    writeFileSync(`${multinodePath}.stackha-backup`, multinode);
    writeFileSync(multinodePath, edited.text);
    log(
      `${multinodePath}: ${edited.removed} line(s) naming ${name} removed (previous version in .stackha-backup)`,
    );
  });
  await p.run('wait until the cluster is whole', () => waitWhole(after));
  return {
    operation: 'remove',
    host: name,
    seconds: (Date.now() - started) / 1000,
    phases: p.done,
    warnings: check.warnings,
    deployment: after,
  };
}

export function formatScaleReport(r: ScaleReport): string {
  const lines = [`${r.operation === 'add' ? 'added' : 'removed'} ${r.host} in ${r.seconds.toFixed(1)} s`];
  for (const ph of r.phases) lines.push(`  ${ph.seconds.toFixed(1).padStart(6)} s  ${ph.name}`);
  for (const w of r.warnings) lines.push(`warning: ${w}`);
  return lines.join('\n');
}
