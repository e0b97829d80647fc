// Swift's rings: built once, on the first storage host, and given byte for byte to every Swift host (a host with
// another ring puts objects where the others do not look). One device per storage host, one zone per host (so the
// three replicas land on three hosts), zones kept once given. The builder files, which hold the ring's history
// (what moved when), are kept both on that host and in the config directory beside passwords.yml, so losing the host
// loses nothing. The build runs under the database lock and only when the devices asked for differ from the
// builders'; servers notice new ring files by themselves (they check every 15 s), so no restart follows.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Host } from '../../hosts/host.js';
import type { Deployment, HostSpec } from '../../model.js';
import { type SettingsTable, integerSetting, readSettings } from '../../settings.js';
import { hostsFor } from '../../topology.js';
import { writeFileAtomic } from '../../util/atomic.js';
import { CommandError } from '../../util/exec.js';
import { type AdminSql, withDbLock } from '../api/framework.js';
import type { DeployContext } from '../types.js';
import { hostIn, hostOf } from '../types.js';
import { RINGS, type RingName, SWIFT_DEVICE, SWIFT_DIR } from './conf.js';

export const SWIFT_RING_SETTINGS = {
  // 2^10 partitions: room for a cluster ten times this size with about 100 partitions per device.
  swift_part_power: { schema: integerSetting(10, 4, 22) },
  swift_replica_count: { schema: integerSetting(3, 1, 6) },
  // A partition moves at most once per this many hours, so a rebalance never takes two replicas away at once.
  swift_min_part_hours: { schema: integerSetting(1, 0, 168) },
} as const satisfies SettingsTable;

/** Where the first storage host keeps the builders while it builds. */
const BUILD_DIR = '/var/lib/stackha/swift-rings';
const REQUEST = `${BUILD_DIR}/request.json`;

/** The devices every ring must hold: one per storage host, on its internal address. Pure. */
export function ringRequest(dep: Deployment) {
  const s = readSettings(dep.globals.settings, SWIFT_RING_SETTINGS);
  return {
    dir: BUILD_DIR,
    part_power: s.swift_part_power,
    replicas: s.swift_replica_count,
    min_part_hours: s.swift_min_part_hours,
    // A fixed seed: the same builder and changes give the same ring.
    seed: 1,
    rings: Object.fromEntries(RINGS.map((r) => [r.name, r.port])),
    devices: hostsFor(dep, 'swift-storage').map((h) => ({
      ip: h.address,
      device: SWIFT_DEVICE,
      weight: 100,
    })),
  };
}

/**
 * The builder program (python3, swift's own RingBuilder): per ring, loads or creates the builder, adds the devices
 * asked for (each new host in a zone of its own), removes those no longer asked for, then rebalances and writes the
 * builder and ring only if something changed or the ring file is missing. Prints what it changed as JSON.
 */
export const RING_PROGRAM = String.raw`
import json, os, sys
from swift.common.ring import RingBuilder

req = json.load(open(sys.argv[1]))
changes = []
for name, port in sorted(req["rings"].items()):
    path = os.path.join(req["dir"], name + ".builder")
    ring_path = os.path.join(req["dir"], name + ".ring.gz")
    if os.path.exists(path):
        b = RingBuilder.load(path)
    else:
        b = RingBuilder(req["part_power"], req["replicas"], req["min_part_hours"])
        changes.append(name + ": builder created (2^%d partitions, %d replicas)" % (req["part_power"], req["replicas"]))
    changed = False
    devs = [d for d in b.devs if d is not None]
    have = {(d["ip"], d["port"], d["device"]): d for d in devs}
    want = {(d["ip"], port, d["device"]): d for d in req["devices"]}
    zones = set(d["zone"] for d in devs)
    for key, d in sorted(want.items()):
        if key in have:
            if have[key]["weight"] != d["weight"]:
                b.set_dev_weight(have[key]["id"], d["weight"])
                changes.append("%s: weight of %s:%d/%s set to %s" % (name, key[0], key[1], key[2], d["weight"]))
                changed = True
            continue
        zone = 1
        while zone in zones:
            zone += 1
        zones.add(zone)
        b.add_dev({"region": 1, "zone": zone, "ip": key[0], "port": key[1], "device": key[2],
                   "weight": d["weight"], "meta": ""})
        changes.append("%s: added %s:%d/%s in zone %d" % (name, key[0], key[1], key[2], zone))
        changed = True
    for key, d in sorted(have.items()):
        if key not in want:
            b.remove_dev(d["id"])
            changes.append("%s: removed %s:%d/%s" % (name, key[0], key[1], key[2]))
            changed = True
    if b.replicas != req["replicas"]:
        b.set_replicas(req["replicas"])
        changes.append("%s: %d replicas" % (name, req["replicas"]))
        changed = True
    if changed or not os.path.exists(ring_path):
        if b.devs:
            b.rebalance(seed=req["seed"])
        b.save(path)
        b.get_ring().save(ring_path)
        if not changed:
            changes.append(name + ": ring written")
print(json.dumps(changes))
`;

/** Reads a (binary) file of a host as base64; undefined when it is not there. */
async function readBase64(host: Host, path: string): Promise<string | undefined> {
  if (!(await host.exists(path))) return undefined;
  const r = await host.exec(['/usr/bin/base64', '-w0', path], { timeoutMs: 30_000 });
  if (r.code !== 0) throw new CommandError(r, host.name);
  return r.stdout.trim();
}

/** Writes a binary file (given as base64) atomically on a host. */
async function writeBase64(host: Host, path: string, b64: string, mode = '0644'): Promise<void> {
  const r = await host.exec(
    [
      '/bin/sh',
      '-c',
      'umask 022 && base64 -d > "$1.tmp" && chmod "$2" "$1.tmp" && mv "$1.tmp" "$1"',
      'sh',
      path,
      mode,
    ],
    { input: b64, timeoutMs: 30_000 },
  );
  if (r.code !== 0) throw new CommandError(r, host.name);
}

const md5 = (b64: string): string => createHash('md5').update(Buffer.from(b64, 'base64')).digest('hex');

/** The builders kept in the config directory (the copy that outlives any host). */
const keptBuilder = (dep: Deployment, ring: RingName): string =>
  join(dep.configDir, 'swift', `${ring}.builder`);

/** md5 of each ring on a host (undefined: missing), for status and for deciding what to copy. */
export async function ringDigests(host: Host): Promise<Record<RingName, string | undefined>> {
  const r = await host.exec(
    [
      '/bin/sh',
      '-c',
      `cd ${SWIFT_DIR} && for r in ${RINGS.map((x) => x.name).join(' ')}; do [ -f $r.ring.gz ] && md5sum $r.ring.gz; done; true`,
    ],
    { timeoutMs: 15_000 },
  );
  const out = {} as Record<RingName, string | undefined>;
  for (const ring of RINGS) {
    const m = new RegExp(`^([0-9a-f]{32})\\s+${ring.name}\\.ring\\.gz$`, 'm').exec(r.stdout);
    out[ring.name] = m?.[1];
  }
  return out;
}

/**
 * Builds the rings if the devices changed (under the lock) and copies them to every host given (storage and proxy
 * hosts) whose copy differs. Resolves with the hosts that got a new ring.
 */
export async function ensureRings(
  ctx: DeployContext,
  sql: AdminSql,
  targets: readonly HostSpec[],
): Promise<string[]> {
  const builder = hostsFor(ctx.dep, 'swift-storage')[0];
  if (!builder) return [];
  const host = hostOf(ctx, builder.name);
  const req = ringRequest(ctx.dep);
  const rings = await withDbLock(
    sql,
    'swift:rings',
    async () => {
      await host.mkdir(BUILD_DIR, { mode: 0o700 });
      // A host that lost its builders gets the kept ones back before anything is built.
      for (const r of RINGS) {
        const kept = keptBuilder(ctx.dep, r.name);
        if (existsSync(kept) && !(await host.exists(`${BUILD_DIR}/${r.name}.builder`)))
          await writeBase64(
            host,
            `${BUILD_DIR}/${r.name}.builder`,
            readFileSync(kept).toString('base64'),
            '0600',
          );
      }
      await host.writeFile(REQUEST, JSON.stringify(req), { mode: 0o600 });
      const r = await host.exec(['/usr/bin/python3', '-', REQUEST], {
        input: RING_PROGRAM,
        timeoutMs: 300_000,
      });
      if (r.code !== 0) throw new CommandError(r, `${builder.name} (swift rings)`);
      const changes = JSON.parse(r.stdout.trim().split('\n').slice(-1)[0] ?? '[]') as string[];
      if (changes.length) ctx.log(`swift rings on ${builder.name}: ${changes.join('; ')}`);
      const out: { name: RingName; b64: string; md5: string }[] = [];
      for (const ring of RINGS) {
        const b64 = await readBase64(host, `${BUILD_DIR}/${ring.name}.ring.gz`);
        if (!b64) throw new Error(`${builder.name}: the ${ring.name} ring was not written`);
        out.push({ name: ring.name, b64, md5: md5(b64) });
        const builderB64 = await readBase64(host, `${BUILD_DIR}/${ring.name}.builder`);
        if (builderB64) {
          const kept = keptBuilder(ctx.dep, ring.name);
          const bytes = Buffer.from(builderB64, 'base64');
          if (!existsSync(kept) || !readFileSync(kept).equals(bytes)) {
            mkdirSync(join(ctx.dep.configDir, 'swift'), { recursive: true, mode: 0o755 });
            writeFileAtomic(kept, bytes, { mode: 0o644 });
          }
        }
      }
      return out;
    },
    { log: ctx.log },
  );
  const changed: string[] = [];
  await Promise.all(
    targets.map(async (t) => {
      const h = hostOf(ctx, t.name);
      await h.mkdir(SWIFT_DIR, { mode: 0o755 });
      const have = await ringDigests(h);
      let wrote = false;
      for (const ring of rings) {
        if (have[ring.name] === ring.md5) continue;
        await writeBase64(h, `${SWIFT_DIR}/${ring.name}.ring.gz`, ring.b64);
        wrote = true;
      }
      if (wrote) changed.push(t.name);
    }),
  );
  if (changed.length) ctx.log(`swift rings copied to ${changed.sort().join(', ')}`);
  return changed;
}

/** Every host's ring digests: the same on every host when the cluster agrees on where objects are. */
export async function ringDigestsOf(
  ctx: { readonly hosts: ReadonlyMap<string, Host> },
  hosts: readonly HostSpec[],
): Promise<{ host: string; rings: Record<RingName, string | undefined> }[]> {
  return Promise.all(
    hosts.map(async (h) => ({ host: h.name, rings: await ringDigests(hostIn(ctx, h.name)) })),
  );
}

/** Problems with the rings across hosts. Pure. */
export function ringProblems(
  states: readonly { host: string; rings: Record<string, string | undefined> }[],
): string[] {
  const p: string[] = [];
  for (const ring of RINGS) {
    const byDigest = new Map<string, string[]>();
    for (const s of states) {
      const d = s.rings[ring.name];
      if (d === undefined) p.push(`swift: ${s.host} has no ${ring.name} ring`);
      else byDigest.set(d, [...(byDigest.get(d) ?? []), s.host]);
    }
    if (byDigest.size > 1)
      p.push(
        `swift: the ${ring.name} ring differs between hosts (${[...byDigest].map(([d, hs]) => `${hs.join(',')}: ${d.slice(0, 8)}`).join('; ')}): run stackha deploy`,
      );
  }
  return p;
}
