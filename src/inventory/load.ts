// Reads a kolla-ansible style config directory (multinode, globals.yml, passwords.yml) into the Deployment model,
// reporting every problem of all three files at once, and what is worth a warning besides.
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { type Document, LineCounter, type YAMLMap, isMap, isScalar, parseDocument } from 'yaml';
import { z } from 'zod';
import type { Deployment, Globals, HostConnection, HostSpec, Passwords, ProfileName } from '../model.js';
import type { ServiceDeclaration } from '../services/contract.js';
import { SERVICES, passwordOwners } from '../services/registry.js';
import { type SettingSpec, booleanSetting, integerSetting } from '../settings.js';
import { evenSizeWarning, hostsFor, placeOnGroups } from '../topology.js';
import { tuningFor } from '../tuning.js';
import { connectionOf } from './connection.js';
import {
  ConfigPathError,
  type InputIssue,
  InventoryError,
  describeErrno,
  printable,
  quoted,
} from './errors.js';
import { type IniHost, type IniInventory, parseIniInventory } from './ini.js';
import { isIPv4, isUsableIPv4, sameSubnet, subnetEdgeReason, subnetOf, unusableReason } from './ipv4.js';
import {
  KOLLA_GLOBALS_KEYS,
  KOLLA_PASSWORD_KEYS,
  KOLLA_ROLE_PREFIXES,
  KOLLA_SECRET_KINDS,
} from './kolla-keys.js';
import { closest, editDistance, typoLimit } from './suggest.js';

export { isIPv4, isUsableIPv4 } from './ipv4.js';

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

export interface LoadOptions {
  /**
   * Accept fewer Galera, RabbitMQ or load balancer hosts than high availability needs (a one-node evaluation): the
   * refusals become warnings. Also set by `stackha_allow_single: true` in globals.yml.
   */
  readonly allowSingle?: boolean;
}

/** A deployment that passed every check, and what the user should still be told. */
export interface LoadedDeployment {
  readonly deployment: Deployment;
  readonly warnings: readonly InputIssue[];
}

/** Every passwords.yml key some service needs, and the service whose enablement makes it required. */
export const PASSWORD_NEEDED_BY: ReadonlyMap<string, string> = passwordOwners();
export const PASSWORD_KEYS: readonly string[] = [...PASSWORD_NEEDED_BY.keys()];

/** Every setting a service declares, by globals.yml key. */
const SERVICE_SETTINGS: Readonly<Record<string, SettingSpec<unknown>>> = Object.fromEntries(
  SERVICES.flatMap((s) => Object.entries(s.settings ?? {})),
);

/**
 * Where each service runs: its declared groups' first that has target hosts, when it is enabled (and, for the lab's
 * own stand-ins, only in a lab).
 */
export function placeServices(
  groups: Readonly<Record<string, readonly string[]>>,
  hosts: readonly HostSpec[],
  globals: Pick<Globals, 'enabled' | 'lab'>,
): Record<string, readonly string[]> {
  const known = new Set(hosts.map((h) => h.name));
  return Object.fromEntries(
    SERVICES.map((s) => [
      s.name,
      globals.enabled[s.name] && (!s.labOnly || globals.lab !== undefined)
        ? placeOnGroups(groups, s.groups, known)
        : [],
    ]),
  );
}

/** Reads `multinode`, `globals.yml` and `passwords.yml` in configDir; throws one InventoryError listing every issue. */
export function loadDeployment(configDir: string, opts: LoadOptions = {}): Deployment {
  return loadWithWarnings(configDir, opts).deployment;
}

/** loadDeployment, with the warnings to print. */
export function loadWithWarnings(configDir: string, opts: LoadOptions = {}): LoadedDeployment {
  checkConfigDir(configDir);
  const issues: InputIssue[] = [];
  const read = (name: string, hint: string): string | undefined => {
    const path = join(configDir, name);
    try {
      return readFileSync(path, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const why =
        code === 'ENOENT'
          ? `no such file${hint}`
          : code === 'EISDIR'
            ? 'it is a directory, not a file'
            : code === 'EACCES' || code === 'EPERM'
              ? 'permission denied (run stackha as a user that may read it, e.g. root)'
              : describeErrno(err);
      issues.push({
        file: name,
        line: undefined,
        field: '',
        message: `cannot read ${printable(path, 200)}: ${why}`,
      });
      return undefined;
    }
  };
  const texts = {
    multinode: read(CONFIG_FILES.multinode, ''),
    globals: read(CONFIG_FILES.globals, ''),
    passwords: read(CONFIG_FILES.passwords, ' (run stackha genpwd)'),
  };
  if (texts.passwords !== undefined) {
    const path = join(configDir, CONFIG_FILES.passwords);
    const mode = statSync(path).mode & 0o777;
    if ((mode & 0o077) !== 0) {
      const octal = mode.toString(8).padStart(4, '0');
      const kolla = mode === 0o640 ? ' (group-readable, as kolla-genpwd writes it)' : '';
      issues.push({
        file: CONFIG_FILES.passwords,
        line: undefined,
        field: '',
        message: `mode ${octal}${kolla}, must be 0600: run chmod 600 ${printable(path, 200)} (stackha genpwd also sets 0600)`,
      });
    }
  }
  const result = assemble(texts, configDir, opts);
  issues.push(...result.issues);
  if (issues.length > 0 || result.deployment === undefined) throw new InventoryError(issues, result.warnings);
  return { deployment: result.deployment, warnings: result.warnings };
}

/** The config dir must be a directory stackha can read: else one line naming it and the fix. */
function checkConfigDir(configDir: string): void {
  if (configDir === '') {
    throw new ConfigPathError(
      'the config dir is empty: pass -c DIR, the directory that holds multinode, globals.yml and passwords.yml',
    );
  }
  const shown = printable(configDir, 200);
  let isDir: boolean;
  try {
    isDir = statSync(configDir).isDirectory();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new ConfigPathError(
        `config dir ${shown} does not exist: create it with multinode, globals.yml and passwords.yml (stackha lab up writes a lab's), or pass -c DIR`,
      );
    }
    if (code === 'ENOTDIR') {
      throw new ConfigPathError(
        `config dir ${shown}: a part of the path is a file, not a directory; pass the directory that holds multinode, globals.yml and passwords.yml`,
      );
    }
    throw new ConfigPathError(`config dir ${shown}: ${describeErrno(err)}`);
  }
  if (!isDir) {
    throw new ConfigPathError(
      `config dir ${shown} is a file, not a directory: pass the directory that holds multinode, globals.yml and passwords.yml`,
    );
  }
}

/** The pure part of loadDeployment: file contents in, Deployment out, or one InventoryError with every issue. */
export function buildDeployment(files: ConfigTexts, configDir: string, opts: LoadOptions = {}): Deployment {
  return buildWithWarnings(files, configDir, opts).deployment;
}

/** buildDeployment, with the warnings to print. */
export function buildWithWarnings(
  files: ConfigTexts,
  configDir: string,
  opts: LoadOptions = {},
): LoadedDeployment {
  const result = assemble(files, configDir, opts);
  if (result.issues.length > 0 || result.deployment === undefined)
    throw new InventoryError(result.issues, result.warnings);
  return { deployment: result.deployment, warnings: result.warnings };
}

type MaybeTexts = { [K in keyof ConfigTexts]: string | undefined };

/** Where problems go while the files are read. */
interface Report {
  readonly issues: InputIssue[];
  readonly warnings: InputIssue[];
}

function assemble(
  files: MaybeTexts,
  configDir: string,
  opts: LoadOptions,
): { deployment: Deployment | undefined; issues: InputIssue[]; warnings: InputIssue[] } {
  const report: Report = { issues: [], warnings: [] };
  const inventory =
    files.multinode === undefined ? undefined : parseIniInventory(files.multinode, CONFIG_FILES.multinode);
  const globals = files.globals === undefined ? undefined : parseGlobals(files.globals, report);
  const hosts = inventory ? hostsOf(inventory, globals, report) : undefined;
  // Without a readable globals.yml, which services are enabled is unknown: requirements that depend on it are
  // not checked (the globals.yml issue is reported instead).
  const enabled = globals?.value.enabled;
  const passwords =
    files.passwords === undefined ? undefined : parsePasswords(files.passwords, enabled, report);

  let deployment: Deployment | undefined;
  if (inventory && hosts && globals) {
    const groups: Record<string, readonly string[]> = Object.fromEntries(
      [...inventory.groups.values()].map((g) => [
        g.name,
        g.hosts.filter((n) => hosts.some((h) => h.name === n)),
      ]),
    );
    deployment = {
      configDir,
      hosts,
      groups,
      globals: globals.value,
      passwords: passwords ?? {},
      tuning: tuningFor(globals.value.profile),
      placement: placeServices(groups, hosts, globals.value),
    };
    // An inventory that could not be read at all (a YAML one, a broken header) has its issues: nothing more to add.
    const unread = inventory.hosts.size === 0 && inventory.issues.length > 0;
    if (!unread) {
      checkTopology(inventory, deployment, globals, opts.allowSingle === true || globals.allowSingle, report);
    }
  }

  const { issues, warnings } = report;
  if (issues.length > 0 || !deployment || !passwords) return { deployment: undefined, issues, warnings };
  return { deployment, issues, warnings };
}

// ---------------------------------------------------------------------------------------------------------------
// multinode: hosts

const HOST_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const IFNAME = /^[^\s/:]{1,15}$/;
const IFNAME_RULE = 'must be a network interface name (1-15 characters, no spaces, "/" or ":")';
const TEMPLATE = /\{\{|\{%|\{#/;
const TEMPLATE_RULE = 'templates are not supported here: write the value';

/** The connection of a host whose connection variables were refused (the deployment is refused with it). */
const UNREACHABLE: HostConnection = {
  kind: 'ssh',
  address: '',
  port: 22,
  user: 'root',
  privateKeyFile: undefined,
  become: undefined,
  pythonInterpreter: undefined,
};

/** How a message names a host: never by a name that may be a wrapped secret. */
function hostLabel(host: IniHost): string {
  return host.wrappedAfter ? `the host on line ${host.line}` : printable(host.name);
}

/** The field of an issue about a host: its name, or '' when the name must not be printed. */
function hostFieldOf(host: IniHost): string {
  return host.wrappedAfter || !HOST_NAME.test(host.name) ? '' : host.name;
}

function hostsOf(inventory: IniInventory, globals: ParsedGlobals | undefined, report: Report): HostSpec[] {
  report.issues.push(...inventory.issues);
  const file = CONFIG_FILES.multinode;
  const byAddress = new Map<string, IniHost>();
  const hosts: HostSpec[] = [];
  // A [group:vars] line applies to every host of the group: its problem is reported once, not once per host.
  const reportedLines = new Set<string>();
  if (inventory.hosts.size === 0 && inventory.issues.length === 0) {
    report.issues.push({ file, line: undefined, field: '', message: 'no hosts' });
  }
  for (const host of inventory.hosts.values()) {
    // kolla's multinode lists the deployment machine as `localhost ansible_connection=local`: not a target host.
    if (host.vars.ansible_connection?.trim() === 'local') continue;
    const wrapHint = host.wrappedAfter
      ? ` (if this line is the rest of ${host.wrappedAfter.key} on line ${host.wrappedAfter.line}, wrapped, join the two lines)`
      : '';
    const hostIssue = (line: number, message: string): void => {
      report.issues.push({ file, line, field: hostFieldOf(host), message: `${message}${wrapHint}` });
    };
    const issue = hostIssue;
    if (!host.wrappedAfter && !HOST_NAME.test(host.name)) {
      issue(
        host.line,
        'the host name on this line is not valid (letters, digits, ".", "-" and "_", starting with a letter or digit); ' +
          'it is not printed, as it may be a misplaced secret',
      );
    }
    const explicit = host.vars.ansible_host;
    const addressLine = host.varLines.ansible_host ?? host.line;
    let address: string | undefined;
    if (explicit !== undefined) {
      if (TEMPLATE.test(explicit)) issue(addressLine, `ansible_host: ${TEMPLATE_RULE}`);
      else if (isUsableIPv4(explicit)) address = explicit;
      else if (isIPv4(explicit))
        issue(addressLine, `ansible_host: ${explicit} is ${unusableReason(explicit)}`);
      else {
        issue(
          addressLine,
          `ansible_host: ${quoted(explicit)} is not an IPv4 address (needs the host's internal IPv4 address)`,
        );
      }
    } else if (isIPv4(host.name) && !host.wrappedAfter) {
      const reason = unusableReason(host.name);
      if (reason === undefined) address = host.name;
      else issue(host.line, `${host.name} is ${reason}`);
    } else {
      issue(host.line, "ansible_host: missing (needs the host's internal IPv4 address)");
    }
    if (address !== undefined) {
      const other = byAddress.get(address);
      if (other !== undefined) {
        issue(addressLine, `ansible_host: ${address} is also the address of host ${hostLabel(other)}`);
      } else {
        byAddress.set(address, host);
      }
    }
    const iface = (key: 'network_interface' | 'api_interface'): string | undefined => {
      const value = host.vars[key];
      if (value === undefined) return undefined;
      const line = host.varLines[key] ?? host.line;
      const once = `${key}:${line}`;
      const first = !reportedLines.has(once);
      reportedLines.add(once);
      const issue = (l: number, message: string): void => {
        if (first) hostIssue(l, message);
      };
      if (TEMPLATE.test(value)) {
        issue(line, `${key}: ${TEMPLATE_RULE}`);
        return undefined;
      }
      if (!IFNAME.test(value) || value === '.' || value === '..') {
        issue(line, `${key}: ${IFNAME_RULE}`);
        return undefined;
      }
      const globalLine = globals?.lineOf(key);
      if (globals?.sets(key) && globals.raw[key] !== value) {
        // kolla-ansible passes globals.yml as extra vars, the highest precedence: it wins over the inventory.
        if (!first) return undefined;
        report.warnings.push({
          file,
          line,
          field: hostFieldOf(host),
          message:
            `${key}=${printable(value)} has no effect: globals.yml sets ${key}${globalLine ? ` (line ${globalLine})` : ''}, ` +
            'which wins, as in kolla-ansible (globals.yml is extra vars); remove it from globals.yml to set it per host',
        });
        return undefined;
      }
      return value;
    };
    // globals.yml wins where it sets the key (kolla-ansible passes it as extra vars); else the host's variable (from
    // its line or a [group:vars]), else the default: eth0, and api_interface follows network_interface.
    const hostNetwork = iface('network_interface');
    const hostApi = iface('api_interface');
    const networkInterface = globals?.sets('network_interface')
      ? globals.value.networkInterface
      : (hostNetwork ?? 'eth0');
    const apiInterface = globals?.sets('api_interface')
      ? globals.value.apiInterface
      : (hostApi ?? networkInterface);
    // How it is reached. A [group:vars] line's problem is reported once, with the first host it applies to.
    const reached = connectionOf(host.vars, host.varLines, host.line, address ?? '', globals?.value.lab);
    for (const [list, into] of [
      [reached.issues, report.issues],
      [reached.warnings, report.warnings],
    ] as const) {
      for (const c of list) {
        const once = `${c.key}:${c.line}`;
        if (c.line !== host.line && reportedLines.has(once)) continue;
        reportedLines.add(once);
        into.push({ file, line: c.line, field: hostFieldOf(host), message: `${c.message}${wrapHint}` });
      }
    }
    hosts.push({
      name: host.name,
      address: address ?? '',
      groups: [...host.groups].sort(),
      vars: host.vars,
      networkInterface,
      apiInterface,
      // An unusable value was reported: the deployment is refused, this placeholder only lets the checks go on.
      connection:
        reached.connection === undefined || reached.connection.kind === 'local'
          ? UNREACHABLE
          : reached.connection,
    });
  }
  return hosts;
}

// ---------------------------------------------------------------------------------------------------------------
// multinode: what runs where, and whether that can be highly available

/** The services whose hosts the inventory must provide: every enabled one (the lab's stand-ins only in a lab). */
function serviceChecks(dep: Deployment): ServiceDeclaration[] {
  return SERVICES.filter((s) => dep.globals.enabled[s.name] && (!s.labOnly || dep.globals.lab !== undefined));
}

/** `a`, `a or b`, `a, b or c`. */
function alternatives(items: readonly string[]): string {
  return items.length <= 1 ? (items[0] ?? '') : `${items.slice(0, -1).join(', ')} or ${items.at(-1)}`;
}

/** `ctl1, ctl2, ctl3`, at most five and then "…". */
function hostList(names: readonly string[]): string {
  return names.length > 5 ? `${names.slice(0, 5).join(', ')}, …` : names.join(', ');
}

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

function checkTopology(
  inventory: IniInventory,
  dep: Deployment,
  globals: ParsedGlobals,
  allowSingle: boolean,
  report: Report,
): void {
  const file = CONFIG_FILES.multinode;
  const enabled = dep.globals.enabled;
  const targets = new Set(dep.hosts.map((h) => h.name));
  const iniHost = (name: string): IniHost | undefined => inventory.hosts.get(name);
  const label_ = (name: string): string => {
    const h = iniHost(name);
    return h ? hostLabel(h) : printable(name);
  };

  // Every host is left out only when every host is ansible_connection=local.
  if (inventory.hosts.size > 0 && dep.hosts.length === 0) {
    report.issues.push({
      file,
      line: undefined,
      field: '',
      message:
        "no target hosts: every host is ansible_connection=local, the machine stackha runs on (kolla-ansible's all-in-one); " +
        'stackha deploys only to hosts it reaches by address: list them with ansible_host=ADDRESS, at least 3 for high availability',
    });
    return;
  }

  // Which inventory group each service takes its hosts from, as kolla-ansible would (local hosts included), and the
  // ansible_connection=local hosts stackha leaves out of it.
  const dropped = new Map<string, Set<string>>();
  const sources = new Map<string, string>();
  // Services on the same groups (haproxy and keepalived) are reported together.
  const reportedGroups = new Set<string>();
  const checks = serviceChecks(dep);
  for (const service of checks) {
    const candidates = service.groups;
    const together = checks.filter((o) => o.groups.join() === candidates.join());
    const label = together.map((o) => o.name).join(' and ');
    const source = candidates.find((g) => (inventory.groups.get(g)?.hosts.length ?? 0) > 0);
    if (source === undefined) {
      if (reportedGroups.has(candidates.join())) continue;
      reportedGroups.add(candidates.join());
      const shown = candidates.filter((c) => c !== 'haproxy').map((c) => `[${c}]`);
      const flags = together.map((o) => o.enable.key).join('/');
      const issue = {
        file,
        // The line of the first candidate group the inventory has (empty), if any.
        line: candidates.map((g) => inventory.groups.get(g)?.line).find((l) => l !== undefined),
        field: candidates[0]!,
        message: `no hosts for ${label} (put hosts in ${alternatives(shown)}, or set ${flags}: false in globals.yml)`,
      };
      if (together.some((o) => o.noHosts === 'error')) report.issues.push(issue);
      else report.warnings.push({ ...issue, message: `${issue.message}: it is not deployed` });
      continue;
    }
    sources.set(service.name, source);
    const group = inventory.groups.get(source)!;
    const local = group.hosts.filter((h) => !targets.has(h));
    for (const h of local) {
      const services = dropped.get(h) ?? new Set<string>();
      services.add(service.name);
      dropped.set(h, services);
    }
    if (local.length > 0 && local.length === group.hosts.length && !reportedGroups.has(`local:${source}`)) {
      reportedGroups.add(`local:${source}`);
      report.issues.push({
        file,
        line: group.line,
        field: source,
        message:
          `every host of [${source}] (${hostList(local.map(label_))}) is ansible_connection=local, the machine stackha runs on, ` +
          `which is not a deployment target: ${label} would have no host; list its hosts with ansible_host=ADDRESS`,
      });
    }
  }

  // What a service cannot run without, as its declaration says.
  for (const service of checks) {
    if (!sources.has(service.name)) continue;
    const missing = (service.requires ?? []).filter((r) => !enabled[r.service]);
    if (missing.length > 0) {
      report.issues.push({
        file: CONFIG_FILES.globals,
        line: undefined,
        field: service.enable.key,
        message: `${service.name} needs ${missing.map((m) => `enable_${m.service}`).join(' and ')} (${[...new Set(missing.map((m) => m.why))].join('; ')}); set ${service.enable.key}: false`,
      });
    }
  }

  // kolla-ansible before Ussuri named the load balancer group [haproxy]; stackha reads it when [loadbalancer] is
  // empty, and refuses two different lists.
  const old = inventory.groups.get('haproxy');
  const current = inventory.groups.get('loadbalancer');
  if (old && current && old.hosts.length > 0 && current.hosts.length > 0) {
    if ([...old.hosts].sort().join(' ') !== [...current.hosts].sort().join(' ')) {
      report.issues.push({
        file,
        line: old.line,
        field: 'haproxy',
        message:
          "[haproxy], kolla-ansible's load balancer group before Ussuri, lists other hosts than [loadbalancer]: " +
          'stackha (like kolla-ansible now) uses [loadbalancer]; make them the same, or remove [haproxy]',
      });
    }
  }

  const droppedNote = (service: string): string => {
    const names = [...dropped].filter(([, s]) => s.has(service)).map(([h]) => label_(h));
    return names.length === 0
      ? ''
      : ` (${alternatives(names)} ${names.length === 1 ? 'is' : 'are'} ansible_connection=local, so not counted)`;
  };

  // Sizes: the same rule `scale remove` applies, from each service's declaration.
  for (const service of checks) {
    const rule = service.minHosts;
    const hosts = hostsFor(dep, service.name);
    const source = sources.get(service.name);
    if (!rule || hosts.length === 0 || source === undefined) continue;
    const name = service.name;
    const n = hosts.length;
    const where = { file, line: inventory.groups.get(source)?.line, field: source };
    if (n < rule.min) {
      const base =
        `${name} runs on ${plural(n, 'host')} (${hostList(hosts.map((h) => label_(h.name)))}), at least ${rule.min} are needed` +
        `${droppedNote(service.name)}: ${rule.why(n)}`;
      if (allowSingle) {
        report.warnings.push({
          ...where,
          message: `not highly available (allowed by allow-single): ${base}`,
        });
      } else {
        report.issues.push({
          ...where,
          message: `${base}; add hosts, or, for an evaluation that is not highly available, set stackha_allow_single: true in globals.yml (or pass --allow-single)`,
        });
      }
    } else if (rule.quorum && n % 2 === 0) {
      report.warnings.push({ ...where, message: evenSizeWarning(service.name, n) });
    }
  }

  for (const [name, services] of dropped) {
    const host = iniHost(name);
    const left = [...services].map((s) => `${s} on ${plural(hostsFor(dep, s).length, 'host')}`).join(', ');
    report.warnings.push({
      file,
      line: host?.line,
      field: host ? hostFieldOf(host) : '',
      message:
        'ansible_connection=local: the machine stackha runs on is not a deployment target, so it is left out of ' +
        `${[...services].join(', ')}; that leaves ${left}`,
    });
  }

  checkAddresses(inventory, dep, globals, report);
}

/** The VIP and the hosts' addresses against the internal network (stackha_internal_prefix_length, default /24). */
function checkAddresses(
  inventory: IniInventory,
  dep: Deployment,
  globals: ParsedGlobals,
  report: Report,
): void {
  const file = CONFIG_FILES.multinode;
  const vip = dep.globals.internalVip;
  const prefix = globals.prefixLength;
  const vipLine = globals.lineOf('kolla_internal_vip_address');
  const widen = `or set stackha_internal_prefix_length in globals.yml if the internal network is wider than /${prefix}`;
  const ini = (h: HostSpec): IniHost | undefined => inventory.hosts.get(h.name);
  const lineOf = (h: HostSpec): number | undefined => {
    const i = ini(h);
    return i ? (i.varLines.ansible_host ?? i.line) : undefined;
  };
  const fieldOf = (h: HostSpec): string => {
    const i = ini(h);
    return i ? hostFieldOf(i) : '';
  };
  const labelOf = (h: HostSpec): string => {
    const i = ini(h);
    return i ? hostLabel(i) : printable(h.name);
  };
  const hasAddress = (h: HostSpec): boolean => h.address !== '';

  if (vip !== '') {
    const holder = dep.hosts.find((h) => h.address === vip);
    if (holder) {
      report.issues.push({
        file: CONFIG_FILES.globals,
        line: vipLine,
        field: 'kolla_internal_vip_address',
        message: `${vip} is also the address of host ${labelOf(holder)} (the VIP must be an unused address)`,
      });
    }
    const edge = subnetEdgeReason(vip, prefix);
    if (edge !== undefined) {
      report.issues.push({
        file: CONFIG_FILES.globals,
        line: vipLine,
        field: 'kolla_internal_vip_address',
        message: `${vip} is ${edge} (stackha_internal_prefix_length ${prefix}), not a host address`,
      });
    }
  }
  for (const h of dep.hosts.filter(hasAddress)) {
    const edge = subnetEdgeReason(h.address, prefix);
    if (edge !== undefined) {
      report.issues.push({
        file,
        line: lineOf(h),
        field: fieldOf(h),
        message: `ansible_host: ${h.address} is ${edge} (stackha_internal_prefix_length ${prefix}), not a host address`,
      });
    }
  }

  // keepalived can hold the VIP only on a host of its subnet (VRRP stays on the segment).
  // The hosts that may hold the VIP.
  const lbs = hostsFor(dep, 'keepalived').filter(hasAddress);
  // A host already refused as a load balancer outside the VIP's subnet is not refused a second time below.
  const flagged = new Set<string>();
  if (vip !== '' && lbs.length > 0) {
    const inside = lbs.filter((h) => sameSubnet(h.address, vip, prefix));
    if (inside.length === 0) {
      report.issues.push({
        file: CONFIG_FILES.globals,
        line: vipLine,
        field: 'kolla_internal_vip_address',
        message:
          `${vip} is outside the /${prefix} subnet of every load balancer (${hostList(lbs.map((h) => `${labelOf(h)} ${h.address}`))}): ` +
          `keepalived can hold the VIP only on a host of its subnet; choose an unused address of theirs, ${widen}`,
      });
    } else {
      for (const h of lbs.filter((x) => !inside.includes(x))) {
        flagged.add(h.name);
        report.issues.push({
          file,
          line: lineOf(h),
          field: fieldOf(h),
          message:
            `${h.address} is outside ${subnetOf(vip, prefix)}, the VIP's subnet: keepalived could not hold the VIP on this load balancer; ` +
            `move it to that subnet, take it out of the load balancer group, ${widen}`,
        });
      }
    }
  }

  // Galera and RabbitMQ nodes talk to each other directly: one subnet, unless the user says a route joins them.
  if (globals.routed) return;
  const outliers = new Map<HostSpec, { services: string[]; subnet: string; others: HostSpec[] }>();
  for (const service of SERVICES.filter((s) => s.minHosts?.quorum).map((s) => s.name)) {
    const members = hostsFor(dep, service).filter(hasAddress);
    const bySubnet = new Map<string, HostSpec[]>();
    for (const h of members) {
      const s = subnetOf(h.address, prefix);
      bySubnet.set(s, [...(bySubnet.get(s) ?? []), h]);
    }
    if (bySubnet.size < 2) continue;
    // The subnet most members share (the first member's on a tie) is the cluster's.
    const [subnet, others] = [...bySubnet].reduce((best, next) =>
      next[1].length > best[1].length ? next : best,
    );
    for (const h of members.filter((m) => !others.includes(m) && !flagged.has(m.name))) {
      const o = outliers.get(h) ?? { services: [], subnet, others };
      o.services.push(service);
      outliers.set(h, o);
    }
  }
  for (const [h, o] of outliers) {
    report.issues.push({
      file,
      line: lineOf(h),
      field: fieldOf(h),
      message:
        `${h.address} is not in ${o.subnet} with the other ${o.services.join(' and ')} hosts (${hostList(o.others.map(labelOf))}): ` +
        'Galera and RabbitMQ nodes must reach each other; if a route joins the subnets, set stackha_internal_routed: true in globals.yml, ' +
        widen,
    });
  }
}

// ---------------------------------------------------------------------------------------------------------------
// globals.yml

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
    const reason = unusableReason(v);
    if (reason !== undefined) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: `${v} is ${reason}` });
      return z.NEVER;
    }
    return v;
  });
}

function interfaceField() {
  return z.unknown().transform((v, ctx): string | undefined => {
    if (v === undefined) return undefined;
    if (typeof v === 'string' && IFNAME.test(v) && v !== '.' && v !== '..') return v;
    ctx.addIssue({ code: z.ZodIssueCode.custom, message: IFNAME_RULE });
    return z.NEVER;
  });
}

/** stackha's own keys of globals.yml; the service settings are in src/settings.ts. */
const GLOBALS_FIELDS = {
  kolla_internal_vip_address: ipv4Field(),
  network_interface: interfaceField(),
  api_interface: interfaceField(),
  keepalived_virtual_router_id: integerRouterId(),
  keepalived_unicast_peers: booleanSetting(false),
  ...(Object.fromEntries(SERVICES.map((s) => [s.enable.key, booleanSetting(s.enable.default)])) as Record<
    string,
    ReturnType<typeof booleanSetting>
  >),
  om_enable_rabbitmq_quorum_queues: booleanSetting(true),
  om_enable_rabbitmq_high_availability: booleanSetting(false),
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
  stackha_allow_single: booleanSetting(false),
  stackha_internal_prefix_length: integerSetting(24, 8, 30),
  stackha_internal_routed: booleanSetting(false),
};

function integerRouterId() {
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

type GlobalsKey = keyof typeof GLOBALS_FIELDS;
type GlobalsValues = { [K in GlobalsKey]: z.output<(typeof GLOBALS_FIELDS)[K]> };

/** Every key stackha reads from globals.yml (its own, the enable_* keys and the service settings). */
export const STACKHA_GLOBALS_KEYS: readonly string[] = [
  ...Object.keys(GLOBALS_FIELDS),
  ...Object.keys(SERVICE_SETTINGS),
];

/** Keys globals.yml must have. */
const REQUIRED_GLOBALS = ['kolla_internal_vip_address'] as const;

interface ParsedYaml {
  doc: Document.Parsed;
  lines: LineCounter;
  map: YAMLMap | undefined;
  /** Line of a top-level key, or undefined when absent. */
  lineOf: (key: string) => number | undefined;
  /** Top-level keys with their lines, in file order. */
  keys: { key: string; line: number | undefined }[];
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
  const keys: { key: string; line: number | undefined }[] = [];
  for (const pair of map?.items ?? []) {
    if (!isScalar(pair.key)) continue;
    const range = pair.key.range;
    keys.push({ key: String(pair.key.value), line: range ? lines.linePos(range[0]).line : undefined });
  }
  const lineOf = (key: string): number | undefined => keys.find((k) => k.key === key)?.line;
  return { doc, lines, map, lineOf, keys };
}

interface ParsedGlobals {
  value: Globals;
  raw: Readonly<Record<string, unknown>>;
  lineOf: (key: string) => number | undefined;
  /** Whether globals.yml has the key with a value (a key with an empty value counts as absent). */
  sets: (key: string) => boolean;
  allowSingle: boolean;
  prefixLength: number;
  routed: boolean;
}

/** An older name of a service setting, still read. */
function isSettingAlias(key: string): boolean {
  return Object.values(SERVICE_SETTINGS).some((spec) => spec.alias === key);
}

/** Whether a key of globals.yml is one kolla-ansible knows (so it is accepted without a word). */
function isKollaKey(key: string): boolean {
  if (KOLLA_GLOBALS_KEYS.has(key)) return true;
  // A role's own setting (nova_api_workers), unless it is a near miss of a key stackha reads.
  return (
    KOLLA_ROLE_PREFIXES.some((p) => key.startsWith(p)) && closest(key, STACKHA_GLOBALS_KEYS) === undefined
  );
}

function parseGlobals(text: string, report: Report): ParsedGlobals | undefined {
  const file = CONFIG_FILES.globals;
  const issues = report.issues;
  const parsed = parseYamlMap(text, file, issues, (e) => `YAML syntax error: ${printable(e.message, 200)}`);
  if (!parsed) return undefined;
  let raw: Record<string, unknown> = {};
  try {
    if (parsed.map) raw = parsed.doc.toJS() as Record<string, unknown>;
  } catch (err) {
    issues.push({
      file,
      line: undefined,
      field: '',
      message: `cannot read the YAML: ${printable((err as Error).message, 200)}`,
    });
    return undefined;
  }
  const present = (key: string): boolean => raw[key] !== undefined && raw[key] !== null;

  // A misspelt key: the closest key stackha reads that is not in the file, or else a kolla-ansible key.
  const misspelt = new Map<string, { key: string; line: number | undefined }>();
  for (const k of parsed.keys) {
    if (STACKHA_GLOBALS_KEYS.includes(k.key) || isKollaKey(k.key) || isSettingAlias(k.key)) continue;
    const candidate = closest(
      k.key,
      STACKHA_GLOBALS_KEYS.filter((s) => !present(s)),
    );
    if (candidate !== undefined && !misspelt.has(candidate)) misspelt.set(candidate, k);
  }
  const referenced = new Set<string>();

  // Each known key is checked on its own, so one bad key reports its issue and the others still count.
  const check = <T>(key: string, schema: z.ZodType<T, z.ZodTypeDef, unknown>, value: unknown): T => {
    const line = parsed.lineOf(key);
    if (typeof value === 'string' && TEMPLATE.test(value)) {
      const fallback = schema.safeParse(undefined);
      const hint =
        fallback.success && fallback.data !== undefined
          ? ` (or remove the key: stackha's default is ${String(fallback.data)})`
          : '';
      issues.push({ file, line, field: key, message: `${TEMPLATE_RULE}${hint}` });
      return fallback.data as T;
    }
    const one = schema.safeParse(value);
    if (one.success) return one.data;
    for (const zi of one.error.issues) {
      issues.push({ file, line, field: [key, ...zi.path.map(String)].join('.'), message: zi.message });
    }
    // Fall back to the default, so the other files are still checked against a sensible config.
    return schema.safeParse(undefined).data as T;
  };
  const values: Record<string, unknown> = {};
  for (const [key, schema] of Object.entries(GLOBALS_FIELDS) as [GlobalsKey, z.ZodTypeAny][]) {
    values[key] = check(key, schema, raw[key]);
  }
  // The required key, when it is missing, may be misspelt.
  for (const key of REQUIRED_GLOBALS) {
    if (present(key)) continue;
    const typo = misspelt.get(key);
    const issue = issues.find((i) => i.file === file && i.field === key);
    if (typo && issue) {
      issue.line = typo.line;
      issue.message += `; line ${typo.line} has ${quoted(typo.key)}: a misspelling of ${key}?`;
      referenced.add(typo.key);
    }
  }

  const settings: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(SERVICE_SETTINGS)) {
    const alias = spec.alias;
    if (alias !== undefined && raw[alias] !== undefined) {
      const both = raw[key] !== undefined;
      report.warnings.push({
        file,
        line: parsed.lineOf(alias),
        field: alias,
        message: both
          ? `ignored: ${key}, its new name, is set too; remove ${alias}`
          : `renamed ${key} (kolla-ansible's name): the value is used, but rename the key`,
      });
      if (!both) {
        settings[key] = check(alias, spec.schema as z.ZodTypeAny, raw[alias]);
        continue;
      }
    }
    settings[key] = check(key, spec.schema as z.ZodTypeAny, raw[key]);
  }

  // Unknown keys: a warning, with the key it probably stands for.
  for (const k of parsed.keys) {
    if (referenced.has(k.key) || STACKHA_GLOBALS_KEYS.includes(k.key) || isKollaKey(k.key)) continue;
    if (isSettingAlias(k.key)) continue;
    const ours = closest(k.key, STACKHA_GLOBALS_KEYS);
    const theirs = ours === undefined ? closest(k.key, KOLLA_GLOBALS_KEYS) : undefined;
    let message: string;
    if (ours !== undefined) {
      const fallback = present(ours) ? '' : defaultNote(ours);
      message = `unknown key, ignored: did you mean ${ours}?${fallback}`;
    } else if (theirs !== undefined) {
      message = `unknown key, ignored: did you mean ${theirs}? (a kolla-ansible key stackha does not use)`;
    } else {
      message = 'unknown key, ignored: neither stackha nor kolla-ansible has it';
    }
    report.warnings.push({ file, line: k.line, field: printable(k.key), message });
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
    enabled: Object.fromEntries(
      SERVICES.map((s) => [s.name, (known as Record<string, unknown>)[s.enable.key] ?? s.enable.default]),
    ) as Record<string, boolean>,
    rabbitmqQuorumQueues: fieldOr('om_enable_rabbitmq_quorum_queues', true),
    rabbitmqMirroredQueues: fieldOr('om_enable_rabbitmq_high_availability', false),
    profile: fieldOr('stackha_profile', 'stackha'),
    lab: known.stackha_lab,
    settings,
    raw,
  };
  return {
    value,
    raw,
    lineOf: parsed.lineOf,
    sets: (key) => present(key) && known[key as GlobalsKey] !== undefined,
    allowSingle: fieldOr('stackha_allow_single', false),
    prefixLength: fieldOr('stackha_internal_prefix_length', 24),
    routed: fieldOr('stackha_internal_routed', false),
  };
}

/** `; enable_haproxy is not set, so its default (true) applies`, for a key whose misspelling was found. */
function defaultNote(key: string): string {
  const schema =
    (GLOBALS_FIELDS as Record<string, z.ZodTypeAny>)[key] ??
    (SERVICE_SETTINGS as Record<string, { schema: z.ZodTypeAny }>)[key]?.schema;
  const fallback = schema?.safeParse(undefined);
  if (!fallback?.success || fallback.data === undefined) return ` ${key} is not set`;
  return ` ${key} is not set, so its default (${String(fallback.data)}) applies`;
}

// ---------------------------------------------------------------------------------------------------------------
// passwords.yml

const SAFE_SECRET = /^[A-Za-z0-9._~^*+=@%!,:/-]+$/;
const SAFE_SECRET_RULE =
  'contains a character stackha cannot put in every config file safely (use letters, digits and . _ ~ ^ * + = @ % ! , : / -)';

/** Every key a passwords.yml may have at its top level: stackha's and kolla-ansible's. */
export function isKnownPasswordKey(key: string): boolean {
  return (PASSWORD_KEYS as readonly string[]).includes(key) || KOLLA_PASSWORD_KEYS.has(key);
}

/** A key of kolla's passwords.yml whose value is a map (an SSH key pair). */
export function isMapPasswordKey(key: string): boolean {
  return KOLLA_SECRET_KINDS.sshKey.has(key);
}

/**
 * Keys indented under another key by mistake (`database_password:` then `  rabbitmq_password:`): the YAML makes
 * them part of the first key's value. Only keys that belong at the top level are looked for, and never inside
 * kolla's SSH key maps.
 */
export function nestedPasswordKeys(
  map: YAMLMap,
  lines: LineCounter,
): { key: string; line: number | undefined; parent: string; parentLine: number | undefined }[] {
  const found: { key: string; line: number | undefined; parent: string; parentLine: number | undefined }[] =
    [];
  const lineOf = (node: unknown): number | undefined => {
    const range = isScalar(node) ? node.range : undefined;
    return range ? lines.linePos(range[0]).line : undefined;
  };
  for (const pair of map.items) {
    if (!isScalar(pair.key) || !isMap(pair.value)) continue;
    const parent = String(pair.key.value);
    if (isMapPasswordKey(parent)) continue;
    for (const child of pair.value.items) {
      if (!isScalar(child.key)) continue;
      const key = String(child.key.value);
      if (isKnownPasswordKey(key))
        found.push({ key, line: lineOf(child.key), parent, parentLine: lineOf(pair.key) });
    }
  }
  return found;
}

function parsePasswords(
  text: string,
  enabled: Readonly<Record<string, boolean>> | undefined,
  report: Report,
): Passwords | undefined {
  const file = CONFIG_FILES.passwords;
  const issues = report.issues;
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

  const nested = parsed.map ? nestedPasswordKeys(parsed.map, parsed.lines) : [];
  for (const n of nested) {
    issues.push({
      file,
      line: n.line,
      field: n.key,
      message:
        `indented under ${n.parent}${n.parentLine ? ` (line ${n.parentLine})` : ''}, so it is part of ${n.parent}'s value, ` +
        'not a key of its own: remove the indentation',
    });
  }
  const nestedParents = new Set(nested.map((n) => n.parent));
  const nestedKeys = new Set(nested.map((n) => n.key));

  for (const key of enabled ? PASSWORD_KEYS : []) {
    const service = PASSWORD_NEEDED_BY.get(key);
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
    if (nestedKeys.has(key)) continue;
    if (notString.has(key)) {
      const why = nestedParents.has(key)
        ? 'must be a string, not a map of the keys indented under it'
        : 'must be a string';
      issues.push({ file, line: parsed.lineOf(key), field: key, message: why });
      continue;
    }
    // Missing: perhaps misspelt (the closest key of the file that is no known key).
    let line = parsed.lineOf(key);
    let message = 'missing (run stackha genpwd)';
    if (line === undefined) {
      const typo = parsed.keys.find(
        (k) =>
          !isKnownPasswordKey(k.key) &&
          editDistance(k.key.toLowerCase(), key, typoLimit(key)) <= typoLimit(key),
      );
      if (typo) {
        line = typo.line;
        message = `missing; line ${typo.line} has ${quoted(typo.key)}: a misspelling of ${key}? (rename it, or run stackha genpwd)`;
      }
    }
    issues.push({ file, line, field: key, message });
  }
  return Object.fromEntries(passwords);
}
