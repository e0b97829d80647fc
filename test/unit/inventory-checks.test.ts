// What `stackha check` refuses or warns about (issue 9): what cannot be highly available, addresses that cannot
// work, what the user probably meant, and never a secret in a message.
import { describe, expect, it } from 'vitest';
import { InventoryError, formatIssue, formatWarning, printable } from '../../src/inventory/errors.js';
import { renderLabInventory } from '../../src/inventory/lab-inventory.js';
import { type ConfigTexts, type LoadOptions, buildWithWarnings } from '../../src/inventory/load.js';
import { PASSWORD_KEYS } from '../../src/inventory/load.js';
import { renderKeystoneConf, renderKeystoneUwsgi } from '../../src/services/keystone/keystone.js';
import { renderMemcached } from '../../src/services/memcached/memcached.js';
import { probeApiEnabled } from '../../src/services/probe-api/probe-api.js';
import { hostsFor } from '../../src/topology.js';

const M3 =
  '[control]\nctl1 ansible_host=10.0.0.11\nctl2 ansible_host=10.0.0.12\nctl3 ansible_host=10.0.0.13\n';
const G = 'kolla_internal_vip_address: 10.0.0.10\n';
const PASSWORDS = PASSWORD_KEYS.map((k) => `${k}: TOPSECRET-${k}\n`).join('');

const files = (o: Partial<ConfigTexts> = {}): ConfigTexts => ({
  multinode: M3,
  globals: G,
  passwords: PASSWORDS,
  ...o,
});

/** The formatted warnings of an inventory that loads. */
function warningsOf(input: ConfigTexts, opts: LoadOptions = {}): string[] {
  const r = buildWithWarnings(input, '/etc/stackha', opts);
  const out = r.warnings.map(formatIssue);
  for (const line of out) expect(line).not.toContain('TOPSECRET');
  return out;
}

/** The formatted errors and warnings of an inventory that is refused. */
function refused(input: ConfigTexts, opts: LoadOptions = {}): { errors: string[]; warnings: string[] } {
  try {
    buildWithWarnings(input, '/etc/stackha', opts);
  } catch (err) {
    expect(err).toBeInstanceOf(InventoryError);
    const e = err as InventoryError;
    const out = { errors: e.issues.map(formatIssue), warnings: e.warnings.map(formatIssue) };
    for (const line of [...out.errors, ...out.warnings, e.message]) expect(line).not.toContain('TOPSECRET');
    return out;
  }
  throw new Error('expected an InventoryError');
}

const ALLOW =
  'add hosts, or, for an evaluation that is not highly available, set stackha_allow_single: true in globals.yml (or pass --allow-single)';
const WIDER =
  'or set stackha_internal_prefix_length in globals.yml if the internal network is wider than /24';

describe('what cannot be highly available is refused, saying why', () => {
  it('refuses one host for Galera, RabbitMQ and the load balancer, with the rule of scale remove', () => {
    expect(refused(files({ multinode: '[control]\nctl1 ansible_host=10.0.0.11\n' })).errors).toEqual([
      `multinode:1 control: mariadb runs on 1 host (ctl1), at least 3 are needed: a single Galera node has no quorum to lose: nothing survives its failure; ${ALLOW}`,
      `multinode:1 control: rabbitmq runs on 1 host (ctl1), at least 3 are needed: a single RabbitMQ node has no quorum to lose: nothing survives its failure; ${ALLOW}`,
      `multinode:1 control: keepalived runs on 1 host (ctl1), at least 2 are needed: with one load balancer the VIP has nowhere to move when it fails; ${ALLOW}`,
    ]);
  });

  it('refuses 2 Galera nodes but not 2 load balancers', () => {
    const multinode = `${M3}[mariadb]\nctl1\nctl2\n[loadbalancer]\nctl1\nctl2\n`;
    expect(refused(files({ multinode })).errors).toEqual([
      `multinode:5 mariadb: mariadb runs on 2 hosts (ctl1, ctl2), at least 3 are needed: a Galera cluster of 2 has no quorum to lose: when either node fails, the other is 1 of 2, not a majority, and stops taking writes; ${ALLOW}`,
    ]);
  });

  it.each([
    ['--allow-single', { allowSingle: true }, G],
    ['stackha_allow_single: true', {}, `${G}stackha_allow_single: true\n`],
  ])('accepts one host with %s, warning that it is not highly available', (_how, opts, globals) => {
    const input = files({ multinode: '[control]\nctl1 ansible_host=10.0.0.11\n', globals });
    expect(warningsOf(input, opts)).toEqual([
      'multinode:1 control: not highly available (allowed by allow-single): mariadb runs on 1 host (ctl1), at least 3 are needed: a single Galera node has no quorum to lose: nothing survives its failure',
      'multinode:1 control: not highly available (allowed by allow-single): rabbitmq runs on 1 host (ctl1), at least 3 are needed: a single RabbitMQ node has no quorum to lose: nothing survives its failure',
      'multinode:1 control: not highly available (allowed by allow-single): keepalived runs on 1 host (ctl1), at least 2 are needed: with one load balancer the VIP has nowhere to move when it fails',
    ]);
  });

  it('allow-single does not accept what cannot work at all', () => {
    const { errors } = refused(
      files({
        multinode: '[control]\nctl1 ansible_host=127.0.0.1\n',
        globals: `${G}stackha_allow_single: yes\n`,
      }),
    );
    expect(errors).toEqual([
      'multinode:2 ctl1: ansible_host: 127.0.0.1 is a loopback address (127.0.0.0/8): every machine has it, so no other host reaches it',
    ]);
  });

  it('warns on an even Galera and RabbitMQ size', () => {
    const warn = (service: string) =>
      `multinode:1 control: ${service}: 4 nodes is an even size: a partition that splits it 2+2 leaves neither side a majority and both stop; an odd size (3, 5) tolerates the same failures without that risk`;
    expect(warningsOf(files({ multinode: `${M3}ctl4 ansible_host=10.0.0.14\n` }))).toEqual([
      warn('mariadb'),
      warn('rabbitmq'),
    ]);
  });

  it('needs RabbitMQ hosts when RabbitMQ is on, and warns when memcached or keystone have none', () => {
    const multinode = `${M3.replace('[control]', '[mariadb]')}[loadbalancer]\nctl1\nctl2\n`;
    const { errors, warnings } = refused(files({ multinode }));
    expect(errors).toEqual([
      'multinode rabbitmq: no hosts for rabbitmq (put hosts in [rabbitmq] or [control], or set enable_rabbitmq: false in globals.yml)',
    ]);
    expect(warnings).toEqual([
      'multinode memcached: no hosts for memcached (put hosts in [memcached] or [control], or set enable_memcached: false in globals.yml): it is not deployed',
      'multinode keystone: no hosts for keystone (put hosts in [keystone] or [control], or set enable_keystone: false in globals.yml): it is not deployed',
    ]);
  });

  it("refuses kolla's all-in-one: no target host", () => {
    const multinode = '[control]\nlocalhost ansible_connection=local\n[network]\nlocalhost\n';
    expect(refused(files({ multinode })).errors).toEqual([
      "multinode: no target hosts: every host is ansible_connection=local, the machine stackha runs on (kolla-ansible's all-in-one); stackha deploys only to hosts it reaches by address: list them with ansible_host=ADDRESS, at least 3 for high availability",
    ]);
  });

  it('says when a controller is dropped for being ansible_connection=local, and what that leaves', () => {
    const left = (n: number) =>
      ['memcached', 'mariadb', 'rabbitmq', 'haproxy', 'keepalived', 'keystone'].map(
        (s) => `${s} on ${n} hosts`,
      );
    expect(warningsOf(files({ multinode: `${M3}localhost ansible_connection=local\n` }))).toEqual([
      `multinode:5 localhost: ansible_connection=local: the machine stackha runs on is not a deployment target, so it is left out of memcached, mariadb, rabbitmq, haproxy, keepalived, keystone; that leaves ${left(3).join(', ')}`,
    ]);
    const two =
      '[control]\nctl1 ansible_host=10.0.0.11\nlocalhost ansible_connection=local\nctl2 ansible_host=10.0.0.12\n';
    const { errors, warnings } = refused(files({ multinode: two }));
    expect(errors[0]).toBe(
      `multinode:1 control: mariadb runs on 2 hosts (ctl1, ctl2), at least 3 are needed (localhost is ansible_connection=local, so not counted): a Galera cluster of 2 has no quorum to lose: when either node fails, the other is 1 of 2, not a majority, and stops taking writes; ${ALLOW}`,
    );
    expect(warnings).toEqual([
      `multinode:3 localhost: ansible_connection=local: the machine stackha runs on is not a deployment target, so it is left out of memcached, mariadb, rabbitmq, haproxy, keepalived, keystone; that leaves ${left(2).join(', ')}`,
    ]);
  });

  it('refuses a service group whose only hosts are local instead of falling back to [control]', () => {
    const { errors } = refused(files({ multinode: `${M3}[mariadb]\nlocalhost ansible_connection=local\n` }));
    expect(errors).toEqual([
      'multinode:5 mariadb: every host of [mariadb] (localhost) is ansible_connection=local, the machine stackha runs on, which is not a deployment target: mariadb would have no host; list its hosts with ansible_host=ADDRESS',
    ]);
  });

  it('the lab inventory passes every check: 3 and 5 hosts without a warning; 1 host opts in and warns', () => {
    const lab = (hostCount: number) => {
      const inv = renderLabInventory({ lab: 'demo', hostCount, subnetPrefix: '198.18.0' });
      return { ...inv, passwords: PASSWORDS };
    };
    expect(warningsOf(lab(3))).toEqual([]);
    expect(warningsOf(lab(5))).toEqual([]);
    expect(lab(1).globals).toContain('\nstackha_allow_single: true\n');
    expect(lab(3).globals).not.toContain('stackha_allow_single');
    // Galera, RabbitMQ and keepalived below their safe size, and Swift with fewer hosts than replicas.
    expect(warningsOf(lab(1))).toHaveLength(4);
    expect(warningsOf(lab(1)).join('\n')).toMatch(/swift-storage runs on 1 host.*cannot hold 3 replicas/);
  });
});

describe('addresses that cannot work', () => {
  it.each([
    ['127.0.0.1', 'a loopback address (127.0.0.0/8): every machine has it, so no other host reaches it'],
    ['0.0.0.0', 'the unspecified address (0.0.0.0): it names no host'],
    ['0.1.2.3', 'in 0.0.0.0/8 ("this network"): it names no host'],
    ['239.1.1.1', 'a multicast address (224.0.0.0/4), not a host address'],
    ['255.255.255.255', 'the broadcast address, not a host address'],
    ['240.0.0.1', 'a reserved address (240.0.0.0/4), not a host address'],
  ])('refuses the host address %s', (address, why) => {
    const { errors } = refused(files({ multinode: M3.replace('10.0.0.13', address) }));
    expect(errors).toEqual([`multinode:4 ctl3: ansible_host: ${address} is ${why}`]);
  });

  it('refuses a host named by a loopback address', () => {
    const { errors } = refused(files({ multinode: `${M3}127.0.0.5\n` }));
    expect(errors).toEqual([
      'multinode:5 127.0.0.5: 127.0.0.5 is a loopback address (127.0.0.0/8): every machine has it, so no other host reaches it',
    ]);
  });

  it.each([
    ['10.0.0.0', 'the network address of 10.0.0.0/24'],
    ['10.0.0.255', 'the broadcast address of 10.0.0.0/24'],
  ])('refuses the VIP %s', (vip, what) => {
    const { errors } = refused(files({ globals: `kolla_internal_vip_address: ${vip}\n` }));
    expect(errors).toEqual([
      `globals.yml:1 kolla_internal_vip_address: ${vip} is ${what} (stackha_internal_prefix_length 24), not a host address`,
    ]);
  });

  it("refuses a VIP outside every load balancer's subnet (hosts have no prefix: /24 unless said otherwise)", () => {
    const { errors } = refused(files({ globals: 'kolla_internal_vip_address: 10.9.0.10\n' }));
    expect(errors).toEqual([
      `globals.yml:1 kolla_internal_vip_address: 10.9.0.10 is outside the /24 subnet of every load balancer (ctl1 10.0.0.11, ctl2 10.0.0.12, ctl3 10.0.0.13): keepalived can hold the VIP only on a host of its subnet; choose an unused address of theirs, ${WIDER}`,
    ]);
    const globals = 'kolla_internal_vip_address: 10.0.9.10\nstackha_internal_prefix_length: 16\n';
    expect(warningsOf(files({ globals }))).toEqual([]);
  });

  it("refuses a load balancer outside the VIP's subnet, once", () => {
    const { errors } = refused(files({ multinode: M3.replace('10.0.0.13', '10.0.1.13') }));
    expect(errors).toEqual([
      `multinode:4 ctl3: 10.0.1.13 is outside 10.0.0.0/24, the VIP's subnet: keepalived could not hold the VIP on this load balancer; move it to that subnet, take it out of the load balancer group, ${WIDER}`,
    ]);
  });

  it('refuses Galera and RabbitMQ nodes on different subnets unless a route is stated', () => {
    const multinode = `${M3.replace('10.0.0.13', '10.0.1.13')}[loadbalancer]\nctl1\nctl2\n`;
    expect(refused(files({ multinode })).errors).toEqual([
      `multinode:4 ctl3: 10.0.1.13 is not in 10.0.0.0/24 with the other mariadb and rabbitmq hosts (ctl1, ctl2): Galera and RabbitMQ nodes must reach each other; if a route joins the subnets, set stackha_internal_routed: true in globals.yml, ${WIDER}`,
    ]);
    expect(warningsOf(files({ multinode, globals: `${G}stackha_internal_routed: true\n` }))).toEqual([]);
  });

  it('refuses a bad stackha_internal_prefix_length', () => {
    const { errors } = refused(files({ globals: `${G}stackha_internal_prefix_length: 33\n` }));
    expect(errors).toEqual([
      'globals.yml:2 stackha_internal_prefix_length: must be a whole number from 8 to 30',
    ]);
  });
});

describe('what the user meant', () => {
  it('warns on unknown globals.yml keys with the closest known key, and says which default applies', () => {
    const globals = [
      G.trim(), // 1
      'enable_haproxyy: no', // 2
      'enable_neutronn: yes', // 3
      'frobnicate: 1', // 4
      'keystone_uwsgi_proceses: 4', // 5
      'Enable_HAProxy: yes', // 6
      'kolla_base_distro: debian', // 7: kolla's
      'nova_api_workers: 4', // 8: a kolla role's setting
      'rabbitmq_server_additional_erl_args: "+S 2:2"', // 9
      '',
    ].join('\n');
    expect(warningsOf(files({ globals }))).toEqual([
      'globals.yml:2 enable_haproxyy: unknown key, ignored: did you mean enable_haproxy? enable_haproxy is not set, so its default (true) applies',
      'globals.yml:3 enable_neutronn: unknown key, ignored: did you mean enable_neutron? enable_neutron is not set, so its default (false) applies',
      'globals.yml:4 frobnicate: unknown key, ignored: neither stackha nor kolla-ansible has it',
      'globals.yml:5 keystone_uwsgi_proceses: unknown key, ignored: did you mean keystone_uwsgi_processes? keystone_uwsgi_processes is not set, so its default (2) applies',
      'globals.yml:6 Enable_HAProxy: unknown key, ignored: did you mean enable_haproxy? enable_haproxy is not set, so its default (true) applies',
    ]);
  });

  it('points a missing VIP to the line of its misspelling', () => {
    const { errors, warnings } = refused(
      files({ globals: '# the VIP\nkolla_internal_vip_adress: 10.0.0.10\n' }),
    );
    expect(errors).toEqual([
      'globals.yml:2 kolla_internal_vip_address: missing (required: the internal VIP, an IPv4 address); line 2 has "kolla_internal_vip_adress": a misspelling of kolla_internal_vip_address?',
    ]);
    expect(warnings).toEqual([]);
  });

  it('points a missing password to the line of its misspelling', () => {
    const passwords = PASSWORDS.replace('database_password:', 'database_pasword:');
    expect(refused(files({ passwords })).errors).toEqual([
      'passwords.yml:2 database_password: missing; line 2 has "database_pasword": a misspelling of database_password? (rename it, or run stackha genpwd)',
    ]);
  });

  it('validates every documented setting with its type and range', () => {
    const globals = [
      G.trim(),
      'fernet_token_expiry: "one day"',
      'keystone_uwsgi_processes: 0',
      'keystone_uwsgi_threads: x',
      'memcached_max_memory: lots',
      'memcached_connection_limit: -1',
      'enable_stackha_probe_api: maybe',
      'fernet_token_expiry_x: 1',
      '',
    ].join('\n');
    const { errors } = refused(files({ globals }));
    expect(errors).toEqual([
      'globals.yml:2 fernet_token_expiry: must be a whole number of seconds from 60 to 31536000',
      'globals.yml:3 keystone_uwsgi_processes: must be a whole number from 1 to 64',
      'globals.yml:4 keystone_uwsgi_threads: must be a whole number from 1 to 64',
      'globals.yml:5 memcached_max_memory: must be a whole number of megabytes from 1 to 1048576',
      'globals.yml:6 memcached_connection_limit: must be a whole number from 1 to 1000000',
      'globals.yml:7 enable_stackha_probe_api: must be a boolean (true/false or "yes"/"no")',
    ]);
  });

  it('uses valid settings, written as kolla writes them, where they are rendered', () => {
    const globals = [
      G.trim(),
      'fernet_token_expiry: "3600"',
      'keystone_uwsgi_processes: 3',
      'keystone_uwsgi_threads: "4"',
      'memcached_max_memory: "512"',
      'memcached_connection_limit: 100',
      'stackha_lab: demo',
      'enable_stackha_probe_api: "no"',
      '',
    ].join('\n');
    const dep = buildWithWarnings(files({ globals }), '/x').deployment;
    const t = { host: hostsFor(dep, 'keystone')[0]!, root: '' };
    expect(renderKeystoneConf(dep, t)).toMatch(/^expiration = 3600$/m);
    expect(renderKeystoneUwsgi(dep, t)).toMatch(/^processes = 3$/m);
    expect(renderKeystoneUwsgi(dep, t)).toMatch(/^threads = 4$/m);
    const argv = renderMemcached(dep, t).daemons[0]!.argv;
    expect(argv.slice(argv.indexOf('-m'), argv.indexOf('-m') + 2)).toEqual(['-m', '512']);
    expect(argv.slice(argv.indexOf('-c'), argv.indexOf('-c') + 2)).toEqual(['-c', '100']);
    // "no" is false: before, any value but the boolean false kept the probe API on.
    expect(probeApiEnabled(dep)).toBe(false);
  });

  it("reads stackha's old memcached_memory_mb with a warning to rename it", () => {
    const input = files({ globals: `${G}memcached_memory_mb: 128\n` });
    expect(warningsOf(input)).toEqual([
      "globals.yml:2 memcached_memory_mb: renamed memcached_max_memory (kolla-ansible's name): the value is used, but rename the key",
    ]);
    expect(buildWithWarnings(input, '/x').deployment.globals.settings.memcached_max_memory).toBe(128);
  });

  it('refuses templates where stackha reads the value, and only there', () => {
    const multinode = M3.replace('ctl3 ansible_host=10.0.0.13', 'ctl3 ansible_host="{{ ctl3_address }}"');
    const globals = [
      G.trim(),
      'network_interface: "{{ iface }}"',
      'enable_haproxy: "{{ not_a_value }}"',
      'kolla_external_vip_address: "{{ kolla_internal_vip_address }}"',
      '',
    ].join('\n');
    expect(refused(files({ multinode, globals })).errors).toEqual([
      'globals.yml:2 network_interface: templates are not supported here: write the value',
      "globals.yml:3 enable_haproxy: templates are not supported here: write the value (or remove the key: stackha's default is true)",
      'multinode:4 ctl3: ansible_host: templates are not supported here: write the value',
    ]);
  });

  it('honours per-host network_interface and api_interface, on host lines and in [group:vars]', () => {
    const multinode = `${M3.replace('ctl2 ansible_host=10.0.0.12', 'ctl2 ansible_host=10.0.0.12 api_interface=ens4')}[control:vars]\nnetwork_interface=eth1\n`;
    const dep = buildWithWarnings(files({ multinode }), '/x').deployment;
    expect(dep.hosts.map((h) => [h.name, h.networkInterface, h.apiInterface])).toEqual([
      ['ctl1', 'eth1', 'eth1'],
      ['ctl2', 'eth1', 'ens4'],
      ['ctl3', 'eth1', 'eth1'],
    ]);
  });

  it('lets globals.yml win, as in kolla-ansible, and warns that the host value has no effect', () => {
    const multinode = M3.replace(
      'ctl3 ansible_host=10.0.0.13',
      'ctl3 ansible_host=10.0.0.13 api_interface=eth3',
    );
    const input = files({ multinode, globals: `${G}api_interface: eth1\n` });
    expect(warningsOf(input)).toEqual([
      'multinode:4 ctl3: api_interface=eth3 has no effect: globals.yml sets api_interface (line 2), which wins, as in kolla-ansible (globals.yml is extra vars); remove it from globals.yml to set it per host',
    ]);
    expect(buildWithWarnings(input, '/x').deployment.hosts.map((h) => h.apiInterface)).toEqual([
      'eth1',
      'eth1',
      'eth1',
    ]);
  });

  it('refuses a bad per-host interface name', () => {
    const multinode = M3.replace(
      'ctl3 ansible_host=10.0.0.13',
      'ctl3 ansible_host=10.0.0.13 network_interface=a/b',
    );
    expect(refused(files({ multinode })).errors).toEqual([
      'multinode:4 ctl3: network_interface: must be a network interface name (1-15 characters, no spaces, "/" or ":")',
    ]);
  });

  it('refuses an Ansible YAML inventory in one line', () => {
    const multinode =
      '---\nall:\n  children:\n    control:\n      hosts:\n        ctl1:\n          ansible_host: 10.0.0.11\n';
    expect(refused(files({ multinode }))).toEqual({
      errors: [
        "multinode: only the INI format is supported, and this looks like an Ansible YAML inventory: write it as INI, like kolla-ansible's multinode ([control] then one host per line, [mariadb:children] then control, ...)",
      ],
      warnings: [],
    });
    expect(refused(files({ multinode: '# hosts\nall:\n  hosts:\n' })).errors).toHaveLength(1);
  });

  it('refuses a password indented under another key instead of taking it as its value', () => {
    const passwords = PASSWORDS.replace(
      'mariadb_backup_database_password: TOPSECRET-mariadb_backup_database_password\nrabbitmq_password:',
      'mariadb_backup_database_password:\n  rabbitmq_password:',
    );
    expect(refused(files({ passwords })).errors).toEqual([
      'passwords.yml:3 mariadb_backup_database_password: must be a string, not a map of the keys indented under it',
      "passwords.yml:4 rabbitmq_password: indented under mariadb_backup_database_password (line 3), so it is part of mariadb_backup_database_password's value, not a key of its own: remove the indentation",
    ]);
  });
});

describe('no secret in any message', () => {
  const WRAPPED =
    '(if this line is the rest of ansible_become_password on line 2, wrapped, join the two lines)';

  it.each([
    ['an empty value', 'ansible_become_password=\nS3cr3tWrapped'],
    ['a value cut in two', 'ansible_become_password=S3cr3t\nWrappedRest'],
  ])('never prints a wrapped secret that lands where a host name is expected (%s)', (_case, wrapped) => {
    const multinode = `[control]\nctl1 ansible_host=10.0.0.11 ${wrapped}\nctl2 ansible_host=10.0.0.12\nctl3 ansible_host=10.0.0.13\n`;
    const { errors, warnings } = refused(files({ multinode }));
    expect(errors).toEqual([
      `multinode:3: ansible_host: missing (needs the host's internal IPv4 address) ${WRAPPED}`,
    ]);
    for (const line of [...errors, ...warnings]) {
      expect(line).not.toContain('S3cr3t');
      expect(line).not.toContain('Wrapped');
    }
  });

  it('names a possibly wrapped host by its line in every other message', () => {
    const multinode = '[control]\nctl1 ansible_host=10.0.0.11 ansible_become_password=\nS3cr3tWrapped\n';
    const { errors } = refused(files({ multinode }));
    expect(errors.join('\n')).toContain('(ctl1, the host on line 3)');
    expect(errors.join('\n')).not.toContain('S3cr3t');
  });

  it('does not print a host name that is not valid, it may be a misplaced secret', () => {
    const { errors } = refused(files({ multinode: `${M3}P@ss!w0rd-secret\n` }));
    expect(errors).toEqual([
      'multinode:5: the host name on this line is not valid (letters, digits, ".", "-" and "_", starting with a letter or digit); it is not printed, as it may be a misplaced secret',
      "multinode:5: ansible_host: missing (needs the host's internal IPv4 address)",
    ]);
  });

  it('does not quote a host range that may be a secret', () => {
    const { errors } = refused(files({ multinode: `${M3}pa[ss$word\n` }));
    expect(errors).toEqual(['multinode:5: unbalanced brackets in the host range on this line']);
  });

  it('escapes control characters: an ANSI escape never reaches the terminal', () => {
    const { errors } = refused(files({ multinode: `${M3}[bad\x1b[2J\n` }));
    expect(errors).toEqual([
      'multinode:5: malformed section header [bad\\x1b[2J (expected [group], [group:children] or [group:vars])',
    ]);
    const globals = `${G}"evil\\e[2Jkey": 1\n`;
    expect(warningsOf(files({ globals }))).toEqual([
      'globals.yml:2 evil\\x1b[2Jkey: unknown key, ignored: neither stackha nor kolla-ansible has it',
    ]);
    expect(printable('a\u2028b\x00c\x9bd')).toBe('a\\u2028b\\x00c\\x9bd');
  });

  it('cuts long lines: a 10 MB line gives a short message', () => {
    const huge = `${M3}[${'a'.repeat(10_000_000)}\n`;
    const { errors } = refused(files({ multinode: huge }));
    expect(errors).toHaveLength(1);
    expect(errors[0]!.length).toBeLessThan(200);
    expect(errors[0]).toMatch(/^multinode:5: malformed section header \[a+… \(expected/);
  });

  it('never prints a password value, whatever is wrong with it', () => {
    const passwords = `${PASSWORDS.replace('haproxy_password: TOPSECRET-haproxy_password', 'haproxy_password: "TOPSECRET has spaces"')}extra: [TOPSECRET]\n`;
    const { errors } = refused(files({ passwords }));
    expect(errors).toEqual([
      'passwords.yml:6 haproxy_password: contains a character stackha cannot put in every config file safely (use letters, digits and . _ ~ ^ * + = @ % ! , : / -)',
    ]);
    expect(formatWarning({ file: 'x', line: 1, field: 'k', message: 'm' })).toBe('warning: x:1 k: m');
  });
});

describe('[group:vars] interfaces', () => {
  it('reports a bad [group:vars] interface once, not once per host', () => {
    const multinode = `${M3}[control:vars]\napi_interface="{{ x }}"\n`;
    expect(refused(files({ multinode })).errors).toEqual([
      'multinode:6 ctl1: api_interface: templates are not supported here: write the value',
    ]);
    const warned = warningsOf(
      files({ multinode: `${M3}[control:vars]\napi_interface=eth3\n`, globals: `${G}api_interface: eth1\n` }),
    );
    expect(warned).toHaveLength(1);
  });
});
