import { connect } from '../hosts/connect.js';
import type { Host } from '../hosts/host.js';
import type { Deployment } from '../model.js';
import { type GaleraNodeStatus, galeraHealthy, galeraNodeStatus } from '../services/galera.js';
import { type BackendServerState, activeServer, haproxySocket, parseShowStat } from '../services/haproxy.js';
import { holdsVip } from '../services/keepalived.js';
import { keystoneEnabled } from '../services/keystone.js';
import { MEMCACHED_PORT } from '../services/memcached.js';
import { type RabbitClusterStatus, rabbitClusterStatus } from '../services/rabbitmq.js';
import { hostsFor } from '../topology.js';
import { type KeystoneStatus, formatKeystoneStatus, keystoneProblems, keystoneStatus } from './keystone.js';

export interface ClusterStatus {
  readonly vip: string;
  readonly vipHolders: readonly string[];
  readonly galera: readonly (GaleraNodeStatus & { healthy: boolean })[];
  /** The Galera server each HAProxy sends new connections to, by loadbalancer host. */
  readonly galeraWriter: Readonly<Record<string, string | undefined>>;
  readonly rabbitmq: readonly RabbitClusterStatus[];
  readonly haproxy: readonly { host: string; running: boolean; servers: readonly BackendServerState[] }[];
  readonly keepalived: readonly { host: string; running: boolean; holdsVip: boolean }[];
  readonly memcached: readonly { host: string; running: boolean; answering: boolean }[];
  /** Each Keystone backend's health and key repositories; absent when Keystone is not deployed. */
  readonly keystone?: KeystoneStatus;
}

export async function clusterStatus(dep: Deployment): Promise<ClusterStatus> {
  const { hosts, roots } = connect(dep);
  const h = (name: string): Host => hosts.get(name) as Host;
  const root = (name: string): string => roots.get(name) ?? '';
  const tgt = (name: string) => ({ host: dep.hosts.find((x) => x.name === name)!, root: root(name) });

  const [galera, rabbitmq, haproxy, keepalived, memcached, keystone] = await Promise.all([
    Promise.all(
      hostsFor(dep, 'mariadb').map(async (s) => ({
        ...(await galeraNodeStatus(h(s.name), root(s.name))),
        healthy: await galeraHealthy(h(s.name)),
      })),
    ),
    Promise.all(hostsFor(dep, 'rabbitmq').map((s) => rabbitClusterStatus(h(s.name), tgt(s.name)))),
    Promise.all(
      hostsFor(dep, 'haproxy').map(async (s) => {
        const running = (await h(s.name).daemonPid('haproxy')) !== undefined;
        const csv = running ? await haproxySocket(h(s.name), root(s.name), 'show stat') : undefined;
        return { host: s.name, running, servers: csv ? parseShowStat(csv) : [] };
      }),
    ),
    Promise.all(
      hostsFor(dep, 'keepalived').map(async (s) => ({
        host: s.name,
        running: (await h(s.name).daemonPid('keepalived')) !== undefined,
        holdsVip: await holdsVip(h(s.name), dep),
      })),
    ),
    Promise.all(
      hostsFor(dep, 'memcached').map(async (s) => ({
        host: s.name,
        running: (await h(s.name).daemonPid('memcached')) !== undefined,
        answering: await h(s.name).tcpConnect(s.address, MEMCACHED_PORT, 2000),
      })),
    ),
    keystoneEnabled(dep) ? keystoneStatus({ dep, hosts }) : undefined,
  ]);
  const galeraWriter: Record<string, string | undefined> = {};
  for (const hp of haproxy) galeraWriter[hp.host] = activeServer(hp.servers, 'mariadb');
  return {
    vip: dep.globals.internalVip,
    vipHolders: keepalived.filter((k) => k.holdsVip).map((k) => k.host),
    galera,
    galeraWriter,
    rabbitmq,
    haproxy,
    keepalived,
    memcached,
    ...(keystone ? { keystone } : {}),
  };
}

/** Problems an operator must act on; empty when the cluster is whole. */
export function clusterProblems(dep: Deployment, s: ClusterStatus): string[] {
  const p: string[] = [];
  const nDb = hostsFor(dep, 'mariadb').length;
  for (const g of s.galera) {
    if (!g.running) p.push(`galera: ${g.host} is not running`);
    else if (g.state !== 'Synced' || g.clusterStatus !== 'Primary') {
      p.push(`galera: ${g.host} is ${g.state ?? 'unknown'}/${g.clusterStatus ?? 'unknown'}`);
    } else if (g.clusterSize !== nDb)
      p.push(`galera: ${g.host} sees a cluster of ${g.clusterSize}, expected ${nDb}`);
  }
  const expected = hostsFor(dep, 'rabbitmq').map((x) => `rabbit@${x.name}`);
  for (const r of s.rabbitmq) {
    if (!r.running) p.push(`rabbitmq: ${r.host} is not running`);
    else {
      const missing = expected.filter((n) => !r.runningNodes.includes(n));
      if (missing.length) p.push(`rabbitmq: ${r.host} does not see ${missing.join(', ')} running`);
      for (const part of r.partitions) p.push(`rabbitmq: partition: ${part}`);
      for (const a of r.alarms) p.push(`rabbitmq: alarm ${a}`);
    }
  }
  for (const hp of s.haproxy) {
    if (!hp.running) p.push(`haproxy: ${hp.host} is not running`);
    for (const sv of hp.servers)
      if (sv.status !== 'UP') p.push(`haproxy on ${hp.host}: ${sv.backend}/${sv.server} ${sv.status}`);
  }
  const writers = new Set(Object.values(s.galeraWriter).filter((w) => w !== undefined));
  if (writers.size > 1)
    p.push(`haproxy: load balancers disagree on the Galera writer (${[...writers].join(', ')})`);
  if (dep.globals.enabled.keepalived) {
    if (s.vipHolders.length === 0) p.push(`keepalived: no host holds the VIP ${s.vip}`);
    if (s.vipHolders.length > 1)
      p.push(`keepalived: several hosts hold the VIP ${s.vip}: ${s.vipHolders.join(', ')}`);
    for (const k of s.keepalived) if (!k.running) p.push(`keepalived: ${k.host} is not running`);
  }
  for (const m of s.memcached) if (!m.answering) p.push(`memcached: ${m.host} is not answering`);
  if (s.keystone) p.push(...keystoneProblems(s.keystone));
  return p;
}

export function formatStatus(dep: Deployment, s: ClusterStatus): string {
  const out: string[] = [];
  out.push(`VIP ${s.vip}: held by ${s.vipHolders.length ? s.vipHolders.join(', ') : 'nobody'}`);
  out.push('', 'Galera');
  for (const g of s.galera) {
    out.push(
      `  ${g.host.padEnd(8)} ${g.running ? 'running' : 'stopped'}  ${(g.state ?? '-').padEnd(9)} ${(g.clusterStatus ?? '-').padEnd(11)} size ${g.clusterSize ?? '-'}  health ${g.healthy ? '200' : 'down'}  seqno ${g.lastCommitted ?? '-'}`,
    );
  }
  const writers = Object.entries(s.galeraWriter).map(([lb, w]) => `${lb}->${w ?? 'none'}`);
  out.push(`  writes go to (per load balancer): ${writers.join(' ')}`);
  out.push('', 'RabbitMQ');
  for (const r of s.rabbitmq) {
    out.push(
      `  ${r.host.padEnd(8)} ${r.running ? 'running' : 'stopped'}  members ${r.runningNodes.join(',') || '-'}  partitions ${r.partitions.length ? r.partitions.join('; ') : 'none'}  alarms ${r.alarms.length ? r.alarms.join('; ') : 'none'}`,
    );
  }
  out.push('', 'HAProxy');
  for (const hp of s.haproxy) {
    const servers = hp.servers
      .map((sv) => `${sv.backend}/${sv.server}${sv.backup ? '(b)' : ''}=${sv.status}`)
      .join(' ');
    out.push(`  ${hp.host.padEnd(8)} ${hp.running ? 'running' : 'stopped'}  ${servers}`);
  }
  out.push('', 'Keepalived');
  for (const k of s.keepalived) {
    out.push(
      `  ${k.host.padEnd(8)} ${k.running ? 'running' : 'stopped'}${k.holdsVip ? '  MASTER (holds the VIP)' : ''}`,
    );
  }
  out.push('', 'Memcached');
  for (const m of s.memcached)
    out.push(`  ${m.host.padEnd(8)} ${m.answering ? 'answering' : 'not answering'}`);
  if (s.keystone) out.push('', ...formatKeystoneStatus(s.keystone));
  const problems = clusterProblems(dep, s);
  out.push(
    '',
    problems.length === 0 ? 'OK: every service is whole' : `PROBLEMS:\n  ${problems.join('\n  ')}`,
  );
  return out.join('\n');
}
