import { Listr } from 'listr2';
import { connect } from '../hosts/connect.js';
import type { Deployment } from '../model.js';
import { deployGalera, deployGaleraHealth } from '../services/galera.js';
import { type LoadBalancedService, deployHaproxy, infraLoadBalancedServices } from '../services/haproxy.js';
import { deployKeepalived } from '../services/keepalived.js';
import { deployKeystone, keystoneEnabled, keystoneLoadBalanced } from '../services/keystone.js';
import { deployMemcached } from '../services/memcached.js';
import { deployProbeApi, probeApiEnabled, probeApiLoadBalanced } from '../services/probe-api.js';
import { deployRabbitmq } from '../services/rabbitmq.js';
import type { DeployContext, ServiceResult } from '../services/types.js';
import { builtScript } from '../util/paths.js';
import { convergeLoadBalancers, drainingHosts } from './drain.js';

/** The command that runs the Galera health agent on a host (this installation's node and script). */
export function galeraHealthAgent(): string[] {
  return [process.execPath, builtScript('agents/galera-health.js')];
}

export interface Step {
  readonly title: string;
  readonly enabled: (dep: Deployment) => boolean;
  readonly run: (ctx: DeployContext) => Promise<ServiceResult>;
}

/** Every frontend/backend HAProxy serves on the VIP: the infrastructure's, the lab's probe API, the API services. */
export function loadBalancedServices(dep: Deployment): LoadBalancedService[] {
  return [...infraLoadBalancedServices(dep), ...probeApiLoadBalanced(dep), ...keystoneLoadBalanced(dep)];
}

/** The command that runs the lab's probe API on a host. */
export function probeApiAgent(): string[] {
  return [process.execPath, builtScript('agents/probe-api.js')];
}

/**
 * The plan, in dependency order: memcached and the database first, the message bus, then the load balancer
 * (whose Galera check needs the health endpoints), the VIP (whose track script needs HAProxy), then the OpenStack
 * APIs, whose databases are reached through HAProxy on the VIP.
 */
export function deploySteps(): Step[] {
  const agent = galeraHealthAgent();
  return [
    { title: 'memcached', enabled: (d) => d.globals.enabled.memcached, run: deployMemcached },
    { title: 'mariadb (Galera)', enabled: (d) => d.globals.enabled.mariadb, run: (c) => deployGalera(c) },
    {
      title: 'galera health endpoint',
      enabled: (d) => d.globals.enabled.mariadb,
      run: (c) => deployGaleraHealth(c, agent),
    },
    { title: 'rabbitmq', enabled: (d) => d.globals.enabled.rabbitmq, run: deployRabbitmq },
    {
      title: 'probe API (lab stand-in for OpenStack APIs)',
      enabled: probeApiEnabled,
      run: (c) => deployProbeApi(c, probeApiAgent()),
    },
    {
      title: 'haproxy',
      enabled: (d) => d.globals.enabled.haproxy,
      run: (c) => deployHaproxy(c, loadBalancedServices(c.dep)),
    },
    { title: 'keepalived', enabled: (d) => d.globals.enabled.keepalived, run: deployKeepalived },
    // After HAProxy and the VIP: Keystone reaches its database through them.
    { title: 'keystone', enabled: keystoneEnabled, run: deployKeystone },
  ];
}

export interface DeployReport {
  readonly results: readonly ServiceResult[];
  readonly changed: boolean;
  readonly seconds: number;
}

export function summarize(results: readonly ServiceResult[]): string {
  return results
    .map((r) => {
      const byOutcome = new Map<string, string[]>();
      for (const [host, o] of Object.entries(r.outcomes))
        byOutcome.set(o, [...(byOutcome.get(o) ?? []), host]);
      return `${r.service}: ${[...byOutcome].map(([o, hs]) => `${o} ${hs.join(',')}`).join('; ')}`;
    })
    .join('\n');
}

export interface DeployOptions {
  readonly renderer?: 'default' | 'simple' | 'silent';
  /** Reorders or trims the plan (`stackha scale add` brings API services up before HAProxy lists them). */
  readonly steps?: (steps: Step[]) => Step[];
  /** Receives every progress line as well (the listr renderer shows only the latest). */
  readonly log?: (message: string) => void;
}

export async function deploy(dep: Deployment, opts: DeployOptions = {}): Promise<DeployReport> {
  const started = Date.now();
  const conn = connect(dep);
  const results: ServiceResult[] = [];
  const renderer = opts.renderer ?? (process.stdout.isTTY ? 'default' : 'simple');
  const steps = (opts.steps ?? ((s: Step[]) => s))(deploySteps()).filter((s) => s.enabled(dep));
  const tasks = steps.map((step) => ({
    title: step.title,
    task: async (_: unknown, task: { output: string; title: string }) => {
      const log = (m: string): void => {
        task.output = m;
        opts.log?.(m);
      };
      // A daemon behind HAProxy that restarts is drained from every load balancer first (src/deploy/drain.ts).
      const ctx: DeployContext = {
        dep,
        hosts: drainingHosts({ dep, hosts: conn.hosts, roots: conn.roots, log }),
        roots: conn.roots,
        log,
      };
      const r = await step.run(ctx);
      results.push(r);
      const changed = Object.entries(r.outcomes).filter(([, o]) => o !== 'unchanged');
      task.title = `${step.title}: ${changed.length === 0 ? 'unchanged' : changed.map(([h, o]) => `${h} ${o}`).join(', ')}`;
    },
  }));
  if (dep.globals.enabled.haproxy) {
    // Done means clients can use it: every load balancer has every server it was given UP.
    tasks.push({
      title: 'every load balancer sees every server UP',
      task: async (_: unknown, task: { output: string; title: string }) => {
        const log = (m: string): void => {
          task.output = m;
          opts.log?.(m);
        };
        const started = Date.now();
        const putBack = await convergeLoadBalancers({ dep, hosts: conn.hosts, roots: conn.roots, log });
        task.title = `every load balancer sees every server UP (${((Date.now() - started) / 1000).toFixed(1)} s${putBack.length > 0 ? `; put back ${putBack.join(', ')}` : ''})`;
      },
    });
  }
  const list = new Listr(tasks, {
    concurrent: false,
    exitOnError: true,
    renderer,
    fallbackRenderer: 'simple',
    rendererOptions: { collapseSubtasks: false },
  });
  await list.run();
  const changed = results.some((r) => Object.values(r.outcomes).some((o) => o !== 'unchanged'));
  return { results, changed, seconds: (Date.now() - started) / 1000 };
}
