// Chaos reports: one run's figures, the invariants it broke, the summary of repeated trials (median and worst, both
// profiles side by side), and a timeline plot per run. Pure, except saveChaosReport.
import { mkdirSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { type Spread, WORKLOADS, WORKLOAD_LABELS, type Workload, spread } from './analyze.js';
import { type Failovers, formatFailovers } from './failovers.js';
import type { QueueKind, ScenarioResult } from './run.js';

const ms = (v: number | undefined): string => (v === undefined ? '-' : String(Math.round(v)));
const sec = (v: number | undefined): string => (v === undefined ? '-' : (v / 1000).toFixed(2));

/** Invariant violations of one result: what a test asserts and what a report flags. */
export function violations(r: ScenarioResult, outageBoundMs = 60_000): string[] {
  const v: string[] = [];
  if (r.error) v.push(`error: ${r.error}`);
  if (r.sql.lost > 0) v.push(`${r.sql.lost} acknowledged SQL rows lost`);
  if (r.sql.notVerified.length > 0) v.push(`SQL rows not verified on ${r.sql.notVerified.join(', ')}`);
  if (r.amqp.lost > 0) v.push(`${r.amqp.lost} confirmed messages lost`);
  if (r.amqp.notVerified) v.push('AMQP messages not verified (no accounting from the load generator)');
  const os = r.openstack;
  if (os) {
    if (os.notVerified) v.push('objects and images not verified (the read-back failed)');
    if (os.objects.lost > 0)
      v.push(`${os.objects.lost} acknowledged objects lost or changed (${os.objects.detail.join('; ')})`);
    if (os.images.lost > 0)
      v.push(`${os.images.lost} acknowledged images lost or changed (${os.images.detail.join('; ')})`);
    // A server ends ACTIVE or with a clear ERROR; one left in BUILD, or that cannot be deleted, is a violation.
    if (os.servers.stuckBuild > 0) v.push(`${os.servers.stuckBuild} servers stuck in BUILD`);
    if (os.servers.stuckDeleting > 0) v.push(`${os.servers.stuckDeleting} servers not deleted`);
  }
  if (r.problemsAfter.length > 0) v.push(`not whole after healing: ${r.problemsAfter.join('; ')}`);
  for (const e of r.evidence) if (e.startsWith('NOT OBSERVED')) v.push(`fault ${e}`);
  for (const w of r.workloads) {
    if (!w.recovered) v.push(`${w.workload}: never succeeded again after the fault`);
    else if (w.faultGapMs > outageBoundMs)
      v.push(`${w.workload}: outage ${sec(w.faultGapMs)} s > ${sec(outageBoundMs)} s`);
  }
  return v;
}

const label = (r: Pick<ScenarioResult, 'scenario' | 'profile' | 'queues'>): string =>
  `${r.scenario} [${r.profile}, ${r.queues} queues]`;

export function formatResults(results: readonly ScenarioResult[]): string {
  const lines: string[] = [];
  const header = [
    'workload',
    'ops',
    'failed',
    'outage s',
    'to 1st ok s',
    'steady worst s',
    'p50/p99/max ms in fault',
    'p50/p99 ms outside',
  ];
  for (const r of results) {
    lines.push(
      `${label(r)} trial ${r.trial} (${r.runId}) — ${r.target || 'not injected'}; fault held ${r.faultSeconds.toFixed(1)} s, whole again after ${r.recoveredSeconds === undefined ? 'NOT RECOVERED' : `${r.recoveredSeconds.toFixed(1)} s`}`,
    );
    for (const e of r.evidence) lines.push(`  observed: ${e}`);
    const rows = r.workloads.map((w) => [
      WORKLOAD_LABELS[w.workload],
      String(w.ops),
      String(w.failures),
      sec(w.faultGapMs),
      sec(w.firstSuccessAfterFaultMs),
      sec(w.steadyGapMs),
      `${ms(w.during.p50)}/${ms(w.during.p99)}/${ms(w.during.max)}`,
      `${ms(w.outside.p50)}/${ms(w.outside.p99)}`,
    ]);
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)));
    const fmt = (row: string[]) => `  ${row.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ')}`;
    lines.push(fmt(header));
    for (const row of rows) lines.push(fmt(row));
    const perNode = r.sql.nodes
      .map((n) =>
        n.error ? `${n.node} NOT VERIFIED (${n.error})` : `${n.node} ${n.present} present, ${n.lost} lost`,
      )
      .join('; ');
    lines.push(`  SQL: ${r.sql.acknowledged} acknowledged; per node: ${perNode || 'none read'}`);
    if (r.tenant)
      lines.push(
        `  tenant on ${r.tenant.host} pinging the outside through the HA router: ${r.tenant.sent} sent, ${r.tenant.lost} lost; ` +
          `outage ${r.tenant.outageSeconds === undefined ? 'NEVER ENDED' : `${r.tenant.outageSeconds.toFixed(2)} s`}, first reply ` +
          `${r.tenant.firstReplyAfterFaultSeconds === undefined ? 'none' : `${r.tenant.firstReplyAfterFaultSeconds.toFixed(2)} s`} after the fault`,
      );
    lines.push(
      `  AMQP: ${r.amqp.confirmed} confirmed, ${r.amqp.notVerified ? 'NOT VERIFIED' : `${r.amqp.lost} lost`}, ${r.amqp.duplicates} duplicated, ` +
        `${r.amqp.leftInQueue ?? '?'} left in the queue, ${r.amqp.reconnects} reconnects`,
    );
    if (r.openstack) {
      const o = r.openstack;
      lines.push(
        `  OpenStack: ${o.notVerified ? 'NOT VERIFIED' : `objects ${o.objects.acked} acknowledged, ${o.objects.lost} lost; images ${o.images.acked} acknowledged, ${o.images.lost} lost`}; ` +
          `servers ${o.servers.booted} booted: ${o.servers.active} ACTIVE, ${o.servers.error} ERROR, ${o.servers.stuckBuild} stuck in BUILD, ` +
          `${o.servers.lostInFlight ?? 0} lost in flight with the killed daemon, ` +
          `${o.servers.createFailed} create refused, ${o.servers.stuckDeleting} not deleted`,
      );
      for (const e of o.servers.errors) lines.push(`    server: ${e}`);
    }
    if (r.failovers) lines.push(`  failovers recorded by the daemons: ${formatFailovers(r.failovers)}`);
    const bad = violations(r);
    lines.push(bad.length === 0 ? '  invariants: OK' : `  invariants VIOLATED: ${bad.join('; ')}`, '');
  }
  return lines.join('\n');
}

/** A compact outage table of single runs: scenario x workload, the fault-anchored outage in seconds and failures. */
export function formatOutageTable(results: readonly ScenarioResult[]): string {
  // Only the workloads that ran: the OpenStack ones only where the OpenStack tier is deployed.
  const present = WORKLOADS.filter((w) => results.some((r) => r.workloads.some((x) => x.workload === w)));
  const header = [
    'scenario',
    'profile',
    'queues',
    ...present.map((w) => `${WORKLOAD_LABELS[w]} outage s (failed)`),
    'lost',
    'not verified',
    'dup',
  ];
  const rows = results.map((r) => [
    r.scenario,
    r.profile,
    r.queues,
    ...present.map((w) => {
      const s = r.workloads.find((x) => x.workload === w);
      return s ? `${sec(s.faultGapMs)} (${s.failures})` : '-';
    }),
    String(r.sql.lost + r.amqp.lost + (r.openstack?.objects.lost ?? 0) + (r.openstack?.images.lost ?? 0)),
    String(r.sql.notVerified.length + (r.amqp.notVerified ? 1 : 0) + (r.openstack?.notVerified ? 1 : 0)),
    String(r.amqp.duplicates),
  ]);
  return markdownTable(header, rows);
}

function markdownTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)));
  const fmt = (row: readonly string[]) => `| ${row.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ')} |`;
  return [fmt(header), fmt(widths.map((w) => '-'.repeat(w))), ...rows.map(fmt)].join('\n');
}

// ------------------------------------------------------------------------------------------------ trials

export interface WorkloadSummary {
  readonly workload: Workload;
  readonly outageMs: Spread | undefined;
  readonly failures: Spread | undefined;
  readonly firstSuccessAfterFaultMs: Spread | undefined;
  readonly steadyGapMs: Spread | undefined;
}

/** Every trial of one scenario with one profile and one queue kind. */
export interface TrialsSummary {
  readonly scenario: string;
  readonly profile: string;
  readonly queues: QueueKind;
  readonly trials: number;
  readonly workloads: readonly WorkloadSummary[];
  readonly recoveredSeconds: Spread | undefined;
  /** Summed over trials: anything here is a violation. */
  readonly lost: number;
  readonly notVerified: number;
  readonly duplicates: number;
  /** Per trial, the failovers the daemons recorded (HAProxy mark-downs, VIP takeovers, Galera view changes). */
  readonly failovers: readonly (Failovers | undefined)[];
  readonly violations: readonly string[];
}

export function summarizeTrials(results: readonly ScenarioResult[]): TrialsSummary[] {
  const groups = new Map<string, ScenarioResult[]>();
  for (const r of results) {
    const key = `${r.scenario}\0${r.profile}\0${r.queues}`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  return [...groups.values()].map((rs) => {
    const first = rs[0] as ScenarioResult;
    const per = (w: Workload) => rs.map((r) => r.workloads.find((x) => x.workload === w));
    return {
      scenario: first.scenario,
      profile: first.profile,
      queues: first.queues,
      trials: rs.length,
      workloads: WORKLOADS.filter((w) => per(w).some((x) => x !== undefined)).map((w) => ({
        workload: w,
        outageMs: spread(per(w).map((x) => x?.faultGapMs)),
        failures: spread(per(w).map((x) => x?.failures)),
        firstSuccessAfterFaultMs: spread(per(w).map((x) => x?.firstSuccessAfterFaultMs)),
        steadyGapMs: spread(per(w).map((x) => x?.steadyGapMs)),
      })),
      recoveredSeconds: spread(rs.map((r) => r.recoveredSeconds)),
      lost: rs.reduce((n, r) => n + r.sql.lost + r.amqp.lost, 0),
      notVerified: rs.reduce((n, r) => n + r.sql.notVerified.length + (r.amqp.notVerified ? 1 : 0), 0),
      duplicates: rs.reduce((n, r) => n + r.amqp.duplicates, 0),
      failovers: rs.map((r) => r.failovers),
      violations: rs.flatMap((r) => violations(r).map((v) => `trial ${r.trial}: ${v}`)),
    };
  });
}

const medWorst = (s: Spread | undefined, f: (v: number) => string): string =>
  s === undefined ? '-' : `${f(s.median)} (${f(s.worst)})`;
const secs = (v: number): string => (v / 1000).toFixed(2);

/**
 * The trials of the stackha and kolla profiles side by side, one table per scenario and queue kind: per workload the
 * outage (median, worst in brackets), failed operations, and the ratio of the medians (kolla / stackha).
 */
export function formatTrialsMarkdown(summaries: readonly TrialsSummary[]): string {
  const keys = [...new Set(summaries.map((s) => `${s.scenario}\0${s.queues}`))];
  const out: string[] = [];
  for (const key of keys) {
    const [scenario, queues] = key.split('\0') as [string, QueueKind];
    const of = (profile: string) =>
      summaries.find((s) => s.scenario === scenario && s.queues === queues && s.profile === profile);
    const a = of('stackha');
    const b = of('kolla');
    const trials = [a, b].filter((x) => x).map((x) => `${x?.profile} ${x?.trials}`);
    out.push(`### ${scenario} (${queues} queues; trials: ${trials.join(', ')})`, '');
    const rows = WORKLOADS.filter((w) => [a, b].some((s) => s?.workloads.some((x) => x.workload === w))).map(
      (w) => {
        const sa = a?.workloads.find((x) => x.workload === w);
        const sb = b?.workloads.find((x) => x.workload === w);
        const ratio =
          sa?.outageMs && sb?.outageMs && sa.outageMs.median > 0
            ? `${(sb.outageMs.median / sa.outageMs.median).toFixed(1)}x`
            : '-';
        return [
          WORKLOAD_LABELS[w],
          medWorst(sa?.outageMs, secs),
          medWorst(sa?.failures, String),
          medWorst(sb?.outageMs, secs),
          medWorst(sb?.failures, String),
          ratio,
          medWorst(sa?.steadyGapMs, secs),
        ];
      },
    );
    out.push(
      markdownTable(
        [
          'workload',
          'stackha outage s',
          'stackha failed',
          'kolla outage s',
          'kolla failed',
          'kolla/stackha',
          'stackha steady worst gap s',
        ],
        rows,
      ),
    );
    const inv = [a, b]
      .filter((s): s is TrialsSummary => s !== undefined)
      .map(
        (s) =>
          `${s.profile}: ${s.lost} lost, ${s.notVerified} not verified, ${s.duplicates} duplicated; whole again after ${medWorst(
            s.recoveredSeconds,
            (v) => v.toFixed(1),
          )} s; failovers per trial (HAProxy mark-downs/VIP takeovers/Galera view changes): ${s.failovers
            .map((f) => (f ? `${f.haproxyMarkDowns}/${f.vipTakeovers}/${f.galeraViewChanges}` : '?'))
            .join(', ')}${s.violations.length > 0 ? `; VIOLATIONS: ${s.violations.join('; ')}` : ''}`,
      );
    out.push('', ...inv.map((l) => `- ${l}`), '');
  }
  return out.join('\n');
}

// ------------------------------------------------------------------------------------------------ timeline plot

const COLORS = { ok: '#2e7d32', fail: '#c62828', both: '#ef6c00', fault: '#fff3cd', text: '#222' };

/** An SVG timeline of one run: a row per workload, successes green, failures red, the fault window shaded. */
export function renderTimelineSvg(r: ScenarioResult): string {
  const tl = r.timeline;
  const rows = WORKLOADS.filter((w) => tl?.workloads[w] !== undefined);
  const buckets = Math.max(...rows.map((w) => tl?.workloads[w]?.length ?? 0), 1);
  const left = 110;
  const width = Math.max(400, Math.min(1600, buckets * 2));
  const bw = width / buckets;
  const rowH = 22;
  const top = 34;
  const height = top + rows.length * rowH + 30;
  const seconds = ((tl?.bucketMs ?? 100) * buckets) / 1000;
  const x = (s: number) => left + (s / seconds) * width;
  const esc = (t: string) => t.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${left + width + 20}" height="${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="4" y="16" fill="${COLORS.text}">${esc(`${label(r)} trial ${r.trial}: ${r.target}`)}</text>`,
  ];
  // The fault window: from the injection to whole again (the rest of the load when it never was).
  if (tl && r.faultStartMs > 0) {
    const fs = (r.faultStartMs - tl.start) / 1000;
    const fe = r.recoveredSeconds !== undefined ? fs + r.recoveredSeconds : seconds;
    parts.push(
      `<rect x="${x(fs).toFixed(1)}" y="${top - 4}" width="${(x(fe) - x(fs)).toFixed(1)}" height="${rows.length * rowH + 4}" fill="${COLORS.fault}"/>`,
      `<text x="${x(fs).toFixed(1)}" y="${top - 8}" fill="${COLORS.text}">fault</text>`,
    );
  }
  rows.forEach((w, i) => {
    const y = top + i * rowH;
    parts.push(`<text x="4" y="${y + 14}" fill="${COLORS.text}">${WORKLOAD_LABELS[w]}</text>`);
    const series = tl?.workloads[w] ?? [];
    series.forEach(([ok, fail], b) => {
      if (ok === 0 && fail === 0) return;
      const color = fail === 0 ? COLORS.ok : ok === 0 ? COLORS.fail : COLORS.both;
      parts.push(
        `<rect x="${(left + b * bw).toFixed(1)}" y="${y + 3}" width="${Math.max(bw, 1).toFixed(1)}" height="${rowH - 8}" fill="${color}"/>`,
      );
    });
  });
  const axisY = top + rows.length * rowH + 14;
  const step = seconds > 120 ? 20 : seconds > 40 ? 10 : 5;
  for (let s = 0; s <= seconds; s += step)
    parts.push(`<text x="${x(s).toFixed(1)}" y="${axisY}" fill="${COLORS.text}">${s} s</text>`);
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

/** Writes a report: JSON (every figure), text, the markdown trials table, and a timeline SVG per run. */
export function saveChaosReport(results: readonly ScenarioResult[], file?: string): string {
  const path = file ?? join('reports', `chaos-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  mkdirSync(dirname(path), { recursive: true });
  const summaries = summarizeTrials(results);
  writeFileSync(
    path,
    `${JSON.stringify({ summaries, table: formatOutageTable(results), results }, null, 2)}\n`,
  );
  writeFileSync(
    path.replace(/\.json$/, '.txt'),
    `${formatOutageTable(results)}\n\n${formatResults(results)}\n`,
  );
  writeFileSync(path.replace(/\.json$/, '.md'), `${formatTrialsMarkdown(summaries)}\n`);
  const plots = path.replace(/\.json$/, '-timelines');
  mkdirSync(plots, { recursive: true });
  for (const r of results) {
    if (!r.timeline) continue;
    const name = `${r.scenario}-${r.profile}-${r.queues}-${r.trial}.svg`.replace(/[^A-Za-z0-9._-]/g, '_');
    writeFileSync(join(plots, name), renderTimelineSvg(r));
  }
  return path;
}

/** The directory of a report's timeline plots. */
export const timelinesOf = (reportPath: string): string =>
  join(dirname(reportPath), `${basename(reportPath, '.json')}-timelines`);
