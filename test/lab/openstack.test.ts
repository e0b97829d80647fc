// The OpenStack API tier on a real 3-host lab, deployed once and checked many ways: Keystone (under uwsgi on every
// host, behind HAProxy on the VIP, its database in Galera through the VIP, its cache in every memcached), then
// Placement, Neutron's server, Nova (nova-compute with nova's fake virt driver: a simulated hypervisor), Swift and
// Glance on Swift, driven with the real openstack client from the lab's client namespace, then failed under load.
// Invariants are asserted; timings, memory and chaos figures are printed and saved to reports/lab-openstack.json.
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatResults, saveChaosReport, violations } from '../../src/chaos/report.js';
import { DEFAULT_RUN, type ScenarioResult, chaosContext, runScenario } from '../../src/chaos/run.js';
import { OPENSTACK_SCENARIOS, scenarioByName } from '../../src/chaos/scenarios.js';
import { replicaCounts } from '../../src/chaos/swift-replicas.js';
import { labConfigDir, labDown, labStatus } from '../../src/lab/lab.js';
import {
  CHAOS_TENANT,
  type TenantInfo,
  activeRouterHost,
  ensureTenantNetwork,
  routerStates,
  startPing,
  tenantDown,
  tenantUp,
} from '../../src/lab/tenant.js';
import { compareValidate, issueAdminToken, keystoneStatus, validateToken } from '../../src/ops/keystone.js';
import { clusterProblems, clusterStatus, haproxyOf, statusOf } from '../../src/ops/status.js';
import type { BenchResult } from '../../src/probes/keystone-load.js';
import { haproxySocket, parseShowStat } from '../../src/services/haproxy/haproxy.js';
import { holdsVip } from '../../src/services/keepalived/keepalived.js';
import {
  CREDENTIAL_KEYS_DIR,
  FERNET_KEYS_DIR,
  KEYSTONE_LB_NAME,
  keySetFingerprint,
  readKeySet,
  writeKeySet,
} from '../../src/services/keystone/keystone.js';
import type { KeystoneStatus } from '../../src/services/keystone/status.js';
import { SERVICES, daemonDeclarations, deployedServices } from '../../src/services/registry.js';
import { sleep, waitFor } from '../../src/util/wait.js';
import { type TestLab, createTestLab, leftovers, saveReport } from './harness.js';

const LAB = 'tapi';
const figures: Record<string, unknown> = {};
let lab: TestLab;

const vip = () => lab.dep.globals.internalVip;
const vipUrl = () => `http://${vip()}:5000`;
const backendUrl = (name: string) => `http://${lab.host(name).address}:5000`;
const hostNames = () => lab.state.hosts.map((h) => h.name);

async function token(url = vipUrl()): Promise<string> {
  const r = await issueAdminToken(lab.client, lab.dep, url);
  if (!r.token) throw new Error(`token issue through ${url} failed: ${r.error}`);
  return r.token;
}

/** Switches the whole API tier (Keystone and every OpenStack service) on or off in the lab's globals.yml. */
async function setApiTier(enabled: boolean): Promise<void> {
  const file = join(labConfigDir(LAB), 'globals.yml');
  let text = readFileSync(file, 'utf8');
  for (const key of new Set(SERVICES.filter((s) => s.tier === 'api').map((s) => s.enable.key)))
    text = text.replace(new RegExp(`^${key}: .*$`, 'm'), `${key}: ${enabled}`);
  writeFileSync(file, text);
}

/** Seconds per service from a deploy's summary lines (`nova: started ctl1,ctl2,ctl3 (41.2 s)`). */
function stepSeconds(stdout: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of stdout.matchAll(/^([\w-]+): .* \((\d+(?:\.\d+)?) s\)$/gm))
    if (m[1] && m[2]) out[m[1]] = Number(m[2]);
  return out;
}

/** PSS per daemon summed over the hosts, and the total, in MiB. */
async function memory(): Promise<Record<string, number>> {
  const s = await labStatus(LAB);
  const kib: Record<string, number> = {};
  for (const n of s.namespaces) for (const [d, k] of Object.entries(n.daemons)) kib[d] = (kib[d] ?? 0) + k;
  const out = Object.fromEntries(Object.entries(kib).map(([d, k]) => [d, Math.round(k / 1024)]));
  out.total = Math.round(s.totalPssKiB / 1024);
  return out;
}

/** `openstack ... -f json` in the client namespace, parsed. */
async function osJson<T>(args: readonly string[]): Promise<T> {
  const r = await lab.cli(['openstack', '--', ...args, '-f', 'json'], 300_000);
  if (r.code !== 0) throw new Error(`openstack ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

/** A flavor and an image both named `name`, for servers on the fake driver (it never reads the image). */
async function bootFixture(name: string): Promise<{ id: string }> {
  expect(
    (await lab.cli(['openstack', '--', 'flavor', 'create', '--ram', '64', '--disk', '1', name])).code,
  ).toBe(0);
  const src = '/tmp/stackha-test-boot.img';
  await lab.client.writeFile(src, 'a boot image nova fake driver never reads\n');
  return osJson<{ id: string }>([
    'image',
    'create',
    '--disk-format',
    'raw',
    '--container-format',
    'bare',
    '--file',
    src,
    name,
  ]);
}

async function clientMd5(path: string): Promise<string> {
  const r = await lab.client.exec(['md5sum', path], { timeoutMs: 30_000 });
  return r.stdout.split(' ')[0] ?? '';
}

/** GET with an admin token from the client namespace into a file; the token goes in a 0600 header file, never argv. */
async function getWithToken(url: string, out: string): Promise<string> {
  const t = await token();
  await lab.client.writeFile('/tmp/stackha-test-token.hdr', `X-Auth-Token: ${t}\n`, { mode: 0o600 });
  const r = await lab.client.exec(
    ['curl', '-s', '-o', out, '-w', '%{http_code}', '-m', '60', '-H', '@/tmp/stackha-test-token.hdr', url],
    { timeoutMs: 90_000 },
  );
  return r.stdout.trim();
}

async function whole(): Promise<void> {
  await waitFor(
    'a whole cluster',
    async () => (clusterProblems(lab.dep, await clusterStatus(lab.dep)).length === 0 ? true : undefined),
    { timeoutMs: 90_000, intervalMs: 1000 },
  );
}

async function vipHolder(): Promise<string> {
  for (const h of hostNames()) if (await holdsVip(lab.host(h), lab.dep)) return h;
  throw new Error('nobody holds the VIP');
}

describe('the OpenStack API tier on a 3-host lab', () => {
  beforeAll(async () => {
    lab = await createTestLab({ name: LAB, subnet: '198.18.13.0/24', openstack: true });
    // The infrastructure alone first, then the API tier on top: the second deploy is what the API tier adds.
    await setApiTier(false);
    let t0 = Date.now();
    let r = await lab.cli(['deploy']);
    if (r.code !== 0) throw new Error(`infra deploy failed:\n${r.stdout}\n${r.stderr}`);
    figures.infraDeploySeconds = (Date.now() - t0) / 1000;
    figures.infraMemoryMiB = await memory();
    await setApiTier(true);
    t0 = Date.now();
    r = await lab.cli(['deploy'], 1_200_000);
    figures.apiTierDeploySeconds = (Date.now() - t0) / 1000;
    figures.apiTierStepSeconds = stepSeconds(r.stdout);
    if (r.code !== 0) throw new Error(`API tier deploy failed:\n${r.stdout}\n${r.stderr}`);
    console.log(r.stdout);
    figures.memoryMiB = await memory();
    await lab.recordPids();
  }, 1_800_000);

  afterAll(async () => {
    saveReport('lab-openstack', figures);
    console.log('figures', JSON.stringify(figures, null, 2));
    await labDown(LAB, { purge: true });
  }, 120_000);

  it('runs on every host, each answering its health check, UP in every HAProxy, with identical keys', async () => {
    await whole();
    const s = await clusterStatus(lab.dep);
    expect(statusOf<KeystoneStatus>(s, 'keystone')?.hosts.map((h) => [h.host, h.running, h.healthy])).toEqual(
      hostNames().map((n) => [n, true, true]),
    );
    expect(statusOf<KeystoneStatus>(s, 'keystone')?.fernetInSync).toBe(true);
    expect(statusOf<KeystoneStatus>(s, 'keystone')?.credentialInSync).toBe(true);
    for (const hp of haproxyOf(s)) {
      const ks = hp.servers.filter((x) => x.backend === KEYSTONE_LB_NAME);
      expect(
        ks.map((x) => [x.server, x.status]),
        hp.host,
      ).toEqual(hostNames().map((n) => [n, 'UP']));
    }
    for (const n of hostNames()) {
      const h = lab.host(n);
      for (const dir of [FERNET_KEYS_DIR, CREDENTIAL_KEYS_DIR]) {
        expect(await h.fileMode(dir), `${n} ${dir}`).toBe(0o700);
        const keys = await readKeySet(h, dir);
        expect(keys.size, `${n} ${dir}`).toBeGreaterThanOrEqual(2);
        for (const k of keys.keys()) expect(await h.fileMode(`${dir}/${k}`), `${n} ${dir}/${k}`).toBe(0o600);
      }
      expect(await h.fileMode('/etc/keystone/keystone.conf')).toBe(0o600);
    }
  });

  it('a token issued through the VIP validates against every backend directly', async () => {
    const t = await token();
    for (const n of hostNames()) {
      const v = await validateToken(lab.client, backendUrl(n), t);
      expect(v.status, n).toBe(200);
    }
    // And one issued by a backend directly validates through the VIP and on the others.
    const t2 = await token(backendUrl('ctl3'));
    expect((await validateToken(lab.client, vipUrl(), t2)).status).toBe(200);
    expect((await validateToken(lab.client, backendUrl('ctl1'), t2)).status).toBe(200);
    // A token that is not one is refused (as the credential of its own validation: 401).
    expect((await validateToken(lab.client, vipUrl(), `${t.slice(0, -4)}AAAA`)).status).toBe(401);
  });

  it('the real openstack client in the client namespace: token issue, endpoint list, project create', async () => {
    const issue = await lab.cli(['openstack', 'token', 'issue', '-f', 'json'], 120_000);
    expect(issue.code, issue.stderr).toBe(0);
    expect(JSON.parse(issue.stdout)).toHaveProperty('id');
    const endpoints = await lab.cli(['openstack', 'endpoint', 'list', '-f', 'json'], 120_000);
    expect(endpoints.code, endpoints.stderr).toBe(0);
    const list = JSON.parse(endpoints.stdout) as { 'Service Name': string; Interface: string; URL: string }[];
    expect(
      list
        .filter((e) => e['Service Name'] === 'keystone')
        .map((e) => e.Interface)
        .sort(),
    ).toEqual(['admin', 'internal', 'public']);
    for (const e of list)
      if (e['Service Name'] === 'keystone') expect(e.URL).toBe(vipUrl());
      else expect(e.URL.startsWith(`http://${vip()}:`), e.URL).toBe(true);
    const name = `stackha-test-${Date.now()}`;
    const created = await lab.cli(['openstack', 'project', 'create', name, '-f', 'json'], 120_000);
    expect(created.code, created.stderr).toBe(0);
    expect(JSON.parse(created.stdout)).toMatchObject({ name, enabled: true });
    const shown = await lab.cli(['openstack', 'project', 'show', name, '-f', 'json'], 120_000);
    expect(JSON.parse(shown.stdout)).toMatchObject({ name });
    // clouds.yaml and admin-openrc.sh hold the admin password: 0600.
    for (const f of ['clouds.yaml', 'admin-openrc.sh'])
      expect(statSync(join(labConfigDir(LAB), f)).mode & 0o777, f).toBe(0o600);
  }, 300_000);

  it('re-deploying with nothing changed changes and restarts nothing', async () => {
    const daemons = daemonDeclarations(lab.dep).map((d) => d.daemon.name);
    const pids = async () =>
      Promise.all(hostNames().flatMap((n) => daemons.map((d) => lab.host(n).daemonPid(d))));
    const before = await pids();
    const t0 = Date.now();
    const r = await lab.cli(['deploy']);
    figures.noopDeploySeconds = (Date.now() - t0) / 1000;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('nothing changed, nothing restarted');
    for (const s of deployedServices(lab.dep))
      expect(r.stdout).toMatch(new RegExp(`^${s.name}: unchanged ctl1,ctl2,ctl3 \\(`, 'm'));
    expect(await pids()).toEqual(before);
  });

  it('tokens issued before a rotation validate after it on every host; a missed rotation shows in status', async () => {
    const before = await token();
    const r = await lab.cli(['keystone', 'rotate', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const rot = JSON.parse(r.stdout) as {
      host: string;
      before: number;
      after: number;
      distributedTo: string[];
    };
    expect(rot.after).toBe(rot.before + 1);
    expect(rot.distributedTo).toEqual(['ctl2', 'ctl3']);
    const after = await token();
    for (const n of hostNames()) {
      expect((await validateToken(lab.client, backendUrl(n), before)).status, `old token on ${n}`).toBe(200);
      expect((await validateToken(lab.client, backendUrl(n), after)).status, `new token on ${n}`).toBe(200);
    }
    const s = await keystoneStatus({
      dep: lab.dep,
      hosts: new Map(hostNames().map((n) => [n, lab.host(n)])),
    });
    expect(s.fernetInSync).toBe(true);

    // ctl3 misses the next rotation (its old keys put back): status names it and exits 3; a sync repairs it.
    const ctl3 = lab.host('ctl3');
    const stale = await readKeySet(ctl3, FERNET_KEYS_DIR);
    expect((await lab.cli(['keystone', 'rotate'])).code).toBe(0);
    await writeKeySet(ctl3, FERNET_KEYS_DIR, stale);
    const st = await lab.cli(['status']);
    expect(st.code).toBe(3);
    expect(st.stdout).toMatch(
      /keystone: the hosts do not hold the same Fernet keys \(ctl1, ctl2: primary \d+ .*; ctl3: primary \d+/,
    );
    const sync = await lab.cli(['keystone', 'sync']);
    expect(sync.code, sync.stderr).toBe(0);
    expect(sync.stdout).toContain('changed: ctl3');
    expect((await lab.cli(['keystone', 'status'])).code).toBe(0);
    // Two rotations after it was issued, `before` has outlived its key (max_active_keys 3); `after` still validates.
    for (const n of hostNames())
      expect((await validateToken(lab.client, backendUrl(n), after)).status, `token on ${n}`).toBe(200);
  }, 300_000);

  it('a host added later gets the existing keys, never new ones', async () => {
    const t = await token();
    const ctl3 = lab.host('ctl3');
    const want = keySetFingerprint(await readKeySet(lab.host('ctl1'), FERNET_KEYS_DIR));
    // ctl3 as a fresh host: Keystone stopped, no key repositories.
    await ctl3.stopDaemon('keystone', { signal: 'SIGINT', timeoutMs: 20_000 });
    await ctl3.remove(FERNET_KEYS_DIR);
    await ctl3.remove(CREDENTIAL_KEYS_DIR);
    const r = await lab.cli(['deploy']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^keystone: .*started ctl3/m);
    expect(keySetFingerprint(await readKeySet(ctl3, FERNET_KEYS_DIR))).toBe(want);
    expect(keySetFingerprint(await readKeySet(lab.host('ctl1'), FERNET_KEYS_DIR))).toBe(want);
    expect((await validateToken(lab.client, backendUrl('ctl3'), t)).status).toBe(200);
  }, 300_000);

  it('Keystone killed on one host: token issue through the VIP keeps working; HAProxy drops it within a second', async () => {
    await whole();
    const victim = 'ctl2';
    const lb = lab.host(await vipHolder());
    const t0 = Date.now();
    expect(await lab.host(victim).signalDaemon('keystone', 'SIGKILL')).toBe(true);
    const issued: { ok: boolean; ms: number; error?: string }[] = [];
    const issuing = (async () => {
      while (Date.now() - t0 < 6000) {
        const r = await issueAdminToken(lab.client, lab.dep);
        issued.push({ ok: r.token !== undefined, ms: r.ms ?? 0, ...(r.error ? { error: r.error } : {}) });
      }
    })();
    const down = await waitFor(
      `HAProxy to mark ${victim} down`,
      async () => {
        const csv = await haproxySocket(lb, 'show stat');
        const st = parseShowStat(csv ?? '').find(
          (x) => x.backend === KEYSTONE_LB_NAME && x.server === victim,
        );
        return st && st.status !== 'UP' ? (Date.now() - t0) / 1000 : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 50 },
    );
    await issuing;
    figures.killOneBackend = {
      haproxyMarkedDownSeconds: down,
      tokenIssues: issued.length,
      tokenIssueFailures: issued.filter((i) => !i.ok).length,
      errors: issued.filter((i) => !i.ok).map((i) => i.error),
    };
    console.log('kill one backend', figures.killOneBackend);
    expect(down).toBeLessThan(3);
    expect(issued.length).toBeGreaterThan(3);
    expect(issued.filter((i) => i.ok).length).toBeGreaterThanOrEqual(issued.length - 1);
    expect(issued.at(-1)?.ok).toBe(true);
    const r = await lab.cli(['deploy']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^keystone: .*started ${victim}`, 'm'));
    await whole();
  }, 300_000);

  it('chaos: Keystone dies on one host under load; the failed request rate is reported', async () => {
    const ctx = chaosContext(lab.dep, lab.state, (m) => console.log(m));
    const run = (name: string) => runScenario(ctx, scenarioByName(name), { ...DEFAULT_RUN, holdMs: 8000 });
    const figuresOf = (r: ScenarioResult) => {
      const pick = (w: string) => {
        const s = r.workloads.find((x) => x.workload === w);
        return s
          ? {
              ops: s.ops,
              failures: s.failures,
              failedRate: s.failures / s.ops,
              faultGapMs: s.faultGapMs,
              faultGapStartMs: s.faultGapStartMs,
              steadyGapMs: s.steadyGapMs,
              during: s.during,
              outside: s.outside,
              errors: s.errors,
            }
          : undefined;
      };
      return {
        target: r.target,
        recoveredSeconds: r.recoveredSeconds,
        validate: pick('http'),
        issue: pick('tok'),
      };
    };
    const r: ScenarioResult = await run('keystone-dies-on-one-host');
    console.log(formatResults([r]));
    figures.chaosKeystoneDies = figuresOf(r);
    expect(r.error, r.error).toBeUndefined();
    expect(violations(r)).toEqual([]);
    const http = r.workloads.find((w) => w.workload === 'http');
    const tok = r.workloads.find((w) => w.workload === 'tok');
    expect(http?.ops).toBeGreaterThan(50);
    expect(tok?.ops).toBeGreaterThan(5);
  }, 900_000);

  // ---------------------------------------------------------------------------------------------- the OpenStack tier

  it('runs every OpenStack service on every host, whole in status and status --json, rings identical', async () => {
    await whole();
    const r = await lab.cli(['status', '--json']);
    expect(r.code, r.stdout).toBe(0);
    const j = JSON.parse(r.stdout) as {
      services: Record<string, { problems: string[]; data: unknown }>;
      problems: string[];
    };
    for (const name of [
      'placement',
      'neutron',
      'nova',
      'nova-compute',
      'swift-storage',
      'swift-proxy',
      'glance',
    ])
      expect(Object.keys(j.services), name).toContain(name);
    for (const [name, sv] of Object.entries(j.services)) expect(sv.problems, name).toEqual([]);
    expect(j.problems).toEqual([]);
    const storage = j.services['swift-storage']?.data as {
      service: { rings: { host: string; rings: Record<string, string> }[] };
    };
    expect(new Set(storage.service.rings.map((x) => JSON.stringify(x.rings))).size).toBe(1);
    const text = await lab.cli(['status']);
    expect(text.stdout).toMatch(/^Nova-compute$/m);
    expect(text.stdout).toMatch(/rings \(md5 per host\)/);
  });

  it('the real client through the VIP: every endpoint on the VIP, compute services up, every hypervisor', async () => {
    const catalog = await osJson<{ Name: string; Type: string; Endpoints: { url: string }[] }[]>([
      'catalog',
      'list',
    ]);
    const types = catalog.map((c) => c.Type).sort();
    expect(types).toEqual(['compute', 'identity', 'image', 'network', 'object-store', 'placement']);
    for (const c of catalog)
      for (const e of c.Endpoints)
        expect(e.url.startsWith(`http://${vip()}:`), `${c.Name} ${e.url}`).toBe(true);
    const services = await osJson<{ Binary: string; Host: string; State: string; Status: string }[]>([
      'compute',
      'service',
      'list',
    ]);
    for (const binary of ['nova-conductor', 'nova-scheduler', 'nova-compute'])
      expect(
        services
          .filter((s) => s.Binary === binary && s.State === 'up' && s.Status === 'enabled')
          .map((s) => s.Host)
          .sort(),
        binary,
      ).toEqual(hostNames());
    const hypervisors = await osJson<
      { 'Hypervisor Hostname': string; 'Hypervisor Type': string; State: string }[]
    >(['hypervisor', 'list']);
    expect(hypervisors.map((h) => [h['Hypervisor Hostname'], h['Hypervisor Type'], h.State]).sort()).toEqual(
      hostNames().map((n) => [n, 'fake', 'up']),
    );
    const providers = await osJson<{ name: string }[]>(['resource', 'provider', 'list']);
    expect(providers.map((p) => p.name).sort()).toEqual(hostNames());
  }, 300_000);

  it('an image uploaded through the VIP downloads with the same checksum from every Glance host', async () => {
    const src = '/tmp/stackha-test-image.raw';
    await lab.client.exec(['sh', '-c', `head -c 8388608 /dev/urandom > ${src}`], { timeoutMs: 30_000 });
    const md5 = await clientMd5(src);
    const img = await osJson<{ id: string; checksum: string | null; status: string }>([
      'image',
      'create',
      '--disk-format',
      'raw',
      '--container-format',
      'bare',
      '--file',
      src,
      `stackha-test-${Date.now()}`,
    ]);
    const shown = await osJson<{ checksum: string; status: string; stores?: string }>([
      'image',
      'show',
      img.id,
    ]);
    expect(shown.status).toBe('active');
    expect(shown.checksum).toBe(md5);
    const saved = await lab.cli([
      'openstack',
      '--',
      'image',
      'save',
      '--file',
      '/tmp/stackha-test-image.out',
      img.id,
    ]);
    expect(saved.code, saved.stderr).toBe(0);
    expect(await clientMd5('/tmp/stackha-test-image.out')).toBe(md5);
    // Each Glance host directly: the image is in Swift, not on the host that took the upload.
    for (const n of hostNames()) {
      const out = `/tmp/stackha-test-image.${n}`;
      const code = await getWithToken(`http://${lab.host(n).address}:9292/v2/images/${img.id}/file`, out);
      expect(code, n).toBe('200');
      expect(await clientMd5(out), n).toBe(md5);
    }
    expect((await lab.cli(['openstack', '--', 'image', 'delete', img.id])).code).toBe(0);
  }, 300_000);

  it('an object saved through the VIP reads back with the same md5 and has 3 replicas', async () => {
    const src = '/tmp/stackha-test-object';
    await lab.client.exec(['sh', '-c', `head -c 2097152 /dev/urandom > ${src}`], { timeoutMs: 30_000 });
    const md5 = await clientMd5(src);
    const container = `stackha-test-${Date.now()}`;
    expect((await lab.cli(['openstack', '--', 'container', 'create', container])).code).toBe(0);
    const created = await osJson<{ etag: string }[]>(['object', 'create', container, src, '--name', 'obj']);
    expect(created[0]?.etag).toBe(md5);
    const saved = await lab.cli([
      'openstack',
      '--',
      'object',
      'save',
      container,
      'obj',
      '--file',
      `${src}.out`,
    ]);
    expect(saved.code, saved.stderr).toBe(0);
    expect(await clientMd5(`${src}.out`)).toBe(md5);
    const project = (await osJson<{ project_id: string }>(['token', 'issue'])).project_id;
    const counts = await replicaCounts(lab.host('ctl1'), `AUTH_${project}`, container, ['obj']);
    expect(counts).toEqual({ obj: 3 });
    expect((await lab.cli(['openstack', '--', 'object', 'delete', container, 'obj'])).code).toBe(0);
    expect((await lab.cli(['openstack', '--', 'container', 'delete', container])).code).toBe(0);
  }, 300_000);

  it('a server boots to ACTIVE on a simulated compute host and is deleted', async () => {
    const flavor = `stackha-test-${Date.now()}`;
    const image = await bootFixture(flavor);
    const t0 = Date.now();
    const server = await osJson<{ id: string; status: string; 'OS-EXT-SRV-ATTR:host': string }>([
      '--os-compute-api-version',
      '2.37',
      'server',
      'create',
      '--flavor',
      flavor,
      '--image',
      image.id,
      '--nic',
      'none',
      '--wait',
      flavor,
    ]);
    figures.serverBootSeconds = (Date.now() - t0) / 1000;
    expect(server.status).toBe('ACTIVE');
    expect(hostNames()).toContain(server['OS-EXT-SRV-ATTR:host']);
    const del = await lab.cli(['openstack', '--', 'server', 'delete', '--wait', server.id]);
    expect(del.code, del.stderr).toBe(0);
    const left = await lab.cli(['openstack', '--', 'server', 'show', server.id]);
    expect(left.code).not.toBe(0);
    await lab.cli(['openstack', '--', 'image', 'delete', image.id]);
    await lab.cli(['openstack', '--', 'flavor', 'delete', flavor]);
  }, 300_000);

  // ------------------------------------------------------- Neutron: an HA router, two DHCP agents, a tenant's traffic

  let tenant: TenantInfo | undefined;

  /** On a Neutron test's failure: each host's neutron-server errors and slow router calls, and L3 agent errors. */
  async function withNeutronLogs(body: () => Promise<void>): Promise<void> {
    try {
      await body();
    } catch (err) {
      for (const h of hostNames()) {
        const r = await lab
          .host(h)
          .exec(
            [
              'sh',
              '-c',
              'grep -hE "ERROR|Traceback|/v2.0/routers|/v2.0/ports" /var/log/neutron/neutron-server.log | grep -v GET | tail -20; grep -hE "ERROR|Traceback" /var/log/neutron/neutron-l3-agent.log | tail -8',
            ],
            { timeoutMs: 15_000 },
          )
          .catch((e: unknown) => ({ stdout: String(e) }));
        console.log(`neutron logs on ${h}:\n${r.stdout}`);
      }
      throw err;
    }
  }

  it(
    'a tenant on a Neutron port: ACTIVE, its address by DHCP (two agents serve the network), reaches the outside through the HA router',
    () =>
      withNeutronLogs(async () => {
        const net = await ensureTenantNetwork(lab.state, lab.dep);
        const active = await activeRouterHost(lab.state, net.routerId);
        // One instance per L3 agent (max_l3_agents_per_router 3): one active, two standby.
        const states = await routerStates(lab.state, net.routerId);
        expect(Object.keys(states).sort()).toEqual(hostNames());
        expect(Object.values(states).filter((s) => s === 'standby')).toHaveLength(2);
        // The chaos tenant stands on a host that is not the router's primary: that host's crash is in the chaos test.
        const host = hostNames().find((h) => h !== active) ?? '';
        tenant = await tenantUp(lab.state, lab.dep, { name: CHAOS_TENANT, host });
        figures.tenantUpSeconds = tenant.seconds;
        expect(tenant.host).toBe(host);
        expect(tenant.leasedIp).toBe(tenant.fixedIp);
        const agents = await osJson<{ Binary: string; Host: string; Alive: boolean | string }[]>([
          'network',
          'agent',
          'list',
          '--network',
          tenant.networkId,
        ]);
        const dhcp = agents.filter(
          (a) => a.Binary === 'neutron-dhcp-agent' && (a.Alive === true || a.Alive === ':-)'),
        );
        expect(dhcp.length, JSON.stringify(agents)).toBeGreaterThanOrEqual(2);
        figures.dhcpAgentsOfTenantNetwork = dhcp.map((a) => a.Host).sort();
        const probe = startPing(lab.state, CHAOS_TENANT, tenant.outside);
        await sleep(3000);
        const r = await probe.stop();
        figures.tenantSteadyPing = r;
        expect(r.replies, JSON.stringify(r)).toBeGreaterThan(10);
        const status = await lab.cli(['status', '--json']);
        expect(status.code, status.stdout).toBe(0);
      }),
    600_000,
  );

  it('a server booted on simulated compute with a port on the tenant network: plugged as os-vif would, its port is ACTIVE', async () => {
    const t = tenant;
    if (!t) throw new Error('no tenant: an earlier test failed');
    const name = `stackha-test-net-${Date.now()}`;
    const image = await bootFixture(name);
    const server = await osJson<{ id: string; status: string }>([
      'server',
      'create',
      '--flavor',
      name,
      '--image',
      image.id,
      '--nic',
      `net-id=${t.networkId}`,
      '--wait',
      name,
    ]);
    expect(server.status).toBe('ACTIVE');
    const ports = await osJson<{ ID: string; Status: string }[]>(['port', 'list', '--server', server.id]);
    expect(ports).toHaveLength(1);
    const portId = ports[0]?.ID ?? '';
    const srv = await tenantUp(lab.state, lab.dep, { name: 'srv', portId });
    expect(srv.leasedIp).toBe(srv.fixedIp);
    const shown = await osJson<{ status: string; binding_host_id: string }>(['port', 'show', portId]);
    expect(shown.status).toBe('ACTIVE');
    expect(shown.binding_host_id).toBe(srv.host);
    const probe = startPing(lab.state, 'srv', t.outside);
    await sleep(2000);
    expect((await probe.stop()).replies).toBeGreaterThan(5);
    await tenantDown(lab.state, lab.dep, 'srv');
    expect((await lab.cli(['openstack', '--', 'server', 'delete', '--wait', server.id])).code).toBe(0);
    await lab.cli(['openstack', '--', 'image', 'delete', image.id]);
    await lab.cli(['openstack', '--', 'flavor', 'delete', name]);
  }, 600_000);

  it("chaos: a conductor dies while servers boot; the L3 agent beside the active router dies; the HA router's primary host (a storage host too) crashes under load; nothing acknowledged is lost", async () => {
    const ctx = chaosContext(lab.dep, lab.state, (m) => console.log(m));
    const results: ScenarioResult[] = [];
    // Three of the OpenStack scenarios, to keep CI within its bound: a Nova service that is not behind HAProxy dying
    // while servers boot (RPC and the database), the L3 agent beside the active router killed (its keepalived must
    // keep the router where it is), and the host where the tenant's router is active crashing while
    // the tenant pings the outside and objects are written: keepalived's failover as the tenant sees it, every API
    // backend on that host lost at once, and Swift's replica restore timed. The API-backend scenarios run the
    // mechanism Keystone's test already proves; all of them run with `stackha chaos run` (docs/openstack.md).
    const names = ['nova-conductor-dies', 'l3-agent-dies', 'router-host-crash'];
    for (const n of names) expect(OPENSTACK_SCENARIOS.map((s) => s.name)).toContain(n);
    const routerId = tenant?.routerId;
    if (!routerId) throw new Error('no chaos tenant: the tenant test failed');
    for (const name of names) {
      const r = await runScenario(ctx, scenarioByName(name), DEFAULT_RUN);
      console.log(formatResults([r]));
      results.push(r);
    }
    saveChaosReport(results, join('reports', 'lab-openstack-chaos.json'));
    figures.chaosOpenstack = Object.fromEntries(
      results.map((r) => [
        r.scenario,
        {
          target: r.target,
          recoveredSeconds: r.recoveredSeconds,
          failures: Object.fromEntries(r.workloads.map((w) => [w.workload, w.failures])),
          faultGapSeconds: Object.fromEntries(r.workloads.map((w) => [w.workload, w.faultGapMs / 1000])),
          openstack: r.openstack,
          replicas: r.replicas,
          tenant: r.tenant,
          evidence: r.evidence,
        },
      ]),
    );
    for (const r of results) {
      expect(r.error, `${r.scenario}: ${r.error}`).toBeUndefined();
      expect(violations(r), r.scenario).toEqual([]);
      expect(r.openstack?.objects.acked, r.scenario).toBeGreaterThan(0);
    }
    const crash = results.find((r) => r.scenario === 'router-host-crash');
    expect(crash?.replicas?.restoredSeconds).toBeDefined();
    // The tenant reached the outside again through another host's router, and was cut for a bounded time.
    expect(crash?.tenant?.outageSeconds, JSON.stringify(crash?.tenant)).toBeDefined();
    expect(crash?.evidence.some((e) => e.startsWith('router primary moved from'))).toBe(true);
    const agent = results.find((r) => r.scenario === 'l3-agent-dies');
    expect(agent?.tenant?.outageSeconds, JSON.stringify(agent?.tenant)).toBeDefined();
    expect(
      agent?.evidence.some((e) => e.startsWith('router primary still on')),
      agent?.evidence.join('; '),
    ).toBe(true);
    const boots = results.find((r) => r.scenario === 'nova-conductor-dies')?.openstack?.servers;
    expect(boots?.booted).toBeGreaterThan(0);
    // One killed conductor holds at most one build per boot stream (serverStreams) when it dies.
    expect(boots?.lostInFlight ?? 0).toBeLessThanOrEqual(
      scenarioByName('nova-conductor-dies').serverStreams ?? 1,
    );
    // Healed (power-on, deploy): the old primary's agent is back as a standby (keepalived nopreempt), so exactly one
    // instance is active, looked at several times, and the tenant still reaches the outside.
    for (let i = 0; i < 3; i++) {
      const states = await routerStates(lab.state, routerId);
      expect(Object.keys(states).sort(), JSON.stringify(states)).toEqual(hostNames());
      expect(
        Object.values(states).filter((x) => x === 'active'),
        JSON.stringify(states),
      ).toHaveLength(1);
      await sleep(2000);
    }
    const after = startPing(lab.state, CHAOS_TENANT, tenant?.outside ?? '');
    await sleep(2000);
    expect((await after.stop()).replies).toBeGreaterThan(5);
  }, 2_400_000);

  it('measures token validation through the VIP against one backend directly', async () => {
    await whole();
    const t = await token();
    const runs: Record<string, BenchResult> = {};
    // Alternating rounds (VIP, direct, direct, VIP, ...), so that a change in the machine's load hits both alike.
    const urls = [vipUrl(), backendUrl('ctl1')];
    for (const concurrency of [1, 4]) {
      const [v, d] = await compareValidate(lab.client, urls, t, { concurrency, rounds: 6, roundSeconds: 2 });
      if (v && d) Object.assign(runs, { [`vip-c${concurrency}`]: v, [`direct-c${concurrency}`]: d });
      await sleep(500);
    }
    // The hop alone: Keystone's cheapest answer (the version document), through the VIP and directly.
    const [v3, d3] = await compareValidate(lab.client, urls, '', {
      concurrency: 1,
      rounds: 6,
      roundSeconds: 1,
      path: '/v3',
    });
    if (v3 && d3) Object.assign(runs, { 'vip-v3-c1': v3, 'direct-v3-c1': d3 });
    figures.validateBench = runs;
    const added = (a: string, b: string) => {
      const v = runs[a];
      const d = runs[b];
      return v?.p50 !== undefined && d?.p50 !== undefined && v.p99 !== undefined && d.p99 !== undefined
        ? { p50: Math.round((v.p50 - d.p50) * 100) / 100, p99: Math.round((v.p99 - d.p99) * 100) / 100 }
        : undefined;
    };
    figures.vipAddedLatencyMs = {
      validate: added('vip-c1', 'direct-c1'),
      versionDocument: added('vip-v3-c1', 'direct-v3-c1'),
    };
    console.log('validate bench', runs);
    for (const [k, b] of Object.entries(runs)) {
      expect(b.requests, k).toBeGreaterThan(10);
      expect(b.failures, k).toBe(0);
    }
  }, 300_000);

  it('leaves nothing behind after lab down', async () => {
    await lab.recordPids();
    const r = await lab.cli(['lab', 'down', '--purge']);
    expect(r.code, r.stderr).toBe(0);
    expect(await leftovers(lab)).toEqual([]);
  }, 120_000);
});
