// The inventory's connection variables (ansible_connection, ansible_host, ansible_port, ansible_user,
// ansible_ssh_private_key_file, ansible_become*, ansible_python_interpreter) -> how stackha reaches a host. Pure: a
// host's effective variables (host line > child group > parent group > all, as src/inventory/ini.ts resolves them)
// in, a typed connection and the problems of its values out. Secret variables are never quoted.
import type { Become, HostConnection, SupervisorChoice } from '../model.js';
import { printable, quoted } from './errors.js';

/** The deployment machine itself (`localhost ansible_connection=local`): never a deployment target. */
export interface LocalConnection {
  readonly kind: 'local';
}

/** One problem with a connection variable: the variable, the line that set it, and what is wrong. */
export interface ConnectionIssue {
  readonly key: string;
  readonly line: number;
  readonly message: string;
}

export interface ConnectionResult {
  /** Undefined when a value is unusable (see issues). */
  readonly connection: HostConnection | LocalConnection | undefined;
  readonly issues: readonly ConnectionIssue[];
  readonly warnings: readonly ConnectionIssue[];
}

/** The values of ansible_connection that are SSH (`smart` and `paramiko` reach the host over SSH too). */
const SSH_CONNECTIONS = new Set(['ssh', 'smart', 'paramiko']);
/** Ansible's boolean spellings (ansible.module_utils.parsing.convert_bool), compared in lower case. */
const TRUE = new Set(['yes', 'on', '1', 'true', 't', 'y', '1.0']);
const FALSE = new Set(['no', 'off', '0', 'false', 'f', 'n', '0.0']);
/** A login name: what useradd and sshd accept, with the dots and @ of directory-service names. */
const USER_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.@-]{0,63}$/;
const TEMPLATE = /\{\{|\{%|\{#/;
const TEMPLATE_RULE = 'templates are not supported here: write the value';

function hasControl(text: string): boolean {
  for (const ch of text) {
    const c = ch.codePointAt(0) ?? 0;
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}

/** Ansible's reading of a boolean variable, or undefined when it is not one Ansible accepts. */
export function ansibleBoolean(value: string): boolean | undefined {
  const v = value.trim().toLowerCase();
  if (TRUE.has(v)) return true;
  if (FALSE.has(v)) return false;
  return undefined;
}

/**
 * How a host is reached, from its effective variables. `lab` is globals.yml's `stackha_lab`: in a lab every host is
 * the lab namespace of its name, unless its `ansible_connection` says ssh explicitly (a lab whose hosts run sshd).
 * `address` is the host's internal address (HostSpec.address), the SSH target.
 */
export function connectionOf(
  vars: Readonly<Record<string, string>>,
  varLines: Readonly<Record<string, number>>,
  hostLine: number,
  address: string,
  lab: string | undefined,
): ConnectionResult {
  const issues: ConnectionIssue[] = [];
  const warnings: ConnectionIssue[] = [];
  const lineOf = (key: string): number => varLines[key] ?? hostLine;
  const bad = (key: string, message: string): void => {
    issues.push({ key, line: lineOf(key), message: `${key}: ${message}` });
  };

  const kind = vars.ansible_connection;
  if (kind !== undefined && kind.trim() === 'local')
    return { connection: { kind: 'local' }, issues, warnings };
  if (kind !== undefined && !SSH_CONNECTIONS.has(kind.trim())) {
    bad(
      'ansible_connection',
      TEMPLATE.test(kind)
        ? TEMPLATE_RULE
        : `${quoted(kind)} is not supported: stackha reaches hosts over SSH (ssh, smart or paramiko), and local is the deployment machine`,
    );
  }

  let port = 22;
  const portText = vars.ansible_port;
  if (portText !== undefined) {
    const p = portText.trim();
    if (TEMPLATE.test(p)) bad('ansible_port', TEMPLATE_RULE);
    else if (!/^\d{1,5}$/.test(p) || Number(p) < 1 || Number(p) > 65535)
      bad('ansible_port', `${quoted(portText)} is not a TCP port (an integer from 1 to 65535)`);
    else port = Number(p);
  }

  let user = 'root';
  const userText = vars.ansible_user;
  if (userText !== undefined) {
    if (TEMPLATE.test(userText)) bad('ansible_user', TEMPLATE_RULE);
    else if (!USER_NAME.test(userText))
      bad(
        'ansible_user',
        `${quoted(userText)} is not a user name (letters, digits, "_", ".", "@" and "-", at most 64)`,
      );
    else user = userText;
  }

  let privateKeyFile: string | undefined;
  const keyText = vars.ansible_ssh_private_key_file;
  if (keyText !== undefined) {
    if (TEMPLATE.test(keyText)) bad('ansible_ssh_private_key_file', TEMPLATE_RULE);
    else if (keyText.trim() === '')
      bad('ansible_ssh_private_key_file', 'empty (give the path of a private key)');
    // The path is not a secret, the key it names is.
    else if (hasControl(keyText)) bad('ansible_ssh_private_key_file', 'has a control character');
    else privateKeyFile = keyText;
  }

  let pythonInterpreter: string | undefined;
  const python = vars.ansible_python_interpreter;
  if (python !== undefined) {
    if (TEMPLATE.test(python)) bad('ansible_python_interpreter', TEMPLATE_RULE);
    else if (!python.startsWith('/') || /\s/.test(python) || hasControl(python))
      bad('ansible_python_interpreter', `${quoted(python)} is not an absolute path`);
    else pythonInterpreter = python;
  }

  // Become: kolla-ansible's plays say `become: true` themselves, so a user other than root means sudo, whatever the
  // inventory says, unless it refuses it explicitly.
  let becomeAsked: boolean | undefined;
  const becomeText = vars.ansible_become;
  if (becomeText !== undefined) {
    becomeAsked = ansibleBoolean(becomeText);
    if (becomeAsked === undefined)
      bad(
        'ansible_become',
        `${quoted(becomeText)} is not a boolean (yes/no, true/false, on/off, 1/0, y/n, t/f)`,
      );
  }
  const method = vars.ansible_become_method;
  if (method !== undefined && method.trim() !== 'sudo')
    bad(
      'ansible_become_method',
      `${quoted(method)} is not supported: stackha becomes root with sudo -n (passwordless sudo)`,
    );
  const becomeUser = vars.ansible_become_user ?? 'root';
  if (becomeUser !== 'root')
    bad(
      'ansible_become_user',
      `${quoted(becomeUser)}: stackha needs root on its hosts, so it becomes root (remove ansible_become_user or set it to root)`,
    );
  let become: Become | undefined;
  if (user !== 'root') {
    if (becomeAsked === false)
      bad(
        'ansible_become',
        `false with ansible_user=${printable(user)}: stackha needs root on its hosts; set ansible_become=true ` +
          '(passwordless sudo) or ansible_user=root',
      );
    else become = { method: 'sudo', user: 'root' };
  }
  for (const key of ['ansible_become_password', 'ansible_become_pass', 'ansible_sudo_pass'] as const) {
    if (vars[key] !== undefined)
      warnings.push({
        key,
        line: lineOf(key),
        message: `${key} is not used: stackha runs sudo -n, which needs passwordless sudo for ${printable(user)} (the value is not printed)`,
      });
  }

  // How daemons are supervised: systemd unless said otherwise; a lab's hosts have no systemd, so there pid files
  // are the fallback.
  let supervisor: SupervisorChoice | undefined = lab !== undefined ? 'auto' : undefined;
  const supervisorText = vars.stackha_supervisor;
  if (supervisorText !== undefined) {
    const v = supervisorText.trim();
    if (v === 'systemd' || v === 'auto' || v === 'pidfile') supervisor = v === 'systemd' ? undefined : v;
    else
      bad(
        'stackha_supervisor',
        TEMPLATE.test(v)
          ? TEMPLATE_RULE
          : `${quoted(supervisorText)} is not a supervisor: systemd (the default: the host must run it), auto (systemd, else pid files) or pidfile`,
      );
  }

  if (issues.length > 0) return { connection: undefined, issues, warnings };
  const explicitSsh = kind !== undefined;
  if (lab !== undefined && !explicitSsh) return { connection: { kind: 'lab', lab }, issues, warnings };
  return {
    connection: {
      kind: 'ssh',
      address,
      port,
      user,
      privateKeyFile,
      become,
      pythonInterpreter,
      ...(supervisor !== undefined ? { supervisor } : {}),
    },
    issues,
    warnings,
  };
}

/** The password for SSH password authentication (`ansible_ssh_pass`, `ansible_password`), if the inventory has one. */
export function sshPassword(vars: Readonly<Record<string, string>>): string | undefined {
  return vars.ansible_ssh_pass ?? vars.ansible_ssh_password ?? vars.ansible_password;
}
