import { type Command, InvalidArgumentError } from 'commander';
import { DEFAULT_REPORT, formatDetails, runMultiwriterBench, saveBenchReport } from '../bench/multiwriter.js';
import type { RegisterCommand } from './commands.js';

function bounded(name: string, min: number, max: number): (v: string) => number {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max)
      throw new InvalidArgumentError(`${name}: an integer from ${min} to ${max}`);
    return n;
  };
}

/** `stackha bench multiwriter`: the spec's single- vs multi-writer test on the lab. */
export const registerBench: RegisterCommand = (program: Command, cli) => {
  const bench = program.command('bench').description('measurements on a deployed lab');
  bench
    .command('multiwriter')
    .description(
      'SELECT ... FOR UPDATE read-modify-write through the VIP (one writer) and on every Galera node ' +
        '(three writers): commits, deadlocks, latency, and a lost-update check; exits 3 on a failed check',
    )
    .option('--seconds <s>', 'seconds per mode', bounded('--seconds', 1, 600), 20)
    .option('--workers <n>', 'concurrent connections', bounded('--workers', 1, 64), 6)
    .option('--rows <n>', 'hot rows the workers pick from at random', bounded('--rows', 1, 100_000), 10)
    .option('--json <file>', 'where to save the report', DEFAULT_REPORT)
    .action(async (o: { seconds: number; workers: number; rows: number; json: string }) => {
      const state = cli.requireLab();
      const dep = cli.deployment();
      const report = await runMultiwriterBench(dep, state, {
        seconds: o.seconds,
        workers: o.workers,
        rows: o.rows,
        log: (line) => console.log(line),
      });
      console.log('');
      console.log(report.table);
      console.log('');
      console.log(formatDetails(report.modes));
      console.log(
        `${report.cpus} CPUs; 1-minute load average ${report.loadAvg1m.before} before, ${report.loadAvg1m.after} after`,
      );
      saveBenchReport(report, o.json);
      console.log(`report saved to ${o.json}`);
      if (report.problems.length > 0) {
        for (const p of report.problems) console.error(`stackha: ${p}`);
        process.exitCode = 3;
      }
    });
};
