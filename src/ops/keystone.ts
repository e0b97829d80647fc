// Keystone operations: each backend's health and key repositories (status), key rotation with distribution to
// every host, and a key sync that repairs a host that missed a rotation.
import type { Host } from '../hosts/host.js';
import type { Deployment, HostSpec } from '../model.js';
import type {
  BenchResult,
  IssueResult,
  KeystoneProbeRequest,
  ValidateResult,
} from '../probes/keystone-load.js';
import { vipUrl } from '../services/api/framework.js';
import { syncFiles } from '../services/files.js';
import {
  ADMIN_CLOUD,
  KEYSTONE_ADMIN,
  KEYSTONE_PORT,
  KEY_REPOSITORIES,
  type KeySyncResult,
  keySetFingerprint,
  keystoneHosts,
  keystoneManage,
  primaryKey,
  readKeySet,
  renderCloudsYaml,
  syncKeystoneKeys,
  writeKeySet,
} from '../services/keystone/keystone.js';
import type { DeployContext, RenderTarget } from '../services/types.js';
import { builtScript } from '../util/paths.js';

/** The connection a Keystone operation needs: the deployment and its hosts (a DeployContext fits). */
export type KeystoneOpsContext = Pick<DeployContext, 'dep' | 'hosts' | 'log'>;

function hostIn(ctx: Pick<KeystoneOpsContext, 'hosts'>, name: string): Host {
  const h = ctx.hosts.get(name);
  if (!h) throw new Error(`no connection to host ${name}`);
  return h;
}

export {
  type KeySummary,
  type KeystoneHostStatus,
  type KeystoneStatus,
  formatKeystoneStatus,
  keystoneProblems,
  keystoneStatus,
  summarizeKeys,
} from '../services/keystone/status.js';
import { keystoneProblems, keystoneStatus } from '../services/keystone/status.js';

export interface RotateResult {
  /** Where keystone-manage fernet_rotate ran. */
  readonly host: string;
  /** Primary key number before and after. */
  readonly before: number | undefined;
  readonly after: number | undefined;
  readonly fingerprint: string;
  /** A sync that ran first because the hosts disagreed. */
  readonly repairedFirst: KeySyncResult | undefined;
  readonly distributedTo: readonly string[];
  readonly seconds: number;
}

/**
 * Rotates the Fernet keys on one host (`keystone-manage fernet_rotate`: the staged key becomes primary, a new
 * staged key appears, the oldest secondary beyond max_active_keys goes) and gives the result to every other
 * host. Tokens issued before stay valid: their key is now a secondary everywhere. If the hosts disagreed before,
 * they are synced first, so the rotation starts from the most advanced set.
 */
export async function rotateFernetKeys(
  ctx: KeystoneOpsContext,
  opts: { host?: string } = {},
): Promise<RotateResult> {
  const started = Date.now();
  const specs = keystoneHosts(ctx.dep);
  const spec: HostSpec | undefined = opts.host ? specs.find((s) => s.name === opts.host) : specs[0];
  if (!spec)
    throw new Error(
      opts.host
        ? `${opts.host} is not a Keystone host (${specs.map((s) => s.name).join(', ')})`
        : 'no Keystone host',
    );
  const dir = KEY_REPOSITORIES[0].dir;
  const before = await keystoneStatus(ctx);
  let repairedFirst: KeySyncResult | undefined;
  if (!before.fernetInSync || !before.credentialInSync) {
    ctx.log('the hosts disagree on their keys: syncing them before the rotation');
    repairedFirst = await syncKeystoneKeys(ctx);
  }
  const host = hostIn(ctx, spec.name);
  const t: RenderTarget = { host: spec };
  const old = await readKeySet(host, dir);
  await keystoneManage(host, t, 'fernet_rotate');
  const keys = await readKeySet(host, dir);
  if (keys.size === 0) throw new Error(`${spec.name}: no Fernet keys after fernet_rotate`);
  ctx.log(`rotated on ${spec.name}: primary ${primaryKey(old)} -> ${primaryKey(keys)}`);
  const distributedTo: string[] = [];
  await Promise.all(
    specs
      .filter((s) => s.name !== spec.name)
      .map(async (s) => {
        if (await writeKeySet(hostIn(ctx, s.name), dir, keys)) distributedTo.push(s.name);
      }),
  );
  const after = await keystoneStatus(ctx);
  if (!after.fernetInSync)
    throw new Error(`after the rotation the hosts still differ: ${keystoneProblems(after).join('; ')}`);
  return {
    host: spec.name,
    before: primaryKey(old),
    after: primaryKey(keys),
    fingerprint: keySetFingerprint(keys),
    repairedFirst,
    distributedTo: distributedTo.sort(),
    seconds: (Date.now() - started) / 1000,
  };
}

export { syncKeystoneKeys };

/**
 * Runs the real OpenStack client (python3-openstackclient) as the deployment's admin, with the clouds.yaml stackha
 * wrote, on the given host: the lab's client namespace, so nothing is contacted from the root namespace.
 */
export async function runOpenstack(
  client: Host,
  dep: Deployment,
  args: readonly string[],
  timeoutMs = 120_000,
) {
  // The client host has its own files: the admin's clouds.yaml goes there first (0600), as on a real client machine.
  const path = '/etc/stackha/clouds.yaml';
  await syncFiles(client, [{ path, content: renderCloudsYaml(dep), mode: 0o600 }]);
  return client.exec(['/usr/bin/openstack', '--os-cloud', ADMIN_CLOUD, ...args], {
    env: { OS_CLIENT_CONFIG_FILE: path },
    timeoutMs,
  });
}

/** Runs the Keystone probe (dist/probes/keystone-load.js) on a host (the lab's client); the request goes on stdin. */
export async function keystoneProbe<R>(
  client: Host,
  request: KeystoneProbeRequest,
  timeoutMs = 60_000,
): Promise<R> {
  const r = await client.exec([process.execPath, builtScript('probes/keystone-load.js')], {
    input: JSON.stringify(request),
    timeoutMs,
  });
  const line = r.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as R;
  } catch {
    throw new Error(`keystone probe exited ${r.code}: ${r.stderr.trim().split('\n').slice(-4).join(' ')}`);
  }
}

/** A token for the deployment's admin, issued through `url` (the VIP by default). */
export function issueAdminToken(
  client: Host,
  dep: Deployment,
  url = vipUrl(dep, KEYSTONE_PORT),
): Promise<IssueResult> {
  return keystoneProbe<IssueResult>(client, {
    mode: 'issue',
    url,
    username: KEYSTONE_ADMIN.user,
    password: dep.passwords.keystone_admin_password ?? '',
    project: KEYSTONE_ADMIN.project,
  });
}

/** GET /v3/auth/tokens of `token` at `url` (the VIP or one backend's http://address:5000). */
export function validateToken(client: Host, url: string, token: string): Promise<ValidateResult> {
  return keystoneProbe<ValidateResult>(client, { mode: 'validate', url, token });
}

/**
 * Token validation (or GET `path`) at several URLs, e.g. the VIP and one backend, in alternating rounds: one
 * result per URL. Alternating keeps a drift in the machine's load from favouring one side.
 */
export function compareValidate(
  client: Host,
  urls: readonly string[],
  token: string,
  o: { concurrency: number; rounds: number; roundSeconds: number; path?: string },
): Promise<BenchResult[]> {
  return keystoneProbe<BenchResult[]>(
    client,
    {
      mode: 'compare',
      urls,
      token,
      concurrency: o.concurrency,
      rounds: o.rounds,
      roundSeconds: o.roundSeconds,
      warmupMs: 1000,
      ...(o.path !== undefined ? { path: o.path } : {}),
    },
    (o.rounds * o.roundSeconds * urls.length + 60) * 1000,
  );
}

/** Token validation throughput and latency at `url`, `concurrency` requests in flight. */
export function benchValidate(
  client: Host,
  url: string,
  token: string,
  o: { concurrency: number; seconds: number; warmupMs?: number; path?: string },
): Promise<BenchResult> {
  return keystoneProbe<BenchResult>(
    client,
    {
      mode: 'bench',
      url,
      token,
      concurrency: o.concurrency,
      seconds: o.seconds,
      warmupMs: o.warmupMs ?? 1000,
      ...(o.path !== undefined ? { path: o.path } : {}),
    },
    (o.seconds + 60) * 1000,
  );
}
