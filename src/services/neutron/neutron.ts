// neutron-server on every control host behind the VIP: ML2 with Linux bridge and VXLAN (this kernel has VXLAN and
// bridges, no Open vSwitch datapath, VLAN or Geneve; Zed treats linuxbridge as experimental and refuses it unless
// told), L3 HA and several DHCP agents per network as the scheduler's defaults, RPC over every broker with quorum
// queues. One process serves the API, one worker process RPC, one the periodic tasks (Debian's defaults fork one
// API and RPC worker per CPU, each a full Python process). The agents that wire networks on each host come next
// (issue 12); until then Nova has the network API it looks ports and security groups up in.
import type { Deployment, HostSpec } from '../../model.js';
import { type SettingsTable, integerSetting, readSettings } from '../../settings.js';
import { hostsFor } from '../../topology.js';
import {
  asUser,
  databaseSection,
  keystoneAuthtokenSection,
  messagingSections,
  proxyHeadersSection,
  renderIni,
  section,
  serviceAuthSection,
  vipUrl,
} from '../api/framework.js';
import { type OpenstackUnit, defineOpenstackService } from '../api/openstack.js';

export const NEUTRON_PORT = 9696;
export const NEUTRON_CONF = '/etc/neutron/neutron.conf';
export const ML2_CONF = '/etc/neutron/plugins/ml2/ml2_conf.ini';
const USER = 'neutron';
const LOG_DIR = '/var/log/neutron';
const STATE = '/var/lib/neutron';

export const NEUTRON_DB = {
  name: 'neutron',
  user: 'neutron',
  passwordKey: 'neutron_database_password',
} as const;
export const NEUTRON_USER = { username: 'neutron', passwordKey: 'neutron_keystone_password' } as const;
const NOVA_USER = { username: 'nova', passwordKey: 'nova_keystone_password' } as const;

export const NEUTRON_SETTINGS = {
  // 0: the API is served by the server process itself (no forked API worker).
  neutron_api_workers: { schema: integerSetting(0, 0, 64) },
  neutron_rpc_workers: { schema: integerSetting(1, 1, 64) },
  // kolla's defaults: routers on up to 3 L3 agents, each network on 2 DHCP agents.
  max_l3_agents_per_router: { schema: integerSetting(3, 2, 16) },
  dhcp_agents_per_network: { schema: integerSetting(2, 1, 16) },
} as const satisfies SettingsTable;

export function renderNeutronConf(dep: Deployment, host: HostSpec): string {
  const s = readSettings(dep.globals.settings, NEUTRON_SETTINGS);
  const nova = hostsFor(dep, 'nova').length > 0;
  return renderIni(
    `Rendered by stackha for ${host.name} (neutron-server); local edits are overwritten by the next deploy.
Holds the database, RabbitMQ and Keystone passwords: mode 0600, owned by ${USER}.`,
    [
      section('DEFAULT', [
        // The host identity agents and nova-compute share (a port binds to the host named here).
        ['host', host.name],
        ['bind_host', host.address],
        ['bind_port', NEUTRON_PORT],
        ['core_plugin', 'ml2'],
        ['service_plugins', 'router'],
        ['allow_overlapping_ips', true],
        ['auth_strategy', 'keystone'],
        ['api_workers', s.neutron_api_workers],
        ['rpc_workers', s.neutron_rpc_workers],
        // State reports share the RPC worker rather than a process of their own.
        ['rpc_state_report_workers', 0],
        ['interface_driver', 'linuxbridge'],
        ['l3_ha', true],
        ['max_l3_agents_per_router', s.max_l3_agents_per_router],
        ['l3_ha_net_cidr', '169.254.192.0/18'],
        ['dhcp_agents_per_network', s.dhcp_agents_per_network],
        ['agent_down_time', dep.tuning.neutron.agentDownTimeSec],
        ['router_distributed', false],
        ['notify_nova_on_port_status_changes', nova],
        ['notify_nova_on_port_data_changes', nova],
        ['state_path', STATE],
        ['log_dir', LOG_DIR],
        ['use_stderr', false],
        ['global_physnet_mtu', 1500],
      ]),
      ...messagingSections(dep),
      databaseSection(dep, NEUTRON_DB),
      keystoneAuthtokenSection(dep, NEUTRON_USER, 'network'),
      ...(nova ? [serviceAuthSection(dep, 'nova', NOVA_USER, [['endpoint_type', 'internal']])] : []),
      // Zed refuses the linuxbridge mechanism driver unless it is declared experimental.
      section('experimental', [['linuxbridge', true]]),
      section('oslo_concurrency', [['lock_path', `${STATE}/tmp`]]),
      proxyHeadersSection(),
    ],
  );
}

export function renderMl2Conf(host: HostSpec): string {
  return renderIni(`Rendered by stackha for ${host.name} (ML2 with Linux bridge and VXLAN).`, [
    section('ml2', [
      ['type_drivers', ['flat', 'vxlan']],
      ['tenant_network_types', 'vxlan'],
      ['mechanism_drivers', ['linuxbridge', 'l2population']],
      ['extension_drivers', 'port_security'],
      ['path_mtu', 1500],
    ]),
    section('ml2_type_flat', [['flat_networks', 'physnet1']]),
    section('ml2_type_vxlan', [['vni_ranges', '1:1000']]),
  ]);
}

export function renderNeutron(dep: Deployment, host: HostSpec): OpenstackUnit {
  return {
    files: [
      { path: NEUTRON_CONF, content: renderNeutronConf(dep, host), mode: 0o600, owner: USER },
      { path: ML2_CONF, content: renderMl2Conf(host), mode: 0o644 },
    ],
    dirs: [
      { path: '/etc/neutron', mode: 0o755 },
      { path: '/etc/neutron/plugins/ml2', mode: 0o755 },
      { path: LOG_DIR, mode: 0o750, owner: USER },
      { path: STATE, mode: 0o755, owner: USER },
      { path: `${STATE}/tmp`, mode: 0o750, owner: USER },
    ],
    daemons: [
      {
        name: 'neutron-server',
        argv: asUser(USER, [
          '/usr/bin/neutron-server',
          '--config-file',
          NEUTRON_CONF,
          '--config-file',
          ML2_CONF,
        ]),
        logFile: `${LOG_DIR}/neutron-server.out`,
        http: { port: NEUTRON_PORT, path: '/healthcheck' },
      },
    ],
  };
}

export const NEUTRON = defineOpenstackService({
  name: 'neutron',
  title: 'neutron',
  enable: { key: 'enable_neutron', default: false },
  requires: [
    { service: 'keystone', why: 'it authenticates every request with Keystone' },
    { service: 'rabbitmq', why: 'its server and agents talk over RabbitMQ' },
    { service: 'mariadb', why: 'its database is reached through HAProxy on the VIP' },
    { service: 'haproxy', why: 'its database is reached through HAProxy on the VIP' },
  ],
  groups: ['neutron-server', 'neutron', 'control'],
  noHosts: 'warning',
  // metadata_secret: shared with Nova's metadata API, for the metadata agents (issue 12).
  passwords: ['neutron_database_password', 'neutron_keystone_password', 'metadata_secret'],
  settings: NEUTRON_SETTINGS,
  packages: ['neutron-server', 'python3-neutron'],
  recommends: false,
  databases: () => [NEUTRON_DB],
  keystone: (dep) => [
    {
      user: {
        name: NEUTRON_USER.username,
        passwordKey: NEUTRON_USER.passwordKey,
        roles: ['admin', 'service'],
      },
      service: { name: 'neutron', type: 'network', description: 'Networking' },
      url: vipUrl(dep, NEUTRON_PORT),
    },
  ],
  daemons: [
    {
      name: 'neutron-server',
      stopTimeoutMs: 30_000,
      api: { lb: 'neutron_server', port: NEUTRON_PORT, healthPath: '/healthcheck' },
    },
  ],
  render: renderNeutron,
  bootstrap: {
    package: 'python3-neutron',
    steps: () => [
      {
        title: 'upgrade heads',
        argv: asUser(USER, [
          '/usr/bin/neutron-db-manage',
          '--config-file',
          NEUTRON_CONF,
          '--config-file',
          ML2_CONF,
          'upgrade',
          'heads',
        ]),
        timeoutMs: 900_000,
      },
    ],
  },
});
