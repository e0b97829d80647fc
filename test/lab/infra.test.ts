// The infrastructure tier on a real 3-host lab: real mariadbd/galera, rabbitmq-server, haproxy, keepalived and
// memcached in network namespaces. Invariants are asserted; timings are printed and saved to reports/.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labDown, labStatus } from '../../src/lab/lab.js';
import { clusterProblems, clusterStatus, galeraNodesOf, rabbitNodesOf } from '../../src/ops/status.js';
import { clientAmqp, clientSql, memcachedRoundTrip } from '../../src/probes/client.js';
import { holdsVip } from '../../src/services/keepalived/keepalived.js';
import { localSql } from '../../src/services/mariadb/galera.js';
import { rabbitmqctl } from '../../src/services/rabbitmq/rabbitmq.js';
import { waitFor } from '../../src/util/wait.js';
import { type TestLab, createTestLab, leftovers, saveReport } from './harness.js';

const figures: Record<string, number | string> = {};
let lab: TestLab;

const status = () => clusterStatus(lab.dep);

async function vipHolder(): Promise<string | undefined> {
  const holders = [];
  for (const h of lab.state.hosts) if (await holdsVip(lab.host(h.name), lab.dep)) holders.push(h.name);
  return holders.length === 1 ? holders[0] : undefined;
}

describe('infrastructure tier on a 3-host lab', () => {
  beforeAll(async () => {
    lab = await createTestLab({ name: 'tinfra', subnet: '198.18.9.0/24' });
    const t0 = Date.now();
    const r = await lab.cli(['deploy']);
    figures.freshDeploySeconds = (Date.now() - t0) / 1000;
    if (r.code !== 0) throw new Error(`deploy failed:\n${r.stdout}\n${r.stderr}`);
    await lab.recordPids();
  }, 900_000);

  afterAll(async () => {
    saveReport('lab-infra', figures);
    console.log('figures', figures);
    // Clean up even when a test failed.
    await labDown('tinfra', { purge: true });
  }, 120_000);

  it('forms a Galera cluster of 3 Synced, Primary nodes behind one writer', async () => {
    const s = await status();
    expect(galeraNodesOf(s)).toHaveLength(3);
    for (const g of galeraNodesOf(s)) {
      expect(g, g.host).toMatchObject({
        running: true,
        state: 'Synced',
        clusterStatus: 'Primary',
        clusterSize: 3,
        healthy: true,
      });
    }
    const writers = new Set(Object.values(s.galeraWriter));
    expect(writers.size).toBe(1);
    expect([...writers][0]).toBe('ctl1');
  });

  it('replicates a row written through VIP:3306 to every node', async () => {
    const id = `row-${Date.now()}`;
    await clientSql(
      lab.client,
      lab.dep,
      `CREATE DATABASE IF NOT EXISTS stackha_test; CREATE TABLE IF NOT EXISTS stackha_test.t (id VARCHAR(64) PRIMARY KEY);
       INSERT INTO stackha_test.t VALUES ('${id}');`,
    );
    for (const h of lab.state.hosts) {
      const host = lab.host(h.name);
      const out = await localSql(host, `SELECT id FROM stackha_test.t WHERE id='${id}';`);
      expect(out.trim(), h.name).toBe(id);
    }
  });

  it('forms a RabbitMQ cluster of 3 running nodes with no partition or alarm', async () => {
    const s = await status();
    for (const r of rabbitNodesOf(s)) {
      expect(r.runningNodes, r.host).toEqual(['rabbit@ctl1', 'rabbit@ctl2', 'rabbit@ctl3']);
      expect(r.partitions, r.host).toEqual([]);
      expect(r.alarms, r.host).toEqual([]);
    }
  });

  it('keeps a confirmed message in a 3-member quorum queue after its leader node is killed', async () => {
    const queue = 'stackha-test-qq';
    const pub = await clientAmqp(lab.client, lab.dep, [
      'publish',
      '--queue',
      queue,
      '--count',
      '50',
      '--prefix',
      'q',
    ]);
    expect(pub.error).toBeUndefined();
    expect(pub.confirmed).toHaveLength(50);
    const h1 = lab.host('ctl1');
    const tgt = { host: lab.dep.hosts[0]! };
    const info = await rabbitmqctl(h1, tgt, [
      'list_queues',
      'name',
      'type',
      'leader',
      'members',
      '--formatter',
      'json',
    ]);
    const q = (
      JSON.parse(info.stdout) as { name: string; type: string; leader: string; members: string[] }[]
    ).find((x) => x.name === queue);
    expect(q?.type).toBe('quorum');
    expect(q?.members).toHaveLength(3);
    const leaderHost = (q?.leader ?? '').replace('rabbit@', '');
    expect(await lab.host(leaderHost).signalDaemon('rabbitmq', 'SIGKILL')).toBe(true);
    const got = await clientAmqp(lab.client, lab.dep, ['consume', '--queue', queue, '--count', '50'], 90_000);
    expect(got.error).toBeUndefined();
    expect(new Set(got.received)).toEqual(new Set(pub.confirmed));
    figures.quorumLeaderKilled = leaderHost;
    // The killed node comes back with a plain deploy and rejoins.
    const r = await lab.cli(['deploy']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^rabbitmq: .*started ${leaderHost}`, 'm'));
    const after = await status();
    for (const n of rabbitNodesOf(after)) expect(n.runningNodes, n.host).toHaveLength(3);
  }, 300_000);

  it('serves memcached on every host and never on the VIP', async () => {
    for (const h of lab.state.hosts)
      expect(await memcachedRoundTrip(lab.client, h.address), h.name).toBe(true);
    expect(await memcachedRoundTrip(lab.client, lab.dep.globals.internalVip)).toBe(false);
    expect(await lab.client.tcpConnect(lab.dep.globals.internalVip, 11211, 1000)).toBe(false);
  });

  it('has exactly one VIP holder', async () => {
    const s = await status();
    expect(s.vipHolders).toHaveLength(1);
    figures.labPssMiB = Math.round((await labStatus('tinfra')).totalPssKiB / 1024);
  });

  it('re-deploying with nothing changed changes and restarts nothing', async () => {
    const before = new Map<string, number | undefined>();
    for (const h of lab.state.hosts) {
      for (const d of ['mariadb', 'rabbitmq', 'haproxy', 'keepalived', 'memcached', 'galera-health']) {
        before.set(`${h.name}/${d}`, await lab.host(h.name).daemonPid(d));
      }
    }
    const t0 = Date.now();
    const r = await lab.cli(['deploy']);
    figures.noopDeploySeconds = (Date.now() - t0) / 1000;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('nothing changed, nothing restarted');
    // Every service's summary line says unchanged on every host.
    const summary = r.stdout.split('\n').filter((l) => /^[a-z-]+: /.test(l));
    expect(summary.length).toBeGreaterThanOrEqual(6);
    for (const line of summary) expect(line).toMatch(/^[a-z-]+: unchanged ctl\d(,ctl\d)*( \(\d+\.\d s\))?$/);
    for (const [k, pid] of before) {
      const [h, d] = k.split('/') as [string, string];
      expect(await lab.host(h).daemonPid(d), k).toBe(pid);
    }
  });

  it('moves the VIP when the holder’s HAProxy dies, and queries through it succeed again', async () => {
    const holder = await vipHolder();
    expect(holder).toBeDefined();
    const t0 = Date.now();
    expect(await lab.host(holder!).signalDaemon('haproxy', 'SIGKILL')).toBe(true);
    const next = await waitFor(
      'another VIP holder',
      async () => {
        const h = await vipHolder();
        return h && h !== holder ? h : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 100 },
    );
    figures.vipMoveSecondsAfterHaproxyKill = (Date.now() - t0) / 1000;
    const row = await waitFor(
      'a query through the VIP',
      async () => (await clientSql(lab.client, lab.dep, 'SELECT 42;')).trim() || undefined,
      { timeoutMs: 60_000, intervalMs: 200 },
    );
    figures.sqlThroughVipSecondsAfterHaproxyKill = (Date.now() - t0) / 1000;
    expect(row).toBe('42');
    expect(next).not.toBe(holder);
    // Heal: deploy restarts the dead haproxy; nopreempt keeps the VIP where it is.
    const r = await lab.cli(['deploy']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^haproxy: .*started ${holder}`, 'm'));
    await waitFor(
      'a whole cluster',
      async () => (clusterProblems(lab.dep, await status()).length === 0 ? true : undefined),
      {
        timeoutMs: 60_000,
        intervalMs: 500,
      },
    );
    expect((await status()).vipHolders).toEqual([next]);
  }, 300_000);

  it('refuses to bootstrap a Galera cluster that is entirely stopped and points to recovery', async () => {
    await lab.recordPids();
    for (const h of lab.state.hosts) await lab.host(h.name).stopDaemon('mariadb', { timeoutMs: 120_000 });
    const r = await lab.cli(['deploy']);
    expect(r.code).not.toBe(0);
    expect(r.stderr + r.stdout).toContain('stackha recover galera');
    for (const h of lab.state.hosts)
      expect(await lab.host(h.name).daemonPid('mariadb'), h.name).toBeUndefined();
  }, 300_000);

  it('measures the lab and leaves nothing behind after lab down', async () => {
    await lab.recordPids();
    const r = await lab.cli(['lab', 'down', '--purge']);
    expect(r.code, r.stderr).toBe(0);
    expect(await leftovers(lab)).toEqual([]);
  }, 120_000);
});
