// Galera recovery on a real 3-host lab: a node killed with -9 rejoins by IST (its position recovered with
// --wsrep-recover), and after a power loss of every node `stackha recover galera` bootstraps the most advanced
// one and brings the others back by IST, with every acknowledged row on every node. Figures go to reports/.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labDown } from '../../src/lab/lab.js';
import type { RecoverGaleraResult } from '../../src/ops/recover.js';
import { clusterStatus, galeraNodesOf } from '../../src/ops/status.js';
import { clientSql } from '../../src/probes/client.js';
import {
  ERROR_LOG,
  classifyStateTransfer,
  localSql,
  readGrastate,
} from '../../src/services/mariadb/galera.js';
import { hostsFor } from '../../src/topology.js';
import { sleep, waitFor } from '../../src/util/wait.js';
import { type TestLab, createTestLab, saveReport } from './harness.js';

const LAB = 'trecov';
const figures: Record<string, number | string> = {};
let lab: TestLab;
const dbHosts = (): string[] => hostsFor(lab.dep, 'mariadb').map((h) => h.name);

/** Inserts one row per statement through the VIP until stopped; `acked` holds the rows whose commit returned. */
function startWriter(prefix: string): { stop(): Promise<{ acked: string[]; failed: number }> } {
  let running = true;
  let n = 0;
  let failed = 0;
  const acked: string[] = [];
  const loop = (async () => {
    while (running) {
      const id = `${prefix}-${n++}`;
      try {
        await clientSql(lab.client, lab.dep, `INSERT INTO stackha_test.t VALUES ('${id}');`);
        acked.push(id);
      } catch {
        failed++;
        await sleep(100);
      }
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return { acked, failed };
    },
  };
}

async function rowsOn(host: string, prefix: string): Promise<Set<string>> {
  const h = lab.host(host);
  const out = await localSql(h, `SELECT id FROM stackha_test.t WHERE id LIKE '${prefix}-%';`);
  return new Set(out.split('\n').filter((l) => l.length > 0));
}

async function mariadbPids(): Promise<Map<string, number | undefined>> {
  const m = new Map<string, number | undefined>();
  for (const h of dbHosts()) m.set(h, await lab.host(h).daemonPid('mariadb'));
  return m;
}

async function waitAllStopped(): Promise<void> {
  await waitFor(
    'every mariadbd to exit',
    async () => ([...(await mariadbPids()).values()].every((p) => p === undefined) ? true : undefined),
    { timeoutMs: 30_000, intervalMs: 100 },
  );
}

describe('Galera recovery on a 3-host lab', () => {
  beforeAll(async () => {
    lab = await createTestLab({ name: LAB, subnet: '198.18.11.0/24' });
    const r = await lab.cli(['deploy']);
    if (r.code !== 0) throw new Error(`deploy failed:\n${r.stdout}\n${r.stderr}`);
    await clientSql(
      lab.client,
      lab.dep,
      'CREATE DATABASE IF NOT EXISTS stackha_test; CREATE TABLE IF NOT EXISTS stackha_test.t (id VARCHAR(64) PRIMARY KEY);',
    );
  }, 900_000);

  afterAll(async () => {
    saveReport('lab-recover', figures);
    console.log('figures', figures);
    await labDown(LAB, { purge: true });
  }, 120_000);

  it('refuses to recover while the cluster is Primary, and touches nothing', async () => {
    const before = await mariadbPids();
    const r = await lab.cli(['recover', 'galera']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/ctl1 \(Synced\/Primary, cluster size 3\).*are running and Primary/);
    expect(r.stderr).toContain('nothing to recover');
    expect(await mariadbPids()).toEqual(before);
  });

  it('rejoins a node killed with -9 by IST, its position recovered with --wsrep-recover', async () => {
    const writers = new Set(Object.values((await clusterStatus(lab.dep)).galeraWriter));
    expect(writers.size).toBe(1);
    const victim = [...dbHosts()].reverse().find((h) => !writers.has(h));
    expect(victim).toBeDefined();
    const host = lab.host(victim!);
    const mark = (await host.readFile(ERROR_LOG))?.length ?? 0;
    expect(await host.signalDaemon('mariadb', 'SIGKILL')).toBe(true);
    await waitFor(
      'the killed mariadbd to exit',
      async () => ((await host.daemonPid('mariadb')) ? undefined : true),
      {
        timeoutMs: 30_000,
        intervalMs: 100,
      },
    );
    expect((await readGrastate(host))?.seqno).toBe(-1);
    // Commits while it is down, so there is something to transfer.
    const w = startWriter('down');
    await sleep(4000);
    const { acked } = await w.stop();
    expect(acked.length).toBeGreaterThan(5);

    const t0 = Date.now();
    const r = await lab.cli(['deploy']);
    figures.istRejoinDeploySeconds = (Date.now() - t0) / 1000;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^mariadb: .*started ${victim}`, 'm'));
    expect(r.stdout).toMatch(
      new RegExp(`mariadb on ${victim}: grastate.dat says seqno -1 .*--wsrep-recover found`),
    );
    const synced = new RegExp(`mariadb on ${victim}: Synced in ([\\d.]+) s \\(state transfer: IST\\)`).exec(
      r.stdout,
    );
    expect(synced, r.stdout).not.toBeNull();
    figures.istRejoinSeconds = Number(synced?.[1]);

    // The node's own log: an incremental transfer of the writesets it missed, no full SST.
    const segment = ((await host.readFile(ERROR_LOG)) ?? '').slice(mark);
    expect(segment).toMatch(/--wsrep-start-position=[0-9a-f-]{36}:\d+/);
    expect(segment).toMatch(/WSREP: Receiving IST: \d+ writesets/);
    expect(segment).not.toMatch(/SST completed on joiner/);
    expect(segment).not.toMatch(/IST uuid:00000000-0000-0000-0000-000000000000/);
    expect(classifyStateTransfer(segment)).toBe('IST');
    const rows = await rowsOn(victim!, 'down');
    for (const id of acked) expect(rows.has(id), id).toBe(true);
  }, 300_000);

  it('recovers from a power loss of every node, keeping every acknowledged row', async () => {
    // Writes through the VIP while every mariadbd is killed at once.
    const w = startWriter('pl');
    await sleep(2000);
    const tKill = Date.now();
    const killed = await Promise.all(dbHosts().map((h) => lab.host(h).signalDaemon('mariadb', 'SIGKILL')));
    expect(killed).toEqual([true, true, true]);
    await sleep(1000);
    const { acked, failed } = await w.stop();
    figures.rowsAckedBeforePowerLoss = acked.length;
    figures.writesFailedAfterPowerLoss = failed;
    expect(acked.length).toBeGreaterThan(5);
    await waitAllStopped();
    for (const h of dbHosts()) {
      expect(await readGrastate(lab.host(h)), h).toMatchObject({ seqno: -1, safeToBootstrap: false });
    }

    // deploy will not bootstrap blindly.
    const refused = await lab.cli(['deploy']);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr + refused.stdout).toContain('stackha recover galera');
    expect([...(await mariadbPids()).values()]).toEqual([undefined, undefined, undefined]);

    // A dry run finds every position and decides, and changes nothing.
    const dry = await lab.cli(['recover', 'galera', '--dry-run']);
    expect(dry.code, dry.stderr).toBe(0);
    for (const h of dbHosts())
      expect(dry.stdout).toMatch(
        new RegExp(`^${h}: .*position [0-9a-f-]{36}:\\d+ from --wsrep-recover`, 'm'),
      );
    expect(dry.stdout).toMatch(/^would bootstrap ctl\d at /m);
    expect(dry.stdout).toContain('dry run: nothing was started or changed');
    expect([...(await mariadbPids()).values()]).toEqual([undefined, undefined, undefined]);
    for (const h of dbHosts()) expect((await readGrastate(lab.host(h)))?.safeToBootstrap, h).toBe(false);

    const r = await lab.cli(['recover', 'galera', '--json']);
    expect(r.code, r.stderr).toBe(0);
    figures.recoverCommandSecondsAfterKill = (Date.now() - tKill) / 1000;
    const res = JSON.parse(r.stdout) as RecoverGaleraResult;
    figures.bootstrapped = `${res.chosen} (${res.reason})`;
    figures.secondsToPositions = res.secondsToPositions;
    figures.secondsToPrimary = res.secondsToPrimary ?? -1;
    figures.secondsToAllSynced = res.secondsToAllSynced ?? -1;
    figures.recoverSeconds = res.seconds;
    expect(res.dryRun).toBe(false);
    expect(res.warnings).toEqual([]);
    expect(res.mostAdvanced).toBe(res.chosen);
    expect(res.positions.map((p) => [p.host, p.source])).toEqual(dbHosts().map((h) => [h, 'wsrep-recover']));
    const top = Math.max(...res.positions.map((p) => p.position?.seqno ?? -1));
    const chosen = res.positions.find((p) => p.host === res.chosen);
    expect(chosen?.position?.seqno).toBe(top);
    expect(res.bootstrapPosition).toBe(`${chosen?.position?.uuid}:${top}`);
    // Every joiner caught up incrementally.
    expect(res.joined.map((j) => [j.host, j.transfer])).toEqual(
      dbHosts()
        .filter((h) => h !== res.chosen)
        .map((h) => [h, 'IST']),
    );
    expect(res.configDrift).toEqual([]);
    expect(r.stderr).toContain(`${res.chosen}: Synced and Primary after`);

    // One cluster of 3, the same history as before, every acknowledged row on every node.
    const s = await clusterStatus(lab.dep);
    for (const g of galeraNodesOf(s)) {
      expect(g, g.host).toMatchObject({
        running: true,
        state: 'Synced',
        clusterStatus: 'Primary',
        clusterSize: 3,
      });
    }
    for (const h of dbHosts()) {
      const rows = await rowsOn(h, 'pl');
      const missing = acked.filter((id) => !rows.has(id));
      expect(missing, h).toEqual([]);
      expect((await rowsOn(h, 'down')).size, h).toBeGreaterThan(5);
      const gs = await readGrastate(lab.host(h));
      expect(gs?.uuid, h).toBe(chosen?.position?.uuid);
    }
    // Writes go through the VIP again once the health endpoints say Synced.
    await waitFor(
      'a write through the VIP',
      async () =>
        (
          await clientSql(
            lab.client,
            lab.dep,
            "INSERT IGNORE INTO stackha_test.t VALUES ('after'); SELECT 1;",
          )
        ).trim() === '1'
          ? true
          : undefined,
      { timeoutMs: 60_000, intervalMs: 500 },
    );

    // deploy has nothing left to do for mariadb: no restart.
    const pids = await mariadbPids();
    const again = await lab.cli(['deploy']);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/^mariadb: unchanged ctl1,ctl2,ctl3 \(\d+\.\d s\)$/m);
    expect(await mariadbPids()).toEqual(pids);
  }, 600_000);
});
