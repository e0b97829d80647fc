// Swift's storage on every host of the `storage` group: the account, container and object servers, their
// replicators, auditors and updaters, and rsync, which the replicators push partitions through. Every Swift process
// runs as the `swift` user from its start. Replication health comes from the recon cache each replicator writes.
import type { Host } from '../../hosts/host.js';
import type { Deployment, HostSpec } from '../../model.js';
import { hostsFor } from '../../topology.js';
import { asUser } from '../api/framework.js';
import { type OpenstackDaemon, type OpenstackUnit, defineOpenstackService } from '../api/openstack.js';
import type { HostsContext } from '../contract.js';
import { hostIn } from '../types.js';
import {
  BACKGROUND,
  RINGS,
  SWIFT_CACHE,
  SWIFT_CONF,
  SWIFT_DEVICE,
  SWIFT_DEVICES,
  SWIFT_DIR,
  SWIFT_LOG_DIR,
  SWIFT_STATE,
  SWIFT_USER,
  renderRsyncdConf,
  renderStorageServerConf,
  renderSwiftConf,
} from './conf.js';
import { SWIFT_RING_SETTINGS, ensureRings, ringDigestsOf, ringProblems } from './rings.js';

const serverConf = (type: string) => `${SWIFT_DIR}/${type}-server.conf`;
const RSYNCD_CONF = `${SWIFT_DIR}/rsyncd.conf`;

/** The storage daemons of one host, in start order: each server, then its background daemons, then rsync. */
export function storageDaemons(): { name: string; server: boolean }[] {
  return [
    ...RINGS.flatMap((r) => [
      { name: `swift-${r.name}-server`, server: true },
      ...BACKGROUND[r.name].map((d) => ({ name: `swift-${r.name}-${d}`, server: false })),
    ]),
    { name: 'swift-rsync', server: false },
  ];
}

/** The hosts whose Swift processes need swift.conf and the rings: storage and proxy. */
export function swiftHosts(dep: Deployment): HostSpec[] {
  const names = new Set(
    [...hostsFor(dep, 'swift-storage'), ...hostsFor(dep, 'swift-proxy')].map((h) => h.name),
  );
  return dep.hosts.filter((h) => names.has(h.name));
}

export function renderSwiftStorage(dep: Deployment, host: HostSpec): OpenstackUnit {
  const daemons: OpenstackDaemon[] = RINGS.flatMap((r) => [
    {
      name: `swift-${r.name}-server`,
      // -v: log to stdout (the lab hosts have no syslog socket); the daemon's log file receives it.
      argv: asUser(SWIFT_USER, [`/usr/bin/swift-${r.name}-server`, serverConf(r.name), '-v']),
      logFile: `${SWIFT_LOG_DIR}/${r.name}-server.log`,
      http: { port: r.port, path: '/healthcheck' },
    },
    ...BACKGROUND[r.name].map((d) => ({
      name: `swift-${r.name}-${d}`,
      argv: asUser(SWIFT_USER, [`/usr/bin/swift-${r.name}-${d}`, serverConf(r.name), '-v']),
      logFile: `${SWIFT_LOG_DIR}/${r.name}-${d}.log`,
    })),
  ]);
  daemons.push({
    name: 'swift-rsync',
    // rsync switches to swift (uid/gid in its config) for every transfer.
    argv: ['/usr/bin/rsync', '--daemon', '--no-detach', `--config=${RSYNCD_CONF}`],
    logFile: `${SWIFT_LOG_DIR}/rsyncd.out`,
  });
  return {
    files: [
      { path: SWIFT_CONF, content: renderSwiftConf(dep, host), mode: 0o600, owner: SWIFT_USER },
      ...RINGS.map((r) => ({
        path: serverConf(r.name),
        content: renderStorageServerConf(host, r),
        mode: 0o644,
      })),
      { path: RSYNCD_CONF, content: renderRsyncdConf(host), mode: 0o644 },
    ],
    dirs: [
      { path: SWIFT_DIR, mode: 0o755 },
      { path: SWIFT_DEVICES, mode: 0o755, owner: SWIFT_USER },
      { path: `${SWIFT_DEVICES}/${SWIFT_DEVICE}`, mode: 0o755, owner: SWIFT_USER },
      { path: SWIFT_CACHE, mode: 0o755, owner: SWIFT_USER },
      { path: SWIFT_STATE, mode: 0o755, owner: SWIFT_USER },
      { path: SWIFT_LOG_DIR, mode: 0o755, owner: SWIFT_USER },
    ],
    daemons,
  };
}

/** What a replicator last wrote in the recon cache. */
export interface ReplicationState {
  readonly host: string;
  readonly ring: string;
  /** Seconds since its last completed pass; undefined before the first. */
  readonly lastPassAgo: number | undefined;
  readonly failures: number | undefined;
  readonly successes: number | undefined;
}

async function replicationOf(host: Host, ring: string, now: number): Promise<ReplicationState> {
  const text = await host.readFile(`${SWIFT_CACHE}/${ring}.recon`).catch(() => undefined);
  let j: Record<string, unknown> = {};
  try {
    j = text ? (JSON.parse(text) as Record<string, unknown>) : {};
  } catch {
    /* partly written: as if absent */
  }
  const last = (j[`${ring}_replication_last`] ?? j.replication_last) as number | undefined;
  const stats = (j.replication_stats ?? {}) as { failure?: number; success?: number };
  return {
    host: host.name,
    ring,
    lastPassAgo: typeof last === 'number' ? Math.max(0, Math.round(now - last)) : undefined,
    failures: stats.failure,
    successes: stats.success,
  };
}

/** A replicator that has not finished a pass for this long is stuck (its interval is 30 s). */
export const REPLICATION_STALE_SECONDS = 600;

/** Replication as status shows it. Pure. */
export function replicationStatus(states: readonly ReplicationState[]): {
  lines: string[];
  problems: string[];
} {
  const lines = ['  replication (recon cache: last completed pass, failures in it):'];
  const problems: string[] = [];
  for (const s of states) {
    lines.push(
      `    ${s.ring.padEnd(9)} ${s.host.padEnd(6)} ${s.lastPassAgo === undefined ? 'no pass yet' : `${s.lastPassAgo} s ago`}  failures ${s.failures ?? '-'}  successes ${s.successes ?? '-'}`,
    );
    if (s.lastPassAgo !== undefined && s.lastPassAgo > REPLICATION_STALE_SECONDS)
      problems.push(
        `swift-storage: the ${s.ring} replicator on ${s.host} has not completed a pass for ${s.lastPassAgo} s`,
      );
  }
  return { lines, problems };
}

export const SWIFT_STORAGE = defineOpenstackService({
  name: 'swift-storage',
  title: 'swift-storage',
  enable: { key: 'enable_swift', default: false },
  groups: ['swift-object-server', 'swift-storage', 'storage'],
  noHosts: 'warning',
  minHosts: {
    min: 3,
    quorum: false,
    why: (n) =>
      `${n} storage host${n === 1 ? '' : 's'} cannot hold 3 replicas in 3 zones: losing a host loses the only copy of some objects`,
  },
  passwords: ['swift_hash_path_suffix', 'swift_hash_path_prefix'],
  settings: SWIFT_RING_SETTINGS,
  packages: ['swift', 'swift-account', 'swift-container', 'swift-object', 'rsync'],
  recommends: false,
  daemons: storageDaemons().map((d) => ({ name: d.name, stopTimeoutMs: 20_000 })),
  render: renderSwiftStorage,
  afterConfig: (ctx, sql) => ensureRings(ctx, sql, swiftHosts(ctx.dep)),
  // Objects and databases are data: a host that leaves keeps none (the others hold 3 replicas after rebalancing).
  removal: [
    SWIFT_DEVICES,
    SWIFT_CACHE,
    `${SWIFT_DIR}/account.ring.gz`,
    `${SWIFT_DIR}/container.ring.gz`,
    `${SWIFT_DIR}/object.ring.gz`,
  ],
  status: async (ctx: HostsContext) => {
    const now = Date.now() / 1000;
    const storage = hostsFor(ctx.dep, 'swift-storage');
    const replication = (
      await Promise.all(
        storage.map((h) => Promise.all(RINGS.map((r) => replicationOf(hostIn(ctx, h.name), r.name, now)))),
      )
    ).flat();
    const rings = await ringDigestsOf(ctx, swiftHosts(ctx.dep));
    const rep = replicationStatus(replication);
    const ringLines = ['  rings (md5 per host):'];
    for (const s of rings)
      ringLines.push(
        `    ${s.host.padEnd(6)} ${RINGS.map((r) => `${r.name} ${s.rings[r.name]?.slice(0, 8) ?? 'missing'}`).join('  ')}`,
      );
    return {
      lines: [...ringLines, ...rep.lines],
      problems: [...ringProblems(rings), ...rep.problems],
      data: { rings, replication },
    };
  },
});
