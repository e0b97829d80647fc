import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LabHost } from '../../src/hosts/lab.js';
import { isAlive, procStat } from '../../src/hosts/proc.js';
import { generatePasswords } from '../../src/inventory/genpwd.js';
import { renderLabInventory } from '../../src/inventory/lab-inventory.js';
import { loadDeployment } from '../../src/inventory/load.js';
import {
  type LabState,
  externalPrefix,
  hostPids,
  labClient,
  labConfigDir,
  labDown,
  labHost,
  labUp,
  listNamespaces,
  readLabState,
} from '../../src/lab/lab.js';
import type { Deployment } from '../../src/model.js';
import { SERVICES } from '../../src/services/registry.js';
import { type ExecResult, execArgv } from '../../src/util/exec.js';

export const CLI = join(import.meta.dirname, '../../dist/cli/main.js');

export interface TestLab {
  readonly name: string;
  readonly state: LabState;
  readonly dep: Deployment;
  readonly client: LabHost;
  host(name: string): LabHost;
  cli(args: readonly string[], timeoutMs?: number): Promise<ExecResult>;
  /**
   * Every process seen in the lab's namespaces so far, pid to start time (to prove `lab down` ended them all). The
   * start time tells a survivor from a reused pid: pid_max is 32768 here and other labs start processes meanwhile.
   */
  readonly seenPids: Map<number, string>;
  recordPids(): Promise<void>;
}

/** A fresh lab with its own name and subnet; any leftover of an earlier failed run is taken down first. */
export async function createTestLab(opts: {
  name: string;
  subnet: string;
  hosts?: number;
  globals?: Record<string, string>;
  /**
   * Deploy the OpenStack tier beyond Keystone (Placement, Nova, Swift, Glance) too. Off by default: the suites of the
   * infrastructure measure it alone, and only the OpenStack suite pays for the whole stack.
   */
  openstack?: boolean;
}): Promise<TestLab> {
  await labDown(opts.name, { purge: true });
  const state = await labUp({ name: opts.name, hostCount: opts.hosts ?? 3, subnet: opts.subnet });
  const dir = labConfigDir(opts.name);
  mkdirSync(dir, { recursive: true });
  const inv = renderLabInventory({
    lab: opts.name,
    hostCount: state.hosts.length,
    subnetPrefix: state.prefix,
  });
  const extra = Object.entries(opts.globals ?? {})
    .map(([k, v]) => `${k}: ${v}\n`)
    .join('');
  writeFileSync(join(dir, 'multinode'), inv.multinode);
  let globals = inv.globals;
  if (!opts.openstack)
    for (const s of SERVICES.filter((x) => x.tier === 'api' && x.name !== 'keystone'))
      globals = globals.replace(new RegExp(`^${s.enable.key}: true$`, 'm'), `${s.enable.key}: false`);
  writeFileSync(join(dir, 'globals.yml'), globals + extra);
  generatePasswords(join(dir, 'passwords.yml'));
  const dep = loadDeployment(dir);
  const seenPids = new Map<number, string>();
  const lab: TestLab = {
    name: opts.name,
    state,
    dep,
    client: labClient(state),
    host: (n) => labHost(state, n),
    cli: (args, timeoutMs = 600_000) =>
      execArgv([process.execPath, CLI, '--lab', opts.name, ...args], { timeoutMs, env: { NO_COLOR: '1' } }),
    seenPids,
    recordPids: async () => {
      for (const h of [...state.hosts.map((x) => x.name), 'client'])
        for (const p of await hostPids(opts.name, h)) {
          const st = procStat(p);
          if (st) seenPids.set(p, st.startTime);
        }
    },
  };
  return lab;
}

/** What is left of a lab after `lab down`: namespaces, hosts files, route, state dir, live processes. */
export async function leftovers(lab: TestLab): Promise<string[]> {
  const left: string[] = [];
  for (const ns of await listNamespaces()) if (ns.startsWith(`${lab.name}-`)) left.push(`namespace ${ns}`);
  if (existsSync('/etc/netns')) {
    for (const d of readdirSync('/etc/netns')) if (d.startsWith(`${lab.name}-`)) left.push(`/etc/netns/${d}`);
  }
  // Mounts: the hosts' namespace files and layers, in the root namespace or any process's.
  const ours = [`/run/stackha/labs/${lab.name}`, `/var/lib/stackha/labs/${lab.name}`];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n'))
    if (ours.some((o) => line.includes(o))) left.push(`mount ${line.split(' ')[4]}`);
  if (existsSync(`/run/stackha/labs/${lab.name}`)) left.push(`/run/stackha/labs/${lab.name}`);
  const route = await execArgv(['ip', 'route', 'show', `${lab.state.prefix}.0/24`]);
  if (route.stdout.trim()) left.push(`route ${route.stdout.trim()}`);
  const ext = externalPrefix(lab.state.prefix);
  if (ext) {
    const r = await execArgv(['ip', 'route', 'show', `${ext}.0/24`]);
    if (r.stdout.trim()) left.push(`route ${r.stdout.trim()}`);
  }
  if (readLabState(lab.name)) left.push('lab state');
  if (existsSync(`/var/lib/stackha/labs/${lab.name}`)) left.push(`/var/lib/stackha/labs/${lab.name}`);
  for (const [pid, startTime] of lab.seenPids) {
    if (isAlive(pid, startTime)) {
      const r = await execArgv(['ps', '-o', 'stat=,comm=', '-p', String(pid)]);
      if (r.stdout.trim() && !r.stdout.trim().startsWith('Z')) left.push(`process ${pid} ${r.stdout.trim()}`);
    }
  }
  return left;
}

export function saveReport(name: string, data: unknown): void {
  mkdirSync('reports', { recursive: true });
  writeFileSync(join('reports', `${name}.json`), `${JSON.stringify(data, null, 2)}\n`);
}
