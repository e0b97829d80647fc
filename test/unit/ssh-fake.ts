// An in-process SSH server (ssh2's Server) for the SSH host's unit tests, reached over a Unix socket in a temporary
// directory: no IP traffic at all. Commands either run on this machine with sh (only tests confined to a temporary
// directory do that) or go to a scripted fake.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { type Server as NetServer, createServer, connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { Server, utils } from 'ssh2';

export interface FakeExec {
  readonly command: string;
  readonly stdin: string;
}

export interface FakeReply {
  readonly code: number;
  readonly stdout?: string;
  readonly stderr?: string;
}

/** Answers a command; 'local' runs every command on this machine with sh instead. */
export type Handler = ((exec: FakeExec) => FakeReply | Promise<FakeReply>) | 'local';

export interface FakeServer {
  readonly socket: () => Duplex;
  /** The server's public host key blob (what a client sees). */
  readonly hostKey: Buffer;
  readonly commands: FakeExec[];
  /** The most sessions open at once. */
  readonly maxSessions: () => number;
  readonly users: string[];
  close(): Promise<void>;
}

/** Splits a command line the way a POSIX shell splits what shellCommand() writes (plain words and '…' quoting). */
export function shellWords(line: string): string[] {
  const words: string[] = [];
  let cur = '';
  let inWord = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i] as string;
    if (c === "'") {
      const end = line.indexOf("'", i + 1);
      cur += line.slice(i + 1, end);
      i = end;
      inWord = true;
    } else if (c === '\\') {
      cur += line[++i];
      inWord = true;
    } else if (c === ' ') {
      if (inWord) words.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (inWord) words.push(cur);
  return words;
}

/** The logical argv of a command the SSH host sent: without sudo, `env -i K=V…` and `timeout …`. */
export function logicalArgv(command: string): string[] {
  let w = shellWords(command);
  if (w[0] === 'sudo') w = w.slice(w.indexOf('--') + 1);
  if (w[0] === 'env' && w[1] === '-i') {
    w = w.slice(2);
    while (w[0]?.includes('=')) w = w.slice(1);
  }
  if (w[0] === 'timeout' && w[1] === '--kill-after=5') w = w.slice(3);
  return w;
}

export async function startFakeServer(
  handler: Handler,
  opts: {
    /** Refuse this session open (as OpenSSH does past MaxSessions: "open failed"). */
    refuseSession?: () => boolean;
  } = {},
): Promise<FakeServer> {
  const dir = mkdtempSync(join(tmpdir(), 'stackha-ssh-test-'));
  const path = join(dir, 'sshd.sock');
  const keys = utils.generateKeyPairSync('ed25519');
  const parsed = utils.parseKey(keys.public);
  if (parsed instanceof Error) throw parsed;
  const hostKey = (Array.isArray(parsed) ? parsed[0] : parsed).getPublicSSH();
  const commands: FakeExec[] = [];
  const users: string[] = [];
  let open = 0;
  let max = 0;
  const ssh = new Server({ hostKeys: [keys.private] }, (client) => {
    client.on('authentication', (ctx) => {
      users.push(ctx.username);
      ctx.accept();
    });
    client.on('error', () => undefined);
    client.on('ready', () => {
      client.on('session', (acceptSession, rejectSession) => {
        if (opts.refuseSession?.()) {
          rejectSession();
          return;
        }
        const session = acceptSession();
        open++;
        max = Math.max(max, open);
        session.on('close', () => open--);
        session.on('exec', (accept, _reject, info) => {
          const stream = accept();
          const chunks: Buffer[] = [];
          if (handler === 'local') {
            commands.push({ command: info.command, stdin: '' });
            const child = spawn('sh', ['-c', info.command], { stdio: ['pipe', 'pipe', 'pipe'] });
            stream.pipe(child.stdin);
            child.stdout.on('data', (d: Buffer) => stream.write(d));
            child.stderr.on('data', (d: Buffer) => stream.stderr.write(d));
            child.on('close', (code, signal) => {
              if (code !== null) stream.exit(code);
              else stream.exit((signal ?? 'KILL').replace(/^SIG/, ''));
              stream.end();
            });
            return;
          }
          stream.on('data', (d: Buffer) => chunks.push(d));
          stream.on('end', async () => {
            const exec = { command: info.command, stdin: Buffer.concat(chunks).toString('utf8') };
            commands.push(exec);
            const r = await handler(exec);
            if (r.stdout) stream.write(r.stdout);
            if (r.stderr) stream.stderr.write(r.stderr);
            stream.exit(r.code);
            stream.end();
          });
        });
      });
    });
  });
  const net: NetServer = createServer((sock) => ssh.injectSocket(sock));
  await new Promise<void>((resolve) => net.listen(path, resolve));
  const sockets: Duplex[] = [];
  return {
    socket: () => {
      const s = netConnect(path);
      sockets.push(s);
      return s;
    },
    hostKey,
    commands,
    users,
    maxSessions: () => max,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => net.close(() => resolve()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
