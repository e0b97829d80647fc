import type { Host } from '../../hosts/host.js';
import type { Deployment, HostSpec } from '../../model.js';
import { agentArgv } from '../../runtime/runtime.js';
import { hostsFor } from '../../topology.js';
import type { ExecResult } from '../../util/exec.js';
import { WaitAborted, waitFor } from '../../util/wait.js';
import { DB_DRAIN_MS, type ServiceDeclaration, type ServiceStatus } from '../contract.js';
import {
  type Applied,
  daemonsFile,
  ensureDirs,
  peersOnlyChange,
  readApplied,
  recordApplied,
  staleFiles,
  syncFiles,
  wantedState,
  writeFiles,
} from '../files.js';
import { type LoadBalancedService, activeServer, lbStates } from '../haproxy/haproxy.js';
import { apiHealthy } from '../health.js';
import { deploySimpleService, restartUnit } from '../simple.js';
import type {
  DeployContext,
  HostOutcome,
  RenderTarget,
  RenderedFile,
  ServiceResult,
  ServiceUnit,
} from '../types.js';
import { hostIn, hostOf, target, targetIn } from '../types.js';

export const MARIADB_PORT = 3306;
export const GALERA_HEALTH_PORT = 4569;
export const MY_CNF = '/etc/mysql/my.cnf';
export const DATADIR = '/var/lib/mysql';
export const GRASTATE = `${DATADIR}/grastate.dat`;
export const ERROR_LOG = '/var/log/mysql/error.log';
/** Where `mariadbd --wsrep-recover` logs (kept after the run for diagnosis; the directory is mysql's). */
export const WSREP_RECOVER_LOG = '/var/log/mysql/wsrep-recover.log';
const ZERO_UUID = '00000000-0000-0000-0000-000000000000';

/** Thrown when every node is down but the cluster has data: bootstrapping blindly could lose commits. */
export class GaleraStoppedError extends Error {
  readonly code = 'EGALERASTOPPED';
}

/** A point in a cluster's history: the cluster state UUID and the seqno of the last transaction applied. */
export interface GaleraPosition {
  readonly uuid: string;
  readonly seqno: number;
}

export const formatPosition = (p: GaleraPosition): string => `${p.uuid}:${p.seqno}`;

/** A position that names a real point of a real history (not `-1`, not the all-zero UUID of an empty node). */
export const isKnownPosition = (p: GaleraPosition | undefined): p is GaleraPosition =>
  p !== undefined && p.seqno >= 0 && p.uuid !== ZERO_UUID;

/** grastate.dat as Galera writes it; a field the file does not have is undefined. */
export interface GraState {
  readonly version: string | undefined;
  readonly uuid: string | undefined;
  /** -1 while the node runs and after it was killed; the last seqno after a clean shutdown. */
  readonly seqno: number | undefined;
  /** 1 only on the last node to leave a cluster that shut down cleanly (grastate 2.1 and later). */
  readonly safeToBootstrap: boolean | undefined;
}

const UUID_RE = '[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}';

/** Parses grastate.dat (`key: value` lines, `#` comments). */
export function parseGrastate(text: string): GraState {
  const v = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^\s*([a-z_]+)\s*:\s*(\S*)\s*$/.exec(line);
    if (m?.[1] && m[2] !== undefined && !line.trimStart().startsWith('#')) v.set(m[1], m[2]);
  }
  const uuid = v.get('uuid');
  const seqno = v.get('seqno');
  const safe = v.get('safe_to_bootstrap');
  return {
    version: v.get('version'),
    uuid: uuid !== undefined && new RegExp(`^${UUID_RE}$`).test(uuid) ? uuid.toLowerCase() : undefined,
    seqno: seqno !== undefined && /^-?\d+$/.test(seqno) ? Number(seqno) : undefined,
    safeToBootstrap: safe === undefined ? undefined : safe === '1',
  };
}

/** grastate.dat with `safe_to_bootstrap: 1`: that line rewritten (or added), every other byte kept. */
export function withSafeToBootstrap(text: string): string {
  if (/^safe_to_bootstrap:.*$/m.test(text))
    return text.replace(/^safe_to_bootstrap:.*$/m, 'safe_to_bootstrap: 1');
  return `${text}${text === '' || text.endsWith('\n') ? '' : '\n'}safe_to_bootstrap: 1\n`;
}

/** grastate.dat with `seqno: -1`: the node then asks for a full state transfer instead of claiming a position. */
export function withUnknownSeqno(text: string): string {
  return text.replace(/^seqno:(\s*).*$/m, 'seqno:$1-1');
}

/**
 * The position `mariadbd --wsrep-recover` logged (`WSREP: Recovered position: UUID:SEQNO`, possibly followed by
 * `,domain-server-seqno`); the last one when the log holds several; undefined when there is none (wsrep off, or
 * the run failed). A seqno run into other text is not trusted.
 */
export function parseRecoveredPosition(log: string): GaleraPosition | undefined {
  const re = new RegExp(`WSREP: Recovered position:\\s*(${UUID_RE}):(-?\\d+)(?=$|[\\s,])`, 'gm');
  let last: GaleraPosition | undefined;
  for (const m of log.matchAll(re)) {
    if (m[1] && m[2]) last = { uuid: m[1].toLowerCase(), seqno: Number(m[2]) };
  }
  return last;
}

export type StateTransfer = 'IST' | 'SST' | 'none' | 'unknown';

/**
 * How a joiner caught up, from the part of its error.log written since it started. A full SST shows the joiner
 * asking from an empty state (`IST uuid:00000000-... f: 0`), a history reset, or the SST script's completion line;
 * an IST shows `Receiving IST: N writesets` (or rsync's `IST completed`); neither, when no transfer was needed.
 */
export function classifyStateTransfer(logSegment: string): StateTransfer {
  if (
    /IST uuid:0{8}-0{4}-0{4}-0{4}-0{12} f: 0\b/.test(logSegment) ||
    /different histories/.test(logSegment) ||
    /\bSST completed on joiner/.test(logSegment)
  )
    return 'SST';
  if (/WSREP: Receiving IST: \d+ writesets/.test(logSegment) || /\bIST completed on joiner/.test(logSegment))
    return 'IST';
  if (!/State transfer required/.test(logSegment)) return 'none';
  return 'unknown';
}

export async function readGrastate(host: Host): Promise<GraState | undefined> {
  const text = await host.readFile(GRASTATE);
  return text === undefined ? undefined : parseGrastate(text);
}

/** Rewrites the safe_to_bootstrap line of the host's grastate.dat; the file stays mysql's, its mode kept. */
export async function setSafeToBootstrap(host: Host): Promise<void> {
  const text = await host.readFile(GRASTATE);
  if (text === undefined) throw new Error(`${host.name}: no ${GRASTATE}`);
  await host.writeFile(GRASTATE, withSafeToBootstrap(text), {
    mode: (await host.fileMode(GRASTATE)) ?? 0o660,
    owner: 'mysql',
  });
}

/** Makes the host's grastate.dat claim no position (seqno -1), so the node takes a full SST when it joins. */
export async function forgetSeqno(host: Host): Promise<void> {
  const text = await host.readFile(GRASTATE);
  if (text === undefined) return;
  await host.writeFile(GRASTATE, withUnknownSeqno(text), {
    mode: (await host.fileMode(GRASTATE)) ?? 0o660,
    owner: 'mysql',
  });
}

export interface RecoveredPosition {
  readonly position: GaleraPosition | undefined;
  readonly seconds: number;
  /** Why no position came out. */
  readonly problem: string | undefined;
}

/**
 * Runs `mariadbd --wsrep-recover` on a stopped node (InnoDB crash recovery, then it logs the last committed
 * position and exits; ~0.1 s here) and reads the position from its log. Never on a running node: the datadir
 * would be locked and the run would hang until the timeout.
 */
export async function wsrepRecover(
  host: Host,
  timeoutMs = 60_000,
  opts: { readonly onCopy?: boolean } = {},
): Promise<RecoveredPosition> {
  const started = Date.now();
  const seconds = () => (Date.now() - started) / 1000;
  if ((await host.daemonPid('mariadb')) !== undefined) {
    throw new Error(`${host.name}: mariadbd is running; --wsrep-recover needs a stopped node`);
  }
  if (opts.onCopy) return wsrepRecoverOnCopy(host, timeoutMs);
  await host.remove(WSREP_RECOVER_LOG);
  const r = await host.exec(
    [
      '/usr/sbin/mariadbd',
      `--defaults-file=${MY_CNF}`,
      '--wsrep-recover',
      `--log-error=${WSREP_RECOVER_LOG}`,
    ],
    { timeoutMs },
  );
  return recoveredFrom(r, (await host.readFile(WSREP_RECOVER_LOG)) ?? '', timeoutMs, seconds);
}

/** A datadir copied for a dry run only when it is no bigger than this (a reflink copy costs nothing; a plain one does). */
export const DRY_RUN_COPY_LIMIT_KIB = 4 * 1024 * 1024;

/**
 * `--wsrep-recover` for a dry run: InnoDB crash recovery writes the datadir, so it runs on a scratch copy (reflinked
 * where the filesystem can) that is removed afterwards, and the node's own data is left exactly as it was.
 */
async function wsrepRecoverOnCopy(host: Host, timeoutMs: number): Promise<RecoveredPosition> {
  const started = Date.now();
  const seconds = () => (Date.now() - started) / 1000;
  const du = await host.exec(['du', '-sk', DATADIR], { timeoutMs: 60_000 });
  const kib = Number(du.stdout.split('\t')[0]);
  if (du.code !== 0 || !Number.isFinite(kib) || kib > DRY_RUN_COPY_LIMIT_KIB)
    return {
      position: undefined,
      seconds: seconds(),
      problem: `position unknown without --wsrep-recover, which writes the datadir (${du.code === 0 ? `${Math.round(kib / 1024)} MiB, too big to copy for a dry run` : 'its size is unknown'}): run without --dry-run to find it`,
    };
  const scratch = `/var/tmp/stackha-dry-run-${process.pid}-${Date.now()}`;
  const copy = `${scratch}/mysql`;
  try {
    await host.run(['mkdir', '-p', '-m', '0700', scratch]);
    await host.run(['chown', 'mysql:mysql', scratch]);
    await host.run(['cp', '-a', '--reflink=auto', DATADIR, copy], { timeoutMs });
    const log = `${scratch}/wsrep-recover.log`;
    const r = await host.exec(
      [
        '/usr/sbin/mariadbd',
        `--defaults-file=${MY_CNF}`,
        '--wsrep-recover',
        `--datadir=${copy}`,
        `--log-error=${log}`,
        `--pid-file=${`${scratch}/mysqld.pid`}`,
        `--socket=${`${scratch}/mysqld.sock`}`,
        `--tmpdir=${scratch}`,
      ],
      { timeoutMs },
    );
    return recoveredFrom(r, (await host.readFile(log)) ?? '', timeoutMs, seconds);
  } finally {
    await host.remove(scratch);
  }
}

/** The position --wsrep-recover logged, or why there is none. */
function recoveredFrom(
  r: ExecResult,
  log: string,
  timeoutMs: number,
  seconds: () => number,
): RecoveredPosition {
  const position = parseRecoveredPosition(log);
  if (r.timedOut)
    return {
      position: undefined,
      seconds: seconds(),
      problem: `--wsrep-recover timed out after ${timeoutMs / 1000} s`,
    };
  if (r.code !== 0 || !position) {
    const tail = (log || r.stderr).trim().split('\n').slice(-3).join(' | ');
    return {
      position: undefined,
      seconds: seconds(),
      problem: `--wsrep-recover ${r.code !== 0 ? `exited ${r.code ?? r.signal}` : 'logged no position'}${tail ? `: ${tail}` : ''}`,
    };
  }
  if (!isKnownPosition(position)) {
    return {
      position,
      seconds: seconds(),
      problem: `--wsrep-recover found no committed position (${formatPosition(position)})`,
    };
  }
  return { position, seconds: seconds(), problem: undefined };
}

export type PositionSource = 'grastate' | 'wsrep-recover';

/** Where a stopped node's data stands, and how that was found out. */
export interface NodePosition {
  readonly grastate: GraState | undefined;
  readonly position: GaleraPosition | undefined;
  readonly source: PositionSource | undefined;
  /** Why the position is unknown. */
  readonly problem: string | undefined;
  /** How long --wsrep-recover took, when it ran. */
  readonly recoverSeconds: number | undefined;
  /** False when the datadir holds nothing to bootstrap from (no grastate.dat, no InnoDB files). */
  readonly hasData: boolean;
}

/**
 * The position of a stopped node: grastate.dat's when it has a real seqno (clean shutdown), else what
 * --wsrep-recover finds in InnoDB (after kill -9 or power loss grastate.dat says seqno -1).
 */
export async function findNodePosition(
  host: Host,
  timeoutMs = 60_000,
  opts: { readonly dryRun?: boolean } = {},
): Promise<NodePosition> {
  const grastate = await readGrastate(host);
  if (grastate) {
    const fromFile =
      grastate.uuid !== undefined && grastate.seqno !== undefined
        ? { uuid: grastate.uuid, seqno: grastate.seqno }
        : undefined;
    if (isKnownPosition(fromFile)) {
      return {
        grastate,
        position: fromFile,
        source: 'grastate',
        problem: undefined,
        recoverSeconds: undefined,
        hasData: true,
      };
    }
  } else if (!(await host.exists(`${DATADIR}/ibdata1`))) {
    return {
      grastate,
      position: undefined,
      source: undefined,
      problem: `no data (neither ${GRASTATE} nor InnoDB files)`,
      recoverSeconds: undefined,
      hasData: false,
    };
  }
  const r = await wsrepRecover(host, timeoutMs, { onCopy: opts.dryRun === true });
  return {
    grastate,
    position: r.problem === undefined ? r.position : undefined,
    source: r.problem === undefined ? 'wsrep-recover' : undefined,
    problem: r.problem,
    recoverSeconds: r.seconds,
    hasData: true,
  };
}

/** Starts mariadbd under the daemon name deploy and status use. */
export async function startGaleraNode(
  host: Host,
  t: RenderTarget,
  opts: { bootstrap?: boolean; startPosition?: GaleraPosition | undefined } = {},
): Promise<number> {
  return host.startDaemon({
    name: 'mariadb',
    argv: mariadbDaemonArgv(t, opts.bootstrap ?? false, opts.startPosition),
    // A rebooted host joins the cluster: it must never bootstrap a new one, nor start at a position of the past.
    bootArgv: mariadbDaemonArgv(t),
    logFile: '/var/log/mysql/mariadbd.out',
    limits: { nofile: 65536 },
  });
}

/** Length of the host's error.log now: what it writes from here on is `errorLogSince(host, mark)`. */
export async function errorLogMark(host: Host): Promise<number> {
  return (await host.readFile(ERROR_LOG))?.length ?? 0;
}

export async function errorLogSince(host: Host, mark: number): Promise<string> {
  return ((await host.readFile(ERROR_LOG)) ?? '').slice(mark);
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
  if (g.evsInactiveCheckPeriod) opts.push(`evs.inactive_check_period=${g.evsInactiveCheckPeriod}`);
  if (g.evsJoinRetransPeriod) opts.push(`evs.join_retrans_period=${g.evsJoinRetransPeriod}`);
  return opts.join('; ');
}

/**
 * The donors a joining node asks for a state transfer, in order: the other nodes last-first, so the writer (the
 * first healthy node in inventory order) donates only when nothing else can. An rsync SST blocks its donor, and a
 * donor is not Synced: taken from the writer, HAProxy would move the writes away and back. The trailing comma lets
 * Galera fall back to any node.
 */
export function sstDonors(dep: Deployment, self: string): string {
  const others = hostsFor(dep, 'mariadb')
    .filter((h) => h.name !== self)
    .map((h) => h.name)
    .reverse();
  return others.length > 0 ? `${others.join(',')},` : '';
}

export function renderMyCnf(dep: Deployment, t: RenderTarget): string {
  const peers = hostsFor(dep, 'mariadb')
    .map((h) => `${h.address}:4567`)
    .join(',');
  const donors = sstDonors(dep, t.host.name);
  const donorLines = donors
    ? `# A joiner (SST or IST) asks these first: the writer donates last.\nwsrep_sst_donor = ${donors}\n`
    : '';
  const a = t.host.address;
  return `# Rendered by stackha for ${t.host.name}; local edits are overwritten by the next deploy.
[client-server]
socket = /run/mysqld/mysqld.sock
port = ${MARIADB_PORT}

[mysqld]
user = mysql
datadir = ${DATADIR}
pid-file = /run/mysqld/mysqld.pid
tmpdir = /var/tmp/mysql
log-error = /var/log/mysql/error.log
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
# Durable on every node: with 2, a power loss of every node at once could drop ~1 s of acknowledged commits.
innodb_flush_log_at_trx_commit = 1
performance_schema = OFF

wsrep_on = ON
wsrep_provider = /usr/lib/galera/libgalera_smm.so
wsrep_cluster_name = stackha
wsrep_cluster_address = gcomm://${peers}
wsrep_node_name = ${t.host.name}
wsrep_node_address = ${a}:4567
wsrep_sst_method = rsync
${donorLines}wsrep_sst_receive_address = ${a}:4444
wsrep_provider_options = "${providerOptions(dep, t.host)}"
wsrep_slave_threads = 2
`;
}

/**
 * my.cnf as a running node sees it: `wsrep_cluster_address` and `wsrep_sst_donor` are read only when the node
 * (re)joins (a running node learns membership from the cluster itself), so a change of the peer list alone needs no
 * restart.
 */
export function normalizeGaleraPeers(file: RenderedFile): string {
  return file.path === MY_CNF
    ? file.content
        .replace(/^wsrep_cluster_address\s*=.*$/m, 'wsrep_cluster_address = <peers>')
        .replace(/^wsrep_sst_donor\s*=.*$/m, 'wsrep_sst_donor = <peers>')
    : file.content;
}

/** What a node wants applied: its my.cnf and command line, with the peer list normalized out of `restart`. */
export function galeraWantedState(dep: Deployment, t: RenderTarget): Applied {
  return wantedState('mariadb', renderGalera(dep, t), normalizeGaleraPeers);
}

/**
 * mariadbd's command line. `bootstrap` starts a new Primary component (--wsrep-new-cluster); `startPosition`
 * (UUID:SEQNO, from --wsrep-recover) tells Galera where the node's data stands when grastate.dat does not
 * (seqno -1 after a crash), so a joiner gets IST instead of a full SST and a bootstrap keeps the cluster's history.
 */
export function mariadbDaemonArgv(
  t: RenderTarget,
  bootstrap = false,
  startPosition?: GaleraPosition,
): string[] {
  const argv = ['/usr/sbin/mariadbd', `--defaults-file=${MY_CNF}`];
  if (bootstrap) argv.push('--wsrep-new-cluster');
  if (startPosition) argv.push(`--wsrep-start-position=${formatPosition(startPosition)}`);
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
    daemons: [
      {
        name: 'mariadb',
        argv: mariadbDaemonArgv(t),
        logFile: '/var/log/mysql/mariadbd.out',
        limits: { nofile: 65536 },
      },
    ],
  };
}

export const GALERA_HEALTH_CONFIG = '/etc/stackha/galera-health.json';

/**
 * The health endpoint and death watch (dist/agents/galera-health.js; `agent` is the command that runs it): its config
 * names the local socket and pid file, and the peers to tell when the local node dies (with the root password, so
 * the file is root's alone). A changed config is re-read on SIGHUP.
 */
export function renderGaleraHealth(dep: Deployment, t: RenderTarget, agent: readonly string[]): ServiceUnit {
  const config = {
    socket: '/run/mysqld/mysqld.sock',
    pidFile: '/run/mysqld/mysqld.pid',
    peers: hostsFor(dep, 'mariadb')
      .filter((h) => h.name !== t.host.name)
      .map((h) => h.address),
    port: MARIADB_PORT,
    evict: dep.tuning.galera.evictDeadNodes,
    user: 'root',
    password: dep.passwords.database_password ?? '',
  };
  return {
    files: [{ path: GALERA_HEALTH_CONFIG, content: `${JSON.stringify(config, null, 2)}\n`, mode: 0o600 }],
    dirs: [],
    daemons: [
      {
        name: 'galera-health',
        argv: [...agent, `${t.host.address}:${GALERA_HEALTH_PORT}`, `${GALERA_HEALTH_CONFIG}`],
        logFile: '/var/log/stackha/galera-health.log',
        after: ['mariadb'],
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
export function localSql(host: Host, sql: string, timeoutMs = 30_000): Promise<string> {
  return host.run(
    ['/usr/bin/mariadb', `--defaults-file=${MY_CNF}`, '-uroot', '-N', '-B', '--connect-timeout=2'],
    {
      input: sql,
      timeoutMs,
    },
  );
}

export async function galeraNodeStatus(host: Host): Promise<GaleraNodeStatus> {
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
    const out = await localSql(host, "SHOW GLOBAL STATUS LIKE 'wsrep_%';", 5000);
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

export async function waitSynced(host: Host, timeoutMs = 300_000): Promise<GaleraNodeStatus> {
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
      const s = await galeraNodeStatus(host);
      return isSyncedPrimary(s) ? s : undefined;
    },
    { timeoutMs, intervalMs: 500 },
  );
}

function sqlString(s: string): string {
  return `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/** Users every deployment needs. Idempotent; runs only when the root@'%' password does not match. */
async function ensureUsers(ctx: DeployContext, host: Host): Promise<boolean> {
  const pw = ctx.dep.passwords.database_password ?? '';
  const check = await localSql(
    host,
    `SELECT COUNT(*) FROM mysql.user WHERE User='root' AND Host='%' AND authentication_string=PASSWORD(${sqlString(pw)});`,
  );
  if (check.trim() === '1') return false;
  await localSql(
    host,
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

/**
 * The position a joiner with data should announce: after a crash grastate.dat says seqno -1 and a plain start
 * would take a full SST, so the position is recovered from InnoDB (--wsrep-recover) and passed with
 * --wsrep-start-position, which lets the donor send only the missing writesets (IST). A clean shutdown left the
 * position in grastate.dat: nothing to do. No data at all: a normal first join (SST).
 */
async function joinerStartPosition(ctx: DeployContext, host: Host): Promise<GaleraPosition | undefined> {
  const gs = await readGrastate(host);
  if (!gs || (gs.seqno !== undefined && gs.seqno >= 0)) return undefined;
  const r = await wsrepRecover(host);
  if (r.problem !== undefined || !r.position) {
    ctx.log(
      `mariadb on ${host.name}: position not recovered (${r.problem ?? 'none'}): it will take a full SST`,
    );
    return undefined;
  }
  ctx.log(
    `mariadb on ${host.name}: grastate.dat says seqno -1 (not shut down cleanly); --wsrep-recover found ` +
      `${formatPosition(r.position)} in ${r.seconds.toFixed(1)} s: joining from there (IST)`,
  );
  return r.position;
}

async function startAndSync(ctx: DeployContext, spec: HostSpec, bootstrap: boolean): Promise<void> {
  const host = hostOf(ctx, spec.name);
  const t = target(ctx, spec);
  const startPosition = bootstrap ? undefined : await joinerStartPosition(ctx, host);
  const mark = await errorLogMark(host);
  const started = Date.now();
  await startGaleraNode(host, t, { bootstrap, startPosition });
  await waitSynced(host);
  if (!bootstrap) {
    const transfer = classifyStateTransfer(await errorLogSince(host, mark));
    ctx.log(
      `mariadb on ${spec.name}: Synced in ${((Date.now() - started) / 1000).toFixed(1)} s (state transfer: ${transfer})`,
    );
  }
  await recordApplied(host, 'mariadb', galeraWantedState(ctx.dep, t));
}

/** How long deploy waits for a running node that is still rejoining (a healed partition, a state transfer). */
export const REJOIN_WAIT_MS = 300_000;

/**
 * A running node deploy leaves alone must still be Synced before deploy goes on: after a partition heals, or
 * while a node takes a state transfer, its process runs but it answers "WSREP has not yet prepared node for
 * application use". Deploy waits for it (one status query when it is already Synced).
 */
async function waitRejoined(ctx: DeployContext, spec: HostSpec, seen?: GaleraNodeStatus): Promise<void> {
  const host = hostOf(ctx, spec.name);
  const s = seen ?? (await galeraNodeStatus(host));
  if (isSyncedPrimary(s)) return;
  const started = Date.now();
  ctx.log(
    `mariadb on ${spec.name}: running but ${s.state ?? 'not answering'}` +
      `${s.clusterStatus ? ` (${s.clusterStatus})` : ''}: waiting for it to rejoin`,
  );
  await waitSynced(host, REJOIN_WAIT_MS);
  ctx.log(`mariadb on ${spec.name}: Synced after ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

/**
 * The order running nodes restart in: the writer last. HAProxy sends writes to the first node (inventory order)
 * whose health endpoint answers 200, so that node is the writer; restarting it last moves the writes once.
 */
export function galeraRestartOrder<T extends { name: string }>(
  due: readonly T[],
  writer: string | undefined,
): T[] {
  return [...due.filter((s) => s.name !== writer), ...due.filter((s) => s.name === writer)];
}

/** The node HAProxy sends writes to: the first DB host, in inventory order, whose health endpoint answers 200. */
export async function galeraWriterByHealth(ctx: DeployContext): Promise<string | undefined> {
  for (const spec of hostsFor(ctx.dep, 'mariadb')) {
    if (await galeraHealthy(hostOf(ctx, spec.name))) return spec.name;
  }
  return undefined;
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
  // Every host asked at once (reads only: one command each over SSH).
  const pids = await Promise.all(specs.map((spec) => hostOf(ctx, spec.name).daemonPid('mariadb')));
  specs.forEach((spec, i) => running.set(spec.name, pids[i] !== undefined));
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
  /** Running nodes whose config changed only in the peer list: rewritten and recorded, not restarted. */
  const peersOnly = new Set<string>();
  // Each host's files and record, every host at once (the hosts are independent here: nothing restarts yet).
  const seen = await Promise.all(
    specs.map(async (spec) => {
      const host = hostOf(ctx, spec.name);
      const unit = renderGalera(ctx.dep, target(ctx, spec));
      const [, found] = await Promise.all([
        ensureDirs(host, unit),
        staleFiles(host, [...unit.files, daemonsFile('mariadb', unit)], 'mariadb'),
      ]);
      return { changed: await writeFiles(host, found.stale), applied: found.applied };
    }),
  );
  for (const [i, spec] of specs.entries()) {
    const host = hostOf(ctx, spec.name);
    const t = target(ctx, spec);
    const want = galeraWantedState(ctx.dep, t);
    const { changed, applied } = seen[i] as (typeof seen)[number];
    if (running.get(spec.name) && peersOnlyChange(applied, want)) {
      await recordApplied(host, 'mariadb', want);
      peersOnly.add(spec.name);
      ctx.log(`mariadb on ${spec.name}: peers updated, no restart needed`);
    } else if (changed.length > 0) due.set(spec.name, `changed: ${changed.join(', ')}`);
    else if (applied?.config !== want.config || applied?.daemons !== want.daemons) {
      due.set(spec.name, 'config not yet applied');
    }
  }

  let bootstrapped = false;
  if (!anyRunning) {
    const first = specs[0];
    if (!first) return { service: 'mariadb', outcomes };
    const host = hostOf(ctx, first.name);
    ctx.log(`mariadb on ${first.name}: bootstrapping a new cluster`);
    await host.run(
      [
        '/usr/bin/mariadb-install-db',
        `--defaults-file=${MY_CNF}`,
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
  // Joiners and restarts one host at a time: two nodes in state transfer at once was slower and less safe. Joiners
  // first (in inventory order), then restarts with the writer last, so the writes move once.
  for (const spec of specs) {
    if (outcomes[spec.name] || running.get(spec.name)) continue;
    ctx.log(`mariadb on ${spec.name}: joining the cluster`);
    await startAndSync(ctx, spec, false);
    outcomes[spec.name] = 'started';
    ctx.log(`mariadb on ${spec.name}: started`);
  }
  const restarts = specs.filter((s) => !outcomes[s.name] && due.has(s.name));
  const writer = restarts.length > 1 ? await galeraWriterByHealth(ctx) : undefined;
  for (const spec of galeraRestartOrder(restarts, writer)) {
    ctx.log(`mariadb on ${spec.name}: restarting (${due.get(spec.name)})`);
    await hostOf(ctx, spec.name).stopDaemon('mariadb', { timeoutMs: 120_000 });
    await startAndSync(ctx, spec, false);
    outcomes[spec.name] = 'restarted';
    ctx.log(`mariadb on ${spec.name}: restarted`);
  }
  // Each untouched node's state asked at once; only one that is not Synced is waited for (in order).
  const untouched = specs.filter((spec) => !outcomes[spec.name]);
  const states = await Promise.all(untouched.map((spec) => galeraNodeStatus(hostOf(ctx, spec.name))));
  for (const [i, spec] of untouched.entries()) {
    await waitRejoined(ctx, spec, states[i]);
    outcomes[spec.name] = peersOnly.has(spec.name) ? 'configured' : 'unchanged';
    ctx.log(`mariadb on ${spec.name}: ${outcomes[spec.name]}`);
  }
  const firstSpec = specs[0];
  if (firstSpec) {
    const usersChanged = await ensureUsers(ctx, hostOf(ctx, firstSpec.name));
    if (usersChanged && !bootstrapped && outcomes[firstSpec.name] === 'unchanged')
      outcomes[firstSpec.name] = 'configured';
  }
  return { service: 'mariadb', outcomes };
}

export function deployGaleraHealth(
  ctx: DeployContext,
  agent: (host: HostSpec) => readonly string[] = galeraHealthAgent,
): Promise<ServiceResult> {
  return deploySimpleService(ctx, {
    service: 'galera-health',
    hosts: hostsFor(ctx.dep, 'mariadb'),
    render: (t) => renderGaleraHealth(ctx.dep, t, agent(t.host)),
    // The peer list changes with the cluster: re-read in place (a restart would take the node out of HAProxy).
    reloadSignal: 'SIGHUP',
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
export function galeraHealthy(host: Host): Promise<boolean> {
  return apiHealthy(host, GALERA_HEALTH_PORT, '/');
}

/** The Galera health endpoint's script under dist/. */
export const GALERA_HEALTH_AGENT = 'agents/galera-health.js';

/** The command that runs the Galera health agent on a host (src/runtime/runtime.ts: lab or real host). */
export function galeraHealthAgent(host: HostSpec): string[] {
  return agentArgv(host, GALERA_HEALTH_AGENT);
}

/** The single-writer frontend on the VIP: one active server, the others backup, checked through the health agent. */
export function galeraLoadBalanced(dep: Deployment): LoadBalancedService[] {
  const db = hostsFor(dep, 'mariadb');
  if (db.length === 0) return [];
  return [
    {
      name: 'mariadb',
      mode: 'tcp',
      bind: { address: dep.globals.internalVip, port: MARIADB_PORT },
      servers: db.map((h) => ({ name: h.name, address: h.address, port: MARIADB_PORT })),
      httpCheck: { path: '/', port: GALERA_HEALTH_PORT },
      checks: 'database',
      activeBackup: true,
      // Long-lived pooled DB connections from OpenStack services must not be cut by idle timeouts.
      timeouts: { client: '3600s', server: '3600s' },
    },
  ];
}

/** What `stackha status` knows of the Galera cluster: each node, and the writer each load balancer picked. */
export interface GaleraStatusData {
  readonly nodes: readonly (GaleraNodeStatus & { readonly healthy: boolean })[];
  /** The Galera server each HAProxy sends new connections to, by loadbalancer host. */
  readonly writer: Readonly<Record<string, string | undefined>>;
}

export function galeraProblems(dep: Deployment, s: GaleraStatusData): string[] {
  const p: string[] = [];
  const nDb = hostsFor(dep, 'mariadb').length;
  for (const g of s.nodes) {
    if (!g.running) p.push(`galera: ${g.host} is not running`);
    else if (g.state !== 'Synced' || g.clusterStatus !== 'Primary') {
      p.push(`galera: ${g.host} is ${g.state ?? 'unknown'}/${g.clusterStatus ?? 'unknown'}`);
    } else if (g.clusterSize !== nDb)
      p.push(`galera: ${g.host} sees a cluster of ${g.clusterSize}, expected ${nDb}`);
  }
  const writers = new Set(Object.values(s.writer).filter((w) => w !== undefined));
  if (writers.size > 1)
    p.push(`haproxy: load balancers disagree on the Galera writer (${[...writers].join(', ')})`);
  return p;
}

/** Galera's part of `stackha status`. Pure. */
export function galeraStatusOf(dep: Deployment, data: GaleraStatusData): ServiceStatus {
  return { service: 'mariadb', lines: formatGaleraStatus(data), problems: galeraProblems(dep, data), data };
}

export function formatGaleraStatus(s: GaleraStatusData): string[] {
  const out = ['Galera'];
  for (const g of s.nodes) {
    out.push(
      `  ${g.host.padEnd(8)} ${g.running ? 'running' : 'stopped'}  ${(g.state ?? '-').padEnd(9)} ${(g.clusterStatus ?? '-').padEnd(11)} size ${g.clusterSize ?? '-'}  health ${g.healthy ? '200' : 'down'}  seqno ${g.lastCommitted ?? '-'}`,
    );
  }
  const writers = Object.entries(s.writer).map(([lb, w]) => `${lb}->${w ?? 'none'}`);
  out.push(`  writes go to (per load balancer): ${writers.join(' ') || 'no load balancer'}`);
  return out;
}

const galeraFronted = {
  backends: () => ['mariadb'],
  drainMs: DB_DRAIN_MS,
  healthy: (host: Host) => galeraHealthy(host),
};

export const MARIADB: ServiceDeclaration = {
  name: 'mariadb',
  title: 'mariadb (Galera) and its health endpoint',
  tier: 'infra',
  enable: { key: 'enable_mariadb', default: true },
  groups: ['mariadb', 'control'],
  noHosts: 'error',
  minHosts: {
    min: 3,
    quorum: true,
    why: (n) =>
      n === 2
        ? 'a Galera cluster of 2 has no quorum to lose: when either node fails, the other is 1 of 2, not a majority, and stops taking writes'
        : 'a single Galera node has no quorum to lose: nothing survives its failure',
  },
  passwords: ['database_password', 'mariadb_backup_database_password'],
  packages: ['mariadb-server', 'mariadb-client', 'galera-4', 'rsync'],
  // The health endpoint is what HAProxy checks: restarting either takes the node out of HAProxy.
  daemons: () => [
    { name: 'mariadb', stopTimeoutMs: 120_000, fronted: galeraFronted },
    { name: 'galera-health', stopTimeoutMs: 20_000, fronted: galeraFronted, agent: GALERA_HEALTH_AGENT },
  ],
  loadBalanced: galeraLoadBalanced,
  // A host that leaves takes no stale copy of the data (and no history a recovery would count) with it.
  removal: [DATADIR],
  deploy: async (ctx) => [await deployGalera(ctx), await deployGaleraHealth(ctx)],
  wanted: (dep, t) => ({
    mariadb: galeraWantedState(dep, t),
    'galera-health': wantedState('galera-health', renderGaleraHealth(dep, t, galeraHealthAgent(t.host))),
  }),
  restartHost: async (ctx, spec) => {
    const host = hostIn(ctx, spec.name);
    const t = targetIn(ctx, spec);
    // A clean shutdown leaves the position in grastate.dat: the node rejoins by IST (or needs no transfer).
    await host.stopDaemon('mariadb', { timeoutMs: 120_000 });
    const mark = await errorLogMark(host);
    await startGaleraNode(host, t);
    await waitSynced(host);
    ctx.log(
      `mariadb on ${spec.name}: Synced (state transfer: ${classifyStateTransfer(await errorLogSince(host, mark))})`,
    );
    await restartUnit(
      host,
      renderGaleraHealth(ctx.dep, t, galeraHealthAgent(spec)),
      MARIADB.daemons(ctx.dep),
    );
    await waitFor(
      `Galera health endpoint on ${spec.name}`,
      async () => ((await galeraHealthy(host)) ? true : undefined),
      {
        timeoutMs: 60_000,
        intervalMs: 300,
      },
    );
  },
  beforeLeave: async (ctx, spec, remaining) => {
    const host = hostIn(ctx, spec.name);
    if ((await host.daemonPid('mariadb')) === undefined) return;
    await host.stopDaemon('mariadb', { timeoutMs: 120_000 });
    await host.stopDaemon('galera-health', { timeoutMs: 20_000 });
    const size = hostsFor(remaining, 'mariadb').length;
    const first = hostsFor(remaining, 'mariadb')[0];
    if (!first) return;
    await waitFor(
      `the Galera cluster to be ${size} nodes`,
      async () => {
        const s = await galeraNodeStatus(hostIn(ctx, first.name));
        return s.clusterSize === size && s.clusterStatus === 'Primary' ? true : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 500 },
    );
  },
  status: async (ctx) => {
    const [nodes, states] = await Promise.all([
      Promise.all(
        hostsFor(ctx.dep, 'mariadb').map(async (s) => ({
          ...(await galeraNodeStatus(hostIn(ctx, s.name))),
          healthy: await galeraHealthy(hostIn(ctx, s.name)),
        })),
      ),
      lbStates(ctx),
    ]);
    const writer: Record<string, string | undefined> = {};
    for (const [lb, list] of states) writer[lb] = activeServer(list, 'mariadb');
    return galeraStatusOf(ctx.dep, { nodes, writer });
  },
};
