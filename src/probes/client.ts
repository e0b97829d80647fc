import type { Host } from '../hosts/host.js';
import type { Deployment } from '../model.js';
import { MARIADB_PORT } from '../services/mariadb/galera.js';
import { MEMCACHED_PORT } from '../services/memcached/memcached.js';
import { hostsFor } from '../topology.js';
import { builtScript } from '../util/paths.js';

/**
 * Client-side probes, run on the lab's client host (its namespace), so that nothing of the lab is ever
 * contacted from the root namespace.
 */
const CLIENT_CNF = '/etc/stackha/client.cnf';

/** SQL through an address (the VIP by default) as root; the password sits in a 0600 defaults file. */
export async function clientSql(
  client: Host,
  dep: Deployment,
  sql: string,
  address = dep.globals.internalVip,
): Promise<string> {
  await client.writeFile(
    CLIENT_CNF,
    `[client]\nuser = root\npassword = ${dep.passwords.database_password ?? ''}\n`,
    {
      mode: 0o600,
    },
  );
  return client.run(
    [
      '/usr/bin/mariadb',
      `--defaults-extra-file=${CLIENT_CNF}`,
      '-h',
      address,
      '-P',
      String(MARIADB_PORT),
      '-N',
      '-B',
      '--connect-timeout=5',
    ],
    { input: sql, timeoutMs: 30_000 },
  );
}

/** One memcached round trip (set then get) against address:11211; true when the value comes back. */
export async function memcachedRoundTrip(client: Host, address: string, timeoutMs = 3000): Promise<boolean> {
  const key = `stackha-probe-${process.pid}`;
  const r = await client.exec(
    [
      'socat',
      '-t',
      '1',
      '-T',
      String(timeoutMs / 1000),
      '-',
      `TCP:${address}:${MEMCACHED_PORT},connect-timeout=${timeoutMs / 1000}`,
    ],
    {
      input: `set ${key} 0 60 2\r\nok\r\nget ${key}\r\nquit\r\n`,
      timeoutMs: timeoutMs + 3000,
    },
  );
  return r.code === 0 && r.stdout.includes('STORED') && r.stdout.includes(`VALUE ${key} 0 2`);
}

export interface AmqpPublishResult {
  readonly broker?: string;
  readonly confirmed?: string[];
  readonly nacked?: string[];
  readonly received?: string[];
  readonly error?: string;
}

/** Runs the AMQP probe (dist/probes/amqp.js) on the client host against every broker. */
export async function clientAmqp(
  client: Host,
  dep: Deployment,
  args: readonly string[],
  timeoutMs = 60_000,
): Promise<AmqpPublishResult> {
  const script = builtScript('probes/amqp.js');
  const brokers = hostsFor(dep, 'rabbitmq')
    .map((h) => h.address)
    .join(',');
  const r = await client.exec(
    [process.execPath, script, ...args, '--brokers', brokers, '--timeout-ms', String(timeoutMs - 5000)],
    {
      input: dep.passwords.rabbitmq_password ?? '',
      timeoutMs,
    },
  );
  const line = r.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as AmqpPublishResult;
  } catch {
    return { error: `amqp probe exited ${r.code}: ${r.stderr.trim().split('\n').slice(0, 6).join(' ')}` };
  }
}
