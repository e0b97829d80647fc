import type { Command } from 'commander';
import {
  BootstrapFailed,
  bootstrapPlan,
  bootstrapServers,
  formatBootstrapPlan,
  formatBootstrapReport,
  labRefusal,
} from '../ops/bootstrap.js';
import { deployerRuntime } from '../runtime/runtime.js';
import type { CliContext } from './common.js';

/** `stackha bootstrap-servers`: real hosts made ready for `stackha deploy`. */
export function registerBootstrap(program: Command, cli: CliContext): void {
  program
    .command('bootstrap-servers')
    .description(
      'prepare real hosts for deploy: install the Debian packages each host’s services declare (no service started ' +
        'by the install), net.ipv4.ip_nonlocal_bind=1 on load balancers; idempotent. Every host is reached and ' +
        'checked before anything changes on any. Hosts that run stackha agents get nodejs and the stackha runtime ' +
        '(/var/lib/stackha/runtime). In a lab only the runtime is shipped, to the hosts reached over SSH ' +
        '(scripts/ensure-deps.sh installs the packages of a lab)',
    )
    .option('--dry-run', 'print what each host is given from the declarations; reach no host')
    .action(async (o: { dryRun?: boolean }) => {
      const dep = cli.deploymentWarned();
      if (o.dryRun) {
        const refusal = labRefusal(dep);
        if (refusal) console.error(`note: ${refusal}`);
        const plan = bootstrapPlan(dep);
        console.log(
          formatBootstrapPlan(
            plan,
            plan.some((p) => p.agents.length > 0) ? deployerRuntime().hash : undefined,
          ),
        );
        return;
      }
      try {
        const r = await bootstrapServers(dep, {
          connectOptions: cli.connectOptions(),
          log: (m) => console.error(m),
        });
        console.log(formatBootstrapReport(r));
      } catch (err) {
        if (err instanceof BootstrapFailed && err.done.length > 0)
          console.log(
            formatBootstrapReport({ hosts: err.done, changed: true, seconds: 0 })
              .split('\n')
              .slice(0, -1)
              .join('\n'),
          );
        throw err;
      }
    });
}
