// Neutron's agents, each a service of its own on kolla's inventory groups: the Linux bridge agent wires ports into
// bridges and VXLAN tunnels on every host that runs routers, DHCP or compute; an L3 agent on every `network` host
// holds each HA router (keepalived and neutron-keepalived-state-change inside its qrouter namespace, VRRP over the
// project's HA network); DHCP agents serve each network from dnsmasq in a qdhcp namespace, on several hosts at once;
// the metadata agent answers the router's (and isolated networks') metadata proxies from Nova's metadata API on the
// VIP. Every agent runs as the neutron user and reaches root through neutron-rootwrap-daemon (sudoers from the
// Debian package), one file per agent holding everything it reads (the broker password: mode 0600).
import type { Deployment, HostSpec } from '../../model.js';
import { type SettingsTable, interfaceSetting, readSettings } from '../../settings.js';
import { hostsFor } from '../../topology.js';
import { waitFor } from '../../util/wait.js';
import {
  type AdminSql,
  type IniSection,
  adminSql,
  asUser,
  messagingSections,
  renderIni,
  section,
} from '../api/framework.js';
import { type OpenstackUnit, defineOpenstackService } from '../api/openstack.js';
import type { HostsContext, ServiceDeclaration } from '../contract.js';
import { NOVA_METADATA_PORT } from '../nova/conf.js';
import { hostIn } from '../types.js';
import {
  type AgentRecord,
  DHCP_BINDINGS_SQL,
  HA_CONFS,
  HA_ROUTERS_SQL,
  NEUTRON_AGENTS_SQL,
  agentStatus,
  dhcpStatus,
  parseAgents,
  parseDhcpBindings,
  parseRouterBindings,
  routerNamespacesOn,
  routerStatus,
} from './status.js';

const USER = 'neutron';
const LOG_DIR = '/var/log/neutron';
const STATE = '/var/lib/neutron';
export const ROOTWRAP_CONF = '/etc/neutron/rootwrap.conf';
export const LINUXBRIDGE_INI = '/etc/neutron/plugins/ml2/linuxbridge_agent.ini';
export const L3_INI = '/etc/neutron/l3_agent.ini';
export const DHCP_INI = '/etc/neutron/dhcp_agent.ini';
export const METADATA_INI = '/etc/neutron/metadata_agent.ini';
/** The provider network every `network` host reaches through its external interface. */
export const PHYSNET = 'physnet1';

/** What every agent reads: its host identity, the broker, state and lock paths, and how it becomes root. */
function commonSections(dep: Deployment, host: HostSpec): IniSection[] {
  return [
    section('DEFAULT', [
      // The identity nova-compute shares on the same host: a port binds to the agent of the host named here.
      ['host', host.name],
      ['state_path', STATE],
      ['log_dir', LOG_DIR],
      ['use_stderr', false],
      ['interface_driver', 'linuxbridge'],
    ]),
    ...messagingSections(dep),
    section('agent', [
      ['root_helper', `sudo /usr/bin/neutron-rootwrap ${ROOTWRAP_CONF}`],
      // One long-lived root helper instead of a sudo + rootwrap start (~0.15 s here) for every command.
      ['root_helper_daemon', `sudo /usr/bin/neutron-rootwrap-daemon ${ROOTWRAP_CONF}`],
      ['report_interval', dep.tuning.neutron.reportIntervalSec],
    ]),
    section('oslo_concurrency', [['lock_path', `${STATE}/tmp`]]),
  ];
}

const header = (host: HostSpec, what: string) =>
  `Rendered by stackha for ${host.name} (${what}); local edits are overwritten by the next deploy.
Holds the RabbitMQ password: mode 0600, owned by ${USER}.`;

export function renderLinuxbridgeAgentIni(dep: Deployment, host: HostSpec): string {
  // Only hosts that reach the provider network (the `network` group) map it to their external interface.
  const external = host.groups.includes('network')
    ? [['physical_interface_mappings', `${PHYSNET}:${externalInterface(dep)}`] as const]
    : [];
  return renderIni(header(host, 'neutron-linuxbridge-agent'), [
    ...commonSections(dep, host),
    section('linux_bridge', external),
    section('vxlan', [
      ['enable_vxlan', true],
      // Tunnels between the hosts' internal addresses; l2population programs each peer's forwarding entries, so no
      // multicast group is needed.
      ['local_ip', host.address],
      ['l2_population', true],
    ]),
    section('securitygroup', [
      ['enable_security_group', true],
      ['firewall_driver', 'iptables'],
    ]),
  ]);
}

export function renderL3AgentIni(dep: Deployment, host: HostSpec): string {
  return renderIni(header(host, 'neutron-l3-agent'), [
    ...commonSections(dep, host),
    section('DEFAULT', [
      ['agent_mode', 'legacy'],
      // How often each router's keepalived advertises: a standby takes over after ~3 missed adverts.
      ['ha_vrrp_advert_int', dep.tuning.neutron.haVrrpAdvertIntSec],
      ['ha_confs_path', HA_CONFS],
      // Debian's default scales with the CPUs; one thread serves this host's state changes.
      ['ha_keepalived_state_change_server_threads', 1],
    ]),
  ]);
}

export function renderDhcpAgentIni(dep: Deployment, host: HostSpec): string {
  return renderIni(header(host, 'neutron-dhcp-agent'), [
    ...commonSections(dep, host),
    section('DEFAULT', [
      ['dhcp_driver', 'neutron.agent.linux.dhcp.Dnsmasq'],
      // A network without a router still gets metadata (169.254.169.254 served from the DHCP namespace).
      ['enable_isolated_metadata', true],
      ['num_sync_threads', 2],
    ]),
  ]);
}

export function renderMetadataAgentIni(dep: Deployment, host: HostSpec): string {
  return renderIni(
    `${header(host, 'neutron-metadata-agent')}\nAlso holds the metadata proxy secret shared with Nova.`,
    [
      ...commonSections(dep, host),
      section('DEFAULT', [
        ['nova_metadata_host', dep.globals.internalVip],
        ['nova_metadata_port', NOVA_METADATA_PORT],
        ['nova_metadata_protocol', 'http'],
        ['metadata_proxy_shared_secret', dep.passwords.metadata_secret ?? ''],
        // Debian's default forks half the CPUs' worth.
        ['metadata_workers', 1],
        ['metadata_proxy_socket', `${STATE}/metadata_proxy`],
      ]),
    ],
  );
}

export const NEUTRON_AGENT_SETTINGS = {
  // kolla's name for the interface each `network` host reaches the provider network through (no address on it).
  neutron_external_interface: { schema: interfaceSetting('eth1') },
} as const satisfies SettingsTable;

function externalInterface(dep: Deployment): string {
  return readSettings(dep.globals.settings, NEUTRON_AGENT_SETTINGS).neutron_external_interface;
}

interface AgentSpec {
  /** The service and daemon name, and the agent's `binary` in neutron's agents table. */
  readonly name: string;
  readonly title: string;
  /** kolla's group for it, then where it falls back to. */
  readonly groups: readonly string[];
  readonly ini: string;
  readonly render: (dep: Deployment, host: HostSpec) => string;
  readonly packages: readonly string[];
  readonly passwords: readonly string[];
  readonly settings?: SettingsTable;
  /** Directories of its own under the state path. */
  readonly dirs?: readonly string[];
  readonly why: string;
  /** More of its status than each agent's report (routers, networks). */
  readonly extraStatus?: (
    ctx: HostsContext,
    sql: AdminSql,
  ) => Promise<{ lines: string[]; problems: string[]; data?: unknown }>;
}

function renderAgent(spec: AgentSpec, dep: Deployment, host: HostSpec): OpenstackUnit {
  const dir = spec.ini.slice(0, spec.ini.lastIndexOf('/'));
  return {
    files: [{ path: spec.ini, content: spec.render(dep, host), mode: 0o600, owner: USER }],
    dirs: [
      { path: '/etc/neutron', mode: 0o755 },
      ...(dir !== '/etc/neutron' ? [{ path: dir, mode: 0o755 }] : []),
      { path: LOG_DIR, mode: 0o750, owner: USER },
      // dnsmasq drops to nobody and rereads its hosts file under dhcp/ at every port change: 0755, as Debian has it.
      { path: STATE, mode: 0o755, owner: USER },
      { path: `${STATE}/tmp`, mode: 0o750, owner: USER },
      ...(spec.dirs ?? []).map((d) => ({ path: `${STATE}/${d}`, mode: 0o755, owner: USER })),
    ],
    daemons: [
      {
        name: spec.name,
        argv: asUser(USER, [`/usr/bin/${spec.name}`, '--config-file', spec.ini]),
        logFile: `${LOG_DIR}/${spec.name}.out`,
      },
    ],
  };
}

/** The expected agents of this deployment: one per host of each agent service. */
export function expectedAgents(dep: Deployment): { host: string; binary: string }[] {
  return NEUTRON_AGENT_SPECS.flatMap((a) =>
    hostsFor(dep, a.name).map((h) => ({ host: h.name, binary: a.name })),
  );
}

async function readAgents(sql: AdminSql): Promise<AgentRecord[]> {
  return parseAgents(await sql(NEUTRON_AGENTS_SQL));
}

/** Waits until every agent of the service reports to neutron-server (its RPC and the database both work). */
async function waitAgentsAlive(dep: Deployment, sql: AdminSql, binary: string, timeoutMs = 180_000) {
  const downSec = dep.tuning.neutron.agentDownTimeSec;
  const want = hostsFor(dep, binary).map((h) => h.name);
  let missing: string[] = want;
  await waitFor(
    `${binary} to report on ${want.join(', ')}`,
    async () => {
      const agents = await readAgents(sql);
      missing = want.filter(
        (h) => !agents.some((a) => a.host === h && a.binary === binary && a.ageSeconds <= downSec),
      );
      return missing.length === 0 ? true : undefined;
    },
    { timeoutMs, intervalMs: 1000, describe: () => `not reporting: ${missing.join(', ')}` },
  );
}

const NEUTRON_AGENT_SPECS: readonly AgentSpec[] = [
  {
    name: 'neutron-linuxbridge-agent',
    title: 'neutron linuxbridge agent',
    // kolla's multinode puts it on network and compute hosts ([neutron-linuxbridge-agent:children]).
    groups: ['neutron-linuxbridge-agent', 'network'],
    ini: LINUXBRIDGE_INI,
    render: renderLinuxbridgeAgentIni,
    packages: ['neutron-linuxbridge-agent', 'ipset', 'conntrack'],
    passwords: ['rabbitmq_password'],
    settings: NEUTRON_AGENT_SETTINGS,
    why: 'it wires every port of its host into bridges and VXLAN tunnels',
  },
  {
    name: 'neutron-dhcp-agent',
    title: 'neutron DHCP agent',
    groups: ['neutron-dhcp-agent', 'network'],
    ini: DHCP_INI,
    render: renderDhcpAgentIni,
    packages: ['neutron-dhcp-agent', 'dnsmasq-base'],
    passwords: ['rabbitmq_password'],
    dirs: ['dhcp'],
    why: 'it serves DHCP for networks on its host',
    extraStatus: async (ctx, sql) => {
      const bindings = parseDhcpBindings(await sql(DHCP_BINDINGS_SQL));
      return { ...dhcpStatus(bindings, ctx.dep.tuning.neutron.agentDownTimeSec), data: bindings };
    },
  },
  {
    name: 'neutron-l3-agent',
    title: 'neutron L3 agent',
    groups: ['neutron-l3-agent', 'network'],
    ini: L3_INI,
    render: renderL3AgentIni,
    // keepalived for the HA routers, haproxy for their metadata proxy, arping for the gratuitous ARPs of a takeover.
    packages: ['neutron-l3-agent', 'keepalived', 'haproxy', 'iputils-arping'],
    passwords: ['rabbitmq_password'],
    dirs: ['ha_confs', 'external'],
    why: 'it holds HA routers on its host',
    extraStatus: async (ctx, sql) => {
      const bindings = parseRouterBindings(await sql(HA_ROUTERS_SQL));
      const hosts = hostsFor(ctx.dep, 'neutron-l3-agent');
      const seen = await Promise.all(hosts.map((h) => routerNamespacesOn(hostIn(ctx, h.name))));
      const onHosts = new Map(hosts.map((h, i) => [h.name, seen[i]]));
      const s = routerStatus(bindings, onHosts, ctx.dep.tuning.neutron.agentDownTimeSec);
      return { lines: s.lines, problems: s.problems, data: s.routers };
    },
  },
  {
    name: 'neutron-metadata-agent',
    title: 'neutron metadata agent',
    groups: ['neutron-metadata-agent', 'network'],
    ini: METADATA_INI,
    render: renderMetadataAgentIni,
    packages: ['neutron-metadata-agent'],
    passwords: ['rabbitmq_password', 'metadata_secret'],
    why: 'it answers the metadata proxies of its host',
  },
];

function defineAgent(spec: AgentSpec): ServiceDeclaration {
  return defineOpenstackService({
    name: spec.name,
    title: spec.title,
    // kolla's neutron switch covers its agents.
    enable: { key: 'enable_neutron', default: false },
    requires: [
      { service: 'neutron', why: `${spec.why}, as neutron-server tells it over RPC` },
      { service: 'rabbitmq', why: 'it talks to neutron-server over RabbitMQ' },
    ],
    groups: spec.groups,
    noHosts: 'warning',
    passwords: spec.passwords,
    ...(spec.settings ? { settings: spec.settings } : {}),
    packages: spec.packages,
    recommends: false,
    daemons: [{ name: spec.name, stopTimeoutMs: 30_000 }],
    render: (dep, host) => renderAgent(spec, dep, host),
    afterStart: async (ctx, sql) => {
      await waitAgentsAlive(ctx.dep, sql, spec.name);
      return [];
    },
    status: async (ctx: HostsContext) => {
      const sql = await adminSql({ dep: ctx.dep, hosts: ctx.hosts, log: ctx.log });
      const agents = await readAgents(sql).catch(() => undefined);
      if (!agents)
        return {
          lines: ['  agents: the neutron database did not answer'],
          problems: [`${spec.name}: cannot read neutron.agents`],
          data: undefined,
        };
      const mine = agents.filter((a) => a.binary === spec.name);
      const expected = hostsFor(ctx.dep, spec.name).map((h) => ({ host: h.name, binary: spec.name }));
      const own = agentStatus(mine, expected, ctx.dep.tuning.neutron.agentDownTimeSec, spec.name);
      const extra = await spec.extraStatus?.(ctx, sql);
      return {
        lines: [...own.lines, ...(extra?.lines ?? [])],
        problems: [...own.problems, ...(extra?.problems ?? [])],
        data: { agents: mine, ...(extra?.data !== undefined ? { more: extra.data } : {}) },
      };
    },
  });
}

export const [NEUTRON_LINUXBRIDGE_AGENT, NEUTRON_DHCP_AGENT, NEUTRON_L3_AGENT, NEUTRON_METADATA_AGENT] =
  NEUTRON_AGENT_SPECS.map(defineAgent) as [
    ServiceDeclaration,
    ServiceDeclaration,
    ServiceDeclaration,
    ServiceDeclaration,
  ];
