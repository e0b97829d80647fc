// Issue 5 on a real lab: grow 3 -> 4 -> 3 under load, a rolling restart of every service under load, and a config
// change that restarts only the service it touches. The same load and verification as the failure scenarios:
// nothing acknowledged lost, the cluster whole after each step. Failed operations, the longest gap per workload
// and each operation's duration are printed and saved (reports/lab-scale.json), not asserted against a clock.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatOutageTable, violations } from '../../src/chaos/report.js';
import {
  type ChaosContext,
  DEFAULT_RUN,
  type ScenarioResult,
  chaosContext,
  runScenario,
} from '../../src/chaos/run.js';
import { type ScaleOperation, lastScaleOperation, scenarioByName } from '../../src/chaos/scenarios.js';
import { labDown, labHost, labRemoveHost, readLabState } from '../../src/lab/lab.js';
import {
  clusterProblems,
  clusterStatus,
  galeraNodesOf,
  haproxyOf,
  rabbitNodesOf,
  statusOf,
} from '../../src/ops/status.js';
import type { KeepalivedStatusData } from '../../src/services/keepalived/keepalived.js';
import type { MemcachedStatusData } from '../../src/services/memcached/memcached.js';
import { quorumQueues } from '../../src/services/rabbitmq/rabbitmq.js';
import { type TestLab, createTestLab, saveReport } from './harness.js';

const LAB = 'tscale';
const OUTAGE_BOUND_MS = 60_000;
const DAEMONS = [
  'memcached',
  'mariadb',
  'galera-health',
  'rabbitmq',
  'probe-api',
  'keystone',
  'haproxy',
  'keepalived',
];
const results: ScenarioResult[] = [];
const operations: Record<string, ScaleOperation | undefined> = {};
const figures: Record<string, unknown> = {};
const failed: Record<string, string[]> = {};
const stamp = (m: string): string => `${new Date().toISOString().slice(11, 23)} ${m}`;
let lab: TestLab;
let ctx: ChaosContext;

const hostNamed = (name: string) => labHost(readLabState(LAB) ?? lab.state, name);

async function pids(hosts: readonly string[]): Promise<Map<string, number | undefined>> {
  const out = new Map<string, number | undefined>();
  for (const h of hosts) for (const d of DAEMONS) out.set(`${h}/${d}`, await hostNamed(h).daemonPid(d));
  return out;
}

async function run(name: string): Promise<ScenarioResult> {
  const r = await runScenario(ctx, scenarioByName(name), {
    ...DEFAULT_RUN,
    warmupMs: 3000,
    holdMs: 1000,
    afterMs: 3000,
  });
  results.push(r);
  operations[name] = lastScaleOperation(LAB);
  // Each failed operation with its time, to line up with the timestamped log above.
  failed[name] = (r.failedOps ?? []).map((o) => `${new Date(o.t).toISOString().slice(11, 23)} ${o.w} ${o.e}`);
  console.log(`${name}: failed operations:\n  ${failed[name].join('\n  ') || 'none'}`);
  console.log(formatOutageTable([r]));
  console.log(JSON.stringify(operations[name]));
  return r;
}

function expectInvariants(r: ScenarioResult): void {
  expect(r.error, r.error).toBeUndefined();
  expect(r.sql.acknowledged).toBeGreaterThan(100);
  expect(r.amqp.confirmed).toBeGreaterThan(100);
  expect(r.sql.lostIds).toEqual([]);
  expect(r.amqp.lostIds).toEqual([]);
  expect(r.problemsAfter).toEqual([]);
  expect(r.sql.notVerified).toEqual([]);
  expect(r.sql.nodes.length).toBeGreaterThanOrEqual(3);
  for (const n of r.sql.nodes) expect(n.lost, n.node).toBe(0);
  expect(r.amqp.notVerified).toBe(false);
  // The operation really happened, seen independently of the load (membership, new pids).
  expect(r.evidence.filter((e) => e.startsWith('NOT OBSERVED'))).toEqual([]);
  for (const w of r.workloads) expect(w.faultGapMs, w.workload).toBeLessThan(OUTAGE_BOUND_MS);
  expect(violations(r, OUTAGE_BOUND_MS)).toEqual([]);
}

const names = (xs: readonly { name: string }[]) => xs.map((x) => x.name);

describe('scale and rolling operations under load', () => {
  beforeAll(async () => {
    lab = await createTestLab({ name: LAB, subnet: '198.18.14.0/24' });
    const t0 = Date.now();
    const r = await lab.cli(['deploy']);
    figures.freshDeploySeconds = (Date.now() - t0) / 1000;
    if (r.code !== 0) throw new Error(`deploy failed:\n${r.stdout}\n${r.stderr}`);
    ctx = chaosContext(lab.dep, lab.state, (m) => console.log(stamp(m)));
  }, 900_000);

  afterAll(async () => {
    saveReport('lab-scale', { figures, operations, failed, results, table: formatOutageTable(results) });
    if (results.length > 0) console.log(formatOutageTable(results));
    console.log('figures', figures);
    await labDown(LAB, { purge: true });
  }, 180_000);

  it('grows 3 -> 4 under load: the new host in every cluster, nothing lost, the others not restarted', async () => {
    const before = await pids(['ctl1', 'ctl2', 'ctl3']);
    const r = await run('scale-add-under-load');
    expectInvariants(r);
    expect(names(ctx.dep.hosts)).toEqual(['ctl1', 'ctl2', 'ctl3', 'ctl4']);
    const s = await clusterStatus(ctx.dep);
    expect(clusterProblems(ctx.dep, s)).toEqual([]);
    for (const g of galeraNodesOf(s)) expect(g.clusterSize, g.host).toBe(4);
    for (const n of rabbitNodesOf(s)) expect(n.runningNodes, n.host).toContain('rabbit@ctl4');
    for (const hp of haproxyOf(s)) {
      const mine = hp.servers.filter((x) => x.server === 'ctl4');
      // mariadb (a backup), probe_api and keystone_internal, each UP on every load balancer.
      expect(mine.map((x) => x.backend).sort(), hp.host).toEqual([
        'keystone_internal',
        'mariadb',
        'probe_api',
      ]);
      for (const x of mine) expect(x.status, `${hp.host} ${x.backend}`).toBe('UP');
    }
    expect((statusOf<KeepalivedStatusData[]>(s, 'keepalived') ?? []).map((k) => k.host)).toContain('ctl4');
    expect((statusOf<MemcachedStatusData[]>(s, 'memcached') ?? []).map((m) => m.host)).toContain('ctl4');
    // The new node is a member of every quorum queue, the chaos queue included.
    const h1 = hostNamed('ctl1');
    const qs = await quorumQueues(h1, { host: ctx.dep.hosts[0]! });
    expect(qs.length).toBeGreaterThan(0);
    for (const q of qs) expect(q.members, q.name).toContain('rabbit@ctl4');
    // Peer lists changed everywhere, but Galera and RabbitMQ kept running: no restart for a peer-only change.
    const after = await pids(['ctl1', 'ctl2', 'ctl3']);
    for (const h of ['ctl1', 'ctl2', 'ctl3'])
      for (const d of ['mariadb', 'rabbitmq', 'memcached', 'haproxy', 'keepalived'])
        expect(after.get(`${h}/${d}`), `${h}/${d}`).toBe(before.get(`${h}/${d}`));
  }, 900_000);

  it('shrinks 4 -> 3 under load: the host leaves every cluster, nothing lost, the others not restarted', async () => {
    const before = await pids(['ctl1', 'ctl2', 'ctl3']);
    const r = await run('scale-remove-under-load');
    expectInvariants(r);
    expect(names(ctx.dep.hosts)).toEqual(['ctl1', 'ctl2', 'ctl3']);
    expect(readFileSync(join(lab.dep.configDir, 'multinode'), 'utf8')).not.toMatch(/^ctl4\b/m);
    for (const d of DAEMONS) expect(await hostNamed('ctl4').daemonPid(d), d).toBeUndefined();
    const s = await clusterStatus(ctx.dep);
    expect(clusterProblems(ctx.dep, s)).toEqual([]);
    for (const g of galeraNodesOf(s)) expect(g.clusterSize, g.host).toBe(3);
    for (const n of rabbitNodesOf(s))
      expect(n.runningNodes, n.host).toEqual(['rabbit@ctl1', 'rabbit@ctl2', 'rabbit@ctl3']);
    for (const hp of haproxyOf(s))
      expect(
        hp.servers.some((x) => x.server === 'ctl4'),
        hp.host,
      ).toBe(false);
    const h1 = hostNamed('ctl1');
    for (const q of await quorumQueues(h1, { host: ctx.dep.hosts[0]! }))
      expect(q.members, q.name).not.toContain('rabbit@ctl4');
    const after = await pids(['ctl1', 'ctl2', 'ctl3']);
    for (const h of ['ctl1', 'ctl2', 'ctl3'])
      for (const d of ['mariadb', 'rabbitmq', 'memcached', 'haproxy', 'keepalived'])
        expect(after.get(`${h}/${d}`), `${h}/${d}`).toBe(before.get(`${h}/${d}`));
    // The lab shrinks too, and the deployment stays whole.
    await labRemoveHost(LAB, 'ctl4');
    expect(clusterProblems(ctx.dep, await clusterStatus(ctx.dep))).toEqual([]);
    // Three is the floor: one more removal is refused, and says why.
    const refused = await lab.cli(['scale', 'remove', 'ctl3']);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/mariadb: removing ctl3 leaves 2 .*no quorum to lose/);
  }, 900_000);

  it('restarts every service host by host under load: every daemon is new, nothing lost', async () => {
    const hosts = ['ctl1', 'ctl2', 'ctl3'];
    const before = await pids(hosts);
    const holder = (await clusterStatus(ctx.dep)).vipHolders[0];
    const r = await run('rolling-restart-under-load');
    expectInvariants(r);
    const after = await pids(hosts);
    // The VIP stayed where it was: moving it would have reset every client connection through it.
    expect((await clusterStatus(ctx.dep)).vipHolders).toEqual([holder]);
    for (const h of hosts) {
      for (const d of DAEMONS) {
        const key = `${h}/${d}`;
        expect(after.get(key), key).toBeDefined();
        // HAProxy reloads into a new worker under the same master; the VIP holder's keepalived is left running.
        if (d === 'haproxy' || (d === 'keepalived' && h === holder)) continue;
        expect(after.get(key), key).not.toBe(before.get(key));
      }
    }
  }, 900_000);

  it('a changed setting restarts only the service it touches, host by host', async () => {
    const hosts = ['ctl1', 'ctl2', 'ctl3'];
    const globals = join(lab.dep.configDir, 'globals.yml');
    writeFileSync(globals, `${readFileSync(globals, 'utf8')}memcached_max_memory: 96\n`);
    const before = await pids(hosts);
    const t0 = Date.now();
    const r = await lab.cli(['deploy']);
    figures.memcachedChangeDeploySeconds = (Date.now() - t0) / 1000;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^memcached: restarted ctl1,ctl2,ctl3 \(\d+\.\d s\)$/m);
    const after = await pids(hosts);
    for (const h of hosts) {
      for (const d of DAEMONS) {
        const key = `${h}/${d}`;
        if (d === 'memcached') expect(after.get(key), key).not.toBe(before.get(key));
        else expect(after.get(key), key).toBe(before.get(key));
      }
      const argv = readFileSync(`/proc/${after.get(`${h}/memcached`)}/cmdline`, 'utf8').split('\0');
      expect(argv[argv.indexOf('-m') + 1], h).toBe('96');
    }
    const again = await lab.cli(['deploy']);
    expect(again.stdout).toContain('nothing changed, nothing restarted');
  }, 600_000);
});
