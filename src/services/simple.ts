import type { Host } from '../hosts/host.js';
import type { HostSpec } from '../model.js';
import type { DaemonDeclaration } from './contract.js';
import { daemonsFile, ensureDirs, recordApplied, staleFiles, wantedState, writeFiles } from './files.js';
import type { DeployContext, HostOutcome, RenderTarget, ServiceResult, ServiceUnit } from './types.js';
import { hostOf, target } from './types.js';

export interface SimpleServiceOptions {
  readonly service: string;
  readonly hosts: readonly HostSpec[];
  readonly render: (t: RenderTarget) => ServiceUnit;
  /** How a running daemon takes a changed config: a signal to reload it in place, or a restart. */
  readonly reloadSignal?: NodeJS.Signals;
  /**
   * The daemons the reload signal is for (default: all). A helper with no config of its own (keepalived's HAProxy
   * watcher) is left alone by a reload, and restarted only when its own command line changes.
   */
  readonly reloads?: (daemon: string) => boolean;
  /** Runs before a daemon is (re)started, e.g. to clear state a crash left behind. */
  readonly beforeStart?: (host: Host, spec: HostSpec) => Promise<void>;
  /** Resolves when the service answers on the host; every implementation bounds its own wait. */
  readonly waitReady: (host: Host, spec: HostSpec) => Promise<void>;
  /** Hosts one at a time (stateful peers) or all at once. */
  readonly serial?: boolean;
  readonly stopTimeoutMs?: number;
}

/**
 * Deploys a service whose hosts are independent: write what changed, start what is not running,
 * reload or restart what runs with a changed config, leave everything else alone.
 */
export async function deploySimpleService(
  ctx: DeployContext,
  opts: SimpleServiceOptions,
): Promise<ServiceResult> {
  const outcomes: Record<string, HostOutcome> = {};
  /** Hosts whose daemon must restart: done after every other host, one host at a time. */
  const restarts: HostSpec[] = [];
  const ready = async (host: Host, spec: HostSpec, unit: ServiceUnit): Promise<void> => {
    try {
      await opts.waitReady(host, spec);
    } catch (err) {
      throw new Error(`${err instanceof Error ? err.message : String(err)}${await daemonReport(host, unit)}`);
    }
  };
  const one = async (spec: HostSpec): Promise<void> => {
    const host = hostOf(ctx, spec.name);
    const unit = opts.render(target(ctx, spec));
    // Everything a no-op needs to know, asked at once (each is one command over SSH): the directories, what the
    // files and the applied record are, whether each daemon runs. Files are written only once the directories are.
    const [, { stale, applied }, pids] = await Promise.all([
      ensureDirs(host, unit),
      staleFiles(host, [...unit.files, daemonsFile(opts.service, unit)], opts.service),
      Promise.all(unit.daemons.map((d) => host.daemonPid(d.name))),
    ]);
    const changed = await writeFiles(host, stale);
    const want = wantedState(opts.service, unit);
    // A file changed on disk, or a config written but never applied (an interrupted deploy): apply it now.
    const configDue = changed.length > 0 || applied?.config !== want.config;
    const daemonDue = applied?.daemons !== want.daemons;
    let outcome: HostOutcome = 'unchanged';
    for (const [i, d] of unit.daemons.entries()) {
      const pid = pids[i];
      if (pid === undefined) {
        await opts.beforeStart?.(host, spec);
        await host.startDaemon(d);
        outcome = 'started';
      } else if (configDue || daemonDue) {
        if (opts.reloadSignal && !daemonDue) {
          if (opts.reloads && !opts.reloads(d.name)) continue;
          await host.signalDaemon(d.name, opts.reloadSignal);
          outcome = 'reloaded';
        } else {
          restarts.push(spec);
          return;
        }
      }
    }
    if (outcome !== 'unchanged') {
      await ready(host, spec, unit);
      await recordApplied(host, opts.service, want);
    }
    outcomes[spec.name] = outcome;
    ctx.log(`${opts.service} on ${spec.name}: ${outcome}`);
  };
  /** A restart: each host's service back and ready before the next host goes, so its peers always serve. */
  const restart = async (spec: HostSpec): Promise<void> => {
    const host = hostOf(ctx, spec.name);
    const unit = opts.render(target(ctx, spec));
    for (const d of unit.daemons) {
      await host.stopDaemon(d.name, { timeoutMs: opts.stopTimeoutMs ?? 20_000 });
      await opts.beforeStart?.(host, spec);
      await host.startDaemon(d);
    }
    await ready(host, spec, unit);
    await recordApplied(host, opts.service, wantedState(opts.service, unit));
    outcomes[spec.name] = 'restarted';
    ctx.log(`${opts.service} on ${spec.name}: restarted`);
  };
  if (opts.serial) {
    for (const spec of opts.hosts) await one(spec);
  } else {
    await Promise.all(opts.hosts.map(one));
  }
  for (const spec of opts.hosts.filter((s) => restarts.includes(s))) await restart(spec);
  return { service: opts.service, outcomes };
}

/** Whether each daemon of the unit is alive, and the tail of its log: what an operator needs when one is not ready. */
async function daemonReport(host: Host, unit: ServiceUnit): Promise<string> {
  const parts: string[] = [];
  for (const d of unit.daemons) {
    const pid = await host.daemonPid(d.name);
    const tail = (await host.readFile(d.logFile))?.trim().split('\n').slice(-5).join('\n    ');
    parts.push(
      `\n  ${d.name}: ${pid === undefined ? 'not running' : `running (pid ${pid})`}${tail ? `; log:\n    ${tail}` : ''}`,
    );
  }
  return parts.join('');
}

/**
 * Restarts a unit's daemons on one host in their declared order, each stopped the way its declaration says (signal,
 * bound), then started again: the building block of every rolling restart.
 */
export async function restartUnit(
  host: Host,
  unit: Pick<ServiceUnit, 'daemons'>,
  declared: readonly DaemonDeclaration[],
): Promise<void> {
  for (const d of unit.daemons) {
    const decl = declared.find((x) => x.name === d.name);
    await host.stopDaemon(d.name, {
      timeoutMs: decl?.stopTimeoutMs ?? 20_000,
      ...(decl?.stopSignal ? { signal: decl.stopSignal } : {}),
    });
    await host.startDaemon(d);
  }
}
