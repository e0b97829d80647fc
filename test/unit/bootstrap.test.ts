import { existsSync } from 'node:fs';
import { join } from 'node:path';
// `stackha bootstrap-servers` against fake hosts: the plan per host from the service declarations, only missing
// packages installed (with or without recommends, as declared) under a temporary policy-rc.d that is always removed,
// ip_nonlocal_bind on load balancers only and only when it differs, a second run that changes nothing, labs refused,
// and an unreachable host failing the run before anything changes anywhere.
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { UnreachableHosts } from '../../src/hosts/connect.js';
import type { Host } from '../../src/hosts/host.js';
import type { SshHost } from '../../src/hosts/ssh.js';
import { PASSWORD_KEYS, buildDeployment } from '../../src/inventory/load.js';
import type { Deployment } from '../../src/model.js';
import {
  BootstrapFailed,
  BootstrapRefused,
  POLICY_RC_D,
  POLICY_RC_D_CONTENT,
  SYSCTL_CONTENT,
  SYSCTL_FILE,
  bootstrapPlan,
  bootstrapServers,
  bootstrapServersPlan,
  formatBootstrapReport,
} from '../../src/ops/bootstrap.js';
import { buildRuntimeImage } from '../../src/runtime/image.js';
import { RUNTIME_ROOT } from '../../src/runtime/runtime.js';
import { debianPackages, deployedServices } from '../../src/services/registry.js';
import { CommandError, type ExecOptions, type ExecResult } from '../../src/util/exec.js';
import { RuntimeHost, fixtureCheckout } from './runtime-fake.js';

/** The runtime shipped to the agent hosts: a small checkout's (test/unit/runtime-fake.ts), really unpacked and run. */
const checkout = fixtureCheckout();
const IMAGE = buildRuntimeImage(checkout.root);
const RUNTIME = () => IMAGE;
const made: RuntimeHost[] = [];
afterEach(() => {
  for (const h of made.splice(0)) h.runtimeRoot.cleanup();
});
afterAll(() => checkout.cleanup());

const PASSWORDS = PASSWORD_KEYS.map((k) => `${k}: TOPSECRET-${k}\n`).join('');
const MULTINODE = [
  '[control]',
  'ctl1 ansible_host=10.0.0.11',
  'ctl2 ansible_host=10.0.0.12',
  'ctl3 ansible_host=10.0.0.13',
  '[loadbalancer]',
  'lb1 ansible_host=10.0.0.21',
  'lb2 ansible_host=10.0.0.22',
  '[compute]',
  'cmp1 ansible_host=10.0.0.31',
  '[storage]',
  'st1 ansible_host=10.0.0.41',
  'st2 ansible_host=10.0.0.42',
  'st3 ansible_host=10.0.0.43',
  '[monitoring]',
  'mon1 ansible_host=10.0.0.51',
  '',
].join('\n');

function deployment(globals = ''): Deployment {
  return buildDeployment(
    {
      multinode: MULTINODE,
      globals: `kolla_internal_vip_address: 10.0.0.10\n${OPENSTACK}${globals}`,
      passwords: PASSWORDS,
    },
    '/etc/stackha',
  );
}

/** The whole API tier on, so every kind of declaration (with and without recommends) is on some host. */
const OPENSTACK = ['placement', 'neutron', 'nova', 'swift', 'glance']
  .map((s) => `enable_${s}: true\n`)
  .join('');

const NONLOCAL = '/proc/sys/net/ipv4/ip_nonlocal_bind';

/** A Debian host: dpkg's installed set, apt-get that installs into it, sysctl -p that sets the live value. */
class AptHost extends RuntimeHost {
  readonly installed = new Set<string>();
  /** apt-get install fails (a mirror is down). */
  failInstall = false;
  /** What each apt-get install saw: its argv, and whether policy-rc.d forbade starts at that moment. */
  readonly installs: { argv: readonly string[]; policy: string | undefined; env: unknown }[] = [];
  opened = false;

  constructor(name: string, address: string) {
    super(name, address);
    made.push(this);
    this.files.set(NONLOCAL, { content: '0\n', mode: 0o644 });
  }

  override async exec(argv: readonly string[], opts?: ExecOptions): Promise<ExecResult> {
    if (this.runtimeRoot.handles(argv)) return super.exec(argv, opts);
    await super.exec(argv, opts);
    const r = (code: number, stdout = '', stderr = ''): ExecResult => ({
      argv,
      code,
      signal: null,
      stdout,
      stderr,
      timedOut: false,
    });
    if (argv[0] === 'dpkg-query') {
      const pkg = argv[3] ?? '';
      return this.installed.has(pkg)
        ? r(0, 'install ok installed')
        : r(1, '', `dpkg-query: no packages found matching ${pkg}\n`);
    }
    if (argv[0] === 'apt-get' && argv[1] === 'install') {
      this.installs.push({ argv, policy: this.files.get(POLICY_RC_D)?.content, env: opts?.env });
      if (this.failInstall) return r(100, '', 'E: Unable to fetch some archives\n');
      for (const p of argv.slice(2).filter((a) => !a.startsWith('-'))) this.installed.add(p);
      return r(0);
    }
    if (argv[0] === 'sysctl' && argv[1] === '-p') {
      if (this.files.get(argv[2] ?? '')?.content.includes('ip_nonlocal_bind = 1'))
        this.files.set(NONLOCAL, { content: '1\n', mode: 0o644 });
      return r(0, 'net.ipv4.ip_nonlocal_bind = 1\n');
    }
    return r(0);
  }

  override async run(argv: readonly string[], opts?: ExecOptions): Promise<string> {
    const res = await this.exec(argv, opts);
    if (res.code !== 0) throw new CommandError(res, `${this.name} (ssh root@${this.address}:22)`);
    return res.stdout;
  }

  aptInstalls(): (readonly string[])[] {
    return this.installs.map((i) => i.argv);
  }
  writes(path: string): number {
    return this.calls.filter((c) => c.op === 'write' && c.path === path).length;
  }
}

function cluster(dep: Deployment): {
  hosts: Map<string, AptHost>;
  connection: { hosts: ReadonlyMap<string, Host> };
} {
  const hosts = new Map(dep.hosts.map((h) => [h.name, new AptHost(h.name, h.address)]));
  return { hosts, connection: { hosts } };
}

const get = (m: Map<string, AptHost>, n: string): AptHost => {
  const h = m.get(n);
  if (!h) throw new Error(`no host ${n}`);
  return h;
};

describe('bootstrap plan', () => {
  it('gives each host the packages its services declare, split by their recommends flag', () => {
    const dep = deployment();
    const plan = new Map(bootstrapPlan(dep).map((p) => [p.host, p]));
    expect([...plan.keys()]).toEqual([
      'ctl1',
      'ctl2',
      'ctl3',
      'lb1',
      'lb2',
      'cmp1',
      'st1',
      'st2',
      'st3',
      'mon1',
    ]);

    const ctl = plan.get('ctl1');
    expect(ctl?.packages).toEqual(
      expect.arrayContaining([
        'mariadb-server',
        'galera-4',
        'rabbitmq-server',
        'memcached',
        'python3-keystone',
      ]),
    );
    expect(ctl?.packagesNoRecommends).toEqual(
      expect.arrayContaining(['nova-api', 'neutron-server', 'glance-api']),
    );
    expect(ctl?.packages).not.toContain('haproxy');
    expect(ctl?.nonlocalBind).toBe(false);

    // The load balancers: HAProxy and keepalived (the loadbalancer group), and the sysctl.
    expect(plan.get('lb1')).toEqual({
      host: 'lb1',
      services: ['haproxy', 'keepalived'],
      packages: ['haproxy', 'keepalived', 'socat'],
      // keepalived's HAProxy watcher is a stackha agent: node for it.
      packagesNoRecommends: ['nodejs'],
      nonlocalBind: true,
      agents: ['agents/haproxy-watch.js'],
    });
    expect(ctl?.agents).toEqual(['agents/galera-health.js']);
    expect(ctl?.packagesNoRecommends).toContain('nodejs');
    expect(plan.get('cmp1')?.packages).toEqual([]);
    expect(plan.get('cmp1')?.packagesNoRecommends).toEqual(['nova-compute', 'nova-compute-ironic']);
    expect(plan.get('st1')?.packagesNoRecommends).toEqual(expect.arrayContaining(['swift-object', 'rsync']));
    // A host of no service's group gets nothing.
    expect(plan.get('mon1')).toEqual({
      host: 'mon1',
      services: [],
      packages: [],
      packagesNoRecommends: [],
      nonlocalBind: false,
      agents: [],
    });
    // nodejs exactly on the hosts that run an agent (the declarations say which): not compute, storage, monitoring.
    expect(
      [...plan.values()].filter((p) => p.packagesNoRecommends.includes('nodejs')).map((p) => p.host),
    ).toEqual(['ctl1', 'ctl2', 'ctl3', 'lb1', 'lb2']);
    expect([...plan.values()].filter((p) => p.agents.length > 0).map((p) => p.host)).toEqual([
      'ctl1',
      'ctl2',
      'ctl3',
      'lb1',
      'lb2',
    ]);
    // Together the hosts get exactly what `stackha packages` lists, and the agents' node.
    const all = new Set([...plan.values()].flatMap((p) => [...p.packages, ...p.packagesNoRecommends]));
    expect([...all].sort()).toEqual([...debianPackages(deployedServices(dep)), 'nodejs'].sort());
  });

  it('follows enable_* switches: keepalived off leaves HAProxy, and the sysctl, on the load balancers', () => {
    const plan = bootstrapPlan(deployment('enable_keepalived: false\n'));
    expect(plan.find((p) => p.host === 'lb1')).toMatchObject({
      packages: ['haproxy', 'socat'],
      packagesNoRecommends: [],
      nonlocalBind: true,
      agents: [],
    });
  });
});

describe('bootstrap-servers', () => {
  it('installs only what is missing, no service started by the install, then the sysctl on load balancers', async () => {
    const dep = deployment();
    const { hosts, connection } = cluster(dep);
    const ctl1 = get(hosts, 'ctl1');
    ctl1.installed.add('memcached');
    ctl1.installed.add('rsync');
    const r = await bootstrapServers(dep, { connection, runtime: RUNTIME });

    const installs = ctl1.installs;
    expect(installs).toHaveLength(2);
    const [withRec, bare] = installs;
    expect(withRec?.argv.slice(0, 4)).toEqual(['apt-get', 'install', '-y', '-q']);
    expect(withRec?.argv).not.toContain('--no-install-recommends');
    expect(withRec?.argv).toContain('mariadb-server');
    expect(withRec?.argv).not.toContain('memcached');
    expect(withRec?.argv).not.toContain('rsync');
    expect(bare?.argv).toContain('--no-install-recommends');
    expect(bare?.argv).toContain('nova-api');
    for (const i of installs) {
      expect(i.policy).toBe(POLICY_RC_D_CONTENT);
      expect(i.env).toEqual({ DEBIAN_FRONTEND: 'noninteractive' });
    }
    expect(POLICY_RC_D_CONTENT).toMatch(/^#!\/bin\/sh\n[\s\S]*exit 101\n$/);
    expect(ctl1.calls.find((c) => c.op === 'write' && c.path === POLICY_RC_D)).toMatchObject({ mode: 0o755 });
    expect(ctl1.files.has(POLICY_RC_D)).toBe(false);
    expect(ctl1.calls.some((c) => c.op === 'remove' && c.path === POLICY_RC_D)).toBe(true);

    // The sysctl only on the load balancers.
    for (const [name, h] of hosts) {
      const lb = name.startsWith('lb');
      expect(h.files.get(SYSCTL_FILE), name).toEqual(
        lb ? { content: SYSCTL_CONTENT, mode: 0o644 } : undefined,
      );
      expect(
        h.execs((a) => a[0] === 'sysctl'),
        name,
      ).toEqual(lb ? [['sysctl', '-p', SYSCTL_FILE]] : []);
      expect(h.files.get(NONLOCAL)?.content, name).toBe(lb ? '1\n' : '0\n');
    }
    // A host with no service is asked nothing.
    expect(get(hosts, 'mon1').calls).toEqual([]);

    const ctl1Line = r.hosts.find((h) => h.host === 'ctl1');
    expect(ctl1Line?.present).toBe(2);
    const text = formatBootstrapReport(r);
    expect(text).toMatch(
      /^ctl1: installed \d+ packages \(.*mariadb-server.*nodejs.*\); runtime [0-9a-f]{16} shipped \(\d+ KiB\) and made current; 2 packages already installed \(\d+\.\d s\)$/m,
    );
    expect(text).toMatch(
      new RegExp(
        `^lb1: installed 4 packages \\(haproxy keepalived nodejs socat\\); net\\.ipv4\\.ip_nonlocal_bind=1 written to /etc/sysctl\\.d/60-stackha\\.conf and applied; runtime ${IMAGE.hash} shipped \\(\\d+ KiB\\) and made current \\(`,
        'm',
      ),
    );
    // The runtime went to the agent hosts only, after nodejs was installed.
    for (const [name, h] of hosts) {
      const agentHost = name.startsWith('ctl') || name.startsWith('lb');
      expect(h.runtimeScripts(), name).toEqual(agentHost ? ['probe', 'unpack', 'commit'] : []);
      expect(existsSync(join(h.runtimeRoot.local(RUNTIME_ROOT), IMAGE.hash)), name).toBe(agentHost);
      if (agentHost) expect(h.installed.has('nodejs'), name).toBe(true);
    }
    expect(get(hosts, 'cmp1').installs.flatMap((i) => i.argv)).not.toContain('nodejs');
    expect(text).toMatch(/^mon1: nothing to do \(no service\) \(/m);
    expect(text).toMatch(/^bootstrapped 10 hosts in \d+\.\d s$/m);
    expect(r.changed).toBe(true);
  });

  it('a second run changes nothing and says so', async () => {
    const dep = deployment();
    const { hosts, connection } = cluster(dep);
    await bootstrapServers(dep, { connection, runtime: RUNTIME });
    const before = new Map([...hosts].map(([n, h]) => [n, h.calls.length]));
    const again = await bootstrapServers(dep, { connection, runtime: RUNTIME });
    expect(again.changed).toBe(false);
    for (const [n, h] of hosts) {
      const calls = h.calls.slice(before.get(n));
      // Only reads: dpkg-query per package and the runtime probe; no write, no remove, no apt-get, no sysctl, nothing
      // sent on stdin.
      expect(
        calls.filter((c) => c.op !== 'exec'),
        n,
      ).toEqual([]);
      expect(
        calls.every((c) => c.op === 'exec' && (c.argv[0] === 'dpkg-query' || c.argv[0] === 'sh')),
        n,
      ).toBe(true);
      expect(h.runtimeScripts().slice(n.startsWith('ctl') || n.startsWith('lb') ? 3 : 0), n).toEqual(
        n.startsWith('ctl') || n.startsWith('lb') ? ['probe'] : [],
      );
      expect(calls.filter((c) => c.op === 'exec' && c.input !== undefined)).toEqual([]);
    }
    const text = formatBootstrapReport(again);
    expect(text).toMatch(
      new RegExp(
        `^lb1: nothing changed \\(4 packages already installed, net\\.ipv4\\.ip_nonlocal_bind already set, runtime up to date \\(${IMAGE.hash}\\)\\)`,
        'm',
      ),
    );
    expect(text).toMatch(/^nothing changed on 10 hosts \(\d+\.\d s\)$/m);
  });

  it('rewrites the sysctl file only when it differs, and applies a right file whose value is not live', async () => {
    const dep = deployment();
    const { hosts, connection } = cluster(dep);
    const lb1 = get(hosts, 'lb1');
    const lb2 = get(hosts, 'lb2');
    await bootstrapServers(dep, { connection, runtime: RUNTIME });
    // lb1: someone edited the file; lb2: the file is right, the live value was reset.
    lb1.files.set(SYSCTL_FILE, { content: 'net.ipv4.ip_nonlocal_bind = 0\n', mode: 0o644 });
    lb2.files.set(NONLOCAL, { content: '0\n', mode: 0o644 });
    const r = await bootstrapServers(dep, { connection, runtime: RUNTIME });
    expect(lb1.writes(SYSCTL_FILE)).toBe(2);
    expect(lb1.files.get(SYSCTL_FILE)?.content).toBe(SYSCTL_CONTENT);
    expect(lb2.writes(SYSCTL_FILE)).toBe(1);
    expect(lb2.execs((a) => a[0] === 'sysctl')).toHaveLength(2);
    expect(r.hosts.find((h) => h.host === 'lb1')?.sysctl).toBe('written');
    expect(r.hosts.find((h) => h.host === 'lb2')?.sysctl).toBe('applied');
    expect(formatBootstrapReport(r)).toMatch(/^lb2: net\.ipv4\.ip_nonlocal_bind=1 applied from/m);
  });

  it('removes policy-rc.d when apt-get fails, and the error names host, command and cause', async () => {
    const dep = deployment();
    const { hosts, connection } = cluster(dep);
    get(hosts, 'ctl2').failInstall = true;
    const err = await bootstrapServers(dep, { connection, runtime: RUNTIME }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BootstrapFailed);
    const message = (err as Error).message;
    expect(message).toMatch(/^bootstrap-servers failed on 1 host:/);
    expect(message).toMatch(
      /ctl2 \(ssh root@10\.0\.0\.12:22\): apt-get install -y -q .*mariadb-server.* exited 100/,
    );
    expect(message).toContain('E: Unable to fetch some archives');
    expect(get(hosts, 'ctl2').files.has(POLICY_RC_D)).toBe(false);
    // The other hosts went on, and are reported.
    expect((err as BootstrapFailed).done.map((h) => h.host)).not.toContain('ctl2');
    expect((err as BootstrapFailed).done).toHaveLength(9);
  });

  it("leaves an operator's own policy-rc.d alone, and removes a leftover of stackha's", async () => {
    const dep = deployment();
    const { hosts, connection } = cluster(dep);
    const own = '#!/bin/sh\nexit 0\n';
    const ctl1 = get(hosts, 'ctl1');
    const ctl2 = get(hosts, 'ctl2');
    ctl1.files.set(POLICY_RC_D, { content: own, mode: 0o755 });
    ctl2.files.set(POLICY_RC_D, { content: POLICY_RC_D_CONTENT, mode: 0o755 });
    const r = await bootstrapServers(dep, { connection, runtime: RUNTIME });
    expect(ctl1.files.get(POLICY_RC_D)?.content).toBe(own);
    expect(ctl1.writes(POLICY_RC_D)).toBe(0);
    expect(ctl1.calls.some((c) => c.op === 'remove' && c.path === POLICY_RC_D)).toBe(false);
    expect(ctl2.files.has(POLICY_RC_D)).toBe(false);
    expect(ctl2.writes(POLICY_RC_D)).toBe(0);
    expect(formatBootstrapReport(r)).toMatch(
      /^ctl1: installed .*, with the host's own \/usr\/sbin\/policy-rc\.d left in place/m,
    );
  });

  it('refuses a lab, naming scripts/ensure-deps.sh, before reaching any host', async () => {
    const dep = deployment('stackha_lab: nolabx7\n');
    const { hosts, connection } = cluster(dep);
    const err = await bootstrapServers(dep, { connection, runtime: RUNTIME }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BootstrapRefused);
    expect((err as Error).message).toMatch(
      /^lab nolabx7 \(stackha_lab in globals\.yml\): not bootstrapping ctl1, /,
    );
    expect((err as Error).message).toContain('scripts/ensure-deps.sh');
    for (const h of hosts.values()) expect(h.calls).toEqual([]);
    // Without a connection handed in, the refusal comes before connect() (which would say the lab is not up).
    await expect(bootstrapServers(dep)).rejects.toThrow(BootstrapRefused);
  });

  it('in a lab, only ships the runtime, to the hosts reached over SSH: no package, no sysctl', async () => {
    // Lab hosts reached over SSH (the sshd lab): ctl1 and lb1; the rest are entered as namespaces.
    const multinode = MULTINODE.replace(
      'ctl1 ansible_host=10.0.0.11',
      'ctl1 ansible_host=10.0.0.11 ansible_connection=ssh',
    )
      .replace('lb1 ansible_host=10.0.0.21', 'lb1 ansible_host=10.0.0.21 ansible_connection=ssh')
      .replace('cmp1 ansible_host=10.0.0.31', 'cmp1 ansible_host=10.0.0.31 ansible_connection=ssh');
    const dep = buildDeployment(
      {
        multinode,
        globals: `kolla_internal_vip_address: 10.0.0.10\n${OPENSTACK}stackha_lab: nolabx7\n`,
        passwords: PASSWORDS,
      },
      '/etc/stackha',
    );
    // cmp1 is reached over SSH but runs no agent: nothing to do there.
    expect(bootstrapServersPlan(dep).map((p) => p.host)).toEqual(['ctl1', 'lb1']);
    const { hosts, connection } = cluster(dep);
    const r = await bootstrapServers(dep, { connection, runtime: RUNTIME });
    expect(r.hosts.map((h) => h.host)).toEqual(['ctl1', 'lb1']);
    for (const name of ['ctl1', 'lb1']) {
      const h = get(hosts, name);
      const argvs = h.calls.flatMap((c) => (c.op === 'exec' ? [c.argv.join(' ')] : []));
      expect(
        argvs.some((a) => /apt-get|dpkg-query|sysctl/.test(a)),
        name,
      ).toBe(false);
      expect(existsSync(join(h.runtimeRoot.local(RUNTIME_ROOT), IMAGE.hash)), name).toBe(true);
    }
    for (const name of ['ctl2', 'ctl3', 'lb2', 'cmp1', 'st1'])
      expect(get(hosts, name).calls, name).toEqual([]);
    expect(formatBootstrapReport(r)).toMatch(new RegExp(`^ctl1: runtime ${IMAGE.hash} shipped`, 'm'));
  });

  it('a host that cannot be reached fails the run before anything is asked of any host', async () => {
    const dep = deployment();
    const built: AptHost[] = [];
    const err = await bootstrapServers(dep, {
      connectOptions: {
        knownHostsFile: '/nonexistent/known_hosts',
        sshHost: (spec) => {
          const h = new AptHost(spec.name, spec.address);
          built.push(h);
          return Object.assign(h, {
            open: async () => {
              if (spec.name === 'lb2') throw new Error('connect: ETIMEDOUT');
              h.opened = true;
            },
            close: () => {},
          }) as unknown as SshHost;
        },
      },
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnreachableHosts);
    expect((err as Error).message).toMatch(/nothing was changed on any host:\n {2}lb2: connect: ETIMEDOUT/);
    expect(built).toHaveLength(10);
    for (const h of built) expect(h.calls, h.name).toEqual([]);
  });
});
