// The lab's SSH smoke check, run inside the deployer namespace (the lab's client: `stackha lab sshd` prepares it):
// opens every host of an SSH inventory through real sshd (host keys checked against known_hosts), and on each runs
// what deploy needs of a host: commands as root (through sudo -n for a non-root user), its own host name and /etc, an
// atomic 0600 write, and a daemon started, kept, and stopped by its supervisor. Prints one JSON report; changes
// nothing on a host but /etc/stackha-smoke and the daemons `smoke-*`, which it stops (except `--leave-running`).
//
//   node dist/lab/ssh-smoke.js --config-dir /etc/stackha/<lab> [--known-hosts FILE] [--round-trips N] [--leave-running]
import { parseArgs } from 'node:util';
import { type Connection, connect } from '../hosts/connect.js';
import type { Host } from '../hosts/host.js';
import { SshHost } from '../hosts/ssh.js';
import { loadDeployment } from '../inventory/load.js';

export interface SmokeHostReport {
  readonly name: string;
  readonly supervisor: string;
  readonly hostname: string;
  readonly etcHostname: string;
  /** /etc/stackha-lab-marker as the host shows it (a lab test writes one per host into its /etc). */
  readonly marker: string | undefined;
  /** uid of the command, and the login uid (pam_loginuid: the SSH user, kept through sudo). */
  readonly uid: string;
  readonly loginUid: string;
  readonly secretMode: string | undefined;
  readonly daemon: {
    readonly pid: number;
    readonly startTime: string;
    readonly keptPid: number;
    readonly pidWhileRunning: number | undefined;
    readonly stopped: boolean;
    readonly pidAfterStop: number | undefined;
    readonly procAfterStop: string;
  };
  /** A daemon left running for the caller to check (with --leave-running). */
  readonly left?: { readonly pid: number; readonly startTime: string };
  readonly roundTripMs: {
    readonly median: number;
    readonly p95: number;
    readonly max: number;
    readonly n: number;
  };
  /** Wall time of 8 commands at once on the one connection. */
  readonly parallel8Ms: number;
}

export interface SmokeReport {
  readonly openMs: number;
  readonly hosts: readonly SmokeHostReport[];
}

function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return 0;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i] as number;
}

const round = (ms: number): number => Math.round(ms * 100) / 100;

async function startTimeOf(h: Host, pid: number): Promise<string> {
  const stat = await h.run(['cat', `/proc/${pid}/stat`]);
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? '';
}

async function smokeHost(h: Host, roundTrips: number, leaveRunning: boolean): Promise<SmokeHostReport> {
  const supervisor = h instanceof SshHost ? await h.supervisor() : 'lab';
  const hostname = (await h.run(['hostname'])).trim();
  const etcHostname = ((await h.readFile('/etc/hostname')) ?? '').trim();
  const marker = (await h.readFile('/etc/stackha-lab-marker'))?.trim();
  const uid = (await h.run(['id', '-u'])).trim();
  const loginUid = ((await h.readFile('/proc/self/loginuid')) ?? '').trim();
  await h.writeFile('/etc/stackha-smoke/secret.conf', `secret of ${h.name}\n`, { mode: 0o600 });
  const secretMode = (await h.fileMode('/etc/stackha-smoke/secret.conf'))?.toString(8);

  const spec = { name: 'smoke-sleep', argv: ['sleep', '1000'], logFile: '/var/log/stackha/smoke-sleep.log' };
  const pid = await h.startDaemon(spec);
  const startTime = await startTimeOf(h, pid);
  const keptPid = await h.startDaemon(spec);
  const pidWhileRunning = await h.daemonPid(spec.name);
  const stopped = await h.stopDaemon(spec.name, { timeoutMs: 5000 });
  const pidAfterStop = await h.daemonPid(spec.name);
  // What /proc says of that pid now: gone, a zombie not yet reaped, or (reused) another process's start time.
  const after = await h.exec(['cat', `/proc/${pid}/stat`]);
  const procAfterStop =
    after.code !== 0
      ? 'gone'
      : (() => {
          const f = after.stdout.slice(after.stdout.lastIndexOf(')') + 2).split(' ');
          return f[19] !== startTime ? 'reused' : `state ${f[0]}`;
        })();

  let left: SmokeHostReport['left'];
  if (leaveRunning) {
    const lp = await h.startDaemon({ ...spec, name: 'smoke-left', argv: ['sleep', '1001'] });
    left = { pid: lp, startTime: await startTimeOf(h, lp) };
  }

  const times: number[] = [];
  for (let i = 0; i < roundTrips; i++) {
    const t = performance.now();
    const r = await h.exec(['true']);
    times.push(performance.now() - t);
    if (r.code !== 0) throw new Error(`${h.name}: true exited ${r.code}: ${r.stderr}`);
  }
  times.sort((a, b) => a - b);
  const t8 = performance.now();
  await Promise.all(Array.from({ length: 8 }, () => h.run(['true'])));
  const parallel8Ms = performance.now() - t8;
  return {
    name: h.name,
    supervisor,
    hostname,
    etcHostname,
    marker,
    uid,
    loginUid,
    secretMode,
    daemon: { pid, startTime, keptPid, pidWhileRunning, stopped, pidAfterStop, procAfterStop },
    ...(left ? { left } : {}),
    roundTripMs: {
      median: round(quantile(times, 0.5)),
      p95: round(quantile(times, 0.95)),
      max: round(times.at(-1) ?? 0),
      n: times.length,
    },
    parallel8Ms: round(parallel8Ms),
  };
}

export async function smoke(opts: {
  configDir: string;
  knownHostsFile?: string;
  roundTrips?: number;
  leaveRunning?: boolean;
}): Promise<SmokeReport> {
  const dep = loadDeployment(opts.configDir);
  const t0 = performance.now();
  const conn: Connection = await connect(
    dep,
    opts.knownHostsFile ? { knownHostsFile: opts.knownHostsFile } : {},
  );
  const openMs = performance.now() - t0;
  try {
    const hosts = await Promise.all(
      [...conn.hosts.values()].map((h) => smokeHost(h, opts.roundTrips ?? 30, opts.leaveRunning ?? false)),
    );
    return { openMs: round(openMs), hosts };
  } finally {
    conn.close?.();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      'config-dir': { type: 'string' },
      'known-hosts': { type: 'string' },
      'round-trips': { type: 'string' },
      'leave-running': { type: 'boolean' },
    },
  });
  const configDir = values['config-dir'];
  if (!configDir) throw new Error('--config-dir DIR is required');
  const report = await smoke({
    configDir,
    ...(values['known-hosts'] ? { knownHostsFile: values['known-hosts'] } : {}),
    ...(values['round-trips'] ? { roundTrips: Number(values['round-trips']) } : {}),
    leaveRunning: values['leave-running'] ?? false,
  });
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  main().catch((err: unknown) => {
    process.stderr.write(`ssh-smoke: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  });
}
