// The OpenStack tier's renderers (Placement, Nova, nova-compute, Swift, Glance) against reviewed golden files, and the
// properties the HA design depends on checked directly: everything through the VIP but RabbitMQ (every broker),
// each API bound to its host's address, secrets only in 0600 files owned by the service's user, never in a command
// line, one Swift device per storage host, the libvirt settings rendered for real hosts.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildDeployment } from '../../src/inventory/load.js';
import type { Deployment, HostSpec } from '../../src/model.js';
import { OPENSTACK_SPECS } from '../../src/services/api/openstack.js';
import { registrationRequest } from '../../src/services/api/registration.js';
import {
  renderGlance,
  renderGlanceApiConf,
  renderGlanceSwiftConf,
} from '../../src/services/glance/glance.js';
import { renderListen } from '../../src/services/haproxy/haproxy.js';
import {
  renderDhcpAgentIni,
  renderL3AgentIni,
  renderLinuxbridgeAgentIni,
  renderMetadataAgentIni,
} from '../../src/services/neutron/agents.js';
import { renderMl2Conf, renderNeutron, renderNeutronConf } from '../../src/services/neutron/neutron.js';
import { renderNovaCompute } from '../../src/services/nova/compute.js';
import { renderNovaComputeConf, renderNovaConf, renderNovaWsgiConf } from '../../src/services/nova/conf.js';
import { missingServices, parseNovaServices, renderNova } from '../../src/services/nova/nova.js';
import { renderPlacement, renderPlacementConf } from '../../src/services/placement/placement.js';
import { SERVICES } from '../../src/services/registry.js';
import {
  RINGS,
  renderProxyServerConf,
  renderRsyncdConf,
  renderStorageServerConf,
  renderSwiftConf,
} from '../../src/services/swift/conf.js';
import { renderSwiftProxy } from '../../src/services/swift/proxy.js';
import { ringProblems, ringRequest } from '../../src/services/swift/rings.js';
import { renderSwiftStorage, replicationStatus } from '../../src/services/swift/storage.js';
import type { ServiceUnit } from '../../src/services/types.js';
import { hostByName, hostsFor } from '../../src/topology.js';
import { withProfile } from '../../src/tuning.js';
import { expectGolden } from './golden.js';

const FIXTURES = join(import.meta.dirname, '../fixtures/render');
const fixture = (name: string): string => readFileSync(join(FIXTURES, name), 'utf8');
const deployment = (extraGlobals = ''): Deployment =>
  buildDeployment(
    {
      multinode: fixture('multinode'),
      // A key given again replaces the fixture's.
      globals: `${fixture('globals.yml')
        .split('\n')
        .filter((l) => !extraGlobals.includes(`${l.split(':')[0]}:`))
        .join('\n')}\n${extraGlobals}`,
      passwords: fixture('passwords.yml'),
    },
    '/etc/stackha',
  );

const dep = deployment();
/** The same deployment on real hosts: no fake driver, libvirt with qemu. */
const real = deployment('enable_nova_fake: false\nnova_compute_virt_type: qemu\n');
const ctl1 = hostByName(dep, 'ctl1');
const VIP = '198.18.0.10';

const json = (value: unknown): string => `${JSON.stringify(value, null, 2)}\n`;
function manifest(unit: ServiceUnit): string {
  return json({
    files: unit.files.map((f) => ({ path: f.path, mode: f.mode?.toString(8), owner: f.owner })),
    dirs: unit.dirs.map((d) => ({ path: d.path, mode: d.mode?.toString(8), owner: d.owner })),
    daemons: unit.daemons,
  });
}

/** `[section] key` -> value of an INI text. */
function ini(text: string): Map<string, string> {
  const out = new Map<string, string>();
  let section = '';
  for (const line of text.split('\n')) {
    const s = /^\[(.+)\]$/.exec(line);
    if (s?.[1]) section = s[1];
    const kv = /^([^#;=\s][^=]*?)\s*=\s*(.*)$/.exec(line);
    if (kv?.[1] && kv[2] !== undefined) out.set(`[${section}] ${kv[1]}`, kv[2]);
  }
  return out;
}

const units: Record<string, (d: Deployment, h: HostSpec) => ServiceUnit> = {
  placement: renderPlacement,
  neutron: renderNeutron,
  nova: renderNova,
  'nova-compute': renderNovaCompute,
  'swift-storage': renderSwiftStorage,
  'swift-proxy': renderSwiftProxy,
  glance: renderGlance,
};

describe('golden files: the OpenStack tier', () => {
  it('placement', () => {
    expectGolden('placement/placement.conf.lab-ctl1', renderPlacementConf(dep, ctl1));
    const unit = renderPlacement(dep, ctl1);
    expectGolden('placement/placement-uwsgi.ini.lab-ctl1', unit.files[1]?.content ?? '');
    expectGolden('placement/unit.lab-ctl1.json', manifest(unit));
  });

  it('nova', () => {
    expectGolden('nova/nova.conf.lab-ctl1', renderNovaConf(dep, ctl1));
    expectGolden('nova/nova-wsgi.conf.lab-ctl1', renderNovaWsgiConf(ctl1));
    const unit = renderNova(dep, ctl1);
    expectGolden('nova/nova-api-uwsgi.ini.lab-ctl1', unit.files[2]?.content ?? '');
    expectGolden('nova/nova-metadata-uwsgi.ini.lab-ctl1', unit.files[3]?.content ?? '');
    expectGolden('nova/unit.lab-ctl1.json', manifest(unit));
    expectGolden('nova/nova-compute.conf.fake.lab-ctl1', renderNovaComputeConf(dep, ctl1));
    expectGolden(
      'nova/nova-compute.conf.libvirt.lab-ctl1',
      renderNovaComputeConf(real, hostByName(real, 'ctl1')),
    );
    expectGolden('nova/compute-unit.lab-ctl1.json', manifest(renderNovaCompute(dep, ctl1)));
  });

  it('swift', () => {
    expectGolden('swift/swift.conf.lab-ctl1', renderSwiftConf(dep, ctl1));
    const [account, container, object] = RINGS;
    expectGolden('swift/account-server.conf.lab-ctl1', renderStorageServerConf(ctl1, account));
    expectGolden('swift/container-server.conf.lab-ctl1', renderStorageServerConf(ctl1, container));
    expectGolden('swift/object-server.conf.lab-ctl1', renderStorageServerConf(ctl1, object));
    expectGolden('swift/rsyncd.conf.lab-ctl1', renderRsyncdConf(ctl1));
    expectGolden('swift/proxy-server.conf.lab-ctl1', renderProxyServerConf(dep, ctl1));
    expectGolden('swift/storage-unit.lab-ctl1.json', manifest(renderSwiftStorage(dep, ctl1)));
    expectGolden('swift/proxy-unit.lab-ctl1.json', manifest(renderSwiftProxy(dep, ctl1)));
    expectGolden('swift/ring-request.lab.json', json(ringRequest(dep)));
  });

  it('neutron', () => {
    expectGolden('neutron/neutron.conf.lab-ctl1', renderNeutronConf(dep, ctl1));
    expectGolden('neutron/ml2_conf.ini.lab-ctl1', renderMl2Conf(ctl1));
    expectGolden('neutron/unit.lab-ctl1.json', manifest(renderNeutron(dep, ctl1)));
  });

  it('neutron agents', () => {
    expectGolden('neutron/linuxbridge_agent.ini.lab-ctl1', renderLinuxbridgeAgentIni(dep, ctl1));
    expectGolden('neutron/l3_agent.ini.lab-ctl1', renderL3AgentIni(dep, ctl1));
    expectGolden('neutron/l3_agent.ini.kolla.lab-ctl1', renderL3AgentIni(withProfile(dep, 'kolla'), ctl1));
    expectGolden('neutron/dhcp_agent.ini.lab-ctl1', renderDhcpAgentIni(dep, ctl1));
    expectGolden('neutron/metadata_agent.ini.lab-ctl1', renderMetadataAgentIni(dep, ctl1));
    const unit = (name: string) => {
      const spec = OPENSTACK_SPECS.get(name);
      if (!spec) throw new Error(`no spec for ${name}`);
      return manifest(spec.render(dep, ctl1));
    };
    expectGolden('neutron/neutron-linuxbridge-agent.unit.lab-ctl1.json', unit('neutron-linuxbridge-agent'));
    expectGolden('neutron/neutron-dhcp-agent.unit.lab-ctl1.json', unit('neutron-dhcp-agent'));
    expectGolden('neutron/neutron-l3-agent.unit.lab-ctl1.json', unit('neutron-l3-agent'));
    expectGolden('neutron/neutron-metadata-agent.unit.lab-ctl1.json', unit('neutron-metadata-agent'));
  });

  it('glance', () => {
    expectGolden('glance/glance-api.conf.lab-ctl1', renderGlanceApiConf(dep, ctl1));
    expectGolden('glance/glance-swift.conf.lab-ctl1', renderGlanceSwiftConf(dep, ctl1));
    expectGolden('glance/unit.lab-ctl1.json', manifest(renderGlance(dep, ctl1)));
  });

  it('the HAProxy frontends of every OpenStack service', () => {
    const blocks = SERVICES.filter((s) => Object.keys(units).includes(s.name))
      .flatMap((s) => s.loadBalanced?.(dep) ?? [])
      .map((lb) => renderListen(dep, lb))
      .join('\n');
    expectGolden('haproxy/openstack-frontends.lab.cfg', blocks);
  });
});

describe('the OpenStack tier’s invariants', () => {
  const everyFile = Object.entries(units).flatMap(([service, render]) =>
    dep.hosts.flatMap((h) => render(dep, h).files.map((f) => ({ service, host: h.name, ...f }))),
  );
  const secrets = Object.entries(dep.passwords).filter(([k]) => !k.startsWith('swift_hash'));

  it('keeps every secret in a 0600 file owned by the service’s user', () => {
    for (const f of everyFile) {
      const holds =
        secrets.some(([, v]) => v && f.content.includes(v)) || f.content.includes('swift_hash_path');
      if (!holds) continue;
      expect(f.mode, `${f.service} ${f.path}`).toBe(0o600);
      expect(f.owner, `${f.service} ${f.path}`).toBeDefined();
    }
  });

  it('never puts a secret in a command line or an environment', () => {
    for (const [service, render] of Object.entries(units))
      for (const h of dep.hosts)
        for (const d of render(dep, h).daemons) {
          const line = JSON.stringify([d.argv, d.env ?? {}]);
          for (const [k, v] of Object.entries(dep.passwords))
            if (v) expect(line, `${service} ${d.name} ${k}`).not.toContain(v);
        }
    // Nor in a bootstrap step (map_cell0 would take the database URL with its password: it derives it instead).
    for (const spec of OPENSTACK_SPECS.values())
      for (const step of spec.bootstrap?.steps(dep, ctl1) ?? [])
        for (const [k, v] of Object.entries(dep.passwords))
          if (v) expect(step.argv.join(' '), `${spec.name} ${step.title} ${k}`).not.toContain(v);
  });

  it('binds every server to its host’s address, never to every address (HAProxy holds the VIP on the same ports)', () => {
    for (const f of everyFile) {
      expect(f.content, `${f.service} ${f.path}`).not.toMatch(/0\.0\.0\.0/);
      const host = hostByName(dep, f.host);
      const i = ini(f.content);
      for (const key of ['[DEFAULT] bind_ip', '[DEFAULT] bind_host'])
        if (i.has(key)) expect(i.get(key), `${f.service} ${f.path}`).toBe(host.address);
    }
  });

  it('reaches databases, Keystone and each other through the VIP, RabbitMQ through every broker', () => {
    const nova = ini(renderNovaConf(dep, ctl1));
    for (const key of ['[database] connection', '[api_database] connection'])
      expect(nova.get(key)).toMatch(new RegExp(`@${VIP.replace(/\./g, '\\.')}:3306/`));
    expect(nova.get('[keystone_authtoken] auth_url')).toBe(`http://${VIP}:5000`);
    expect(nova.get('[placement] auth_url')).toBe(`http://${VIP}:5000`);
    const brokers = nova.get('[DEFAULT] transport_url') ?? '';
    for (const h of hostsFor(dep, 'rabbitmq')) expect(brokers).toContain(`@${h.address}:5672`);
    expect(brokers).not.toContain(VIP);
    expect(nova.get('[oslo_messaging_rabbit] rabbit_quorum_queue')).toBe('true');
    expect(ini(renderPlacementConf(dep, ctl1)).get('[placement_database] connection')).toContain(
      `@${VIP}:3306/placement`,
    );
    expect(ini(renderGlanceApiConf(dep, ctl1)).get('[database] connection')).toContain(`@${VIP}:3306/glance`);
    // Every memcached server, never the VIP.
    expect(ini(renderProxyServerConf(dep, ctl1)).get('[filter:cache] memcache_servers')).toBe(
      hostsFor(dep, 'memcached')
        .map((h) => `${h.address}:11211`)
        .join(','),
    );
  });

  it('gives each Nova process its host’s identity, and compute no database', () => {
    for (const h of dep.hosts) {
      for (const text of [renderNovaConf(dep, h), renderNovaComputeConf(dep, h)]) {
        expect(ini(text).get('[DEFAULT] host')).toBe(h.name);
        expect(ini(text).get('[DEFAULT] my_ip')).toBe(h.address);
      }
      const compute = ini(renderNovaComputeConf(dep, h));
      expect(
        [...compute.keys()].some((k) => k.startsWith('[database]') || k.startsWith('[api_database]')),
      ).toBe(false);
    }
  });

  it('runs the fake virt driver in the lab and renders libvirt for real hosts', () => {
    expect(ini(renderNovaComputeConf(dep, ctl1)).get('[DEFAULT] compute_driver')).toBe('fake.FakeDriver');
    expect(renderNovaComputeConf(dep, ctl1)).toContain("nova's fake virt driver: a simulated hypervisor");
    const libvirt = ini(renderNovaComputeConf(real, hostByName(real, 'ctl1')));
    expect(libvirt.get('[DEFAULT] compute_driver')).toBe('libvirt.LibvirtDriver');
    expect(libvirt.get('[libvirt] virt_type')).toBe('qemu');
    expect(libvirt.get('[libvirt] connection_uri')).toBe('qemu+tcp://198.18.0.11/system');
  });

  it('asks for one Swift device per storage host in every ring, 3 replicas, and the same swift.conf everywhere', () => {
    const req = ringRequest(dep);
    expect(req.replicas).toBe(3);
    expect(req.devices.map((d) => d.ip)).toEqual(hostsFor(dep, 'swift-storage').map((h) => h.address));
    expect(Object.keys(req.rings).sort()).toEqual(['account', 'container', 'object']);
    const confs = new Set(dep.hosts.map((h) => renderSwiftConf(dep, h).split('\n').slice(1).join('\n')));
    expect(confs.size).toBe(1);
  });

  it('registers every endpoint on the VIP, each service user in the service project', () => {
    const regs = SERVICES.flatMap((s) => s.keystone?.(dep) ?? []);
    expect(regs.map((r) => r.service.type).sort()).toEqual([
      'compute',
      'image',
      'network',
      'object-store',
      'placement',
    ]);
    const req = registrationRequest(dep, regs);
    expect(req.project).toBe('service');
    for (const s of req.services)
      for (const url of Object.values(s.endpoints)) expect(url.startsWith(`http://${VIP}:`), url).toBe(true);
    expect(req.users.find((u) => u.name === 'nova')?.roles).toEqual(['admin', 'service']);
  });

  it('reads Nova’s services table and names what does not report', () => {
    const rows = parseNovaServices(
      'ctl1\tnova-conductor\t3\t0\t0\nctl2\tnova-conductor\t75\t0\t0\nctl3\tnova-conductor\t1\t0\t1\n',
    );
    expect(
      missingServices(rows, [
        { host: 'ctl1', binary: 'nova-conductor' },
        { host: 'ctl2', binary: 'nova-conductor' },
        { host: 'ctl3', binary: 'nova-conductor' },
        { host: 'ctl1', binary: 'nova-scheduler' },
      ]),
    ).toEqual(['nova-conductor on ctl2', 'nova-conductor on ctl3', 'nova-scheduler on ctl1']);
  });

  it('calls rings that differ between hosts, or are missing, a problem; a stuck replicator too', () => {
    const same = { account: 'a'.repeat(32), container: 'c'.repeat(32), object: 'o'.repeat(32) };
    expect(
      ringProblems([
        { host: 'ctl1', rings: same },
        { host: 'ctl2', rings: same },
      ]),
    ).toEqual([]);
    const p = ringProblems([
      { host: 'ctl1', rings: same },
      { host: 'ctl2', rings: { ...same, object: 'x'.repeat(32) } },
      { host: 'ctl3', rings: { ...same, account: undefined } },
    ]);
    expect(p).toHaveLength(2);
    expect(p[0]).toMatch(/ctl3 has no account ring/);
    expect(p[1]).toMatch(/the object ring differs between hosts \(ctl1,ctl3: oooooooo; ctl2: xxxxxxxx\)/);
    const r = replicationStatus([
      { host: 'ctl1', ring: 'object', lastPassAgo: 12, failures: 0, successes: 4 },
      { host: 'ctl2', ring: 'object', lastPassAgo: 900, failures: 2, successes: 1 },
    ]);
    expect(r.problems).toEqual([
      'swift-storage: the object replicator on ctl2 has not completed a pass for 900 s',
    ]);
  });
});
