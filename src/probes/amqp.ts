#!/usr/bin/env node
// AMQP probe, run inside the lab's client namespace. Connects to the broker list the way OpenStack services do
// (each broker in turn, not through the VIP), publishes persistent messages with publisher confirms, or consumes.
// The password comes on stdin, never in argv. Prints one JSON object.
import { readFileSync } from 'node:fs';
import amqp from 'amqplib';

interface Args {
  mode: 'publish' | 'consume';
  brokers: string[];
  queue: string;
  type: 'quorum' | 'classic';
  count: number;
  prefix: string;
  timeoutMs: number;
}

function parseArgs(argv: string[]): Args {
  const a: Args = {
    mode: 'publish',
    brokers: [],
    queue: 'stackha-probe',
    type: 'quorum',
    count: 1,
    prefix: 'm',
    timeoutMs: 10_000,
  };
  const [mode, ...rest] = argv;
  if (mode !== 'publish' && mode !== 'consume')
    throw new Error('usage: amqp publish|consume --brokers a,b,c ...');
  a.mode = mode;
  for (let i = 0; i < rest.length; i += 2) {
    const k = rest[i];
    const v = rest[i + 1] ?? '';
    if (k === '--brokers') a.brokers = v.split(',');
    else if (k === '--queue') a.queue = v;
    else if (k === '--type') a.type = v === 'classic' ? 'classic' : 'quorum';
    else if (k === '--count') a.count = Number(v);
    else if (k === '--prefix') a.prefix = v;
    else if (k === '--timeout-ms') a.timeoutMs = Number(v);
    else throw new Error(`unknown option ${k}`);
  }
  return a;
}

type AmqpConnection = Awaited<ReturnType<typeof amqp.connect>>;

async function connect(
  brokers: string[],
  password: string,
): Promise<{ conn: AmqpConnection; broker: string }> {
  let last: unknown;
  for (const b of brokers) {
    try {
      const url = `amqp://openstack:${encodeURIComponent(password)}@${b}:5672/?heartbeat=10`;
      return { conn: await amqp.connect(url, { timeout: 3000 }), broker: b };
    } catch (err) {
      last = err;
    }
  }
  throw new Error(`no broker answered: ${last instanceof Error ? last.message : String(last)}`);
}

function queueArgs(type: Args['type']): Record<string, unknown> {
  return type === 'quorum' ? { 'x-queue-type': 'quorum' } : {};
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A broker operation that does not answer in time is treated as a dead channel: reconnect. */
function within<T>(ms: number, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer in ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
const OP_TIMEOUT_MS = 3000;

/** Connects to the first broker that answers and opens a channel on the queue; every step bounded. */
async function openQueue<C extends 'confirm' | 'plain'>(args: Args, password: string, kind: C) {
  const { conn, broker } = await connect(args.brokers, password);
  conn.on('error', () => {});
  try {
    const ch = kind === 'confirm' ? await conn.createConfirmChannel() : await conn.createChannel();
    ch.on('error', () => {});
    await within(
      OP_TIMEOUT_MS,
      ch.assertQueue(args.queue, { durable: true, arguments: queueArgs(args.type) }),
    );
    return { conn, broker, ch: ch as C extends 'confirm' ? amqp.ConfirmChannel : amqp.Channel };
  } catch (err) {
    await conn.close().catch(() => {});
    throw err;
  }
}

/**
 * Publishes ids one by one with confirms. A failed channel or connection (a broker dying, or RabbitMQ 3.10's
 * quorum-queue channel that nacks everything after a leader change) means reconnect and resend what was not
 * confirmed: at-least-once, as OpenStack's clients behave.
 */
async function publish(args: Args, password: string, deadline: number) {
  const confirmed: string[] = [];
  const nacked: string[] = [];
  let reconnects = 0;
  let broker = '';
  let next = 0;
  while (next < args.count && Date.now() < deadline) {
    let conn: AmqpConnection | undefined;
    try {
      const opened = await openQueue(args, password, 'confirm');
      conn = opened.conn;
      broker = opened.broker;
      const ch = opened.ch;
      while (next < args.count) {
        const id = `${args.prefix}-${next}`;
        await within(
          OP_TIMEOUT_MS,
          new Promise<void>((resolve, reject) => {
            ch.sendToQueue(
              args.queue,
              Buffer.from(id),
              { persistent: true, messageId: id },
              (err: unknown) => (err ? reject(err) : resolve()),
            );
          }),
        );
        confirmed.push(id);
        next++;
      }
    } catch {
      nacked.push(`${args.prefix}-${next}`);
      reconnects++;
      await sleep(300);
    } finally {
      await conn?.close().catch(() => {});
    }
  }
  return { broker, confirmed, nacked, reconnects };
}

/** Consumes (basic.get + ack) until `count` messages arrived and the queue is empty, reconnecting on failure. */
async function consume(args: Args, password: string, deadline: number) {
  const received: string[] = [];
  let reconnects = 0;
  let broker = '';
  while (Date.now() < deadline) {
    let conn: AmqpConnection | undefined;
    try {
      const opened = await openQueue(args, password, 'plain');
      conn = opened.conn;
      broker = opened.broker;
      const ch = opened.ch;
      for (;;) {
        const msg = await within(OP_TIMEOUT_MS, ch.get(args.queue, { noAck: false }));
        if (!msg) {
          if (received.length >= args.count) return { broker, received, reconnects };
          if (Date.now() >= deadline) break;
          await sleep(100);
          continue;
        }
        ch.ack(msg);
        received.push(msg.content.toString());
      }
    } catch {
      reconnects++;
      await sleep(300);
    } finally {
      await conn?.close().catch(() => {});
    }
  }
  return { broker, received, reconnects, error: 'timeout' };
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const password = readFileSync(0, 'utf8').trim();
  const deadline = Date.now() + args.timeoutMs;
  const result =
    args.mode === 'publish'
      ? await publish(args, password, deadline)
      : await consume(args, password, deadline);
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

main().catch((err: unknown) => {
  process.stdout.write(`${JSON.stringify({ error: err instanceof Error ? err.message : String(err) })}\n`);
  process.exit(1);
});
