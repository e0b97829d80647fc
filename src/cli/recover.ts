import type { Command } from 'commander';
import { GaleraRecoveryRefused, type RecoverGaleraResult, recoverGalera } from '../ops/recover.js';
import type { CliContext } from './common.js';

function summary(r: RecoverGaleraResult): string {
  const lines = [
    `bootstrapped ${r.chosen}${r.bootstrapPosition ? ` at ${r.bootstrapPosition}` : ' (new history)'}: ${r.reason}`,
  ];
  for (const w of r.warnings) lines.push(w);
  if (r.dryRun) {
    lines[0] = `would bootstrap ${r.chosen}${r.bootstrapPosition ? ` at ${r.bootstrapPosition}` : ' (new history)'}: ${r.reason}`;
    lines.push('dry run: nothing was started or changed');
    return lines.join('\n');
  }
  for (const j of r.joined) lines.push(`  ${j.host} joined by ${j.transfer} in ${j.seconds.toFixed(1)} s`);
  lines.push(
    `positions found in ${r.secondsToPositions.toFixed(1)} s; Primary after ${r.secondsToPrimary?.toFixed(1)} s; ` +
      `all ${r.positions.length} nodes Synced after ${r.secondsToAllSynced?.toFixed(1)} s; total ${r.seconds.toFixed(1)} s`,
  );
  return lines.join('\n');
}

/** `stackha recover galera`: bring back a Galera cluster whose every node is down. */
export function registerRecover(program: Command, cli: CliContext): void {
  const recover = program.command('recover').description('recover a service after a whole-cluster outage');
  recover
    .command('galera')
    .description(
      'every Galera node is down (power loss, crash): find each node’s position (grastate.dat or --wsrep-recover), ' +
        'bootstrap the most advanced, start the others one at a time with IST',
    )
    .option(
      '--bootstrap-host <host>',
      'bootstrap from this host whatever the positions say (warned if it is behind)',
    )
    .option('--dry-run', 'find the positions and decide; start and change nothing')
    .option('--json', 'print the result as JSON on stdout (progress goes to stderr)')
    .action(async (o: { bootstrapHost?: string; dryRun?: boolean; json?: boolean }) => {
      const dep = cli.deployment();
      const { hosts } = await cli.connect(dep);
      const log = (m: string): void => {
        if (o.json) console.error(m);
        else console.log(m);
      };
      try {
        const r = await recoverGalera(dep, hosts, {
          bootstrapHost: o.bootstrapHost,
          dryRun: o.dryRun === true,
          log,
        });
        console.log(o.json ? JSON.stringify(r, null, 2) : summary(r));
      } catch (err) {
        if (err instanceof GaleraRecoveryRefused && o.json) {
          console.log(JSON.stringify({ refused: err.message, positions: err.positions }, null, 2));
        }
        throw err;
      }
    });
}
