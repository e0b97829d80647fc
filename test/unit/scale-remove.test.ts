// `scale remove` records each phase as it finishes, and a re-run after an interruption resumes after the last one
// done: on a fake 4-host cluster, the RabbitMQ node's forget fails once, then the removal is run again.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildDeployment } from '../../src/inventory/load.js';
import { journalPath, scaleRemove } from '../../src/ops/scale.js';
import { deployedServices } from '../../src/services/registry.js';
import { FakeCluster } from './fake-cluster.js';

const FIXTURES = join(import.meta.dirname, '../fixtures/render');
const fixture = (name: string): string => readFileSync(join(FIXTURES, name), 'utf8');
const dir = mkdtempSync(join(tmpdir(), 'stackha-scale-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const MULTINODE = `[control]
ctl1 ansible_host=198.18.0.11
ctl2 ansible_host=198.18.0.12
ctl3 ansible_host=198.18.0.13
ctl4 ansible_host=198.18.0.14

[network:children]
control
`;

describe('scale remove, interrupted and resumed', () => {
  writeFileSync(join(dir, 'multinode'), MULTINODE);
  writeFileSync(join(dir, 'globals.yml'), fixture('globals.yml'));
  writeFileSync(join(dir, 'passwords.yml'), fixture('passwords.yml'), { mode: 0o600 });
  const dep = buildDeployment(
    { multinode: MULTINODE, globals: fixture('globals.yml'), passwords: fixture('passwords.yml') },
    dir,
  );
  const cluster = new FakeCluster(dep);
  const connection = { hosts: cluster.hosts };
  const logs: string[] = [];

  it('stops at the failed phase, with the phases before it recorded', async () => {
    for (const s of deployedServices(dep)) await s.deploy(cluster.context());
    cluster.failOnce.add('forget_cluster_node');
    await expect(scaleRemove(dep, 'ctl4', { connection, log: (m) => logs.push(m) })).rejects.toThrow(
      /forget_cluster_node rabbit@ctl4 failed/,
    );
    const journal = JSON.parse(readFileSync(journalPath(dep, 'ctl4', false), 'utf8')) as { done: string[] };
    expect(journal.done).toEqual([
      'drain ctl4 from every HAProxy backend',
      'stop keepalived on ctl4 (the VIP moves if it holds it)',
    ]);
    // The node stopped but is still a member: exactly what a re-run must finish, not strand.
    expect(cluster.forgotten.has('rabbit@ctl4')).toBe(false);
    expect(readFileSync(join(dir, 'multinode'), 'utf8')).toContain('ctl4');
  }, 60_000);

  it('a re-run resumes after the last phase done and finishes the removal', async () => {
    const r = await scaleRemove(dep, 'ctl4', { connection, log: (m) => logs.push(m) });
    expect(r.phases.filter((p) => p.resumed).map((p) => p.name)).toEqual([
      'drain ctl4 from every HAProxy backend',
      'stop keepalived on ctl4 (the VIP moves if it holds it)',
    ]);
    expect(r.phases.filter((p) => !p.resumed).map((p) => p.name)).toEqual([
      'rabbitmq: take ctl4 out of the cluster',
      'mariadb: take ctl4 out of the cluster',
      'update every other host (peer lists, HAProxy servers, keepalived peers, memcached lists)',
      'stop what still runs on ctl4 and wipe its data, cluster state and keys',
      `remove ctl4 from ${join(dir, 'multinode')}`,
      'wait until the cluster is whole',
    ]);
    expect(cluster.forgotten.has('rabbit@ctl4')).toBe(true);
    const leaving = cluster.hosts.get('ctl4')!;
    expect([...leaving.daemons.keys()]).toEqual([]);
    for (const path of ['/var/lib/rabbitmq/mnesia', '/var/lib/mysql', '/etc/keystone/fernet-keys'])
      expect(
        leaving.calls.some((c) => c.op === 'remove' && c.path === path),
        path,
      ).toBe(true);
    expect(readFileSync(join(dir, 'multinode'), 'utf8')).not.toMatch(/^ctl4/m);
    expect(existsSync(join(dir, 'multinode.stackha-backup'))).toBe(true);
    // Done: no journal left to resume from.
    expect(existsSync(journalPath(dep, 'ctl4', false))).toBe(false);
    // The others' HAProxy no longer lists it.
    expect(cluster.hosts.get('ctl1')?.files.get('/etc/haproxy/haproxy.cfg')?.content).not.toContain('ctl4');
  }, 60_000);
});
