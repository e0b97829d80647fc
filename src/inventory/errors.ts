// Input problems found while reading an inventory, reported all at once with file, line and field.
import { basename } from 'node:path';

/** One problem in an input file. Messages never carry a secret's value. */
export interface InputIssue {
  /** File name (or path; only the base name is printed). */
  file: string;
  /** 1-based line, when the problem has one. */
  line: number | undefined;
  /** The variable, key, host or group concerned; empty when the problem is about the whole file. */
  field: string;
  message: string;
}

/** `globals.yml:12 kolla_internal_vip_address: not an IPv4 address`, or `passwords.yml rabbitmq_password: missing`. */
export function formatIssue(issue: InputIssue): string {
  const where = issue.line === undefined ? basename(issue.file) : `${basename(issue.file)}:${issue.line}`;
  return issue.field === '' ? `${where}: ${issue.message}` : `${where} ${issue.field}: ${issue.message}`;
}

/** Orders issues by file, then line (issues without a line first), keeping the order of discovery otherwise. */
export function sortIssues(issues: readonly InputIssue[]): InputIssue[] {
  return issues
    .map((issue, index) => ({ issue, index }))
    .sort((a, b) => {
      const fa = basename(a.issue.file);
      const fb = basename(b.issue.file);
      if (fa !== fb) return fa < fb ? -1 : 1;
      const la = a.issue.line ?? 0;
      const lb = b.issue.line ?? 0;
      return la - lb || a.index - b.index;
    })
    .map((x) => x.issue);
}

/** Every problem of an inventory: the message lists them all, one per line. */
export class InventoryError extends Error {
  readonly code = 'EINVENTORY';
  readonly issues: InputIssue[];

  constructor(issues: readonly InputIssue[]) {
    const sorted = sortIssues(issues);
    super(sorted.map(formatIssue).join('\n'));
    this.name = 'InventoryError';
    this.issues = sorted;
  }
}
