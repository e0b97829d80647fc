import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { addHostToMultinode } from '../inventory/lab-inventory.js';
import { CONFIG_FILES, loadDeployment } from '../inventory/load.js';
import { crashHost, labAddHost, powerOnHost, setLink } from '../lab/lab.js';
import { rollingRestart } from '../ops/rolling.js';
import { type ScaleReport, removalCheck, scaleAdd, scaleRemove } from '../ops/scale.js';
import { clusterStatus } from '../ops/status.js';
import { keystoneHosts } from '../services/keystone.js';
import { rabbitmqctl } from '../services/rabbitmq.js';
import { hostsFor } from '../topology.js';
import { withProfile } from '../tuning.js';
import { sleep, waitFor } from '../util/wait.js';
import { CHAOS_QUEUE, type ChaosContext, type Scenario } from './run.js';

async function vipHolder(ctx: ChaosContext): Promise<string> {
  const s = await clusterStatus(ctx.dep);
  const holder = s.vipHolders[0];
  if (s.vipHolders.length !== 1 || !holder)
    throw new Error(`expected one VIP holder, found ${s.vipHolders.join(',') || 'none'}`);
  return holder;
}

/** The Galera node the VIP holder's HAProxy sends writes to. */
async function galeraWriter(ctx: ChaosContext): Promise<string> {
  const s = await clusterStatus(ctx.dep);
  const holder = s.vipHolders[0];
  const writer = holder ? s.galeraWriter[holder] : undefined;
  if (!writer) throw new Error('no Galera writer behind the VIP');
  return writer;
}

/** The node leading the chaos queue (quorum leader, or the mirrored queue's master). */
async function queueLeader(ctx: ChaosContext): Promise<string> {
  for (const spec of hostsFor(ctx.dep, 'rabbitmq')) {
    const host = ctx.host(spec.name);
    const r = await rabbitmqctl(
      host,
      { host: spec, root: ctx.conn.roots.get(spec.name) ?? '' },
      ['list_queues', 'name', 'type', 'leader', 'pid', '--formatter', 'json'],
      30_000,
    );
    if (r.code !== 0) continue;
    const rows = JSON.parse(r.stdout) as { name: string; leader?: string; pid?: string }[];
    const q = rows.find((x) => x.name === CHAOS_QUEUE);
    // Quorum queues report `leader`; a classic queue's master is the node in its pid, e.g. <rabbit@ctl2.1.2.3>.
    const node = q?.leader || /rabbit@([\w-]+)/.exec(q?.pid ?? '')?.[0];
    if (node) return node.replace('rabbit@', '');
  }
  throw new Error(`no leader found for queue ${CHAOS_QUEUE}`);
}

async function kill(ctx: ChaosContext, host: string, daemon: string): Promise<void> {
  if (!(await ctx.host(host).signalDaemon(daemon, 'SIGKILL')))
    throw new Error(`${daemon} is not running on ${host}`);
}

const restartWhatDied = async (ctx: ChaosContext): Promise<void> => ctx.redeploy();

/** The last scale or rolling operation a scenario ran, by lab: its duration and phases, for reports. */
export interface ScaleOperation {
  readonly operation: string;
  readonly host: string | undefined;
  readonly seconds: number;
  readonly phases: readonly { name: string; seconds: number }[];
}
const lastOperations = new Map<string, ScaleOperation>();
export function lastScaleOperation(lab: string): ScaleOperation | undefined {
  return lastOperations.get(lab);
}

/**
 * Grows the deployment by one host: a lab host the inventory does not list yet, else a new one (`lab add-host`),
 * written into the inventory's [control] and [network] groups, then `stackha scale add`.
 */
async function addHost(ctx: ChaosContext): Promise<ScaleReport> {
  const spare = ctx.lab.hosts.find((h) => !ctx.dep.hosts.some((d) => d.name === h.name));
  const rec = spare ?? (await labAddHost(ctx.lab.name)).host;
  const path = join(ctx.dep.configDir, CONFIG_FILES.multinode);
  const text = readFileSync(path, 'utf8');
  const next = addHostToMultinode(text, rec.name, rec.address);
  if (next !== text) writeFileSync(path, next);
  // Read back from disk, keeping the profile a comparison run selected.
  const dep = withProfile(loadDeployment(ctx.dep.configDir), ctx.dep.tuning.profile);
  const r = await scaleAdd(dep, rec.name, { log: ctx.log });
  ctx.setDeployment(r.deployment);
  return r;
}

/** The host a remove scenario takes out: the last of the inventory (the one added last). */
function hostToRemove(ctx: ChaosContext): string {
  const last = ctx.dep.hosts.at(-1);
  if (!last) throw new Error('no host to remove');
  return last.name;
}

const recordOperation = (ctx: ChaosContext, op: ScaleOperation): string => {
  lastOperations.set(ctx.lab.name, op);
  return `${op.operation}${op.host ? ` ${op.host}` : ''} in ${op.seconds.toFixed(1)} s`;
};

/** Scale and rolling scenarios (issue 5): the change under load, measured like a fault. */
export const SCALE_SCENARIOS: readonly Scenario[] = [
  {
    name: 'scale-add-under-load',
    description:
      'a host joins every cluster under load (`stackha scale add`), the others’ peer lists updated',
    holdMs: 1000,
    inject: async (ctx) => {
      const r = await addHost(ctx);
      return recordOperation(ctx, {
        operation: 'scale add',
        host: r.host,
        seconds: r.seconds,
        phases: r.phases,
      });
    },
    heal: async () => {},
  },
  {
    name: 'scale-remove-under-load',
    description:
      'the last host leaves every cluster under load (`stackha scale remove`); a 3-host deployment first grows by one',
    holdMs: 1000,
    prepare: async (ctx) => {
      if (removalCheck(ctx.dep, hostToRemove(ctx)).refusals.length > 0) {
        ctx.log('scale-remove-under-load: growing by one host first (before the load), so one can leave');
        await addHost(ctx);
      }
    },
    inject: async (ctx) => {
      const r = await scaleRemove(ctx.dep, hostToRemove(ctx), { log: ctx.log });
      ctx.setDeployment(r.deployment);
      return recordOperation(ctx, {
        operation: 'scale remove',
        host: r.host,
        seconds: r.seconds,
        phases: r.phases,
      });
    },
    heal: async () => {},
  },
  {
    name: 'rolling-restart-under-load',
    description:
      'every service restarted host by host under load (`stackha restart all`): drained, restarted, healthy, back',
    holdMs: 1000,
    inject: async (ctx) => {
      const r = await rollingRestart(ctx.dep, ['all'], { log: ctx.log });
      return recordOperation(ctx, {
        operation: 'restart all',
        host: undefined,
        seconds: r.seconds,
        phases: r.hosts.map((h) => ({ name: `${h.host}: ${h.services.join(', ')}`, seconds: h.seconds })),
      });
    },
    heal: async () => {},
  },
];

export const SCENARIOS: readonly Scenario[] = [
  {
    name: 'baseline',
    description: 'no fault: the figures every other scenario is compared with',
    inject: async () => 'nothing',
    heal: async () => {},
  },
  {
    name: 'galera-writer-dies',
    description: 'kill -9 of the Galera node HAProxy sends writes to; restarted by deploy (IST)',
    inject: async (ctx) => {
      const w = await galeraWriter(ctx);
      await kill(ctx, w, 'mariadb');
      return `mariadb on ${w}`;
    },
    heal: restartWhatDied,
  },
  {
    name: 'galera-nonwriter-dies',
    description: 'kill -9 of a Galera node that takes no writes',
    inject: async (ctx) => {
      const w = await galeraWriter(ctx);
      const other = hostsFor(ctx.dep, 'mariadb').find((h) => h.name !== w);
      if (!other) throw new Error('no non-writer Galera node');
      await kill(ctx, other.name, 'mariadb');
      return `mariadb on ${other.name}`;
    },
    heal: restartWhatDied,
  },
  {
    name: 'rabbitmq-leader-dies',
    description: 'kill -9 of the RabbitMQ node leading the queue under load',
    inject: async (ctx) => {
      const leader = await queueLeader(ctx);
      await kill(ctx, leader, 'rabbitmq');
      return `rabbitmq on ${leader}`;
    },
    heal: restartWhatDied,
  },
  {
    name: 'haproxy-vip-holder-dies',
    description: 'kill -9 of HAProxy on the host holding the VIP: keepalived moves the VIP',
    inject: async (ctx) => {
      const holder = await vipHolder(ctx);
      await kill(ctx, holder, 'haproxy');
      return `haproxy on ${holder}`;
    },
    heal: restartWhatDied,
  },
  {
    name: 'vip-holder-host-crash',
    description: 'the VIP holder loses power: every process killed, link down; powered on and redeployed',
    inject: async (ctx) => {
      const holder = await vipHolder(ctx);
      await crashHost(ctx.lab, holder);
      crashed.set(ctx.lab.name, holder);
      return `host ${holder}`;
    },
    heal: async (ctx) => {
      const host = crashed.get(ctx.lab.name);
      if (host) await powerOnHost(ctx.lab, host);
      crashed.delete(ctx.lab.name);
      await ctx.redeploy();
    },
  },
  {
    name: 'host-partition',
    description: 'the VIP holder is cut off the network for 30 s, then returns',
    holdMs: 30_000,
    inject: async (ctx) => {
      const holder = await vipHolder(ctx);
      await setLink(ctx.lab, holder, false);
      crashed.set(ctx.lab.name, holder);
      return `host ${holder} cut off`;
    },
    heal: async (ctx) => {
      const host = crashed.get(ctx.lab.name);
      if (host) await setLink(ctx.lab, host, true);
      crashed.delete(ctx.lab.name);
      // pause_minority resumes the cut-off RabbitMQ node by itself; deploy restarts anything that died meanwhile.
      await sleep(5000);
      await ctx.redeploy();
    },
  },
  {
    name: 'galera-power-loss',
    description: 'every Galera node killed at once; `stackha recover galera` bootstraps the most advanced',
    holdMs: 5000,
    inject: async (ctx) => {
      const dbs = hostsFor(ctx.dep, 'mariadb');
      await Promise.all(dbs.map((h) => kill(ctx, h.name, 'mariadb')));
      return `mariadb on ${dbs.map((h) => h.name).join(', ')}`;
    },
    heal: async (ctx) => {
      // Wait until every node is really gone before recovering their positions.
      await waitFor(
        'every mariadbd to exit',
        async () => {
          for (const h of hostsFor(ctx.dep, 'mariadb'))
            if (await ctx.host(h.name).daemonPid('mariadb')) return undefined;
          return true;
        },
        { timeoutMs: 30_000 },
      );
      const { recoverGalera } = await import('../ops/recover.js');
      const r = await recoverGalera(ctx.dep, ctx.conn.hosts, ctx.conn.roots, { log: ctx.log });
      ctx.log(`recover galera: bootstrapped ${r.chosen} (${r.reason})`);
      await ctx.redeploy();
    },
  },
  {
    name: 'keystone-dies-on-one-host',
    description:
      'kill -9 of Keystone (uwsgi and its workers) on a host not holding the VIP; HAProxy drops it, deploy restarts it',
    inject: async (ctx) => {
      const hosts = keystoneHosts(ctx.dep);
      if (hosts.length === 0) throw new Error('Keystone is not deployed (enable_keystone)');
      const holder = await vipHolder(ctx);
      const victim = hosts.find((h) => h.name !== holder) ?? hosts[0];
      if (!victim) throw new Error('no Keystone host');
      await kill(ctx, victim.name, 'keystone');
      return `keystone on ${victim.name}`;
    },
    heal: restartWhatDied,
  },
  {
    name: 'killed-service-rejoins',
    description:
      'a RabbitMQ node that does not lead the queue and a memcached are killed, restarted, and rejoin',
    inject: async (ctx) => {
      const leader = await queueLeader(ctx);
      const other = hostsFor(ctx.dep, 'rabbitmq').find((h) => h.name !== leader);
      if (!other) throw new Error('no non-leader RabbitMQ node');
      const mc = hostsFor(ctx.dep, 'memcached').find((h) => h.name !== other.name) ?? other;
      await kill(ctx, other.name, 'rabbitmq');
      await kill(ctx, mc.name, 'memcached');
      return `rabbitmq on ${other.name}, memcached on ${mc.name}`;
    },
    heal: restartWhatDied,
  },
  // Issue 5, last: growing, shrinking back and restarting leave the deployment as they found it.
  ...SCALE_SCENARIOS,
];

/** Hosts a scenario took down, by lab, so its heal can bring them back. */
const crashed = new Map<string, string>();

export function scenarioByName(name: string): Scenario {
  const s = SCENARIOS.find((x) => x.name === name);
  if (!s) throw new Error(`no scenario ${name}; \`stackha chaos list\` shows them`);
  return s;
}
