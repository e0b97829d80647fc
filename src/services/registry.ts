// Every service stackha deploys, each declared once in its own folder under one contract (src/services/contract.ts),
// in the order of the plan: memcached and the database first, the message bus, then the load balancer (whose Galera
// check needs the health endpoints), the VIP (whose track script needs HAProxy), then the OpenStack APIs, whose
// databases are reached through HAProxy on the VIP. Adding a service is one new module and one entry here.
import type { Deployment } from '../model.js';
import { hostsFor } from '../topology.js';
import type { DaemonDeclaration, ServiceDeclaration } from './contract.js';
import { GLANCE } from './glance/glance.js';
import type { LoadBalancedService } from './haproxy/haproxy.js';
import { haproxyDeclaration } from './haproxy/haproxy.js';
import { KEEPALIVED } from './keepalived/keepalived.js';
import { KEYSTONE_SERVICE } from './keystone/keystone.js';
import { MARIADB } from './mariadb/galera.js';
import { MEMCACHED } from './memcached/memcached.js';
import {
  NEUTRON_DHCP_AGENT,
  NEUTRON_L3_AGENT,
  NEUTRON_LINUXBRIDGE_AGENT,
  NEUTRON_METADATA_AGENT,
} from './neutron/agents.js';
import { NEUTRON } from './neutron/neutron.js';
import { NOVA_COMPUTE } from './nova/compute.js';
import { NOVA } from './nova/nova.js';
import { PLACEMENT } from './placement/placement.js';
import { PROBE_API } from './probe-api/probe-api.js';
import { RABBITMQ } from './rabbitmq/rabbitmq.js';
import { SWIFT_PROXY } from './swift/proxy.js';
import { SWIFT_STORAGE } from './swift/storage.js';

/** Every frontend HAProxy serves on the VIP: each deployed service's. */
export function loadBalancedServices(dep: Deployment): LoadBalancedService[] {
  return SERVICES.filter((s) => isDeployed(dep, s.name)).flatMap((s) => s.loadBalanced?.(dep) ?? []);
}

export const HAPROXY = haproxyDeclaration(loadBalancedServices);

export const SERVICES: readonly ServiceDeclaration[] = [
  MEMCACHED,
  MARIADB,
  RABBITMQ,
  PROBE_API,
  HAPROXY,
  KEEPALIVED,
  KEYSTONE_SERVICE,
  PLACEMENT,
  NEUTRON,
  NEUTRON_LINUXBRIDGE_AGENT,
  NEUTRON_METADATA_AGENT,
  NEUTRON_DHCP_AGENT,
  NEUTRON_L3_AGENT,
  NOVA,
  NOVA_COMPUTE,
  SWIFT_STORAGE,
  SWIFT_PROXY,
  GLANCE,
];

export function serviceNamed(name: string): ServiceDeclaration {
  const s = SERVICES.find((x) => x.name === name);
  if (!s) throw new Error(`no service ${name} (${SERVICES.map((x) => x.name).join(', ')})`);
  return s;
}

/** Switched on in globals.yml (whether or not it has hosts). */
export function isEnabled(dep: Deployment, name: string): boolean {
  return dep.globals.enabled[name] === true;
}

/** Enabled and placed on at least one host. */
export function isDeployed(dep: Deployment, name: string): boolean {
  return hostsFor(dep, name).length > 0;
}

/** The services this deployment runs, in plan order. */
export function deployedServices(dep: Deployment): ServiceDeclaration[] {
  return SERVICES.filter((s) => isDeployed(dep, s.name));
}

/** Every daemon of every deployed service, with its service. */
export function daemonDeclarations(
  dep: Deployment,
): { readonly service: ServiceDeclaration; readonly daemon: DaemonDeclaration }[] {
  return deployedServices(dep).flatMap((service) =>
    service.daemons(dep).map((daemon) => ({ service, daemon })),
  );
}

/**
 * The agents (stackha's helper programs, by script path under dist/) each inventory host runs, from the daemon
 * declarations of the services placed on it; hosts that run none are left out.
 */
export function agentsByHost(dep: Deployment): ReadonlyMap<string, readonly string[]> {
  const out = new Map<string, string[]>();
  for (const { service, daemon } of daemonDeclarations(dep)) {
    if (daemon.agent === undefined) continue;
    for (const h of hostsFor(dep, service.name)) {
      const list = out.get(h.name) ?? [];
      if (!list.includes(daemon.agent)) list.push(daemon.agent);
      out.set(h.name, list);
    }
  }
  // Inventory order, each host's agents sorted: stable output.
  return new Map(
    dep.hosts.flatMap((h) => {
      const list = out.get(h.name);
      return list ? [[h.name, [...list].sort()] as const] : [];
    }),
  );
}

/** Every passwords.yml key some service needs, with the service (genpwd and the inventory read this). */
export function passwordOwners(): ReadonlyMap<string, string> {
  const out = new Map<string, string>();
  for (const s of SERVICES) for (const k of s.passwords) if (!out.has(k)) out.set(k, s.name);
  return out;
}

/**
 * The Debian packages of the given services (default: every service), sorted, each once. `recommends` picks those
 * installed with their recommended packages (true) or without (false); both when omitted.
 */
export function debianPackages(
  services: readonly ServiceDeclaration[] = SERVICES,
  recommends?: boolean,
): string[] {
  const picked =
    recommends === undefined ? services : services.filter((s) => (s.recommends !== false) === recommends);
  const all = new Set(services.flatMap((s) => s.packages));
  // A package two services name is installed the way the first of them (in plan order) says.
  const out = new Set<string>();
  for (const s of picked) for (const p of s.packages) if (firstOwner(services, p) === s) out.add(p);
  return recommends === undefined ? [...all].sort() : [...out].sort();
}

function firstOwner(services: readonly ServiceDeclaration[], pkg: string): ServiceDeclaration | undefined {
  return services.find((s) => s.packages.includes(pkg));
}

/** Every setting every service declares, at its default. */
export function defaultSettings(): Record<string, unknown> {
  return Object.fromEntries(
    SERVICES.flatMap((s) =>
      Object.entries(s.settings ?? {}).map(([k, spec]) => [k, spec.schema.parse(undefined)]),
    ),
  );
}
