import { spawn } from 'node:child_process';

export interface ExecOptions {
  /** Hard limit; the process group is killed when it is reached. */
  readonly timeoutMs?: number;
  /** Written to stdin (the way secrets reach a command: never in argv). */
  readonly input?: string;
  readonly env?: Readonly<Record<string, string>>;
  readonly signal?: AbortSignal;
}

export interface ExecResult {
  readonly argv: readonly string[];
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly timedOut: boolean;
}

/**
 * The output lines that repeat a line of the command's stdin, replaced: stdin is how secrets reach a command, and a
 * client that echoes its failing input (the mariadb client prints the statement) would put them in the message.
 */
export function withoutInputEcho(output: string, input: string | undefined): string {
  if (!input) return output;
  const given = new Set(
    input
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l.length >= 8),
  );
  return output
    .split('\n')
    .map((l) => (given.has(l.trim()) ? '<a line of its input, not shown>' : l))
    .join('\n');
}

/** A failed command: carries the command, exit code and the tail of stderr (never a line of its stdin). */
export class CommandError extends Error {
  readonly code = 'ECOMMAND';
  constructor(
    readonly result: ExecResult,
    readonly where: string,
    input?: string,
  ) {
    const tail = withoutInputEcho((result.stderr || result.stdout).trim(), input)
      .split('\n')
      .slice(-8)
      .join('\n');
    const how = result.timedOut ? 'timed out' : `exited ${result.code ?? result.signal}`;
    super(`${where}: ${result.argv.join(' ')} ${how}${tail ? `\n${tail}` : ''}`);
  }
}

const DEFAULT_TIMEOUT_MS = 60_000;

/**
 * The environment every command and daemon stackha starts begins with, instead of the operator's: nothing of theirs
 * (OS_PASSWORD and the rest of an openrc, a pyenv or virtualenv PATH, LD_PRELOAD) reaches a host. What a program
 * needs beyond this it is given explicitly.
 */
export const BASE_ENV: Readonly<Record<string, string>> = {
  PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  LANG: 'C.UTF-8',
  HOME: '/root',
};

/** Runs argv (no shell) and resolves with its result; never rejects for a non-zero exit. */
export function execArgv(argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const [cmd, ...args] = argv;
  if (!cmd) throw new Error('execArgv: empty argv');
  return new Promise((resolve) => {
    const child = spawn(cmd, args, {
      // No input: stdin is /dev/null. Node's pipes are socketpairs, and bash treats a socket on stdin as a remote
      // shell and sources ~/.bashrc even for `bash -c` (here: pyenv init, whose lock stalled concurrent probes).
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      env: { ...BASE_ENV, ...opts.env },
      detached: true, // own process group, so a timeout ends the whole tree by pgid
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    let settled = false;
    const killTree = (): void => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      killTree();
    }, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    const onAbort = (): void => killTree();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    child.stdout?.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const finish = (code: number | null, signal: NodeJS.Signals | null): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      resolve({ argv, code, signal, stdout, stderr, timedOut });
    };
    child.on('error', (err) => {
      stderr += String(err);
      finish(127, null);
    });
    child.on('close', finish);
    if (child.stdin) {
      child.stdin.on('error', () => {
        /* the command may not read stdin */
      });
      child.stdin.end(opts.input ?? '');
    }
  });
}

export async function execOrThrow(
  argv: readonly string[],
  where: string,
  opts: ExecOptions = {},
): Promise<string> {
  const r = await execArgv(argv, opts);
  if (r.code !== 0) throw new CommandError(r, where, opts.input);
  return r.stdout;
}
