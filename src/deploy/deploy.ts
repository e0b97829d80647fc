import { Listr } from 'listr2';
import { type ConnectOptions, type Connection, connect } from '../hosts/connect.js';
import type { Deployment } from '../model.js';
import type { RuntimeImage } from '../runtime/image.js';
import { deployerRuntime } from '../runtime/runtime.js';
import { requireRuntimes } from '../runtime/ship.js';
import type { ServiceDeclaration } from '../services/contract.js';
import { deployedServices, isDeployed } from '../services/registry.js';
import type { DeployContext, ServiceResult } from '../services/types.js';
import { convergeLoadBalancers, drainingHosts } from './drain.js';

export { loadBalancedServices } from '../services/registry.js';

export interface Step {
  readonly title: string;
  readonly service: ServiceDeclaration;
  readonly run: (ctx: DeployContext) => Promise<readonly ServiceResult[]>;
}

/** The plan: every deployed service's deploy, in the registry's order (src/services/registry.ts says why). */
export function deploySteps(dep: Deployment): Step[] {
  return deployedServices(dep).map((service) => ({
    title: service.title,
    service,
    run: async (ctx) => {
      const r = await service.deploy(ctx);
      return Array.isArray(r) ? r : [r as ServiceResult];
    },
  }));
}

export interface DeployReport {
  readonly results: readonly ServiceResult[];
  /** How long each service's step took, by service name. */
  readonly stepSeconds: Readonly<Record<string, number>>;
  readonly changed: boolean;
  readonly seconds: number;
}

export function summarize(
  results: readonly ServiceResult[],
  seconds?: Readonly<Record<string, number>>,
): string {
  return results
    .map((r) => {
      const byOutcome = new Map<string, string[]>();
      for (const [host, o] of Object.entries(r.outcomes))
        byOutcome.set(o, [...(byOutcome.get(o) ?? []), host]);
      const took = seconds?.[r.service];
      return `${r.service}: ${[...byOutcome].map(([o, hs]) => `${o} ${hs.join(',')}`).join('; ')}${took === undefined ? '' : ` (${took.toFixed(1)} s)`}`;
    })
    .join('\n');
}

export interface DeployOptions {
  readonly renderer?: 'default' | 'simple' | 'silent';
  /** Reorders or trims the plan (`stackha scale add` brings API services up before HAProxy lists them). */
  readonly steps?: (steps: Step[]) => Step[];
  /** Receives every progress line as well (the listr renderer shows only the latest). */
  readonly log?: (message: string) => void;
  /** The hosts to deploy to (default: connect to the inventory's); tests hand fake ones in. */
  readonly connection?: Connection;
  /** How connect() reaches SSH hosts (the CLI's --known-hosts, --accept-new-host-keys). */
  readonly connectOptions?: ConnectOptions;
  /** The runtime the SSH hosts must have (default: this deployer's); tests hand another in. */
  readonly runtime?: () => RuntimeImage;
}

export async function deploy(dep: Deployment, opts: DeployOptions = {}): Promise<DeployReport> {
  const started = Date.now();
  const conn = opts.connection ?? (await connect(dep, opts.connectOptions));
  // Before anything changes anywhere: every SSH host that runs an agent can run this deployer's (bootstrap-servers
  // ships it; deploy only checks, with one read-only command per host).
  await requireRuntimes(dep, conn.hosts, opts.runtime ?? deployerRuntime);
  const results: ServiceResult[] = [];
  const stepSeconds: Record<string, number> = {};
  const renderer = opts.renderer ?? (process.stdout.isTTY ? 'default' : 'simple');
  const steps = (opts.steps ?? ((s: Step[]) => s))(deploySteps(dep));
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
        hosts: drainingHosts({ dep, hosts: conn.hosts, log }),
        log,
      };
      const t0 = Date.now();
      const rs = await step.run(ctx);
      stepSeconds[step.service.name] = (Date.now() - t0) / 1000;
      results.push(...rs);
      const changed = rs.flatMap((r) =>
        Object.entries(r.outcomes)
          .filter(([, o]) => o !== 'unchanged')
          .map(([h, o]) => [rs.length > 1 ? `${r.service} on ${h}` : h, o] as const),
      );
      task.title = `${step.title}: ${changed.length === 0 ? 'unchanged' : changed.map(([h, o]) => `${h} ${o}`).join(', ')}`;
    },
  }));
  if (isDeployed(dep, 'haproxy')) {
    // Done means clients can use it: every load balancer has every server it was given UP.
    tasks.push({
      title: 'every load balancer sees every server UP',
      task: async (_: unknown, task: { output: string; title: string }) => {
        const log = (m: string): void => {
          task.output = m;
          opts.log?.(m);
        };
        const started = Date.now();
        const putBack = await convergeLoadBalancers({ dep, hosts: conn.hosts, log });
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
  return { results, stepSeconds, changed, seconds: (Date.now() - started) / 1000 };
}
