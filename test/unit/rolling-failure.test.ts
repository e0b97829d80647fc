// A rolling restart that stops on a host (its Keystone exits after the restart) leaves that host's healthy services
// back in rotation and only the daemon that does not answer drained, and says so (against fake hosts).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildDeployment } from '../../src/inventory/load.js';
import { rollingRestart } from '../../src/ops/rolling.js';
import { KEYSTONE_PORT } from '../../src/services/keystone/keystone.js';
import { SERVICES, deployedServices } from '../../src/services/registry.js';
import { hostsFor } from '../../src/topology.js';
import { FakeCluster } from './fake-cluster.js';

const FIXTURES = join(import.meta.dirname, '../fixtures/render');
const fixture = (name: string): string => readFileSync(join(FIXTURES, name), 'utf8');
const CONFIG_DIR = mkdtempSync(join(tmpdir(), 'stackha-rolling-'));
afterAll(() => rmSync(CONFIG_DIR, { recursive: true, force: true }));

// The infrastructure, the probe API and Keystone: the OpenStack services beyond it switched off.
let globals = fixture('globals.yml');
for (const s of SERVICES.filter((x) => x.tier === 'api' && x.name !== 'keystone'))
  globals = globals.replace(new RegExp(`^${s.enable.key}: true$`, 'm'), `${s.enable.key}: false`);
const dep = buildDeployment(
  { multinode: fixture('multinode'), globals, passwords: fixture('passwords.yml') },
  CONFIG_DIR,
);

describe('a rolling restart that fails on a host', () => {
  const cluster = new FakeCluster(dep);

  it('puts back what is healthy there, leaves the daemon that does not answer drained, and says so', async () => {
    for (const s of deployedServices(dep)) await s.deploy(cluster.context());
    for (const h of cluster.hosts.values()) {
      h.clearCalls();
      h.exitOnStart.add('keystone');
      h.downPorts.add(KEYSTONE_PORT);
    }
    const logs: string[] = [];
    const err = await rollingRestart(dep, ['all'], {
      connection: { hosts: cluster.hosts },
      log: (m) => logs.push(m),
    }).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(err).toBeInstanceOf(Error);
    const failed = /^restart stopped on (\S+): /.exec(err?.message ?? '')?.[1] ?? '';
    expect(hostsFor(dep, 'keystone').map((h) => h.name)).toContain(failed);
    expect(err?.message).toContain('keystone on');
    expect(err?.message).toContain(
      `left drained on every load balancer: keystone_internal/${failed}; \`stackha deploy\``,
    );
    expect(err?.message).toContain(`put back (healthy): mariadb/${failed}, probe_api/${failed}`);
    for (const lb of hostsFor(dep, 'haproxy')) {
      const states = cluster.hosts.get(lb.name)?.serverStates;
      expect(states?.get(`keystone_internal/${failed}`), lb.name).toBe('maint');
      expect(states?.get(`mariadb/${failed}`), lb.name).toBe('ready');
      expect(states?.get(`probe_api/${failed}`), lb.name).toBe('ready');
    }
    // The restart went no further: no other host was touched.
    for (const [name, h] of cluster.hosts)
      if (name !== failed)
        expect(
          h.calls.filter((c) => c.op === 'stop' || c.op === 'start'),
          name,
        ).toEqual([]);
  }, 60_000);
});
