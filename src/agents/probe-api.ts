#!/usr/bin/env node
// A minimal API backend, one per control host, behind HAProxy on the VIP: what the chaos HTTP workload calls
// until real OpenStack APIs are deployed. GET /healthcheck answers like oslo.middleware's healthcheck; any other
// GET answers with the host's name so a client can see which backend served it.
import { createServer } from 'node:http';

const [listen, hostName] = process.argv.slice(2);
if (!listen || !hostName) {
  process.stderr.write('usage: probe-api ADDRESS:PORT HOSTNAME\n');
  process.exit(2);
}
const [address, port] = listen.split(':');
const server = createServer((req, res) => {
  if (req.url === '/healthcheck') {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('OK');
    return;
  }
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(`{"host":"${hostName}"}`);
});
server.keepAliveTimeout = 30_000;
server.listen(Number(port), address);
for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  process.on(sig, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  });
}
