import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { WORKLOAD_LABELS } from './analyze.js';
import type { ScenarioResult } from './run.js';

const ms = (v: number | undefined): string => (v === undefined ? '-' : String(Math.round(v)));
const sec = (v: number | undefined): string => (v === undefined ? '-' : (v / 1000).toFixed(2));

/** Invariant violations of one result: what a test asserts and what a report flags. */
export function violations(r: ScenarioResult, outageBoundMs = 60_000): string[] {
  const v: string[] = [];
  if (r.error) v.push(`error: ${r.error}`);
  if (r.sql.lost > 0) v.push(`${r.sql.lost} acknowledged SQL rows lost`);
  if (r.amqp.lost > 0) v.push(`${r.amqp.lost} confirmed messages lost`);
  if (r.problemsAfter.length > 0) v.push(`not whole after healing: ${r.problemsAfter.join('; ')}`);
  for (const w of r.workloads) {
    if (w.longestGapMs > outageBoundMs)
      v.push(`${w.workload}: outage ${sec(w.longestGapMs)} s > ${sec(outageBoundMs)} s`);
  }
  return v;
}

export function formatResults(results: readonly ScenarioResult[]): string {
  const lines: string[] = [];
  const header = ['workload', 'ops', 'failed', 'outage s', 'p50/p99/max ms in fault', 'p50/p99 ms outside'];
  for (const r of results) {
    lines.push(
      `${r.scenario} [${r.profile}] — ${r.target}; fault held ${r.faultSeconds.toFixed(1)} s, whole again after ${r.recoveredSeconds === undefined ? 'NOT RECOVERED' : `${r.recoveredSeconds.toFixed(1)} s`}`,
    );
    const rows = r.workloads.map((w) => [
      WORKLOAD_LABELS[w.workload],
      String(w.ops),
      String(w.failures),
      sec(w.longestGapMs),
      `${ms(w.during.p50)}/${ms(w.during.p99)}/${ms(w.during.max)}`,
      `${ms(w.outside.p50)}/${ms(w.outside.p99)}`,
    ]);
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)));
    const fmt = (row: string[]) => `  ${row.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ')}`;
    lines.push(fmt(header));
    for (const row of rows) lines.push(fmt(row));
    lines.push(
      `  SQL: ${r.sql.acknowledged} acknowledged, ${r.sql.lost} lost; AMQP: ${r.amqp.confirmed} confirmed, ${r.amqp.lost} lost, ${r.amqp.duplicates} duplicates, ${r.amqp.reconnects} reconnects`,
    );
    const bad = violations(r);
    lines.push(bad.length === 0 ? '  invariants: OK' : `  invariants VIOLATED: ${bad.join('; ')}`, '');
  }
  return lines.join('\n');
}

/** A compact outage table: scenario x workload, longest gap in seconds and failures, per profile. */
export function formatOutageTable(results: readonly ScenarioResult[]): string {
  const workloads = ['sql', 'sqlr', 'amqp', 'mc', 'http', 'tok'] as const;
  const header = [
    'scenario',
    'profile',
    ...workloads.map((w) => `${WORKLOAD_LABELS[w]} gap s (failed)`),
    'lost',
    'dup',
  ];
  const rows = results.map((r) => [
    r.scenario,
    r.profile,
    ...workloads.map((w) => {
      const s = r.workloads.find((x) => x.workload === w);
      return s ? `${sec(s.longestGapMs)} (${s.failures})` : '-';
    }),
    String(r.sql.lost + r.amqp.lost),
    String(r.amqp.duplicates),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)));
  const fmt = (row: string[]) => `| ${row.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ')} |`;
  return [fmt(header), fmt(widths.map((w) => '-'.repeat(w))), ...rows.map(fmt)].join('\n');
}

export function saveChaosReport(results: readonly ScenarioResult[], file?: string): string {
  const path = file ?? join('reports', `chaos-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, `${JSON.stringify({ results, table: formatOutageTable(results) }, null, 2)}\n`);
  writeFileSync(
    path.replace(/\.json$/, '.txt'),
    `${formatOutageTable(results)}\n\n${formatResults(results)}\n`,
  );
  return path;
}
