import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { addHostToMultinode } from '../inventory/lab-inventory.js';
import { labAddHost, labRemoveHost } from '../lab/lab.js';
import { RESTARTABLE, formatRestartReport, rollingRestart } from '../ops/rolling.js';
import { formatScaleReport, scaleAdd, scaleRemove } from '../ops/scale.js';
import type { CliContext } from './common.js';

/** `stackha scale add|remove HOST`, `stackha restart SERVICE...`, `stackha lab add-host|remove-host`. */
export function registerScale(program: Command, cli: CliContext): void {
  const scale = program
    .command('scale')
    .description('grow or shrink the control plane without interrupting it (see docs/scale.md)');
  scale
    .command('add <host>')
    .description(
      'bring a host that is in the inventory (and reachable) into every cluster: Galera (Synced before it gets ' +
        'traffic), RabbitMQ and its quorum queues, memcached, Keystone with the existing keys, HAProxy, keepalived; ' +
        'every other host’s peer lists updated without dropping connections',
    )
    .action(async (host: string) => {
      const r = await scaleAdd(cli.deployment(), host, {
        log: (m) => console.log(m),
        connectOptions: cli.connectOptions(),
      });
      console.log(formatScaleReport(r));
    });
  scale
    .command('remove <host>')
    .description(
      'take a host out gracefully: drained from HAProxy, the VIP moved away, RabbitMQ replicas moved and the node ' +
        'forgotten, Galera stopped cleanly, the others’ peer lists updated, the host removed from the inventory. ' +
        'Refuses to leave Galera or RabbitMQ below 3 nodes. Each phase is recorded: run it again to resume',
    )
    .option(
      '--dead',
      'the host crashed and will not come back: nothing is asked of it; every cluster forgets it through the hosts ' +
        'that remain (left one node short, with a warning if that is below the safe size)',
    )
    .action(async (host: string, o: { dead?: boolean }) => {
      const r = await scaleRemove(cli.deployment(), host, {
        log: (m) => console.log(m),
        dead: o.dead === true,
        connectOptions: cli.connectOptions(),
      });
      console.log(formatScaleReport(r));
      console.log(
        `${host} runs nothing of the deployment any more${cli.lab() ? ` (a lab host: \`stackha lab remove-host ${host}\` removes it)` : ''}`,
      );
    });

  program
    .command('restart <service...>')
    .description(
      `rolling restart, one host at a time, each drained from HAProxy first and back once healthy (the Galera writer last): ${RESTARTABLE.join(', ')}, or all`,
    )
    .option('--host <hosts>', 'only these hosts (comma-separated)')
    .option(
      '--move-vip',
      'also restart keepalived on the VIP holder (moves the VIP: clients through it reconnect)',
    )
    .action(async (services: string[], o: { host?: string; moveVip?: boolean }) => {
      const r = await rollingRestart(cli.deployment(), services, {
        ...(o.host ? { hosts: o.host.split(',').map((h) => h.trim()) } : {}),
        moveVip: o.moveVip === true,
        log: (m) => console.log(m),
        connectOptions: cli.connectOptions(),
      });
      console.log(formatRestartReport(r));
    });

  const lab = program.commands.find((c) => c.name() === 'lab');
  if (!lab) return;
  lab
    .command('add-host')
    .description(
      'grow the lab by one host (next ctlN) and add it to the lab inventory; then `stackha scale add`',
    )
    .action(async () => {
      const { host } = await labAddHost(cli.lab());
      const multinode = join(cli.configDir(), 'multinode');
      if (existsSync(multinode)) {
        const text = readFileSync(multinode, 'utf8');
        const next = addHostToMultinode(text, host.name, host.address);
        if (next !== text) {
          writeFileSync(multinode, next);
          console.log(`${multinode}: ${host.name} added to [control] and [network]`);
        }
      }
      console.log(
        `lab ${cli.lab()}: ${host.name}=${host.address} up; run \`stackha scale add ${host.name}\``,
      );
    });
  lab
    .command('remove-host <host>')
    .description('remove a host the deployment no longer uses (after `stackha scale remove`) from the lab')
    .action(async (host: string) => {
      if (
        existsSync(join(cli.configDir(), 'multinode')) &&
        cli.deployment().hosts.some((h) => h.name === host)
      )
        throw new Error(`${host} is still in the inventory: run \`stackha scale remove ${host}\` first`);
      const state = await labRemoveHost(cli.lab(), host);
      console.log(`lab ${cli.lab()}: ${host} removed; hosts ${state.hosts.map((h) => h.name).join(', ')}`);
    });
}
