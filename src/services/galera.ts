import type { Host } from '../hosts/host.js';
import type { Deployment, HostSpec } from '../model.js';
import { hostsFor } from '../topology.js';
import { WaitAborted, waitFor } from '../util/wait.js';
import { daemonsFile, ensureDirs, readApplied, recordApplied, syncFiles, wantedState } from './files.js';
import { deploySimpleService } from './simple.js';
import type { DeployContext, HostOutcome, RenderTarget, ServiceResult, ServiceUnit } from './types.js';
import { hostOf, target } from './types.js';

export const MARIADB_PORT = 3306;
export const GALERA_HEALTH_PORT = 4569;
export const MY_CNF = '/etc/mysql/my.cnf';
const DATADIR = '/var/lib/mysql';

/** Thrown when every node is down but the cluster has data: bootstrapping blindly could lose commits. */
export class GaleraStoppedError extends Error {
  readonly code = 'EGALERASTOPPED';
}

function providerOptions(dep: Deployment, host: HostSpec): string {
  const g = dep.tuning.galera;
  const opts = [
    `gmcast.listen_addr=tcp://${host.address}:4567`,
    `ist.recv_addr=${host.address}:4568`,
    'gcache.size=64M',
    // pc.recovery (default on) lets a cluster whose every member returns re-form its Primary by itself.
    'pc.recovery=TRUE',
  ];
  // Galera checks each value against the others as it is set (suspect <= inactive, install <= inactive), starting
  // from the defaults (suspect 5 s, inactive 15 s): lowering suspect first keeps every step in range.
  if (g.evsKeepalivePeriod) opts.push(`evs.keepalive_period=${g.evsKeepalivePeriod}`);
  if (g.evsSuspectTimeout) opts.push(`evs.suspect_timeout=${g.evsSuspectTimeout}`);
  if (g.evsInactiveTimeout) opts.push(`evs.inactive_timeout=${g.evsInactiveTimeout}`);
  if (g.evsInstallTimeout) opts.push(`evs.install_timeout=${g.evsInstallTimeout}`);
  return opts.join('; ');
}

export function renderMyCnf(dep: Deployment, t: RenderTarget): string {
  const r = t.root;
  const peers = hostsFor(dep, 'mariadb')
    .map((h) => `${h.address}:4567`)
    .join(',');
  const a = t.host.address;
  return `# Rendered by stackha for ${t.host.name}; local edits are overwritten by the next deploy.
[client-server]
socket = ${r}/run/mysqld/mysqld.sock
port = ${MARIADB_PORT}

[mysqld]
user = mysql
datadir = ${r}${DATADIR}
pid-file = ${r}/run/mysqld/mysqld.pid
tmpdir = ${r}/var/tmp/mysql
log-error = ${r}/var/log/mysql/error.log
# The host's own address: HAProxy binds VIP:${MARIADB_PORT} on the same host.
bind-address = ${a}
skip-name-resolve
max_connections = 1000
max_allowed_packet = 64M
character-set-server = utf8mb4
collation-server = utf8mb4_general_ci

# Galera needs row-based binlog events and interleaved auto-increment locks.
binlog_format = ROW
default_storage_engine = InnoDB
innodb_autoinc_lock_mode = 2
innodb_buffer_pool_size = 64M
innodb_log_file_size = 48M
innodb_flush_log_at_trx_commit = 2
performance_schema = OFF

wsrep_on = ON
wsrep_provider = /usr/lib/galera/libgalera_smm.so
wsrep_cluster_name = stackha
wsrep_cluster_address = gcomm://${peers}
wsrep_node_name = ${t.host.name}
wsrep_node_address = ${a}:4567
wsrep_sst_method = rsync
wsrep_sst_receive_address = ${a}:4444
wsrep_provider_options = "${providerOptions(dep, t.host)}"
wsrep_slave_threads = 2
`;
}

export function mariadbDaemonArgv(t: RenderTarget, bootstrap = false): string[] {
  const argv = ['/usr/sbin/mariadbd', `--defaults-file=${t.root}${MY_CNF}`];
  if (bootstrap) argv.push('--wsrep-new-cluster');
  return argv;
}

export function renderGalera(dep: Deployment, t: RenderTarget): ServiceUnit {
  return {
    files: [{ path: MY_CNF, content: renderMyCnf(dep, t), mode: 0o644 }],
    dirs: [
      { path: DATADIR, owner: 'mysql', mode: 0o750 },
      { path: '/run/mysqld', owner: 'mysql', mode: 0o755 },
      { path: '/var/tmp/mysql', owner: 'mysql', mode: 0o750 },
      { path: '/var/log/mysql', owner: 'mysql', mode: 0o750 },
    ],
    daemons: [{ name: 'mariadb', argv: mariadbDaemonArgv(t), logFile: '/var/log/mysql/mariadbd.out' }],
  };
}

/** The health endpoint's daemon. `agent` is the command that runs dist/agents/galera-health.js. */
export function renderGaleraHealth(t: RenderTarget, agent: readonly string[]): ServiceUnit {
  return {
    files: [],
    dirs: [],
    daemons: [
      {
        name: 'galera-health',
        argv: [...agent, `${t.host.address}:${GALERA_HEALTH_PORT}`, `${t.root}${MY_CNF}`],
        logFile: '/var/log/stackha/galera-health.log',
      },
    ],
  };
}

export interface GaleraNodeStatus {
  readonly host: string;
  readonly running: boolean;
  /** wsrep_local_state_comment: Synced, Donor/Desynced, Joining, ... */
  readonly state: string | undefined;
  readonly clusterStatus: string | undefined;
  readonly clusterSize: number | undefined;
  readonly ready: boolean;
  readonly lastCommitted: number | undefined;
}

/** Runs SQL on the host's local node over its unix socket as root; the SQL (and any password) goes on stdin. */
export function localSql(host: Host, root: string, sql: string, timeoutMs = 30_000): Promise<string> {
  return host.run(
    ['/usr/bin/mariadb', `--defaults-file=${root}${MY_CNF}`, '-uroot', '-N', '-B', '--connect-timeout=2'],
    {
      input: sql,
      timeoutMs,
    },
  );
}

export async function galeraNodeStatus(host: Host, root: string): Promise<GaleraNodeStatus> {
  const running = (await host.daemonPid('mariadb')) !== undefined;
  const none: GaleraNodeStatus = {
    host: host.name,
    running,
    state: undefined,
    clusterStatus: undefined,
    clusterSize: undefined,
    ready: false,
    lastCommitted: undefined,
  };
  if (!running) return none;
  try {
    const out = await localSql(host, root, "SHOW GLOBAL STATUS LIKE 'wsrep_%';", 5000);
    const v = new Map(out.split('\n').map((l) => l.split('\t') as [string, string]));
    const size = v.get('wsrep_cluster_size');
    const committed = v.get('wsrep_last_committed');
    return {
      host: host.name,
      running,
      state: v.get('wsrep_local_state_comment'),
      clusterStatus: v.get('wsrep_cluster_status'),
      clusterSize: size === undefined ? undefined : Number(size),
      ready: v.get('wsrep_ready') === 'ON',
      lastCommitted: committed === undefined ? undefined : Number(committed),
    };
  } catch {
    return none;
  }
}

const isSyncedPrimary = (s: GaleraNodeStatus): boolean =>
  s.state === 'Synced' && s.clusterStatus === 'Primary' && s.ready;

export async function waitSynced(host: Host, root: string, timeoutMs = 300_000): Promise<GaleraNodeStatus> {
  return waitFor(
    `Galera node ${host.name} to be Synced and Primary`,
    async () => {
      if ((await host.daemonPid('mariadb')) === undefined) {
        const tail = (await host.readFile('/var/log/mysql/error.log'))
          ?.trim()
          .split('\n')
          .slice(-5)
          .join('\n');
        throw new WaitAborted(`mariadbd on ${host.name} exited${tail ? `:\n${tail}` : ''}`);
      }
      const s = await galeraNodeStatus(host, root);
      return isSyncedPrimary(s) ? s : undefined;
    },
    { timeoutMs, intervalMs: 500 },
  );
}

function sqlString(s: string): string {
  return `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/** Users every deployment needs. Idempotent; runs only when the root@'%' password does not match. */
async function ensureUsers(ctx: DeployContext, host: Host, root: string): Promise<boolean> {
  const pw = ctx.dep.passwords.database_password ?? '';
  const check = await localSql(
    host,
    root,
    `SELECT COUNT(*) FROM mysql.user WHERE User='root' AND Host='%' AND authentication_string=PASSWORD(${sqlString(pw)});`,
  );
  if (check.trim() === '1') return false;
  await localSql(
    host,
    root,
    [
      `CREATE USER IF NOT EXISTS 'root'@'%' IDENTIFIED BY ${sqlString(pw)};`,
      `ALTER USER 'root'@'%' IDENTIFIED BY ${sqlString(pw)};`,
      `GRANT ALL PRIVILEGES ON *.* TO 'root'@'%' WITH GRANT OPTION;`,
      'FLUSH PRIVILEGES;',
    ].join('\n'),
  );
  return true;
}

async function hasClusterData(host: Host): Promise<boolean> {
  return host.exists(`${DATADIR}/grastate.dat`);
}

async function startAndSync(ctx: DeployContext, spec: HostSpec, bootstrap: boolean): Promise<void> {
  const host = hostOf(ctx, spec.name);
  const t = target(ctx, spec);
  await host.startDaemon({
    name: 'mariadb',
    argv: mariadbDaemonArgv(t, bootstrap),
    logFile: '/var/log/mysql/mariadbd.out',
  });
  await waitSynced(host, t.root);
  await recordApplied(host, 'mariadb', wantedState('mariadb', renderGalera(ctx.dep, t)));
}

/**
 * Galera: the first node bootstraps a new cluster, the others join one at a time (each Synced before the next);
 * a running node whose config changed is restarted, one at a time. An entirely stopped cluster that has data is
 * never bootstrapped here: that needs the most advanced node, which is `stackha recover galera`'s job.
 */
export async function deployGalera(ctx: DeployContext): Promise<ServiceResult> {
  const specs = hostsFor(ctx.dep, 'mariadb');
  const outcomes: Record<string, HostOutcome> = {};
  /** Hosts whose running node does not run the rendered config (changed, or written but never applied). */
  const due = new Map<string, string>();
  const running = new Map<string, boolean>();
  for (const spec of specs) {
    const host = hostOf(ctx, spec.name);
    running.set(spec.name, (await host.daemonPid('mariadb')) !== undefined);
  }
  const anyRunning = [...running.values()].some(Boolean);
  if (!anyRunning) {
    const withData = [];
    for (const spec of specs) if (await hasClusterData(hostOf(ctx, spec.name))) withData.push(spec.name);
    if (withData.length > 0) {
      throw new GaleraStoppedError(
        `every Galera node is stopped and ${withData.join(', ')} hold cluster data: stackha will not bootstrap ` +
          'blindly (the node it picks could be behind and lose commits). Run `stackha recover galera`, which ' +
          'finds the most advanced node and bootstraps from it.',
      );
    }
  }
  for (const spec of specs) {
    const host = hostOf(ctx, spec.name);
    const unit = renderGalera(ctx.dep, target(ctx, spec));
    await ensureDirs(host, unit);
    const changed = await syncFiles(host, [...unit.files, daemonsFile('mariadb', unit)]);
    const want = wantedState('mariadb', unit);
    const applied = await readApplied(host, 'mariadb');
    if (changed.length > 0) due.set(spec.name, `changed: ${changed.join(', ')}`);
    else if (applied?.config !== want.config || applied?.daemons !== want.daemons) {
      due.set(spec.name, 'config not yet applied');
    }
  }

  let bootstrapped = false;
  if (!anyRunning) {
    const first = specs[0];
    if (!first) return { service: 'mariadb', outcomes };
    const host = hostOf(ctx, first.name);
    const root = target(ctx, first).root;
    ctx.log(`mariadb on ${first.name}: bootstrapping a new cluster`);
    await host.run(
      [
        '/usr/bin/mariadb-install-db',
        `--defaults-file=${root}${MY_CNF}`,
        '--user=mysql',
        '--skip-test-db',
        '--auth-root-authentication-method=socket',
      ],
      { timeoutMs: 120_000 },
    );
    await startAndSync(ctx, first, true);
    outcomes[first.name] = 'started';
    running.set(first.name, true);
    bootstrapped = true;
  }
  // Joiners and restarts one host at a time: two nodes in state transfer at once was slower and less safe.
  for (const spec of specs) {
    if (outcomes[spec.name]) continue;
    const host = hostOf(ctx, spec.name);
    if (!running.get(spec.name)) {
      ctx.log(`mariadb on ${spec.name}: joining the cluster`);
      await startAndSync(ctx, spec, false);
      outcomes[spec.name] = 'started';
    } else if (due.has(spec.name)) {
      ctx.log(`mariadb on ${spec.name}: restarting (${due.get(spec.name)})`);
      await host.stopDaemon('mariadb', { timeoutMs: 120_000 });
      await startAndSync(ctx, spec, false);
      outcomes[spec.name] = 'restarted';
    } else {
      outcomes[spec.name] = 'unchanged';
    }
    ctx.log(`mariadb on ${spec.name}: ${outcomes[spec.name]}`);
  }
  const firstSpec = specs[0];
  if (firstSpec) {
    const usersChanged = await ensureUsers(ctx, hostOf(ctx, firstSpec.name), target(ctx, firstSpec).root);
    if (usersChanged && !bootstrapped && outcomes[firstSpec.name] === 'unchanged')
      outcomes[firstSpec.name] = 'configured';
  }
  return { service: 'mariadb', outcomes };
}

export function deployGaleraHealth(ctx: DeployContext, agent: readonly string[]): Promise<ServiceResult> {
  return deploySimpleService(ctx, {
    service: 'galera-health',
    hosts: hostsFor(ctx.dep, 'mariadb'),
    render: (t) => renderGaleraHealth(t, agent),
    waitReady: async (host) => {
      await waitFor(
        `Galera health endpoint on ${host.name}`,
        async () => ((await host.tcpConnect(host.address, GALERA_HEALTH_PORT, 1000)) ? true : undefined),
        { timeoutMs: 15_000 },
      );
    },
  });
}

/** Asks a node's health endpoint from the host itself: true on HTTP 200. */
export async function galeraHealthy(host: Host): Promise<boolean> {
  const r = await host.exec(
    [
      'curl',
      '-s',
      '-o',
      '/dev/null',
      '-w',
      '%{http_code}',
      '-m',
      '2',
      `http://${host.address}:${GALERA_HEALTH_PORT}/`,
    ],
    { timeoutMs: 5000 },
  );
  return r.stdout.trim() === '200';
}
