// The stackha runtime: the image built from a checkout (what it ships and leaves out, deterministic), shipped to a
// host once and not again, a new one beside the old with `current` swapped, the old one kept while a unit names it,
// a runtime whose agents the host's node cannot run never made current; agent argv per kind of host; deploy's
// preflight. The host side runs for real (sh, tar, sha256sum, node) under a temporary root (test/unit/runtime-fake.ts).
import { execFileSync } from 'node:child_process';
import {
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { deploy } from '../../src/deploy/deploy.js';
import { PASSWORD_KEYS, buildDeployment } from '../../src/inventory/load.js';
import type { Deployment, HostSpec } from '../../src/model.js';
import { buildRuntimeImage, engineLowerBound, importsOf } from '../../src/runtime/image.js';
import { HOST_NODE, RUNTIME_ROOT, agentArgv, deployerRuntime } from '../../src/runtime/runtime.js';
import { RuntimeNotReady, RuntimeShipError, requireRuntimes, shipRuntime } from '../../src/runtime/ship.js';
import { renderKeepalived } from '../../src/services/keepalived/keepalived.js';
import { GALERA_HEALTH_AGENT, renderGaleraHealth } from '../../src/services/mariadb/galera.js';
import { renderProbeApi } from '../../src/services/probe-api/probe-api.js';
import { agentsByHost, daemonDeclarations } from '../../src/services/registry.js';
import { builtScript } from '../../src/util/paths.js';
import { RuntimeHost, fixtureCheckout } from './runtime-fake.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

function checkout(body?: string): string {
  const c = fixtureCheckout(body);
  cleanups.push(c.cleanup);
  return c.root;
}
function host(name = 'ctl1'): RuntimeHost {
  const h = new RuntimeHost(name, '10.0.0.11');
  cleanups.push(() => h.runtimeRoot.cleanup());
  return h;
}

/** Every file and directory under a local directory that others may write. */
function worldWritable(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const st = statSync(p);
    if (st.mode & 0o002) out.push(p);
    if (st.isDirectory()) out.push(...worldWritable(p));
  }
  return out;
}

describe('runtime image', () => {
  it('ships the agents, the dist modules and npm packages they import (nested where npm put them), and nothing else', () => {
    const img = buildRuntimeImage(checkout());
    expect(img.agents).toEqual(['agents/alpha.js', 'agents/beta.js']);
    expect(img.files.map((f) => f.path)).toEqual([
      'dist/agents/alpha.js',
      'dist/agents/beta.js',
      'dist/lib/pad.js',
      'node_modules/leftish/LICENSE',
      'node_modules/leftish/index.js',
      'node_modules/leftish/node_modules/inner/index.js',
      'node_modules/leftish/node_modules/inner/package.json',
      'node_modules/leftish/package.json',
      'package.json',
    ]);
    expect(img.packages.map((p) => `${p.name}@${p.version}`)).toEqual(['leftish@1.2.3', 'inner@2.0.0']);
    expect(img.nodeMin).toEqual([18, 17, 0]);
    expect(img.nodeMinBy).toBe('leftish@1.2.3');
    expect(
      JSON.parse(img.files.find((f) => f.path === 'package.json')?.content.toString() ?? ''),
    ).toMatchObject({
      type: 'module',
      engines: { node: '>=18.17.0' },
    });
    expect(img.hash).toMatch(/^[0-9a-f]{16}$/);
  });

  it('is the same for the same content, whatever the file times, and another for another agent', () => {
    const root = checkout();
    const a = buildRuntimeImage(root);
    writeFileSync(join(root, 'dist/lib/pad.js'), readFileSync(join(root, 'dist/lib/pad.js')));
    expect(buildRuntimeImage(root).hash).toBe(a.hash);
    // The deployer's own version is not part of it: a new stackha with the same agents restarts no agent.
    writeFileSync(
      join(root, 'package.json'),
      JSON.stringify({ name: 'stackha', version: '10.0.0', type: 'module' }),
    );
    expect(buildRuntimeImage(root).hash).toBe(a.hash);
    expect(buildRuntimeImage(checkout('// v2')).hash).not.toBe(a.hash);
  });

  it('refuses an agent that imports a devDependency, or a package that is not installed', () => {
    const root = checkout();
    writeFileSync(join(root, 'dist/agents/gamma.js'), "import 'devthing';\n");
    expect(() => buildRuntimeImage(root)).toThrow(/devthing, needed by an agent, is a devDependency/);
    writeFileSync(join(root, 'dist/agents/gamma.js'), "import 'nowhere/sub';\n");
    expect(() => buildRuntimeImage(root)).toThrow(/nowhere, needed by an agent, is not in package-lock.json/);
  });

  it("this checkout's runtime: mariadb and its dependencies, no @types, and it runs every agent outside the checkout", () => {
    const img = deployerRuntime();
    const names = img.packages.map((p) => p.name).sort();
    expect(names).toEqual(expect.arrayContaining(['mariadb', 'denque', 'iconv-lite', 'lru-cache']));
    expect(names.some((n) => n.startsWith('@types/'))).toBe(false);
    // The CLI's packages are not shipped: no agent imports them.
    for (const n of ['commander', 'ssh2', 'listr2', 'zod', 'yaml', 'amqplib']) expect(names).not.toContain(n);
    expect(img.files.some((f) => /\.(map|d\.ts)$/.test(f.path))).toBe(false);
    // Debian 12's nodejs is 18.20.4: the runtime must run on it (mariadb 3.5 needs node 20 and exits on 18, so
    // stackha stays on mariadb 3.4, whose lower bound, node 14, the runtime names).
    const [major = 0, minor = 0] = img.nodeMin;
    expect(major < 18 || (major === 18 && minor <= 20)).toBe(true);
    expect(img.nodeMinBy).toContain('mariadb@3.4.');
    // Unpacked with the system's tar somewhere else, node loads every agent and all it imports (usage, exit 2).
    const dir = mkdtempSync(join(tmpdir(), 'stackha-runtime-unpacked-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    execFileSync('tar', ['-xzf', '-', '-C', dir], { input: img.tgz });
    expect(worldWritable(dir)).toEqual([]);
    expect((statSync(join(dir, 'dist/agents/galera-health.js')).mode & 0o777).toString(8)).toBe('644');
    for (const agent of img.agents) {
      let code = 0;
      let stderr = '';
      try {
        execFileSync(process.execPath, [join(dir, 'dist', agent)], { stdio: 'pipe' });
      } catch (err) {
        const e = err as { status: number; stderr: Buffer };
        code = e.status;
        stderr = e.stderr.toString();
      }
      expect({ agent, code, usage: stderr.startsWith('usage:') }).toEqual({ agent, code: 2, usage: true });
    }
  });

  it('reads imports and engines ranges as packages write them', () => {
    expect(
      importsOf(
        "import a from 'x';\nimport {\n  b,\n} from \"y/z\";\nexport * from './w.js';\nimport 'side';\nconst q = await import('dyn');\nexport const s = 'no';\n",
      ),
    ).toEqual(['x', 'y/z', './w.js', 'side', 'dyn']);
    expect(engineLowerBound('>= 20.0.0')).toEqual([20, 0, 0]);
    expect(engineLowerBound('20 || >=22')).toEqual([20, 0, 0]);
    expect(engineLowerBound('^18.17')).toEqual([18, 17, 0]);
    expect(engineLowerBound('>=0.10')).toEqual([0, 10, 0]);
  });
});

describe('shipping the runtime', () => {
  it('sends it once, checked and in place with current pointing at it; a second time sends nothing', async () => {
    const img = buildRuntimeImage(checkout());
    const h = host();
    const first = await shipRuntime(h, img);
    expect(first).toMatchObject({
      action: 'shipped',
      hash: img.hash,
      bytes: img.tgz.length,
      previous: undefined,
    });
    expect(h.runtimeScripts()).toEqual(['probe', 'unpack', 'commit']);
    // The archive went on stdin, never in argv.
    const unpack = h.calls.find((c) => c.op === 'exec' && c.argv[2]?.includes('base64 -d'));
    expect(unpack?.op === 'exec' && unpack.input).toBe(img.tgz.toString('base64'));
    // Every agent was run by the host's node before it was made current.
    expect(h.execs((a) => a[0] === HOST_NODE)).toEqual(
      img.agents.map((a) => [HOST_NODE, `${RUNTIME_ROOT}/.incoming-${img.hash}/dist/${a}`]),
    );
    const root = h.runtimeRoot.local(RUNTIME_ROOT);
    expect(readlinkSync(join(root, 'current'))).toBe(img.hash);
    expect(readFileSync(join(root, img.hash, '.stackha-runtime'), 'utf8')).toBe(`${img.hash}\n`);
    expect(readFileSync(join(root, img.hash, 'dist/lib/pad.js'), 'utf8')).toContain('export const pad');
    expect(readdirSync(root).sort()).toEqual(['current', img.hash].sort());
    expect(worldWritable(root)).toEqual([]);
    expect((statSync(join(root, img.hash)).mode & 0o777).toString(8)).toBe('755');

    h.clearCalls();
    const again = await shipRuntime(h, img);
    expect(again).toEqual({ action: 'up to date', hash: img.hash, bytes: 0, previous: img.hash, pruned: [] });
    expect(h.runtimeScripts()).toEqual(['probe']);
    expect(h.calls.filter((c) => c.op === 'exec' && c.input !== undefined)).toEqual([]);
  });

  it('puts a changed runtime beside the old one, swaps current, and removes the old one once no unit names it', async () => {
    const v1 = buildRuntimeImage(checkout('// v1'));
    const v2 = buildRuntimeImage(checkout('// v2'));
    const v3 = buildRuntimeImage(checkout('// v3'));
    const h = host();
    const root = h.runtimeRoot.local(RUNTIME_ROOT);
    await shipRuntime(h, v1);
    // A unit still runs an agent from v1 (deploy has not restarted it yet): v1 stays.
    h.runtimeRoot.write(
      '/etc/systemd/system/stackha-galera-health.service',
      `ExecStart="/usr/bin/node" "${RUNTIME_ROOT}/${v1.hash}/dist/agents/alpha.js"\n`,
    );
    const second = await shipRuntime(h, v2);
    expect(second).toMatchObject({ action: 'shipped', hash: v2.hash, previous: v1.hash, pruned: [] });
    expect(readlinkSync(join(root, 'current'))).toBe(v2.hash);
    expect(readdirSync(root).sort()).toEqual(['current', v1.hash, v2.hash].sort());

    // Going back to v1 (it is still there): nothing is sent, current is swapped back.
    h.clearCalls();
    const back = await shipRuntime(h, v1);
    expect(back).toMatchObject({ action: 'made current', bytes: 0, previous: v2.hash, pruned: [v2.hash] });
    expect(h.runtimeScripts()).toEqual(['probe', 'commit']);
    expect(readlinkSync(join(root, 'current'))).toBe(v1.hash);

    // Once the unit names v3, v1 goes.
    h.runtimeRoot.write(
      '/etc/systemd/system/stackha-galera-health.service',
      `ExecStart="/usr/bin/node" "${RUNTIME_ROOT}/${v3.hash}/dist/agents/alpha.js"\n`,
    );
    const third = await shipRuntime(h, v3);
    expect(third.pruned).toEqual([v1.hash]);
    expect(readdirSync(root).sort()).toEqual(['current', v3.hash].sort());
  });

  it("never makes current a runtime whose agents the host's node cannot run", async () => {
    const good = buildRuntimeImage(checkout());
    const root = checkout();
    writeFileSync(join(root, 'dist/agents/beta.js'), "process.stderr.write('boom\\n'); process.exit(1);\n");
    const bad = buildRuntimeImage(root);
    const h = host();
    await shipRuntime(h, good);
    const err = await shipRuntime(h, bad).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RuntimeShipError);
    expect((err as Error).message).toMatch(
      new RegExp(
        `^ctl1: stackha runtime: /usr/bin/node \\(v\\d+[^)]*\\) cannot run the agents of runtime ${bad.hash}, which was not made current: agents/beta.js exited 1: boom$`,
      ),
    );
    const dir = h.runtimeRoot.local(RUNTIME_ROOT);
    expect(readlinkSync(join(dir, 'current'))).toBe(good.hash);
    expect(readdirSync(dir).sort()).toEqual(['current', good.hash].sort());
  });

  it('refuses, sending nothing, a host whose node is older than the packages need, or that has none', async () => {
    const img = deployerRuntime();
    const h = host();
    h.runtimeRoot.fakeNode('v12.22.12');
    const err = await shipRuntime(h, img).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RuntimeShipError);
    expect((err as Error).message).toMatch(
      /^ctl1: stackha runtime: \/usr\/bin\/node is v12\.22\.12; the agents need node >= 14\.0\.0 \(.*mariadb@3\.\d+\.\d+.*\); nothing was sent$/,
    );
    expect(h.runtimeScripts()).toEqual(['probe']);
    h.runtimeRoot.node = '/nonexistent/node';
    await expect(shipRuntime(h, img)).rejects.toThrow(
      /no \/usr\/bin\/node \(Debian package nodejs\); nothing was sent/,
    );
    expect(existsSync(h.runtimeRoot.local(RUNTIME_ROOT))).toBe(false);
  });
});

const PASSWORDS = PASSWORD_KEYS.map((k) => `${k}: TOPSECRET-${k}\n`).join('');
function deployment(connection: string): Deployment {
  return buildDeployment(
    {
      multinode: [
        '[all:vars]',
        connection,
        '[control]',
        'ctl1 ansible_host=198.18.0.11',
        'ctl2 ansible_host=198.18.0.12',
        'ctl3 ansible_host=198.18.0.13',
        '[compute]',
        'cmp1 ansible_host=198.18.0.31',
        '',
      ].join('\n'),
      globals: `kolla_internal_vip_address: 198.18.0.10\n${connection === '' ? 'stackha_lab: rtlab\n' : ''}`,
      passwords: PASSWORDS,
    },
    '/etc/stackha',
  );
}
const spec = (dep: Deployment, name: string): HostSpec => {
  const s = dep.hosts.find((h) => h.name === name);
  if (!s) throw new Error(`no host ${name}`);
  return s;
};

describe('agent command lines', () => {
  it("run the host's node and the runtime's hash directory on SSH hosts, this node and checkout on lab hosts", () => {
    const ssh = deployment('ansible_connection=ssh');
    const lab = deployment('');
    expect(spec(ssh, 'ctl1').connection.kind).toBe('ssh');
    expect(spec(lab, 'ctl1').connection.kind).toBe('lab');
    const hash = deployerRuntime().hash;
    const argv = (dep: Deployment) => ({
      health: renderGaleraHealth(
        dep,
        { host: spec(dep, 'ctl1') },
        agentArgv(spec(dep, 'ctl1'), GALERA_HEALTH_AGENT),
      ).daemons[0]?.argv,
      watch: renderKeepalived(dep, { host: spec(dep, 'ctl1') }).daemons.find(
        (d) => d.name === 'haproxy-watch',
      )?.argv,
    });
    expect(argv(ssh)).toEqual({
      health: [
        HOST_NODE,
        `${RUNTIME_ROOT}/${hash}/dist/agents/galera-health.js`,
        expect.stringMatching(/^198\.18\.0\.11:\d+$/),
        expect.any(String),
      ],
      watch: [
        HOST_NODE,
        `${RUNTIME_ROOT}/${hash}/dist/agents/haproxy-watch.js`,
        expect.any(String),
        expect.any(String),
      ],
    });
    expect(argv(lab)).toEqual({
      health: [
        process.execPath,
        builtScript('agents/galera-health.js'),
        expect.stringMatching(/^198\.18\.0\.11:\d+$/),
        expect.any(String),
      ],
      watch: [
        process.execPath,
        builtScript('agents/haproxy-watch.js'),
        expect.any(String),
        expect.any(String),
      ],
    });
    // What the deployments' declarations and renders say agree: a rendered daemon that runs dist/agents is declared.
    const declared = new Set(daemonDeclarations(lab).flatMap((d) => (d.daemon.agent ? [d.daemon.name] : [])));
    const t = { host: spec(lab, 'ctl1') };
    const rendered = [
      ...renderGaleraHealth(lab, t, agentArgv(t.host, GALERA_HEALTH_AGENT)).daemons,
      ...renderKeepalived(lab, t).daemons,
      ...renderProbeApi(t, agentArgv(t.host, 'agents/probe-api.js')).daemons,
    ].filter((d) => d.argv.some((w) => w.includes('/dist/agents/')));
    expect(rendered.map((d) => d.name).sort()).toEqual([...declared].sort());
  });

  it('are read from the declarations: every agent host, and only those', () => {
    const dep = deployment('ansible_connection=ssh');
    expect(Object.fromEntries(agentsByHost(dep))).toEqual({
      ctl1: ['agents/galera-health.js', 'agents/haproxy-watch.js'],
      ctl2: ['agents/galera-health.js', 'agents/haproxy-watch.js'],
      ctl3: ['agents/galera-health.js', 'agents/haproxy-watch.js'],
    });
    expect(deployerRuntime().agents).toEqual(
      expect.arrayContaining([...new Set([...agentsByHost(dep).values()].flat())]),
    );
  });
});

describe('deploy preflight', () => {
  it('refuses, before changing anything on any host, when SSH hosts lack the runtime or a node for it', async () => {
    const dep = deployment('ansible_connection=ssh');
    const img = buildRuntimeImage(checkout());
    const hosts = new Map(dep.hosts.map((h) => [h.name, host(h.name)]));
    const get = (n: string) => hosts.get(n) as RuntimeHost;
    await shipRuntime(get('ctl1'), img);
    get('ctl2').runtimeRoot.fakeNode('v18.10.0');
    get('ctl3').runtimeRoot.node = '/nonexistent/node';
    for (const h of hosts.values()) h.clearCalls();
    const err = await deploy(dep, { connection: { hosts }, renderer: 'silent', runtime: () => img }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(RuntimeNotReady);
    const message = (err as Error).message;
    expect(message).toMatch(
      /^2 hosts cannot run stackha's agents \(runtime [0-9a-f]{16}\); nothing was changed on any host:\n/,
    );
    expect(message).toMatch(
      /^ {2}ctl2: \/usr\/bin\/node is v18\.10\.0; the agents need node >= 18\.17\.0 \(leftish@1\.2\.3\)$/m,
    );
    expect(message).toMatch(
      /^ {2}ctl3: no \/usr\/bin\/node \(Debian package nodejs\); no stackha runtime [0-9a-f]{16} \(it has none\)$/m,
    );
    expect(message).not.toMatch(/ctl1|cmp1/);
    expect(message).toMatch(/Install node >= the version named above as \/usr\/bin\/node/);
    // Only the read-only probe went to the agent hosts; the compute host (no agent) was asked nothing.
    for (const [name, h] of hosts) {
      expect(
        h.calls.filter((c) => c.op !== 'exec'),
        name,
      ).toEqual([]);
      expect(h.runtimeScripts(), name).toEqual(name === 'cmp1' ? [] : ['probe']);
    }
    expect(get('cmp1').calls).toEqual([]);
  });

  it('names bootstrap-servers when only the runtime is missing, and passes once every agent host has it', async () => {
    const dep = deployment('ansible_connection=ssh');
    const img = buildRuntimeImage(checkout());
    const hosts = new Map(dep.hosts.map((h) => [h.name, host(h.name)]));
    const err = await requireRuntimes(dep, hosts, () => img).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RuntimeNotReady);
    expect((err as Error).message).toMatch(/^3 hosts cannot run/);
    expect((err as Error).message).toMatch(
      /Run `stackha bootstrap-servers`: it installs nodejs and ships this deployer's runtime/,
    );
    for (const n of ['ctl1', 'ctl2', 'ctl3']) await shipRuntime(hosts.get(n) as RuntimeHost, img);
    await expect(requireRuntimes(dep, hosts, () => img)).resolves.toBeUndefined();
    // A lab deployment asks nothing of anyone (its hosts run this checkout).
    const lab = deployment('');
    const labHosts = new Map(lab.hosts.map((h) => [h.name, host(h.name)]));
    await requireRuntimes(lab, labHosts, () => {
      throw new Error('no runtime is needed for a lab');
    });
    for (const h of labHosts.values()) expect(h.calls).toEqual([]);
  });
});
