// Nova's control plane on every control host: nova-api and the metadata API under uwsgi behind the VIP, conductor and
// scheduler as plain processes, all as the `nova` user. RPC over every broker (quorum queues); the cells v2 layout
// (the API database, cell0 and cell1) made once by the bootstrap under the framework's lock.
import type { Deployment, HostSpec } from '../../model.js';
import { hostsFor } from '../../topology.js';
import { waitFor } from '../../util/wait.js';
import {
  type AdminSql,
  UWSGI_STOP_SIGNAL,
  adminSql,
  asUser,
  databaseUrl,
  renderUwsgiIni,
  transportUrl,
  vipUrl,
} from '../api/framework.js';
import { type OpenstackUnit, defineOpenstackService } from '../api/openstack.js';
import type { HostsContext } from '../contract.js';
import {
  NOVA_API_DB,
  NOVA_API_PORT,
  NOVA_CELL0_DB,
  NOVA_CELL_DB,
  NOVA_CONF,
  NOVA_KEYSTONE_USER,
  NOVA_LOG_DIR,
  NOVA_METADATA_PORT,
  NOVA_SETTINGS,
  NOVA_STATE,
  NOVA_USER,
  NOVA_WSGI_CONF,
  novaSettings,
  renderNovaConf,
  renderNovaWsgiConf,
} from './conf.js';

const API_INI = '/etc/nova/nova-api-uwsgi.ini';
const METADATA_INI = '/etc/nova/nova-metadata-uwsgi.ini';
/** nova-api answers its version document without a token (its /healthcheck sits inside /v2.1 and asks for one). */
export const NOVA_API_HEALTH = '/';
export const NOVA_METADATA_HEALTH = '/healthcheck';

const manage = (...args: string[]): string[] =>
  asUser(NOVA_USER, ['/usr/bin/nova-manage', '--config-file', NOVA_CONF, ...args]);

export function renderNova(dep: Deployment, host: HostSpec): OpenstackUnit {
  const s = novaSettings(dep);
  const uwsgi = (service: string, port: number, wsgiFile: string, processes: number) =>
    renderUwsgiIni(
      { host },
      {
        service,
        port,
        wsgiFile,
        // The first file is the paste config; the others are oslo.config files, later ones winning.
        env: {
          OS_NOVA_CONFIG_DIR: '/etc/nova',
          OS_NOVA_CONFIG_FILES: 'api-paste.ini;nova.conf;nova-wsgi.conf',
        },
        chdir: NOVA_STATE,
        user: NOVA_USER,
        processes,
        threads: s.nova_api_uwsgi_threads,
      },
    );
  return {
    files: [
      { path: NOVA_CONF, content: renderNovaConf(dep, host), mode: 0o600, owner: NOVA_USER },
      { path: NOVA_WSGI_CONF, content: renderNovaWsgiConf(host), mode: 0o644 },
      {
        path: API_INI,
        content: uwsgi('nova-api', NOVA_API_PORT, '/usr/bin/nova-api-wsgi', s.nova_api_uwsgi_processes),
        mode: 0o644,
      },
      {
        path: METADATA_INI,
        content: uwsgi(
          'nova-metadata',
          NOVA_METADATA_PORT,
          '/usr/bin/nova-metadata-wsgi',
          s.nova_metadata_uwsgi_processes,
        ),
        mode: 0o644,
      },
    ],
    dirs: [
      { path: '/etc/nova', mode: 0o755 },
      { path: NOVA_LOG_DIR, mode: 0o750, owner: NOVA_USER },
      { path: NOVA_STATE, mode: 0o755, owner: NOVA_USER },
      { path: `${NOVA_STATE}/tmp`, mode: 0o750, owner: NOVA_USER },
    ],
    daemons: [
      {
        name: 'nova-conductor',
        argv: asUser(NOVA_USER, ['/usr/bin/nova-conductor', '--config-file', NOVA_CONF]),
        logFile: `${NOVA_LOG_DIR}/nova-conductor.out`,
      },
      {
        name: 'nova-scheduler',
        argv: asUser(NOVA_USER, ['/usr/bin/nova-scheduler', '--config-file', NOVA_CONF]),
        logFile: `${NOVA_LOG_DIR}/nova-scheduler.out`,
      },
      {
        name: 'nova-api',
        argv: ['/usr/bin/uwsgi', '--ini', API_INI],
        stopSignal: UWSGI_STOP_SIGNAL,
        logFile: `${NOVA_LOG_DIR}/nova-api-uwsgi.log`,
        http: { port: NOVA_API_PORT, path: NOVA_API_HEALTH },
      },
      {
        name: 'nova-metadata',
        argv: ['/usr/bin/uwsgi', '--ini', METADATA_INI],
        stopSignal: UWSGI_STOP_SIGNAL,
        logFile: `${NOVA_LOG_DIR}/nova-metadata-uwsgi.log`,
        http: { port: NOVA_METADATA_PORT, path: NOVA_METADATA_HEALTH },
      },
    ],
  };
}

/**
 * cell1's record holds the transport URL and database URL it was made with: when they change (a broker added) it is
 * updated, never made twice. `list_cells` prints a table whose second column is the name and fourth the UUID.
 */
const CELL1_SCRIPT = `set -e
uuid=$(${manage('cell_v2', 'list_cells').join(' ')} 2>/dev/null | awk '$2 == "cell1" { print $4 }')
if [ -n "$uuid" ]; then
  ${manage('cell_v2', 'update_cell', '--cell_uuid').join(' ')} "$uuid"
else
  ${manage('cell_v2', 'create_cell', '--name', 'cell1').join(' ')}
fi`;

// ------------------------------------------------------------------------------------------------ service records

/** One row of nova.services: a Nova process on a host, as the database last heard from it. */
export interface NovaServiceRecord {
  readonly host: string;
  readonly binary: string;
  /** Seconds since its last report (it reports every 10 s; down after service_down_time, 60 s). */
  readonly ageSeconds: number;
  readonly disabled: boolean;
  readonly forcedDown: boolean;
}

/** Nova's default service_down_time: a service that has not reported for this long is down. */
export const SERVICE_DOWN_SECONDS = 60;

export const isUp = (r: NovaServiceRecord): boolean => !r.forcedDown && r.ageSeconds <= SERVICE_DOWN_SECONDS;

// Nova stores its timestamps in UTC.
export const NOVA_SERVICES_SQL =
  'SELECT host, `binary`, TIMESTAMPDIFF(SECOND, COALESCE(updated_at, created_at), UTC_TIMESTAMP()), disabled, ' +
  'forced_down FROM nova.services WHERE deleted = 0 ORDER BY host, `binary`;';

export function parseNovaServices(out: string): NovaServiceRecord[] {
  return out
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => {
      const [host = '', binary = '', age = '0', disabled = '0', forced = '0'] = l.split('\t');
      return {
        host,
        binary,
        ageSeconds: Number(age),
        disabled: disabled === '1',
        forcedDown: forced === '1',
      };
    });
}

export async function novaServices(sql: AdminSql): Promise<NovaServiceRecord[]> {
  return parseNovaServices(await sql(NOVA_SERVICES_SQL));
}

/** Which expected `binary` on which host is not reporting (or not there at all). */
export function missingServices(
  records: readonly NovaServiceRecord[],
  expected: readonly { host: string; binary: string }[],
): string[] {
  return expected
    .filter((e) => !records.some((r) => r.host === e.host && r.binary === e.binary && isUp(r)))
    .map((e) => `${e.binary} on ${e.host}`);
}

export const CONTROL_BINARIES = ['nova-conductor', 'nova-scheduler'] as const;

/** Waits until every expected Nova service reports through the database (RPC and DB both work for it). */
export async function waitServicesUp(
  sql: AdminSql,
  expected: readonly { host: string; binary: string }[],
  timeoutMs = 180_000,
): Promise<void> {
  let missing: string[] = [];
  await waitFor(
    `Nova services to report (${expected.length})`,
    async () => {
      missing = missingServices(await novaServices(sql), expected);
      return missing.length === 0 ? true : undefined;
    },
    { timeoutMs, intervalMs: 1000, describe: () => `not reporting: ${missing.join(', ')}` },
  );
}

/** Nova's services table as `stackha status` shows it. Pure. */
export function novaServiceStatus(
  records: readonly NovaServiceRecord[],
  expected: readonly { host: string; binary: string }[],
  service: string,
): { lines: string[]; problems: string[] } {
  const lines = ['  services (nova.services: last report, up within 60 s):'];
  for (const r of records)
    lines.push(
      `    ${r.binary.padEnd(15)} ${r.host.padEnd(6)} ${isUp(r) ? 'up' : 'DOWN'} (${r.ageSeconds} s ago)${r.disabled ? ' disabled' : ''}${r.forcedDown ? ' forced down' : ''}`,
    );
  const problems = missingServices(records, expected).map((m) => `${service}: ${m} is not reporting`);
  const extra = records.filter((r) => !expected.some((e) => e.host === r.host && e.binary === r.binary));
  for (const r of extra)
    if (r.binary !== 'nova-compute' || service === 'nova-compute')
      problems.push(`${service}: ${r.binary} on ${r.host} is registered but not in the inventory`);
  return { lines, problems };
}

async function statusSql(ctx: HostsContext): Promise<AdminSql> {
  return adminSql({ dep: ctx.dep, hosts: ctx.hosts, log: ctx.log });
}

const controlExpected = (dep: Deployment) =>
  hostsFor(dep, 'nova').flatMap((h) => CONTROL_BINARIES.map((binary) => ({ host: h.name, binary })));

export const NOVA = defineOpenstackService({
  name: 'nova',
  title: 'nova',
  enable: { key: 'enable_nova', default: false },
  requires: [
    { service: 'keystone', why: 'it authenticates every request with Keystone' },
    { service: 'placement', why: 'its scheduler claims resources in Placement' },
    { service: 'neutron', why: "it looks every server's ports and security groups up in Neutron" },
    { service: 'rabbitmq', why: 'its API, conductor, scheduler and computes talk over RabbitMQ' },
    { service: 'mariadb', why: 'its databases are reached through HAProxy on the VIP' },
    { service: 'haproxy', why: 'its databases are reached through HAProxy on the VIP' },
  ],
  groups: ['nova-api', 'nova', 'control'],
  noHosts: 'warning',
  passwords: ['nova_database_password', 'nova_keystone_password'],
  settings: NOVA_SETTINGS,
  packages: ['nova-api', 'nova-conductor', 'nova-scheduler', 'python3-nova'],
  recommends: false,
  databases: () => [NOVA_API_DB, NOVA_CELL_DB, NOVA_CELL0_DB],
  keystone: (dep) => [
    {
      // kolla gives nova the `service` role too: Zed's service-to-service policies check it.
      user: {
        name: NOVA_KEYSTONE_USER.username,
        passwordKey: NOVA_KEYSTONE_USER.passwordKey,
        roles: ['admin', 'service'],
      },
      service: { name: 'nova', type: 'compute', description: 'Compute API' },
      url: `${vipUrl(dep, NOVA_API_PORT)}/v2.1`,
    },
  ],
  daemons: [
    { name: 'nova-conductor', stopTimeoutMs: 30_000 },
    { name: 'nova-scheduler', stopTimeoutMs: 30_000 },
    {
      name: 'nova-api',
      stopSignal: UWSGI_STOP_SIGNAL,
      stopTimeoutMs: 20_000,
      api: { lb: 'nova_api', port: NOVA_API_PORT, healthPath: NOVA_API_HEALTH },
    },
    {
      name: 'nova-metadata',
      stopSignal: UWSGI_STOP_SIGNAL,
      stopTimeoutMs: 20_000,
      api: { lb: 'nova_metadata', port: NOVA_METADATA_PORT, healthPath: NOVA_METADATA_HEALTH },
    },
  ],
  render: renderNova,
  bootstrap: {
    package: 'python3-nova',
    steps: () => [
      { title: 'api_db sync', argv: manage('api_db', 'sync') },
      { title: 'map_cell0', argv: manage('cell_v2', 'map_cell0') },
      { title: 'db sync', argv: manage('db', 'sync') },
      { title: 'cell1', argv: ['/bin/sh', '-c', CELL1_SCRIPT] },
      { title: 'online data migrations', argv: manage('db', 'online_data_migrations') },
    ],
    // cell1 records both URLs: a changed broker list or password runs the bootstrap (and update_cell) again.
    inputs: (dep) => `${transportUrl(dep) ?? ''} ${databaseUrl(dep, NOVA_CELL_DB)}`,
  },
  afterStart: async (ctx, sql) => {
    await waitServicesUp(sql, controlExpected(ctx.dep));
    return [];
  },
  status: async (ctx) => {
    const sql = await statusSql(ctx);
    const records = await novaServices(sql).catch(() => undefined);
    if (!records)
      return {
        lines: ['  services: the nova database did not answer'],
        problems: ['nova: cannot read nova.services'],
        data: undefined,
      };
    // The API services register too but never report: only conductor and scheduler heartbeat.
    const own = novaServiceStatus(
      records.filter((r) => (CONTROL_BINARIES as readonly string[]).includes(r.binary)),
      controlExpected(ctx.dep),
      'nova',
    );
    return { ...own, data: records };
  },
});

export { manage as novaManage };
