#!/usr/bin/env node
// The chaos load generator, run inside the lab's client namespace. Drives four workloads at once against the
// deployment the way OpenStack services use it, and records every operation (start, latency, outcome):
//   sql   INSERTs with client-chosen unique ids through VIP:3306, counted when COMMIT is acknowledged; reads
//   amqp  persistent publishes with confirms to a quorum (or mirrored classic) queue, connecting to the broker
//         list (not the VIP) like oslo.messaging; a consumer acks what it receives
//   mc    memcached set+get over every server with client-side hashing (memjs: hash % n, failover)
//   http  GET through the VIP to an HAProxy frontend: with Keystone deployed, a token validation
//         (GET /v3/auth/tokens), else the lab's probe API
//   tok   with Keystone deployed, a password token issue through the VIP, at a lower rate (it hashes a password)
// Runs until SIGTERM, then stops producing, drains the consumer and writes its final accounting.
// Usage: load CONFIG.json   (the config holds passwords: written 0600 by the controller)
import { createWriteStream, readFileSync, writeFileSync } from 'node:fs';
import amqp from 'amqplib';
import mariadb, { type Connection as DbConnection } from 'mariadb';
import memjs from 'memjs';

export interface LoadConfig {
  readonly runId: string;
  readonly opsFile: string;
  readonly finalFile: string;
  readonly vip: string;
  readonly dbPassword: string;
  readonly brokers: readonly string[];
  readonly amqpPassword: string;
  readonly queue: string;
  readonly queueType: 'quorum' | 'classic';
  readonly memcachedServers: readonly string[];
  readonly httpUrl: string | undefined;
  /** Keystone on the VIP: when set, the HTTP workload validates tokens and `tok` issues them. */
  readonly keystone: KeystoneLoad | undefined;
  /** Pause between operations of one workload, ms. */
  readonly intervalMs: number;
  readonly drainMs: number;
  readonly maxSeconds: number;
}

export interface KeystoneLoad {
  /** e.g. http://VIP:5000 */
  readonly url: string;
  readonly username: string;
  readonly password: string;
  readonly project: string;
  /** Pause between token issues, ms. */
  readonly issueIntervalMs: number;
}

/** One operation as recorded: workload, start (epoch ms), latency (ms), ok, error kind. */
export interface OpRecord {
  readonly w: 'sql' | 'sqlr' | 'amqp' | 'mc' | 'http' | 'tok';
  readonly t: number;
  readonly l: number;
  readonly ok: boolean;
  readonly e?: string;
}

export interface LoadFinal {
  /** The run this accounting belongs to (the harness refuses another run's). */
  readonly runId: string;
  readonly sqlAcked: string[];
  readonly amqpConfirmed: string[];
  /** id -> times received */
  readonly amqpReceived: Record<string, number>;
  readonly amqpReconnects: number;
  readonly sqlReconnects: number;
  readonly drained: boolean;
  /** Messages still in the queue after the drain; undefined when the generator could not ask. */
  readonly amqpLeftInQueue: number | undefined;
}

const cfg = JSON.parse(readFileSync(process.argv[2] ?? '', 'utf8')) as LoadConfig;
const out = createWriteStream(cfg.opsFile, { flags: 'w' });
let stopping = false;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function record(w: OpRecord['w'], t: number, ok: boolean, err?: unknown): void {
  const rec: OpRecord = { w, t, l: Date.now() - t, ok };
  if (!ok) {
    // Error codes may be strings (ECONNREFUSED) or numbers (driver errnos).
    const e = String(err instanceof Error ? ((err as { code?: unknown }).code ?? err.message) : err);
    out.write(`${JSON.stringify({ ...rec, e: e.slice(0, 80) })}\n`);
  } else out.write(`${JSON.stringify(rec)}\n`);
}

function within<T>(ms: number, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('timeout')), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

// ---------------------------------------------------------------------------------------------------- SQL
const sqlAcked: string[] = [];
let sqlReconnects = 0;

async function sqlConnect(): Promise<DbConnection> {
  const conn = await mariadb.createConnection({
    host: cfg.vip,
    port: 3306,
    user: 'root',
    password: cfg.dbPassword,
    database: 'stackha_chaos',
    connectTimeout: 2000,
    // A commit stalled longer than this counts as failed (its outcome unknown, so it is not counted acknowledged).
    socketTimeout: 15_000,
  });
  // The server closing an idle connection is reported as an event; the next query fails and reconnects.
  conn.on('error', () => {});
  return conn;
}

/**
 * A connection the way oslo.db (kolla's settings) hands one out: replaced once older than connection_recycle_time
 * (10 s), and pinged at checkout, a dead one replaced before the statement runs. So a graceful drain, which leaves
 * established sessions time to end, costs this client nothing, and a dead pooled connection costs a reconnect, not
 * an error; a statement that fails once sent is a real failure.
 */
const RECYCLE_MS = 10_000;
interface PooledDb {
  conn: DbConnection;
  since: number;
}
async function checkout(pooled: PooledDb | undefined): Promise<PooledDb> {
  if (pooled && Date.now() - pooled.since < RECYCLE_MS) {
    try {
      await within(2000, pooled.conn.ping());
      return pooled;
    } catch {
      /* dead: replaced below */
    }
  }
  await pooled?.conn.destroy();
  if (pooled) sqlReconnects++;
  return { conn: await sqlConnect(), since: Date.now() };
}

async function sqlWriter(): Promise<void> {
  let pooled: PooledDb | undefined;
  let seq = 0;
  while (!stopping) {
    const t = Date.now();
    const id = `${cfg.runId}-${seq++}`;
    try {
      pooled = await checkout(pooled);
      await pooled.conn.query('INSERT INTO acked (id, run_id) VALUES (?, ?)', [id, cfg.runId]);
      sqlAcked.push(id);
      record('sql', t, true);
    } catch (err) {
      record('sql', t, false, err);
      await pooled?.conn.destroy();
      pooled = undefined;
      sqlReconnects++;
    }
    await sleep(cfg.intervalMs);
  }
  await pooled?.conn.destroy();
}

async function sqlReader(): Promise<void> {
  let pooled: PooledDb | undefined;
  while (!stopping) {
    const t = Date.now();
    try {
      pooled = await checkout(pooled);
      await pooled.conn.query('SELECT COUNT(*) AS n FROM acked WHERE run_id = ?', [cfg.runId]);
      record('sqlr', t, true);
    } catch (err) {
      record('sqlr', t, false, err);
      await pooled?.conn.destroy();
      pooled = undefined;
    }
    await sleep(cfg.intervalMs * 5);
  }
  await pooled?.conn.destroy();
}

// ---------------------------------------------------------------------------------------------------- AMQP
type AmqpConnection = Awaited<ReturnType<typeof amqp.connect>>;
const amqpConfirmed: string[] = [];
const amqpReceived = new Map<string, number>();
let amqpReconnects = 0;
let publisherDone = false;

const queueArgs = () => (cfg.queueType === 'quorum' ? { 'x-queue-type': 'quorum' } : {});

/**
 * A confirm not back within this is taken as a broker that is gone (a cut-off one never answers): the publisher moves
 * to the next broker. A leader change stalls confirms about 0.3 s here, well under it.
 */
const AMQP_CONFIRM_MS = 2000;
/** A broker host that does not answer a TCP connect within this is skipped. */
const AMQP_CONNECT_MS = 1000;

/** Connects to the first broker that answers, starting at `start` (oslo.messaging walks its host list). */
async function amqpConnect(start: number): Promise<{ conn: AmqpConnection; index: number }> {
  let last: unknown;
  for (let i = 0; i < cfg.brokers.length; i++) {
    const index = (start + i) % cfg.brokers.length;
    try {
      const url = `amqp://openstack:${encodeURIComponent(cfg.amqpPassword)}@${cfg.brokers[index]}:5672/?heartbeat=5`;
      // A crashed host drops packets silently: bound the whole handshake, not only the socket.
      const conn = await within(AMQP_CONNECT_MS * 2, amqp.connect(url, { timeout: AMQP_CONNECT_MS }));
      conn.on('error', () => {});
      return { conn, index };
    } catch (err) {
      last = err;
    }
  }
  throw last instanceof Error ? last : new Error('no broker');
}

async function closeQuietly(conn: AmqpConnection | undefined): Promise<void> {
  if (!conn) return;
  await within(1000, conn.close()).catch(() => {});
}

async function amqpPublisher(): Promise<void> {
  let seq = 0;
  let start = 0;
  while (!stopping) {
    let conn: AmqpConnection | undefined;
    try {
      const c = await amqpConnect(start);
      conn = c.conn;
      const ch = await within(5000, conn.createConfirmChannel());
      ch.on('error', () => {});
      await within(5000, ch.assertQueue(cfg.queue, { durable: true, arguments: queueArgs() }));
      while (!stopping) {
        const t = Date.now();
        const id = `${cfg.runId}-${seq++}`;
        try {
          await within(
            AMQP_CONFIRM_MS,
            new Promise<void>((resolve, reject) => {
              ch.sendToQueue(
                cfg.queue,
                Buffer.from(id),
                { persistent: true, messageId: id },
                (err: unknown) => (err ? reject(err) : resolve()),
              );
            }),
          );
          amqpConfirmed.push(id);
          record('amqp', t, true);
        } catch (err) {
          // A nack or a silent channel: RabbitMQ 3.10 can leave a channel nacking everything after a leader
          // change, so never stay on it. Reconnect, starting with the next broker.
          record('amqp', t, false, err);
          throw err;
        }
        await sleep(cfg.intervalMs);
      }
    } catch {
      amqpReconnects++;
      start++;
      await sleep(200);
    } finally {
      // A close waits for the broker's answer: a cut-off broker never sends it.
      await closeQuietly(conn);
    }
  }
  publisherDone = true;
}

async function amqpConsumer(): Promise<void> {
  let start = 1;
  while (!(publisherDone && drainComplete())) {
    let conn: AmqpConnection | undefined;
    try {
      const c = await amqpConnect(start);
      conn = c.conn;
      const closed = new Promise<void>((resolve) => conn?.on('close', () => resolve()));
      const ch = await within(5000, conn.createChannel());
      ch.on('error', () => {});
      await within(5000, ch.assertQueue(cfg.queue, { durable: true, arguments: queueArgs() }));
      await within(5000, ch.prefetch(200));
      await within(
        5000,
        ch.consume(cfg.queue, (msg) => {
          if (!msg) return;
          const id = msg.content.toString();
          amqpReceived.set(id, (amqpReceived.get(id) ?? 0) + 1);
          ch.ack(msg);
        }),
      );
      while (!(publisherDone && drainComplete())) {
        const r = await Promise.race([closed.then(() => 'closed'), sleep(200).then(() => 'tick')]);
        if (r === 'closed') throw new Error('connection closed');
      }
    } catch {
      amqpReconnects++;
      start++;
      await sleep(200);
    } finally {
      // A close waits for the broker's answer: a cut-off broker never sends it.
      await closeQuietly(conn);
    }
  }
}

let drainDeadline = Number.POSITIVE_INFINITY;
function drainComplete(): boolean {
  if (Date.now() > drainDeadline) return true;
  return amqpConfirmed.every((id) => amqpReceived.has(id));
}

// ---------------------------------------------------------------------------------------------------- memcached
async function memcachedWorkload(): Promise<void> {
  // Like python-memcached/oslo.cache: hash over every server, skip a dead one for a while.
  const client = memjs.Client.create(cfg.memcachedServers.join(','), {
    failover: true,
    failoverTime: 30,
    retries: 0,
    timeout: 0.5,
    conntimeout: 0.5,
    keepAlive: true,
    logger: { log: () => {} },
  });
  let seq = 0;
  while (!stopping) {
    const t = Date.now();
    const key = `${cfg.runId}-k${seq % 500}`;
    const value = String(seq++);
    try {
      await within(2000, client.set(key, value, { expires: 600 }));
      const got = await within(2000, client.get(key));
      if (got.value?.toString() !== value) throw new Error('stale');
      record('mc', t, true);
    } catch (err) {
      record('mc', t, false, err);
    }
    await sleep(cfg.intervalMs);
  }
  client.close();
}

// ---------------------------------------------------------------------------------------------------- HTTP
async function httpWorkload(url: string): Promise<void> {
  while (!stopping) {
    const t = Date.now();
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
      await res.arrayBuffer();
      if (res.status >= 500) throw new Error(`http ${res.status}`);
      record('http', t, true);
    } catch (err) {
      record('http', t, false, err);
    }
    await sleep(cfg.intervalMs);
  }
}

// ---------------------------------------------------------------------------------------------------- Keystone
/** A failed fetch as its cause's code (ECONNREFUSED, ...) rather than node's generic "fetch failed". */
function fetchError(err: unknown): unknown {
  const cause = (err as { cause?: { code?: string } })?.cause;
  return cause?.code ? Object.assign(new Error(cause.code), { code: cause.code }) : err;
}

let keystoneToken: string | undefined;

async function issueToken(k: KeystoneLoad): Promise<string> {
  const body = {
    auth: {
      identity: {
        methods: ['password'],
        password: { user: { name: k.username, domain: { id: 'default' }, password: k.password } },
      },
      scope: { project: { name: k.project, domain: { id: 'default' } } },
    },
  };
  const res = await fetch(`${k.url}/v3/auth/tokens`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  await res.arrayBuffer();
  const token = res.headers.get('x-subject-token');
  if (res.status !== 201 || !token) throw new Error(`http ${res.status}`);
  return token;
}

/** Issues tokens at a low rate; each new token becomes the one the validator checks. */
async function tokenIssuer(k: KeystoneLoad): Promise<void> {
  while (!stopping) {
    const t = Date.now();
    try {
      keystoneToken = await issueToken(k);
      record('tok', t, true);
    } catch (err) {
      record('tok', t, false, fetchError(err));
    }
    await sleep(k.issueIntervalMs);
  }
}

/** Validates the latest token the way a service's keystonemiddleware does: GET /v3/auth/tokens. */
async function tokenValidator(k: KeystoneLoad): Promise<void> {
  while (!stopping && keystoneToken === undefined) await sleep(100);
  while (!stopping) {
    const token = keystoneToken ?? '';
    const t = Date.now();
    try {
      const res = await fetch(`${k.url}/v3/auth/tokens`, {
        headers: { 'x-auth-token': token, 'x-subject-token': token },
        signal: AbortSignal.timeout(5000),
      });
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`http ${res.status}`);
      record('http', t, true);
    } catch (err) {
      record('http', t, false, fetchError(err));
    }
    await sleep(cfg.intervalMs);
  }
}

// ---------------------------------------------------------------------------------------------------- main
async function setupSql(): Promise<void> {
  const conn = await mariadb.createConnection({
    host: cfg.vip,
    user: 'root',
    password: cfg.dbPassword,
    connectTimeout: 5000,
  });
  try {
    await conn.query('CREATE DATABASE IF NOT EXISTS stackha_chaos');
    await conn.query(
      'CREATE TABLE IF NOT EXISTS stackha_chaos.acked (id VARCHAR(80) PRIMARY KEY, run_id VARCHAR(40) NOT NULL, ' +
        'created TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3), KEY (run_id))',
    );
  } finally {
    await conn.end();
  }
}

/** Messages in the queue right now, asked of any broker that answers; undefined when none does. */
async function queueDepth(): Promise<number | undefined> {
  try {
    const { conn } = await amqpConnect(0);
    try {
      const ch = await within(5000, conn.createChannel());
      ch.on('error', () => {});
      return (await within(5000, ch.checkQueue(cfg.queue))).messageCount;
    } finally {
      await closeQuietly(conn);
    }
  } catch {
    return undefined;
  }
}

/** The run starts with an empty queue: messages an earlier run left behind are not this run's to count. */
async function purgeQueue(): Promise<void> {
  const { conn } = await amqpConnect(0);
  try {
    const ch = await within(5000, conn.createChannel());
    ch.on('error', () => {});
    await within(5000, ch.assertQueue(cfg.queue, { durable: true, arguments: queueArgs() }));
    await within(5000, ch.purgeQueue(cfg.queue));
  } finally {
    await closeQuietly(conn);
  }
}

async function main(): Promise<void> {
  await setupSql();
  await purgeQueue();
  let stopped: () => void = () => {};
  const stopRequested = new Promise<void>((resolve) => {
    stopped = resolve;
  });
  const hardStop = setTimeout(() => {
    stopping = true;
    stopped();
  }, cfg.maxSeconds * 1000);
  process.on('SIGTERM', () => {
    stopping = true;
    stopped();
  });
  const producers = [sqlWriter(), sqlReader(), amqpPublisher(), memcachedWorkload()];
  if (cfg.keystone) producers.push(tokenIssuer(cfg.keystone), tokenValidator(cfg.keystone));
  else if (cfg.httpUrl) producers.push(httpWorkload(cfg.httpUrl));
  const consumer = amqpConsumer();
  // Producers stop within an operation's bounds; a hung one must not hold the accounting back.
  // The bound starts when stopping does (not when the load starts: that ended every run after 100 s).
  await Promise.race([Promise.all(producers), stopRequested.then(() => sleep(30_000))]);
  clearTimeout(hardStop);
  drainDeadline = Date.now() + cfg.drainMs;
  // The accounting is written even if the consumer is stuck: what was received so far is what counts.
  await Promise.race([consumer, sleep(cfg.drainMs + 10_000)]);
  const final: LoadFinal = {
    runId: cfg.runId,
    sqlAcked,
    amqpConfirmed,
    amqpReceived: Object.fromEntries(amqpReceived),
    amqpReconnects,
    sqlReconnects,
    drained: amqpConfirmed.every((id) => amqpReceived.has(id)),
    amqpLeftInQueue: await queueDepth(),
  };
  await new Promise<void>((resolve) => out.end(() => resolve()));
  writeFileSync(cfg.finalFile, JSON.stringify(final));
  process.exit(0);
}

main().catch((err: unknown) => {
  process.stderr.write(`load: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
