// Keystone's and the API framework's renderers against reviewed golden files, plus the properties the HA design
// depends on, checked directly.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildDeployment } from '../../src/inventory/load.js';
import type { Deployment } from '../../src/model.js';
import {
  cacheSection,
  databaseSection,
  databaseUrl,
  dbStateSql,
  ensureDatabaseSql,
  keystoneAuthtokenSection,
  messagingSections,
  parseDbState,
  proxyHeadersSection,
  renderIni,
  section,
  sqlIdent,
  transportUrl,
} from '../../src/services/api/framework.js';
import { daemonsFile } from '../../src/services/files.js';
import { renderHaproxyCfg, renderListen } from '../../src/services/haproxy/haproxy.js';
import {
  KEYSTONE_DB,
  bootstrapArgs,
  keystoneLoadBalanced,
  renderAdminOpenrc,
  renderCloudsYaml,
  renderKeystone,
  renderKeystoneConf,
  renderKeystoneUwsgi,
} from '../../src/services/keystone/keystone.js';
import { galeraLoadBalanced } from '../../src/services/mariadb/galera.js';
import type { RenderTarget, ServiceUnit } from '../../src/services/types.js';
import { hostByName, hostsFor } from '../../src/topology.js';
import { expectGolden } from './golden.js';

const FIXTURES = join(import.meta.dirname, '../fixtures/render');
const fixture = (name: string): string => readFileSync(join(FIXTURES, name), 'utf8');

function deployment(globals: string, passwords = fixture('passwords.yml')): Deployment {
  return buildDeployment({ multinode: fixture('multinode'), globals, passwords }, '/etc/stackha/demo');
}

const stackha = deployment(fixture('globals.yml'));
const kolla = deployment(fixture('globals-kolla.yml'));
/** Classic mirrored queues instead of quorum queues (with both on, quorum queues win: they ignore ha-* policies). */
const mirrored = deployment(`${fixture('globals-unicast.yml')}om_enable_rabbitmq_quorum_queues: false\n`);
const noMemcached = deployment(`${fixture('globals.yml')}enable_memcached: false\n`);

const VIP = '198.18.0.10';

function at(dep: Deployment, name: string): RenderTarget {
  return { host: hostByName(dep, name) };
}

const json = (value: unknown): string => `${JSON.stringify(value, null, 2)}\n`;

function manifest(unit: ServiceUnit): string {
  return json({
    files: unit.files.map((f) => ({ path: f.path, mode: f.mode?.toString(8), owner: f.owner })),
    dirs: unit.dirs.map((d) => ({ path: d.path, mode: d.mode?.toString(8), owner: d.owner })),
    daemons: unit.daemons,
  });
}

/** `key = value` lines of one [section] of an INI text. */
function ini(text: string, name: string): Map<string, string> {
  const out = new Map<string, string>();
  let inside = false;
  for (const line of text.split('\n')) {
    const h = /^\[(.+)\]$/.exec(line);
    if (h) inside = h[1] === name;
    else if (inside) {
      const m = /^([^#;=\s][^=]*?) = (.*)$/.exec(line);
      if (m?.[1] && m[2] !== undefined) out.set(m[1], m[2]);
    }
  }
  return out;
}

describe('golden files: keystone', () => {
  it('keystone.conf: lab host and real host, quorum queues; kolla profile; mirrored queues; no memcached', () => {
    expectGolden('keystone/keystone.conf.stackha.lab-ctl1', renderKeystoneConf(stackha, at(stackha, 'ctl1')));
    expectGolden('keystone/keystone.conf.kolla.lab-ctl1', renderKeystoneConf(kolla, at(kolla, 'ctl1')));
    expectGolden(
      'keystone/keystone.conf.mirrored.lab-ctl1',
      renderKeystoneConf(mirrored, at(mirrored, 'ctl1')),
    );
    expectGolden(
      'keystone/keystone.conf.no-memcached.lab-ctl1',
      renderKeystoneConf(noMemcached, at(noMemcached, 'ctl1')),
    );
  });

  it('the uwsgi ini, the unit and its daemons file', () => {
    expectGolden('keystone/keystone-uwsgi.ini.lab-ctl1', renderKeystoneUwsgi(stackha, at(stackha, 'ctl1')));
    const unit = renderKeystone(stackha, at(stackha, 'ctl1'));
    expectGolden('keystone/unit.lab-ctl1.json', manifest(unit));
    expectGolden('keystone/daemons.lab-ctl1.json', daemonsFile('keystone', unit).content);
  });

  it('the HAProxy listen section, both profiles, and haproxy.cfg with it', () => {
    const [lb] = keystoneLoadBalanced(stackha);
    const [lbKolla] = keystoneLoadBalanced(kolla);
    expect(lb && lbKolla).toBeTruthy();
    if (!lb || !lbKolla) return;
    expectGolden('keystone/listen.keystone_internal.stackha', renderListen(stackha, lb));
    expectGolden('keystone/listen.keystone_internal.kolla', renderListen(kolla, lbKolla));
    expectGolden(
      'keystone/haproxy.cfg.stackha.lab-ctl1',
      renderHaproxyCfg(stackha, at(stackha, 'ctl1'), [...galeraLoadBalanced(stackha), lb]),
    );
  });

  it('clouds.yaml and admin-openrc.sh', () => {
    expectGolden('keystone/clouds.yaml', renderCloudsYaml(stackha));
    expectGolden('keystone/admin-openrc.sh', renderAdminOpenrc(stackha));
  });

  it('the framework sections as another API service (a Glance-like one) would render them', () => {
    const db = { name: 'glance', user: 'glance', passwordKey: 'glance_database_password' };
    const dep = deployment(
      fixture('globals.yml'),
      // A password with characters a URL must escape.
      fixture('passwords.yml').replace(
        /^glance_database_password: .*$/m,
        'glance_database_password: fake-glance-db@pw/1',
      ),
    );
    const text = renderIni('Rendered for a test of the framework.', [
      section('DEFAULT', [['bind_host', '198.18.0.11']]),
      ...messagingSections(dep, 'messagingv2'),
      databaseSection(dep, db),
      cacheSection(dep),
      keystoneAuthtokenSection(dep, { username: 'glance', passwordKey: 'glance_keystone_password' }),
      section('paste_deploy', [['flavor', 'keystone']]),
      proxyHeadersSection(),
    ]);
    expectGolden('keystone/framework.glance-api.conf', text);
  });
});

describe('keystone.conf properties', () => {
  const t = at(stackha, 'ctl2');
  const conf = renderKeystoneConf(stackha, t);

  it('every path is a host path, the same in the lab and on a machine', () => {
    const paths = [...conf.matchAll(/ = (\/\S*)/g)].map((m) => m[1] ?? '');
    expect(paths.length).toBeGreaterThanOrEqual(5);
    for (const p of paths) expect(/^\/(etc|var)\//.test(p), p).toBe(true);
    expect(conf).not.toContain('stackha/labs');
    expect(ini(conf, 'fernet_tokens').get('key_repository')).toBe('/etc/keystone/fernet-keys/');
    // Auth receipts share the token keys: no key repository in the machine's own /etc/keystone.
    expect(ini(conf, 'fernet_receipts').get('key_repository')).toBe(
      ini(conf, 'fernet_tokens').get('key_repository'),
    );
    expect(ini(conf, 'credential').get('key_repository')).toBe('/etc/keystone/credential-keys/');
  });

  it('Fernet tokens; the database on the VIP; cache in every memcached server and never the VIP', () => {
    expect(ini(conf, 'token').get('provider')).toBe('fernet');
    expect(ini(conf, 'database').get('connection')).toBe(
      `mysql+pymysql://keystone:fake-keystone-database-password@${VIP}:3306/keystone`,
    );
    const cache = ini(conf, 'cache');
    expect(cache.get('enabled')).toBe('true');
    expect(cache.get('backend')).toBe('oslo_cache.memcache_pool');
    expect(cache.get('memcache_servers')).toBe('198.18.0.11:11211,198.18.0.12:11211,198.18.0.13:11211');
    expect(conf).not.toMatch(new RegExp(`${VIP.replace(/\./g, '\\.')}:11211`));
    expect(ini(renderKeystoneConf(noMemcached, t), 'cache').get('enabled')).toBe('false');
  });

  it('a transport URL with every broker (never the VIP), quorum or mirrored queues, no notifications', () => {
    expect(ini(conf, 'DEFAULT').get('transport_url')).toBe(
      'rabbit://openstack:fake-rabbitmq-password@198.18.0.11:5672,openstack:fake-rabbitmq-password@198.18.0.12:5672,' +
        'openstack:fake-rabbitmq-password@198.18.0.13:5672//',
    );
    expect(ini(conf, 'oslo_messaging_rabbit').get('rabbit_quorum_queue')).toBe('true');
    const m = renderKeystoneConf(mirrored, at(mirrored, 'ctl1'));
    expect(ini(m, 'oslo_messaging_rabbit').get('rabbit_quorum_queue')).toBeUndefined();
    expect(ini(m, 'oslo_messaging_rabbit').get('amqp_durable_queues')).toBe('true');
    expect(ini(conf, 'oslo_messaging_notifications').get('driver')).toBe('noop');
  });

  it('is root’s alone (it holds passwords); the key directories are 0700', () => {
    const unit = renderKeystone(stackha, t);
    expect(unit.files.find((f) => f.path === '/etc/keystone/keystone.conf')?.mode).toBe(0o600);
    for (const d of ['/etc/keystone/fernet-keys', '/etc/keystone/credential-keys'])
      expect(unit.dirs.find((x) => x.path === d)?.mode, d).toBe(0o700);
    // Keys are never rendered from the model.
    expect(unit.files.some((f) => f.path.includes('keys/'))).toBe(false);
  });
});

describe('framework helpers', () => {
  it('URL-encodes passwords in the database and transport URLs', () => {
    const dep = deployment(
      fixture('globals.yml'),
      fixture('passwords.yml')
        .replace(/^keystone_database_password: .*$/m, 'keystone_database_password: a@b:c/d%e')
        .replace(/^rabbitmq_password: .*$/m, 'rabbitmq_password: p@ss/w:rd'),
    );
    expect(databaseUrl(dep, KEYSTONE_DB)).toBe(
      `mysql+pymysql://keystone:a%40b%3Ac%2Fd%25e@${VIP}:3306/keystone`,
    );
    expect(transportUrl(dep)).toContain('openstack:p%40ss%2Fw%3Ard@198.18.0.11:5672,');
  });

  it('renders oslo.config INI: merged sections, lists, booleans, empty sections left out', () => {
    expect(
      renderIni('head\n\nline two', [
        section('DEFAULT', [['a', 1]]),
        section('empty', []),
        section('x', [
          ['list', ['p', 'q']],
          ['flag', false],
        ]),
        section('DEFAULT', [['b', 'two']]),
      ]),
    ).toBe('# head\n#\n# line two\n\n[DEFAULT]\na = 1\nb = two\n\n[x]\nlist = p,q\nflag = false\n');
  });

  it('SQL: the database and user statements, the state query and its answer; identifiers are checked', () => {
    expect(ensureDatabaseSql(KEYSTONE_DB, "it's")).toBe(
      [
        'CREATE DATABASE IF NOT EXISTS `keystone`;',
        "CREATE USER IF NOT EXISTS 'keystone'@'%' IDENTIFIED BY 'it\\'s';",
        "ALTER USER 'keystone'@'%' IDENTIFIED BY 'it\\'s';",
        "GRANT ALL PRIVILEGES ON `keystone`.* TO 'keystone'@'%';",
      ].join('\n'),
    );
    expect(dbStateSql(KEYSTONE_DB, 'pw')).toContain("authentication_string=PASSWORD('pw')");
    expect(parseDbState('database\t1\nuser\t0\ntables\t2\n')).toEqual({
      database: true,
      user: false,
      tables: true,
    });
    expect(parseDbState('')).toEqual({ database: false, user: false, tables: false });
    expect(() => sqlIdent('key`stone')).toThrow(/identifier/);
  });

  it('bootstrap: endpoints on the VIP, the password never in its arguments', () => {
    const args = bootstrapArgs(stackha);
    expect(args).toContain(`http://${VIP}:5000`);
    expect(args.join(' ')).not.toContain('fake-keystone-admin-password');
    expect(args).not.toContain('--bootstrap-password');
  });

  it('the listen section: HTTP check on /healthcheck, redispatch on every retry, L7 retries, every host', () => {
    const [lb] = keystoneLoadBalanced(stackha);
    const text = lb ? renderListen(stackha, lb) : '';
    expect(text).toContain(`bind ${VIP}:5000`);
    expect(text).toContain('http-check send meth GET uri /healthcheck');
    expect(text).toContain('option redispatch 1');
    expect(text).toMatch(/^ {2}retries 3$/m);
    expect(text).toMatch(/^ {2}retry-on conn-failure empty-response/m);
    // A dead backend is marked down by two refused client connections (passive), or by three failed checks within
    // about a second (active); a slow answer is not a failure before 5 s.
    expect(text).toContain('observe layer4 error-limit 2 on-error mark-down');
    expect(text).toContain('check inter 500 fastinter 200 downinter 500 rise 2 fall 3');
    expect(text).toMatch(/^ {2}timeout check 5000ms$/m);
    for (const h of stackha.hosts) expect(text).toContain(`server ${h.name} ${h.address}:5000`);
  });

  it('uwsgi binds the host’s own address (HAProxy binds the VIP on the same port)', () => {
    const text = renderKeystoneUwsgi(stackha, at(stackha, 'ctl3'));
    expect(text).toContain('http-socket = 198.18.0.13:5000');
    expect(text).not.toContain(VIP);
    expect(text).toContain('env = OS_KEYSTONE_CONFIG_FILES=/etc/keystone/keystone.conf');
  });
});

describe('enable_keystone', () => {
  const MULTINODE = '[control]\nctl1 ansible_host=10.0.0.11\n';
  const PASSWORDS = fixture('passwords.yml');
  const build = (globals: string, multinode = MULTINODE) =>
    buildDeployment(
      { multinode, globals: `kolla_internal_vip_address: 10.0.0.10\n${globals}`, passwords: PASSWORDS },
      '/x',
      { allowSingle: true },
    );

  it('is on by default, on the [keystone] group or else [control]', () => {
    const dep = build('');
    expect(dep.globals.enabled.keystone).toBe(true);
    expect(hostsFor(dep, 'keystone').map((h) => h.name)).toEqual(['ctl1']);
    const two = build('', `${MULTINODE}ctl2 ansible_host=10.0.0.12\n[keystone]\nctl2\n`);
    expect(hostsFor(two, 'keystone').map((h) => h.name)).toEqual(['ctl2']);
  });

  it('can be switched off, and then its passwords are not required', () => {
    const dep = buildDeployment(
      {
        multinode: MULTINODE,
        globals: 'kolla_internal_vip_address: 10.0.0.10\nenable_keystone: "no"\n',
        passwords: PASSWORDS.replace(/^keystone_.*$/gm, ''),
      },
      '/x',
      { allowSingle: true },
    );
    expect(dep.globals.enabled.keystone).toBe(false);
    expect(hostsFor(dep, 'keystone')).toEqual([]);
    expect(keystoneLoadBalanced(dep)).toEqual([]);
  });

  it('needs MariaDB and HAProxy', () => {
    expect(() => build('enable_haproxy: false\n')).toThrow(
      /globals\.yml enable_keystone: keystone needs enable_haproxy/,
    );
  });
});
