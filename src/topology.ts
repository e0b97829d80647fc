import type { Deployment, HostSpec, Service } from './model.js';

/**
 * The inventory group each service runs on, as kolla-ansible names them. When the inventory does not define
 * the group, the service falls back to `control` (and the load balancer to `network`, then `control`).
 */
const SERVICE_GROUPS: Record<Service, readonly string[]> = {
  mariadb: ['mariadb', 'control'],
  rabbitmq: ['rabbitmq', 'control'],
  memcached: ['memcached', 'control'],
  haproxy: ['loadbalancer', 'network', 'control'],
  keepalived: ['loadbalancer', 'network', 'control'],
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
