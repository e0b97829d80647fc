// Ansible INI inventory parser, for kolla-ansible's `multinode` format. Pure: text in, hosts, groups and issues out.
import { type InputIssue, printable } from './errors.js';

export interface IniHost {
  readonly name: string;
  /** Line of the host's first appearance. */
  readonly line: number;
  /** Effective variables: `all:vars` < parent group vars < child group vars < host line vars. */
  readonly vars: Record<string, string>;
  /** Line where each effective variable was set (host line or `[group:vars]` line). */
  readonly varLines: Record<string, number>;
  /** Every group the host belongs to, directly or through `[group:children]`; never `all`. */
  readonly groups: Set<string>;
  /**
   * Set when every line naming the host is a bare name right after a line that ended with a secret-looking or empty
   * variable (`ansible_become_password=`): the "host" may be that value, wrapped. Its name is then never printed.
   */
  readonly wrappedAfter: { readonly key: string; readonly line: number } | undefined;
}

export interface IniGroup {
  readonly name: string;
  /** Line of the group's first `[group]` or `[group:children]` header; undefined for implicit groups. */
  readonly line: number | undefined;
  /** Hosts of the group, directly or through children, in inventory order of first appearance. */
  readonly hosts: string[];
  /** Direct child groups, in the order listed. */
  readonly children: string[];
  /** The group's own `[group:vars]`. */
  readonly vars: Record<string, string>;
}

export interface IniInventory {
  /** Hosts in inventory order of first appearance. */
  readonly hosts: Map<string, IniHost>;
  /** `all` first, then groups in order of first appearance. */
  readonly groups: Map<string, IniGroup>;
  readonly issues: InputIssue[];
}

interface Located {
  value: string;
  line: number;
}

interface RawGroup {
  name: string;
  /** Has a `[name]` or `[name:children]` section (or is implicit). */
  defined: boolean;
  line: number | undefined;
  varsLine: number | undefined;
  hosts: string[];
  children: { name: string; line: number }[];
  vars: Map<string, Located>;
}

interface RawHost {
  line: number;
  vars: Map<string, Located>;
  /** Set while every line naming the host may be a wrapped secret; see IniHost.wrappedAfter. */
  wrappedAfter: { key: string; line: number } | undefined;
}

/** What a host line ended with, so that the next line can be recognised as its wrapped continuation. */
interface HostLineEnd {
  line: number;
  /** The last variable of the line, when its value is empty or its name says it holds a secret. */
  secretKey: string | undefined;
}

type Section = { kind: 'hosts' | 'children' | 'vars'; group: string } | { kind: 'skip' };

const VAR_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const NAME_RULE = 'letters, digits and "_", not starting with a digit';
const SECTION = /^\[([^\s:[\]]+)(?::([^\s[\]]*))?\]\s*(?:[#;].*)?$/;
const GROUP_NAME = /^[^\s:=[\]#;]+$/;
const MAX_EXPANSION = 10_000;
/** A host name or range pattern, safe to print as the field of a message. */
const HOST_PATTERN = /^[A-Za-z0-9._\-[\]:]{1,100}$/;
/** Variable names whose values may be secrets: never printed. */
const SECRET_NAME = /pass|secret|token|key|cred|vault/i;
/** Variables whose values are addresses, names or flags, safe to quote in a message. */
const PLAIN_VARS = new Set([
  'ansible_host',
  'ansible_port',
  'ansible_user',
  'ansible_connection',
  'ansible_become',
  'ansible_python_interpreter',
  'network_interface',
  'api_interface',
]);

/**
 * The first token of a host line as a message's field, or '' when it does not look like a host name or range: it
 * may then be anything, a wrapped secret included, so it is not printed.
 */
export function hostField(token: string): string {
  return HOST_PATTERN.test(token) ? token : '';
}

/**
 * The text of an Ansible YAML inventory (`all:` with `hosts:` and `children:`) rather than INI, or a JSON one. Only
 * the first line that is not blank or a comment is looked at.
 */
export function looksLikeYamlInventory(text: string): boolean {
  for (const raw of text.split(/\r?\n/, 200)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    return line === '---' || line.startsWith('{') || /^[A-Za-z0-9_.-]+:\s*(#.*)?$/.test(line);
  }
  return false;
}

export function parseIniInventory(text: string, file: string): IniInventory {
  const issues: InputIssue[] = [];
  const issue = (line: number | undefined, field: string, message: string): void => {
    issues.push({ file, line, field, message });
  };
  if (looksLikeYamlInventory(text)) {
    issue(
      undefined,
      '',
      'only the INI format is supported, and this looks like an Ansible YAML inventory: write it as INI, ' +
        "like kolla-ansible's multinode ([control] then one host per line, [mariadb:children] then control, ...)",
    );
    return { hosts: new Map(), groups: new Map(), issues };
  }

  const groups = new Map<string, RawGroup>();
  const group = (name: string): RawGroup => {
    let g = groups.get(name);
    if (!g) {
      g = {
        name,
        defined: false,
        line: undefined,
        varsLine: undefined,
        hosts: [],
        children: [],
        vars: new Map(),
      };
      groups.set(name, g);
    }
    return g;
  };
  group('all').defined = true;
  group('ungrouped').defined = true;
  const hosts = new Map<string, RawHost>();

  let section: Section = { kind: 'hosts', group: 'ungrouped' };
  let previous: HostLineEnd | undefined;
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, index) => {
    const lineNo = index + 1;
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) return;
    const before = previous;
    previous = undefined;

    if (line.startsWith('[')) {
      section = parseSectionHeader(line, lineNo, group, issue);
      return;
    }
    switch (section.kind) {
      case 'skip':
        return;
      case 'hosts':
        previous = parseHostLine(line, lineNo, group(section.group), hosts, issue, before);
        return;
      case 'children': {
        const child = stripInlineComment(line);
        if (!GROUP_NAME.test(child)) {
          issue(
            lineNo,
            section.group,
            `expected one child group name per line in [${section.group}:children]`,
          );
          return;
        }
        group(section.group).children.push({ name: child, line: lineNo });
        return;
      }
      case 'vars': {
        const eq = line.indexOf('=');
        const key = eq > 0 ? line.slice(0, eq).trim() : '';
        const valid = key !== '' && VAR_NAME.test(key);
        if (!valid && before?.secretKey !== undefined) {
          // Likely the rest of a secret the line before ends with: not a word of it is printed.
          issue(
            lineNo,
            section.group,
            `this line looks like the rest of ${before.secretKey} on line ${before.line}, wrapped: join it to line ${before.line} ` +
              '(the line is not printed: it may be a secret)',
          );
          return;
        }
        if (key === '') {
          issue(lineNo, section.group, `key=value expected in [${section.group}:vars]`);
          return;
        }
        if (!valid) {
          issue(
            lineNo,
            section.group,
            `invalid variable name "${printable(key)}" in [${section.group}:vars] (${NAME_RULE})`,
          );
          return;
        }
        const value = unquote(line.slice(eq + 1).trim());
        group(section.group).vars.set(key, { value, line: lineNo });
        previous = { line: lineNo, secretKey: value === '' || SECRET_NAME.test(key) ? key : undefined };
        return;
      }
    }
  });

  return resolve(groups, hosts, issue, issues);
}

function parseSectionHeader(
  line: string,
  lineNo: number,
  group: (name: string) => RawGroup,
  issue: (line: number | undefined, field: string, message: string) => void,
): Section {
  const m = SECTION.exec(line);
  if (!m) {
    issue(
      lineNo,
      '',
      `malformed section header ${printable(line)} (expected [group], [group:children] or [group:vars])`,
    );
    return { kind: 'skip' };
  }
  const name = m[1]!;
  const suffix = m[2];
  let kind: 'hosts' | 'children' | 'vars';
  if (suffix === undefined || suffix === 'hosts') kind = 'hosts';
  else if (suffix === 'children' || suffix === 'vars') kind = suffix;
  else {
    issue(lineNo, name, `invalid section suffix ":${printable(suffix)}" (expected :children or :vars)`);
    return { kind: 'skip' };
  }
  const g = group(name);
  if (kind === 'vars') {
    g.varsLine ??= lineNo;
  } else {
    g.defined = true;
    g.line ??= lineNo;
  }
  return { kind, group: name };
}

function parseHostLine(
  line: string,
  lineNo: number,
  target: RawGroup,
  hosts: Map<string, RawHost>,
  issue: (line: number | undefined, field: string, message: string) => void,
  before: HostLineEnd | undefined,
): HostLineEnd | undefined {
  const tokenized = tokenize(line);
  const first = tokenized.tokens[0];
  // An editor that wraps `ansible_become_password=...` puts (the rest of) the value on a line of its own, where a
  // host name is expected. A bare name right after such a line may be that value: it is never printed.
  const wrappedAfter =
    before?.secretKey !== undefined &&
    tokenized.tokens.length === 1 &&
    first !== undefined &&
    !first.includes('=')
      ? { key: before.secretKey, line: before.line }
      : undefined;
  const field = wrappedAfter ? '' : hostField(first ?? '');
  if (tokenized.error !== undefined || first === undefined) {
    issue(lineNo, field, tokenized.error ?? 'expected a host name');
    return undefined;
  }
  if (first.includes('=')) {
    issue(lineNo, '', 'expected a host name before the key=value variables');
    return undefined;
  }

  let pattern = first;
  // Bad variables are reported and left out; the host is still added so later checks see its groups.
  const lineVars = new Map<string, string>();
  const port = /^(.*[^:]):(\d+)$/.exec(first);
  if (port && !hasColonOutsideBrackets(port[1]!)) {
    pattern = port[1]!;
    lineVars.set('ansible_port', port[2]!);
  }
  let end: HostLineEnd = { line: lineNo, secretKey: undefined };
  tokenized.tokens.slice(1).forEach((token, i) => {
    const eq = token.indexOf('=');
    if (eq <= 0) {
      // The token itself is not printed: it may be a fragment of an unquoted secret.
      issue(
        lineNo,
        field,
        `variable ${i + 1} on this line has no "=" (expected key=value; quote values with spaces)`,
      );
      return;
    }
    const key = token.slice(0, eq);
    const value = token.slice(eq + 1);
    if (!VAR_NAME.test(key)) {
      issue(lineNo, field, `variable ${i + 1} on this line has an invalid name (${NAME_RULE})`);
      return;
    }
    end = { line: lineNo, secretKey: value === '' || SECRET_NAME.test(key) ? key : undefined };
    const previous = lineVars.get(key);
    if (previous !== undefined && previous !== value) {
      issue(lineNo, field, `${key} is set twice on this line with different values`);
      return;
    }
    lineVars.set(key, value);
  });

  const expanded = expandHostPattern(pattern);
  if ('error' in expanded) {
    issue(lineNo, field, expanded.error);
    return end;
  }
  for (const name of expanded.names) {
    let host = hosts.get(name);
    if (!host) {
      host = { line: lineNo, vars: new Map(), wrappedAfter };
      hosts.set(name, host);
    } else if (!wrappedAfter) {
      host.wrappedAfter = undefined;
    }
    for (const [key, value] of lineVars) {
      // Ansible would let the later line win without a word; two values for one host are a mistake to show.
      const earlier = host.vars.get(key);
      if (earlier !== undefined && earlier.value !== value) {
        issue(lineNo, field === '' ? '' : hostField(name), conflictMessage(key, value, earlier));
        continue;
      }
      host.vars.set(key, { value, line: lineNo });
    }
    if (!target.hosts.includes(name)) target.hosts.push(name);
  }
  return end;
}

function conflictMessage(key: string, value: string, earlier: Located): string {
  const rule = "a host's variables must agree on every line that names it";
  if (PLAIN_VARS.has(key) && !SECRET_NAME.test(key)) {
    return `${key}=${printable(value)} here, but ${key}=${printable(earlier.value)} on line ${earlier.line}: ${rule}`;
  }
  return `${key} here differs from ${key} on line ${earlier.line}: ${rule} (the values are not printed)`;
}

/** Splits a host line like a shell would: whitespace separated, '…' and "…" quoting, `#` starts a comment. */
export function tokenize(line: string): { tokens: string[]; error?: string } {
  const tokens: string[] = [];
  let current = '';
  let inToken = false;
  let quote: '"' | "'" | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote) {
      if (c === quote) quote = undefined;
      else if (c === '\\' && quote === '"' && i + 1 < line.length) current += line[++i];
      else current += c;
      continue;
    }
    if (c === ' ' || c === '\t') {
      if (inToken) tokens.push(current);
      current = '';
      inToken = false;
      continue;
    }
    if (c === '#' && !inToken) break;
    inToken = true;
    if (c === '"' || c === "'") quote = c;
    else if (c === '\\' && i + 1 < line.length) current += line[++i];
    else current += c;
  }
  if (quote) return { tokens, error: `unterminated ${quote} quote` };
  if (inToken) tokens.push(current);
  return { tokens };
}

/**
 * Expands Ansible host ranges: `ctl[1:3]` -> ctl1 ctl2 ctl3, `control[01:03]` -> control01 …,
 * `node[a:c]`, an optional step `[1:9:2]`, and several ranges in one name.
 */
export function expandHostPattern(pattern: string): { names: string[] } | { error: string } {
  if (!pattern.includes('[') && !pattern.includes(']')) return { names: [pattern] };
  const m = /^([^[\]]*)\[([^[\]]*)\](.*)$/.exec(pattern);
  if (!m) return { error: 'unbalanced brackets in the host range on this line' };
  const head = m[1] ?? '';
  const spec = m[2] ?? '';
  // Only range syntax is quoted: the pattern may be a misplaced secret.
  const shown = /^[A-Za-z0-9:]{0,30}$/.test(spec) ? spec : '…';
  const tail = m[3] ?? '';
  const parts = spec.split(':');
  if (parts.length < 2 || parts.length > 3) {
    return { error: `invalid host range [${shown}] (expected [start:end] or [start:end:step])` };
  }
  const [beg = '', end = '', stepText = '1'] = parts;
  if (!/^\d+$/.test(stepText) || Number(stepText) < 1)
    return { error: `invalid step in host range [${shown}]` };
  const step = Number(stepText);

  const items: string[] = [];
  const begin = beg === '' ? '0' : beg;
  if (/^\d+$/.test(begin) && /^\d+$/.test(end)) {
    const width = begin.length > 1 && begin.startsWith('0') ? begin.length : 0;
    if (width > 0 && end.length !== width) {
      return { error: `host range [${shown}] must have equal-length zero-padded start and end` };
    }
    const from = Number(begin);
    const to = Number(end);
    if (from > to) return { error: `host range [${shown}] starts after it ends` };
    if ((to - from) / step >= MAX_EXPANSION) return { error: `host range [${shown}] is too large` };
    for (let n = from; n <= to; n += step) items.push(String(n).padStart(width, '0'));
  } else if (
    /^[a-z]$/.test(begin) === /^[a-z]$/.test(end) &&
    /^[a-zA-Z]$/.test(begin) &&
    /^[a-zA-Z]$/.test(end)
  ) {
    const from = begin.charCodeAt(0);
    const to = end.charCodeAt(0);
    if (from > to) return { error: `host range [${shown}] starts after it ends` };
    for (let n = from; n <= to; n += step) items.push(String.fromCharCode(n));
  } else {
    return {
      error: `invalid host range [${shown}] (expected numbers like [1:3] or [01:10], or letters like [a:c])`,
    };
  }

  const rest = expandHostPattern(tail);
  if ('error' in rest) return rest;
  if (items.length * rest.names.length > MAX_EXPANSION)
    return { error: 'the host range on this line is too large' };
  const names: string[] = [];
  for (const item of items) for (const suffix of rest.names) names.push(`${head}${item}${suffix}`);
  return { names };
}

function hasColonOutsideBrackets(s: string): boolean {
  let depth = 0;
  for (const c of s) {
    if (c === '[') depth++;
    else if (c === ']') depth--;
    else if (c === ':' && depth === 0) return true;
  }
  return false;
}

function stripInlineComment(line: string): string {
  return line.replace(/\s+[#;].*$/, '').trim();
}

function unquote(value: string): string {
  if (value.length >= 2) {
    const q = value[0];
    if ((q === '"' || q === "'") && value.endsWith(q)) {
      const inner = value.slice(1, -1);
      return q === '"' ? inner.replace(/\\(.)/g, '$1') : inner;
    }
  }
  return value;
}

function resolve(
  groups: Map<string, RawGroup>,
  rawHosts: Map<string, RawHost>,
  issue: (line: number | undefined, field: string, message: string) => void,
  issues: InputIssue[],
): IniInventory {
  // Children must name defined groups; `all` cannot be anyone's child.
  const edges = new Map<string, { name: string; line: number }[]>();
  for (const g of groups.values()) {
    const kept: { name: string; line: number }[] = [];
    for (const child of g.children) {
      if (child.name === 'all') {
        issue(child.line, child.name, `cannot be a child group (of [${g.name}:children])`);
      } else if (!groups.get(child.name)?.defined) {
        issue(
          child.line,
          child.name,
          `unknown group in [${g.name}:children] (no [${child.name}] or [${child.name}:children] section)`,
        );
      } else if (!kept.some((k) => k.name === child.name)) {
        kept.push(child);
      }
    }
    edges.set(g.name, kept);
  }
  for (const g of groups.values()) {
    if (!g.defined && g.varsLine !== undefined) {
      issue(
        g.varsLine,
        g.name,
        `[${g.name}:vars] for a group that is never defined (no [${g.name}] section)`,
      );
    }
  }

  // Cycles: depth-first search, dropping the edge that closes each cycle.
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (name: string): void => {
    state.set(name, 'open');
    stack.push(name);
    const out = edges.get(name) ?? [];
    for (const edge of [...out]) {
      const s = state.get(edge.name);
      if (s === 'open') {
        const cycle = [...stack.slice(stack.indexOf(edge.name)), edge.name].join(' -> ');
        issue(edge.line, name, `cycle in [${name}:children]: ${cycle}`);
        out.splice(out.indexOf(edge), 1);
      } else if (s === undefined) {
        visit(edge.name);
      }
    }
    stack.pop();
    state.set(name, 'done');
  };
  for (const name of groups.keys()) if (!state.has(name)) visit(name);

  const parents = new Map<string, string[]>();
  for (const [parent, children] of edges) {
    for (const child of children) parents.set(child.name, [...(parents.get(child.name) ?? []), parent]);
  }
  // Depth decides group var precedence, as in Ansible: deeper (more specific) groups win.
  const depths = new Map<string, number>([['all', 0]]);
  const depth = (name: string): number => {
    const known = depths.get(name);
    if (known !== undefined) return known;
    const d = 1 + Math.max(0, ...(parents.get(name) ?? []).filter((p) => p !== 'all').map(depth));
    depths.set(name, d);
    return d;
  };
  const ancestors = (name: string, into: Set<string>): void => {
    for (const p of parents.get(name) ?? []) {
      if (!into.has(p)) {
        into.add(p);
        ancestors(p, into);
      }
    }
  };

  const definedGroups = [...groups.values()].filter((g) => g.defined);
  const hosts = new Map<string, IniHost>();
  for (const [name, raw] of rawHosts) {
    const member = new Set<string>();
    for (const g of definedGroups) {
      if (g.hosts.includes(name)) {
        member.add(g.name);
        ancestors(g.name, member);
      }
    }
    member.delete('all');
    member.delete('ungrouped');
    // As Ansible does: `ungrouped` holds exactly the hosts that are in no other group.
    if (member.size === 0) member.add('ungrouped');

    const order = [...member, 'all'].sort((a, b) => depth(a) - depth(b) || (a < b ? -1 : a > b ? 1 : 0));
    const vars = new Map<string, Located>();
    for (const g of order) for (const [k, v] of groups.get(g)?.vars ?? []) vars.set(k, v);
    for (const [k, v] of raw.vars) vars.set(k, v);
    hosts.set(name, {
      name,
      line: raw.line,
      vars: Object.fromEntries([...vars].map(([k, v]) => [k, v.value])),
      varLines: Object.fromEntries([...vars].map(([k, v]) => [k, v.line])),
      groups: member,
      wrappedAfter: raw.wrappedAfter,
    });
  }

  const out = new Map<string, IniGroup>();
  const hostNames = [...hosts.keys()];
  for (const g of [groups.get('all')!, ...definedGroups.filter((x) => x.name !== 'all')]) {
    const members = g.name === 'all' ? hostNames : hostNames.filter((h) => hosts.get(h)?.groups.has(g.name));
    if (g.name === 'ungrouped' && members.length === 0 && g.line === undefined) continue;
    out.set(g.name, {
      name: g.name,
      line: g.line,
      hosts: members,
      children: (edges.get(g.name) ?? []).map((e) => e.name),
      vars: Object.fromEntries([...g.vars].map(([k, v]) => [k, v.value])),
    });
  }
  return { hosts, groups: out, issues };
}
