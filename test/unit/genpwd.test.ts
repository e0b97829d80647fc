import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { ConfigPathError, InventoryError } from '../../src/inventory/errors.js';
import { generatePasswords, newSecret, randomString } from '../../src/inventory/genpwd.js';
import { buildDeployment } from '../../src/inventory/load.js';
import { PASSWORD_KEYS } from '../../src/inventory/load.js';

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
      'haproxy_password',
      'keepalived_password',
      'keystone_admin_password',
      'keystone_database_password',
      'placement_database_password',
      'placement_keystone_password',
      'neutron_database_password',
      'neutron_keystone_password',
      'metadata_secret',
      'nova_database_password',
      'nova_keystone_password',
      'swift_hash_path_suffix',
      'swift_hash_path_prefix',
      'swift_keystone_password',
      'glance_database_password',
      'glance_keystone_password',
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

describe('generatePasswords for a kolla-ansible user (issue 9)', () => {
  const bytes = (path: string): Buffer => readFileSync(path);

  it('follows a symlinked passwords.yml: writes its target and keeps the link', () => {
    mkdirSync(join(dir, 'real'));
    const target = join(dir, 'real', 'kolla-passwords.yml');
    writeFileSync(target, 'database_password: KeepMe\n', { mode: 0o640 });
    symlinkSync('real/kolla-passwords.yml', file);
    const r = generatePasswords(file);
    expect(r.file).toBe(target);
    expect(lstatSync(file).isSymbolicLink()).toBe(true);
    expect(readlinkSync(file)).toBe('real/kolla-passwords.yml');
    expect(mode(target)).toBe(0o600);
    expect(r.modeWas).toBe(0o640);
    expect(read().database_password).toBe('KeepMe');
    // The existing key first, the created ones after it in the registry's order.
    expect(Object.keys(read())).toEqual([
      'database_password',
      ...PASSWORD_KEYS.filter((k) => k !== 'database_password'),
    ]);
    expect(readdirSync(join(dir, 'real'))).toEqual(['kolla-passwords.yml']);
  });

  it('writes through a dangling symlink, creating its target', () => {
    symlinkSync('made-by-genpwd.yml', file);
    generatePasswords(file);
    expect(lstatSync(file).isSymbolicLink()).toBe(true);
    expect(Object.keys(parse(readFileSync(join(dir, 'made-by-genpwd.yml'), 'utf8')))).toEqual([
      ...PASSWORD_KEYS,
    ]);
  });

  it('keeps the bytes of comments it does not touch: Latin-1 stays Latin-1', () => {
    const original = Buffer.from(
      '# Caf\xe9 de la r\xe9gion, \xa9 2024 \xff\ndatabase_password:\n# \xbfqu\xe9?\nrabbitmq_password: KeptValue # \xe0 garder\n',
      'latin1',
    );
    writeFileSync(file, original);
    const r = generatePasswords(file);
    expect(r.created).toContain('database_password');
    const after = bytes(file);
    for (const line of original.toString('latin1').split('\n')) {
      if (line.startsWith('database_password')) continue;
      expect(after.includes(Buffer.from(line, 'latin1')), line).toBe(true);
    }
    expect(after.includes(Buffer.from('\ufffd', 'utf8'))).toBe(false);
    expect(after.subarray(0, 40).equals(original.subarray(0, 40))).toBe(true);
  });

  it('keeps UTF-8 comments as they are', () => {
    const original = '# café ☕ 日本\ndatabase_password:\n';
    writeFileSync(file, original);
    generatePasswords(file);
    expect(readFileSync(file, 'utf8')).toMatch(/^# café ☕ 日本\ndatabase_password: [A-Za-z0-9]{32}\n/);
  });

  it('refuses a key nested under another by over-indentation, leaving the file byte for byte as it was', () => {
    const original =
      'database_password: TOPSECRET-db\nkeepalived_password:\n  rabbitmq_password: TOPSECRET-rmq\n';
    writeFileSync(file, original, { mode: 0o600 });
    let error: unknown;
    try {
      generatePasswords(file);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(InventoryError);
    expect((error as Error).message).toBe(
      "passwords.yml:3 rabbitmq_password: indented under keepalived_password (line 2), so it is part of keepalived_password's value, not a key of its own: remove the indentation; not changed",
    );
    expect(readFileSync(file, 'utf8')).toBe(original);
    expect(readdirSync(dir)).toEqual(['passwords.yml']);
  });

  it("leaves kolla's SSH key maps alone: keys under them are not taken for nesting", () => {
    writeFileSync(file, 'nova_ssh_key:\n  private_key:\n  public_key:\n');
    const r = generatePasswords(file, { all: true });
    expect(r.left).toEqual(['nova_ssh_key']);
    expect(read().nova_ssh_key).toEqual({ private_key: null, public_key: null });
  });

  it('--all fills the other empty keys, and says how many are left without it', () => {
    writeFileSync(file, 'heat_database_password:\nrbd_secret_uuid: ""\ndocker_registry_password:\n');
    const first = generatePasswords(file);
    expect(first.otherEmpty).toBe(2);
    expect(read().heat_database_password).toBeNull();
    const second = generatePasswords(file, { all: true });
    expect(second.created).toEqual(['heat_database_password', 'rbd_secret_uuid']);
    expect(second.left).toEqual(['docker_registry_password']);
    expect(read().rbd_secret_uuid).toMatch(/^[0-9a-f-]{36}$/);
    expect(read().docker_registry_password).toBeNull();
  });

  it.each([
    [
      'a missing directory',
      () => join(dir, 'missing', 'passwords.yml'),
      (p: string) =>
        `cannot write ${p}: directory ${join(dir, 'missing')} does not exist (create it: mkdir -p ${join(dir, 'missing')})`,
    ],
    [
      'a directory',
      () => dir,
      (p: string) => `${p} is a directory, not a file: pass the passwords file (-p FILE)`,
    ],
    [
      'a path through a file',
      () => {
        writeFileSync(join(dir, 'plain'), 'x');
        return join(dir, 'plain', 'passwords.yml');
      },
      (p: string) =>
        `cannot use ${p}: a part of its path is a file, not a directory; pass the passwords file (-p FILE)`,
    ],
  ])('names the path and the fix for %s, in one line', (_case, make, message) => {
    const path = make();
    let error: unknown;
    try {
      generatePasswords(path);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigPathError);
    expect((error as Error).message).toBe(message(path));
    expect((error as Error).message).not.toMatch(/ENOENT|ENOTDIR|EISDIR|\.tmp/);
  });

  it.skipIf(!existsSync('/sys/kernel'))(
    'says a directory is not writable, never naming the temporary file',
    () => {
      // sysfs takes no new files, even from root: the closest a root test gets to a read-only directory.
      expect(() => generatePasswords('/sys/passwords.yml')).toThrowError(
        'cannot write /sys/passwords.yml: no permission to create files in /sys (run stackha as its owner or root)',
      );
    },
  );
});
