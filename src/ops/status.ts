// `stackha status`: each deployed service's own part (its declaration's status probe), the VIP holder and the Galera
// writer every load balancer picked, and every problem an operator must act on.
import { type Connection, connect } from '../hosts/connect.js';
import type { Deployment } from '../model.js';
import type { HostsContext, ServiceStatus } from '../services/contract.js';
import type { HaproxyStatusData } from '../services/haproxy/haproxy.js';
import type { KeepalivedStatusData } from '../services/keepalived/keepalived.js';
import type { GaleraStatusData } from '../services/mariadb/galera.js';
import type { RabbitClusterStatus } from '../services/rabbitmq/rabbitmq.js';
import { deployedServices } from '../services/registry.js';

export interface ClusterStatus {
  readonly vip: string;
  readonly vipHolders: readonly string[];
  /** The Galera server each HAProxy sends new connections to, by loadbalancer host. */
  readonly galeraWriter: Readonly<Record<string, string | undefined>>;
  /** Every deployed service's status, in plan order. */
  readonly services: readonly ServiceStatus[];
}

/** One service's status data (undefined when the service is not deployed). */
export function statusOf<T>(s: ClusterStatus, service: string): T | undefined {
  return s.services.find((x) => x.service === service)?.data as T | undefined;
}

export const galeraNodesOf = (s: ClusterStatus) => statusOf<GaleraStatusData>(s, 'mariadb')?.nodes ?? [];
export const rabbitNodesOf = (s: ClusterStatus) => statusOf<RabbitClusterStatus[]>(s, 'rabbitmq') ?? [];
export const haproxyOf = (s: ClusterStatus) => statusOf<HaproxyStatusData[]>(s, 'haproxy') ?? [];

/** Every deployed service's status through an open connection (a status probe never throws: it reports). */
export async function statusWith(ctx: HostsContext): Promise<ClusterStatus> {
  const services = await Promise.all(
    deployedServices(ctx.dep).flatMap((s) => (s.status ? [s.status(ctx)] : [])),
  );
  const keepalived = services.find((x) => x.service === 'keepalived')?.data as
    | KeepalivedStatusData[]
    | undefined;
  const galera = services.find((x) => x.service === 'mariadb')?.data as GaleraStatusData | undefined;
  return {
    vip: ctx.dep.globals.internalVip,
    vipHolders: (keepalived ?? []).filter((k) => k.holdsVip).map((k) => k.host),
    galeraWriter: galera?.writer ?? {},
    services,
  };
}

export async function clusterStatus(dep: Deployment, connection?: Connection): Promise<ClusterStatus> {
  const { hosts } = connection ?? (await connect(dep));
  return statusWith({ dep, hosts, log: () => {} });
}

/** Problems an operator must act on; empty when the cluster is whole. */
export function clusterProblems(_dep: Deployment, s: ClusterStatus): string[] {
  return s.services.flatMap((x) => x.problems);
}

export function formatStatus(dep: Deployment, s: ClusterStatus): string {
  const out: string[] = [];
  out.push(`VIP ${s.vip}: held by ${s.vipHolders.length ? s.vipHolders.join(', ') : 'nobody'}`);
  for (const x of s.services) out.push('', ...x.lines);
  const problems = clusterProblems(dep, s);
  out.push(
    '',
    problems.length === 0 ? 'OK: every service is whole' : `PROBLEMS:\n  ${problems.join('\n  ')}`,
  );
  return out.join('\n');
}
