import { describe, expect, it } from 'vitest';
import { parseIniInventory } from '../../src/inventory/ini.js';
import { renderLabInventory } from '../../src/inventory/lab-inventory.js';
import { buildDeployment } from '../../src/inventory/load.js';
import { PASSWORD_KEYS } from '../../src/inventory/load.js';
import { SERVICES } from '../../src/services/registry.js';
import { hostsFor } from '../../src/topology.js';

const PASSWORDS = PASSWORD_KEYS.map((k) => `${k}: lab-${k}\n`).join('');

describe('renderLabInventory', () => {
  it.each([3, 5])('round-trips %i hosts through buildDeployment', (hostCount) => {
    const inv = renderLabInventory({ lab: 'demo', hostCount, subnetPrefix: '198.18.0' });
    const dep = buildDeployment({ ...inv, passwords: PASSWORDS }, '/etc/stackha/demo');

    const names = Array.from({ length: hostCount }, (_, i) => `ctl${i + 1}`);
    expect(dep.hosts.map((h) => h.name)).toEqual(names);
    expect(dep.hosts.map((h) => h.address)).toEqual(names.map((_, i) => `198.18.0.${11 + i}`));
    for (const host of dep.hosts) {
      expect(host.groups).toEqual([
        'compute',
        'control',
        'keystone',
        'loadbalancer',
        'mariadb',
        'memcached',
        'network',
        'rabbitmq',
        'storage',
      ]);
      expect(host.vars).toEqual({ ansible_host: host.address });
    }
    for (const group of [
      'all',
      'control',
      'network',
      'loadbalancer',
      'mariadb',
      'rabbitmq',
      'memcached',
      'keystone',
    ]) {
      expect(dep.groups[group], group).toEqual(names);
    }
    // Every lab host is a compute and a storage host too (nova's fake driver, a Swift directory).
    for (const group of ['compute', 'storage']) expect(dep.groups[group], group).toEqual(names);
    for (const group of ['monitoring', 'deployment']) expect(dep.groups[group], group).toEqual([]);
    for (const service of SERVICES.filter((s) => s.tier !== 'api' && !s.labOnly).map((s) => s.name))
      expect(hostsFor(dep, service).map((h) => h.name)).toEqual(names);

    expect(dep.globals).toMatchObject({
      internalVip: '198.18.0.10',
      networkInterface: 'eth0',
      apiInterface: 'eth0',
      keepalivedVirtualRouterId: 51,
      keepalivedUnicastPeers: false,
      enabled: { memcached: true, mariadb: true, rabbitmq: true, haproxy: true, keepalived: true },
      profile: 'stackha',
      lab: 'demo',
    });
    expect(dep.tuning.profile).toBe('stackha');
  });

  it('writes a commented, kolla-like multinode', () => {
    const { multinode, globals } = renderLabInventory({
      lab: 'stackha',
      hostCount: 2,
      subnetPrefix: '10.99.7',
    });
    expect(multinode).toMatch(/^# stackha lab inventory/);
    expect(multinode).toContain('[control]\nctl1 ansible_host=10.99.7.11\nctl2 ansible_host=10.99.7.12\n');
    expect(multinode).toContain('[network]\nctl1\nctl2\n');
    for (const service of [
      'loadbalancer:children]\nnetwork',
      'mariadb:children]\ncontrol',
      'keystone:children]\ncontrol',
    ]) {
      expect(multinode).toContain(`[${service}\n`);
    }
    expect(parseIniInventory(multinode, 'multinode').issues).toEqual([]);
    expect(globals).toMatch(/^# stackha lab globals/);
    expect(globals).toContain('kolla_internal_vip_address: "10.99.7.10"');
    expect(globals).toContain('stackha_lab: "stackha"');
    // Every key has a comment above it or belongs to the commented enable_* block.
    expect(globals.split('\n').filter((l) => l.startsWith('#')).length).toBeGreaterThanOrEqual(7);
  });

  it('rejects bad options', () => {
    expect(() => renderLabInventory({ lab: 'Bad', hostCount: 3, subnetPrefix: '198.18.0' })).toThrow(
      /lab name/,
    );
    expect(() => renderLabInventory({ lab: 'toolongname', hostCount: 3, subnetPrefix: '198.18.0' })).toThrow(
      /lab name/,
    );
    expect(() => renderLabInventory({ lab: 'a', hostCount: 0, subnetPrefix: '198.18.0' })).toThrow(
      /host count/,
    );
    expect(() => renderLabInventory({ lab: 'a', hostCount: 2.5, subnetPrefix: '198.18.0' })).toThrow(
      /host count/,
    );
    expect(() => renderLabInventory({ lab: 'a', hostCount: 3, subnetPrefix: '198.18.0.0' })).toThrow(
      /subnet/,
    );
    expect(() => renderLabInventory({ lab: 'a', hostCount: 3, subnetPrefix: '198.318.0' })).toThrow(/subnet/);
  });
});
