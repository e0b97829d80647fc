// Every registered service, walked through what each layer asks of its declaration: deploy (and a re-deploy that
// changes nothing), drain (its fronted daemons are servers of frontends HAProxy really renders), a rolling restart
// of one host, scale (its daemons stop, its removal paths), status, and the inventory's and genpwd's view of it.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { frontedDaemon } from '../../src/deploy/drain.js';
import { PASSWORD_KEYS, buildDeployment } from '../../src/inventory/load.js';
import { hostDaemons } from '../../src/ops/scale.js';
import { statusWith } from '../../src/ops/status.js';
import { RABBIT_STUCK_GRACE } from '../../src/services/rabbitmq/rabbitmq.js';
import {
  SERVICES,
  debianPackages,
  deployedServices,
  loadBalancedServices,
  passwordOwners,
} from '../../src/services/registry.js';
import type { ServiceResult } from '../../src/services/types.js';
import { hostsFor } from '../../src/topology.js';
import { FakeCluster } from './fake-cluster.js';

const FIXTURES = join(import.meta.dirname, '../fixtures/render');
const fixture = (name: string): string => readFileSync(join(FIXTURES, name), 'utf8');
// Deploy keeps what the operator's machine must hold (Swift's ring builders) in the config dir: a temporary one
// here, never the machine's /etc/stackha.
const CONFIG_DIR = mkdtempSync(join(tmpdir(), 'stackha-registry-'));
afterAll(() => rmSync(CONFIG_DIR, { recursive: true, force: true }));
/** The render fixture's 3-host lab inventory, every service on. */
const dep = buildDeployment(
  { multinode: fixture('multinode'), globals: fixture('globals.yml'), passwords: fixture('passwords.yml') },
  CONFIG_DIR,
);

const asList = (r: ServiceResult | readonly ServiceResult[]): readonly ServiceResult[] =>
  Array.isArray(r) ? r : [r as ServiceResult];

describe('the service registry', () => {
  it('declares each service once, with its own enable key, groups, daemons and packages', () => {
    const names = SERVICES.map((s) => s.name);
    expect(new Set(names).size).toBe(names.length);
    for (const s of SERVICES) {
      expect(s.groups.length, s.name).toBeGreaterThan(0);
      expect(s.daemons(dep).length, s.name).toBeGreaterThan(0);
      for (const d of s.daemons(dep)) expect(d.stopTimeoutMs, `${s.name}/${d.name}`).toBeGreaterThan(0);
      if (!s.labOnly) expect(s.packages.length, s.name).toBeGreaterThan(0);
      for (const p of s.removal ?? []) expect(p.startsWith('/'), `${s.name}: ${p}`).toBe(true);
    }
    // A daemon belongs to one service only.
    const daemons = SERVICES.flatMap((s) => s.daemons(dep).map((d) => d.name));
    expect(new Set(daemons).size).toBe(daemons.length);
  });

  it('is what genpwd, the inventory and the package installer read', () => {
    const owners = passwordOwners();
    for (const s of SERVICES) for (const k of s.passwords) expect(owners.has(k), k).toBe(true);
    expect([...PASSWORD_KEYS].sort()).toEqual([...owners.keys()].sort());
    expect(debianPackages()).toEqual([...new Set(SERVICES.flatMap((s) => s.packages))].sort());
    // The inventory placed every enabled service on its declared groups.
    for (const s of deployedServices(dep))
      expect(
        hostsFor(dep, s.name).map((h) => h.name),
        s.name,
      ).toEqual(['ctl1', 'ctl2', 'ctl3']);
  });

  it('stops every declared daemon when a host leaves, in the reverse of the plan', () => {
    const order = hostDaemons(dep).map((d) => d.name);
    for (const s of SERVICES) for (const d of s.daemons(dep)) expect(order, d.name).toContain(d.name);
    expect(order.indexOf('keystone')).toBeLessThan(order.indexOf('haproxy'));
    expect(order.indexOf('rabbitmq')).toBeLessThan(order.indexOf('epmd'));
    expect(order.indexOf('galera-health')).toBeLessThan(order.indexOf('mariadb'));
  });

  it('fronts every fronted daemon with a frontend HAProxy really renders', () => {
    const frontends = loadBalancedServices(dep);
    for (const s of deployedServices(dep))
      for (const d of s.daemons(dep)) {
        const f = frontedDaemon(dep, d.name);
        if (!d.fronted) {
          expect(f, d.name).toBeUndefined();
          continue;
        }
        expect(f?.backends.length, d.name).toBeGreaterThan(0);
        for (const b of f?.backends ?? []) {
          const lb = frontends.find((x) => x.name === b);
          expect(lb, `${d.name} -> ${b}`).toBeDefined();
          expect(lb?.servers.map((x) => x.name)).toEqual(hostsFor(dep, s.name).map((h) => h.name));
        }
      }
  });
});

describe('every registered service on a fake cluster', () => {
  const cluster = new FakeCluster(dep);
  const ctx = { ...cluster.context() };

  it('deploys: each host of each service runs each declared daemon', async () => {
    for (const s of deployedServices(dep)) {
      const results = asList(await s.deploy(ctx));
      expect(results.length, s.name).toBeGreaterThan(0);
      for (const h of hostsFor(dep, s.name)) {
        const host = cluster.hosts.get(h.name);
        for (const d of s.daemons(dep))
          expect(host?.daemons.has(d.name), `${s.name}: ${d.name} on ${h.name}`).toBe(true);
      }
    }
  }, 60_000);

  it('a re-deploy with nothing changed starts, stops and reloads nothing', async () => {
    for (const h of cluster.hosts.values()) h.clearCalls();
    for (const s of deployedServices(dep)) {
      for (const r of asList(await s.deploy(ctx)))
        for (const [host, outcome] of Object.entries(r.outcomes))
          expect(outcome, `${r.service} on ${host}`).toBe('unchanged');
    }
    for (const h of cluster.hosts.values())
      expect(
        h.calls.filter((c) => c.op === 'start' || c.op === 'stop'),
        h.name,
      ).toEqual([]);
  }, 60_000);

  it('restarts a RabbitMQ node whose process runs but whose application hangs, and only that node', async () => {
    const hung = hostsFor(dep, 'rabbitmq')[0]!.name;
    cluster.rabbitHung.add(hung);
    RABBIT_STUCK_GRACE.ms = 50;
    try {
      for (const h of cluster.hosts.values()) h.clearCalls();
      const rabbit = deployedServices(dep).find((s) => s.name === 'rabbitmq')!;
      const [result] = asList(await rabbit.deploy(ctx));
      expect(result?.outcomes[hung]).toBe('restarted');
      for (const h of hostsFor(dep, 'rabbitmq').filter((x) => x.name !== hung))
        expect(result?.outcomes[h.name], h.name).toBe('unchanged');
      expect(cluster.rabbitHung.has(hung)).toBe(false);
      const stops = cluster.hosts.get(hung)!.calls.filter((c) => c.op === 'stop');
      expect(stops.length).toBeGreaterThan(0);
      expect(
        cluster.logs.some((l) => l.includes(`rabbitmq on ${hung}: its node runs but its rabbit application`)),
      ).toBe(true);
    } finally {
      RABBIT_STUCK_GRACE.ms = 60_000;
      cluster.rabbitHung.clear();
    }
  });

  it('waits for a running Galera node that is still rejoining instead of failing on it', async () => {
    const rejoining = hostsFor(dep, 'mariadb')[0]!.name;
    cluster.galeraRejoining.set(rejoining, 2);
    try {
      const galera = deployedServices(dep).find((s) => s.name === 'mariadb')!;
      const [result] = asList(await galera.deploy(ctx));
      expect(cluster.galeraRejoining.get(rejoining)).toBe(0);
      expect(result?.outcomes[rejoining]).toBe('unchanged');
      expect(
        cluster.logs.some((l) => l.includes(`mariadb on ${rejoining}: running but Joining (non-Primary)`)),
      ).toBe(true);
      for (const h of hostsFor(dep, 'mariadb'))
        expect(cluster.hosts.get(h.name)?.daemons.has('mariadb')).toBe(true);
    } finally {
      cluster.galeraRejoining.clear();
    }
  });

  it('matches what was applied: a rolling restart finds no pending change', async () => {
    for (const s of deployedServices(dep))
      for (const h of hostsFor(dep, s.name))
        for (const [record, want] of Object.entries(s.wanted?.(dep, { host: h }) ?? {})) {
          const applied = JSON.parse(
            (await cluster.hosts.get(h.name)?.readFile(`/var/lib/stackha/applied/${record}.json`)) ?? '{}',
          );
          expect(applied.config, `${s.name} ${record} on ${h.name}`).toBe(want.config);
          expect(applied.daemons, `${s.name} ${record} on ${h.name}`).toBe(want.daemons);
        }
  });

  it('restarts on one host: each of its daemons stopped (with its declared signal) and started again', async () => {
    const spec = dep.hosts[1]!;
    const host = cluster.hosts.get(spec.name)!;
    for (const s of deployedServices(dep).filter((x) => x.restartHost)) {
      host.clearCalls();
      await s.restartHost?.(ctx, spec);
      const stops = host.calls.filter((c) => c.op === 'stop');
      const starts = host.calls.filter((c) => c.op === 'start');
      if (s.tier === 'loadbalancer') {
        // HAProxy reloads in place (a new worker), never stops.
        expect(stops, s.name).toEqual([]);
        continue;
      }
      for (const d of s.daemons(dep)) {
        if (s.tier === 'vip' && d.name !== 'keepalived') continue;
        const stop = stops.find((c) => c.op === 'stop' && c.name === d.name);
        expect(stop, `${s.name}: ${d.name} stopped`).toBeDefined();
        if (stop?.op === 'stop') expect(stop.signal, `${s.name}: ${d.name}'s signal`).toBe(d.stopSignal);
        expect(
          starts.some((c) => c.op === 'start' && c.name === d.name),
          `${s.name}: ${d.name} started again`,
        ).toBe(true);
      }
    }
  }, 60_000);

  it('reports a whole cluster as whole, a section per service', async () => {
    const s = await statusWith(ctx);
    expect(s.services.map((x) => x.service)).toEqual(
      deployedServices(dep)
        .filter((x) => x.status)
        .map((x) => x.name),
    );
    for (const x of s.services) {
      expect(x.problems, x.service).toEqual([]);
      expect(x.lines[0], x.service).toMatch(/^[A-Z]/);
      expect(x.lines.length, x.service).toBeGreaterThan(1);
    }
    expect(s.vipHolders).toEqual(['ctl1']);
    expect(Object.values(s.galeraWriter)).toEqual(['ctl1', 'ctl1', 'ctl1']);
  });

  it('reports a dead daemon as a problem of its service', async () => {
    cluster.hosts.get('ctl3')?.daemons.delete('memcached');
    // A stopped memcached refuses connections: the fake's tcpConnect says so for that host.
    const host = cluster.hosts.get('ctl3')!;
    const original = host.tcpConnect.bind(host);
    host.tcpConnect = async () => false;
    const s = await statusWith(ctx);
    host.tcpConnect = original;
    expect(s.services.find((x) => x.service === 'memcached')?.problems).toEqual([
      'memcached: ctl3 is not answering',
    ]);
  });

  it('takes a leaving host out of the quorum clusters through the hosts that remain', async () => {
    const leaving = dep.hosts[2]!;
    const { withoutHost } = await import('../../src/ops/scale.js');
    const after = withoutHost(dep, leaving.name);
    for (const s of deployedServices(dep).filter((x) => x.beforeLeave)) {
      for (const h of cluster.hosts.values()) h.clearCalls();
      await s.beforeLeave?.(ctx, leaving, after);
      const host = cluster.hosts.get(leaving.name)!;
      for (const d of s.daemons(dep))
        expect(host.daemons.has(d.name), `${s.name}: ${d.name} still runs`).toBe(false);
    }
  }, 60_000);
});
