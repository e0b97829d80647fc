// Glance on every control host behind the VIP, its images in Swift: an image uploaded through one host is read back
// through any other, and survives the loss of any host (Swift keeps 3 replicas). glance-api is Glance's own eventlet
// server (Zed's uwsgi mode does not run image import tasks), as the `glance` user; one worker per host by default.
import type { Deployment, HostSpec } from '../../model.js';
import { type SettingsTable, integerSetting, readSettings } from '../../settings.js';
import {
  KEYSTONE_PUBLIC_PORT,
  asUser,
  databaseSection,
  keystoneAuthtokenSection,
  messagingSections,
  proxyHeadersSection,
  renderIni,
  section,
  vipUrl,
} from '../api/framework.js';
import { type OpenstackUnit, defineOpenstackService } from '../api/openstack.js';

export const GLANCE_PORT = 9292;
export const GLANCE_CONF = '/etc/glance/glance-api.conf';
/** The Swift credentials Glance stores images with (its own user, in the service project's account). */
export const GLANCE_SWIFT_CONF = '/etc/glance/glance-swift.conf';
const USER = 'glance';
const LOG_DIR = '/var/log/glance';
const STATE = '/var/lib/glance';

export const GLANCE_DB = { name: 'glance', user: 'glance', passwordKey: 'glance_database_password' } as const;
export const GLANCE_USER = { username: 'glance', passwordKey: 'glance_keystone_password' } as const;

export const GLANCE_SETTINGS = {
  // Debian's default is one worker per CPU; each is a full Python process (~150 MB).
  glance_api_workers: { schema: integerSetting(1, 1, 64) },
} as const satisfies SettingsTable;

export function renderGlanceApiConf(dep: Deployment, host: HostSpec): string {
  const s = readSettings(dep.globals.settings, GLANCE_SETTINGS);
  return renderIni(
    `Rendered by stackha for ${host.name} (glance-api); local edits are overwritten by the next deploy.
Holds the database and Keystone passwords: mode 0600, owned by ${USER}.`,
    [
      section('DEFAULT', [
        ['bind_host', host.address],
        ['bind_port', GLANCE_PORT],
        ['workers', s.glance_api_workers],
        // Image import moves data between API hosts: each must be reachable by the others at its own address.
        ['worker_self_reference_url', `http://${host.address}:${GLANCE_PORT}`],
        ['enabled_backends', 'swift:swift'],
        ['log_file', `${LOG_DIR}/glance-api.log`],
        ['use_stderr', false],
      ]),
      ...messagingSections(dep),
      databaseSection(dep, GLANCE_DB),
      keystoneAuthtokenSection(dep, GLANCE_USER, 'image'),
      section('paste_deploy', [['flavor', 'keystone']]),
      section('glance_store', [['default_backend', 'swift']]),
      section('swift', [
        ['swift_store_container', 'glance'],
        ['swift_store_multiple_containers_seed', 0],
        ['swift_store_multi_tenant', false],
        ['swift_store_create_container_on_put', true],
        ['swift_store_region', 'RegionOne'],
        ['swift_store_endpoint_type', 'internalURL'],
        ['default_swift_reference', 'swift'],
        ['swift_store_config_file', GLANCE_SWIFT_CONF],
        // Large images go in 200 MiB segments, so an interrupted upload resumes from a segment, not from zero.
        ['swift_store_large_object_size', 200],
        ['swift_store_large_object_chunk_size', 200],
      ]),
      section('os_glance_tasks_store', [['filesystem_store_datadir', `${STATE}/tasks_work_dir`]]),
      section('os_glance_staging_store', [['filesystem_store_datadir', `${STATE}/staging`]]),
      section('oslo_concurrency', [['lock_path', `${STATE}/tmp`]]),
      proxyHeadersSection(),
    ],
  );
}

export function renderGlanceSwiftConf(dep: Deployment, host: HostSpec): string {
  return renderIni(
    `Rendered by stackha for ${host.name}: the Swift account Glance stores images in. Holds a password: mode 0600.`,
    [
      section('swift', [
        ['auth_version', 3],
        ['auth_address', `${vipUrl(dep, KEYSTONE_PUBLIC_PORT)}/v3`],
        ['user', `service:${GLANCE_USER.username}`],
        ['key', dep.passwords[GLANCE_USER.passwordKey] ?? ''],
        ['project_domain_id', 'default'],
        ['user_domain_id', 'default'],
      ]),
    ],
  );
}

export function renderGlance(dep: Deployment, host: HostSpec): OpenstackUnit {
  return {
    files: [
      { path: GLANCE_CONF, content: renderGlanceApiConf(dep, host), mode: 0o600, owner: USER },
      { path: GLANCE_SWIFT_CONF, content: renderGlanceSwiftConf(dep, host), mode: 0o600, owner: USER },
    ],
    dirs: [
      { path: '/etc/glance', mode: 0o755 },
      { path: LOG_DIR, mode: 0o750, owner: USER },
      { path: STATE, mode: 0o750, owner: USER },
      { path: `${STATE}/tmp`, mode: 0o750, owner: USER },
      { path: `${STATE}/staging`, mode: 0o750, owner: USER },
      { path: `${STATE}/tasks_work_dir`, mode: 0o750, owner: USER },
    ],
    daemons: [
      {
        name: 'glance-api',
        argv: asUser(USER, ['/usr/bin/glance-api', '--config-file', GLANCE_CONF]),
        logFile: `${LOG_DIR}/glance-api.out`,
        http: { port: GLANCE_PORT, path: '/healthcheck' },
      },
    ],
  };
}

const manage = (...args: string[]) =>
  asUser(USER, ['/usr/bin/glance-manage', '--config-file', GLANCE_CONF, ...args]);

export const GLANCE = defineOpenstackService({
  name: 'glance',
  title: 'glance',
  enable: { key: 'enable_glance', default: false },
  requires: [
    { service: 'keystone', why: 'it authenticates every request with Keystone' },
    { service: 'swift-proxy', why: 'its images live in Swift, the highly available backend' },
    { service: 'mariadb', why: 'its database is reached through HAProxy on the VIP' },
    { service: 'haproxy', why: 'its database is reached through HAProxy on the VIP' },
  ],
  groups: ['glance-api', 'glance', 'control'],
  noHosts: 'warning',
  passwords: ['glance_database_password', 'glance_keystone_password'],
  settings: GLANCE_SETTINGS,
  packages: ['glance-api', 'python3-glance-store', 'python3-swiftclient'],
  recommends: false,
  databases: () => [GLANCE_DB],
  keystone: (dep) => [
    {
      user: { name: GLANCE_USER.username, passwordKey: GLANCE_USER.passwordKey, roles: ['admin'] },
      service: { name: 'glance', type: 'image', description: 'Image Service' },
      url: vipUrl(dep, GLANCE_PORT),
    },
  ],
  daemons: [
    {
      name: 'glance-api',
      stopTimeoutMs: 30_000,
      api: {
        lb: 'glance_api',
        port: GLANCE_PORT,
        healthPath: '/healthcheck',
        // Uploads and downloads of large images stream for as long as they take (kolla: 6 h).
        extra: ['timeout client 6h', 'timeout server 6h'],
      },
    },
  ],
  render: renderGlance,
  bootstrap: {
    package: 'python3-glance',
    steps: () => [
      { title: 'db_sync', argv: manage('db_sync') },
      { title: 'db_load_metadefs', argv: manage('db_load_metadefs') },
    ],
  },
});
