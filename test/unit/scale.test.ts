// Scale and rolling operations, the pure parts: who may leave, in which order hosts restart, what counts as a
// peer-only change, how the inventory is edited, and the drain around a restart (against fake hosts).
import { describe, expect, it } from 'vitest';
import { type Step, deploySteps } from '../../src/deploy/deploy.js';
import { DrainingHost, serversNotUp, sessionsOf, upEverywhere } from '../../src/deploy/drain.js';
import type { DaemonSpec, Host } from '../../src/hosts/host.js';
import {
  addHostToMultinode,
  removeHostFromMultinode,
  renderLabInventory,
} from '../../src/inventory/lab-inventory.js';
import { buildDeployment } from '../../src/inventory/load.js';
import { PASSWORD_KEYS } from '../../src/inventory/load.js';
import { nextLabHost } from '../../src/lab/lab.js';
import type { Deployment } from '../../src/model.js';
import { expandServices, restartOrder } from '../../src/ops/rolling.js';
import { additionCheck, removalCheck, scaleAddSteps, withoutHost } from '../../src/ops/scale.js';
import type { Tier } from '../../src/services/contract.js';
import { peersOnlyChange } from '../../src/services/files.js';
import { type BackendServerState, parseShowStat } from '../../src/services/haproxy/haproxy.js';
import { renderKeepalivedConf } from '../../src/services/keepalived/keepalived.js';
import { galeraRestartOrder, galeraWantedState } from '../../src/services/mariadb/galera.js';
import { MEMCACHED } from '../../src/services/memcached/memcached.js';
import {
  parseQuorumQueues,
  queuesWaitingFor,
  queuesWithout,
  rabbitNodeState,
  renderRabbitmq,
} from '../../src/services/rabbitmq/rabbitmq.js';
import { hostsFor } from '../../src/topology.js';
import { spreadPriorities } from '../../src/tuning.js';
import type { ExecOptions, ExecResult } from '../../src/util/exec.js';

const PASSWORDS = PASSWORD_KEYS.map((k) => `${k}: lab-${k}\n`).join('');

/** The lab inventory of `hostCount` hosts; `globals` lines (`key: value`) replace the rendered ones. */
function labDep(hostCount: number, globals = ''): Deployment {
  const inv = renderLabInventory({ lab: 'demo', hostCount, subnetPrefix: '198.18.0' });
  let text = inv.globals;
  for (const line of globals.split('\n').filter(Boolean)) {
    const key = line.split(':')[0] ?? '';
    const re = new RegExp(`^${key}:.*$`, 'm');
    text = re.test(text) ? text.replace(re, line) : `${text}${line}\n`;
  }
  return buildDeployment(
    { multinode: inv.multinode, globals: text, passwords: PASSWORDS },
    '/etc/stackha/demo',
  );
}

const names = (hs: readonly { name: string }[]) => hs.map((h) => h.name);

describe('withoutHost', () => {
  it('drops the host from the host list and from every group', () => {
    const dep = withoutHost(labDep(4), 'ctl2');
    expect(names(dep.hosts)).toEqual(['ctl1', 'ctl3', 'ctl4']);
    for (const [group, hosts] of Object.entries(dep.groups)) expect(hosts, group).not.toContain('ctl2');
    expect(names(hostsFor(dep, 'mariadb'))).toEqual(['ctl1', 'ctl3', 'ctl4']);
    expect(names(hostsFor(dep, 'haproxy'))).toEqual(['ctl1', 'ctl3', 'ctl4']);
  });
});

describe('the safe-size rule', () => {
  it('refuses to leave Galera and RabbitMQ with 2 nodes, and says why', () => {
    const r = removalCheck(labDep(3), 'ctl3');
    expect(r.refusals).toHaveLength(3);
    expect(r.refusals[0]).toMatch(/^mariadb: removing ctl3 leaves 2 \(at least 3 needed\)/);
    expect(r.refusals[0]).toMatch(/no quorum to lose/);
    expect(r.refusals[1]).toMatch(/^rabbitmq: .*no quorum to lose/);
    expect(r.refusals[2]).toMatch(/^swift-storage: .*cannot hold 3 replicas in 3 zones/);
  });

  it('refuses a single node too, with its own reason', () => {
    const r = removalCheck(labDep(2), 'ctl1');
    expect(r.refusals.join('\n')).toMatch(/a single Galera node has no quorum to lose/);
    expect(r.refusals.join('\n')).toMatch(/keepalived: .*with one load balancer the VIP has nowhere to move/);
  });

  it('lets 4 go to 3 without a warning, and warns when 5 would become an even 4', () => {
    expect(removalCheck(labDep(4), 'ctl4')).toEqual({ refusals: [], warnings: [] });
    const r = removalCheck(labDep(5), 'ctl2');
    expect(r.refusals).toEqual([]);
    expect(r.warnings).toHaveLength(2);
    expect(r.warnings[0]).toMatch(/^mariadb: 4 nodes is an even size: a partition that splits it 2\+2/);
  });

  it('refuses a host the inventory does not have', () => {
    expect(removalCheck(labDep(4), 'ctl9').refusals).toEqual(['ctl9 is not a host of the inventory']);
  });

  it('counts only the groups the host is in', () => {
    // A load balancer only host: Galera and RabbitMQ sizes do not change.
    const inv = renderLabInventory({ lab: 'demo', hostCount: 3, subnetPrefix: '198.18.0' });
    const multinode = addHostToMultinode(inv.multinode, 'lb1', '198.18.0.30', ['network']).replace(
      /^lb1$/m,
      'lb1 ansible_host=198.18.0.30',
    );
    const dep = buildDeployment(
      { multinode, globals: inv.globals, passwords: PASSWORDS },
      '/etc/stackha/demo',
    );
    expect(names(hostsFor(dep, 'haproxy'))).toContain('lb1');
    expect(names(hostsFor(dep, 'mariadb'))).not.toContain('lb1');
    expect(removalCheck(dep, 'lb1')).toEqual({ refusals: [], warnings: [] });
  });

  it('an addition must be in the inventory; an even result is a warning', () => {
    expect(additionCheck(labDep(3), 'ctl4').refusals[0]).toMatch(/ctl4 is not in the inventory: add it to/);
    const r = additionCheck(labDep(4), 'ctl4');
    expect(r.refusals).toEqual([]);
    expect(r.warnings.map((w) => w.split(':')[0])).toEqual(['mariadb', 'rabbitmq']);
    expect(additionCheck(labDep(5), 'ctl5')).toEqual({ refusals: [], warnings: [] });
  });
});

describe('scale add: API services come up before HAProxy lists them', () => {
  it('moves every API step before the load balancer and the VIP, and keeps the rest in order', () => {
    const step = (title: string, tier: Tier): Step => ({
      title,
      service: { ...MEMCACHED, name: title, tier },
      run: async () => [{ service: title, outcomes: {} }],
    });
    const plan = [
      step('memcached', 'infra'),
      step('mariadb', 'infra'),
      step('rabbitmq', 'infra'),
      step('haproxy', 'loadbalancer'),
      step('keepalived', 'vip'),
      step('keystone', 'api'),
      step('glance', 'api'),
    ];
    expect(scaleAddSteps(plan).map((s) => s.title)).toEqual([
      'memcached',
      'mariadb',
      'rabbitmq',
      'keystone',
      'glance',
      'haproxy',
      'keepalived',
    ]);
  });
});

describe('scale add on the real deploy plan', () => {
  it('puts Keystone before HAProxy and keepalived, everything else in deploy order', () => {
    const dep = labDep(3);
    const names = scaleAddSteps(deploySteps(dep)).map((s) => s.service.name);
    expect(names.indexOf('keystone')).toBeLessThan(names.indexOf('haproxy'));
    expect(names.slice(-2)).toEqual(['haproxy', 'keepalived']);
    expect([...names].sort()).toEqual(
      deploySteps(dep)
        .map((s) => s.service.name)
        .sort(),
    );
  });
});

describe('peer-only changes restart nothing', () => {
  const t = (dep: Deployment, name: string) => ({
    host: dep.hosts.find((h) => h.name === name)!,
    root: `/var/lib/stackha/labs/demo/hosts/${name}`,
  });

  it('Galera: a node that gains a peer has a new my.cnf but the same restart digest', () => {
    const three = galeraWantedState(labDep(3), t(labDep(3), 'ctl1'));
    const four = galeraWantedState(labDep(4), t(labDep(4), 'ctl1'));
    expect(four.config).not.toBe(three.config);
    expect(four.restart).toBe(three.restart);
    expect(peersOnlyChange(three, four)).toBe(true);
  });

  it('Galera: any other change (the profile’s evs timeouts) restarts', () => {
    const base = galeraWantedState(labDep(3), t(labDep(3), 'ctl1'));
    const kolla = galeraWantedState(labDep(3, 'stackha_profile: kolla\n'), t(labDep(3), 'ctl1'));
    expect(peersOnlyChange(base, kolla)).toBe(false);
    // Peers and another setting together: a restart too.
    const both = galeraWantedState(labDep(4, 'stackha_profile: kolla\n'), t(labDep(4), 'ctl1'));
    expect(peersOnlyChange(base, both)).toBe(false);
  });

  it('RabbitMQ: the classic_config node list alone is a peer-only change', () => {
    const three = rabbitNodeState(renderRabbitmq(labDep(3), t(labDep(3), 'ctl2')));
    const four = rabbitNodeState(renderRabbitmq(labDep(4), t(labDep(4), 'ctl2')));
    expect(peersOnlyChange(three, four)).toBe(true);
    const kolla = rabbitNodeState(
      renderRabbitmq(labDep(4, 'stackha_profile: kolla\n'), t(labDep(4), 'ctl2')),
    );
    expect(peersOnlyChange(three, kolla)).toBe(false);
  });

  it('a record without a restart digest (an older stackha), or a changed command line, restarts', () => {
    const three = galeraWantedState(labDep(3), t(labDep(3), 'ctl1'));
    const four = galeraWantedState(labDep(4), t(labDep(4), 'ctl1'));
    expect(peersOnlyChange({ config: three.config, daemons: three.daemons }, four)).toBe(false);
    expect(peersOnlyChange({ ...three, daemons: 'other' }, four)).toBe(false);
    expect(peersOnlyChange(undefined, four)).toBe(false);
    expect(peersOnlyChange(four, four)).toBe(false);
  });
});

describe('keepalived priorities do not depend on the number of load balancers', () => {
  it('keeps 150/100/50 for three hosts and the same for them when a fourth joins', () => {
    expect(spreadPriorities(3)).toEqual([150, 100, 50]);
    expect(spreadPriorities(4)).toEqual([150, 100, 50, 40]);
    expect(spreadPriorities(9).at(-1)).toBe(1);
  });

  it('so adding a last host leaves every other host’s keepalived.conf as it was (multicast VRRP)', () => {
    const t = (dep: Deployment, name: string) => ({
      host: dep.hosts.find((h) => h.name === name)!,
      root: '',
    });
    for (const name of ['ctl1', 'ctl2', 'ctl3'])
      expect(renderKeepalivedConf(labDep(4), t(labDep(4), name)), name).toBe(
        renderKeepalivedConf(labDep(3), t(labDep(3), name)),
      );
  });
});

describe('restart order', () => {
  const hosts = labDep(4).hosts;

  it('Galera restarts the writer last', () => {
    expect(names(galeraRestartOrder(hosts, 'ctl1'))).toEqual(['ctl2', 'ctl3', 'ctl4', 'ctl1']);
    expect(names(galeraRestartOrder(hosts, undefined))).toEqual(['ctl1', 'ctl2', 'ctl3', 'ctl4']);
  });

  it('a rolling restart takes the writer last and the VIP holder after it', () => {
    expect(names(restartOrder(hosts, 'ctl1', undefined))).toEqual(['ctl2', 'ctl3', 'ctl4', 'ctl1']);
    expect(names(restartOrder(hosts, 'ctl1', 'ctl2'))).toEqual(['ctl3', 'ctl4', 'ctl1', 'ctl2']);
    expect(names(restartOrder(hosts, 'ctl3', 'ctl3'))).toEqual(['ctl1', 'ctl2', 'ctl4', 'ctl3']);
  });

  it('expands `all` in plan order, from the declarations; unknown names fail', () => {
    const dep = labDep(3);
    const names = (xs: readonly { name: string }[]) => xs.map((x) => x.name);
    expect(names(expandServices(dep, ['all']))).toEqual([
      'memcached',
      'mariadb',
      'rabbitmq',
      'probe-api',
      'haproxy',
      'keepalived',
      'keystone',
      'placement',
      'neutron',
      'neutron-linuxbridge-agent',
      'neutron-metadata-agent',
      'neutron-dhcp-agent',
      'neutron-l3-agent',
      'nova',
      'nova-compute',
      'swift-storage',
      'swift-proxy',
      'glance',
    ]);
    expect(names(expandServices(dep, ['keystone', 'mariadb']))).toEqual(['mariadb', 'keystone']);
    expect(() => expandServices(dep, ['heat'])).toThrow(/cannot restart heat/);
    expect(
      names(
        expandServices(
          labDep(
            3,
            'enable_keystone: false\nenable_placement: false\nenable_neutron: false\nenable_nova: false\nenable_swift: false\nenable_glance: false\n',
          ),
          ['all'],
        ),
      ),
    ).not.toContain('keystone');
  });
});

describe('inventory edits', () => {
  const inv = renderLabInventory({ lab: 'demo', hostCount: 3, subnetPrefix: '198.18.0' });

  it('adds a host to [control] and [network]; the result reads back with it in every service group', () => {
    const text = addHostToMultinode(inv.multinode, 'ctl4', '198.18.0.14');
    expect(text).toMatch(/^ctl3 ansible_host=198\.18\.0\.13\nctl4 ansible_host=198\.18\.0\.14$/m);
    expect(text).toMatch(/^ctl3\nctl4$/m);
    // Idempotent.
    expect(addHostToMultinode(text, 'ctl4', '198.18.0.14')).toBe(text);
    const dep = buildDeployment({ multinode: text, globals: inv.globals, passwords: PASSWORDS }, '/x');
    expect(dep.hosts.find((h) => h.name === 'ctl4')?.address).toBe('198.18.0.14');
    for (const s of ['mariadb', 'rabbitmq', 'memcached', 'haproxy', 'keepalived', 'keystone'] as const)
      expect(names(hostsFor(dep, s)), s).toEqual(['ctl1', 'ctl2', 'ctl3', 'ctl4']);
  });

  it('creates a group section that is missing', () => {
    const text = addHostToMultinode('[control]\nctl1 ansible_host=198.18.0.11\n', 'ctl2', '198.18.0.12');
    // The lab's hosts are in every group: control, network, compute, storage.
    expect(text).toBe(
      '[control]\nctl1 ansible_host=198.18.0.11\nctl2 ansible_host=198.18.0.12\n\n[network]\nctl2\n\n[compute]\nctl2\n\n[storage]\nctl2\n',
    );
  });

  it('removes every line naming the host in host sections, nothing else; round-trips with add', () => {
    const grown = addHostToMultinode(inv.multinode, 'ctl4', '198.18.0.14');
    const r = removeHostFromMultinode(grown, 'ctl4');
    expect(r.removed).toBe(4);
    expect(r.text).toBe(inv.multinode);
    // A [group:vars] key or a child group that happens to share the name is not a host line.
    const odd = '[control]\nctl1\nctl2\n[control:vars]\nctl2 = 1\n[x:children]\nctl2\n';
    expect(removeHostFromMultinode(odd, 'ctl2')).toEqual({
      text: '[control]\nctl1\n[control:vars]\nctl2 = 1\n[x:children]\nctl2\n',
      removed: 1,
    });
  });

  it('the lab’s next host is the lowest free ctlN', () => {
    const hosts = [
      { name: 'ctl1', address: '198.18.0.11' },
      { name: 'ctl2', address: '198.18.0.12' },
      { name: 'ctl3', address: '198.18.0.13' },
    ];
    expect(nextLabHost({ prefix: '198.18.0', hosts })).toEqual({ name: 'ctl4', address: '198.18.0.14' });
    expect(nextLabHost({ prefix: '198.18.0', hosts: [hosts[0]!, hosts[2]!] })).toEqual({
      name: 'ctl2',
      address: '198.18.0.12',
    });
  });
});

describe('quorum queue membership', () => {
  const json = JSON.stringify([
    {
      name: 'q1',
      vhost: '/',
      type: 'quorum',
      members: ['rabbit@ctl1', 'rabbit@ctl2', 'rabbit@ctl3'],
      online: ['rabbit@ctl1', 'rabbit@ctl3'],
      leader: 'rabbit@ctl1',
    },
    { name: 'c1', vhost: '/', type: 'classic', members: '', online: '', leader: '' },
    {
      name: 'q2',
      vhost: '/',
      type: 'quorum',
      members: ['rabbit@ctl1', 'rabbit@ctl2', 'rabbit@ctl3', 'rabbit@ctl4'],
      online: ['rabbit@ctl1', 'rabbit@ctl2', 'rabbit@ctl3', 'rabbit@ctl4'],
      leader: 'rabbit@ctl2',
    },
  ]);

  it('parses quorum queues only and finds members not online, and queues lacking a node', () => {
    const qs = parseQuorumQueues(json);
    expect(qs.map((q) => q.name)).toEqual(['q1', 'q2']);
    expect(queuesWaitingFor(qs, 'rabbit@ctl2')).toEqual(['q1']);
    expect(queuesWaitingFor(qs, 'rabbit@ctl4')).toEqual([]);
    expect(queuesWithout(qs, 'rabbit@ctl4')).toEqual(['q1']);
  });
});

// ------------------------------------------------------------------------------------------------ drain

const state = (
  backend: string,
  server: string,
  status: string,
  sessions: number,
  backup = false,
  check = '',
) => ({ backend, server, status, sessions, backup, check, checkDowns: 0 }) satisfies BackendServerState;

describe('drain arithmetic', () => {
  it('sums sessions to a server over load balancers and backends; UP means UP wherever it is listed', () => {
    const states = new Map([
      ['ctl1', [state('mariadb', 'ctl1', 'DRAIN', 3), state('mariadb', 'ctl2', 'UP', 0, true)]],
      ['ctl2', [state('mariadb', 'ctl1', 'DRAIN', 1), state('probe_api', 'ctl1', 'UP', 2)]],
    ]);
    expect(sessionsOf(states, ['mariadb'], 'ctl1')).toBe(4);
    expect(sessionsOf(states, ['mariadb', 'probe_api'], 'ctl1')).toBe(6);
    expect(upEverywhere(states, ['mariadb'], 'ctl1')).toBe(false);
    expect(upEverywhere(states, ['probe_api'], 'ctl1')).toBe(true);
    expect(upEverywhere(states, ['mariadb'], 'ctl2')).toBe(true);
  });

  it('names every server not UP with its load balancer and last check, optionally only the wanted ones', () => {
    const states = new Map([
      [
        'ctl1',
        [state('keystone_internal', 'ctl2', 'DOWN', 0, false, 'L7TOUT'), state('mariadb', 'ctl1', 'UP', 1)],
      ],
      ['ctl2', [state('keystone_internal', 'ctl2', 'UP', 0), state('mariadb', 'ctl3', 'MAINT', 0, true)]],
    ]);
    expect(serversNotUp(states)).toEqual([
      'haproxy on ctl1: keystone_internal/ctl2 DOWN (L7TOUT)',
      'haproxy on ctl2: mariadb/ctl3 MAINT',
    ]);
    expect(serversNotUp(states, (s) => s.backend === 'mariadb')).toEqual([
      'haproxy on ctl2: mariadb/ctl3 MAINT',
    ]);
    expect(serversNotUp(new Map([['ctl1', [state('mariadb', 'ctl1', 'UP', 0)]]]))).toEqual([]);
    // A reloaded worker shows every server UP before its first check: not yet known to be.
    expect(serversNotUp(new Map([['ctl1', [state('mariadb', 'ctl1', 'UP', 0, false, 'INI')]]]))).toEqual([
      'haproxy on ctl1: mariadb/ctl1 UP (not checked yet)',
    ]);
  });
});

/** A host whose HAProxy answers `show stat` from a mutable table and records every socket command. */
class FakeLbHost implements Host {
  readonly root = '';
  readonly events: string[];
  readonly daemons = new Map<string, number>([['haproxy', 1]]);
  constructor(
    readonly name: string,
    readonly address: string,
    events: string[],
    private readonly table: () => BackendServerState[],
  ) {
    this.events = events;
  }
  path(p: string): string {
    return p;
  }
  async exec(argv: readonly string[], opts?: ExecOptions): Promise<ExecResult> {
    const input = String(opts?.input ?? '').trim();
    let stdout = '';
    if (argv[0] === 'socat') {
      if (input === 'show stat') {
        const header = '# pxname,svname,status,bck,scur';
        const rows = this.table().map(
          (s) => `${s.backend},${s.server},${s.status},${s.backup ? 1 : 0},${s.sessions}`,
        );
        stdout = [header, ...rows].join('\n');
      } else this.events.push(`${this.name}: ${input}`);
    } else if (argv[0] === 'curl') stdout = '200';
    return { argv, code: 0, signal: null, stdout, stderr: '', timedOut: false };
  }
  async run(argv: readonly string[], opts?: ExecOptions): Promise<string> {
    return (await this.exec(argv, opts)).stdout;
  }
  async readFile(): Promise<string | undefined> {
    return undefined;
  }
  async writeFile(): Promise<void> {}
  async mkdir(): Promise<void> {}
  async exists(): Promise<boolean> {
    return false;
  }
  async fileMode(): Promise<number | undefined> {
    return undefined;
  }
  async remove(): Promise<void> {}
  async startDaemon(spec: DaemonSpec): Promise<number> {
    this.events.push(`${this.name}: start ${spec.name}`);
    this.daemons.set(spec.name, 2);
    return 2;
  }
  async stopDaemon(name: string): Promise<boolean> {
    this.events.push(`${this.name}: stop ${name}`);
    return this.daemons.delete(name);
  }
  async signalDaemon(): Promise<boolean> {
    return true;
  }
  async daemonPid(name: string): Promise<number | undefined> {
    return this.daemons.get(name);
  }
  async tcpConnect(): Promise<boolean> {
    return true;
  }
}

describe('DrainingHost: a restart behind HAProxy', () => {
  it('drains the server on every load balancer (then maintenance) before the stop, and puts it back after the start', async () => {
    const dep = labDep(3);
    const events: string[] = [];
    // The keystone servers as every HAProxy reports them: UP, no sessions (so the drain does not wait).
    const table = () => dep.hosts.map((h) => state('keystone_internal', h.name, 'UP', 0));
    const hosts = new Map<string, FakeLbHost>(
      dep.hosts.map((h) => [h.name, new FakeLbHost(h.name, h.address, events, table)]),
    );
    hosts.get('ctl2')!.daemons.set('keystone', 7);
    const ctx = { dep, hosts, roots: new Map(), log: () => {} };
    const wrapped = new DrainingHost(hosts.get('ctl2')!, ctx);
    await wrapped.stopDaemon('keystone', { signal: 'SIGINT' });
    await wrapped.startDaemon({ name: 'keystone', argv: ['uwsgi'], logFile: '/x' });
    expect(events).toEqual([
      'ctl1: set server keystone_internal/ctl2 state drain',
      'ctl2: set server keystone_internal/ctl2 state drain',
      'ctl3: set server keystone_internal/ctl2 state drain',
      'ctl1: set server keystone_internal/ctl2 state maint',
      'ctl2: set server keystone_internal/ctl2 state maint',
      'ctl3: set server keystone_internal/ctl2 state maint',
      'ctl2: stop keystone',
      'ctl2: start keystone',
      'ctl1: set server keystone_internal/ctl2 state ready',
      'ctl2: set server keystone_internal/ctl2 state ready',
      'ctl3: set server keystone_internal/ctl2 state ready',
    ]);
  });

  it('leaves daemons HAProxy does not front, and first starts, to themselves', async () => {
    const dep = labDep(3);
    const events: string[] = [];
    const hosts = new Map<string, FakeLbHost>(
      dep.hosts.map((h) => [h.name, new FakeLbHost(h.name, h.address, events, () => [])]),
    );
    const ctx = { dep, hosts, roots: new Map(), log: () => {} };
    const wrapped = new DrainingHost(hosts.get('ctl1')!, ctx);
    hosts.get('ctl1')!.daemons.set('memcached', 5);
    await wrapped.stopDaemon('memcached');
    await wrapped.startDaemon({ name: 'memcached', argv: ['memcached'], logFile: '/x' });
    // Never started: nothing to drain.
    await wrapped.startDaemon({ name: 'keystone', argv: ['uwsgi'], logFile: '/x' });
    expect(events).toEqual(['ctl1: stop memcached', 'ctl1: start memcached', 'ctl1: start keystone']);
  });

  it('shuts down sessions that outlast the bound, and moves writers back to the returning primary', async () => {
    const dep = labDep(3);
    const events: string[] = [];
    let phase: 'before' | 'after' = 'before';
    // ctl1 is the Galera writer with 2 sessions that never end by themselves; after its restart the backup ctl2
    // holds the clients, until ctl1 is UP again.
    const table = () =>
      phase === 'before'
        ? [state('mariadb', 'ctl1', 'DRAIN', 2), state('mariadb', 'ctl2', 'UP', 0, true)]
        : [state('mariadb', 'ctl1', 'UP', 0), state('mariadb', 'ctl2', 'UP', 2, true)];
    const hosts = new Map<string, FakeLbHost>(
      dep.hosts.map((h) => [h.name, new FakeLbHost(h.name, h.address, events, table)]),
    );
    hosts.get('ctl1')!.daemons.set('galera-health', 3);
    const ctx = { dep, hosts, roots: new Map(), log: () => {} };
    const { drainServer, undrainServer } = await import('../../src/deploy/drain.js');
    const d = await drainServer(ctx, ['mariadb'], 'ctl1', 300);
    expect(d.shutDown).toBe(6);
    phase = 'after';
    await undrainServer(ctx, ['mariadb'], 'ctl1', async () => true);
    const mine = events.filter((e) => e.startsWith('ctl1: '));
    expect(mine).toEqual([
      'ctl1: set server mariadb/ctl1 state drain',
      'ctl1: shutdown sessions server mariadb/ctl1',
      'ctl1: set server mariadb/ctl1 state maint',
      'ctl1: set server mariadb/ctl1 state ready',
      'ctl1: shutdown sessions server mariadb/ctl2',
    ]);
    expect(events.filter((e) => e.endsWith('shutdown sessions server mariadb/ctl2'))).toHaveLength(3);
  });
});

describe('show stat parsing for the drain', () => {
  it('reads DRAIN and MAINT as they appear', () => {
    const csv =
      '# pxname,svname,status,bck,scur\nmariadb,ctl1,DRAIN,0,2\nmariadb,ctl2,MAINT,1,0\nmariadb,BACKEND,UP,0,2\n';
    expect(parseShowStat(csv)).toEqual([
      state('mariadb', 'ctl1', 'DRAIN', 2),
      state('mariadb', 'ctl2', 'MAINT', 0, true),
    ]);
  });
});
