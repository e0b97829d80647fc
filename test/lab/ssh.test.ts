// SSH hosts against real OpenSSH: a 3-host lab whose hosts each run Debian's sshd inside their own network, mount and
// UTS namespaces (src/lab/sshd.ts), reached from the lab's client namespace (the deployer) by a node program that
// opens SshHost to each through connect() with host keys checked against known_hosts (src/lab/ssh-smoke.ts). ctl2 is
// reached as the non-root user `deploy` with passwordless sudo; ctl1 and ctl3 as root. Daemons go through the
// pid-file supervisor (the lab hosts have no systemd). Nothing is sent to a lab address from the root namespace: the
// program runs in the client, and every check made from here reads /proc or the hosts' files.
import { existsSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ScenarioResult } from '../../src/chaos/run.js';
import { isAlive } from '../../src/hosts/proc.js';
import { hostNamespaces, labDown } from '../../src/lab/lab.js';
import type { SmokeReport } from '../../src/lab/ssh-smoke.js';
import { DEPLOYER_KEY, DEPLOYER_KNOWN_HOSTS, SSHD_HOST_KEY, labSshd } from '../../src/lab/sshd.js';
import { waitFor } from '../../src/util/wait.js';
import { type TestLab, createTestLab, leftovers, saveReport } from './harness.js';

// Overridable, so that a second lab of this suite can run beside another (its own name and subnet).
const LAB = process.env.STACKHA_SSH_TEST_LAB || 'sshlab';
const SUBNET = process.env.STACKHA_SSH_TEST_SUBNET || '198.18.30.0/24';
const PREFIX = SUBNET.split('.').slice(0, 3).join('.');
const SMOKE = join(import.meta.dirname, '../../dist/lab/ssh-smoke.js');
const CLI = join(import.meta.dirname, '../../dist/cli/main.js');
const figures: Record<string, number | string> = {};
let lab: TestLab;
let report: SmokeReport;
let chaos: ScenarioResult | undefined;
let deployedOverSsh = false;
const markers = new Map<string, string>();

/** Runs the smoke program inside the client namespace (the deployer). */
function smoke(args: readonly string[]) {
  return lab.client.exec([process.execPath, SMOKE, '--config-dir', `/etc/stackha/${LAB}`, ...args], {
    timeoutMs: 90_000,
  });
}

/** Gone: no /proc entry, or one with another start time (the pid was reused). Zombies wait for init's reaping. */
const reaped = (pid: number, startTime: string): boolean => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] !== startTime;
  } catch {
    return true;
  }
};

describe('SSH hosts over real sshd in a 3-host lab', () => {
  beforeAll(async () => {
    lab = await createTestLab({ name: LAB, subnet: SUBNET, hosts: 3 });
    for (const h of lab.state.hosts) {
      const m = `marker of ${h.name} ${Date.now()}`;
      markers.set(h.name, m);
      await lab.host(h.name).writeFile('/etc/stackha-lab-marker', `${m}\n`, { mode: 0o644 });
    }
    const t0 = Date.now();
    await labSshd(lab.state, { user: 'deploy', userHosts: ['ctl2'] });
    figures.sshdSetupSeconds = (Date.now() - t0) / 1000;
    await lab.recordPids();
  }, 120_000);

  afterAll(async () => {
    saveReport('lab-ssh', { figures, report, chaos });
    console.log('figures', figures);
    // Always, even when a test failed.
    await labDown(LAB, { purge: true });
  }, 120_000);

  it("runs each sshd inside its host's own namespaces, with its own host key", async () => {
    const keys = new Set<string>();
    for (const h of lab.state.hosts) {
      const host = lab.host(h.name);
      const pid = await host.daemonPid('sshd');
      expect(pid, h.name).toBeDefined();
      const ns = hostNamespaces(LAB, h.name);
      expect(readlinkSync(`/proc/${pid}/ns/mnt`)).toBe(`mnt:[${statSync(ns.mnt).ino}]`);
      expect(readlinkSync(`/proc/${pid}/ns/uts`)).toBe(`uts:[${statSync(ns.uts).ino}]`);
      expect(readlinkSync(`/proc/${pid}/ns/net`)).toBe(`net:[${statSync(ns.net).ino}]`);
      const pub = await host.readFile(`${SSHD_HOST_KEY}.pub`);
      expect(pub).toContain(`stackha-lab:${LAB}:${h.name}`);
      keys.add(pub?.split(' ')[1] ?? '');
      // The private key is the host's only: 0600, in its own /etc.
      expect(await host.fileMode(SSHD_HOST_KEY)).toBe(0o600);
    }
    expect(keys.size).toBe(3);
    // None is the machine's own key.
    const machine = existsSync(`${SSHD_HOST_KEY}.pub`) ? readFileSync(`${SSHD_HOST_KEY}.pub`, 'utf8') : '';
    for (const k of keys) expect(machine).not.toContain(k);
    expect(await lab.client.fileMode(DEPLOYER_KEY)).toBe(0o600);
    // The deployer's key pair is the client's own (its /root), not the machine's.
    expect(await lab.client.readFile(`${DEPLOYER_KEY}.pub`)).toContain(`stackha-deployer:${LAB}`);
    const machinePub = existsSync(`${DEPLOYER_KEY}.pub`) ? readFileSync(`${DEPLOYER_KEY}.pub`, 'utf8') : '';
    expect(machinePub).not.toContain('stackha-deployer');
  });

  it('from the deployer namespace: exec, files, sudo and a daemon on every host over sshd', async () => {
    const t0 = Date.now();
    const r = await smoke(['--leave-running', '--round-trips', '30']);
    figures.smokeSeconds = (Date.now() - t0) / 1000;
    expect(r.code, r.stderr).toBe(0);
    report = JSON.parse(r.stdout) as SmokeReport;
    figures.openMs = report.openMs;
    expect(report.hosts.map((h) => h.name)).toEqual(['ctl1', 'ctl2', 'ctl3']);
    const deployUid = /^deploy:x:(\d+):/m.exec((await lab.host('ctl2').readFile('/etc/passwd')) ?? '')?.[1];
    expect(deployUid).toBeDefined();
    for (const h of report.hosts) {
      const host = lab.host(h.name);
      figures[`${h.name}RoundTripMedianMs`] = h.roundTripMs.median;
      figures[`${h.name}RoundTripP95Ms`] = h.roundTripMs.p95;
      figures[`${h.name}Parallel8Ms`] = h.parallel8Ms;
      expect(h.supervisor, h.name).toBe('pidfile');
      expect(h.hostname).toBe(h.name);
      expect(h.etcHostname).toBe(h.name);
      expect(h.marker).toBe(markers.get(h.name));
      expect(h.uid).toBe('0');
      // ctl2 was reached as deploy (the login uid), root through sudo -n; the others as root.
      expect(h.loginUid).toBe(h.name === 'ctl2' ? deployUid : '0');
      // The 0600 write landed in the host's own /etc with that mode, and nowhere else.
      expect(h.secretMode).toBe('600');
      expect(await host.fileMode('/etc/stackha-smoke/secret.conf')).toBe(0o600);
      expect(await host.readFile('/etc/stackha-smoke/secret.conf')).toBe(`secret of ${h.name}\n`);
      // The daemon: started, kept, stopped; its pid is gone for good (init reaps about a second late).
      const d = h.daemon;
      expect(d.keptPid).toBe(d.pid);
      expect(d.pidWhileRunning).toBe(d.pid);
      expect(d.stopped).toBe(true);
      expect(d.pidAfterStop).toBeUndefined();
      expect(isAlive(d.pid, d.startTime)).toBe(false);
      await waitFor(
        `pid ${d.pid} (${h.name} smoke-sleep) reaped`,
        async () => reaped(d.pid, d.startTime) || undefined,
        {
          timeoutMs: 10_000,
        },
      );
    }
    expect(existsSync('/etc/stackha-smoke')).toBe(false);
    // For comparison: the same command through the lab host itself (nsenter, no SSH), 30 times.
    const times: number[] = [];
    for (let i = 0; i < 30; i++) {
      const t = performance.now();
      await lab.host('ctl1').run(['true']);
      times.push(performance.now() - t);
    }
    times.sort((a, b) => a - b);
    figures.labHostExecMedianMs = Math.round((times[14] ?? 0) * 100) / 100;
  }, 120_000);

  it("the daemon left running over SSH is the lab host's own: in its namespaces, in its record, stopped by pid", async () => {
    for (const h of report.hosts) {
      const left = h.left;
      expect(left, h.name).toBeDefined();
      if (!left) continue;
      const host = lab.host(h.name);
      // The same record the lab host keeps: LabHost sees what the SSH host started.
      expect(await host.daemonPid('smoke-left')).toBe(left.pid);
      expect(readlinkSync(`/proc/${left.pid}/ns/mnt`)).toBe(
        `mnt:[${statSync(hostNamespaces(LAB, h.name).mnt).ino}]`,
      );
      expect(await host.stopDaemon('smoke-left', { timeoutMs: 3000 })).toBe(true);
      expect(isAlive(left.pid, left.startTime)).toBe(false);
    }
  });

  it("checks host keys: a key that is not the host's is refused, and so is a host known_hosts does not have", async () => {
    const known = (await lab.client.readFile(DEPLOYER_KNOWN_HOSTS)) ?? '';
    const lines = known.trim().split('\n');
    const ctl1 = lines.find((l) => l.startsWith(`${PREFIX}.11 `));
    expect(ctl1).toBeDefined();
    // ctl2's line carries ctl1's key: a changed key.
    const swapped = lines
      .map((l) => (l.startsWith(`${PREFIX}.12 `) ? `${PREFIX}.12 ${ctl1?.split(' ').slice(1).join(' ')}` : l))
      .join('\n');
    await lab.client.writeFile('/root/.ssh/known_hosts.swapped', `${swapped}\n`, { mode: 0o644 });
    const changed = await smoke(['--known-hosts', '/root/.ssh/known_hosts.swapped', '--round-trips', '1']);
    expect(changed.code).toBe(1);
    expect(changed.stderr).toMatch(
      new RegExp(`ctl2 \\(ssh deploy@${PREFIX.replaceAll('.', '\\.')}\\.12:22\\).*HOST KEY CHANGED`),
    );
    expect(changed.stderr).not.toMatch(/ctl1 \(ssh/);
    await lab.client.writeFile('/root/.ssh/known_hosts.empty', '', { mode: 0o644 });
    const unknown = await smoke(['--known-hosts', '/root/.ssh/known_hosts.empty', '--round-trips', '1']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr.match(/host key not in/g)).toHaveLength(3);
  }, 60_000);

  it('a user without sudo is refused root by sudo -n (deploy on ctl3 has no sudoers line)', async () => {
    const r = await lab.client.exec(
      [
        'ssh',
        '-i',
        DEPLOYER_KEY,
        '-o',
        'BatchMode=yes',
        '-o',
        `UserKnownHostsFile=${DEPLOYER_KNOWN_HOSTS}`,
        '-o',
        'StrictHostKeyChecking=yes',
        `deploy@${PREFIX}.13`,
        'id -un; sudo -n true',
      ],
      { timeoutMs: 20_000 },
    );
    expect(r.stdout.trim()).toBe('deploy');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/password is required/);
  });

  it('deploys the infrastructure and Keystone over SSH from the deployer namespace: runtime shipped, whole, a re-deploy changes nothing', async () => {
    // stackha's own CLI, run where an operator would: in the deployer, against the SSH inventory of the lab.
    const stackha = (args: readonly string[], timeoutMs = 600_000) =>
      lab.client.exec([process.execPath, CLI, '--config-dir', `/etc/stackha/${LAB}`, ...args], { timeoutMs });
    let t0 = Date.now();
    const boot = await stackha(['bootstrap-servers']);
    figures.bootstrapRuntimeSeconds = (Date.now() - t0) / 1000;
    expect(boot.code, boot.stderr).toBe(0);
    // In a lab only the runtime goes to each host (its packages are this machine's).
    for (const h of ['ctl1', 'ctl2', 'ctl3'])
      expect(boot.stdout).toMatch(new RegExp(`^${h}: .*runtime`, 'm'));
    t0 = Date.now();
    const first = await stackha(['deploy']);
    figures.sshDeploySeconds = (Date.now() - t0) / 1000;
    expect(first.code, `${first.stdout}\n${first.stderr}`).toBe(0);
    const status = await stackha(['status'], 120_000);
    expect(status.code, status.stdout).toBe(0);
    // The agents run from the runtime shipped into each host's own /var/lib, with the host's node, as on a machine.
    for (const h of lab.state.hosts) {
      const pid = await lab.host(h.name).daemonPid('galera-health');
      expect(pid, h.name).toBeDefined();
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      expect(argv[0]).toBe('/usr/bin/node');
      expect(argv[1]).toMatch(/^\/var\/lib\/stackha\/runtime\/[0-9a-f]+\/dist\/agents\/galera-health\.js$/);
      expect(await lab.host(h.name).exists(argv[1] ?? '/nonexistent')).toBe(true);
    }
    expect(existsSync('/var/lib/stackha/runtime')).toBe(false);
    t0 = Date.now();
    const again = await stackha(['deploy']);
    figures.sshNoopDeploySeconds = (Date.now() - t0) / 1000;
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain('nothing changed, nothing restarted');
    const boot2 = await stackha(['bootstrap-servers']);
    expect(boot2.code, boot2.stderr).toBe(0);
    expect(boot2.stdout).toMatch(/nothing changed/);
    deployedOverSsh = true;
  }, 900_000);

  it('operates the deployment over SSH: a rolling restart, a Keystone key rotation, a Galera recovery after every node died', async () => {
    expect(deployedOverSsh).toBe(true);
    const stackha = (args: readonly string[], timeoutMs = 600_000) =>
      lab.client.exec([process.execPath, CLI, '--config-dir', `/etc/stackha/${LAB}`, ...args], { timeoutMs });
    const pidsOf = async (daemon: string) =>
      Promise.all(lab.state.hosts.map((h) => lab.host(h.name).daemonPid(daemon)));
    const before = await pidsOf('keystone');
    let t0 = Date.now();
    const restart = await stackha(['restart', 'memcached', 'keystone']);
    figures.sshRestartSeconds = (Date.now() - t0) / 1000;
    expect(restart.code, `${restart.stdout}\n${restart.stderr}`).toBe(0);
    const after = await pidsOf('keystone');
    after.forEach((pid, i) => {
      expect(pid).toBeDefined();
      expect(pid).not.toBe(before[i]);
    });
    const rotate = await stackha(['keystone', 'rotate']);
    expect(rotate.code, rotate.stderr).toBe(0);
    expect(rotate.stdout).toMatch(/primary key 1 -> 2 .*distributed to ctl2, ctl3/);
    // Every Galera node dies (killed from here, by pid: the fault is the lab's); the recovery runs over SSH.
    for (const h of lab.state.hosts)
      expect(await lab.host(h.name).signalDaemon('mariadb', 'SIGKILL')).toBe(true);
    await waitFor(
      'every mariadbd gone',
      async () => ((await pidsOf('mariadb')).every((p) => p === undefined) ? true : undefined),
      { timeoutMs: 15_000 },
    );
    t0 = Date.now();
    const recover = await stackha(['recover', 'galera']);
    figures.sshRecoverSeconds = (Date.now() - t0) / 1000;
    expect(recover.code, `${recover.stdout}\n${recover.stderr}`).toBe(0);
    expect(recover.stdout).toMatch(/all 3 nodes Synced/);
    const status = await stackha(['status'], 120_000);
    expect(status.code, status.stdout).toBe(0);
  }, 900_000);

  it('runs a chaos scenario over SSH from the deployer (--client local): the Galera writer killed under load, nothing acknowledged lost, whole after', async () => {
    expect(deployedOverSsh).toBe(true);
    const stackha = (args: readonly string[], timeoutMs = 600_000) =>
      lab.client.exec([process.execPath, CLI, '--config-dir', `/etc/stackha/${LAB}`, ...args], { timeoutMs });
    // A scenario that needs the lab's own levers is refused over SSH, before anything runs.
    const refused = await stackha([
      'chaos',
      'run',
      'vip-holder-host-crash',
      'host-partition',
      '--client',
      'local',
    ]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/vip-holder-host-crash runs only in a lab: it crashes a host/);
    expect(refused.stderr).toMatch(/host-partition runs only in a lab: it cuts a host's network link/);
    const noClient = await stackha(['chaos', 'run', 'galera-writer-dies']);
    expect(noClient.code).not.toBe(0);
    expect(noClient.stderr).toMatch(/reached over SSH.*--client local/);
    const pidsBefore = new Map<string, number | undefined>();
    for (const h of lab.state.hosts) pidsBefore.set(h.name, await lab.host(h.name).daemonPid('mariadb'));
    // The report is written in the deployer's own filesystem (the client namespace's view).
    const reportPath = '/var/lib/stackha/chaos-ssh/report.json';
    const t0 = Date.now();
    const run = await stackha(
      [
        'chaos',
        'run',
        'galera-writer-dies',
        '--client',
        'local',
        '--queues',
        'deployed',
        '--hold',
        '8',
        '--json',
        reportPath,
      ],
      900_000,
    );
    figures.sshChaosSeconds = (Date.now() - t0) / 1000;
    const text = await lab.client.readFile(reportPath);
    expect(text, `${run.stdout}\n${run.stderr}`).toBeDefined();
    const results = (JSON.parse(text ?? '{}') as { results: ScenarioResult[] }).results;
    expect(results).toHaveLength(1);
    const r = results[0] as ScenarioResult;
    chaos = r;
    figures.sshChaosRecoveredSeconds = r.recoveredSeconds ?? 'not whole';
    for (const w of r.workloads) {
      figures[`sshChaos_${w.workload}_faultGapMs`] = w.faultGapMs;
      figures[`sshChaos_${w.workload}_steadyGapMs`] = w.steadyGapMs;
    }
    figures.sshChaosSqlAcknowledged = r.sql.acknowledged;
    figures.sshChaosAmqpConfirmed = r.amqp.confirmed;
    expect(r.error, r.error).toBeUndefined();
    expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(0);
    // The fault was real and seen: the writer's mariadbd gone (through its host, over SSH), the writes moved.
    expect(r.evidence.filter((e) => e.startsWith('NOT OBSERVED'))).toEqual([]);
    const evidence = r.evidence.join('\n');
    const victim = /mariadb on (ctl\d) gone \(pid (\d+)\)/.exec(evidence);
    expect(victim, evidence).not.toBeNull();
    expect(evidence).toMatch(/writes moved from ctl\d to ctl\d/);
    // The pid the scenario killed was the victim's mariadbd as the lab host recorded it; deploy restarted it (a new one).
    expect(Number(victim?.[2])).toBe(pidsBefore.get(victim?.[1] ?? ''));
    const after = await lab.host(victim?.[1] ?? '').daemonPid('mariadb');
    expect(after).toBeDefined();
    expect(after).not.toBe(pidsBefore.get(victim?.[1] ?? ''));
    // Nothing acknowledged lost: every row on every Galera node (each read directly), every confirmed message received.
    expect(r.sql.acknowledged).toBeGreaterThan(100);
    expect(r.sql.nodes.map((n) => n.node)).toEqual(['ctl1', 'ctl2', 'ctl3']);
    for (const n of r.sql.nodes) {
      expect(n.error, n.node).toBeUndefined();
      expect(n.lostIds, n.node).toEqual([]);
      expect(n.present, n.node).toBe(r.sql.acknowledged);
    }
    expect(r.amqp.notVerified).toBe(false);
    expect(r.amqp.confirmed).toBeGreaterThan(100);
    expect(r.amqp.lost).toBe(0);
    // Whole after: no problem left, every workload working again.
    expect(r.problemsAfter).toEqual([]);
    expect(r.recoveredSeconds).toBeDefined();
    for (const w of r.workloads) expect(w.recovered, w.workload).toBe(true);
    // The load generator ran on the deployer and is gone: its record is the client namespace's own.
    expect(await lab.client.daemonPid('chaos-load')).toBeUndefined();
    expect(await lab.client.exists('/var/log/stackha/chaos-load.log')).toBe(true);
  }, 900_000);

  it('lab down leaves nothing behind', async () => {
    await lab.recordPids();
    const r = await lab.cli(['lab', 'down', '--purge']);
    expect(r.code, r.stderr).toBe(0);
    expect(await leftovers(lab)).toEqual([]);
  }, 120_000);
});
