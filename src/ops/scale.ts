// `stackha scale add HOST` and `stackha scale remove [--dead] HOST`: grow and shrink the control plane under load.
// What each service needs when a host joins or leaves is in its declaration (src/services/contract.ts); this module
// orders the steps, records them, and resumes an interrupted removal. See docs/scale.md.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type DeployReport, type Step, deploy } from '../deploy/deploy.js';
import { backendsOf, drainServer } from '../deploy/drain.js';
import { type ConnectOptions, type Connection, connect } from '../hosts/connect.js';
import type { Host } from '../hosts/host.js';
import { removeHostFromMultinode } from '../inventory/lab-inventory.js';
import { CONFIG_FILES, buildDeployment } from '../inventory/load.js';
import type { Deployment, HostSpec } from '../model.js';
import type { HostsContext, ServiceDeclaration } from '../services/contract.js';
import { holdsVip, vipHolders } from '../services/keepalived/keepalived.js';
import { SERVICES, deployedServices } from '../services/registry.js';
import { evenSizeWarning, hostsFor } from '../topology.js';
import { waitFor } from '../util/wait.js';
import { clusterProblems, clusterStatus } from './status.js';

/** Thrown when a scale operation would be unsafe or cannot start; nothing was changed. */
export class ScaleRefused extends Error {
  readonly code = 'ESCALEREFUSED';
}

/** The deployment as it is without `name`: the host gone from the host list, every group and every placement. */
export function withoutHost(dep: Deployment, name: string): Deployment {
  const drop = (m: Readonly<Record<string, readonly string[]>>) =>
    Object.fromEntries(Object.entries(m).map(([k, hs]) => [k, hs.filter((h) => h !== name)]));
  return {
    ...dep,
    hosts: dep.hosts.filter((h) => h.name !== name),
    groups: drop(dep.groups),
    placement: drop(dep.placement),
  };
}

export interface ScaleCheck {
  /** Why the operation must not run; empty when it may. */
  readonly refusals: readonly string[];
  /** What the operator should know (an even cluster size), without refusing. */
  readonly warnings: readonly string[];
}

/** Whether `name` may leave the deployment: no service may drop below its declared safe size. */
export function removalCheck(dep: Deployment, name: string): ScaleCheck {
  if (!dep.hosts.some((h) => h.name === name))
    return { refusals: [`${name} is not a host of the inventory`], warnings: [] };
  const refusals: string[] = [];
  const warnings: string[] = [];
  for (const service of deployedServices(dep)) {
    const rule = service.minHosts;
    const hosts = hostsFor(dep, service.name);
    if (!rule || !hosts.some((h) => h.name === name)) continue;
    const left = hosts.length - 1;
    if (left < rule.min)
      refusals.push(
        `${service.name}: removing ${name} leaves ${left} (at least ${rule.min} needed): ${rule.why(left)}`,
      );
    else if (rule.quorum && left % 2 === 0) warnings.push(evenSizeWarning(service.name, left));
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
  for (const service of deployedServices(dep)) {
    const hosts = hostsFor(dep, service.name);
    if (service.minHosts?.quorum && hosts.some((h) => h.name === name) && hosts.length % 2 === 0)
      warnings.push(evenSizeWarning(service.name, hosts.length));
  }
  return { refusals: [], warnings };
}

/**
 * The deploy plan for `scale add`: the API services move before the load balancer, so the new host's APIs answer
 * their health checks before any load balancer lists them. Its database node is Synced and its health endpoint up
 * before that too (their steps come first anyway).
 */
export function scaleAddSteps(steps: Step[]): Step[] {
  const api = steps.filter((s) => s.service.tier === 'api');
  const rest = steps.filter((s) => s.service.tier !== 'api');
  const lb = rest.findIndex((s) => s.service.tier === 'loadbalancer' || s.service.tier === 'vip');
  if (lb < 0) return steps;
  return [...rest.slice(0, lb), ...api, ...rest.slice(lb)];
}

export interface ScalePhase {
  readonly name: string;
  readonly seconds: number;
  /** Done by an earlier, interrupted run: skipped. */
  readonly resumed?: boolean;
}

export interface ScaleReport {
  readonly operation: 'add' | 'remove' | 'remove --dead';
  readonly host: string;
  readonly seconds: number;
  readonly phases: readonly ScalePhase[];
  readonly warnings: readonly string[];
  /** The deployment after the operation: what status should now find whole. */
  readonly deployment: Deployment;
}

export interface ScaleOptions {
  readonly log?: (message: string) => void;
  /** The hosts (default: connect to the inventory's); tests hand fake ones in. */
  readonly connection?: Connection;
  /** How connect() reaches SSH hosts (the CLI's --known-hosts, --accept-new-host-keys). */
  readonly connectOptions?: ConnectOptions;
}

/** Where a removal records the phases it finished, so a re-run resumes after the last one. */
export function journalPath(dep: Pick<Deployment, 'configDir'>, host: string, dead: boolean): string {
  return join(dep.configDir, '.stackha', `scale-remove${dead ? '-dead' : ''}-${host}.json`);
}

interface Journal {
  readonly host: string;
  readonly startedAt: string;
  readonly done: string[];
}

function readJournal(path: string): Journal | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Journal;
  } catch {
    return undefined;
  }
}

/**
 * Named phases, each timed and logged; with a journal, each one done is recorded at once, and one an earlier run
 * recorded is skipped.
 */
function phases(log: (m: string) => void, journal?: { path: string; state: Journal }) {
  const done: ScalePhase[] = [];
  return {
    done,
    async run<T>(name: string, fn: () => Promise<T>): Promise<T | undefined> {
      if (journal?.state.done.includes(name)) {
        log(`${name}: done by an earlier run, skipped`);
        done.push({ name, seconds: 0, resumed: true });
        return undefined;
      }
      const started = Date.now();
      log(`${name} ...`);
      const r = await fn();
      const seconds = (Date.now() - started) / 1000;
      done.push({ name, seconds });
      if (journal) {
        journal.state.done.push(name);
        writeFileSync(journal.path, `${JSON.stringify(journal.state, null, 2)}\n`);
      }
      log(`${name}: done in ${seconds.toFixed(1)} s`);
      return r;
    },
  };
}

async function requireWhole(dep: Deployment, what: string, conn?: Connection): Promise<void> {
  const problems = clusterProblems(dep, await clusterStatus(dep, conn));
  if (problems.length > 0)
    throw new ScaleRefused(
      `${what}: the cluster is not whole, fix that first (\`stackha status\`, \`stackha deploy\`):\n  ${problems.join('\n  ')}`,
    );
}

async function waitWhole(dep: Deployment, conn?: Connection, timeoutMs = 180_000): Promise<void> {
  let last: string[] = [];
  await waitFor(
    'the cluster to be whole',
    async () => {
      last = clusterProblems(dep, await clusterStatus(dep, conn));
      return last.length === 0 ? true : undefined;
    },
    { timeoutMs, intervalMs: 2000 },
  ).catch(() => {
    throw new Error(`the cluster is not whole after the change:\n  ${last.join('\n  ')}`);
  });
}

const runsOn = (dep: Deployment, s: ServiceDeclaration, host: string): boolean =>
  hostsFor(dep, s.name).some((h) => h.name === host);

/**
 * `stackha scale add HOST`: the host is in the inventory (`dep`) but not yet in the running cluster. It gets every
 * service through the normal deploy plan, with the API services brought up before HAProxy lists them; every other
 * host's peer lists are rewritten (Galera and RabbitMQ without a restart, HAProxy and keepalived reloaded, API
 * services restarted one host at a time, drained first); then each service finishes its join (RabbitMQ: the new
 * node becomes a member of every quorum queue).
 */
export async function scaleAdd(dep: Deployment, name: string, opts: ScaleOptions = {}): Promise<ScaleReport> {
  const log = opts.log ?? (() => {});
  const started = Date.now();
  const check = additionCheck(dep, name);
  if (check.refusals.length > 0) throw new ScaleRefused(check.refusals.join('\n'));
  for (const w of check.warnings) log(`warning: ${w}`);
  const conn = opts.connection ?? (await connect(dep, opts.connectOptions));
  const host = conn.hosts.get(name) as Host;
  const reach = await host.exec(['true'], { timeoutMs: 10_000 });
  if (reach.code !== 0) throw new ScaleRefused(`${name} is not reachable: ${reach.stderr.trim()}`);
  const before = withoutHost(dep, name);
  const p = phases(log);
  await p.run('check the cluster is whole', async () => {
    // Whole without the host, or already whole with it (a re-run that finishes an interrupted add).
    if (clusterProblems(dep, await clusterStatus(dep, conn)).length === 0)
      log(`${name} is in every cluster already`);
    else await requireWhole(before, `adding ${name}`, conn);
  });
  let report: DeployReport | undefined;
  await p.run(`deploy ${name} and update every peer list`, async () => {
    report = await deploy(dep, { renderer: 'silent', steps: scaleAddSteps, log, connection: conn });
  });
  for (const r of report?.results ?? [])
    log(
      `  ${r.service}: ${Object.entries(r.outcomes)
        .map(([h, o]) => `${h} ${o}`)
        .join(', ')}`,
    );
  const spec = dep.hosts.find((h) => h.name === name) as HostSpec;
  const ctx: HostsContext = { dep, hosts: conn.hosts, log };
  for (const service of deployedServices(dep))
    if (service.afterJoin && runsOn(dep, service, name))
      await p.run(
        `${service.name}: finish ${name}'s join`,
        () => service.afterJoin?.(ctx, spec) ?? Promise.resolve(),
      );
  await p.run('wait until the cluster is whole', () => waitWhole(dep, conn));
  return {
    operation: 'add',
    host: name,
    seconds: (Date.now() - started) / 1000,
    phases: p.done,
    warnings: check.warnings,
    deployment: dep,
  };
}

/** Every daemon any service may run on a host, in the order a leaving host stops them (the plan reversed). */
export function hostDaemons(dep: Deployment): { name: string; signal?: NodeJS.Signals; timeoutMs: number }[] {
  return [...SERVICES]
    .reverse()
    .flatMap((s) => [...s.daemons(dep)].reverse())
    .map((d) => ({
      name: d.name,
      timeoutMs: d.stopTimeoutMs,
      ...(d.stopSignal ? { signal: d.stopSignal } : {}),
    }));
}

/** The inventory without the host, checked: the edited multinode must really no longer list it. */
function editedInventory(
  dep: Deployment,
  name: string,
): { path: string; text: string; edited: string; removed: number } {
  const path = join(dep.configDir, CONFIG_FILES.multinode);
  const text = readFileSync(path, 'utf8');
  const edited = removeHostFromMultinode(text, name);
  const reread = buildDeployment(
    {
      multinode: edited.text,
      globals: readFileSync(join(dep.configDir, CONFIG_FILES.globals), 'utf8'),
      passwords: readFileSync(join(dep.configDir, CONFIG_FILES.passwords), 'utf8'),
    },
    dep.configDir,
    { allowSingle: true },
  );
  if (reread.hosts.some((h) => h.name === name))
    throw new ScaleRefused(
      `${name} is listed in ${path} through a pattern stackha cannot edit: list it on its own line`,
    );
  return { path, text, edited: edited.text, removed: edited.removed };
}

/**
 * `stackha scale remove HOST` (gracefully) and `stackha scale remove --dead HOST` (a host that crashed and will not come
 * back). Graceful: the host is drained from every HAProxy backend, the VIP moves away if it holds it, each service
 * takes its part out of its cluster (RabbitMQ: replicas moved, node drained, stopped and forgotten; Galera: stopped
 * cleanly), every other host's peer lists are rewritten (Galera and RabbitMQ without a restart), its last daemons
 * stop, its data, cluster state and keys are wiped, and it is removed from the inventory. Dead: nothing is asked of
 * the host; each cluster forgets it through the hosts that remain (RabbitMQ's forget_cluster_node), the others' peer
 * lists, HAProxy servers, keepalived peers and memcached lists are rewritten, and the inventory edited.
 *
 * Each phase is recorded as it finishes (<config dir>/.stackha/): an interrupted removal run again resumes after the
 * last phase done, without asking for a whole cluster first.
 */
export async function scaleRemove(
  dep: Deployment,
  name: string,
  opts: ScaleOptions & { dead?: boolean } = {},
): Promise<ScaleReport> {
  const log = opts.log ?? (() => {});
  const started = Date.now();
  const dead = opts.dead === true;
  const jpath = journalPath(dep, name, dead);
  const previous = readJournal(jpath);
  // A resumed removal may already have taken the host out of the inventory: finish the rest from the journal.
  const inInventory = dep.hosts.some((h) => h.name === name);
  if (!inInventory && !previous)
    throw new ScaleRefused(`not removing ${name}: ${name} is not a host of the inventory`);
  const check = inInventory ? removalCheck(dep, name) : { refusals: [], warnings: [] };
  const warnings = [...check.warnings];
  if (check.refusals.length > 0) {
    // A dead host is gone already: refusing would keep a dead member in every cluster. Say what that leaves.
    if (!dead) throw new ScaleRefused(`not removing ${name}:\n  ${check.refusals.join('\n  ')}`);
    warnings.push(...check.refusals.map((r) => `below the safe size: ${r}; add a host soon`));
  }
  for (const w of warnings) log(`warning: ${w}`);
  const after = inInventory ? withoutHost(dep, name) : dep;
  const inventory = inInventory ? editedInventory(dep, name) : undefined;
  const conn = opts.connection ?? (await connect(inInventory ? dep : after, opts.connectOptions));
  const host = conn.hosts.get(name);
  const spec = dep.hosts.find((h) => h.name === name);
  const ctx: HostsContext = { dep, hosts: conn.hosts, log };

  if (!previous) {
    if (dead) {
      // A host that still runs our daemons is not dead: a forced removal would leave a live member behind.
      const alive: string[] = [];
      const reach = host ? await host.exec(['true'], { timeoutMs: 5000 }) : undefined;
      if (host && reach?.code === 0)
        for (const d of hostDaemons(dep))
          if ((await host.daemonPid(d.name)) !== undefined) alive.push(d.name);
      if (alive.length > 0)
        throw new ScaleRefused(
          `not removing ${name} as dead: it still runs ${alive.join(', ')}; remove it gracefully with \`stackha scale remove ${name}\``,
        );
    } else await requireWhole(dep, `removing ${name}`, conn);
    mkdirSync(join(dep.configDir, '.stackha'), { recursive: true });
  }
  const state: Journal = previous ?? { host: name, startedAt: new Date().toISOString(), done: [] };
  if (previous)
    log(`resuming the removal of ${name} started ${previous.startedAt}: ${previous.done.length} phases done`);
  writeFileSync(jpath, `${JSON.stringify(state, null, 2)}\n`);
  const p = phases(log, { path: jpath, state });
  const services = deployedServices(dep).filter((s) => runsOn(dep, s, name));

  if (!dead && host && spec) {
    await p.run(`drain ${name} from every HAProxy backend`, async () => {
      const daemons = services.flatMap((s) => s.daemons(dep).map((d) => d.name));
      const bound = Math.max(
        0,
        ...services.flatMap((s) => s.daemons(dep).map((d) => d.fronted?.drainMs ?? 0)),
      );
      await drainServer(ctx, backendsOf(dep, daemons), name, bound);
    });
    for (const service of services.filter((s) => s.tier === 'vip')) {
      await p.run(`stop ${service.name} on ${name} (the VIP moves if it holds it)`, async () => {
        const held = await holdsVip(host, dep);
        // SIGTERM: keepalived sends a priority-0 advert, so a backup takes over at once.
        for (const d of [...service.daemons(dep)].reverse())
          await host.stopDaemon(d.name, { timeoutMs: d.stopTimeoutMs });
        if (held) {
          const holder = await waitFor(
            'another host to hold the VIP',
            async () => {
              const hs = await vipHolders({ dep: after, hosts: conn.hosts });
              return hs.length === 1 && !(await holdsVip(host, dep)) ? hs[0] : undefined;
            },
            { timeoutMs: 30_000, intervalMs: 100 },
          );
          log(`VIP moved from ${name} to ${holder}`);
        }
      });
    }
    // Quorum clusters first (RabbitMQ before Galera: plan order reversed), each leaving while the others still run.
    for (const service of [...services].reverse().filter((s) => s.beforeLeave))
      await p.run(
        `${service.name}: take ${name} out of the cluster`,
        () => service.beforeLeave?.(ctx, spec, after) ?? Promise.resolve(),
      );
  }
  if (dead && spec) {
    const remaining: HostsContext = { ...ctx, dep: after };
    for (const service of [...services].reverse().filter((s) => s.forgetDead))
      await p.run(
        `${service.name}: forget ${name}`,
        () => service.forgetDead?.(remaining, spec, after) ?? Promise.resolve(),
      );
  }
  await p.run(
    'update every other host (peer lists, HAProxy servers, keepalived peers, memcached lists)',
    async () => {
      await deploy(after, { renderer: 'silent', log, connection: conn });
    },
  );
  if (!dead && host) {
    await p.run(`stop what still runs on ${name} and wipe its data, cluster state and keys`, async () => {
      for (const d of hostDaemons(dep)) {
        if ((await host.daemonPid(d.name)) === undefined) continue;
        await host.stopDaemon(d.name, { timeoutMs: d.timeoutMs, ...(d.signal ? { signal: d.signal } : {}) });
        log(`${d.name} on ${name}: stopped`);
      }
      for (const path of [...services.flatMap((s) => s.removal ?? []), '/var/lib/stackha/applied'])
        await host.remove(path);
    });
  }
  if (inventory) {
    await p.run(`remove ${name} from ${inventory.path}`, async () => {
      writeFileSync(`${inventory.path}.stackha-backup`, inventory.text);
      writeFileSync(inventory.path, inventory.edited);
      log(
        `${inventory.path}: ${inventory.removed} line(s) naming ${name} removed (previous version in .stackha-backup)`,
      );
    });
  }
  await p.run('wait until the cluster is whole', () => waitWhole(after, conn));
  if (existsSync(jpath)) rmSync(jpath);
  return {
    operation: dead ? 'remove --dead' : 'remove',
    host: name,
    seconds: (Date.now() - started) / 1000,
    phases: p.done,
    warnings,
    deployment: after,
  };
}

export function formatScaleReport(r: ScaleReport): string {
  const verb = r.operation === 'add' ? 'added' : r.operation === 'remove' ? 'removed' : 'removed (dead)';
  const lines = [`${verb} ${r.host} in ${r.seconds.toFixed(1)} s`];
  for (const ph of r.phases)
    lines.push(
      `  ${ph.seconds.toFixed(1).padStart(6)} s  ${ph.name}${ph.resumed ? ' (done by an earlier run)' : ''}`,
    );
  for (const w of r.warnings) lines.push(`warning: ${w}`);
  return lines.join('\n');
}
