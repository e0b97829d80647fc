// Every renderer's output against a reviewed golden file, plus the properties the HA design depends on, checked
// directly so that a golden file regenerated without care still cannot hide a broken invariant.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildDeployment } from '../../src/inventory/load.js';
import type { Deployment, HostSpec } from '../../src/model.js';
import { daemonsFile } from '../../src/services/files.js';
import { renderHaproxy, renderHaproxyCfg, renderListen } from '../../src/services/haproxy/haproxy.js';
import {
  galeraLoadBalanced,
  renderGalera,
  renderGaleraHealth,
  renderMyCnf,
} from '../../src/services/mariadb/galera.js';

import {
  renderCheckScript,
  renderKeepalived,
  renderKeepalivedConf,
} from '../../src/services/keepalived/keepalived.js';
import { memcachedServers, renderMemcached } from '../../src/services/memcached/memcached.js';
import {
  rabbitEnv,
  rabbitPasswordHash,
  renderDefinitions,
  renderRabbitmq,
  renderRabbitmqConf,
} from '../../src/services/rabbitmq/rabbitmq.js';
import type { RenderTarget, ServiceUnit } from '../../src/services/types.js';
import { hostByName } from '../../src/topology.js';
import { expectGolden } from './golden.js';

const FIXTURES = join(import.meta.dirname, '../fixtures/render');
const fixture = (name: string): string => readFileSync(join(FIXTURES, name), 'utf8');

/** The render fixture's deployment with one of its globals variants. */
function deployment(globals: 'globals.yml' | 'globals-kolla.yml' | 'globals-unicast.yml'): Deployment {
  return buildDeployment(
    { multinode: fixture('multinode'), globals: fixture(globals), passwords: fixture('passwords.yml') },
    '/etc/stackha',
  );
}

const stackha = deployment('globals.yml');
const kolla = deployment('globals-kolla.yml');
const unicast = deployment('globals-unicast.yml');

const HOSTS = ['ctl1', 'ctl2', 'ctl3'] as const;
const VIP = '198.18.0.10';
const AGENT = ['/usr/bin/node', '/opt/stackha/dist/agents/galera-health.js'];

/** A host's render target: host paths, the same in the lab and on a machine. */
function at(dep: Deployment, name: string): RenderTarget {
  return { host: hostByName(dep, name) };
}

const json = (value: unknown): string => `${JSON.stringify(value, null, 2)}\n`;

/** A unit without file contents (those have their own golden files): paths, modes, owners, dirs and daemons. */
function manifest(unit: ServiceUnit): string {
  return json({
    files: unit.files.map((f) => ({ path: f.path, mode: f.mode?.toString(8), owner: f.owner })),
    dirs: unit.dirs.map((d) => ({ path: d.path, mode: d.mode?.toString(8), owner: d.owner })),
    daemons: unit.daemons,
  });
}

/** Every unit a host of the deployment gets, by service. */
function unitsOf(dep: Deployment, t: RenderTarget): Record<string, ServiceUnit> {
  return {
    memcached: renderMemcached(dep, t),
    mariadb: renderGalera(dep, t),
    'galera-health': renderGaleraHealth(dep, t, AGENT),
    rabbitmq: renderRabbitmq(dep, t),
    haproxy: renderHaproxy(dep, t, galeraLoadBalanced(dep)),
    keepalived: renderKeepalived(dep, t),
  };
}

/** The lines of the section starting at `header` (e.g. `listen mariadb`) up to the next blank line. */
function section(text: string, header: string): string[] {
  const lines = text.split('\n');
  const start = lines.indexOf(header);
  expect(start, `no "${header}" section`).toBeGreaterThanOrEqual(0);
  const end = lines.findIndex((l, i) => i > start && l.trim() === '');
  return lines.slice(start, end === -1 ? undefined : end);
}

function priorityOf(conf: string): number {
  const m = /^ {2}priority (\d+)$/m.exec(conf);
  expect(m, 'no priority line').not.toBeNull();
  return Number(m?.[1]);
}

describe('fixture', () => {
  it('is the fixed 3-host demo lab inventory with its three variants', () => {
    for (const dep of [stackha, kolla, unicast]) {
      expect(dep.hosts.map((h) => [h.name, h.address])).toEqual([
        ['ctl1', '198.18.0.11'],
        ['ctl2', '198.18.0.12'],
        ['ctl3', '198.18.0.13'],
      ]);
      expect(dep.globals.internalVip).toBe(VIP);
      expect(dep.globals.lab).toBe('demo');
    }
    expect([stackha.tuning.profile, kolla.tuning.profile, unicast.tuning.profile]).toEqual([
      'stackha',
      'kolla',
      'stackha',
    ]);
    expect(stackha.globals.keepalivedUnicastPeers).toBe(false);
    expect(stackha.globals.rabbitmqMirroredQueues).toBe(false);
    expect(unicast.globals.keepalivedUnicastPeers).toBe(true);
    expect(unicast.globals.rabbitmqMirroredQueues).toBe(true);
  });
});

describe('golden files', () => {
  describe('mariadb', () => {
    it('my.cnf, both profiles', () => {
      expectGolden('mariadb/my.cnf.stackha.lab-ctl1', renderMyCnf(stackha, at(stackha, 'ctl1')));
      expectGolden('mariadb/my.cnf.kolla.lab-ctl1', renderMyCnf(kolla, at(kolla, 'ctl1')));
    });

    it('the mariadb unit and the Galera health daemon', () => {
      expectGolden('mariadb/unit.lab-ctl1.json', manifest(renderGalera(stackha, at(stackha, 'ctl1'))));
      expectGolden(
        'mariadb/galera-health.lab-ctl1.json',
        json(renderGaleraHealth(stackha, at(stackha, 'ctl1'), AGENT)),
      );
    });
  });

  describe('rabbitmq', () => {
    it('rabbitmq.conf, both profiles', () => {
      expectGolden(
        'rabbitmq/rabbitmq.conf.stackha.lab-ctl1',
        renderRabbitmqConf(stackha, at(stackha, 'ctl1')),
      );
      expectGolden('rabbitmq/rabbitmq.conf.kolla.lab-ctl1', renderRabbitmqConf(kolla, at(kolla, 'ctl1')));
    });

    it('definitions.json, without and with mirrored queues', () => {
      expectGolden('rabbitmq/definitions.quorum.json', renderDefinitions(stackha));
      expectGolden('rabbitmq/definitions.mirrored.json', renderDefinitions(unicast));
    });

    it('the node environment and the unit', () => {
      expectGolden('rabbitmq/env.lab-ctl1.json', json(rabbitEnv(at(stackha, 'ctl1'))));
      expectGolden('rabbitmq/unit.lab-ctl1.json', manifest(renderRabbitmq(stackha, at(stackha, 'ctl1'))));
    });
  });

  describe('haproxy', () => {
    it('haproxy.cfg, both profiles', () => {
      expectGolden(
        'haproxy/haproxy.cfg.stackha.lab-ctl1',
        renderHaproxyCfg(stackha, at(stackha, 'ctl1'), galeraLoadBalanced(stackha)),
      );
      expectGolden(
        'haproxy/haproxy.cfg.kolla.lab-ctl1',
        renderHaproxyCfg(kolla, at(kolla, 'ctl1'), galeraLoadBalanced(kolla)),
      );
    });

    it('an HTTP API listen section', () => {
      const keystone = renderListen(stackha, {
        name: 'keystone_internal',
        mode: 'http',
        bind: { address: VIP, port: 5000 },
        servers: stackha.hosts.map((h) => ({ name: h.name, address: h.address, port: 5000 })),
        httpCheck: { path: '/v3' },
        extra: ['balance roundrobin'],
      });
      expectGolden('haproxy/listen.keystone_internal.stackha', keystone);
    });

    it('the unit', () => {
      expectGolden(
        'haproxy/unit.lab-ctl1.json',
        manifest(renderHaproxy(stackha, at(stackha, 'ctl1'), galeraLoadBalanced(stackha))),
      );
    });
  });

  describe('keepalived', () => {
    it('keepalived.conf: stackha ctl1 and ctl3, kolla ctl1, unicast peers ctl1', () => {
      expectGolden(
        'keepalived/keepalived.conf.stackha.lab-ctl1',
        renderKeepalivedConf(stackha, at(stackha, 'ctl1')),
      );
      expectGolden(
        'keepalived/keepalived.conf.stackha.lab-ctl3',
        renderKeepalivedConf(stackha, at(stackha, 'ctl3')),
      );
      expectGolden(
        'keepalived/keepalived.conf.kolla.lab-ctl1',
        renderKeepalivedConf(kolla, at(kolla, 'ctl1')),
      );
      expectGolden(
        'keepalived/keepalived.conf.unicast.lab-ctl1',
        renderKeepalivedConf(unicast, at(unicast, 'ctl1')),
      );
    });

    it('check_haproxy.sh and the unit', () => {
      expectGolden('keepalived/check_haproxy.sh.lab-ctl1', renderCheckScript(at(stackha, 'ctl1')));
      expectGolden('keepalived/unit.lab-ctl1.json', manifest(renderKeepalived(stackha, at(stackha, 'ctl1'))));
    });
  });

  describe('memcached', () => {
    it('the daemon argv and the server list', () => {
      expectGolden('memcached/unit.lab-ctl1.json', manifest(renderMemcached(stackha, at(stackha, 'ctl1'))));
      expectGolden('memcached/memcached_servers.json', json(memcachedServers(stackha)));
    });
  });

  it('the daemons file a deploy writes', () => {
    expectGolden(
      'daemons/haproxy.lab-ctl1.json',
      daemonsFile('haproxy', unitsOf(stackha, at(stackha, 'ctl1')).haproxy!).content,
    );
  });
});

describe('keepalived.conf', () => {
  const prioritiesOf = (dep: Deployment): number[] =>
    HOSTS.map((n) => priorityOf(renderKeepalivedConf(dep, at(dep, n))));

  it('stackha profile: priorities 150/100/50, far apart, the first host highest', () => {
    const p = prioritiesOf(stackha);
    expect(p).toEqual([150, 100, 50]);
    for (let i = 1; i < p.length; i++) expect(p[i - 1]! - p[i]!).toBeGreaterThanOrEqual(50);
  });

  it('kolla profile: distinct priorities, the first host highest', () => {
    const p = prioritiesOf(kolla);
    expect(new Set(p).size).toBe(p.length);
    expect(p).toEqual([...p].sort((a, b) => b - a));
    for (const v of p) expect(v).toBeGreaterThanOrEqual(1);
  });

  it('every profile keeps priorities within 1-254 (255 is reserved for the address owner)', () => {
    for (const dep of [stackha, kolla, unicast]) {
      for (const n of HOSTS) {
        const v = priorityOf(renderKeepalivedConf(dep, at(dep, n)));
        expect(v).toBeGreaterThanOrEqual(1);
        expect(v).toBeLessThanOrEqual(254);
      }
    }
  });

  it('kolla profile: VRRPv2 with an authentication block whose auth_pass has at most 8 characters', () => {
    const conf = renderKeepalivedConf(kolla, at(kolla, 'ctl1'));
    expect(conf).toMatch(/^ {2}vrrp_version 2$/m);
    expect(conf).toMatch(/^ {2}advert_int 1$/m);
    expect(conf).toMatch(/^ {2}authentication \{\n {4}auth_type PASS\n {4}auth_pass \S+\n {2}\}$/m);
    const pass = /^ {4}auth_pass (\S+)$/m.exec(conf)?.[1] ?? '';
    expect(pass.length).toBeGreaterThan(0);
    expect(pass.length).toBeLessThanOrEqual(8);
    expect(kolla.passwords.keepalived_password?.startsWith(pass)).toBe(true);
  });

  it('stackha profile: VRRPv3 with sub-second adverts and no authentication block', () => {
    for (const dep of [stackha, unicast]) {
      const conf = renderKeepalivedConf(dep, at(dep, 'ctl1'));
      expect(conf).toMatch(/^ {2}vrrp_version 3$/m);
      expect(conf).toMatch(/^ {2}advert_int 0\.2$/m);
      expect(conf).not.toContain('authentication');
      expect(conf).not.toContain('auth_pass');
    }
  });

  it('every host is BACKUP with nopreempt, on the same router id, holding the VIP as a /32', () => {
    for (const n of HOSTS) {
      const conf = renderKeepalivedConf(stackha, at(stackha, n));
      expect(conf).toMatch(/^ {2}state BACKUP$/m);
      expect(conf).toMatch(/^ {2}nopreempt$/m);
      expect(conf).toMatch(/^ {2}virtual_router_id 51$/m);
      expect(conf).toContain(`    ${VIP}/32 dev eth0\n`);
      expect(conf).toContain('  script "/etc/keepalived/check_haproxy.sh"\n');
    }
  });

  it('unicast peers: the host itself as the source and every other host as a peer', () => {
    const conf = renderKeepalivedConf(unicast, at(unicast, 'ctl2'));
    expect(conf).toContain('  unicast_src_ip 198.18.0.12\n');
    expect(conf).toContain('  unicast_peer {\n    198.18.0.11\n    198.18.0.13\n  }\n');
    expect(renderKeepalivedConf(stackha, at(stackha, 'ctl2'))).not.toContain('unicast');
  });

  it('check_haproxy.sh connects to the local HAProxy stats port', () => {
    expect(renderCheckScript(at(stackha, 'ctl3'))).toContain('exec 3<>/dev/tcp/198.18.0.13/1984\n');
  });
});

describe('haproxy.cfg', () => {
  const cfgOf = (dep: Deployment, name = 'ctl1'): string =>
    renderHaproxyCfg(dep, at(dep, name), galeraLoadBalanced(dep));

  it('mariadb: binds VIP:3306 with exactly one active server and the rest backup', () => {
    for (const dep of [stackha, kolla]) {
      const lines = section(cfgOf(dep), 'listen mariadb');
      expect(lines).toContain(`  bind ${VIP}:3306`);
      const servers = lines.filter((l) => l.startsWith('  server '));
      expect(servers.map((l) => l.split(' ')[3])).toEqual(HOSTS.map((n) => n));
      const active = servers.filter((l) => !l.endsWith(' backup'));
      expect(active).toEqual(['  server ctl1 198.18.0.11:3306']);
      expect(servers.filter((l) => l.endsWith(' backup'))).toHaveLength(HOSTS.length - 1);
    }
  });

  it('mariadb: checks the Galera health endpoint on port 4569', () => {
    for (const dep of [stackha, kolla]) {
      const lines = section(cfgOf(dep), 'listen mariadb');
      expect(lines).toContain('  option httpchk');
      const defaults = lines.find((l) => l.startsWith('  default-server '));
      expect(defaults).toMatch(/ port 4569( |$)/);
      expect(defaults).toContain(' on-marked-up shutdown-backup-sessions');
    }
  });

  it('on-marked-down shutdown-sessions and fast checks only in the stackha profile', () => {
    const fast = section(cfgOf(stackha), 'listen mariadb').find((l) => l.startsWith('  default-server '));
    const slow = section(cfgOf(kolla), 'listen mariadb').find((l) => l.startsWith('  default-server '));
    expect(fast).toContain(' on-marked-down shutdown-sessions');
    expect(fast).toContain('check inter 200 rise 2 fall 2');
    expect(slow).not.toContain('shutdown-sessions ');
    expect(slow).not.toContain('on-marked-down');
    expect(slow).toContain('check inter 2000 rise 2 fall 5');
  });

  it('the stats listener binds the host address, never the VIP, and the socket lives under the root', () => {
    for (const n of HOSTS) {
      const host = hostByName(stackha, n);
      const lines = section(cfgOf(stackha, n), 'listen stats');
      expect(lines).toContain(`  bind ${host.address}:1984`);
      expect(cfgOf(stackha, n)).toContain(
        '  stats socket /run/haproxy/admin.sock mode 600 level admin expose-fd listeners\n',
      );
    }
  });

  it('the daemon runs master-worker in the foreground on the rendered file', () => {
    const unit = renderHaproxy(stackha, at(stackha, 'ctl2'), galeraLoadBalanced(stackha));
    expect(unit.daemons.map((d) => d.argv)).toEqual([
      ['/usr/sbin/haproxy', '-W', '-db', '-f', '/etc/haproxy/haproxy.cfg'],
    ]);
  });
});

describe('memcached', () => {
  it('binds the host address with UDP off, never the VIP or 0.0.0.0', () => {
    for (const n of HOSTS) {
      const host: HostSpec = hostByName(stackha, n);
      const argv = renderMemcached(stackha, at(stackha, n)).daemons[0]?.argv ?? [];
      const l = argv.indexOf('-l');
      expect(l).toBeGreaterThan(0);
      expect(argv[l + 1]).toBe(host.address);
      expect(argv).not.toContain(VIP);
      expect(argv).not.toContain('0.0.0.0');
      expect(argv.some((a) => a.includes(','))).toBe(false);
      const u = argv.indexOf('-U');
      expect(u).toBeGreaterThan(0);
      expect(argv[u + 1]).toBe('0');
    }
  });

  it('memcached_servers lists every memcached host on 11211', () => {
    expect(memcachedServers(stackha)).toEqual([
      '198.18.0.11:11211',
      '198.18.0.12:11211',
      '198.18.0.13:11211',
    ]);
  });
});

describe('my.cnf', () => {
  const providerOptions = (conf: string): string[] => {
    const m = /^wsrep_provider_options = "(.*)"$/m.exec(conf);
    expect(m, 'no wsrep_provider_options').not.toBeNull();
    return (m?.[1] ?? '').split('; ');
  };

  it('stackha profile: evs keepalive_period, then suspect_timeout, then inactive_timeout', () => {
    const opts = providerOptions(renderMyCnf(stackha, at(stackha, 'ctl1')));
    const idx = (key: string): number => opts.findIndex((o) => o.startsWith(`${key}=`));
    const keepalive = idx('evs.keepalive_period');
    const suspect = idx('evs.suspect_timeout');
    const inactive = idx('evs.inactive_timeout');
    expect(keepalive).toBeGreaterThanOrEqual(0);
    expect(keepalive).toBeLessThan(suspect);
    expect(suspect).toBeLessThan(inactive);
    // install_timeout may not exceed inactive_timeout, so it is set after it.
    expect(idx('evs.install_timeout')).toBeGreaterThan(inactive);
  });

  it('stackha profile: keepalive_period under a third of suspect_timeout, suspect <= inactive', () => {
    const opts = new Map(
      providerOptions(renderMyCnf(stackha, at(stackha, 'ctl1'))).map((o) => o.split('=') as [string, string]),
    );
    const seconds = (iso: string | undefined): number => Number(/^PT([\d.]+)S$/.exec(iso ?? '')?.[1]);
    const keepalive = seconds(opts.get('evs.keepalive_period'));
    const suspect = seconds(opts.get('evs.suspect_timeout'));
    const inactive = seconds(opts.get('evs.inactive_timeout'));
    const install = seconds(opts.get('evs.install_timeout'));
    expect(keepalive).toBeLessThan(suspect / 3);
    expect(suspect).toBeLessThanOrEqual(inactive);
    expect(install).toBeLessThanOrEqual(inactive);
  });

  it("kolla profile: no evs options (Galera's defaults)", () => {
    expect(renderMyCnf(kolla, at(kolla, 'ctl1'))).not.toContain('evs.');
  });

  it('the gcomm list names every host; the node binds its own address', () => {
    for (const n of HOSTS) {
      const conf = renderMyCnf(stackha, at(stackha, n));
      const gcomm = /^wsrep_cluster_address = gcomm:\/\/(.*)$/m.exec(conf)?.[1]?.split(',') ?? [];
      expect(gcomm).toEqual(stackha.hosts.map((h) => `${h.address}:4567`));
      const address = hostByName(stackha, n).address;
      expect(conf).toContain(`\nbind-address = ${address}\n`);
      expect(conf).toContain(`\nwsrep_node_name = ${n}\n`);
      expect(conf).toContain(`\nwsrep_node_address = ${address}:4567\n`);
      expect(providerOptions(conf)).toContain(`gmcast.listen_addr=tcp://${address}:4567`);
    }
  });

  it('paths are host paths, the same in the lab and on a machine', () => {
    const real = renderMyCnf(stackha, at(stackha, 'ctl1'));
    expect(real).toContain('datadir = /var/lib/mysql\n');
    expect(real).toContain('socket = /run/mysqld/mysqld.sock\n');
    expect(real).not.toContain('stackha/labs');
  });
});

describe('file modes', () => {
  const secrets = Object.entries(stackha.passwords).map(([, v]) => v);

  it('files holding secrets are not readable by group or others', () => {
    const byPath = new Map<string, number | undefined>();
    for (const dep of [stackha, kolla, unicast]) {
      for (const unit of Object.values(unitsOf(dep, at(dep, 'ctl1')))) {
        for (const f of unit.files) {
          byPath.set(f.path, f.mode);
          if (secrets.some((s) => s.length > 0 && f.content.includes(s))) {
            expect((f.mode ?? 0o644) & 0o077, `${f.path} holds a secret`).toBe(0);
          }
        }
      }
    }
    expect(byPath.get('/etc/rabbitmq/rabbitmq.conf')).toBe(0o600);
    expect(byPath.get('/etc/rabbitmq/definitions.json')).toBe(0o600);
    expect(byPath.get('/var/lib/rabbitmq/.erlang.cookie')).toBe(0o400);
    expect(byPath.get('/etc/haproxy/haproxy.cfg')).toBe(0o600);
    expect(byPath.get('/etc/keepalived/keepalived.conf')).toBe(0o600);
    // The track script must be executable (and, for enable_script_security, not writable by others).
    expect(byPath.get('/etc/keepalived/check_haproxy.sh')).toBe(0o755);
  });

  it('no secret reaches a daemon argv, environment or the daemons file', () => {
    for (const dep of [stackha, kolla, unicast]) {
      for (const [service, unit] of Object.entries(unitsOf(dep, at(dep, 'ctl1')))) {
        const exposed = daemonsFile(service, unit).content;
        for (const s of secrets)
          expect(exposed.includes(s), `${service} daemon exposes a secret`).toBe(false);
      }
    }
  });
});

describe('rendering is deterministic', () => {
  it('rendering twice gives the same files and daemons', () => {
    for (const dep of [stackha, kolla, unicast]) {
      for (const n of HOSTS) {
        const t = at(dep, n);
        expect(json(unitsOf(dep, t))).toBe(json(unitsOf(dep, t)));
      }
    }
  });

  it('a Deployment built again from the same files renders the same', () => {
    const again = deployment('globals.yml');
    const t1 = at(stackha, 'ctl2');
    const t2 = at(again, 'ctl2');
    expect(json(unitsOf(again, t2))).toBe(json(unitsOf(stackha, t1)));
    expect(renderDefinitions(again)).toBe(renderDefinitions(stackha));
  });
});

describe('rabbitPasswordHash', () => {
  const decode = (hash: string): { salt: Buffer; digest: Buffer } => {
    const raw = Buffer.from(hash, 'base64');
    expect(raw).toHaveLength(36);
    expect(raw.toString('base64')).toBe(hash);
    return { salt: raw.subarray(0, 4), digest: raw.subarray(4) };
  };

  it('is base64 of a 4-byte salt and sha256(salt + password)', () => {
    for (const password of ['fake-rabbitmq-password', '', 'pässwörd with spaces']) {
      const { salt, digest } = decode(rabbitPasswordHash(password, 'FAKECOOKIE'));
      const expected = createHash('sha256')
        .update(Buffer.concat([salt, Buffer.from(password, 'utf8')]))
        .digest();
      expect(digest.equals(expected)).toBe(true);
    }
  });

  it('is deterministic for the same inputs, and differs for different passwords or salt keys', () => {
    const a = rabbitPasswordHash('fake-rabbitmq-password', 'FAKECOOKIE');
    expect(rabbitPasswordHash('fake-rabbitmq-password', 'FAKECOOKIE')).toBe(a);
    expect(rabbitPasswordHash('fake-rabbitmq-password2', 'FAKECOOKIE')).not.toBe(a);
    const other = rabbitPasswordHash('fake-rabbitmq-password', 'OTHERCOOKIE');
    expect(other).not.toBe(a);
    expect(decode(other).salt.equals(decode(a).salt)).toBe(false);
  });

  it('definitions.json carries the hash of rabbitmq_password with the sha256 algorithm', () => {
    const defs = JSON.parse(renderDefinitions(stackha)) as {
      users: { name: string; password_hash: string; hashing_algorithm: string }[];
      policies: unknown[];
    };
    expect(defs.users).toHaveLength(1);
    const user = defs.users[0]!;
    expect(user.name).toBe('openstack');
    expect(user.hashing_algorithm).toBe('rabbit_password_hashing_sha256');
    const { salt, digest } = decode(user.password_hash);
    const expected = createHash('sha256')
      .update(Buffer.concat([salt, Buffer.from('fake-rabbitmq-password', 'utf8')]))
      .digest();
    expect(digest.equals(expected)).toBe(true);
    expect(defs.policies).toEqual([]);
  });

  it('mirrored queues add the ha-all policy', () => {
    const defs = JSON.parse(renderDefinitions(unicast)) as {
      policies: { name: string; definition: Record<string, string> }[];
    };
    expect(defs.policies.map((p) => p.name)).toEqual(['ha-all']);
    expect(defs.policies[0]?.definition['ha-mode']).toBe('all');
  });
});

describe('rabbitmq.conf', () => {
  it('lists every node for classic_config peer discovery and listens on the host address', () => {
    const conf = renderRabbitmqConf(stackha, at(stackha, 'ctl2'));
    for (const [i, n] of HOSTS.entries()) {
      expect(conf).toContain(`\ncluster_formation.classic_config.nodes.${i + 1} = rabbit@${n}\n`);
    }
    expect(conf).toContain('\nlisteners.tcp.1 = 198.18.0.12:5672\n');
    expect(conf).toContain('\ncluster_partition_handling = pause_minority\n');
    expect(conf).not.toContain(VIP);
  });

  it('net_ticktime follows the profile', () => {
    expect(renderRabbitmqConf(stackha, at(stackha, 'ctl1'))).toContain('\nnet_ticktime = 10\n');
    expect(renderRabbitmqConf(kolla, at(kolla, 'ctl1'))).toContain('\nnet_ticktime = 60\n');
  });

  it('the node environment points the Erlang distribution at the host address', () => {
    const env = rabbitEnv(at(stackha, 'ctl3'));
    expect(env.RABBITMQ_NODENAME).toBe('rabbit@ctl3');
    expect(env.RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS).toBe('-kernel inet_dist_use_interface {198,18,0,13}');
    expect(env.HOME).toBe('/var/lib/rabbitmq');
  });
});
