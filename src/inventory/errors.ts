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

/** The longest piece of input text a message quotes; longer text is cut with "…". */
export const MAX_QUOTED = 60;
/** The longest message printed: a defence against a message that grew from a huge input. */
const MAX_MESSAGE = 1000;

/**
 * Input text made safe to print: control characters (ANSI escapes, NUL, C1, line and paragraph separators) are
 * written as \xNN / \uNNNN, and anything longer than `max` characters is cut. Only for text known not to be secret:
 * a value that may be a secret is never passed here, it is not printed at all.
 */
export function printable(text: string, max = MAX_QUOTED): string {
  let out = '';
  let count = 0;
  for (const ch of text) {
    if (count === max) return `${out}…`;
    const code = ch.codePointAt(0) ?? 0;
    if (code < 0x20 || code === 0x7f || (code >= 0x80 && code < 0xa0)) {
      out += `\\x${code.toString(16).padStart(2, '0')}`;
    } else if (code === 0x2028 || code === 0x2029 || code === 0xfeff || (code >= 0x202a && code <= 0x202e)) {
      out += `\\u${code.toString(16).padStart(4, '0')}`;
    } else {
      out += ch;
    }
    count++;
  }
  return out;
}

/** `"text"`, made printable; see printable(). */
export function quoted(text: string, max = MAX_QUOTED): string {
  return `"${printable(text, max)}"`;
}

/** `globals.yml:12 kolla_internal_vip_address: not an IPv4 address`, or `passwords.yml rabbitmq_password: missing`. */
export function formatIssue(issue: InputIssue): string {
  const file = printable(basename(issue.file), 100);
  const where = issue.line === undefined ? file : `${file}:${issue.line}`;
  // Fields and messages are built from checked input, but a control character must never reach a terminal.
  const field = printable(issue.field, 100);
  const message = printable(issue.message, MAX_MESSAGE);
  return field === '' ? `${where}: ${message}` : `${where} ${field}: ${message}`;
}

/** A warning, printed as `warning: multinode:3 ctl4: ...`. */
export function formatWarning(issue: InputIssue): string {
  return `warning: ${formatIssue(issue)}`;
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
  /** What was found besides the errors, to print with them; never part of the message. */
  readonly warnings: InputIssue[];

  constructor(issues: readonly InputIssue[], warnings: readonly InputIssue[] = []) {
    const sorted = sortIssues(issues);
    super(sorted.map(formatIssue).join('\n'));
    this.name = 'InventoryError';
    this.issues = sorted;
    this.warnings = sortIssues(warnings);
  }
}

/**
 * A path the user gave (config dir, lab name, passwords file) that cannot be used: one line naming the path and
 * the fix. The CLI prints it without a stack and exits 2, like an InventoryError.
 */
export class ConfigPathError extends Error {
  readonly code = 'ECONFIGPATH';
  constructor(message: string) {
    super(message);
    this.name = 'ConfigPathError';
  }
}

/** What an errno code means, in words; never the raw code alone. */
export function describeErrno(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'ENOENT':
      return 'no such file or directory';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'ENOTDIR':
      return 'a part of the path is a file, not a directory';
    case 'EISDIR':
      return 'is a directory, not a file';
    case 'EROFS':
      return 'the file system is read-only';
    case 'ENOSPC':
      return 'no space left on the device';
    case 'EDQUOT':
      return 'disk quota exceeded';
    case 'ELOOP':
      return 'too many levels of symbolic links';
    case 'ENAMETOOLONG':
      return 'the path is too long';
    case 'EMFILE':
    case 'ENFILE':
      return 'too many open files';
    case 'EIO':
      return 'input/output error';
    default:
      return code ? `error ${code}` : 'unexpected error';
  }
}
