// systemd units rendered from a DaemonSpec: how a daemon runs on a real host, where the lab's tracked-pid supervisor
// (src/hosts/lab.ts) is not available. Pure: the spec in, unit text out; src/hosts/ssh.ts installs and drives them.
import { BASE_ENV } from '../util/exec.js';
import type { DaemonSpec } from './host.js';

/** Where stackha's units live: the administrator's unit directory, kept across reboots. */
export const UNIT_DIR = '/etc/systemd/system';
/** Runtime drop-ins (this boot only): a one-off command line, the stop signal of one stop. */
export const RUNTIME_UNIT_DIR = '/run/systemd/system';
/** How long systemd waits before restarting a daemon that failed. */
export const RESTART_SEC = 2;

const DAEMON_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,80}$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** `stackha-<name>.service`; the name must be safe as a unit name (letters, digits, "_", "." and "-"). */
export function unitName(daemon: string): string {
  if (!DAEMON_NAME.test(daemon))
    throw new Error(`daemon name ${JSON.stringify(daemon)} cannot be a systemd unit name`);
  return `stackha-${daemon}.service`;
}

export function unitPath(daemon: string): string {
  return `${UNIT_DIR}/${unitName(daemon)}`;
}

/** The drop-in that runs a one-off command line this boot (DaemonSpec.bootArgv differs from argv). */
export function thisBootDropInPath(daemon: string): string {
  return `${RUNTIME_UNIT_DIR}/${unitName(daemon)}.d/50-this-boot.conf`;
}

/** The drop-in that sets how the next `systemctl stop` stops the daemon (signal, timeout). */
export function stopDropInPath(daemon: string): string {
  return `${RUNTIME_UNIT_DIR}/${unitName(daemon)}.d/40-stop.conf`;
}

/**
 * C-style escapes systemd undoes inside a double-quoted word, and `%` doubled (specifiers are expanded in every
 * setting before it is split). A control character is written as \xNN, so a value never breaks the line.
 */
function escapeQuoted(text: string): string {
  let out = '';
  for (const ch of text) {
    const c = ch.codePointAt(0) ?? 0;
    if (ch === '\\') out += '\\\\';
    else if (ch === '"') out += '\\"';
    else if (ch === '%') out += '%%';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\t') out += '\\t';
    else if (ch === '\r') out += '\\r';
    else if (c < 0x20 || c === 0x7f) out += `\\x${c.toString(16).padStart(2, '0')}`;
    else out += ch;
  }
  return out;
}

/**
 * One word of an ExecStart= command line, exactly as written: double-quoted (whitespace, quotes and `;` stay part of
 * it), C escapes for backslash, quote and control characters, `%%` for `%` (specifiers) and `$$` for `$` (systemd
 * substitutes $VAR and ${VAR} in command lines).
 */
export function systemdWord(word: string): string {
  if (word === '') return '""';
  return `"${escapeQuoted(word).replaceAll('$', '$$$$')}"`;
}

/** ExecStart='s value for argv. The program must not start with one of ExecStart's prefixes (@ - : + !). */
export function execStartLine(argv: readonly string[]): string {
  const program = argv[0];
  if (program === undefined || program === '') throw new Error('ExecStart: empty argv');
  if (/^[@\-:+!]/.test(program))
    throw new Error(`ExecStart: ${JSON.stringify(program)} would be read as a prefix`);
  return argv.map(systemdWord).join(' ');
}

/** One Environment= assignment: `"KEY=value"`, quoted and escaped (Environment= expands specifiers, not $VAR). */
export function environmentAssignment(key: string, value: string): string {
  if (!ENV_NAME.test(key)) throw new Error(`environment variable name ${JSON.stringify(key)} is not valid`);
  return `"${escapeQuoted(`${key}=${value}`)}"`;
}

/** A path in a setting (StandardOutput=append:PATH): absolute, no whitespace or control characters. */
function unitPathValue(setting: string, path: string): string {
  if (!path.startsWith('/') || /[\s\\]/.test(path) || [...path].some((ch) => (ch.codePointAt(0) ?? 0) < 0x20))
    throw new Error(`${setting}: ${JSON.stringify(path)} must be an absolute path without spaces`);
  return path.replaceAll('%', '%%');
}

/** The environment a daemon gets: the same clean base as every command stackha starts, then the spec's own. */
export function daemonEnvironment(spec: Pick<DaemonSpec, 'env'>): Record<string, string> {
  const env: Record<string, string> = { ...BASE_ENV, ...spec.env };
  return Object.fromEntries(
    Object.keys(env)
      .sort()
      .map((k) => [k, env[k] as string]),
  );
}

/**
 * The unit of a daemon. What runs at boot is `bootArgv` (when the spec has one: a bootstrap start must not become
 * what the host runs after a reboot), else `argv`.
 *
 * - Type=exec: `systemctl start` fails when the program cannot be executed, instead of reporting a start.
 * - Environment: systemd starts services with its own clean environment (nothing of the shell that ran
 *   `systemctl`: no operator OS_* variables); the unit sets exactly what the lab gives a daemon (BASE_ENV + spec.env).
 * - KillMode=control-group: a stop signals every process of the daemon (uwsgi's workers, mariadbd's SST helpers),
 *   as the lab signals its process group; SIGKILL after TimeoutStopSec.
 * - Restart=on-failure with no start limit: a daemon that crashes comes back after RestartSec, as long as it takes;
 *   `systemctl stop` (stackha's stop) is never undone by it.
 * - After/Wants network-online.target: daemons bind their host's own address, which must be up.
 * - WantedBy=multi-user.target: a rebooted host starts it again.
 */
export function renderUnit(spec: DaemonSpec): string {
  const after = ['network-online.target', ...(spec.after ?? []).map(unitName).sort()];
  const env = daemonEnvironment(spec);
  const limits = spec.limits;
  const lines = [
    `# stackha: daemon ${spec.name}. Rendered by stackha from its daemon description; \`stackha deploy\` rewrites it.`,
    '[Unit]',
    `Description=stackha ${spec.name}`,
    `After=${after.join(' ')}`,
    `Wants=${after.join(' ')}`,
    'StartLimitIntervalSec=0',
    '',
    '[Service]',
    'Type=exec',
    `ExecStart=${execStartLine(spec.bootArgv ?? spec.argv)}`,
    ...Object.entries(env).map(([k, v]) => `Environment=${environmentAssignment(k, v)}`),
    'WorkingDirectory=/',
    'StandardInput=null',
    `StandardOutput=append:${unitPathValue('StandardOutput', spec.logFile)}`,
    `StandardError=append:${unitPathValue('StandardError', spec.logFile)}`,
    'Restart=on-failure',
    `RestartSec=${RESTART_SEC}`,
    'KillMode=control-group',
    `KillSignal=${signalName(spec.stopSignal ?? 'SIGTERM')}`,
    'TimeoutStopSec=30',
    'SendSIGKILL=yes',
    ...(limits?.nofile !== undefined ? [`LimitNOFILE=${positive('limits.nofile', limits.nofile)}`] : []),
    ...(limits?.nproc !== undefined ? [`LimitNPROC=${positive('limits.nproc', limits.nproc)}`] : []),
    ...(limits?.memlock !== undefined
      ? [
          `LimitMEMLOCK=${limits.memlock === 'infinity' ? 'infinity' : positive('limits.memlock', limits.memlock)}`,
        ]
      : []),
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ];
  return lines.join('\n');
}

function signalName(signal: string): string {
  if (!/^SIG[A-Z0-9]+$/.test(signal)) throw new Error(`not a signal name: ${signal}`);
  return signal;
}

function positive(what: string, n: number): number {
  if (!Number.isInteger(n) || n < 1) throw new Error(`${what}: ${n} is not a positive integer`);
  return n;
}

/**
 * The runtime drop-in that runs `argv` this boot when it differs from what the unit runs at boot (a Galera bootstrap
 * or a start at a recovered position); undefined when they are the same.
 */
export function renderThisBootDropIn(spec: DaemonSpec): string | undefined {
  if (spec.bootArgv === undefined || sameArgv(spec.bootArgv, spec.argv)) return undefined;
  return [
    `# stackha: this boot only, ${spec.name} runs another command line than at boot.`,
    '[Service]',
    'ExecStart=',
    `ExecStart=${execStartLine(spec.argv)}`,
    '',
  ].join('\n');
}

/** The runtime drop-in that makes the next `systemctl stop` send `signal` and SIGKILL after `timeoutMs`. */
export function renderStopDropIn(signal: NodeJS.Signals, timeoutMs: number): string {
  signalName(signal);
  const sec = Math.max(1, Math.ceil(timeoutMs / 1000));
  return [
    '# stackha: how the next stop ends this daemon.',
    '[Service]',
    `KillSignal=${signal}`,
    `TimeoutStopSec=${sec}`,
    '',
  ].join('\n');
}

function sameArgv(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** `systemctl show -p A -p B UNIT` output (`A=1\nB=x`) as a record. */
export function parseShow(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) out[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return out;
}

/** Whether a unit's state (ActiveState, SubState) is a running daemon: not stopped, failed or waiting to restart. */
export function isRunningState(show: Readonly<Record<string, string>>): boolean {
  const active = show.ActiveState;
  if (active !== 'active' && active !== 'activating' && active !== 'reloading') return false;
  return show.SubState !== 'auto-restart' && Number(show.MainPID ?? 0) > 0;
}
