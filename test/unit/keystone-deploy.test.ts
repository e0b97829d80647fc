// Keystone's deploy, key sync, rotation and status against in-memory hosts and database (keystone-fake.ts): what
// runs where, in which order, what a re-deploy leaves alone, and that keys are created once and only copied after.
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildDeployment } from '../../src/inventory/load.js';
import type { Deployment } from '../../src/model.js';
import { keystoneProblems, keystoneStatus, rotateFernetKeys, summarizeKeys } from '../../src/ops/keystone.js';
import {
  CREDENTIAL_KEYS_DIR,
  FERNET_KEYS_DIR,
  KEYSTONE_MANAGE,
  chooseKeySource,
  deployKeystone,
  keySetFingerprint,
  primaryKey,
  renderKeystone,
  syncKeystoneKeys,
  writeKeySet,
} from '../../src/services/keystone/keystone.js';
import { type FakeHost, fakeCluster } from './keystone-fake.js';

const FIXTURES = join(import.meta.dirname, '../fixtures/render');
const fixture = (name: string): string => readFileSync(join(FIXTURES, name), 'utf8');
/** The fixture's 3 hosts, config dir in the scratch area so clouds.yaml can be written. */
function deployment(configDir: string): Deployment {
  return buildDeployment(
    { multinode: fixture('multinode'), globals: fixture('globals.yml'), passwords: fixture('passwords.yml') },
    configDir,
  );
}

const scratch = mkdtempSync(join(tmpdir(), 'stackha-keystone-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));
const dep = deployment(scratch);

const manage = (h: FakeHost, command?: string) =>
  h.execs((a) => a[0] === KEYSTONE_MANAGE && (command === undefined || a[3] === command));
const keys = (entries: [number, string][]) => new Map(entries);

describe('key sets', () => {
  it('fingerprints ignore order and see every key', () => {
    const a = keys([
      [0, 'A'],
      [1, 'B'],
    ]);
    expect(keySetFingerprint(a)).toBe(
      keySetFingerprint(
        keys([
          [1, 'B'],
          [0, 'A'],
        ]),
      ),
    );
    expect(keySetFingerprint(a)).not.toBe(
      keySetFingerprint(
        keys([
          [0, 'A'],
          [1, 'C'],
        ]),
      ),
    );
    expect(primaryKey(a)).toBe(1);
    expect(primaryKey(new Map())).toBeUndefined();
  });

  it('the source is the most rotated set, then the one most hosts share, then inventory order', () => {
    const s = (host: string, entries: [number, string][]) => ({ host, keys: keys(entries) });
    expect(chooseKeySource([s('ctl1', []), s('ctl2', [])])).toBeUndefined();
    // A new host (no keys) never wins; the only host with keys is the source.
    expect(
      chooseKeySource([
        s('ctl1', []),
        s('ctl2', [
          [0, 'x'],
          [1, 'y'],
        ]),
      ]),
    ).toBe('ctl2');
    // ctl3 missed a rotation: ctl1 (primary 2) is the source.
    expect(
      chooseKeySource([
        s('ctl3', [
          [0, 'a'],
          [1, 'b'],
        ]),
        s('ctl1', [
          [0, 'c'],
          [1, 'b'],
          [2, 'a'],
        ]),
      ]),
    ).toBe('ctl1');
    // Same primary number, different keys (one host generated its own): the set two hosts share wins.
    expect(
      chooseKeySource([
        s('ctl1', [
          [0, 'rogue'],
          [1, 'rogue1'],
        ]),
        s('ctl2', [
          [0, 'a'],
          [1, 'b'],
        ]),
        s('ctl3', [
          [0, 'a'],
          [1, 'b'],
        ]),
      ]),
    ).toBe('ctl2');
    expect(
      chooseKeySource([
        s('ctl2', [
          [0, 'p'],
          [1, 'q'],
        ]),
        s('ctl1', [
          [0, 'r'],
          [1, 's'],
        ]),
      ]),
    ).toBe('ctl2');
  });
});

describe('syncKeystoneKeys', () => {
  it('creates keys once, on the first host only, when no host has any; copies them to the others (0600)', async () => {
    const { hosts, ctx } = fakeCluster(dep);
    await deployKeystoneConfigOnly(hosts);
    const r = await syncKeystoneKeys(ctx);
    const [h1, h2, h3] = ['ctl1', 'ctl2', 'ctl3'].map((n) => hosts.get(n) as FakeHost);
    expect(manage(h1!, 'fernet_setup')).toHaveLength(1);
    expect(manage(h1!, 'credential_setup')).toHaveLength(1);
    expect([...manage(h2!), ...manage(h3!)]).toEqual([]);
    expect(r.sources).toEqual({ fernet: 'created on ctl1', credential: 'created on ctl1' });
    expect([...r.changed].sort()).toEqual(['ctl1', 'ctl2', 'ctl3']);
    for (const dir of [FERNET_KEYS_DIR, CREDENTIAL_KEYS_DIR]) {
      const fp = keySetFingerprint(h1!.keysIn(dir));
      for (const h of [h2!, h3!]) {
        expect(keySetFingerprint(h.keysIn(dir)), `${h.name} ${dir}`).toBe(fp);
        for (const n of h.keysIn(dir).keys()) expect(h.files.get(`${dir}/${n}`)?.mode).toBe(0o600);
        expect(h.dirs.get(dir)).toBe(0o700);
      }
    }
    // A second sync changes nothing.
    for (const h of hosts.values()) h.clearCalls();
    expect((await syncKeystoneKeys(ctx)).changed).toEqual([]);
    for (const h of hosts.values()) {
      expect(manage(h)).toEqual([]);
      expect(h.calls.filter((c) => c.op === 'write' || c.op === 'remove')).toEqual([]);
    }
  });

  it('a host whose repository cannot be read stops the sync: it never counts as a host without keys', async () => {
    const { hosts, ctx } = fakeCluster(dep);
    await deployKeystoneConfigOnly(hosts);
    const h2 = hosts.get('ctl2') as FakeHost;
    await writeKeySet(
      h2,
      FERNET_KEYS_DIR,
      keys([
        [0, 'a'],
        [1, 'b'],
      ]),
    );
    await writeKeySet(
      h2,
      CREDENTIAL_KEYS_DIR,
      keys([
        [0, 'c'],
        [1, 'd'],
      ]),
    );
    h2.failListing = true;
    await expect(syncKeystoneKeys(ctx)).rejects.toThrow(/ctl2: find/);
    for (const h of hosts.values()) expect(manage(h), h.name).toEqual([]);
  });

  it('a host added later gets the existing keys, never new ones', async () => {
    const { hosts, ctx } = fakeCluster(dep);
    await deployKeystoneConfigOnly(hosts);
    const h2 = hosts.get('ctl2') as FakeHost;
    const existing = keys([
      [0, 'staged'],
      [4, 'primary'],
      [3, 'secondary'],
    ]);
    // ctl2 and ctl3 have the cluster's keys; ctl1 (first in the inventory) is the new host.
    for (const n of ['ctl2', 'ctl3']) {
      await writeKeySet(hosts.get(n) as FakeHost, FERNET_KEYS_DIR, existing);
      await writeKeySet(
        hosts.get(n) as FakeHost,
        CREDENTIAL_KEYS_DIR,
        keys([
          [0, 'c0'],
          [1, 'c1'],
        ]),
      );
    }
    const r = await syncKeystoneKeys(ctx);
    const h1 = hosts.get('ctl1') as FakeHost;
    for (const h of hosts.values()) expect(manage(h), h.name).toEqual([]);
    expect(r.sources.fernet).toBe('ctl2');
    expect(r.changed).toEqual(['ctl1']);
    expect(h1.keysIn(FERNET_KEYS_DIR)).toEqual(existing);
    expect(keySetFingerprint(h1.keysIn(CREDENTIAL_KEYS_DIR))).toBe(
      keySetFingerprint(h2.keysIn(CREDENTIAL_KEYS_DIR)),
    );
  });

  it('a host that missed a rotation gets the rotated set; keys it should no longer have are removed', async () => {
    const { hosts, ctx } = fakeCluster(dep);
    await deployKeystoneConfigOnly(hosts);
    await syncKeystoneKeys(ctx);
    const h1 = hosts.get('ctl1') as FakeHost;
    const h3 = hosts.get('ctl3') as FakeHost;
    const stale = h3.keysIn(FERNET_KEYS_DIR);
    // Rotate twice on ctl1 and ctl2 by hand, as if ctl3 was unreachable both times.
    for (const h of [h1, hosts.get('ctl2') as FakeHost])
      await writeKeySet(h, FERNET_KEYS_DIR, rotated(rotated(stale)));
    const status = await keystoneStatus(ctx);
    expect(status.fernetInSync).toBe(false);
    // (The fake daemons do not run here: only the key problem is looked at.)
    const problems = keystoneProblems(status).filter((p) => p.includes(' keys '));
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/ctl1, ctl2: primary 3 .*; ctl3: primary 1/);
    h3.clearCalls();
    const r = await syncKeystoneKeys(ctx);
    expect(r.changed).toEqual(['ctl3']);
    expect(h3.keysIn(FERNET_KEYS_DIR)).toEqual(h1.keysIn(FERNET_KEYS_DIR));
    // New keys written before the stale one (1) is removed: ctl3 can always decrypt what the others issue.
    const ops = h3.calls.filter((c) => c.op === 'write' || c.op === 'remove').map((c) => `${c.op} ${c.path}`);
    expect(ops.at(-1)).toBe(`remove ${FERNET_KEYS_DIR}/1`);
    expect(keystoneProblems(await keystoneStatus(ctx)).filter((p) => p.includes(' keys '))).toEqual([]);
  });
});

/** What keystone-manage fernet_rotate does to a set (max_active_keys 3). */
function rotated(set: ReadonlyMap<number, string>): Map<number, string> {
  const top = Math.max(...set.keys());
  const next = new Map(set);
  next.set(top + 1, set.get(0) ?? '');
  next.set(0, `new-${top + 1}`);
  const secondaries = [...next.keys()].filter((n) => n !== 0 && n !== top + 1).sort((a, b) => a - b);
  while (secondaries.length + 2 > 3) next.delete(secondaries.shift() ?? -1);
  return next;
}

/** The config files a deploy writes first (keystone-manage on the fake reads its key_repository from them). */
async function deployKeystoneConfigOnly(hosts: Map<string, FakeHost>): Promise<void> {
  for (const spec of dep.hosts) {
    const h = hosts.get(spec.name) as FakeHost;
    for (const f of renderKeystone(dep, { host: spec }).files)
      await h.writeFile(f.path, f.content, f.mode !== undefined ? { mode: f.mode } : {});
  }
}

describe('rotateFernetKeys', () => {
  it('rotates on one host and gives every host the result; the old primary stays as a secondary', async () => {
    const { hosts, ctx } = fakeCluster(dep);
    await deployKeystoneConfigOnly(hosts);
    await syncKeystoneKeys(ctx);
    const h1 = hosts.get('ctl1') as FakeHost;
    const before = h1.keysIn(FERNET_KEYS_DIR);
    for (const h of hosts.values()) h.clearCalls();
    const r = await rotateFernetKeys(ctx, { host: 'ctl2' });
    expect(r).toMatchObject({ host: 'ctl2', before: 1, after: 2, distributedTo: ['ctl1', 'ctl3'] });
    expect(manage(hosts.get('ctl2') as FakeHost, 'fernet_rotate')).toHaveLength(1);
    expect([...manage(h1), ...manage(hosts.get('ctl3') as FakeHost)]).toEqual([]);
    const after = h1.keysIn(FERNET_KEYS_DIR);
    // The old primary (1) is still there, the old staged key (0) became the primary (2).
    expect(after.get(1)).toBe(before.get(1));
    expect(after.get(2)).toBe(before.get(0));
    for (const h of hosts.values()) expect(h.keysIn(FERNET_KEYS_DIR), h.name).toEqual(after);
    expect((await keystoneStatus(ctx)).fernetInSync).toBe(true);
  });

  it('syncs the hosts first when they disagree, then rotates from the most advanced set', async () => {
    const { hosts, ctx } = fakeCluster(dep);
    await deployKeystoneConfigOnly(hosts);
    await syncKeystoneKeys(ctx);
    const h2 = hosts.get('ctl2') as FakeHost;
    await writeKeySet(h2, FERNET_KEYS_DIR, rotated(h2.keysIn(FERNET_KEYS_DIR)));
    const r = await rotateFernetKeys(ctx);
    expect(r.repairedFirst?.sources.fernet).toBe('ctl2');
    expect(r).toMatchObject({ host: 'ctl1', before: 2, after: 3 });
  });
});

describe('deployKeystone', () => {
  it('fresh: database and user once, keys, schema and bootstrap on the first host only, uwsgi everywhere', async () => {
    const { hosts, ctx, db } = fakeCluster(dep);
    const r = await deployKeystone(ctx);
    expect(r.outcomes).toEqual({ ctl1: 'started', ctl2: 'started', ctl3: 'started' });
    const [h1, h2, h3] = ['ctl1', 'ctl2', 'ctl3'].map((n) => hosts.get(n) as FakeHost) as [
      FakeHost,
      FakeHost,
      FakeHost,
    ];
    expect(db.database && db.user && db.tables).toBe(true);
    expect(manage(h1, 'db_sync')).toHaveLength(1);
    expect(manage(h1, 'bootstrap')).toHaveLength(1);
    for (const h of [h2, h3]) expect(manage(h), h.name).toEqual([]);
    // The admin password reaches bootstrap through the environment, never argv.
    const boot = h1.calls.find((c) => c.op === 'exec' && c.argv[3] === 'bootstrap');
    expect(boot?.op === 'exec' && boot.env?.OS_BOOTSTRAP_PASSWORD).toBe('fake-keystone-admin-password');
    for (const h of hosts.values())
      for (const c of h.calls)
        if (c.op === 'exec') expect(c.argv.join(' '), h.name).not.toMatch(/fake-[a-z-]*password/);
    // The schema is synced after the keys exist and before any daemon starts.
    const order = h1.calls
      .map((c) =>
        c.op === 'exec' && c.argv[0] === KEYSTONE_MANAGE ? c.argv[3] : c.op === 'start' ? 'start' : '',
      )
      .filter(Boolean);
    expect(order).toEqual(['fernet_setup', 'credential_setup', 'db_sync', 'bootstrap', 'start']);
    expect(db.markers.get('keystone:db_sync')).toBe('2:22.0.2-0+deb12u6');
    expect(db.markers.has('keystone:bootstrap')).toBe(true);
    // The same keys everywhere.
    const fp = keySetFingerprint(h1.keysIn(FERNET_KEYS_DIR));
    for (const h of [h2, h3]) expect(keySetFingerprint(h.keysIn(FERNET_KEYS_DIR))).toBe(fp);
    // The user's view: clouds.yaml and admin-openrc.sh, 0600.
    for (const f of ['clouds.yaml', 'admin-openrc.sh'])
      expect(statSync(join(scratch, f)).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(scratch, 'clouds.yaml'), 'utf8')).toContain(
      'auth_url: "http://198.18.0.10:5000"',
    );
  });

  it('re-deploy with nothing changed: only reads, nothing written, run or restarted', async () => {
    const { hosts, ctx, db } = fakeCluster(dep);
    await deployKeystone(ctx);
    for (const h of hosts.values()) h.clearCalls();
    db.statements.length = 0;
    const r = await deployKeystone(ctx);
    expect(r.outcomes).toEqual({ ctl1: 'unchanged', ctl2: 'unchanged', ctl3: 'unchanged' });
    for (const h of hosts.values()) {
      expect(manage(h), h.name).toEqual([]);
      expect(
        h.calls.filter((c) => ['write', 'remove', 'start', 'stop'].includes(c.op)),
        h.name,
      ).toEqual([]);
    }
    expect(db.statements.filter((s) => /INSERT|CREATE|ALTER|GRANT|DELETE/.test(s))).toEqual([]);
  });

  it('a changed config restarts one host at a time with SIGINT; keys and schema are left alone', async () => {
    const { hosts, ctx } = fakeCluster(dep);
    await deployKeystone(ctx);
    for (const h of hosts.values()) h.clearCalls();
    const more = buildDeployment(
      {
        multinode: fixture('multinode'),
        globals: `${fixture('globals.yml')}keystone_uwsgi_processes: 3\n`,
        passwords: fixture('passwords.yml'),
      },
      scratch,
    );
    const r = await deployKeystone({ ...ctx, dep: more });
    expect(r.outcomes).toEqual({ ctl1: 'restarted', ctl2: 'restarted', ctl3: 'restarted' });
    const events: string[] = [];
    for (const h of hosts.values())
      for (const c of h.calls) {
        if (c.op === 'stop') {
          expect(c.signal).toBe('SIGINT');
          events.push(`stop ${h.name}`);
        }
        if (c.op === 'start') events.push(`start ${h.name}`);
      }
    expect(events).toEqual(['stop ctl1', 'start ctl1', 'stop ctl2', 'start ctl2', 'stop ctl3', 'start ctl3']);
    for (const h of hosts.values()) expect(manage(h), h.name).toEqual([]);
  });

  it('a host whose keys were lost gets the cluster’s keys back on the next deploy, without new keys', async () => {
    const { hosts, ctx } = fakeCluster(dep);
    await deployKeystone(ctx);
    const h1 = hosts.get('ctl1') as FakeHost;
    const h3 = hosts.get('ctl3') as FakeHost;
    const fp = keySetFingerprint(h1.keysIn(FERNET_KEYS_DIR));
    for (const n of h3.keysIn(FERNET_KEYS_DIR).keys()) await h3.remove(`${FERNET_KEYS_DIR}/${n}`);
    expect(summarizeKeys(h3.keysIn(FERNET_KEYS_DIR)).fingerprint).toBeUndefined();
    for (const h of hosts.values()) h.clearCalls();
    const r = await deployKeystone(ctx);
    expect(r.outcomes.ctl3).toBe('configured');
    expect(keySetFingerprint(h3.keysIn(FERNET_KEYS_DIR))).toBe(fp);
    for (const h of hosts.values()) expect(manage(h), h.name).toEqual([]);
  });
});
