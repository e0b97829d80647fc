#!/usr/bin/env node
// Galera health endpoint and death watch, one per DB host.
//  - HTTP 200 only while the local node is Synced, Primary and ready, 503 otherwise: HAProxy's `option httpchk`
//    reads it to pick the single writer (mysql-check would only test the login handshake, not whether the node may
//    take writes). The local node is asked every 100 ms over one kept connection to its unix socket.
//  - When the local mariadbd is certainly dead (its socket refuses and its process is gone: kill -9, a crash of the
//    daemon), the surviving nodes are told to evict it at once (`evs.evict=<its gcomm UUID>`), instead of stalling
//    every commit until its evs.suspect_timeout runs out. A node that is merely slow is never evicted: the process
//    must be gone. A silent host (power loss, partition) is left to the tuned evs timeouts.
// Usage: galera-health ADDRESS:PORT CONFIG.json   (the config holds the DB root password: mode 0600). SIGHUP
// re-reads the config (a changed peer list needs no restart, which would take the node out of HAProxy).
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import mariadb, { type Connection } from 'mariadb';

export interface GaleraHealthConfig {
  /** The local node's unix socket and pid file. */
  readonly socket: string;
  readonly pidFile: string;
  /** The other nodes' addresses, where an eviction is sent. */
  readonly peers: readonly string[];
  readonly port: number;
  /** Evict a dead local node on the peers (the stackha profile); false: leave it to the evs timeouts. */
  readonly evict: boolean;
  /** Root over TCP on the peers. */
  readonly user: string;
  readonly password: string;
}

const [listen, configPath] = process.argv.slice(2);
if (!listen || !configPath) {
  process.stderr.write('usage: galera-health ADDRESS:PORT CONFIG.json\n');
  process.exit(2);
}
const [address, port] = listen.split(':');
let config = JSON.parse(readFileSync(configPath, 'utf8')) as GaleraHealthConfig;

const log = (m: string): void => {
  process.stdout.write(`${new Date().toISOString()} ${m}\n`);
};

interface Verdict {
  ok: boolean;
  body: string;
  at: number;
}
let verdict: Verdict = { ok: false, body: 'starting\n', at: Date.now() };
let conn: Connection | undefined;
/** The local node's gcomm UUID while it was last seen alive: what the peers must evict if it dies. */
let uuid: string | undefined;
const evicted = new Set<string>();
const POLL_MS = 100;
/** A verdict older than this (mariadb has not answered for that long) is not trusted: 503. */
const STALE_MS = 1500;

function processAlive(): boolean {
  try {
    const pid = Number(readFileSync(config.pidFile, 'utf8').trim());
    if (!Number.isInteger(pid) || pid <= 0) return false;
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

async function evictEverywhere(dead: string): Promise<void> {
  evicted.add(dead);
  const started = Date.now();
  await Promise.all(
    config.peers.map(async (peer) => {
      let c: Connection | undefined;
      try {
        c = await mariadb.createConnection({
          host: peer,
          port: config.port,
          user: config.user,
          password: config.password,
          connectTimeout: 1000,
          socketTimeout: 3000,
        });
        await c.query(`SET GLOBAL wsrep_provider_options = 'evs.evict=${dead}'`);
        log(`local mariadbd is dead: ${peer} evicted ${dead} after ${Date.now() - started} ms`);
      } catch (err) {
        log(
          `eviction of ${dead} through ${peer} failed: ${err instanceof Error ? err.message : String(err)}`,
        );
      } finally {
        await c?.end().catch(() => {});
      }
    }),
  );
}

async function poll(): Promise<void> {
  try {
    if (!conn) {
      const c = await mariadb.createConnection({
        socketPath: config.socket,
        user: 'root',
        connectTimeout: 1000,
        socketTimeout: 2000,
      });
      // An idle connection whose server died emits 'error'; unheard, it would end this agent and take the node
      // out of HAProxy for good. The next poll reconnects.
      c.on('error', (err: Error) => {
        log(`local connection lost: ${err.message}`);
        if (conn === c) conn = undefined;
      });
      conn = c;
    }
    const rows = (await conn.query(
      "SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_local_state','wsrep_cluster_status','wsrep_ready','wsrep_gcomm_uuid')",
    )) as { Variable_name: string; Value: string }[];
    const v = new Map(rows.map((r) => [r.Variable_name, r.Value]));
    const ok =
      v.get('wsrep_local_state') === '4' &&
      v.get('wsrep_cluster_status') === 'Primary' &&
      v.get('wsrep_ready') === 'ON';
    const id = v.get('wsrep_gcomm_uuid');
    if (id && /^[0-9a-f-]{36}$/.test(id)) uuid = id;
    verdict = {
      ok,
      body: `state=${v.get('wsrep_local_state')} cluster=${v.get('wsrep_cluster_status')} ready=${v.get('wsrep_ready')}\n`,
      at: Date.now(),
    };
  } catch {
    await conn?.destroy();
    conn = undefined;
    verdict = { ok: false, body: 'mariadb not answering\n', at: Date.now() };
    if (config.evict && uuid && !evicted.has(uuid) && !processAlive()) {
      const dead = uuid;
      uuid = undefined;
      await evictEverywhere(dead);
    }
  }
}

async function loop(): Promise<void> {
  for (;;) {
    const t = Date.now();
    await poll();
    await new Promise((r) => setTimeout(r, Math.max(10, POLL_MS - (Date.now() - t))));
  }
}

const server = createServer((_req, res) => {
  const fresh = Date.now() - verdict.at < STALE_MS;
  const ok = verdict.ok && fresh;
  res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain', connection: 'close' });
  res.end(fresh ? verdict.body : 'mariadb has not answered for a while\n');
});
server.listen(Number(port), address);
process.on('SIGHUP', () => {
  try {
    config = JSON.parse(readFileSync(configPath, 'utf8')) as GaleraHealthConfig;
    log(`config re-read: peers ${config.peers.join(', ')}`);
  } catch (err) {
    log(`config not re-read: ${err instanceof Error ? err.message : String(err)}`);
  }
});
// A health endpoint that exits is a node HAProxy never sees again: log what escaped and keep serving.
process.on('uncaughtException', (err) => log(`unexpected error: ${err.stack ?? err.message}`));
process.on('unhandledRejection', (err) => log(`unexpected rejection: ${String(err)}`));
for (const sig of ['SIGTERM', 'SIGINT'] as const) process.on(sig, () => server.close(() => process.exit(0)));
void loop();
