// The stackha command on bad input: every problem reported at once with file, line and field, exit code 2,
// and nothing attempted on any host (no lab exists for this config, so any host access would fail differently).
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { acquireLock } from '../../src/ops/lock.js';
import { execArgv } from '../../src/util/exec.js';

const CLI = join(import.meta.dirname, '../../dist/cli/main.js');
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'stackha-cli-'));
  writeFileSync(
    join(dir, 'multinode'),
    '[control]\nctl1 ansible_host=198.18.0.11\nctl2 ansible_host=not-an-ip\n[broken\n',
  );
  writeFileSync(
    join(dir, 'globals.yml'),
    'kolla_internal_vip_address: 198.18.0.300\nkeepalived_virtual_router_id: 999\nstackha_lab: nolab\n',
  );
  writeFileSync(join(dir, 'passwords.yml'), 'database_password: SuperSecret123\n', { mode: 0o600 });
  chmodSync(join(dir, 'passwords.yml'), 0o600);
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('stackha CLI on bad input', () => {
  it('check lists every problem with file, line and field, and exits 2', async () => {
    const r = await execArgv([process.execPath, CLI, '-c', dir, 'check']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/multinode:3 ctl2: ansible_host/);
    expect(r.stderr).toMatch(/multinode:4: malformed section header/);
    expect(r.stderr).toMatch(/globals\.yml:1 kolla_internal_vip_address: /);
    expect(r.stderr).toMatch(/globals\.yml:2 keepalived_virtual_router_id: /);
    expect(r.stderr).toMatch(/passwords\.yml rabbitmq_password: missing/);
    expect(r.stderr).not.toContain('SuperSecret123');
  });

  it('deploy refuses the same input before touching any host', async () => {
    const r = await execArgv([process.execPath, CLI, '-c', dir, 'deploy']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/globals\.yml:1 kolla_internal_vip_address/);
    expect(r.stdout).not.toMatch(/memcached|mariadb/);
  });

  it('genpwd fills the missing passwords, keeps the existing one and writes mode 0600', async () => {
    const r = await execArgv([process.execPath, CLI, '-c', dir, 'genpwd']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('rabbitmq_password');
    expect(r.stdout).not.toContain('SuperSecret123');
    const again = await execArgv([process.execPath, CLI, '-c', dir, 'genpwd']);
    expect(again.stdout).toContain('nothing to create');
  });

  it('a command that changes hosts is refused while another holds the deployment lock, naming it', async () => {
    const lock = acquireLock(dir, 'chaos run');
    try {
      const r = await execArgv([process.execPath, CLI, '-c', dir, 'deploy']);
      expect(r.code).toBe(5);
      expect(r.stderr).toContain('`stackha chaos run`');
      expect(r.stderr).toContain(`pid ${process.pid}`);
      // Reading commands take no lock.
      const check = await execArgv([process.execPath, CLI, '-c', dir, 'check']);
      expect(check.code).toBe(2);
    } finally {
      lock.release();
    }
  });
});
