// Reads a kolla-ansible style config directory (multinode, globals.yml, passwords.yml) into the Deployment model,
// reporting every problem of all three files at once.
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { type Document, LineCounter, type YAMLMap, isMap, isScalar, parseDocument } from 'yaml';
import { z } from 'zod';
import {
  type Deployment,
  type Globals,
  type HostSpec,
  PASSWORD_KEYS,
  type Passwords,
  type ProfileName,
  type Service,
} from '../model.js';
import { serviceGroupCandidates } from '../topology.js';
import { tuningFor } from '../tuning.js';
import { type InputIssue, InventoryError } from './errors.js';
import { type IniInventory, parseIniInventory } from './ini.js';

/** The three files of a config directory, by their names in it. */
export const CONFIG_FILES = {
  multinode: 'multinode',
  globals: 'globals.yml',
  passwords: 'passwords.yml',
} as const;

export interface ConfigTexts {
  multinode: string;
  globals: string;
  passwords: string;
}

export type PasswordKey = (typeof PASSWORD_KEYS)[number];

/** The service whose enablement makes a password required; `undefined`: always required. */
export const PASSWORD_NEEDED_BY: Readonly<Record<PasswordKey, Service | undefined>> = {
  database_password: 'mariadb',
  mariadb_backup_database_password: 'mariadb',
  rabbitmq_password: 'rabbitmq',
  rabbitmq_cluster_cookie: 'rabbitmq',
  keepalived_password: 'keepalived',
  haproxy_password: 'haproxy',
  memcache_secret_key: 'memcached',
  keystone_admin_password: 'keystone',
  keystone_database_password: 'keystone',
};

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** Strict dotted-quad IPv4: four decimal octets 0-255, no leading zeros, nothing else. */
export function isIPv4(value: string): boolean {
  return IPV4.test(value);
}

/** A unicast address a host or VIP can have: not 0.0.0.0/8, multicast, reserved or broadcast. */
export function isUsableIPv4(value: string): boolean {
  if (!isIPv4(value)) return false;
  const first = Number(value.split('.')[0]);
  return first !== 0 && first < 224;
}

/** Reads `multinode`, `globals.yml` and `passwords.yml` in configDir; throws one InventoryError listing every issue. */
export function loadDeployment(configDir: string): Deployment {
  const issues: InputIssue[] = [];
  const read = (name: string, hint: string): string | undefined => {
    const path = join(configDir, name);
    try {
      return readFileSync(path, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : String(code);
      issues.push({ file: name, line: undefined, field: '', message: `cannot read ${path}: ${why}${hint}` });
      return undefined;
    }
  };
  const texts = {
    multinode: read(CONFIG_FILES.multinode, ''),
    globals: read(CONFIG_FILES.globals, ''),
    passwords: read(CONFIG_FILES.passwords, ' (run stackha genpwd)'),
  };
  if (texts.passwords !== undefined) {
    const mode = statSync(join(configDir, CONFIG_FILES.passwords)).mode & 0o777;
    if ((mode & 0o077) !== 0) {
      issues.push({
        file: CONFIG_FILES.passwords,
        line: undefined,
        field: '',
        message: `mode ${mode.toString(8).padStart(4, '0')}, must be 0600`,
      });
    }
  }
  const result = assemble(texts, configDir);
  issues.push(...result.issues);
  if (issues.length > 0 || result.deployment === undefined) throw new InventoryError(issues);
  return result.deployment;
}

/** The pure part of loadDeployment: file contents in, Deployment out, or one InventoryError with every issue. */
export function buildDeployment(files: ConfigTexts, configDir: string): Deployment {
  const result = assemble(files, configDir);
  if (result.issues.length > 0 || result.deployment === undefined) throw new InventoryError(result.issues);
  return result.deployment;
}

type MaybeTexts = { [K in keyof ConfigTexts]: string | undefined };

function assemble(
  files: MaybeTexts,
  configDir: string,
): { deployment: Deployment | undefined; issues: InputIssue[] } {
  const issues: InputIssue[] = [];
  const inventory =
    files.multinode === undefined ? undefined : parseIniInventory(files.multinode, CONFIG_FILES.multinode);
  const hosts = inventory ? hostsOf(inventory, issues) : undefined;
  const globals = files.globals === undefined ? undefined : parseGlobals(files.globals, issues);
  // Without a readable globals.yml, which services are enabled is unknown: requirements that depend on it are
  // not checked (the globals.yml issue is reported instead).
  const enabled = globals?.value.enabled;
  const passwords =
    files.passwords === undefined ? undefined : parsePasswords(files.passwords, enabled, issues);

  if (inventory && hosts && globals) {
    const vip = globals.value.internalVip;
    const holder = hosts.find((h) => h.address === vip);
    if (vip !== '' && holder) {
      issues.push({
        file: CONFIG_FILES.globals,
        line: globals.lineOf('kolla_internal_vip_address'),
        field: 'kolla_internal_vip_address',
        message: `${vip} is also the address of host ${holder.name} (the VIP must be an unused address)`,
      });
    }
  }
  if (inventory && enabled) checkServiceHosts(inventory, enabled, issues);

  if (issues.length > 0 || !inventory || !hosts || !globals || !passwords)
    return { deployment: undefined, issues };
  const groups: Record<string, readonly string[]> = Object.fromEntries(
    [...inventory.groups.values()].map((g) => [
      g.name,
      g.hosts.filter((n) => hosts.some((h) => h.name === n)),
    ]),
  );
  return {
    deployment: {
      configDir,
      hosts,
      groups,
      globals: globals.value,
      passwords,
      tuning: tuningFor(globals.value.profile),
    },
    issues,
  };
}

const HOST_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

function hostsOf(inventory: IniInventory, issues: InputIssue[]): HostSpec[] {
  issues.push(...inventory.issues);
  const file = CONFIG_FILES.multinode;
  const byAddress = new Map<string, string>();
  const hosts: HostSpec[] = [];
  if (inventory.hosts.size === 0 && inventory.issues.length === 0) {
    issues.push({ file, line: undefined, field: '', message: 'no hosts' });
  }
  for (const host of inventory.hosts.values()) {
    // kolla's multinode lists the deployment machine as `localhost ansible_connection=local`: not a target host.
    if (host.vars.ansible_connection === 'local') continue;
    if (!HOST_NAME.test(host.name)) {
      issues.push({
        file,
        line: host.line,
        field: host.name,
        message: 'not a valid host name (letters, digits, ".", "-" and "_", starting with a letter or digit)',
      });
    }
    const explicit = host.vars.ansible_host;
    let address: string | undefined;
    if (explicit !== undefined) {
      if (isUsableIPv4(explicit)) address = explicit;
      else {
        issues.push({
          file,
          line: host.varLines.ansible_host ?? host.line,
          field: host.name,
          message: isIPv4(explicit)
            ? `ansible_host: ${explicit} is not a usable unicast IPv4 address`
            : `ansible_host: "${explicit}" is not an IPv4 address (needs the host's internal IPv4 address)`,
        });
      }
    } else if (isUsableIPv4(host.name)) {
      address = host.name;
    } else {
      issues.push({
        file,
        line: host.line,
        field: host.name,
        message: "ansible_host: missing (needs the host's internal IPv4 address)",
      });
    }
    if (address !== undefined) {
      const other = byAddress.get(address);
      if (other !== undefined) {
        issues.push({
          file,
          line: host.varLines.ansible_host ?? host.line,
          field: host.name,
          message: `ansible_host: ${address} is also the address of host ${other}`,
        });
      } else {
        byAddress.set(address, host.name);
      }
    }
    hosts.push({ name: host.name, address: address ?? '', groups: [...host.groups].sort(), vars: host.vars });
  }
  return hosts;
}

function checkServiceHosts(
  inventory: IniInventory,
  enabled: Readonly<Record<Service, boolean>>,
  issues: InputIssue[],
): void {
  const check = (service: Service, label: string, flags: string): void => {
    const candidates = serviceGroupCandidates(service);
    if (candidates.some((g) => (inventory.groups.get(g)?.hosts.length ?? 0) > 0)) return;
    const first = candidates[0]!;
    issues.push({
      file: CONFIG_FILES.multinode,
      // The line of the first candidate group the inventory has (empty), if any.
      line: candidates.map((g) => inventory.groups.get(g)?.line).find((l) => l !== undefined),
      field: first,
      message: `no hosts for ${label} (put hosts in ${alternatives(candidates.map((c) => `[${c}]`))}, or set ${flags} in globals.yml)`,
    });
  };
  if (enabled.mariadb) check('mariadb', 'mariadb', 'enable_mariadb: false');
  if (enabled.haproxy || enabled.keepalived) {
    const label =
      enabled.haproxy && enabled.keepalived
        ? 'haproxy and keepalived'
        : enabled.haproxy
          ? 'haproxy'
          : 'keepalived';
    check(enabled.haproxy ? 'haproxy' : 'keepalived', label, 'enable_haproxy/enable_keepalived: false');
  }
  // Keystone's database is reached through HAProxy on the VIP: it cannot run without both.
  const keystoneHosts = serviceGroupCandidates('keystone').some(
    (g) => (inventory.groups.get(g)?.hosts.length ?? 0) > 0,
  );
  if (enabled.keystone && keystoneHosts) {
    const missing = (['mariadb', 'haproxy'] as const).filter((s) => !enabled[s]);
    if (missing.length > 0) {
      issues.push({
        file: CONFIG_FILES.globals,
        line: undefined,
        field: 'enable_keystone',
        message: `keystone needs ${missing.map((m) => `enable_${m}`).join(' and ')} (its database is reached through HAProxy on the VIP); set enable_keystone: false`,
      });
    }
  }
}

/** `a`, `a or b`, `a, b or c`. */
function alternatives(items: readonly string[]): string {
  return items.length <= 1 ? (items[0] ?? '') : `${items.slice(0, -1).join(', ')} or ${items.at(-1)}`;
}

// ---------------------------------------------------------------------------------------------------------------
// globals.yml

const TRUE_WORDS = new Set(['true', 'yes', 'on', 'y', '1']);
const FALSE_WORDS = new Set(['false', 'no', 'off', 'n', '0']);

function boolField(fallback: boolean) {
  return z.unknown().transform((v, ctx): boolean => {
    if (v === undefined) return fallback;
    if (typeof v === 'boolean') return v;
    if (v === 1 || v === 0) return v === 1;
    if (typeof v === 'string') {
      const word = v.trim().toLowerCase();
      if (TRUE_WORDS.has(word)) return true;
      if (FALSE_WORDS.has(word)) return false;
    }
    ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'must be a boolean (true/false or "yes"/"no")' });
    return z.NEVER;
  });
}

function ipv4Field() {
  return z.unknown().transform((v, ctx): string => {
    if (v === undefined || v === null || v === '') {
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        message: 'missing (required: the internal VIP, an IPv4 address)',
      });
      return z.NEVER;
    }
    if (typeof v !== 'string' || !isIPv4(v)) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'not an IPv4 address' });
      return z.NEVER;
    }
    if (!isUsableIPv4(v)) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'not a usable unicast IPv4 address' });
      return z.NEVER;
    }
    return v;
  });
}

const IFNAME = /^[^\s/:]{1,15}$/;

function interfaceField() {
  return z.unknown().transform((v, ctx): string | undefined => {
    if (v === undefined) return undefined;
    if (typeof v === 'string' && IFNAME.test(v) && v !== '.' && v !== '..') return v;
    ctx.addIssue({
      code: z.ZodIssueCode.custom,
      message: 'must be a network interface name (1-15 characters, no spaces, "/" or ":")',
    });
    return z.NEVER;
  });
}

function routerIdField() {
  return z.unknown().transform((v, ctx): number => {
    if (v === undefined) return 51;
    const n =
      typeof v === 'number'
        ? v
        : typeof v === 'string' && /^\d{1,3}$/.test(v.trim())
          ? Number(v)
          : Number.NaN;
    if (Number.isInteger(n) && n >= 1 && n <= 255) return n;
    ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'must be an integer from 1 to 255' });
    return z.NEVER;
  });
}

const GLOBALS_FIELDS = {
  kolla_internal_vip_address: ipv4Field(),
  network_interface: interfaceField(),
  api_interface: interfaceField(),
  keepalived_virtual_router_id: routerIdField(),
  keepalived_unicast_peers: boolField(false),
  enable_mariadb: boolField(true),
  enable_rabbitmq: boolField(true),
  enable_memcached: boolField(true),
  enable_haproxy: boolField(true),
  enable_keepalived: boolField(true),
  enable_keystone: boolField(true),
  om_enable_rabbitmq_quorum_queues: boolField(true),
  om_enable_rabbitmq_high_availability: boolField(false),
  stackha_profile: z.unknown().transform((v, ctx): ProfileName => {
    if (v === undefined) return 'stackha';
    if (v === 'stackha' || v === 'kolla') return v;
    ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'must be "stackha" or "kolla"' });
    return z.NEVER;
  }),
  stackha_lab: z.unknown().transform((v, ctx): string | undefined => {
    if (v === undefined) return undefined;
    if (typeof v === 'string' && /^[a-z][a-z0-9]{0,7}$/.test(v)) return v;
    ctx.addIssue({
      code: z.ZodIssueCode.custom,
      message: 'must be 1-8 lowercase letters and digits, starting with a letter',
    });
    return z.NEVER;
  }),
};

type GlobalsKey = keyof typeof GLOBALS_FIELDS;
type GlobalsValues = { [K in GlobalsKey]: z.output<(typeof GLOBALS_FIELDS)[K]> };

interface ParsedYaml {
  doc: Document.Parsed;
  lines: LineCounter;
  map: YAMLMap | undefined;
  /** Line of a top-level key, or undefined when absent. */
  lineOf: (key: string) => number | undefined;
}

function parseYamlMap(
  text: string,
  file: string,
  issues: InputIssue[],
  describeError: (e: { code: string; message: string }) => string,
): ParsedYaml | undefined {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    for (const e of doc.errors) {
      issues.push({ file, line: lines.linePos(e.pos[0]).line, field: '', message: describeError(e) });
    }
    return undefined;
  }
  const contents = doc.contents;
  if (contents !== null && !isMap(contents) && !(isScalar(contents) && contents.value === null)) {
    issues.push({
      file,
      line: contents.range ? lines.linePos(contents.range[0]).line : undefined,
      field: '',
      message: 'must be a YAML mapping of key: value',
    });
    return undefined;
  }
  const map = isMap(contents) ? contents : undefined;
  const lineOf = (key: string): number | undefined => {
    const pair = map?.items.find((p) => isScalar(p.key) && String(p.key.value) === key);
    const range = pair && isScalar(pair.key) ? pair.key.range : undefined;
    return range ? lines.linePos(range[0]).line : undefined;
  };
  return { doc, lines, map, lineOf };
}

function parseGlobals(
  text: string,
  issues: InputIssue[],
): { value: Globals; lineOf: (key: string) => number | undefined } | undefined {
  const file = CONFIG_FILES.globals;
  const parsed = parseYamlMap(text, file, issues, (e) => `YAML syntax error: ${e.message}`);
  if (!parsed) return undefined;
  let raw: Record<string, unknown> = {};
  try {
    if (parsed.map) raw = parsed.doc.toJS() as Record<string, unknown>;
  } catch (err) {
    issues.push({
      file,
      line: undefined,
      field: '',
      message: `cannot read the YAML: ${(err as Error).message}`,
    });
    return undefined;
  }

  // Each known key is checked on its own, so one bad key reports its issue and the others still count.
  const values: Record<string, unknown> = {};
  for (const [key, schema] of Object.entries(GLOBALS_FIELDS) as [GlobalsKey, z.ZodTypeAny][]) {
    const one = schema.safeParse(raw[key]);
    if (one.success) {
      values[key] = one.data;
      continue;
    }
    for (const zi of one.error.issues) {
      const path = [key, ...zi.path.map(String)];
      issues.push({ file, line: parsed.lineOf(path[0]!), field: path.join('.'), message: zi.message });
    }
    // Fall back to the default, so the other files are still checked against a sensible config.
    values[key] = schema.safeParse(undefined).data;
  }
  const known = values as Partial<GlobalsValues>;
  const fieldOr = <K extends GlobalsKey>(key: K, fallback: NonNullable<GlobalsValues[K]>) =>
    known[key] ?? fallback;

  const networkInterface = fieldOr('network_interface', 'eth0');
  const value: Globals = {
    internalVip: fieldOr('kolla_internal_vip_address', ''),
    networkInterface,
    apiInterface: fieldOr('api_interface', networkInterface),
    keepalivedVirtualRouterId: fieldOr('keepalived_virtual_router_id', 51),
    keepalivedUnicastPeers: fieldOr('keepalived_unicast_peers', false),
    enabled: {
      memcached: fieldOr('enable_memcached', true),
      mariadb: fieldOr('enable_mariadb', true),
      rabbitmq: fieldOr('enable_rabbitmq', true),
      haproxy: fieldOr('enable_haproxy', true),
      keepalived: fieldOr('enable_keepalived', true),
      keystone: fieldOr('enable_keystone', true),
    },
    rabbitmqQuorumQueues: fieldOr('om_enable_rabbitmq_quorum_queues', true),
    rabbitmqMirroredQueues: fieldOr('om_enable_rabbitmq_high_availability', false),
    profile: fieldOr('stackha_profile', 'stackha'),
    lab: known.stackha_lab,
    raw,
  };
  return { value, lineOf: parsed.lineOf };
}

// ---------------------------------------------------------------------------------------------------------------
// passwords.yml

const SAFE_SECRET = /^[A-Za-z0-9._~^*+=@%!,:/-]+$/;
const SAFE_SECRET_RULE =
  'contains a character stackha cannot put in every config file safely (use letters, digits and . _ ~ ^ * + = @ % ! , : / -)';

function parsePasswords(
  text: string,
  enabled: Readonly<Record<Service, boolean>> | undefined,
  issues: InputIssue[],
): Passwords | undefined {
  const file = CONFIG_FILES.passwords;
  // The parser's messages can quote source text, which here is secret: report only the error kind and line.
  const parsed = parseYamlMap(text, file, issues, (e) => `YAML syntax error (${e.code})`);
  if (!parsed) return undefined;

  const passwords = new Map<string, string>();
  const notString = new Set<string>();
  for (const pair of parsed.map?.items ?? []) {
    if (!isScalar(pair.key)) continue;
    const key = String(pair.key.value);
    const node = pair.value;
    if (node === null || (isScalar(node) && (node.value === null || node.value === ''))) {
      // Present but empty: reported below with its line, like a missing key.
    } else if (isScalar(node)) {
      // Numbers and booleans keep their text as written (`0123` stays 0123).
      const v = node.value;
      passwords.set(key, typeof v === 'string' ? v : (node.source ?? String(v)));
    } else {
      notString.add(key);
    }
  }

  for (const key of enabled ? PASSWORD_KEYS : []) {
    const service = PASSWORD_NEEDED_BY[key];
    if (service !== undefined && !enabled?.[service]) continue;
    const value = passwords.get(key);
    if (value !== undefined) {
      // Passwords go into config files of several syntaxes (haproxy, keepalived, rabbitmq.conf, my.cnf):
      // characters that would need quoting in one of them are refused rather than escaped five ways.
      if (!SAFE_SECRET.test(value)) {
        issues.push({ file, line: parsed.lineOf(key), field: key, message: SAFE_SECRET_RULE });
      }
      continue;
    }
    const message = notString.has(key) ? 'must be a string' : 'missing (run stackha genpwd)';
    issues.push({ file, line: parsed.lineOf(key), field: key, message });
  }
  return Object.fromEntries(passwords);
}
