import type { Command } from 'commander';
import { labClient } from '../lab/lab.js';
import {
  formatKeystoneStatus,
  keystoneProblems,
  keystoneStatus,
  rotateFernetKeys,
  runOpenstack,
  syncKeystoneKeys,
} from '../ops/keystone.js';
import { keystoneEnabled } from '../services/keystone/keystone.js';
import type { CliContext } from './common.js';

/** `stackha keystone ...` (key rotation, key sync, status) and `stackha openstack ...` (the real client). */
export function registerKeystone(program: Command, cli: CliContext): void {
  const ks = program
    .command('keystone')
    .description('Keystone: Fernet key rotation and sync, backends and keys');
  const context = async () => {
    const dep = cli.deployment();
    if (!keystoneEnabled(dep))
      throw new Error('Keystone is not deployed here (enable_keystone, [keystone] hosts)');
    const { hosts } = await cli.connect(dep);
    return { dep, hosts, log: (m: string) => console.log(m) };
  };
  ks.command('rotate')
    .description(
      'rotate the Fernet keys on one host and give the result to every host (tokens issued before stay valid)',
    )
    .option('--host <host>', 'where keystone-manage fernet_rotate runs (default: the first Keystone host)')
    .option('--json', 'print the result as JSON')
    .action(async (o: { host?: string; json?: boolean }) => {
      const ctx = await context();
      const r = await rotateFernetKeys(o.json ? { ...ctx, log: (m) => console.error(m) } : ctx, {
        ...(o.host ? { host: o.host } : {}),
      });
      if (o.json) console.log(JSON.stringify(r, null, 2));
      else
        console.log(
          `rotated on ${r.host}: primary key ${r.before} -> ${r.after} (${r.fingerprint}); ` +
            `distributed to ${r.distributedTo.join(', ') || 'nobody (one host)'}; ${r.seconds.toFixed(1)} s`,
        );
    });
  ks.command('sync')
    .description(
      'give every Keystone host the most advanced host’s Fernet and credential keys (a host that missed a rotation)',
    )
    .action(async () => {
      const r = await syncKeystoneKeys(await context());
      console.log(
        `${Object.entries(r.sources)
          .map(([repo, from]) => `${repo} keys from ${from}`)
          .join('; ')}; changed: ${r.changed.join(', ') || 'nothing'}`,
      );
    });
  ks.command('status')
    .description('each Keystone backend’s health and whether every host holds the same keys')
    .option('--json', 'machine-readable output')
    .action(async (o: { json?: boolean }) => {
      const s = await keystoneStatus(await context());
      const problems = keystoneProblems(s);
      if (o.json) console.log(JSON.stringify({ ...s, problems }, null, 2));
      else {
        console.log(formatKeystoneStatus(s).join('\n'));
        if (problems.length) console.log(`PROBLEMS:\n  ${problems.join('\n  ')}`);
      }
      if (problems.length > 0) process.exitCode = 3;
    });
  program
    .command('openstack')
    .description(
      'run the OpenStack client as admin in the lab’s client namespace, e.g. `stackha openstack endpoint list`; ' +
        'put `--` before arguments stackha itself takes (`-c`, `--lab`): `stackha openstack -- token issue -c id`',
    )
    .argument('[args...]', 'arguments for openstack')
    .allowUnknownOption()
    .helpOption(false)
    .action(async (args: string[]) => {
      const dep = cli.deployment();
      const r = await runOpenstack(labClient(cli.requireLab()), dep, args);
      process.stdout.write(r.stdout);
      process.stderr.write(r.stderr);
      process.exitCode = r.code ?? 1;
    });
}
