// `stackha recover galera`: bring back a Galera cluster whose every node is down (power loss, crash), from the
// most advanced node, without losing a committed transaction and without a full state transfer where IST will do.
import type { Host } from '../hosts/host.js';
import type { Deployment } from '../model.js';
import { daemonsFile, ensureDirs, recordApplied, wantedState } from '../services/files.js';
import {
  type GaleraPosition,
  MARIADB_PORT,
  type NodePosition,
  type StateTransfer,
  classifyStateTransfer,
  errorLogMark,
  errorLogSince,
  findNodePosition,
  forgetSeqno,
  formatPosition,
  galeraNodeStatus,
  isKnownPosition,
  normalizeGaleraPeers,
  renderGalera,
  setSafeToBootstrap,
  startGaleraNode,
  waitSynced,
} from '../services/mariadb/galera.js';
import type { RenderTarget } from '../services/types.js';
import { hostsFor } from '../topology.js';

/** What recovery found on one Galera host: where its data stands (see NodePosition) and whether it runs. */
export interface NodeFinding extends NodePosition {
  readonly host: string;
  /** mariadbd is running there (tracked by stackha, or something answers on the Galera ports). */
  readonly running: boolean;
  /** wsrep_local_state_comment and wsrep_cluster_status of a running node, when it answered. */
  readonly state: string | undefined;
  readonly clusterStatus: string | undefined;
  readonly clusterSize: number | undefined;
}

export interface JoinPlan {
  readonly host: string;
  /** Passed as --wsrep-start-position so the node catches up by IST; undefined: it gets a full SST. */
  readonly startPosition: GaleraPosition | undefined;
  /** Its grastate.dat claims a position ahead of the bootstrap node: reset to -1 so it takes an SST. */
  readonly forceSst: boolean;
  readonly note: string | undefined;
}

export type RecoveryDecision =
  | {
      readonly kind: 'bootstrap';
      readonly chosen: string;
      readonly reason: string;
      /** The most advanced node by position (may differ from `chosen` with --bootstrap-host). */
      readonly mostAdvanced: string | undefined;
      /** The chosen node's position, passed with --wsrep-start-position so the cluster keeps its history. */
      readonly bootstrapPosition: GaleraPosition | undefined;
      readonly joiners: readonly JoinPlan[];
      readonly warnings: readonly string[];
    }
  | { readonly kind: 'refuse'; readonly reason: string };

const list = (names: readonly string[]): string =>
  names.length <= 1 ? (names[0] ?? '') : `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}`;

function describeRunning(f: NodeFinding): string {
  const what = [f.state, f.clusterStatus].filter((x) => x !== undefined).join('/');
  return `${f.host} (${what || 'status unknown'}${f.clusterSize !== undefined ? `, cluster size ${f.clusterSize}` : ''})`;
}

/**
 * Decides how to bring an entirely stopped cluster back. Pure: `findings` are in inventory order.
 *
 * - Any node running: refuse. A Primary one means the cluster is up (deploy starts the stopped nodes, with
 *   IST); running nodes without a Primary component must be stopped first, since a running node's position
 *   cannot be recovered and it would not join a cluster bootstrapped elsewhere cleanly.
 * - Without --bootstrap-host: refuse when a node's position is unknown (it might be the most advanced) or when
 *   the nodes hold different cluster histories (UUIDs); otherwise bootstrap the highest seqno, ties going to
 *   safe_to_bootstrap: 1, then to inventory order.
 * - With --bootstrap-host: that node, with loud warnings for whatever that can lose.
 */
export function decideRecovery(
  findings: readonly NodeFinding[],
  opts: { readonly bootstrapHost?: string | undefined } = {},
): RecoveryDecision {
  const refuse = (reason: string): RecoveryDecision => ({ kind: 'refuse', reason });
  if (findings.length === 0) return refuse('the inventory has no Galera (mariadb) hosts');
  const running = findings.filter((f) => f.running);
  const primary = running.filter((f) => f.clusterStatus === 'Primary');
  if (primary.length > 0) {
    return refuse(
      `${list(primary.map(describeRunning))} ${primary.length === 1 ? 'is' : 'are'} running and Primary: the cluster ` +
        'is up and there is nothing to recover. Start the stopped nodes with `stackha deploy` (they rejoin with IST).',
    );
  }
  if (running.length > 0) {
    return refuse(
      `${list(running.map(describeRunning))} ${running.length === 1 ? 'is' : 'are'} running but not in a Primary ` +
        `component: stop ${running.length === 1 ? 'it' : 'them'} first (a position can only be recovered from a ` +
        'stopped node; in the lab: `stackha lab fault kill HOST mariadb -s SIGTERM`), then run ' +
        '`stackha recover galera` again.',
    );
  }
  const override =
    opts.bootstrapHost === undefined ? undefined : findings.find((f) => f.host === opts.bootstrapHost);
  if (opts.bootstrapHost !== undefined && !override) {
    return refuse(
      `--bootstrap-host ${opts.bootstrapHost} is not a Galera host (${findings.map((f) => f.host).join(', ')})`,
    );
  }
  if (override && !override.hasData) {
    return refuse(
      `--bootstrap-host ${override.host}: it has no data to bootstrap from (${override.problem ?? 'empty'})`,
    );
  }
  const known = findings.filter((f) => isKnownPosition(f.position));
  // A node with no data at all (never joined, or wiped) cannot be the most advanced: it joins by SST, blocking nothing.
  const unknown = findings.filter((f) => !isKnownPosition(f.position) && f.hasData);
  if (known.length === 0 && unknown.length === 0 && !override)
    return refuse(
      'no Galera node has any data: there is nothing to recover; `stackha deploy` bootstraps a new cluster',
    );
  const pos = (f: NodeFinding): GaleraPosition => f.position as GaleraPosition;
  const uuids = [...new Set(known.map((f) => pos(f).uuid))];
  const byUuid = (): string =>
    uuids
      .map(
        (u) =>
          `${u} on ${known
            .filter((f) => pos(f).uuid === u)
            .map((f) => `${f.host} (seqno ${pos(f).seqno})`)
            .join(', ')}`,
      )
      .join('; ');
  const order = new Map(findings.map((f, i) => [f.host, i]));
  const mostAdvancedOf = (uuid: string | undefined): NodeFinding | undefined =>
    known
      .filter((f) => pos(f).uuid === uuid)
      .sort(
        (a, b) =>
          pos(b).seqno - pos(a).seqno ||
          Number(b.grastate?.safeToBootstrap === true) - Number(a.grastate?.safeToBootstrap === true) ||
          (order.get(a.host) ?? 0) - (order.get(b.host) ?? 0),
      )[0];

  const warnings: string[] = [];
  let chosen: NodeFinding;
  let reason: string;
  let mostAdvanced: NodeFinding | undefined;
  if (!override) {
    if (uuids.length > 1) {
      return refuse(
        `the nodes hold different cluster histories: ${byUuid()}. stackha cannot tell which one is right. Choose ` +
          'the node whose data to keep with --bootstrap-host; the nodes of any other history are then rebuilt by a ' +
          'full state transfer (SST) and lose what only they had.',
      );
    }
    if (unknown.length > 0) {
      const best = mostAdvancedOf(uuids[0]);
      return refuse(
        `the position of ${list(unknown.map((f) => `${f.host} (${f.problem ?? 'unknown'})`))} could not be ` +
          `determined, and ${unknown.length === 1 ? 'it' : 'one of them'} may be the most advanced node. ` +
          (best
            ? `The most advanced known node is ${best.host} at seqno ${pos(best).seqno}. `
            : 'No node has a known position. ') +
          'If that data is really lost, name the node to bootstrap from with --bootstrap-host' +
          (best ? ` (e.g. --bootstrap-host ${best.host})` : '') +
          '.',
      );
    }
    const best = mostAdvancedOf(uuids[0]);
    if (!best) return refuse('no node has a known position');
    chosen = best;
    mostAdvanced = best;
    const top = pos(best).seqno;
    const tied = known.filter((f) => pos(f).seqno === top);
    const others = known.filter((f) => pos(f).seqno !== top).map((f) => `${f.host} at ${pos(f).seqno}`);
    if (tied.length === 1) {
      reason = `${best.host} has the highest seqno (${top}) of cluster ${pos(best).uuid}${others.length ? `; ${others.join(', ')}` : ''}`;
    } else {
      const safe = tied.filter((f) => f.grastate?.safeToBootstrap === true).length;
      const how =
        best.grastate?.safeToBootstrap !== true
          ? 'comes first in the inventory'
          : safe === 1
            ? 'has safe_to_bootstrap: 1'
            : 'has safe_to_bootstrap: 1 and comes first in the inventory';
      reason = `${list(tied.map((f) => f.host))} are all at seqno ${top}, the highest of cluster ${pos(best).uuid}; ${best.host} ${how}`;
    }
  } else {
    chosen = override;
    const ref = isKnownPosition(override.position)
      ? override.position.uuid
      : uuids.length === 1
        ? uuids[0]
        : undefined;
    mostAdvanced = mostAdvancedOf(ref);
    reason = `--bootstrap-host ${override.host}`;
    if (!isKnownPosition(override.position)) {
      warnings.push(
        `WARNING: the position of ${override.host} is unknown (${override.problem ?? 'unknown'}). It starts a NEW cluster ` +
          'history: every other node is rebuilt from it by a full state transfer (SST), and every transaction only ' +
          'they had is LOST.',
      );
    } else {
      reason += ` at seqno ${override.position.seqno}`;
      if (mostAdvanced && pos(mostAdvanced).seqno > override.position.seqno) {
        const ahead = known.filter(
          (f) => pos(f).uuid === ref && pos(f).seqno > (override.position as GaleraPosition).seqno,
        );
        warnings.push(
          `WARNING: ${override.host} is BEHIND the most advanced node ${mostAdvanced.host} (seqno ${override.position.seqno} < ` +
            `${pos(mostAdvanced).seqno}): the ${pos(mostAdvanced).seqno - override.position.seqno} transaction(s) committed ` +
            `after seqno ${override.position.seqno} are LOST, and ${list(ahead.map((f) => f.host))} ` +
            `${ahead.length === 1 ? 'is' : 'are'} rebuilt by a full state transfer (SST).`,
        );
      } else if (mostAdvanced && mostAdvanced.host !== override.host) {
        reason += ` (as advanced as ${mostAdvanced.host})`;
      } else reason += ' (the most advanced node)';
    }
    const otherHistories = known.filter((f) => ref !== undefined && pos(f).uuid !== ref);
    if (otherHistories.length > 0) {
      warnings.push(
        `WARNING: ${list(otherHistories.map((f) => `${f.host} (${formatPosition(pos(f))})`))} hold${otherHistories.length === 1 ? 's' : ''} ` +
          `another cluster history: rebuilt by a full state transfer (SST), losing what only ${otherHistories.length === 1 ? 'it' : 'they'} had.`,
      );
    }
    const unknownOthers = unknown.filter((f) => f.host !== override.host);
    if (unknownOthers.length > 0) {
      warnings.push(
        `WARNING: the position of ${list(unknownOthers.map((f) => `${f.host} (${f.problem ?? 'unknown'})`))} is unknown: ` +
          'whatever only it had is LOST; it joins by a full state transfer (SST).',
      );
    }
  }

  const base = isKnownPosition(chosen.position) ? chosen.position : undefined;
  const joiners: JoinPlan[] = findings
    .filter((f) => f.host !== chosen.host)
    .map((f) => {
      if (!base) return { host: f.host, startPosition: undefined, forceSst: false, note: 'SST: new history' };
      if (!f.hasData)
        return { host: f.host, startPosition: undefined, forceSst: false, note: 'SST: no data' };
      if (!isKnownPosition(f.position))
        return { host: f.host, startPosition: undefined, forceSst: false, note: 'SST: position unknown' };
      if (f.position.uuid !== base.uuid)
        return { host: f.host, startPosition: undefined, forceSst: false, note: 'SST: other history' };
      if (f.position.seqno > base.seqno) {
        // Galera aborts a joiner whose position is ahead of the group's: it must forget it and take an SST.
        return {
          host: f.host,
          startPosition: undefined,
          forceSst: true,
          note: `SST: ahead of ${chosen.host} (${f.position.seqno} > ${base.seqno})`,
        };
      }
      return {
        host: f.host,
        startPosition: f.position,
        forceSst: false,
        note:
          f.position.seqno === base.seqno
            ? 'IST: nothing missing'
            : `IST: ${base.seqno - f.position.seqno} behind`,
      };
    });
  return {
    kind: 'bootstrap',
    chosen: chosen.host,
    reason,
    mostAdvanced: mostAdvanced?.host,
    bootstrapPosition: base,
    joiners,
    warnings,
  };
}

/** Recovery refused: nothing was started or changed. Carries what was found. */
export class GaleraRecoveryRefused extends Error {
  readonly code = 'EGALERARECOVERREFUSED';
  constructor(
    message: string,
    readonly positions: readonly NodeFinding[],
  ) {
    super(message);
  }
}

export interface RecoverGaleraOptions {
  /** Bootstrap from this host whatever the positions say (warned when it is behind). */
  readonly bootstrapHost?: string | undefined;
  /** Find the positions and decide, change nothing. */
  readonly dryRun?: boolean | undefined;
  /** Progress lines. */
  readonly log?: ((message: string) => void) | undefined;
  /** Bound of each --wsrep-recover run (default 60 s). */
  readonly recoverTimeoutMs?: number | undefined;
  /** Bound of each wait for a node to be Synced (default 300 s: a full SST may be needed). */
  readonly syncTimeoutMs?: number | undefined;
}

export interface JoinOutcome {
  readonly host: string;
  readonly startPosition: string | undefined;
  /** How it caught up, read from its error.log. */
  readonly transfer: StateTransfer;
  /** From its start to Synced. */
  readonly seconds: number;
}

export interface RecoverGaleraResult {
  readonly dryRun: boolean;
  readonly chosen: string;
  readonly reason: string;
  readonly warnings: readonly string[];
  readonly mostAdvanced: string | undefined;
  /** The position the chosen node was bootstrapped at (UUID:SEQNO), undefined for a new history. */
  readonly bootstrapPosition: string | undefined;
  /** Per DB host, in inventory order. */
  readonly positions: readonly NodeFinding[];
  readonly joiners: readonly JoinPlan[];
  readonly joined: readonly JoinOutcome[];
  /** Finding every position (including the --wsrep-recover runs). */
  readonly secondsToPositions: number;
  /** From starting the bootstrap node to it being Synced and Primary; undefined in a dry run. */
  readonly secondsToPrimary: number | undefined;
  /** From starting the bootstrap node to every node Synced; undefined in a dry run. */
  readonly secondsToAllSynced: number | undefined;
  /** The whole call. */
  readonly seconds: number;
  /** Hosts whose applied state was not recorded because their config on disk differs from the inventory's. */
  readonly configDrift: readonly string[];
}

const since = (t: number): number => (Date.now() - t) / 1000;

/** Whether the config on the host is the one rendered from the inventory (then the running node is "applied"). */
async function configMatches(host: Host, unit: ReturnType<typeof renderGalera>): Promise<boolean> {
  for (const f of [...unit.files, daemonsFile('mariadb', unit)]) {
    if ((await host.readFile(f.path)) !== f.content) return false;
  }
  return true;
}

async function findOne(
  host: Host,
  t: RenderTarget,
  dep: Deployment,
  recoverTimeoutMs: number | undefined,
  dryRun: boolean,
): Promise<NodeFinding> {
  const s = await galeraNodeStatus(host);
  const base = {
    host: host.name,
    state: s.state,
    clusterStatus: s.clusterStatus,
    clusterSize: s.clusterSize,
  };
  if (s.running) {
    return {
      ...base,
      running: true,
      grastate: undefined,
      position: undefined,
      source: undefined,
      problem: 'running',
      recoverSeconds: undefined,
      hasData: true,
    };
  }
  // A mariadbd stackha does not track (started by hand) would hold the datadir: look for its ports.
  for (const port of [4567, MARIADB_PORT]) {
    if (await host.tcpConnect(host.address, port, 500)) {
      return {
        ...base,
        running: true,
        grastate: undefined,
        position: undefined,
        source: undefined,
        problem: `not started by stackha, but something answers on ${host.address}:${port}`,
        recoverSeconds: undefined,
        hasData: true,
      };
    }
  }
  // A dry run changes nothing: no directory made, no InnoDB recovery on the node's own datadir.
  if (!dryRun) await ensureDirs(host, renderGalera(dep, t));
  const p: NodePosition = await findNodePosition(host, recoverTimeoutMs, { dryRun });
  return { ...base, running: false, ...p };
}

/**
 * Finds every Galera node's position, decides which node to bootstrap (see decideRecovery) and, unless dryRun,
 * bootstraps it at its position and starts the others one at a time with theirs (IST), each Synced before the
 * next. Records the applied state as deploy does, so a later `stackha deploy` changes nothing. Throws
 * GaleraRecoveryRefused (nothing started or changed) when it will not choose, and an Error when a node fails to
 * sync (the nodes already up stay up; `stackha deploy` starts the rest).
 */
export async function recoverGalera(
  dep: Deployment,
  hosts: ReadonlyMap<string, Host>,
  opts: RecoverGaleraOptions = {},
): Promise<RecoverGaleraResult> {
  const started = Date.now();
  const log = opts.log ?? (() => {});
  const specs = hostsFor(dep, 'mariadb');
  const hostOf = (name: string): Host => {
    const h = hosts.get(name);
    if (!h) throw new Error(`no connection to host ${name}`);
    return h;
  };
  const targetOf = (name: string): RenderTarget => {
    const spec = specs.find((s) => s.name === name);
    if (!spec) throw new Error(`${name} is not a Galera host`);
    return { host: spec };
  };

  // Every host at once: each --wsrep-recover runs on its own host.
  const positions = await Promise.all(
    specs.map((s) =>
      findOne(hostOf(s.name), targetOf(s.name), dep, opts.recoverTimeoutMs, opts.dryRun === true),
    ),
  );
  const secondsToPositions = since(started);
  for (const f of positions) log(formatFinding(f));
  const d = decideRecovery(positions, { bootstrapHost: opts.bootstrapHost });
  if (d.kind === 'refuse') throw new GaleraRecoveryRefused(`recover galera refused: ${d.reason}`, positions);
  for (const w of d.warnings) log(w);
  log(
    `decision: bootstrap ${d.chosen}${d.bootstrapPosition ? ` at ${formatPosition(d.bootstrapPosition)}` : ' (new history)'}: ${d.reason}`,
  );
  for (const j of d.joiners) {
    log(
      `then: ${j.host} joins${j.startPosition ? ` with --wsrep-start-position=${formatPosition(j.startPosition)}` : ''} (${j.note ?? ''})`,
    );
  }
  const result = {
    chosen: d.chosen,
    reason: d.reason,
    warnings: d.warnings,
    mostAdvanced: d.mostAdvanced,
    bootstrapPosition: d.bootstrapPosition ? formatPosition(d.bootstrapPosition) : undefined,
    positions,
    joiners: d.joiners,
    secondsToPositions,
  };
  if (opts.dryRun) {
    log('dry run: nothing started, nothing changed');
    return {
      ...result,
      dryRun: true,
      joined: [],
      secondsToPrimary: undefined,
      secondsToAllSynced: undefined,
      seconds: since(started),
      configDrift: [],
    };
  }

  const configDrift: string[] = [];
  const record = async (name: string): Promise<void> => {
    const unit = renderGalera(dep, targetOf(name));
    if (await configMatches(hostOf(name), unit)) {
      await recordApplied(hostOf(name), 'mariadb', wantedState('mariadb', unit, normalizeGaleraPeers));
    } else {
      configDrift.push(name);
      log(
        `${name}: its config differs from the inventory's; the next \`stackha deploy\` applies it (restart)`,
      );
    }
  };

  const boot = hostOf(d.chosen);
  if (await boot.exists('/var/lib/mysql/grastate.dat')) await setSafeToBootstrap(boot);
  const tBoot = Date.now();
  log(`${d.chosen}: safe_to_bootstrap: 1; starting with --wsrep-new-cluster`);
  await startGaleraNode(boot, targetOf(d.chosen), { bootstrap: true, startPosition: d.bootstrapPosition });
  await waitSynced(boot, opts.syncTimeoutMs ?? 300_000);
  const secondsToPrimary = since(tBoot);
  log(`${d.chosen}: Synced and Primary after ${secondsToPrimary.toFixed(1)} s`);
  await record(d.chosen);

  const joined: JoinOutcome[] = [];
  for (const j of d.joiners) {
    const host = hostOf(j.host);
    if (j.forceSst) await forgetSeqno(host);
    const mark = await errorLogMark(host);
    const t0 = Date.now();
    log(`${j.host}: joining${j.startPosition ? ` from ${formatPosition(j.startPosition)}` : ''}`);
    try {
      await startGaleraNode(host, targetOf(j.host), { startPosition: j.startPosition });
      await waitSynced(host, opts.syncTimeoutMs ?? 300_000);
    } catch (err) {
      throw new Error(
        `${j.host} did not join the recovered cluster (${err instanceof Error ? err.message : String(err)}); ` +
          `${[d.chosen, ...joined.map((x) => x.host)].join(', ')} ${joined.length ? 'are' : 'is'} up: fix ${j.host} and run \`stackha deploy\``,
      );
    }
    const transfer = classifyStateTransfer(await errorLogSince(host, mark));
    const outcome: JoinOutcome = {
      host: j.host,
      startPosition: j.startPosition ? formatPosition(j.startPosition) : undefined,
      transfer,
      seconds: since(t0),
    };
    joined.push(outcome);
    log(`${j.host}: Synced after ${outcome.seconds.toFixed(1)} s (state transfer: ${transfer})`);
    await record(j.host);
  }
  const secondsToAllSynced = since(tBoot);
  log(
    `recovered: ${d.chosen} Primary after ${secondsToPrimary.toFixed(1)} s, all ${specs.length} nodes Synced after ` +
      `${secondsToAllSynced.toFixed(1)} s`,
  );
  return {
    ...result,
    dryRun: false,
    joined,
    secondsToPrimary,
    secondsToAllSynced,
    seconds: since(started),
    configDrift,
  };
}

/** One line per node: what was found and from where. */
export function formatFinding(f: NodeFinding): string {
  if (f.running) {
    return `${f.host}: running (${[f.state, f.clusterStatus].filter(Boolean).join('/') || 'status unknown'})${f.problem && f.problem !== 'running' ? `: ${f.problem}` : ''}`;
  }
  const gs = f.grastate
    ? `grastate.dat ${f.grastate.uuid ?? '?'}:${f.grastate.seqno ?? '?'} safe_to_bootstrap ${f.grastate.safeToBootstrap === undefined ? '?' : f.grastate.safeToBootstrap ? 1 : 0}`
    : 'no grastate.dat';
  if (!f.position || f.source === undefined) return `${f.host}: ${gs}; position UNKNOWN: ${f.problem ?? ''}`;
  const how =
    f.source === 'wsrep-recover'
      ? `from --wsrep-recover${f.recoverSeconds !== undefined ? ` (${f.recoverSeconds.toFixed(1)} s)` : ''}`
      : 'from grastate.dat';
  return `${f.host}: ${gs}; position ${formatPosition(f.position)} ${how}`;
}
