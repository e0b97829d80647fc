// kolla-ansible's own files, in their shape (test/fixtures/inventory/kolla-shape, written for these tests): its full
// multinode group tree at master and at train, its all-in-one, its globals.yml and its passwords.yml with every key.
import { chmodSync, copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { InventoryError, formatIssue } from '../../src/inventory/errors.js';
import { generatePasswords } from '../../src/inventory/genpwd.js';
import { parseIniInventory } from '../../src/inventory/ini.js';
import { buildWithWarnings, loadWithWarnings } from '../../src/inventory/load.js';
import { PASSWORD_KEYS } from '../../src/inventory/load.js';
import { renderKeepalivedConf } from '../../src/services/keepalived/keepalived.js';
import { hostsFor } from '../../src/topology.js';

const SHAPE = join(import.meta.dirname, '../fixtures/inventory/kolla-shape');
const fixture = (name: string): string => readFileSync(join(SHAPE, name), 'utf8');

/** kolla's passwords.yml with stackha's keys filled in, the rest left empty as kolla ships it. */
function passwords(): string {
  let text = fixture('passwords.yml');
  for (const key of PASSWORD_KEYS) text = text.replace(new RegExp(`^${key}:$`, 'm'), `${key}: Test-${key}`);
  return text;
}

function build(multinode: string) {
  return buildWithWarnings(
    { multinode: fixture(multinode), globals: fixture('globals.yml'), passwords: passwords() },
    '/etc/kolla',
  );
}

describe("kolla-ansible's multinode (master)", () => {
  it('parses like kolla: every :children section, no issue', () => {
    const inv = parseIniInventory(fixture('multinode'), 'multinode');
    expect(inv.issues).toEqual([]);
    expect(inv.groups.size).toBeGreaterThan(150);
    expect(inv.groups.get('loadbalancer')?.hosts).toEqual(['network01', 'network02']);
    expect(inv.groups.get('nova-api')?.hosts).toEqual(['control01', 'control02', 'control03']);
  });

  it('passes every check without a warning, with kolla globals.yml keys stackha does not use', () => {
    const { deployment: dep, warnings } = build('multinode');
    expect(warnings).toEqual([]);
    expect(dep.hosts.map((h) => h.name)).not.toContain('localhost');
    expect(hostsFor(dep, 'mariadb').map((h) => h.name)).toEqual(['control01', 'control02', 'control03']);
    expect(hostsFor(dep, 'keepalived').map((h) => h.name)).toEqual(['network01', 'network02']);
    expect(dep.globals.raw.kolla_external_vip_address).toBe('{{ kolla_internal_vip_address }}');
    expect(dep.globals.settings.memcached_connection_limit).toBe(5000);
  });

  it("honours a host's own api_interface: keepalived puts the VIP there", () => {
    const { deployment: dep } = build('multinode');
    const net1 = dep.hosts.find((h) => h.name === 'network01')!;
    const net2 = dep.hosts.find((h) => h.name === 'network02')!;
    expect([net1.networkInterface, net1.apiInterface]).toEqual(['eth1', 'eth1']);
    expect([net2.networkInterface, net2.apiInterface]).toEqual(['eth1', 'ens4']);
    const conf = renderKeepalivedConf(dep, { host: net2 });
    expect(conf).toContain('  interface ens4\n');
    expect(conf).toContain('    10.20.0.250/32 dev ens4\n');
    expect(renderKeepalivedConf(dep, { host: net1 })).toContain('  interface eth1\n');
  });
});

describe("kolla-ansible's multinode at train: the old [haproxy] group", () => {
  it('is read as the load balancer group', () => {
    const { deployment: dep, warnings } = build('multinode-train');
    expect(warnings).toEqual([]);
    expect(dep.groups.loadbalancer).toBeUndefined();
    expect(dep.groups.haproxy).toEqual(['network01', 'network02']);
    expect(hostsFor(dep, 'haproxy').map((h) => h.name)).toEqual(['network01', 'network02']);
  });

  it('is refused when [loadbalancer] lists other hosts', () => {
    const multinode = `${fixture('multinode-train')}\n[loadbalancer:children]\ncontrol\n`;
    const line = multinode.split('\n').indexOf('[haproxy:children]') + 1;
    let err: unknown;
    try {
      buildWithWarnings({ multinode, globals: fixture('globals.yml'), passwords: passwords() }, '/etc/kolla');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InventoryError);
    expect((err as InventoryError).issues.map(formatIssue)).toEqual([
      `multinode:${line} haproxy: [haproxy], kolla-ansible's load balancer group before Ussuri, lists other hosts than [loadbalancer]: stackha (like kolla-ansible now) uses [loadbalancer]; make them the same, or remove [haproxy]`,
    ]);
  });
});

describe("kolla-ansible's all-in-one", () => {
  it('parses, and is refused in one line: no target host', () => {
    expect(parseIniInventory(fixture('all-in-one'), 'multinode').issues).toEqual([]);
    let err: unknown;
    try {
      build('all-in-one');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InventoryError);
    expect((err as InventoryError).message).toBe(
      "multinode: no target hosts: every host is ansible_connection=local, the machine stackha runs on (kolla-ansible's all-in-one); stackha deploys only to hosts it reaches by address: list them with ansible_host=ADDRESS, at least 3 for high availability",
    );
  });
});

describe("kolla-ansible's passwords.yml", () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });
  const copy = (): string => {
    dir = mkdtempSync(join(tmpdir(), 'stackha-kolla-'));
    const file = join(dir, 'passwords.yml');
    copyFileSync(join(SHAPE, 'passwords.yml'), file);
    chmodSync(file, 0o640);
    return file;
  };

  it('parses with every key empty and its SSH key maps, as kolla ships it', () => {
    const values = parse(fixture('passwords.yml')) as Record<string, unknown>;
    expect(Object.keys(values).length).toBeGreaterThan(100);
    expect(values.nova_ssh_key).toEqual({ private_key: null, public_key: null });
    expect(values.database_password).toBeNull();
  });

  it("genpwd fills stackha's keys only, says how many kolla keys are left and leaves SSH keys alone", () => {
    const file = copy();
    const before = readFileSync(file, 'utf8');
    const r = generatePasswords(file);
    expect(r.created).toEqual([...PASSWORD_KEYS]);
    expect(r.modeWas).toBe(0o640);
    expect(r.left).toEqual([
      'nova_ssh_key',
      'kolla_ssh_key',
      'keystone_ssh_key',
      'bifrost_ssh_key',
      'octavia_amp_ssh_key',
      'neutron_ssh_key',
      'haproxy_ssh_key',
    ]);
    const parsed = parse(before) as Record<string, unknown>;
    const empty = Object.values(parsed).filter((v) => v === null).length;
    const oursEmpty = PASSWORD_KEYS.filter((k) => k in parsed && parsed[k] === null).length;
    // docker_registry_password is empty by design, not counted.
    expect(r.otherEmpty).toBe(empty - oursEmpty - 1);
    // Every other line is as it was.
    const after = readFileSync(file, 'utf8').split('\n');
    const untouched = before.split('\n').filter((l) => !PASSWORD_KEYS.some((k) => l === `${k}:`));
    for (const line of untouched) expect(after).toContain(line);
  });

  it('genpwd --all fills every empty key of the kind kolla-genpwd gives it; the file then loads', () => {
    const file = copy();
    const r = generatePasswords(file, { all: true });
    expect(r.otherEmpty).toBe(0);
    expect(r.left).toContain('docker_registry_password');
    const values = parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    expect(values.rbd_secret_uuid).toMatch(
      /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
    );
    expect(values.designate_rndc_key).toMatch(/^[0-9a-f]{32}$/);
    expect(values.barbican_crypto_key).toMatch(/^[A-Za-z0-9_-]{43}=$/);
    expect(values.prometheus_bcrypt_salt).toMatch(/^[A-Za-z0-9./]{22}$/);
    // A key stackha needs gets stackha's kind of value; one it does not (heat's), kolla-genpwd's.
    expect(values.nova_database_password).toMatch(/^[A-Za-z0-9]{32}$/);
    expect(values.heat_database_password).toMatch(/^[A-Za-z0-9]{40}$/);
    expect(values.database_password).toMatch(/^[A-Za-z0-9]{32}$/);
    expect(values.docker_registry_password).toBeNull();
    expect(values.kolla_ssh_key).toEqual({ private_key: null, public_key: null });
    for (const [key, value] of Object.entries(values)) {
      if (key === 'docker_registry_password' || key.endsWith('_ssh_key')) continue;
      expect(value, key).not.toBeNull();
    }
    // A second run changes nothing.
    const text = readFileSync(file, 'utf8');
    expect(generatePasswords(file, { all: true }).created).toEqual([]);
    expect(readFileSync(file, 'utf8')).toBe(text);

    // The config dir of kolla's three files loads (kolla's globals.yml and multinode shape).
    writeFileSync(join(dir!, 'multinode'), fixture('multinode'));
    writeFileSync(join(dir!, 'globals.yml'), fixture('globals.yml'));
    const loaded = loadWithWarnings(dir!);
    expect(loaded.warnings).toEqual([]);
    expect(loaded.deployment.passwords.database_password).toBe(values.database_password);
  });
});
