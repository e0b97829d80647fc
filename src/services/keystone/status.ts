// Keystone's part of `stackha status`: each backend's health and key repositories, and whether every host holds the
// same keys.
import type { Host } from '../../hosts/host.js';
import type { Deployment } from '../../model.js';
import { apiHealthy } from '../health.js';
import {
  KEYSTONE_HEALTH_PATH,
  KEYSTONE_PORT,
  KEY_REPOSITORIES,
  type KeySet,
  keySetFingerprint,
  keystoneHosts,
  primaryKey,
  readKeySet,
} from './keystone.js';

function hostOf(ctx: { readonly hosts: ReadonlyMap<string, Host> }, name: string): Host {
  const h = ctx.hosts.get(name);
  if (!h) throw new Error(`no connection to host ${name}`);
  return h;
}

/** One key repository on one host, summarized: never the keys themselves. */
export interface KeySummary {
  /** Key numbers, ascending (0 is the staged key). */
  readonly keys: readonly number[];
  readonly primary: number | undefined;
  /** Digest of the whole set: equal on two hosts exactly when they hold the same keys. */
  readonly fingerprint: string | undefined;
}

export function summarizeKeys(keys: KeySet): KeySummary {
  return {
    keys: [...keys.keys()].sort((a, b) => a - b),
    primary: primaryKey(keys),
    fingerprint: keys.size > 0 ? keySetFingerprint(keys) : undefined,
  };
}

export interface KeystoneHostStatus {
  readonly host: string;
  readonly running: boolean;
  /** GET /healthcheck on the host's own address answered 200. */
  readonly healthy: boolean;
  readonly fernet: KeySummary;
  readonly credential: KeySummary;
}

export interface KeystoneStatus {
  readonly hosts: readonly KeystoneHostStatus[];
  /** Every host holds the same Fernet keys (and has some). */
  readonly fernetInSync: boolean;
  readonly credentialInSync: boolean;
}

const inSync = (sums: readonly KeySummary[]): boolean =>
  sums.length > 0 && sums.every((s) => s.fingerprint !== undefined && s.fingerprint === sums[0]?.fingerprint);

export async function keystoneStatus(ctx: {
  readonly dep: Deployment;
  readonly hosts: ReadonlyMap<string, Host>;
}): Promise<KeystoneStatus> {
  const hosts = await Promise.all(
    keystoneHosts(ctx.dep).map(async (spec): Promise<KeystoneHostStatus> => {
      const host = hostOf(ctx, spec.name);
      const [running, healthy, fernet, credential] = await Promise.all([
        host.daemonPid('keystone').then((p) => p !== undefined),
        apiHealthy(host, KEYSTONE_PORT, KEYSTONE_HEALTH_PATH),
        readKeySet(host, KEY_REPOSITORIES[0].dir),
        readKeySet(host, KEY_REPOSITORIES[1].dir),
      ]);
      return {
        host: spec.name,
        running,
        healthy,
        fernet: summarizeKeys(fernet),
        credential: summarizeKeys(credential),
      };
    }),
  );
  return {
    hosts,
    fernetInSync: inSync(hosts.map((h) => h.fernet)),
    credentialInSync: inSync(hosts.map((h) => h.credential)),
  };
}

/** Hosts grouped by key set: `ctl1, ctl2 have primary 3 (ab12cd34ef56)`. */
function describeGroups(hosts: readonly KeystoneHostStatus[], repo: 'fernet' | 'credential'): string {
  const groups = new Map<string, string[]>();
  for (const h of hosts) {
    const s = h[repo];
    const label =
      s.fingerprint === undefined
        ? 'no keys'
        : `primary ${s.primary} (${s.keys.join(',')}; ${s.fingerprint})`;
    groups.set(label, [...(groups.get(label) ?? []), h.host]);
  }
  return [...groups].map(([label, hs]) => `${hs.join(', ')}: ${label}`).join('; ');
}

export function keystoneProblems(s: KeystoneStatus): string[] {
  const p: string[] = [];
  for (const h of s.hosts) {
    if (!h.running) p.push(`keystone: ${h.host} is not running`);
    else if (!h.healthy) p.push(`keystone: ${h.host} does not answer ${KEYSTONE_HEALTH_PATH}`);
  }
  if (s.hosts.length > 0 && !s.fernetInSync)
    p.push(
      `keystone: the hosts do not hold the same Fernet keys (${describeGroups(s.hosts, 'fernet')}): ` +
        'a token may not validate everywhere; run `stackha keystone sync`',
    );
  if (s.hosts.length > 0 && !s.credentialInSync)
    p.push(
      `keystone: the hosts do not hold the same credential keys (${describeGroups(s.hosts, 'credential')}); ` +
        'run `stackha keystone sync`',
    );
  return p;
}

export function formatKeystoneStatus(s: KeystoneStatus): string[] {
  const out = ['Keystone'];
  for (const h of s.hosts) {
    const f = h.fernet;
    const c = h.credential;
    out.push(
      `  ${h.host.padEnd(8)} ${h.running ? 'running' : 'stopped'}  ${KEYSTONE_HEALTH_PATH} ${h.healthy ? '200' : 'down'}  ` +
        `fernet ${f.fingerprint === undefined ? 'none' : `${f.keys.join(',')} primary ${f.primary} ${f.fingerprint}`}  ` +
        `credential ${c.fingerprint === undefined ? 'none' : c.fingerprint}`,
    );
  }
  out.push(
    `  keys: Fernet ${s.fernetInSync ? 'identical on every host' : 'DIFFER'}, credential ${s.credentialInSync ? 'identical on every host' : 'DIFFER'}`,
  );
  return out;
}
