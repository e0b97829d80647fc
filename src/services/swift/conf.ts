// Swift's configuration: the cluster-wide swift.conf (hash path secrets, storage policy), the account, container and
// object servers with their background daemons on each storage host, rsync for replication, and the proxy with
// Keystone auth and every memcached server. Debian's packages, Debian's ports (6200 object, 6201 container, 6202
// account; kolla uses 6000-6002), each server on its host's internal address (HAProxy binds the VIP on 8080).
import type { Deployment, HostSpec } from '../../model.js';
import { type IniSection, KEYSTONE_PUBLIC_PORT, renderIni, section, vipUrl } from '../api/framework.js';
import { memcachedServers } from '../memcached/memcached.js';

export const SWIFT_USER = 'swift';
export const SWIFT_DIR = '/etc/swift';
export const SWIFT_CONF = `${SWIFT_DIR}/swift.conf`;
export const SWIFT_DEVICES = '/srv/node';
/** One device per storage host: a plain directory (the lab has no disks to give; mount_check is off). */
export const SWIFT_DEVICE = 'd0';
export const SWIFT_LOG_DIR = '/var/log/swift';
export const SWIFT_CACHE = '/var/cache/swift';
export const SWIFT_STATE = '/var/lib/swift';
export const SWIFT_PROXY_PORT = 8080;
export const RSYNC_PORT = 873;
export const SWIFT_KEYSTONE_USER = { username: 'swift', passwordKey: 'swift_keystone_password' } as const;

/** The three rings and the port of their servers. */
export const RINGS = [
  { name: 'account', port: 6202 },
  { name: 'container', port: 6201 },
  { name: 'object', port: 6200 },
] as const;
export type RingName = (typeof RINGS)[number]['name'];

/** Each storage server type's background daemons (the auditors, updaters and replicators of the spec). */
export const BACKGROUND: Readonly<Record<RingName, readonly string[]>> = {
  account: ['replicator', 'auditor'],
  container: ['replicator', 'auditor', 'updater'],
  object: ['replicator', 'auditor', 'updater'],
};

const header = (host: HostSpec, what: string) =>
  `Rendered by stackha for ${host.name} (${what}); local edits are overwritten by the next deploy.`;

/**
 * swift.conf, the same on every Swift host: the hash path prefix and suffix place every object, so they are secrets
 * that must never change once data is stored (mode 0640, group swift).
 */
export function renderSwiftConf(dep: Deployment, host: HostSpec): string {
  return renderIni(
    `${header(host, 'every Swift process')}\nHolds the hash path secrets: mode 0600, owned by swift.`,
    [
      section('swift-hash', [
        ['swift_hash_path_suffix', dep.passwords.swift_hash_path_suffix ?? ''],
        ['swift_hash_path_prefix', dep.passwords.swift_hash_path_prefix ?? ''],
      ]),
      section('storage-policy:0', [
        ['name', 'Policy-0'],
        ['default', 'yes'],
      ]),
    ],
  );
}

/** A storage server's config (also read by its type's background daemons). */
export function renderStorageServerConf(host: HostSpec, ring: (typeof RINGS)[number]): string {
  const type = ring.name;
  const daemons: IniSection[] = BACKGROUND[type].map((d) =>
    section(
      `${type}-${d}`,
      d === 'replicator' ? [['rsync_module', `{replication_ip}::${type}`]] : [['log_name', `${type}-${d}`]],
    ),
  );
  return renderIni(header(host, `swift ${type} server and its background daemons`), [
    section('DEFAULT', [
      ['bind_ip', host.address],
      ['bind_port', ring.port],
      ['devices', SWIFT_DEVICES],
      ['mount_check', false],
      ['swift_dir', SWIFT_DIR],
      ['user', SWIFT_USER],
      // One process: it runs as swift from its start (a forking server drops privileges only in its workers).
      ['workers', 0],
      ['log_name', `${type}-server`],
      ['recon_cache_path', SWIFT_CACHE],
    ]),
    section('pipeline:main', [['pipeline', `healthcheck recon ${type}-server`]]),
    section(`app:${type}-server`, [['use', `egg:swift#${type}`]]),
    section('filter:healthcheck', [['use', 'egg:swift#healthcheck']]),
    section('filter:recon', [
      ['use', 'egg:swift#recon'],
      ['recon_cache_path', SWIFT_CACHE],
    ]),
    ...daemons,
  ]);
}

/** rsyncd.conf of a storage host: one module per ring over the devices, as the replicators' rsync_module says. */
export function renderRsyncdConf(host: HostSpec): string {
  const lines = [
    `# ${header(host, 'rsync for Swift replication')}`,
    `uid = ${SWIFT_USER}`,
    `gid = ${SWIFT_USER}`,
    `address = ${host.address}`,
    `port = ${RSYNC_PORT}`,
    `log file = ${SWIFT_LOG_DIR}/rsyncd.log`,
    'use chroot = no',
  ];
  for (const r of RINGS)
    lines.push(
      '',
      `[${r.name}]`,
      `path = ${SWIFT_DEVICES}`,
      'read only = false',
      `max connections = ${r.name === 'object' ? 8 : 4}`,
      `lock file = ${SWIFT_STATE}/rsync-${r.name}.lock`,
    );
  return `${lines.join('\n')}\n`;
}

/**
 * The proxy: Keystone tokens (cached in every memcached server), operator roles admin and member, the usual
 * middleware for large objects, quotas and versioning. One worker (the master restarts it if it dies).
 */
export function renderProxyServerConf(dep: Deployment, host: HostSpec): string {
  const mc = memcachedServers(dep);
  const ks = vipUrl(dep, KEYSTONE_PUBLIC_PORT);
  const pipeline = [
    'catch_errors',
    'gatekeeper',
    'healthcheck',
    'proxy-logging',
    'cache',
    'listing_formats',
    'bulk',
    'tempurl',
    'ratelimit',
    'authtoken',
    'keystoneauth',
    'copy',
    'container-quotas',
    'account-quotas',
    'slo',
    'dlo',
    'versioned_writes',
    'proxy-logging',
    'proxy-server',
  ];
  const filter = (name: string, egg: string, extra: IniSection['entries'] = []) =>
    section(`filter:${name}`, [['use', `egg:swift#${egg}`], ...extra]);
  return renderIni(
    `${header(host, 'swift proxy')}\nHolds the swift user's password: mode 0600, owned by swift.`,
    [
      section('DEFAULT', [
        ['bind_ip', host.address],
        ['bind_port', SWIFT_PROXY_PORT],
        ['swift_dir', SWIFT_DIR],
        ['user', SWIFT_USER],
        ['workers', 1],
        ['log_name', 'proxy-server'],
      ]),
      section('pipeline:main', [['pipeline', pipeline.join(' ')]]),
      section('app:proxy-server', [
        ['use', 'egg:swift#proxy'],
        ['account_autocreate', true],
        ['allow_account_management', true],
        // A storage server that does not answer in time is skipped for the next replica (HA over speed).
        ['conn_timeout', 0.5],
        ['node_timeout', 10],
      ]),
      filter('catch_errors', 'catch_errors'),
      filter('gatekeeper', 'gatekeeper'),
      filter('healthcheck', 'healthcheck'),
      filter('proxy-logging', 'proxy_logging'),
      filter('cache', 'memcache', mc.length ? [['memcache_servers', mc]] : []),
      filter('listing_formats', 'listing_formats'),
      filter('bulk', 'bulk'),
      filter('tempurl', 'tempurl'),
      filter('ratelimit', 'ratelimit'),
      section('filter:authtoken', [
        ['paste.filter_factory', 'keystonemiddleware.auth_token:filter_factory'],
        ['www_authenticate_uri', ks],
        ['auth_url', ks],
        ['auth_type', 'password'],
        ['project_domain_id', 'default'],
        ['user_domain_id', 'default'],
        ['project_name', 'service'],
        ['username', SWIFT_KEYSTONE_USER.username],
        ['password', dep.passwords[SWIFT_KEYSTONE_USER.passwordKey] ?? ''],
        ['delay_auth_decision', false],
        ['service_token_roles_required', true],
        ...(mc.length
          ? ([
              ['memcached_servers', mc],
              ['memcache_security_strategy', 'ENCRYPT'],
              ['memcache_secret_key', dep.passwords.memcache_secret_key ?? ''],
            ] as const)
          : []),
      ]),
      filter('keystoneauth', 'keystoneauth', [
        ['operator_roles', ['admin', 'member']],
        ['reseller_admin_role', 'ResellerAdmin'],
      ]),
      filter('copy', 'copy'),
      filter('container-quotas', 'container_quotas'),
      filter('account-quotas', 'account_quotas'),
      filter('slo', 'slo'),
      filter('dlo', 'dlo'),
      filter('versioned_writes', 'versioned_writes'),
    ],
  );
}
