import { join } from 'node:path';
import type { Command } from 'commander';
import {
  formatOutageTable,
  formatResults,
  formatTrialsMarkdown,
  saveChaosReport,
  summarizeTrials,
  violations,
} from '../chaos/report.js';
import {
  type ChaosContext,
  DEFAULT_RUN,
  QUEUE_KINDS,
  type QueueKind,
  type RunOptions,
  type ScenarioResult,
  chaosContext,
  connectedChaosContext,
  labRefusal,
  queueKindOf,
  runScenario,
  withQueues,
} from '../chaos/run.js';
import { SCENARIOS, scenarioByName } from '../chaos/scenarios.js';
import { deploy } from '../deploy/deploy.js';
import type { Connection } from '../hosts/connect.js';
import { LocalHost } from '../hosts/local.js';
import type { Deployment, ProfileName } from '../model.js';
import { hostsFor } from '../topology.js';
import { withProfile } from '../tuning.js';
import type { CliContext } from './common.js';

function log(m: string): void {
  console.log(`${new Date().toISOString().slice(11, 19)} ${m}`);
}

/** What a run that could not even start looks like in the report: its error, nothing measured, nothing verified. */
function failedResult(
  scenario: string,
  dep: Deployment,
  queues: QueueKind,
  trial: number,
  err: unknown,
): ScenarioResult {
  return {
    scenario,
    profile: dep.tuning.profile,
    queues,
    trial,
    runId: '',
    target: '',
    startedAt: new Date().toISOString(),
    faultStartMs: 0,
    faultSeconds: 0,
    recoveredSeconds: undefined,
    workloads: [],
    evidence: [],
    sql: { acknowledged: 0, nodes: [], lost: 0, lostIds: [], notVerified: ['(the run did not start)'] },
    amqp: {
      confirmed: 0,
      lost: 0,
      lostIds: [],
      duplicates: 0,
      reconnects: 0,
      leftInQueue: undefined,
      notVerified: true,
    },
    problemsAfter: [],
    error: err instanceof Error ? err.message : String(err),
  };
}

export interface Plan {
  readonly profiles: readonly ProfileName[];
  readonly queues: readonly QueueKind[];
  readonly names: readonly string[];
  readonly trials: number;
  readonly opts: RunOptions;
}

/**
 * Runs a plan: per profile and queue kind, deploy it, then the scenarios round after round (trial 1 of each, trial 2
 * of each, ...), a scenario that does not exercise queues only with the first queue kind. The report is saved after
 * every run, so a plan that is interrupted or throws still leaves what it measured.
 */
async function runPlan(base: Deployment, target: Target, plan: Plan, reportPath: string) {
  const results: ScenarioResult[] = [];
  for (const profile of plan.profiles) {
    for (const [qi, queues] of plan.queues.entries()) {
      const names = plan.names.filter((n) => qi === 0 || scenarioByName(n).queueKinds === true);
      if (names.length === 0) continue;
      const dep = withQueues(withProfile(base, profile), queues);
      log(`deploying the ${profile} profile with ${queues} queues`);
      await target.deploy(dep);
      const ctx = target.context(dep);
      for (let trial = 1; trial <= plan.trials; trial++) {
        for (const name of names) {
          const scenario = scenarioByName(name);
          log(
            `${name} [${profile}, ${queues} queues] trial ${trial}/${plan.trials}: ${scenario.description}`,
          );
          let r: ScenarioResult;
          try {
            r = await runScenario(ctx, scenario, plan.opts, trial);
          } catch (err) {
            r = failedResult(name, ctx.dep, queues, trial, err);
          }
          console.log(formatResults([r]));
          results.push(r);
          saveChaosReport(results, reportPath);
        }
      }
    }
  }
  return results;
}

/**
 * The scenarios to run: `all` is every scenario whose services this deployment runs (and, without a lab, that needs
 * none); a scenario named that needs a lab the deployment is not in is refused, every such one at once.
 */
export function expand(names: readonly string[], dep: Deployment, inLab: boolean): string[] {
  if (names.length === 0 || names.includes('all'))
    return SCENARIOS.filter(
      (s) =>
        (s.requires ?? []).every((r) => hostsFor(dep, r).length > 0) && labRefusal(s, inLab) === undefined,
    ).map((s) => s.name);
  const refused = names.map((n) => labRefusal(scenarioByName(n), inLab)).filter((r) => r !== undefined);
  if (refused.length > 0) throw new Error(refused.join('\n'));
  return [...names];
}

/** Where a plan runs: how it deploys a profile and builds the context its scenarios act on. */
interface Target {
  deploy(dep: Deployment): Promise<void>;
  context(dep: Deployment): ChaosContext;
  close(): void;
}

/** The hosts over SSH in an inventory (those a lab namespace does not stand for). */
const sshHosts = (dep: Deployment): string[] =>
  dep.hosts.filter((h) => h.connection.kind !== 'lab').map((h) => h.name);

/**
 * The lab's client namespace for a lab inventory; over SSH, the machine stackha runs on (`--client local`), which
 * must reach the VIP and every host's address and have node and the mariadb client.
 */
export function clientChoice(client: string | undefined, sshHostNames: readonly string[]): 'lab' | 'local' {
  if (client !== undefined && client !== 'lab' && client !== 'local')
    throw new Error("--client: lab (the lab's client namespace) or local (this machine)");
  if (sshHostNames.length === 0) {
    if (client === 'local')
      throw new Error(
        "--client local: this inventory is a lab; its load runs in the lab's client namespace (nothing of a lab is contacted from outside it)",
      );
    return 'lab';
  }
  if (client !== 'local')
    throw new Error(
      `${sshHostNames.join(', ')} ${sshHostNames.length === 1 ? 'is' : 'are'} reached over SSH: the load needs a client that reaches the VIP; ` +
        '--client local runs it on this machine',
    );
  return 'local';
}

async function targetFor(cli: CliContext, dep: Deployment, client: string | undefined): Promise<Target> {
  if (clientChoice(client, sshHosts(dep)) === 'lab') {
    const state = cli.requireLab();
    return {
      deploy: async (d) => {
        await deploy(d, { renderer: 'silent' });
      },
      context: (d) => chaosContext(d, state, log),
      close: () => {},
    };
  }
  const conn: Connection = await cli.connect(dep);
  const local = new LocalHost();
  return {
    deploy: async (d) => {
      await deploy(d, { renderer: 'silent', connection: conn });
    },
    context: (d) => connectedChaosContext(d, conn, local, log),
    close: () => conn.close?.(),
  };
}

function parseQueues(v: string | undefined, dep: Deployment): QueueKind[] {
  if (v === undefined) return [...QUEUE_KINDS];
  if (v === 'both') return [...QUEUE_KINDS];
  if (v === 'quorum' || v === 'mirrored') return [v];
  if (v === 'deployed') return [queueKindOf(dep)];
  throw new Error('--queues: quorum, mirrored, both or deployed');
}

function positive(v: string | undefined, what: string, fallback: number): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${what}: a whole number of 1 or more`);
  return n;
}

function runOptions(o: { hold?: string }): RunOptions {
  return o.hold === undefined
    ? DEFAULT_RUN
    : { ...DEFAULT_RUN, holdMs: positive(o.hold, '--hold', 1) * 1000 };
}

const defaultReport = () => join('reports', `chaos-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);

export function registerChaos(program: Command, cli: CliContext): void {
  const chaos = program
    .command('chaos')
    .description('failure scenarios under load, measured (a lab, or hosts over SSH with --client local)');
  chaos
    .command('list')
    .description('the scenarios')
    .action(() => {
      for (const s of SCENARIOS)
        console.log(
          `${s.name.padEnd(26)} ${s.description}${s.queueKinds ? ' [quorum and mirrored queues]' : ''}${s.needsLab ? ' [lab only]' : ''}`,
        );
    });
  const common = (c: Command) =>
    c
      .option('--trials <n>', 'runs of each scenario; the report gives the median and the worst', '1')
      .option(
        '--queues <kind>',
        'queue kinds for the RabbitMQ scenarios: quorum, mirrored, both (default) or deployed',
      )
      .option('--hold <seconds>', 'how long each fault stays before healing')
      .option('--json <file>', 'report path (default reports/chaos-<time>.json)')
      .option(
        '--client <where>',
        "where the load runs: lab (the lab's client namespace; default) or local (this machine: for hosts over SSH)",
      );
  common(
    chaos
      .command('run [names...]')
      .description('run scenarios (NAME ... or all) under load and write one report')
      .option('--profile <name>', 'tuning profile to deploy and measure: stackha or kolla'),
  ).action(
    async (
      names: string[],
      o: {
        profile?: string;
        trials: string;
        queues?: string;
        hold?: string;
        json?: string;
        client?: string;
      },
    ) => {
      const dep = cli.deployment();
      if (o.profile !== undefined && o.profile !== 'stackha' && o.profile !== 'kolla')
        throw new Error('--profile: stackha or kolla');
      const profile = (o.profile as ProfileName | undefined) ?? dep.tuning.profile;
      const inLab = clientChoice(o.client, sshHosts(dep)) === 'lab';
      const plan = {
        profiles: [profile],
        queues: parseQueues(o.queues, dep),
        names: expand(names, dep, inLab),
        trials: positive(o.trials, '--trials', 1),
        opts: runOptions(o),
      };
      await runAndRestore(dep, await targetFor(cli, dep, o.client), plan, o.json);
    },
  );
  common(
    chaos
      .command('compare [names...]')
      .description('run scenarios with the stackha profile, then the kolla profile, in one report'),
  ).action(
    async (
      names: string[],
      o: { trials: string; queues?: string; hold?: string; json?: string; client?: string },
    ) => {
      const dep = cli.deployment();
      const inLab = clientChoice(o.client, sshHosts(dep)) === 'lab';
      const plan = {
        profiles: ['stackha', 'kolla'] as const,
        queues: parseQueues(o.queues, dep),
        names: expand(names, dep, inLab),
        trials: positive(o.trials, '--trials', 1),
        opts: runOptions(o),
      };
      await runAndRestore(dep, await targetFor(cli, dep, o.client), plan, o.json);
    },
  );
}

/** Runs the plan, then deploys the profile and queues the inventory says again, whatever happened. */
async function runAndRestore(base: Deployment, target: Target, plan: Plan, json?: string): Promise<void> {
  const path = json ?? defaultReport();
  let results: ScenarioResult[] = [];
  try {
    results = await runPlan(base, target, plan, path);
  } finally {
    const found = `${base.tuning.profile} profile with ${queueKindOf(base)} queues`;
    log(`restoring the ${found}`);
    await target
      .deploy(base)
      .catch((err: unknown) =>
        log(`could not restore the ${found}: ${err instanceof Error ? err.message : String(err)}`),
      );
    target.close();
  }
  saveChaosReport(results, path);
  console.log(
    `\n${formatOutageTable(results)}\n\n${formatTrialsMarkdown(summarizeTrials(results))}\nreport: ${path}`,
  );
  if (results.some((r) => violations(r).length > 0)) process.exitCode = 4;
}
