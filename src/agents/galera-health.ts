#!/usr/bin/env node
// Galera health endpoint, one per DB host: HTTP 200 only while the local node is Synced, Primary and ready,
// 503 otherwise. HAProxy's `option httpchk` reads it to pick the single writer (mysql-check would only test
// the login handshake, not whether the node may take writes).
import { execFile } from 'node:child_process';
import { createServer } from 'node:http';

const [listen, defaultsFile] = process.argv.slice(2);
if (!listen || !defaultsFile) {
  process.stderr.write('usage: galera-health ADDRESS:PORT MY.CNF\n');
  process.exit(2);
}
const [address, port] = listen.split(':');

interface Verdict {
  ok: boolean;
  body: string;
  at: number;
}
let cached: Verdict | undefined;
let pending: Promise<Verdict> | undefined;
// Several HAProxies check every ~200 ms: answer them from one query at most every 150 ms.
const CACHE_MS = 150;

function query(): Promise<Verdict> {
  return new Promise((resolve) => {
    execFile(
      '/usr/bin/mariadb',
      [
        `--defaults-file=${defaultsFile}`,
        '-uroot',
        '-N',
        '-B',
        '--connect-timeout=1',
        '-e',
        "SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_local_state','wsrep_cluster_status','wsrep_ready')",
      ],
      { timeout: 1500 },
      (err, stdout) => {
        if (err) {
          resolve({ ok: false, body: 'mariadb not answering\n', at: Date.now() });
          return;
        }
        const v = new Map(
          stdout
            .trim()
            .split('\n')
            .map((l) => l.split('\t') as [string, string]),
        );
        const ok =
          v.get('wsrep_local_state') === '4' &&
          v.get('wsrep_cluster_status') === 'Primary' &&
          v.get('wsrep_ready') === 'ON';
        const body = `state=${v.get('wsrep_local_state')} cluster=${v.get('wsrep_cluster_status')} ready=${v.get('wsrep_ready')}\n`;
        resolve({ ok, body, at: Date.now() });
      },
    );
  });
}

async function verdict(): Promise<Verdict> {
  if (cached && Date.now() - cached.at < CACHE_MS) return cached;
  pending ??= query().finally(() => {
    pending = undefined;
  });
  cached = await pending;
  return cached;
}

const server = createServer((_req, res) => {
  verdict().then((v) => {
    res.writeHead(v.ok ? 200 : 503, { 'content-type': 'text/plain', connection: 'close' });
    res.end(v.body);
  });
});
server.listen(Number(port), address);
for (const sig of ['SIGTERM', 'SIGINT'] as const) process.on(sig, () => server.close(() => process.exit(0)));
