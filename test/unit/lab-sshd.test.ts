// The pure parts of the lab's sshd (src/lab/sshd.ts): its configuration, the deployer's known_hosts and the SSH
// inventory it reads. The real sshd runs in test/lab/ssh.test.ts.
import { describe, expect, it } from 'vitest';
import { renderLabInventory } from '../../src/inventory/lab-inventory.js';
import { PASSWORD_KEYS, buildWithWarnings } from '../../src/inventory/load.js';
import { mergeKnownHosts, renderSshdConfig, sshInventory, sshdSpec } from '../../src/lab/sshd.js';

describe('lab sshd', () => {
  it('listens on the host address only, keys only, its own host key, no pid file of its own', () => {
    const cfg = renderSshdConfig('198.18.30.11');
    expect(cfg).toContain('ListenAddress 198.18.30.11:22\n');
    expect(cfg).toContain('HostKey /etc/ssh/ssh_host_ed25519_key\n');
    expect(cfg).toContain('PasswordAuthentication no\n');
    expect(cfg).toContain('PermitRootLogin prohibit-password\n');
    expect(cfg).toContain('AuthorizedKeysFile /etc/ssh/authorized_keys/%u\n');
    expect(cfg).toContain('PidFile none\n');
    expect(sshdSpec().argv).toEqual(['/usr/sbin/sshd', '-D', '-e', '-f', '/etc/ssh/sshd_stackha_config']);
  });

  it("replaces the lab hosts' known_hosts lines, keeps the others, drops key comments", () => {
    const before = '10.1.1.1 ssh-rsa AAAAother\n198.18.30.11 ssh-ed25519 AAAAold\n';
    const keys = new Map([
      ['198.18.30.11', 'ssh-ed25519 AAAAnew1 stackha-lab:sshlab:ctl1'],
      ['198.18.30.12', 'ssh-ed25519 AAAAnew2 stackha-lab:sshlab:ctl2'],
    ]);
    expect(mergeKnownHosts(before, keys)).toBe(
      '10.1.1.1 ssh-rsa AAAAother\n198.18.30.11 ssh-ed25519 AAAAnew1\n198.18.30.12 ssh-ed25519 AAAAnew2\n',
    );
    expect(mergeKnownHosts('', keys).split('\n')).toHaveLength(3);
  });

  it('the SSH inventory: every host over SSH with the deployer key, the user where asked', () => {
    const inv = renderLabInventory({ lab: 'sshlab', hostCount: 3, subnetPrefix: '198.18.30' });
    const text = sshInventory(inv.multinode, { keyFile: '/root/.ssh/id_ed25519', users: { ctl2: 'deploy' } });
    expect(text).toContain('ctl2 ansible_host=198.18.30.12 ansible_user=deploy\n');
    expect(text).toContain('ctl1 ansible_host=198.18.30.11\n');
    const dep = buildWithWarnings(
      {
        multinode: text,
        globals: inv.globals,
        passwords: PASSWORD_KEYS.map((k) => `${k}: x-${k}\n`).join(''),
      },
      '/etc/stackha/sshlab',
    ).deployment;
    expect(
      dep.hosts.map((h) =>
        h.connection.kind === 'ssh'
          ? [
              h.name,
              h.connection.user,
              h.connection.become?.user,
              h.connection.supervisor,
              h.connection.privateKeyFile,
            ]
          : [h.name, h.connection.kind],
      ),
    ).toEqual([
      ['ctl1', 'root', undefined, 'auto', '/root/.ssh/id_ed25519'],
      ['ctl2', 'deploy', 'root', 'auto', '/root/.ssh/id_ed25519'],
      ['ctl3', 'root', undefined, 'auto', '/root/.ssh/id_ed25519'],
    ]);
    expect(text).toMatch(
      /\[all:vars\]\nansible_connection=ssh\nansible_ssh_private_key_file=\/root\/\.ssh\/id_ed25519\n$/,
    );
  });
});
