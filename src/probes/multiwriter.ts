#!/usr/bin/env node
// Multi-writer probe, run inside the lab's client namespace (never from the root namespace). It measures the
// Kolla HA spec's question: are several active Galera writers safe for OpenStack's
// `SELECT ... FOR UPDATE` read-modify-write pattern?
//
// Setup: database stackha_bench, table counters(id, value) with `rows` hot rows reset to 0. Then `workers`
// connections for `seconds`, each looping over
//   BEGIN; SELECT value FROM counters WHERE id=? FOR UPDATE; UPDATE counters SET value=?+1 WHERE id=?; COMMIT
// on a random row. `single`: every worker connects to VIP:3306 (HAProxy sends everything to one node);
// `multi`: workers are spread round-robin over the nodes' own addresses (three writers, no HAProxy).
// A failed transaction is rolled back and counted, never retried. Afterwards SUM(value) is read on every node.
//
// The root password comes on stdin, never in argv. Prints one JSON object (raw figures: the controller
// computes the statistics, see src/bench/multiwriter.ts).
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { type Connection, type ConnectionConfig, createConnection } from 'mariadb';

type Mode = 'single' | 'multi';
type Step = 'connect' | 'begin' | 'select' | 'update' | 'commit';

interface Args {
  mode: Mode;
  vip: string;
  nodes: string[];
  workers: number;
  seconds: number;
  rows: number;
  timeoutMs: number;
  lockWaitTimeoutS: number;
}

const DB = 'stackha_bench';
const PORT = 3306;
/** Hard bound on transactions per worker, besides the time bound. */
const MAX_TX_PER_WORKER = 5_000_000;
/** Bound on reconnects per worker (each waits 200 ms). */
const MAX_CONNECT_FAILURES = 200;

function usage(): never {
  throw new Error(
    'usage: multiwriter --mode single|multi --vip ADDR --nodes a,b,c --workers W --seconds S --rows N',
  );
}

function positiveInt(name: string, v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name}: expected a positive integer, got "${v}"`);
  return n;
}

function parseArgs(argv: string[]): Args {
  const a: Args = {
    mode: 'single',
    vip: '',
    nodes: [],
    workers: 6,
    seconds: 20,
    rows: 10,
    timeoutMs: 120_000,
    lockWaitTimeoutS: 5,
  };
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i];
    const v = argv[i + 1] ?? '';
    if (k === '--mode') {
      if (v !== 'single' && v !== 'multi') usage();
      a.mode = v;
    } else if (k === '--vip') a.vip = v;
    else if (k === '--nodes') a.nodes = v.split(',').filter((s) => s.length > 0);
    else if (k === '--workers') a.workers = positiveInt(k, v);
    else if (k === '--seconds') a.seconds = positiveInt(k, v);
    else if (k === '--rows') a.rows = positiveInt(k, v);
    else if (k === '--timeout-ms') a.timeoutMs = positiveInt(k, v);
    else if (k === '--lock-wait-timeout') a.lockWaitTimeoutS = positiveInt(k, v);
    else throw new Error(`unknown option ${k}`);
  }
  if (!a.vip || a.nodes.length === 0) usage();
  return a;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface ErrorTally {
  key: string;
  errno: number | null;
  code: string | null;
  step: Step;
  count: number;
  sample: string;
}

/** What a driver error carries; anything else (a plain Error) has none of these. */
interface DriverError {
  errno?: number;
  code?: string | null;
  fatal?: boolean;
  sqlMessage?: string | null;
  message?: string;
}

function asDriverError(err: unknown): DriverError {
  return typeof err === 'object' && err !== null ? (err as DriverError) : { message: String(err) };
}

class Tally {
  readonly byKey = new Map<string, ErrorTally>();

  record(step: Step, err: unknown): void {
    const e = asDriverError(err);
    const errno = typeof e.errno === 'number' ? e.errno : null;
    const code = e.code ?? null;
    const key = `${step}:${errno ?? code ?? 'error'}`;
    const t = this.byKey.get(key);
    if (t) t.count++;
    else {
      const msg = (e.sqlMessage ?? e.message ?? '').replace(/\s+/g, ' ').slice(0, 300);
      this.byKey.set(key, { key, errno, code, step, count: 1, sample: msg });
    }
  }
}

function connect(host: string, password: string, database?: string): Promise<Connection> {
  const cfg: ConnectionConfig = {
    host,
    port: PORT,
    user: 'root',
    password,
    connectTimeout: 5000,
    // A server that stops answering ends the connection instead of hanging the worker.
    socketTimeout: 30_000,
    bigIntAsNumber: true,
    decimalAsNumber: true,
    ...(database ? { database } : {}),
  };
  return createConnection(cfg);
}

async function closeQuietly(conn: Connection | undefined): Promise<void> {
  if (!conn) return;
  try {
    await Promise.race([conn.end(), sleep(2000).then(() => conn.destroy())]);
  } catch {
    conn.destroy();
  }
}

interface WorkerResult {
  target: string;
  node: string;
  attempts: number;
  committed: number;
  unknownOutcome: number;
  latenciesMs: number[];
}

/**
 * One writer: read-modify-write on a random hot row until the deadline. BEGIN/COMMIT/ROLLBACK are sent as
 * statements: the driver's commit() skips the round trip when it believes no transaction is open, which would
 * count a transaction the server already rolled back (a Galera brute-force abort) as committed.
 */
async function worker(
  target: string,
  password: string,
  args: Args,
  deadline: number,
  tally: Tally,
): Promise<WorkerResult> {
  const res: WorkerResult = {
    target,
    node: '',
    attempts: 0,
    committed: 0,
    unknownOutcome: 0,
    latenciesMs: [],
  };
  let conn: Connection | undefined;
  let connectFailures = 0;
  while (Date.now() < deadline && res.attempts < MAX_TX_PER_WORKER) {
    if (!conn) {
      try {
        conn = await connect(target, password, DB);
        await conn.query(`SET SESSION innodb_lock_wait_timeout = ${args.lockWaitTimeoutS}`);
        const r = await conn.query<{ n: string }[]>('SELECT @@wsrep_node_name AS n');
        res.node = r[0]?.n ?? target;
      } catch (err) {
        tally.record('connect', err);
        await closeQuietly(conn);
        conn = undefined;
        if (++connectFailures >= MAX_CONNECT_FAILURES) break;
        await sleep(200);
        continue;
      }
    }
    const id = 1 + Math.floor(Math.random() * args.rows);
    let step: Step = 'begin';
    res.attempts++;
    const t0 = performance.now();
    try {
      await conn.query('BEGIN');
      step = 'select';
      const rows = await conn.query<{ value: number }[]>(
        'SELECT value FROM counters WHERE id = ? FOR UPDATE',
        [id],
      );
      const value = rows[0]?.value;
      if (value === undefined) throw new Error(`row ${id} is missing`);
      step = 'update';
      await conn.query('UPDATE counters SET value = ? + 1 WHERE id = ?', [value, id]);
      step = 'commit';
      await conn.query('COMMIT');
      res.latenciesMs.push(performance.now() - t0);
      res.committed++;
    } catch (err) {
      tally.record(step, err);
      const e = asDriverError(err);
      // A COMMIT whose answer was lost may or may not have committed: counted apart for the sum check.
      if (step === 'commit' && e.fatal) res.unknownOutcome++;
      if (e.fatal) {
        await closeQuietly(conn);
        conn = undefined;
      } else {
        try {
          await conn.query('ROLLBACK');
        } catch {
          await closeQuietly(conn);
          conn = undefined;
        }
      }
    }
  }
  await closeQuietly(conn);
  return res;
}

async function setup(args: Args, password: string): Promise<void> {
  const conn = await connect(args.vip, password);
  try {
    await conn.query(`CREATE DATABASE IF NOT EXISTS ${DB}`);
    await conn.query(`DROP TABLE IF EXISTS ${DB}.counters`);
    await conn.query(`CREATE TABLE ${DB}.counters (id INT PRIMARY KEY, value BIGINT NOT NULL) ENGINE=InnoDB`);
    const values = Array.from({ length: args.rows }, (_, i) => `(${i + 1}, 0)`).join(',');
    await conn.query(`INSERT INTO ${DB}.counters (id, value) VALUES ${values}`);
  } finally {
    await closeQuietly(conn);
  }
}

interface NodeSum {
  address: string;
  node?: string;
  rows?: number;
  sum?: number;
  error?: string;
}

/** Reads COUNT and SUM on one node through its own address, after it applied everything (wsrep_sync_wait). */
async function readSum(address: string, password: string): Promise<NodeSum> {
  let conn: Connection | undefined;
  try {
    conn = await connect(address, password);
    await conn.query('SET SESSION wsrep_sync_wait = 1');
    const r = await conn.query<{ node: string; n: number; s: number }[]>(
      `SELECT @@wsrep_node_name AS node, COUNT(*) AS n, CAST(COALESCE(SUM(value), 0) AS SIGNED) AS s FROM ${DB}.counters`,
    );
    const row = r[0];
    if (!row) return { address, error: 'no result' };
    return { address, node: row.node, rows: Number(row.n), sum: Number(row.s) };
  } catch (err) {
    const e = asDriverError(err);
    return { address, error: e.sqlMessage ?? e.message ?? 'error' };
  } finally {
    await closeQuietly(conn);
  }
}

/** Every node's sum, after a short settle; read again (bounded) while nodes disagree or do not answer. */
async function readSums(args: Args, password: string, deadline: number): Promise<NodeSum[]> {
  await sleep(500);
  let sums: NodeSum[] = [];
  for (let attempt = 0; attempt < 20; attempt++) {
    sums = await Promise.all(args.nodes.map((a) => readSum(a, password)));
    const values = new Set(sums.map((s) => s.sum));
    if (sums.every((s) => s.sum !== undefined) && values.size === 1) return sums;
    if (Date.now() >= deadline) break;
    await sleep(500);
  }
  return sums;
}

/** Waits (bounded) until every node has the freshly created rows, so no writer starts on a node behind. */
async function waitRowsEverywhere(args: Args, password: string, deadline: number): Promise<void> {
  for (let attempt = 0; attempt < 40; attempt++) {
    const sums = await Promise.all(args.nodes.map((a) => readSum(a, password)));
    if (sums.every((s) => s.rows === args.rows && s.sum === 0)) return;
    if (Date.now() >= deadline) break;
    await sleep(250);
  }
  throw new Error(`the ${args.rows} fresh rows did not show up on every node`);
}

interface GaleraCounters {
  address: string;
  node?: string;
  state?: string;
  clusterSize?: number;
  certFailures?: number;
  bfAborts?: number;
  replays?: number;
  innodbDeadlocks?: number;
  error?: string;
}

const STATUS_VARS = [
  'wsrep_local_state_comment',
  'wsrep_cluster_size',
  'wsrep_local_cert_failures',
  'wsrep_local_bf_aborts',
  'wsrep_local_replays',
  'Innodb_deadlocks',
];

/** Galera's own conflict counters on one node (cumulative since the node started). */
async function galeraCounters(address: string, password: string): Promise<GaleraCounters> {
  let conn: Connection | undefined;
  try {
    conn = await connect(address, password);
    const node = await conn.query<{ n: string }[]>('SELECT @@wsrep_node_name AS n');
    const rows = await conn.query<{ Variable_name: string; Value: string }[]>(
      `SHOW GLOBAL STATUS WHERE Variable_name IN (${STATUS_VARS.map((v) => `'${v}'`).join(',')})`,
    );
    const v = new Map(rows.map((r) => [r.Variable_name.toLowerCase(), r.Value]));
    const num = (k: string): number | undefined => {
      const s = v.get(k.toLowerCase());
      return s === undefined ? undefined : Number(s);
    };
    const out: GaleraCounters = { address };
    const n = node[0]?.n;
    if (n !== undefined) out.node = n;
    const state = v.get('wsrep_local_state_comment');
    if (state !== undefined) out.state = state;
    const fields: [keyof GaleraCounters, string][] = [
      ['clusterSize', 'wsrep_cluster_size'],
      ['certFailures', 'wsrep_local_cert_failures'],
      ['bfAborts', 'wsrep_local_bf_aborts'],
      ['replays', 'wsrep_local_replays'],
      ['innodbDeadlocks', 'Innodb_deadlocks'],
    ];
    for (const [field, name] of fields) {
      const x = num(name);
      if (x !== undefined) (out as unknown as Record<string, number>)[field] = x;
    }
    return out;
  } catch (err) {
    const e = asDriverError(err);
    return { address, error: e.sqlMessage ?? e.message ?? 'error' };
  } finally {
    await closeQuietly(conn);
  }
}

function delta(before: GaleraCounters[], after: GaleraCounters[]) {
  return after.map((a) => {
    const b = before.find((x) => x.address === a.address);
    const d = (k: 'certFailures' | 'bfAborts' | 'replays' | 'innodbDeadlocks'): number | null => {
      const x = a[k];
      const y = b?.[k];
      return x === undefined || y === undefined ? null : x - y;
    };
    return {
      address: a.address,
      node: a.node ?? b?.node ?? null,
      certFailures: d('certFailures'),
      bfAborts: d('bfAborts'),
      replays: d('replays'),
      innodbDeadlocks: d('innodbDeadlocks'),
    };
  });
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const password = readFileSync(0, 'utf8').trim();
  const started = Date.now();
  const hardDeadline = started + args.timeoutMs;
  // Whatever happens, the process ends in time.
  const watchdog = setTimeout(() => {
    process.stdout.write(`${JSON.stringify({ error: `probe timed out after ${args.timeoutMs} ms` })}\n`);
    process.exit(1);
  }, args.timeoutMs);
  watchdog.unref();

  const before = await Promise.all(args.nodes.map((a) => galeraCounters(a, password)));
  const unhealthy = before.filter(
    (g) => g.error !== undefined || g.state !== 'Synced' || g.clusterSize !== args.nodes.length,
  );
  if (unhealthy.length > 0) {
    throw new Error(
      `cluster not whole before the run: ${unhealthy
        .map((g) => `${g.address} ${g.error ?? `${g.state} size ${g.clusterSize}`}`)
        .join('; ')}`,
    );
  }
  await setup(args, password);
  await waitRowsEverywhere(args, password, Math.min(hardDeadline, Date.now() + 15_000));

  const targets = Array.from({ length: args.workers }, (_, i) =>
    args.mode === 'single' ? args.vip : (args.nodes[i % args.nodes.length] ?? args.vip),
  );
  const tally = new Tally();
  const t0 = performance.now();
  const deadline = Date.now() + args.seconds * 1000;
  const results = await Promise.all(targets.map((t) => worker(t, password, args, deadline, tally)));
  const elapsedS = (performance.now() - t0) / 1000;

  const sums = await readSums(args, password, Math.min(hardDeadline - 2000, Date.now() + 15_000));
  const after = await Promise.all(args.nodes.map((a) => galeraCounters(a, password)));

  const writesByNode: Record<string, number> = {};
  for (const r of results) {
    if (r.committed > 0) writesByNode[r.node] = (writesByNode[r.node] ?? 0) + r.committed;
  }
  const out = {
    mode: args.mode,
    workers: args.workers,
    seconds: args.seconds,
    rows: args.rows,
    targets,
    elapsedS,
    attempts: results.reduce((n, r) => n + r.attempts, 0),
    committed: results.reduce((n, r) => n + r.committed, 0),
    unknownOutcome: results.reduce((n, r) => n + r.unknownOutcome, 0),
    latenciesMs: results.flatMap((r) => r.latenciesMs.map((x) => Math.round(x * 1000) / 1000)),
    errors: [...tally.byKey.values()],
    writesByNode,
    sums,
    galera: delta(before, after),
  };
  clearTimeout(watchdog);
  // Exit once written: a half-closed socket must not keep the probe alive.
  process.stdout.write(`${JSON.stringify(out)}\n`, () => process.exit(0));
}

main().catch((err: unknown) => {
  process.stdout.write(`${JSON.stringify({ error: err instanceof Error ? err.message : String(err) })}\n`);
  process.exit(1);
});
