// `stackha status`: HAProxy's `show stat` CSV, the Galera writer it implies, and the problems an operator sees.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildDeployment } from '../../src/inventory/load.js';
import type { Deployment } from '../../src/model.js';
import { type ClusterStatus, clusterProblems, formatStatus } from '../../src/ops/status.js';
import { type HaproxyStatusData, haproxyStatusOf } from '../../src/services/haproxy/haproxy.js';
import { type BackendServerState, activeServer, parseShowStat } from '../../src/services/haproxy/haproxy.js';
import { type KeepalivedStatusData, keepalivedStatusOf } from '../../src/services/keepalived/keepalived.js';
import { type GaleraStatusData, galeraStatusOf } from '../../src/services/mariadb/galera.js';
import { type MemcachedStatusData, memcachedStatusOf } from '../../src/services/memcached/memcached.js';
import { type RabbitClusterStatus, rabbitStatusOf } from '../../src/services/rabbitmq/rabbitmq.js';

const FIXTURES = join(import.meta.dirname, '../fixtures/render');
const fixture = (name: string): string => readFileSync(join(FIXTURES, name), 'utf8');

function deployment(globals: string): Deployment {
  return buildDeployment(
    { multinode: fixture('multinode'), globals, passwords: fixture('passwords.yml') },
    '/etc/stackha',
  );
}
const dep = deployment(fixture('globals.yml'));

// `show stat` captured from HAProxy 2.6.12 running a mariadb listen section like the rendered one (ctl1 active,
// ctl2 and ctl3 backup; addresses replaced by the fixture's). failover: ctl1 refused connections.
const WHOLE = fixture('haproxy-2.6-show-stat-whole.csv');
const FAILOVER = fixture('haproxy-2.6-show-stat-failover.csv');

/** HAProxy 2.6's first 30 `show stat` columns, in order (doc/management.txt, "9.1. CSV format"). */
const FIRST_30_COLUMNS =
  'pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,' +
  'act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle';

/** The CSV with one field of one server's row replaced. */
function withField(csv: string, server: string, column: string, value: string): string {
  const lines = csv.split('\n');
  const header = (lines[0] ?? '').replace(/^# /, '').split(',');
  const col = header.indexOf(column);
  expect(col, `no column ${column}`).toBeGreaterThanOrEqual(0);
  let found = false;
  const out = lines.map((line, i) => {
    const f = line.split(',');
    if (i === 0 || f[0] !== 'mariadb' || f[1] !== server) return line;
    found = true;
    f[col] = value;
    return f.join(',');
  });
  expect(found, `no row mariadb/${server}`).toBe(true);
  return out.join('\n');
}

const state = (
  server: string,
  status: string,
  backup: boolean,
  backend = 'mariadb',
  sessions = 0,
  check = 'L4OK',
  checkDowns = 0,
): BackendServerState => ({ backend, server, status, backup, sessions, check, checkDowns });

describe('the show stat fixture', () => {
  it('has HAProxy 2.6 column order', () => {
    for (const csv of [WHOLE, FAILOVER]) {
      expect(csv.startsWith(`# ${FIRST_30_COLUMNS},`)).toBe(true);
      const header = (csv.split('\n')[0] ?? '').split(',');
      // Every data row has as many fields as the header (the header line also ends with a comma).
      for (const row of csv.trim().split('\n').slice(1)) expect(row.split(',')).toHaveLength(header.length);
    }
  });
});

describe('parseShowStat', () => {
  it('reads the servers of every backend, skipping FRONTEND and BACKEND rows', () => {
    expect(parseShowStat(WHOLE)).toEqual([
      // Captured after ctl1 had been down once (chkdown 1).
      state('ctl1', 'UP', false, 'mariadb', 2, 'L4OK', 1),
      state('ctl2', 'UP', true),
      state('ctl3', 'UP', true),
    ]);
  });

  it('reads a server that failed its checks as DOWN', () => {
    expect(parseShowStat(FAILOVER)).toEqual([
      // chkdown: the one UP to DOWN transition the chaos failover count reads.
      state('ctl1', 'DOWN', false, 'mariadb', 0, 'L4CON', 1),
      state('ctl2', 'UP', true),
      state('ctl3', 'UP', true),
    ]);
  });

  it('keeps only the state word of a transitional or annotated status', () => {
    let csv = withField(WHOLE, 'ctl1', 'status', 'UP 1/2');
    csv = withField(csv, 'ctl2', 'status', 'DOWN 1/2');
    csv = withField(csv, 'ctl3', 'status', 'MAINT (resolution)');
    expect(parseShowStat(csv).map((s) => s.status)).toEqual(['UP', 'DOWN', 'MAINT']);
  });

  it('finds the columns by the header, not by position', () => {
    const lines = WHOLE.trim().split('\n');
    const header = (lines[0] ?? '').replace(/^# /, '').split(',');
    // Swap scur and status, and bck and pxname, in the header and every row.
    const swap = (f: string[], a: string, b: string): string[] => {
      const i = header.indexOf(a);
      const j = header.indexOf(b);
      const g = [...f];
      [g[i], g[j]] = [f[j]!, f[i]!];
      return g;
    };
    const reorder = (f: string[]): string[] => swap(swap(f, 'scur', 'status'), 'bck', 'pxname');
    const csv = [
      `# ${reorder(header).join(',')}`,
      ...lines.slice(1).map((l) => reorder(l.split(',')).join(',')),
    ].join('\n');
    expect(parseShowStat(csv)).toEqual(parseShowStat(WHOLE));
  });

  it('returns nothing for an empty answer or a header alone', () => {
    expect(parseShowStat('')).toEqual([]);
    expect(parseShowStat(`# ${FIRST_30_COLUMNS}\n`)).toEqual([]);
  });
});

describe('activeServer', () => {
  it('the first UP active server', () => {
    expect(activeServer(parseShowStat(WHOLE), 'mariadb')).toBe('ctl1');
  });

  it('the first UP backup when no active server is UP', () => {
    expect(activeServer(parseShowStat(FAILOVER), 'mariadb')).toBe('ctl2');
    const csv = withField(FAILOVER, 'ctl2', 'status', 'DOWN');
    expect(activeServer(parseShowStat(csv), 'mariadb')).toBe('ctl3');
  });

  it('an UP active server wins over an earlier UP backup', () => {
    expect(
      activeServer(
        [state('ctl2', 'UP', true), state('ctl3', 'DOWN', false), state('ctl1', 'UP', false)],
        'mariadb',
      ),
    ).toBe('ctl1');
  });

  it('undefined when nothing is UP, or for another backend', () => {
    const down = [state('ctl1', 'DOWN', false), state('ctl2', 'MAINT', true), state('ctl3', 'NOLB', true)];
    expect(activeServer(down, 'mariadb')).toBeUndefined();
    expect(activeServer(parseShowStat(WHOLE), 'keystone')).toBeUndefined();
    expect(activeServer([], 'mariadb')).toBeUndefined();
  });

  it('looks only at the named backend', () => {
    const states = [state('api1', 'UP', false, 'keystone'), state('ctl2', 'UP', true)];
    expect(activeServer(states, 'mariadb')).toBe('ctl2');
  });
});

/** What each service's probe found: the raw facts a ClusterStatus is assembled from. */
interface Facts {
  galera: GaleraStatusData['nodes'][number][];
  galeraWriter: Record<string, string | undefined>;
  rabbitmq: RabbitClusterStatus[];
  haproxy: HaproxyStatusData[];
  keepalived: KeepalivedStatusData[];
  memcached: MemcachedStatusData[];
}

/** The facts of the fixture's cluster when everything is whole, with ctl1 writing and holding the VIP. */
function wholeFacts(): Facts {
  const names = dep.hosts.map((h) => h.name);
  const rabbitNodes = names.map((n) => `rabbit@${n}`);
  const servers = parseShowStat(WHOLE);
  return {
    galera: names.map((host, i) => ({
      host,
      running: true,
      state: 'Synced',
      clusterStatus: 'Primary',
      clusterSize: 3,
      ready: true,
      lastCommitted: 1200 + i,
      healthy: true,
    })),
    galeraWriter: Object.fromEntries(names.map((n) => [n, 'ctl1'])),
    rabbitmq: names.map((host) => ({
      host,
      running: true,
      runningNodes: rabbitNodes,
      diskNodes: rabbitNodes,
      partitions: [],
      alarms: [],
    })),
    haproxy: names.map((host) => ({ host, running: true, servers })),
    keepalived: names.map((host) => ({ host, running: true, holdsVip: host === 'ctl1' })),
    memcached: names.map((host) => ({ host, running: true, answering: true })),
  };
}

/** A ClusterStatus as clusterStatus assembles it from the services' own status functions. */
function statusFrom(d: Deployment, f: Facts): ClusterStatus {
  const services = [
    memcachedStatusOf(f.memcached),
    galeraStatusOf(d, { nodes: f.galera, writer: f.galeraWriter }),
    rabbitStatusOf(d, f.rabbitmq),
    haproxyStatusOf(f.haproxy),
    ...(d.globals.enabled.keepalived ? [keepalivedStatusOf(d, f.keepalived)] : []),
  ];
  return {
    vip: d.globals.internalVip,
    vipHolders: f.keepalived.filter((k) => k.holdsVip).map((k) => k.host),
    galeraWriter: f.galeraWriter,
    services,
  };
}

function whole(): ClusterStatus {
  return statusFrom(dep, wholeFacts());
}

/** `whole()` with part of its facts replaced. */
function broken(patch: (f: Facts) => Partial<Facts>, d: Deployment = dep): ClusterStatus {
  const f = wholeFacts();
  return statusFrom(d, { ...f, ...patch(f) });
}

describe('clusterProblems', () => {
  it('none for a whole cluster', () => {
    expect(clusterProblems(dep, whole())).toEqual([]);
  });

  it('a Galera node in Donor/Desynced is a problem naming it', () => {
    const s = broken((w) => ({
      galera: w.galera.map((g) => (g.host === 'ctl2' ? { ...g, state: 'Donor/Desynced' } : g)),
    }));
    const p = clusterProblems(dep, s);
    expect(p).toHaveLength(1);
    expect(p[0]).toContain('ctl2');
    expect(p[0]).toContain('Donor/Desynced');
  });

  it('a stopped Galera node, a non-Primary one and one seeing a smaller cluster are problems', () => {
    const s = broken((w) => ({
      galera: w.galera.map((g) =>
        g.host === 'ctl1'
          ? { ...g, running: false, state: undefined, clusterStatus: undefined }
          : g.host === 'ctl2'
            ? { ...g, clusterStatus: 'non-Primary', clusterSize: 1 }
            : { ...g, clusterSize: 2 },
      ),
    }));
    const p = clusterProblems(dep, s);
    expect(p).toHaveLength(3);
    expect(p[0]).toMatch(/ctl1.*not running/);
    expect(p[1]).toMatch(/ctl2.*non-Primary/);
    expect(p[2]).toMatch(/ctl3.*cluster of 2, expected 3/);
  });

  it('two VIP holders are a problem naming both', () => {
    const s = broken((w) => ({
      keepalived: w.keepalived.map((k) => ({ ...k, holdsVip: k.host !== 'ctl2' })),
    }));
    const p = clusterProblems(dep, s);
    expect(p).toHaveLength(1);
    expect(p[0]).toContain('198.18.0.10');
    expect(p[0]).toContain('ctl1');
    expect(p[0]).toContain('ctl3');
  });

  it('no VIP holder is a problem', () => {
    const s = broken((w) => ({
      keepalived: w.keepalived.map((k) => ({ ...k, holdsVip: false })),
    }));
    const p = clusterProblems(dep, s);
    expect(p).toHaveLength(1);
    expect(p[0]).toMatch(/no host holds the VIP 198\.18\.0\.10/);
  });

  it('with keepalived disabled, the VIP is not checked', () => {
    const noKeepalived = deployment(`${fixture('globals.yml')}enable_keepalived: "no"\n`);
    expect(
      clusterProblems(
        noKeepalived,
        broken(() => ({ keepalived: [] }), noKeepalived),
      ),
    ).toEqual([]);
  });

  it('a RabbitMQ partition is a problem', () => {
    const s = broken((w) => ({
      rabbitmq: w.rabbitmq.map((r) =>
        r.host === 'ctl3'
          ? {
              ...r,
              runningNodes: ['rabbit@ctl3'],
              partitions: ['rabbit@ctl3 cannot see rabbit@ctl1, rabbit@ctl2'],
            }
          : r,
      ),
    }));
    const p = clusterProblems(dep, s);
    expect(p.some((x) => x.includes('partition') && x.includes('rabbit@ctl3 cannot see rabbit@ctl1'))).toBe(
      true,
    );
    expect(p.some((x) => x.includes('ctl3 does not see rabbit@ctl1, rabbit@ctl2 running'))).toBe(true);
  });

  it('a running RabbitMQ node that gives no cluster status is not called stopped', () => {
    const s = broken((w) => ({
      rabbitmq: w.rabbitmq.map((r) =>
        r.host === 'ctl1'
          ? { ...r, runningNodes: [], unanswered: 'Error: timeout waiting for rabbit@ctl2' }
          : r,
      ),
    }));
    const p = clusterProblems(dep, s);
    expect(p).toEqual([
      'rabbitmq: ctl1 runs but gives no cluster status (Error: timeout waiting for rabbit@ctl2)',
    ]);
  });

  it('a RabbitMQ alarm and a stopped node are problems', () => {
    const s = broken((w) => ({
      rabbitmq: w.rabbitmq.map((r) =>
        r.host === 'ctl1'
          ? { ...r, alarms: ['rabbit@ctl1: disk_free_limit'] }
          : r.host === 'ctl2'
            ? { ...r, running: false, runningNodes: [] }
            : r,
      ),
    }));
    const p = clusterProblems(dep, s);
    expect(p).toHaveLength(2);
    expect(p).toContain('rabbitmq: alarm rabbit@ctl1: disk_free_limit');
    expect(p[1]).toMatch(/ctl2.*not running/);
  });

  it('load balancers that disagree on the Galera writer are a problem naming both writers', () => {
    const s = broken(() => ({ galeraWriter: { ctl1: 'ctl1', ctl2: 'ctl2', ctl3: 'ctl1' } }));
    const p = clusterProblems(dep, s);
    expect(p).toHaveLength(1);
    expect(p[0]).toMatch(/disagree/);
    expect(p[0]).toContain('ctl1');
    expect(p[0]).toContain('ctl2');
  });

  it('a server HAProxy marked DOWN and a stopped HAProxy are problems', () => {
    const down = parseShowStat(FAILOVER);
    const s = broken((w) => ({
      haproxy: w.haproxy.map((h) =>
        h.host === 'ctl1'
          ? { ...h, servers: down }
          : h.host === 'ctl3'
            ? { ...h, running: false, servers: [] }
            : h,
      ),
      galeraWriter: { ctl1: 'ctl2', ctl2: 'ctl1', ctl3: undefined },
    }));
    const p = clusterProblems(dep, s);
    expect(p).toContain('haproxy on ctl1: mariadb/ctl1 DOWN');
    expect(p.some((x) => /ctl3 is not running/.test(x))).toBe(true);
    expect(p.some((x) => /disagree/.test(x))).toBe(true);
  });

  it('a memcached that does not answer is a problem', () => {
    const s = broken((w) => ({
      memcached: w.memcached.map((m) => ({ ...m, answering: m.host !== 'ctl2' })),
    }));
    expect(clusterProblems(dep, s)).toEqual(['memcached: ctl2 is not answering']);
  });
});

describe('formatStatus', () => {
  it('a whole cluster: every service listed and OK', () => {
    const text = formatStatus(dep, whole());
    expect(text).toContain('VIP 198.18.0.10: held by ctl1');
    expect(text).toContain('writes go to (per load balancer): ctl1->ctl1 ctl2->ctl1 ctl3->ctl1');
    expect(text).toContain('mariadb/ctl2(b)=UP');
    expect(text).toContain('MASTER (holds the VIP)');
    expect(text.trimEnd().endsWith('OK: every service is whole')).toBe(true);
  });

  it('a broken cluster: the problems, and no OK', () => {
    const text = formatStatus(
      dep,
      broken((w) => ({ keepalived: w.keepalived.map((k) => ({ ...k, holdsVip: false })) })),
    );
    expect(text).toContain('VIP 198.18.0.10: held by nobody');
    expect(text).toContain('PROBLEMS:\n  keepalived: no host holds the VIP 198.18.0.10');
    expect(text).not.toContain('OK: every service is whole');
  });
});
