import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { InventoryError } from '../../src/inventory/errors.js';
import { generatePasswords, newSecret, randomString } from '../../src/inventory/genpwd.js';
import { buildDeployment } from '../../src/inventory/load.js';
import { PASSWORD_KEYS } from '../../src/model.js';

let dir: string;
let file: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'stackha-genpwd-'));
  file = join(dir, 'passwords.yml');
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

const mode = (path: string): number => statSync(path).mode & 0o777;
const read = (): Record<string, unknown> => parse(readFileSync(file, 'utf8')) as Record<string, unknown>;

describe('generatePasswords', () => {
  it('creates a passwords.yml with every key, mode 0600', () => {
    const r = generatePasswords(file);
    expect(r).toEqual({
      file,
      created: [...PASSWORD_KEYS],
      kept: 0,
      left: [],
      otherEmpty: 0,
      modeWas: undefined,
    });
    expect(mode(file)).toBe(0o600);
    const values = read();
    expect(Object.keys(values)).toEqual([...PASSWORD_KEYS]);
    for (const key of PASSWORD_KEYS) {
      const v = values[key];
      if (key === 'rabbitmq_cluster_cookie') expect(v).toMatch(/^[A-Z]{40}$/);
      else expect(v).toMatch(/^[A-Za-z0-9]{32}$/);
    }
    expect(new Set(Object.values(values)).size).toBe(PASSWORD_KEYS.length);
    expect(readFileSync(file, 'utf8')).toMatch(/^# stackha passwords/);
    // No temporary file is left behind.
    expect(readdirSync(dir)).toEqual(['passwords.yml']);
  });

  it('keeps existing keys, values and comments byte for byte, fills empty ones, and makes the file 0600', () => {
    const original = [
      '---',
      '# kolla-ansible passwords.yml',
      'ceph_cluster_fsid:',
      'database_password: KeepThisDbPassword  # set by hand',
      'rabbitmq_password:',
      '# the cookie must stay the same on every node',
      'rabbitmq_cluster_cookie: KEEPTHISCOOKIE',
      'keepalived_password: ""',
      'memcache_secret_key: 0123',
      'nova_ssh_key:',
      '  private_key:',
      '  public_key:',
      'keystone_admin_password:   # fill me',
      '',
    ].join('\n');
    writeFileSync(file, original, { mode: 0o644 });
    chmodSync(file, 0o644);

    const r = generatePasswords(file);
    expect(r.created).toEqual([
      'mariadb_backup_database_password',
      'rabbitmq_password',
      'keepalived_password',
      'haproxy_password',
      'keystone_admin_password',
      'keystone_database_password',
    ]);
    expect(r.kept).toBe(3);
    // ceph_cluster_fsid is kolla's: left for --all; nova_ssh_key is an SSH key pair, left alone.
    expect(r.otherEmpty).toBe(1);
    expect(r.left).toEqual(['nova_ssh_key']);
    expect(r.modeWas).toBe(0o644);
    expect(mode(file)).toBe(0o600);

    const text = readFileSync(file, 'utf8');
    const lines = text.split('\n');
    // Untouched lines stay exactly as they were.
    for (const line of original.split('\n').filter((l) => l !== '')) {
      if (/^(rabbitmq_password|keepalived_password|keystone_admin_password):/.test(line)) continue;
      expect(lines).toContain(line);
    }
    expect(lines).toContain('memcache_secret_key: 0123');
    expect(text).toMatch(/^keystone_admin_password: {3}[A-Za-z0-9]{32} # fill me$/m);
    const values = read();
    expect(values.database_password).toBe('KeepThisDbPassword');
    expect(values.rabbitmq_cluster_cookie).toBe('KEEPTHISCOOKIE');
    expect(values.memcache_secret_key).toBe(123);
    expect(values.ceph_cluster_fsid).toBeNull();
    expect(values.nova_ssh_key).toEqual({ private_key: null, public_key: null });
    for (const key of r.created) expect(values[key]).toMatch(/^[A-Za-z0-9]{32}$/);

    // A second run changes nothing.
    expect(generatePasswords(file)).toMatchObject({
      created: [],
      kept: PASSWORD_KEYS.length,
      modeWas: undefined,
    });
    expect(readFileSync(file, 'utf8')).toBe(text);
  });

  it('makes a complete but readable passwords.yml 0600 without rewriting it', () => {
    generatePasswords(file);
    const text = readFileSync(file, 'utf8');
    chmodSync(file, 0o644);
    expect(generatePasswords(file).created).toEqual([]);
    expect(mode(file)).toBe(0o600);
    expect(readFileSync(file, 'utf8')).toBe(text);
  });

  it('fills a comment-only file and a flow mapping', () => {
    writeFileSync(file, '# only a comment\n');
    expect(generatePasswords(file).created).toHaveLength(PASSWORD_KEYS.length);
    expect(readFileSync(file, 'utf8')).toMatch(/^# only a comment\n/);
    expect(Object.keys(read())).toEqual([...PASSWORD_KEYS]);

    writeFileSync(file, '{database_password: FlowKept}\n');
    expect(generatePasswords(file).created).toHaveLength(PASSWORD_KEYS.length - 1);
    expect(read().database_password).toBe('FlowKept');
  });

  it('refuses a file it cannot parse, without quoting it and without changing it', () => {
    const broken = 'database_password: "TOPSECRET-unterminated\n';
    writeFileSync(file, broken, { mode: 0o600 });
    let error: unknown;
    try {
      generatePasswords(file);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(InventoryError);
    expect((error as Error).message).toMatch(/^passwords\.yml:\d+: YAML syntax error/);
    expect((error as Error).message).not.toContain('TOPSECRET');
    expect(readFileSync(file, 'utf8')).toBe(broken);

    writeFileSync(file, '- a list\n');
    expect(() => generatePasswords(file)).toThrowError(/must be a YAML mapping/);
  });

  it('writes a file that loads', () => {
    generatePasswords(file);
    const dep = buildDeployment(
      {
        multinode: '[control]\nctl1 ansible_host=10.0.0.11\n',
        globals: 'kolla_internal_vip_address: 10.0.0.10\n',
        passwords: readFileSync(file, 'utf8'),
      },
      dir,
      { allowSingle: true },
    );
    expect(Object.keys(dep.passwords).sort()).toEqual([...PASSWORD_KEYS].sort());
    expect(existsSync(file)).toBe(true);
  });
});

describe('random secrets', () => {
  it('uses only the alphabet, at the requested length', () => {
    expect(randomString(1000, 'ab')).toMatch(/^[ab]{1000}$/);
    expect(newSecret('rabbitmq_cluster_cookie')).toMatch(/^[A-Z]{40}$/);
    expect(newSecret('memcache_secret_key')).toMatch(/^[A-Za-z0-9]{32}$/);
    expect(newSecret('database_password')).not.toBe(newSecret('database_password'));
  });

  it('covers the whole alphabet', () => {
    const s = randomString(5000, 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789');
    expect(new Set(s).size).toBe(62);
  });
});
