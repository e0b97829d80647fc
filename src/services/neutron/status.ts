// What `stackha status` shows of Neutron's agents: each agent's last report per host, which L3 agent holds each HA
// router active (as neutron's database records it, and as each host's router namespace shows it: the keepalived
// address on the router's HA interface), and which DHCP agents serve each network. A router active on two hosts is a
// split brain (both answer for its addresses); none active, or a dead agent, is an outage. Parsing is pure.
import type { Host } from '../../hosts/host.js';

/** Where the L3 agent keeps each HA router's keepalived config, state and pid files (l3_agent.ini ha_confs_path). */
export const HA_CONFS = '/var/lib/neutron/ha_confs';

/** One row of neutron.agents, with its report's age from the database's own clock (timestamps are UTC). */
export interface AgentRecord {
  readonly host: string;
  readonly binary: string;
  readonly ageSeconds: number;
  readonly adminUp: boolean;
}

export const NEUTRON_AGENTS_SQL =
  'SELECT host, `binary`, TIMESTAMPDIFF(SECOND, heartbeat_timestamp, UTC_TIMESTAMP()), admin_state_up ' +
  'FROM neutron.agents ORDER BY `binary`, host;';

export function parseAgents(out: string): AgentRecord[] {
  return rows(out).map(([host = '', binary = '', age = '0', up = '1']) => ({
    host,
    binary,
    ageSeconds: Number(age),
    adminUp: up === '1',
  }));
}

const rows = (out: string): string[][] =>
  out
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => l.split('\t'));

export const isAlive = (a: AgentRecord, downSeconds: number): boolean => a.ageSeconds <= downSeconds;

/** An agent service's agents as `stackha status` shows them, and what is missing or dead. Pure. */
export function agentStatus(
  records: readonly AgentRecord[],
  expected: readonly { host: string; binary: string }[],
  downSeconds: number,
  service: string,
): { lines: string[]; problems: string[] } {
  const lines = [`  agents (neutron.agents: last report, alive within ${downSeconds} s):`];
  const problems: string[] = [];
  for (const r of records)
    lines.push(
      `    ${r.binary.padEnd(25)} ${r.host.padEnd(6)} ${isAlive(r, downSeconds) ? 'alive' : 'DEAD'} (${r.ageSeconds} s ago)${r.adminUp ? '' : ' admin down'}`,
    );
  for (const e of expected) {
    const r = records.find((x) => x.host === e.host && x.binary === e.binary);
    if (!r) problems.push(`${service}: ${e.binary} on ${e.host} has never reported`);
    else if (!isAlive(r, downSeconds))
      problems.push(`${service}: ${e.binary} on ${e.host} is dead (last report ${r.ageSeconds} s ago)`);
  }
  for (const r of records)
    if (!expected.some((e) => e.host === r.host && e.binary === r.binary))
      problems.push(`${service}: ${r.binary} on ${r.host} is registered but not in the inventory`);
  return { lines, problems };
}

/** One L3 agent's binding to an HA router: the state neutron recorded, and whether that agent is alive. */
export interface RouterBinding {
  readonly routerId: string;
  readonly routerName: string;
  readonly host: string;
  /** active, standby or unknown, as the agent last reported it. */
  readonly state: string;
  readonly agentAgeSeconds: number;
}

export const HA_ROUTERS_SQL =
  'SELECT r.id, r.name, a.host, b.state, TIMESTAMPDIFF(SECOND, a.heartbeat_timestamp, UTC_TIMESTAMP()) ' +
  'FROM neutron.ha_router_agent_port_bindings b JOIN neutron.routers r ON r.id = b.router_id ' +
  'JOIN neutron.agents a ON a.id = b.l3_agent_id ORDER BY r.name, r.id, a.host;';

export function parseRouterBindings(out: string): RouterBinding[] {
  return rows(out).map(([routerId = '', routerName = '', host = '', state = '', age = '0']) => ({
    routerId,
    routerName,
    host,
    state,
    agentAgeSeconds: Number(age),
  }));
}

/**
 * Every qrouter namespace of a host: whether its HA interface holds keepalived's address (169.254.0.x, the router's
 * VRRP address, present only on the primary) and whether that router's keepalived runs. Prints `<router id> <state>`
 * per namespace: active, standby, or orphaned (the addresses are there with no keepalived to give them up: the kernel
 * still answers ARP for the router's gateway, a hazard whatever neutron's database says).
 */
export const ROUTER_NAMESPACES_SCRIPT = `for ns in $(ip netns list | awk '{print $1}' | grep '^qrouter-'); do
  id=\${ns#qrouter-}
  p=$(cat "${HA_CONFS}/$id.pid.keepalived-vrrp" 2>/dev/null)
  if ip -n "$ns" -o -4 addr show 2>/dev/null | awk '$2 ~ /^ha-/ {print $4}' | grep -q '^169\\.254\\.0\\.'; then
    if [ -n "$p" ] && kill -0 "$p" 2>/dev/null; then echo "$id active"; else echo "$id orphaned"; fi
  else echo "$id standby"; fi
done`;

/** Each router's state in a host's namespaces, or undefined when the host could not be asked. */
export async function routerNamespacesOn(host: Host): Promise<Map<string, NamespaceState> | undefined> {
  const r = await host
    .exec(['sh', '-c', ROUTER_NAMESPACES_SCRIPT], { timeoutMs: 15_000 })
    .catch(() => undefined);
  if (!r || r.code !== 0) return undefined;
  return parseRouterNamespaces(r.stdout);
}

export type NamespaceState = 'active' | 'standby' | 'orphaned';

export function parseRouterNamespaces(out: string): Map<string, NamespaceState> {
  const m = new Map<string, NamespaceState>();
  for (const [id = '', state = ''] of rows(out.replace(/ /g, '\t')))
    if (state === 'active' || state === 'standby' || state === 'orphaned') m.set(id, state);
  return m;
}

/** Per host, each HA router's state in that host's namespaces; undefined for a host that could not be asked. */
export type ActiveOnHosts = ReadonlyMap<string, ReadonlyMap<string, NamespaceState> | undefined>;

/** What status says of HA routers: each router's active and standby hosts; split brain and no-primary problems. */
export function routerStatus(
  bindings: readonly RouterBinding[],
  onHosts: ActiveOnHosts,
  downSeconds: number,
): { lines: string[]; problems: string[]; routers: RouterSummary[] } {
  const lines = ['  HA routers (L3 agents holding each; "active" is the one keepalived made primary):'];
  const problems: string[] = [];
  const routers: RouterSummary[] = [];
  const ids = [...new Set(bindings.map((b) => b.routerId))];
  if (ids.length === 0) lines.push('    none');
  for (const id of ids) {
    const mine = bindings.filter((b) => b.routerId === id);
    const name = mine[0]?.routerName || id;
    const alive = (b: RouterBinding) => b.agentAgeSeconds <= downSeconds;
    // A dead agent's last report says nothing of now (neutron's API shows it "unknown" too).
    const recorded = mine.filter((b) => alive(b) && b.state === 'active').map((b) => b.host);
    const hosts = mine.map((b) => b.host);
    const seen = hosts.filter((h) => onHosts.get(h)?.get(id) === 'active');
    const orphaned = hosts.filter((h) => onHosts.get(h)?.get(id) === 'orphaned');
    const unasked = hosts.filter((h) => onHosts.get(h) === undefined);
    const mark = (s: NamespaceState | undefined) =>
      s === 'active' ? '*' : s === 'orphaned' ? ' (orphaned)' : '';
    const describe = mine
      .map(
        (b) =>
          `${b.host} ${alive(b) ? b.state : 'unknown (agent dead)'}${mark(onHosts.get(b.host)?.get(id))}`,
      )
      .join(', ');
    lines.push(`    ${name.padEnd(12)} ${describe}`);
    routers.push({ id, name, recordedActive: recorded, activeInNamespaces: seen, hosts });
    if (seen.length > 1)
      problems.push(
        `neutron-l3-agent: router ${name} is active on ${seen.join(' and ')} at once (split brain: both answer for its addresses)`,
      );
    else if (seen.length === 0 && unasked.length === 0)
      problems.push(`neutron-l3-agent: router ${name} is active on no host (its traffic is not forwarded)`);
    for (const h of orphaned)
      problems.push(
        `neutron-l3-agent: router ${name}'s namespace on ${h} holds its addresses with no keepalived running`,
      );
    if (recorded.length > 1)
      problems.push(`neutron-l3-agent: neutron records router ${name} active on ${recorded.join(' and ')}`);
  }
  if (ids.length > 0)
    lines.push(
      "    (* its namespace on that host holds the router's addresses now, with keepalived running)",
    );
  return { lines, problems, routers };
}

export interface RouterSummary {
  readonly id: string;
  readonly name: string;
  /** Hosts whose alive agent reported the router active. */
  readonly recordedActive: readonly string[];
  /** Hosts whose router namespace holds the router's keepalived address. */
  readonly activeInNamespaces: readonly string[];
  readonly hosts: readonly string[];
}

/** One DHCP agent's binding to a network. */
export interface DhcpBinding {
  readonly networkId: string;
  readonly networkName: string;
  readonly host: string;
  readonly agentAgeSeconds: number;
}

export const DHCP_BINDINGS_SQL =
  'SELECT n.id, n.name, a.host, TIMESTAMPDIFF(SECOND, a.heartbeat_timestamp, UTC_TIMESTAMP()) ' +
  'FROM neutron.networkdhcpagentbindings b JOIN neutron.networks n ON n.id = b.network_id ' +
  'JOIN neutron.agents a ON a.id = b.dhcp_agent_id ORDER BY n.name, n.id, a.host;';

export function parseDhcpBindings(out: string): DhcpBinding[] {
  return rows(out).map(([networkId = '', networkName = '', host = '', age = '0']) => ({
    networkId,
    networkName,
    host,
    agentAgeSeconds: Number(age),
  }));
}

/** Which DHCP agents serve each network; a network none of whose agents is alive gets no leases. Pure. */
export function dhcpStatus(
  bindings: readonly DhcpBinding[],
  downSeconds: number,
): { lines: string[]; problems: string[] } {
  const lines = ['  networks (DHCP agents serving each):'];
  const problems: string[] = [];
  const ids = [...new Set(bindings.map((b) => b.networkId))];
  if (ids.length === 0) lines.push('    none');
  for (const id of ids) {
    const mine = bindings.filter((b) => b.networkId === id);
    const name = mine[0]?.networkName || id;
    const alive = mine.filter((b) => b.agentAgeSeconds <= downSeconds);
    lines.push(
      `    ${name.padEnd(12)} ${mine.map((b) => `${b.host}${b.agentAgeSeconds <= downSeconds ? '' : ' (agent dead)'}`).join(', ')}`,
    );
    if (alive.length === 0) problems.push(`neutron-dhcp-agent: no live DHCP agent serves network ${name}`);
  }
  return { lines, problems };
}
