// The OpenStack API-service framework: what Keystone uses first and Glance, Nova, Neutron, Cinder, Placement and
// Swift will use next. Per service:
//   - its database and user, created once through the VIP (from a DB host's own mariadb client, never from the
//     machine running stackha);
//   - its schema synced from exactly one host, under a lease lock kept in the database, while the others wait;
//   - its oslo.config INI rendered per host from shared section helpers (database on the VIP, every memcached
//     server, a RabbitMQ transport URL with every broker, keystone_authtoken);
//   - its WSGI application under uwsgi, bound to the host's internal address;
//   - an HAProxy frontend on the VIP with an HTTP health check, redispatch and retries.
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Host } from '../../hosts/host.js';
import type { Deployment, HostSpec } from '../../model.js';
import { hostsFor } from '../../topology.js';
import { CommandError } from '../../util/exec.js';
import { WaitAborted, waitFor } from '../../util/wait.js';
import {
  daemonsFile,
  ensureDirs,
  readApplied,
  recordApplied,
  staleFiles,
  syncFiles,
  wantedState,
  writeFiles,
} from '../files.js';
import type { LoadBalancedService } from '../haproxy/haproxy.js';
import { apiHealthy } from '../health.js';
import { MARIADB_PORT } from '../mariadb/galera.js';
import { memcachedServers } from '../memcached/memcached.js';
import { AMQP_PORT, RABBITMQ_USER } from '../rabbitmq/rabbitmq.js';
import type { DeployContext, HostOutcome, RenderTarget, ServiceResult, ServiceUnit } from '../types.js';
import { hostOf, target } from '../types.js';

// ------------------------------------------------------------------------------------------------ INI rendering

export type IniValue = string | number | boolean | readonly string[];
/** One `[section]` of an oslo.config file: its keys in the order they are written. */
export interface IniSection {
  readonly name: string;
  readonly entries: readonly (readonly [key: string, value: IniValue])[];
}

function iniValue(v: IniValue): string {
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'number') return String(v);
  if (typeof v === 'string') return v;
  return v.join(',');
}

/**
 * Renders an oslo.config INI file. Sections with the same name are merged in order (so helpers can each add to
 * [DEFAULT]); a section left without entries is not written.
 */
export function renderIni(header: string, sections: readonly IniSection[]): string {
  const merged = new Map<string, (readonly [string, IniValue])[]>();
  for (const s of sections) merged.set(s.name, [...(merged.get(s.name) ?? []), ...s.entries]);
  const out = header
    .trimEnd()
    .split('\n')
    .map((l) => (l ? `# ${l}` : '#'));
  for (const [name, entries] of merged) {
    if (entries.length === 0) continue;
    out.push('', `[${name}]`);
    for (const [k, v] of entries) out.push(`${k} = ${iniValue(v)}`);
  }
  return `${out.join('\n')}\n`;
}

export const section = (name: string, entries: IniSection['entries']): IniSection => ({ name, entries });

/** The base URL of an API on the internal VIP. */
export function vipUrl(dep: Deployment, port: number): string {
  return `http://${dep.globals.internalVip}:${port}`;
}

/** A service's database: its name, its user, and the passwords.yml key of the user's password. */
export interface ApiDatabase {
  readonly name: string;
  readonly user: string;
  readonly passwordKey: string;
}

/** SQLAlchemy URL of a service database on the VIP (HAProxy sends every connection to the one Galera writer). */
export function databaseUrl(dep: Deployment, db: ApiDatabase): string {
  const pw = encodeURIComponent(dep.passwords[db.passwordKey] ?? '');
  return `mysql+pymysql://${db.user}:${pw}@${dep.globals.internalVip}:${MARIADB_PORT}/${db.name}`;
}

/** [database]: the VIP, short-lived pooled connections (kolla's values), retry forever while the DB fails over. */
export function databaseSection(dep: Deployment, db: ApiDatabase, name = 'database'): IniSection {
  return section(name, [
    ['connection', databaseUrl(dep, db)],
    // Recycled well before HAProxy's 1 h DB timeouts; a connection to a node that failed is replaced quickly.
    ['connection_recycle_time', 10],
    ['max_pool_size', 1],
    ['max_retries', -1],
  ]);
}

/**
 * [cache]: every memcached server (the client hashes keys across them and skips a dead one), never the VIP.
 * oslo.cache 3.2 (Debian 12, zed) has `oslo_cache.memcache_pool` with python3-memcache; pymemcache is not packaged.
 * Caching is off when memcached is not deployed.
 */
export function cacheSection(dep: Deployment): IniSection {
  const servers = memcachedServers(dep);
  if (servers.length === 0) return section('cache', [['enabled', false]]);
  return section('cache', [
    ['enabled', true],
    ['backend', 'oslo_cache.memcache_pool'],
    ['memcache_servers', servers],
    // A dead server costs one socket timeout, then it is skipped for dead_retry seconds.
    ['memcache_socket_timeout', 1],
    ['memcache_dead_retry', 30],
    ['memcache_pool_connection_get_timeout', 2],
  ]);
}

/** The oslo.messaging transport URL: every broker (the client walks the list), never the VIP; vhost `/`. */
export function transportUrl(dep: Deployment): string | undefined {
  const brokers = hostsFor(dep, 'rabbitmq');
  if (brokers.length === 0) return undefined;
  const pw = encodeURIComponent(dep.passwords.rabbitmq_password ?? '');
  return `rabbit://${brokers.map((h) => `${RABBITMQ_USER}:${pw}@${h.address}:${AMQP_PORT}`).join(',')}//`;
}

/**
 * [DEFAULT] transport_url, [oslo_messaging_rabbit] (quorum queues when om_enable_rabbitmq_quorum_queues, durable
 * queues for the mirrored-queue policy) and [oslo_messaging_notifications] with the given driver (`noop` unless a
 * consumer of notifications is deployed).
 */
export function messagingSections(dep: Deployment, notificationDriver = 'noop'): IniSection[] {
  const url = transportUrl(dep);
  if (url === undefined) return [];
  const rabbit: (readonly [string, IniValue])[] = [];
  if (dep.globals.rabbitmqQuorumQueues) rabbit.push(['rabbit_quorum_queue', true]);
  else if (dep.globals.rabbitmqMirroredQueues) rabbit.push(['amqp_durable_queues', true]);
  // Fail over to the next broker quickly (oslo.messaging's defaults wait longer).
  rabbit.push(['kombu_reconnect_delay', 0.5], ['heartbeat_timeout_threshold', 15]);
  return [
    section('DEFAULT', [['transport_url', url]]),
    section('oslo_messaging_rabbit', rabbit),
    section('oslo_messaging_notifications', [['driver', notificationDriver]]),
  ];
}

/** Keystone's public API port on the VIP and on every Keystone host. */
export const KEYSTONE_PUBLIC_PORT = 5000;

/** The service user an API service authenticates with (created in Keystone by that service's deploy). */
export interface ServiceUser {
  readonly username: string;
  /** passwords.yml key of its Keystone password, e.g. glance_keystone_password. */
  readonly passwordKey: string;
}

/**
 * [keystone_authtoken] for a service that validates tokens (Glance, Nova, ...): Keystone on the VIP, the
 * service's own user, and token validations cached in every memcached server, encrypted with memcache_secret_key.
 */
export function keystoneAuthtokenSection(
  dep: Deployment,
  user: ServiceUser,
  serviceType?: string,
): IniSection {
  const url = vipUrl(dep, KEYSTONE_PUBLIC_PORT);
  const entries: (readonly [string, IniValue])[] = [
    ['www_authenticate_uri', url],
    ['auth_url', url],
    ['auth_type', 'password'],
    ['project_domain_id', 'default'],
    ['user_domain_id', 'default'],
    ['project_name', 'service'],
    ['username', user.username],
    ['password', dep.passwords[user.passwordKey] ?? ''],
    ['region_name', 'RegionOne'],
    ...(serviceType ? ([['service_type', serviceType]] as const) : []),
    // Without it every service logs a deprecation warning at start; service tokens must carry the service role.
    ['service_token_roles_required', true],
  ];
  const servers = memcachedServers(dep);
  if (servers.length > 0) {
    entries.push(
      ['memcached_servers', servers],
      ['memcache_security_strategy', 'ENCRYPT'],
      ['memcache_secret_key', dep.passwords.memcache_secret_key ?? ''],
      ['memcache_pool_socket_timeout', 1],
      ['memcache_pool_dead_retry', 30],
    );
  }
  return section('keystone_authtoken', entries);
}

/**
 * A keystoneauth section through which one service calls another ([placement], [glance], [neutron], [service_user]
 * of nova.conf): the given service user in the `service` project, Keystone on the VIP, the catalog's internal
 * endpoints.
 */
export function serviceAuthSection(
  dep: Deployment,
  name: string,
  user: ServiceUser,
  extra: IniSection['entries'] = [],
): IniSection {
  return section(name, [
    ['auth_type', 'password'],
    ['auth_url', vipUrl(dep, KEYSTONE_PUBLIC_PORT)],
    ['username', user.username],
    ['password', dep.passwords[user.passwordKey] ?? ''],
    ['user_domain_name', 'Default'],
    ['project_domain_name', 'Default'],
    ['project_name', 'service'],
    ['region_name', 'RegionOne'],
    ...extra,
  ]);
}

/**
 * argv run as a service's own user and group (and its supplementary groups): how a bootstrap command writes its log
 * and state files with the owner the daemon will need. setpriv execs, so a daemon started this way keeps its pid.
 */
export function asUser(user: string, argv: readonly string[]): string[] {
  return ['/usr/bin/setpriv', `--reuid=${user}`, `--regid=${user}`, '--init-groups', '--', ...argv];
}

/** [oslo_middleware]: trust X-Forwarded-* from HAProxy (which sets X-Forwarded-For and strips the proto header). */
export function proxyHeadersSection(): IniSection {
  return section('oslo_middleware', [['enable_proxy_headers_parsing', true]]);
}

// ------------------------------------------------------------------------------------------------ uwsgi

export interface UwsgiOptions {
  /** The service name (for the comment). */
  readonly service: string;
  readonly port: number;
  /** The WSGI script, e.g. /usr/bin/keystone-wsgi-public. */
  readonly wsgiFile: string;
  /** Environment of the application, e.g. OS_KEYSTONE_CONFIG_FILES. */
  readonly env: Readonly<Record<string, string>>;
  readonly processes: number;
  readonly threads: number;
  /** Working directory (host path, under the root): never the directory stackha was started from. */
  readonly chdir: string;
  /** The user (and its group) the workers run as, once the master has bound the socket; root when omitted. */
  readonly user?: string;
}

/**
 * uwsgi's ini for one API service on one host: bound to the host's internal address (HAProxy binds the VIP on the
 * same port), each worker loading the application itself (lazy-apps: no DB or memcached connection shared across
 * a fork), exit when the app cannot load (so the health check fails rather than a 500 being served), request logs
 * only for errors. `die-on-term` makes SIGTERM stop it; stackha itself stops it with SIGINT.
 */
export function renderUwsgiIni(t: RenderTarget, o: UwsgiOptions): string {
  const lines = [
    `; Rendered by stackha for ${t.host.name} (${o.service}); local edits are overwritten by the next deploy.`,
    '[uwsgi]',
    'plugins = python3',
    `http-socket = ${t.host.address}:${o.port}`,
    `wsgi-file = ${o.wsgiFile}`,
    `chdir = ${o.chdir}`,
    'master = true',
    ...(o.user ? [`uid = ${o.user}`, `gid = ${o.user}`] : []),
    `processes = ${o.processes}`,
    `threads = ${o.threads}`,
    'enable-threads = true',
    'lazy-apps = true',
    'need-app = true',
    'die-on-term = true',
    'thunder-lock = true',
    'buffer-size = 65535',
    'harakiri = 60',
    'worker-reload-mercy = 5',
    'reload-mercy = 5',
    'disable-logging = true',
    'log-4xx = true',
    'log-5xx = true',
    // http-socket closes the connection after each response without saying so: a client (or HAProxy) reusing it
    // would fail its next request. Say it.
    'add-header = Connection: close',
    ...Object.entries(o.env).map(([k, v]) => `env = ${k}=${v}`),
  ];
  return `${lines.join('\n')}\n`;
}

// ------------------------------------------------------------------------------------------------ HAProxy

/**
 * The HAProxy frontend of an API service on the VIP: round robin over every host, an HTTP health check (a server
 * failing it leaves the pool after `fall` checks: 0.4 s with the stackha profile), and retries that move to
 * another server (`option redispatch 1`) on a refused connection or an empty/garbled response (a backend killed
 * mid-request), so a client rarely sees a backend die.
 */
export function apiLoadBalanced(
  dep: Deployment,
  o: { name: string; port: number; healthPath: string; hosts: readonly HostSpec[] },
): LoadBalancedService {
  return {
    name: o.name,
    mode: 'http',
    bind: { address: dep.globals.internalVip, port: o.port },
    servers: o.hosts.map((h) => ({ name: h.name, address: h.address, port: o.port })),
    httpCheck: { path: o.healthPath },
    extra: [
      'balance roundrobin',
      'option redispatch 1',
      'retries 3',
      'retry-on conn-failure empty-response junk-response',
    ],
  };
}

// ------------------------------------------------------------------------------------------------ SQL through the VIP

/** Runs SQL (given on stdin) as the database root through the VIP, from a DB host's own mariadb client. */
export type AdminSql = (sql: string, timeoutMs?: number) => Promise<string>;

const ADMIN_CNF = '/etc/stackha/db-admin.cnf';

export function sqlString(s: string): string {
  return `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

export function sqlIdent(s: string): string {
  if (!/^[A-Za-z0-9_]+$/.test(s)) throw new Error(`not a plain SQL identifier: ${s}`);
  return `\`${s}\``;
}

/**
 * The admin SQL runner: the first DB host's mariadb client connecting to the VIP. The root password sits in a 0600
 * defaults file on that host (written only when it differs), never in a command line.
 */
export async function adminSql(ctx: DeployContext): Promise<AdminSql> {
  const db = hostsFor(ctx.dep, 'mariadb')[0];
  if (!db) throw new Error('no MariaDB host: an API service needs enable_mariadb');
  const host = hostOf(ctx, db.name);
  await syncFiles(host, [
    {
      path: ADMIN_CNF,
      content: `[client]\nuser = root\npassword = ${ctx.dep.passwords.database_password ?? ''}\n`,
      mode: 0o600,
    },
  ]);
  return (sql, timeoutMs = 30_000) =>
    host.run(
      [
        '/usr/bin/mariadb',
        `--defaults-extra-file=${ADMIN_CNF}`,
        '-h',
        ctx.dep.globals.internalVip,
        '-P',
        String(MARIADB_PORT),
        '-N',
        '-B',
        '--connect-timeout=5',
      ],
      { input: sql, timeoutMs },
    );
}

const STATE_DB = 'stackha';

/** SQL that creates stackha's own bookkeeping tables (deploy markers and lease locks), if missing. */
export const STATE_TABLES_SQL = `CREATE DATABASE IF NOT EXISTS ${STATE_DB};
CREATE TABLE IF NOT EXISTS ${STATE_DB}.deploy_markers (name VARCHAR(100) PRIMARY KEY, value VARCHAR(200) NOT NULL,
  host VARCHAR(100) NOT NULL, updated TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP);
CREATE TABLE IF NOT EXISTS ${STATE_DB}.locks (name VARCHAR(100) PRIMARY KEY, holder VARCHAR(200) NOT NULL,
  expires DATETIME NOT NULL);
`;

/** What the database already has for a service: its schema and user, and stackha's markers (name -> value). */
export interface DbState {
  readonly database: boolean;
  /** The user exists with the password of passwords.yml. */
  readonly user: boolean;
  readonly markers: ReadonlyMap<string, string>;
}

/** The query behind readDbState; each line of its output is `key<TAB>value`. */
export function dbStateSql(db: ApiDatabase, password: string): string {
  return [
    `SELECT 'database', COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME=${sqlString(db.name)};`,
    `SELECT 'user', COUNT(*) FROM mysql.user WHERE User=${sqlString(db.user)} AND Host='%' AND authentication_string=PASSWORD(${sqlString(password)});`,
    `SELECT 'tables', COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA='${STATE_DB}' AND TABLE_NAME IN ('deploy_markers','locks');`,
  ].join('\n');
}

export function parseDbState(out: string): { database: boolean; user: boolean; tables: boolean } {
  const v = new Map(out.split('\n').map((l) => l.split('\t') as [string, string]));
  return {
    database: v.get('database') === '1',
    user: v.get('user') === '1',
    tables: v.get('tables') === '2',
  };
}

/** The markers of one service (`<service>:<what>` -> value); empty when stackha's tables do not exist yet. */
export async function readMarkers(sql: AdminSql, service: string): Promise<Map<string, string>> {
  const out = await sql(
    `SELECT name, value FROM ${STATE_DB}.deploy_markers WHERE name LIKE ${sqlString(`${service}:%`)};`,
  );
  const m = new Map<string, string>();
  for (const line of out.split('\n')) {
    const [k, v] = line.split('\t');
    if (k && v !== undefined) m.set(k, v);
  }
  return m;
}

export async function writeMarker(sql: AdminSql, name: string, value: string, host: string): Promise<void> {
  await sql(
    `INSERT INTO ${STATE_DB}.deploy_markers (name, value, host) VALUES (${sqlString(name)}, ${sqlString(value)}, ${sqlString(host)})
     ON DUPLICATE KEY UPDATE value=VALUES(value), host=VALUES(host);`,
  );
}

/** SQL creating (or fixing) a service's database and user; idempotent. */
export function ensureDatabaseSql(db: ApiDatabase, password: string): string {
  const user = `${sqlString(db.user)}@'%'`;
  return [
    `CREATE DATABASE IF NOT EXISTS ${sqlIdent(db.name)};`,
    `CREATE USER IF NOT EXISTS ${user} IDENTIFIED BY ${sqlString(password)};`,
    `ALTER USER ${user} IDENTIFIED BY ${sqlString(password)};`,
    `GRANT ALL PRIVILEGES ON ${sqlIdent(db.name)}.* TO ${user};`,
  ].join('\n');
}

/**
 * Creates the service's database and user once (through the VIP) and stackha's bookkeeping tables; reads the
 * service's markers. A re-deploy with everything in place runs only read queries.
 */
export async function ensureDatabase(
  sql: AdminSql,
  service: string,
  db: ApiDatabase,
  password: string,
): Promise<{ created: boolean; markers: Map<string, string> }> {
  const st = parseDbState(await sql(dbStateSql(db, password)));
  let created = false;
  if (!st.tables) await sql(STATE_TABLES_SQL);
  if (!st.database || !st.user) {
    await sql(ensureDatabaseSql(db, password));
    created = true;
  }
  return { created, markers: await readMarkers(sql, service) };
}

/**
 * A lease lock kept in the database (a row with an expiry), so that exactly one deploy at a time runs a step such
 * as a schema sync, across processes and machines. MariaDB's GET_LOCK is node-local and refused under Galera; a
 * row through the VIP is replicated and lands on the one writer. An expired lease (its holder died) is taken over.
 */
export async function withDbLock<T>(
  sql: AdminSql,
  name: string,
  fn: () => Promise<T>,
  opts: { leaseSeconds?: number; waitMs?: number; log?: (m: string) => void } = {},
): Promise<T> {
  const holder = `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
  const lease = opts.leaseSeconds ?? 900;
  let waited = false;
  await waitFor(
    `the lock ${name}`,
    async () => {
      const out = await sql(
        `DELETE FROM ${STATE_DB}.locks WHERE name=${sqlString(name)} AND expires < NOW();
         INSERT IGNORE INTO ${STATE_DB}.locks (name, holder, expires) VALUES (${sqlString(name)}, ${sqlString(holder)}, NOW() + INTERVAL ${lease} SECOND);
         SELECT holder FROM ${STATE_DB}.locks WHERE name=${sqlString(name)};`,
      );
      if (out.trim() === holder) return true;
      if (!waited) opts.log?.(`waiting for the lock ${name}, held by ${out.trim() || 'nobody'}`);
      waited = true;
      return undefined;
    },
    { timeoutMs: opts.waitMs ?? 600_000, intervalMs: 1000 },
  );
  try {
    return await fn();
  } finally {
    await sql(
      `DELETE FROM ${STATE_DB}.locks WHERE name=${sqlString(name)} AND holder=${sqlString(holder)};`,
    ).catch(() => {});
  }
}

// ------------------------------------------------------------------------------------------------ the service

/** Everything the framework needs to know about one API service. */
export interface ApiServiceDef {
  /** Service name: the daemon's name on every host, its applied-state key and its marker prefix. */
  readonly name: string;
  /** The Debian package whose version the schema was synced for (a new version syncs again). */
  readonly package: string;
  readonly database: ApiDatabase;
  readonly port: number;
  /** GET path answering 200 while the application is loaded (/healthcheck, or the version document). */
  readonly healthPath: string;
  hosts(dep: Deployment): HostSpec[];
  /** The host's config files, directories and its uwsgi daemon. */
  render(dep: Deployment, t: RenderTarget): ServiceUnit;
  /** `<svc>-manage db_sync` on one host. */
  dbSyncArgv(t: RenderTarget): string[];
}

/** Service-specific steps; each resolves with the hosts it changed something on. */
export interface ApiServiceHooks {
  /** After config files are written, before the schema sync (Keystone: its Fernet and credential keys). */
  readonly afterConfig?: (ctx: DeployContext) => Promise<readonly string[]>;
  /** After the schema sync, before any daemon starts (Keystone: bootstrap). */
  readonly afterSchema?: (
    ctx: DeployContext,
    sql: AdminSql,
    markers: ReadonlyMap<string, string>,
  ) => Promise<readonly string[]>;
}

/** The probe stays importable from here, where API services look for it. */
export { apiHealthy };

export async function waitApiReady(
  host: Host,
  def: Pick<ApiServiceDef, 'name' | 'port' | 'healthPath'>,
  logFile: string,
  timeoutMs = 90_000,
): Promise<void> {
  await waitFor(
    `${def.name} on ${host.name} to answer ${def.healthPath}`,
    async () => {
      if ((await host.daemonPid(def.name)) === undefined) {
        const tail = (await host.readFile(logFile))?.trim().split('\n').slice(-8).join('\n');
        throw new WaitAborted(`${def.name} on ${host.name} exited${tail ? `:\n${tail}` : ''}`);
      }
      return (await apiHealthy(host, def.port, def.healthPath)) ? true : undefined;
    },
    { timeoutMs, intervalMs: 300 },
  );
}

/** uwsgi reloads on SIGTERM (unless die-on-term); SIGINT stops the master and its workers at once. */
export const UWSGI_STOP_SIGNAL: NodeJS.Signals = 'SIGINT';

/**
 * The schema sync: on the first host only, under a database lease lock, skipped when the marker says the schema
 * was synced for the installed package version. The other hosts wait (their daemons start after it).
 */
export async function syncSchema(
  ctx: DeployContext,
  def: ApiServiceDef,
  sql: AdminSql,
  markers: ReadonlyMap<string, string>,
): Promise<boolean> {
  const first = def.hosts(ctx.dep)[0];
  if (!first) return false;
  const host = hostOf(ctx, first.name);
  const version = (
    await host.run(['dpkg-query', '-W', '-f=${Version}', def.package], { timeoutMs: 15_000 })
  ).trim();
  const key = `${def.name}:db_sync`;
  if (markers.get(key) === version) return false;
  return withDbLock(
    sql,
    key,
    async () => {
      // Another deploy may have synced while this one waited for the lock.
      if ((await readMarkers(sql, def.name)).get(key) === version) return false;
      const started = Date.now();
      const argv = def.dbSyncArgv(target(ctx, first));
      const r = await host.exec(argv, { timeoutMs: 600_000 });
      if (r.code !== 0) throw new CommandError(r, first.name);
      await writeMarker(sql, key, version, first.name);
      ctx.log(
        `${def.name}: schema synced on ${first.name} for ${def.package} ${version} in ${((Date.now() - started) / 1000).toFixed(1)} s`,
      );
      return true;
    },
    { log: ctx.log },
  );
}

interface HostPlan {
  readonly spec: HostSpec;
  readonly host: Host;
  readonly unit: ServiceUnit;
  readonly want: ReturnType<typeof wantedState>;
  readonly running: boolean;
  readonly due: string | undefined;
}

/**
 * Deploys an API service: database and user, config on every host, the hooks, the schema, then the daemons:
 * stopped ones start together; running ones whose config or command line changed restart one host at a time,
 * each answering its health check before the next goes, so HAProxy always has backends.
 */
export async function deployApiService(
  ctx: DeployContext,
  def: ApiServiceDef,
  hooks: ApiServiceHooks = {},
): Promise<ServiceResult> {
  const specs = def.hosts(ctx.dep);
  const outcomes: Record<string, HostOutcome> = {};
  if (specs.length === 0) return { service: def.name, outcomes };
  const sql = await adminSql(ctx);
  const password = ctx.dep.passwords[def.database.passwordKey] ?? '';
  const db = await ensureDatabase(sql, def.name, def.database, password);
  if (db.created) ctx.log(`${def.name}: database ${def.database.name} and user ${def.database.user} ready`);

  const plans: HostPlan[] = await Promise.all(
    specs.map(async (spec) => {
      const host = hostOf(ctx, spec.name);
      const unit = def.render(ctx.dep, target(ctx, spec));
      // Asked at once (each one command over SSH); files are written once the directories are.
      const [, { stale, applied }, pid] = await Promise.all([
        ensureDirs(host, unit),
        staleFiles(host, [...unit.files, daemonsFile(def.name, unit)], def.name),
        host.daemonPid(def.name),
      ]);
      const changed = await writeFiles(host, stale);
      const want = wantedState(def.name, unit);
      const running = pid !== undefined;
      const due =
        changed.length > 0
          ? `changed: ${changed.join(', ')}`
          : applied?.config !== want.config || applied?.daemons !== want.daemons
            ? 'config not yet applied'
            : undefined;
      return { spec, host, unit, want, running, due };
    }),
  );

  const touched = new Set<string>(await hooks.afterConfig?.(ctx));
  const firstName = plans[0]?.spec.name ?? '';
  const synced = await syncSchema(ctx, def, sql, db.markers);
  if (db.created || synced) touched.add(firstName);
  for (const h of (await hooks.afterSchema?.(ctx, sql, db.markers)) ?? []) touched.add(h);

  const logFile = (p: HostPlan) => p.unit.daemons[0]?.logFile ?? '';
  const startAll = async (p: HostPlan): Promise<void> => {
    for (const d of p.unit.daemons) await p.host.startDaemon(d);
    await waitApiReady(p.host, def, logFile(p));
    await recordApplied(p.host, def.name, p.want);
  };
  await Promise.all(
    plans
      .filter((p) => !p.running)
      .map(async (p) => {
        await startAll(p);
        outcomes[p.spec.name] = 'started';
      }),
  );
  // One host at a time. Deploy's hosts drain a fronted daemon before it stops and, once it is healthy again, wait
  // until every load balancer has it UP (src/deploy/drain.ts): the next host goes only then.
  for (const p of plans.filter((x) => x.running && x.due !== undefined)) {
    ctx.log(`${def.name} on ${p.spec.name}: restarting (${p.due})`);
    for (const d of p.unit.daemons)
      await p.host.stopDaemon(d.name, { signal: UWSGI_STOP_SIGNAL, timeoutMs: 20_000 });
    await startAll(p);
    outcomes[p.spec.name] = 'restarted';
  }
  for (const p of plans) {
    outcomes[p.spec.name] ??= touched.has(p.spec.name) ? 'configured' : 'unchanged';
    ctx.log(`${def.name} on ${p.spec.name}: ${outcomes[p.spec.name]}`);
  }
  return { service: def.name, outcomes };
}
