import type { Deployment, HostSpec } from './model.js';

/**
 * Hosts a service runs on, in inventory order; empty when the service is off or has no host. Where each service
 * runs was resolved from its declared inventory groups when the inventory was read (src/inventory/load.ts,
 * src/services/registry.ts).
 */
export function hostsFor(dep: Deployment, service: string): HostSpec[] {
  return (dep.placement[service] ?? []).map((n) => hostByName(dep, n));
}

export function hostByName(dep: Deployment, name: string): HostSpec {
  const host = dep.hosts.find((h) => h.name === name);
  if (!host) throw new Error(`unknown host ${name}`);
  return host;
}

/** Why an even size of a quorum cluster (Galera, RabbitMQ) is worth a warning. */
export function evenSizeWarning(service: string, n: number): string {
  return (
    `${service}: ${n} nodes is an even size: a partition that splits it ${n / 2}+${n / 2} leaves neither side a ` +
    'majority and both stop; an odd size (3, 5) tolerates the same failures without that risk'
  );
}

/**
 * The hosts of the first of `groups` that has any, among `known` (the deployment's target hosts): where a service
 * declared on those groups runs.
 */
export function placeOnGroups(
  groups: Readonly<Record<string, readonly string[]>>,
  candidates: readonly string[],
  known: ReadonlySet<string>,
): string[] {
  for (const g of candidates) {
    const names = (groups[g] ?? []).filter((n) => known.has(n));
    if (names.length > 0) return names;
  }
  return [];
}
