import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ansibleBoolean, connectionOf } from '../../src/inventory/connection.js';
import { InventoryError, formatIssue, formatWarning } from '../../src/inventory/errors.js';
import { type ConfigTexts, PASSWORD_KEYS, buildWithWarnings } from '../../src/inventory/load.js';
import type { Deployment, SshConnection } from '../../src/model.js';

const KOLLA = join(import.meta.dirname, '../fixtures/inventory/kolla');
const fixture = (name: string): string => readFileSync(join(KOLLA, name), 'utf8');

const M3 =
  '[control]\nctl1 ansible_host=10.0.0.11\nctl2 ansible_host=10.0.0.12\nctl3 ansible_host=10.0.0.13\n';
const GLOBALS = 'kolla_internal_vip_address: 10.0.0.10\n';
const PASSWORDS = PASSWORD_KEYS.map((k) => `${k}: TOPSECRET-${k}\n`).join('');

function files(overrides: Partial<ConfigTexts> = {}): ConfigTexts {
  return { multinode: M3, globals: GLOBALS, passwords: PASSWORDS, ...overrides };
}

function build(input: ConfigTexts): { dep: Deployment; warnings: string[] } {
  const r = buildWithWarnings(input, '/etc/stackha');
  return { dep: r.deployment, warnings: r.warnings.map(formatWarning) };
}

function ssh(dep: Deployment, name: string): SshConnection {
  const c = dep.hosts.find((h) => h.name === name)?.connection;
  if (c?.kind !== 'ssh') throw new Error(`${name} is not an SSH host: ${JSON.stringify(c)}`);
  return c;
}

/** The formatted errors of an inventory that is refused. */
function errorsOf(input: ConfigTexts): string[] {
  try {
    buildWithWarnings(input, '/etc/stackha');
  } catch (err) {
    expect(err).toBeInstanceOf(InventoryError);
    return (err as InventoryError).issues.map(formatIssue);
  }
  throw new Error('expected an InventoryError');
}

describe('connection variables: how each host is reached', () => {
  it('defaults to SSH as root on port 22 at ansible_host, without sudo', () => {
    const { dep } = build(files());
    expect(ssh(dep, 'ctl1')).toEqual({
      kind: 'ssh',
      address: '10.0.0.11',
      port: 22,
      user: 'root',
      privateKeyFile: undefined,
      become: undefined,
      pythonInterpreter: undefined,
    });
  });

  it('reads port, user, key file and interpreter; a user other than root becomes root with sudo', () => {
    const multinode =
      '[control]\n' +
      'ctl1 ansible_host=10.0.0.11 ansible_port=2222 ansible_user=deploy ansible_ssh_private_key_file=~/.ssh/stackha\n' +
      'ctl2:2200 ansible_host=10.0.0.12 ansible_python_interpreter=/usr/bin/python3\n' +
      'ctl3 ansible_host=10.0.0.13 ansible_user=root ansible_become=yes\n';
    const { dep } = build(files({ multinode }));
    expect(ssh(dep, 'ctl1')).toMatchObject({
      port: 2222,
      user: 'deploy',
      privateKeyFile: '~/.ssh/stackha',
      become: { method: 'sudo', user: 'root' },
    });
    expect(ssh(dep, 'ctl2')).toMatchObject({
      port: 2200,
      pythonInterpreter: '/usr/bin/python3',
      become: undefined,
    });
    // root needs no sudo, whatever ansible_become says.
    expect(ssh(dep, 'ctl3')).toMatchObject({ user: 'root', become: undefined });
  });

  it('applies Ansible precedence: host line > child group > parent group > all', () => {
    const multinode = [
      '[control]',
      'ctl1 ansible_host=10.0.0.11 ansible_port=2201',
      'ctl2 ansible_host=10.0.0.12',
      '[network]',
      'ctl3 ansible_host=10.0.0.13',
      '[mariadb:children]',
      'control',
      '[all:vars]',
      'ansible_user=allu',
      'ansible_port=2100',
      '[mariadb:vars]',
      'ansible_user=parentu',
      'ansible_port=2300',
      '[control:vars]',
      'ansible_port=2400',
    ].join('\n');
    const { dep } = build(files({ multinode, globals: `${GLOBALS}stackha_allow_single: true\n` }));
    expect(ssh(dep, 'ctl1')).toMatchObject({ user: 'parentu', port: 2201 });
    expect(ssh(dep, 'ctl2')).toMatchObject({ user: 'parentu', port: 2400 });
    expect(ssh(dep, 'ctl3')).toMatchObject({ user: 'allu', port: 2100 });
  });

  it("reads kolla-ansible's own fixture: [all:vars] user kolla with become, [control:vars] python", () => {
    const { dep } = build({
      multinode: fixture('multinode'),
      globals: fixture('globals.yml'),
      passwords: fixture('passwords.yml'),
    });
    expect(ssh(dep, 'control01')).toMatchObject({
      address: '10.10.0.11',
      user: 'kolla',
      become: { method: 'sudo', user: 'root' },
      pythonInterpreter: '/usr/bin/python3',
    });
    expect(ssh(dep, 'net1')).toMatchObject({ user: 'netops', pythonInterpreter: undefined });
  });

  it('leaves ansible_connection=local out, and accepts ssh, smart and paramiko', () => {
    const multinode = `${M3.replace('ctl2 ansible_host=10.0.0.12', 'ctl2 ansible_host=10.0.0.12 ansible_connection=smart')}localhost ansible_connection=local\nctl4 ansible_host=10.0.0.14 ansible_connection=paramiko\n`;
    const { dep } = build(files({ multinode }));
    expect(dep.hosts.map((h) => [h.name, h.connection.kind])).toEqual([
      ['ctl1', 'ssh'],
      ['ctl2', 'ssh'],
      ['ctl3', 'ssh'],
      ['ctl4', 'ssh'],
    ]);
  });

  it('in a lab, hosts are its namespaces unless ansible_connection says ssh', () => {
    const multinode = M3.replace(
      'ctl3 ansible_host=10.0.0.13',
      'ctl3 ansible_host=10.0.0.13 ansible_connection=ssh',
    );
    const { dep } = build(files({ multinode, globals: `${GLOBALS}stackha_lab: demo\n` }));
    expect(dep.hosts.map((h) => h.connection.kind)).toEqual(['lab', 'lab', 'ssh']);
    expect(dep.hosts[0]?.connection).toEqual({ kind: 'lab', lab: 'demo' });
    // A lab's SSH hosts have no systemd of their own: pid files are their fallback.
    expect(ssh(dep, 'ctl3').supervisor).toBe('auto');
  });

  it('stackha_supervisor: systemd by default, auto or pidfile when asked, a bad value refused at its line', () => {
    const multinode = M3.replace(
      'ctl2 ansible_host=10.0.0.12',
      'ctl2 ansible_host=10.0.0.12 stackha_supervisor=pidfile',
    ).replace('ctl3 ansible_host=10.0.0.13', 'ctl3 ansible_host=10.0.0.13 stackha_supervisor=auto');
    const { dep } = build(files({ multinode }));
    expect(ssh(dep, 'ctl1').supervisor).toBeUndefined();
    expect(ssh(dep, 'ctl2').supervisor).toBe('pidfile');
    expect(ssh(dep, 'ctl3').supervisor).toBe('auto');
    const inLab = M3.replace(
      'ctl1 ansible_host=10.0.0.11',
      'ctl1 ansible_host=10.0.0.11 ansible_connection=ssh stackha_supervisor=systemd',
    );
    const lab = build(files({ multinode: inLab, globals: `${GLOBALS}stackha_lab: demo\n` }));
    expect(ssh(lab.dep, 'ctl1').supervisor).toBeUndefined();
    const errors = errorsOf(
      files({
        multinode: M3.replace(
          'ctl1 ansible_host=10.0.0.11',
          'ctl1 ansible_host=10.0.0.11 stackha_supervisor=runit',
        ),
      }),
    );
    expect(errors.join('\n')).toMatch(/:2 .*stackha_supervisor: "runit" is not a supervisor/);
  });
});

describe('connection variables: bad values', () => {
  it('names file, line, host and variable for each bad value', () => {
    const multinode = [
      '[control]',
      'ctl1 ansible_host=10.0.0.11 ansible_port=0',
      'ctl2 ansible_host=10.0.0.12 ansible_port=65536 ansible_become=maybe',
      'ctl3 ansible_host=10.0.0.13 ansible_connection=winrm ansible_user="a b"',
    ].join('\n');
    expect(errorsOf(files({ multinode }))).toEqual([
      'multinode:2 ctl1: ansible_port: "0" is not a TCP port (an integer from 1 to 65535)',
      'multinode:3 ctl2: ansible_port: "65536" is not a TCP port (an integer from 1 to 65535)',
      'multinode:3 ctl2: ansible_become: "maybe" is not a boolean (yes/no, true/false, on/off, 1/0, y/n, t/f)',
      'multinode:4 ctl3: ansible_connection: "winrm" is not supported: stackha reaches hosts over SSH (ssh, smart or paramiko), and local is the deployment machine',
      'multinode:4 ctl3: ansible_user: "a b" is not a user name (letters, digits, "_", ".", "@" and "-", at most 64)',
    ]);
  });

  it('reports a bad [group:vars] value once, at its line, not once per host', () => {
    const multinode = `${M3}[control:vars]\nansible_port=ssh\n`;
    expect(errorsOf(files({ multinode }))).toEqual([
      'multinode:6 ctl1: ansible_port: "ssh" is not a TCP port (an integer from 1 to 65535)',
    ]);
  });

  it('refuses what stackha cannot do: no root, another become method or user', () => {
    const multinode = [
      '[control]',
      'ctl1 ansible_host=10.0.0.11 ansible_user=ops ansible_become=false',
      'ctl2 ansible_host=10.0.0.12 ansible_become_method=su',
      'ctl3 ansible_host=10.0.0.13 ansible_become_user=kolla',
    ].join('\n');
    expect(errorsOf(files({ multinode }))).toEqual([
      'multinode:2 ctl1: ansible_become: false with ansible_user=ops: stackha needs root on its hosts; set ansible_become=true (passwordless sudo) or ansible_user=root',
      'multinode:3 ctl2: ansible_become_method: "su" is not supported: stackha becomes root with sudo -n (passwordless sudo)',
      'multinode:4 ctl3: ansible_become_user: "kolla": stackha needs root on its hosts, so it becomes root (remove ansible_become_user or set it to root)',
    ]);
  });

  it('never prints a secret: become and SSH passwords', () => {
    const multinode = [
      '[control]',
      'ctl1 ansible_host=10.0.0.11 ansible_user=ops ansible_become_password=SECRET-become ansible_port=x',
      'ctl2 ansible_host=10.0.0.12 ansible_ssh_pass=SECRET-ssh ansible_connection=docker',
      'ctl3 ansible_host=10.0.0.13',
      '[control:vars]',
      'ansible_become_pass=SECRET-group',
    ].join('\n');
    let message = '';
    try {
      buildWithWarnings(files({ multinode }), '/etc/stackha');
    } catch (err) {
      const e = err as InventoryError;
      message = [e.message, ...e.warnings.map(formatWarning)].join('\n');
    }
    expect(message).toContain('multinode:2 ctl1: ansible_port');
    expect(message).toContain(
      'warning: multinode:2 ctl1: ansible_become_password is not used: stackha runs sudo -n, which needs passwordless sudo for ops (the value is not printed)',
    );
    expect(message).toContain('warning: multinode:6 ctl1: ansible_become_pass is not used');
    expect(message).not.toMatch(/SECRET/);
  });
});

describe('ansibleBoolean', () => {
  it("accepts Ansible's spellings in any case, nothing else", () => {
    for (const t of ['yes', 'True', 'ON', '1', 't', 'Y']) expect(ansibleBoolean(t), t).toBe(true);
    for (const f of ['no', 'False', 'off', '0', 'f', 'N']) expect(ansibleBoolean(f), f).toBe(false);
    for (const x of ['', 'maybe', '2', 'enabled']) expect(ansibleBoolean(x), x).toBeUndefined();
  });
});

describe('connectionOf', () => {
  it('gives every problem the line of the variable, the host line when it has none', () => {
    const r = connectionOf(
      { ansible_port: '99999', ansible_user: 'x' },
      { ansible_port: 7 },
      3,
      '10.0.0.1',
      undefined,
    );
    expect(r.connection).toBeUndefined();
    expect(r.issues.map((i) => [i.key, i.line])).toEqual([['ansible_port', 7]]);
    const ok = connectionOf({ ansible_user: 'x' }, {}, 3, '10.0.0.1', undefined);
    expect(ok.connection).toMatchObject({ kind: 'ssh', user: 'x', become: { method: 'sudo' } });
  });
});
