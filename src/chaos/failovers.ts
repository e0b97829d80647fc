/**
 * Failovers the cluster itself performed during a run, counted from the daemons' own records rather than from what
 * the clients saw: HAProxy's UP to DOWN transitions per server (`chkdown`), keepalived's entries into MASTER per
 * host (its log), and Galera membership changes (`wsrep_cluster_conf_id`, one step per view change). In a run
 * without a fault (the baseline, a soak) every one of them is a false failover.
 */
import type { Host } from '../hosts/host.js';
import type { Deployment } from '../model.js';
import { clientSql } from '../probes/client.js';
import { lbStates } from '../services/haproxy/haproxy.js';
import { KEEPALIVED_LOG } from '../services/keepalived/keepalived.js';
import { hostsFor } from '../topology.js';

export interface FailoverCounters {
  /** `chkdown` per `LB: backend/server`, for every running HAProxy. */
  readonly haproxyDowns: Readonly<Record<string, number>>;
  /** Lines "Entering MASTER STATE" in each keepalived host's log. */
  readonly vipTakeovers: Readonly<Record<string, number>>;
  /** wsrep_cluster_conf_id per Galera node that answered. */
  readonly galeraConfIds: Readonly<Record<string, number>>;
}

export interface Failovers {
  /** Servers some HAProxy marked DOWN during the run, `LB: backend/server xN`. */
  readonly markedDown: readonly string[];
  readonly haproxyMarkDowns: number;
  /** Times a keepalived took the VIP (entered MASTER) during the run. */
  readonly vipTakeovers: number;
  /** Galera view changes during the run (the largest step of any node that answered both times). */
  readonly galeraViewChanges: number;
  /** Counters that went backwards (a restarted HAProxy, a rotated log): what was not counted. */
  readonly uncounted: readonly string[];
}

export async function readFailoverCounters(
  dep: Deployment,
  hosts: ReadonlyMap<string, Host>,
  client: Host,
): Promise<FailoverCounters> {
  const haproxyDowns: Record<string, number> = {};
  const vipTakeovers: Record<string, number> = {};
  const galeraConfIds: Record<string, number> = {};
  await Promise.all([
    (async () => {
      const states = await lbStates({ dep, hosts, log: () => {} }).catch(() => new Map());
      for (const [lb, list] of states)
        for (const s of list) haproxyDowns[`${lb}: ${s.backend}/${s.server}`] = s.checkDowns;
    })(),
    ...hostsFor(dep, 'keepalived').map(async (spec) => {
      const text = await hosts
        .get(spec.name)
        ?.readFile(KEEPALIVED_LOG)
        .catch(() => undefined);
      if (text !== undefined) vipTakeovers[spec.name] = countTakeovers(text);
    }),
    ...hostsFor(dep, 'mariadb').map(async (spec) => {
      const out = await clientSql(
        client,
        dep,
        "SHOW GLOBAL STATUS LIKE 'wsrep_cluster_conf_id';",
        spec.address,
      ).catch(() => undefined);
      const id = Number(out?.trim().split(/\s+/)[1]);
      if (Number.isInteger(id)) galeraConfIds[spec.name] = id;
    }),
  ]);
  return { haproxyDowns, vipTakeovers, galeraConfIds };
}

export function countTakeovers(log: string): number {
  return log.split('\n').filter((l) => l.includes('Entering MASTER STATE')).length;
}

/** What happened between two readings; a key missing from either side is not counted (its daemon was down). */
export function failoversBetween(before: FailoverCounters, after: FailoverCounters): Failovers {
  const uncounted: string[] = [];
  const steps = (a: Readonly<Record<string, number>>, b: Readonly<Record<string, number>>, what: string) => {
    const out: [string, number][] = [];
    for (const [k, v] of Object.entries(b)) {
      const was = a[k];
      if (was === undefined) continue;
      if (v < was) uncounted.push(`${what} ${k} (went from ${was} to ${v})`);
      else if (v > was) out.push([k, v - was]);
    }
    return out;
  };
  const downs = steps(before.haproxyDowns, after.haproxyDowns, 'haproxy');
  const takeovers = steps(before.vipTakeovers, after.vipTakeovers, 'keepalived');
  const views = steps(before.galeraConfIds, after.galeraConfIds, 'galera');
  return {
    markedDown: downs.map(([k, n]) => (n > 1 ? `${k} x${n}` : k)),
    haproxyMarkDowns: downs.reduce((a, [, n]) => a + n, 0),
    vipTakeovers: takeovers.reduce((a, [, n]) => a + n, 0),
    galeraViewChanges: Math.max(0, ...views.map(([, n]) => n)),
    uncounted,
  };
}

/** One line for a report: `2 HAProxy mark-downs (ctl1: keystone_api/ctl2), 0 VIP takeovers, 0 Galera view changes`. */
export function formatFailovers(f: Failovers): string {
  const downs = f.markedDown.length > 0 ? ` (${f.markedDown.join(', ')})` : '';
  const un = f.uncounted.length > 0 ? `; not counted: ${f.uncounted.join(', ')}` : '';
  return `${f.haproxyMarkDowns} HAProxy mark-downs${downs}, ${f.vipTakeovers} VIP takeovers, ${f.galeraViewChanges} Galera view changes${un}`;
}
