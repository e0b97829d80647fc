#!/usr/bin/env node
// Watches the local HAProxy for keepalived, event-fast: every 50 ms a TCP connect to its stats listener. A refused
// connection means nothing listens there any more (HAProxy is gone): the track file gets 1 at once, and keepalived,
// which watches the file with inotify, leaves MASTER in a few milliseconds instead of waiting for its next
// 1-second track script. A slow answer is not a failure (only a refusal is); the file is rewritten only on a change.
// Usage: haproxy-watch ADDRESS:PORT TRACK_FILE
import { writeFileSync } from 'node:fs';
import { connect } from 'node:net';

const [target, trackFile] = process.argv.slice(2);
if (!target || !trackFile) {
  process.stderr.write('usage: haproxy-watch ADDRESS:PORT TRACK_FILE\n');
  process.exit(2);
}
const [host, port] = target.split(':');
const INTERVAL_MS = 50;
/** Consecutive refusals before the file says "down": one is certain enough on the host itself, two rule out a race. */
const REFUSALS_DOWN = 2;

let written: string | undefined;
let refusals = 0;

function write(value: '0' | '1'): void {
  if (written === value) return;
  writeFileSync(trackFile as string, `${value}\n`);
  written = value;
  process.stdout.write(
    `${new Date().toISOString()} haproxy on ${target}: ${value === '0' ? 'up' : 'DOWN'}\n`,
  );
}

function probe(): Promise<'up' | 'refused' | 'slow'> {
  return new Promise((resolve) => {
    const s = connect({ host, port: Number(port) });
    const done = (r: 'up' | 'refused' | 'slow') => {
      clearTimeout(timer);
      s.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => done('slow'), 1000);
    s.once('connect', () => done('up'));
    s.once('error', (err: NodeJS.ErrnoException) => done(err.code === 'ECONNREFUSED' ? 'refused' : 'slow'));
  });
}

async function loop(): Promise<void> {
  for (;;) {
    const t = Date.now();
    const r = await probe();
    if (r === 'up') {
      refusals = 0;
      write('0');
    } else if (r === 'refused' && ++refusals >= REFUSALS_DOWN) write('1');
    await new Promise((res) => setTimeout(res, Math.max(5, INTERVAL_MS - (Date.now() - t))));
  }
}

for (const sig of ['SIGTERM', 'SIGINT'] as const) process.on(sig, () => process.exit(0));
// keepalived's reload (SIGHUP to its unit) is not for the watcher.
process.on('SIGHUP', () => {});
void loop();
