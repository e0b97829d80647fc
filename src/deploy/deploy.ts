import { Listr } from 'listr2';
import { connect } from '../hosts/connect.js';
import type { Deployment } from '../model.js';
import { deployGalera, deployGaleraHealth } from '../services/galera.js';
import { deployHaproxy, infraLoadBalancedServices } from '../services/haproxy.js';
import { deployKeepalived } from '../services/keepalived.js';
import { deployMemcached } from '../services/memcached.js';
import { deployProbeApi, probeApiEnabled, probeApiLoadBalanced } from '../services/probe-api.js';
import { deployRabbitmq } from '../services/rabbitmq.js';
import type { DeployContext, ServiceResult } from '../services/types.js';
import { builtScript } from '../util/paths.js';

/** The command that runs the Galera health agent on a host (this installation's node and script). */
export function galeraHealthAgent(): string[] {
  return [process.execPath, builtScript('agents/galera-health.js')];
}

interface Step {
  readonly title: string;
  readonly enabled: (dep: Deployment) => boolean;
  readonly run: (ctx: DeployContext) => Promise<ServiceResult>;
}

/**
 * The plan, in dependency order: memcached and the database first, the message bus, then the load balancer
 * (whose Galera check needs the health endpoints) and last the VIP (whose track script needs HAProxy).
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
      run: (c) => deployProbeApi(c, [process.execPath, builtScript('agents/probe-api.js')]),
    },
    {
      title: 'haproxy',
      enabled: (d) => d.globals.enabled.haproxy,
      run: (c) => deployHaproxy(c, [...infraLoadBalancedServices(c.dep), ...probeApiLoadBalanced(c.dep)]),
    },
    { title: 'keepalived', enabled: (d) => d.globals.enabled.keepalived, run: deployKeepalived },
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

export async function deploy(
  dep: Deployment,
  opts: { renderer?: 'default' | 'simple' | 'silent' } = {},
): Promise<DeployReport> {
  const started = Date.now();
  const conn = connect(dep);
  const results: ServiceResult[] = [];
  const renderer = opts.renderer ?? (process.stdout.isTTY ? 'default' : 'simple');
  const steps = deploySteps().filter((s) => s.enabled(dep));
  const list = new Listr(
    steps.map((step) => ({
      title: step.title,
      task: async (_: unknown, task: { output: string; title: string }) => {
        const ctx: DeployContext = {
          dep,
          hosts: conn.hosts,
          roots: conn.roots,
          log: (m) => {
            task.output = m;
          },
        };
        const r = await step.run(ctx);
        results.push(r);
        const changed = Object.entries(r.outcomes).filter(([, o]) => o !== 'unchanged');
        task.title = `${step.title}: ${changed.length === 0 ? 'unchanged' : changed.map(([h, o]) => `${h} ${o}`).join(', ')}`;
      },
    })),
    {
      concurrent: false,
      exitOnError: true,
      renderer,
      fallbackRenderer: 'simple',
      rendererOptions: { collapseSubtasks: false },
    },
  );
  await list.run();
  const changed = results.some((r) => Object.values(r.outcomes).some((o) => o !== 'unchanged'));
  return { results, changed, seconds: (Date.now() - started) / 1000 };
}
