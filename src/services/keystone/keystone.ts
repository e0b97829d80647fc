// Keystone on every control host, behind the VIP: Fernet tokens whose keys are created once and are identical on
// every host, bootstrap with the admin password of passwords.yml and endpoints on the VIP, caching in every
// memcached server, uwsgi serving keystone-wsgi-public on each host's internal address.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { readFileStates } from '../../hosts/batch.js';
import type { FileState, Host } from '../../hosts/host.js';
import { shellScript } from '../../hosts/shell.js';
import type { Deployment, HostSpec } from '../../model.js';
import { type SettingsTable, integerSetting, readSettings } from '../../settings.js';
import { hostsFor } from '../../topology.js';
import { writeFileAtomic } from '../../util/atomic.js';
import { CommandError } from '../../util/exec.js';
import {
  type AdminSql,
  type ApiServiceDef,
  KEYSTONE_PUBLIC_PORT,
  UWSGI_STOP_SIGNAL,
  apiLoadBalanced,
  cacheSection,
  databaseSection,
  deployApiService,
  messagingSections,
  proxyHeadersSection,
  renderIni,
  renderUwsgiIni,
  section,
  vipUrl,
  waitApiReady,
  writeMarker,
} from '../api/framework.js';
import { HTTP_DRAIN_MS, type ServiceDeclaration } from '../contract.js';
import { digest, wantedState } from '../files.js';
import type { LoadBalancedService } from '../haproxy/haproxy.js';
import { apiHealthy } from '../health.js';
import { restartUnit } from '../simple.js';
import type { DeployContext, RenderTarget, ServiceResult, ServiceUnit } from '../types.js';
import { hostIn, hostOf, target, targetIn } from '../types.js';
import { formatKeystoneStatus, keystoneProblems, keystoneStatus } from './status.js';

export const KEYSTONE_PORT = KEYSTONE_PUBLIC_PORT;
export const KEYSTONE_CONF = '/etc/keystone/keystone.conf';
export const KEYSTONE_UWSGI_INI = '/etc/keystone/keystone-uwsgi.ini';
export const FERNET_KEYS_DIR = '/etc/keystone/fernet-keys';
export const CREDENTIAL_KEYS_DIR = '/etc/keystone/credential-keys';
export const KEYSTONE_LOG = '/var/log/keystone/keystone.log';
export const KEYSTONE_UWSGI_LOG = '/var/log/keystone/uwsgi.log';
export const KEYSTONE_LB_NAME = 'keystone_internal';
export const KEYSTONE_HEALTH_PATH = '/healthcheck';
export const KEYSTONE_REGION = 'RegionOne';
export const KEYSTONE_ADMIN = { user: 'admin', project: 'admin', role: 'admin' } as const;
/** Active Fernet keys: staged (0), primary (highest) and secondaries. A token outlives one rotation, not two. */
export const FERNET_MAX_ACTIVE_KEYS = 3;
export const KEYSTONE_MANAGE = '/usr/bin/keystone-manage';
/** The name clouds.yaml gives the admin cloud (`openstack --os-cloud stackha-admin ...`). */
export const ADMIN_CLOUD = 'stackha-admin';

export const KEYSTONE_DB = {
  name: 'keystone',
  user: 'keystone',
  passwordKey: 'keystone_database_password',
} as const;

export function keystoneEnabled(dep: Deployment): boolean {
  return hostsFor(dep, 'keystone').length > 0;
}

export function keystoneHosts(dep: Deployment): HostSpec[] {
  return hostsFor(dep, 'keystone');
}

export const KEYSTONE_SETTINGS = {
  fernet_token_expiry: { schema: integerSetting(86400, 60, 31_536_000, 'seconds') },
  keystone_uwsgi_processes: { schema: integerSetting(2, 1, 64) },
  keystone_uwsgi_threads: { schema: integerSetting(2, 1, 64) },
} as const satisfies SettingsTable;

const keystoneSettings = (dep: Deployment) => readSettings(dep.globals.settings, KEYSTONE_SETTINGS);

/** uwsgi workers per host: 2 processes x 2 threads by default (password hashing releases the GIL). */
export function keystoneWorkers(dep: Deployment): { processes: number; threads: number } {
  const s = keystoneSettings(dep);
  return { processes: s.keystone_uwsgi_processes, threads: s.keystone_uwsgi_threads };
}

export function renderKeystoneConf(dep: Deployment, t: RenderTarget): string {
  const fernet = `${FERNET_KEYS_DIR}/`;
  return renderIni(
    `Rendered by stackha for ${t.host.name}; local edits are overwritten by the next deploy.
Holds the database and RabbitMQ passwords: mode 0600.`,
    [
      section('DEFAULT', [
        ['log_file', `${KEYSTONE_LOG}`],
        ['use_stderr', false],
        ['debug', false],
      ]),
      ...messagingSections(dep),
      databaseSection(dep, KEYSTONE_DB),
      cacheSection(dep),
      section('token', [
        ['provider', 'fernet'],
        ['expiration', keystoneSettings(dep).fernet_token_expiry],
      ]),
      // Every host has the same keys (stackha distributes them); auth receipts share the token keys.
      section('fernet_tokens', [
        ['key_repository', fernet],
        ['max_active_keys', FERNET_MAX_ACTIVE_KEYS],
      ]),
      section('fernet_receipts', [
        ['key_repository', fernet],
        ['max_active_keys', FERNET_MAX_ACTIVE_KEYS],
      ]),
      section('credential', [['key_repository', `${CREDENTIAL_KEYS_DIR}/`]]),
      section('oslo_concurrency', [['lock_path', '/var/lib/keystone/tmp']]),
      proxyHeadersSection(),
    ],
  );
}

export function renderKeystoneUwsgi(dep: Deployment, t: RenderTarget): string {
  return renderUwsgiIni(t, {
    service: 'keystone',
    port: KEYSTONE_PORT,
    wsgiFile: '/usr/bin/keystone-wsgi-public',
    env: { OS_KEYSTONE_CONFIG_FILES: `${KEYSTONE_CONF}` },
    chdir: '/var/lib/keystone',
    ...keystoneWorkers(dep),
  });
}

export function renderKeystone(dep: Deployment, t: RenderTarget): ServiceUnit {
  return {
    files: [
      { path: KEYSTONE_CONF, content: renderKeystoneConf(dep, t), mode: 0o600 },
      { path: KEYSTONE_UWSGI_INI, content: renderKeystoneUwsgi(dep, t), mode: 0o644 },
    ],
    dirs: [
      { path: '/etc/keystone', mode: 0o755 },
      // Keys are created or copied by stackha (see syncKeystoneKeys), never rendered: only the directories here.
      { path: FERNET_KEYS_DIR, mode: 0o700 },
      { path: CREDENTIAL_KEYS_DIR, mode: 0o700 },
      { path: '/var/log/keystone', mode: 0o750 },
      { path: '/var/lib/keystone/tmp', mode: 0o750 },
    ],
    daemons: [
      {
        name: 'keystone',
        // The Debian build: the python3 plugin embeds /usr/bin/python3, whatever python3 is first on PATH.
        argv: ['/usr/bin/uwsgi', '--ini', `${KEYSTONE_UWSGI_INI}`],
        stopSignal: UWSGI_STOP_SIGNAL,
        logFile: KEYSTONE_UWSGI_LOG,
      },
    ],
  };
}

export function keystoneManageArgv(t: RenderTarget, command: string, ...args: string[]): string[] {
  return [KEYSTONE_MANAGE, '--config-file', `${KEYSTONE_CONF}`, command, ...args];
}

/** As root in the lab: keystone-manage would otherwise chown key files to a `keystone` user. */
const AS_ROOT = ['--keystone-user', 'root', '--keystone-group', 'root'];

export const KEYSTONE: ApiServiceDef = {
  name: 'keystone',
  package: 'python3-keystone',
  database: KEYSTONE_DB,
  port: KEYSTONE_PORT,
  healthPath: KEYSTONE_HEALTH_PATH,
  hosts: keystoneHosts,
  render: renderKeystone,
  dbSyncArgv: (t) => keystoneManageArgv(t, 'db_sync'),
};

export function keystoneLoadBalanced(dep: Deployment): LoadBalancedService[] {
  if (!keystoneEnabled(dep)) return [];
  return [
    apiLoadBalanced(dep, {
      name: KEYSTONE_LB_NAME,
      port: KEYSTONE_PORT,
      healthPath: KEYSTONE_HEALTH_PATH,
      hosts: keystoneHosts(dep),
    }),
  ];
}

// ------------------------------------------------------------------------------------------------ keys

/** A key repository: key number -> key (a 44-character urlsafe base64 Fernet key). */
export type KeySet = ReadonlyMap<number, string>;

/** The two repositories every Keystone host must hold identically. */
export const KEY_REPOSITORIES = [
  { name: 'fernet', dir: FERNET_KEYS_DIR, setup: 'fernet_setup' },
  { name: 'credential', dir: CREDENTIAL_KEYS_DIR, setup: 'credential_setup' },
] as const;
export type KeyRepository = (typeof KEY_REPOSITORIES)[number];

/** A short digest of a whole key set: equal on two hosts exactly when their repositories hold the same keys. */
export function keySetFingerprint(keys: KeySet): string {
  const h = createHash('sha256');
  for (const [n, k] of [...keys].sort((a, b) => a[0] - b[0])) h.update(`${n}\0${k}\0`);
  return h.digest('hex').slice(0, 12);
}

/** The primary key's number: the highest (0 is the staged key, promoted by the next rotation). */
export function primaryKey(keys: KeySet): number | undefined {
  return keys.size === 0 ? undefined : Math.max(...keys.keys());
}

/**
 * Reads a host's key repository; an empty map when the host has no such directory. Files not named by a number are
 * ignored. A listing that fails for another reason throws: a host that cannot be read must never look like a host
 * without keys, or new keys could be created beside the existing ones.
 */
export async function readKeySet(host: Host, dir: string): Promise<Map<number, string>> {
  const keys = new Map<number, string>();
  for (const [n, state] of await readKeyStates(host, dir)) if (state.content) keys.set(n, state.content);
  return keys;
}

/** Lists a key repository: nothing when the directory does not exist, the names of its numbered files otherwise. */
export const LIST_KEYS_SCRIPT = [
  '[ -e "$1" ] || exit 0',
  `exec find "$1" -maxdepth 1 -type f -name '[0-9]*' -printf '%f\\n'`,
].join('\n');

/**
 * The numbered files of a key repository with what each holds and its mode: one command to list them, one to read
 * them all (src/hosts/batch.ts). A listing that fails throws (readKeySet says why).
 */
async function readKeyStates(host: Host, dir: string): Promise<Map<number, FileState>> {
  const r = await host.exec(shellScript(LIST_KEYS_SCRIPT, [dir]), { timeoutMs: 10_000 });
  if (r.code !== 0) throw new CommandError({ ...r, argv: ['find', dir] }, host.name);
  const names = r.stdout.split('\n').filter((name) => /^\d+$/.test(name));
  const states = await readFileStates(
    host,
    names.map((n) => `${dir}/${n}`),
  );
  return new Map(names.map((n, i) => [Number(n), states[i] as FileState]));
}

/**
 * Which host's keys every other host should get: the most advanced set (highest primary key number, i.e. the
 * most rotations), then the set most hosts already share, then inventory order. Undefined when no host has keys.
 */
export function chooseKeySource(sets: readonly { host: string; keys: KeySet }[]): string | undefined {
  const withKeys = sets.filter((s) => s.keys.size > 0);
  if (withKeys.length === 0) return undefined;
  const sharing = (s: { keys: KeySet }) =>
    withKeys.filter((o) => keySetFingerprint(o.keys) === keySetFingerprint(s.keys)).length;
  let best = withKeys[0];
  for (const s of withKeys.slice(1)) {
    if (!best) break;
    const a = primaryKey(s.keys) ?? -1;
    const b = primaryKey(best.keys) ?? -1;
    if (a > b || (a === b && sharing(s) > sharing(best))) best = s;
  }
  return best?.host;
}

/**
 * Makes the host's repository hold exactly `keys` (files 0600 in a 0700 directory): new and changed keys are
 * written first (atomically), then keys the source no longer has are removed, so the host can always decrypt what
 * the source issues. Resolves true when something changed.
 */
export async function writeKeySet(host: Host, dir: string, keys: KeySet): Promise<boolean> {
  // The listing needs no directory made first: a missing one lists as empty, as the new one would.
  const [, states] = await Promise.all([host.mkdir(dir, { mode: 0o700 }), readKeyStates(host, dir)]);
  let changed = false;
  const current = new Map<number, FileState>();
  for (const [n, state] of states) if (state.content) current.set(n, state);
  for (const [n, k] of [...keys].sort((a, b) => b[0] - a[0])) {
    const path = `${dir}/${n}`;
    const have = current.get(n);
    if (have?.content === k && have.mode === 0o600) continue;
    await host.writeFile(path, k, { mode: 0o600 });
    changed = true;
  }
  for (const n of current.keys()) {
    if (keys.has(n)) continue;
    await host.remove(`${dir}/${n}`);
    changed = true;
  }
  return changed;
}

/** Runs keystone-manage on a host (keys, rotation): resolves with its stdout, rejects with a CommandError. */
export async function keystoneManage(
  host: Host,
  t: RenderTarget,
  command: string,
  args: readonly string[] = AS_ROOT,
  env?: Readonly<Record<string, string>>,
): Promise<string> {
  const r = await host.exec(keystoneManageArgv(t, command, ...args), {
    timeoutMs: 180_000,
    ...(env ? { env } : {}),
  });
  if (r.code !== 0) throw new CommandError(r, host.name);
  return r.stdout;
}

export interface KeySyncResult {
  /** Per repository: the host the keys came from, or `created on <host>`. */
  readonly sources: Readonly<Record<string, string>>;
  /** Hosts whose keys changed. */
  readonly changed: readonly string[];
}

/**
 * Every Keystone host gets the same Fernet and credential keys. Keys are created once (`fernet_setup` /
 * `credential_setup` on the first host) only when no host has any; otherwise the most advanced host's keys are
 * copied: a host added later, or one that missed a rotation, gets the existing keys and never new ones (new keys
 * on one host would invalidate every token the others issued).
 */
export async function syncKeystoneKeys(
  ctx: Pick<DeployContext, 'dep' | 'hosts' | 'log'>,
): Promise<KeySyncResult> {
  const specs = keystoneHosts(ctx.dep);
  const sources: Record<string, string> = {};
  const changed = new Set<string>();
  const first = specs[0];
  if (!first) return { sources, changed: [] };
  const tgt = (s: HostSpec): RenderTarget => ({ host: s });
  const hostNamed = (n: string): Host => {
    const h = ctx.hosts.get(n);
    if (!h) throw new Error(`no connection to host ${n}`);
    return h;
  };
  // The two repositories are independent: handled side by side (keystone-manage takes ~2.5 s to start).
  const one = async (repo: KeyRepository): Promise<void> => {
    let sets = await Promise.all(
      specs.map(async (s) => ({ host: s.name, keys: await readKeySet(hostNamed(s.name), repo.dir) })),
    );
    let source = chooseKeySource(sets);
    if (source === undefined) {
      await keystoneManage(hostNamed(first.name), tgt(first), repo.setup);
      ctx.log(`keystone: ${repo.name} keys created on ${first.name} (no host had any)`);
      sources[repo.name] = `created on ${first.name}`;
      changed.add(first.name);
      sets = [{ host: first.name, keys: await readKeySet(hostNamed(first.name), repo.dir) }, ...sets];
      source = first.name;
    } else {
      sources[repo.name] = source;
    }
    const keys = sets.find((s) => s.host === source)?.keys ?? new Map<number, string>();
    if (keys.size === 0) throw new Error(`keystone: ${repo.name} keys on ${source} are empty`);
    const fp = keySetFingerprint(keys);
    await Promise.all(
      specs
        .filter((s) => s.name !== source)
        .map(async (s) => {
          const before = sets.find((x) => x.host === s.name)?.keys ?? new Map();
          if (await writeKeySet(hostNamed(s.name), repo.dir, keys)) {
            changed.add(s.name);
            ctx.log(
              `keystone: ${repo.name} keys of ${s.name} ${before.size === 0 ? 'copied' : 'replaced'} from ${source} ` +
                `(primary ${primaryKey(keys)}, ${fp})`,
            );
          }
        }),
    );
  };
  // Both finish before a failure is reported: nothing keeps running behind the caller's back.
  const settled = await Promise.allSettled(KEY_REPOSITORIES.map(one));
  for (const r of settled) if (r.status === 'rejected') throw r.reason;
  return { sources, changed: [...changed] };
}

// ------------------------------------------------------------------------------------------------ bootstrap

export function bootstrapArgs(dep: Deployment): string[] {
  const url = vipUrl(dep, KEYSTONE_PORT);
  return [
    '--bootstrap-username',
    KEYSTONE_ADMIN.user,
    '--bootstrap-project-name',
    KEYSTONE_ADMIN.project,
    '--bootstrap-role-name',
    KEYSTONE_ADMIN.role,
    '--bootstrap-service-name',
    'keystone',
    '--bootstrap-region-id',
    KEYSTONE_REGION,
    '--bootstrap-admin-url',
    url,
    '--bootstrap-internal-url',
    url,
    '--bootstrap-public-url',
    url,
  ];
}

/** What the bootstrap marker records: a digest of its arguments and the admin password (not the password). */
export function bootstrapDigest(dep: Deployment): string {
  return digest(JSON.stringify([bootstrapArgs(dep), dep.passwords.keystone_admin_password ?? '']));
}

/**
 * `keystone-manage bootstrap` on the first host: the admin user, project and role, the identity service and its
 * endpoints on the VIP. The password goes through OS_BOOTSTRAP_PASSWORD, never argv. Runs again only when its
 * arguments or the admin password change (bootstrap then resets the password).
 */
export async function bootstrapKeystone(
  ctx: DeployContext,
  sql: AdminSql,
  markers: ReadonlyMap<string, string>,
): Promise<string[]> {
  const first = keystoneHosts(ctx.dep)[0];
  if (!first) return [];
  const want = bootstrapDigest(ctx.dep);
  if (markers.get('keystone:bootstrap') === want) return [];
  const started = Date.now();
  await keystoneManage(hostOf(ctx, first.name), target(ctx, first), 'bootstrap', bootstrapArgs(ctx.dep), {
    OS_BOOTSTRAP_PASSWORD: ctx.dep.passwords.keystone_admin_password ?? '',
  });
  await writeMarker(sql, 'keystone:bootstrap', want, first.name);
  ctx.log(
    `keystone: bootstrapped on ${first.name} in ${((Date.now() - started) / 1000).toFixed(1)} s (admin, endpoints on the VIP)`,
  );
  return [first.name];
}

// ------------------------------------------------------------------------------------------------ the user's view

export function renderCloudsYaml(dep: Deployment): string {
  const q = (s: string) => JSON.stringify(s);
  return `# Rendered by stackha: the admin of this deployment, through the VIP. Holds a password: mode 0600.
# OS_CLIENT_CONFIG_FILE=${join(dep.configDir, 'clouds.yaml')} openstack --os-cloud ${ADMIN_CLOUD} token issue
clouds:
  ${ADMIN_CLOUD}:
    auth:
      auth_url: ${q(vipUrl(dep, KEYSTONE_PORT))}
      username: ${q(KEYSTONE_ADMIN.user)}
      password: ${q(dep.passwords.keystone_admin_password ?? '')}
      project_name: ${q(KEYSTONE_ADMIN.project)}
      user_domain_name: Default
      project_domain_name: Default
    region_name: ${KEYSTONE_REGION}
    interface: internal
    identity_api_version: 3
`;
}

export function renderAdminOpenrc(dep: Deployment): string {
  // Passwords are limited to characters that need no escaping inside single quotes.
  return `# Rendered by stackha: the admin of this deployment, through the VIP. Holds a password: mode 0600.
# Usage: . ${join(dep.configDir, 'admin-openrc.sh')}
for key in $( set | awk '{FS="="}  /^OS_/ {print $1}' ); do unset $key ; done
export OS_AUTH_URL='${vipUrl(dep, KEYSTONE_PORT)}'
export OS_USERNAME='${KEYSTONE_ADMIN.user}'
export OS_PASSWORD='${dep.passwords.keystone_admin_password ?? ''}'
export OS_PROJECT_NAME='${KEYSTONE_ADMIN.project}'
export OS_USER_DOMAIN_NAME='Default'
export OS_PROJECT_DOMAIN_NAME='Default'
export OS_REGION_NAME='${KEYSTONE_REGION}'
export OS_INTERFACE='internal'
export OS_ENDPOINT_TYPE='internalURL'
export OS_IDENTITY_API_VERSION='3'
`;
}

/**
 * Writes clouds.yaml and admin-openrc.sh (mode 0600) into the config directory, beside passwords.yml, when they
 * differ from what is there. Resolves with the paths written.
 */
export function writeAdminCredentials(dep: Deployment): string[] {
  const written: string[] = [];
  for (const [name, content] of [
    ['clouds.yaml', renderCloudsYaml(dep)],
    ['admin-openrc.sh', renderAdminOpenrc(dep)],
  ] as const) {
    const path = join(dep.configDir, name);
    const same =
      existsSync(path) && readFileSync(path, 'utf8') === content && (statSync(path).mode & 0o777) === 0o600;
    if (same) continue;
    writeFileAtomic(path, content, { mode: 0o600 });
    written.push(path);
  }
  return written;
}

/**
 * Keystone: database and user through the VIP; config on every host; keys created once or copied; schema synced
 * on one host; bootstrap; uwsgi on every host; then clouds.yaml and admin-openrc.sh for the user.
 */
export async function deployKeystone(ctx: DeployContext): Promise<ServiceResult> {
  const result = await deployApiService(ctx, KEYSTONE, {
    afterConfig: async (c) => (await syncKeystoneKeys(c)).changed,
    afterSchema: bootstrapKeystone,
  });
  for (const path of writeAdminCredentials(ctx.dep)) ctx.log(`keystone: wrote ${path}`);
  return result;
}

const keystoneHealthy = (host: Host): Promise<boolean> =>
  apiHealthy(host, KEYSTONE_PORT, KEYSTONE_HEALTH_PATH);

export const KEYSTONE_SERVICE: ServiceDeclaration = {
  name: 'keystone',
  title: 'keystone',
  tier: 'api',
  enable: { key: 'enable_keystone', default: true },
  requires: [
    { service: 'mariadb', why: 'its database is reached through HAProxy on the VIP' },
    { service: 'haproxy', why: 'its database is reached through HAProxy on the VIP' },
  ],
  groups: ['keystone', 'control'],
  noHosts: 'warning',
  passwords: ['keystone_admin_password', 'keystone_database_password'],
  settings: KEYSTONE_SETTINGS,
  packages: ['python3-keystone', 'uwsgi', 'uwsgi-plugin-python3', 'python3-openstackclient'],
  daemons: () => [
    {
      name: 'keystone',
      stopSignal: UWSGI_STOP_SIGNAL,
      stopTimeoutMs: 20_000,
      fronted: { backends: () => [KEYSTONE_LB_NAME], drainMs: HTTP_DRAIN_MS, healthy: keystoneHealthy },
    },
  ],
  loadBalanced: keystoneLoadBalanced,
  // Keys are secrets: a host that leaves keeps none.
  removal: [FERNET_KEYS_DIR, CREDENTIAL_KEYS_DIR],
  deploy: deployKeystone,
  wanted: (dep, t) => ({ keystone: wantedState('keystone', KEYSTONE.render(dep, t)) }),
  restartHost: async (ctx, spec) => {
    const host = hostIn(ctx, spec.name);
    const unit = KEYSTONE.render(ctx.dep, targetIn(ctx, spec));
    await restartUnit(host, unit, KEYSTONE_SERVICE.daemons(ctx.dep));
    await waitApiReady(host, KEYSTONE, unit.daemons[0]?.logFile ?? '');
  },
  status: async (ctx) => {
    const s = await keystoneStatus(ctx);
    return { service: 'keystone', lines: formatKeystoneStatus(s), problems: keystoneProblems(s), data: s };
  },
};
