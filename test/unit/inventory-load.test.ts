import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigPathError, type InputIssue, InventoryError, formatIssue } from '../../src/inventory/errors.js';
import { type ConfigTexts, buildDeployment, isIPv4, loadDeployment } from '../../src/inventory/load.js';
import { PASSWORD_KEYS } from '../../src/inventory/load.js';
import { defaultSettings } from '../../src/services/registry.js';
import { hostsFor } from '../../src/topology.js';

const KOLLA = join(import.meta.dirname, '../fixtures/inventory/kolla');
const fixture = (name: string): string => readFileSync(join(KOLLA, name), 'utf8');

const MULTINODE =
  '[control]\nctl1 ansible_host=10.0.0.11\nctl2 ansible_host=10.0.0.12\nctl3 ansible_host=10.0.0.13\n';
const GLOBALS = 'kolla_internal_vip_address: 10.0.0.10\n';
/** A complete passwords.yml whose values are recognisable, to prove they never reach a message. */
const PASSWORDS = PASSWORD_KEYS.map((k) => `${k}: TOPSECRET-${k}\n`).join('');

function files(overrides: Partial<ConfigTexts> = {}): ConfigTexts {
  return { multinode: MULTINODE, globals: GLOBALS, passwords: PASSWORDS, ...overrides };
}

/** The issues buildDeployment throws, formatted; fails the test when it does not throw an InventoryError. */
function issuesOf(input: ConfigTexts): { issues: InputIssue[]; lines: string[]; message: string } {
  try {
    buildDeployment(input, '/etc/stackha');
  } catch (err) {
    expect(err).toBeInstanceOf(InventoryError);
    const e = err as InventoryError;
    expect(e.code).toBe('EINVENTORY');
    return { issues: e.issues, lines: e.issues.map(formatIssue), message: e.message };
  }
  throw new Error('expected an InventoryError');
}

describe('buildDeployment: a kolla-ansible config directory', () => {
  const dep = buildDeployment(
    { multinode: fixture('multinode'), globals: fixture('globals.yml'), passwords: fixture('passwords.yml') },
    '/etc/kolla',
  );

  it('keeps the hosts in inventory order with their addresses, sorted groups and vars', () => {
    expect(dep.configDir).toBe('/etc/kolla');
    expect(dep.hosts.map((h) => [h.name, h.address])).toEqual([
      ['control01', '10.10.0.11'],
      ['control02', '10.10.0.12'],
      ['control03', '10.10.0.13'],
      ['net1', '10.10.0.21'],
      ['10.10.0.31', '10.10.0.31'],
      ['10.10.0.32', '10.10.0.32'],
    ]);
    const net1 = dep.hosts[3]!;
    expect(net1.groups).toEqual(['baremetal', 'common', 'loadbalancer', 'network']);
    expect(net1.vars.ansible_user).toBe('netops');
    const c1 = dep.hosts[0]!;
    expect(c1.groups).toEqual([...c1.groups].sort());
    expect(c1.groups).toContain('mariadb');
  });

  it('maps every group, including all, to its hosts with children expanded', () => {
    expect(dep.groups.all).toEqual(dep.hosts.map((h) => h.name));
    expect(dep.groups.loadbalancer).toEqual(['control01', 'control02', 'net1']);
    expect(dep.groups.mariadb).toEqual(['control01', 'control02', 'control03']);
    expect(dep.groups.storage).toEqual([]);
    expect(hostsFor(dep, 'keepalived').map((h) => h.name)).toEqual(['control01', 'control02', 'net1']);
    expect(hostsFor(dep, 'memcached')).toEqual([]);
  });

  it('reads globals with kolla\'s "yes"/"no" strings and keeps unknown keys', () => {
    expect(dep.globals).toMatchObject({
      internalVip: '10.10.0.250',
      networkInterface: 'eth1',
      apiInterface: 'eth1',
      keepalivedVirtualRouterId: 66,
      keepalivedUnicastPeers: false,
      enabled: { mariadb: true, rabbitmq: true, memcached: false, haproxy: true, keepalived: true },
      rabbitmqQuorumQueues: true,
      rabbitmqMirroredQueues: true,
      profile: 'kolla',
      lab: undefined,
    });
    expect(dep.globals.raw.openstack_release).toBe('2024.1');
    expect(dep.globals.raw.workaround_ansible_issue_8743).toBe('yes');
    expect(dep.tuning.profile).toBe('kolla');
  });

  it('reads passwords, numbers as written, without requiring those of disabled services', () => {
    expect(dep.passwords.database_password).toBe('Fixture-db-Secret-1');
    expect(dep.passwords.keepalived_password).toBe('12345678');
    expect(dep.passwords.memcache_secret_key).toBeUndefined();
    expect(dep.passwords.ceph_cluster_fsid).toBeUndefined();
  });
});

describe('buildDeployment: globals.yml', () => {
  it('applies the defaults', () => {
    const dep = buildDeployment(files(), '/etc/stackha');
    expect(dep.globals).toEqual({
      internalVip: '10.0.0.10',
      networkInterface: 'eth0',
      apiInterface: 'eth0',
      keepalivedVirtualRouterId: 51,
      keepalivedUnicastPeers: false,
      enabled: {
        memcached: true,
        mariadb: true,
        rabbitmq: true,
        haproxy: true,
        keepalived: true,
        keystone: true,
        'probe-api': true,
        // The API tier beyond Keystone is on only when switched on.
        placement: false,
        neutron: false,
        'neutron-linuxbridge-agent': false,
        'neutron-metadata-agent': false,
        'neutron-dhcp-agent': false,
        'neutron-l3-agent': false,
        nova: false,
        'nova-compute': false,
        'swift-storage': false,
        'swift-proxy': false,
        glance: false,
      },
      rabbitmqQuorumQueues: true,
      rabbitmqMirroredQueues: false,
      profile: 'stackha',
      lab: undefined,
      settings: defaultSettings(),
      raw: { kolla_internal_vip_address: '10.0.0.10' },
    });
    expect(defaultSettings()).toMatchObject({
      fernet_token_expiry: 86400,
      keystone_uwsgi_processes: 2,
      keystone_uwsgi_threads: 2,
      memcached_max_memory: 64,
      memcached_connection_limit: 5000,
      placement_uwsgi_processes: 1,
      nova_api_uwsgi_processes: 1,
      enable_nova_fake: false,
      nova_compute_virt_type: 'kvm',
      swift_part_power: 10,
      swift_replica_count: 3,
      glance_api_workers: 1,
    });
    expect(dep.tuning.profile).toBe('stackha');
    expect(dep.tuning.haproxy.database.interMs).toBe(200);
    expect(dep.tuning.haproxy.api.timeoutMs).toBeGreaterThanOrEqual(2000);
  });

  it('accepts booleans written as true/false, yes/no, True/No, on/off', () => {
    const globals = [
      GLOBALS,
      'enable_mariadb: "yes"',
      'enable_rabbitmq: No',
      'enable_memcached: True',
      'enable_haproxy: on',
      'enable_keepalived: false',
      'keepalived_unicast_peers: yes',
      'om_enable_rabbitmq_quorum_queues: "no"',
      'om_enable_rabbitmq_high_availability: true',
      'api_interface: br-api',
      'keepalived_virtual_router_id: 255',
      'stackha_lab: lab2',
    ].join('\n');
    const dep = buildDeployment(
      files({ globals, passwords: PASSWORDS.replace(/rabbitmq_password.*\n/, '') }),
      '/etc/stackha',
    );
    expect(dep.globals.enabled).toEqual({
      mariadb: true,
      rabbitmq: false,
      memcached: true,
      haproxy: true,
      keepalived: false,
      keystone: true,
      'probe-api': true,
      placement: false,
      neutron: false,
      'neutron-linuxbridge-agent': false,
      'neutron-metadata-agent': false,
      'neutron-dhcp-agent': false,
      'neutron-l3-agent': false,
      nova: false,
      'nova-compute': false,
      'swift-storage': false,
      'swift-proxy': false,
      glance: false,
    });
    expect(dep.globals.keepalivedUnicastPeers).toBe(true);
    expect(dep.globals.rabbitmqQuorumQueues).toBe(false);
    expect(dep.globals.rabbitmqMirroredQueues).toBe(true);
    expect(dep.globals.apiInterface).toBe('br-api');
    expect(dep.globals.networkInterface).toBe('eth0');
    expect(dep.globals.keepalivedVirtualRouterId).toBe(255);
    expect(dep.globals.lab).toBe('lab2');
  });

  it.each([
    ['"10.0.0"', 'not an IPv4 address'],
    ['256.1.1.1', 'not an IPv4 address'],
    ['10.0.0.010', 'not an IPv4 address'],
    ['" 10.0.0.10"', 'not an IPv4 address'],
    ['10.0.0.10/24', 'not an IPv4 address'],
    ['[10.0.0.10]', 'not an IPv4 address'],
    ['224.0.0.18', '224.0.0.18 is a multicast address (224.0.0.0/4), not a host address'],
    ['0.0.0.0', '0.0.0.0 is the unspecified address (0.0.0.0): it names no host'],
    [
      '127.0.0.1',
      '127.0.0.1 is a loopback address (127.0.0.0/8): every machine has it, so no other host reaches it',
    ],
    ['""', 'missing (required: the internal VIP, an IPv4 address)'],
  ])('rejects the VIP %s with its line', (value, message) => {
    const { lines } = issuesOf(
      files({ globals: `# VIP\nnetwork_interface: eth0\nkolla_internal_vip_address: ${value}\n` }),
    );
    expect(lines).toEqual([`globals.yml:3 kolla_internal_vip_address: ${message}`]);
  });

  it('rejects a VIP that is also a host address', () => {
    const { lines } = issuesOf(files({ globals: 'kolla_internal_vip_address: "10.0.0.12"\n' }));
    expect(lines).toEqual([
      'globals.yml:1 kolla_internal_vip_address: 10.0.0.12 is also the address of host ctl2 (the VIP must be an unused address)',
    ]);
  });

  it.each([
    ['empty', ''],
    ['comment-only', '# nothing here yet\n---\n'],
  ])('reports only the missing VIP for an %s globals.yml', (_name, globals) => {
    const { lines } = issuesOf(files({ globals }));
    expect(lines).toEqual([
      'globals.yml kolla_internal_vip_address: missing (required: the internal VIP, an IPv4 address)',
    ]);
  });

  it('reports every wrongly typed key at once, each with its line', () => {
    const globals = [
      '---', // 1
      'kolla_internal_vip_address: 10.0.0.10', // 2
      'enable_mariadb: maybe', // 3
      'network_interface: "eth 0"', // 4
      'enable_haproxy:', // 5
      'some_kolla_key: {anything: [1, 2]}', // 6
      'keepalived_virtual_router_id: 256', // 7
      'stackha_profile: fast', // 8
      'stackha_lab: Lab_1', // 9
      'api_interface: averyveryverylongname', // 10
      'keepalived_unicast_peers: 1.5', // 11
    ].join('\n');
    const { lines } = issuesOf(files({ globals }));
    expect(lines).toEqual([
      'globals.yml:3 enable_mariadb: must be a boolean (true/false or "yes"/"no")',
      'globals.yml:4 network_interface: must be a network interface name (1-15 characters, no spaces, "/" or ":")',
      'globals.yml:5 enable_haproxy: must be a boolean (true/false or "yes"/"no")',
      'globals.yml:7 keepalived_virtual_router_id: must be an integer from 1 to 255',
      'globals.yml:8 stackha_profile: must be "stackha" or "kolla"',
      'globals.yml:9 stackha_lab: must be 1-8 lowercase letters and digits, starting with a letter',
      'globals.yml:10 api_interface: must be a network interface name (1-15 characters, no spaces, "/" or ":")',
      'globals.yml:11 keepalived_unicast_peers: must be a boolean (true/false or "yes"/"no")',
    ]);
  });

  it.each([['0'], ['"abc"'], ['1.5'], ['-3'], ['true']])(
    'rejects keepalived_virtual_router_id %s',
    (value) => {
      const { lines } = issuesOf(files({ globals: `${GLOBALS}keepalived_virtual_router_id: ${value}\n` }));
      expect(lines).toEqual(['globals.yml:2 keepalived_virtual_router_id: must be an integer from 1 to 255']);
    },
  );

  it('reports a YAML syntax error with its line', () => {
    const { issues } = issuesOf(files({ globals: `${GLOBALS}enable_haproxy: "yes\n` }));
    expect(issues).toHaveLength(1);
    expect(issues[0]).toMatchObject({ file: 'globals.yml', field: '' });
    expect(issues[0]!.line).toBeGreaterThanOrEqual(2);
    expect(issues[0]!.message).toMatch(/^YAML syntax error: /);
  });

  it('reports a duplicate key and a globals.yml that is not a mapping', () => {
    expect(issuesOf(files({ globals: `${GLOBALS}${GLOBALS}` })).issues[0]).toMatchObject({
      file: 'globals.yml',
      line: 2,
    });
    expect(issuesOf(files({ globals: '- a\n- b\n' })).lines).toEqual([
      'globals.yml:1: must be a YAML mapping of key: value',
    ]);
  });
});

describe('buildDeployment: multinode', () => {
  it('takes the address from ansible_host or from a host named by its address', () => {
    const dep = buildDeployment(
      files({ multinode: '[control]\n10.0.0.21\nctl2 ansible_host=10.0.0.22\n' }),
      '/x',
      { allowSingle: true },
    );
    expect(dep.hosts.map((h) => h.address)).toEqual(['10.0.0.21', '10.0.0.22']);
  });

  it('reports missing, invalid and duplicate addresses with their lines', () => {
    const multinode = [
      '[control]', // 1
      'ctl1', // 2
      'ctl2 ansible_host=10.0.0.300', // 3
      'ctl3 ansible_host=10.0.0.11', // 4
      'ctl4 ansible_host=10.0.0.11', // 5
      '[network:vars]', // 6
      'ansible_host=10.0.0.99', // 7
      '[network]', // 8
      'net1', // 9
      'net2', // 10
    ].join('\n');
    const { lines } = issuesOf(files({ multinode }));
    expect(lines).toEqual([
      "multinode:2 ctl1: ansible_host: missing (needs the host's internal IPv4 address)",
      'multinode:3 ctl2: ansible_host: "10.0.0.300" is not an IPv4 address (needs the host\'s internal IPv4 address)',
      'multinode:5 ctl4: ansible_host: 10.0.0.11 is also the address of host ctl3',
      'multinode:7 net2: ansible_host: 10.0.0.99 is also the address of host net1',
    ]);
  });

  it('needs hosts for mariadb and for the load balancer', () => {
    const { lines } = issuesOf(files({ multinode: '[compute]\ncmp1 ansible_host=10.0.0.31\n[control]\n' }));
    expect(lines).toEqual([
      'multinode:3 mariadb: no hosts for mariadb (put hosts in [mariadb] or [control], or set enable_mariadb: false in globals.yml)',
      'multinode:3 rabbitmq: no hosts for rabbitmq (put hosts in [rabbitmq] or [control], or set enable_rabbitmq: false in globals.yml)',
      'multinode:3 loadbalancer: no hosts for haproxy and keepalived (put hosts in [loadbalancer], [network] or [control], or set enable_haproxy/enable_keepalived: false in globals.yml)',
    ]);
  });

  it('does not need mariadb, rabbitmq or load balancer hosts when they are disabled', () => {
    const globals = `${GLOBALS}enable_mariadb: no\nenable_rabbitmq: no\nenable_haproxy: no\nenable_keepalived: no\n`;
    const dep = buildDeployment(
      files({ multinode: '[compute]\ncmp1 ansible_host=10.0.0.31\n', globals }),
      '/x',
    );
    expect(dep.hosts).toHaveLength(1);
    expect(hostsFor(dep, 'mariadb')).toEqual([]);
  });

  it('reports an inventory without hosts', () => {
    expect(issuesOf(files({ multinode: '# nothing\n' })).lines[0]).toBe('multinode: no hosts');
  });
});

describe('buildDeployment: passwords.yml', () => {
  it('lists every missing or empty password by name, never a value', () => {
    const passwords = [
      'database_password: TOPSECRET-db', // 1
      'rabbitmq_password: ""', // 2
      'haproxy_password:', // 3
      'keepalived_password: TOPSECRET-keepalived', // 4
      'keystone_admin_password: TOPSECRET-admin', // 5
      'memcache_secret_key: [TOPSECRET-list]', // 6
    ].join('\n');
    const { lines, message } = issuesOf(files({ passwords }));
    expect(lines).toEqual([
      'passwords.yml mariadb_backup_database_password: missing (run stackha genpwd)',
      'passwords.yml rabbitmq_cluster_cookie: missing (run stackha genpwd)',
      'passwords.yml keystone_database_password: missing (run stackha genpwd)',
      'passwords.yml:2 rabbitmq_password: missing (run stackha genpwd)',
      'passwords.yml:3 haproxy_password: missing (run stackha genpwd)',
      'passwords.yml:6 memcache_secret_key: must be a string',
    ]);
    expect(message).not.toContain('TOPSECRET');
  });

  it('requires only the passwords of enabled services', () => {
    const globals = `${GLOBALS}enable_rabbitmq: "no"\nenable_memcached: "no"\n`;
    const passwords = PASSWORDS.split('\n')
      .filter((l) => !/^(rabbitmq_|memcache_)/.test(l))
      .join('\n');
    const dep = buildDeployment(files({ globals, passwords }), '/x');
    expect(dep.passwords.rabbitmq_password).toBeUndefined();
    expect(dep.passwords.database_password).toBe('TOPSECRET-database_password');
  });

  it('keeps numbers and extra keys as written and skips non-string extras', () => {
    const passwords = `${PASSWORDS}extra_number: 0123\nextra_float: 1.50\nnova_ssh_key:\n  private_key: x\nempty_extra:\n`;
    const dep = buildDeployment(files({ passwords }), '/x');
    expect(dep.passwords.extra_number).toBe('0123');
    expect(dep.passwords.extra_float).toBe('1.50');
    expect(dep.passwords.nova_ssh_key).toBeUndefined();
    expect(dep.passwords.empty_extra).toBeUndefined();
  });

  it('reports a YAML syntax error without quoting the file', () => {
    const { lines, message } = issuesOf(
      files({ passwords: `${PASSWORDS}broken: "TOPSECRET-unterminated\n` }),
    );
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^passwords\.yml:\d+: YAML syntax error \([A-Z_]+\)$/);
    expect(message).not.toContain('TOPSECRET');
  });
});

describe('buildDeployment: every problem of every file in one error', () => {
  it('lists them all, sorted by file and line, one per line', () => {
    const err = (() => {
      try {
        buildDeployment(
          {
            multinode: '[control]\nctl1\nctl2 ansible_host=10.0.0.12 broken\n[oops\n',
            globals: 'kolla_internal_vip_address: 10.0.0.300\nenable_mariadb: perhaps\n',
            passwords: 'database_password: TOPSECRET-1\nrabbitmq_password:\n',
          },
          '/etc/stackha',
        );
      } catch (e) {
        return e as InventoryError;
      }
      throw new Error('expected an InventoryError');
    })();
    expect(err).toBeInstanceOf(InventoryError);
    expect(err.message.split('\n')).toEqual([
      'globals.yml:1 kolla_internal_vip_address: not an IPv4 address',
      'globals.yml:2 enable_mariadb: must be a boolean (true/false or "yes"/"no")',
      'multinode:1 control: mariadb runs on 2 hosts (ctl1, ctl2), at least 3 are needed: a Galera cluster of 2 has no quorum to lose: when either node fails, the other is 1 of 2, not a majority, and stops taking writes; add hosts, or, for an evaluation that is not highly available, set stackha_allow_single: true in globals.yml (or pass --allow-single)',
      'multinode:1 control: rabbitmq runs on 2 hosts (ctl1, ctl2), at least 3 are needed: a RabbitMQ cluster of 2 has no quorum to lose: quorum queues and pause_minority stop when either node fails; add hosts, or, for an evaluation that is not highly available, set stackha_allow_single: true in globals.yml (or pass --allow-single)',
      "multinode:2 ctl1: ansible_host: missing (needs the host's internal IPv4 address)",
      'multinode:3 ctl2: variable 2 on this line has no "=" (expected key=value; quote values with spaces)',
      'multinode:4: malformed section header [oops (expected [group], [group:children] or [group:vars])',
      'passwords.yml memcache_secret_key: missing (run stackha genpwd)',
      'passwords.yml mariadb_backup_database_password: missing (run stackha genpwd)',
      'passwords.yml rabbitmq_cluster_cookie: missing (run stackha genpwd)',
      'passwords.yml haproxy_password: missing (run stackha genpwd)',
      'passwords.yml keepalived_password: missing (run stackha genpwd)',
      'passwords.yml keystone_admin_password: missing (run stackha genpwd)',
      'passwords.yml keystone_database_password: missing (run stackha genpwd)',
      'passwords.yml:2 rabbitmq_password: missing (run stackha genpwd)',
    ]);
    expect(err.issues).toHaveLength(15);
    expect(err.message).not.toContain('TOPSECRET');
  });
});

describe('formatIssue', () => {
  it('prints file, line when known, field and message', () => {
    expect(formatIssue({ file: '/etc/kolla/globals.yml', line: 12, field: 'x', message: 'bad' })).toBe(
      'globals.yml:12 x: bad',
    );
    expect(formatIssue({ file: 'passwords.yml', line: undefined, field: 'y', message: 'missing' })).toBe(
      'passwords.yml y: missing',
    );
    expect(
      formatIssue({ file: 'passwords.yml', line: undefined, field: '', message: 'mode 0644, must be 0600' }),
    ).toBe('passwords.yml: mode 0644, must be 0600');
  });
});

describe('isIPv4', () => {
  it('accepts only strict dotted quads', () => {
    for (const ok of ['0.0.0.0', '10.0.0.1', '255.255.255.255', '198.18.0.11'])
      expect(isIPv4(ok), ok).toBe(true);
    for (const bad of [
      '',
      '1.2.3',
      '1.2.3.4.5',
      '01.2.3.4',
      '1.2.3.256',
      '1.2.3.4 ',
      'a.b.c.d',
      '1..3.4',
      '+1.2.3.4',
    ]) {
      expect(isIPv4(bad), bad).toBe(false);
    }
  });
});

describe('loadDeployment', () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });

  function copyFixture(mode: number): string {
    dir = mkdtempSync(join(tmpdir(), 'stackha-load-'));
    for (const f of ['multinode', 'globals.yml', 'passwords.yml']) copyFileSync(join(KOLLA, f), join(dir, f));
    chmodSync(join(dir, 'passwords.yml'), mode);
    return dir;
  }

  it('reads the three files of a config directory', () => {
    const d = copyFixture(0o600);
    const dep = loadDeployment(d);
    expect(dep.configDir).toBe(d);
    expect(dep.hosts).toHaveLength(6);
    expect(dep.globals.internalVip).toBe('10.10.0.250');
  });

  it('refuses a passwords.yml readable by group or others', () => {
    const d = copyFixture(0o644);
    const file = join(d, 'passwords.yml');
    expect(() => loadDeployment(d)).toThrowError(
      new RegExp(
        `^passwords\\.yml: mode 0644, must be 0600: run chmod 600 ${file} \\(stackha genpwd also sets 0600\\)$`,
      ),
    );
    chmodSync(file, 0o640);
    expect(() => loadDeployment(d)).toThrowError(
      `passwords.yml: mode 0640 (group-readable, as kolla-genpwd writes it), must be 0600: run chmod 600 ${file} (stackha genpwd also sets 0600)`,
    );
  });

  it('names every missing file, together with the other issues', () => {
    const d = copyFixture(0o644);
    rmSync(join(d, 'multinode'));
    rmSync(join(d, 'globals.yml'));
    try {
      loadDeployment(d);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(InventoryError);
      expect((err as InventoryError).message.split('\n')).toEqual([
        `globals.yml: cannot read ${join(d, 'globals.yml')}: no such file`,
        `multinode: cannot read ${join(d, 'multinode')}: no such file`,
        `passwords.yml: mode 0644, must be 0600: run chmod 600 ${join(d, 'passwords.yml')} (stackha genpwd also sets 0600)`,
      ]);
    }
  });

  it('names a config dir that cannot be used in one line, with the fix', () => {
    const d = copyFixture(0o600);
    const asFile = join(d, 'multinode');
    expect(() => loadDeployment(asFile)).toThrowError(
      new ConfigPathError(
        `config dir ${asFile} is a file, not a directory: pass the directory that holds multinode, globals.yml and passwords.yml`,
      ),
    );
    expect(() => loadDeployment(join(d, 'nope'))).toThrowError(
      `config dir ${join(d, 'nope')} does not exist: create it with multinode, globals.yml and passwords.yml (stackha lab up writes a lab's), or pass -c DIR`,
    );
    expect(() => loadDeployment(join(asFile, 'x'))).toThrowError(
      `config dir ${join(asFile, 'x')}: a part of the path is a file, not a directory; pass the directory that holds multinode, globals.yml and passwords.yml`,
    );
    expect(() => loadDeployment('')).toThrowError(
      'the config dir is empty: pass -c DIR, the directory that holds multinode, globals.yml and passwords.yml',
    );
    try {
      loadDeployment(asFile);
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigPathError);
      expect((err as Error).message).not.toMatch(/ENOTDIR|EISDIR|ENOENT/);
    }
  });

  it('says which file is a directory', () => {
    const d = copyFixture(0o600);
    rmSync(join(d, 'globals.yml'));
    mkdirSync(join(d, 'globals.yml'));
    expect(() => loadDeployment(d)).toThrowError(
      new RegExp(`^globals\\.yml: cannot read ${join(d, 'globals.yml')}: it is a directory, not a file$`),
    );
  });

  it('points to genpwd when passwords.yml is missing', () => {
    const d = copyFixture(0o600);
    rmSync(join(d, 'passwords.yml'));
    expect(() => loadDeployment(d)).toThrowError(
      /^passwords\.yml: cannot read .*: no such file \(run stackha genpwd\)$/,
    );
  });
});

describe('password characters', () => {
  it('refuses a password that would need quoting in a config file, without printing it', async () => {
    const { buildDeployment } = await import('../../src/inventory/load.js');
    const { InventoryError } = await import('../../src/inventory/errors.js');
    const multinode = '[control]\nctl1 ansible_host=198.18.0.11\n';
    const globals = 'kolla_internal_vip_address: 198.18.0.10\n';
    const { PASSWORD_KEYS: keys } = await import('../../src/inventory/load.js');
    const passwords = keys
      .map((k) => `${k}: ${k === 'haproxy_password' ? '"sec ret#word"' : 'fine123'}`)
      .join('\n');
    let err: unknown;
    try {
      buildDeployment({ multinode, globals, passwords }, '/tmp/x', { allowSingle: true });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InventoryError);
    const msg = (err as Error).message;
    expect(msg).toMatch(/passwords\.yml:6 haproxy_password: contains a character/);
    expect(msg).not.toContain('sec ret');
  });
});
