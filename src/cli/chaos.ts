import type { Command } from 'commander';
import { formatOutageTable, formatResults, saveChaosReport, violations } from '../chaos/report.js';
import {
  type ChaosContext,
  DEFAULT_RUN,
  type ScenarioResult,
  chaosContext,
  runScenario,
} from '../chaos/run.js';
import { SCENARIOS, scenarioByName } from '../chaos/scenarios.js';
import { deploy } from '../deploy/deploy.js';
import type { ProfileName } from '../model.js';
import { withProfile } from '../tuning.js';
import type { CliContext } from './common.js';

function log(m: string): void {
  console.log(`${new Date().toISOString().slice(11, 19)} ${m}`);
}

async function runAll(
  ctx: ChaosContext,
  names: readonly string[],
  holdSeconds?: number,
): Promise<ScenarioResult[]> {
  const results: ScenarioResult[] = [];
  for (const name of names) {
    const scenario = scenarioByName(name);
    log(`${name}: ${scenario.description}`);
    const opts = holdSeconds === undefined ? DEFAULT_RUN : { ...DEFAULT_RUN, holdMs: holdSeconds * 1000 };
    const r = await runScenario(ctx, scenario, opts);
    console.log(formatResults([r]));
    results.push(r);
  }
  return results;
}

function expand(names: readonly string[]): string[] {
  if (names.length === 0 || names.includes('all')) return SCENARIOS.map((s) => s.name);
  for (const n of names) scenarioByName(n);
  return [...names];
}

export function registerChaos(program: Command, cli: CliContext): void {
  const chaos = program.command('chaos').description('failure scenarios under load, measured (lab only)');
  chaos
    .command('list')
    .description('the scenarios')
    .action(() => {
      for (const s of SCENARIOS) console.log(`${s.name.padEnd(26)} ${s.description}`);
    });
  chaos
    .command('run [names...]')
    .description('run scenarios (NAME ... or all) under load and write one report')
    .option('--profile <name>', 'tuning profile to deploy and measure: stackha or kolla')
    .option('--hold <seconds>', 'how long each fault stays before healing')
    .option('--json <file>', 'report path (default reports/chaos-<time>.json)')
    .action(async (names: string[], o: { profile?: string; hold?: string; json?: string }) => {
      let dep = cli.deployment();
      if (o.profile) {
        if (o.profile !== 'stackha' && o.profile !== 'kolla') throw new Error('--profile: stackha or kolla');
        dep = withProfile(dep, o.profile as ProfileName);
      }
      const state = cli.requireLab();
      // Deploy first: the profile's settings must be what runs (a no-op when they already are).
      await deploy(dep, { renderer: 'silent' });
      const results = await runAll(
        chaosContext(dep, state, log),
        expand(names),
        o.hold ? Number(o.hold) : undefined,
      );
      finish(results, o.json);
    });
  chaos
    .command('compare [names...]')
    .description('run scenarios with the stackha profile, then the kolla profile, in one report')
    .option('--hold <seconds>', 'how long each fault stays before healing')
    .option('--json <file>', 'report path')
    .action(async (names: string[], o: { hold?: string; json?: string }) => {
      const base = cli.deployment();
      const state = cli.requireLab();
      const results: ScenarioResult[] = [];
      for (const profile of ['stackha', 'kolla'] as const) {
        const dep = withProfile(base, profile);
        log(`deploying the ${profile} profile`);
        await deploy(dep, { renderer: 'silent' });
        results.push(
          ...(await runAll(
            chaosContext(dep, state, log),
            expand(names),
            o.hold ? Number(o.hold) : undefined,
          )),
        );
      }
      log(`restoring the ${base.tuning.profile} profile`);
      await deploy(base, { renderer: 'silent' });
      finish(results, o.json);
    });
}

function finish(results: ScenarioResult[], file?: string): void {
  const path = saveChaosReport(results, file);
  console.log(`\n${formatOutageTable(results)}\n\nreport: ${path}`);
  if (results.some((r) => violations(r).length > 0)) process.exitCode = 4;
}
