// A whole cluster of fake hosts for walking every registered service through deploy, drain, restart, scale and status
// without a lab: the Keystone fake (files, daemons, an in-memory database behind the VIP, keystone-manage) plus the
// answers the infrastructure's commands get from healthy daemons: Galera Synced and Primary, RabbitMQ clustered,
// HAProxy's stats socket with every configured server UP, the VIP on the first load balancer.
import { createHash } from 'node:crypto';
import type { Deployment } from '../../src/model.js';
import type { HostsContext } from '../../src/services/contract.js';
import { HAPROXY_CFG } from '../../src/services/haproxy/haproxy.js';
import { RINGS } from '../../src/services/swift/conf.js';
import { RING_PROGRAM } from '../../src/services/swift/rings.js';
import { hostsFor } from '../../src/topology.js';
import type { ExecOptions, ExecResult } from '../../src/util/exec.js';
import { FakeDb, FakeHost } from './keystone-fake.js';

/** `show stat` columns HAProxy 2.6 prints up to check_code (what parseShowStat reads). */
const HEADER = [
  'pxname',
  'svname',
  'qcur',
  'qmax',
  'scur',
  'smax',
  'slim',
  'stot',
  'bin',
  'bout',
  'dreq',
  'dresp',
  'ereq',
  'econ',
  'eresp',
  'wretr',
  'wredis',
  'status',
  'weight',
  'act',
  'bck',
  'chkfail',
  'chkdown',
  'lastchg',
  'downtime',
  'qlimit',
  'pid',
  'iid',
  'sid',
  'throttle',
  'lbtot',
  'tracked',
  'type',
  'rate',
  'rate_lim',
  'rate_max',
  'check_status',
  'check_code',
];

export class ClusterHost extends FakeHost {
  /** HAProxy server states set through the stats socket (backend/server -> state), UP unless set. */
  readonly serverStates = new Map<string, string>();
  private worker = 1;

  constructor(
    name: string,
    address: string,
    private readonly cluster: FakeCluster,
  ) {
    super(name, address);
  }

  /** `show stat` from this host's rendered haproxy.cfg: each listen section's servers. */
  private showStat(): string {
    const cfg = this.files.get(HAPROXY_CFG)?.content ?? '';
    const rows = [`# ${HEADER.join(',')},`];
    let backend = '';
    for (const line of cfg.split('\n')) {
      const listen = /^listen (\S+)/.exec(line);
      if (listen?.[1]) backend = listen[1];
      const server = /^\s+server (\S+) \S+( backup)?/.exec(line);
      if (server?.[1] && backend !== 'stats') {
        const f = HEADER.map(() => '');
        const state = this.serverStates.get(`${backend}/${server[1]}`) ?? 'UP';
        f[0] = backend;
        f[1] = server[1];
        f[4] = '0';
        f[17] = state === 'ready' ? 'UP' : state === 'drain' ? 'DRAIN' : state === 'maint' ? 'MAINT' : state;
        f[20] = server[2] ? '1' : '0';
        f[36] = 'L7OK';
        f[37] = '200';
        rows.push(`${f.join(',')},`);
      }
    }
    return `${rows.join('\n')}\n`;
  }

  override async exec(argv: readonly string[], opts?: ExecOptions): Promise<ExecResult> {
    const cmd = argv[0] ?? '';
    const ok = (stdout = ''): ExecResult => ({
      argv,
      code: 0,
      signal: null,
      stdout,
      stderr: '',
      timedOut: false,
    });
    const input = opts?.input ?? '';
    // A command the test wants to fail, once (an operation interrupted half way).
    for (const word of this.cluster.failOnce)
      if (argv.includes(word)) {
        this.cluster.failOnce.delete(word);
        await super.exec(argv, opts);
        return { ...ok(), code: 70, stderr: `injected failure of ${word}` };
      }
    // The local node over its socket (not the VIP): status and the root user.
    if (cmd === '/usr/bin/mariadb' && argv.some((a) => a.startsWith('--defaults-file='))) {
      await super.exec(argv, opts);
      if (input.includes("LIKE 'wsrep_%'")) {
        // The cluster is the nodes that run.
        const size = hostsFor(this.cluster.dep, 'mariadb').filter((h) =>
          this.cluster.hosts.get(h.name)?.daemons.has('mariadb'),
        ).length;
        // A node rejoining after a partition answers Joining, non-Primary, for its next few status queries.
        const rejoining = this.cluster.galeraRejoining.get(this.name) ?? 0;
        if (rejoining > 0) this.cluster.galeraRejoining.set(this.name, rejoining - 1);
        return ok(
          [
            `wsrep_local_state_comment\t${rejoining > 0 ? 'Joining' : 'Synced'}`,
            `wsrep_cluster_status\t${rejoining > 0 ? 'non-Primary' : 'Primary'}`,
            `wsrep_cluster_size\t${size}`,
            `wsrep_ready\t${rejoining > 0 ? 'OFF' : 'ON'}`,
            'wsrep_last_committed\t42',
          ].join('\n'),
        );
      }
      if (input.includes("FROM mysql.user WHERE User='root'")) return ok('1\n');
      return ok();
    }
    if (cmd.startsWith('/usr/lib/rabbitmq/bin/')) {
      await super.exec(argv, opts);
      const forget = argv.indexOf('forget_cluster_node');
      if (forget >= 0) this.cluster.forgotten.add(argv[forget + 1] ?? '');
      // A node whose application hung in its boot (after a partition): its CLI answers with an error until a restart.
      if (
        this.cluster.rabbitHung.has(this.name) &&
        (argv.includes('cluster_status') || argv.includes('check_running'))
      )
        return {
          ...ok(),
          code: 69,
          stderr:
            "Error: this command requires the 'rabbit' app to be running on the target node.\n\nUsage\n\nrabbitmqctl cluster_status\n",
        };
      if (argv.includes('cluster_status')) {
        // Members are the inventory's nodes the cluster has not forgotten; running, those whose server runs.
        const members = hostsFor(this.cluster.dep, 'rabbitmq').filter(
          (h) => !this.cluster.forgotten.has(`rabbit@${h.name}`),
        );
        const running = members.filter((h) => this.cluster.hosts.get(h.name)?.daemons.has('rabbitmq'));
        return ok(
          JSON.stringify({
            running_nodes: running.map((h) => `rabbit@${h.name}`),
            disk_nodes: members.map((h) => `rabbit@${h.name}`),
            partitions: {},
            alarms: [],
          }),
        );
      }
      if (argv.includes('list_queues')) return ok('[]');
      return ok();
    }
    if (cmd === 'socat') {
      await super.exec(argv, opts);
      const command = input.trim();
      if (command === 'show stat') return ok(this.showStat());
      if (command === 'show info') return ok(`Name: HAProxy\nPid: ${this.worker}\n`);
      const set = /^set server (\S+) state (\S+)$/.exec(command);
      if (set?.[1] && set[2]) {
        // A drain or maintenance is told to every load balancer; each keeps its own view.
        this.serverStates.set(set[1], set[2]);
        return ok();
      }
      return ok();
    }
    // The OpenStack tier: its Keystone registration and Swift's ring builder print what they changed.
    if (cmd === '/usr/bin/python3' && argv[1] === '-') {
      await super.exec(argv, opts);
      if (input === RING_PROGRAM) {
        const req = JSON.parse(this.files.get(argv[2] ?? '')?.content ?? '{}') as {
          dir: string;
          devices: unknown[];
        };
        const changes: string[] = [];
        for (const ring of RINGS) {
          const ringPath = `${req.dir}/${ring.name}.ring.gz`;
          const content = `ring ${ring.name} ${JSON.stringify(req.devices)}`;
          if (this.files.get(ringPath)?.content !== content) {
            this.files.set(ringPath, { content, mode: 0o644 });
            this.files.set(`${req.dir}/${ring.name}.builder`, { content: `builder ${content}`, mode: 0o644 });
            changes.push(`${ring.name}: rebalanced`);
          }
        }
        return ok(JSON.stringify(changes));
      }
      return ok('[]');
    }
    if (cmd === '/usr/bin/base64' && argv[1] === '-w0') {
      await super.exec(argv, opts);
      return ok(Buffer.from(this.files.get(argv[2] ?? '')?.content ?? '').toString('base64'));
    }
    if (cmd === '/bin/sh' && (argv[2] ?? '').includes('base64 -d')) {
      await super.exec(argv, opts);
      this.files.set(argv[4] ?? '', { content: Buffer.from(input, 'base64').toString(), mode: 0o644 });
      return ok();
    }
    if (cmd === '/bin/sh' && (argv[2] ?? '').includes('md5sum')) {
      await super.exec(argv, opts);
      const lines = RINGS.flatMap((r) => {
        const f = this.files.get(`/etc/swift/${r.name}.ring.gz`);
        return f ? [`${createHash('md5').update(f.content).digest('hex')}  ${r.name}.ring.gz`] : [];
      });
      return ok(lines.join('\n'));
    }
    // Nova's services table: a row for each Nova daemon that runs, reporting now.
    if (cmd === '/usr/bin/mariadb' && input.includes('FROM nova.services')) {
      await super.exec(argv, opts);
      const rows: string[] = [];
      for (const [name, host] of this.cluster.hosts)
        for (const binary of ['nova-compute', 'nova-conductor', 'nova-scheduler'])
          if (host.daemons.has(binary)) rows.push(`${name}\t${binary}\t0\t0\t0`);
      return ok(rows.join('\n'));
    }
    // Neutron's agents table: a row for each agent that runs, reporting now; no router or network bound yet.
    if (cmd === '/usr/bin/mariadb' && input.includes('FROM neutron.agents')) {
      await super.exec(argv, opts);
      const rows: string[] = [];
      for (const [name, host] of this.cluster.hosts)
        for (const daemon of host.daemons.keys())
          if (daemon.startsWith('neutron-') && daemon.endsWith('-agent'))
            rows.push(`${name}\t${daemon}\t0\t1`);
      return ok(rows.join('\n'));
    }
    if (
      cmd === '/usr/bin/mariadb' &&
      (input.includes('ha_router_agent_port_bindings') || input.includes('networkdhcpagentbindings'))
    ) {
      await super.exec(argv, opts);
      return ok('');
    }
    if (cmd === 'ip' && argv[1] === '-o') {
      await super.exec(argv, opts);
      const holder = this.cluster.vipHolder();
      return ok(
        holder === this.name ? ` inet ${this.cluster.dep.globals.internalVip}/32 scope global eth0` : '',
      );
    }
    return super.exec(argv, opts);
  }

  override async stopDaemon(name: string, opts: { signal?: NodeJS.Signals } = {}): Promise<boolean> {
    if (name === 'rabbitmq') this.cluster.rabbitHung.delete(this.name);
    return super.stopDaemon(name, opts);
  }

  override async signalDaemon(name: string, signal?: NodeJS.Signals): Promise<boolean> {
    // A HAProxy reload starts a new worker.
    if (name === 'haproxy' && signal === 'SIGUSR2') this.worker++;
    return super.signalDaemon(name);
  }
}

/** Fake hosts for every host of the deployment, sharing one database. */
export class FakeCluster {
  readonly db = new FakeDb();
  readonly hosts: Map<string, ClusterHost>;
  readonly logs: string[] = [];
  /** RabbitMQ nodes the cluster was told to forget. */
  readonly forgotten = new Set<string>();
  /** Hosts whose RabbitMQ node runs but whose application hangs (until the node is stopped). */
  readonly rabbitHung = new Set<string>();
  /** Galera nodes that run but are still rejoining: how many more status queries answer "Joining". */
  readonly galeraRejoining = new Map<string, number>();
  /** Commands (by an argument they contain) that fail the next time they run. */
  readonly failOnce = new Set<string>();

  constructor(readonly dep: Deployment) {
    this.hosts = new Map(dep.hosts.map((h) => [h.name, new ClusterHost(h.name, h.address, this)]));
    for (const h of this.hosts.values()) h.db = this.db;
  }

  /** The first load balancer whose keepalived runs holds the VIP. */
  vipHolder(): string | undefined {
    return hostsFor(this.dep, 'keepalived').find((s) => this.hosts.get(s.name)?.daemons.has('keepalived'))
      ?.name;
  }

  context(): HostsContext {
    return {
      dep: this.dep,
      hosts: this.hosts,
      log: (m) => this.logs.push(m),
    };
  }
}
