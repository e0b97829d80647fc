// connect(): SSH hosts from the inventory's connection variables, every one checked before anything is changed.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UnreachableHosts, connect, connectLab, readPrivateKey } from '../../src/hosts/connect.js';
import { knownHostsLine } from '../../src/hosts/known-hosts.js';
import { SshHost } from '../../src/hosts/ssh.js';
import { PASSWORD_KEYS, buildDeployment } from '../../src/inventory/load.js';
import type { Deployment } from '../../src/model.js';
import { type FakeServer, logicalArgv, startFakeServer } from './ssh-fake.js';

const PASSWORDS = PASSWORD_KEYS.map((k) => `${k}: TOPSECRET-${k}\n`).join('');
const MULTINODE = [
  '[control]',
  'ctl1 ansible_host=10.0.0.11',
  'ctl2 ansible_host=10.0.0.12 ansible_user=deploy',
  'ctl3 ansible_host=10.0.0.13 ansible_port=2222',
  '',
].join('\n');

function deployment(globals = ''): Deployment {
  return buildDeployment(
    {
      multinode: MULTINODE,
      globals: `kolla_internal_vip_address: 10.0.0.10\n${globals}`,
      passwords: PASSWORDS,
    },
    '/etc/stackha',
  );
}

describe('connect', () => {
  let server: FakeServer;
  let dir: string;
  let knownHosts: string;

  beforeAll(async () => {
    // ctl2's sudo wants a password: the probe fails there.
    server = await startFakeServer((e) => {
      const argv = logicalArgv(e.command);
      if (argv[0] === 'sh' && argv[2]?.startsWith('id -u')) {
        return e.command.startsWith('sudo ')
          ? { code: 1, stderr: 'sudo: a password is required\n' }
          : { code: 0, stdout: '0\nsystemd\n' };
      }
      return { code: 0 };
    });
    dir = mkdtempSync(join(tmpdir(), 'stackha-connect-'));
    knownHosts = join(dir, 'known_hosts');
    writeFileSync(
      knownHosts,
      ['10.0.0.11', '10.0.0.12', '10.0.0.13']
        .map((a) => knownHostsLine(a, a === '10.0.0.13' ? 2222 : 22, server.hostKey))
        .join(''),
    );
  });
  afterAll(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('builds SSH hosts from the connection variables, each checked before it returns', async () => {
    const dep = deployment();
    const seen: string[] = [];
    const conn = await connect(dep, {
      knownHostsFile: knownHosts,
      sshHost: (spec, c, setup) => {
        seen.push(
          `${spec.name} ${c.user}@${c.address}:${c.port} ${c.become ? 'sudo' : 'root'} ${setup.knownHostsFile === knownHosts}`,
        );
        // ctl2 would fail (sudo); here every host is root.
        return new SshHost({
          name: spec.name,
          address: spec.address,
          connection: { ...c, become: undefined },
          knownHostsFile: setup.knownHostsFile,
          socket: server.socket,
          password: 'x',
        });
      },
    });
    expect(seen).toEqual([
      'ctl1 root@10.0.0.11:22 root true',
      'ctl2 deploy@10.0.0.12:22 sudo true',
      'ctl3 root@10.0.0.13:2222 root true',
    ]);
    expect([...conn.hosts.keys()]).toEqual(['ctl1', 'ctl2', 'ctl3']);
    conn.close?.();
  });

  it('reports every host that cannot be reached, with its cause, and changes nothing anywhere', async () => {
    const before = server.commands.length;
    const missing = join(dir, 'no-such.sock');
    const err = await connect(deployment(), {
      knownHostsFile: knownHosts,
      sshHost: (spec, c, setup) =>
        new SshHost({
          name: spec.name,
          address: spec.address,
          connection: c,
          knownHostsFile: setup.knownHostsFile,
          socket: spec.name === 'ctl3' ? () => netConnect(missing) : server.socket,
          password: 'x',
          connectTimeoutMs: 2000,
        }),
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnreachableHosts);
    const message = (err as Error).message;
    expect(message).toMatch(/^2 hosts cannot be reached; nothing was changed on any host:/);
    expect(message).toMatch(
      /ctl2 \(ssh deploy@10\.0\.0\.12:22\): id -u: commands must run as root, through sudo -n .*a password is required/,
    );
    expect(message).toMatch(/ctl3 \(ssh root@10\.0\.0\.13:2222\): connect: .*ENOENT/);
    // Only the probe ran on the hosts that answered.
    const sent = server.commands.slice(before).map((c) => logicalArgv(c.command)[0]);
    expect(sent.every((c) => c === 'sh')).toBe(true);
  });

  it('names a missing private key file, relative to the config dir', () => {
    expect(() => readPrivateKey('/etc/stackha', 'keys/none')).toThrow(
      'ansible_ssh_private_key_file /etc/stackha/keys/none: no such file',
    );
    const key = join(dir, 'id_test');
    writeFileSync(key, 'KEY');
    expect(readPrivateKey('/elsewhere', key)?.toString()).toBe('KEY');
  });

  it('in a lab, refuses SSH from the root network namespace; connectLab refuses SSH hosts', async () => {
    const multinode = MULTINODE.replace(
      'ctl3 ansible_host=10.0.0.13 ansible_port=2222',
      'ctl3 ansible_host=10.0.0.13 ansible_connection=ssh',
    );
    const dep = buildDeployment(
      {
        multinode,
        globals: 'kolla_internal_vip_address: 10.0.0.10\nstackha_lab: nolabx7\n',
        passwords: PASSWORDS,
      },
      '/etc/stackha',
    );
    // The lab hosts come first: this lab is not up.
    await expect(connect(dep)).rejects.toThrow('lab nolabx7 is not up');
    const sshOnly = { ...dep, hosts: dep.hosts.filter((h) => h.connection.kind === 'ssh') };
    await expect(connect(sshOnly)).rejects.toThrow(
      /ctl3 is reached over SSH, and this process runs in the machine's root network namespace/,
    );
    expect(() => connectLab(sshOnly)).toThrow(/ctl3: not lab hosts/);
  });
});
