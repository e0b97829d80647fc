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
// and with the OpenStack tier deployed, what its users do through the VIP with the admin's token:
//   nova, plc, neu, glance, swift   a read of each API (server list, resource providers, networks, image list,
//         account HEAD)
//   obj   a Swift object PUT with its md5 as ETag, then a GET compared with it; acknowledged objects are kept
//   img   a Glance image created, uploaded, its checksum checked, downloaded and compared
//   srv   a Nova server created and followed to ACTIVE (or ERROR, or stuck), then deleted and followed until gone
// Runs until SIGTERM, then stops producing, drains the consumer and writes its final accounting.
// Usage: load CONFIG.json   (the config holds passwords: written 0600 by the controller)
//        load --verify CONFIG.json FINAL.json OUT.json   reads back every acknowledged object and image through the
//        VIP, compares each with its md5, writes the verdict, then deletes them
import { createHash, randomBytes } from 'node:crypto';
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
  /** The OpenStack tier's APIs on the VIP: when set (and Keystone is), its workloads run too. */
  readonly openstack?: OpenstackLoad;
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

export interface OpenstackLoad {
  /** e.g. http://VIP:8774/v2.1 */
  readonly novaUrl?: string;
  readonly placementUrl?: string;
  /** e.g. http://VIP:9696 */
  readonly neutronUrl?: string;
  readonly glanceUrl?: string;
  /** The proxy on the VIP, e.g. http://VIP:8080/v1 (the account comes from the token's project). */
  readonly swiftUrl?: string;
  /** What servers boot from (fake driver: never downloaded, but validated). */
  readonly flavorId?: string;
  readonly imageId?: string;
  /** Servers booting at once. */
  readonly serverStreams: number;
  /** How long a server may stay in BUILD (or a deleted one linger) before it counts as stuck, ms. */
  readonly serverTimeoutMs: number;
  /** Pause between reads of each API, ms. */
  readonly readIntervalMs: number;
  /** Pause between object PUT/GETs and between image cycles, ms. */
  readonly objectIntervalMs: number;
  readonly imageIntervalMs: number;
  readonly objectBytes: number;
  readonly imageBytes: number;
}

/** What happened to one server the workload booted. */
export interface ServerOutcome {
  readonly id: string;
  /** ACTIVE, ERROR (with the fault), stuck in BUILD, or never created. */
  readonly state: 'active' | 'error' | 'stuck-build' | 'create-failed';
  readonly deleted: 'deleted' | 'stuck-deleting' | 'delete-failed' | 'not-tried';
  readonly detail?: string;
  /** When Nova acknowledged the create (epoch ms). */
  readonly createdAt?: number;
  /** Last seen task state and compute host (admin fields; no host: never scheduled). */
  readonly taskState?: string;
  readonly host?: string;
}

/** One operation as recorded: workload, start (epoch ms), latency (ms), ok, error kind. */
export interface OpRecord {
  readonly w:
    | 'sql'
    | 'sqlr'
    | 'amqp'
    | 'mc'
    | 'http'
    | 'tok'
    | 'nova'
    | 'plc'
    | 'neu'
    | 'glance'
    | 'swift'
    | 'obj'
    | 'img'
    | 'srv';
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
  /** Swift objects whose PUT was acknowledged (201 with the ETag asked for), with their md5. */
  readonly objectsAcked?: readonly { name: string; md5: string }[];
  /** The container they are in, under the admin project's account URL. */
  readonly objectContainerUrl?: string;
  /** Glance images that reached active with the checksum of what was uploaded. */
  readonly imagesAcked?: readonly { id: string; md5: string }[];
  readonly servers?: readonly ServerOutcome[];
}

const VERIFY = process.argv[2] === '--verify';
const cfg = JSON.parse(readFileSync(process.argv[VERIFY ? 3 : 2] ?? '', 'utf8')) as LoadConfig;
const out = createWriteStream(VERIFY ? '/dev/null' : cfg.opsFile, { flags: 'w' });
let stopping = false;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function record(w: OpRecord['w'], t: number, ok: boolean, err?: unknown): void {
  const rec: OpRecord = { w, t, l: Date.now() - t, ok };
  if (!ok) {
    // Error codes may be strings (ECONNREFUSED) or numbers (driver errnos). A fetch past its AbortSignal.timeout
    // throws a DOMException whose numeric code (23) says nothing: name it.
    const timedOut = err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError');
    const e = timedOut
      ? 'timeout'
      : String(err instanceof Error ? ((err as { code?: unknown }).code ?? err.message) : err);
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
          // An ack on a channel that closed under it throws inside amqplib's dispatch, which would end the whole
          // generator with no accounting; the message is redelivered and counted as a duplicate instead.
          try {
            ch.ack(msg);
          } catch {}
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
/** The admin project's id, from the first token (Swift's account is AUTH_<project id>). */
let keystoneProject: string | undefined;

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
  const body2 = (await res.json().catch(() => ({}))) as { token?: { project?: { id?: string } } };
  const token = res.headers.get('x-subject-token');
  if (res.status !== 201 || !token) throw new Error(`http ${res.status}`);
  keystoneProject ??= body2.token?.project?.id;
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

// ---------------------------------------------------------------------------------------------------- OpenStack
const objectsAcked: { name: string; md5: string }[] = [];
const imagesAcked: { id: string; md5: string }[] = [];
const servers: ServerOutcome[] = [];

const md5Hex = (b: Uint8Array): string => createHash('md5').update(b).digest('hex');

/** A request with the current admin token; a status the caller does not accept throws `http NNN`. */
async function api(
  url: string,
  init: {
    method?: string;
    body?: Uint8Array | string;
    headers?: Record<string, string>;
    timeoutMs?: number;
  } = {},
  accept: readonly number[] = [200],
): Promise<Response> {
  const res = await fetch(url, {
    method: init.method ?? 'GET',
    headers: { 'x-auth-token': keystoneToken ?? '', ...(init.headers ?? {}) },
    ...(init.body !== undefined ? { body: init.body } : {}),
    // 30 s: an OpenStack client waits that long and more (novaclient and the openstack client set no timeout);
    // an answer later than this is counted failed, the way a user gives up.
    signal: AbortSignal.timeout(init.timeoutMs ?? 30_000),
  });
  if (!accept.includes(res.status)) {
    await res.arrayBuffer().catch(() => {});
    throw new Error(`http ${res.status}`);
  }
  return res;
}

async function untilToken(): Promise<void> {
  while (!stopping && (keystoneToken === undefined || keystoneProject === undefined)) await sleep(100);
}

/** Reads one API at a steady rate: what an operator's dashboard or a service polling another does. */
async function apiReader(w: OpRecord['w'], url: string, method = 'GET', accept: readonly number[] = [200]) {
  await untilToken();
  while (!stopping) {
    const t = Date.now();
    try {
      const res = await api(url, { method }, accept);
      await res.arrayBuffer();
      record(w, t, true);
    } catch (err) {
      record(w, t, false, fetchError(err));
    }
    await sleep(cfg.openstack?.readIntervalMs ?? 200);
  }
}

const swiftAccount = (o: OpenstackLoad): string => `${o.swiftUrl}/AUTH_${keystoneProject}`;
const objectContainer = (o: OpenstackLoad): string => `${swiftAccount(o)}/stackha-chaos-${cfg.runId}`;

/** PUT an object with its md5 as ETag (Swift refuses it if what it stored differs), then GET it back. */
async function objectWorkload(o: OpenstackLoad): Promise<void> {
  await untilToken();
  let ready = false;
  let seq = 0;
  while (!stopping) {
    const t = Date.now();
    try {
      if (!ready) {
        await api(objectContainer(o), { method: 'PUT' }, [201, 202, 204]);
        ready = true;
      }
      const body = randomBytes(o.objectBytes);
      const md5 = md5Hex(body);
      const name = `o${seq++}`;
      const put = await api(
        `${objectContainer(o)}/${name}`,
        { method: 'PUT', body, headers: { etag: md5 } },
        [201],
      );
      await put.arrayBuffer();
      objectsAcked.push({ name, md5 });
      const got = new Uint8Array(await (await api(`${objectContainer(o)}/${name}`)).arrayBuffer());
      if (md5Hex(got) !== md5) throw new Error('object read back differs');
      record('obj', t, true);
    } catch (err) {
      record('obj', t, false, fetchError(err));
    }
    await sleep(o.objectIntervalMs);
  }
}

/** Create an image, upload it, check Glance's checksum, download it and compare. */
async function imageWorkload(o: OpenstackLoad): Promise<void> {
  await untilToken();
  let seq = 0;
  while (!stopping) {
    const t = Date.now();
    try {
      const created = await api(
        `${o.glanceUrl}/v2/images`,
        {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({
            name: `stackha-chaos-${cfg.runId}-${seq++}`,
            disk_format: 'raw',
            container_format: 'bare',
            visibility: 'private',
          }),
        },
        [201],
      );
      const id = ((await created.json()) as { id: string }).id;
      const body = randomBytes(o.imageBytes);
      const md5 = md5Hex(body);
      await (
        await api(
          `${o.glanceUrl}/v2/images/${id}/file`,
          { method: 'PUT', body, headers: { 'content-type': 'application/octet-stream' }, timeoutMs: 60_000 },
          [204],
        )
      ).arrayBuffer();
      const meta = (await (await api(`${o.glanceUrl}/v2/images/${id}`)).json()) as {
        status?: string;
        checksum?: string;
      };
      if (meta.status !== 'active' || meta.checksum !== md5)
        throw new Error(`image ${meta.status ?? '?'} checksum ${meta.checksum ?? '-'}`);
      imagesAcked.push({ id, md5 });
      const got = new Uint8Array(
        await (await api(`${o.glanceUrl}/v2/images/${id}/file`, { timeoutMs: 60_000 })).arrayBuffer(),
      );
      if (md5Hex(got) !== md5) throw new Error('image read back differs');
      record('img', t, true);
    } catch (err) {
      record('img', t, false, fetchError(err));
    }
    await sleep(o.imageIntervalMs);
  }
}

interface NovaServerBody {
  readonly status?: string;
  readonly fault?: { message?: string };
  readonly 'OS-EXT-STS:task_state'?: string | null;
  readonly 'OS-EXT-SRV-ATTR:host'?: string | null;
}

interface ServerSeen {
  readonly status: string | undefined;
  readonly gone: boolean;
  readonly fault: string | undefined;
  readonly taskState?: string | undefined;
  readonly host?: string | undefined;
}

/** Polls a server until `done` says so; poll failures (an API backend dying) are the nova reads' to count. */
async function followServer(
  o: OpenstackLoad,
  id: string,
  done: (status: string | undefined, gone: boolean, fault: string | undefined) => boolean,
): Promise<ServerSeen & { timedOut: boolean }> {
  const deadline = Date.now() + o.serverTimeoutMs;
  let last: ServerSeen = { status: undefined, gone: false, fault: undefined };
  while (Date.now() < deadline) {
    const t = Date.now();
    try {
      const res = await api(`${o.novaUrl}/servers/${id}`, {}, [200, 404]);
      if (res.status === 404) {
        await res.arrayBuffer();
        last = { status: undefined, gone: true, fault: undefined };
      } else {
        const s = ((await res.json()) as { server?: NovaServerBody }).server;
        last = {
          status: s?.status,
          gone: false,
          fault: s?.fault?.message,
          taskState: s?.['OS-EXT-STS:task_state'] ?? undefined,
          host: s?.['OS-EXT-SRV-ATTR:host'] ?? undefined,
        };
      }
      record('nova', t, true);
      if (done(last.status, last.gone, last.fault)) return { ...last, timedOut: false };
    } catch (err) {
      record('nova', t, false, fetchError(err));
    }
    await sleep(500);
  }
  return { ...last, timedOut: true };
}

/** Boots servers one after another: create, follow to ACTIVE or ERROR, delete, follow until gone. */
async function serverWorkload(o: OpenstackLoad, stream: number): Promise<void> {
  await untilToken();
  let seq = 0;
  while (!stopping) {
    const t = Date.now();
    let id: string | undefined;
    let createdAt = 0;
    try {
      const res = await api(
        `${o.novaUrl}/servers`,
        {
          method: 'POST',
          // 2.37: a server without a network (the lab's servers only need to be scheduled and built).
          headers: { 'content-type': 'application/json', 'openstack-api-version': 'compute 2.37' },
          body: JSON.stringify({
            server: {
              name: `stackha-chaos-${cfg.runId}-${stream}-${seq++}`,
              imageRef: o.imageId,
              flavorRef: o.flavorId,
              networks: 'none',
            },
          }),
        },
        [202],
      );
      id = ((await res.json()) as { server: { id: string } }).server.id;
      createdAt = Date.now();
    } catch (err) {
      record('srv', t, false, fetchError(err));
      servers.push({ id: '', state: 'create-failed', deleted: 'not-tried', detail: String(fetchError(err)) });
      await sleep(1000);
      continue;
    }
    const built = await followServer(o, id, (s) => s === 'ACTIVE' || s === 'ERROR');
    const state: ServerOutcome['state'] =
      built.status === 'ACTIVE' ? 'active' : built.status === 'ERROR' ? 'error' : 'stuck-build';
    if (state === 'active') record('srv', t, true);
    else record('srv', t, false, state === 'error' ? `ERROR ${built.fault ?? ''}` : 'stuck in BUILD');
    // Deleted whatever its state: a stuck or failed server must not linger.
    let deleted: ServerOutcome['deleted'] = 'delete-failed';
    for (let attempt = 0; attempt < 5 && deleted === 'delete-failed'; attempt++) {
      try {
        await (await api(`${o.novaUrl}/servers/${id}`, { method: 'DELETE' }, [204, 404])).arrayBuffer();
        const gone = await followServer(o, id, (_s, g) => g);
        deleted = gone.gone ? 'deleted' : 'stuck-deleting';
      } catch {
        await sleep(1000);
      }
    }
    servers.push({
      id,
      state,
      deleted,
      createdAt,
      ...(built.fault ? { detail: built.fault.slice(0, 200) } : {}),
      ...(built.taskState ? { taskState: built.taskState } : {}),
      ...(built.host ? { host: built.host } : {}),
    });
  }
}

function openstackProducers(o: OpenstackLoad): Promise<void>[] {
  const out: Promise<void>[] = [];
  if (o.novaUrl) out.push(apiReader('nova', `${o.novaUrl}/servers?limit=1`));
  if (o.placementUrl) out.push(apiReader('plc', `${o.placementUrl}/resource_providers`));
  if (o.neutronUrl) out.push(apiReader('neu', `${o.neutronUrl}/v2.0/networks?limit=1`));
  if (o.glanceUrl) {
    out.push(apiReader('glance', `${o.glanceUrl}/v2/images?limit=1`));
    out.push(imageWorkload(o));
  }
  if (o.swiftUrl) {
    out.push(
      (async () => {
        await untilToken();
        await apiReader('swift', swiftAccount(o), 'HEAD', [200, 204]);
      })(),
    );
    out.push(objectWorkload(o));
  }
  if (o.novaUrl && o.flavorId && o.imageId)
    for (let i = 0; i < o.serverStreams; i++) out.push(serverWorkload(o, i));
  return out;
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
  // A client library's stray throw (a callback on a connection that died) must not end the run without its
  // accounting: it is logged, and the workloads, each bounded by its own timeouts, go on.
  process.on('uncaughtException', (err) => {
    process.stderr.write(`load: uncaught, going on: ${err instanceof Error ? err.stack : String(err)}\n`);
  });
  const producers = [sqlWriter(), sqlReader(), amqpPublisher(), memcachedWorkload()];
  if (cfg.keystone) producers.push(tokenIssuer(cfg.keystone), tokenValidator(cfg.keystone));
  else if (cfg.httpUrl) producers.push(httpWorkload(cfg.httpUrl));
  if (cfg.keystone && cfg.openstack) producers.push(...openstackProducers(cfg.openstack));
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
    ...(cfg.openstack
      ? {
          objectsAcked,
          ...(cfg.openstack.swiftUrl && keystoneProject
            ? { objectContainerUrl: objectContainer(cfg.openstack) }
            : {}),
          imagesAcked,
          servers,
        }
      : {}),
  };
  await new Promise<void>((resolve) => out.end(() => resolve()));
  writeFileSync(cfg.finalFile, JSON.stringify(final));
  process.exit(0);
}

/** The verdict on what the OpenStack workloads had acknowledged, read back after the cluster healed. */
export interface OpenstackVerdict {
  readonly objects: {
    readonly acked: number;
    readonly intact: number;
    readonly differ: readonly string[];
    readonly unreadable: readonly string[];
  };
  readonly images: {
    readonly acked: number;
    readonly intact: number;
    readonly differ: readonly string[];
    readonly unreadable: readonly string[];
  };
}

async function readBack(url: string, md5: string): Promise<'intact' | 'differs' | string> {
  for (let attempt = 0; ; attempt++) {
    try {
      const got = new Uint8Array(await (await api(url, { timeoutMs: 60_000 })).arrayBuffer());
      return md5Hex(got) === md5 ? 'intact' : 'differs';
    } catch (err) {
      // Read-back is after healing: a transient error is retried, a persistent one is the verdict.
      if (attempt >= 4) return String(fetchError(err));
      await sleep(1000);
    }
  }
}

async function verify(): Promise<void> {
  const final = JSON.parse(readFileSync(process.argv[4] ?? '', 'utf8')) as LoadFinal;
  const o = cfg.openstack;
  if (!cfg.keystone || !o) throw new Error('no OpenStack workloads in this config');
  keystoneToken = await issueToken(cfg.keystone);
  const verdict = {
    objects: { acked: 0, intact: 0, differ: [] as string[], unreadable: [] as string[] },
    images: { acked: 0, intact: 0, differ: [] as string[], unreadable: [] as string[] },
  };
  for (const obj of final.objectsAcked ?? []) {
    verdict.objects.acked++;
    const r = await readBack(`${final.objectContainerUrl}/${obj.name}`, obj.md5);
    if (r === 'intact') verdict.objects.intact++;
    else if (r === 'differs') verdict.objects.differ.push(obj.name);
    else verdict.objects.unreadable.push(`${obj.name}: ${r}`);
  }
  for (const img of final.imagesAcked ?? []) {
    verdict.images.acked++;
    const r = await readBack(`${o.glanceUrl}/v2/images/${img.id}/file`, img.md5);
    if (r === 'intact') verdict.images.intact++;
    else if (r === 'differs') verdict.images.differ.push(img.id);
    else verdict.images.unreadable.push(`${img.id}: ${r}`);
  }
  writeFileSync(process.argv[5] ?? '', JSON.stringify(verdict));
  // What the run created goes: its objects and their container, its images.
  for (const obj of final.objectsAcked ?? [])
    await api(`${final.objectContainerUrl}/${obj.name}`, { method: 'DELETE' }, [204, 404]).catch(() => {});
  if (final.objectContainerUrl)
    await api(final.objectContainerUrl, { method: 'DELETE' }, [204, 404, 409]).catch(() => {});
  for (const img of final.imagesAcked ?? [])
    await api(`${o.glanceUrl}/v2/images/${img.id}`, { method: 'DELETE' }, [204, 404]).catch(() => {});
  process.exit(0);
}

(VERIFY ? verify() : main()).catch((err: unknown) => {
  process.stderr.write(`load: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
