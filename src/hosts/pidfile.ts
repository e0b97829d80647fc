// Daemons supervised by pid files on a host reached over SSH that has no systemd (a lab host: one machine, one pid 1),
// with the lab's semantics (src/hosts/lab.ts): the same record (`/run/stackha/<name>.pid`: pid, start time, command
// digest), the daemon detached in its own session and process group with the clean environment, its output appended
// to its log file, stopped by signalling its process group. Every operation is one constant shell script run on the
// host (`sh -c SCRIPT sh ARG...`: values are positional arguments, never shell code); the decisions that LabHost
// makes too (keep, refuse, start) are the shared pure functions of src/hosts/proc.ts.
import { CommandError, type ExecOptions, type ExecResult } from '../util/exec.js';
import type { DaemonSpec } from './host.js';
import { commandDigest } from './lab.js';
import { type PidRecord, otherCommandMessage, parsePidRecord, startDecision } from './proc.js';
import { remoteArgv, shellScript } from './shell.js';
import { nameScript } from './trace.js';

/** Where the records live: the lab host's own directory for them, so a lab host reads the same over SSH and here. */
export const PID_DIR = '/run/stackha';
/** After SIGKILL, how long the daemon's process group may take to be gone (as LabHost). */
export const KILL_WAIT_MS = 5000;

const DAEMON_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,80}$/;
const SIGNAL = /^SIG[A-Z0-9+-]{2,12}$/;

/**
 * The supervisor script. $1 the operation, $2 the record directory, $3 the daemon name, then per operation:
 *   status                 prints `<pid> <start> <digest> alive|dead`, or nothing when there is no record
 *   start DIGEST LOG ARGV  starts ARGV (already `env -i ... program ...`) detached, records it, prints its pid
 *   signal SIG             signals the group of a live daemon: prints sent, failed or none
 *   stop SIG TENTHS        signal, wait TENTHS/10 s, SIGKILL, wait KILL_TENTHS/10 s: prints stopped or none, or
 *                          `left <pids>` and exits 3 when something of it still runs
 * Alive means /proc/<pid>/stat exists with the recorded start time and is not a zombie (state Z or X); gone means
 * the leader is not alive and no live process is left in its process group (uwsgi's workers, SST helpers).
 */
export const SUPERVISOR_SCRIPT = `set -u
op=$1; dir=$2; name=$3; shift 3
pidf="$dir/$name.pid"
KILL_TENTHS=${KILL_WAIT_MS / 100}
# State and start time (fields 3 and 22) of a process; nothing when there is none. The command name may hold
# spaces and parentheses: the fields start after the last ") ".
procstat() {
  { tr '\\n' ' ' <"/proc/$1/stat"; } 2>/dev/null |
    awk '{ s = $0; sub(/^.*\\) /, "", s); n = split(s, f, " "); if (n >= 20) print f[1], f[20] }'
}
alive() {
  set -- "$1" "$2" $(procstat "$1")
  [ $# -eq 4 ] && [ "$3" != Z ] && [ "$3" != X ] && [ "$4" = "$2" ]
}
# Live processes of process group $1.
members() {
  cat /proc/[0-9]*/stat 2>/dev/null |
    awk -v g="$1" '{ s = $0; sub(/^.*\\) /, "", s); split(s, f, " "); if (f[3] == g && f[1] != "Z" && f[1] != "X") print $1 }'
}
pid=; start=; digest=
if [ -r "$pidf" ]; then read -r pid start digest <"$pidf" || true; fi
live() { [ -n "$pid" ] && [ -n "$start" ] && alive "$pid" "$start"; }
gone() { ! alive "$pid" "$start" && [ -z "$(members "$pid")" ]; }
sig() { kill -s "$1" -- "-$pid" 2>/dev/null || kill -s "$1" "$pid" 2>/dev/null; }
case $op in
status)
  if [ -n "$pid" ]; then
    if live; then echo "$pid $start \${digest:-} alive"; else echo "$pid $start \${digest:-} dead"; fi
  fi ;;
start)
  want=$1; log=$2; shift 2
  mkdir -p -- "$dir" "$(dirname -- "$log")" || exit 1
  # A new log is 0640, as the lab's; the daemon itself gets the usual umask.
  (umask 027 && : >>"$log") || exit 1
  umask 022
  cd /
  # A background job of a shell without job control is not a group leader: setsid does not fork, so $! is the
  # daemon's pid; env --default-signal undoes the SIGINT/SIGQUIT the shell ignores for background jobs.
  setsid "$@" </dev/null >>"$log" 2>&1 &
  new=$!
  set -- $(procstat "$new")
  tmp="$pidf.$$.tmp"
  printf '%s %s %s\\n' "$new" "\${2:-0}" "$want" >"$tmp" && mv -f -- "$tmp" "$pidf" || exit 1
  echo "$new" ;;
signal)
  if ! live; then echo none; exit 0; fi
  if sig "\${1#SIG}"; then echo sent; else echo failed; fi ;;
stop)
  s=\${1#SIG}; tenths=$2
  if ! live; then rm -f -- "$pidf"; echo none; exit 0; fi
  sig "$s"
  i=0
  while ! gone && [ "$i" -lt "$tenths" ]; do sleep 0.1; i=$((i + 1)); done
  if ! gone; then
    sig KILL
    i=0
    while ! gone && [ "$i" -lt "$KILL_TENTHS" ]; do sleep 0.1; i=$((i + 1)); done
  fi
  if gone; then rm -f -- "$pidf"; echo stopped; exit 0; fi
  left=$(members "$pid" | tr '\\n' ' ')
  if alive "$pid" "$start"; then left="$pid $left"; fi
  echo "left $left"
  exit 3 ;;
*) echo "unknown operation $op" >&2; exit 2 ;;
esac
`;

nameScript(SUPERVISOR_SCRIPT, 'supervisor');

/** What the supervisor needs of its host: commands, and a name for messages. */
export interface CommandRunner {
  exec(argv: readonly string[], opts?: ExecOptions): Promise<ExecResult>;
}

/** The daemon's name as a file name (the same rule as a systemd unit name). */
function checkName(name: string): string {
  if (!DAEMON_NAME.test(name))
    throw new Error(`daemon name ${JSON.stringify(name)}: letters, digits, "_", "." and "-"`);
  return name;
}

function checkSignal(signal: string): string {
  if (!SIGNAL.test(signal)) throw new Error(`not a signal name: ${JSON.stringify(signal)}`);
  return signal;
}

/**
 * `env -i --default-signal BASE_ENV+env argv`: exactly the environment the lab and the systemd unit give a daemon, and
 * default signal dispositions, as a daemon the lab spawns (libuv resets them in the child) has.
 */
export function launchArgv(spec: Pick<DaemonSpec, 'argv' | 'env'>): string[] {
  const words = remoteArgv(spec.argv, { env: spec.env ?? {} });
  return [words[0] as string, words[1] as string, '--default-signal', ...words.slice(2)];
}

/** The status line the script prints, parsed. */
export function parseStatus(stdout: string): { record: PidRecord; alive: boolean } | undefined {
  const line = stdout.trim();
  if (line === '') return undefined;
  const words = line.split(' ');
  const state = words.at(-1);
  const record = parsePidRecord(words.slice(0, -1).join(' '));
  if (!record || (state !== 'alive' && state !== 'dead')) return undefined;
  return { record, alive: state === 'alive' };
}

/** Daemons of one host supervised by pid files, through a CommandRunner (an SshHost). */
export class PidFileSupervisor {
  constructor(
    private readonly host: CommandRunner,
    /** `ctl1 (ssh deploy@198.18.30.11:22)`, for messages. */
    private readonly where: string,
    readonly dir: string = PID_DIR,
  ) {}

  private async script(args: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
    return this.host.exec(
      shellScript(SUPERVISOR_SCRIPT, [args[0] as string, this.dir, ...args.slice(1)]),
      opts,
    );
  }

  private async must(what: readonly string[], args: readonly string[], opts?: ExecOptions): Promise<string> {
    const r = await this.script(args, opts);
    if (r.code !== 0) throw new CommandError({ ...r, argv: what }, this.where);
    return r.stdout;
  }

  async status(name: string): Promise<{ record: PidRecord; alive: boolean } | undefined> {
    return parseStatus(await this.must(['daemon-status', name], ['status', checkName(name)]));
  }

  async start(spec: DaemonSpec): Promise<number> {
    const name = checkName(spec.name);
    const command = commandDigest(spec);
    const now = await this.status(name);
    const decision = startDecision(now?.record, now?.alive ?? false, command);
    if (decision.action === 'refuse') throw new Error(otherCommandMessage(this.where, name, decision.pid));
    if (decision.action === 'keep') return decision.pid;
    const out = await this.must(['start', name], ['start', name, command, spec.logFile, ...launchArgv(spec)]);
    const pid = Number(out.trim());
    if (!Number.isInteger(pid) || pid < 1)
      throw new Error(
        `${this.where}: start ${name}: no pid in the supervisor's answer ${JSON.stringify(out)}`,
      );
    return pid;
  }

  async pid(name: string): Promise<number | undefined> {
    const now = await this.status(name);
    return now?.alive ? now.record.pid : undefined;
  }

  async signal(name: string, signal: NodeJS.Signals): Promise<boolean> {
    const out = await this.must(['signal', name, signal], ['signal', checkName(name), checkSignal(signal)]);
    return out.trim() === 'sent';
  }

  async stop(name: string, opts: { signal?: NodeJS.Signals; timeoutMs?: number } = {}): Promise<boolean> {
    const signal = checkSignal(opts.signal ?? 'SIGTERM');
    const timeoutMs = opts.timeoutMs ?? 30_000;
    const tenths = Math.max(1, Math.ceil(timeoutMs / 100));
    const r = await this.script(['stop', checkName(name), signal, String(tenths)], {
      // The wait happens on the host: the command's own bound covers it, the kill wait and a margin.
      timeoutMs: timeoutMs + KILL_WAIT_MS + 15_000,
    });
    const out = r.stdout.trim();
    if (r.code === 3 && out.startsWith('left '))
      throw new Error(
        `${this.where}: ${name} is still running ${KILL_WAIT_MS / 1000} s after SIGKILL (pids ${out
          .slice(5)
          .trim()
          .split(/\s+/)
          .join(', ')})`,
      );
    if (r.code !== 0) throw new CommandError({ ...r, argv: ['stop', name] }, this.where);
    return out === 'stopped';
  }
}
