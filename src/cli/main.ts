#!/usr/bin/env node
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, Option } from 'commander';
import { deploy, summarize } from '../deploy/deploy.js';
import { ConfigPathError, InventoryError, formatWarning, printable } from '../inventory/errors.js';
import { type GenpwdResult, generatePasswords } from '../inventory/genpwd.js';
import { renderLabInventory } from '../inventory/lab-inventory.js';
import {
  CLIENT,
  DEFAULT_SUBNET,
  crashHost,
  hostNamespaces,
  hostsBehindPackages,
  labConfigDir,
  labDown,
  labHost,
  labStatus,
  labUp,
  powerOnHost,
  setLink,
  subnetPrefix,
} from '../lab/lab.js';
import { DEPLOYER_KNOWN_HOSTS, labSshd } from '../lab/sshd.js';
import { readTenant, startPing, tenantDown, tenantUp } from '../lab/tenant.js';
import { LockHeld, acquireLock } from '../ops/lock.js';
import { clusterProblems, clusterStatus, formatStatus } from '../ops/status.js';
import { debianPackages, deployedServices } from '../services/registry.js';
import { sleep } from '../util/wait.js';
import { COMMANDS } from './commands.js';
import { addGlobalOptions, cliContext } from './common.js';

const program = new Command();
program
  .name('stackha')
  .description('Deploy, operate and prove a highly available OpenStack control plane (Kolla HA spec)');
addGlobalOptions(program);

const cli = cliContext(program);
const configDir = cli.configDir;
const lab = cli.lab;

/**
 * Commands that change hosts, by their path, each taking the deployment's exclusive lock (src/ops/lock.ts) for as
 * long as it runs; the predicate exempts what changes nothing (a dry run).
 */
const CHANGES_HOSTS: Readonly<Record<string, (opts: Record<string, unknown>) => boolean>> = {
  deploy: () => true,
  'bootstrap-servers': (o) => o.dryRun !== true,
  'recover galera': (o) => o.dryRun !== true,
  'scale add': () => true,
  'scale remove': () => true,
  restart: () => true,
  'keystone rotate': () => true,
  'keystone sync': () => true,
  'chaos run': () => true,
  'chaos compare': () => true,
  'bench multiwriter': () => true,
  'lab add-host': () => true,
  'lab remove-host': () => true,
  'lab down': () => true,
  'lab sshd': () => true,
};

function commandPath(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c?.parent; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

program.hook('preAction', (_program, action) => {
  const path = commandPath(action);
  if (!CHANGES_HOSTS[path]?.(action.opts())) return;
  acquireLock(configDir(), path, {
    onStale: (p) =>
      console.error(
        `stackha: took over a stale lock: \`stackha ${p.command}\` (pid ${p.pid}, started ${p.startedAt}) is no longer running`,
      ),
  });
});

/** What genpwd did, in one line per fact; never a value. */
function genpwdReport(path: string, r: GenpwdResult): string[] {
  const where = r.file === path ? path : `${path} (-> ${r.file})`;
  const out = [
    r.created.length
      ? `${where}: created ${r.created.join(', ')}; kept ${r.kept}`
      : `${where}: nothing to create; kept ${r.kept}`,
  ];
  if (r.modeWas !== undefined)
    out.push(`${r.file}: mode ${r.modeWas.toString(8).padStart(4, '0')} changed to 0600`);
  if (r.otherEmpty > 0)
    out.push(
      `${r.otherEmpty} other empty keys (kolla-ansible's) left empty; stackha genpwd --all fills them`,
    );
  if (r.left.length > 0)
    out.push(
      `left empty: ${r.left.join(', ')} (SSH key pairs and blank-by-design keys: kolla-genpwd fills them)`,
    );
  return out;
}

program
  .command('genpwd')
  .description('create the missing passwords in passwords.yml (random, mode 0600); existing ones are kept')
  .option('-p, --passwords <file>', 'passwords file (default: <config dir>/passwords.yml)')
  .option('--all', "also fill every other empty key of kolla-ansible's passwords.yml, as kolla-genpwd would")
  .action((o: { passwords?: string; all?: boolean }) => {
    const file = o.passwords ?? join(configDir(), 'passwords.yml');
    const r = generatePasswords(file, o.all ? { all: true } : {});
    for (const line of genpwdReport(file, r)) console.log(line);
  });

program
  .command('check')
  .description('validate the inventory, globals.yml and passwords.yml; every problem is listed')
  .action(() => {
    const dep = cli.deploymentWarned();
    console.log(
      `${printable(configDir(), 200)}: ${dep.hosts.length} hosts, VIP ${dep.globals.internalVip}, profile ${dep.tuning.profile}: OK`,
    );
  });

program
  .command('deploy')
  .description(
    'deploy every enabled service to its hosts, in plan order; a re-run with nothing changed changes nothing',
  )
  .action(async () => {
    const dep = cli.deploymentWarned();
    if (dep.globals.lab !== undefined) {
      const behind = hostsBehindPackages(dep.globals.lab);
      if (behind.length > 0)
        console.error(
          `warning: Debian packages changed since lab ${dep.globals.lab}'s hosts mounted their /etc and /var ` +
            `(${behind.join(', ')}): they may not see the new files. Run \`sync; echo 2 > /proc/sys/vm/drop_caches\` ` +
            'once (the overlays look again), or recreate the lab.',
        );
    }
    const report = await deploy(dep, { connectOptions: cli.connectOptions() });
    console.log(summarize(report.results, report.stepSeconds));
    console.log(
      report.changed
        ? `deployed in ${report.seconds.toFixed(1)} s`
        : `nothing changed, nothing restarted (${report.seconds.toFixed(1)} s)`,
    );
  });

program
  .command('status')
  .description(
    'every deployed service, per host: Galera, RabbitMQ, HAProxy backends, the VIP holder, memcached, the APIs; exits 3 while something is not whole',
  )
  .option('--json', 'machine-readable output')
  .action(async (o: { json?: boolean }) => {
    const dep = cli.deployment();
    const s = await clusterStatus(dep, await cli.connect(dep));
    const problems = clusterProblems(dep, s);
    if (o.json)
      console.log(
        JSON.stringify(
          {
            vip: s.vip,
            vipHolders: s.vipHolders,
            galeraWriter: s.galeraWriter,
            services: Object.fromEntries(
              s.services.map((x) => [x.service, { problems: x.problems, ...{ data: x.data } }]),
            ),
            problems,
          },
          null,
          2,
        ),
      );
    else console.log(formatStatus(dep, s));
    if (problems.length > 0) process.exitCode = 3;
  });

program
  .command('packages')
  .description(
    'the Debian packages the deployment’s services need, one per line (from the service declarations); scripts/ensure-deps.sh installs them',
  )
  .option('--all', 'every service stackha can deploy, whatever the inventory enables')
  .option('--recommends', 'only those installed with their recommended packages')
  .option('--no-recommends', 'only those installed without their recommended packages')
  .action((o: { all?: boolean; recommends?: boolean }) => {
    const services = o.all ? undefined : deployedServices(cli.deployment());
    const list = debianPackages(services, o.recommends);
    for (const p of list) console.log(p);
  });

const labCmd = program
  .command('lab')
  .description('the embedded lab: hosts as network namespaces on this machine');

labCmd
  .command('up')
  .description(
    'create the lab (switch, hosts, client, blackhole route) and write its inventory if there is none',
  )
  .addOption(new Option('--hosts <n>', 'number of hosts').default('3'))
  .option('--subnet <cidr>', 'lab subnet (a /24 that is not the machine’s own)', DEFAULT_SUBNET)
  .action(async (o: { hosts: string; subnet: string }) => {
    const state = await labUp({ name: lab(), hostCount: Number(o.hosts), subnet: o.subnet });
    const dir = labConfigDir(lab());
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    const inv = renderLabInventory({
      lab: lab(),
      hostCount: state.hosts.length,
      subnetPrefix: subnetPrefix(o.subnet),
    });
    for (const [file, content] of [
      ['multinode', inv.multinode],
      ['globals.yml', inv.globals],
    ] as const) {
      const path = join(dir, file);
      if (!existsSync(path)) {
        writeFileSync(path, content);
        console.log(`wrote ${path}`);
      } else console.log(`kept ${path} (yours to edit)`);
    }
    const pw = generatePasswords(join(dir, 'passwords.yml'));
    if (pw.created.length)
      console.log(`${join(dir, 'passwords.yml')}: created ${pw.created.length} passwords (mode 0600)`);
    console.log(
      `lab ${state.name} up: ${state.hosts.map((h) => `${h.name}=${h.address}`).join(' ')} client=${state.client.address}`,
    );
  });

labCmd
  .command('down')
  .description('end every lab process, remove namespaces, hosts files, the route and host data')
  .option('--purge', 'also remove the lab inventory in /etc/stackha/<lab>')
  .action(async (o: { purge?: boolean }) => {
    const removed = await labDown(lab(), o.purge ? { purge: true } : {});
    console.log(
      removed.length ? `lab ${lab()} down: removed ${removed.join(', ')}` : `lab ${lab()}: nothing to remove`,
    );
  });

labCmd
  .command('status')
  .description('namespaces, processes and memory of the lab')
  .option('--json', 'machine-readable output')
  .action(async (o: { json?: boolean }) => {
    const s = await labStatus(lab());
    if (o.json) {
      console.log(JSON.stringify(s, null, 2));
      return;
    }
    console.log(`lab ${s.name}: ${s.exists ? 'up' : 'not up'}; route ${s.route ?? 'none'}`);
    if (!s.exists) return;
    for (const n of s.namespaces)
      console.log(
        `  ${n.ns.padEnd(18)} ${String(n.processes).padStart(3)} processes ${(n.pssKiB / 1024).toFixed(0).padStart(5)} MiB`,
      );
    // Resident memory per daemon and host (a daemon's whole process group: uwsgi and its workers count as one).
    const mib = (kib: number | undefined): string => (kib === undefined ? '-' : (kib / 1024).toFixed(0));
    const names = [...new Set(s.namespaces.flatMap((n) => Object.keys(n.daemons)))].sort((a, b) =>
      a === 'other' ? 1 : b === 'other' ? -1 : a.localeCompare(b),
    );
    const header = ['MiB (PSS)', ...s.namespaces.map((n) => n.host), 'total'];
    const rows = names.map((d) => [
      d,
      ...s.namespaces.map((n) => mib(n.daemons[d])),
      mib(s.namespaces.reduce((t, n) => t + (n.daemons[d] ?? 0), 0)),
    ]);
    rows.push(['total', ...s.namespaces.map((n) => mib(n.pssKiB)), mib(s.totalPssKiB)]);
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
    const line = (r: string[]) =>
      `  ${r.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ')}`;
    console.log('');
    console.log(line(header));
    for (const r of rows) console.log(line(r));
  });

labCmd
  .command('sshd')
  .description(
    "run OpenSSH's sshd in every lab host's own namespaces, and make the client namespace a deployer that reaches them over SSH",
  )
  .option('--user <name>', 'a non-root user with passwordless sudo, who logs in instead of root')
  .option('--user-hosts <hosts>', 'the hosts the user logs in to (comma-separated; default every host)')
  .action(async (o: { user?: string; userHosts?: string }) => {
    const state = cli.requireLab();
    const userHosts = o.userHosts?.split(',').map((h) => h.trim());
    const r = await labSshd(state, {
      ...(o.user ? { user: o.user } : {}),
      ...(userHosts ? { userHosts } : {}),
    });
    for (const [h, pid] of Object.entries(r.pids)) console.log(`${h}: sshd pid ${pid}, ${r.hostKeys[h]}`);
    console.log(
      `client: deployer key, ${DEPLOYER_KNOWN_HOSTS} and the SSH inventory ${r.configDir} written in its own namespace; ` +
        `run stackha there: stackha --lab ${state.name} lab exec client -- node ${process.argv[1]} --lab ${state.name} status`,
    );
  });

labCmd
  .command('exec <host> <argv...>')
  .description(
    "run a command inside a lab host's (or the client's) network, mount and UTS namespaces, with this terminal",
  )
  .action(async (host: string, argv: string[]) => {
    const state = cli.requireLab();
    if (host !== CLIENT && !state.hosts.some((h) => h.name === host))
      throw new Error(
        `lab ${state.name} has no host ${host} (${[...state.hosts.map((h) => h.name), CLIENT].join(', ')})`,
      );
    const ns = hostNamespaces(state.name, host);
    const r = spawnSync(
      'nsenter',
      [`--net=${ns.net}`, `--mount=${ns.mnt}`, `--uts=${ns.uts}`, '--', ...argv],
      {
        stdio: 'inherit',
      },
    );
    process.exitCode = r.status ?? 1;
  });

const requireLab = cli.requireLab;

const tenantCmd = labCmd
  .command('tenant')
  .description(
    "a simulated server's network card: a namespace plugged into a Neutron port on a lab host (what os-vif does on a real hypervisor; Nova's fake driver plugs nothing)",
  );
tenantCmd
  .command('up')
  .description(
    "make the lab networks and HA router if missing, plug a port (new, or a server's) and lease its address",
  )
  .option('--name <name>', 'tenant name', 't1')
  .option('--host <host>', 'lab host to bind a new port to (the compute host it stands on)')
  .option(
    '--port <id>',
    'plug this existing port (a server booted on simulated compute) instead of a new one',
  )
  .action(async (o: { name: string; host?: string; port?: string }) => {
    const t = await tenantUp(requireLab(), cli.deployment(), {
      name: o.name,
      ...(o.host ? { host: o.host } : {}),
      ...(o.port ? { portId: o.port } : {}),
    });
    console.log(
      `tenant ${t.name} up in ${t.seconds.toFixed(1)} s: namespace ${t.namespace}, port ${t.portId} ACTIVE on ${t.host}, address ${t.leasedIp} by DHCP (port's ${t.fixedIp}); the outside is ${t.outside}`,
    );
  });
tenantCmd
  .command('probe')
  .description(
    'ping the outside from a tenant through the HA router and report sends, replies and the longest gap',
  )
  .option('--name <name>', 'tenant name', 't1')
  .option('--seconds <n>', 'how long', '10')
  .option('--interval <ms>', 'between pings', '50')
  .action(async (o: { name: string; seconds: string; interval: string }) => {
    const state = requireLab();
    const t = readTenant(state.name, o.name);
    if (!t) throw new Error(`lab ${state.name} has no tenant ${o.name}: run \`stackha lab tenant up\``);
    const probe = startPing(state, o.name, t.outside, Number(o.interval));
    await sleep(Number(o.seconds) * 1000);
    const r = await probe.stop();
    console.log(
      `${t.name} -> ${r.target}: ${r.sent} sent, ${r.replies} replies, ${r.lost} lost, longest gap ${r.longestGapMs} ms`,
    );
    if (r.replies === 0) process.exitCode = 1;
  });
tenantCmd
  .command('down')
  .description('remove a tenant: its namespace, tap and port')
  .option('--name <name>', 'tenant name', 't1')
  .action(async (o: { name: string }) => {
    const done = await tenantDown(requireLab(), cli.deployment(), o.name);
    console.log(done.length ? `removed ${done.join(', ')}` : `no tenant ${o.name}`);
  });

const fault = labCmd
  .command('fault')
  .description('fault primitives: kill a service, crash a host, cut a link');
fault
  .command('kill <host> <daemon>')
  .description('signal one tracked daemon by its name (the names `lab status` lists for the host)')
  .option('-s, --signal <sig>', 'signal', 'SIGKILL')
  .action(async (host: string, daemon: string, o: { signal: string }) => {
    const ok = await labHost(requireLab(), host).signalDaemon(daemon, o.signal as NodeJS.Signals);
    if (!ok) throw new Error(`${daemon} is not running on ${host}`);
    console.log(`sent ${o.signal} to ${daemon} on ${host}`);
  });
fault
  .command('crash <host>')
  .description('power loss: kill every process of the host and take its link down')
  .action(async (host: string) => {
    const n = await crashHost(requireLab(), host);
    console.log(
      `${host} crashed: ${n} processes killed, link down (bring it back with \`lab fault poweron ${host}\`)`,
    );
  });
fault
  .command('poweron <host>')
  .description('bring a crashed host back: link up, only its own address, no daemons')
  .action(async (host: string) => {
    await powerOnHost(requireLab(), host);
    console.log(`${host} powered on (run \`stackha deploy\` to start its services)`);
  });
fault
  .command('cut <host>')
  .description('cut the host off the lab switch (silent drop)')
  .action(async (host: string) => {
    await setLink(requireLab(), host, false);
    console.log(`${host} cut off`);
  });
fault
  .command('restore <host>')
  .description('restore a cut link')
  .action(async (host: string) => {
    await setLink(requireLab(), host, true);
    console.log(`${host} link restored`);
  });

// Commands of later work register themselves here, each from its own module.
for (const register of COMMANDS) register(program, cli);

program.parseAsync(process.argv).catch((err: unknown) => {
  if (err instanceof InventoryError) {
    console.error(err.message);
    for (const w of err.warnings) console.error(formatWarning(w));
    process.exit(2);
  }
  if (err instanceof ConfigPathError) {
    console.error(`stackha: ${err.message}`);
    process.exit(2);
  }
  if (err instanceof LockHeld) {
    console.error(`stackha: ${err.message}`);
    process.exit(5);
  }
  console.error(`stackha: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
