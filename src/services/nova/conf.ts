// nova.conf for Nova's control services (API, metadata API, conductor, scheduler) and for nova-compute, rendered per
// host. Everything reaches the others through the VIP (database, Keystone, Placement, Glance, Neutron from the
// catalog) except RabbitMQ, whose brokers are all listed. Settings follow kolla-ansible's nova and nova-cell roles;
// where stackha differs it says why.
import type { Deployment, HostSpec } from '../../model.js';
import {
  type SettingsTable,
  booleanSetting,
  choiceSetting,
  integerSetting,
  readSettings,
} from '../../settings.js';
import { hostsFor } from '../../topology.js';
import {
  type IniSection,
  cacheSection,
  databaseSection,
  keystoneAuthtokenSection,
  messagingSections,
  proxyHeadersSection,
  renderIni,
  section,
  serviceAuthSection,
} from '../api/framework.js';

export const NOVA_USER = 'nova';
export const NOVA_CONF = '/etc/nova/nova.conf';
/** What only the uwsgi applications read, after nova.conf. */
export const NOVA_WSGI_CONF = '/etc/nova/nova-wsgi.conf';
export const NOVA_COMPUTE_CONF = '/etc/nova/nova-compute.conf';
export const NOVA_LOG_DIR = '/var/log/nova';
export const NOVA_STATE = '/var/lib/nova';
export const NOVA_API_PORT = 8774;
export const NOVA_METADATA_PORT = 8775;

export const NOVA_API_DB = { name: 'nova_api', user: 'nova', passwordKey: 'nova_database_password' } as const;
export const NOVA_CELL_DB = { name: 'nova', user: 'nova', passwordKey: 'nova_database_password' } as const;
/** map_cell0 derives cell0's database from [database] connection: the same URL with `_cell0` after the name. */
export const NOVA_CELL0_DB = {
  name: 'nova_cell0',
  user: 'nova',
  passwordKey: 'nova_database_password',
} as const;
export const NOVA_KEYSTONE_USER = { username: 'nova', passwordKey: 'nova_keystone_password' } as const;
export const PLACEMENT_CLIENT_USER = {
  username: 'placement',
  passwordKey: 'placement_keystone_password',
} as const;
export const NEUTRON_CLIENT_USER = { username: 'neutron', passwordKey: 'neutron_keystone_password' } as const;

export const NOVA_SETTINGS = {
  nova_api_uwsgi_processes: { schema: integerSetting(1, 1, 64) },
  nova_api_uwsgi_threads: { schema: integerSetting(2, 1, 64) },
  nova_metadata_uwsgi_processes: { schema: integerSetting(1, 1, 64) },
  nova_conductor_workers: { schema: integerSetting(1, 1, 64) },
  nova_scheduler_workers: { schema: integerSetting(1, 1, 64) },
} as const satisfies SettingsTable;

export const NOVA_COMPUTE_SETTINGS = {
  // kolla's switch for nova's fake virt driver; the lab inventory sets it (the lab has no hypervisor to offer).
  enable_nova_fake: { schema: booleanSetting(false) },
  nova_compute_virt_type: { schema: choiceSetting('kvm', ['kvm', 'qemu'] as const) },
} as const satisfies SettingsTable;

export const novaSettings = (dep: Deployment) => readSettings(dep.globals.settings, NOVA_SETTINGS);
export const novaComputeSettings = (dep: Deployment) =>
  readSettings(dep.globals.settings, NOVA_COMPUTE_SETTINGS);

/** [DEFAULT] every Nova process has: its host identity (the compute and service records are keyed by it). */
function identity(host: HostSpec): IniSection {
  return section('DEFAULT', [
    ['host', host.name],
    ['my_ip', host.address],
    ['state_path', NOVA_STATE],
    ['log_dir', NOVA_LOG_DIR],
    ['use_stderr', false],
  ]);
}

/** What every Nova process needs to reach the others. */
function clients(dep: Deployment): IniSection[] {
  const out: IniSection[] = [
    serviceAuthSection(dep, 'placement', PLACEMENT_CLIENT_USER, [['valid_interfaces', 'internal']]),
    section('glance', [
      ['valid_interfaces', 'internal'],
      ['num_retries', 3],
    ]),
    // Tokens Nova passes on carry its own service token, so a long operation outlives the user's token.
    serviceAuthSection(dep, 'service_user', NOVA_KEYSTONE_USER, [['send_service_user_token', true]]),
    section('oslo_concurrency', [['lock_path', `${NOVA_STATE}/tmp`]]),
    // No consoles in this deployment: the proxies are not deployed.
    section('vnc', [['enabled', false]]),
    section('spice', [['enabled', false]]),
    section('upgrade_levels', [['compute', 'auto']]),
  ];
  if (hostsFor(dep, 'neutron').length > 0)
    out.push(serviceAuthSection(dep, 'neutron', NEUTRON_CLIENT_USER, [['valid_interfaces', 'internal']]));
  return out;
}

/** nova.conf of a control host: API, metadata API, conductor and scheduler. Mode 0600, owned by nova. */
export function renderNovaConf(dep: Deployment, host: HostSpec): string {
  const s = novaSettings(dep);
  return renderIni(
    `Rendered by stackha for ${host.name} (nova-api, nova-metadata, nova-conductor, nova-scheduler); local edits
are overwritten by the next deploy. Holds passwords: mode 0600, owned by ${NOVA_USER}.`,
    [
      identity(host),
      ...messagingSections(dep),
      databaseSection(dep, NOVA_API_DB, 'api_database'),
      databaseSection(dep, NOVA_CELL_DB),
      keystoneAuthtokenSection(dep, NOVA_KEYSTONE_USER, 'compute'),
      cacheSection(dep),
      section('wsgi', [['api_paste_config', '/etc/nova/api-paste.ini']]),
      section('conductor', [['workers', s.nova_conductor_workers]]),
      section('scheduler', [
        ['workers', s.nova_scheduler_workers],
        ['max_attempts', 10],
        // New compute hosts are mapped by the deploy (cell_v2 discover_hosts), not by a periodic scan.
        ['discover_hosts_in_cells_interval', -1],
      ]),
      section('filter_scheduler', [
        ['enabled_filters', ['ComputeFilter', 'ComputeCapabilitiesFilter', 'ImagePropertiesFilter']],
      ]),
      ...(hostsFor(dep, 'neutron').length > 0
        ? [
            section('neutron', [
              ['service_metadata_proxy', true],
              ['metadata_proxy_shared_secret', dep.passwords.metadata_secret ?? ''],
            ]),
          ]
        : []),
      ...clients(dep),
      proxyHeadersSection(),
    ],
  );
}

/**
 * What only the uwsgi applications read, after nova.conf: AMQP heartbeats from a native thread (uwsgi workers are
 * not eventlet's main loop; without it the heartbeat stalls and the broker drops the connection).
 */
export function renderNovaWsgiConf(host: HostSpec): string {
  return renderIni(
    `Rendered by stackha for ${host.name}: read by nova-api and nova-metadata after nova.conf.`,
    [section('oslo_messaging_rabbit', [['heartbeat_in_pthread', true]])],
  );
}

/**
 * nova-compute.conf of a compute host: no database (compute reaches it through the conductor), its hypervisor
 * driver: nova's fake driver when enable_nova_fake is set (the lab: servers are records, not machines), else
 * libvirt with nova_compute_virt_type. Mode 0600, owned by nova.
 */
export function renderNovaComputeConf(dep: Deployment, host: HostSpec): string {
  const c = novaComputeSettings(dep);
  const driver: IniSection[] = c.enable_nova_fake
    ? [section('DEFAULT', [['compute_driver', 'fake.FakeDriver']])]
    : [
        section('DEFAULT', [['compute_driver', 'libvirt.LibvirtDriver']]),
        section('libvirt', [
          ['virt_type', c.nova_compute_virt_type],
          ['connection_uri', `qemu+tcp://${host.address}/system`],
          ['live_migration_inbound_addr', host.address],
          ['num_pcie_ports', 16],
        ]),
        section('workarounds', [['skip_cpu_compare_on_dest', true]]),
      ];
  return renderIni(
    `Rendered by stackha for ${host.name} (nova-compute, ${c.enable_nova_fake ? "nova's fake virt driver: a simulated hypervisor" : `libvirt, ${c.nova_compute_virt_type}`}); local edits are overwritten by the
next deploy. Holds passwords: mode 0600, owned by ${NOVA_USER}.`,
    [
      identity(host),
      section('DEFAULT', [['instances_path', `${NOVA_STATE}/instances`]]),
      ...driver,
      ...messagingSections(dep),
      ...clients(dep),
    ],
  );
}
