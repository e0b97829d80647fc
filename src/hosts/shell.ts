import type { Become } from '../model.js';
// Command lines for a remote POSIX shell. SSH sends one string, which the user's login shell splits again: every
// argv word is single-quoted so that it arrives exactly as given. Pure.
import { BASE_ENV } from '../util/exec.js';
import type { FileState } from './host.js';

/** One word for a POSIX shell: itself when it is plainly safe, else single-quoted ('\'' for a quote inside). */
export function shellQuote(word: string): string {
  if (word !== '' && /^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word;
  return `'${word.replaceAll("'", "'\\''")}'`;
}

/** argv as one command line for a POSIX shell. */
export function shellCommand(argv: readonly string[]): string {
  if (argv.length === 0) throw new Error('empty argv');
  return argv.map(shellQuote).join(' ');
}

/**
 * What runs on the host for argv: a clean environment (`env -i` with the same base as the lab, then `env`), bounded
 * by `timeout` on the host itself (so a command whose channel is gone does not run on), and through `sudo -n` (never a
 * password prompt) when the connection becomes root. NUL cannot be passed in an argument.
 */
export function remoteArgv(
  argv: readonly string[],
  opts: { become?: Become | undefined; env?: Readonly<Record<string, string>>; timeoutMs?: number } = {},
): string[] {
  if (argv.length === 0) throw new Error('empty argv');
  for (const word of argv) if (word.includes('\0')) throw new Error('an argument holds a NUL character');
  const env = { ...BASE_ENV, ...opts.env };
  const assignments = Object.keys(env)
    .sort()
    .map((k) => {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k))
        throw new Error(`environment variable name ${JSON.stringify(k)} is not valid`);
      return `${k}=${env[k]}`;
    });
  // env would take a program name holding "=" for one more assignment.
  const program = argv[0] as string;
  const command =
    program.includes('=') && !program.includes('/') ? [`./${program}`, ...argv.slice(1)] : [...argv];
  const bounded =
    opts.timeoutMs === undefined
      ? command
      : ['timeout', '--kill-after=5', `${Math.max(1, Math.ceil(opts.timeoutMs / 1000))}s`, ...command];
  const clean = ['env', '-i', ...assignments, ...bounded];
  if (!opts.become) return clean;
  if (opts.become.method !== 'sudo') throw new Error(`become method ${opts.become.method} is not supported`);
  return ['sudo', '-n', '-H', '-u', opts.become.user, '--', ...clean];
}

/**
 * A shell script run as `sh -c SCRIPT sh ARG...`: the script is a constant, everything variable is a positional
 * argument, so no value is ever parsed as shell code on the host.
 */
export function shellScript(script: string, args: readonly string[]): string[] {
  return ['sh', '-c', script, 'sh', ...args];
}

/**
 * Atomic write: a fresh temporary file beside the target (mktemp: mode 0600, owned by root), given its owner and its
 * final mode while still empty, then the content from stdin, synced, and renamed over the target. A secret is never
 * readable by others, not even for a moment. $1 path, $2 mode (octal), $3 owner ('' for root).
 */
export const WRITE_SCRIPT = [
  'set -eu',
  'umask 022',
  'dir=$(dirname -- "$1"); base=$(basename -- "$1")',
  'mkdir -p -- "$dir"',
  'tmp=$(mktemp -- "$dir/.$base.XXXXXXXX.stackha-tmp")',
  `trap 'rm -f -- "$tmp"' EXIT`,
  'if [ -n "$3" ]; then chown -- "$3:" "$tmp"; fi',
  'chmod -- "$2" "$tmp"',
  'cat > "$tmp"',
  'sync -- "$tmp" 2>/dev/null || true',
  'mv -f -- "$tmp" "$1"',
  'trap - EXIT',
].join('\n');

/**
 * A directory with its mode (created with at most its final mode, then given it exactly) and owner; parents
 * traversable (0755). $1 path, $2 mode, $3 owner ('' for root).
 */
const MKDIR_STEPS = [
  'mkdir -p -- "$(dirname -- "$1")"',
  '[ -d "$1" ] || mkdir -m 0700 -- "$1"',
  'chmod -- "$2" "$1"',
  'if [ -n "$3" ]; then chown -- "$3:" "$1"; fi',
];
export const MKDIR_SCRIPT = ['set -eu', 'umask 022', ...MKDIR_STEPS].join('\n');

/**
 * MKDIR_SCRIPT for many directories in one command, in the order given (a parent before its children): the arguments
 * are triples `path mode owner`; stops at the first that fails (set -e), naming it on stderr.
 */
export const MKDIRS_SCRIPT = [
  'set -eu',
  'umask 022',
  'while [ "$#" -ge 3 ]; do',
  ...MKDIR_STEPS.map((l) => `  ${l}`),
  '  shift 3',
  'done',
].join('\n');

/**
 * Reads many files in one command: for each path argument, one line `MODE CONTENT OK`, where MODE is what
 * `stat -L -c %a` prints (`-` when it fails), CONTENT the file's bytes in base64 (what `cat` would print; empty when
 * the file is empty or cannot be read) and OK `+` when the whole file was read, `-` when it could not be (missing, a
 * directory): exactly what one `cat` and one `stat` per file say, in one round trip.
 */
export const READ_FILES_SCRIPT = [
  'for p in "$@"; do',
  '  m=$(stat -L -c %a -- "$p" 2>/dev/null) || m=-',
  '  printf \'%s \' "${m:--}"',
  "  if base64 -w0 -- \"$p\" 2>/dev/null; then echo ' +'; else echo ' -'; fi",
  'done',
].join('\n');

/** READ_FILES_SCRIPT's output for `count` paths, parsed; undefined when it is not that (a truncated answer). */
export function parseFileStates(stdout: string, count: number): FileState[] | undefined {
  const lines = stdout.split('\n');
  if (lines.at(-1) === '') lines.pop();
  if (lines.length !== count) return undefined;
  const out: FileState[] = [];
  for (const line of lines) {
    const m = /^(-|[0-7]+) ([A-Za-z0-9+/=]*) ([+-])$/.exec(line);
    if (!m) return undefined;
    const [, mode, b64, ok] = m as unknown as [string, string, string, string];
    out.push({
      content: ok === '+' ? Buffer.from(b64, 'base64').toString('utf8') : undefined,
      mode: mode === '-' ? undefined : Number.parseInt(mode, 8) & 0o777,
    });
  }
  return out;
}

/** The mode as chmod takes it: four octal digits. */
export function octalMode(mode: number): string {
  if (!Number.isInteger(mode) || mode < 0 || mode > 0o7777) throw new Error(`not a file mode: ${mode}`);
  return mode.toString(8).padStart(4, '0');
}

/** An owner name safe for chown (a user name: no ':' or spaces). */
export function ownerArg(owner: string | undefined): string {
  if (owner === undefined) return '';
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.@-]*$/.test(owner))
    throw new Error(`not a user name: ${JSON.stringify(owner)}`);
  return owner;
}
