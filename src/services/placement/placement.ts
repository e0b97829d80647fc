// Placement on every control host behind the VIP: the resource-provider inventory and allocations Nova's scheduler
// claims against. A WSGI application under uwsgi, its workers as the `placement` user the Debian package creates;
// its own database; nothing else of its own to keep in step across hosts.
import type { Deployment, HostSpec } from '../../model.js';
import { type SettingsTable, integerSetting, readSettings } from '../../settings.js';
import {
  UWSGI_STOP_SIGNAL,
  asUser,
  databaseSection,
  keystoneAuthtokenSection,
  proxyHeadersSection,
  renderIni,
  renderUwsgiIni,
  section,
  vipUrl,
} from '../api/framework.js';
import { type OpenstackUnit, defineOpenstackService } from '../api/openstack.js';

export const PLACEMENT_PORT = 8778;
export const PLACEMENT_CONF = '/etc/placement/placement.conf';
export const PLACEMENT_UWSGI_INI = '/etc/placement/placement-uwsgi.ini';
const LOG_DIR = '/var/log/placement';
const STATE = '/var/lib/placement';
const USER = 'placement';
/** Zed's placement has no healthcheck middleware (`/healthcheck` asks for a token): its version document answers. */
export const PLACEMENT_HEALTH_PATH = '/';

export const PLACEMENT_DB = {
  name: 'placement',
  user: 'placement',
  passwordKey: 'placement_database_password',
} as const;
export const PLACEMENT_USER = { username: 'placement', passwordKey: 'placement_keystone_password' } as const;

export const PLACEMENT_SETTINGS = {
  placement_uwsgi_processes: { schema: integerSetting(1, 1, 64) },
  placement_uwsgi_threads: { schema: integerSetting(2, 1, 64) },
} as const satisfies SettingsTable;

export function renderPlacementConf(dep: Deployment, host: HostSpec): string {
  return renderIni(
    `Rendered by stackha for ${host.name}; local edits are overwritten by the next deploy.
Holds the database and Keystone passwords: mode 0600, owned by ${USER}.`,
    [
      section('DEFAULT', [
        ['log_file', `${LOG_DIR}/placement-api.log`],
        ['use_stderr', false],
        ['state_path', STATE],
      ]),
      section('api', [['auth_strategy', 'keystone']]),
      databaseSection(dep, PLACEMENT_DB, 'placement_database'),
      keystoneAuthtokenSection(dep, PLACEMENT_USER, 'placement'),
      section('oslo_concurrency', [['lock_path', `${STATE}/tmp`]]),
      proxyHeadersSection(),
    ],
  );
}

export function renderPlacement(dep: Deployment, host: HostSpec): OpenstackUnit {
  const s = readSettings(dep.globals.settings, PLACEMENT_SETTINGS);
  return {
    files: [
      { path: PLACEMENT_CONF, content: renderPlacementConf(dep, host), mode: 0o600, owner: USER },
      {
        path: PLACEMENT_UWSGI_INI,
        content: renderUwsgiIni(
          { host },
          {
            service: 'placement',
            port: PLACEMENT_PORT,
            wsgiFile: '/usr/bin/placement-api',
            // The WSGI script reads placement.conf from this directory.
            env: { OS_PLACEMENT_CONFIG_DIR: '/etc/placement' },
            chdir: STATE,
            user: USER,
            processes: s.placement_uwsgi_processes,
            threads: s.placement_uwsgi_threads,
          },
        ),
        mode: 0o644,
      },
    ],
    dirs: [
      { path: '/etc/placement', mode: 0o755 },
      { path: LOG_DIR, mode: 0o750, owner: USER },
      { path: STATE, mode: 0o750, owner: USER },
      { path: `${STATE}/tmp`, mode: 0o750, owner: USER },
    ],
    daemons: [
      {
        name: 'placement-api',
        argv: ['/usr/bin/uwsgi', '--ini', PLACEMENT_UWSGI_INI],
        stopSignal: UWSGI_STOP_SIGNAL,
        logFile: `${LOG_DIR}/uwsgi.log`,
        http: { port: PLACEMENT_PORT, path: PLACEMENT_HEALTH_PATH },
      },
    ],
  };
}

export const PLACEMENT = defineOpenstackService({
  name: 'placement',
  title: 'placement',
  enable: { key: 'enable_placement', default: false },
  requires: [
    { service: 'keystone', why: 'it authenticates every request with Keystone' },
    { service: 'mariadb', why: 'its database is reached through HAProxy on the VIP' },
    { service: 'haproxy', why: 'its database is reached through HAProxy on the VIP' },
  ],
  groups: ['placement-api', 'placement', 'control'],
  noHosts: 'warning',
  passwords: ['placement_database_password', 'placement_keystone_password'],
  settings: PLACEMENT_SETTINGS,
  packages: ['placement-api', 'python3-osc-placement'],
  recommends: false,
  databases: () => [PLACEMENT_DB],
  keystone: (dep) => [
    {
      user: { name: PLACEMENT_USER.username, passwordKey: PLACEMENT_USER.passwordKey, roles: ['admin'] },
      service: { name: 'placement', type: 'placement', description: 'Placement API' },
      url: vipUrl(dep, PLACEMENT_PORT),
    },
  ],
  daemons: [
    {
      name: 'placement-api',
      stopSignal: UWSGI_STOP_SIGNAL,
      stopTimeoutMs: 20_000,
      api: { lb: 'placement_api', port: PLACEMENT_PORT, healthPath: PLACEMENT_HEALTH_PATH },
    },
  ],
  render: renderPlacement,
  bootstrap: {
    package: 'placement-common',
    steps: () => [
      {
        title: 'db sync',
        argv: asUser(USER, ['/usr/bin/placement-manage', '--config-file', PLACEMENT_CONF, 'db', 'sync']),
      },
      {
        title: 'online data migrations',
        argv: asUser(USER, [
          '/usr/bin/placement-manage',
          '--config-file',
          PLACEMENT_CONF,
          'db',
          'online_data_migrations',
        ]),
      },
    ],
  },
});
