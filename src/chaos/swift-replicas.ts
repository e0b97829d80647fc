// How many replicas of each object its primary storage nodes hold right now: asked of each object server directly
// (HEAD on the backend path the proxy itself uses), from a storage host, with swift's own ring. What a replicator has
// to restore after a storage host came back is read here, object by object.
import type { Host } from '../hosts/host.js';
import { CommandError } from '../util/exec.js';

export const REPLICA_PROGRAM = String.raw`
import json, sys, urllib.parse, urllib.request
from swift.common.ring import Ring

req = json.load(sys.stdin)
ring = Ring("/etc/swift", ring_name="object")
out = {}
for name in req["objects"]:
    part, nodes = ring.get_nodes(req["account"], req["container"], name)
    held = 0
    for node in nodes:
        path = "/".join(urllib.parse.quote(x) for x in (node["device"], str(part), req["account"], req["container"], name))
        r = urllib.request.Request("http://%s:%d/%s" % (node["ip"], node["port"], path), method="HEAD")
        try:
            with urllib.request.urlopen(r, timeout=5) as resp:
                if resp.status == 200:
                    held += 1
        except Exception:
            pass
    out[name] = held
print(json.dumps(out))
`;

/** Replicas held per object (0-3), asked from `host` (a storage host). */
export async function replicaCounts(
  host: Host,
  account: string,
  container: string,
  objects: readonly string[],
): Promise<Record<string, number>> {
  const r = await host.exec(['/usr/bin/python3', '-c', REPLICA_PROGRAM], {
    input: JSON.stringify({ account, container, objects }),
    timeoutMs: 300_000,
  });
  if (r.code !== 0) throw new CommandError(r, `${host.name} (swift replica count)`);
  return JSON.parse(r.stdout.trim().split('\n').slice(-1)[0] ?? '{}') as Record<string, number>;
}
