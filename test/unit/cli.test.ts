// The stackha command on bad input: every problem reported at once with file, line and field, exit code 2,
// and nothing attempted on any host (no lab exists for this config, so any host access would fail differently).
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PASSWORD_KEYS } from '../../src/inventory/load.js';
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

describe('stackha CLI: paths, warnings and --allow-single (issue 9)', () => {
  let good: string;
  const run = (...args: string[]) => execArgv([process.execPath, CLI, ...args]);
  // Every key stackha's services need (a service switched off still has its keys in a kolla passwords.yml).
  const PASSWORDS = PASSWORD_KEYS.map((k) => `${k}: TOPSECRET${k.length}\n`).join('');
  const KEPT = PASSWORD_KEYS.length;

  beforeAll(() => {
    good = mkdtempSync(join(tmpdir(), 'stackha-cli-good-'));
    writeFileSync(join(good, 'multinode'), '[control]\nctl1 ansible_host=198.18.5.11\n');
    writeFileSync(
      join(good, 'globals.yml'),
      'kolla_internal_vip_address: 198.18.5.10\nenable_haproxyy: no\n',
    );
    writeFileSync(join(good, 'passwords.yml'), PASSWORDS, { mode: 0o600 });
    chmodSync(join(good, 'passwords.yml'), 0o600);
  });
  afterAll(() => rmSync(good, { recursive: true, force: true }));

  it('refuses a one-host inventory, and accepts it with --allow-single, warnings on stderr', async () => {
    const refused = await run('-c', good, 'check');
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(
      /^multinode:1 control: mariadb runs on 1 host \(ctl1\), at least 3 are needed/m,
    );
    expect(refused.stderr).toMatch(
      /^warning: globals\.yml:2 enable_haproxyy: unknown key, ignored: did you mean enable_haproxy\?/m,
    );
    const allowed = await run('-c', good, '--allow-single', 'check');
    expect(allowed.code, allowed.stderr).toBe(0);
    expect(allowed.stdout).toBe(`${good}: 1 hosts, VIP 198.18.5.10, profile stackha: OK\n`);
    expect(allowed.stderr.split('\n').filter(Boolean)).toEqual([
      'warning: globals.yml:2 enable_haproxyy: unknown key, ignored: did you mean enable_haproxy? enable_haproxy is not set, so its default (true) applies',
      'warning: multinode:1 control: not highly available (allowed by allow-single): mariadb runs on 1 host (ctl1), at least 3 are needed: a single Galera node has no quorum to lose: nothing survives its failure',
      'warning: multinode:1 control: not highly available (allowed by allow-single): rabbitmq runs on 1 host (ctl1), at least 3 are needed: a single RabbitMQ node has no quorum to lose: nothing survives its failure',
      'warning: multinode:1 control: not highly available (allowed by allow-single): keepalived runs on 1 host (ctl1), at least 2 are needed: with one load balancer the VIP has nowhere to move when it fails',
    ]);
    expect(allowed.stdout + allowed.stderr).not.toContain('TOPSECRET');
  });

  it.each([
    [
      'a config dir that is a file',
      () => ['-c', join(good, 'multinode'), 'check'],
      () =>
        `stackha: config dir ${join(good, 'multinode')} is a file, not a directory: pass the directory that holds multinode, globals.yml and passwords.yml`,
    ],
    [
      'an empty --config-dir=',
      () => ['--config-dir=', 'check'],
      () =>
        'stackha: --config-dir is empty: give the directory that holds multinode, globals.yml and passwords.yml',
    ],
    [
      'a lab name with ..',
      () => ['--lab', '..', 'check'],
      () =>
        'stackha: --lab "..": a lab name is 1-8 lowercase letters and digits, starting with a letter (e.g. --lab stackha)',
    ],
    [
      'a lab name with /',
      () => ['--lab', 'a/b', 'genpwd'],
      () =>
        'stackha: --lab "a/b": a lab name is 1-8 lowercase letters and digits, starting with a letter (e.g. --lab stackha)',
    ],
    [
      'an empty lab name',
      () => ['--lab=', 'status'],
      () =>
        'stackha: --lab "": a lab name is 1-8 lowercase letters and digits, starting with a letter (e.g. --lab stackha)',
    ],
    [
      'a passwords file in a missing directory',
      () => ['genpwd', '-p', join(good, 'no', 'passwords.yml')],
      () =>
        `stackha: cannot write ${join(good, 'no', 'passwords.yml')}: directory ${join(good, 'no')} does not exist (create it: mkdir -p ${join(good, 'no')})`,
    ],
  ])('%s: one line naming the path and the fix, exit 2', async (_case, args, message) => {
    const r = await run(...args());
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`${message()}\n`);
    expect(r.stderr).not.toMatch(/ENOTDIR|EISDIR|ENOENT|\.tmp|at .*\.js/);
  });

  it('genpwd --all on a kolla passwords.yml: what was filled and what was left, never a value', async () => {
    const file = join(good, 'kolla-passwords.yml');
    writeFileSync(
      file,
      `${PASSWORDS}heat_database_password:\nnova_ssh_key:\n  private_key:\n  public_key:\n`,
      {
        mode: 0o640,
      },
    );
    chmodSync(file, 0o640);
    const plain = await run('genpwd', '-p', file);
    expect(plain.stdout.split('\n').filter(Boolean)).toEqual([
      `${file}: nothing to create; kept ${KEPT}`,
      `${file}: mode 0640 changed to 0600`,
      "1 other empty keys (kolla-ansible's) left empty; stackha genpwd --all fills them",
      'left empty: nova_ssh_key (SSH key pairs and blank-by-design keys: kolla-genpwd fills them)',
    ]);
    const all = await run('genpwd', '--all', '-p', file);
    expect(all.stdout.split('\n')[0]).toBe(`${file}: created heat_database_password; kept ${KEPT}`);
    expect(plain.stdout + all.stdout).not.toContain('TOPSECRET');
  });
});
