import type { Deployment, HostSpec, Service } from './model.js';

/**
 * The inventory group each service runs on, as kolla-ansible names them. When the inventory does not define
 * the group, the service falls back to `control` (and the load balancer to kolla's pre-Ussuri `haproxy` group, then
 * `network`, then `control`).
 */
const SERVICE_GROUPS: Record<Service, readonly string[]> = {
  mariadb: ['mariadb', 'control'],
  rabbitmq: ['rabbitmq', 'control'],
  memcached: ['memcached', 'control'],
  haproxy: ['loadbalancer', 'haproxy', 'network', 'control'],
  keepalived: ['loadbalancer', 'haproxy', 'network', 'control'],
  keystone: ['keystone', 'control'],
};

export function serviceGroupCandidates(service: Service): readonly string[] {
  return SERVICE_GROUPS[service];
}

/** Hosts a service runs on, in inventory order; empty when the service is disabled. */
export function hostsFor(dep: Deployment, service: Service): HostSpec[] {
  if (!dep.globals.enabled[service]) return [];
  for (const group of SERVICE_GROUPS[service]) {
    const names = dep.groups[group];
    if (names && names.length > 0) return names.map((n) => hostByName(dep, n));
  }
  return [];
}

export function hostByName(dep: Deployment, name: string): HostSpec {
  const host = dep.hosts.find((h) => h.name === name);
  if (!host) throw new Error(`unknown host ${name}`);
  return host;
}

/**
 * The smallest safe size of each clustered service, and why. Galera and RabbitMQ (quorum queues, pause_minority)
 * keep working only while a majority of their members is up: three is the smallest size that survives losing one.
 * The VIP needs a second load balancer to move to. `stackha check` refuses an inventory below these sizes and
 * `stackha scale remove` refuses to go below them.
 */
export const SAFE_SIZES = [
  {
    service: 'mariadb',
    min: 3,
    why: (n: number) =>
      n === 2
        ? 'a Galera cluster of 2 has no quorum to lose: when either node fails, the other is 1 of 2, not a majority, and stops taking writes'
        : 'a single Galera node has no quorum to lose: nothing survives its failure',
  },
  {
    service: 'rabbitmq',
    min: 3,
    why: (n: number) =>
      n === 2
        ? 'a RabbitMQ cluster of 2 has no quorum to lose: quorum queues and pause_minority stop when either node fails'
        : 'a single RabbitMQ node has no quorum to lose: nothing survives its failure',
  },
  {
    service: 'haproxy',
    min: 2,
    why: () => 'with one load balancer the VIP has nowhere to move when it fails',
  },
] as const;

export type SafeSizeRule = (typeof SAFE_SIZES)[number];

/** Why an even size of a quorum cluster (Galera, RabbitMQ) is worth a warning. */
export function evenSizeWarning(service: string, n: number): string {
  return (
    `${service}: ${n} nodes is an even size: a partition that splits it ${n / 2}+${n / 2} leaves neither side a ` +
    'majority and both stop; an odd size (3, 5) tolerates the same failures without that risk'
  );
}

/** The hosts a size rule counts: the load balancer rule counts keepalived's hosts when HAProxy is off. */
export function hostsOfRule(dep: Deployment, rule: SafeSizeRule): HostSpec[] {
  const hosts = hostsFor(dep, rule.service);
  return hosts.length === 0 && rule.service === 'haproxy' ? hostsFor(dep, 'keepalived') : hosts;
}
